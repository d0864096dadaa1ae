//! The write-ahead journal: segment files with group commit and commit-order recovery.
//!
//! Layout of `<data-dir>/journal/`:
//! - `seg-<start>.wal`: a 24-byte header (magic `SLUICEJ1`, version, starting position, CRC)
//!   followed by records framed as `[len u32][crc32c u32][payload]` ([`format`]). The starting
//!   position is the journal-wide byte offset of the segment's first record.
//! - `checkpoint`: the sequence number up to which every record is stored or superseded, and
//!   the highest sequence number ever appended; replaced atomically ([`checkpoint`]).
//!
//! Opening scans the segments ([`recovery`]); then one writer thread ([`writer`]) does the
//! group commit: it takes every append waiting, makes one `write`, then (under `fsync`) one
//! `fdatasync`, and completes all the waiters together. Under `fsync` it zero-fills a segment
//! ahead of its records, so a segment may end in zeros after a crash; recovery reads them as
//! the segment's end.

use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, OnceLock};
use std::thread;
use std::time::Instant;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::JournalError;
use super::{Journal, JournalAck, JournalHealth, JournalRecord, JournalStats};
use crate::config::{Durability, JournalConfig};
use crate::metrics::EngineMetrics;

mod checkpoint;
mod faults;
mod format;
mod recovery;
mod writer;

pub use faults::JournalFaults;
pub use format::{decode_payload, encode_payload};
pub use recovery::RecoveryReport;

use faults::SegmentIo;

use format::{encode_framed, HEADER_LEN};
use writer::{Control, Request, Writer};

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| JournalError::io("fsync directory", dir, e))
}

/// Counters the writer thread updates and the handle reads.
struct Shared {
    bytes: AtomicU64,
    segments: AtomicU64,
    appends: AtomicU64,
    syncs: AtomicU64,
    last_seq: AtomicU64,
    /// Set once, by the writer, when a segment write or fsync fails (always `Failed`).
    failure: OnceLock<JournalHealth>,
    /// Turns true when `failure` is set, for [`Journal::failed`].
    failed: tokio::sync::watch::Sender<bool>,
    /// Where the writer times its fsyncs, once the engine handed it over.
    metrics: OnceLock<Arc<EngineMetrics>>,
}

/// The segment-file journal.
pub struct WalJournal {
    durability: Durability,
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    shared: Arc<Shared>,
    recovered: Mutex<Vec<JournalRecord>>,
    report: RecoveryReport,
    thread: Mutex<Option<thread::JoinHandle<()>>>,
}

impl WalJournal {
    /// Hands framed bytes (one record, or a whole group) to the writer as one append.
    fn send_append(&self, bytes: Vec<u8>, seq: u64) -> JournalAck {
        let (done, rx) = oneshot::channel();
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            return JournalAck::ready(Err(JournalError::Closed));
        };
        if tx.send(Request::Append { bytes, seq, done }).is_err() {
            return JournalAck::ready(Err(JournalError::WriterStopped));
        }
        JournalAck::waiting(rx)
    }

    /// Opens the journal in `dir`, recovering what lies past the checkpoint. A torn tail is
    /// cut with a warning; corruption before the tail is an error unless `salvage`.
    pub async fn open(
        dir: &Path,
        config: &JournalConfig,
        salvage: bool,
    ) -> Result<WalJournal, JournalError> {
        WalJournal::open_inner(dir, config, salvage, None).await
    }

    /// Like [`WalJournal::open`], with the writer's segment writes and fsyncs failing as
    /// `faults` plans: for tests of what a failing disk does.
    pub async fn open_with_faults(
        dir: &Path,
        config: &JournalConfig,
        salvage: bool,
        faults: JournalFaults,
    ) -> Result<WalJournal, JournalError> {
        WalJournal::open_inner(dir, config, salvage, Some(faults)).await
    }

    async fn open_inner(
        dir: &Path,
        config: &JournalConfig,
        salvage: bool,
        faults: Option<JournalFaults>,
    ) -> Result<WalJournal, JournalError> {
        let dir = dir.to_path_buf();
        let config = config.clone();
        let io = SegmentIo::new(faults);
        tokio::task::spawn_blocking(move || WalJournal::open_blocking(&dir, &config, salvage, io))
            .await
            .map_err(|e| JournalError::RecoveryTask {
                source: Arc::new(e),
            })?
    }

    fn open_blocking(
        dir: &Path,
        config: &JournalConfig,
        salvage: bool,
        io: SegmentIo,
    ) -> Result<WalJournal, JournalError> {
        fs::create_dir_all(dir)
            .map_err(|e| JournalError::io("create journal directory", dir, e))?;
        let recovered = recovery::recover(dir, salvage)?;
        let segments = recovered.segments;
        let next_start = segments.last().map(|s| s.start + s.len).unwrap_or(0);
        let shared = Arc::new(Shared {
            bytes: AtomicU64::new(segments.iter().map(|s| s.len).sum()),
            segments: AtomicU64::new(segments.len() as u64),
            appends: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            last_seq: AtomicU64::new(recovered.last_seq),
            failure: OnceLock::new(),
            failed: tokio::sync::watch::Sender::new(false),
            metrics: OnceLock::new(),
        });
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            durability: config.durability,
            fsync_interval: config.fsync_interval,
            segment_size: config.segment_size.max(HEADER_LEN + 1),
            closed: segments.into(),
            current: None,
            next_start,
            shared: shared.clone(),
            io,
            dirty: false,
            last_sync: Instant::now(),
            checkpoint: recovered.checkpoint,
            reread_since_failure: false,
            appends_since_sync: 0,
            zeroed_to: 0,
            zero_fill_failed: false,
        };
        writer.current = Some(writer.roll()?);
        let (tx, rx) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("sluice-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError::io("start the writer thread of", dir, e))?;
        Ok(WalJournal {
            durability: config.durability,
            tx: Mutex::new(Some(tx)),
            shared,
            recovered: Mutex::new(recovered.records),
            report: recovered.report,
            thread: Mutex::new(Some(handle)),
        })
    }

    /// What recovery found at open.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.report.clone()
    }

    async fn request(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<(), JournalError>>) -> Request,
    ) -> Result<(), JournalError> {
        let (done, rx) = oneshot::channel();
        {
            let tx = self.tx.lock();
            let tx = tx.as_ref().ok_or(JournalError::Closed)?;
            tx.send(make(done))
                .map_err(|_| JournalError::WriterStopped)?;
        }
        rx.await.map_err(|_| JournalError::WriterStopped)?
    }
}

