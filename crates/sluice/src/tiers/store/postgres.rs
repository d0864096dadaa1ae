//! PostgreSQL store (`postgres://…` or `postgresql://…`), on tokio-postgres with a deadpool
//! connection pool.
//!
//! - **Batches** run in one transaction with one prepared statement per target and kind,
//!   whatever the batch size: upserts are
//!   `INSERT INTO t (k, v) SELECT u.k::K, u.v::V FROM UNNEST($1::text[], $2::text[]) AS u(k, v)
//!   ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v`, deletes `DELETE FROM t WHERE k =
//!   ANY($1::text[]::K[])`. Typed values travel as text and are cast to the column's own type,
//!   so PostgreSQL does the numeric, JSON and timestamp parsing (bytea travels as bytea). The
//!   cast is to the type without its modifier and the column assignment applies the modifier,
//!   so an over-long `varchar(n)` value is an error rather than silently truncated. Repeated
//!   keys are collapsed and a permanent failure is isolated with savepoints (see
//!   [`super::batch`]). An upsert into a typed column adds `RETURNING k::text, v::text`,
//!   so each entry reports the text the column now holds ([`super::Written::stored`]) without
//!   a second round trip.
//! - **Reads** return the column's text form as PostgreSQL prints it (`v::text`: a
//!   `numeric(10,2)` holding 7.5 reads `7.50`, a boolean `true`), and bytea as raw bytes.
//! - **Errors**: connection loss, timeouts, serialization failures, deadlocks, lock timeouts,
//!   shutdowns and resource exhaustion are transient; data exceptions (class 22), integrity
//!   violations (class 23) and everything else are permanent. Serialization failures (40001)
//!   and deadlocks (40P01) are also marked as conflicts ([`StoreError::is_conflict`]): the
//!   server rolled the transaction back, so it may be run again at once.
//! - **Reconnection** is the pool's job: a broken connection surfaces as a transient error, is
//!   not returned to the pool, and the next call gets a fresh one. Waiting for a connection,
//!   connecting and recycling each time out after 5 s, and any single operation after 60 s
//!   (its connection is then discarded), so a dead database fails fast instead of hanging.
//! - **Built-in keys** are the primary key of `sluice_kv` (a btree): PostgreSQL refuses an
//!   index entry over about 2.7 kB (after compression), so very long keys fail permanently
//!   with "index row size … exceeds maximum".
//! - TLS is not supported (`NoTls`); use a local socket, a tunnel, or `sslmode=disable`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use parking_lot::RwLock;
use tokio_postgres::types::ToSql;
use tokio_postgres::NoTls;

use super::batch::{
    apply_planned, match_returned, name_single_key, plan_batch, record_stored, single_statement,
    SetApplier, StatementFailure, StatementStored,
};
use super::{
    conversion_error, parse_bool, parse_finite_f64, parse_strict_i64, BatchOutcome, ColumnInfo,
    ColumnType, MappedTable, Store, StoreOp, StoreWrite, StoredValue, TableSchema, Target, Written,
};
use crate::error::StoreError;

/// Most connections the pool opens.
const POOL_SIZE: usize = 16;
/// Connecting, waiting for a free connection and recycling one each give up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One operation (a whole batch transaction, a read) gives up after this.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// Serializes concurrent `CREATE TABLE IF NOT EXISTS sluice_kv` (which can otherwise race on
/// the catalog); "sluice" in ASCII.
const CREATE_LOCK: i64 = 0x736c_7569_6365;

const UPSERT_KV: &str = "INSERT INTO sluice_kv (db, key, value, expires_at) \
     SELECT * FROM UNNEST($1::int2[], $2::bytea[], $3::bytea[], $4::int8[]) \
     ON CONFLICT (db, key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at";
const DELETE_KV: &str =
    "DELETE FROM sluice_kv AS t USING UNNEST($1::int2[], $2::bytea[]) AS d(db, key) \
     WHERE t.db = d.db AND t.key = d.key";

/// A column as this backend needs it: how to cast text to it, and its range limits.
#[derive(Debug, Clone)]
struct PgColumn {
    name: String,
    /// `format_type` with the modifier, e.g. `numeric(10,2)`.
    declared: String,
    /// The column's type without modifier, schema-qualified and quoted, e.g.
    /// `"pg_catalog"."numeric"`; text is cast to it.
    cast: String,
    /// The base type's name (a domain's underlying type), e.g. `int4`.
    base: String,
    kind: ColumnType,
}

/// A resolved table: its quoted name and columns.
#[derive(Debug)]
struct PgTable {
    qualified: String,
    columns: Vec<PgColumn>,
    unique: Vec<String>,
}

impl PgTable {
    fn column(&self, name: &str) -> Option<&PgColumn> {
        self.columns.iter().find(|c| c.name == name).or_else(|| {
            self.columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(name))
        })
    }
}

