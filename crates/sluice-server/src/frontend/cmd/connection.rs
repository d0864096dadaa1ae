//! Connection commands.

use bytes::Bytes;

use super::args::{parse, Args};
use super::spec::categories::CONNECTION;
use super::spec::flags::NO_AUTH;
use super::spec::Ctx;
use super::spec::{Handler, Spec};
use super::util::{c_str, format_error, int_arg, is, syntax_error};
use super::util::{subcommand_syntax_error, wrong_arity};
use crate::frontend::Frame;
use crate::state::{KillFilter, PauseMode, ReplyMode, REDIS_COMPAT_VERSION};

/// The connection commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "ping",
        arity: -1,
        flags: &["fast"],
        categories: CONNECTION,
        summary: "Returns the server's liveliness response.",
        handler: Handler::Sync(ping),
        ..Spec::DEFAULT
    },
    Spec {
        name: "echo",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        categories: CONNECTION,
        summary: "Returns the given string.",
        handler: Handler::Sync(echo),
        ..Spec::DEFAULT
    },
    Spec {
        name: "quit",
        arity: -1,
        flags: NO_AUTH,
        categories: CONNECTION,
        summary: "Closes the connection.",
        handler: Handler::Sync(quit),
        ..Spec::DEFAULT
    },
    Spec {
        name: "reset",
        arity: 1,
        flags: NO_AUTH,
        categories: CONNECTION,
        summary: "Resets the connection.",
        handler: Handler::Sync(reset),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hello",
        arity: -1,
        flags: NO_AUTH,
        categories: CONNECTION,
        summary: "Handshakes with the Redis server.",
        handler: Handler::Sync(hello),
        ..Spec::DEFAULT
    },
    Spec {
        name: "select",
        arity: 2,
        flags: &["loading", "stale", "fast"],
        categories: CONNECTION,
        summary: "Changes the selected database.",
        handler: Handler::Sync(select),
        ..Spec::DEFAULT
    },
    Spec {
        name: "client",
        arity: -2,
        categories: &["@slow", "@connection"],
        summary: "A container for client connection commands.",
        subcommands: &[
            ("setname", 3),
            ("getname", 2),
            ("id", 2),
            ("setinfo", 4),
            ("list", -2),
            ("info", 2),
            ("no-evict", 3),
            ("reply", 3),
            ("kill", -3),
            ("pause", -3),
            ("unpause", 2),
            ("unblock", -3),
            ("help", 2),
        ],
        handler: Handler::Sync(client),
        ..Spec::DEFAULT
    },
];

/// PING [message]
fn ping(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let mut args = Args::new(argv);
    if ctx.session.proto == 2 && ctx.session.subscribed() {
        // Subscribed in RESP2: an array that a client reading messages can tell apart.
        let message = match args.remaining() {
            0 => Bytes::new(),
            1 => parse!(args.next_bytes()),
            _ => return wrong_arity("ping"),
        };
        return Frame::Array(vec![Frame::bulk("pong"), Frame::Bulk(message)]);
    }
    match args.remaining() {
        0 => Frame::Simple("PONG".into()),
        1 => Frame::Bulk(parse!(args.next_bytes())),
        _ => wrong_arity("ping"),
    }
}

/// ECHO message
fn echo(_ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    Frame::Bulk(parse!(Args::new(argv).next_bytes()))
}

/// QUIT
fn quit(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    ctx.session.close_after_reply = true;
    Frame::ok()
}

