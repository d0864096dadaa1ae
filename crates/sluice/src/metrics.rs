//! Cheap measurements any layer may record: fixed-bucket [`Histogram`]s of relaxed atomics,
//! and the [`LatencyMonitor`] behind Redis's LATENCY command.
//!
//! Neutral: the tiers, the engine and the server record here; nothing here waits on I/O or
//! allocates on record (a latency sample past the threshold takes a short lock, as a rare
//! event). Front ends read snapshots when they render (INFO, LATENCY, `/metrics`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

/// Upper bounds (µs, inclusive) of the duration buckets: 100 µs to 10 s.
pub const DURATION_BOUNDS_US: &[u64] = &[
    100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// Upper bounds (inclusive) of the size buckets (entries per batch, writes per fsync).
pub const SIZE_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

/// A histogram with fixed buckets: one relaxed atomic per bucket, a sum and nothing else, so
/// recording is a bucket search and two atomic adds. A value above the last bound is counted
/// in the overflow bucket (`+Inf`).
#[derive(Debug)]
pub struct Histogram {
    bounds: &'static [u64],
    /// One counter per bound, then the overflow bucket.
    counts: Box<[AtomicU64]>,
    sum: AtomicU64,
}

impl Histogram {
    /// An empty histogram over `bounds` (increasing).
    pub fn new(bounds: &'static [u64]) -> Histogram {
        Histogram {
            bounds,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// A histogram of durations in µs ([`DURATION_BOUNDS_US`]).
    pub fn durations() -> Histogram {
        Histogram::new(DURATION_BOUNDS_US)
    }

    /// A histogram of sizes ([`SIZE_BOUNDS`]).
    pub fn sizes() -> Histogram {
        Histogram::new(SIZE_BOUNDS)
    }

    /// Counts one value.
    pub fn record(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        if let Some(count) = self.counts.get(bucket) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts one duration, in µs.
    pub fn record_duration(&self, elapsed: Duration) {
        self.record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
    }

    /// The counts now. Buckets are read one by one, so a snapshot taken while values are
    /// recorded may be off by those values; each bucket is exact.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            bounds: self.bounds,
            count: counts.iter().sum(),
            counts,
            sum: self.sum.load(Ordering::Relaxed),
        }
    }
}

/// A histogram's counts at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Upper bounds, inclusive, increasing.
    pub bounds: &'static [u64],
    /// Per bucket (not cumulative): one per bound, then the overflow bucket.
    pub counts: Vec<u64>,
    /// Sum of the values recorded.
    pub sum: u64,
    /// Values recorded.
    pub count: u64,
}

/// What the engine measures off GET/SET's path: store commits, journal fsyncs, and the
/// latency monitor their slow ones go to. Per-keyspace flushes are in the keyspace's
/// counters.
#[derive(Debug)]
pub struct EngineMetrics {
    /// Duration of each group commit of write-through and invalidate writes (one database
    /// transaction, conflict retries included), µs.
    pub store_commit: Histogram,
    /// Writes per group commit.
    pub store_commit_writes: Histogram,
    /// Duration of each fdatasync of the journal, µs.
    pub journal_fsync: Histogram,
    /// Appends (records or record groups) each journal fsync made durable.
    pub journal_writes_per_fsync: Histogram,
    /// Redis's LATENCY events.
    pub latency: LatencyMonitor,
    /// The journal replay at open: records replayed (0 when there was nothing to replay).
    pub replay_records: AtomicU64,
    /// The journal replay at open: µs to put the records into the write-back buffers.
    pub replay_buffer_us: AtomicU64,
    /// The journal replay at open: µs of the flush that stored them (0 if it failed and was
    /// left to the background flushers).
    pub replay_flush_us: AtomicU64,
    /// Change capture ([`ChangeMetrics`]).
    pub changes: ChangeMetrics,
    /// Dead nodes' journals this node took over and stored whole (`[cluster] adopt_orphans`).
    pub adoptions: AtomicU64,
    /// Records replayed from those journals.
    pub adopted_records: AtomicU64,
    /// Takeovers that failed or left writes behind (tried again at the next scan).
    pub adoption_failures: AtomicU64,
}

/// What the change-capture task did, for INFO and `/metrics`.
#[derive(Debug)]
pub struct ChangeMetrics {
    /// 1 while a change feed is configured and running.
    pub enabled: AtomicU64,
    /// Changed rows applied (each once per keyspace mapped on its table).
    pub applied: AtomicU64,
    /// Cached copies replaced by the database's new value.
    pub replaced: AtomicU64,
    /// Cached copies removed (the row is gone, or could not be read).
    pub removed: AtomicU64,
    /// Changes that found the cache already holding the database's value (Sluice's own
    /// writes coming back).
    pub unchanged: AtomicU64,
    /// Times the stream broke and every cached copy was dropped.
    pub lost: AtomicU64,
    /// Failures of the feed (retried).
    pub errors: AtomicU64,
    /// From the recording of the last applied change to its application, ms.
    pub lag_ms: AtomicU64,
    /// The last confirmed position.
    pub position: AtomicU64,
    /// Changes recorded that not every node has confirmed, as of the last look (SQLite).
    pub retained: AtomicU64,
    /// WAL bytes the node's replication slot holds, as of the last look (PostgreSQL).
    pub retained_bytes: AtomicU64,
    /// Delay from a change's recording to its application, µs.
    pub delay: Histogram,
}

impl Default for EngineMetrics {
    fn default() -> EngineMetrics {
        EngineMetrics {
            store_commit: Histogram::durations(),
            store_commit_writes: Histogram::sizes(),
            journal_fsync: Histogram::durations(),
            journal_writes_per_fsync: Histogram::sizes(),
            latency: LatencyMonitor::default(),
            replay_records: AtomicU64::new(0),
            replay_buffer_us: AtomicU64::new(0),
            replay_flush_us: AtomicU64::new(0),
            changes: ChangeMetrics::default(),
            adoptions: AtomicU64::new(0),
            adopted_records: AtomicU64::new(0),
            adoption_failures: AtomicU64::new(0),
        }
    }
}

impl Default for ChangeMetrics {
    fn default() -> ChangeMetrics {
        ChangeMetrics {
            enabled: AtomicU64::new(0),
            applied: AtomicU64::new(0),
            replaced: AtomicU64::new(0),
            removed: AtomicU64::new(0),
            unchanged: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            lag_ms: AtomicU64::new(0),
            position: AtomicU64::new(0),
            retained: AtomicU64::new(0),
            retained_bytes: AtomicU64::new(0),
            delay: Histogram::durations(),
        }
    }
}

/// Samples a LATENCY event keeps, as Redis's `LATENCY_TS_LEN`.
pub const LATENCY_SAMPLES: usize = 160;

/// The events the engine records (the server adds Redis's `command` and `fast-command`).
pub mod events {
    /// One fdatasync of the write-back journal (under `fsync`, each group commit; under `os`
    /// and `interval`, the background sync).
    pub const JOURNAL_FSYNC: &str = "journal-fsync";
    /// One flush of a write-back keyspace: storing one batch in the database, in one
    /// transaction.
    pub const KEYSPACE_FLUSH: &str = "keyspace-flush";
    /// One group commit of write-through and invalidate writes.
    pub const STORE_COMMIT: &str = "store-commit";
}

/// One latency sample: when (Unix seconds) and how long (ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LatencySample {
    /// Unix time of the sample, seconds.
    pub time: u64,
    /// Latency, ms.
    pub millis: u64,
}

