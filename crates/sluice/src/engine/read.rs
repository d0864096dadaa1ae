//! The read path: write-back buffer (a tombstone there means absent), then the cache, then the
//! store through single flight. A read-through installs what it read only if no write moved
//! the key's stripe version meanwhile, so a racing write always wins.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use tracing::warn;

use super::route::Route;
use super::Engine;
use crate::clock::OpTime;
use crate::error::SluiceError;
use crate::model::events::KeyEvent;
use crate::model::{Entry, Kind, StoreWrite};
use crate::tiers::cache::{CacheError, CachedValue};
use crate::tiers::store::StoredValue;

/// How far a read got without waiting, and what it must do next.
enum ReadStep {
    /// The answer.
    Found(Option<Entry>),
    /// A transaction is installing in the stripe: wait for it, then read again.
    WaitInstalled,
    /// The cached copy expired: drop it (and the row); the key is absent.
    Expired,
    /// Read the store, installing what it has only if the stripe is still at `version`.
    ReadStore { version: u64 },
    /// The cache is remote: ask it, then judge its answer.
    AskCache { version: u64, fills_ended: u64 },
}

impl Engine {
    /// Reads a key through buffer → cache → store, never returning an expired key.
    pub(crate) async fn read(&self, route: &Route<'_>) -> Result<Option<Entry>, SluiceError> {
        self.read_at(route, &self.op_time()).await
    }

    /// [`Engine::read`] at the time `now`: a read-modify-write reads and writes at one instant,
    /// as Redis runs a command at one cached time (and the clock is read at most once).
    pub(crate) async fn read_at(
        &self,
        route: &Route<'_>,
        now: &OpTime<'_>,
    ) -> Result<Option<Entry>, SluiceError> {
        self.read_counted(route, now, true).await
    }

    /// [`Engine::read_at`], counted as a hit or a miss of the keyspace when `count`: a write
    /// that reads its key first (INCR, HSET...) passes false, as Redis counts only the lookups
    /// of reads.
    pub(crate) async fn read_counted(
        &self,
        route: &Route<'_>,
        now: &OpTime<'_>,
        count: bool,
    ) -> Result<Option<Entry>, SluiceError> {
        let counter = |hit: bool| {
            if count {
                let c = &route.ks.counters;
                if hit {
                    c.read_hits.bump(route.stripe.index());
                } else {
                    c.read_misses.fetch_add(1, Ordering::Relaxed);
                }
            }
        };
        // A loop, not a recursion: a reader that keeps meeting installs on a busy stripe waits
        // for each and tries again, with no deeper future (or stack) each time.
        loop {
            let step = match self.read_step(route, now) {
                ReadStep::AskCache {
                    version,
                    fills_ended,
                } => {
                    let got = self.cache.get(&route.key).await;
                    self.judge_copy(route, version, fills_ended, got, now)
                }
                step => step,
            };
            match step {
                ReadStep::Found(entry) => {
                    counter(true);
                    return Ok(entry);
                }
                ReadStep::WaitInstalled => self.wait_installed(route).await,
                ReadStep::Expired => {
                    counter(false);
                    self.expire_lazily(route, now.ms()).await;
                    return Ok(None);
                }
                // Boxed: the miss path's future is large, and every read's future would carry it.
                // (`AskCache` was judged above; reading the store is right for it anyway.)
                ReadStep::ReadStore { version } | ReadStep::AskCache { version, .. } => {
                    counter(false);
                    return Box::pin(self.read_through(route, version, now.ms())).await;
                }
            }
        }
    }

    /// [`Engine::read_at`] when it needs no wait: the key found in the write-back buffer or in
    /// an in-process cache. `None` when the read must wait (a transaction installing, a store
    /// read, a remote cache, an expired copy to drop): call [`Engine::read_at`].
    pub(crate) fn read_now(&self, route: &Route<'_>, now: &OpTime<'_>) -> Option<Option<Entry>> {
        let found = self.read_for_write_now(route, now);
        if found.is_some() {
            route.ks.counters.read_hits.bump(route.stripe.index());
        }
        found
    }

    /// [`Engine::read_now`] for a write that reads its key first: not counted (see
    /// [`Engine::read_counted`]).
    pub(crate) fn read_for_write_now(
        &self,
        route: &Route<'_>,
        now: &OpTime<'_>,
    ) -> Option<Option<Entry>> {
        match self.read_step(route, now) {
            ReadStep::Found(entry) => Some(entry),
            _ => None,
        }
    }

    /// How far a read gets without waiting: buffer, then an in-process cache.
    fn read_step(&self, route: &Route<'_>, now: &OpTime<'_>) -> ReadStep {
        let version = self.locks.version(route.stripe);
        if version & 1 == 1 {
            // A transaction is making writes visible in this stripe: read once it is done.
            return ReadStep::WaitInstalled;
        }
        if let Some(entry) = self.buffered(route, now) {
            return ReadStep::Found(entry);
        }
        let fills_ended = self.locks.fills_ended(route.stripe);
        match self.cache.local() {
            Some(local) => {
                let got = Ok(local.get_now(&route.key));
                self.judge_copy(route, version, fills_ended, got, now)
            }
            None => ReadStep::AskCache {
                version,
                fills_ended,
            },
        }
    }

    /// The key as the write-back buffer holds it (`Some(None)`: a tombstone, or expired), or
    /// `None` when it holds nothing for the key. Look at it only after reading the stripe's
    /// version, so that a write the lookup misses moves the version a store read installs at.
    #[inline]
    fn buffered(&self, route: &Route<'_>, now: &OpTime<'_>) -> Option<Option<Entry>> {
        let pending = route.ks.buffer.as_ref()?.lookup(&route.key)?;
        Some(match pending.write {
            StoreWrite::Upsert {
                value,
                kind,
                expires_at,
            } => live(value, kind, expires_at, now),
            StoreWrite::Delete => None,
            StoreWrite::Partial(row) if row.image_is_empty() => None,
            StoreWrite::Partial(row) => live(row.image, row.kind, row.expires_at, now),
        })
    }

