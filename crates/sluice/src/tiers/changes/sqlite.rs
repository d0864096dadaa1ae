//! SQLite change capture: other connections (another process, `sqlite3` in a shell, a second
//! Sluice node) writing the same database file.
//!
//! SQLite has no replication stream, so the stream is a table: triggers on each watched table
//! append the key of every inserted, updated or deleted row to `sluice_changes`, in the same
//! transaction as the change (so a rolled-back change records nothing, and the sequence is
//! the commit order: SQLite has one writer at a time, and a new row's rowid is the largest
//! plus one, which trimming never deletes). The feed asks `PRAGMA data_version` (which moves when another connection commits,
//! and costs no disk read) every poll interval and reads the new rows only when it moved. Each
//! node keeps its position in `sluice_change_cursors`; rows every node has confirmed are
//! deleted.
//!
//! The stream is lost when rows a node has not read are gone (deleted by hand, or the table
//! dropped and recreated) or when a trigger is gone (a changed row may have recorded nothing):
//! the feed reinstalls what is missing and reports the loss.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{ChangeBatch, ChangeError, ChangeFeed, FeedStatus, RowChange, WatchedTable};

/// The change table; its rows are the stream.
const CHANGES: &str = "sluice_changes";
/// Each node's confirmed position.
const CURSORS: &str = "sluice_change_cursors";
/// Trigger names start with this, then the table, then the event.
const TRIGGER_PREFIX: &str = "sluice_changes_";
/// The time of the change, in Unix ms, as SQLite computes it inside the trigger.
const NOW_MS: &str = "CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)";
/// How often the confirmed position is written to the cursor row and the rows every node
/// has applied are deleted: not at every confirm, which would add a write transaction (and
/// its sync) to each applied batch, competing with Sluice's own writes for SQLite's one write
/// lock. A crash re-applies at most this much, which is harmless (a refresh is idempotent).
const PERSIST_EVERY: Duration = Duration::from_secs(1);

/// Follows the changes of the watched tables of one SQLite file.
pub struct SqliteChangeFeed {
    path: PathBuf,
    poll: Duration,
    inner: Arc<Mutex<Inner>>,
}

/// A row of the change table: sequence number, table, key (NULL: none), time recorded.
type ChangeRow = (u64, String, Option<Bytes>, Option<i64>);

struct Inner {
    conn: Connection,
    node: String,
    tables: Vec<WatchedTable>,
    /// The last sequence number delivered.
    delivered: u64,
    /// The last sequence number confirmed.
    confirmed: u64,
    /// `PRAGMA data_version` when the rows were last read; `None`: read them now.
    data_version: Option<i64>,
    /// `PRAGMA schema_version` when the triggers were last checked: they are looked for
    /// again only when the schema changed.
    schema_version: Option<i64>,
    /// The position last written to this node's cursor row.
    persisted: u64,
    last_persist: Instant,
    /// Why the stream broke, found at open: reported with the first batch.
    lost_at_open: Option<String>,
}

fn db_error(what: impl Into<String>) -> impl FnOnce(rusqlite::Error) -> ChangeError {
    let what = what.into();
    move |e| ChangeError::Database {
        backend: "SQLite",
        what,
        source: Box::new(e),
    }
}

/// `"schema"."name"` for a validated identifier, and the bare table name a trigger is
/// created on (a trigger lives in its table's schema, named without it).
fn split_table(table: &str) -> (Option<&str>, &str) {
    match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    }
}

fn trigger_name(table: &str, event: &str) -> String {
    format!("{TRIGGER_PREFIX}{}_{event}", table.replace('.', "_"))
}

