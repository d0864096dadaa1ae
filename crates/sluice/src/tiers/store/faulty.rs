//! A store wrapper that fails on demand and counts what reaches the database; for failure
//! injection tests and for measuring write amplification.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;

use super::{
    AtomicFailure, BatchOutcome, SharedStore, Store, StoreOp, StoredValue, TableSchema, Target,
    Written,
};
use crate::error::{ErrorClass, StoreError};
use crate::model::{DbKey, StoreWrite};

/// What became of one batch that passed the door (see [`FaultyStore::batch_log`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchFate {
    /// The batch was committed (its entries may still have failed one by one).
    Committed,
    /// The whole batch failed with this class of error; nothing of it was committed.
    Failed(ErrorClass),
}

/// One batch as [`FaultyStore::batch_log`] records it.
#[derive(Debug, Clone)]
pub struct LoggedBatch {
    /// The entries, in batch order.
    pub ops: Vec<StoreOp>,
    /// What happened to it.
    pub fate: BatchFate,
}

impl LoggedBatch {
    /// The key (built-in key or mapped capture) of each entry, in batch order.
    pub fn keys(&self) -> Vec<Bytes> {
        self.ops.iter().map(|op| op.key.clone()).collect()
    }
}

/// Wraps a real store; injected failures never reach it.
pub struct FaultyStore {
    inner: SharedStore,
    outage: AtomicBool,
    read_outage: AtomicBool,
    fail_batches: AtomicU64,
    conflict_batches: AtomicU64,
    poison: Mutex<HashSet<Vec<u8>>>,
    write_delay: Mutex<Option<Duration>>,
    batches: AtomicU64,
    rows: AtomicU64,
    reads: AtomicU64,
    per_key: Mutex<HashMap<Vec<u8>, u64>>,
    refuse_whole: Mutex<HashSet<Vec<u8>>>,
    fail_whole: Mutex<HashSet<Vec<u8>>>,
    refuse_atomic: Mutex<HashSet<Vec<u8>>>,
    door: Mutex<Option<Arc<tokio::sync::Semaphore>>>,
    at_door: AtomicU64,
    logging: AtomicBool,
    log: Mutex<Vec<LoggedBatch>>,
}

