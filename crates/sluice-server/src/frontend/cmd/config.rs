//! CONFIG GET / SET / RESETSTAT / HELP, answering for every parameter Redis 7.0 has.
//!
//! Every parameter of Redis 7.0 is listed with its default ([`REDIS_PARAMETERS`], taken from
//! `CONFIG GET *` of redis-server 7.0.15); where Sluice has its own value (port, bind, dir,
//! limits, the settings CONFIG SET changes) that is shown instead. CONFIG SET applies the
//! parameters in [`Runtime`] and refuses the others with Redis's error shape, all or nothing.

use bytes::Bytes;

use super::sluice_config;
use super::spec::{Ctx, Handler, Spec};
use super::util::{c_str, format_error, is, syntax_error};
use crate::frontend::Frame;
use crate::glob::glob_match;
use crate::state::{keyspace_events, output_limits, OutputLimits, Shared};

/// The CONFIG command.
pub static COMMANDS: &[Spec] = &[Spec {
    name: "config",
    arity: -2,
    categories: &["@slow"],
    summary: "A container for server configuration commands.",
    subcommands: &[("get", -3), ("set", -4), ("resetstat", 2), ("help", 2)],
    handler: Handler::Sync(config),
    ..Spec::DEFAULT
}];

/// Whether Redis 7.0 lets CONFIG SET change a parameter.
#[derive(Clone, Copy, PartialEq, Eq)]
enum RedisChange {
    /// Changeable at run time.
    Mutable,
    /// `can't set immutable config`.
    Immutable,
    /// `can't set protected config` (with `enable-protected-configs no`, the default).
    Protected,
}

use RedisChange::{Immutable, Mutable, Protected};

