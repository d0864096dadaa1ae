//! The engine: keyspace routing → policy → tiers. [`Engine`] owns the tiers and the
//! keyspaces; the public [`crate::Sluice`] handle (in `crate::api`) is a thin type over it.
//!
//! Every write takes its key's stripe lock, so per-key order is the same in the store, the
//! journal, the buffer and the cache. Reads take no key lock: they look in the write-back
//! buffer (whose mutex they take only while it holds entries), then the cache, then the store.
//!
//! | file | role |
//! |---|---|
//! | `route.rs` | which keyspace owns a key, and its lock stripe |
//! | `keyspace.rs` | a keyspace at run time: template, mapped table, buffer, counters |
//! | `read.rs` | the read path: buffer → cache → store (single flight), lazy expiry |
//! | `write.rs` | the value check shared by every policy, then the policy |
//! | `write_through.rs` | write-through and invalidate: store commit, then cache |
//! | `write_back.rs` | write-back: journal, buffer, cache |
//! | `cache_io.rs` | the engine's calls into the cache tier |
//! | `durability.rs` | pending journal acknowledgements and the durability scopes |
//! | `buffer.rs` | the write-back buffer: coalescing, flush order, backpressure |
//! | `flush.rs` | the flusher per keyspace, the expiry reaper |
//! | `isolate.rs` | bisection of a refused batch, so one bad entry never blocks others |
//! | `spanning.rs` | transactions spanning write-back keyspaces: registered, flushed whole |
//! | `group_commit.rs` | shared transactions for write-through and invalidate writes |
//! | `txn.rs` | transactions: locks held together, writes staged, committed all or nothing |
//! | `watches.rs` | WATCH: watched keys and the flags writes set |
//! | `checkpoint.rs` | the journal checkpoint |
//! | `backoff.rs` | exponential backoff with jitter |
//! | `deadletter.rs` | the dead-letter registry |
//! | `locks.rs`, `singleflight.rs` | stripe locks and versions; one store read per missed key |
//! | `open.rs`, `recover.rs`, `shutdown.rs` | start (config checks, tiers), journal replay, drain |

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock::{OpTime, SharedClock};
use crate::config::Config;
use crate::error::SluiceError;
use crate::metrics::EngineMetrics;
use crate::model::DbKey;

/// The keys a takeover engine's replay found (see `Engine::replayed_keys`), each with the
/// type the replayed write leaves it holding (`None`: deleted).
pub(crate) type ReplayedKeys = Arc<Mutex<Vec<(DbKey, Option<crate::model::Kind>)>>>;
use crate::tiers::cache::SharedCache;
use crate::tiers::journal::SharedJournal;
use crate::tiers::store::SharedStore;

mod adopt;
mod backoff;
mod buffer;
mod cache_io;
pub(crate) mod changes;
mod checkpoint;
pub(crate) mod deadletter;
mod durability;
mod flush;
mod group_commit;
mod isolate;
mod key_events;
mod keyspace;
mod locks;
mod open;
mod read;
mod recover;
mod route;
mod shutdown;
mod singleflight;
mod spanning;
mod txn;
mod watches;
mod write;
mod write_back;
mod write_through;

pub(crate) use deadletter::DeadLetters;
pub(crate) use durability::{defer, durable, in_durability_scope, Applied};
pub(crate) use keyspace::Keyspace;
pub(crate) use locks::{KeyLocks, Stripe, StripeGuard};
pub(crate) use open::describe_keyspace;
pub(crate) use route::Route;
pub(crate) use singleflight::SingleFlight;
pub(crate) use txn::TxnState;

pub use changes::drop_change_objects;
pub use durability::{
    take_deferred_durability, with_deferred_durability, with_durability_scope, DurabilityBatch,
};
pub use keyspace::{KeyspaceCounters, ShardedCounter};
pub use open::{check_config, SluiceBuilder};
pub use shutdown::ShutdownReport;

/// The engine shared by every handle.
pub(crate) struct Engine {
    pub(crate) config: Config,
    pub(crate) clock: SharedClock,
    pub(crate) store: SharedStore,
    pub(crate) cache: SharedCache,
    pub(crate) journal: SharedJournal,
    pub(crate) keyspaces: Vec<Arc<Keyspace>>,
    pub(crate) dead_letters: DeadLetters,
    pub(crate) locks: KeyLocks,
    /// Who watches which key (WATCH); every write touches it.
    pub(crate) watches: watches::Watches,
    singleflight: SingleFlight,
    /// Last sequence number handed out.
    pub(crate) seq: AtomicU64,
    /// Sequence numbers appended to the journal but not yet in a buffer; they hold back the
    /// checkpoint.
    unbuffered: Mutex<BTreeSet<u64>>,
    closing: AtomicBool,
    /// Set once the journal went out of service and the buffers were reloaded from it: every
    /// buffered write is then known to be acknowledged, and the flusher stops asking the
    /// (failed) journal.
    buffers_reloaded: AtomicBool,
    /// The write-back transactions spanning keyspaces still buffered, each flushed whole by
    /// whichever of its keyspaces flushes first.
    spanning: Mutex<spanning::SpanningGroups>,
    /// Held while a checkpoint position is computed and sent, and while the buffers are
    /// reloaded after a journal failure.
    checkpointing: tokio::sync::Mutex<()>,
    shutdown_tx: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Stores write-through and invalidate writes of concurrent clients in shared
    /// transactions; stops with the other background tasks.
    committer: group_commit::GroupCommitter,
    /// Histograms of store commits and journal fsyncs, and the LATENCY events.
    pub(crate) metrics: Arc<EngineMetrics>,
    /// Where expiry, eviction and change-capture events go (keyspace notifications).
    key_events: key_events::KeyEvents,
    /// An engine taking over a dead node's journal (`adopt.rs`): where every key its replay
    /// found goes, held by the adopting node (so it outlives an open that fails part-way), to
    /// refresh its own cached copies of them. `None` in every other engine.
    replayed_keys: Option<ReplayedKeys>,
}

impl Engine {
    /// The engine clock, in Unix ms.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    fn check_open(&self) -> Result<(), SluiceError> {
        if self.closing.load(Ordering::SeqCst) {
            return Err(SluiceError::ShuttingDown);
        }
        Ok(())
    }

    /// The time of one operation, read from the clock only if the operation needs it.
    pub(crate) fn op_time(&self) -> OpTime<'_> {
        OpTime::new(&*self.clock)
    }
}
