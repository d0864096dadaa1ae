//! The `bit` library (Lua BitOp 1.0.2, which Redis bundles): 32-bit operations on numbers.

use mlua::{Lua, MultiValue, Table, Value};

use super::redis_api::{to_number, type_name};
use super::sandbox::{native, Outcome};

/// BitOp's `barg`: the number plus 2^52+2^51, whose low 32 mantissa bits are the argument
/// rounded and taken modulo 2^32. A non-number is a type error (`0` from `lua_tonumber`
/// that is not a number).
fn barg(args: &MultiValue, i: usize, fname: &str) -> Result<u32, String> {
    let v = args.get(i);
    let n = v.and_then(to_number).unwrap_or(0.0);
    let b = (n + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && v.and_then(to_number).is_none() {
        return Err(format!(
            "bad argument #{} to '{fname}' (number expected, got {})",
            i + 1,
            type_name(v)
        ));
    }
    Ok(b)
}

fn ret(lua: &Lua, b: u32) -> mlua::Result<Outcome> {
    Outcome::ret(lua, Value::Number(f64::from(b as i32)))
}

type Unary = fn(u32) -> u32;
type Binary = fn(u32, u32) -> u32;

/// The `bit` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    let unary: [(&'static str, Unary); 3] = [
        ("tobit", |b| b),
        ("bnot", |b| !b),
        ("bswap", |b| b.swap_bytes()),
    ];
    for (name, op) in unary {
        t.raw_set(
            name,
            native(lua, move |lua, args| match barg(&args, 0, name) {
                Ok(b) => ret(lua, op(b)),
                Err(e) => Ok(Outcome::RaiseWhere(e)),
            })?,
        )?;
    }
    let folds: [(&'static str, Binary); 3] = [
        ("band", |a, b| a & b),
        ("bor", |a, b| a | b),
        ("bxor", |a, b| a ^ b),
    ];
    for (name, op) in folds {
        t.raw_set(
            name,
            native(lua, move |lua, args| {
                let mut acc = match barg(&args, 0, name) {
                    Ok(b) => b,
                    Err(e) => return Ok(Outcome::RaiseWhere(e)),
                };
                for i in 1..args.len() {
                    match barg(&args, i, name) {
                        Ok(b) => acc = op(acc, b),
                        Err(e) => return Ok(Outcome::RaiseWhere(e)),
                    }
                }
                ret(lua, acc)
            })?,
        )?;
    }
    let shifts: [(&'static str, Binary); 5] = [
        ("lshift", |b, n| b << (n & 31)),
        ("rshift", |b, n| b >> (n & 31)),
        ("arshift", |b, n| ((b as i32) >> (n & 31)) as u32),
        ("rol", |b, n| b.rotate_left(n & 31)),
        ("ror", |b, n| b.rotate_right(n & 31)),
    ];
    for (name, op) in shifts {
        t.raw_set(
            name,
            native(lua, move |lua, args| {
                let b = barg(&args, 0, name);
                let n = barg(&args, 1, name);
                match (b, n) {
                    (Ok(b), Ok(n)) => ret(lua, op(b, n)),
                    (Err(e), _) | (_, Err(e)) => Ok(Outcome::RaiseWhere(e)),
                }
            })?,
        )?;
    }
    t.raw_set(
        "tohex",
        native(lua, |lua, args| {
            let mut b = match barg(&args, 0, "tohex") {
                Ok(b) => b,
                Err(e) => return Ok(Outcome::RaiseWhere(e)),
            };
            let mut n: i32 = match args.get(1) {
                None => 8,
                Some(_) => match barg(&args, 1, "tohex") {
                    Ok(n) => n as i32,
                    Err(e) => return Ok(Outcome::RaiseWhere(e)),
                },
            };
            let mut digits: &[u8; 16] = b"0123456789abcdef";
            if n < 0 {
                n = n.wrapping_neg();
                digits = b"0123456789ABCDEF";
            }
            let n = n.clamp(0, 8) as usize;
            let mut buf = [0u8; 8];
            for i in (0..n).rev() {
                buf[i] = digits[(b & 15) as usize];
                b >>= 4;
            }
            Outcome::ret(lua, lua.create_string(&buf[..n])?)
        })?,
    )?;
    Ok(t)
}
