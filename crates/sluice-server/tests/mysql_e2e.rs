//! End-to-end test of the real `sluice` binary over MySQL / MariaDB.
//!
//! Needs `SLUICE_TEST_MYSQL_URL` (e.g. `mysql://root@127.0.0.1:3306/test`); when it is unset
//! the test prints "skipped: ... not set" and passes. The table has a unique name per run and
//! is dropped at the end, even when the test fails.
//!
//! - `products_table_end_to_end`: an existing `products (id BIGINT, price DECIMAL(10,2), name
//!   TEXT)` table written by "another program": read-through in the server's own text form
//!   (`7.50`), write-through SET, read-through of an external write to a key not cached, and
//!   values the column cannot hold refused (by Sluice, or by strict mode on the server) with
//!   the row keeping its old value.
//! - `change_capture_survives_a_kill_during_a_burst_of_outside_changes`: the row binlog
//!   followed through a SIGKILL and restart of the server (`sql_e2e`'s scenario).
//! - `a_purged_binlog_is_a_lost_stream`: the node cut off (a TCP proxy) while the binlog it
//!   needs next is purged; on reconnecting it is told so (server error 1236), drops its cached
//!   copies and follows a new stream. It runs `PURGE BINARY LOGS` on the test server.
//!
//! The change-capture tests take `BINLOG` one at a time: a purge while another test's node
//! reconnects would make that node's stream lost too.

mod resp_reply;
mod sql_e2e;

use mysql_async::prelude::Queryable;
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use sql_e2e::{
    await_lost_stream, await_value, change_capture_config, change_capture_kill_scenario, env_url,
    unique_suffix, with_cleanup, Proxy, ProxyMode, Sluice,
};

const URL_VAR: &str = "SLUICE_TEST_MYSQL_URL";

/// Held by each change-capture test (see the module comment).
static BINLOG: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn exec(pool: &mysql_async::Pool, sql: &str) {
    let mut conn = pool
        .get_conn()
        .await
        .unwrap_or_else(|e| panic!("connect to MySQL: {e}"));
    conn.query_drop(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// The price of row `id` as text: `None` without a row, `Some(None)` for NULL.
async fn price(pool: &mysql_async::Pool, table: &str, id: i64) -> Option<Option<String>> {
    let mut conn = pool
        .get_conn()
        .await
        .unwrap_or_else(|e| panic!("connect to MySQL: {e}"));
    conn.exec_first(
        format!("SELECT CAST(price AS CHAR) FROM {table} WHERE id = ?"),
        (id,),
    )
    .await
    .unwrap_or_else(|e| panic!("read {table}.price of {id}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn products_table_end_to_end() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let table = format!("sluice_e2e_products_{}", unique_suffix());
    let pool = mysql_async::Pool::new(url.as_str());
    exec(
        &pool,
        &format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, price DECIMAL(10,2), name TEXT) \
             ENGINE=InnoDB"
        ),
    )
    .await;
    with_cleanup(products(url, table.clone(), pool.clone()), async {
        exec(&pool, &format!("DROP TABLE IF EXISTS {table}")).await;
    })
    .await;
    pool.disconnect().await.expect("close the MySQL pool");
}

async fn products(url: String, table: String, other: mysql_async::Pool) {
    // "Another program" owns the rows.
    exec(
        &other,
        &format!("INSERT INTO {table} (id, price, name) VALUES (1, 7.5, 'pen'), (2, 3.25, 'ink')"),
    )
    .await;
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
"#
    ))
    .await;
    let mut c = server.client().await;

    // Read-through, in the server's own text form for the column.
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("7.50"));
    assert_eq!(c.get("product:404:price").await, None);

    // Write-through.
    c.ok(&["SET", "product:1:price", "9.99"]).await;
    assert_eq!(price(&other, &table, 1).await, Some(Some("9.99".into())));
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));

    // Refused by Sluice before anything is written: the row and the cached copy keep 9.99.
    let e = c.err(&["SET", "product:1:price", "abc"]).await;
    assert!(
        e.contains(r#"value "abc" for key "1""#)
            && e.contains(&format!("{table}.price"))
            && e.contains("numeric"),
        "{e}"
    );
    eprintln!("SET product:1:price abc: -{e}");
    assert_eq!(price(&other, &table, 1).await, Some(Some("9.99".into())));
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));
    // Refused by the server (strict mode: out of range for DECIMAL(10,2)): nothing changes.
    let e = c.err(&["SET", "product:1:price", "123456789"]).await;
    assert!(
        e.starts_with("ERR store failed for keyspace 'product_price'") && e.contains("1264"),
        "{e}"
    );
    eprintln!("SET product:1:price 123456789: -{e}");
    assert_eq!(price(&other, &table, 1).await, Some(Some("9.99".into())));
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));
    // A non-integer id is refused too.
    let e = c.err(&["SET", "product:xyz:price", "1"]).await;
    assert!(e.contains(r#"key capture "xyz""#), "{e}");

    // Another program's write to a key not cached is read through.
    exec(
        &other,
        &format!("UPDATE {table} SET price = 4.75 WHERE id = 2"),
    )
    .await;
    assert_eq!(c.get("product:2:price").await.as_deref(), Some("4.75"));
    // A cached copy stays until the ttl (1h): Sluice is not told about external writes.
    exec(
        &other,
        &format!("UPDATE {table} SET price = 10.50 WHERE id = 1"),
    )
    .await;
    assert_eq!(c.get("product:1:price").await.as_deref(), Some("9.99"));
    drop(server);
}

/// Creates a table (`create`, one statement after another), runs `scenario` with a pool for
/// reading it, and drops the table afterwards, even when the scenario panics.
async fn on_new_table<F, Fut>(url: &str, table: &str, create: &[String], scenario: F)
where
    F: FnOnce(mysql_async::Pool) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let pool = mysql_async::Pool::new(url);
    for statement in create {
        exec(&pool, statement).await;
    }
    with_cleanup(scenario(pool.clone()), async {
        exec(&pool, &format!("DROP TABLE IF EXISTS {table}")).await;
    })
    .await;
}

