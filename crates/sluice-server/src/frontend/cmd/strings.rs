//! String commands.

use std::future::Future;
use std::mem::take;
use std::pin::Pin;

use bytes::{Bytes, BytesMut};
use sluice::{Kind, Mutation, SetCondition, SetExpiry, SetOptions, SluiceError};

use super::args::{parse, Args, KeyArg, KeyList, KeyValue};
use super::spec::categories::{STRING_READ, STRING_WRITE};
use super::spec::flags::{READ, WRITE, WRITE_FAST, WRITE_GROW_FAST};
use super::spec::{boxed, Handler, Hot, KeyPositions, Sign, Spec, TimeUnit};
use super::spec::{Ctx, ExpireBase};
use super::util::{engine_error, wrong_arity};
use super::util::{int_arg, is, syntax_error};
use crate::frontend::Frame;
use crate::state::keyspace_events::{GENERIC, STRING};

/// The string commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "get",
        arity: 2,
        flags: READ,
        keys: KeyPositions::FIRST,
        categories: STRING_READ,
        summary: "Returns the string value of a key.",
        handler: Handler::Hot(Hot::Get),
        ..Spec::DEFAULT
    },
    Spec {
        name: "set",
        arity: -3,
        flags: WRITE,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Sets the string value of a key, ignoring its type.",
        handler: Handler::Hot(Hot::Set),
        ..Spec::DEFAULT
    },
    Spec {
        name: "setnx",
        arity: 3,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Set the string value of a key only when the key doesn't exist.",
        handler: Handler::Hot(Hot::SetNx),
        ..Spec::DEFAULT
    },
    Spec {
        name: "setex",
        arity: 4,
        flags: WRITE,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Sets the string value and expiration time of a key.",
        handler: Handler::Hot(Hot::SetEx(TimeUnit::Seconds)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "psetex",
        arity: 4,
        flags: WRITE,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Sets both string value and expiration time in milliseconds of a key.",
        handler: Handler::Hot(Hot::SetEx(TimeUnit::Millis)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "getset",
        arity: 3,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Returns the previous string value of a key after setting it to a new value.",
        handler: boxed!(getset),
        ..Spec::DEFAULT
    },
    Spec {
        name: "getdel",
        arity: 2,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Returns the string value of a key after deleting the key.",
        handler: boxed!(getdel),
        ..Spec::DEFAULT
    },
    Spec {
        name: "getex",
        arity: -2,
        flags: WRITE_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Returns the string value of a key after setting its expiration time.",
        handler: boxed!(getex),
        ..Spec::DEFAULT
    },
    Spec {
        name: "mget",
        arity: -2,
        flags: READ,
        keys: KeyPositions::ALL,
        categories: STRING_READ,
        summary: "Atomically returns the string values of one or more keys.",
        handler: Handler::Hot(Hot::MGet),
        ..Spec::DEFAULT
    },
    Spec {
        name: "mset",
        arity: -3,
        flags: WRITE,
        keys: KeyPositions::PAIRS,
        categories: STRING_WRITE,
        summary: "Atomically creates or modifies the string values of one or more keys.",
        handler: boxed!(mset),
        ..Spec::DEFAULT
    },
    Spec {
        name: "msetnx",
        arity: -3,
        flags: WRITE,
        keys: KeyPositions::PAIRS,
        categories: STRING_WRITE,
        summary: "Atomically modifies the string values of one or more keys only when all keys don't exist.",
        handler: boxed!(msetnx),
        ..Spec::DEFAULT
    },
    Spec {
        name: "append",
        arity: 3,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Appends a string to the value of a key. Creates the key if it doesn't exist.",
        handler: boxed!(append),
        ..Spec::DEFAULT
    },
    Spec {
        name: "lcs",
        arity: -3,
        flags: &["readonly"],
        keys: KeyPositions::FIRST_TWO,
        categories: &["@read", "@string"],
        summary: "Finds the longest common substring.",
        handler: boxed!(lcs),
        ..Spec::DEFAULT
    },
    Spec {
        name: "strlen",
        arity: 2,
        flags: READ,
        keys: KeyPositions::FIRST,
        categories: STRING_READ,
        summary: "Returns the length of a string value.",
        handler: Handler::Hot(Hot::StrLen),
        ..Spec::DEFAULT
    },
    Spec {
        name: "getrange",
        arity: 4,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: &["@read", "@string", "@slow"],
        summary: "Returns a substring of the string stored at a key.",
        handler: boxed!(getrange),
        ..Spec::DEFAULT
    },
    Spec {
        name: "substr",
        arity: 4,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: &["@read", "@string", "@slow"],
        summary: "Returns a substring from a string value.",
        handler: boxed!(getrange),
        ..Spec::DEFAULT
    },
    Spec {
        name: "setrange",
        arity: 4,
        flags: WRITE,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.",
        handler: boxed!(setrange),
        ..Spec::DEFAULT
    },
    Spec {
        name: "incr",
        arity: 2,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Hot(Hot::IncrByOne(Sign::Plus)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "decr",
        arity: 2,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Hot(Hot::IncrByOne(Sign::Minus)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "incrby",
        arity: 3,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Hot(Hot::IncrBy(Sign::Plus)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "decrby",
        arity: 3,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.",
        handler: Handler::Hot(Hot::IncrBy(Sign::Minus)),
        ..Spec::DEFAULT
    },
    Spec {
        name: "incrbyfloat",
        arity: 3,
        flags: WRITE_GROW_FAST,
        keys: KeyPositions::FIRST,
        categories: STRING_WRITE,
        summary: "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.",
        handler: boxed!(incrbyfloat),
        ..Spec::DEFAULT
    },
];

fn ok_or<T>(r: Result<T, SluiceError>, f: impl FnOnce(T) -> Frame) -> Frame {
    match r {
        Ok(v) => f(v),
        Err(e) => engine_error(e),
    }
}

/// GET key
pub fn get<'c>(ctx: Ctx<'c>, argv: &mut [Bytes]) -> Answer<'c> {
    let a = parse_now!(KeyArg::parse(argv));
    answer(
        ctx.access.get_now(ctx.session.db, a.key),
        Frame::bulk_or_null,
    )
}

/// A hot command's reply, given at once (see [`sluice::Access::get_now`]) or to be awaited.
pub type Answer<'c> = Result<Frame, Pin<Box<dyn Future<Output = Frame> + Send + 'c>>>;

/// The reply to an operation run at once or, if it had to wait, the future of its reply.
fn answer<'c, T: Send + 'c>(
    run: Result<Result<T, SluiceError>, sluice::Later<'c, T>>,
    reply: impl FnOnce(T) -> Frame + Send + 'c,
) -> Answer<'c> {
    match run {
        Ok(result) => Ok(ok_or(result, reply)),
        Err(later) => Err(Box::pin(async move { ok_or(later.await, reply) })),
    }
}

/// [`parse!`] for a handler returning an [`Answer`].
macro_rules! parse_now {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(reply) => return Ok(reply),
        }
    };
}
use parse_now;