impl FaultyStore {
    /// Wraps `inner`, initially healthy.
    pub fn new(inner: SharedStore) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            outage: AtomicBool::new(false),
            read_outage: AtomicBool::new(false),
            fail_batches: AtomicU64::new(0),
            conflict_batches: AtomicU64::new(0),
            poison: Mutex::new(HashSet::new()),
            write_delay: Mutex::new(None),
            batches: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            reads: AtomicU64::new(0),
            per_key: Mutex::new(HashMap::new()),
            refuse_whole: Mutex::new(HashSet::new()),
            fail_whole: Mutex::new(HashSet::new()),
            refuse_atomic: Mutex::new(HashSet::new()),
            door: Mutex::new(None),
            at_door: AtomicU64::new(0),
            logging: AtomicBool::new(false),
            log: Mutex::new(Vec::new()),
        })
    }

    /// While on, every batch fails whole with a transient error (database unreachable), and
    /// so does every clear (FLUSHDB's).
    pub fn set_outage(&self, on: bool) {
        self.outage.store(on, Ordering::SeqCst);
    }

    /// While on, every read fails with a transient error.
    pub fn set_read_outage(&self, on: bool) {
        self.read_outage.store(on, Ordering::SeqCst);
    }

    /// The next `n` batches fail whole with a transient error.
    pub fn fail_next_batches(&self, n: u64) {
        self.fail_batches.store(n, Ordering::SeqCst);
    }

    /// The next `n` batches are rolled back whole as by a deadlock with another transaction: a
    /// conflict error ([`StoreError::is_conflict`], retryable like a transient one); nothing of them
    /// reaches the database.
    pub fn conflict_next_batches(&self, n: u64) {
        self.conflict_batches.store(n, Ordering::SeqCst);
    }

    /// Entries for this key (built-in key or mapped capture) fail with a permanent error.
    pub fn poison_key(&self, key: &[u8]) {
        self.poison.lock().insert(key.to_vec());
    }

    /// Stops failing entries for this key.
    pub fn cure_key(&self, key: &[u8]) {
        self.poison.lock().remove(key);
    }

    /// A batch holding an entry for this key is refused whole with a permanent error, as by
    /// a database that cannot isolate one bad row; nothing of it is committed.
    pub fn refuse_batches_with_key(&self, key: &[u8]) {
        self.refuse_whole.lock().insert(key.to_vec());
    }

    /// A batch holding an entry for this key fails whole with a transient error, as when the
    /// connection drops while it is written; nothing of it is committed. Checked after
    /// [`FaultyStore::refuse_batches_with_key`], so a batch holding keys of both is refused.
    pub fn fail_batches_with_key(&self, key: &[u8]) {
        self.fail_whole.lock().insert(key.to_vec());
    }

    /// An all-or-nothing batch ([`Store::write_atomic`]) holding an entry for this key is
    /// refused with a permanent error naming that entry, as by a database refusing one
    /// statement of a transaction; nothing of it is committed. Ordinary batches are not
    /// affected.
    pub fn refuse_atomic_with_key(&self, key: &[u8]) {
        self.refuse_atomic.lock().insert(key.to_vec());
    }

    /// Stops the whole-batch failures planned for this key
    /// ([`FaultyStore::refuse_batches_with_key`], [`FaultyStore::fail_batches_with_key`],
    /// [`FaultyStore::refuse_atomic_with_key`]): the database has recovered.
    pub fn heal_batches_with_key(&self, key: &[u8]) {
        for keys in [&self.refuse_whole, &self.fail_whole, &self.refuse_atomic] {
            keys.lock().remove(key);
        }
    }

    /// From now on every batch waits at the door until [`FaultyStore::let_through`] or
    /// [`FaultyStore::open_door`] lets it in; lets a test decide what is in flight.
    pub fn close_door(&self) {
        *self.door.lock() = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets `n` batches through the closed door (those waiting first, in no promised order).
    pub fn let_through(&self, n: usize) {
        if let Some(door) = self.door.lock().as_ref() {
            door.add_permits(n);
        }
    }

    /// Lets every batch through, now and from now on.
    pub fn open_door(&self) {
        if let Some(door) = self.door.lock().take() {
            door.close();
        }
    }

    /// Batches waiting at the closed door.
    pub fn waiting_at_door(&self) -> u64 {
        self.at_door.load(Ordering::SeqCst)
    }

    /// Starts recording every batch for [`FaultyStore::batch_log`] (off by default, so a long
    /// run does not grow without bound).
    pub fn log_batches(&self) {
        self.logging.store(true, Ordering::SeqCst);
    }

    /// Every batch that passed the door since [`FaultyStore::log_batches`], in the order their
    /// fates were decided (so one key's batches appear in the order they were applied, as long
    /// as they were not in flight together).
    pub fn batch_log(&self) -> Vec<LoggedBatch> {
        self.log.lock().clone()
    }

    /// Every batch waits this long before reaching the database.
    pub fn set_write_delay(&self, delay: Option<Duration>) {
        *self.write_delay.lock() = delay;
    }

    /// Batches that reached the database.
    pub fn batches(&self) -> u64 {
        self.batches.load(Ordering::SeqCst)
    }

    /// Row writes (upserts and deletes) the database accepted.
    pub fn rows_written(&self) -> u64 {
        self.rows.load(Ordering::SeqCst)
    }

    /// Point reads that reached the database.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::SeqCst)
    }

    /// Row writes the database accepted for one key.
    pub fn writes_for_key(&self, key: &[u8]) -> u64 {
        self.per_key.lock().get(key).copied().unwrap_or(0)
    }

    fn injected_batch_failure(&self) -> Option<StoreError> {
        if self.outage.load(Ordering::SeqCst) {
            return Some(StoreError::transient(
                "injected outage: database unreachable",
            ));
        }
        let took = self
            .fail_batches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if took {
            return Some(StoreError::transient("injected transient batch failure"));
        }
        let conflict = self
            .conflict_batches
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        conflict.then(|| {
            StoreError::conflict(
                "injected conflict: deadlock detected; the transaction was rolled back",
            )
        })
    }
}

