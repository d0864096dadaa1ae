//! Streams through the server: an event log under write-back stores one row per XADD (and
//! updates the stream's metadata row once per flush), a trim deletes the nodes' rows it cut,
//! and after a restart the log reads back with its last ID; an expired stream leaves no row;
//! redis-py keeps an event log and follows it with blocking XREAD, and runs a job queue on
//! consumer groups (workers, crash recovery with XPENDING / XCLAIM / XAUTOCLAIM, XINFO),
//! both checked against redis-server (`SLUICE_TEST_REDIS_URL`) first. Replies are compared
//! with redis-server in `differential.rs`, blocking across connections in `blocking.rs`,
//! SIGKILL in `crash.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{
    count_member_writes, counters, elements, flushed_on_demand, member_writes, pipeline,
    redis_py_against_oracle_then_sluice, show, TestServer,
};
use sluice::Durability;

/// How many rows `sluice_members` holds for `key` (db 0), and how many of them are entries
/// (the metadata row is the one with an empty member).
fn stored_rows(db: &rusqlite::Connection, key: &str) -> (i64, i64) {
    let n = |sql: &str| {
        db.query_row(sql, [key], |r| r.get::<_, i64>(0))
            .expect("count")
    };
    (
        n("SELECT count(*) FROM sluice_members WHERE db = 0 AND key = CAST(?1 AS BLOB)"),
        n(
            "SELECT count(*) FROM sluice_members WHERE db = 0 AND key = CAST(?1 AS BLOB) \
           AND length(member) = 16",
        ),
    )
}

/// The IDs of an XRANGE reply.
fn ids(reply: &[u8]) -> Vec<String> {
    elements(reply)
        .iter()
        .map(|entry| {
            let id = &elements(entry)[0];
            let text = String::from_utf8(id.clone()).expect("utf-8");
            text.split("\r\n").nth(1).expect("a bulk ID").to_string()
        })
        .collect()
}

