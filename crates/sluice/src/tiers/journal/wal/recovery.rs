//! Recovery at open: list the segments, read every record past the checkpoint, cut a torn
//! tail (and the zeros a segment was filled with ahead of its records), and refuse (or, under `--salvage`, skip and log) corruption before it and records
//! missing between segments.

use std::collections::HashMap;
use std::fs::{self, OpenOptions};
use std::io::Read;
use std::path::{Path, PathBuf};

use tracing::{error, warn};

use super::checkpoint::read_checkpoint;
use super::format::{parse_header, parse_record, parse_segment_name, HEADER_LEN};
use crate::tiers::journal::JournalError;
use crate::tiers::journal::JournalRecord;

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

/// One segment file as recovery and the writer know it.
pub(super) struct Segment {
    pub(super) path: PathBuf,
    /// Journal-wide offset of its first record.
    pub(super) start: u64,
    /// Valid length in bytes, header included (0: no valid header).
    pub(super) len: u64,
    /// Highest sequence number in it.
    pub(super) max_seq: u64,
}

/// The journal directory as recovery left it.
pub(super) struct Recovered {
    /// Live segments, oldest first, each with its valid length.
    pub(super) segments: Vec<Segment>,
    /// Records past the checkpoint, in append order.
    pub(super) records: Vec<JournalRecord>,
    pub(super) report: RecoveryReport,
    pub(super) checkpoint: u64,
    /// The highest sequence number ever handed out, as far as the directory shows.
    pub(super) last_seq: u64,
}

/// Scans `dir` (which exists). A torn tail is cut with a warning; corruption before the tail
/// is an error unless `salvage`.
pub(super) fn recover(dir: &Path, salvage: bool) -> Result<Recovered, JournalError> {
    let (checkpoint, mut last_seq) = read_checkpoint(dir)?;
    let mut segments = list_segments(dir)?;
    let mut records = Vec::new();
    let mut report = RecoveryReport::default();
    let count = segments.len();
    for (i, seg) in segments.iter_mut().enumerate() {
        let is_last = i + 1 == count;
        scan_segment(seg, is_last, salvage, checkpoint, &mut records, &mut report)?;
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
    report.records = records.len();
    if report.torn_bytes > 0 {
        warn!(
            bytes = report.torn_bytes,
            "journal tail was torn (a crash during a write); cut at the last valid record"
        );
    }
    Ok(Recovered {
        segments,
        records,
        report,
        checkpoint,
        last_seq,
    })
}

/// Every segment file of `dir`, oldest first, with unknown length.
fn list_segments(dir: &Path) -> Result<Vec<Segment>, JournalError> {
    let mut segs = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| JournalError::io("list", dir, e))? {
        let entry = entry.map_err(|e| JournalError::io("list", dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(start) = parse_segment_name(&name) else {
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
            return Err(JournalError::Gap {
                before: prev.path.clone(),
                ends_at: prev.start + prev.len,
                next: next.path.clone(),
                starts_at: next.start,
            });
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
        .map_err(|e| JournalError::io("open", &seg.path, e))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)
        .map_err(|e| JournalError::io("read", &seg.path, e))?;
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
            return Err(JournalError::Corrupt {
                path: seg.path.clone(),
                offset: 0,
                reason: "the segment header is corrupt; start with --salvage to skip the segment (its writes are lost) or restore the file",
            })
        }
    }
    let mut at = HEADER_LEN as usize;
    // Members seen of each transaction group (all of a group is in one segment: it is written
    // in one write), counted whether or not they are past the checkpoint.
    let mut groups: HashMap<u64, (u32, u32)> = HashMap::new();
    while at < buf.len() {
        if let Some((record, framed)) = parse_record(&buf, at) {
            seg.max_seq = seg.max_seq.max(record.seq);
            if let Some(g) = record.group {
                groups.entry(g.first_seq).or_insert((g.len, 0)).1 += 1;
            }
            if record.seq > checkpoint {
                out.push(record);
            }
            at += framed;
            continue;
        }
        // Only zeros from here: the unused end of a segment zero-filled ahead of its records
        // (under `fsync`), cut quietly. Records written there but never fsynced may be zeros
        // too: they were never acknowledged.
        let data_end = buf.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if data_end <= at {
            file.set_len(at as u64)
                .and_then(|_| file.sync_data())
                .map_err(|e| JournalError::io("cut the zero-filled end of", &seg.path, e))?;
            buf.truncate(at);
            break;
        }
        // A bad record: a torn tail if nothing valid follows it, corruption otherwise. A valid
        // record holds a non-zero length, so none starts in the zeros past `data_end`.
        let next_valid = (at + 1..data_end).find(|&i| parse_record(&buf, i).is_some());
        match next_valid {
            None if is_last => {
                report.torn_bytes += (buf.len() - at) as u64;
                file.set_len(at as u64)
                    .and_then(|_| file.sync_data())
                    .map_err(|e| JournalError::io("cut the torn tail of", &seg.path, e))?;
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
                return Err(JournalError::Corrupt {
                    path: seg.path.clone(),
                    offset: at as u64,
                    reason: "a bad record before the tail; start with --salvage to skip bad records (logging each) or restore the file",
                })
            }
        }
    }
    seg.len = buf.len() as u64;
    // A group cut short (a crash while it was written, or a record of it salvaged away) was
    // never acknowledged: none of it is replayed.
    let torn: Vec<u64> = groups
        .iter()
        .filter(|(_, (len, seen))| seen != len)
        .map(|(first, _)| *first)
        .collect();
    if !torn.is_empty() {
        let before = out.len();
        out.retain(|r| r.group.is_none_or(|g| !torn.contains(&g.first_seq)));
        warn!(
            segment = %seg.path.display(),
            groups = torn.len(),
            records = before - out.len(),
            "transaction groups only partly on disk were dropped whole (never acknowledged)"
        );
    }
    Ok(())
}
