//! The library API: [`Sluice`], a thin public handle over the private engine.
//!
//! Its Redis-shaped operations are written once on [`Access`] (`access.rs`), one file per
//! family (`strings.rs`, `keys.rs`, `hashes.rs`, `sets.rs`, `zsets.rs`, `lists.rs`, `streams.rs`), with their option and outcome types in `types.rs`; an
//! `Access` runs them directly on the engine or inside a [`Transaction`] (`transaction.rs`).
//! WATCH is a [`WatchSet`] (`watch.rs`). `Sluice` forwards the common operations to its direct
//! `Access`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::config::{Config, Durability};
use crate::engine::deadletter::{DeadLetter, DeadLetterSelector};
use crate::engine::{durable, Engine, ShutdownReport, SluiceBuilder};
use crate::error::SluiceError;
use crate::metrics::{EngineMetrics, LatencyMonitor};
use crate::model::Entry;
use crate::tiers::cache::CacheStats;
use crate::tiers::journal::JournalStats;

mod access;
mod hashes;
mod keys;
mod lists;
mod sets;
mod streams;
mod strings;
mod transaction;
mod types;
mod watch;
mod zsets;

pub use access::{Access, Later};
pub use hashes::HashEdit;
pub use lists::MovedElement;
pub use sets::{MovedMember, StoredSet};
pub use streams::StreamAdded;
pub use transaction::Transaction;
pub use watch::WatchSet;
pub use zsets::ZSetInputs;

pub use types::{
    ExpireCondition, KeyTtl, KeyspaceInfo, KeyspaceSetting, KeyspaceSettings, Mutation,
    SetCondition, SetExpiry, SetOptions, SetOutcome, Stored,
};

/// A handle to the engine. Cheap to clone; every clone shares the same tiers.
#[derive(Clone)]
pub struct Sluice {
    engine: Arc<Engine>,
}

impl Sluice {
    /// Wraps an opened engine.
    pub(crate) fn new(engine: Arc<Engine>) -> Sluice {
        Sluice { engine }
    }

    /// Opens the engine with the system clock and the tiers `config` names.
    pub async fn open(config: Config) -> Result<Sluice, crate::error::OpenError> {
        SluiceBuilder::new(config).open().await
    }

    /// A builder, to inject a clock or tiers.
    pub fn builder(config: Config) -> SluiceBuilder {
        SluiceBuilder::new(config)
    }

    fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Runs operations directly on the engine: each locks its keys and is durable (as the
    /// journal promises) before it returns.
    pub fn access(&self) -> Access<'_> {
        Access::direct(&self.engine)
    }

    /// Begins a transaction holding the locks of `keys` (database and key), taken in one
    /// global order: operations on its [`Transaction::access`] are staged and applied all or
    /// none by [`Transaction::commit`]. A key held by a busy script fails it with
    /// [`SluiceError::Busy`].
    pub async fn transaction<'k>(
        &self,
        keys: impl IntoIterator<Item = (u8, &'k [u8])>,
    ) -> Result<Transaction, SluiceError> {
        Transaction::begin(self.engine.clone(), keys).await
    }

    /// An empty WATCH set for one connection.
    pub fn watch_set(&self) -> WatchSet {
        WatchSet::new(self.engine.clone())
    }

