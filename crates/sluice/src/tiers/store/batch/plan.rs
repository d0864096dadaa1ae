//! Planning a batch for set-based application: phases of statement groups, each row once.

use std::collections::HashMap;

use bytes::Bytes;
use foldhash::fast::RandomState;

use crate::model::StoreWrite;
use crate::tiers::store::{members, StoreOp, Target};

/// Which statements an entry goes to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum GroupKey {
    Builtin,
    Mapped(String, String, String),
}

/// Which row an entry touches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RowKey {
    Builtin(u8, Bytes),
    Mapped(String, Bytes),
}

fn plan_keys(op: &StoreOp) -> (GroupKey, RowKey) {
    match &op.target {
        Target::Builtin { db } => (GroupKey::Builtin, RowKey::Builtin(*db, op.key.clone())),
        Target::Mapped(m) => {
            let table = m.table.to_ascii_lowercase();
            (
                GroupKey::Mapped(
                    table.clone(),
                    m.key_column.to_ascii_lowercase(),
                    m.value_column.to_ascii_lowercase(),
                ),
                RowKey::Mapped(table, op.key.clone()),
            )
        }
        Target::Members(m) => {
            // The owner's rows, as one row of the plan: a write to them never collapses.
            let table = m.table.to_ascii_lowercase();
            (
                GroupKey::Mapped(
                    table.clone(),
                    m.key_column.to_ascii_lowercase(),
                    "\0members".to_string(),
                ),
                RowKey::Mapped(table, op.key.clone()),
            )
        }
        Target::Row(r) => {
            let table = r.table.to_ascii_lowercase();
            (
                GroupKey::Mapped(
                    table.clone(),
                    r.key_column.to_ascii_lowercase(),
                    String::new(),
                ),
                RowKey::Mapped(table, op.key.clone()),
            )
        }
    }
}

/// The entries of one row in batch order; the last decides the row.
#[derive(Debug, Clone)]
pub(crate) struct PlannedRow {
    /// Indexes into the batch.
    pub ops: Vec<usize>,
}

impl PlannedRow {
    /// The entry that decides the row.
    pub(crate) fn last(&self) -> usize {
        *self.ops.last().expect("a planned row has an entry")
    }
}

/// The rows of one target in one phase, ordered by their deciding entry. Not by key, though
/// sorted keys would walk the index in order: a unique index on another column makes the
/// order of rows within one statement visible (a value freed by a later write of the batch
/// must not let an earlier write take it), so rows keep the order of the writes.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlannedGroup {
    /// Rows, each touched once.
    pub rows: Vec<PlannedRow>,
}

/// Groups whose rows are disjoint.
#[derive(Debug, Clone, Default)]
pub(crate) struct PlannedPhase {
    /// Groups in order of first appearance.
    pub groups: Vec<PlannedGroup>,
}

/// Plans `ops` (skipping those marked in `skip`, which already have their outcome).
pub(crate) fn plan_batch(ops: &[StoreOp], skip: &[bool]) -> Vec<PlannedPhase> {
    struct Building {
        groups: Vec<(GroupKey, PlannedGroup, HashMap<RowKey, usize, RandomState>)>,
        owner: HashMap<RowKey, usize, RandomState>,
    }
    let new_phase = || Building {
        groups: Vec::new(),
        owner: HashMap::default(),
    };
    let mut phases = vec![new_phase()];
    for (i, op) in ops.iter().enumerate() {
        if skip.get(i).copied().unwrap_or(false) {
            continue;
        }
        let (gk, rk) = plan_keys(op);
        // A row write sets only its changed columns (a member write only its changed
        // members), so it never stands in for an earlier write to the same row: a repeated
        // row starts a new phase instead of collapsing.
        let row_write = matches!(op.target, Target::Row(_) | Target::Members(_))
            || members::member_write(&op.target, &op.write).is_some();
        let conflict = {
            let cur = phases.last().expect("at least one phase");
            cur.owner
                .get(&rk)
                .is_some_and(|&g| row_write || cur.groups[g].0 != gk)
        };
        if conflict {
            phases.push(new_phase());
        }
        let cur = phases.last_mut().expect("at least one phase");
        let g = match cur.groups.iter().position(|(k, _, _)| *k == gk) {
            Some(g) => g,
            None => {
                cur.groups
                    .push((gk, PlannedGroup::default(), HashMap::default()));
                cur.groups.len() - 1
            }
        };
        cur.owner.insert(rk.clone(), g);
        let (_, group, rows) = &mut cur.groups[g];
        match rows.get(&rk) {
            Some(&r) => group.rows[r].ops.push(i),
            None => {
                rows.insert(rk, group.rows.len());
                group.rows.push(PlannedRow { ops: vec![i] });
            }
        }
    }
    phases
        .into_iter()
        .filter(|p| !p.groups.is_empty())
        .map(|p| PlannedPhase {
            groups: p
                .groups
                .into_iter()
                .map(|(_, mut g, _)| {
                    g.rows.sort_by_key(PlannedRow::last);
                    g
                })
                .collect(),
        })
        .collect()
}

/// True for an entry that removes its row (or clears its column).
pub(crate) fn is_delete(op: &StoreOp) -> bool {
    matches!(op.write, StoreWrite::Delete)
}

