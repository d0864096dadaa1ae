//! Durability scopes: a write-back write returns its pending journal acknowledgement, which the
//! caller awaits after releasing the key lock, or hands to a batch that a pipelining connection
//! awaits once before writing its replies.

use crate::error::SluiceError;
use crate::tiers::journal::JournalAck;

/// A write-back write whose journal record may not be durable yet.
#[must_use]
pub(crate) struct PendingDurability(pub(super) JournalAck);

/// What [`Engine::apply`] leaves to wait for after the key lock is released.
pub(crate) type Applied = Option<PendingDurability>;

tokio::task_local! {
    static DEFERRED: std::cell::RefCell<Vec<JournalAck>>;
}

/// Waits until an applied write is as durable as the journal promises, or, inside
/// [`with_deferred_durability`], hands the wait to the caller's batch.
pub(crate) async fn durable(applied: Applied) -> Result<(), SluiceError> {
    match defer(applied) {
        Ok(()) => Ok(()),
        Err(PendingDurability(ack)) => ack.await.map_err(|e| SluiceError::Journal(e.to_string())),
    }
}

/// Settles an applied write without waiting: nothing to wait for, or, inside a durability
/// scope, its wait handed to the caller's batch. `Err` gives the wait back outside a scope.
pub(crate) fn defer(applied: Applied) -> Result<(), PendingDurability> {
    let Some(pending) = applied else {
        return Ok(());
    };
    let mut slot = Some(pending);
    let _ = DEFERRED.try_with(|d| {
        if let Some(PendingDurability(ack)) = slot.take() {
            d.borrow_mut().push(ack);
        }
    });
    slot.map_or(Ok(()), Err)
}

/// Whether this task runs in a durability scope ([`with_durability_scope`]), where no write
/// waits for its own durability.
pub(crate) fn in_durability_scope() -> bool {
    DEFERRED.try_with(|_| ()).is_ok()
}

/// Journal acknowledgements collected by [`with_deferred_durability`].
#[must_use = "the writes are not durable until the batch is awaited"]
pub struct DurabilityBatch(Vec<JournalAck>);

impl DurabilityBatch {
    /// True when nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Waits until every collected write is durable. On an error, none of the writes of the
    /// batch may be acknowledged.
    pub async fn wait(self) -> Result<(), SluiceError> {
        let mut first_error = None;
        for ack in self.0 {
            if let Err(e) = ack.await {
                first_error.get_or_insert(SluiceError::Journal(e.to_string()));
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Runs `work` with write-back writes returning as soon as they are buffered and queued in
/// the journal; their acknowledgements come back as a batch that the caller must await before
/// telling any client the writes succeeded. A pipelining server uses this to pay one group
/// commit per pipeline instead of one per command, as Redis does with `appendfsync always`.
pub async fn with_deferred_durability<F: std::future::Future>(
    work: F,
) -> (F::Output, DurabilityBatch) {
    with_durability_scope(async move {
        let out = work.await;
        (out, take_deferred_durability())
    })
    .await
}

/// Runs `work` (typically a whole client connection) in a scope where write-back writes
/// return as soon as they are buffered and queued in the journal, as inside
/// [`with_deferred_durability`]; the caller collects their acknowledgements with
/// [`take_deferred_durability`] and must await them before acknowledging those writes.
/// One scope per connection instead of one per pipeline keeps the per-request cost down.
pub async fn with_durability_scope<F: std::future::Future>(work: F) -> F::Output {
    DEFERRED
        .scope(std::cell::RefCell::new(Vec::new()), work)
        .await
}

/// The acknowledgements deferred since the last call, inside [`with_durability_scope`];
/// empty outside one (there, writes wait for their own durability).
pub fn take_deferred_durability() -> DurabilityBatch {
    DurabilityBatch(
        DEFERRED
            .try_with(|d| std::mem::take(&mut *d.borrow_mut()))
            .unwrap_or_default(),
    )
}
