//! Journal replay: at open, and again when the journal goes out of service.
//!
//! At open, records past the checkpoint are replayed into the write-back buffers (the highest
//! sequence number per key wins, a partial write coalesced with the older ones as the buffer
//! coalesces them; FLUSHDB records void older ones), then flushed.
//!
//! When a journal write or fsync fails, the writes of the failed group were already buffered
//! (and cached) before their fsync ran, and their writers are told they failed. The buffers are
//! then rebuilt from what the journal holds on disk, exactly as a restart would rebuild them, so
//! a write that was never acknowledged is neither read nor stored; until then the flusher stores
//! nothing it cannot prove durable ([`super::Engine::flush_batch`] waits for a journal barrier).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::{error, info, warn};

use super::buffer::{BufferedGroup, Replayed};
use super::keyspace::Keyspace;
use super::Engine;
use crate::error::{JournalError, OpenError, StoreError};
use crate::model::member_delta::{ChainRows, MemberDelta};
use crate::model::{DbKey, PartialWrite, StoreWrite};
use crate::tiers::journal::{ClearScope, JournalOp, JournalRecord, TxnGroup};
use crate::tiers::store::StoreOp;

/// What a list of journal records leaves in the buffers.
struct Replay<'e> {
    /// Per write-back keyspace (by id): the newest write of each key, with its sequence number.
    buffered: HashMap<usize, HashMap<DbKey, Replayed>>,
    /// Writes of keyspaces that are no longer write-back, in append order.
    unbuffered: Vec<(&'e Keyspace, JournalRecord)>,
    /// Records naming a keyspace that is no longer configured.
    unknown: usize,
    /// The groups whose records name more than one write-back keyspace, with their keyspaces.
    spanning: Vec<(BufferedGroup, BTreeSet<usize>)>,
}