/// An event log: 10,000 XADD to one key under write-back coalesce into one flush that inserts
/// one row per entry and updates the metadata row once; XTRIM to the last 100 deletes the rows
/// of the 99 nodes it cut, marks one entry deleted and writes nothing else; after a restart the log reads back and its
/// last ID still refuses an older one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_log_under_write_back_stores_one_row_per_entry() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut c) = flushed_on_demand(dir.path()).await;
    // The stream exists before the counted flush, as a log does.
    assert_eq!(c.run("XADD events 1-0 kind start").await, b"$3\r\n1-0\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let db = server.sqlite();
    count_member_writes(&db);

    const ADDS: usize = 10_000;
    let before = counters(&mut c).await;
    let started = Instant::now();
    let commands: Vec<Vec<Vec<u8>>> = (0..ADDS)
        .map(|i| {
            vec![
                b"XADD".to_vec(),
                b"events".to_vec(),
                format!("{}-0", i + 2).into_bytes(),
                b"user".to_vec(),
                format!("u{}", i % 37).into_bytes(),
                b"page".to_vec(),
                format!("/p/{i}").into_bytes(),
            ]
        })
        .collect();
    let replies = pipeline(&mut c, &commands).await;
    for (i, reply) in replies.iter().enumerate() {
        let id = format!("{}-0", i + 2);
        assert_eq!(
            show(reply),
            format!("${}\\r\\n{id}\\r\\n", id.len()),
            "XADD #{i}"
        );
    }
    let added_in = started.elapsed();
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let after = counters(&mut c).await;
    let [inserted, updated, deleted] = member_writes(&db);
    eprintln!(
        "{ADDS} XADD in {added_in:?}: {} writes, {} flush(es) storing {} entry(ies), \
         {inserted} rows inserted ({:.4} per XADD), {updated} updated, {deleted} deleted",
        after.writes - before.writes,
        after.flushes - before.flushes,
        after.rows_stored - before.rows_stored,
        inserted as f64 / ADDS as f64,
    );
    assert_eq!(after.writes - before.writes, ADDS as u64);
    assert_eq!(after.flushes - before.flushes, 1, "one flush: {after:?}");
    assert_eq!(
        [inserted, updated, deleted],
        [ADDS as i64, 1, 0],
        "one row per entry, and the metadata row once"
    );
    assert_eq!(
        stored_rows(&db, "events"),
        (ADDS as i64 + 2, ADDS as i64 + 1)
    );

    // Keep the last 100 of 10,001: the entries are 100 per node, so 99 whole nodes go (their
    // rows deleted) and the next node's first entry is marked deleted (its row updated).
    assert_eq!(c.run("XTRIM events MAXLEN 100").await, b":9901\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let [inserted2, updated2, deleted2] = member_writes(&db);
    assert_eq!(
        [inserted2 - inserted, updated2 - updated, deleted2 - deleted],
        [0, 2, 9900],
        "XTRIM deletes the nodes it cut, marks one entry and updates the metadata"
    );
    assert_eq!(stored_rows(&db, "events"), (102, 101));
    drop(db);
    let last = c.run("XREVRANGE events + - COUNT 3").await;
    server.stop().await;

    let server = TestServer::start_in(dir.path(), Durability::Fsync).await;
    let mut c = server.client().await;
    assert_eq!(c.run("XLEN events").await, b":100\r\n");
    assert_eq!(c.run("XREVRANGE events + - COUNT 3").await, last);
    assert_eq!(
        ids(&c.run("XRANGE events - + COUNT 2").await),
        ["9902-0", "9903-0"]
    );
    assert_eq!(
        c.run("XADD events 5-0 late x").await,
        b"-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"
    );
    assert_eq!(c.run("TYPE events").await, b"+stream\r\n");
    server.stop().await;
}

/// A stream that expires leaves no row once the reaper has seen it, and XADD at a key whose
/// expired rows are still in the table makes a new stream: its IDs start again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_stream_leaves_no_rows() {
    let server = TestServer::start_with(Durability::Os).await;
    let mut c = server.client().await;
    let db = server.sqlite();
    c.run("XADD gone 5-0 a b").await;
    c.run("XADD old 5-0 a b").await;
    assert_eq!(c.run("PEXPIRE gone 100").await, b":1\r\n");
    assert_eq!(c.run("PEXPIRE old 100").await, b":1\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    assert_eq!(stored_rows(&db, "gone"), (2, 1));
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(c.run("XLEN old").await, b":0\r\n");
    assert_eq!(c.run("XADD old 1-0 new x").await, b"$3\r\n1-0\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    assert_eq!(stored_rows(&db, "old"), (2, 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while stored_rows(&db, "gone") != (0, 0) {
        assert!(Instant::now() < deadline, "the expired stream's rows stay");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.stop().await;
}

/// redis-py: an event log with XADD (explicit and automatic IDs, MAXLEN ~ and =), XRANGE,
/// XREVRANGE, XTRIM, XDEL, XREAD at once and blocking until another connection adds, pipelines,
/// in RESP2 and RESP3. The script runs against redis-server first, then against Sluice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_streams() {
    redis_py_against_oracle_then_sluice("redis_py_streams.py").await;
}

/// redis-py: a job queue on consumer groups. XGROUP CREATE (MKSTREAM, "0" and "$", BUSYGROUP);
/// three worker threads on their own connections XREADGROUP ">" with BLOCK and XACK, each job
/// delivered exactly once; a crashed worker's jobs found with XPENDING (summary, range,
/// consumer and IDLE filters) and recovered with XCLAIM (JUSTID) and an XAUTOCLAIM cursor
/// loop, with delivery counts and deleted entries as Redis reports them; a restarted worker's
/// history read with "0"; XINFO GROUPS / CONSUMERS / STREAM (and FULL); XGROUP SETID,
/// CREATECONSUMER, DELCONSUMER, DESTROY; a blocked read woken by another connection's XADD,
/// timing out, and unblocked with an error when its group or key goes; NOACK; MULTI and
/// pipelines; in RESP2 and RESP3. The script runs against redis-server first, then against
/// Sluice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_stream_groups() {
    redis_py_against_oracle_then_sluice("redis_py_stream_groups.py").await;
}