/// The PostgreSQL backend.
pub struct PostgresStore {
    pool: Pool,
    described: String,
    /// Tables resolved by [`Store::table_schema`] or on first use, by configured name.
    tables: RwLock<HashMap<String, Arc<PgTable>>>,
}

/// Quotes one identifier part, doubling embedded quotes.
fn quote(part: &str) -> String {
    format!("\"{}\"", part.replace('"', "\"\""))
}

impl PostgresStore {
    /// Opens a pool on `url` (`postgres://user[:password]@host[:port]/db[?options]`) and checks
    /// that a connection can be made.
    pub async fn open_url(url: &str) -> Result<PostgresStore, StoreError> {
        let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| {
            StoreError::permanent(format!(
                "[store] url: {} is not a valid PostgreSQL URL: {e}",
                super::redact_url(url)
            ))
        })?;
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT_TIMEOUT);
        }
        if cfg.get_application_name().is_none() {
            cfg.application_name("sluice");
        }
        cfg.keepalives(true);
        cfg.keepalives_idle(Duration::from_secs(30));
        let described = describe_config(&cfg);
        let manager = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .recycle_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::permanent(format!("cannot build PostgreSQL pool: {e}")))?;
        let store = PostgresStore {
            pool,
            described,
            tables: RwLock::new(HashMap::new()),
        };
        drop(store.client().await?);
        Ok(store)
    }

    async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(t) => StoreError::transient(format!(
                "PostgreSQL at {}: no connection within {CONNECT_TIMEOUT:?} ({t:?})",
                self.described
            )),
            PoolError::Backend(e) => classify(&e, &format!("connect to {}", self.described)),
            PoolError::Closed => StoreError::transient("PostgreSQL pool is closed"),
            PoolError::NoRuntimeSpecified => {
                StoreError::permanent("PostgreSQL pool has no runtime")
            }
            PoolError::PostCreateHook(e) => {
                StoreError::transient(format!("PostgreSQL connection setup failed: {e}"))
            }
        })
    }

    /// The configured table, resolved and cached.
    async fn table(&self, client: &Object, name: &str) -> Result<Arc<PgTable>, StoreError> {
        if let Some(t) = self.tables.read().get(name) {
            return Ok(t.clone());
        }
        match load_table(client, name).await? {
            Some(t) => {
                let t = Arc::new(t);
                self.tables.write().insert(name.to_string(), t.clone());
                Ok(t)
            }
            None => Err(StoreError::permanent(format!(
                "PostgreSQL table {name:?} does not exist in {}",
                self.described
            ))),
        }
    }

    fn cached_table(&self, name: &str) -> Option<Arc<PgTable>> {
        self.tables.read().get(name).cloned()
    }
}

fn describe_config(cfg: &tokio_postgres::Config) -> String {
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "postgres://{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or(""),
        cfg.get_dbname().unwrap_or("")
    )
}

/// Finishes an operation run under [`OP_TIMEOUT`]; a timed-out connection is discarded
/// rather than returned to the pool, since it may be stuck.
fn finish<T>(
    client: Object,
    result: Result<Result<T, StoreError>, tokio::time::error::Elapsed>,
    doing: &str,
) -> Result<T, StoreError> {
    match result {
        Ok(r) => r,
        Err(_) => {
            drop(Object::take(client));
            Err(StoreError::transient(format!(
                "PostgreSQL {doing}: no answer within {OP_TIMEOUT:?}; connection discarded"
            )))
        }
    }
}

/// Transient SQLSTATEs: worth retrying with backoff.
fn transient_state(code: &str) -> bool {
    code.starts_with("08") // connection exception
        || code.starts_with("53") // insufficient resources, too_many_connections (53300)
        || matches!(
            code,
            "40001" // serialization_failure
                | "40P01" // deadlock_detected
                | "55P03" // lock_not_available
                | "55006" // object_in_use
                | "57P01" // admin_shutdown
                | "57P02" // crash_shutdown
                | "57P03" // cannot_connect_now
                | "57014" // query_canceled (statement_timeout)
                | "58000" // system_error
                | "58030" // io_error
                | "25006" // read_only_sql_transaction (a standby after failover)
        )
}

/// SQLSTATEs of a transaction the server rolled back because of another transaction: nothing
/// of it committed, and running it again may succeed.
fn conflict_state(code: &str) -> bool {
    matches!(
        code,
        "40001" // serialization_failure
            | "40P01" // deadlock_detected
    )
}

