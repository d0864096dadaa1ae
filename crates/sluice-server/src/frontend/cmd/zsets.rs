//! Sorted-set commands, Redis 7.0 exact. A sorted set lives on the built-in keyspace, where
//! each member is a row of its own with its score (see `sluice::Access::update_zset`), so
//! ZADD or ZINCRBY stores only the members it changed. Scores are answered as Redis's
//! `addReplyDouble` does (`%.17g`, `inf`, `-inf`; a RESP3 double), and a reply with scores is
//! a flat array in RESP2 and an array of [member, score] pairs in RESP3.
//!
//! The blocking forms (BZPOPMIN, BZPOPMAX, BZMPOP) take a place in the queues of their keys
//! (`state::blocking`) before they look, and leave the wait to the connection
//! (`Session::blocked`), which runs them again when a key changes.

use bytes::Bytes;
use rand::Rng;
use sluice::model::zset::{
    self, AddFlags, Added, Aggregate, LexBound, LexRange, ScoreBound, ScoreRange,
};
use sluice::numeric::{parse_range_score, parse_score};
use sluice::{SluiceError, ZSetAlgebra, ZSetInputs, ZSetValue};

use super::args::{parse, MultiPop};
use super::blocking::{keys_then_timeout, parse_timeout, pop_or_block, BlockKind};
use super::hashes::CollectionScan;
use super::keys::matches_pattern;
use super::sets::{scan_position, KeyMember, KeyMembers};
use super::spec::{cmdspec, Ctx, KeyPositions, Spec};
use super::util::{engine_error, int_arg, is, read_reply, removed_reply, syntax_error};
use crate::frontend::frame::format_score;
use crate::frontend::Frame;
use crate::state::keyspace_events::{GENERIC, ZSET};

