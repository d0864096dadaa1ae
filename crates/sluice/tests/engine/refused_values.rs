//! A value (or key capture) the mapped column cannot hold is refused before anything is
//! written, under every policy: the caller gets `SluiceError::Refused` naming the key and
//! the column, and the row, the cache and the write-back buffer keep the old value.

use std::time::Duration;

use sluice::{Policy, SluiceError};

use crate::common::*;

const ALL: [Policy; 3] = [Policy::WriteThrough, Policy::WriteBack, Policy::Invalidate];

fn refused(result: Result<impl std::fmt::Debug, SluiceError>) -> String {
    match result {
        Err(SluiceError::Refused(msg)) => msg,
        other => panic!("expected SluiceError::Refused, got {other:?}"),
    }
}

async fn start(policy: Policy) -> Harness {
    let mut price = price_keyspace(policy);
    let mut stock = stock_keyspace(policy);
    price.flush_interval = Duration::from_secs(3600);
    stock.flush_interval = Duration::from_secs(3600);
    let h = Harness::start(PRODUCTS, vec![price, stock]).await;
    exec_sql(
        h.path(),
        "INSERT INTO products (id, price, stock) VALUES (1, 10, 5)",
    );
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_into_a_numeric_column_is_refused_and_the_row_keeps_its_value() {
    for policy in ALL {
        let h = start(policy).await;
        assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
        for bad in ["abc", "", "1,5", "NaN", "inf", "0x10", " 12"] {
            let msg = refused(
                h.sluice
                    .set(0, b("product:1:price"), b(bad), Default::default())
                    .await,
            );
            assert!(msg.contains(r#"key "1""#), "{policy:?} {bad:?}: {msg}");
            assert!(msg.contains("products.price"), "{policy:?} {bad:?}: {msg}");
            assert!(msg.contains("numeric"), "{msg}");
            assert_eq!(
                SluiceError::Refused(msg.clone()).to_string(),
                format!("ERR {msg}")
            );
        }
        assert_eq!(
            h.get("product:1:price").await.as_deref(),
            Some("10"),
            "{policy:?}"
        );
        h.sluice.flush().await.unwrap();
        assert_eq!(
            h.column("products", "price", 1),
            Some(Some("10".into())),
            "{policy:?}"
        );
        assert_eq!(
            h.store.rows_written(),
            0,
            "{policy:?}: nothing reached the database"
        );
        let info = h.sluice.keyspaces();
        assert_eq!(info[0].buffered, 0);
        assert_eq!(
            info[0].writes, 0,
            "{policy:?}: a refused write is not counted as applied"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_integer_into_an_integer_column_is_refused() {
    for policy in ALL {
        let h = start(policy).await;
        for bad in ["abc", "1.5", "1e3", "9223372036854775808", "-0", "007"] {
            let msg = refused(
                h.sluice
                    .set(0, b("product:1:stock"), b(bad), Default::default())
                    .await,
            );
            assert!(msg.contains("products.stock"), "{policy:?} {bad:?}: {msg}");
            assert!(msg.contains("integer"), "{msg}");
        }
        // INCRBYFLOAT produces a float, which an INTEGER column cannot hold either.
        refused(
            h.sluice
                .incr_by_float(0, &b("product:1:stock"), b"0.5")
                .await,
        );
        // Integers are fine.
        h.set("product:1:stock", "-7").await;
        h.sluice.flush().await.unwrap();
        assert_eq!(
            h.column("products", "stock", 1),
            Some(Some("-7".into())),
            "{policy:?}"
        );
        assert_eq!(h.store.rows_written(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_capture_an_integer_key_column_cannot_hold_is_refused() {
    for policy in ALL {
        let h = start(policy).await;
        let msg = refused(
            h.sluice
                .set(0, b("product:abc:price"), b("5"), Default::default())
                .await,
        );
        assert!(msg.contains(r#"key capture "abc""#), "{policy:?}: {msg}");
        assert!(msg.contains("products.id"), "{policy:?}: {msg}");
        refused(
            h.sluice
                .set(0, b("product:1.0:price"), b("5"), Default::default())
                .await,
        );
        refused(h.sluice.incr_by(0, b("product:x:stock"), 1).await);
        // No row can have such a key, so it reads as absent rather than as a store failure.
        assert_eq!(h.get("product:abc:price").await, None, "{policy:?}");
        assert!(!h.sluice.del(0, &b("product:abc:price")).await.unwrap());
        h.sluice.flush().await.unwrap();
        assert_eq!(h.count_rows("products"), 1, "{policy:?}: no row was added");
        assert_eq!(h.store.rows_written(), 0);
        assert!(h.sluice.dead_letters(None).unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_write_leaves_a_buffered_value_in_place() {
    let h = start(Policy::WriteBack).await;
    h.set("product:1:price", "11").await;
    refused(
        h.sluice
            .set(0, b("product:1:price"), b("eleven"), Default::default())
            .await,
    );
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("11"));
    h.sluice.flush().await.unwrap();
    assert_eq!(h.column("products", "price", 1), Some(Some("11".into())));
}