/// Classifies a tokio-postgres error.
fn classify(e: &tokio_postgres::Error, doing: &str) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let mut msg = format!("PostgreSQL {doing}: {} (SQLSTATE {code})", db.message());
        if let Some(detail) = db.detail() {
            msg.push_str(&format!("; {detail}"));
        }
        return if conflict_state(code) {
            StoreError::conflict(msg)
        } else if transient_state(code) {
            StoreError::transient(msg)
        } else {
            StoreError::permanent(msg)
        };
    }
    let msg = format!("PostgreSQL {doing}: {e}");
    let text = e.to_string();
    let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
    if e.is_closed()
        || io
        || text.starts_with("timeout")
        || text.starts_with("error connecting")
        || text.starts_with("error communicating")
        || text.starts_with("unexpected message")
        || text.starts_with("error parsing response")
        || text.starts_with("error performing TLS")
    {
        StoreError::transient(msg)
    } else {
        StoreError::permanent(msg)
    }
}

/// A failed COMMIT. Without an answer from the server (the connection broke once COMMIT was
/// sent) the transaction may have committed, and the error must not claim it did not.
fn commit_error(e: &tokio_postgres::Error) -> StoreError {
    let mut err = classify(e, "commit");
    if e.as_db_error().is_none() {
        err.message
            .push_str("; the outcome is unknown: the transaction may have been committed");
    }
    err
}

/// A statement failure; class 42 (a missing table or column, a privilege), 0A and 25 are
/// about the statement itself, not its rows.
fn statement_failure(e: &tokio_postgres::Error, doing: &str) -> StatementFailure {
    let whole = e.code().is_some_and(|c| {
        let c = c.code();
        c.starts_with("42") || c.starts_with("0A") || c.starts_with("25")
    });
    StatementFailure {
        error: classify(e, doing),
        whole_statement: whole,
    }
}

fn kind_of(base: &str) -> ColumnType {
    match base {
        "int2" | "int4" | "int8" => ColumnType::Integer,
        "numeric" => ColumnType::Numeric,
        "float4" | "float8" => ColumnType::Real,
        "bool" => ColumnType::Boolean,
        "bytea" => ColumnType::Blob,
        "json" | "jsonb" => ColumnType::Json,
        "timestamp" | "timestamptz" | "date" | "time" | "timetz" => ColumnType::Timestamp,
        // text, varchar, bpchar, name, uuid, enums, … all take text input.
        _ => ColumnType::Text,
    }
}

async fn load_table(client: &Object, name: &str) -> Result<Option<PgTable>, StoreError> {
    let q = |e: tokio_postgres::Error| classify(&e, &format!("read the schema of {name}"));
    let quoted = name.split('.').map(quote).collect::<Vec<_>>().join(".");
    // The quoted name first (exact spelling), then as PostgreSQL folds an unquoted name.
    let row = client
        .query_opt(
            "SELECT c.oid, n.nspname::text, c.relname::text FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.oid = COALESCE(to_regclass($1), to_regclass($2)) AND c.relkind IN ('r', 'p')",
            &[&quoted, &name],
        )
        .await
        .map_err(q)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let oid: u32 = row.get(0);
    let schema: String = row.get(1);
    let relname: String = row.get(2);
    let rows = client
        .query(
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), \
                    quote_ident(tn.nspname) || '.' || quote_ident(t.typname), \
                    COALESCE(bt.typname, t.typname)::text \
             FROM pg_attribute a \
             JOIN pg_type t ON t.oid = a.atttypid \
             JOIN pg_namespace tn ON tn.oid = t.typnamespace \
             LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(q)?;
    let columns = rows
        .iter()
        .map(|r| {
            let base: String = r.get(3);
            PgColumn {
                name: r.get(0),
                declared: r.get(1),
                cast: r.get(2),
                kind: kind_of(&base),
                base,
            }
        })
        .collect();
    // Unique on their own: one key column, not partial, not on an expression, valid and
    // not deferrable (ON CONFLICT needs all of that).
    let unique = client
        .query(
            "SELECT a.attname::text FROM pg_index i \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
             WHERE i.indrelid = $1 AND i.indisunique AND i.indnkeyatts = 1 \
               AND i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid AND i.indimmediate \
             ORDER BY i.indisprimary DESC, a.attnum",
            &[&oid],
        )
        .await
        .map_err(q)?
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Ok(Some(PgTable {
        qualified: format!("{}.{}", quote(&schema), quote(&relname)),
        columns,
        unique,
    }))
}

