//! SQLite store: the embedded default.
//!
//! One dedicated writer thread owns the only writing connection. It drains every batch that is
//! waiting and commits them together in one transaction (group commit), so concurrent
//! write-through writers share one fsync. Reads run on a small pool of reader threads; WAL mode
//! lets them proceed while the writer commits. An upsert into a typed mapped column returns
//! the text the column now holds (`RETURNING`, rendered as a read renders it), reported as
//! [`Written::stored`]; a write to a mapped row returns the row's image the same way.
//! [`Store::write_atomic`] runs on the writer thread in a transaction of its own, never grouped
//! with other batches, so a refused entry rolls back only that batch.

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::types::{Value, ValueRef};
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::{
    conversion_error, members, members_mapped, parse_bool, parse_finite_f64, parse_strict_i64,
    rows, AtomicFailure, BatchOutcome, ColumnInfo, ColumnType, EntryOutcome, Fence, FenceSlot,
    MappedMembers, MappedRow, MappedTable, Store, StoreOp, StoreWrite, StoredValue, TableSchema,
    Target, Written,
};
use crate::config::OnDelete;
use crate::error::StoreError;
use crate::keyspace::quote_identifier;
use crate::model::{DbKey, Kind, PartialWrite};

const READER_THREADS: usize = 2;
/// Most batch entries one group commit takes, so one transaction stays short.
const MAX_GROUP_ENTRIES: usize = 8192;

type ReadJob = Box<dyn FnOnce(&Connection) + Send>;
type RunJob = Box<dyn FnOnce(&mut Connection) + Send>;

enum WriterJob {
    Batch {
        ops: Vec<StoreOp>,
        reply: oneshot::Sender<Result<BatchOutcome, StoreError>>,
    },
    Run(RunJob),
}

/// The SQLite backend (`sqlite://path`).
pub struct SqliteStore {
    path: PathBuf,
    writer: mpsc::Sender<WriterJob>,
    readers: crossbeam_channel::Sender<ReadJob>,
    /// The node name this store writes for, once claimed ([`Store::claim_fence`]); shared
    /// with the writer thread, which checks it in every write transaction.
    fence: Arc<FenceSlot>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file, in WAL mode with `synchronous=FULL`, so
    /// a committed batch survives power loss.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    StoreError::permanent(format!(
                        "cannot create directory {} for SQLite: {e}",
                        dir.display()
                    ))
                    .with_source(e)
                })?;
            }
        }
        let writer_conn = open_connection(path, false)?;
        writer_conn
            .pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| classify(e, "set WAL mode"))?;
        let (writer, rx) = mpsc::channel::<WriterJob>();
        let fence: Arc<FenceSlot> = Arc::default();
        let writer_fence = fence.clone();
        thread::Builder::new()
            .name("sluice-sqlite-writer".into())
            .spawn(move || writer_loop(writer_conn, rx, &writer_fence))
            .map_err(|e| {
                StoreError::permanent(format!("cannot start SQLite writer: {e}")).with_source(e)
            })?;

        let (readers, read_rx) = crossbeam_channel::unbounded::<ReadJob>();
        for i in 0..READER_THREADS {
            let conn = open_connection(path, true)?;
            let rx = read_rx.clone();
            thread::Builder::new()
                .name(format!("sluice-sqlite-reader-{i}"))
                .spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job(&conn);
                    }
                })
                .map_err(|e| {
                    StoreError::permanent(format!("cannot start SQLite reader: {e}")).with_source(e)
                })?;
        }
        Ok(SqliteStore {
            path: path.to_path_buf(),
            writer,
            readers,
            fence,
        })
    }

    /// Opens the store named by a `sqlite://path` URL.
    pub fn open_url(url: &str) -> Result<SqliteStore, StoreError> {
        match super::Backend::of(url) {
            Ok(super::Backend::Sqlite(path)) => SqliteStore::open(&path),
            _ => Err(StoreError::permanent(format!(
                "{url:?} is not a sqlite:// URL"
            ))),
        }
    }

    async fn on_reader<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.readers
            .send(Box::new(move |conn| {
                let _ = tx.send(job(conn));
            }))
            .map_err(|_| StoreError::transient("SQLite reader threads have stopped"))?;
        rx.await
            .map_err(|_| StoreError::transient("SQLite reader dropped the request"))?
    }

    async fn on_writer<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(WriterJob::Run(Box::new(move |conn| {
                let _ = tx.send(job(conn));
            })))
            .map_err(|_| StoreError::transient("SQLite writer thread has stopped"))?;
        rx.await
            .map_err(|_| StoreError::transient("SQLite writer dropped the request"))?
    }
}

fn open_connection(path: &Path, _reader: bool) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| {
        StoreError::permanent(format!("cannot open SQLite file {}: {e}", path.display()))
            .with_source(e)
    })?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|e| classify(e, "set busy timeout"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| classify(e, "set synchronous"))?;
    conn.set_prepared_statement_cache_capacity(256);
    Ok(conn)
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<WriterJob>, fence: &FenceSlot) {
    let mut pending: Option<WriterJob> = None;
    loop {
        let job = match pending.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            WriterJob::Run(f) => f(&mut conn),
            WriterJob::Batch { ops, reply } => {
                let mut entries = ops.len();
                let mut group = vec![(ops, reply)];
                while entries < MAX_GROUP_ENTRIES {
                    match rx.try_recv() {
                        Ok(WriterJob::Batch { ops, reply }) => {
                            entries += ops.len();
                            group.push((ops, reply));
                        }
                        Ok(other) => {
                            pending = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                commit_group(&mut conn, group, fence.get());
            }
        }
    }
}

type GroupEntry = (
    Vec<StoreOp>,
    oneshot::Sender<Result<BatchOutcome, StoreError>>,
);

fn commit_group(conn: &mut Connection, group: Vec<GroupEntry>, fence: Option<&Fence>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let err = classify(e, "begin transaction");
            for (_, reply) in group {
                let _ = reply.send(Err(err.clone()));
            }
            return;
        }
    };
    if let Err(err) = check_fence(&tx, fence) {
        for (_, reply) in group {
            let _ = reply.send(Err(err.clone()));
        }
        return;
    }
    // A failing statement is undone by SQLite's statement journal without aborting the
    // transaction, so each entry gets its own outcome and the rest still commit.
    let outcomes: Vec<BatchOutcome> = group
        .iter()
        .map(|(ops, _)| ops.iter().map(|op| apply_op(&tx, op)).collect())
        .collect();
    match tx.commit() {
        Ok(()) => {
            for ((_, reply), outcome) in group.into_iter().zip(outcomes) {
                let _ = reply.send(Ok(outcome));
            }
        }
        Err(e) => {
            let err = classify(e, "commit");
            for (_, reply) in group {
                let _ = reply.send(Err(err.clone()));
            }
        }
    }
}

