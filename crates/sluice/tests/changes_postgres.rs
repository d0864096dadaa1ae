//! Change capture on PostgreSQL (logical replication, `pgoutput`), against the real server
//! named by `SLUICE_TEST_POSTGRES_URL` (skipped when unset; it needs `wal_level = logical`,
//! which `.ci/run` sets). Each test has its own table and node name, and drops its slot and
//! publication at the end (and at its start, left over from a failed run).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::clock::ManualClock;
use sluice::model::DbKey;
use sluice::Sluice;
use tokio_postgres::{Client, NoTls};

mod changes_common;
use changes_common::*;
mod common;
use common::GatedCache;
use sluice::tiers::cache::Cache;

fn url() -> Option<String> {
    match std::env::var("SLUICE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!(
                "skipped: set SLUICE_TEST_POSTGRES_URL to run the PostgreSQL change-capture tests"
            );
            None
        }
    }
}

async fn sql(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh table `name` (id, price, note) with rows 1..=3, and no slot or publication of
/// `nodes` left from an earlier run.
async fn fresh(url: &str, name: &str, nodes: &[&str]) -> Client {
    for node in nodes {
        let _ = sluice::drop_change_objects(url, node).await;
    }
    let c = sql(url).await;
    c.batch_execute(&format!(
        "DROP TABLE IF EXISTS {name}; \
         CREATE TABLE {name} (id integer PRIMARY KEY, price integer, note text); \
         INSERT INTO {name} VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c');"
    ))
    .await
    .unwrap();
    c
}

async fn finish(url: &str, nodes: Vec<Sluice>, names: &[&str], table: &str) {
    for s in nodes {
        s.shutdown().await;
    }
    for n in names {
        sluice::drop_change_objects(url, n).await.unwrap();
    }
    let c = sql(url).await;
    c.batch_execute(&format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_changes_in_one_transaction_reach_the_cache() {
    let Some(url) = url() else { return };
    let (table, node) = ("cdc_outside", "cdc_outside");
    let c = fresh(&url, table, &[node]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&url, table, node, dir.path()).await;
    for id in 1..=3 {
        assert!(get(&s, &format!("{table}:{id}")).await.is_some());
    }
    c.batch_execute(&format!(
        "BEGIN; UPDATE {table} SET price = 11 WHERE id = 1; DELETE FROM {table} WHERE id = 2; \
         INSERT INTO {table} VALUES (4, 40, 'd'); UPDATE {table} SET note = 'x' WHERE id = 3; COMMIT;"
    ))
    .await
    .unwrap();
    eventually(&s, &format!("{table}:1"), Some("11")).await;
    eventually(&s, &format!("{table}:2"), None).await;
    assert_eq!(get(&s, &format!("{table}:3")).await.as_deref(), Some("30"));
    assert_eq!(get(&s, &format!("{table}:4")).await.as_deref(), Some("40"));
    // A key column update moves the row.
    c.batch_execute(&format!("UPDATE {table} SET id = 9 WHERE id = 1"))
        .await
        .unwrap();
    eventually(&s, &format!("{table}:1"), None).await;
    assert_eq!(get(&s, &format!("{table}:9")).await.as_deref(), Some("11"));
    let m = &s.metrics().changes;
    assert_eq!(m.lost.load(Ordering::SeqCst), 0);
    assert!(m.applied.load(Ordering::SeqCst) >= 4);
    finish(&url, vec![s], &[node], table).await;
}

/// Two nodes on one database, write-through on both: a write through A is read through B,
/// whose cached copy the stream replaces; A's own write coming back costs A no miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_node_is_read_through_another() {
    let Some(url) = url() else { return };
    let table = "cdc_two_nodes";
    let _c = fresh(&url, table, &["cdc_node_a", "cdc_node_b"]).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(&url, table, "cdc_node_a", da.path()).await;
    let b_node = open(&url, table, "cdc_node_b", db.path()).await;
    let key = format!("{table}:1");
    assert_eq!(get(&a, &key).await.as_deref(), Some("10"));
    assert_eq!(get(&b_node, &key).await.as_deref(), Some("10"));
    a.set(0, b(&key), b("15"), Default::default())
        .await
        .unwrap();
    eventually(&b_node, &key, Some("15")).await;
    let misses = |s: &Sluice| s.keyspaces()[0].read_misses;
    let before = misses(&a);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(get(&a, &key).await.as_deref(), Some("15"));
    assert_eq!(misses(&a), before, "A's own write cost A no miss");
    finish(&url, vec![a, b_node], &["cdc_node_a", "cdc_node_b"], table).await;
}

/// The slot dropped under a running node: it makes a new one, drops every cached copy (changes
/// in between were missed) and goes on following.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_slot_is_made_again_and_the_cache_dropped() {
    let Some(url) = url() else { return };
    let (table, node) = ("cdc_dropped", "cdc_dropped");
    let c = fresh(&url, table, &[node]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&url, table, node, dir.path()).await;
    let key = format!("{table}:1");
    assert_eq!(get(&s, &key).await.as_deref(), Some("10"));
    let slot = format!("sluice_{node}");
    // Stop the walsender and drop the slot before the node takes it again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        c.execute(
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = $1 AND active_pid IS NOT NULL",
            &[&slot],
        )
        .await
        .unwrap();
        if c.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
            .await
            .is_ok()
        {
            break;
        }
        assert!(Instant::now() < deadline, "could not drop the slot");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.batch_execute(&format!("UPDATE {table} SET price = 12 WHERE id = 1"))
        .await
        .unwrap();
    eventually(&s, &key, Some("12")).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.metrics().changes.lost.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the loss was not reported");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    c.batch_execute(&format!("UPDATE {table} SET price = 13 WHERE id = 1"))
        .await
        .unwrap();
    eventually(&s, &key, Some("13")).await;
    finish(&url, vec![s], &[node], table).await;
}

