//! The write-ahead journal (`tiers::journal::wal`) and its replay by the engine.
//!
//! - WAL unit tests through the public API: reopen returns records in order, the checkpoint
//!   hides older records and deletes whole segments, group commit shares fsyncs.
//! - Corruption: a torn tail at every byte, bit flips in the last record, garbage after the
//!   last record, a bad record or segment header before the tail (`--salvage`), random files.
//! - A property test: replay over a partially flushed store never regresses a key.
//! - End to end: acknowledged write-back writes survive a crash; FLUSHDB is not undone by one.
//!
//! Speed figures (ignored by default):
//! `cargo test --release -p sluice --test journal -- --ignored --nocapture journal_speed`

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use sluice::config::{Config, Durability, JournalConfig, KeyspaceConfig, Policy};
use sluice::error::JournalError;
use sluice::model::StoreWrite;
use sluice::tiers::journal::wal::{encode_payload, WalJournal};
use sluice::tiers::journal::{ClearScope, Journal, JournalOp, JournalRecord};
use sluice::{SetOptions, Sluice};

/// Segment header: magic (8), version (4), starting position (8), CRC (4).
const HEADER_LEN: usize = 24;
/// Record framing: length (4) and CRC (4) before the payload.
const FRAME_LEN: usize = 8;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn tempdir() -> tempfile::TempDir {
    // On the build disk rather than a tmpfs, so fsync costs what it costs in production.
    tempfile::Builder::new()
        .prefix("journal-test-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("create a temporary directory")
}

fn jconfig(durability: Durability, segment_size: u64) -> JournalConfig {
    JournalConfig {
        durability,
        fsync_interval: Duration::from_millis(50),
        segment_size,
        ..JournalConfig::default()
    }
}

fn big_segments() -> JournalConfig {
    jconfig(Durability::Fsync, 64 * 1024 * 1024)
}

fn record(seq: u64, db: u8, key: &[u8], op: JournalOp) -> JournalRecord {
    JournalRecord {
        seq,
        keyspace: "default".into(),
        db,
        key: Bytes::copy_from_slice(key),
        op,
        group: None,
    }
}

fn put(seq: u64, key: &str, value: &str) -> JournalRecord {
    record(
        seq,
        0,
        key.as_bytes(),
        JournalOp::Write(StoreWrite::string(
            Bytes::copy_from_slice(value.as_bytes()),
            None,
        )),
    )
}

/// A mixture of every record shape: upserts with and without expiry, deletes, FLUSHDB and
/// FLUSHALL, binary and empty keys, other databases, a large value.
fn varied_records(n: u64) -> Vec<JournalRecord> {
    (1..=n)
        .map(|seq| match seq % 7 {
            0 => record(
                seq,
                0,
                format!("del:{seq}").as_bytes(),
                JournalOp::Write(StoreWrite::Delete),
            ),
            1 => record(
                seq,
                (seq % 16) as u8,
                &[0, 0xff, b'k', (seq % 251) as u8],
                JournalOp::Write(StoreWrite::string(
                    Bytes::from(vec![(seq % 256) as u8; (seq as usize * 37) % 300]),
                    Some(1_700_000_000_000 + seq),
                )),
            ),
            2 => record(
                seq,
                3,
                b"",
                JournalOp::Write(StoreWrite::string(Bytes::new(), None)),
            ),
            3 if seq % 2 == 1 => JournalRecord::clear(seq, "default", ClearScope::AllDbs),
            3 => JournalRecord::clear(seq, "default", ClearScope::Db(0)),
            4 => record(
                seq,
                0,
                b"big",
                JournalOp::Write(StoreWrite::string(Bytes::from(vec![b'x'; 10_000]), None)),
            ),
            _ => put(seq, &format!("key:{seq}"), &format!("value-{seq}")),
        })
        .collect()
}

fn framed_len(r: &JournalRecord) -> usize {
    encode_payload(r).len() + FRAME_LEN
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("list the journal directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with("seg-") && name.ends_with(".wal")
        })
        .collect();
    files.sort();
    files
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).expect("stat a segment").len()
}

/// Sequence numbers of the records in a segment file (parsed independently of the journal),
/// and where they end (the zeros of a segment zero-filled ahead under `fsync` start there).
fn segment_records(path: &Path) -> (Vec<u64>, u64) {
    let buf = fs::read(path).expect("read a segment");
    let mut seqs = Vec::new();
    let mut at = HEADER_LEN;
    while at + FRAME_LEN <= buf.len() {
        let len = u32::from_le_bytes(buf[at..at + 4].try_into().unwrap()) as usize;
        if len == 0 {
            break;
        }
        let payload = &buf[at + FRAME_LEN..at + FRAME_LEN + len];
        seqs.push(u64::from_le_bytes(payload[..8].try_into().unwrap()));
        at += FRAME_LEN + len;
    }
    (seqs, at as u64)
}

fn segment_seqs(path: &Path) -> Vec<u64> {
    segment_records(path).0
}

async fn open(dir: &Path, config: &JournalConfig, salvage: bool) -> WalJournal {
    WalJournal::open(dir, config, salvage)
        .await
        .unwrap_or_else(|e| panic!("journal in {} should open: {e}", dir.display()))
}

async fn write_journal(dir: &Path, config: &JournalConfig, records: &[JournalRecord]) {
    let j = open(dir, config, false).await;
    for r in records {
        j.append(r.clone()).await.expect("append");
    }
    j.close().await.expect("close");
}

/// A recovery that panicked surfaces as an error from the blocking task; this is never fine.
fn assert_not_a_panic(e: &JournalError) {
    let text = e.to_string();
    assert!(
        !matches!(e, JournalError::RecoveryTask { .. })
            && !text.contains("recovery task failed")
            && !text.contains("panic"),
        "journal recovery panicked: {e}"
    );
}

/// Opens a journal directory holding exactly `segments` (name, bytes).
async fn open_files(
    segments: &[(String, Vec<u8>)],
    salvage: bool,
) -> (tempfile::TempDir, Result<WalJournal, JournalError>) {
    let dir = tempdir();
    for (name, bytes) in segments {
        fs::write(dir.path().join(name), bytes).expect("write a segment");
    }
    let result = WalJournal::open(dir.path(), &big_segments(), salvage).await;
    if let Err(e) = &result {
        assert_not_a_panic(e);
    }
    (dir, result)
}

/// A pristine single-segment journal of `records`: its file name, its bytes and the offset
/// at which each record starts (plus the end of the file).
async fn pristine_segment(records: &[JournalRecord]) -> (String, Vec<u8>, Vec<usize>) {
    let dir = tempdir();
    write_journal(dir.path(), &big_segments(), records).await;
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1, "one segment expected: {files:?}");
    let bytes = fs::read(&files[0]).unwrap();
    let mut bounds = vec![HEADER_LEN];
    for r in records {
        bounds.push(bounds.last().unwrap() + framed_len(r));
    }
    assert_eq!(
        *bounds.last().unwrap(),
        bytes.len(),
        "segment = header + framed records"
    );
    let name = files[0].file_name().unwrap().to_string_lossy().into_owned();
    (name, bytes, bounds)
}

