//! Stream consumer groups, Redis 7.0 exact: XGROUP (CREATE, SETID, DESTROY, CREATECONSUMER,
//! DELCONSUMER, HELP), XREADGROUP (with BLOCK and NOACK), XACK, XPENDING, XCLAIM, XAUTOCLAIM
//! and XINFO (STREAM [FULL], GROUPS, CONSUMERS, HELP).
//!
//! A stream's groups live in its metadata row (`sluice::model::stream_groups`): a command that
//! changes them goes through `Access::update_stream_groups`, one atomic read-modify-write that
//! rewrites that row only, so it is journalled, flushed and recovered as every stream write
//! is. Times (delivery, idle, seen) come from the engine's clock.
//!
//! A blocked XREADGROUP waits as XREAD does (`cmd::blocking`); every reader of the stream is
//! woken by a change to it, and the first to look takes the new entries for its group, so
//! which of several consumers blocked on one group gets an entry is not always the one that
//! blocked first, as Redis would pick. A deleted key answers it `UNBLOCKED`, a destroyed group
//! `NOGROUP`, as in Redis.

use bytes::Bytes;
use sluice::model::stream::{self, StreamId, StreamMeta};
use sluice::model::stream_groups::{radix_nodes, ClaimRules, Group, Groups, StreamFacts};
use sluice::SluiceError;

use super::blocking::{BlockKind, BlockingTurn};
use super::spec::{boxed, cmdspec, Ctx, KeyPositions, Spec};
use super::streams::{entry_frame, leave, parse_id, range_bound, streams_reply, Xread};
use super::util::{
    c_str, engine_error, format_error, int_arg, is, subcommand_syntax_error, syntax_error,
};
use crate::frontend::Frame;
use crate::state::keyspace_events::STREAM;

const WRITE_FAST: &[&str] = &["@write", "@stream", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@stream", "@slow"];
const BLOCKING: &[&str] = &["@write", "@stream", "@slow", "@blocking"];
const FIRST: KeyPositions = KeyPositions::FIRST;

/// The consumer-group commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "xgroup",
        arity: -2,
        categories: &["@slow"],
        summary: "A container for consumer groups commands",
        subcommands: &[
            ("createconsumer", 5),
            ("setid", -5),
            ("create", -5),
            ("destroy", 4),
            ("delconsumer", 5),
            ("help", 2),
        ],
        handler: boxed!(xgroup),
        ..Spec::DEFAULT
    },
    Spec {
        name: "xinfo",
        arity: -2,
        categories: &["@slow"],
        summary: "A container for stream introspection commands",
        subcommands: &[
            ("stream", -3),
            ("help", 2),
            ("groups", 3),
            ("consumers", 4),
        ],
        handler: boxed!(xinfo),
        ..Spec::DEFAULT
    },
    cmdspec!("xreadgroup", -7, &["write", "blocking", "movablekeys"], KeyPositions::AFTER_STREAMS, BLOCKING, xreadgroup,
        "Return new entries from a stream using a consumer group, or access the history of the pending entries for a given consumer. Can block."),
    cmdspec!("xack", -4, &["write", "fast"], FIRST, WRITE_FAST, xack,
        "Marks a pending message as correctly processed, effectively removing it from the pending entries list of the consumer group. Return value of the command is the number of messages successfully acknowledged, that is, the IDs we were actually able to resolve in the PEL."),
    cmdspec!("xpending", -3, &["readonly"], FIRST, READ_SLOW, xpending,
        "Return information and entries from a stream consumer group pending entries list, that are messages fetched but never acknowledged."),
    cmdspec!("xclaim", -6, &["write", "fast"], FIRST, WRITE_FAST, xclaim,
        "Changes (or acquires) ownership of a message in a consumer group, as if the message was delivered to the specified consumer."),
    cmdspec!("xautoclaim", -6, &["write", "fast"], FIRST, WRITE_FAST, xautoclaim,
        "Changes (or acquires) ownership of messages in a consumer group, as if the messages were delivered to the specified consumer."),
];

/// An error line echoing client bytes, as Redis's `addReplyErrorFormat` sends it.
fn error_of(parts: &[&[u8]]) -> Frame {
    format_error(&parts.concat())
}

/// `NOGROUP` for a group missing from an existing key (XGROUP, XINFO CONSUMERS).
fn no_such_group(key: &[u8], group: &[u8]) -> Frame {
    error_of(&[
        b"NOGROUP No such consumer group '",
        c_str(group),
        b"' for key name '",
        c_str(key),
        b"'",
    ])
}

/// `NOGROUP` for a missing key or group (XPENDING, XCLAIM, XAUTOCLAIM).
fn no_such_key_or_group(key: &[u8], group: &[u8]) -> Frame {
    error_of(&[
        b"NOGROUP No such key '",
        c_str(key),
        b"' or consumer group '",
        c_str(group),
        b"'",
    ])
}

fn help(lines: &[&str]) -> Frame {
    Frame::Array(lines.iter().map(|l| Frame::Simple((*l).into())).collect())
}

/// An ID as Redis replies it.
fn id_frame(id: StreamId) -> Frame {
    Frame::bulk(id.to_string())
}

