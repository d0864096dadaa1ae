//! Change capture applied to the cache: rows other programs changed reach every keyspace
//! mapped on their table.
//!
//! A changed row's cached copy is refreshed, not just removed: the database's value is read
//! and replaces the copy, so Sluice's own writes coming back through the stream (which find
//! the copy already equal) cost no cache miss. The change first moves the key's stripe
//! version, so a read-through fill that read the row before the change can no longer install
//! what it read. Where the store reads many rows in one query (PostgreSQL, a mapped column),
//! the copies of a batch are first checked against rows read that way, without locks, and
//! replaced by the read-through fill protocol (installed only if the version did not move,
//! inside a fill window): a client write in between moves the version and leaves its key to
//! the next step. A key with a cached copy is otherwise refreshed under its stripe lock, as a
//! write would be: no client write of the key interleaves with the refresh's read and install
//! (a write waits for it, then caches its own value), and the install still follows the fill
//! protocol against the bulk bumps that take no lock. A key with a write-back write waiting in the buffer only loses
//! its cached copy: reads answer from the buffer, whose write commits after the change (the
//! last commit wins), and read the database again once it is flushed.
//!
//! A broken stream (changes may have been missed) drops every cached copy: none can be
//! trusted. The buffers are untouched.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::watch;
use tracing::{info, warn};

use super::route::Route;
use super::{Engine, Keyspace};
use crate::keyspace::KeyTemplate;
use crate::model::events::KeyEvent;
use crate::model::Kind;
use crate::tiers::cache::CachedValue;
use crate::tiers::changes::mysql::{self, MySqlChangeFeed};
use crate::tiers::changes::postgres::{self, PostgresChangeFeed};
use crate::tiers::changes::sqlite::{self, SqliteChangeFeed};
use crate::tiers::changes::{ChangeBatch, ChangeError, ChangeFeed, ChangedRow, WatchedTable};
use crate::tiers::store::{redact_url, Backend};
use crate::tiers::store::{ColumnType, StoredValue, Target};

/// A change feed shared by the engine and its task.
pub(crate) type SharedChangeFeed = Arc<dyn ChangeFeed>;

/// Most changes applied per batch.
const BATCH: usize = 1024;
/// Most keys refreshed at once.
const REFRESHES_IN_FLIGHT: usize = 32;
/// Longest wait for changes before the task looks at shutdown and status again.
const WAIT: Duration = Duration::from_millis(500);
/// First and longest pause after a failure of the feed.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);
/// Least time between two warnings about what the stream holds back.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// What a refresh did to the cached copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refreshed {
    /// Nothing was cached: only the version moved.
    NotCached,
    /// The copy already held the database's value.
    Unchanged,
    /// The copy now holds the database's value.
    Replaced,
    /// The copy was removed.
    Removed,
}

/// The tables the mapped keyspaces map, each once, with its key column.
pub(crate) fn watched_tables(keyspaces: &[Arc<Keyspace>]) -> Vec<WatchedTable> {
    let mut watched: Vec<WatchedTable> = Vec::new();
    for ks in keyspaces.iter().filter(|ks| !ks.is_builtin()) {
        let target = ks.target(0);
        let Some((table, key_column, _)) = target.mapped_columns() else {
            continue;
        };
        if !watched.iter().any(|w| w.table.eq_ignore_ascii_case(table)) {
            watched.push(WatchedTable {
                table: table.to_string(),
                key_column: key_column.to_string(),
            });
        }
    }
    watched
}

/// The backend of `store_url`, as change capture needs to know it.
fn backend(store_url: &str) -> Result<Backend, ChangeError> {
    Backend::of(store_url).map_err(|scheme| {
        ChangeError::Unsupported(format!(
            "change capture does not know the scheme {scheme:?}"
        ))
    })
}

/// Opens the feed for `store_url`, or says why change capture cannot run there.
pub(crate) async fn open_feed(
    store_url: &str,
    node_name: &str,
    tables: Vec<WatchedTable>,
    poll: Duration,
) -> Result<SharedChangeFeed, ChangeError> {
    let described = redact_url(store_url);
    Ok(match backend(store_url)? {
        Backend::Sqlite(path) => {
            Arc::new(SqliteChangeFeed::open(&path, node_name, tables, poll).await?)
        }
        Backend::Postgres => {
            Arc::new(PostgresChangeFeed::open(store_url, described, node_name, tables).await?)
        }
        Backend::MySql => {
            Arc::new(MySqlChangeFeed::open(store_url, described, node_name, tables).await?)
        }
    })
}

