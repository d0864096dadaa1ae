//! Hash commands. On the built-in keyspace a hash is one value; on a keyspace that maps a row
//! it is that row (fields are columns), and a change writes only the columns it changed.

use bytes::Bytes;
use rand::Rng;
use sluice::SluiceError;

use super::args::{parse, Args, KeyArg};
use super::keys::{matches_pattern, parse_cursor};
use super::spec::{boxed, Ctx, KeyPositions, Spec};
use super::util::{engine_error, int_arg, is, read_reply, syntax_error, wrong_arity};
use crate::frontend::Frame;
use crate::state::keyspace_events::{GENERIC, HASH};

const WRITE: &[&str] = &["@write", "@hash", "@fast"];
const READ_FAST: &[&str] = &["@read", "@hash", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@hash", "@slow"];
const WRITE_GROW: &[&str] = &["write", "denyoom", "fast"];

/// The hash commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "hset",
        arity: -4,
        flags: WRITE_GROW,
        keys: KeyPositions::FIRST,
        categories: WRITE,
        summary: "Creates or modifies the value of a field in a hash.",
        handler: boxed!(hset),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hmset",
        arity: -4,
        flags: WRITE_GROW,
        keys: KeyPositions::FIRST,
        categories: WRITE,
        summary: "Sets the values of multiple fields.",
        handler: boxed!(hmset),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hsetnx",
        arity: 4,
        flags: WRITE_GROW,
        keys: KeyPositions::FIRST,
        categories: WRITE,
        summary: "Sets the value of a field in a hash only when the field doesn't exist.",
        handler: boxed!(hsetnx),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hget",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Returns the value of a field in a hash.",
        handler: boxed!(hget),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hmget",
        arity: -3,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Returns the values of all fields in a hash.",
        handler: boxed!(hmget),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hgetall",
        arity: 2,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Returns all fields and values in a hash.",
        handler: boxed!(hgetall),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hdel",
        arity: -3,
        flags: &["write", "fast"],
        keys: KeyPositions::FIRST,
        categories: WRITE,
        summary: "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.",
        handler: boxed!(hdel),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hlen",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Returns the number of fields in a hash.",
        handler: boxed!(hlen),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hexists",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Determines whether a field exists in a hash.",
        handler: boxed!(hexists),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hkeys",
        arity: 2,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Returns all fields in a hash.",
        handler: boxed!(hkeys),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hvals",
        arity: 2,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Returns all values in a hash.",
        handler: boxed!(hvals),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hincrby",
        arity: 4,
        flags: WRITE_GROW,
        keys: KeyPositions::FIRST,
        categories: WRITE,
        summary: "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.",
        handler: boxed!(hincrby),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hincrbyfloat",
        arity: 4,
        flags: WRITE_GROW,
        keys: KeyPositions::FIRST,
        categories: WRITE,
        summary: "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.",
        handler: boxed!(hincrbyfloat),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hstrlen",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Returns the length of the value of a field.",
        handler: boxed!(hstrlen),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hrandfield",
        arity: -2,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Returns one or more random fields from a hash.",
        handler: boxed!(hrandfield),
        ..Spec::DEFAULT
    },
    Spec {
        name: "hscan",
        arity: -3,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Iterates over fields and values of a hash.",
        handler: boxed!(hscan),
        ..Spec::DEFAULT
    },
];

/// `key field value [field value ...]` (HSET, HMSET): an odd count is an arity error.
struct FieldValues {
    key: Bytes,
    pairs: Vec<(Bytes, Bytes)>,
}

impl FieldValues {
    fn parse(argv: &mut [Bytes], name: &str) -> Result<FieldValues, Frame> {
        if argv.len() % 2 == 1 {
            return Err(wrong_arity(name));
        }
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        Ok(FieldValues {
            key,
            pairs: args.pairs(),
        })
    }
}

/// `key field`.
struct KeyField {
    key: Bytes,
    field: Bytes,
}

impl KeyField {
    fn parse(argv: &mut [Bytes]) -> Result<KeyField, Frame> {
        let mut args = Args::new(argv);
        let (key, field) = (args.next_bytes()?, args.next_bytes()?);
        args.finish()?;
        Ok(KeyField { key, field })
    }
}

/// `key field value` (HSETNX) or `key field increment` (HINCRBY, HINCRBYFLOAT).
struct KeyFieldValue {
    key: Bytes,
    field: Bytes,
    value: Bytes,
}

impl KeyFieldValue {
    fn parse(argv: &mut [Bytes]) -> Result<KeyFieldValue, Frame> {
        let mut args = Args::new(argv);
        let (key, field, value) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
        args.finish()?;
        Ok(KeyFieldValue { key, field, value })
    }
}

/// `key field [field ...]` (HMGET, HDEL).
struct KeyFields {
    key: Bytes,
    fields: Vec<Bytes>,
}

