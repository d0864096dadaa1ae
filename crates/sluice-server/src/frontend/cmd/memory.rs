//! MEMORY: USAGE (an estimate of what Redis 7.0 would use for the key), HELP, and the
//! sub-commands that are cheap to answer (DOCTOR, STATS, MALLOC-STATS, PURGE).
//!
//! MEMORY USAGE follows Redis's `objectComputeSize` with jemalloc's size classes, over the
//! encoding Redis would choose: for a string set whole (SET, MSET...) and a small hash it is
//! Redis's number exactly; for a string grown in place (APPEND, SETRANGE: Redis keeps spare
//! room) and a large hash (a hash table, which Redis samples in its own order) it is close.
//! Sluice's own memory for the key (its cache copy, a write-back buffer entry) differs again:
//! the figure is for tools that compare keys with one another.

use bytes::Bytes;

use super::args::{parse, Args};
use super::spec::{boxed, Ctx, Spec};
use super::util::{engine_error, int_arg, is, syntax_error};
use crate::frontend::Frame;
use sluice::Kind;

/// The memory commands.
pub static COMMANDS: &[Spec] = &[Spec {
    name: "memory",
    arity: -2,
    categories: &["@slow"],
    summary: "A container for memory diagnostics commands.",
    subcommands: &[
        ("doctor", 2),
        ("malloc-stats", 2),
        ("purge", 2),
        ("stats", 2),
        ("usage", -3),
        ("help", 2),
    ],
    handler: boxed!(memory),
    ..Spec::DEFAULT
}];

/// MEMORY USAGE key [SAMPLES count]
struct Usage {
    key: Bytes,
    /// Hash fields to sample; 0: all of them.
    samples: usize,
}

impl Usage {
    /// Parses as Redis's `memoryCommand`: options in pairs, SAMPLES a non-negative integer.
    fn parse(argv: &mut [Bytes]) -> Result<Usage, Frame> {
        let mut args = Args::new(argv);
        args.next_bytes()?; // USAGE
        let key = args.next_bytes()?;
        let mut samples = 5;
        while !args.is_empty() {
            let option = args.next_bytes()?;
            if !is(&option, "samples") || args.is_empty() {
                return Err(syntax_error());
            }
            samples = match int_arg(&args.next_bytes()?)? {
                n if n < 0 => return Err(syntax_error()),
                n => usize::try_from(n).unwrap_or(usize::MAX),
            };
        }
        Ok(Usage { key, samples })
    }
}

/// MEMORY DOCTOR | MALLOC-STATS | PURGE | STATS | USAGE | HELP
async fn memory(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let sub = argv[1].to_ascii_lowercase();
    match &sub[..] {
        b"usage" => {
            let usage = parse!(Usage::parse(argv));
            match ctx.access.get_entry(ctx.session.db, usage.key.clone()).await {
                Ok(None) => Frame::Null,
                Ok(Some(entry)) => {
                    let value = match entry.kind {
                        Kind::String => string_size(&entry.value),
                        Kind::Hash => hash_size(&entry.value, usage.samples),
                        Kind::Set => set_size(&entry.value, usage.samples),
                        Kind::ZSet => zset_size(&entry.value, usage.samples),
                        Kind::List => list_size(&entry.value, usage.samples),
                        Kind::Stream => stream_size(&entry.value),
                    };
                    Frame::Integer((value + key_size(usage.key.len()) + DICT_ENTRY) as i64)
                }
                Err(e) => engine_error(e),
            }
        }
        b"doctor" => Frame::Verbatim(Bytes::from_static(
            b"Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.",
        )),
        // Sluice runs on mimalloc, for which Redis has no report.
        b"malloc-stats" => Frame::bulk("Stats not supported for the current allocator"),
        b"purge" => Frame::ok(),
        b"stats" => {
            let rss = crate::state::rss_bytes() as i64;
            let cache = ctx.shared.sluice.cache_stats();
            Frame::Map(vec![
                (Frame::bulk("peak.allocated"), Frame::Integer(rss)),
                (Frame::bulk("total.allocated"), Frame::Integer(rss)),
                (Frame::bulk("startup.allocated"), Frame::Integer(0)),
                (
                    Frame::bulk("clients.normal"),
                    Frame::Integer(ctx.shared.clients.count() as i64),
                ),
                (
                    Frame::bulk("dataset.bytes"),
                    Frame::Integer(cache.bytes as i64),
                ),
            ])
        }
        _ => Frame::Array(
            [
                "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DOCTOR",
                "    Return memory problems reports.",
                "MALLOC-STATS",
                "    Return internal statistics report from the memory allocator.",
                "PURGE",
                "    Attempt to purge dirty pages for reclamation by the allocator.",
                "STATS",
                "    Return information about the memory usage of the server.",
                "USAGE <key> [SAMPLES <count>]",
                "    Return memory in bytes used by <key> and its value. Nested values are",
                "    sampled up to <count> times (default: 5, 0 means sample all).",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|s| Frame::Simple(s.to_string()))
            .collect(),
        ),
    }
}

