//! Sluice's own commands.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use sluice::model::set::SetValue;
use sluice::model::StoreWrite;
use sluice::DeadLetterSelector;
use sluice::Kind;

use super::spec::Ctx;
use super::spec::{boxed, Handler, Spec};
use super::util::{engine_error, is, syntax_error};
use crate::frontend::Frame;

/// The Sluice commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "sluice.flush",
        arity: -1,
        flags: &["write"],
        categories: &["@write", "@slow"],
        summary: "Returns once every buffered write-back write is stored.",
        handler: boxed!(flush),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sluice.keyspaces",
        arity: 1,
        flags: &["readonly"],
        categories: &["@read", "@slow"],
        summary: "Lists keyspaces with template, table, policy and counters.",
        handler: Handler::Sync(keyspaces),
        ..Spec::DEFAULT
    },
    Spec {
        name: "sluice.deadletters",
        arity: -1,
        flags: &["write"],
        categories: &["@write", "@slow"],
        summary: "Lists, retries or drops write-back entries the store refused.",
        handler: boxed!(deadletters),
        ..Spec::DEFAULT
    },
];

/// SLUICE.FLUSH [keyspace]: `+OK` once every buffered write is stored.
async fn flush(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let sluice = &ctx.shared.sluice;
    let result = match args.len() {
        1 => sluice.flush().await,
        2 => {
            sluice
                .flush_keyspace(&String::from_utf8_lossy(&args[1]))
                .await
        }
        _ => return syntax_error(),
    };
    match result {
        Ok(()) => Frame::ok(),
        Err(e) => engine_error(e),
    }
}

fn kv(k: &str, v: Frame) -> (Frame, Frame) {
    (Frame::bulk(k.to_string()), v)
}

/// SLUICE.KEYSPACES: each keyspace with template, table, policy and counters.
fn keyspaces(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    let journal = ctx.shared.sluice.journal_stats();
    let changes = &ctx.shared.sluice.metrics().changes;
    let followed = changes.enabled.load(Ordering::Relaxed) == 1;
    Frame::Array(
        ctx.shared
            .sluice
            .keyspaces()
            .into_iter()
            .map(|k| {
                let lag = if followed && k.template != "*" {
                    Frame::Integer(changes.lag_ms.load(Ordering::Relaxed) as i64)
                } else {
                    Frame::Null
                };
                Frame::Map(vec![
                    kv("name", Frame::bulk(k.name)),
                    kv("template", Frame::bulk(k.template)),
                    kv("table", Frame::bulk(k.table)),
                    kv("policy", Frame::bulk(k.policy.as_str())),
                    kv("durability", Frame::bulk(k.durability.as_str())),
                    kv("buffered", Frame::Integer(k.buffered as i64)),
                    kv("buffered_bytes", Frame::Integer(k.buffered_bytes as i64)),
                    kv(
                        "oldest_buffered_age_ms",
                        Frame::Integer(k.oldest_buffered_age_ms as i64),
                    ),
                    kv("journal_bytes", Frame::Integer(journal.bytes as i64)),
                    kv("journal_segments", Frame::Integer(journal.segments as i64)),
                    kv(
                        "writes_per_fsync",
                        Frame::bulk(format!(
                            "{:.2}",
                            journal.appends as f64 / journal.syncs.max(1) as f64
                        )),
                    ),
                    kv("writes", Frame::Integer(k.writes as i64)),
                    kv("hits", Frame::Integer(k.read_hits as i64)),
                    kv("misses", Frame::Integer(k.read_misses as i64)),
                    kv("flushes", Frame::Integer(k.flushes as i64)),
                    kv("rows_stored", Frame::Integer(k.rows_stored as i64)),
                    kv("store_errors", Frame::Integer(k.store_errors as i64)),
                    kv("retries", Frame::Integer(k.retries as i64)),
                    kv("dead_letters", Frame::Integer(k.dead_letters as i64)),
                    kv("last_flush_us", Frame::Integer(k.last_flush_us as i64)),
                    // How far behind the database's change stream this keyspace's copies are:
                    // null where nothing is followed (change capture off, or the built-in
                    // table, which only Sluice writes).
                    kv("change_lag_ms", lag),
                    kv(
                        "last_error",
                        Frame::bulk_or_null(k.last_error.map(Bytes::from)),
                    ),
                ])
            })
            .collect(),
    )
}

