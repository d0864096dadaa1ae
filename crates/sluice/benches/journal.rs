//! Journal append throughput per durability mode, with concurrent writers sharing group
//! commits.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::config::{Durability, JournalConfig};
use sluice::model::StoreWrite;
use sluice::tiers::journal::wal::WalJournal;
use sluice::tiers::journal::{Journal, JournalOp, JournalRecord};

const WRITERS: u64 = 64;
const PER_WRITER: u64 = 64;

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut group = c.benchmark_group("journal_append");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(WRITERS * PER_WRITER));
    for durability in [Durability::Os, Durability::Fsync] {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = JournalConfig {
            durability,
            ..JournalConfig::default()
        };
        let journal = Arc::new(
            runtime
                .block_on(WalJournal::open(dir.path(), &config, false))
                .expect("open journal"),
        );
        let seq = Arc::new(std::sync::atomic::AtomicU64::new(0));
        group.bench_function(
            format!("{}_{}x{}", durability.as_str(), WRITERS, PER_WRITER),
            |b| {
                b.iter(|| {
                    runtime.block_on(async {
                        let mut tasks = Vec::new();
                        for w in 0..WRITERS {
                            let journal = journal.clone();
                            let seq = seq.clone();
                            tasks.push(tokio::spawn(async move {
                                for i in 0..PER_WRITER {
                                    let record = JournalRecord {
                                        seq: seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                                            + 1,
                                        keyspace: "default".into(),
                                        db: 0,
                                        key: Bytes::from(format!("key:{w}:{i}")),
                                        op: JournalOp::Write(StoreWrite::string(
                                            Bytes::from_static(b"0123456789abcdef0123456789abcdef"),
                                            None,
                                        )),
                                        group: None,
                                    };
                                    journal.append(record).await.expect("append");
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.expect("writer");
                        }
                    })
                })
            },
        );
        let stats = journal.stats();
        println!(
            "{}: {} appends, {} fsyncs, {:.1} writes per fsync",
            durability.as_str(),
            stats.appends,
            stats.syncs,
            stats.appends as f64 / stats.syncs.max(1) as f64
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