/// An expiry option's argument, not yet resolved against the clock.
struct ExpiryArg {
    unit: TimeUnit,
    base: ExpireBase,
    value: Bytes,
}

impl ExpiryArg {
    /// The expiry as Unix ms, as Redis `getExpireMillisecondsOrReply`; `command` names the
    /// command in the error.
    fn resolve(&self, now_ms: u64, command: &str) -> Result<u64, Frame> {
        let invalid = || Frame::error(format!("ERR invalid expire time in '{command}' command"));
        let mut ms = int_arg(&self.value)?;
        let secs = self.unit == TimeUnit::Seconds;
        if ms <= 0 || (secs && ms > i64::MAX / 1000) {
            return Err(invalid());
        }
        if secs {
            ms *= 1000;
        }
        if self.base == ExpireBase::Now {
            ms = ms.checked_add(now_ms as i64).ok_or_else(invalid)?;
        }
        if ms <= 0 {
            return Err(invalid());
        }
        Ok(ms as u64)
    }
}

/// Which command is parsing expiry options (they differ in what they accept).
#[derive(Clone, Copy, PartialEq, Eq)]
enum OptionsOf {
    Set,
    GetEx,
}

/// What SET and GETEX do to the key's expiry.
enum ExpiryOption {
    /// Neither KEEPTTL, PERSIST nor an expiry: SET clears it, GETEX leaves it.
    Unchanged,
    /// SET KEEPTTL.
    KeepTtl,
    /// GETEX PERSIST.
    Persist,
    /// EX, PX, EXAT or PXAT.
    At(ExpiryArg),
}

