//! MULTI/EXEC/WATCH and hashes as real client libraries use them, against an in-process
//! Sluice over its embedded SQLite database.
//!
//! The contract these tests state:
//! - a client's transaction (`MULTI … EXEC`, sent as an atomic pipeline) answers every queued
//!   command's reply and is applied, in the cache and in the database;
//! - the optimistic WATCH loop clients build on (read, compute, `EXEC` or retry on a nil
//!   reply) loses no update under concurrency, under write-through and write-back alike;
//! - a write-through or invalidate transaction the database refuses in part is applied in none
//!   of its parts (built-in table included), in the database and in what clients read; under
//!   write-back the refusal comes at the flush and refuses the whole transaction too, across
//!   keyspaces (EXEC, MSET, MSETNX, RENAME and scripts alike);
//! - a hash keyspace mapped onto a row reads and writes the row's columns, refuses fields and
//!   values the row cannot hold without writing anything, and sees other writers' rows once its
//!   cached copy is gone; under write-back, writes to one row coalesce and land at a flush;
//! - redis-py (Python) and ioredis (Node) transactions, and redis-py's `Lock` (Lua scripts by
//!   EVALSHA), work against Sluice unchanged.
//!
//! Clients, server and database are real: the Rust `redis` crate in process, `python3` with
//! redis-py and `node` with ioredis as child processes (those tests print why they are skipped
//! when the interpreter or the library is missing; `.ci/run` installs both libraries).

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{clients_dir, node_with_ioredis, python_with_redis, run_client, show, TestServer};
use redis::AsyncCommands;
use rusqlite::OptionalExtension;
use sluice::{KeyspaceConfig, Policy};
use sluice_server::config::FileConfig;

/// Concurrent clients in the WATCH tests, and the increments each makes.
const CLIENTS: usize = 8;
const INCREMENTS: usize = 50;

// ---------------------------------------------------------------------------------------------
// Servers and databases

/// A config whose built-in keyspace (table `sluice_kv`) has `policy`.
fn builtin_config(policy: Policy) -> FileConfig {
    let mut config = FileConfig::default();
    let mut ks = KeyspaceConfig::builtin(policy);
    ks.flush_interval = Duration::from_millis(50);
    config.engine.keyspaces = vec![ks];
    config
}

/// A mapped keyspace `keys` on `table`, keyed by its `id` column.
fn mapped(name: &str, keys: &str, table: &str, policy: Policy) -> KeyspaceConfig {
    let mut ks = KeyspaceConfig::builtin(policy);
    ks.name = name.to_string();
    ks.keys = keys.to_string();
    ks.table = Some(table.to_string());
    ks.key_column = Some("id".to_string());
    ks
}

/// A config with `keyspaces`, then the built-in keyspace (write-through) for every other key.
fn config_with(keyspaces: Vec<KeyspaceConfig>) -> FileConfig {
    let mut config = FileConfig::default();
    config.engine.keyspaces = keyspaces;
    config
        .engine
        .keyspaces
        .push(KeyspaceConfig::builtin(Policy::WriteThrough));
    config
}

/// The value of `key` (db 0) in the built-in table, read by another connection.
fn kv_row(server: &TestServer, key: &str) -> Option<Vec<u8>> {
    server
        .sqlite()
        .query_row(
            "SELECT value FROM sluice_kv WHERE db = 0 AND key = ?1",
            [key.as_bytes()],
            |r| r.get(0),
        )
        .optional()
        .expect("query sluice_kv")
}