impl Engine {
    /// Sorts `records` (in append order) into what each buffer must hold.
    fn plan_replay(&self, records: Vec<JournalRecord>) -> Replay<'_> {
        // FLUSHDB records: every older record of that keyspace and database is void.
        let mut clears: HashMap<(String, ClearScope), u64> = HashMap::new();
        for r in &records {
            if let JournalOp::Clear(scope) = r.op {
                let e = clears.entry((r.keyspace.clone(), scope)).or_insert(0);
                *e = (*e).max(r.seq);
            }
        }
        let cleared = |r: &JournalRecord| {
            [ClearScope::Db(r.db), ClearScope::AllDbs]
                .iter()
                .any(|scope| {
                    clears
                        .get(&(r.keyspace.clone(), *scope))
                        .is_some_and(|&c| c > r.seq)
                })
        };
        let mut replay = Replay {
            buffered: HashMap::new(),
            unbuffered: Vec::new(),
            unknown: 0,
            spanning: Vec::new(),
        };
        // The write-back keyspaces each group's records name.
        let mut group_keyspaces: HashMap<TxnGroup, BTreeSet<usize>> = HashMap::new();
        // Keys whose member records are being applied: their `Replayed` write's image is
        // rebuilt from these rows once the key's chain is done.
        let mut chains: HashMap<(usize, DbKey), ChainRows> = HashMap::new();
        // A keyspace no longer write-back: each key's last write, onto which its member
        // records are applied (and stored) one by one.
        let mut last_unbuffered: HashMap<(usize, DbKey), PartialWrite> = HashMap::new();
        for mut record in records {
            if matches!(record.op, JournalOp::Clear(_)) || cleared(&record) {
                continue;
            }
            let Some(ks) = self.keyspaces.iter().find(|k| k.name == record.keyspace) else {
                replay.unknown += 1;
                error!(keyspace = %record.keyspace, seq = record.seq, "journal record names a keyspace that is no longer configured; it is kept in the journal and not applied");
                continue;
            };
            if ks.buffer.is_none() {
                let key = DbKey {
                    db: record.db,
                    key: record.key.clone(),
                };
                let write =
                    match std::mem::replace(&mut record.op, JournalOp::Write(StoreWrite::Delete)) {
                        JournalOp::Members(delta) => {
                            let base = last_unbuffered.get(&(ks.id, key.clone()));
                            match whole_after(base, delta, &record) {
                                Some(write) => StoreWrite::Partial(write),
                                None => continue,
                            }
                        }
                        JournalOp::Write(write) => write,
                        JournalOp::Clear(_) => continue,
                    };
                match &write {
                    StoreWrite::Partial(p) if p.kind.stored_by_member() => {
                        last_unbuffered.insert((ks.id, key), p.clone());
                    }
                    _ => {
                        last_unbuffered.remove(&(ks.id, key));
                    }
                }
                record.op = JournalOp::Write(write);
                replay.unbuffered.push((ks, record));
                continue;
            }
            if let Some(group) = record.group {
                group_keyspaces.entry(group).or_default().insert(ks.id);
            }
            let key = DbKey {
                db: record.db,
                key: record.key.clone(),
            };
            let newest = replay.buffered.entry(ks.id).or_default();
            let op = std::mem::replace(&mut record.op, JournalOp::Write(StoreWrite::Delete));
            let write = match op {
                JournalOp::Write(write) => write,
                JournalOp::Members(delta) => {
                    replay_members(newest, &mut chains, ks.id, key, delta, &record);
                    continue;
                }
                JournalOp::Clear(_) => continue,
            };
            // A whole record after member records: the chain's image first.
            if let (Some(chain), Some(r)) =
                (chains.remove(&(ks.id, key.clone())), newest.get_mut(&key))
            {
                settle(chain, r, &key);
            }
            // A partial write (some members or fields) names only what it changed: the older
            // writes to its key that are still to be stored keep theirs, coalesced as the
            // buffer coalesces them (`StoreWrite::coalesce_after`).
            let write = match newest.get_mut(&key) {
                Some(r) if r.seq >= record.seq => {
                    if matches!(r.write, StoreWrite::Partial(_)) {
                        r.write = r.write.clone().coalesce_after(&write);
                    }
                    continue;
                }
                Some(r) if matches!(write, StoreWrite::Partial(_)) => {
                    write.coalesce_after(&r.write)
                }
                _ => write,
            };
            let group = record.group.map(|txn| BufferedGroup {
                txn,
                spans_keyspaces: false,
            });
            newest.insert(key, Replayed::whole(record.seq, write, group));
        }
        for ((ks_id, key), chain) in chains {
            if let Some(r) = replay
                .buffered
                .get_mut(&ks_id)
                .and_then(|n| n.get_mut(&key))
            {
                settle(chain, r, &key);
            }
        }
        // A group spanning keyspaces is flushed whole by the engine, as it was before the crash.
        for entries in replay.buffered.values_mut() {
            for replayed in entries.values_mut() {
                if let Some(group) = &mut replayed.group {
                    group.spans_keyspaces = group_keyspaces
                        .get(&group.txn)
                        .is_some_and(|ks| ks.len() > 1);
                }
            }
        }
        replay.spanning = group_keyspaces
            .into_iter()
            .filter(|(_, keyspaces)| keyspaces.len() > 1)
            .map(|(txn, keyspaces)| {
                let group = BufferedGroup {
                    txn,
                    spans_keyspaces: true,
                };
                (group, keyspaces)
            })
            .collect();
        replay
    }

    /// Replays journal records past the checkpoint into the buffers, newest per key winning,
    /// then flushes them.
    pub(super) async fn recover(self: &Arc<Self>) -> Result<(), OpenError> {
        let records = self.journal.take_recovered();
        // New writes must be numbered above everything journaled before, even when nothing
        // is left to replay: a seq at or below the checkpoint would be skipped by the next
        // replay as "already stored".
        let max_seq = records.iter().map(|r| r.seq).max().unwrap_or(0);
        self.seq
            .store(max_seq.max(self.journal.last_seq()), Ordering::SeqCst);
        if records.is_empty() {
            return Ok(());
        }
        let count = records.len();
        let started = std::time::Instant::now();
        let now = self.now();
        let mut replay = self.plan_replay(records);
        // Refused before anything is stored: a start (or a takeover, retried at every scan)
        // that stored some records and then failed would store them again each time, over
        // whatever was written since.
        if replay.unknown > 0 {
            return Err(OpenError::Journal(JournalError::UnknownKeyspaces {
                records: replay.unknown,
            }));
        }
        if let Some(keys) = &self.replayed_keys {
            let mut keys = keys.lock();
            keys.extend(replay.buffered.values().flat_map(|entries| {
                entries
                    .iter()
                    .map(|(key, r)| (key.clone(), r.write.visible().map(|(_, kind, _)| kind)))
            }));
            keys.extend(replay.unbuffered.iter().map(|(_, r)| {
                let kind = match &r.op {
                    JournalOp::Write(write) => write.visible().map(|(_, kind, _)| kind),
                    JournalOp::Members(delta) => Some(delta.kind),
                    JournalOp::Clear(_) => None,
                };
                let key = DbKey {
                    db: r.db,
                    key: r.key.clone(),
                };
                (key, kind)
            }));
        }
        for (ks, record) in &replay.unbuffered {
            // The keyspace is no longer write-back: store the record straight away.
            store_unbuffered(self, ks, record).await?;
        }
        for ks in &self.keyspaces {
            if let (Some(buffer), Some(entries)) = (&ks.buffer, replay.buffered.get(&ks.id)) {
                for (key, r) in entries {
                    buffer.insert_replayed(key, r.seq, r.write.clone(), now, r.group, r.recorded());
                }
            }
        }
        self.spanning.lock().extend(replay.spanning.drain(..));
        let buffered_in = started.elapsed();
        self.metrics
            .replay_records
            .store(count as u64, Ordering::Relaxed);
        self.metrics
            .replay_buffer_us
            .store(buffered_in.as_micros() as u64, Ordering::Relaxed);
        info!(
            records = count,
            unknown = replay.unknown,
            "journal replayed into the write-back buffers"
        );
        let flushing = std::time::Instant::now();
        match self.flush_all().await {
            Ok(()) => self
                .metrics
                .replay_flush_us
                .store(flushing.elapsed().as_micros() as u64, Ordering::Relaxed),
            Err(e) => {
                warn!("flush after journal replay failed, will retry in the background: {e}")
            }
        }
        Ok(())
    }

    /// Once the journal has gone out of service: rebuilds every write-back buffer from the
    /// records on disk, with no flush and no write in progress (every flush lock and every key
    /// lock held), then drops the cached copies of every key that was buffered. Afterwards the
    /// buffers hold exactly the acknowledged writes not yet stored, and the flusher stores them
    /// without waiting for the (failed) journal.
    ///
    /// Returns false when the journal could not be read back (a networked journal whose
    /// servers are still away), for the caller to try again later.
    pub(super) async fn reload_buffers_after_journal_failure(&self) -> bool {
        let write_back: Vec<&Arc<Keyspace>> = self
            .keyspaces
            .iter()
            .filter(|k| k.buffer.is_some())
            .collect();
        if write_back.is_empty() {
            return true;
        }
        // Key locks, then flush locks in keyspace order, then the checkpoint's turn: the
        // order FLUSHDB takes them in, so the two cannot wait for each other.
        let _writers = self.locks.lock_all().await;
        let mut flushing = Vec::with_capacity(write_back.len());
        for ks in &write_back {
            flushing.push(ks.flush_lock.lock().await);
        }
        let _checkpointing = self.checkpointing.lock().await;
        let records = match self.journal.reread_acknowledged().await {
            Ok(records) => records,
            Err(e) => {
                error!("the journal failed and cannot be read back yet ({e}: {}); trying again shortly; until then writes whose journal write failed stay visible and nothing is flushed", e.source_text());
                return false;
            }
        };
        let count = records.len();
        let now = self.now();
        let mut replay = self.plan_replay(records);
        let mut dropped = Vec::new();
        for ks in &write_back {
            if let Some(buffer) = &ks.buffer {
                let entries = replay.buffered.remove(&ks.id).unwrap_or_default();
                dropped.extend(buffer.replace_all(entries, now));
            }
        }
        {
            let mut spanning = self.spanning.lock();
            spanning.clear();
            spanning.extend(replay.spanning.drain(..));
        }
        // Nothing is between its journal append and its buffer insert while every key lock
        // is held.
        self.unbuffered.lock().clear();
        // A read-through that began before the swap must not install what it read.
        self.locks.bump_all();
        for key in &dropped {
            let _ = self.cache_remove(key).await;
        }
        self.buffers_reloaded.store(true, Ordering::SeqCst);
        drop(flushing);
        warn!(
            records = count,
            "the journal is out of service: the write-back buffers were reloaded from it, so only acknowledged writes are read and stored; new write-back writes are refused until Sluice is restarted"
        );
        true
    }
}

