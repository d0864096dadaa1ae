//! End-to-end tests of the real `sluice` binary over PostgreSQL.
//!
//! They need `SLUICE_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`); when
//! it is unset they print "skipped: ... not set" and pass. Each test creates its own table
//! (unique name per run) and drops it at the end, even when it fails.
//!
//! - `outage_through_a_proxy`: the server reaches the database through a TCP proxy inside the
//!   test, which cuts every connection and then refuses (and later stalls) new ones, and
//!   finally restores the way. Write-through: every write answered while the database is
//!   unreachable is an error, no `+OK` is ever given for a value the table does not hold, an
//!   error's value is in the table only if the error says the COMMIT's outcome is unknown (the
//!   connection broke after COMMIT was sent: the one ambiguous case), the cache agrees with the
//!   table afterwards, and a hung database fails a
//!   write within the 5 s connect timeout. Write-back: writes are taken during the outage until
//!   `max_dirty` distinct keys are buffered, then `BUSY` after `backpressure_timeout`;
//!   rewriting a buffered key still works; after the restore SLUICE.FLUSH drains everything
//!   in bounded time and every acknowledged value is in the table.
//! - `products_table_end_to_end`: an existing `products (id bigint, price numeric(10,2), name
//!   text)` table written by "another program": read-through in PostgreSQL's own text form,
//!   write-through SET, the documented staleness of a cached copy (until `ttl`) after an
//!   external update, read-through of external writes for keys not cached, values and key
//!   captures the columns cannot hold refused with the row untouched, DEL as `delete-row` and
//!   as the default `set-null`, and KEYS rebuilt from the template.

mod resp_reply;
mod sql_e2e;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sql_e2e::{
    await_lost_stream, await_value, change_capture_config, change_capture_kill_scenario, env_url,
    pg_upstream_and_proxied_url, sorted_strings, unique_suffix, with_cleanup, Proxy, ProxyMode,
    Reply, Resp, Sluice,
};
use tokio_postgres::{Client, NoTls};

const URL_VAR: &str = "SLUICE_TEST_POSTGRES_URL";

/// Held by each change-capture test: one of them lowers `max_slot_wal_keep_size` on the
/// server, which could invalidate another's slot meanwhile.
static SLOTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

/// `column` of every row whose `column` is not NULL, by id.
async fn column_rows(db: &Client, table: &str, column: &str) -> BTreeMap<i64, String> {
    db.query(
        &format!("SELECT id, {column}::text FROM {table} WHERE {column} IS NOT NULL"),
        &[],
    )
    .await
    .unwrap_or_else(|e| panic!("read {table}.{column}: {e}"))
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect()
}

/// The text form of `column` in row `id`: `None` without a row, `Some(None)` for NULL.
async fn cell(db: &Client, table: &str, column: &str, id: i64) -> Option<Option<String>> {
    db.query_opt(
        &format!("SELECT {column}::text FROM {table} WHERE id = $1"),
        &[&id],
    )
    .await
    .unwrap_or_else(|e| panic!("read {table}.{column} of {id}: {e}"))
    .map(|r| r.get(0))
}

// ---------------------------------------------------------------------------------------
// 1. An outage of the database, through a proxy.
// ---------------------------------------------------------------------------------------

const WRITERS: usize = 4;
/// Ids of the write-back keys written during the outage.
const WB_BASE: i64 = 2_000_000;
const MAX_DIRTY: usize = 50;

/// Before the cut, during the outage, after the restore.
const BEFORE: u8 = 0;
const OUTAGE: u8 = 1;
const RESTORED: u8 = 2;

/// One write-through SET of a writer, each to a key of its own.
#[derive(Debug)]
struct Attempt {
    id: i64,
    value: String,
    /// The phase when it was sent, and when its reply came.
    sent: u8,
    answered: u8,
    reply: Reply,
}

