//! Test databases for the store conformance suite: a SQLite file in a temp dir, or an
//! isolated PostgreSQL schema / MySQL database on the server named by
//! `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL`, dropped at the end.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use mysql_async::prelude::Queryable;
use sluice::model::StoreWrite;
use sluice::tiers::store::{self, MappedTable, SharedStore, StoreOp, Target};
use sluice::Bytes;
use tempfile::TempDir;

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A name no other test (of this or another process) uses: `prefix_PID_N`.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

/// Which backend a test database is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Sqlite,
    Postgres,
    Mysql,
}

enum Admin {
    Sqlite(PathBuf),
    Postgres {
        client: tokio_postgres::Client,
        schema: String,
    },
    Mysql {
        pool: mysql_async::Pool,
        database: String,
    },
}

/// An isolated database and a store opened on it.
pub struct TestDb {
    pub flavor: Flavor,
    pub store: SharedStore,
    /// The URL the store was opened with.
    pub url: String,
    /// A scratch directory (the SQLite file lives here; the engine's data dir can too).
    pub dir: TempDir,
    /// The application name / database the store's connections carry, for killing them.
    pub tag: String,
    admin: Admin,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store.db");
        let url = format!("sqlite://{}", path.display());
        let store = store::open_url(&url).await.unwrap();
        store.ensure_builtin_table().await.unwrap();
        TestDb {
            flavor: Flavor::Sqlite,
            store,
            url,
            dir,
            tag: String::new(),
            admin: Admin::Sqlite(path),
        }
    }

    /// A fresh schema on `SLUICE_TEST_POSTGRES_URL`, made the store's search_path; `None`
    /// (after saying so) when the variable is unset.
    pub async fn postgres() -> Option<TestDb> {
        let Ok(base) = std::env::var("SLUICE_TEST_POSTGRES_URL") else {
            println!("skipped: SLUICE_TEST_POSTGRES_URL not set");
            return None;
        };
        let (client, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
            .await
            .expect("connect to SLUICE_TEST_POSTGRES_URL");
        tokio::spawn(conn);
        drop_stale_postgres(&client).await;
        let schema = unique("sluice_t");
        client
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url =
            format!("{base}{sep}options=-c%20search_path%3D{schema}&application_name={schema}");
        let store = store::open_url(&url).await.expect("open PostgreSQL store");
        store.ensure_builtin_table().await.unwrap();
        Some(TestDb {
            flavor: Flavor::Postgres,
            store,
            url,
            dir: tempfile::tempdir().unwrap(),
            tag: schema.clone(),
            admin: Admin::Postgres { client, schema },
        })
    }

    /// A fresh database on the server of `SLUICE_TEST_MYSQL_URL`; `None` (after saying so)
    /// when the variable is unset.
    pub async fn mysql() -> Option<TestDb> {
        let Ok(base) = std::env::var("SLUICE_TEST_MYSQL_URL") else {
            println!("skipped: SLUICE_TEST_MYSQL_URL not set");
            return None;
        };
        let pool = mysql_async::Pool::new(base.as_str());
        let database = unique("sluice_t");
        {
            let mut conn = pool
                .get_conn()
                .await
                .expect("connect to SLUICE_TEST_MYSQL_URL");
            drop_stale_mysql(&mut conn).await;
            conn.query_drop(format!("CREATE DATABASE {database}"))
                .await
                .unwrap();
        }
        let (prefix, query) = match base.split_once('?') {
            Some((p, q)) => (p, format!("?{q}")),
            None => (base.as_str(), String::new()),
        };
        let scheme_end = prefix.find("://").map(|i| i + 3).unwrap_or(0);
        let server = match prefix[scheme_end..].find('/') {
            Some(i) => &prefix[..scheme_end + i],
            None => prefix,
        };
        let url = format!("{server}/{database}{query}");
        let store = store::open_url(&url).await.expect("open MySQL store");
        store.ensure_builtin_table().await.unwrap();
        Some(TestDb {
            flavor: Flavor::Mysql,
            store,
            url,
            dir: tempfile::tempdir().unwrap(),
            tag: database.clone(),
            admin: Admin::Mysql { pool, database },
        })
    }

    /// Runs SQL (DDL, fixtures) directly on the database, beside the store.
    pub async fn exec(&self, sql: &str) {
        match &self.admin {
            Admin::Sqlite(path) => {
                let conn = rusqlite::Connection::open(path).unwrap();
                conn.execute_batch(sql)
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
            Admin::Postgres { client, schema } => client
                .batch_execute(&format!("SET search_path TO {schema}; {sql}"))
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}")),
            Admin::Mysql { pool, database } => {
                let mut conn = pool.get_conn().await.unwrap();
                conn.query_drop(format!("USE {database}")).await.unwrap();
                conn.query_drop(sql)
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"));
            }
        }
    }

    /// Whether upserts into typed columns report the stored text (`Written::stored`): SQLite
    /// and PostgreSQL do, MariaDB from 10.5 on, MySQL not.
    pub async fn reports_stored_text(&self) -> bool {
        match &self.admin {
            Admin::Sqlite(_) | Admin::Postgres { .. } => true,
            Admin::Mysql { pool, .. } => {
                let mut conn = pool.get_conn().await.unwrap();
                let version: Option<String> = conn.query_first("SELECT VERSION()").await.unwrap();
                version.is_some_and(|v| sluice::tiers::store::mysql::takes_insert_returning(&v))
            }
        }
    }

    /// The SQL for this flavor.
    pub fn pick<'a>(&self, sqlite: &'a str, postgres: &'a str, mysql: &'a str) -> &'a str {
        match self.flavor {
            Flavor::Sqlite => sqlite,
            Flavor::Postgres => postgres,
            Flavor::Mysql => mysql,
        }
    }

    /// Kills every server connection the store holds (not the admin's).
    pub async fn kill_store_connections(&self) -> usize {
        match &self.admin {
            Admin::Sqlite(_) => 0,
            Admin::Postgres { client, schema } => client
                .query(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                     WHERE application_name = $1 AND pid <> pg_backend_pid()",
                    &[schema],
                )
                .await
                .unwrap()
                .len(),
            Admin::Mysql { pool, database } => {
                let mut conn = pool.get_conn().await.unwrap();
                let ids: Vec<u64> = conn
                    .exec(
                        "SELECT ID FROM information_schema.PROCESSLIST \
                         WHERE DB = ? AND ID <> CONNECTION_ID()",
                        (database.as_str(),),
                    )
                    .await
                    .unwrap();
                for id in &ids {
                    let _ = conn.query_drop(format!("KILL {id}")).await;
                }
                ids.len()
            }
        }
    }

    /// Drops the schema or database.
    pub async fn drop_all(self) {
        match self.admin {
            Admin::Sqlite(_) => {}
            Admin::Postgres { client, schema } => {
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .await
                    .unwrap();
            }
            Admin::Mysql { pool, database } => {
                let mut conn = pool.get_conn().await.unwrap();
                conn.query_drop(format!("DROP DATABASE IF EXISTS {database}"))
                    .await
                    .unwrap();
                drop(conn);
                let _ = pool.disconnect().await;
            }
        }
    }
}

