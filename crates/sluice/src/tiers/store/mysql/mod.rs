//! MySQL / MariaDB store (`mysql://…`, also `mariadb://…`), on mysql_async's connection pool.
//!
//! - **Batches** run in one transaction. Upserts are multi-row
//!   `INSERT INTO t (k, v) VALUES (?, ?), … ON DUPLICATE KEY UPDATE v = VALUES(v)` (guarded,
//!   see below), deletes
//!   `DELETE FROM t WHERE k IN (?, …)`, chunked to stay far below the 65,535-placeholder limit
//!   and under half of the server's `max_allowed_packet`. Chunk lengths are powers of two, so
//!   each connection's prepared-statement cache needs only a handful of statement shapes.
//!   Repeated keys are collapsed and a permanent failure is isolated with savepoints (see
//!   [`super::batch`]). On MariaDB 10.5 or later, an upsert into a typed column adds
//!   `RETURNING CAST(k AS CHAR), CAST(v AS CHAR)`, so each entry reports the text the column
//!   now holds ([`super::Written::stored`]) without a second round trip; MySQL has no
//!   `INSERT … RETURNING`, so there it reports nothing and the caller reads the row back.
//! - **Strict mode**: every connection (and every reset of one) runs
//!   `SET SESSION sql_mode = 'STRICT_ALL_TABLES,…'`, so a value a column cannot hold is an
//!   error, never silently truncated or zeroed.
//! - **Reads** return the column's text form (`CAST(v AS CHAR)`: a `DECIMAL(10,2)` holding 7.5
//!   reads `7.50`, a `BOOLEAN` `1`), and binary/blob columns raw.
//! - **Errors**: connection and I/O errors, lock wait timeout (1205), too many connections,
//!   shutdown, interruption and statement timeouts are transient; a deadlock (1213) is a
//!   conflict ([`ErrorClass::Conflict`](crate::error::ErrorClass::Conflict)): InnoDB rolled the
//!   whole transaction back, so it may be run again at once; data errors (1264 out of range,
//!   1366 incorrect value, 1406 too long, 1048 null, 1062 duplicate, 1292, 4025 check
//!   constraint) and everything else are permanent. A lock wait timeout is not: InnoDB rolls back only the statement
//!   (the batch's transaction is then abandoned, so nothing commits either), but a lock held
//!   for the whole `innodb_lock_wait_timeout` (10 s) is no passing conflict, and the writers
//!   have already waited that long.
//! - **Built-in table**: `sluice_kv (db SMALLINT, key VARBINARY(3070), value LONGBLOB,
//!   expires_at BIGINT NULL, PRIMARY KEY (db, key))`. InnoDB indexes at most 3,072 bytes per
//!   key and the primary key also holds the 2-byte `db`, so a built-in key may be at most
//!   3,070 bytes: a longer one is refused with a permanent error before reaching the server.
//!   A value must fit in the server's `max_allowed_packet` (16 MiB by default on MariaDB
//!   10.11); a larger one is refused the same way.
//! - **Other unique indexes**: `ON DUPLICATE KEY UPDATE` fires on any unique index, so the
//!   update is guarded with `IF(k <=> VALUES(k), VALUES(v), <error>)`: a value that collides
//!   with another row on some other unique index fails that entry (permanently, as on
//!   PostgreSQL and SQLite) instead of silently updating the other row.
//! - **Mapped rows** (hash keyspaces): one guarded `INSERT … ON DUPLICATE KEY UPDATE` of the
//!   changed columns per entry (a write of NULLs only is an `UPDATE`: it never creates a row),
//!   then the row is read back in the same transaction to report its image.
//! - **All-or-nothing batches** (`write_atomic`) run their entries in order, one statement
//!   each, in one transaction; the first refused statement rolls it back and is named.
//! - Connecting and waiting for a pooled connection give up after 5 s, and any single
//!   operation after 60 s, so a dead server fails fast; a broken connection is dropped by the
//!   pool and the next call gets a fresh one.

mod apply;
mod errors;
mod members;
mod rows;
mod schema;
mod sql;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Params, Pool, PoolConstraints, PoolOpts, TxOpts};

use self::apply::MyApplier;
use self::errors::{classify, commit_error};
use self::schema::load_schema;
pub use self::sql::quote_mysql_identifier;
use self::sql::{convert, out};
use super::batch::{apply_planned, plan_batch, SetApplier};
use super::{
    AtomicFailure, BatchOutcome, FenceSlot, MappedTable, Store, StoreOp, StoreWrite, StoredValue,
    TableSchema, Target, Written,
};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::model::DbKey;