/// What Redis's lag and read-counter rules need of a stream.
fn facts(image: &Bytes, meta: &StreamMeta) -> Result<StreamFacts, SluiceError> {
    Ok(StreamFacts {
        length: meta.length,
        last_id: meta.last_id,
        entries_added: meta.entries_added,
        max_deleted: meta.max_deleted,
        first_id: stream::first_live_id(image)?.unwrap_or(StreamId::MIN),
    })
}

/// A reply, and the consumer-creation events it caused, from inside a stream update.
type Served = (Frame, bool);

// ------------------------------------------------------------------------------- XGROUP

/// XGROUP CREATE | SETID | DESTROY | CREATECONSUMER | DELCONSUMER | HELP, checked in Redis's
/// order: the options, then the key (and its type), then the group, then the sub-command's
/// own arguments.
async fn xgroup(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let sub = argv[1].to_ascii_lowercase();
    if sub == b"help" {
        return help(&[
            "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CREATE <key> <groupname> <id|$> [option]",
            "    Create a new consumer group. Options are:",
            "    * MKSTREAM",
            "      Create the empty stream if it does not exist.",
            "    * ENTRIESREAD entries_read",
            "      Set the group's entries_read counter (internal use).",
            "CREATECONSUMER <key> <groupname> <consumer>",
            "    Create a new consumer in the specified group.",
            "DELCONSUMER <key> <groupname> <consumer>",
            "    Remove the specified consumer.",
            "DESTROY <key> <groupname>",
            "    Remove the specified group.",
            "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
            "    Set the current group ID and entries_read counter.",
            "HELP",
            "    Prints this help.",
        ]);
    }
    let (create, setid) = (sub == b"create", sub == b"setid");
    let mut mkstream = false;
    let mut entries_read: Option<i64> = None;
    let mut i = 5;
    while i < argv.len() {
        if create && is(&argv[i], "mkstream") {
            mkstream = true;
            i += 1;
        } else if (create || setid) && is(&argv[i], "entriesread") && i + 1 < argv.len() {
            match int_arg(&argv[i + 1]) {
                Ok(-1) => entries_read = None,
                Ok(n) if n >= 0 => entries_read = Some(n),
                Ok(_) => return Frame::error("ERR value for ENTRIESREAD must be positive or -1"),
                Err(e) => return e,
            }
            i += 2;
        } else {
            return subcommand_syntax_error("XGROUP", &argv[1]);
        }
    }
    let key = argv[2].clone();
    let name = argv[3].clone();
    let now = ctx.access.now_ms();
    let r = ctx
        .access
        .update_stream_groups(ctx.session.db, &key, mkstream, |_, meta, groups| {
            if groups.get(&name).is_none()
                && !mkstream
                && (setid || sub == b"createconsumer" || sub == b"delconsumer")
            {
                return Ok((no_such_group(&key, &name), None));
            }
            Ok(group_command(&sub, argv, meta, groups, entries_read, now))
        })
        .await;
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::error(
            "ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
        ),
        Ok(Some((reply, event))) => {
            if let Some(event) = event {
                ctx.notify(STREAM, event, &key);
            }
            reply
        }
    }
}

/// One XGROUP sub-command on an existing stream's groups: the reply and its event.
fn group_command(
    sub: &[u8],
    argv: &[Bytes],
    meta: &StreamMeta,
    groups: &mut Groups,
    entries_read: Option<i64>,
    now: u64,
) -> (Frame, Option<&'static str>) {
    let name = &argv[3];
    let argc = argv.len();
    let target = |arg: &[u8], strict: bool| -> Result<StreamId, Frame> {
        if arg == b"$" {
            return Ok(meta.last_id);
        }
        parse_id(arg, strict, 0, false).map(|(id, _)| id)
    };
    match sub {
        b"create" if (5..=8).contains(&argc) => match target(&argv[4], true) {
            Err(e) => (e, None),
            Ok(id) if groups.create(name.clone(), Group::new(id, entries_read)) => {
                (Frame::ok(), Some("xgroup-create"))
            }
            Ok(_) => (
                Frame::error("BUSYGROUP Consumer Group name already exists"),
                None,
            ),
        },
        b"setid" if argc == 5 || argc == 7 => match target(&argv[4], false) {
            Err(e) => (e, None),
            Ok(id) => {
                if let Some(group) = groups.get_mut(name) {
                    group.last_id = id;
                    group.entries_read = entries_read;
                }
                (Frame::ok(), Some("xgroup-setid"))
            }
        },
        b"destroy" => {
            if groups.destroy(name) {
                (Frame::Integer(1), Some("xgroup-destroy"))
            } else {
                (Frame::Integer(0), None)
            }
        }
        b"createconsumer" => {
            let created = groups
                .get_mut(name)
                .is_some_and(|g| g.create_consumer(&argv[4], now));
            (
                Frame::Integer(i64::from(created)),
                created.then_some("xgroup-createconsumer"),
            )
        }
        b"delconsumer" => match groups
            .get_mut(name)
            .and_then(|g| g.delete_consumer(&argv[4]))
        {
            Some(pending) => (Frame::Integer(pending as i64), Some("xgroup-delconsumer")),
            None => (Frame::Integer(0), None),
        },
        _ => (subcommand_syntax_error("XGROUP", &argv[1]), None),
    }
}

// --------------------------------------------------------------------------- XREADGROUP