// ---------------------------------------------------------------------------------------------
// 1. Reopen, order, checkpoint, segment deletion
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn records_come_back_in_append_order_after_close_and_after_drop() {
    let dir = tempdir();
    let cfg = big_segments();
    let records = varied_records(60);

    let j = open(dir.path(), &cfg, false).await;
    assert!(j.take_recovered().is_empty(), "a new journal holds nothing");
    assert_eq!(j.last_seq(), 0);
    for r in &records[..30] {
        j.append(r.clone()).await.unwrap();
    }
    assert_eq!(j.stats().appends, 30);
    j.close().await.unwrap();
    assert!(
        j.append(records[30].clone()).await.is_err(),
        "append after close must fail"
    );

    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(j.take_recovered(), records[..30].to_vec());
    assert!(
        j.take_recovered().is_empty(),
        "take_recovered returns the records once"
    );
    assert_eq!(j.last_seq(), 30);
    for r in &records[30..] {
        j.append(r.clone()).await.unwrap();
    }
    // Dropped without close, as a crash would leave it.
    drop(j);

    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(j.take_recovered(), records);
    assert_eq!(j.last_seq(), 60);
    let report = j.recovery_report();
    assert_eq!(
        (report.records, report.torn_bytes, report.salvaged),
        (60, 0, 0)
    );
    j.close().await.unwrap();

    // Opening does not consume anything: a third open sees the same records.
    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(j.take_recovered(), records);
    j.close().await.unwrap();
}

#[tokio::test]
async fn checkpoint_hides_older_records_and_deletes_whole_segments() {
    let dir = tempdir();
    let cfg = jconfig(Durability::Fsync, 4096);
    let records: Vec<JournalRecord> = (1..=300)
        .map(|s| put(s, &format!("key:{s}"), &"v".repeat(60)))
        .collect();

    let j = open(dir.path(), &cfg, false).await;
    for r in &records {
        j.append(r.clone()).await.unwrap();
    }
    let files = segment_files(dir.path());
    let stats = j.stats();
    assert!(
        files.len() >= 5,
        "several 4 KiB segments expected, got {}",
        files.len()
    );
    assert_eq!(stats.segments as usize, files.len());
    // The bytes of records, not the zeros the current segment is filled with ahead of them.
    assert_eq!(
        stats.bytes,
        files.iter().map(|f| segment_records(f).1).sum::<u64>()
    );
    assert_eq!(stats.appends, 300);
    for f in &files {
        assert!(file_len(f) <= 4096, "{} exceeds segment_size", f.display());
    }

    let max_seqs: Vec<u64> = files
        .iter()
        .map(|f| segment_seqs(f).into_iter().max().unwrap_or(0))
        .collect();
    j.checkpoint(150).await.unwrap();
    let after = segment_files(dir.path());
    let current = files.last().unwrap();
    let mut deleted = 0;
    for (f, &max) in files.iter().zip(&max_seqs) {
        let wholly_below = f != current && max <= 150;
        assert_eq!(
            !after.contains(f),
            wholly_below,
            "{} (max seq {max}) deleted iff wholly below the checkpoint",
            f.display()
        );
        deleted += usize::from(wholly_below);
    }
    assert!(
        deleted >= 2,
        "the checkpoint should delete segments, deleted {deleted}"
    );
    let stats = j.stats();
    assert_eq!(stats.segments as usize, after.len());
    assert_eq!(
        stats.bytes,
        after.iter().map(|f| segment_records(f).1).sum::<u64>()
    );
    // An older checkpoint never moves it back.
    j.checkpoint(100).await.unwrap();
    j.close().await.unwrap();

    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(j.take_recovered(), records[150..].to_vec());
    assert_eq!(j.last_seq(), 300);
    // Everything stored: every closed segment goes, only the new current one stays.
    j.checkpoint(300).await.unwrap();
    let left = segment_files(dir.path());
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(j.stats().segments, 1);
    assert!(segment_seqs(&left[0]).is_empty());
    j.close().await.unwrap();

    // No segment holds a record any more: the checkpoint file still remembers the last seq.
    let j = open(dir.path(), &cfg, false).await;
    assert!(j.take_recovered().is_empty());
    assert_eq!(
        j.last_seq(),
        300,
        "last_seq must survive the deletion of every segment"
    );
    j.append(put(301, "new", "after")).await.unwrap();
    j.close().await.unwrap();
    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(j.take_recovered(), vec![put(301, "new", "after")]);
    j.close().await.unwrap();
}

/// A checkpoint above every appended record (the engine checkpoints at its own sequence
/// counter, which can be ahead of the journal): numbering must still resume above it.
#[tokio::test]
async fn last_seq_is_never_below_the_checkpoint() {
    let dir = tempdir();
    let j = open(dir.path(), &big_segments(), false).await;
    j.append(put(3, "k", "v")).await.unwrap();
    j.checkpoint(10).await.unwrap();
    j.close().await.unwrap();
    let j = open(dir.path(), &big_segments(), false).await;
    assert!(j.take_recovered().is_empty());
    assert!(
        j.last_seq() >= 10,
        "last_seq {} is below the checkpoint 10",
        j.last_seq()
    );
    j.append(put(11, "k", "w")).await.unwrap();
    j.close().await.unwrap();
    let j = open(dir.path(), &big_segments(), false).await;
    assert_eq!(j.take_recovered(), vec![put(11, "k", "w")]);
    j.close().await.unwrap();
}

#[tokio::test]
async fn os_durability_appends_without_fsync() {
    let dir = tempdir();
    let j = open(dir.path(), &jconfig(Durability::Os, 1 << 20), false).await;
    assert_eq!(j.durability(), Durability::Os);
    for s in 1..=20 {
        j.append(put(s, "k", "v")).await.unwrap();
    }
    assert_eq!(
        j.stats().syncs,
        0,
        "durability os acknowledges after write(), no fsync"
    );
    drop(j);
    let j = open(dir.path(), &big_segments(), false).await;
    assert_eq!(j.take_recovered().len(), 20);
    j.close().await.unwrap();
}