/// The statements that create the change table, the cursor table and the triggers of
/// `tables` where missing.
fn install_sql(tables: &[WatchedTable]) -> String {
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS {CHANGES} (seq INTEGER PRIMARY KEY, tbl TEXT NOT NULL, key, at_ms INTEGER NOT NULL);\n\
         CREATE TABLE IF NOT EXISTS {CURSORS} (node TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_ms INTEGER NOT NULL);\n"
    );
    for t in tables {
        let (schema, name) = split_table(&t.table);
        let prefix = schema.map(|s| format!("\"{s}\".")).unwrap_or_default();
        let key = format!("\"{}\"", t.key_column);
        let literal = &t.table;
        let record = |row: &str| {
            format!("INSERT INTO {CHANGES}(tbl, key, at_ms) VALUES ('{literal}', {row}.{key}, {NOW_MS});")
        };
        sql.push_str(&format!(
            "CREATE TRIGGER IF NOT EXISTS {prefix}\"{}\" AFTER INSERT ON \"{name}\" BEGIN {} END;\n",
            trigger_name(&t.table, "insert"),
            record("NEW")
        ));
        sql.push_str(&format!(
            "CREATE TRIGGER IF NOT EXISTS {prefix}\"{}\" AFTER UPDATE ON \"{name}\" BEGIN {} \
             INSERT INTO {CHANGES}(tbl, key, at_ms) SELECT '{literal}', OLD.{key}, {NOW_MS} WHERE OLD.{key} IS NOT NEW.{key}; END;\n",
            trigger_name(&t.table, "update"),
            record("NEW")
        ));
        sql.push_str(&format!(
            "CREATE TRIGGER IF NOT EXISTS {prefix}\"{}\" AFTER DELETE ON \"{name}\" BEGIN {} END;\n",
            trigger_name(&t.table, "delete"),
            record("OLD")
        ));
    }
    sql
}

/// The last sequence number handed out (0 when none). Trimming never deletes the newest row,
/// so a new row always gets a larger number than every earlier one (SQLite gives a new row
/// the largest rowid plus one) without `AUTOINCREMENT`, whose `sqlite_sequence` update would
/// add a write to every recorded change.
fn head(conn: &Connection) -> Result<u64, ChangeError> {
    let seq: Option<i64> = conn
        .query_row(&format!("SELECT max(seq) FROM {CHANGES}"), [], |r| r.get(0))
        .map_err(db_error("reading the newest change"))?;
    Ok(seq.unwrap_or(0).max(0) as u64)
}

/// The tables among `tables` some of whose triggers are missing.
fn missing_triggers(
    conn: &Connection,
    tables: &[WatchedTable],
) -> Result<Vec<String>, ChangeError> {
    let mut missing = Vec::new();
    for t in tables {
        let (schema, _) = split_table(&t.table);
        let master = match schema {
            Some(s) => format!("\"{s}\".sqlite_master"),
            None => "sqlite_master".to_string(),
        };
        let names = ["insert", "update", "delete"].map(|e| trigger_name(&t.table, e));
        let found: i64 = conn
            .query_row(
                &format!(
                    "SELECT count(*) FROM {master} WHERE type = 'trigger' AND name IN (?1, ?2, ?3)"
                ),
                params![names[0], names[1], names[2]],
                |r| r.get(0),
            )
            .map_err(db_error("looking for the change triggers"))?;
        if found != 3 {
            missing.push(t.table.clone());
        }
    }
    Ok(missing)
}

