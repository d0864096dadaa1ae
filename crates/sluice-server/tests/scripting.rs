//! Lua scripts as transactions: a script's writes land all or none (in the cache and in the
//! database), concurrent scripts never lose an update, a script stopped by SCRIPT KILL or
//! `script_timeout` applies nothing, and one running past `busy_reply_threshold` has those
//! waiting for its keys answered BUSY while everyone else is served. Replies themselves are compared with redis-server in
//! `differential.rs` and `script_runtime.rs`.

mod common;

use std::time::{Duration, Instant};

use common::{encode, show, RawClient, TestServer};
use redis::AsyncCommands;
use sluice::{KeyspaceConfig, Policy};
use sluice_server::config::FileConfig;

async fn connection(server: &TestServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

fn config(policy: Policy) -> FileConfig {
    let mut config = FileConfig::default();
    config.engine.keyspaces = vec![KeyspaceConfig::builtin(policy)];
    config
}

/// The value of a built-in key as the database file holds it.
fn stored(server: &TestServer, key: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(server.data_dir.join("sluice.db")).expect("open db");
    conn.query_row(
        "SELECT value FROM sluice_kv WHERE db = 0 AND key = ?1",
        [key.as_bytes()],
        |row| row.get::<_, Vec<u8>>(0),
    )
    .ok()
    .map(|v| String::from_utf8_lossy(&v).into_owned())
}

const INCREMENT: &str = "local v = tonumber(redis.call('get', KEYS[1]) or '0') + 1 \
                         redis.call('set', KEYS[1], v) return v";

/// Read-modify-write in Lua from many clients at once: no increment is lost, in the cache or
/// in the database, under write-through and write-back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scripts_never_lose_an_update() {
    for policy in [Policy::WriteThrough, Policy::WriteBack] {
        let server = TestServer::start_config(config(policy)).await;
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let mut conn = connection(&server).await;
            tasks.push(tokio::spawn(async move {
                for _ in 0..40 {
                    let _: i64 = redis::cmd("EVAL")
                        .arg(INCREMENT)
                        .arg(1)
                        .arg("counter")
                        .query_async(&mut conn)
                        .await
                        .expect("EVAL");
                }
            }));
        }
        for t in tasks {
            t.await.expect("client task");
        }
        let mut conn = connection(&server).await;
        let total: i64 = conn.get("counter").await.expect("GET");
        assert_eq!(total, 320, "{policy:?}");
        let _: () = redis::cmd("SLUICE.FLUSH")
            .query_async(&mut conn)
            .await
            .expect("flush");
        assert_eq!(
            stored(&server, "counter").as_deref(),
            Some("320"),
            "{policy:?}"
        );
    }
}

/// A script's writes are one transaction: nothing of it is visible until it ends, and a
/// script that reads back what it wrote sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_sees_its_own_writes_and_commits_them_together() {
    let server = TestServer::start_config(config(Policy::WriteThrough)).await;
    let mut conn = connection(&server).await;
    let got: Vec<Option<String>> = redis::cmd("EVAL")
        .arg(
            "redis.call('mset', KEYS[1], 'a', KEYS[2], 'b') redis.call('del', KEYS[1]) \
             return {redis.call('get', KEYS[1]), redis.call('get', KEYS[2])}",
        )
        .arg(2)
        .arg("x")
        .arg("y")
        .query_async(&mut conn)
        .await
        .expect("EVAL");
    // A missing key reads as false in Lua, and false is a nil reply.
    assert_eq!(got, vec![None, Some("b".to_string())]);
    assert_eq!(stored(&server, "x"), None);
    assert_eq!(stored(&server, "y").as_deref(), Some("b"));
}

