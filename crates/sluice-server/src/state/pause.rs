//! CLIENT PAUSE: while a pause lasts, clients' commands (ALL) or their writes (WRITE) wait
//! for its end, then run.
//!
//! Every command pays one relaxed load ([`Pause::may_be_active`]); only while a pause was set
//! does a command take the slow path, which reads the deadline under the lock and waits.

use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// What a pause holds back.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PauseMode {
    /// Commands that write (and scripts that may): `CLIENT PAUSE t WRITE`.
    Write = 1,
    /// Every command: `CLIENT PAUSE t [ALL]`.
    All = 2,
}

/// The server's client pause.
#[derive(Default)]
pub struct Pause {
    /// 0: no pause set; otherwise the [`PauseMode`] of the pause set (possibly expired).
    mode: AtomicU8,
    /// The pause in force: until when, holding back what.
    state: Mutex<Option<(Instant, PauseMode)>>,
    /// Wakes the waiters when the pause is lifted early (CLIENT UNPAUSE).
    lifted: Notify,
}

impl Pause {
    /// Whether a pause may be in force: the one load every command pays.
    #[inline]
    pub fn may_be_active(&self) -> bool {
        self.mode.load(Ordering::Relaxed) != 0
    }

    /// Pauses until `until`, as Redis `pauseClients`: a pause already in force keeps the later
    /// end and the stronger mode.
    pub fn pause(&self, until: Instant, mode: PauseMode) {
        let mut state = self.state.lock();
        let (until, mode) = match *state {
            Some((end, old)) => (end.max(until), old.max(mode)),
            None => (until, mode),
        };
        *state = Some((until, mode));
        self.mode.store(mode as u8, Ordering::Relaxed);
    }

    /// Ends the pause at once (CLIENT UNPAUSE); the waiting commands run.
    pub fn unpause(&self) {
        *self.state.lock() = None;
        self.mode.store(0, Ordering::Relaxed);
        self.lifted.notify_waiters();
    }

    /// The pause in force now, if any; an expired one is cleared.
    fn current(&self) -> Option<(Instant, PauseMode)> {
        let mut state = self.state.lock();
        match *state {
            Some((until, _)) if until <= Instant::now() => {
                *state = None;
                self.mode.store(0, Ordering::Relaxed);
                None
            }
            current => current,
        }
    }

    /// Waits while a pause holding back this command is in force (`writes`: whether it may
    /// write). Returns at once when there is none.
    pub async fn wait(&self, writes: bool) {
        loop {
            let lifted = self.lifted.notified();
            tokio::pin!(lifted);
            // Registered before the state is read: an UNPAUSE in between still wakes us.
            lifted.as_mut().enable();
            let Some((until, mode)) = self.current() else {
                return;
            };
            if mode == PauseMode::Write && !writes {
                return;
            }
            tokio::select! {
                _ = lifted => {}
                _ = tokio::time::sleep_until(until.into()) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_second_pause_keeps_the_later_end_and_the_stronger_mode() {
        let pause = Pause::default();
        assert!(!pause.may_be_active());
        let now = Instant::now();
        pause.pause(now + Duration::from_secs(60), PauseMode::Write);
        pause.pause(now + Duration::from_secs(1), PauseMode::All);
        assert_eq!(
            pause.current(),
            Some((now + Duration::from_secs(60), PauseMode::All))
        );
        pause.unpause();
        assert!(!pause.may_be_active());
        assert_eq!(pause.current(), None);
    }

    #[tokio::test]
    async fn reads_pass_a_write_pause_and_an_expired_pause_lifts_itself() {
        let pause = Pause::default();
        pause.pause(Instant::now() + Duration::from_secs(600), PauseMode::Write);
        pause.wait(false).await;
        pause.pause(Instant::now(), PauseMode::All);
        // The later end stands: ALL now holds reads too, until UNPAUSE.
        assert!(pause.may_be_active());
        pause.unpause();
        pause.wait(true).await;
        pause.pause(Instant::now(), PauseMode::All);
        pause.wait(true).await;
        assert!(!pause.may_be_active(), "found expired and cleared");
    }
}
