//! Transactions (MULTI/EXEC, scripts, MSET) and hashes: all or nothing, isolated, watched; a
//! write-back transaction spanning keyspaces is stored in one database transaction.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice::config::Config;
use sluice::tiers::journal::wal::{JournalFaults, WalJournal};
use sluice::tiers::store::faulty::{BatchFate, FaultyStore};
use sluice::tiers::store::sqlite::SqliteStore;
use sluice::tiers::store::SharedStore;
use sluice::{Durability, Kind, Policy, Sluice, SluiceError};

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
        let reads_so_far = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let reader = {
            let (sluice, stop, reads_so_far) =
                (h.sluice.clone(), stop.clone(), reads_so_far.clone());
            tokio::spawn(async move {
                let mut reads = 0;
                while !stop.load(Ordering::SeqCst) {
                    let mut keys = [b("x"), b("y")];
                    let got = sluice.access().get_entries(0, &mut keys).await.unwrap();
                    let values: Vec<Option<Bytes>> =
                        got.into_iter().map(|e| e.map(|e| e.value)).collect();
                    assert_eq!(values[0], values[1], "{policy:?}: half a transaction");
                    reads += 1;
                    reads_so_far.fetch_add(1, Ordering::SeqCst);
                    tokio::task::yield_now().await;
                }
                reads
            })
        };
        // At least 200 transactions, and on until the reader has run among them (on a loaded
        // machine it may not be scheduled during the first 200).
        for i in 0..100_000 {
            let v = Bytes::from(i.to_string());
            h.sluice
                .mset(0, vec![(b("x"), v.clone()), (b("y"), v)])
                .await
                .unwrap();
            if i >= 200 && reads_so_far.load(Ordering::SeqCst) >= 20 {
                break;
            }
            tokio::task::yield_now().await;
        }
        stop.store(true, Ordering::SeqCst);
        assert!(reader.await.unwrap() >= 20);
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

// ---------------------------------------------------------------------------------------------
// Write-back transactions spanning keyspaces

/// Products 1 to 9, each priced 10, for the spanning-transaction tests.
const PRICED: &str =
    "CREATE TABLE products (id INTEGER PRIMARY KEY, price NUMERIC, stock INTEGER, name TEXT);
     WITH RECURSIVE n(id) AS (SELECT 1 UNION ALL SELECT id + 1 FROM n WHERE id < 9)
     INSERT INTO products (id, price) SELECT id, 10 FROM n;";

/// Two write-back keyspaces: `product:{id}:price` on `products.price`, then the built-in table
/// for every other key; both flush every `flush_interval`.
async fn spanning_harness(flush_interval: Duration, tweak: impl FnOnce(&mut Config)) -> Harness {
    let mut price = price_keyspace(Policy::WriteBack);
    let mut plain = builtin(Policy::WriteBack);
    price.flush_interval = flush_interval;
    plain.flush_interval = flush_interval;
    Harness::start_with(PRICED, vec![price, plain], tweak).await
}

/// MSET of a plain key and a product's price: one transaction over both keyspaces.
async fn mset_across(h: &Harness, plain: &str, product: i64, value: &str) {
    h.sluice
        .mset(
            0,
            vec![
                (b(plain), b(value)),
                (b(&format!("product:{product}:price")), b(value)),
            ],
        )
        .await
        .unwrap();
}

/// The batches the store saw that hold `key` (a built-in key or a product id), each as its
/// sorted keys.
fn batches_holding(store: &FaultyStore, key: &str) -> Vec<(Vec<String>, BatchFate)> {
    store
        .batch_log()
        .into_iter()
        .filter(|batch| batch.keys().contains(&b(key)))
        .map(|batch| {
            let mut keys: Vec<String> = batch
                .keys()
                .iter()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect();
            keys.sort();
            (keys, batch.fate)
        })
        .collect()
}

fn price(h: &Harness, id: i64) -> Option<String> {
    h.column("products", "price", id).flatten()
}

