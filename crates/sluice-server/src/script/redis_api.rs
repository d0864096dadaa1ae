//! The `redis` table and Redis' deterministic `math.random`, as in Redis 7.0's
//! `script_lua.c`.

use std::rc::Rc;

use bytes::Bytes;
use mlua::{Lua, MultiValue, Table, Value};

use super::convert::{command_error_table, error_table, format_g, frame_to_lua};
use super::sandbox::{native, Outcome};
use super::vm::RunState;
use super::{sha1_hex, Frame, LogLevel};

/// `REDIS_VERSION` and `REDIS_VERSION_NUM` of the Redis this runtime follows.
pub const REDIS_VERSION: &str = "7.0.15";
pub const REDIS_VERSION_NUM: i64 = 0x0007_000f;

/// Initial `redisLrand48` state (`X2 X1 X0` = 0x1234 0xABCD 0x330E).
pub const LRAND48_INIT: u64 = 0x1234_ABCD_330E;

/// Lua's `lua_tonumber`: numbers, and strings that read as numbers.
pub fn to_number(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        Value::String(s) => str_to_number(&s.as_bytes()),
        _ => None,
    }
}

/// Lua 5.1's `luaO_str2d`: `strtod`, or a hex integer, with surrounding spaces allowed.
pub fn str_to_number(b: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(b).ok()?;
    let t = text.trim_matches(|c: char| c.is_ascii_whitespace());
    if t.is_empty() {
        return None;
    }
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        let v = u64::from_str_radix(hex, 16).ok()? as f64;
        return Some(if neg { -v } else { v });
    }
    t.parse::<f64>().ok()
}

/// Lua's `lua_tolstring`: strings, and numbers formatted with `%.14g`.
pub fn to_bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Number(n) => Some(format_g(*n, 14).into_bytes()),
        // mlua hands integral Lua numbers over as integers; Lua still formats them as
        // doubles (1e15 is "1e+15").
        Value::Integer(i) => Some(format_g(*i as f64, 14).into_bytes()),
        _ => None,
    }
}

/// Lua's type names as error messages show them.
pub fn type_name(v: Option<&Value>) -> &'static str {
    match v {
        None => "no value",
        Some(Value::Nil) => "nil",
        Some(Value::Boolean(_)) => "boolean",
        Some(Value::Number(_)) | Some(Value::Integer(_)) => "number",
        Some(Value::String(_)) => "string",
        Some(Value::Table(_)) => "table",
        Some(Value::Function(_)) => "function",
        Some(Value::Thread(_)) => "thread",
        _ => "userdata",
    }
}

/// `luaL_checknumber`'s error, or the number.
pub fn check_number(args: &MultiValue, i: usize, fname: &str) -> Result<f64, String> {
    let v = args.get(i);
    v.and_then(to_number).ok_or_else(|| {
        format!(
            "bad argument #{} to '{fname}' (number expected, got {})",
            i + 1,
            type_name(v)
        )
    })
}

/// C's `(int)` cast of a double as x86-64 does it (out of range gives `INT_MIN`).
pub fn c_int_cast(n: f64) -> i32 {
    if n.is_nan() || n >= 2_147_483_648.0 || n <= -2_147_483_649.0 {
        i32::MIN
    } else {
        n as i32
    }
}

fn raise_error(lua: &Lua, msg: &str) -> mlua::Result<Outcome> {
    Ok(Outcome::Raise(Value::Table(error_table(
        lua,
        msg.as_bytes(),
    )?)))
}

fn return_error(lua: &Lua, msg: &str) -> mlua::Result<Outcome> {
    Ok(Outcome::Return(MultiValue::from_vec(vec![Value::Table(
        error_table(lua, msg.as_bytes())?,
    )])))
}

