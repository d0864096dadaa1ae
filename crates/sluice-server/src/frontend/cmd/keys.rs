//! Key commands.

use bytes::Bytes;
use sluice::{ExpireCondition, KeyTtl};

use super::args::{parse, Args, KeyArg, KeyList};
use super::spec::categories::{KEY_READ, KEY_WRITE};
use super::spec::flags::{READ, WRITE_FAST};
use super::spec::{boxed, Handler, Hot, KeyPositions, Spec, TimeUnit};
use super::spec::{Ctx, ExpireBase};
use super::util::engine_error;
use super::util::{c_str, format_error, int_arg, is, syntax_error};
use crate::frontend::Frame;
use crate::glob::glob_match;
use crate::state::keyspace_events::GENERIC;

/// The key commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "del",
        arity: -2,
        flags: &["write"],
        keys: KeyPositions::ALL,
        categories: KEY_WRITE,
        summary: "Deletes one or more keys.",
        handler: Handler::Hot(Hot::Del),
        ..Spec::DEFAULT
    },
    Spec {
        name: "unlink",
        arity: -2,
        flags: WRITE_FAST,
        keys: KeyPositions::ALL,
        categories: KEY_WRITE,
        summary: "Asynchronously deletes one or more keys.",
        handler: Handler::Hot(Hot::Del),
        ..Spec::DEFAULT
    },
    Spec {
        name: "exists",
        arity: -2,
        flags: READ,
        keys: KeyPositions::ALL,
        categories: KEY_READ,
        summary: "Determines whether one or more keys exist.",
        handler: Handler::Hot(Hot::Exists),
        ..Spec::DEFAULT
    },
    Spec {
        name: "touch",
        arity: -2,
        flags: READ,
        keys: KeyPositions::ALL,
        categories: KEY_READ,
        summary: "Returns the number of existing keys out of those specified after updating the time they were last accessed.",
        handler: Handler::Hot(Hot::Exists),
        ..Spec::DEFAULT
    },
    Spec {
        name: "type",
        arity: 2,
        flags: READ,
        keys: KeyPositions::FIRST,
        categories: KEY_READ,
        summary: "Determines the type of value stored at a key.",
        handler: boxed!(type_),
        ..Spec::DEFAULT
    },
    Spec {
        name: "expire",
        arity: -3,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST,
        categories: KEY_WRITE,
        summary: "Sets the expiration time of a key in seconds.",
        handler: Handler::Hot(Hot::Expire(TimeUnit::Seconds)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "pexpire",
        arity: -3,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST,
        categories: KEY_WRITE,
        summary: "Sets the expiration time of a key in milliseconds.",
        handler: Handler::Hot(Hot::Expire(TimeUnit::Millis)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "expireat",
        arity: -3,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST,
        categories: KEY_WRITE,
        summary: "Sets the expiration time of a key to a Unix timestamp.",
        handler: boxed!(expireat),
        ..Spec::DEFAULT
    },
    Spec {
        name: "pexpireat",
        arity: -3,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST,
        categories: KEY_WRITE,
        summary: "Sets the expiration time of a key to a Unix milliseconds timestamp.",
        handler: boxed!(pexpireat),
        ..Spec::DEFAULT
    },
    Spec {
        name: "expiretime",
        arity: 2,
        flags: READ,
        keys: KeyPositions::FIRST,
        categories: KEY_READ,
        summary: "Returns the expiration time of a key as a Unix timestamp.",
        handler: boxed!(expiretime),
        ..Spec::DEFAULT
    },
    Spec {
        name: "pexpiretime",
        arity: 2,
        flags: READ,
        keys: KeyPositions::FIRST,
        categories: KEY_READ,
        summary: "Returns the expiration time of a key as a Unix milliseconds timestamp.",
        handler: boxed!(pexpiretime),
        ..Spec::DEFAULT
    },
    Spec {
        name: "ttl",
        arity: 2,
        flags: READ,
        keys: KeyPositions::FIRST,
        categories: KEY_READ,
        summary: "Returns the expiration time in seconds of a key.",
        handler: Handler::Hot(Hot::Ttl(TimeUnit::Seconds)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "pttl",
        arity: 2,
        flags: READ,
        keys: KeyPositions::FIRST,
        categories: KEY_READ,
        summary: "Returns the expiration time in milliseconds of a key.",
        handler: Handler::Hot(Hot::Ttl(TimeUnit::Millis)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "persist",
        arity: 2,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST,
        categories: KEY_WRITE,
        summary: "Removes the expiration time of a key.",
        handler: boxed!(persist),
        ..Spec::DEFAULT
    },
    Spec {
        name: "keys",
        arity: 2,
        flags: &["readonly"],
        categories: &["@keyspace", "@read", "@slow", "@dangerous"],
        summary: "Returns all key names that match a pattern.",
        handler: boxed!(keys),
        ..Spec::DEFAULT
    },
    Spec {
        name: "scan",
        arity: -2,
        flags: &["readonly"],
        categories: &["@keyspace", "@read", "@slow"],
        summary: "Iterates over the key names in the database.",
        handler: boxed!(scan),
        ..Spec::DEFAULT
    },
    Spec {
        name: "randomkey",
        arity: 1,
        flags: &["readonly"],
        categories: &["@keyspace", "@read", "@slow"],
        summary: "Returns a random key name from the database.",
        handler: boxed!(randomkey),
        ..Spec::DEFAULT
    },
    Spec {
        name: "dbsize",
        arity: 1,
        flags: READ,
        categories: &["@keyspace", "@read", "@fast"],
        summary: "Returns the number of keys in the database.",
        handler: boxed!(dbsize),
        ..Spec::DEFAULT
    },
    Spec {
        name: "copy",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: KeyPositions::FIRST_TWO,
        categories: KEY_WRITE,
        summary: "Copies the value of a key to a new key.",
        handler: boxed!(copy),
        ..Spec::DEFAULT
    },
    Spec {
        name: "rename",
        arity: 3,
        flags: &["write"],
        keys: KeyPositions::FIRST_TWO,
        categories: KEY_WRITE,
        summary: "Renames a key and overwrites the destination.",
        handler: boxed!(rename),
        ..Spec::DEFAULT
    },
    Spec {
        name: "renamenx",
        arity: 3,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST_TWO,
        categories: KEY_WRITE,
        summary: "Renames a key only when the target key name doesn't exist.",
        handler: boxed!(renamenx),
        ..Spec::DEFAULT
    },
];

/// DEL / UNLINK key [key ...]
pub async fn del(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = KeyList::parse(argv);
    let mut n = 0;
    for key in a.keys.iter() {
        match ctx.access.del(ctx.session.db, key).await {
            Ok(true) => {
                n += 1;
                ctx.notify(GENERIC, "del", key);
            }
            Ok(false) => {}
            Err(e) => return engine_error(e),
        }
    }
    Frame::Integer(n)
}

/// EXISTS / TOUCH key [key ...]
pub async fn exists(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = KeyList::parse(argv);
    let mut n = 0;
    // Not moved out: a key may repeat, and each occurrence counts.
    for key in a.keys.iter() {
        match ctx.access.get_entry(ctx.session.db, key.clone()).await {
            Ok(Some(_)) => n += 1,
            Ok(None) => {}
            Err(e) => return engine_error(e),
        }
    }
    Frame::Integer(n)
}

/// TYPE key
async fn type_(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.get_entry(ctx.session.db, a.key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Ok(Some(e)) => Frame::Simple(e.kind.type_name().into()),
        Ok(None) => Frame::Simple("none".into()),
        Err(e) => engine_error(e),
    }
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key t [NX|XX|GT|LT]
struct Expire {
    key: Bytes,
    when: i64,
    condition: ExpireCondition,
}

impl Expire {
    /// Parses as Redis `expireGenericCommand`: options first, then the time.
    fn parse(argv: &mut [Bytes]) -> Result<Expire, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let when = args.next_bytes()?;
        let mut cond = ExpireCondition::ALWAYS;
        while !args.is_empty() {
            let opt = args.next_bytes()?;
            if is(&opt, "nx") {
                cond.if_none = true;
            } else if is(&opt, "xx") {
                cond.if_some = true;
            } else if is(&opt, "gt") {
                cond.if_greater = true;
            } else if is(&opt, "lt") {
                cond.if_less = true;
            } else {
                return Err(format_error(
                    &[b"ERR Unsupported option ", c_str(&opt)].concat(),
                ));
            }
        }
        if cond.if_none && (cond.if_some || cond.if_greater || cond.if_less) {
            return Err(Frame::error(
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ));
        }
        if cond.if_greater && cond.if_less {
            return Err(Frame::error(
                "ERR GT and LT options at the same time are not compatible",
            ));
        }
        let when = int_arg(&when)?;
        Ok(Expire {
            key,
            when,
            condition: cond,
        })
    }
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key t [NX|XX|GT|LT]
pub async fn expire(
    mut ctx: Ctx<'_>,
    argv: &mut [Bytes],
    unit: TimeUnit,
    base: ExpireBase,
) -> Frame {
    let Expire {
        key,
        mut when,
        condition,
    } = parse!(Expire::parse(argv));
    let name = match (unit, base) {
        (TimeUnit::Seconds, ExpireBase::Now) => "expire",
        (TimeUnit::Millis, ExpireBase::Now) => "pexpire",
        (TimeUnit::Seconds, ExpireBase::UnixEpoch) => "expireat",
        (TimeUnit::Millis, ExpireBase::UnixEpoch) => "pexpireat",
    };
    let invalid = || Frame::error(format!("ERR invalid expire time in '{name}' command"));
    if unit == TimeUnit::Seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return invalid();
        }
        when *= 1000;
    }
    let base = match base {
        ExpireBase::UnixEpoch => 0,
        ExpireBase::Now => ctx.access.now_ms() as i64,
    };
    if when > i64::MAX - base {
        return invalid();
    }
    when += base;
    let now = ctx.access.now_ms() as i64;
    match ctx
        .access
        .expire(ctx.session.db, &key, when, condition)
        .await
    {
        Ok(done) => {
            if done {
                // A time already past deletes the key, as Redis's `checkAlreadyExpired`.
                let event = if when <= now { "del" } else { "expire" };
                ctx.notify(GENERIC, event, &key);
            }
            Frame::Integer(done as i64)
        }
        Err(e) => engine_error(e),
    }
}

/// EXPIREAT key timestamp [NX|XX|GT|LT]
async fn expireat(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    expire(ctx, argv, TimeUnit::Seconds, ExpireBase::UnixEpoch).await
}

/// PEXPIREAT key timestamp-ms [NX|XX|GT|LT]
async fn pexpireat(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    expire(ctx, argv, TimeUnit::Millis, ExpireBase::UnixEpoch).await
}

/// EXPIRETIME / PEXPIRETIME key
async fn expiretime_in(mut ctx: Ctx<'_>, argv: &mut [Bytes], unit: TimeUnit) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    match ctx.access.ttl(ctx.session.db, &a.key).await {
        Ok(KeyTtl::Missing) => Frame::Integer(-2),
        Ok(KeyTtl::Persistent) => Frame::Integer(-1),
        Ok(KeyTtl::ExpiresAt(at)) => Frame::Integer(match unit {
            TimeUnit::Millis => at as i64,
            TimeUnit::Seconds => at as i64 / 1000,
        }),
        Err(e) => engine_error(e),
    }
}

/// EXPIRETIME key
async fn expiretime(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    expiretime_in(ctx, argv, TimeUnit::Seconds).await
}

/// PEXPIRETIME key
async fn pexpiretime(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    expiretime_in(ctx, argv, TimeUnit::Millis).await
}

/// TTL / PTTL key
pub async fn ttl(mut ctx: Ctx<'_>, argv: &mut [Bytes], unit: TimeUnit) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let now = ctx.access.now_ms() as i64;
    match ctx.access.ttl(ctx.session.db, &a.key).await {
        Ok(KeyTtl::Missing) => Frame::Integer(-2),
        Ok(KeyTtl::Persistent) => Frame::Integer(-1),
        Ok(KeyTtl::ExpiresAt(at)) => {
            let left = (at as i64 - now).max(0);
            Frame::Integer(match unit {
                TimeUnit::Millis => left,
                TimeUnit::Seconds => (left + 500) / 1000,
            })
        }
        Err(e) => engine_error(e),
    }
}

/// PERSIST key
async fn persist(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    match ctx.access.persist(ctx.session.db, &a.key).await {
        Ok(done) => {
            if done {
                ctx.notify(GENERIC, "persist", &a.key);
            }
            Frame::Integer(done as i64)
        }
        Err(e) => engine_error(e),
    }
}

/// Whether a key matches a KEYS / SCAN pattern. As in Redis, a lone `*` matches every key
/// without being matched (which matters for the empty key: the glob `*` does not match it).
pub(super) fn matches_pattern(pattern: &[u8], key: &[u8]) -> bool {
    pattern == b"*" || glob_match(pattern, key)
}

/// KEYS pattern
async fn keys(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let mut args = Args::new(argv);
    let pattern = parse!(args.next_bytes());
    match ctx.access.keys(ctx.session.db).await {
        Ok(keys) => Frame::Array(
            super::cluster::own_keys(ctx.shared, keys)
                .into_iter()
                .filter(|k| matches_pattern(&pattern, k))
                .map(Frame::Bulk)
                .collect(),
        ),
        Err(e) => engine_error(e),
    }
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
struct Scan {
    cursor: u64,
    count: i64,
    pattern: Option<Bytes>,
    type_filter: Option<Bytes>,
}

impl Scan {
    /// Parses as Redis `scanGenericCommand`: an option missing its value is a syntax error.
    fn parse(argv: &mut [Bytes]) -> Result<Scan, Frame> {
        let mut args = Args::new(argv);
        let cursor =
            parse_cursor(&args.next_bytes()?).ok_or_else(|| Frame::error("ERR invalid cursor"))?;
        let mut scan = Scan {
            cursor,
            count: 10,
            pattern: None,
            type_filter: None,
        };
        while !args.is_empty() {
            let option = args.next_bytes()?;
            if args.is_empty() {
                return Err(syntax_error());
            }
            if is(&option, "count") {
                scan.count = args.next_int()?;
                if scan.count < 1 {
                    return Err(syntax_error());
                }
            } else if is(&option, "match") {
                scan.pattern = Some(args.next_bytes()?);
            } else if is(&option, "type") {
                scan.type_filter = Some(args.next_bytes()?);
            } else {
                return Err(syntax_error());
            }
        }
        Ok(scan)
    }
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
///
/// The cursor is a position in the sorted key list: a key present for the whole scan is
/// returned at least once, as Redis promises.
async fn scan(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let Scan {
        cursor,
        count,
        pattern,
        type_filter,
    } = parse!(Scan::parse(argv));
    let keys = match ctx.access.keys(ctx.session.db).await {
        Ok(k) => super::cluster::own_keys(ctx.shared, k),
        Err(e) => return engine_error(e),
    };
    let start = (cursor as usize).min(keys.len());
    let end = start.saturating_add(count as usize).min(keys.len());
    let next = if end >= keys.len() { 0 } else { end };
    let mut page = Vec::with_capacity(end - start);
    for key in &keys[start..end] {
        if !pattern.as_ref().is_none_or(|p| matches_pattern(p, key)) {
            continue;
        }
        if let Some(wanted) = &type_filter {
            // The type is read only for a TYPE filter (a key that expired meanwhile is left out).
            match ctx.access.get_entry(ctx.session.db, key.clone()).await {
                Ok(Some(e)) if is(wanted, e.kind.type_name()) => {}
                Ok(_) => continue,
                Err(e) => return engine_error(e),
            }
        }
        page.push(Frame::Bulk(key.clone()));
    }
    Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(page)])
}

/// Parses a SCAN cursor as Redis does with `strtoul(arg, &end, 10)`: the C string (up to a
/// NUL) must be all digits after an optional sign, may not start with a space and may not
/// overflow; a negative number wraps, and the empty string is cursor 0.
pub(super) fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let s = c_str(arg);
    let (negative, digits) = match s.first() {
        None => return Some(0),
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        Some(_) => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude = digits.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })?;
    Some(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

/// RANDOMKEY
async fn randomkey(mut ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    match ctx
        .access
        .keys(ctx.session.db)
        .await
        .map(|keys| super::cluster::own_keys(ctx.shared, keys))
    {
        Ok(keys) if keys.is_empty() => Frame::Null,
        Ok(keys) => {
            let i = rand_index(keys.len());
            Frame::Bulk(keys[i].clone())
        }
        Err(e) => engine_error(e),
    }
}

fn rand_index(n: usize) -> usize {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(n);
    (h.finish() as usize) % n
}

/// DBSIZE
async fn dbsize(mut ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    if ctx.shared.routing.is_some() {
        // This node's slots only: the keys listed and counted.
        return match ctx.access.keys(ctx.session.db).await {
            Ok(keys) => Frame::Integer(super::cluster::own_keys(ctx.shared, keys).len() as i64),
            Err(e) => engine_error(e),
        };
    }
    match ctx.access.dbsize(ctx.session.db).await {
        Ok(n) => Frame::Integer(n as i64),
        Err(e) => engine_error(e),
    }
}

/// Whether RENAME may replace an existing destination.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Overwrite {
    /// RENAME.
    Yes,
    /// RENAMENX.
    No,
}