    /// What a cache lookup begun at `version`, with `fills_ended` fill windows closed, means
    /// for the read.
    fn judge_copy(
        &self,
        route: &Route<'_>,
        version: u64,
        fills_ended: u64,
        got: Result<Option<CachedValue>, CacheError>,
        now: &OpTime<'_>,
    ) -> ReadStep {
        match got {
            Ok(Some(_)) if !self.locks.no_fill_since(route.stripe, fills_ended) => {
                // A read-through was filling this stripe while we looked: the copy may be
                // the stale one it put just before removing it. Read again at the version as
                // it is now (a write may have moved it since), buffer first: a write-back
                // write made since the buffer was looked at is newer than the store, and a
                // store read at the new version would install the older row over it.
                let version = self.locks.version(route.stripe);
                if version & 1 == 1 {
                    return ReadStep::WaitInstalled;
                }
                if let Some(entry) = self.buffered(route, now) {
                    return ReadStep::Found(entry);
                }
                ReadStep::ReadStore { version }
            }
            Ok(Some(copy)) => {
                if copy.expires_at.is_some_and(|e| e < now.ms()) {
                    return ReadStep::Expired;
                }
                if copy.cache_until.is_none_or(|u| u > now.ms()) {
                    return ReadStep::Found(Some(Entry {
                        value: copy.value,
                        kind: copy.kind,
                        expires_at: copy.expires_at,
                    }));
                }
                ReadStep::ReadStore { version }
            }
            Ok(None) => ReadStep::ReadStore { version },
            Err(e) => {
                warn!(keyspace = %route.ks.name, "cache read failed, reading the store: {e}");
                ReadStep::ReadStore { version }
            }
        }
    }

    /// Waits until the transaction installing in the key's stripe is done: it holds the
    /// stripe's lock until all of its writes are visible. Boxed: rare, and every read's future
    /// would otherwise carry the lock's.
    async fn wait_installed(&self, route: &Route<'_>) {
        Box::pin(self.locks.wait_installed(route.stripe)).await;
    }

    /// The miss path of [`Engine::read`]: one store read per key at a time (single flight),
    /// installed in the cache only if no write moved the stripe's version meanwhile.
    async fn read_through(
        &self,
        route: &Route<'_>,
        version: u64,
        now: u64,
    ) -> Result<Option<Entry>, SluiceError> {
        let ks = route.ks;
        let target = ks.target(route.key.db);
        let store_key = ks.store_key(&route.key.key);
        if !ks.is_builtin() && self.store.check(&target, &store_key, None).is_err() {
            // The key column cannot hold this capture, so no row has it: the key does not
            // exist (a write to it is refused by `apply`).
            return Ok(None);
        }
        let stored = self
            .singleflight
            .read((ks.id, route.key.clone()), version, || {
                self.store.read(&target, &store_key)
            })
            .await
            .map_err(|e| SluiceError::store(&ks.name, e))?;
        let Some(stored) = stored else {
            return Ok(None);
        };
        if stored.expires_at.is_some_and(|e| e < now) {
            self.expire_lazily(route, now).await;
            return Ok(None);
        }
        let cache_until = ks.cache_ttl_ms().map(|t| now.saturating_add(t));
        self.install_fill(route, version, &stored, cache_until)
            .await;
        Ok(Some(Entry {
            value: stored.value,
            kind: stored.kind,
            expires_at: stored.expires_at,
        }))
    }

    /// Caches `stored`, read from the store while the key's stripe was at `version`, unless a
    /// write moved the version since; removes it again if one moved it during the put. Inside
    /// a fill window, so readers that overlap the put read the store instead of the copy.
    /// True when the copy stayed.
    pub(super) async fn install_fill(
        &self,
        route: &Route<'_>,
        version: u64,
        stored: &StoredValue,
        cache_until: Option<u64>,
    ) -> bool {
        let _window = self.locks.begin_fill(route.stripe);
        if self.locks.version(route.stripe) != version {
            return false;
        }
        let _ = self
            .cache_put(
                &route.key,
                &stored.value,
                stored.kind,
                stored.expires_at,
                cache_until,
            )
            .await;
        if self.locks.version(route.stripe) != version {
            let _ = self.cache_remove(&route.key).await;
            return false;
        }
        true
    }

    /// An expired built-in key seen by a read: drop the cached copy and, if the row is still
    /// expired, the row. Conditional, so it can never remove a newer write.
    async fn expire_lazily(&self, route: &Route<'_>, now: u64) {
        let _ = self.cache_remove(&route.key).await;
        // Its expiry is a change to whoever watched it alive (Redis deletes it and signals).
        self.watches.touch_expired(&route.key);
        if route.ks.is_builtin() {
            let store = self.store.clone();
            let key = route.key.clone();
            let sink = self.key_event_sink(KeyEvent::Expired);
            tokio::spawn(async move {
                // Signalled by whoever deleted the row: this read, or the reaper.
                if let (Ok(true), Some(sink)) =
                    (store.delete_if_expired(key.db, &key.key, now).await, sink)
                {
                    sink.key_event(key.db, &key.key, KeyEvent::Expired);
                }
            });
        }
    }
}

fn live(value: Bytes, kind: Kind, expires_at: Option<u64>, now: &OpTime<'_>) -> Option<Entry> {
    if expires_at.is_some_and(|e| e < now.ms()) {
        None
    } else {
        Some(Entry {
            value,
            kind,
            expires_at,
        })
    }
}
