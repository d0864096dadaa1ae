//! Key routing between the nodes of a cluster (`[cluster] nodes`, see
//! `state::routing`): the redirection every keyed command passes first (`MOVED`, `CROSSSLOT`,
//! `CLUSTERDOWN`, as Redis Cluster answers them), and the commands cluster-aware clients ask
//! (CLUSTER KEYSLOT, SLOTS, SHARDS, NODES, INFO, MYID; READONLY, READWRITE, ASKING).
//!
//! Without `nodes` these answer as a redis-server without cluster support does.

use bytes::Bytes;

use super::lookup;
use super::spec::{Ctx, Handler, Spec};
use crate::frontend::Frame;
use crate::state::routing::{key_slot, Route, Routing};
use crate::state::{Session, Shared};

/// The cluster commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "cluster",
        arity: -2,
        flags: &[],
        categories: &["@slow"],
        summary: "A container for cluster commands.",
        subcommands: &[
            ("help", 2),
            ("info", 2),
            ("keyslot", 3),
            ("myid", 2),
            ("nodes", 2),
            ("shards", 2),
            ("slots", 2),
        ],
        handler: Handler::Sync(cluster),
        ..Spec::DEFAULT
    },
    Spec {
        name: "readonly",
        arity: 1,
        flags: &["loading", "stale", "fast"],
        categories: &["@fast", "@connection"],
        summary: "Enables read queries for a connection to a cluster replica node.",
        handler: Handler::Sync(cluster_only_ok),
        ..Spec::DEFAULT
    },
    Spec {
        name: "readwrite",
        arity: 1,
        flags: &["loading", "stale", "fast"],
        categories: &["@fast", "@connection"],
        summary: "Disables read queries for a connection to a cluster replica node.",
        handler: Handler::Sync(cluster_only_ok),
        ..Spec::DEFAULT
    },
    Spec {
        name: "asking",
        arity: 1,
        flags: &["fast"],
        categories: &["@fast", "@connection"],
        summary: "Sent by cluster clients after an -ASK redirect.",
        handler: Handler::Sync(cluster_only_ok),
        ..Spec::DEFAULT
    },
];

fn disabled() -> Frame {
    Frame::error("ERR This instance has cluster support disabled")
}

/// READONLY, READWRITE, ASKING: every node is a primary and no slot ever migrates, so there is
/// nothing for them to change; `OK`, as Redis Cluster answers them.
fn cluster_only_ok(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    match ctx.shared.routing {
        Some(_) => Frame::ok(),
        None => disabled(),
    }
}

/// CLUSTER KEYSLOT | SLOTS | SHARDS | NODES | INFO | MYID | HELP
fn cluster(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let Some(routing) = &ctx.shared.routing else {
        return disabled();
    };
    let sub = argv[1].to_ascii_lowercase();
    match &sub[..] {
        b"keyslot" => Frame::Integer(key_slot(&argv[2]).into()),
        b"myid" => Frame::bulk(routing.own().id.clone()),
        b"slots" => slots(routing),
        b"shards" => shards(routing),
        // Verbatim text in RESP3 (a bulk string in RESP2), as Redis 7.0 answers them.
        b"nodes" => Frame::Verbatim(nodes(routing, ctx.shared.sluice.may_serve()).into()),
        b"info" => Frame::Verbatim(info(routing, ctx.shared.sluice.may_serve()).into()),
        _ => help(),
    }
}

/// CLUSTER SLOTS: each node's range, its address and ID, and (Redis 7.0) an empty map of
/// networking metadata.
fn slots(routing: &Routing) -> Frame {
    Frame::Array(
        routing
            .nodes()
            .iter()
            .map(|node| {
                Frame::Array(vec![
                    Frame::Integer(node.slots.0.into()),
                    Frame::Integer(node.slots.1.into()),
                    Frame::Array(vec![
                        Frame::bulk(node.host.clone()),
                        Frame::Integer(node.port.into()),
                        Frame::bulk(node.id.clone()),
                        // Networking metadata (hostname): none; a map in RESP3.
                        Frame::Map(Vec::new()),
                    ]),
                ])
            })
            .collect(),
    )
}