/// Applies a member record onto its key's replayed write (keyspace `ks`): onto the rows of the
/// key's chain, kept in `chains` until the image is rebuilt once ([`settle`]). A record older
/// than the key's newest is already in it; one with no replayed write of its kind to apply
/// onto starts the key afresh ([`whole_after`]).
fn replay_members(
    newest: &mut HashMap<DbKey, Replayed>,
    chains: &mut HashMap<(usize, DbKey), ChainRows>,
    ks: usize,
    key: DbKey,
    delta: MemberDelta,
    record: &JournalRecord,
) {
    if let Some(r) = newest.get_mut(&key) {
        if r.seq >= record.seq {
            return;
        }
        let chain = match chains.entry((ks, key.clone())) {
            Entry::Occupied(c) => Some(c.into_mut()),
            Entry::Vacant(v) => match &r.write {
                StoreWrite::Partial(p) => ChainRows::from_write(p).map(|c| v.insert(c)),
                _ => None,
            },
        };
        if let Some(chain) = chain.filter(|c| c.kind() == delta.kind) {
            r.chain_bytes += delta.encoded_len();
            chain.apply(delta);
            r.seq = record.seq;
            r.group = None;
            return;
        }
    }
    if let Some(write) = whole_after(None, delta, record) {
        chains.remove(&(ks, key.clone()));
        newest.insert(
            key,
            Replayed::whole(record.seq, StoreWrite::Partial(write), None),
        );
    }
}

