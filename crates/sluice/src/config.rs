//! The engine's configuration: [`Config`] and the section types it is made of.
//!
//! The engine reads no file: a front end builds a `Config` (the `sluice` server from its TOML
//! file, which also holds the server's own settings). Each section type deserializes one
//! section of such a file and denies unknown fields, so a misspelt knob stops start-up instead
//! of being silently ignored. Durations are strings such as `"250ms"`, `"1s"` or `"1h"`; sizes
//! are strings such as `"256MiB"` or plain byte counts.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::ConfigError;

/// What the engine opens with. Built in code, or by a front end from its configuration file
/// (the `sluice` server reads `[server] data_dir` and `shutdown_timeout`, `[store]`,
/// `[journal]`, `[cache]` and `[[keyspace]]` into it; each section type here deserializes
/// one of those sections).
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory for the embedded database, the journal and the dead letters.
    pub data_dir: PathBuf,
    /// How long a graceful shutdown may spend draining write-back buffers.
    pub shutdown_timeout: Duration,
    /// The database. Absent: SQLite at `<data_dir>/sluice.db`.
    pub store: Option<StoreConfig>,
    /// The write-back journal.
    pub journal: JournalConfig,
    /// The in-process cache tier.
    pub cache: CacheConfig,
    /// Keyspaces in match order; the first whose template matches a key owns it.
    pub keyspaces: Vec<KeyspaceConfig>,
    /// Change capture: rows changed by other programs reach the cache.
    pub changes: ChangesConfig,
    /// Shared engines for several nodes; `None`: this node keeps its journal on its own disk.
    pub cluster: Option<ClusterConfig>,
}

impl Default for Config {
    /// `./sluice-data`, a 30 s drain, embedded SQLite, the default journal and cache, and no
    /// keyspace configured (the built-in keyspace then takes every key).
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./sluice-data"),
            shutdown_timeout: Duration::from_secs(30),
            store: None,
            journal: JournalConfig::default(),
            cache: CacheConfig::default(),
            keyspaces: Vec::new(),
            changes: ChangesConfig::default(),
            cluster: None,
        }
    }
}

/// Replaces every `${NAME}` in `text` with the environment variable NAME, so secrets need not
/// be written into a configuration file. An unset variable is an error naming it and `field`.
pub fn expand_env(field: &str, text: &str) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| ConfigError::invalid(field, "has an unclosed ${ ; write ${NAME}"))?;
        let name = &after[..end];
        let value = std::env::var(name).map_err(|_| {
            ConfigError::invalid(
                field,
                format!("uses the environment variable {name}, which is not set; export it or write the value"),
            )
        })?;
        out.push_str(&value);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `[store]`: the database behind the cache.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `sqlite://path`; PostgreSQL and MySQL URLs come with their backends.
    pub url: String,
}

/// When a write-back write is acknowledged relative to the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// After `fdatasync`: survives power loss.
    #[default]
    Fsync,
    /// After `write()`: survives a crash of the Sluice process, not of the machine.
    Os,
    /// `fdatasync` every `fsync_interval`, like Redis `appendfsync everysec`.
    Interval,
    /// No journal: a crash loses every buffered write-back write.
    None,
    /// After a JetStream stream stored the record on a majority of its replicas (`[cluster]`):
    /// survives the death of this node, its disk included, and of any minority of the NATS
    /// servers. Not a `[journal]` setting: `[cluster]` chooses it.
    #[serde(skip)]
    Replicated,
}

impl Durability {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Os => "os",
            Durability::Interval => "interval",
            Durability::None => "none",
            Durability::Replicated => "replicated",
        }
    }
}

/// `[journal]`: the durable write-back queue.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// When a write-back write is acknowledged.
    pub durability: Durability,
    /// The fsync period under `durability = "interval"`.
    #[serde(deserialize_with = "deserialize_duration")]
    pub fsync_interval: Duration,
    /// Size at which a journal segment is closed and a new one started.
    #[serde(deserialize_with = "deserialize_size")]
    pub segment_size: u64,
    /// The smallest set, sorted set, list or stream (its encoded size) whose writes journal
    /// only the members they change, while the key waits for its flush; a smaller one is
    /// journaled whole with every write. Replay rebuilds a large one from its last whole
    /// record and the member records after it.
    #[serde(deserialize_with = "deserialize_size")]
    pub member_records_from: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            durability: Durability::Fsync,
            fsync_interval: Duration::from_secs(1),
            segment_size: 64 * 1024 * 1024,
            member_records_from: 4096,
        }
    }
}

