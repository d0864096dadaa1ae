//! Commands: the table assembled from each family's declarations, and dispatch.
//!
//! A command lives in one place: its family file declares its [`Spec`] (named fields) beside
//! its handler, and parses its arguments into a typed struct with the [`args::Args`] cursor
//! before it runs. Replies and error strings match redis-server 7 byte for byte.
//!
//! To add a command: write its handler and add its `Spec` to its family's `COMMANDS` list (a
//! new family is one more file and one more entry in [`FAMILIES`]).

use bytes::Bytes;

use super::frame::Frame;
use crate::state::{ReplyKind, Session, Shared, SlowCall};

pub mod acl;
pub mod args;
pub mod bitmap;
pub mod blocking;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod hashes;
pub mod keys;
pub mod latency;
pub mod lists;
pub mod memory;
pub mod object;
pub mod pubsub;
pub mod redis_meta;
pub mod scripting;
pub mod server;
pub mod sets;
pub mod slowlog;
pub mod sluice_cmds;
pub mod sluice_config;
pub mod spec;
pub mod stream_groups;
pub mod streams;
pub mod strings;
pub mod transactions;
pub mod util;
pub mod zsets;

pub use spec::{
    Ctx, ExpireBase, Handler, Hot, KeyPositions, Sign, Spec, StatSlot, Table, TimeUnit,
    FAMILY_NAMES,
};
pub use util::{engine_error, unknown_command, unknown_subcommand, wrong_arity};

/// Every family's command list, in the order COMMAND lists them.
const FAMILIES: &[&[Spec]] = &[
    strings::COMMANDS,
    keys::COMMANDS,
    hashes::COMMANDS,
    sets::COMMANDS,
    zsets::COMMANDS,
    lists::COMMANDS,
    streams::COMMANDS,
    stream_groups::COMMANDS,
    bitmap::COMMANDS,
    connection::COMMANDS,
    acl::COMMANDS,
    server::COMMANDS,
    config::COMMANDS,
    slowlog::COMMANDS,
    latency::COMMANDS,
    memory::COMMANDS,
    object::COMMANDS,
    pubsub::COMMANDS,
    cluster::COMMANDS,
    sluice_cmds::COMMANDS,
    transactions::COMMANDS,
    scripting::COMMANDS,
];

/// The command table.
pub fn table() -> &'static Table {
    static TABLE: std::sync::LazyLock<Table> = std::sync::LazyLock::new(|| Table::new(FAMILIES));
    &TABLE
}

/// Every command Sluice serves.
pub fn commands() -> &'static [&'static Spec] {
    table().all()
}

/// The spec of a command name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static Spec> {
    table().lookup(name)
}

fn arity_ok(arity: i32, argc: usize) -> bool {
    if arity >= 0 {
        argc == arity as usize
    } else {
        argc >= (-arity) as usize
    }
}

