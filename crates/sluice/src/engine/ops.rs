//! The library API: Redis-shaped operations on [`Sluice`].

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;

use super::deadletter::{DeadLetter, DeadLetterSelector};
use super::{durable, Engine, Entry, ShutdownReport};
use crate::config::{Config, Durability, Policy};
use crate::error::SluiceError;
use crate::numeric::{self, FloatIncrError};
use crate::tiers::cache::CacheStats;
use crate::tiers::journal::{ClearScope, JournalRecord, JournalStats};
use crate::tiers::store::StoreWrite;
use crate::Sluice;

/// When SET writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetCondition {
    /// Always.
    #[default]
    Always,
    /// Only if the key does not exist (NX).
    IfAbsent,
    /// Only if the key exists (XX).
    IfPresent,
}

/// What SET does to the key's expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetExpiry {
    /// Remove any expiry.
    #[default]
    Clear,
    /// Keep the current expiry (KEEPTTL).
    Keep,
    /// Expire at this Unix ms (EX, PX, EXAT, PXAT). On a mapped keyspace it bounds only the
    /// cached copy.
    At(u64),
}

/// Options of [`Sluice::set`].
#[derive(Debug, Clone, Copy, Default)]
pub struct SetOptions {
    /// NX / XX.
    pub condition: SetCondition,
    /// Expiry handling.
    pub expiry: SetExpiry,
    /// Return the previous value (GET).
    pub return_old: bool,
}

/// Result of [`Sluice::set`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetOutcome {
    /// Whether the value was written (false when NX/XX said no).
    pub written: bool,
    /// The previous value, when asked for.
    pub old: Option<Bytes>,
}

/// Conditions of EXPIRE (Redis 7 NX, XX, GT, LT); several may be combined as Redis allows
/// (XX with GT or LT). A key without expiry counts as an infinite TTL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExpireCondition {
    /// NX: only if the key has no expiry.
    pub if_none: bool,
    /// XX: only if the key has an expiry.
    pub if_some: bool,
    /// GT: only if the new expiry is later.
    pub if_greater: bool,
    /// LT: only if the new expiry is earlier.
    pub if_less: bool,
}

impl ExpireCondition {
    /// No condition.
    pub const ALWAYS: ExpireCondition = ExpireCondition {
        if_none: false,
        if_some: false,
        if_greater: false,
        if_less: false,
    };

    fn allows(&self, current: Option<i64>, at_ms: i64) -> bool {
        !(self.if_none && current.is_some()
            || self.if_some && current.is_none()
            || self.if_greater && current.is_none_or(|c| at_ms <= c)
            || self.if_less && current.is_some_and(|c| at_ms >= c))
    }
}

/// A key's remaining lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// No such key.
    Missing,
    /// The key has no expiry.
    Persistent,
    /// The key expires at this Unix ms.
    ExpiresAt(u64),
}

/// What an [`Sluice::update`] closure decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mutation {
    /// Leave the key as it is.
    Keep,
    /// Write this value and expiry.
    Put {
        /// New value.
        value: Bytes,
        /// Unix ms expiry, or none.
        expires_at: Option<u64>,
    },
    /// Delete the key.
    Delete,
}

impl From<Mutation> for Option<StoreWrite> {
    fn from(m: Mutation) -> Self {
        match m {
            Mutation::Keep => None,
            Mutation::Put { value, expires_at } => Some(StoreWrite::Upsert { value, expires_at }),
            Mutation::Delete => Some(StoreWrite::Delete),
        }
    }
}

