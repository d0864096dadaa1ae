//! What the change-capture tests of every server share: a Sluice with change capture on over
//! one mapped table, and reads that wait for a change to arrive.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use sluice::config::{Config, StoreConfig};
use sluice::{Bytes, Durability, KeyspaceConfig, Policy, Sluice};

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A Sluice on `url` mapping `<table>:{id}` onto `table.price` (write-through), change capture
/// on as node `node`.
pub async fn open(url: &str, table: &str, node: &str, dir: &std::path::Path) -> Sluice {
    let mut ks = KeyspaceConfig::builtin(Policy::WriteThrough);
    ks.name = "price".into();
    ks.keys = format!("{table}:{{id}}");
    ks.table = Some(table.into());
    ks.key_column = Some("id".into());
    ks.value_column = Some("price".into());
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
    Sluice::open(config)
        .await
        .expect("sluice opens with change capture")
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
