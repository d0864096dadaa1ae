//! Stream commands, Redis 7.0 exact: XADD (with MAXLEN / MINID trimming, exact or `~`),
//! XLEN, XRANGE, XREVRANGE, XDEL, XTRIM, XSETID and XREAD (with BLOCK). A stream lives on
//! the built-in keyspace, where its metadata and each entry are rows of their own (see
//! `sluice::Access::update_stream`), so XADD stores two rows whatever the stream's length.
//!
//! XREAD BLOCK takes a place in the queues of its keys (`cmd::blocking`) before it looks, and
//! leaves the wait to the connection, which runs it again when a key changes. Unlike a pop, a
//! read takes nothing: every client blocked on a stream is woken by an XADD to it. Its `$` IDs
//! are resolved once, at the first look (the argument is rewritten to the ID it stood for), so
//! a retry reads what was added since it blocked, as Redis does.

use bytes::Bytes;
use sluice::model::stream::{self, RequestedId, StreamId, StreamValue, Trim, TrimStrategy};
use sluice::SluiceError;

use super::blocking::{BlockKind, BlockingTurn};
use super::spec::{cmdspec, Ctx, KeyPositions, Spec};
use super::util::{engine_error, int_arg, is, syntax_error, wrong_arity};
use crate::frontend::Frame;
use crate::state::keyspace_events::STREAM;

const WRITE_FAST: &[&str] = &["@write", "@stream", "@fast"];
const WRITE_SLOW: &[&str] = &["@write", "@stream", "@slow"];
const READ_FAST: &[&str] = &["@read", "@stream", "@fast"];
const READ_SLOW: &[&str] = &["@read", "@stream", "@slow"];
const BLOCKING: &[&str] = &["@read", "@stream", "@slow", "@blocking"];

const FIRST: KeyPositions = KeyPositions::FIRST;

/// The stream commands.
pub static COMMANDS: &[Spec] = &[
    cmdspec!("xadd", -5, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, xadd,
        "Appends a new message to a stream. Creates the key if it doesn't exist."),
    cmdspec!("xlen", 2, &["readonly", "fast"], FIRST, READ_FAST, xlen,
        "Return the number of messages in a stream."),
    cmdspec!("xrange", -4, &["readonly"], FIRST, READ_SLOW, xrange,
        "Returns the messages from a stream within a range of IDs."),
    cmdspec!("xrevrange", -4, &["readonly"], FIRST, READ_SLOW, xrevrange,
        "Returns the messages from a stream within a range of IDs in reverse order."),
    cmdspec!("xdel", -3, &["write", "fast"], FIRST, WRITE_FAST, xdel,
        "Returns the number of messages after removing them from a stream."),
    cmdspec!("xtrim", -4, &["write"], FIRST, WRITE_SLOW, xtrim,
        "Deletes messages from the beginning of a stream."),
    cmdspec!("xsetid", -3, &["write", "denyoom", "fast"], FIRST, WRITE_FAST, xsetid,
        "An internal command for replicating stream values."),
    cmdspec!("xread", -4, &["readonly", "blocking", "movablekeys"], KeyPositions::AFTER_STREAMS, BLOCKING, xread,
        "Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise."),
];

const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

pub(super) fn invalid_id() -> Frame {
    Frame::error(INVALID_ID)
}