fn apply_op(conn: &Connection, op: &StoreOp) -> EntryOutcome {
    if let (Target::Builtin { db }, Some(p)) =
        (&op.target, members::member_write(&op.target, &op.write))
    {
        return apply_members(conn, *db, &op.key, p);
    }
    match (&op.target, &op.write) {
        (Target::Row(r), write) => apply_row(conn, r, &op.key, write),
        (Target::Members(mm), write) => apply_mapped_members(conn, mm, &op.key, write),
        (target, StoreWrite::Partial(_)) => Err(super::fields_need_a_row(target, &op.key)),
        (
            Target::Builtin { db },
            StoreWrite::Upsert {
                value,
                kind,
                expires_at,
            },
        ) => conn
            .prepare_cached(
                "INSERT INTO sluice_kv (db, key, value, expires_at, kind) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (db, key) DO UPDATE SET value = excluded.value, \
                 expires_at = excluded.expires_at, kind = excluded.kind",
            )
            .and_then(|mut st| {
                st.execute(params![
                    *db as i64,
                    &op.key[..],
                    &value[..],
                    expires_at.map(|e| e as i64),
                    kind.code() as i64
                ])
            })
            .map(|_| Written::NOTHING)
            .map_err(|e| classify(e, "upsert into sluice_kv")),
        (Target::Builtin { db }, StoreWrite::Delete) => conn
            .prepare_cached("DELETE FROM sluice_kv WHERE db = ?1 AND key = ?2")
            .and_then(|mut st| st.execute(params![*db as i64, &op.key[..]]))
            .map(|_| Written::NOTHING)
            .map_err(|e| classify(e, "delete from sluice_kv")),
        (
            Target::Mapped(m),
            StoreWrite::Upsert {
                kind: Kind::Hash, ..
            },
        ) => Err(super::hash_in_column(m, &op.key)),
        (Target::Mapped(m), StoreWrite::Upsert { value, .. }) => {
            let key = to_sql(m, &op.key, &op.key, true)?;
            let val = to_sql(m, value, &op.key, false)?;
            let mut sql = format!(
                "INSERT INTO {t} ({k}, {v}) VALUES (?1, ?2) ON CONFLICT ({k}) DO UPDATE SET {v} = excluded.{v}",
                t = quote_identifier(&m.table),
                k = quote_identifier(&m.key_column),
                v = quote_identifier(&m.value_column),
            );
            if !m.stores_different_text() {
                return conn
                    .prepare_cached(&sql)
                    .and_then(|mut st| st.execute(params![key, val]))
                    .map(|_| Written::NOTHING)
                    .map_err(|e| mapped_error(e, m, &op.key));
            }
            // A typed column: report what it now holds, rendered as `read` renders it.
            sql.push_str(&format!(" RETURNING {}", mapped_value_out(m)));
            conn.prepare_cached(&sql)
                .and_then(|mut st| {
                    // Every change happens at the first step; a missing row (which an upsert
                    // never leaves) would only mean nothing to report.
                    let mut rows = st.query(params![key, val])?;
                    match rows.next()? {
                        Some(row) => row.get_ref(0).map(from_sql),
                        None => Ok(None),
                    }
                })
                .map(|stored| Written { stored })
                .map_err(|e| mapped_error(e, m, &op.key))
        }
        (Target::Mapped(m), StoreWrite::Delete) => {
            let key = to_sql(m, &op.key, &op.key, true)?;
            let sql = match m.on_delete {
                OnDelete::SetNull => format!(
                    "UPDATE {t} SET {v} = NULL WHERE {k} = ?1",
                    t = quote_identifier(&m.table),
                    k = quote_identifier(&m.key_column),
                    v = quote_identifier(&m.value_column),
                ),
                OnDelete::DeleteRow => format!(
                    "DELETE FROM {t} WHERE {k} = ?1",
                    t = quote_identifier(&m.table),
                    k = quote_identifier(&m.key_column),
                ),
            };
            conn.prepare_cached(&sql)
                .and_then(|mut st| st.execute(params![key]))
                .map(|_| Written::NOTHING)
                .map_err(|e| mapped_error(e, m, &op.key))
        }
    }
}

/// Applies one write to a mapped set or sorted set: a statement per changed row
/// (`members_mapped.rs`), under a savepoint, so an entry that fails part-way leaves nothing of
/// itself in the group's transaction.
fn apply_mapped_members(
    conn: &Connection,
    mm: &MappedMembers,
    key: &[u8],
    write: &StoreWrite,
) -> EntryOutcome {
    let q = |e| classify(e, "savepoint for a member write");
    conn.execute_batch("SAVEPOINT sluice_mapped_members")
        .map_err(q)?;
    match write_mapped_members(conn, mm, key, write) {
        Ok(written) => {
            conn.execute_batch("RELEASE sluice_mapped_members")
                .map_err(q)?;
            Ok(written)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO sluice_mapped_members; RELEASE sluice_mapped_members")
                .map_err(q)?;
            Err(e)
        }
    }
}

