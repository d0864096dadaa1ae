//! Applying a planned batch inside a transaction: one statement per group under a savepoint,
//! bisecting a permanently failing statement until the failing rows are alone.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;

use super::plan::{is_delete, PlannedPhase, PlannedRow};
use crate::error::StoreError;
use crate::tiers::store::{EntryOutcome, StoreOp, Written};

/// What a statement reports per entry: the stored text of each, in entry order, or nothing at
/// all (an empty vector).
pub(crate) type StatementStored = Vec<Option<Bytes>>;

/// A failed statement: the error, and whether it is about the statement itself (a missing
/// table or column, a privilege) rather than about some of its rows, so bisecting is useless.
#[derive(Debug, Clone)]
pub(crate) struct StatementFailure {
    /// The error; a transient one fails the whole batch.
    pub error: StoreError,
    /// Every row of the statement would fail the same way.
    pub whole_statement: bool,
}

/// Appends the key to a statement failure when the statement wrote one row, so the error
/// names what failed; a multi-row failure is later narrowed down row by row.
pub(crate) fn name_single_key(ops: &[&StoreOp]) -> impl Fn(StatementFailure) -> StatementFailure {
    let single_key = match ops {
        [only] => Some(String::from_utf8_lossy(&only.key).into_owned()),
        _ => None,
    };
    move |mut f: StatementFailure| {
        if let Some(k) = &single_key {
            f.error.message = format!("{} (key {k:?})", f.error.message);
        }
        f
    }
}

/// What a backend provides inside an open transaction to apply planned rows.
#[async_trait]
pub(crate) trait SetApplier: Send {
    /// `SAVEPOINT`.
    async fn savepoint(&mut self) -> Result<(), StoreError>;
    /// `ROLLBACK TO SAVEPOINT` (and release it), leaving the transaction usable.
    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError>;
    /// `RELEASE SAVEPOINT`.
    async fn release_savepoint(&mut self) -> Result<(), StoreError>;
    /// Applies entries of one group, all upserts or all deletes, each for a different row,
    /// with as few statements as the backend can. The error names the key when there is
    /// one entry.
    ///
    /// `Ok` holds, for each entry in `ops` order, the text its column holds afterwards (see
    /// [`Written::stored`]) where the backend reports it; it may be empty when it reports
    /// nothing.
    async fn apply(&mut self, ops: &[&StoreOp]) -> Result<StatementStored, StatementFailure>;
}

/// Matches the rows a statement returned (key and value, each as [`Store::read`] and
/// [`Store::scan_keys`] would render them) to its entries, for [`Written::stored`]. An entry
/// whose key text is not exactly the rendered key (a capture the database normalizes, such as
/// `007` for an integer key) or that several returned rows share gets nothing, so the caller
/// falls back to reading the row.
///
/// [`Store::read`]: crate::tiers::store::Store::read
/// [`Store::scan_keys`]: crate::tiers::store::Store::scan_keys
pub(crate) fn match_returned(
    ops: &[&StoreOp],
    returned: impl IntoIterator<Item = (Bytes, Option<Bytes>)>,
) -> StatementStored {
    let mut by_key: HashMap<Bytes, Option<Bytes>> = HashMap::with_capacity(ops.len());
    for (key, value) in returned {
        by_key.entry(key).and_modify(|v| *v = None).or_insert(value);
    }
    ops.iter()
        .map(|op| by_key.get(&op.key).cloned().flatten())
        .collect()
}

/// Applies the planned batch, writing per-entry outcomes. `Err` (a transient failure, or a
/// savepoint that could not be set) means the transaction must not be committed.
pub(crate) async fn apply_planned<A: SetApplier + ?Sized>(
    applier: &mut A,
    ops: &[StoreOp],
    phases: &[PlannedPhase],
    outcome: &mut [EntryOutcome],
) -> Result<(), StoreError> {
    for phase in phases {
        for group in &phase.groups {
            for deletes in [false, true] {
                let rows: Vec<&PlannedRow> = group
                    .rows
                    .iter()
                    .filter(|r| is_delete(&ops[r.last()]) == deletes)
                    .collect();
                if !rows.is_empty() {
                    apply_rows(applier, ops, &rows, outcome).await?;
                }
            }
        }
    }
    Ok(())
}

