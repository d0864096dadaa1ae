//! Transactions: MULTI/EXEC, scripts, and the multi-key commands (MSET, MSETNX, RENAME).
//!
//! A transaction holds the lock of every key it touches: the keys it declares are locked in one
//! global order when it begins, and a key it touches later is taken only if it is free (waiting
//! out of order could deadlock); if it is not, the transaction is run again from the start with
//! that key declared ([`TxnState::needs_restart`]). Nothing is visible before the commit, so
//! running it again is safe.
//!
//! Its writes are staged, and its reads see them. The commit applies them all or none:
//! - the write-through and invalidate writes in ONE database transaction
//!   ([`crate::tiers::store::Store::write_atomic`]): if the database refuses any of them, none
//!   is applied anywhere and the error names the key;
//! - the write-back writes as ONE journal group ([`crate::tiers::journal::TxnGroup`]): they are
//!   acknowledged together, replayed whole or not at all after a crash, and flushed in one
//!   database transaction;
//! - a transaction with both commits the database part first, then journals the write-back
//!   part: the database is the part most likely to refuse, so a refusal leaves nothing applied.
//!   A journal failure after that commit is reported as such
//!   ([`SluiceError::CommittedJournalFailed`]).
//!
//! While the commit makes the writes visible, the versions of their stripes are odd
//! ([`super::locks::KeyLocks::begin_install`]): a reader waits, so no client sees half of a
//! transaction.
//!
//! A script running long marks its transaction busy ([`Engine::mark_txn_busy`]): from then until
//! it commits or ends, whoever would wait for one of its stripes gets [`SluiceError::Busy`]
//! instead, a transaction waiting to begin or restart included.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;

use bytes::Bytes;
use foldhash::fast::RandomState;

use super::buffer::{BufferedGroup, GroupWrite, Reservation};
use super::durability::{durable, Applied, PendingDurability};
use super::keyspace::Keyspace;
use super::locks::Stripe;
use super::route::Route;
use super::write::Prepared;
use super::Engine;
use crate::clock::OpTime;
use crate::config::{Durability, Policy};
use crate::error::{ScriptKind, SluiceError};
use crate::model::{DbKey, Entry, StoreWrite};
use crate::tiers::journal::{JournalOp, JournalRecord, TxnGroup};
use crate::tiers::store::StoreOp;

/// A staged write: what the commit applies to one key.
struct Staged {
    write: StoreWrite,
    /// On a mapped keyspace, the expiry the client asked for (it bounds the cached copy).
    copy_deadline: Option<u64>,
    /// Whether committing it fails the key's WATCHers (see `Route::wakes_watchers`): if any
    /// of the key's writes in the transaction does.
    wakes_watchers: bool,
}

/// The state of one transaction: the stripes it holds, and its staged writes.
pub(crate) struct TxnState {
    held: BTreeSet<Stripe>,
    /// Stripes it needed but found held by someone else: it must run again holding them.
    contended: Vec<Stripe>,
    staged: HashMap<DbKey, Staged, RandomState>,
    /// Keys in the order they were first written, so the commit applies them in that order.
    order: Vec<DbKey>,
    /// Unix ms at which the transaction began: every command in it runs at this instant.
    now: u64,
    /// Set once a script running in it went past its busy threshold: its stripes are marked.
    busy: Option<ScriptKind>,
}

impl TxnState {
    /// The instant every command of the transaction runs at.
    pub(crate) fn now(&self) -> u64 {
        self.now
    }

    /// Whether a key it touched was held by another transaction: its results must be thrown
    /// away, and it must run again from the start ([`Engine::restart_txn`]).
    pub(crate) fn needs_restart(&self) -> bool {
        !self.contended.is_empty()
    }

    /// The key as the transaction sees it, if it wrote it: `Some(None)` for a key it deleted
    /// (or wrote with an expiry already past).
    pub(crate) fn staged_entry(&self, key: &DbKey) -> Option<Option<Entry>> {
        let staged = self.staged.get(key)?;
        Some(
            staged
                .write
                .visible()
                .filter(|(_, _, expires_at)| expires_at.is_none_or(|e| e >= self.now))
                .map(|(value, kind, expires_at)| Entry {
                    value: value.clone(),
                    kind,
                    expires_at,
                }),
        )
    }

    /// The keys of `db` it wrote, each with whether it exists after the write.
    pub(crate) fn staged_in(&self, db: u8) -> impl Iterator<Item = (&Bytes, bool)> + '_ {
        self.staged
            .iter()
            .filter(move |(k, _)| k.db == db)
            .map(|(k, _)| (&k.key, self.staged_entry(k).flatten().is_some()))
    }

    /// Whether it has written anything.
    pub(crate) fn is_empty(&self) -> bool {
        self.staged.is_empty()
    }
}

