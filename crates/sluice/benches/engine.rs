//! In-process engine throughput on a temp SQLite file:
//!
//! - `set/<policy>` and `get/<policy>`: one SET or GET per iteration on the built-in keyspace,
//!   cycling over 10 000 keys (ops/sec = 1 / time per iteration);
//! - `sqlite/write_batch_512`: one `Store::write_batch` of 512 upserts into `sluice_kv`
//!   (rows/sec is reported from the element throughput).
//!
//! Run with `cargo bench -p sluice --bench engine`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::model::StoreWrite;
use sluice::tiers::store::sqlite::SqliteStore;
use sluice::tiers::store::{Store, StoreOp, Target};
use sluice::{Bytes, Config, Durability, KeyspaceConfig, Policy, Sluice};

const KEYS: u64 = 10_000;
const BATCH: usize = 512;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn key(i: u64) -> Bytes {
    Bytes::from(format!("bench:{}", i % KEYS))
}

async fn open(dir: &std::path::Path, policy: Policy) -> Sluice {
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        ..Config::default()
    };
    config.journal.durability = Durability::None;
    let mut ks = KeyspaceConfig::builtin(policy);
    ks.flush_interval = Duration::from_millis(50);
    config.keyspaces = vec![ks];
    Sluice::open(config).await.unwrap()
}

/// Operations per second, short runs: one operation is microseconds.
fn per_operation(group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    group
        .throughput(Throughput::Elements(1))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
}

fn policies(c: &mut Criterion) {
    let rt = runtime();
    let value = Bytes::from_static(b"a value of about forty bytes, say 1234567");
    for policy in [Policy::WriteThrough, Policy::WriteBack, Policy::Invalidate] {
        let dir = tempfile::tempdir().unwrap();
        let sluice = rt.block_on(open(dir.path(), policy));
        let name = policy.as_str();

        let mut group = c.benchmark_group("set");
        per_operation(&mut group);
        let n = AtomicU64::new(0);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                let (sluice, value) = (&sluice, value.clone());
                async move {
                    sluice
                        .set(0, key(i), value, Default::default())
                        .await
                        .unwrap();
                }
            })
        });
        group.finish();

        // Every key exists (and is stored) before the reads start.
        rt.block_on(async {
            for i in 0..KEYS {
                sluice
                    .set(0, key(i), value.clone(), Default::default())
                    .await
                    .unwrap();
            }
            sluice.flush().await.unwrap();
        });
        let mut group = c.benchmark_group("get");
        per_operation(&mut group);
        let n = AtomicU64::new(0);
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let i = n.fetch_add(1, Ordering::Relaxed);
                let sluice = &sluice;
                async move {
                    assert!(sluice.get(0, key(i)).await.unwrap().is_some());
                }
            })
        });
        group.finish();
        rt.block_on(sluice.shutdown());
    }
}

fn sqlite_batch(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("sluice.db")).unwrap();
    rt.block_on(store.ensure_builtin_table()).unwrap();
    let value = Bytes::from_static(b"a value of about forty bytes, say 1234567");
    let round = AtomicU64::new(0);

    let mut group = c.benchmark_group("sqlite");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    group.bench_function("write_batch_512", |b| {
        b.to_async(&rt).iter(|| {
            let r = round.fetch_add(1, Ordering::Relaxed);
            let ops: Vec<StoreOp> = (0..BATCH as u64)
                .map(|i| StoreOp {
                    target: Target::Builtin { db: 0 },
                    key: key(r * BATCH as u64 + i),
                    write: StoreWrite::string(value.clone(), None),
                })
                .collect();
            let store = &store;
            async move {
                let outcome = store.write_batch(ops).await.unwrap();
                assert!(outcome.iter().all(|o| o.is_ok()));
            }
        })
    });
    group.finish();
}

criterion_group!(benches, policies, sqlite_batch);
criterion_main!(benches);
