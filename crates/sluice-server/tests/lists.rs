//! Lists through the server: an activity log under write-back stores one row per element
//! pushed, in one flush, and a trim deletes the rows it cut; a job queue drained by BRPOP from
//! two connections hands out every job once and leaves no row behind; an expired list leaves
//! no row; random list commands answer as a redis-server of the test's own and are stored as
//! it holds the lists; real clients (redis-py, ioredis) use lists as applications do, each
//! script checked against redis-server (`SLUICE_TEST_REDIS_URL`) first. Replies are compared
//! with redis-server in `differential.rs`, keyspace events in `pubsub.rs`, and blocking across
//! connections in `blocking.rs`.

mod common;

use std::collections::BTreeSet;
use std::time::Instant;

use common::{
    bulk_items, clients_dir, count_member_writes, counters, flushed_on_demand, member_writes,
    node_with_ioredis, oracle, pipeline, redis_py_against_oracle_then_sluice, run_client, show,
    RawClient, TestServer,
};
use sluice::Durability;

/// The elements the built-in table stores for `key` (db 0), in list order (a row's `member`
/// is its position, whose bytes sort as the list does).
fn stored_elements(db: &rusqlite::Connection, key: &str) -> Vec<Vec<u8>> {
    let mut st = db
        .prepare(
            "SELECT value FROM sluice_members WHERE db = 0 AND key = CAST(?1 AS BLOB) \
             ORDER BY member",
        )
        .expect("prepare");
    st.query_map([key], |r| r.get::<_, Vec<u8>>(0))
        .expect("query")
        .map(|r| r.expect("row"))
        .collect()
}

/// Whether the built-in table has a key row for `key` (db 0).
fn key_row_exists(db: &rusqlite::Connection, key: &str) -> bool {
    db.query_row(
        "SELECT count(*) FROM sluice_kv WHERE db = 0 AND key = CAST(?1 AS BLOB)",
        [key],
        |r| r.get::<_, i64>(0),
    )
    .expect("count")
        > 0
}

/// An activity log: 10,000 RPUSH to one key under write-back coalesce into one flush that
/// inserts one member row per element (counted by triggers on `sluice_members`), 1.0 row per
/// push and nothing rewritten; LTRIM to the last 100 then deletes exactly the 9,900 rows it
/// cut and writes no other; after a restart LRANGE reads the log back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_activity_log_under_write_back_stores_one_row_per_element() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Only SLUICE.FLUSH flushes from here on, so the counts below are those of one flush.
    let (server, mut c) = flushed_on_demand(dir.path()).await;
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let db = server.sqlite();
    count_member_writes(&db);

    const PUSHES: usize = 10_000;
    let model: Vec<Vec<u8>> = (0..PUSHES)
        .map(|i| format!("{{\"event\":{i},\"user\":\"u{}\"}}", i % 37).into_bytes())
        .collect();
    let before = counters(&mut c).await;
    let started = Instant::now();
    let commands: Vec<Vec<Vec<u8>>> = model
        .iter()
        .map(|e| vec![b"RPUSH".to_vec(), b"activity".to_vec(), e.clone()])
        .collect();
    let replies = pipeline(&mut c, &commands).await;
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(show(reply), format!(":{}\\r\\n", i + 1), "RPUSH #{i}");
    }
    let pushed_in = started.elapsed();
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let after = counters(&mut c).await;
    let [inserted, updated, deleted] = member_writes(&db);
    eprintln!(
        "{PUSHES} RPUSH in {pushed_in:?}: {} writes, {} flush(es) storing {} entry(ies), \
         {inserted} member rows inserted ({:.4} per push), {updated} updated, {deleted} deleted",
        after.writes - before.writes,
        after.flushes - before.flushes,
        after.rows_stored - before.rows_stored,
        inserted as f64 / PUSHES as f64,
    );
    assert_eq!(after.writes - before.writes, PUSHES as u64);
    assert_eq!(after.flushes - before.flushes, 1, "one flush: {after:?}");
    assert_eq!(
        after.rows_stored - before.rows_stored,
        1,
        "the pushes coalesced into one buffered entry for the key"
    );
    assert_eq!(
        [inserted, updated, deleted],
        [PUSHES as i64, 0, 0],
        "one row per element, none rewritten"
    );
    assert_eq!(stored_elements(&db, "activity"), model, "the stored log");

    // Keep the last 100: the 9,900 rows cut are deleted, the 100 kept are not touched.
    assert_eq!(c.run("LTRIM activity -100 -1").await, b"+OK\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let trimmed = counters(&mut c).await;
    assert_eq!(trimmed.flushes - after.flushes, 1, "one flush: {trimmed:?}");
    let [inserted2, updated2, deleted2] = member_writes(&db);
    assert_eq!(
        [inserted2 - inserted, updated2 - updated, deleted2 - deleted],
        [0, 0, (PUSHES - 100) as i64],
        "LTRIM deletes the rows it cut and writes no other"
    );
    let model = model[PUSHES - 100..].to_vec();
    assert_eq!(stored_elements(&db, "activity"), model, "the trimmed log");
    drop(db);
    server.stop().await;

    // After a restart the log reads back from the store.
    let server = TestServer::start_in(dir.path(), Durability::Fsync).await;
    let mut c = server.client().await;
    assert_eq!(c.run("LLEN activity").await, b":100\r\n");
    assert_eq!(bulk_items(&c.run("LRANGE activity 0 -1").await), model);
    assert_eq!(
        bulk_items(&c.run("LRANGE activity -3 -1").await),
        model[97..].to_vec()
    );
    assert_eq!(c.run("TYPE activity").await, b"+list\r\n");
    server.stop().await;
}