/// The slot confirms only what was applied, and a node restarted after changes resumes from
/// there without a loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_node_resumes_from_its_slot() {
    let Some(url) = url() else { return };
    let (table, node) = ("cdc_restart", "cdc_restart");
    let c = fresh(&url, table, &[node]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&url, table, node, dir.path()).await;
    c.batch_execute(&format!("UPDATE {table} SET price = 21 WHERE id = 1"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.metrics().changes.applied.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the change was not applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    s.shutdown().await;
    drop(s);
    c.batch_execute(&format!("UPDATE {table} SET price = 22 WHERE id = 2"))
        .await
        .unwrap();
    let s = open(&url, table, node, dir.path()).await;
    assert_eq!(get(&s, &format!("{table}:2")).await.as_deref(), Some("22"));
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.metrics().changes.applied.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "the change made while away was not delivered"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(s.metrics().changes.lost.load(Ordering::SeqCst), 0);
    finish(&url, vec![s], &[node], table).await;
}

/// A hash keyspace (a key is a row): an outside update gives the cached hash the new row, and
/// a delete removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_keyspace_gets_the_new_row() {
    let Some(url) = url() else { return };
    let (table, node) = ("cdc_hash", "cdc_hash");
    let c = fresh(&url, table, &[node]).await;
    let dir = tempfile::tempdir().unwrap();
    let s = open_hash(&url, table, node, dir.path()).await;
    let key = format!("{table}:1");
    assert_eq!(
        hash_fields(&s, &key).await,
        vec![("note".into(), "a".into()), ("price".into(), "10".into())]
    );
    c.batch_execute(&format!(
        "UPDATE {table} SET price = 15, note = 'z' WHERE id = 1"
    ))
    .await
    .unwrap();
    eventually_hash(&s, &key, &[("note", "z"), ("price", "15")]).await;
    c.batch_execute(&format!("DELETE FROM {table} WHERE id = 1"))
        .await
        .unwrap();
    eventually_hash(&s, &key, &[]).await;
    finish(&url, vec![s], &[node], table).await;
}

/// The rows of a batch of changes are read with one query and installed without the keys'
/// locks (by the fill protocol). A client write landing while such an install is in flight
/// does not wait for it, reads its own value at once, and the older row read by the refresh
/// never stays cached over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_write_during_a_batched_refresh_wins() {
    let Some(url) = url() else { return };
    let (table, node) = ("cdc_batch_race", "cdc_batch_race");
    let c = fresh(&url, table, &[node]).await;
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(GatedCache::new(ManualClock::new(common::T0)));
    let config = capture_config(&url, table, node, dir.path(), |ks| {
        ks.value_column = Some("price".into())
    });
    let s = Sluice::builder(config)
        .cache(cache.clone())
        .open()
        .await
        .unwrap();
    let key = format!("{table}:1");
    assert_eq!(get(&s, &key).await.as_deref(), Some("10"));
    cache.arm();
    c.batch_execute(&format!("UPDATE {table} SET price = 12 WHERE id = 1"))
        .await
        .unwrap();
    // The refresh read 12 and is installing it.
    tokio::time::timeout(Duration::from_secs(15), cache.entered.notified())
        .await
        .expect("the refresh installs the changed row");
    tokio::time::timeout(
        Duration::from_secs(5),
        s.set(0, b(&key), b("13"), Default::default()),
    )
    .await
    .expect("the write does not wait for the refresh")
    .unwrap();
    assert_eq!(get(&s, &key).await.as_deref(), Some("13"));
    cache.let_go();
    // The write's own change comes back too; once both are applied, 12 is nowhere.
    let deadline = Instant::now() + Duration::from_secs(15);
    while s.metrics().changes.applied.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < deadline, "both changes applied");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let cached = cache
        .inner
        .get(&DbKey {
            db: 0,
            key: b(&key),
        })
        .await
        .unwrap()
        .map(|c| c.value);
    assert_ne!(
        cached,
        Some(b("12")),
        "the refresh's older row is not cached"
    );
    assert_eq!(get(&s, &key).await.as_deref(), Some("13"));
    finish(&url, vec![s], &[node], table).await;
}