/// A keyspace as SLUICE.KEYSPACES and INFO show it.
#[derive(Debug, Clone)]
pub struct KeyspaceInfo {
    /// Name.
    pub name: String,
    /// Template, or `*`.
    pub template: String,
    /// Mapped table, or `sluice_kv`.
    pub table: String,
    /// Policy.
    pub policy: Policy,
    /// Journal durability in force.
    pub durability: Durability,
    /// Buffered entries.
    pub buffered: usize,
    /// Buffered bytes.
    pub buffered_bytes: usize,
    /// Age in ms of the oldest buffered write.
    pub oldest_buffered_age_ms: u64,
    /// Writes the keyspace took, including those that then failed (see
    /// [`KeyspaceCounters::writes`](crate::engine::KeyspaceCounters::writes)).
    pub writes: u64,
    /// Flush transactions.
    pub flushes: u64,
    /// Rows stored.
    pub rows_stored: u64,
    /// Store errors.
    pub store_errors: u64,
    /// Flush retries.
    pub retries: u64,
    /// Dead letters currently parked.
    pub dead_letters: u64,
    /// Duration of the last flush in µs.
    pub last_flush_us: u64,
    /// The last store error.
    pub last_error: Option<String>,
}

impl Sluice {
    /// Opens the engine with the system clock and the tiers `config` names.
    pub async fn open(config: Config) -> Result<Sluice, crate::error::OpenError> {
        super::SluiceBuilder::new(config).open().await
    }

