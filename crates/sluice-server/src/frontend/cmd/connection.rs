//! Connection commands.

use bytes::Bytes;

use super::util::{c_str, int_arg, is, sanitize_error};
use super::{wrong_arity, Ctx};
use crate::frontend::Frame;
use crate::server::REDIS_COMPAT_VERSION;

/// PING [message]
pub fn ping(_ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    match args.len() {
        1 => Frame::Simple("PONG".into()),
        2 => Frame::Bulk(args[1].clone()),
        _ => wrong_arity("ping"),
    }
}

/// QUIT
pub fn quit(ctx: Ctx<'_>) -> Frame {
    ctx.session.close_after_reply = true;
    Frame::ok()
}

/// RESET
pub fn reset(ctx: Ctx<'_>) -> Frame {
    ctx.session.db = 0;
    ctx.session.proto = 2;
    ctx.session.set_name(None);
    ctx.session.publish();
    Frame::Simple("RESET".into())
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

/// HELLO [protover [AUTH user pass] [SETNAME name]]
pub fn hello(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let mut proto = ctx.session.proto;
    let mut next = 1;
    if args.len() >= 2 {
        match int_arg(&args[1]) {
            Ok(v) if (2..=3).contains(&v) => proto = v as u8,
            Ok(_) => return Frame::error("NOPROTO unsupported protocol version"),
            Err(_) => {
                return Frame::error("ERR Protocol version is not an integer or out of range")
            }
        }
        next = 2;
    }
    let mut name: Option<Bytes> = None;
    let mut j = next;
    while j < args.len() {
        let more = args.len() - 1 - j;
        if is(&args[j], "auth") && more >= 2 {
            // No users are configured yet: every client is the default user, which has no
            // password, so any AUTH pair is refused as Redis refuses a wrong one.
            return Frame::error(
                "WRONGPASS invalid username-password pair or user is disabled.",
            );
        } else if is(&args[j], "setname") && more >= 1 {
            if !valid_name(&args[j + 1]) {
                return Frame::error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            name = Some(args[j + 1].clone());
            j += 2;
        } else {
            return Frame::error(sanitize_error(&format!(
                "ERR Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(c_str(&args[j]))
            )));
        }
    }
    ctx.session.proto = proto;
    if let Some(n) = name {
        ctx.session.set_name(if n.is_empty() { None } else { Some(n) });
    }
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
pub fn select(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let Ok(db) = int_arg(&args[1]) else {
        return Frame::error("ERR value is not an integer or out of range");
    };
    if !(0..16).contains(&db) {
        return Frame::error("ERR DB index is out of range");
    }
    ctx.session.db = db as u8;
    ctx.session.publish();
    Frame::ok()
}

/// CLIENT SETNAME | GETNAME | ID | SETINFO | LIST | INFO | HELP
pub fn client(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"setname" => {
            if !valid_name(&args[2]) {
                return Frame::error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            let name = (!args[2].is_empty()).then(|| args[2].clone());
            ctx.session.set_name(name);
            ctx.session.publish();
            Frame::ok()
        }
        b"getname" => Frame::bulk_or_null(ctx.session.name.clone()),
        b"id" => Frame::Integer(ctx.session.id as i64),
        b"setinfo" => {
            let value = &args[3];
            if !valid_name(value) && !value.is_empty() {
                return Frame::error(sanitize_error(&format!(
                    "ERR {} cannot contain spaces, newlines or special characters.",
                    String::from_utf8_lossy(&args[2]).to_ascii_lowercase()
                )));
            }
            if is(&args[2], "lib-name") {
                ctx.session.lib_name = Some(value.clone());
            } else if is(&args[2], "lib-ver") {
                ctx.session.lib_ver = Some(value.clone());
            } else {
                return Frame::error(sanitize_error(&format!(
                    "ERR Unrecognized option '{}'",
                    String::from_utf8_lossy(c_str(&args[2]))
                )));
            }
            ctx.session.publish();
            Frame::ok()
        }
        b"list" => {
            let text = ctx.shared.clients.list();
            Frame::Verbatim(Bytes::from(text))
        }
        b"info" => {
            let line = ctx.shared.clients.line(ctx.session.id).unwrap_or_default();
            Frame::Verbatim(Bytes::from(line))
        }
        _ => Frame::Array(
            [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME", "    Return the name of the current connection.",
                "ID", "    Return the ID of the current connection.",
                "INFO", "    Return information about the current client connection.",
                "LIST", "    Return information about client connections.",
                "SETINFO <option> <value>", "    Set client meta attr. Options are: LIB-NAME, LIB-VER.",
                "SETNAME <name>", "    Assign the name <name> to the current connection.",
                "HELP", "    Print this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}
