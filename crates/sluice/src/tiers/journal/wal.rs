//! The write-ahead journal: segment files with group commit and commit-order recovery.
//!
//! Layout of `<data-dir>/journal/`:
//! - `seg-<start>.wal`: a 24-byte header (magic `SLUICEJ1`, version, starting position, CRC)
//!   followed by records framed as `[len u32][crc32c u32][payload]`. The starting position is
//!   the journal-wide byte offset of the segment's first record.
//! - `checkpoint`: the sequence number up to which every record is stored or superseded, and
//!   the highest sequence number ever appended; replaced atomically (write, fsync, rename).
//!
//! One writer thread does the group commit: it takes every append waiting, makes one
//! `write`, then (under `fsync`) one `fdatasync`, and completes all the waiters together.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tracing::{error, warn};

use super::{Journal, JournalAck, JournalOp, JournalRecord, JournalStats};
use crate::config::{Durability, JournalConfig};
use crate::error::JournalError;
use crate::tiers::store::StoreWrite;

const MAGIC: &[u8; 8] = b"SLUICEJ1";
const VERSION: u32 = 1;
const HEADER_LEN: u64 = 24;
const CHECKPOINT_MAGIC: &[u8; 8] = b"SLUICECP";
/// Largest record payload accepted on replay: a 512 MiB value plus its key and framing.
const MAX_PAYLOAD: u32 = 600 * 1024 * 1024;

const OP_UPSERT: u8 = 0;
const OP_DELETE: u8 = 1;
const OP_CLEAR: u8 = 2;

/// Encodes a record's payload.
pub fn encode_payload(r: &JournalRecord) -> Vec<u8> {
    let mut p = Vec::with_capacity(payload_capacity(r));
    encode_payload_into(r, &mut p);
    p
}

/// An upper bound of the payload's length, so encoding allocates once.
fn payload_capacity(r: &JournalRecord) -> usize {
    let value_len = match &r.op {
        JournalOp::Write(StoreWrite::Upsert { value, .. }) => value.len(),
        _ => 0,
    };
    8 + 2 + 2 + r.keyspace.len() + 4 + r.key.len() + 4 + value_len + 9
}

/// Appends a record's payload to `p`.
fn encode_payload_into(r: &JournalRecord, p: &mut Vec<u8>) {
    let (op, value, expires_at) = match &r.op {
        JournalOp::Write(StoreWrite::Upsert { value, expires_at }) => {
            (OP_UPSERT, &value[..], *expires_at)
        }
        JournalOp::Write(StoreWrite::Delete) => (OP_DELETE, &[][..], None),
        JournalOp::Clear => (OP_CLEAR, &[][..], None),
    };
    let ks = r.keyspace.as_bytes();
    p.extend_from_slice(&r.seq.to_le_bytes());
    p.push(op);
    p.push(r.db);
    p.extend_from_slice(&(ks.len() as u16).to_le_bytes());
    p.extend_from_slice(ks);
    p.extend_from_slice(&(r.key.len() as u32).to_le_bytes());
    p.extend_from_slice(&r.key);
    p.extend_from_slice(&(value.len() as u32).to_le_bytes());
    p.extend_from_slice(value);
    match expires_at {
        Some(e) => {
            p.push(1);
            p.extend_from_slice(&e.to_le_bytes());
        }
        None => p.push(0),
    }
}

/// A record framed as it goes to disk (`[len u32][crc32c u32][payload]`), encoded in place in
/// one allocation.
fn encode_framed(r: &JournalRecord) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(FRAME_HEADER + payload_capacity(r));
    bytes.extend_from_slice(&[0; FRAME_HEADER]);
    encode_payload_into(r, &mut bytes);
    let payload = &bytes[FRAME_HEADER..];
    let (len, crc) = (payload.len() as u32, crc32c::crc32c(payload));
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    bytes[4..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
    bytes
}

/// Length and CRC before each payload.
const FRAME_HEADER: usize = 8;

