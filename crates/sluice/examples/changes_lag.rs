//! Change-capture lag and rate, in process: a Sluice with change capture on over a table of
//! 10,000 cached rows, and an outside writer on its own connection.
//!
//! - lag: N single-row updates, one at a time; for each, the time from the outside COMMIT
//!   returning to a GET through Sluice showing the new value (p50, p99, max);
//! - rate: one UPDATE of every row; changes applied per second until all 10,000 are.
//!
//! usage: cargo run --release -p sluice --example changes_lag -- (sqlite|postgres://...|mysql://...) [N]
//! Not a test: figures depend on the machine; see bench/changes_lag.sh.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use sluice::config::{Config, StoreConfig};
use sluice::{Bytes, Durability, KeyspaceConfig, Policy, Sluice};

const ROWS: i64 = 10_000;
const TABLE: &str = "changes_lag_bench";

enum Outside {
    Sqlite(rusqlite::Connection),
    Postgres(tokio_postgres::Client),
    MySql(tokio::sync::Mutex<mysql_async::Conn>),
}

impl Outside {
    async fn run(&self, sql: &str) {
        use mysql_async::prelude::Queryable;
        match self {
            Outside::Sqlite(c) => c.execute_batch(sql).expect("sqlite statement"),
            Outside::Postgres(c) => c.batch_execute(sql).await.expect("postgres statement"),
            Outside::MySql(c) => c
                .lock()
                .await
                .query_drop(sql)
                .await
                .expect("mysql statement"),
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let target = args.get(1).map(String::as_str).unwrap_or("sqlite");
    let n: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let setup = format!(
        "DROP TABLE IF EXISTS {TABLE}; CREATE TABLE {TABLE} (id integer PRIMARY KEY, price integer);"
    );
    let (outside, store) = if target == "sqlite" {
        let conn = rusqlite::Connection::open(dir.path().join("sluice.db")).expect("open sqlite");
        conn.busy_timeout(Duration::from_secs(10))
            .expect("busy timeout");
        (Outside::Sqlite(conn), None)
    } else if target.starts_with("mysql://") || target.starts_with("mariadb://") {
        let conn = mysql_async::Conn::from_url(target)
            .await
            .expect("connect to MySQL");
        (
            Outside::MySql(tokio::sync::Mutex::new(conn)),
            Some(StoreConfig {
                url: target.to_string(),
            }),
        )
    } else {
        let _ = sluice::drop_change_objects(target, "lag_bench").await;
        let (client, connection) = tokio_postgres::connect(target, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        (
            Outside::Postgres(client),
            Some(StoreConfig {
                url: target.to_string(),
            }),
        )
    };
    outside.run(&setup).await;
    for chunk in 0..ROWS / 1000 {
        let values: Vec<String> = (chunk * 1000..(chunk + 1) * 1000)
            .map(|i| format!("({i}, 0)"))
            .collect();
        outside
            .run(&format!("INSERT INTO {TABLE} VALUES {}", values.join(", ")))
            .await;
    }
    let mut ks = KeyspaceConfig::builtin(Policy::WriteThrough);
    ks.name = "price".into();
    ks.keys = format!("{TABLE}:{{id}}");
    ks.table = Some(TABLE.into());
    ks.key_column = Some("id".into());
    ks.value_column = Some("price".into());
    let mut config = Config {
        data_dir: dir.path().to_path_buf(),
        store,
        keyspaces: vec![ks],
        ..Config::default()
    };
    config.journal.durability = Durability::None;
    config.changes.enabled = true;
    config.changes.node_name = "lag_bench".into();
    config.changes.poll_interval = Duration::from_millis(1);
    let s = Sluice::open(config).await.expect("open sluice");
    let key = |id: i64| Bytes::from(format!("{TABLE}:{id}"));
    for id in 0..ROWS {
        s.get(0, key(id)).await.expect("GET");
    }

    let mut lags = Vec::with_capacity(n);
    // What each row holds, to check the cache after the bulk update.
    let mut prices = vec![0i64; ROWS as usize];
    for round in 0..n {
        let id = (round as i64 * 7919) % ROWS;
        prices[id as usize] = round as i64 + 1;
        let value = format!("{}", round + 1);
        outside
            .run(&format!(
                "UPDATE {TABLE} SET price = {value} WHERE id = {id}"
            ))
            .await;
        let committed = Instant::now();
        loop {
            let got = s.get(0, key(id)).await.expect("GET");
            if got.as_deref() == Some(value.as_bytes()) {
                break;
            }
            tokio::task::yield_now().await;
            if committed.elapsed() > Duration::from_secs(10) {
                panic!("row {id} did not reach the cache within 10 s");
            }
        }
        lags.push(committed.elapsed());
    }
    lags.sort();
    let pct = |p: f64| lags[((lags.len() as f64 * p) as usize).min(lags.len() - 1)];
    println!(
        "{target}: lag over {n} changes: p50 {:?}, p99 {:?}, max {:?}",
        pct(0.50),
        pct(0.99),
        lags[lags.len() - 1]
    );

    let before = s.metrics().changes.applied.load(Ordering::SeqCst);
    let start = Instant::now();
    outside
        .run(&format!("UPDATE {TABLE} SET price = price + 1"))
        .await;
    while s.metrics().changes.applied.load(Ordering::SeqCst) < before + ROWS as u64 {
        tokio::time::sleep(Duration::from_millis(1)).await;
        if start.elapsed() > Duration::from_secs(120) {
            panic!("the bulk update was not applied within 120 s");
        }
    }
    let took = start.elapsed();
    // Every key reads the updated row (cached copies replaced, not left stale).
    for id in 0..ROWS {
        let got = s.get(0, key(id)).await.expect("GET");
        let want = (prices[id as usize] + 1).to_string();
        assert_eq!(
            got.as_deref(),
            Some(want.as_bytes()),
            "row {id} after the bulk update"
        );
    }
    println!(
        "{target}: {ROWS} changes of one UPDATE applied in {took:?}: {:.0} changes/s (from before the UPDATE ran)",
        ROWS as f64 / took.as_secs_f64()
    );
    let url = s.config().store_url();
    s.shutdown().await;
    let _ = sluice::drop_change_objects(&url, "lag_bench").await;
    outside.run(&format!("DROP TABLE IF EXISTS {TABLE}")).await;
}
