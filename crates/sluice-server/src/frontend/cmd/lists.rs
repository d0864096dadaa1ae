//! List commands, Redis 7.0 exact. A list lives on the built-in keyspace, where each element
//! is a row of its own keyed by its position (see `sluice::Access::update_list`), so a push,
//! a pop or an LSET stores one row whatever the list's length.
//!
//! The blocking forms (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP) take a place in the queues
//! of their keys (`cmd::blocking`) before they look, and leave the wait to the connection,
//! which runs them again when a key changes: a push from any connection, EXEC or script.

use bytes::Bytes;
use sluice::model::list;
use sluice::SluiceError;

use super::args::{parse, Args, KeyArg, MultiPop};
use super::blocking::{keys_then_timeout, parse_timeout, pop_or_block, BlockKind, BlockingTurn};
use super::spec::{cmdspec, Ctx, KeyPositions, Spec};
use super::util::{engine_error, int_arg, is, read_reply, syntax_error, wrong_arity};
use crate::frontend::Frame;
use crate::state::keyspace_events::{GENERIC, LIST};

const WRITE_FAST: &[&str] = &["@write", "@list", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@list", "@slow"];
const READ_FAST: &[&str] = &["@read", "@list", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@list", "@slow"];
const BLOCKING: &[&str] = &["@write", "@list", "@slow", "@blocking"];

const FIRST: KeyPositions = KeyPositions::FIRST;
const TWO: KeyPositions = KeyPositions::FIRST_TWO;

/// The list commands.
pub static COMMANDS: &[Spec] = &[
    cmdspec!("lpush", -3, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, lpush,
        "Prepends one or more elements to a list. Creates the key if it doesn't exist."),
    cmdspec!("rpush", -3, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, rpush,
        "Appends one or more elements to a list. Creates the key if it doesn't exist."),
    cmdspec!("lpushx", -3, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, lpushx,
        "Prepends one or more elements to a list only when the list exists."),
    cmdspec!("rpushx", -3, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, rpushx,
        "Appends an element to a list only when the list exists."),
    cmdspec!("lpop", -2, &["write", "fast"], FIRST, WRITE_FAST, lpop,
        "Returns the first elements in a list after removing it. Deletes the list if the last element was popped."),
    cmdspec!("rpop", -2, &["write", "fast"], FIRST, WRITE_FAST, rpop,
        "Returns and removes the last elements of a list. Deletes the list if the last element was popped."),
    cmdspec!("llen", 2, &["readonly", "fast"], FIRST, READ_FAST, llen,
        "Returns the length of a list."),
    cmdspec!("lindex", 3, &["readonly"], FIRST, READ_SLOW, lindex,
        "Returns an element from a list by its index."),
    cmdspec!("lrange", 4, &["readonly"], FIRST, READ_SLOW, lrange,
        "Returns a range of elements from a list."),
    cmdspec!("lpos", -3, &["readonly"], FIRST, READ_SLOW, lpos,
        "Returns the index of matching elements in a list."),
    cmdspec!("lset", 4, &["write", "denyoom"], FIRST, WRITE_SLOW, lset,
        "Sets the value of an element in a list by its index."),
    cmdspec!("linsert", 5, &["write", "denyoom"], FIRST, WRITE_SLOW, linsert,
        "Inserts an element before or after another element in a list."),
    cmdspec!("lrem", 4, &["write"], FIRST, WRITE_SLOW, lrem,
        "Removes elements from a list. Deletes the list if the last element was removed."),
    cmdspec!("ltrim", 4, &["write"], FIRST, WRITE_SLOW, ltrim,
        "Removes elements from both ends a list. Deletes the list if all elements were trimmed."),
    cmdspec!("lmove", 5, &["write", "denyoom"], TWO, WRITE_SLOW, lmove,
        "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved."),
    cmdspec!("rpoplpush", 3, &["write", "denyoom"], TWO, WRITE_SLOW, rpoplpush,
        "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped."),
    cmdspec!("lmpop", -4, &["write", "movablekeys"], KeyPositions::COUNTED, WRITE_SLOW, lmpop,
        "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped."),
    cmdspec!("blpop", -3, &["write", "noscript", "blocking"], KeyPositions::ALL_BUT_LAST, BLOCKING, blpop,
        "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    cmdspec!("brpop", -3, &["write", "noscript", "blocking"], KeyPositions::ALL_BUT_LAST, BLOCKING, brpop,
        "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
    cmdspec!("blmove", 6, &["write", "denyoom", "noscript", "blocking"], TWO, BLOCKING, blmove,
        "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved."),
    cmdspec!("brpoplpush", 4, &["write", "denyoom", "noscript", "blocking"], TWO, BLOCKING, brpoplpush,
        "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped."),
    cmdspec!("blmpop", -5, &["write", "blocking", "movablekeys"], KeyPositions::COUNTED_AT_SECOND, BLOCKING, blmpop,
        "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped."),
];

/// `key element [element ...]` (LPUSH, RPUSH, LPUSHX, RPUSHX).
struct KeyElements {
    key: Bytes,
    elements: Vec<Bytes>,
}

impl KeyElements {
    fn parse(argv: &mut [Bytes]) -> Result<KeyElements, Frame> {
        let mut args = Args::new(argv);
        let key = args.next_bytes()?;
        let mut elements = Vec::with_capacity(args.remaining());
        while !args.is_empty() {
            elements.push(args.next_bytes()?);
        }
        Ok(KeyElements { key, elements })
    }
}

/// `LEFT` or `RIGHT`, as Redis's `getListPositionFromObjectOrReply`: true for the head.
fn side(arg: &[u8]) -> Result<bool, Frame> {
    if is(arg, "left") {
        Ok(true)
    } else if is(arg, "right") {
        Ok(false)
    } else {
        Err(syntax_error())
    }
}

/// The event a push to the head (`front`) or the tail names.
fn push_event(front: bool) -> &'static str {
    if front {
        "lpush"
    } else {
        "rpush"
    }
}

/// The event a pop from the head (`front`) or the tail names.
fn pop_event(front: bool) -> &'static str {
    if front {
        "lpop"
    } else {
        "rpop"
    }
}

/// LPUSH / RPUSH / LPUSHX / RPUSHX: the length after the push; `only_existing` (the X forms)
/// pushes nothing onto a missing key and answers 0.
async fn push(mut ctx: Ctx<'_>, argv: &mut [Bytes], front: bool, only_existing: bool) -> Frame {
    let a = parse!(KeyElements::parse(argv));
    let r = ctx
        .access
        .push_list(ctx.session.db, &a.key, a.elements, front, only_existing)
        .await;
    match r {
        Ok(0) => Frame::Integer(0),
        Ok(len) => {
            ctx.notify(LIST, push_event(front), &a.key);
            Frame::Integer(len as i64)
        }
        Err(e) => engine_error(e),
    }
}

/// LPUSH key element [element ...]
async fn lpush(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    push(ctx, argv, true, false).await
}

/// RPUSH key element [element ...]
async fn rpush(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    push(ctx, argv, false, false).await
}

/// LPUSHX key element [element ...]
async fn lpushx(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    push(ctx, argv, true, true).await
}

/// RPUSHX key element [element ...]
async fn rpushx(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    push(ctx, argv, false, true).await
}

/// Pops up to `count` elements from the head (`front`) or tail of `key`, in the order they
/// leave it; `None` if the key does not exist. Stages the pop's events (and `del` if it
/// emptied the list).
async fn pop_elements(
    ctx: &mut Ctx<'_>,
    key: &Bytes,
    front: bool,
    count: usize,
) -> Result<Option<Vec<Bytes>>, SluiceError> {
    let r = ctx
        .access
        .pop_list(ctx.session.db, key, front, count)
        .await?;
    Ok(r.map(|(popped, emptied)| {
        if !popped.is_empty() {
            ctx.notify(LIST, pop_event(front), key);
        }
        if emptied {
            ctx.notify(GENERIC, "del", key);
        }
        popped
    }))
}

/// LPOP / RPOP key [count]: without a count one element (or nil), with one an array (nil
/// array for a missing key, empty for a count of 0).
async fn pop(mut ctx: Ctx<'_>, argv: &mut [Bytes], front: bool) -> Frame {
    if argv.len() > 3 {
        return wrong_arity(if front { "lpop" } else { "rpop" });
    }
    let count = match argv.get(2) {
        None => None,
        Some(c) => match int_arg(c) {
            Ok(n) if n >= 0 => Some(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => return Frame::error("ERR value is out of range, must be positive"),
        },
    };
    let key = std::mem::take(&mut argv[1]);
    if count == Some(0) {
        // Redis answers an empty array for an existing list, having looked the key up.
        let r = ctx.access.list_image(ctx.session.db, key).await;
        return match r {
            Ok(None) => Frame::NullArray,
            Ok(Some(_)) => Frame::Array(Vec::new()),
            Err(e) => engine_error(e),
        };
    }
    match pop_elements(&mut ctx, &key, front, count.unwrap_or(1)).await {
        Err(e) => engine_error(e),
        Ok(None) if count.is_some() => Frame::NullArray,
        Ok(None) => Frame::Null,
        Ok(Some(popped)) if count.is_some() => {
            Frame::Array(popped.into_iter().map(Frame::Bulk).collect())
        }
        Ok(Some(popped)) => Frame::bulk_or_null(popped.into_iter().next()),
    }
}

/// LPOP key [count]
async fn lpop(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    pop(ctx, argv, true).await
}

/// RPOP key [count]
async fn rpop(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    pop(ctx, argv, false).await
}

/// LLEN key
async fn llen(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(KeyArg::parse(argv));
    let r = ctx.access.list_image(ctx.session.db, a.key).await;
    read_reply(&ctx, r, |image| Frame::Integer(list::len(&image) as i64))
}

/// An index from either end (`-1` is the last) as an offset from the head, if it is in a list
/// of `len` elements.
fn index_in(index: i64, len: usize) -> Option<usize> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let at = if index < 0 { len + index } else { index };
    (0..len).contains(&at).then_some(at as usize)
}

/// LINDEX key index: the key is looked up before the index is parsed, as Redis does.
async fn lindex(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = std::mem::take(&mut argv[1]);
    let r = ctx.access.list_image(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::Null,
        Ok(Some(image)) => {
            let index = parse!(int_arg(&argv[2]));
            let element = index_in(index, list::len(&image)).and_then(|at| {
                list::elements(&image)
                    .nth(at)
                    .and_then(Result::ok)
                    .map(|(_, e)| image.slice_ref(e))
            });
            Frame::bulk_or_null(element)
        }
    }
}

/// The inclusive range `start..=stop` of LRANGE and LTRIM over a list of `len` elements, as
/// Redis clamps it; `None` when it is empty.
fn clamp_range(start: i64, stop: i64, len: usize) -> Option<std::ops::Range<usize>> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some(start as usize..(stop.min(len - 1) + 1) as usize)
}

