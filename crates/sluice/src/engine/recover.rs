//! Recovery at open: journal records past the checkpoint are replayed into the write-back
//! buffers (the highest sequence number per key wins; FLUSHDB records void older ones), then
//! flushed.

use std::sync::Arc;

use tracing::{error, info, warn};

use super::keyspace::Keyspace;
use super::Engine;
use crate::error::OpenError;
use crate::tiers::journal::{ClearScope, JournalOp, JournalRecord};

impl Engine {
    /// Replays journal records past the checkpoint into the buffers, newest per key winning,
    /// then flushes them.
    pub(super) async fn recover(self: &Arc<Self>) -> Result<(), OpenError> {
        let records = self.journal.take_recovered();
        // New writes must be numbered above everything journaled before, even when nothing
        // is left to replay: a seq at or below the checkpoint would be skipped by the next
        // replay as "already stored".
        let max_seq = records.iter().map(|r| r.seq).max().unwrap_or(0);
        self.seq.store(
            max_seq.max(self.journal.last_seq()),
            std::sync::atomic::Ordering::SeqCst,
        );
        if records.is_empty() {
            return Ok(());
        }
        let count = records.len();
        let now = self.now();
        let mut unknown = 0usize;
        // FLUSHDB records: every older record of that keyspace and database is void.
        let mut clears: std::collections::HashMap<(String, ClearScope), u64> = Default::default();
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
        for record in records {
            let JournalOp::Write(write) = &record.op else {
                continue;
            };
            if cleared(&record) {
                continue;
            }
            let Some(ks) = self.keyspaces.iter().find(|k| k.name == record.keyspace) else {
                unknown += 1;
                error!(keyspace = %record.keyspace, seq = record.seq, "journal record names a keyspace that is no longer configured; it is kept in the journal and not applied");
                continue;
            };
            let Some(buffer) = &ks.buffer else {
                // The keyspace is no longer write-back: store the record straight away.
                buffer_less_replay(self, ks, &record, write.clone()).await?;
                continue;
            };
            let key = crate::model::DbKey {
                db: record.db,
                key: record.key.clone(),
            };
            let newer_buffered = buffer.lookup(&key).is_some_and(|p| p.seq >= record.seq);
            if newer_buffered {
                continue;
            }
            buffer.insert_replayed(&key, record.seq, write.clone(), now);
        }
        info!(
            records = count,
            unknown, "journal replayed into the write-back buffers"
        );
        if unknown > 0 {
            return Err(OpenError::Journal(
                crate::error::JournalError::UnknownKeyspaces { records: unknown },
            ));
        }
        if let Err(e) = self.flush_all().await {
            warn!("flush after journal replay failed, will retry in the background: {e}");
        }
        Ok(())
    }
}

async fn buffer_less_replay(
    engine: &Engine,
    ks: &Keyspace,
    record: &JournalRecord,
    write: crate::model::StoreWrite,
) -> Result<(), OpenError> {
    let key = bytes::Bytes::clone(&record.key);
    let op = crate::tiers::store::StoreOp {
        target: ks.target(record.db),
        key: ks.store_key(&key),
        write,
    };
    match engine.store.write_batch(vec![op]).await {
        // A store owes one outcome per entry: none is not a success.
        Ok(mut outcome) => match outcome.pop().unwrap_or_else(|| {
            Err(crate::error::StoreError::transient(
                "the store reported no outcome for this write",
            ))
        }) {
            Ok(_) => Ok(()),
            Err(e) => Err(OpenError::Store(e)),
        },
        Err(e) => Err(OpenError::Store(e)),
    }
}
