//! The change-capture tier: the database's own record of changed rows, followed so that rows
//! other programs change (an admin panel, a batch job, another Sluice node) reach the cache.
//!
//! A feed delivers the keys of changed rows of the watched tables in commit order, each batch
//! with the position after it. The engine applies a batch, then confirms its position; a feed
//! never delivers a confirmed change again, and after a restart resumes after the last
//! confirmed position. A feed that finds its stream broken (its record dropped or cut short)
//! says so in the batch ([`ChangeBatch::lost`]): the engine then drops every cached copy, as
//! it can no longer tell which are stale, and the feed starts a new stream.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;

pub use crate::error::ChangeError;

pub mod mysql;
pub mod pgoutput;
pub mod postgres;
pub mod sqlite;

/// A mapped table the feed watches, and the column whose value is a key's capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchedTable {
    /// Validated table identifier, as configured.
    pub table: String,
    /// Validated key column identifier.
    pub key_column: String,
}

/// One changed row: inserted, updated or deleted. An update that changes the key column
/// reports both the old and the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowChange {
    /// The table, spelled as in [`WatchedTable::table`].
    pub table: String,
    /// The key column's value, in the text form the database prints it (a capture).
    pub key: Bytes,
    /// When the change was recorded, in Unix ms, where the backend says.
    pub recorded_at_ms: Option<u64>,
    /// The row's non-NULL columns as the change left them, in the database's text form, where
    /// the stream carries them (PostgreSQL); `None`: read the row to know it.
    pub row: Option<ChangedRow>,
}

/// A changed row's non-NULL columns (name, text form), as a stream carries them.
pub type ChangedRow = Arc<[(String, Bytes)]>;

/// What a feed delivers at once.
#[derive(Debug, Clone, Default)]
pub struct ChangeBatch {
    /// Changes in commit order.
    pub changes: Vec<RowChange>,
    /// The position after the last change, to confirm once they are applied.
    pub position: u64,
    /// Set when the stream broke before this batch: changes may have been missed, so no
    /// cached copy of a watched table can be trusted. Says why, for the log.
    pub lost: Option<String>,
}

/// Where a feed is, for INFO and monitoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedStatus {
    /// The last confirmed position.
    pub confirmed: u64,
    /// The newest position the database has recorded.
    pub head: u64,
    /// Changes recorded but not yet confirmed by every node sharing the stream: what the
    /// slowest node holds back (SQLite).
    pub retained: u64,
    /// Bytes of WAL the database keeps for this node's stream (PostgreSQL's slot).
    pub retained_bytes: u64,
}

/// A change stream.
#[async_trait]
pub trait ChangeFeed: Send + Sync + 'static {
    /// A description for logs: backend and location, never a password.
    fn describe(&self) -> String;

    /// The changes after the last delivered batch, waiting up to `max_wait` for some; an empty
    /// batch when none came. At most `limit` changes.
    async fn next(&self, max_wait: Duration, limit: usize) -> Result<ChangeBatch, ChangeError>;

    /// Everything up to `position` is applied: never deliver it again, even after a restart,
    /// and let the database forget it once every node has confirmed it.
    async fn confirm(&self, position: u64) -> Result<(), ChangeError>;

    /// Where the feed is.
    async fn status(&self) -> Result<FeedStatus, ChangeError>;
}