async fn apply_rows<A: SetApplier + ?Sized>(
    applier: &mut A,
    ops: &[StoreOp],
    rows: &[&PlannedRow],
    outcome: &mut [EntryOutcome],
) -> Result<(), StoreError> {
    // Depth-first, first half before second, so rows keep their batch order.
    let mut pending: Vec<&[&PlannedRow]> = vec![rows];
    while let Some(range) = pending.pop() {
        let entries: Vec<&StoreOp> = range.iter().map(|r| &ops[r.last()]).collect();
        applier.savepoint().await?;
        match applier.apply(&entries).await {
            Ok(stored) => {
                applier.release_savepoint().await?;
                record_stored(ops, range.iter().copied(), stored, outcome);
            }
            Err(f) if !f.error.is_permanent() => return Err(f.error),
            Err(f) => {
                applier.rollback_to_savepoint().await?;
                if f.whole_statement {
                    for row in range {
                        for &i in &row.ops {
                            outcome[i] = Err(f.error.clone());
                        }
                    }
                } else if range.len() == 1 {
                    fall_back(applier, ops, range[0], f.error, outcome).await?;
                } else {
                    let (first, second) = range.split_at(range.len() / 2);
                    pending.push(second);
                    pending.push(first);
                }
            }
        }
    }
    Ok(())
}

/// The row's deciding entry failed: try its earlier entries, newest first, as applying the
/// batch in order would have left the row at the last entry that succeeded.
async fn fall_back<A: SetApplier + ?Sized>(
    applier: &mut A,
    ops: &[StoreOp],
    row: &PlannedRow,
    error: StoreError,
    outcome: &mut [EntryOutcome],
) -> Result<(), StoreError> {
    outcome[row.last()] = Err(error);
    for &i in row.ops.iter().rev().skip(1) {
        applier.savepoint().await?;
        match applier.apply(&[&ops[i]]).await {
            Ok(stored) => {
                applier.release_savepoint().await?;
                outcome[i] = Ok(Written {
                    stored: stored.into_iter().next().flatten(),
                });
                return Ok(());
            }
            Err(f) if !f.error.is_permanent() => return Err(f.error),
            Err(f) => {
                applier.rollback_to_savepoint().await?;
                outcome[i] = Err(f.error);
            }
        }
    }
    Ok(())
}

