//! Change capture on SQLite: rows another connection changes reach the cache of every
//! keyspace mapped on them, Sluice's own writes coming back cost no miss, no interleaving of a
//! change, a read-through fill and a client write leaves a stale copy, and a broken stream
//! drops the cache rather than leaving it stale.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use sluice::model::DbKey;
use sluice::tiers::cache::Cache;
use sluice::tiers::store::faulty::FaultyStore;
use sluice::tiers::store::sqlite::SqliteStore;
use sluice::tiers::store::SharedStore;
use sluice::{Bytes, Config, KeyspaceConfig, Policy, Sluice};

use crate::common::*;

fn with_changes(c: &mut Config) {
    c.changes.enabled = true;
    c.changes.poll_interval = Duration::from_millis(2);
}

/// An engine on `products` (three rows) with change capture on.
async fn start(keyspaces: Vec<KeyspaceConfig>) -> Harness {
    Harness::start_with(&format!("{PRODUCTS}; {SEED}"), keyspaces, with_changes).await
}

/// The outside writer: a connection of its own on the database file, as another program.
fn outside(h: &Harness, sql: &str) {
    outside_at(h.path(), sql);
}

/// Waits (up to 10 s) until `check` holds, reading through Sluice each time.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Waits until the change task has applied `n` changes in all.
async fn applied(sluice: &Sluice, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while sluice.metrics().changes.applied.load(Ordering::SeqCst) < n {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {n} changes applied"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn misses(h: &Harness, keyspace: &str) -> u64 {
    h.sluice
        .keyspaces()
        .into_iter()
        .find(|k| k.name == keyspace)
        .unwrap()
        .read_misses
}

const SEED: &str =
    "INSERT INTO products VALUES (1, 10, 100, 'one'), (2, 20, 200, 'two'), (3, 30, 300, 'three');";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_inserts_updates_and_deletes_reach_every_mapped_key() {
    let h = start(vec![
        price_keyspace(Policy::WriteThrough),
        stock_keyspace(Policy::Invalidate),
    ])
    .await;
    for id in 1..=3 {
        assert!(h.get(&format!("product:{id}:price")).await.is_some());
        assert!(h.get(&format!("product:{id}:stock")).await.is_some());
    }
    // One transaction changing three rows, two mapped columns and one no keyspace maps.
    outside(
        &h,
        "BEGIN; UPDATE products SET price = 11 WHERE id = 1; \
         UPDATE products SET stock = 222, name = 'TWO' WHERE id = 2; \
         DELETE FROM products WHERE id = 3; \
         INSERT INTO products VALUES (4, 40, 400, 'four'); COMMIT;",
    );
    eventually("every key reads the new rows", || async {
        h.get("product:1:price").await.as_deref() == Some("11")
            && h.get("product:2:stock").await.as_deref() == Some("222")
            && h.get("product:3:price").await.is_none()
            && h.get("product:3:stock").await.is_none()
    })
    .await;
    assert_eq!(h.get("product:2:price").await.as_deref(), Some("20"));
    assert_eq!(h.get("product:4:price").await.as_deref(), Some("40"));
    // A change to a column no keyspace maps leaves the cached copies as they are.
    let replaced = h.sluice.metrics().changes.replaced.load(Ordering::SeqCst);
    let before = h.sluice.metrics().changes.applied.load(Ordering::SeqCst);
    outside(&h, "UPDATE products SET name = 'uno' WHERE id = 1;");
    applied(&h.sluice, before + 2).await;
    assert_eq!(
        h.sluice.metrics().changes.replaced.load(Ordering::SeqCst),
        replaced
    );
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("11"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_column_update_moves_the_row_between_keys() {
    let h = start(vec![price_keyspace(Policy::WriteThrough)]).await;
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
    outside(&h, "UPDATE products SET id = 9 WHERE id = 1;");
    eventually("the old key is gone", || async {
        h.get("product:1:price").await.is_none()
    })
    .await;
    assert_eq!(h.get("product:9:price").await.as_deref(), Some("10"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_keyspace_gets_the_new_row() {
    let mut row = KeyspaceConfig::builtin(Policy::WriteThrough);
    row.name = "product".into();
    row.keys = "product:{id}".into();
    row.table = Some("products".into());
    row.key_column = Some("id".into());
    row.columns = Some(vec!["price".into(), "name".into()]);
    let h = start(vec![row]).await;
    let hash = |h: &Harness| {
        let sluice = h.sluice.clone();
        async move {
            let mut a = sluice.access();
            let hash = a.hash(0, b("product:1")).await.unwrap().unwrap_or_default();
            let mut fields: Vec<(String, String)> = hash
                .iter()
                .map(|(f, v)| {
                    (
                        String::from_utf8(f.to_vec()).unwrap(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    )
                })
                .collect();
            fields.sort();
            fields
        }
    };
    assert_eq!(
        hash(&h).await,
        vec![("name".into(), "one".into()), ("price".into(), "10".into())]
    );
    outside(
        &h,
        "UPDATE products SET price = 15, name = 'uno', stock = 1 WHERE id = 1;",
    );
    eventually("the hash is the new row", || async {
        hash(&h).await == vec![("name".into(), "uno".into()), ("price".into(), "15".into())]
    })
    .await;
}

/// Sluice's own write-through writes come back through the stream and find the copy already
/// equal: no copy is dropped, so no read misses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_writes_coming_back_cost_no_miss() {
    let h = start(vec![price_keyspace(Policy::WriteThrough)]).await;
    // Cached before the first write: otherwise that write's change can arrive between its
    // commit and its own install, find nothing cached, and count as neither below.
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
    for round in 0..20u64 {
        h.set("product:1:price", &format!("{}", 100 + round)).await;
        applied(&h.sluice, round + 1).await;
    }
    let misses_before = misses(&h, "price");
    for _ in 0..10 {
        assert_eq!(h.get("product:1:price").await.as_deref(), Some("119"));
    }
    assert_eq!(misses(&h, "price"), misses_before, "no read missed");
    // Each came back to a copy already equal, or (when it overtook the write's own install)
    // replaced it with the same value; none was dropped.
    let c = &h.sluice.metrics().changes;
    assert_eq!(c.removed.load(Ordering::SeqCst), 0);
    assert_eq!(
        c.unchanged.load(Ordering::SeqCst) + c.replaced.load(Ordering::SeqCst),
        20
    );
}

/// A row another program changes is a change to a watched key: the EXEC of a transaction
/// that watched it is refused, as after a client's write. So is a change to a column the key
/// does not map (a change that may have changed the key is one), and a key not watched is
/// left alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outside_change_breaks_a_watch_of_its_key() {
    let h = start(vec![price_keyspace(Policy::WriteThrough)]).await;
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
    assert_eq!(h.get("product:2:price").await.as_deref(), Some("20"));
    let price_watch = watched(&h.sluice, "product:1:price").await;
    let name_watch = watched(&h.sluice, "product:2:price").await;
    let unchanged_watch = watched(&h.sluice, "product:3:price").await;
    let before = h.sluice.metrics().changes.applied.load(Ordering::SeqCst);
    outside(
        &h,
        "UPDATE products SET price = 11 WHERE id = 1; UPDATE products SET name = 'dos' WHERE id = 2;",
    );
    applied(&h.sluice, before + 2).await;
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("11"));
    assert!(
        watch_changed(&h.sluice, &price_watch, "product:1:price").await,
        "an outside change of a watched key lets its EXEC run"
    );
    assert!(
        watch_changed(&h.sluice, &name_watch, "product:2:price").await,
        "a change of the key's row lets its EXEC run"
    );
    assert!(
        !watch_changed(&h.sluice, &unchanged_watch, "product:3:price").await,
        "a change of another row refuses an EXEC"
    );
}

/// A WATCH of one key, as a connection's WATCH makes it.
async fn watched(sluice: &Sluice, key: &str) -> sluice::WatchSet {
    let mut watch = sluice.watch_set();
    watch
        .watch(0, Bytes::copy_from_slice(key.as_bytes()))
        .await
        .expect("watch");
    watch
}

/// Whether EXEC would find `key` changed since `watch` watched it.
async fn watch_changed(sluice: &Sluice, watch: &sluice::WatchSet, key: &str) -> bool {
    let txn = sluice
        .transaction([(0u8, key.as_bytes())])
        .await
        .expect("begin");
    watch.changed(&txn)
}

/// A write-back write still in the buffer commits after an outside change made before its
/// flush: it wins, as the database's commit order says. An outside change after the flush
/// wins over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_commit_wins_between_a_buffered_write_and_an_outside_change() {
    let mut price = price_keyspace(Policy::WriteBack);
    price.flush_interval = Duration::from_secs(3600);
    let h = start(vec![price]).await;
    h.set("product:1:price", "50").await;
    outside(&h, "UPDATE products SET price = 60 WHERE id = 1;");
    applied(&h.sluice, 1).await;
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("50"));
    h.sluice.flush().await.unwrap();
    assert_eq!(h.column("products", "price", 1), Some(Some("50".into())));
    eventually("the flushed write is read", || async {
        h.get("product:1:price").await.as_deref() == Some("50")
    })
    .await;
    outside(&h, "UPDATE products SET price = 70 WHERE id = 1;");
    eventually("the later outside change is read", || async {
        h.get("product:1:price").await.as_deref() == Some("70")
    })
    .await;
}

async fn gated_engine() -> (tempfile::TempDir, Sluice, Arc<GatedCache>) {
    let dir = tempfile::tempdir().unwrap();
    exec_sql(dir.path(), &format!("{PRODUCTS}; {SEED}"));
    let mut cfg = config(dir.path(), vec![price_keyspace(Policy::WriteThrough)]);
    with_changes(&mut cfg);
    let clock = sluice::clock::ManualClock::new(T0);
    let cache = Arc::new(GatedCache::new(clock.clone()));
    let store: SharedStore =
        FaultyStore::new(Arc::new(SqliteStore::open(&db_path(dir.path())).unwrap()));
    let sluice = Sluice::builder(cfg)
        .clock(Arc::new(clock))
        .store(store)
        .cache(cache.clone())
        .open()
        .await
        .unwrap();
    (dir, sluice, cache)
}

fn outside_at(dir: &std::path::Path, sql: &str) {
    let conn = Connection::open(db_path(dir)).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    conn.execute_batch(sql).unwrap();
}

/// What the cache itself holds for `product:1:price`, read past the engine.
async fn cached_price(cache: &GatedCache) -> Option<Bytes> {
    let key = DbKey {
        db: 0,
        key: b("product:1:price"),
    };
    cache.inner.get(&key).await.unwrap().map(|c| c.value)
}

async fn get(sluice: &Sluice, key: &str) -> Option<String> {
    sluice
        .get(0, b(key))
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

/// A read-through that read the row before an outside change installs what it read after
/// the change was applied: the change moved the version, so the fill takes its copy back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_that_read_before_a_change_does_not_stay_cached() {
    let (dir, sluice, cache) = gated_engine().await;
    cache.arm();
    let reader = {
        let sluice = sluice.clone();
        tokio::spawn(async move { get(&sluice, "product:1:price").await })
    };
    cache.entered.notified().await; // The fill read 10 and waits to install it.
    outside_at(dir.path(), "UPDATE products SET price = 12 WHERE id = 1;");
    applied(&sluice, 1).await;
    cache.let_go();
    assert_eq!(reader.await.unwrap().as_deref(), Some("10"));
    assert_eq!(get(&sluice, "product:1:price").await.as_deref(), Some("12"));
    assert_eq!(cached_price(&cache).await, Some(b("12")));
}

/// A client write of a key whose refresh is in progress waits for it (the refresh holds the
/// key's lock from its read to its install), then wins: the refresh's value, older, is not
/// left cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_write_during_a_refresh_waits_and_wins() {
    let (dir, sluice, cache) = gated_engine().await;
    assert_eq!(get(&sluice, "product:1:price").await.as_deref(), Some("10"));
    cache.arm();
    outside_at(dir.path(), "UPDATE products SET price = 12 WHERE id = 1;");
    cache.entered.notified().await; // The refresh read 12 and waits to install it.
    let writer = {
        let sluice = sluice.clone();
        tokio::spawn(async move {
            sluice
                .set(0, b("product:1:price"), b("13"), Default::default())
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!writer.is_finished(), "the write waits for the refresh");
    cache.let_go();
    writer.await.unwrap();
    assert_eq!(cached_price(&cache).await, Some(b("13")));
    assert_eq!(get(&sluice, "product:1:price").await.as_deref(), Some("13"));
    // The write's own change comes back and finds the copy equal.
    applied(&sluice, 2).await;
    assert_eq!(get(&sluice, "product:1:price").await.as_deref(), Some("13"));
}

/// A trigger dropped by hand means changes went unrecorded: the feed reinstalls it, drops
/// every cached copy (none can be trusted) and goes on following.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_stream_drops_the_cache_and_starts_again() {
    let h = start(vec![price_keyspace(Policy::WriteThrough)]).await;
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("10"));
    outside(
        &h,
        "DROP TRIGGER sluice_changes_products_update; UPDATE products SET price = 17 WHERE id = 1;",
    );
    eventually("the unrecorded change is read", || async {
        h.get("product:1:price").await.as_deref() == Some("17")
    })
    .await;
    assert_eq!(h.sluice.metrics().changes.lost.load(Ordering::SeqCst), 1);
    outside(&h, "UPDATE products SET price = 18 WHERE id = 1;");
    eventually("changes are recorded again", || async {
        h.get("product:1:price").await.as_deref() == Some("18")
    })
    .await;
    // Rows the node had not read deleted by hand: the same.
    outside(
        &h,
        "UPDATE products SET price = 19 WHERE id = 1; DELETE FROM sluice_changes;",
    );
    eventually("the deleted change is read", || async {
        h.get("product:1:price").await.as_deref() == Some("19")
    })
    .await;
}

/// A restarted node resumes after its confirmed position: changes made while it was away are
/// applied (the copies are gone anyway with the process), none is reported lost, and
/// `drop_change_objects` removes the triggers and tables once no node follows them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_and_drop_removes_everything() {
    let h = start(vec![price_keyspace(Policy::WriteThrough)]).await;
    outside(&h, "UPDATE products SET price = 21 WHERE id = 1;");
    eventually("the change is confirmed", || async {
        h.sluice.metrics().changes.position.load(Ordering::SeqCst) >= 1
    })
    .await;
    let position = h.sluice.metrics().changes.position.load(Ordering::SeqCst);
    let h = h.restart(|_| {}).await;
    outside(&h, "UPDATE products SET price = 22 WHERE id = 2;");
    applied(&h.sluice, 1).await;
    eventually("the position moves on from the confirmed one", || async {
        h.sluice.metrics().changes.position.load(Ordering::SeqCst) > position
    })
    .await;
    assert_eq!(h.sluice.metrics().changes.lost.load(Ordering::SeqCst), 0);
    let url = h.sluice.config().store_url();
    h.sluice.shutdown().await;
    let said = sluice::drop_change_objects(&url, "sluice").await.unwrap();
    assert!(said.contains("dropped 3 trigger(s)"), "{said}");
    let conn = Connection::open(db_path(h.path())).unwrap();
    let left: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name LIKE 'sluice_change%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(left, 0);
    // The outside writer's statements work as before.
    conn.execute_batch("UPDATE products SET price = 23 WHERE id = 1;")
        .unwrap();
}