/// A script that fails part-way keeps the writes made before the error, as Redis does; a
/// refused database statement undoes all of them, in the database and in the cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refusal_undoes_the_whole_script() {
    let db_dir = tempfile::tempdir().expect("temp dir");
    let db = db_dir.path().join("shop.db");
    rusqlite::Connection::open(&db)
        .expect("open")
        .execute_batch(
            "CREATE TABLE products (id INTEGER PRIMARY KEY, price NUMERIC CHECK (price >= 0));
             INSERT INTO products VALUES (1, 10), (2, 20);",
        )
        .expect("schema");
    let mut config = config(Policy::WriteThrough);
    config.engine.store = Some(sluice::config::StoreConfig {
        url: format!("sqlite://{}", db.display()),
    });
    let mut prices = KeyspaceConfig::builtin(Policy::WriteThrough);
    prices.name = "prices".into();
    prices.keys = "product:{id}:price".into();
    prices.table = Some("products".into());
    prices.key_column = Some("id".into());
    prices.value_column = Some("price".into());
    config.engine.keyspaces.insert(0, prices);
    let server = TestServer::start_config(config).await;
    let mut conn = connection(&server).await;

    let err = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], '5') redis.call('set', KEYS[2], '-1') return 'done'")
        .arg(2)
        .arg("product:1:price")
        .arg("product:2:price")
        .query_async::<String>(&mut conn)
        .await
        .expect_err("the database refuses a negative price");
    assert!(
        err.to_string().contains("product:2:price"),
        "the error names the refused key: {err}"
    );
    let prices: Vec<String> = rusqlite::Connection::open(&db)
        .expect("open")
        .prepare("SELECT CAST(price AS TEXT) FROM products ORDER BY id")
        .expect("prepare")
        .query_map([], |r| r.get(0))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert_eq!(
        prices,
        vec!["10", "20"],
        "nothing of the script was committed"
    );
    let cached: Vec<Option<String>> = conn
        .mget(&["product:1:price", "product:2:price"])
        .await
        .expect("MGET");
    assert_eq!(cached, vec![Some("10".into()), Some("20".into())]);

    // Without the refused write the script commits.
    let ok: String = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], '5') redis.call('set', KEYS[2], '6') return 'done'")
        .arg(2)
        .arg("product:1:price")
        .arg("product:2:price")
        .query_async(&mut conn)
        .await
        .expect("EVAL");
    assert_eq!(ok, "done");
    let cached: Vec<Option<String>> = conn
        .mget(&["product:1:price", "product:2:price"])
        .await
        .expect("MGET");
    assert_eq!(cached, vec![Some("5".into()), Some("6".into())]);
}

/// SCRIPT KILL stops a running script from another connection, and nothing it wrote is
/// applied (a script's writes commit only when it ends, so any script can be killed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_kill_stops_a_script_and_applies_nothing() {
    let mut config = config(Policy::WriteThrough);
    config.server.script_timeout = Duration::from_secs(60);
    let server = TestServer::start_config(config).await;
    let mut killer = connection(&server).await;
    let err: redis::RedisResult<String> = redis::cmd("SCRIPT")
        .arg("KILL")
        .query_async(&mut killer)
        .await;
    assert!(
        err.unwrap_err()
            .to_string()
            .contains("No scripts in execution"),
        "NOTBUSY when nothing runs"
    );

    let mut runner = connection(&server).await;
    let running = tokio::spawn(async move {
        redis::cmd("EVAL")
            .arg("redis.call('set', KEYS[1], 'x') while true do end")
            .arg(1)
            .arg("k")
            .query_async::<()>(&mut runner)
            .await
    });
    let mut killed = false;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let r: redis::RedisResult<String> = redis::cmd("SCRIPT")
            .arg("KILL")
            .query_async(&mut killer)
            .await;
        if r.is_ok() {
            killed = true;
            break;
        }
    }
    assert!(killed, "SCRIPT KILL found the running script");
    let err = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("the script stops")
        .expect("task")
        .expect_err("a killed script answers an error");
    assert!(err.to_string().contains("Script killed by user"), "{err}");
    let v: Option<String> = killer.get("k").await.expect("GET");
    assert_eq!(v, None, "a killed script's write is not applied");
    assert_eq!(stored(&server, "k"), None);
}

/// A script running past `script_timeout` is stopped with an error and applies nothing; the
/// keys it held are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_timeout_stops_a_runaway_script() {
    let mut config = config(Policy::WriteBack);
    config.server.script_timeout = Duration::from_millis(300);
    let server = TestServer::start_config(config).await;
    let mut conn = connection(&server).await;
    let err = redis::cmd("EVAL")
        .arg("redis.call('set', KEYS[1], 'x') while true do end")
        .arg(1)
        .arg("k")
        .query_async::<()>(&mut conn)
        .await
        .expect_err("stopped");
    assert!(err.to_string().contains("script_timeout"), "{err}");
    let v: Option<String> = conn.get("k").await.expect("GET");
    assert_eq!(v, None);
    let _: () = conn
        .set("k", "free")
        .await
        .expect("the key is not left locked");
}

/// SCRIPT FLUSH forgets loaded scripts; FUNCTION FLUSH answers OK.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn script_flush_forgets_scripts() {
    let server = TestServer::start().await;
    let mut conn = connection(&server).await;
    let sha: String = redis::cmd("SCRIPT")
        .arg("LOAD")
        .arg("return 7")
        .query_async(&mut conn)
        .await
        .expect("LOAD");
    let seven: i64 = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .query_async(&mut conn)
        .await
        .expect("EVALSHA");
    assert_eq!(seven, 7);
    let _: () = redis::cmd("SCRIPT")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("FLUSH");
    let err = redis::cmd("EVALSHA")
        .arg(&sha)
        .arg(0)
        .query_async::<i64>(&mut conn)
        .await
        .expect_err("flushed");
    assert_eq!(err.kind(), redis::ErrorKind::NoScriptError, "{err}");
    let _: () = redis::cmd("FUNCTION")
        .arg("FLUSH")
        .query_async(&mut conn)
        .await
        .expect("FUNCTION FLUSH");
}

