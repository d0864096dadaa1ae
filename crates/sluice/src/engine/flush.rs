//! Flushing write-back buffers, the checkpoint, the expiry reaper and the graceful drain.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, warn};

use super::backoff::Backoff;
use super::buffer::{BufferedGroup, FlushItem};
use super::deadletter::DeadLetter;
use super::isolate::write_isolating;
use super::{Engine, Keyspace};
use crate::config::Durability;
use crate::error::{SluiceError, StoreError};
use crate::metrics::events;
use crate::model::events::KeyEvent;
use crate::model::StoreWrite;
use crate::tiers::store::{BatchOutcome, EntryOutcome, StoreOp};

const REAP_EVERY: Duration = Duration::from_secs(1);
const REAP_LIMIT: usize = 500;

impl Engine {
    pub(super) fn start_background(self: &Arc<Self>) {
        let mut tasks = self.tasks.lock();
        for ks in &self.keyspaces {
            if ks.buffer.is_some() {
                let engine = Arc::downgrade(self);
                let ks = ks.clone();
                let shutdown = self.shutdown_tx.subscribe();
                tasks.push(tokio::spawn(run_flusher(engine, ks, shutdown)));
            }
        }
        let engine = Arc::downgrade(self);
        let journal = self.journal.clone();
        let mut shutdown = self.shutdown_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            tokio::select! {
                _ = journal.failed() => {}
                _ = shutdown.changed() => return,
            }
            // A networked journal may be unreadable for as long as its servers are away:
            // try again, backing off, until the buffers hold exactly what it acknowledged.
            let mut pause = Duration::from_secs(1);
            loop {
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                if engine.reload_buffers_after_journal_failure().await {
                    return;
                }
                drop(engine);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
                pause = (pause * 2).min(Duration::from_secs(30));
            }
        }));
        let engine = Arc::downgrade(self);
        let mut shutdown = self.shutdown_tx.subscribe();
        tasks.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(REAP_EVERY) => {}
                    _ = shutdown.changed() => return,
                }
                let Some(engine) = engine.upgrade() else {
                    return;
                };
                for _ in 0..20 {
                    match engine.store.purge_expired(engine.now(), REAP_LIMIT).await {
                        Ok(purged) => {
                            for key in &purged {
                                engine.key_event(key.db, &key.key, KeyEvent::Expired);
                            }
                            if purged.len() < REAP_LIMIT {
                                break;
                            }
                        }
                        Err(e) => {
                            warn!("expiry reaper failed, will retry: {e}");
                            break;
                        }
                    }
                }
            }
        }));
    }

    /// Flushes one batch (entries with `seq <= cutoff`). Returns how many entries it handled;
    /// 0 means nothing at or below the cutoff is buffered.
    async fn flush_batch(&self, ks: &Keyspace, cutoff: u64) -> Result<usize, StoreError> {
        let Some(buffer) = &ks.buffer else {
            return Ok(0);
        };
        let batch: Vec<FlushItem> = buffer.take_batch(cutoff);
        if batch.is_empty() {
            return Ok(0);
        }
        self.journal_barrier_before_flush().await?;
        let now = self.now();
        let ops: Vec<StoreOp> = batch.iter().map(|item| flush_op(ks, item, now)).collect();
        let started = Instant::now();
        let outcome = self.store_flush_batch(&batch, ops).await;
        let elapsed = started.elapsed();
        ks.counters
            .last_flush_us
            .store(elapsed.as_micros() as u64, Ordering::Relaxed);
        ks.counters.flush.record(elapsed, batch.len());
        self.metrics.latency.record(events::KEYSPACE_FLUSH, elapsed);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                ks.note_store_error(&e);
                return Err(e);
            }
        };
        ks.counters.flushes.fetch_add(1, Ordering::Relaxed);
        self.settle_flushed(ks, &batch, outcome, now).await?;
        Ok(batch.len())
    }

    /// Before a flush stores what it took: a write is buffered before its journal record is
    /// durable, so store none whose writer may yet be told it failed; waits until every record
    /// appended so far is decided.
    pub(super) async fn journal_barrier_before_flush(&self) -> Result<(), StoreError> {
        if !self.journal.may_store() {
            return Err(StoreError::transient(
                "not stored: this node's claim on its journal ran out, and another node may be storing that journal now; restart this node".to_string(),
            ));
        }
        if self.journal.durability() != Durability::None
            && !self.buffers_reloaded.load(Ordering::SeqCst)
        {
            if let Err(e) = self.journal.barrier().await {
                return Err(StoreError::transient(format!(
                    "not stored while the journal is out of service ({e}); the buffered writes are reloaded from the journal and stored then"
                )));
            }
        }
        Ok(())
    }

    /// Applies the store's outcome for each entry of a flush of `ks` (taken at `now`): a stored
    /// entry leaves the buffer unless rewritten meanwhile, a permanently refused one becomes a
    /// dead letter, and a transiently failed one stays for the retry, whose error is returned.
    pub(super) async fn settle_flushed(
        &self,
        ks: &Keyspace,
        batch: &[FlushItem],
        outcome: BatchOutcome,
        now: u64,
    ) -> Result<(), StoreError> {
        let Some(buffer) = &ks.buffer else {
            return Ok(());
        };
        let mut done: Vec<&FlushItem> = Vec::with_capacity(batch.len());
        let mut dead: Vec<DeadLetter> = Vec::new();
        let mut dead_items: Vec<&FlushItem> = Vec::new();
        let mut transient: Option<StoreError> = None;
        for (item, result) in batch.iter().zip(outcome) {
            match result {
                // The stored text is of no use here: the flush drops the cached copy of a
                // typed column below, and the next read caches the database's form.
                Ok(_) => done.push(item),
                Err(e) if e.is_permanent() => {
                    error!(keyspace = %ks.name, key = %String::from_utf8_lossy(&item.key.key), "store refused a write-back entry permanently; parked as a dead letter: {e}");
                    ks.note_store_error(&e);
                    dead.push(DeadLetter {
                        keyspace: ks.name.clone(),
                        db: item.key.db,
                        key: item.key.key.clone(),
                        write: item.write.clone(),
                        seq: item.seq,
                        error: e.message.clone(),
                        failed_at_ms: now,
                    });
                    dead_items.push(item);
                }
                Err(e) => {
                    ks.note_store_error(&e);
                    transient = Some(e);
                }
            }
        }
        ks.counters
            .rows_stored
            .fetch_add(done.len() as u64, Ordering::Relaxed);
        for item in &done {
            self.dead_letters
                .supersede(item.key.db, &item.key.key, item.seq);
        }
        buffer.complete_taken_at(done.iter().copied(), now, ks.is_builtin());
        for item in &done {
            // A write that expired while buffered was stored as a delete: the key expired.
            if item.write.expires_at().is_some_and(|e| e < now) {
                self.key_event(item.key.db, &item.key.key, KeyEvent::Expired);
            }
        }
        if ks.stores_different_text() {
            // The cached copy holds the client's text; the row may hold another form.
            for item in &done {
                if buffer.lookup(&item.key).is_none() {
                    let _ = self.cache.remove(&item.key).await;
                }
            }
        }
        if !dead.is_empty() {
            match self.dead_letters.park(&dead) {
                Ok(()) => {
                    ks.counters
                        .dead_letters
                        .fetch_add(dead.len() as u64, Ordering::Relaxed);
                    buffer.complete(dead_items.iter().copied());
                    for item in &dead_items {
                        // The database never took this value: stop serving it.
                        let stripe = self.locks.stripe(item.key.db, &item.key.key);
                        self.locks.bump(stripe);
                        if buffer.lookup(&item.key).is_none() {
                            let _ = self.cache.remove(&item.key).await;
                        }
                    }
                }
                Err(e) => {
                    // Cannot park them: keep them buffered rather than lose them.
                    error!(keyspace = %ks.name, "cannot write dead letters, keeping the entries buffered: {e}");
                    transient = Some(
                        StoreError::transient(format!("dead-letter file: {e}")).with_source(e),
                    );
                }
            }
        }
        match transient {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Stores a flush batch: the entries of no transaction together, each failure isolated
    /// ([`write_isolating`]), and each transaction's entries in one all-or-nothing database
    /// transaction of their own: a group the database refuses is refused whole (its entries
    /// become dead letters together), and one that fails transiently stays buffered whole.
    async fn store_flush_batch(
        &self,
        batch: &[FlushItem],
        ops: Vec<StoreOp>,
    ) -> Result<BatchOutcome, StoreError> {
        if batch.iter().all(|item| item.group.is_none()) {
            return write_isolating(&*self.store, &ops).await;
        }
        let mut outcome: Vec<Option<EntryOutcome>> = vec![None; ops.len()];
        let singles: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].group.is_none())
            .collect();
        if !singles.is_empty() {
            let single_ops: Vec<StoreOp> = singles.iter().map(|&i| ops[i].clone()).collect();
            let stored = write_isolating(&*self.store, &single_ops).await?;
            for (i, o) in singles.into_iter().zip(stored) {
                outcome[i] = Some(o);
            }
        }
        let mut groups: Vec<BufferedGroup> = Vec::new();
        for group in batch.iter().filter_map(|item| item.group) {
            if !groups.contains(&group) {
                groups.push(group);
            }
        }
        for group in groups {
            let members: Vec<usize> = (0..batch.len())
                .filter(|&i| batch[i].group == Some(group))
                .collect();
            let group_ops = members.iter().map(|&i| ops[i].clone()).collect();
            match self.store.write_atomic(group_ops).await {
                Ok(written) => {
                    for (i, w) in members.into_iter().zip(written) {
                        outcome[i] = Some(Ok(w));
                    }
                }
                Err(failure) => {
                    for i in members {
                        outcome[i] = Some(Err(failure.error.clone()));
                    }
                }
            }
        }
        // A store owes one outcome per entry: none is not a success.
        Ok(outcome
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::transient(
                        "the store reported no outcome for this write",
                    ))
                })
            })
            .collect())
    }

    /// Flushes every entry of `ks` buffered at the time of the call, then every transaction
    /// spanning it and other keyspaces. Holds the keyspace's flush lock (and, for a spanning
    /// transaction, every keyspace's it spans), so at most one store is in flight per key.
    pub(crate) async fn drain_keyspace(&self, ks: &Keyspace) -> Result<(), StoreError> {
        let drained = {
            let _flushing = ks.flush_lock.lock().await;
            self.drain_locked(ks, false).await
        };
        // Attempted even when the drain failed: one failing entry does not hold back others.
        let spanning = self.flush_spanning_groups(ks.id).await;
        drained.and(spanning)
    }

    /// [`Engine::drain_keyspace`] with the flush lock already held. `new_epoch` (the flusher's
    /// timed drain) restarts the buffer's memory of stored keys, which the size trigger uses to
    /// tell a hot key's rewrite from a fresh key.
    async fn drain_locked(&self, ks: &Keyspace, new_epoch: bool) -> Result<(), StoreError> {
        if let Some(buffer) = &ks.buffer {
            // Before the cutoff: a write buffered in between counts as fresh and is also
            // taken, which can only bring the next size-triggered drain forward.
            buffer.begin_drain(new_epoch);
        }
        let cutoff = self.seq.load(Ordering::SeqCst);
        while self.flush_batch(ks, cutoff).await? > 0 {}
        Ok(())
    }

    /// Flushes every write-back keyspace, then advances the journal checkpoint.
    pub(crate) async fn flush_all(&self) -> Result<(), SluiceError> {
        let mut first_error = None;
        for ks in &self.keyspaces {
            if ks.buffer.is_some() {
                if let Err(e) = self.drain_keyspace(ks).await {
                    first_error.get_or_insert(SluiceError::store(&ks.name, e));
                }
            }
        }
        self.advance_checkpoint().await;
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

async fn run_flusher(
    engine: std::sync::Weak<Engine>,
    ks: Arc<Keyspace>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let Some(buffer) = ks.buffer.as_ref() else {
        return;
    };
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(30));
    // While failing, the backoff's wait; otherwise the interval in force, read at each wait
    // so that CONFIG SET `sluice-flush_interval` applies to the wait under way.
    let mut failing_wait: Option<Duration> = None;
    let mut waiting_since = tokio::time::Instant::now();
    loop {
        let deadline = waiting_since + failing_wait.unwrap_or_else(|| ks.flush_interval());
        let timed = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => true,
            _ = buffer.wake.notified(), if !backoff.failing() => false,
            _ = shutdown.changed() => return,
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let flushing = ks.flush_lock.lock().await;
        if !timed && !buffer.flush_due() {
            // A stale wake: a drain since took the keys that asked for it. The interval's
            // deadline stands.
            continue;
        }
        let drained = engine.drain_locked(&ks, timed).await;
        drop(flushing);
        // The transactions spanning this keyspace and others, with every flush lock they need
        // (none may be held while taking them, or two flushers could wait for each other).
        let drained = drained.and(engine.flush_spanning_groups(ks.id).await);
        match drained {
            Ok(()) => {
                backoff.succeed();
                failing_wait = None;
                engine.advance_checkpoint().await;
            }
            Err(e) => {
                ks.counters.retries.fetch_add(1, Ordering::Relaxed);
                // Rewrites supersede older records even while the store is down.
                engine.advance_checkpoint().await;
                let mut wait = backoff.fail();
                if ks.buffer.as_ref().is_some_and(|b| b.is_full()) {
                    // Writers are getting BUSY: probe the store every second rather than
                    // make them wait out a long backoff after it has recovered.
                    wait = wait.min(Duration::from_secs(1));
                }
                warn!(keyspace = %ks.name, "flush failed, retrying in {wait:?}: {e}");
                failing_wait = Some(wait);
            }
        }
        waiting_since = tokio::time::Instant::now();
    }
}

/// The store operation of a flushed entry.
pub(super) fn flush_op(ks: &Keyspace, item: &FlushItem, now: u64) -> StoreOp {
    StoreOp {
        target: ks.target(item.key.db),
        key: ks.store_key(&item.key.key),
        // A write that expired while buffered must still remove any older row.
        write: match &item.write {
            w if w.expires_at().is_some_and(|e| e < now) => StoreWrite::Delete,
            w => w.clone(),
        },
    }
}