/// A new log pushed to while flushes run all the time (each one finds the key rewritten while
/// it was in flight): the first flush stores the new list whole, and every later one only the
/// elements pushed since, so each element's row is inserted once and none is deleted or
/// rewritten (before, a list that began as a whole value stayed one while it was hot, and each
/// flush deleted and inserted every row again).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_log_pushed_to_during_every_flush_stores_each_element_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, mut c) = flushed_on_demand(dir.path()).await;
    let db = server.sqlite();
    count_member_writes(&db);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flusher = {
        let mut f = server.client().await;
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut flushes = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                assert_eq!(f.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
                flushes += 1;
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            flushes
        })
    };
    const PUSHES: usize = 6_000;
    let model: Vec<Vec<u8>> = (0..PUSHES).map(|i| format!("e{i}").into_bytes()).collect();
    for chunk in model.chunks(200) {
        let commands: Vec<Vec<Vec<u8>>> = chunk
            .iter()
            .map(|e| vec![b"RPUSH".to_vec(), b"hotlog".to_vec(), e.clone()])
            .collect();
        pipeline(&mut c, &commands).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let flushes = flusher.await.expect("the flusher");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let [inserted, updated, deleted] = member_writes(&db);
    assert_eq!(
        [inserted, updated, deleted],
        [PUSHES as i64, 0, 0],
        "each element's row inserted once over {flushes} flushes"
    );
    assert_eq!(stored_elements(&db, "hotlog"), model);
    server.stop().await;
}

/// A job queue: 1,000 jobs LPUSHed (and stored) are drained by BRPOP from two connections at
/// once; every job is handed out exactly once, each worker gets its jobs in the order they
/// were queued, and after a flush the store holds no row for the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_queue_drained_by_two_brpop_workers_hands_out_every_job_once() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    const JOBS: usize = 1000;
    let commands: Vec<Vec<Vec<u8>>> = (0..JOBS)
        .map(|i| {
            vec![
                b"LPUSH".to_vec(),
                b"jobs".to_vec(),
                format!("job:{i:04}").into_bytes(),
            ]
        })
        .collect();
    let replies = pipeline(&mut c, &commands).await;
    assert_eq!(replies.last().unwrap(), format!(":{JOBS}\r\n").as_bytes());
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    let db = server.sqlite();
    assert_eq!(
        stored_elements(&db, "jobs").len(),
        JOBS,
        "the queue is stored"
    );

    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut w = server.client().await;
        workers.push(tokio::spawn(async move {
            let mut taken = Vec::new();
            loop {
                // A short timeout: the nil after it says the queue stayed empty.
                let reply = w.run("BRPOP jobs 0.5").await;
                if reply == b"*-1\r\n" {
                    return taken;
                }
                let items = bulk_items(&reply);
                assert_eq!(items.len(), 2, "{}", show(&reply));
                assert_eq!(items[0], b"jobs");
                taken.push(String::from_utf8(items[1].clone()).unwrap());
            }
        }));
    }
    let mut all = Vec::new();
    for (i, w) in workers.into_iter().enumerate() {
        let taken = w.await.expect("worker");
        let mut sorted = taken.clone();
        sorted.sort();
        assert_eq!(taken, sorted, "worker {i} got its jobs in queue order");
        eprintln!("worker {i} took {} jobs", taken.len());
        all.extend(taken);
    }
    eprintln!("{JOBS} jobs drained in {:?}", started.elapsed());
    assert_eq!(all.len(), JOBS, "every job handed out once");
    let distinct: BTreeSet<&String> = all.iter().collect();
    assert_eq!(distinct.len(), JOBS, "no job handed out twice");
    assert_eq!(c.run("EXISTS jobs").await, b":0\r\n");

    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    assert!(
        stored_elements(&db, "jobs").is_empty(),
        "no member row left"
    );
    assert!(!key_row_exists(&db, "jobs"), "no key row left");
    server.stop().await;
}

