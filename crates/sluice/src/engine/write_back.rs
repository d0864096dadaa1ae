//! The write-back policy: key lock → reserve buffer room (backpressure) → journal append
//! (group commit) → buffer insert (coalescing per key) → version bump → cache → ack. The
//! journal acknowledgement is awaited after the key lock is released.

use super::buffer::{Recorded, Reservation, ReserveError};
use super::durability::{Applied, PendingDurability};
use super::route::Route;
use super::Engine;
use crate::clock::OpTime;
use crate::config::Durability;
use crate::error::SluiceError;
use crate::model::member_delta::MemberDelta;
use crate::model::StoreWrite;
use crate::tiers::journal::{JournalAck, JournalOp, JournalRecord};

impl Engine {
    /// The write-back half of [`Engine::apply`]: journal and buffer, then the cache.
    pub(super) async fn apply_back(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        let ack = match self.buffer_now(route, &write, now) {
            Some(buffered) => buffered?,
            None => {
                let reservation = self.wait_for_room(route).await?;
                self.buffer_reserved(route, &write, now, reservation)?
            }
        };
        self.locks.bump(route.stripe);
        if !self.show_now(route, &write, copy_deadline, now) {
            match write.visible() {
                Some((value, kind, expires_at)) => {
                    self.install(route, value, kind, expires_at, copy_deadline, now)
                        .await
                }
                None => self.evict(route).await,
            }
        }
        Ok(ack.map(PendingDurability))
    }

    /// [`Engine::apply_back`] when it needs no wait: the buffer has room now and the cache is
    /// in this process. `None`, with nothing done, otherwise.
    pub(super) fn apply_back_now(
        &self,
        route: &Route<'_>,
        write: &StoreWrite,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) -> Option<Result<Applied, SluiceError>> {
        self.cache.local()?;
        let ack = match self.buffer_now(route, write, now)? {
            Ok(ack) => ack,
            Err(e) => return Some(Err(e)),
        };
        self.locks.bump(route.stripe);
        self.show_now(route, write, copy_deadline, now);
        Some(Ok(ack.map(PendingDurability)))
    }

    /// Journals and buffers a write if the buffer has room for it now (or holds the key
    /// already); `None`, with nothing done, if the write must wait for room.
    fn buffer_now(
        &self,
        route: &Route<'_>,
        write: &StoreWrite,
        now: &OpTime<'_>,
    ) -> Option<Result<Option<JournalAck>, SluiceError>> {
        let buffer = route
            .ks
            .buffer
            .as_ref()
            .expect("write-back keyspaces always have a buffer");
        if self.journal.durability() != Durability::None {
            // A journal out of service (a failed write or fsync) makes nothing durable
            // any more: refuse before the write reaches the buffer or the cache.
            if let Some(e) = self.journal.health().error() {
                return Some(Err(SluiceError::Journal(e.to_string())));
            }
            let reservation = buffer.try_reserve(&route.key)?;
            Some(self.buffer_reserved(route, write, now, reservation))
        } else {
            // No journal record between reserving room and buffering: one critical
            // section for both.
            let seq = self.next_seq(false);
            buffer
                .try_insert(&route.key, seq, write.clone(), || now.ms())
                .ok()?;
            Some(Ok(None))
        }
    }

