//! The write-back policy: key lock → reserve buffer room (backpressure) → journal append
//! (group commit) → buffer insert (coalescing per key) → version bump → cache → ack. The
//! journal acknowledgement is awaited after the key lock is released.

use super::buffer::{Reservation, ReserveError};
use super::durability::{Applied, PendingDurability};
use super::route::Route;
use super::Engine;
use crate::clock::OpTime;
use crate::error::SluiceError;
use crate::model::StoreWrite;
use crate::tiers::journal::{JournalOp, JournalRecord};

impl Engine {
    /// The write-back half of [`Engine::apply`]: journal and buffer, then the cache.
    pub(super) async fn apply_back(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        let ks = route.ks;
        let buffer = ks
            .buffer
            .as_ref()
            .expect("write-back keyspaces always have a buffer");
        let ack = if self.journal.durability() != crate::config::Durability::None {
            // A journal out of service (a failed write or fsync) makes nothing durable
            // any more: refuse before the write reaches the buffer or the cache.
            if let Some(e) = self.journal.health().error() {
                return Err(SluiceError::Journal(e.to_string()));
            }
            let reservation = self.reserve_room(route).await?;
            let seq = self.next_seq(true);
            // Queue the record under the key lock (so the journal holds one key's writes
            // in sequence order) but wait for its fsync only after the lock is released,
            // so writers of a hot key share one group commit.
            let ack = self.journal.append(JournalRecord {
                seq,
                keyspace: ks.name.clone(),
                db: route.key.db,
                key: route.key.key.clone(),
                op: JournalOp::Write(write.clone()),
                group: None,
            });
            // Refused at once (the journal failed since the check above, or is closed):
            // undo the reservation, so the write never shows.
            if let Some(e) = ack.failed_at_once() {
                let error = SluiceError::Journal(e.to_string());
                buffer.release(reservation);
                self.unbuffered.lock().remove(&seq);
                return Err(error);
            }
            buffer.insert(reservation, &route.key, seq, write.clone(), now.ms());
            self.unbuffered.lock().remove(&seq);
            Some(ack)
        } else {
            // No journal record between reserving room and buffering: one critical
            // section for both.
            let seq = self.next_seq(false);
            if let Err(write) = buffer.try_insert(&route.key, seq, write.clone(), || now.ms()) {
                let reservation = self.wait_for_room(route).await?;
                // A new number: drains may have begun while this write waited.
                let seq = self.next_seq(false);
                buffer.insert(reservation, &route.key, seq, write, now.ms());
            }
            None
        };
        self.locks.bump(route.stripe);
        match write.visible() {
            Some((value, kind, expires_at)) => {
                self.install(route, value, kind, expires_at, copy_deadline, now)
                    .await
            }
            None => self.evict(route).await,
        }
        Ok(ack.map(PendingDurability))
    }

    /// Holds room in the key's write-back buffer: at once if there is room (or the key is
    /// buffered already), else after waiting up to `backpressure_timeout` (`BUSY` after that).
    pub(super) async fn reserve_room(&self, route: &Route<'_>) -> Result<Reservation, SluiceError> {
        let buffer = route
            .ks
            .buffer
            .as_ref()
            .expect("write-back keyspaces always have a buffer");
        match buffer.try_reserve(&route.key) {
            Some(reservation) => Ok(reservation),
            None => self.wait_for_room(route).await,
        }
    }

    /// The wait of [`Engine::reserve_room`] for a full buffer: boxed, like every rarely taken
    /// wait on the write path, so it does not enlarge every write's future.
    async fn wait_for_room(&self, route: &Route<'_>) -> Result<Reservation, SluiceError> {
        let ks = route.ks;
        let buffer = ks
            .buffer
            .as_ref()
            .expect("write-back keyspaces always have a buffer");
        Box::pin(buffer.reserve(&route.key, ks.config.backpressure_timeout))
            .await
            .map_err(|ReserveError::Full| SluiceError::BufferFull(ks.name.clone()))
    }
}
