//! The `cjson` library as Redis bundles it (lua-cjson 2.1.0 with its default settings):
//! `cjson.encode`, `cjson.decode`, `cjson.null`.
//!
//! The configuration functions (`encode_max_depth`, ...) answer with the defaults and do
//! not change them: Redis' table is read-only, but its C settings are process-wide and a
//! script changing them would affect every later script; keeping the defaults fixed avoids
//! that shared state.

use mlua::{LightUserData, Lua, MultiValue, Table, Value};

use super::convert::format_g;
use super::redis_api::type_name;
use super::sandbox::{native, Outcome};

const MAX_DEPTH: usize = 1000;
const SPARSE_RATIO: i32 = 2;
const SPARSE_SAFE: i32 = 10;

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

/// lua-cjson's `char2escape`: the escape of a byte in a JSON string, if it needs one.
fn escape(c: u8) -> Option<Vec<u8>> {
    let short: &[u8] = match c {
        b'\x08' => b"\\b",
        b'\t' => b"\\t",
        b'\n' => b"\\n",
        b'\x0c' => b"\\f",
        b'\r' => b"\\r",
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'/' => b"\\/",
        0..=0x1f | 0x7f => return Some(format!("\\u{c:04x}").into_bytes()),
        _ => return None,
    };
    Some(short.to_vec())
}

fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    for &c in s {
        match escape(c) {
            Some(e) => out.extend_from_slice(&e),
            None => out.push(c),
        }
    }
    out.push(b'"');
}

fn append_number(out: &mut Vec<u8>, n: f64) -> Result<(), String> {
    if n.is_nan() || n.is_infinite() {
        return Err("Cannot serialise number: must not be NaN or Inf".into());
    }
    out.extend_from_slice(format_g(n, 14).as_bytes());
    Ok(())
}

fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// lua-cjson's `lua_array_length`: the array length, or None for an object.
fn array_length(t: &Table) -> Result<Option<usize>, String> {
    // `max` is a C int: a key past INT_MAX stores INT_MIN (x86-64's cast), which makes the
    // table an object, as in Redis.
    let mut max: i32 = 0;
    let mut items: i32 = 0;
    for pair in t.pairs::<Value, Value>() {
        let (k, _) = pair.map_err(|e| e.to_string())?;
        match number_of(&k) {
            Some(k) if k != 0.0 && k.floor() == k && k >= 1.0 => {
                if k > f64::from(max) {
                    max = super::redis_api::c_int_cast(k);
                }
                items = items.saturating_add(1);
            }
            _ => return Ok(None),
        }
    }
    if max > items.saturating_mul(SPARSE_RATIO) && max > SPARSE_SAFE {
        return Err("Cannot serialise table: excessively sparse array".into());
    }
    Ok(usize::try_from(max).ok().filter(|&m| m > 0))
}

