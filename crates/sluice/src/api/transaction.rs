//! [`Transaction`]: several operations applied all or none (MULTI/EXEC, scripts).

use std::sync::Arc;

use super::access::Access;
use crate::engine::{durable, Engine, TxnState};
use crate::error::SluiceError;

/// A transaction: it holds the locks of its keys from [`crate::Sluice::transaction`] until it
/// ends, stages the writes made on its [`Transaction::access`] (its reads see them), and
/// applies them all or none on [`Transaction::commit`] (see the engine's `txn.rs` for what that
/// means per policy). Dropping it applies nothing and releases the locks.
///
/// A script running in it past its busy threshold marks it busy ([`Access::mark_busy`]):
/// until it commits or is dropped, an operation that would wait for one of its keys fails with
/// [`SluiceError::Busy`] instead (a transaction waiting to begin or restart too), while one
/// waiting for a key held by anything else keeps waiting.
pub struct Transaction {
    engine: Arc<Engine>,
    state: TxnState,
}

impl Transaction {
    pub(crate) async fn begin<'k>(
        engine: Arc<Engine>,
        keys: impl IntoIterator<Item = (u8, &'k [u8])>,
    ) -> Result<Transaction, SluiceError> {
        let state = engine.begin_txn(keys).await?;
        Ok(Transaction { engine, state })
    }

    /// Runs operations inside the transaction.
    pub fn access(&mut self) -> Access<'_> {
        Access::in_txn(&self.engine, &mut self.state)
    }

    /// Unix ms at which the transaction runs: every operation in it sees this instant.
    pub fn now_ms(&self) -> u64 {
        self.state.now()
    }

    /// Whether an operation needed a key that another transaction holds: everything done in
    /// this one must be thrown away and done again after [`Transaction::restart`] (which takes
    /// that key in order too). Such an operation failed with [`SluiceError::Contended`].
    pub fn needs_restart(&self) -> bool {
        self.state.needs_restart()
    }

    /// Drops what was staged and holds, in one global order, every key held or wanted so far.
    /// A key held by a busy script fails it with [`SluiceError::Busy`], holding nothing.
    pub async fn restart(&mut self) -> Result<(), SluiceError> {
        self.engine.restart_txn(&mut self.state).await
    }

    /// Whether nothing was staged.
    pub fn is_empty(&self) -> bool {
        self.state.is_empty()
    }

    /// Applies every staged write, all or none, releases the locks, then waits until the
    /// writes are as durable as the journal promises (inside a durability scope, the wait is
    /// handed to the scope, as for single writes).
    pub async fn commit(mut self) -> Result<(), SluiceError> {
        let applied = self.engine.commit_txn(&mut self.state).await;
        self.engine.release_txn(&mut self.state);
        durable(applied?).await
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.engine.release_txn(&mut self.state);
    }
}
