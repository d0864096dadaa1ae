//! The store tier: the SQL database that is the system of record.
//!
//! A backend converts values to the real column type, reports an outcome per batch entry, and
//! classifies failures as transient, conflict or permanent. Every operation is idempotent: an
//! upsert or a delete applied twice leaves the same row as applied once, which is what makes
//! at-least-once delivery from the write-back buffer and the journal safe.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StoreError;
use crate::model::{DbKey, StoreWrite};

mod batch;
mod convert;
pub mod faulty;
mod fence;
mod members;
mod members_mapped;
pub mod mysql;
pub mod postgres;
mod rows;
pub mod sqlite;
mod url;

pub use convert::{conversion_error, parse_bool, parse_finite_f64, parse_strict_i64};
pub use fence::Fence;
pub(crate) use fence::FenceSlot;
pub(crate) use url::redact_url;
pub use url::Backend;

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
    /// The column sets of every primary key and unique index (of one column or more) that an
    /// `ON CONFLICT` can name.
    pub unique_keys: Vec<Vec<String>>,
}

impl TableSchema {
    /// Whether `columns` (compared case-insensitively) are exactly the columns of a primary
    /// key or unique index.
    pub fn is_unique_key(&self, columns: &[&str]) -> bool {
        self.unique_keys.iter().any(|key| {
            key.len() == columns.len()
                && columns
                    .iter()
                    .all(|c| key.iter().any(|k| k.eq_ignore_ascii_case(c)))
        })
    }
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
    /// `column` of a table keyed by `key_column`, seen as a mapped string column.
    fn of_column(
        table: &str,
        key_column: &str,
        key_type: ColumnType,
        column: &ColumnInfo,
        on_delete: crate::config::OnDelete,
    ) -> MappedTable {
        MappedTable {
            table: table.to_string(),
            key_column: key_column.to_string(),
            value_column: column.name.clone(),
            key_type,
            value_type: column.kind,
            on_delete,
        }
    }

    /// True when the database may store a value in another text form than the one sent: every
    /// typed column (`9.999` into numeric(10,2) reads back `10.00`), not text or bytes.
    pub fn stores_different_text(&self) -> bool {
        !matches!(self.value_type, ColumnType::Text | ColumnType::Blob)
    }

    /// The type and name of the column a key capture (`is_key`) or a value goes to, and what
    /// a conversion error calls it.
    pub fn conversion_target(&self, is_key: bool) -> (ColumnType, &str, &'static str) {
        if is_key {
            (self.key_type, &self.key_column, "key capture")
        } else {
            (self.value_type, &self.value_column, "value")
        }
    }
}

/// A mapped hash keyspace: a hash is a row of `table` where `key_column = capture`, each field
/// one of `columns`. NULL columns are absent fields; a row whose mapped columns are all NULL
/// (or no row) is a missing key.
#[derive(Debug, Clone)]
pub struct MappedRow {
    /// Validated table identifier.
    pub table: String,
    /// Validated key column identifier (unique).
    pub key_column: String,
    /// Conversion for the key capture.
    pub key_type: ColumnType,
    /// The columns a client may use as fields, with their types, in the order configured.
    pub columns: Vec<ColumnInfo>,
    /// What DEL does: set every mapped column NULL, or remove the row.
    pub on_delete: crate::config::OnDelete,
}

impl MappedRow {
    /// The column a field names, compared exactly (field names are column names as
    /// configured).
    pub fn column(&self, field: &[u8]) -> Option<&ColumnInfo> {
        self.columns.iter().find(|c| c.name.as_bytes() == field)
    }

    /// One mapped column seen as a mapped string column of the same table, so the converters
    /// and conversion errors written for mapped columns serve row fields too.
    pub fn as_column(&self, column: &ColumnInfo) -> MappedTable {
        MappedTable::of_column(
            &self.table,
            &self.key_column,
            self.key_type,
            column,
            self.on_delete,
        )
    }

    /// True when the database may store a field in another text form than the one sent (any
    /// typed column).
    pub fn stores_different_text(&self) -> bool {
        self.columns
            .iter()
            .any(|c| !matches!(c.kind, ColumnType::Text | ColumnType::Blob))
    }
}

