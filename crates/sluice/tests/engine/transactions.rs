//! Transactions (MULTI/EXEC, scripts, MSET) and hashes: all or nothing, isolated, watched.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice::{Kind, Policy, SluiceError};

use crate::common::*;

const POLICIES: [Policy; 3] = [Policy::WriteThrough, Policy::WriteBack, Policy::Invalidate];

/// Every write of a committed transaction is visible, in the cache and (once flushed) in the
/// database; reads inside the transaction see its own staged writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_transaction_applies_every_write() {
    for policy in POLICIES {
        let h = Harness::start("", vec![builtin(policy)]).await;
        h.set("gone", "x").await;
        let keys = [b("a"), b("b"), b("gone")];
        let mut txn = h
            .sluice
            .transaction(keys.iter().map(|k| (0, &k[..])))
            .await
            .expect("begin");
        {
            let mut access = txn.access();
            access
                .set(0, b("a"), b("1"), Default::default())
                .await
                .unwrap();
            assert_eq!(access.incr_by(0, b("b"), 5).await.unwrap(), 5);
            assert!(access.del(0, &b("gone")).await.unwrap());
            // Its own reads see its writes.
            assert_eq!(access.get(0, b("a")).await.unwrap(), Some(b("1")));
            assert_eq!(access.get(0, b("gone")).await.unwrap(), None);
        }
        // Nothing is visible before the commit.
        assert_eq!(h.get("a").await, None, "{policy:?}");
        assert_eq!(h.get("gone").await.as_deref(), Some("x"), "{policy:?}");
        txn.commit().await.unwrap();
        assert_eq!(h.get("a").await.as_deref(), Some("1"), "{policy:?}");
        assert_eq!(h.get("b").await.as_deref(), Some("5"), "{policy:?}");
        assert_eq!(h.get("gone").await, None, "{policy:?}");
        h.sluice.flush().await.unwrap();
        let table = h.kv_table(0);
        assert_eq!(table.get("a").map(String::as_str), Some("1"), "{policy:?}");
        assert_eq!(table.get("b").map(String::as_str), Some("5"), "{policy:?}");
        assert!(!table.contains_key("gone"), "{policy:?}");
    }
}

/// A transaction dropped without a commit applies nothing and frees its keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_transaction_applies_nothing() {
    for policy in POLICIES {
        let h = Harness::start("", vec![builtin(policy)]).await;
        let key = b("k");
        let mut txn = h.sluice.transaction([(0, &key[..])]).await.expect("begin");
        txn.access()
            .set(0, b("k"), b("v"), Default::default())
            .await
            .unwrap();
        drop(txn);
        assert_eq!(h.get("k").await, None, "{policy:?}");
        // The key's lock is free again.
        tokio::time::timeout(Duration::from_secs(5), h.set("k", "w"))
            .await
            .expect("the key is not left locked");
        assert_eq!(h.get("k").await.as_deref(), Some("w"));
    }
}

/// A transaction that finds a key another transaction holds is told to restart, and after
/// the restart holds that key too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_taken_late_restarts_the_transaction() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    let (a, c) = (b("a"), b("c"));
    let holder = h.sluice.transaction([(0, &c[..])]).await.expect("begin");
    let mut txn = h.sluice.transaction([(0, &a[..])]).await.expect("begin");
    let r = txn.access().get(0, b("c")).await;
    if r == Err(SluiceError::Contended) {
        assert!(txn.needs_restart());
        drop(holder);
        txn.restart().await.expect("restart");
        assert!(!txn.needs_restart());
        txn.access()
            .set(0, b("c"), b("1"), Default::default())
            .await
            .unwrap();
    } else {
        // Both keys happened to share a stripe, which the first transaction already holds.
        drop(holder);
    }
    txn.commit().await.unwrap();
}

/// No reader ever sees half of a transaction: two keys always written together are read
/// together by MGET (which reads at one instant) under every policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_never_see_half_of_a_transaction() {
    for policy in POLICIES {
        let h = Harness::start("", vec![builtin(policy)]).await;
        let stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let (sluice, stop) = (h.sluice.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while !stop.load(Ordering::SeqCst) {
                    let mut keys = [b("x"), b("y")];
                    let got = sluice.access().get_entries(0, &mut keys).await.unwrap();
                    let values: Vec<Option<Bytes>> =
                        got.into_iter().map(|e| e.map(|e| e.value)).collect();
                    assert_eq!(values[0], values[1], "{policy:?}: half a transaction");
                    reads += 1;
                    tokio::task::yield_now().await;
                }
                reads
            })
        };
        for i in 0..200 {
            let v = Bytes::from(i.to_string());
            h.sluice
                .mset(0, vec![(b("x"), v.clone()), (b("y"), v)])
                .await
                .unwrap();
        }
        stop.store(true, Ordering::SeqCst);
        assert!(reader.await.unwrap() > 0);
    }
}