/// SET / GETEX options.
struct ExtendedOptions {
    condition: SetCondition,
    return_old: bool,
    expiry: ExpiryOption,
}

impl ExtendedOptions {
    /// Parses the options exactly as Redis `parseExtendedStringArgumentsOrReply`.
    fn parse(args: &mut Args<'_>, of: OptionsOf) -> Result<ExtendedOptions, Frame> {
        let mut o = ExtendedOptions {
            condition: SetCondition::Always,
            return_old: false,
            expiry: ExpiryOption::Unchanged,
        };
        let is_set = of == OptionsOf::Set;
        while !args.is_empty() {
            let a = args.next_bytes()?;
            let expiry_free = matches!(o.expiry, ExpiryOption::Unchanged);
            if is(&a, "nx") && o.condition != SetCondition::IfPresent && is_set {
                o.condition = SetCondition::IfAbsent;
            } else if is(&a, "xx") && o.condition != SetCondition::IfAbsent && is_set {
                o.condition = SetCondition::IfPresent;
            } else if is(&a, "get") && is_set {
                o.return_old = true;
            } else if is(&a, "keepttl")
                && is_set
                && matches!(o.expiry, ExpiryOption::Unchanged | ExpiryOption::KeepTtl)
            {
                o.expiry = ExpiryOption::KeepTtl;
            } else if is(&a, "persist")
                && !is_set
                && matches!(o.expiry, ExpiryOption::Unchanged | ExpiryOption::Persist)
            {
                o.expiry = ExpiryOption::Persist;
            } else if !args.is_empty() && (expiry_free || matches!(o.expiry, ExpiryOption::At(_))) {
                let (unit, base) = if is(&a, "ex") {
                    (TimeUnit::Seconds, ExpireBase::Now)
                } else if is(&a, "px") {
                    (TimeUnit::Millis, ExpireBase::Now)
                } else if is(&a, "exat") {
                    (TimeUnit::Seconds, ExpireBase::UnixEpoch)
                } else if is(&a, "pxat") {
                    (TimeUnit::Millis, ExpireBase::UnixEpoch)
                } else {
                    return Err(syntax_error());
                };
                // The same option may repeat; a different expiry option may not.
                if let ExpiryOption::At(e) = &o.expiry {
                    if (e.unit, e.base) != (unit, base) {
                        return Err(syntax_error());
                    }
                }
                let value = args.next_bytes()?;
                o.expiry = ExpiryOption::At(ExpiryArg { unit, base, value });
            } else {
                return Err(syntax_error());
            }
        }
        Ok(o)
    }
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL]
struct Set {
    key: Bytes,
    value: Bytes,
    options: ExtendedOptions,
}

impl Set {
    fn parse(argv: &mut [Bytes]) -> Result<Set, Frame> {
        let mut args = Args::new(argv);
        let (key, value) = (args.next_bytes()?, args.next_bytes()?);
        let options = ExtendedOptions::parse(&mut args, OptionsOf::Set)?;
        Ok(Set {
            key,
            value,
            options,
        })
    }
}