const WRITE_FAST: &[&str] = &["@write", "@sortedset", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@sortedset", "@slow"];
const READ_FAST: &[&str] = &["@read", "@sortedset", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@sortedset", "@slow"];
const BLOCKING_FAST: &[&str] = &["@write", "@sortedset", "@fast", "@blocking"];
const BLOCKING_SLOW: &[&str] = &["@write", "@sortedset", "@slow", "@blocking"];

const FIRST: KeyPositions = KeyPositions::FIRST;

/// The sorted-set commands.
pub static COMMANDS: &[Spec] = &[
    cmdspec!("zadd", -4, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, zadd,
        "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist."),
    cmdspec!("zincrby", 4, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, zincrby,
        "Increments the score of a member in a sorted set."),
    cmdspec!("zrem", -3, &["write", "fast"], FIRST, WRITE_FAST, zrem,
        "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed."),
    cmdspec!("zcard", 2, &["readonly", "fast"], FIRST, READ_FAST, zcard,
        "Returns the number of members in a sorted set."),
    cmdspec!("zscore", 3, &["readonly", "fast"], FIRST, READ_FAST, zscore,
        "Returns the score of a member in a sorted set."),
    cmdspec!("zmscore", -3, &["readonly", "fast"], FIRST, READ_FAST, zmscore,
        "Returns the score of one or more members in a sorted set."),
    cmdspec!("zrank", 3, &["readonly", "fast"], FIRST, READ_FAST, zrank,
        "Returns the index of a member in a sorted set ordered by ascending scores."),
    cmdspec!("zrevrank", 3, &["readonly", "fast"], FIRST, READ_FAST, zrevrank,
        "Returns the index of a member in a sorted set ordered by descending scores."),
    cmdspec!("zcount", 4, &["readonly", "fast"], FIRST, READ_FAST, zcount,
        "Returns the count of members in a sorted set that have scores within a range."),
    cmdspec!("zlexcount", 4, &["readonly", "fast"], FIRST, READ_FAST, zlexcount,
        "Returns the number of members in a sorted set within a lexicographical range."),
    cmdspec!("zrange", -4, &["readonly"], FIRST, READ_SLOW, zrange,
        "Returns members in a sorted set within a range of indexes."),
    cmdspec!("zrevrange", -4, &["readonly"], FIRST, READ_SLOW, zrevrange,
        "Returns members in a sorted set within a range of indexes in reverse order."),
    cmdspec!("zrangebyscore", -4, &["readonly"], FIRST, READ_SLOW, zrangebyscore,
        "Returns members in a sorted set within a range of scores."),
    cmdspec!("zrevrangebyscore", -4, &["readonly"], FIRST, READ_SLOW, zrevrangebyscore,
        "Returns members in a sorted set within a range of scores in reverse order."),
    cmdspec!("zrangebylex", -4, &["readonly"], FIRST, READ_SLOW, zrangebylex,
        "Returns members in a sorted set within a lexicographical range."),
    cmdspec!("zrevrangebylex", -4, &["readonly"], FIRST, READ_SLOW, zrevrangebylex,
        "Returns members in a sorted set within a lexicographical range in reverse order."),
    cmdspec!("zrangestore", -5, &["write", "denyoom"], KeyPositions::FIRST_TWO, WRITE_SLOW, zrangestore,
        "Stores a range of members from sorted set in a key."),
    cmdspec!("zremrangebyrank", 4, &["write"], FIRST, WRITE_SLOW, zremrangebyrank,
        "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed."),
    cmdspec!("zremrangebyscore", 4, &["write"], FIRST, WRITE_SLOW, zremrangebyscore,
        "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed."),
    cmdspec!("zremrangebylex", 4, &["write"], FIRST, WRITE_SLOW, zremrangebylex,
        "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed."),
    cmdspec!("zpopmin", -2, &["write", "fast"], FIRST, WRITE_FAST, zpopmin,
        "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    cmdspec!("zpopmax", -2, &["write", "fast"], FIRST, WRITE_FAST, zpopmax,
        "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped."),
    cmdspec!("zmpop", -4, &["write", "movablekeys"], KeyPositions::COUNTED, WRITE_SLOW, zmpop,
        "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped."),
    cmdspec!("bzpopmin", -3, &["write", "noscript", "blocking", "fast"], KeyPositions::ALL_BUT_LAST, BLOCKING_FAST, bzpopmin,
        "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    cmdspec!("bzpopmax", -3, &["write", "noscript", "blocking", "fast"], KeyPositions::ALL_BUT_LAST, BLOCKING_FAST, bzpopmax,
        "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member available otherwise.  Deletes the sorted set if the last element was popped."),
    cmdspec!("bzmpop", -5, &["write", "blocking", "movablekeys"], KeyPositions::COUNTED_AT_SECOND, BLOCKING_SLOW, bzmpop,
        "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped."),
    cmdspec!("zrandmember", -2, &["readonly"], FIRST, READ_SLOW, zrandmember,
        "Returns one or more random members from a sorted set."),
    cmdspec!("zscan", -3, &["readonly"], FIRST, READ_SLOW, zscan,
        "Iterates over members and scores of a sorted set."),
    cmdspec!("zunion", -3, &["readonly", "movablekeys"], KeyPositions::COUNTED, READ_SLOW, zunion,
        "Returns the union of multiple sorted sets."),
    cmdspec!("zinter", -3, &["readonly", "movablekeys"], KeyPositions::COUNTED, READ_SLOW, zinter,
        "Returns the intersect of multiple sorted sets."),
    cmdspec!("zdiff", -3, &["readonly", "movablekeys"], KeyPositions::COUNTED, READ_SLOW, zdiff,
        "Returns the difference between multiple sorted sets."),
    cmdspec!("zintercard", -3, &["readonly", "movablekeys"], KeyPositions::COUNTED, READ_SLOW, zintercard,
        "Returns the number of members of the intersect of multiple sorted sets."),
    cmdspec!("zunionstore", -4, &["write", "denyoom", "movablekeys"], KeyPositions::DEST_THEN_COUNTED, WRITE_SLOW, zunionstore,
        "Stores the union of multiple sorted sets in a key."),
    cmdspec!("zinterstore", -4, &["write", "denyoom", "movablekeys"], KeyPositions::DEST_THEN_COUNTED, WRITE_SLOW, zinterstore,
        "Stores the intersect of multiple sorted sets in a key."),
    cmdspec!("zdiffstore", -4, &["write", "denyoom", "movablekeys"], KeyPositions::DEST_THEN_COUNTED, WRITE_SLOW, zdiffstore,
        "Stores the difference of multiple sorted sets in a key."),
];

/// The most members ZRANDMEMBER picks with repeats (negative count): Redis builds any reply it
/// is asked for, which Sluice bounds (as SRANDMEMBER).
const MAX_RANDOM_PICKS: u64 = 10_000_000;

/// The most bytes of members ZRANDMEMBER with repeats answers (as `proto-max-bulk-len`).
const MAX_RANDOM_REPLY: u64 = 512 * 1024 * 1024;

fn not_float() -> Frame {
    Frame::error("ERR value is not a valid float")
}

fn score_range_error() -> Frame {
    Frame::error("ERR min or max is not a float")
}

fn lex_range_error() -> Frame {
    Frame::error("ERR min or max not valid string range item")
}

/// Entries as Redis replies them, with or without their scores (see the module's note).
fn entries_reply<'a>(
    proto: u8,
    entries: impl Iterator<Item = (&'a [u8], f64)>,
    with_scores: bool,
) -> Frame {
    let member = |m: &[u8]| Frame::Bulk(Bytes::copy_from_slice(m));
    Frame::Array(match (with_scores, proto >= 3) {
        (false, _) => entries.map(|(m, _)| member(m)).collect(),
        (true, true) => entries
            .map(|(m, s)| Frame::Array(vec![member(m), Frame::Double(s)]))
            .collect(),
        (true, false) => entries
            .flat_map(|(m, s)| [member(m), Frame::Double(s)])
            .collect(),
    })
}

/// A score, or nil.
fn score_or_null(score: Option<f64>) -> Frame {
    score.map_or(Frame::Null, Frame::Double)
}

/// One end of a score range, as Redis's `zslParseRange` reads it.
fn parse_score_bound(arg: &[u8]) -> Option<ScoreBound> {
    match arg.strip_prefix(b"(") {
        Some(rest) => Some(ScoreBound {
            value: parse_range_score(rest)?,
            exclusive: true,
        }),
        None => Some(ScoreBound {
            value: parse_range_score(arg)?,
            exclusive: false,
        }),
    }
}

fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Frame> {
    match (parse_score_bound(min), parse_score_bound(max)) {
        (Some(min), Some(max)) => Ok(ScoreRange { min, max }),
        _ => Err(score_range_error()),
    }
}

/// One end of a lexicographic range, as Redis's `zslParseLexRangeItem` reads it.
fn parse_lex_bound(arg: &Bytes) -> Option<LexBound> {
    // `+` and `-` alone; Redis looks only at the byte after them, which a NUL may be.
    let alone = arg.len() == 1 || arg.get(1) == Some(&0);
    match arg.first()? {
        b'+' if alone => Some(LexBound::Max),
        b'-' if alone => Some(LexBound::Min),
        b'(' => Some(LexBound::Member {
            member: arg.slice(1..),
            exclusive: true,
        }),
        b'[' => Some(LexBound::Member {
            member: arg.slice(1..),
            exclusive: false,
        }),
        _ => None,
    }
}

fn parse_lex_range(min: &Bytes, max: &Bytes) -> Result<LexRange, Frame> {
    match (parse_lex_bound(min), parse_lex_bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(lex_range_error()),
    }
}

/// What a range query selects by.
#[derive(Debug, Clone)]
enum By {
    Rank { start: i64, stop: i64 },
    Score(ScoreRange),
    Lex(LexRange),
}

/// Which kind of range a command reads (`None`: ZRANGE's, chosen by its options).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ByKind {
    Rank,
    Score,
    Lex,
}

/// A parsed ZRANGE (or one of its older forms, or ZRANGESTORE).
#[derive(Debug, Clone)]
struct RangeQuery {
    by: By,
    rev: bool,
    /// LIMIT offset count (count negative: no limit).
    limit: Option<(i64, i64)>,
    with_scores: bool,
}

impl RangeQuery {
    /// Parses `min max [options]` as Redis 7.0's `zrangeGenericCommand`: `kind` and `rev` are
    /// fixed by the older commands and chosen by options for ZRANGE / ZRANGESTORE; `store`
    /// refuses WITHSCORES.
    fn parse(
        args: &[Bytes],
        kind: Option<ByKind>,
        rev: Option<bool>,
        store: bool,
    ) -> Result<RangeQuery, Frame> {
        let (mut kind, mut rev) = (kind, rev);
        let (mut limit, mut with_scores) = (None::<(i64, i64)>, false);
        let mut j = 2;
        while j < args.len() {
            let left = args.len() - j - 1;
            let opt = &args[j];
            if !store && is(opt, "withscores") {
                with_scores = true;
            } else if is(opt, "limit") && left >= 2 {
                let offset = int_arg(&args[j + 1])?;
                let count = int_arg(&args[j + 2])?;
                limit = Some((offset, count));
                j += 2;
            } else if rev.is_none() && is(opt, "rev") {
                rev = Some(true);
            } else if kind.is_none() && is(opt, "bylex") {
                kind = Some(ByKind::Lex);
            } else if kind.is_none() && is(opt, "byscore") {
                kind = Some(ByKind::Score);
            } else {
                return Err(syntax_error());
            }
            j += 1;
        }
        let rev = rev.unwrap_or(false);
        let kind = kind.unwrap_or(ByKind::Rank);
        // Redis keeps "no LIMIT" as a count of -1, so `LIMIT x -1` reads as no LIMIT here.
        if limit.is_some_and(|(_, count)| count != -1) && kind == ByKind::Rank {
            return Err(Frame::error(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if with_scores && kind == ByKind::Lex {
            return Err(Frame::error(
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        // A reversed score or lex range is given as max, then min.
        let (min, max) = if rev && kind != ByKind::Rank {
            (&args[1], &args[0])
        } else {
            (&args[0], &args[1])
        };
        let by = match kind {
            ByKind::Rank => By::Rank {
                start: int_arg(min)?,
                stop: int_arg(max)?,
            },
            ByKind::Score => By::Score(parse_score_range(min, max)?),
            ByKind::Lex => By::Lex(parse_lex_range(min, max)?),
        };
        Ok(RangeQuery {
            by,
            rev,
            limit,
            with_scores,
        })
    }

    /// The positions of the selected entries of `view` (in order), in the order the reply
    /// lists them.
    fn select(&self, view: &[(&[u8], f64)]) -> Vec<usize> {
        let len = view.len();
        match &self.by {
            By::Rank { start, stop } => match rank_range(*start, *stop, len) {
                None => Vec::new(),
                Some((start, stop)) if self.rev => {
                    (len - 1 - stop..=len - 1 - start).rev().collect()
                }
                Some((start, stop)) => (start..=stop).collect(),
            },
            By::Score(range) => {
                let r = range.positions(view);
                self.limited(r, len)
            }
            By::Lex(range) => {
                let r = if self.rev {
                    lex_positions_rev(range, view)
                } else {
                    range.positions(view)
                };
                self.limited(r, len)
            }
        }
    }

    /// A range of positions walked in the reply's direction, after LIMIT's offset and count
    /// as Redis applies them (a negative offset selects nothing, a negative count everything).
    fn limited(&self, r: std::ops::Range<usize>, len: usize) -> Vec<usize> {
        let (offset, count) = self.limit.unwrap_or((0, -1));
        if offset < 0 || (offset > 0 && offset as u64 >= len as u64) {
            return Vec::new();
        }
        let take = if count < 0 {
            usize::MAX
        } else {
            count as usize
        };
        let offset = offset as usize;
        if self.rev {
            r.rev().skip(offset).take(take).collect()
        } else {
            r.skip(offset).take(take).collect()
        }
    }
}

/// A rank range sanitized as Redis does (negative counts from the end); `None` when empty.
fn rank_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let mut start = if start < 0 { len + start } else { start };
    let mut stop = if stop < 0 { len + stop } else { stop };
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return None;
    }
    if stop >= len {
        stop = len - 1;
    }
    Some((start as usize, stop as usize))
}

/// The positions of a reversed lexicographic range, found as Redis walks a listpack from its
/// tail: the last member not above `max`, then back while members are not below `min`.
fn lex_positions_rev(range: &LexRange, view: &[(&[u8], f64)]) -> std::ops::Range<usize> {
    // The same overlap checks as the forward walk.
    if range.positions(view).is_empty() {
        return 0..0;
    }
    let Some(last) = view.iter().rposition(|(m, _)| range.below_max(m)) else {
        return 0..0;
    };
    let len = view[..=last]
        .iter()
        .rev()
        .take_while(|(m, _)| range.above_min(m))
        .count();
    last + 1 - len..last + 1
}

/// `key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]`, checked in Redis's order.
struct Zadd {
    key: Bytes,
    flags: AddFlags,
    ch: bool,
    pairs: Vec<(f64, Bytes)>,
}

impl Zadd {
    fn parse(argv: &mut [Bytes]) -> Result<Zadd, Frame> {
        let key = std::mem::take(&mut argv[1]);
        let mut flags = AddFlags::default();
        let mut ch = false;
        let mut at = 2;
        while let Some(opt) = argv.get(at) {
            if is(opt, "nx") {
                flags.nx = true;
            } else if is(opt, "xx") {
                flags.xx = true;
            } else if is(opt, "gt") {
                flags.gt = true;
            } else if is(opt, "lt") {
                flags.lt = true;
            } else if is(opt, "ch") {
                ch = true;
            } else if is(opt, "incr") {
                flags.incr = true;
            } else {
                break;
            }
            at += 1;
        }
        let rest = &mut argv[at..];
        if rest.is_empty() || !rest.len().is_multiple_of(2) {
            return Err(syntax_error());
        }
        if flags.nx && flags.xx {
            return Err(Frame::error(
                "ERR XX and NX options at the same time are not compatible",
            ));
        }
        if (flags.nx && (flags.gt || flags.lt)) || (flags.gt && flags.lt) {
            return Err(Frame::error(
                "ERR GT, LT, and/or NX options at the same time are not compatible",
            ));
        }
        if flags.incr && rest.len() > 2 {
            return Err(Frame::error(
                "ERR INCR option supports a single increment-element pair",
            ));
        }
        let mut pairs = Vec::with_capacity(rest.len() / 2);
        for pair in rest.chunks_exact_mut(2) {
            let score = parse_score(&pair[0]).ok_or_else(not_float)?;
            pairs.push((score, std::mem::take(&mut pair[1])));
        }
        Ok(Zadd {
            key,
            flags,
            ch,
            pairs,
        })
    }
}

/// What one ZADD did, for its reply and its event.
#[derive(Default)]
struct AddOutcome {
    added: usize,
    updated: usize,
    /// The last member's score, if it was not skipped (INCR's reply).
    last_score: Option<f64>,
}

/// ZADD / ZINCRBY: applies `pairs` as Redis's `zaddGenericCommand`.
async fn add(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    flags: AddFlags,
    pairs: Vec<(f64, Bytes)>,
) -> Result<AddOutcome, Frame> {
    // One member (every ZINCRBY, most ZADDs): edited in the encoded set, no set built.
    if let [(score, member)] = &pairs[..] {
        let r = ctx
            .access
            .zadd_one(ctx.session.db, key, member, *score, flags)
            .await;
        let mut out = AddOutcome::default();
        match r.map_err(engine_error)? {
            Added::New(s) => {
                out.added = 1;
                out.last_score = Some(s);
            }
            Added::Updated(s) => {
                out.updated = 1;
                out.last_score = Some(s);
            }
            Added::Same(s) => out.last_score = Some(s),
            Added::Skipped => {}
        }
        if out.added + out.updated > 0 {
            ctx.notify(ZSET, if flags.incr { "zincr" } else { "zadd" }, key);
        }
        return Ok(out);
    }
    let r = ctx
        .access
        .update_zset(ctx.session.db, key, |z| {
            let mut out = AddOutcome::default();
            let mut changed = Vec::new();
            for (score, member) in pairs {
                match z.add(&member, score, flags) {
                    Ok(Added::New(s)) => {
                        out.added += 1;
                        out.last_score = Some(s);
                        changed.push(member);
                    }
                    Ok(Added::Updated(s)) => {
                        out.updated += 1;
                        out.last_score = Some(s);
                        changed.push(member);
                    }
                    Ok(Added::Same(s)) => out.last_score = Some(s),
                    Ok(Added::Skipped) => out.last_score = None,
                    // INCR has one member: nothing was changed before it.
                    Err(_) => return Err(SluiceError::NanScore),
                }
            }
            Ok((changed, out))
        })
        .await;
    match r {
        Ok(out) => {
            if out.added + out.updated > 0 {
                ctx.notify(ZSET, if flags.incr { "zincr" } else { "zadd" }, key);
            }
            Ok(out)
        }
        Err(e) => Err(engine_error(e)),
    }
}

/// ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member [score member ...]
async fn zadd(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(Zadd::parse(argv));
    let out = parse!(add(&mut ctx, &a.key, a.flags, a.pairs).await);
    if a.flags.incr {
        score_or_null(out.last_score)
    } else if a.ch {
        Frame::Integer((out.added + out.updated) as i64)
    } else {
        Frame::Integer(out.added as i64)
    }
}

/// ZINCRBY key increment member
async fn zincrby(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    // Redis reads ZINCRBY with ZADD's parser: an increment that is one of its option words
    // leaves no score-member pair.
    if ["nx", "xx", "gt", "lt", "ch", "incr"]
        .iter()
        .any(|o| is(&argv[2], o))
    {
        return syntax_error();
    }
    let key = std::mem::take(&mut argv[1]);
    let Some(increment) = parse_score(&argv[2]) else {
        return not_float();
    };
    let member = std::mem::take(&mut argv[3]);
    let flags = AddFlags {
        incr: true,
        ..AddFlags::default()
    };
    let out = parse!(add(&mut ctx, &key, flags, vec![(increment, member)]).await);
    score_or_null(out.last_score)
}

/// ZREM key member [member ...]
async fn zrem(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyMembers::parse(argv));
    let r = ctx
        .access
        .update_zset(ctx.session.db, &a.key, |z| {
            let removed: Vec<Bytes> = a
                .members
                .into_iter()
                .filter(|m| z.remove(m).is_some())
                .collect();
            let n = removed.len();
            Ok((removed, (n, n > 0 && z.is_empty())))
        })
        .await;
    removed_reply(&mut ctx, r, (ZSET, "zrem"), &a.key)
}

/// ZCARD key
async fn zcard(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = std::mem::take(&mut argv[1]);
    let r = ctx.access.zset_image(ctx.session.db, key).await;
    read_reply(&ctx, r, |image| Frame::Integer(zset::len(&image) as i64))
}

/// ZSCORE key member
async fn zscore(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyMember::parse(argv));
    let r = ctx.access.zset_image(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |image| {
        score_or_null(zset::score(&image, &a.member))
    })
}

/// ZMSCORE key member [member ...]
async fn zmscore(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyMembers::parse(argv));
    let r = ctx.access.zset_image(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |image| {
        let scores = if a.members.len() <= 4 {
            a.members.iter().map(|m| zset::score(&image, m)).collect()
        } else {
            let z = ZSetValue::decode(&image).unwrap_or_default();
            a.members.iter().map(|m| z.score(m)).collect::<Vec<_>>()
        };
        Frame::Array(scores.into_iter().map(score_or_null).collect())
    })
}

/// ZRANK / ZREVRANK key member
async fn rank(mut ctx: Ctx<'_>, argv: &mut [Bytes], rev: bool) -> Frame {
    let a = parse!(KeyMember::parse(argv));
    let r = ctx.access.zset_image(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |image| {
        let len = zset::len(&image);
        match zset::entries(&image)
            .map_while(Result::ok)
            .position(|(m, _)| m == &a.member[..])
        {
            Some(i) if rev => Frame::Integer((len - 1 - i) as i64),
            Some(i) => Frame::Integer(i as i64),
            None => Frame::Null,
        }
    })
}

/// ZRANK key member
async fn zrank(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    rank(ctx, argv, false).await
}

/// ZREVRANK key member
async fn zrevrank(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    rank(ctx, argv, true).await
}

/// ZCOUNT key min max
async fn zcount(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let range = parse!(parse_score_range(&argv[2], &argv[3]));
    let key = std::mem::take(&mut argv[1]);
    let r = ctx.access.zset_image(ctx.session.db, key).await;
    read_reply(&ctx, r, |image| {
        Frame::Integer(range.positions(&zset::view(&image)).len() as i64)
    })
}

/// ZLEXCOUNT key min max
async fn zlexcount(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let range = parse!(parse_lex_range(&argv[2], &argv[3]));
    let key = std::mem::take(&mut argv[1]);
    let r = ctx.access.zset_image(ctx.session.db, key).await;
    read_reply(&ctx, r, |image| {
        Frame::Integer(range.positions(&zset::view(&image)).len() as i64)
    })
}

/// ZRANGE and its older forms: `key min max [options]`.
async fn range(
    mut ctx: Ctx<'_>,
    argv: &mut [Bytes],
    kind: Option<ByKind>,
    rev: Option<bool>,
) -> Frame {
    let q = parse!(RangeQuery::parse(&argv[2..], kind, rev, false));
    let key = std::mem::take(&mut argv[1]);
    let proto = ctx.session.proto;
    let r = ctx.access.zset_image(ctx.session.db, key).await;
    read_reply(&ctx, r, |image| {
        let view = zset::view(&image);
        let picked = q.select(&view);
        entries_reply(proto, picked.into_iter().map(|i| view[i]), q.with_scores)
    })
}

/// ZRANGE key start stop [BYSCORE|BYLEX] [REV] [LIMIT offset count] [WITHSCORES]
async fn zrange(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, None, None).await
}

/// ZREVRANGE key start stop [WITHSCORES]
async fn zrevrange(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, Some(ByKind::Rank), Some(true)).await
}

