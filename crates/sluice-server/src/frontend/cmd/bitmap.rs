//! Bitmap commands on strings, Redis 7.0 exact: SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP. Bit
//! 0 is the most significant bit of the first byte, as in Redis.

use bytes::Bytes;
use sluice::{Entry, Kind, Mutation, SluiceError, Stored};

use super::args::{parse, Args};
use super::spec::{boxed, Ctx, KeyPositions, Spec};
use super::util::{engine_error, int_arg, is, syntax_error};
use crate::frontend::Frame;
use crate::state::keyspace_events::{GENERIC, STRING};

const WRITE: &[&str] = &["@write", "@bitmap"];
const READ: &[&str] = &["@read", "@bitmap"];

/// The bitmap commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "setbit",
        arity: 4,
        flags: &["write", "denyoom"],
        keys: KeyPositions::FIRST,
        categories: WRITE,
        summary: "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.",
        handler: boxed!(setbit),
        ..Spec::DEFAULT
    },
    Spec {
        name: "getbit",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ,
        summary: "Returns a bit value by offset.",
        handler: boxed!(getbit),
        ..Spec::DEFAULT
    },
    Spec {
        name: "bitcount",
        arity: -2,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ,
        summary: "Counts the number of set bits (population counting) in a string.",
        handler: boxed!(bitcount),
        ..Spec::DEFAULT
    },
    Spec {
        name: "bitpos",
        arity: -3,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ,
        summary: "Finds the first set (1) or clear (0) bit in a string.",
        handler: boxed!(bitpos),
        ..Spec::DEFAULT
    },
    Spec {
        name: "bitop",
        arity: -4,
        flags: &["write", "denyoom"],
        keys: KeyPositions::FROM_SECOND,
        categories: WRITE,
        summary: "Performs bitwise operations on multiple strings, and stores the result.",
        handler: boxed!(bitop),
        ..Spec::DEFAULT
    },
];

/// A bit offset as Redis's `getBitOffsetFromArgument` takes it: a non-negative integer whose
/// byte is below `proto-max-bulk-len`.
fn bit_offset(arg: &[u8], max_bytes: u64) -> Result<u64, Frame> {
    let error = || Frame::error("ERR bit offset is not an integer or out of range");
    let offset = int_arg(arg).map_err(|_| error())?;
    match u64::try_from(offset) {
        Ok(o) if o >> 3 < max_bytes => Ok(o),
        _ => Err(error()),
    }
}

/// Bit `offset` of `bytes` (0 past the end).
fn bit_at(bytes: &[u8], offset: u64) -> bool {
    let byte = (offset >> 3) as usize;
    bytes
        .get(byte)
        .is_some_and(|b| b & (0x80 >> (offset & 7)) != 0)
}

/// The set bits of `bytes` in the bit range `first..=last` (both within the string): whole
/// bytes by population count, the partial bytes at either end bit by bit.
fn count_bits(bytes: &[u8], first: u64, last: u64) -> u64 {
    let (first_byte, last_byte) = (first / 8, last / 8);
    if last_byte - first_byte < 2 {
        return (first..=last).filter(|&b| bit_at(bytes, b)).count() as u64;
    }
    let head = (first..(first_byte + 1) * 8)
        .filter(|&b| bit_at(bytes, b))
        .count() as u64;
    let tail = (last_byte * 8..=last).filter(|&b| bit_at(bytes, b)).count() as u64;
    let middle: u64 = bytes[(first_byte + 1) as usize..last_byte as usize]
        .iter()
        .map(|b| u64::from(b.count_ones()))
        .sum();
    head + middle + tail
}