/// Most connections the pool opens.
const POOL_SIZE: usize = 16;
/// Connecting or waiting for a pooled connection gives up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One operation (a whole batch transaction, a read) gives up after this.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// The built-in key's length: InnoDB's 3,072-byte index limit less the 2-byte `db`.
pub const MAX_BUILTIN_KEY: usize = 3070;
/// What each pooled connection runs when it is opened or reset.
const SESSION_SETUP: [&str; 3] = [
    "SET NAMES utf8mb4",
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'",
    "SET SESSION innodb_lock_wait_timeout = 10",
];

/// The MySQL / MariaDB backend.
pub struct MySqlStore {
    pool: Pool,
    described: String,
    /// The server's `max_allowed_packet`.
    max_packet: AtomicUsize,
    /// The built-in key column's length.
    max_key: AtomicUsize,
    /// The server takes `INSERT … RETURNING` (MariaDB 10.5 and later).
    returning: bool,
    /// Whether `sluice_members` and its triggers exist.
    members: super::members::MembersSupport,
    /// The limit of each mapped column that has one ([`schema::column_limit`]), by table (as
    /// the keyspace names it) and column (as the schema spells it, which mapped targets keep),
    /// as read with the table's schema at start-up: looked up on every mapped write's check,
    /// without allocating.
    column_limits: parking_lot::RwLock<
        std::collections::HashMap<String, std::collections::HashMap<String, schema::ColumnLimit>>,
    >,
    /// The node name this store writes for, once claimed ([`Store::claim_fence`]).
    fence: FenceSlot,
}

impl MySqlStore {
    /// In a write transaction of a fenced store, `Ok` only while its claim on the node name
    /// holds; the row stays share-locked until the transaction ends, so a new claim waits
    /// for it ([`Store::claim_fence`]).
    async fn check_fence(&self, tx: &mut mysql_async::Transaction<'_>) -> Result<(), StoreError> {
        let Some(fence) = self.fence.get() else {
            return Ok(());
        };
        let found: Option<i64> = tx
            .exec_first(
                "SELECT generation FROM sluice_fence WHERE node = ? LOCK IN SHARE MODE",
                (&fence.node,),
            )
            .await
            .map_err(|e| fence.unreadable(classify(e, "read sluice_fence").error))?;
        fence.check(found)
    }

    /// [`convert`], then the column's limit ([`schema::column_limit`]): what MySQL would refuse
    /// only when the flush runs (or, outside strict mode, cut) is refused before the write is
    /// acknowledged.
    fn convert_in_range(
        &self,
        m: &MappedTable,
        bytes: &[u8],
        key: &[u8],
        is_key: bool,
    ) -> Result<(), StoreError> {
        let value = convert(m, bytes, key, is_key)?;
        let (kind, column, what) = m.conversion_target(is_key);
        let limits = self.column_limits.read();
        let limit = limits.get(&m.table).and_then(|t| t.get(column));
        let fits = match (limit, &value) {
            (Some(schema::ColumnLimit::Integers(low, high)), mysql_async::Value::Int(i)) => {
                (*low..=*high).contains(i)
            }
            (Some(schema::ColumnLimit::Chars(n)), mysql_async::Value::Bytes(b)) => {
                // Text columns took UTF-8 only (convert), so this counts characters.
                String::from_utf8_lossy(b).chars().count() <= *n
            }
            (Some(schema::ColumnLimit::Bytes(n)), mysql_async::Value::Bytes(b)) => b.len() <= *n,
            _ => true,
        };
        if fits {
            Ok(())
        } else {
            Err(super::conversion_error(what, bytes, key, m, column, kind))
        }
    }

