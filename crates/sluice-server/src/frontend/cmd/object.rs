//! OBJECT: ENCODING (the encoding Redis 7.0 would give the value), REFCOUNT, IDLETIME, FREQ and
//! HELP, answered as Redis answers them under its default `maxmemory-policy` (noeviction).
//! Sluice keeps no per-key access clock: IDLETIME answers 0.

use bytes::Bytes;
use sluice::{Entry, Kind};

use super::spec::{boxed, Ctx, Spec};
use super::util::engine_error;
use crate::frontend::Frame;

/// The object command.
pub static COMMANDS: &[Spec] = &[Spec {
    name: "object",
    arity: -2,
    categories: &["@slow"],
    summary: "A container for object introspection commands.",
    subcommands: &[
        ("encoding", 3),
        ("freq", 3),
        ("idletime", 3),
        ("refcount", 3),
        ("help", 2),
    ],
    handler: boxed!(object),
    ..Spec::DEFAULT
}];

/// Redis's shared integers (`OBJ_SHARED_INTEGERS`): a string holding one of them is a shared
/// object, whose REFCOUNT is `INT_MAX`.
const SHARED_INTEGERS: i64 = 10_000;

/// The longest string Redis keeps `embstr` (in one allocation with its object).
const EMBSTR_MAX: usize = 44;

/// A string Redis would keep as an integer: at most 20 bytes, the canonical text of an i64.
fn as_integer(value: &[u8]) -> Option<i64> {
    sluice::model::set::as_intset_entry(value)
}

/// What OBJECT ENCODING answers for `entry` in Redis 7.0 (for a string, as SET stores it:
/// Redis answers `raw` for any string APPEND or SETRANGE grew, which Sluice does not track).
fn encoding(entry: &Entry) -> &'static str {
    match entry.kind {
        Kind::String if as_integer(&entry.value).is_some() => "int",
        Kind::String if entry.value.len() <= EMBSTR_MAX => "embstr",
        Kind::String => "raw",
        Kind::Hash => {
            let pairs: Vec<_> = sluice::model::hash::pairs(&entry.value)
                .filter_map(Result::ok)
                .collect();
            if sluice::model::hash::fits_listpack(&pairs) {
                "listpack"
            } else {
                "hashtable"
            }
        }
        Kind::Set => match sluice::SetValue::decode(&entry.value) {
            Ok(set) => set.encoding_name(),
            Err(_) => "hashtable",
        },
        // Redis 7.0 keeps every list as a quicklist (7.2 added small listpacks).
        Kind::List => "quicklist",
        Kind::Stream => "stream",
        // Redis turns a listpack into a skiplist as it grows and back only when a STORE
        // command writes it: this is the encoding of the set's size now.
        Kind::ZSet => {
            let view = sluice::model::zset::view(&entry.value);
            if sluice::model::zset::fits_listpack(view.iter().map(|(m, _)| *m)) {
                "listpack"
            } else {
                "skiplist"
            }
        }
    }
}

/// OBJECT ENCODING | FREQ | IDLETIME | REFCOUNT key, OBJECT HELP
async fn object(mut ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let sub = argv[1].to_ascii_lowercase();
    if sub == b"help" {
        return help();
    }
    let key = argv[2].clone();
    let r = ctx.access.get_entry(ctx.session.db, key).await;
    ctx.count_read(r.as_ref().map(Option::is_some));
    let entry = match r {
        Ok(Some(e)) => e,
        Ok(None) => return Frame::Null,
        Err(e) => return engine_error(e),
    };
    match &sub[..] {
        b"encoding" => Frame::bulk(encoding(&entry)),
        b"refcount" => {
            let shared = entry.kind == Kind::String
                && as_integer(&entry.value).is_some_and(|n| (0..SHARED_INTEGERS).contains(&n));
            Frame::Integer(if shared { i64::from(i32::MAX) } else { 1 })
        }
        b"idletime" => Frame::Integer(0),
        // FREQ needs an LFU policy, which Sluice (noeviction, as Redis by default) never has.
        _ => Frame::error(
            "ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.",
        ),
    }
}

fn help() -> Frame {
    Frame::Array(
        [
            "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            "ENCODING <key>",
            "    Return the kind of internal representation used in order to store the value",
            "    associated with a <key>.",
            "FREQ <key>",
            "    Return the access frequency index of the <key>. The returned integer is",
            "    proportional to the logarithm of the recent access frequency of the key.",
            "IDLETIME <key>",
            "    Return the idle time of the <key>, that is the approximated number of",
            "    seconds elapsed since the last access to the key.",
            "REFCOUNT <key>",
            "    Return the number of references of the value associated with the specified",
            "    <key>.",
            "HELP",
            "    Prints this help.",
        ]
        .iter()
        .map(|s| Frame::Simple(s.to_string()))
        .collect(),
    )
}