/// `[cache]`: the in-process cache tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Capacity in bytes of keys plus values (plus a fixed per-entry overhead).
    #[serde(deserialize_with = "deserialize_size")]
    pub capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 256 * 1024 * 1024,
        }
    }
}

/// `[changes]`: following the database's own record of changed rows, so that rows other
/// programs change reach the cache of every keyspace mapped on them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChangesConfig {
    /// Follow the change stream. Off by default: on SQLite it adds a trigger insert to every
    /// write of a mapped table, Sluice's own included (see the README for the measured cost).
    pub enabled: bool,
    /// This node's name, unique among the Sluice nodes sharing a database: it names the
    /// node's position in the stream (its cursor row, slot or binlog position).
    pub node_name: String,
    /// How often the feed asks the database whether anything changed (SQLite:
    /// `PRAGMA data_version`, one cheap call).
    #[serde(deserialize_with = "deserialize_duration")]
    pub poll_interval: Duration,
    /// SQLite: change rows not yet applied by every node past which Sluice warns: an
    /// unattended node's position holds them back (`sluice changes drop` releases it).
    pub max_backlog: u64,
    /// PostgreSQL: WAL bytes the node's replication slot holds back past which Sluice warns
    /// (an unattended slot can fill the database's disk; `sluice changes drop` removes it).
    #[serde(deserialize_with = "deserialize_size")]
    pub max_slot_wal: u64,
}

impl Default for ChangesConfig {
    fn default() -> Self {
        ChangesConfig {
            enabled: false,
            node_name: "sluice".to_string(),
            poll_interval: Duration::from_millis(5),
            max_backlog: 1_000_000,
            max_slot_wal: 1 << 30,
        }
    }
}

/// `[cluster]`: several Sluice nodes over shared engines. With it, the write-back journal is a
/// NATS JetStream stream instead of the local segment files: a write-back write is
/// acknowledged once a majority of the stream's replicas stored it, so neither this node's
/// death nor the loss of its disk loses it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// This node's name, unique among the nodes sharing the stream: its journal is the
    /// subject `<journal_subject>.<node_name>.records`. Letters, digits, `-` and `_`.
    pub node_name: String,
    /// NATS servers to connect to (any of the cluster's; the client learns the others).
    pub nats_urls: Vec<String>,
    /// The JetStream stream of every node's journal; created when missing.
    #[serde(default = "default_journal_stream")]
    pub journal_stream: String,
    /// The subject prefix of the journals; the stream takes `<journal_subject>.>`.
    #[serde(default = "default_journal_subject")]
    pub journal_subject: String,
    /// Replicas of the stream when Sluice creates it (3 on a 3-server cluster); an existing
    /// stream with another count is refused at start.
    #[serde(default = "default_replicas")]
    pub replicas: usize,
    /// How long one journal write keeps retrying (same message ID, so never stored twice)
    /// through a reconnect or a stream leader election before it fails; after a failure the
    /// journal takes no write until a restart.
    #[serde(
        default = "default_publish_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub publish_timeout: Duration,
    /// How long this node's claim on `node_name` lasts without renewal (renewed every third of
    /// it). A second live process with the same name is refused; a node restarted after a
    /// kill waits at most this long for its old claim to run out.
    #[serde(
        default = "default_node_lease",
        deserialize_with = "deserialize_duration"
    )]
    pub node_lease: Duration,
    /// How long start-up waits for a NATS server.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub connect_timeout: Duration,
    /// Whether PUBLISH, SPUBLISH and the keyspace notifications of commands reach the
    /// subscribers of every node sharing `pubsub_subject`, not only this node's. Like Redis's
    /// own pub/sub, delivery is at most once: a message published while NATS is unreachable
    /// may be lost (INFO counts it).
    #[serde(default = "default_relay_pubsub")]
    pub relay_pubsub: bool,
    /// The NATS subject pub/sub messages travel on between the nodes (core NATS, no stream;
    /// default `<journal_subject>_pubsub`, so that clusters with their own journal subjects
    /// keep their messages apart); it must lie outside `journal_subject`, which the journal
    /// stream stores. See [`ClusterConfig::pubsub_subject`].
    #[serde(default, rename = "pubsub_subject")]
    pub pubsub_subject_setting: Option<String>,
    /// Whether this node takes over the journal of a node that died and has not come back
    /// (its claim on its name ran out while its journal still holds records): it claims the
    /// dead node's name, stores its writes and releases the name. Needs a store every node
    /// shares (PostgreSQL or MySQL); with SQLite each node's database is its own, and a dead
    /// node's writes wait for that node.
    #[serde(default = "default_adopt_orphans")]
    pub adopt_orphans: bool,
    /// Every node of the cluster as `"<node_name>=<host>:<port>"` (the address clients reach
    /// it at), the same list in the same order on every node. Set, it turns on key routing as
    /// Redis Cluster does it: the 16384 hash slots are split evenly between the nodes in this
    /// order, a node serves only the keys of its own slots (while its claim on its name is
    /// valid) and answers `MOVED <slot> <host>:<port>` for the others, so every key has one
    /// writer and reader at a time, whatever the policy. Empty (the default): every node
    /// serves every key. See [`SlotMap`].
    #[serde(default)]
    pub nodes: Vec<String>,
}