/// A list that expires leaves no row once the reaper or a flush has seen it; a list pushed
/// at a key whose expired rows are still in the table replaces them, the old elements never
/// coming back (after a restart either).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_list_leaves_no_rows_and_a_new_list_replaces_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(dir.path(), Durability::Os).await;
    let mut c = server.client().await;
    let db = server.sqlite();
    assert_eq!(c.run("RPUSH old a b c").await, b":3\r\n");
    assert_eq!(c.run("RPUSH gone a b").await, b":2\r\n");
    assert_eq!(c.run("PEXPIRE old 100").await, b":1\r\n");
    assert_eq!(c.run("PEXPIRE gone 100").await, b":1\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    assert_eq!(
        stored_elements(&db, "old").len(),
        3,
        "stored with its expiry"
    );
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    // Expired: a push makes a new list there, of its own elements only.
    assert_eq!(c.run("LLEN old").await, b":0\r\n");
    assert_eq!(c.run("RPUSH old new").await, b":1\r\n");
    assert_eq!(c.run("TTL old").await, b":-1\r\n");
    assert_eq!(c.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    assert_eq!(stored_elements(&db, "old"), vec![b"new".to_vec()]);
    // Left alone: the reaper (every second) purges the key and its rows.
    let deadline = Instant::now() + std::time::Duration::from_secs(10);
    while key_row_exists(&db, "gone") || !stored_elements(&db, "gone").is_empty() {
        assert!(Instant::now() < deadline, "the expired list's rows stay");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(c.run("EXISTS gone").await, b":0\r\n");
    drop(db);
    server.stop().await;
    let server = TestServer::start_in(dir.path(), Durability::Os).await;
    let mut c = server.client().await;
    assert_eq!(
        bulk_items(&c.run("LRANGE old 0 -1").await),
        vec![b"new".to_vec()]
    );
    assert_eq!(c.run("EXISTS gone").await, b":0\r\n");
    server.stop().await;
}

/// A small deterministic generator (xorshift64*), so a failing seed replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }

    fn index(&mut self) -> String {
        (self.below(13) as i64 - 6).to_string()
    }
}

const KEYS: &[&str] = &["l0", "l1", "l2", "l3"];
const SIDES: &[&str] = &["LEFT", "RIGHT"];