/// Decodes a payload; `None` if it is malformed.
pub fn decode_payload(p: &[u8]) -> Option<JournalRecord> {
    let mut at = 0usize;
    let mut take = |n: usize| -> Option<&[u8]> {
        let s = p.get(at..at.checked_add(n)?)?;
        at += n;
        Some(s)
    };
    let seq = u64::from_le_bytes(take(8)?.try_into().ok()?);
    let op = take(1)?[0];
    let db = take(1)?[0];
    let ks_len = u16::from_le_bytes(take(2)?.try_into().ok()?) as usize;
    let keyspace = String::from_utf8(take(ks_len)?.to_vec()).ok()?;
    let key_len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let key = Bytes::copy_from_slice(take(key_len)?);
    let value_len = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
    let value = Bytes::copy_from_slice(take(value_len)?);
    let expires_at = match take(1)?[0] {
        0 => None,
        1 => Some(u64::from_le_bytes(take(8)?.try_into().ok()?)),
        _ => return None,
    };
    if at != p.len() {
        return None;
    }
    let op = match op {
        OP_UPSERT => JournalOp::Write(StoreWrite::Upsert { value, expires_at }),
        OP_DELETE => JournalOp::Write(StoreWrite::Delete),
        OP_CLEAR => JournalOp::Clear,
        _ => return None,
    };
    Some(JournalRecord {
        seq,
        keyspace,
        db,
        key,
        op,
    })
}

fn header(start: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..20].copy_from_slice(&start.to_le_bytes());
    let crc = crc32c::crc32c(&h[..20]);
    h[20..24].copy_from_slice(&crc.to_le_bytes());
    h
}

fn parse_header(h: &[u8]) -> Option<u64> {
    if h.len() < HEADER_LEN as usize || &h[..8] != MAGIC {
        return None;
    }
    if u32::from_le_bytes(h[8..12].try_into().ok()?) != VERSION {
        return None;
    }
    if crc32c::crc32c(&h[..20]) != u32::from_le_bytes(h[20..24].try_into().ok()?) {
        return None;
    }
    Some(u64::from_le_bytes(h[12..20].try_into().ok()?))
}

fn segment_name(start: u64) -> String {
    format!("seg-{start:020}.wal")
}

fn io_err(doing: &str, path: &Path, e: std::io::Error) -> JournalError {
    JournalError(format!("{doing} {}: {e}", path.display()))
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err("cannot fsync directory", dir, e))
}

/// What recovery found.
#[derive(Debug, Default, Clone)]
pub struct RecoveryReport {
    /// Records after the checkpoint.
    pub records: usize,
    /// Bytes cut from a torn tail.
    pub torn_bytes: u64,
    /// Bad records skipped under `--salvage`.
    pub salvaged: usize,
}

struct Segment {
    path: PathBuf,
    start: u64,
    len: u64,
    max_seq: u64,
}

enum Request {
    Append {
        bytes: Vec<u8>,
        seq: u64,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Checkpoint {
        upto: u64,
        done: oneshot::Sender<Result<(), JournalError>>,
    },
    Close {
        done: oneshot::Sender<Result<(), JournalError>>,
    },
}

struct Shared {
    bytes: AtomicU64,
    segments: AtomicU64,
    appends: AtomicU64,
    syncs: AtomicU64,
    last_seq: AtomicU64,
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
    /// Opens the journal in `dir`, recovering what lies past the checkpoint. A torn tail is
    /// cut with a warning; corruption before the tail is an error unless `salvage`.
    pub async fn open(
        dir: &Path,
        config: &JournalConfig,
        salvage: bool,
    ) -> Result<WalJournal, JournalError> {
        let dir = dir.to_path_buf();
        let config = config.clone();
        tokio::task::spawn_blocking(move || WalJournal::open_blocking(&dir, &config, salvage))
            .await
            .map_err(|e| JournalError(format!("journal recovery task failed: {e}")))?
    }