/// What the database lacks for change capture, each with its fix (`sluice check-config`).
pub(crate) async fn check_feed(
    store_url: &str,
    tables: &[WatchedTable],
) -> Result<Vec<String>, ChangeError> {
    match backend(store_url)? {
        Backend::Sqlite(_) => Ok(Vec::new()),
        Backend::Postgres => postgres::check(store_url, tables).await,
        Backend::MySql => mysql::check_url(store_url).await,
    }
}

/// Removes what change capture created in the database for `node_name`, for
/// `sluice changes drop`; says what it removed.
pub async fn drop_change_objects(store_url: &str, node_name: &str) -> Result<String, ChangeError> {
    match backend(store_url)? {
        Backend::Sqlite(path) => sqlite::drop_objects(&path, node_name).await,
        Backend::Postgres => postgres::drop_objects(store_url, node_name).await,
        Backend::MySql => Ok(
            "nothing to drop: a MySQL/MariaDB binlog reader keeps no state in the server"
                .to_string(),
        ),
    }
}

/// Warns when change capture is off but an earlier run left its SQLite triggers recording
/// every change with nobody deleting the records. A look at one table at start.
pub(crate) async fn warn_of_leftovers(store_url: &str) {
    let Ok(Backend::Sqlite(path)) = Backend::of(store_url) else {
        return;
    };
    if let Ok(nodes @ 1..) = sqlite::leftover_nodes(&path).await {
        warn!("change capture is off, but its triggers from an earlier run are still in the database ({nodes} node position(s)): they record every change to the mapped tables and nothing deletes the records; run `sluice changes drop` (server stopped) or set [changes] enabled = true");
    }
}

impl Engine {
    /// Starts the task that applies the feed's changes.
    pub(super) fn start_changes(self: &Arc<Self>, feed: SharedChangeFeed) {
        self.metrics.changes.enabled.store(1, Ordering::Relaxed);
        info!("following changes: {}", feed.describe());
        let engine = Arc::downgrade(self);
        let shutdown = self.shutdown_tx.subscribe();
        self.tasks
            .lock()
            .push(tokio::spawn(follow_changes(engine, feed, shutdown)));
    }

    /// Applies one batch: each change to every keyspace mapped on its table. A key changed
    /// several times in the batch is refreshed once (each refresh reads the row as it is
    /// now), and distinct keys are refreshed concurrently, at most [`REFRESHES_IN_FLIGHT`] at
    /// a time: they are independent, and each waits mostly for a row read.
    pub(crate) async fn apply_changes(self: &Arc<Self>, batch: &ChangeBatch) {
        let metrics = &self.metrics.changes;
        if let Some(why) = &batch.lost {
            warn!("change stream broken ({why}): dropping every cached copy, which may be stale, and following a new stream");
            self.drop_all_copies().await;
            metrics.lost.fetch_add(1, Ordering::Relaxed);
        }
        // Each key once, with the row its newest change in the batch left (when the stream
        // carries rows).
        let mut keys: Vec<(Bytes, Option<ChangedRow>)> = Vec::new();
        // Each key's type, for the `changed` keyspace notification sent once it is applied:
        // kept only while someone listens (asked once per batch).
        let notify = [Kind::String, Kind::Hash, Kind::Set, Kind::ZSet, Kind::List]
            .into_iter()
            .any(|kind| self.key_event_sink(KeyEvent::Changed(kind)).is_some());
        let mut kinds: Vec<Kind> = Vec::new();
        let mut index: HashMap<Bytes, usize> = HashMap::new();
        let mut applied = 0u64;
        for change in &batch.changes {
            for ks in &self.keyspaces {
                let (Some(template), Some(table)) = (&ks.template, ks.table_name()) else {
                    continue;
                };
                if !table.eq_ignore_ascii_case(&change.table) {
                    continue;
                }
                let Some(key) = render_key(template, &change.key) else {
                    continue;
                };
                if self.keyspace_of(0, &key).id != ks.id {
                    // An earlier template owns that key: it is not this keyspace's.
                    continue;
                }
                applied += 1;
                match index.get(&key) {
                    Some(&at) => keys[at].1 = change.row.clone(),
                    None => {
                        index.insert(key.clone(), keys.len());
                        keys.push((key, change.row.clone()));
                        if notify {
                            kinds.push(ks.holds_only().unwrap_or_default());
                        }
                    }
                }
            }
        }
        // Each changed key is a changed key to a WATCH of it, as after a client's write, and
        // before its copy is refreshed: an EXEC that checks its flags after this refuses. Even
        // when the row turns out to read as this node's copy: that copy may have been filled
        // from the changed row already (after an eviction), so equal proves nothing, and an
        // EXEC refused for a change that changed nothing is only retried.
        for (key, _) in &keys {
            self.watches.touch(&crate::model::DbKey {
                db: 0,
                key: key.clone(),
            });
        }
        let one_by_one = self.refresh_batch(&keys).await;
        let mut in_flight = tokio::task::JoinSet::new();
        for (key, row) in one_by_one.into_iter().map(|i| keys[i].clone()) {
            if in_flight.len() >= REFRESHES_IN_FLIGHT {
                self.count_refresh(in_flight.join_next().await);
            }
            let engine = self.clone();
            in_flight.spawn(async move {
                let route = engine.route(0, key);
                engine.refresh_changed(&route, row.as_deref()).await
            });
        }
        while let Some(done) = in_flight.join_next().await {
            self.count_refresh(Some(done));
        }
        // After the cache holds the new state: a listener that reads the key at once sees it.
        for ((key, _), kind) in keys.iter().zip(&kinds) {
            self.key_event(0, key, KeyEvent::Changed(*kind));
        }
        metrics.applied.fetch_add(applied, Ordering::Relaxed);
        if let Some(at) = batch.changes.last().and_then(|c| c.recorded_at_ms) {
            let lag = self.now().saturating_sub(at);
            metrics.lag_ms.store(lag, Ordering::Relaxed);
        }
        let now = self.now();
        for change in &batch.changes {
            if let Some(at) = change.recorded_at_ms {
                metrics
                    .delay
                    .record(now.saturating_sub(at).saturating_mul(1000));
            }
        }
    }