/// RESET
fn reset(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    ctx.session.end_transaction();
    // Unsubscribes from everything (dropping the subscriptions leaves the hub).
    ctx.session.pubsub = None;
    ctx.session.db = 0;
    ctx.session.proto = 2;
    ctx.session.reply = ReplyMode::Send;
    ctx.session.set_name(None);
    ctx.session.user = ctx.shared.users.initial();
    ctx.session.publish();
    Frame::Simple("RESET".into())
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn invalid_name() -> Frame {
    Frame::error("ERR Client names cannot contain spaces, newlines or special characters.")
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]
///
/// As Redis 7.0: options apply in order as they are read (a name set before a failing option
/// stays set); the protocol switches only once all succeeded.
fn hello(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let mut proto = ctx.session.proto;
    if args.len() >= 2 {
        match int_arg(&args[1]) {
            Ok(v) if (2..=3).contains(&v) => proto = v as u8,
            Ok(_) => return Frame::error("NOPROTO unsupported protocol version"),
            Err(_) => {
                return Frame::error("ERR Protocol version is not an integer or out of range")
            }
        }
    }
    let mut j = 2;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "auth") && more >= 2 {
            match ctx.shared.users.authenticate(&args[j + 1], &args[j + 2]) {
                Some(user) => ctx.session.user = Some(user),
                None => {
                    return Frame::error(
                        "WRONGPASS invalid username-password pair or user is disabled.",
                    )
                }
            }
            j += 3;
        } else if is(&args[j], "setname") && more >= 1 {
            let name = &args[j + 1];
            if !valid_name(name) {
                return invalid_name();
            }
            ctx.session
                .set_name((!name.is_empty()).then(|| name.clone()));
            ctx.session.publish();
            j += 2;
        } else {
            return format_error(
                &[
                    &b"ERR Syntax error in HELLO option '"[..],
                    c_str(&args[j]),
                    b"'",
                ]
                .concat(),
            );
        }
    }
    if ctx.session.user.is_none() {
        return Frame::error(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        );
    }
    ctx.session.proto = proto;
    ctx.session.publish();
    Frame::Map(vec![
        (Frame::bulk("server"), Frame::bulk("redis")),
        (Frame::bulk("version"), Frame::bulk(REDIS_COMPAT_VERSION)),
        (Frame::bulk("proto"), Frame::Integer(proto as i64)),
        (Frame::bulk("id"), Frame::Integer(ctx.session.id as i64)),
        (Frame::bulk("mode"), Frame::bulk("standalone")),
        (Frame::bulk("role"), Frame::bulk("master")),
        (Frame::bulk("modules"), Frame::Array(vec![])),
    ])
}

/// SELECT index
fn select(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let db = parse!(Args::new(argv).next_int());
    if db < i32::MIN as i64 || db > i32::MAX as i64 {
        return Frame::error(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        );
    }
    // Redis Cluster has database 0 only.
    if ctx.shared.routing.is_some() && db != 0 {
        return Frame::error("ERR SELECT is not allowed in cluster mode");
    }
    if !(0..16).contains(&db) {
        return Frame::error("ERR DB index is out of range");
    }
    ctx.session.db = db as u8;
    ctx.session.publish();
    Frame::ok()
}

/// The caller's id and its command's argument bytes, for CLIENT LIST / INFO's `argv-mem`;
/// its last command is published first, so its own line shows `cmd=client|list`.
fn caller(ctx: &mut Ctx<'_>, args: &[Bytes]) -> (u64, usize) {
    ctx.session.publish_progress();
    (ctx.session.id, args.iter().map(|a| a.len()).sum())
}

/// CLIENT LIST [TYPE type | ID id ...], as Redis 7.0: every Sluice client is `normal`.
fn client_list(mut ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let caller = caller(&mut ctx, args);
    let text = if args.len() == 4 && is(&args[2], "type") {
        let kind = &args[3];
        if is(kind, "normal") {
            ctx.shared.clients.list(caller)
        } else if ["master", "slave", "replica", "pubsub"]
            .iter()
            .any(|t| is(kind, t))
        {
            String::new()
        } else {
            return format_error(&[&b"ERR Unknown client type '"[..], c_str(kind), b"'"].concat());
        }
    } else if args.len() > 3 && is(&args[2], "id") {
        let mut text = String::new();
        for id in &args[3..] {
            let Ok(id) = int_arg(id) else {
                return Frame::error("ERR Invalid client ID");
            };
            if let Some(line) = u64::try_from(id)
                .ok()
                .and_then(|id| ctx.shared.clients.line(id, caller))
            {
                text.push_str(&line);
            }
        }
        text
    } else if args.len() != 2 {
        return syntax_error();
    } else {
        ctx.shared.clients.list(caller)
    };
    Frame::Verbatim(Bytes::from(text))
}

/// CLIENT KILL's two forms.
enum ClientKill {
    /// `CLIENT KILL ip:port`: replies OK or `No such client`; may kill the caller.
    Addr(Bytes),
    /// `CLIENT KILL <filter> <value> ...`: replies how many were killed.
    Filter(KillFilter),
}