/// ZRANGEBYSCORE key min max [WITHSCORES] [LIMIT offset count]
async fn zrangebyscore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, Some(ByKind::Score), Some(false)).await
}

/// ZREVRANGEBYSCORE key max min [WITHSCORES] [LIMIT offset count]
async fn zrevrangebyscore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, Some(ByKind::Score), Some(true)).await
}

/// ZRANGEBYLEX key min max [LIMIT offset count]
async fn zrangebylex(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, Some(ByKind::Lex), Some(false)).await
}

/// ZREVRANGEBYLEX key max min [LIMIT offset count]
async fn zrevrangebylex(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, Some(ByKind::Lex), Some(true)).await
}

/// ZRANGESTORE dst src min max [BYSCORE|BYLEX] [REV] [LIMIT offset count]
async fn zrangestore(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let q = parse!(RangeQuery::parse(&argv[3..], None, None, true));
    let dst = argv[1].clone();
    let r = ctx
        .access
        .store_zset(
            ctx.session.db,
            &dst,
            &argv[2..3],
            ZSetInputs::ZSetsOnly,
            |inputs| {
                let Some(Some(src)) = inputs.into_iter().next() else {
                    return ZSetValue::new();
                };
                let view = src.view();
                ZSetValue::from_entries(
                    q.select(&view)
                        .into_iter()
                        .map(|i| (Bytes::copy_from_slice(view[i].0), view[i].1)),
                )
            },
        )
        .await;
    stored_reply(&mut ctx, r, &dst, "zrangestore")
}