/// How one stream of an XREADGROUP is read: its consumer's own pending entries after an ID,
/// or (`>`, kept as the largest ID, as Redis does) entries never delivered to the group.
#[derive(Clone, Copy)]
struct GroupRead<'a> {
    group: &'a Bytes,
    consumer: &'a Bytes,
    after: StreamId,
    count: usize,
    noack: bool,
    now: u64,
}

impl GroupRead<'_> {
    fn new_entries(&self) -> bool {
        self.after == StreamId::MAX
    }

    /// COUNT as a limit (0: none).
    fn limit(&self) -> usize {
        if self.count == 0 {
            usize::MAX
        } else {
            self.count
        }
    }

    /// Serves the read from `image` and its `groups`: the entries frame, or `None` where Redis
    /// serves nothing (no new entry after the group's last ID); and whether the consumer was
    /// created. `woken`: a blocked read's retry, which Redis serves once the stream's last ID
    /// passed the group's.
    fn serve(
        &self,
        image: &Bytes,
        meta: &StreamMeta,
        groups: &mut Groups,
        woken: bool,
    ) -> Result<Option<Served>, SluiceError> {
        let Some(group) = groups.get_mut(self.group) else {
            return Ok(None);
        };
        if !self.new_entries() {
            let created = group.touch_consumer(self.consumer, self.now);
            let ids: Vec<StreamId> = group
                .consumer(self.consumer)
                .map(|c| match self.after.next() {
                    Some(start) => c.pending_from(start).take(self.limit()).collect(),
                    None => Vec::new(),
                })
                .unwrap_or_default();
            let entries = stream::entries_at(image, &ids)?;
            let mut out = Vec::with_capacity(ids.len());
            for (id, entry) in ids.into_iter().zip(entries) {
                match entry {
                    Some(view) => {
                        out.push(entry_frame(image, view));
                        if let Some(p) = group.pending_mut(id) {
                            p.delivery_time = self.now;
                            p.delivery_count = p.delivery_count.wrapping_add(1);
                        }
                    }
                    None => out.push(Frame::Array(vec![id_frame(id), Frame::NullArray])),
                }
            }
            return Ok(Some((Frame::Array(out), created)));
        }
        let after = group.last_id;
        if woken {
            if meta.last_id <= after {
                return Ok(None);
            }
        } else if meta.length == 0 {
            return Ok(None);
        }
        let facts = facts(image, meta)?;
        let start = after.next().unwrap_or(StreamId::MAX);
        let count = (self.count > 0).then_some(self.count);
        let entries = stream::range(image, start, StreamId::MAX, false, count)?;
        if entries.is_empty() && !woken {
            return Ok(None);
        }
        let created = group.touch_consumer(self.consumer, self.now);
        let mut out = Vec::with_capacity(entries.len());
        for view in entries {
            let id = view.0;
            group.advance(&facts, id);
            if !self.noack {
                group.deliver(id, self.consumer, self.now);
            }
            out.push(entry_frame(image, view));
        }
        Ok(Some((Frame::Array(out), created)))
    }
}

/// XREADGROUP GROUP group consumer [COUNT count] [BLOCK milliseconds] [NOACK] STREAMS key
/// [key ...] id [id ...]
async fn xreadgroup(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = match Xread::parse(argv, ctx.session.in_script, true) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let Some((group, consumer)) = a.group.clone() else {
        return syntax_error();
    };
    let keys: Vec<Bytes> = argv[a.streams_at..a.streams_at + a.streams].to_vec();
    let ids_at = a.streams_at + a.streams;
    let turn = a.block.map(|ms| {
        let timeout = (ms > 0).then(|| std::time::Duration::from_millis(ms));
        BlockingTurn::begin(&mut ctx, &keys, timeout, BlockKind::Stream)
    });
    let now = ctx.access.now_ms();
    let retry = turn.as_ref().is_some_and(BlockingTurn::is_retry);
    if retry {
        return woken_group_read(ctx, turn, &keys, &group, &consumer, &a, now).await;
    }
    // First look: each key is looked up (its type and group checked), then its ID read.
    let mut afters = Vec::with_capacity(keys.len());
    for (n, key) in keys.iter().enumerate() {
        let r = ctx.access.stream_image(ctx.session.db, key.clone()).await;
        ctx.count_read(r.as_ref().map(Option::is_some));
        let image = match r {
            Ok(image) => image,
            Err(e) => return leave(turn, &mut ctx, engine_error(e)),
        };
        let has_group = match &image {
            None => false,
            Some(image) => match stream::meta(image).and_then(|m| Groups::decode(&m.groups)) {
                Ok(groups) => groups.get(&group).is_some(),
                Err(e) => return leave(turn, &mut ctx, engine_error(e.into())),
            },
        };
        if !has_group {
            let reply = error_of(&[
                b"NOGROUP No such key '",
                c_str(key),
                b"' or consumer group '",
                c_str(&group),
                b"' in XREADGROUP with GROUP option",
            ]);
            return leave(turn, &mut ctx, reply);
        }
        let arg = &argv[ids_at + n];
        let after = match &arg[..] {
            b"$" => return leave(turn, &mut ctx, Frame::error("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.")),
            b">" => StreamId::MAX,
            _ => match parse_id(arg, true, 0, false) {
                Ok((id, _)) => id,
                Err(e) => return leave(turn, &mut ctx, e),
            },
        };
        afters.push(after);
    }
    // Every stream served as one transaction: one that fails delivers nothing from the others.
    let reads: Vec<GroupRead<'_>> = afters
        .into_iter()
        .map(|after| GroupRead {
            group: &group,
            consumer: &consumer,
            after,
            count: a.count,
            noack: a.noack,
            now,
        })
        .collect();
    let r = ctx
        .access
        .update_streams_groups(ctx.session.db, &keys, |n, image, meta, groups| {
            reads[n].serve(image, meta, groups, false)
        })
        .await;
    let results = match r {
        Err(e) => return leave(turn, &mut ctx, engine_error(e)),
        Ok(results) => results,
    };
    let mut served = Vec::new();
    for (key, result) in keys.iter().zip(results) {
        // Redis looks each key up twice: once to check it, once to serve it.
        ctx.count_read(Ok(result.is_some()));
        if let Some(Some((frame, created))) = result {
            if created {
                ctx.notify(STREAM, "xgroup-createconsumer", key);
            }
            served.push((key.clone(), frame));
        }
    }
    if !served.is_empty() {
        let reply = streams_reply(ctx.session.proto, served);
        return leave(turn, &mut ctx, reply);
    }
    match turn {
        None => Frame::NullArray,
        Some(turn) => turn.wait(&mut ctx),
    }
}

