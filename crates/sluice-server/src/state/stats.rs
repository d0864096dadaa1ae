//! Per-command and per-error statistics (INFO commandstats / errorstats, `/metrics`), kept as
//! Redis 7.0 keeps them, and cheap enough for GET/SET's path.
//!
//! Every command has a slot (its index in the command table; a sub-command has its own, after
//! its container's): calls, time, rejections and failures as relaxed atomics. There is no
//! hashing, lock or allocation per command. The slots are sharded by connection (its id picks
//! the shard), so that connections on different cores running the same command rarely share
//! a cache line; a reader sums the shards. Time comes from a TSC clock (`quanta`: a `rdtsc`
//! per read, scaled once per command), not from a system call. Error replies, rare by
//! comparison, are counted by prefix under a lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Slots the statistics hold: at least the command table's commands and sub-commands
/// (`Table::new` checks).
pub const MAX_SLOTS: usize = 384;

/// Shards of the per-command counters (a power of two).
const SHARDS: usize = 8;

/// The smallest command duration bucket's bound is 2^this ns (8.192 µs).
const FIRST_BOUND_LOG2: u32 = 13;

/// Upper bounds (ns, inclusive) of the command duration buckets: powers of two from 8.192 µs
/// to 1.07 s, so that a duration's bucket is a count of leading zeros, not a search.
pub const COMMAND_BOUNDS_NS: [u64; 18] = {
    let mut bounds = [0; 18];
    let mut i = 0;
    while i < bounds.len() {
        bounds[i] = 1 << (FIRST_BOUND_LOG2 + i as u32);
        i += 1;
    }
    bounds
};

/// Buckets per family histogram: one per bound, then the overflow.
const BUCKETS: usize = COMMAND_BOUNDS_NS.len() + 1;

/// The bucket of a duration: the first whose bound holds it.
#[inline]
fn bucket_of(nanos: u64) -> usize {
    // ceil(log2(nanos)), the exponent of the smallest power of two >= nanos.
    let log2 = u64::BITS - nanos.saturating_sub(1).leading_zeros();
    (log2.saturating_sub(FIRST_BOUND_LOG2) as usize).min(BUCKETS - 1)
}

/// Command families with their own duration histogram (`Table` maps each slot to one).
pub const MAX_FAMILIES: usize = 12;

/// Redis's limit on the bytes of an error prefix it looks at for a space.
const ERROR_PREFIX_SCAN: usize = 31;

#[derive(Default)]
struct Slot {
    calls: AtomicU64,
    nanos: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    /// Runs that answered nil: for GET, the keys it missed.
    nils: AtomicU64,
}

/// One shard's keyspace hits and misses counted by the commands that count them themselves,
/// on a cache line of its own.
#[derive(Default)]
#[repr(align(64))]
struct Lookups {
    hits: AtomicU64,
    misses: AtomicU64,
}

/// What a command answered, as its statistics tell replies apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// Anything but an error or nil.
    Value,
    /// An error: the call failed.
    Error,
    /// Nil (GET of a missing key).
    Nil,
}

/// One command's counters, summed over the shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandCounts {
    /// Times it ran (failed runs included), as Redis's `calls`.
    pub calls: u64,
    /// Time it ran, ns.
    pub nanos: u64,
    /// Times it was refused before it ran (arity, permissions, ...).
    pub rejected: u64,
    /// Times it ran and answered an error.
    pub failed: u64,
    /// Times it ran and answered nil.
    pub nils: u64,
}

/// Command and error statistics (INFO commandstats, errorstats, keyspace hits and misses).
pub struct CommandStats {
    /// `SHARDS` × `MAX_SLOTS`, shard after shard: one bounds check per command.
    slots: Box<[Slot]>,
    /// `SHARDS` × `MAX_FAMILIES` histograms of `BUCKETS` counters.
    durations: Box<[AtomicU64]>,
    lookups: [Lookups; SHARDS],
    clock: quanta::Clock,
    /// Whether `clock` reads the TSC, which [`CommandStats::now`] then reads itself (inline,
    /// without `quanta`'s dispatch on its clock source).
    tsc: bool,
    /// Nanoseconds per 2^32 raw clock ticks: a tick delta is scaled with one multiply
    /// (`quanta`'s own scaling checks and branches on every call).
    nanos_per_2_32_ticks: u64,
    /// Error replies by prefix, as Redis's `errorstat_<PREFIX>`.
    errors: Mutex<BTreeMap<Vec<u8>, u64>>,
    /// Every error reply, as Redis's `total_error_replies`.
    error_replies: AtomicU64,
}