#[tokio::test]
async fn interval_durability_fsyncs_in_the_background() {
    let dir = tempdir();
    let j = open(dir.path(), &jconfig(Durability::Interval, 1 << 20), false).await;
    for s in 1..=20 {
        j.append(put(s, "k", "v")).await.unwrap();
    }
    // fsync_interval is 50 ms: the writer syncs on its own, without a new append.
    let deadline = Instant::now() + Duration::from_secs(5);
    while j.stats().syncs == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(j.stats().syncs >= 1, "no periodic fsync within 5 s");
    assert!(j.stats().syncs < 20);
    j.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. Group commit
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_share_fsyncs() {
    const WRITERS: u64 = 200;
    let dir = tempdir();
    let j = Arc::new(open(dir.path(), &big_segments(), false).await);
    let start = Arc::new(tokio::sync::Barrier::new(WRITERS as usize));
    let mut tasks = tokio::task::JoinSet::new();
    for seq in 1..=WRITERS {
        let j = j.clone();
        let start = start.clone();
        tasks.spawn(async move {
            start.wait().await;
            j.append(put(seq, &format!("key:{seq}"), "value")).await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("append task").expect("append");
    }
    let stats = j.stats();
    println!(
        "group commit: {} appends, {} fsyncs, {:.1} writes per fsync",
        stats.appends,
        stats.syncs,
        stats.appends as f64 / stats.syncs.max(1) as f64
    );
    assert_eq!(stats.appends, WRITERS);
    assert!(stats.syncs >= 1, "durability fsync must fsync");
    assert!(
        stats.syncs < stats.appends,
        "group commit should share fsyncs: {stats:?}"
    );
    j.close().await.unwrap();

    let j = open(dir.path(), &big_segments(), false).await;
    let seqs: BTreeSet<u64> = j.take_recovered().iter().map(|r| r.seq).collect();
    assert_eq!(seqs, (1..=WRITERS).collect());
    j.close().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 3. Corruption
// ---------------------------------------------------------------------------------------------

fn small_records() -> Vec<JournalRecord> {
    vec![
        put(1, "a", "1"),
        put(2, "bb", "22"),
        record(3, 1, b"c", JournalOp::Write(StoreWrite::Delete)),
        put(4, "a", "4444"),
        JournalRecord::clear(5, "default", ClearScope::Db(0)),
        put(6, "last", "the last record"),
    ]
}

/// (a) A file cut at any byte (a crash during a write) opens, keeps every record that is
/// whole, and is truncated to the end of the last whole record.
#[tokio::test]
async fn torn_tail_at_every_byte_is_cut_to_the_last_valid_record() {
    let records = small_records();
    let (name, bytes, bounds) = pristine_segment(&records).await;
    for cut in 0..=bytes.len() {
        let (dir, result) = open_files(&[(name.clone(), bytes[..cut].to_vec())], false).await;
        let j = result.unwrap_or_else(|e| panic!("cut at {cut}: open failed: {e}"));
        let whole = bounds.iter().skip(1).filter(|&&b| b <= cut).count();
        assert_eq!(
            j.take_recovered(),
            records[..whole].to_vec(),
            "cut at {cut}"
        );
        // The last valid position; a cut inside the header leaves a fresh header-only segment.
        let valid_end = bounds[whole].max(HEADER_LEN);
        let expected_torn = if cut < HEADER_LEN {
            cut
        } else {
            cut - bounds[whole]
        };
        assert_eq!(
            j.recovery_report().torn_bytes as usize,
            expected_torn,
            "cut at {cut}"
        );
        assert_eq!(
            file_len(&dir.path().join(&name)) as usize,
            valid_end,
            "cut at {cut}: the file must be truncated to the last valid record"
        );
        j.close().await.unwrap();
        // And it stays clean: a second open finds no torn bytes.
        let j = open(dir.path(), &big_segments(), false).await;
        assert_eq!(
            j.recovery_report().torn_bytes,
            0,
            "cut at {cut}: second open"
        );
        assert_eq!(j.take_recovered().len(), whole);
        j.close().await.unwrap();
    }
}

/// (b) Any single bit flipped in the last record makes it a torn tail: dropped, the rest kept.
#[tokio::test]
async fn bit_flips_in_the_last_record_drop_only_that_record() {
    let records = small_records();
    let (name, bytes, bounds) = pristine_segment(&records).await;
    let last_start = bounds[records.len() - 1];
    for bit in last_start * 8..bytes.len() * 8 {
        let mut bad = bytes.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let (dir, result) = open_files(&[(name.clone(), bad)], false).await;
        let j = result.unwrap_or_else(|e| panic!("bit {bit}: open failed: {e}"));
        assert_eq!(
            j.take_recovered(),
            records[..records.len() - 1].to_vec(),
            "bit {bit} (byte {} of the last record)",
            bit / 8 - last_start
        );
        assert_eq!(
            file_len(&dir.path().join(&name)) as usize,
            last_start,
            "bit {bit}"
        );
        j.close().await.unwrap();
    }
}

/// (c) Garbage after the last record (a torn write of a group never acknowledged, or a
/// preallocated tail) is cut; every record stays.
#[tokio::test]
async fn garbage_after_the_last_record_is_cut() {
    let records = small_records();
    let (name, bytes, _) = pristine_segment(&records).await;
    let mut rng = StdRng::seed_from_u64(0x5eed_0001);
    let mut tails: Vec<Vec<u8>> = vec![vec![0; 1], vec![0; 4096], vec![0xff; 100], vec![7; 8]];
    for _ in 0..40 {
        let mut tail = vec![0u8; rng.gen_range(1..300)];
        rng.fill_bytes(&mut tail);
        tails.push(tail);
    }
    // A frame header announcing a payload that never arrived.
    let mut announced = 1000u32.to_le_bytes().to_vec();
    announced.extend_from_slice(&[1, 2, 3, 4, 5, 6]);
    tails.push(announced);
    for tail in tails {
        let mut file = bytes.clone();
        file.extend_from_slice(&tail);
        let (dir, result) = open_files(&[(name.clone(), file)], false).await;
        let j = result.unwrap_or_else(|e| panic!("tail of {} bytes: open failed: {e}", tail.len()));
        assert_eq!(j.take_recovered(), records, "tail {tail:?}");
        // Zeros alone are the zero-filled end of a segment (see `zero_fill` below), not a tear.
        let torn = if tail.iter().all(|&b| b == 0) {
            0
        } else {
            tail.len()
        };
        assert_eq!(j.recovery_report().torn_bytes as usize, torn);
        assert_eq!(file_len(&dir.path().join(&name)) as usize, bytes.len());
        j.close().await.unwrap();
    }
}

/// (c2) Under `fsync` the writer zero-fills a segment ahead of its records, so that a group's
/// `fdatasync` writes no file metadata; a closed segment is cut back to its records.
#[tokio::test]
async fn fsync_segments_are_zero_filled_ahead_and_cut_to_their_records_at_close() {
    let dir = tempdir();
    let records = varied_records(40);
    let records_end = (HEADER_LEN + records.iter().map(framed_len).sum::<usize>()) as u64;
    let j = open(dir.path(), &big_segments(), false).await;
    for r in &records {
        j.append(r.clone()).await.unwrap();
    }
    let files = segment_files(dir.path());
    assert_eq!(files.len(), 1);
    let open_len = file_len(&files[0]);
    assert!(
        open_len > records_end && open_len >= 1024 * 1024,
        "a mebibyte zero-filled ahead of {records_end} bytes of records, found {open_len}"
    );
    let bytes = fs::read(&files[0]).unwrap();
    assert!(bytes[records_end as usize..].iter().all(|&b| b == 0));
    j.close().await.unwrap();
    assert_eq!(
        file_len(&files[0]),
        records_end,
        "cut to its records at close"
    );

    // Without per-group fsyncs there is nothing to gain: `os` appends.
    let dir = tempdir();
    let j = open(
        dir.path(),
        &jconfig(Durability::Os, 64 * 1024 * 1024),
        false,
    )
    .await;
    for r in &records {
        j.append(r.clone()).await.unwrap();
    }
    assert_eq!(file_len(&segment_files(dir.path())[0]), records_end);
    j.close().await.unwrap();
}

/// (c3) A crash leaves the zero-filled end on disk: recovery reads it as the end of the
/// segment (no tear, every record back, the zeros cut), and a record torn into those zeros is
/// a torn tail like any other.
#[tokio::test]
async fn zeros_left_by_a_crash_end_the_segment_and_a_record_torn_into_them_is_cut() {
    let dir = tempdir();
    let cfg = big_segments();
    let records = varied_records(50);
    let end_of =
        |rs: &[JournalRecord]| (HEADER_LEN + rs.iter().map(framed_len).sum::<usize>()) as u64;

    let j = open(dir.path(), &cfg, false).await;
    for r in &records[..25] {
        j.append(r.clone()).await.unwrap();
    }
    drop(j); // as a crash would leave it: not closed
    let first = segment_files(dir.path())[0].clone();
    assert!(
        file_len(&first) > end_of(&records[..25]),
        "zeros left past the records"
    );

    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(j.take_recovered(), records[..25].to_vec());
    assert_eq!(j.recovery_report().torn_bytes, 0, "zeros are not a tear");
    assert_eq!(
        file_len(&first),
        end_of(&records[..25]),
        "the zeros are cut"
    );
    for r in &records[25..] {
        j.append(r.clone()).await.unwrap();
    }
    drop(j);

    // Half of one more record reaches the zero-filled space before the crash.
    let second = segment_files(dir.path())[1].clone();
    let extra = put(51, "torn", "never acknowledged");
    let payload = encode_payload(&extra);
    let mut framed = (payload.len() as u32).to_le_bytes().to_vec();
    framed.extend_from_slice(&crc32c(&payload).to_le_bytes());
    framed.extend_from_slice(&payload);
    let at = end_of(&records[25..]);
    {
        use std::os::unix::fs::FileExt;
        let f = fs::OpenOptions::new().write(true).open(&second).unwrap();
        f.write_all_at(&framed[..framed.len() / 2], at).unwrap();
    }
    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(
        j.take_recovered(),
        records,
        "every acknowledged record, in order"
    );
    assert!(
        j.recovery_report().torn_bytes > 0,
        "the half record is a tear"
    );
    assert_eq!(file_len(&second), at, "cut to the last whole record");
    j.close().await.unwrap();
    let j = open(dir.path(), &cfg, false).await;
    assert_eq!(j.take_recovered(), records);
    assert_eq!(j.recovery_report().torn_bytes, 0);
    j.close().await.unwrap();
}

/// (d) A bad record with valid records after it is corruption, not a torn tail: refused
/// without `--salvage`; with it, only the bad record is skipped.
#[tokio::test]
async fn corruption_before_the_tail_needs_salvage() {
    let records = small_records();
    let (name, bytes, bounds) = pristine_segment(&records).await;
    for k in 0..records.len() - 1 {
        let start = bounds[k];
        let end = bounds[k + 1];
        let mut damages: Vec<(&str, Vec<u8>)> = Vec::new();
        let mut payload_flip = bytes.clone();
        payload_flip[(start + FRAME_LEN + end) / 2] ^= 0x10;
        damages.push(("payload byte", payload_flip));
        let mut crc_flip = bytes.clone();
        crc_flip[start + 5] ^= 0x01;
        damages.push(("crc", crc_flip));
        for (what, len) in [
            ("huge length", 0xffff_fff0u32),
            ("zero length", 0),
            ("length - 1", (end - start - FRAME_LEN - 1) as u32),
        ] {
            let mut b = bytes.clone();
            b[start..start + 4].copy_from_slice(&len.to_le_bytes());
            damages.push((what, b));
        }
        for (what, bad) in damages {
            let (_dir, refused) = open_files(&[(name.clone(), bad.clone())], false).await;
            let err = match refused {
                Ok(_) => panic!("record {k} ({what}) corrupt before the tail must be refused"),
                Err(e) => e,
            };
            assert!(
                err.to_string().contains("--salvage"),
                "record {k} ({what}): {err}"
            );

            let (_dir, salvaged) = open_files(&[(name.clone(), bad)], true).await;
            let j = salvaged.unwrap_or_else(|e| panic!("record {k} ({what}) with salvage: {e}"));
            let mut expected = records.clone();
            expected.remove(k);
            assert_eq!(
                j.take_recovered(),
                expected,
                "record {k} ({what}) with salvage"
            );
            assert_eq!(j.recovery_report().salvaged, 1);
            j.close().await.unwrap();
        }
    }
}

/// (e) Several segments: a bad header or a bad last record in a segment that is not the last
/// is corruption (only the last segment can have a torn tail).
#[tokio::test]
async fn corrupt_non_last_segments_need_salvage() {
    let dir = tempdir();
    let cfg = jconfig(Durability::Fsync, 4096);
    let records: Vec<JournalRecord> = (1..=150)
        .map(|s| put(s, &format!("key:{s}"), &"v".repeat(50)))
        .collect();
    write_journal(dir.path(), &cfg, &records).await;
    let files: Vec<(String, Vec<u8>)> = segment_files(dir.path())
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(p).unwrap(),
            )
        })
        .collect();
    assert!(
        files.len() >= 3,
        "need several segments, got {}",
        files.len()
    );
    let seqs_of = |i: usize| segment_seqs(&dir.path().join(&files[i].0));

    for victim in 0..files.len() - 1 {
        let victim_seqs = seqs_of(victim);
        // Header: magic, version, start and CRC bytes each.
        for byte in [0, 9, 13, 21] {
            let mut damaged = files.clone();
            damaged[victim].1[byte] ^= 0x40;
            let (_d, refused) = open_files(&damaged, false).await;
            let err = refused
                .err()
                .unwrap_or_else(|| panic!("segment {victim} header byte {byte}"));
            assert!(err.to_string().contains("--salvage"), "{err}");

            let (_d, salvaged) = open_files(&damaged, true).await;
            let j = salvaged.unwrap_or_else(|e| panic!("salvage of segment {victim}: {e}"));
            let expected: Vec<JournalRecord> = records
                .iter()
                .filter(|r| !victim_seqs.contains(&r.seq))
                .cloned()
                .collect();
            assert_eq!(
                j.take_recovered(),
                expected,
                "segment {victim} header byte {byte}"
            );
            j.close().await.unwrap();
        }
        // The last record of a segment that is not the last: not a torn tail.
        let mut damaged = files.clone();
        let len = damaged[victim].1.len();
        damaged[victim].1[len - 2] ^= 0x01;
        let (_d, refused) = open_files(&damaged, false).await;
        let err = refused
            .err()
            .unwrap_or_else(|| panic!("segment {victim} last record"));
        assert!(err.to_string().contains("--salvage"), "{err}");
        let (_d, salvaged) = open_files(&damaged, true).await;
        let j = salvaged.unwrap();
        let lost = *victim_seqs.last().unwrap();
        let expected: Vec<JournalRecord> =
            records.iter().filter(|r| r.seq != lost).cloned().collect();
        assert_eq!(j.take_recovered(), expected);
        j.close().await.unwrap();
    }
}

/// (f) Each segment starts where the one before it ended. A segment file that went missing,
/// or a segment cut exactly at a record boundary, loses records silently unless that is
/// checked: it must be refused without `--salvage`. A gap left by checkpoint deletion (every
/// segment before it wholly below the checkpoint) is benign.
#[tokio::test]
async fn a_missing_or_shortened_segment_needs_salvage() {
    let dir = tempdir();
    let cfg = jconfig(Durability::Fsync, 4096);
    let records: Vec<JournalRecord> = (1..=150)
        .map(|s| put(s, &format!("key:{s}"), &"v".repeat(50)))
        .collect();
    write_journal(dir.path(), &cfg, &records).await;
    let paths = segment_files(dir.path());
    let files: Vec<(String, Vec<u8>)> = paths
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                fs::read(p).unwrap(),
            )
        })
        .collect();
    let seqs: Vec<Vec<u64>> = paths.iter().map(|p| segment_seqs(p)).collect();
    assert!(
        files.len() >= 4,
        "need several segments, got {}",
        files.len()
    );
    let keep = |lost: &[u64]| -> Vec<JournalRecord> {
        records
            .iter()
            .filter(|r| !lost.contains(&r.seq))
            .cloned()
            .collect()
    };

    // A middle segment file is missing.
    let mut missing = files.clone();
    missing.remove(1);
    let (_d, refused) = open_files(&missing, false).await;
    let err = refused.err().expect("a missing segment must be refused");
    assert!(err.to_string().contains("--salvage"), "{err}");
    let (_d, salvaged) = open_files(&missing, true).await;
    let j = salvaged.expect("salvage opens");
    assert_eq!(j.take_recovered(), keep(&seqs[1]));
    j.close().await.unwrap();

    // A non-last segment cut at the boundary before its last record.
    let mut cut = files.clone();
    let last = *seqs[1].last().unwrap();
    let last_len = framed_len(&records[last as usize - 1]);
    let new_len = cut[1].1.len() - last_len;
    cut[1].1.truncate(new_len);
    let (_d, refused) = open_files(&cut, false).await;
    let err = refused.err().expect("a shortened segment must be refused");
    assert!(err.to_string().contains("--salvage"), "{err}");
    let (_d, salvaged) = open_files(&cut, true).await;
    let j = salvaged.expect("salvage opens");
    assert_eq!(j.take_recovered(), keep(&[last]));
    j.close().await.unwrap();

    // A gap inside the prefix the checkpoint made deletable (segments deleted out of order
    // by a crash) is not an error.
    let (_d, result) = {
        let d = tempdir();
        for (name, bytes) in files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 1)
            .map(|(_, f)| f)
        {
            fs::write(d.path().join(name), bytes).unwrap();
        }
        let cp = *seqs[1].last().unwrap();
        let j = open(d.path(), &big_segments(), true).await;
        j.checkpoint(cp).await.unwrap();
        drop(j);
        // Put the first segment back, as if its deletion had not reached the disk.
        fs::write(d.path().join(&files[0].0), &files[0].1).unwrap();
        let r = WalJournal::open(d.path(), &big_segments(), false).await;
        (d, r)
    };
    let j = result.expect("a gap below the checkpoint is benign");
    let cp = *seqs[1].last().unwrap();
    assert_eq!(j.take_recovered(), records[cp as usize..].to_vec());
    j.close().await.unwrap();
}