    fn open_blocking(
        dir: &Path,
        config: &JournalConfig,
        salvage: bool,
    ) -> Result<WalJournal, JournalError> {
        fs::create_dir_all(dir).map_err(|e| io_err("cannot create journal directory", dir, e))?;
        let (checkpoint, mut last_seq) = read_checkpoint(dir)?;
        let mut segments = list_segments(dir)?;
        let mut recovered = Vec::new();
        let mut report = RecoveryReport::default();
        let count = segments.len();
        for (i, seg) in segments.iter_mut().enumerate() {
            let is_last = i + 1 == count;
            scan_segment(
                seg,
                is_last,
                salvage,
                checkpoint,
                &mut recovered,
                &mut report,
            )?;
            last_seq = last_seq.max(seg.max_seq);
        }
        check_contiguous(&segments, salvage, checkpoint, &mut report)?;
        // Every seq up to the checkpoint was handed out, even one whose record never reached
        // the journal: numbering must resume above it, or replay would skip the new records.
        last_seq = last_seq.max(checkpoint);
        // A last segment torn before its header was complete holds nothing.
        segments.retain(|s| {
            if s.len == 0 {
                let _ = fs::remove_file(&s.path);
                false
            } else {
                true
            }
        });
        report.records = recovered.len();
        if report.torn_bytes > 0 {
            warn!(
                bytes = report.torn_bytes,
                "journal tail was torn (a crash during a write); cut at the last valid record"
            );
        }
        let next_start = segments.last().map(|s| s.start + s.len).unwrap_or(0);
        let shared = Arc::new(Shared {
            bytes: AtomicU64::new(segments.iter().map(|s| s.len).sum()),
            segments: AtomicU64::new(segments.len() as u64),
            appends: AtomicU64::new(0),
            syncs: AtomicU64::new(0),
            last_seq: AtomicU64::new(last_seq),
        });
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            durability: config.durability,
            fsync_interval: config.fsync_interval,
            segment_size: config.segment_size.max(HEADER_LEN + 1),
            closed: VecDeque::from(segments),
            current: None,
            next_start,
            shared: shared.clone(),
            dirty: false,
            last_sync: Instant::now(),
            checkpoint,
        };
        writer.roll()?;
        let (tx, rx) = mpsc::channel();
        let handle = thread::Builder::new()
            .name("sluice-journal".into())
            .spawn(move || writer.run(rx))
            .map_err(|e| JournalError(format!("cannot start journal writer: {e}")))?;
        Ok(WalJournal {
            durability: config.durability,
            tx: Mutex::new(Some(tx)),
            shared,
            recovered: Mutex::new(recovered),
            report,
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
            let tx = tx
                .as_ref()
                .ok_or_else(|| JournalError("journal is closed".into()))?;
            tx.send(make(done))
                .map_err(|_| JournalError("journal writer has stopped".into()))?;
        }
        rx.await
            .map_err(|_| JournalError("journal writer dropped the request".into()))?
    }
}

#[async_trait]
impl Journal for WalJournal {
    fn durability(&self) -> Durability {
        self.durability
    }

    fn append(&self, record: JournalRecord) -> JournalAck {
        let bytes = encode_framed(&record);
        let seq = record.seq;
        let (done, rx) = oneshot::channel();
        let tx = self.tx.lock();
        let Some(tx) = tx.as_ref() else {
            return JournalAck::ready(Err(JournalError("journal is closed".into())));
        };
        if tx.send(Request::Append { bytes, seq, done }).is_err() {
            return JournalAck::ready(Err(JournalError("journal writer has stopped".into())));
        }
        JournalAck::waiting(rx)
    }

    async fn checkpoint(&self, upto: u64) -> Result<(), JournalError> {
        self.request(|done| Request::Checkpoint { upto, done })
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
        }
    }

    fn last_seq(&self) -> u64 {
        self.shared.last_seq.load(Ordering::SeqCst)
    }

    async fn close(&self) -> Result<(), JournalError> {
        let result = self.request(|done| Request::Close { done }).await;
        self.tx.lock().take();
        let handle = self.thread.lock().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
        match result {
            Err(JournalError(m)) if m == "journal is closed" => Ok(()),
            other => other,
        }
    }
}

impl Drop for WalJournal {
    fn drop(&mut self) {
        self.tx.lock().take();
    }
}

fn read_checkpoint(dir: &Path) -> Result<(u64, u64), JournalError> {
    let path = dir.join("checkpoint");
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(io_err("cannot read", &path, e)),
    };
    if bytes.len() != 28 || &bytes[..8] != CHECKPOINT_MAGIC {
        return Err(JournalError(format!(
            "checkpoint file {} is malformed; if the journal directory was copied partially, restore it whole",
            path.display()
        )));
    }
    let crc = u32::from_le_bytes(bytes[24..28].try_into().unwrap_or_default());
    if crc32c::crc32c(&bytes[..24]) != crc {
        return Err(JournalError(format!(
            "checkpoint file {} fails its checksum; restore it or remove it to replay the whole journal",
            path.display()
        )));
    }
    let upto = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let last = u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default());
    Ok((upto, last))
}

