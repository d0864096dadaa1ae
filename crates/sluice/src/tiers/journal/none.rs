//! No journal: the seed's plain dirty-bit buffer. A crash loses every buffered write-back
//! write; the engine says so in its start-up log.

use async_trait::async_trait;

use super::{Journal, JournalAck, JournalError, JournalRecord, JournalStats};
use crate::config::Durability;

/// The journal that keeps nothing.
#[derive(Debug, Default)]
pub struct NoJournal;

#[async_trait]
impl Journal for NoJournal {
    fn durability(&self) -> Durability {
        Durability::None
    }

    fn append(&self, _record: JournalRecord) -> JournalAck {
        JournalAck::ready(Ok(()))
    }

    fn append_group(&self, _records: Vec<JournalRecord>) -> JournalAck {
        JournalAck::ready(Ok(()))
    }

    async fn checkpoint(&self, _upto: u64) -> Result<(), JournalError> {
        Ok(())
    }

    fn take_recovered(&self) -> Vec<JournalRecord> {
        Vec::new()
    }

    fn stats(&self) -> JournalStats {
        JournalStats::default()
    }

    fn last_seq(&self) -> u64 {
        0
    }

    async fn close(&self) -> Result<(), JournalError> {
        Ok(())
    }
}