    /// Refreshes the changed keys whose rows one query per keyspace can read
    /// ([`Store::read_many`](crate::tiers::store::Store::read_many)), without their locks:
    /// every key's stripe version moves first, then each cached copy that may be stale is
    /// noted with its stripe's version, the rows are read, and a row replaces its copy by the
    /// read-through fill protocol (only if the version did not move, inside a fill window). A
    /// client write in between moves the version; such a key, a key whose row that query
    /// cannot read, and a stripe a transaction is installing in, are left to
    /// [`Engine::refresh_changed`] under the key lock: the indexes returned.
    async fn refresh_batch(&self, keys: &[(Bytes, Option<ChangedRow>)]) -> Vec<usize> {
        let routes: Vec<Route<'_>> = keys.iter().map(|(k, _)| self.route(0, k.clone())).collect();
        // A key whose rows the store reads one by one anyway goes straight to the locked
        // refresh, which does its own bump and checks.
        let (batched, mut one_by_one): (Vec<usize>, Vec<usize>) =
            (0..routes.len()).partition(|&i| self.store.reads_many(&routes[i].ks.target(0)));
        // All bumps before any version is noted: a bump of a key sharing the stripe would
        // otherwise refuse the install of one noted earlier.
        for &i in &batched {
            self.locks.bump(routes[i].stripe);
        }
        // Per keyspace: (key index, copy, version) of the copies to check against their rows.
        let mut to_read: HashMap<usize, Vec<(usize, CachedValue, u64)>> = HashMap::new();
        for i in batched {
            let route = &routes[i];
            match self.refresh_without_read(route, keys[i].1.as_deref()).await {
                Ok(done) => self.count_refresh(Some(Ok(done))),
                Err(copy) => {
                    let version = self.locks.version(route.stripe);
                    if version % 2 == 1 {
                        one_by_one.push(i);
                    } else {
                        to_read
                            .entry(route.ks.id)
                            .or_default()
                            .push((i, copy, version));
                    }
                }
            }
        }
        for (_, copies) in to_read {
            let ks = routes[copies[0].0].ks;
            let store_keys: Vec<Bytes> = copies
                .iter()
                .map(|(i, _, _)| ks.store_key(&routes[*i].key.key))
                .collect();
            let rows = match self.store.read_many(&ks.target(0), &store_keys).await {
                Some(Ok(rows)) if rows.len() == copies.len() => rows,
                Some(Err(e)) => {
                    warn!(keyspace = %ks.name, "reading {} changed rows at once failed, reading them one by one: {e}", copies.len());
                    one_by_one.extend(copies.iter().map(|(i, _, _)| *i));
                    continue;
                }
                _ => {
                    one_by_one.extend(copies.iter().map(|(i, _, _)| *i));
                    continue;
                }
            };
            let cache_until = ks.cache_ttl_ms().map(|t| self.now().saturating_add(t));
            for ((i, copy, version), row) in copies.into_iter().zip(rows) {
                let route = &routes[i];
                let done = match row {
                    None => self.remove_copy(route).await,
                    Some(stored) if same(&copy, &stored) => Refreshed::Unchanged,
                    Some(stored) => {
                        if self
                            .install_fill(route, version, &stored, cache_until)
                            .await
                        {
                            Refreshed::Replaced
                        } else {
                            one_by_one.push(i);
                            continue;
                        }
                    }
                };
                self.count_refresh(Some(Ok(done)));
            }
        }
        one_by_one
    }