impl ClientKill {
    /// Parses as Redis 7.0's `clientKillCommand` does: every option is checked, in order,
    /// before any client is killed.
    fn parse(ctx: &Ctx<'_>, argv: &mut [Bytes]) -> Result<ClientKill, Frame> {
        let mut args = Args::new(argv);
        args.next_bytes()?; // KILL
        if args.remaining() == 1 {
            return Ok(ClientKill::Addr(args.next_bytes()?));
        }
        let mut filter = KillFilter {
            skip_me: true,
            ..KillFilter::default()
        };
        while !args.is_empty() {
            let option = args.next_bytes()?;
            if args.is_empty() {
                return Err(syntax_error());
            }
            let value = args.next_bytes()?;
            if is(&option, "id") {
                match int_arg(&value) {
                    Ok(id) if id > 0 => filter.id = Some(id as u64),
                    _ => return Err(Frame::error("ERR client-id should be greater than 0")),
                }
            } else if is(&option, "type") {
                if ["master", "slave", "replica", "pubsub"]
                    .iter()
                    .any(|t| is(&value, t))
                {
                    filter.no_normal_clients = true;
                } else if !is(&value, "normal") {
                    return Err(format_error(
                        &[&b"ERR Unknown client type '"[..], c_str(&value), b"'"].concat(),
                    ));
                }
            } else if is(&option, "addr") {
                filter.addr = Some(value);
            } else if is(&option, "laddr") {
                filter.laddr = Some(value);
            } else if is(&option, "user") {
                if !ctx.shared.users.exists(&value) {
                    return Err(format_error(
                        &[&b"ERR No such user '"[..], c_str(&value), b"'"].concat(),
                    ));
                }
                filter.user = Some(value);
            } else if is(&option, "skipme") {
                filter.skip_me = if is(&value, "yes") {
                    true
                } else if is(&value, "no") {
                    false
                } else {
                    return Err(syntax_error());
                };
            } else if is(&option, "maxage") {
                // Redis 7.4's filter; 7.0 answers a syntax error.
                match int_arg(&value) {
                    Ok(secs) if secs > 0 => filter.max_age_secs = Some(secs as u64),
                    Ok(_) => return Err(Frame::error("ERR maxage should be greater than 0")),
                    Err(_) => {
                        return Err(Frame::error("ERR maxage is not an integer or out of range"))
                    }
                }
            } else {
                return Err(syntax_error());
            }
        }
        Ok(ClientKill::Filter(filter))
    }
}

/// CLIENT KILL ip:port | CLIENT KILL [ID id] [TYPE type] [USER user] [ADDR ip:port]
/// [LADDR ip:port] [SKIPME yes|no] [MAXAGE secs]: a killed connection closes at once, even
/// idle or waiting; the caller, if killed, closes after this reply.
fn client_kill(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let kill = parse!(ClientKill::parse(&ctx, argv));
    let me = ctx.session.id;
    let (reply, killed_me) = match kill {
        ClientKill::Addr(addr) => {
            let filter = KillFilter {
                addr: Some(addr),
                ..KillFilter::default()
            };
            match ctx.shared.clients.kill(&filter, me) {
                (0, _) => (Frame::error("ERR No such client"), false),
                (_, killed_me) => (Frame::ok(), killed_me),
            }
        }
        ClientKill::Filter(filter) => {
            let (killed, killed_me) = ctx.shared.clients.kill(&filter, me);
            (Frame::Integer(killed as i64), killed_me)
        }
    };
    if killed_me {
        ctx.session.close_after_reply = true;
    }
    reply
}

/// CLIENT UNBLOCK client-id [TIMEOUT|ERROR]: 1 if that client was blocked on keys (its
/// command answers as if timed out, or `-UNBLOCKED`), 0 otherwise; checked in Redis 7.0's
/// order, the reason first.
fn client_unblock(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let reason = match args.get(3) {
        _ if args.len() > 4 => return subcommand_syntax_error("CLIENT", &args[1]),
        None => crate::state::UNBLOCK_TIMEOUT,
        Some(r) if is(r, "timeout") => crate::state::UNBLOCK_TIMEOUT,
        Some(r) if is(r, "error") => crate::state::UNBLOCK_ERROR,
        Some(_) => return Frame::error("ERR CLIENT UNBLOCK reason should be TIMEOUT or ERROR"),
    };
    let id = parse!(int_arg(&args[2]));
    let unblocked = u64::try_from(id).is_ok_and(|id| ctx.shared.clients.unblock(id, reason));
    Frame::Integer(unblocked.into())
}