/// One random command on the lists of [`KEYS`], as its arguments. Elements come from a small
/// alphabet (so pivots and LREM find them), with an empty and a binary one.
fn random_command(rng: &mut Rng) -> Vec<Vec<u8>> {
    let element = |rng: &mut Rng| -> Vec<u8> {
        match rng.below(12) {
            0 => Vec::new(),
            1 => b"\x00bin\xff\r\n".to_vec(),
            2 => vec![b'L'; 100],
            n => vec![b'a' + (n as u8 % 5)],
        }
    };
    let key = |rng: &mut Rng| rng.pick(KEYS).as_bytes().to_vec();
    let word = |w: &str| w.as_bytes().to_vec();
    let mut c: Vec<Vec<u8>> = Vec::new();
    match rng.below(40) {
        0..=9 => {
            c.push(word(rng.pick(&["LPUSH", "RPUSH"])));
            c.push(key(rng));
            for _ in 0..=rng.below(4) {
                c.push(element(rng));
            }
        }
        10 => {
            c.push(word(rng.pick(&["LPUSHX", "RPUSHX"])));
            c.push(key(rng));
            c.push(element(rng));
        }
        11..=12 => {
            c.push(word(rng.pick(&["LPOP", "RPOP"])));
            c.push(key(rng));
            if rng.below(2) == 0 {
                c.push(word(&rng.below(4).to_string()));
            }
        }
        13 => {
            c.extend([word("LSET"), key(rng), word(&rng.index())]);
            c.push(element(rng));
        }
        14..=17 => {
            c.extend([
                word("LINSERT"),
                key(rng),
                word(rng.pick(&["BEFORE", "AFTER"])),
            ]);
            c.push(element(rng));
            c.push(element(rng));
        }
        18 => {
            c.extend([word("LREM"), key(rng), word(&rng.index())]);
            c.push(element(rng));
        }
        19 => c.extend([
            word("LTRIM"),
            key(rng),
            word(&rng.index()),
            word(&rng.index()),
        ]),
        20..=21 => c.extend([
            word("LMOVE"),
            key(rng),
            key(rng),
            word(rng.pick(SIDES)),
            word(rng.pick(SIDES)),
        ]),
        22 => c.extend([word("RPOPLPUSH"), key(rng), key(rng)]),
        23 => {
            c.extend([
                word("LMPOP"),
                word("2"),
                key(rng),
                key(rng),
                word(rng.pick(SIDES)),
            ]);
            if rng.below(2) == 0 {
                c.extend([word("COUNT"), word(&(1 + rng.below(3)).to_string())]);
            }
        }
        24..=25 => c.extend([
            word("LRANGE"),
            key(rng),
            word(&rng.index()),
            word(&rng.index()),
        ]),
        26 => c.extend([word("LINDEX"), key(rng), word(&rng.index())]),
        27..=28 => {
            c.extend([word("LPOS"), key(rng)]);
            c.push(element(rng));
            if rng.below(2) == 0 {
                c.extend([word("RANK"), word(rng.pick(&["1", "2", "-1", "-2"]))]);
            }
            if rng.below(2) == 0 {
                c.extend([word("COUNT"), word(rng.pick(&["0", "1", "2"]))]);
            }
            if rng.below(3) == 0 {
                c.extend([word("MAXLEN"), word(rng.pick(&["0", "1", "3"]))]);
            }
        }
        29 => c.extend([word(rng.pick(&["LLEN", "TYPE", "EXISTS"])), key(rng)]),
        // Served at once or nil after 10 ms: the blocking forms without blocking for long.
        30 => c.extend([
            word(rng.pick(&["BLPOP", "BRPOP"])),
            key(rng),
            key(rng),
            word("0.01"),
        ]),
        31 => c.extend([
            word("BLMOVE"),
            key(rng),
            key(rng),
            word(rng.pick(SIDES)),
            word(rng.pick(SIDES)),
            word("0.01"),
        ]),
        32 => c.extend([
            word("BLMPOP"),
            word("0.01"),
            word("1"),
            key(rng),
            word(rng.pick(SIDES)),
        ]),
        // The key as a whole: renamed, copied, given a TTL, deleted or given another type.
        33 => c.extend([word(rng.pick(&["RENAME", "RENAMENX"])), key(rng), key(rng)]),
        34 => c.extend([word("COPY"), key(rng), key(rng), word("REPLACE")]),
        35 => c.extend([word("EXPIRE"), key(rng), word("100000")]),
        36 => c.extend([word("PERSIST"), key(rng)]),
        37 => c.extend([word("DEL"), key(rng)]),
        38 => c.extend([word("BRPOPLPUSH"), key(rng), key(rng), word("0.01")]),
        _ if rng.below(3) == 0 => c.extend([word("SET"), key(rng), word("not a list")]),
        _ => c.extend([word("LRANGE"), key(rng), word("0"), word("-1")]),
    }
    c
}