/// A scenario's reader of one row of `table` by id: `read` runs it on a connection of `pool`.
fn read_by_id<T, R, Fut>(
    pool: mysql_async::Pool,
    table: String,
    read: R,
) -> impl Fn(i64) -> std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>> + Send + Sync
where
    R: Fn(mysql_async::Pool, String, i64) -> Fut + Send + Sync,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    move |id: i64| Box::pin(read(pool.clone(), table.clone(), id))
}

/// Row `id` of the users table: (name, email, age) as text.
async fn user_row(pool: mysql_async::Pool, table: String, id: i64) -> sql_e2e::UserRow {
    let mut conn = pool.get_conn().await.expect("connect to MySQL");
    conn.exec_first::<(Option<String>, Option<String>, Option<String>), _, _>(
        format!("SELECT name, email, CAST(age AS CHAR) FROM {table} WHERE id = ?"),
        (id,),
    )
    .await
    .expect("read the row")
    .map(|(a, b, c)| [a, b, c])
}

/// A hash keyspace on a MySQL/MariaDB row: see [`sql_e2e::hash_rows_scenario`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_rows_end_to_end() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let table = format!("sluice_e2e_users_{}", unique_suffix());
    let create = [format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT, email TEXT, \
         age INT CHECK (age >= 0))"
    )];
    let config = sql_e2e::users_keyspace(&url, &table);
    let scenario = {
        let table = table.clone();
        |pool: mysql_async::Pool| async move {
            let server = Sluice::start(&config).await;
            let row = read_by_id(pool, table, user_row);
            sql_e2e::hash_rows_scenario(&server, &row).await;
        }
    };
    on_new_table(&url, &table, &create, scenario).await;
}

/// A write-back transaction spanning the built-in table and a mapped one on MySQL/MariaDB: see
/// [`sql_e2e::spanning_write_back_scenario`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_transaction_spanning_keyspaces_end_to_end() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let (table, plain) = sql_e2e::spanning_names();
    let create = [
        format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, price DECIMAL(10,2) CHECK (price >= 0)) \
             ENGINE=InnoDB"
        ),
        format!("INSERT INTO {table} (id, price) VALUES (1, 10), (2, 20)"),
    ];
    let config = sql_e2e::spanning_write_back_keyspaces(&url, &table);
    let scenario = {
        let table = table.clone();
        |pool: mysql_async::Pool| async move {
            let server = Sluice::start(&config).await;
            let read = read_by_id(pool, table, |pool, table, id| async move {
                price(&pool, &table, id).await.flatten()
            });
            sql_e2e::spanning_write_back_scenario(&server, &read, &plain).await;
        }
    };
    on_new_table(&url, &table, &create, scenario).await;
}

/// Change capture and a SIGKILL during a burst of outside changes (see
/// `sql_e2e::change_capture_kill_scenario`). The binlog position is kept in memory only: the
/// restarted server follows the binlog from its end, over a cache that starts empty, so what
/// changed while it was down is read from the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_capture_survives_a_kill_during_a_burst_of_outside_changes() {
    const ROWS: i64 = 50;
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let suffix = unique_suffix();
    let table = format!("sluice_e2e_cdc_kill_{suffix}");
    let pool = price_table(&url, &table).await;
    let values: Vec<String> = (0..ROWS).map(|id| format!("({id}, 0)")).collect();
    exec(
        &pool,
        &format!("INSERT INTO {table} VALUES {}", values.join(", ")),
    )
    .await;
    let _binlog = BINLOG.lock().await;
    let config = change_capture_config(&url, &table, &format!("e2e_kill_{suffix}"));
    let (writer, update) = (pool.clone(), format!("UPDATE {table} SET price = "));
    with_cleanup(
        change_capture_kill_scenario(config, ROWS, move |n| {
            let (writer, sql) = (writer.clone(), format!("{update}{n}"));
            async move { exec(&writer, &sql).await }
        }),
        async {
            exec(&pool, &format!("DROP TABLE IF EXISTS {table}")).await;
        },
    )
    .await;
}