/// Redis Cluster's hash slots.
pub const HASH_SLOTS: u16 = 16384;

/// `[cluster] nodes`, parsed: which node serves which hash slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotMap {
    /// Each node's name and client address, in the configured order.
    pub nodes: Vec<(String, String)>,
    /// This node's index in `nodes`.
    pub own: usize,
}

impl SlotMap {
    /// The first and last slot of node `index`: the slots split evenly, in order.
    pub fn range(&self, index: usize) -> (u16, u16) {
        let n = self.nodes.len() as u32;
        let first = (index as u32 * HASH_SLOTS as u32) / n;
        let next = ((index as u32 + 1) * HASH_SLOTS as u32) / n;
        (first as u16, (next - 1) as u16)
    }

    /// The index of the node that serves `slot`.
    pub fn owner(&self, slot: u16) -> usize {
        let n = self.nodes.len() as u32;
        // The inverse of `range`: the last node whose first slot is at or below `slot`.
        let guess = ((slot as u32 * n) / HASH_SLOTS as u32) as usize;
        (guess.saturating_sub(1)..self.nodes.len())
            .take_while(|&i| self.range(i).0 <= slot)
            .last()
            .unwrap_or(0)
    }

    /// The list as every node must agree on it, for the database's journal mark.
    pub fn fingerprint(&self) -> String {
        self.nodes
            .iter()
            .map(|(name, addr)| format!("{name}={addr}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn default_adopt_orphans() -> bool {
    true
}

fn default_relay_pubsub() -> bool {
    true
}

fn default_journal_stream() -> String {
    "SLUICE_JOURNAL".to_string()
}

fn default_journal_subject() -> String {
    "sluice.journal".to_string()
}

fn default_replicas() -> usize {
    1
}

fn default_publish_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_node_lease() -> Duration {
    // Longer than a stream leader election after a NATS server dies (5-6 s measured on
    // nats-server 2.9), during which the claim cannot be renewed.
    Duration::from_secs(30)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

impl ClusterConfig {
    /// A cluster of the given servers, with every other setting at its default.
    pub fn new(node_name: impl Into<String>, nats_urls: Vec<String>) -> ClusterConfig {
        ClusterConfig {
            node_name: node_name.into(),
            nats_urls,
            journal_stream: default_journal_stream(),
            journal_subject: default_journal_subject(),
            replicas: default_replicas(),
            publish_timeout: default_publish_timeout(),
            node_lease: default_node_lease(),
            connect_timeout: default_connect_timeout(),
            relay_pubsub: default_relay_pubsub(),
            pubsub_subject_setting: None,
            adopt_orphans: default_adopt_orphans(),
            nodes: Vec::new(),
        }
    }

    /// The slot map `nodes` gives, or `None` when key routing is off (no `nodes`). Call
    /// [`ClusterConfig::validate`] first: a malformed list is `None` here too.
    pub fn slot_map(&self) -> Option<SlotMap> {
        self.parse_nodes().ok().flatten()
    }

    fn parse_nodes(&self) -> Result<Option<SlotMap>, ConfigError> {
        if self.nodes.is_empty() {
            return Ok(None);
        }
        let invalid = |why: String| Err(ConfigError::invalid("cluster.nodes", why));
        let mut nodes: Vec<(String, String)> = Vec::with_capacity(self.nodes.len());
        for entry in &self.nodes {
            let Some((name, addr)) = entry.split_once('=') else {
                return invalid(format!(
                    "{entry:?} is not \"<node_name>=<host>:<port>\" (e.g. \"n1=10.0.0.1:6380\")"
                ));
            };
            let (name, addr) = (name.trim(), addr.trim());
            let port = addr
                .rsplit_once(':')
                .filter(|(host, _)| !host.is_empty() && !host.contains(char::is_whitespace))
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .filter(|&p| p > 0);
            if port.is_none() {
                return invalid(format!(
                    "{entry:?}: {addr:?} is not <host>:<port>, the address clients reach node {name:?} at"
                ));
            }
            if nodes.iter().any(|(n, _)| n == name) {
                return invalid(format!("names node {name:?} twice"));
            }
            if nodes.iter().any(|(_, a)| a == addr) {
                return invalid(format!("gives two nodes the address {addr:?}"));
            }
            nodes.push((name.to_string(), addr.to_string()));
        }
        if nodes.len() > HASH_SLOTS as usize {
            return invalid(format!(
                "lists {} nodes, more than the {HASH_SLOTS} hash slots",
                nodes.len()
            ));
        }
        let Some(own) = nodes.iter().position(|(n, _)| *n == self.node_name) else {
            return invalid(format!(
                "does not list this node (node_name {:?}); every node lists every node, itself included, in the same order",
                self.node_name
            ));
        };
        Ok(Some(SlotMap { nodes, own }))
    }

    /// The subject pub/sub messages travel on: the setting, or `<journal_subject>_pubsub`.
    pub fn pubsub_subject(&self) -> String {
        self.pubsub_subject_setting
            .clone()
            .unwrap_or_else(|| format!("{}_pubsub", self.journal_subject))
    }

    /// Checks the names NATS will see; the error names the field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let token = |field: &str, value: &str| {
            if value.is_empty()
                || !value
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                Err(ConfigError::invalid(
                    format!("cluster.{field}"),
                    format!("{value:?} must be letters, digits, '-' or '_' (it names a NATS subject or stream)"),
                ))
            } else {
                Ok(())
            }
        };
        token("node_name", &self.node_name)?;
        token("journal_stream", &self.journal_stream)?;
        for (i, part) in self.journal_subject.split('.').enumerate() {
            token(&format!("journal_subject (part {})", i + 1), part)?;
        }
        // The journal streams store `<journal_subject>.>` and `<journal_subject>_nodes.>`:
        // relayed messages there would be kept, and read back as journal records.
        if self.relay_pubsub {
            let pubsub_subject = self.pubsub_subject();
            for (i, part) in pubsub_subject.split('.').enumerate() {
                token(&format!("pubsub_subject (part {})", i + 1), part)?;
            }
            let nodes_subject = format!("{}_nodes", self.journal_subject);
            for stored in [&self.journal_subject, &nodes_subject] {
                if pubsub_subject == *stored || pubsub_subject.starts_with(&format!("{stored}.")) {
                    return Err(ConfigError::invalid(
                        "cluster.pubsub_subject",
                        format!(
                            "{pubsub_subject:?} lies inside {stored:?}, which the journal stream stores; choose a subject outside it (the default is <journal_subject>_pubsub)"
                        ),
                    ));
                }
            }
        }
        if self.nats_urls.is_empty() {
            return Err(ConfigError::invalid(
                "cluster.nats_urls",
                "lists no server; give at least one, e.g. [\"nats://127.0.0.1:4222\"]",
            ));
        }
        if self.node_lease < Duration::from_secs(1) {
            return Err(ConfigError::invalid(
                "cluster.node_lease",
                "must be at least 1s (it is renewed every third of it)",
            ));
        }
        self.parse_nodes()?;
        if !(1..=5).contains(&self.replicas) {
            return Err(ConfigError::invalid(
                "cluster.replicas",
                format!(
                    "{} is not a JetStream replica count (1 to 5)",
                    self.replicas
                ),
            ));
        }
        Ok(())
    }
}

/// How a keyspace keeps the cache and the database in step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Database first, then cache; acked after both.
    WriteThrough,
    /// Journal and cache; acked at once; flushed to the database in batches later.
    WriteBack,
    /// Database first, then the cached copy is removed.
    Invalidate,
}