/// `sizeof(dictEntry)`: what each key costs in its database's table.
const DICT_ENTRY: usize = 24;
/// `sizeof(robj)`.
const ROBJ: usize = 16;
/// `sizeof(dict)` in Redis 7.0.
const DICT: usize = 56;
/// The longest string Redis stores in one allocation with its object (`EMBSTR`).
const EMBSTR_MAX: usize = 44;

/// The jemalloc size class an allocation of `size` bytes gets: 8, then steps of 16 up to
/// 128, then four classes per doubling.
fn size_class(size: usize) -> usize {
    match size {
        0..=8 => 8,
        9..=128 => size.div_ceil(16) * 16,
        _ => {
            let group = usize::BITS - (size - 1).leading_zeros() - 1; // 2^group < size
            let step = 1usize << (group - 2);
            size.div_ceil(step) * step
        }
    }
}

/// The header of an sds string of `len` bytes (`sdsReqType`; type 5 only where Redis uses it).
fn sds_header(len: usize, type5: bool) -> usize {
    match len {
        0..=31 if type5 => 1,
        0..=255 => 3,
        256..=65_535 => 5,
        _ if len as u64 <= u32::MAX as u64 => 9,
        _ => 17,
    }
}

/// A key's sds copy in the database (`sdsdup`, which uses the 1-byte header below 32).
fn key_size(len: usize) -> usize {
    size_class(sds_header(len, true) + len + 1)
}

/// A string value: an integer in the object, a short string in the object's allocation, a
/// longer one in its own sds.
fn string_size(value: &[u8]) -> usize {
    if value.len() <= 20 && sluice::numeric::parse_strict_i64(value).is_some() {
        ROBJ
    } else if value.len() <= EMBSTR_MAX {
        size_class(ROBJ + 3 + value.len() + 1)
    } else {
        ROBJ + size_class(sds_header(value.len(), false) + value.len() + 1)
    }
}

/// The bytes one element takes in a listpack: its encoding and data, then its back length.
fn listpack_entry(element: &[u8]) -> usize {
    sluice::model::listpack::entry_size(element)
}

/// A hash table of `items`: its slot array, plus the bytes `per_item` says each entry takes,
/// measured on the first `samples` items (0: all) and scaled to all of them, as Redis samples.
fn sampled_table<T>(items: &[T], samples: usize, per_item: impl Fn(&T) -> usize) -> usize {
    let sampled = if samples == 0 {
        items.len()
    } else {
        samples.min(items.len())
    };
    let measured: usize = items[..sampled].iter().map(per_item).sum();
    let entries = (measured as f64 / sampled.max(1) as f64 * items.len() as f64) as usize;
    8 * items.len().next_power_of_two() + entries
}

/// An sds string's allocation.
fn sds(s: &[u8]) -> usize {
    size_class(sds_header(s.len(), false) + s.len() + 1)
}

/// A hash: a listpack while Redis keeps it one (128 fields of 64 bytes at most), otherwise
/// a hash table whose entries are sampled (`samples` 0: all).
fn hash_size(image: &[u8], samples: usize) -> usize {
    let pairs: Vec<(&[u8], &[u8])> = sluice::model::hash::pairs(image)
        .filter_map(Result::ok)
        .collect();
    if sluice::model::hash::fits_listpack(&pairs) {
        let bytes: usize = pairs
            .iter()
            .map(|(f, v)| listpack_entry(f) + listpack_entry(v))
            .sum();
        return ROBJ + size_class(6 + bytes + 1);
    }
    ROBJ + DICT
        + sampled_table(&pairs, samples, |(f, v)| {
            sds(f) + sds(v) + size_class(DICT_ENTRY)
        })
}

/// A sorted set: a listpack of member and score (as Redis's `d2string` prints it) while Redis
/// keeps it one (128 members of 64 bytes at most); otherwise a hash table of members plus a
/// skiplist, its nodes sampled as a hash's entries (a node's level taken as Redis's average,
/// 4/3 of a 16-byte level).
fn zset_size(image: &[u8], samples: usize) -> usize {
    let entries = sluice::model::zset::view(image);
    if sluice::model::zset::fits_listpack(entries.iter().map(|(m, _)| *m)) {
        let bytes: usize = entries
            .iter()
            .map(|(m, s)| {
                listpack_entry(m)
                    + listpack_entry(crate::frontend::frame::format_score(*s).as_bytes())
            })
            .sum();
        return ROBJ + size_class(6 + bytes + 1);
    }
    let nodes = sampled_table(&entries, samples, |(m, _)| {
        sds(m) + size_class(DICT_ENTRY) + size_class(24 + 16 * 4 / 3)
    });
    // The zset, its dict, its skiplist and the skiplist's 32-level header node.
    ROBJ + size_class(16) + DICT + size_class(32) + size_class(24 + 32 * 16) + nodes
}

