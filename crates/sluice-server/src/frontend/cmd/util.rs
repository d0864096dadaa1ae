//! Argument helpers shared by commands.

use bytes::Bytes;
use sluice::SluiceError;

use crate::frontend::Frame;

/// The bytes up to the first NUL, as C's `%s` prints them in Redis's error messages.
pub fn c_str(b: &[u8]) -> &[u8] {
    match b.iter().position(|&c| c == 0) {
        Some(i) => &b[..i],
        None => b,
    }
}

/// An error line that echoes client bytes, as Redis `rejectCommandFormat` sends it: CR and LF
/// become spaces so the reply stays one line. Other bytes pass through unchanged.
pub fn reject_error(line: &[u8]) -> Frame {
    Frame::Error(
        line.iter()
            .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
            .collect::<Vec<u8>>()
            .into(),
    )
}

/// An error line that echoes client bytes, as Redis `addReplyErrorFormat` sends it: CR and LF
/// are trimmed from both ends first, then the ones left become spaces.
pub fn format_error(line: &[u8]) -> Frame {
    let is_crlf = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = line.iter().position(|b| !is_crlf(b)).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !is_crlf(b))
        .map_or(start, |i| i + 1);
    reject_error(&line[start..end])
}

/// `ERR value is not an integer or out of range`.
pub fn not_integer() -> Frame {
    Frame::error("ERR value is not an integer or out of range")
}

/// `ERR syntax error`.
pub fn syntax_error() -> Frame {
    Frame::error("ERR syntax error")
}

/// Parses an integer argument as Redis `getLongLongFromObjectOrReply` does.
pub fn int_arg(b: &[u8]) -> Result<i64, Frame> {
    sluice::numeric::parse_strict_i64(b).ok_or_else(not_integer)
}

/// Case-insensitive comparison of an argument with an ASCII option name.
pub fn is(arg: &[u8], name: &str) -> bool {
    arg.eq_ignore_ascii_case(name.as_bytes())
}

/// Redis's reply for a command it does not know: `%.128s` of the name, then each argument as
/// `'%.*s' ` until 128 bytes are shown. `%s` stops at a NUL, as in C.
pub fn unknown_command(args: &[Bytes]) -> Frame {
    let mut rest = Vec::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let shown = c_str(a);
        let shown = &shown[..shown.len().min(128 - rest.len())];
        rest.push(b'\'');
        rest.extend_from_slice(shown);
        rest.extend_from_slice(b"' ");
    }
    let name = c_str(&args[0]);
    let line = [
        &b"ERR unknown command '"[..],
        &name[..name.len().min(128)],
        b"', with args beginning with: ",
        &rest,
    ]
    .concat();
    reject_error(&line)
}

/// Redis's reply for an unknown sub-command of a container command.
pub fn unknown_subcommand(container: &str, sub: &[u8]) -> Frame {
    let sub = c_str(sub);
    let line = [
        &b"ERR unknown subcommand '"[..],
        &sub[..sub.len().min(128)],
        b"'. Try ",
        container.to_ascii_uppercase().as_bytes(),
        b" HELP.",
    ]
    .concat();
    reject_error(&line)
}

/// Redis's `addReplySubcommandSyntaxError`: a known sub-command of `container` called with
/// arguments it does not take, named as it was sent (`%.128s`, up to a NUL).
pub fn subcommand_syntax_error(container: &str, sub: &[u8]) -> Frame {
    let sub = c_str(sub);
    format_error(
        &[
            &b"ERR unknown subcommand or wrong number of arguments for '"[..],
            &sub[..sub.len().min(128)],
            b"'. Try ",
            container.as_bytes(),
            b" HELP.",
        ]
        .concat(),
    )
}

/// Redis's arity error.
pub fn wrong_arity(fullname: &str) -> Frame {
    Frame::error(format!(
        "ERR wrong number of arguments for '{fullname}' command"
    ))
}

/// Engine errors as Redis error lines.
pub fn engine_error(e: SluiceError) -> Frame {
    format_error(e.to_string().as_bytes())
}

/// The reply of a command that read one key (`None`: absent, answered as the type's empty
/// value), or the engine's error. Counts the lookup in INFO's keyspace hits or misses, as
/// Redis's `lookupKeyRead` does (a key of another type is found).
pub fn read_reply<T: Default>(
    ctx: &super::spec::Ctx<'_>,
    r: Result<Option<T>, SluiceError>,
    reply: impl FnOnce(T) -> Frame,
) -> Frame {
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Ok(v) => reply(v.unwrap_or_default()),
        Err(e) => engine_error(e),
    }
}

/// The reply of a command that removed members from a collection (SREM, ZREM,
/// ZREMRANGEBY*): how many, with the command's event when it removed any and `del` when that
/// emptied (deleted) the key.
pub fn removed_reply(
    ctx: &mut super::spec::Ctx<'_>,
    r: Result<(usize, bool), SluiceError>,
    (class, event): (u32, &'static str),
    key: &bytes::Bytes,
) -> Frame {
    match r {
        Ok((removed, emptied)) => {
            if removed > 0 {
                ctx.notify(class, event, key);
            }
            if emptied {
                ctx.notify(crate::state::keyspace_events::GENERIC, "del", key);
            }
            Frame::Integer(removed as i64)
        }
        Err(e) => engine_error(e),
    }
}