/// A key or value as it is sent: text to be cast to the column type, or raw bytea.
enum Param<'a> {
    Text(Cow<'a, str>),
    Bytes(&'a [u8]),
}

/// Converts bytes for a mapped column, refusing what the column cannot hold. `pg` adds the
/// column's range limits when the table has been resolved.
fn convert<'a>(
    m: &MappedTable,
    pg: Option<&PgColumn>,
    bytes: &'a [u8],
    key: &[u8],
    is_key: bool,
) -> Result<Param<'a>, StoreError> {
    let (kind, column, what) = if is_key {
        (m.key_type, &m.key_column, "key capture")
    } else {
        (m.value_type, &m.value_column, "value")
    };
    let fail = || conversion_error(what, bytes, key, m, column, kind);
    let text = || std::str::from_utf8(bytes).map_err(|_| fail());
    let base = pg.map(|c| c.base.as_str()).unwrap_or("");
    Ok(match kind {
        ColumnType::Integer => {
            let i = parse_strict_i64(bytes).ok_or_else(fail)?;
            let fits = match base {
                "int2" => i16::try_from(i).is_ok(),
                "int4" => i32::try_from(i).is_ok(),
                _ => true,
            };
            if !fits {
                return Err(fail());
            }
            Param::Text(Cow::Borrowed(text()?))
        }
        ColumnType::Real => {
            let f = parse_finite_f64(bytes).ok_or_else(fail)?;
            if base == "float4" && f.abs() > f32::MAX as f64 {
                return Err(fail());
            }
            Param::Text(Cow::Borrowed(text()?))
        }
        ColumnType::Numeric => {
            if parse_strict_i64(bytes).is_none() && parse_finite_f64(bytes).is_none() {
                return Err(fail());
            }
            Param::Text(Cow::Borrowed(text()?))
        }
        ColumnType::Boolean => Param::Text(Cow::Borrowed(if parse_bool(bytes).ok_or_else(fail)? {
            "true"
        } else {
            "false"
        })),
        ColumnType::Text | ColumnType::Json | ColumnType::Timestamp => {
            let s = text()?;
            // PostgreSQL text cannot hold NUL.
            if s.contains('\0') {
                return Err(fail());
            }
            Param::Text(Cow::Borrowed(s))
        }
        ColumnType::Blob => Param::Bytes(bytes),
    })
}

/// The SQL pieces of one mapped target.
struct MappedSql<'t> {
    table: &'t PgTable,
    key: &'t PgColumn,
    value: &'t PgColumn,
}

impl<'t> MappedSql<'t> {
    fn new(table: &'t PgTable, m: &MappedTable) -> Result<MappedSql<'t>, StoreError> {
        let col = |name: &str| {
            table.column(name).ok_or_else(|| {
                StoreError::permanent(format!(
                    "PostgreSQL table {} has no column {name:?}",
                    m.table
                ))
            })
        };
        Ok(MappedSql {
            table,
            key: col(&m.key_column)?,
            value: col(&m.value_column)?,
        })
    }

    fn param_type(c: &PgColumn) -> &'static str {
        if c.kind == ColumnType::Blob {
            "bytea"
        } else {
            "text"
        }
    }

    /// The upsert; with `returning`, it also returns each row's key and value as
    /// [`MappedSql::out`] renders them for reads and scans.
    fn upsert(&self, returning: bool) -> String {
        let mut sql = format!(
            "INSERT INTO {t} ({k}, {v}) SELECT u.k::{kc}, u.v::{vc} \
             FROM UNNEST($1::{kp}[], $2::{vp}[]) AS u(k, v) \
             ON CONFLICT ({k}) DO UPDATE SET {v} = EXCLUDED.{v}",
            t = self.table.qualified,
            k = quote(&self.key.name),
            v = quote(&self.value.name),
            kc = self.key.cast,
            vc = self.value.cast,
            kp = Self::param_type(self.key),
            vp = Self::param_type(self.value),
        );
        if returning {
            sql.push_str(&format!(
                " RETURNING {}, {}",
                Self::out(self.key),
                self.value_out()
            ));
        }
        sql
    }

    fn delete(&self, on_delete: crate::config::OnDelete) -> String {
        match on_delete {
            crate::config::OnDelete::SetNull => format!(
                "UPDATE {t} SET {v} = NULL WHERE {k} = ANY($1::{kp}[]::{kc}[])",
                t = self.table.qualified,
                k = quote(&self.key.name),
                v = quote(&self.value.name),
                kc = self.key.cast,
                kp = Self::param_type(self.key),
            ),
            crate::config::OnDelete::DeleteRow => format!(
                "DELETE FROM {t} WHERE {k} = ANY($1::{kp}[]::{kc}[])",
                t = self.table.qualified,
                k = quote(&self.key.name),
                kc = self.key.cast,
                kp = Self::param_type(self.key),
            ),
        }
    }

    /// The value column as read back: bytea raw, anything else in its text form.
    fn value_out(&self) -> String {
        Self::out(self.value)
    }

    fn out(c: &PgColumn) -> String {
        if c.kind == ColumnType::Blob {
            quote(&c.name)
        } else {
            format!("{}::text", quote(&c.name))
        }
    }

    fn key_in(&self, n: usize) -> String {
        format!("${n}::{}::{}", Self::param_type(self.key), self.key.cast)
    }
}