    /// Journals and buffers a write into the room held for it.
    fn buffer_reserved(
        &self,
        route: &Route<'_>,
        write: &StoreWrite,
        now: &OpTime<'_>,
        reservation: Reservation,
    ) -> Result<Option<JournalAck>, SluiceError> {
        let ks = route.ks;
        let buffer = ks
            .buffer
            .as_ref()
            .expect("write-back keyspaces always have a buffer");
        if self.journal.durability() == Durability::None {
            // A new number: drains may have begun while this write waited.
            let seq = self.next_seq(false);
            buffer.insert(
                reservation,
                &route.key,
                seq,
                write.clone(),
                now.ms(),
                Recorded::Whole,
            );
            return Ok(None);
        }
        let seq = self.next_seq(true);
        let (op, recorded) = self.journaled_op(route, write, now.ms());
        // Queue the record under the key lock (so the journal holds one key's writes in
        // sequence order) but wait for its fsync only after the lock is released, so writers
        // of a hot key share one group commit.
        let ack = self.journal.append(JournalRecord {
            seq,
            keyspace: ks.name.clone(),
            db: route.key.db,
            key: route.key.key.clone(),
            op,
            group: None,
        });
        // Refused at once (the journal failed since the check, or is closed): undo the
        // reservation, so the write never shows.
        if let Some(e) = ack.failed_at_once() {
            let error = SluiceError::Journal(e.to_string());
            if recorded != Recorded::Whole {
                buffer.unpin(&route.key);
            }
            buffer.release(reservation);
            self.unbuffered.lock().remove(&seq);
            return Err(error);
        }
        buffer.insert(
            reservation,
            &route.key,
            seq,
            write.clone(),
            now.ms(),
            recorded,
        );
        self.unbuffered.lock().remove(&seq);
        Ok(Some(ack))
    }

    /// The journal record of `write` (the caller holds the key's lock), and what it holds.
    ///
    /// A write to some members of a large collection (a set, sorted set, list or stream whose
    /// image is at least `[journal] member_records_from` bytes: below it a whole record costs
    /// about as much, and replays with no chain to rebuild) whose key is buffered as a partial
    /// write of its kind is recorded as those members alone ([`MemberDelta`]): one ZINCRBY of
    /// a large leaderboard journals one member rather than the whole set. Replay rebuilds the
    /// image from the key's chain (its last whole record, then its member records), which the
    /// checkpoint keeps while the key is buffered. The next write is recorded whole again,
    /// which starts a new chain, once a chain's member records add up to the image's size (the
    /// journal keeps at most about twice the image per key, and replay applies at most that)
    /// or once a flush stored the key (a hot key's chain, which holds the checkpoint for every
    /// key's records, spans about one flush interval). Every other write is recorded whole
    /// ([`Engine::journaled_write`]).
    fn journaled_op(
        &self,
        route: &Route<'_>,
        write: &StoreWrite,
        now_ms: u64,
    ) -> (JournalOp, Recorded) {
        if let (StoreWrite::Partial(p), Some(buffer)) = (write, route.ks.buffer.as_ref()) {
            if !p.replace
                && p.kind.stored_by_member()
                && p.image.len() as u64 >= self.config.journal.member_records_from
            {
                if let Some((base, bytes)) = buffer.member_chain(&route.key, p.kind, now_ms) {
                    if let Some(delta) = MemberDelta::of(p) {
                        let size = delta.encoded_len();
                        if bytes + size <= p.image.len() {
                            return (
                                JournalOp::Members(delta),
                                Recorded::Members { base, bytes: size },
                            );
                        }
                    }
                    buffer.unpin(&route.key);
                }
            }
        }
        (
            JournalOp::Write(self.journaled_write(route, write)),
            Recorded::Whole,
        )
    }

    /// The write a journal record holds for `write` (the caller holds the key's lock): the
    /// write itself, or for a partial write (some members or fields) that write coalesced with
    /// the key's buffered, not yet stored one. The checkpoint moves past a key's older records
    /// once a newer one is buffered, so the newer record must name every change still to be
    /// stored, or a replay after a crash would store only its own members. A change named
    /// again after it was stored is stored again, unchanged (the image decides its value).
    pub(super) fn journaled_write(&self, route: &Route<'_>, write: &StoreWrite) -> StoreWrite {
        match (write, route.ks.buffer.as_ref()) {
            (StoreWrite::Partial(_), Some(buffer)) => match buffer.lookup(&route.key) {
                Some(pending) => write.clone().coalesce_after(&pending.write),
                None => write.clone(),
            },
            _ => write.clone(),
        }
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