fn selector(db: u8, arg: &Bytes) -> DeadLetterSelector {
    if is(arg, "all") {
        DeadLetterSelector::All
    } else {
        DeadLetterSelector::Key {
            db,
            key: arg.clone(),
        }
    }
}

/// RETRY with `[cluster] nodes`: only letters whose keys this node serves are written again
/// (a taken-over node's letters live on the node that took its journal over, while another
/// node may serve their keys and have written them since); a key served elsewhere is refused
/// with the node that serves it, and ALL leaves such letters where they are.
async fn retry_served_here(
    sluice: &sluice::Sluice,
    routing: &crate::state::routing::Routing,
    db: u8,
    arg: &Bytes,
) -> Frame {
    use crate::state::routing::key_slot;
    if !is(arg, "all") {
        let slot = key_slot(arg);
        if !routing.owns(slot) {
            let owner = routing.owner(slot);
            return Frame::error(format!(
                "ERR slot {slot} of this key is served by node {} at {}:{}: write the value there (SET), or DROP the letter here",
                owner.name, owner.host, owner.port
            ));
        }
        return match sluice.retry_dead_letters(&selector(db, arg)).await {
            Ok(n) => Frame::Integer(n as i64),
            Err(e) => engine_error(e),
        };
    }
    let letters = match sluice.dead_letters(None) {
        Ok(letters) => letters,
        Err(e) => return engine_error(e),
    };
    let mut keys: Vec<(u8, Bytes)> = letters
        .into_iter()
        .filter(|l| routing.owns(key_slot(&l.key)))
        .map(|l| (l.db, l.key))
        .collect();
    keys.sort();
    keys.dedup();
    let mut retried = 0;
    for (db, key) in keys {
        match sluice
            .retry_dead_letters(&DeadLetterSelector::Key { db, key })
            .await
        {
            Ok(n) => retried += n,
            Err(e) => return engine_error(e),
        }
    }
    Frame::Integer(retried as i64)
}

/// SLUICE.DEADLETTERS [keyspace] | RETRY key|ALL | DROP key|ALL
async fn deadletters(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let args: &[Bytes] = argv;
    let sluice = &ctx.shared.sluice;
    let db = ctx.session.db;
    if args.len() == 3 && is(&args[1], "retry") {
        if let Some(routing) = &ctx.shared.routing {
            return retry_served_here(sluice, routing, db, &args[2]).await;
        }
        return match sluice.retry_dead_letters(&selector(db, &args[2])).await {
            Ok(n) => Frame::Integer(n as i64),
            Err(e) => engine_error(e),
        };
    }
    if args.len() == 3 && is(&args[1], "drop") {
        return match sluice.drop_dead_letters(&selector(db, &args[2])) {
            Ok(n) => Frame::Integer(n as i64),
            Err(e) => engine_error(e),
        };
    }
    if args.len() > 2 {
        return syntax_error();
    }
    let keyspace = args.get(1).map(|k| String::from_utf8_lossy(k).into_owned());
    match sluice.dead_letters(keyspace.as_deref()) {
        Ok(letters) => Frame::Array(
            letters
                .into_iter()
                .map(|l| {
                    let (op, value) = match l.write {
                        StoreWrite::Upsert {
                            value,
                            kind: Kind::String,
                            ..
                        } => ("set", Frame::Bulk(value)),
                        StoreWrite::Upsert {
                            value,
                            kind: Kind::Set,
                            ..
                        } => ("sadd", set_frame(&value)),
                        StoreWrite::Upsert {
                            value,
                            kind: Kind::ZSet,
                            ..
                        } => ("zadd", zset_frame(&value, |_| true)),
                        StoreWrite::Upsert {
                            value,
                            kind: Kind::List,
                            ..
                        } => ("rpush", list_frame(&value)),
                        StoreWrite::Upsert {
                            value,
                            kind: Kind::Stream,
                            ..
                        } => ("xadd", stream_frame(&value)),
                        StoreWrite::Upsert { value, .. } => ("hset", hash_frame(&value)),
                        StoreWrite::Delete => ("del", Frame::Null),
                        // A set's changed members: 1 added, 0 removed.
                        StoreWrite::Partial(row) if row.kind == Kind::Set => {
                            let after = SetValue::decode(&row.image).unwrap_or_default();
                            let members = row.changed.iter().map(|m| {
                                let kept = Frame::Integer(after.contains(m).into());
                                (Frame::Bulk(m.clone()), kept)
                            });
                            ("set-members", Frame::Map(members.collect()))
                        }
                        // A sorted set's changed members: the new score, or nil if removed.
                        StoreWrite::Partial(row) if row.kind == Kind::ZSet => {
                            let changed: std::collections::HashSet<&Bytes> =
                                row.changed.iter().collect();
                            let mut members = match zset_frame(&row.image, |m| {
                                row.replace || changed.contains(m)
                            }) {
                                Frame::Map(m) => m,
                                other => vec![(Frame::bulk("image"), other)],
                            };
                            let after = sluice::ZSetValue::decode(&row.image).unwrap_or_default();
                            members.extend(
                                row.changed
                                    .iter()
                                    .filter(|m| after.score(m).is_none())
                                    .map(|m| (Frame::Bulk(m.clone()), Frame::Null)),
                            );
                            ("zset-members", Frame::Map(members))
                        }
                        // A list after the write, whole: positions mean nothing to a reader.
                        StoreWrite::Partial(row) if row.kind == Kind::List => {
                            ("list", list_frame(&row.image))
                        }
                        // A stream after the write, whole, as XRANGE answers it.
                        StoreWrite::Partial(row) if row.kind == Kind::Stream => {
                            ("stream", stream_frame(&row.image))
                        }
                        StoreWrite::Partial(row) => (
                            "hset-row",
                            Frame::Map(
                                row.changed
                                    .iter()
                                    .map(|f| {
                                        (
                                            Frame::Bulk(f.clone()),
                                            Frame::bulk_or_null(row.value_of(f)),
                                        )
                                    })
                                    .collect(),
                            ),
                        ),
                    };
                    Frame::Map(vec![
                        kv("keyspace", Frame::bulk(l.keyspace)),
                        kv("db", Frame::Integer(l.db as i64)),
                        kv("key", Frame::Bulk(l.key)),
                        kv("op", Frame::bulk(op)),
                        kv("value", value),
                        kv("error", Frame::bulk(l.error)),
                        kv("failed_at_ms", Frame::Integer(l.failed_at_ms as i64)),
                    ])
                })
                .collect(),
        ),
        Err(e) => engine_error(e),
    }
}

