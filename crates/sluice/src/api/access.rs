//! [`Access`]: where an operation's reads and writes go.
//!
//! Every Redis-shaped operation (in `strings.rs`, `keys.rs`, `hashes.rs`) is written once, on
//! `Access`, against four primitives: lock a key, read it, write it, wait for durability.
//!
//! - **Direct** ([`crate::Sluice::access`]): each operation locks its keys, writes through its
//!   keyspace's policy, and is durable before it returns (or inside a durability scope, before
//!   the caller acknowledges it).
//! - **In a transaction** ([`crate::Transaction::access`]): the transaction holds the locks, a
//!   write is checked and staged, reads see the staged writes, and nothing is applied before
//!   [`crate::Transaction::commit`].
//!
//! The direct path is the hot one: each primitive costs it one branch, and its futures are
//! the ones it always had. GET, SET and INCR also have a form that builds no future when
//! nothing needs a wait ([`Access::get_now`], [`Access::set_now`], [`Access::incr_by_now`]),
//! handing back the rest of the operation ([`Later`]) when something does.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::clock::OpTime;
use crate::config::Durability;
use crate::engine::{
    defer, durable, in_durability_scope, Applied, Engine, Route, Stripe, StripeGuard, TxnState,
};
use crate::error::{ScriptKind, SluiceError};
use crate::model::{Entry, StoreWrite};

/// The rest of an operation that could not finish without waiting (see [`Access::get_now`]).
pub type Later<'s, T> = Pin<Box<dyn Future<Output = Result<T, SluiceError>> + Send + 's>>;

/// A handle for running operations, directly on the engine or inside a transaction.
pub struct Access<'a> {
    engine: &'a Engine,
    txn: Option<&'a mut TxnState>,
}

impl<'a> Access<'a> {
    /// Operations straight on the engine.
    pub(crate) fn direct(engine: &'a Engine) -> Access<'a> {
        Access { engine, txn: None }
    }

    /// Operations staged in a transaction.
    pub(crate) fn in_txn(engine: &'a Engine, txn: &'a mut TxnState) -> Access<'a> {
        Access {
            engine,
            txn: Some(txn),
        }
    }