impl Default for CommandStats {
    fn default() -> CommandStats {
        let clock = quanta::Clock::new();
        CommandStats {
            slots: (0..SHARDS * MAX_SLOTS).map(|_| Slot::default()).collect(),
            durations: (0..SHARDS * MAX_FAMILIES * BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            lookups: Default::default(),
            // A clock on the system clock leaves raw readings (ns) unscaled; one on the TSC
            // scales them (or reads ns already, at exactly 1 GHz, where either read is right).
            tsc: cfg!(target_arch = "x86_64") && clock.delta_as_nanos(0, 1 << 32) != 1 << 32,
            nanos_per_2_32_ticks: clock.delta_as_nanos(0, 1 << 32),
            clock,
            errors: Mutex::default(),
            error_replies: AtomicU64::new(0),
        }
    }
}

impl CommandStats {
    /// The shard of the connection with this id.
    #[inline(always)]
    fn shard(connection: u64) -> usize {
        connection as usize % SHARDS
    }

    /// A raw clock reading to time a command with ([`CommandStats::called`]).
    #[inline(always)]
    pub fn start(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        if self.tsc {
            // SAFETY: `rdtsc` reads the time-stamp counter and has no preconditions; `tsc` is
            // set only when `quanta` found it usable and reads it the same way.
            #[allow(unused_unsafe)]
            return unsafe { core::arch::x86_64::_rdtsc() };
        }
        self.clock.raw()
    }