#[tokio::test]
async fn a_corrupt_checkpoint_file_is_an_error_not_a_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0002);
    for len in [0usize, 1, 27, 28, 29, 100] {
        let dir = tempdir();
        let mut bytes = vec![0u8; len];
        rng.fill_bytes(&mut bytes);
        if len >= 8 {
            bytes[..8].copy_from_slice(b"SLUICECP");
        }
        fs::write(dir.path().join("checkpoint"), bytes).unwrap();
        match WalJournal::open(dir.path(), &big_segments(), false).await {
            Ok(_) => panic!("a checkpoint file of {len} random bytes must be refused"),
            Err(e) => assert_not_a_panic(&e),
        }
    }
}

/// Random bytes as whole segment files, as segment bodies behind a valid header, and valid
/// frames around random payloads: recovery may refuse, never panic, and never invents records.
#[tokio::test]
async fn random_segment_files_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x5eed_0003);
    let (name0, pristine, _) = pristine_segment(&small_records()).await;
    let header = pristine[..HEADER_LEN].to_vec();
    let genuine: Vec<JournalRecord> = small_records();
    for case in 0..240 {
        let mut file = Vec::new();
        match case % 4 {
            // Entirely random.
            0 => {
                file.resize(rng.gen_range(0..3000), 0);
                rng.fill_bytes(&mut file);
            }
            // A valid header, random body.
            1 => {
                file.extend_from_slice(&header);
                let mut body = vec![0u8; rng.gen_range(0..3000)];
                rng.fill_bytes(&mut body);
                file.extend_from_slice(&body);
            }
            // Valid frames (correct CRC) around random payloads: exercises the decoder.
            2 => {
                file.extend_from_slice(&header);
                for _ in 0..rng.gen_range(1..20) {
                    let mut payload = vec![0u8; rng.gen_range(0..80)];
                    rng.fill_bytes(&mut payload);
                    file.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                    file.extend_from_slice(&crc32c(&payload).to_le_bytes());
                    file.extend_from_slice(&payload);
                }
            }
            // Genuine records interleaved with random chunks.
            _ => {
                file.extend_from_slice(&header);
                for r in &genuine {
                    let p = encode_payload(r);
                    file.extend_from_slice(&(p.len() as u32).to_le_bytes());
                    file.extend_from_slice(&crc32c(&p).to_le_bytes());
                    file.extend_from_slice(&p);
                    if rng.gen_bool(0.5) {
                        let mut junk = vec![0u8; rng.gen_range(1..40)];
                        rng.fill_bytes(&mut junk);
                        file.extend_from_slice(&junk);
                    }
                }
            }
        }
        // As the only (last) segment, and as a segment followed by a valid one.
        let after = format!("seg-{:020}.wal", 1u64 << 40);
        let mut next = pristine.clone();
        next[12..20].copy_from_slice(&(1u64 << 40).to_le_bytes());
        let crc = crc32c(&next[..20]);
        next[20..24].copy_from_slice(&crc.to_le_bytes());
        let layouts = [
            vec![(name0.clone(), file.clone())],
            vec![(name0.clone(), file.clone()), (after, next)],
        ];
        for layout in layouts {
            for salvage in [false, true] {
                let (_d, result) = open_files(&layout, salvage).await;
                if let Ok(j) = result {
                    for r in j.take_recovered() {
                        assert!(
                            genuine.contains(&r) || case % 4 == 2,
                            "case {case}: recovered a record never written: {r:?}"
                        );
                    }
                    j.close().await.unwrap();
                } else if salvage && case % 4 != 0 {
                    // With a valid header, salvage always opens.
                    panic!("case {case}: salvage refused: {:?}", result.err());
                }
            }
        }
    }
}