/// Every parameter `CONFIG GET *` shows in Redis 7.0.15, with its default value.
static REDIS_PARAMETERS: &[(&str, &str, RedisChange)] = &[
    ("acl-pubsub-default", "resetchannels", Mutable),
    ("aclfile", "", Immutable),
    ("acllog-max-len", "128", Mutable),
    ("active-defrag-cycle-max", "25", Mutable),
    ("active-defrag-cycle-min", "1", Mutable),
    ("active-defrag-ignore-bytes", "104857600", Mutable),
    ("active-defrag-max-scan-fields", "1000", Mutable),
    ("active-defrag-threshold-lower", "10", Mutable),
    ("active-defrag-threshold-upper", "100", Mutable),
    ("active-expire-effort", "1", Mutable),
    ("activedefrag", "no", Mutable),
    ("activerehashing", "yes", Mutable),
    ("always-show-logo", "no", Immutable),
    ("aof-disable-auto-gc", "no", Mutable),
    ("aof-load-truncated", "yes", Mutable),
    ("aof-rewrite-incremental-fsync", "yes", Mutable),
    ("aof-timestamp-enabled", "no", Mutable),
    ("aof-use-rdb-preamble", "yes", Mutable),
    ("aof_rewrite_cpulist", "", Immutable),
    ("appenddirname", "appendonlydir", Immutable),
    ("appendfilename", "appendonly.aof", Immutable),
    ("appendfsync", "everysec", Mutable),
    ("appendonly", "no", Mutable),
    ("auto-aof-rewrite-min-size", "67108864", Mutable),
    ("auto-aof-rewrite-percentage", "100", Mutable),
    ("bgsave_cpulist", "", Immutable),
    ("bind", "* -::*", Mutable),
    ("bind-source-addr", "", Mutable),
    ("bio_cpulist", "", Immutable),
    ("busy-reply-threshold", "5000", Mutable),
    (
        "client-output-buffer-limit",
        "normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        Mutable,
    ),
    ("client-query-buffer-limit", "1073741824", Mutable),
    ("cluster-allow-pubsubshard-when-down", "yes", Mutable),
    ("cluster-allow-reads-when-down", "no", Mutable),
    ("cluster-allow-replica-migration", "yes", Mutable),
    ("cluster-announce-bus-port", "0", Mutable),
    ("cluster-announce-hostname", "", Mutable),
    ("cluster-announce-ip", "", Mutable),
    ("cluster-announce-port", "0", Mutable),
    ("cluster-announce-tls-port", "0", Mutable),
    ("cluster-config-file", "nodes.conf", Immutable),
    ("cluster-enabled", "no", Immutable),
    ("cluster-link-sendbuf-limit", "0", Mutable),
    ("cluster-migration-barrier", "1", Mutable),
    ("cluster-node-timeout", "15000", Mutable),
    ("cluster-port", "0", Immutable),
    ("cluster-preferred-endpoint-type", "ip", Mutable),
    ("cluster-replica-no-failover", "no", Mutable),
    ("cluster-replica-validity-factor", "10", Mutable),
    ("cluster-require-full-coverage", "yes", Mutable),
    ("cluster-slave-no-failover", "no", Mutable),
    ("cluster-slave-validity-factor", "10", Mutable),
    ("crash-log-enabled", "yes", Mutable),
    ("crash-memcheck-enabled", "yes", Mutable),
    ("daemonize", "no", Immutable),
    ("databases", "16", Immutable),
    ("dbfilename", "dump.rdb", Protected),
    ("dir", "", Protected),
    ("disable-thp", "yes", Immutable),
    ("dynamic-hz", "yes", Mutable),
    ("enable-debug-command", "no", Immutable),
    ("enable-module-command", "no", Immutable),
    ("enable-protected-configs", "no", Immutable),
    ("hash-max-listpack-entries", "512", Mutable),
    ("hash-max-listpack-value", "64", Mutable),
    ("hash-max-ziplist-entries", "512", Mutable),
    ("hash-max-ziplist-value", "64", Mutable),
    ("hll-sparse-max-bytes", "3000", Mutable),
    ("hz", "10", Mutable),
    ("ignore-warnings", "", Mutable),
    ("io-threads", "1", Immutable),
    ("io-threads-do-reads", "no", Immutable),
    ("jemalloc-bg-thread", "yes", Mutable),
    ("latency-monitor-threshold", "0", Mutable),
    ("latency-tracking", "yes", Mutable),
    ("latency-tracking-info-percentiles", "50 99 99.9", Mutable),
    ("lazyfree-lazy-eviction", "no", Mutable),
    ("lazyfree-lazy-expire", "no", Mutable),
    ("lazyfree-lazy-server-del", "no", Mutable),
    ("lazyfree-lazy-user-del", "no", Mutable),
    ("lazyfree-lazy-user-flush", "no", Mutable),
    ("lfu-decay-time", "1", Mutable),
    ("lfu-log-factor", "10", Mutable),
    ("list-compress-depth", "0", Mutable),
    ("list-max-listpack-size", "-2", Mutable),
    ("list-max-ziplist-size", "-2", Mutable),
    ("logfile", "", Immutable),
    ("loglevel", "notice", Mutable),
    ("lua-time-limit", "5000", Mutable),
    ("masterauth", "", Mutable),
    ("masteruser", "", Mutable),
    ("maxclients", "10000", Mutable),
    ("maxmemory", "0", Mutable),
    ("maxmemory-clients", "0", Mutable),
    ("maxmemory-eviction-tenacity", "10", Mutable),
    ("maxmemory-policy", "noeviction", Mutable),
    ("maxmemory-samples", "5", Mutable),
    ("min-replicas-max-lag", "10", Mutable),
    ("min-replicas-to-write", "0", Mutable),
    ("min-slaves-max-lag", "10", Mutable),
    ("min-slaves-to-write", "0", Mutable),
    ("no-appendfsync-on-rewrite", "no", Mutable),
    ("notify-keyspace-events", "", Mutable),
    ("oom-score-adj", "no", Mutable),
    ("oom-score-adj-values", "0 200 800", Mutable),
    ("pidfile", "", Immutable),
    ("port", "6379", Mutable),
    (
        "proc-title-template",
        "{title} {listen-addr} {server-mode}",
        Mutable,
    ),
    ("propagation-error-behavior", "ignore", Mutable),
    ("protected-mode", "yes", Mutable),
    ("proto-max-bulk-len", "536870912", Mutable),
    ("rdb-del-sync-files", "no", Mutable),
    ("rdb-save-incremental-fsync", "yes", Mutable),
    ("rdbchecksum", "yes", Immutable),
    ("rdbcompression", "yes", Mutable),
    ("repl-backlog-size", "1048576", Mutable),
    ("repl-backlog-ttl", "3600", Mutable),
    ("repl-disable-tcp-nodelay", "no", Mutable),
    ("repl-diskless-load", "disabled", Mutable),
    ("repl-diskless-sync", "yes", Mutable),
    ("repl-diskless-sync-delay", "5", Mutable),
    ("repl-diskless-sync-max-replicas", "0", Mutable),
    ("repl-ping-replica-period", "10", Mutable),
    ("repl-ping-slave-period", "10", Mutable),
    ("repl-timeout", "60", Mutable),
    ("replica-announce-ip", "", Mutable),
    ("replica-announce-port", "0", Mutable),
    ("replica-announced", "yes", Mutable),
    ("replica-ignore-disk-write-errors", "no", Mutable),
    ("replica-ignore-maxmemory", "yes", Mutable),
    ("replica-lazy-flush", "no", Mutable),
    ("replica-priority", "100", Mutable),
    ("replica-read-only", "yes", Mutable),
    ("replica-serve-stale-data", "yes", Mutable),
    ("replicaof", "", Immutable),
    ("requirepass", "", Mutable),
    ("sanitize-dump-payload", "no", Mutable),
    ("save", "", Mutable),
    ("server_cpulist", "", Immutable),
    ("set-max-intset-entries", "512", Mutable),
    ("set-proc-title", "yes", Immutable),
    ("shutdown-on-sigint", "default", Mutable),
    ("shutdown-on-sigterm", "default", Mutable),
    ("shutdown-timeout", "10", Mutable),
    ("slave-announce-ip", "", Mutable),
    ("slave-announce-port", "0", Mutable),
    ("slave-ignore-maxmemory", "yes", Mutable),
    ("slave-lazy-flush", "no", Mutable),
    ("slave-priority", "100", Mutable),
    ("slave-read-only", "yes", Mutable),
    ("slave-serve-stale-data", "yes", Mutable),
    ("slaveof", "", Immutable),
    ("slowlog-log-slower-than", "10000", Mutable),
    ("slowlog-max-len", "128", Mutable),
    ("socket-mark-id", "0", Immutable),
    ("stop-writes-on-bgsave-error", "yes", Mutable),
    ("stream-node-max-bytes", "4096", Mutable),
    ("stream-node-max-entries", "100", Mutable),
    ("supervised", "no", Immutable),
    ("syslog-enabled", "no", Immutable),
    ("syslog-facility", "local0", Immutable),
    ("syslog-ident", "redis", Immutable),
    ("tcp-backlog", "511", Immutable),
    ("tcp-keepalive", "300", Mutable),
    ("timeout", "0", Mutable),
    ("tls-auth-clients", "yes", Mutable),
    ("tls-ca-cert-dir", "", Mutable),
    ("tls-ca-cert-file", "", Mutable),
    ("tls-cert-file", "", Mutable),
    ("tls-ciphers", "", Mutable),
    ("tls-ciphersuites", "", Mutable),
    ("tls-client-cert-file", "", Mutable),
    ("tls-client-key-file", "", Mutable),
    ("tls-client-key-file-pass", "", Mutable),
    ("tls-cluster", "no", Mutable),
    ("tls-dh-params-file", "", Mutable),
    ("tls-key-file", "", Mutable),
    ("tls-key-file-pass", "", Mutable),
    ("tls-port", "0", Mutable),
    ("tls-prefer-server-ciphers", "no", Mutable),
    ("tls-protocols", "", Mutable),
    ("tls-replication", "no", Mutable),
    ("tls-session-cache-size", "20480", Mutable),
    ("tls-session-cache-timeout", "300", Mutable),
    ("tls-session-caching", "yes", Mutable),
    ("tracking-table-max-keys", "1000000", Mutable),
    ("unixsocket", "", Immutable),
    ("unixsocketperm", "0", Immutable),
    ("zset-max-listpack-entries", "128", Mutable),
    ("zset-max-listpack-value", "64", Mutable),
    ("zset-max-ziplist-entries", "128", Mutable),
    ("zset-max-ziplist-value", "64", Mutable),
];