/// `luaArgsToRedisArgv`: the command line, or the error message.
fn args_to_argv(args: &MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("Please specify at least one argument for this redis lib call");
    }
    let mut argv = Vec::with_capacity(args.len());
    for v in args.iter() {
        match v {
            // Numbers use %.17g, not Lua's lossy %.14g.
            Value::Number(n) => argv.push(Bytes::from(format_g(*n, 17))),
            Value::Integer(i) => argv.push(Bytes::from(format_g(*i as f64, 17))),
            Value::String(s) => argv.push(Bytes::copy_from_slice(&s.as_bytes())),
            _ => return Err("Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(argv)
}

/// `redis.call` (raise = true) and `redis.pcall`.
fn call(lua: &Lua, state: &RunState, args: MultiValue, raise: bool) -> mlua::Result<Outcome> {
    let fail = |lua: &Lua, msg: &str| {
        if raise {
            raise_error(lua, msg)
        } else {
            return_error(lua, msg)
        }
    };
    let argv = match args_to_argv(&args) {
        Ok(argv) => argv,
        Err(msg) => return fail(lua, msg),
    };
    let resp = state.resp.get();
    let Some(reply) = state.with_host(|h| h.call(&argv, resp)) else {
        return fail(
            lua,
            "redis.call/pcall can only be called inside a script invocation",
        );
    };
    if let Frame::Error(line) = &reply {
        let t = Value::Table(command_error_table(lua, line)?);
        return Ok(if raise {
            Outcome::Raise(t)
        } else {
            Outcome::Return(MultiValue::from_vec(vec![t]))
        });
    }
    Outcome::ret(lua, frame_to_lua(lua, &reply, resp)?)
}

/// The `redis` table.
pub fn redis_table(lua: &Lua, state: &Rc<RunState>) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let st = Rc::clone(state);
    t.raw_set(
        "call",
        native(lua, move |lua, args| call(lua, &st, args, true))?,
    )?;
    let st = Rc::clone(state);
    t.raw_set(
        "pcall",
        native(lua, move |lua, args| call(lua, &st, args, false))?,
    )?;

    t.raw_set(
        "sha1hex",
        native(lua, |lua, args| {
            if args.len() != 1 {
                return raise_error(lua, "wrong number of arguments");
            }
            let data = args.front().and_then(to_bytes).unwrap_or_default();
            Outcome::ret(lua, sha1_hex(&data))
        })?,
    )?;

    let st = Rc::clone(state);
    t.raw_set(
        "log",
        native(lua, move |lua, args| {
            if args.len() < 2 {
                return raise_error(lua, "redis.log() requires two arguments or more.");
            }
            let Some(level) = args.front().and_then(to_number) else {
                return raise_error(lua, "First argument must be a number (log level).");
            };
            let level = match c_int_cast(level) {
                0 => LogLevel::Debug,
                1 => LogLevel::Verbose,
                2 => LogLevel::Notice,
                3 => LogLevel::Warning,
                _ => return raise_error(lua, "Invalid debug level."),
            };
            let mut msg = Vec::new();
            for (j, v) in args.iter().enumerate().skip(1) {
                if let Some(b) = to_bytes(v) {
                    if j != 1 {
                        msg.push(b' ');
                    }
                    msg.extend_from_slice(&b);
                }
            }
            st.with_host(|h| h.log(level, &msg));
            Outcome::ret(lua, ())
        })?,
    )?;
    for (name, level) in [
        ("LOG_DEBUG", 0),
        ("LOG_VERBOSE", 1),
        ("LOG_NOTICE", 2),
        ("LOG_WARNING", 3),
    ] {
        t.raw_set(name, level)?;
    }

    let st = Rc::clone(state);
    t.raw_set(
        "setresp",
        native(lua, move |lua, args| {
            if args.len() != 1 {
                return raise_error(lua, "redis.setresp() requires one argument.");
            }
            let resp = c_int_cast(args.front().and_then(to_number).unwrap_or(0.0));
            if resp != 2 && resp != 3 {
                return raise_error(lua, "RESP version must be 2 or 3.");
            }
            st.resp.set(resp as u8);
            Outcome::ret(lua, ())
        })?,
    )?;

    t.raw_set(
        "error_reply",
        native(lua, |lua, args| {
            let msg = match (args.len(), args.front()) {
                (1, Some(Value::String(s))) => s.as_bytes().to_vec(),
                _ => return return_error(lua, "wrong number or type of arguments"),
            };
            let mut buf = msg;
            if buf.first() != Some(&b'-') {
                buf.insert(0, b'-');
            }
            Outcome::ret(lua, error_table(lua, &buf)?)
        })?,
    )?;
    t.raw_set(
        "status_reply",
        native(lua, |lua, args| match (args.len(), args.front()) {
            (1, Some(Value::String(s))) => {
                let r = lua.create_table()?;
                r.raw_set("ok", s.clone())?;
                Outcome::ret(lua, r)
            }
            _ => return_error(lua, "wrong number or type of arguments"),
        })?,
    )?;

    t.raw_set(
        "set_repl",
        native(lua, |lua, args| {
            if args.len() != 1 {
                // Sic: Redis 7.0's wording, though it wants one.
                return raise_error(lua, "redis.set_repl() requires two arguments.");
            }
            let flags = c_int_cast(args.front().and_then(to_number).unwrap_or(0.0));
            if flags & !3 != 0 {
                return raise_error(
                    lua,
                    "Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.",
                );
            }
            // Replication is the host's business; the flags are accepted and not used.
            Outcome::ret(lua, ())
        })?,
    )?;
    // Always true since Redis 7.0 (effects replication is the only mode).
    t.raw_set(
        "replicate_commands",
        native(lua, |lua, _| Outcome::ret(lua, true))?,
    )?;
    // No debugger (LDB): breakpoint says "not debugging", debug is silent.
    t.raw_set(
        "breakpoint",
        native(lua, |lua, _| Outcome::ret(lua, false))?,
    )?;
    t.raw_set("debug", native(lua, |lua, _| Outcome::ret(lua, ()))?)?;
    for (name, v) in [
        ("REPL_NONE", 0),
        ("REPL_AOF", 1),
        ("REPL_SLAVE", 2),
        ("REPL_REPLICA", 2),
        ("REPL_ALL", 3),
    ] {
        t.raw_set(name, v)?;
    }
    t.raw_set("REDIS_VERSION", REDIS_VERSION)?;
    t.raw_set("REDIS_VERSION_NUM", REDIS_VERSION_NUM)?;

    let st = Rc::clone(state);
    t.raw_set(
        "acl_check_cmd",
        native(lua, move |lua, args| {
            let argv = match args_to_argv(&args) {
                Ok(argv) => argv,
                Err(msg) => return raise_error(lua, msg),
            };
            match st.with_host(|h| h.acl_check_cmd(&argv)) {
                Some(Ok(allowed)) => Outcome::ret(lua, allowed),
                Some(Err(msg)) => raise_error(lua, &msg),
                None => raise_error(
                    lua,
                    "redis.acl_check_cmd can only be called inside a script invocation",
                ),
            }
        })?,
    )?;
    Ok(t)
}

/// One step of `redisLrand48`: the 48-bit LCG of `lrand48` (a = 0x5DEECE66D, c = 0xB),
/// returning the top 31 bits.
pub fn lrand48_next(x: u64) -> (u64, i32) {
    let next = (0x5_DEEC_E66D_u64.wrapping_mul(x).wrapping_add(0xB)) & 0xFFFF_FFFF_FFFF;
    (next, (next >> 17) as i32)
}

/// `redisSrand48(seed)`.
pub fn srand48_state(seed: i32) -> u64 {
    (u64::from(seed as u32) << 16) | 0x330E
}

/// `math.random` and `math.randomseed` as Redis replaces them (`redis_math_random`).
pub fn math_random(
    lua: &Lua,
    state: &Rc<RunState>,
) -> mlua::Result<(mlua::Function, mlua::Function)> {
    let st = Rc::clone(state);
    let random = native(lua, move |lua, args| {
        let (x, r) = lrand48_next(st.rand.get());
        st.rand.set(x);
        let r = f64::from(r % i32::MAX) / f64::from(i32::MAX);
        let value = match args.len() {
            0 => r,
            1 => {
                let u = match check_number(&args, 0, "random") {
                    Ok(u) => c_int_cast(u),
                    Err(e) => return Ok(Outcome::RaiseWhere(e)),
                };
                if u < 1 {
                    return Ok(Outcome::RaiseWhere(
                        "bad argument #1 to 'random' (interval is empty)".into(),
                    ));
                }
                (r * f64::from(u)).floor() + 1.0
            }
            2 => {
                let l = match check_number(&args, 0, "random") {
                    Ok(l) => c_int_cast(l),
                    Err(e) => return Ok(Outcome::RaiseWhere(e)),
                };
                let u = match check_number(&args, 1, "random") {
                    Ok(u) => c_int_cast(u),
                    Err(e) => return Ok(Outcome::RaiseWhere(e)),
                };
                if l > u {
                    return Ok(Outcome::RaiseWhere(
                        "bad argument #2 to 'random' (interval is empty)".into(),
                    ));
                }
                // int arithmetic in C (u-l+1 may wrap); as f64 here, which only differs on
                // intervals wider than 2^31.
                (r * (f64::from(u) - f64::from(l) + 1.0)).floor() + f64::from(l)
            }
            _ => return Ok(Outcome::RaiseWhere("wrong number of arguments".into())),
        };
        Outcome::ret(lua, value)
    })?;
    let st = Rc::clone(state);
    let randomseed = native(lua, move |lua, args| {
        let seed = match check_number(&args, 0, "randomseed") {
            Ok(s) => c_int_cast(s),
            Err(e) => return Ok(Outcome::RaiseWhere(e)),
        };
        st.rand.set(srand48_state(seed));
        Outcome::ret(lua, ())
    })?;
    Ok((random, randomseed))
}
