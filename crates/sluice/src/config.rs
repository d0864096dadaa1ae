//! The TOML configuration model.
//!
//! Every section denies unknown fields, so a misspelt knob stops start-up instead of being
//! silently ignored. Durations are strings such as `"250ms"`, `"1s"` or `"1h"`; sizes are
//! strings such as `"256MiB"` or plain byte counts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::ConfigError;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Network front end and data directory.
    #[serde(default)]
    pub server: ServerConfig,
    /// The database. Absent: SQLite at `<data_dir>/sluice.db`.
    pub store: Option<StoreConfig>,
    /// The write-back journal.
    #[serde(default)]
    pub journal: JournalConfig,
    /// The in-process cache tier.
    #[serde(default)]
    pub cache: CacheConfig,
    /// Keyspaces in match order; the first whose template matches a key owns it.
    #[serde(default, rename = "keyspace")]
    pub keyspaces: Vec<KeyspaceConfig>,
    /// Named users (Redis 6 ACL users), besides `default`.
    #[serde(default, rename = "user")]
    pub users: Vec<UserConfig>,
}

/// One `[[user]]`: a Redis ACL user.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    /// User name, as given to `AUTH name password`.
    pub name: String,
    /// Plaintext, `sha256:<64 hex digits>`, or `${VAR}`.
    pub password: String,
    /// Allowed command categories: `read`, `write`, `admin`, `dangerous`, or `all`.
    #[serde(default = "all_categories")]
    pub commands: Vec<String>,
    /// Allowed key patterns (Redis glob); default every key.
    #[serde(default = "all_keys")]
    pub keys: Vec<String>,
    /// A disabled user cannot authenticate.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn all_categories() -> Vec<String> {
    vec!["all".to_string()]
}
fn all_keys() -> Vec<String> {
    vec!["*".to_string()]
}
fn enabled() -> bool {
    true
}

/// Replaces every `${NAME}` in `text` with the environment variable NAME, so secrets need not
/// be written into the file. An unset variable is an error naming it and the field.
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

/// `[server]`: where Sluice listens and keeps its files.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to bind.
    pub bind: String,
    /// TCP port.
    pub port: u16,
    /// Directory for the embedded database, the journal and the dead letters.
    pub data_dir: PathBuf,
    /// Maximum simultaneous client connections (Redis `maxclients`).
    pub maxclients: usize,
    /// Largest bulk string a client may send (Redis `proto-max-bulk-len`).
    #[serde(deserialize_with = "de_size")]
    pub proto_max_bulk_len: u64,
    /// Largest multibulk element count a client may announce.
    pub proto_max_multibulk_len: u64,
    /// Largest inline command line.
    #[serde(deserialize_with = "de_size")]
    pub proto_inline_max_size: u64,
    /// How long a graceful shutdown may spend draining write-back buffers.
    #[serde(deserialize_with = "de_duration")]
    pub shutdown_timeout: Duration,
    /// Password of the `default` user (Redis `requirepass`); `${VAR}` reads the environment.
    pub requirepass: Option<String>,
    /// Refuse to start when bound to a non-loopback address with no password set.
    pub protected_mode: bool,
    /// Close a client idle this long; 0 never (Redis `timeout`).
    #[serde(deserialize_with = "de_duration")]
    pub timeout: Duration,
    /// Largest unparsed input one client may accumulate (Redis `client-query-buffer-limit`).
    #[serde(deserialize_with = "de_size")]
    pub client_query_buffer_limit: u64,
    /// Largest reply backlog one client may accumulate before it is disconnected. Redis has no
    /// limit for normal clients; Sluice bounds it so a client that never reads cannot grow the
    /// server without bound.
    #[serde(deserialize_with = "de_size")]
    pub client_output_buffer_limit: u64,
    /// A client whose pending replies make no progress (it does not read) for this long is
    /// disconnected.
    #[serde(deserialize_with = "de_duration")]
    pub client_output_stall_timeout: Duration,
    /// Port for TLS connections (beside `port`, or instead of it with `tls_only`).
    pub tls_port: Option<u16>,
    /// Serve only TLS: no plaintext listener on `port`.
    pub tls_only: bool,
    /// PEM certificate chain for TLS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS.
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle; when set, clients must present a certificate it signed.
    pub tls_ca_cert: Option<PathBuf>,
    /// Threads serving client connections (Redis `io-threads`). 0 picks one per core minus
    /// one, at least one: the journal, store and flusher threads need a core too, and on a
    /// small machine a load generator often shares it.
    pub io_threads: usize,
}

impl ServerConfig {
    /// The number of connection threads `io_threads` asks for, with 0 resolved.
    pub fn resolved_io_threads(&self) -> usize {
        if self.io_threads > 0 {
            return self.io_threads;
        }
        std::thread::available_parallelism()
            .map(|n| n.get().saturating_sub(1).max(1))
            .unwrap_or(1)
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            bind: "127.0.0.1".to_string(),
            port: 6380,
            data_dir: PathBuf::from("./sluice-data"),
            maxclients: 10_000,
            proto_max_bulk_len: 512 * 1024 * 1024,
            proto_max_multibulk_len: 1024 * 1024,
            proto_inline_max_size: 64 * 1024,
            shutdown_timeout: Duration::from_secs(30),
            requirepass: None,
            protected_mode: true,
            timeout: Duration::ZERO,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit: 256 * 1024 * 1024,
            client_output_stall_timeout: Duration::from_secs(60),
            tls_port: None,
            tls_only: false,
            tls_cert: None,
            tls_key: None,
            tls_ca_cert: None,
            io_threads: 0,
        }
    }
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
}