impl Set {
    /// The key, the value and the engine's options, the expiry resolved against `now_ms`.
    fn resolve(self, now_ms: impl FnOnce() -> u64) -> Result<(Bytes, Bytes, SetOptions), Frame> {
        let ExtendedOptions {
            condition,
            return_old,
            expiry,
        } = self.options;
        let expiry = match expiry {
            ExpiryOption::At(arg) => SetExpiry::At(arg.resolve(now_ms(), "set")?),
            ExpiryOption::KeepTtl => SetExpiry::Keep,
            ExpiryOption::Unchanged | ExpiryOption::Persist => SetExpiry::Clear,
        };
        let opts = SetOptions {
            condition,
            expiry,
            return_old,
        };
        Ok((self.key, self.value, opts))
    }
}

/// SET key value [NX|XX] [GET] [EX|PX|EXAT|PXAT t|KEEPTTL]
pub fn set<'c>(ctx: Ctx<'c>, argv: &mut [Bytes]) -> Answer<'c> {
    let (key, value, opts) =
        parse_now!(Set::parse(argv).and_then(|set| set.resolve(|| ctx.access.now_ms())));
    if ctx.shared.settings.notifies(STRING | GENERIC) {
        return set_notifying(ctx, key, value, opts);
    }
    let return_old = opts.return_old;
    answer(
        ctx.access.set_now(ctx.session.db, key, value, opts),
        move |out| set_reply(out, return_old),
    )
}

/// SET's reply: the old value (GET), OK, or nil when NX/XX said no.
fn set_reply(out: sluice::SetOutcome, return_old: bool) -> Frame {
    if return_old {
        Frame::bulk_or_null(out.old)
    } else if out.written {
        Frame::ok()
    } else {
        Frame::Null
    }
}

/// [`set`] while keyspace notifications are on: its reply closure stages `set` (and
/// `expire`). Apart, so that SET's usual path carries no event state.
#[cold]
fn set_notifying<'c>(ctx: Ctx<'c>, key: Bytes, value: Bytes, opts: SetOptions) -> Answer<'c> {
    let return_old = opts.return_old;
    let expires = matches!(opts.expiry, SetExpiry::At(_));
    let (access, db, events) = ctx.for_hot_write(STRING | GENERIC, &key);
    answer(access.set_now(db, key, value, opts), move |out| {
        if let Some(mut events) = events.filter(|_| out.written) {
            events.stage(STRING, "set");
            if expires {
                events.stage(GENERIC, "expire");
            }
        }
        set_reply(out, return_old)
    })
}

/// SETNX key value
pub async fn setnx(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyValue::parse(argv));
    let opts = SetOptions {
        condition: SetCondition::IfAbsent,
        ..Default::default()
    };
    let r = ctx
        .access
        .set(ctx.session.db, a.key.clone(), a.value, opts)
        .await;
    if r.as_ref().is_ok_and(|o| o.written) {
        ctx.notify(STRING, "set", &a.key);
    }
    ok_or(r, |o| Frame::Integer(o.written as i64))
}

/// SETEX key seconds value / PSETEX key milliseconds value
struct SetEx {
    key: Bytes,
    expiry: ExpiryArg,
    value: Bytes,
}

impl SetEx {
    fn parse(argv: &mut [Bytes], unit: TimeUnit) -> Result<SetEx, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let expiry = ExpiryArg {
            unit,
            base: ExpireBase::Now,
            value: args.next_bytes()?,
        };
        let value = args.next_bytes()?;
        args.finish()?;
        Ok(SetEx { key, expiry, value })
    }
}

/// SETEX key seconds value / PSETEX key milliseconds value
pub async fn setex(mut ctx: Ctx<'_>, argv: &mut [Bytes], unit: TimeUnit) -> Frame {
    let a = parse!(SetEx::parse(argv, unit));
    let name = match unit {
        TimeUnit::Seconds => "setex",
        TimeUnit::Millis => "psetex",
    };
    let at = parse!(a.expiry.resolve(ctx.access.now_ms(), name));
    let opts = SetOptions {
        expiry: SetExpiry::At(at),
        ..Default::default()
    };
    let r = ctx
        .access
        .set(ctx.session.db, a.key.clone(), a.value, opts)
        .await;
    if r.is_ok() {
        ctx.notify(STRING, "set", &a.key);
        ctx.notify(GENERIC, "expire", &a.key);
    }
    ok_or(r, |_| Frame::ok())
}

