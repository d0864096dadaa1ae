//! The journal tier: the durable queue between an acknowledged write-back write and its flush.
//!
//! A write-back write is appended here before it is acknowledged. After a crash, every record
//! past the checkpoint is replayed into the write-back buffer, so an acknowledged write is
//! never lost. Records carry the engine's sequence number; replay keeps, per key, only the
//! highest whole record (with the member records after it applied onto it, see
//! [`JournalOp::Members`]), so a record already stored can never regress a key.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use bytes::Bytes;

use crate::config::Durability;
use crate::metrics::EngineMetrics;
use crate::model::member_delta::MemberDelta;
use crate::model::StoreWrite;

pub mod error;
pub mod jetstream;
pub mod none;
pub mod wal;

pub use error::JournalError;

/// What a journal record does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalOp {
    /// A write to one key.
    Write(StoreWrite),
    /// A write to some members of a collection (a set, sorted set, list or stream), recorded
    /// without the collection's image: replay applies it onto the key's earlier records, from
    /// the last one that holds the whole image (the key's chain). The engine records one only
    /// while that chain is still in the journal (the checkpoint never passes a buffered
    /// key's chain).
    Members(MemberDelta),
    /// FLUSHDB (one database) or FLUSHALL (every database) of the record's keyspace: replay
    /// drops every older record of that keyspace in those databases.
    Clear(ClearScope),
}

/// Which databases a [`JournalOp::Clear`] empties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClearScope {
    /// One database (FLUSHDB).
    Db(u8),
    /// Every database (FLUSHALL). On disk the database byte 255 (which no database uses).
    AllDbs,
}

/// One journaled write-back write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalRecord {
    /// Engine-wide sequence number; higher is newer.
    pub seq: u64,
    /// Keyspace name.
    pub keyspace: String,
    /// Redis database index of a write. A clear carries its databases in its
    /// [`ClearScope`]: its `db` is not written, and reads back as the scope's database (0
    /// for every database); [`JournalRecord::clear`] sets it so.
    pub db: u8,
    /// The full Redis key (empty for [`JournalOp::Clear`]).
    pub key: Bytes,
    /// The change.
    pub op: JournalOp,
    /// The transaction this record belongs to, if any: its records are written together and
    /// replayed all or not at all.
    pub group: Option<TxnGroup>,
}

impl JournalRecord {
    /// A FLUSHDB / FLUSHALL record, with `db` and `key` as recovery reads them back.
    pub fn clear(seq: u64, keyspace: impl Into<String>, scope: ClearScope) -> JournalRecord {
        JournalRecord {
            seq,
            keyspace: keyspace.into(),
            db: match scope {
                ClearScope::Db(db) => db,
                ClearScope::AllDbs => 0,
            },
            key: Bytes::new(),
            op: JournalOp::Clear(scope),
            group: None,
        }
    }
}

/// The records of one transaction: sequence numbers `first_seq .. first_seq + len`, appended
/// together by [`Journal::append_group`]. Recovery keeps a group only if every one of its
/// records is on disk, so a crash in the middle of writing it leaves none of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TxnGroup {
    /// The first sequence number of the group.
    pub first_seq: u64,
    /// How many records it has.
    pub len: u32,
}

/// Whether a journal still takes writes.
#[derive(Debug, Clone, Default)]
pub enum JournalHealth {
    /// Appends are made durable as the durability mode promises.
    #[default]
    Ok,
    /// A write or fsync of a segment failed. Since then every append fails at once and
    /// nothing is acknowledged; only a restart (recovery reads back what is really on disk)
    /// brings the journal back.
    Failed {
        /// The segment file whose write or fsync failed.
        path: PathBuf,
        /// What failed, e.g. `fsync` or `append to`.
        doing: &'static str,
        /// The OS error of the failed call.
        cause: Arc<std::io::Error>,
    },
}

impl JournalHealth {
    /// True while the journal takes writes.
    pub fn is_ok(&self) -> bool {
        matches!(self, JournalHealth::Ok)
    }

    /// The error every append returns while the journal is failed; `None` while it is ok.
    pub fn error(&self) -> Option<JournalError> {
        match self {
            JournalHealth::Ok => None,
            JournalHealth::Failed { path, doing, cause } => Some(JournalError::Poisoned {
                path: path.clone(),
                doing,
                cause: cause.clone(),
            }),
        }
    }
}

/// Figures for INFO and SLUICE.KEYSPACES.
#[derive(Debug, Clone, Default)]
pub struct JournalStats {
    /// Bytes on disk in live segments.
    pub bytes: u64,
    /// Live segment files.
    pub segments: u64,
    /// Records appended since start.
    pub appends: u64,
    /// fdatasync calls since start.
    pub syncs: u64,
    /// Whether the journal still takes writes.
    pub health: JournalHealth,
}

