//! Conversions between Lua values and RESP frames, with Redis 7.0's rules
//! (`redisProtocolToLuaType` and `luaReplyToRedisReply` in `script_lua.c`).

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::frontend::frame::{format_double, Frame};

/// Nesting depth past which a reply is cut with an error, like Redis' `lua_checkstack`
/// failing ("reached lua stack limit"); also stops cycles (`t[1] = t`).
const MAX_DEPTH: usize = 1000;

/// C's `printf("%.<prec>g", x)`: Lua's own number format is `%.14g`, and Redis turns numbers
/// passed to `redis.call` into strings with `%.17g`. Done with the C library so that every
/// corner (`-nan`, exponents) is the one Redis shows.
pub fn format_g(x: f64, prec: i32) -> String {
    let mut buf = [0u8; 64];
    // SAFETY: the format takes one int and one double, as passed; snprintf writes at most
    // `buf.len()` bytes including the terminator.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c"%.*g".as_ptr(),
            prec as libc::c_int,
            x,
        )
    };
    String::from_utf8_lossy(&buf[..(n.max(0) as usize).min(buf.len() - 1)]).into_owned()
}

/// The message of Redis' error table from an error line (`luaPushErrorBuff`): a leading
/// `-` means "-CODE msg" (no space: code ERR, the rest is the message); without it the whole
/// text is the message and the code is ERR. Newlines at either end are trimmed.
pub fn error_table_message(buf: &[u8]) -> Vec<u8> {
    let (code, msg): (&[u8], &[u8]) = match buf.strip_prefix(b"-") {
        Some(rest) => match rest.iter().position(|&b| b == b' ') {
            Some(sp) => (&rest[..sp], &rest[sp + 1..]),
            None => (b"ERR", rest),
        },
        None => (b"ERR", buf),
    };
    let is_nl = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = msg.iter().position(|b| !is_nl(b)).unwrap_or(msg.len());
    let end = msg.iter().rposition(|b| !is_nl(b)).map_or(start, |i| i + 1);
    let mut out = Vec::with_capacity(code.len() + 1 + end.saturating_sub(start));
    out.extend_from_slice(code);
    out.push(b' ');
    out.extend_from_slice(&msg[start.min(end)..end]);
    out
}

/// `{err = <message>}` built as `luaPushErrorBuff` builds it.
pub fn error_table(lua: &Lua, buf: &[u8]) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set("err", lua.create_string(error_table_message(buf))?)?;
    Ok(t)
}

/// An error reply as a command gave it, for the script: the table also says not to count
/// the error twice in the stats (Redis sets this on every error coming from a command).
pub fn command_error_table(lua: &Lua, line: &[u8]) -> mlua::Result<Table> {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.push(b'-');
    buf.extend_from_slice(line);
    let t = error_table(lua, &buf)?;
    t.raw_set("ignore_error_stats_update", true)?;
    Ok(t)
}

