//! A keyspace at run time: its template, mapped table, policy, buffer and counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::buffer::WriteBackBuffer;
use crate::config::{KeyspaceConfig, Policy};
use crate::error::StoreError;
use crate::keyspace::KeyTemplate;
use crate::metrics::Histogram;
use crate::model::Kind;
use crate::tiers::store::{MappedMembers, MappedRow, MappedTable, Target};

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
    /// Every flush's duration and size.
    pub flush: FlushHistograms,
    /// The last store error, if any.
    pub last_error: Mutex<Option<String>>,
    /// Reads answered from the write-back buffer or the cache. A write's own read of its key
    /// (INCR, HSET...) is not counted, as Redis counts only the lookups of reads.
    pub read_hits: ShardedCounter,
    /// Reads that had to ask the store (or found the cached copy expired); counted on the
    /// read-through path, which pays a database round trip anyway.
    pub read_misses: AtomicU64,
}

/// How many shards a [`ShardedCounter`] spreads its count over.
const COUNTER_SHARDS: usize = 16;

/// A counter bumped on the hot path from every core: one cache line per shard, the shard chosen
/// by the caller (a key's lock stripe), so cores reading different keys do not contend for one
/// line. Reads sum the shards (relaxed: a figure for monitoring, not a synchronisation point).
#[derive(Debug, Default)]
pub struct ShardedCounter {
    shards: [PaddedCounter; COUNTER_SHARDS],
}

#[derive(Debug, Default)]
#[repr(align(64))]
struct PaddedCounter(AtomicU64);

impl ShardedCounter {
    /// Adds one in the shard `hint` selects.
    #[inline]
    pub fn bump(&self, hint: usize) {
        self.shards[hint % COUNTER_SHARDS]
            .0
            .fetch_add(1, Ordering::Relaxed);
    }

    /// The sum of every shard.
    pub fn total(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.0.load(Ordering::Relaxed))
            .sum()
    }
}

/// The durations (µs) and sizes (entries) of a keyspace's flushes, failed ones included.
#[derive(Debug)]
pub struct FlushHistograms {
    /// Time to store one batch.
    pub duration: Histogram,
    /// Entries in one batch.
    pub batch: Histogram,
}

impl Default for FlushHistograms {
    fn default() -> FlushHistograms {
        FlushHistograms {
            duration: Histogram::durations(),
            batch: Histogram::sizes(),
        }
    }
}

impl FlushHistograms {
    /// Counts one flush of `entries` that took `elapsed`.
    pub(crate) fn record(&self, elapsed: std::time::Duration, entries: usize) {
        self.duration.record_duration(elapsed);
        self.batch.record(entries as u64);
    }
}

/// What a keyspace maps its keys onto.
#[derive(Debug, Clone)]
pub(crate) enum Mapping {
    /// The built-in `sluice_kv` table: any type, Redis-exact expiry.
    Builtin,
    /// One column of an existing table: strings.
    Column(Arc<MappedTable>),
    /// A row of an existing table: hashes, a field per column (`columns` or `type = "hash"`
    /// in the keyspace's configuration).
    Row(Arc<MappedRow>),
    /// Rows of an existing table, one per member: sets or sorted sets (`type = "set"` or
    /// `"zset"`, `member_column`, `score_column`).
    Members(Arc<MappedMembers>),
}

/// One keyspace at run time.
pub(crate) struct Keyspace {
    /// Position in match order.
    pub id: usize,
    /// Configured name.
    pub name: String,
    /// The key template; `None` for the built-in keyspace.
    pub template: Option<KeyTemplate>,
    /// The mapped table; `None` for the built-in keyspace.
    pub mapping: Mapping,
    /// The configuration entry.
    pub config: KeyspaceConfig,
    /// The write-back buffer (write-back keyspaces only).
    pub buffer: Option<WriteBackBuffer>,
    /// Counters.
    pub counters: KeyspaceCounters,
    /// Held by whoever flushes this keyspace: at most one store in flight per key.
    pub(crate) flush_lock: tokio::sync::Mutex<()>,
    /// `config.flush_interval` in ms as now in force: CONFIG SET `sluice-flush_interval`
    /// changes it, and the flusher reads it at each wait.
    pub(crate) flush_interval_ms: std::sync::atomic::AtomicU64,
}

