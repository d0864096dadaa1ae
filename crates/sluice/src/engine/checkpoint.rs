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

    pub(crate) async fn advance_checkpoint(&self) {
        if self.journal.durability() == Durability::None {
            return;
        }
        let position = self.checkpoint_position();
        if let Err(e) = self.journal.checkpoint(position).await {
            warn!("journal checkpoint failed (replay after a crash will redo more work): {e}");
        }
    }
}
