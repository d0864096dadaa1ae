//! The write-back journal on a NATS JetStream stream (`[cluster]`): a record is acknowledged
//! once the stream stored it on a majority of its replicas, so neither this node's death nor
//! the loss of its disk loses an acknowledged write.
//!
//! Layout in the stream `<journal_stream>` (subjects `<journal_subject>.>`), per node:
//! - `<journal_subject>.<node>.records`: messages of one or more records, each a version byte
//!   then `[len u32][payload]` frames ([`super::wal::encode_payload`]'s payload, the same
//!   bytes the segment files hold). A transaction's records may span consecutive messages
//!   (packing fills each message up to `max_payload`); recovery keeps a group only if all of
//!   it is there.
//! - `<journal_subject>.<node>.checkpoint`: the last checkpoint, `[upto u64][last_seq u64]`
//!   and the sequence ranges of appends that failed. Written after every earlier append is in
//!   the stream and before the records it covers are purged, so a purge that never happened
//!   costs a replay of stored records, never a lost one.
//!
//! One writer task does the group commit the segment writer does on disk: it takes every
//! append waiting, packs them into as few messages as fit, publishes one message at a time
//! and completes the waiters when its PubAck arrives. One message in flight keeps the stream
//! in append order, so the checkpoint can purge a prefix. A publish that fails (a reconnect,
//! a leader election, no quorum) is retried with the same `Nats-Msg-Id` until
//! `publish_timeout`, so a retry of a message the stream did store is dropped as a duplicate
//! instead of stored twice; message IDs carry a nonce per process, so a restarted node never
//! has a new message dropped as a duplicate of an old one. Past the timeout the journal goes
//! out of service like the segment journal after a failed fsync: every later append fails, and
//! the engine rebuilds its buffers from what the stream really holds
//! ([`Journal::reread_acknowledged`]). A write whose publish was given up on may nevertheless
//! reach the stream (its PubAck was lost, or the client sends what it buffered once it
//! reconnects): its writer was told it failed, so the reread first records its sequence numbers
//! in a checkpoint message and recovery skips them, now and after a restart. Only a kill before
//! that message is written leaves such a write to be replayed, the one outcome the segment
//! journal never gives.
//!
//! The node name is claimed in a second stream, `<journal_stream>_NODES` ([`claim_node`]), so
//! two live processes never write and purge one journal.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use async_trait::async_trait;
use bytes::{BufMut, Bytes};
use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::wal::{decode_payload, encode_payload};
use super::{Journal, JournalAck, JournalError, JournalHealth, JournalRecord, JournalStats};
use crate::config::{ClusterConfig, Durability};
use crate::metrics::{events, EngineMetrics};

/// The first byte of every records message.
/// Version 2 added member records: a binary that knows only version 1 refuses such a message
/// instead of misreading it.
const FORMAT_VERSION: u8 = 2;
/// The oldest message version this binary reads.
const OLDEST_FORMAT_VERSION: u8 = 1;
/// Bytes of a message kept free for its headers and protocol framing.
const HEADROOM: usize = 4096;
/// How long one publish attempt waits for its PubAck before it is retried.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Messages read per request when the stream is read back.
const READ_BATCH: usize = 512;

/// Where the journal lives, and what its writer and checkpoints need to reach it.
struct Place {
    context: jetstream::Context,
    stream: stream::Stream,
    records_subject: String,
    checkpoint_subject: String,
    /// `jetstream://<stream>/<records subject>`, for errors and INFO.
    target: String,
    node: String,
    /// Distinguishes this process's message IDs from an earlier run's.
    nonce: u64,
    publish_timeout: Duration,
    /// Largest message body the servers take, headroom removed.
    budget: usize,
}

/// A message of this node's records the stream acknowledged and no checkpoint purged yet.
#[derive(Debug, Clone, Copy)]
struct LiveMessage {
    stream_seq: u64,
    max_seq: u64,
    bytes: u64,
}

/// State the writer task and the handle share.
struct Shared {
    appends: AtomicU64,
    publishes: AtomicU64,
    last_seq: AtomicU64,
    /// Live messages in stream order (one message in flight keeps them so).
    live: Mutex<VecDeque<LiveMessage>>,
    /// Sequence ranges of appends whose writers were told they failed: a message given up on
    /// may still reach the stream (the client sends what it buffered once it reconnects), so
    /// every later checkpoint message names them and recovery skips them.
    voided: Mutex<Vec<(u64, u64)>>,
    /// Set once [`Journal::reread_acknowledged`] recorded the voided ranges: checkpoints are
    /// allowed again.
    reread: std::sync::atomic::AtomicBool,
    failure: OnceLock<JournalHealth>,
    failed: tokio::sync::watch::Sender<bool>,
    metrics: OnceLock<Arc<EngineMetrics>>,
    /// Set once this process's claim on the node name ran out or was taken: another process
    /// (a node taking the journal over) may own the subject now, so this one neither
    /// publishes, records a checkpoint, purges, nor reads it back for a reload.
    name_lost: AtomicBool,
    /// Until when (ms since `epoch`) the claim is surely this process's: the last renewal
    /// sent, plus five sixths of `node_lease`. The writer checks it before every publish, so
    /// a process that was paused past it (and may have been taken over) publishes nothing,
    /// even before its renewal task has run.
    claim_valid_until_ms: AtomicU64,
    epoch: Instant,
}

impl Shared {
    /// Marks the claim as valid for `for_how_long` from `sent` (when its renewal was sent).
    fn claim_renewed(&self, sent: Instant, for_how_long: Duration) {
        let until = sent.saturating_duration_since(self.epoch) + for_how_long;
        self.claim_valid_until_ms
            .store(until.as_millis() as u64, Ordering::SeqCst);
    }

    fn claim_valid(&self) -> bool {
        (self.epoch.elapsed().as_millis() as u64) < self.claim_valid_until_ms.load(Ordering::SeqCst)
    }

    /// Whether this process still holds the node name: a claim not renewed in time (this
    /// process was paused, or cut off from NATS) gives it up here, whatever the renewer saw.
    fn holds_name(&self, place: &Place) -> bool {
        if !self.name_lost.load(Ordering::SeqCst) && !self.claim_valid() {
            self.lose_name(
                place,
                format!("the claim on node name {:?} was not renewed in time (this process was paused or cut off from NATS), so another process may own the name now", place.node),
            );
        }
        !self.name_lost.load(Ordering::SeqCst)
    }

    /// The claim on the name is gone: the journal goes out of service for good.
    fn lose_name(&self, place: &Place, cause: String) {
        self.name_lost.store(true, Ordering::SeqCst);
        self.fail(place, "hold the node name of", cause);
    }

    fn fail(&self, place: &Place, doing: &'static str, cause: String) {
        let health = JournalHealth::Failed {
            path: PathBuf::from(&place.target),
            doing,
            cause: Arc::new(std::io::Error::other(cause.clone())),
        };
        if self.failure.set(health).is_ok() {
            self.failed.send_replace(true);
            tracing::error!(
                target = %place.target,
                "the JetStream journal is out of service (cannot {doing} it: {cause}); write-back writes are refused until Sluice restarts"
            );
        }
    }