/// WATCH: a write by anyone, a delete or FLUSHDB after the watch changes the key; a read
/// (one that fills the cache included) does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watched_keys_see_writes_but_not_reads() {
    for policy in POLICIES {
        let h = Harness::start("", vec![builtin(policy)]).await;
        h.set("w", "1").await;
        let mut watch = h.sluice.watch_set();
        watch.watch(0, b("w")).await.unwrap();
        assert_eq!(h.get("w").await.as_deref(), Some("1"));
        let keys: Vec<(u8, Bytes)> = watch
            .keys()
            .map(|(d, k)| (d, Bytes::copy_from_slice(k)))
            .collect();
        let txn = h
            .sluice
            .transaction(keys.iter().map(|(d, k)| (*d, &k[..])))
            .await
            .expect("begin");
        assert!(!watch.changed(&txn), "{policy:?}: a read is not a change");
        drop(txn);

        h.set("w", "2").await;
        let txn = h
            .sluice
            .transaction(keys.iter().map(|(d, k)| (*d, &k[..])))
            .await
            .expect("begin");
        assert!(watch.changed(&txn), "{policy:?}: a write is a change");
        drop(txn);

        watch.unwatch();
        watch.watch(0, b("w")).await.unwrap();
        h.sluice.flush_db(Some(0)).await.unwrap();
        let txn = h.sluice.transaction([(0, &b"w"[..])]).await.expect("begin");
        assert!(
            watch.changed(&txn),
            "{policy:?}: FLUSHDB of a live key is a change"
        );
    }
}

/// A built-in hash round-trips through every policy, the database (its kind kept) and a
/// restart; WRONGTYPE between strings and hashes; an emptied hash is deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn builtin_hashes_under_every_policy() {
    for policy in POLICIES {
        let h = Harness::start("", vec![builtin(policy)]).await;
        let key = b("user:1");
        let mut access = h.sluice.access();
        let added = access
            .hset(0, &key, vec![(b("name"), b("Ann")), (b("age"), b("41"))])
            .await
            .unwrap();
        assert_eq!(added, 2);
        assert_eq!(access.hincr_by(0, &key, b("age"), 1).await.unwrap(), 42);
        assert!(!access.hsetnx(0, &key, b("name"), b("Bob")).await.unwrap());
        let entry = access.get_entry(0, key.clone()).await.unwrap().unwrap();
        assert_eq!(entry.kind, Kind::Hash);
        assert_eq!(
            access.get(0, key.clone()).await,
            Err(SluiceError::WrongType),
            "{policy:?}"
        );
        h.set("s", "v").await;
        assert_eq!(
            access.hset(0, &b("s"), vec![(b("f"), b("v"))]).await,
            Err(SluiceError::WrongType)
        );
        h.sluice.flush().await.unwrap();
        let h = h.restart(|_| {}).await;
        let mut access = h.sluice.access();
        let hash = access.hash(0, key.clone()).await.unwrap().unwrap();
        let pairs: Vec<(Bytes, Bytes)> = hash.iter().cloned().collect();
        assert_eq!(
            pairs,
            vec![(b("name"), b("Ann")), (b("age"), b("42"))],
            "{policy:?}: fields in insertion order after a restart"
        );
        assert_eq!(
            access.hdel(0, &key, &[b("name"), b("age")]).await.unwrap(),
            2
        );
        assert_eq!(access.get_entry(0, key.clone()).await.unwrap(), None);
        h.sluice.flush().await.unwrap();
        assert!(!h.kv_table(0).contains_key("user:1"), "{policy:?}");
    }
}

