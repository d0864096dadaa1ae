//! The types every layer shares: a key in a logical database, the change to one key, and a live
//! key as a read returns it. They belong to no tier: the cache, the write-back buffer, the
//! journal and the store all speak them, so none of those imports another for them.

use bytes::Bytes;

/// A key in one logical database (SELECT 0-15): what the cache, the write-back buffer, the
/// key locks and single-flight reads are keyed by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbKey {
    /// Redis database index (SELECT).
    pub db: u8,
    /// The full Redis key.
    pub key: Bytes,
}

/// What to do to one key: what the write-back buffer holds per key, what the journal records
/// and what a store applies to a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreWrite {
    /// Insert or replace the value (and expiry, on the built-in table).
    Upsert {
        /// New value.
        value: Bytes,
        /// Unix ms expiry; `None` for no expiry.
        expires_at: Option<u64>,
    },
    /// Remove the key.
    Delete,
}

/// A live key: its value and, on the built-in keyspace, its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Bytes,
    /// Unix ms at which the key expires; always `None` on mapped keyspaces.
    pub expires_at: Option<u64>,
}