    /// A builder, to inject a clock or tiers.
    pub fn builder(config: Config) -> super::SluiceBuilder {
        super::SluiceBuilder::new(config)
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

    /// The value of `key`, seeing every acknowledged write (buffered ones included).
    pub async fn get(&self, db: u8, key: Bytes) -> Result<Option<Bytes>, SluiceError> {
        Ok(self.get_entry(db, key).await?.map(|e| e.value))
    }

    /// The value and expiry of `key`.
    pub async fn get_entry(&self, db: u8, key: Bytes) -> Result<Option<Entry>, SluiceError> {
        let engine = self.engine();
        engine.read(&engine.route(db, key)).await
    }

    /// Atomic read-modify-write of one key: `f` sees the current entry and decides.
    pub async fn update<T>(
        &self,
        db: u8,
        key: &Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        self.update_owned(db, key.clone(), f).await
    }

    /// [`Sluice::update`] taking the key by value, for callers that own it.
    async fn update_owned<T>(
        &self,
        db: u8,
        key: Bytes,
        f: impl FnOnce(Option<Entry>) -> Result<(Mutation, T), SluiceError>,
    ) -> Result<T, SluiceError> {
        let engine = self.engine();
        let route = engine.route(db, key);
        let guard = engine.locks.lock(route.stripe).await;
        let now = engine.op_time();
        let current = engine.read_at(&route, &now).await?;
        let (mutation, result) = f(current)?;
        let applied = match Option::<StoreWrite>::from(mutation) {
            Some(write) => engine.apply_at(&route, write, &now).await?,
            None => None,
        };
        drop(guard);
        durable(applied).await?;
        Ok(result)
    }

    /// SET with NX / XX, an expiry, KEEPTTL and GET.
    pub async fn set(
        &self,
        db: u8,
        key: Bytes,
        value: Bytes,
        opts: SetOptions,
    ) -> Result<SetOutcome, SluiceError> {
        let engine = self.engine();
        let route = engine.route(db, key);
        let guard = engine.locks.lock(route.stripe).await;
        let now = engine.op_time();
        let needs_read = opts.condition != SetCondition::Always
            || opts.return_old
            || opts.expiry == SetExpiry::Keep;
        let current = if needs_read {
            engine.read_at(&route, &now).await?
        } else {
            None
        };
        let old = if opts.return_old {
            current.as_ref().map(|e| e.value.clone())
        } else {
            None
        };
        let allowed = match opts.condition {
            SetCondition::Always => true,
            SetCondition::IfAbsent => current.is_none(),
            SetCondition::IfPresent => current.is_some(),
        };
        if !allowed {
            return Ok(SetOutcome {
                written: false,
                old,
            });
        }
        let expires_at = match opts.expiry {
            SetExpiry::Clear => None,
            SetExpiry::Keep => current.and_then(|e| e.expires_at),
            SetExpiry::At(t) => Some(t),
        };
        let applied = engine
            .apply_at(&route, StoreWrite::Upsert { value, expires_at }, &now)
            .await?;
        drop(guard);
        durable(applied).await?;
        Ok(SetOutcome { written: true, old })
    }

    /// Deletes `key`; true if it existed.
    pub async fn del(&self, db: u8, key: &Bytes) -> Result<bool, SluiceError> {
        self.update(db, key, |cur| {
            Ok(match cur {
                Some(_) => (Mutation::Delete, true),
                None => (Mutation::Keep, false),
            })
        })
        .await
    }

    /// INCRBY / DECRBY: atomic in the engine; under write-back, repeated increments of one key
    /// coalesce into one row write per flush.
    pub async fn incr_by(&self, db: u8, key: Bytes, delta: i64) -> Result<i64, SluiceError> {
        self.update_owned(db, key, |cur| {
            let (current, expires_at) = match &cur {
                Some(e) => (
                    numeric::parse_strict_i64(&e.value).ok_or(SluiceError::NotInteger)?,
                    e.expires_at,
                ),
                None => (0, None),
            };
            let next = current.checked_add(delta).ok_or(SluiceError::Overflow)?;
            Ok((
                Mutation::Put {
                    value: numeric::int_bytes(next),
                    expires_at,
                },
                next,
            ))
        })
        .await
    }

    /// INCRBYFLOAT, computed and printed exactly as Redis does.
    pub async fn incr_by_float(
        &self,
        db: u8,
        key: &Bytes,
        increment: &[u8],
    ) -> Result<Bytes, SluiceError> {
        self.update(db, key, |cur| {
            let next = numeric::incr_by_float(cur.as_ref().map(|e| &e.value[..]), increment)
                .map_err(|e| match e {
                    FloatIncrError::NotFloat => SluiceError::NotFloat,
                    FloatIncrError::NanOrInfinity => SluiceError::NanOrInfinity,
                })?;
            let next = Bytes::from(next);
            Ok((
                Mutation::Put {
                    value: next.clone(),
                    expires_at: cur.and_then(|e| e.expires_at),
                },
                next,
            ))
        })
        .await
    }

    /// Sets the expiry of `key` to `at_ms` (Unix ms) under a Redis 7 condition; an expiry in
    /// the past deletes the key. On a mapped keyspace only the cached copy is bounded.
    pub async fn expire(
        &self,
        db: u8,
        key: &Bytes,
        at_ms: i64,
        condition: ExpireCondition,
    ) -> Result<bool, SluiceError> {
        let now = self.now_ms() as i64;
        let engine = self.engine();
        if !engine.keyspace_of(db, key).is_builtin() {
            return self.expire_cached_copy(db, key, at_ms, now).await;
        }
        self.update(db, key, |cur| {
            let Some(entry) = cur else {
                return Ok((Mutation::Keep, false));
            };
            let current = entry.expires_at.map(|e| e as i64);
            if !condition.allows(current, at_ms) {
                return Ok((Mutation::Keep, false));
            }
            if at_ms <= now {
                return Ok((Mutation::Delete, true));
            }
            Ok((
                Mutation::Put {
                    value: entry.value,
                    expires_at: Some(at_ms as u64),
                },
                true,
            ))
        })
        .await
    }

    async fn expire_cached_copy(
        &self,
        db: u8,
        key: &Bytes,
        at_ms: i64,
        now: i64,
    ) -> Result<bool, SluiceError> {
        let engine = self.engine();
        let route = engine.route(db, key.clone());
        let _guard = engine.locks.lock(route.stripe).await;
        let Some(entry) = engine.read(&route).await? else {
            return Ok(false);
        };
        engine.locks.bump(route.stripe);
        if at_ms <= now {
            let _ = engine.cache.remove(&route.cache_key).await;
        } else {
            let copy = crate::tiers::cache::CachedValue {
                value: entry.value,
                expires_at: None,
                cache_until: Some(at_ms as u64),
            };
            let _ = engine.cache.put(route.cache_key.clone(), copy).await;
        }
        Ok(true)
    }

    /// The remaining lifetime of `key`.
    pub async fn ttl(&self, db: u8, key: &Bytes) -> Result<KeyTtl, SluiceError> {
        Ok(match self.get_entry(db, key.clone()).await? {
            None => KeyTtl::Missing,
            Some(Entry {
                expires_at: None, ..
            }) => KeyTtl::Persistent,
            Some(Entry {
                expires_at: Some(at),
                ..
            }) => KeyTtl::ExpiresAt(at),
        })
    }

    /// Removes the expiry of `key`; true if it had one.
    pub async fn persist(&self, db: u8, key: &Bytes) -> Result<bool, SluiceError> {
        self.update(db, key, |cur| {
            Ok(match cur {
                Some(Entry {
                    value,
                    expires_at: Some(_),
                }) => (
                    Mutation::Put {
                        value,
                        expires_at: None,
                    },
                    true,
                ),
                _ => (Mutation::Keep, false),
            })
        })
        .await
    }

    /// Sets several keys, holding all their locks so no reader of the engine's writers sees
    /// a partial interleaving with another MSET.
    pub async fn mset(&self, db: u8, pairs: Vec<(Bytes, Bytes)>) -> Result<(), SluiceError> {
        self.set_all(db, pairs, false).await.map(drop)
    }

    /// Sets several keys only if none exists; true if they were set.
    pub async fn msetnx(&self, db: u8, pairs: Vec<(Bytes, Bytes)>) -> Result<bool, SluiceError> {
        self.set_all(db, pairs, true).await
    }

    /// MSET / MSETNX: under every key's lock, optionally check that none exists, then write
    /// them all; durability is awaited after the locks are released.
    async fn set_all(
        &self,
        db: u8,
        pairs: Vec<(Bytes, Bytes)>,
        only_if_none_exists: bool,
    ) -> Result<bool, SluiceError> {
        let engine = self.engine();
        let stripes = pairs
            .iter()
            .map(|(k, _)| engine.locks.stripe(db, k))
            .collect();
        let guards = engine.locks.lock_many(stripes).await;
        if only_if_none_exists {
            for (key, _) in &pairs {
                if engine.read(&engine.route(db, key.clone())).await?.is_some() {
                    return Ok(false);
                }
            }
        }
        let mut pending = Vec::with_capacity(pairs.len());
        for (key, value) in pairs {
            let route = engine.route(db, key);
            let write = StoreWrite::Upsert {
                value,
                expires_at: None,
            };
            pending.push(engine.apply(&route, write).await?);
        }
        drop(guards);
        for applied in pending {
            durable(applied).await?;
        }
        Ok(true)
    }

    /// RENAME / RENAMENX: `None` if `src` does not exist; `Some(false)` if `only_if_absent`
    /// and `dst` exists. The value keeps its expiry.
    pub async fn rename(
        &self,
        db: u8,
        src: &Bytes,
        dst: &Bytes,
        only_if_absent: bool,
    ) -> Result<Option<bool>, SluiceError> {
        let engine = self.engine();
        let stripes = vec![engine.locks.stripe(db, src), engine.locks.stripe(db, dst)];
        let guards = engine.locks.lock_many(stripes).await;
        let src_route = engine.route(db, src.clone());
        let Some(entry) = engine.read(&src_route).await? else {
            return Ok(None);
        };
        if src == dst {
            return Ok(Some(!only_if_absent));
        }
        let dst_route = engine.route(db, dst.clone());
        if only_if_absent && engine.read(&dst_route).await?.is_some() {
            return Ok(Some(false));
        }
        let first = engine
            .apply(
                &dst_route,
                StoreWrite::Upsert {
                    value: entry.value,
                    expires_at: entry.expires_at,
                },
            )
            .await?;
        let second = engine.apply(&src_route, StoreWrite::Delete).await?;
        drop(guards);
        durable(first).await?;
        durable(second).await?;
        Ok(Some(true))
    }

    /// Every live key of `db`, sorted: buffered writes, cached copies and table rows alike;
    /// keys of mapped keyspaces are rebuilt from their templates.
    pub async fn keys(&self, db: u8) -> Result<Vec<Bytes>, SluiceError> {
        let engine = self.engine();
        let now = engine.now();
        let mut keys = BTreeSet::new();
        for ks in &engine.keyspaces {
            if !ks.is_builtin() && db != 0 {
                continue;
            }
            // Buffer first, then the store: an entry flushed in between is in the store.
            let buffered = ks
                .buffer
                .as_ref()
                .map(|b| b.snapshot(db))
                .unwrap_or_default();
            let stored = engine
                .store
                .scan_keys(&ks.target(db), now)
                .await
                .map_err(|e| SluiceError::store(&ks.name, e))?;
            for capture in stored {
                let key = match &ks.template {
                    Some(t) => Bytes::from(t.render(&capture)),
                    None => capture,
                };
                if engine.keyspace_of(db, &key).id == ks.id {
                    keys.insert(key);
                }
            }
            for (key, write) in buffered {
                match write {
                    StoreWrite::Upsert { expires_at, .. }
                        if expires_at.is_none_or(|e| e >= now) =>
                    {
                        keys.insert(key);
                    }
                    _ => {
                        keys.remove(&key);
                    }
                }
            }
        }
        Ok(keys.into_iter().collect())
    }

    /// The number of live keys in `db`.
    pub async fn dbsize(&self, db: u8) -> Result<u64, SluiceError> {
        Ok(self.keys(db).await?.len() as u64)
    }

    /// FLUSHDB (`Some(db)`) or FLUSHALL (`None`). Refused when it would empty a mapped table
    /// whose keyspace does not set `allow_flush = true`.
    pub async fn flush_db(&self, db: Option<u8>) -> Result<(), SluiceError> {
        let engine = self.engine();
        let touches_mapped = db.is_none_or(|d| d == 0);
        if touches_mapped {
            if let Some(ks) = engine
                .keyspaces
                .iter()
                .find(|k| !k.is_builtin() && !k.config.allow_flush)
            {
                return Err(SluiceError::Refused(format!(
                    "flush refused: keyspace '{}' maps table '{}'; set allow_flush = true on it to let FLUSHDB/FLUSHALL delete its rows",
                    ks.name,
                    ks.mapped.as_ref().map(|m| m.table.as_str()).unwrap_or("")
                )));
            }
        }
        // The clear must be journaled, or a restart would replay the writes it removed:
        // refuse before anything is cleared while the journal is out of service.
        if engine.keyspaces.iter().any(|k| k.buffer.is_some())
            && engine.journal.durability() != Durability::None
        {
            if let Some(e) = engine.journal.health().error() {
                return Err(SluiceError::Journal(e.to_string()));
            }
        }
        let dbs: Vec<u8> = match db {
            Some(d) => vec![d],
            None => (0..16).collect(),
        };
        for ks in &engine.keyspaces {
            if !ks.is_builtin() && !touches_mapped {
                continue;
            }
            let _flushing = ks.flush_lock.lock().await;
            if let Some(buffer) = &ks.buffer {
                buffer.clear_db(if ks.is_builtin() { db } else { None });
            }
            if ks.is_builtin() {
                for d in &dbs {
                    engine
                        .store
                        .clear(&ks.target(*d))
                        .await
                        .map_err(|e| SluiceError::store(&ks.name, e))?;
                }
            } else {
                engine
                    .store
                    .clear(&ks.target(0))
                    .await
                    .map_err(|e| SluiceError::store(&ks.name, e))?;
            }
            if ks.buffer.is_some() && engine.journal.durability() != Durability::None {
                // Older journal records of this keyspace must not come back on replay.
                let seq = engine.seq.fetch_add(1, Ordering::SeqCst) + 1;
                engine
                    .journal
                    .append(JournalRecord::clear(
                        seq,
                        ks.name.clone(),
                        db.map_or(ClearScope::AllDbs, ClearScope::Db),
                    ))
                    .await
                    .map_err(|e| SluiceError::Journal(e.to_string()))?;
            }
        }
        let _ = engine.cache.clear(db).await;
        engine.locks.bump_all();
        Ok(())
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
        let deadline = self.engine.config.server.shutdown_timeout;
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
            .map(|k| super::open::describe_keyspace(k))
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
                .and_then(|b| b.lookup(&route.cache_key))
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
