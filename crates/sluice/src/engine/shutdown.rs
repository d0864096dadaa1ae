//! The graceful drain: stop accepting writes, store what is buffered within a deadline, close
//! the journal, and say what is left.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tracing::{error, info, warn};

use super::backoff::Backoff;
use super::Engine;
use crate::config::Durability;

/// What a graceful shutdown left behind.
#[derive(Debug, Clone, Default)]
pub struct ShutdownReport {
    /// Buffered write-back entries not stored by the deadline.
    pub unflushed: usize,
    /// Whether those entries are safe in the journal (false: they are lost).
    pub kept_in_journal: bool,
}

impl Engine {
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
