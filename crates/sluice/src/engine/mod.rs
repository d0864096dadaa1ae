//! The engine: keyspace routing → policy → tiers.
//!
//! [`Engine`] owns the tiers and the keyspaces. Every write takes its key's stripe lock, so
//! per-key order is the same in the store, the journal, the buffer and the cache. Reads never
//! lock: they look in the write-back buffer, then the cache, then the store.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::warn;

use crate::clock::{OpTime, SharedClock};
use crate::config::{Config, KeyspaceConfig, Policy};
use crate::error::{SluiceError, StoreError};
use crate::keyspace::KeyTemplate;
use crate::tiers::cache::{CacheError, CacheKey, CachedValue, SharedCache};
use crate::tiers::journal::{JournalOp, JournalRecord, SharedJournal};
use crate::tiers::store::{MappedTable, SharedStore, StoreOp, StoreWrite, Target};

pub mod deadletter;
mod flush;
mod group_commit;
pub mod locks;
mod open;
mod ops;
pub mod singleflight;
pub mod writeback;

use deadletter::DeadLetters;
use locks::{KeyLocks, Stripe};
use singleflight::SingleFlight;
use writeback::{ReserveError, WriteBackBuffer};

pub use flush::ShutdownReport;
pub use open::{check_config, SluiceBuilder};
pub use ops::{ExpireCondition, KeyTtl, SetCondition, SetExpiry, SetOptions, SetOutcome};
/// Types of the library API.
pub mod ops_types {
    pub use super::ops::{KeyspaceInfo, Mutation};
}

/// A live key: its value and, on the built-in keyspace, its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The value.
    pub value: Bytes,
    /// Unix ms at which the key expires; always `None` on mapped keyspaces.
    pub expires_at: Option<u64>,
}

/// Counters of one keyspace, for INFO and SLUICE.KEYSPACES.
#[derive(Debug, Default)]
pub struct KeyspaceCounters {
    /// Writes the keyspace took (client writes, each key of a multi-key command, and retried
    /// dead letters): counted once a write passes the value check, before it reaches the
    /// store or the buffer, so it includes writes that then failed (a store error, a full
    /// buffer, a journal failure, a shutdown). Writes refused by the check are not counted.
    pub writes: AtomicU64,
    /// Flush transactions committed.
    pub flushes: AtomicU64,
    /// Rows the store accepted.
    pub rows_stored: AtomicU64,
    /// Store failures (whole batches or single entries).
    pub store_errors: AtomicU64,
    /// Flush retries after a failure.
    pub retries: AtomicU64,
    /// Entries parked as dead letters.
    pub dead_letters: AtomicU64,
    /// Duration of the last flush, µs.
    pub last_flush_us: AtomicU64,
    /// The last store error, if any.
    pub last_error: Mutex<Option<String>>,
}

/// One keyspace at run time.
pub struct Keyspace {
    /// Position in match order.
    pub id: usize,
    /// Configured name.
    pub name: String,
    /// The key template; `None` for the built-in keyspace.
    pub template: Option<KeyTemplate>,
    /// The mapped table; `None` for the built-in keyspace.
    pub mapped: Option<Arc<MappedTable>>,
    /// The configuration entry.
    pub config: KeyspaceConfig,
    /// The write-back buffer (write-back keyspaces only).
    pub buffer: Option<WriteBackBuffer>,
    /// Counters.
    pub counters: KeyspaceCounters,
    /// Held by whoever flushes this keyspace: at most one store in flight per key.
    flush_lock: tokio::sync::Mutex<()>,
}

impl Keyspace {
    /// The write policy.
    pub fn policy(&self) -> Policy {
        self.config.policy
    }

    /// True for the built-in `sluice_kv` keyspace.
    pub fn is_builtin(&self) -> bool {
        self.mapped.is_none()
    }

    fn target(&self, db: u8) -> Target {
        match &self.mapped {
            Some(m) => Target::Mapped(m.clone()),
            None => Target::Builtin { db },
        }
    }