/// SETs distinct keys in a loop until `stop`; pauses briefly after an error.
async fn writer(
    port: u16,
    w: usize,
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicU8>,
    recovered: Arc<AtomicUsize>,
) -> Vec<Attempt> {
    let mut c = Resp::connect(port).await.expect("writer connects");
    let mut attempts = Vec::new();
    let mut recovered_once = false;
    for i in 0.. {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let id = 10_000 + (w as i64) * 100_000 + i;
        let value = format!("w{w}-{i}");
        let sent = phase.load(Ordering::SeqCst);
        let reply = c.cmd(&["SET", &format!("wt:{id}"), &value]).await;
        let answered = phase.load(Ordering::SeqCst);
        let ok = reply.is_ok();
        attempts.push(Attempt {
            id,
            value,
            sent,
            answered,
            reply,
        });
        if ok && sent == RESTORED && !recovered_once {
            recovered_once = true;
            recovered.fetch_add(1, Ordering::SeqCst);
        }
        if !ok {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    attempts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_through_a_proxy() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let table = format!("sluice_e2e_outage_{}", unique_suffix());
    let admin = connect(&url).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, wt text, wb text)"
        ))
        .await
        .expect("create the table");
    with_cleanup(outage(url, table.clone()), async {
        admin
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .expect("drop the table");
    })
    .await;
}

