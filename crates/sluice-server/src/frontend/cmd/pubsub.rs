//! Pub/sub, as Redis 7.0: (P|S)SUBSCRIBE, (P|S)UNSUBSCRIBE, PUBLISH, SPUBLISH and PUBSUB.
//!
//! Subscriptions live in the session ([`crate::state::Subscriptions`]); messages wait in its
//! mailbox and the connection loop writes them between replies. Confirmations are pushes
//! (`>` in RESP3, arrays in RESP2), one per channel named. While subscribed, a RESP2
//! connection may run only the commands [`allowed_while_subscribed`] lists (checked in
//! `dispatch`). Every user may use every channel: Sluice has no channel permissions, only
//! the `@pubsub` category.

use bytes::Bytes;

use super::spec::{Ctx, Handler, KeyPositions, Spec};
use super::util::subcommand_syntax_error;
use crate::frontend::Frame;
use crate::state::{Scope, Session, Shared, Subscriptions};

const PUBSUB: &[&str] = &["@pubsub", "@slow"];
const SUBSCRIBE_FLAGS: &[&str] = &["pubsub", "noscript", "loading", "stale"];

/// The pub/sub commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "subscribe",
        arity: -2,
        flags: SUBSCRIBE_FLAGS,
        categories: PUBSUB,
        summary: "Listens for messages published to channels.",
        handler: Handler::Sync(|ctx, argv| subscribe_to(ctx, argv, Scope::Channel)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "unsubscribe",
        arity: -1,
        flags: SUBSCRIBE_FLAGS,
        categories: PUBSUB,
        summary: "Stops listening to messages posted to channels.",
        handler: Handler::Sync(|ctx, argv| unsubscribe_from(ctx, argv, Scope::Channel)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "psubscribe",
        arity: -2,
        flags: SUBSCRIBE_FLAGS,
        categories: PUBSUB,
        summary: "Listens for messages published to channels that match one or more patterns.",
        handler: Handler::Sync(|ctx, argv| subscribe_to(ctx, argv, Scope::Pattern)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "punsubscribe",
        arity: -1,
        flags: SUBSCRIBE_FLAGS,
        categories: PUBSUB,
        summary:
            "Stops listening to messages published to channels that match one or more patterns.",
        handler: Handler::Sync(|ctx, argv| unsubscribe_from(ctx, argv, Scope::Pattern)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "ssubscribe",
        arity: -2,
        flags: SUBSCRIBE_FLAGS,
        // Redis's key spec marks shard channels `not_key`: ACL checks no key pattern on them
        // (`acl::check` skips @pubsub commands).
        keys: KeyPositions::ALL,
        categories: PUBSUB,
        summary: "Listens for messages published to shard channels.",
        handler: Handler::Sync(|ctx, argv| subscribe_to(ctx, argv, Scope::Shard)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sunsubscribe",
        arity: -1,
        flags: SUBSCRIBE_FLAGS,
        keys: KeyPositions::ALL,
        categories: PUBSUB,
        summary: "Stops listening to messages posted to shard channels.",
        handler: Handler::Sync(|ctx, argv| unsubscribe_from(ctx, argv, Scope::Shard)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "publish",
        arity: 3,
        flags: &["pubsub", "loading", "stale", "fast"],
        categories: &["@pubsub", "@fast"],
        summary: "Posts a message to a channel.",
        handler: Handler::Sync(publish),
        ..Spec::DEFAULT
    },
    Spec {
        name: "spublish",
        arity: 3,
        flags: &["pubsub", "loading", "stale", "fast"],
        keys: KeyPositions::FIRST,
        categories: &["@pubsub", "@fast"],
        summary: "Post a message to a shard channel",
        handler: Handler::Sync(spublish),
        ..Spec::DEFAULT
    },
    Spec {
        name: "pubsub",
        arity: -2,
        // Redis's container is @slow alone and each sub-command @pubsub: Sluice's sub-commands
        // share the container's spec, which carries @pubsub for them.
        categories: PUBSUB,
        summary: "A container for Pub/Sub commands.",
        subcommands: &[
            ("channels", -2),
            ("numpat", 2),
            ("numsub", -2),
            ("shardchannels", -2),
            ("shardnumsub", -2),
            ("help", 2),
        ],
        handler: Handler::Sync(pubsub),
        ..Spec::DEFAULT
    },
];

/// Whether a RESP2 connection with subscriptions may run `name`, as Redis 7.0's
/// `processCommand` allows.
pub fn allowed_while_subscribed(name: &str) -> bool {
    matches!(
        name,
        "ping"
            | "subscribe"
            | "ssubscribe"
            | "unsubscribe"
            | "sunsubscribe"
            | "psubscribe"
            | "punsubscribe"
            | "quit"
            | "reset"
    )
}

/// Redis's refusal of a command run in RESP2's subscribed mode.
pub fn refused_while_subscribed(full_name: &str) -> Frame {
    Frame::error(format!(
        "ERR Can't execute '{full_name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
    ))
}

/// The session's subscriptions, created on first use.
fn subscriptions<'s>(shared: &Shared, session: &'s mut Session) -> &'s mut Subscriptions {
    let (id, handle) = (session.id, session.handle().clone());
    session
        .pubsub
        .get_or_insert_with(|| Box::new(Subscriptions::new(shared.pubsub.clone(), id, handle)))
}

/// A (un)subscription confirmation: `[kind, name, count]`.
fn confirmation(word: &'static str, name: Option<Bytes>, count: usize) -> Frame {
    Frame::Push(vec![
        Frame::Bulk(Bytes::from_static(word.as_bytes())),
        name.map_or(Frame::Null, Frame::Bulk),
        Frame::Integer(count as i64),
    ])
}

/// One reply, or several sent one after the other.
fn replies(mut frames: Vec<Frame>) -> Frame {
    if frames.len() == 1 {
        frames.pop().unwrap_or(Frame::Null)
    } else {
        Frame::Many(frames)
    }
}

/// SUBSCRIBE channel [channel ...], PSUBSCRIBE pattern [...], SSUBSCRIBE shardchannel [...]
fn subscribe_to(ctx: Ctx<'_>, argv: &mut [Bytes], scope: Scope) -> Frame {
    let subs = subscriptions(ctx.shared, ctx.session);
    let frames = argv[1..]
        .iter()
        .map(|name| {
            subs.subscribe(scope, name);
            confirmation(
                scope.subscribe_word(),
                Some(name.clone()),
                subs.count(scope),
            )
        })
        .collect();
    ctx.session.publish();
    replies(frames)
}

/// UNSUBSCRIBE [channel ...], PUNSUBSCRIBE [pattern ...], SUNSUBSCRIBE [shardchannel ...]
fn unsubscribe_from(ctx: Ctx<'_>, argv: &mut [Bytes], scope: Scope) -> Frame {
    let word = scope.unsubscribe_word();
    let Some(subs) = ctx.session.pubsub.as_mut() else {
        // Never subscribed: one confirmation per name (or a nil one), each counting 0.
        if argv.len() == 1 {
            return confirmation(word, None, 0);
        }
        return replies(
            argv[1..]
                .iter()
                .map(|name| confirmation(word, Some(name.clone()), 0))
                .collect(),
        );
    };
    let names = if argv.len() == 1 {
        subs.names(scope)
    } else {
        argv[1..].to_vec()
    };
    if names.is_empty() {
        return confirmation(word, None, subs.count(scope));
    }
    let frames = names
        .into_iter()
        .map(|name| {
            subs.unsubscribe(scope, &name);
            confirmation(word, Some(name), subs.count(scope))
        })
        .collect();
    ctx.session.publish();
    replies(frames)
}

/// PUBLISH channel message
fn publish(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    Frame::Integer(ctx.shared.pubsub.publish(&argv[1], &argv[2]) as i64)
}

/// SPUBLISH shardchannel message
fn spublish(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    Frame::Integer(ctx.shared.pubsub.spublish(&argv[1], &argv[2]) as i64)
}

/// PUBSUB CHANNELS [pattern] | NUMPAT | NUMSUB [channel ...] | SHARDCHANNELS [pattern] |
/// SHARDNUMSUB [shardchannel ...] | HELP
fn pubsub(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let hub = &ctx.shared.pubsub;
    let args: &[Bytes] = argv;
    let names = |scope| {
        if args.len() > 3 {
            return None;
        }
        let pattern = args.get(2).map(|p| &p[..]);
        Some(Frame::Array(
            hub.active(scope, pattern)
                .into_iter()
                .map(Frame::Bulk)
                .collect(),
        ))
    };
    let counts = |scope| {
        Frame::Array(
            args[2..]
                .iter()
                .flat_map(|channel| {
                    [
                        Frame::Bulk(channel.clone()),
                        Frame::Integer(hub.subscribers(scope, channel) as i64),
                    ]
                })
                .collect(),
        )
    };
    let reply = match &args[1].to_ascii_lowercase()[..] {
        b"channels" => names(Scope::Channel),
        b"shardchannels" => names(Scope::Shard),
        b"numpat" => Some(Frame::Integer(hub.patterns() as i64)),
        b"numsub" => Some(counts(Scope::Channel)),
        b"shardnumsub" => Some(counts(Scope::Shard)),
        _ => Some(help()),
    };
    reply.unwrap_or_else(|| subcommand_syntax_error("PUBSUB", &args[1]))
}

fn help() -> Frame {
    Frame::Array(
        [
            "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "CHANNELS [<pattern>]",
            "    Return the currently active channels matching a <pattern> (default: '*').",
            "NUMPAT",
            "    Return number of subscriptions to patterns.",
            "NUMSUB [<channel> ...]",
            "    Return the number of subscribers for the specified channels, excluding",
            "    pattern subscriptions(default: no channels).",
            "SHARDCHANNELS [<pattern>]",
            "    Return the currently active shard level channels matching a <pattern> (default: '*').",
            "SHARDNUMSUB [<shardchannel> ...]",
            "    Return the number of subscribers for the specified shard level channel(s)",
            "HELP",
            "    Prints this help.",
        ]
        .iter()
        .map(|s| Frame::Simple(s.to_string()))
        .collect(),
    )
}
