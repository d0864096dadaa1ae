//! Under write-back, repeated writes to one key between two flushes cost one row write.

use std::time::Duration;

use sluice::{KeyspaceConfig, Policy};

use crate::common::*;

const N: i64 = 10_000;

/// Write-back with no background flush during the test, so the test counts flushes exactly.
fn quiet(mut ks: KeyspaceConfig) -> KeyspaceConfig {
    ks.flush_interval = Duration::from_secs(3600);
    ks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_incrs_to_one_key_cost_one_row_write_per_flush() {
    let h = Harness::start("", vec![quiet(builtin(Policy::WriteBack))]).await;
    let key = b("hits");
    for i in 1..=N {
        assert_eq!(h.sluice.incr_by(0, key.clone(), 1).await.unwrap(), i);
    }
    assert_eq!(h.store.rows_written(), 0);
    h.sluice.flush().await.unwrap();
    assert_eq!(h.store.writes_for_key(b"hits"), 1);
    assert_eq!(h.store.rows_written(), 1);
    assert_eq!(h.store.batches(), 1);
    assert_eq!(h.kv_row(0, "hits"), Some((N.to_string(), None)));

    // Each further flush with new increments costs one more row write, no more.
    for round in 2..=3u64 {
        for _ in 0..1000 {
            h.sluice.incr_by(0, key.clone(), 1).await.unwrap();
        }
        h.sluice.flush().await.unwrap();
        assert_eq!(h.store.writes_for_key(b"hits"), round);
    }
    // A flush with nothing buffered writes nothing.
    h.sluice.flush().await.unwrap();
    assert_eq!(h.store.writes_for_key(b"hits"), 3);
    assert_eq!(h.kv_row(0, "hits"), Some(((N + 2000).to_string(), None)));
    let info = &h.sluice.keyspaces()[0];
    assert_eq!((info.writes, info.rows_stored), (N as u64 + 2000, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_sets_to_one_mapped_key_cost_one_row_write() {
    let h = Harness::start(PRODUCTS, vec![quiet(price_keyspace(Policy::WriteBack))]).await;
    for i in 1..=N {
        h.set("product:7:price", &i.to_string()).await;
    }
    h.sluice.flush().await.unwrap();
    // The store sees the mapped capture as the key.
    assert_eq!(h.store.writes_for_key(b"7"), 1);
    assert_eq!(h.store.rows_written(), 1);
    assert_eq!(h.column("products", "price", 7), Some(Some(N.to_string())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_incrs_are_atomic_and_still_coalesce() {
    let h = Harness::start("", vec![quiet(builtin(Policy::WriteBack))]).await;
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let sluice = h.sluice.clone();
            tokio::spawn(async move {
                for _ in 0..2500 {
                    sluice.incr_by(0, b("shared"), 1).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "shared"), Some(("10000".into(), None)));
    assert_eq!(h.store.writes_for_key(b"shared"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_writes_every_set_for_contrast() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    for i in 0..20 {
        h.set("k", &i.to_string()).await;
    }
    assert_eq!(h.store.writes_for_key(b"k"), 20);
}