impl Durability {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Fsync => "fsync",
            Durability::Os => "os",
            Durability::Interval => "interval",
            Durability::None => "none",
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
    #[serde(deserialize_with = "de_duration")]
    pub fsync_interval: Duration,
    /// Size at which a journal segment is closed and a new one started.
    #[serde(deserialize_with = "de_size")]
    pub segment_size: u64,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            durability: Durability::Fsync,
            fsync_interval: Duration::from_secs(1),
            segment_size: 64 * 1024 * 1024,
        }
    }
}

/// `[cache]`: the in-process cache tier.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Capacity in bytes of keys plus values (plus a fixed per-entry overhead).
    #[serde(deserialize_with = "de_size")]
    pub capacity: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity: 256 * 1024 * 1024,
        }
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
    /// The column that holds the value.
    pub value_column: Option<String>,
    /// The write policy.
    pub policy: Policy,
    /// Lifetime of the cached copy. On mapped tables it bounds only the cache, never the row.
    #[serde(default, deserialize_with = "de_opt_duration")]
    pub ttl: Option<Duration>,
    /// Write-back: longest time a write waits in the buffer before a flush starts.
    #[serde(default = "default_flush_interval", deserialize_with = "de_duration")]
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
        deserialize_with = "de_duration"
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
}

impl Config {
    /// Parses a TOML document. Errors name the line and the field.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        config.expand_secrets()?;
        Ok(config)
    }

    /// Resolves `${VAR}` in the fields that hold secrets.
    fn expand_secrets(&mut self) -> Result<(), ConfigError> {
        if let Some(p) = &self.server.requirepass {
            self.server.requirepass = Some(expand_env("server.requirepass", p)?);
        }
        if let Some(store) = &mut self.store {
            store.url = expand_env("store.url", &store.url)?;
        }
        for (i, user) in self.users.iter_mut().enumerate() {
            user.password = expand_env(
                &format!("user[{i}] \"{}\".password", user.name),
                &user.password,
            )?;
        }
        Ok(())
    }

    /// Reads and parses a TOML file.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        Config::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse(msg) => ConfigError::Parse(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// The store URL in force: `[store] url`, or the embedded SQLite file in the data dir.
    pub fn store_url(&self) -> String {
        match &self.store {
            Some(s) => s.url.clone(),
            None => format!(
                "sqlite://{}",
                self.server.data_dir.join("sluice.db").display()
            ),
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

fn de_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn de_opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn de_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
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
    fn parses_the_documented_example() {
        let cfg = Config::from_toml(
            r#"
            [store]
            url = "sqlite://sluice-data/sluice.db"
            [journal]
            durability = "fsync"
            [[keyspace]]
            name = "product_price"
            keys = "product:{id}:price"
            table = "products"
            key_column = "id"
            value_column = "price"
            policy = "write-through"
            ttl = "1h"
            flush_interval = "1s"
            flush_batch = 512
            max_dirty = 100000
            backpressure_timeout = "1s"
            critical = false
            "#,
        )
        .unwrap();
        let ks = &cfg.keyspaces[0];
        assert_eq!(ks.policy, Policy::WriteThrough);
        assert_eq!(ks.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.journal.durability, Durability::Fsync);
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = Config::from_toml("[journal]\ndurabilty = \"os\"\n").unwrap_err();
        assert!(err.to_string().contains("durabilty"), "{err}");
    }

    #[test]
    fn unknown_policy_names_the_choices() {
        let err = Config::from_toml(
            "[[keyspace]]\nname = \"a\"\nkeys = \"a:{id}\"\npolicy = \"write-around\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("write-around") && err.contains("write-back"),
            "{err}"
        );
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_size("256MiB").unwrap(), 256 * 1024 * 1024);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("12 parsecs").is_err());
    }

    #[test]
    fn secrets_come_from_the_environment() {
        std::env::set_var("SLUICE_CONFIG_TEST_SECRET", "s3cret");
        let cfg = Config::from_toml(
            "[server]\nrequirepass = \"${SLUICE_CONFIG_TEST_SECRET}\"\n[[user]]\nname = \"app\"\npassword = \"x-${SLUICE_CONFIG_TEST_SECRET}\"\n",
        )
        .unwrap();
        assert_eq!(cfg.server.requirepass.as_deref(), Some("s3cret"));
        assert_eq!(cfg.users[0].password, "x-s3cret");
        let err =
            Config::from_toml("[server]\nrequirepass = \"${SLUICE_CONFIG_TEST_UNSET_VAR}\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("SLUICE_CONFIG_TEST_UNSET_VAR") && err.contains("server.requirepass"),
            "{err}"
        );
    }
}
