//! Set commands, Redis 7.0 exact. A set lives on the built-in keyspace, where each member is a
//! row of its own (see `sluice::Access::update_set`), so a write stores only the members it
//! changed. Replies that Redis builds as sets are RESP3 sets (`~`); SMEMBERS and the algebra
//! answer in Redis's order for a set of integers (ascending) and in insertion order otherwise,
//! where Redis's order is its hash table's.

use bytes::Bytes;
use rand::{Rng, SeedableRng};
use sluice::model::set;
use sluice::{SetAlgebra, SetValue};

use super::args::{parse, Args, KeyArg};
use super::hashes::CollectionScan;
use super::keys::matches_pattern;
use super::spec::{boxed, Ctx, KeyPositions, Spec};
use super::util::{engine_error, is, read_reply, removed_reply, syntax_error};
use crate::frontend::Frame;
use crate::state::keyspace_events::{GENERIC, SET};

const WRITE_FAST: &[&str] = &["@write", "@set", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@set", "@slow"];
const READ_FAST: &[&str] = &["@read", "@set", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@set", "@slow"];

/// The set commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "sadd",
        arity: -3,
        flags: &["write", "denyoom", "fast"],
        keys: KeyPositions::FIRST,
        categories: WRITE_FAST,
        summary: "Adds one or more members to a set. Creates the key if it doesn't exist.",
        handler: boxed!(sadd),
        ..Spec::DEFAULT
    },
    Spec {
        name: "srem",
        arity: -3,
        flags: &["write", "fast"],
        keys: KeyPositions::FIRST,
        categories: WRITE_FAST,
        summary: "Removes one or more members from a set. Deletes the set if the last member was removed.",
        handler: boxed!(srem),
        ..Spec::DEFAULT
    },
    Spec {
        name: "smove",
        arity: 4,
        flags: &["write", "fast"],
        keys: KeyPositions::FIRST_TWO,
        categories: WRITE_FAST,
        summary: "Moves a member from one set to another.",
        handler: boxed!(smove),
        ..Spec::DEFAULT
    },
    Spec {
        name: "spop",
        arity: -2,
        flags: &["write", "fast"],
        keys: KeyPositions::FIRST,
        categories: WRITE_FAST,
        summary: "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.",
        handler: boxed!(spop),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sismember",
        arity: 3,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Determines whether a member belongs to a set.",
        handler: boxed!(sismember),
        ..Spec::DEFAULT
    },
    Spec {
        name: "smismember",
        arity: -3,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Determines whether multiple members belong to a set.",
        handler: boxed!(smismember),
        ..Spec::DEFAULT
    },
    Spec {
        name: "scard",
        arity: 2,
        flags: &["readonly", "fast"],
        keys: KeyPositions::FIRST,
        categories: READ_FAST,
        summary: "Returns the number of members in a set.",
        handler: boxed!(scard),
        ..Spec::DEFAULT
    },
    Spec {
        name: "smembers",
        arity: 2,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Returns all members of a set.",
        handler: boxed!(smembers),
        ..Spec::DEFAULT
    },
    Spec {
        name: "srandmember",
        arity: -2,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Get one or multiple random members from a set",
        handler: boxed!(srandmember),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sinter",
        arity: -2,
        flags: &["readonly"],
        keys: KeyPositions::ALL,
        categories: READ_SLOW,
        summary: "Returns the intersect of multiple sets.",
        handler: boxed!(sinter),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sunion",
        arity: -2,
        flags: &["readonly"],
        keys: KeyPositions::ALL,
        categories: READ_SLOW,
        summary: "Returns the union of multiple sets.",
        handler: boxed!(sunion),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sdiff",
        arity: -2,
        flags: &["readonly"],
        keys: KeyPositions::ALL,
        categories: READ_SLOW,
        summary: "Returns the difference of multiple sets.",
        handler: boxed!(sdiff),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sintercard",
        arity: -3,
        flags: &["readonly", "movablekeys"],
        keys: KeyPositions::COUNTED,
        categories: READ_SLOW,
        summary: "Returns the number of members of the intersect of multiple sets.",
        handler: boxed!(sintercard),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sinterstore",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: KeyPositions::ALL,
        categories: WRITE_SLOW,
        summary: "Stores the intersect of multiple sets in a key.",
        handler: boxed!(sinterstore),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sunionstore",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: KeyPositions::ALL,
        categories: WRITE_SLOW,
        summary: "Stores the union of multiple sets in a key.",
        handler: boxed!(sunionstore),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sdiffstore",
        arity: -3,
        flags: &["write", "denyoom"],
        keys: KeyPositions::ALL,
        categories: WRITE_SLOW,
        summary: "Stores the difference of multiple sets in a key.",
        handler: boxed!(sdiffstore),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sscan",
        arity: -3,
        flags: &["readonly"],
        keys: KeyPositions::FIRST,
        categories: READ_SLOW,
        summary: "Iterates over members of a set.",
        handler: boxed!(sscan),
        ..Spec::DEFAULT
    },
];