/// The parameters Sluice changes at run time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    MaxClients,
    Timeout,
    RequirePass,
    NotifyKeyspaceEvents,
    ClientOutputBufferLimit,
    SlowlogLogSlowerThan,
    SlowlogMaxLen,
    LatencyMonitorThreshold,
}

impl Runtime {
    fn of(name: &str) -> Option<Runtime> {
        Some(match name {
            "maxclients" => Runtime::MaxClients,
            "timeout" => Runtime::Timeout,
            "requirepass" => Runtime::RequirePass,
            "notify-keyspace-events" => Runtime::NotifyKeyspaceEvents,
            "client-output-buffer-limit" => Runtime::ClientOutputBufferLimit,
            "slowlog-log-slower-than" => Runtime::SlowlogLogSlowerThan,
            "slowlog-max-len" => Runtime::SlowlogMaxLen,
            "latency-monitor-threshold" => Runtime::LatencyMonitorThreshold,
            _ => return None,
        })
    }

    /// The value to set, checked as Redis checks it, or Redis's reason for refusing it.
    fn parse(self, value: &[u8]) -> Result<NewValue, String> {
        // Redis's numeric parameters: strict integers (`string2ll`), then the range.
        let int = |min: i64, max: i64| {
            let n = sluice::numeric::parse_strict_i64(value)
                .ok_or("argument couldn't be parsed into an integer")?;
            if n < min || n > max {
                return Err(format!(
                    "argument must be between {min} and {max} inclusive"
                ));
            }
            Ok(n)
        };
        Ok(match self {
            Runtime::MaxClients => NewValue::Int(int(1, u32::MAX.into())?),
            Runtime::Timeout => NewValue::Int(int(0, i32::MAX.into())?),
            Runtime::SlowlogLogSlowerThan => NewValue::Int(int(-1, i64::MAX)?),
            Runtime::SlowlogMaxLen => NewValue::Int(int(0, i64::MAX)?),
            Runtime::LatencyMonitorThreshold => NewValue::Int(int(0, i64::MAX)?),
            Runtime::RequirePass => NewValue::Text(
                String::from_utf8(value.to_vec())
                    .map_err(|_| "Sluice passwords must be UTF-8".to_string())?,
            ),
            Runtime::NotifyKeyspaceEvents => NewValue::Flags(
                keyspace_events::parse(value)
                    .ok_or("Invalid event class character. Use 'Ag$lshzxeKEtmdn'.")?,
            ),
            Runtime::ClientOutputBufferLimit => {
                NewValue::OutputLimits(output_limits::parse(value)?)
            }
        })
    }