    /// Whether this node may serve keys that only it serves (`[cluster] nodes`): true unless
    /// its journal's claim on the node name ran out (a node paused or cut off past its
    /// lease, whose journal another node may have taken over, and whose cached copies may
    /// therefore be stale). Always true without `[cluster]`. One atomic load and a clock read.
    pub fn may_serve(&self) -> bool {
        self.engine.journal.may_store()
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// The engine clock, in Unix ms.
    pub fn now_ms(&self) -> u64 {
        self.engine.now()
    }

    /// What the journal's servers say of it (`[cluster]`: the stream's messages, bytes,
    /// leader and replicas), as INFO pairs; empty for the local journal. Waits at most 1 s.
    pub async fn journal_remote_state(&self) -> Vec<(&'static str, String)> {
        self.engine.journal.remote_state().await
    }

    /// The store's description (never a password).
    pub fn store_description(&self) -> String {
        self.engine.store.describe()
    }

    /// Returns once every write-back write acknowledged before the call is stored, or with
    /// the first store error.
    pub async fn flush(&self) -> Result<(), SluiceError> {
        self.engine.flush_all().await
    }

    /// Like [`Sluice::flush`], for one keyspace.
    pub async fn flush_keyspace(&self, name: &str) -> Result<(), SluiceError> {
        let engine = self.engine();
        let ks = engine
            .keyspaces
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| SluiceError::NoSuchKeyspace(name.to_string()))?;
        engine
            .drain_keyspace(ks)
            .await
            .map_err(|e| SluiceError::store(&ks.name, e))?;
        engine.advance_checkpoint().await;
        Ok(())
    }

    /// Stops accepting writes and drains the buffers within `[server] shutdown_timeout`.
    pub async fn shutdown(&self) -> ShutdownReport {
        let deadline = self.engine.config.shutdown_timeout;
        self.shutdown_within(deadline).await
    }

    /// Stops accepting writes and drains the buffers within `deadline`.
    pub async fn shutdown_within(&self, deadline: Duration) -> ShutdownReport {
        self.engine.shutdown(deadline).await
    }