    /// Counts a run of the command in `slot` (family `family`), on the connection with id
    /// `connection`, that began at `started` ([`CommandStats::start`]) and answered `reply`
    /// (failed: an error; nil). Returns how long it ran, ns.
    #[inline(always)]
    pub fn called(
        &self,
        connection: u64,
        slot: usize,
        family: usize,
        started: u64,
        reply: ReplyKind,
    ) -> u64 {
        let ticks = self.start().saturating_sub(started);
        let nanos = ((u128::from(ticks) * u128::from(self.nanos_per_2_32_ticks)) >> 32) as u64;
        let shard = Self::shard(connection);
        if let Some(counts) = self.slots.get(shard * MAX_SLOTS + slot) {
            counts.calls.fetch_add(1, Ordering::Relaxed);
            counts.nanos.fetch_add(nanos, Ordering::Relaxed);
            match reply {
                ReplyKind::Value => {}
                ReplyKind::Error => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                }
                ReplyKind::Nil => {
                    counts.nils.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let bucket = (shard * MAX_FAMILIES + family) * BUCKETS + bucket_of(nanos);
        if let Some(count) = self.durations.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        nanos
    }

    /// Counts a refusal of the command in `slot` before it ran.
    pub fn rejected(&self, slot: usize) {
        // Not a hot path: one shard serves every connection.
        if let Some(counts) = self.slots.get(slot) {
            counts.rejected.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts an error reply under its prefix, as Redis's `afterErrorReply`: the first word
    /// when a space ends it within Redis's 32-byte window (`-` included), otherwise `ERR`.
    pub fn error_reply(&self, line: &[u8]) {
        self.error_replies.fetch_add(1, Ordering::Relaxed);
        let window = &line[..line.len().min(ERROR_PREFIX_SCAN)];
        let prefix = match window.iter().position(|&b| b == b' ') {
            Some(end) => &line[..end],
            None => b"ERR",
        };
        let mut errors = self.errors.lock();
        match errors.get_mut(prefix) {
            Some(count) => *count += 1,
            None => {
                errors.insert(prefix.to_vec(), 1);
            }
        }
    }

    /// Counts key lookups of a read command on the connection with id `connection`: found
    /// keys as hits, absent ones as misses. (GET counts none here: its hits and misses are its
    /// calls and nil replies, see [`CommandStats::keyspace`].)
    pub fn keyspace_lookups(&self, connection: u64, hits: u64, misses: u64) {
        let lookups = &self.lookups[Self::shard(connection)];
        lookups.hits.fetch_add(hits, Ordering::Relaxed);
        lookups.misses.fetch_add(misses, Ordering::Relaxed);
    }

    /// The counters of `slot`.
    pub fn counts(&self, slot: usize) -> CommandCounts {
        let mut total = CommandCounts::default();
        if slot >= MAX_SLOTS {
            return total;
        }
        for shard in 0..SHARDS {
            if let Some(s) = self.slots.get(shard * MAX_SLOTS + slot) {
                total.calls += s.calls.load(Ordering::Relaxed);
                total.nanos += s.nanos.load(Ordering::Relaxed);
                total.rejected += s.rejected.load(Ordering::Relaxed);
                total.failed += s.failed.load(Ordering::Relaxed);
                total.nils += s.nils.load(Ordering::Relaxed);
            }
        }
        total
    }

    /// Per-bucket counts of the command durations of `family` (bounds:
    /// [`COMMAND_BOUNDS_NS`], then the overflow bucket), and their sum in ns.
    pub fn family_durations(&self, family: usize) -> Vec<u64> {
        (0..BUCKETS)
            .map(|bucket| {
                (0..SHARDS)
                    .filter_map(|s| {
                        self.durations
                            .get((s * MAX_FAMILIES + family) * BUCKETS + bucket)
                    })
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }

    /// `(keyspace_hits, keyspace_misses)`: the lookups counted by the read commands, and
    /// GET's (slot `get_slot`): a nil reply missed its key, any other found it (a key of
    /// the wrong type is found, as in Redis).
    pub fn keyspace(&self, get_slot: Option<usize>) -> (u64, u64) {
        let get = get_slot.map(|slot| self.counts(slot)).unwrap_or_default();
        self.lookups.iter().fold(
            (get.calls - get.nils.min(get.calls), get.nils),
            |(h, m), l| {
                (
                    h + l.hits.load(Ordering::Relaxed),
                    m + l.misses.load(Ordering::Relaxed),
                )
            },
        )
    }

    /// Error replies by prefix, in byte order (Redis's rax order).
    pub fn errors(&self) -> Vec<(Vec<u8>, u64)> {
        self.errors
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Every error reply sent (`total_error_replies`).
    pub fn error_replies(&self) -> u64 {
        self.error_replies.load(Ordering::Relaxed)
    }

    /// Zeroes everything, as CONFIG RESETSTAT does.
    pub fn reset(&self) {
        for slot in self.slots.iter() {
            for counter in [
                &slot.calls,
                &slot.nanos,
                &slot.rejected,
                &slot.failed,
                &slot.nils,
            ] {
                counter.store(0, Ordering::Relaxed);
            }
        }
        for counter in self.durations.iter() {
            counter.store(0, Ordering::Relaxed);
        }
        for lookups in self.lookups.iter() {
            lookups.hits.store(0, Ordering::Relaxed);
            lookups.misses.store(0, Ordering::Relaxed);
        }
        self.errors.lock().clear();
        self.error_replies.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_counted_by_prefix_as_redis_counts_them() {
        let stats = CommandStats::default();
        stats.error_reply(b"ERR syntax error");
        stats.error_reply(b"WRONGTYPE Operation against a key");
        stats.error_reply(b"NOSPACEINTHISERRORATALLSOITISERR");
        stats.error_reply(b"BUSY Sluice is busy");
        stats.error_reply(b"ERR x");
        let errors = stats.errors();
        assert_eq!(
            errors,
            vec![
                (b"BUSY".to_vec(), 1),
                (b"ERR".to_vec(), 3),
                (b"WRONGTYPE".to_vec(), 1)
            ]
        );
        assert_eq!(stats.error_replies(), 5);
        stats.reset();
        assert!(stats.errors().is_empty());
    }

    #[test]
    fn durations_land_in_the_first_power_of_two_bucket_that_holds_them() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(8192), 0);
        assert_eq!(bucket_of(8193), 1);
        assert_eq!(bucket_of(16384), 1);
        assert_eq!(bucket_of(1 << 30), 17);
        assert_eq!(bucket_of((1 << 30) + 1), 18);
        assert_eq!(bucket_of(u64::MAX), 18);
        for (i, bound) in COMMAND_BOUNDS_NS.iter().enumerate() {
            assert_eq!(bucket_of(*bound), i);
        }
    }

    #[test]
    fn calls_sum_over_shards_and_reset() {
        let stats = std::sync::Arc::new(CommandStats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    let started = stats.start();
                    stats.called(0, 3, 1, started, ReplyKind::Value);
                    stats.called(1, 3, 1, started, ReplyKind::Error);
                    stats.rejected(3);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let counts = stats.counts(3);
        assert_eq!((counts.calls, counts.failed, counts.rejected), (8, 4, 4));
        assert_eq!(stats.family_durations(1).iter().sum::<u64>(), 8);
        stats.reset();
        assert_eq!(stats.counts(3), CommandCounts::default());
    }
}