impl Engine {
    /// Begins a transaction holding the stripes of `keys` (database and key), taken in one
    /// global order so that two transactions cannot deadlock. A stripe held by a busy script
    /// fails it with [`SluiceError::Busy`], holding nothing.
    pub(crate) async fn begin_txn<'k>(
        &self,
        keys: impl IntoIterator<Item = (u8, &'k [u8])>,
    ) -> Result<TxnState, SluiceError> {
        let wanted: BTreeSet<Stripe> = keys
            .into_iter()
            .map(|(db, key)| self.locks.stripe(db, key))
            .collect();
        let mut txn = TxnState {
            held: BTreeSet::new(),
            contended: Vec::new(),
            staged: HashMap::default(),
            order: Vec::new(),
            now: self.now(),
            busy: None,
        };
        self.hold_in_order(&mut txn, wanted).await?;
        Ok(txn)
    }

    /// Takes `stripes` in order; if a busy script holds one, releases everything the
    /// transaction holds and fails with [`SluiceError::Busy`].
    async fn hold_in_order(
        &self,
        txn: &mut TxnState,
        stripes: BTreeSet<Stripe>,
    ) -> Result<(), SluiceError> {
        for stripe in stripes {
            if let Err(kind) = self.locks.hold(stripe).await {
                self.release_txn(txn);
                return Err(SluiceError::Busy(kind));
            }
            txn.held.insert(stripe);
        }
        Ok(())
    }

    /// Marks the transaction busy: a script in it has run past its busy threshold. Until it
    /// commits or ends, whoever would wait for one of its stripes (now or taken later) gives
    /// up with [`SluiceError::Busy`].
    pub(crate) fn mark_txn_busy(&self, txn: &mut TxnState, kind: ScriptKind) {
        if txn.busy.is_none() {
            txn.busy = Some(kind);
            self.locks.mark_busy(txn.held.iter().copied(), kind);
        }
    }

    /// Clears the busy marks of a transaction's stripes: its script is done or starts over.
    fn clear_txn_busy(&self, txn: &mut TxnState) {
        if txn.busy.take().is_some() {
            self.locks.clear_busy(txn.held.iter().copied());
        }
    }

    /// Lets go of every stripe the transaction holds and forgets its staged writes.
    pub(crate) fn release_txn(&self, txn: &mut TxnState) {
        self.clear_txn_busy(txn);
        for stripe in std::mem::take(&mut txn.held) {
            self.locks.release(stripe);
        }
        txn.staged.clear();
        txn.order.clear();
    }

    /// Starts the transaction over after [`TxnState::needs_restart`]: its staged writes are
    /// dropped and it holds, in order, every stripe it held or wanted. Its clock restarts too.
    /// A stripe held by a busy script fails it with [`SluiceError::Busy`], holding nothing.
    pub(crate) async fn restart_txn(&self, txn: &mut TxnState) -> Result<(), SluiceError> {
        self.clear_txn_busy(txn);
        // Only what this transaction holds is released: a contended stripe is another's, and
        // releasing it would let two holders into that lock.
        let mut wanted = std::mem::take(&mut txn.held);
        for stripe in &wanted {
            self.locks.release(*stripe);
        }
        wanted.extend(txn.contended.drain(..));
        txn.staged.clear();
        txn.order.clear();
        txn.now = self.now();
        self.hold_in_order(txn, wanted).await
    }

    /// Makes sure the transaction holds `stripe`: it already does, or takes it if it is free.
    /// A stripe held by another is recorded for a restart, and the caller gets
    /// [`SluiceError::Contended`].
    pub(crate) fn txn_hold(&self, txn: &mut TxnState, stripe: Stripe) -> Result<(), SluiceError> {
        if txn.held.contains(&stripe) {
            return Ok(());
        }
        if self.locks.try_hold(stripe) {
            txn.held.insert(stripe);
            if let Some(kind) = txn.busy {
                self.locks.mark_busy([stripe], kind);
            }
            return Ok(());
        }
        txn.contended.push(stripe);
        Err(SluiceError::Contended)
    }