impl Policy {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::WriteThrough => "write-through",
            Policy::WriteBack => "write-back",
            Policy::Invalidate => "invalidate",
        }
    }
}

/// What DEL does to the row of a mapped key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnDelete {
    /// Set the value column to NULL and keep the row, so other columns (and other keyspaces
    /// mapped onto the same row) are untouched. A NOT NULL column refuses the DEL.
    #[default]
    SetNull,
    /// Delete the whole row.
    DeleteRow,
}

/// The Redis type a mapped keyspace holds (`type = "…"` in a `[[keyspace]]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyspaceType {
    /// Strings, each the value column of a row (`value_column`).
    String,
    /// Hashes, each a row: a field per mapped column (`columns`).
    Hash,
    /// Sets, each the rows of one owner: `(key_column, member_column)`, unique together.
    Set,
    /// Sorted sets, each the rows of one owner: `(key_column, member_column, score_column)`,
    /// the first two unique together: a leaderboard table.
    Zset,
    /// Lists, each the rows of one owner ordered by `position_column` (an integer, unique
    /// together with the owner), an element per row in `value_column`: an event table.
    List,
}

/// One `[[keyspace]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyspaceConfig {
    /// Unique name, used in INFO, errors and metrics.
    pub name: String,
    /// Key template with exactly one `{capture}`, or `*` for the built-in keyspace.
    pub keys: String,
    /// Mapped table (absent for the built-in keyspace).
    pub table: Option<String>,
    /// The table's unique key column; the capture is bound to it.
    pub key_column: Option<String>,
    /// The column that holds the value (a string keyspace), or each element (a list keyspace).
    pub value_column: Option<String>,
    /// The columns a hash keyspace maps, each a field of the hash named as the column, in this
    /// order; absent with `type = "hash"`: every column of the table but the key column.
    /// Setting it makes the keyspace a hash keyspace (a key is a row).
    #[serde(default)]
    pub columns: Option<Vec<String>>,
    /// What the keyspace holds: `"string"` (one column, `value_column`), `"hash"` (a row,
    /// `columns`), `"set"` or `"zset"` (a row per member: `member_column`, and a zset's
    /// `score_column`), `"list"` (a row per element: `position_column`, `value_column`).
    /// Absent: a hash when `columns` is set, a string otherwise.
    #[serde(default, rename = "type")]
    pub value_type: Option<KeyspaceType>,
    /// A set or sorted set keyspace: the column holding each member (one row per member;
    /// `key_column` is then the owner, unique only together with this column).
    #[serde(default)]
    pub member_column: Option<String>,
    /// A sorted set keyspace: the column holding each member's score (an integer or
    /// double-precision column).
    #[serde(default)]
    pub score_column: Option<String>,
    /// A list keyspace: the integer column that numbers each element (one row per element;
    /// `key_column` is then the owner, unique only together with this column). The list is
    /// the owner's rows in this column's order; a push takes the number one past an end.
    #[serde(default)]
    pub position_column: Option<String>,
    /// The write policy.
    pub policy: Policy,
    /// Lifetime of the cached copy. On mapped tables it bounds only the cache, never the row.
    #[serde(default, deserialize_with = "deserialize_optional_duration")]
    pub ttl: Option<Duration>,
    /// Write-back: longest time a write waits in the buffer before a flush starts.
    #[serde(
        default = "default_flush_interval",
        deserialize_with = "deserialize_duration"
    )]
    pub flush_interval: Duration,
    /// Write-back: most entries per flush transaction, and the size trigger: a flush starts at
    /// once when this many fresh keys are buffered, i.e. keys that became dirty since the last
    /// flush started and that no flush stored since the last timed one (each `flush_interval`
    /// starts afresh). Rewrites of a buffered or recently stored key never count, so a hot set
    /// of any size coalesces until `flush_interval`; a load of new keys flushes every
    /// `flush_batch` keys.
    #[serde(default = "default_flush_batch")]
    pub flush_batch: usize,
    /// Write-back: buffered entries at which new writes wait (backpressure).
    #[serde(default = "default_max_dirty")]
    pub max_dirty: usize,
    /// Write-back: how long a write waits for room before it fails with BUSY.
    #[serde(
        default = "default_backpressure_timeout",
        deserialize_with = "deserialize_duration"
    )]
    pub backpressure_timeout: Duration,
    /// Refuse to start when this write-back keyspace would run without a durable journal.
    #[serde(default)]
    pub critical: bool,
    /// Allow FLUSHDB / FLUSHALL to delete this mapped table's rows.
    #[serde(default)]
    pub allow_flush: bool,
    /// Mapped tables: what DEL does to the row.
    #[serde(default)]
    pub on_delete: OnDelete,
}

