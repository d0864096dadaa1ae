//! AUTH and ACL, and the permission check every command passes.

use bytes::Bytes;

use super::util::{c_str, format_error, is, syntax_error};
use super::{Ctx, Spec, COMMANDS};
use crate::auth::{required_category, CATEGORIES};
use crate::frontend::Frame;
use crate::server::Session;

fn wrongpass() -> Frame {
    Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
}

/// The keys a command names, by its key positions.
fn keys<'a>(spec: &Spec, args: &'a [Bytes]) -> impl Iterator<Item = &'a Bytes> {
    let first = spec.first_key.max(0) as usize;
    let last = if spec.last_key < 0 {
        (args.len() as i32 + spec.last_key).max(0) as usize
    } else {
        spec.last_key as usize
    };
    let step = spec.step.max(1) as usize;
    let range = if first == 0 {
        0..0
    } else {
        first..last.min(args.len() - 1) + 1
    };
    args[range].iter().step_by(step)
}

/// NOAUTH before authentication, NOPERM for a command or key the user may not touch; `None`
/// when the command may run. Redis checks in this order, after existence and arity.
pub fn check(session: &Session, spec: &Spec, args: &[Bytes]) -> Option<Frame> {
    let Some(user) = &session.user else {
        if spec.flags.contains(&"no-auth") {
            return None;
        }
        return Some(Frame::error("NOAUTH Authentication required."));
    };
    if !user.may_run(spec) {
        let name = if spec.subcommands.is_empty() || args.len() < 2 {
            spec.name.to_string()
        } else {
            format!(
                "{}|{}",
                spec.name,
                String::from_utf8_lossy(&args[1]).to_ascii_lowercase()
            )
        };
        return Some(Frame::error(format!(
            "NOPERM this user has no permissions to run the '{name}' command"
        )));
    }
    if !user.may_access_all() && keys(spec, args).any(|k| !user.may_access(k)) {
        return Some(Frame::error(
            "NOPERM this user has no permissions to access one of the keys used as arguments",
        ));
    }
    None
}

/// AUTH [username] password
pub fn auth(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    if args.len() > 3 {
        return syntax_error();
    }
    let users = &ctx.shared.users;
    let (name, password): (&[u8], &[u8]) = if args.len() == 2 {
        if !users.auth_required() {
            return Frame::error(
                "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
            );
        }
        (b"default", &args[1])
    } else {
        (&args[1], &args[2])
    };
    match users.authenticate(name, password) {
        Some(user) => {
            ctx.session.user = Some(user);
            Frame::ok()
        }
        None => wrongpass(),
    }
}

/// ACL WHOAMI | LIST | CAT [category] | HELP
pub fn acl(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let Some(user) = ctx.session.user.clone() else {
        return Frame::error("NOAUTH Authentication required.");
    };
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"whoami" => Frame::bulk(user.name.clone()),
        b"list" => {
            // Listing users is an administrative act.
            if !user.may_run(&ADMIN_PROBE) {
                return Frame::error(
                    "NOPERM this user has no permissions to run the 'acl|list' command",
                );
            }
            Frame::Array(
                ctx.shared
                    .users
                    .list()
                    .into_iter()
                    .map(Frame::bulk)
                    .collect(),
            )
        }
        b"cat" => match args.get(2) {
            None => Frame::Array(CATEGORIES.iter().map(|c| Frame::bulk(*c)).collect()),
            Some(cat) if args.len() == 3 => {
                let Some(cat) = CATEGORIES.iter().find(|c| is(cat, c)) else {
                    // `addReplyErrorFormat("Unknown category '%.128s'")`: the name as sent, up
                    // to a NUL, with CR and LF made spaces so the reply stays one line.
                    let cat = c_str(cat);
                    let cat = &cat[..cat.len().min(128)];
                    return format_error(&[&b"ERR Unknown category '"[..], cat, b"'"].concat());
                };
                Frame::Array(
                    COMMANDS
                        .iter()
                        .filter(|s| required_category(s) == Some(cat))
                        .map(|s| Frame::bulk(s.name))
                        .collect(),
                )
            }
            Some(_) => super::wrong_arity("acl|cat"),
        },
        _ => Frame::Array(
            [
                "ACL <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CAT [<category>]",
                "    List all commands that belong to <category>, or all command categories",
                "    when no category is specified.",
                "LIST",
                "    Show users details in config file format.",
                "WHOAMI",
                "    Return the current connection username.",
                "HELP",
                "    Print this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}

/// A stand-in spec that needs the `admin` category.
static ADMIN_PROBE: Spec = Spec {
    name: "acl|list",
    arity: 2,
    flags: &[],
    first_key: 0,
    last_key: 0,
    step: 0,
    categories: &["@admin"],
    summary: "",
    subcommands: &[],
    cmd: super::Cmd::Acl,
};
