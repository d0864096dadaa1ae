//! Per-command and per-error statistics (INFO commandstats / errorstats, `/metrics`), kept as
//! Redis 7.0 keeps them, and cheap enough for GET/SET's path.
//!
//! Every command has a slot (its index in the command table; a sub-command has its own, after
//! its container's): calls, time, rejections and failures as relaxed atomics. There is no
//! hashing, lock or allocation per command. The slots are sharded by thread, so that workers
//! running the same command do not fight over one cache line; a reader sums the shards.
//! Time comes from a TSC clock (`quanta`: a `rdtsc` per read, scaled once per command), not
//! from a system call. Error replies, rare by comparison, are counted by prefix under a lock.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;

/// Slots the statistics hold: at least the command table's commands and sub-commands
/// (`Table::new` checks).
pub const MAX_SLOTS: usize = 384;

/// Shards of the per-command counters: threads beyond this many share shards.
const SHARDS: usize = 8;

/// Upper bounds (ns, inclusive) of the command duration buckets: 10 µs to 1 s.
pub const COMMAND_BOUNDS_NS: [u64; 12] = [
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    10_000_000,
    50_000_000,
    250_000_000,
    1_000_000_000,
];

/// Buckets per family histogram: one per bound, then the overflow.
const BUCKETS: usize = COMMAND_BOUNDS_NS.len() + 1;

/// Command families with their own duration histogram (`Table` maps each slot to one).
pub const MAX_FAMILIES: usize = 8;

/// Redis's limit on the bytes of an error prefix it looks at for a space.
const ERROR_PREFIX_SCAN: usize = 31;

#[derive(Default)]
struct Slot {
    calls: AtomicU64,
    nanos: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
}

struct Shard {
    slots: Box<[Slot]>,
    /// `MAX_FAMILIES` histograms of `BUCKETS` counters.
    durations: Box<[AtomicU64]>,
    keyspace_hits: AtomicU64,
    keyspace_misses: AtomicU64,
}

impl Shard {
    fn new() -> Shard {
        Shard {
            slots: (0..MAX_SLOTS).map(|_| Slot::default()).collect(),
            durations: (0..MAX_FAMILIES * BUCKETS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            keyspace_hits: AtomicU64::new(0),
            keyspace_misses: AtomicU64::new(0),
        }
    }
}

thread_local! {
    /// This thread's shard, assigned on its first command.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
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
}

/// Command and error statistics (INFO commandstats, errorstats, keyspace hits and misses).
pub struct CommandStats {
    shards: Box<[Shard]>,
    next_shard: AtomicUsize,
    clock: quanta::Clock,
    /// Error replies by prefix, as Redis's `errorstat_<PREFIX>`.
    errors: Mutex<BTreeMap<Vec<u8>, u64>>,
    /// Every error reply, as Redis's `total_error_replies`.
    error_replies: AtomicU64,
}

impl Default for CommandStats {
    fn default() -> CommandStats {
        CommandStats {
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            next_shard: AtomicUsize::new(0),
            clock: quanta::Clock::new(),
            errors: Mutex::default(),
            error_replies: AtomicU64::new(0),
        }
    }
}

impl CommandStats {
    fn shard(&self) -> &Shard {
        let index = SHARD.with(|shard| {
            let index = shard.get();
            if index != usize::MAX {
                return index;
            }
            let index = self.next_shard.fetch_add(1, Ordering::Relaxed) % SHARDS;
            shard.set(index);
            index
        });
        &self.shards[index % SHARDS]
    }

    /// A raw clock reading to time a command with ([`CommandStats::called`]).
    #[inline]
    pub fn start(&self) -> u64 {
        self.clock.raw()
    }

    /// Counts a run of the command in `slot` (family `family`) that began at `started`, failed
    /// if it answered an error. Returns how long it ran, ns.
    #[inline]
    pub fn called(&self, slot: usize, family: usize, started: u64, failed: bool) -> u64 {
        let nanos = self.clock.delta_as_nanos(started, self.clock.raw());
        let shard = self.shard();
        if let Some(counts) = shard.slots.get(slot) {
            counts.calls.fetch_add(1, Ordering::Relaxed);
            counts.nanos.fetch_add(nanos, Ordering::Relaxed);
            if failed {
                counts.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let bucket = COMMAND_BOUNDS_NS.partition_point(|&bound| bound < nanos);
        if let Some(count) = shard.durations.get(family * BUCKETS + bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        nanos
    }

    /// Counts a refusal of the command in `slot` before it ran.
    pub fn rejected(&self, slot: usize) {
        if let Some(counts) = self.shard().slots.get(slot) {
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

    /// Counts key lookups of read commands: found ones as hits, absent ones as misses.
    #[inline]
    pub fn keyspace_lookups(&self, hits: u64, misses: u64) {
        let shard = self.shard();
        if hits > 0 {
            shard.keyspace_hits.fetch_add(hits, Ordering::Relaxed);
        }
        if misses > 0 {
            shard.keyspace_misses.fetch_add(misses, Ordering::Relaxed);
        }
    }

    /// The counters of `slot`.
    pub fn counts(&self, slot: usize) -> CommandCounts {
        let mut total = CommandCounts::default();
        for shard in self.shards.iter() {
            if let Some(s) = shard.slots.get(slot) {
                total.calls += s.calls.load(Ordering::Relaxed);
                total.nanos += s.nanos.load(Ordering::Relaxed);
                total.rejected += s.rejected.load(Ordering::Relaxed);
                total.failed += s.failed.load(Ordering::Relaxed);
            }
        }
        total
    }

    /// Per-bucket counts of the command durations of `family` (bounds:
    /// [`COMMAND_BOUNDS_NS`], then the overflow bucket), and their sum in ns.
    pub fn family_durations(&self, family: usize) -> Vec<u64> {
        (0..BUCKETS)
            .map(|bucket| {
                self.shards
                    .iter()
                    .filter_map(|s| s.durations.get(family * BUCKETS + bucket))
                    .map(|c| c.load(Ordering::Relaxed))
                    .sum()
            })
            .collect()
    }

    /// `(keyspace_hits, keyspace_misses)`.
    pub fn keyspace(&self) -> (u64, u64) {
        self.shards.iter().fold((0, 0), |(h, m), s| {
            (
                h + s.keyspace_hits.load(Ordering::Relaxed),
                m + s.keyspace_misses.load(Ordering::Relaxed),
            )
        })
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
        for shard in self.shards.iter() {
            for slot in shard.slots.iter() {
                for counter in [&slot.calls, &slot.nanos, &slot.rejected, &slot.failed] {
                    counter.store(0, Ordering::Relaxed);
                }
            }
            for counter in shard.durations.iter() {
                counter.store(0, Ordering::Relaxed);
            }
            shard.keyspace_hits.store(0, Ordering::Relaxed);
            shard.keyspace_misses.store(0, Ordering::Relaxed);
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
    fn calls_sum_over_shards_and_reset() {
        let stats = std::sync::Arc::new(CommandStats::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let stats = stats.clone();
                std::thread::spawn(move || {
                    let started = stats.start();
                    stats.called(3, 1, started, false);
                    stats.called(3, 1, started, true);
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
