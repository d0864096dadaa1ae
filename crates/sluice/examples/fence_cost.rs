//! What the fence (`Store::claim_fence`) costs a cluster node's store writes: the same batches
//! written through a store that claimed a node name and through one that did not, on one
//! database, rounds alternated so that both see the same machine.
//!
//! - one-entry batches, one at a time: a write-through write at P1 (a group of one);
//! - 500-entry batches: a write-back flush.
//!
//! usage: cargo run --release -p sluice --example fence_cost -- (postgres://...|mysql://...|sqlite) [N]
//! Not a test: figures depend on the machine; see bench/fence_cost.sh.

use std::time::Instant;

use sluice::model::StoreWrite;
use sluice::tiers::store::{self, SharedStore, StoreOp, Target};
use sluice::{Bytes, Kind};

const SCHEMA: &str = "sluice_fence_bench";

fn batch(round: usize, start: usize, len: usize) -> Vec<StoreOp> {
    (start..start + len)
        .map(|i| StoreOp {
            target: Target::Builtin { db: 0 },
            key: Bytes::from(format!("fence-bench:{i}")),
            write: StoreWrite::Upsert {
                value: Bytes::from(format!("{round}-{i}")),
                kind: Kind::String,
                expires_at: None,
            },
        })
        .collect()
}

/// Seconds to write `n` one-entry batches, then `n / 10` batches of 500.
async fn round(store: &SharedStore, round_no: usize, n: usize) -> (f64, f64) {
    let began = Instant::now();
    for i in 0..n {
        let outcome = store
            .write_batch(batch(round_no, i, 1))
            .await
            .expect("write");
        assert!(outcome[0].is_ok(), "{:?}", outcome[0]);
    }
    let singles = began.elapsed().as_secs_f64();
    let began = Instant::now();
    for b in 0..n / 10 {
        store
            .write_batch(batch(round_no, b * 500 % 50_000, 500))
            .await
            .expect("write");
    }
    (singles, began.elapsed().as_secs_f64())
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_else(|| "sqlite".to_string());
    let n: usize = args.next().map_or(2000, |s| s.parse().expect("N"));
    let dir = tempfile::tempdir().expect("tempdir");
    let url = if target.starts_with("postgres") {
        let (client, conn) = tokio_postgres::connect(&target, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {SCHEMA} CASCADE; CREATE SCHEMA {SCHEMA}"
            ))
            .await
            .expect("schema");
        let sep = if target.contains('?') { '&' } else { '?' };
        format!("{target}{sep}options=-c%20search_path%3D{SCHEMA}")
    } else if target.starts_with("mysql") {
        use mysql_async::prelude::Queryable;
        let mut conn = mysql_async::Conn::from_url(target.as_str())
            .await
            .expect("connect");
        conn.query_drop(format!(
            "DROP DATABASE IF EXISTS {SCHEMA}; CREATE DATABASE {SCHEMA}"
        ))
        .await
        .expect("database");
        let base = target.rsplit_once('/').map_or(target.as_str(), |(b, _)| b);
        format!("{base}/{SCHEMA}")
    } else {
        format!("sqlite://{}", dir.path().join("fence.db").display())
    };
    let plain = store::open_url(&url).await.expect("open");
    plain.ensure_builtin_table().await.expect("table");
    let fenced = store::open_url(&url).await.expect("open");
    let generation = fenced.claim_fence("bench-node").await.expect("claim");
    println!(
        "store: {}, fenced store at generation {generation}, N = {n}",
        plain.describe()
    );
    println!("round  store    1-entry batches/s  500-entry batches: rows/s");
    let (mut one, mut many) = ([0.0f64; 2], [0.0f64; 2]);
    for r in 0..3 {
        for (i, (name, store)) in [("plain", &plain), ("fenced", &fenced)]
            .into_iter()
            .enumerate()
        {
            let (s, b) = round(store, r * 2 + i, n).await;
            let (ops, rows) = (n as f64 / s, (n / 10 * 500) as f64 / b);
            one[i] += ops;
            many[i] += rows;
            println!("{r:>5}  {name:<7}  {ops:>17.0}  {rows:>25.0}");
        }
    }
    println!(
        "fenced / plain: 1-entry {:.2}x, 500-entry {:.2}x",
        one[1] / one[0],
        many[1] / many[0]
    );
    if target.starts_with("postgres") {
        let (client, conn) = tokio_postgres::connect(&target, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        let _ = client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
            .await;
    } else if target.starts_with("mysql") {
        use mysql_async::prelude::Queryable;
        if let Ok(mut conn) = mysql_async::Conn::from_url(target.as_str()).await {
            let _ = conn
                .query_drop(format!("DROP DATABASE IF EXISTS {SCHEMA}"))
                .await;
        }
    }
}