/// The full name of the command a request runs: `config|get` for a container's known
/// sub-command, else the command's own name.
pub(super) fn full_name_of(spec: &'static Spec, args: &[Bytes]) -> &'static str {
    match args.get(1).and_then(|sub| spec.subcommand(sub)) {
        Some((position, _, _)) => table().subcommand_name(spec, position),
        None => spec.name,
    }
}

/// Runs one request. A hot command may move its key and value out of `args` rather than
/// clone them (each clone is an atomic reference count on the request buffer); `args` is
/// only fit for recycling afterwards.
pub async fn dispatch(shared: &Shared, session: &mut Session, args: &mut [Bytes]) -> Frame {
    let table = table();
    let Some((spec, mut slot)) = table.lookup_slot(&args[0]) else {
        return rejected(
            shared,
            None,
            refuse_in_multi(session, unknown_command(args)),
        );
    };
    if !arity_ok(spec.arity, args.len()) {
        return rejected(
            shared,
            Some(slot),
            refuse(session, spec, wrong_arity(spec.name)),
        );
    }
    // A container with no sub-command runs itself (bare COMMAND lists every command).
    let mut full_name = spec.name;
    if !spec.subcommands.is_empty() && args.len() > 1 {
        match spec.subcommand(&args[1]) {
            None => {
                let refusal = refuse_in_multi(session, unknown_subcommand(spec.name, &args[1]));
                return rejected(shared, None, refusal);
            }
            Some((position, name, arity)) => {
                slot = slot.subcommand(position);
                if !arity_ok(arity, args.len()) {
                    let refusal = wrong_arity(&format!("{}|{}", spec.name, name));
                    return rejected(shared, Some(slot), refuse_in_multi(session, refusal));
                }
                full_name = table.subcommand_name(spec, position);
            }
        }
    }
    if let Some(denied) = acl::check(session, spec, full_name, args) {
        return rejected(shared, Some(slot), refuse(session, spec, denied));
    }
    // `[cluster] nodes`: one `Option` check unless keys are routed between nodes.
    if let Some(routing) = &shared.routing {
        if let Some(refusal) = routed_elsewhere(routing, shared, session, spec, args) {
            return rejected(shared, Some(slot), refusal);
        }
    }
    // RESP2's subscribed mode: one `Option` check unless the connection subscribed.
    if session.pubsub.is_some() {
        if let Some(refusal) = refused_while_subscribed(session, spec, full_name) {
            return rejected(shared, Some(slot), refuse(session, spec, refusal));
        }
    }
    // CLIENT PAUSE: one relaxed load unless a pause was set.
    if shared.pause.may_be_active() {
        if client_pause_wait(shared, session, spec, full_name, args).await {
            // Killed while it waited: the connection closes without running it.
            session.reply = crate::state::ReplyMode::Close;
            return Frame::Null;
        }
        // The node may have lost its claim on its name while the command waited.
        if let Some(routing) = &shared.routing {
            if let Some(refusal) = routed_elsewhere(routing, shared, session, spec, args) {
                return rejected(shared, Some(slot), refusal);
            }
        }
    }
    // Before queueing, as Redis sets `lastcmd`: CLIENT LIST shows `cmd=set` for a SET queued
    // after MULTI.
    session.last_command = full_name;
    if session.multi.is_some() && !transactions::runs_in_multi(spec) {
        let queued = transactions::queue(session, args);
        if let Frame::Error(line) = &queued {
            shared.command_stats.error_reply(line);
        }
        return queued;
    }
    // `run`'s body, inlined by hand: one future fewer to build and move on every command.
    // A blocked command run again after a wake-up was counted when it first ran, as Redis
    // counts it once.
    let retry = session.blocked.is_some();
    if !retry {
        shared
            .stats
            .commands
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    let started = shared.command_stats.start();
    let ctx = Ctx {
        shared,
        session,
        table,
        access: shared.sluice.access(),
    };
    // Only the commands outside `Hot` are timed for the slow log: GET/SET/INCR's path stays
    // free of argument copies (commandstats' clock is a TSC read).
    let slow = match spec.handler {
        Handler::Hot(hot) => {
            let reply = run_hot(ctx, hot, args).await;
            ran(shared, session, spec, slot, started, &reply);
            if !session.key_events.is_empty() {
                publish_key_events(shared, session);
            }
            return reply;
        }
        Handler::Sync(_) | Handler::Async(_) => SlowCall::start(&shared.settings, args),
    };
    let reply = match spec.handler {
        Handler::Sync(run) => run(ctx, args),
        Handler::Async(run) => run(ctx, args).await,
        Handler::Hot(hot) => run_hot(ctx, hot, args).await,
    };
    if !retry {
        ran(shared, session, spec, slot, started, &reply);
    }
    // What the command (or the EXEC or script it was) changed, now that it is applied.
    if !session.key_events.is_empty() {
        publish_key_events(shared, session);
    }
    if let Some(slow) = slow {
        shared.slowlog.finish(
            &shared.settings,
            slow,
            session.addr(),
            session.name.as_ref(),
        );
    }
    reply
}

/// Publishes the keyspace events the command staged. Out of line: off unless
/// `notify-keyspace-events` is set.
#[cold]
#[inline(never)]
fn publish_key_events(shared: &Shared, session: &mut Session) {
    shared.publish_key_events(session);
}

/// A command whose keys another node serves (`MOVED`), that spans slots (`CROSSSLOT`) or that
/// this node may not serve now (`CLUSTERDOWN`): refused as Redis Cluster refuses it. Inside MULTI the refusal dooms the transaction; a refused EXEC
/// discards it and answers the refusal itself, as Redis does. Out of line (not cold: with
/// `[cluster] nodes` every command passes here), so that `dispatch` stays small without it.
#[inline(never)]
fn routed_elsewhere(
    routing: &crate::state::routing::Routing,
    shared: &Shared,
    session: &mut Session,
    spec: &Spec,
    args: &[Bytes],
) -> Option<Frame> {
    let refusal = cluster::redirect(routing, shared, session, spec, args)?;
    if spec.name == "exec" {
        session.end_transaction();
        return Some(refusal);
    }
    Some(refuse_in_multi(session, refusal))
}

/// RESP2's subscribed mode: Redis's refusal of a command other than the (un)subscribe ones,
/// PING, QUIT and RESET. Out of line: most connections never subscribe.
#[cold]
#[inline(never)]
fn refused_while_subscribed(session: &Session, spec: &Spec, full_name: &str) -> Option<Frame> {
    (session.proto == 2 && session.subscribed() && !pubsub::allowed_while_subscribed(spec.name))
        .then(|| pubsub::refused_while_subscribed(full_name))
}

/// Runs a command whose name, arity and permissions were checked, reading and writing keys
/// through `access` (directly, or in the transaction of an EXEC). The session's last command
/// stays the EXEC or the script that runs it, as Redis's `lastcmd` does.
async fn run(
    shared: &Shared,
    session: &mut Session,
    spec: &'static Spec,
    access: sluice::Access<'_>,
    args: &mut [Bytes],
) -> Frame {
    shared
        .stats
        .commands
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let table = table();
    let slot = table.slot_of(spec, args);
    let started = shared.command_stats.start();
    let ctx = Ctx {
        shared,
        session,
        table,
        access,
    };
    let reply = match spec.handler {
        Handler::Hot(hot) => run_hot(ctx, hot, args).await,
        Handler::Sync(run) => run(ctx, args),
        Handler::Async(run) => run(ctx, args).await,
    };
    if let Some(slot) = slot {
        ran(shared, session, spec, slot, started, &reply);
    }
    // The EXEC or script this ran in must not count the error again if it passes it on.
    session.inner_error_counted |= reply.is_error();
    reply
}

/// Counts a command that ran (INFO commandstats; errorstats unless a command it ran, inside
/// EXEC or a script, counted the error already; a LATENCY `command` or `fast-command`
/// sample when it took at least `latency-monitor-threshold` ms).
#[inline(always)]
fn ran(
    shared: &Shared,
    session: &mut Session,
    spec: &Spec,
    slot: StatSlot,
    started: u64,
    reply: &Frame,
) {
    let stats = &shared.command_stats;
    let kind = match reply {
        Frame::Error(_) => ReplyKind::Error,
        Frame::Null => ReplyKind::Nil,
        _ => ReplyKind::Value,
    };
    let nanos = stats.called(
        session.id,
        slot.index.into(),
        slot.family.into(),
        started,
        kind,
    );
    let inner_error_counted = std::mem::take(&mut session.inner_error_counted);
    if let Frame::Error(line) = reply {
        if !inner_error_counted {
            stats.error_reply(line);
        }
    }
    // The threshold is whole ms: a faster command needs no look at it.
    if nanos >= 1_000_000 {
        let event = if spec.flags.contains(&"fast") {
            "fast-command"
        } else {
            "command"
        };
        shared
            .sluice
            .latency()
            .record(event, std::time::Duration::from_nanos(nanos));
    }
}

/// A refusal before the command ran: counted as an error reply, and as a rejected call of
/// the command (or sub-command) when it is known, as Redis's `rejectCommand` counts it.
fn rejected(shared: &Shared, slot: Option<StatSlot>, refusal: Frame) -> Frame {
    if let Some(slot) = slot {
        shared.command_stats.rejected(slot.index.into());
    }
    if let Frame::Error(line) = &refusal {
        shared.command_stats.error_reply(line);
    }
    refusal
}

/// A known command refused before it ran (arity, permissions): as [`refuse_in_multi`], and a
/// refused EXEC discards the transaction and unwatches, answering EXECABORT with the reason,
/// as Redis's `rejectCommand` does.
fn refuse(session: &mut Session, spec: &Spec, refusal: Frame) -> Frame {
    if spec.name != "exec" {
        return refuse_in_multi(session, refusal);
    }
    session.end_transaction();
    let Frame::Error(line) = refusal else {
        return refusal;
    };
    let reason = line.strip_prefix(b"ERR ").unwrap_or(&line);
    Frame::Error(
        [&b"EXECABORT Transaction discarded because of: "[..], reason]
            .concat()
            .into(),
    )
}

/// A command refused before it ran: inside MULTI the refusal also dooms the transaction
/// (EXEC answers EXECABORT), as Redis's `rejectCommand` flags it.
fn refuse_in_multi(session: &mut Session, refusal: Frame) -> Frame {
    if let Some(multi) = &mut session.multi {
        multi.refused = true;
    }
    refusal
}

/// Waits while a CLIENT PAUSE holds back this command, as Redis 7.0's `processCommand`
/// decides: every command under ALL; under WRITE, those that may write ([`paused_as_write`],
/// or EXEC of a queue holding one). Kept out of `dispatch`'s
/// own future, behind a box, as it is almost never needed. True if CLIENT KILL closed the
/// connection meanwhile.
#[cold]
fn client_pause_wait<'a>(
    shared: &'a Shared,
    session: &'a Session,
    spec: &'static Spec,
    full_name: &str,
    args: &[Bytes],
) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
    let queued_writes = spec.name == "exec"
        && session.multi.as_ref().is_some_and(|m| {
            m.commands.iter().any(|queued| {
                queued
                    .first()
                    .and_then(|name| lookup(name))
                    .is_some_and(|spec| {
                        paused_as_write(shared, spec, full_name_of(spec, queued), queued)
                    })
            })
        });
    let writes = paused_as_write(shared, spec, full_name, args) || queued_writes;
    let handle = session.handle().clone();
    Box::pin(async move {
        handle.note_paused(true);
        let killed = tokio::select! {
            _ = shared.pause.wait(writes) => false,
            _ = handle.killed() => true,
        };
        handle.note_paused(false);
        killed
    })
}