/// The reply and events of a STORE command.
fn stored_reply(
    ctx: &mut Ctx<'_>,
    r: Result<sluice::StoredSet, SluiceError>,
    dst: &Bytes,
    event: &'static str,
) -> Frame {
    match r {
        Ok(stored) => {
            if stored.len > 0 {
                ctx.notify(ZSET, event, dst);
            } else if stored.deleted {
                ctx.notify(GENERIC, "del", dst);
            }
            Frame::Integer(stored.len as i64)
        }
        Err(e) => engine_error(e),
    }
}

/// ZREMRANGEBY* key min max: removes the entries `select` picks out of the set's view.
async fn remove_range(
    mut ctx: Ctx<'_>,
    argv: &mut [Bytes],
    event: &'static str,
    select: impl FnOnce(&[(&[u8], f64)]) -> Vec<usize>,
) -> Frame {
    let key = std::mem::take(&mut argv[1]);
    let r = ctx
        .access
        .update_zset(ctx.session.db, &key, |z| {
            let view = z.view();
            let doomed: Vec<Bytes> = select(&view)
                .into_iter()
                .map(|i| Bytes::copy_from_slice(view[i].0))
                .collect();
            for m in &doomed {
                z.remove(m);
            }
            let n = doomed.len();
            Ok((doomed, (n, n > 0 && z.is_empty())))
        })
        .await;
    removed_reply(&mut ctx, r, (ZSET, event), &key)
}

