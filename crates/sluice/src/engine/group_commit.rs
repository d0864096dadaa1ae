//! Group commit for write-through and invalidate writes.
//!
//! One transaction per client write makes the database's commit the ceiling on write-through
//! throughput. The [`GroupCommitter`] instead takes single writes from concurrent callers and
//! stores them together, up to [`MAX_IN_FLIGHT`] batches at once:
//!
//! - with fewer than [`MAX_IN_FLIGHT`] batches in flight, a write starts a batch at once (with
//!   whatever else is queued), so a lone writer pays one commit and no timer;
//! - with all of them in flight, writes queue, and the next batch takes the whole queue (up to
//!   [`MAX_BATCH`]), so the batch size grows with the load and the commit rate does not have to.
//!
//! Per-key order is not the committer's job: every caller holds its key's stripe lock until its
//! outcome arrives, so two writes to one key are never queued or in flight at the same time.
//!
//! Batches of different keyspaces that map columns of one table can lock the same rows in
//! different orders, and the database may then roll one back as a deadlock or serialization
//! failure ([`StoreError::is_conflict`]). Such a batch committed nothing, so it is run again, up
//! to [`CONFLICT_RETRIES`] times after a short random pause, before its writers hear the error.
//! A retry runs alone: it waits for the batches in flight and holds new ones back until it is
//! done, so it cannot meet them again (only a transaction from outside Sluice can still make it
//! fail). Every store operation is idempotent and every writer still holds its key's lock, so
//! running the batch again can only leave the rows as running it once would have.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch, RwLock};
use tokio::task::{JoinHandle, JoinSet};
use tracing::{debug, error};

use super::isolate::write_isolating;
use crate::error::StoreError;
use crate::metrics::{events, EngineMetrics};
use crate::tiers::store::{BatchOutcome, SharedStore, StoreOp, Written};

/// Batches in flight at once. More than one so that under light load a new write rarely
/// waits for another batch's commit before its own starts; few, so that under load the queue,
/// not the number of concurrent transactions, absorbs the writers, and the store's pool (16
/// connections for PostgreSQL) keeps room for reads. On a local PostgreSQL with 50 clients,
/// 2 to 4 gave the same throughput within noise; 8 lost a quarter of it, 16 over half.
pub(crate) const MAX_IN_FLIGHT: usize = 4;

/// Most writes in one batch: large enough that 50 or more waiting clients go in one
/// transaction, small enough that one batch's statements stay quick to plan and send.
pub(crate) const MAX_BATCH: usize = 512;

/// Times a batch the database rolled back for a conflict is run again before its writers get
/// the error. A deadlock between two batches aborts one of them, and the survivor then commits,
/// so one retry nearly always suffices; a few more cover a burst of them.
pub(crate) const CONFLICT_RETRIES: u32 = 3;

/// The pause before the first retry after a conflict, doubled for each further one and
/// jittered (×0.5 to ×1.5) so that batches aborted together do not collide again.
const CONFLICT_PAUSE: Duration = Duration::from_millis(5);

/// The committer had stopped (the engine is shutting down): the write was not queued and
/// nothing of it reached the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

/// The outcome of one write: stored (with what the store reported about it), or the store's
/// error for it.
pub(crate) type WriteOutcome = Result<Written, StoreError>;

/// A handle on the committer task of one store; the engine holds one.
pub(crate) struct GroupCommitter {
    // Unbounded on purpose: every queued write has a caller awaiting it while holding a key
    // lock, so the queue never holds more writes than there are concurrent writers, and a
    // bounded queue would only add a second place to wait.
    queue: mpsc::UnboundedSender<Waiter>,
}

struct Waiter {
    op: StoreOp,
    reply: Reply,
}

/// The reply to one caller. If it is dropped unanswered (the committer task was aborted or a
/// batch task failed), the caller hears that the outcome is unknown instead of waiting forever.
struct Reply(Option<oneshot::Sender<WriteOutcome>>);

impl Reply {
    fn send(mut self, outcome: WriteOutcome) {
        if let Some(tx) = self.0.take() {
            // The caller may have gone (its connection closed): nobody to tell.
            let _ = tx.send(outcome);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Err(outcome_unknown()));
        }
    }
}

fn outcome_unknown() -> StoreError {
    StoreError::transient(
        "the group committer stopped before this write's outcome was known (Sluice is shutting down); the row may hold the old or the new value",
    )
}

impl GroupCommitter {
    /// Starts the committer task on `store`. The task stops when `shutdown` changes (or its
    /// sender is dropped) or when every handle is dropped: it then refuses new writes, stores
    /// the ones already queued, waits for the batches in flight, and ends. The returned handle
    /// belongs with the engine's other background tasks.
    /// Each batch's commit is timed into `metrics`.
    pub(crate) fn start(
        store: SharedStore,
        shutdown: watch::Receiver<bool>,
        metrics: Arc<EngineMetrics>,
    ) -> (GroupCommitter, JoinHandle<()>) {
        let (queue, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(store, rx, shutdown, metrics));
        (GroupCommitter { queue }, task)
    }

