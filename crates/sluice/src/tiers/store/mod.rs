//! The store tier: the SQL database that is the system of record.
//!
//! A backend converts values to the real column type, reports an outcome per batch entry,
//! and classifies failures as transient or permanent. Every operation is idempotent: an
//! upsert or a delete applied twice leaves the same row as applied once, which is what makes
//! at-least-once delivery from the write-back buffer and the journal safe.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::StoreError;

pub mod faulty;
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

/// Outcome of each entry of a batch, in batch order.
pub type BatchOutcome = Vec<Result<(), StoreError>>;

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
    /// `Ok` carries one outcome per entry: a failed entry does not stop the others. `Err` means
    /// nothing of the batch was committed.
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


/// Opens the store a URL names: `sqlite://path`. PostgreSQL and MySQL come with their
/// backends.
pub async fn open_url(url: &str) -> Result<SharedStore, StoreError> {
    if url.starts_with("sqlite:") {
        let url = url.to_string();
        let store = tokio::task::spawn_blocking(move || sqlite::SqliteStore::open_url(&url))
            .await
            .map_err(|e| StoreError::permanent(format!("SQLite open task failed: {e}")))??;
        return Ok(Arc::new(store));
    }
    let scheme = url.split("://").next().unwrap_or(url);
    Err(StoreError::permanent(format!(
        "[store] url: the scheme {scheme:?} is not supported by this build; use sqlite://PATH"
    )))
}