/// Whether CLIENT PAUSE WRITE holds a command back, as Redis 7.0 decides: one flagged `write`
/// (a container's sub-command by its own flags: XGROUP CREATE and FUNCTION FLUSH are held,
/// CONFIG SET and SCRIPT FLUSH are not), or `may_replicate`, a flag Redis 7.0's COMMAND INFO
/// does not show, so named here: PUBLISH, SPUBLISH, and EVAL / EVALSHA of a script whose
/// shebang does not say `no-writes` (an EVALSHA of an unknown script too, as in Redis).
fn paused_as_write(shared: &Shared, spec: &Spec, full_name: &str, args: &[Bytes]) -> bool {
    let writes = |flags: &[&str]| flags.contains(&"write");
    if full_name != spec.name {
        if let Some(meta) = redis_meta::subcommand(full_name) {
            return writes(&meta.flags());
        }
    }
    match spec.name {
        "publish" | "spublish" => true,
        "eval" => !args
            .get(1)
            .is_some_and(|source| crate::script::declares_no_writes(source)),
        "evalsha" => !args.get(1).is_some_and(|sha| {
            shared
                .scripting
                .cache
                .get(sha)
                .is_some_and(|script| script.flags().no_writes)
        }),
        _ => writes(spec.flags),
    }
}

