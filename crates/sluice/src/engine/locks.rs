//! Striped per-key write locks and version counters.
//!
//! Writes to one key are serialized by its stripe's lock, so store order and cache order
//! agree. A write moves the stripe's version by 2 after the store (or buffer) has the new value
//! and before the cache is updated; a read-through installs what it read only if the version
//! did not move while it read, and removes it again if the version moved while it installed.
//! A read-through can therefore never leave an older value in the cache. It can put one
//! there for a moment (its version check passed, then a write landed and cached the new value,
//! then the older put landed, to be removed once the read-through sees the version moved):
//! every fill runs inside a fill window, and a reader whose cache lookup overlapped a window
//! in its stripe reads the store instead of trusting the copy, so no reader ever sees that
//! moment. Writers never wait for a fill (a slow cache put cannot delay a write).
//!
//! A transaction installs the writes of several keys, which must appear at once: it makes the
//! version of each of their stripes odd ([`KeyLocks::begin_install`]) before anything of it
//! becomes visible, and even again once all of it is ([`KeyLocks::end_install`]). A reader
//! that finds an odd version waits for the stripe's lock, which the transaction holds until it
//! is done, so no reader sees half of a transaction.
//!
//! A stripe lock is one atomic word: a lock bit and a count of waiting tasks. Taking a free,
//! unwaited lock is one compare-and-swap and releasing it one subtraction, with no mutex (a
//! write takes and releases one per command); only tasks that must wait use the stripe's
//! [`Notify`]. A transaction can hold a set of locks without a guard borrowing the table for
//! each ([`KeyLocks::hold`], [`KeyLocks::release`]).
//!
//! A script running long marks the stripes it holds busy, and those waiting for them give up
//! with BUSY (`busy.rs`).

mod busy;

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use tokio::sync::Notify;

use crate::error::ScriptKind;

const STRIPES: usize = 4096;

/// Identifies the stripe of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Stripe(usize);

impl Stripe {
    /// The stripe's number, to spread per-key counters over shards.
    #[inline]
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// The lock bit of [`StripeLock::state`]; the rest counts waiting tasks, in units of
/// [`WAITER`].
const LOCKED: usize = 1;
const WAITER: usize = 2;

/// One stripe's write lock.
#[derive(Default)]
struct StripeLock {
    /// [`LOCKED`] while held, plus [`WAITER`] per task waiting in [`StripeLock::lock_slow`].
    state: AtomicUsize,
    /// Wakes a waiter when the lock is released while tasks wait.
    released: Notify,
}

impl StripeLock {
    /// Takes the lock if it is free and nobody waits for it: a newcomer does not overtake
    /// the tasks already waiting.
    fn try_lock_unwaited(&self) -> bool {
        self.state
            .compare_exchange(0, LOCKED, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    }

    /// Takes the lock if it is free, waiters or not.
    fn try_lock(&self) -> bool {
        self.state.fetch_or(LOCKED, Ordering::Acquire) & LOCKED == 0
    }

    /// Waits for the lock. Registered as a waiter from before its first attempt, so a
    /// release either comes after the registration and wakes a waiter, or before it and
    /// leaves the lock free for the attempt. A waiter dropped after its wake-up hands that
    /// wake-up on ([`Notify`] forwards it), and unregisters.
    async fn lock_slow(&self) {
        self.state.fetch_add(WAITER, Ordering::SeqCst);
        let _registered = Registered(&self.state);
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Listening before the attempt: a release between the two is not missed.
            released.as_mut().enable();
            if self.try_lock() {
                return;
            }
            released.await;
        }
    }

    fn unlock(&self) {
        if self.state.fetch_and(!LOCKED, Ordering::SeqCst) != LOCKED {
            self.released.notify_one();
        }
    }
}

/// A task counted among a lock's waiters until it drops this.
struct Registered<'a>(&'a AtomicUsize);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(WAITER, Ordering::SeqCst);
    }
}

/// A held stripe lock, released when dropped.
pub(crate) struct StripeGuard<'a> {
    lock: &'a StripeLock,
}

impl StripeGuard<'_> {
    /// Keeps the lock held with no guard: someone must [`KeyLocks::release`] it.
    fn forget(self) {
        std::mem::forget(self);
    }
}