/// Gives a replayed key the write its chain of member records adds up to.
fn settle(chain: ChainRows, replayed: &mut Replayed, key: &DbKey) {
    match chain.into_write() {
        Some(write) => replayed.write = StoreWrite::Partial(write),
        // Rows no write makes (a stream's rows that do not decode): the chain's whole record
        // stays, and the loss is said.
        None => {
            error!(key = ?key.key, seq = replayed.seq, "journal replay: the member records of this key do not rebuild a valid value; its last whole record is kept, and the members written after it are lost")
        }
    }
}

/// The write `delta` makes after `base`, the key's last partial write, as one whole value.
/// Without a base (a FLUSHDB voided it while the write was being journaled, or the key held
/// another kind), the members are applied onto an empty collection, and that is logged.
/// `None`, logged, for members that make no valid value: the record is skipped (never stored as
/// an empty value, which would delete what the table holds).
fn whole_after(
    base: Option<&PartialWrite>,
    delta: MemberDelta,
    record: &JournalRecord,
) -> Option<PartialWrite> {
    let kind = delta.kind;
    let mut chain = match base
        .filter(|b| b.kind == kind)
        .and_then(ChainRows::from_write)
    {
        Some(chain) => chain,
        None => {
            warn!(keyspace = %record.keyspace, key = ?record.key, seq = record.seq, "journal replay: a record of some members of a {} has no earlier record of the whole value to apply onto (a FLUSHDB raced the write?); it is applied onto an empty one", kind.type_name());
            ChainRows::empty(kind)
        }
    };
    chain.apply(delta);
    let write = chain.into_write();
    if write.is_none() {
        error!(keyspace = %record.keyspace, key = ?record.key, seq = record.seq, "journal replay: these members of the key make no valid {}; the record is skipped and its write is lost", kind.type_name());
    }
    write
}

/// Stores a replayed write of a keyspace that is no longer write-back.
async fn store_unbuffered(
    engine: &Engine,
    ks: &Keyspace,
    record: &JournalRecord,
) -> Result<(), OpenError> {
    let JournalOp::Write(write) = &record.op else {
        return Ok(());
    };
    // As a flush asks before every batch: a journal whose claim ran out while the replay ran
    // may have been taken over, and its records are the adopter's to store now.
    if !engine.journal.may_store() {
        return Err(OpenError::Journal(
            engine
                .journal
                .health()
                .error()
                .unwrap_or(JournalError::WriterStopped),
        ));
    }
    let op = StoreOp {
        target: ks.target(record.db),
        key: ks.store_key(&record.key),
        write: write.clone(),
    };
    match engine.store.write_batch(vec![op]).await {
        // A store owes one outcome per entry: none is not a success.
        Ok(mut outcome) => match outcome.pop().unwrap_or_else(|| {
            Err(StoreError::transient(
                "the store reported no outcome for this write",
            ))
        }) {
            Ok(_) => Ok(()),
            Err(e) => Err(OpenError::Store(e)),
        },
        Err(e) => Err(OpenError::Store(e)),
    }
}
