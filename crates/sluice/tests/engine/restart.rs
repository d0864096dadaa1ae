//! A graceful shutdown stores every buffered write-back write; an engine reopened on the same
//! data dir reads everything back.

use std::collections::BTreeMap;
use std::time::Duration;

use sluice::{Policy, SetExpiry, SetOptions, SluiceError};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_writes_survive_shutdown_and_reopen() {
    let mut kv = builtin(Policy::WriteBack);
    let mut price = price_keyspace(Policy::WriteBack);
    kv.flush_interval = Duration::from_secs(3600);
    price.flush_interval = Duration::from_secs(3600);
    let h = Harness::start(PRODUCTS, vec![price, kv]).await;

    let mut expected = BTreeMap::new();
    for i in 0..300 {
        let (k, v) = (format!("user:{i}"), format!("name-{i}"));
        h.set(&k, &v).await;
        expected.insert(k, v);
    }
    for i in 0..50 {
        h.set(&format!("product:{i}:price"), &format!("{i}.5"))
            .await;
    }
    h.sluice.del(0, &b("user:7")).await.unwrap();
    expected.remove("user:7");
    h.sluice
        .set(
            0,
            b("session"),
            b("s"),
            SetOptions {
                expiry: SetExpiry::At(T0 + 60_000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    h.sluice.incr_by(2, b("counter"), 41).await.unwrap();
    h.sluice.incr_by(2, b("counter"), 1).await.unwrap();
    assert!(
        h.kv_table(0).is_empty(),
        "nothing flushed before the shutdown"
    );

    // After shutdown the engine accepts no more writes.
    let sluice = h.sluice.clone();
    let h = h.restart(|_| {}).await;
    assert_eq!(
        sluice.set(0, b("late"), b("x"), Default::default()).await,
        Err(SluiceError::ShuttingDown)
    );
    drop(sluice);

    for (k, v) in &expected {
        assert_eq!(h.get(k).await.as_ref(), Some(v), "{k}");
    }
    assert_eq!(h.get("user:7").await, None);
    for i in 0..50 {
        assert_eq!(
            h.get(&format!("product:{i}:price")).await,
            Some(format!("{i}.5"))
        );
    }
    let entry = h.sluice.get_entry(0, b("session")).await.unwrap().unwrap();
    assert_eq!(
        entry.expires_at,
        Some(T0 + 60_000),
        "the expiry survives the restart"
    );
    assert_eq!(h.sluice.get(2, b("counter")).await.unwrap(), Some(b("42")));
    assert_eq!(h.sluice.dbsize(0).await.unwrap(), 299 + 50 + 1);
    assert_eq!(
        h.store.rows_written(),
        0,
        "the new engine had nothing left to flush"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_reports_writes_it_could_not_store() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    h.store.set_outage(true);
    h.set("a", "1").await;
    h.set("b", "2").await;
    let report = h.sluice.shutdown_within(Duration::from_millis(200)).await;
    assert_eq!(report.unflushed, 2);
    assert!(
        !report.kept_in_journal,
        "with durability none they are lost, and said so"
    );
}

/// The replay at open is measured for monitoring: how many records it put back into the
/// buffers, and how long that and the flush after it took. An open with nothing to replay
/// shows zero records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_at_open_reports_its_records_and_durations() {
    let mut kv = builtin(Policy::WriteBack);
    kv.flush_interval = Duration::from_secs(3600);
    let h = Harness::start_with("", vec![kv], |c| {
        c.journal.durability = sluice::Durability::Fsync
    })
    .await;
    assert_eq!(
        h.sluice
            .metrics()
            .replay_records
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    h.store.set_outage(true);
    for i in 0..20 {
        h.set(&format!("k{i}"), "v").await;
    }
    let cfg = h.sluice.config().clone();
    let report = h.sluice.shutdown_within(Duration::from_millis(100)).await;
    assert_eq!(report.unflushed, 20);
    drop(h.sluice);

    let (sluice, _store) = open_engine(cfg, &h.clock).await.expect("engine reopens");
    let metrics = sluice.metrics();
    let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&metrics.replay_records), 20);
    assert!(
        load(&metrics.replay_flush_us) > 0,
        "the flush after the replay is timed"
    );
    assert_eq!(
        kv_row(h.dir.path(), 0, "k19").map(|r| r.0).as_deref(),
        Some("v")
    );
}