async fn outage(url: String, table: String) {
    let db = connect(&url).await;
    let (upstream, _) = pg_upstream_and_proxied_url(&url, 0);
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = pg_upstream_and_proxied_url(&url, proxy.port);
    let server = Sluice::start(&format!(
        r#"
[store]
url = "{proxied}"

[journal]
durability = "fsync"

[[keyspace]]
name = "wt"
keys = "wt:{{id}}"
table = "{table}"
key_column = "id"
value_column = "wt"
policy = "write-through"

[[keyspace]]
name = "wb"
keys = "wb:{{id}}"
table = "{table}"
key_column = "id"
value_column = "wb"
policy = "write-back"
max_dirty = {MAX_DIRTY}
backpressure_timeout = "200ms"
flush_interval = "100ms"
"#
    ))
    .await;
    let mut c = server.client().await;

    // Both policies work through the proxy.
    c.ok(&["SET", "wt:1", "before"]).await;
    assert_eq!(
        cell(&db, &table, "wt", 1).await,
        Some(Some("before".into()))
    );
    c.ok(&["SET", "wb:1000001", "b-before"]).await;
    c.ok(&["SLUICE.FLUSH"]).await;
    assert_eq!(
        cell(&db, &table, "wb", 1_000_001).await,
        Some(Some("b-before".into()))
    );
    assert_eq!(c.keyspace_counter("wb", "buffered").await, 0);

    // Write-through writers run through the whole outage.
    let stop = Arc::new(AtomicBool::new(false));
    let phase = Arc::new(AtomicU8::new(BEFORE));
    let recovered = Arc::new(AtomicUsize::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            tokio::spawn(writer(
                server.port,
                w,
                stop.clone(),
                phase.clone(),
                recovered.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    // ---- The outage: every connection cut, new ones refused. ----
    proxy.set_mode(ProxyMode::Refuse);
    phase.store(OUTAGE, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let e = c.err(&["SET", "wt:900001", "during"]).await;
    assert!(
        e.starts_with("ERR store failed for keyspace 'wt'"),
        "write-through during the outage: {e}"
    );
    eprintln!("write-through SET, database refusing connections: -{e}");
    // The cached copy is still served; a key not cached cannot be read, and says so.
    assert_eq!(c.get("wt:1").await.as_deref(), Some("before"));
    let e = c.err(&["GET", "wt:900002"]).await;
    assert!(e.starts_with("ERR store failed for keyspace 'wt'"), "{e}");

    // Write-back takes writes until max_dirty distinct keys are buffered...
    let mut acked_wb: BTreeMap<i64, String> = BTreeMap::new();
    for i in 0..MAX_DIRTY as i64 {
        let id = WB_BASE + i;
        let value = format!("b{i}");
        c.ok(&["SET", &format!("wb:{id}"), &value]).await;
        acked_wb.insert(id, value);
    }
    assert_eq!(c.keyspace_counter("wb", "buffered").await, MAX_DIRTY as u64);
    // ...then answers BUSY once the backpressure timeout has passed...
    let asked = Instant::now();
    let reply = c
        .cmd(&["SET", &format!("wb:{}", WB_BASE + MAX_DIRTY as i64), "x"])
        .await;
    let busy_after = asked.elapsed();
    assert_eq!(
        reply,
        Reply::Error("BUSY write-back buffer full (keyspace wb)".into())
    );
    assert!(
        busy_after >= Duration::from_millis(200),
        "BUSY after {busy_after:?}, before the 200ms backpressure timeout"
    );
    // ...while a key already buffered still takes writes (they coalesce).
    c.ok(&["SET", &format!("wb:{WB_BASE}"), "b0-rewritten"])
        .await;
    acked_wb.insert(WB_BASE, "b0-rewritten".into());
    assert_eq!(
        c.get(&format!("wb:{WB_BASE}")).await.as_deref(),
        Some("b0-rewritten")
    );
    assert_eq!(c.keyspace_counter("wb", "buffered").await, MAX_DIRTY as u64);
    // Nothing reached the table: the outage is real.
    let stored_wb = column_rows(&db, &table, "wb").await;
    assert!(
        stored_wb.keys().all(|&id| id < WB_BASE),
        "a write-back row was stored during the outage: {stored_wb:?}"
    );

    // ---- A hung database: connections accepted but never answered. ----
    proxy.set_mode(ProxyMode::Stall);
    let asked = Instant::now();
    let e = c.err(&["SET", "wt:900003", "stalled"]).await;
    let stalled_for = asked.elapsed();
    eprintln!("write-through SET, database hung: -{e} (after {stalled_for:?})");
    assert!(e.starts_with("ERR store failed for keyspace 'wt'"), "{e}");
    assert!(
        stalled_for < Duration::from_secs(12),
        "a hung database held a write for {stalled_for:?}"
    );

    // ---- Restore. ----
    phase.store(RESTORED, Ordering::SeqCst);
    proxy.set_mode(ProxyMode::Forward);
    let asked = Instant::now();
    let reply = c.cmd(&["SLUICE.FLUSH"]).await;
    let drained_in = asked.elapsed();
    assert!(
        reply.is_ok(),
        "SLUICE.FLUSH after the restore: {reply:?}; log:\n{}",
        server.log()
    );
    assert!(
        drained_in < Duration::from_secs(10),
        "drain took {drained_in:?}"
    );
    assert_eq!(c.keyspace_counter("wb", "buffered").await, 0);
    let stored_wb = column_rows(&db, &table, "wb").await;
    for (id, value) in &acked_wb {
        assert_eq!(
            stored_wb.get(id),
            Some(value),
            "acknowledged write-back wb:{id} is not in the table"
        );
    }
    assert_eq!(
        stored_wb.get(&(WB_BASE + MAX_DIRTY as i64)),
        None,
        "the write refused with BUSY was stored"
    );

    // Every writer gets through again.
    let deadline = Instant::now() + Duration::from_secs(10);
    while recovered.load(Ordering::SeqCst) < WRITERS {
        assert!(
            Instant::now() < deadline,
            "write-through writers did not recover within 10s; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let mut attempts = Vec::new();
    for (w, handle) in writers.into_iter().enumerate() {
        let mine = handle.await.expect("writer task");
        // Once through after the restore, a writer stays through.
        if let Some(first) = mine
            .iter()
            .position(|a| a.sent == RESTORED && a.reply.is_ok())
        {
            let later_errors: Vec<&Attempt> =
                mine[first..].iter().filter(|a| !a.reply.is_ok()).collect();
            assert!(
                later_errors.is_empty(),
                "writer {w}: errors after recovering: {later_errors:?}"
            );
        }
        attempts.extend(mine);
    }

    // ---- Write-through verdict. ----
    let stored = column_rows(&db, &table, "wt").await;
    let mut acked = 0;
    let mut refused = 0;
    let mut in_doubt = Vec::new();
    let mut by_phase = [[0usize; 2]; 3];
    for a in &attempts {
        by_phase[a.sent as usize][usize::from(!a.reply.is_ok())] += 1;
        match &a.reply {
            r if r.is_ok() => {
                acked += 1;
                assert_eq!(
                    stored.get(&a.id),
                    Some(&a.value),
                    "FALSE ACK: wt:{} answered +OK but the table does not hold {:?}",
                    a.id,
                    a.value
                );
            }
            Reply::Error(e) => {
                refused += 1;
                assert!(
                    e.starts_with("ERR store failed for keyspace 'wt'"),
                    "wt:{}: unexpected error {e}",
                    a.id
                );
                if let Some(v) = stored.get(&a.id) {
                    assert_eq!(v, &a.value);
                    // Committed although the client heard an error: only possible when the
                    // connection died after COMMIT was sent, before its answer came back, and
                    // the error must say the outcome is unknown.
                    assert!(
                        e.contains("PostgreSQL commit:") && e.contains("outcome is unknown"),
                        "wt:{} answered an error that does not say the COMMIT is in doubt, yet \
                         its value was stored: {e}",
                        a.id
                    );
                    in_doubt.push((a.id, e.clone()));
                }
                if a.sent == OUTAGE && a.answered == OUTAGE {
                    // Sent after the cut and answered before the restore: cannot have landed.
                    assert!(
                        !stored.contains_key(&a.id),
                        "wt:{} was stored although sent and answered during the outage",
                        a.id
                    );
                }
            }
            other => panic!("wt:{}: unexpected reply {other:?}", a.id),
        }
        if a.sent == OUTAGE && a.answered == OUTAGE {
            assert!(
                !a.reply.is_ok(),
                "wt:{} answered +OK during the outage",
                a.id
            );
        }
    }
    // No row appeared that no writer wrote.
    let written: BTreeSet<i64> = attempts.iter().map(|a| a.id).collect();
    for id in stored.keys() {
        assert!(
            *id == 1 || written.contains(id),
            "row {id} was never written"
        );
    }
    for (id, probe) in [(900_001, "during"), (900_003, "stalled")] {
        assert_eq!(
            stored.get(&id),
            None,
            "the refused probe {probe:?} was stored"
        );
    }
    // The cache agrees with the table: a failed write left no cached copy behind.
    for a in &attempts {
        let got = c.get(&format!("wt:{}", a.id)).await;
        assert_eq!(got.as_ref(), stored.get(&a.id), "GET wt:{}", a.id);
    }
    assert!(by_phase[BEFORE as usize][0] > 0, "no write before the cut");
    assert!(
        by_phase[OUTAGE as usize][1] > 0,
        "no error during the outage"
    );
    assert!(
        by_phase[RESTORED as usize][0] > 0,
        "no write after the restore"
    );
    let (forwarded, refused_conns, stalled_conns) = proxy.counts();
    eprintln!(
        "write-through: {} SETs, {acked} +OK, {refused} errors ({} in doubt: error about COMMIT \
         but committed: {in_doubt:?}); by phase [ok, err]: before {:?}, outage {:?}, restored {:?}",
        attempts.len(),
        in_doubt.len(),
        by_phase[0],
        by_phase[1],
        by_phase[2]
    );
    eprintln!(
        "write-back: {} acked during the outage, BUSY after {busy_after:?}, drained in \
         {drained_in:?}; proxy: {forwarded} forwarded, {refused_conns} refused, {stalled_conns} \
         stalled connections",
        acked_wb.len()
    );
    drop(server);
    drop(proxy);
}

// ---------------------------------------------------------------------------------------
// 2. An existing products table, shared with another program.
// ---------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_table_end_to_end() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let table = format!("sluice_e2e_products_{}", unique_suffix());
    let admin = connect(&url).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, price numeric(10,2), name text)"
        ))
        .await
        .expect("create the table");
    with_cleanup(products(url, table.clone()), async {
        admin
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .expect("drop the table");
    })
    .await;
}

async fn products(url: String, table: String) {
    // "Another program" owns the rows.
    let other = connect(&url).await;
    other
        .batch_execute(&format!(
            "INSERT INTO {table} (id, price, name) VALUES (1, 7.5, 'pen'), (2, 3.25, 'ink'), \
             (3, 12, 'pad')"
        ))
        .await
        .expect("insert the rows");
    let server = Sluice::start(&format!(
        r#"
[store]
url = "{url}"

[[keyspace]]
name = "product_price"
keys = "product:{{id}}:price"
table = "{table}"
key_column = "id"
value_column = "price"
policy = "write-through"
ttl = "1h"
on_delete = "delete-row"

[[keyspace]]
name = "product_name"
keys = "product:{{id}}:name"
table = "{table}"
key_column = "id"
value_column = "name"
policy = "write-through"
"#
    ))
    .await;
    let mut c = server.client().await;

    // Read-through, in PostgreSQL's own text form for the column.
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("7.50"));
    assert_eq!(c.get("product:3:price").await.as_deref(), Some("12.00"));
    assert_eq!(c.get("product:1:name").await.as_deref(), Some("pen"));
    assert_eq!(c.get("product:404:price").await, None);

    // Write-through.
    c.ok(&["SET", "product:1:price", "9.99"]).await;
    assert_eq!(
        cell(&other, &table, "price", 1).await,
        Some(Some("9.99".into()))
    );
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));
    // A new id inserts a row (its other columns NULL).
    c.ok(&["SET", "product:8:price", "2.5"]).await;
    assert_eq!(
        cell(&other, &table, "price", 8).await,
        Some(Some("2.50".into()))
    );
    assert_eq!(cell(&other, &table, "name", 8).await, Some(None));

    // A value the column cannot hold is refused before anything is written, naming the key
    // capture and the column; the row and the cached copy keep the old value.
    let e = c.err(&["SET", "product:1:price", "abc"]).await;
    assert!(
        e.contains(r#"value "abc" for key "1""#)
            && e.contains(&format!("{table}.price"))
            && e.contains("numeric"),
        "{e}"
    );
    eprintln!("SET product:1:price abc: -{e}");
    assert_eq!(
        cell(&other, &table, "price", 1).await,
        Some(Some("9.99".into()))
    );
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));
    // A number the column's precision cannot hold passes the client-side check and is
    // refused by PostgreSQL itself (numeric field overflow): still nothing changes.
    let e = c.err(&["SET", "product:1:price", "123456789"]).await;
    assert!(
        e.starts_with("ERR store failed for keyspace 'product_price'") && e.contains("22003"),
        "{e}"
    );
    eprintln!("SET product:1:price 123456789: -{e}");
    assert_eq!(
        cell(&other, &table, "price", 1).await,
        Some(Some("9.99".into()))
    );
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));

    // A key capture the id column cannot hold is refused too, and such a key does not exist.
    let rows_before = column_rows(&other, &table, "price").await;
    let e = c.err(&["SET", "product:xyz:price", "1"]).await;
    assert!(
        e.contains(r#"key capture "xyz""#) && e.contains(&format!("{table}.id")),
        "{e}"
    );
    eprintln!("SET product:xyz:price 1: -{e}");
    assert_eq!(c.get("product:xyz:price").await, None);
    assert_eq!(column_rows(&other, &table, "price").await, rows_before);

    // Another program updates a row whose value is cached: the cache keeps serving its copy
    // until the keyspace ttl (1h) passes. Expected: Sluice is not notified of external
    // writes; `ttl` bounds how stale a cached copy can be.
    other
        .execute(
            &format!("UPDATE {table} SET price = 10.50 WHERE id = 1"),
            &[],
        )
        .await
        .expect("external update");
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));
    // On a mapped table the row has no expiry; the ttl bounds the cached copy only.
    assert_eq!(c.cmd(&["TTL", "product:1:price"]).await, Reply::Int(-1));
    // Keys not cached read the other program's writes.
    other
        .execute(
            &format!("UPDATE {table} SET price = 4.75 WHERE id = 2"),
            &[],
        )
        .await
        .expect("external update");
    assert_eq!(c.get("product:2:price").await.as_deref(), Some("4.75"));
    // A miss is not cached: a row inserted after a GET answered nil is seen at once.
    assert_eq!(c.get("product:7:price").await, None);
    other
        .execute(
            &format!("INSERT INTO {table} (id, price, name) VALUES (7, 1.25, 'cap')"),
            &[],
        )
        .await
        .expect("external insert");
    assert_eq!(c.get("product:7:price").await.as_deref(), Some("1.25"));

    // DEL with on_delete = "delete-row" deletes the row.
    assert_eq!(c.cmd(&["DEL", "product:2:price"]).await, Reply::Int(1));
    assert_eq!(
        cell(&other, &table, "price", 2).await,
        None,
        "row 2 still exists"
    );
    assert_eq!(c.get("product:2:price").await, None);
    assert_eq!(c.get("product:2:name").await, None);
    assert_eq!(c.cmd(&["DEL", "product:2:price"]).await, Reply::Int(0));
    // DEL with the default on_delete ("set-null") clears the column and keeps the row.
    assert_eq!(c.cmd(&["DEL", "product:3:name"]).await, Reply::Int(1));
    assert_eq!(cell(&other, &table, "name", 3).await, Some(None));
    assert_eq!(
        cell(&other, &table, "price", 3).await,
        Some(Some("12.00".into()))
    );
    assert_eq!(c.get("product:3:name").await, None);
    assert_eq!(c.get("product:3:price").await.as_deref(), Some("12.00"));

    // KEYS lists the rows (non-NULL values), rebuilt from the templates.
    let keys = sorted_strings(c.cmd(&["KEYS", "product:*"]).await);
    let mapped: Vec<&String> = keys
        .iter()
        .filter(|k| k.ends_with(":price") || k.ends_with(":name"))
        .collect();
    assert_eq!(
        mapped,
        vec![
            "product:1:name",
            "product:1:price",
            "product:3:price",
            "product:7:name",
            "product:7:price",
            "product:8:price",
        ],
        "KEYS product:* = {keys:?}"
    );
    assert_eq!(
        sorted_strings(c.cmd(&["KEYS", "product:*:price"]).await),
        vec![
            "product:1:price",
            "product:3:price",
            "product:7:price",
            "product:8:price"
        ]
    );
    drop(server);
}