/// Runs `argv` on both servers; a report if they answered differently.
async fn on_both(
    redis: &mut RawClient,
    sluice: &mut RawClient,
    argv: &[Vec<u8>],
) -> Result<Vec<u8>, String> {
    let args: Vec<&[u8]> = argv.iter().map(Vec::as_slice).collect();
    let (r, s) = (redis.cmd(&args).await, sluice.cmd(&args).await);
    let line = argv.iter().map(|a| show(a)).collect::<Vec<_>>().join(" ");
    match common::mismatch(&line, &r, &s) {
        None => Ok(r),
        Some(report) => Err(report),
    }
}

/// After SLUICE.FLUSH, the built-in table holds every list as redis-server holds it (its rows
/// in order, no row for a key that is no list), and Sluice serves the same.
async fn assert_stored_as_redis(
    redis: &mut RawClient,
    sluice: &mut RawClient,
    db: &rusqlite::Connection,
    context: &str,
) {
    assert_eq!(sluice.cmd(&[b"SLUICE.FLUSH"]).await, b"+OK\r\n");
    for key in KEYS {
        let kind = redis.cmd(&[b"TYPE", key.as_bytes()]).await;
        let expected = if kind == b"+list\r\n" {
            bulk_items(&redis.cmd(&[b"LRANGE", key.as_bytes(), b"0", b"-1"]).await)
        } else {
            Vec::new()
        };
        assert_eq!(
            stored_elements(db, key),
            expected,
            "{context}: the rows stored for {key} ({})",
            show(&kind)
        );
    }
}

/// Random list commands (and the key-level commands that move, copy, retype or delete a list),
/// single and inside MULTI, answer byte for byte as a redis-server of the test's own; after
/// every 100 the built-in table, flushed, holds each list as Redis does, whether background
/// flushes race the commands or the writes coalesce until SLUICE.FLUSH (LINSERTs at one spot
/// included, which use up the gap between two positions and renumber the list); after a
/// restart every list reads back. Prints the seed and the last commands on a mismatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_list_commands_match_redis_and_are_stored_as_redis_holds_them() {
    let Some(own) = common::OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let dir = tempfile::tempdir().expect("temp dir");
    let started = Instant::now();
    let mut server = TestServer::start_in(dir.path(), Durability::Os).await;
    let mut redis = RawClient::try_connect(&own.addr).await.expect("redis");
    let mut sluice = server.client().await;
    let db = server.sqlite();
    let mut commands = 0;
    // Each seed under its own flushing: background flushes every millisecond, racing the
    // commands; every second (the default); only SLUICE.FLUSH, so that writes coalesce.
    for (seed, flush_interval) in [
        (0x5eed_0001_u64, "1"),
        (0x5eed_0002, "1000"),
        (0x5eed_0003, "3600000"),
    ] {
        let set = sluice
            .run(&format!(
                "CONFIG SET sluice-flush_interval {flush_interval}"
            ))
            .await;
        assert_eq!(set, b"+OK\r\n");
        let mut rng = Rng(seed);
        let mut history: Vec<String> = Vec::new();
        for step in 0..1500 {
            let mut batch = vec![random_command(&mut rng)];
            if rng.below(20) == 0 {
                // A transaction of a few commands.
                let mut multi = vec![vec![b"MULTI".to_vec()]];
                multi.extend((0..2 + rng.below(3)).map(|_| random_command(&mut rng)));
                multi.push(vec![b"EXEC".to_vec()]);
                batch = multi;
            }
            for argv in &batch {
                history.push(argv.iter().map(|a| show(a)).collect::<Vec<_>>().join(" "));
                commands += 1;
                if let Err(report) = on_both(&mut redis, &mut sluice, argv).await {
                    let recent = history[history.len().saturating_sub(30)..].join("\n  ");
                    panic!("seed {seed:#x}, step {step}: {report}\nlast commands:\n  {recent}");
                }
            }
            if step % 100 == 99 {
                let recent = history[history.len().saturating_sub(40)..].join("\n  ");
                let context = format!("seed {seed:#x}, step {step}; last commands:\n  {recent}\n");
                assert_stored_as_redis(&mut redis, &mut sluice, &db, &context).await;
            }
        }
    }

    // 60 LINSERTs at one spot: the gap between two positions is used up (after about 24) and
    // the list renumbered, then again; flushed along the way, the rows follow.
    for line in ["DEL l0", "RPUSH l0 head tail", "RPUSH l0 end"] {
        let argv: Vec<Vec<u8>> = line.split(' ').map(|w| w.as_bytes().to_vec()).collect();
        on_both(&mut redis, &mut sluice, &argv).await.unwrap();
    }
    for i in 0..60 {
        let argv: Vec<Vec<u8>> = ["LINSERT", "l0", "BEFORE", "tail", &format!("x{i}")]
            .iter()
            .map(|w| w.as_bytes().to_vec())
            .collect();
        on_both(&mut redis, &mut sluice, &argv).await.unwrap();
        if i % 7 == 6 {
            assert_stored_as_redis(&mut redis, &mut sluice, &db, &format!("LINSERT {i}")).await;
        }
    }
    assert_stored_as_redis(&mut redis, &mut sluice, &db, "after the LINSERTs").await;
    drop(db);

    // A restart reads every list back from the store.
    drop(sluice);
    server.stop().await;
    server = TestServer::start_in(dir.path(), Durability::Os).await;
    let mut sluice = server.client().await;
    for key in KEYS {
        for command in [&["TYPE", key][..], &["LRANGE", key, "0", "-1"]] {
            let argv: Vec<Vec<u8>> = command.iter().map(|w| w.as_bytes().to_vec()).collect();
            if let Err(report) = on_both(&mut redis, &mut sluice, &argv).await {
                panic!("after a restart: {report}");
            }
        }
        let ttl = |reply: Vec<u8>| reply == b":-1\r\n" || reply == b":-2\r\n";
        assert_eq!(
            ttl(sluice.cmd(&[b"TTL", key.as_bytes()]).await),
            ttl(redis.cmd(&[b"TTL", key.as_bytes()]).await),
            "after a restart: whether {key} has a TTL"
        );
    }
    eprintln!(
        "{commands} random list commands compared in {:?}",
        started.elapsed()
    );
    server.stop().await;
}

