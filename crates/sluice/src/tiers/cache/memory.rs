//! In-process cache on moka: bounded by bytes (a weigher), with a per-entry lifetime.

use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::{Cache, CacheError, CacheKey, CacheStats, CachedValue};
use crate::clock::SharedClock;

/// Bytes charged per entry on top of key and value, for moka's own bookkeeping.
const ENTRY_OVERHEAD: u64 = 96;

/// The memory cache.
pub struct MemoryCache {
    inner: moka::sync::Cache<CacheKey, CachedValue>,
    capacity: u64,
}

struct Lifetime {
    clock: SharedClock,
}

impl Lifetime {
    fn remaining(&self, value: &CachedValue) -> Option<Duration> {
        value
            .deadline()
            .map(|d| Duration::from_millis(d.saturating_sub(self.clock.now_ms())))
    }
}

impl moka::Expiry<CacheKey, CachedValue> for Lifetime {
    fn expire_after_create(
        &self,
        _key: &CacheKey,
        value: &CachedValue,
        _now: Instant,
    ) -> Option<Duration> {
        self.remaining(value)
    }

    fn expire_after_update(
        &self,
        _key: &CacheKey,
        value: &CachedValue,
        _now: Instant,
        _current: Option<Duration>,
    ) -> Option<Duration> {
        self.remaining(value)
    }
}

impl MemoryCache {
    /// A cache holding at most `capacity` bytes of keys, values and per-entry overhead.
    /// Entries are reclaimed after their deadline on the engine's clock.
    pub fn new(capacity: u64, clock: SharedClock) -> MemoryCache {
        let inner = moka::sync::Cache::builder()
            .max_capacity(capacity)
            .weigher(|k: &CacheKey, v: &CachedValue| {
                let w = k.key.len() as u64 + v.value.len() as u64 + ENTRY_OVERHEAD;
                w.min(u32::MAX as u64) as u32
            })
            .expire_after(Lifetime { clock })
            .support_invalidation_closures()
            .build();
        MemoryCache { inner, capacity }
    }
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &CacheKey) -> Result<Option<CachedValue>, CacheError> {
        Ok(self.inner.get(key))
    }

    async fn put(&self, key: CacheKey, value: CachedValue) -> Result<(), CacheError> {
        self.inner.insert(key, value);
        Ok(())
    }

    async fn remove(&self, key: &CacheKey) -> Result<(), CacheError> {
        self.inner.invalidate(key);
        Ok(())
    }

    async fn clear(&self, db: Option<u8>) -> Result<(), CacheError> {
        match db {
            None => self.inner.invalidate_all(),
            Some(db) => {
                self.inner
                    .invalidate_entries_if(move |k, _| k.db == db)
                    .map_err(|e| CacheError(e.to_string()))?;
            }
        }
        Ok(())
    }

    fn stats(&self) -> CacheStats {
        self.inner.run_pending_tasks();
        CacheStats {
            entries: self.inner.entry_count(),
            bytes: self.inner.weighted_size(),
            capacity: self.capacity,
        }
    }
}
