//! AUTH and ACL, and the permission check every command passes.

use bytes::Bytes;

use super::spec::categories::CONNECTION;
use super::spec::flags::NO_AUTH;
use super::spec::Ctx;
use super::spec::ACL_CATEGORIES;
use super::spec::{Handler, Spec};
use super::util::{c_str, format_error, is, syntax_error};
use crate::frontend::Frame;
use crate::state::Session;

/// The authentication commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "auth",
        arity: -2,
        flags: NO_AUTH,
        categories: CONNECTION,
        summary: "Authenticates the connection.",
        handler: Handler::Sync(auth),
        ..Spec::DEFAULT
    },
    Spec {
        name: "acl",
        arity: -2,
        categories: &["@slow"],
        summary: "A container for Access List Control commands.",
        subcommands: &[("whoami", 2), ("list", 2), ("cat", -2), ("help", 2)],
        handler: Handler::Sync(acl),
        ..Spec::DEFAULT
    },
];

fn wrongpass() -> Frame {
    Frame::error("WRONGPASS invalid username-password pair or user is disabled.")
}

/// NOAUTH before authentication, NOPERM for a command or key the user may not touch; `None`
/// when the command may run. Redis checks in this order, after existence and arity.
///
/// `full_name` is the sub-command's (`config|set`) for a container called with one: its own
/// categories decide, as in Redis, not the container's (which are only `@slow`).
pub fn check(
    session: &Session,
    spec: &Spec,
    full_name: &'static str,
    args: &[Bytes],
) -> Option<Frame> {
    let Some(user) = &session.user else {
        if spec.flags.contains(&"no_auth") {
            return None;
        }
        return Some(Frame::error("NOAUTH Authentication required."));
    };
    if !may_run(user, spec, full_name) {
        return Some(Frame::error(format!(
            "NOPERM this user has no permissions to run the '{full_name}' command"
        )));
    }
    // The "keys" of SSUBSCRIBE and SPUBLISH are shard channels (`not_key` in Redis's key
    // specs), never checked against key patterns (looked at only for a restricted user).
    if !user.may_access_all()
        && !spec.categories.contains(&"@pubsub")
        && spec
            .request_keys(args)
            .is_some_and(|keys| keys.iter().any(|k| !user.may_access(k)))
    {
        return Some(Frame::error(
            "NOPERM this user has no permissions to access one of the keys used as arguments",
        ));
    }
    None
}

/// Sub-commands in none of Redis's read, write, admin and dangerous categories that act on
/// what every connection shares: the script cache, another client's running script, the
/// allocator. Redis keeps them from a user granted only `+@read` or `+@write` (they are
/// `@scripting` or plain `@slow`); Sluice's four-category users would otherwise all run them,
/// so they need `admin`.
const SHARED_STATE: [&str; 3] = ["script|flush", "script|kill", "memory|purge"];

/// Whether `user` may run the command `spec` (or its sub-command `full_name`). A user with
/// every category costs no lookup.
fn may_run(user: &crate::auth::User, spec: &Spec, full_name: &str) -> bool {
    if user.restricts_categories() && full_name != spec.name {
        if SHARED_STATE.contains(&full_name) {
            return user.may_run(&["@admin"]);
        }
        return user.may_run(&categories_of(spec, full_name));
    }
    user.may_run(spec.categories)
}

/// The ACL categories (`@admin`, ...) of a command, or of a container's sub-command by its full
/// name: Redis 7.0's for a container and for each sub-command it has (Sluice's container specs
/// carry what their sub-commands share, which is not Redis's), else Sluice's spec (CLIENT
/// SETINFO, of Redis 7.2, is in its container's categories).
pub fn categories_of(spec: &Spec, full_name: &str) -> Vec<&'static str> {
    let redis_s = if full_name == spec.name {
        (!spec.subcommands.is_empty())
            .then(|| super::redis_meta::get(full_name).map(|m| m.acl_categories()))
            .flatten()
    } else {
        super::redis_meta::subcommand_categories(full_name)
    };
    redis_s.unwrap_or_else(|| spec.categories.to_vec())
}

/// AUTH [username] password
fn auth(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
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
            ctx.session.publish();
            Frame::ok()
        }
        None => wrongpass(),
    }
}

/// ACL WHOAMI | LIST | CAT [category] | HELP
fn acl(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let Some(user) = ctx.session.user.clone() else {
        return Frame::error("NOAUTH Authentication required.");
    };
    let sub = args[1].to_ascii_lowercase();
    match &sub[..] {
        b"whoami" => Frame::bulk(user.name.clone()),
        // @admin, checked by its category before it runs.
        b"list" => Frame::Array(
            ctx.shared
                .users
                .list()
                .into_iter()
                .map(Frame::bulk)
                .collect(),
        ),
        b"cat" => match args.get(2) {
            None => Frame::Array(ACL_CATEGORIES.iter().map(|c| Frame::bulk(*c)).collect()),
            Some(cat) if args.len() == 3 => {
                let Some(cat) = ACL_CATEGORIES.iter().find(|c| is(cat, c)) else {
                    // `addReplyErrorFormat("Unknown category '%.128s'")`: the name as sent, up
                    // to a NUL, with CR and LF made spaces so the reply stays one line.
                    let cat = c_str(cat);
                    let cat = &cat[..cat.len().min(128)];
                    return format_error(&[&b"ERR Unknown category '"[..], cat, b"'"].concat());
                };
                // A sub-command (`client|list`) is listed by its own categories, as Redis
                // lists it, and its container only if the container itself is in `cat`.
                let in_cat = |categories: Vec<&str>| {
                    categories.iter().any(|c| c.strip_prefix('@') == Some(*cat))
                };
                let mut names = Vec::new();
                for spec in ctx.table.all() {
                    let listed = if spec.subcommands.is_empty() {
                        spec.acl_categories().contains(cat)
                    } else {
                        in_cat(categories_of(spec, spec.name))
                    };
                    if listed {
                        names.push(Frame::bulk(spec.name));
                    }
                    for (sub, _) in spec.subcommands {
                        let full_name = format!("{}|{sub}", spec.name);
                        if in_cat(categories_of(spec, &full_name)) {
                            names.push(Frame::bulk(full_name));
                        }
                    }
                }
                Frame::Array(names)
            }
            Some(_) => super::util::wrong_arity("acl|cat"),
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
