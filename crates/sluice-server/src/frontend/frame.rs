//! Replies and their encoding in RESP2 or RESP3.

use bytes::{BufMut, Bytes, BytesMut};

/// A reply. RESP3-only types are downgraded when the connection speaks RESP2, as Redis does.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `+OK`.
    Simple(String),
    /// `-ERR ...`: the whole line after `-`. Bytes, not text: Redis echoes arguments into
    /// error lines as they were sent.
    Error(Bytes),
    /// `:42`.
    Integer(i64),
    /// `$3\r\nfoo`.
    Bulk(Bytes),
    /// Nil: `$-1` in RESP2, `_` in RESP3.
    Null,
    /// Nil array: `*-1` in RESP2, `_` in RESP3.
    NullArray,
    /// `*n`.
    Array(Vec<Frame>),
    /// RESP3 map; a flat array in RESP2.
    Map(Vec<(Frame, Frame)>),
    /// RESP3 set; an array in RESP2.
    Set(Vec<Frame>),
    /// RESP3 double; a bulk string in RESP2.
    Double(f64),
    /// RESP3 boolean; `:1` / `:0` in RESP2.
    Boolean(bool),
    /// RESP3 verbatim string (`txt`); a bulk string in RESP2.
    Verbatim(Bytes),
    /// RESP3 big number (`(123...`); a bulk string in RESP2. Only Lua scripts produce it
    /// (`{big_number = "..."}`).
    BigNumber(Bytes),
    /// RESP3 push (`>n`: pub/sub messages and subscription confirmations); an array in RESP2.
    Push(Vec<Frame>),
    /// Several replies sent one after the other for one command (SUBSCRIBE of two channels
    /// answers two confirmations), with no header of their own.
    Many(Vec<Frame>),
}

impl Frame {
    /// `+OK`.
    pub fn ok() -> Frame {
        Frame::Simple("OK".into())
    }

    /// An error line, e.g. `Frame::error("ERR syntax error")`.
    pub fn error(line: impl Into<String>) -> Frame {
        Frame::Error(Bytes::from(line.into()))
    }

    /// A bulk string from anything byte-like.
    pub fn bulk(b: impl Into<Bytes>) -> Frame {
        Frame::Bulk(b.into())
    }

    /// A bulk string, or nil.
    pub fn bulk_or_null(b: Option<Bytes>) -> Frame {
        b.map(Frame::Bulk).unwrap_or(Frame::Null)
    }

    /// True for error replies.
    pub fn is_error(&self) -> bool {
        matches!(self, Frame::Error(_))
    }

    /// Appends the encoding of this frame for the given protocol version (2 or 3).
    pub fn encode(&self, proto: u8, out: &mut BytesMut) {
        match self {
            Frame::Simple(s) => {
                out.put_u8(b'+');
                out.put_slice(s.as_bytes());
                out.put_slice(b"\r\n");
            }
            Frame::Error(s) => {
                out.put_u8(b'-');
                out.put_slice(s);
                out.put_slice(b"\r\n");
            }
            Frame::Integer(i) => {
                out.put_u8(b':');
                put_int(out, *i);
            }
            Frame::Bulk(b) => put_bulk(out, b),
            Frame::Null => out.put_slice(if proto >= 3 { b"_\r\n" } else { b"$-1\r\n" }),
            Frame::NullArray => out.put_slice(if proto >= 3 { b"_\r\n" } else { b"*-1\r\n" }),
            // The aggregates differ only in their RESP3 type byte; RESP2 sends arrays.
            Frame::Array(items) | Frame::Set(items) | Frame::Push(items) => {
                let resp3 = match self {
                    Frame::Set(_) => b'~',
                    Frame::Push(_) => b'>',
                    _ => b'*',
                };
                out.put_u8(if proto >= 3 { resp3 } else { b'*' });
                put_int(out, items.len() as i64);
                for f in items {
                    f.encode(proto, out);
                }
            }
            Frame::Map(pairs) => {
                if proto >= 3 {
                    out.put_u8(b'%');
                    put_int(out, pairs.len() as i64);
                } else {
                    out.put_u8(b'*');
                    put_int(out, pairs.len() as i64 * 2);
                }
                for (k, v) in pairs {
                    k.encode(proto, out);
                    v.encode(proto, out);
                }
            }
            Frame::Double(d) => {
                let text = format_double(*d);
                if proto >= 3 {
                    out.put_u8(b',');
                    out.put_slice(text.as_bytes());
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, text.as_bytes());
                }
            }
            Frame::Boolean(b) => {
                if proto >= 3 {
                    out.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" });
                } else {
                    out.put_slice(if *b { b":1\r\n" } else { b":0\r\n" });
                }
            }
            Frame::Verbatim(b) => {
                if proto >= 3 {
                    out.put_u8(b'=');
                    put_int(out, b.len() as i64 + 4);
                    out.put_slice(b"txt:");
                    out.put_slice(b);
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, b);
                }
            }
            Frame::BigNumber(b) => {
                if proto >= 3 {
                    out.put_u8(b'(');
                    out.put_slice(b);
                    out.put_slice(b"\r\n");
                } else {
                    put_bulk(out, b);
                }
            }
            Frame::Many(replies) => {
                for f in replies {
                    f.encode(proto, out);
                }
            }
        }
    }
}

