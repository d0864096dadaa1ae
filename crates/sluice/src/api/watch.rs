//! [`WatchSet`]: the keys one connection WATCHes, and whether EXEC must be refused.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use super::transaction::Transaction;
use crate::engine::Engine;
use crate::error::SluiceError;
use crate::model::DbKey;

/// One watched key.
struct Watched {
    key: DbKey,
    /// The key's expiry when it was watched, if it was alive and had one: its passing is a
    /// change, as in Redis 7.0.
    expires_at: Option<u64>,
}

/// The keys one connection watches. Any change to one of them after it was watched (a write
/// from any connection, this one included; its expiry; FLUSHDB while it existed) makes
/// [`WatchSet::changed`] true. A read-through that fills the cache is not a change. Dropping
/// the set unwatches everything.
pub struct WatchSet {
    engine: Arc<Engine>,
    flag: Arc<AtomicBool>,
    keys: Vec<Watched>,
}

impl WatchSet {
    pub(crate) fn new(engine: Arc<Engine>) -> WatchSet {
        WatchSet {
            engine,
            flag: Arc::new(AtomicBool::new(false)),
            keys: Vec::new(),
        }
    }

    /// Watches `key` of `db` (again watching a watched key changes nothing).
    pub async fn watch(&mut self, db: u8, key: Bytes) -> Result<(), SluiceError> {
        let key = DbKey { db, key };
        if self.keys.iter().any(|w| w.key == key) {
            return Ok(());
        }
        // Registered before the read: a write after the read is seen, one before it is read.
        self.engine.watches.add(key.clone(), &self.flag, true);
        let route = self.engine.route(db, key.key.clone());
        let entry = match self.engine.read(&route).await {
            Ok(entry) => entry,
            Err(e) => {
                self.engine.watches.remove(&key, &self.flag);
                return Err(e);
            }
        };
        if entry.is_none() {
            self.engine.watches.set_alive(&key, &self.flag, false);
        }
        self.keys.push(Watched {
            key,
            expires_at: entry.and_then(|e| e.expires_at),
        });
        Ok(())
    }

    /// Unwatches every key (UNWATCH, EXEC, DISCARD, RESET).
    pub fn unwatch(&mut self) {
        for w in self.keys.drain(..) {
            self.engine.watches.remove(&w.key, &self.flag);
        }
        self.flag.store(false, Ordering::SeqCst);
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The watched keys, as (database, key): EXEC takes their locks with its own, so that no
    /// write to them can slip between the check and the commit.
    pub fn keys(&self) -> impl Iterator<Item = (u8, &[u8])> + '_ {
        self.keys.iter().map(|w| (w.key.db, &w.key.key[..]))
    }

    /// Whether a watched key changed since it was watched, so EXEC must not run. Ask with the
    /// transaction that holds the watched keys' locks.
    pub fn changed(&self, txn: &Transaction) -> bool {
        self.flag.load(Ordering::SeqCst)
            || self
                .keys
                .iter()
                .any(|w| w.expires_at.is_some_and(|e| e < txn.now_ms()))
    }
}

impl Drop for WatchSet {
    fn drop(&mut self) {
        self.unwatch();
    }
}