/// CLUSTER SHARDS: one shard per node, each a primary without replicas.
fn shards(routing: &Routing) -> Frame {
    Frame::Array(
        routing
            .nodes()
            .iter()
            .map(|node| {
                let described = Frame::Map(vec![
                    (Frame::bulk("id"), Frame::bulk(node.id.clone())),
                    (Frame::bulk("port"), Frame::Integer(node.port.into())),
                    (Frame::bulk("ip"), Frame::bulk(node.host.clone())),
                    (Frame::bulk("endpoint"), Frame::bulk(node.host.clone())),
                    (Frame::bulk("role"), Frame::bulk("master")),
                    (Frame::bulk("replication-offset"), Frame::Integer(0)),
                    (Frame::bulk("health"), Frame::bulk("online")),
                ]);
                Frame::Map(vec![
                    (
                        Frame::bulk("slots"),
                        Frame::Array(vec![
                            Frame::Integer(node.slots.0.into()),
                            Frame::Integer(node.slots.1.into()),
                        ]),
                    ),
                    (Frame::bulk("nodes"), Frame::Array(vec![described])),
                ])
            })
            .collect(),
    )
}

/// CLUSTER NODES: a line per node, as Redis writes them (`<id> <ip:port@cport> <flags>
/// <master> <ping-sent> <pong-recv> <config-epoch> <link-state> <slots>`). This node is
/// `myself,fail` while it may not serve (its claim ran out).
fn nodes(routing: &Routing, serving: bool) -> String {
    let mut out = String::new();
    let own = &routing.own().id;
    for node in routing.nodes() {
        let myself = node.id == *own;
        let flags = match (myself, serving) {
            (true, true) => "myself,master",
            (true, false) => "myself,master,fail",
            (false, _) => "master",
        };
        let bus = u32::from(node.port) + 10000;
        out.push_str(&format!(
            "{} {}:{}@{bus} {flags} - 0 0 0 connected {}-{}\n",
            node.id, node.host, node.port, node.slots.0, node.slots.1
        ));
    }
    out
}

/// CLUSTER INFO, with Redis 7.0's fields. The state is `fail` while this node may not serve.
fn info(routing: &Routing, serving: bool) -> String {
    let n = routing.nodes().len();
    let fields = [
        (
            "cluster_state",
            if serving { "ok" } else { "fail" }.to_string(),
        ),
        ("cluster_slots_assigned", "16384".to_string()),
        ("cluster_slots_ok", "16384".to_string()),
        ("cluster_slots_pfail", "0".to_string()),
        ("cluster_slots_fail", "0".to_string()),
        ("cluster_known_nodes", n.to_string()),
        ("cluster_size", n.to_string()),
        ("cluster_current_epoch", "0".to_string()),
        ("cluster_my_epoch", "0".to_string()),
        ("cluster_stats_messages_sent", "0".to_string()),
        ("cluster_stats_messages_received", "0".to_string()),
        ("total_cluster_links_buffer_limit_exceeded", "0".to_string()),
    ];
    let mut out = String::new();
    for (name, value) in fields {
        out.push_str(&format!("{name}:{value}\r\n"));
    }
    out
}

fn help() -> Frame {
    Frame::Array(
        [
            "CLUSTER <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "INFO",
            "    Return information about the cluster.",
            "KEYSLOT <key>",
            "    Return the hash slot for <key>.",
            "MYID",
            "    Return the node id.",
            "NODES",
            "    Return cluster configuration seen by node. Output format:",
            "    <id> <ip:port> <flags> <master> <pings> <pongs> <epoch> <link> <slot> ...",
            "SLOTS",
            "    Return information about slots range mappings. Each range is made of:",
            "    start, end, master and replicas IP addresses, ports and ids",
            "SHARDS",
            "    Return information about slot range mappings and the nodes associated with them.",
            "HELP",
            "    Prints this help.",
        ]
        .iter()
        .map(|s| Frame::Simple(s.to_string()))
        .collect(),
    )
}