/// A mapped set, sorted set or list keyspace: a collection is the rows of `table` whose
/// `key_column` is the capture (its owner), a row per member, `(key_column, member.name)`
/// unique together; a sorted set's scores, or a list's elements, in `value`. A list's member
/// column is its position column: an element's sequence number, the list ordered by it. No rows
/// is a missing key. See `members_mapped.rs` for how writes become statements.
#[derive(Debug, Clone)]
pub struct MappedMembers {
    /// Validated table identifier.
    pub table: String,
    /// The owner column (unique only together with the member column).
    pub key_column: String,
    /// Conversion for the key capture.
    pub key_type: ColumnType,
    /// The type each owner's rows make: [`crate::model::Kind::Set`], `ZSet` or `List`.
    pub kind: crate::model::Kind,
    /// The member column: text, bytes or an integer; a list's position column (an integer).
    pub member: ColumnInfo,
    /// The column beside the member: a sorted set's score (an integer or a double), a list's
    /// element (text or bytes); `None` for a set.
    pub value: Option<ColumnInfo>,
}

impl MappedMembers {
    /// The type this keyspace holds.
    pub fn kind(&self) -> crate::model::Kind {
        self.kind
    }

    /// One column seen as a mapped string column of the same table, so the converters and
    /// conversion errors written for mapped columns serve members and scores too.
    pub fn as_column(&self, column: &ColumnInfo) -> MappedTable {
        MappedTable::of_column(
            &self.table,
            &self.key_column,
            self.key_type,
            column,
            crate::config::OnDelete::DeleteRow,
        )
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
    /// A row of an existing table, as a hash.
    Row(Arc<MappedRow>),
    /// Rows of an existing table, one per member, as a set, sorted set or list.
    Members(Arc<MappedMembers>),
}

impl Target {
    /// For a mapped target: the table, its key column and the columns that hold the key's
    /// value (a key exists while one of them is not NULL); `None` for the built-in table.
    pub(crate) fn mapped_columns(&self) -> Option<(&str, &str, Vec<&str>)> {
        match self {
            Target::Builtin { .. } => None,
            Target::Mapped(m) => Some((&m.table, &m.key_column, vec![m.value_column.as_str()])),
            Target::Row(r) => Some((
                &r.table,
                &r.key_column,
                r.columns.iter().map(|c| c.name.as_str()).collect(),
            )),
            // Every row of an owner is a member: the key exists while it has one.
            Target::Members(m) => Some((&m.table, &m.key_column, vec![m.member.name.as_str()])),
        }
    }
}

/// A row as read back: the value as a Redis client expects it, its type, and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredValue {
    /// The value in the text form the database itself would print (a row: the encoded hash of
    /// its non-NULL mapped columns).
    pub value: Bytes,
    /// Its type.
    pub kind: crate::model::Kind,
    /// Unix ms at which the key expires (built-in table only).
    pub expires_at: Option<u64>,
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
    /// byte for byte what [`Store::read`] would return for the row at that point. For a write
    /// to a mapped row (every backend: `RETURNING` on PostgreSQL and SQLite, a read in the same
    /// transaction on MySQL): the row's image, the encoded hash of its non-NULL mapped columns,
    /// empty when none is left (the key does not exist). `None` when the backend does not say
    /// (a delete, an untyped column, a backend or key form that cannot report it); the caller
    /// must then read the row back if it needs the stored form.
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

/// Why an all-or-nothing batch ([`Store::write_atomic`]) was not committed.
#[derive(Debug, Clone)]
pub struct AtomicFailure {
    /// The entry the database refused, when it says which.
    pub index: Option<usize>,
    /// Why: the entry's error, or the transaction's.
    pub error: StoreError,
}

/// A store's connection pool, as monitoring shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStatus {
    /// Most connections the pool opens.
    pub max: usize,
    /// Connections open now.
    pub open: usize,
    /// Open connections idle in the pool.
    pub idle: usize,
    /// Callers waiting for a connection.
    pub waiting: usize,
}