    fn apply(self, shared: &Shared, value: NewValue) {
        // Values were range-checked by `parse`: the conversions below cannot fail.
        match (self, value) {
            (Runtime::MaxClients, NewValue::Int(n)) => shared
                .settings
                .set_maxclients(usize::try_from(n).unwrap_or(usize::MAX)),
            (Runtime::Timeout, NewValue::Int(n)) => {
                shared.settings.set_timeout_secs(n.unsigned_abs())
            }
            (Runtime::SlowlogLogSlowerThan, NewValue::Int(n)) => {
                shared.settings.set_slowlog_log_slower_than(n)
            }
            (Runtime::SlowlogMaxLen, NewValue::Int(n)) => {
                shared.settings.set_slowlog_max_len(n.unsigned_abs())
            }
            (Runtime::LatencyMonitorThreshold, NewValue::Int(n)) => {
                shared.sluice.latency().set_threshold_ms(n.unsigned_abs())
            }
            (Runtime::RequirePass, NewValue::Text(password)) => {
                shared.users.set_default_password(Some(&password))
            }
            (Runtime::NotifyKeyspaceEvents, NewValue::Flags(flags)) => {
                shared.settings.set_notify_keyspace_events(flags)
            }
            (Runtime::ClientOutputBufferLimit, NewValue::OutputLimits(groups)) => {
                for (class, [hard, soft, secs]) in groups {
                    match class {
                        output_limits::Class::PubSub => shared.pubsub.set_limits(OutputLimits {
                            hard: usize::try_from(hard).unwrap_or(usize::MAX),
                            soft: usize::try_from(soft).unwrap_or(usize::MAX),
                            soft_for: std::time::Duration::from_secs(secs),
                        }),
                        output_limits::Class::Normal => shared
                            .settings
                            .set_shown_output_limit(0, [hard, soft, secs]),
                        output_limits::Class::Replica => shared
                            .settings
                            .set_shown_output_limit(1, [hard, soft, secs]),
                    }
                }
            }
            _ => {}
        }
    }
}

/// A checked CONFIG SET value.
enum NewValue {
    Int(i64),
    Text(String),
    Flags(u32),
    OutputLimits(Vec<(output_limits::Class, [u64; 3])>),
}