fn write_checkpoint(dir: &Path, upto: u64, last_seq: u64) -> Result<(), JournalError> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(CHECKPOINT_MAGIC);
    b.extend_from_slice(&upto.to_le_bytes());
    b.extend_from_slice(&last_seq.to_le_bytes());
    b.extend_from_slice(&crc32c::crc32c(&b).to_le_bytes());
    let tmp = dir.join("checkpoint.tmp");
    let path = dir.join("checkpoint");
    let mut f = File::create(&tmp).map_err(|e| io_err("cannot create", &tmp, e))?;
    f.write_all(&b)
        .map_err(|e| io_err("cannot write", &tmp, e))?;
    f.sync_data().map_err(|e| io_err("cannot fsync", &tmp, e))?;
    fs::rename(&tmp, &path).map_err(|e| io_err("cannot rename", &tmp, e))?;
    sync_dir(dir)
}

fn list_segments(dir: &Path) -> Result<Vec<Segment>, JournalError> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err("cannot list", dir, e))? {
        let entry = entry.map_err(|e| io_err("cannot list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(start) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".wal"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        segs.push(Segment {
            path: entry.path(),
            start,
            len: 0,
            max_seq: 0,
        });
    }
    segs.sort_by_key(|s| s.start);
    Ok(segs)
}

/// Parses the record at `at`, returning it and its framed length.
fn parse_record(buf: &[u8], at: usize) -> Option<(JournalRecord, usize)> {
    let head = buf.get(at..at + 8)?;
    let len = u32::from_le_bytes(head[..4].try_into().ok()?);
    if len > MAX_PAYLOAD {
        return None;
    }
    let crc = u32::from_le_bytes(head[4..8].try_into().ok()?);
    let payload = buf.get(at + 8..at + 8 + len as usize)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    Some((decode_payload(payload)?, 8 + len as usize))
}

/// Each segment starts at the journal-wide offset where the one before it ended. A gap means
/// records are missing (a segment file lost, or cut exactly at a record boundary), which no
/// record check can see. The checkpoint deletes segments oldest first, so a gap is benign only
/// when every segment before it lies wholly at or below the checkpoint.
fn check_contiguous(
    segments: &[Segment],
    salvage: bool,
    checkpoint: u64,
    report: &mut RecoveryReport,
) -> Result<(), JournalError> {
    let mut all_stored = true;
    for pair in segments.windows(2) {
        let (prev, next) = (&pair[0], &pair[1]);
        all_stored &= prev.max_seq <= checkpoint;
        // A segment skipped whole under --salvage has no known length; it was reported.
        if prev.len == 0 || prev.start + prev.len == next.start || all_stored {
            continue;
        }
        if !salvage {
            return Err(JournalError(format!(
                "journal segment {} ends at byte {} but the next one, {}, starts at byte {}: a segment file is missing or was cut; restore the journal directory whole, or start with --salvage to replay what is there (the missing writes are lost)",
                prev.path.display(),
                prev.start + prev.len,
                next.path.display(),
                next.start
            )));
        }
        error!(
            segment = %next.path.display(),
            missing_bytes = next.start.abs_diff(prev.start + prev.len),
            "journal records are missing before this segment (--salvage); the writes they held are lost"
        );
        report.salvaged += 1;
    }
    Ok(())
}

