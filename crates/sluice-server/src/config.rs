//! The configuration file, and the server's part of it.
//!
//! One TOML file configures both crates. [`FileConfig`] reads it whole and splits it by who
//! uses it: the engine's [`sluice::Config`] (`[server] data_dir` and `shutdown_timeout`,
//! `[store]`, `[journal]`, `[cache]`, `[[keyspace]]`) and the front end's [`ServerConfig`]
//! (the rest of `[server]`, and `[[user]]`). Every section denies unknown fields, so a
//! misspelt knob stops start-up instead of being silently ignored.
//!
//! A leaf: it imports nothing from the rest of the server crate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use sluice::config::{
    deserialize_duration, deserialize_size, expand_env, CacheConfig, ChangesConfig, ClusterConfig,
    JournalConfig, KeyspaceConfig, StoreConfig,
};
use sluice::{Config, ConfigError};

/// The whole configuration file, split into the engine's settings and the server's.
#[derive(Debug, Clone, Default)]
pub struct FileConfig {
    /// What `sluice::Sluice::open` takes.
    pub engine: Config,
    /// What the listeners, connections and ACLs read.
    pub server: ServerConfig,
}

/// The front end's settings: `[server]` less the engine's `data_dir` and
/// `shutdown_timeout`, and the `[[user]]` list.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub bind: String,
    /// TCP port.
    pub port: u16,
    /// Maximum simultaneous client connections (Redis `maxclients`).
    pub maxclients: usize,
    /// Largest bulk string a client may send (Redis `proto-max-bulk-len`).
    pub proto_max_bulk_len: u64,
    /// Largest multibulk element count a client may announce.
    pub proto_max_multibulk_len: u64,
    /// Largest inline command line.
    pub proto_inline_max_size: u64,
    /// Password of the `default` user (Redis `requirepass`). [`FileConfig`] has already
    /// replaced any `${VAR}` with the variable's value.
    pub requirepass: Option<String>,
    /// Refuse to start when bound to a non-loopback address with no password set.
    pub protected_mode: bool,
    /// Close a client idle this long; 0 never (Redis `timeout`).
    pub timeout: Duration,
    /// Largest unparsed input one client may accumulate (Redis `client-query-buffer-limit`).
    pub client_query_buffer_limit: u64,
    /// Largest reply backlog one client may accumulate before it is disconnected. Redis has no
    /// limit for normal clients; Sluice bounds it so a client that never reads cannot grow the
    /// server without bound.
    pub client_output_buffer_limit: u64,
    /// A client whose pending replies make no progress (it does not read) for this long is
    /// disconnected.
    pub client_output_stall_timeout: Duration,
    /// A Lua script still running after this long is stopped (nothing it wrote is applied:
    /// a script's writes commit when it ends) and answers an error. 0: never, as in Redis
    /// (only SCRIPT KILL stops it).
    pub script_timeout: Duration,
    /// A Lua script still running after this long is busy (Redis `busy-reply-threshold`, alias
    /// `lua-time-limit`): a command that would wait for one of its keys is answered `BUSY`
    /// instead, until the script ends. Only those: other clients keep being served. A
    /// threshold not below a nonzero `script_timeout` never applies (the script is stopped
    /// first).
    pub busy_reply_threshold: Duration,
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
    /// The HTTP listener for `/metrics`, `/healthz` and `/readyz` (`[metrics]`).
    pub metrics: MetricsConfig,
    /// How log lines are written to stderr (`--log-format` overrides it).
    pub log_format: LogFormat,
    /// Which log lines are written: a level (`info`) or `tracing` directives
    /// (`sluice=debug,info`). `RUST_LOG`, when set, overrides it. Validated at load.
    pub log_level: Option<String>,
    /// Named users (Redis 6 ACL users) from `[[user]]`, besides `default`.
    pub users: Vec<UserConfig>,
}

/// `[metrics]`: the HTTP listener for Prometheus and health probes. Off unless `listen` is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `host:port` to serve `/metrics`, `/healthz` and `/readyz` on, e.g. `127.0.0.1:9121`.
    /// Beyond loopback the same protected-mode rule as the RESP port applies: a password
    /// (`requirepass` or `[[user]]`) must be set, and then `/metrics` asks for it (HTTP basic
    /// auth with an ACL user name and password).
    pub listen: Option<String>,
}

/// The shape of a log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One human-readable line per event; coloured only when stderr is a terminal, so a log
    /// written to a file or a pipe holds no ANSI escapes.
    #[default]
    Text,
    /// One JSON object per line (`timestamp`, `level`, `fields.message`, `target`), for log
    /// shippers.
    Json,
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
    /// The defaults of an empty file.
    fn default() -> Self {
        ServerSection::default().split(Vec::new()).0
    }
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