/// A write-back transaction writing the built-in table and a mapped table is stored in ONE
/// database transaction; when the database refuses any of its writes, none is stored (every
/// write is a dead letter, in its own keyspace) and clients read the old values again. Keys
/// outside it are stored as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_back_transaction_spanning_keyspaces_is_stored_in_one_database_transaction() {
    let h = spanning_harness(Duration::from_secs(3600), |_| {}).await;
    h.store.log_batches();
    mset_across(&h, "plain:a", 1, "5").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(
        batches_holding(&h.store, "plain:a"),
        vec![(vec!["1".into(), "plain:a".into()], BatchFate::Committed)]
    );
    assert_eq!(h.kv_row(0, "plain:a").map(|r| r.0).as_deref(), Some("5"));
    assert_eq!(price(&h, 1).as_deref(), Some("5"));
    assert_eq!(h.buffered("price") + h.buffered("default"), 0);

    h.store.refuse_atomic_with_key(b"2");
    mset_across(&h, "plain:b", 2, "7").await;
    h.set("plain:c", "1").await;
    h.set("product:3:price", "1").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(
        h.kv_row(0, "plain:b"),
        None,
        "none of the refused transaction"
    );
    assert_eq!(price(&h, 2).as_deref(), Some("10"));
    assert_eq!(h.kv_row(0, "plain:c").map(|r| r.0).as_deref(), Some("1"));
    assert_eq!(price(&h, 3).as_deref(), Some("1"));
    let mut dead: Vec<(String, String)> = h
        .sluice
        .dead_letters(None)
        .unwrap()
        .into_iter()
        .map(|d| (d.keyspace, String::from_utf8_lossy(&d.key).into_owned()))
        .collect();
    dead.sort();
    assert_eq!(
        dead,
        vec![
            ("default".into(), "plain:b".into()),
            ("price".into(), "product:2:price".into())
        ]
    );
    assert_eq!(h.get("plain:b").await, None);
    assert_eq!(h.get("product:2:price").await.as_deref(), Some("10"));
    assert_eq!(h.buffered("price") + h.buffered("default"), 0);
}

/// A spanning transaction the database fails transiently stays buffered whole and is retried
/// whole, with backoff, by the flushers; every retry holds all of it. Meanwhile the other keys
/// of both keyspaces are stored, and once the database recovers so is the transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spanning_transaction_failing_transiently_is_retried_whole_without_blocking_others() {
    let h = spanning_harness(Duration::from_millis(50), |_| {}).await;
    h.store.log_batches();
    h.store.fail_batches_with_key(b"plain:t");
    mset_across(&h, "plain:t", 4, "7").await;
    h.set("plain:other", "1").await;
    h.set("product:5:price", "9").await;
    let both = vec!["4".to_string(), "plain:t".to_string()];
    let retried = eventually(Duration::from_secs(10), || {
        batches_holding(&h.store, "plain:t").len() >= 3
    })
    .await;
    assert!(retried, "the flushers retry the failed transaction");
    assert!(
        eventually(Duration::from_secs(5), || {
            h.kv_row(0, "plain:other").is_some() && price(&h, 5).as_deref() == Some("9")
        })
        .await,
        "the other keys are stored while the transaction fails"
    );
    for (keys, fate) in batches_holding(&h.store, "plain:t") {
        assert_eq!(keys, both, "retried whole, never split");
        assert!(matches!(fate, BatchFate::Failed(_)));
    }
    assert!(batches_holding(&h.store, "4")
        .iter()
        .all(|(keys, _)| *keys == both));
    assert_eq!(h.kv_row(0, "plain:t"), None);
    assert_eq!(price(&h, 4).as_deref(), Some("10"));
    assert_eq!((h.buffered("default"), h.buffered("price")), (1, 1));
    assert!(h.sluice.dead_letters(None).unwrap().is_empty());
    // Readers see the acknowledged transaction all along.
    assert_eq!(h.get("plain:t").await.as_deref(), Some("7"));

    h.store.heal_batches_with_key(b"plain:t");
    assert!(
        eventually(Duration::from_secs(40), || {
            h.kv_row(0, "plain:t").is_some() && price(&h, 4).as_deref() == Some("7")
        })
        .await,
        "stored once the database recovers"
    );
    // The store logs a batch only after its commit returns, a moment after the rows are
    // visible: wait for the entry before reading the log.
    assert!(
        eventually(Duration::from_secs(10), || {
            batches_holding(&h.store, "plain:t")
                .last()
                .is_some_and(|(_, fate)| *fate == BatchFate::Committed)
        })
        .await,
        "the committed batch is logged"
    );
    let last = batches_holding(&h.store, "plain:t").pop().unwrap();
    assert_eq!(last, (both, BatchFate::Committed));
    assert_eq!((h.buffered("default"), h.buffered("price")), (0, 0));
}

/// Per key a newer write never loses to a spanning transaction's older one: a write after the
/// transaction takes its key out of the group (stored on its own, the rest of the group still
/// together), and a write made while the group is being stored stays buffered for the next
/// flush.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_write_to_a_member_of_a_spanning_transaction_wins() {
    let h = spanning_harness(Duration::from_secs(3600), |_| {}).await;
    // Rewritten before the flush: the group keeps only product 5, which the database refuses.
    mset_across(&h, "plain:a", 5, "1").await;
    h.set("plain:a", "2").await;
    h.store.refuse_atomic_with_key(b"5");
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "plain:a").map(|r| r.0).as_deref(), Some("2"));
    assert_eq!(price(&h, 5).as_deref(), Some("10"));
    let dead = h.sluice.dead_letters(None).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(&dead[0].key[..], b"product:5:price");

    // Rewritten while the group is in flight.
    h.store.log_batches();
    mset_across(&h, "plain:b", 6, "1").await;
    h.store.close_door();
    let flush = {
        let sluice = h.sluice.clone();
        tokio::spawn(async move { sluice.flush().await })
    };
    assert!(eventually(Duration::from_secs(5), || h.store.waiting_at_door() == 1).await);
    h.set("plain:b", "2").await;
    h.store.open_door();
    flush.await.unwrap().unwrap();
    // The group (with plain:b's older value) was stored whole, then plain:b's newer value.
    assert_eq!(
        batches_holding(&h.store, "plain:b"),
        vec![
            (vec!["6".into(), "plain:b".into()], BatchFate::Committed),
            (vec!["plain:b".into()], BatchFate::Committed)
        ]
    );
    assert_eq!(h.kv_row(0, "plain:b").map(|r| r.0).as_deref(), Some("2"));
    assert_eq!(price(&h, 6).as_deref(), Some("1"));
    assert_eq!(h.get("plain:b").await.as_deref(), Some("2"));
    assert_eq!(h.buffered("default") + h.buffered("price"), 0);
}

