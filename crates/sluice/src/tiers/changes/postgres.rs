//! PostgreSQL change capture: logical replication with the built-in `pgoutput` plugin.
//!
//! A publication (`sluice_<node>`) over the watched tables and a logical replication slot of
//! the same name per Sluice node; the replication protocol is `pgwire-replication` (a tokio
//! client of the replication wire protocol that leaves the control plane to us and lets us
//! say which position is applied), the control plane (checks, publication, slot, status) a
//! plain `tokio-postgres` connection. Changes are delivered a committed transaction at a time;
//! the slot is told a position only once the engine confirms it applied everything before it,
//! so after a reconnect or a restart the stream resumes there (a transaction applied but not
//! yet confirmed comes again, which a refresh takes in its stride).
//!
//! The stream is lost when the slot is gone (dropped by hand) or PostgreSQL removed the WAL it
//! needed (`wal_status = 'lost'`, past `max_slot_wal_keep_size`): the feed makes a new slot and
//! reports the loss. A `TRUNCATE` of a watched table is reported the same way (every copy of
//! the table's keys is stale at once).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use pgwire_replication::{Lsn, ReplicationClient, ReplicationConfig, ReplicationEvent};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};
use tracing::warn;

use super::pgoutput::{self, Datum, Message};
use super::{
    ChangeBatch, ChangeError, ChangeFeed, ChangedRow, FeedStatus, RowChange, WatchedTable,
};

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

fn db_error(what: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> ChangeError {
    let what = what.into();
    move |e| ChangeError::Database {
        backend: "PostgreSQL",
        what,
        source: Box::new(e),
    }
}

fn stream_error(what: &str, e: pgwire_replication::PgWireError) -> ChangeError {
    ChangeError::Database {
        backend: "PostgreSQL",
        what: what.to_string(),
        source: Box::new(e),
    }
}

/// The slot and publication name of a node: `sluice_` and the node name, lower-cased, with
/// every character PostgreSQL does not allow in a slot name made `_`.
pub fn object_name(node: &str) -> String {
    let mut name: String = format!("sluice_{node}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    name.truncate(63);
    name
}

fn quote(table: &str) -> String {
    table
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// Connects the control-plane client.
async fn control(url: &str) -> Result<Client, ChangeError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(db_error("connecting"))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            warn!("change capture's PostgreSQL control connection ended: {e}");
        }
    });
    Ok(client)
}

/// What the database must allow, with the exact fix for each gap; empty when all is set.
pub async fn check(url: &str, tables: &[WatchedTable]) -> Result<Vec<String>, ChangeError> {
    let client = control(url).await?;
    let mut gaps = Vec::new();
    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .map_err(db_error("reading wal_level"))?
        .get(0);
    if wal_level != "logical" {
        gaps.push(format!(
            "wal_level is {wal_level:?}; run `ALTER SYSTEM SET wal_level = logical;` and restart PostgreSQL"
        ));
    }
    let can: bool = client
        .query_one(
            "SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user",
            &[],
        )
        .await
        .map_err(db_error("reading the role's rights"))?
        .get(0);
    if !can {
        gaps.push(
            "the user may not replicate; run `ALTER ROLE <user> REPLICATION;` as a superuser"
                .to_string(),
        );
    }
    for t in tables {
        // A delete carries only the replica identity's columns: the key column must be one of
        // them, or the table must send whole rows.
        let row = client
            .query_opt(
                "SELECT c.relreplident::text, \
                        EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a \
                                  ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                                 WHERE i.indrelid = c.oid \
                                   AND (i.indisprimary AND c.relreplident = 'd' OR i.indisreplident AND c.relreplident = 'i') \
                                   AND a.attname = $2) \
                   FROM pg_class c WHERE c.oid = $1::text::regclass",
                &[&quote(&t.table), &t.key_column],
            )
            .await
            .map_err(db_error(format!("reading the replica identity of {}", t.table)))?;
        let Some(row) = row else { continue };
        let identity: String = row.get(0);
        let key_in_identity: bool = row.get(1);
        if identity != "f" && !key_in_identity {
            gaps.push(format!(
                "a delete from {} would not say which {} it removed (its replica identity lacks that column); run `ALTER TABLE {} REPLICA IDENTITY FULL;`",
                t.table,
                t.key_column,
                quote(&t.table)
            ));
        }
    }
    Ok(gaps)
}

