//! Clients blocked on keys (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP; BZPOPMIN, BZPOPMAX,
//! BZMPOP): who waits for which key, in the order they blocked, and the wake-up when a command
//! changed one of those keys.
//!
//! A blocked client holds a [`BlockTicket`], in the queue of each key it waits for, with the
//! type it waits for ([`BlockKind`]). A command that changes a key (any write that stages a
//! keyspace event, notifications on or off) marks it ready; once the command, EXEC or script
//! is applied, [`Blocking::signal`] wakes the first client in that key's queue that waits for
//! the key's type (a push wakes the first list client, a ZADD the first sorted-set client; an
//! event that does not say the type, such as a RENAME, the first of each), and records the key
//! in that client's ready keys, in the order they became ready. That client runs its command
//! again on its ready keys, in that order, as Redis serves a key in the order keys became
//! ready: if it took something it leaves the queues and passes the turn to the next client of
//! each of its keys (the key may hold more; so does a client that gives up); if another client
//! took it first, it keeps its place and waits again. So the clients of one type are served in
//! the order they blocked, and a client of another type never holds them up, as in Redis. A
//! wake-up is never lost: [`Notify`] keeps a permit for a client between its attempt and its
//! wait, and a ticket is taken before the command's first attempt.
//!
//! Unlike Redis, a command from a client that is not blocked may take the new value between
//! the write and the blocked client's turn: Redis serves blocked clients before its next
//! command, Sluice runs clients in parallel.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;

/// The type a blocked client waits for: only a client of the key's type can take from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP.
    List,
    /// BZPOPMIN, BZPOPMAX, BZMPOP.
    ZSet,
    /// XREAD BLOCK: a read takes nothing, so every such client is woken, not the first.
    Stream,
}

impl BlockKind {
    const ALL: [BlockKind; 3] = [BlockKind::List, BlockKind::ZSet, BlockKind::Stream];
}

/// One blocked client: how it is woken, and what woke it.
pub struct Waiter {
    notify: Notify,
    kind: BlockKind,
    /// The keys signalled for it since it last looked, in the order they became ready.
    ready: Mutex<Vec<Bytes>>,
}

impl Waiter {
    /// Marks `key` ready for this client and wakes it.
    fn wake(&self, key: &Bytes) {
        {
            let mut ready = self.ready.lock();
            if !ready.contains(key) {
                ready.push(key.clone());
            }
        }
        self.notify.notify_one();
    }

    /// Completes when a key of this client was signalled (at once if one was meanwhile).
    pub fn notified(&self) -> Notified<'_> {
        self.notify.notified()
    }
}

/// Each key's blocked clients, first blocked first.
type Queues = HashMap<(u8, Bytes), VecDeque<Arc<Waiter>>>;

/// Wakes the first client in `queue` of each of `kinds`; every stream reader.
fn wake_first(queue: &VecDeque<Arc<Waiter>>, key: &Bytes, kinds: &[BlockKind]) {
    for kind in kinds {
        if *kind == BlockKind::Stream {
            for reader in queue.iter().filter(|w| w.kind == BlockKind::Stream) {
                reader.wake(key);
            }
        } else if let Some(first) = queue.iter().find(|w| w.kind == *kind) {
            first.wake(key);
        }
    }
}

/// The clients blocked on keys.
#[derive(Default)]
pub struct Blocking {
    /// Clients holding a ticket: a write looks at this (one relaxed load) before it marks a
    /// key ready, so writes cost nothing while nobody blocks. Counted from before a blocking
    /// command's first look, so that no change is missed.
    blocked: AtomicUsize,
    /// Clients waiting now, their first look done (INFO `blocked_clients`): a client counted
    /// here has seen nothing to take, as in Redis.
    waiting: AtomicUsize,
    queues: Mutex<Queues>,
}

impl Blocking {
    /// Whether any client is blocked.
    pub fn any_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) > 0
    }

    /// How many clients are blocked (INFO `blocked_clients`): waiting, having found nothing.
    pub fn blocked_clients(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Counts a client's wait (the connection's), until the guard is dropped.
    pub fn wait_guard(self: &Arc<Self>) -> WaitGuard {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        WaitGuard(self.clone())
    }

    /// Queues a client waiting for a `kind` at the end of each key's queue. The ticket leaves
    /// them when dropped.
    pub fn block(self: &Arc<Self>, db: u8, keys: &[Bytes], kind: BlockKind) -> BlockTicket {
        let waiter = Arc::new(Waiter {
            notify: Notify::new(),
            kind,
            ready: Mutex::new(Vec::new()),
        });
        {
            let mut queues = self.queues.lock();
            for key in keys {
                let queue = queues.entry((db, key.clone())).or_default();
                // A key named twice is waited for once.
                if !queue.iter().any(|w| Arc::ptr_eq(w, &waiter)) {
                    queue.push_back(waiter.clone());
                }
            }
        }
        self.blocked.fetch_add(1, Ordering::Relaxed);
        BlockTicket {
            blocking: self.clone(),
            waiter,
            db,
            keys: keys.to_vec(),
        }
    }

    /// Wakes the clients blocked on the keys of database `db` (of every database: `None`), as
    /// [`Blocking::signal`] of each key does: FLUSHDB and FLUSHALL deleted them (a blocked
    /// XREADGROUP answers that its key is gone).
    pub fn signal_flushed(&self, db: Option<u8>) {
        let queues = self.queues.lock();
        for ((key_db, key), queue) in queues.iter() {
            if db.is_none_or(|db| db == *key_db) {
                wake_first(queue, key, &BlockKind::ALL);
            }
        }
    }

    /// Wakes the first client blocked on `key` that waits for `kind`, or the first of each
    /// kind when the change does not say the key's type (`None`): the key changed.
    pub fn signal(&self, db: u8, key: &Bytes, kind: Option<BlockKind>) {
        let queues = self.queues.lock();
        if let Some(queue) = queues.get(&(db, key.clone())) {
            match kind {
                Some(kind) => wake_first(queue, key, &[kind]),
                None => wake_first(queue, key, &BlockKind::ALL),
            }
        }
    }
}