/// ZREMRANGEBYRANK key start stop
async fn zremrangebyrank(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let start = parse!(int_arg(&argv[2]));
    let stop = parse!(int_arg(&argv[3]));
    remove_range(ctx, argv, "zremrangebyrank", |view| {
        match rank_range(start, stop, view.len()) {
            Some((start, stop)) => (start..=stop).collect(),
            None => Vec::new(),
        }
    })
    .await
}

/// ZREMRANGEBYSCORE key min max
async fn zremrangebyscore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let range = parse!(parse_score_range(&argv[2], &argv[3]));
    remove_range(ctx, argv, "zremrangebyscore", |view| {
        range.positions(view).collect()
    })
    .await
}

/// ZREMRANGEBYLEX key min max
async fn zremrangebylex(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let range = parse!(parse_lex_range(&argv[2], &argv[3]));
    remove_range(ctx, argv, "zremrangebylex", |view| {
        range.positions(view).collect()
    })
    .await
}

/// Pops up to `count` entries from the lowest (`max` false) or highest end of the sorted set
/// at `key`: `None` if the key does not exist (nothing popped), with whether it was emptied.
async fn pop(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    count: usize,
    max: bool,
) -> Result<Option<Vec<(Bytes, f64)>>, SluiceError> {
    let r = ctx
        .access
        .update_zset(ctx.session.db, key, |z| {
            if z.is_empty() {
                return Ok((Vec::new(), None));
            }
            let mut popped = Vec::with_capacity(count.min(z.len()));
            while popped.len() < count {
                match z.pop(max) {
                    Some(e) => popped.push(e),
                    None => break,
                }
            }
            let emptied = z.is_empty();
            let changed = popped.iter().map(|(m, _)| m.clone()).collect();
            Ok((changed, Some((popped, emptied))))
        })
        .await?;
    Ok(r.map(|(popped, emptied)| {
        if !popped.is_empty() {
            ctx.notify(ZSET, if max { "zpopmax" } else { "zpopmin" }, key);
        }
        if emptied {
            ctx.notify(GENERIC, "del", key);
        }
        popped
    }))
}

