//! MySQL / MariaDB change capture: the row-format binlog, read as a replica would
//! (`mysql_async`'s binlog stream, events decoded by `mysql_common`).
//!
//! Changes are delivered a committed transaction at a time (at its XID event, or a `COMMIT`
//! query for tables without transactions). The server keeps no position for a binlog reader,
//! so the feed keeps it: after a reconnect it resumes after the last transaction the engine
//! confirmed. A new process starts at the server's current position: its cache is new, so no
//! copy can be stale from before. The stream is lost when the server purged the binlog the
//! feed needed, or on a `TRUNCATE`, `ALTER`, `DROP` or `RENAME` of a watched table.

use std::collections::HashMap;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_core::Stream;
use mysql_async::binlog::events::{Event, EventData};
use mysql_async::prelude::Queryable;
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Opts, Pool, Value};
use tokio::sync::Mutex;

use super::{ChangeBatch, ChangeError, ChangeFeed, FeedStatus, RowChange, WatchedTable};

fn db_error(what: impl Into<String>) -> impl FnOnce(mysql_async::Error) -> ChangeError {
    let what = what.into();
    move |e| ChangeError::Database {
        backend: "MySQL",
        what,
        source: Box::new(e),
    }
}

/// A binlog position: file and offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Position {
    file: String,
    pos: u64,
}

impl Position {
    /// As one number: the file's sequence number (its numeric suffix) above the offset.
    fn as_u64(&self) -> u64 {
        let seq: u64 = self
            .file
            .rsplit('.')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (seq << 32) | (self.pos & 0xffff_ffff)
    }
}

/// Longest wait for a connection to the server (or the pool's) before the attempt fails and is
/// retried: a server that accepts and never answers must not stall the feed for good.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The URL's options, a pool on them, and the default database.
fn pool(url: &str) -> Result<(Opts, Pool, String), ChangeError> {
    let opts = Opts::from_url(url).map_err(|e| ChangeError::Database {
        backend: "MySQL",
        what: "reading the store URL".into(),
        source: Box::new(e),
    })?;
    let database = opts.db_name().unwrap_or_default().to_string();
    Ok((opts.clone(), Pool::new(opts), database))
}

/// [`check`] on the server `url` names.
pub async fn check_url(url: &str) -> Result<Vec<String>, ChangeError> {
    let (_, pool, _) = pool(url)?;
    let gaps = check(&pool).await;
    let _ = pool.disconnect().await;
    gaps
}

/// What the server must allow, with the fix for each gap; empty when all is set.
pub async fn check(pool: &Pool) -> Result<Vec<String>, ChangeError> {
    let mut conn = pool.get_conn().await.map_err(db_error("connecting"))?;
    let row: Option<(i64, String, String)> = conn
        .query_first("SELECT @@log_bin, @@binlog_format, @@binlog_row_image")
        .await
        .map_err(db_error("reading the binlog settings"))?;
    let mut gaps = Vec::new();
    if let Some((log_bin, format, image)) = row {
        if log_bin != 1 {
            gaps.push("the binlog is off; set log_bin = mysql-bin and server_id in the server's configuration and restart it".to_string());
        }
        if !format.eq_ignore_ascii_case("ROW") {
            gaps.push(format!(
                "binlog_format is {format}; set binlog_format = ROW (`SET GLOBAL binlog_format = 'ROW'` and in the configuration)"
            ));
        }
        if !image.eq_ignore_ascii_case("FULL") {
            gaps.push(format!(
                "binlog_row_image is {image}; set binlog_row_image = FULL so every change carries its key"
            ));
        }
    }
    Ok(gaps)
}

/// Follows the watched tables of one MySQL or MariaDB server.
pub struct MySqlChangeFeed {
    described: String,
    /// For the binlog stream's own connection: one from the pool would go back to it when
    /// the stream is dropped, still streaming, and hang the pool's next caller.
    opts: Opts,
    /// For queries.
    pool: Pool,
    server_id: u32,
    tables: Vec<WatchedTable>,
    /// The connection's default database: where an unqualified table lives.
    database: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    binlog: Option<BinlogStream>,
    /// Where a new stream starts: after the last confirmed transaction.
    resume: Position,
    /// The file the stream is in now.
    file: String,
    /// Table id → the watched table it is and its key column's position.
    table_ids: HashMap<u64, Option<(String, usize)>>,
    open: Vec<RowChange>,
    ready: Vec<RowChange>,
    ready_at: Position,
    /// Delivered batches not yet confirmed, by position.
    delivered: Vec<(u64, Position)>,
    lost: Option<String>,
}