/// The most members SRANDMEMBER picks with repeats (negative count). Redis builds any reply
/// it is asked for; a count of -2^62 would make it allocate without bound, which Sluice
/// refuses.
const MAX_RANDOM_PICKS: u64 = 10_000_000;

/// The most bytes of members SRANDMEMBER with repeats answers (as `proto-max-bulk-len`).
const MAX_RANDOM_REPLY: u64 = 512 * 1024 * 1024;

/// `key member [member ...]` (SADD, SREM, SMISMEMBER, ZREM, ZMSCORE).
pub(super) struct KeyMembers {
    pub(super) key: Bytes,
    pub(super) members: Vec<Bytes>,
}

impl KeyMembers {
    pub(super) fn parse(argv: &mut [Bytes]) -> Result<KeyMembers, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let mut members = Vec::with_capacity(args.remaining());
        while !args.is_empty() {
            members.push(args.next_bytes()?);
        }
        Ok(KeyMembers { key, members })
    }
}

/// `key member` (SISMEMBER, ZSCORE, ZRANK).
pub(super) struct KeyMember {
    pub(super) key: Bytes,
    pub(super) member: Bytes,
}

impl KeyMember {
    pub(super) fn parse(argv: &mut [Bytes]) -> Result<KeyMember, Frame> {
        let mut args = Args::new(argv);
        let (key, member) = (args.next_bytes()?, args.next_bytes()?);
        args.finish()?;
        Ok(KeyMember { key, member })
    }
}

/// `source destination member` (SMOVE).
struct Move {
    src: Bytes,
    dst: Bytes,
    member: Bytes,
}

impl Move {
    fn parse(argv: &mut [Bytes]) -> Result<Move, Frame> {
        let mut args = Args::new(argv);
        let (src, dst, member) = (args.next_bytes()?, args.next_bytes()?, args.next_bytes()?);
        args.finish()?;
        Ok(Move { src, dst, member })
    }
}

/// `key [count]` (SPOP, SRANDMEMBER); a third argument is a syntax error, as in Redis.
struct KeyCount {
    key: Bytes,
    count: Option<Bytes>,
}

impl KeyCount {
    fn parse(argv: &mut [Bytes]) -> Result<KeyCount, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let count = if args.is_empty() {
            None
        } else {
            Some(args.next_bytes()?)
        };
        if !args.is_empty() {
            return Err(syntax_error());
        }
        Ok(KeyCount { key, count })
    }
}

/// `numkeys key [key ...] [LIMIT limit]` (SINTERCARD), checked as Redis 7.0 does.
struct InterCard {
    keys: Vec<Bytes>,
    limit: usize,
}