/// Follows the watched tables of one PostgreSQL database for one node.
pub struct PostgresChangeFeed {
    url: String,
    described: String,
    slot: String,
    tables: Vec<WatchedTable>,
    /// The control-plane connection, made again when it was closed (a cut connection).
    control: Mutex<Client>,
    stream: Mutex<Stream>,
}

/// What a change names: the watched table, the key and (for a row that exists after the
/// change) its columns.
type Found = (String, Bytes, Option<ChangedRow>);

/// A watched table as the stream describes it.
#[derive(Clone)]
struct Watched {
    table: String,
    key_at: usize,
    columns: Arc<[String]>,
}

#[derive(Default)]
struct Stream {
    client: Option<ReplicationClient>,
    /// Relation OID → the watched table it is, the key column's position and the columns.
    relations: HashMap<u32, Option<Watched>>,
    /// The open transaction's changes and commit time.
    open: Vec<RowChange>,
    open_time_ms: Option<u64>,
    in_transaction: bool,
    /// Changes of committed transactions not yet delivered, and the end of the last one.
    ready: Vec<RowChange>,
    ready_position: u64,
    /// Why the stream broke, to report with the next batch.
    lost: Option<String>,
    /// The last position delivered.
    delivered: u64,
}

impl PostgresChangeFeed {
    /// Checks the database, creates or updates the node's publication and slot, and connects
    /// the stream. Fails with the fixes [`check`] names when the database cannot replicate.
    pub async fn open(
        url: &str,
        described: String,
        node: &str,
        tables: Vec<WatchedTable>,
    ) -> Result<PostgresChangeFeed, ChangeError> {
        let gaps = check(url, &tables).await?;
        if !gaps.is_empty() {
            return Err(ChangeError::Unsupported(gaps.join("; ")));
        }
        let control = control(url).await?;
        let slot = object_name(node);
        let list = tables
            .iter()
            .map(|t| quote(&t.table))
            .collect::<Vec<_>>()
            .join(", ");
        let exists = control
            .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&slot])
            .await
            .map_err(db_error("looking for the publication"))?
            .is_some();
        let sql = if exists {
            format!("ALTER PUBLICATION {slot} SET TABLE {list}")
        } else {
            format!("CREATE PUBLICATION {slot} FOR TABLE {list}")
        };
        control.batch_execute(&sql).await.map_err(|e| {
            ChangeError::Unsupported(format!(
                "`{sql}` failed ({e}); run it as the tables' owner, or give this user ownership"
            ))
        })?;
        let feed = PostgresChangeFeed {
            url: url.to_string(),
            described,
            slot,
            tables,
            control: Mutex::new(control),
            stream: Mutex::new(Stream::default()),
        };
        let lost = feed.ensure_slot(false).await?;
        let mut stream = feed.stream.lock().await;
        stream.lost = lost;
        feed.connect(&mut stream).await?;
        drop(stream);
        Ok(feed)
    }

    /// Creates the slot if it is missing, or anew if PostgreSQL removed WAL it needed; says
    /// why the stream broke when an existing one was replaced, or when one that this feed
    /// followed (`followed`) is gone.
    async fn ensure_slot(&self, followed: bool) -> Result<Option<String>, ChangeError> {
        let control = self.control().await?;
        let row = control
            .query_opt(
                "SELECT coalesce(wal_status, ''), active FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .map_err(db_error("looking for the replication slot"))?;
        let mut lost = None;
        match row {
            Some(row) => {
                let status: String = row.get(0);
                let active: bool = row.get(1);
                if status != "lost" {
                    return Ok(None);
                }
                if active {
                    return Err(ChangeError::Unsupported(format!(
                        "the replication slot {} is in use by another process; give every node its own [changes] node_name",
                        self.slot
                    )));
                }
                control
                    .execute("SELECT pg_drop_replication_slot($1)", &[&self.slot])
                    .await
                    .map_err(db_error("dropping the lost replication slot"))?;
                lost = Some(format!(
                    "PostgreSQL removed WAL the slot {} still needed (max_slot_wal_keep_size)",
                    self.slot
                ));
            }
            None if followed => {
                lost = Some(format!("the replication slot {} was dropped", self.slot));
            }
            None => {}
        }
        control
            .execute(
                "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                &[&self.slot],
            )
            .await
            .map_err(db_error("creating the replication slot"))?;
        Ok(lost)
    }

    /// The control connection, connected again if it was closed.
    async fn control(&self) -> Result<tokio::sync::MutexGuard<'_, Client>, ChangeError> {
        let mut client = self.control.lock().await;
        if client.is_closed() {
            *client = control(&self.url).await?;
        }
        Ok(client)
    }

    async fn connect(&self, stream: &mut Stream) -> Result<(), ChangeError> {
        let config: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(db_error("reading the store URL"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let password = config
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .unwrap_or_default();
        let user = config.get_user().unwrap_or("postgres").to_string();
        let database = config.get_dbname().unwrap_or(&user).to_string();
        let replication = ReplicationConfig::new(
            host,
            user,
            password,
            database,
            self.slot.clone(),
            self.slot.clone(),
        )
        .with_port(port)
        .with_status_interval(Duration::from_millis(500))
        .with_wakeup_interval(Duration::from_secs(1));
        let client = ReplicationClient::connect(replication)
            .await
            .map_err(|e| stream_error("starting replication", e))?;
        stream.client = Some(client);
        stream.relations.clear();
        stream.open.clear();
        stream.in_transaction = false;
        stream.ready.clear();
        Ok(())
    }

    /// The watched table a relation is, and where its key column is.
    fn watched(&self, relation: &pgoutput::Relation) -> Option<Watched> {
        let table = self.tables.iter().find(|t| match t.table.split_once('.') {
            Some((schema, name)) => relation.namespace == schema && relation.name == name,
            None => relation.name == t.table || relation.name.eq_ignore_ascii_case(&t.table),
        })?;
        let key = relation
            .columns
            .iter()
            .position(|c| c == &table.key_column)
            .or_else(|| {
                relation
                    .columns
                    .iter()
                    .position(|c| c.eq_ignore_ascii_case(&table.key_column))
            })?;
        Some(Watched {
            table: table.table.clone(),
            key_at: key,
            columns: relation.columns.clone().into(),
        })
    }

    /// Takes one decoded message into the open transaction.
    fn take(&self, stream: &mut Stream, message: Message) {
        // The watched table, the key and (for a row that exists after the change) its
        // non-NULL columns.
        let key_of = |stream: &Stream, relation: u32, tuple: &[Datum], with_row: bool| {
            let w = stream.relations.get(&relation)?.clone()?;
            let Datum::Text(key) = tuple.get(w.key_at)? else {
                return None;
            };
            let row = with_row.then(|| {
                w.columns
                    .iter()
                    .zip(tuple)
                    .filter_map(|(c, d)| match d {
                        Datum::Text(v) => Some((c.clone(), v.clone())),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .into()
            });
            Some((w.table, key.clone(), row))
        };
        let push = |stream: &mut Stream, (table, key, row): Found| {
            let at = stream.open_time_ms;
            stream.open.push(RowChange {
                table,
                key,
                recorded_at_ms: at,
                row,
            });
        };
        match message {
            Message::Relation(r) => {
                let watched = self.watched(&r);
                stream.relations.insert(r.id, watched);
            }
            Message::Insert { relation, new } => {
                if let Some(change) = key_of(stream, relation, &new, true) {
                    push(stream, change);
                }
            }
            Message::Update { relation, old, new } => {
                let new_key = key_of(stream, relation, &new, true);
                if let Some(old_key) = old.and_then(|old| key_of(stream, relation, &old, false)) {
                    if new_key.as_ref().map(|(_, k, _)| k) != Some(&old_key.1) {
                        push(stream, old_key);
                    }
                }
                if let Some(change) = new_key {
                    push(stream, change);
                }
            }
            Message::Delete { relation, old } => match key_of(stream, relation, &old, false) {
                Some(change) => push(stream, change),
                None if matches!(stream.relations.get(&relation), Some(Some(_))) => {
                    stream.lost.get_or_insert_with(|| {
                        "a delete did not say which key it removed (set REPLICA IDENTITY FULL)"
                            .to_string()
                    });
                }
                None => {}
            },
            Message::Truncate { relations } => {
                if relations
                    .iter()
                    .any(|r| matches!(stream.relations.get(r), Some(Some(_))))
                {
                    stream
                        .lost
                        .get_or_insert_with(|| "a watched table was truncated".to_string());
                }
            }
            Message::Other => {}
        }
    }

    /// The batch of what is ready, if anything is (or a loss to report).
    fn ready_batch(stream: &mut Stream, limit: usize, force: bool) -> Option<ChangeBatch> {
        if stream.lost.is_none() && stream.ready.is_empty() && !force {
            return None;
        }
        if stream.lost.is_none() && stream.ready.len() < limit && !force {
            return None;
        }
        let changes = std::mem::take(&mut stream.ready);
        stream.delivered = stream.delivered.max(stream.ready_position);
        Some(ChangeBatch {
            changes,
            position: stream.delivered,
            lost: stream.lost.take(),
        })
    }
}

#[async_trait]
impl ChangeFeed for PostgresChangeFeed {
    fn describe(&self) -> String {
        format!(
            "PostgreSQL logical replication on {} (slot and publication {})",
            self.described, self.slot
        )
    }

    async fn next(&self, max_wait: Duration, limit: usize) -> Result<ChangeBatch, ChangeError> {
        let deadline = tokio::time::Instant::now() + max_wait;
        let mut stream = self.stream.lock().await;
        if stream.client.is_none() {
            if let Some(why) = self.ensure_slot(true).await? {
                stream.lost.get_or_insert(why);
            }
            self.connect(&mut stream).await?;
        }
        loop {
            if let Some(batch) = Self::ready_batch(&mut stream, limit, false) {
                return Ok(batch);
            }
            let now = tokio::time::Instant::now();
            // Once a transaction is ready, deliver it as soon as the stream has nothing more
            // at hand; otherwise wait for one up to the deadline.
            let wait = if stream.ready.is_empty() {
                deadline.saturating_duration_since(now)
            } else {
                Duration::from_millis(1)
            };
            let Some(client) = stream.client.as_mut() else {
                return Err(ChangeError::Unsupported("replication stream closed".into()));
            };
            let event = match tokio::time::timeout(wait, client.recv()).await {
                Err(_) => {
                    return Ok(Self::ready_batch(&mut stream, limit, true).unwrap_or_default());
                }
                Ok(Ok(Some(event))) => event,
                Ok(Ok(None)) => {
                    stream.client = None;
                    return Err(ChangeError::Unsupported(
                        "the replication stream ended; reconnecting".into(),
                    ));
                }
                Ok(Err(e)) => {
                    stream.client = None;
                    let text = e.to_string();
                    if text.contains("does not exist") {
                        stream.lost.get_or_insert_with(|| {
                            format!("the replication slot {} was dropped", self.slot)
                        });
                    }
                    return Err(stream_error("reading the replication stream", e));
                }
            };
            match event {
                ReplicationEvent::Begin {
                    commit_time_micros, ..
                } => {
                    stream.in_transaction = true;
                    stream.open.clear();
                    stream.open_time_ms =
                        Some(((commit_time_micros + PG_EPOCH_US).max(0) / 1000) as u64);
                }
                ReplicationEvent::XLogData { data, .. } => {
                    match pgoutput::decode(&data) {
                        Ok(message) => self.take(&mut stream, message),
                        Err(e) => {
                            warn!("an undecodable pgoutput message ({}), treating the stream as broken", e.0);
                            stream.lost.get_or_insert_with(|| {
                                format!("an undecodable pgoutput message: {}", e.0)
                            });
                        }
                    }
                }
                ReplicationEvent::Commit { end_lsn, .. } => {
                    stream.in_transaction = false;
                    let open = std::mem::take(&mut stream.open);
                    stream.ready.extend(open);
                    stream.ready_position = end_lsn.as_u64();
                }
                ReplicationEvent::KeepAlive { wal_end, .. } => {
                    // Between transactions with nothing waiting, the stream is applied up to
                    // where the server is: saying so lets the slot release the WAL of
                    // unrelated changes.
                    if !stream.in_transaction && stream.ready.is_empty() {
                        stream.ready_position = stream.ready_position.max(wal_end.as_u64());
                    }
                }
                ReplicationEvent::Message { .. } => {}
                ReplicationEvent::StoppedAt { .. } => {
                    stream.client = None;
                    return Err(ChangeError::Unsupported(
                        "the replication stream stopped".into(),
                    ));
                }
            }
        }
    }

    async fn confirm(&self, position: u64) -> Result<(), ChangeError> {
        let stream = self.stream.lock().await;
        if let Some(client) = &stream.client {
            client.update_applied_lsn(Lsn::from_u64(position));
        }
        Ok(())
    }

    async fn status(&self) -> Result<FeedStatus, ChangeError> {
        let row = self
            .control()
            .await?
            .query_opt(
                "SELECT (pg_current_wal_lsn() - '0/0')::text, \
                        coalesce((confirmed_flush_lsn - '0/0')::text, '0'), \
                        coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn), 0)::text \
                   FROM pg_replication_slots WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .map_err(db_error("reading the slot's position"))?;
        let Some(row) = row else {
            return Ok(FeedStatus::default());
        };
        let number = |i: usize| -> u64 {
            row.get::<_, String>(i)
                .split('.')
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        Ok(FeedStatus {
            head: number(0),
            confirmed: number(1),
            retained: 0,
            retained_bytes: number(2),
        })
    }
}

/// Drops the node's slot and publication, for `sluice changes drop`; says what it dropped.
pub async fn drop_objects(url: &str, node: &str) -> Result<String, ChangeError> {
    let client = control(url).await?;
    let name = object_name(node);
    let mut done = Vec::new();
    // A node that just stopped may hold the slot for a moment while its walsender exits.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let slot = loop {
        let slot = client
            .query_opt(
                "SELECT active FROM pg_replication_slots WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(db_error("looking for the replication slot"))?;
        match slot {
            Some(row) if row.get::<_, bool>(0) => {
                if tokio::time::Instant::now() >= deadline {
                    return Err(ChangeError::Unsupported(format!(
                        "the replication slot {name} is in use; stop the node that follows it first"
                    )));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other,
        }
    };
    if slot.is_some() {
        client
            .execute("SELECT pg_drop_replication_slot($1)", &[&name])
            .await
            .map_err(db_error("dropping the replication slot"))?;
        done.push(format!("dropped the replication slot {name}"));
    }
    let publication = client
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&name])
        .await
        .map_err(db_error("looking for the publication"))?;
    if publication.is_some() {
        client
            .batch_execute(&format!("DROP PUBLICATION {name}"))
            .await
            .map_err(db_error("dropping the publication"))?;
        done.push(format!("dropped the publication {name}"));
    }
    if done.is_empty() {
        done.push(format!("nothing to drop for node {node:?}"));
    }
    Ok(done.join("; "))
}
