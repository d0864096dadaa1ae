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
//! - **Errors**: connection loss, timeouts, lock timeouts, shutdowns and resource exhaustion
//!   are transient; serialization failures (40001) and deadlocks (40P01) are conflicts
//!   ([`ErrorClass::Conflict`](crate::error::ErrorClass::Conflict)): the server rolled the
//!   transaction back, so it may be run again at once; data exceptions (class 22), integrity
//!   violations (class 23) and everything else are permanent.
//! - **Reconnection** is the pool's job: a broken connection surfaces as a transient error, is
//!   not returned to the pool, and the next call gets a fresh one. Waiting for a connection,
//!   connecting and recycling each time out after 5 s, and any single operation after 60 s
//!   (its connection is then discarded), so a dead database fails fast instead of hanging.
//! - **Built-in keys** are the primary key of `sluice_kv` (a btree): PostgreSQL refuses an
//!   index entry over about 2.7 kB (after compression), so very long keys fail permanently
//!   with "index row size … exceeds maximum".
//! - **Mapped rows** (hash keyspaces): one statement per entry, `INSERT … ON CONFLICT (k) DO
//!   UPDATE SET` the changed columns only, `RETURNING` every mapped column, so the entry
//!   reports the row's image; a write of NULLs only is an `UPDATE` (it never creates a row).
//! - **All-or-nothing batches** (`write_atomic`) run their entries in order, one statement
//!   each, in one transaction; the first refused statement rolls it back and is named.
//! - TLS is not supported (`NoTls`); use a local socket, a tunnel, or `sslmode=disable`.

mod apply;
mod errors;
mod members;
mod rows;
mod schema;
mod sql;

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

use self::apply::{PgApplier, PgConn};
use self::errors::{classify, commit_error};
use self::rows::RowSql;
use self::schema::{load_table, PgTable};
use self::sql::{column_bytes, convert, quote, value_bytes, Column, MappedSql, Param};
use super::batch::{
    apply_planned, plan_batch, record_stored, single_statement, SetApplier, StatementFailure,
    StatementStored,
};
use super::{
    AtomicFailure, BatchOutcome, ColumnType, Fence, FenceSlot, MappedTable, Store, StoreOp,
    StoreWrite, StoredValue, TableSchema, Target, Written,
};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::model::DbKey;

/// Most connections the pool opens.
const POOL_SIZE: usize = 16;
/// Connecting, waiting for a free connection and recycling one each give up after this.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// One operation (a whole batch transaction, a read) gives up after this.
const OP_TIMEOUT: Duration = Duration::from_secs(60);
/// Serializes concurrent `CREATE TABLE IF NOT EXISTS sluice_kv` (which can otherwise race on
/// the catalog); "sluice" in ASCII.
const CREATE_LOCK: i64 = 0x736c_7569_6365;

