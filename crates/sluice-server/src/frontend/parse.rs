//! Request framing: check-then-parse over the connection's read buffer.
//!
//! The parser is resumable: a multibulk request that arrives in pieces is checked only from
//! where the last check stopped, and its arguments become zero-copy slices of the buffer once
//! the whole request is there. Nothing is allocated for what a peer merely announces: a bulk
//! of 512 MiB costs memory only as its bytes arrive.

use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// Framing limits (Redis `proto-max-bulk-len` and friends).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest bulk argument.
    pub max_bulk_len: u64,
    /// Most arguments in one multibulk request.
    pub max_multibulk_len: u64,
    /// Longest inline command, and longest count line.
    pub max_inline_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            max_multibulk_len: 1024 * 1024,
            max_inline_len: 64 * 1024,
        }
    }
}

/// A malformed or oversized request. The bytes follow `ERR Protocol error: `; the connection
/// is closed after the reply, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub Vec<u8>);

impl ProtocolError {
    fn new(message: &str) -> Self {
        ProtocolError(message.as_bytes().to_vec())
    }
}

/// What the parser found.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A complete command with its arguments.
    Command(Vec<Bytes>),
    /// Input consumed that holds no command (an empty line, `*0`).
    Nothing,
}

#[derive(Debug, Default)]
struct Multibulk {
    expected: usize,
    /// Offset of the next unparsed byte.
    pos: usize,
    args: Vec<Range<usize>>,
}

/// The resumable request parser.
#[derive(Debug, Default)]
pub struct RequestParser {
    limits: Limits,
    pending: Option<Multibulk>,
    /// Emptied vectors handed back by [`RequestParser::recycle`], reused so a steady stream
    /// of commands allocates no argument vectors.
    spare_args: Vec<Bytes>,
    spare_ranges: Vec<Range<usize>>,
}

/// The first `byte` at or after `from`, searched as Redis does with `strchr` over its query
/// buffer: a NUL ends the search, so a terminator after a NUL is not seen (the request stays
/// incomplete until the size limit refuses it, exactly as in Redis).
fn find(buf: &[u8], from: usize, byte: u8) -> Option<usize> {
    let i = buf.get(from..)?.iter().position(|&b| b == byte || b == 0)? + from;
    (buf[i] == byte).then_some(i)
}

/// Parses a count as Redis `string2ll` does.
fn parse_count(digits: &[u8]) -> Option<i64> {
    sluice::numeric::parse_strict_i64(digits)
}

/// Vectors longer than this are dropped rather than kept for reuse (one MSET of a million
/// keys must not pin its argument vector for the life of the connection).
const MAX_SPARE_ARGS: usize = 64;

impl RequestParser {
    /// Hands back a command's argument vector once the command has run, for reuse.
    pub fn recycle(&mut self, mut args: Vec<Bytes>) {
        if args.capacity() <= MAX_SPARE_ARGS {
            args.clear();
            self.spare_args = args;
        }
    }