    /// The store key of a Redis key: the capture on mapped keyspaces, the key itself otherwise.
    fn store_key(&self, key: &Bytes) -> Bytes {
        match &self.template {
            Some(t) => t
                .capture_range(key)
                .map(|r| key.slice(r))
                .unwrap_or_else(|| key.clone()),
            None => key.clone(),
        }
    }

    /// True when the database may store a value in another text form than the client sent
    /// (a typed column: `9.999` into numeric(10,2) reads back `10.00`). A write-through write
    /// caches the database's own form (reported by the commit, or read back); a write-back
    /// flush drops the client's form from the cache, so the next read caches the database's.
    fn stores_different_text(&self) -> bool {
        self.mapped
            .as_ref()
            .is_some_and(|m| m.stores_different_text())
    }

    fn cache_ttl_ms(&self) -> Option<u64> {
        self.config.ttl.map(|d| d.as_millis() as u64)
    }
}

/// The engine shared by every handle.
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) clock: SharedClock,
    pub(crate) store: SharedStore,
    pub(crate) cache: SharedCache,
    pub(crate) journal: SharedJournal,
    pub(crate) keyspaces: Vec<Arc<Keyspace>>,
    pub(crate) dead_letters: DeadLetters,
    locks: KeyLocks,
    singleflight: SingleFlight,
    /// Last sequence number handed out.
    seq: AtomicU64,
    /// Sequence numbers appended to the journal but not yet in a buffer; they hold back the
    /// checkpoint.
    unbuffered: Mutex<BTreeSet<u64>>,
    closing: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Stores write-through and invalidate writes of concurrent clients in shared
    /// transactions; stops with the other background tasks.
    committer: group_commit::GroupCommitter,
}

/// Where a key lives.
pub(crate) struct Route<'a> {
    pub ks: &'a Arc<Keyspace>,
    pub stripe: Stripe,
    pub cache_key: CacheKey,
}

