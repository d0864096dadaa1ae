//! The store tier: the SQL database that is the system of record.
//!
//! A backend converts values to the real column type, reports an outcome per batch entry,
//! and classifies failures as transient or permanent. Every operation is idempotent: an
//! upsert or a delete applied twice leaves the same row as applied once, which is what makes
//! at-least-once delivery from the write-back buffer and the journal safe.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StoreError;

pub mod faulty;
pub mod mysql;
pub mod postgres;
pub mod sqlite;

/// The logical type of a column, as far as value conversion is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// Whole numbers; a value must be a decimal 64-bit integer.
    Integer,
    /// Floating point; a value must be a finite decimal number.
    Real,
    /// Exact or any numeric; a value must be a decimal number.
    Numeric,
    /// Text; a value must be valid UTF-8.
    Text,
    /// Raw bytes; any value.
    Blob,
    /// Boolean; `0`, `1`, `true` or `false`.
    Boolean,
    /// JSON text.
    Json,
    /// Date and time text.
    Timestamp,
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ColumnType::Integer => "integer",
            ColumnType::Real => "real",
            ColumnType::Numeric => "numeric",
            ColumnType::Text => "text",
            ColumnType::Blob => "blob",
            ColumnType::Boolean => "boolean",
            ColumnType::Json => "json",
            ColumnType::Timestamp => "timestamp",
        })
    }
}

/// One column of an existing table.
#[derive(Debug, Clone)]
pub struct ColumnInfo {
    /// Column name.
    pub name: String,
    /// The type as the database declares it.
    pub declared_type: String,
    /// How values are converted for it.
    pub kind: ColumnType,
}

/// What a store reports about an existing table.
#[derive(Debug, Clone)]
pub struct TableSchema {
    /// All columns.
    pub columns: Vec<ColumnInfo>,
    /// Columns that are unique on their own (a one-column primary key or unique index).
    pub unique_columns: Vec<String>,
}

impl TableSchema {
    /// The column called `name`, compared case-insensitively as SQL does.
    pub fn column(&self, name: &str) -> Option<&ColumnInfo> {
        self.columns
            .iter()
            .find(|c| c.name.eq_ignore_ascii_case(name))
    }
}

/// A mapped table: `table.value_column` where `key_column = capture`.
#[derive(Debug, Clone)]
pub struct MappedTable {
    /// Validated table identifier.
    pub table: String,
    /// Validated key column identifier (unique).
    pub key_column: String,
    /// Validated value column identifier.
    pub value_column: String,
    /// Conversion for the key capture.
    pub key_type: ColumnType,
    /// Conversion for the value.
    pub value_type: ColumnType,
    /// What a delete does: clear the value column, or remove the row.
    pub on_delete: crate::config::OnDelete,
}

impl MappedTable {
    /// True when the database may store a value in another text form than the one sent: every
    /// typed column (`9.999` into numeric(10,2) reads back `10.00`), not text or bytes.
    pub fn stores_different_text(&self) -> bool {
        !matches!(self.value_type, ColumnType::Text | ColumnType::Blob)
    }
}

/// Where a key lives in the database.
#[derive(Debug, Clone)]
pub enum Target {
    /// The built-in `sluice_kv` table, in logical database `db` (SELECT 0-15).
    Builtin {
        /// Redis database index.
        db: u8,
    },
    /// A column of an existing table.
    Mapped(Arc<MappedTable>),
}

/// A row as read back: the value as a Redis client expects it, and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The value in the text form the database itself would print.
    pub value: Bytes,
    /// Unix ms at which the key expires (built-in table only).
    pub expires_at: Option<u64>,
}

/// What to do to one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWrite {
    /// Insert or replace the value (and expiry, on the built-in table).
    Upsert {
        /// New value.
        value: Bytes,
        /// Unix ms expiry; `None` for no expiry.
        expires_at: Option<u64>,
    },
    /// Remove the row.
    Delete,
}

/// One entry of a batch.
#[derive(Debug, Clone)]
pub struct StoreOp {
    /// Table and database.
    pub target: Target,
    /// The built-in key, or the mapped capture.
    pub key: Bytes,
    /// The change.
    pub write: StoreWrite,
}