/// A blocked XREADGROUP woken by a change to one of its keys: served from the first key, in
/// the order they became ready, whose stream passed the group's last ID; a deleted key or a
/// destroyed group ends the wait with Redis's error.
async fn woken_group_read(
    mut ctx: Ctx<'_>,
    turn: Option<BlockingTurn>,
    keys: &[Bytes],
    group: &Bytes,
    consumer: &Bytes,
    a: &Xread,
    now: u64,
) -> Frame {
    let Some(turn) = turn else {
        return Frame::NullArray;
    };
    // Redis serves a woken read at most 1000 entries when no COUNT was given.
    let read = GroupRead {
        group,
        consumer,
        after: StreamId::MAX,
        count: if a.count > 0 { a.count } else { 1000 },
        noack: a.noack,
        now,
    };
    for key in turn.keys_to_try(&ctx, keys) {
        let mut missing_group = false;
        let r = ctx
            .access
            .update_stream_groups(ctx.session.db, &key, false, |image, meta, groups| {
                missing_group = groups.get(group).is_none();
                read.serve(image, meta, groups, true)
            })
            .await;
        match r {
            Ok(None) | Err(SluiceError::WrongType) => {
                let reply = Frame::error("UNBLOCKED the stream key no longer exists");
                return turn.leave(&mut ctx, reply);
            }
            Ok(Some(_)) if missing_group => {
                let reply = Frame::error(
                    "NOGROUP the consumer group this client was blocked on no longer exists",
                );
                return turn.leave(&mut ctx, reply);
            }
            Err(SluiceError::Busy(_)) | Ok(Some(None)) => continue,
            Err(e) => return turn.leave(&mut ctx, engine_error(e)),
            Ok(Some(Some((frame, created)))) => {
                if created {
                    ctx.notify(STREAM, "xgroup-createconsumer", &key);
                }
                let reply = streams_reply(ctx.session.proto, vec![(key, frame)]);
                return turn.leave(&mut ctx, reply);
            }
        }
    }
    turn.wait(&mut ctx)
}

// ------------------------------------------------------------------------------- XACK

/// XACK key group id [id ...]: a missing key or group acknowledges nothing (before the IDs
/// are parsed); one bad ID acknowledges nothing.
async fn xack(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = argv[1].clone();
    let name = &argv[2];
    let ids = &argv[3..];
    let r = ctx
        .access
        .update_stream_groups(ctx.session.db, &key, false, |_, _, groups| {
            let Some(group) = groups.get_mut(name) else {
                return Ok(Frame::Integer(0));
            };
            let mut parsed = Vec::with_capacity(ids.len());
            for arg in ids {
                match parse_id(arg, true, 0, false) {
                    Ok((id, _)) => parsed.push(id),
                    Err(e) => return Ok(e),
                }
            }
            let acked = parsed.into_iter().filter(|id| group.ack(*id)).count();
            Ok(Frame::Integer(acked as i64))
        })
        .await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::Integer(0),
        Ok(Some(reply)) => reply,
    }
}

// ---------------------------------------------------------------------------- XPENDING

