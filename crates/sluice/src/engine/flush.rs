//! Flushing write-back buffers, the checkpoint, the expiry reaper and the graceful drain.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::deadletter::DeadLetter;
use super::writeback::FlushItem;
use super::{Backoff, Engine, Keyspace};
use crate::config::Durability;
use crate::error::{SluiceError, StoreError};
use crate::tiers::store::{BatchOutcome, Store, StoreOp, StoreWrite};

/// What a graceful shutdown left behind.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// Buffered write-back entries not stored by the deadline.
    pub unflushed: usize,
    /// Whether those entries are safe in the journal (false: they are lost).
    pub kept_in_journal: bool,
}

const REAP_EVERY: Duration = Duration::from_secs(1);
const REAP_LIMIT: usize = 500;

type BoxedOutcome<'a> =
    Pin<Box<dyn std::future::Future<Output = Result<BatchOutcome, StoreError>> + Send + 'a>>;

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
                        Ok(n) if n as usize == REAP_LIMIT => continue,
                        Ok(_) => break,
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
        let now = self.now();
        let ops: Vec<StoreOp> = batch
            .iter()
            .map(|item| StoreOp {
                target: ks.target(item.key.db),
                key: ks.store_key(&item.key.key),
                write: match &item.write {
                    // An upsert that expired while buffered must still remove any older row.
                    StoreWrite::Upsert {
                        expires_at: Some(e),
                        ..
                    } if *e < now => StoreWrite::Delete,
                    w => w.clone(),
                },
            })
            .collect();
        let started = Instant::now();
        let outcome = write_isolating(&*self.store, &ops).await;
        ks.counters
            .last_flush_us
            .store(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let outcome = match outcome {
            Ok(o) => o,
            Err(e) => {
                self.note_store_error(ks, &e);
                return Err(e);
            }
        };
        ks.counters.flushes.fetch_add(1, Ordering::Relaxed);
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
                    self.note_store_error(ks, &e);
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
                    self.note_store_error(ks, &e);
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
        buffer.complete_taken_at(done.iter().copied(), now);
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
            None => Ok(batch.len()),
        }
    }

    /// Flushes every entry of `ks` buffered at the time of the call. Holds the keyspace's
    /// flush lock, so at most one store is in flight per key.
    pub(crate) async fn drain_keyspace(&self, ks: &Keyspace) -> Result<(), StoreError> {
        let _flushing = ks.flush_lock.lock().await;
        self.drain_locked(ks, false).await
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

    /// The highest sequence number below which every journal record is stored or superseded.
    pub(crate) fn checkpoint_position(&self) -> u64 {
        // Read order matters: last assigned, then unbuffered, then buffers. A write moves
        // from `unbuffered` into a buffer before leaving `unbuffered`, so it is seen in one.
        let mut low = {
            let unbuffered = self.unbuffered.lock();
            let last = self.seq.load(Ordering::SeqCst);
            match unbuffered.first() {
                Some(s) => last.min(s - 1),
                None => last,
            }
        };
        for ks in &self.keyspaces {
            if let Some(s) = ks.buffer.as_ref().and_then(|b| b.min_seq()) {
                low = low.min(s - 1);
            }
        }
        low
    }

    pub(crate) async fn advance_checkpoint(&self) {
        if self.journal.durability() == Durability::None {
            return;
        }
        let position = self.checkpoint_position();
        if let Err(e) = self.journal.checkpoint(position).await {
            warn!("journal checkpoint failed (replay after a crash will redo more work): {e}");
        }
    }

    /// Stops accepting writes, drains the buffers within `deadline`, and closes the journal.
    pub(crate) async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.closing.store(true, Ordering::SeqCst);
        let _ = self.shutdown_tx.send(true);
        // One deadline for all of it: a flusher or the reaper stuck in a store call (SQLite
        // waits out its busy timeout) must not hold the drain past `shutdown_timeout`.
        let deadline_at = tokio::time::Instant::now() + deadline;
        let tasks: Vec<_> = std::mem::take(&mut *self.tasks.lock());
        for mut t in tasks {
            if tokio::time::timeout_at(deadline_at, &mut t).await.is_err() {
                // Safe to cancel: an entry leaves its buffer only once the store confirmed it.
                t.abort();
            }
        }
        let drained = tokio::time::timeout_at(deadline_at, async {
            let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(2));
            loop {
                match self.flush_all().await {
                    Ok(()) => break,
                    Err(e) => {
                        let wait = backoff.fail();
                        warn!("drain: flush failed, retrying in {wait:?}: {e}");
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        })
        .await;
        let unflushed: usize = self
            .keyspaces
            .iter()
            .filter_map(|k| k.buffer.as_ref().map(|b| b.len()))
            .sum();
        let kept_in_journal = self.journal.durability() != Durability::None;
        self.advance_checkpoint().await;
        if let Err(e) = self.journal.close().await {
            error!("journal close failed: {e}");
        }
        if unflushed == 0 {
            info!("drain complete: every buffered write is stored");
        } else if kept_in_journal {
            warn!(unflushed, "drain deadline passed; the unstored writes stay in the journal and are stored at the next start");
        } else {
            error!(unflushed, "drain deadline passed with journal durability \"none\": {unflushed} acknowledged writes are LOST");
        }
        if drained.is_err() {
            warn!("drain stopped at its deadline of {deadline:?}");
        }
        ShutdownReport {
            unflushed,
            kept_in_journal,
        }
    }
}

/// Writes a batch; a batch refused whole with a permanent error is split in halves until
/// the failing entries are isolated, so one poison entry never blocks the others. Shared by
/// the write-back flusher and the write-through group committer.
///
/// `Ok` holds one outcome per entry, in order. `Err` is a transient failure of the whole batch
/// before any split, so nothing of it was stored. After a split each part answers for its own
/// entries: a part that fails transiently gives each of its entries that error, and the entries
/// of parts that were committed are still reported stored.
pub(crate) fn write_isolating<'a>(store: &'a dyn Store, ops: &'a [StoreOp]) -> BoxedOutcome<'a> {
    Box::pin(async move {
        let len = ops.len();
        match store.write_batch(ops.to_vec()).await {
            Err(e) if e.is_permanent() && len > 1 => {
                let (left, right) = ops.split_at(len / 2);
                let mut outcome = part_outcome(store, left).await;
                outcome.extend(part_outcome(store, right).await);
                Ok(outcome)
            }
            Err(e) if e.is_permanent() => Ok(vec![Err(e)]),
            other => other,
        }
    })
}

/// One part of a split batch: its entries' outcomes, a transient failure of the part given to
/// each of them (the other parts' commits stand).
async fn part_outcome(store: &dyn Store, ops: &[StoreOp]) -> BatchOutcome {
    write_isolating(store, ops)
        .await
        .unwrap_or_else(|e| ops.iter().map(|_| Err(e.clone())).collect())
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
    let mut wait = ks.config.flush_interval;
    let mut deadline = tokio::time::Instant::now() + wait;
    loop {
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
        match drained {
            Ok(()) => {
                backoff.succeed();
                wait = ks.config.flush_interval;
                engine.advance_checkpoint().await;
            }
            Err(e) => {
                ks.counters.retries.fetch_add(1, Ordering::Relaxed);
                // Rewrites supersede older records even while the store is down.
                engine.advance_checkpoint().await;
                wait = backoff.fail();
                if ks.buffer.as_ref().is_some_and(|b| b.is_full()) {
                    // Writers are getting BUSY: probe the store every second rather than
                    // make them wait out a long backoff after it has recovered.
                    wait = wait.min(Duration::from_secs(1));
                }
                warn!(keyspace = %ks.name, "flush failed, retrying in {wait:?}: {e}");
            }
        }
        deadline = tokio::time::Instant::now() + wait;
    }
}
