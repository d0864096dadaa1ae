//! The argument cursor every command parses its typed argument struct with.
//!
//! Arity is checked against the command's spec before a command runs, so a fixed position is
//! always there; the cursor still answers a missing argument with an error rather than a panic,
//! because option parsers read a variable number of arguments.
//!
//! Arguments are moved out, never cloned: each `Bytes` clone is an atomic reference count on
//! the request buffer, and after the command the argument vector is only recycled.

use std::mem::take;

use bytes::Bytes;

use super::util::{int_arg, is, syntax_error};
use crate::frontend::Frame;

/// A cursor over one request's arguments after the command name.
pub struct Args<'a> {
    rest: std::slice::IterMut<'a, Bytes>,
}

impl<'a> Args<'a> {
    /// The arguments after the command name (`argv[0]`).
    pub fn new(argv: &'a mut [Bytes]) -> Args<'a> {
        let mut rest = argv.iter_mut();
        rest.next();
        Args { rest }
    }

    /// How many arguments are left.
    pub fn remaining(&self) -> usize {
        self.rest.len()
    }

    /// Whether every argument has been read.
    pub fn is_empty(&self) -> bool {
        self.rest.len() == 0
    }

    /// The next argument, moved out of the request; `ERR syntax error` if there is none.
    pub fn next_bytes(&mut self) -> Result<Bytes, Frame> {
        self.rest.next().map(take).ok_or_else(syntax_error)
    }

    /// The next argument as a 64-bit integer, as Redis `getLongLongFromObjectOrReply`.
    pub fn next_int(&mut self) -> Result<i64, Frame> {
        int_arg(&self.next_bytes()?)
    }

    /// Key and value pairs to the end (MSET); a dangling key is dropped, the caller having
    /// checked the count.
    pub fn pairs(self) -> Vec<(Bytes, Bytes)> {
        let mut rest = self.rest;
        let mut pairs = Vec::with_capacity(rest.len() / 2);
        while let (Some(k), Some(v)) = (rest.next(), rest.next()) {
            pairs.push((take(k), take(v)));
        }
        pairs
    }

    /// `ERR syntax error` unless every argument has been read.
    pub fn finish(&self) -> Result<(), Frame> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(syntax_error())
        }
    }
}

/// The value of a `Result<T, Frame>`, or returns the error reply from the command.
macro_rules! parse {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return reply,
        }
    };
}
pub(crate) use parse;

/// The arguments of a command that takes one key (GET, STRLEN, TYPE, TTL, PERSIST, ...).
pub struct KeyArg {
    /// The key.
    pub key: Bytes,
}

impl KeyArg {
    /// `<key>`.
    pub fn parse(argv: &mut [Bytes]) -> Result<KeyArg, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        args.finish()?;
        Ok(KeyArg { key })
    }
}

/// The arguments of a command that takes a key and a value (SETNX, GETSET, APPEND, ...).
pub struct KeyValue {
    /// The key.
    pub key: Bytes,
    /// The value.
    pub value: Bytes,
}

impl KeyValue {
    /// `<key> <value>`.
    pub fn parse(argv: &mut [Bytes]) -> Result<KeyValue, Frame> {
        let mut args = Args::new(argv);
        let (key, value) = (args.next_bytes()?, args.next_bytes()?);
        args.finish()?;
        Ok(KeyValue { key, value })
    }
}

/// The arguments of a command that takes one or more keys (MGET, DEL, EXISTS, ...), left in
/// the request (no allocation); a command may move each key out as it goes.
pub struct KeyList<'a> {
    /// The keys, in request order.
    pub keys: &'a mut [Bytes],
}