impl Keyspace {
    /// The write policy.
    pub(crate) fn policy(&self) -> Policy {
        self.config.policy
    }

    /// The flush interval in force.
    pub(crate) fn flush_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.flush_interval_ms
                .load(std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// Sets the flush interval (at least 1 ms); the flusher's current wait is measured
    /// against it at once.
    pub(crate) fn set_flush_interval(&self, interval: std::time::Duration) {
        let ms = interval.as_millis().clamp(1, u64::MAX as u128) as u64;
        self.flush_interval_ms
            .store(ms, std::sync::atomic::Ordering::Relaxed);
        if let Some(buffer) = &self.buffer {
            buffer.wake.notify_one();
        }
    }

    /// True for the built-in `sluice_kv` keyspace.
    pub(crate) fn is_builtin(&self) -> bool {
        matches!(self.mapping, Mapping::Builtin)
    }

    pub(crate) fn target(&self, db: u8) -> Target {
        match &self.mapping {
            Mapping::Builtin => Target::Builtin { db },
            Mapping::Column(m) => Target::Mapped(m.clone()),
            Mapping::Row(r) => Target::Row(r.clone()),
            Mapping::Members(m) => Target::Members(m.clone()),
        }
    }

    /// The only type this keyspace can hold, or `None` for the built-in keyspace (any type).
    pub(crate) fn holds_only(&self) -> Option<Kind> {
        match &self.mapping {
            Mapping::Builtin => None,
            Mapping::Column(_) => Some(Kind::String),
            Mapping::Row(_) => Some(Kind::Hash),
            Mapping::Members(m) => Some(m.kind()),
        }
    }

    /// `table.column`, `table(columns)` or `sluice_kv`, for INFO and errors.
    pub(crate) fn table_text(&self) -> String {
        match &self.mapping {
            Mapping::Builtin => "sluice_kv".into(),
            Mapping::Column(m) => format!("{}.{}", m.table, m.value_column),
            Mapping::Row(r) => format!(
                "{}({})",
                r.table,
                r.columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            Mapping::Members(m) => match &m.value {
                Some(s) => format!("{}({},{},{})", m.table, m.key_column, m.member.name, s.name),
                None => format!("{}({},{})", m.table, m.key_column, m.member.name),
            },
        }
    }

    /// The mapped table's name, if any.
    pub(crate) fn table_name(&self) -> Option<&str> {
        match &self.mapping {
            Mapping::Builtin => None,
            Mapping::Column(m) => Some(&m.table),
            Mapping::Row(r) => Some(&r.table),
            Mapping::Members(m) => Some(&m.table),
        }
    }

    /// The store key of a Redis key: the capture on mapped keyspaces, the key itself otherwise.
    pub(crate) fn store_key(&self, key: &Bytes) -> Bytes {
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
    pub(crate) fn stores_different_text(&self) -> bool {
        match &self.mapping {
            Mapping::Builtin => false,
            Mapping::Column(m) => m.stores_different_text(),
            Mapping::Row(r) => r.stores_different_text(),
            // Members and scores the columns would store as other text are refused before
            // they are acknowledged (`members_mapped.rs`).
            Mapping::Members(_) => false,
        }
    }

    pub(crate) fn cache_ttl_ms(&self) -> Option<u64> {
        self.config.ttl.map(|d| d.as_millis() as u64)
    }

    /// Counts a store failure and keeps its message for INFO.
    pub(crate) fn note_store_error(&self, e: &StoreError) {
        self.counters.store_errors.fetch_add(1, Ordering::Relaxed);
        *self.counters.last_error.lock() = Some(e.message.clone());
    }
}