    fn health(&self) -> JournalHealth {
        self.failure.get().cloned().unwrap_or_default()
    }
}

/// What the writer task is asked to do, in append order.
enum Request {
    /// Records to publish: their frames, already encoded.
    Append {
        frames: Vec<Bytes>,
        min_seq: u64,
        max_seq: u64,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    /// Answered once everything queued before it is acknowledged.
    Barrier {
        done: oneshot::Sender<Result<(), JournalError>>,
    },
}

/// The JetStream journal.
pub struct JetStreamJournal {
    place: Arc<Place>,
    shared: Arc<Shared>,
    lease: Arc<Lease>,
    renewer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    tx: Mutex<Option<mpsc::UnboundedSender<Request>>>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    recovered: Mutex<Vec<JournalRecord>>,
    checkpointing: tokio::sync::Mutex<u64>,
}

fn nats_error(
    doing: &'static str,
    target: &str,
    source: impl std::error::Error + Send + Sync + 'static,
) -> JournalError {
    JournalError::JetStream {
        doing,
        target: target.to_string(),
        source: Arc::new(source),
    }
}

impl JetStreamJournal {
    /// Connects, creates the stream if it is missing (refusing one whose replica count or
    /// subjects differ from the configuration), and reads back this node's records past its
    /// last checkpoint.
    pub async fn open(config: &ClusterConfig) -> Result<JetStreamJournal, JournalError> {
        Self::open_claiming(config, true).await
    }

    /// As [`JetStreamJournal::open`], for a node taking a dead node's journal over: if
    /// another process holds the name (the node came back, or another node took it over
    /// first) it fails at once with [`JournalError::NodeNameInUse`] instead of waiting.
    pub async fn open_for_takeover(
        config: &ClusterConfig,
    ) -> Result<JetStreamJournal, JournalError> {
        Self::open_claiming(config, false).await
    }

    async fn open_claiming(
        config: &ClusterConfig,
        wait_for_name: bool,
    ) -> Result<JetStreamJournal, JournalError> {
        let names = Names::of(config);
        let (context, budget) = connect(config, &names).await?;
        let stream = get_or_create_patiently(
            &context,
            wanted_stream(config),
            Instant::now() + config.publish_timeout,
            &names.target,
        )
        .await?;
        check_stream(config, stream.cached_info())?;
        let nonce = nonce();
        let (lease, claimed_at) =
            claim_node(&context, config, &names, nonce, wait_for_name).await?;
        let Names {
            records_subject,
            checkpoint_subject,
            target,
        } = names;
        let place = Arc::new(Place {
            context,
            stream,
            records_subject,
            checkpoint_subject,
            target,
            node: config.node_name.clone(),
            nonce,
            publish_timeout: config.publish_timeout,
            budget,
        });
        let (failed, _) = tokio::sync::watch::channel(false);
        let shared = Arc::new(Shared {
            appends: AtomicU64::new(0),
            publishes: AtomicU64::new(0),
            last_seq: AtomicU64::new(0),
            live: Mutex::new(VecDeque::new()),
            voided: Mutex::new(Vec::new()),
            reread: std::sync::atomic::AtomicBool::new(false),
            failure: OnceLock::new(),
            failed,
            metrics: OnceLock::new(),
            name_lost: AtomicBool::new(false),
            claim_valid_until_ms: AtomicU64::new(0),
            epoch: claimed_at,
        });
        shared.claim_renewed(claimed_at, claim_margin(config.node_lease));
        // Renewed from now on: reading a long journal back may take longer than the lease.
        // Aborted if this open is given up (an error, or its future dropped), so that a
        // process never keeps renewing a name it does not use.
        let renewer = AbortOnDrop(Some(tokio::spawn(renew_lease(
            lease.clone(),
            place.clone(),
            shared.clone(),
            config.node_lease,
        ))));
        let read = match read_back_patiently(&place).await {
            Ok(read) => read,
            Err(e) => {
                drop(renewer);
                release_lease(&lease).await;
                return Err(e);
            }
        };
        let renewer = renewer.into_inner();
        shared.last_seq.store(read.last_seq, Ordering::SeqCst);
        *shared.live.lock() = read.live.into();
        *shared.voided.lock() = read.voided;
        info!(
            target = %place.target,
            records = read.records.len(),
            checkpoint = read.upto,
            "JetStream journal opened"
        );
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = tokio::spawn(run_writer(place.clone(), shared.clone(), rx));
        Ok(JetStreamJournal {
            place,
            shared,
            lease,
            renewer: Mutex::new(Some(renewer)),
            tx: Mutex::new(Some(tx)),
            writer: Mutex::new(Some(writer)),
            recovered: Mutex::new(read.records),
            checkpointing: tokio::sync::Mutex::new(read.upto),
        })
    }

    /// Publishes a checkpoint message: `upto`, the highest sequence number queued, and the
    /// voided ranges.
    async fn record_checkpoint(&self, upto: u64) -> Result<(), JournalError> {
        let voided = self.shared.voided.lock().clone();
        // At least `upto`: the engine numbers a write before the journal sees it, and one
        // refused at once never reaches `last_seq`.
        let last_seq = self.shared.last_seq.load(Ordering::SeqCst).max(upto);
        let body = encode_checkpoint(upto, last_seq, &voided);
        let id = format!(
            "{}.{:x}.checkpoint.{upto}.{}",
            self.place.node,
            self.place.nonce,
            voided.len()
        );
        publish(
            &self.place,
            &self.place.checkpoint_subject,
            &id,
            Bytes::from(body),
        )
        .await
        .map_err(|cause| JournalError::JetStream {
            doing: "record a checkpoint in",
            target: self.place.target.clone(),
            source: Arc::new(std::io::Error::other(cause)),
        })?;
        Ok(())
    }

    fn send(&self, request: Request) -> Result<(), JournalError> {
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            return Err(JournalError::Closed);
        };
        tx.send(request).map_err(|_| JournalError::WriterStopped)
    }

    fn queue(&self, records: &[JournalRecord]) -> JournalAck {
        if let Some(e) = self.shared.health().error() {
            return JournalAck::ready(Err(e));
        }
        let mut frames = Vec::with_capacity(records.len());
        let mut max_seq = 0;
        let mut min_seq = u64::MAX;
        for record in records {
            let payload = encode_payload(record);
            let mut frame = Vec::with_capacity(4 + payload.len());
            frame.put_u32_le(payload.len() as u32);
            frame.extend_from_slice(&payload);
            // One record must fit one message; a group may span several.
            if frame.len() + 1 > self.place.budget {
                return JournalAck::ready(Err(JournalError::TooLarge {
                    bytes: frame.len(),
                    limit: self.place.budget,
                }));
            }
            max_seq = max_seq.max(record.seq);
            min_seq = min_seq.min(record.seq);
            frames.push(Bytes::from(frame));
        }
        self.shared.last_seq.fetch_max(max_seq, Ordering::SeqCst);
        let (done, rx) = oneshot::channel();
        match self.send(Request::Append {
            frames,
            min_seq,
            max_seq,
            done,
        }) {
            Ok(()) => {
                self.shared
                    .appends
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                JournalAck::waiting(rx)
            }
            Err(e) => JournalAck::ready(Err(e)),
        }
    }
}