fn encode_value(out: &mut Vec<u8>, v: &Value, depth: usize) -> Result<(), String> {
    match v {
        Value::String(s) => append_string(out, &s.as_bytes()),
        Value::Number(_) | Value::Integer(_) => append_number(out, number_of(v).unwrap_or(0.0))?,
        Value::Boolean(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Nil => out.extend_from_slice(b"null"),
        Value::LightUserData(p) if p.0.is_null() => out.extend_from_slice(b"null"),
        Value::Table(t) => {
            let depth = depth + 1;
            if depth > MAX_DEPTH {
                return Err(format!("Cannot serialise, excessive nesting ({depth})"));
            }
            match array_length(t)? {
                Some(len) => {
                    out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            out.push(b',');
                        }
                        let item = t.raw_get::<Value>(i as i64).map_err(|e| e.to_string())?;
                        encode_value(out, &item, depth)?;
                    }
                    out.push(b']');
                }
                None => {
                    out.push(b'{');
                    let mut first = true;
                    for pair in t.pairs::<Value, Value>() {
                        let (k, val) = pair.map_err(|e| e.to_string())?;
                        if !first {
                            out.push(b',');
                        }
                        first = false;
                        match &k {
                            Value::Number(_) | Value::Integer(_) => {
                                out.push(b'"');
                                append_number(out, number_of(&k).unwrap_or(0.0))?;
                                out.extend_from_slice(b"\":");
                            }
                            Value::String(s) => {
                                append_string(out, &s.as_bytes());
                                out.push(b':');
                            }
                            other => {
                                return Err(format!(
                                    "Cannot serialise {}: table key must be a number or string",
                                    type_name(Some(other))
                                ))
                            }
                        }
                        encode_value(out, &val, depth)?;
                    }
                    out.push(b'}');
                }
            }
        }
        other => {
            return Err(format!(
                "Cannot serialise {}: type not supported",
                type_name(Some(other))
            ))
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Tok {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    Str,
    Num(f64),
    Bool(bool),
    Null,
    Colon,
    Comma,
    End,
    Error(&'static str),
}

impl Tok {
    fn name(&self) -> &'static str {
        match self {
            Tok::ObjBegin => "T_OBJ_BEGIN",
            Tok::ObjEnd => "T_OBJ_END",
            Tok::ArrBegin => "T_ARR_BEGIN",
            Tok::ArrEnd => "T_ARR_END",
            Tok::Str => "T_STRING",
            Tok::Num(_) => "T_NUMBER",
            Tok::Bool(_) => "T_BOOLEAN",
            Tok::Null => "T_NULL",
            Tok::Colon => "T_COLON",
            Tok::Comma => "T_COMMA",
            Tok::End => "T_END",
            Tok::Error(e) => e,
        }
    }
}

/// lua-cjson's decoder over a NUL-terminated copy of the input (it stops at a NUL, as the
/// C code does, and uses `strtod` for numbers).
struct Parser<'a> {
    lua: &'a Lua,
    data: Vec<u8>,
    pos: usize,
    depth: usize,
    /// Index of the current token, for error messages.
    index: usize,
    /// The last string token's bytes.
    string: Vec<u8>,
}

fn hex4(b: &[u8]) -> Option<u32> {
    if b.len() < 4 {
        return None;
    }
    let mut v = 0u32;
    for &c in &b[..4] {
        v = v * 16 + (c as char).to_digit(16)?;
    }
    Some(v)
}

fn push_utf8(out: &mut Vec<u8>, cp: u32) -> bool {
    match cp {
        0..=0x7f => out.push(cp as u8),
        0x80..=0x7ff => {
            out.push(0xc0 | (cp >> 6) as u8);
            out.push(0x80 | (cp & 0x3f) as u8);
        }
        0x800..=0xffff => {
            out.push(0xe0 | (cp >> 12) as u8);
            out.push(0x80 | ((cp >> 6) & 0x3f) as u8);
            out.push(0x80 | (cp & 0x3f) as u8);
        }
        0x10000..=0x1fffff => {
            out.push(0xf0 | (cp >> 18) as u8);
            out.push(0x80 | ((cp >> 12) & 0x3f) as u8);
            out.push(0x80 | ((cp >> 6) & 0x3f) as u8);
            out.push(0x80 | (cp & 0x3f) as u8);
        }
        _ => return false,
    }
    true
}

impl Parser<'_> {
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn next_token(&mut self) -> Tok {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        self.index = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            b'{' => Some(Tok::ObjBegin),
            b'}' => Some(Tok::ObjEnd),
            b'[' => Some(Tok::ArrBegin),
            b']' => Some(Tok::ArrEnd),
            b',' => Some(Tok::Comma),
            b':' => Some(Tok::Colon),
            _ => None,
        };
        if let Some(t) = single {
            self.pos += 1;
            return t;
        }
        if c == 0 {
            return Tok::End;
        }
        let rest = &self.data[self.pos..];
        match c {
            b'"' => self.string_token(),
            b'-' | b'0'..=b'9' | b'+' => self.number_token(),
            _ if rest.starts_with(b"true") => {
                self.pos += 4;
                Tok::Bool(true)
            }
            _ if rest.starts_with(b"false") => {
                self.pos += 5;
                Tok::Bool(false)
            }
            _ if rest.starts_with(b"null") => {
                self.pos += 4;
                Tok::Null
            }
            b'i' | b'I' | b'n' | b'N' if self.invalid_number() => self.number_token(),
            _ => Tok::Error("invalid token"),
        }
    }

    /// lua-cjson's `json_is_invalid_number` for the Inf/NaN spellings it lets strtod read.
    fn invalid_number(&self) -> bool {
        let rest = &self.data[self.pos..];
        let lower: Vec<u8> = rest
            .iter()
            .take(3)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        lower == b"inf" || lower == b"nan"
    }

    fn number_token(&mut self) -> Tok {
        let start = self.data[self.pos..].as_ptr() as *const libc::c_char;
        let mut end: *mut libc::c_char = std::ptr::null_mut();
        // SAFETY: `data` ends with a NUL byte, so strtod stops inside the buffer.
        let n = unsafe { libc::strtod(start, &mut end) };
        let used = (end as usize).saturating_sub(start as usize);
        if used == 0 {
            self.index = self.pos;
            return Tok::Error("invalid number");
        }
        self.pos += used;
        Tok::Num(n)
    }

    fn string_token(&mut self) -> Tok {
        self.pos += 1;
        self.string.clear();
        loop {
            let c = self.at(self.pos);
            if c == b'"' {
                break;
            }
            if c == 0 {
                self.index = self.pos;
                return Tok::Error("unexpected end of string");
            }
            if c == b'\\' {
                let e = match self.at(self.pos + 1) {
                    b'"' => b'"',
                    b'\\' => b'\\',
                    b'/' => b'/',
                    b'b' => 8,
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => 12,
                    b'r' => b'\r',
                    b'u' => {
                        if self.unicode_escape() {
                            continue;
                        }
                        self.index = self.pos;
                        return Tok::Error("invalid unicode escape code");
                    }
                    _ => {
                        self.index = self.pos;
                        return Tok::Error("invalid escape code");
                    }
                };
                self.string.push(e);
                self.pos += 2;
                continue;
            }
            self.string.push(c);
            self.pos += 1;
        }
        self.pos += 1;
        Tok::Str
    }

    fn unicode_escape(&mut self) -> bool {
        let Some(mut cp) = hex4(&self.data[(self.pos + 2).min(self.data.len())..]) else {
            return false;
        };
        let mut len = 6;
        if cp & 0xF800 == 0xD800 {
            if cp & 0x400 != 0 {
                return false;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return false;
            }
            let Some(low) = hex4(&self.data[(self.pos + 8).min(self.data.len())..]) else {
                return false;
            };
            if low & 0xFC00 != 0xDC00 {
                return false;
            }
            cp = (((cp & 0x3FF) << 10) | (low & 0x3FF)) + 0x10000;
            len = 12;
        }
        if !push_utf8(&mut self.string, cp) {
            return false;
        }
        self.pos += len;
        true
    }

    fn error(&self, expected: &str, tok: Tok) -> String {
        format!(
            "Expected {expected} but found {} at character {}",
            tok.name(),
            self.index + 1
        )
    }

    fn descend(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!(
                "Found too many nested data structures ({}) at character {}",
                self.depth, self.pos
            ));
        }
        Ok(())
    }

    fn value(&mut self, tok: Tok) -> Result<Value, String> {
        let lua_err = |e: mlua::Error| e.to_string();
        match tok {
            Tok::Str => Ok(Value::String(
                self.lua.create_string(&self.string).map_err(lua_err)?,
            )),
            Tok::Num(n) => Ok(Value::Number(n)),
            Tok::Bool(b) => Ok(Value::Boolean(b)),
            Tok::Null => Ok(null()),
            Tok::ObjBegin => {
                self.descend()?;
                let t = self.lua.create_table().map_err(lua_err)?;
                let mut tok = self.next_token();
                if tok == Tok::ObjEnd {
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                loop {
                    if tok != Tok::Str {
                        return Err(self.error("object key string", tok));
                    }
                    let key = self.lua.create_string(&self.string).map_err(lua_err)?;
                    tok = self.next_token();
                    if tok != Tok::Colon {
                        return Err(self.error("colon", tok));
                    }
                    let vt = self.next_token();
                    let v = self.value(vt)?;
                    t.raw_set(key, v).map_err(lua_err)?;
                    tok = self.next_token();
                    if tok == Tok::ObjEnd {
                        self.depth -= 1;
                        return Ok(Value::Table(t));
                    }
                    if tok != Tok::Comma {
                        return Err(self.error("comma or object end", tok));
                    }
                    tok = self.next_token();
                }
            }
            Tok::ArrBegin => {
                self.descend()?;
                let t = self.lua.create_table().map_err(lua_err)?;
                let mut tok = self.next_token();
                if tok == Tok::ArrEnd {
                    self.depth -= 1;
                    return Ok(Value::Table(t));
                }
                let mut i = 1i64;
                loop {
                    let v = self.value(tok)?;
                    t.raw_set(i, v).map_err(lua_err)?;
                    i += 1;
                    tok = self.next_token();
                    if tok == Tok::ArrEnd {
                        self.depth -= 1;
                        return Ok(Value::Table(t));
                    }
                    if tok != Tok::Comma {
                        return Err(self.error("comma or array end", tok));
                    }
                    tok = self.next_token();
                }
            }
            other => Err(self.error("value", other)),
        }
    }
}