/// redis-py: list commands in RESP2 and RESP3, blocking pops with a timeout and woken by
/// another connection, LMPOP/BLMPOP, pipelines with and without MULTI. The script runs
/// against redis-server first (so its expectations are Redis's), then against Sluice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_lists() {
    redis_py_against_oracle_then_sluice("redis_py_lists.py").await;
}

/// ioredis: list commands, blocking pops with a timeout and woken by another connection,
/// LMPOP, a pipeline and a MULTI. Checked against redis-server first, then run against Sluice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_lists() {
    if !node_with_ioredis() {
        return;
    }
    let script = clients_dir().join("node/lists.js");
    let script = script.to_str().unwrap();
    if let Some((host, port)) = oracle().await {
        let started = Instant::now();
        run_client("node", &[script, &port, &host]).await;
        eprintln!(
            "ioredis lists against redis-server: {:?}",
            started.elapsed()
        );
    }
    let server = TestServer::start().await;
    let port = server.port().to_string();
    let started = Instant::now();
    run_client("node", &[script, &port]).await;
    eprintln!("ioredis lists against Sluice: {:?}", started.elapsed());
    server.stop().await;
}

/// Redis counts an LTRIM that keeps every element as a write (`signalModifiedKey`), so a
/// transaction watching the list fails; an LREM or LINSERT that changes nothing does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ltrim_that_keeps_everything_still_breaks_a_watch() {
    let server = TestServer::start().await;
    let mut watcher = server.client().await;
    let mut other = server.client().await;
    other.run("RPUSH l a b c").await;
    for (command, breaks) in [
        ("LTRIM l 0 -1", true),
        ("LREM l 0 nothere", false),
        ("LINSERT l BEFORE nothere x", false),
        ("LPUSHX nokey x", false),
    ] {
        assert_eq!(watcher.run("WATCH l").await, b"+OK\r\n");
        other.run(command).await;
        watcher.run("MULTI").await;
        watcher.run("PING").await;
        let exec = watcher.run("EXEC").await;
        let want: &[u8] = if breaks {
            b"*-1\r\n"
        } else {
            b"*1\r\n+PONG\r\n"
        };
        assert_eq!(exec, want, "{command}");
    }
    server.stop().await;
}