impl MySqlChangeFeed {
    /// Checks the server and starts at its current position.
    pub async fn open(
        url: &str,
        described: String,
        node: &str,
        tables: Vec<WatchedTable>,
    ) -> Result<MySqlChangeFeed, ChangeError> {
        let (opts, pool, database) = pool(url)?;
        let gaps = check(&pool).await?;
        if !gaps.is_empty() {
            return Err(ChangeError::Unsupported(gaps.join("; ")));
        }
        let mut conn = pool.get_conn().await.map_err(db_error("connecting"))?;
        let own: u32 = conn
            .query_first("SELECT @@server_id")
            .await
            .map_err(db_error("reading server_id"))?
            .unwrap_or(0);
        // A replica id of its own per node, derived from its name, never the server's.
        let mut server_id = node.bytes().fold(2_166_136_261u32, |h, b| {
            (h ^ b as u32).wrapping_mul(16_777_619)
        }) | 0x4000_0000;
        if server_id == own {
            server_id ^= 1;
        }
        drop(conn);
        let feed = MySqlChangeFeed {
            described,
            opts,
            pool,
            server_id,
            tables,
            database,
            state: Mutex::new(State::default()),
        };
        let head = feed.head().await?;
        let mut state = feed.state.lock().await;
        state.resume = head;
        drop(state);
        Ok(feed)
    }

    /// A pooled connection for a query, within [`CONNECT_TIMEOUT`].
    async fn conn(&self) -> Result<mysql_async::Conn, ChangeError> {
        match tokio::time::timeout(CONNECT_TIMEOUT, self.pool.get_conn()).await {
            Ok(conn) => conn.map_err(db_error("connecting")),
            Err(_) => Err(ChangeError::Unsupported(format!(
                "no connection to {} within {CONNECT_TIMEOUT:?}",
                self.described
            ))),
        }
    }

    async fn head(&self) -> Result<Position, ChangeError> {
        let mut conn = self.conn().await?;
        let row: Option<mysql_async::Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(db_error("reading the binlog position"))?;
        let row = row.ok_or_else(|| {
            ChangeError::Unsupported("SHOW MASTER STATUS is empty: the binlog is off".into())
        })?;
        let file: String = row.get(0).unwrap_or_default();
        let pos: u64 = row.get(1).unwrap_or(4);
        Ok(Position { file, pos })
    }

    async fn connect(&self, state: &mut State) -> Result<(), ChangeError> {
        let request = BinlogStreamRequest::new(self.server_id)
            .with_filename(state.resume.file.as_bytes())
            .with_pos(state.resume.pos);
        let started = tokio::time::timeout(CONNECT_TIMEOUT, async {
            let conn = Conn::new(self.opts.clone())
                .await
                .map_err(db_error("connecting"))?;
            conn.get_binlog_stream(request)
                .await
                .map_err(db_error("starting the binlog stream"))
        })
        .await;
        let stream = match started {
            Ok(stream) => stream?,
            Err(_) => {
                return Err(ChangeError::Unsupported(format!(
                    "the binlog stream of {} did not start within {CONNECT_TIMEOUT:?}",
                    self.described
                )))
            }
        };
        state.binlog = Some(stream);
        state.file = state.resume.file.clone();
        state.table_ids.clear();
        state.open.clear();
        state.ready.clear();
        state.delivered.clear();
        Ok(())
    }

    /// The watched table `db.table` is, if any, and its key column's position.
    async fn watched(&self, db: &str, table: &str) -> Result<Option<(String, usize)>, ChangeError> {
        let Some(w) = self.tables.iter().find(|t| match t.table.split_once('.') {
            Some((d, n)) => d.eq_ignore_ascii_case(db) && n.eq_ignore_ascii_case(table),
            None => t.table.eq_ignore_ascii_case(table) && db.eq_ignore_ascii_case(&self.database),
        }) else {
            return Ok(None);
        };
        let mut conn = self.conn().await?;
        let position: Option<u64> = conn
            .exec_first(
                "SELECT ORDINAL_POSITION FROM information_schema.COLUMNS \
                  WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                (db, table, &w.key_column),
            )
            .await
            .map_err(db_error("reading the key column's position"))?;
        Ok(position.map(|p| (w.table.clone(), p.saturating_sub(1) as usize)))
    }