/// LRANGE key start stop
async fn lrange(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let start = parse!(int_arg(&argv[2]));
    let stop = parse!(int_arg(&argv[3]));
    let key = std::mem::take(&mut argv[1]);
    let r = ctx.access.list_image(ctx.session.db, key).await;
    read_reply(&ctx, r, |image| {
        let Some(range) = clamp_range(start, stop, list::len(&image)) else {
            return Frame::Array(Vec::new());
        };
        Frame::Array(
            list::elements(&image)
                .skip(range.start)
                .take(range.len())
                .filter_map(Result::ok)
                .map(|(_, e)| Frame::Bulk(image.slice_ref(e)))
                .collect(),
        )
    })
}

/// LPOS's options, checked as Redis's `lposCommand` does.
struct Lpos {
    key: Bytes,
    element: Bytes,
    /// Which match to start from: 1 the first, -1 the first from the tail.
    rank: i64,
    /// `COUNT`: how many matches to answer (0: all), as an array; `None`: the first, alone.
    count: Option<usize>,
    /// `MAXLEN`: how many elements to compare at most (0: all).
    maxlen: usize,
}

impl Lpos {
    fn parse(argv: &mut [Bytes]) -> Result<Lpos, Frame> {
        let mut args = Args::new(argv);
        let (key, element) = (args.next_bytes()?, args.next_bytes()?);
        let mut lpos = Lpos {
            key,
            element,
            rank: 1,
            count: None,
            maxlen: 0,
        };
        let non_negative = |arg: &[u8], error: &str| match int_arg(arg) {
            Ok(n) if n >= 0 => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
            _ => Err(Frame::error(error)),
        };
        while !args.is_empty() {
            let option = args.next_bytes()?;
            if args.is_empty() {
                return Err(syntax_error());
            }
            let value = args.next_bytes()?;
            if is(&option, "rank") {
                lpos.rank = match int_arg(&value)? {
                    0 => return Err(Frame::error(
                        "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list",
                    )),
                    n => n,
                };
            } else if is(&option, "count") {
                lpos.count = Some(non_negative(&value, "ERR COUNT can't be negative")?);
            } else if is(&option, "maxlen") {
                lpos.maxlen = non_negative(&value, "ERR MAXLEN can't be negative")?;
            } else {
                return Err(syntax_error());
            }
        }
        Ok(lpos)
    }