    /// A parser with the given limits.
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            pending: None,
            spare_args: Vec::new(),
            spare_ranges: Vec::new(),
        }
    }

    /// Takes the next request off the front of `buf`. `Ok(None)`: more bytes are needed.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<Parsed>, ProtocolError> {
        if self.pending.is_none() {
            match buf.first() {
                None => return Ok(None),
                Some(b'*') => {}
                Some(_) => return self.inline(buf),
            }
        }
        self.multibulk(buf)
    }

    fn multibulk(&mut self, buf: &mut BytesMut) -> Result<Option<Parsed>, ProtocolError> {
        let limits = self.limits;
        let mb = match self.pending.as_mut() {
            Some(mb) => mb,
            None => {
                let Some(cr) = find(buf, 0, b'\r') else {
                    if buf.len() > limits.max_inline_len {
                        return Err(ProtocolError::new("too big mbulk count string"));
                    }
                    return Ok(None);
                };
                if cr + 1 >= buf.len() {
                    return Ok(None);
                }
                let count = parse_count(&buf[1..cr])
                    .filter(|&n| n <= i32::MAX as i64)
                    .ok_or_else(|| ProtocolError::new("invalid multibulk length"))?;
                if count <= 0 {
                    let _ = buf.split_to(cr + 2);
                    return Ok(Some(Parsed::Nothing));
                }
                if count as u64 > limits.max_multibulk_len {
                    return Err(ProtocolError::new("invalid multibulk length"));
                }
                let mut args = std::mem::take(&mut self.spare_ranges);
                args.reserve((count as usize).min(64));
                self.pending.insert(Multibulk {
                    expected: count as usize,
                    pos: cr + 2,
                    args,
                })
            }
        };
        while mb.args.len() < mb.expected {
            let Some(cr) = find(buf, mb.pos, b'\r') else {
                if buf.len() - mb.pos > limits.max_inline_len {
                    return Err(ProtocolError::new("too big bulk count string"));
                }
                return Ok(None);
            };
            if cr + 1 >= buf.len() {
                return Ok(None);
            }
            if buf[mb.pos] != b'$' {
                // `%c` in Redis: the byte itself, whatever it is.
                return Err(ProtocolError(
                    [&b"expected '$', got '"[..], &[buf[mb.pos]], b"'"].concat(),
                ));
            }
            let len = parse_count(&buf[mb.pos + 1..cr])
                .filter(|&n| n >= 0 && n as u64 <= limits.max_bulk_len)
                .ok_or_else(|| ProtocolError::new("invalid bulk length"))?
                as usize;
            let start = cr + 2;
            // Redis skips the two bytes after a bulk without checking them; so do we.
            if buf.len() < start + len + 2 {
                return Ok(None);
            }
            mb.args.push(start..start + len);
            mb.pos = start + len + 2;
        }
        let mut mb = self.pending.take().unwrap_or_default();
        // Each argument is split off the buffer on its own: one reference count per argument,
        // where a frame split first and then sliced would cost two more per command.
        let mut args = std::mem::take(&mut self.spare_args);
        let mut consumed = 0;
        for r in mb.args.drain(..) {
            buf.advance(r.start - consumed);
            args.push(buf.split_to(r.len()).freeze());
            consumed = r.end;
        }
        buf.advance(mb.pos - consumed);
        if mb.args.capacity() <= MAX_SPARE_ARGS {
            self.spare_ranges = mb.args;
        }
        Ok(Some(Parsed::Command(args)))
    }

    fn inline(&mut self, buf: &mut BytesMut) -> Result<Option<Parsed>, ProtocolError> {
        let Some(nl) = find(buf, 0, b'\n') else {
            if buf.len() > self.limits.max_inline_len {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(None);
        };
        let line = buf.split_to(nl + 1);
        let mut end = nl;
        if end > 0 && line[end - 1] == b'\r' {
            end -= 1;
        }
        let args = split_args(&line[..end])
            .ok_or_else(|| ProtocolError::new("unbalanced quotes in request"))?;
        if args.is_empty() {
            return Ok(Some(Parsed::Nothing));
        }
        Ok(Some(Parsed::Command(
            args.into_iter().map(Bytes::from).collect(),
        )))
    }
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\n' | b'\r' | b'\t' | 0x0b | 0x0c)
}

