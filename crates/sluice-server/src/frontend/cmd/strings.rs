//! String commands.

use std::mem::take;

use bytes::{Bytes, BytesMut};
use sluice::{Mutation, SetCondition, SetExpiry, SetOptions, SluiceError};

use super::util::{int_arg, is, not_integer, pairs, syntax_error};
use super::{engine_error, wrong_arity, Ctx};
use crate::frontend::Frame;

fn ok_or<T>(r: Result<T, SluiceError>, f: impl FnOnce(T) -> Frame) -> Frame {
    match r {
        Ok(v) => f(v),
        Err(e) => engine_error(e),
    }
}

/// GET key
pub async fn get(ctx: Ctx<'_>, args: &mut [Bytes]) -> Frame {
    let db = ctx.session.db;
    ok_or(
        ctx.shared.sluice.get(db, take(&mut args[1])).await,
        Frame::bulk_or_null,
    )
}

/// Which command is parsing expiry options (they differ in what they accept).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OptionsOf {
    Set,
    GetEx,
}

#[derive(Default)]
struct ExtendedOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// (unit is seconds, is absolute, argument)
    expire: Option<(bool, bool, Bytes)>,
}

/// Parses SET / GETEX options exactly as Redis `parseExtendedStringArgumentsOrReply`.
fn parse_extended(args: &[Bytes], of: OptionsOf) -> Result<ExtendedOptions, Frame> {
    let mut o = ExtendedOptions::default();
    let mut j = if of == OptionsOf::Set { 3 } else { 2 };
    while j < args.len() {
        let a = &args[j];
        let next = args.get(j + 1);
        let has_expire = o.expire.is_some();
        let expire_kind = o.expire.as_ref().map(|(secs, abs, _)| (*secs, *abs));
        if is(a, "nx") && !o.xx && of == OptionsOf::Set {
            o.nx = true;
        } else if is(a, "xx") && !o.nx && of == OptionsOf::Set {
            o.xx = true;
        } else if is(a, "get") && of == OptionsOf::Set {
            o.get = true;
        } else if is(a, "keepttl") && !o.persist && !has_expire && of == OptionsOf::Set {
            o.keepttl = true;
        } else if is(a, "persist") && of == OptionsOf::GetEx && !has_expire && !o.keepttl {
            o.persist = true;
        } else if let Some(next) = next.filter(|_| !o.keepttl && !o.persist) {
            let (secs, abs) = if is(a, "ex") {
                (true, false)
            } else if is(a, "px") {
                (false, false)
            } else if is(a, "exat") {
                (true, true)
            } else if is(a, "pxat") {
                (false, true)
            } else {
                return Err(syntax_error());
            };
            // The same option may repeat; a different expiry option may not.
            if expire_kind.is_some_and(|k| k != (secs, abs)) {
                return Err(syntax_error());
            }
            o.expire = Some((secs, abs, next.clone()));
            j += 1;
        } else {
            return Err(syntax_error());
        }
        j += 1;
    }
    Ok(o)
}

/// Resolves an expiry argument to Unix ms as Redis `getExpireMillisecondsOrReply`.
pub(super) fn expire_at_ms(
    now_ms: u64,
    secs: bool,
    absolute: bool,
    arg: &[u8],
    command: &str,
) -> Result<u64, Frame> {
    let invalid = || Frame::error(format!("ERR invalid expire time in '{command}' command"));
    let mut ms = int_arg(arg)?;
    if ms <= 0 || (secs && ms > i64::MAX / 1000) {
        return Err(invalid());
    }
    if secs {
        ms *= 1000;
    }
    if !absolute {
        ms = ms.checked_add(now_ms as i64).ok_or_else(invalid)?;
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms as u64)
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL]
pub async fn set(ctx: Ctx<'_>, args: &mut [Bytes]) -> Frame {
    let o = match parse_extended(args, OptionsOf::Set) {
        Ok(o) => o,
        Err(f) => return f,
    };
    let sluice = &ctx.shared.sluice;
    let expiry = match &o.expire {
        Some((secs, abs, arg)) => match expire_at_ms(sluice.now_ms(), *secs, *abs, arg, "set") {
            Ok(at) => SetExpiry::At(at),
            Err(f) => return f,
        },
        None if o.keepttl => SetExpiry::Keep,
        None => SetExpiry::Clear,
    };
    let opts = SetOptions {
        condition: if o.nx {
            SetCondition::IfAbsent
        } else if o.xx {
            SetCondition::IfPresent
        } else {
            SetCondition::Always
        },
        expiry,
        return_old: o.get,
    };
    let get = o.get;
    let (key, value) = (take(&mut args[1]), take(&mut args[2]));
    ok_or(sluice.set(ctx.session.db, key, value, opts).await, |out| {
        if get {
            Frame::bulk_or_null(out.old)
        } else if out.written {
            Frame::ok()
        } else {
            Frame::Null
        }
    })
}