    /// The indexes of the matches this asks for, in the order they are found.
    fn matches(&self, elements: &[&[u8]]) -> Vec<i64> {
        let len = elements.len();
        // Redis 7.0 negates the rank unchecked: -2^63 stays negative there, so its first
        // match (from the tail) already counts.
        let skip = if self.rank == i64::MIN {
            0
        } else {
            self.rank.unsigned_abs()
        };
        let wanted = match self.count {
            None => 1,
            // Redis 7.0's `matches - rank + 1` overflows for that rank: COUNT never stops it.
            Some(_) if self.rank == i64::MIN => usize::MAX,
            Some(0) => usize::MAX,
            Some(n) => n,
        };
        let compared = if self.maxlen == 0 {
            len
        } else {
            self.maxlen.min(len)
        };
        let mut found = Vec::new();
        let mut seen: u64 = 0;
        for step in 0..compared {
            let at = if self.rank < 0 { len - 1 - step } else { step };
            if elements[at] == &self.element[..] {
                seen += 1;
                if seen >= skip {
                    found.push(at as i64);
                    if found.len() >= wanted {
                        break;
                    }
                }
            }
        }
        found
    }
}

/// LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]
async fn lpos(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(Lpos::parse(argv));
    let r = ctx.access.list_image(ctx.session.db, a.key.clone()).await;
    read_reply(&ctx, r, |image| {
        let found = a.matches(&list::view(&image));
        match a.count {
            Some(_) => Frame::Array(found.into_iter().map(Frame::Integer).collect()),
            None => found.first().map_or(Frame::Null, |i| Frame::Integer(*i)),
        }
    })
}

