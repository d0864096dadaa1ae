//! Expiry, driven by a `ManualClock` so nothing sleeps.
//!
//! On the built-in table expiry follows Redis: an expired key is absent from every tier and
//! from KEYS/DBSIZE, and its row is removed or left expired. On a mapped table a TTL bounds
//! only the cached copy.

use std::time::Duration;

use sluice::clock::Clock;
use sluice::{ExpireCondition, KeyTtl, Policy, SetCondition, SetExpiry, SetOptions};

use crate::common::*;

const ALL: [Policy; 3] = [Policy::WriteThrough, Policy::WriteBack, Policy::Invalidate];

fn px(at: u64) -> SetOptions {
    SetOptions {
        expiry: SetExpiry::At(at),
        ..Default::default()
    }
}

async fn ttl(h: &Harness, key: &str) -> KeyTtl {
    h.sluice.ttl(0, &b(key)).await.unwrap()
}

async fn expire(h: &Harness, key: &str, at: u64, cond: ExpireCondition) -> bool {
    h.sluice.expire(0, &b(key), at as i64, cond).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_with_an_expiry_vanishes_once_the_clock_passes_it() {
    for policy in ALL {
        let h = Harness::start("", vec![builtin(policy)]).await;
        let at = T0 + 1000;
        h.sluice
            .set(0, b("session"), b("abc"), px(at))
            .await
            .unwrap();
        h.set("stays", "1").await;
        assert_eq!(
            ttl(&h, "session").await,
            KeyTtl::ExpiresAt(at),
            "{policy:?}"
        );
        let entry = h.sluice.get_entry(0, b("session")).await.unwrap().unwrap();
        assert_eq!(entry.expires_at, Some(at));

        h.clock.advance_ms(999);
        assert_eq!(h.get("session").await.as_deref(), Some("abc"), "{policy:?}");

        h.clock.advance_ms(2);
        assert_eq!(h.get("session").await, None, "{policy:?}");
        assert_eq!(ttl(&h, "session").await, KeyTtl::Missing, "{policy:?}");
        assert_eq!(
            h.sluice.keys(0).await.unwrap(),
            vec![b("stays")],
            "{policy:?}"
        );
        assert_eq!(h.sluice.dbsize(0).await.unwrap(), 1, "{policy:?}");

        h.sluice.flush().await.unwrap();
        let now = h.clock.now_ms() as i64;
        let row = h.kv_row(0, "session");
        assert!(
            row.as_ref()
                .is_none_or(|(_, e)| e.is_some_and(|e| e <= now)),
            "{policy:?}: the row is gone or expired, found {row:?}"
        );
        assert_eq!(
            h.sluice.keys(0).await.unwrap(),
            vec![b("stays")],
            "{policy:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_stores_the_expiry_in_expires_at() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    h.sluice
        .set(0, b("k"), b("v"), px(T0 + 5000))
        .await
        .unwrap();
    assert_eq!(
        h.kv_row(0, "k"),
        Some(("v".into(), Some((T0 + 5000) as i64)))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_write_back_entry_never_reaches_the_table() {
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_interval = Duration::from_secs(3600);
    let h = Harness::start("", vec![ks]).await;
    // An older, persistent row exists; the buffered write that replaced it expires.
    h.set("k", "old").await;
    h.sluice.flush().await.unwrap();
    h.sluice
        .set(0, b("k"), b("new"), px(T0 + 100))
        .await
        .unwrap();
    h.clock.advance_ms(200);
    assert_eq!(h.get("k").await, None);
    h.sluice.flush().await.unwrap();
    assert_eq!(
        h.kv_row(0, "k"),
        None,
        "the expired upsert still removes the older row"
    );
    assert_eq!(h.get("k").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_whose_expiry_has_passed_deletes_the_key() {
    for policy in ALL {
        let h = Harness::start("", vec![builtin(policy)]).await;
        h.set("k", "v").await;
        let out = h.sluice.set(0, b("k"), b("v2"), px(T0 - 1)).await.unwrap();
        assert!(out.written);
        assert_eq!(h.get("k").await, None, "{policy:?}");
        h.sluice.flush().await.unwrap();
        assert_eq!(h.kv_row(0, "k"), None, "{policy:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persist_removes_the_expiry() {
    for policy in ALL {
        let h = Harness::start("", vec![builtin(policy)]).await;
        h.sluice
            .set(0, b("k"), b("v"), px(T0 + 1000))
            .await
            .unwrap();
        assert!(h.sluice.persist(0, &b("k")).await.unwrap(), "{policy:?}");
        assert_eq!(ttl(&h, "k").await, KeyTtl::Persistent);
        assert!(
            !h.sluice.persist(0, &b("k")).await.unwrap(),
            "no expiry left to remove"
        );
        assert!(!h.sluice.persist(0, &b("missing")).await.unwrap());

        h.clock.advance_ms(10_000);
        assert_eq!(h.get("k").await.as_deref(), Some("v"), "{policy:?}");
        h.sluice.flush().await.unwrap();
        assert_eq!(h.kv_row(0, "k"), Some(("v".into(), None)), "{policy:?}");
    }
}

const ALWAYS: ExpireCondition = ExpireCondition::ALWAYS;
const NX: ExpireCondition = ExpireCondition {
    if_none: true,
    ..ExpireCondition::ALWAYS
};
const XX: ExpireCondition = ExpireCondition {
    if_some: true,
    ..ExpireCondition::ALWAYS
};
const GT: ExpireCondition = ExpireCondition {
    if_greater: true,
    ..ExpireCondition::ALWAYS
};
const LT: ExpireCondition = ExpireCondition {
    if_less: true,
    ..ExpireCondition::ALWAYS
};
const XX_LT: ExpireCondition = ExpireCondition {
    if_some: true,
    if_less: true,
    ..ExpireCondition::ALWAYS
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expire_conditions_follow_redis_7() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    h.set("k", "v").await;

    // No expiry yet: XX and GT refuse (GT treats "no expiry" as infinite), LT accepts.
    assert!(!expire(&h, "k", T0 + 5000, XX).await);
    assert!(!expire(&h, "k", T0 + 5000, GT).await);
    assert!(!expire(&h, "k", T0 + 5000, XX_LT).await);
    assert_eq!(ttl(&h, "k").await, KeyTtl::Persistent);
    assert!(expire(&h, "k", T0 + 5000, LT).await);
    assert_eq!(ttl(&h, "k").await, KeyTtl::ExpiresAt(T0 + 5000));

    // NX only when there is no expiry.
    assert!(!expire(&h, "k", T0 + 9000, NX).await);
    h.set("k2", "v").await;
    assert!(expire(&h, "k2", T0 + 9000, NX).await);
    assert_eq!(ttl(&h, "k2").await, KeyTtl::ExpiresAt(T0 + 9000));

    // GT / LT compare with the current expiry; an equal expiry is neither.
    assert!(!expire(&h, "k", T0 + 4000, GT).await);
    assert!(!expire(&h, "k", T0 + 5000, GT).await);
    assert!(expire(&h, "k", T0 + 6000, GT).await);
    assert_eq!(ttl(&h, "k").await, KeyTtl::ExpiresAt(T0 + 6000));
    assert!(!expire(&h, "k", T0 + 7000, LT).await);
    assert!(!expire(&h, "k", T0 + 6000, LT).await);
    assert!(expire(&h, "k", T0 + 3000, XX_LT).await);
    assert_eq!(ttl(&h, "k").await, KeyTtl::ExpiresAt(T0 + 3000));
    assert!(expire(&h, "k", T0 + 8000, XX).await);
    assert!(expire(&h, "k", T0 + 8500, ALWAYS).await);
    assert_eq!(ttl(&h, "k").await, KeyTtl::ExpiresAt(T0 + 8500));
    assert_eq!(
        h.kv_row(0, "k"),
        Some(("v".into(), Some((T0 + 8500) as i64)))
    );

    // A missing key is never given an expiry.
    assert!(!expire(&h, "nope", T0 + 1000, ALWAYS).await);
    assert_eq!(ttl(&h, "nope").await, KeyTtl::Missing);

    // An expiry at or before now deletes the key.
    assert!(expire(&h, "k", T0, ALWAYS).await);
    assert_eq!(h.get("k").await, None);
    assert_eq!(h.kv_row(0, "k"), None);
    assert_eq!(h.sluice.keys(0).await.unwrap(), vec![b("k2")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepttl_keeps_the_expiry_and_a_plain_set_clears_it() {
    for policy in ALL {
        let h = Harness::start("", vec![builtin(policy)]).await;
        h.sluice
            .set(0, b("k"), b("v1"), px(T0 + 1000))
            .await
            .unwrap();
        let keep = SetOptions {
            expiry: SetExpiry::Keep,
            ..Default::default()
        };
        h.sluice.set(0, b("k"), b("v2"), keep).await.unwrap();
        assert_eq!(
            ttl(&h, "k").await,
            KeyTtl::ExpiresAt(T0 + 1000),
            "{policy:?}"
        );
        assert_eq!(h.get("k").await.as_deref(), Some("v2"));

        // INCR keeps the expiry too, as in Redis.
        h.sluice
            .set(0, b("n"), b("1"), px(T0 + 1000))
            .await
            .unwrap();
        assert_eq!(h.sluice.incr_by(0, b("n"), 1).await.unwrap(), 2);
        assert_eq!(ttl(&h, "n").await, KeyTtl::ExpiresAt(T0 + 1000));

        h.sluice
            .set(0, b("plain"), b("x"), px(T0 + 1000))
            .await
            .unwrap();
        h.set("plain", "y").await;
        assert_eq!(ttl(&h, "plain").await, KeyTtl::Persistent, "{policy:?}");

        h.clock.advance_ms(1001);
        assert_eq!(h.get("k").await, None, "{policy:?}");
        assert_eq!(h.get("n").await, None, "{policy:?}");
        assert_eq!(h.get("plain").await.as_deref(), Some("y"));
        assert_eq!(h.sluice.keys(0).await.unwrap(), vec![b("plain")]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_key_counts_as_absent_for_nx_and_xx() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    h.sluice.set(0, b("k"), b("v"), px(T0 + 10)).await.unwrap();
    h.clock.advance_ms(20);
    let xx = SetOptions {
        condition: SetCondition::IfPresent,
        ..Default::default()
    };
    assert!(!h.sluice.set(0, b("k"), b("xx"), xx).await.unwrap().written);
    let nx = SetOptions {
        condition: SetCondition::IfAbsent,
        return_old: true,
        ..Default::default()
    };
    let out = h.sluice.set(0, b("k"), b("nx"), nx).await.unwrap();
    assert!(out.written);
    assert_eq!(out.old, None);
    assert_eq!(h.get("k").await.as_deref(), Some("nx"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reaper_removes_expired_rows_nobody_reads() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    for i in 0..10 {
        h.sluice
            .set(0, b(&format!("k{i}")), b("v"), px(T0 + 100))
            .await
            .unwrap();
    }
    h.set("persistent", "v").await;
    assert_eq!(h.kv_table(0).len(), 11);
    h.clock.advance_ms(1000);
    let reaped = eventually(Duration::from_secs(5), || h.kv_table(0).len() == 1).await;
    assert!(reaped, "rows left: {:?}", h.kv_table(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ttl_on_a_mapped_key_bounds_only_the_cached_copy() {
    let h = Harness::start(PRODUCTS, vec![price_keyspace(Policy::WriteThrough)]).await;
    h.sluice
        .set(0, b("product:1:price"), b("10"), px(T0 + 60_000))
        .await
        .unwrap();
    assert_eq!(
        ttl(&h, "product:1:price").await,
        KeyTtl::Persistent,
        "TTL reports -1"
    );
    assert_eq!(h.column("products", "price", 1), Some(Some("10".into())));

    // The row is changed behind Sluice's back; the cached copy is served until it expires.
    exec_sql(h.path(), "UPDATE products SET price = 11 WHERE id = 1");
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
    h.clock.advance_ms(60_001);
    assert_eq!(
        h.get("product:1:price").await.as_deref(),
        Some("11"),
        "the row stays"
    );
    assert_eq!(h.sluice.keys(0).await.unwrap(), vec![b("product:1:price")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keyspace_ttl_bounds_the_cached_copy_of_a_mapped_key() {
    let mut ks = price_keyspace(Policy::WriteThrough);
    ks.ttl = Some(Duration::from_secs(60));
    let h = Harness::start(PRODUCTS, vec![ks]).await;
    h.set("product:1:price", "10").await;
    exec_sql(h.path(), "UPDATE products SET price = 12 WHERE id = 1");
    h.clock.advance_ms(59_000);
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
    h.clock.advance_ms(1_001);
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("12"));
    assert_eq!(ttl(&h, "product:1:price").await, KeyTtl::Persistent);
}