fn crc32c(bytes: &[u8]) -> u32 {
    // Castagnoli, bitwise: the tests do not depend on the journal's own CRC code.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82f6_3b78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn the_test_crc_is_crc32c() {
    // The standard check value of CRC-32C.
    assert_eq!(crc32c(b"123456789"), 0xe306_9283);
}

// ---------------------------------------------------------------------------------------------
// Engine helpers
// ---------------------------------------------------------------------------------------------

fn engine_config(data_dir: &Path) -> Config {
    let mut builtin = KeyspaceConfig::builtin(Policy::WriteBack);
    // Nothing is flushed unless the test asks.
    builtin.flush_interval = Duration::from_secs(3600);
    Config {
        data_dir: data_dir.to_path_buf(),
        journal: big_segments(),
        keyspaces: vec![builtin],
        ..Config::default()
    }
}

/// Runs one "process lifetime" on its own runtime. Whatever the future leaves running is
/// dropped with the runtime: returning without `shutdown` is a crash.
fn lifetime<T, F: Future<Output = T>>(f: impl FnOnce() -> F) -> T {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let out = rt.block_on(f());
    rt.shutdown_timeout(Duration::from_secs(5));
    out
}

async fn open_engine(data_dir: &Path) -> Sluice {
    Sluice::builder(engine_config(data_dir))
        .open()
        .await
        .unwrap_or_else(|e| panic!("engine should open: {e}"))
}

type Model = BTreeMap<(u8, Vec<u8>), Vec<u8>>;

/// The rows of `sluice_kv`, read with a plain SQLite connection.
fn stored_rows(data_dir: &Path) -> Model {
    let conn = rusqlite::Connection::open(data_dir.join("sluice.db")).expect("open sluice.db");
    let mut st = conn
        .prepare("SELECT db, key, value FROM sluice_kv")
        .expect("query sluice_kv");
    let rows = st
        .query_map([], |row| {
            Ok(((row.get::<_, i64>(0)? as u8, row.get(1)?), row.get(2)?))
        })
        .expect("rows");
    rows.map(|r| r.expect("row")).collect()
}

async fn set(s: &Sluice, db: u8, key: &[u8], value: &[u8]) {
    s.set(
        db,
        Bytes::copy_from_slice(key),
        Bytes::copy_from_slice(value),
        SetOptions::default(),
    )
    .await
    .expect("set");
}

