//! Clients blocked on keys (BZPOPMIN, BZPOPMAX, BZMPOP): who waits for which key, in the order
//! they blocked, and the wake-up when a command changed one of those keys.
//!
//! A blocked client holds a [`BlockTicket`], in the queue of each key it waits for. A command
//! that changes a key (any write that stages a keyspace event, notifications on or off) marks it
//! ready; once the command, EXEC or script is applied, [`Blocking::signal`] wakes the first
//! client in that key's queue. That client runs its command again: if it took something it
//! leaves the queues and passes the turn to the next client of each of its keys (the key may
//! hold more; so does a client that gives up); if another client took it first, it keeps its place and waits again. So clients
//! are served in the order they blocked, as in Redis. A wake-up is never lost: [`Notify`] keeps
//! a permit for a client between its attempt and its wait, and a ticket is taken before the
//! command's first attempt.
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
use tokio::sync::Notify;

/// Each key's blocked clients, first blocked first: a client's waker.
type Queues = HashMap<(u8, Bytes), VecDeque<Arc<Notify>>>;

/// The clients blocked on keys.
#[derive(Default)]
pub struct Blocking {
    /// Clients blocked now: a write looks at this (one relaxed load) before it marks a key
    /// ready, so writes cost nothing while nobody blocks.
    blocked: AtomicUsize,
    queues: Mutex<Queues>,
}

impl Blocking {
    /// Whether any client is blocked.
    pub fn any_blocked(&self) -> bool {
        self.blocked.load(Ordering::Relaxed) > 0
    }

    /// How many clients are blocked (INFO `blocked_clients`).
    pub fn blocked_clients(&self) -> usize {
        self.blocked.load(Ordering::Relaxed)
    }

    /// Queues a client at the end of each key's queue. The ticket leaves them when dropped.
    pub fn block(self: &Arc<Self>, db: u8, keys: &[Bytes]) -> BlockTicket {
        let waker = Arc::new(Notify::new());
        {
            let mut queues = self.queues.lock();
            for key in keys {
                let queue = queues.entry((db, key.clone())).or_default();
                // A key named twice is waited for once.
                if !queue.iter().any(|w| Arc::ptr_eq(w, &waker)) {
                    queue.push_back(waker.clone());
                }
            }
        }
        self.blocked.fetch_add(1, Ordering::Relaxed);
        BlockTicket {
            blocking: self.clone(),
            waker,
            db,
            keys: keys.to_vec(),
        }
    }

    /// Wakes the first client blocked on `key`, if any: the key changed.
    pub fn signal(&self, db: u8, key: &Bytes) {
        let queues = self.queues.lock();
        if let Some(first) = queues.get(&(db, key.clone())).and_then(VecDeque::front) {
            first.notify_one();
        }
    }
}

/// A client's place in the queues of the keys it is blocked on.
pub struct BlockTicket {
    blocking: Arc<Blocking>,
    waker: Arc<Notify>,
    db: u8,
    keys: Vec<Bytes>,
}

impl BlockTicket {
    /// Waits for a key of this ticket to be signalled (at once if one was meanwhile).
    pub async fn woken(&self) {
        self.waker.notified().await;
    }

    /// Whether this client is the first blocked on `key`: only the first may take from it, so
    /// a client first for another key, woken for that one, leaves this key's member to the
    /// client it is for (Redis serves each key's clients in order).
    pub fn is_first(&self, key: &Bytes) -> bool {
        let queues = self.blocking.queues.lock();
        queues
            .get(&(self.db, key.clone()))
            .and_then(VecDeque::front)
            .is_some_and(|w| Arc::ptr_eq(w, &self.waker))
    }

    /// What [`BlockTicket::woken`] waits on, to wait without borrowing the ticket.
    pub fn waker(&self) -> Arc<Notify> {
        self.waker.clone()
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
            queue.retain(|w| !Arc::ptr_eq(w, &self.waker));
            if queue.is_empty() {
                queues.remove(&k);
            } else if let Some(next) = queue.front() {
                // Pass the turn on: the key may hold more than this client took, and a client
                // that gives up (timeout, disconnect) may have been the one woken last. A
                // needless wake-up costs the next client one more attempt.
                next.notify_one();
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
        let first = blocking.block(0, &[k("a"), k("b")]);
        let second = blocking.block(0, &[k("a")]);
        assert_eq!(blocking.blocked_clients(), 2);
        blocking.signal(0, &k("a"));
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
        blocking.signal(0, &k("a"));
    }
}