/// A SQL value as text (`NULL` for NULL), whatever its storage class.
fn sql_text(v: rusqlite::types::Value) -> String {
    use rusqlite::types::Value;
    match v {
        Value::Null => "NULL".to_string(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t,
        Value::Blob(b) => format!("blob:{}", show(&b)),
    }
}

/// The row of `table` with `id`, each column as text, or `None` when there is no such row.
fn row(server: &TestServer, table: &str, columns: &str, id: i64) -> Option<Vec<String>> {
    let conn = server.sqlite();
    let mut st = conn
        .prepare(&format!("SELECT {columns} FROM {table} WHERE id = ?1"))
        .expect("prepare");
    let n = st.column_count();
    st.query_row([id], |r| {
        (0..n)
            .map(|i| r.get::<_, rusqlite::types::Value>(i).map(sql_text))
            .collect::<Result<Vec<_>, _>>()
    })
    .optional()
    .expect("query row")
}

async fn connect(server: &TestServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("connect")
}

// ---------------------------------------------------------------------------------------------
// 1. The `redis` crate: atomic pipelines and the WATCH retry loop

/// `redis::pipe().atomic()` (MULTI … EXEC) of SET/INCR/GET answers each command's reply in
/// order, and the writes are applied: GET sees them, and so does the database once flushed.
async fn atomic_pipeline_is_applied(policy: Policy) {
    let server = TestServer::start_config(builtin_config(policy)).await;
    let mut con = connect(&server).await;

    let replies: (String, i64, i64, String, String) = redis::pipe()
        .atomic()
        .set("tx:counter", 10)
        .incr("tx:counter", 1)
        .incr("tx:counter", 5)
        .get("tx:counter")
        .set("tx:other", "hello")
        .query_async(&mut con)
        .await
        .unwrap_or_else(|e| panic!("atomic pipeline under {policy:?}: {e}"));
    assert_eq!(
        replies,
        ("OK".into(), 11, 16, "16".into(), "OK".into()),
        "one reply per queued command, in order"
    );

    let after: (Option<String>, Option<String>) = redis::pipe()
        .get("tx:counter")
        .get("tx:other")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        after,
        (Some("16".to_string()), Some("hello".to_string())),
        "GET after the transaction under {policy:?}"
    );

    let _: () = redis::cmd("SLUICE.FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(kv_row(&server, "tx:counter").as_deref(), Some(&b"16"[..]));
    assert_eq!(kv_row(&server, "tx:other").as_deref(), Some(&b"hello"[..]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_atomic_pipeline_returns_every_reply_and_is_applied_write_through() {
    atomic_pipeline_is_applied(Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_atomic_pipeline_returns_every_reply_and_is_applied_write_back() {
    atomic_pipeline_is_applied(Policy::WriteBack).await;
}

/// One client's increments of `key` by read-then-write, each committed by the optimistic
/// loop: WATCH, GET, then `MULTI SET EXEC`, again from WATCH when EXEC answers nil. Returns
/// how many EXECs were refused.
async fn watch_increments(url: String, key: &'static str, n: usize) -> usize {
    let mut con = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut conflicts = 0;
    for _ in 0..n {
        loop {
            let _: () = redis::cmd("WATCH")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            let current: Option<i64> = con.get(key).await.unwrap();
            let committed: Option<(String,)> = redis::pipe()
                .atomic()
                .set(key, current.unwrap_or(0) + 1)
                .query_async(&mut con)
                .await
                .unwrap();
            match committed {
                Some((ok,)) => {
                    assert_eq!(ok, "OK");
                    break;
                }
                None => conflicts += 1,
            }
        }
    }
    conflicts
}

/// The same with the crate's own helper, `redis::transaction`, on a blocking connection.
fn helper_increments(url: String, key: &'static str, n: usize) {
    let mut con = redis::Client::open(url).unwrap().get_connection().unwrap();
    for _ in 0..n {
        let () = redis::transaction(&mut con, &[key], |con, pipe| {
            let current: Option<i64> = redis::Commands::get(con, key)?;
            pipe.set(key, current.unwrap_or(0) + 1)
                .ignore()
                .query::<Option<()>>(con)
        })
        .unwrap();
    }
}

/// Every increment lands exactly once: the final value is `CLIENTS * INCREMENTS` through GET
/// and, after SLUICE.FLUSH, in `sluice_kv`.
async fn check_total(server: &TestServer, key: &str) {
    let expected = (CLIENTS * INCREMENTS) as i64;
    let mut con = connect(server).await;
    let got: i64 = con.get(key).await.unwrap();
    assert_eq!(got, expected, "GET {key}");
    let _: () = redis::cmd("SLUICE.FLUSH")
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(
        kv_row(server, key),
        Some(expected.to_string().into_bytes()),
        "{key} in the database"
    );
}

async fn concurrent_watch_loop_loses_nothing(policy: Policy) {
    let server = TestServer::start_config(builtin_config(policy)).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(watch_increments(server.url(), "tx:watched", INCREMENTS)))
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.unwrap();
    }
    check_total(&server, "tx:watched").await;
    println!(
        "{policy:?}: {} increments by {CLIENTS} clients, {conflicts} EXECs refused on conflict, {:?}",
        CLIENTS * INCREMENTS,
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_watch_retry_loop_loses_no_increment_write_through() {
    concurrent_watch_loop_loses_nothing(Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_watch_retry_loop_loses_no_increment_write_back() {
    concurrent_watch_loop_loses_nothing(Policy::WriteBack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_watch_retry_loop_loses_no_increment_invalidate() {
    concurrent_watch_loop_loses_nothing(Policy::Invalidate).await;
}

async fn concurrent_transaction_helper_loses_nothing(policy: Policy) {
    let server = TestServer::start_config(builtin_config(policy)).await;
    let threads: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let url = server.url();
            tokio::task::spawn_blocking(move || helper_increments(url, "tx:helper", INCREMENTS))
        })
        .collect();
    for t in threads {
        t.await.unwrap();
    }
    check_total(&server, "tx:helper").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_transaction_helper_loses_no_increment_write_through() {
    concurrent_transaction_helper_loses_nothing(Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_transaction_helper_loses_no_increment_write_back() {
    concurrent_transaction_helper_loses_nothing(Policy::WriteBack).await;
}

// ---------------------------------------------------------------------------------------------
// 2. All or nothing in the database

const PRODUCTS_CHECKED: &str = "CREATE TABLE products (id INTEGER PRIMARY KEY, \
     price NUMERIC CHECK (price >= 0), stock INTEGER, name TEXT);
     INSERT INTO products (id, price, stock, name) VALUES (1, 10, 3, 'one'), (2, 20, 4, 'two');";

fn price_keyspace(policy: Policy) -> KeyspaceConfig {
    let mut price = mapped("price", "product:{id}:price", "products", policy);
    price.value_column = Some("price".to_string());
    price
}

/// A transaction whose last write the database refuses (CHECK constraint) answers an error
/// naming the key and the database's reason, and changes nothing: neither row of the mapped
/// table nor the built-in table's key written in the same EXEC, not in the database, not in
/// what GET answers (cached copies included).
async fn exec_refused_by_a_check_constraint_changes_nothing(policy: Policy) {
    let server = TestServer::start_config_with_sql(
        config_with(vec![price_keyspace(policy)]),
        PRODUCTS_CHECKED,
    )
    .await;
    let mut c = server.client().await;

    // Both values cached before the transaction (invalidate caches reads too).
    assert_eq!(c.run("GET product:1:price").await, b"$2\r\n10\r\n");
    assert_eq!(c.run("GET product:2:price").await, b"$2\r\n20\r\n");

    assert_eq!(c.run("MULTI").await, b"+OK\r\n");
    assert_eq!(c.run("SET plain:x 1").await, b"+QUEUED\r\n");
    assert_eq!(c.run("SET product:1:price 5").await, b"+QUEUED\r\n");
    assert_eq!(c.run("SET product:2:price -1").await, b"+QUEUED\r\n");
    let reply = c.run("EXEC").await;
    let text = String::from_utf8_lossy(&reply).to_string();
    println!("EXEC refused: {}", show(&reply));
    assert!(
        text.starts_with('-'),
        "EXEC answers an error, not per-command replies: {}",
        show(&reply)
    );
    assert!(
        text.contains("product:2:price") && text.to_ascii_lowercase().contains("check"),
        "the error names the refused key and the database's reason: {}",
        show(&reply)
    );

    assert_eq!(
        row(&server, "products", "price", 1),
        Some(vec!["10".to_string()])
    );
    assert_eq!(
        row(&server, "products", "price", 2),
        Some(vec!["20".to_string()])
    );
    assert_eq!(c.run("GET product:1:price").await, b"$2\r\n10\r\n");
    assert_eq!(c.run("GET product:2:price").await, b"$2\r\n20\r\n");
    assert_eq!(c.run("GET plain:x").await, b"$-1\r\n");
    assert_eq!(
        kv_row(&server, "plain:x"),
        None,
        "the built-in table's write too"
    );

    // The connection is usable and out of MULTI: a good transaction commits both rows.
    assert_eq!(c.run("MULTI").await, b"+OK\r\n");
    assert_eq!(c.run("SET product:1:price 5").await, b"+QUEUED\r\n");
    assert_eq!(c.run("SET product:2:price 6").await, b"+QUEUED\r\n");
    assert_eq!(c.run("EXEC").await, b"*2\r\n+OK\r\n+OK\r\n");
    assert_eq!(row(&server, "products", "price", 1), Some(vec!["5".into()]));
    assert_eq!(row(&server, "products", "price", 2), Some(vec!["6".into()]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_refused_by_a_check_constraint_changes_nothing_write_through() {
    exec_refused_by_a_check_constraint_changes_nothing(Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_refused_by_a_check_constraint_changes_nothing_invalidate() {
    exec_refused_by_a_check_constraint_changes_nothing(Policy::Invalidate).await;
}

/// Under write-back the database's refusal comes at the flush, after EXEC answered: the
/// whole transaction is then refused (each write parked as a dead letter), none of it stored,
/// including its writes to another write-back keyspace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_exec_refused_at_the_flush_stores_none_of_it() {
    let server = TestServer::start_config_with_sql(both_write_back(), PRODUCTS_CHECKED).await;
    let mut c = server.client().await;
    assert_eq!(c.run("MULTI").await, b"+OK\r\n");
    assert_eq!(c.run("SET plain:x 1").await, b"+QUEUED\r\n");
    assert_eq!(c.run("SET product:1:price 5").await, b"+QUEUED\r\n");
    assert_eq!(c.run("SET product:2:price -1").await, b"+QUEUED\r\n");
    assert_eq!(c.run("EXEC").await, b"*3\r\n+OK\r\n+OK\r\n+OK\r\n");
    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    let dead = c.run("SLUICE.DEADLETTERS").await;
    assert!(
        dead.starts_with(b"*2\r\n") || dead.starts_with(b"*3\r\n"),
        "the refused transaction's writes are dead letters: {}",
        show(&dead)
    );
    assert_eq!(
        row(&server, "products", "price", 1),
        Some(vec!["10".into()])
    );
    assert_eq!(
        row(&server, "products", "price", 2),
        Some(vec!["20".into()])
    );
    assert_eq!(
        kv_row(&server, "plain:x"),
        None,
        "the transaction's write to the built-in table is not stored either"
    );
    server.stop().await;
}

/// `product:{id}:price` and the built-in table (every other key), both write-back.
fn both_write_back() -> FileConfig {
    let mut config = config_with(vec![price_keyspace(Policy::WriteBack)]);
    config.engine.keyspaces.pop();
    config
        .engine
        .keyspaces
        .push(KeyspaceConfig::builtin(Policy::WriteBack));
    config
}

/// A multi-key command spanning both write-back keyspaces whose write the database refuses at
/// the flush.
struct RefusedAtTheFlush<'a> {
    /// Commands run first, each answering `+OK`.
    setup: &'a [&'a str],
    command: Vec<&'a [u8]>,
    /// Its reply, as Redis answers it (the refusal comes later).
    reply: &'a [u8],
    /// The writes it made, each a dead letter after the flush.
    writes: usize,
    /// Keys and what GET answers after the flush: what it answered before the command.
    restored: &'a [(&'a str, &'a [u8])],
}

/// The multi-key commands that are transactions of their own (MSET, MSETNX, RENAME, a Lua
/// script) spanning both write-back keyspaces: answered as Redis answers them, and when the
/// database refuses one of their writes at the flush, none of them is stored and clients read
/// the values from before the command again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_multi_key_commands_refused_at_the_flush_store_none_of_it() {
    let script = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[2]); \
                  return redis.call('SET', KEYS[3], ARGV[3])";
    let unchanged: &[(&str, &[u8])] = &[
        ("plain:x", b"$-1\r\n"),
        ("product:1:price", b"$2\r\n10\r\n"),
    ];
    let cases = [
        RefusedAtTheFlush {
            setup: &[],
            command: vec![
                b"MSET",
                b"plain:x",
                b"1",
                b"product:1:price",
                b"5",
                b"product:2:price",
                b"-1",
            ],
            reply: b"+OK\r\n",
            writes: 3,
            restored: unchanged,
        },
        RefusedAtTheFlush {
            setup: &[],
            command: vec![
                b"MSETNX",
                b"plain:x",
                b"1",
                b"product:3:price",
                b"5",
                b"product:4:price",
                b"-1",
            ],
            reply: b":1\r\n",
            writes: 3,
            restored: &[("plain:x", b"$-1\r\n"), ("product:3:price", b"$-1\r\n")],
        },
        RefusedAtTheFlush {
            setup: &["SET plain:src -1", "SLUICE.FLUSH"],
            command: vec![b"RENAME", b"plain:src", b"product:2:price"],
            reply: b"+OK\r\n",
            writes: 2,
            restored: &[
                ("plain:src", b"$2\r\n-1\r\n"),
                ("product:2:price", b"$2\r\n20\r\n"),
            ],
        },
        RefusedAtTheFlush {
            setup: &[],
            command: vec![
                b"EVAL",
                script.as_bytes(),
                b"3",
                b"plain:x",
                b"product:1:price",
                b"product:2:price",
                b"1",
                b"5",
                b"-1",
            ],
            reply: b"+OK\r\n",
            writes: 3,
            restored: unchanged,
        },
    ];
    for case in cases {
        let name = String::from_utf8_lossy(case.command[0]).into_owned();
        let server = TestServer::start_config_with_sql(both_write_back(), PRODUCTS_CHECKED).await;
        let mut c = server.client().await;
        for line in case.setup {
            assert_eq!(c.run(line).await, b"+OK\r\n", "{name}: {line}");
        }
        assert_eq!(c.cmd(&case.command).await, case.reply, "{name}");
        assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n", "{name}");
        let dead = c.run("SLUICE.DEADLETTERS").await;
        assert!(
            dead.starts_with(format!("*{}\r\n", case.writes).as_bytes()),
            "{name}: every write of the refused command is a dead letter: {}",
            show(&dead)
        );
        for (key, value) in case.restored {
            assert_eq!(
                show(&c.run(&format!("GET {key}")).await),
                show(value),
                "{name}: {key} as before the command"
            );
        }
        assert_eq!(kv_row(&server, "plain:x"), None, "{name}");
        assert_eq!(
            row(&server, "products", "price", 1),
            Some(vec!["10".into()]),
            "{name}"
        );
        assert_eq!(
            row(&server, "products", "price", 2),
            Some(vec!["20".into()]),
            "{name}"
        );
        assert_eq!(row(&server, "products", "price", 3), None, "{name}");
        server.stop().await;
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Hashes mapped onto rows

const USERS: &str =
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, age INTEGER);";

fn users_keyspace(policy: Policy) -> KeyspaceConfig {
    let mut users = mapped("users", "user:{id}", "users", policy);
    users.columns = Some(vec!["name".into(), "email".into(), "age".into()]);
    users
}

fn user_row(server: &TestServer, id: i64) -> Option<Vec<String>> {
    row(server, "users", "name, email, age", id)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

async fn hgetall(
    con: &mut redis::aio::MultiplexedConnection,
    key: &str,
) -> HashMap<String, String> {
    con.hgetall(key).await.unwrap()
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Write-through hash on a row: each command's effect is the row's, refused writes write
/// nothing, and another program's UPDATE is read once the cached copy has expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_keyspace_reads_and_writes_the_row_write_through() {
    let mut users = users_keyspace(Policy::WriteThrough);
    // The cached copy lives this long; the row stays.
    let ttl = Duration::from_millis(300);
    users.ttl = Some(ttl);
    let server = TestServer::start_config_with_sql(config_with(vec![users]), USERS).await;
    let mut con = connect(&server).await;

    let added: i64 = redis::cmd("HSET")
        .arg(&["user:7", "name", "Ann", "email", "a@b"])
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!(added, 2, "two new fields");
    assert_eq!(user_row(&server, 7), Some(strings(&["Ann", "a@b", "NULL"])));
    assert_eq!(
        hgetall(&mut con, "user:7").await,
        map(&[("name", "Ann"), ("email", "a@b")])
    );

    let age: i64 = con.hincr("user:7", "age", 1).await.unwrap();
    assert_eq!(age, 1);
    let age_sql: rusqlite::types::Value = server
        .sqlite()
        .query_row("SELECT age FROM users WHERE id = 7", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        age_sql,
        rusqlite::types::Value::Integer(1),
        "an INTEGER column holds an integer"
    );

    let removed: i64 = con.hdel("user:7", "email").await.unwrap();
    assert_eq!(removed, 1);
    assert_eq!(user_row(&server, 7), Some(strings(&["Ann", "NULL", "1"])));
    assert_eq!(
        hgetall(&mut con, "user:7").await,
        map(&[("name", "Ann"), ("age", "1")])
    );

    // A field that is not a column: refused, naming it, and nothing of the command written.
    let mut c = server.client().await;
    let reply = c.run("HSET user:7 name Bob nosuch x").await;
    assert!(
        reply.starts_with(b"-") && String::from_utf8_lossy(&reply).contains("nosuch"),
        "HSET of an unmapped field: {}",
        show(&reply)
    );
    assert_eq!(user_row(&server, 7), Some(strings(&["Ann", "NULL", "1"])));
    assert_eq!(c.run("HGET user:7 name").await, b"$3\r\nAnn\r\n");
    assert_eq!(c.run("HEXISTS user:7 nosuch").await, b":0\r\n");

    // Arithmetic on the text column: refused, the row unchanged.
    let reply = c.run("HINCRBY user:7 name 1").await;
    assert!(
        reply.starts_with(b"-"),
        "HINCRBY on a text value: {}",
        show(&reply)
    );
    assert_eq!(user_row(&server, 7), Some(strings(&["Ann", "NULL", "1"])));

    // Another program changes the row; once the cached copy has expired Sluice reads it.
    server
        .sqlite()
        .execute(
            "UPDATE users SET name = 'Zoe', email = 'z@y' WHERE id = 7",
            [],
        )
        .unwrap();
    let deadline = Instant::now() + ttl * 10;
    loop {
        let now = hgetall(&mut con, "user:7").await;
        if now == map(&[("name", "Zoe"), ("email", "z@y"), ("age", "1")]) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the database's row never showed through: {now:?}"
        );
        tokio::time::sleep(ttl / 3).await;
    }
    server.stop().await;
}

/// Write-back hash on a row: two HSETs of one row are read back at once, reach the database
/// only at a flush, and do so as one row write with both fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_keyspace_write_back_coalesces_writes_to_one_row_until_flushed() {
    let mut users = users_keyspace(Policy::WriteBack);
    // Long enough that only SLUICE.FLUSH writes the row.
    users.flush_interval = Duration::from_secs(3600);
    let setup = format!(
        "{USERS}
         CREATE TABLE writes (op TEXT);
         CREATE TRIGGER users_ins AFTER INSERT ON users BEGIN INSERT INTO writes VALUES ('insert'); END;
         CREATE TRIGGER users_upd AFTER UPDATE ON users BEGIN INSERT INTO writes VALUES ('update'); END;"
    );
    let server = TestServer::start_config_with_sql(config_with(vec![users]), &setup).await;
    let mut c = server.client().await;

    assert_eq!(c.run("HSET user:8 name Ann").await, b":1\r\n");
    assert_eq!(c.run("HSET user:8 age 30").await, b":1\r\n");
    assert_eq!(
        c.run("HGETALL user:8").await,
        b"*4\r\n$4\r\nname\r\n$3\r\nAnn\r\n$3\r\nage\r\n$2\r\n30\r\n"
    );
    assert_eq!(user_row(&server, 8), None, "not written before a flush");

    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    assert_eq!(user_row(&server, 8), Some(strings(&["Ann", "NULL", "30"])));
    let writes: Vec<String> = {
        let conn = server.sqlite();
        let mut st = conn.prepare("SELECT op FROM writes").unwrap();
        let ops = st
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        ops
    };
    assert_eq!(
        writes,
        strings(&["insert"]),
        "the two HSETs reach the row as one write"
    );
    server.stop().await;
}

/// One client's increments of the `age` field of the hash `key` by HGET then `MULTI HSET
/// EXEC`, retried from WATCH when EXEC answers nil.
async fn watch_hash_increments(url: String, key: &'static str, n: usize) {
    let mut con = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for _ in 0..n {
        loop {
            let _: () = redis::cmd("WATCH")
                .arg(key)
                .query_async(&mut con)
                .await
                .unwrap();
            let current: Option<i64> = con.hget(key, "age").await.unwrap();
            let committed: Option<(i64,)> = redis::pipe()
                .atomic()
                .hset(key, "age", current.unwrap_or(0) + 1)
                .query_async(&mut con)
                .await
                .unwrap();
            if committed.is_some() {
                break;
            }
        }
    }
}

/// The WATCH loop on a field of a row: every increment lands once, in the column, and the
/// row's other columns are untouched.
async fn concurrent_watch_loop_on_a_row(policy: Policy) {
    let setup = format!("{USERS} INSERT INTO users (id, name, age) VALUES (5, 'Eve', 0);");
    let server =
        TestServer::start_config_with_sql(config_with(vec![users_keyspace(policy)]), &setup).await;
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|_| tokio::spawn(watch_hash_increments(server.url(), "user:5", INCREMENTS)))
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let total = (CLIENTS * INCREMENTS).to_string();
    let mut c = server.client().await;
    assert_eq!(
        c.run("HGET user:5 age").await,
        format!("${}\r\n{total}\r\n", total.len()).into_bytes()
    );
    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    assert_eq!(
        user_row(&server, 5),
        Some(strings(&["Eve", "NULL", &total]))
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_watch_retry_loop_on_a_row_field_write_through() {
    concurrent_watch_loop_on_a_row(Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_rs_watch_retry_loop_on_a_row_field_write_back() {
    concurrent_watch_loop_on_a_row(Policy::WriteBack).await;
}

// ---------------------------------------------------------------------------------------------
// 4 and 5. Other languages' clients, as child processes

async fn redis_py(part: &str, policy: Policy) {
    if !python_with_redis() {
        return;
    }
    let server = TestServer::start_config(builtin_config(policy)).await;
    let script = clients_dir().join("redis_py_transactions.py");
    let port = server.port().to_string();
    run_client(
        "python3",
        &[script.to_str().unwrap(), "--port", &port, "--part", part],
    )
    .await;
    server.stop().await;
}

/// redis-py: `pipeline()` (a MULTI/EXEC transaction), `transaction(func, key)` under
/// concurrent threads (exact totals), and `pipeline(transaction=False)`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_pipelines_and_watch_transactions() {
    redis_py("transactions", Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_pipelines_and_watch_transactions_write_back() {
    redis_py("transactions", Policy::WriteBack).await;
}

/// redis-py's `Lock` (acquire, extend, reacquire, release; a foreign token refused; mutual
/// exclusion under threads): its extend and release are Lua scripts run by EVALSHA, falling
/// back to EVAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_lock_acquire_extend_release() {
    redis_py("lock", Policy::WriteThrough).await;
}

/// ioredis: `multi().set().incr().get().exec()` answers every reply; a WATCHed key changed by
/// another connection makes `exec()` answer null and apply nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_multi_exec_and_watch_conflict() {
    if !node_with_ioredis() {
        return;
    }
    let dir = clients_dir().join("node");
    let server = TestServer::start_config(builtin_config(Policy::WriteThrough)).await;
    let script = dir.join("transactions.js");
    let port = server.port().to_string();
    if run_client("node", &[script.to_str().unwrap(), &port])
        .await
        .is_some()
    {
        let mut c = server.client().await;
        // What the script left: its transaction's writes, and not its refused one.
        assert_eq!(c.run("GET node:counter").await, b"$1\r\n2\r\n");
        assert_eq!(c.run("GET node:watched").await, b"$5\r\nother\r\n");
    }
    server.stop().await;
}

/// On a row, an HSET of the value a column already holds writes nothing to the database, yet
/// counts as a write for WATCH, as in Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hset_of_the_same_value_on_a_row_wakes_watch() {
    let users = users_keyspace(Policy::WriteThrough);
    let server = TestServer::start_config_with_sql(config_with(vec![users]), USERS).await;
    let mut watcher = server.client().await;
    let mut other = server.client().await;
    assert_eq!(other.run("HSET user:1 name Ann").await, b":1\r\n");
    assert_eq!(watcher.run("WATCH user:1").await, b"+OK\r\n");
    assert_eq!(other.run("HSET user:1 name Ann").await, b":0\r\n");
    assert_eq!(watcher.run("MULTI").await, b"+OK\r\n");
    assert_eq!(watcher.run("HGET user:1 name").await, b"+QUEUED\r\n");
    assert_eq!(watcher.run("EXEC").await, b"*-1\r\n", "the HSET woke WATCH");
}