#[async_trait]
impl Store for FaultyStore {
    fn describe(&self) -> String {
        format!("faulty({})", self.inner.describe())
    }

    fn pool_status(&self) -> Option<super::PoolStatus> {
        self.inner.pool_status()
    }

    async fn ensure_builtin_table(&self) -> Result<(), StoreError> {
        self.inner.ensure_builtin_table().await
    }

    async fn journal_mark(&self, claim: Option<&str>) -> Result<Option<String>, StoreError> {
        self.inner.journal_mark(claim).await
    }

    async fn claim_fence(&self, node: &str) -> Result<i64, StoreError> {
        self.inner.claim_fence(node).await
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, StoreError> {
        self.inner.table_schema(table).await
    }

    fn check(
        &self,
        target: &Target,
        key: &[u8],
        write: Option<&StoreWrite>,
    ) -> Result<(), StoreError> {
        self.inner.check(target, key, write)
    }

    async fn read(&self, target: &Target, key: &[u8]) -> Result<Option<StoredValue>, StoreError> {
        if self.read_outage.load(Ordering::SeqCst) || self.outage.load(Ordering::SeqCst) {
            return Err(StoreError::transient(
                "injected outage: database unreachable",
            ));
        }
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.read(target, key).await
    }

    async fn write_batch(&self, ops: Vec<StoreOp>) -> Result<BatchOutcome, StoreError> {
        self.pass_door().await;
        if !self.logging.load(Ordering::SeqCst) {
            return self.write_batch_inner(ops).await;
        }
        let logged = ops.clone();
        let result = self.write_batch_inner(ops).await;
        self.log.lock().push(LoggedBatch {
            ops: logged,
            fate: match &result {
                Ok(_) => BatchFate::Committed,
                Err(e) => BatchFate::Failed(e.class),
            },
        });
        result
    }

    async fn write_atomic(&self, ops: Vec<StoreOp>) -> Result<Vec<Written>, AtomicFailure> {
        self.pass_door().await;
        if !self.logging.load(Ordering::SeqCst) {
            return self.write_atomic_inner(ops).await;
        }
        let logged = ops.clone();
        let result = self.write_atomic_inner(ops).await;
        self.log.lock().push(LoggedBatch {
            ops: logged,
            fate: match &result {
                Ok(_) => BatchFate::Committed,
                Err(f) => BatchFate::Failed(f.error.class),
            },
        });
        result
    }

    async fn scan_keys(&self, target: &Target, now_ms: u64) -> Result<Vec<Bytes>, StoreError> {
        self.inner.scan_keys(target, now_ms).await
    }

    async fn clear(&self, target: &Target) -> Result<(), StoreError> {
        if self.outage.load(Ordering::SeqCst) {
            return Err(StoreError::transient(
                "injected outage: database unreachable",
            ));
        }
        self.inner.clear(target).await
    }

    async fn purge_expired(&self, now_ms: u64, limit: usize) -> Result<Vec<DbKey>, StoreError> {
        self.inner.purge_expired(now_ms, limit).await
    }

    async fn delete_if_expired(&self, db: u8, key: &[u8], now_ms: u64) -> Result<bool, StoreError> {
        self.inner.delete_if_expired(db, key, now_ms).await
    }
}

impl FaultyStore {
    /// Waits at the closed door (if it is), then the configured write delay.
    async fn pass_door(&self) {
        let door = self.door.lock().clone();
        if let Some(door) = door {
            self.at_door.fetch_add(1, Ordering::SeqCst);
            // A closed semaphore is an opened door: pass either way.
            if let Ok(permit) = door.acquire().await {
                permit.forget();
            }
            self.at_door.fetch_sub(1, Ordering::SeqCst);
        }
        let delay = *self.write_delay.lock();
        if let Some(d) = delay {
            tokio::time::sleep(d).await;
        }
    }