/// RENAME / RENAMENX src dst
async fn rename_with(mut ctx: Ctx<'_>, argv: &mut [Bytes], overwrite: Overwrite) -> Frame {
    let mut args = Args::new(argv);
    let (src, dst) = (parse!(args.next_bytes()), parse!(args.next_bytes()));
    let only_if_absent = overwrite == Overwrite::No;
    let r = ctx
        .access
        .rename(ctx.session.db, &src, &dst, only_if_absent)
        .await;
    if r.as_ref().is_ok_and(|done| *done == Some(true)) && src != dst {
        ctx.notify(GENERIC, "rename_from", &src);
        ctx.notify(GENERIC, "rename_to", &dst);
    }
    match r {
        Ok(None) => Frame::error("ERR no such key"),
        Ok(Some(done)) if only_if_absent => Frame::Integer(done as i64),
        Ok(Some(_)) => Frame::ok(),
        Err(e) => engine_error(e),
    }
}

/// COPY source destination [DB destination-db] [REPLACE]
struct Copy {
    src: Bytes,
    dst: Bytes,
    dst_db: Option<u8>,
    replace: bool,
}

impl Copy {
    /// Parses as Redis 7.0's `copyCommand`: options in any order, DB checked when read.
    fn parse(argv: &mut [Bytes]) -> Result<Copy, Frame> {
        let mut args = Args::new(argv);
        let (src, dst) = (args.next_bytes()?, args.next_bytes()?);
        let (mut dst_db, mut replace) = (None, false);
        while !args.is_empty() {
            let option = args.next_bytes()?;
            if is(&option, "replace") {
                replace = true;
            } else if is(&option, "db") && !args.is_empty() {
                let db = int_arg(&args.next_bytes()?)?;
                // Redis reads an int.
                if i32::try_from(db).is_err() {
                    return Err(Frame::error(
                        "ERR value is out of range, value must between -2147483648 and 2147483647",
                    ));
                }
                // Databases 0-15, as SELECT.
                if !(0..16).contains(&db) {
                    return Err(Frame::error("ERR DB index is out of range"));
                }
                dst_db = Some(db as u8);
            } else {
                return Err(syntax_error());
            }
        }
        Ok(Copy {
            src,
            dst,
            dst_db,
            replace,
        })
    }
}

/// COPY source destination [DB destination-db] [REPLACE]
async fn copy(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(Copy::parse(argv));
    // Redis Cluster has database 0 only.
    if ctx.shared.routing.is_some() && a.dst_db.is_some_and(|d| d != 0) {
        return Frame::error("ERR Copying to another database is not allowed in cluster mode");
    }
    let db = ctx.session.db;
    let dst_db = a.dst_db.unwrap_or(db);
    if dst_db == db && a.src == a.dst {
        return Frame::error("ERR source and destination objects are the same");
    }
    let r = ctx.access.copy(db, &a.src, dst_db, &a.dst, a.replace).await;
    match r {
        Ok(copied) => {
            if copied {
                ctx.notify_in(dst_db, GENERIC, "copy_to", &a.dst);
            }
            Frame::Integer(copied.into())
        }
        Err(e) => engine_error(e),
    }
}

/// RENAME src dst
async fn rename(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    rename_with(ctx, argv, Overwrite::Yes).await
}

/// RENAMENX src dst
async fn renamenx(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    rename_with(ctx, argv, Overwrite::No).await
}