    /// Opens a pool on `url` (`mysql://user[:password]@host[:port]/db`) and checks that a
    /// connection can be made.
    pub async fn open_url(url: &str) -> Result<MySqlStore, StoreError> {
        let url = match url.strip_prefix("mariadb://") {
            Some(rest) => format!("mysql://{rest}"),
            None => url.to_string(),
        };
        let opts = Opts::from_url(&url).map_err(|e| {
            StoreError::permanent(format!(
                "[store] url: {} is not a valid MySQL URL: {e}",
                super::redact_url(&url)
            ))
            .with_source(e)
        })?;
        let described = format!(
            "mysql://{}@{}:{}/{}",
            opts.user().unwrap_or(""),
            opts.ip_or_hostname(),
            opts.tcp_port(),
            opts.db_name().unwrap_or("")
        );
        let constraints = PoolConstraints::new(0, POOL_SIZE)
            .ok_or_else(|| StoreError::permanent("invalid MySQL pool size"))?;
        let pool_opts = PoolOpts::default()
            .with_constraints(constraints)
            .with_inactive_connection_ttl(Duration::from_secs(300));
        let builder = OptsBuilder::from_opts(opts)
            .pool_opts(pool_opts)
            .setup(SESSION_SETUP.to_vec())
            .tcp_keepalive(Some(Duration::from_secs(30)));
        let mut store = MySqlStore {
            pool: Pool::new(builder),
            described,
            max_packet: AtomicUsize::new(16 * 1024 * 1024),
            max_key: AtomicUsize::new(MAX_BUILTIN_KEY),
            returning: false,
            members: Default::default(),
            column_limits: Default::default(),
            fence: FenceSlot::default(),
        };
        let mut conn = store.conn().await?;
        let server: Option<(u64, String)> = conn
            .query_first("SELECT @@max_allowed_packet, VERSION()")
            .await
            .map_err(|e| classify(e, "read max_allowed_packet").error)?;
        if let Some((p, version)) = server {
            store.max_packet.store(p as usize, Ordering::Relaxed);
            store.returning = takes_insert_returning(&version);
        }
        drop(conn);
        Ok(store)
    }

    async fn conn(&self) -> Result<Conn, StoreError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get_conn()).await {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(classify(e, &format!("connect to {}", self.described)).error),
            Err(_) => Err(StoreError::transient(format!(
                "MySQL at {}: no connection within {CONNECT_TIMEOUT:?}",
                self.described
            ))),
        }
    }

    /// Bytes a value may have: the packet limit less room for the rest of the statement.
    fn max_value(&self) -> usize {
        self.max_packet
            .load(Ordering::Relaxed)
            .saturating_sub(64 * 1024)
    }

    /// Bytes of parameters one multi-row statement may carry.
    fn statement_budget(&self) -> usize {
        (self.max_packet.load(Ordering::Relaxed) / 2).max(64 * 1024)
    }
}

/// Whether a server of this `VERSION()` takes `INSERT … ON DUPLICATE KEY UPDATE … RETURNING`:
/// MariaDB from 10.5 on; MySQL not at all.
pub fn takes_insert_returning(version: &str) -> bool {
    if !version.contains("MariaDB") {
        return false;
    }
    let mut parts = version.split(['.', '-']).map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(major), Some(minor)) => (major, minor) >= (10, 5),
        _ => false,
    }
}

fn timed_out(doing: &str) -> StoreError {
    StoreError::transient(format!("MySQL {doing}: no answer within {OP_TIMEOUT:?}"))
}