/// Creates a table (`create`, one batch of statements), runs `scenario` with a connection of
/// its own for reading the table, and drops the table afterwards, even when the scenario panics.
async fn on_new_table<F, Fut>(url: &str, table: &str, create: &str, scenario: F)
where
    F: FnOnce(Arc<Client>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let admin = connect(url).await;
    admin.batch_execute(create).await.expect("create the table");
    let reader = Arc::new(connect(url).await);
    with_cleanup(scenario(reader), async {
        admin
            .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
            .await
            .expect("drop the table");
    })
    .await;
}

/// A scenario's reader of one row by id: `select` takes the id as `$1`; `map` turns the row, if
/// any, into what the scenario compares.
fn read_by_id<T: Send + 'static>(
    reader: Arc<Client>,
    select: String,
    map: fn(Option<tokio_postgres::Row>) -> T,
) -> impl Fn(i64) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + Sync {
    move |id: i64| {
        let (reader, select) = (reader.clone(), select.clone());
        Box::pin(async move {
            map(reader
                .query_opt(&select, &[&id])
                .await
                .expect("read the row"))
        })
    }
}

/// A hash keyspace on a PostgreSQL row: see [`sql_e2e::hash_rows_scenario`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_rows_end_to_end() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let table = format!("sluice_e2e_users_{}", unique_suffix());
    let create = format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, name text, email text, \
         age integer CHECK (age >= 0))"
    );
    let (config, select) = (
        sql_e2e::users_keyspace(&url, &table),
        format!("SELECT name, email, age::text FROM {table} WHERE id = $1"),
    );
    on_new_table(&url, &table, &create, |reader| async move {
        let server = Sluice::start(&config).await;
        let row = read_by_id(reader, select, |row| {
            row.map(|r| [r.get(0), r.get(1), r.get(2)])
        });
        sql_e2e::hash_rows_scenario(&server, &row).await;
    })
    .await;
}