/// The first bit equal to `bit` in the bit range `first..=last` (within the string), skipping
/// whole bytes that cannot hold it.
fn find_bit(bytes: &[u8], first: u64, last: u64, bit: bool) -> Option<u64> {
    let skip = if bit { 0x00 } else { 0xff };
    let mut at = first;
    while at <= last {
        if at.is_multiple_of(8) && at + 7 <= last && bytes[(at / 8) as usize] == skip {
            at += 8;
            continue;
        }
        if bit_at(bytes, at) == bit {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// The string an entry holds; `WRONGTYPE` for another type.
fn string_of(entry: Option<Entry>) -> Result<Option<Bytes>, SluiceError> {
    match entry {
        None => Ok(None),
        Some(e) if e.kind != Kind::String => Err(SluiceError::WrongType),
        Some(e) => Ok(Some(e.value)),
    }
}

/// `key offset value` (SETBIT).
struct SetBit {
    key: Bytes,
    offset: u64,
    on: bool,
}

impl SetBit {
    fn parse(argv: &mut [Bytes], max_bytes: u64) -> Result<SetBit, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let offset = bit_offset(&args.next_bytes()?, max_bytes)?;
        let on = match int_arg(&args.next_bytes()?) {
            Ok(0) => false,
            Ok(1) => true,
            _ => return Err(Frame::error("ERR bit is not an integer or out of range")),
        };
        Ok(SetBit { key, offset, on })
    }
}

/// SETBIT key offset value
async fn setbit(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let max = ctx.shared.config.proto_max_bulk_len;
    let a = parse!(SetBit::parse(argv, max));
    let r = ctx
        .access
        .update_string(ctx.session.db, &a.key, |cur| {
            let created = cur.is_none();
            let (mut bytes, expires_at) = match cur {
                Some(e) => (e.value.to_vec(), e.expires_at),
                None => (Vec::new(), None),
            };
            let byte = (a.offset >> 3) as usize;
            let grown = bytes.len() <= byte;
            if grown {
                bytes.resize(byte + 1, 0);
            }
            let mask = 0x80 >> (a.offset & 7);
            let old = bytes[byte] & mask != 0;
            // As Redis: a write (and an event) only for a new key, a longer string or a bit
            // that changes.
            if !(created || grown || old != a.on) {
                return Ok((Mutation::Keep, (old, false)));
            }
            if a.on {
                bytes[byte] |= mask;
            } else {
                bytes[byte] &= !mask;
            }
            let put = Mutation::Put {
                value: Bytes::from(bytes),
                kind: Kind::String,
                expires_at,
            };
            Ok((put, (old, true)))
        })
        .await;
    match r {
        Ok((old, written)) => {
            if written {
                ctx.notify(STRING, "setbit", &a.key);
            }
            Frame::Integer(old.into())
        }
        Err(e) => engine_error(e),
    }
}

/// GETBIT key offset
async fn getbit(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let max = ctx.shared.config.proto_max_bulk_len;
    let mut args = Args::new(argv);
    let key = parse!(args.next_bytes());
    let offset = parse!(args.next_bytes().and_then(|o| bit_offset(&o, max)));
    let r = ctx.access.get(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Ok(v) => Frame::Integer(v.is_some_and(|v| bit_at(&v, offset)).into()),
        Err(e) => engine_error(e),
    }
}

/// Whether a range's bounds count bytes or bits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Byte,
    Bit,
}

fn unit(arg: &[u8]) -> Result<Unit, Frame> {
    if is(arg, "bit") {
        Ok(Unit::Bit)
    } else if is(arg, "byte") {
        Ok(Unit::Byte)
    } else {
        Err(syntax_error())
    }
}

/// A range's bounds made absolute, as Redis does: negatives count from the end, then both are
/// clamped to `[0, total - 1]`.
fn clamp(mut start: i64, mut end: i64, total: i64) -> (i64, i64) {
    if start < 0 {
        start += total;
    }
    if end < 0 {
        end += total;
    }
    (start.max(0), end.max(0).min(total - 1))
}

/// BITCOUNT key [start end [BYTE | BIT]]
async fn bitcount(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = argv[1].clone();
    // Redis 7.0 looks the key up before it reads the range.
    let r = ctx.access.get(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    let value = match r {
        Ok(Some(v)) => v,
        Ok(None) => return Frame::Integer(0),
        Err(e) => return engine_error(e),
    };
    let (start, end, unit) = match argv.len() {
        2 => (0, value.len() as i64 - 1, Unit::Byte),
        4 | 5 => {
            let start = parse!(int_arg(&argv[2]));
            let end = parse!(int_arg(&argv[3]));
            let unit = match argv.get(4) {
                Some(u) => parse!(unit(u)),
                None => Unit::Byte,
            };
            let total = match unit {
                Unit::Byte => value.len() as i64,
                Unit::Bit => value.len() as i64 * 8,
            };
            if start < 0 && end < 0 && start > end {
                return Frame::Integer(0);
            }
            let (s, e) = clamp(start, end, total);
            (s, e, unit)
        }
        _ => return syntax_error(),
    };
    if start > end {
        return Frame::Integer(0);
    }
    let (first, last) = match unit {
        Unit::Byte => (start as u64 * 8, end as u64 * 8 + 7),
        Unit::Bit => (start as u64, end as u64),
    };
    Frame::Integer(count_bits(&value, first, last) as i64)
}

/// BITPOS key bit [start [end [BYTE | BIT]]]
async fn bitpos(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = argv[1].clone();
    let bit = match int_arg(&argv[2]) {
        Ok(b @ (0 | 1)) => b == 1,
        Ok(_) => return Frame::error("ERR The bit argument must be 1 or 0."),
        Err(e) => return e,
    };
    let r = ctx.access.get(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    let value = match r {
        // A missing key is an endless run of zeros.
        Ok(None) => return Frame::Integer(if bit { -1 } else { 0 }),
        Ok(Some(v)) => v,
        Err(e) => return engine_error(e),
    };
    let len = value.len() as i64;
    // The range in bits, and whether the caller bounded its end.
    let (first, last, end_given) = match argv.len() {
        3 => (0, len * 8 - 1, false),
        4..=6 => {
            let start = parse!(int_arg(&argv[3]));
            let unit = match argv.get(5) {
                Some(u) => parse!(unit(u)),
                None => Unit::Byte,
            };
            let end = match argv.get(4) {
                Some(e) => Some(parse!(int_arg(e))),
                None => None,
            };
            let total = match unit {
                Unit::Byte => len,
                Unit::Bit => len * 8,
            };
            let (s, e) = clamp(start, end.unwrap_or(total - 1), total);
            match unit {
                Unit::Byte => (s * 8, e * 8 + 7, end.is_some()),
                Unit::Bit => (s, e, end.is_some()),
            }
        }
        _ => return syntax_error(),
    };
    if first > last || len == 0 {
        return Frame::Integer(-1);
    }
    if let Some(pos) = find_bit(&value, first as u64, last as u64, bit) {
        return Frame::Integer(pos as i64);
    }
    // No clear bit in the string: past its end the bits are zeros, unless an end was given.
    if !bit && !end_given {
        return Frame::Integer((last / 8 + 1) * 8);
    }
    Frame::Integer(-1)
}

/// BITOP AND | OR | XOR | NOT destkey key [key ...]
async fn bitop(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    #[derive(Clone, Copy)]
    enum Op {
        And,
        Or,
        Xor,
        Not,
    }
    let op = match &argv[1] {
        o if is(o, "and") => Op::And,
        o if is(o, "or") => Op::Or,
        o if is(o, "xor") => Op::Xor,
        o if is(o, "not") => Op::Not,
        _ => return syntax_error(),
    };
    if matches!(op, Op::Not) && argv.len() != 4 {
        return Frame::error("ERR BITOP NOT must be called with a single source key.");
    }
    let dst = argv[2].clone();
    let sources = &argv[3..];
    let r = ctx
        .access
        .store_from(ctx.session.db, &dst, sources, |entries| {
            let strings = entries
                .into_iter()
                .map(|e| string_of(e).map(Option::unwrap_or_default))
                .collect::<Result<Vec<Bytes>, _>>()?;
            let len = strings.iter().map(Bytes::len).max().unwrap_or(0);
            if len == 0 {
                return Ok((None, 0));
            }
            // Shorter strings count as zero-padded to the longest.
            let byte = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
            let out: Vec<u8> = (0..len)
                .map(|i| match op {
                    Op::Not => !byte(&strings[0], i),
                    Op::And => strings.iter().fold(0xff, |acc, s| acc & byte(s, i)),
                    Op::Or => strings.iter().fold(0, |acc, s| acc | byte(s, i)),
                    Op::Xor => strings.iter().fold(0, |acc, s| acc ^ byte(s, i)),
                })
                .collect();
            Ok((Some((Bytes::from(out), Kind::String)), len))
        })
        .await;
    match r {
        Ok((len, stored)) => {
            match stored {
                Stored::Written => ctx.notify(STRING, "set", &dst),
                Stored::Deleted => ctx.notify(GENERIC, "del", &dst),
                Stored::Untouched => {}
            }
            Frame::Integer(len as i64)
        }
        Err(e) => engine_error(e),
    }
}