/// The PostgreSQL backend.
pub struct PostgresStore {
    pool: Pool,
    described: String,
    /// Tables resolved by [`Store::table_schema`] or on first use, by configured name.
    tables: RwLock<HashMap<String, Arc<PgTable>>>,
    /// Whether `sluice_members` and its triggers exist.
    members: super::members::MembersSupport,
    /// The node name this store writes for, once claimed ([`Store::claim_fence`]).
    fence: FenceSlot,
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
            .with_source(e)
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
            .map_err(|e| {
                StoreError::permanent(format!("cannot build PostgreSQL pool: {e}")).with_source(e)
            })?;
        let store = PostgresStore {
            pool,
            described,
            tables: RwLock::new(HashMap::new()),
            members: Default::default(),
            fence: FenceSlot::default(),
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
            PoolError::Backend(e) => classify(e, &format!("connect to {}", self.described)),
            PoolError::Closed => StoreError::transient("PostgreSQL pool is closed"),
            PoolError::NoRuntimeSpecified => {
                StoreError::permanent("PostgreSQL pool has no runtime")
            }
            PoolError::PostCreateHook(e) => {
                StoreError::transient(format!("PostgreSQL connection setup failed: {e}"))
                    .with_source(e)
            }
        })
    }

    /// In a write transaction of a fenced store, `Ok` only while its claim on the node name
    /// holds; the row stays share-locked until the transaction ends, so a new claim waits
    /// for it ([`Store::claim_fence`]).
    async fn check_fence(&self, tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
        let Some(fence) = self.fence.get() else {
            return Ok(());
        };
        let q = |e| fence.unreadable(classify(e, "read sluice_fence"));
        let stmt = tx.prepare_cached(FENCE_CHECK).await.map_err(q)?;
        let found = tx.query_opt(&stmt, &[&fence.node]).await.map_err(q)?;
        fence.check(found.map(|row| row.get(0)))
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

    /// Resolves the table of a mapped target into `tables` (once per batch); a table found
    /// missing is remembered in `missing`, so its other entries fail the same way.
    async fn resolve(
        &self,
        client: &Object,
        target: &Target,
        tables: &mut HashMap<String, Arc<PgTable>>,
        missing: &mut HashMap<String, StoreError>,
    ) -> Result<(), StoreError> {
        let Some((name, _, _)) = target.mapped_columns() else {
            return Ok(());
        };
        if let Some(e) = missing.get(name) {
            return Err(e.clone());
        }
        if tables.contains_key(name) {
            return Ok(());
        }
        match self.table(client, name).await {
            Ok(t) => {
                tables.insert(name.to_string(), t);
                Ok(())
            }
            Err(e) => {
                if e.is_permanent() {
                    missing.insert(name.to_string(), e.clone());
                }
                Err(e)
            }
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

/// A transaction at read committed, whatever the server's default.
async fn read_committed(
    client: &mut Object,
) -> Result<deadpool_postgres::Transaction<'_>, tokio_postgres::Error> {
    client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::ReadCommitted)
        .start()
        .await
}

/// Whether `table` exists on the search path.
async fn table_exists(
    tx: &deadpool_postgres::Transaction<'_>,
    table: &str,
) -> Result<bool, tokio_postgres::Error> {
    let row = tx
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?;
    Ok(row.get(0))
}

/// Runs `ddl` (`CREATE TABLE IF NOT EXISTS` and the like) under [`CREATE_LOCK`]: another node may make
/// the same table meanwhile, and the lock keeps two creations from racing on the catalog.
async fn create_table(
    tx: &deadpool_postgres::Transaction<'_>,
    ddl: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&CREATE_LOCK])
        .await?;
    tx.batch_execute(ddl).await
}

/// The claim's check in a write transaction ([`Store::claim_fence`]).
const FENCE_CHECK: &str = "SELECT generation FROM sluice_fence WHERE node = $1 FOR SHARE";

