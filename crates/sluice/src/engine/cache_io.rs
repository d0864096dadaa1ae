//! The engine's calls into the cache tier: straight into an in-process cache, through the
//! trait's futures otherwise. A failed cache write removes the copy, so the cache never serves a
//! value older than the store's.

use bytes::Bytes;
use tracing::warn;

use super::route::Route;
use super::Engine;
use crate::clock::OpTime;
use crate::model::{DbKey, Kind};
use crate::tiers::cache::{CacheError, CachedValue};

impl Engine {
    /// Caches a value just written; on a cache failure the copy is removed instead, so the
    /// cache can never serve a value older than the store's.
    pub(super) async fn install(
        &self,
        route: &Route<'_>,
        value: &Bytes,
        kind: Kind,
        expires_at: Option<u64>,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) {
        let ttl_deadline = route.ks.cache_ttl_ms().map(|t| now.ms().saturating_add(t));
        let cache_until = crate::tiers::cache::earlier(ttl_deadline, copy_deadline);
        if let Err(e) = self
            .cache_put(&route.key, value, kind, expires_at, cache_until)
            .await
        {
            warn!(keyspace = %route.ks.name, "cache write failed, invalidating: {e}");
            self.evict(route).await;
        }
    }

    pub(super) async fn evict(&self, route: &Route<'_>) {
        if let Err(e) = self.cache_remove(&route.key).await {
            warn!(keyspace = %route.ks.name, "cache invalidation failed: {e}");
        }
    }

    // The three cache calls of the hot path: straight into an in-process cache, through the
    // trait's futures otherwise.
    pub(super) async fn cache_get(&self, key: &DbKey) -> Result<Option<CachedValue>, CacheError> {
        match self.cache.local() {
            Some(local) => Ok(local.get_now(key)),
            None => self.cache.get(key).await,
        }
    }

    /// Takes the parts by reference: an in-process cache copies them itself, so only a remote
    /// cache needs an owned [`CachedValue`].
    pub(super) async fn cache_put(
        &self,
        key: &DbKey,
        value: &Bytes,
        kind: Kind,
        expires_at: Option<u64>,
        cache_until: Option<u64>,
    ) -> Result<(), CacheError> {
        match self.cache.local() {
            Some(local) => {
                local.put_now(key, value, kind, expires_at, cache_until);
                Ok(())
            }
            None => {
                let copy = CachedValue {
                    value: value.clone(),
                    kind,
                    expires_at,
                    cache_until,
                };
                self.cache.put(key.clone(), copy).await
            }
        }
    }

    pub(super) async fn cache_remove(&self, key: &DbKey) -> Result<(), CacheError> {
        match self.cache.local() {
            Some(local) => {
                local.remove_now(key);
                Ok(())
            }
            None => self.cache.remove(key).await,
        }
    }
}
