//! The write-back buffer: the authoritative copy of every acknowledged write-back write until
//! the store confirms it.
//!
//! One entry per key (coalescing), each carrying the sequence number of its latest write. A
//! flush takes entries in sequence order; when the store confirms, an entry is dropped only if
//! it still carries the flushed sequence number, so a write that arrived during the flush is
//! kept for the next one and an older value can never overwrite a newer one.
//!
//! The size trigger counts only *fresh* keys: keys that became dirty since the last drain
//! started and that no drain stored during the current epoch (an epoch starts with each timed
//! drain, see [`WriteBackBuffer::begin_drain`]). A bulk load of new keys therefore asks for a
//! flush every `flush_batch` keys, while a hot set of any size, rewritten between flushes,
//! coalesces until `flush_interval`. Rewrites of a buffered key never count. The memory of
//! stored keys holds 64-bit fingerprints, at most `max_dirty` of them, and is consulted only
//! when a key enters the buffer, never on the coalescing path.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::BuildHasher;

use foldhash::fast::{FixedState, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::model::{DbKey, StoreWrite};
use crate::tiers::journal::TxnGroup;

/// The transaction a buffered write belongs to, while no later write of its key replaced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BufferedGroup {
    /// The transaction's journal group: its members hold its sequence numbers.
    pub txn: TxnGroup,
    /// Whether the transaction also wrote to other write-back keyspaces. No keyspace's own drain
    /// takes such a group ([`WriteBackBuffer::take_batch`] skips it): the engine stores it whole,
    /// every keyspace's members in one database transaction, holding each of those keyspaces'
    /// flush locks (`engine/spanning.rs`).
    pub spans_keyspaces: bool,
}

/// One write of a transaction for [`WriteBackBuffer::insert_group`]: its reservation, key and
/// sequence number, and the write.
pub(crate) type GroupWrite<'k> = (Reservation, &'k DbKey, u64, StoreWrite);

/// What the journal record of a write holds, which decides where a replay of its key must
/// start (the key's *chain*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// Everything of the key still to be stored (or there is no journal): a replay needs no
    /// older record of the key, and the chain starts at this one.
    Whole,
    /// Only the members this write changed ([`crate::tiers::journal::JournalOp::Members`]): a
    /// replay needs the key's records from `base` (its last whole record) on, so the
    /// checkpoint stays below `base` while the key is buffered. `bytes` is the record's size.
    Members {
        /// Sequence number of the chain's whole record.
        base: u64,
        /// Bytes of this record's members.
        bytes: usize,
    },
}

/// A buffered write.
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    /// Sequence number of the latest write to this key.
    pub seq: u64,
    /// The latest write: an upsert or a tombstone.
    pub write: StoreWrite,
    /// Unix ms when the key first became dirty (kept across coalesced rewrites).
    pub dirty_since: u64,
    /// Sequence number of the oldest write no flush has taken yet (kept across coalesced
    /// rewrites). A drain takes every key whose `first_seq` is at or below its cutoff, with
    /// its latest value: a key rewritten between the drain's start and its batch is still
    /// stored by that drain, so a constantly rewritten key cannot be skipped drain after drain.
    pub first_seq: u64,
    /// The transaction whose write this is, while no later write replaced it: a flush takes
    /// every entry still in the group together, and stores them in one transaction.
    pub group: Option<BufferedGroup>,
    /// Sequence number of the key's oldest journal record a replay needs (its last whole
    /// record, see [`Recorded`]); `seq` when the latest record is whole.
    pub chain_seq: u64,
    /// Bytes of member records journaled since `chain_seq`.
    pub chain_bytes: usize,
    /// A writer holding the key's lock is journaling a member record onto this entry's
    /// chain ([`WriteBackBuffer::member_chain`]): a flush that stores the entry keeps it
    /// (and so its chain) until that write is buffered.
    pinned: bool,
    /// A flush stored this key while its chain went on: the next record is whole and starts
    /// a new chain, so a hot key's chain (which the checkpoint stays below, holding every
    /// other key's records too) spans one flush, not the life of the key.
    chain_flushed: bool,
}

/// A FLUSHDB or FLUSHALL of a keyspace in progress ([`WriteBackBuffer::begin_clear`]); member
/// records are back once it is ended or dropped (a cancelled clear included).
pub(crate) struct Clearing<'b> {
    buffer: &'b WriteBackBuffer,
}

impl Clearing<'_> {
    /// The clear is over; `journaled`: its journal record's sequence number, if it has one.
    /// Chains whose whole record is at or below it are never extended again.
    pub(crate) fn end(self, journaled: Option<u64>) {
        if let Some(seq) = journaled {
            self.buffer.chain_floor.fetch_max(seq, Ordering::SeqCst);
        }
    }
}

