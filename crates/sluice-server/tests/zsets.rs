//! Sorted sets through the server: a leaderboard under write-back stores one row per changed
//! member per flush, not the board; ZSCAN's paging (its cursors are Sluice's own, so the
//! differential suite compares only whole pages); real clients (redis-py, ioredis) keeping a
//! leaderboard. Replies are compared with redis-server in `differential.rs`; storage and
//! recovery are covered in the engine's `zsets_proptest.rs` and in `crash.rs`.

mod common;

use std::collections::BTreeMap;

use common::{clients_dir, encode, node_with_ioredis, python_with_redis, run_client, TestServer};

/// The bulk strings of a RESP2 reply, in order.
fn bulk_items(reply: &[u8]) -> Vec<Vec<u8>> {
    let mut lines = reply
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let mut out = Vec::new();
    while let Some(line) = lines.next() {
        if line.first() == Some(&b'$') && line != b"$-1" {
            out.push(lines.next().unwrap_or_default().to_vec());
        }
    }
    out
}

/// The leaderboard of the design note: 10,000 ZINCRBY over 100 players of a 1,000-player board,
/// under write-back. One flush stores one upsert per changed player (counted by a trigger on
/// `sluice_members`): 0.01 rows per update. Every stored score is then the board's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaderboard_under_write_back_stores_changed_members_only() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut zadd: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"board".to_vec()];
    for i in 0..1000 {
        zadd.push(b"0".to_vec());
        zadd.push(format!("player{i}").into_bytes());
    }
    let zadd: Vec<&[u8]> = zadd.iter().map(Vec::as_slice).collect();
    assert_eq!(c.cmd(&zadd).await, b":1000\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");

    // Only SLUICE.FLUSH flushes from here on, so the count below is that of one flush.
    let set = c
        .run("CONFIG SET sluice-flush_interval 3600000 sluice-flush_batch 100000")
        .await;
    assert_eq!(set, b"+OK\r\n");
    let db = server.sqlite();
    db.execute_batch(
        "CREATE TABLE member_writes (n INTEGER NOT NULL);
         INSERT INTO member_writes VALUES (0);
         CREATE TRIGGER count_inserts AFTER INSERT ON sluice_members
         BEGIN UPDATE member_writes SET n = n + 1; END;
         CREATE TRIGGER count_updates AFTER UPDATE ON sluice_members
         BEGIN UPDATE member_writes SET n = n + 1; END;",
    )
    .expect("counting triggers");

    const UPDATES: usize = 10_000;
    let mut expected: BTreeMap<String, f64> =
        (0..1000).map(|i| (format!("player{i}"), 0.0)).collect();
    let mut batch = Vec::new();
    for u in 0..UPDATES {
        let player = format!("player{}", (u * 7919) % 100);
        let points = (u % 5 + 1) as f64;
        *expected.get_mut(&player).unwrap() += points;
        batch.extend(encode(&[
            b"ZINCRBY",
            b"board",
            points.to_string().as_bytes(),
            player.as_bytes(),
        ]));
        if batch.len() > 64 * 1024 || u + 1 == UPDATES {
            let n = batch.iter().filter(|&&b| b == b'*').count();
            c.send(&batch).await;
            c.replies(n).await;
            batch.clear();
        }
    }
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");

    let written: i64 = db
        .query_row("SELECT n FROM member_writes", [], |r| r.get(0))
        .expect("count");
    let per_update = written as f64 / UPDATES as f64;
    eprintln!("{UPDATES} ZINCRBY over 100 players: {written} member rows written ({per_update:.4} per update)");
    // One row per changed player: the board's other 900 rows are never rewritten, and a
    // player's updates coalesce into one upsert.
    assert_eq!(
        written, 100,
        "{written} rows for {UPDATES} updates of 100 players"
    );

    let mut st = db
        .prepare("SELECT member, score FROM sluice_members WHERE key = CAST('board' AS BLOB)")
        .expect("prepare");
    let stored: BTreeMap<String, f64> = st
        .query_map([], |r| {
            Ok((
                String::from_utf8(r.get::<_, Vec<u8>>(0)?).expect("utf-8"),
                r.get::<_, f64>(1)?,
            ))
        })
        .expect("query")
        .map(|r| r.expect("row"))
        .collect();
    assert_eq!(stored, expected, "the stored board is the cached one");
    let top = c
        .cmd(&[b"ZREVRANGE", b"board", b"0", b"0", b"WITHSCORES"])
        .await;
    let best = expected.values().cloned().fold(f64::MIN, f64::max);
    assert_eq!(bulk_items(&top)[1], best.to_string().into_bytes());
    server.stop().await;
}

/// A sorted set too big for one listpack is paged by COUNT; following the cursor to 0 returns
/// every member exactly once, with its score.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zscan_pages_a_big_sorted_set_and_returns_every_member_once() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut zadd: Vec<Vec<u8>> = vec![b"ZADD".to_vec(), b"big".to_vec()];
    for i in 0..1000 {
        zadd.push(format!("{i}.5").into_bytes());
        zadd.push(format!("m{i}").into_bytes());
    }
    let zadd: Vec<&[u8]> = zadd.iter().map(Vec::as_slice).collect();
    assert_eq!(c.cmd(&zadd).await, b":1000\r\n");
    let mut seen = BTreeMap::new();
    let mut cursor = 0u64;
    let mut pages = 0;
    loop {
        let reply = c
            .cmd(&[
                b"ZSCAN",
                b"big",
                cursor.to_string().as_bytes(),
                b"COUNT",
                b"9",
            ])
            .await;
        let mut items = bulk_items(&reply);
        cursor = String::from_utf8(items.remove(0)).unwrap().parse().unwrap();
        assert!(
            items.len() <= 2 * 10,
            "a page holds COUNT members (ties aside)"
        );
        for pair in items.chunks(2) {
            let old = seen.insert(pair[0].clone(), pair[1].clone());
            assert!(old.is_none(), "{:?} returned twice", pair[0]);
        }
        pages += 1;
        if cursor == 0 {
            break;
        }
    }
    assert!(pages >= 1000 / 10, "{pages} pages");
    assert_eq!(seen.len(), 1000);
    assert_eq!(seen[&b"m7".to_vec()], b"7.5".to_vec());
    server.stop().await;
}

/// redis-py: a leaderboard in RESP2 and RESP3 (float scores), `zscan_iter` to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_zsets() {
    if !python_with_redis() {
        return;
    }
    let server = TestServer::start().await;
    let script = clients_dir().join("redis_py_zsets.py");
    let port = server.port().to_string();
    run_client("python3", &[script.to_str().unwrap(), "--port", &port]).await;
    server.stop().await;
}

/// ioredis: sorted-set commands, `zscanStream` to the end, a MULTI with ZADD and ZPOPMIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_zsets() {
    if !node_with_ioredis() {
        return;
    }
    let server = TestServer::start().await;
    let script = clients_dir().join("node/zsets.js");
    let port = server.port().to_string();
    run_client("node", &[script.to_str().unwrap(), &port]).await;
    server.stop().await;
}
