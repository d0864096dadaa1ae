//! The writer thread: group commit, segment roll, fsync, checkpoint and segment deletion.
//!
//! It takes every append waiting, makes one `write`, then (under `fsync`) one `fdatasync`,
//! and completes all the waiters of the group together.
//!
//! Under `fsync` the writer zero-fills the segment ahead of its appends, a mebibyte at a time
//! (as PostgreSQL zero-fills WAL segments): a group then lands in blocks the file already owns,
//! inside its length, so its `fdatasync` writes only the data and no allocation or file-size
//! metadata (a third less time per fsync on ext4 here). The zeros past the last record are cut
//! when a segment is closed, and recovery reads them as the end of the segment, not as a tear.
//!
//! A failed `write` or `fdatasync` of a segment takes the journal out of service for good
//! (see [`JournalHealth::Failed`]). After a failed fsync the kernel may have dropped the dirty
//! pages and marked them clean, so a later fsync can succeed without the data ever reaching
//! the disk (PostgreSQL's "fsyncgate"): the only trustworthy state is what recovery reads back
//! after a restart. So the writer never retries: the failed group's waiters get the OS error,
//! every later append fails at once, and nothing is acknowledged again.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::{error, warn};

use super::checkpoint::write_checkpoint;
use super::faults::SegmentIo;
use super::format::{header, segment_name, HEADER_LEN};
use super::recovery::{recover, Segment};
use super::{sync_dir, Shared};
use crate::config::Durability;
use crate::metrics::events;
use crate::tiers::journal::{JournalError, JournalHealth, JournalRecord};

