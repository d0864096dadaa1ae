//! Key commands.

use bytes::Bytes;
use sluice::{ExpireCondition, KeyTtl};

use super::util::{c_str, format_error, glob_match, int_arg, is, syntax_error};
use super::{engine_error, Ctx};
use crate::frontend::Frame;

/// DEL / UNLINK key [key ...]
pub async fn del(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let mut n = 0;
    for key in &args[1..] {
        match ctx.shared.sluice.del(ctx.session.db, key).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => return engine_error(e),
        }
    }
    Frame::Integer(n)
}

/// EXISTS / TOUCH key [key ...]
pub async fn exists(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let mut n = 0;
    for key in &args[1..] {
        match ctx
            .shared
            .sluice
            .get_entry(ctx.session.db, key.clone())
            .await
        {
            Ok(Some(_)) => n += 1,
            Ok(None) => {}
            Err(e) => return engine_error(e),
        }
    }
    Frame::Integer(n)
}

/// TYPE key
pub async fn type_(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    match ctx
        .shared
        .sluice
        .get_entry(ctx.session.db, args[1].clone())
        .await
    {
        Ok(Some(_)) => Frame::Simple("string".into()),
        Ok(None) => Frame::Simple("none".into()),
        Err(e) => engine_error(e),
    }
}

/// The unit of an EXPIRE-family argument.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ExpireUnit {
    /// EXPIRE, EXPIREAT.
    Seconds,
    /// PEXPIRE, PEXPIREAT.
    Millis,
}

/// EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT key t [NX|XX|GT|LT]
pub async fn expire(ctx: Ctx<'_>, args: &[Bytes], unit: ExpireUnit, absolute: bool) -> Frame {
    let mut cond = ExpireCondition::ALWAYS;
    for opt in &args[3..] {
        if is(opt, "nx") {
            cond.if_none = true;
        } else if is(opt, "xx") {
            cond.if_some = true;
        } else if is(opt, "gt") {
            cond.if_greater = true;
        } else if is(opt, "lt") {
            cond.if_less = true;
        } else {
            return format_error(&[b"ERR Unsupported option ", c_str(opt)].concat());
        }
    }
    if cond.if_none && (cond.if_some || cond.if_greater || cond.if_less) {
        return Frame::error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if cond.if_greater && cond.if_less {
        return Frame::error("ERR GT and LT options at the same time are not compatible");
    }
    let name = match (unit, absolute) {
        (ExpireUnit::Seconds, false) => "expire",
        (ExpireUnit::Millis, false) => "pexpire",
        (ExpireUnit::Seconds, true) => "expireat",
        (ExpireUnit::Millis, true) => "pexpireat",
    };
    let invalid = || Frame::error(format!("ERR invalid expire time in '{name}' command"));
    let mut when = match int_arg(&args[2]) {
        Ok(w) => w,
        Err(f) => return f,
    };
    if unit == ExpireUnit::Seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return invalid();
        }
        when *= 1000;
    }
    let base = if absolute {
        0
    } else {
        ctx.shared.sluice.now_ms() as i64
    };
    if when > i64::MAX - base {
        return invalid();
    }
    when += base;
    match ctx
        .shared
        .sluice
        .expire(ctx.session.db, &args[1], when, cond)
        .await
    {
        Ok(done) => Frame::Integer(done as i64),
        Err(e) => engine_error(e),
    }
}

/// EXPIRETIME / PEXPIRETIME key
pub async fn expiretime(ctx: Ctx<'_>, args: &[Bytes], millis: bool) -> Frame {
    match ctx.shared.sluice.ttl(ctx.session.db, &args[1]).await {
        Ok(KeyTtl::Missing) => Frame::Integer(-2),
        Ok(KeyTtl::Persistent) => Frame::Integer(-1),
        Ok(KeyTtl::ExpiresAt(at)) => {
            Frame::Integer(if millis { at as i64 } else { at as i64 / 1000 })
        }
        Err(e) => engine_error(e),
    }
}