/// The subjects and the display name of one node's journal.
struct Names {
    records_subject: String,
    checkpoint_subject: String,
    target: String,
}

impl Names {
    fn of(config: &ClusterConfig) -> Names {
        let records_subject = format!("{}.{}.records", config.journal_subject, config.node_name);
        Names {
            checkpoint_subject: format!(
                "{}.{}.checkpoint",
                config.journal_subject, config.node_name
            ),
            target: format!("jetstream://{}/{}", config.journal_stream, records_subject),
            records_subject,
        }
    }
}

/// Connects to the configured servers; returns the JetStream context and the largest message
/// body they take.
async fn connect(
    config: &ClusterConfig,
    names: &Names,
) -> Result<(jetstream::Context, usize), JournalError> {
    config
        .validate()
        .map_err(|e| nats_error("use the [cluster] settings for", &names.target, e))?;
    let mut addresses = Vec::with_capacity(config.nats_urls.len());
    for url in &config.nats_urls {
        let address: async_nats::ServerAddr = url
            .parse()
            .map_err(|e| nats_error("parse the NATS URL of", url, e))?;
        addresses.push(address);
    }
    let client = async_nats::ConnectOptions::new()
        .name(format!("sluice {}", config.node_name))
        .connection_timeout(config.connect_timeout)
        .connect(addresses)
        .await
        .map_err(|e| nats_error("connect to the NATS servers of", &names.target, e))?;
    let info = client.server_info();
    if version_below(&info.version, (2, 9, 21)) {
        warn!(
            version = %info.version,
            "nats-server before 2.9.21 has known JetStream bugs that can lose records of a replicated stream (a filtered purge replayed as a compaction after a restart, nats-server#4196) or let two processes both take a node name (#4320); run 2.9.21 or later (2.10+ preferred)"
        );
    }
    let budget = info.max_payload.saturating_sub(HEADROOM);
    let mut context = jetstream::new(client);
    context.set_timeout(ATTEMPT_TIMEOUT);
    Ok((context, budget))
}

/// Whether a `major.minor.patch` version is below `floor` (an unparsable one counts as below).
fn version_below(version: &str, floor: (u64, u64, u64)) -> bool {
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse::<u64>().unwrap_or(0));
    match (parts.next(), parts.next(), parts.next()) {
        (Some(a), Some(b), Some(c)) => (a, b, c) < floor,
        _ => true,
    }
}

/// Finds the stream `wanted` names, or creates it, trying again until `deadline` while the
/// cluster cannot answer (just formed, or electing a leader after a server died).
async fn get_or_create_patiently(
    context: &jetstream::Context,
    wanted: stream::Config,
    deadline: Instant,
    target: &str,
) -> Result<stream::Stream, JournalError> {
    loop {
        match context.get_or_create_stream(wanted.clone()).await {
            Ok(stream) => return Ok(stream),
            Err(e) if Instant::now() < deadline => {
                warn!(%target, stream = %wanted.name, "finding or creating a stream failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(nats_error("find or create a stream of", target, e)),
        }
    }
}

/// The stream Sluice creates when it is missing.
fn wanted_stream(config: &ClusterConfig) -> stream::Config {
    stream::Config {
        name: config.journal_stream.clone(),
        subjects: vec![format!("{}.>", config.journal_subject)],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        retention: stream::RetentionPolicy::Limits,
        // A retry must fall inside the window to be dropped as a duplicate.
        duplicate_window: (config.publish_timeout * 2).max(Duration::from_secs(120)),
        description: Some("Sluice write-back journals, a subject per node".to_string()),
        ..Default::default()
    }
}

/// Refuses a stream whose replicas, subjects, retention or limits would not keep the journal
/// as configured.
fn check_stream(config: &ClusterConfig, info: &stream::Info) -> Result<(), JournalError> {
    let c = &info.config;
    let subjects = format!("{}.>", config.journal_subject);
    let mut problems = Vec::new();
    if c.num_replicas != config.replicas {
        problems.push(format!(
            "it has {} replica(s) but [cluster] replicas = {}",
            c.num_replicas, config.replicas
        ));
    }
    if !c.subjects.contains(&subjects) {
        problems.push(format!(
            "its subjects {:?} do not include \"{subjects}\"",
            c.subjects
        ));
    }
    if c.storage != stream::StorageType::File {
        problems
            .push("its storage is memory, which a restart of the NATS servers empties".to_string());
    }
    if c.deny_purge || c.sealed {
        problems.push(
            "it is sealed or denies purges, so stored records could never be removed".to_string(),
        );
    }
    if c.retention != stream::RetentionPolicy::Limits {
        problems.push("its retention is not limits (a work queue or interest stream would drop records no consumer holds)".to_string());
    }
    if c.max_messages > 0
        || c.max_bytes > 0
        || c.max_age > Duration::ZERO
        || c.max_messages_per_subject > 0
    {
        problems.push("it has a message, byte, age or per-subject limit, which would discard records not yet stored".to_string());
    }
    if c.duplicate_window < config.publish_timeout {
        problems.push(format!(
            "its duplicate window ({:?}) is shorter than publish_timeout ({:?}), so a retried publish could be stored twice",
            c.duplicate_window, config.publish_timeout
        ));
    }
    if problems.is_empty() {
        return Ok(());
    }
    Err(JournalError::JetStreamMismatch {
        stream: config.journal_stream.clone(),
        reason: format!(
            "{}; change [cluster] or the stream (nats stream edit {}), or name another journal_stream",
            problems.join("; "),
            config.journal_stream
        ),
    })
}

/// What `sluice check-config` says of `[cluster]`: the servers answer, JetStream is on, and
/// the stream exists as configured or will be created.
pub async fn check(config: &ClusterConfig) -> Result<String, JournalError> {
    let names = Names::of(config);
    let (context, _) = connect(config, &names).await?;
    context.query_account().await.map_err(|e| {
        nats_error(
            "query JetStream (is it enabled, -js?) for",
            &names.target,
            e,
        )
    })?;
    match context.get_stream(&config.journal_stream).await {
        Ok(stream) => {
            check_stream(config, stream.cached_info())?;
            Ok(format!(
                "cluster: node {:?} journals to {} (R{}), which exists as configured",
                config.node_name, names.target, config.replicas
            ))
        }
        Err(_) => Ok(format!(
            "cluster: node {:?} journals to {}; the stream is missing and is created at start with {} replica(s)",
            config.node_name, names.target, config.replicas
        )),
    }
}

/// Finds orphaned journals: node names whose records subject still holds messages while no
/// process holds the name (its claim ran out: the node died and has not come back). Reads
/// only; whoever takes an orphan over claims its name first, so two nodes never both do.
pub struct OrphanScanner {
    context: jetstream::Context,
    config: ClusterConfig,
    target: String,
}

impl OrphanScanner {
    /// Connects to `config`'s servers.
    pub async fn connect(config: &ClusterConfig) -> Result<OrphanScanner, JournalError> {
        let names = Names::of(config);
        let (context, _) = connect(config, &names).await?;
        Ok(OrphanScanner {
            context,
            config: config.clone(),
            target: format!("jetstream://{}", config.journal_stream),
        })
    }

    /// The orphaned node names, this node's own excepted, in name order.
    pub async fn orphans(&self) -> Result<Vec<String>, JournalError> {
        let journal = self
            .context
            .get_stream(&self.config.journal_stream)
            .await
            .map_err(|e| nats_error("look for orphaned journals in", &self.target, e))?;
        let prefix = format!("{}.", self.config.journal_subject);
        let mut with_records = Vec::new();
        let mut subjects = journal
            .info_with_subjects(format!("{prefix}*.records"))
            .await
            .map_err(|e| nats_error("list the journals in", &self.target, e))?;
        while let Some(entry) = subjects.next().await {
            let (subject, count) =
                entry.map_err(|e| nats_error("list the journals in", &self.target, e))?;
            let node = subject
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".records"));
            if let Some(node) = node {
                // Only names a node could have (`node_name`'s own rule): the name becomes a
                // directory under data_dir, and a subject token may hold `/` or `..`.
                let valid = !node.is_empty()
                    && node
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if !valid {
                    warn!(subject = %subject, "a journal subject names no valid node; it is not taken over");
                } else if count > 0 && node != self.config.node_name {
                    with_records.push(node.to_string());
                }
            }
        }
        if with_records.is_empty() {
            return Ok(with_records);
        }
        let leases = self
            .context
            .get_stream(format!("{}_NODES", self.config.journal_stream))
            .await
            .map_err(|e| nats_error("read the node names of", &self.target, e))?;
        let mut orphans = Vec::new();
        for node in with_records {
            let subject = format!("{}_nodes.{node}", self.config.journal_subject);
            match leases.get_last_raw_message_by_subject(&subject).await {
                Ok(_) => {}
                Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => {
                    orphans.push(node)
                }
                Err(e) => return Err(nats_error("read the node names of", &self.target, e)),
            }
        }
        orphans.sort();
        Ok(orphans)
    }
}

