//! BUSY: the stripes of a script that has run past its busy threshold, and the waiters that
//! give up on them.
//!
//! Redis answers BUSY to every client while a script runs long. Sluice runs the other clients
//! in parallel and serves them; only an operation that would wait for a stripe a busy script
//! holds gives up, with [`ScriptKind`], instead of waiting (up to `script_timeout`) for it.
//! A waiter whose stripe is held by anything else (an ordinary write, an EXEC, a script not
//! yet past its threshold) keeps waiting.
//!
//! The holder marks a stripe only while it holds it: it marks after taking it
//! ([`KeyLocks::mark_busy`]) and clears the mark before releasing it
//! ([`KeyLocks::clear_busy`]), so a mark seen set means a busy script holds the stripe now. A
//! waiter checks its stripe's mark when it starts waiting and again each time marks are set.
//! Marks are set only when a script crosses its threshold, which is rare, so waking every
//! waiter then costs nothing that matters; the uncontended lock never looks at them.

use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

use super::{KeyLocks, Stripe, STRIPES};
use crate::error::ScriptKind;

/// No busy script holds the stripe.
const NOT_BUSY: u8 = 0;

/// The busy mark of every stripe, and the signal that one was set.
pub(super) struct BusyMarks {
    marks: Box<[AtomicU8]>,
    /// Notified each time marks are set, so waiters look at theirs again.
    marked: Notify,
}

impl Default for BusyMarks {
    fn default() -> Self {
        BusyMarks {
            marks: (0..STRIPES).map(|_| AtomicU8::new(NOT_BUSY)).collect(),
            marked: Notify::new(),
        }
    }
}

impl BusyMarks {
    /// The kind of busy script holding the stripe, if one does.
    fn holder(&self, stripe: Stripe) -> Option<ScriptKind> {
        match self.marks[stripe.0].load(Ordering::SeqCst) {
            NOT_BUSY => None,
            code => Some(decode(code)),
        }
    }
}

fn encode(kind: ScriptKind) -> u8 {
    match kind {
        ScriptKind::Eval => 1,
        ScriptKind::Function => 2,
    }
}

fn decode(code: u8) -> ScriptKind {
    if code == encode(ScriptKind::Function) {
        ScriptKind::Function
    } else {
        ScriptKind::Eval
    }
}

impl KeyLocks {
    /// The contended branch of [`KeyLocks::lock`]: waits for the stripe's lock, as one
    /// waiter throughout, unless the stripe's holder is or becomes a busy script; then gives
    /// up (unregistered, passing on any wake-up it got) with that script's kind.
    pub(super) async fn lock_slow_unless_busy(&self, stripe: Stripe) -> Result<(), ScriptKind> {
        let mut wait = pin!(self.locks[stripe.0].lock_slow());
        loop {
            // Listening before looking: a mark set after the look still wakes this waiter.
            let mut marked = pin!(self.busy.marked.notified());
            marked.as_mut().enable();
            if let Some(kind) = self.busy.holder(stripe) {
                return Err(kind);
            }
            tokio::select! {
                biased;
                () = &mut wait => return Ok(()),
                () = &mut marked => {}
            }
        }
    }

    /// Marks stripes a busy script holds, and has their waiters give up.
    pub(crate) fn mark_busy(&self, stripes: impl IntoIterator<Item = Stripe>, kind: ScriptKind) {
        for stripe in stripes {
            self.busy.marks[stripe.0].store(encode(kind), Ordering::SeqCst);
        }
        self.busy.marked.notify_waiters();
    }

    /// Clears the busy marks of stripes, before their holder releases them.
    pub(crate) fn clear_busy(&self, stripes: impl IntoIterator<Item = Stripe>) {
        for stripe in stripes {
            self.busy.marks[stripe.0].store(NOT_BUSY, Ordering::SeqCst);
        }
    }
}
