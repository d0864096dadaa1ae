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

/// A canonical view of a collection image, to compare values across replays: a set's
/// members sorted, a list's elements in order, a stream's rows.
fn rows_view(kind: &str, image: &[u8]) -> Vec<Vec<u8>> {
    match kind {
        "set" => {
            let mut m: Vec<Vec<u8>> = sluice::model::set::members(image)
                .map(|m| m.expect("a valid set").to_vec())
                .collect();
            m.sort();
            m
        }
        "list" => sluice::model::list::view(image)
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect(),
        _ => sluice::model::hash::pairs(image)
            .flat_map(|p| {
                let (m, v) = p.expect("a valid stream");
                [m.to_vec(), v.to_vec()]
            })
            .collect(),
    }
}

/// A set, a list and a stream, each large enough to be journaled as member records, written
/// to (adds and removals, pops and trims, appends and deletes) with flushes in between: after
/// a crash with nothing more stored, each reads back exactly as it did before, and again from
/// the table alone after a flush and a clean restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sets_lists_and_streams_replay_their_member_records_exactly() {
    use sluice::model::stream::{RequestedId, StreamId, Trim, TrimStrategy};
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_interval = Duration::from_secs(3600);
    let h = Harness::start_with("", vec![ks], |c| {
        c.journal.durability = sluice::Durability::Fsync;
        c.journal.member_records_from = 1024;
    })
    .await;
    let (set, list, stream) = (b("set"), b("list"), b("stream"));
    let padded = |i: u64| b(&format!("value-{i:08}-{}", "x".repeat(20)));
    let mut next_ms = 1u64;
    for round in 0..6u64 {
        let base = round * 1000;
        let a = h.sluice.access();
        let mut a = a;
        a.sadd(0, &set, (base..base + 200).map(padded).collect())
            .await
            .unwrap();
        a.srem(0, &set, (base..base + 200).step_by(3).map(padded).collect())
            .await
            .unwrap();
        for i in 0..150 {
            a.push_list(0, &list, vec![padded(base + i)], i % 2 == 0, false)
                .await
                .unwrap();
        }
        a.pop_list(0, &list, true, 20).await.unwrap();
        a.pop_list(0, &list, false, 10).await.unwrap();
        for i in 0..120 {
            next_ms += 1;
            a.add_to_stream(
                0,
                &stream,
                true,
                RequestedId::Exact(StreamId::new(next_ms, 0)),
                next_ms,
                &[(b("field"), padded(base + i))],
                (i == 119).then_some(Trim {
                    strategy: TrimStrategy::MaxLen(300),
                    approx: false,
                    limit: 0,
                }),
            )
            .await
            .unwrap();
        }
        a.update_stream(0, &stream, false, |s| {
            Ok(s.delete_many(&[
                StreamId::new(next_ms - 5, 0),
                StreamId::new(next_ms - 50, 0),
            ]))
        })
        .await
        .unwrap();
        // Flushed after rounds 0, 2 and 4: the last round's writes wait in the buffer, onto
        // chains that began before a flush.
        if round % 2 == 0 && round < 5 {
            h.sluice.flush().await.unwrap();
        }
    }
    let views = |h: &Harness| {
        let sluice = h.sluice.clone();
        let (set, list, stream) = (set.clone(), list.clone(), stream.clone());
        async move {
            let mut a = sluice.access();
            let s = a.set_image(0, set).await.unwrap().expect("the set");
            let l = a.list_image(0, list).await.unwrap().expect("the list");
            let x = a
                .stream_image(0, stream)
                .await
                .unwrap()
                .expect("the stream");
            (
                rows_view("set", &s),
                rows_view("list", &l),
                rows_view("stream", &x),
            )
        }
    };
    let before = views(&h).await;
    assert!(before.0.len() > 500 && before.1.len() > 500 && before.2.len() > 500);
    let h = h.crash_restart().await.unwrap();
    assert!(views(&h).await == before, "after a crash");
    h.sluice.flush().await.unwrap();
    let h = h.restart(|_| {}).await;
    assert!(views(&h).await == before, "from the table alone");
}
