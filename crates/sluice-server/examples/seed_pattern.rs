//! The seed's application pattern against Sluice write-through, driven by the same async
//! harness so the comparison is fair. Used by `bench/seed_pattern.sh`.
//!
//! - `seed`: each request upserts the row in PostgreSQL, then SETs the key in Redis with a
//!   1 h expiry (the seed's `update_product_price`).
//! - `sluice`: each request is one SET to Sluice, whose keyspace maps `product:{id}:price`
//!   onto the same table with policy write-through.
//! - `commit`: one client, single-row upserts only: the latency of one database commit.
//!
//! usage: seed_pattern MODE PG_URL REDIS_OR_SLUICE_URL CLIENTS SECONDS TABLE

use std::time::{Duration, Instant};

use rand::Rng;

async fn pg(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    client
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 7 {
        eprintln!("usage: seed_pattern seed|sluice|commit PG_URL REDIS_URL CLIENTS SECONDS TABLE");
        std::process::exit(2);
    }
    let (mode, pg_url, redis_url) = (args[1].clone(), args[2].clone(), args[3].clone());
    let clients: usize = args[4].parse().expect("CLIENTS");
    let seconds: u64 = args[5].parse().expect("SECONDS");
    let table = args[6].clone();
    // Every client connects (and prepares) before any is timed: 50 PostgreSQL connections take
    // long enough that counting them would short the seed pattern's window, not Sluice's.
    let ready = std::sync::Arc::new(tokio::sync::Barrier::new(clients));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (mode, pg_url, redis_url, table, ready) = (
            mode.clone(),
            pg_url.clone(),
            redis_url.clone(),
            table.clone(),
            ready.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut latencies: Vec<u32> = Vec::new();
            let db = if mode == "sluice" {
                None
            } else {
                Some(pg(&pg_url).await)
            };
            let upsert = match &db {
                Some(db) => Some(
                    db.prepare(&format!(
                        "INSERT INTO {table} (id, price) VALUES ($1, $2::text::numeric) \
                         ON CONFLICT (id) DO UPDATE SET price = EXCLUDED.price"
                    ))
                    .await
                    .expect("prepare"),
                ),
                None => None,
            };
            let mut redis = if mode == "commit" {
                None
            } else {
                let client = redis::Client::open(redis_url.as_str()).expect("redis url");
                Some(
                    client
                        .get_multiplexed_async_connection()
                        .await
                        .expect("connect to redis"),
                )
            };
            ready.wait().await;
            let deadline = Instant::now() + Duration::from_secs(seconds);
            while Instant::now() < deadline {
                let (id, price) = {
                    let mut rng = rand::thread_rng();
                    (
                        rng.gen_range(1..=10_000i64),
                        format!("{}.{:02}", rng.gen_range(1..1000), rng.gen_range(0..100)),
                    )
                };
                let started = Instant::now();
                if let (Some(db), Some(st)) = (&db, &upsert) {
                    db.execute(st, &[&id, &price]).await.expect("upsert");
                }
                if let Some(conn) = redis.as_mut() {
                    let key = format!("product:{id}:price");
                    let mut cmd = redis::cmd("SET");
                    cmd.arg(&key).arg(&price);
                    if mode == "seed" {
                        cmd.arg("EX").arg(3600);
                    }
                    let _: () = cmd.query_async(conn).await.expect("SET");
                }
                latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    all.sort_unstable();
    let p = |q: f64| {
        all.get(((all.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{mode} ops_per_sec={:.0} p50_ms={:.3} p99_ms={:.3} ops={}",
        all.len() as f64 / seconds as f64,
        p(0.5),
        p(0.99),
        all.len()
    );
}