/// CLIENT PAUSE timeout [WRITE|ALL]: until `timeout` ms from now, every command (ALL) or
/// every write (WRITE) waits; checked as Redis 7.0 does, the mode first.
fn client_pause(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let mode = match args.get(3) {
        // Redis's `addReplySubcommandSyntaxError`, naming the sub-command as sent.
        _ if args.len() > 4 => return subcommand_syntax_error("CLIENT", &args[1]),
        None => PauseMode::All,
        Some(m) if is(m, "write") => PauseMode::Write,
        Some(m) if is(m, "all") => PauseMode::All,
        Some(_) => return Frame::error("ERR CLIENT PAUSE mode must be WRITE or ALL"),
    };
    let millis = match int_arg(&args[2]) {
        Ok(ms) if ms < 0 => return Frame::error("ERR timeout is negative"),
        Ok(ms) => ms as u64,
        Err(_) => return Frame::error("ERR timeout is not an integer or out of range"),
    };
    let now = std::time::Instant::now();
    // A timeout past what an `Instant` holds pauses for a century: "until UNPAUSE".
    let until = now
        .checked_add(std::time::Duration::from_millis(millis))
        .unwrap_or(now + std::time::Duration::from_secs(100 * 365 * 86400));
    ctx.shared.pause.pause(until, mode);
    Frame::ok()
}

/// CLIENT SETNAME | GETNAME | ID | SETINFO | LIST | INFO | KILL | PAUSE | UNPAUSE | ...
fn client(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"setname" => {
            if !valid_name(&args[2]) {
                return invalid_name();
            }
            let name = (!args[2].is_empty()).then(|| args[2].clone());
            ctx.session.set_name(name);
            ctx.session.publish();
            Frame::ok()
        }
        b"getname" => Frame::bulk_or_null(ctx.session.name.clone()),
        b"id" => Frame::Integer(ctx.session.id as i64),
        b"setinfo" => {
            // CLIENT SETINFO is Redis 7.2's; replies are 7.2's.
            let (attr, value) = (&args[2], &args[3]);
            let lib_name = is(attr, "lib-name");
            if !lib_name && !is(attr, "lib-ver") {
                return format_error(
                    &[&b"ERR Unrecognized option '"[..], c_str(attr), b"'"].concat(),
                );
            }
            if !valid_name(value) {
                return format_error(
                    &[
                        &b"ERR "[..],
                        c_str(attr),
                        b" cannot contain spaces, newlines or special characters.",
                    ]
                    .concat(),
                );
            }
            let value = (!value.is_empty()).then(|| value.clone());
            if lib_name {
                ctx.session.lib_name = value;
            } else {
                ctx.session.lib_ver = value;
            }
            ctx.session.publish();
            Frame::ok()
        }
        b"list" => client_list(ctx, args),
        // Sluice evicts no client for memory: protecting one is accepted and changes nothing.
        b"no-evict" if is(&args[2], "on") || is(&args[2], "off") => {
            ctx.session.no_evict = is(&args[2], "on");
            ctx.session.publish();
            Frame::ok()
        }
        b"no-evict" => syntax_error(),
        // The connection loop reads the mode after each command (the reply to OFF and SKIP
        // is itself suppressed; ON answers OK).
        b"reply" => {
            ctx.session.reply = if is(&args[2], "on") {
                ReplyMode::Send
            } else if is(&args[2], "off") {
                ReplyMode::Off
            } else if is(&args[2], "skip") {
                ReplyMode::SkipThisAndNext
            } else {
                return syntax_error();
            };
            Frame::ok()
        }
        b"kill" => client_kill(ctx, argv),
        b"pause" => client_pause(ctx, argv),
        b"unblock" => client_unblock(ctx, argv),
        b"unpause" => {
            ctx.shared.pause.unpause();
            Frame::ok()
        }
        b"info" => {
            let caller = caller(&mut ctx, args);
            let line = ctx
                .shared
                .clients
                .line(caller.0, caller)
                .unwrap_or_default();
            Frame::Verbatim(Bytes::from(line))
        }
        _ => Frame::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are:",
                "    * ADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made from the specified address",
                "    * LADDR (<ip:port>|<unixsocket>:0)",
                "      Kill connections made to specified local address",
                "    * TYPE (NORMAL|MASTER|REPLICA|PUBSUB)",
                "      Kill connections by type.",
                "    * USER <username>",
                "      Kill connections authenticated by <username>.",
                "    * SKIPME (YES|NO)",
                "      Skip killing current connection (default: yes).",
                "LIST",
                "    Return information about client connections.",
                "UNPAUSE",
                "    Stop the current client pause, resuming traffic.",
                "PAUSE <timeout> [WRITE|ALL]",
                "    Suspend all, or just write, clients for <timeout> milliseconds.",
                "NO-EVICT (ON|OFF)",
                "    Protect current client connection from eviction.",
                "REPLY (ON|OFF|SKIP)",
                "    Control the replies sent to the current connection.",
                "SETINFO <option> <value>",
                "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
                "UNBLOCK <clientid> [TIMEOUT|ERROR]",
                "    Unblock the specified blocked client.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}