/// ZPOPMIN / ZPOPMAX key [count]
async fn zpop(mut ctx: Ctx<'_>, argv: &mut [Bytes], max: bool) -> Frame {
    if argv.len() > 3 {
        return syntax_error();
    }
    let count = match argv.get(2) {
        None => None,
        Some(c) => match int_arg(c) {
            Ok(n) if n >= 0 => Some(n as usize),
            _ => return Frame::error("ERR value is out of range, must be positive"),
        },
    };
    let key = std::mem::take(&mut argv[1]);
    let proto = ctx.session.proto;
    // Redis checks the type before it looks at a count of 0.
    if count == Some(0) {
        let r = ctx.access.zset_image(ctx.session.db, key).await;
        return match r {
            Err(e) => engine_error(e),
            Ok(_) => Frame::Array(Vec::new()),
        };
    }
    match pop(&mut ctx, &key, count.unwrap_or(1), max).await {
        Err(e) => engine_error(e),
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(popped)) => entries_reply(
            // Flat in RESP2, and without COUNT in RESP3 too.
            if count.is_some() { proto } else { 2 },
            popped.iter().map(|(m, s)| (&m[..], *s)),
            true,
        ),
    }
}

/// ZPOPMIN key [count]
async fn zpopmin(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    zpop(ctx, argv, false).await
}

/// ZPOPMAX key [count]
async fn zpopmax(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    zpop(ctx, argv, true).await
}

/// ZMPOP numkeys key [key ...] MIN|MAX [COUNT count]
async fn zmpop(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(MultiPop::parse(argv, 1, ["min", "max"]));
    for key in a.keys {
        match pop(&mut ctx, &key, a.count.unwrap_or(1), a.second).await {
            Err(e) => return engine_error(e),
            Ok(None) => continue,
            Ok(Some(popped)) => return multi_pop_reply(&ctx, key, &popped),
        }
    }
    Frame::NullArray
}

/// ZMPOP's and BZMPOP's reply: the key, then [member, score] pairs, in RESP2 too.
fn multi_pop_reply(ctx: &Ctx<'_>, key: Bytes, popped: &[(Bytes, f64)]) -> Frame {
    let proto = ctx.session.proto;
    Frame::Array(vec![
        Frame::Bulk(key),
        entries_reply(proto.max(3), popped.iter().map(|(m, s)| (&m[..], *s)), true),
    ])
}

/// What a blocking pop took and how it answers.
#[derive(Clone, Copy)]
struct BlockingPop {
    max: bool,
    count: usize,
    /// BZMPOP's reply, as ZMPOP's; otherwise BZPOPMIN's `[key, member, score]`.
    many: bool,
}

/// One attempt of BZPOPMIN, BZPOPMAX or BZMPOP at `key`.
fn attempt_pop<'a>(
    ctx: &'a mut Ctx<'_>,
    key: &'a Bytes,
    p: BlockingPop,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Frame>, SluiceError>> + Send + 'a>,
> {
    Box::pin(async move {
        let popped = pop(ctx, key, p.count, p.max).await?;
        Ok(popped.map(|popped| {
            if p.many {
                multi_pop_reply(ctx, key.clone(), &popped)
            } else {
                let mut reply = vec![Frame::Bulk(key.clone())];
                for (m, s) in popped {
                    reply.extend([Frame::Bulk(m), Frame::Double(s)]);
                }
                Frame::Array(reply)
            }
        }))
    })
}

/// BZPOPMIN / BZPOPMAX key [key ...] timeout
async fn bzpop(ctx: Ctx<'_>, argv: &mut [Bytes], max: bool) -> Frame {
    let (keys, timeout) = parse!(keys_then_timeout(argv));
    let p = BlockingPop {
        max,
        count: 1,
        many: false,
    };
    pop_or_block(ctx, keys, timeout, BlockKind::ZSet, p, attempt_pop).await
}

/// BZPOPMIN key [key ...] timeout
async fn bzpopmin(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    bzpop(ctx, argv, false).await
}

/// BZPOPMAX key [key ...] timeout
async fn bzpopmax(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    bzpop(ctx, argv, true).await
}

/// BZMPOP timeout numkeys key [key ...] MIN|MAX [COUNT count]
async fn bzmpop(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(MultiPop::parse(argv, 2, ["min", "max"]));
    let timeout = parse!(parse_timeout(&argv[1]));
    let p = BlockingPop {
        max: a.second,
        count: a.count.unwrap_or(1),
        many: true,
    };
    pop_or_block(ctx, &a.keys, timeout, BlockKind::ZSet, p, attempt_pop).await
}