async fn assert_reads(s: &Sluice, model: &Model, also_absent: &[(u8, Vec<u8>)]) {
    for ((db, key), value) in model {
        let got = s.get(*db, Bytes::copy_from_slice(key)).await.unwrap();
        assert_eq!(
            got.as_deref(),
            Some(&value[..]),
            "db {db} key {:?}",
            String::from_utf8_lossy(key)
        );
    }
    for (db, key) in also_absent {
        if !model.contains_key(&(*db, key.clone())) {
            let got = s.get(*db, Bytes::copy_from_slice(key)).await.unwrap();
            assert_eq!(
                got,
                None,
                "db {db} key {:?} must be absent",
                String::from_utf8_lossy(key)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 4. Replay never regresses a key
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Set {
        db: u8,
        key: u8,
        value: u8,
    },
    Del {
        db: u8,
        key: u8,
    },
    /// FLUSHDB of one database, or FLUSHALL (`None`).
    Clear {
        db: Option<u8>,
    },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        10 => (0..2u8, 0..4u8, any::<u8>()).prop_map(|(db, key, value)| Op::Set { db, key, value }),
        4 => (0..2u8, 0..4u8).prop_map(|(db, key)| Op::Del { db, key }),
        1 => prop_oneof![Just(None), (0..2u8).prop_map(Some)].prop_map(|db| Op::Clear { db }),
    ]
}

fn key_name(key: u8) -> Vec<u8> {
    format!("k{key}").into_bytes()
}

fn apply_op(model: &mut Model, op: &Op, seq: u64) {
    match op {
        Op::Set { db, key, value } => {
            model.insert((*db, key_name(*key)), format!("{value}@{seq}").into_bytes());
        }
        Op::Del { db, key } => {
            model.remove(&(*db, key_name(*key)));
        }
        Op::Clear { db } => model.retain(|(d, _), _| db.is_some_and(|c| c != *d)),
    }
}

fn op_record(op: &Op, seq: u64) -> JournalRecord {
    match op {
        Op::Set { db, key, value } => record(
            seq,
            *db,
            &key_name(*key),
            JournalOp::Write(StoreWrite::string(
                Bytes::from(format!("{value}@{seq}")),
                None,
            )),
        ),
        Op::Del { db, key } => record(
            seq,
            *db,
            &key_name(*key),
            JournalOp::Write(StoreWrite::Delete),
        ),
        Op::Clear { db } => JournalRecord::clear(
            seq,
            "default",
            db.map_or(ClearScope::AllDbs, ClearScope::Db),
        ),
    }
}

fn write_store(data_dir: &Path, rows: &Model) {
    let conn = rusqlite::Connection::open(data_dir.join("sluice.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS sluice_kv (
            db INTEGER NOT NULL,
            key BLOB NOT NULL,
            value BLOB NOT NULL,
            expires_at INTEGER,
            PRIMARY KEY (db, key)
        ) WITHOUT ROWID;",
    )
    .unwrap();
    for ((db, key), value) in rows {
        conn.execute(
            "INSERT INTO sluice_kv (db, key, value) VALUES (?1, ?2, ?3)",
            rusqlite::params![*db as i64, key, value],
        )
        .unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        // 32 by default; PROPTEST_CASES=N for a longer run.
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(32),
        ..ProptestConfig::default()
    })]

    /// Writes with strictly increasing seq; a prefix of them is already in sluice_kv (a
    /// partial flush; FLUSHDB clears the store before its record is journaled, so every clear
    /// is in the store); the checkpoint is at or below that prefix. Replay then flush must
    /// leave exactly the model, and a write after the restart must survive another crash.
    #[test]
    fn replay_never_regresses_a_key(
        ops in prop::collection::vec(op_strategy(), 1..40),
        gaps in prop::collection::vec(1..4u64, 40),
        stored in any::<prop::sample::Index>(),
        checkpoint in any::<prop::sample::Index>(),
        segment_size in prop_oneof![Just(512u64), Just(64 * 1024 * 1024)],
    ) {
        let mut seqs = Vec::with_capacity(ops.len());
        let mut seq = 0;
        for gap in gaps.iter().take(ops.len()) {
            seq += gap;
            seqs.push(seq);
        }
        let stored = stored.index(ops.len() + 1);
        let checkpoint_at = checkpoint.index(stored + 1);
        let checkpoint = if checkpoint_at == 0 { 0 } else { seqs[checkpoint_at - 1] };

        let mut model = Model::new();
        let mut store = Model::new();
        for (i, (op, &seq)) in ops.iter().zip(&seqs).enumerate() {
            apply_op(&mut model, op, seq);
            if i < stored || matches!(op, Op::Clear { .. }) {
                apply_op(&mut store, op, seq);
            }
        }
        let universe: Vec<(u8, Vec<u8>)> =
            (0..2).flat_map(|db| (0..4).map(move |k| (db, key_name(k)))).collect();

        let dir = tempdir();
        let data_dir = dir.path().to_path_buf();
        write_store(&data_dir, &store);
        let records: Vec<JournalRecord> =
            ops.iter().zip(&seqs).map(|(op, &seq)| op_record(op, seq)).collect();
        let (model2, universe2) = (model.clone(), universe.clone());
        lifetime(|| async move {
            let cfg = jconfig(Durability::Fsync, segment_size);
            let j = open(&data_dir.join("journal"), &cfg, false).await;
            for r in records {
                j.append(r).await.unwrap();
            }
            if checkpoint > 0 {
                j.checkpoint(checkpoint).await.unwrap();
            }
            j.close().await.unwrap();

            let s = open_engine(&data_dir).await;
            assert_reads(&s, &model2, &universe2).await;
            s.flush().await.unwrap();
            assert_eq!(stored_rows(&data_dir), model2, "sluice_kv after replay and flush");
            // A write after the restart, then a crash.
            set(&s, 0, b"after-restart", b"x").await;
        });

        let mut with_after = model.clone();
        with_after.insert((0, b"after-restart".to_vec()), b"x".to_vec());
        let data_dir = dir.path().to_path_buf();
        let expected = with_after.clone();
        lifetime(|| async move {
            let s = open_engine(&data_dir).await;
            assert_reads(&s, &expected, &universe).await;
            s.flush().await.unwrap();
            assert_eq!(stored_rows(&data_dir), expected, "sluice_kv after the second crash");
            s.shutdown().await;
        });
    }
}

/// The engine refuses a journal corrupt before its tail unless started with salvage, and
/// refuses records of a keyspace that is no longer configured.
#[test]
fn engine_open_refuses_a_corrupt_journal_unless_salvaging() {
    let dir = tempdir();
    let data_dir = dir.path().to_path_buf();
    let records: Vec<JournalRecord> = (1..=5)
        .map(|s| put(s, &format!("key:{s}"), &format!("v{s}")))
        .collect();
    let d = data_dir.clone();
    let recs = records.clone();
    lifetime(|| async move {
        write_journal(&d.join("journal"), &big_segments(), &recs).await;
    });
    // Damage record 2 of the first segment: valid records follow it.
    let first = segment_files(&data_dir.join("journal"))[0].clone();
    let mut bytes = fs::read(&first).unwrap();
    let at = HEADER_LEN + framed_len(&records[0]) + FRAME_LEN + 3;
    bytes[at] ^= 0x20;
    fs::write(&first, bytes).unwrap();

    let d = data_dir.clone();
    lifetime(|| async move {
        let refused = Sluice::builder(engine_config(&d)).open().await;
        let err = refused
            .err()
            .expect("a corrupt journal must stop the engine");
        assert!(err.to_string().contains("--salvage"), "{err}");

        let s = Sluice::builder(engine_config(&d))
            .salvage(true)
            .open()
            .await
            .expect("salvage opens");
        for r in &records {
            let got = s.get(0, r.key.clone()).await.unwrap();
            let want = (r.seq != 2).then(|| Bytes::from(format!("v{}", r.seq)));
            assert_eq!(got, want, "seq {}", r.seq);
        }
        s.shutdown().await;
    });

    // A record of a keyspace missing from the config: refused, and kept for a later start.
    let d = data_dir.clone();
    lifetime(|| async move {
        let j = open(&d.join("journal"), &big_segments(), false).await;
        let mut orphan = put(j.last_seq() + 1, "orphan", "x");
        orphan.keyspace = "removed".into();
        j.append(orphan).await.unwrap();
        j.close().await.unwrap();
        let err = Sluice::builder(engine_config(&d))
            .open()
            .await
            .err()
            .expect("records of an unknown keyspace must stop the engine");
        assert!(err.to_string().contains("keyspace"), "{err}");
        let j = open(&d.join("journal"), &big_segments(), false).await;
        assert_eq!(
            j.take_recovered().len(),
            1,
            "the orphan record stays in the journal"
        );
        j.close().await.unwrap();
    });
}

// ---------------------------------------------------------------------------------------------
// 5. End to end: crash and reopen
// ---------------------------------------------------------------------------------------------