/// XPENDING key group [[IDLE min-idle-time] start end count [consumer]]: the arguments are
/// checked before the key is looked up, as Redis does.
async fn xpending(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let argc = argv.len();
    if argc != 3 && !(6..=9).contains(&argc) {
        return syntax_error();
    }
    let mut range = None;
    if argc >= 6 {
        let mut at = 3;
        let mut min_idle = 0i64;
        if is(&argv[3], "idle") {
            min_idle = match int_arg(&argv[4]) {
                Ok(n) => n,
                Err(e) => return e,
            };
            if argc < 8 {
                return syntax_error();
            }
            at += 2;
        }
        let count = match int_arg(&argv[at + 2]) {
            Ok(n) => n.max(0) as u64,
            Err(e) => return e,
        };
        let start = match range_bound(&argv[at], true) {
            Ok(id) => id,
            Err(e) => return e,
        };
        let end = match range_bound(&argv[at + 1], false) {
            Ok(id) => id,
            Err(e) => return e,
        };
        range = Some((start, end, count, min_idle, argv.get(at + 3).cloned()));
    }
    let key = argv[1].clone();
    let r = ctx.access.stream_image(ctx.session.db, key.clone()).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    let image = match r {
        Err(e) => return engine_error(e),
        Ok(None) => return no_such_key_or_group(&key, &argv[2]),
        Ok(Some(image)) => image,
    };
    let groups = match stream::meta(&image).and_then(|m| Groups::decode(&m.groups)) {
        Ok(groups) => groups,
        Err(e) => return engine_error(e.into()),
    };
    let Some(group) = groups.get(&argv[2]) else {
        return no_such_key_or_group(&key, &argv[2]);
    };
    let Some((start, end, count, min_idle, consumer)) = range else {
        return pending_summary(group);
    };
    let now = ctx.access.now_ms() as i64;
    // The consumer's own list, or the group's, from `start`: walked lazily, as far as COUNT.
    let ids: Box<dyn Iterator<Item = StreamId>> = match &consumer {
        Some(name) => match group.consumer(name) {
            None => return Frame::Array(Vec::new()),
            Some(c) => Box::new(c.pending_from(start)),
        },
        None => Box::new(group.pending().range(start..).map(|(id, _)| *id)),
    };
    let mut out = Vec::new();
    let mut left = count;
    for id in ids {
        if left == 0 || id > end {
            break;
        }
        let Some(p) = group.pending().get(&id) else {
            continue;
        };
        let idle = now.wrapping_sub(p.delivery_time as i64);
        if min_idle != 0 && idle < min_idle {
            continue;
        }
        left -= 1;
        out.push(Frame::Array(vec![
            id_frame(id),
            Frame::Bulk(p.consumer.clone()),
            Frame::Integer(idle.max(0)),
            Frame::Integer(p.delivery_count as i64),
        ]));
    }
    Frame::Array(out)
}

/// XPENDING's summary: how many are pending, the smallest and largest pending IDs, and each
/// consumer holding some with its count (a bulk string, as Redis answers it).
fn pending_summary(group: &Group) -> Frame {
    let pending = group.pending();
    let (Some((first, _)), Some((last, _))) = (pending.first_key_value(), pending.last_key_value())
    else {
        return Frame::Array(vec![
            Frame::Integer(0),
            Frame::Null,
            Frame::Null,
            Frame::NullArray,
        ]);
    };
    let consumers = group
        .consumers()
        .iter()
        .filter(|(_, c)| c.pending_len() > 0)
        .map(|(name, c)| {
            Frame::Array(vec![
                Frame::Bulk(name.clone()),
                Frame::bulk(c.pending_len().to_string()),
            ])
        })
        .collect();
    Frame::Array(vec![
        Frame::Integer(pending.len() as i64),
        id_frame(*first),
        id_frame(*last),
        Frame::Array(consumers),
    ])
}

// ------------------------------------------------------------------------------ XCLAIM

/// XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME unix-time-ms]
/// [RETRYCOUNT count] [FORCE] [JUSTID] [LASTID id]
async fn xclaim(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = argv[1].clone();
    let now = ctx.access.now_ms();
    let args: &[Bytes] = argv;
    let r = ctx
        .access
        .update_stream_groups(ctx.session.db, &key, false, |image, _, groups| {
            claim(image, groups, args, now)
        })
        .await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Err(e) => engine_error(e),
        Ok(None) => no_such_key_or_group(&key, &argv[2]),
        Ok(Some((reply, created))) => {
            if created {
                ctx.notify(STREAM, "xgroup-createconsumer", &key);
            }
            reply
        }
    }
}

