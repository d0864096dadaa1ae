//! Opening the engine: validate the config against the database, build the tiers, replay the
//! journal, start the flushers.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::watch;
use tracing::{info, warn};

use super::buffer::WriteBackBuffer;
use super::deadletter::DeadLetters;
use super::group_commit::GroupCommitter;
use super::keyspace::Mapping;
use super::locks::KeyLocks;
use super::singleflight::SingleFlight;
use super::{Engine, Keyspace, KeyspaceCounters};
use crate::clock::{SharedClock, SystemClock};
use crate::config::{Config, Durability, KeyspaceConfig, Policy};
use crate::error::{ConfigError, OpenError};
use crate::keyspace::{validate_identifier, KeyTemplate};
use crate::metrics::EngineMetrics;
use crate::tiers::cache::memory::MemoryCache;
use crate::tiers::cache::SharedCache;
use crate::tiers::journal::jetstream::JetStreamJournal;
use crate::tiers::journal::none::NoJournal;
use crate::tiers::journal::wal::WalJournal;
use crate::tiers::journal::Journal as _;
use crate::tiers::journal::SharedJournal;
use crate::tiers::store::{
    self, ColumnInfo, MappedMembers, MappedRow, MappedTable, SharedStore, TableSchema,
};
use crate::Sluice;

/// Builds a [`Sluice`], with the tiers and the clock injectable for tests.
pub struct SluiceBuilder {
    config: Config,
    clock: Option<SharedClock>,
    store: Option<SharedStore>,
    cache: Option<SharedCache>,
    journal: Option<SharedJournal>,
    salvage: bool,
    /// Opened to take over a dead node's journal (`engine/adopt.rs`): no change-capture
    /// leftovers warning (they are the main engine's), and no takeovers of its own.
    adopting: bool,
    /// With `adopting`: where the replay lists the keys it found.
    replayed_keys: Option<super::ReplayedKeys>,
}

impl SluiceBuilder {
    /// Starts from a configuration.
    pub fn new(config: Config) -> Self {
        SluiceBuilder {
            config,
            clock: None,
            store: None,
            cache: None,
            journal: None,
            salvage: false,
            adopting: false,
            replayed_keys: None,
        }
    }

    /// Opens an engine that drains a dead node's journal (see [`SluiceBuilder::adopting`]).
    pub(crate) fn adopting(mut self, replayed_keys: super::ReplayedKeys) -> Self {
        self.adopting = true;
        self.replayed_keys = Some(replayed_keys);
        self
    }

    /// Uses this clock for every expiry decision (default: the system clock).
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Uses this store instead of opening `[store] url` (e.g. a failure-injecting wrapper).
    pub fn store(mut self, store: SharedStore) -> Self {
        self.store = Some(store);
        self
    }