impl Drop for StripeGuard<'_> {
    fn drop(&mut self) {
        self.lock.unlock();
    }
}

/// The lock and version tables.
pub(crate) struct KeyLocks {
    locks: Box<[StripeLock]>,
    versions: Box<[AtomicU64]>,
    /// Read-through installs begun and ended per stripe (see [`KeyLocks::begin_fill`]).
    fills_begun: Box<[AtomicU64]>,
    fills_ended: Box<[AtomicU64]>,
    /// Stripes held by a script past its busy threshold.
    busy: busy::BusyMarks,
    /// Randomly seeded, so clients cannot choose keys that all share one stripe.
    hasher: foldhash::fast::RandomState,
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks {
            locks: (0..STRIPES).map(|_| StripeLock::default()).collect(),
            versions: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            fills_begun: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            fills_ended: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            busy: busy::BusyMarks::default(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl KeyLocks {
    /// The stripe of `(db, key)`. Inlined: on every command's path, and out of line the hash
    /// costs a call (callgrind showed it).
    #[inline]
    pub(crate) fn stripe(&self, db: u8, key: &[u8]) -> Stripe {
        Stripe(self.hasher.hash_one((db, key)) as usize % STRIPES)
    }

    /// Waits for the write lock of a stripe, unless a busy script holds it: then it gives up,
    /// at once or the moment the holder becomes busy, with the script's kind (`busy.rs`).
    pub(crate) async fn lock(&self, stripe: Stripe) -> Result<StripeGuard<'_>, ScriptKind> {
        let lock = &self.locks[stripe.0];
        if !lock.try_lock_unwaited() {
            // Boxed: the wait's future is large and rare, and every write's would carry it.
            Box::pin(self.lock_slow_unless_busy(stripe)).await?;
        }
        Ok(StripeGuard { lock })
    }

    /// Waits for the write lock of a stripe however long its holder runs, for work that must
    /// not give up (a journal reload, a reader waiting out an install).
    pub(crate) async fn lock_patiently(&self, stripe: Stripe) -> StripeGuard<'_> {
        let lock = &self.locks[stripe.0];
        if !lock.try_lock_unwaited() {
            Box::pin(lock.lock_slow()).await;
        }
        StripeGuard { lock }
    }

    /// The write lock of a stripe if it is free now and nobody waits for it.
    pub(crate) fn try_lock(&self, stripe: Stripe) -> Option<StripeGuard<'_>> {
        let lock = &self.locks[stripe.0];
        // `then`, never `then_some`: an eagerly built guard would be dropped on failure and
        // release the lock its holder still has.
        lock.try_lock_unwaited().then(|| StripeGuard { lock })
    }