/// XCLAIM's parsing and claiming, inside the stream's update, as Redis 7.0's
/// `xclaimCommand`: the IDs run until the first argument that is not one; the options
/// follow; an option error changes nothing.
fn claim(
    image: &Bytes,
    groups: &mut Groups,
    argv: &[Bytes],
    now: u64,
) -> Result<Served, SluiceError> {
    let (key, name, consumer) = (&argv[1], &argv[2], &argv[3]);
    let Some(group) = groups.get_mut(name) else {
        return Ok((no_such_key_or_group(key, name), false));
    };
    let min_idle = match int_arg(&argv[4]) {
        Ok(n) => n.max(0),
        Err(_) => {
            return Ok((
                Frame::error("ERR Invalid min-idle-time argument for XCLAIM"),
                false,
            ))
        }
    };
    let ids: Vec<StreamId> = argv[5..]
        .iter()
        .map_while(|a| parse_id(a, true, 0, false).ok().map(|(id, _)| id))
        .collect();
    let mut force = false;
    let mut just_id = false;
    let mut delivery_time: Option<i64> = None;
    let mut retry_count: Option<i64> = None;
    let mut last_id: Option<StreamId> = None;
    let now_i = now as i64;
    let mut j = 5 + ids.len();
    let option_error =
        |what: &str| Frame::error(format!("ERR Invalid {what} option argument for XCLAIM"));
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        let opt = &argv[j][..];
        if is(opt, "force") {
            force = true;
        } else if is(opt, "justid") {
            just_id = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            match int_arg(&argv[j]) {
                Ok(ms) => delivery_time = Some(now_i.wrapping_sub(ms)),
                Err(_) => return Ok((option_error("IDLE"), false)),
            }
        } else if is(opt, "time") && more > 0 {
            j += 1;
            match int_arg(&argv[j]) {
                Ok(ms) => delivery_time = Some(ms),
                Err(_) => return Ok((option_error("TIME"), false)),
            }
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            match int_arg(&argv[j]) {
                Ok(n) => retry_count = Some(n),
                Err(_) => return Ok((option_error("RETRYCOUNT"), false)),
            }
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            match parse_id(&argv[j], true, 0, false) {
                Ok((id, _)) => last_id = last_id.max(Some(id)),
                Err(e) => return Ok((e, false)),
            }
        } else {
            let opt = c_str(opt);
            return Ok((
                error_of(&[b"ERR Unrecognized XCLAIM option '", opt, b"'"]),
                false,
            ));
        }
        j += 1;
    }
    // LASTID moves the group forward once every option parsed (an option error leaves it).
    if let Some(id) = last_id.filter(|id| *id > group.last_id) {
        group.last_id = id;
    }
    // A time before the epoch or after now is taken as now, as Redis does.
    let delivery_time = match delivery_time {
        Some(t) if (0..=now_i).contains(&t) => t as u64,
        _ => now,
    };
    let rules = ClaimRules {
        delivery_time,
        retry_count: retry_count.filter(|n| *n >= 0).map(|n| n as u64),
        just_id,
    };
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let found = stream::entries_at(image, &sorted)?;
    let mut out = Vec::new();
    let mut created = false;
    for id in ids {
        let at = sorted.binary_search(&id).unwrap_or_default();
        let Some(view) = found.get(at).cloned().flatten() else {
            // Pending for an entry no longer in the stream: it leaves the list.
            group.ack(id);
            continue;
        };
        let pending = group.pending().get(&id);
        if pending.is_none() && !force {
            continue;
        }
        if let Some(p) = pending {
            let idle = now_i.wrapping_sub(p.delivery_time as i64);
            if min_idle > 0 && idle < min_idle {
                continue;
            }
        }
        if group.consumer(consumer).is_none() {
            created = true;
        }
        group.claim(id, consumer, now, rules);
        out.push(if just_id {
            id_frame(id)
        } else {
            entry_frame(image, view)
        });
    }
    Ok((Frame::Array(out), created))
}

// -------------------------------------------------------------------------- XAUTOCLAIM

/// How many pending entries XAUTOCLAIM looks at per entry it may claim.
const AUTOCLAIM_ATTEMPTS_FACTOR: u64 = 10;

/// The largest COUNT XAUTOCLAIM serves. Redis allocates room for COUNT deleted IDs (16 bytes
/// each) up front and answers "Insufficient memory" when that fails, which depends on the
/// machine (on a 24 GiB test machine, from about 1.5 × 2^42); Sluice allocates nothing up
/// front and answers the error above 2^43, a documented difference.
const AUTOCLAIM_MAX_COUNT: u64 = 1 << 43;

/// XAUTOCLAIM key group consumer min-idle-time start [COUNT count] [JUSTID]: the arguments are
/// checked before the key is looked up, as Redis does.
async fn xautoclaim(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let min_idle = match int_arg(&argv[4]) {
        Ok(n) => n.max(0),
        Err(_) => return Frame::error("ERR Invalid min-idle-time argument for XAUTOCLAIM"),
    };
    let start = match range_bound(&argv[5], true) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut count: u64 = 100;
    let mut just_id = false;
    let mut j = 6;
    while j < argv.len() {
        let more = argv.len() - 1 - j;
        if is(&argv[j], "count") && more > 0 {
            let max = i64::MAX / 16;
            match int_arg(&argv[j + 1]) {
                Ok(n) if (1..=max).contains(&n) => count = n as u64,
                Ok(_) => return Frame::error("ERR COUNT must be > 0"),
                Err(_) => return Frame::error("ERR COUNT must be > 0"),
            }
            j += 1;
        } else if is(&argv[j], "justid") {
            just_id = true;
        } else {
            return syntax_error();
        }
        j += 1;
    }
    let key = argv[1].clone();
    let (name, consumer) = (&argv[2], &argv[3]);
    let now = ctx.access.now_ms();
    let r = ctx
        .access
        .update_stream_groups(ctx.session.db, &key, false, |image, _, groups| {
            let Some(group) = groups.get_mut(name) else {
                return Ok(None);
            };
            if count > AUTOCLAIM_MAX_COUNT {
                // Redis's answer when its up-front allocation for `count` IDs fails.
                return Ok(Some((
                    Frame::error(
                        "ERR Insufficient memory, failed allocating transient memory, COUNT too high.",
                    ),
                    false,
                )));
            }
            autoclaim(image, group, consumer, min_idle, start, count, just_id, now).map(Some)
        })
        .await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Err(e) => engine_error(e),
        Ok(None) | Ok(Some(None)) => no_such_key_or_group(&key, name),
        Ok(Some(Some((reply, created)))) => {
            if created {
                ctx.notify(STREAM, "xgroup-createconsumer", &key);
            }
            reply
        }
    }
}