    /// Uses this cache instead of the memory cache.
    pub fn cache(mut self, cache: SharedCache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Uses this journal instead of the one `[journal]` configures.
    pub fn journal(mut self, journal: SharedJournal) -> Self {
        self.journal = Some(journal);
        self
    }

    /// Starts even if the journal is corrupt before its tail, skipping (and logging) each
    /// bad record.
    pub fn salvage(mut self, salvage: bool) -> Self {
        self.salvage = salvage;
        self
    }

    /// Validates the configuration against the database, replays the journal and starts the
    /// background flushers. Fails with an error that names the offending field.
    pub async fn open(self) -> Result<Sluice, OpenError> {
        self.open_engine().await.map(Sluice::new)
    }

    /// [`SluiceBuilder::open`] without the public handle, for the engine's own use (a
    /// takeover's engine, `adopt.rs`, which may not import the `api` layer above it).
    pub(crate) async fn open_engine(self) -> Result<Arc<Engine>, OpenError> {
        let config = self.config;
        let clock = self.clock.unwrap_or_else(|| Arc::new(SystemClock));
        let data_dir = config.data_dir.clone();
        std::fs::create_dir_all(&data_dir).map_err(|source| OpenError::Io {
            path: data_dir.clone(),
            source,
        })?;
        let store = match self.store {
            Some(s) => s,
            None => store::open_url(&config.store_url()).await?,
        };
        store.ensure_builtin_table().await?;
        // Refused before anything is replayed; a cluster node records its mark only once its
        // keyspaces were accepted and its journal opened, so that a start refused for its
        // configuration, a stranded local journal or NATS leaves no mark behind.
        // A takeover's engine (`adopting`) runs under the adopting node's configuration, whose
        // own engine agreed at its start; the dead node's name may be one `[cluster] nodes` no
        // longer lists, which would not make the same mark.
        if !self.adopting {
            agree_on_journal(&store, &config, false).await?;
        }
        let keyspaces = build_keyspaces(&config, &store).await?;

        let journal: SharedJournal = match (self.journal, &config.cluster) {
            (Some(j), _) => j,
            (None, Some(cluster)) => {
                refuse_stranded_local_journal(&data_dir).await?;
                if self.adopting {
                    Arc::new(JetStreamJournal::open_for_takeover(cluster).await?)
                } else {
                    Arc::new(JetStreamJournal::open(cluster).await?)
                }
            }
            (None, None) => match config.journal.durability {
                Durability::None => Arc::new(NoJournal),
                _ => Arc::new(
                    WalJournal::open(&data_dir.join("journal"), &config.journal, self.salvage)
                        .await?,
                ),
            },
        };
        if config.cluster.is_some() && !self.adopting {
            agree_on_journal(&store, &config, true).await?;
        }
        // The name is this process's in NATS now (the journal claimed it); claimed in the
        // database too before anything is stored, so that a frozen older holder of the name
        // (a node thought dead, whose journal this takeover or restart replays) cannot commit
        // after the replay's newer writes.
        if let Some(cluster) = &config.cluster {
            let generation = store.claim_fence(&cluster.node_name).await?;
            info!(
                node = %cluster.node_name,
                generation,
                "claimed the node's name in the database: store writes of any earlier holder of it are refused from now on"
            );
        }
        for ks in &keyspaces {
            if ks.policy() == Policy::WriteBack
                && ks.config.critical
                && journal.durability() == Durability::None
            {
                return Err(ConfigError::invalid(
                    format!("keyspace \"{}\".critical", ks.name),
                    "a critical write-back keyspace needs a durable journal; set [journal] durability to \"fsync\", \"os\" or \"interval\", or use policy = \"write-through\"",
                )
                .into());
            }
        }
        if journal.durability() == Durability::None
            && keyspaces.iter().any(|k| k.policy() == Policy::WriteBack)
        {
            warn!("journal durability is \"none\": write-back writes are acknowledged from memory only, and a crash or kill loses every write not yet flushed to the database");
        }

        let cache = match self.cache {
            Some(c) => c,
            None => Arc::new(MemoryCache::new(config.cache.capacity, clock.clone())),
        };
        let dead_letters = DeadLetters::open(&data_dir.join("deadletters.db"))?;
        let (shutdown_tx, _) = watch::channel(false);
        // One committer per store: it is the store's transactions that are shared.
        let metrics = Arc::new(EngineMetrics::default());
        journal.instrument(metrics.clone());
        let (committer, committer_task) =
            GroupCommitter::start(store.clone(), shutdown_tx.subscribe(), metrics.clone());
        let engine = Arc::new(Engine {
            config,
            clock,
            store,
            cache,
            journal,
            keyspaces,
            dead_letters,
            locks: KeyLocks::default(),
            watches: Default::default(),
            singleflight: SingleFlight::default(),
            seq: AtomicU64::new(0),
            unbuffered: Mutex::new(BTreeSet::new()),
            closing: AtomicBool::new(false),
            buffers_reloaded: AtomicBool::new(false),
            spanning: Mutex::new(Default::default()),
            checkpointing: tokio::sync::Mutex::new(()),
            shutdown_tx,
            tasks: Mutex::new(vec![committer_task]),
            committer,
            metrics,
            key_events: Default::default(),
            replayed_keys: self.replayed_keys,
        });
        engine.recover().await?;
        engine.start_background();
        if !engine.config.changes.enabled && !self.adopting {
            super::changes::warn_of_leftovers(&engine.config.store_url()).await;
        }
        if !self.adopting {
            super::adopt::start(&engine);
        }
        if engine.config.changes.enabled {
            let tables = super::changes::watched_tables(&engine.keyspaces);
            if tables.is_empty() {
                info!("[changes] enabled, but no keyspace maps a table: nothing to follow");
            } else {
                let changes = &engine.config.changes;
                let feed = super::changes::open_feed(
                    &engine.config.store_url(),
                    &changes.node_name,
                    tables,
                    changes.poll_interval,
                )
                .await?;
                engine.start_changes(feed);
            }
        }
        Ok(engine)
    }
}

/// Validates each `[[keyspace]]` and resolves mapped tables against the database. The
/// built-in keyspace is always last.
async fn build_keyspaces(
    config: &Config,
    store: &SharedStore,
) -> Result<Vec<Arc<Keyspace>>, ConfigError> {
    let mut names = HashSet::new();
    // Which keyspace maps each (table, column), lower-cased: a column mapped twice would keep
    // two cached copies, each left stale by writes through the other (and WATCH on one would
    // miss them), so every column is mapped once.
    let mut claimed: HashMap<(String, String), String> = HashMap::new();
    let mut claim = |table: &str, column: &str, field: String, name: &str| {
        let key = (table.to_ascii_lowercase(), column.to_ascii_lowercase());
        match claimed.get(&key) {
            Some(other) => Err(ConfigError::invalid(
                field,
                format!("maps column {table}.{column}, which keyspace \"{other}\" maps too; two keyspaces on one column would each cache a copy the other's writes leave stale, so map every column once"),
            )),
            None => {
                claimed.insert(key, name.to_string());
                Ok(())
            }
        }
    };
    let mut builtin: Option<KeyspaceConfig> = None;
    let mut keyspaces = Vec::new();
    for (i, ks) in config.keyspaces.iter().enumerate() {
        let at = |field: &str| format!("keyspace[{i}] \"{}\".{field}", ks.name);
        if ks.name.is_empty() {
            return Err(ConfigError::invalid(
                format!("keyspace[{i}].name"),
                "is empty; give every keyspace a unique name",
            ));
        }
        if !names.insert(ks.name.clone()) {
            return Err(ConfigError::invalid(
                at("name"),
                "is used by an earlier keyspace; names must be unique",
            ));
        }
        if ks.flush_batch == 0 {
            return Err(ConfigError::invalid(
                at("flush_batch"),
                "must be at least 1",
            ));
        }
        if ks.max_dirty == 0 {
            return Err(ConfigError::invalid(at("max_dirty"), "must be at least 1"));
        }
        if ks.flush_interval.is_zero() {
            return Err(ConfigError::invalid(
                at("flush_interval"),
                "must be greater than 0",
            ));
        }
        if ks.is_builtin() {
            if builtin.is_some() {
                return Err(ConfigError::invalid(
                    at("keys"),
                    "a second keys = \"*\" entry; configure the built-in keyspace once",
                ));
            }
            for (field, set) in [
                ("table", ks.table.is_some()),
                ("key_column", ks.key_column.is_some()),
                ("value_column", ks.value_column.is_some()),
                ("columns", ks.columns.is_some()),
                ("type", ks.value_type.is_some()),
                ("member_column", ks.member_column.is_some()),
                ("score_column", ks.score_column.is_some()),
                ("position_column", ks.position_column.is_some()),
            ] {
                if set {
                    return Err(ConfigError::invalid(
                        at(field),
                        "keys = \"*\" configures the built-in table sluice_kv (which holds every type) and takes no table, columns or type; remove it, or give a key template",
                    ));
                }
            }
            builtin = Some(ks.clone());
            continue;
        }
        let template =
            KeyTemplate::parse(&ks.keys).map_err(|m| ConfigError::invalid(at("keys"), m))?;
        let need = |field: &str, v: &Option<String>| {
            v.clone().ok_or_else(|| {
                ConfigError::invalid(
                    at(field),
                    format!("is missing; a keyspace with a key template maps onto an existing table, so set {field}"),
                )
            })
        };
        let table = need("table", &ks.table)?;
        let key_column = need("key_column", &ks.key_column)?;
        validate_identifier(&at("table"), &table)?;
        validate_identifier(&at("key_column"), &key_column)?;
        if ks.maps_members() {
            let schema = table_schema(store, &table, &at).await?;
            let backend = store::Backend::of(&config.store_url()).ok();
            let members = members_mapping(ks, backend, &schema, &table, &key_column, &at)?;
            let (member_field, value_field) = if members.kind == crate::model::Kind::List {
                ("position_column", "value_column")
            } else {
                ("member_column", "score_column")
            };
            claim(&table, &members.member.name, at(member_field), &ks.name)?;
            if let Some(value) = &members.value {
                claim(&table, &value.name, at(value_field), &ks.name)?;
            }
            keyspaces.push(new_keyspace(
                keyspaces.len(),
                ks.clone(),
                Some(template),
                Mapping::Members(Arc::new(members)),
            ));
            continue;
        }
        for (field, set) in [
            ("member_column", ks.member_column.is_some()),
            ("score_column", ks.score_column.is_some()),
            ("position_column", ks.position_column.is_some()),
        ] {
            if set {
                return Err(ConfigError::invalid(
                    at(field),
                    "is set on a keyspace that is not type = \"set\", \"zset\" or \"list\"; remove it, or set the type",
                ));
            }
        }
        let rows = ks.maps_rows();
        if rows {
            if ks.value_column.is_some() {
                return Err(ConfigError::invalid(
                    at("value_column"),
                    "is set on a hash keyspace (type = \"hash\" or columns), whose keys are rows with a field per column; remove it, or drop columns/type for a string keyspace",
                ));
            }
        } else if ks.columns.is_some() {
            return Err(ConfigError::invalid(
                at("columns"),
                "is set on a keyspace of type = \"string\", which maps one value_column; remove it, or set type = \"hash\"",
            ));
        }
        let value_column = if rows {
            String::new()
        } else {
            need("value_column", &ks.value_column)?
        };
        if !rows {
            validate_identifier(&at("value_column"), &value_column)?;
            if key_column.eq_ignore_ascii_case(&value_column) {
                return Err(ConfigError::invalid(
                    at("value_column"),
                    "is the key column; map the value onto another column",
                ));
            }
        }
        let schema = table_schema(store, &table, &at).await?;
        let key_col = schema.column(&key_column).ok_or_else(|| {
            ConfigError::invalid(
                at("key_column"),
                format!("table {table:?} has no column {key_column:?}"),
            )
        })?;
        if !schema
            .unique_columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(&key_column))
        {
            return Err(ConfigError::invalid(
                at("key_column"),
                format!("column {table}.{key_column} is not unique on its own; make it the primary key or add a unique index on it"),
            ));
        }
        if rows {
            let columns = row_columns(ks, &schema, &table, &key_col.name, &at)?;
            for c in &columns {
                claim(&table, &c.name, at("columns"), &ks.name)?;
            }
            let row = MappedRow {
                table: table.clone(),
                key_column: key_col.name.clone(),
                key_type: key_col.kind,
                columns,
                on_delete: ks.on_delete,
            };
            keyspaces.push(new_keyspace(
                keyspaces.len(),
                ks.clone(),
                Some(template),
                Mapping::Row(Arc::new(row)),
            ));
            continue;
        }
        let value_col = schema.column(&value_column).ok_or_else(|| {
            ConfigError::invalid(
                at("value_column"),
                format!("table {table:?} has no column {value_column:?}"),
            )
        })?;
        claim(&table, &value_col.name, at("value_column"), &ks.name)?;
        let mapped = MappedTable {
            table: table.clone(),
            key_column: key_col.name.clone(),
            value_column: value_col.name.clone(),
            key_type: key_col.kind,
            value_type: value_col.kind,
            on_delete: ks.on_delete,
        };
        keyspaces.push(new_keyspace(
            keyspaces.len(),
            ks.clone(),
            Some(template),
            Mapping::Column(Arc::new(mapped)),
        ));
    }
    let builtin = builtin.unwrap_or_else(|| KeyspaceConfig::builtin(Policy::WriteBack));
    keyspaces.push(new_keyspace(
        keyspaces.len(),
        builtin,
        None,
        Mapping::Builtin,
    ));
    Ok(keyspaces)
}