fn decode(lua: &Lua, args: &MultiValue) -> Result<Value, String> {
    if args.len() != 1 {
        return Err("bad argument #1 to 'decode' (expected 1 argument)".into());
    }
    let bytes = match args.front() {
        Some(Value::String(s)) => s.as_bytes().to_vec(),
        Some(v @ (Value::Number(_) | Value::Integer(_))) => {
            super::redis_api::to_bytes(v).unwrap_or_default()
        }
        other => {
            return Err(format!(
                "bad argument #1 to 'decode' (string expected, got {})",
                type_name(other)
            ))
        }
    };
    if bytes.len() >= 2 && (bytes[0] == 0 || bytes[1] == 0) {
        return Err("JSON parser does not support UTF-16 or UTF-32".into());
    }
    let mut data = bytes;
    data.push(0);
    let mut p = Parser {
        lua,
        data,
        pos: 0,
        depth: 0,
        index: 0,
        string: Vec::new(),
    };
    let tok = p.next_token();
    let v = p.value(tok)?;
    let tok = p.next_token();
    if tok != Tok::End {
        return Err(p.error("the end", tok));
    }
    Ok(v)
}

/// The `cjson` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "encode",
        native(lua, |lua, args| {
            if args.len() != 1 {
                return Ok(Outcome::RaiseWhere(
                    "bad argument #1 to 'encode' (expected 1 argument)".into(),
                ));
            }
            let mut out = Vec::new();
            match encode_value(&mut out, args.front().unwrap_or(&Value::Nil), 0) {
                Ok(()) => Outcome::ret(lua, lua.create_string(&out)?),
                Err(e) => Ok(Outcome::RaiseWhere(e)),
            }
        })?,
    )?;
    t.raw_set(
        "decode",
        native(lua, |lua, args| match decode(lua, &args) {
            Ok(v) => Outcome::ret(lua, v),
            Err(e) => Ok(Outcome::RaiseWhere(e)),
        })?,
    )?;
    // A new module table; settings are fixed (see the module doc), so it is a plain copy.
    t.raw_set("new", native(lua, |lua, _| Outcome::ret(lua, table(lua)?))?)?;
    t.raw_set("null", null())?;
    t.raw_set("_NAME", "cjson")?;
    t.raw_set("_VERSION", "2.1.0")?;
    let settings: [(&str, &[Value]); 7] = [
        (
            "encode_sparse_array",
            &[Value::Boolean(false), Value::Integer(2), Value::Integer(10)],
        ),
        ("encode_max_depth", &[Value::Integer(1000)]),
        ("decode_max_depth", &[Value::Integer(1000)]),
        ("encode_number_precision", &[Value::Integer(14)]),
        ("encode_keep_buffer", &[Value::Boolean(true)]),
        ("encode_invalid_numbers", &[Value::Boolean(false)]),
        ("decode_invalid_numbers", &[Value::Boolean(true)]),
    ];
    for (name, current) in settings {
        let current = current.to_vec();
        t.raw_set(
            name,
            native(lua, move |_lua, _args| {
                Ok(Outcome::Return(MultiValue::from_vec(current.clone())))
            })?,
        )?;
    }
    Ok(t)
}
