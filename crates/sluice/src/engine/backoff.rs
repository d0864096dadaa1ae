//! Exponential backoff with jitter, for flush retries and the drain.

use std::time::Duration;

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