/// The schema of a mapped table, or the configuration error naming why there is none.
async fn table_schema(
    store: &SharedStore,
    table: &str,
    at: &(dyn Fn(&str) -> String + Sync),
) -> Result<TableSchema, ConfigError> {
    store
        .table_schema(table)
        .await
        .map_err(|e| ConfigError::invalid(at("table"), format!("cannot inspect {table}: {e}")))?
        .ok_or_else(|| {
            ConfigError::invalid(
                at("table"),
                format!(
                    "table {table:?} does not exist in {}; create it or fix the name",
                    store.describe()
                ),
            )
        })
}

/// A set, sorted set or list keyspace's table: the owner (`key_column`) and member columns
/// unique together, the member a text, bytes or integer column, a sorted set's score an integer
/// or double-precision column (a numeric or single-precision column would round scores the
/// cache keeps exact); a list's position an integer column and its elements a text or bytes
/// column.
fn members_mapping(
    ks: &KeyspaceConfig,
    backend: Option<store::Backend>,
    schema: &TableSchema,
    table: &str,
    key_column: &str,
    at: &(dyn Fn(&str) -> String + Sync),
) -> Result<MappedMembers, ConfigError> {
    use crate::config::KeyspaceType;
    let kind = match ks.value_type {
        Some(KeyspaceType::Zset) => crate::model::Kind::ZSet,
        Some(KeyspaceType::List) => crate::model::Kind::List,
        _ => crate::model::Kind::Set,
    };
    let list = kind == crate::model::Kind::List;
    let on_mysql = matches!(backend, Some(store::Backend::MySql));
    let misplaced: &[(&str, bool)] = if list {
        &[
            ("columns", ks.columns.is_some()),
            ("member_column", ks.member_column.is_some()),
            ("score_column", ks.score_column.is_some()),
        ]
    } else {
        &[
            ("value_column", ks.value_column.is_some()),
            ("columns", ks.columns.is_some()),
            ("position_column", ks.position_column.is_some()),
        ]
    };
    for (field, set) in misplaced {
        if *set {
            let why = if list {
                "is set on a list keyspace, whose elements are rows (position_column numbers them, value_column holds them); remove it"
            } else {
                "is set on a set or sorted set keyspace, whose members are rows (member_column, and score_column for a zset); remove it"
            };
            return Err(ConfigError::invalid(at(field), why));
        }
    }
    let column = |field: &str, name: &Option<String>| -> Result<ColumnInfo, ConfigError> {
        let name = name.clone().ok_or_else(|| {
            ConfigError::invalid(
                at(field),
                format!(
                    "is missing; a {} keyspace keeps a row per {}, so set {field}",
                    if list { "list" } else { "set or sorted set" },
                    if list { "element" } else { "member" },
                ),
            )
        })?;
        validate_identifier(&at(field), &name)?;
        let col = schema.column(&name).ok_or_else(|| {
            ConfigError::invalid(at(field), format!("table {table:?} has no column {name:?}"))
        })?;
        if col.name.eq_ignore_ascii_case(key_column) {
            return Err(ConfigError::invalid(
                at(field),
                "is the key (owner) column; map it onto another column",
            ));
        }
        Ok(col.clone())
    };
    let key_col = schema.column(key_column).ok_or_else(|| {
        ConfigError::invalid(
            at("key_column"),
            format!("table {table:?} has no column {key_column:?}"),
        )
    })?;
    let member_field = if list {
        "position_column"
    } else {
        "member_column"
    };
    let member = column(
        member_field,
        if list {
            &ks.position_column
        } else {
            &ks.member_column
        },
    )?;
    let member_ok = if list {
        member.kind == store::ColumnType::Integer
    } else {
        matches!(
            member.kind,
            store::ColumnType::Text | store::ColumnType::Blob | store::ColumnType::Integer
        )
    };
    if !member_ok {
        let needs = if list {
            "a position column must be an integer column: the list is its rows in this column's order, and a push takes the number one past an end"
        } else {
            "a member column must be text, bytes or an integer, so that every member reads back as it was written"
        };
        return Err(ConfigError::invalid(
            at(member_field),
            format!(
                "column {table}.{} is {}; {needs}",
                member.name, member.declared_type
            ),
        ));
    }
    let value = match kind {
        crate::model::Kind::ZSet => {
            let score = column("score_column", &ks.score_column)?;
            Some(score_column(score, backend, table, &member, at)?)
        }
        crate::model::Kind::List => {
            let element = column("value_column", &ks.value_column)?;
            if element.name.eq_ignore_ascii_case(&member.name) {
                return Err(ConfigError::invalid(
                    at("value_column"),
                    "is the position column; map elements onto another column",
                ));
            }
            if !matches!(
                element.kind,
                store::ColumnType::Text | store::ColumnType::Blob
            ) {
                return Err(ConfigError::invalid(
                    at("value_column"),
                    format!(
                        "column {table}.{} is {}; a list's elements are strings, so the element column must be text (which takes UTF-8) or bytes (any bytes)",
                        element.name, element.declared_type
                    ),
                ));
            }
            Some(element)
        }
        _ => {
            if ks.score_column.is_some() {
                return Err(ConfigError::invalid(
                    at("score_column"),
                    "is set on a set keyspace; remove it, or set type = \"zset\"",
                ));
            }
            None
        }
    };
    if !schema.is_unique_key(&[&key_col.name, &member.name]) {
        let each = if list { "each element" } else { "each member" };
        return Err(ConfigError::invalid(
            at(member_field),
            format!(
                "columns ({}, {}) of {table} are not a primary key or unique index; add one (for example CREATE UNIQUE INDEX ON {table} ({}, {})), so {each} is one row",
                key_col.name, member.name, key_col.name, member.name
            ),
        ));
    }
    // Another unique index over the member (or score, or element) column that leaves the
    // owner out would make one owner's write collide with another owner's row: an upsert that
    // updates the other owner's row (MySQL), or a write refused after it was acknowledged.
    let owner_and_member = [key_col.name.as_str(), member.name.as_str()];
    let mapped: Vec<&str> = std::iter::once(member.name.as_str())
        .chain(value.as_ref().map(|v| v.name.as_str()))
        .collect();
    for unique_key in &schema.unique_keys {
        let has = |c: &str| unique_key.iter().any(|k| k.eq_ignore_ascii_case(c));
        if owner_and_member.iter().all(|c| has(c)) {
            continue;
        }
        if let Some(column) = mapped.iter().find(|c| has(c)) {
            return Err(ConfigError::invalid(
                at(member_field),
                format!(
                    "table {table} has a unique index on ({}) that holds {column} but not both {} and {}, so one owner's row could collide with another's; drop that index, or map another table",
                    unique_key.join(", "),
                    key_col.name,
                    member.name
                ),
            ));
        }
    }
    // MySQL stores an out-of-range integer as an error only when the flush runs; PostgreSQL's
    // and SQLite's integer conversions check the range before the ack.
    if list && on_mysql {
        let declared = member.declared_type.to_ascii_lowercase();
        if !declared.starts_with("bigint") || declared.contains("unsigned") {
            return Err(ConfigError::invalid(
                at(member_field),
                format!(
                    "column {table}.{} is {}; on MySQL a position column must be a signed BIGINT: an LPUSH numbers its row below the head's (0, then -1), and numbers run to ±2^38",
                    member.name, member.declared_type
                ),
            ));
        }
    }
    Ok(MappedMembers {
        table: table.to_string(),
        key_column: key_col.name.clone(),
        key_type: key_col.kind,
        kind,
        member,
        value,
    })
}