/// After a restart with a spanning transaction still in the journal, the replay stores it in one
/// database transaction too: whole, or (refused) not at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spanning_transaction_replayed_from_the_journal_is_still_one_database_transaction() {
    let journaled = |c: &mut Config| c.journal.durability = Durability::Fsync;
    for refused in [false, true] {
        let h = spanning_harness(Duration::from_secs(3600), journaled).await;
        h.store.set_outage(true);
        mset_across(&h, "plain:r", 7, "3").await;
        let cfg = h.sluice.config().clone();
        let report = h.sluice.shutdown_within(Duration::from_millis(100)).await;
        assert_eq!(report.unflushed, 2);
        assert!(report.kept_in_journal);
        drop(h.sluice);
        let (sluice, store) = open_engine_with(cfg, &h.clock, |store| {
            store.log_batches();
            if refused {
                store.refuse_atomic_with_key(b"7");
            }
        })
        .await
        .expect("engine reopens");
        let fate = if refused {
            BatchFate::Failed(sluice::error::ErrorClass::Permanent)
        } else {
            BatchFate::Committed
        };
        assert_eq!(
            batches_holding(&store, "plain:r"),
            vec![(vec!["7".into(), "plain:r".into()], fate)],
            "refused: {refused}"
        );
        let stored = kv_row(h.dir.path(), 0, "plain:r").map(|r| r.0);
        let h = Harness {
            dir: h.dir,
            sluice,
            store,
            clock: h.clock,
        };
        if refused {
            assert_eq!(stored, None);
            assert_eq!(price(&h, 7).as_deref(), Some("10"));
            assert_eq!(h.sluice.dead_letters(None).unwrap().len(), 2);
        } else {
            assert_eq!(stored.as_deref(), Some("3"));
            assert_eq!(price(&h, 7).as_deref(), Some("3"));
        }
    }
}

/// When the journal goes out of service the buffers are rebuilt from its records: a spanning
/// transaction acknowledged before is rebuilt as one too, and stored in one database transaction,
/// while the write whose fsync failed is never stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spanning_transaction_reloaded_after_a_journal_failure_is_still_one_database_transaction()
{
    let dir = tempfile::tempdir().unwrap();
    exec_sql(dir.path(), PRICED);
    let mut price = price_keyspace(Policy::WriteBack);
    let mut plain = builtin(Policy::WriteBack);
    price.flush_interval = Duration::from_secs(3600);
    plain.flush_interval = Duration::from_secs(3600);
    let mut cfg = config(dir.path(), vec![price, plain]);
    cfg.journal.durability = Durability::Fsync;
    let faults = JournalFaults::new();
    let journal = WalJournal::open_with_faults(
        &dir.path().join("journal"),
        &cfg.journal,
        false,
        faults.clone(),
    )
    .await
    .unwrap();
    let inner: SharedStore = Arc::new(SqliteStore::open(&db_path(dir.path())).unwrap());
    let store = FaultyStore::new(inner);
    store.log_batches();
    let sluice = Sluice::builder(cfg)
        .journal(Arc::new(journal))
        .store(store.clone())
        .open()
        .await
        .unwrap();
    sluice
        .mset(
            0,
            vec![(b("plain:j"), b("4")), (b("product:8:price"), b("4"))],
        )
        .await
        .unwrap();

    const EIO: i32 = 5;
    faults.fail_sync_after(0, EIO);
    let failed = sluice
        .set(0, b("plain:failed"), b("1"), Default::default())
        .await;
    assert!(matches!(failed, Err(SluiceError::Journal(_))), "{failed:?}");
    assert!(
        becomes_absent(&sluice, "plain:failed").await,
        "the buffers were reloaded from the journal"
    );
    sluice.flush().await.unwrap();
    assert_eq!(
        batches_holding(&store, "plain:j"),
        vec![(vec!["8".into(), "plain:j".into()], BatchFate::Committed)]
    );
    assert_eq!(
        kv_row(dir.path(), 0, "plain:j").map(|r| r.0).as_deref(),
        Some("4")
    );
    assert_eq!(kv_row(dir.path(), 0, "plain:failed"), None);
}