/// GETSET key value
async fn getset(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyValue::parse(argv));
    let opts = SetOptions {
        return_old: true,
        ..Default::default()
    };
    let r = ctx
        .access
        .set(ctx.session.db, a.key.clone(), a.value, opts)
        .await;
    ctx.count_read(r.as_ref().map(|o| o.old.is_some()));
    if r.is_ok() {
        ctx.notify(STRING, "set", &a.key);
    }
    ok_or(r, |o| Frame::bulk_or_null(o.old))
}

/// GETDEL key
async fn getdel(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx
        .access
        .update_string(ctx.session.db, &a.key, |cur| {
            Ok(match cur {
                Some(e) => (Mutation::Delete, Some(e.value)),
                None => (Mutation::Keep, None),
            })
        })
        .await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    if r.as_ref().is_ok_and(Option::is_some) {
        ctx.notify(GENERIC, "del", &a.key);
    }
    ok_or(r, Frame::bulk_or_null)
}

/// GETEX key [EX|PX|EXAT|PXAT t|PERSIST]
struct GetEx {
    key: Bytes,
    options: ExtendedOptions,
}

impl GetEx {
    fn parse(argv: &mut [Bytes]) -> Result<GetEx, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let options = ExtendedOptions::parse(&mut args, OptionsOf::GetEx)?;
        Ok(GetEx { key, options })
    }
}

/// GETEX key [EX|PX|EXAT|PXAT t|PERSIST]
async fn getex(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let GetEx { key, options: o } = parse!(GetEx::parse(argv));
    let now = ctx.access.now_ms();
    let at = match &o.expiry {
        ExpiryOption::At(arg) => Some(parse!(arg.resolve(now, "getex"))),
        _ => None,
    };
    let persist = matches!(o.expiry, ExpiryOption::Persist);
    let r = ctx
        .access
        .update_string(ctx.session.db, &key, move |cur| {
            let Some(e) = cur else {
                return Ok((Mutation::Keep, None));
            };
            let m = match at {
                Some(at) if at <= now => Mutation::Delete,
                Some(at) => Mutation::Put {
                    kind: Kind::String,
                    value: e.value.clone(),
                    expires_at: Some(at),
                },
                None if persist && e.expires_at.is_some() => Mutation::Put {
                    kind: Kind::String,
                    value: e.value.clone(),
                    expires_at: None,
                },
                None => Mutation::Keep,
            };
            let event = match &m {
                Mutation::Delete => Some("del"),
                Mutation::Put {
                    expires_at: None, ..
                } => Some("persist"),
                Mutation::Put { .. } => Some("expire"),
                _ => None,
            };
            Ok((m, Some((e.value, event))))
        })
        .await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    let r = r.map(|found| {
        found.map(|(value, event)| {
            if let Some(event) = event {
                ctx.notify(GENERIC, event, &key);
            }
            value
        })
    });
    ok_or(r, Frame::bulk_or_null)
}

/// MGET key [key ...]
pub async fn mget(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = KeyList::parse(argv);
    let mut out = Vec::with_capacity(a.keys.len());
    for key in a.keys.iter_mut() {
        // A key of another type reads as nil, as in Redis.
        match ctx.access.get_entry(ctx.session.db, take(key)).await {
            Ok(Some(e)) if e.kind == Kind::String => out.push(Frame::Bulk(e.value)),
            Ok(_) => out.push(Frame::Null),
            Err(e) => return engine_error(e),
        }
    }
    Frame::Array(out)
}

/// MSET / MSETNX key value [key value ...]
struct Pairs {
    pairs: Vec<(Bytes, Bytes)>,
}

