//! Isolation of failed entries: a batch the store refuses whole with a permanent error is
//! split in halves until the failing entries stand alone, so one poison entry never blocks the
//! others. Shared by the write-back flusher and the write-through group committer.

use std::pin::Pin;

use crate::error::StoreError;
use crate::tiers::store::{BatchOutcome, Store, StoreOp};

type BoxedOutcome<'a> =
    Pin<Box<dyn std::future::Future<Output = Result<BatchOutcome, StoreError>> + Send + 'a>>;

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