/// Every acknowledged write-back write (durability fsync) survives a crash, flushed or not,
/// deletes included; replay then stores them.
#[test]
fn acknowledged_writes_survive_a_crash() {
    let dir = tempdir();
    let data_dir = dir.path().to_path_buf();
    let mut model = Model::new();
    for i in 0..100u32 {
        model.insert(
            ((i % 3) as u8, format!("key:{i}").into_bytes()),
            format!("v1-{i}").into_bytes(),
        );
    }
    let mut last = model.clone();
    for i in (0..100u32).step_by(3) {
        last.insert(
            ((i % 3) as u8, format!("key:{i}").into_bytes()),
            format!("v2-{i}").into_bytes(),
        );
    }
    for i in (1..100u32).step_by(5) {
        last.remove(&((i % 3) as u8, format!("key:{i}").into_bytes()));
    }
    for i in 100..150u32 {
        last.insert(
            (0, format!("key:{i}").into_bytes()),
            format!("late-{i}").into_bytes(),
        );
    }
    let universe: Vec<(u8, Vec<u8>)> = (0..150u32)
        .map(|i| ((i % 3) as u8, format!("key:{i}").into_bytes()))
        .collect();

    let (d, first, expected) = (data_dir.clone(), model.clone(), last.clone());
    lifetime(|| async move {
        let s = Arc::new(open_engine(&d).await);
        for ((db, key), value) in &first {
            set(&s, *db, key, value).await;
        }
        s.flush().await.unwrap();
        assert_eq!(stored_rows(&d), first);
        // Then concurrent writes that are acknowledged but never flushed.
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..150u32 {
            let s = s.clone();
            tasks.spawn(async move {
                let db = if i < 100 { (i % 3) as u8 } else { 0 };
                let key = Bytes::from(format!("key:{i}"));
                if i >= 100 {
                    set(&s, db, &key, format!("late-{i}").as_bytes()).await;
                } else if i % 3 == 0 {
                    set(&s, db, &key, format!("v2-{i}").as_bytes()).await;
                }
                if i < 100 && i % 5 == 1 {
                    assert!(s.del(db, &key).await.unwrap());
                }
            });
        }
        while let Some(t) = tasks.join_next().await {
            t.unwrap();
        }
        assert_reads(&s, &expected, &[]).await;
        assert!(s.journal_stats().appends >= 150);
        // Crash: no shutdown, no flush.
    });

    let (d, expected) = (data_dir.clone(), last.clone());
    lifetime(|| async move {
        let s = open_engine(&d).await;
        assert_reads(&s, &expected, &universe).await;
        s.flush().await.unwrap();
        assert_eq!(stored_rows(&d), expected);
    });
}

/// After a restart that replays nothing (a clean shutdown, or a crash after everything was
/// flushed), new writes must still be numbered above the checkpoint, or the next crash
/// would skip them as "already stored".
#[test]
fn writes_after_a_restart_survive_the_next_crash() {
    for clean_first in [true, false] {
        let dir = tempdir();
        let data_dir = dir.path().to_path_buf();
        let d = data_dir.clone();
        lifetime(|| async move {
            let s = open_engine(&d).await;
            for i in 0..20u32 {
                set(&s, 0, format!("old:{i}").as_bytes(), b"1").await;
            }
            if clean_first {
                let report = s.shutdown().await;
                assert_eq!(report.unflushed, 0);
            } else {
                s.flush().await.unwrap();
            }
        });
        let d = data_dir.clone();
        lifetime(|| async move {
            let s = open_engine(&d).await;
            set(&s, 0, b"new", b"2").await;
            set(&s, 0, b"old:3", b"3").await;
            // Crash before any flush.
        });
        let d = data_dir.clone();
        lifetime(|| async move {
            let s = open_engine(&d).await;
            assert_eq!(
                s.get(0, Bytes::from_static(b"new"))
                    .await
                    .unwrap()
                    .as_deref(),
                Some(&b"2"[..]),
                "clean_first={clean_first}"
            );
            assert_eq!(
                s.get(0, Bytes::from_static(b"old:3"))
                    .await
                    .unwrap()
                    .as_deref(),
                Some(&b"3"[..]),
                "clean_first={clean_first}"
            );
            s.flush().await.unwrap();
            let rows = stored_rows(&d);
            assert_eq!(
                rows.get(&(0, b"new".to_vec())).map(|v| &v[..]),
                Some(&b"2"[..])
            );
            assert_eq!(
                rows.get(&(0, b"old:3".to_vec())).map(|v| &v[..]),
                Some(&b"3"[..])
            );
            assert_eq!(rows.len(), 21);
        });
    }
}