/// This process's claim on its node name: the one message on `<journal_subject>_nodes.<node>`
/// in the stream `<journal_stream>_NODES`, whose messages expire `node_lease` after they
/// were written. It is written only if the subject's last message is the one this process
/// wrote before (none, for the first claim), JetStream's compare-and-set, and renewed every
/// third of the lease. Two live processes with one name would purge each other's records at
/// their checkpoints.
struct Lease {
    context: jetstream::Context,
    /// `<journal_stream>_NODES`.
    stream: stream::Stream,
    subject: String,
    value: Bytes,
    revision: AtomicU64,
}

impl Lease {
    /// Writes the claim if the subject's last message is `expected` (0: none); the new
    /// message's sequence, or `None` if another message is there.
    async fn write(&self, expected: u64) -> Result<Option<u64>, String> {
        let sent = self
            .context
            .send_publish(
                self.subject.clone(),
                jetstream::message::PublishMessage::build()
                    .payload(self.value.clone())
                    .expected_last_subject_sequence(expected),
            )
            .await
            .map_err(|e| e.to_string())?;
        match sent.await {
            Ok(ack) => Ok(Some(ack.sequence)),
            Err(e) if e.kind() == jetstream::context::PublishErrorKind::WrongLastSequence => {
                Ok(None)
            }
            Err(e) => Err(e.to_string()),
        }
    }

