//! The `struct` library (Roberto Ierusalimschy's struct 0.2, as Redis bundles it):
//! `struct.pack`, `struct.unpack`, `struct.size` on x86-64 (little-endian, 8-byte long).

use mlua::{Lua, MultiValue, Table, Value};

use super::redis_api::{check_number, to_bytes, to_number, type_name};
use super::sandbox::{native, Outcome};

const MAXINTSIZE: usize = 32;
const MAXALIGN: usize = 8;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Little,
    Big,
}

struct Header {
    endian: Endian,
    align: usize,
}

impl Default for Header {
    fn default() -> Self {
        Header {
            endian: Endian::Little,
            align: 1,
        }
    }
}

/// A format parser over the bytes of the format string.
struct Fmt<'a> {
    s: &'a [u8],
    i: usize,
}

impl Fmt<'_> {
    fn next(&mut self) -> Option<u8> {
        let c = self.s.get(self.i).copied();
        // The C code stops at a NUL in the format.
        if c == Some(0) {
            return None;
        }
        self.i += 1;
        c
    }

    fn getnum(&mut self, default: usize) -> Result<usize, String> {
        if !self.s.get(self.i).is_some_and(|c| c.is_ascii_digit()) {
            return Ok(default);
        }
        let mut a: usize = 0;
        while let Some(c) = self.s.get(self.i).copied().filter(u8::is_ascii_digit) {
            let d = usize::from(c - b'0');
            if a > (i32::MAX as usize) / 10 || a * 10 > (i32::MAX as usize) - d {
                return Err("integral size overflow".into());
            }
            a = a * 10 + d;
            self.i += 1;
        }
        Ok(a)
    }

    fn optsize(&mut self, opt: u8) -> Result<usize, String> {
        Ok(match opt {
            b'B' | b'b' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'x' => 1,
            b'c' => self.getnum(1)?,
            b'i' | b'I' => {
                let sz = self.getnum(4)?;
                if sz > MAXINTSIZE {
                    return Err(format!(
                        "integral size {sz} is larger than limit of {MAXINTSIZE}"
                    ));
                }
                sz
            }
            _ => 0,
        })
    }

    fn control(&mut self, opt: u8, h: &mut Header, fname: &str) -> Result<(), String> {
        match opt {
            b' ' => {}
            b'>' => h.endian = Endian::Big,
            b'<' => h.endian = Endian::Little,
            b'!' => {
                let a = self.getnum(MAXALIGN)?;
                if a == 0 || a & (a - 1) != 0 {
                    return Err(format!("alignment {a} is not a power of 2"));
                }
                h.align = a;
            }
            other => {
                return Err(format!(
                    "bad argument #1 to '{fname}' (invalid format option '{}')",
                    other as char
                ))
            }
        }
        Ok(())
    }
}

fn to_align(len: usize, h: &Header, opt: u8, size: usize) -> usize {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    (size - (len & (size - 1))) & (size - 1)
}

fn check_string(args: &MultiValue, i: usize, fname: &str) -> Result<Vec<u8>, String> {
    let v = args.get(i);
    v.and_then(to_bytes).ok_or_else(|| {
        format!(
            "bad argument #{} to '{fname}' (string expected, got {})",
            i + 1,
            type_name(v)
        )
    })
}

fn pack(args: &MultiValue) -> Result<Vec<u8>, String> {
    let fmt = check_string(args, 0, "pack")?;
    // b_pack pushes a nil after its arguments: a missing first value reads as nil there.
    let mut args = args.clone();
    args.push_back(Value::Nil);
    let args = &args;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::default();
    let mut arg = 1usize;
    let mut out = Vec::new();
    while let Some(opt) = f.next() {
        let mut size = f.optsize(opt)?;
        let pad = to_align(out.len(), &h, opt, size);
        out.resize(out.len() + pad, 0);
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                // (unsigned long)(long)n for negatives, (unsigned long)n otherwise, with
                // x86-64's answer for out-of-range casts.
                let value: u64 = if n < 0.0 {
                    if n < -9.223_372_036_854_776e18 {
                        i64::MIN as u64
                    } else {
                        n as i64 as u64
                    }
                } else if n >= 1.844_674_407_370_955_2e19 || n.is_nan() {
                    0x8000_0000_0000_0000
                } else {
                    n as u64
                };
                let mut bytes = vec![0u8; size];
                let mut v = value;
                for j in 0..size {
                    let idx = if h.endian == Endian::Little {
                        j
                    } else {
                        size - 1 - j
                    };
                    bytes[idx] = (v & 0xff) as u8;
                    v = v.checked_shr(8).unwrap_or(0);
                }
                out.extend_from_slice(&bytes);
            }
            b'x' => out.push(0),
            b'f' => {
                let n = check_number(args, arg, "pack")? as f32;
                arg += 1;
                out.extend_from_slice(&if h.endian == Endian::Little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'd' => {
                let n = check_number(args, arg, "pack")?;
                arg += 1;
                out.extend_from_slice(&if h.endian == Endian::Little {
                    n.to_le_bytes()
                } else {
                    n.to_be_bytes()
                });
            }
            b'c' | b's' => {
                let s = check_string(args, arg, "pack")?;
                arg += 1;
                if size == 0 {
                    size = s.len();
                }
                if s.len() < size {
                    // The C code checks after its (1-based) argument counter moved on.
                    return Err(format!(
                        "bad argument #{} to 'pack' (string too short)",
                        arg + 1
                    ));
                }
                out.extend_from_slice(&s[..size]);
                if opt == b's' {
                    out.push(0);
                }
            }
            other => f.control(other, &mut h, "pack")?,
        }
    }
    Ok(out)
}