/// Scripts reaching keys they did not declare (ARGV) restart when another script holds one;
/// many of them at once lose no increment and leave every lock with one holder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_on_undeclared_keys_restart_and_lose_nothing() {
    let server = TestServer::start_config(config(Policy::WriteBack)).await;
    let keys = ["u:a", "u:b", "u:c"];
    let mut tasks = Vec::new();
    for client in 0..4 {
        let mut conn = connection(&server).await;
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let (x, y) = (keys[(client + i) % 3], keys[(client + i + 1) % 3]);
                let _: i64 = redis::cmd("EVAL")
                    .arg("redis.call('incr', ARGV[1]) return redis.call('incr', ARGV[2])")
                    .arg(0)
                    .arg(x)
                    .arg(y)
                    .query_async(&mut conn)
                    .await
                    .expect("EVAL");
            }
        }));
    }
    for t in tasks {
        t.await.expect("client task");
    }
    let mut conn = connection(&server).await;
    let mut total = 0;
    for key in keys {
        let v: i64 = conn.get(key).await.expect("GET");
        total += v;
    }
    assert_eq!(total, 800, "two increments per script, 400 scripts");
}

/// A script stopped inside EXEC discards the whole EXEC: nothing it or the other queued
/// commands wrote is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_stopped_inside_exec_discards_the_exec() {
    let mut config = config(Policy::WriteThrough);
    config.server.script_timeout = Duration::from_millis(300);
    let server = TestServer::start_config(config).await;
    let mut c = server.client().await;
    assert_eq!(c.run("MULTI").await, b"+OK\r\n");
    assert_eq!(
        c.cmd(&[
            b"EVAL",
            b"redis.call('set',KEYS[1],'half') while true do end",
            b"1",
            b"p",
        ])
        .await,
        b"+QUEUED\r\n"
    );
    assert_eq!(c.run("SET q after").await, b"+QUEUED\r\n");
    let reply = c.run("EXEC").await;
    assert!(
        String::from_utf8_lossy(&reply).contains("script_timeout"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(c.run("GET p").await, b"$-1\r\n");
    assert_eq!(c.run("GET q").await, b"$-1\r\n");
}

const BUSY: &[u8] =
    b"-BUSY Redis is busy running a script. You can only call SCRIPT KILL or SHUTDOWN NOSAVE.\r\n";

/// Sends `SET key value` until one stays unanswered for `patience`: that one waits for the key's
/// lock. Returns whether an earlier one was answered (it ran before the lock was taken).
async fn send_until_waiting(
    client: &mut RawClient,
    key: &str,
    value: &str,
    patience: Duration,
) -> bool {
    let mut written = false;
    let since = Instant::now();
    loop {
        assert!(
            since.elapsed() < Duration::from_secs(20),
            "nothing held {key} for {patience:?}"
        );
        client
            .send(&encode(&[b"SET", key.as_bytes(), value.as_bytes()]))
            .await;
        match tokio::time::timeout(patience, client.reply()).await {
            Ok(reply) => {
                assert_eq!(reply, b"+OK\r\n", "{}", show(&reply));
                written = true;
            }
            Err(_) => return written,
        }
    }
}

/// A script running past `busy_reply_threshold` (and far from `script_timeout`): a client already waiting for its key is answered BUSY
/// once the threshold has passed and not before, and so is every later command that would
/// wait for the key (a write, another script, an EXEC, an EXEC watching it); clients on
/// other keys, and reads, are served all along. SCRIPT KILL works meanwhile, nothing the
/// script wrote is applied, and the key then takes writes again.
async fn busy_script_answers_busy_only_to_its_keys() {
    let threshold = Duration::from_secs(2);
    let mut config = config(Policy::WriteThrough);
    config.server.busy_reply_threshold = threshold;
    // Long, but bounded: a failing run must not leave the script spinning forever.
    config.server.script_timeout = Duration::from_secs(30);
    let server = TestServer::start_config(config).await;
    let mut runner = server.client().await;
    let started = Instant::now();
    runner
        .send(&encode(&[
            b"EVAL",
            b"redis.call('set', KEYS[1], 'script') while true do end",
            b"1",
            b"k",
        ]))
        .await;
    let mut waiter = server.client().await;
    let before_written = send_until_waiting(&mut waiter, "k", "before", threshold / 4).await;
    let before: &[u8] = if before_written {
        b"$6\r\nbefore\r\n"
    } else {
        b"$-1\r\n"
    };

    // Another client is served meanwhile, on other keys and reading the script's key (the
    // value from before the script: its writes are not visible until it ends).
    let mut other = server.client().await;
    assert_eq!(other.run("SET other 1").await, b"+OK\r\n");
    assert_eq!(other.run("GET k").await, before);

    let reply = waiter.reply().await;
    assert_eq!(reply, BUSY, "{}", show(&reply));
    assert!(
        started.elapsed() >= threshold,
        "BUSY came before the script ran for the threshold"
    );

    // Later commands that would wait for the key are answered BUSY at once, FLUSHDB (which
    // waits for every key) too, holding none of the others meanwhile.
    assert_eq!(waiter.run("INCR k").await, BUSY);
    assert_eq!(other.run("FLUSHDB").await, BUSY);
    let eval = waiter
        .cmd(&[b"EVAL", b"return redis.call('get', KEYS[1])", b"1", b"k"])
        .await;
    assert_eq!(eval, BUSY, "{}", show(&eval));
    assert_eq!(waiter.run("MULTI").await, b"+OK\r\n");
    assert_eq!(waiter.run("SET k multi").await, b"+QUEUED\r\n");
    let exec_abort = [
        &b"-EXECABORT Transaction discarded because of: "[..],
        &BUSY[1..],
    ]
    .concat();
    assert_eq!(waiter.run("EXEC").await, exec_abort);
    assert_eq!(waiter.run("WATCH k").await, b"+OK\r\n");
    assert_eq!(waiter.run("MULTI").await, b"+OK\r\n");
    assert_eq!(waiter.run("SET other 2").await, b"+QUEUED\r\n");
    assert_eq!(waiter.run("EXEC").await, exec_abort);
    // The EXEC ended the transaction and the watch.
    assert_eq!(waiter.run("GET other").await, b"$1\r\n1\r\n");
    assert_eq!(other.run("SET other 3").await, b"+OK\r\n");

    assert_eq!(other.run("SCRIPT KILL").await, b"+OK\r\n");
    let killed = runner.reply().await;
    assert!(
        killed.starts_with(b"-ERR Script killed by user with SCRIPT KILL... script: "),
        "{}",
        show(&killed)
    );
    assert_eq!(
        other.run("SCRIPT KILL").await,
        b"-NOTBUSY No scripts in execution right now.\r\n"
    );
    assert_eq!(
        waiter.run("GET k").await,
        before,
        "the script applied nothing"
    );
    assert_eq!(
        stored(&server, "k").as_deref(),
        before_written.then_some("before")
    );
    assert_eq!(waiter.run("SET k after").await, b"+OK\r\n");
    assert_eq!(stored(&server, "k").as_deref(), Some("after"));
}

/// On the server's runtime the script runs on its connection's thread and notices the
/// threshold in its instruction hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_script_answers_busy_to_its_keys_only() {
    busy_script_answers_busy_only_to_its_keys().await;
}

