//! RESP2 replies as the raw test clients read them (`crash.rs` blocking, `sql_e2e` async):
//! the reply type and the parsing of a reply's first line, shared so that both clients read
//! exactly the same protocol. Each client only does its own I/O.

#![allow(dead_code)]

use std::io;

/// One reply, read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Reply>>),
}

/// What a reply's first line says.
pub enum Head {
    /// The reply is complete.
    Done(Reply),
    /// A bulk string of this many bytes (plus CRLF) follows.
    Bulk(usize),
    /// This many replies follow.
    Array(usize),
}

/// A reply line as it was read, CRLF included; an error when the connection closed first.
pub fn strip_crlf(mut line: Vec<u8>) -> io::Result<String> {
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-reply",
        ));
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// Parses a reply's first line (without its CRLF).
pub fn parse_head(line: &str) -> io::Result<Head> {
    let bad = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad reply line {line:?}"),
        )
    };
    let (kind, rest) = line.split_at(1.min(line.len()));
    let length = || -> io::Result<Option<usize>> {
        let len: i64 = rest.parse().map_err(|_| bad())?;
        Ok(usize::try_from(len).ok())
    };
    Ok(match kind {
        "+" => Head::Done(Reply::Status(rest.to_string())),
        "-" => Head::Done(Reply::Error(rest.to_string())),
        ":" => Head::Done(Reply::Int(rest.parse().map_err(|_| bad())?)),
        "$" => match length()? {
            Some(n) => Head::Bulk(n),
            None => Head::Done(Reply::Bulk(None)),
        },
        "*" => match length()? {
            Some(n) => Head::Array(n),
            None => Head::Done(Reply::Array(None)),
        },
        _ => return Err(bad()),
    })
}

/// A bulk body read as `len + 2` bytes: drops the trailing CRLF.
pub fn bulk_body(mut buf: Vec<u8>) -> Reply {
    buf.truncate(buf.len().saturating_sub(2));
    Reply::Bulk(Some(buf))
}