/// Whether the process that made `sluice_t_PID_N` is gone.
fn stale(name: &str) -> bool {
    let pid = name
        .strip_prefix("sluice_t_")
        .and_then(|rest| rest.split('_').next())
        .and_then(|p| p.parse::<u32>().ok());
    match pid {
        Some(pid) => {
            pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }
        None => false,
    }
}

/// Drops schemas left by test processes that died before cleaning up.
async fn drop_stale_postgres(client: &tokio_postgres::Client) {
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'sluice\\_t\\_%'",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        if stale(&name) {
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                .await;
        }
    }
}

async fn drop_stale_mysql(conn: &mut mysql_async::Conn) {
    let names: Vec<String> = conn
        .query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE 'sluice\\_t\\_%'")
        .await
        .unwrap();
    for name in names {
        if stale(&name) {
            let _ = conn
                .query_drop(format!("DROP DATABASE IF EXISTS {name}"))
                .await;
        }
    }
}

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub fn upsert(target: &Target, key: &[u8], value: &[u8]) -> StoreOp {
    upsert_exp(target, key, value, None)
}

pub fn upsert_exp(target: &Target, key: &[u8], value: &[u8], expires_at: Option<u64>) -> StoreOp {
    StoreOp {
        target: target.clone(),
        key: Bytes::copy_from_slice(key),
        write: StoreWrite::string(Bytes::copy_from_slice(value), expires_at),
    }
}

pub fn delete(target: &Target, key: &[u8]) -> StoreOp {
    StoreOp {
        target: target.clone(),
        key: Bytes::copy_from_slice(key),
        write: StoreWrite::Delete,
    }
}

/// The value of `key`, as bytes.
pub async fn get(store: &SharedStore, target: &Target, key: &[u8]) -> Option<Vec<u8>> {
    store
        .read(target, key)
        .await
        .unwrap_or_else(|e| panic!("read {:?}: {e}", String::from_utf8_lossy(key)))
        .map(|v| v.value.to_vec())
}

/// The value of `key` as text (lossy), for readable assertions.
pub async fn get_text(store: &SharedStore, target: &Target, key: &str) -> Option<String> {
    get(store, target, key.as_bytes())
        .await
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// A mapped target built from what the store reports about the table, as the engine does.
pub async fn mapped(
    store: &SharedStore,
    table: &str,
    key_column: &str,
    value_column: &str,
) -> Target {
    let schema = store
        .table_schema(table)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("table {table} exists"));
    let key = schema.column(key_column).expect("key column");
    let value = schema.column(value_column).expect("value column");
    assert!(
        schema
            .unique_columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(key_column)),
        "{table}.{key_column} is reported unique: {:?}",
        schema.unique_columns
    );
    Target::Mapped(std::sync::Arc::new(MappedTable {
        table: table.to_string(),
        key_column: key.name.clone(),
        value_column: value.name.clone(),
        key_type: key.kind,
        value_type: value.kind,
        on_delete: sluice::config::OnDelete::DeleteRow,
    }))
}