/// The file as written. Sections and fields are declared in the order the file format
/// documents them: serde lists them in that order when it refuses an unknown one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSections {
    #[serde(default)]
    server: ServerSection,
    store: Option<StoreConfig>,
    #[serde(default)]
    journal: JournalConfig,
    #[serde(default)]
    cache: CacheConfig,
    #[serde(default, rename = "keyspace")]
    keyspaces: Vec<KeyspaceConfig>,
    #[serde(default, rename = "user")]
    users: Vec<UserConfig>,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    changes: ChangesConfig,
    cluster: Option<ClusterConfig>,
}

/// `[server]` as written: the server's fields and the engine's `data_dir` and
/// `shutdown_timeout` in one table. One struct, not two, so an unknown key is refused with
/// every `[server]` key listed; `expecting` keeps the name errors have always shown. See
/// [`ServerConfig`] for each field.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, default, expecting = "struct ServerConfig")]
struct ServerSection {
    bind: String,
    port: u16,
    data_dir: PathBuf,
    maxclients: usize,
    #[serde(deserialize_with = "deserialize_size")]
    proto_max_bulk_len: u64,
    proto_max_multibulk_len: u64,
    #[serde(deserialize_with = "deserialize_size")]
    proto_inline_max_size: u64,
    #[serde(deserialize_with = "deserialize_duration")]
    shutdown_timeout: Duration,
    requirepass: Option<String>,
    protected_mode: bool,
    #[serde(deserialize_with = "deserialize_duration")]
    timeout: Duration,
    #[serde(deserialize_with = "deserialize_size")]
    client_query_buffer_limit: u64,
    #[serde(deserialize_with = "deserialize_size")]
    client_output_buffer_limit: u64,
    #[serde(deserialize_with = "deserialize_duration")]
    client_output_stall_timeout: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    script_timeout: Duration,
    #[serde(deserialize_with = "deserialize_duration")]
    busy_reply_threshold: Duration,
    tls_port: Option<u16>,
    tls_only: bool,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_ca_cert: Option<PathBuf>,
    io_threads: usize,
    log_format: LogFormat,
    log_level: Option<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        // The engine's two fields default as the engine's own `Config` does.
        let engine = Config::default();
        ServerSection {
            bind: "127.0.0.1".to_string(),
            port: 6380,
            data_dir: engine.data_dir,
            maxclients: 10_000,
            proto_max_bulk_len: 512 * 1024 * 1024,
            proto_max_multibulk_len: 1024 * 1024,
            proto_inline_max_size: 64 * 1024,
            shutdown_timeout: engine.shutdown_timeout,
            requirepass: None,
            protected_mode: true,
            timeout: Duration::ZERO,
            client_query_buffer_limit: 1024 * 1024 * 1024,
            client_output_buffer_limit: 256 * 1024 * 1024,
            client_output_stall_timeout: Duration::from_secs(60),
            script_timeout: Duration::from_secs(5),
            busy_reply_threshold: Duration::from_secs(5),
            tls_port: None,
            tls_only: false,
            tls_cert: None,
            tls_key: None,
            tls_ca_cert: None,
            io_threads: 0,
            log_format: LogFormat::Text,
            log_level: None,
        }
    }
}

impl ServerSection {
    /// The server's settings (with `users`), and the engine's `data_dir` and
    /// `shutdown_timeout`.
    fn split(self, users: Vec<UserConfig>) -> (ServerConfig, PathBuf, Duration) {
        let server = ServerConfig {
            bind: self.bind,
            port: self.port,
            maxclients: self.maxclients,
            proto_max_bulk_len: self.proto_max_bulk_len,
            proto_max_multibulk_len: self.proto_max_multibulk_len,
            proto_inline_max_size: self.proto_inline_max_size,
            requirepass: self.requirepass,
            protected_mode: self.protected_mode,
            timeout: self.timeout,
            client_query_buffer_limit: self.client_query_buffer_limit,
            client_output_buffer_limit: self.client_output_buffer_limit,
            client_output_stall_timeout: self.client_output_stall_timeout,
            script_timeout: self.script_timeout,
            busy_reply_threshold: self.busy_reply_threshold,
            tls_port: self.tls_port,
            tls_only: self.tls_only,
            tls_cert: self.tls_cert,
            tls_key: self.tls_key,
            tls_ca_cert: self.tls_ca_cert,
            io_threads: self.io_threads,
            metrics: MetricsConfig::default(),
            log_format: self.log_format,
            log_level: self.log_level,
            users,
        };
        (server, self.data_dir, self.shutdown_timeout)
    }
}

