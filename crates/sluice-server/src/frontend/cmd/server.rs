//! Server commands: COMMAND, INFO, TIME, SHUTDOWN, FLUSHDB / FLUSHALL.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::redis_meta;
use super::spec::categories::ADMIN;
use super::spec::{boxed, Handler, Spec};
use super::spec::{Ctx, Table};
use super::util::{engine_error, is, syntax_error};
use crate::frontend::Frame;
use crate::glob::glob_match;
use crate::state::REDIS_COMPAT_VERSION;

/// The server commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "command",
        arity: -1,
        flags: &["loading", "stale"],
        categories: &["@slow", "@connection"],
        summary: "Returns detailed information about all commands.",
        subcommands: &[
            ("count", 2),
            ("info", -2),
            ("docs", -2),
            ("list", -2),
            ("getkeys", -4),
            ("help", 2),
        ],
        handler: Handler::Sync(command),
        ..Spec::DEFAULT
    },
    Spec {
        name: "info",
        arity: -1,
        flags: &["loading", "stale"],
        categories: &["@slow", "@dangerous"],
        summary: "Returns information and statistics about the server.",
        handler: boxed!(info),
        ..Spec::DEFAULT
    },
    Spec {
        name: "time",
        arity: 1,
        flags: &["loading", "stale", "fast"],
        categories: &["@fast"],
        summary: "Returns the server time.",
        handler: Handler::Sync(time),
        ..Spec::DEFAULT
    },
    Spec {
        name: "shutdown",
        arity: -1,
        flags: &[
            "admin",
            "noscript",
            "loading",
            "stale",
            "no_multi",
            "allow_busy",
        ],
        categories: ADMIN,
        summary: "Drains the write-back buffers and stops the server.",
        handler: Handler::Sync(shutdown),
        ..Spec::DEFAULT
    },
    Spec {
        name: "flushdb",
        arity: -1,
        flags: &["write"],
        categories: &["@keyspace", "@write", "@slow", "@dangerous"],
        summary: "Removes all keys from the current database.",
        handler: boxed!(flushdb),
        ..Spec::DEFAULT
    },
    Spec {
        name: "flushall",
        arity: -1,
        flags: &["write"],
        categories: &["@keyspace", "@write", "@slow", "@dangerous"],
        summary: "Removes all keys from all databases.",
        handler: boxed!(flushall),
        ..Spec::DEFAULT
    },
];

/// A command's COMMAND INFO entry: Redis 7.0's own (tips, key specs and all) for a command Redis
/// has, listing only the sub-commands Sluice has, in its table's order; Sluice's own for the
/// rest.
fn command_info(spec: &Spec) -> Frame {
    let Some(meta) = redis_meta::get(spec.name) else {
        return own_command_info(spec);
    };
    let mut fields = meta.info.clone();
    if !meta.subcommands.is_empty() {
        if let Some(subs) = fields.get_mut(9) {
            *subs = Frame::Array(
                spec.subcommands
                    .iter()
                    .map(|(sub, arity)| {
                        match meta.subcommands.get(&format!("{}|{sub}", spec.name)) {
                            Some(sub) => Frame::Array(sub.info.clone()),
                            None => own_subcommand_info(spec, sub, *arity),
                        }
                    })
                    .collect(),
            );
        }
    }
    Frame::Array(fields)
}

/// The COMMAND INFO entry of a command Redis does not have, from its spec: no tips, no key
/// specs.
fn own_command_info(spec: &Spec) -> Frame {
    let mut fields = own_info_head(spec);
    fields.extend([
        Frame::Set(vec![]),
        Frame::Set(vec![]),
        Frame::Array(
            spec.subcommands
                .iter()
                .map(|(sub, arity)| own_subcommand_info(spec, sub, *arity))
                .collect(),
        ),
    ]);
    Frame::Array(fields)
}