/// Records what an applied statement reported for each row's deciding entry. Earlier entries
/// of a row report nothing: their value did not stay.
pub(crate) fn record_stored<'r>(
    ops: &[StoreOp],
    rows: impl IntoIterator<Item = &'r PlannedRow>,
    stored: StatementStored,
    outcome: &mut [EntryOutcome],
) {
    for (row, text) in rows.into_iter().zip(stored) {
        if let (Some(text), false) = (text, is_delete(&ops[row.last()])) {
            outcome[row.last()] = Ok(Written { stored: Some(text) });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::plan::plan_batch;
    use super::super::testing::op;
    use super::*;
    use crate::model::StoreWrite;
    use crate::tiers::store::{BatchOutcome, Target};

    /// A transactional map: statements are atomic, savepoints snapshot it, a value "bad"
    /// fails its statement.
    #[derive(Default)]
    struct FakeTx {
        rows: HashMap<Vec<u8>, Vec<u8>>,
        saved: Vec<HashMap<Vec<u8>, Vec<u8>>>,
        statements: usize,
    }

    #[async_trait]
    impl SetApplier for FakeTx {
        async fn savepoint(&mut self) -> Result<(), StoreError> {
            self.saved.push(self.rows.clone());
            Ok(())
        }
        async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
            self.rows = self.saved.pop().expect("a savepoint");
            Ok(())
        }
        async fn release_savepoint(&mut self) -> Result<(), StoreError> {
            self.saved.pop().expect("a savepoint");
            Ok(())
        }
        async fn apply(&mut self, ops: &[&StoreOp]) -> Result<StatementStored, StatementFailure> {
            self.statements += 1;
            if ops.iter().any(
                |op| matches!(&op.write, StoreWrite::Upsert { value, .. } if &value[..] == b"bad"),
            ) {
                return Err(StatementFailure {
                    error: StoreError::permanent("bad value"),
                    whole_statement: false,
                });
            }
            for op in ops {
                match &op.write {
                    StoreWrite::Upsert { value, .. } => {
                        self.rows.insert(op.key.to_vec(), value.to_vec());
                    }
                    StoreWrite::Delete | StoreWrite::Partial(_) => {
                        self.rows.remove(&op.key[..]);
                    }
                }
            }
            // Reports the stored text as "=value", so tests see which entry it came from.
            Ok(ops
                .iter()
                .map(|op| match &op.write {
                    StoreWrite::Upsert { value, .. } => {
                        Some(Bytes::from([b"=", &value[..]].concat()))
                    }
                    StoreWrite::Delete | StoreWrite::Partial(_) => None,
                })
                .collect())
        }
    }

    async fn run(ops: &[StoreOp]) -> (FakeTx, BatchOutcome) {
        let mut tx = FakeTx::default();
        let mut outcome: BatchOutcome = ops.iter().map(|_| Ok(Written::NOTHING)).collect();
        let phases = plan_batch(ops, &vec![false; ops.len()]);
        apply_planned(&mut tx, ops, &phases, &mut outcome)
            .await
            .unwrap();
        assert!(
            tx.saved.is_empty(),
            "every savepoint released or rolled back"
        );
        (tx, outcome)
    }

    #[tokio::test]
    async fn bad_entries_are_isolated_in_few_statements() {
        let ops: Vec<StoreOp> = (0..1000)
            .map(|i| {
                let v = if i == 500 {
                    "bad".to_string()
                } else {
                    i.to_string()
                };
                op(0, &format!("k{i}"), Some(&v))
            })
            .collect();
        let (tx, outcome) = run(&ops).await;
        for (i, r) in outcome.iter().enumerate() {
            assert_eq!(r.is_err(), i == 500, "entry {i}");
        }
        assert_eq!(tx.rows.len(), 999);
        assert!(tx.statements <= 2 * 11, "{} statements", tx.statements);
    }

    #[tokio::test]
    async fn a_failing_last_entry_falls_back_to_the_one_before() {
        let ops = vec![
            op(0, "a", Some("1")),
            op(0, "a", Some("2")),
            op(0, "a", Some("bad")),
            op(0, "b", None),
            op(0, "b", Some("bad")),
        ];
        let (tx, outcome) = run(&ops).await;
        assert_eq!(tx.rows.get(&b"a"[..]).map(|v| &v[..]), Some(&b"2"[..]));
        assert!(!tx.rows.contains_key(&b"b"[..]));
        let errs: Vec<bool> = outcome.iter().map(|r| r.is_err()).collect();
        assert_eq!(errs, vec![false, false, true, false, true]);
        // The stored text comes from the entry that stayed, and only for it.
        assert_eq!(outcome[0], Ok(Written::NOTHING));
        assert_eq!(
            outcome[1],
            Ok(Written {
                stored: Some(Bytes::from_static(b"=2"))
            })
        );
        assert_eq!(outcome[3], Ok(Written::NOTHING), "a delete reports nothing");
    }

    #[tokio::test]
    async fn stored_text_reaches_the_entry_that_decides_each_row() {
        // Keys k0..k49 twice; the second write of k37 (entry 87) is refused.
        let ops: Vec<StoreOp> = (0..100)
            .map(|i| {
                let v = if i == 87 {
                    "bad".to_string()
                } else {
                    i.to_string()
                };
                op(0, &format!("k{}", i % 50), Some(&v))
            })
            .collect();
        let (_, outcome) = run(&ops).await;
        for (i, r) in outcome.iter().enumerate() {
            let stored = match i {
                87 => {
                    assert!(r.is_err(), "entry {i}: {r:?}");
                    continue;
                }
                // k37 fell back to its first write, which stayed.
                37 => Some(Bytes::from("=37")),
                // Overwritten later in the same batch: nothing to report.
                0..=49 => None,
                _ => Some(Bytes::from(format!("={i}"))),
            };
            assert_eq!(r, &Ok(Written { stored }), "entry {i}");
        }
    }

    #[test]
    fn returned_rows_match_entries_only_by_their_exact_key() {
        let t = Target::Builtin { db: 0 };
        let ops = [
            upsert_op(&t, "1"),
            upsert_op(&t, "007"),
            upsert_op(&t, "2"),
            upsert_op(&t, "3"),
        ];
        let refs: Vec<&StoreOp> = ops.iter().collect();
        let text = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let stored = match_returned(
            &refs,
            [
                (text("3"), Some(text("3.00"))),
                (text("1"), Some(text("1.00"))),
                (text("7"), Some(text("7.00"))),
                (text("2"), Some(text("2.00"))),
                (text("2"), Some(text("2.50"))),
            ],
        );
        assert_eq!(
            stored,
            vec![Some(text("1.00")), None, None, Some(text("3.00"))],
            "order does not matter; a normalized or repeated key reports nothing"
        );
    }

    fn upsert_op(t: &Target, key: &str) -> StoreOp {
        StoreOp {
            target: t.clone(),
            key: Bytes::copy_from_slice(key.as_bytes()),
            write: StoreWrite::string(Bytes::from_static(b"x"), None),
        }
    }
}
