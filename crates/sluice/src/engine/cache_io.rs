//! The engine's calls into the cache tier: straight into an in-process cache, through the
//! trait's futures otherwise. A failed cache write removes the copy, so the cache never serves a
//! value older than the store's.

use bytes::Bytes;
use tracing::warn;

use super::route::Route;
use super::Engine;
use crate::clock::OpTime;
use crate::model::{DbKey, Kind, StoreWrite};
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
        let cache_until = copy_until(route, copy_deadline, now);
        if let Err(e) = self
            .cache_put(&route.key, value, kind, expires_at, cache_until)
            .await
        {
            warn!(keyspace = %route.ks.name, "cache write failed, invalidating: {e}");
            self.evict(route).await;
        }
    }

    /// Shows a write in an in-process cache (its copy, or none for a delete), which cannot
    /// fail; false, with nothing done, if the cache is remote ([`Engine::install`] and
    /// [`Engine::evict`] then).
    #[inline]
    pub(super) fn show_now(
        &self,
        route: &Route<'_>,
        write: &StoreWrite,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) -> bool {
        let Some(local) = self.cache.local() else {
            return false;
        };
        match write.visible() {
            Some((value, kind, expires_at)) => {
                let cache_until = copy_until(route, copy_deadline, now);
                local.put_now(&route.key, value, kind, expires_at, cache_until);
            }
            None => local.remove_now(&route.key),
        }
        true
    }

    pub(super) async fn evict(&self, route: &Route<'_>) {
        if let Err(e) = self.cache_remove(&route.key).await {
            warn!(keyspace = %route.ks.name, "cache invalidation failed: {e}");
        }
    }

    // The cache calls of the write path: straight into an in-process cache, through the
    // trait's futures otherwise (a read asks an in-process cache in `read_step`).
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

/// Until when a copy of a write may be served: the keyspace's cache TTL, or the client's expiry
/// on a mapped table (`copy_deadline`), whichever comes first.
fn copy_until(route: &Route<'_>, copy_deadline: Option<u64>, now: &OpTime<'_>) -> Option<u64> {
    let ttl_deadline = route.ks.cache_ttl_ms().map(|t| now.ms().saturating_add(t));
    crate::tiers::cache::earlier(ttl_deadline, copy_deadline)
}