fn default_flush_interval() -> Duration {
    Duration::from_secs(1)
}
fn default_flush_batch() -> usize {
    512
}
fn default_max_dirty() -> usize {
    100_000
}
fn default_backpressure_timeout() -> Duration {
    Duration::from_secs(1)
}

impl KeyspaceConfig {
    /// A built-in keyspace entry (`keys = "*"`) with the given policy and default knobs.
    pub fn builtin(policy: Policy) -> Self {
        KeyspaceConfig {
            name: "default".to_string(),
            keys: "*".to_string(),
            table: None,
            key_column: None,
            value_column: None,
            columns: None,
            value_type: None,
            member_column: None,
            score_column: None,
            position_column: None,
            policy,
            ttl: None,
            flush_interval: default_flush_interval(),
            flush_batch: default_flush_batch(),
            max_dirty: default_max_dirty(),
            backpressure_timeout: default_backpressure_timeout(),
            critical: false,
            allow_flush: false,
            on_delete: OnDelete::SetNull,
        }
    }

    /// Whether this entry configures the built-in keyspace.
    pub fn is_builtin(&self) -> bool {
        self.keys == "*"
    }

    /// Whether this (mapped) entry maps hashes onto rows: `type = "hash"`, or `columns` set
    /// without a type.
    pub fn maps_rows(&self) -> bool {
        if self.maps_members() {
            return false;
        }
        match self.value_type {
            Some(t) => t == KeyspaceType::Hash,
            None => self.columns.is_some(),
        }
    }
}