/// Collects converted params into the two array shapes a statement takes.
#[derive(Default)]
struct Column<'a> {
    text: Vec<Cow<'a, str>>,
    bytes: Vec<&'a [u8]>,
}

impl<'a> Column<'a> {
    fn push(&mut self, p: Param<'a>) {
        match p {
            Param::Text(t) => self.text.push(t),
            Param::Bytes(b) => self.bytes.push(b),
        }
    }

    fn as_sql<'s>(&'s self, kind: ColumnType) -> Box<dyn ToSql + Sync + Send + 's> {
        if kind == ColumnType::Blob {
            Box::new(self.bytes.clone())
        } else {
            Box::new(
                self.text
                    .iter()
                    .map(|s| s.as_ref())
                    .collect::<Vec<&'s str>>(),
            )
        }
    }
}

/// Where an applier's statements run.
enum PgConn<'a, 'c> {
    /// Inside the batch's transaction, with savepoints around each attempt.
    Tx(&'a deadpool_postgres::Transaction<'c>),
    /// On its own (autocommit): only for a batch that is one statement.
    Alone(&'a deadpool_postgres::Client),
}

/// Applies planned rows.
struct PgApplier<'a, 'c> {
    conn: PgConn<'a, 'c>,
    tables: &'a HashMap<String, Arc<PgTable>>,
}

impl PgApplier<'_, '_> {
    /// Runs a statement; with `rows`, returns the rows it returns (none otherwise).
    async fn run(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        doing: &str,
        rows: bool,
    ) -> Result<Vec<tokio_postgres::Row>, StatementFailure> {
        let failed = |e: tokio_postgres::Error| statement_failure(&e, doing);
        match self.conn {
            PgConn::Tx(tx) => {
                let stmt = tx.prepare_cached(sql).await.map_err(failed)?;
                if rows {
                    tx.query(&stmt, params).await.map_err(failed)
                } else {
                    tx.execute(&stmt, params)
                        .await
                        .map(|_| Vec::new())
                        .map_err(failed)
                }
            }
            PgConn::Alone(client) => {
                let stmt = client.prepare_cached(sql).await.map_err(failed)?;
                let result = if rows {
                    client.query(&stmt, params).await
                } else {
                    client.execute(&stmt, params).await.map(|_| Vec::new())
                };
                result.map_err(|e| match e.as_db_error() {
                    Some(_) => failed(e),
                    // Alone, the statement is its own commit: lost without an answer from
                    // the server, it may have committed, and the error must say so.
                    None => StatementFailure {
                        error: commit_error(&e),
                        whole_statement: true,
                    },
                })
            }
        }
    }

    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        doing: &str,
    ) -> Result<StatementStored, StatementFailure> {
        self.run(sql, params, doing, false)
            .await
            .map(|_| Vec::new())
    }

    async fn savepoint_sql(&self, sql: &str) -> Result<(), StoreError> {
        match self.conn {
            PgConn::Tx(tx) => tx
                .batch_execute(sql)
                .await
                .map_err(|e| classify(&e, "savepoint")),
            // A lone statement is atomic by itself: there is nothing to mark.
            PgConn::Alone(_) => Ok(()),
        }
    }
}

#[async_trait]
impl SetApplier for PgApplier<'_, '_> {
    async fn savepoint(&mut self) -> Result<(), StoreError> {
        self.savepoint_sql("SAVEPOINT sluice_batch").await
    }

    async fn rollback_to_savepoint(&mut self) -> Result<(), StoreError> {
        self.savepoint_sql("ROLLBACK TO SAVEPOINT sluice_batch; RELEASE SAVEPOINT sluice_batch")
            .await
    }

    async fn release_savepoint(&mut self) -> Result<(), StoreError> {
        self.savepoint_sql("RELEASE SAVEPOINT sluice_batch").await
    }

