//! The write-back buffer: the authoritative copy of every acknowledged write-back write until
//! the store confirms it.
//!
//! One entry per key (coalescing), each carrying the sequence number of its latest write. A
//! flush takes entries in sequence order; when the store confirms, an entry is dropped only if
//! it still carries the flushed sequence number, so a write that arrived during the flush is
//! kept for the next one and an older value can never overwrite a newer one.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::tiers::cache::CacheKey;
use crate::tiers::store::StoreWrite;

/// A buffered write.
#[derive(Debug, Clone)]
pub struct Pending {
    /// Sequence number of the latest write to this key.
    pub seq: u64,
    /// The latest write: an upsert or a tombstone.
    pub write: StoreWrite,
    /// Unix ms when the key first became dirty (kept across coalesced rewrites).
    pub dirty_since: u64,
}

/// An entry taken for a flush.
#[derive(Debug, Clone)]
pub struct FlushItem {
    /// The key.
    pub key: CacheKey,
    /// The sequence number flushed.
    pub seq: u64,
    /// The write flushed.
    pub write: StoreWrite,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<CacheKey, Pending>,
    order: BTreeMap<u64, CacheKey>,
    reserved: usize,
    bytes: usize,
}

/// Why a write could not enter the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReserveError {
    /// Still full after the backpressure timeout.
    Full,
}

/// A slot held for a write between its journal append and its buffer insert.
#[must_use]
#[derive(Debug)]
pub struct Reservation {
    counted: bool,
}

/// The per-keyspace buffer.
pub struct WriteBackBuffer {
    inner: Mutex<Inner>,
    max_dirty: usize,
    flush_batch: usize,
    space: Notify,
    /// Woken when the buffer holds a full batch or a flush is requested.
    pub wake: Notify,
}

fn write_bytes(key: &CacheKey, write: &StoreWrite) -> usize {
    key.key.len()
        + match write {
            StoreWrite::Upsert { value, .. } => value.len(),
            StoreWrite::Delete => 0,
        }
}

impl WriteBackBuffer {
    /// A buffer that admits `max_dirty` keys and asks for a flush at `flush_batch`.
    pub fn new(max_dirty: usize, flush_batch: usize) -> Self {
        WriteBackBuffer {
            inner: Mutex::new(Inner::default()),
            max_dirty: max_dirty.max(1),
            flush_batch: flush_batch.max(1),
            space: Notify::new(),
            wake: Notify::new(),
        }
    }

    /// The buffered write for `key`, if any.
    pub fn lookup(&self, key: &CacheKey) -> Option<Pending> {
        self.inner.lock().entries.get(key).cloned()
    }