/// The system of record.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A description for logs: backend and location, never a password.
    fn describe(&self) -> String;

    /// The connection pool's state; `None` for a store without a pool it can report on.
    fn pool_status(&self) -> Option<PoolStatus> {
        None
    }

    /// Creates the built-in `sluice_kv` table if it is missing.
    async fn ensure_builtin_table(&self) -> Result<(), StoreError>;

    /// Which journal the Sluice nodes storing into this database share, as the first of them
    /// recorded it in the one-row table `sluice_journal`. With `claim`, records it if nothing
    /// is recorded yet (making the table if missing), atomically, so that of two nodes racing
    /// one wins; without, only reads (no table: `None`). Returns what is recorded afterwards:
    /// `claim` itself, another node's mark, or `None` (never claimed). A node whose journal
    /// differs from the mark must not start.
    async fn journal_mark(&self, claim: Option<&str>) -> Result<Option<String>, StoreError>;

    /// Fences this store's writes for the cluster node `node`, whose name the caller has just
    /// claimed in NATS: raises the node's generation in the table `sluice_fence` (made if
    /// missing) and keeps it. From then on every [`Store::write_batch`] and
    /// [`Store::write_atomic`] first reads the generation in its own transaction, under a
    /// share lock, and commits nothing (a transient error) once another process has claimed
    /// the name. A claim waits for the transactions that passed that check to commit, so the
    /// previous holder's writes land before the new holder's, never after. Returns the
    /// generation; a second claim on one store is refused. Reads, `clear` and the expiry
    /// purges are not fenced (the purges delete only rows still expired).
    async fn claim_fence(&self, node: &str) -> Result<i64, StoreError>;

    /// The schema of an existing table, or `None` if there is no such table.
    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, StoreError>;

    /// Checks, without touching the database, that `key` (and `write`, when given) can be
    /// stored in `target`: the key capture and an upsert's value convert for their columns; on
    /// a mapped row, every field a write sets is a configured column and its value converts.
    /// The error is permanent and names the key, the field and the column and type.
    fn check(
        &self,
        target: &Target,
        key: &[u8],
        write: Option<&StoreWrite>,
    ) -> Result<(), StoreError>;

    /// Reads one row. Expired built-in rows are returned with their `expires_at`; the caller
    /// decides, with its clock, whether they are visible.
    async fn read(&self, target: &Target, key: &[u8]) -> Result<Option<StoredValue>, StoreError>;

    /// Whether [`Store::read_many`] has one query for `target`; callers that would read key
    /// by key anyway skip their batch set-up.
    fn reads_many(&self, target: &Target) -> bool {
        let _ = target;
        false
    }

    /// Reads the rows of `keys` (captures) of one mapped column with one query, in the order
    /// of `keys`. `None` when this store has no such query for `target`: the caller reads key
    /// by key instead. A key that cannot be converted for its column fails the whole call.
    async fn read_many(
        &self,
        target: &Target,
        keys: &[Bytes],
    ) -> Option<Result<Vec<Option<StoredValue>>, StoreError>> {
        let _ = (target, keys);
        None
    }

    /// Applies an ordered batch in one transaction.
    ///
    /// `Ok` carries one outcome per entry: a failed entry does not stop the others, and an
    /// applied upsert may report the text its column now holds ([`Written::stored`]). `Err`
    /// means nothing of the batch was committed, unless its message says that the outcome is
    /// unknown; an `Err` with [`StoreError::is_conflict`] was rolled back by the database
    /// because of another transaction and may be retried at once.
    async fn write_batch(&self, ops: Vec<StoreOp>) -> Result<BatchOutcome, StoreError>;

    /// Applies `ops` in one transaction, in order, all or nothing: `Ok` with one [`Written`]
    /// per entry, or `Err` with nothing of the batch committed (unless the error says the
    /// outcome is unknown: a connection lost during COMMIT). A refused entry rolls the whole
    /// transaction back and is named by [`AtomicFailure::index`], its error carrying the
    /// database's reason.
    async fn write_atomic(&self, ops: Vec<StoreOp>) -> Result<Vec<Written>, AtomicFailure>;

    /// Every key of `target` (captures, for mapped tables) not expired at `now_ms`.
    async fn scan_keys(&self, target: &Target, now_ms: u64) -> Result<Vec<Bytes>, StoreError>;

    /// Deletes every row of `target`. On a mapped row keyspace it follows `on_delete`: with
    /// `set-null` every mapped column is set NULL (the rows and their other columns stay), with
    /// `delete-row` the table's rows are deleted.
    async fn clear(&self, target: &Target) -> Result<(), StoreError>;

    /// Deletes up to `limit` built-in rows expired at `now_ms`; returns the keys that went
    /// (each once: the engine signals their expiry).
    async fn purge_expired(&self, now_ms: u64, limit: usize) -> Result<Vec<DbKey>, StoreError>;

    /// Deletes one built-in row only if it is still expired at `now_ms`, so a newer value
    /// written meanwhile is never removed; whether it deleted one.
    async fn delete_if_expired(&self, db: u8, key: &[u8], now_ms: u64) -> Result<bool, StoreError>;
}

