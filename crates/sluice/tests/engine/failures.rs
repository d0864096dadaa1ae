//! Store failures: what the caller sees, what the cache keeps, and that every acknowledged
//! write-back write ends up stored, retried, or parked as a dead letter.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::model::StoreWrite;
use sluice::tiers::journal::wal::{JournalFaults, WalJournal};
use sluice::tiers::store::faulty::FaultyStore;
use sluice::tiers::store::sqlite::SqliteStore;
use sluice::tiers::store::SharedStore;
use sluice::{DeadLetterSelector, Policy, Sluice, SluiceError};

use crate::common::*;

fn assert_store_error(err: &SluiceError, keyspace: &str) {
    match err {
        SluiceError::Store { keyspace: ks, .. } => assert_eq!(ks, keyspace),
        other => panic!("expected a store error for {keyspace}, got {other:?}"),
    }
    assert!(
        err.to_string()
            .starts_with(&format!("ERR store failed for keyspace '{keyspace}'")),
        "{err}"
    );
}

// ---- write-through / invalidate -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_returns_the_store_error_and_never_caches_the_refused_value() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    h.set("k", "v1").await;
    assert_eq!(h.get("k").await.as_deref(), Some("v1"));

    h.store.set_outage(true);
    let err = h
        .sluice
        .set(0, b("k"), b("v2"), Default::default())
        .await
        .unwrap_err();
    assert_store_error(&err, "default");
    // Nothing to serve but the database, which is down: never the refused value.
    let during = h.sluice.get(0, b("k")).await;
    assert_ne!(during, Ok(Some(b("v2"))));
    assert!(
        during.is_err(),
        "the cached v1 copy was removed too: {during:?}"
    );

    h.store.set_outage(false);
    assert_eq!(
        h.get("k").await.as_deref(),
        Some("v1"),
        "GET reads the database's value"
    );
    assert_eq!(h.kv_row(0, "k"), Some(("v1".into(), None)));
    let info = &h.sluice.keyspaces()[0];
    assert_eq!(info.store_errors, 1);
    assert!(info
        .last_error
        .as_deref()
        .unwrap()
        .contains("injected outage"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_through_transient_batch_failure_leaves_the_old_value_everywhere() {
    let h = Harness::start(PRODUCTS, vec![price_keyspace(Policy::WriteThrough)]).await;
    h.set("product:1:price", "10").await;

    h.store.fail_next_batches(1);
    let err = h
        .sluice
        .set(0, b("product:1:price"), b("20"), Default::default())
        .await
        .unwrap_err();
    assert_store_error(&err, "price");
    assert!(
        err.to_string().contains("injected transient batch failure"),
        "{err}"
    );

    // Reads still work: the refused 20 is neither in the cache nor in the table.
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
    assert_eq!(h.column("products", "price", 1), Some(Some("10".into())));

    // And the next write goes through normally.
    h.set("product:1:price", "30").await;
    assert_eq!(h.column("products", "price", 1), Some(Some("30".into())));
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("30"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_returns_the_store_error_and_serves_the_database_value() {
    let h = Harness::start("", vec![builtin(Policy::Invalidate)]).await;
    h.set("k", "v1").await;
    assert_eq!(h.get("k").await.as_deref(), Some("v1"));

    h.store.fail_next_batches(1);
    assert_store_error(
        &h.sluice
            .set(0, b("k"), b("v2"), Default::default())
            .await
            .unwrap_err(),
        "default",
    );
    h.store.fail_next_batches(1);
    assert_store_error(&h.sluice.del(0, &b("k")).await.unwrap_err(), "default");
    assert_eq!(h.get("k").await.as_deref(), Some("v1"));
    assert_eq!(h.kv_row(0, "k"), Some(("v1".into(), None)));
}

// ---- write-back ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_keeps_acked_writes_through_an_outage_and_stores_them_on_recovery() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    h.store.set_outage(true);

    let mut expected = BTreeMap::new();
    for i in 0..50 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        h.set(&k, &v).await;
        expected.insert(k, v);
    }
    // Rewrites and deletes during the outage coalesce in the buffer.
    h.set("k3", "v3-new").await;
    expected.insert("k3".into(), "v3-new".into());
    assert!(h.sluice.del(0, &b("k4")).await.unwrap());
    expected.remove("k4");

    // Let the flusher fail and schedule retries.
    let retried = eventually(Duration::from_secs(5), || {
        let info = &h.sluice.keyspaces()[0];
        info.store_errors > 0 && info.retries > 0
    })
    .await;
    assert!(retried, "{:?}", h.sluice.keyspaces()[0]);
    assert!(
        h.kv_table(0).is_empty(),
        "nothing reached the database during the outage"
    );
    assert_eq!(h.buffered("default"), 50);
    assert_store_error(&h.sluice.flush().await.unwrap_err(), "default");

    // Every acknowledged write is readable during the outage, from the buffer.
    for i in 0..50 {
        let k = format!("k{i}");
        assert_eq!(h.get(&k).await.as_ref(), expected.get(&k), "{k}");
    }

    // The database comes back: the flusher retries on its own and loses nothing.
    h.store.set_outage(false);
    let stored = eventually(Duration::from_secs(10), || h.kv_table(0) == expected).await;
    assert!(stored, "table after recovery: {:?}", h.kv_table(0));
    assert!(eventually(Duration::from_secs(5), || h.buffered("default") == 0).await);
    assert!(h.sluice.dead_letters(None).unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_back_survives_transient_batch_failures_without_loss_or_duplication() {
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_batch = 8;
    let h = Harness::start("", vec![ks]).await;
    h.store.fail_next_batches(3);
    let mut expected = BTreeMap::new();
    for i in 0..40 {
        let (k, v) = (format!("k{i}"), format!("v{i}"));
        h.set(&k, &v).await;
        expected.insert(k, v);
    }
    let stored = eventually(Duration::from_secs(15), || h.kv_table(0) == expected).await;
    assert!(stored, "table: {:?}", h.kv_table(0));
    h.sluice.flush().await.unwrap();
    assert_eq!(
        h.store.rows_written(),
        40,
        "each key was stored exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_back_buffer_answers_busy_and_loses_nothing_acked() {
    let mut ks = builtin(Policy::WriteBack);
    ks.max_dirty = 4;
    ks.backpressure_timeout = Duration::from_millis(50);
    let h = Harness::start("", vec![ks]).await;
    h.store.set_outage(true);

    for k in ["a", "b", "c", "d"] {
        h.set(k, &format!("{k}1")).await;
    }
    let started = Instant::now();
    let err = h
        .sluice
        .set(0, b("e"), b("e1"), Default::default())
        .await
        .unwrap_err();
    assert_eq!(err, SluiceError::BufferFull("default".into()));
    assert_eq!(
        err.to_string(),
        "BUSY write-back buffer full (keyspace default)"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(45),
        "the write waited backpressure_timeout for room first"
    );

    // A key already buffered needs no room: its write coalesces.
    h.set("a", "a2").await;
    assert_eq!(h.get("a").await.as_deref(), Some("a2"));
    assert_eq!(h.buffered("default"), 4);

    h.store.set_outage(false);
    h.sluice.flush().await.unwrap();
    let expected: BTreeMap<String, String> = [("a", "a2"), ("b", "b1"), ("c", "c1"), ("d", "d1")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        h.kv_table(0),
        expected,
        "every acknowledged write, and only those"
    );
    assert_eq!(
        h.get("e").await,
        None,
        "the refused write was never applied"
    );

    // With room again, the write is accepted.
    h.set("e", "e2").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "e"), Some(("e2".into(), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_writer_gets_room_when_a_flush_frees_the_buffer() {
    let mut ks = builtin(Policy::WriteBack);
    ks.max_dirty = 2;
    ks.flush_interval = Duration::from_secs(3600);
    ks.backpressure_timeout = Duration::from_secs(5);
    let h = Harness::start("", vec![ks]).await;
    h.set("a", "1").await;
    h.set("b", "2").await;
    // The full buffer wakes the flusher, which makes room within the timeout.
    h.set("c", "3").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_table(0).len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_entry_is_parked_as_a_dead_letter_and_blocks_nothing() {
    let h = Harness::start("", vec![builtin(Policy::WriteBack)]).await;
    h.store.poison_key(b"bad");

    let mut expected = BTreeMap::new();
    for i in 0..10 {
        let (k, v) = (format!("good:{i}"), format!("v{i}"));
        h.set(&k, &v).await;
        expected.insert(k, v);
        if i == 4 {
            h.set("bad", "x").await;
        }
    }
    // The background flusher stores the good entries and parks the poison one.
    let settled = eventually(Duration::from_secs(10), || {
        h.kv_table(0) == expected && h.sluice.dead_letters(None).unwrap().len() == 1
    })
    .await;
    assert!(settled, "table: {:?}", h.kv_table(0));
    h.sluice.flush().await.unwrap();

    let letters = h.sluice.dead_letters(None).unwrap();
    assert_eq!(letters.len(), 1);
    let letter = &letters[0];
    assert_eq!(letter.keyspace, "default");
    assert_eq!((letter.db, &letter.key[..]), (0, &b"bad"[..]));
    assert_eq!(letter.write, StoreWrite::string(b("x"), None));
    assert!(
        letter.error.contains("injected permanent failure"),
        "{}",
        letter.error
    );
    assert_eq!(h.sluice.dead_letters(Some("default")).unwrap().len(), 1);
    assert!(h.sluice.dead_letters(Some("other")).unwrap().is_empty());
    assert_eq!(h.sluice.keyspaces()[0].dead_letters, 1);
    assert_eq!(h.buffered("default"), 0, "the poison entry left the buffer");
    assert_eq!(
        h.get("bad").await,
        None,
        "the database never took it, so it is not served"
    );

    // The queue keeps moving.
    h.set("good:late", "late").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "good:late"), Some(("late".into(), None)));

    // Retrying while the store still refuses parks it again.
    assert_eq!(
        h.sluice
            .retry_dead_letters(&DeadLetterSelector::All)
            .await
            .unwrap(),
        1
    );
    h.sluice.flush().await.unwrap();
    assert_eq!(h.sluice.dead_letters(None).unwrap().len(), 1);
    assert_eq!(h.kv_row(0, "bad"), None);

    // Once the store accepts it, a retry stores it.
    h.store.cure_key(b"bad");
    assert_eq!(
        h.sluice
            .retry_dead_letters(&DeadLetterSelector::All)
            .await
            .unwrap(),
        1
    );
    h.sluice.flush().await.unwrap();
    assert!(h.sluice.dead_letters(None).unwrap().is_empty());
    assert_eq!(h.kv_row(0, "bad"), Some(("x".into(), None)));
    assert_eq!(h.get("bad").await.as_deref(), Some("x"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_dead_letter_discards_only_that_key() {
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_interval = Duration::from_secs(3600);
    let h = Harness::start("", vec![ks]).await;
    h.store.poison_key(b"p1");
    h.store.poison_key(b"p2");
    h.set("p1", "one").await;
    h.set("p2", "two").await;
    h.set("ok", "fine").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(h.sluice.dead_letters(None).unwrap().len(), 2);
    let first = h.sluice.first_dead_letters(None, 1).unwrap();
    assert_eq!(first.len(), 1, "a listing reads no more than asked");
    assert_eq!(
        first[0].key,
        h.sluice.dead_letters(None).unwrap()[0].key,
        "oldest first"
    );

    let dropped = h
        .sluice
        .drop_dead_letters(&DeadLetterSelector::Key {
            db: 0,
            key: b("p1"),
        })
        .unwrap();
    assert_eq!(dropped, 1);
    let left = h.sluice.dead_letters(None).unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(&left[0].key[..], b"p2");

    // A dropped letter is gone for good; retrying the rest does not bring it back.
    h.store.cure_key(b"p1");
    h.store.cure_key(b"p2");
    assert_eq!(
        h.sluice
            .retry_dead_letters(&DeadLetterSelector::All)
            .await
            .unwrap(),
        1
    );
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "p1"), None);
    assert_eq!(h.get("p1").await, None);
    assert_eq!(h.kv_row(0, "p2"), Some(("two".into(), None)));
    assert_eq!(h.kv_row(0, "ok"), Some(("fine".into(), None)));
    assert_eq!(
        h.sluice
            .drop_dead_letters(&DeadLetterSelector::All)
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newer_stored_write_supersedes_a_dead_letter() {
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_interval = Duration::from_secs(3600);
    let h = Harness::start("", vec![ks]).await;
    h.store.poison_key(b"k");
    h.set("k", "old").await;
    h.sluice.flush().await.unwrap();
    assert_eq!(h.sluice.dead_letters(None).unwrap().len(), 1);

    h.store.cure_key(b"k");
    h.set("k", "new").await;
    h.sluice.flush().await.unwrap();
    assert!(
        h.sluice.dead_letters(None).unwrap().is_empty(),
        "retrying the old letter could only bring back an older value"
    );
    assert_eq!(
        h.sluice
            .retry_dead_letters(&DeadLetterSelector::All)
            .await
            .unwrap(),
        0
    );
    h.sluice.flush().await.unwrap();
    assert_eq!(h.kv_row(0, "k"), Some(("new".into(), None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mapped_value_the_database_refuses_becomes_a_dead_letter() {
    // The CHECK constraint is invisible to Sluice's up-front conversion check, so the
    // refusal only shows at flush time, as a permanent per-row error.
    let schema = "CREATE TABLE products (id INTEGER PRIMARY KEY, price NUMERIC CHECK (price >= 0))";
    let mut ks = price_keyspace(Policy::WriteBack);
    ks.flush_interval = Duration::from_secs(3600);
    let h = Harness::start(schema, vec![ks]).await;
    h.set("product:1:price", "5").await;
    h.set("product:2:price", "-1").await;
    h.set("product:3:price", "7").await;
    h.sluice.flush().await.unwrap();

    assert_eq!(h.column("products", "price", 1), Some(Some("5".into())));
    assert_eq!(h.column("products", "price", 2), None);
    assert_eq!(h.column("products", "price", 3), Some(Some("7".into())));
    let letters = h.sluice.dead_letters(Some("price")).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(&letters[0].key[..], b"product:2:price");
    assert!(letters[0].error.contains("CHECK"), "{}", letters[0].error);
    assert_eq!(h.get("product:2:price").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_whole_is_split_until_the_poison_entry_is_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_interval = Duration::from_secs(3600);
    let cfg = config(dir.path(), vec![ks]);
    let inner: SharedStore = Arc::new(SqliteStore::open(&db_path(dir.path())).unwrap());
    // Like PostgreSQL, the store aborts a whole batch when one entry violates a constraint:
    // the error is permanent and says nothing about which entry failed.
    let store = FaultyStore::new(inner);
    store.refuse_batches_with_key(b"k13");
    let sluice = Sluice::builder(cfg).store(store).open().await.unwrap();

    for i in 0..32 {
        sluice
            .set(
                0,
                b(&format!("k{i}")),
                b(&format!("v{i}")),
                Default::default(),
            )
            .await
            .unwrap();
    }
    sluice.flush().await.unwrap();

    let table = kv_table(dir.path(), 0);
    assert_eq!(table.len(), 31, "every entry but the poison one is stored");
    assert!(!table.contains_key("k13"));
    let letters = sluice.dead_letters(None).unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(&letters[0].key[..], b"k13");
    assert!(letters[0].error.contains("transaction aborted"));
}

/// Opens an engine over a fsync journal whose segment I/O fails as `faults` plans.
async fn open_with_journal_faults(dir: &std::path::Path) -> (Sluice, JournalFaults) {
    let mut cfg = config(dir, vec![builtin(Policy::WriteBack)]);
    cfg.journal.durability = sluice::Durability::Fsync;
    let faults = JournalFaults::new();
    let journal =
        WalJournal::open_with_faults(&dir.join("journal"), &cfg.journal, false, faults.clone())
            .await
            .unwrap();
    let sluice = Sluice::builder(cfg)
        .journal(Arc::new(journal))
        .open()
        .await
        .unwrap();
    (sluice, faults)
}

/// A write-back write made while the journal is out of service (after a failed fsync) is
/// refused with the journal's error before it touches the buffer or the cache; the write
/// whose own fsync failed was buffered before the fsync ran, and once the engine has reloaded
/// its buffers from the journal it is neither read nor ever stored. Acknowledged writes are.
#[tokio::test]
async fn write_back_writes_are_refused_while_the_journal_is_failed() {
    let dir = tempfile::tempdir().unwrap();
    let (sluice, faults) = open_with_journal_faults(dir.path()).await;
    sluice
        .set(0, b("before"), b("1"), Default::default())
        .await
        .unwrap();

    const EIO: i32 = 5;
    faults.fail_sync_after(0, EIO);
    let failed = sluice.set(0, b("failed"), b("2"), Default::default()).await;
    assert!(
        matches!(&failed, Err(SluiceError::Journal(_))),
        "the write whose fsync failed is refused: {failed:?}"
    );
    let later = sluice.set(0, b("later"), b("3"), Default::default()).await;
    let Err(SluiceError::Journal(text)) = &later else {
        panic!("a later write-back write is refused at once: {later:?}");
    };
    assert!(text.contains("restart Sluice"), "says what to do: {text}");
    assert_eq!(sluice.get(0, b("later")).await.unwrap(), None);
    assert_eq!(sluice.get(0, b("before")).await.unwrap(), Some(b("1")));
    let stats = sluice.journal_stats();
    assert!(
        stats.health.error().is_some(),
        "stats report the failed journal"
    );
    // The write whose fsync failed vanishes once the buffers are reloaded from the journal.
    assert!(
        becomes_absent(&sluice, "failed").await,
        "a write told it failed is not read"
    );
    assert_eq!(sluice.get(0, b("before")).await.unwrap(), Some(b("1")));
    sluice.flush().await.unwrap();
    let table = kv_table(dir.path(), 0);
    assert_eq!(
        table.get("before").map(String::as_str),
        Some("1"),
        "acknowledged writes are stored"
    );
    assert!(!table.contains_key("failed"), "never stored: {table:?}");
    assert!(!table.contains_key("later"));
}

/// The flusher stores no write before its journal record is durable: a flush that starts while
/// the write's fsync is still pending waits for it, and when that fsync fails the write is not
/// stored, while the key's acknowledged value before it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_fsync_is_pending_or_failed_is_never_flushed() {
    let dir = tempfile::tempdir().unwrap();
    let (sluice, faults) = open_with_journal_faults(dir.path()).await;
    sluice
        .set(0, b("k"), b("acked"), Default::default())
        .await
        .unwrap();

    // The next group is held in the writer: its fsync has not run.
    faults.hold();
    let writer = {
        let sluice = sluice.clone();
        tokio::spawn(async move { sluice.set(0, b("k"), b("doomed"), Default::default()).await })
    };
    let mut buffered = false;
    for _ in 0..200 {
        if sluice.get(0, b("k")).await.unwrap() == Some(b("doomed")) {
            buffered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(buffered, "the write is buffered before its fsync ran");
    let flush = {
        let sluice = sluice.clone();
        tokio::spawn(async move { sluice.flush().await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        kv_table(dir.path(), 0).get("k").map(String::as_str) != Some("doomed"),
        "the flush waits for the fsync"
    );

    const EIO: i32 = 5;
    faults.fail_sync_after(0, EIO);
    faults.release();
    assert!(
        matches!(writer.await.unwrap(), Err(SluiceError::Journal(_))),
        "the writer is told its write failed"
    );
    let _ = flush.await.unwrap();
    assert!(
        kv_table(dir.path(), 0).get("k").map(String::as_str) != Some("doomed"),
        "a write told it failed is never stored"
    );
    // After the reload, the acknowledged value is read and stored.
    let mut stored = false;
    for _ in 0..200 {
        let _ = sluice.flush().await;
        if kv_table(dir.path(), 0).get("k").map(String::as_str) == Some("acked") {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(stored, "the acknowledged value is stored");
    assert_eq!(sluice.get(0, b("k")).await.unwrap(), Some(b("acked")));
}

/// Unmounts a test's file system when the test ends, however it ends.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A real full disk, not an injected error: the journal lives on a 1 MiB tmpfs and write-back
/// writes of 8 KiB go on until one does not fit. That write is refused with the OS's error
/// and is never read or stored, every later write-back write is refused, and every write
/// acknowledged before it is read back and stored. Needs root (to mount); skipped otherwise.
#[tokio::test]
async fn a_full_filesystem_refuses_the_write_that_does_not_fit_and_keeps_every_acked_one() {
    let root = tempfile::tempdir().unwrap();
    let mnt = root.path().join("small-disk");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .output();
    match mounted {
        Ok(out) if out.status.success() => {}
        other => {
            eprintln!(
                "skipped: cannot mount a tmpfs for the full-disk test (needs root): {other:?}"
            );
            return;
        }
    }
    let _unmount = Unmount(mnt.clone());
    let mut ks = builtin(Policy::WriteBack);
    // No flush, so nothing is checkpointed away and the journal fills the disk.
    ks.flush_interval = Duration::from_secs(3600);
    ks.flush_batch = 100_000;
    let mut cfg = config(&mnt, vec![ks]);
    cfg.store = Some(sluice::config::StoreConfig {
        url: format!("sqlite://{}", root.path().join("sluice.db").display()),
    });
    cfg.journal.durability = sluice::Durability::Fsync;
    cfg.journal.segment_size = 256 * 1024;
    let sluice = Sluice::open(cfg).await.unwrap();

    let value = b(&"x".repeat(8 * 1024));
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..1000 {
        let key = format!("k{i}");
        match sluice
            .set(0, b(&key), value.clone(), Default::default())
            .await
        {
            Ok(_) => acked.push(key),
            Err(SluiceError::Journal(text)) => {
                refused = Some((key, text));
                break;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
    let (refused_key, text) = refused.expect("a 1 MiB disk fills up");
    assert!(
        text.contains("No space left on device"),
        "the OS error reaches the writer: {text}"
    );
    assert!(!acked.is_empty());
    let later = sluice.set(0, b("later"), b("v"), Default::default()).await;
    assert!(matches!(later, Err(SluiceError::Journal(_))), "{later:?}");

    let mut gone = false;
    for _ in 0..200 {
        if sluice.get(0, b(&refused_key)).await.unwrap().is_none() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the write that did not fit is not read");
    for key in &acked {
        assert_eq!(
            sluice.get(0, b(key)).await.unwrap(),
            Some(value.clone()),
            "{key}"
        );
    }
    sluice.flush().await.unwrap();
    let table = kv_table(root.path(), 0);
    for key in &acked {
        assert!(table.contains_key(key), "acknowledged {key} is stored");
    }
    assert!(!table.contains_key(&refused_key));
    assert!(!table.contains_key("later"));
}

/// A FLUSHDB whose clear of the table fails (the store is out) changes nothing: it answers the
/// store's error, the buffered write-back writes stay readable, and a crash then replays
/// exactly them (their journal records were not voided, so dropping them from the buffer
/// would have hidden writes that come back after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushdb_whose_clear_fails_leaves_the_buffered_writes_as_a_crash_replays_them() {
    let mut keyspace = builtin(Policy::WriteBack);
    keyspace.flush_interval = Duration::from_secs(3600);
    let h = Harness::start_with("", vec![keyspace], |c| {
        c.journal.durability = sluice::Durability::Fsync;
    })
    .await;
    h.set("stored", "1").await;
    h.sluice.flush().await.unwrap();
    h.set("buffered", "2").await;
    h.store.set_outage(true);
    let refused = h.sluice.flush_db(Some(0)).await;
    assert!(
        matches!(refused, Err(SluiceError::Store { .. })),
        "{refused:?}"
    );
    assert_eq!(h.get("buffered").await.as_deref(), Some("2"));
    assert_eq!(h.buffered("default"), 1);
    let h = h.crash_restart().await.unwrap();
    assert_eq!(h.get("buffered").await.as_deref(), Some("2"));
    assert_eq!(h.get("stored").await.as_deref(), Some("1"));
}