/// What LSET found.
enum Lset {
    NoKey,
    BadIndex(Frame),
    OutOfRange,
    Set,
}

/// LSET key index element: the key is looked up before the index is parsed, as Redis does.
async fn lset(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = std::mem::take(&mut argv[1]);
    let index = int_arg(&argv[2]);
    let element = std::mem::take(&mut argv[3]);
    let r = ctx
        .access
        .update_list(ctx.session.db, &key, |list| {
            if list.is_empty() {
                return Ok(Lset::NoKey);
            }
            let index = match index {
                Ok(i) => i,
                Err(reply) => return Ok(Lset::BadIndex(reply)),
            };
            match index_in(index, list.len()) {
                Some(at) if list.set(at, element) => Ok(Lset::Set),
                _ => Ok(Lset::OutOfRange),
            }
        })
        .await;
    match r {
        Ok(Lset::NoKey) => Frame::error("ERR no such key"),
        Ok(Lset::BadIndex(reply)) => reply,
        Ok(Lset::OutOfRange) => Frame::error("ERR index out of range"),
        Ok(Lset::Set) => {
            ctx.notify(LIST, "lset", &key);
            Frame::ok()
        }
        Err(e) => engine_error(e),
    }
}

/// LINSERT key BEFORE|AFTER pivot element: the length after, -1 if no element is the pivot,
/// 0 if the key does not exist.
async fn linsert(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let after = if is(&argv[2], "after") {
        true
    } else if is(&argv[2], "before") {
        false
    } else {
        return syntax_error();
    };
    let key = std::mem::take(&mut argv[1]);
    let (pivot, element) = (std::mem::take(&mut argv[3]), std::mem::take(&mut argv[4]));
    let r = ctx
        .access
        .update_list(ctx.session.db, &key, |list| {
            if list.is_empty() {
                return Ok(0);
            }
            Ok(list
                .insert(&pivot, element, after)
                .map_or(-1, |len| len as i64))
        })
        .await;
    match r {
        Ok(len) => {
            if len > 0 {
                ctx.notify(LIST, "linsert", &key);
            }
            Frame::Integer(len)
        }
        Err(e) => engine_error(e),
    }
}

/// LREM key count element
async fn lrem(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let count = parse!(int_arg(&argv[2]));
    let key = std::mem::take(&mut argv[1]);
    let element = std::mem::take(&mut argv[3]);
    let r = ctx
        .access
        .update_list(ctx.session.db, &key, |list| {
            let removed = list.remove(&element, count);
            Ok((removed, removed > 0 && list.is_empty()))
        })
        .await;
    super::util::removed_reply(&mut ctx, r, (LIST, "lrem"), &key)
}