/// On a current-thread runtime the script runs on a thread of its own and its connection's
/// task notices the threshold.
#[tokio::test(flavor = "current_thread")]
async fn a_busy_script_on_its_own_thread_answers_busy_to_its_keys_only() {
    busy_script_answers_busy_only_to_its_keys().await;
}

/// With the default threshold (5 s, as in Redis) not below `script_timeout`, a runaway script
/// is stopped before it is busy: a client waiting for its key is served after the stop, with
/// no BUSY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_stopped_before_its_busy_threshold_never_answers_busy() {
    let mut config = config(Policy::WriteThrough);
    config.server.script_timeout = Duration::from_millis(500);
    config.server.busy_reply_threshold = Duration::from_millis(500);
    let server = TestServer::start_config(config).await;
    let mut runner = server.client().await;
    runner
        .send(&encode(&[
            b"EVAL",
            b"redis.call('set', KEYS[1], 'script') while true do end",
            b"1",
            b"k",
        ]))
        .await;
    let mut waiter = server.client().await;
    send_until_waiting(&mut waiter, "k", "before", Duration::from_millis(100)).await;
    let stopped = runner.reply().await;
    assert!(
        show(&stopped).contains("script_timeout"),
        "{}",
        show(&stopped)
    );
    assert_eq!(waiter.reply().await, b"+OK\r\n");
    assert_eq!(waiter.run("GET k").await, b"$6\r\nbefore\r\n");
}