impl KeyspaceConfig {
    /// Whether this (mapped) entry maps a collection onto a row per member: `type = "set"`,
    /// `"zset"` or `"list"`.
    pub fn maps_members(&self) -> bool {
        matches!(
            self.value_type,
            Some(KeyspaceType::Set) | Some(KeyspaceType::Zset) | Some(KeyspaceType::List)
        )
    }
}

impl Config {
    /// The store URL in force: `[store] url`, or the embedded SQLite file in the data dir.
    pub fn store_url(&self) -> String {
        match &self.store {
            Some(s) => s.url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("sluice.db").display()),
        }
    }
}

/// Parses `"250ms"`, `"1s"`, `"1h"`, `"1m 30s"`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?} ({e}); write e.g. \"250ms\", \"1s\" or \"1h\"")
    })
}

/// Parses `"256MiB"`, `"64KB"`, `"1gb"` or a plain byte count.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid size {text:?}; write e.g. \"256MiB\" or a byte count"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "invalid size unit {other:?} in {text:?}; use B, KB, KiB, MB, MiB, GB or GiB"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {text:?} is too large"))
}

/// For `#[serde(deserialize_with)]`: a duration written as text (see [`parse_duration`]).
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn deserialize_optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// For `#[serde(deserialize_with)]`: a size written as a byte count or as text (see
/// [`parse_size`]).
pub fn deserialize_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum SizeRepr {
        Int(u64),
        Text(String),
    }
    match SizeRepr::deserialize(d)? {
        SizeRepr::Int(n) => Ok(n),
        SizeRepr::Text(s) => parse_size(&s).map_err(serde::de::Error::custom),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_size("256MiB").unwrap(), 256 * 1024 * 1024);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("12 parsecs").is_err());
    }
}