#[async_trait]
impl Journal for WalJournal {
    fn durability(&self) -> Durability {
        self.durability
    }

    fn append(&self, record: JournalRecord) -> JournalAck {
        if let Some(refused) = self.shared.failure.get().and_then(JournalHealth::error) {
            return JournalAck::ready(Err(refused));
        }
        self.send_append(encode_framed(&record), record.seq)
    }

    fn append_group(&self, records: Vec<JournalRecord>) -> JournalAck {
        if let Some(refused) = self.shared.failure.get().and_then(JournalHealth::error) {
            return JournalAck::ready(Err(refused));
        }
        // One request, so the writer puts the whole group in one write of one segment.
        let mut bytes = Vec::new();
        let mut seq = 0;
        for record in &records {
            bytes.extend_from_slice(&encode_framed(record));
            seq = seq.max(record.seq);
        }
        self.send_append(bytes, seq)
    }

    async fn checkpoint(&self, upto: u64) -> Result<(), JournalError> {
        self.request(|done| Request::Control(Control::Checkpoint { upto, done }))
            .await
    }

    fn take_recovered(&self) -> Vec<JournalRecord> {
        std::mem::take(&mut *self.recovered.lock())
    }

    fn stats(&self) -> JournalStats {
        JournalStats {
            bytes: self.shared.bytes.load(Ordering::Relaxed),
            segments: self.shared.segments.load(Ordering::Relaxed),
            appends: self.shared.appends.load(Ordering::Relaxed),
            syncs: self.shared.syncs.load(Ordering::Relaxed),
            health: self.health(),
        }
    }

    fn health(&self) -> JournalHealth {
        self.shared.failure.get().cloned().unwrap_or_default()
    }

    fn instrument(&self, metrics: Arc<EngineMetrics>) {
        let _ = self.shared.metrics.set(metrics);
    }

    fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::SeqCst)
    }

    fn barrier(&self) -> JournalAck {
        let (done, rx) = oneshot::channel();
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            return JournalAck::ready(Err(JournalError::Closed));
        };
        if tx
            .send(Request::Control(Control::Barrier { done }))
            .is_err()
        {
            return JournalAck::ready(Err(JournalError::WriterStopped));
        }
        JournalAck::waiting(rx)
    }

    async fn failed(&self) {
        let mut failed = self.shared.failed.subscribe();
        // Err only if the sender is gone, which the journal's own `shared` prevents.
        let _ = failed.wait_for(|failed| *failed).await;
    }

    async fn reread_acknowledged(&self) -> Result<Vec<JournalRecord>, JournalError> {
        let (done, rx) = oneshot::channel();
        {
            let tx = self.tx.lock();
            let tx = tx.as_ref().ok_or(JournalError::Closed)?;
            tx.send(Request::Control(Control::Reread { done }))
                .map_err(|_| JournalError::WriterStopped)?;
        }
        rx.await.map_err(|_| JournalError::WriterStopped)?
    }

    async fn close(&self) -> Result<(), JournalError> {
        let result = self
            .request(|done| Request::Control(Control::Close { done }))
            .await;
        self.tx.lock().take();
        let handle = self.thread.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        match result {
            Err(JournalError::Closed) => Ok(()),
            other => other,
        }
    }
}

impl Drop for WalJournal {
    fn drop(&mut self) {
        self.tx.lock().take();
    }
}