/// A level, or `tracing` directives. A lone word that is no level would parse as "everything
/// from the target of that name", which is never what `log_level = "verbose"` meant.
fn check_log_level(level: &str) -> Result<(), ConfigError> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    let hint = "use a level (off, error, warn, info, debug, trace) or directives such as \"sluice=debug,info\"";
    let lone_word = !level.contains(['=', ',', '[']);
    if lone_word && !LEVELS.contains(&level.trim().to_ascii_lowercase().as_str()) {
        return Err(ConfigError::invalid(
            "server.log_level",
            format!("{level:?} is not a level: {hint}"),
        ));
    }
    tracing_subscriber::EnvFilter::try_new(level)
        .map(drop)
        .map_err(|e| ConfigError::invalid("server.log_level", format!("{e}: {hint}")))
}

impl FileConfig {
    /// Parses a TOML document and reads `${VAR}` in the secrets from the environment. Errors
    /// name the line and the field.
    pub fn from_toml(text: &str) -> Result<FileConfig, ConfigError> {
        let sections: FileSections =
            toml::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        let (mut server, data_dir, shutdown_timeout) = sections.server.split(sections.users);
        server.metrics = sections.metrics;
        let mut config = FileConfig {
            engine: Config {
                data_dir,
                shutdown_timeout,
                store: sections.store,
                journal: sections.journal,
                cache: sections.cache,
                keyspaces: sections.keyspaces,
                changes: sections.changes,
                cluster: sections.cluster,
            },
            server,
        };
        config.expand_secrets()?;
        if let Some(cluster) = &config.engine.cluster {
            cluster.validate()?;
        }
        if let Some(level) = &config.server.log_level {
            check_log_level(level)?;
        }
        Ok(config)
    }

