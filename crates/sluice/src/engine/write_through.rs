//! The write-through and invalidate policies: key lock → store commit through the group
//! committer → version bump → cache put (write-through) or removal (invalidate) → ack. A store
//! error removes the cached copy and reaches the client.

use std::sync::atomic::Ordering;

use super::durability::Applied;
use super::group_commit;
use super::route::Route;
use super::Engine;
use crate::clock::OpTime;
use crate::config::Policy;
use crate::error::SluiceError;
use crate::model::{Kind, StoreWrite};
use crate::tiers::store::{StoreOp, Written};

impl Engine {
    /// The write-through / invalidate half of [`Engine::apply`]: the store first (through the
    /// group committer), then the cache.
    pub(super) async fn apply_through(
        &self,
        route: &Route<'_>,
        write: StoreWrite,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        self.fence_store_writes()?;
        let ks = route.ks;
        let op = StoreOp {
            target: ks.target(route.key.db),
            key: ks.store_key(&route.key.key),
            write: write.clone(),
        };
        let outcome = match self.committer.commit(op).await {
            Ok(outcome) => outcome,
            // The committer stopped with the engine before taking the write, so
            // nothing reached the store and the cache is untouched.
            Err(group_commit::Stopped) => return Err(SluiceError::ShuttingDown),
        };
        self.locks.bump(route.stripe);
        match outcome {
            Ok(written) => {
                ks.counters.rows_stored.fetch_add(1, Ordering::Relaxed);
                self.cache_committed(route, &write, written, copy_deadline, now)
                    .await;
                Ok(None)
            }
            Err(e) => {
                self.evict(route).await;
                ks.note_store_error(&e);
                Err(SluiceError::store(&ks.name, e))
            }
        }
    }

    /// Refuses a write that would go straight to the store (write-through, invalidate) on a
    /// node whose networked journal lost its claim on the node name: another node may have
    /// taken its journal over and be serving its keys, so a commit from here could land an
    /// older value after theirs. Always `Ok` on the local journals.
    pub(super) fn fence_store_writes(&self) -> Result<(), SluiceError> {
        if self.journal.may_store() {
            return Ok(());
        }
        let why = self.journal.health().error().map_or_else(
            || "this node's claim on its name ran out".to_string(),
            |e| e.to_string(),
        );
        Err(SluiceError::Journal(format!(
            "{why}; this node writes nothing more to the store until it is restarted"
        )))
    }

    /// The cache after the database committed `write` (write-through or invalidate): under
    /// write-through, what the database holds; otherwise no copy.
    pub(super) async fn cache_committed(
        &self,
        route: &Route<'_>,
        write: &StoreWrite,
        written: Written,
        copy_deadline: Option<u64>,
        now: &OpTime<'_>,
    ) {
        let ks = route.ks;
        let (Some((value, kind, expires_at)), Policy::WriteThrough) =
            (write.visible(), ks.policy())
        else {
            return self.evict(route).await;
        };
        // A typed column may store another text form than was sent: cache what the database
        // holds, as the commit reported it or, from a backend that cannot report it, read back
        // under the key lock.
        let cached = if !ks.stores_different_text() {
            Some(value.clone())
        } else if let Some(stored) = written.stored {
            Some(stored)
        } else {
            let target = ks.target(route.key.db);
            let store_key = ks.store_key(&route.key.key);
            match self.store.read(&target, &store_key).await {
                Ok(Some(stored)) => Some(stored.value),
                _ => None,
            }
        };
        match cached {
            // A row the database left with every mapped column NULL is gone.
            Some(v) if kind == Kind::Hash && v.is_empty() => self.evict(route).await,
            Some(v) => {
                self.install(route, &v, kind, expires_at, copy_deadline, now)
                    .await
            }
            None => self.evict(route).await,
        }
    }
}