/// Checks a sorted set keyspace's score column: an integer or double-precision column other
/// than the member column.
fn score_column(
    score: ColumnInfo,
    backend: Option<store::Backend>,
    table: &str,
    member: &ColumnInfo,
    at: &(dyn Fn(&str) -> String + Sync),
) -> Result<ColumnInfo, ConfigError> {
    if score.name.eq_ignore_ascii_case(&member.name) {
        return Err(ConfigError::invalid(
            at("score_column"),
            "is the member column; map scores onto another column",
        ));
    }
    let declared = score.declared_type.to_ascii_lowercase();
    // PostgreSQL's real and MySQL's float hold 4 bytes; SQLite's REAL and FLOAT hold 8.
    let single = match backend {
        Some(store::Backend::Sqlite(_)) => false,
        _ => declared == "real" || declared.starts_with("float"),
    };
    // DOUBLE(10,2) and the like round to their scale.
    let kind_ok = match score.kind {
        store::ColumnType::Integer => true,
        store::ColumnType::Real => !declared.contains('('),
        _ => false,
    };
    if !kind_ok || single {
        return Err(ConfigError::invalid(
            at("score_column"),
            format!(
                "column {table}.{} is {}; a score column must be an integer or double-precision column, which hold a score exactly (a numeric or single-precision column would round what the cache keeps)",
                score.name, score.declared_type
            ),
        ));
    }
    Ok(score)
}