/// XAUTOCLAIM's scan of the pending list from `start`, as Redis 7.0's `xautoclaimCommand`:
/// at most `count` × 10 entries looked at and `count` answered (claimed, or dropped because
/// the entry was deleted); the reply is the next ID to scan from (0-0 at the end), the claimed
/// entries, and the deleted IDs dropped from the list.
#[allow(clippy::too_many_arguments)]
fn autoclaim(
    image: &Bytes,
    group: &mut Group,
    consumer: &Bytes,
    min_idle: i64,
    start: StreamId,
    mut count: u64,
    just_id: bool,
    now: u64,
) -> Result<Served, SluiceError> {
    let mut attempts = count.saturating_mul(AUTOCLAIM_ATTEMPTS_FACTOR);
    let rules = ClaimRules {
        delivery_time: now,
        retry_count: None,
        just_id,
    };
    // The pending IDs the scan may look at, and the one after them (the next cursor); their
    // entries found in one walk of the stream.
    let window: Vec<StreamId> = group
        .pending()
        .range(start..)
        .map(|(id, _)| *id)
        .take(
            usize::try_from(attempts)
                .unwrap_or(usize::MAX)
                .saturating_add(1),
        )
        .collect();
    let looked_at = window
        .len()
        .min(usize::try_from(attempts).unwrap_or(usize::MAX));
    let entries = stream::entries_at(image, &window[..looked_at])?;
    let mut claimed = Vec::new();
    let mut deleted = Vec::new();
    let mut created = false;
    let mut next = None;
    for (n, &id) in window.iter().enumerate() {
        if attempts == 0 || count == 0 {
            next = Some(id);
            break;
        }
        attempts -= 1;
        let Some(view) = entries.get(n).cloned().flatten() else {
            group.ack(id);
            deleted.push(id_frame(id));
            count -= 1;
            continue;
        };
        let delivered = group.pending().get(&id).map_or(0, |p| p.delivery_time);
        let idle = (now as i64).wrapping_sub(delivered as i64);
        if min_idle > 0 && idle < min_idle {
            continue;
        }
        if group.consumer(consumer).is_none() {
            created = true;
        }
        group.claim(id, consumer, now, rules);
        claimed.push(if just_id {
            id_frame(id)
        } else {
            entry_frame(image, view)
        });
        count -= 1;
    }
    let reply = Frame::Array(vec![
        id_frame(next.unwrap_or(StreamId::MIN)),
        Frame::Array(claimed),
        Frame::Array(deleted),
    ]);
    Ok((reply, created))
}

// ------------------------------------------------------------------------------- XINFO

/// XINFO STREAM | GROUPS | CONSUMERS | HELP.
async fn xinfo(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let sub = argv[1].to_ascii_lowercase();
    if sub == b"help" {
        return help(&[
            "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CONSUMERS <key> <groupname>",
            "    Show consumers of <groupname>.",
            "GROUPS <key>",
            "    Show the stream consumer groups.",
            "STREAM <key> [FULL [COUNT <count>]",
            "    Show information about the stream.",
            "HELP",
            "    Prints this help.",
        ]);
    }
    let key = argv[2].clone();
    let r = ctx.access.stream_image(ctx.session.db, key.clone()).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    let image = match r {
        Err(e) => return engine_error(e),
        Ok(None) => return Frame::error("ERR no such key"),
        Ok(Some(image)) => image,
    };
    let info = || -> Result<(StreamMeta, Groups, StreamFacts), SluiceError> {
        let meta = stream::meta(&image)?;
        let groups = Groups::decode(&meta.groups)?;
        let facts = facts(&image, &meta)?;
        Ok((meta, groups, facts))
    };
    let (meta, groups, facts) = match info() {
        Ok(info) => info,
        Err(e) => return engine_error(e),
    };
    let now = ctx.access.now_ms() as i64;
    match &sub[..] {
        b"consumers" if argv.len() == 4 => match groups.get(&argv[3]) {
            None => no_such_group(&key, &argv[3]),
            Some(group) => Frame::Array(
                group
                    .consumers()
                    .iter()
                    .map(|(name, c)| {
                        Frame::Map(vec![
                            (Frame::bulk("name"), Frame::Bulk(name.clone())),
                            (
                                Frame::bulk("pending"),
                                Frame::Integer(c.pending_len() as i64),
                            ),
                            (
                                Frame::bulk("idle"),
                                Frame::Integer(now.wrapping_sub(c.seen_time as i64).max(0)),
                            ),
                        ])
                    })
                    .collect(),
            ),
        },
        b"groups" if argv.len() == 3 => Frame::Array(
            groups
                .iter()
                .map(|(name, g)| {
                    Frame::Map(vec![
                        (Frame::bulk("name"), Frame::Bulk(name.clone())),
                        (
                            Frame::bulk("consumers"),
                            Frame::Integer(g.consumers().len() as i64),
                        ),
                        (
                            Frame::bulk("pending"),
                            Frame::Integer(g.pending().len() as i64),
                        ),
                        (Frame::bulk("last-delivered-id"), id_frame(g.last_id)),
                        (Frame::bulk("entries-read"), optional(g.entries_read)),
                        (Frame::bulk("lag"), optional(g.lag(&facts))),
                    ])
                })
                .collect(),
        ),
        b"stream" => stream_info(&image, &meta, &groups, &facts, &argv[3..], &argv[1])
            .unwrap_or_else(engine_error),
        _ => subcommand_syntax_error("XINFO", &argv[1]),
    }
}