/// `sizeof(quicklist)` and `sizeof(quicklistNode)` in Redis 7.0.
const QUICKLIST: usize = 40;
const QUICKLIST_NODE: usize = 40;
/// `list-max-listpack-size -2`: a quicklist node's listpack holds at most 8 kB.
const QUICKLIST_NODE_BYTES: usize = 8192;

/// A list: a quicklist of listpacks of up to 8 kB, each node sampled (`samples` 0: all) as
/// Redis's `objectComputeSize` does. The nodes are laid out as pushes at the tail fill them
/// (`_quicklistNodeAllowInsert`: an element joins the tail node while the node's bytes, the
/// element's length and 8 stay within 8 kB); a list grown at the head or edited in the middle
/// may be split differently in Redis, so its figure there can differ by a node's slack.
fn list_size(image: &[u8], samples: usize) -> usize {
    let mut nodes: Vec<usize> = Vec::new();
    let mut node = 0; // the tail node's listpack bytes; 0: no node yet
    for element in sluice::model::list::view(image) {
        if node != 0 && node + element.len() + 8 <= QUICKLIST_NODE_BYTES {
            node += listpack_entry(element);
        } else {
            if node != 0 {
                nodes.push(node);
            }
            node = 6 + listpack_entry(element) + 1;
        }
    }
    if node != 0 {
        nodes.push(node);
    }
    let sampled = if samples == 0 {
        nodes.len()
    } else {
        samples.min(nodes.len())
    };
    let measured: usize = nodes[..sampled]
        .iter()
        .map(|bytes| QUICKLIST_NODE + size_class(*bytes))
        .sum();
    ROBJ + QUICKLIST + (measured as f64 / sampled.max(1) as f64 * nodes.len() as f64) as usize
}

/// A stream: its header, a radix tree of one key per node, and each node's listpack as Redis
/// would encode it (see `sluice::model::stream`). An estimate: Redis counts the radix tree's
/// inner nodes, which depend on how the node IDs share prefixes, and samples the listpacks.
fn stream_size(image: &Bytes) -> usize {
    // robj, `stream`, `rax`; per node a radix tree leaf with its 16-byte key and pointer.
    const STREAM: usize = 80;
    const RAX: usize = 24;
    const RAX_LEAF: usize = 4 + 16 + 8;
    let nodes = sluice::model::stream::StreamValue::decode(image)
        .map(|s| s.nodes())
        .unwrap_or_default();
    ROBJ + STREAM
        + RAX
        + nodes
            .iter()
            .map(|n| RAX_LEAF + size_class(n.bytes))
            .sum::<usize>()
}

/// A set: an intset (its header and one 2-, 4- or 8-byte integer per member) while Redis keeps
/// it one, otherwise a hash table of members with no values, sampled as a hash's.
fn set_size(image: &[u8], samples: usize) -> usize {
    let members: Vec<&[u8]> = sluice::model::set::members(image)
        .filter_map(Result::ok)
        .collect();
    let ints: Option<Vec<i64>> = members
        .iter()
        .map(|m| sluice::model::set::as_intset_entry(m))
        .collect();
    if let Some(ints) = ints.filter(|i| i.len() <= sluice::model::set::MAX_INTSET_ENTRIES) {
        let width = ints.iter().fold(2, |w, &n| {
            if i16::try_from(n).is_ok() {
                w
            } else if i32::try_from(n).is_ok() {
                w.max(4)
            } else {
                8
            }
        });
        return ROBJ + size_class(8 + width * ints.len());
    }
    // Redis counts a set's dict entry at its struct size, not its allocation's.
    ROBJ + DICT + sampled_table(&members, samples, |m| sds(m) + DICT_ENTRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_classes_are_jemalloc_s() {
        let classes: Vec<usize> = [1, 8, 9, 21, 104, 129, 160, 161, 257, 5000]
            .into_iter()
            .map(size_class)
            .collect();
        assert_eq!(classes, [8, 8, 16, 32, 112, 160, 160, 192, 320, 5120]);
    }

    /// Redis 7.0's MEMORY USAGE for `SET k v`, `SET n 12345`, a 100-byte value under `k2`,
    /// and `HSET h a b c d`.
    #[test]
    fn strings_and_small_hashes_match_redis() {
        let usage = |key: &str, value: usize| value + key_size(key.len()) + DICT_ENTRY;
        assert_eq!(usage("k", string_size(b"v")), 64);
        assert_eq!(usage("n", string_size(b"12345")), 48);
        assert_eq!(usage("k2", string_size(&[b'x'; 100])), 160);
        let hash = sluice::model::hash::encode([(&b"a"[..], &b"b"[..]), (b"c", b"d")].into_iter());
        assert_eq!(usage("h", hash_size(&hash, 5)), 80);
    }
}