/// A write-back transaction spanning the built-in table and a mapped one on PostgreSQL: see
/// [`sql_e2e::spanning_write_back_scenario`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_transaction_spanning_keyspaces_end_to_end() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let (table, plain) = sql_e2e::spanning_names();
    let create = format!(
        "CREATE TABLE {table} (id bigint PRIMARY KEY, price numeric(10,2) CHECK (price >= 0));
         INSERT INTO {table} VALUES (1, 10), (2, 20)"
    );
    let (config, select) = (
        sql_e2e::spanning_write_back_keyspaces(&url, &table),
        format!("SELECT price::text FROM {table} WHERE id = $1"),
    );
    on_new_table(&url, &table, &create, |reader| async move {
        let server = Sluice::start(&config).await;
        let price = read_by_id(reader, select, |row| row.and_then(|r| r.get(0)));
        sql_e2e::spanning_write_back_scenario(&server, &price, &plain).await;
    })
    .await;
}

/// Change capture through a cut connection: every connection to PostgreSQL (the store's, the
/// replication stream, the feed's control connection) goes through the proxy, which cuts them
/// all while another program changes a cached row; once the way is open again the feed
/// reconnects, resumes from its slot's confirmed position (no loss, nothing recreated) and the
/// cached copy shows the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_capture_resumes_after_a_cut_connection() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let _slots = SLOTS.lock().await;
    let suffix = unique_suffix();
    let table = format!("sluice_e2e_cdc_{suffix}");
    let node = format!("e2e_cut_{suffix}");
    let admin = connect(&url).await;
    text_price_table(&admin, &table).await;
    with_cleanup(
        change_capture_cut(url.clone(), table.clone(), node.clone()),
        drop_change_capture(admin, node, table),
    )
    .await;
}