    /// The injected failures of [`FaultyStore::write_batch_inner`], as an all-or-nothing
    /// batch meets them: any of them refuses the whole batch, naming the entry when one
    /// entry caused it.
    async fn write_atomic_inner(&self, ops: Vec<StoreOp>) -> Result<Vec<Written>, AtomicFailure> {
        let whole = |error| AtomicFailure { index: None, error };
        if let Some(err) = self.injected_batch_failure() {
            return Err(whole(err));
        }
        let index_of = |keys: &Mutex<HashSet<Vec<u8>>>| {
            let keys = keys.lock();
            ops.iter().position(|op| keys.contains(&op.key[..]))
        };
        if let Some(i) = index_of(&self.refuse_atomic) {
            return Err(AtomicFailure {
                index: Some(i),
                error: StoreError::permanent(format!(
                    "injected refusal of the atomic batch entry for key {:?}; transaction rolled back",
                    String::from_utf8_lossy(&ops[i].key)
                )),
            });
        }
        if let Some(i) = index_of(&self.refuse_whole) {
            return Err(whole(StoreError::permanent(format!(
                "constraint violation; transaction aborted (injected whole-batch refusal for key {:?})",
                String::from_utf8_lossy(&ops[i].key)
            ))));
        }
        if let Some(i) = index_of(&self.fail_whole) {
            return Err(whole(StoreError::transient(format!(
                "injected transient failure of a batch holding key {:?}",
                String::from_utf8_lossy(&ops[i].key)
            ))));
        }
        if let Some(i) = index_of(&self.poison) {
            return Err(AtomicFailure {
                index: Some(i),
                error: StoreError::permanent(format!(
                    "injected permanent failure for key {:?}",
                    String::from_utf8_lossy(&ops[i].key)
                )),
            });
        }
        let keys: Vec<Bytes> = ops.iter().map(|op| op.key.clone()).collect();
        let written = self.inner.write_atomic(ops).await?;
        self.batches.fetch_add(1, Ordering::SeqCst);
        self.rows.fetch_add(keys.len() as u64, Ordering::SeqCst);
        let mut per_key = self.per_key.lock();
        for key in keys {
            *per_key.entry(key.to_vec()).or_default() += 1;
        }
        Ok(written)
    }

    async fn write_batch_inner(&self, ops: Vec<StoreOp>) -> Result<BatchOutcome, StoreError> {
        if let Some(err) = self.injected_batch_failure() {
            return Err(err);
        }
        if let Some(key) = first_key_in(&ops, &self.refuse_whole) {
            // Worded like PostgreSQL's abort: the error does not say which entry failed.
            return Err(StoreError::permanent(format!(
                "constraint violation; transaction aborted (injected whole-batch refusal for key {:?})",
                String::from_utf8_lossy(&key)
            )));
        }
        if let Some(key) = first_key_in(&ops, &self.fail_whole) {
            return Err(StoreError::transient(format!(
                "injected transient failure of a batch holding key {:?}",
                String::from_utf8_lossy(&key)
            )));
        }
        let poison = self.poison.lock().clone();
        let mut outcome: BatchOutcome = Vec::with_capacity(ops.len());
        let mut passed = Vec::with_capacity(ops.len());
        let mut slots = Vec::with_capacity(ops.len());
        for op in ops {
            if poison.contains(&op.key[..]) {
                outcome.push(Err(StoreError::permanent(format!(
                    "injected permanent failure for key {:?}",
                    String::from_utf8_lossy(&op.key)
                ))));
            } else {
                slots.push(outcome.len());
                outcome.push(Ok(Written::NOTHING));
                passed.push(op);
            }
        }
        let keys: Vec<Bytes> = passed.iter().map(|op| op.key.clone()).collect();
        let inner = self.inner.write_batch(passed).await?;
        self.batches.fetch_add(1, Ordering::SeqCst);
        let mut per_key = self.per_key.lock();
        for ((slot, result), key) in slots.into_iter().zip(inner).zip(keys) {
            if result.is_ok() {
                self.rows.fetch_add(1, Ordering::SeqCst);
                *per_key.entry(key.to_vec()).or_default() += 1;
            }
            outcome[slot] = result;
        }
        Ok(outcome)
    }
}

/// The first key of `ops` that is in `keys`.
fn first_key_in(ops: &[StoreOp], keys: &Mutex<HashSet<Vec<u8>>>) -> Option<Bytes> {
    let keys = keys.lock();
    ops.iter()
        .find(|op| keys.contains(&op.key[..]))
        .map(|op| op.key.clone())
}