    /// Takes one event into the open transaction.
    async fn take(&self, state: &mut State, event: Event) -> Result<(), ChangeError> {
        let header = event.header();
        let at = Some(header.timestamp() as u64 * 1000);
        let data = match event.read_data() {
            Ok(Some(data)) => data,
            Ok(None) => return Ok(()),
            Err(e) => {
                state
                    .lost
                    .get_or_insert_with(|| format!("an undecodable binlog event: {e}"));
                return Ok(());
            }
        };
        match data {
            EventData::RotateEvent(rotate) => {
                state.file = rotate.name().into_owned();
            }
            EventData::TableMapEvent(tme) => {
                let id = tme.table_id();
                if let std::collections::hash_map::Entry::Vacant(slot) = state.table_ids.entry(id) {
                    slot.insert(
                        self.watched(&tme.database_name(), &tme.table_name())
                            .await?,
                    );
                }
            }
            EventData::RowsEvent(rows) => {
                let Some(Some((table, key_at))) = state.table_ids.get(&rows.table_id()).cloned()
                else {
                    return Ok(());
                };
                let Some(tme) = state
                    .binlog
                    .as_ref()
                    .and_then(|b| b.get_tme(rows.table_id()))
                else {
                    return Ok(());
                };
                let mut keys = Vec::new();
                for row in rows.rows(tme) {
                    let Ok((before, after)) = row else {
                        state
                            .lost
                            .get_or_insert_with(|| "an undecodable binlog row".to_string());
                        continue;
                    };
                    let key = |row: &Option<mysql_async::binlog::row::BinlogRow>| {
                        row.as_ref()
                            .and_then(|r| r.as_ref(key_at))
                            .and_then(|v| match v {
                                mysql_async::binlog::value::BinlogValue::Value(v) => text(v),
                                _ => None,
                            })
                    };
                    let (old, new) = (key(&before), key(&after));
                    if let Some(old) = &old {
                        if new.as_ref() != Some(old) {
                            keys.push(old.clone());
                        }
                    }
                    if let Some(new) = new {
                        keys.push(new);
                    }
                }
                for key in keys {
                    state.open.push(RowChange {
                        table: table.clone(),
                        key,
                        recorded_at_ms: at,
                        row: None,
                    });
                }
            }
            EventData::XidEvent(_) => self.commit(state, header.log_pos() as u64),
            EventData::QueryEvent(q) => {
                let query = q.query();
                let head = query.trim_start().to_ascii_uppercase();
                if head.starts_with("COMMIT") {
                    self.commit(state, header.log_pos() as u64);
                } else if head.starts_with("BEGIN") {
                    state.open.clear();
                } else if ["TRUNCATE", "ALTER", "DROP", "RENAME"]
                    .iter()
                    .any(|w| head.starts_with(w))
                    && self.tables.iter().any(|t| {
                        let name = t.table.rsplit('.').next().unwrap_or(&t.table);
                        head.contains(&name.to_ascii_uppercase())
                    })
                {
                    state.lost.get_or_insert_with(|| {
                        format!("a watched table was changed whole: {}", query.trim())
                    });
                    // Table ids change with the table's definition.
                    state.table_ids.clear();
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn commit(&self, state: &mut State, log_pos: u64) {
        let open = std::mem::take(&mut state.open);
        state.ready.extend(open);
        state.ready_at = Position {
            file: state.file.clone(),
            pos: log_pos,
        };
    }

    fn ready_batch(state: &mut State, force: bool, limit: usize) -> Option<ChangeBatch> {
        if state.lost.is_none() && !force && state.ready.len() < limit {
            return None;
        }
        let position = state.ready_at.as_u64();
        state.delivered.push((position, state.ready_at.clone()));
        Some(ChangeBatch {
            changes: std::mem::take(&mut state.ready),
            position,
            lost: state.lost.take(),
        })
    }
}

/// Whether the server refused the stream because the binlog position is gone
/// (`ER_MASTER_FATAL_ERROR_READING_BINLOG`, 1236: purged, or never there).
fn is_purged_binlog(e: &ChangeError) -> bool {
    let ChangeError::Database { source, .. } = e else {
        return false;
    };
    matches!(
        source.downcast_ref::<mysql_async::Error>(),
        Some(mysql_async::Error::Server(server)) if server.code == 1236
    )
}

/// A key value in the text form the server prints it.
fn text(value: &Value) -> Option<Bytes> {
    Some(match value {
        Value::NULL => return None,
        Value::Bytes(b) => Bytes::copy_from_slice(b),
        Value::Int(i) => Bytes::from(i.to_string()),
        Value::UInt(u) => Bytes::from(u.to_string()),
        Value::Float(f) => Bytes::from(f.to_string()),
        Value::Double(d) => Bytes::from(d.to_string()),
        other => Bytes::from(other.as_sql(true).trim_matches('\'').to_string()),
    })
}

#[async_trait]
impl ChangeFeed for MySqlChangeFeed {
    fn describe(&self) -> String {
        format!(
            "the MySQL/MariaDB binlog of {} (as replica {})",
            self.described, self.server_id
        )
    }

    async fn next(&self, max_wait: Duration, limit: usize) -> Result<ChangeBatch, ChangeError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut state = self.state.lock().await;
        if state.binlog.is_none() {
            if let Err(e) = self.connect(&mut state).await {
                // The position is gone (the server purged that binlog): start again at the
                // server's, dropping every copy.
                if is_purged_binlog(&e) {
                    state.resume = self.head().await?;
                    state.lost = Some("the binlog this node needed was purged".to_string());
                    self.connect(&mut state).await?;
                } else {
                    return Err(e);
                }
            }
        }
        loop {
            if let Some(batch) = Self::ready_batch(&mut state, false, limit) {
                return Ok(batch);
            }
            let wait = if state.ready.is_empty() {
                deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                Duration::from_millis(1)
            };
            let Some(binlog) = state.binlog.as_mut() else {
                return Err(ChangeError::Unsupported("binlog stream closed".into()));
            };
            let next = std::future::poll_fn(|cx| Pin::new(&mut *binlog).poll_next(cx));
            match tokio::time::timeout(wait, next).await {
                Err(_) => {
                    if state.ready.is_empty() && state.lost.is_none() {
                        return Ok(ChangeBatch {
                            position: state.resume.as_u64(),
                            ..ChangeBatch::default()
                        });
                    }
                    if let Some(batch) = Self::ready_batch(&mut state, true, limit) {
                        return Ok(batch);
                    }
                }
                Ok(Some(Ok(event))) => self.take(&mut state, event).await?,
                Ok(Some(Err(e))) => {
                    state.binlog = None;
                    let e = db_error("reading the binlog")(e);
                    if is_purged_binlog(&e) {
                        // The server answers the stream request with this error only once the
                        // stream is read: start again at its position, dropping every copy.
                        state.resume = self.head().await?;
                        state.lost = Some("the binlog this node needed was purged".to_string());
                    }
                    return Err(e);
                }
                Ok(None) => {
                    state.binlog = None;
                    return Err(ChangeError::Unsupported(
                        "the binlog stream ended; reconnecting".into(),
                    ));
                }
            }
        }
    }

    async fn confirm(&self, position: u64) -> Result<(), ChangeError> {
        let mut state = self.state.lock().await;
        if let Some(i) = state.delivered.iter().rposition(|(p, _)| *p <= position) {
            let (_, at) = state.delivered[i].clone();
            if !at.file.is_empty() {
                state.resume = at;
            }
            state.delivered.drain(..=i);
        }
        Ok(())
    }

    async fn status(&self) -> Result<FeedStatus, ChangeError> {
        let head = self.head().await?;
        let state = self.state.lock().await;
        Ok(FeedStatus {
            confirmed: state.resume.as_u64(),
            head: head.as_u64(),
            retained: 0,
            retained_bytes: 0,
        })
    }
}