/// ZRANDMEMBER key [count [WITHSCORES]]
async fn zrandmember(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let count = match argv.get(2) {
        None => None,
        Some(c) => match int_arg(c) {
            Ok(i64::MIN) => {
                return Frame::error(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                )
            }
            Ok(n) => Some(n),
            Err(e) => return e,
        },
    };
    let with_scores = match argv.get(3) {
        None => false,
        Some(opt) if argv.len() == 4 && is(opt, "withscores") => true,
        Some(_) => return syntax_error(),
    };
    if with_scores && count.is_some_and(|c| !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&c)) {
        return Frame::error("ERR value is out of range");
    }
    let key = std::mem::take(&mut argv[1]);
    let proto = ctx.session.proto;
    let r = ctx.access.zset_image(ctx.session.db, key).await;
    let image = match r {
        Ok(i) => i,
        Err(e) => return engine_error(e),
    };
    let mut rng = rand::thread_rng();
    let Some(count) = count else {
        let view = image.as_deref().map(zset::view).unwrap_or_default();
        if view.is_empty() {
            return Frame::Null;
        }
        return Frame::Bulk(Bytes::copy_from_slice(view[rng.gen_range(0..view.len())].0));
    };
    let Some(image) = image else {
        return Frame::Array(Vec::new());
    };
    let view = zset::view(&image);
    if count == 0 || view.is_empty() {
        return Frame::Array(Vec::new());
    }
    let picked: Vec<usize> = if count < 0 {
        let longest = view.iter().map(|(m, _)| m.len()).max().unwrap_or(0) as u64;
        if count.unsigned_abs() > MAX_RANDOM_PICKS
            || count.unsigned_abs().saturating_mul(longest + 32) > MAX_RANDOM_REPLY
        {
            return Frame::error(format!(
                "ERR ZRANDMEMBER count is over Sluice's limit of {MAX_RANDOM_PICKS} picks with repeats, or {MAX_RANDOM_REPLY} bytes of reply (a reply must fit in memory)"
            ));
        }
        (0..count.unsigned_abs())
            .map(|_| rng.gen_range(0..view.len()))
            .collect()
    } else if count as usize >= view.len() {
        // The whole set, walked from its tail as Redis's `zuiNext` walks it.
        (0..view.len()).rev().collect()
    } else {
        rand::seq::index::sample(&mut rng, view.len(), count as usize).into_vec()
    };
    entries_reply(proto, picked.into_iter().map(|i| view[i]), with_scores)
}

/// ZSCAN key cursor [MATCH pattern] [COUNT count]
///
/// A sorted set Redis keeps as a listpack comes whole in one page with cursor 0, in order, as
/// in Redis; a larger one is paged as SSCAN pages a set (see `sets::sscan`). Scores are
/// strings here, in RESP3 too, as Redis answers them.
async fn zscan(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(CollectionScan::parse(argv));
    let r = ctx.access.zset_image(ctx.session.db, a.key).await;
    let keep = |m: &[u8]| a.pattern.as_ref().is_none_or(|p| matches_pattern(p, m));
    let page = |entries: &mut dyn Iterator<Item = (&[u8], f64)>| {
        Frame::Array(
            entries
                .filter(|(m, _)| keep(m))
                .flat_map(|(m, s)| {
                    [
                        Frame::Bulk(Bytes::copy_from_slice(m)),
                        Frame::bulk(format_score(s)),
                    ]
                })
                .collect(),
        )
    };
    read_reply(&ctx, r, |image| {
        let view = zset::view(&image);
        if zset::fits_listpack(view.iter().map(|(m, _)| *m)) {
            return Frame::Array(vec![Frame::bulk("0"), page(&mut view.iter().copied())]);
        }
        let mut ahead: Vec<(u64, (&[u8], f64))> = view
            .iter()
            .map(|e| (scan_position(e.0), *e))
            .filter(|(p, _)| *p >= a.cursor)
            .collect();
        ahead.sort_unstable_by_key(|(p, _)| *p);
        let mut end = a.count.min(ahead.len());
        while end > 0 && end < ahead.len() && ahead[end].0 == ahead[end - 1].0 {
            end += 1;
        }
        let next = ahead.get(end).map_or(0, |(p, _)| *p);
        Frame::Array(vec![
            Frame::bulk(next.to_string()),
            page(&mut ahead[..end].iter().map(|(_, e)| *e)),
        ])
    })
}

/// The options of ZUNION / ZINTER / ZDIFF / ZINTERCARD and their STORE forms.
struct AlgebraOptions {
    weights: Vec<f64>,
    aggregate: Aggregate,
    with_scores: bool,
    limit: usize,
}

/// Which command of the family is parsing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AlgebraCommand {
    /// ZUNION / ZINTER / ZDIFF: WITHSCORES allowed.
    Read,
    /// The STORE forms.
    Store,
    /// ZINTERCARD: only LIMIT.
    Card,
}

/// The keys of an algebra command: `numkeys key [key ...]` at `at`, checked as Redis does.
fn algebra_keys(argv: &[Bytes], at: usize, name: &str) -> Result<std::ops::Range<usize>, Frame> {
    let n = int_arg(&argv[at])?;
    if n < 1 {
        return Err(Frame::error(format!(
            "ERR at least 1 input key is needed for '{name}' command"
        )));
    }
    if n as u64 > (argv.len() - at - 1) as u64 {
        return Err(syntax_error());
    }
    Ok(at + 1..at + 1 + n as usize)
}

impl AlgebraOptions {
    /// The options after the keys, as Redis 7.0's `zunionInterDiffGenericCommand` reads them.
    fn parse(
        args: &[Bytes],
        keys: usize,
        algebra: ZSetAlgebra,
        command: AlgebraCommand,
    ) -> Result<AlgebraOptions, Frame> {
        let mut o = AlgebraOptions {
            weights: Vec::new(),
            aggregate: Aggregate::Sum,
            with_scores: false,
            limit: 0,
        };
        let scored = algebra != ZSetAlgebra::Difference && command != AlgebraCommand::Card;
        let mut j = 0;
        while j < args.len() {
            let left = args.len() - j;
            let opt = &args[j];
            if scored && left > keys && is(opt, "weights") {
                o.weights = args[j + 1..j + 1 + keys]
                    .iter()
                    .map(|w| parse_score(w))
                    .collect::<Option<Vec<f64>>>()
                    .ok_or_else(|| Frame::error("ERR weight value is not a float"))?;
                j += 1 + keys;
            } else if scored && left >= 2 && is(opt, "aggregate") {
                let a = &args[j + 1];
                o.aggregate = if is(a, "sum") {
                    Aggregate::Sum
                } else if is(a, "min") {
                    Aggregate::Min
                } else if is(a, "max") {
                    Aggregate::Max
                } else {
                    return Err(syntax_error());
                };
                j += 2;
            } else if command == AlgebraCommand::Read && is(opt, "withscores") {
                o.with_scores = true;
                j += 1;
            } else if command == AlgebraCommand::Card && left >= 2 && is(opt, "limit") {
                o.limit = match int_arg(&args[j + 1]) {
                    Ok(n) if n >= 0 => n as usize,
                    _ => return Err(Frame::error("ERR LIMIT can't be negative")),
                };
                j += 2;
            } else {
                return Err(syntax_error());
            }
        }
        Ok(o)
    }
}

