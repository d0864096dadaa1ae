//! What the change-capture tests of every server share: a Sluice with change capture on over
//! one mapped table, and reads that wait for a change to arrive.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use sluice::config::{Config, StoreConfig};
use sluice::{Bytes, Durability, KeyspaceConfig, Policy, Sluice};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A Sluice on `url` with one write-through keyspace `<table>:{id}` on `table`, shaped by
/// `shape` (its value column or columns), change capture on as node `node`.
async fn open_with(
    url: &str,
    table: &str,
    node: &str,
    dir: &std::path::Path,
    shape: impl FnOnce(&mut KeyspaceConfig),
) -> Sluice {
    Sluice::open(capture_config(url, table, node, dir, shape))
        .await
        .expect("sluice opens with change capture")
}

/// The config of [`open_with`].
pub fn capture_config(
    url: &str,
    table: &str,
    node: &str,
    dir: &std::path::Path,
    shape: impl FnOnce(&mut KeyspaceConfig),
) -> Config {
    let mut ks = KeyspaceConfig::builtin(Policy::WriteThrough);
    ks.name = "mapped".into();
    ks.keys = format!("{table}:{{id}}");
    ks.table = Some(table.into());
    ks.key_column = Some("id".into());
    shape(&mut ks);
    let mut config = Config {
        data_dir: dir.to_path_buf(),
        shutdown_timeout: Duration::from_secs(5),
        store: Some(StoreConfig { url: url.into() }),
        keyspaces: vec![ks],
        ..Config::default()
    };
    config.journal.durability = Durability::None;
    config.changes.enabled = true;
    config.changes.node_name = node.into();
    config
}

/// `<table>:{id}` onto `table.price`.
pub async fn open(url: &str, table: &str, node: &str, dir: &std::path::Path) -> Sluice {
    open_with(url, table, node, dir, |ks| {
        ks.value_column = Some("price".into())
    })
    .await
}

pub async fn get(s: &Sluice, key: &str) -> Option<String> {
    s.get(0, b(key))
        .await
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

pub async fn eventually(s: &Sluice, key: &str, want: Option<&str>) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = get(s, key).await;
        if got.as_deref() == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} reads {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `<table>:{id}` onto the row of `table`, a hash of its `price` and `note` columns.
pub async fn open_hash(url: &str, table: &str, node: &str, dir: &std::path::Path) -> Sluice {
    open_with(url, table, node, dir, |ks| {
        ks.columns = Some(vec!["price".into(), "note".into()])
    })
    .await
}

/// The hash at `key`, its fields sorted (empty when the key does not exist).
pub async fn hash_fields(s: &Sluice, key: &str) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = s
        .access()
        .hash(0, b(key))
        .await
        .unwrap()
        .unwrap_or_default()
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

/// Waits (up to 15 s) until the hash at `key` has exactly `want`.
pub async fn eventually_hash(s: &Sluice, key: &str, want: &[(&str, &str)]) {
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = hash_fields(s, key).await;
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} holds {got:?}, not {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
