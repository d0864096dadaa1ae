//! What each policy leaves in the database at the moment a write is acknowledged.

use std::time::Duration;

use sluice::{Policy, SetOptions};

use crate::common::*;

/// A write-back keyspace whose flusher never runs on its own during the test, so the test
/// decides when a flush happens.
fn manual_flush(mut ks: sluice::KeyspaceConfig) -> sluice::KeyspaceConfig {
    ks.flush_interval = Duration::from_secs(3600);
    ks
}

// ---- built-in table sluice_kv --------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_ack_means_the_sluice_kv_row_is_committed() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;

    h.set("user:1", "alice").await;
    assert_eq!(h.kv_row(0, "user:1"), Some(("alice".into(), None)));

    h.set("user:1", "bob").await;
    assert_eq!(h.kv_row(0, "user:1"), Some(("bob".into(), None)));

    // Other logical databases are rows with their own `db`.
    h.sluice
        .set(3, b("user:1"), b("carol"), SetOptions::default())
        .await
        .unwrap();
    assert_eq!(h.kv_row(3, "user:1"), Some(("carol".into(), None)));
    assert_eq!(h.kv_row(0, "user:1"), Some(("bob".into(), None)));

    assert!(h.sluice.del(0, &b("user:1")).await.unwrap());
    assert_eq!(
        h.kv_row(0, "user:1"),
        None,
        "DEL is committed before its ack too"
    );
    assert_eq!(h.kv_row(3, "user:1"), Some(("carol".into(), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_ack_means_the_cache_holds_the_new_value() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    h.set("k", "v1").await;
    let reads = h.store.reads();
    assert_eq!(h.get("k").await.as_deref(), Some("v1"));
    h.set("k", "v2").await;
    assert_eq!(h.get("k").await.as_deref(), Some("v2"));
    assert_eq!(
        h.store.reads(),
        reads,
        "GETs after a write-through SET hit the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_ack_precedes_the_row_which_appears_after_flush() {
    let h = Harness::start("", vec![manual_flush(builtin(Policy::WriteBack))]).await;

    h.set("user:1", "alice").await;
    assert_eq!(
        h.kv_row(0, "user:1"),
        None,
        "write-back acks before the database has it"
    );
    assert_eq!(
        h.get("user:1").await.as_deref(),
        Some("alice"),
        "but reads see it"
    );
    assert_eq!(h.buffered("default"), 1);
    assert_eq!(h.store.rows_written(), 0);

    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "user:1"), Some(("alice".into(), None)));
    assert_eq!(h.buffered("default"), 0);

    // A delete is a buffered tombstone until the next flush.
    assert!(h.sluice.del(0, &b("user:1")).await.unwrap());
    assert_eq!(h.get("user:1").await, None);
    assert_eq!(h.kv_row(0, "user:1"), Some(("alice".into(), None)));
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "user:1"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_flusher_stores_the_buffer_without_being_asked() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    for i in 0..20 {
        h.set(&format!("k{i}"), &format!("v{i}")).await;
    }
    let stored = eventually(Duration::from_secs(5), || h.kv_table(0).len() == 20).await;
    assert!(
        stored,
        "the flusher stores buffered writes within flush_interval"
    );
    assert!(eventually(Duration::from_secs(5), || h.buffered("default") == 0).await);
    assert_eq!(h.kv_table(0)["k7"], "v7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_ack_means_the_row_is_committed_and_no_copy_is_cached() {
    let h = Harness::start("", vec![builtin(Policy::Invalidate)]).await;

    h.set("user:1", "alice").await;
    assert_eq!(h.kv_row(0, "user:1"), Some(("alice".into(), None)));
    assert_eq!(
        h.sluice.cache_stats().entries,
        0,
        "invalidate caches nothing on write"
    );

    // The first read fills the cache from the database, the second is a cache hit.
    let reads = h.store.reads();
    assert_eq!(h.get("user:1").await.as_deref(), Some("alice"));
    assert_eq!(h.store.reads(), reads + 1);
    assert_eq!(h.get("user:1").await.as_deref(), Some("alice"));
    assert_eq!(h.store.reads(), reads + 1);
    assert_eq!(h.sluice.cache_stats().entries, 1);

    // The next write removes the cached copy again.
    h.set("user:1", "bob").await;
    assert_eq!(h.kv_row(0, "user:1"), Some(("bob".into(), None)));
    assert_eq!(h.sluice.cache_stats().entries, 0);
    assert_eq!(h.get("user:1").await.as_deref(), Some("bob"));
    assert_eq!(h.store.reads(), reads + 2);

    assert!(h.sluice.del(0, &b("user:1")).await.unwrap());
    assert_eq!(h.kv_row(0, "user:1"), None);
    assert_eq!(h.sluice.cache_stats().entries, 0);
    assert_eq!(h.get("user:1").await, None);
}

// ---- mapped table --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_ack_means_the_mapped_column_is_committed() {
    let h = Harness::start(PRODUCTS, vec![price_keyspace(Policy::WriteThrough)]).await;
    exec_sql(
        h.path(),
        "INSERT INTO products (id, price, name) VALUES (2, 5, 'widget')",
    );

    // A new key inserts a row; the value is converted to the column's type.
    h.set("product:1:price", "9.99").await;
    assert_eq!(h.column("products", "price", 1), Some(Some("9.99".into())));
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("9.99"));

    // An existing row: only the mapped column changes.
    h.set("product:2:price", "6").await;
    assert_eq!(h.column("products", "price", 2), Some(Some("6".into())));
    assert_eq!(h.column("products", "name", 2), Some(Some("widget".into())));

    // Keys outside the template go to sluice_kv (here under the default built-in keyspace,
    // which is write-back), not to the table.
    h.set("product:2:name", "gadget").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(h.column("products", "name", 2), Some(Some("widget".into())));
    assert_eq!(h.kv_row(0, "product:2:name"), Some(("gadget".into(), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_mapped_column_is_written_by_the_flush() {
    let h = Harness::start(
        PRODUCTS,
        vec![manual_flush(price_keyspace(Policy::WriteBack))],
    )
    .await;
    exec_sql(
        h.path(),
        "INSERT INTO products (id, price, name) VALUES (2, 5, 'widget')",
    );

    h.set("product:1:price", "10").await;
    h.set("product:2:price", "7.5").await;
    assert_eq!(h.column("products", "price", 1), None);
    assert_eq!(h.column("products", "price", 2), Some(Some("5".into())));
    assert_eq!(h.get("product:2:price").await.as_deref(), Some("7.5"));
    assert_eq!(h.buffered("price"), 2);

    h.sluice.flush().await.unwrap();
    assert_eq!(h.column("products", "price", 1), Some(Some("10".into())));
    assert_eq!(h.column("products", "price", 2), Some(Some("7.5".into())));
    assert_eq!(h.column("products", "name", 2), Some(Some("widget".into())));
    assert_eq!(h.buffered("price"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_mapped_ack_means_the_column_is_committed_and_the_copy_removed() {
    let h = Harness::start(PRODUCTS, vec![price_keyspace(Policy::Invalidate)]).await;
    exec_sql(h.path(), "INSERT INTO products (id, price) VALUES (1, 3)");

    // Fill the cache from the table.
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("3"));
    assert_eq!(h.sluice.cache_stats().entries, 1);

    h.set("product:1:price", "4").await;
    assert_eq!(h.column("products", "price", 1), Some(Some("4".into())));
    assert_eq!(h.sluice.cache_stats().entries, 0);

    // The copy is gone, so a change made behind Sluice's back is visible on the next read.
    exec_sql(h.path(), "UPDATE products SET price = 42 WHERE id = 1");
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn del_of_a_mapped_key_removes_the_value_from_the_table() {
    for policy in [Policy::WriteThrough, Policy::Invalidate, Policy::WriteBack] {
        let h = Harness::start(PRODUCTS, vec![manual_flush(price_keyspace(policy))]).await;
        exec_sql(h.path(), "INSERT INTO products (id, price) VALUES (1, 3)");
        assert!(
            h.sluice.del(0, &b("product:1:price")).await.unwrap(),
            "{policy:?}"
        );
        assert_eq!(h.get("product:1:price").await, None, "{policy:?}");
        h.sluice.flush().await.unwrap();
        let price = h.column("products", "price", 1).flatten();
        assert_eq!(price, None, "{policy:?}: the value is gone from the table");
        assert!(
            !h.sluice.del(0, &b("product:1:price")).await.unwrap(),
            "{policy:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspaces_with_different_policies_share_one_engine() {
    let h = Harness::start(
        PRODUCTS,
        vec![
            price_keyspace(Policy::WriteThrough),
            manual_flush(stock_keyspace(Policy::WriteBack)),
            builtin(Policy::Invalidate),
        ],
    )
    .await;
    h.set("product:1:price", "10").await;
    h.set("product:1:stock", "3").await;
    h.set("plain", "x").await;
    assert_eq!(h.column("products", "price", 1), Some(Some("10".into())));
    assert_eq!(
        h.column("products", "stock", 1),
        Some(None),
        "stock is still buffered"
    );
    assert_eq!(h.kv_row(0, "plain"), Some(("x".into(), None)));
    h.sluice.flush().await.unwrap();
    assert_eq!(h.column("products", "stock", 1), Some(Some("3".into())));
    assert_eq!(h.column("products", "price", 1), Some(Some("10".into())));

    let mut keys = h.sluice.keys(0).await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec![b("plain"), b("product:1:price"), b("product:1:stock")]
    );
}