impl Pairs {
    /// `<key> <value> [<key> <value> ...]`; an odd count is the command's arity error.
    fn parse(argv: &mut [Bytes], command: &str) -> Result<Pairs, Frame> {
        if argv.len().is_multiple_of(2) {
            return Err(wrong_arity(command));
        }
        Ok(Pairs {
            pairs: Args::new(argv).pairs(),
        })
    }
}

/// MSET key value [key value ...]
async fn mset(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(Pairs::parse(argv, "mset"));
    let keys = notified_keys(&ctx, &a.pairs);
    let r = ctx.access.mset(ctx.session.db, a.pairs).await;
    if r.is_ok() {
        for key in &keys {
            ctx.notify(STRING, "set", key);
        }
    }
    ok_or(r, |_| Frame::ok())
}

/// MSETNX key value [key value ...]
async fn msetnx(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(Pairs::parse(argv, "msetnx"));
    let keys = notified_keys(&ctx, &a.pairs);
    let r = ctx.access.msetnx(ctx.session.db, a.pairs).await;
    if r.as_ref().is_ok_and(|set| *set) {
        for key in &keys {
            ctx.notify(STRING, "set", key);
        }
    }
    ok_or(r, |set| Frame::Integer(set as i64))
}

/// The keys of MSET's pairs, copied only when `set` events are listened to.
fn notified_keys(ctx: &Ctx<'_>, pairs: &[(Bytes, Bytes)]) -> Vec<Bytes> {
    if !ctx.shared.settings.notifies(STRING) {
        return Vec::new();
    }
    pairs.iter().map(|(key, _)| key.clone()).collect()
}

fn too_large() -> Frame {
    Frame::error("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
}

/// APPEND key value
async fn append(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let KeyValue { key, value: suffix } = parse!(KeyValue::parse(argv));
    let max = ctx.shared.config.proto_max_bulk_len;
    let r = ctx
        .access
        .update_string(ctx.session.db, &key, move |cur| {
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
                    kind: Kind::String,
                    value: v.freeze(),
                    expires_at,
                },
                len,
            ))
        })
        .await;
    if r.is_ok() {
        ctx.notify(STRING, "append", &key);
    }
    match r {
        Err(SluiceError::TooLarge) => too_large(),
        r => ok_or(r, Frame::Integer),
    }
}

/// STRLEN key
pub async fn strlen(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    ok_or(ctx.access.get(ctx.session.db, a.key).await, |v| {
        Frame::Integer(v.map(|v| v.len() as i64).unwrap_or(0))
    })
}

/// GETRANGE / SUBSTR key start end
struct GetRange {
    key: Bytes,
    start: i64,
    end: i64,
}

impl GetRange {
    fn parse(argv: &mut [Bytes]) -> Result<GetRange, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let (start, end) = (args.next_int()?, args.next_int()?);
        args.finish()?;
        Ok(GetRange { key, start, end })
    }
}

/// GETRANGE key start end (and SUBSTR)
async fn getrange(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let GetRange {
        key,
        mut start,
        mut end,
    } = parse!(GetRange::parse(argv));
    let r = ctx.access.get(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    let value = match r {
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
struct SetRange {
    key: Bytes,
    offset: i64,
    patch: Bytes,
}

impl SetRange {
    fn parse(argv: &mut [Bytes]) -> Result<SetRange, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let offset = args.next_int()?;
        let patch = args.next_bytes()?;
        args.finish()?;
        Ok(SetRange { key, offset, patch })
    }
}

/// SETRANGE key offset value
async fn setrange(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let SetRange { key, offset, patch } = parse!(SetRange::parse(argv));
    if offset < 0 {
        return Frame::error("ERR offset is out of range");
    }
    let max = ctx.shared.config.proto_max_bulk_len;
    let r = ctx
        .access
        .update_string(ctx.session.db, &key, move |cur| {
            let offset = offset as u64;
            let Some(e) = cur else {
                if patch.is_empty() {
                    return Ok((Mutation::Keep, (0, false)));
                }
                if offset + patch.len() as u64 > max {
                    return Err(SluiceError::TooLarge);
                }
                let mut v = vec![0u8; offset as usize + patch.len()];
                v[offset as usize..].copy_from_slice(&patch);
                let len = v.len() as i64;
                return Ok((
                    Mutation::Put {
                        kind: Kind::String,
                        value: Bytes::from(v),
                        expires_at: None,
                    },
                    (len, true),
                ));
            };
            if patch.is_empty() {
                return Ok((Mutation::Keep, (e.value.len() as i64, false)));
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
                    kind: Kind::String,
                    value: Bytes::from(v),
                    expires_at: e.expires_at,
                },
                (len, true),
            ))
        })
        .await;
    if r.as_ref().is_ok_and(|(_, changed)| *changed) {
        ctx.notify(STRING, "setrange", &key);
    }
    let r = r.map(|(len, _)| len);
    match r {
        Err(SluiceError::TooLarge) => too_large(),
        r => ok_or(r, Frame::Integer),
    }
}