/// SETNX key value
pub async fn setnx(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let opts = SetOptions {
        condition: SetCondition::IfAbsent,
        ..Default::default()
    };
    ok_or(
        ctx.shared
            .sluice
            .set(ctx.session.db, args[1].clone(), args[2].clone(), opts)
            .await,
        |o| Frame::Integer(o.written as i64),
    )
}

/// SETEX key seconds value / PSETEX key ms value
pub async fn setex(ctx: Ctx<'_>, args: &[Bytes], millis: bool) -> Frame {
    let sluice = &ctx.shared.sluice;
    let name = if millis { "psetex" } else { "setex" };
    let at = match expire_at_ms(sluice.now_ms(), !millis, false, &args[2], name) {
        Ok(at) => at,
        Err(f) => return f,
    };
    let opts = SetOptions {
        expiry: SetExpiry::At(at),
        ..Default::default()
    };
    ok_or(
        sluice
            .set(ctx.session.db, args[1].clone(), args[3].clone(), opts)
            .await,
        |_| Frame::ok(),
    )
}

/// GETSET key value
pub async fn getset(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let opts = SetOptions {
        return_old: true,
        ..Default::default()
    };
    ok_or(
        ctx.shared
            .sluice
            .set(ctx.session.db, args[1].clone(), args[2].clone(), opts)
            .await,
        |o| Frame::bulk_or_null(o.old),
    )
}

/// GETDEL key
pub async fn getdel(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let r = ctx
        .shared
        .sluice
        .update(ctx.session.db, &args[1], |cur| {
            Ok(match cur {
                Some(e) => (Mutation::Delete, Some(e.value)),
                None => (Mutation::Keep, None),
            })
        })
        .await;
    ok_or(r, Frame::bulk_or_null)
}

/// GETEX key [EX|PX|EXAT|PXAT t|PERSIST]
pub async fn getex(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let o = match parse_extended(args, OptionsOf::GetEx) {
        Ok(o) => o,
        Err(f) => return f,
    };
    let sluice = &ctx.shared.sluice;
    let now = sluice.now_ms();
    let at = match &o.expire {
        Some((secs, abs, arg)) => match expire_at_ms(now, *secs, *abs, arg, "getex") {
            Ok(at) => Some(at),
            Err(f) => return f,
        },
        None => None,
    };
    let persist = o.persist;
    let r = sluice
        .update(ctx.session.db, &args[1], move |cur| {
            let Some(e) = cur else {
                return Ok((Mutation::Keep, None));
            };
            let m = match at {
                Some(at) if at <= now => Mutation::Delete,
                Some(at) => Mutation::Put {
                    value: e.value.clone(),
                    expires_at: Some(at),
                },
                None if persist && e.expires_at.is_some() => Mutation::Put {
                    value: e.value.clone(),
                    expires_at: None,
                },
                None => Mutation::Keep,
            };
            Ok((m, Some(e.value)))
        })
        .await;
    ok_or(r, Frame::bulk_or_null)
}

/// MGET key [key ...]
pub async fn mget(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let mut out = Vec::with_capacity(args.len() - 1);
    for key in &args[1..] {
        match ctx.shared.sluice.get(ctx.session.db, key.clone()).await {
            Ok(v) => out.push(Frame::bulk_or_null(v)),
            Err(e) => return engine_error(e),
        }
    }
    Frame::Array(out)
}

/// MSET key value [key value ...]
pub async fn mset(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    if args.len().is_multiple_of(2) {
        return wrong_arity("mset");
    }
    ok_or(
        ctx.shared
            .sluice
            .mset(ctx.session.db, pairs(&args[1..]))
            .await,
        |_| Frame::ok(),
    )
}

/// MSETNX key value [key value ...]
pub async fn msetnx(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    if args.len().is_multiple_of(2) {
        return wrong_arity("msetnx");
    }
    ok_or(
        ctx.shared
            .sluice
            .msetnx(ctx.session.db, pairs(&args[1..]))
            .await,
        |set| Frame::Integer(set as i64),
    )
}