#[async_trait]
impl Store for MySqlStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    async fn ensure_builtin_table(&self) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: mysql_async::Error| classify(e, "create table sluice_kv").error;
            conn.query_drop(format!(
                "CREATE TABLE IF NOT EXISTS sluice_kv (
                    db SMALLINT NOT NULL,
                    `key` VARBINARY({MAX_BUILTIN_KEY}) NOT NULL,
                    `value` LONGBLOB NOT NULL,
                    expires_at BIGINT NULL,
                    kind SMALLINT NOT NULL DEFAULT 0,
                    PRIMARY KEY (db, `key`),
                    KEY sluice_kv_expires_at (expires_at)
                ) ENGINE=InnoDB ROW_FORMAT=DYNAMIC"
            ))
            .await
            .map_err(q)?;
            // A table made before values had types has no kind column: every row in it is a
            // string, which the default says. (MySQL has no ADD COLUMN IF NOT EXISTS; two
            // servers racing here make one ALTER fail with 1060, duplicate column, which is
            // the state wanted.)
            let has_kind: Option<u64> = conn
                .query_first(
                    "SELECT COUNT(*) FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sluice_kv' AND COLUMN_NAME = 'kind'",
                )
                .await
                .map_err(q)?;
            if has_kind == Some(0) {
                match conn
                    .query_drop("ALTER TABLE sluice_kv ADD COLUMN kind SMALLINT NOT NULL DEFAULT 0")
                    .await
                {
                    Ok(()) => {}
                    Err(mysql_async::Error::Server(e)) if e.code == 1060 => {}
                    Err(e) => return Err(classify(e, "add column kind to sluice_kv").error),
                }
            }
            if let Err(e) = ensure_members_table(&mut conn).await {
                self.members.unavailable(e.message);
            }
            // An existing table may have been made with another key length.
            let len: Option<Option<u64>> = conn
                .query_first(
                    "SELECT CHARACTER_OCTET_LENGTH FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sluice_kv' AND COLUMN_NAME = 'key'",
                )
                .await
                .map_err(q)?;
            if let Some(Some(len)) = len {
                self.max_key.store(len as usize, Ordering::Relaxed);
            }
            Ok(())
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("create table sluice_kv")))
    }

    async fn journal_mark(&self, claim: Option<&str>) -> Result<Option<String>, StoreError> {
        let mut conn = self.conn().await?;
        let claim = claim.map(str::to_string);
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: mysql_async::Error| classify(e, "read or record the journal mark").error;
            match &claim {
                None => {
                    let exists: Option<u64> = conn
                        .query_first(
                            "SELECT COUNT(*) FROM information_schema.TABLES \
                             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sluice_journal'",
                        )
                        .await
                        .map_err(q)?;
                    if exists.unwrap_or(0) == 0 {
                        return Ok(None);
                    }
                }
                Some(claim) => {
                    conn.query_drop(
                        "CREATE TABLE IF NOT EXISTS sluice_journal (
                            id TINYINT PRIMARY KEY,
                            mark VARCHAR(1024) NOT NULL
                        ) ENGINE=InnoDB",
                    )
                    .await
                    .map_err(q)?;
                    // Not INSERT IGNORE, which would also turn a value too long into a
                    // truncated mark.
                    conn.exec_drop(
                        "INSERT INTO sluice_journal (id, mark) VALUES (1, ?) \
                         ON DUPLICATE KEY UPDATE id = id",
                        (claim,),
                    )
                    .await
                    .map_err(q)?;
                }
            }
            conn.query_first::<String, _>("SELECT mark FROM sluice_journal WHERE id = 1")
                .await
                .map_err(q)
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("read or record the journal mark")))
    }

    async fn claim_fence(&self, node: &str) -> Result<i64, StoreError> {
        self.fence.unclaimed(node)?;
        let mut conn = self.conn().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q =
                |e: mysql_async::Error| classify(e, "claim the node's name in sluice_fence").error;
            // A binary collation: node names differing in case are different names.
            conn.query_drop(
                "CREATE TABLE IF NOT EXISTS sluice_fence (
                    node VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin PRIMARY KEY,
                    generation BIGINT NOT NULL
                ) ENGINE=InnoDB",
            )
            .await
            .map_err(q)?;
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(q)?;
            tx.exec_drop(
                "INSERT INTO sluice_fence (node, generation) VALUES (?, 1) \
                 ON DUPLICATE KEY UPDATE generation = generation + 1",
                (node,),
            )
            .await
            .map_err(q)?;
            let generation: Option<i64> = tx
                .exec_first(
                    "SELECT generation FROM sluice_fence WHERE node = ? FOR UPDATE",
                    (node,),
                )
                .await
                .map_err(q)?;
            tx.commit().await.map_err(q)?;
            generation.ok_or_else(|| {
                StoreError::transient(format!(
                    "MySQL: the row of node {node:?} in sluice_fence was gone right after it was claimed"
                ))
            })
        })
        .await;
        let generation =
            r.unwrap_or_else(|_| Err(timed_out("claim the node's name in sluice_fence")))?;
        self.fence.keep(node, generation)
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, StoreError> {
        let mut conn = self.conn().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, load_schema(&mut conn, table)).await;
        let schema = r.unwrap_or_else(|_| Err(timed_out("read table schema")))?;
        if let Some(schema) = &schema {
            let limits: std::collections::HashMap<String, schema::ColumnLimit> = schema
                .columns
                .iter()
                .filter_map(|c| Some((c.name.clone(), schema::column_limit(&c.declared_type)?)))
                .collect();
            self.column_limits.write().insert(table.to_string(), limits);
        }
        Ok(schema)
    }
    fn check(
        &self,
        target: &Target,
        key: &[u8],
        write: Option<&StoreWrite>,
    ) -> Result<(), StoreError> {
        let too_big = |len: usize| {
            StoreError::permanent(format!(
                "value of {len} bytes for key {:?} is larger than the {} bytes the MySQL server accepts in one packet (max_allowed_packet)",
                String::from_utf8_lossy(&key[..key.len().min(64)]),
                self.max_value()
            ))
        };
        if let Some(w) = write {
            // A member write sends its members one row each, never its whole image.
            let partial = match (target, w) {
                (Target::Members(_), StoreWrite::Partial(p)) => Some(p),
                _ => super::members::member_write(target, w),
            };
            let sent = match partial {
                Some(p) => key.len() + super::members::largest_member(p),
                None => w.value_len(),
            };
            if sent > self.max_value() {
                return Err(too_big(sent));
            }
        }
        match (target, write) {
            (Target::Row(r), write) => super::rows::check_row(r, key, write, |m, bytes, is_key| {
                self.convert_in_range(m, bytes, key, is_key)
            }),
            (Target::Members(mm), write) => {
                super::members_mapped::check_mapped_members(mm, key, write, |m, bytes, is_key| {
                    self.convert_in_range(m, bytes, key, is_key)
                })
            }
            (Target::Builtin { .. }, Some(w @ StoreWrite::Partial(_))) => {
                match super::members::member_write(target, w) {
                    Some(_) => self.members.check(key),
                    None => Err(super::fields_need_a_row(target, key)),
                }
            }
            (Target::Mapped(_), Some(StoreWrite::Partial(_))) => {
                Err(super::fields_need_a_row(target, key))
            }
            (Target::Builtin { .. }, _) => {
                let max = self.max_key.load(Ordering::Relaxed);
                if key.len() > max {
                    return Err(StoreError::permanent(format!(
                        "key {:?}… of {} bytes is longer than the {max} bytes MySQL/MariaDB can index in sluice_kv",
                        String::from_utf8_lossy(&key[..key.len().min(64)]),
                        key.len()
                    )));
                }
                Ok(())
            }
            (Target::Mapped(m), write) => super::check_column(m, key, write, |bytes, is_key| {
                self.convert_in_range(m, bytes, key, is_key)
            }),
        }
    }

    async fn read(&self, target: &Target, key: &[u8]) -> Result<Option<StoredValue>, StoreError> {
        let mut conn = self.conn().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            match target {
                Target::Builtin { db } => {
                    let row: Option<(Vec<u8>, Option<i64>, i64)> = conn
                        .exec_first(
                            "SELECT `value`, expires_at, kind FROM sluice_kv WHERE db = ? AND `key` = ?",
                            (*db as i64, key.to_vec()),
                        )
                        .await
                        .map_err(|e| classify(e, "read sluice_kv").error)?;
                    let Some((value, expires_at, kind)) = row else {
                        return Ok(None);
                    };
                    let kind = super::kind_from_stored(kind, key)?;
                    if !kind.stored_by_member() {
                        return Ok(Some(StoredValue {
                            kind,
                            value: Bytes::from(value),
                            expires_at: expires_at.map(|e| e.max(0) as u64),
                        }));
                    }
                    // The key's row read again with its members in one statement (one
                    // snapshot): a write committed after the first read cannot mix two states.
                    type Joined = (
                        i64,
                        Option<i64>,
                        Vec<u8>,
                        Option<Vec<u8>>,
                        Option<f64>,
                        Option<Vec<u8>>,
                    );
                    let rows: Vec<Joined> = conn
                        .exec(
                            "SELECT k.kind, k.expires_at, k.`value`, m.member, m.score, m.`value` \
                             FROM sluice_kv AS k \
                             LEFT JOIN sluice_members AS m \
                               ON m.db = k.db AND m.key_hash = UNHEX(SHA2(k.`key`, 256)) \
                             WHERE k.db = ? AND k.`key` = ?",
                            (*db as i64, key.to_vec()),
                        )
                        .await
                        .map_err(|e| classify(e, "read sluice_members").error)?;
                    let Some((kind, expires_at, ..)) = rows.first() else {
                        return Ok(None);
                    };
                    let kind = super::kind_from_stored(*kind, key)?;
                    let expires_at = expires_at.map(|e| e.max(0) as u64);
                    if !kind.stored_by_member() {
                        let value = rows.into_iter().next().map(|r| r.2).unwrap_or_default();
                        return Ok(Some(StoredValue {
                            kind,
                            value: Bytes::from(value),
                            expires_at,
                        }));
                    }
                    let members: Vec<super::members::MemberRow> = rows
                        .into_iter()
                        .filter_map(|r| {
                            Some(super::members::mysql_row(kind, Bytes::from(r.3?), r.4, r.5))
                        })
                        .collect();
                    // A key's row with no member left is an empty collection: absent.
                    Ok((!members.is_empty()).then(|| StoredValue {
                        kind,
                        value: super::members::image_of(kind, members),
                        expires_at,
                    }))
                }
                Target::Row(r) => {
                    let k = rows::key_param(r, key)?;
                    let row: Option<mysql_async::Row> = conn
                        .exec_first(rows::select(r), Params::Positional(vec![k]))
                        .await
                        .map_err(|e| {
                            let mut err =
                                classify(e, &format!("read a row of {}", r.table)).error;
                            err.message = format!(
                                "{} (key capture {:?})",
                                err.message,
                                String::from_utf8_lossy(key)
                            );
                            err
                        })?;
                    Ok(row.and_then(|row| super::rows::stored_value(rows::image(r, &row))))
                }
                Target::Members(mm) => {
                    let owner = members::owner(mm, key)?;
                    let rows: Vec<(Option<Vec<u8>>, Option<Vec<u8>>)> = conn
                        .exec(members::select(mm), Params::Positional(vec![owner]))
                        .await
                        .map_err(|e| {
                            classify(e, &format!("read {}", super::members_mapped::describe(mm)))
                                .error
                        })?;
                    let rows = rows
                        .into_iter()
                        .filter_map(|(m, s)| Some((Bytes::from(m?), s.map(Bytes::from))))
                        .collect();
                    super::members_mapped::image_from_rows(mm, key, rows)
                }
                Target::Mapped(m) => {
                    let k = convert(m, key, key, true)?;
                    let sql = format!(
                        "SELECT {} FROM {} WHERE {} = ?",
                        out(&m.value_column, m.value_type),
                        quote_mysql_identifier(&m.table),
                        quote_mysql_identifier(&m.key_column)
                    );
                    let row: Option<Option<Vec<u8>>> = conn
                        .exec_first(sql.as_str(), Params::Positional(vec![k]))
                        .await
                        .map_err(|e| {
                            let mut err =
                                classify(e, &format!("read {}.{}", m.table, m.value_column)).error;
                            err.message = format!(
                                "{} (key capture {:?})",
                                err.message,
                                String::from_utf8_lossy(key)
                            );
                            err
                        })?;
                    Ok(row.flatten().map(|v| StoredValue {
                        kind: crate::model::Kind::String,
                        value: Bytes::from(v),
                        expires_at: None,
                    }))
                }
            }
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("read")))
    }

    async fn write_batch(&self, ops: Vec<StoreOp>) -> Result<BatchOutcome, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut outcome: BatchOutcome = Vec::with_capacity(ops.len());
        let mut skip = Vec::with_capacity(ops.len());
        for op in &ops {
            let result = self.check(&op.target, &op.key, Some(&op.write));
            skip.push(result.is_err());
            outcome.push(result.map(|()| Written::NOTHING));
        }
        let phases = plan_batch(&ops, &skip);
        if phases.is_empty() {
            return Ok(outcome);
        }
        let mut conn = self.conn().await?;
        let budget = self.statement_budget();
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(|e| classify(e, "begin transaction").error)?;
            self.check_fence(&mut tx).await?;
            let mut applier = MyApplier {
                tx: &mut tx,
                budget,
                returning: self.returning,
            };
            apply_planned(&mut applier, &ops, &phases, &mut outcome).await?;
            tx.commit().await.map_err(commit_error)?;
            Ok(())
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("write batch")))?;
        Ok(outcome)
    }

    async fn write_atomic(&self, ops: Vec<StoreOp>) -> Result<Vec<Written>, AtomicFailure> {
        let whole = |error| AtomicFailure { index: None, error };
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        // Everything that can be refused without the database is, before BEGIN.
        for (i, op) in ops.iter().enumerate() {
            self.check(&op.target, &op.key, Some(&op.write))
                .map_err(|error| AtomicFailure {
                    index: Some(i),
                    error,
                })?;
        }
        let mut conn = self.conn().await.map_err(whole)?;
        let budget = self.statement_budget();
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(|e| whole(classify(e, "begin transaction").error))?;
            self.check_fence(&mut tx).await.map_err(whole)?;
            let mut applier = MyApplier {
                tx: &mut tx,
                budget,
                returning: self.returning,
            };
            // In order, one entry at a time: a refused statement names its entry, and
            // dropping the transaction uncommitted rolls every entry back.
            let mut written = Vec::with_capacity(ops.len());
            for (i, op) in ops.iter().enumerate() {
                let stored = applier.apply(&[op]).await.map_err(|f| AtomicFailure {
                    index: Some(i),
                    error: f.error,
                })?;
                written.push(Written {
                    stored: match op.write {
                        StoreWrite::Delete => None,
                        _ => stored.into_iter().next().flatten(),
                    },
                });
            }
            tx.commit().await.map_err(|e| whole(commit_error(e)))?;
            Ok(written)
        })
        .await;
        r.unwrap_or_else(|_| Err(whole(timed_out("atomic batch"))))
    }

    async fn scan_keys(&self, target: &Target, now_ms: u64) -> Result<Vec<Bytes>, StoreError> {
        let mut conn = self.conn().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: mysql_async::Error| classify(e, "scan keys").error;
            let keys: Vec<Option<Vec<u8>>> = match target {
                Target::Builtin { db } => conn
                    .exec(
                        "SELECT `key` FROM sluice_kv WHERE db = ? \
                         AND (expires_at IS NULL OR expires_at >= ?)",
                        (*db as i64, now_ms.min(i64::MAX as u64) as i64),
                    )
                    .await
                    .map_err(q)?,
                Target::Row(r) => {
                    let sql = format!(
                        "SELECT {} FROM {} WHERE {}",
                        out(&r.key_column, r.key_type),
                        quote_mysql_identifier(&r.table),
                        rows::not_all_null(r)
                    );
                    conn.query(sql).await.map_err(q)?
                }
                Target::Members(mm) => conn.query(members::scan(mm)).await.map_err(q)?,
                Target::Mapped(m) => {
                    let sql = format!(
                        "SELECT {} FROM {} WHERE {} IS NOT NULL",
                        out(&m.key_column, m.key_type),
                        quote_mysql_identifier(&m.table),
                        quote_mysql_identifier(&m.value_column)
                    );
                    conn.query(sql).await.map_err(q)?
                }
            };
            Ok(keys.into_iter().flatten().map(Bytes::from).collect())
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("scan keys")))
    }

    async fn clear(&self, target: &Target) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: mysql_async::Error| classify(e, "clear").error;
            match target {
                Target::Builtin { db } => conn
                    .exec_drop("DELETE FROM sluice_kv WHERE db = ?", (*db as i64,))
                    .await
                    .map_err(q),
                Target::Row(r) => match r.on_delete {
                    OnDelete::SetNull => conn
                        .query_drop(format!(
                            "UPDATE {} SET {} WHERE {}",
                            quote_mysql_identifier(&r.table),
                            rows::null_all(r.columns.iter().map(|c| c.name.as_str())),
                            rows::not_all_null(r)
                        ))
                        .await
                        .map_err(q),
                    OnDelete::DeleteRow => conn
                        .query_drop(format!("DELETE FROM {}", quote_mysql_identifier(&r.table)))
                        .await
                        .map_err(q),
                },
                Target::Members(mm) => conn
                    .query_drop(format!("DELETE FROM {}", quote_mysql_identifier(&mm.table)))
                    .await
                    .map_err(q),
                Target::Mapped(m) => conn
                    .query_drop(format!("DELETE FROM {}", quote_mysql_identifier(&m.table)))
                    .await
                    .map_err(q),
            }
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("clear")))
    }

    async fn purge_expired(&self, now_ms: u64, limit: usize) -> Result<Vec<DbKey>, StoreError> {
        let mut conn = self.conn().await?;
        let now = now_ms.min(i64::MAX as u64) as i64;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let failed = |e| classify(e, "purge expired keys").error;
            // MySQL has no DELETE ... RETURNING: the rows are locked as they are picked, so
            // the keys reported are exactly the ones deleted.
            let mut tx = conn
                .start_transaction(TxOpts::default())
                .await
                .map_err(failed)?;
            let picked: Vec<(i64, Vec<u8>)> = tx
                .exec(
                    "SELECT db, `key` FROM sluice_kv WHERE expires_at < ? \
                     ORDER BY expires_at LIMIT ? FOR UPDATE",
                    (now, limit.min(i64::MAX as usize) as i64),
                )
                .await
                .map_err(failed)?;
            if picked.is_empty() {
                tx.commit().await.map_err(failed)?;
                return Ok(Vec::new());
            }
            let placeholders = vec!["(?, ?)"; picked.len()].join(", ");
            let mut params: Vec<mysql_async::Value> = Vec::with_capacity(picked.len() * 2);
            for (db, key) in &picked {
                params.push((*db).into());
                params.push(key.clone().into());
            }
            tx.exec_drop(
                format!("DELETE FROM sluice_kv WHERE (db, `key`) IN ({placeholders})"),
                params,
            )
            .await
            .map_err(failed)?;
            tx.commit().await.map_err(failed)?;
            Ok(picked
                .into_iter()
                .map(|(db, key)| DbKey {
                    db: db as u8,
                    key: Bytes::from(key),
                })
                .collect())
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("purge expired keys")))
    }

    async fn delete_if_expired(&self, db: u8, key: &[u8], now_ms: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            conn.exec_drop(
                "DELETE FROM sluice_kv WHERE db = ? AND `key` = ? AND expires_at < ?",
                (db as i64, key.to_vec(), now_ms.min(i64::MAX as u64) as i64),
            )
            .await
            .map_err(|e| classify(e, "delete expired key").error)?;
            Ok(conn.affected_rows() > 0)
        })
        .await;
        r.unwrap_or_else(|_| Err(timed_out("delete expired key")))
    }
}