/// A command's reply as the script sees it; `resp` is the script's `redis.setresp` choice.
pub fn frame_to_lua(lua: &Lua, frame: &Frame, resp: u8) -> mlua::Result<Value> {
    Ok(match frame {
        Frame::Simple(s) => {
            let t = lua.create_table()?;
            t.raw_set("ok", lua.create_string(s.as_bytes())?)?;
            Value::Table(t)
        }
        Frame::Error(line) => Value::Table(command_error_table(lua, line)?),
        Frame::Integer(i) => Value::Number(*i as f64),
        Frame::Bulk(b) => Value::String(lua.create_string(b)?),
        Frame::Null | Frame::NullArray => {
            if resp >= 3 {
                Value::Nil
            } else {
                Value::Boolean(false)
            }
        }
        // A script cannot subscribe (SUBSCRIBE and friends are `noscript`): a push or a
        // run of replies, should one reach it, reads as an array.
        Frame::Array(items) | Frame::Push(items) | Frame::Many(items) => {
            Value::Table(array_table(lua, items, resp)?)
        }
        Frame::Set(items) => {
            if resp >= 3 {
                let inner = lua.create_table()?;
                for item in items {
                    let k = frame_to_lua(lua, item, resp)?;
                    // A nil member (null in a set) cannot be a key; Redis' lua_settable
                    // would raise, no command replies with one.
                    if !k.is_nil() {
                        inner.raw_set(k, true)?;
                    }
                }
                wrap(lua, "set", Value::Table(inner))?
            } else {
                Value::Table(array_table(lua, items, resp)?)
            }
        }
        Frame::Map(pairs) => {
            if resp >= 3 {
                let inner = lua.create_table()?;
                for (k, v) in pairs {
                    let k = frame_to_lua(lua, k, resp)?;
                    let v = frame_to_lua(lua, v, resp)?;
                    if !k.is_nil() {
                        inner.raw_set(k, v)?;
                    }
                }
                wrap(lua, "map", Value::Table(inner))?
            } else {
                let t = lua.create_table()?;
                let mut j = 1i64;
                for (k, v) in pairs {
                    t.raw_set(j, frame_to_lua(lua, k, resp)?)?;
                    t.raw_set(j + 1, frame_to_lua(lua, v, resp)?)?;
                    j += 2;
                }
                Value::Table(t)
            }
        }
        Frame::Double(d) => {
            if resp >= 3 {
                wrap(lua, "double", Value::Number(*d))?
            } else {
                Value::String(lua.create_string(format_double(*d))?)
            }
        }
        Frame::Boolean(b) => {
            if resp >= 3 {
                Value::Boolean(*b)
            } else {
                Value::Number(if *b { 1.0 } else { 0.0 })
            }
        }
        Frame::Verbatim(b) => {
            if resp >= 3 {
                let inner = lua.create_table()?;
                inner.raw_set("string", lua.create_string(b)?)?;
                inner.raw_set("format", "txt")?;
                wrap(lua, "verbatim_string", Value::Table(inner))?
            } else {
                Value::String(lua.create_string(b)?)
            }
        }
        Frame::BigNumber(b) => {
            if resp >= 3 {
                wrap(lua, "big_number", Value::String(lua.create_string(b)?))?
            } else {
                Value::String(lua.create_string(b)?)
            }
        }
    })
}

fn wrap(lua: &Lua, field: &str, v: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, v)?;
    Ok(Value::Table(t))
}

fn array_table(lua: &Lua, items: &[Frame], resp: u8) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    for (j, item) in items.iter().enumerate() {
        t.raw_set(j as i64 + 1, frame_to_lua(lua, item, resp)?)?;
    }
    Ok(t)
}