fn get_integer(b: &[u8], endian: Endian, signed: bool) -> f64 {
    let size = b.len();
    let mut l: u64 = 0;
    for j in 0..size {
        let idx = if endian == Endian::Big {
            j
        } else {
            size - 1 - j
        };
        l = l.checked_shl(8).unwrap_or(0) | u64::from(b[idx]);
    }
    if !signed {
        return l as f64;
    }
    let shift = (size * 8).saturating_sub(1);
    let mask = if shift >= 64 { 0 } else { u64::MAX << shift };
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: &MultiValue) -> Result<MultiValue, String> {
    let lerr = |e: mlua::Error| e.to_string();
    let fmt = check_string(args, 0, "unpack")?;
    let data = check_string(args, 1, "unpack")?;
    let ld = data.len();
    let start = match args.get(2) {
        None | Some(Value::Nil) => 1.0,
        Some(_) => check_number(args, 2, "unpack")?,
    };
    if start < 1.0 {
        return Err("bad argument #3 to 'unpack' (offset must be 1 or greater)".into());
    }
    let mut pos = start as usize - 1;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::default();
    let mut out: Vec<Value> = Vec::new();
    let too_short = "bad argument #2 to 'unpack' (data string too short)";
    while let Some(opt) = f.next() {
        let mut size = f.optsize(opt)?;
        pos += to_align(pos, &h, opt, size);
        if size > ld || pos > ld - size {
            return Err(too_short.into());
        }
        match opt {
            b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I' => {
                let n = get_integer(&data[pos..pos + size], h.endian, opt.is_ascii_lowercase());
                out.push(Value::Number(n));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[pos..pos + 4]);
                let v = if h.endian == Endian::Little {
                    f32::from_le_bytes(b)
                } else {
                    f32::from_be_bytes(b)
                };
                out.push(Value::Number(f64::from(v)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[pos..pos + 8]);
                let v = if h.endian == Endian::Little {
                    f64::from_le_bytes(b)
                } else {
                    f64::from_be_bytes(b)
                };
                out.push(Value::Number(v));
            }
            b'c' => {
                if size == 0 {
                    let prev = out.last().and_then(to_number);
                    let Some(n) = prev else {
                        return Err("format 'c0' needs a previous size".into());
                    };
                    out.pop();
                    size = if n < 0.0 { usize::MAX } else { n as usize };
                    if size > ld || pos > ld - size {
                        return Err(too_short.into());
                    }
                }
                out.push(Value::String(
                    lua.create_string(&data[pos..pos + size]).map_err(lerr)?,
                ));
            }
            b's' => {
                let Some(e) = data[pos..].iter().position(|&c| c == 0) else {
                    return Err("unfinished string in data".into());
                };
                out.push(Value::String(
                    lua.create_string(&data[pos..pos + e]).map_err(lerr)?,
                ));
                size = e + 1;
            }
            other => f.control(other, &mut h, "unpack")?,
        }
        pos += size;
    }
    out.push(Value::Number((pos + 1) as f64));
    Ok(MultiValue::from_vec(out))
}

fn size(args: &MultiValue) -> Result<f64, String> {
    let fmt = check_string(args, 0, "size")?;
    let mut f = Fmt { s: &fmt, i: 0 };
    let mut h = Header::default();
    let mut pos = 0usize;
    while let Some(opt) = f.next() {
        let size = f.optsize(opt)?;
        pos += to_align(pos, &h, opt, size);
        if opt == b's' {
            return Err("bad argument #1 to 'size' (option 's' has no fixed size)".into());
        } else if opt == b'c' && size == 0 {
            return Err("bad argument #1 to 'size' (option 'c0' has no fixed size)".into());
        }
        if !opt.is_ascii_alphanumeric() {
            f.control(opt, &mut h, "size")?;
        }
        pos += size;
    }
    Ok(pos as f64)
}

/// The `struct` table.
pub fn table(lua: &Lua) -> mlua::Result<Table> {
    let t = lua.create_table()?;
    t.raw_set(
        "pack",
        native(lua, |lua, args| match pack(&args) {
            Ok(b) => Outcome::ret(lua, lua.create_string(&b)?),
            Err(e) => Ok(Outcome::RaiseWhere(e)),
        })?,
    )?;
    t.raw_set(
        "unpack",
        native(lua, |lua, args| match unpack(lua, &args) {
            Ok(v) => Ok(Outcome::Return(v)),
            Err(e) => Ok(Outcome::RaiseWhere(e)),
        })?,
    )?;
    t.raw_set(
        "size",
        native(lua, |lua, args| match size(&args) {
            Ok(n) => Outcome::ret(lua, n),
            Err(e) => Ok(Outcome::RaiseWhere(e)),
        })?,
    )?;
    Ok(t)
}
