//! The journal checkpoint: the highest sequence number below which every record is stored or
//! superseded. Segments wholly below it are deleted by the journal.

use std::sync::atomic::Ordering;

use tracing::warn;

use super::Engine;
use crate::config::Durability;

impl Engine {
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

    /// Tells the journal how far it may forget. Serialized with the reload after a journal
    /// failure, so no position counted from buffers that held unacknowledged writes reaches the
    /// journal after it was read back.
    pub(crate) async fn advance_checkpoint(&self) {
        if self.journal.durability() == Durability::None {
            return;
        }
        let _turn = self.checkpointing.lock().await;
        let position = self.checkpoint_position();
        if let Err(e) = self.journal.checkpoint(position).await {
            if self.journal.health().is_ok() {
                warn!("journal checkpoint failed (replay after a crash will redo more work): {e}");
            }
        }
    }
}