/// C's `(long long)` cast of a double as x86-64 does it: out of range and NaN give
/// `i64::MIN` (Redis replies `:-9223372036854775808` for `return 1e20`), where Rust's `as`
/// would saturate.
pub fn lua_number_to_integer(n: f64) -> i64 {
    const LIMIT: f64 = 9_223_372_036_854_775_808.0; // 2^63
    if n.is_nan() || !(-LIMIT..LIMIT).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// Newlines would break an error or status line; Redis maps them to spaces.
pub fn sanitize_line(b: &[u8]) -> Bytes {
    Bytes::from(
        b.iter()
            .map(|&c| if c == b'\r' || c == b'\n' { b' ' } else { c })
            .collect::<Vec<u8>>(),
    )
}

/// A script's return value as a reply. `resp` is the script's `redis.setresp` choice, which
/// decides how booleans come out.
pub fn lua_to_frame(v: &Value, resp: u8) -> Frame {
    lua_to_frame_depth(v, resp, 0)
}

fn lua_to_frame_depth(v: &Value, resp: u8, depth: usize) -> Frame {
    if depth > MAX_DEPTH {
        return Frame::error("ERR reached lua stack limit");
    }
    match v {
        Value::String(s) => Frame::Bulk(Bytes::copy_from_slice(&s.as_bytes())),
        Value::Boolean(b) => {
            if resp == 2 {
                if *b {
                    Frame::Integer(1)
                } else {
                    Frame::Null
                }
            } else {
                Frame::Boolean(*b)
            }
        }
        Value::Integer(i) => Frame::Integer(*i),
        Value::Number(n) => Frame::Integer(lua_number_to_integer(*n)),
        Value::Table(t) => table_to_frame(t, resp, depth),
        _ => Frame::Null,
    }
}

fn table_to_frame(t: &Table, resp: u8, depth: usize) -> Frame {
    // A table we cannot read (memory error) comes out as nil rather than a broken reply.
    let get = |k: &str| t.raw_get::<Value>(k).unwrap_or(Value::Nil);
    if let Value::String(s) = get("err") {
        // Strictly a string (a number is not an error message here, as in Redis).
        return Frame::Error(sanitize_line(&s.as_bytes()));
    }
    if let Value::String(s) = get("ok") {
        let text = String::from_utf8_lossy(&sanitize_line(&s.as_bytes())).into_owned();
        return Frame::Simple(text);
    }
    match get("double") {
        Value::Number(n) => return Frame::Double(n),
        Value::Integer(i) => return Frame::Double(i as f64),
        _ => {}
    }
    if let Value::String(s) = get("big_number") {
        return Frame::BigNumber(sanitize_line(&s.as_bytes()));
    }
    if let Value::Table(vt) = get("verbatim_string") {
        if let (Ok(Value::String(format)), Ok(Value::String(s))) =
            (vt.raw_get::<Value>("format"), vt.raw_get::<Value>("string"))
        {
            // The frame type only carries `txt`; other formats are rare (Redis itself
            // only produces txt and mkd) and come out as txt.
            let _ = format;
            return Frame::Verbatim(Bytes::copy_from_slice(&s.as_bytes()));
        }
    }
    if let Value::Table(m) = get("map") {
        let mut pairs = Vec::new();
        for (k, v) in m.pairs::<Value, Value>().flatten() {
            pairs.push((
                lua_to_frame_depth(&k, resp, depth + 1),
                lua_to_frame_depth(&v, resp, depth + 1),
            ));
        }
        return Frame::Map(pairs);
    }
    if let Value::Table(s) = get("set") {
        let mut items = Vec::new();
        for (k, _) in s.pairs::<Value, Value>().flatten() {
            items.push(lua_to_frame_depth(&k, resp, depth + 1));
        }
        return Frame::Set(items);
    }
    let mut items = Vec::new();
    let mut j = 1i64;
    loop {
        let v = t.raw_get::<Value>(j).unwrap_or(Value::Nil);
        if v.is_nil() {
            break;
        }
        items.push(lua_to_frame_depth(&v, resp, depth + 1));
        j += 1;
    }
    Frame::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_g_matches_c() {
        assert_eq!(format_g(0.1, 17), "0.10000000000000001");
        assert_eq!(format_g(1e300, 17), "1.0000000000000001e+300");
        assert_eq!(format_g(5.0, 17), "5");
        assert_eq!(format_g(1e15, 14), "1e+15");
        assert_eq!(format_g(f64::INFINITY, 17), "inf");
    }

    #[test]
    fn error_messages_get_a_code() {
        assert_eq!(error_table_message(b"-MY thing"), b"MY thing");
        assert_eq!(error_table_message(b"-x"), b"ERR x");
        assert_eq!(error_table_message(b"plain words"), b"ERR plain words");
        assert_eq!(error_table_message(b"-ERR trailing\r\n"), b"ERR trailing");
    }

    #[test]
    fn numbers_cast_like_c() {
        assert_eq!(lua_number_to_integer(3.99), 3);
        assert_eq!(lua_number_to_integer(-3.99), -3);
        assert_eq!(lua_number_to_integer(1e20), i64::MIN);
        assert_eq!(lua_number_to_integer(f64::NAN), i64::MIN);
    }
}