/// Reads the inputs of an algebra command, then parses its options: Redis looks at the keys'
/// types before the options, so a WRONGTYPE key wins over a bad option.
async fn algebra_inputs(
    ctx: &mut Ctx<'_>,
    argv: &mut [Bytes],
    keys: std::ops::Range<usize>,
    algebra: ZSetAlgebra,
    command: AlgebraCommand,
) -> Result<(Vec<Option<ZSetValue>>, AlgebraOptions), Frame> {
    let n = keys.len();
    let options = AlgebraOptions::parse(&argv[keys.end..], n, algebra, command);
    let inputs = ctx
        .access
        .zset_inputs(ctx.session.db, &mut argv[keys], ZSetInputs::AllowSets)
        .await
        .map_err(engine_error)?;
    Ok((inputs, options?))
}

/// ZUNION / ZINTER / ZDIFF numkeys key [key ...] [options]
async fn algebra(mut ctx: Ctx<'_>, argv: &mut [Bytes], algebra: ZSetAlgebra, name: &str) -> Frame {
    let keys = parse!(algebra_keys(argv, 1, name));
    let (inputs, o) =
        parse!(algebra_inputs(&mut ctx, argv, keys, algebra, AlgebraCommand::Read).await);
    let result = algebra.apply(&inputs, &o.weights, o.aggregate);
    entries_reply(
        ctx.session.proto,
        result.iter().map(|(m, s)| (&m[..], s)),
        o.with_scores,
    )
}

/// ZUNION numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
async fn zunion(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra(ctx, argv, ZSetAlgebra::Union, "zunion").await
}

/// ZINTER numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX] [WITHSCORES]
async fn zinter(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra(ctx, argv, ZSetAlgebra::Intersection, "zinter").await
}

/// ZDIFF numkeys key [key ...] [WITHSCORES]
async fn zdiff(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra(ctx, argv, ZSetAlgebra::Difference, "zdiff").await
}

/// ZINTERCARD numkeys key [key ...] [LIMIT limit]
async fn zintercard(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let keys = parse!(algebra_keys(argv, 1, "zintercard"));
    let (inputs, o) = parse!(
        algebra_inputs(
            &mut ctx,
            argv,
            keys,
            ZSetAlgebra::Intersection,
            AlgebraCommand::Card
        )
        .await
    );
    let n = ZSetAlgebra::Intersection
        .apply(&inputs, &[], Aggregate::Sum)
        .len();
    Frame::Integer(if o.limit > 0 { n.min(o.limit) } else { n } as i64)
}

/// ZUNIONSTORE / ZINTERSTORE / ZDIFFSTORE destination numkeys key [key ...] [options]
async fn algebra_store(
    mut ctx: Ctx<'_>,
    argv: &mut [Bytes],
    algebra: ZSetAlgebra,
    name: &'static str,
) -> Frame {
    let keys = parse!(algebra_keys(argv, 2, name));
    let options = AlgebraOptions::parse(
        &argv[keys.end..],
        keys.len(),
        algebra,
        AlgebraCommand::Store,
    );
    let o = match options {
        Ok(o) => o,
        Err(e) => {
            // The keys' types are looked at first, as in Redis.
            let r = ctx
                .access
                .zset_inputs(ctx.session.db, &mut argv[keys], ZSetInputs::AllowSets)
                .await;
            return match r {
                Err(e) => engine_error(e),
                Ok(_) => e,
            };
        }
    };
    let dst = argv[1].clone();
    let r = ctx
        .access
        .store_zset(
            ctx.session.db,
            &dst,
            &argv[keys],
            ZSetInputs::AllowSets,
            |inputs| algebra.apply(&inputs, &o.weights, o.aggregate),
        )
        .await;
    stored_reply(&mut ctx, r, &dst, name)
}

/// ZUNIONSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
async fn zunionstore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra_store(ctx, argv, ZSetAlgebra::Union, "zunionstore").await
}

/// ZINTERSTORE destination numkeys key [key ...] [WEIGHTS weight ...] [AGGREGATE SUM|MIN|MAX]
async fn zinterstore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra_store(ctx, argv, ZSetAlgebra::Intersection, "zinterstore").await
}

/// ZDIFFSTORE destination numkeys key [key ...]
async fn zdiffstore(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    algebra_store(ctx, argv, ZSetAlgebra::Difference, "zdiffstore").await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn rank_ranges_are_sanitized_as_redis_does() {
        assert_eq!(rank_range(0, -1, 3), Some((0, 2)));
        assert_eq!(rank_range(-10, 1, 3), Some((0, 1)));
        assert_eq!(rank_range(2, 100, 3), Some((2, 2)));
        assert_eq!(rank_range(3, 5, 3), None);
        assert_eq!(rank_range(2, 1, 3), None);
        assert_eq!(rank_range(0, -1, 0), None);
    }

    #[test]
    fn range_options_parse_in_redis_order() {
        let args = |v: &[&str]| v.iter().map(|s| b(s)).collect::<Vec<_>>();
        let q =
            RangeQuery::parse(&args(&["5", "(1", "byscore", "rev"]), None, None, false).unwrap();
        assert!(q.rev);
        let By::Score(r) = q.by else { panic!() };
        assert_eq!(r.min.value, 1.0);
        assert!(r.min.exclusive);
        assert!(
            RangeQuery::parse(&args(&["0", "1", "limit", "0", "1"]), None, None, false).is_err()
        );
        assert!(RangeQuery::parse(&args(&["0", "1", "withscores"]), None, None, true).is_err());
        assert!(
            RangeQuery::parse(&args(&["-", "+", "bylex", "withscores"]), None, None, false)
                .is_err()
        );
        assert!(
            RangeQuery::parse(&args(&["a", "+"]), Some(ByKind::Lex), Some(false), false).is_err()
        );
    }
}