    pub(crate) fn engine(&self) -> &'a Engine {
        self.engine
    }

    /// Whether the operations are staged in a transaction.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// Counts a command that changed nothing as a write of `key` for WATCH, as Redis does for
    /// some (LTRIM of a list it leaves whole calls `signalModifiedKey`). Inside a transaction
    /// the commit touches only what it staged, so there it goes unseen.
    pub fn touch_watchers(&self, db: u8, key: &Bytes) {
        if !self.in_transaction() {
            self.engine.watches.touch(&crate::model::DbKey {
                db,
                key: key.clone(),
            });
        }
    }

    /// The time of one operation: read from the clock when needed, or the transaction's.
    pub(crate) fn op_time(&self) -> OpTime<'a> {
        match &self.txn {
            None => self.engine.op_time(),
            Some(txn) => OpTime::fixed(&*self.engine.clock, txn.now()),
        }
    }

    /// The engine clock (or the transaction's instant), in Unix ms.
    pub fn now_ms(&self) -> u64 {
        self.op_time().ms()
    }

    /// Where `key` lives.
    pub(crate) fn route(&self, db: u8, key: Bytes) -> Route<'a> {
        self.engine.route(db, key)
    }

    /// The lock of one key for one operation: its stripe lock, or, in a transaction, nothing
    /// (the transaction holds it, or takes it now if it is free; if it is not, the
    /// transaction must run again and this is [`SluiceError::Contended`]). A lock a busy
    /// script holds is [`SluiceError::Busy`].
    pub(crate) async fn lock(
        &mut self,
        route: &Route<'a>,
    ) -> Result<Option<StripeGuard<'a>>, SluiceError> {
        match &mut self.txn {
            None => match self.engine.locks.lock(route.stripe).await {
                Ok(guard) => Ok(Some(guard)),
                Err(kind) => Err(SluiceError::Busy(kind)),
            },
            Some(txn) => self.engine.txn_hold(txn, route.stripe).map(|()| None),
        }
    }

    /// The locks of several keys, taken in one global order (see [`Access::lock`]).
    pub(crate) async fn lock_many(
        &mut self,
        stripes: Vec<Stripe>,
    ) -> Result<Vec<StripeGuard<'a>>, SluiceError> {
        match &mut self.txn {
            None => self
                .engine
                .locks
                .lock_many(stripes)
                .await
                .map_err(SluiceError::Busy),
            Some(txn) => {
                for stripe in stripes {
                    self.engine.txn_hold(txn, stripe)?;
                }
                Ok(Vec::new())
            }
        }
    }

    /// Reads a key as this access sees it: a transaction's own staged write first.
    pub(crate) async fn read(
        &mut self,
        route: &Route<'a>,
        now: &OpTime<'_>,
    ) -> Result<Option<Entry>, SluiceError> {
        self.read_counted(route, now, true).await
    }

    /// [`Access::read`] not counted as a keyspace hit or miss: for a write that reads its key
    /// first, and for looks that are not client reads (INFO's key counts).
    pub(crate) async fn read_uncounted(
        &mut self,
        route: &Route<'a>,
        now: &OpTime<'_>,
    ) -> Result<Option<Entry>, SluiceError> {
        self.read_counted(route, now, false).await
    }

    async fn read_counted(
        &mut self,
        route: &Route<'a>,
        now: &OpTime<'_>,
        count: bool,
    ) -> Result<Option<Entry>, SluiceError> {
        if let Some(txn) = &mut self.txn {
            // A read inside a transaction holds the key too: nobody can change it before
            // the commit, as in Redis, where nothing runs during EXEC or a script.
            self.engine.txn_hold(txn, route.stripe)?;
            if let Some(staged) = txn.staged_entry(&route.key) {
                return Ok(staged);
            }
        }
        self.engine.read_counted(route, now, count).await
    }

    /// Writes a key (its lock held): through its policy, or staged in the transaction.
    pub(crate) async fn write(
        &mut self,
        route: &Route<'a>,
        write: StoreWrite,
        now: &OpTime<'_>,
    ) -> Result<Applied, SluiceError> {
        match &mut self.txn {
            None => self.engine.apply_at(route, write, now).await,
            Some(txn) => self.engine.stage(txn, route, write, now).map(|()| None),
        }
    }

    /// Waits until applied writes are as durable as the journal promises (nothing to wait for
    /// in a transaction: its commit waits).
    pub(crate) async fn durable(&self, applied: Applied) -> Result<(), SluiceError> {
        durable(applied).await
    }

    /// Marks the transaction busy: a script running in it has run past its busy threshold,
    /// and whoever would wait for its keys gets [`SluiceError::Busy`] until it ends (see
    /// [`crate::Transaction`]). Nothing outside a transaction.
    pub fn mark_busy(&mut self, kind: ScriptKind) {
        if let Some(txn) = &mut self.txn {
            self.engine.mark_txn_busy(txn, kind);
        }
    }

    /// Whether an operation may run to its end without waiting: directly on the engine, with
    /// its writes' durability settled at once (no journal, or a durability scope to hand the
    /// wait to).
    pub(crate) fn runs_now(&self) -> bool {
        self.txn.is_none()
            && (self.engine.journal.durability() == Durability::None || in_durability_scope())
    }

    /// The lock of one key, if it is free now (direct access only: see [`Access::runs_now`]).
    pub(crate) fn lock_now(&self, route: &Route<'a>) -> Option<StripeGuard<'a>> {
        self.engine.locks.try_lock(route.stripe)
    }

    /// Settles an applied write's durability without waiting (see [`Access::runs_now`]).
    pub(crate) fn durable_now(&self, applied: Applied) -> Result<(), SluiceError> {
        // `runs_now` checked, in this same poll, that there is nothing to wait for or a scope
        // to hand the wait to; were there neither, the write is reported failed, never
        // acknowledged before it is durable.
        defer(applied).map_err(|_| {
            SluiceError::Journal("no durability scope to wait for the journal in".into())
        })
    }

    /// This access again, for a shorter borrow (to hand to one operation and keep using it).
    pub fn reborrow(&mut self) -> Access<'_> {
        Access {
            engine: self.engine,
            txn: self.txn.as_deref_mut(),
        }
    }

    /// Whether this access is a transaction's and an operation found a key another
    /// transaction holds: the transaction must run again ([`crate::Transaction::restart`]).
    pub fn needs_restart(&self) -> bool {
        self.txn.as_ref().is_some_and(|t| t.needs_restart())
    }

    /// The transaction's state, for operations that read across keys (KEYS, DBSIZE).
    pub(crate) fn txn(&self) -> Option<&TxnState> {
        self.txn.as_deref()
    }
}