/// The durable write-back queue.
#[async_trait]
pub trait Journal: Send + Sync + 'static {
    /// The acknowledgement point this journal gives.
    fn durability(&self) -> Durability;

    /// Queues a record behind every record queued before it, and returns a handle that
    /// resolves once the record is as durable as [`Journal::durability`] promises. Queueing
    /// is synchronous, so a caller can queue under a lock and wait for durability outside it;
    /// that is what lets writers of one key share a group commit.
    fn append(&self, record: JournalRecord) -> JournalAck;

    /// Queues the records of one transaction (each carrying the same [`TxnGroup`], numbered
    /// `first_seq ..`) as one unit: they become durable together, and after a crash they are
    /// replayed all or not at all. The acknowledgement resolves for the whole group.
    fn append_group(&self, records: Vec<JournalRecord>) -> JournalAck;

    /// Declares every record with `seq <= upto` stored, or superseded by a later whole record
    /// of its key appended before this call (a member record supersedes nothing: the engine
    /// keeps `upto` below the whole record a buffered key's member records apply onto); segments wholly below may be deleted. Refused after a
    /// failure until the records were read back with [`Journal::reread_acknowledged`]: a
    /// superseding record may then be one that never became durable.
    async fn checkpoint(&self, upto: u64) -> Result<(), JournalError>;

    /// Records found after the checkpoint when the journal was opened, in append order.
    /// Returns them once; later calls return nothing.
    fn take_recovered(&self) -> Vec<JournalRecord>;

    /// Sizes and counters.
    fn stats(&self) -> JournalStats;

    /// Where to time fsyncs (`journal_fsync`, `journal_writes_per_fsync`, the
    /// `journal-fsync` LATENCY event). Called once, at open; a journal that never syncs
    /// ignores it.
    fn instrument(&self, _metrics: Arc<EngineMetrics>) {}

    /// Whether appends can still be made durable. Cheap (no lock, no allocation while ok):
    /// the engine asks before every write-back write.
    fn health(&self) -> JournalHealth {
        JournalHealth::Ok
    }

    /// Whether this process may still store what its journal holds. A networked journal
    /// says no once its claim on the node's name ran out: another process may be taking the
    /// journal over and storing it, and a flush from here could land an older value after
    /// its newer ones. Asked before every flush, even when no barrier is (after a reload).
    fn may_store(&self) -> bool {
        true
    }

    /// The highest sequence number ever appended, across restarts, so new writes continue
    /// above it.
    fn last_seq(&self) -> u64;

    /// Resolves once every record appended before the call is as durable as
    /// [`Journal::durability`] promises (so each of their writers is, or will be, told it
    /// succeeded), or with an error if the journal is out of service (some of them may be told
    /// they failed). The flusher waits for it before it stores a batch, so the database never
    /// holds a write whose writer was told it failed.
    fn barrier(&self) -> JournalAck {
        JournalAck::ready(self.health().error().map_or(Ok(()), Err))
    }

    /// Resolves when the journal goes out of service ([`JournalHealth::Failed`]); never, for a
    /// journal that cannot fail.
    async fn failed(&self) {
        std::future::pending::<()>().await
    }

    /// After a failure: the records past the checkpoint that are on disk now, in append order,
    /// read back as recovery at the next start would read them. They are exactly the records
    /// whose writers were told they succeeded (the failed group was cut off the segment), so the
    /// engine can drop what it buffered and reload these instead of waiting for a restart.
    async fn reread_acknowledged(&self) -> Result<Vec<JournalRecord>, JournalError> {
        Err(JournalError::Closed)
    }

    /// Makes everything appended durable and stops background work.
    async fn close(&self) -> Result<(), JournalError>;

    /// What the journal's servers say of it, as INFO `name:value` pairs (a networked journal:
    /// its stream's size, leader and replicas); nothing for a local one. Bounded in time: a
    /// server that does not answer is reported as such.
    async fn remote_state(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Resolves when a queued record is durable (await it directly).
pub struct JournalAck(AckState);

enum AckState {
    Done(Result<(), JournalError>),
    Waiting(tokio::sync::oneshot::Receiver<Result<(), JournalError>>),
}

impl JournalAck {
    /// An acknowledgement that is already decided.
    pub fn ready(result: Result<(), JournalError>) -> JournalAck {
        JournalAck(AckState::Done(result))
    }

    /// The error of an acknowledgement that failed already when it was made (the journal
    /// refused the record at once), so a caller can undo its work before anyone sees it.
    pub fn failed_at_once(&self) -> Option<&JournalError> {
        match &self.0 {
            AckState::Done(Err(e)) => Some(e),
            _ => None,
        }
    }

    /// An acknowledgement the journal writer completes later.
    pub fn waiting(rx: tokio::sync::oneshot::Receiver<Result<(), JournalError>>) -> JournalAck {
        JournalAck(AckState::Waiting(rx))
    }
}

/// Polled in place (no boxed future per acknowledgement: a pipeline of writes awaits one each).
impl Future for JournalAck {
    type Output = Result<(), JournalError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            AckState::Done(result) => {
                Poll::Ready(std::mem::replace(result, Err(JournalError::AckPolledTwice)))
            }
            AckState::Waiting(rx) => Pin::new(rx)
                .poll(cx)
                .map(|received| received.unwrap_or(Err(JournalError::WriterStopped))),
        }
    }
}

/// Shared handle to a journal.
pub type SharedJournal = Arc<dyn Journal>;