/// One event's samples, as Redis's `latencyTimeSeries`.
#[derive(Debug, Clone)]
pub struct LatencySeries {
    /// The event's name.
    pub event: &'static str,
    /// The highest latency ever recorded for it, ms.
    pub max: u64,
    /// Its samples, oldest first; at most one per second (the highest), at most
    /// [`LATENCY_SAMPLES`].
    pub samples: Vec<LatencySample>,
}

/// The Redis latency monitor: per event, the samples that reached `latency-monitor-threshold`
/// (ms; 0, the default, records nothing), one per second per event, the last
/// [`LATENCY_SAMPLES`] kept.
#[derive(Debug, Default)]
pub struct LatencyMonitor {
    threshold_ms: AtomicU64,
    /// In the order events first happened.
    series: Mutex<Vec<LatencySeries>>,
}

impl LatencyMonitor {
    /// `latency-monitor-threshold`, ms; 0: off.
    pub fn threshold_ms(&self) -> u64 {
        self.threshold_ms.load(Ordering::Relaxed)
    }

    /// Sets `latency-monitor-threshold` (ms; 0 turns the monitor off; samples stay).
    pub fn set_threshold_ms(&self, millis: u64) {
        self.threshold_ms.store(millis, Ordering::Relaxed);
    }

    /// Records `elapsed` for `event` if it reached the threshold (Redis's
    /// `latencyAddSampleIfNeeded`: whole ms, truncated). One relaxed load when it did not.
    pub fn record(&self, event: &'static str, elapsed: Duration) {
        let threshold = self.threshold_ms();
        if threshold == 0 {
            return;
        }
        let millis = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        if millis >= threshold {
            self.add_sample(event, millis, unix_now());
        }
    }