/// A restart takes the contended key in order, and releases only what the transaction held:
/// the key another transaction held keeps one holder at a time (a release of a stripe never
/// held would let two writers into it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_never_releases_a_key_it_did_not_hold() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    let (a, c) = (b("a"), b("c"));
    let holder = h.sluice.transaction([(0, &c[..])]).await.expect("begin");
    let mut txn = h.sluice.transaction([(0, &a[..])]).await.expect("begin");
    if txn.access().get(0, b("c")).await != Err(SluiceError::Contended) {
        return; // a and c share a stripe: nothing to restart
    }
    let restarted = tokio::spawn(async move {
        txn.restart().await.expect("restart");
        txn
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(holder);
    let mut txn = tokio::time::timeout(Duration::from_secs(5), restarted)
        .await
        .expect("the restart takes c once its holder lets go")
        .unwrap();
    txn.access()
        .set(0, b("c"), b("txn"), Default::default())
        .await
        .unwrap();
    // The transaction holds c: a direct write must wait for it.
    let sluice = h.sluice.clone();
    let direct = tokio::spawn(async move {
        sluice
            .set(0, b("c"), b("direct"), Default::default())
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !direct.is_finished(),
        "a direct write got into a key the transaction holds"
    );
    txn.commit().await.unwrap();
    direct.await.unwrap();
    assert_eq!(h.get("c").await.as_deref(), Some("direct"));
}

/// A key named `prefix` and a number whose stripe no transaction holds now: keys share 4096
/// lock stripes, and a test about keys held apart needs them on different ones.
async fn key_on_a_free_stripe(h: &Harness, prefix: &str) -> Bytes {
    for n in 0.. {
        let key = b(&format!("{prefix}{n}"));
        let mut probe = h
            .sluice
            .transaction(std::iter::empty::<(u8, &[u8])>())
            .await
            .expect("begin");
        if probe.access().get(0, key.clone()).await != Err(SluiceError::Contended) {
            return key;
        }
    }
    unreachable!("some stripe is free")
}

/// Sets `key` directly, from a task of its own.
fn set_in_task(
    sluice: &sluice::Sluice,
    key: &Bytes,
) -> tokio::task::JoinHandle<Result<(), SluiceError>> {
    let (sluice, key) = (sluice.clone(), key.clone());
    tokio::spawn(async move {
        sluice
            .access()
            .set(0, key, b("v"), Default::default())
            .await
            .map(|_| ())
    })
}

/// A transaction marked busy (a script past its busy threshold) turns away whoever waits for
/// its keys: a writer already waiting, one arriving later, a transaction waiting to begin,
/// and a key the script took late. A writer waiting for a key held by a transaction not
/// marked busy keeps waiting. Once the busy transaction ends, its keys are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_on_a_busy_transaction_give_up_and_others_keep_waiting() {
    let busy = Err(SluiceError::Busy(sluice::ScriptKind::Eval));
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    let held = b("held");
    let mut script = h.sluice.transaction([(0, &held[..])]).await.expect("begin");
    let other = key_on_a_free_stripe(&h, "other").await;
    let plain = h
        .sluice
        .transaction([(0, &other[..])])
        .await
        .expect("begin");
    let late = key_on_a_free_stripe(&h, "late").await;

    let early_writer = set_in_task(&h.sluice, &held);
    let early_txn = {
        let (sluice, held) = (h.sluice.clone(), held.clone());
        tokio::spawn(async move { sluice.transaction([(0, &held[..])]).await.map(drop) })
    };
    let waits_for_plain = set_in_task(&h.sluice, &other);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !early_writer.is_finished(),
        "waits while the script is not busy"
    );
    assert!(
        !early_txn.is_finished(),
        "waits while the script is not busy"
    );

    script.access().mark_busy(sluice::ScriptKind::Eval);
    assert_eq!(early_writer.await.expect("task"), busy);
    assert_eq!(early_txn.await.expect("task"), busy);
    assert_eq!(set_in_task(&h.sluice, &held).await.expect("task"), busy);
    // A key the busy script takes late is busy too.
    script
        .access()
        .get(0, late.clone())
        .await
        .expect("a free key");
    assert_eq!(set_in_task(&h.sluice, &late).await.expect("task"), busy);

    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !waits_for_plain.is_finished(),
        "a key held by a transaction that is not busy is waited for"
    );
    drop(plain);
    assert_eq!(waits_for_plain.await.expect("task"), Ok(()));

    drop(script);
    assert_eq!(set_in_task(&h.sluice, &held).await.expect("task"), Ok(()));
    assert_eq!(set_in_task(&h.sluice, &late).await.expect("task"), Ok(()));
}