/// Runs a hot command, awaited in place (see [`Hot`] for why only these).
async fn run_hot(ctx: Ctx<'_>, hot: Hot, args: &mut [Bytes]) -> Frame {
    // GET, SET and INCR answer at once when they need no wait: no future is built for them.
    let answer = match hot {
        // GET's keyspace hits and misses are its calls and nil replies (`CommandStats::keyspace`).
        Hot::Get => strings::get(ctx, args),
        Hot::Set => strings::set(ctx, args),
        Hot::IncrByOne(sign) => strings::incr_by_one(ctx, args, sign),
        Hot::IncrBy(sign) => strings::incrby(ctx, args, sign),
        Hot::SetNx => return strings::setnx(ctx, args).await,
        Hot::SetEx(unit) => return strings::setex(ctx, args, unit).await,
        Hot::Del => return keys::del(ctx, args).await,
        Hot::Expire(unit) => return keys::expire(ctx, args, unit, ExpireBase::Now).await,
        // Keyspace hits and misses from the replies, as Redis counts its `lookupKeyRead`s (a
        // key of the wrong type was found; writes count nothing).
        Hot::MGet | Hot::StrLen | Hot::Exists | Hot::Ttl(_) => {
            let stats = &ctx.shared.command_stats;
            let connection = ctx.session.id;
            let named_keys = args.len().saturating_sub(1);
            let reply = match hot {
                Hot::MGet => strings::mget(ctx, args).await,
                Hot::StrLen => strings::strlen(ctx, args).await,
                Hot::Ttl(unit) => keys::ttl(ctx, args, unit).await,
                _ => keys::exists(ctx, args).await,
            };
            let (hits, misses) = key_lookups(hot, named_keys, &reply);
            stats.keyspace_lookups(connection, hits, misses);
            return reply;
        }
    };
    match answer {
        Ok(reply) => reply,
        Err(later) => later.await,
    }
}

