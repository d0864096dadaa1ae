//! Time source for expiry, injectable so TTL tests need no sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Wall-clock milliseconds since the Unix epoch, as Redis uses for expiry.
///
/// Every expiry decision in the engine (buffer, cache and store) reads the same clock, so a
/// key is either expired everywhere or nowhere.
pub trait Clock: Send + Sync + 'static {
    /// Current time in milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `start_ms`.
    pub fn new(start_ms: u64) -> Self {
        ManualClock {
            now: Arc::new(AtomicU64::new(start_ms)),
        }
    }

    /// Moves the clock forward by `ms`.
    pub fn advance_ms(&self, ms: u64) {
        self.now.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock to `ms`.
    pub fn set_ms(&self, ms: u64) {
        self.now.store(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.now.load(Ordering::SeqCst)
    }
}

/// Shared handle to the engine's clock.
pub type SharedClock = Arc<dyn Clock>;

/// Marks an [`OpTime`] whose clock has not been read yet.
const UNREAD: u64 = u64::MAX;

/// The time of one engine operation: the clock is read at most once, and only when something
/// needs it. Most keys carry no deadline, and on this path a clock read costs about as much as
/// a cache hit. Every decision of one operation sees the same instant, as a Redis command does.
pub(crate) struct OpTime<'a> {
    clock: &'a dyn Clock,
    /// [`UNREAD`] until the first [`OpTime::ms`]. Atomic only so that an operation's future,
    /// which holds a reference across awaits, stays `Send`; one task reads and writes it.
    at: AtomicU64,
}

impl<'a> OpTime<'a> {
    /// An operation starting now; the clock is not read yet.
    pub(crate) fn new(clock: &'a dyn Clock) -> Self {
        OpTime {
            clock,
            at: AtomicU64::new(UNREAD),
        }
    }

    /// The operation's time in Unix milliseconds, read from the clock on first use.
    /// An operation time already read: a transaction runs every command at the one instant
    /// it began, as Redis freezes time during MULTI/EXEC and scripts.
    pub(crate) fn fixed(clock: &'a dyn Clock, now_ms: u64) -> Self {
        OpTime {
            clock,
            at: AtomicU64::new(now_ms),
        }
    }

    pub(crate) fn ms(&self) -> u64 {
        match self.at.load(Ordering::Relaxed) {
            UNREAD => {
                let now = self.clock.now_ms();
                self.at.store(now, Ordering::Relaxed);
                now
            }
            now => now,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts its reads.
    struct CountingClock(AtomicU64);

    impl Clock for CountingClock {
        fn now_ms(&self) -> u64 {
            self.0.fetch_add(1, Ordering::SeqCst) + 1000
        }
    }

    #[test]
    fn an_operation_reads_the_clock_once_and_only_when_asked() {
        let clock = CountingClock(AtomicU64::new(0));
        let _unused = OpTime::new(&clock);
        assert_eq!(clock.0.load(Ordering::SeqCst), 0, "never asked, never read");
        let op = OpTime::new(&clock);
        assert_eq!(op.ms(), 1000);
        assert_eq!(op.ms(), 1000, "the same instant for the whole operation");
        assert_eq!(clock.0.load(Ordering::SeqCst), 1);
    }
}