impl InterCard {
    fn parse(argv: &mut [Bytes]) -> Result<InterCard, Frame> {
        let argc = argv.len();
        let mut args = Args::new(argv);
        let numkeys = match super::util::int_arg(&args.next_bytes()?) {
            Ok(n) if n >= 1 => n as usize,
            Ok(_) => return Err(Frame::error("ERR numkeys should be greater than 0")),
            Err(_) => return Err(Frame::error("ERR numkeys should be greater than 0")),
        };
        if numkeys > argc - 2 {
            return Err(Frame::error(
                "ERR Number of keys can't be greater than number of args",
            ));
        }
        let mut keys = Vec::with_capacity(numkeys);
        for _ in 0..numkeys {
            keys.push(args.next_bytes()?);
        }
        let mut limit = 0;
        while !args.is_empty() {
            let option = args.next_bytes()?;
            if is(&option, "limit") && !args.is_empty() {
                limit = match super::util::int_arg(&args.next_bytes()?) {
                    Ok(n) if n >= 0 => n as usize,
                    _ => return Err(Frame::error("ERR LIMIT can't be negative")),
                };
            } else {
                return Err(syntax_error());
            }
        }
        Ok(InterCard { keys, limit })
    }
}

/// A set's members as Redis replies them: a set in RESP3, an array in RESP2.
fn members_reply(set: &SetValue) -> Frame {
    Frame::Set(
        set.sorted_like_redis()
            .into_iter()
            .map(Frame::Bulk)
            .collect(),
    )
}

/// SADD key member [member ...]
async fn sadd(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyMembers::parse(argv));
    match ctx.access.sadd(ctx.session.db, &a.key, a.members).await {
        Ok(added) => {
            if added > 0 {
                ctx.notify(SET, "sadd", &a.key);
            }
            Frame::Integer(added as i64)
        }
        Err(e) => engine_error(e),
    }
}

/// SREM key member [member ...]
async fn srem(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyMembers::parse(argv));
    let r = ctx.access.srem(ctx.session.db, &a.key, a.members).await;
    removed_reply(&mut ctx, r, (SET, "srem"), &a.key)
}

/// SMOVE source destination member
async fn smove(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(Move::parse(argv));
    let r = ctx
        .access
        .smove(ctx.session.db, &a.src, &a.dst, a.member)
        .await;
    match r {
        Ok(None) => Frame::Integer(0),
        Ok(Some(moved)) => {
            if a.src != a.dst {
                ctx.notify(SET, "srem", &a.src);
                if moved.src_deleted {
                    ctx.notify(GENERIC, "del", &a.src);
                }
                if moved.dst_added {
                    ctx.notify(SET, "sadd", &a.dst);
                }
            }
            Frame::Integer(1)
        }
        Err(e) => engine_error(e),
    }
}

/// SPOP key [count]
async fn spop(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyCount::parse(argv));
    let count = match &a.count {
        None => None,
        Some(c) => match super::util::int_arg(c) {
            Ok(n) if n >= 0 => Some(n as usize),
            _ => return Frame::error("ERR value is out of range, must be positive"),
        },
    };
    // A generator that may cross the await (the thread's own one may not).
    let mut rng = rand::rngs::StdRng::from_entropy();
    let r = ctx
        .access
        .spop(ctx.session.db, &a.key, count.unwrap_or(1), |len| {
            rng.gen_range(0..len)
        })
        .await;
    let (popped, emptied) = match r {
        Ok(r) => r,
        Err(e) => return engine_error(e),
    };
    if !popped.is_empty() {
        ctx.notify(SET, "spop", &a.key);
        if emptied {
            ctx.notify(GENERIC, "del", &a.key);
        }
    }
    match count {
        None => Frame::bulk_or_null(popped.into_iter().next()),
        // The whole set popped: Redis answers it as SMEMBERS would (an intset ascending).
        Some(_) if emptied => members_reply(&SetValue::from_members(popped)),
        Some(_) => Frame::Set(popped.into_iter().map(Frame::Bulk).collect()),
    }
}