/// The members of a stored sorted set that `keep` keeps, as a map of member to score (an
/// undecodable image as its raw bytes).
fn zset_frame(image: &Bytes, keep: impl Fn(&Bytes) -> bool) -> Frame {
    match sluice::ZSetValue::decode(image) {
        Ok(z) => Frame::Map(
            z.iter()
                .filter(|(m, _)| keep(m))
                .map(|(m, s)| (Frame::Bulk(m.clone()), Frame::Double(s)))
                .collect(),
        ),
        Err(_) => Frame::Bulk(image.clone()),
    }
}

/// A stored set as an array reply (an undecodable one as its raw bytes).
fn set_frame(image: &Bytes) -> Frame {
    match SetValue::decode(image) {
        Ok(s) => Frame::Array(s.sorted_like_redis().into_iter().map(Frame::Bulk).collect()),
        Err(_) => Frame::Bulk(image.clone()),
    }
}

fn list_frame(image: &Bytes) -> Frame {
    match sluice::model::list::ListValue::decode(image) {
        Ok(l) => Frame::Array(l.iter().cloned().map(Frame::Bulk).collect()),
        Err(_) => Frame::Bulk(image.clone()),
    }
}

fn stream_frame(image: &Bytes) -> Frame {
    let all = sluice::model::stream::StreamId::MAX;
    match sluice::model::stream::range(
        image,
        sluice::model::stream::StreamId::MIN,
        all,
        false,
        None,
    ) {
        Ok(entries) => Frame::Array(
            entries
                .into_iter()
                .map(|e| super::streams::entry_frame(image, e))
                .collect(),
        ),
        Err(_) => Frame::Bulk(image.clone()),
    }
}

fn hash_frame(image: &Bytes) -> Frame {
    match sluice::model::hash::HashValue::decode(image) {
        Ok(h) => Frame::Map(
            h.iter()
                .map(|(f, v)| (Frame::Bulk(f.clone()), Frame::Bulk(v.clone())))
                .collect(),
        ),
        Err(_) => Frame::Bulk(image.clone()),
    }
}