/// The columns a hash keyspace maps, in order: `columns` as configured (each a plain
/// identifier naming a column of the table other than the key, once), or every column of the
/// table but the key. Each is named as the database spells it, which is also the field name.
fn row_columns(
    ks: &KeyspaceConfig,
    schema: &TableSchema,
    table: &str,
    key_column: &str,
    at: &(dyn Fn(&str) -> String + Sync),
) -> Result<Vec<ColumnInfo>, ConfigError> {
    let Some(configured) = &ks.columns else {
        let all: Vec<ColumnInfo> = schema
            .columns
            .iter()
            .filter(|c| !c.name.eq_ignore_ascii_case(key_column))
            .cloned()
            .collect();
        if all.is_empty() {
            return Err(ConfigError::invalid(
                at("table"),
                format!("table {table:?} has no column but the key column {key_column:?}, so a hash keyspace has no field to map"),
            ));
        }
        return Ok(all);
    };
    if configured.is_empty() {
        return Err(ConfigError::invalid(
            at("columns"),
            "is empty; list the columns that are the hash's fields, or remove it to map every column but the key",
        ));
    }
    let mut columns: Vec<ColumnInfo> = Vec::with_capacity(configured.len());
    let mut unknown = Vec::new();
    for name in configured {
        if name.contains('.') {
            return Err(ConfigError::invalid(
                at("columns"),
                format!("{name:?} is not a plain column name; write the column alone, without its table"),
            ));
        }
        validate_identifier(&at("columns"), name)?;
        let Some(col) = schema.column(name) else {
            unknown.push(name.as_str());
            continue;
        };
        if col.name.eq_ignore_ascii_case(key_column) {
            return Err(ConfigError::invalid(
                at("columns"),
                format!("{name:?} is the key column; the key is the capture, not a field"),
            ));
        }
        if columns.iter().any(|c| c.name == col.name) {
            return Err(ConfigError::invalid(
                at("columns"),
                format!("lists {name:?} twice"),
            ));
        }
        columns.push(col.clone());
    }
    if !unknown.is_empty() {
        return Err(ConfigError::invalid(
            at("columns"),
            format!(
                "table {table:?} has no column {}; its columns are {}",
                unknown
                    .iter()
                    .map(|u| format!("{u:?}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                schema
                    .columns
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(columns)
}

fn new_keyspace(
    id: usize,
    config: KeyspaceConfig,
    template: Option<KeyTemplate>,
    mapping: Mapping,
) -> Arc<Keyspace> {
    let buffer = (config.policy == Policy::WriteBack)
        .then(|| WriteBackBuffer::new(config.max_dirty, config.flush_batch));
    Arc::new(Keyspace {
        id,
        name: config.name.clone(),
        template,
        mapping,
        buffer,
        counters: KeyspaceCounters::default(),
        flush_interval_ms: std::sync::atomic::AtomicU64::new(
            config.flush_interval.as_millis().clamp(1, u64::MAX as u128) as u64,
        ),
        config,
        flush_lock: tokio::sync::Mutex::new(()),
    })
}

/// Validates a configuration against its database without starting anything: the checks of
/// [`SluiceBuilder::open`] minus the journal. Returns one line per keyspace.
pub async fn check_config(config: &Config) -> Result<Vec<String>, OpenError> {
    let store = store::open_url(&config.store_url()).await?;
    agree_on_journal(&store, config, false).await?;
    let keyspaces = build_keyspaces(config, &store).await?;
    let mut lines = Vec::new();
    for ks in &keyspaces {
        if ks.policy() == Policy::WriteBack
            && ks.config.critical
            && config.journal.durability == Durability::None
            && config.cluster.is_none()
        {
            return Err(ConfigError::invalid(
                format!("keyspace \"{}\".critical", ks.name),
                "a critical write-back keyspace needs a durable journal; set [journal] durability to \"fsync\", \"os\" or \"interval\", or use policy = \"write-through\"",
            )
            .into());
        }
        lines.push(describe_keyspace(ks));
    }
    if let Some(cluster) = &config.cluster {
        lines.push(crate::tiers::journal::jetstream::check(cluster).await?);
        if let Some(map) = cluster.slot_map() {
            let ranges: Vec<String> = map
                .nodes
                .iter()
                .enumerate()
                .map(|(i, (name, addr))| {
                    let (first, last) = map.range(i);
                    format!("{name} at {addr} serves slots {first}-{last}")
                })
                .collect();
            lines.push(format!(
                "cluster: keys routed by hash slot (MOVED to the node serving them): {}",
                ranges.join("; ")
            ));
        }
    }
    if config.changes.enabled {
        let store_url = config.store_url();
        let tables = super::changes::watched_tables(&keyspaces);
        let gaps = super::changes::check_feed(&store_url, &tables).await?;
        if !gaps.is_empty() {
            return Err(OpenError::Changes(crate::error::ChangeError::Unsupported(
                gaps.join("; "),
            )));
        }
        lines.push(format!(
            "changes: followed on {} as node {:?} (publication, slot or triggers created at start where missing; `sluice changes drop` removes them)",
            tables
                .iter()
                .map(|t| t.table.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            config.changes.node_name
        ));
    }
    Ok(lines)
}

/// The journal mark of a cluster journalling to `stream`, as `sluice_journal` holds it.
fn cluster_mark(cluster: &crate::config::ClusterConfig) -> String {
    let stream = &cluster.journal_stream;
    // Routed nodes must agree on who serves which slot: a node with another list would serve
    // keys another node serves too.
    match cluster.slot_map() {
        None => format!("jetstream:{stream}"),
        Some(map) => {
            let nodes = map.fingerprint();
            let mark = format!("jetstream:{stream} nodes:{nodes}");
            // MySQL's mark column holds 1024 characters.
            if mark.len() <= 1000 {
                mark
            } else {
                format!(
                    "jetstream:{stream} nodes-crc32c:{:08x}",
                    crc32c::crc32c(nodes.as_bytes())
                )
            }
        }
    }
}

/// Refuses a node whose journal is not the one the nodes already storing into this database
/// share. A cluster node records its JetStream stream there (the first one's mark stays); a
/// node with the local journal, or with another stream, beside a cluster would store the same
/// keys outside the cluster's journal, its per-key order and its takeover of dead nodes. A
/// local node records nothing: one database may serve several unrelated local nodes, as
/// before clusters existed. Without `claim` (`sluice check-config`, and the check made before
/// a node opens its journal) nothing is recorded.
async fn agree_on_journal(
    store: &SharedStore,
    config: &Config,
    claim: bool,
) -> Result<(), OpenError> {
    let ours = config.cluster.as_ref().map(cluster_mark);
    let claimed = ours.as_deref().filter(|_| claim);
    let Some(recorded) = store.journal_mark(claimed).await? else {
        return Ok(());
    };
    if ours.as_deref() == Some(recorded.as_str()) {
        return Ok(());
    }
    let (stream, nodes) = recorded
        .strip_prefix("jetstream:")
        .map(|rest| match rest.split_once(' ') {
            Some((stream, nodes)) => (Some(stream), Some(nodes)),
            None => (Some(rest), None),
        })
        .unwrap_or((None, None));
    let theirs = match (stream, nodes) {
        (Some(stream), None) => format!(
            "a Sluice cluster journalling write-back writes to the JetStream stream {stream:?}, without key routing"
        ),
        (Some(stream), Some(nodes)) => format!(
            "a Sluice cluster journalling write-back writes to the JetStream stream {stream:?}, routing keys between the [cluster] nodes {nodes:?}"
        ),
        _ => format!("Sluice nodes with the journal {recorded:?}"),
    };
    let same_stream = config
        .cluster
        .as_ref()
        .is_some_and(|c| stream == Some(c.journal_stream.as_str()));
    let (field, fix) = match &config.cluster {
        None => (
            "cluster",
            "add that cluster's [cluster] section to this node's configuration to join it, or point [store] url at another database",
        ),
        Some(_) if same_stream => (
            "cluster.nodes",
            "give [cluster] nodes exactly that cluster's list, in the same order (or none, if it routes no keys), or point [store] url at another database",
        ),
        Some(_) => (
            "cluster.journal_stream",
            "set [cluster] journal_stream to that stream to join the cluster, or point [store] url at another database",
        ),
    };
    Err(ConfigError::invalid(
        field,
        format!(
            "{} is the store of {theirs}; a node outside its journal would store the same keys without its per-key order or its takeover of dead nodes. To go on, {fix}; if that cluster is retired and its stream empty, delete its mark with DELETE FROM sluice_journal",
            store.describe()
        ),
    )
    .into())
}

/// Refuses to start on the JetStream journal while the local segment journal still holds
/// records not yet stored: they would be stranded there, never replayed.
async fn refuse_stranded_local_journal(data_dir: &std::path::Path) -> Result<(), OpenError> {
    let dir = data_dir.join("journal");
    if !dir.exists() {
        return Ok(());
    }
    let local = WalJournal::open(&dir, &crate::config::JournalConfig::default(), false).await?;
    let stranded = local.take_recovered().len();
    local.close().await?;
    if stranded == 0 {
        return Ok(());
    }
    Err(ConfigError::invalid(
        "cluster",
        format!(
            "the local journal in {} holds {stranded} write-back records not yet stored; start once without [cluster] so that they are stored, then add [cluster] again",
            dir.display()
        ),
    )
    .into())
}

/// `name (template -> table.column, policy)`.
pub(crate) fn describe_keyspace(ks: &Keyspace) -> String {
    let template = ks
        .template
        .as_ref()
        .map_or_else(|| "*".into(), |t| t.text());
    format!(
        "{} ({} -> {}, {})",
        ks.name,
        template,
        ks.table_text(),
        ks.policy().as_str()
    )
}