/// The first seven elements of a spec's COMMAND INFO entry: name, arity, flags, key positions
/// and ACL categories.
fn own_info_head(spec: &Spec) -> Vec<Frame> {
    let simple = |s: &&str| Frame::Simple(s.to_string());
    vec![
        Frame::bulk(spec.name),
        Frame::Integer(spec.arity as i64),
        Frame::Set(spec.flags.iter().map(simple).collect()),
        Frame::Integer(spec.keys.first as i64),
        Frame::Integer(spec.keys.last as i64),
        Frame::Integer(spec.keys.step as i64),
        Frame::Set(own_categories(spec)),
    ]
}

fn own_categories(spec: &Spec) -> Vec<Frame> {
    spec.acl_categories()
        .iter()
        .map(|c| Frame::Simple(format!("@{c}")))
        .collect()
}

/// The COMMAND INFO entry of a sub-command Redis 7.0 does not have (CLIENT SETINFO, from 7.2):
/// its arity and its container's ACL categories.
fn own_subcommand_info(spec: &Spec, sub: &str, arity: i32) -> Frame {
    Frame::Array(vec![
        Frame::bulk(format!("{}|{}", spec.name, sub)),
        Frame::Integer(arity as i64),
        Frame::Set(vec![]),
        Frame::Integer(0),
        Frame::Integer(0),
        Frame::Integer(0),
        Frame::Set(own_categories(spec)),
        Frame::Set(vec![]),
        Frame::Set(vec![]),
        Frame::Set(vec![]),
    ])
}

/// A command's COMMAND DOCS map: Redis 7.0's own for a command Redis has, its `subcommands`
/// listing only the sub-commands Sluice has; Sluice's own for the rest.
fn command_docs(spec: &Spec) -> Frame {
    let Some(meta) = redis_meta::get(spec.name) else {
        return own_command_docs(spec);
    };
    let mut pairs = meta.docs.clone();
    if !meta.subcommands.is_empty() {
        let subs = spec.subcommands.iter().map(|(sub, _)| {
            let name = format!("{}|{sub}", spec.name);
            let docs = match meta.subcommands.get(&name) {
                Some(sub) => Frame::Map(sub.docs.clone()),
                None => own_command_docs(spec),
            };
            (Frame::bulk(name), docs)
        });
        pairs.push((Frame::bulk("subcommands"), Frame::Map(subs.collect())));
    }
    Frame::Map(pairs)
}

/// The COMMAND DOCS map of a command Redis does not have (SLUICE.*): its summary and group.
fn own_command_docs(spec: &Spec) -> Frame {
    let group = if spec.categories.contains(&"@string") {
        "string"
    } else if spec.categories.contains(&"@connection") {
        "connection"
    } else if spec.categories.contains(&"@keyspace") {
        "generic"
    } else {
        "server"
    };
    Frame::Map(vec![
        (Frame::bulk("summary"), Frame::bulk(spec.summary)),
        (Frame::bulk("since"), Frame::bulk("1.0.0")),
        (Frame::bulk("group"), Frame::bulk(group)),
    ])
}