/// Whether the table `name` exists.
fn table_exists(conn: &Connection, name: &str) -> Result<bool, ChangeError> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
    .map_err(db_error(format!("looking for the table {name}")))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Inner {
    /// Creates what is missing, in one transaction.
    fn install(&mut self) -> Result<(), ChangeError> {
        let sql = install_sql(&self.tables);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error("starting the set-up transaction"))?;
        tx.execute_batch(&sql).map_err(|e| {
            ChangeError::Unsupported(format!(
                "creating the change table and triggers failed ({e}); each watched table must be a table (not a view) the file's owner can alter"
            ))
        })?;
        tx.commit().map_err(db_error("committing the set-up"))
    }

    /// Reads the node's cursor (creating it at the head), and says whether rows after it are
    /// gone.
    fn open_cursor(&mut self) -> Result<(), ChangeError> {
        let head = head(&self.conn)?;
        let cursor: Option<i64> = self
            .conn
            .query_row(
                &format!("SELECT seq FROM {CURSORS} WHERE node = ?1"),
                [&self.node],
                |r| r.get(0),
            )
            .optional()
            .map_err(db_error("reading this node's change cursor"))?;
        let start = match cursor {
            None => head,
            Some(c) => {
                let c = c.max(0) as u64;
                if head < c {
                    self.lost_at_open = Some(format!(
                        "the change table was recreated while this node was away (its position {c} is past the newest change {head})"
                    ));
                    head
                } else if self.gap_after(c)? {
                    self.lost_at_open = Some(format!(
                        "changes after this node's position {c} were deleted before it read them"
                    ));
                    head
                } else {
                    c
                }
            }
        };
        self.conn
            .execute(
                &format!(
                    "INSERT INTO {CURSORS}(node, seq, updated_ms) VALUES (?1, ?2, ?3) \
                     ON CONFLICT(node) DO UPDATE SET seq = excluded.seq, updated_ms = excluded.updated_ms"
                ),
                params![self.node, start as i64, now_ms()],
            )
            .map_err(db_error("writing this node's change cursor"))?;
        self.delivered = start;
        self.confirmed = start;
        self.persisted = start;
        Ok(())
    }

    /// Whether rows after `position` were handed out and are no longer there.
    fn gap_after(&self, position: u64) -> Result<bool, ChangeError> {
        let first: Option<i64> = self
            .conn
            .query_row(
                &format!("SELECT min(seq) FROM {CHANGES} WHERE seq > ?1"),
                [position as i64],
                |r| r.get(0),
            )
            .map_err(db_error("reading the change table"))?;
        let head = head(&self.conn)?;
        Ok(match first {
            Some(first) => first as u64 != position + 1,
            None => head > position,
        })
    }

    /// The changes after the last delivered one, if another connection committed since the
    /// last look (or rows were left over), at most `limit`.
    fn poll(&mut self, limit: usize) -> Result<Option<ChangeBatch>, ChangeError> {
        let version: i64 = self
            .conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(db_error("reading PRAGMA data_version"))?;
        let mut lost = self.lost_at_open.take();
        if lost.is_none() && self.data_version == Some(version) {
            return Ok(None);
        }
        self.data_version = Some(version);
        let schema: i64 = self
            .conn
            .query_row("PRAGMA schema_version", [], |r| r.get(0))
            .map_err(db_error("reading PRAGMA schema_version"))?;
        let (table_exists, missing) = if self.schema_version == Some(schema) {
            (true, Vec::new())
        } else {
            let exists = table_exists(&self.conn, CHANGES)?;
            let missing = if exists {
                missing_triggers(&self.conn, &self.tables)?
            } else {
                Vec::new()
            };
            (exists, missing)
        };
        if !table_exists || !missing.is_empty() {
            self.install()?;
            let why = if table_exists {
                format!("the change triggers of {} were dropped", missing.join(", "))
            } else {
                format!("the change table {CHANGES} was dropped")
            };
            lost.get_or_insert(why);
            // Start after everything recorded so far: the caches are cleared anyway.
            self.delivered = head(&self.conn)?;
        }
        self.schema_version = Some(
            self.conn
                .query_row("PRAGMA schema_version", [], |r| r.get(0))
                .map_err(db_error("reading PRAGMA schema_version"))?,
        );
        // The rows and the newest sequence number from one snapshot: a commit between two
        // separate reads would look like rows gone missing.
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .map_err(db_error("starting a read of the change table"))?;
        let read = self.read_rows(limit);
        let _ = self.conn.execute_batch("COMMIT");
        let (rows, head_now) = read?;
        match rows.first() {
            Some((first, ..)) if *first != self.delivered + 1 => {
                lost.get_or_insert(format!(
                    "changes {}..{} were deleted before this node read them",
                    self.delivered + 1,
                    first - 1
                ));
            }
            None if head_now > self.delivered => {
                lost.get_or_insert(format!(
                    "changes {}..{head_now} were deleted before this node read them",
                    self.delivered + 1
                ));
                self.delivered = head_now;
            }
            None if head_now < self.delivered => {
                lost.get_or_insert(
                    "the change table was recreated (its sequence went back)".to_string(),
                );
                self.delivered = head_now;
            }
            _ => {}
        }
        if rows.len() == limit {
            // More may wait: look again without waiting for another commit.
            self.data_version = None;
        }
        if let Some((last, ..)) = rows.last() {
            self.delivered = *last;
        }
        if rows.is_empty() && lost.is_none() {
            return Ok(None);
        }
        let changes = rows
            .into_iter()
            .filter_map(|(_, table, key, at)| {
                Some(RowChange {
                    table,
                    key: key?,
                    recorded_at_ms: at.map(|a| a.max(0) as u64),
                    row: None,
                })
            })
            .collect();
        Ok(Some(ChangeBatch {
            changes,
            position: self.delivered,
            lost,
        }))
    }

    /// The changes after the last delivered one, at most `limit`, and the newest sequence
    /// number handed out.
    fn read_rows(&self, limit: usize) -> Result<(Vec<ChangeRow>, u64), ChangeError> {
        let mut stmt = self
            .conn
            .prepare_cached(&format!(
                "SELECT seq, tbl, key, at_ms FROM {CHANGES} WHERE seq > ?1 ORDER BY seq LIMIT ?2"
            ))
            .map_err(db_error("reading the change table"))?;
        let rows = stmt
            .query_map(params![self.delivered as i64, limit as i64], |r| {
                let seq: i64 = r.get(0)?;
                let table: String = r.get(1)?;
                let key = match r.get_ref(2)? {
                    ValueRef::Null => None,
                    ValueRef::Integer(i) => Some(Bytes::from(i.to_string())),
                    ValueRef::Real(f) => Some(Bytes::from(f.to_string())),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Some(Bytes::copy_from_slice(t)),
                };
                let at: Option<i64> = r.get(3)?;
                Ok((seq.max(0) as u64, table, key, at))
            })
            .map_err(db_error("reading the change table"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db_error("reading the change table"))?;
        drop(stmt);
        Ok((rows, head(&self.conn)?))
    }

    fn confirm(&mut self, position: u64) -> Result<(), ChangeError> {
        self.confirmed = self.confirmed.max(position);
        if self.confirmed > self.persisted && self.last_persist.elapsed() >= PERSIST_EVERY {
            self.persist()?;
        }
        Ok(())
    }

    /// Writes the confirmed position to the cursor row and deletes what every node applied.
    fn persist(&mut self) -> Result<(), ChangeError> {
        self.last_persist = Instant::now();
        self.conn
            .execute(
                &format!("UPDATE {CURSORS} SET seq = ?2, updated_ms = ?3 WHERE node = ?1"),
                params![self.node, self.confirmed as i64, now_ms()],
            )
            .map_err(db_error("writing this node's change cursor"))?;
        self.persisted = self.confirmed;
        self.conn
            .execute(
                &format!(
                    "DELETE FROM {CHANGES} WHERE seq <= (SELECT min(seq) FROM {CURSORS}) \
                     AND seq < (SELECT max(seq) FROM {CHANGES})"
                ),
                [],
            )
            .map_err(db_error("deleting changes every node has applied"))?;
        Ok(())
    }

    fn status(&self) -> Result<FeedStatus, ChangeError> {
        let head = head(&self.conn)?;
        let slowest: Option<i64> = self
            .conn
            .query_row(&format!("SELECT min(seq) FROM {CURSORS}"), [], |r| r.get(0))
            .map_err(db_error("reading the change cursors"))?;
        Ok(FeedStatus {
            confirmed: self.confirmed,
            head,
            retained: head.saturating_sub(slowest.unwrap_or(0).max(0) as u64),
            retained_bytes: 0,
        })
    }
}