/// LTRIM key start stop: `ltrim` is announced for any existing list, trimmed or not, as Redis.
async fn ltrim(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let start = parse!(int_arg(&argv[2]));
    let stop = parse!(int_arg(&argv[3]));
    let key = std::mem::take(&mut argv[1]);
    let r = ctx
        .access
        .trim_list(ctx.session.db, &key, |len| {
            clamp_range(start, stop, len).unwrap_or(0..0)
        })
        .await;
    match r {
        Ok(None) => Frame::ok(),
        Ok(Some(emptied)) => {
            // Redis counts the LTRIM of an existing list as a write even if it kept every
            // element: WATCH sees it.
            ctx.access.touch_watchers(ctx.session.db, &key);
            ctx.notify(LIST, "ltrim", &key);
            if emptied {
                ctx.notify(GENERIC, "del", &key);
            }
            Frame::ok()
        }
        Err(e) => engine_error(e),
    }
}

/// Moves one element from `src` to `dst` and stages the events Redis's `lmoveGenericCommand`
/// sends, in its order: the push on `dst`, the pop on `src`, `del` if `src` was emptied.
async fn move_element(
    ctx: &mut Ctx<'_>,
    src: &Bytes,
    dst: &Bytes,
    from_front: bool,
    to_front: bool,
) -> Result<Option<Bytes>, SluiceError> {
    let moved = ctx
        .access
        .lmove(ctx.session.db, src, dst, from_front, to_front)
        .await?;
    Ok(moved.map(|m| {
        ctx.notify(LIST, push_event(to_front), dst);
        ctx.notify(LIST, pop_event(from_front), src);
        if m.src_deleted {
            ctx.notify(GENERIC, "del", src);
        }
        m.element
    }))
}

/// LMOVE source destination LEFT|RIGHT LEFT|RIGHT
async fn lmove(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let from_front = parse!(side(&argv[3]));
    let to_front = parse!(side(&argv[4]));
    let (src, dst) = (argv[1].clone(), argv[2].clone());
    match move_element(&mut ctx, &src, &dst, from_front, to_front).await {
        Ok(element) => Frame::bulk_or_null(element),
        Err(e) => engine_error(e),
    }
}

/// RPOPLPUSH source destination
async fn rpoplpush(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let (src, dst) = (argv[1].clone(), argv[2].clone());
    match move_element(&mut ctx, &src, &dst, false, true).await {
        Ok(element) => Frame::bulk_or_null(element),
        Err(e) => engine_error(e),
    }
}

/// LMPOP's and BLMPOP's reply: the key, then the popped elements.
fn multi_pop_reply(key: Bytes, popped: Vec<Bytes>) -> Frame {
    Frame::Array(vec![
        Frame::Bulk(key),
        Frame::Array(popped.into_iter().map(Frame::Bulk).collect()),
    ])
}

/// LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]
async fn lmpop(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(MultiPop::parse(argv, 1, ["left", "right"]));
    for key in a.keys {
        match pop_elements(&mut ctx, &key, !a.second, a.count.unwrap_or(1)).await {
            Err(e) => return engine_error(e),
            Ok(None) => continue,
            Ok(Some(popped)) => return multi_pop_reply(key, popped),
        }
    }
    Frame::NullArray
}

/// What a blocking pop took and how it answers.
#[derive(Clone, Copy)]
struct BlockingPop {
    front: bool,
    count: usize,
    /// BLMPOP's `[key, [elements]]`; otherwise BLPOP's `[key, element]`.
    many: bool,
}

/// One attempt of BLPOP, BRPOP or BLMPOP at `key`.
fn attempt_pop<'a>(
    ctx: &'a mut Ctx<'_>,
    key: &'a Bytes,
    p: BlockingPop,
) -> std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Frame>, SluiceError>> + Send + 'a>,
> {
    Box::pin(async move {
        let popped = pop_elements(ctx, key, p.front, p.count).await?;
        Ok(popped.map(|popped| {
            if p.many {
                multi_pop_reply(key.clone(), popped)
            } else {
                let mut reply = vec![Frame::Bulk(key.clone())];
                reply.extend(popped.into_iter().map(Frame::Bulk));
                Frame::Array(reply)
            }
        }))
    })
}