/// What a store reports about one entry it applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// For an upsert into a mapped column whose text form may differ from what was sent
    /// ([`MappedTable::stores_different_text`]), and only where the backend can tell without
    /// another round trip: the value as the column holds it once this entry's statement ran,
    /// byte for byte what [`Store::read`] would return for the row at that point. `None` when
    /// the backend does not say (a delete, an untyped column, a backend or key form that cannot
    /// report it); the caller must then read the row back if it needs the stored form.
    pub stored: Option<Bytes>,
}

impl Written {
    /// Applied, with nothing more to report.
    pub const NOTHING: Written = Written { stored: None };
}

/// The outcome of one entry of a batch.
pub type EntryOutcome = Result<Written, StoreError>;

/// Outcome of each entry of a batch, in batch order.
pub type BatchOutcome = Vec<EntryOutcome>;

/// The system of record.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A description for logs: backend and location, never a password.
    fn describe(&self) -> String;

    /// Creates the built-in `sluice_kv` table if it is missing.
    async fn ensure_builtin_table(&self) -> Result<(), StoreError>;

    /// The schema of an existing table, or `None` if there is no such table.
    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, StoreError>;

    /// Checks, without touching the database, that `key` (and `value`, for an upsert) can be
    /// stored in `target`. The error is permanent and names the key, column and type.
    fn check(&self, target: &Target, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError>;

    /// Reads one row. Expired built-in rows are returned with their `expires_at`; the caller
    /// decides, with its clock, whether they are visible.
    async fn read(&self, target: &Target, key: &[u8]) -> Result<Option<StoredValue>, StoreError>;

    /// Applies an ordered batch in one transaction.
    ///
    /// `Ok` carries one outcome per entry: a failed entry does not stop the others, and an
    /// applied upsert may report the text its column now holds ([`Written::stored`]). `Err`
    /// means nothing of the batch was committed, unless its message says that the outcome is
    /// unknown; an `Err` with [`StoreError::is_conflict`] was rolled back by the database
    /// because of another transaction and may be retried at once.
    async fn write_batch(&self, ops: Vec<StoreOp>) -> Result<BatchOutcome, StoreError>;

    /// Every key of `target` (captures, for mapped tables) not expired at `now_ms`.
    async fn scan_keys(&self, target: &Target, now_ms: u64) -> Result<Vec<Bytes>, StoreError>;

    /// Deletes every row of `target`.
    async fn clear(&self, target: &Target) -> Result<(), StoreError>;

    /// Deletes up to `limit` built-in rows expired at `now_ms`; returns how many went.
    async fn purge_expired(&self, now_ms: u64, limit: usize) -> Result<u64, StoreError>;

    /// Deletes one built-in row only if it is still expired at `now_ms`, so a newer value
    /// written meanwhile is never removed.
    async fn delete_if_expired(&self, db: u8, key: &[u8], now_ms: u64) -> Result<(), StoreError>;
}

/// Shared handle to a store.
pub type SharedStore = Arc<dyn Store>;

pub use crate::numeric::{parse_bool, parse_finite_f64, parse_strict_i64};

/// The permanent error for a key or value a column cannot hold.
pub fn conversion_error(
    what: &str,
    bytes: &[u8],
    key: &[u8],
    mapped: &MappedTable,
    column: &str,
    kind: ColumnType,
) -> StoreError {
    let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned();
    StoreError::permanent(format!(
        "{what} {shown:?} for key {:?} cannot be stored in column {}.{} ({kind})",
        String::from_utf8_lossy(key),
        mapped.table,
        column
    ))
}

/// Opens the store a URL names: `sqlite://path`, `postgres://…` (or `postgresql://…`), or
/// `mysql://…` (or `mariadb://…`).
pub async fn open_url(url: &str) -> Result<SharedStore, StoreError> {
    if url.starts_with("sqlite:") {
        let url = url.to_string();
        let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open_url(&url))
            .await
            .map_err(|e| StoreError::permanent(format!("SQLite open task failed: {e}")))??;
        return Ok(Arc::new(store));
    }
    let scheme = url.split("://").next().unwrap_or(url);
    match scheme {
        "postgres" | "postgresql" => Ok(Arc::new(postgres::PostgresStore::open_url(url).await?)),
        "mysql" | "mariadb" => Ok(Arc::new(mysql::MySqlStore::open_url(url).await?)),
        _ => Err(StoreError::permanent(format!(
            "[store] url: the scheme {scheme:?} is not supported; use sqlite://PATH, \
             postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB"
        ))),
    }
}