impl<'a> KeyList<'a> {
    /// `<key> [<key> ...]`.
    pub fn parse(argv: &'a mut [Bytes]) -> KeyList<'a> {
        KeyList {
            keys: argv.get_mut(1..).unwrap_or_default(),
        }
    }
}

/// `numkeys` of a command that counts its keys (ZUNION, ZMPOP, LMPOP, ...), as Redis checks
/// it: an integer of at least 1, or `error`.
pub fn numkeys(argv: &[Bytes], at: usize, error: &str) -> Result<usize, Frame> {
    match argv.get(at).map(|n| int_arg(n)) {
        Some(Ok(n)) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        _ => Err(Frame::error(error)),
    }
}

/// `numkeys key [key ...] <side> [COUNT count]` at `at`: ZMPOP and BZMPOP (`MIN|MAX`), LMPOP
/// and BLMPOP (`LEFT|RIGHT`), checked in Redis's order.
pub struct MultiPop {
    /// The keys, in order.
    pub keys: Vec<Bytes>,
    /// The second of the two sides was named (`MAX`, `RIGHT`).
    pub second: bool,
    /// `COUNT`, at least 1.
    pub count: Option<usize>,
}

impl MultiPop {
    /// Parses from `argv[at]` (numkeys) to the end; `sides` are the two words the side may be.
    pub fn parse(argv: &[Bytes], at: usize, sides: [&str; 2]) -> Result<MultiPop, Frame> {
        let n = numkeys(argv, at, "ERR numkeys should be greater than 0")?;
        let where_at = (at + 1).saturating_add(n);
        let Some(side) = argv.get(where_at) else {
            return Err(syntax_error());
        };
        let second = if is(side, sides[0]) {
            false
        } else if is(side, sides[1]) {
            true
        } else {
            return Err(syntax_error());
        };
        let mut count = None;
        let mut j = where_at + 1;
        while j < argv.len() {
            if count.is_none() && is(&argv[j], "count") && j + 1 < argv.len() {
                count = match int_arg(&argv[j + 1]) {
                    Ok(c) if c >= 1 => Some(usize::try_from(c).unwrap_or(usize::MAX)),
                    _ => return Err(Frame::error("ERR count should be greater than 0")),
                };
                j += 2;
            } else {
                return Err(syntax_error());
            }
        }
        Ok(MultiPop {
            keys: argv[at + 1..where_at].to_vec(),
            second,
            count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(parts: &[&str]) -> Vec<Bytes> {
        parts
            .iter()
            .map(|p| Bytes::copy_from_slice(p.as_bytes()))
            .collect()
    }

    #[test]
    fn moves_arguments_out_in_order() {
        let mut v = argv(&["set", "k", "v", "ex", "10"]);
        let mut a = Args::new(&mut v);
        assert_eq!(a.remaining(), 4);
        assert_eq!(a.next_bytes().unwrap(), "k");
        assert_eq!(a.next_bytes().unwrap(), "v");
        assert_eq!(a.next_bytes().unwrap(), "ex");
        assert_eq!(a.next_int().unwrap(), 10);
        assert!(a.finish().is_ok());
        assert_eq!(a.next_bytes(), Err(syntax_error()));
        // What was read is left empty: only fit for recycling.
        assert!(v[1].is_empty() && v[2].is_empty());
    }

    #[test]
    fn leftovers_and_bad_integers_are_errors() {
        let mut v = argv(&["incrby", "k", "x1"]);
        let mut a = Args::new(&mut v);
        a.next_bytes().unwrap();
        assert_eq!(
            a.next_int(),
            Err(Frame::error("ERR value is not an integer or out of range"))
        );
        let mut v = argv(&["get", "k", "extra"]);
        let mut a = Args::new(&mut v);
        a.next_bytes().unwrap();
        assert_eq!(a.finish(), Err(syntax_error()));
    }

    #[test]
    fn pairs_take_keys_and_values() {
        let mut v = argv(&["mset", "a", "1", "b", "2"]);
        let pairs = Args::new(&mut v).pairs();
        assert_eq!(pairs.len(), 2);
        assert_eq!(pairs[1], (Bytes::from("b"), Bytes::from("2")));
    }
}