/// Creates `table (id, price text)` holding ids 1 and 2 ('ten', 'twenty').
async fn text_price_table(admin: &Client, table: &str) {
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, price text); \
             INSERT INTO {table} VALUES (1, 'ten'), (2, 'twenty');"
        ))
        .await
        .expect("create the table");
}

/// Drops node `node`'s slot and publication and `table`.
async fn drop_change_capture(admin: Client, node: String, table: String) {
    sql_e2e::drop_pg_change_capture(&admin, &node).await;
    admin
        .batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .expect("drop the table");
}

async fn change_capture_cut(url: String, table: String, node: String) {
    let db = connect(&url).await;
    let (upstream, _) = pg_upstream_and_proxied_url(&url, 0);
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = pg_upstream_and_proxied_url(&url, proxy.port);
    let config = change_capture_config(&proxied, &table, &node);
    let server = Sluice::start(&format!("[journal]\ndurability = \"none\"\n{config}")).await;
    let mut c = server.client().await;
    assert_eq!(c.get("price:1").await.as_deref(), Some("ten"));
    assert_eq!(c.get("price:2").await.as_deref(), Some("twenty"));
    proxy.set_mode(ProxyMode::Refuse);
    db.batch_execute(&format!(
        "UPDATE {table} SET price = 'eleven' WHERE id = 1; UPDATE {table} SET price = 'twenty-one' WHERE id = 2;"
    ))
    .await
    .expect("outside update");
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Cut off, the node still answers from its cache.
    assert_eq!(c.get("price:1").await.as_deref(), Some("ten"));
    proxy.set_mode(ProxyMode::Forward);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (one, two) = (c.get("price:1").await, c.get("price:2").await);
        if one.as_deref() == Some("eleven") && two.as_deref() == Some("twenty-one") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {one:?} and {two:?} after the way opened; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let info = c.cmd(&["INFO", "sluice"]).await.bulk_str().expect("INFO");
    assert!(info.contains("changes_lost:0"), "{info}");
    assert!(
        !info.contains("changes_errors:0\r"),
        "the cut was seen: {info}"
    );
}