/// One connection waiting on keys, counted in INFO `blocked_clients` while it lives.
pub struct WaitGuard(Arc<Blocking>);

impl Drop for WaitGuard {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client's place in the queues of the keys it is blocked on.
pub struct BlockTicket {
    blocking: Arc<Blocking>,
    waiter: Arc<Waiter>,
    db: u8,
    keys: Vec<Bytes>,
}

impl BlockTicket {
    /// Waits for a key of this ticket to be signalled (at once if one was meanwhile).
    pub async fn woken(&self) {
        self.waiter.notified().await;
    }

    /// Whether this client is the first blocked on `key` among those waiting for its type:
    /// only that one may take from it, so a client first for another key, woken for that one,
    /// leaves this key's element to the client it is for (Redis serves each key's clients in
    /// order).
    pub fn is_first(&self, key: &Bytes) -> bool {
        let queues = self.blocking.queues.lock();
        queues
            .get(&(self.db, key.clone()))
            .and_then(|queue| queue.iter().find(|w| w.kind == self.waiter.kind))
            .is_some_and(|w| Arc::ptr_eq(w, &self.waiter))
    }

    /// The keys signalled since the last call, in the order they became ready.
    pub fn take_ready(&self) -> Vec<Bytes> {
        std::mem::take(&mut *self.waiter.ready.lock())
    }

    /// What [`BlockTicket::woken`] waits on, to wait without borrowing the ticket.
    pub fn waker(&self) -> Arc<Waiter> {
        self.waiter.clone()
    }
}

impl Drop for BlockTicket {
    fn drop(&mut self) {
        let mut queues = self.blocking.queues.lock();
        for key in &self.keys {
            let k = (self.db, key.clone());
            let Some(queue) = queues.get_mut(&k) else {
                continue;
            };
            queue.retain(|w| !Arc::ptr_eq(w, &self.waiter));
            if queue.is_empty() {
                queues.remove(&k);
            } else {
                // Pass the turn on: the key may hold more than this client took, and a client
                // that gives up (timeout, disconnect) may have been the one woken last, for a
                // change of any type. A needless wake-up costs the next client one more
                // attempt. Stream readers take nothing, so they have no turn to pass.
                wake_first(queue, key, &[BlockKind::List, BlockKind::ZSet]);
            }
        }
        drop(queues);
        self.blocking.blocked.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[tokio::test]
    async fn the_first_blocked_client_is_woken_and_passes_the_turn_on() {
        let blocking = Arc::new(Blocking::default());
        assert!(!blocking.any_blocked());
        let first = blocking.block(0, &[k("a"), k("b")], BlockKind::List);
        let second = blocking.block(0, &[k("a")], BlockKind::List);
        assert!(blocking.any_blocked());
        let waiting = blocking.wait_guard();
        assert_eq!(blocking.blocked_clients(), 1);
        drop(waiting);
        assert_eq!(blocking.blocked_clients(), 0);
        blocking.signal(0, &k("a"), Some(BlockKind::List));
        // Only the first is woken (its permit is kept until it waits).
        tokio::time::timeout(std::time::Duration::from_secs(1), first.woken())
            .await
            .expect("first woken");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), second.woken())
                .await
                .is_err(),
            "the second waits its turn"
        );
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(1), second.woken())
            .await
            .expect("second's turn");
        drop(second);
        assert!(!blocking.any_blocked());
        assert!(blocking.queues.lock().is_empty());
        // A signal for a key nobody waits for does nothing.
        blocking.signal(0, &k("a"), None);
    }

    #[tokio::test]
    async fn a_client_waiting_for_another_type_never_holds_up_the_key() {
        let blocking = Arc::new(Blocking::default());
        let zset = blocking.block(0, &[k("a")], BlockKind::ZSet);
        let list = blocking.block(0, &[k("b"), k("a")], BlockKind::List);
        assert!(zset.is_first(&k("a")) && list.is_first(&k("a")));
        blocking.signal(0, &k("b"), Some(BlockKind::List));
        blocking.signal(0, &k("a"), Some(BlockKind::List));
        tokio::time::timeout(std::time::Duration::from_secs(1), list.woken())
            .await
            .expect("the list client is woken");
        // Its ready keys come in the order they became ready.
        assert_eq!(list.take_ready(), vec![k("b"), k("a")]);
        assert!(list.take_ready().is_empty());
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(20), zset.woken())
                .await
                .is_err(),
            "a push does not wake the sorted-set client"
        );
        // A change that does not say the type wakes both.
        blocking.signal(0, &k("a"), None);
        tokio::time::timeout(std::time::Duration::from_secs(1), zset.woken())
            .await
            .expect("woken by a change of unknown type");
        assert_eq!(zset.take_ready(), vec![k("a")]);
    }
}