/// SISMEMBER key member: a scan of the encoded set, no set built.
async fn sismember(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyMember::parse(argv));
    let r = ctx.access.set_image(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |image| {
        Frame::Integer(set::contains(&image, &a.member).into())
    })
}

/// SMISMEMBER key member [member ...]
async fn smismember(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyMembers::parse(argv));
    let r = ctx.access.set_image(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |image| {
        // One scan for a few members; a set built once for many.
        let found: Vec<bool> = if a.members.len() <= 4 {
            a.members.iter().map(|m| set::contains(&image, m)).collect()
        } else {
            let s = SetValue::decode(&image).unwrap_or_default();
            a.members.iter().map(|m| s.contains(m)).collect()
        };
        Frame::Array(
            found
                .into_iter()
                .map(|f| Frame::Integer(f.into()))
                .collect(),
        )
    })
}

/// SCARD key: the count at the head of the encoded set.
async fn scard(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.set_image(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |image| Frame::Integer(set::len(&image) as i64))
}

/// SMEMBERS key
async fn smembers(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.set_value(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |s| members_reply(&s))
}

/// SRANDMEMBER key [count]
async fn srandmember(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyCount::parse(argv));
    let count = match &a.count {
        None => None,
        Some(c) => match super::util::int_arg(c) {
            Ok(i64::MIN) => {
                return Frame::error(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                )
            }
            Ok(n) => Some(n),
            Err(e) => return e,
        },
    };
    let r = ctx.access.set_value(ctx.session.db, a.key).await;
    let set = match r {
        Ok(s) => s,
        Err(e) => return engine_error(e),
    };
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        return match set {
            Some(s) if !s.is_empty() => {
                Frame::bulk_or_null(s.get_index(rng.gen_range(0..s.len())).cloned())
            }
            _ => Frame::Null,
        };
    };
    let set = match set {
        Some(s) if count != 0 => s,
        _ => return Frame::Array(Vec::new()),
    };
    if count < 0 {
        let longest = set.iter().map(Bytes::len).max().unwrap_or(0) as u64;
        if count.unsigned_abs() > MAX_RANDOM_PICKS
            || count.unsigned_abs().saturating_mul(longest + 16) > MAX_RANDOM_REPLY
        {
            return Frame::error(format!(
                "ERR SRANDMEMBER count is over Sluice's limit of {MAX_RANDOM_PICKS} picks with repeats, or {MAX_RANDOM_REPLY} bytes of reply (a reply must fit in memory)"
            ));
        }
        return Frame::Array(
            (0..count.unsigned_abs())
                .filter_map(|_| set.get_index(rng.gen_range(0..set.len())).cloned())
                .map(Frame::Bulk)
                .collect(),
        );
    }
    let count = count as usize;
    if count >= set.len() {
        return Frame::Array(
            set.sorted_like_redis()
                .into_iter()
                .map(Frame::Bulk)
                .collect(),
        );
    }
    Frame::Array(
        rand::seq::index::sample(&mut rng, set.len(), count)
            .into_iter()
            .filter_map(|i| set.get_index(i).cloned())
            .map(Frame::Bulk)
            .collect(),
    )
}

/// SINTER / SUNION / SDIFF key [key ...]
async fn algebra(mut ctx: Ctx<'_>, argv: &mut [Bytes], algebra: SetAlgebra) -> Frame {
    let keys = argv.get_mut(1..).unwrap_or_default();
    match ctx.access.set_values(ctx.session.db, keys).await {
        Ok(sets) => members_reply(&algebra.apply(&sets)),
        Err(e) => engine_error(e),
    }
}

/// SINTER key [key ...]
async fn sinter(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra(ctx, argv, SetAlgebra::Intersection).await
}

/// SUNION key [key ...]
async fn sunion(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra(ctx, argv, SetAlgebra::Union).await
}

/// SDIFF key [key ...]
async fn sdiff(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra(ctx, argv, SetAlgebra::Difference).await
}