/// A pool on `url` and a new table `table (id, price)` of the change-capture tests.
async fn price_table(url: &str, table: &str) -> mysql_async::Pool {
    let pool = mysql_async::Pool::new(url);
    exec(
        &pool,
        &format!(
            "CREATE TABLE {table} (id BIGINT PRIMARY KEY, price BIGINT NOT NULL) ENGINE=InnoDB"
        ),
    )
    .await;
    pool
}

/// The server's address, and the same URL pointed at 127.0.0.1:`port` instead.
fn upstream_and_proxied_url(url: &str, port: u16) -> (std::net::SocketAddr, String) {
    let opts = mysql_async::Opts::from_url(url).expect("a MySQL URL");
    let upstream = (opts.ip_or_hostname(), opts.tcp_port())
        .to_socket_addrs()
        .expect("resolve the database host")
        .next()
        .expect("an address for the database host");
    let user = opts.user().unwrap_or("root");
    let auth = match opts.pass() {
        Some(p) => format!("{user}:{p}"),
        None => user.to_string(),
    };
    let db = opts.db_name().unwrap_or("test");
    // Without prefer_socket=false the driver would switch to the server's Unix socket, past
    // the proxy, as soon as it sees the server on loopback.
    (
        upstream,
        format!("mysql://{auth}@127.0.0.1:{port}/{db}?prefer_socket=false"),
    )
}

/// Purges every binlog before the current one. A file a dump thread still reads (a cut
/// node's, until the server notices) is kept, so it tries until they went.
async fn purge_binlogs(pool: &mysql_async::Pool) {
    let mut conn = pool.get_conn().await.expect("connect to MySQL");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status: Option<mysql_async::Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .expect("SHOW MASTER STATUS");
        let file: String = status.and_then(|row| row.get(0)).expect("the binlog is on");
        let _ = conn
            .query_drop(format!("PURGE BINARY LOGS TO '{file}'"))
            .await;
        let logs: Vec<String> = conn
            .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
                row.get::<String, _>(0).unwrap_or_default()
            })
            .await
            .expect("SHOW BINARY LOGS");
        if logs == [file.clone()] {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "binlogs before {file} not purged: {logs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A node cut off from the server while the binlog it would read next is purged: when the way
/// opens again the server refuses that position (error 1236), and the node drops every cached
/// copy (one of them is stale: its row changed in the purged binlog), counts a lost stream and
/// follows a new one from the server's current position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purged_binlog_is_a_lost_stream() {
    let Some(url) = env_url(URL_VAR) else {
        return;
    };
    let suffix = unique_suffix();
    let table = format!("sluice_e2e_cdc_purge_{suffix}");
    let pool = price_table(&url, &table).await;
    exec(
        &pool,
        &format!("INSERT INTO {table} VALUES (0, 10), (1, 20)"),
    )
    .await;
    let _binlog = BINLOG.lock().await;
    let (upstream, _) = upstream_and_proxied_url(&url, 0);
    let proxy = Proxy::start(upstream).await;
    let (_, proxied) = upstream_and_proxied_url(&url, proxy.port);
    let config = change_capture_config(&proxied, &table, &format!("e2e_purge_{suffix}"));
    let (body_pool, body_table) = (pool.clone(), table.clone());
    with_cleanup(
        async move {
            let (pool, table) = (body_pool, body_table);
            let server = Sluice::start(&config).await;
            let mut c = server.client().await;
            assert_eq!(c.get("price:0").await.as_deref(), Some("10"));
            assert_eq!(c.get("price:1").await.as_deref(), Some("20"));
            proxy.set_mode(ProxyMode::Refuse);
            // The proxy's connections end as their tasks see the switch: let them.
            tokio::time::sleep(Duration::from_millis(300)).await;
            exec(
                &pool,
                &format!("UPDATE {table} SET price = 11 WHERE id = 0"),
            )
            .await;
            exec(&pool, "FLUSH BINARY LOGS").await;
            purge_binlogs(&pool).await;
            // Cut off, the node still answers from its cache.
            assert_eq!(
                c.get("price:0").await.as_deref(),
                Some("10"),
                "log:\n{}",
                server.log()
            );
            proxy.set_mode(ProxyMode::Forward);
            await_lost_stream(&server, &mut c).await;
            assert_eq!(
                c.get("price:0").await.as_deref(),
                Some("11"),
                "the stale copy went"
            );
            // The new stream is followed.
            exec(
                &pool,
                &format!("UPDATE {table} SET price = 21 WHERE id = 1"),
            )
            .await;
            await_value(&mut c, "price:1", "21").await;
        },
        async {
            exec(&pool, &format!("DROP TABLE IF EXISTS {table}")).await;
        },
    )
    .await;
}