/// TTL / PTTL key
pub async fn ttl(ctx: Ctx<'_>, args: &[Bytes], millis: bool) -> Frame {
    let now = ctx.shared.sluice.now_ms() as i64;
    match ctx.shared.sluice.ttl(ctx.session.db, &args[1]).await {
        Ok(KeyTtl::Missing) => Frame::Integer(-2),
        Ok(KeyTtl::Persistent) => Frame::Integer(-1),
        Ok(KeyTtl::ExpiresAt(at)) => {
            let left = (at as i64 - now).max(0);
            Frame::Integer(if millis { left } else { (left + 500) / 1000 })
        }
        Err(e) => engine_error(e),
    }
}

/// PERSIST key
pub async fn persist(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    match ctx.shared.sluice.persist(ctx.session.db, &args[1]).await {
        Ok(done) => Frame::Integer(done as i64),
        Err(e) => engine_error(e),
    }
}

/// Whether a key matches a KEYS / SCAN pattern. As in Redis, a lone `*` matches every key
/// without being matched (which matters for the empty key: the glob `*` does not match it).
fn matches_pattern(pattern: &[u8], key: &[u8]) -> bool {
    pattern == b"*" || glob_match(pattern, key)
}

/// KEYS pattern
pub async fn keys(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    match ctx.shared.sluice.keys(ctx.session.db).await {
        Ok(keys) => Frame::Array(
            keys.into_iter()
                .filter(|k| matches_pattern(&args[1], k))
                .map(Frame::Bulk)
                .collect(),
        ),
        Err(e) => engine_error(e),
    }
}

/// SCAN cursor [MATCH pattern] [COUNT n] [TYPE type]
///
/// The cursor is a position in the sorted key list: a key present for the whole scan is
/// returned at least once, as Redis promises.
pub async fn scan(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let Some(cursor) = parse_cursor(&args[1]) else {
        return Frame::error("ERR invalid cursor");
    };
    let mut count: i64 = 10;
    let mut pattern: Option<Bytes> = None;
    let mut type_filter: Option<Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - i - 1;
        if is(&args[i], "count") && more >= 1 {
            count = match int_arg(&args[i + 1]) {
                Ok(c) => c,
                Err(f) => return f,
            };
            if count < 1 {
                return syntax_error();
            }
            i += 2;
        } else if is(&args[i], "match") && more >= 1 {
            pattern = Some(args[i + 1].clone());
            i += 2;
        } else if is(&args[i], "type") && more >= 1 {
            type_filter = Some(args[i + 1].clone());
            i += 2;
        } else {
            return syntax_error();
        }
    }
    let keys = match ctx.shared.sluice.keys(ctx.session.db).await {
        Ok(k) => k,
        Err(e) => return engine_error(e),
    };
    let start = (cursor as usize).min(keys.len());
    let end = start.saturating_add(count as usize).min(keys.len());
    let next = if end >= keys.len() { 0 } else { end };
    let wants_strings = type_filter.as_ref().is_none_or(|t| is(t, "string"));
    let page: Vec<Frame> = keys[start..end]
        .iter()
        .filter(|k| wants_strings && pattern.as_ref().is_none_or(|p| matches_pattern(p, k)))
        .cloned()
        .map(Frame::Bulk)
        .collect();
    Frame::Array(vec![Frame::bulk(next.to_string()), Frame::Array(page)])
}

/// Parses a SCAN cursor as Redis does with `strtoul(arg, &end, 10)`: the C string (up to a
/// NUL) must be all digits after an optional sign, may not start with a space and may not
/// overflow; a negative number wraps, and the empty string is cursor 0.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
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
pub async fn randomkey(ctx: Ctx<'_>) -> Frame {
    match ctx.shared.sluice.keys(ctx.session.db).await {
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
pub async fn dbsize(ctx: Ctx<'_>) -> Frame {
    match ctx.shared.sluice.dbsize(ctx.session.db).await {
        Ok(n) => Frame::Integer(n as i64),
        Err(e) => engine_error(e),
    }
}

/// RENAME / RENAMENX src dst
pub async fn rename(ctx: Ctx<'_>, args: &[Bytes], nx: bool) -> Frame {
    match ctx
        .shared
        .sluice
        .rename(ctx.session.db, &args[1], &args[2], nx)
        .await
    {
        Ok(None) => Frame::error("ERR no such key"),
        Ok(Some(done)) if nx => Frame::Integer(done as i64),
        Ok(Some(_)) => Frame::ok(),
        Err(e) => engine_error(e),
    }
}