    /// Every keyspace with its counters, in match order (built-in last).
    pub fn keyspaces(&self) -> Vec<KeyspaceInfo> {
        let engine = self.engine();
        let now = engine.now();
        engine
            .keyspaces
            .iter()
            .map(|ks| {
                let c = &ks.counters;
                let buffer = ks.buffer.as_ref();
                KeyspaceInfo {
                    name: ks.name.clone(),
                    template: ks
                        .template
                        .as_ref()
                        .map(|t| t.text())
                        .unwrap_or_else(|| "*".into()),
                    table: ks.table_text(),
                    policy: ks.policy(),
                    durability: engine.journal.durability(),
                    buffered: buffer.map(|b| b.len()).unwrap_or(0),
                    buffered_bytes: buffer.map(|b| b.bytes()).unwrap_or(0),
                    oldest_buffered_age_ms: buffer
                        .and_then(|b| b.oldest_dirty_since())
                        .map(|t| now.saturating_sub(t))
                        .unwrap_or(0),
                    writes: c.writes.load(Ordering::Relaxed),
                    flushes: c.flushes.load(Ordering::Relaxed),
                    rows_stored: c.rows_stored.load(Ordering::Relaxed),
                    store_errors: c.store_errors.load(Ordering::Relaxed),
                    retries: c.retries.load(Ordering::Relaxed),
                    dead_letters: engine.dead_letters.count(&ks.name),
                    last_flush_us: c.last_flush_us.load(Ordering::Relaxed),
                    flush_duration: c.flush.duration.snapshot(),
                    flush_batch: c.flush.batch.snapshot(),
                    last_error: c.last_error.lock().clone(),
                    read_hits: c.read_hits.total(),
                    read_misses: c.read_misses.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    /// The run-time settings of every write-back keyspace, in match order.
    pub fn keyspace_settings(&self) -> Vec<KeyspaceSettings> {
        self.engine()
            .keyspaces
            .iter()
            .filter_map(|ks| {
                let buffer = ks.buffer.as_ref()?;
                Some(KeyspaceSettings {
                    name: ks.name.clone(),
                    flush_interval: ks.flush_interval(),
                    flush_batch: buffer.flush_batch(),
                    max_dirty: buffer.max_dirty(),
                })
            })
            .collect()
    }

    /// Changes a write-back keyspace's setting while it runs: the flusher and writers use the
    /// new value from their next wait or write (a wait under way is measured against a new
    /// interval at once). False if no write-back keyspace has that name.
    pub fn set_keyspace_setting(&self, keyspace: &str, setting: KeyspaceSetting) -> bool {
        let Some(ks) = self
            .engine()
            .keyspaces
            .iter()
            .find(|ks| ks.name == keyspace && ks.buffer.is_some())
        else {
            return false;
        };
        match (setting, &ks.buffer) {
            (KeyspaceSetting::FlushInterval(interval), _) => ks.set_flush_interval(interval),
            (KeyspaceSetting::FlushBatch(n), Some(buffer)) => buffer.set_flush_batch(n),
            (KeyspaceSetting::MaxDirty(n), Some(buffer)) => buffer.set_max_dirty(n),
            (_, None) => return false,
        }
        true
    }

    /// One line per keyspace: `name (template -> table.column, policy)`.
    pub fn keyspace_summaries(&self) -> Vec<String> {
        self.engine
            .keyspaces
            .iter()
            .map(|k| crate::engine::describe_keyspace(k))
            .collect()
    }

    /// Asks the store one cheap question (the built-in table's row of a key no client can
    /// write): `Ok` when the database answered, else the store error. For readiness probes.
    pub async fn probe_store(&self) -> Result<(), SluiceError> {
        let engine = self.engine();
        let builtin = engine
            .keyspaces
            .last()
            .ok_or_else(|| SluiceError::NoSuchKeyspace("default".to_string()))?;
        engine
            .store
            .read(&builtin.target(0), b"\0sluice:readiness-probe")
            .await
            .map(drop)
            .map_err(|e| SluiceError::store(&builtin.name, e))
    }

    /// Cache sizes.
    pub fn cache_stats(&self) -> CacheStats {
        self.engine.cache.stats()
    }

    /// Histograms of store commits and journal fsyncs (read at any time; recorded off
    /// GET/SET's path).
    pub fn metrics(&self) -> &EngineMetrics {
        &self.engine.metrics
    }

    /// The LATENCY monitor: the engine records its slow journal fsyncs, flushes and store
    /// commits there; a front end adds its own events and sets the threshold.
    pub fn latency(&self) -> &LatencyMonitor {
        &self.engine.metrics.latency
    }

    /// Installs where key events no command caused go: expiry, the cache's evictions, rows
    /// changed in the database (keyspace notifications). One sink per engine: `false` if one
    /// was installed already. Events before it is installed are not reported.
    pub fn set_key_event_sink(&self, sink: std::sync::Arc<dyn crate::KeyEventSink>) -> bool {
        self.engine.set_key_event_sink(sink)
    }

    /// The store's connection pool, where its backend reports one (PostgreSQL).
    pub fn store_pool(&self) -> Option<crate::tiers::store::PoolStatus> {
        self.engine.store.pool_status()
    }

    /// Journal sizes, counters and health.
    pub fn journal_stats(&self) -> JournalStats {
        let mut stats = self.engine.journal.stats();
        stats.health = self.engine.journal.health();
        stats
    }

    /// The journal durability in force.
    pub fn durability(&self) -> Durability {
        self.engine.journal.durability()
    }

    /// Parked dead letters, optionally of one keyspace.
    pub fn dead_letters(&self, keyspace: Option<&str>) -> Result<Vec<DeadLetter>, SluiceError> {
        self.engine
            .dead_letters
            .list(keyspace)
            .map_err(SluiceError::from)
    }

    /// The oldest `limit` dead letters, optionally of one keyspace, reading no more of the
    /// registry than that (for a listing polled often, such as the status page).
    pub fn first_dead_letters(
        &self,
        keyspace: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, SluiceError> {
        self.engine
            .dead_letters
            .list_first(keyspace, Some(limit))
            .map_err(SluiceError::from)
    }

    /// Drops the selected dead letters; returns how many.
    pub fn drop_dead_letters(&self, selector: &DeadLetterSelector) -> Result<usize, SluiceError> {
        self.engine
            .dead_letters
            .take(selector)
            .map(|l| l.len())
            .map_err(SluiceError::from)
    }

    /// Writes the selected dead letters again as new writes. A letter whose key has a newer
    /// buffered write is dropped instead, so a retry never brings back an older value.
    pub async fn retry_dead_letters(
        &self,
        selector: &DeadLetterSelector,
    ) -> Result<usize, SluiceError> {
        let engine = self.engine();
        let letters = engine
            .dead_letters
            .take(selector)
            .map_err(SluiceError::from)?;
        let mut retried = 0;
        let mut failed: Vec<DeadLetter> = Vec::new();
        for letter in letters {
            let route = engine.route(letter.db, letter.key.clone());
            let guard = engine.locks.lock_patiently(route.stripe).await;
            let superseded = route
                .ks
                .buffer
                .as_ref()
                .and_then(|b| b.lookup(&route.key))
                .is_some();
            if superseded {
                continue;
            }
            let applied = engine.apply(&route, letter.write.clone()).await;
            drop(guard);
            match applied {
                Ok(applied) => match durable(applied).await {
                    Ok(()) => retried += 1,
                    Err(_) => failed.push(letter),
                },
                Err(_) => failed.push(letter),
            }
        }
        if !failed.is_empty() {
            let _ = engine.dead_letters.park(&failed);
        }
        Ok(retried)
    }
}

/// `Sluice`'s own methods for the common operations: each runs on [`Sluice::access`].
macro_rules! forward {
    ($( $(#[$doc:meta])* fn $name:ident $(<$t:ident>)? ( $($arg:ident : $ty:ty),* ) -> $ret:ty; )*) => {
        impl Sluice {
            $(
                $(#[$doc])*
                pub async fn $name $(<$t>)? (&self, $($arg: $ty),*) -> $ret {
                    self.access().$name($($arg),*).await
                }
            )*
        }
    };
}

forward! {
    /// See [`Access::get`].
    fn get(db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError>;
    /// See [`Access::get_entry`].
    fn get_entry(db: u8, key: Bytes) -> Result<Option<Entry>, SluiceError>;
    /// See [`Access::update`].
    fn update<T>(db: u8, key: &Bytes, f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>) -> Result<T, SluiceError>;
    /// See [`Access::update_string`].
    fn update_string<T>(db: u8, key: &Bytes, f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>) -> Result<T, SluiceError>;
    /// See [`Access::set`].
    fn set(db: u8, key: Bytes, value: Bytes, opts: SetOptions) -> Result<SetOutcome, SluiceError>;
    /// See [`Access::incr_by`].
    fn incr_by(db: u8, key: Bytes, delta: i64) -> Result<i64, SluiceError>;
    /// See [`Access::incr_by_float`].
    fn incr_by_float(db: u8, key: &Bytes, increment: &[u8]) -> Result<Bytes, SluiceError>;
    /// See [`Access::mset`].
    fn mset(db: u8, pairs: Vec<(Bytes, Bytes)>) -> Result<(), SluiceError>;
    /// See [`Access::msetnx`].
    fn msetnx(db: u8, pairs: Vec<(Bytes, Bytes)>) -> Result<bool, SluiceError>;
    /// See [`Access::del`].
    fn del(db: u8, key: &Bytes) -> Result<bool, SluiceError>;
    /// See [`Access::expire`].
    fn expire(db: u8, key: &Bytes, at_ms: i64, condition: ExpireCondition) -> Result<bool, SluiceError>;
    /// See [`Access::ttl`].
    fn ttl(db: u8, key: &Bytes) -> Result<KeyTtl, SluiceError>;
    /// See [`Access::persist`].
    fn persist(db: u8, key: &Bytes) -> Result<bool, SluiceError>;
    /// See [`Access::rename`].
    fn rename(db: u8, src: &Bytes, dst: &Bytes, only_if_absent: bool) -> Result<Option<bool>, SluiceError>;
    /// See [`Access::keys`].
    fn keys(db: u8) -> Result<Vec<Bytes>, SluiceError>;
    /// See [`Access::dbsize`].
    fn dbsize(db: u8) -> Result<u64, SluiceError>;
    /// See [`Access::flush_db`].
    fn flush_db(db: Option<u8>) -> Result<(), SluiceError>;
}
