//! The writer thread: group commit, segment roll, fsync, checkpoint and segment deletion.
//!
//! It takes every append waiting, makes one `write`, then (under `fsync`) one `fdatasync`,
//! and completes all the waiters of the group together.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;
use tracing::error;

use super::checkpoint::write_checkpoint;
use super::format::{header, segment_name, HEADER_LEN};
use super::recovery::Segment;
use super::{sync_dir, Shared};
use crate::config::Durability;
use crate::tiers::journal::JournalError;

/// What the journal handle asks of the writer thread.
pub(super) enum Request {
    /// One framed record; `done` is completed with the outcome of its group.
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
    /// Written since the last fsync.
    pub(super) dirty: bool,
    pub(super) last_sync: Instant,
    pub(super) checkpoint: u64,
}

impl Writer {
    /// Starts a new segment: header written and fsynced, directory fsynced.
    pub(super) fn roll(&mut self) -> Result<&mut (File, Segment), JournalError> {
        if let Some((file, seg)) = self.current.take() {
            file.sync_data()
                .map_err(|e| JournalError::io("fsync", &seg.path, e))?;
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
            .map_err(|e| JournalError::io("create", &path, e))?;
        file.write_all(&header(start))
            .and_then(|_| file.sync_data())
            .map_err(|e| JournalError::io("write the header of", &path, e))?;
        sync_dir(&self.dir)?;
        file.seek(SeekFrom::End(0))
            .map_err(|e| JournalError::io("seek in", &path, e))?;
        self.shared.segments.fetch_add(1, Ordering::Relaxed);
        self.shared.bytes.fetch_add(HEADER_LEN, Ordering::Relaxed);
        Ok(self.current.insert((
            file,
            Segment {
                path,
                start,
                len: HEADER_LEN,
                max_seq: 0,
            },
        )))
    }

    fn sync(&mut self) -> Result<(), JournalError> {
        if let Some((file, seg)) = &self.current {
            file.sync_data()
                .map_err(|e| JournalError::io("fsync", &seg.path, e))?;
            self.shared.syncs.fetch_add(1, Ordering::Relaxed);
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn write_group(&mut self, bytes: &[u8], max_seq: u64) -> Result<(), JournalError> {
        let full =
            |s: &Segment| s.len > HEADER_LEN && s.len + bytes.len() as u64 > self.segment_size;
        let (file, seg) = match self.current.take() {
            Some(current) if !full(&current.1) => self.current.insert(current),
            current => {
                self.current = current;
                self.roll()?
            }
        };
        if let Err(e) = file.write_all(bytes) {
            // Cut whatever part of the group reached the file, so nothing half-written that
            // was never acknowledged can be replayed.
            let _ = file.set_len(seg.len);
            let _ = file.seek(SeekFrom::Start(seg.len));
            return Err(JournalError::io("append to", &seg.path, e));
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

    /// Records `upto` (if it is new) and deletes the closed segments wholly at or below the
    /// checkpoint. Runs even when the checkpoint did not move: a deletion that failed before
    /// is tried again.
    fn checkpoint(&mut self, upto: u64) -> Result<(), JournalError> {
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

    pub(super) fn run(mut self, rx: mpsc::Receiver<Request>) {
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