fn open_connection(path: &Path) -> Result<Connection, ChangeError> {
    let conn = Connection::open(path).map_err(db_error(format!("opening {}", path.display())))?;
    conn.busy_timeout(Duration::from_secs(5))
        .map_err(db_error("setting the busy timeout"))?;
    // The cursor may lag a power loss by a commit or two: a change applied twice is harmless.
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(db_error("setting synchronous"))?;
    Ok(conn)
}

async fn blocking<T: Send + 'static>(
    job: impl FnOnce() -> Result<T, ChangeError> + Send + 'static,
) -> Result<T, ChangeError> {
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| ChangeError::Database {
            backend: "SQLite",
            what: "a change-capture task".to_string(),
            source: Box::new(e),
        })?
}

impl SqliteChangeFeed {
    /// Opens the feed of `tables` in the database file `path` for the node `node`: creates
    /// the change table, the cursor table and the triggers where missing, and resumes after the
    /// node's confirmed position (a new node starts at the newest change).
    pub async fn open(
        path: &Path,
        node: &str,
        tables: Vec<WatchedTable>,
        poll: Duration,
    ) -> Result<SqliteChangeFeed, ChangeError> {
        let path = path.to_path_buf();
        let node = node.to_string();
        let at = path.clone();
        let inner = blocking(move || {
            let mut inner = Inner {
                conn: open_connection(&at)?,
                node,
                tables,
                delivered: 0,
                confirmed: 0,
                data_version: None,
                schema_version: None,
                persisted: 0,
                last_persist: Instant::now(),
                lost_at_open: None,
            };
            inner.install()?;
            inner.open_cursor()?;
            Ok(inner)
        })
        .await?;
        Ok(SqliteChangeFeed {
            path,
            poll: poll.max(Duration::from_millis(1)),
            inner: Arc::new(Mutex::new(inner)),
        })
    }