/// SINTERCARD numkeys key [key ...] [LIMIT limit]
async fn sintercard(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let mut a = parse!(InterCard::parse(argv));
    match ctx.access.set_values(ctx.session.db, &mut a.keys).await {
        Ok(sets) => {
            let n = SetAlgebra::Intersection.apply(&sets).len();
            let n = if a.limit > 0 { n.min(a.limit) } else { n };
            Frame::Integer(n as i64)
        }
        Err(e) => engine_error(e),
    }
}

/// SINTERSTORE / SUNIONSTORE / SDIFFSTORE destination key [key ...]
async fn algebra_store(
    mut ctx: Ctx<'_>,
    argv: &mut [Bytes],
    algebra: SetAlgebra,
    event: &'static str,
) -> Frame {
    let dst = argv[1].clone();
    let keys = &argv[2..];
    match ctx
        .access
        .store_set_algebra(ctx.session.db, &dst, keys, algebra)
        .await
    {
        Ok(stored) => {
            if stored.len > 0 {
                ctx.notify(SET, event, &dst);
            } else if stored.deleted {
                ctx.notify(GENERIC, "del", &dst);
            }
            Frame::Integer(stored.len as i64)
        }
        Err(e) => engine_error(e),
    }
}

/// SINTERSTORE destination key [key ...]
async fn sinterstore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra_store(ctx, argv, SetAlgebra::Intersection, "sinterstore").await
}

/// SUNIONSTORE destination key [key ...]
async fn sunionstore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra_store(ctx, argv, SetAlgebra::Union, "sunionstore").await
}

/// SDIFFSTORE destination key [key ...]
async fn sdiffstore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra_store(ctx, argv, SetAlgebra::Difference, "sdiffstore").await
}

/// Where a member sits in SSCAN's order: a hash with a fixed seed, so the order never depends
/// on what else the set holds and a cursor stays valid while members come and go. Never 0,
/// which is the cursor that starts (and ends) a scan.
pub(super) fn scan_position(member: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::with_seed(0x5c4e_5e75)
        .hash_one(member)
        .max(1)
}

/// SSCAN key cursor [MATCH pattern] [COUNT count]
///
/// A set Redis keeps as an intset comes whole in one page with cursor 0, as in Redis. Any
/// other set is paged: the members in order of [`scan_position`] from the cursor on, `COUNT`
/// of them (and any that share the last one's position), then the position of the next as
/// the cursor. Every member present from the first call to the last is returned at least
/// once, as SCAN promises; the cursors are not Redis's (its are positions in its hash table).
async fn sscan(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(CollectionScan::parse(argv));
    let r = ctx.access.set_value(ctx.session.db, a.key).await;
    let keep = |m: &Bytes| a.pattern.as_ref().is_none_or(|p| matches_pattern(p, m));
    read_reply(&ctx, r, |s| {
        if s.encoding_name() == "intset" {
            let page = s
                .sorted_like_redis()
                .into_iter()
                .filter(keep)
                .map(Frame::Bulk);
            return Frame::Array(vec![Frame::bulk("0"), Frame::Array(page.collect())]);
        }
        let mut ahead: Vec<(u64, &Bytes)> = s
            .iter()
            .map(|m| (scan_position(m), m))
            .filter(|(p, _)| *p >= a.cursor)
            .collect();
        ahead.sort_unstable_by_key(|(p, _)| *p);
        let mut end = a.count.min(ahead.len());
        while end > 0 && end < ahead.len() && ahead[end].0 == ahead[end - 1].0 {
            end += 1;
        }
        let next = ahead.get(end).map_or(0, |(p, _)| *p);
        let page = ahead[..end].iter().map(|(_, m)| *m).filter(|m| keep(m));
        Frame::Array(vec![
            Frame::bulk(next.to_string()),
            Frame::Array(page.cloned().map(Frame::Bulk).collect()),
        ])
    })
}