    fn count_refresh(&self, done: Option<Result<Refreshed, tokio::task::JoinError>>) {
        let metrics = &self.metrics.changes;
        let counter = match done {
            Some(Ok(Refreshed::Unchanged)) => &metrics.unchanged,
            Some(Ok(Refreshed::Replaced)) => &metrics.replaced,
            Some(Ok(Refreshed::Removed)) => &metrics.removed,
            Some(Ok(Refreshed::NotCached)) | None => return,
            Some(Err(e)) => {
                warn!("a cache refresh after a change failed: {e}");
                &metrics.errors
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Every cached copy dropped, every stripe version moved (so no fill in flight installs
    /// what it read before). The write-back buffers keep their writes.
    async fn drop_all_copies(&self) {
        self.locks.bump_all();
        if let Err(e) = self.cache.clear(None).await {
            warn!("clearing the cache after a broken change stream failed: {e}");
        }
    }

    /// The cache after the row of `route`'s key changed in the database: the copy replaced
    /// by the database's value, or removed (see the module comment).
    pub(crate) async fn refresh_changed(
        &self,
        route: &Route<'_>,
        row: Option<&[(String, Bytes)]>,
    ) -> Refreshed {
        // A fill that read the row before this change must not install it.
        self.locks.bump(route.stripe);
        let copy = match self.refresh_without_read(route, row).await {
            Ok(done) => return done,
            Err(copy) => copy,
        };
        // Under the key's lock no write of the key runs, so the copy and the row are each as
        // the last write left them; a write that committed before this change but had not yet
        // cached its value finishes first. The lock is usually free: take it at once. When a
        // write holds it (often Sluice's own, whose change this is), first see whether the
        // row already reads as the copy: then nothing is to do, and no wait is needed to say
        // so (the write caches its own value). A busy script holding the key: drop the copy
        // rather than wait (the next read refills it).
        let _guard = match self.locks.try_lock(route.stripe) {
            Some(guard) => guard,
            None => {
                let stored = self
                    .store
                    .read(
                        &route.ks.target(route.key.db),
                        &route.ks.store_key(&route.key.key),
                    )
                    .await;
                if matches!(&stored, Ok(Some(stored)) if same(&copy, stored)) {
                    return Refreshed::Unchanged;
                }
                let Ok(guard) = self.locks.lock(route.stripe).await else {
                    return self.remove_copy(route).await;
                };
                guard
            }
        };
        if is_buffered(route) {
            return self.remove_copy(route).await;
        }
        let cached = match self.cache.get(&route.key).await {
            Ok(Some(copy)) => copy,
            Ok(None) => return Refreshed::NotCached,
            Err(_) => return self.remove_copy(route).await,
        };
        let version = self.locks.version(route.stripe);
        let ks = route.ks;
        let stored = match self
            .store
            .read(&ks.target(route.key.db), &ks.store_key(&route.key.key))
            .await
        {
            Ok(Some(stored)) => stored,
            Ok(None) => return self.remove_copy(route).await,
            Err(e) => {
                warn!(keyspace = %ks.name, "reading a changed row failed, dropping its cached copy: {e}");
                return self.remove_copy(route).await;
            }
        };
        if same(&cached, &stored) {
            return Refreshed::Unchanged;
        }
        let cache_until = ks.cache_ttl_ms().map(|t| self.now().saturating_add(t));
        if self
            .install_fill(route, version, &stored, cache_until)
            .await
        {
            Refreshed::Replaced
        } else {
            self.remove_copy(route).await
        }
    }

    /// What a refresh can settle without reading the row (after the bump): a key with a
    /// write-back write waiting loses its copy, a key without one has nothing to refresh, and
    /// a copy equal to the row the stream carries is current. `Err` hands back the copy, which
    /// the row must be read to check.
    async fn refresh_without_read(
        &self,
        route: &Route<'_>,
        row: Option<&[(String, Bytes)]>,
    ) -> Result<Refreshed, CachedValue> {
        if is_buffered(route) {
            return Ok(self.remove_copy(route).await);
        }
        // Nothing cached: nothing to refresh (the bump keeps a fill in flight from installing).
        let Ok(Some(copy)) = self.cache.get(&route.key).await else {
            return Ok(Refreshed::NotCached);
        };
        // The stream says what the row holds now (Sluice's own write coming back, usually):
        // a copy equal to it is current for this change, and a later change has its own
        // event. Only for text columns, whose text form is the value itself.
        if let (Some(row), Target::Mapped(m)) = (row, route.ks.target(route.key.db)) {
            if copy.kind == Kind::String
                && m.value_type == ColumnType::Text
                && row
                    .iter()
                    .any(|(c, v)| c == &m.value_column && *v == copy.value)
            {
                return Ok(Refreshed::Unchanged);
            }
        }
        Err(copy)
    }

    async fn remove_copy(&self, route: &Route<'_>) -> Refreshed {
        self.evict(route).await;
        Refreshed::Removed
    }
}

/// Whether a cached copy holds what the row holds.
fn same(copy: &CachedValue, stored: &StoredValue) -> bool {
    copy.value == stored.value && copy.kind == stored.kind && copy.expires_at == stored.expires_at
}

/// Whether a write-back write of the key waits in its keyspace's buffer.
fn is_buffered(route: &Route<'_>) -> bool {
    route
        .ks
        .buffer
        .as_ref()
        .is_some_and(|b| b.lookup(&route.key).is_some())
}

/// The key of a keyspace whose capture is the changed row's key, if the template makes one
/// (a capture is never empty).
fn render_key(template: &KeyTemplate, capture: &[u8]) -> Option<Bytes> {
    (!capture.is_empty()).then(|| Bytes::from(template.render(capture)))
}

/// The change task: next batch, apply, confirm; after a failure, waits (doubling up to
/// [`RETRY_MAX`]) and asks again from the last confirmed position.
async fn follow_changes(
    engine: Weak<Engine>,
    feed: SharedChangeFeed,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pause = RETRY_MIN;
    let mut last_status = std::time::Instant::now();
    let mut last_warning: Option<std::time::Instant> = None;
    loop {
        let next = tokio::select! {
            next = feed.next(WAIT, BATCH) => next,
            _ = shutdown.changed() => return,
        };
        let Some(engine) = engine.upgrade() else {
            return;
        };
        let result = match next {
            Ok(batch) => {
                engine.apply_changes(&batch).await;
                feed.confirm(batch.position).await.map(|()| batch.position)
            }
            Err(e) => Err(e),
        };
        let metrics = &engine.metrics.changes;
        match result {
            Ok(position) => {
                pause = RETRY_MIN;
                metrics.position.store(position, Ordering::Relaxed);
            }
            Err(e) => {
                metrics.errors.fetch_add(1, Ordering::Relaxed);
                warn!("change capture failed, retrying in {pause:?}: {e}");
                drop(engine);
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
                pause = (pause * 2).min(RETRY_MAX);
                continue;
            }
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = std::time::Instant::now();
            if let Ok(status) = feed.status().await {
                metrics.retained.store(status.retained, Ordering::Relaxed);
                metrics
                    .retained_bytes
                    .store(status.retained_bytes, Ordering::Relaxed);
                let limits = &engine.config.changes;
                let over = status.retained > limits.max_backlog
                    || status.retained_bytes > limits.max_slot_wal;
                if over && last_warning.is_none_or(|w| w.elapsed() >= WARN_EVERY) {
                    last_warning = Some(std::time::Instant::now());
                    warn!(
                        retained = status.retained,
                        retained_bytes = status.retained_bytes,
                        "the database keeps more for the change stream than [changes] max_backlog ({}) / max_slot_wal ({} bytes) allow: a node that stopped following holds it back; run `sluice changes drop --node NAME` for a node that is gone",
                        limits.max_backlog,
                        limits.max_slot_wal
                    );
                }
            }
        }
    }
}