    async fn with_inner<T: Send + 'static>(
        &self,
        job: impl FnOnce(&mut Inner) -> Result<T, ChangeError> + Send + 'static,
    ) -> Result<T, ChangeError> {
        let inner = self.inner.clone();
        blocking(move || job(&mut inner.lock())).await
    }
}

#[async_trait]
impl ChangeFeed for SqliteChangeFeed {
    fn describe(&self) -> String {
        format!("SQLite triggers on {}", self.path.display())
    }

    async fn next(&self, max_wait: Duration, limit: usize) -> Result<ChangeBatch, ChangeError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let limit = limit.max(1);
        loop {
            if let Some(batch) = self.with_inner(move |inner| inner.poll(limit)).await? {
                return Ok(batch);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                let position = self.inner.lock().delivered;
                return Ok(ChangeBatch {
                    position,
                    ..ChangeBatch::default()
                });
            }
            tokio::time::sleep(self.poll.min(deadline - now)).await;
        }
    }

    async fn confirm(&self, position: u64) -> Result<(), ChangeError> {
        self.with_inner(move |inner| inner.confirm(position)).await
    }

    async fn status(&self) -> Result<FeedStatus, ChangeError> {
        self.with_inner(|inner| inner.status()).await
    }
}

/// Removes this node's cursor and, once no node is left, the triggers (of every table, watched
/// now or before) and both tables. Says what it removed.
pub async fn drop_objects(path: &Path, node: &str) -> Result<String, ChangeError> {
    let path = path.to_path_buf();
    let node = node.to_string();
    blocking(move || {
        let mut conn = open_connection(&path)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_error("starting the drop"))?;
        let mut done = Vec::new();
        if table_exists(&tx, CURSORS)? {
            let n = tx
                .execute(&format!("DELETE FROM {CURSORS} WHERE node = ?1"), [&node])
                .map_err(db_error("deleting this node's cursor"))?;
            if n > 0 {
                done.push(format!("removed the cursor of node {node:?}"));
            }
            let left: i64 = tx
                .query_row(&format!("SELECT count(*) FROM {CURSORS}"), [], |r| r.get(0))
                .map_err(db_error("counting the cursors"))?;
            if left > 0 {
                done.push(format!(
                    "kept the change table and triggers: {left} other node(s) still follow them"
                ));
                tx.commit().map_err(db_error("committing the drop"))?;
                return Ok(done.join("; "));
            }
        }
        let triggers: Vec<String> = {
            let mut stmt = tx
                .prepare("SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'sluice\\_changes\\_%' ESCAPE '\\'")
                .map_err(db_error("listing the change triggers"))?;
            let names = stmt
                .query_map([], |r| r.get(0))
                .map_err(db_error("listing the change triggers"))?
                .collect::<Result<Vec<String>, _>>()
                .map_err(db_error("listing the change triggers"))?;
            names
        };
        for t in &triggers {
            tx.execute_batch(&format!("DROP TRIGGER IF EXISTS \"{t}\""))
                .map_err(db_error(format!("dropping trigger {t}")))?;
        }
        tx.execute_batch(&format!(
            "DROP TABLE IF EXISTS {CHANGES}; DROP TABLE IF EXISTS {CURSORS};"
        ))
        .map_err(db_error("dropping the change tables"))?;
        tx.commit().map_err(db_error("committing the drop"))?;
        done.push(format!(
            "dropped {} trigger(s), {CHANGES} and {CURSORS}",
            triggers.len()
        ));
        Ok(done.join("; "))
    })
    .await
}

/// Nodes whose change cursors are left in the database file `path` (0 when change capture
/// never ran there): with change capture off, the triggers still record every change, and
/// nothing deletes the records.
pub async fn leftover_nodes(path: &Path) -> Result<u64, ChangeError> {
    let path = path.to_path_buf();
    blocking(move || {
        let conn = open_connection(&path)?;
        if !table_exists(&conn, CURSORS)? {
            return Ok(0);
        }
        let nodes: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {CURSORS}"), [], |r| r.get(0))
            .map_err(db_error("counting the cursors"))?;
        Ok(nodes.max(0) as u64)
    })
    .await
}
