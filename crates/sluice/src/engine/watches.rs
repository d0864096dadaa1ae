//! WATCH: which connections watch which keys, and the flag a change to a watched key sets.
//!
//! Every write calls [`Watches::touch`] under its key's lock, after the write is visible; a
//! transaction that checks its flags after taking the locks of its watched keys therefore sees
//! every write made before it (Redis's `touchWatchedKey`). While nobody watches anything a
//! touch costs one load.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use foldhash::fast::RandomState;
use parking_lot::Mutex;

use crate::model::DbKey;

/// One connection's watch of one key.
struct Watcher {
    /// The connection's flag, shared by all its watched keys.
    flag: Arc<AtomicBool>,
    /// Whether the key was alive when it was watched: only then does its expiry count as a
    /// change (a key already expired, deleted later, changed nothing).
    alive: bool,
}

/// The registry of watched keys.
#[derive(Default)]
pub(crate) struct Watches {
    /// Registrations, so that a write to an unwatched key costs one load.
    registered: AtomicUsize,
    /// Keyed with a random seed: clients choose the keys.
    by_key: Mutex<HashMap<DbKey, Vec<Watcher>, RandomState>>,
}

impl Watches {
    /// Registers `flag` as watching `key`.
    pub(crate) fn add(&self, key: DbKey, flag: &Arc<AtomicBool>, alive: bool) {
        let mut map = self.by_key.lock();
        map.entry(key).or_default().push(Watcher {
            flag: flag.clone(),
            alive,
        });
        self.registered.fetch_add(1, Ordering::SeqCst);
    }

    /// Unregisters `flag` from `key`.
    pub(crate) fn remove(&self, key: &DbKey, flag: &Arc<AtomicBool>) {
        let mut map = self.by_key.lock();
        if let Some(watchers) = map.get_mut(key) {
            let before = watchers.len();
            watchers.retain(|w| !Arc::ptr_eq(&w.flag, flag));
            let removed = before - watchers.len();
            if watchers.is_empty() {
                map.remove(key);
            }
            self.registered.fetch_sub(removed, Ordering::SeqCst);
        }
    }

    /// Records whether the key `flag` watches was alive when it was watched.
    pub(crate) fn set_alive(&self, key: &DbKey, flag: &Arc<AtomicBool>, alive: bool) {
        if let Some(watchers) = self.by_key.lock().get_mut(key) {
            for w in watchers.iter_mut().filter(|w| Arc::ptr_eq(&w.flag, flag)) {
                w.alive = alive;
            }
        }
    }

    /// A write changed `key`: every connection watching it will have its EXEC refused.
    pub(crate) fn touch(&self, key: &DbKey) {
        // SeqCst pairs with `add`: a registration before this load is seen; one after it came
        // after the write, which it need not see. A plain load on x86.
        if self.registered.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(watchers) = self.by_key.lock().get(key) {
            for w in watchers {
                w.flag.store(true, Ordering::SeqCst);
            }
        }
    }

    /// `key` was deleted because it expired: a change only for those who saw it alive.
    pub(crate) fn touch_expired(&self, key: &DbKey) {
        if self.registered.load(Ordering::SeqCst) == 0 {
            return;
        }
        if let Some(watchers) = self.by_key.lock().get(key) {
            for w in watchers.iter().filter(|w| w.alive) {
                w.flag.store(true, Ordering::SeqCst);
            }
        }
    }

    /// The watched keys of database `db`, or of every database.
    pub(crate) fn watched_in(&self, db: Option<u8>) -> Vec<DbKey> {
        if self.registered.load(Ordering::SeqCst) == 0 {
            return Vec::new();
        }
        self.by_key
            .lock()
            .keys()
            .filter(|k| db.is_none_or(|d| k.db == d))
            .cloned()
            .collect()
    }
}