    /// Redis's `latencyAddSample`: a sample in the same second as the event's previous one
    /// only raises it.
    fn add_sample(&self, event: &'static str, millis: u64, time: u64) {
        let mut all = self.series.lock();
        let series = match all.iter().position(|s| s.event == event) {
            Some(i) => &mut all[i],
            None => {
                all.push(LatencySeries {
                    event,
                    max: 0,
                    samples: Vec::new(),
                });
                let last = all.len() - 1;
                &mut all[last]
            }
        };
        series.max = series.max.max(millis);
        if let Some(last) = series.samples.last_mut() {
            if last.time == time {
                last.millis = last.millis.max(millis);
                return;
            }
        }
        if series.samples.len() == LATENCY_SAMPLES {
            series.samples.remove(0);
        }
        series.samples.push(LatencySample { time, millis });
    }

    /// Every event with samples, in the order they first happened.
    pub fn series(&self) -> Vec<LatencySeries> {
        self.series.lock().clone()
    }

    /// One event's samples, if it has any.
    pub fn history(&self, event: &str) -> Option<LatencySeries> {
        self.series
            .lock()
            .iter()
            .find(|s| s.event == event)
            .cloned()
    }

    /// Drops the samples of `events` (every event when `None`); how many events had samples.
    pub fn reset(&self, events: Option<&[&[u8]]>) -> usize {
        let mut all = self.series.lock();
        let before = all.len();
        match events {
            None => all.clear(),
            Some(names) => all.retain(|s| !names.contains(&s.event.as_bytes())),
        }
        before - all.len()
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_land_in_the_first_bucket_whose_bound_holds_them() {
        let h = Histogram::new(&[10, 100]);
        for v in [0, 10, 11, 100, 101, 5000] {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!(s.counts, vec![2, 2, 2]);
        assert_eq!(s.count, 6);
        assert_eq!(s.sum, 5222);
    }

    #[test]
    fn latency_samples_keep_one_per_second_and_the_last_160() {
        let m = LatencyMonitor::default();
        m.record("command", Duration::from_millis(500));
        assert!(m.series().is_empty(), "threshold 0 records nothing");
        m.add_sample("command", 5, 100);
        m.add_sample("command", 9, 100);
        m.add_sample("command", 3, 100);
        let h = m.history("command").unwrap();
        assert_eq!(
            h.samples,
            vec![LatencySample {
                time: 100,
                millis: 9
            }]
        );
        for t in 0..200 {
            m.add_sample("command", 1, 1000 + t);
        }
        let h = m.history("command").unwrap();
        assert_eq!(h.samples.len(), LATENCY_SAMPLES);
        assert_eq!(h.samples[0].time, 1040);
        assert_eq!(h.max, 9);
        m.add_sample("other", 1, 1);
        assert_eq!(m.reset(Some(&[b"command", b"nosuch"])), 1);
        assert_eq!(m.reset(None), 1);
    }
}