fn write_mapped_members(
    conn: &Connection,
    mm: &MappedMembers,
    key: &[u8],
    write: &StoreWrite,
) -> EntryOutcome {
    let member_column = mm.as_column(&mm.member);
    let owner = to_sql(&member_column, key, key, true)?;
    let t = quote_identifier(&mm.table);
    let kc = quote_identifier(&mm.key_column);
    let mc = quote_identifier(&mm.member.name);
    let failed = |e: rusqlite::Error| {
        let mut err = classify(e, &format!("write to {}", members_mapped::describe(mm)));
        err.message = format!(
            "{} (key capture {:?})",
            err.message,
            String::from_utf8_lossy(key)
        );
        err
    };
    let plan = match members_mapped::plan_mapped_members(mm, key, write)? {
        members_mapped::MembersAction::DeleteAll => {
            conn.prepare_cached(&format!("DELETE FROM {t} WHERE {kc} = ?1"))
                .and_then(|mut st| st.execute(params![owner]))
                .map_err(failed)?;
            return Ok(Written::NOTHING);
        }
        members_mapped::MembersAction::Changes(plan) => plan,
    };
    // A replace deletes the rows whose members the new value lacks (read here, inside the
    // write's transaction); the rest are upserted below.
    let stale = if plan.replace {
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {} FROM {t} WHERE {kc} = ?1",
                column_out(&mm.member.name)
            ))
            .map_err(failed)?;
        let existing = st
            .query_map(params![owner], |r| {
                Ok(from_sql(r.get_ref(0)?).unwrap_or_default())
            })
            .map_err(failed)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        members_mapped::stale_members(existing, &plan)
    } else {
        Vec::new()
    };
    if !plan.removed.is_empty() || !stale.is_empty() {
        let mut st = conn
            .prepare_cached(&format!("DELETE FROM {t} WHERE {kc} = ?1 AND {mc} = ?2"))
            .map_err(failed)?;
        for member in plan.removed.iter().chain(&stale) {
            let m = to_sql(&member_column, member, key, false)?;
            st.execute(params![owner, m]).map_err(failed)?;
        }
    }
    if plan.present.is_empty() {
        return Ok(Written::NOTHING);
    }
    match &mm.value {
        None => {
            let mut st = conn
                .prepare_cached(&format!(
                    "INSERT INTO {t} ({kc}, {mc}) VALUES (?1, ?2) ON CONFLICT ({kc}, {mc}) DO NOTHING"
                ))
                .map_err(failed)?;
            for row in &plan.present {
                members_mapped::check_member(mm, key, &row.member)?;
                let m = to_sql(&member_column, &row.member, key, false)?;
                st.execute(params![owner, m]).map_err(failed)?;
            }
        }
        Some(column) => {
            let value_column = mm.as_column(column);
            let vc = quote_identifier(&column.name);
            let mut st = conn
                .prepare_cached(&format!(
                    "INSERT INTO {t} ({kc}, {mc}, {vc}) VALUES (?1, ?2, ?3) \
                     ON CONFLICT ({kc}, {mc}) DO UPDATE SET {vc} = excluded.{vc}"
                ))
                .map_err(failed)?;
            for row in &plan.present {
                members_mapped::check_member(mm, key, &row.member)?;
                let m = to_sql(&member_column, &row.member, key, false)?;
                let text = members_mapped::value_text(mm, key, row)?.unwrap_or_default();
                let v = to_sql(&value_column, &text, key, false)?;
                st.execute(params![owner, m, v]).map_err(failed)?;
            }
        }
    }
    Ok(Written::NOTHING)
}

/// Converts a row's key capture and the values a write sets, refusing what the columns
/// cannot hold (the error names the field).
fn row_key(r: &MappedRow, key: &[u8]) -> Result<Value, StoreError> {
    let first = r.columns.first().ok_or_else(|| {
        StoreError::permanent(format!("keyspace table {} maps no column", r.table))
    })?;
    to_sql(&r.as_column(first), key, key, true)
}