fn put_int(out: &mut BytesMut, i: i64) {
    let mut buf = itoa::Buffer::new();
    out.put_slice(buf.format(i).as_bytes());
    out.put_slice(b"\r\n");
}

fn put_bulk(out: &mut BytesMut, b: &[u8]) {
    out.put_u8(b'$');
    put_int(out, b.len() as i64);
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// A sorted-set score as Redis 7.0's `d2string` prints it into a listpack (what ZSCAN answers
/// and MEMORY USAGE counts): an integral value within ±2^62 as an integer, otherwise as
/// [`format_double`].
pub fn format_score(d: f64) -> String {
    const HALF: f64 = (i64::MAX / 2) as f64;
    if d.is_finite() && (-HALF..=HALF).contains(&d) && d.trunc() == d {
        return itoa::Buffer::new().format(d as i64).to_string();
    }
    format_double(d)
}

/// Formats a double as Redis does for RESP3 (`%.17g`, with `inf`, `-inf`, `nan`).
pub fn format_double(d: f64) -> String {
    if d.is_infinite() {
        return if d > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if d.is_nan() {
        return "nan".into();
    }
    let mut buf = [0u8; 64];
    // SAFETY: the format string and buffer are valid; snprintf writes at most 64 bytes.
    let n = unsafe {
        libc::snprintf(
            buf.as_mut_ptr() as *mut libc::c_char,
            buf.len(),
            c"%.17g".as_ptr(),
            d,
        )
    };
    String::from_utf8_lossy(&buf[..(n.max(0) as usize).min(63)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: &Frame, proto: u8) -> Vec<u8> {
        let mut out = BytesMut::new();
        f.encode(proto, &mut out);
        out.to_vec()
    }

    #[test]
    fn nil_depends_on_protocol() {
        assert_eq!(enc(&Frame::Null, 2), b"$-1\r\n");
        assert_eq!(enc(&Frame::Null, 3), b"_\r\n");
        assert_eq!(enc(&Frame::NullArray, 2), b"*-1\r\n");
    }

    #[test]
    fn pushes_are_arrays_in_resp2() {
        let push = Frame::Push(vec![Frame::bulk("message"), Frame::Integer(1)]);
        assert_eq!(enc(&push, 2), b"*2\r\n$7\r\nmessage\r\n:1\r\n");
        assert_eq!(enc(&push, 3), b">2\r\n$7\r\nmessage\r\n:1\r\n");
        let many = Frame::Many(vec![push.clone(), Frame::Integer(2)]);
        assert_eq!(enc(&many, 3), b">2\r\n$7\r\nmessage\r\n:1\r\n:2\r\n");
    }

    #[test]
    fn maps_flatten_in_resp2() {
        let m = Frame::Map(vec![(Frame::bulk("a"), Frame::Integer(1))]);
        assert_eq!(enc(&m, 2), b"*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(enc(&m, 3), b"%1\r\n$1\r\na\r\n:1\r\n");
    }
}