fn too_large() -> Frame {
    Frame::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// APPEND key value
pub async fn append(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let max = ctx.shared.config.server.proto_max_bulk_len;
    let suffix = args[2].clone();
    let r = ctx
        .shared
        .sluice
        .update(ctx.session.db, &args[1], move |cur| {
            let (value, expires_at) = match cur {
                Some(e) => (e.value, e.expires_at),
                None => (Bytes::new(), None),
            };
            if value.len() as u64 + suffix.len() as u64 > max {
                return Err(SluiceError::TooLarge);
            }
            let mut v = BytesMut::with_capacity(value.len() + suffix.len());
            v.extend_from_slice(&value);
            v.extend_from_slice(&suffix);
            let len = v.len() as i64;
            Ok((
                Mutation::Put {
                    value: v.freeze(),
                    expires_at,
                },
                len,
            ))
        })
        .await;
    match r {
        Err(SluiceError::TooLarge) => too_large(),
        r => ok_or(r, Frame::Integer),
    }
}

/// STRLEN key
pub async fn strlen(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    ok_or(
        ctx.shared.sluice.get(ctx.session.db, args[1].clone()).await,
        |v| Frame::Integer(v.map(|v| v.len() as i64).unwrap_or(0)),
    )
}

/// GETRANGE key start end (and SUBSTR)
pub async fn getrange(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let (mut start, mut end) = match (int_arg(&args[2]), int_arg(&args[3])) {
        (Ok(s), Ok(e)) => (s, e),
        (Err(f), _) | (_, Err(f)) => return f,
    };
    let value = match ctx.shared.sluice.get(ctx.session.db, args[1].clone()).await {
        Ok(Some(v)) => v,
        Ok(None) => return Frame::bulk(Bytes::new()),
        Err(e) => return engine_error(e),
    };
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return Frame::bulk(Bytes::new());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Frame::bulk(Bytes::new());
    }
    Frame::Bulk(value.slice(start as usize..end as usize + 1))
}

/// SETRANGE key offset value
pub async fn setrange(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    let offset = match int_arg(&args[2]) {
        Ok(o) => o,
        Err(f) => return f,
    };
    if offset < 0 {
        return Frame::error("ERR offset is out of range");
    }
    let max = ctx.shared.config.server.proto_max_bulk_len;
    let patch = args[3].clone();
    let r = ctx
        .shared
        .sluice
        .update(ctx.session.db, &args[1], move |cur| {
            let offset = offset as u64;
            let Some(e) = cur else {
                if patch.is_empty() {
                    return Ok((Mutation::Keep, 0));
                }
                if offset + patch.len() as u64 > max {
                    return Err(SluiceError::TooLarge);
                }
                let mut v = vec![0u8; offset as usize + patch.len()];
                v[offset as usize..].copy_from_slice(&patch);
                let len = v.len() as i64;
                return Ok((
                    Mutation::Put {
                        value: Bytes::from(v),
                        expires_at: None,
                    },
                    len,
                ));
            };
            if patch.is_empty() {
                return Ok((Mutation::Keep, e.value.len() as i64));
            }
            if offset + patch.len() as u64 > max {
                return Err(SluiceError::TooLarge);
            }
            let mut v = e.value.to_vec();
            let end = offset as usize + patch.len();
            if v.len() < end {
                v.resize(end, 0);
            }
            v[offset as usize..end].copy_from_slice(&patch);
            let len = v.len() as i64;
            Ok((
                Mutation::Put {
                    value: Bytes::from(v),
                    expires_at: e.expires_at,
                },
                len,
            ))
        })
        .await;
    match r {
        Err(SluiceError::TooLarge) => too_large(),
        r => ok_or(r, Frame::Integer),
    }
}

/// INCR / DECR key
pub async fn incr_by_const(ctx: Ctx<'_>, args: &mut [Bytes], delta: i64) -> Frame {
    ok_or(
        ctx.shared
            .sluice
            .incr_by(ctx.session.db, take(&mut args[1]), delta)
            .await,
        Frame::Integer,
    )
}

/// INCRBY / DECRBY key n
pub async fn incrby(ctx: Ctx<'_>, args: &mut [Bytes], negate: bool) -> Frame {
    let Ok(n) = int_arg(&args[2]) else {
        return not_integer();
    };
    let delta = if negate {
        if n == i64::MIN {
            return Frame::error("ERR decrement would overflow");
        }
        -n
    } else {
        n
    };
    incr_by_const(ctx, args, delta).await
}

/// INCRBYFLOAT key increment
pub async fn incrbyfloat(ctx: Ctx<'_>, args: &[Bytes]) -> Frame {
    ok_or(
        ctx.shared
            .sluice
            .incr_by_float(ctx.session.db, &args[1], &args[2])
            .await,
        Frame::Bulk,
    )
}