    async fn apply(&mut self, ops: &[&StoreOp]) -> Result<StatementStored, StatementFailure> {
        let Some(first) = ops.first() else {
            return Ok(Vec::new());
        };
        let delete = matches!(first.write, StoreWrite::Delete);
        let with_key = &name_single_key(ops);
        match &first.target {
            Target::Builtin { .. } => {
                let dbs: Vec<i16> = ops
                    .iter()
                    .map(|op| match op.target {
                        Target::Builtin { db } => db as i16,
                        Target::Mapped(_) => 0,
                    })
                    .collect();
                let keys: Vec<&[u8]> = ops.iter().map(|op| &op.key[..]).collect();
                if delete {
                    return self
                        .exec(DELETE_KV, &[&dbs, &keys], "delete from sluice_kv")
                        .await
                        .map_err(with_key);
                }
                let mut values: Vec<&[u8]> = Vec::with_capacity(ops.len());
                let mut expiry: Vec<Option<i64>> = Vec::with_capacity(ops.len());
                for op in ops {
                    if let StoreWrite::Upsert { value, expires_at } = &op.write {
                        values.push(&value[..]);
                        expiry.push(expires_at.map(|e| e.min(i64::MAX as u64) as i64));
                    }
                }
                self.exec(
                    UPSERT_KV,
                    &[&dbs, &keys, &values, &expiry],
                    "upsert into sluice_kv",
                )
                .await
                .map_err(with_key)
            }
            Target::Mapped(m) => {
                let fail = |e: StoreError| StatementFailure {
                    error: e,
                    whole_statement: true,
                };
                let table = self.tables.get(&m.table).ok_or_else(|| {
                    fail(StoreError::permanent(format!(
                        "PostgreSQL table {} was not resolved",
                        m.table
                    )))
                })?;
                let sql = MappedSql::new(table, m).map_err(fail)?;
                let doing = format!("write to {}.{}", m.table, m.value_column);
                let mut keys = Column::default();
                let mut values = Column::default();
                for op in ops {
                    // Checked before planning; a failure here would be a bug, kept per entry.
                    let entry = |e: StoreError| StatementFailure {
                        error: e,
                        whole_statement: false,
                    };
                    keys.push(convert(m, Some(sql.key), &op.key, &op.key, true).map_err(entry)?);
                    if let StoreWrite::Upsert { value, .. } = &op.write {
                        values.push(
                            convert(m, Some(sql.value), value, &op.key, false).map_err(entry)?,
                        );
                    }
                }
                let k = keys.as_sql(sql.key.kind);
                if delete {
                    return self
                        .exec(&sql.delete(m.on_delete), &[&*k], &doing)
                        .await
                        .map_err(with_key);
                }
                let v = values.as_sql(sql.value.kind);
                if !m.stores_different_text() {
                    return self
                        .exec(&sql.upsert(false), &[&*k, &*v], &doing)
                        .await
                        .map_err(with_key);
                }
                // A typed column: report what it now holds, as a read would render it.
                let rows = self
                    .run(&sql.upsert(true), &[&*k, &*v], &doing, true)
                    .await
                    .map_err(with_key)?;
                Ok(match_returned(
                    ops,
                    rows.iter().filter_map(|r| {
                        let key = column_bytes(r, 0, sql.key.kind)?;
                        Some((key, column_bytes(r, 1, sql.value.kind)))
                    }),
                ))
            }
        }
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    async fn ensure_builtin_table(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(&e, "create table sluice_kv");
            let tx = client.transaction().await.map_err(q)?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
                .await
                .map_err(q)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS sluice_kv (
                    db smallint NOT NULL,
                    key bytea NOT NULL,
                    value bytea NOT NULL,
                    expires_at bigint,
                    PRIMARY KEY (db, key)
                );
                CREATE INDEX IF NOT EXISTS sluice_kv_expires_at
                    ON sluice_kv (expires_at) WHERE expires_at IS NOT NULL;",
            )
            .await
            .map_err(q)?;
            tx.commit().await.map_err(q)
        })
        .await;
        finish(client, r, "create table sluice_kv")
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, load_table(&client, table)).await;
        let Some(t) = finish(client, r, "read table schema")? else {
            return Ok(None);
        };
        let schema = TableSchema {
            columns: t
                .columns
                .iter()
                .map(|c| ColumnInfo {
                    name: c.name.clone(),
                    declared_type: c.declared.clone(),
                    kind: c.kind,
                })
                .collect(),
            unique_columns: t.unique.clone(),
        };
        self.tables.write().insert(table.to_string(), Arc::new(t));
        Ok(Some(schema))
    }

    fn check(&self, target: &Target, key: &[u8], value: Option<&[u8]>) -> Result<(), StoreError> {
        if let Target::Mapped(m) = target {
            let table = self.cached_table(&m.table);
            let col = |name: &str| table.as_ref().and_then(|t| t.column(name).cloned());
            convert(m, col(&m.key_column).as_ref(), key, key, true)?;
            if let Some(v) = value {
                convert(m, col(&m.value_column).as_ref(), v, key, false)?;
            }
        }
        Ok(())
    }

    async fn read(&self, target: &Target, key: &[u8]) -> Result<Option<StoredValue>, StoreError> {
        if let Target::Mapped(m) = target {
            convert(m, None, key, key, true)?;
        }
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            match target {
                Target::Builtin { db } => {
                    let q = |e: tokio_postgres::Error| classify(&e, "read sluice_kv");
                    let stmt = client
                        .prepare_cached(
                            "SELECT value, expires_at FROM sluice_kv WHERE db = $1 AND key = $2",
                        )
                        .await
                        .map_err(q)?;
                    let row = client
                        .query_opt(&stmt, &[&(*db as i16), &key])
                        .await
                        .map_err(q)?;
                    Ok(row.map(|r| StoredValue {
                        value: Bytes::from(r.get::<_, Vec<u8>>(0)),
                        expires_at: r.get::<_, Option<i64>>(1).map(|e| e.max(0) as u64),
                    }))
                }
                Target::Mapped(m) => {
                    let table = self.table(&client, &m.table).await?;
                    let sql = MappedSql::new(&table, m)?;
                    let q = |e: tokio_postgres::Error| {
                        let mut err = classify(&e, &format!("read {}.{}", m.table, m.value_column));
                        err.message = format!(
                            "{} (key capture {:?})",
                            err.message,
                            String::from_utf8_lossy(key)
                        );
                        err
                    };
                    let param = convert(m, Some(sql.key), key, key, true)?;
                    let text;
                    let p: &(dyn ToSql + Sync) = match &param {
                        Param::Text(t) => {
                            text = t.to_string();
                            &text
                        }
                        Param::Bytes(b) => b,
                    };
                    let stmt = client
                        .prepare_cached(&format!(
                            "SELECT {} FROM {} WHERE {} = {}",
                            sql.value_out(),
                            table.qualified,
                            quote(&sql.key.name),
                            sql.key_in(1)
                        ))
                        .await
                        .map_err(q)?;
                    let row = client.query_opt(&stmt, &[p]).await.map_err(q)?;
                    Ok(row
                        .and_then(|r| value_bytes(&r, sql.value.kind))
                        .map(|value| StoredValue {
                            value,
                            expires_at: None,
                        }))
                }
            }
        })
        .await;
        finish(client, r, "read")
    }

    async fn write_batch(&self, ops: Vec<StoreOp>) -> Result<BatchOutcome, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            // Resolve every mapped table first, outside the transaction.
            let mut tables: HashMap<String, Arc<PgTable>> = HashMap::new();
            let mut missing: HashMap<String, StoreError> = HashMap::new();
            let mut outcome: BatchOutcome = Vec::with_capacity(ops.len());
            let mut skip = Vec::with_capacity(ops.len());
            for op in &ops {
                let mut result = Ok(());
                if let Target::Mapped(m) = &op.target {
                    if let Some(e) = missing.get(&m.table) {
                        result = Err(e.clone());
                    } else if !tables.contains_key(&m.table) {
                        match self.table(&client, &m.table).await {
                            Ok(t) => {
                                tables.insert(m.table.clone(), t);
                            }
                            Err(e) if e.is_permanent() => {
                                missing.insert(m.table.clone(), e.clone());
                                result = Err(e);
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                if result.is_ok() {
                    let value = match &op.write {
                        StoreWrite::Upsert { value, .. } => Some(&value[..]),
                        StoreWrite::Delete => None,
                    };
                    result = self.check(&op.target, &op.key, value);
                }
                skip.push(result.is_err());
                outcome.push(result.map(|()| Written::NOTHING));
            }
            let phases = plan_batch(&ops, &skip);
            if phases.is_empty() {
                return Ok(outcome);
            }
            if let Some((rows, entries)) = single_statement(&ops, &phases) {
                // The common batch (one table, upserts only) commits in one round trip
                // instead of five (BEGIN, SAVEPOINT, statement, RELEASE, COMMIT). Refused
                // permanently, it changed nothing: isolate the culprits in a transaction.
                let mut alone = PgApplier {
                    conn: PgConn::Alone(&client),
                    tables: &tables,
                };
                match alone.apply(&entries).await {
                    Ok(stored) => {
                        record_stored(&ops, rows, stored, &mut outcome);
                        return Ok(outcome);
                    }
                    Err(f) if !f.error.is_permanent() => return Err(f.error),
                    Err(_) => {}
                }
            }
            let q = |e: tokio_postgres::Error| classify(&e, "batch transaction");
            let tx = client.transaction().await.map_err(q)?;
            let mut applier = PgApplier {
                conn: PgConn::Tx(&tx),
                tables: &tables,
            };
            apply_planned(&mut applier, &ops, &phases, &mut outcome).await?;
            tx.commit().await.map_err(|e| commit_error(&e))?;
            Ok(outcome)
        })
        .await;
        finish(client, r, "write batch")
    }

    async fn scan_keys(&self, target: &Target, now_ms: u64) -> Result<Vec<Bytes>, StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(&e, "scan keys");
            match target {
                Target::Builtin { db } => {
                    let rows = client
                        .query(
                            "SELECT key FROM sluice_kv WHERE db = $1 \
                             AND (expires_at IS NULL OR expires_at >= $2)",
                            &[&(*db as i16), &(now_ms.min(i64::MAX as u64) as i64)],
                        )
                        .await
                        .map_err(q)?;
                    Ok(rows
                        .iter()
                        .map(|r| Bytes::from(r.get::<_, Vec<u8>>(0)))
                        .collect())
                }
                Target::Mapped(m) => {
                    let table = self.table(&client, &m.table).await?;
                    let sql = MappedSql::new(&table, m)?;
                    let rows = client
                        .query(
                            &format!(
                                "SELECT {} FROM {} WHERE {} IS NOT NULL",
                                MappedSql::out(sql.key),
                                table.qualified,
                                quote(&sql.value.name)
                            ),
                            &[],
                        )
                        .await
                        .map_err(q)?;
                    Ok(rows
                        .iter()
                        .filter_map(|r| value_bytes(r, sql.key.kind))
                        .collect())
                }
            }
        })
        .await;
        finish(client, r, "scan keys")
    }

    async fn clear(&self, target: &Target) -> Result<(), StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(&e, "clear");
            match target {
                Target::Builtin { db } => client
                    .execute("DELETE FROM sluice_kv WHERE db = $1", &[&(*db as i16)])
                    .await
                    .map(drop)
                    .map_err(q),
                Target::Mapped(m) => {
                    let table = self.table(&client, &m.table).await?;
                    client
                        .execute(&format!("DELETE FROM {}", table.qualified), &[])
                        .await
                        .map(drop)
                        .map_err(q)
                }
            }
        })
        .await;
        finish(client, r, "clear")
    }

    async fn purge_expired(&self, now_ms: u64, limit: usize) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            client
                .execute(
                    "DELETE FROM sluice_kv WHERE (db, key) IN \
                     (SELECT db, key FROM sluice_kv WHERE expires_at < $1 LIMIT $2)",
                    &[
                        &(now_ms.min(i64::MAX as u64) as i64),
                        &(limit.min(i64::MAX as usize) as i64),
                    ],
                )
                .await
                .map_err(|e| classify(&e, "purge expired keys"))
        })
        .await;
        finish(client, r, "purge expired keys")
    }

    async fn delete_if_expired(&self, db: u8, key: &[u8], now_ms: u64) -> Result<(), StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(&e, "delete expired key");
            let stmt = client
                .prepare_cached(
                    "DELETE FROM sluice_kv WHERE db = $1 AND key = $2 AND expires_at < $3",
                )
                .await
                .map_err(q)?;
            client
                .execute(
                    &stmt,
                    &[&(db as i16), &key, &(now_ms.min(i64::MAX as u64) as i64)],
                )
                .await
                .map(drop)
                .map_err(q)
        })
        .await;
        finish(client, r, "delete expired key")
    }
}