    /// Holds room for a write to `key`, waiting up to `timeout` while the buffer is full.
    /// A key already buffered needs no room: its write coalesces.
    pub async fn reserve(
        &self,
        key: &CacheKey,
        timeout: Duration,
    ) -> Result<Reservation, ReserveError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.space.notified();
            {
                let mut inner = self.inner.lock();
                if inner.entries.contains_key(key) {
                    return Ok(Reservation { counted: false });
                }
                if inner.entries.len() + inner.reserved < self.max_dirty {
                    inner.reserved += 1;
                    return Ok(Reservation { counted: true });
                }
            }
            self.wake.notify_one();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ReserveError::Full);
            }
        }
    }

    /// Gives back a reservation whose write was abandoned.
    pub fn release(&self, reservation: Reservation) {
        if reservation.counted {
            self.inner.lock().reserved -= 1;
            self.space.notify_waiters();
        }
    }

    /// Buffers a write, replacing (coalescing) any older one for the key.
    pub fn insert(
        &self,
        reservation: Reservation,
        key: CacheKey,
        seq: u64,
        write: StoreWrite,
        now_ms: u64,
    ) {
        let full_batch;
        {
            let mut inner = self.inner.lock();
            if reservation.counted {
                inner.reserved -= 1;
            }
            let added = write_bytes(&key, &write);
            let dirty_since = match inner.entries.get(&key) {
                Some(old) => {
                    let (old_seq, old_since) = (old.seq, old.dirty_since);
                    let old_bytes = write_bytes(&key, &old.write);
                    inner.order.remove(&old_seq);
                    inner.bytes -= old_bytes;
                    old_since
                }
                None => now_ms,
            };
            inner.bytes += added;
            inner.order.insert(seq, key.clone());
            inner.entries.insert(
                key,
                Pending {
                    seq,
                    write,
                    dirty_since,
                },
            );
            full_batch = inner.entries.len() >= self.flush_batch;
        }
        if full_batch {
            self.wake.notify_one();
        }
    }

    /// Buffers a write recovered from the journal; replay may exceed `max_dirty`, since those
    /// writes were acknowledged before the crash.
    pub fn insert_replayed(&self, key: CacheKey, seq: u64, write: StoreWrite, now_ms: u64) {
        self.insert(Reservation { counted: false }, key, seq, write, now_ms);
    }

    /// Up to `flush_batch` entries, oldest sequence first.
    pub fn take_batch(&self) -> Vec<FlushItem> {
        let inner = self.inner.lock();
        inner
            .order
            .iter()
            .take(self.flush_batch)
            .filter_map(|(seq, key)| {
                inner.entries.get(key).map(|p| FlushItem {
                    key: key.clone(),
                    seq: *seq,
                    write: p.write.clone(),
                })
            })
            .collect()
    }

    /// Drops each flushed entry that was not rewritten since it was taken. Returns how many
    /// were dropped.
    pub fn complete<'a>(&self, done: impl IntoIterator<Item = &'a FlushItem>) -> usize {
        let mut removed = 0;
        {
            let mut inner = self.inner.lock();
            for item in done {
                if inner
                    .entries
                    .get(&item.key)
                    .is_some_and(|p| p.seq == item.seq)
                {
                    if let Some(p) = inner.entries.remove(&item.key) {
                        inner.bytes -= write_bytes(&item.key, &p.write);
                    }
                    inner.order.remove(&item.seq);
                    removed += 1;
                }
            }
        }
        if removed > 0 {
            self.space.notify_waiters();
        }
        removed
    }

    /// Drops every entry of `db` (FLUSHDB) and returns how many went.
    pub fn clear_db(&self, db: Option<u8>) -> usize {
        let mut inner = self.inner.lock();
        let doomed: Vec<(CacheKey, u64)> = inner
            .entries
            .iter()
            .filter(|(k, _)| db.is_none_or(|d| k.db == d))
            .map(|(k, p)| (k.clone(), p.seq))
            .collect();
        for (key, seq) in &doomed {
            if let Some(p) = inner.entries.remove(key) {
                inner.bytes -= write_bytes(key, &p.write);
            }
            inner.order.remove(seq);
        }
        drop(inner);
        self.space.notify_waiters();
        doomed.len()
    }

    /// True when new keys would have to wait for room.
    pub fn is_full(&self) -> bool {
        let inner = self.inner.lock();
        inner.entries.len() + inner.reserved >= self.max_dirty
    }

    /// Buffered entries.
    pub fn len(&self) -> usize {
        self.inner.lock().entries.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values buffered.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// The lowest buffered sequence number.
    pub fn min_seq(&self) -> Option<u64> {
        self.inner.lock().order.keys().next().copied()
    }

    /// Unix ms since which the oldest buffered write has waited.
    pub fn oldest_dirty_since(&self) -> Option<u64> {
        self.inner
            .lock()
            .entries
            .values()
            .map(|p| p.dirty_since)
            .min()
    }

    /// Snapshot of buffered keys with their writes, for KEYS / SCAN / DBSIZE.
    pub fn snapshot(&self, db: u8) -> Vec<(Bytes, StoreWrite)> {
        self.inner
            .lock()
            .entries
            .iter()
            .filter(|(k, _)| k.db == db)
            .map(|(k, p)| (k.key.clone(), p.write.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> CacheKey {
        CacheKey {
            db: 0,
            key: Bytes::copy_from_slice(k.as_bytes()),
        }
    }

    fn put(v: &str) -> StoreWrite {
        StoreWrite::Upsert {
            value: Bytes::copy_from_slice(v.as_bytes()),
            expires_at: None,
        }
    }

    #[tokio::test]
    async fn rewrites_coalesce_and_survive_a_concurrent_flush() {
        let buf = WriteBackBuffer::new(10, 10);
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, key("a"), 1, put("1"), 0);
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, key("a"), 2, put("2"), 5);
        assert_eq!(buf.len(), 1);
        let batch = buf.take_batch();
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].seq, 2);
        // A rewrite lands while the batch is in flight: completing the batch must keep it.
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, key("a"), 3, put("3"), 9);
        assert_eq!(buf.complete(&batch), 0);
        let p = buf.lookup(&key("a")).unwrap();
        assert_eq!(p.seq, 3);
        assert_eq!(p.dirty_since, 0);
    }

    #[tokio::test]
    async fn full_buffer_refuses_after_timeout_but_admits_rewrites() {
        let buf = WriteBackBuffer::new(1, 10);
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, key("a"), 1, put("1"), 0);
        assert_eq!(
            buf.reserve(&key("b"), Duration::from_millis(10))
                .await
                .unwrap_err(),
            ReserveError::Full
        );
        assert!(buf.reserve(&key("a"), Duration::ZERO).await.is_ok());
    }
}