impl Drop for Clearing<'_> {
    fn drop(&mut self) {
        self.buffer.clears.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A key's newest write, as replayed from the journal.
#[derive(Debug, Clone)]
pub(crate) struct Replayed {
    /// Its sequence number.
    pub seq: u64,
    /// The write.
    pub write: StoreWrite,
    /// Its transaction's group.
    pub group: Option<BufferedGroup>,
    /// Sequence number of its chain's whole record: `seq` unless later member records were
    /// applied onto it.
    pub chain_seq: u64,
    /// Bytes of the member records applied since `chain_seq`.
    pub chain_bytes: usize,
}

impl Replayed {
    /// A key's write replayed from a whole record: its chain starts there.
    pub(crate) fn whole(seq: u64, write: StoreWrite, group: Option<BufferedGroup>) -> Replayed {
        Replayed {
            seq,
            write,
            group,
            chain_seq: seq,
            chain_bytes: 0,
        }
    }

    /// How a replay got to it: from a whole record, or with member records after one.
    pub(crate) fn recorded(&self) -> Recorded {
        if self.chain_seq == self.seq {
            Recorded::Whole
        } else {
            Recorded::Members {
                base: self.chain_seq,
                bytes: self.chain_bytes,
            }
        }
    }
}

/// An entry taken for a flush.
#[derive(Debug, Clone)]
pub(crate) struct FlushItem {
    /// The key.
    pub key: DbKey,
    /// The sequence number flushed.
    pub seq: u64,
    /// The write flushed.
    pub write: StoreWrite,
    /// Its transaction's group, if it is still part of one: the flush isolates failures by
    /// group, never splitting one.
    pub group: Option<BufferedGroup>,
}

#[derive(Default)]
struct Inner {
    /// Keyed with a random seed, so clients cannot pick colliding keys.
    entries: HashMap<DbKey, Pending, RandomState>,
    order: BTreeMap<u64, DbKey>,
    /// The `chain_seq` of every entry whose chain started before its latest write: with
    /// `order`, what the checkpoint must stay below.
    chain_bases: BTreeSet<u64>,
    reserved: usize,
    bytes: usize,
    /// Fingerprints of the keys drains took during the current epoch.
    /// Fingerprints are already seeded hashes: an unkeyed hash of them is enough.
    stored: HashSet<u64, FixedState>,
    /// Keys that entered the buffer since the last drain started and are not in `stored`.
    fresh: usize,
}

impl Inner {
    /// Whether a key not buffered yet would have to wait for room.
    fn full(&self, max_dirty: usize) -> bool {
        self.entries.len() + self.reserved >= max_dirty
    }

    /// Gives back the table's memory once a burst has drained: a map that once held a
    /// million dirty keys would otherwise keep their slots for the life of the process.
    fn shrink_if_sparse(&mut self) {
        let capacity = self.entries.capacity();
        if capacity > 1024 && self.entries.len() < capacity / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
        if self.stored.capacity() > 1024 && self.stored.len() < self.stored.capacity() / 4 {
            self.stored.shrink_to(self.stored.len() * 2);
        }
    }

    /// Drops `key`'s entry, whose latest write is `seq`, with its place in the flush order and
    /// its chain's hold on the checkpoint.
    fn remove(&mut self, key: &DbKey, seq: u64) {
        if let Some(p) = self.entries.remove(key) {
            self.bytes -= write_bytes(key, &p.write);
            if p.chain_seq != p.seq {
                self.chain_bases.remove(&p.chain_seq);
            }
        }
        self.order.remove(&seq);
    }

    /// The entries still in `group`, by sequence number: its members hold its numbers, and a
    /// rewrite of a member's key takes that key out of it.
    fn members(&self, group: BufferedGroup) -> impl Iterator<Item = (u64, &DbKey, &Pending)> {
        let numbers =
            group.txn.first_seq..group.txn.first_seq.saturating_add(u64::from(group.txn.len));
        self.order.range(numbers).filter_map(move |(seq, key)| {
            self.entries
                .get(key)
                .filter(|p| p.group == Some(group))
                .map(|p| (*seq, key, p))
        })
    }

    /// Remembers a key a drain took; forgets everything first rather than exceed `cap`.
    fn remember(&mut self, fingerprint: u64, cap: usize) {
        if self.stored.len() >= cap && !self.stored.contains(&fingerprint) {
            self.stored.clear();
        }
        self.stored.insert(fingerprint);
    }
}

/// Why a write could not enter the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReserveError {
    /// Still full after the backpressure timeout.
    Full,
}

/// A slot held for a write between its journal append and its buffer insert.
#[must_use]
#[derive(Debug)]
pub(crate) struct Reservation {
    counted: bool,
}

/// The per-keyspace buffer.
pub(crate) struct WriteBackBuffer {
    inner: Mutex<Inner>,
    /// `inner.entries.len()`, stored in the same critical section that changes the map, so a
    /// reader can skip the lock while nothing is buffered (see [`WriteBackBuffer::lookup`]).
    len: AtomicUsize,
    /// Keys admitted; CONFIG SET `sluice-max_dirty` changes it at run time.
    max_dirty: AtomicUsize,
    /// Fresh keys that make a flush due; CONFIG SET `sluice-flush_batch` changes it.
    flush_batch: AtomicUsize,
    fingerprints: RandomState,
    /// FLUSHDB / FLUSHALL runs in progress on this keyspace ([`WriteBackBuffer::begin_clear`]).
    clears: AtomicUsize,
    /// The highest sequence number of a journaled clear: a chain whose whole record is at or
    /// below it may have been voided by it, and is never extended.
    chain_floor: AtomicU64,
    space: Notify,
    /// Woken when `flush_batch` fresh keys are buffered or a writer waits for room. A hint:
    /// the flusher checks [`WriteBackBuffer::flush_due`] before draining.
    pub wake: Notify,
}

fn write_bytes(key: &DbKey, write: &StoreWrite) -> usize {
    key.key.len() + write.value_len()
}

impl WriteBackBuffer {
    /// A buffer that admits `max_dirty` keys and asks for a flush at `flush_batch` fresh keys.
    pub(crate) fn new(max_dirty: usize, flush_batch: usize) -> Self {
        WriteBackBuffer {
            inner: Mutex::new(Inner::default()),
            len: AtomicUsize::new(0),
            max_dirty: AtomicUsize::new(max_dirty.max(1)),
            flush_batch: AtomicUsize::new(flush_batch.max(1)),
            fingerprints: RandomState::default(),
            clears: AtomicUsize::new(0),
            chain_floor: AtomicU64::new(0),
            space: Notify::new(),
            wake: Notify::new(),
        }
    }

    /// The keys admitted now.
    pub(crate) fn max_dirty(&self) -> usize {
        self.max_dirty.load(Ordering::Relaxed)
    }

    /// The fresh keys that make a flush due now, and the most a batch stores.
    pub(crate) fn flush_batch(&self) -> usize {
        self.flush_batch.load(Ordering::Relaxed)
    }

    /// Admits `n` keys (at least 1) from now on: writers waiting for room look again, and a
    /// smaller limit holds new keys back until flushes bring the buffer under it.
    pub(crate) fn set_max_dirty(&self, n: usize) {
        self.max_dirty.store(n.max(1), Ordering::Relaxed);
        self.space.notify_waiters();
        self.wake.notify_one();
    }

    /// Makes a flush due at `n` fresh keys (at least 1) from now on; the flusher looks at once.
    pub(crate) fn set_flush_batch(&self, n: usize) {
        self.flush_batch.store(n.max(1), Ordering::Relaxed);
        self.wake.notify_one();
    }

    #[inline]
    fn fingerprint(&self, key: &DbKey) -> u64 {
        self.fingerprints.hash_one(key)
    }