/// COMMAND [COUNT | INFO name... | DOCS name... | LIST]
fn command(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let table = ctx.table;
    let all = table.all();
    if args.len() == 1 {
        return Frame::Array(all.iter().map(|s| command_info(s)).collect());
    }
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"count" => Frame::Integer(all.len() as i64),
        b"getkeys" => command_getkeys(table, &args[2..]),
        b"list" => command_list(table, args),
        b"info" => {
            if args.len() == 2 {
                return Frame::Array(all.iter().map(|s| command_info(s)).collect());
            }
            Frame::Array(
                args[2..]
                    .iter()
                    .map(|n| table.lookup(n).map(command_info).unwrap_or(Frame::Null))
                    .collect(),
            )
        }
        b"docs" => {
            let specs: Vec<&Spec> = if args.len() == 2 {
                all.to_vec()
            } else {
                args[2..].iter().filter_map(|n| table.lookup(n)).collect()
            };
            Frame::Map(
                specs
                    .into_iter()
                    .map(|s| (Frame::bulk(s.name), command_docs(s)))
                    .collect(),
            )
        }
        _ => Frame::Array(
            [
                "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
                "GETKEYS <full-command>",
                "    Return the keys from a full Redis command.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}

/// COMMAND GETKEYS command [arg ...], with Redis 7.0's errors.
fn command_getkeys(table: &Table, request: &[Bytes]) -> Frame {
    let Some(spec) = table.lookup(&request[0]) else {
        return Frame::error("ERR Invalid command specified");
    };
    let mut arity = spec.arity;
    if !spec.subcommands.is_empty() {
        let Some((_, _, sub_arity)) = request.get(1).and_then(|sub| spec.subcommand(sub)) else {
            return Frame::error("ERR Invalid command specified");
        };
        arity = sub_arity;
    }
    let Some(keys) = spec.request_keys(request) else {
        return Frame::error("ERR The command has no key arguments");
    };
    let argc = request.len() as i64;
    if (arity > 0 && arity as i64 != argc) || argc < -(arity as i64) {
        return Frame::error("ERR Invalid number of arguments specified for command");
    }
    Frame::Array(keys.into_iter().map(|k| Frame::Bulk(k.clone())).collect())
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]: every command,
/// each followed by its sub-commands (`client|list`), as Redis lists them.
fn command_list(table: &Table, args: &[Bytes]) -> Frame {
    enum Filter<'a> {
        None,
        Module,
        AclCat(&'a [u8]),
        Pattern(Vec<u8>),
    }
    let mut filter = Filter::None;
    let mut i = 2;
    while i < args.len() {
        if !(is(&args[i], "filterby") && args.len() - 1 - i == 2) {
            return syntax_error();
        }
        let (kind, arg) = (&args[i + 1], &args[i + 2]);
        filter = if is(kind, "module") {
            Filter::Module
        } else if is(kind, "aclcat") {
            Filter::AclCat(arg)
        } else if is(kind, "pattern") {
            Filter::Pattern(arg.to_ascii_lowercase())
        } else {
            return syntax_error();
        };
        i += 3;
    }
    let mut names = Vec::new();
    for spec in table.all() {
        let wanted = |fullname: &str| match &filter {
            Filter::None => true,
            Filter::Module => false,
            Filter::AclCat(cat) => spec
                .acl_categories()
                .iter()
                .any(|c| c.as_bytes().eq_ignore_ascii_case(cat)),
            Filter::Pattern(p) => glob_match(p, fullname.as_bytes()),
        };
        if wanted(spec.name) {
            names.push(Frame::bulk(spec.name));
        }
        for (sub, _) in spec.subcommands {
            let fullname = format!("{}|{sub}", spec.name);
            if wanted(&fullname) {
                names.push(Frame::bulk(fullname));
            }
        }
    }
    Frame::Array(names)
}

/// INFO [section ...]
async fn info(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let wanted: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    // As Redis 7.0: `all` and `everything` are every section; the default ones leave out
    // commandstats (and latencystats, which Sluice does not keep).
    let all = wanted.iter().any(|w| w == "all" || w == "everything");
    let default = wanted.is_empty() || wanted.iter().any(|w| w == "default");
    let want = |s: &str| all || (default && s != "commandstats") || wanted.iter().any(|w| w == s);
    let shared = ctx.shared;
    let sluice = &shared.sluice;
    let mut out = String::new();
    if want("server") {
        let uptime = shared.started.elapsed().as_secs();
        let _ = write!(
            out,
            "# Server\r\nredis_version:{REDIS_COMPAT_VERSION}\r\nsluice_version:{}\r\nredis_mode:{}\r\nos:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\nexecutable:sluice\r\n\r\n",
            env!("CARGO_PKG_VERSION"),
            if shared.routing.is_some() {
                "cluster"
            } else {
                "standalone"
            },
            std::env::consts::OS,
            std::process::id(),
            shared.port,
            uptime / 86400,
        );
    }
    if want("clients") {
        let _ = write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:{}\r\n\r\n",
            shared.clients.count(),
            shared.settings.maxclients(),
            shared.blocking.blocked_clients()
        );
    }
    if want("memory") {
        let cache = sluice.cache_stats();
        let rss = crate::state::rss_bytes();
        let _ = write!(
            out,
            "# Memory\r\nused_memory:{rss}\r\nused_memory_rss:{rss}\r\nmaxmemory:0\r\nmaxmemory_policy:noeviction\r\ncache_entries:{}\r\ncache_bytes:{}\r\ncache_capacity:{}\r\n\r\n",
            cache.entries, cache.bytes, cache.capacity
        );
    }
    if want("persistence") {
        let _ = write!(
            out,
            "# Persistence\r\nloading:0\r\naof_enabled:0\r\nrdb_bgsave_in_progress:0\r\n\r\n"
        );
    }
    if want("stats") {
        let s = &shared.stats;
        let get_slot = ctx.table.lookup_slot(b"get").map(|(_, s)| s.index.into());
        let (hits, misses) = shared.command_stats.keyspace(get_slot);
        let _ = write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\nrejected_connections:{}\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\ntotal_error_replies:{}\r\n\r\n",
            s.connections.load(Ordering::Relaxed),
            s.commands.load(Ordering::Relaxed),
            s.rejected.load(Ordering::Relaxed),
            shared.command_stats.error_replies(),
        );
    }
    if want("replication") {
        out.push_str("# Replication\r\nrole:master\r\nconnected_slaves:0\r\n\r\n");
    }
    if want("commandstats") {
        out.push_str("# Commandstats\r\n");
        for (slot, name) in ctx.table.slot_names().iter().enumerate() {
            let c = shared.command_stats.counts(slot);
            if c.calls == 0 && c.rejected == 0 && c.failed == 0 {
                continue;
            }
            let usec = c.nanos / 1000;
            let _ = write!(
                out,
                "cmdstat_{name}:calls={},usec={usec},usec_per_call={:.2},rejected_calls={},failed_calls={}\r\n",
                c.calls,
                if c.calls == 0 { 0.0 } else { usec as f64 / c.calls as f64 },
                c.rejected,
                c.failed,
            );
        }
        out.push_str("\r\n");
    }
    if want("errorstats") {
        out.push_str("# Errorstats\r\n");
        for (prefix, count) in shared.command_stats.errors() {
            let _ = write!(
                out,
                "errorstat_{}:count={count}\r\n",
                String::from_utf8_lossy(&prefix)
            );
        }
        out.push_str("\r\n");
    }
    // Before Keyspace, as Redis orders it; tools tell a cluster node by `cluster_enabled`.
    if want("cluster") {
        let _ = write!(
            out,
            "# Cluster\r\ncluster_enabled:{}\r\n\r\n",
            u8::from(shared.routing.is_some())
        );
    }
    if want("keyspace") {
        out.push_str("# Keyspace\r\n");
        for db in 0..16u8 {
            if let Ok(keys) = ctx.access.keys(db).await {
                if !keys.is_empty() {
                    let mut expires = 0;
                    for k in &keys {
                        if let Ok(sluice::KeyTtl::ExpiresAt(_)) = ctx.access.peek_ttl(db, k).await {
                            expires += 1;
                        }
                    }
                    let _ = write!(
                        out,
                        "db{db}:keys={},expires={expires},avg_ttl=0\r\n",
                        keys.len()
                    );
                }
            }
        }
        out.push_str("\r\n");
    }
    if want("sluice") {
        let j = sluice.journal_stats();
        let _ = write!(
            out,
            "# Sluice\r\nstore:{}\r\njournal_durability:{}\r\njournal_bytes:{}\r\njournal_segments:{}\r\njournal_appends:{}\r\njournal_fsyncs:{}\r\njournal_writes_per_fsync:{:.2}\r\n",
            sluice.store_description(),
            sluice.durability().as_str(),
            j.bytes,
            j.segments,
            j.appends,
            j.syncs,
            j.appends as f64 / j.syncs.max(1) as f64,
        );
        match j.health.error() {
            None => out.push_str("journal_state:ok\r\n"),
            Some(e) => {
                let _ = write!(
                    out,
                    "journal_state:failed\r\njournal_error:{}\r\n",
                    e.to_string().replace(['\r', '\n'], " ")
                );
            }
        }
        if let Some(cluster) = sluice.config().cluster.as_ref() {
            // Asks the NATS servers (up to 1 s): only when the section is asked for by name.
            if all || wanted.iter().any(|w| w == "sluice") {
                for (name, value) in sluice.journal_remote_state().await {
                    let _ = write!(out, "{name}:{}\r\n", value.replace(['\r', '\n'], " "));
                }
            }
            let metrics = sluice.metrics();
            let _ = write!(
                out,
                "cluster_node:{}\r\ncluster_adoptions:{}\r\ncluster_adopted_records:{}\r\ncluster_adoption_failures:{}\r\n",
                cluster.node_name,
                metrics.adoptions.load(Ordering::Relaxed),
                metrics.adopted_records.load(Ordering::Relaxed),
                metrics.adoption_failures.load(Ordering::Relaxed),
            );
            match shared.pubsub.relay() {
                None => out.push_str("pubsub_relay:off\r\n"),
                Some(relay) => {
                    let _ = write!(
                        out,
                        "pubsub_relay:on\r\npubsub_relay_subject:{}\r\npubsub_relay_sent:{}\r\npubsub_relay_received:{}\r\npubsub_relay_dropped:{}\r\npubsub_relay_malformed:{}\r\npubsub_relay_queued_bytes:{}\r\n",
                        cluster.pubsub_subject(),
                        relay.sent.load(Ordering::Relaxed),
                        relay.received.load(Ordering::Relaxed),
                        relay.dropped.load(Ordering::Relaxed),
                        relay.malformed.load(Ordering::Relaxed),
                        relay.queued_bytes(),
                    );
                }
            }
        }
        let changes = &sluice.metrics().changes;
        let enabled = changes.enabled.load(Ordering::Relaxed);
        let _ = write!(out, "changes_enabled:{enabled}\r\n");
        if enabled == 1 {
            let _ = write!(
                out,
                "changes_applied:{}\r\nchanges_replaced:{}\r\nchanges_removed:{}\r\nchanges_unchanged:{}\r\nchanges_lost:{}\r\nchanges_errors:{}\r\nchanges_lag_ms:{}\r\nchanges_position:{}\r\nchanges_retained:{}\r\nchanges_retained_wal_bytes:{}\r\n",
                changes.applied.load(Ordering::Relaxed),
                changes.replaced.load(Ordering::Relaxed),
                changes.removed.load(Ordering::Relaxed),
                changes.unchanged.load(Ordering::Relaxed),
                changes.lost.load(Ordering::Relaxed),
                changes.errors.load(Ordering::Relaxed),
                changes.lag_ms.load(Ordering::Relaxed),
                changes.position.load(Ordering::Relaxed),
                changes.retained.load(Ordering::Relaxed),
                changes.retained_bytes.load(Ordering::Relaxed),
            );
        }
        for k in sluice.keyspaces() {
            let _ = write!(
                out,
                "keyspace_{}:policy={},template={},table={},durability={},buffered={},buffered_bytes={},oldest_buffered_age_ms={},writes={},flushes={},rows_stored={},store_errors={},retries={},dead_letters={},last_flush_us={},last_error={}\r\n",
                k.name,
                k.policy.as_str(),
                k.template,
                k.table,
                k.durability.as_str(),
                k.buffered,
                k.buffered_bytes,
                k.oldest_buffered_age_ms,
                k.writes,
                k.flushes,
                k.rows_stored,
                k.store_errors,
                k.retries,
                k.dead_letters,
                k.last_flush_us,
                k.last_error.unwrap_or_default().replace(['\r', '\n', ','], " "),
            );
        }
        out.push_str("\r\n");
    }
    if out.ends_with("\r\n\r\n") {
        out.truncate(out.len() - 2);
    }
    Frame::Verbatim(Bytes::from(out))
}

/// TIME
fn time(_ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Frame::Array(vec![
        Frame::bulk(now.as_secs().to_string()),
        Frame::bulk(now.subsec_micros().to_string()),
    ])
}

/// SHUTDOWN [NOSAVE|SAVE] [NOW] [FORCE] [ABORT]: drains and stops; the connection closes
/// without a reply, as with Redis.
fn shutdown(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    for a in argv.iter().skip(1) {
        if is(a, "abort") {
            return Frame::error("ERR No shutdown in progress.");
        }
        if !(is(a, "nosave") || is(a, "save") || is(a, "now") || is(a, "force")) {
            return syntax_error();
        }
    }
    ctx.shared.trigger_shutdown();
    ctx.session.reply = crate::state::ReplyMode::Close;
    Frame::ok()
}

/// Which databases FLUSHDB / FLUSHALL clear.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FlushScope {
    /// FLUSHDB: the selected database.
    Selected,
    /// FLUSHALL: every database.
    All,
}