/// A selected value: bytea raw, anything else already cast to text. NULL is no value.
fn value_bytes(row: &tokio_postgres::Row, kind: ColumnType) -> Option<Bytes> {
    column_bytes(row, 0, kind)
}

/// Column `idx` of a row, selected as [`MappedSql::out`] renders a column of `kind`. NULL (or a
/// column of an unexpected type, which would be a bug) is no value.
fn column_bytes(row: &tokio_postgres::Row, idx: usize, kind: ColumnType) -> Option<Bytes> {
    if kind == ColumnType::Blob {
        row.try_get::<_, Option<Vec<u8>>>(idx)
            .ok()
            .flatten()
            .map(Bytes::from)
    } else {
        row.try_get::<_, Option<String>>(idx)
            .ok()
            .flatten()
            .map(Bytes::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_mapping() {
        assert_eq!(kind_of("int4"), ColumnType::Integer);
        assert_eq!(kind_of("numeric"), ColumnType::Numeric);
        assert_eq!(kind_of("float8"), ColumnType::Real);
        assert_eq!(kind_of("bool"), ColumnType::Boolean);
        assert_eq!(kind_of("bytea"), ColumnType::Blob);
        assert_eq!(kind_of("jsonb"), ColumnType::Json);
        assert_eq!(kind_of("timestamptz"), ColumnType::Timestamp);
        assert_eq!(kind_of("varchar"), ColumnType::Text);
        assert_eq!(kind_of("uuid"), ColumnType::Text);
    }

    #[test]
    fn conflicts_are_marked() {
        for c in ["40001", "40P01"] {
            assert!(conflict_state(c), "{c}");
        }
        // Rolled back too, but not for a conflict with another transaction; 40003 is a
        // statement whose completion is unknown.
        for c in ["40000", "40002", "40003", "55P03", "08006", "57014"] {
            assert!(!conflict_state(c), "{c}");
        }
    }

    #[test]
    fn sqlstate_classes() {
        for t in ["08006", "40001", "40P01", "55P03", "57P01", "53300"] {
            assert!(transient_state(t), "{t}");
        }
        for p in ["22001", "22P02", "23505", "42P01", "54000"] {
            assert!(!transient_state(p), "{p}");
        }
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote("a\"b"), "\"a\"\"b\"");
    }
}