    /// Most fingerprints remembered per epoch.
    fn memory_cap(&self) -> usize {
        self.max_dirty().max(self.flush_batch())
    }

    /// The buffered write for `key`, if any.
    ///
    /// Lock-free while the buffer is empty. `len` changes in the same critical section as the
    /// map, and a write is acknowledged only after its insert released the lock and it bumped
    /// its stripe version (SeqCst), so a read ordered after the acknowledgement, or after a
    /// version read that saw the bump, sees a non-zero count and takes the lock. A count of
    /// zero seen by a read that races an unacknowledged write is a read from before it.
    pub(crate) fn lookup(&self, key: &DbKey) -> Option<Pending> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.inner.lock().entries.get(key).cloned()
    }

    /// Holds room for a write to `key`, waiting up to `timeout` while the buffer is full.
    /// A key already buffered needs no room: its write coalesces.
    pub(crate) async fn reserve(
        &self,
        key: &DbKey,
        timeout: Duration,
    ) -> Result<Reservation, ReserveError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.space.notified();
            if let Some(reservation) = self.try_reserve(key) {
                return Ok(reservation);
            }
            self.wake.notify_one();
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(ReserveError::Full);
            }
        }
    }

    /// Holds room for a write to `key` if there is room now (or the key is buffered already).
    /// The common case, without the future and timer of [`WriteBackBuffer::reserve`].
    pub(crate) fn try_reserve(&self, key: &DbKey) -> Option<Reservation> {
        let mut inner = self.inner.lock();
        if inner.entries.contains_key(key) {
            return Some(Reservation { counted: false });
        }
        if !inner.full(self.max_dirty()) {
            inner.reserved += 1;
            return Some(Reservation { counted: true });
        }
        None
    }

    /// Reserves and inserts in one critical section, for a write with nothing to do between the
    /// two (no journal record): buffers `write` if the key is buffered already or there is room
    /// now, and otherwise hands it back for [`WriteBackBuffer::reserve`].
    ///
    /// `now_ms` is called only if the key enters the buffer (its `dirty_since`).
    #[inline]
    pub(crate) fn try_insert(
        &self,
        key: &DbKey,
        seq: u64,
        write: StoreWrite,
        now_ms: impl FnOnce() -> u64,
    ) -> Result<(), StoreWrite> {
        let batch_due = {
            let mut guard = self.inner.lock();
            let inner = &mut *guard;
            // `full` first: the key is hashed here only when the buffer is full.
            if inner.full(self.max_dirty()) && !inner.entries.contains_key(key) {
                return Err(write);
            }
            self.insert_locked(inner, key, seq, write, now_ms, None, Recorded::Whole)
        };
        if batch_due {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Gives back a reservation whose write was abandoned.
    pub(crate) fn release(&self, reservation: Reservation) {
        if reservation.counted {
            self.inner.lock().reserved -= 1;
            self.space.notify_waiters();
        }
    }

    /// Buffers a write, replacing (coalescing) any older one for the key. A key entering the
    /// buffer that no drain stored this epoch is fresh; the `flush_batch`-th fresh key since
    /// the last drain started wakes the flusher.
    pub(crate) fn insert(
        &self,
        reservation: Reservation,
        key: &DbKey,
        seq: u64,
        write: StoreWrite,
        now_ms: u64,
        recorded: Recorded,
    ) {
        self.insert_in_group(reservation, key, seq, write, now_ms, None, recorded);
    }

    /// For a writer holding `key`'s lock that may journal a member record: the key's chain
    /// (its whole record's sequence number, and the bytes of member records since) if the
    /// buffered write is a partial write of `kind` outside any transaction's group, not expired
    /// at `now_ms` (a write onto an expired key starts a new value, not the buffered one). The
    /// entry is then pinned, so the chain stays buffered until [`WriteBackBuffer::insert`] or
    /// [`WriteBackBuffer::unpin`].
    pub(crate) fn member_chain(
        &self,
        key: &DbKey,
        kind: crate::model::Kind,
        now_ms: u64,
    ) -> Option<(u64, usize)> {
        if self.len.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut inner = self.inner.lock();
        let p = inner.entries.get_mut(key)?;
        if self.clears.load(Ordering::SeqCst) > 0
            || p.chain_flushed
            || p.chain_seq <= self.chain_floor.load(Ordering::SeqCst)
        {
            return None;
        }
        match &p.write {
            StoreWrite::Partial(w)
                if w.kind == kind
                    && p.group.is_none()
                    && w.expires_at.is_none_or(|at| at > now_ms) =>
            {
                p.pinned = true;
                Some((p.chain_seq, p.chain_bytes))
            }
            _ => None,
        }
    }

    /// A FLUSHDB or FLUSHALL of this keyspace begins, `last_seq` being the engine's last
    /// sequence number. Its journal record, appended after the table is cleared (and before
    /// the buffer is), voids every older record of the keyspace, a chain's whole record included:
    /// while the returned [`Clearing`] lives no member record is journaled onto a chain, and
    /// no chain that began at or before `last_seq` (or, once [`Clearing::end`] tells it, the
    /// clear's record) is extended again, whether the clear succeeds or not.
    pub(crate) fn begin_clear(&self, last_seq: u64) -> Clearing<'_> {
        self.clears.fetch_add(1, Ordering::SeqCst);
        self.chain_floor.fetch_max(last_seq, Ordering::SeqCst);
        Clearing { buffer: self }
    }

    /// Ends the pin of [`WriteBackBuffer::member_chain`] for a write that was not buffered.
    pub(crate) fn unpin(&self, key: &DbKey) {
        if let Some(p) = self.inner.lock().entries.get_mut(key) {
            p.pinned = false;
        }
    }

    /// Buffers the writes of one transaction to this keyspace (each with its reservation, key
    /// and sequence number) in one critical section: a drain takes every one of them or none,
    /// where one between two inserts would store the first alone.
    pub(crate) fn insert_group(
        &self,
        writes: Vec<GroupWrite<'_>>,
        now_ms: u64,
        group: Option<BufferedGroup>,
    ) {
        let mut batch_due = false;
        {
            let mut guard = self.inner.lock();
            for (reservation, key, seq, write) in writes {
                if reservation.counted {
                    guard.reserved -= 1;
                }
                batch_due |= self.insert_locked(
                    &mut guard,
                    key,
                    seq,
                    write,
                    || now_ms,
                    group,
                    Recorded::Whole,
                );
            }
        }
        if batch_due {
            self.wake.notify_one();
        }
    }

    /// [`WriteBackBuffer::insert`] of one write of a transaction's group.
    #[allow(clippy::too_many_arguments)]
    fn insert_in_group(
        &self,
        reservation: Reservation,
        key: &DbKey,
        seq: u64,
        write: StoreWrite,
        now_ms: u64,
        group: Option<BufferedGroup>,
        recorded: Recorded,
    ) {
        let batch_due = {
            let mut guard = self.inner.lock();
            if reservation.counted {
                guard.reserved -= 1;
            }
            self.insert_locked(&mut guard, key, seq, write, || now_ms, group, recorded)
        };
        if batch_due {
            self.wake.notify_one();
        }
    }

    /// The insert itself, under the lock; true when it made the `flush_batch`-th fresh key.
    #[allow(clippy::too_many_arguments)]
    fn insert_locked(
        &self,
        inner: &mut Inner,
        key: &DbKey,
        seq: u64,
        write: StoreWrite,
        now_ms: impl FnOnce() -> u64,
        group: Option<BufferedGroup>,
        recorded: Recorded,
    ) -> bool {
        let added = write_bytes(key, &write);
        let (chain_seq, chain_bytes) = match recorded {
            Recorded::Whole => (seq, 0),
            Recorded::Members { base, bytes } => (base, bytes),
        };
        match inner.entries.get_mut(key) {
            // A rewrite (the hot path): updated in place, the key's own copy reused, so a
            // coalesced write clones no key.
            Some(p) => {
                let old_seq = std::mem::replace(&mut p.seq, seq);
                let old_base = std::mem::replace(&mut p.chain_seq, chain_seq);
                if recorded == Recorded::Whole {
                    p.chain_bytes = 0;
                    p.chain_flushed = false;
                } else {
                    p.chain_bytes += chain_bytes;
                }
                p.pinned = false;
                let old_bytes = write_bytes(key, &p.write);
                let added = if matches!(write, StoreWrite::Partial(_)) {
                    // A partial write keeps the columns or members the older one changed.
                    p.write = write.coalesce_after(&p.write);
                    write_bytes(key, &p.write)
                } else {
                    p.write = write;
                    added
                };
                p.group = group;
                inner.bytes = inner.bytes - old_bytes + added;
                let owned = inner.order.remove(&old_seq).unwrap_or_else(|| key.clone());
                inner.order.insert(seq, owned);
                if old_base != old_seq {
                    inner.chain_bases.remove(&old_base);
                }
                if chain_seq != seq {
                    inner.chain_bases.insert(chain_seq);
                }
                false
            }
            None => {
                let mut batch_due = false;
                if !inner.stored.contains(&self.fingerprint(key)) {
                    inner.fresh += 1;
                    // Wake once, on reaching the threshold: the wake is remembered.
                    batch_due = inner.fresh == self.flush_batch();
                }
                inner.bytes += added;
                inner.order.insert(seq, key.clone());
                if chain_seq != seq {
                    // A chain replayed from the journal, or one whose entry a FLUSHDB dropped
                    // while this member record was journaled onto it (`chain_floor` ends it).
                    inner.chain_bases.insert(chain_seq);
                }
                inner.entries.insert(
                    key.clone(),
                    Pending {
                        seq,
                        write,
                        dirty_since: now_ms(),
                        first_seq: seq,
                        group,
                        chain_seq,
                        chain_bytes,
                        pinned: false,
                        chain_flushed: false,
                    },
                );
                self.len.store(inner.entries.len(), Ordering::Release);
                batch_due
            }
        }
    }

    /// Buffers a write recovered from the journal; replay may exceed `max_dirty`, since those
    /// writes were acknowledged before the crash.
    pub(crate) fn insert_replayed(
        &self,
        key: &DbKey,
        seq: u64,
        write: StoreWrite,
        now_ms: u64,
        group: Option<BufferedGroup>,
        recorded: Recorded,
    ) {
        self.insert_in_group(
            Reservation { counted: false },
            key,
            seq,
            write,
            now_ms,
            group,
            recorded,
        );
    }

    /// Starts a drain: the fresh count restarts. `new_epoch` (the flusher's timed drain) also
    /// forgets which keys earlier drains stored; the drain then remembers what it takes.
    pub(crate) fn begin_drain(&self, new_epoch: bool) {
        let mut inner = self.inner.lock();
        inner.fresh = 0;
        if new_epoch {
            // The keys buffered now are the hot set this epoch will remember again; sizing by
            // the epoch that ended would keep a bulk load's million fingerprints (16 bytes a
            // key) for one more interval.
            let kept = inner.entries.len().max(self.flush_batch());
            inner.stored.clear();
            if inner.stored.capacity() > 4 * kept {
                inner.stored.shrink_to(kept);
            }
        }
    }

    /// Whether the flusher should drain now: `flush_batch` fresh keys since the last drain
    /// started, or writers waiting for room.
    pub(crate) fn flush_due(&self) -> bool {
        let inner = self.inner.lock();
        inner.fresh >= self.flush_batch() || inner.full(self.max_dirty())
    }

    /// Up to `flush_batch` entries with sequence numbers up to `cutoff`, oldest first, and
    /// with every entry of each transaction group taken (a group may make the batch longer).
    /// Their keys count as stored for the rest of the epoch.
    pub(crate) fn take_batch(&self, cutoff: u64) -> Vec<FlushItem> {
        let cap = self.memory_cap();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let item = |key: &DbKey, seq: u64, p: &Pending| FlushItem {
            key: key.clone(),
            seq,
            write: p.write.clone(),
            group: p.group,
        };
        let mut batch: Vec<FlushItem> = Vec::new();
        let mut groups_taken: Vec<u64> = Vec::new();
        // Past the cutoff only keys rewritten since the drain began: few, and each is either
        // taken now (its first unflushed write predates the drain) or skipped.
        for (seq, key) in inner.order.iter() {
            if batch.len() >= self.flush_batch() {
                break;
            }
            let Some(p) = inner.entries.get(key).filter(|p| p.first_seq <= cutoff) else {
                continue;
            };
            match p.group {
                None => batch.push(item(key, *seq, p)),
                // Stored whole with its other keyspaces' members, by the engine.
                Some(g) if g.spans_keyspaces => {}
                Some(g) if groups_taken.contains(&g.txn.first_seq) => {}
                Some(g) => {
                    groups_taken.push(g.txn.first_seq);
                    batch.extend(
                        inner
                            .members(g)
                            .map(|(member_seq, member_key, m)| item(member_key, member_seq, m)),
                    );
                }
            }
        }
        for item in &batch {
            inner.remember(self.fingerprint(&item.key), cap);
        }
        batch
    }

    /// The members of `group` still buffered here, oldest first, taken for a flush of the whole
    /// group (see [`BufferedGroup::spans_keyspaces`]); their keys count as stored for the rest
    /// of the epoch, as [`WriteBackBuffer::take_batch`]'s do.
    pub(crate) fn take_group(&self, group: BufferedGroup) -> Vec<FlushItem> {
        let cap = self.memory_cap();
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let batch: Vec<FlushItem> = inner
            .members(group)
            .map(|(seq, key, p)| FlushItem {
                key: key.clone(),
                seq,
                write: p.write.clone(),
                group: p.group,
            })
            .collect();
        for item in &batch {
            inner.remember(self.fingerprint(&item.key), cap);
        }
        batch
    }

    /// Whether any member of `group` is still buffered here.
    pub(crate) fn holds_group(&self, group: BufferedGroup) -> bool {
        self.inner.lock().members(group).next().is_some()
    }

    /// Drops each flushed entry that was not rewritten since it was taken. Returns how many
    /// were dropped.
    pub(crate) fn complete<'a>(&self, done: impl IntoIterator<Item = &'a FlushItem>) -> usize {
        self.finish(done, 0, None)
    }

    /// [`WriteBackBuffer::complete`] for a batch taken at `taken_at_ms`. An entry rewritten
    /// while its batch was in flight stays, but its older writes are now stored: its
    /// `dirty_since` moves up to the time the batch was taken (no later than its oldest
    /// unstored write), so a key rewritten during every flush does not report the age of its
    /// very first write for ever.
    ///
    /// The entries were stored: a rewritten entry also forgets the members its stored write
    /// left as it has them ([`crate::model::PartialWrite::prune_stored`]), so the next flush
    /// writes only what changed since. With `rows_exact` (the built-in table, whose rows a
    /// stored whole value leaves exactly as its image), a rewritten entry that replaces the
    /// whole value after a stored one that did too stores only their difference
    /// ([`crate::model::PartialWrite::rebase_on_stored_whole`]).
    pub(crate) fn complete_taken_at<'a>(
        &self,
        done: impl IntoIterator<Item = &'a FlushItem>,
        taken_at_ms: u64,
        rows_exact: bool,
    ) -> usize {
        self.finish(done, taken_at_ms, Some(rows_exact))
    }

    /// `stored`: `None` when the entries were not stored (dead letters); else whether the
    /// table's rows are exactly what a stored whole value left.
    fn finish<'a>(
        &self,
        done: impl IntoIterator<Item = &'a FlushItem>,
        taken_at_ms: u64,
        stored: Option<bool>,
    ) -> usize {
        let mut removed = 0;
        {
            let mut inner = self.inner.lock();
            for item in done {
                match inner.entries.get_mut(&item.key) {
                    Some(p) if p.seq == item.seq && !p.pinned => {}
                    Some(p) => {
                        // Rewritten after the batch was taken, so after the drain began: its
                        // first unflushed write is newer than this drain's cutoff. (Or about
                        // to be: a pinned entry's writer is journaling onto its chain, which
                        // must stay buffered; what this flush stored is pruned from it.)
                        p.dirty_since = p.dirty_since.max(taken_at_ms);
                        p.first_seq = p.seq;
                        p.chain_flushed = true;
                        if let (
                            Some(rows_exact),
                            StoreWrite::Partial(newer),
                            StoreWrite::Partial(older),
                        ) = (stored, &mut p.write, &item.write)
                        {
                            let before = newer.changed.iter().map(Bytes::len).sum::<usize>();
                            if rows_exact {
                                newer.rebase_on_stored_whole(older);
                            }
                            newer.prune_stored(older);
                            let after = newer.changed.iter().map(Bytes::len).sum::<usize>();
                            inner.bytes = inner.bytes - before + after;
                        }
                        continue;
                    }
                    None => continue,
                }
                inner.remove(&item.key, item.seq);
                removed += 1;
            }
            inner.shrink_if_sparse();
            self.len.store(inner.entries.len(), Ordering::Release);
        }
        if removed > 0 {
            self.space.notify_waiters();
        }
        removed
    }

    /// Replaces everything buffered with `entries` (key → sequence number and write), as
    /// replayed from the journal, in one critical section: a reader sees the old contents or the
    /// new, never an empty buffer in between. Returns the keys that were buffered before.
    pub(crate) fn replace_all(&self, entries: HashMap<DbKey, Replayed>, now_ms: u64) -> Vec<DbKey> {
        let mut guard = self.inner.lock();
        let inner = &mut *guard;
        let before: Vec<DbKey> = inner.entries.keys().cloned().collect();
        inner.entries.clear();
        inner.order.clear();
        inner.chain_bases.clear();
        inner.bytes = 0;
        inner.fresh = 0;
        inner.stored.clear();
        for (key, r) in entries {
            let recorded = r.recorded();
            self.insert_locked(inner, &key, r.seq, r.write, || now_ms, r.group, recorded);
        }
        inner.shrink_if_sparse();
        self.len.store(inner.entries.len(), Ordering::Release);
        drop(guard);
        self.space.notify_waiters();
        before
    }

    /// Drops every entry of `db` (FLUSHDB) and returns how many went.
    pub(crate) fn clear_db(&self, db: Option<u8>) -> usize {
        let mut inner = self.inner.lock();
        let doomed: Vec<(DbKey, u64)> = inner
            .entries
            .iter()
            .filter(|(k, _)| db.is_none_or(|d| k.db == d))
            .map(|(k, p)| (k.clone(), p.seq))
            .collect();
        for (key, seq) in &doomed {
            inner.remove(key, *seq);
        }
        inner.shrink_if_sparse();
        self.len.store(inner.entries.len(), Ordering::Release);
        drop(inner);
        self.space.notify_waiters();
        doomed.len()
    }

    /// True when new keys would have to wait for room.
    pub(crate) fn is_full(&self) -> bool {
        let inner = self.inner.lock();
        inner.full(self.max_dirty())
    }

    /// Buffered entries.
    pub(crate) fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// True when nothing is buffered.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of keys and values buffered.
    pub(crate) fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// The lowest sequence number a replay of the buffered keys needs: the lowest buffered
    /// one, or the lowest whole record of a key's chain of member records.
    pub(crate) fn min_seq(&self) -> Option<u64> {
        let inner = self.inner.lock();
        let latest = inner.order.keys().next().copied();
        match (latest, inner.chain_bases.first().copied()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Unix ms since which the oldest buffered write has waited.
    pub(crate) fn oldest_dirty_since(&self) -> Option<u64> {
        self.inner
            .lock()
            .entries
            .values()
            .map(|p| p.dirty_since)
            .min()
    }

    /// Snapshot of buffered keys with their writes, for KEYS / SCAN / DBSIZE.
    pub(crate) fn snapshot(&self, db: u8) -> Vec<(Bytes, StoreWrite)> {
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

    fn key(k: &str) -> DbKey {
        DbKey {
            db: 0,
            key: Bytes::copy_from_slice(k.as_bytes()),
        }
    }

    fn put(v: &str) -> StoreWrite {
        StoreWrite::string(Bytes::copy_from_slice(v.as_bytes()), None)
    }

    #[tokio::test]
    async fn rewrites_coalesce_and_survive_a_concurrent_flush() {
        let buf = WriteBackBuffer::new(10, 10);
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("a"), 1, put("1"), 0, Recorded::Whole);
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("a"), 2, put("2"), 5, Recorded::Whole);
        assert_eq!(buf.len(), 1);
        let batch = buf.take_batch(u64::MAX);
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].seq, 2);
        // A rewrite lands while the batch is in flight: completing the batch must keep it.
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("a"), 3, put("3"), 9, Recorded::Whole);
        assert_eq!(buf.complete(&batch), 0);
        let p = buf.lookup(&key("a")).unwrap();
        assert_eq!(p.seq, 3);
        assert_eq!(p.dirty_since, 0);
    }

    /// Buffers `k` as a write that needs no reservation.
    fn write(buf: &WriteBackBuffer, k: &str, seq: u64) {
        buf.insert_replayed(
            &key(k),
            seq,
            put(&seq.to_string()),
            0,
            None,
            Recorded::Whole,
        );
    }

    /// One drain of everything buffered, as the flusher runs it.
    fn drain(buf: &WriteBackBuffer, new_epoch: bool) -> usize {
        buf.begin_drain(new_epoch);
        let mut stored = 0;
        loop {
            let batch = buf.take_batch(u64::MAX);
            if batch.is_empty() {
                return stored;
            }
            stored += batch.len();
            buf.complete(&batch);
        }
    }

    /// Whether the flusher was woken, consuming the wake.
    async fn woken(buf: &WriteBackBuffer) -> bool {
        tokio::time::timeout(Duration::ZERO, buf.wake.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn fresh_keys_wake_the_flusher_at_flush_batch() {
        let buf = WriteBackBuffer::new(1000, 4);
        for (seq, k) in ["a", "b", "c"].into_iter().enumerate() {
            write(&buf, k, seq as u64 + 1);
        }
        // Rewrites of buffered keys coalesce and never count.
        for seq in 4..100 {
            write(&buf, "a", seq);
        }
        assert!(!buf.flush_due());
        assert!(!woken(&buf).await);
        write(&buf, "d", 100);
        assert!(buf.flush_due());
        assert!(woken(&buf).await);
        // Starting a drain restarts the count.
        assert_eq!(drain(&buf, false), 4);
        assert!(!buf.flush_due());
        assert!(!woken(&buf).await);
    }

    #[tokio::test]
    async fn a_hot_set_larger_than_flush_batch_does_not_count_after_a_drain() {
        let buf = WriteBackBuffer::new(1000, 4);
        let hot: Vec<String> = (0..12).map(|i| format!("h{i}")).collect();
        let mut seq = 0;
        for k in &hot {
            seq += 1;
            write(&buf, k, seq);
        }
        assert!(buf.flush_due(), "12 new keys are fresh");
        assert!(woken(&buf).await);
        assert_eq!(drain(&buf, false), 12);
        for _round in 0..3 {
            for _ in 0..5 {
                for k in &hot {
                    seq += 1;
                    write(&buf, k, seq);
                }
            }
            assert_eq!(buf.len(), 12);
            assert!(!buf.flush_due(), "rewrites of stored keys are not fresh");
            assert!(!woken(&buf).await);
            // The timed drain starts a new epoch and remembers what it takes: the whole set.
            assert_eq!(drain(&buf, true), 12);
        }
        // New keys still count, mixed with the hot rewrites.
        for i in 0..4 {
            for k in &hot {
                seq += 1;
                write(&buf, k, seq);
            }
            assert!(!buf.flush_due());
            seq += 1;
            write(&buf, &format!("new{i}"), seq);
        }
        assert!(buf.flush_due());
        assert!(woken(&buf).await);
    }

    /// Random rewrites of a hot set 16 batches large, with the flusher draining whenever it
    /// is due. Were the memory only the previous drain's keys, every drain would leave most of
    /// the set unknown and the next batch of "fresh" keys would follow within a few dozen
    /// writes, for ever. Each key is fresh at most once per epoch, so at most 16 drains.
    #[test]
    fn random_rewrites_of_a_large_hot_set_stop_counting_once_it_is_stored() {
        const KEYS: u64 = 256;
        let buf = WriteBackBuffer::new(100_000, 16);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let (mut drains, mut rows) = (0, 0);
        for seq in 1..=50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            write(&buf, &format!("k{}", x % KEYS), seq);
            if buf.flush_due() {
                drains += 1;
                rows += drain(&buf, false);
            }
        }
        assert!(drains <= KEYS / 16, "{drains} drains, {rows} rows");
        assert!(rows <= KEYS as usize * drains as usize);
        assert_eq!(
            buf.len(),
            KEYS as usize,
            "the set coalesces, waiting for the timer"
        );
    }

    #[test]
    fn a_new_epoch_forgets_keys_its_drain_did_not_take() {
        let buf = WriteBackBuffer::new(1000, 2);
        write(&buf, "a", 1);
        write(&buf, "b", 2);
        drain(&buf, false);
        // "a" is rewritten before the timed drain, "b" only after it.
        write(&buf, "a", 3);
        assert_eq!(drain(&buf, true), 1);
        write(&buf, "a", 4);
        assert!(!buf.flush_due());
        write(&buf, "b", 5);
        write(&buf, "c", 6);
        assert!(buf.flush_due(), "b and c are fresh");
    }

    #[test]
    fn a_bulk_load_leaves_no_fingerprint_table_behind_after_the_next_epoch() {
        let buf = WriteBackBuffer::new(100_000, 4);
        for i in 0..20_000 {
            write(&buf, &format!("bulk{i}"), i + 1);
        }
        drain(&buf, false);
        assert!(buf.is_empty());
        assert!(buf.inner.lock().stored.capacity() >= 20_000);
        // The next timed drain starts with nothing buffered: nothing to remember.
        buf.begin_drain(true);
        assert!(buf.inner.lock().stored.capacity() < 64);
    }

    #[test]
    fn the_memory_of_stored_keys_stays_within_max_dirty() {
        let buf = WriteBackBuffer::new(8, 4);
        let mut seq = 0;
        for round in 0..10 {
            for i in 0..6 {
                seq += 1;
                write(&buf, &format!("k{round}-{i}"), seq);
            }
            drain(&buf, false);
            assert!(buf.inner.lock().stored.len() <= 8);
        }
        assert!(buf.is_empty());
    }

    fn members(v: &str) -> StoreWrite {
        StoreWrite::Partial(crate::model::PartialWrite {
            kind: crate::model::Kind::Set,
            image: crate::model::set::SetValue::from_members([Bytes::copy_from_slice(
                v.as_bytes(),
            )])
            .encode(),
            changed: vec![Bytes::copy_from_slice(v.as_bytes())],
            replace: false,
            expires_at: None,
        })
    }

    /// A key journaled as member records keeps the checkpoint below its chain's whole
    /// record until it is stored; a flush that lands while a member record is being
    /// journaled onto the chain keeps the entry; a whole record starts a new chain.
    #[test]
    fn a_chain_of_member_records_holds_the_checkpoint_at_its_whole_record() {
        let buf = WriteBackBuffer::new(100, 100);
        let k = key("s");
        let set = crate::model::Kind::Set;
        buf.insert_replayed(&k, 5, members("a"), 0, None, Recorded::Whole);
        assert_eq!(buf.member_chain(&k, set, 0), Some((5, 0)));
        buf.insert_replayed(
            &k,
            7,
            members("b"),
            0,
            None,
            Recorded::Members { base: 5, bytes: 10 },
        );
        assert_eq!(buf.min_seq(), Some(5), "the chain's whole record");
        // Another kind, or an expired value, is no chain to extend.
        assert_eq!(buf.member_chain(&k, crate::model::Kind::ZSet, 0), None);

        // A flush of seq 7 completes while a writer is journaling seq 9 onto the chain.
        buf.begin_drain(true);
        let batch = buf.take_batch(u64::MAX);
        assert_eq!(buf.member_chain(&k, set, 0), Some((5, 10)));
        assert_eq!(buf.complete(&batch), 0, "a pinned entry is kept");
        assert_eq!(buf.min_seq(), Some(5));
        let r = buf.try_reserve(&k).expect("a buffered key needs no room");
        buf.insert(
            r,
            &k,
            9,
            members("c"),
            0,
            Recorded::Members { base: 5, bytes: 10 },
        );
        assert_eq!(
            buf.lookup(&k).map(|p| (p.chain_seq, p.chain_bytes)),
            Some((5, 20))
        );
        // That flush stored the key: its next record is whole, so a hot key's chain (and the
        // checkpoint with it) does not reach back past its last flush.
        assert_eq!(buf.member_chain(&k, set, 0), None);

        // A whole record starts a new chain: the old whole record is no longer needed.
        let r = buf.try_reserve(&k).expect("a buffered key needs no room");
        buf.insert(r, &k, 11, members("d"), 0, Recorded::Whole);
        assert_eq!(buf.min_seq(), Some(11));
        buf.begin_drain(true);
        let batch = buf.take_batch(u64::MAX);
        assert_eq!(buf.complete(&batch), 1);
        assert_eq!(buf.min_seq(), None);
    }

    /// A FLUSHDB voids every older record, a chain's whole record included: during it no
    /// member record is journaled, and afterwards no chain starting at or before its record is
    /// extended.
    #[test]
    fn no_member_record_extends_a_chain_a_flush_of_the_database_may_have_voided() {
        let buf = WriteBackBuffer::new(100, 100);
        let k = key("s");
        let set = crate::model::Kind::Set;
        let clearing = buf.begin_clear(4);
        buf.insert_replayed(&k, 5, members("a"), 0, None, Recorded::Whole);
        assert_eq!(buf.member_chain(&k, set, 0), None, "while the clear runs");
        clearing.end(Some(6));
        assert_eq!(
            buf.member_chain(&k, set, 0),
            None,
            "a chain from before the clear"
        );
        let r = buf.try_reserve(&k).expect("a buffered key needs no room");
        buf.insert(r, &k, 8, members("b"), 0, Recorded::Whole);
        assert_eq!(buf.member_chain(&k, set, 0), Some((8, 0)));
        buf.unpin(&k);
        // A clear that failed or was cancelled still stops the chains older than it.
        drop(buf.begin_clear(9));
        assert_eq!(buf.member_chain(&k, set, 0), None);
        let r = buf.try_reserve(&k).expect("a buffered key needs no room");
        buf.insert(r, &k, 10, members("c"), 0, Recorded::Whole);
        assert_eq!(buf.member_chain(&k, set, 0), Some((10, 0)));
    }

    #[test]
    fn take_batch_stops_at_the_cutoff_and_at_flush_batch() {
        let buf = WriteBackBuffer::new(100, 2);
        for seq in 1..=5 {
            write(&buf, &format!("k{seq}"), seq);
        }
        let seqs = |b: Vec<FlushItem>| b.iter().map(|i| i.seq).collect::<Vec<_>>();
        assert_eq!(seqs(buf.take_batch(1)), vec![1]);
        assert_eq!(seqs(buf.take_batch(4)), vec![1, 2]);
        assert_eq!(seqs(buf.take_batch(0)), Vec::<u64>::new());
    }

    /// Runs `lookup(k)` on another thread while this one holds the buffer's lock; `None`
    /// when the lookup blocked on the lock for a second.
    fn lookup_while_locked(buf: &std::sync::Arc<WriteBackBuffer>, k: &str) -> Option<bool> {
        let (tx, rx) = std::sync::mpsc::channel();
        let held = buf.inner.lock();
        let reader = {
            let (buf, k) = (buf.clone(), key(k));
            std::thread::spawn(move || tx.send(buf.lookup(&k).is_some()).unwrap())
        };
        let answer = rx.recv_timeout(Duration::from_secs(1)).ok();
        drop(held);
        reader.join().unwrap();
        answer
    }

    #[test]
    fn lookup_skips_the_lock_only_while_the_buffer_is_empty() {
        let buf = std::sync::Arc::new(WriteBackBuffer::new(100, 10));
        assert_eq!(
            lookup_while_locked(&buf, "a"),
            Some(false),
            "empty: no lock"
        );
        write(&buf, "a", 1);
        write(&buf, "a", 2);
        write(&buf, "b", 3);
        assert_eq!(buf.len.load(Ordering::SeqCst), 2);
        // With entries buffered, a lookup (even of an absent key) waits for the lock.
        assert_eq!(lookup_while_locked(&buf, "c"), None);
        assert_eq!(buf.lookup(&key("a")).map(|p| p.seq), Some(2));
        assert!(buf.lookup(&key("c")).is_none());
        let batch = buf.take_batch(u64::MAX);
        write(&buf, "b", 4);
        assert_eq!(buf.complete(&batch), 1, "b was rewritten in flight");
        assert_eq!(buf.len(), 1);
        assert_eq!(buf.lookup(&key("b")).map(|p| p.seq), Some(4));
        assert_eq!(buf.clear_db(Some(0)), 1);
        assert_eq!(buf.len(), 0);
        assert!(buf.lookup(&key("b")).is_none());
        write(&buf, "c", 5);
        assert_eq!(buf.lookup(&key("c")).map(|p| p.seq), Some(5));
    }

    /// A writer inserts, then acknowledges through a separate atomic; a reader that saw the
    /// acknowledgement must find the entry, though the buffer was empty a moment before.
    #[test]
    fn an_acknowledged_insert_is_never_hidden_by_the_fast_path() {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        const ROUNDS: u64 = 20_000;
        let buf = Arc::new(WriteBackBuffer::new(100, 10));
        let acked = Arc::new(AtomicU64::new(0));
        let checked = Arc::new(AtomicU64::new(0));
        let reader = {
            let (buf, acked, checked) = (buf.clone(), acked.clone(), checked.clone());
            std::thread::spawn(move || {
                for round in 1..=ROUNDS {
                    while acked.load(Ordering::Acquire) < round {
                        std::hint::spin_loop();
                    }
                    let found = buf.lookup(&key("k")).map(|p| p.seq);
                    assert_eq!(found, Some(round), "round {round}");
                    checked.store(round, Ordering::Release);
                }
            })
        };
        for round in 1..=ROUNDS {
            write(&buf, "k", round);
            acked.store(round, Ordering::Release);
            while checked.load(Ordering::Acquire) < round {
                std::hint::spin_loop();
            }
            // Stored: the buffer empties again, and the fast path is live for the next round.
            let batch = buf.take_batch(u64::MAX);
            assert_eq!(buf.complete(&batch), 1);
            assert_eq!(buf.len(), 0);
        }
        reader.join().unwrap();
    }

    #[tokio::test]
    async fn a_key_rewritten_during_each_flush_reports_the_age_of_its_unstored_writes() {
        let buf = WriteBackBuffer::new(10, 10);
        let r = buf.reserve(&key("hot"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("hot"), 1, put("1"), 100, Recorded::Whole);
        let batch = buf.take_batch(u64::MAX);
        let r = buf.reserve(&key("hot"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("hot"), 2, put("2"), 150, Recorded::Whole);
        // Write 1 is stored; write 2 (made after the batch was taken at 120) is not.
        assert_eq!(buf.complete_taken_at(&batch, 120, true), 0);
        assert_eq!(buf.oldest_dirty_since(), Some(120));
    }

    #[tokio::test]
    async fn a_key_rewritten_after_the_drain_began_is_still_stored_by_that_drain() {
        let buf = WriteBackBuffer::new(10, 10);
        for (seq, k) in [(1, "hot"), (2, "cold")] {
            let r = buf.reserve(&key(k), Duration::ZERO).await.unwrap();
            buf.insert(r, &key(k), seq, put("old"), 0, Recorded::Whole);
        }
        let cutoff = 2;
        // Rewritten after the drain took its cutoff, before its batch was taken.
        let r = buf.reserve(&key("hot"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("hot"), 3, put("new"), 5, Recorded::Whole);
        let batch = buf.take_batch(cutoff);
        let hot = batch
            .iter()
            .find(|i| i.key == key("hot"))
            .expect("hot key taken");
        assert_eq!((hot.seq, hot.write.clone()), (3, put("new")));
        // Rewritten again while in flight: kept, and not taken again by this drain.
        let r = buf.reserve(&key("hot"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("hot"), 4, put("newer"), 9, Recorded::Whole);
        assert_eq!(buf.complete_taken_at(&batch, 6, true), 1);
        assert!(buf.take_batch(cutoff).is_empty());
        assert_eq!(buf.take_batch(4).len(), 1);
    }

    #[tokio::test]
    async fn full_buffer_refuses_after_timeout_but_admits_rewrites() {
        let buf = WriteBackBuffer::new(1, 10);
        let r = buf.reserve(&key("a"), Duration::ZERO).await.unwrap();
        buf.insert(r, &key("a"), 1, put("1"), 0, Recorded::Whole);
        assert_eq!(
            buf.reserve(&key("b"), Duration::from_millis(10))
                .await
                .unwrap_err(),
            ReserveError::Full
        );
        assert!(buf.reserve(&key("a"), Duration::ZERO).await.is_ok());
    }
}