/// What CONFIG GET shows for `name`: Sluice's own value where it has one, else Redis's
/// default. The password is never shown.
fn value(shared: &Shared, name: &str, redis_default: &str) -> String {
    let config = &shared.config;
    let settings = &shared.settings;
    let yes_no = |b: bool| if b { "yes" } else { "no" }.to_string();
    let path = |p: &Option<std::path::PathBuf>| {
        p.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    };
    match name {
        "maxclients" => settings.maxclients().to_string(),
        "timeout" => settings.timeout().as_secs().to_string(),
        "slowlog-log-slower-than" => settings.slowlog_log_slower_than().to_string(),
        "slowlog-max-len" => settings.slowlog_max_len().to_string(),
        "latency-monitor-threshold" => shared.sluice.latency().threshold_ms().to_string(),
        "notify-keyspace-events" => settings.notify_keyspace_events(),
        "client-output-buffer-limit" => {
            let [normal, replica] = settings.shown_output_limits();
            let pubsub = shared.pubsub.limits();
            let pubsub = [
                pubsub.hard as u64,
                pubsub.soft as u64,
                pubsub.soft_for.as_secs(),
            ];
            let show = |[h, s, t]: [u64; 3]| format!("{h} {s} {t}");
            format!(
                "normal {} slave {} pubsub {}",
                show(normal),
                show(replica),
                show(pubsub)
            )
        }
        // Redis shows the password in clear; Sluice does not let it leave the process.
        "requirepass" if shared.users.auth_required() => "(redacted)".into(),
        "port" => shared.port.to_string(),
        "tls-port" => shared.tls_port.unwrap_or(0).to_string(),
        "bind" => config.bind.clone(),
        "dir" => shared.sluice.config().data_dir.display().to_string(),
        "protected-mode" => yes_no(config.protected_mode),
        "proto-max-bulk-len" => config.proto_max_bulk_len.to_string(),
        "client-query-buffer-limit" => config.client_query_buffer_limit.to_string(),
        "busy-reply-threshold" | "lua-time-limit" => {
            config.busy_reply_threshold.as_millis().to_string()
        }
        "tls-cert-file" => path(&config.tls_cert),
        "tls-key-file" => path(&config.tls_key),
        "tls-ca-cert-file" => path(&config.tls_ca_cert),
        "tls-auth-clients" => yes_no(config.tls_ca_cert.is_some()),
        "save" => String::new(),
        _ => redis_default.to_string(),
    }
}

/// CONFIG GET as Redis 7.0: a name without `[*?` is looked up case-insensitively and shown as
/// the client spelled it; a pattern matches case-insensitively; each parameter appears once.
fn config_get(shared: &Shared, patterns: &[Bytes]) -> Frame {
    let mut out: Vec<(Bytes, &'static str, &'static str)> = Vec::new();
    let seen = |out: &[(Bytes, &str, &str)], name: &[u8]| {
        out.iter().any(|(n, _, _)| n.eq_ignore_ascii_case(name))
    };
    // Sluice's own parameters (`sluice-*`), after Redis's.
    let sluice_params = sluice_config::parameters(&shared.sluice);
    let mut sluice_out: Vec<(Bytes, String)> = Vec::new();
    for pattern in patterns {
        if !c_str(pattern).iter().any(|b| b"[*?".contains(b)) {
            if seen(&out, pattern) {
                continue;
            }
            if let Some((name, default, _)) = REDIS_PARAMETERS
                .iter()
                .find(|(name, _, _)| is(pattern, name))
            {
                out.push((pattern.clone(), name, default));
            } else if let Some((_, value)) = sluice_params.iter().find(|(n, _)| is(pattern, n)) {
                sluice_out.push((pattern.clone(), value.clone()));
            }
            continue;
        }
        let pattern = c_str(pattern).to_ascii_lowercase();
        for (name, default, _) in REDIS_PARAMETERS {
            if !seen(&out, name.as_bytes()) && glob_match(&pattern, name.as_bytes()) {
                out.push((Bytes::from_static(name.as_bytes()), name, default));
            }
        }
        // Only a glob that names the prefix lists them: `*max*` answers exactly as Redis does.
        let sluice_glob = pattern.starts_with(b"sluice");
        for (name, value) in sluice_params.iter().filter(|_| sluice_glob) {
            let shown = |(n, _): &(Bytes, String)| n.eq_ignore_ascii_case(name.as_bytes());
            let lower = name.to_ascii_lowercase();
            if !sluice_out.iter().any(shown) && glob_match(&pattern, lower.as_bytes()) {
                sluice_out.push((Bytes::from(name.clone()), value.clone()));
            }
        }
    }
    let sluice_out = sluice_out
        .into_iter()
        .map(|(shown, value)| (Frame::Bulk(shown), Frame::bulk(value)));
    Frame::Map(
        out.into_iter()
            .map(|(shown, name, default)| {
                (
                    Frame::Bulk(shown),
                    Frame::bulk(value(shared, name, default)),
                )
            })
            .chain(sluice_out)
            .collect(),
    )
}