/// The rows and their deciding entries of a planned batch when one statement applies them all
/// (one phase, one table, all upserts or all deletes); `None` when it needs several statements.
/// A backend may then run that statement on its own, atomic without an explicit transaction,
/// and fall back to [`apply_planned`] in a transaction only if it is refused.
///
/// [`apply_planned`]: super::apply_planned
pub(crate) fn single_statement<'o, 'p>(
    ops: &'o [StoreOp],
    phases: &'p [PlannedPhase],
) -> Option<(&'p [PlannedRow], Vec<&'o StoreOp>)> {
    let [phase] = phases else {
        return None;
    };
    let [group] = &phase.groups[..] else {
        return None;
    };
    let entries: Vec<&StoreOp> = group.rows.iter().map(|r| &ops[r.last()]).collect();
    // A member write takes several statements (the key's row, then its members).
    if entries
        .iter()
        .any(|op| members::member_write(&op.target, &op.write).is_some())
    {
        return None;
    }
    let delete = is_delete(entries.first()?);
    entries
        .iter()
        .all(|op| is_delete(op) == delete)
        .then_some((&group.rows[..], entries))
}

/// Splits `items` into consecutive chunks of at most `max_items` entries and (unless a single
/// entry is larger) at most `max_bytes`, each chunk's length a power of two, so a backend that
/// prepares one statement per row count needs only a handful of statement shapes.
pub(crate) fn pow2_chunks<T>(
    items: &[T],
    max_items: usize,
    max_bytes: usize,
    size: impl Fn(&T) -> usize,
) -> Vec<&[T]> {
    let max_items = max_items.max(1);
    let mut chunks = Vec::new();
    let mut start = 0;
    while start < items.len() {
        let mut end = start;
        let mut bytes = 0usize;
        while end < items.len() && end - start < max_items {
            let s = size(&items[end]);
            if end > start && bytes + s > max_bytes {
                break;
            }
            bytes += s;
            end += 1;
        }
        let mut n = end - start;
        while n > 0 {
            let take = 1usize << (usize::BITS - 1 - n.leading_zeros());
            chunks.push(&items[start..start + take]);
            start += take;
            n -= take;
        }
    }
    chunks
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::super::testing::op;
    use super::*;
    use crate::tiers::store::{ColumnType, MappedTable};

    fn mapped(value_column: &str) -> Target {
        Target::Mapped(Arc::new(MappedTable {
            table: "products".into(),
            key_column: "id".into(),
            value_column: value_column.into(),
            key_type: ColumnType::Integer,
            value_type: ColumnType::Integer,
            on_delete: crate::config::OnDelete::DeleteRow,
        }))
    }

    #[test]
    fn repeated_keys_collapse_to_the_last_entry() {
        let ops = vec![
            op(0, "a", Some("1")),
            op(0, "b", Some("1")),
            op(0, "a", None),
            op(1, "a", Some("x")),
            op(0, "a", Some("2")),
        ];
        let phases = plan_batch(&ops, &[false; 5]);
        assert_eq!(phases.len(), 1);
        assert_eq!(phases[0].groups.len(), 1);
        let rows: Vec<Vec<usize>> = phases[0].groups[0]
            .rows
            .iter()
            .map(|r| r.ops.clone())
            .collect();
        assert_eq!(rows, vec![vec![1], vec![3], vec![0, 2, 4]]);
    }

    #[test]
    fn skipped_entries_are_left_out() {
        let ops = vec![op(0, "a", Some("1")), op(0, "a", Some("bad"))];
        let phases = plan_batch(&ops, &[false, true]);
        assert_eq!(phases[0].groups[0].rows[0].ops, vec![0]);
        assert!(plan_batch(&ops, &[true, true]).is_empty());
    }

    #[test]
    fn a_row_under_two_groups_starts_a_new_phase() {
        let mut a = op(0, "7", Some("1"));
        a.target = mapped("price");
        let mut b = op(0, "7", None);
        b.target = mapped("stock");
        let mut c = op(0, "8", Some("1"));
        c.target = mapped("price");
        let phases = plan_batch(&[a, b, c], &[false; 3]);
        assert_eq!(phases.len(), 2);
        assert_eq!(phases[0].groups.len(), 1);
        assert_eq!(phases[1].groups.len(), 2);
    }

    #[test]
    fn repeated_row_writes_are_kept_in_order_in_phases_of_their_own() {
        let row = Target::Row(Arc::new(crate::tiers::store::MappedRow {
            table: "users".into(),
            key_column: "id".into(),
            key_type: ColumnType::Integer,
            columns: Vec::new(),
            on_delete: crate::config::OnDelete::SetNull,
        }));
        let mut ops = vec![
            op(0, "1", Some("a")),
            op(0, "1", None),
            op(0, "2", Some("b")),
            op(0, "1", Some("c")),
        ];
        for o in &mut ops {
            o.target = row.clone();
        }
        let phases = plan_batch(&ops, &[false; 4]);
        let entries: Vec<Vec<usize>> = phases
            .iter()
            .map(|p| p.groups[0].rows.iter().map(PlannedRow::last).collect())
            .collect();
        assert_eq!(entries, vec![vec![0], vec![1, 2], vec![3]]);
    }

    #[test]
    fn chunks_are_powers_of_two_within_limits() {
        let items: Vec<usize> = vec![1; 13];
        let sizes: Vec<usize> = pow2_chunks(&items, 8, usize::MAX, |s| *s)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![8, 4, 1]);
        let items = vec![5usize, 5, 20, 1, 1, 1];
        let sizes: Vec<usize> = pow2_chunks(&items, 100, 10, |s| *s)
            .iter()
            .map(|c| c.len())
            .collect();
        assert_eq!(sizes, vec![2, 1, 2, 1]);
    }
}
