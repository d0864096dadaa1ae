//! The cache tier: a bounded copy of hot values. It is never authoritative: the write-back
//! buffer and the store are, so losing or evicting a cached copy costs only a refill.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use thiserror::Error;

use crate::model::{DbKey, Kind};

pub mod memory;

/// A cached copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedValue {
    /// The value: the string, or the encoding of `kind`.
    pub value: Bytes,
    /// Its type.
    pub kind: Kind,
    /// Unix ms at which the key itself expires (built-in keyspace), if ever.
    pub expires_at: Option<u64>,
    /// Unix ms after which this copy must not be served (the keyspace `ttl`), if ever.
    pub cache_until: Option<u64>,
}

/// The earlier of two optional deadlines (None: never).
pub fn earlier(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A cache backend failed; the engine then invalidates so it never serves a stale copy.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
#[error("cache: {0}")]
pub struct CacheError(pub String);

/// Size figures for INFO.
#[derive(Debug, Clone, Copy, Default)]
pub struct CacheStats {
    /// Entries held.
    pub entries: u64,
    /// Weighted bytes held.
    pub bytes: u64,
    /// Configured capacity in bytes.
    pub capacity: u64,
}

/// The cache tier.
#[async_trait]
pub trait Cache: Send + Sync + 'static {
    /// The copy for `key`, if held. The caller checks deadlines against its own clock.
    async fn get(&self, key: &DbKey) -> Result<Option<CachedValue>, CacheError>;
    /// Stores a copy, replacing any other.
    async fn put(&self, key: DbKey, value: CachedValue) -> Result<(), CacheError>;
    /// Drops the copy for `key`.
    async fn remove(&self, key: &DbKey) -> Result<(), CacheError>;
    /// Drops every copy in `db`, or in every database when `None`.
    async fn clear(&self, db: Option<u8>) -> Result<(), CacheError>;
    /// Sizes for INFO.
    fn stats(&self) -> CacheStats;
    /// The same cache without futures, when it lives in this process and never waits on I/O.
    /// The engine then calls it directly on its hot path (no allocation per call). A cache
    /// reached over the network returns `None`.
    fn local(&self) -> Option<&dyn LocalCache> {
        None
    }
    /// Calls `listener` with each key whose copy is evicted for room from now on (after the
    /// cache's own locks are released); `false` if this cache cannot report evictions.
    fn on_evict(&self, listener: Arc<dyn EvictionListener>) -> bool {
        let _ = listener;
        false
    }
}

/// Told the database and key of each copy a cache evicts for room.
pub trait EvictionListener: Send + Sync {
    /// Whether evictions are wanted now: the cache copies no key otherwise.
    fn wanted(&self) -> bool;
    /// The copy of `key` in `db` was evicted.
    fn evicted(&self, db: u8, key: &[u8]);
}

/// A cache answering from this process's memory, synchronously. Same guarantees as
/// [`Cache`]; it cannot fail.
pub trait LocalCache: Send + Sync {
    /// The copy for `key`, if held.
    fn get_now(&self, key: &DbKey) -> Option<CachedValue>;
    /// Stores a copy of `value` with its deadlines (as in [`CachedValue`]), replacing any
    /// other. Takes the parts by reference: the cache copies them into its own memory.
    fn put_now(
        &self,
        key: &DbKey,
        value: &[u8],
        kind: Kind,
        expires_at: Option<u64>,
        cache_until: Option<u64>,
    );
    /// Drops the copy for `key`.
    fn remove_now(&self, key: &DbKey);
}

/// Shared handle to a cache.
pub type SharedCache = Arc<dyn Cache>;