/// Change capture and a SIGKILL during a burst of outside changes (see
/// `sql_e2e::change_capture_kill_scenario`): the restarted server takes its slot up again (the
/// killed one's walsender may still hold it for a moment) and every key ends at the table's
/// value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_capture_survives_a_kill_during_a_burst_of_outside_changes() {
    const ROWS: i64 = 50;
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let _slots = SLOTS.lock().await;
    let suffix = unique_suffix();
    let table = format!("sluice_e2e_cdc_kill_{suffix}");
    let node = format!("e2e_kill_{suffix}");
    let admin = connect(&url).await;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, price bigint NOT NULL); \
             INSERT INTO {table} SELECT g, 0 FROM generate_series(0, {}) g;",
            ROWS - 1
        ))
        .await
        .expect("create the table");
    let config = change_capture_config(&url, &table, &node);
    let writer = connect(&url).await;
    let update = format!("UPDATE {table} SET price = $1");
    let writer = Arc::new(writer);
    with_cleanup(
        change_capture_kill_scenario(config, ROWS, move |n| {
            let (writer, update) = (writer.clone(), update.clone());
            async move {
                writer
                    .execute(&update, &[&n])
                    .await
                    .expect("outside update");
            }
        }),
        drop_change_capture(admin, node, table),
    )
    .await;
}