/// The keys a multi-key or non-GET read command found and missed, from its reply.
fn key_lookups(hot: Hot, named_keys: usize, reply: &Frame) -> (u64, u64) {
    let found = |hit: bool| if hit { (1, 0) } else { (0, 1) };
    let wrong_type = matches!(reply, Frame::Error(line) if line.starts_with(b"WRONGTYPE"));
    match (hot, reply) {
        (Hot::StrLen, _) if wrong_type => (1, 0),
        (Hot::StrLen, Frame::Integer(len)) => found(*len > 0),
        (Hot::Ttl(_), Frame::Integer(ttl)) => found(*ttl != -2),
        (Hot::MGet, Frame::Array(values)) => {
            let misses = values.iter().filter(|v| matches!(v, Frame::Null)).count() as u64;
            (values.len() as u64 - misses, misses)
        }
        (Hot::Exists, Frame::Integer(found)) => {
            let hits = found.unsigned_abs();
            (hits, (named_keys as u64).saturating_sub(hits))
        }
        _ => (0, 0),
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    /// Runs `commands` in one session against a fresh in-process engine; their replies.
    async fn run_all(commands: &[&[&[u8]]]) -> Vec<Frame> {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = sluice::Config {
            data_dir: dir.path().to_path_buf(),
            ..sluice::Config::default()
        };
        config.journal.durability = sluice::Durability::None;
        let sluice = sluice::Sluice::open(config).await.expect("open sluice");
        let shared = Shared::new(sluice, crate::config::ServerConfig::default(), 0, None)
            .expect("shared state");
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let mut session = shared.new_session(addr, addr, -1);
        let mut replies = Vec::new();
        for args in commands {
            let mut args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
            replies.push(dispatch(&shared, &mut session, &mut args).await);
        }
        replies
    }

    /// On a current-thread runtime a script cannot run inside `block_in_place`: it runs on a
    /// blocking thread and sends its calls back, with the same replies.
    #[tokio::test]
    async fn scripts_run_on_a_current_thread_runtime() {
        let replies = run_all(&[
            &[
                b"EVAL",
                b"redis.call('set', KEYS[1], ARGV[1]) return redis.call('incr', KEYS[1])",
                b"1",
                b"k",
                b"41",
            ],
            &[b"GET", b"k"],
            &[b"EVAL", b"return redis.call('nosuch')", b"0"],
        ])
        .await;
        assert_eq!(replies[0], Frame::Integer(42));
        assert_eq!(replies[1], Frame::bulk("42"));
        assert!(replies[2].is_error(), "{:?}", replies[2]);
    }

    /// Found by `fuzz/command_args`: a container command sent without a sub-command indexed
    /// past its arguments (COMMAND has arity -1), panicking the connection task.
    #[tokio::test]
    async fn bare_container_command_runs_itself() {
        let replies = run_all(&[&[b"COMMAND"], &[b"command"]]).await;
        for reply in replies {
            let Frame::Array(items) = reply else {
                panic!("COMMAND replied {reply:?}");
            };
            assert_eq!(items.len(), commands().len());
        }
    }

    /// Found by `fuzz/command_args`: ACL CAT echoed an unknown category with its CR and LF,
    /// breaking the reply framing. Now as Redis: up to a NUL, CR and LF made spaces.
    #[tokio::test]
    async fn acl_cat_error_stays_one_line() {
        let replies = run_all(&[&[b"ACL", b"CAT", b"st\n\r\0x"], &[b"acl", b"cat", b"\nno"]]).await;
        assert_eq!(
            replies,
            vec![
                Frame::error("ERR Unknown category 'st  '"),
                Frame::error("ERR Unknown category ' no'"),
            ]
        );
    }
}
