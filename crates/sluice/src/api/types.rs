//! The option and outcome types of the library API.

use bytes::Bytes;

use crate::config::{Durability, Policy};
use crate::metrics::HistogramSnapshot;
use crate::model::{Kind, StoreWrite};

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

    pub(crate) fn allows(&self, current: Option<i64>, at_ms: i64) -> bool {
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
        /// New value: the string, or the encoding of `kind`.
        value: Bytes,
        /// Its type.
        kind: Kind,
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
            Mutation::Put {
                value,
                kind,
                expires_at,
            } => Some(StoreWrite::Upsert {
                value,
                kind,
                expires_at,
            }),
            Mutation::Delete => Some(StoreWrite::Delete),
        }
    }
}

/// A run-time setting of a write-back keyspace (CONFIG SET `sluice-*` in the server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyspaceSetting {
    /// How long a write may wait in the buffer before a timed flush (at least 1 ms).
    FlushInterval(std::time::Duration),
    /// Fresh keys that start a flush early, and the most one batch stores (at least 1).
    FlushBatch(usize),
    /// Keys the buffer admits before writers wait (backpressure; at least 1).
    MaxDirty(usize),
}

/// A write-back keyspace's run-time settings as now in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceSettings {
    /// The keyspace's name.
    pub name: String,
    /// `flush_interval`.
    pub flush_interval: std::time::Duration,
    /// `flush_batch`.
    pub flush_batch: usize,
    /// `max_dirty`.
    pub max_dirty: usize,
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
    /// Every flush's duration, µs (failed ones included).
    pub flush_duration: HistogramSnapshot,
    /// Every flush's entries.
    pub flush_batch: HistogramSnapshot,
    /// The last store error.
    pub last_error: Option<String>,
    /// Reads answered from the write-back buffer or the cache (a write's own read not counted).
    pub read_hits: u64,
    /// Reads that asked the store.
    pub read_misses: u64,
}

/// What a command that stores a computed value ([`crate::Access::store_from`]) did to its
/// destination key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The value was written.
    Written,
    /// There was no value to write and the key existed: it was deleted.
    Deleted,
    /// There was no value to write and no key to delete.
    Untouched,
}
