//! Reads see every acknowledged write, deletes included, even when the cache has evicted the
//! copy: the write-back buffer is consulted before the cache and the store.

use std::collections::BTreeMap;

use sluice::Policy;

use crate::common::*;

/// A cache of 2000 bytes holds about a dozen of these entries.
const TINY_CACHE: u64 = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_the_latest_write_back_write_even_after_the_cache_evicted_it() {
    let h = Harness::start_with("", vec![builtin(Policy::WriteBack)], |c| {
        c.cache.capacity = TINY_CACHE
    })
    .await;
    // Nothing can be flushed, and a read that fell through to the database would fail:
    // every answer below must come from the buffer (or a cached copy of it).
    h.store.set_outage(true);

    let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
    for round in 0..3 {
        for i in 0..200 {
            let k = format!("key:{i:03}");
            let v = format!("value-{round}-{i}-{}", "x".repeat(40));
            h.set(&k, &v).await;
            model.insert(k, Some(v));
        }
        for i in (round..200).step_by(7) {
            let k = format!("key:{i:03}");
            assert!(h.sluice.del(0, &b(&k)).await.unwrap(), "{k} existed");
            model.insert(k, None);
        }
    }

    let stats = h.sluice.cache_stats();
    assert!(
        stats.entries < 50,
        "the cache must have evicted most keys for this test to mean anything: {stats:?}"
    );
    assert!(h.kv_table(0).is_empty());
    for (k, v) in &model {
        assert_eq!(&h.get(k).await, v, "{k}");
    }
    let live = model.values().filter(|v| v.is_some()).count() as u64;
    assert_eq!(
        h.sluice.dbsize(0).await.unwrap(),
        live,
        "buffered keys count, tombstones don't"
    );

    // After recovery the table holds exactly the model, and reads still agree.
    h.store.set_outage(false);
    h.sluice.flush().await.unwrap();
    let expected: BTreeMap<String, String> = model
        .iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
        .collect();
    assert_eq!(h.kv_table(0), expected);
    for (k, v) in &model {
        assert_eq!(&h.get(k).await, v, "{k}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_modify_write_sees_buffered_values_after_eviction() {
    let h = Harness::start_with(PRODUCTS, vec![stock_keyspace(Policy::WriteBack)], |c| {
        c.cache.capacity = TINY_CACHE
    })
    .await;
    h.store.set_outage(true);
    // Seed every counter so later increments never need the (unreachable) database.
    for id in 0..100 {
        h.set(&format!("product:{id}:stock"), "0").await;
    }
    for round in 1..=5i64 {
        for id in 0..100 {
            let n = h
                .sluice
                .incr_by(0, b(&format!("product:{id}:stock")), id)
                .await
                .unwrap();
            assert_eq!(n, id * round);
        }
    }
    assert!(h.sluice.cache_stats().entries < 50);

    h.store.set_outage(false);
    h.sluice.flush().await.unwrap();
    for id in 0..100 {
        assert_eq!(
            h.column("products", "stock", id),
            Some(Some((id * 5).to_string()))
        );
    }
}