/// The mapped columns of a row as reads select them, comma-separated.
fn row_columns_out(r: &MappedRow) -> String {
    r.columns
        .iter()
        .map(|c| column_out(&c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads the image of a row from a statement whose columns are [`row_columns_out`].
fn row_image(r: &MappedRow, row: &rusqlite::Row<'_>) -> rusqlite::Result<Bytes> {
    let values = (0..r.columns.len())
        .map(|i| row.get_ref(i).map(from_sql))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows::image(r, values))
}

/// Applies one write to a mapped row, reporting the row's image afterwards.
fn apply_row(conn: &Connection, r: &MappedRow, key: &[u8], write: &StoreWrite) -> EntryOutcome {
    let k = row_key(r, key)?;
    let t = quote_identifier(&r.table);
    let kc = quote_identifier(&r.key_column);
    let failed = |e: rusqlite::Error| row_error(e, r, key);
    let set = match rows::plan_row_write(r, key, write)? {
        rows::RowAction::Delete => {
            let sql = match r.on_delete {
                OnDelete::SetNull => format!(
                    "UPDATE {t} SET {} WHERE {kc} = ?1",
                    r.columns
                        .iter()
                        .map(|c| format!("{} = NULL", quote_identifier(&c.name)))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                OnDelete::DeleteRow => format!("DELETE FROM {t} WHERE {kc} = ?1"),
            };
            return conn
                .prepare_cached(&sql)
                .and_then(|mut st| st.execute(params![k]))
                .map(|_| Written::NOTHING)
                .map_err(failed);
        }
        rows::RowAction::Set(set) => set,
    };
    let mut values = vec![k];
    for (i, v) in &set.sets {
        let col = &r.columns[*i];
        values.push(match v {
            Some(v) => to_sql(&r.as_column(col), v, key, false).map_err(|mut e| {
                e.message = format!("field {:?}: {}", col.name, e.message);
                e
            })?,
            None => Value::Null,
        });
    }
    if set.delete_first {
        conn.prepare_cached(&format!("DELETE FROM {t} WHERE {kc} = ?1"))
            .and_then(|mut st| st.execute(params![values[0]]))
            .map_err(failed)?;
    }
    let names: Vec<String> = set
        .sets
        .iter()
        .map(|(i, _)| quote_identifier(&r.columns[*i].name))
        .collect();
    let sql = if set.sets.is_empty() {
        // Nothing to change: report the row as it is.
        format!("SELECT {} FROM {t} WHERE {kc} = ?1", row_columns_out(r))
    } else if set.all_null() {
        // Only NULLs: clear the columns of an existing row, never create one.
        format!(
            "UPDATE {t} SET {} WHERE {kc} = ?1 RETURNING {}",
            names
                .iter()
                .map(|n| format!("{n} = NULL"))
                .collect::<Vec<_>>()
                .join(", "),
            row_columns_out(r)
        )
    } else {
        format!(
            "INSERT INTO {t} ({kc}, {}) VALUES ({}) ON CONFLICT ({kc}) DO UPDATE SET {} RETURNING {}",
            names.join(", "),
            (1..=values.len())
                .map(|n| format!("?{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            names
                .iter()
                .map(|n| format!("{n} = excluded.{n}"))
                .collect::<Vec<_>>()
                .join(", "),
            row_columns_out(r)
        )
    };
    let params: &[Value] = if set.sets.is_empty() || set.all_null() {
        &values[..1]
    } else {
        &values
    };
    conn.prepare_cached(&sql)
        .and_then(|mut st| {
            let mut rows = st.query(rusqlite::params_from_iter(params))?;
            match rows.next()? {
                Some(row) => row_image(r, row),
                // No row (a write of NULLs only to a missing row): the key does not exist.
                None => Ok(Bytes::new()),
            }
        })
        .map(|image| Written {
            stored: Some(image),
        })
        .map_err(failed)
}

/// `a IS NOT NULL OR b IS NOT NULL …`: the row holds a value in one of these columns.
fn not_all_null(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("{} IS NOT NULL", quote_identifier(c)))
        .collect::<Vec<_>>()
        .join(" OR ")
}

/// Applies `ops` in order in one transaction, all or nothing.
/// A member write on the built-in table (see [`members`]): the key's row, then its member rows,
/// under a savepoint, so an entry that fails part-way leaves nothing of itself in the group's
/// transaction (the other entries still commit).
fn apply_members(conn: &Connection, db: u8, key: &[u8], p: &PartialWrite) -> EntryOutcome {
    let plan = members::plan_members(key, p)?;
    let q = |e| classify(e, "savepoint for a member write");
    conn.execute_batch("SAVEPOINT sluice_members_write")
        .map_err(q)?;
    match write_members(conn, db, key, p, &plan) {
        Ok(written) => {
            conn.execute_batch("RELEASE sluice_members_write")
                .map_err(q)?;
            Ok(written)
        }
        Err(e) => {
            conn.execute_batch("ROLLBACK TO sluice_members_write; RELEASE sluice_members_write")
                .map_err(q)?;
            Err(e)
        }
    }
}

fn write_members(
    conn: &Connection,
    db: u8,
    key: &[u8],
    p: &PartialWrite,
    plan: &members::MemberChanges,
) -> EntryOutcome {
    let q = |e| classify(e, "write members into sluice_members");
    conn.prepare_cached(
        "INSERT INTO sluice_kv (db, key, value, expires_at, kind) VALUES (?1, ?2, x'', ?3, ?4) \
         ON CONFLICT (db, key) DO UPDATE SET value = excluded.value, \
         expires_at = excluded.expires_at, kind = excluded.kind",
    )
    .and_then(|mut st| {
        st.execute(params![
            db as i64,
            key,
            p.expires_at.map(|e| e as i64),
            p.kind.code() as i64
        ])
    })
    .map_err(|e| classify(e, "upsert into sluice_kv"))?;
    if plan.replace {
        conn.prepare_cached("DELETE FROM sluice_members WHERE db = ?1 AND key = ?2")
            .and_then(|mut st| st.execute(params![db as i64, key]))
            .map_err(q)?;
    }
    if !plan.removed.is_empty() {
        let mut st = conn
            .prepare_cached("DELETE FROM sluice_members WHERE db = ?1 AND key = ?2 AND member = ?3")
            .map_err(q)?;
        for member in &plan.removed {
            st.execute(params![db as i64, key, &member[..]])
                .map_err(q)?;
        }
    }
    if !plan.present.is_empty() {
        let mut st = conn
            .prepare_cached(
                "INSERT INTO sluice_members (db, key, member, score, value) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (db, key, member) \
                 DO UPDATE SET score = excluded.score, value = excluded.value",
            )
            .map_err(q)?;
        for row in &plan.present {
            st.execute(params![
                db as i64,
                key,
                &row.member[..],
                row.score,
                row.value.as_deref()
            ])
            .map_err(q)?;
        }
    }
    Ok(Written::NOTHING)
}

/// In a write transaction (which SQLite runs alone: it was begun IMMEDIATE), `Ok` unless the
/// store is fenced and its claim on the node name no longer holds ([`Store::claim_fence`]).
fn check_fence(conn: &Connection, fence: Option<&Fence>) -> Result<(), StoreError> {
    let Some(fence) = fence else {
        return Ok(());
    };
    let found = conn
        .query_row(
            "SELECT generation FROM sluice_fence WHERE node = ?1",
            [&fence.node],
            |r| r.get::<_, i64>(0),
        )
        .optional()
        .map_err(|e| fence.unreadable(classify(e, "read sluice_fence")))?;
    fence.check(found)
}

fn apply_atomic(
    conn: &mut Connection,
    ops: &[StoreOp],
    fence: Option<&Fence>,
) -> Result<Vec<Written>, AtomicFailure> {
    let whole = |error| AtomicFailure { index: None, error };
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| whole(classify(e, "begin transaction")))?;
    check_fence(&tx, fence).map_err(whole)?;
    let mut written = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        match apply_op(&tx, op) {
            Ok(w) => written.push(w),
            // Dropping the transaction rolls it back: nothing of the batch stays.
            Err(error) => {
                return Err(AtomicFailure {
                    index: Some(i),
                    error,
                })
            }
        }
    }
    tx.commit().map_err(|e| whole(classify(e, "commit")))?;
    Ok(written)
}

fn row_error(e: rusqlite::Error, r: &MappedRow, key: &[u8]) -> StoreError {
    let mut err = classify(e, &format!("write to a row of {}", r.table));
    err.message = format!(
        "{} (key capture {:?})",
        err.message,
        String::from_utf8_lossy(key)
    );
    err
}

/// A mapped value column as reads select it: a REAL in SQLite's own text form, anything else
/// as stored.
fn mapped_value_out(m: &MappedTable) -> String {
    column_out(&m.value_column)
}

/// A column as reads select it: a REAL in SQLite's own text form, anything else as stored.
fn column_out(name: &str) -> String {
    format!(
        "CASE WHEN typeof({v}) = 'real' THEN CAST({v} AS TEXT) ELSE {v} END",
        v = quote_identifier(name)
    )
}

/// Converts bytes to the SQLite value the column's type calls for, refusing what it cannot hold.
fn to_sql(m: &MappedTable, bytes: &[u8], key: &[u8], is_key: bool) -> Result<Value, StoreError> {
    let (kind, column, what) = m.conversion_target(is_key);
    let fail = || conversion_error(what, bytes, key, m, column, kind);
    Ok(match kind {
        ColumnType::Integer => Value::Integer(parse_strict_i64(bytes).ok_or_else(fail)?),
        ColumnType::Real => Value::Real(parse_finite_f64(bytes).ok_or_else(fail)?),
        ColumnType::Numeric => match parse_strict_i64(bytes) {
            Some(i) => Value::Integer(i),
            None => Value::Real(parse_finite_f64(bytes).ok_or_else(fail)?),
        },
        ColumnType::Boolean => Value::Integer(parse_bool(bytes).ok_or_else(fail)? as i64),
        ColumnType::Text | ColumnType::Json | ColumnType::Timestamp => {
            Value::Text(std::str::from_utf8(bytes).map_err(|_| fail())?.to_string())
        }
        ColumnType::Blob => Value::Blob(bytes.to_vec()),
    })
}

/// Renders a column value as the text a Redis client expects: SQLite's own text form.
fn from_sql(v: ValueRef<'_>) -> Option<Bytes> {
    match v {
        ValueRef::Null => None,
        ValueRef::Integer(i) => Some(Bytes::from(i.to_string())),
        ValueRef::Real(r) => Some(Bytes::from(sqlite_real_text(r))),
        ValueRef::Text(t) => Some(Bytes::copy_from_slice(t)),
        ValueRef::Blob(b) => Some(Bytes::copy_from_slice(b)),
    }
}

/// Fallback for a REAL that reached us unconverted; queries cast REALs to SQLite's own text
/// form (`%!.15g`) so this is rarely used.
fn sqlite_real_text(r: f64) -> String {
    let mut s = format!("{}", r);
    if r.is_finite() && r == r.trunc() && r.abs() < 1e15 && !s.contains('.') {
        s.push_str(".0");
    }
    s
}

fn sqlite_kind(declared: &str) -> ColumnType {
    let d = declared.to_ascii_uppercase();
    if d.contains("BOOL") {
        ColumnType::Boolean
    } else if d.contains("JSON") {
        ColumnType::Json
    } else if d.contains("INT") {
        ColumnType::Integer
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        ColumnType::Text
    } else if d.contains("BLOB") || d.is_empty() {
        ColumnType::Blob
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        ColumnType::Real
    } else if d.contains("DATE") || d.contains("TIME") {
        ColumnType::Timestamp
    } else {
        ColumnType::Numeric
    }
}

/// Classifies a rusqlite error, which becomes the source of the result: busy, locked, I/O,
/// full disk, out of memory are transient, anything else permanent.
fn classify(e: rusqlite::Error, doing: &str) -> StoreError {
    let msg = format!("SQLite {doing}: {e}");
    let error = match &e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::DiskFull
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed => StoreError::transient(msg),
            _ => StoreError::permanent(msg),
        },
        _ => StoreError::permanent(msg),
    };
    error.with_source(e)
}