    /// Locks several stripes in a global order, so multi-key writers cannot deadlock; gives
    /// up as [`KeyLocks::lock`] does, releasing those it took.
    pub(crate) async fn lock_many(
        &self,
        mut stripes: Vec<Stripe>,
    ) -> Result<Vec<StripeGuard<'_>>, ScriptKind> {
        stripes.sort();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.lock(s).await?);
        }
        Ok(guards)
    }

    /// Locks every stripe, in order, as [`KeyLocks::lock_many`] does: gives up, holding none,
    /// on meeting a busy script's stripe (FLUSHDB answers `BUSY`, as Redis does, rather than
    /// hold every other stripe until the script ends).
    pub(crate) async fn lock_all_unless_busy(&self) -> Result<Vec<StripeGuard<'_>>, ScriptKind> {
        self.lock_many((0..self.locks.len()).map(Stripe).collect())
            .await
    }

    /// Locks every stripe, in order: no write is in progress while the guards are held.
    pub(crate) async fn lock_all(&self) -> Vec<StripeGuard<'_>> {
        let mut guards = Vec::with_capacity(self.locks.len());
        for s in 0..self.locks.len() {
            guards.push(self.lock_patiently(Stripe(s)).await);
        }
        guards
    }

    /// Waits for a stripe's lock and keeps it with no guard: the caller must
    /// [`KeyLocks::release`] it exactly once. For a transaction holding a set of stripes
    /// across awaits. Callers take stripes in ascending order only, or with [`try_hold`].
    ///
    /// Gives up as [`KeyLocks::lock`] does, holding nothing.
    ///
    /// [`try_hold`]: KeyLocks::try_hold
    pub(crate) async fn hold(&self, stripe: Stripe) -> Result<(), ScriptKind> {
        self.lock(stripe).await?.forget();
        Ok(())
    }

    /// Takes a stripe's lock if it is free now, as [`KeyLocks::hold`] does; false if another
    /// holds it. Never waits, so it can take a stripe out of order without risking a deadlock.
    pub(crate) fn try_hold(&self, stripe: Stripe) -> bool {
        self.locks[stripe.0].try_lock_unwaited()
    }

    /// Releases a stripe taken with [`KeyLocks::hold`] or [`KeyLocks::try_hold`].
    pub(crate) fn release(&self, stripe: Stripe) {
        self.locks[stripe.0].unlock();
    }

    /// The stripe's current version: odd while a transaction installs writes in it.
    pub(crate) fn version(&self, stripe: Stripe) -> u64 {
        self.versions[stripe.0].load(Ordering::SeqCst)
    }

    /// Waits until no transaction installs in the stripe (its holder released it), for a
    /// reader that found an odd version.
    pub(crate) async fn wait_installed(&self, stripe: Stripe) {
        drop(self.lock_patiently(stripe).await);
    }

    /// Marks a write to the stripe as visible in the store or buffer.
    pub(crate) fn bump(&self, stripe: Stripe) {
        self.versions[stripe.0].fetch_add(2, Ordering::SeqCst);
    }

    /// Makes the stripe's version odd: a transaction holding its lock is about to make writes
    /// visible in it. Readers wait until [`KeyLocks::end_install`].
    pub(crate) fn begin_install(&self, stripe: Stripe) {
        self.versions[stripe.0].fetch_add(1, Ordering::SeqCst);
    }

    /// Makes the version even again (and moved): the transaction's writes are all visible.
    pub(crate) fn end_install(&self, stripe: Stripe) {
        self.versions[stripe.0].fetch_add(1, Ordering::SeqCst);
    }

    /// Opens a read-through fill window in the stripe: from before the fill checks the version
    /// until after it removed a copy a write made stale. While one is open, a copy read from
    /// the cache in this stripe may be such a stale copy in the moment before its removal, so
    /// readers that overlap a window read the store instead ([`KeyLocks::no_fill_since`]).
    /// The window closes when the guard drops, even if the fill is cancelled.
    pub(crate) fn begin_fill(&self, stripe: Stripe) -> FillWindow<'_> {
        self.fills_begun[stripe.0].fetch_add(1, Ordering::SeqCst);
        FillWindow {
            ended: &self.fills_ended[stripe.0],
        }
    }

    /// Fill windows closed so far in the stripe: read before a cache lookup, for
    /// [`KeyLocks::no_fill_since`] after it.
    pub(crate) fn fills_ended(&self, stripe: Stripe) -> u64 {
        self.fills_ended[stripe.0].load(Ordering::SeqCst)
    }

    /// Whether no fill window was open at any time since `fills_ended` returned `ended`: every
    /// window begun by now had closed by then. A cache copy read in between is then no fill's
    /// stale install.
    pub(crate) fn no_fill_since(&self, stripe: Stripe, ended: u64) -> bool {
        self.fills_begun[stripe.0].load(Ordering::SeqCst) == ended
    }

    /// Bumps every stripe (FLUSHDB and other bulk changes).
    pub(crate) fn bump_all(&self) {
        for v in self.versions.iter() {
            v.fetch_add(2, Ordering::SeqCst);
        }
    }
}

/// An open read-through fill window ([`KeyLocks::begin_fill`]); closes on drop.
pub(crate) struct FillWindow<'a> {
    ended: &'a AtomicU64,
}

impl Drop for FillWindow<'_> {
    fn drop(&mut self) {
        self.ended.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_try_lock_leaves_the_holders_lock_held() {
        let locks = KeyLocks::default();
        let stripe = locks.stripe(0, b"k");
        assert!(locks.try_hold(stripe));
        assert!(locks.try_lock(stripe).is_none());
        assert!(
            locks.try_lock(stripe).is_none(),
            "still held after a failed attempt"
        );
        assert!(!locks.try_hold(stripe));
        locks.release(stripe);
        assert!(locks.try_lock(stripe).is_some());
    }
}