    /// The sequence of the subject's last message if this process wrote it (its value names
    /// this process's pid and nonce): a renewal JetStream stored whose acknowledgement was
    /// lost. `None` if the claim is gone or another process's; an error if it cannot be read
    /// now (the renewal is retried).
    async fn own_last_message(&self) -> Result<Option<u64>, String> {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.subject)
            .await
        {
            Ok(last) => Ok((last.payload == self.value).then_some(last.sequence)),
            Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// What the holder of the name wrote, for the error.
    async fn holder(&self) -> String {
        match self
            .stream
            .get_last_raw_message_by_subject(&self.subject)
            .await
        {
            Ok(m) => String::from_utf8_lossy(&m.payload).into_owned(),
            Err(_) => "a process whose claim just ran out".to_string(),
        }
    }
}

/// Takes the claim on `node_name`, waiting up to twice `node_lease` for a killed process's
/// claim to run out (or, without `wait_for_name`, not at all); refuses the name while another
/// process renews it. Returns the claim and when its winning write was sent.
async fn claim_node(
    context: &jetstream::Context,
    config: &ClusterConfig,
    names: &Names,
    nonce: u64,
    wait_for_name: bool,
) -> Result<(Arc<Lease>, Instant), JournalError> {
    let prefix = format!("{}_nodes", config.journal_subject);
    let patience = config.node_lease * 2 + config.publish_timeout;
    let deadline = Instant::now() + patience;
    // Without waiting, a name found taken is refused at once (the servers may still be
    // waited for, within `publish_timeout`).
    let name_deadline = if wait_for_name {
        deadline
    } else {
        Instant::now()
    };
    let wanted = stream::Config {
        name: format!("{}_NODES", config.journal_stream),
        subjects: vec![format!("{prefix}.>")],
        storage: stream::StorageType::File,
        num_replicas: config.replicas,
        max_messages_per_subject: 1,
        max_age: config.node_lease,
        duplicate_window: config.node_lease.min(Duration::from_secs(120)),
        description: Some("Sluice nodes holding their journal names".to_string()),
        ..Default::default()
    };
    let mut leases = get_or_create_patiently(context, wanted, deadline, &names.target).await?;
    // A stream made for another node_lease would expire claims between renewals.
    if leases.cached_info().config.max_age != config.node_lease {
        let mut updated = leases.cached_info().config.clone();
        let updated_name = updated.name.clone();
        updated.max_age = config.node_lease;
        updated.duplicate_window = config.node_lease.min(Duration::from_secs(120));
        context.update_stream(updated).await.map_err(|e| {
            nats_error(
                "set node_lease on the node-name stream of",
                &names.target,
                e,
            )
        })?;
        leases = context
            .get_stream(&updated_name)
            .await
            .map_err(|e| nats_error("read the node-name stream of", &names.target, e))?;
    }
    let lease = Lease {
        context: context.clone(),
        stream: leases,
        subject: format!("{prefix}.{}", config.node_name),
        value: Bytes::from(format!(
            "pid {} nonce {nonce:x} since {}",
            std::process::id(),
            humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        )),
        revision: AtomicU64::new(0),
    };
    let mut logged = false;
    loop {
        let sent = Instant::now();
        match lease.write(0).await {
            Ok(Some(revision)) => {
                lease.revision.store(revision, Ordering::SeqCst);
                return Ok((Arc::new(lease), sent));
            }
            Ok(None) => {
                let holder = lease.holder().await;
                if Instant::now() >= name_deadline {
                    return Err(JournalError::NodeNameInUse {
                        node: config.node_name.clone(),
                        holder,
                    });
                }
                if !logged {
                    info!(
                        node = %config.node_name,
                        %holder,
                        "node name claimed by another process (or a killed one whose claim runs out within node_lease); waiting"
                    );
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) if Instant::now() < deadline => {
                warn!(subject = %lease.subject, "claiming the node name failed, retrying: {e}");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => {
                return Err(nats_error(
                    "claim the node name in",
                    &lease.subject,
                    std::io::Error::other(e),
                ))
            }
        }
    }
}

/// Deletes this process's claim (only if it is still this process's last message).
async fn release_lease(lease: &Lease) {
    if let Ok(last) = lease
        .stream
        .get_last_raw_message_by_subject(&lease.subject)
        .await
    {
        if last.sequence == lease.revision.load(Ordering::SeqCst) {
            let _ = lease.stream.purge().filter(lease.subject.clone()).await;
        }
    }
}

/// Renews the claim every third of `period`. Another process's claim, or none renewed for a
/// whole `period`, takes the journal out of service: another process may own the name now.
async fn renew_lease(lease: Arc<Lease>, place: Arc<Place>, shared: Arc<Shared>, period: Duration) {
    // When the last successful renewal was sent: the claim runs out `period` after that at
    // the latest, so it is given up a margin before.
    let mut sent_ok = Instant::now();
    let give_up_after = claim_margin(period);
    loop {
        tokio::time::sleep(period / 3).await;
        // The writer found the claim late and gave the name up: renewing it now would keep
        // a journal nobody flushes from being taken over.
        if shared.name_lost.load(Ordering::SeqCst) {
            return;
        }
        if sent_ok.elapsed() >= give_up_after {
            shared.lose_name(
                &place,
                format!(
                    "the claim {} was not renewed within node_lease, so another process may own the name now",
                    lease.subject
                ),
            );
            return;
        }
        let sent = Instant::now();
        match tokio::time::timeout(
            give_up_after.saturating_sub(sent_ok.elapsed()),
            renew_once(&lease),
        )
        .await
        {
            Ok(Ok(Some(revision))) => {
                lease.revision.store(revision, Ordering::SeqCst);
                if shared.name_lost.load(Ordering::SeqCst) {
                    return;
                }
                sent_ok = sent;
                shared.claim_renewed(sent, give_up_after);
            }
            Ok(Ok(None)) => {
                shared.lose_name(
                    &place,
                    format!("the claim {} is no longer this process's (it ran out, or another process claimed the name)", lease.subject),
                );
                return;
            }
            Ok(Err(e)) => {
                warn!(subject = %lease.subject, "renewing the node-name claim failed, retrying: {e}");
            }
            Err(_) => {
                warn!(subject = %lease.subject, "renewing the node-name claim timed out, retrying");
            }
        }
    }
}

/// One renewal: the claim rewritten over the message this process last wrote. A renewal
/// whose acknowledgement was lost (a timeout, a dropped connection) was often stored all the
/// same, and the next compare-and-set then names a message that is no longer the last: when
/// the last message is found to be this process's own, the renewal is made over that one
/// instead of the name being given up. No other process can have claimed the name while this
/// process's message is the subject's last (a claim is written only over none).
async fn renew_once(lease: &Lease) -> Result<Option<u64>, String> {
    let revision = lease.revision.load(Ordering::SeqCst);
    match lease.write(revision).await? {
        Some(renewed) => Ok(Some(renewed)),
        None => match lease.own_last_message().await? {
            Some(own) if own != revision => {
                info!(subject = %lease.subject, "a renewal of the node-name claim was stored although its acknowledgement was lost; renewing over it");
                lease.revision.store(own, Ordering::SeqCst);
                lease.write(own).await
            }
            _ => Ok(None),
        },
    }
}

/// How long a claim is relied on after its renewal was sent: five sixths of `node_lease`,
/// a margin before the stream expires it and another process may take the name.
fn claim_margin(node_lease: Duration) -> Duration {
    node_lease.saturating_sub(node_lease / 6)
}

/// A task aborted when its holder is dropped (a tokio handle only detaches it).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    fn into_inner(mut self) -> tokio::task::JoinHandle<()> {
        self.0.take().expect("taken once")
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// A per-process nonce for message IDs: the time and the process ID, never 0.
fn nonce() -> u64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (now ^ ((std::process::id() as u64) << 32)) | 1
}

/// What reading the stream back found.
struct ReadBack {
    records: Vec<JournalRecord>,
    live: Vec<LiveMessage>,
    /// Voided ranges the checkpoint names that recovery may still meet.
    voided: Vec<(u64, u64)>,
    upto: u64,
    last_seq: u64,
}

/// [`read_back`], tried again for up to `publish_timeout` while it fails (a NATS server
/// just died and the stream or the cluster's meta leader is being elected again).
async fn read_back_patiently(place: &Place) -> Result<ReadBack, JournalError> {
    let deadline = Instant::now() + place.publish_timeout;
    loop {
        match read_back(place).await {
            Ok(read) => return Ok(read),
            Err(e @ JournalError::JetStream { .. }) if Instant::now() < deadline => {
                warn!(target = %place.target, "reading the journal back failed, retrying: {e}: {}", e.source_text());
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads this node's checkpoint and every records message still in the stream; returns the
/// records past the checkpoint in sequence order, transaction groups only when whole.
async fn read_back(place: &Place) -> Result<ReadBack, JournalError> {
    let (upto, checkpoint_last, voided) = match place
        .stream
        .get_last_raw_message_by_subject(&place.checkpoint_subject)
        .await
    {
        Ok(message) => {
            decode_checkpoint(&message.payload).ok_or(JournalError::JetStreamCorrupt {
                target: place.checkpoint_subject.clone(),
                sequence: message.sequence,
                reason: "a checkpoint message does not decode",
            })?
        }
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => (0, 0, Vec::new()),
        Err(e) => return Err(nats_error("read the checkpoint of", &place.target, e)),
    };
    let voided: Vec<(u64, u64)> = voided.into_iter().filter(|&(_, hi)| hi > upto).collect();
    let is_voided = |seq: u64| voided.iter().any(|&(lo, hi)| (lo..=hi).contains(&seq));
    // Read up to the subject's last message as it is now, so neither a lost reply (which
    // would hang) nor an early "no messages" (which would skip records) goes unnoticed.
    let last_message = match place
        .stream
        .get_last_raw_message_by_subject(&place.records_subject)
        .await
    {
        Ok(message) => message.sequence,
        Err(e) if e.kind() == stream::LastRawMessageErrorKind::NoMessageFound => 0,
        Err(e) => return Err(nats_error("find the last record of", &place.target, e)),
    };
    let mut reader = place
        .stream
        .create_consumer(consumer::pull::Config {
            filter_subject: place.records_subject.clone(),
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error("create a reader of", &place.target, e))?;
    let mut records = Vec::new();
    let mut live = Vec::new();
    let mut read_to = 0;
    let timed_out = || {
        nats_error(
            "read back (no reply in time)",
            &place.target,
            std::io::Error::from(std::io::ErrorKind::TimedOut),
        )
    };
    while read_to < last_message {
        let mut batch = tokio::time::timeout(
            ATTEMPT_TIMEOUT,
            reader.fetch().max_messages(READ_BATCH).messages(),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|e| nats_error("read back", &place.target, e))?;
        let mut got = 0;
        while let Some(message) = tokio::time::timeout(ATTEMPT_TIMEOUT, batch.next())
            .await
            .map_err(|_| timed_out())?
        {
            let message = message.map_err(|e| JournalError::JetStream {
                doing: "read back",
                target: place.target.clone(),
                source: Arc::from(e),
            })?;
            got += 1;
            let stream_seq =
                message
                    .info()
                    .map(|i| i.stream_sequence)
                    .map_err(|e| JournalError::JetStream {
                        doing: "read the sequence of a message of",
                        target: place.target.clone(),
                        source: Arc::from(e),
                    })?;
            let decoded =
                decode_message(&message.payload).ok_or(JournalError::JetStreamCorrupt {
                    target: place.target.clone(),
                    sequence: stream_seq,
                    reason: "a records message does not decode",
                })?;
            let max_seq = decoded.iter().map(|r| r.seq).max().unwrap_or(0);
            read_to = read_to.max(stream_seq);
            live.push(LiveMessage {
                stream_seq,
                max_seq,
                bytes: message.payload.len() as u64,
            });
            records.extend(
                decoded
                    .into_iter()
                    .filter(|r| r.seq > upto && !is_voided(r.seq)),
            );
        }
        if got == 0 && read_to < last_message {
            return Err(nats_error(
                "read back",
                &place.target,
                std::io::Error::other(format!(
                    "the stream answered \"no more messages\" at sequence {read_to}, before its last record at {last_message}"
                )),
            ));
        }
    }
    if let Ok(info) = reader.info().await.map(|i| i.name.clone()) {
        let _ = place.stream.delete_consumer(&info).await;
    }
    let last_seq = records
        .iter()
        .map(|r| r.seq)
        .max()
        .unwrap_or(0)
        .max(checkpoint_last)
        .max(upto)
        .max(live.iter().map(|m| m.max_seq).max().unwrap_or(0));
    records.sort_by_key(|r| r.seq);
    // A message stored twice (a retry outside the duplicate window) holds the same records.
    records.dedup_by_key(|r| r.seq);
    let records = whole_groups(records, upto);
    Ok(ReadBack {
        records,
        live,
        voided,
        upto,
        last_seq,
    })
}

/// A checkpoint message: `[upto u64][last_seq u64]`, then `[lo u64][hi u64]` per voided
/// range, all little-endian.
fn encode_checkpoint(upto: u64, last_seq: u64, voided: &[(u64, u64)]) -> Vec<u8> {
    let mut body = Vec::with_capacity(16 + 16 * voided.len());
    body.put_u64_le(upto);
    body.put_u64_le(last_seq);
    for &(lo, hi) in voided {
        body.put_u64_le(lo);
        body.put_u64_le(hi);
    }
    body
}

/// `(upto, last_seq, voided ranges)`, as a checkpoint message holds them.
type Checkpoint = (u64, u64, Vec<(u64, u64)>);

/// The `(upto, last_seq, voided)` of a checkpoint message; `None` if malformed.
fn decode_checkpoint(body: &[u8]) -> Option<Checkpoint> {
    if body.len() < 16 || !body.len().is_multiple_of(16) {
        return None;
    }
    let word = |at: usize| {
        body.get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    };
    let voided = (16..body.len())
        .step_by(16)
        .map(|at| Some((word(at)?, word(at + 8)?)))
        .collect::<Option<Vec<_>>>()?;
    Some((word(0)?, word(8)?, voided))
}

/// Drops the records of a transaction group not all of whose records past `upto` are
/// present: a crash between the messages of a group spanning several left it part-written,
/// and it was never acknowledged.
fn whole_groups(records: Vec<JournalRecord>, upto: u64) -> Vec<JournalRecord> {
    // Distinct sequence numbers per group (a message stored twice must not count twice).
    let mut seen: HashMap<u64, (u32, std::collections::BTreeSet<u64>)> = HashMap::new();
    for r in &records {
        if let Some(g) = r.group {
            seen.entry(g.first_seq)
                .or_insert_with(|| (g.len, Default::default()))
                .1
                .insert(r.seq);
        }
    }
    let torn: Vec<u64> = seen
        .iter()
        .filter(|(&first, (len, seqs))| {
            let expected = (first..first + u64::from(*len))
                .filter(|&s| s > upto)
                .count();
            seqs.len() != expected
        })
        .map(|(&first, _)| first)
        .collect();
    if torn.is_empty() {
        return records;
    }
    warn!(
        groups = torn.len(),
        "transaction groups only partly in the JetStream journal were dropped whole (never acknowledged)"
    );
    records
        .into_iter()
        .filter(|r| r.group.is_none_or(|g| !torn.contains(&g.first_seq)))
        .collect()
}

/// The records of one message; `None` if it is not a message this journal wrote.
fn decode_message(body: &[u8]) -> Option<Vec<JournalRecord>> {
    let (&version, mut rest) = body.split_first()?;
    if !(OLDEST_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
        return None;
    }
    let mut records = Vec::new();
    while !rest.is_empty() {
        let len = u32::from_le_bytes(rest.get(..4)?.try_into().ok()?) as usize;
        let payload = rest.get(4..4 + len)?;
        records.push(decode_payload(payload)?);
        rest = &rest[4 + len..];
    }
    Some(records)
}

/// Publishes `body` to `subject` with message ID `id`, retrying (same ID) until the PubAck
/// arrives or `publish_timeout` passes. Returns the stream sequence.
async fn publish(place: &Place, subject: &str, id: &str, body: Bytes) -> Result<u64, String> {
    let deadline = Instant::now() + place.publish_timeout;
    let mut pause = Duration::from_millis(20);
    loop {
        let attempt = async {
            let ack = place
                .context
                .send_publish(
                    subject.to_string(),
                    jetstream::message::PublishMessage::build()
                        .payload(body.clone())
                        .message_id(id),
                )
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map_err(|e| e.to_string())
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let error = match tokio::time::timeout(left.max(Duration::from_millis(1)), attempt).await {
            // A duplicate answered before the original was stored (seq 0) is no proof the
            // stream holds it: ask again.
            Ok(Ok(ack)) if ack.duplicate && ack.sequence == 0 => {
                "a duplicate PubAck without a sequence".to_string()
            }
            Ok(Ok(ack)) => return Ok(ack.sequence),
            Ok(Err(e)) => e,
            Err(_) => "no PubAck before publish_timeout".to_string(),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(error);
        }
        warn!(target = %place.target, "JetStream publish failed, retrying: {error}");
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// The writer task: batches waiting appends into messages, one in flight at a time.
async fn run_writer(
    place: Arc<Place>,
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Request>,
) {
    let mut message_number: u64 = 0;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let mut bytes = 0usize;
        while bytes < place.budget {
            match rx.try_recv() {
                Ok(request) => {
                    if let Request::Append { frames, .. } = &request {
                        bytes += frames.iter().map(Bytes::len).sum::<usize>();
                    }
                    batch.push(request);
                }
                Err(_) => break,
            }
        }
        // Pack the frames into messages; remember which message ends each request.
        let mut messages: Vec<(Vec<u8>, u64)> = Vec::new();
        let mut ends: Vec<Option<usize>> = Vec::with_capacity(batch.len());
        for request in &batch {
            match request {
                Request::Append {
                    frames, max_seq, ..
                } => {
                    for frame in frames {
                        let fits = messages
                            .last()
                            .is_some_and(|(m, _)| m.len() + frame.len() <= place.budget);
                        if !fits {
                            messages.push((vec![FORMAT_VERSION], 0));
                        }
                        if let Some((m, max)) = messages.last_mut() {
                            m.extend_from_slice(frame);
                            *max = (*max).max(*max_seq);
                        }
                    }
                    ends.push(messages.len().checked_sub(1));
                }
                Request::Barrier { .. } => ends.push(messages.len().checked_sub(1)),
            }
        }
        // The claim on the name may have run out meanwhile (this process was paused, or cut
        // off from NATS): then nothing more is published, and no barrier passes, so no flush
        // or checkpoint follows either.
        shared.holds_name(&place);
        // Publish in order; `published` counts the messages the stream acknowledged.
        let mut published = 0usize;
        let mut failure: Option<JournalError> = shared.health().error();
        let failed_before = failure.is_some();
        if !failed_before {
            for (body, max_seq) in messages {
                shared.holds_name(&place);
                if shared.failure.get().is_some() {
                    failure = shared.health().error();
                    break;
                }
                message_number += 1;
                let id = format!("{}.{:x}.{}", place.node, place.nonce, message_number);
                let len = body.len() as u64;
                let started = Instant::now();
                match publish(&place, &place.records_subject, &id, Bytes::from(body)).await {
                    // Acknowledged after the claim's validity ran out (the process froze, or
                    // the publish was retried that long): the message may have landed after
                    // another process took the journal over and read it, so its writes are
                    // not acknowledged. Before that instant, the stream stored it while the
                    // name was surely this process's, before any takeover could read.
                    Ok(_) if !shared.claim_valid() => {
                        shared.holds_name(&place);
                        failure = shared.health().error();
                        break;
                    }
                    Ok(stream_seq) => {
                        shared.live.lock().push_back(LiveMessage {
                            stream_seq,
                            max_seq,
                            bytes: len,
                        });
                        shared.publishes.fetch_add(1, Ordering::Relaxed);
                        if let Some(metrics) = shared.metrics.get() {
                            let elapsed = started.elapsed();
                            metrics.journal_fsync.record_duration(elapsed);
                            metrics.latency.record(events::JOURNAL_FSYNC, elapsed);
                        }
                        published += 1;
                    }
                    Err(cause) => {
                        // A publish that failed because this process froze past its claim
                        // loses the name (not merely the journal), whatever the renewer saw.
                        shared.holds_name(&place);
                        shared.fail(&place, "publish to", cause);
                        failure = shared.health().error();
                        break;
                    }
                }
            }
        }
        if let Some(metrics) = shared.metrics.get() {
            let appended = batch
                .iter()
                .filter(|r| matches!(r, Request::Append { .. }))
                .count();
            metrics.journal_writes_per_fsync.record(appended as u64);
        }
        for (request, end) in batch.into_iter().zip(ends) {
            // Done if every message up to its last one was acknowledged (a barrier: every
            // message before it), and the journal was in service when the batch began.
            let ok = !failed_before && end.is_none_or(|last| last < published);
            let outcome = if ok {
                Ok(())
            } else {
                Err(failure.clone().unwrap_or(JournalError::WriterStopped))
            };
            let done = match request {
                Request::Append {
                    done,
                    min_seq,
                    max_seq,
                    ..
                } => {
                    if !ok && !failed_before {
                        shared.voided.lock().push((min_seq, max_seq));
                    }
                    done
                }
                Request::Barrier { done } => done,
            };
            let _ = done.send(outcome);
        }
    }
}

impl JetStreamJournal {
    /// `Ok` while this process holds its node name; otherwise the journal's failure (the name
    /// lost, or what failed before).
    fn still_holds_name(&self) -> Result<(), JournalError> {
        if self.may_store() {
            return Ok(());
        }
        Err(self
            .shared
            .health()
            .error()
            .unwrap_or(JournalError::WriterStopped))
    }
}

#[async_trait]
impl Journal for JetStreamJournal {
    fn durability(&self) -> Durability {
        Durability::Replicated
    }

    fn may_store(&self) -> bool {
        self.shared.holds_name(&self.place)
    }

    fn append(&self, record: JournalRecord) -> JournalAck {
        self.queue(std::slice::from_ref(&record))
    }

    fn append_group(&self, records: Vec<JournalRecord>) -> JournalAck {
        self.queue(&records)
    }

    async fn checkpoint(&self, upto: u64) -> Result<(), JournalError> {
        // Without the name (or a claim surely valid) the subject may be another process's:
        // recording or purging there would cut into its takeover, whatever mode this is in.
        self.still_holds_name()?;
        if let Some(e) = self.shared.health().error() {
            if !self.shared.reread.load(Ordering::SeqCst) {
                return Err(e);
            }
        }
        let mut recorded = self.checkpointing.lock().await;
        // Nothing new to record: still purge what the recorded checkpoint covers and a crash
        // (or a failed purge) left behind, or the journal would look unflushed for ever and be
        // taken over again and again after this process stops.
        let covered = (*recorded).max(upto);
        let leftovers = self
            .shared
            .live
            .lock()
            .front()
            .is_some_and(|front| front.max_seq <= covered);
        if upto <= *recorded && !leftovers {
            return Ok(());
        }
        if upto > *recorded {
            // `upto` may pass a record superseded by one still being published: wait until
            // everything appended before this call is in the stream (the segment journal's
            // writer orders its checkpoint behind the appends the same way).
            if !self.shared.reread.load(Ordering::SeqCst) {
                self.barrier().await?;
            }
            // Record the checkpoint before purging what it covers: a crash between the two
            // replays stored records (harmless), never loses unstored ones.
            self.record_checkpoint(upto).await?;
            *recorded = upto;
        }
        let purge_below = {
            let mut live = self.shared.live.lock();
            let mut below = None;
            while let Some(front) = live.front().copied() {
                if front.max_seq > covered {
                    break;
                }
                below = Some(front.stream_seq + 1);
                live.pop_front();
            }
            below
        };
        if let Some(sequence) = purge_below {
            // The record took a round trip: the claim may have run out meanwhile, and the
            // subject may be a takeover's now, whose records a purge would cut into.
            self.still_holds_name()?;
            self.place
                .stream
                .purge()
                .filter(self.place.records_subject.clone())
                .sequence(sequence)
                .await
                .map_err(|e| nats_error("purge stored records from", &self.place.target, e))?;
        }
        self.place
            .stream
            .purge()
            .filter(self.place.checkpoint_subject.clone())
            .keep(1)
            .await
            .map_err(|e| nats_error("purge old checkpoints from", &self.place.target, e))?;
        Ok(())
    }

    fn take_recovered(&self) -> Vec<JournalRecord> {
        std::mem::take(&mut *self.recovered.lock())
    }

    fn stats(&self) -> JournalStats {
        let live = self.shared.live.lock();
        JournalStats {
            bytes: live.iter().map(|m| m.bytes).sum(),
            segments: live.len() as u64,
            appends: self.shared.appends.load(Ordering::Relaxed),
            syncs: self.shared.publishes.load(Ordering::Relaxed),
            health: self.shared.health(),
        }
    }

    fn instrument(&self, metrics: Arc<EngineMetrics>) {
        let _ = self.shared.metrics.set(metrics);
    }

    fn health(&self) -> JournalHealth {
        self.shared.health()
    }

    async fn remote_state(&self) -> Vec<(&'static str, String)> {
        let name = self.place.stream.cached_info().config.name.clone();
        let mut out = vec![("journal_stream", name.clone())];
        let asked =
            tokio::time::timeout(Duration::from_secs(1), self.place.context.get_stream(&name));
        match asked.await {
            Ok(Ok(stream)) => {
                let info = stream.cached_info();
                out.push(("journal_stream_state", "ok".to_string()));
                out.push(("journal_stream_messages", info.state.messages.to_string()));
                out.push(("journal_stream_bytes", info.state.bytes.to_string()));
                out.push((
                    "journal_stream_replicas",
                    info.config.num_replicas.to_string(),
                ));
                if let Some(cluster) = &info.cluster {
                    let leader = cluster.leader.clone().unwrap_or_else(|| "none".to_string());
                    out.push(("journal_stream_leader", leader));
                    let followers = &cluster.replicas;
                    let current = followers.iter().filter(|p| p.current && !p.offline).count();
                    out.push((
                        "journal_stream_followers_current",
                        format!("{current}/{}", followers.len()),
                    ));
                    let lag = followers.iter().filter_map(|p| p.lag).max().unwrap_or(0);
                    out.push(("journal_stream_follower_lag", lag.to_string()));
                }
            }
            Ok(Err(e)) => out.push(("journal_stream_state", format!("error: {e}"))),
            Err(_) => out.push(("journal_stream_state", "no answer within 1s".to_string())),
        }
        out
    }

    fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::SeqCst)
    }

    fn barrier(&self) -> JournalAck {
        if let Some(e) = self.shared.health().error() {
            return JournalAck::ready(Err(e));
        }
        let (done, rx) = oneshot::channel();
        match self.send(Request::Barrier { done }) {
            Ok(()) => JournalAck::waiting(rx),
            Err(e) => JournalAck::ready(Err(e)),
        }
    }

    async fn failed(&self) {
        let mut failed = self.shared.failed.subscribe();
        let _ = failed.wait_for(|f| *f).await;
    }

    async fn reread_acknowledged(&self) -> Result<Vec<JournalRecord>, JournalError> {
        // Another process may own the subject now (a node taking it over): it is theirs to
        // store and purge; this process touches it no more and needs a restart.
        let name_gone = || JournalError::NodeNameInUse {
            node: self.place.node.clone(),
            holder: "another process: this one's claim ran out or was taken; restart it"
                .to_string(),
        };
        if !self.may_store() {
            return Err(name_gone());
        }
        // Let the writer answer what it holds first: every append queued now fails.
        let (done, rx) = oneshot::channel();
        if self.send(Request::Barrier { done }).is_ok() {
            let _ = rx.await;
        }
        // Name the appends whose writers were told they failed before reading: one given up
        // on may still arrive (the client sends what it buffered on reconnect, ahead of this
        // message), and it must never be stored, now or after a restart.
        {
            let recorded = self.checkpointing.lock().await;
            if !self.may_store() {
                return Err(name_gone());
            }
            self.record_checkpoint(*recorded).await?;
            // Recorded after the claim ran out (retried that long): it may have landed in a
            // takeover's subject; nothing here may read it back as this process's now.
            if !self.may_store() {
                return Err(name_gone());
            }
        }
        let records = read_back_patiently(&self.place).await?.records;
        self.shared.reread.store(true, Ordering::SeqCst);
        Ok(records)
    }

    async fn close(&self) -> Result<(), JournalError> {
        let tx = self.tx.lock().take();
        drop(tx);
        let writer = self.writer.lock().take();
        if let Some(writer) = writer {
            let _ = writer.await;
        }
        let renewer = self.renewer.lock().take();
        if let Some(renewer) = renewer {
            renewer.abort();
            // Not renewed any more: nothing may be stored on its strength.
            self.shared.claim_valid_until_ms.store(0, Ordering::SeqCst);
            // Released, so a restart need not wait for the claim to run out; never when the
            // claim may be another process's now.
            if self.shared.failure.get().is_none() {
                release_lease(&self.lease).await;
            }
        }
        match self.shared.health().error() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for JetStreamJournal {
    /// A journal dropped without [`Journal::close`] (an engine whose open failed after the
    /// journal's, a takeover cut short) stops renewing its claim, so the name is free again
    /// within `node_lease`; it is not released, since records may still be on their way.
    fn drop(&mut self) {
        if let Some(renewer) = self.renewer.lock().take() {
            renewer.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::StoreWrite;
    use crate::tiers::journal::{JournalOp, TxnGroup};

    fn record(seq: u64, group: Option<TxnGroup>) -> JournalRecord {
        JournalRecord {
            seq,
            keyspace: "default".into(),
            db: 0,
            key: Bytes::from(format!("k{seq}")),
            op: JournalOp::Write(StoreWrite::Delete),
            group,
        }
    }

    #[test]
    fn a_message_round_trips_and_garbage_does_not_decode() {
        let mut body = vec![FORMAT_VERSION];
        for seq in [3, 4] {
            let p = encode_payload(&record(seq, None));
            body.put_u32_le(p.len() as u32);
            body.extend_from_slice(&p);
        }
        let decoded = decode_message(&body).expect("decodes");
        assert_eq!(decoded, vec![record(3, None), record(4, None)]);
        assert!(decode_message(&[]).is_none());
        assert!(decode_message(&[2, 0, 0, 0, 0]).is_none());
        assert!(decode_message(&body[..body.len() - 1]).is_none());
    }

    #[test]
    fn old_nats_servers_are_recognised() {
        assert!(version_below("2.9.10", (2, 9, 21)));
        assert!(!version_below("2.9.21", (2, 9, 21)));
        assert!(!version_below("2.10.3", (2, 9, 21)));
        assert!(!version_below("2.11.0-beta.2", (2, 9, 21)));
        assert!(version_below("garbage", (2, 9, 21)));
    }

    #[test]
    fn a_checkpoint_round_trips_with_its_voided_ranges() {
        let body = encode_checkpoint(40, 105, &[(50, 52), (60, 60)]);
        assert_eq!(
            decode_checkpoint(&body),
            Some((40, 105, vec![(50, 52), (60, 60)]))
        );
        assert_eq!(
            decode_checkpoint(&encode_checkpoint(7, 9, &[])),
            Some((7, 9, vec![]))
        );
        assert!(decode_checkpoint(&body[..24]).is_none());
        assert!(decode_checkpoint(&[]).is_none());
    }

    #[test]
    fn a_group_counts_only_its_records_past_the_checkpoint() {
        let g = Some(TxnGroup {
            first_seq: 10,
            len: 3,
        });
        // 10 was stored and purged; 11 and 12 are whole past upto = 10.
        let kept = whole_groups(vec![record(11, g), record(12, g)], 10);
        assert_eq!(kept.len(), 2);
        // 12 is missing: the group is torn and dropped, other records stay.
        let kept = whole_groups(vec![record(9, None), record(10, g), record(11, g)], 0);
        assert_eq!(kept, vec![record(9, None)]);
    }
}