    /// Reads and parses a TOML file; a parse error names the file too.
    pub fn from_file(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            error: e.to_string(),
        })?;
        FileConfig::from_toml(&text).map_err(|e| match e {
            ConfigError::Parse(msg) => ConfigError::Parse(format!("{}: {msg}", path.display())),
            other => other,
        })
    }

    /// Resolves `${VAR}` in the fields that hold secrets, in file order, so the first
    /// unset variable reported is the first one written.
    fn expand_secrets(&mut self) -> Result<(), ConfigError> {
        if let Some(p) = &self.server.requirepass {
            self.server.requirepass = Some(expand_env("server.requirepass", p)?);
        }
        if let Some(store) = &mut self.engine.store {
            store.url = expand_env("store.url", &store.url)?;
        }
        for (i, user) in self.server.users.iter_mut().enumerate() {
            user.password = expand_env(
                &format!("user[{i}] \"{}\".password", user.name),
                &user.password,
            )?;
        }
        if let Some(cluster) = &mut self.engine.cluster {
            for (i, url) in cluster.nats_urls.iter_mut().enumerate() {
                *url = expand_env(&format!("cluster.nats_urls[{i}]"), url)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use sluice::{Durability, Policy};

    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let cfg = FileConfig::from_toml(
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
        let ks = &cfg.engine.keyspaces[0];
        assert_eq!(ks.policy, Policy::WriteThrough);
        assert_eq!(ks.ttl, Some(Duration::from_secs(3600)));
        assert_eq!(cfg.engine.journal.durability, Durability::Fsync);
    }

    #[test]
    fn the_cluster_section_reaches_the_engine_and_is_checked() {
        let cfg = FileConfig::from_toml(
            "[cluster]\nnode_name = \"node-a\"\nnats_urls = [\"nats://127.0.0.1:4222\"]\nreplicas = 3\npublish_timeout = \"20s\"\nnode_lease = \"5s\"\n",
        )
        .unwrap();
        let c = cfg.engine.cluster.as_ref().expect("a [cluster] section");
        assert_eq!(c.node_name, "node-a");
        assert_eq!(c.replicas, 3);
        assert_eq!(c.journal_stream, "SLUICE_JOURNAL");
        assert_eq!(c.journal_subject, "sluice.journal");
        assert_eq!(c.publish_timeout, std::time::Duration::from_secs(20));
        assert_eq!(c.node_lease, std::time::Duration::from_secs(5));
        assert!(c.relay_pubsub);
        assert_eq!(c.pubsub_subject(), "sluice.journal_pubsub");
        assert!(FileConfig::default().engine.cluster.is_none());
        for (text, field) in [
            (
                "node_name = \"a.b\"\nnats_urls = [\"nats://x:1\"]",
                "cluster.node_name",
            ),
            ("node_name = \"a\"\nnats_urls = []", "cluster.nats_urls"),
            (
                "node_name = \"a\"\nnats_urls = [\"nats://x:1\"]\nreplicas = 7",
                "cluster.replicas",
            ),
            (
                "node_name = \"a\"\nnats_urls = [\"nats://x:1\"]\njournal_subject = \"a..b\"",
                "cluster.journal_subject",
            ),
            (
                "node_name = \"a\"\nnats_urls = [\"nats://x:1\"]\nnode_lease = \"100ms\"",
                "cluster.node_lease",
            ),
            (
                "node_name = \"a\"\nnats_urls = [\"nats://x:1\"]\npubsub_subject = \"sluice.journal.x\"",
                "cluster.pubsub_subject",
            ),
            (
                "node_name = \"a\"\nnats_urls = [\"nats://x:1\"]\npubsub_subject = \"sluice.journal_nodes\"",
                "cluster.pubsub_subject",
            ),
            (
                "node_name = \"a\"\nnats_urls = [\"nats://x:1\"]\npubsub_subject = \"a.*\"",
                "cluster.pubsub_subject",
            ),
        ] {
            let err = FileConfig::from_toml(&format!("[cluster]\n{text}\n")).unwrap_err();
            assert!(err.to_string().contains(field), "{text}: {err}");
        }
        let err = FileConfig::from_toml("[cluster]\nnode_name = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("nats_urls"), "{err}");
    }

    #[test]
    fn the_changes_section_reaches_the_engine() {
        let cfg = FileConfig::from_toml(
            "[changes]\nenabled = true\nnode_name = \"a\"\npoll_interval = \"20ms\"\nmax_backlog = 10\nmax_slot_wal = \"2MiB\"\n",
        )
        .unwrap();
        let c = &cfg.engine.changes;
        assert!(c.enabled);
        assert_eq!(c.node_name, "a");
        assert_eq!(c.poll_interval, Duration::from_millis(20));
        assert_eq!(c.max_backlog, 10);
        assert_eq!(c.max_slot_wal, 2 << 20);
        assert!(!FileConfig::default().engine.changes.enabled);
        let err = FileConfig::from_toml("[changes]\nenable = true\n").unwrap_err();
        assert!(err.to_string().contains("enable"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_name() {
        let err = FileConfig::from_toml("[journal]\ndurabilty = \"os\"\n").unwrap_err();
        assert!(err.to_string().contains("durabilty"), "{err}");
    }

    #[test]
    fn unknown_policy_names_the_choices() {
        let err = FileConfig::from_toml(
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
    fn config_errors_from_toml_name_the_field() {
        let err = FileConfig::from_toml(
            r#"
            [[keyspace]]
            name = "price"
            keys = "product:{id}:price"
            table = "products"
            key_column = "id"
            value_column = "price"
            policy = "write-through"
            flush_intervall = "1s"
            "#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("flush_intervall"), "{err}");
    }

    #[test]
    fn server_section_feeds_the_engine_its_two_fields() {
        let cfg = FileConfig::from_toml(
            "[server]\nport = 7000\ndata_dir = \"/srv/sluice\"\nshutdown_timeout = \"5s\"\n",
        )
        .unwrap();
        assert_eq!(cfg.server.port, 7000);
        assert_eq!(cfg.engine.data_dir, PathBuf::from("/srv/sluice"));
        assert_eq!(cfg.engine.shutdown_timeout, Duration::from_secs(5));
        let empty = FileConfig::from_toml("").unwrap();
        let defaults = FileConfig::default();
        assert_eq!(empty.engine.data_dir, defaults.engine.data_dir);
        assert_eq!(
            empty.engine.shutdown_timeout,
            defaults.engine.shutdown_timeout
        );
        assert_eq!(empty.server.port, defaults.server.port);
    }

    #[test]
    fn unknown_server_fields_list_every_server_key() {
        let err = FileConfig::from_toml("[server]\nprot = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("unknown field `prot`")
                && err.contains("`data_dir`")
                && err.contains("`shutdown_timeout`")
                && err.contains("`io_threads`"),
            "{err}"
        );
        let err = FileConfig::from_toml("server = 5\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("expected struct ServerConfig"), "{err}");
    }

    #[test]
    fn secrets_come_from_the_environment() {
        std::env::set_var("SLUICE_CONFIG_TEST_SECRET", "s3cret");
        let cfg = FileConfig::from_toml(
            "[server]\nrequirepass = \"${SLUICE_CONFIG_TEST_SECRET}\"\n[[user]]\nname = \"app\"\npassword = \"x-${SLUICE_CONFIG_TEST_SECRET}\"\n",
        )
        .unwrap();
        assert_eq!(cfg.server.requirepass.as_deref(), Some("s3cret"));
        assert_eq!(cfg.server.users[0].password, "x-s3cret");
        let err =
            FileConfig::from_toml("[server]\nrequirepass = \"${SLUICE_CONFIG_TEST_UNSET_VAR}\"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("SLUICE_CONFIG_TEST_UNSET_VAR") && err.contains("server.requirepass"),
            "{err}"
        );
    }
}