/// A URL with any password replaced by `***`, for logs and error messages.
pub(crate) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            let masked = if userinfo.contains(':') { ":***" } else { "" };
            let tail = tail.split('?').next().unwrap_or("");
            format!("{scheme}://{user}{masked}@{host}{tail}")
        }
        None => format!(
            "{scheme}://{authority}{}",
            tail.split('?').next().unwrap_or("")
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Set-based batch application, shared by the network backends (PostgreSQL, MySQL).
//
// A batch is planned into phases of statement groups: within a phase every row is touched by
// exactly one group (one target table and column pair, or the built-in table) and by one
// entry of it: repeated entries for a row are collapsed to the last one, which is what applying
// them in order would leave. A group becomes one upsert and one delete statement (a backend may
// split them into chunks). Rows of a phase are disjoint, so its statements commute; a new phase
// starts only when a row reappears under another group (two keyspaces mapping the same table),
// which keeps the batch's order where it matters.
//
// Each statement runs under a savepoint. When it fails with a permanent error, the savepoint
// is rolled back and the rows are bisected, each half under its own savepoint, until the
// failing rows are alone; a failing row then falls back to its earlier entries, newest first,
// until one applies, exactly as in-order application would have left the row. So a bad entry
// costs O(log n) extra statements and every good entry still commits.
// ---------------------------------------------------------------------------------------------

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
    pub fn last(&self) -> usize {
        *self.ops.last().expect("a planned row has an entry")
    }
}

/// The rows of one target in one phase, ordered by their deciding entry.
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
        groups: Vec<(GroupKey, PlannedGroup, HashMap<RowKey, usize>)>,
        owner: HashMap<RowKey, usize>,
    }
    let new_phase = || Building {
        groups: Vec::new(),
        owner: HashMap::new(),
    };
    let mut phases = vec![new_phase()];
    for (i, op) in ops.iter().enumerate() {
        if skip.get(i).copied().unwrap_or(false) {
            continue;
        }
        let (gk, rk) = plan_keys(op);
        let conflict = {
            let cur = phases.last().expect("at least one phase");
            cur.owner.get(&rk).is_some_and(|&g| cur.groups[g].0 != gk)
        };
        if conflict {
            phases.push(new_phase());
        }
        let cur = phases.last_mut().expect("at least one phase");
        let g = match cur.groups.iter().position(|(k, _, _)| *k == gk) {
            Some(g) => g,
            None => {
                cur.groups
                    .push((gk, PlannedGroup::default(), HashMap::new()));
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

fn is_delete(op: &StoreOp) -> bool {
    matches!(op.write, StoreWrite::Delete)
}

/// The rows and their deciding entries of a planned batch when one statement applies them all
/// (one phase, one table, all upserts or all deletes); `None` when it needs several statements.
/// A backend may then run that statement on its own, atomic without an explicit transaction,
/// and fall back to [`apply_planned`] in a transaction only if it is refused.
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
    let delete = is_delete(entries.first()?);
    entries
        .iter()
        .all(|op| is_delete(op) == delete)
        .then_some((&group.rows[..], entries))
}

/// Matches the rows a statement returned (key and value, each as [`Store::read`] and
/// [`Store::scan_keys`] would render them) to its entries, for [`Written::stored`]. An entry
/// whose key text is not exactly the rendered key (a capture the database normalizes, such as
/// `007` for an integer key) or that several returned rows share gets nothing, so the caller
/// falls back to reading the row.
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
        if let (Some(text), StoreWrite::Upsert { .. }) = (text, &ops[row.last()].write) {
            outcome[row.last()] = Ok(Written { stored: Some(text) });
        }
    }
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
    use super::*;

    fn op(db: u8, key: &str, value: Option<&str>) -> StoreOp {
        StoreOp {
            target: Target::Builtin { db },
            key: Bytes::copy_from_slice(key.as_bytes()),
            write: match value {
                Some(v) => StoreWrite::Upsert {
                    value: Bytes::copy_from_slice(v.as_bytes()),
                    expires_at: None,
                },
                None => StoreWrite::Delete,
            },
        }
    }

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
                    StoreWrite::Delete => {
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
                    StoreWrite::Delete => None,
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
            write: StoreWrite::Upsert {
                value: Bytes::from_static(b"x"),
                expires_at: None,
            },
        }
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://me:secret@db:5432/app?sslmode=disable"),
            "postgres://me:***@db:5432/app"
        );
        assert_eq!(
            redact_url("mysql://root@127.0.0.1/test"),
            "mysql://root@127.0.0.1/test"
        );
    }
}