/// Reads every record of a segment. Sets `seg.len` to the valid length (0: no valid header).
fn scan_segment(
    seg: &mut Segment,
    is_last: bool,
    salvage: bool,
    checkpoint: u64,
    out: &mut Vec<JournalRecord>,
    report: &mut RecoveryReport,
) -> Result<(), JournalError> {
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&seg.path)
        .map_err(|e| io_err("cannot open", &seg.path, e))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| io_err("cannot read", &seg.path, e))?;
    match parse_header(&buf) {
        Some(start) if start == seg.start => {}
        _ if is_last && buf.len() < HEADER_LEN as usize => {
            // Created but its header never reached the disk: nothing in it was acknowledged.
            report.torn_bytes += buf.len() as u64;
            seg.len = 0;
            return Ok(());
        }
        _ if salvage => {
            error!(segment = %seg.path.display(), "journal segment header is corrupt; skipping the whole segment (--salvage)");
            report.salvaged += 1;
            seg.len = 0;
            return Ok(());
        }
        _ => {
            return Err(JournalError(format!(
                "journal segment {} has a corrupt header; start with --salvage to skip it (its writes are lost) or restore the file",
                seg.path.display()
            )))
        }
    }
    let mut at = HEADER_LEN as usize;
    while at < buf.len() {
        if let Some((record, framed)) = parse_record(&buf, at) {
            seg.max_seq = seg.max_seq.max(record.seq);
            if record.seq > checkpoint {
                out.push(record);
            }
            at += framed;
            continue;
        }
        // A bad record: a torn tail if nothing valid follows it, corruption otherwise.
        let next_valid = (at + 1..buf.len()).find(|&i| parse_record(&buf, i).is_some());
        match next_valid {
            None if is_last => {
                report.torn_bytes += (buf.len() - at) as u64;
                file.set_len(at as u64)
                    .and_then(|_| file.sync_data())
                    .map_err(|e| io_err("cannot truncate torn tail of", &seg.path, e))?;
                buf.truncate(at);
                break;
            }
            _ if salvage => {
                let skip_to = next_valid.unwrap_or(buf.len());
                error!(
                    segment = %seg.path.display(),
                    offset = at,
                    bytes = skip_to - at,
                    "corrupt journal record skipped (--salvage); the write it held is lost"
                );
                report.salvaged += 1;
                at = skip_to;
            }
            _ => {
                return Err(JournalError(format!(
                    "journal segment {} is corrupt at byte {at}, before its tail; start with --salvage to skip bad records (logging each) or restore the file",
                    seg.path.display()
                )))
            }
        }
    }
    seg.len = buf.len() as u64;
    Ok(())
}

struct Writer {
    dir: PathBuf,
    durability: Durability,
    fsync_interval: Duration,
    segment_size: u64,
    closed: VecDeque<Segment>,
    current: Option<(File, Segment)>,
    next_start: u64,
    shared: Arc<Shared>,
    dirty: bool,
    last_sync: Instant,
    checkpoint: u64,
}

