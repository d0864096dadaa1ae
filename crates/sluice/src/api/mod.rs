//! The library API: [`Sluice`], a thin public handle over the private engine, and its
//! Redis-shaped operations, one file per family (`strings.rs`, `keys.rs`), with their option
//! and outcome types in `types.rs`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, Durability};
use crate::engine::deadletter::{DeadLetter, DeadLetterSelector};
use crate::engine::{durable, Engine, ShutdownReport, SluiceBuilder};
use crate::error::SluiceError;
use crate::tiers::cache::CacheStats;
use crate::tiers::journal::JournalStats;

mod keys;
mod strings;
mod types;

pub use types::{
    ExpireCondition, KeyTtl, KeyspaceInfo, Mutation, SetCondition, SetExpiry, SetOptions,
    SetOutcome,
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

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.engine.config
    }

    /// The engine clock, in Unix ms.
    pub fn now_ms(&self) -> u64 {
        self.engine.now()
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
                    table: ks
                        .mapped
                        .as_ref()
                        .map(|m| format!("{}.{}", m.table, m.value_column))
                        .unwrap_or_else(|| "sluice_kv".into()),
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
                    last_error: c.last_error.lock().clone(),
                }
            })
            .collect()
    }

    /// One line per keyspace: `name (template -> table.column, policy)`.
    pub fn keyspace_summaries(&self) -> Vec<String> {
        self.engine
            .keyspaces
            .iter()
            .map(|k| crate::engine::describe_keyspace(k))
            .collect()
    }

    /// Cache sizes.
    pub fn cache_stats(&self) -> CacheStats {
        self.engine.cache.stats()
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
            let guard = engine.locks.lock(route.stripe).await;
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
