//! What can go wrong in the journal tier. Each error names the file and says what to do.
//!
//! `Clone`, because one group commit's outcome is handed to every waiter of the group: OS
//! errors are kept whole behind an `Arc`. The OS error is also part of the `Display` text,
//! because clients see only that text (`ERR journal failed: ...`).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use thiserror::Error;

/// A failure of the journal tier.
#[derive(Debug, Clone, Error)]
pub enum JournalError {
    /// A file system call on a journal file or directory failed.
    #[error("cannot {doing} {path}: {source}", path = path.display())]
    Io {
        /// What was being done, e.g. `fsync` or `append to`.
        doing: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A segment or the checkpoint file holds bytes recovery cannot use.
    #[error("journal file {path} is corrupt at byte {offset}: {reason}", path = path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where in it the damage starts.
        offset: u64,
        /// What is wrong and what to do.
        reason: &'static str,
    },
    /// Records are missing between two segments (a segment file lost, or one cut exactly at
    /// a record boundary).
    #[error(
        "journal segment {before} ends at byte {ends_at} but the next one, {next}, starts at byte {starts_at}: a segment file is missing or was cut; restore the journal directory whole, or start with --salvage to replay what is there (the missing writes are lost)",
        before = before.display(),
        next = next.display()
    )]
    Gap {
        /// The segment before the gap.
        before: PathBuf,
        /// Journal-wide offset where it ends.
        ends_at: u64,
        /// The segment after the gap.
        next: PathBuf,
        /// Journal-wide offset where it starts.
        starts_at: u64,
    },
    /// A write or fsync of the journal failed earlier. The page cache cannot be trusted after
    /// that (a later fsync may report success for data that never reached the disk), so the
    /// journal takes no more writes until Sluice is restarted and recovery reads back what is
    /// really on disk.
    #[error(
        "journal is out of service since it could not {doing} {path}: {cause}; no write was acknowledged since; restart Sluice to recover",
        path = path.display()
    )]
    Poisoned {
        /// The segment file whose write or fsync failed.
        path: PathBuf,
        /// What failed, e.g. `fsync` or `append to`.
        doing: &'static str,
        /// The OS error of the failed call.
        cause: Arc<io::Error>,
    },
    /// Records in the journal belong to keyspaces the configuration no longer has.
    #[error("{records} journal records belong to keyspaces missing from the config; restore those [[keyspace]] entries so they can be stored")]
    UnknownKeyspaces {
        /// How many records.
        records: usize,
    },
    /// The blocking task that recovers the journal failed (it panicked, or the runtime shut
    /// down under it).
    #[error("journal recovery task failed: {source}")]
    RecoveryTask {
        /// The task's failure.
        #[source]
        source: Arc<tokio::task::JoinError>,
    },
    /// A request to NATS JetStream failed (connecting, creating or reading the stream,
    /// publishing, purging).
    #[error("cannot {doing} {target} (check that the NATS servers in [cluster] nats_urls are up with JetStream enabled)")]
    JetStream {
        /// What was being done, e.g. `publish to`.
        doing: &'static str,
        /// The stream and subject (`jetstream://STREAM/subject`).
        target: String,
        /// The client's error.
        #[source]
        source: Arc<dyn std::error::Error + Send + Sync>,
    },
    /// The JetStream stream exists with settings the configuration contradicts.
    #[error("JetStream stream {stream} cannot hold this journal: {reason}")]
    JetStreamMismatch {
        /// The stream's name.
        stream: String,
        /// What differs and what to do.
        reason: String,
    },
    /// A message in the JetStream journal holds bytes recovery cannot use.
    #[error("JetStream journal {target} is corrupt at stream sequence {sequence}: {reason}; another program may be publishing on Sluice's subjects")]
    JetStreamCorrupt {
        /// The stream and subject.
        target: String,
        /// The message's stream sequence.
        sequence: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// Another live process holds this node's name in the cluster.
    #[error("node_name {node:?} is held by another live Sluice process ({holder}); give each node its own [cluster] node_name, or stop the other process")]
    NodeNameInUse {
        /// The name.
        node: String,
        /// What the holder wrote into its claim.
        holder: String,
    },
    /// A record larger than one message the NATS servers take.
    #[error("a journal record of {bytes} bytes does not fit a NATS message ({limit} bytes with headers removed); raise max_payload in the nats-server configuration (up to 64MB) or write smaller values")]
    TooLarge {
        /// The record's size.
        bytes: usize,
        /// The largest that fits.
        limit: usize,
    },
    /// The journal was closed; nothing more can be appended.
    #[error("journal is closed")]
    Closed,
    /// The writer thread is gone before it answered (it stopped with the journal, or
    /// panicked): the record was not made durable.
    #[error("journal writer thread stopped before the record was durable")]
    WriterStopped,
    /// A caller polled a resolved acknowledgement again: a bug in the caller, not an outcome.
    #[error("journal acknowledgement polled after it resolved")]
    AckPolledTwice,
}

impl JournalError {
    /// The error below this one, as text (for a log line that shows one error whole).
    pub fn source_text(&self) -> String {
        std::error::Error::source(self).map_or_else(String::new, |s| s.to_string())
    }

    /// An OS error while doing `doing` on `path`.
    pub fn io(doing: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        JournalError::Io {
            doing,
            path: path.into(),
            source: Arc::new(source),
        }
    }
}