/// INCR / DECR key
pub fn incr_by_one<'c>(ctx: Ctx<'c>, argv: &mut [Bytes], sign: Sign) -> Answer<'c> {
    let a = parse_now!(KeyArg::parse(argv));
    let delta = match sign {
        Sign::Plus => 1,
        Sign::Minus => -1,
    };
    incr_answer(ctx, a.key, delta)
}

/// INCR, DECR, INCRBY and DECRBY: the engine's answer, and the `incrby` event.
fn incr_answer(ctx: Ctx<'_>, key: Bytes, delta: i64) -> Answer<'_> {
    if !ctx.shared.settings.notifies(STRING) {
        return answer(
            ctx.access.incr_by_now(ctx.session.db, key, delta),
            Frame::Integer,
        );
    }
    let (access, db, events) = ctx.for_hot_write(STRING, &key);
    answer(access.incr_by_now(db, key, delta), move |n| {
        if let Some(mut events) = events {
            events.stage(STRING, "incrby");
        }
        Frame::Integer(n)
    })
}

/// INCRBY / DECRBY key amount
struct IncrBy {
    key: Bytes,
    amount: i64,
}

impl IncrBy {
    fn parse(argv: &mut [Bytes]) -> Result<IncrBy, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let amount = args.next_int()?;
        args.finish()?;
        Ok(IncrBy { key, amount })
    }
}

/// INCRBY / DECRBY key amount
pub fn incrby<'c>(ctx: Ctx<'c>, argv: &mut [Bytes], sign: Sign) -> Answer<'c> {
    let IncrBy { key, amount } = parse_now!(IncrBy::parse(argv));
    let delta = match sign {
        Sign::Plus => amount,
        Sign::Minus if amount == i64::MIN => {
            return Ok(Frame::error("ERR decrement would overflow"));
        }
        Sign::Minus => -amount,
    };
    incr_answer(ctx, key, delta)
}

/// INCRBYFLOAT key increment
async fn incrbyfloat(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let KeyValue {
        key,
        value: increment,
    } = parse!(KeyValue::parse(argv));
    let r = ctx
        .access
        .incr_by_float(ctx.session.db, &key, &increment)
        .await;
    if r.is_ok() {
        ctx.notify(STRING, "incrbyfloat", &key);
    }
    ok_or(r, Frame::Bulk)
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]
struct Lcs {
    len_only: bool,
    idx: bool,
    min_match_len: u64,
    with_match_len: bool,
}