impl Engine {
    /// The keyspace owning `key` in `db`. Mapped keyspaces live in database 0 only.
    ///
    /// Takes the key by value: the route keeps it, and a caller that owns it (a command that
    /// moved it out of its request) pays no reference count for it.
    pub(crate) fn route(&self, db: u8, key: Bytes) -> Route<'_> {
        Route {
            ks: self.keyspace_of(db, &key),
            stripe: self.locks.stripe(db, &key),
            cache_key: CacheKey { db, key },
        }
    }

    /// The keyspace owning `key` in `db`, for callers that need nothing else of the route.
    pub(crate) fn keyspace_of(&self, db: u8, key: &[u8]) -> &Arc<Keyspace> {
        if db == 0 {
            self.keyspaces.iter().find(|ks| {
                ks.template
                    .as_ref()
                    .is_some_and(|t| t.capture(key).is_some())
            })
        } else {
            None
        }
        .unwrap_or_else(|| self.builtin())
    }

    /// The built-in keyspace (always last).
    pub(crate) fn builtin(&self) -> &Arc<Keyspace> {
        self.keyspaces
            .last()
            .expect("the engine always has the built-in keyspace")
    }

    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn check_open(&self) -> Result<(), SluiceError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(SluiceError::ShuttingDown);
        }
        Ok(())
    }

    /// Reads a key through buffer → cache → store, never returning an expired key.
    pub(crate) async fn read(&self, route: &Route<'_>) -> Result<Option<Entry>, SluiceError> {
        self.read_at(route, &self.op_time()).await
    }

    /// The time of one operation, read from the clock only if the operation needs it.
    pub(crate) fn op_time(&self) -> OpTime<'_> {
        OpTime::new(&*self.clock)
    }

    /// [`Engine::read`] at the time `now`: a read-modify-write reads and writes at one instant,
    /// as Redis runs a command at one cached time (and the clock is read at most once).
    pub(crate) async fn read_at(
        &self,
        route: &Route<'_>,
        now: &OpTime<'_>,
    ) -> Result<Option<Entry>, SluiceError> {
        let version = self.locks.version(route.stripe);
        let ks = route.ks;
        if let Some(buffer) = &ks.buffer {
            if let Some(pending) = buffer.lookup(&route.cache_key) {
                return Ok(match pending.write {
                    StoreWrite::Upsert { value, expires_at } => live(value, expires_at, now),
                    StoreWrite::Delete => None,
                });
            }
        }
        match self.cache_get(&route.cache_key).await {
            Ok(Some(copy)) => {
                if copy.expires_at.is_some_and(|e| e < now.ms()) {
                    self.expire_lazily(route, now.ms()).await;
                    return Ok(None);
                }
                if copy.cache_until.is_none_or(|u| u > now.ms()) {
                    return Ok(Some(Entry {
                        value: copy.value,
                        expires_at: copy.expires_at,
                    }));
                }
            }
            Ok(None) => {}
            Err(e) => warn!(keyspace = %ks.name, "cache read failed, reading the store: {e}"),
        }
        // Boxed: the miss path's future is large, and every read's future would carry it.
        Box::pin(self.read_through(route, version, now.ms())).await
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
        let target = ks.target(route.cache_key.db);
        let store_key = ks.store_key(&route.cache_key.key);
        if !ks.is_builtin() && self.store.check(&target, &store_key, None).is_err() {
            // The key column cannot hold this capture, so no row has it: the key does not
            // exist (a write to it is refused by `apply`).
            return Ok(None);
        }
        let stored = self
            .singleflight
            .read((ks.id, route.cache_key.clone()), version, || {
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
        if self.locks.version(route.stripe) == version {
            let _ = self
                .cache_put(
                    &route.cache_key,
                    &stored.value,
                    stored.expires_at,
                    cache_until,
                )
                .await;
            if self.locks.version(route.stripe) != version {
                let _ = self.cache_remove(&route.cache_key).await;
            }
        }
        Ok(Some(Entry {
            value: stored.value,
            expires_at: stored.expires_at,
        }))
    }

    /// An expired built-in key seen by a read: drop the cached copy and, if the row is still
    /// expired, the row. Conditional, so it can never remove a newer write.
    async fn expire_lazily(&self, route: &Route<'_>, now: u64) {
        let _ = self.cache_remove(&route.cache_key).await;
        if route.ks.is_builtin() {
            let store = self.store.clone();
            let key = route.cache_key.clone();
            tokio::spawn(async move {
                let _ = store.delete_if_expired(key.db, &key.key, now).await;
            });
        }
    }

    /// Applies one write according to the keyspace's policy. The caller holds the key's lock.
    ///
    /// A write-back write returns its pending journal acknowledgement: the caller releases
    /// the key lock, then awaits it with [`durable`] before acknowledging the client.
    pub(crate) async fn apply(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
    ) -> Result<Applied, SluiceError> {
        self.apply_at(route, write, &self.op_time()).await
    }

    /// [`Engine::apply`] at the time `now` (see [`Engine::read_at`]).
    pub(crate) async fn apply_at(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        self.check_open()?;
        let ks = route.ks;
        // On a mapped table an expiry bounds only the cached copy: the row never carries one.
        let (write, copy_deadline) = match write {
            StoreWrite::Upsert { value, expires_at } if !ks.is_builtin() => (
                StoreWrite::Upsert {
                    value,
                    expires_at: None,
                },
                expires_at,
            ),
            StoreWrite::Upsert {
                expires_at: Some(e),
                ..
            } if e <= now.ms() => (StoreWrite::Delete, None),
            other => (other, None),
        };
        if !ks.is_builtin() {
            let value = match &write {
                StoreWrite::Upsert { value, .. } => Some(&value[..]),
                StoreWrite::Delete => None,
            };
            self.store
                .check(
                    &ks.target(route.cache_key.db),
                    &ks.store_key(&route.cache_key.key),
                    value,
                )
                .map_err(|e| SluiceError::Refused(e.message))?;
        }
        ks.counters.writes.fetch_add(1, Ordering::Relaxed);
        match ks.policy() {
            Policy::WriteThrough | Policy::Invalidate => {
                // Boxed: this path waits for a database commit anyway, and its future would
                // otherwise enlarge every write-back write's.
                Box::pin(self.apply_through(route, write, copy_deadline, now)).await
            }
            Policy::WriteBack => {
                let buffer = ks
                    .buffer
                    .as_ref()
                    .expect("write-back keyspaces always have a buffer");
                // Full: wait for room (boxed, like every rarely taken wait on this path).
                let wait_for_room = || async {
                    Box::pin(buffer.reserve(&route.cache_key, ks.config.backpressure_timeout))
                        .await
                        .map_err(|ReserveError::Full| SluiceError::BufferFull(ks.name.clone()))
                };
                let ack = if self.journal.durability() != crate::config::Durability::None {
                    // A journal out of service (a failed write or fsync) makes nothing durable
                    // any more: refuse before the write reaches the buffer or the cache.
                    if let Some(e) = self.journal.health().error() {
                        return Err(SluiceError::Journal(e.to_string()));
                    }
                    let reservation = match buffer.try_reserve(&route.cache_key) {
                        Some(reservation) => reservation,
                        None => wait_for_room().await?,
                    };
                    let seq = self.next_seq(true);
                    // Queue the record under the key lock (so the journal holds one key's writes
                    // in sequence order) but wait for its fsync only after the lock is released,
                    // so writers of a hot key share one group commit.
                    let ack = self.journal.append(JournalRecord {
                        seq,
                        keyspace: ks.name.clone(),
                        db: route.cache_key.db,
                        key: route.cache_key.key.clone(),
                        op: JournalOp::Write(write.clone()),
                    });
                    // Refused at once (the journal failed since the check above, or is closed):
                    // undo the reservation, so the write never shows.
                    if let Some(e) = ack.failed_at_once() {
                        let error = SluiceError::Journal(e.to_string());
                        buffer.release(reservation);
                        self.unbuffered.lock().remove(&seq);
                        return Err(error);
                    }
                    buffer.insert(reservation, &route.cache_key, seq, write.clone(), now.ms());
                    self.unbuffered.lock().remove(&seq);
                    Some(ack)
                } else {
                    // No journal record between reserving room and buffering: one critical
                    // section for both.
                    let seq = self.next_seq(false);
                    if let Err(write) =
                        buffer.try_insert(&route.cache_key, seq, write.clone(), || now.ms())
                    {
                        let reservation = wait_for_room().await?;
                        // A new number: drains may have begun while this write waited.
                        let seq = self.next_seq(false);
                        buffer.insert(reservation, &route.cache_key, seq, write, now.ms());
                    }
                    None
                };
                self.locks.bump(route.stripe);
                match &write {
                    StoreWrite::Upsert { value, expires_at } => {
                        self.install(route, value, *expires_at, copy_deadline, now)
                            .await
                    }
                    StoreWrite::Delete => self.evict(route).await,
                }
                Ok(ack.map(PendingDurability))
            }
        }
    }

    /// The write-through / invalidate half of [`Engine::apply`]: the store first (through the
    /// group committer), then the cache.
    async fn apply_through(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        let ks = route.ks;
        let op = StoreOp {
            target: ks.target(route.cache_key.db),
            key: ks.store_key(&route.cache_key.key),
            write: write.clone(),
        };
        let outcome = match self.committer.commit(op).await {
            Ok(outcome) => outcome,
            // The committer stopped with the engine before taking the write, so
            // nothing reached the store and the cache is untouched.
            Err(group_commit::Stopped) => return Err(SluiceError::ShuttingDown),
        };
        self.locks.bump(route.stripe);
        match outcome {
            Ok(written) => {
                ks.counters.rows_stored.fetch_add(1, Ordering::Relaxed);
                match (&write, ks.policy()) {
                    (StoreWrite::Upsert { value, expires_at }, Policy::WriteThrough) => {
                        // A typed column may store another text form than was sent: cache
                        // what the database holds, as the commit reported it or, from a
                        // backend that cannot report it, read back under the key lock.
                        let cached = if !ks.stores_different_text() {
                            Some(value.clone())
                        } else if let Some(stored) = written.stored {
                            Some(stored)
                        } else {
                            let target = ks.target(route.cache_key.db);
                            let store_key = ks.store_key(&route.cache_key.key);
                            match self.store.read(&target, &store_key).await {
                                Ok(Some(stored)) => Some(stored.value),
                                _ => None,
                            }
                        };
                        match cached {
                            Some(v) => {
                                self.install(route, &v, *expires_at, copy_deadline, now)
                                    .await
                            }
                            None => self.evict(route).await,
                        }
                    }
                    _ => self.evict(route).await,
                }
                Ok(None)
            }
            Err(e) => {
                self.evict(route).await;
                self.note_store_error(ks, &e);
                Err(SluiceError::store(&ks.name, e))
            }
        }
    }

    /// Hands out the next sequence number. With a durable journal the number enters
    /// `unbuffered` in the same critical section, so the checkpoint can never pass it before
    /// it is buffered.
    fn next_seq(&self, track: bool) -> u64 {
        if track {
            let mut unbuffered = self.unbuffered.lock();
            let seq = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
            unbuffered.insert(seq);
            seq
        } else {
            self.seq.fetch_add(1, Ordering::SeqCst) + 1
        }
    }

    /// Caches a value just written; on a cache failure the copy is removed instead, so the
    /// cache can never serve a value older than the store's.
    async fn install(
        &self,
        route: &Route<'_>,
        value: &Bytes,
        expires_at: Option<u64>,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) {
        let ttl_deadline = route.ks.cache_ttl_ms().map(|t| now.ms().saturating_add(t));
        let cache_until = crate::tiers::cache::earlier(ttl_deadline, copy_deadline);
        if let Err(e) = self
            .cache_put(&route.cache_key, value, expires_at, cache_until)
            .await
        {
            warn!(keyspace = %route.ks.name, "cache write failed, invalidating: {e}");
            self.evict(route).await;
        }
    }

    async fn evict(&self, route: &Route<'_>) {
        if let Err(e) = self.cache_remove(&route.cache_key).await {
            warn!(keyspace = %route.ks.name, "cache invalidation failed: {e}");
        }
    }

    // The three cache calls of the hot path: straight into an in-process cache, through the
    // trait's futures otherwise.
    async fn cache_get(&self, key: &CacheKey) -> Result<Option<CachedValue>, CacheError> {
        match self.cache.local() {
            Some(local) => Ok(local.get_now(key)),
            None => self.cache.get(key).await,
        }
    }

    /// Takes the parts by reference: an in-process cache copies them itself, so only a remote
    /// cache needs an owned [`CachedValue`].
    async fn cache_put(
        &self,
        key: &CacheKey,
        value: &Bytes,
        expires_at: Option<u64>,
        cache_until: Option<u64>,
    ) -> Result<(), CacheError> {
        match self.cache.local() {
            Some(local) => {
                local.put_now(key, value, expires_at, cache_until);
                Ok(())
            }
            None => {
                let copy = CachedValue {
                    value: value.clone(),
                    expires_at,
                    cache_until,
                };
                self.cache.put(key.clone(), copy).await
            }
        }
    }

    async fn cache_remove(&self, key: &CacheKey) -> Result<(), CacheError> {
        match self.cache.local() {
            Some(local) => {
                local.remove_now(key);
                Ok(())
            }
            None => self.cache.remove(key).await,
        }
    }

    fn note_store_error(&self, ks: &Keyspace, e: &StoreError) {
        ks.counters.store_errors.fetch_add(1, Ordering::Relaxed);
        *ks.counters.last_error.lock() = Some(e.message.clone());
    }
}

/// A write-back write whose journal record may not be durable yet.
#[must_use]
pub(crate) struct PendingDurability(crate::tiers::journal::JournalAck);

/// What [`Engine::apply`] leaves to wait for after the key lock is released.
pub(crate) type Applied = Option<PendingDurability>;

tokio::task_local! {
    static DEFERRED: std::cell::RefCell<Vec<crate::tiers::journal::JournalAck>>;
}

/// Waits until an applied write is as durable as the journal promises, or, inside
/// [`with_deferred_durability`], hands the wait to the caller's batch.
pub(crate) async fn durable(applied: Applied) -> Result<(), SluiceError> {
    let Some(PendingDurability(ack)) = applied else {
        return Ok(());
    };
    let mut slot = Some(ack);
    let deferred = DEFERRED
        .try_with(|d| {
            if let Some(ack) = slot.take() {
                d.borrow_mut().push(ack);
            }
        })
        .is_ok();
    match slot {
        Some(ack) if !deferred => ack.await.map_err(|e| SluiceError::Journal(e.to_string())),
        _ => Ok(()),
    }
}

/// Journal acknowledgements collected by [`with_deferred_durability`].
#[must_use = "the writes are not durable until the batch is awaited"]
pub struct DurabilityBatch(Vec<crate::tiers::journal::JournalAck>);

impl DurabilityBatch {
    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Waits until every collected write is durable. On an error, none of the writes of the
    /// batch may be acknowledged.
    pub async fn wait(self) -> Result<(), SluiceError> {
        let mut first_error = None;
        for ack in self.0 {
            if let Err(e) = ack.await {
                first_error.get_or_insert(SluiceError::Journal(e.to_string()));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs `work` with write-back writes returning as soon as they are buffered and queued in
/// the journal; their acknowledgements come back as a batch that the caller must await before
/// telling any client the writes succeeded. A pipelining server uses this to pay one group
/// commit per pipeline instead of one per command, as Redis does with `appendfsync always`.
pub async fn with_deferred_durability<F: std::future::Future>(
    work: F,
) -> (F::Output, DurabilityBatch) {
    with_durability_scope(async move {
        let out = work.await;
        (out, take_deferred_durability())
    })
    .await
}

/// Runs `work` (typically a whole client connection) in a scope where write-back writes
/// return as soon as they are buffered and queued in the journal, as inside
/// [`with_deferred_durability`]; the caller collects their acknowledgements with
/// [`take_deferred_durability`] and must await them before acknowledging those writes.
/// One scope per connection instead of one per pipeline keeps the per-request cost down.
pub async fn with_durability_scope<F: std::future::Future>(work: F) -> F::Output {
    DEFERRED
        .scope(std::cell::RefCell::new(Vec::new()), work)
        .await
}

/// The acknowledgements deferred since the last call, inside [`with_durability_scope`];
/// empty outside one (there, writes wait for their own durability).
pub fn take_deferred_durability() -> DurabilityBatch {
    DurabilityBatch(
        DEFERRED
            .try_with(|d| std::mem::take(&mut *d.borrow_mut()))
            .unwrap_or_default(),
    )
}

fn live(value: Bytes, expires_at: Option<u64>, now: &OpTime<'_>) -> Option<Entry> {
    if expires_at.is_some_and(|e| e < now.ms()) {
        None
    } else {
        Some(Entry { value, expires_at })
    }
}

/// Exponential backoff with jitter, capped.
pub(crate) struct Backoff {
    next: Duration,
    base: Duration,
    cap: Duration,
    failing: bool,
}

impl Backoff {
    pub(crate) fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            next: base,
            base,
            cap,
            failing: false,
        }
    }

    /// Records a failure and returns how long to wait before retrying.
    pub(crate) fn fail(&mut self) -> Duration {
        self.failing = true;
        let jitter = rand::random::<f64>() * 0.5 + 0.75;
        let wait = self.next.mul_f64(jitter).min(self.cap);
        self.next = (self.next * 2).min(self.cap);
        wait
    }

    pub(crate) fn succeed(&mut self) {
        self.failing = false;
        self.next = self.base;
    }

    pub(crate) fn failing(&self) -> bool {
        self.failing
    }
}