impl KeyFields {
    fn parse(argv: &mut [Bytes]) -> Result<KeyFields, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let mut fields = Vec::with_capacity(args.remaining());
        while !args.is_empty() {
            fields.push(args.next_bytes()?);
        }
        Ok(KeyFields { key, fields })
    }
}

fn reply_or<T>(r: Result<T, SluiceError>, reply: impl FnOnce(T) -> Frame) -> Frame {
    match r {
        Ok(v) => reply(v),
        Err(e) => engine_error(e),
    }
}

/// HSET key field value [field value ...]
async fn hset(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(FieldValues::parse(argv, "hset"));
    let r = ctx.access.hset(ctx.session.db, &a.key, a.pairs).await;
    if r.is_ok() {
        ctx.notify(HASH, "hset", &a.key);
    }
    reply_or(r, |added| Frame::Integer(added as i64))
}

/// HMSET key field value [field value ...]
async fn hmset(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(FieldValues::parse(argv, "hmset"));
    let r = ctx.access.hset(ctx.session.db, &a.key, a.pairs).await;
    if r.is_ok() {
        ctx.notify(HASH, "hset", &a.key);
    }
    reply_or(r, |_| Frame::ok())
}

/// HSETNX key field value
async fn hsetnx(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyFieldValue::parse(argv));
    let r = ctx
        .access
        .hsetnx(ctx.session.db, &a.key, a.field, a.value)
        .await;
    if r.as_ref().is_ok_and(|set| *set) {
        ctx.notify(HASH, "hset", &a.key);
    }
    reply_or(r, |set| Frame::Integer(set as i64))
}

/// HGET key field
async fn hget(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyField::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| Frame::bulk_or_null(h.get(&a.field).cloned()))
}

/// HMGET key field [field ...]
async fn hmget(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyFields::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| {
        Frame::Array(
            a.fields
                .iter()
                .map(|f| Frame::bulk_or_null(h.get(f).cloned()))
                .collect(),
        )
    })
}

/// HGETALL key
async fn hgetall(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| {
        Frame::Map(
            h.iter()
                .map(|(f, v)| (Frame::Bulk(f.clone()), Frame::Bulk(v.clone())))
                .collect(),
        )
    })
}

/// HDEL key field [field ...]
async fn hdel(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyFields::parse(argv));
    let r = ctx.access.hdel(ctx.session.db, &a.key, &a.fields).await;
    if r.as_ref().is_ok_and(|n| *n > 0) && ctx.shared.settings.notifies(HASH | GENERIC) {
        ctx.notify(HASH, "hdel", &a.key);
        // The last field gone takes the key with it: Redis signals that too. Read back only
        // when someone listens (in a transaction, the staged state).
        if let Ok(None) = ctx.access.hash(ctx.session.db, a.key.clone()).await {
            ctx.notify(GENERIC, "del", &a.key);
        }
    }
    reply_or(r, |n| Frame::Integer(n as i64))
}

/// HLEN key
async fn hlen(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| Frame::Integer(h.len() as i64))
}

/// HEXISTS key field
async fn hexists(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyField::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(
        &ctx,
        r,
        |h| Frame::Integer(h.get(&a.field).is_some() as i64),
    )
}

/// HKEYS key
async fn hkeys(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| {
        Frame::Array(h.iter().map(|(f, _)| Frame::Bulk(f.clone())).collect())
    })
}

/// HVALS key
async fn hvals(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| {
        Frame::Array(h.iter().map(|(_, v)| Frame::Bulk(v.clone())).collect())
    })
}

/// HSTRLEN key field
async fn hstrlen(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyField::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| {
        Frame::Integer(h.get(&a.field).map_or(0, |v| v.len()) as i64)
    })
}

/// HINCRBY key field increment
async fn hincrby(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyFieldValue::parse(argv));
    let delta = parse!(int_arg(&a.value));
    let r = ctx
        .access
        .hincr_by(ctx.session.db, &a.key, a.field, delta)
        .await;
    if r.is_ok() {
        ctx.notify(HASH, "hincrby", &a.key);
    }
    reply_or(r, Frame::Integer)
}

/// HINCRBYFLOAT key field increment
async fn hincrbyfloat(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyFieldValue::parse(argv));
    let r = ctx
        .access
        .hincr_by_float(ctx.session.db, &a.key, a.field, &a.value)
        .await;
    if r.is_ok() {
        ctx.notify(HASH, "hincrbyfloat", &a.key);
    }
    reply_or(r, Frame::Bulk)
}

/// The most picks HRANDFIELD makes with repeats (negative count). Redis builds any reply it
/// is asked for; a count of -2^62 would make it allocate without bound, which Sluice refuses.
const MAX_RANDOM_PICKS: u64 = 10_000_000;

/// HRANDFIELD key [count [WITHVALUES]]
struct RandField {
    key: Bytes,
    /// `None`: one field, as a bulk string (or nil).
    count: Option<i64>,
    with_values: bool,
}