/// A one-statement batch of a fenced store: BEGIN, the claim's check and the statement are
/// sent together (BEGIN first, so the statement runs inside the transaction), then COMMIT if
/// the claim holds and the statement succeeded, ROLLBACK otherwise. The outer `Err` is a
/// refused claim (or a failure to check it, or to end the transaction), nothing committed;
/// the inner result is the statement's, as [`PgApplier::apply`] alone gives it.
async fn fenced_alone(
    client: &deadpool_postgres::Client,
    fence: &Fence,
    alone: &mut PgApplier<'_, '_>,
    entries: &[&StoreOp],
) -> Result<Result<StatementStored, StatementFailure>, StoreError> {
    let unreadable = |e| fence.unreadable(classify(e, "read sluice_fence"));
    let check = client
        .prepare_cached(FENCE_CHECK)
        .await
        .map_err(unreadable)?;
    let node: [&(dyn ToSql + Sync); 1] = [&fence.node];
    // Biased: polled in order, and each request is sent when first polled, so BEGIN goes
    // first and the statement runs inside the transaction.
    let (begun, holder, applied) = tokio::join!(
        biased;
        client.batch_execute("BEGIN"),
        client.query_opt(&check, &node),
        alone.apply(entries),
    );
    let claim = begun
        .map_err(|e| classify(e, "begin transaction"))
        .and_then(|()| holder.map_err(unreadable))
        .and_then(|row| fence.check(row.map(|row| row.get(0))));
    if claim.is_ok() && applied.is_ok() {
        client.batch_execute("COMMIT").await.map_err(commit_error)?;
    } else if let Err(e) = client.batch_execute("ROLLBACK").await {
        // The connection is unusable, or still inside the transaction: say so rather than
        // report the statement's outcome.
        return Err(classify(e, "roll back a fenced batch that did not commit"));
    }
    claim.map(|()| applied)
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

impl PostgresStore {
    /// [`Store::read_many`] of a mapped column: the keys as one array, joined to the table
    /// by their position in it, so each row comes back with the index of its key whatever
    /// text form the column gives the key.
    async fn read_mapped_many(
        &self,
        target: &Target,
        m: &MappedTable,
        keys: &[Bytes],
    ) -> Result<Vec<Option<StoredValue>>, StoreError> {
        let mut values = vec![None; keys.len()];
        if keys.is_empty() {
            return Ok(values);
        }
        for key in keys {
            self.check(target, key, None)?;
        }
        let client = self.client().await?;
        let r =
            tokio::time::timeout(OP_TIMEOUT, async {
                let table = self.table(&client, &m.table).await?;
                let sql = MappedSql::new(&table, m)?;
                let q = |e: tokio_postgres::Error| {
                    classify(
                        e,
                        &format!("read {}.{} of {} keys", m.table, m.value_column, keys.len()),
                    )
                };
                let mut column = Column::default();
                for key in keys {
                    column.push(convert(m, Some(sql.key), key, key, true)?);
                }
                let value = if sql.value.kind == ColumnType::Blob {
                    format!("t.{}", quote(&sql.value.name))
                } else {
                    format!("t.{}::text", quote(&sql.value.name))
                };
                let stmt =
                    client
                        .prepare_cached(&format!(
                    "SELECT u.i, {value} FROM UNNEST($1::{kp}[]) WITH ORDINALITY AS u(k, i) \
                     JOIN {t} AS t ON t.{k} = u.k::{kc}",
                    kp = if sql.key.kind == ColumnType::Blob { "bytea" } else { "text" },
                    t = table.qualified,
                    k = quote(&sql.key.name),
                    kc = sql.key.cast,
                ))
                        .await
                        .map_err(q)?;
                let param = column.as_sql(sql.key.kind);
                for row in client.query(&stmt, &[&*param]).await.map_err(q)? {
                    let at: i64 = row.try_get(0).map_err(q)?;
                    let slot = usize::try_from(at - 1)
                        .ok()
                        .and_then(|i| values.get_mut(i))
                        .ok_or_else(|| {
                            StoreError::permanent(format!(
                                "PostgreSQL returned key position {at} of {}",
                                keys.len()
                            ))
                        })?;
                    *slot = column_bytes(&row, 1, sql.value.kind).map(|value| StoredValue {
                        kind: crate::model::Kind::String,
                        value,
                        expires_at: None,
                    });
                }
                Ok(values)
            })
            .await;
        finish(client, r, "read")
    }
}

#[async_trait]
impl Store for PostgresStore {
    fn describe(&self) -> String {
        self.described.clone()
    }

    fn pool_status(&self) -> Option<super::PoolStatus> {
        let status = self.pool.status();
        Some(super::PoolStatus {
            max: status.max_size,
            open: status.size,
            idle: status.available,
            waiting: status.waiting,
        })
    }

    async fn ensure_builtin_table(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(e, "create table sluice_kv");
            let mut tx = client.transaction().await.map_err(q)?;
            create_table(
                &tx,
                "CREATE TABLE IF NOT EXISTS sluice_kv (
                    db smallint NOT NULL,
                    key bytea NOT NULL,
                    value bytea NOT NULL,
                    expires_at bigint,
                    kind smallint NOT NULL DEFAULT 0,
                    PRIMARY KEY (db, key)
                );
                CREATE INDEX IF NOT EXISTS sluice_kv_expires_at
                    ON sluice_kv (expires_at) WHERE expires_at IS NOT NULL;
                -- A table made before values had types: every row in it is a string (0).
                ALTER TABLE sluice_kv ADD COLUMN IF NOT EXISTS kind smallint NOT NULL DEFAULT 0;",
            )
            .await
            .map_err(q)?;
            // A collection's members (see `members.rs`), removed by the database with their
            // key's row, or when the row is rewritten as a kind that has no member rows.
            // `CREATE OR REPLACE TRIGGER` needs PostgreSQL 14: the triggers are made once. The
            // function keeps the search_path it was made with, so a session with another one
            // (a cleanup job) deleting from sluice_kv still finds this schema's members. Under
            // a savepoint: a role that may not make them still gets strings and hashes.
            let members = tx.savepoint("sluice_members").await.map_err(q)?;
            let made = members
                .batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS sluice_members (
                    db smallint NOT NULL,
                    key bytea NOT NULL,
                    member bytea NOT NULL,
                    score double precision,
                    value bytea,
                    PRIMARY KEY (db, key, member)
                );
                CREATE OR REPLACE FUNCTION sluice_kv_drop_members() RETURNS trigger
                    LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
                BEGIN
                    DELETE FROM sluice_members WHERE db = OLD.db AND key = OLD.key;
                    RETURN NULL;
                END
                $fn$;
                DO $do$ BEGIN
                    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                                   WHERE tgname = 'sluice_kv_delete_members'
                                     AND tgrelid = 'sluice_kv'::regclass) THEN
                        CREATE TRIGGER sluice_kv_delete_members AFTER DELETE ON sluice_kv
                            FOR EACH ROW WHEN (OLD.kind >= {first})
                            EXECUTE FUNCTION sluice_kv_drop_members();
                    END IF;
                    IF NOT EXISTS (SELECT 1 FROM pg_trigger
                                   WHERE tgname = 'sluice_kv_retype_members'
                                     AND tgrelid = 'sluice_kv'::regclass) THEN
                        CREATE TRIGGER sluice_kv_retype_members AFTER UPDATE OF kind ON sluice_kv
                            FOR EACH ROW WHEN (OLD.kind >= {first} AND NEW.kind <> OLD.kind)
                            EXECUTE FUNCTION sluice_kv_drop_members();
                    END IF;
                END $do$;",
                    first = super::members::FIRST_MEMBER_KIND
                ))
                .await;
            match made {
                Ok(()) => members.commit().await.map_err(q)?,
                Err(e) => {
                    let e = classify(e, "create table sluice_members and its triggers");
                    members.rollback().await.map_err(q)?;
                    self.members.unavailable(e.message);
                }
            }
            tx.commit().await.map_err(q)
        })
        .await;
        finish(client, r, "create table sluice_kv")
    }

    async fn journal_mark(&self, claim: Option<&str>) -> Result<Option<String>, StoreError> {
        let mut client = self.client().await?;
        let claim = claim.map(str::to_string);
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(e, "read or record the journal mark");
            // Read committed whatever the server's default: after waiting for the lock, the
            // insert and the read must see a racing node's committed mark.
            let tx = read_committed(&mut client).await.map_err(q)?;
            if !table_exists(&tx, "sluice_journal").await.map_err(q)? {
                if claim.is_none() {
                    return Ok(None);
                }
                create_table(
                    &tx,
                    "CREATE TABLE IF NOT EXISTS sluice_journal (
                        id smallint PRIMARY KEY CHECK (id = 1),
                        mark text NOT NULL
                    )",
                )
                .await
                .map_err(q)?;
            }
            if let Some(claim) = &claim {
                tx.execute(
                    "INSERT INTO sluice_journal (id, mark) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
                    &[claim],
                )
                .await
                .map_err(q)?;
            }
            let mark = tx
                .query_opt("SELECT mark FROM sluice_journal WHERE id = 1", &[])
                .await
                .map_err(q)?
                .map(|row| row.get::<_, String>(0));
            tx.commit().await.map_err(q)?;
            Ok(mark)
        })
        .await;
        finish(client, r, "read or record the journal mark")
    }

    async fn claim_fence(&self, node: &str) -> Result<i64, StoreError> {
        self.fence.unclaimed(node)?;
        let mut client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(e, "claim the node's name in sluice_fence");
            // Read committed: the update must raise the generation the last claim committed,
            // after waiting for its writers.
            let tx = read_committed(&mut client).await.map_err(q)?;
            if !table_exists(&tx, "sluice_fence").await.map_err(q)? {
                create_table(
                    &tx,
                    "CREATE TABLE IF NOT EXISTS sluice_fence (
                        node text PRIMARY KEY,
                        generation bigint NOT NULL
                    )",
                )
                .await
                .map_err(q)?;
            }
            let generation: i64 = tx
                .query_one(
                    "INSERT INTO sluice_fence (node, generation) VALUES ($1, 1) \
                     ON CONFLICT (node) DO UPDATE SET generation = sluice_fence.generation + 1 \
                     RETURNING generation",
                    &[&node],
                )
                .await
                .map_err(q)?
                .get(0);
            tx.commit().await.map_err(q)?;
            Ok(generation)
        })
        .await;
        let generation = finish(client, r, "claim the node's name in sluice_fence")?;
        self.fence.keep(node, generation)
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, load_table(&client, table)).await;
        let Some(t) = finish(client, r, "read table schema")? else {
            return Ok(None);
        };
        let schema = t.schema();
        self.tables.write().insert(table.to_string(), Arc::new(t));
        Ok(Some(schema))
    }

    fn check(
        &self,
        target: &Target,
        key: &[u8],
        write: Option<&StoreWrite>,
    ) -> Result<(), StoreError> {
        match (target, write) {
            (Target::Row(r), write) => {
                // Range limits (int2, float4) are known once the table has been resolved.
                let table = self.cached_table(&r.table);
                let pg = |name: &str| table.as_ref().and_then(|t| t.column(name).cloned());
                let key_col = pg(&r.key_column);
                super::rows::check_row(r, key, write, |m, bytes, is_key| {
                    let col = if is_key {
                        key_col.clone()
                    } else {
                        pg(&m.value_column)
                    };
                    convert(m, col.as_ref(), bytes, key, is_key).map(drop)
                })
            }
            (Target::Members(mm), write) => {
                let table = self.cached_table(&mm.table);
                let pg = |name: &str| table.as_ref().and_then(|t| t.column(name).cloned());
                let key_col = pg(&mm.key_column);
                super::members_mapped::check_mapped_members(mm, key, write, |m, bytes, is_key| {
                    let col = if is_key {
                        key_col.clone()
                    } else {
                        pg(&m.value_column)
                    };
                    convert(m, col.as_ref(), bytes, key, is_key).map(drop)
                })
            }
            (Target::Builtin { .. }, Some(w))
                if super::members::member_write(target, w).is_some() =>
            {
                self.members.check(key)
            }
            (target, Some(StoreWrite::Partial(_))) => Err(super::fields_need_a_row(target, key)),
            (Target::Builtin { .. }, _) => Ok(()),
            (Target::Mapped(m), write) => {
                let table = self.cached_table(&m.table);
                let col = |name: &str| table.as_ref().and_then(|t| t.column(name).cloned());
                super::check_column(m, key, write, |bytes, is_key| {
                    let column = if is_key {
                        &m.key_column
                    } else {
                        &m.value_column
                    };
                    convert(m, col(column).as_ref(), bytes, key, is_key).map(drop)
                })
            }
        }
    }

    async fn read(&self, target: &Target, key: &[u8]) -> Result<Option<StoredValue>, StoreError> {
        if !matches!(target, Target::Builtin { .. }) {
            self.check(target, key, None)?;
        }
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            match target {
                Target::Builtin { db } => {
                    let q = |e: tokio_postgres::Error| classify(e, "read sluice_kv");
                    let stmt = client
                        .prepare_cached(
                            "SELECT value, expires_at, kind FROM sluice_kv WHERE db = $1 AND key = $2",
                        )
                        .await
                        .map_err(q)?;
                    let row = client
                        .query_opt(&stmt, &[&(*db as i16), &key])
                        .await
                        .map_err(q)?;
                    let Some(r) = row else {
                        return Ok(None);
                    };
                    let kind =
                        super::kind_from_stored(i64::from(r.try_get::<_, i16>(2).map_err(q)?), key)?;
                    let expires_at = r
                        .try_get::<_, Option<i64>>(1)
                        .map_err(q)?
                        .map(|e| e.max(0) as u64);
                    if !kind.stored_by_member() {
                        let value = Bytes::from(r.try_get::<_, Vec<u8>>(0).map_err(q)?);
                        return Ok(Some(StoredValue {
                            kind,
                            value,
                            expires_at,
                        }));
                    }
                    // The key's row read again with its members in one statement (one
                    // snapshot): a write committed after the first read cannot mix two states.
                    let q = |e: tokio_postgres::Error| classify(e, "read sluice_members");
                    let stmt = client
                        .prepare_cached(
                            "SELECT k.kind, k.expires_at, k.value, m.member, m.score, m.value \
                             FROM sluice_kv AS k \
                             LEFT JOIN sluice_members AS m ON m.db = k.db AND m.key = k.key \
                             WHERE k.db = $1 AND k.key = $2",
                        )
                        .await
                        .map_err(q)?;
                    let rows = client
                        .query(&stmt, &[&(*db as i16), &key])
                        .await
                        .map_err(q)?;
                    let Some(first) = rows.first() else {
                        return Ok(None);
                    };
                    let kind = super::kind_from_stored(
                        i64::from(first.try_get::<_, i16>(0).map_err(q)?),
                        key,
                    )?;
                    let expires_at = first
                        .try_get::<_, Option<i64>>(1)
                        .map_err(q)?
                        .map(|e| e.max(0) as u64);
                    if !kind.stored_by_member() {
                        let value = Bytes::from(first.try_get::<_, Vec<u8>>(2).map_err(q)?);
                        return Ok(Some(StoredValue {
                            kind,
                            value,
                            expires_at,
                        }));
                    }
                    let mut members = Vec::with_capacity(rows.len());
                    for r in &rows {
                        if let Some(m) = r.try_get::<_, Option<Vec<u8>>>(3).map_err(q)? {
                            members.push(super::members::MemberRow {
                                member: Bytes::from(m),
                                score: r.try_get::<_, Option<f64>>(4).map_err(q)?,
                                value: r
                                    .try_get::<_, Option<Vec<u8>>>(5)
                                    .map_err(q)?
                                    .map(Bytes::from),
                            });
                        }
                    }
                    // A key's row with no member left is an empty collection: absent.
                    Ok((!members.is_empty()).then(|| StoredValue {
                        kind,
                        value: super::members::image_of(kind, members),
                        expires_at,
                    }))
                }
                Target::Row(r) => {
                    let table = self.table(&client, &r.table).await?;
                    let sql = RowSql::new(&table, r)?;
                    let q = |e: tokio_postgres::Error| {
                        let mut err = classify(e, &format!("read a row of {}", r.table));
                        err.message = format!(
                            "{} (key capture {:?})",
                            err.message,
                            String::from_utf8_lossy(key)
                        );
                        err
                    };
                    let k = sql.key_param(r, key)?;
                    let stmt = client.prepare_cached(&sql.select()).await.map_err(q)?;
                    let row = client.query_opt(&stmt, &[&*k]).await.map_err(q)?;
                    Ok(row.and_then(|row| super::rows::stored_value(sql.image(r, &row))))
                }
                Target::Members(mm) => {
                    let table = self.table(&client, &mm.table).await?;
                    let sql = members::MembersSql::new(&table, mm)?;
                    let q = |e: tokio_postgres::Error| {
                        classify(
                            e,
                            &format!("read {}", super::members_mapped::describe(mm)),
                        )
                    };
                    let owner = sql.owner_param(mm, key)?;
                    let stmt = client.prepare_cached(&sql.select()).await.map_err(q)?;
                    let rows = client.query(&stmt, &[&*owner]).await.map_err(q)?;
                    super::members_mapped::image_from_rows(mm, key, sql.rows(&rows))
                }
                Target::Mapped(m) => {
                    let table = self.table(&client, &m.table).await?;
                    let sql = MappedSql::new(&table, m)?;
                    let q = |e: tokio_postgres::Error| {
                        let mut err = classify(e, &format!("read {}.{}", m.table, m.value_column));
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
                            kind: crate::model::Kind::String,
                            value,
                            expires_at: None,
                        }))
                }
            }
        })
        .await;
        finish(client, r, "read")
    }

    fn reads_many(&self, target: &Target) -> bool {
        matches!(target, Target::Mapped(_))
    }

    async fn read_many(
        &self,
        target: &Target,
        keys: &[Bytes],
    ) -> Option<Result<Vec<Option<StoredValue>>, StoreError>> {
        let Target::Mapped(m) = target else {
            return None;
        };
        Some(self.read_mapped_many(target, m, keys).await)
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
                let result = match self
                    .resolve(&client, &op.target, &mut tables, &mut missing)
                    .await
                {
                    Ok(()) => self.check(&op.target, &op.key, Some(&op.write)),
                    Err(e) if e.is_permanent() => Err(e),
                    Err(e) => return Err(e),
                };
                skip.push(result.is_err());
                outcome.push(result.map(|()| Written::NOTHING));
            }
            let phases = plan_batch(&ops, &skip);
            if phases.is_empty() {
                return Ok(outcome);
            }
            // A row write may take two statements (delete-row replaces), so rows never go
            // alone, outside a transaction.
            let single = single_statement(&ops, &phases).filter(|(_, entries)| {
                !entries
                    .iter()
                    .any(|op| matches!(op.target, Target::Row(_) | Target::Members(_)))
            });
            if let Some((rows, entries)) = single {
                // The common batch (one table, upserts only) commits in one round trip
                // instead of five (BEGIN, SAVEPOINT, statement, RELEASE, COMMIT); fenced, in
                // two (BEGIN, the claim's check and the statement sent together, then COMMIT
                // or ROLLBACK). Refused permanently, it changed nothing: isolate the culprits
                // in a transaction.
                let mut alone = PgApplier {
                    conn: PgConn::Alone(&client),
                    tables: &tables,
                };
                let applied = match self.fence.get() {
                    None => alone.apply(&entries).await,
                    Some(fence) => fenced_alone(&client, fence, &mut alone, &entries).await?,
                };
                match applied {
                    Ok(stored) => {
                        record_stored(&ops, rows, stored, &mut outcome);
                        return Ok(outcome);
                    }
                    Err(f) if !f.error.is_permanent() => return Err(f.error),
                    Err(_) => {}
                }
            }
            let q = |e: tokio_postgres::Error| classify(e, "batch transaction");
            let tx = client.transaction().await.map_err(q)?;
            self.check_fence(&tx).await?;
            let mut applier = PgApplier {
                conn: PgConn::Tx(&tx),
                tables: &tables,
            };
            apply_planned(&mut applier, &ops, &phases, &mut outcome).await?;
            tx.commit().await.map_err(commit_error)?;
            Ok(outcome)
        })
        .await;
        finish(client, r, "write batch")
    }

    async fn write_atomic(&self, ops: Vec<StoreOp>) -> Result<Vec<Written>, AtomicFailure> {
        let whole = |error| AtomicFailure { index: None, error };
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await.map_err(whole)?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let mut tables: HashMap<String, Arc<PgTable>> = HashMap::new();
            let mut missing: HashMap<String, StoreError> = HashMap::new();
            // Everything that can be refused without the database is, before BEGIN.
            for (i, op) in ops.iter().enumerate() {
                let at = |error| AtomicFailure {
                    index: Some(i),
                    error,
                };
                self.resolve(&client, &op.target, &mut tables, &mut missing)
                    .await
                    .map_err(at)?;
                self.check(&op.target, &op.key, Some(&op.write))
                    .map_err(at)?;
            }
            let tx = client
                .transaction()
                .await
                .map_err(|e| whole(classify(e, "begin transaction")))?;
            self.check_fence(&tx).await.map_err(whole)?;
            let mut applier = PgApplier {
                conn: PgConn::Tx(&tx),
                tables: &tables,
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
        match r {
            Ok(r) => r,
            Err(_) => {
                drop(Object::take(client));
                Err(whole(StoreError::transient(format!(
                    "PostgreSQL atomic batch: no answer within {OP_TIMEOUT:?}; connection discarded"
                ))))
            }
        }
    }

    async fn scan_keys(&self, target: &Target, now_ms: u64) -> Result<Vec<Bytes>, StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(e, "scan keys");
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
                Target::Row(r) => {
                    let table = self.table(&client, &r.table).await?;
                    let key = table.column(&r.key_column).ok_or_else(|| {
                        StoreError::permanent(format!(
                            "PostgreSQL table {} has no column {:?}",
                            r.table, r.key_column
                        ))
                    })?;
                    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
                    let rows = client
                        .query(
                            &format!(
                                "SELECT {} FROM {} WHERE {}",
                                MappedSql::out(key),
                                table.qualified,
                                rows::not_all_null(&names)
                            ),
                            &[],
                        )
                        .await
                        .map_err(q)?;
                    Ok(rows
                        .iter()
                        .filter_map(|row| value_bytes(row, key.kind))
                        .collect())
                }
                Target::Members(mm) => {
                    let table = self.table(&client, &mm.table).await?;
                    let sql = members::MembersSql::new(&table, mm)?;
                    let key_kind = mm.key_type;
                    let rows = client.query(&sql.scan(), &[]).await.map_err(q)?;
                    Ok(rows
                        .iter()
                        .filter_map(|r| value_bytes(r, key_kind))
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
            let q = |e: tokio_postgres::Error| classify(e, "clear");
            match target {
                Target::Builtin { db } => client
                    .execute("DELETE FROM sluice_kv WHERE db = $1", &[&(*db as i16)])
                    .await
                    .map(drop)
                    .map_err(q),
                Target::Row(r) => {
                    let table = self.table(&client, &r.table).await?;
                    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
                    let sql = match r.on_delete {
                        OnDelete::SetNull => format!(
                            "UPDATE {} SET {} WHERE {}",
                            table.qualified,
                            names
                                .iter()
                                .map(|n| format!("{} = NULL", quote(n)))
                                .collect::<Vec<_>>()
                                .join(", "),
                            rows::not_all_null(&names)
                        ),
                        OnDelete::DeleteRow => format!("DELETE FROM {}", table.qualified),
                    };
                    client.execute(&sql, &[]).await.map(drop).map_err(q)
                }
                Target::Members(mm) => {
                    let table = self.table(&client, &mm.table).await?;
                    client
                        .execute(&format!("DELETE FROM {}", table.qualified), &[])
                        .await
                        .map(drop)
                        .map_err(q)
                }
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

    async fn purge_expired(&self, now_ms: u64, limit: usize) -> Result<Vec<DbKey>, StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let rows = client
                .query(
                    "DELETE FROM sluice_kv WHERE (db, key) IN \
                     (SELECT db, key FROM sluice_kv WHERE expires_at < $1 LIMIT $2) \
                     RETURNING db, key",
                    &[
                        &(now_ms.min(i64::MAX as u64) as i64),
                        &(limit.min(i64::MAX as usize) as i64),
                    ],
                )
                .await
                .map_err(|e| classify(e, "purge expired keys"))?;
            rows.iter()
                .map(|row| {
                    Ok(DbKey {
                        db: row
                            .try_get::<_, i16>(0)
                            .map_err(|e| classify(e, "purge expired keys"))?
                            as u8,
                        key: Bytes::from(
                            row.try_get::<_, Vec<u8>>(1)
                                .map_err(|e| classify(e, "purge expired keys"))?,
                        ),
                    })
                })
                .collect()
        })
        .await;
        finish(client, r, "purge expired keys")
    }

    async fn delete_if_expired(&self, db: u8, key: &[u8], now_ms: u64) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let r = tokio::time::timeout(OP_TIMEOUT, async {
            let q = |e: tokio_postgres::Error| classify(e, "delete expired key");
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
                .map(|deleted| deleted > 0)
                .map_err(q)
        })
        .await;
        finish(client, r, "delete expired key")
    }
}
