//! SLOWLOG GET / LEN / RESET / HELP, as Redis 7.0.

use bytes::Bytes;

use super::spec::categories::ADMIN;
use super::spec::{Ctx, Handler, Spec};
use super::util::subcommand_syntax_error;
use crate::frontend::Frame;

/// The SLOWLOG command.
pub static COMMANDS: &[Spec] = &[Spec {
    name: "slowlog",
    arity: -2,
    flags: &["admin", "loading", "stale"],
    categories: ADMIN,
    summary: "A container for slow log commands.",
    subcommands: &[("get", -2), ("len", 2), ("reset", 2), ("help", 2)],
    handler: Handler::Sync(slowlog),
    ..Spec::DEFAULT
}];

/// SLOWLOG GET [count] | LEN | RESET | HELP
fn slowlog(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let log = &ctx.shared.slowlog;
    match &args[1].to_ascii_lowercase()[..] {
        b"get" if args.len() <= 3 => {
            let count = match args.get(2) {
                None => 10,
                Some(count) => match sluice::numeric::parse_strict_i64(count) {
                    Some(-1) => usize::MAX,
                    Some(n) if n >= 0 => usize::try_from(n).unwrap_or(usize::MAX),
                    _ => return Frame::error("ERR count should be greater than or equal to -1"),
                },
            };
            Frame::Array(
                log.newest(count)
                    .into_iter()
                    .map(|e| {
                        Frame::Array(vec![
                            Frame::Integer(i64::try_from(e.id).unwrap_or(i64::MAX)),
                            Frame::Integer(i64::try_from(e.unix_time).unwrap_or(i64::MAX)),
                            Frame::Integer(i64::try_from(e.micros).unwrap_or(i64::MAX)),
                            Frame::Array(e.argv.into_iter().map(Frame::Bulk).collect()),
                            Frame::bulk(e.addr),
                            Frame::Bulk(e.name),
                        ])
                    })
                    .collect(),
            )
        }
        b"get" => subcommand_syntax_error("SLOWLOG", &args[1]),
        b"len" => Frame::Integer(i64::try_from(log.len()).unwrap_or(i64::MAX)),
        b"reset" => {
            log.reset();
            Frame::ok()
        }
        _ => Frame::Array(
            [
                "SLOWLOG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GET [<count>]",
                "    Return top <count> entries from the slowlog (default: 10, -1 mean all).",
                "    Entries are made of:",
                "    id, timestamp, time in microseconds, arguments array, client IP and port,",
                "    client name",
                "LEN",
                "    Return the length of the slowlog.",
                "RESET",
                "    Reset the slowlog.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}