impl RandField {
    /// Parses as Redis 7.0 `hrandfieldWithCountCommand`: the count's range, then the option,
    /// then (with values) the halved range, all before the key is read.
    fn parse(argv: &mut [Bytes]) -> Result<RandField, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        if args.is_empty() {
            return Ok(RandField {
                key,
                count: None,
                with_values: false,
            });
        }
        let count = args.next_int()?;
        if count == i64::MIN {
            return Err(Frame::error(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            ));
        }
        let with_values = match args.remaining() {
            0 => false,
            1 if is(&args.next_bytes()?, "withvalues") => {
                if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
                    return Err(Frame::error("ERR value is out of range"));
                }
                true
            }
            _ => return Err(syntax_error()),
        };
        Ok(RandField {
            key,
            count: Some(count),
            with_values,
        })
    }
}

/// HRANDFIELD key [count [WITHVALUES]]
async fn hrandfield(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(RandField::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    let h = match r {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => return engine_error(e),
    };
    let pairs: Vec<&(Bytes, Bytes)> = h.iter().collect();
    let Some(count) = a.count else {
        if pairs.is_empty() {
            return Frame::Null;
        }
        let i = rand::thread_rng().gen_range(0..pairs.len());
        return Frame::Bulk(pairs[i].0.clone());
    };
    if pairs.is_empty() || count == 0 {
        return Frame::Array(Vec::new());
    }
    if count.unsigned_abs() > MAX_RANDOM_PICKS && count < 0 {
        return Frame::error(format!(
            "ERR HRANDFIELD count is over Sluice's limit of {MAX_RANDOM_PICKS} picks with repeats (a reply must fit in memory)"
        ));
    }
    let picked: Vec<&(Bytes, Bytes)> = if count < 0 {
        // Repeats allowed: `|count|` independent picks.
        let mut rng = rand::thread_rng();
        (0..count.unsigned_abs())
            .map(|_| pairs[rng.gen_range(0..pairs.len())])
            .collect()
    } else if count as usize >= pairs.len() {
        pairs
    } else {
        let mut rng = rand::thread_rng();
        rand::seq::index::sample(&mut rng, pairs.len(), count as usize)
            .into_iter()
            .map(|i| pairs[i])
            .collect()
    };
    Frame::Array(if a.with_values && ctx.session.proto >= 3 {
        // RESP3: a [field, value] array per pick, as Redis 7.0 answers.
        picked
            .into_iter()
            .map(|(f, v)| Frame::Array(vec![Frame::Bulk(f.clone()), Frame::Bulk(v.clone())]))
            .collect()
    } else if a.with_values {
        picked
            .into_iter()
            .flat_map(|(f, v)| [Frame::Bulk(f.clone()), Frame::Bulk(v.clone())])
            .collect()
    } else {
        picked
            .into_iter()
            .map(|(f, _)| Frame::Bulk(f.clone()))
            .collect()
    })
}

/// `key cursor [MATCH pattern] [COUNT count]` (HSCAN, SSCAN): a collection's scan.
pub(super) struct CollectionScan {
    pub(super) key: Bytes,
    pub(super) cursor: u64,
    pub(super) pattern: Option<Bytes>,
    /// COUNT: how much work one call does (Redis's default, 10).
    pub(super) count: usize,
}

impl CollectionScan {
    /// Parses as Redis `scanGenericCommand` (no TYPE for a collection).
    pub(super) fn parse(argv: &mut [Bytes]) -> Result<CollectionScan, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let cursor =
            parse_cursor(&args.next_bytes()?).ok_or_else(|| Frame::error("ERR invalid cursor"))?;
        let mut pattern = None;
        let mut count = 10;
        while !args.is_empty() {
            let option = args.next_bytes()?;
            if args.is_empty() {
                return Err(syntax_error());
            }
            if is(&option, "count") {
                let n = args.next_int()?;
                if n < 1 {
                    return Err(syntax_error());
                }
                count = usize::try_from(n).unwrap_or(usize::MAX);
            } else if is(&option, "match") {
                pattern = Some(args.next_bytes()?);
            } else {
                return Err(syntax_error());
            }
        }
        Ok(CollectionScan {
            key,
            cursor,
            pattern,
            count,
        })
    }
}

/// HSCAN key cursor [MATCH pattern] [COUNT count]
///
/// The whole hash in one page with cursor 0, whatever the cursor: what Redis answers for a
/// hash in its compact encoding, and within SCAN's guarantees for any hash (every field
/// present throughout is returned).
async fn hscan(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(CollectionScan::parse(argv));
    let r = ctx.access.hash(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |h| {
        let mut page = Vec::with_capacity(h.len() * 2);
        for (f, v) in h.iter() {
            if a.pattern.as_ref().is_none_or(|p| matches_pattern(p, f)) {
                page.push(Frame::Bulk(f.clone()));
                page.push(Frame::Bulk(v.clone()));
            }
        }
        Frame::Array(vec![Frame::bulk("0"), Frame::Array(page)])
    })
}