fn hex_value(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Splits an inline command line as Redis `sdssplitargs` does on a C string: the line ends at
/// a NUL; leading whitespace (C `isspace`) is skipped, but an unquoted argument ends only at a
/// space, tab, CR or LF; "double quotes" take `\n \r \t \b \a \\ \" \xHH` escapes; 'single
/// quotes' take `\'`; a closing quote must be followed by whitespace or the end. `None`:
/// unbalanced quotes.
pub fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = &line[..line.iter().position(|&b| b == 0).unwrap_or(line.len())];
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_space(line[i]) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut current = Vec::new();
        let (mut in_dq, mut in_sq, mut done) = (false, false, false);
        while !done {
            let c = line.get(i).copied();
            if in_dq {
                match c {
                    None => return None,
                    Some(b'\\')
                        if line.get(i + 1) == Some(&b'x')
                            && line.get(i + 2).and_then(|&b| hex_value(b)).is_some()
                            && line.get(i + 3).and_then(|&b| hex_value(b)).is_some() =>
                    {
                        let hi = hex_value(line[i + 2]).unwrap_or(0);
                        let lo = hex_value(line[i + 3]).unwrap_or(0);
                        current.push(hi * 16 + lo);
                        i += 3;
                    }
                    Some(b'\\') if i + 1 < line.len() => {
                        i += 1;
                        current.push(match line[i] {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    Some(b'"') => {
                        if line.get(i + 1).is_some_and(|&b| !is_space(b)) {
                            return None;
                        }
                        done = true;
                    }
                    Some(b) => current.push(b),
                }
            } else if in_sq {
                match c {
                    None => return None,
                    Some(b'\\') if line.get(i + 1) == Some(&b'\'') => {
                        i += 1;
                        current.push(b'\'');
                    }
                    Some(b'\'') => {
                        if line.get(i + 1).is_some_and(|&b| !is_space(b)) {
                            return None;
                        }
                        done = true;
                    }
                    Some(b) => current.push(b),
                }
            } else {
                match c {
                    None | Some(b' ' | b'\n' | b'\r' | b'\t') => done = true,
                    Some(b'"') => in_dq = true,
                    Some(b'\'') => in_sq = true,
                    Some(b) => current.push(b),
                }
            }
            if i < line.len() {
                i += 1;
            }
        }
        args.push(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Parsed>, ProtocolError> {
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(x) = p.next(&mut buf)? {
            out.push(x);
        }
        Ok(out)
    }

    fn cmd(args: &[&str]) -> Parsed {
        Parsed::Command(
            args.iter()
                .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                .collect(),
        )
    }

    #[test]
    fn multibulk_and_pipelining() {
        let got = parse_all(b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n").unwrap();
        assert_eq!(got, vec![cmd(&["PING"]), cmd(&["GET", "k"])]);
    }

    #[test]
    fn resumes_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::new();
        let mut got = None;
        for &b in input.iter() {
            buf.extend_from_slice(&[b]);
            if let Some(x) = p.next(&mut buf).unwrap() {
                got = Some(x);
            }
        }
        assert_eq!(got, Some(cmd(&["SET", "k", "hello"])));
        assert!(buf.is_empty());
    }

    #[test]
    fn inline_commands_split_like_redis() {
        assert_eq!(
            parse_all(b"SET k \"a b\\n\"\r\n").unwrap(),
            vec![cmd(&["SET", "k", "a b\n"])]
        );
        assert_eq!(parse_all(b"\r\n").unwrap(), vec![Parsed::Nothing]);
        assert_eq!(split_args(b"'it\\'s'").unwrap(), vec![b"it's".to_vec()]);
        assert_eq!(split_args(b"\"\\x41\"").unwrap(), vec![b"A".to_vec()]);
        assert!(split_args(b"\"abc").is_none());
        assert!(split_args(b"\"abc\"def").is_none());
    }

    #[test]
    fn malformed_frames_are_protocol_errors() {
        let err = |input: &[u8]| parse_all(input).unwrap_err().0;
        assert_eq!(err(b"*x\r\n"), b"invalid multibulk length");
        assert_eq!(err(b"*1\r\n+foo\r\n"), b"expected '$', got '+'");
        assert_eq!(err(b"*1\r\n\xff\r\n"), b"expected '$', got '\xff'");
        assert_eq!(err(b"*1\r\n$-5\r\n"), b"invalid bulk length");
        assert_eq!(err(b"*1\r\n$999999999999\r\n"), b"invalid bulk length");
        assert_eq!(err(&vec![b'a'; 70 * 1024]), b"too big inline request");
    }

    #[test]
    fn a_nul_hides_the_terminator_as_strchr_does() {
        assert_eq!(parse_all(b"\0\r\nPING\r\n").unwrap(), vec![]);
        assert_eq!(parse_all(b"*1\0\r\n$4\r\nPING\r\n").unwrap(), vec![]);
        let mut big = b"PING\0".to_vec();
        big.resize(70 * 1024, b'\n');
        assert_eq!(parse_all(&big).unwrap_err().0, b"too big inline request");
    }

    #[test]
    fn inline_separators_are_those_of_sdssplitargs() {
        assert_eq!(
            split_args(b"a\x0bb c").unwrap(),
            vec![b"a\x0bb".to_vec(), b"c".to_vec()]
        );
        assert_eq!(split_args(b"\x0b a").unwrap(), vec![b"a".to_vec()]);
        assert_eq!(split_args(b"a\0b").unwrap(), vec![b"a".to_vec()]);
    }

    #[test]
    fn announced_sizes_allocate_nothing() {
        let mut p = RequestParser::new(Limits::default());
        let mut buf = BytesMut::from(&b"*1048576\r\n$536870912\r\nab"[..]);
        assert_eq!(p.next(&mut buf).unwrap(), None);
        assert!(buf.capacity() < 4096);
    }
}