impl Writer {
    /// Starts a new segment: header written and fsynced, directory fsynced.
    fn roll(&mut self) -> Result<(), JournalError> {
        if let Some((file, seg)) = self.current.take() {
            file.sync_data()
                .map_err(|e| io_err("cannot fsync", &seg.path, e))?;
            self.next_start = seg.start + seg.len;
            self.closed.push_back(seg);
        }
        let start = self.next_start;
        let path = self.dir.join(segment_name(start));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err("cannot create", &path, e))?;
        file.write_all(&header(start))
            .and_then(|_| file.sync_data())
            .map_err(|e| io_err("cannot write header of", &path, e))?;
        sync_dir(&self.dir)?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| io_err("cannot seek", &path, e))?;
        self.shared.segments.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes.fetch_add(HEADER_LEN, Ordering::Relaxed);
        self.current = Some((
            file,
            Segment {
                path,
                start,
                len: HEADER_LEN,
                max_seq: 0,
            },
        ));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        if let Some((file, seg)) = &self.current {
            file.sync_data()
                .map_err(|e| io_err("cannot fsync", &seg.path, e))?;
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn write_group(&mut self, bytes: &[u8], max_seq: u64) -> Result<(), JournalError> {
        let needs_roll = self.current.as_ref().is_some_and(|(_, s)| {
            s.len > HEADER_LEN && s.len + bytes.len() as u64 > self.segment_size
        });
        if needs_roll || self.current.is_none() {
            self.roll()?;
        }
        let Some((file, seg)) = self.current.as_mut() else {
            return Err(JournalError("journal has no open segment".into()));
        };
        if let Err(e) = file.write_all(bytes) {
            // Cut whatever part of the group reached the file, so nothing half-written that
            // was never acknowledged can be replayed.
            let _ = file.set_len(seg.len);
            let _ = file.seek(SeekFrom::Start(seg.len));
            return Err(io_err("cannot append to", &seg.path, e));
        }
        seg.len += bytes.len() as u64;
        seg.max_seq = seg.max_seq.max(max_seq);
        self.shared
            .bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.shared.last_seq.fetch_max(max_seq, Ordering::SeqCst);
        self.dirty = true;
        if self.durability == Durability::Fsync {
            self.sync()?;
        }
        Ok(())
    }

    fn checkpoint(&mut self, upto: u64) -> Result<(), JournalError> {
        if upto <= self.checkpoint && !self.closed.is_empty() {
            // Nothing new, but segments may still be deletable below an older checkpoint.
        }
        if upto > self.checkpoint {
            write_checkpoint(&self.dir, upto, self.shared.last_seq.load(Ordering::SeqCst))?;
            self.checkpoint = upto;
        }
        while let Some(seg) = self.closed.front() {
            if seg.max_seq > self.checkpoint {
                break;
            }
            let seg = self.closed.pop_front().expect("front exists");
            fs::remove_file(&seg.path).map_err(|e| io_err("cannot delete", &seg.path, e))?;
            self.shared.segments.fetch_sub(1, Ordering::Relaxed);
            self.shared.bytes.fetch_sub(seg.len, Ordering::Relaxed);
        }
        Ok(())
    }

    fn run(mut self, rx: mpsc::Receiver<Request>) {
        let tick = match self.durability {
            Durability::Interval => self.fsync_interval,
            _ => Duration::from_secs(3600),
        };
        loop {
            let first = match rx.recv_timeout(tick) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if self.dirty {
                        if let Err(e) = self.sync() {
                            error!("journal periodic fsync failed: {e}");
                        }
                    }
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let _ = self.sync();
                    return;
                }
            };
            let mut group: Vec<u8> = Vec::new();
            let mut waiters = Vec::new();
            let mut max_seq = 0u64;
            let mut others = Vec::new();
            let mut push = |r: Request, others: &mut Vec<Request>| match r {
                Request::Append { bytes, seq, done } => {
                    group.extend_from_slice(&bytes);
                    max_seq = max_seq.max(seq);
                    waiters.push(done);
                }
                other => others.push(other),
            };
            push(first, &mut others);
            while others.is_empty() {
                match rx.try_recv() {
                    Ok(r) => push(r, &mut others),
                    Err(_) => break,
                }
            }
            if !waiters.is_empty() {
                let result = self.write_group(&group, max_seq);
                self.shared
                    .appends
                    .fetch_add(waiters.len() as u64, Ordering::Relaxed);
                for w in waiters {
                    let _ = w.send(result.clone());
                }
            }
            if self.durability == Durability::Interval
                && self.dirty
                && self.last_sync.elapsed() >= self.fsync_interval
            {
                if let Err(e) = self.sync() {
                    error!("journal periodic fsync failed: {e}");
                }
            }
            for r in others {
                match r {
                    Request::Checkpoint { upto, done } => {
                        let _ = done.send(self.checkpoint(upto));
                    }
                    Request::Close { done } => {
                        let _ = done.send(self.sync());
                        return;
                    }
                    Request::Append { .. } => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(seq: u64, key: &str, value: Option<&str>) -> JournalRecord {
        JournalRecord {
            seq,
            keyspace: "default".into(),
            db: 0,
            key: Bytes::copy_from_slice(key.as_bytes()),
            op: JournalOp::Write(match value {
                Some(v) => StoreWrite::Upsert {
                    value: Bytes::copy_from_slice(v.as_bytes()),
                    expires_at: Some(seq.saturating_mul(10)),
                },
                None => StoreWrite::Delete,
            }),
        }
    }

    #[test]
    fn payload_round_trips() {
        for r in [
            rec(1, "a", Some("x")),
            rec(2, "", None),
            rec(u64::MAX, "k", Some("")),
        ] {
            assert_eq!(decode_payload(&encode_payload(&r)), Some(r));
        }
        let clear = JournalRecord {
            seq: 9,
            keyspace: "ks".into(),
            db: 255,
            key: Bytes::new(),
            op: JournalOp::Clear,
        };
        assert_eq!(decode_payload(&encode_payload(&clear)), Some(clear));
    }

    #[test]
    fn decode_refuses_garbage_without_panicking() {
        let good = encode_payload(&rec(7, "key", Some("value")));
        for cut in 0..good.len() {
            assert_eq!(decode_payload(&good[..cut]), None);
        }
        let mut long = good.clone();
        long.push(0);
        assert_eq!(decode_payload(&long), None);
    }
}