/// A counter Redis answers as nil when it is unknown.
fn optional(n: Option<i64>) -> Frame {
    n.map_or(Frame::Null, Frame::Integer)
}

/// XINFO STREAM key [FULL [COUNT count]].
fn stream_info(
    image: &Bytes,
    meta: &StreamMeta,
    groups: &Groups,
    facts: &StreamFacts,
    options: &[Bytes],
    sub: &Bytes,
) -> Result<Frame, SluiceError> {
    let mut count: i64 = 10;
    let full = !options.is_empty();
    if full {
        if (options.len() != 1 && options.len() != 3) || !is(&options[0], "full") {
            return Ok(subcommand_syntax_error("XINFO", sub));
        }
        if options.len() == 3 {
            if !is(&options[1], "count") {
                return Ok(subcommand_syntax_error("XINFO", sub));
            }
            // A negative COUNT is the default; 0 is no limit.
            count = match int_arg(&options[2]) {
                Ok(n) if n < 0 => 10,
                Ok(n) => n,
                Err(e) => return Ok(e),
            };
        }
    }
    let nodes = stream::node_keys(image)?;
    let mut fields = vec![
        ("length", Frame::Integer(meta.length as i64)),
        ("radix-tree-keys", Frame::Integer(nodes.len() as i64)),
        (
            "radix-tree-nodes",
            Frame::Integer(radix_nodes(&nodes) as i64),
        ),
        ("last-generated-id", id_frame(meta.last_id)),
        ("max-deleted-entry-id", id_frame(meta.max_deleted)),
        ("entries-added", Frame::Integer(meta.entries_added as i64)),
        ("recorded-first-entry-id", id_frame(facts.first_id)),
    ];
    let edge = |rev: bool| -> Result<Frame, SluiceError> {
        let entries = stream::range(image, StreamId::MIN, StreamId::MAX, rev, Some(1))?;
        Ok(entries
            .into_iter()
            .next()
            .map_or(Frame::Null, |e| entry_frame(image, e)))
    };
    if !full {
        fields.push(("groups", Frame::Integer(groups.len() as i64)));
        fields.push(("first-entry", edge(false)?));
        fields.push(("last-entry", edge(true)?));
    } else {
        let limit = usize::try_from(count).unwrap_or(usize::MAX);
        let limit = if limit == 0 { usize::MAX } else { limit };
        let entries = stream::range(image, StreamId::MIN, StreamId::MAX, false, Some(limit))?;
        fields.push((
            "entries",
            Frame::Array(entries.into_iter().map(|e| entry_frame(image, e)).collect()),
        ));
        let groups = groups
            .iter()
            .map(|(name, g)| full_group(name, g, facts, limit))
            .collect();
        fields.push(("groups", Frame::Array(groups)));
    }
    Ok(Frame::Map(
        fields
            .into_iter()
            .map(|(k, v)| (Frame::bulk(k), v))
            .collect(),
    ))
}

/// One group in XINFO STREAM FULL: its counters, at most `limit` of its pending entries, and
/// its consumers with at most `limit` pending entries each.
fn full_group(name: &Bytes, g: &Group, facts: &StreamFacts, limit: usize) -> Frame {
    let pending = g
        .pending()
        .iter()
        .take(limit)
        .map(|(id, p)| {
            Frame::Array(vec![
                id_frame(*id),
                Frame::Bulk(p.consumer.clone()),
                Frame::Integer(p.delivery_time as i64),
                Frame::Integer(p.delivery_count as i64),
            ])
        })
        .collect();
    let consumers = g
        .consumers()
        .iter()
        .map(|(cname, c)| {
            let own = c
                .pending()
                .take(limit)
                .filter_map(|id| {
                    let p = g.pending().get(&id)?;
                    Some(Frame::Array(vec![
                        id_frame(id),
                        Frame::Integer(p.delivery_time as i64),
                        Frame::Integer(p.delivery_count as i64),
                    ]))
                })
                .collect();
            Frame::Map(vec![
                (Frame::bulk("name"), Frame::Bulk(cname.clone())),
                (Frame::bulk("seen-time"), Frame::Integer(c.seen_time as i64)),
                (
                    Frame::bulk("pel-count"),
                    Frame::Integer(c.pending_len() as i64),
                ),
                (Frame::bulk("pending"), Frame::Array(own)),
            ])
        })
        .collect();
    Frame::Map(vec![
        (Frame::bulk("name"), Frame::Bulk(name.clone())),
        (Frame::bulk("last-delivered-id"), id_frame(g.last_id)),
        (Frame::bulk("entries-read"), optional(g.entries_read)),
        (Frame::bulk("lag"), optional(g.lag(facts))),
        (
            Frame::bulk("pel-count"),
            Frame::Integer(g.pending().len() as i64),
        ),
        (Frame::bulk("pending"), Frame::Array(pending)),
        (Frame::bulk("consumers"), Frame::Array(consumers)),
    ])
}