impl Lcs {
    /// The options after the two keys, as Redis 7.0 reads them (after it looked at the keys).
    fn parse(options: &[Bytes]) -> Result<Lcs, Frame> {
        let mut lcs = Lcs {
            len_only: false,
            idx: false,
            min_match_len: 0,
            with_match_len: false,
        };
        let mut i = 0;
        while i < options.len() {
            let opt = &options[i];
            if is(opt, "idx") {
                lcs.idx = true;
            } else if is(opt, "len") {
                lcs.len_only = true;
            } else if is(opt, "withmatchlen") {
                lcs.with_match_len = true;
            } else if is(opt, "minmatchlen") && i + 1 < options.len() {
                i += 1;
                lcs.min_match_len = int_arg(&options[i])?.max(0) as u64;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        if lcs.idx && lcs.len_only {
            return Err(Frame::error(
                "ERR If you want both the length and indexes, please just use IDX.",
            ));
        }
        Ok(lcs)
    }
}

/// LCS key1 key2 [LEN] [IDX] [MINMATCHLEN len] [WITHMATCHLEN]: the dynamic-programming table of
/// Redis 7.0's `lcsCommand`, walked back the same way, so ties resolve and ranges come out as
/// Redis's do. The table takes 4 bytes per pair of positions: it is refused past
/// `proto-max-bulk-len`, as Redis 7.2 does.
async fn lcs(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let mut keys = [argv[1].clone(), argv[2].clone()];
    let entries = match ctx.access.get_entries(ctx.session.db, &mut keys).await {
        Ok(e) => e,
        Err(e) => return engine_error(e),
    };
    if entries.iter().flatten().any(|e| e.kind != Kind::String) {
        return Frame::error("ERR The specified keys must contain string values");
    }
    let options = parse!(Lcs::parse(&argv[3..]));
    let value = |i: usize| {
        entries[i]
            .as_ref()
            .map(|e| e.value.clone())
            .unwrap_or_default()
    };
    let (a, b) = (value(0), value(1));
    let (alen, blen) = (a.len(), b.len());
    let cells = (alen as u64 + 1).saturating_mul(blen as u64 + 1);
    if cells.saturating_mul(4) > ctx.shared.config.proto_max_bulk_len {
        return Frame::error(
            "ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len",
        );
    }
    let width = blen + 1;
    let mut table = vec![0u32; cells as usize];
    for i in 1..=alen {
        for j in 1..=blen {
            table[i * width + j] = if a[i - 1] == b[j - 1] {
                table[(i - 1) * width + j - 1] + 1
            } else {
                table[(i - 1) * width + j].max(table[i * width + j - 1])
            };
        }
    }
    let at = |i: usize, j: usize| table[i * width + j];
    let total = at(alen, blen);
    if options.len_only {
        return Frame::Integer(i64::from(total));
    }
    let mut common = vec![0u8; total as usize];
    let mut matches = Vec::new();
    let (mut i, mut j, mut idx) = (alen, blen, total as usize);
    // `a_start == alen` means no range is open.
    let (mut a_start, mut a_end, mut b_start, mut b_end) = (alen, 0, 0, 0);
    while i > 0 && j > 0 {
        let mut emit = false;
        if a[i - 1] == b[j - 1] {
            common[idx - 1] = a[i - 1];
            if a_start == alen {
                (a_start, a_end, b_start, b_end) = (i - 1, i - 1, j - 1, j - 1);
            } else if a_start == i && b_start == j {
                a_start -= 1;
                b_start -= 1;
            } else {
                emit = true;
            }
            if a_start == 0 || b_start == 0 {
                emit = true;
            }
            idx -= 1;
            i -= 1;
            j -= 1;
        } else {
            if at(i - 1, j) > at(i, j - 1) {
                i -= 1;
            } else {
                j -= 1;
            }
            if a_start != alen {
                emit = true;
            }
        }
        let match_len = (a_end + 1).saturating_sub(a_start) as u64;
        if emit {
            if options.idx && match_len >= options.min_match_len {
                let range = |s: usize, e: usize| {
                    Frame::Array(vec![Frame::Integer(s as i64), Frame::Integer(e as i64)])
                };
                let mut m = vec![range(a_start, a_end), range(b_start, b_end)];
                if options.with_match_len {
                    m.push(Frame::Integer(match_len as i64));
                }
                matches.push(Frame::Array(m));
            }
            a_start = alen;
        }
    }
    if options.idx {
        return Frame::Map(vec![
            (Frame::bulk("matches"), Frame::Array(matches)),
            (Frame::bulk("len"), Frame::Integer(i64::from(total))),
        ]);
    }
    Frame::Bulk(Bytes::from(common))
}