/// The table of a collection's members (see `members.rs`) and the triggers that remove them
/// with their key's row. InnoDB cannot index a key of up to 3070 bytes and a member together,
/// so rows are found by the SHA-256 of each (computed by the server, `UNHEX(SHA2(x, 256))`).
/// Creating a trigger with the binary log on may need `SUPER` or
/// `log_bin_trust_function_creators = 1`; the error says so.
async fn ensure_members_table(conn: &mut Conn) -> Result<(), StoreError> {
    let q = |e: mysql_async::Error| classify(e, "create table sluice_members").error;
    conn.query_drop(format!(
        "CREATE TABLE IF NOT EXISTS sluice_members (
            db SMALLINT NOT NULL,
            key_hash BINARY(32) NOT NULL,
            member_hash BINARY(32) NOT NULL,
            `key` VARBINARY({MAX_BUILTIN_KEY}) NOT NULL,
            member LONGBLOB NOT NULL,
            score DOUBLE NULL,
            `value` LONGBLOB NULL,
            PRIMARY KEY (db, key_hash, member_hash)
        ) ENGINE=InnoDB ROW_FORMAT=DYNAMIC"
    ))
    .await
    .map_err(q)?;
    let first = super::members::FIRST_MEMBER_KIND;
    for (name, event, when) in [
        (
            "sluice_kv_delete_members",
            "DELETE",
            format!("OLD.kind >= {first}"),
        ),
        (
            "sluice_kv_retype_members",
            "UPDATE",
            format!("OLD.kind >= {first} AND NEW.kind <> OLD.kind"),
        ),
    ] {
        let exists: Option<u64> = conn
            .exec_first(
                "SELECT COUNT(*) FROM information_schema.TRIGGERS \
                 WHERE TRIGGER_SCHEMA = DATABASE() AND TRIGGER_NAME = ?",
                (name,),
            )
            .await
            .map_err(q)?;
        if exists != Some(0) {
            continue;
        }
        // One statement, no BEGIN ... END: the condition is in its WHERE.
        let sql = format!(
            "CREATE TRIGGER {name} AFTER {event} ON sluice_kv FOR EACH ROW \
             DELETE FROM sluice_members WHERE {when} AND db = OLD.db \
             AND key_hash = UNHEX(SHA2(OLD.`key`, 256))"
        );
        match conn.query_drop(sql).await {
            Ok(()) => {}
            // Another server made it meanwhile.
            Err(mysql_async::Error::Server(e)) if e.code == 1359 => {}
            Err(e) => {
                let mut err = classify(e, &format!("create trigger {name} on sluice_kv")).error;
                err.message = format!(
                    "{} (with the binary log on, creating a trigger needs the SUPER privilege or \
                     log_bin_trust_function_creators = 1)",
                    err.message
                );
                return Err(err);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_returning_is_mariadb_10_5_on() {
        assert!(takes_insert_returning("10.11.19-MariaDB-0+deb12u1"));
        assert!(takes_insert_returning("10.5.0-MariaDB"));
        assert!(takes_insert_returning("11.4.2-MariaDB-log"));
        assert!(!takes_insert_returning("10.4.34-MariaDB"));
        assert!(!takes_insert_returning("8.0.36"));
        assert!(!takes_insert_returning("8.4.0-MySQL"));
        assert!(!takes_insert_returning("MariaDB"));
    }
}
