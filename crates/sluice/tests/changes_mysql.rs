//! Change capture on MySQL / MariaDB (the row binlog), against the real server named by
//! `SLUICE_TEST_MYSQL_URL` (skipped when unset; it needs log_bin with binlog_format = ROW,
//! which `.ci/run` sets). Each test has its own table.

use std::sync::atomic::Ordering;
use std::time::Duration;

use mysql_async::prelude::Queryable;
use sluice::Sluice;

mod changes_common;
use changes_common::*;

fn url() -> Option<String> {
    match std::env::var("SLUICE_TEST_MYSQL_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            println!("skipped: set SLUICE_TEST_MYSQL_URL to run the MySQL change-capture tests");
            None
        }
    }
}

async fn sql(url: &str) -> mysql_async::Conn {
    mysql_async::Conn::from_url(url).await.unwrap()
}

/// A fresh table `name` (id, price, note) with rows 1..=3.
async fn fresh(url: &str, name: &str) -> mysql_async::Conn {
    let mut c = sql(url).await;
    c.query_drop(format!(
        "DROP TABLE IF EXISTS {name}; \
         CREATE TABLE {name} (id integer PRIMARY KEY, price integer, note text) ENGINE=InnoDB; \
         INSERT INTO {name} VALUES (1, 10, 'a'), (2, 20, 'b'), (3, 30, 'c');"
    ))
    .await
    .unwrap();
    c
}

async fn finish(url: &str, nodes: Vec<Sluice>, table: &str) {
    for s in nodes {
        s.shutdown().await;
    }
    sql(url)
        .await
        .query_drop(format!("DROP TABLE IF EXISTS {table}"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outside_changes_in_one_transaction_reach_the_cache() {
    let Some(url) = url() else { return };
    let table = "cdc_my_outside";
    let mut c = fresh(&url, table).await;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&url, table, "cdc_my_outside", dir.path()).await;
    for id in 1..=3 {
        assert!(get(&s, &format!("{table}:{id}")).await.is_some());
    }
    c.query_drop(format!(
        "BEGIN; UPDATE {table} SET price = 11 WHERE id = 1; DELETE FROM {table} WHERE id = 2; \
         INSERT INTO {table} VALUES (4, 40, 'd'); UPDATE {table} SET note = 'x' WHERE id = 3; COMMIT;"
    ))
    .await
    .unwrap();
    eventually(&s, &format!("{table}:1"), Some("11")).await;
    eventually(&s, &format!("{table}:2"), None).await;
    assert_eq!(get(&s, &format!("{table}:3")).await.as_deref(), Some("30"));
    assert_eq!(get(&s, &format!("{table}:4")).await.as_deref(), Some("40"));
    c.query_drop(format!("UPDATE {table} SET id = 9 WHERE id = 1"))
        .await
        .unwrap();
    eventually(&s, &format!("{table}:1"), None).await;
    assert_eq!(get(&s, &format!("{table}:9")).await.as_deref(), Some("11"));
    let m = &s.metrics().changes;
    assert_eq!(m.lost.load(Ordering::SeqCst), 0);
    assert!(m.applied.load(Ordering::SeqCst) >= 4);
    finish(&url, vec![s], table).await;
}

/// Two nodes on one server, write-through on both: a write through A is read through B; A's
/// own write coming back costs A no miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_node_is_read_through_another() {
    let Some(url) = url() else { return };
    let table = "cdc_my_two_nodes";
    let _c = fresh(&url, table).await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(&url, table, "cdc_my_a", da.path()).await;
    let b_node = open(&url, table, "cdc_my_b", db.path()).await;
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
    finish(&url, vec![a, b_node], table).await;
}

/// A TRUNCATE of a watched table drops every cached copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncate_drops_the_cache() {
    let Some(url) = url() else { return };
    let table = "cdc_my_truncate";
    let mut c = fresh(&url, table).await;
    let dir = tempfile::tempdir().unwrap();
    let s = open(&url, table, "cdc_my_truncate", dir.path()).await;
    let key = format!("{table}:1");
    assert_eq!(get(&s, &key).await.as_deref(), Some("10"));
    c.query_drop(format!("TRUNCATE TABLE {table}"))
        .await
        .unwrap();
    eventually(&s, &key, None).await;
    assert_eq!(s.metrics().changes.lost.load(Ordering::SeqCst), 1);
    finish(&url, vec![s], table).await;
}

/// A hash keyspace (a key is a row): an outside update gives the cached hash the new row, and
/// a delete removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_keyspace_gets_the_new_row() {
    let Some(url) = url() else { return };
    let (table, node) = ("cdc_my_hash", "cdc_my_hash");
    let mut c = fresh(&url, table).await;
    let dir = tempfile::tempdir().unwrap();
    let s = open_hash(&url, table, node, dir.path()).await;
    let key = format!("{table}:1");
    assert_eq!(
        hash_fields(&s, &key).await,
        vec![("note".into(), "a".into()), ("price".into(), "10".into())]
    );
    c.query_drop(format!(
        "UPDATE {table} SET price = 15, note = 'z' WHERE id = 1"
    ))
    .await
    .unwrap();
    eventually_hash(&s, &key, &[("note", "z"), ("price", "15")]).await;
    c.query_drop(format!("DELETE FROM {table} WHERE id = 1"))
        .await
        .unwrap();
    eventually_hash(&s, &key, &[]).await;
    finish(&url, vec![s], table).await;
}