    /// Stages a write of the transaction: checked and normalized as every write is (a value
    /// the keyspace cannot hold is refused now, and nothing is staged), then kept for the
    /// commit. The caller holds the key's stripe in the transaction.
    pub(crate) fn stage(
        &self,
        txn: &mut TxnState,
        route: &Route<'_>,
        write: StoreWrite,
        now: &OpTime<'_>,
    ) -> Result<(), SluiceError> {
        let Prepared {
            write,
            copy_deadline,
        } = self.prepare_write(route, write, now)?;
        let staged = Staged {
            write,
            copy_deadline,
            wakes_watchers: route.wakes_watchers,
        };
        match txn.staged.get_mut(&route.key) {
            Some(earlier) => {
                // A later write of the same key in the transaction replaces the earlier one;
                // a partial row write keeps the columns the earlier one changed.
                let write = staged.write.coalesce_after(&earlier.write);
                *earlier = Staged {
                    write,
                    copy_deadline: staged.copy_deadline,
                    wakes_watchers: earlier.wakes_watchers || staged.wakes_watchers,
                };
            }
            None => {
                txn.order.push(route.key.clone());
                txn.staged.insert(route.key.clone(), staged);
            }
        }
        Ok(())
    }

    /// Applies every staged write, all or none (see the module documentation), with the
    /// transaction still holding its stripes. Returns what to wait for before acknowledging it
    /// (the journal group of its write-back writes), to await after the stripes are released.
    pub(crate) async fn commit_txn(&self, txn: &mut TxnState) -> Result<Applied, SluiceError> {
        // The script is done: whoever waits for its stripes now waits for the commit.
        self.clear_txn_busy(txn);
        if txn.staged.is_empty() {
            return Ok(None);
        }
        self.check_open()?;
        let mut through = Vec::new();
        let mut back = Vec::new();
        for key in std::mem::take(&mut txn.order) {
            let Some(staged) = txn.staged.remove(&key) else {
                continue;
            };
            let mut route = self.route(key.db, key.key);
            route.wakes_watchers = staged.wakes_watchers;
            if route.ks.policy() == Policy::WriteBack {
                back.push((route, staged));
            } else {
                through.push((route, staged));
            }
        }
        let now = OpTime::fixed(&*self.clock, txn.now);
        if !through.is_empty() {
            self.fence_store_writes()?;
        }
        if !back.is_empty() && self.journal.durability() != Durability::None {
            // Refuse before anything is applied, as a single write-back write does.
            if let Some(e) = self.journal.health().error() {
                return Err(SluiceError::Journal(e.to_string()));
            }
        }
        // Room in the write-back buffers first: the only wait of a commit besides the
        // database and the journal, and one that must not come after the database commit.
        let mut room = Vec::with_capacity(back.len());
        for (route, _) in &back {
            match self.reserve_room(route).await {
                Ok(reservation) => room.push(reservation),
                Err(e) => {
                    self.give_back_room(&back, room);
                    return Err(e);
                }
            }
        }
        let stripes: BTreeSet<Stripe> = through
            .iter()
            .chain(back.iter())
            .map(|(route, _)| route.stripe)
            .collect();
        for stripe in &stripes {
            self.locks.begin_install(*stripe);
        }
        let applied = self.apply_staged(&through, &back, room, &now).await;
        for stripe in &stripes {
            self.locks.end_install(*stripe);
        }
        applied
    }