/// BLPOP / BRPOP key [key ...] timeout
async fn bpop(ctx: Ctx<'_>, argv: &mut [Bytes], front: bool) -> Frame {
    let (keys, timeout) = parse!(keys_then_timeout(argv));
    let p = BlockingPop {
        front,
        count: 1,
        many: false,
    };
    pop_or_block(ctx, keys, timeout, BlockKind::List, p, attempt_pop).await
}

/// BLPOP key [key ...] timeout
async fn blpop(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    bpop(ctx, argv, true).await
}

/// BRPOP key [key ...] timeout
async fn brpop(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    bpop(ctx, argv, false).await
}

/// BLMPOP timeout numkeys key [key ...] LEFT|RIGHT [COUNT count]
async fn blmpop(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = parse!(MultiPop::parse(argv, 2, ["left", "right"]));
    let timeout = parse!(parse_timeout(&argv[1]));
    let p = BlockingPop {
        front: !a.second,
        count: a.count.unwrap_or(1),
        many: true,
    };
    pop_or_block(ctx, &a.keys, timeout, BlockKind::List, p, attempt_pop).await
}

/// BLMOVE / BRPOPLPUSH: LMOVE once `src` holds a list, blocking on `src` until then. Woken
/// for a `src` that became another type it keeps waiting; a `dst` of another type answers
/// WRONGTYPE (as Redis's `serveClientBlockedOnList`), leaving `src` as it was.
async fn blocking_move(
    mut ctx: Ctx<'_>,
    src: Bytes,
    dst: Bytes,
    from_front: bool,
    to_front: bool,
    timeout: Option<std::time::Duration>,
) -> Frame {
    let keys = std::slice::from_ref(&src);
    let turn = BlockingTurn::begin(&mut ctx, keys, timeout, BlockKind::List);
    if !turn.keys_to_try(&ctx, keys).is_empty() && turn.may_take(&ctx, &src) {
        match move_element(&mut ctx, &src, &dst, from_front, to_front).await {
            Ok(Some(element)) => return turn.leave(&mut ctx, Frame::Bulk(element)),
            Ok(None) => {}
            Err(SluiceError::WrongType) if turn.is_retry() => {
                // Which key is of another type? Only `src` keeps the client waiting.
                match ctx.access.list_image(ctx.session.db, src.clone()).await {
                    Err(SluiceError::WrongType) => {}
                    _ => return turn.leave(&mut ctx, engine_error(SluiceError::WrongType)),
                }
            }
            Err(e) if turn.keeps_waiting(&e) => {}
            Err(e) => return turn.leave(&mut ctx, engine_error(e)),
        }
    }
    // Inside MULTI or a script BLMOVE answers a plain nil, not a nil array.
    turn.wait_or(&mut ctx, Frame::Null)
}

/// BLMOVE source destination LEFT|RIGHT LEFT|RIGHT timeout
async fn blmove(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let from_front = parse!(side(&argv[3]));
    let to_front = parse!(side(&argv[4]));
    let timeout = parse!(parse_timeout(&argv[5]));
    let (src, dst) = (argv[1].clone(), argv[2].clone());
    blocking_move(ctx, src, dst, from_front, to_front, timeout).await
}

/// BRPOPLPUSH source destination timeout
async fn brpoplpush(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let timeout = parse!(parse_timeout(&argv[3]));
    let (src, dst) = (argv[1].clone(), argv[2].clone());
    blocking_move(ctx, src, dst, false, true, timeout).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_clamp_as_redis() {
        assert_eq!(clamp_range(0, -1, 3), Some(0..3));
        assert_eq!(clamp_range(-100, 100, 3), Some(0..3));
        assert_eq!(clamp_range(2, 1, 3), None);
        assert_eq!(clamp_range(3, 5, 3), None);
        assert_eq!(clamp_range(-1, -1, 3), Some(2..3));
        assert_eq!(clamp_range(i64::MIN, i64::MAX, 3), Some(0..3));
        assert_eq!(clamp_range(0, 0, 0), None);
    }

    #[test]
    fn indexes_count_from_either_end() {
        assert_eq!(index_in(0, 3), Some(0));
        assert_eq!(index_in(-1, 3), Some(2));
        assert_eq!(index_in(-4, 3), None);
        assert_eq!(index_in(3, 3), None);
        assert_eq!(index_in(i64::MIN, 3), None);
    }
}