/// A number as Redis's `string2ull` reads one: a canonical decimal (a negative one refused),
/// else what C's `strtoull` accepts of the whole string (leading white space, a sign, leading
/// zeros; a `-` wraps around), within 64 bits.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if let Some(rest) = s.strip_prefix(b"-") {
        // A canonical negative 64-bit integer is refused; any other `-` goes to strtoull.
        let canonical = matches!(rest.first(), Some(b'1'..=b'9'))
            && rest.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(s)
                .ok()
                .and_then(|t| t.parse::<i64>().ok())
                .is_some();
        if canonical {
            return None;
        }
    }
    let start = s
        .iter()
        .position(|c| !matches!(c, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r'))?;
    let s = &s[start..];
    let (negative, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut n: u64 = 0;
    for d in digits {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if negative { n.wrapping_neg() } else { n })
}

/// An ID argument as Redis's `streamGenericParseIDOrReply` reads it: `ms-seq`, or `ms` with
/// `missing_seq`; `-` and `+` the smallest and largest unless `strict`; with `auto_seq`,
/// `ms-*` (answered as `seq_given` false). The argument is read as a C string (up to a NUL).
pub(super) fn parse_id(
    arg: &[u8],
    strict: bool,
    missing_seq: u64,
    auto_seq: bool,
) -> Result<(StreamId, bool), Frame> {
    if arg.len() > 127 {
        return Err(invalid_id());
    }
    let arg = super::util::c_str(arg);
    match arg {
        b"-" | b"+" if strict => return Err(invalid_id()),
        b"-" => return Ok((StreamId::MIN, true)),
        b"+" => return Ok((StreamId::MAX, true)),
        _ => {}
    }
    let (ms, seq) = match arg.iter().position(|&c| c == b'-') {
        Some(dash) => (&arg[..dash], Some(&arg[dash + 1..])),
        None => (arg, None),
    };
    let ms = parse_u64(ms).ok_or_else(invalid_id)?;
    match seq {
        None => Ok((StreamId::new(ms, missing_seq), true)),
        Some(b"*") if auto_seq => Ok((StreamId::new(ms, 0), false)),
        Some(seq) => Ok((
            StreamId::new(ms, parse_u64(seq).ok_or_else(invalid_id)?),
            true,
        )),
    }
}

/// XADD's and XTRIM's options, parsed as Redis 7.0's `streamParseAddOrTrimArgsOrReply`.
struct AddOrTrim {
    trim: Option<Trim>,
    nomkstream: bool,
    /// XADD's ID: `None` for `*`; else the ID and whether its sequence was given.
    id: Option<(StreamId, bool)>,
    /// Where the ID is (XADD's fields follow it).
    at: usize,
}

impl AddOrTrim {
    fn parse(argv: &[Bytes], xadd: bool) -> Result<AddOrTrim, Frame> {
        let mut strategy = None;
        let mut approx = false;
        let mut limit: Option<i64> = None;
        let mut nomkstream = false;
        let mut id = None;
        let mut i = 2;
        while i < argv.len() {
            let more = argv.len() - 1 - i;
            let opt = &argv[i][..];
            let is_trim = is(opt, "maxlen") || is(opt, "minid");
            if xadd && opt == b"*" {
                break;
            } else if is_trim && more > 0 {
                if strategy.is_some() {
                    return Err(Frame::error(
                        "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                    ));
                }
                approx = false;
                let next = &argv[i + 1][..];
                if more >= 2 && next == b"~" {
                    approx = true;
                    i += 1;
                } else if more >= 2 && next == b"=" {
                    i += 1;
                }
                let arg = &argv[i + 1];
                strategy = Some(if is(opt, "maxlen") {
                    let max = int_arg(arg)?;
                    if max < 0 {
                        return Err(Frame::error("ERR The MAXLEN argument must be >= 0."));
                    }
                    TrimStrategy::MaxLen(max as u64)
                } else {
                    TrimStrategy::MinId(parse_id(arg, true, 0, false)?.0)
                });
                i += 1;
            } else if is(opt, "limit") && more > 0 {
                let n = int_arg(&argv[i + 1])?;
                if n < 0 {
                    return Err(Frame::error("ERR The LIMIT argument must be >= 0."));
                }
                limit = Some(n);
                i += 1;
            } else if xadd && is(opt, "nomkstream") {
                nomkstream = true;
            } else if xadd {
                id = Some(parse_id(opt, true, 0, true)?);
                break;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        if limit.is_some_and(|n| n != 0) && strategy.is_none() {
            return Err(Frame::error(
                "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
            ));
        }
        if !xadd && strategy.is_none() {
            return Err(Frame::error(
                "ERR syntax error, XTRIM must be called with a trimming strategy",
            ));
        }
        if limit.is_some() && !approx {
            return Err(Frame::error(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
        // Redis's default: 100 × stream-node-max-entries for `~`, no limit when exact.
        let limit = limit.unwrap_or(if approx {
            100 * stream::NODE_MAX_ENTRIES as i64
        } else {
            0
        });
        Ok(AddOrTrim {
            trim: strategy.map(|strategy| Trim {
                strategy,
                approx,
                limit: limit as u64,
            }),
            nomkstream,
            id,
            at: i,
        })
    }
}

/// XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value
/// [field value ...]
async fn xadd(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = match AddOrTrim::parse(argv, true) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let fields = argv.get(a.at + 1..).unwrap_or_default();
    if fields.len() < 2 || fields.len() % 2 == 1 {
        return wrong_arity("xadd");
    }
    let requested = match a.id {
        None => RequestedId::Auto,
        Some((id, true)) if id == StreamId::MIN => {
            return Frame::error("ERR The ID specified in XADD must be greater than 0-0")
        }
        Some((id, true)) => RequestedId::Exact(id),
        Some((id, false)) => RequestedId::AutoSeq(id.ms),
    };
    let pairs: Vec<(Bytes, Bytes)> = fields
        .chunks_exact(2)
        .map(|p| (p[0].clone(), p[1].clone()))
        .collect();
    let key = argv[1].clone();
    let now = ctx.access.now_ms();
    let r = ctx
        .access
        .add_to_stream(
            ctx.session.db,
            &key,
            !a.nomkstream,
            requested,
            now,
            &pairs,
            a.trim,
        )
        .await;
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::Null,
        Ok(Some(Err(line))) => Frame::error(line),
        Ok(Some(Ok((id, trimmed)))) => {
            ctx.notify(STREAM, "xadd", &key);
            if trimmed > 0 {
                ctx.notify(STREAM, "xtrim", &key);
            }
            Frame::bulk(id.to_string())
        }
    }
}

/// XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]
async fn xtrim(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = match AddOrTrim::parse(argv, false) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let Some(trim) = a.trim else {
        return syntax_error();
    };
    let key = argv[1].clone();
    let r = ctx
        .access
        .update_stream(ctx.session.db, &key, false, |s| Ok(s.trim(trim)))
        .await;
    match r {
        Err(e) => engine_error(e),
        Ok(removed) => {
            let removed = removed.unwrap_or(0);
            if removed > 0 {
                ctx.notify(STREAM, "xtrim", &key);
            }
            Frame::Integer(removed as i64)
        }
    }
}

/// XDEL key id [id ...]: the key is looked up before the IDs are parsed, as Redis does.
async fn xdel(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = argv[1].clone();
    let ids = &argv[2..];
    let r = ctx
        .access
        .update_stream(ctx.session.db, &key, false, |s| {
            let mut parsed = Vec::with_capacity(ids.len());
            for arg in ids {
                match parse_id(arg, true, 0, false) {
                    Ok((id, _)) => parsed.push(id),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok(Ok(s.delete_many(&parsed)))
        })
        .await;
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::Integer(0),
        Ok(Some(Err(e))) => e,
        Ok(Some(Ok(deleted))) => {
            if deleted > 0 {
                ctx.notify(STREAM, "xdel", &key);
            }
            Frame::Integer(deleted as i64)
        }
    }
}

/// XSETID key last-id [ENTRIESADDED entries-added] [MAXDELETEDID max-deleted-id]
async fn xsetid(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let (id, _) = match parse_id(&argv[2], true, 0, false) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut entries_added = None;
    let mut max_deleted = None;
    let mut i = 3;
    while i < argv.len() {
        let more = argv.len() - 1 - i;
        if is(&argv[i], "entriesadded") && more > 0 {
            match int_arg(&argv[i + 1]) {
                Ok(n) if n >= 0 => entries_added = Some(n as u64),
                Ok(_) => return Frame::error("ERR entries_added must be positive"),
                Err(e) => return e,
            }
        } else if is(&argv[i], "maxdeletedid") && more > 0 {
            let (max, _) = match parse_id(&argv[i + 1], true, 0, false) {
                Ok(id) => id,
                Err(e) => return e,
            };
            if id < max {
                return Frame::error(
                    "ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
                );
            }
            max_deleted = Some(max);
        } else {
            return syntax_error();
        }
        i += 2;
    }
    let key = argv[1].clone();
    let r = ctx
        .access
        .update_stream(ctx.session.db, &key, false, |s| {
            Ok(set_id(s, id, entries_added, max_deleted))
        })
        .await;
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::error("ERR no such key"),
        Ok(Some(Err(line))) => Frame::error(line),
        Ok(Some(Ok(()))) => {
            ctx.notify(STREAM, "xsetid", &key);
            Frame::ok()
        }
    }
}

/// XSETID's checks and change, as Redis 7.0's `xsetidCommand`.
fn set_id(
    s: &mut StreamValue,
    id: StreamId,
    entries_added: Option<u64>,
    max_deleted: Option<StreamId>,
) -> Result<(), &'static str> {
    // Redis 7.0 does not compare with the current largest deleted ID (7.2 does).
    if !s.is_empty() {
        if s.last_live_id().is_some_and(|last| id < last) {
            return Err(
                "ERR The ID specified in XSETID is smaller than the target stream top item",
            );
        }
        if entries_added.is_some_and(|n| n < s.len()) {
            return Err(
                "ERR The entries_added specified in XSETID is smaller than the target stream length",
            );
        }
    }
    s.set_id(
        id,
        entries_added,
        max_deleted.filter(|m| *m != StreamId::MIN),
    );
    Ok(())
}

/// XLEN key
async fn xlen(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let key = std::mem::take(&mut argv[1]);
    let r = ctx.access.stream_image(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::Integer(0),
        Ok(Some(image)) => match stream::meta(&image) {
            Ok(meta) => Frame::Integer(meta.length as i64),
            Err(e) => engine_error(e.into()),
        },
    }
}

/// One entry as Redis answers it: its ID, then its fields and values in one flat array.
pub(crate) fn entry_frame(image: &Bytes, (id, pairs): stream::EntryView<'_>) -> Frame {
    let mut flat = Vec::with_capacity(pairs.len() * 2);
    for (f, v) in pairs {
        flat.push(Frame::Bulk(image.slice_ref(f)));
        flat.push(Frame::Bulk(image.slice_ref(v)));
    }
    Frame::Array(vec![Frame::bulk(id.to_string()), Frame::Array(flat)])
}

/// Entries from `start` to `end` of an encoded stream, as Redis answers them.
fn entries_frame(
    image: &Bytes,
    start: StreamId,
    end: StreamId,
    rev: bool,
    count: Option<usize>,
) -> Result<Frame, SluiceError> {
    let entries = stream::range(image, start, end, rev, count)?;
    Ok(Frame::Array(
        entries.into_iter().map(|e| entry_frame(image, e)).collect(),
    ))
}

/// An XRANGE bound: `(` makes it exclusive (the next or previous ID).
pub(super) fn range_bound(arg: &[u8], start: bool) -> Result<StreamId, Frame> {
    let missing_seq = if start { 0 } else { u64::MAX };
    match arg.strip_prefix(b"(") {
        Some(rest) if arg.len() > 1 => {
            let (id, _) = parse_id(rest, true, missing_seq, false)?;
            let moved = if start { id.next() } else { id.prev() };
            moved.ok_or_else(|| {
                Frame::error(if start {
                    "ERR invalid start ID for the interval"
                } else {
                    "ERR invalid end ID for the interval"
                })
            })
        }
        _ => Ok(parse_id(arg, false, missing_seq, false)?.0),
    }
}

/// XRANGE / XREVRANGE key a b [COUNT count]: the bounds and the count are checked before
/// the key is looked up, as Redis does.
async fn range(mut ctx: Ctx<'_>, argv: &mut [Bytes], rev: bool) -> Frame {
    let (start_arg, end_arg) = if rev {
        (&argv[3], &argv[2])
    } else {
        (&argv[2], &argv[3])
    };
    let start = match range_bound(start_arg, true) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let end = match range_bound(end_arg, false) {
        Ok(id) => id,
        Err(e) => return e,
    };
    let mut count = None;
    let mut i = 4;
    while i < argv.len() {
        if is(&argv[i], "count") && i + 1 < argv.len() {
            count = match int_arg(&argv[i + 1]) {
                Ok(n) => Some(usize::try_from(n.max(0)).unwrap_or(usize::MAX)),
                Err(e) => return e,
            };
            i += 2;
        } else {
            return syntax_error();
        }
    }
    let key = std::mem::take(&mut argv[1]);
    let r = ctx.access.stream_image(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    match r {
        Err(e) => engine_error(e),
        Ok(None) => Frame::Array(Vec::new()),
        Ok(Some(_)) if count == Some(0) => Frame::NullArray,
        Ok(Some(image)) => {
            entries_frame(&image, start, end, rev, count).unwrap_or_else(engine_error)
        }
    }
}

/// XRANGE key start end [COUNT count]
async fn xrange(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, false).await
}

/// XREVRANGE key end start [COUNT count]
async fn xrevrange(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    range(ctx, argv, true).await
}

/// XREAD's and XREADGROUP's options, parsed as Redis 7.0's `xreadCommand` does.
pub(super) struct Xread {
    /// `COUNT` per stream (0: all).
    pub(super) count: usize,
    /// `BLOCK` in milliseconds (0: for ever).
    pub(super) block: Option<u64>,
    /// Where the keys start; as many IDs follow them.
    pub(super) streams_at: usize,
    pub(super) streams: usize,
    /// XREADGROUP's `GROUP group consumer`.
    pub(super) group: Option<(Bytes, Bytes)>,
    /// XREADGROUP's `NOACK`.
    pub(super) noack: bool,
}

impl Xread {
    pub(super) fn parse(argv: &[Bytes], in_script: bool, xreadgroup: bool) -> Result<Xread, Frame> {
        let mut count = 0;
        let mut block = None;
        let mut streams = None;
        let mut group = None;
        let mut noack = false;
        let mut i = 1;
        while i < argv.len() {
            let more = argv.len() - 1 - i;
            let opt = &argv[i][..];
            if is(opt, "block") && more > 0 {
                if in_script {
                    return Err(Frame::error(format!(
                        "ERR {} command is not allowed with BLOCK option from scripts",
                        String::from_utf8_lossy(&argv[0])
                    )));
                }
                let ms = int_arg(&argv[i + 1])
                    .map_err(|_| Frame::error("ERR timeout is not an integer or out of range"))?;
                if ms < 0 {
                    return Err(Frame::error("ERR timeout is negative"));
                }
                block = Some(ms as u64);
                i += 1;
            } else if is(opt, "count") && more > 0 {
                count = usize::try_from(int_arg(&argv[i + 1])?.max(0)).unwrap_or(usize::MAX);
                i += 1;
            } else if is(opt, "streams") && more > 0 {
                let n = argv.len() - i - 1;
                if !n.is_multiple_of(2) {
                    // XREADGROUP answers XREAD's line too, as Redis 7.0 does.
                    return Err(Frame::error("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
                }
                streams = Some((i + 1, n / 2));
                break;
            } else if is(opt, "group") && more >= 2 {
                if !xreadgroup {
                    return Err(Frame::error("ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead."));
                }
                group = Some((argv[i + 1].clone(), argv[i + 2].clone()));
                i += 2;
            } else if is(opt, "noack") {
                if !xreadgroup {
                    return Err(Frame::error("ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead."));
                }
                noack = true;
            } else {
                return Err(syntax_error());
            }
            i += 1;
        }
        let (streams_at, streams) = streams.ok_or_else(syntax_error)?;
        if xreadgroup && group.is_none() {
            return Err(Frame::error("ERR Missing GROUP option for XREADGROUP"));
        }
        Ok(Xread {
            count,
            block,
            streams_at,
            streams,
            group,
            noack,
        })
    }
}

/// XREAD [COUNT count] [BLOCK milliseconds] STREAMS key [key ...] id [id ...]
async fn xread(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let a = match Xread::parse(argv, ctx.session.in_script, false) {
        Ok(a) => a,
        Err(e) => return e,
    };
    let keys: Vec<Bytes> = argv[a.streams_at..a.streams_at + a.streams].to_vec();
    let ids_at = a.streams_at + a.streams;
    let turn = a.block.map(|ms| {
        let timeout = (ms > 0).then(|| std::time::Duration::from_millis(ms));
        BlockingTurn::begin(&mut ctx, &keys, timeout, BlockKind::Stream)
    });
    let retry = turn.as_ref().is_some_and(BlockingTurn::is_retry);
    // First look: each key is looked up (its type checked), then its ID read; `$` becomes the
    // stream's last ID, written back into the arguments for the retries.
    let mut images = Vec::with_capacity(keys.len());
    let mut ids = Vec::with_capacity(keys.len());
    for (n, key) in keys.iter().enumerate() {
        let image = if retry {
            None
        } else {
            let r = ctx.access.stream_image(ctx.session.db, key.clone()).await;
            ctx.count_read(r.as_ref().map(Option::is_some));
            match r {
                Ok(image) => image,
                Err(e) => return leave(turn, &mut ctx, engine_error(e)),
            }
        };
        let arg = &argv[ids_at + n];
        let id = if &arg[..] == b"$" {
            let last = match &image {
                Some(image) => match stream::meta(image) {
                    Ok(meta) => meta.last_id,
                    Err(e) => return leave(turn, &mut ctx, engine_error(e.into())),
                },
                None => StreamId::MIN,
            };
            argv[ids_at + n] = Bytes::from(last.to_string());
            last
        } else if &arg[..] == b">" {
            return leave(turn, &mut ctx, Frame::error("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
        } else {
            match parse_id(arg, true, 0, false) {
                Ok((id, _)) => id,
                Err(e) => return leave(turn, &mut ctx, e),
            }
        };
        images.push(image);
        ids.push(id);
    }
    if !retry {
        let mut served = Vec::new();
        for ((key, image), id) in keys.iter().zip(&images).zip(&ids) {
            let Some(image) = image else { continue };
            let entries = match stream::range(
                image,
                id.next().unwrap_or(StreamId::MAX),
                StreamId::MAX,
                false,
                (a.count > 0).then_some(a.count),
            ) {
                Ok(entries) => entries,
                Err(e) => return leave(turn, &mut ctx, engine_error(e.into())),
            };
            // Only a stream with an entry after the ID answers (none after the largest ID).
            if entries.is_empty() || *id == StreamId::MAX {
                continue;
            }
            let frame = Frame::Array(entries.into_iter().map(|e| entry_frame(image, e)).collect());
            served.push((key.clone(), frame));
        }
        if !served.is_empty() {
            let reply = streams_reply(ctx.session.proto, served);
            return leave(turn, &mut ctx, reply);
        }
        return match turn {
            None => Frame::NullArray,
            Some(turn) => turn.wait(&mut ctx),
        };
    }
    // A retry: woken by a change to one of its keys; served from the first, in the order they
    // became ready, whose last ID passed the one asked for. A reply names that key only.
    let Some(turn) = turn else {
        return Frame::NullArray;
    };
    for key in turn.keys_to_try(&ctx, &keys) {
        let Some(n) = keys.iter().position(|k| *k == key) else {
            continue;
        };
        let r = ctx.access.stream_image(ctx.session.db, key.clone()).await;
        let image = match r {
            Ok(Some(image)) => image,
            Ok(None) | Err(SluiceError::WrongType) | Err(SluiceError::Busy(_)) => continue,
            Err(e) => return turn.leave(&mut ctx, engine_error(e)),
        };
        let last = match stream::meta(&image) {
            Ok(meta) => meta.last_id,
            Err(e) => return turn.leave(&mut ctx, engine_error(e.into())),
        };
        if last <= ids[n] {
            continue;
        }
        // Redis serves a woken XREAD at most 1000 entries when no COUNT was given.
        let count = if a.count > 0 { a.count } else { 1000 };
        let entries = match stream::range(
            &image,
            ids[n].next().unwrap_or(StreamId::MAX),
            StreamId::MAX,
            false,
            Some(count),
        ) {
            Ok(entries) => entries,
            Err(e) => return turn.leave(&mut ctx, engine_error(e.into())),
        };
        let frame = Frame::Array(
            entries
                .into_iter()
                .map(|e| entry_frame(&image, e))
                .collect(),
        );
        let reply = streams_reply(ctx.session.proto, vec![(key, frame)]);
        return turn.leave(&mut ctx, reply);
    }
    turn.wait(&mut ctx)
}

/// Ends an XREAD with `reply`, leaving the queues if it had blocked.
pub(super) fn leave(turn: Option<BlockingTurn>, ctx: &mut Ctx<'_>, reply: Frame) -> Frame {
    match turn {
        Some(turn) => turn.leave(ctx, reply),
        None => reply,
    }
}

/// XREAD's reply: each stream's key and entries, a map in RESP3 and an array of pairs in
/// RESP2.
pub(super) fn streams_reply(proto: u8, served: Vec<(Bytes, Frame)>) -> Frame {
    if proto >= 3 {
        Frame::Map(
            served
                .into_iter()
                .map(|(k, f)| (Frame::Bulk(k), f))
                .collect(),
        )
    } else {
        Frame::Array(
            served
                .into_iter()
                .map(|(k, f)| Frame::Array(vec![Frame::Bulk(k), f]))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_as_redis_s_string2ull_reads_them() {
        let id = |s: &str| {
            parse_id(s.as_bytes(), true, 0, false)
                .ok()
                .map(|(id, _)| id.to_string())
        };
        assert_eq!(id("5"), Some("5-0".into()));
        assert_eq!(id(" 6"), Some("6-0".into()));
        assert_eq!(id("8-+1"), Some("8-1".into()));
        assert_eq!(id("007-1"), Some("7-1".into()));
        assert_eq!(id("1--05"), Some(format!("1-{}", u64::MAX - 4)));
        assert_eq!(id("1--5"), None);
        assert_eq!(id("-5"), None);
        assert_eq!(id("7-"), None);
        assert_eq!(id("5 "), None);
        assert_eq!(id("18446744073709551616"), None);
        assert_eq!(id("-"), None);
        assert_eq!(
            parse_id(b"-", false, 0, false).ok().map(|(id, _)| id),
            Some(StreamId::MIN)
        );
        assert_eq!(
            parse_id(b"3-*", true, 0, true).ok(),
            Some((StreamId::new(3, 0), false))
        );
    }
}