    /// The commit itself, between the stripes' `begin_install` and `end_install`.
    async fn apply_staged(
        &self,
        through: &[(Route<'_>, Staged)],
        back: &[(Route<'_>, Staged)],
        room: Vec<Reservation>,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        // 1. The write-through and invalidate writes: one database transaction.
        let mut written = Vec::new();
        if !through.is_empty() {
            let ops = through
                .iter()
                .map(|(route, staged)| StoreOp {
                    target: route.ks.target(route.key.db),
                    key: route.ks.store_key(&route.key.key),
                    write: staged.write.clone(),
                })
                .collect();
            match self.store.write_atomic(ops).await {
                Ok(w) => written = w,
                Err(failure) => {
                    self.give_back_room(back, room);
                    // The database may hold the old values or, if the outcome is unknown, the
                    // new ones: drop the cached copies, and the next reads refill them.
                    for (route, _) in through {
                        self.evict(route).await;
                    }
                    let (ks, key) = match failure.index.and_then(|i| through.get(i)) {
                        Some((route, _)) => (route.ks, route.key.key.clone()),
                        None => (through[0].0.ks, Bytes::new()),
                    };
                    ks.note_store_error(&failure.error);
                    return Err(SluiceError::TransactionRefused {
                        keyspace: ks.name.clone(),
                        key: String::from_utf8_lossy(&key).into_owned(),
                        error: failure.error,
                    });
                }
            }
            for (route, _) in through {
                route.ks.counters.writes.fetch_add(1, Ordering::Relaxed);
                route
                    .ks
                    .counters
                    .rows_stored
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        // 2. The write-back writes: one journal group, then the buffers.
        let mut journal_failure = None;
        let mut ack = None;
        if !back.is_empty() {
            let durable = self.journal.durability() != Durability::None;
            let first = self.next_seq_range(back.len() as u64, durable);
            let txn_group = (back.len() > 1).then_some(TxnGroup {
                first_seq: first,
                len: back.len() as u32,
            });
            let group = txn_group.map(|txn| BufferedGroup {
                txn,
                spans_keyspaces: back.iter().any(|(route, _)| route.ks.id != back[0].0.ks.id),
            });
            if durable {
                let records = back
                    .iter()
                    .zip(first..)
                    .map(|((route, staged), seq)| JournalRecord {
                        seq,
                        keyspace: route.ks.name.clone(),
                        db: route.key.db,
                        key: route.key.key.clone(),
                        op: JournalOp::Write(self.journaled_write(route, &staged.write)),
                        group: txn_group,
                    })
                    .collect();
                let pending = self.journal.append_group(records);
                if let Some(e) = pending.failed_at_once() {
                    journal_failure = Some(e.to_string());
                } else {
                    ack = Some(PendingDurability(pending));
                }
            }
            if journal_failure.is_some() {
                self.give_back_room(back, room);
            } else {
                self.buffer_group(back, room, first, group, now.ms());
            }
            if durable {
                let mut unbuffered = self.unbuffered.lock();
                for seq in first..first + back.len() as u64 {
                    unbuffered.remove(&seq);
                }
            }
        }
        // 3. The cache, for what was applied.
        for ((route, staged), w) in through.iter().zip(written) {
            self.cache_committed(route, &staged.write, w, staged.copy_deadline, now)
                .await;
            if route.wakes_watchers {
                self.watches.touch(&route.key);
            }
        }
        if let Some(e) = journal_failure {
            return Err(if through.is_empty() {
                SluiceError::Journal(e)
            } else {
                SluiceError::CommittedJournalFailed(e)
            });
        }
        for (route, staged) in back {
            match staged.write.visible() {
                Some((value, kind, expires_at)) => {
                    self.install(route, value, kind, expires_at, staged.copy_deadline, now)
                        .await
                }
                None => self.evict(route).await,
            }
            if route.wakes_watchers {
                self.watches.touch(&route.key);
            }
        }
        Ok(ack)
    }

    /// Buffers the write-back writes of a committed transaction, numbered from `first`: each
    /// keyspace's in one critical section of its buffer, so no drain takes part of them. A group
    /// spanning keyspaces is registered for its whole flush only once every member is buffered.
    fn buffer_group(
        &self,
        back: &[(Route<'_>, Staged)],
        room: Vec<Reservation>,
        first: u64,
        group: Option<BufferedGroup>,
        now_ms: u64,
    ) {
        let mut per_keyspace: Vec<(&Keyspace, Vec<GroupWrite<'_>>)> = Vec::new();
        for (((route, staged), reservation), seq) in back.iter().zip(room).zip(first..) {
            route.ks.counters.writes.fetch_add(1, Ordering::Relaxed);
            let write = (reservation, &route.key, seq, staged.write.clone());
            match per_keyspace.iter_mut().find(|(ks, _)| ks.id == route.ks.id) {
                Some((_, writes)) => writes.push(write),
                None => per_keyspace.push((route.ks, vec![write])),
            }
        }
        for (ks, writes) in &mut per_keyspace {
            if let Some(buffer) = &ks.buffer {
                buffer.insert_group(std::mem::take(writes), now_ms, group);
            }
        }
        if let Some(group) = group.filter(|g| g.spans_keyspaces) {
            self.register_spanning_group(group, per_keyspace.iter().map(|(ks, _)| ks.id));
        }
    }

    /// Ends a transaction an operation ran on its own (MSET, RENAME, ...): commits it if the
    /// operation succeeded, releases its stripes, then waits until it is durable. The result
    /// is the operation's, or the commit's error.
    pub(crate) async fn finish_txn<T>(
        &self,
        mut txn: TxnState,
        ran: Result<T, SluiceError>,
    ) -> Result<T, SluiceError> {
        let committed = match ran {
            Ok(value) => self
                .commit_txn(&mut txn)
                .await
                .map(|applied| (value, applied)),
            Err(e) => Err(e),
        };
        self.release_txn(&mut txn);
        let (value, applied) = committed?;
        durable(applied).await?;
        Ok(value)
    }

    /// Gives back the buffer room reserved for the write-back writes of a transaction that is
    /// not applied.
    fn give_back_room(&self, back: &[(Route<'_>, Staged)], room: Vec<Reservation>) {
        for ((route, _), reservation) in back.iter().zip(room) {
            if let Some(buffer) = &route.ks.buffer {
                buffer.release(reservation);
            }
        }
    }
}