/// FLUSHDB / FLUSHALL [ASYNC|SYNC]
async fn flush_scope(mut ctx: Ctx<'_>, argv: &mut [Bytes], scope: FlushScope) -> Frame {
    let args: &[Bytes] = argv;
    if args.len() > 2 || (args.len() == 2 && !(is(&args[1], "async") || is(&args[1], "sync"))) {
        return syntax_error();
    }
    if ctx.shared.routing.is_some() {
        return super::cluster::flush_refused();
    }
    let db = match scope {
        FlushScope::All => None,
        FlushScope::Selected => Some(ctx.session.db),
    };
    match ctx.access.flush_db(db).await {
        Ok(()) => {
            if ctx.shared.blocking.any_blocked() {
                ctx.shared.blocking.signal_flushed(db);
            }
            Frame::ok()
        }
        Err(e) => engine_error(e),
    }
}

/// FLUSHDB [ASYNC|SYNC]
async fn flushdb(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    flush_scope(ctx, argv, FlushScope::Selected).await
}

/// FLUSHALL [ASYNC|SYNC]
async fn flushall(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    flush_scope(ctx, argv, FlushScope::All).await
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Containers whose spec differs from Redis's entry on purpose: Sluice's sub-commands share
    /// their container's spec, so a container carries what Redis puts on its sub-commands.
    /// COMMAND INFO shows Redis's entry for them all the same.
    const HEAD_NOT_REDIS_S: &[(&str, &str)] = &[
        (
            "client",
            "@connection on the container lists CLIENT's sub-commands in ACL CAT connection",
        ),
        (
            "slowlog",
            "admin on the container keeps SLOWLOG @admin; Redis flags each sub-command",
        ),
        (
            "pubsub",
            "@pubsub on the container lists PUBSUB's sub-commands in ACL CAT pubsub",
        ),
    ];

    /// Sub-commands Sluice has and Redis 7.0 does not.
    const NOT_IN_REDIS: &[&str] = &["client|setinfo"];

    /// What Sluice enforces (its spec: arity, flags, key positions, ACL categories) is what
    /// COMMAND INFO shows from Redis's captured entry, and every command and sub-command but
    /// Sluice's own has a captured entry.
    #[test]
    fn specs_agree_with_redis_s_command_info() {
        let mut mismatches = Vec::new();
        for spec in super::super::commands() {
            if spec.name.starts_with("sluice.") {
                assert!(redis_meta::get(spec.name).is_none(), "{}", spec.name);
                continue;
            }
            let meta = redis_meta::get(spec.name)
                .unwrap_or_else(|| panic!("{} not in redis_meta.resp", spec.name));
            for (sub, _) in spec.subcommands {
                let name = format!("{}|{sub}", spec.name);
                assert!(
                    meta.subcommands.contains_key(&name) || NOT_IN_REDIS.contains(&&*name),
                    "{name} not in redis_meta.resp: run tools/gen_command_meta.py"
                );
            }
            if HEAD_NOT_REDIS_S.iter().any(|(n, _)| *n == spec.name) {
                continue;
            }
            if own_info_head(spec)[..] != meta.info[..7] {
                mismatches.push(format!(
                    "{}: sluice {:?}\n    redis {:?}",
                    spec.name,
                    own_info_head(spec),
                    &meta.info[..7]
                ));
            }
        }
        assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    }
}