fn mapped_error(e: rusqlite::Error, m: &MappedTable, key: &[u8]) -> StoreError {
    let mut err = classify(e, &format!("write to {}.{}", m.table, m.value_column));
    err.message = format!(
        "{} (key capture {:?})",
        err.message,
        String::from_utf8_lossy(key)
    );
    err
}

#[async_trait]
impl Store for SqliteStore {
    fn describe(&self) -> String {
        format!("sqlite://{}", self.path.display())
    }

    async fn ensure_builtin_table(&self) -> Result<(), StoreError> {
        self.on_writer(|conn| {
            let q = |e| classify(e, "create table sluice_kv");
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS sluice_kv (
                    db INTEGER NOT NULL,
                    key BLOB NOT NULL,
                    value BLOB NOT NULL,
                    expires_at INTEGER,
                    kind INTEGER NOT NULL DEFAULT 0,
                    PRIMARY KEY (db, key)
                ) WITHOUT ROWID;
                CREATE INDEX IF NOT EXISTS sluice_kv_expires_at
                    ON sluice_kv (expires_at) WHERE expires_at IS NOT NULL;",
            )
            .map_err(q)?;
            // A collection's members (see `members.rs`), removed by the database with their
            // key's row, or when the row is rewritten as a kind that has no member rows.
            conn.execute_batch(&format!(
                "CREATE TABLE IF NOT EXISTS sluice_members (
                    db INTEGER NOT NULL,
                    key BLOB NOT NULL,
                    member BLOB NOT NULL,
                    score REAL,
                    value BLOB,
                    PRIMARY KEY (db, key, member)
                ) WITHOUT ROWID;
                CREATE TRIGGER IF NOT EXISTS sluice_kv_delete_members AFTER DELETE ON sluice_kv
                    WHEN OLD.kind >= {first}
                BEGIN
                    DELETE FROM sluice_members WHERE db = OLD.db AND key = OLD.key;
                END;
                CREATE TRIGGER IF NOT EXISTS sluice_kv_retype_members AFTER UPDATE OF kind ON sluice_kv
                    WHEN OLD.kind >= {first} AND NEW.kind <> OLD.kind
                BEGIN
                    DELETE FROM sluice_members WHERE db = OLD.db AND key = OLD.key;
                END;",
                first = members::FIRST_MEMBER_KIND
            ))
            .map_err(|e| classify(e, "create table sluice_members"))?;
            // A table made before values had types has no kind column: every row in it is a
            // string, which the default says. The writer thread is the only writer, so no
            // other connection of this process can race the check.
            let has_kind = conn
                .prepare("SELECT 1 FROM pragma_table_info('sluice_kv') WHERE name = 'kind'")
                .and_then(|mut st| st.exists([]))
                .map_err(q)?;
            if !has_kind {
                conn.execute_batch(
                    "ALTER TABLE sluice_kv ADD COLUMN kind INTEGER NOT NULL DEFAULT 0",
                )
                .map_err(|e| classify(e, "add column kind to sluice_kv"))?;
            }
            Ok(())
        })
        .await
    }

    async fn claim_fence(&self, node: &str) -> Result<i64, StoreError> {
        self.fence.unclaimed(node)?;
        let name = node.to_string();
        let generation = self
            .on_writer(move |conn| {
                let q = |e| classify(e, "claim the node's name in sluice_fence");
                let tx = conn
                    .transaction_with_behavior(TransactionBehavior::Immediate)
                    .map_err(q)?;
                tx.execute_batch(
                    "CREATE TABLE IF NOT EXISTS sluice_fence (
                        node TEXT PRIMARY KEY,
                        generation INTEGER NOT NULL
                    )",
                )
                .map_err(q)?;
                let generation = tx
                    .query_row(
                        "INSERT INTO sluice_fence (node, generation) VALUES (?1, 1) \
                         ON CONFLICT (node) DO UPDATE SET generation = generation + 1 \
                         RETURNING generation",
                        [&name],
                        |r| r.get::<_, i64>(0),
                    )
                    .map_err(q)?;
                tx.commit().map_err(q)?;
                Ok(generation)
            })
            .await?;
        self.fence.keep(node, generation)
    }

    async fn journal_mark(&self, claim: Option<&str>) -> Result<Option<String>, StoreError> {
        let claim = claim.map(str::to_string);
        self.on_writer(move |conn| {
            let q = |e| classify(e, "read or record the journal mark");
            match &claim {
                None => {
                    let exists: bool = conn
                        .query_row(
                            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sluice_journal')",
                            [],
                            |r| r.get(0),
                        )
                        .map_err(q)?;
                    if !exists {
                        return Ok(None);
                    }
                }
                Some(claim) => {
                    conn.execute_batch(
                        "CREATE TABLE IF NOT EXISTS sluice_journal (
                            id INTEGER PRIMARY KEY CHECK (id = 1),
                            mark TEXT NOT NULL
                        )",
                    )
                    .map_err(q)?;
                    conn.execute(
                        "INSERT INTO sluice_journal (id, mark) VALUES (1, ?1) ON CONFLICT (id) DO NOTHING",
                        [claim],
                    )
                    .map_err(q)?;
                }
            }
            conn.query_row("SELECT mark FROM sluice_journal WHERE id = 1", [], |r| {
                r.get::<_, String>(0)
            })
            .optional()
            .map_err(q)
        })
        .await
    }

    async fn table_schema(&self, table: &str) -> Result<Option<TableSchema>, StoreError> {
        let table = table.to_string();
        self.on_reader(move |conn| {
            let (schema, name) = match table.split_once('.') {
                Some((s, t)) => (format!("{}.", quote_identifier(s)), t.to_string()),
                None => (String::new(), table.clone()),
            };
            let q = |e: rusqlite::Error| classify(e, "read table schema");
            let mut st = conn
                .prepare(&format!(
                    "PRAGMA {schema}table_info({})",
                    quote_identifier(&name)
                ))
                .map_err(q)?;
            let mut columns = Vec::new();
            let mut pk = Vec::new();
            let mut rows = st.query([]).map_err(q)?;
            while let Some(row) = rows.next().map_err(q)? {
                let col: String = row.get(1).map_err(q)?;
                let decl: String = row.get(2).map_err(q)?;
                let pk_pos: i64 = row.get(5).map_err(q)?;
                if pk_pos > 0 {
                    pk.push(col.clone());
                }
                columns.push(ColumnInfo {
                    kind: sqlite_kind(&decl),
                    name: col,
                    declared_type: decl,
                });
            }
            if columns.is_empty() {
                return Ok(None);
            }
            let mut unique_columns = Vec::new();
            let mut unique_keys = Vec::new();
            if pk.len() == 1 {
                unique_columns.push(pk[0].clone());
            }
            if !pk.is_empty() {
                unique_keys.push(pk.clone());
            }
            let mut st = conn
                .prepare(&format!(
                    "PRAGMA {schema}index_list({})",
                    quote_identifier(&name)
                ))
                .map_err(q)?;
            // (name, unique, partial): a partial index cannot be an ON CONFLICT target.
            let indexes: Vec<(String, bool, bool)> = st
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)? == 1,
                        r.get::<_, i64>(4)? == 1,
                    ))
                })
                .map_err(q)?
                .collect::<Result<_, _>>()
                .map_err(q)?;
            for (index, unique, partial) in indexes {
                if !unique {
                    continue;
                }
                let mut st = conn
                    .prepare(&format!(
                        "PRAGMA {schema}index_info({})",
                        quote_identifier(&index)
                    ))
                    .map_err(q)?;
                let cols: Vec<String> = st
                    .query_map([], |r| r.get::<_, String>(2))
                    .map_err(q)?
                    .collect::<Result<_, _>>()
                    .map_err(q)?;
                if cols.len() == 1 {
                    unique_columns.push(cols[0].clone());
                }
                if !partial {
                    unique_keys.push(cols);
                }
            }
            Ok(Some(TableSchema {
                columns,
                unique_columns,
                unique_keys,
            }))
        })
        .await
    }

    fn check(
        &self,
        target: &Target,
        key: &[u8],
        write: Option<&StoreWrite>,
    ) -> Result<(), StoreError> {
        match (target, write) {
            (Target::Row(r), write) => rows::check_row(r, key, write, |m, bytes, is_key| {
                to_sql(m, bytes, key, is_key).map(drop)
            }),
            (Target::Members(mm), write) => {
                members_mapped::check_mapped_members(mm, key, write, |m, bytes, is_key| {
                    to_sql(m, bytes, key, is_key).map(drop)
                })
            }
            (Target::Builtin { .. }, Some(w)) if members::member_write(target, w).is_some() => {
                Ok(())
            }
            (target, Some(StoreWrite::Partial(_))) => Err(super::fields_need_a_row(target, key)),
            (Target::Builtin { .. }, _) => Ok(()),
            (Target::Mapped(m), write) => super::check_column(m, key, write, |bytes, is_key| {
                to_sql(m, bytes, key, is_key).map(drop)
            }),
        }
    }

    async fn read(&self, target: &Target, key: &[u8]) -> Result<Option<StoredValue>, StoreError> {
        let target = target.clone();
        let key = key.to_vec();
        self.on_reader(move |conn| match &target {
            Target::Builtin { db } => {
                // One snapshot for the key's row and its member rows.
                let tx = conn
                    .unchecked_transaction()
                    .map_err(|e| classify(e, "begin read of sluice_kv"))?;
                let conn = &*tx;
                let mut st = conn
                    .prepare_cached(
                        "SELECT value, expires_at, kind FROM sluice_kv WHERE db = ?1 AND key = ?2",
                    )
                    .map_err(|e| classify(e, "read sluice_kv"))?;
                let mut rows = st
                    .query(params![*db as i64, &key[..]])
                    .map_err(|e| classify(e, "read sluice_kv"))?;
                match rows.next().map_err(|e| classify(e, "read sluice_kv"))? {
                    None => Ok(None),
                    Some(row) => {
                        let value = row
                            .get_ref(0)
                            .map(from_sql)
                            .map_err(|e| classify(e, "read sluice_kv"))?;
                        let expires_at: Option<i64> =
                            row.get(1).map_err(|e| classify(e, "read sluice_kv"))?;
                        let kind: i64 = row.get(2).map_err(|e| classify(e, "read sluice_kv"))?;
                        let kind = super::kind_from_stored(kind, &key)?;
                        if kind.stored_by_member() {
                            let q = |e| classify(e, "read sluice_members");
                            let mut st = conn
                                .prepare_cached(
                                    "SELECT member, score, value FROM sluice_members \
                                     WHERE db = ?1 AND key = ?2",
                                )
                                .map_err(q)?;
                            let found = st
                                .query_map(params![*db as i64, &key[..]], |r| {
                                    Ok(members::MemberRow {
                                        member: r.get::<_, Vec<u8>>(0).map(Bytes::from)?,
                                        score: r.get::<_, Option<f64>>(1)?,
                                        value: r.get::<_, Option<Vec<u8>>>(2)?.map(Bytes::from),
                                    })
                                })
                                .map_err(q)?
                                .collect::<Result<Vec<_>, _>>()
                                .map_err(q)?;
                            // A key's row with no member left is an empty collection: absent.
                            if found.is_empty() {
                                return Ok(None);
                            }
                            return Ok(Some(StoredValue {
                                kind,
                                value: members::image_of(kind, found),
                                expires_at: expires_at.map(|e| e.max(0) as u64),
                            }));
                        }
                        Ok(value.map(|value| StoredValue {
                            kind,
                            value,
                            expires_at: expires_at.map(|e| e.max(0) as u64),
                        }))
                    }
                }
            }
            Target::Row(r) => {
                let k = row_key(r, &key)?;
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} = ?1",
                    row_columns_out(r),
                    quote_identifier(&r.table),
                    quote_identifier(&r.key_column),
                );
                let q = |e| row_error(e, r, &key);
                let mut st = conn.prepare_cached(&sql).map_err(q)?;
                let mut found = st.query(params![k]).map_err(q)?;
                match found.next().map_err(q)? {
                    None => Ok(None),
                    Some(row) => Ok(rows::stored_value(row_image(r, row).map_err(q)?)),
                }
            }
            Target::Members(mm) => {
                let k = to_sql(&mm.as_column(&mm.member), &key, &key, true)?;
                let beside = match &mm.value {
                    Some(s) => column_out(&s.name),
                    None => "NULL".to_string(),
                };
                let sql = format!(
                    "SELECT {m}, {beside} FROM {t} WHERE {k} = ?1",
                    m = column_out(&mm.member.name),
                    t = quote_identifier(&mm.table),
                    k = quote_identifier(&mm.key_column),
                );
                let q = |e| classify(e, &format!("read {}", members_mapped::describe(mm)));
                let mut st = conn.prepare_cached(&sql).map_err(q)?;
                let found = st
                    .query_map(params![k], |r| {
                        Ok((
                            from_sql(r.get_ref(0)?).unwrap_or_default(),
                            from_sql(r.get_ref(1)?),
                        ))
                    })
                    .map_err(q)?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(q)?;
                members_mapped::image_from_rows(mm, &key, found)
            }
            Target::Mapped(m) => {
                let k = to_sql(m, &key, &key, true)?;
                let sql = format!(
                    "SELECT {v} FROM {t} WHERE {k} = ?1",
                    t = quote_identifier(&m.table),
                    k = quote_identifier(&m.key_column),
                    v = mapped_value_out(m),
                );
                let mut st = conn
                    .prepare_cached(&sql)
                    .map_err(|e| mapped_error(e, m, &key))?;
                let mut rows = st.query(params![k]).map_err(|e| mapped_error(e, m, &key))?;
                match rows.next().map_err(|e| mapped_error(e, m, &key))? {
                    None => Ok(None),
                    Some(row) => Ok(row
                        .get_ref(0)
                        .map(from_sql)
                        .map_err(|e| mapped_error(e, m, &key))?
                        .map(|value| StoredValue {
                            kind: crate::model::Kind::String,
                            value,
                            expires_at: None,
                        })),
                }
            }
        })
        .await
    }

    async fn write_batch(&self, ops: Vec<StoreOp>) -> Result<BatchOutcome, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, rx) = oneshot::channel();
        self.writer
            .send(WriterJob::Batch { ops, reply })
            .map_err(|_| StoreError::transient("SQLite writer thread has stopped"))?;
        rx.await
            .map_err(|_| StoreError::transient("SQLite writer dropped the batch"))?
    }

    async fn write_atomic(&self, ops: Vec<StoreOp>) -> Result<Vec<Written>, AtomicFailure> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let whole = |error| AtomicFailure { index: None, error };
        // On the writer thread, between group commits: its own transaction, never shared with
        // another batch, so rolling it back undoes only these entries.
        let fence = self.fence.clone();
        self.on_writer(move |conn| Ok(apply_atomic(conn, &ops, fence.get())))
            .await
            .map_err(whole)?
    }

    async fn scan_keys(&self, target: &Target, now_ms: u64) -> Result<Vec<Bytes>, StoreError> {
        let target = target.clone();
        self.on_reader(move |conn| {
            let q = |e: rusqlite::Error| classify(e, "scan keys");
            match &target {
                Target::Builtin { db } => {
                    let mut st = conn
                        .prepare_cached(
                            "SELECT key FROM sluice_kv WHERE db = ?1 AND (expires_at IS NULL OR expires_at >= ?2)",
                        )
                        .map_err(q)?;
                    let keys = st
                        .query_map(params![*db as i64, now_ms as i64], |r| {
                            Ok(from_sql(r.get_ref(0)?).unwrap_or_default())
                        })
                        .map_err(q)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(q)?;
                    Ok(keys)
                }
                Target::Mapped(_) | Target::Row(_) | Target::Members(_) => {
                    let Some((table, key_column, columns)) = target.mapped_columns() else {
                        return Ok(Vec::new());
                    };
                    let sql = format!(
                        "SELECT DISTINCT {} FROM {} WHERE {}",
                        column_out(key_column),
                        quote_identifier(table),
                        not_all_null(&columns),
                    );
                    let mut st = conn.prepare_cached(&sql).map_err(q)?;
                    let keys = st
                        .query_map([], |r| Ok(from_sql(r.get_ref(0)?)))
                        .map_err(q)?
                        .filter_map(|r| r.transpose())
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(q)?;
                    Ok(keys)
                }
            }
        })
        .await
    }

    async fn clear(&self, target: &Target) -> Result<(), StoreError> {
        let target = target.clone();
        self.on_writer(move |conn| {
            match &target {
                Target::Builtin { db } => conn
                    .execute("DELETE FROM sluice_kv WHERE db = ?1", params![*db as i64])
                    .map(drop),
                Target::Row(r) => match r.on_delete {
                    OnDelete::SetNull => {
                        let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
                        conn.execute(
                            &format!(
                                "UPDATE {} SET {} WHERE {}",
                                quote_identifier(&r.table),
                                names
                                    .iter()
                                    .map(|n| format!("{} = NULL", quote_identifier(n)))
                                    .collect::<Vec<_>>()
                                    .join(", "),
                                not_all_null(&names)
                            ),
                            [],
                        )
                        .map(drop)
                    }
                    OnDelete::DeleteRow => conn
                        .execute(&format!("DELETE FROM {}", quote_identifier(&r.table)), [])
                        .map(drop),
                },
                Target::Mapped(m) => conn
                    .execute(&format!("DELETE FROM {}", quote_identifier(&m.table)), [])
                    .map(drop),
                Target::Members(mm) => conn
                    .execute(&format!("DELETE FROM {}", quote_identifier(&mm.table)), [])
                    .map(drop),
            }
            .map_err(|e| classify(e, "clear"))
        })
        .await
    }

    async fn purge_expired(&self, now_ms: u64, limit: usize) -> Result<Vec<DbKey>, StoreError> {
        // Look first on a reader: the writer (and its write lock) is taken only when there is
        // something to remove, so an idle reaper never delays flushes.
        let any_expired = self
            .on_reader(move |conn| {
                conn.prepare_cached("SELECT 1 FROM sluice_kv WHERE expires_at < ?1 LIMIT 1")
                    .and_then(|mut st| st.exists(params![now_ms as i64]))
                    .map_err(|e| classify(e, "look for expired keys"))
            })
            .await?;
        if !any_expired {
            return Ok(Vec::new());
        }
        self.on_writer(move |conn| {
            let purge = || -> rusqlite::Result<Vec<DbKey>> {
                let mut st = conn.prepare_cached(
                    "DELETE FROM sluice_kv WHERE (db, key) IN \
                     (SELECT db, key FROM sluice_kv WHERE expires_at < ?1 LIMIT ?2) \
                     RETURNING db, key",
                )?;
                let rows = st.query_map(params![now_ms as i64, limit as i64], |row| {
                    Ok(DbKey {
                        db: row.get::<_, i64>(0)? as u8,
                        key: Bytes::from(row.get::<_, Vec<u8>>(1)?),
                    })
                })?;
                rows.collect()
            };
            purge().map_err(|e| classify(e, "purge expired keys"))
        })
        .await
    }

    async fn delete_if_expired(&self, db: u8, key: &[u8], now_ms: u64) -> Result<bool, StoreError> {
        let key = key.to_vec();
        self.on_writer(move |conn| {
            conn.prepare_cached(
                "DELETE FROM sluice_kv WHERE db = ?1 AND key = ?2 AND expires_at < ?3",
            )
            .and_then(|mut st| st.execute(params![db as i64, &key[..], now_ms as i64]))
            .map(|deleted| deleted > 0)
            .map_err(|e| classify(e, "delete expired key"))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn affinity_rules() {
        assert_eq!(sqlite_kind("INTEGER"), ColumnType::Integer);
        assert_eq!(sqlite_kind("BIGINT"), ColumnType::Integer);
        assert_eq!(sqlite_kind("VARCHAR(20)"), ColumnType::Text);
        assert_eq!(sqlite_kind(""), ColumnType::Blob);
        assert_eq!(sqlite_kind("DOUBLE PRECISION"), ColumnType::Real);
        assert_eq!(sqlite_kind("DECIMAL(10,2)"), ColumnType::Numeric);
        assert_eq!(sqlite_kind("BOOLEAN"), ColumnType::Boolean);
    }

    #[test]
    fn real_text_form() {
        assert_eq!(sqlite_real_text(7.5), "7.5");
        assert_eq!(sqlite_real_text(3.0), "3.0");
        assert_eq!(sqlite_real_text(-0.25), "-0.25");
    }
}
