//! The write path shared by every policy: the value check, then the keyspace's policy
//! ([`super::write_through`], [`super::write_back`]). The caller holds the key's lock.

use std::sync::atomic::Ordering;

use super::durability::Applied;
use super::route::Route;
use super::Engine;
use crate::clock::OpTime;
use crate::config::Policy;
use crate::error::SluiceError;
use crate::model::{PartialWrite, StoreWrite};

/// The largest value (or a partial write's image and names) a write may hold: 512 MiB, below
/// the 600 MiB journal record replay accepts.
const MAX_VALUE_BYTES: usize = 512 * 1024 * 1024;

/// A write checked and normalized by [`Engine::prepare_write`].
pub(crate) struct Prepared {
    /// The write as the store and buffer take it.
    pub(crate) write: StoreWrite,
    /// On a mapped keyspace, the expiry the client asked for, which bounds only the cached
    /// copy.
    pub(crate) copy_deadline: Option<u64>,
}

impl Engine {
    /// Applies one write according to the keyspace's policy. The caller holds the key's lock.
    ///
    /// A write-back write returns its pending journal acknowledgement: the caller releases
    /// the key lock, then awaits it with [`durable`] before acknowledging the client.
    pub(crate) async fn apply(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
    ) -> Result<Applied, SluiceError> {
        self.apply_at(route, write, &self.op_time()).await
    }

    /// [`Engine::apply`] at the time `now` (see [`Engine::read_at`]).
    pub(crate) async fn apply_at(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        let prepared = self.prepare_write(route, write, now)?;
        self.apply_prepared(route, prepared, now).await
    }

    /// [`Engine::apply_at`] when it needs no wait: a write-back write with room in the buffer
    /// now and the cache in this process. `Err` gives the checked write back, with nothing
    /// done, for [`Engine::apply_prepared`].
    pub(crate) fn apply_now(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        now: &OpTime<'_>,
    ) -> Result<Result<Applied, SluiceError>, Prepared> {
        let prepared = match self.prepare_write(route, write, now) {
            Ok(prepared) => prepared,
            Err(e) => return Ok(Err(e)),
        };
        if route.ks.policy() != Policy::WriteBack {
            return Err(prepared);
        }
        let Some(applied) =
            self.apply_back_now(route, &prepared.write, prepared.copy_deadline, now)
        else {
            return Err(prepared);
        };
        route.ks.counters.writes.fetch_add(1, Ordering::Relaxed);
        if route.wakes_watchers && applied.is_ok() {
            self.watches.touch(&route.key);
        }
        Ok(applied)
    }

    /// Applies a checked write according to the keyspace's policy (the caller holds the key's
    /// lock), and wakes the key's WATCHers.
    pub(crate) async fn apply_prepared(
        &self,
        route: &Route<'_>,
        prepared: Prepared,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        let Prepared {
            write,
            copy_deadline,
        } = prepared;
        let ks = route.ks;
        ks.counters.writes.fetch_add(1, Ordering::Relaxed);
        let applied = match ks.policy() {
            Policy::WriteThrough | Policy::Invalidate => {
                // Boxed: this path waits for a database commit anyway, and its future would
                // otherwise enlarge every write-back write's.
                Box::pin(self.apply_through(route, write, copy_deadline, now)).await
            }
            Policy::WriteBack => self.apply_back(route, write, copy_deadline, now).await,
        }?;
        // Under the key lock, so a transaction that locked the key to check its WATCH sees it.
        if route.wakes_watchers {
            self.watches.touch(&route.key);
        }
        Ok(applied)
    }

    /// What every policy does first, and a transaction does when it stages a write: refuses a
    /// write the keyspace cannot hold (nothing written), and normalizes it: on a mapped table an
    /// expiry bounds only the cached copy (the row never carries one), and a write that expires
    /// before it is made is a delete.
    pub(crate) fn prepare_write(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        now: &OpTime<'_>,
    ) -> Result<Prepared, SluiceError> {
        self.check_open()?;
        // A journal record must stay below what replay accepts; no value may be larger than a
        // client could send in one argument (`proto-max-bulk-len`'s default).
        if write.value_len() > MAX_VALUE_BYTES {
            return Err(SluiceError::TooLarge);
        }
        let ks = route.ks;
        let (write, copy_deadline) = match write {
            StoreWrite::Upsert {
                value,
                kind,
                expires_at,
            } if !ks.is_builtin() => (
                StoreWrite::Upsert {
                    value,
                    kind,
                    expires_at: None,
                },
                expires_at,
            ),
            StoreWrite::Upsert {
                expires_at: Some(e),
                ..
            } if e <= now.ms() => (StoreWrite::Delete, None),
            StoreWrite::Partial(PartialWrite {
                expires_at: Some(e),
                ..
            }) if e <= now.ms() => (StoreWrite::Delete, None),
            // The built-in table keeps such a value's members as rows: a whole value (RENAME,
            // RESTORE, COPY) is written as every member, replacing the key's.
            StoreWrite::Upsert {
                value,
                kind,
                expires_at,
            } if kind.stored_by_member() => (
                StoreWrite::Partial(PartialWrite::whole(kind, value, expires_at)),
                None,
            ),
            other => (other, None),
        };
        if !ks.is_builtin() {
            self.check_mapped_write(route, &write)?;
        }
        Ok(Prepared {
            write,
            copy_deadline,
        })
    }

    /// Refuses, before anything is written, a write that a mapped keyspace cannot hold: a type
    /// other than the one it maps (a hash into a column, a string into a row), or a key or
    /// value its columns cannot take.
    fn check_mapped_write(&self, route: &Route<'_>, write: &StoreWrite) -> Result<(), SluiceError> {
        let ks = route.ks;
        let kind = match write {
            StoreWrite::Upsert { kind, .. } => Some(*kind),
            StoreWrite::Partial(p) => Some(p.kind),
            StoreWrite::Delete => None,
        };
        if let (Some(kind), Some(holds)) = (kind, ks.holds_only()) {
            if kind != holds {
                return Err(SluiceError::Refused(format!(
                    "keyspace '{}' maps {} and holds only {} values; a {} cannot be stored at {}",
                    ks.name,
                    ks.table_text(),
                    holds.type_name(),
                    kind.type_name(),
                    String::from_utf8_lossy(&route.key.key),
                )));
            }
        }
        self.store
            .check(
                &ks.target(route.key.db),
                &ks.store_key(&route.key.key),
                Some(write),
            )
            .map_err(|e| SluiceError::Refused(e.message))
    }

    /// Hands out the next sequence number. With a durable journal the number enters
    /// `unbuffered` in the same critical section, so the checkpoint can never pass it before
    /// it is buffered.
    pub(super) fn next_seq(&self, track: bool) -> u64 {
        self.next_seq_range(1, track)
    }

    /// Hands out `n` consecutive sequence numbers and returns the first (see
    /// [`Engine::next_seq`]).
    pub(super) fn next_seq_range(&self, n: u64, track: bool) -> u64 {
        if track {
            let mut unbuffered = self.unbuffered.lock();
            let first = self.seq.fetch_add(n, Ordering::SeqCst) + 1;
            unbuffered.extend(first..first + n);
            first
        } else {
            self.seq.fetch_add(n, Ordering::SeqCst) + 1
        }
    }
}