/// Where a command must run, checked before it runs (or is queued) as Redis Cluster's
/// `getNodeByQuery` checks: `None` to run it here; otherwise the refusal. A command that names
/// no keys runs anywhere; EXEC is checked over every queued command together (one slot for
/// the whole transaction). A node whose claim on its name ran out serves none of its keys
/// (`CLUSTERDOWN`): another node may have taken its journal over.
pub fn redirect(
    routing: &Routing,
    shared: &Shared,
    session: &Session,
    spec: &Spec,
    args: &[Bytes],
) -> Option<Frame> {
    // EXEC: every queued command's keys together, one slot for the whole transaction.
    let keys: Vec<&Bytes> = if spec.name == "exec" {
        session
            .multi
            .as_ref()?
            .commands
            .iter()
            .filter_map(|queued| lookup(queued.first()?)?.request_keys(queued))
            .flatten()
            .collect()
    } else {
        spec.request_keys(args)?
    };
    if keys.is_empty() {
        return None;
    }
    let route = routing.route(keys.into_iter().map(|k| &k[..]));
    match route {
        Route::Here if shared.sluice.may_serve() => None,
        Route::Here => Some(Frame::error("CLUSTERDOWN The cluster is down")),
        Route::CrossSlot => Some(Frame::error(
            "CROSSSLOT Keys in request don't hash to the same slot",
        )),
        Route::Moved(slot, owner) => Some(Frame::error(routing.moved(slot, owner))),
    }
}

/// Whether a command a script sent may run here (Redis 7.0's `scriptVerifyClusterState`): its
/// keys are this node's, and, unless the script has the `allow-cross-slot-keys` flag, in the
/// one slot of the script's keys (its declared keys', or the first slot its calls reached).
/// The error as Redis raises it in the script.
pub fn check_script_call(
    routing: &Routing,
    shared: &Shared,
    session: &mut Session,
    spec: &Spec,
    args: &[Bytes],
) -> Option<Frame> {
    let keys = spec.request_keys(args)?;
    let first = keys.first().map(|k| key_slot(k));
    match routing.route(keys.into_iter().map(|k| &k[..])) {
        Route::Here if shared.sluice.may_serve() => {
            let slot = first?;
            if session.script_cross_slot {
                return None;
            }
            match session.script_slot {
                None => {
                    session.script_slot = Some(slot);
                    None
                }
                Some(s) if s == slot => None,
                Some(_) => Some(Frame::error(
                    "ERR Script attempted to access keys that do not hash to the same slot",
                )),
            }
        }
        Route::Here => Some(Frame::error(
            "ERR Script attempted to execute a command while the cluster is down",
        )),
        Route::CrossSlot | Route::Moved(..) => Some(Frame::error(
            "ERR Script attempted to access a non local key in a cluster node",
        )),
    }
}

/// FLUSHALL and FLUSHDB with `[cluster] nodes`: the nodes share one database, and a flush
/// here would delete the keys other nodes serve behind their caches and buffers (which would
/// then answer, and store, stale values).
pub fn flush_refused() -> Frame {
    Frame::error(
        "ERR FLUSHALL and FLUSHDB are refused with [cluster] nodes: they would delete the keys other nodes serve, behind their caches and buffers; delete keys by name (SCAN each node, then DEL or UNLINK)",
    )
}

/// Of the keys the store lists, those this node serves (all of them without `[cluster]
/// nodes`): KEYS, SCAN, RANDOMKEY and DBSIZE answer for this node's slots only, as a Redis
/// Cluster node does, so that a client asking every node sees each key once.
pub fn own_keys(shared: &Shared, mut keys: Vec<Bytes>) -> Vec<Bytes> {
    if let Some(routing) = &shared.routing {
        keys.retain(|k| routing.owns(key_slot(k)));
    }
    keys
}
