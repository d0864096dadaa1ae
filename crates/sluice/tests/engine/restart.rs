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

/// A journal's record bytes now (`JournalStats::bytes`).
fn journal_bytes(h: &Harness) -> u64 {
    h.sluice.journal_stats().bytes
}

/// The members of a sorted set image with their scores.
fn zset_members(image: &[u8]) -> BTreeMap<Vec<u8>, f64> {
    sluice::model::zset::entries(image)
        .map(|e| {
            let (m, s) = e.expect("a valid sorted set");
            (m.to_vec(), s)
        })
        .collect()
}

/// One ZINCRBY of a large, buffered leaderboard journals that member, not the whole set; a
/// crash with nothing flushed replays the key's whole record and every member record after
/// it, through flushes taken in between (the checkpoint stays below a buffered key's chain),
/// and the table ends equal to what was acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_sorted_set_journals_each_update_as_its_member_and_replays_whole() {
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_interval = Duration::from_secs(3600);
    let h = Harness::start_with("", vec![ks], |c| {
        c.journal.durability = sluice::Durability::Fsync
    })
    .await;
    let key = b("board");
    let mut model: BTreeMap<Vec<u8>, f64> = BTreeMap::new();
    let incr = sluice::model::zset::AddFlags {
        incr: true,
        ..Default::default()
    };
    for i in 0..2000 {
        let member = format!("player:{i:05}");
        h.sluice
            .access()
            .zadd_one(0, &key, &b(&member), i as f64, Default::default())
            .await
            .unwrap();
        model.insert(member.into_bytes(), i as f64);
    }
    let image_len = h
        .sluice
        .access()
        .zset_image(0, key.clone())
        .await
        .unwrap()
        .unwrap()
        .len() as u64;
    assert!(image_len > 40_000, "{image_len}");
    let mut x: u64 = 7;
    let mut step = |model: &mut BTreeMap<Vec<u8>, f64>| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let member = format!("player:{:05}", (x >> 33) % 2000);
        *model.get_mut(member.as_bytes()).unwrap() += 1.5;
        member
    };
    let before = journal_bytes(&h);
    for _ in 0..500 {
        let member = step(&mut model);
        h.sluice
            .access()
            .zadd_one(0, &key, &b(&member), 1.5, incr)
            .await
            .unwrap();
    }
    let grown = journal_bytes(&h) - before;
    eprintln!("500 updates of a {image_len}-byte sorted set journaled {grown} bytes");
    // 500 whole images would be 20 MB; member records are tens of bytes each, plus a whole
    // record each time a chain adds up to the image.
    assert!(
        grown < 500 * 100 + 2 * image_len,
        "500 updates journaled {grown} bytes (image {image_len})"
    );
    // A flush stores the key; updates while it is stored keep extending the chain after it.
    h.sluice.flush().await.unwrap();
    for _ in 0..300 {
        let member = step(&mut model);
        h.sluice
            .access()
            .zadd_one(0, &key, &b(&member), 1.5, incr)
            .await
            .unwrap();
    }
    let read = |h: &Harness| {
        let sluice = h.sluice.clone();
        let key = key.clone();
        async move {
            zset_members(
                &sluice
                    .access()
                    .zset_image(0, key)
                    .await
                    .unwrap()
                    .expect("the key exists"),
            )
        }
    };
    assert_eq!(read(&h).await, model);
    let h = h.crash_restart().await.unwrap();
    assert_eq!(read(&h).await, model, "after a crash");
    h.sluice.flush().await.unwrap();
    let h = h.restart(|_| {}).await;
    assert_eq!(read(&h).await, model, "from the table alone");
}