/// FLUSHDB / FLUSHALL followed by a crash: the flushed keys (stored or only journaled) stay
/// gone, other databases and later writes stay.
#[test]
fn flushdb_is_not_undone_by_a_crash() {
    for flushall in [false, true] {
        let dir = tempdir();
        let data_dir = dir.path().to_path_buf();
        let d = data_dir.clone();
        lifetime(|| async move {
            let s = open_engine(&d).await;
            for i in 0..10u32 {
                set(&s, 0, format!("stored:{i}").as_bytes(), b"0").await;
                set(&s, 1, format!("stored:{i}").as_bytes(), b"1").await;
            }
            s.flush().await.unwrap();
            for i in 0..10u32 {
                set(&s, 0, format!("buffered:{i}").as_bytes(), b"0").await;
                set(&s, 1, format!("buffered:{i}").as_bytes(), b"1").await;
            }
            s.flush_db(if flushall { None } else { Some(0) })
                .await
                .unwrap();
            set(&s, 0, b"after-flush", b"kept").await;
            // Crash.
        });
        let mut expected = Model::new();
        expected.insert((0, b"after-flush".to_vec()), b"kept".to_vec());
        if !flushall {
            for i in 0..10u32 {
                expected.insert((1, format!("stored:{i}").into_bytes()), b"1".to_vec());
                expected.insert((1, format!("buffered:{i}").into_bytes()), b"1".to_vec());
            }
        }
        let universe: Vec<(u8, Vec<u8>)> = (0..2u8)
            .flat_map(|db| {
                (0..10u32).flat_map(move |i| {
                    [
                        (db, format!("stored:{i}").into_bytes()),
                        (db, format!("buffered:{i}").into_bytes()),
                    ]
                })
            })
            .collect();
        let d = data_dir.clone();
        let exp = expected.clone();
        lifetime(|| async move {
            let s = open_engine(&d).await;
            assert_reads(&s, &exp, &universe).await;
            s.flush().await.unwrap();
            assert_eq!(stored_rows(&d), exp, "flushall={flushall}");
            // And once more, after a clean restart.
            s.shutdown().await;
        });
        let d = data_dir.clone();
        lifetime(|| async move {
            let s = open_engine(&d).await;
            s.flush().await.unwrap();
            assert_eq!(
                stored_rows(&d),
                expected,
                "flushall={flushall}, second restart"
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// 6. Speed (ignored by default)
// ---------------------------------------------------------------------------------------------

fn rate(n: u64, d: Duration) -> String {
    format!("{:.0}/s", n as f64 / d.as_secs_f64())
}

/// Append throughput (durability os and fsync) and recovery speed over 1M records
/// (`JOURNAL_SPEED_RECORDS` overrides the count).
#[test]
#[ignore = "speed figures; run with --release --ignored --nocapture"]
fn journal_speed() {
    let n: u64 = std::env::var("JOURNAL_SPEED_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    const WRITERS: u64 = 64;
    const KEYS: u64 = 10_000;
    let dir = tempdir();
    let data_dir = dir.path().to_path_buf();
    let journal_dir = data_dir.join("journal");
    let value = "v".repeat(32);

    // Append, durability os: WRITERS concurrent appenders.
    let (jd, v) = (journal_dir.clone(), value.clone());
    let (append_time, stats) = lifetime(|| async move {
        let j = Arc::new(open(&jd, &jconfig(Durability::Os, 64 * 1024 * 1024), false).await);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..WRITERS {
            let (j, v) = (j.clone(), v.clone());
            tasks.spawn(async move {
                let mut seq = w + 1;
                while seq <= n {
                    j.append(put(seq, &format!("key:{}", seq % KEYS), &v))
                        .await
                        .unwrap();
                    seq += WRITERS;
                }
            });
        }
        while let Some(t) = tasks.join_next().await {
            t.unwrap();
        }
        let elapsed = started.elapsed();
        j.close().await.unwrap();
        (elapsed, j.stats())
    });
    println!(
        "append (durability os, {WRITERS} writers): {n} records, {} MiB in {append_time:.2?} = {} ({:.1} MiB/s), {} segments",
        stats.bytes >> 20,
        rate(n, append_time),
        stats.bytes as f64 / (1 << 20) as f64 / append_time.as_secs_f64(),
        stats.segments
    );

    // Recovery: open = scan + CRC + decode of every record.
    let jd = journal_dir.clone();
    let (open_time, recovered) = lifetime(|| async move {
        let started = Instant::now();
        let j = open(&jd, &big_segments(), false).await;
        let elapsed = started.elapsed();
        let recovered = j.take_recovered().len();
        j.close().await.unwrap();
        (elapsed, recovered)
    });
    assert_eq!(recovered as u64, n);
    println!(
        "recovery (WalJournal::open): {n} records in {open_time:.2?} = {}",
        rate(n, open_time)
    );

    // Engine replay: open the engine over the same journal ({KEYS} distinct keys) = recovery,
    // buffer replay and the flush of the survivors.
    let d = data_dir.clone();
    let engine_time = lifetime(|| async move {
        let started = Instant::now();
        let s = open_engine(&d).await;
        let elapsed = started.elapsed();
        assert_eq!(stored_rows(&d).len() as u64, KEYS.min(n));
        s.shutdown().await;
        elapsed
    });
    println!(
        "engine open with replay + flush: {n} records ({} keys) in {engine_time:.2?} = {}",
        KEYS.min(n),
        rate(n, engine_time)
    );

    // Append, durability fsync: group commit with 256 concurrent appenders.
    let fsync_n = (n / 20).max(1000);
    let fdir = tempdir();
    let fd = fdir.path().to_path_buf();
    let (fsync_time, fstats) = lifetime(|| async move {
        let j = Arc::new(open(&fd, &big_segments(), false).await);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..256 {
            let (j, v) = (j.clone(), value.clone());
            tasks.spawn(async move {
                let mut seq = w + 1;
                while seq <= fsync_n {
                    j.append(put(seq, &format!("key:{seq}"), &v)).await.unwrap();
                    seq += 256;
                }
            });
        }
        while let Some(t) = tasks.join_next().await {
            t.unwrap();
        }
        let elapsed = started.elapsed();
        let stats = j.stats();
        j.close().await.unwrap();
        (elapsed, stats)
    });
    println!(
        "append (durability fsync, 256 writers): {fsync_n} records in {fsync_time:.2?} = {}, {} fsyncs, {:.1} writes per fsync",
        rate(fsync_n, fsync_time),
        fstats.syncs,
        fstats.appends as f64 / fstats.syncs.max(1) as f64
    );
}

// ---------------------------------------------------------------------------------------------
// A failed write or fsync takes the journal out of service (PostgreSQL's fsync lesson: after a
// failed fsync the page cache cannot be trusted, so nothing is retried and nothing after it is
// acknowledged). Failures are injected with `JournalFaults`.
// ---------------------------------------------------------------------------------------------

/// Linux's EIO and ENOSPC.
const EIO: i32 = 5;
const ENOSPC: i32 = 28;

async fn open_faulty(
    dir: &Path,
    faults: &sluice::tiers::journal::wal::JournalFaults,
) -> WalJournal {
    WalJournal::open_with_faults(dir, &big_segments(), false, faults.clone())
        .await
        .unwrap_or_else(|e| panic!("journal in {} should open: {e}", dir.display()))
}

fn recovered_seqs(j: &WalJournal) -> Vec<u64> {
    j.take_recovered().iter().map(|r| r.seq).collect()
}

/// The checks every failure shares: the failed write's waiter is told, naming the segment
/// file and the OS error; health says failed; a later append fails at once and says to
/// restart; after a restart only the records acknowledged before the failure come back.
async fn assert_out_of_service(
    dir: &Path,
    j: WalJournal,
    failed: Result<(), JournalError>,
    os_error: &str,
    acknowledged: &[u64],
) {
    let e = failed.expect_err("an append whose write or fsync failed must not be acknowledged");
    let text = e.to_string();
    assert!(
        text.contains(".wal") || text.contains("segment"),
        "names the file: {text}"
    );
    assert!(text.contains(os_error), "names the OS error: {text}");
    let health = j.health();
    assert!(health.error().is_some(), "health reports the failure");
    let later = j.append(put(100, "later", "x")).await;
    let later = later.expect_err("a journal out of service refuses every later append");
    assert!(
        later.to_string().contains("restart Sluice"),
        "says what to do: {later}"
    );
    assert!(
        later.to_string().contains(os_error),
        "keeps the first cause: {later}"
    );
    drop(j);
    let reopened = open(dir, &big_segments(), false).await;
    assert_eq!(
        recovered_seqs(&reopened),
        acknowledged,
        "after a restart only what was acknowledged before the failure is replayed"
    );
}

#[tokio::test]
async fn a_failed_fsync_is_never_acknowledged_and_takes_the_journal_out_of_service() {
    let dir = tempdir();
    let faults = sluice::tiers::journal::wal::JournalFaults::new();
    let j = open_faulty(dir.path(), &faults).await;
    j.append(put(1, "a", "1")).await.expect("a healthy append");
    j.append(put(2, "b", "2")).await.expect("a healthy append");
    let syncs_before = faults.syncs();
    faults.fail_sync_after(0, EIO);
    let failed = j.append(put(3, "c", "3")).await;
    assert_out_of_service(dir.path(), j, failed, "os error 5", &[1, 2]).await;
    // No retry of the failed fsync: exactly one more fsync was tried.
    assert_eq!(faults.syncs(), syncs_before + 1);
}

#[tokio::test]
async fn a_failed_write_on_a_full_disk_is_never_acknowledged() {
    let dir = tempdir();
    let faults = sluice::tiers::journal::wal::JournalFaults::new();
    let j = open_faulty(dir.path(), &faults).await;
    j.append(put(1, "a", "1")).await.expect("a healthy append");
    // The failing write leaves half its bytes in the segment, as a filling disk does.
    faults.fail_write_after(0, ENOSPC);
    let failed = j.append(put(2, "b", "2")).await;
    assert_out_of_service(dir.path(), j, failed, "os error 28", &[1]).await;
}

#[tokio::test]
async fn every_waiter_of_a_failed_group_is_told() {
    let dir = tempdir();
    let faults = sluice::tiers::journal::wal::JournalFaults::new();
    let j = open_faulty(dir.path(), &faults).await;
    j.append(put(1, "a", "1")).await.expect("a healthy append");
    // Hold the writer so that the next five appends share one group, then fail its fsync.
    faults.hold();
    let acks: Vec<_> = (2..=6)
        .map(|seq| j.append(put(seq, &format!("k{seq}"), "v")))
        .collect();
    faults.fail_sync_after(0, EIO);
    faults.release();
    for (i, ack) in acks.into_iter().enumerate() {
        let e = ack
            .await
            .expect_err("no waiter of the failed group is acknowledged");
        assert!(e.to_string().contains("os error 5"), "waiter {i}: {e}");
    }
    assert!(j.health().error().is_some());
    drop(j);
    let reopened = open(dir.path(), &big_segments(), false).await;
    assert_eq!(recovered_seqs(&reopened), vec![1]);
}