    /// Stores `op` in a transaction shared with concurrent callers and returns its own outcome.
    ///
    /// - `Ok(Ok(written))`: committed; `written.stored` is the text the column then held, where
    ///   the store reported it.
    /// - `Ok(Err(e))`: not committed, or, only when `e` says the outcome is unknown (the
    ///   committer was stopped in the middle of the batch, or the connection was lost during
    ///   COMMIT), possibly committed. A batch the database rolled back for a conflict with
    ///   another transaction is run again, up to [`CONFLICT_RETRIES`] times, before its error is
    ///   reported; any other whole-batch transient error reaches every caller of that batch at
    ///   once; a whole-batch permanent error is isolated by bisection, so it reaches only the
    ///   writes the store refuses on their own.
    /// - `Err(Stopped)`: the committer had stopped; nothing was written.
    ///
    /// Never waits for a write queued after it. The caller must hold the key's lock until this
    /// returns: that, not the committer, keeps one key's writes in order.
    pub(crate) async fn commit(&self, op: StoreOp) -> Result<WriteOutcome, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.queue
            .send(Waiter {
                op,
                reply: Reply(Some(tx)),
            })
            .map_err(|_| Stopped)?;
        // `Reply` answers even when dropped, so a closed channel here is only possible if the
        // task vanished between the two; report it like an abort rather than hang or panic.
        Ok(rx.await.unwrap_or_else(|_| Err(outcome_unknown())))
    }
}

async fn run(
    store: SharedStore,
    mut queue: mpsc::UnboundedReceiver<Waiter>,
    mut shutdown: watch::Receiver<bool>,
    metrics: Arc<EngineMetrics>,
) {
    // Batches run as tasks of their own so that K of them progress in parallel on a
    // multi-threaded runtime; dropping the set (this task aborted) aborts them, and their
    // `Reply`s then tell their callers.
    let mut in_flight: JoinSet<()> = JoinSet::new();
    // Shared by every batch, taken whole by a batch run again after a conflict.
    let turns = Arc::new(RwLock::new(()));
    let mut stopping = *shutdown.borrow();
    if stopping {
        queue.close();
    }
    loop {
        if in_flight.len() >= MAX_IN_FLIGHT {
            // Full: writes pile up in the queue and form the next, bigger batch.
            reap(in_flight.join_next().await);
            continue;
        }
        tokio::select! {
            biased;
            done = in_flight.join_next(), if !in_flight.is_empty() => reap(done),
            first = queue.recv() => {
                let Some(first) = first else {
                    // Closed (stopping or every handle dropped) and empty.
                    break;
                };
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH {
                    match queue.try_recv() {
                        Ok(w) => batch.push(w),
                        Err(_) => break,
                    }
                }
                in_flight.spawn(write_group(store.clone(), turns.clone(), batch, metrics.clone()));
            }
            _ = shutdown.changed(), if !stopping => {
                // Refuse new writes (they get `Stopped`), but store what callers already
                // handed over: they passed the engine's open check and are waiting for it.
                stopping = true;
                queue.close();
            }
        }
    }
    while let Some(done) = in_flight.join_next().await {
        reap(Some(done));
    }
}

fn reap(done: Option<Result<(), tokio::task::JoinError>>) {
    if let Some(Err(e)) = done {
        if e.is_panic() {
            // Its callers were answered by their `Reply`s being dropped.
            error!("a group-commit batch task panicked: {e}");
        }
    }
}

/// Stores one batch, again after a conflict (see [`store_retrying_conflicts`]), and answers
/// each caller with its own outcome.
async fn write_group(
    store: SharedStore,
    turns: Arc<RwLock<()>>,
    batch: Vec<Waiter>,
    metrics: Arc<EngineMetrics>,
) {
    let (ops, replies): (Vec<StoreOp>, Vec<Reply>) =
        batch.into_iter().map(|w| (w.op, w.reply)).unzip();
    metrics.store_commit_writes.record(ops.len() as u64);
    let started = std::time::Instant::now();
    let stored = store_retrying_conflicts(&store, &turns, ops).await;
    let elapsed = started.elapsed();
    metrics.store_commit.record_duration(elapsed);
    metrics.latency.record(events::STORE_COMMIT, elapsed);
    match stored {
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for reply in replies {
                // A store owes one outcome per entry; if it falls short, the writes without
                // one must not be reported as stored.
                reply.send(outcomes.next().unwrap_or_else(|| {
                    Err(StoreError::transient(
                        "the store reported no outcome for this write",
                    ))
                }));
            }
        }
        Err(e) => {
            for reply in replies {
                reply.send(Err(e.clone()));
            }
        }
    }
}

/// Stores `ops`, running the batch again, up to [`CONFLICT_RETRIES`] times after a short
/// jittered pause, while the database rolls it back for a conflict with another transaction.
/// The first attempt shares `turns` with the other batches; a retry takes it whole, so no other
/// batch of this committer runs beside it.
///
/// Only a conflict is retried: the database said the transaction was rolled back, so nothing
/// of it committed ([`write_isolating`] returns an error only for the batch as a whole; after
/// a bisection each part reports its own entries). An error whose outcome is unknown, or any
/// other transient error, is returned at once.
async fn store_retrying_conflicts(
    store: &SharedStore,
    turns: &RwLock<()>,
    ops: Vec<StoreOp>,
) -> Result<BatchOutcome, StoreError> {
    let mut pause = CONFLICT_PAUSE;
    let mut attempt = 0;
    loop {
        let result = if attempt == 0 {
            let _shared = turns.read().await;
            write_isolating(&**store, &ops).await
        } else {
            let _alone = turns.write().await;
            write_isolating(&**store, &ops).await
        };
        match result {
            Err(e) if e.is_conflict() && attempt < CONFLICT_RETRIES => {
                attempt += 1;
                let wait = pause.mul_f64(0.5 + rand::random::<f64>());
                debug!(
                    entries = ops.len(),
                    attempt, "the database rolled a batch back for a conflict; running it again in {wait:?}: {e}"
                );
                tokio::time::sleep(wait).await;
                pause *= 2;
            }
            other => return other,
        }
    }
}