/// Why CONFIG SET refuses a call, as Redis words it.
enum SetError<'a> {
    Unknown(&'a [u8]),
    Failed(&'a [u8], String),
}

impl SetError<'_> {
    fn reply(self) -> Frame {
        match self {
            SetError::Unknown(name) => format_error(
                &[
                    &b"ERR Unknown option or number of arguments for CONFIG SET - '"[..],
                    c_str(name),
                    b"'",
                ]
                .concat(),
            ),
            SetError::Failed(name, why) => format_error(
                &[
                    &b"ERR CONFIG SET failed (possibly related to argument '"[..],
                    c_str(name),
                    b"') - ",
                    why.as_bytes(),
                ]
                .concat(),
            ),
        }
    }
}

/// CONFIG SET name value [name value ...] as Redis 7.0: every name is checked first (the first
/// unknown, unchangeable or repeated one fails the call), then every value, and only then is
/// anything applied.
fn config_set<'a>(shared: &Shared, pairs: &'a [Bytes]) -> Result<(), SetError<'a>> {
    let mut checked: Vec<(&'a [u8], &'static str, &'a [u8])> = Vec::new();
    let mut sluice_checked: Vec<(&'a [u8], sluice_config::Param, &'a [u8])> = Vec::new();
    let mut first_error = None;
    for pair in pairs.chunks(2) {
        let (name, new) = (&pair[0][..], &pair[1][..]);
        let Some((canonical, _, change)) = REDIS_PARAMETERS.iter().find(|(n, _, _)| is(name, n))
        else {
            match sluice_config::param(&shared.sluice, name) {
                None => {
                    first_error.get_or_insert(SetError::Unknown(name));
                }
                Some(_) if first_error.is_some() => {}
                Some(param) if sluice_checked.iter().any(|(_, p, _)| p.same(&param)) => {
                    first_error = Some(SetError::Failed(name, "duplicate parameter".into()));
                }
                Some(param) => sluice_checked.push((name, param, new)),
            }
            continue;
        };
        if first_error.is_some() {
            continue;
        }
        let why = match change {
            Immutable => "can't set immutable config",
            Protected => "can't set protected config",
            Mutable if checked.iter().any(|(_, c, _)| c == canonical) => "duplicate parameter",
            Mutable => {
                checked.push((name, canonical, new));
                continue;
            }
        };
        first_error = Some(SetError::Failed(name, why.to_string()));
    }
    if let Some(error) = first_error {
        return Err(error);
    }
    // Redis would apply a parameter it can change; Sluice refuses the ones it cannot, where
    // Redis refuses a bad value: after every name was found.
    let mut values = Vec::with_capacity(checked.len());
    for (name, canonical, new) in checked {
        let param = Runtime::of(canonical).ok_or_else(|| {
            SetError::Failed(
                name,
                "Sluice cannot change this parameter at run time; change the config file and restart"
                    .to_string(),
            )
        })?;
        values.push((
            param,
            param
                .parse(new)
                .map_err(|why| SetError::Failed(name, why))?,
        ));
    }
    let mut sluice_values = Vec::with_capacity(sluice_checked.len());
    for (name, param, new) in sluice_checked {
        let value = param
            .parse(new)
            .map_err(|why| SetError::Failed(name, why))?;
        sluice_values.push((param, value));
    }
    for (param, new) in values {
        param.apply(shared, new);
    }
    for (param, value) in sluice_values {
        param.apply(&shared.sluice, value);
    }
    Ok(())
}

/// CONFIG GET pattern... | SET name value... | RESETSTAT | HELP
fn config(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"get" => config_get(ctx.shared, &args[2..]),
        b"set" => {
            if !args.len().is_multiple_of(2) {
                return syntax_error();
            }
            match config_set(ctx.shared, &args[2..]) {
                Ok(()) => Frame::ok(),
                Err(e) => e.reply(),
            }
        }
        b"resetstat" => {
            ctx.shared.stats.reset();
            ctx.shared.command_stats.reset();
            Frame::ok()
        }
        _ => Frame::Array(
            [
                "CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}
