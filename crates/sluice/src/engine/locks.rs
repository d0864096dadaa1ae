//! Striped per-key write locks and version counters.
//!
//! Writes to one key are serialized by its stripe's lock, so store order and cache order
//! agree. The stripe's version counter is bumped by every write after the store (or buffer)
//! has the new value and before the cache is updated; a read-through installs what it read
//! only if the version did not move while it read, and removes it again if the version moved
//! while it installed. A read-through can therefore never leave an older value in the cache.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{Mutex, MutexGuard};

const STRIPES: usize = 4096;

/// Identifies the stripe of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stripe(usize);

/// The lock and version tables.
pub(crate) struct KeyLocks {
    locks: Box<[Mutex<()>]>,
    versions: Box<[AtomicU64]>,
    /// Randomly seeded, so clients cannot choose keys that all share one stripe.
    hasher: foldhash::fast::RandomState,
}

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks {
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            versions: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl KeyLocks {
    /// The stripe of `(db, key)`.
    pub(crate) fn stripe(&self, db: u8, key: &[u8]) -> Stripe {
        Stripe(self.hasher.hash_one((db, key)) as usize % STRIPES)
    }

    /// Waits for the write lock of a stripe.
    pub(crate) async fn lock(&self, stripe: Stripe) -> MutexGuard<'_, ()> {
        self.locks[stripe.0].lock().await
    }

    /// Locks several stripes in a global order, so multi-key writers cannot deadlock.
    pub(crate) async fn lock_many(&self, mut stripes: Vec<Stripe>) -> Vec<MutexGuard<'_, ()>> {
        stripes.sort();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for s in stripes {
            guards.push(self.locks[s.0].lock().await);
        }
        guards
    }

    /// Locks every stripe, in order: no write is in progress while the guards are held.
    pub(crate) async fn lock_all(&self) -> Vec<MutexGuard<'_, ()>> {
        let mut guards = Vec::with_capacity(self.locks.len());
        for lock in self.locks.iter() {
            guards.push(lock.lock().await);
        }
        guards
    }

    /// The stripe's current version.
    pub(crate) fn version(&self, stripe: Stripe) -> u64 {
        self.versions[stripe.0].load(Ordering::SeqCst)
    }

    /// Marks a write to the stripe as visible in the store or buffer.
    pub(crate) fn bump(&self, stripe: Stripe) {
        self.versions[stripe.0].fetch_add(1, Ordering::SeqCst);
    }

    /// Bumps every stripe (FLUSHDB and other bulk changes).
    pub(crate) fn bump_all(&self) {
        for v in self.versions.iter() {
            v.fetch_add(1, Ordering::SeqCst);
        }
    }
}