/// What the journal handle asks of the writer thread.
pub(super) enum Request {
    /// One framed record; `done` is completed with the outcome of its group.
    Append {
        bytes: Vec<u8>,
        seq: u64,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    /// Anything else; it ends the group it arrives in.
    Control(Control),
}

/// The requests that are not appends.
pub(super) enum Control {
    Checkpoint {
        upto: u64,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Close {
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    /// Answered once every append sent before it is decided: `Ok` unless the journal is out of
    /// service.
    Barrier {
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    /// After a failure: the records past the checkpoint, read back from disk.
    Reread {
        done: oneshot::Sender<Result<Vec<JournalRecord>, JournalError>>,
    },
}

/// The appends of one group commit.
#[derive(Default)]
struct Group {
    bytes: Vec<u8>,
    max_seq: u64,
    waiters: Vec<oneshot::Sender<Result<(), JournalError>>>,
}

impl Group {
    /// Adds an append to the group; hands back anything else (which ends the group).
    fn take(&mut self, request: Request) -> Option<Control> {
        match request {
            Request::Append { bytes, seq, done } => {
                self.bytes.extend_from_slice(&bytes);
                self.max_seq = self.max_seq.max(seq);
                self.waiters.push(done);
                None
            }
            Request::Control(control) => Some(control),
        }
    }
}

/// Zero-fills `file` past `end`, the end of the group about to be written at `seg.len`, unless
/// it already is: from the zero-filled end (or the records' end) a mebibyte further, at most to
/// the segment size, and at least to `end`. A failure (a full disk) is logged, the filled part
/// cut off again, and the segment grows by appends from then on; the append itself then meets
/// the same error if there is one.
fn zero_fill_ahead(
    file: &File,
    seg: &Segment,
    end: u64,
    segment_size: u64,
    zeroed_to: &mut u64,
    failed: &mut bool,
) {
    if *failed || end <= *zeroed_to {
        return;
    }
    let from = (*zeroed_to).max(seg.len);
    let to = (from + ZERO_FILL_CHUNK).min(segment_size).max(end);
    match write_zeros(file, from, to) {
        Ok(()) => *zeroed_to = to,
        Err(e) => {
            *failed = true;
            warn!(
                segment = %seg.path.display(),
                "cannot zero-fill the journal segment ahead of its records ({e}); appends extend it instead, and each fsync also writes file metadata"
            );
            if let Err(e) = file.set_len(from) {
                warn!(segment = %seg.path.display(), "cannot cut the partly zero-filled end off the journal segment ({e}); recovery skips it");
            }
        }
    }
}

/// The state the writer thread owns.
pub(super) struct Writer {
    pub(super) dir: PathBuf,
    pub(super) durability: Durability,
    pub(super) fsync_interval: Duration,
    pub(super) segment_size: u64,
    /// Segments no longer written to, oldest first.
    pub(super) closed: VecDeque<Segment>,
    /// The segment being appended to.
    pub(super) current: Option<(File, Segment)>,
    /// Journal-wide offset at which the next segment starts.
    pub(super) next_start: u64,
    pub(super) shared: Arc<Shared>,
    pub(super) io: SegmentIo,
    /// Written since the last fsync.
    pub(super) dirty: bool,
    pub(super) last_sync: Instant,
    pub(super) checkpoint: u64,
    /// Whether the engine read the journal back after it failed (see [`Writer::checkpoint`]).
    pub(super) reread_since_failure: bool,
    /// Appends written since the last fsync that succeeded.
    pub(super) appends_since_sync: u64,
    /// Offset up to which the current segment's file is zero-filled ahead of its records
    /// (under `fsync`; 0 when nothing was).
    pub(super) zeroed_to: u64,
    /// Zero-filling the current segment failed once (a full disk, say): its appends extend
    /// the file until the next segment.
    pub(super) zero_fill_failed: bool,
}

/// How far ahead of its records the writer zero-fills a segment under `fsync`: one such write
/// (and a slower fsync) per mebibyte of records.
const ZERO_FILL_CHUNK: u64 = 1024 * 1024;
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Writes zeros over `[from, to)` of `file`.
fn write_zeros(file: &File, from: u64, to: u64) -> std::io::Result<()> {
    let mut at = from;
    while at < to {
        let n = (to - at).min(ZEROS.len() as u64) as usize;
        file.write_all_at(&ZEROS[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

/// Cuts the zero-filled space past the last record off a segment being closed, so closed
/// segments hold exactly their records. Best effort: recovery reads zeros as the end anyway.
fn cut_zero_fill(file: &File, seg: &Segment, zeroed_to: u64) {
    if zeroed_to > seg.len {
        if let Err(e) = file.set_len(seg.len) {
            warn!(segment = %seg.path.display(), "cannot cut the unused zero-filled end off the journal segment ({e}); recovery skips it");
        }
    }
}

/// Cuts a segment back to `len` after a failed write or fsync, so the records behind it,
/// which were never acknowledged, are not replayed at the next start. Best effort and not
/// fsynced (the journal never fsyncs again after a failure): if the cut fails, or a crash
/// loses it, the next start replays those records. That is safe: their writers were told
/// the write failed, which promises nothing either way, like a connection lost before the
/// reply; and a record half on disk fails its CRC and is cut as a torn tail.
fn cut_back(file: &mut File, seg: &Segment, len: u64) -> bool {
    match file
        .set_len(len)
        .and_then(|_| file.seek(SeekFrom::Start(len)))
    {
        Ok(_) => true,
        Err(e) => {
            error!(
                segment = %seg.path.display(),
                offset = len,
                "cannot cut the unacknowledged records off the journal segment ({e}); the next start will replay them"
            );
            false
        }
    }
}

impl Writer {
    /// Closes the current segment (fsynced) and creates the next one: header written and
    /// fsynced, directory fsynced. The caller makes it current.
    pub(super) fn roll(&mut self) -> Result<(File, Segment), JournalError> {
        if let Some((file, seg)) = self.current.take() {
            cut_zero_fill(&file, &seg, self.zeroed_to);
            let synced = self.io.sync_data(&file);
            self.next_start = seg.start + seg.len;
            let path = seg.path.clone();
            self.closed.push_back(seg);
            synced.map_err(|e| JournalError::io("fsync", path, e))?;
        }
        let start = self.next_start;
        let path = self.dir.join(segment_name(start));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| JournalError::io("create", &path, e))?;
        // A header that failed half-way is cut by recovery: nothing in the file was
        // acknowledged.
        self.io
            .write_all(&mut file, &header(start))
            .map_err(|e| JournalError::io("write the header of", &path, e))?;
        self.io
            .sync_data(&file)
            .map_err(|e| JournalError::io("fsync", &path, e))?;
        sync_dir(&self.dir)?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| JournalError::io("seek in", &path, e))?;
        self.zeroed_to = 0;
        self.zero_fill_failed = false;
        self.shared.segments.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes.fetch_add(HEADER_LEN, Ordering::Relaxed);
        Ok((
            file,
            Segment {
                path,
                start,
                len: HEADER_LEN,
                max_seq: 0,
            },
        ))
    }

    /// Counts an fsync that succeeded: its duration, and the appends it made durable.
    fn synced(&mut self, started: Instant) {
        self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        if let Some(metrics) = self.shared.metrics.get() {
            let elapsed = started.elapsed();
            metrics.journal_fsync.record_duration(elapsed);
            metrics
                .journal_writes_per_fsync
                .record(self.appends_since_sync);
            metrics.latency.record(events::JOURNAL_FSYNC, elapsed);
        }
        self.appends_since_sync = 0;
    }

    /// Fsyncs the current segment.
    fn sync(&mut self) -> Result<(), JournalError> {
        if let Some((file, seg)) = &self.current {
            let started = Instant::now();
            self.io
                .sync_data(file)
                .map_err(|e| JournalError::io("fsync", &seg.path, e))?;
            self.synced(started);
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Appends one group (and, under `fsync`, makes it durable). On a failure the group is
    /// cut off the segment again where that keeps every acknowledged record (see below).
    fn write_group(&mut self, bytes: &[u8], max_seq: u64) -> Result<(), JournalError> {
        let full =
            |s: &Segment| s.len > HEADER_LEN && s.len + bytes.len() as u64 > self.segment_size;
        let current = match self.current.take() {
            Some(current) if !full(&current.1) => current,
            current => {
                self.current = current;
                self.roll()?
            }
        };
        let (file, seg) = self.current.insert(current);
        let before = seg.len;
        if self.durability == Durability::Fsync {
            let end = before + bytes.len() as u64;
            zero_fill_ahead(
                file,
                seg,
                end,
                self.segment_size,
                &mut self.zeroed_to,
                &mut self.zero_fill_failed,
            );
        }
        if let Err(e) = self.io.write_all(file, bytes) {
            // Whatever part of the group reached the file was never acknowledged.
            cut_back(file, seg, before);
            self.zeroed_to = 0;
            return Err(JournalError::io("append to", &seg.path, e));
        }
        seg.len += bytes.len() as u64;
        seg.max_seq = seg.max_seq.max(max_seq);
        self.shared
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.shared.last_seq.fetch_max(max_seq, Ordering::SeqCst);
        self.dirty = true;
        if self.durability != Durability::Fsync {
            return Ok(());
        }
        let started = Instant::now();
        if let Err(e) = self.io.sync_data(file) {
            // Under `fsync` every earlier group was synced before it was acknowledged, so
            // `before` is the end of the last group that synced: only this group goes. (Under
            // `os` and `interval` a failed background fsync cuts nothing: the groups it
            // covered were acknowledged after their write.)
            if cut_back(file, seg, before) {
                self.zeroed_to = 0;
                seg.len = before;
                self.shared
                    .bytes
                    .fetch_sub(bytes.len() as u64, Ordering::Relaxed);
            }
            return Err(JournalError::io("fsync", &seg.path, e));
        }
        self.synced(started);
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// The error for an append while the journal is out of service; `None` while it is ok.
    fn refusal(&self) -> Option<JournalError> {
        self.shared.failure.get().and_then(JournalHealth::error)
    }

    /// Takes the journal out of service after `error`, a failed write or fsync of a segment
    /// (logged once), and hands the error back for the failed group's waiters.
    fn fail(&self, error: JournalError) -> JournalError {
        if let JournalError::Io {
            doing,
            path,
            source,
        } = &error
        {
            let failure = JournalHealth::Failed {
                path: path.clone(),
                doing,
                cause: source.clone(),
            };
            if self.shared.failure.set(failure).is_ok() {
                self.shared.failed.send_replace(true);
                error!(
                    segment = %path.display(),
                    "cannot {doing} the journal segment: {source}; the journal takes no more writes, and write-back writes fail until Sluice is restarted (none that failed was acknowledged)"
                );
            }
        }
        error
    }

    /// Group commit of one group, unless the journal is out of service.
    fn commit(&mut self, bytes: &[u8], max_seq: u64) -> Result<(), JournalError> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        self.write_group(bytes, max_seq).map_err(|e| self.fail(e))
    }

    /// The background fsync of `interval`, and the last one before the thread ends.
    fn sync_dirty(&mut self) {
        if self.dirty && self.refusal().is_none() {
            if let Err(e) = self.sync() {
                self.fail(e);
            }
        }
    }

    /// Records `upto` (if it is new) and deletes the closed segments wholly at or below the
    /// checkpoint. Runs even when the checkpoint did not move: a deletion that failed before
    /// is tried again.
    ///
    /// A checkpoint may count records as superseded by later records of the same key; it is
    /// handled only after every append sent before it, so while the journal is healthy those
    /// later records are durable. Once a write or fsync has failed, some of them may not be, and
    /// a record they superseded may be the key's last acknowledged write: checkpoints are then
    /// refused until the engine has read the journal back ([`Control::Reread`]) and rebuilt
    /// its buffers from it, after which it only ever counts records that are on disk.
    fn checkpoint(&mut self, upto: u64) -> Result<(), JournalError> {
        if !self.reread_since_failure {
            if let Some(refused) = self.refusal() {
                return Err(refused);
            }
        }
        if upto > self.checkpoint {
            write_checkpoint(&self.dir, upto, self.shared.last_seq.load(Ordering::SeqCst))?;
            self.checkpoint = upto;
        }
        while let Some(seg) = self.closed.front() {
            if seg.max_seq > self.checkpoint {
                break;
            }
            fs::remove_file(&seg.path).map_err(|e| JournalError::io("delete", &seg.path, e))?;
            self.shared.segments.fetch_sub(1, Ordering::Relaxed);
            self.shared.bytes.fetch_sub(seg.len, Ordering::Relaxed);
            self.closed.pop_front();
        }
        Ok(())
    }

    /// The final fsync of `close`. A journal out of service reports why instead.
    fn close(&mut self) -> Result<(), JournalError> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        if let Some((file, seg)) = &self.current {
            cut_zero_fill(file, seg, self.zeroed_to);
        }
        self.sync().map_err(|e| self.fail(e))
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<Request>) {
        let tick = match self.durability {
            Durability::Interval => self.fsync_interval,
            _ => Duration::from_secs(3600),
        };
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    self.sync_dirty();
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    self.sync_dirty();
                    return;
                }
            };
            self.io.before_group();
            let mut group = Group::default();
            let mut control = group.take(first);
            while control.is_none() {
                match rx.try_recv() {
                    Ok(r) => control = group.take(r),
                    Err(_) => break,
                }
            }
            if !group.waiters.is_empty() {
                self.appends_since_sync += group.waiters.len() as u64;
                let result = self.commit(&group.bytes, group.max_seq);
                self.shared
                    .appends
                    .fetch_add(group.waiters.len() as u64, Ordering::Relaxed);
                for w in group.waiters {
                    let _ = w.send(result.clone());
                }
            }
            if self.durability == Durability::Interval
                && self.last_sync.elapsed() >= self.fsync_interval
            {
                self.sync_dirty();
            }
            match control {
                Some(Control::Checkpoint { upto, done }) => {
                    let _ = done.send(self.checkpoint(upto));
                }
                Some(Control::Close { done }) => {
                    let _ = done.send(self.close());
                    return;
                }
                Some(Control::Barrier { done }) => {
                    let _ = done.send(self.refusal().map_or(Ok(()), Err));
                }
                Some(Control::Reread { done }) => {
                    // The writer reads, so no checkpoint deletes a segment under the scan.
                    // Nothing is written any more once the journal has failed; before that the
                    // current segment may grow past what the scan saw, which is harmless.
                    let reread = recover(&self.dir, false).map(|r| r.records);
                    self.reread_since_failure = reread.is_ok() && self.refusal().is_some();
                    let _ = done.send(reread);
                }
                None => {}
            }
        }
    }
}