/// A slot PostgreSQL gave up on: with `max_slot_wal_keep_size` set (as operators are told to,
/// so that a slot nobody follows cannot fill the disk), a node cut off while more WAL than that
/// is written finds its slot `lost` when it reconnects. It drops and recreates the slot, drops
/// its cached copies (one is stale: its row changed in the WAL that is gone), counts a lost
/// stream and follows the new one. The setting is changed on the test server for the test and
/// reset after it; the change-capture tests of this file take `SLOTS` one at a time so that no
/// other test's slot is judged meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slot_postgres_invalidated_is_a_lost_stream() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let _slots = SLOTS.lock().await;
    let suffix = unique_suffix();
    let table = format!("sluice_e2e_cdc_lost_{suffix}");
    let node = format!("e2e_lost_{suffix}");
    let admin = connect(&url).await;
    text_price_table(&admin, &table).await;
    let reset = connect(&url).await;
    with_cleanup(
        change_capture_slot_lost(url.clone(), table.clone(), node.clone()),
        async move {
            drop_change_capture(admin, node, table).await;
            for sql in [
                "ALTER SYSTEM RESET max_slot_wal_keep_size",
                "SELECT pg_reload_conf()",
            ] {
                reset
                    .batch_execute(sql)
                    .await
                    .expect("reset max_slot_wal_keep_size");
            }
        },
    )
    .await;
}

async fn change_capture_slot_lost(url: String, table: String, node: String) {
    let db = connect(&url).await;
    let (upstream, _) = pg_upstream_and_proxied_url(&url, 0);
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = pg_upstream_and_proxied_url(&url, proxy.port);
    let config = change_capture_config(&proxied, &table, &node);
    let server = Sluice::start(&format!("[journal]\ndurability = \"none\"\n{config}")).await;
    let mut c = server.client().await;
    assert_eq!(c.get("price:1").await.as_deref(), Some("ten"));
    assert_eq!(c.get("price:2").await.as_deref(), Some("twenty"));
    proxy.set_mode(ProxyMode::Refuse);
    for sql in [
        "ALTER SYSTEM SET max_slot_wal_keep_size = '1MB'".to_string(),
        "SELECT pg_reload_conf()".to_string(),
        format!("UPDATE {table} SET price = 'eleven' WHERE id = 1"),
    ] {
        db.batch_execute(&sql)
            .await
            .expect("lower the limit, then an outside update");
    }
    // More WAL than the slot may keep, then a checkpoint, which invalidates it (ending the
    // cut node's walsender, if the server had not noticed the cut yet).
    let slot = format!("sluice_{node}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        for sql in [
            "CREATE TEMP TABLE IF NOT EXISTS wal_filler (v text)",
            "INSERT INTO wal_filler SELECT repeat('x', 1000) FROM generate_series(1, 5000)",
            "SELECT pg_switch_wal()",
            "CHECKPOINT",
        ] {
            db.batch_execute(sql).await.expect("write WAL");
        }
        let status: Option<String> = db
            .query_opt(
                "SELECT wal_status FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .expect("read the slot")
            .and_then(|r| r.get(0));
        if status.as_deref() == Some("lost") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot was not invalidated: {status:?}"
        );
    }
    // Cut off, the node still answers from its cache.
    assert_eq!(c.get("price:1").await.as_deref(), Some("ten"));
    proxy.set_mode(ProxyMode::Forward);
    await_lost_stream(&server, &mut c).await;
    assert_eq!(
        c.get("price:1").await.as_deref(),
        Some("eleven"),
        "the stale copy went"
    );
    db.batch_execute(&format!(
        "UPDATE {table} SET price = 'twenty-one' WHERE id = 2"
    ))
    .await
    .expect("outside update");
    await_value(&mut c, "price:2", "twenty-one").await;
}
