//! The `cmsgpack` library (lua-cmsgpack 0.4.0, as Redis bundles it): `pack`, `unpack`,
//! `unpack_one`, `unpack_limit`.

use mlua::{Lua, MultiValue, Table, Value};

use super::redis_api::{check_number, to_bytes, type_name};
use super::sandbox::{native, Outcome};

/// Tables nested deeper than this are packed as nil (LUACMSGPACK_MAX_NESTING).
const MAX_NESTING: usize = 16;

/// `(int64_t)x == x` as x86-64 evaluates it (out-of-range casts give INT64_MIN).
fn as_exact_i64(x: f64) -> Option<i64> {
    if x.is_infinite() || x.is_nan() {
        return None;
    }
    let i = if (-9.223_372_036_854_776e18..9.223_372_036_854_776e18).contains(&x) {
        x as i64
    } else {
        i64::MIN
    };
    (i as f64 == x).then_some(i)
}

fn encode_int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            out.push(n as u8);
        } else if n <= 0xff {
            out.extend_from_slice(&[0xcc, n as u8]);
        } else if n <= 0xffff {
            out.push(0xcd);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            out.push(0xce);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        } else {
            out.push(0xcf);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        out.push(n as i8 as u8);
    } else if n >= -128 {
        out.extend_from_slice(&[0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        out.push(0xd1);
        out.extend_from_slice(&(n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        out.push(0xd2);
        out.extend_from_slice(&(n as i32).to_be_bytes());
    } else {
        out.push(0xd3);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_number(out: &mut Vec<u8>, n: f64) {
    if let Some(i) = as_exact_i64(n) {
        return encode_int(out, i);
    }
    let f = n as f32;
    if f64::from(f) == n {
        out.push(0xca);
        out.extend_from_slice(&f.to_be_bytes());
    } else {
        out.push(0xcb);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

fn encode_len(
    out: &mut Vec<u8>,
    len: usize,
    fix: u8,
    fix_max: usize,
    w8: Option<u8>,
    w16: u8,
    w32: u8,
) {
    if len <= fix_max {
        out.push(fix | len as u8);
    } else if let (Some(tag), true) = (w8, len <= 0xff) {
        out.extend_from_slice(&[tag, len as u8]);
    } else if len <= 0xffff {
        out.push(w16);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(w32);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    }
}

fn number_key(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// lua-cmsgpack's `table_is_an_array`: only positive integer keys, 1..n without holes.
fn is_array(t: &Table) -> mlua::Result<bool> {
    let (mut count, mut max) = (0f64, 0f64);
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair?;
        match number_key(&k) {
            Some(n) if n > 0.0 && n.floor() == n && n <= f64::from(i32::MAX) => {
                max = f64::max(max, n);
                count += 1.0;
            }
            _ => return Ok(false),
        }
    }
    Ok(max == count)
}

fn encode(out: &mut Vec<u8>, v: &Value, level: usize) -> mlua::Result<()> {
    match v {
        Value::Boolean(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(_) | Value::Integer(_) => encode_number(out, number_key(v).unwrap_or(0.0)),
        Value::String(s) => {
            let b = s.as_bytes();
            encode_len(out, b.len(), 0xa0, 31, Some(0xd9), 0xda, 0xdb);
            out.extend_from_slice(&b);
        }
        Value::Table(t) if level < MAX_NESTING => {
            if is_array(t)? {
                let len = t.raw_len();
                encode_len(out, len, 0x90, 15, None, 0xdc, 0xdd);
                for j in 1..=len {
                    encode(out, &t.raw_get::<Value>(j as i64)?, level + 1)?;
                }
            } else {
                let pairs: Vec<(Value, Value)> =
                    t.pairs::<Value, Value>().collect::<mlua::Result<_>>()?;
                encode_len(out, pairs.len(), 0x80, 15, None, 0xde, 0xdf);
                for (k, val) in &pairs {
                    encode(out, k, level + 1)?;
                    encode(out, val, level + 1)?;
                }
            }
        }
        _ => out.push(0xc0),
    }
    Ok(())
}

enum DecodeError {
    Eof,
    BadFormat,
    /// Nesting past what Lua's C stack allows (luaL_checkstack in lua-cmsgpack).
    TooDeep(&'static str),
    Lua(mlua::Error),
}

/// Nesting limit of decoded arrays and maps. lua-cmsgpack fails with the same message near
/// 4000 levels (its `luaL_checkstack`: two slots a level of LUAI_MAXCSTACK); the decoder here
/// recurses on the Rust stack, which must stay well inside a 2 MiB thread stack, so it stops
/// earlier.
const MAX_DECODE_DEPTH: usize = 1000;

impl From<mlua::Error> for DecodeError {
    fn from(e: mlua::Error) -> Self {
        DecodeError::Lua(e)
    }
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.data.len() - self.pos < n {
            return Err(DecodeError::Eof);
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)))
    }

    fn decode(&mut self, lua: &Lua) -> Result<Value, DecodeError> {
        let tag = self.take(1)?[0];
        Ok(match tag {
            0x00..=0x7f => Value::Number(f64::from(tag)),
            0xe0..=0xff => Value::Number(f64::from(tag as i8)),
            0xcc => Value::Number(self.be(1)? as f64),
            0xcd => Value::Number(self.be(2)? as f64),
            0xce => Value::Number(self.be(4)? as f64),
            // Read as signed, as lua-cmsgpack does (so 2^64-1 comes back as -1).
            0xcf => Value::Number(self.be(8)? as i64 as f64),
            0xd0 => Value::Number(f64::from(self.be(1)? as u8 as i8)),
            0xd1 => Value::Number(f64::from(self.be(2)? as u16 as i16)),
            0xd2 => Value::Number(f64::from(self.be(4)? as u32 as i32)),
            0xd3 => Value::Number(self.be(8)? as i64 as f64),
            0xc0 => Value::Nil,
            0xc2 => Value::Boolean(false),
            0xc3 => Value::Boolean(true),
            0xca => Value::Number(f64::from(f32::from_bits(self.be(4)? as u32))),
            0xcb => Value::Number(f64::from_bits(self.be(8)?)),
            0xa0..=0xbf => self.string(lua, usize::from(tag & 0x1f))?,
            // No bin8/16/32 (0xc4..0xc6) in lua-cmsgpack 0.4.0: bad format.
            0xd9 => {
                let n = self.be(1)? as usize;
                self.string(lua, n)?
            }
            0xda => {
                let n = self.be(2)? as usize;
                self.string(lua, n)?
            }
            0xdb => {
                let n = self.be(4)? as usize;
                self.string(lua, n)?
            }
            0x90..=0x9f => self.array(lua, usize::from(tag & 0x0f))?,
            0xdc => {
                let n = self.be(2)? as usize;
                self.array(lua, n)?
            }
            0xdd => {
                let n = self.be(4)? as usize;
                self.array(lua, n)?
            }
            0x80..=0x8f => self.map(lua, usize::from(tag & 0x0f))?,
            0xde => {
                let n = self.be(2)? as usize;
                self.map(lua, n)?
            }
            0xdf => {
                let n = self.be(4)? as usize;
                self.map(lua, n)?
            }
            _ => return Err(DecodeError::BadFormat),
        })
    }

    fn string(&mut self, lua: &Lua, n: usize) -> Result<Value, DecodeError> {
        let b = self.take(n)?;
        Ok(Value::String(lua.create_string(b)?))
    }

    fn array(&mut self, lua: &Lua, n: usize) -> Result<Value, DecodeError> {
        if self.depth >= MAX_DECODE_DEPTH {
            return Err(DecodeError::TooDeep(
                "stack overflow (in function mp_decode_to_lua_array)",
            ));
        }
        self.depth += 1;
        let t = lua.create_table()?;
        for j in 1..=n {
            let v = self.decode(lua)?;
            t.raw_set(j as i64, v)?;
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }

    fn map(&mut self, lua: &Lua, n: usize) -> Result<Value, DecodeError> {
        if self.depth >= MAX_DECODE_DEPTH {
            return Err(DecodeError::TooDeep(
                "stack overflow (in function mp_decode_to_lua_hash)",
            ));
        }
        self.depth += 1;
        let t = lua.create_table()?;
        for _ in 0..n {
            let k = self.decode(lua)?;
            let v = self.decode(lua)?;
            if k.is_nil() {
                return Err(DecodeError::Lua(mlua::Error::runtime("table index is nil")));
            }
            t.raw_set(k, v)?;
        }
        self.depth -= 1;
        Ok(Value::Table(t))
    }
}

/// lua-cmsgpack's `mp_unpack_full`.
fn unpack_full(lua: &Lua, data: &[u8], limit: i64, offset: i64) -> Result<MultiValue, String> {
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(format!(
            "Invalid request to unpack with offset of {offset} and limit of {}.",
            data.len()
        ));
    }
    if offset as usize > data.len() {
        return Err(format!(
            "Start offset {offset} greater than input length {}.",
            data.len()
        ));
    }
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut c = Cursor {
        data,
        pos: offset as usize,
        depth: 0,
    };
    let mut out = Vec::new();
    let mut count = 0;
    while c.pos < data.len() && count < limit {
        // lua-cmsgpack's luaL_checkstack before each value: the string argument and the
        // values so far must leave room in a C function's 8000 stack slots.
        if count + 2 > 8000 {
            return Err(
                "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)"
                    .into(),
            );
        }
        match c.decode(lua) {
            Ok(v) => out.push(v),
            Err(DecodeError::Eof) => return Err("Missing bytes in input.".into()),
            Err(DecodeError::BadFormat) => return Err("Bad data format in input.".into()),
            Err(DecodeError::TooDeep(msg)) => return Err(msg.into()),
            Err(DecodeError::Lua(e)) => return Err(e.to_string()),
        }
        count += 1;
    }
    if !decode_all {
        let next = if c.pos == data.len() {
            -1.0
        } else {
            c.pos as f64
        };
        out.insert(0, Value::Number(next));
    }
    Ok(MultiValue::from_vec(out))
}

fn check_data(args: &MultiValue, fname: &str) -> Result<Vec<u8>, String> {
    let v = args.front();
    v.and_then(to_bytes).ok_or_else(|| {
        format!(
            "bad argument #1 to '{fname}' (string expected, got {})",
            type_name(v)
        )
    })
}

fn opt_int(args: &MultiValue, i: usize, fname: &str) -> Result<i64, String> {
    match args.get(i) {
        None | Some(Value::Nil) => Ok(0),
        Some(_) => Ok(check_number(args, i, fname)? as i64),
    }
}

/// The `cmsgpack` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        native(lua, |lua, args| {
            if args.is_empty() {
                return Ok(Outcome::RaiseWhere(
                    "bad argument #0 to 'pack' (MessagePack pack needs input.)".into(),
                ));
            }
            let mut out = Vec::new();
            for v in args.iter() {
                encode(&mut out, v, 0)?;
            }
            Outcome::ret(lua, lua.create_string(&out)?)
        })?,
    )?;
    t.raw_set(
        "unpack",
        native(lua, |lua, args| {
            let r = check_data(&args, "unpack").and_then(|d| unpack_full(lua, &d, 0, 0));
            Ok(r.map_or_else(Outcome::RaiseWhere, Outcome::Return))
        })?,
    )?;
    t.raw_set(
        "unpack_one",
        native(lua, |lua, args| {
            let r = opt_int(&args, 1, "unpack_one").and_then(|off| {
                check_data(&args, "unpack_one").and_then(|d| unpack_full(lua, &d, 1, off))
            });
            Ok(r.map_or_else(Outcome::RaiseWhere, Outcome::Return))
        })?,
    )?;
    t.raw_set(
        "unpack_limit",
        native(lua, |lua, args| {
            let r = check_number(&args, 1, "unpack_limit").and_then(|limit| {
                let off = opt_int(&args, 2, "unpack_limit")?;
                check_data(&args, "unpack_limit")
                    .and_then(|d| unpack_full(lua, &d, limit as i64, off))
            });
            Ok(r.map_or_else(Outcome::RaiseWhere, Outcome::Return))
        })?,
    )?;
    t.raw_set("_NAME", "cmsgpack")?;
    t.raw_set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.raw_set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.raw_set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    Ok(t)
}