/// The error for a write of fields (or a hash) to a target that is not a mapped row.
pub(crate) fn fields_need_a_row(target: &Target, key: &[u8]) -> StoreError {
    let place = match target {
        Target::Builtin { .. } => "the built-in table stores a hash whole".to_string(),
        Target::Mapped(m) => format!("{}.{} is one string column", m.table, m.value_column),
        Target::Row(r) => format!("{} is a row", r.table),
        Target::Members(m) => format!(
            "{} holds a {} per key",
            members_mapped::describe(m),
            m.kind().type_name()
        ),
    };
    StoreError::permanent(format!(
        "key {:?}: a write of hash fields needs a mapped row keyspace, and {place}",
        String::from_utf8_lossy(&key[..key.len().min(64)])
    ))
}

/// The error for a hash upsert into a mapped string column.
pub(crate) fn hash_in_column(m: &MappedTable, key: &[u8]) -> StoreError {
    StoreError::permanent(format!(
        "key {:?}: {}.{} holds strings; a hash cannot be stored there",
        String::from_utf8_lossy(&key[..key.len().min(64)]),
        m.table,
        m.value_column
    ))
}

/// [`Store::check`] for a mapped string column, every backend alike: the key capture must
/// convert for the key column, an upsert's value for the value column (`convert(bytes,
/// is_key)` does the backend's conversion), and a hash has no place in a column.
pub(crate) fn check_column(
    m: &MappedTable,
    key: &[u8],
    write: Option<&StoreWrite>,
    mut convert: impl FnMut(&[u8], bool) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    convert(key, true)?;
    match write {
        Some(StoreWrite::Upsert {
            kind: crate::model::Kind::Hash,
            ..
        }) => Err(hash_in_column(m, key)),
        Some(StoreWrite::Upsert { value, .. }) => convert(value, false),
        _ => Ok(()),
    }
}

/// The stored kind number of a built-in row, refusing a number no kind has (a table someone
/// else wrote to).
pub(crate) fn kind_from_stored(code: i64, key: &[u8]) -> Result<crate::model::Kind, StoreError> {
    u8::try_from(code)
        .ok()
        .and_then(crate::model::Kind::from_code)
        .ok_or_else(|| {
            StoreError::permanent(format!(
                "sluice_kv row for key {:?} has kind {code}, which no Redis type has",
                String::from_utf8_lossy(&key[..key.len().min(64)])
            ))
        })
}

/// Shared handle to a store.
pub type SharedStore = Arc<dyn Store>;

/// Opens the store a URL names: `sqlite://path`, `postgres://…` (or `postgresql://…`), or
/// `mysql://…` (or `mariadb://…`).
pub async fn open_url(url: &str) -> Result<SharedStore, StoreError> {
    match Backend::of(url) {
        Ok(Backend::Sqlite(path)) => {
            let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open(&path))
                .await
                .map_err(|e| {
                    StoreError::permanent(format!("SQLite open task failed: {e}")).with_source(e)
                })??;
            Ok(Arc::new(store))
        }
        Ok(Backend::Postgres) => Ok(Arc::new(postgres::PostgresStore::open_url(url).await?)),
        Ok(Backend::MySql) => Ok(Arc::new(mysql::MySqlStore::open_url(url).await?)),
        Err(scheme) => Err(StoreError::permanent(format!(
            "[store] url: the scheme {scheme:?} is not supported; use sqlite://PATH, \
             postgres://USER@HOST:PORT/DB or mysql://USER@HOST:PORT/DB"
        ))),
    }
}
