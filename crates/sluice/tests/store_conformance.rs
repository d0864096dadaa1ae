//! One conformance suite for every store backend: SQLite always, PostgreSQL and MySQL/MariaDB
//! when `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` name a server (each test gets its
//! own schema or database there, dropped at the end).

mod store_common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice::clock::SystemClock;
use sluice::config::Config;
use sluice::model::list::{position_key, ListValue};
use sluice::model::set::SetValue;
use sluice::model::stream::{StreamId, StreamValue, Trim, TrimStrategy};
use sluice::model::zset::{self, ZSetValue};
use sluice::model::{DbKey, Kind, PartialWrite, StoreWrite};
use sluice::tiers::cache::memory::MemoryCache;
use sluice::tiers::cache::Cache;
use sluice::tiers::store::faulty::FaultyStore;
use sluice::tiers::store::{self, ColumnType, SharedStore, StoreOp, Target};
use sluice::Bytes;
use sluice::{Durability, KeyspaceConfig, Policy, SetOptions, Sluice};
use store_common::*;

/// Far enough in the future never to expire during a test.
const NEVER: u64 = 4_000_000_000_000;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

async fn write(store: &SharedStore, ops: Vec<StoreOp>) -> store::BatchOutcome {
    let n = ops.len();
    let outcome = store.write_batch(ops).await.expect("batch committed");
    assert_eq!(outcome.len(), n, "one outcome per entry");
    outcome
}

async fn write_ok(store: &SharedStore, ops: Vec<StoreOp>) {
    for (i, r) in write(store, ops).await.into_iter().enumerate() {
        if let Err(e) = r {
            panic!("entry {i} failed: {e}");
        }
    }
}

/// The whole suite, against one store. `db` creates tables with the backend's own DDL.
async fn conformance(store: &SharedStore, db: &TestDb) {
    builtin_batches(store).await;
    mapped_batches(store, db).await;
    per_entry_outcomes(store, db).await;
    values_are_checked_against_their_column_limits(store, db).await;
    repeated_keys(store, db).await;
    odd_keys(store).await;
    big_value(store).await;
    typed_round_trip(store, db).await;
    stored_text_is_what_a_read_returns(store, db).await;
    injection_is_inert(store, db).await;
    scan_clear_and_expiry(store, db).await;
    schema_reports_unique_columns(store, db).await;
    sets_by_member(store).await;
}

/// A partial write of a set: the members in `image`, those of them in `changed` written.
fn set_write(
    t: &Target,
    key: &str,
    image: &[&str],
    changed: &[&str],
    replace: bool,
    expires_at: Option<u64>,
) -> StoreOp {
    let image = SetValue::from_members(image.iter().map(|m| b(m))).encode();
    StoreOp {
        target: t.clone(),
        key: b(key),
        write: StoreWrite::Partial(PartialWrite {
            kind: Kind::Set,
            image,
            changed: changed.iter().map(|m| b(m)).collect(),
            replace,
            expires_at,
        }),
    }
}

/// The members of the set stored at `key`, and its expiry; `None` if absent. Panics on
/// another kind.
async fn read_set(
    store: &SharedStore,
    t: &Target,
    key: &str,
) -> Option<(BTreeSet<String>, Option<u64>)> {
    let stored = store.read(t, key.as_bytes()).await.unwrap()?;
    assert_eq!(stored.kind, Kind::Set, "{key} is a set");
    let members = SetValue::decode(&stored.value)
        .unwrap()
        .iter()
        .map(|m| String::from_utf8(m.to_vec()).unwrap())
        .collect();
    Some((members, stored.expires_at))
}

fn names(members: &[&str]) -> BTreeSet<String> {
    members.iter().map(|m| m.to_string()).collect()
}

/// A set on the built-in table is its key's row plus one row per member: a partial write
/// stores only the members it names, and the database drops a key's members with its row (a
/// delete, an expiry purge, a clear) or when the key is rewritten as another kind.
async fn sets_by_member(store: &SharedStore) {
    let t = Target::Builtin { db: 7 };
    write_ok(
        store,
        vec![set_write(
            &t,
            "s",
            &["a", "b", "c"],
            &["a", "b", "c"],
            true,
            Some(NEVER),
        )],
    )
    .await;
    assert_eq!(
        read_set(store, &t, "s").await,
        Some((names(&["a", "b", "c"]), Some(NEVER)))
    );
    // Only the named members change: `c` is in the image but not named, and stays as stored.
    write_ok(
        store,
        vec![set_write(
            &t,
            "s",
            &["a", "c", "d"],
            &["b", "d"],
            false,
            Some(NEVER),
        )],
    )
    .await;
    assert_eq!(
        read_set(store, &t, "s").await.unwrap().0,
        names(&["a", "c", "d"])
    );
    // Two partial writes of one key in one batch both count, in order.
    write_ok(
        store,
        vec![
            set_write(&t, "s", &["a", "c", "d", "e"], &["e"], false, None),
            set_write(&t, "s", &["c", "d", "e"], &["a"], false, None),
            set_write(&t, "other", &["x"], &["x"], false, None),
        ],
    )
    .await;
    assert_eq!(
        read_set(store, &t, "s").await,
        Some((names(&["c", "d", "e"]), None))
    );
    // A string over the set drops its members; a set written there later starts empty.
    write_ok(store, vec![upsert(&t, b"s", b"plain")]).await;
    assert_eq!(get_text(store, &t, "s").await.as_deref(), Some("plain"));
    write_ok(store, vec![set_write(&t, "s", &["x"], &["x"], false, None)]).await;
    assert_eq!(read_set(store, &t, "s").await.unwrap().0, names(&["x"]));
    // So does a delete, in the same batch as the set written after it.
    write_ok(
        store,
        vec![
            delete(&t, b"s"),
            set_write(&t, "s", &["y"], &["y"], false, None),
        ],
    )
    .await;
    assert_eq!(read_set(store, &t, "s").await.unwrap().0, names(&["y"]));
    // Replaying a write is harmless (idempotent).
    for _ in 0..2 {
        write_ok(
            store,
            vec![set_write(&t, "s", &["y", "z"], &["z"], false, None)],
        )
        .await;
    }
    assert_eq!(
        read_set(store, &t, "s").await.unwrap().0,
        names(&["y", "z"])
    );
    // All or nothing in one transaction.
    let written = store
        .write_atomic(vec![
            set_write(&t, "s", &["z"], &["y"], false, None),
            set_write(&t, "t", &["1", "2"], &["1", "2"], true, None),
        ])
        .await;
    assert!(written.is_ok());
    assert_eq!(read_set(store, &t, "s").await.unwrap().0, names(&["z"]));
    assert_eq!(
        read_set(store, &t, "t").await.unwrap().0,
        names(&["1", "2"])
    );
    // A big set written whole, then one member removed: one row goes.
    let many: Vec<String> = (0..1500).map(|i| format!("m{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    write_ok(store, vec![set_write(&t, "big", &many, &many, true, None)]).await;
    write_ok(
        store,
        vec![set_write(&t, "big", &many[1..], &["m0"], false, None)],
    )
    .await;
    assert_eq!(read_set(store, &t, "big").await.unwrap().0.len(), 1499);
    // Expired and purged, a set's members go with it.
    let now = now_ms();
    write_ok(
        store,
        vec![set_write(
            &t,
            "brief",
            &["p", "q"],
            &["p", "q"],
            true,
            Some(now - 5),
        )],
    )
    .await;
    let purged = store.purge_expired(now, 100).await.unwrap();
    assert!(purged.iter().any(|k| k.db == 7 && &k.key[..] == b"brief"));
    write_ok(
        store,
        vec![set_write(&t, "brief", &["r"], &["r"], false, None)],
    )
    .await;
    assert_eq!(read_set(store, &t, "brief").await.unwrap().0, names(&["r"]));
    // A clear takes every member of the database.
    store.clear(&t).await.unwrap();
    for key in ["s", "t", "big", "brief", "other"] {
        assert_eq!(store.read(&t, key.as_bytes()).await.unwrap(), None, "{key}");
    }
    write_ok(store, vec![set_write(&t, "s", &["w"], &["w"], false, None)]).await;
    assert_eq!(read_set(store, &t, "s").await.unwrap().0, names(&["w"]));
    store.clear(&t).await.unwrap();
}

/// A partial write of a sorted set: the entries in `image`, those of them in `changed` written
/// (a name in `changed` missing from `image` is a removed member).
fn zset_write(
    t: &Target,
    key: &str,
    image: &[(&str, f64)],
    changed: &[&str],
    replace: bool,
    expires_at: Option<u64>,
) -> StoreOp {
    let image = ZSetValue::from_entries(image.iter().map(|&(m, s)| (b(m), s))).encode();
    StoreOp {
        target: t.clone(),
        key: b(key),
        write: StoreWrite::Partial(PartialWrite {
            kind: Kind::ZSet,
            image,
            changed: changed.iter().map(|m| b(m)).collect(),
            replace,
            expires_at,
        }),
    }
}

/// A sorted set's entries as compared: in order, each score as its exact `{:?}` form (which
/// round-trips every double and tells `-0.0` from `0.0`).
fn zentries(entries: &[(&str, f64)]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|&(m, s)| (m.to_string(), format!("{s:?}")))
        .collect()
}

/// The entries of the sorted set stored at `key` in the image's order (checked to be Redis's:
/// by score, then member bytes), and its expiry; `None` if absent. Panics on another kind.
async fn read_zset(
    store: &SharedStore,
    t: &Target,
    key: &str,
) -> Option<(Vec<(String, String)>, Option<u64>)> {
    let stored = store.read(t, key.as_bytes()).await.unwrap()?;
    assert_eq!(stored.kind, Kind::ZSet, "{key} is a sorted set");
    let entries: Vec<(&[u8], f64)> = zset::entries(&stored.value)
        .map(|e| e.expect("a well-formed image"))
        .collect();
    assert!(
        entries
            .windows(2)
            .all(|w| (w[0].1, w[0].0) < (w[1].1, w[1].0)),
        "{key}: the image is in Redis's order"
    );
    let entries = entries
        .into_iter()
        .map(|(m, s)| (String::from_utf8(m.to_vec()).unwrap(), format!("{s:?}")))
        .collect();
    Some((entries, stored.expires_at))
}

/// A sorted set on the built-in table is its key's row plus one row per member with its
/// score: a partial write stores only the members it names, with their exact scores (the
/// infinities, negatives, fractions that have no short decimal form), and the database drops a
/// key's members with its row or when the key is rewritten as another kind.
async fn zsets_by_member(store: &SharedStore) {
    let t = Target::Builtin { db: 8 };
    let inf = f64::INFINITY;
    let third = 1.0 / 3.0;
    let sum = 0.1 + 0.2; // 0.30000000000000004
    let whole = [
        ("inf", inf),
        ("a", 1.0),
        ("b", 1.0),
        ("neg", -2.5),
        ("ninf", -inf),
        ("tenth", 0.1),
        ("third", third),
        ("sum", sum),
        ("zero", 0.0),
        ("tiny", 5e-324),
        ("huge", -1.7976931348623157e308),
    ];
    let all: Vec<&str> = whole.iter().map(|(m, _)| *m).collect();
    write_ok(
        store,
        vec![zset_write(&t, "z", &whole, &all, true, Some(NEVER))],
    )
    .await;
    let stored_whole = zentries(&[
        ("ninf", -inf),
        ("huge", -1.7976931348623157e308),
        ("neg", -2.5),
        ("zero", 0.0),
        ("tiny", 5e-324),
        ("tenth", 0.1),
        ("sum", sum),
        ("third", third),
        ("a", 1.0),
        ("b", 1.0),
        ("inf", inf),
    ]);
    assert_eq!(
        read_zset(store, &t, "z").await,
        Some((stored_whole.clone(), Some(NEVER)))
    );
    // Written whole again (a replayed write): the same rows.
    write_ok(
        store,
        vec![zset_write(&t, "z", &whole, &all, true, Some(NEVER))],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "z").await,
        Some((stored_whole, Some(NEVER)))
    );

    // One member's score changed, one added, one removed; `zero`'s score differs in the image
    // but it is not named, so it stays as stored.
    let partial = zset_write(
        &t,
        "z",
        &[
            ("ninf", -inf),
            ("huge", -1.7976931348623157e308),
            ("neg", -2.5),
            ("zero", 7.0),
            ("tiny", 5e-324),
            ("tenth", 0.1),
            ("sum", sum),
            ("third", third),
            ("a", -0.1),
            ("c", 0.1),
            ("inf", inf),
        ],
        &["a", "c", "b"],
        false,
        Some(NEVER),
    );
    let after_partial = zentries(&[
        ("ninf", -inf),
        ("huge", -1.7976931348623157e308),
        ("neg", -2.5),
        ("a", -0.1),
        ("zero", 0.0),
        ("tiny", 5e-324),
        ("c", 0.1),
        ("tenth", 0.1),
        ("sum", sum),
        ("third", third),
        ("inf", inf),
    ]);
    // Applied, then replayed twice (as a journal replay or a retried batch does): the same.
    for round in 0..3 {
        write_ok(store, vec![partial.clone()]).await;
        assert_eq!(
            read_zset(store, &t, "z").await,
            Some((after_partial.clone(), Some(NEVER))),
            "round {round}"
        );
    }

    // Two writes of one key in one batch, with another key between them: the newer score
    // wins, a member the first adds and the second removes is gone, one the first removes and
    // the second adds back is there.
    write_ok(
        store,
        vec![zset_write(
            &t,
            "y",
            &[("m", 1.0), ("gone", 2.0), ("back", 3.0)],
            &["m", "gone", "back"],
            true,
            None,
        )],
    )
    .await;
    write_ok(
        store,
        vec![
            zset_write(
                &t,
                "y",
                &[("m", 5.0), ("gone", 2.0), ("new", 4.0)],
                &["m", "new", "back"],
                false,
                None,
            ),
            zset_write(&t, "other", &[("x", -1.0)], &["x"], true, None),
            zset_write(
                &t,
                "y",
                &[("m", 6.5), ("back", -inf)],
                &["m", "gone", "new", "back"],
                false,
                None,
            ),
        ],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "y").await,
        Some((zentries(&[("back", -inf), ("m", 6.5)]), None))
    );
    assert_eq!(
        read_zset(store, &t, "other").await.unwrap().0,
        zentries(&[("x", -1.0)])
    );
    // A write naming a member twice (ZADD y 1 m 2 m): its final score.
    write_ok(
        store,
        vec![zset_write(
            &t,
            "y",
            &[("m", 2.0), ("back", -inf)],
            &["m", "m"],
            false,
            None,
        )],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "y").await.unwrap().0,
        zentries(&[("back", -inf), ("m", 2.0)])
    );
    // Scores updated in one batch by two writes, each naming the same members, then a
    // replay of that batch: the newer scores.
    let twice = vec![
        zset_write(
            &t,
            "y",
            &[("m", 3.0), ("back", 0.5)],
            &["m", "back"],
            false,
            None,
        ),
        zset_write(
            &t,
            "y",
            &[("m", 4.25), ("back", inf)],
            &["back", "m"],
            false,
            None,
        ),
    ];
    for _ in 0..2 {
        write_ok(store, twice.clone()).await;
        assert_eq!(
            read_zset(store, &t, "y").await.unwrap().0,
            zentries(&[("m", 4.25), ("back", inf)])
        );
    }

    // Deleting the key's row takes its members: a sorted set written there later (a partial
    // write, which removes nothing itself) starts empty.
    write_ok(store, vec![delete(&t, b"z")]).await;
    assert_eq!(store.read(&t, b"z").await.unwrap(), None);
    write_ok(
        store,
        vec![zset_write(&t, "z", &[("p", 0.5)], &["p"], false, None)],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "z").await,
        Some((zentries(&[("p", 0.5)]), None))
    );
    // So does a delete in the same batch as the sorted set written after it.
    write_ok(
        store,
        vec![
            delete(&t, b"z"),
            zset_write(&t, "z", &[("q", -0.5)], &["q"], false, None),
        ],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "z").await.unwrap().0,
        zentries(&[("q", -0.5)])
    );
    // A string over the sorted set drops its members, and so does a set (another kind with
    // member rows): a sorted set written there later starts empty.
    write_ok(store, vec![upsert(&t, b"z", b"plain")]).await;
    assert_eq!(get_text(store, &t, "z").await.as_deref(), Some("plain"));
    write_ok(
        store,
        vec![zset_write(&t, "z", &[("r", 1.0)], &["r"], false, None)],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "z").await.unwrap().0,
        zentries(&[("r", 1.0)])
    );
    write_ok(store, vec![set_write(&t, "z", &["s"], &["s"], false, None)]).await;
    assert_eq!(read_set(store, &t, "z").await.unwrap().0, names(&["s"]));
    write_ok(
        store,
        vec![zset_write(&t, "z", &[("t", 2.0)], &["t"], false, None)],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "z").await.unwrap().0,
        zentries(&[("t", 2.0)])
    );

    // All or nothing in one transaction.
    let written = store
        .write_atomic(vec![
            zset_write(&t, "z", &[("t", 2.0), ("u", inf)], &["u"], false, None),
            zset_write(&t, "w", &[("1", 1.0), ("2", 0.1)], &["1", "2"], true, None),
        ])
        .await;
    assert!(written.is_ok());
    assert_eq!(
        read_zset(store, &t, "z").await.unwrap().0,
        zentries(&[("t", 2.0), ("u", inf)])
    );
    assert_eq!(
        read_zset(store, &t, "w").await.unwrap().0,
        zentries(&[("2", 0.1), ("1", 1.0)])
    );
    // Expired and purged, a sorted set's members go with it.
    let now = now_ms();
    write_ok(
        store,
        vec![zset_write(
            &t,
            "brief",
            &[("p", 1.0), ("q", 2.0)],
            &["p", "q"],
            true,
            Some(now - 5),
        )],
    )
    .await;
    let purged = store.purge_expired(now, 100).await.unwrap();
    assert!(purged.iter().any(|k| k.db == 8 && &k.key[..] == b"brief"));
    write_ok(
        store,
        vec![zset_write(&t, "brief", &[("r", 3.0)], &["r"], false, None)],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "brief").await.unwrap().0,
        zentries(&[("r", 3.0)])
    );
    // A clear takes every member of the database.
    store.clear(&t).await.unwrap();
    for key in ["z", "y", "w", "other", "brief"] {
        assert_eq!(store.read(&t, key.as_bytes()).await.unwrap(), None, "{key}");
    }
    write_ok(
        store,
        vec![zset_write(&t, "z", &[("v", 0.0)], &["v"], false, None)],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "z").await.unwrap().0,
        zentries(&[("v", 0.0)])
    );
    store.clear(&t).await.unwrap();
}

/// A write of `list` as `update_list` sends it: the positions its edits touched (from
/// [`ListValue::changes`]), or the whole list when `replace` is asked or the list was
/// renumbered.
fn list_write(
    t: &Target,
    key: &str,
    list: &ListValue,
    replace: bool,
    expires_at: Option<u64>,
) -> StoreOp {
    let (changed, renumbered) = list.changes();
    let replace = replace || renumbered;
    list_write_named(
        t,
        key,
        list,
        if replace { Vec::new() } else { changed },
        replace,
        expires_at,
    )
}

/// A write of `list`'s image naming exactly the positions `changed`.
fn list_write_named(
    t: &Target,
    key: &str,
    list: &ListValue,
    changed: Vec<Bytes>,
    replace: bool,
    expires_at: Option<u64>,
) -> StoreOp {
    StoreOp {
        target: t.clone(),
        key: b(key),
        write: StoreWrite::Partial(PartialWrite {
            kind: Kind::List,
            image: list.encode(),
            changed,
            replace,
            expires_at,
        }),
    }
}

/// A list's (position, element) entries as compared, head first.
type ListEntries = Vec<(i64, Vec<u8>)>;

fn list_entries(list: &ListValue) -> ListEntries {
    list.entries().map(|(p, e)| (p, e.to_vec())).collect()
}

/// The list stored at `key`: its entries head first (positions strictly increasing, as
/// `ListValue::decode` checks) and its expiry; `None` if absent. Panics on another kind.
async fn read_list(
    store: &SharedStore,
    t: &Target,
    key: &str,
) -> Option<(ListEntries, Option<u64>)> {
    let stored = store.read(t, key.as_bytes()).await.unwrap()?;
    assert_eq!(stored.kind, Kind::List, "{key} is a list");
    let list = ListValue::decode(&stored.value).expect("a well-formed list image");
    Some((list_entries(&list), stored.expires_at))
}

/// The list stored at `key`, decoded, to edit as a command does (no edits recorded yet).
async fn stored_list(store: &SharedStore, t: &Target, key: &str) -> ListValue {
    let stored = store
        .read(t, key.as_bytes())
        .await
        .unwrap()
        .expect("a list");
    assert_eq!(stored.kind, Kind::List, "{key} is a list");
    ListValue::decode(&stored.value).unwrap()
}

/// `list` as a command after it sees it: decoded from its image, no edits recorded.
fn reread(list: &ListValue) -> ListValue {
    ListValue::decode(&list.encode()).unwrap()
}

/// A list of these elements at fresh positions.
fn list_of(elements: &[&[u8]]) -> ListValue {
    ListValue::from_elements(elements.iter().map(|e| Bytes::copy_from_slice(e)))
}

/// Just the elements of stored entries, as text (lossy), for short assertions.
fn texts(entries: &ListEntries) -> Vec<String> {
    entries
        .iter()
        .map(|(_, e)| String::from_utf8_lossy(e).into_owned())
        .collect()
}

/// A list on the built-in table is its key's row plus one row per element keyed by the
/// element's position (8 bytes that sort as the list): any bytes (empty, binary, large,
/// repeated, and the texts `inf` and `-inf`) read back in order with their positions, a
/// partial write stores only the positions it names, a renumbered list replaces its rows, and
/// the database drops a key's elements with its row or when the key is rewritten as another
/// kind.
/// A stream written row by row: whole, then as XADD, XDEL and trims change it (the rows they
/// touch only), replayed; what reads back is the image written, byte for byte, deleted entries
/// and node boundaries included (they decide what an approximate trim removes).
async fn streams_by_row(store: &SharedStore) {
    let t = Target::Builtin { db: 9 };
    let write_of = |s: &StreamValue, replace: bool| StoreOp {
        target: t.clone(),
        key: b("x"),
        write: StoreWrite::Partial(PartialWrite {
            kind: Kind::Stream,
            image: s.encode(),
            changed: if replace { Vec::new() } else { s.changes() },
            replace,
            expires_at: None,
        }),
    };
    let read_back = || async {
        let stored = store.read(&t, b"x").await.unwrap().expect("a stream");
        assert_eq!(stored.kind, Kind::Stream);
        stored.value
    };
    let large: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut stream = StreamValue::new();
    for ms in 1..=250u64 {
        let value = match ms % 5 {
            0 => Bytes::from(large.clone()),
            1 => Bytes::from_static(b"\x00\xff\r\n"),
            2 => b(&ms.to_string()),
            _ => b("inf"),
        };
        let fields = [(b("f"), value), (b(&format!("g{}", ms % 3)), b(""))];
        stream.add(StreamId::new(ms, ms % 7), &fields);
    }
    write_ok(store, vec![write_of(&stream, true)]).await;
    assert_eq!(read_back().await, stream.encode());

    let mut edited = StreamValue::decode(&read_back().await).unwrap();
    assert!(edited.delete(StreamId::new(3, 3)));
    for ms in 101..=200 {
        edited.delete(StreamId::new(ms, ms % 7));
    }
    edited.add(StreamId::new(300, 0), &[(b("f"), b("new"))]);
    let trimmed = edited.trim(Trim {
        strategy: TrimStrategy::MaxLen(100),
        approx: true,
        limit: 0,
    });
    assert!(trimmed > 0, "whole nodes go");
    let want = edited.encode();
    // Applied, then replayed twice (a journal replay, a retried batch): the same rows.
    for round in 0..3 {
        write_ok(store, vec![write_of(&edited, false)]).await;
        assert_eq!(read_back().await, want, "round {round}");
    }
    let back = StreamValue::decode(&want).unwrap();
    assert_eq!(back.len(), 250 - 101 + 1 - trimmed);
    assert_eq!(back.meta().max_deleted, StreamId::new(200, 200 % 7));
    assert_eq!(back.meta().entries_added, 251);

    // Replaced whole by a small stream (as a RENAME onto it): no old row survives.
    let mut small = StreamValue::new();
    small.add(StreamId::new(1, 0), &[(b("a"), b("b"))]);
    write_ok(store, vec![write_of(&small, true)]).await;
    assert_eq!(read_back().await, small.encode());
    write_ok(
        store,
        vec![StoreOp {
            target: t.clone(),
            key: b("x"),
            write: StoreWrite::Delete,
        }],
    )
    .await;
    assert!(store.read(&t, b"x").await.unwrap().is_none());
}

async fn lists_by_position(store: &SharedStore) {
    let t = Target::Builtin { db: 9 };
    let large: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let whole: Vec<&[u8]> = vec![
        b"",
        b"\x00",
        b"\xff",
        b"\r\n",
        b"dup",
        &large,
        b"dup",
        b"",
        b"inf",
        b"-inf",
        b"\x00\xff\r\n\x00",
        b"dup",
        b"tail",
    ];
    let list = list_of(&whole);
    let want = list_entries(&list);
    write_ok(store, vec![list_write(&t, "l", &list, true, Some(NEVER))]).await;
    assert_eq!(
        read_list(store, &t, "l").await,
        Some((want.clone(), Some(NEVER)))
    );
    // Written whole again (a replayed write): the same rows.
    write_ok(store, vec![list_write(&t, "l", &list, true, Some(NEVER))]).await;
    assert_eq!(read_list(store, &t, "l").await, Some((want, Some(NEVER))));

    // Edited as commands do: LPOP, LPUSH, RPUSH of two, LSET, LINSERT after the first `dup`.
    let mut edited = stored_list(store, &t, "l").await;
    assert_eq!(edited.pop(true).as_deref(), Some(&b""[..]));
    edited.push([b("head")], true);
    edited.push([b("t1"), Bytes::from_static(b"\x00t2")], false);
    assert!(edited.set(3, b("LSET")));
    assert_eq!(edited.insert(b"dup", b("mid"), true), Some(16));
    let (changed, renumbered) = edited.changes();
    assert!(!renumbered);
    // The popped head and the pushed one share a position: 5 positions, not 6.
    assert_eq!(changed.len(), 5, "{changed:?}");
    let want = list_entries(&edited);
    // The image sent also has an element no edit touched changed, and another left out: not
    // named, both stay as stored (a partial write stores only the rows it names).
    let rows: Vec<(Bytes, Bytes)> = edited
        .entries()
        .filter(|(_, e)| &e[..] != b"-inf")
        .map(|(p, e)| {
            let e = if &e[..] == b"tail" {
                b("not stored")
            } else {
                e.clone()
            };
            (Bytes::copy_from_slice(&position_key(p)), e)
        })
        .collect();
    let tampered = ListValue::from_rows(rows);
    assert_eq!(tampered.len(), edited.len() - 1);
    let partial = list_write_named(&t, "l", &tampered, changed, false, Some(NEVER));
    // Applied, then replayed twice (as a journal replay or a retried batch does): the same.
    for round in 0..3 {
        write_ok(store, vec![partial.clone()]).await;
        assert_eq!(
            read_list(store, &t, "l").await,
            Some((want.clone(), Some(NEVER))),
            "round {round}"
        );
    }

    // LINSERT 30 times at one spot: the gap is used up, the list renumbered, and the write
    // replaces every row (no row left at an old position).
    let mut crowded = stored_list(store, &t, "l").await;
    for i in 0..30 {
        assert!(crowded
            .insert(b"tail", b(&format!("in{i}")), false)
            .is_some());
    }
    assert!(crowded.changes().1, "renumbered");
    let renumbered = list_entries(&crowded);
    assert_eq!(renumbered.len(), 46);
    write_ok(store, vec![list_write(&t, "l", &crowded, false, None)]).await;
    assert_eq!(read_list(store, &t, "l").await, Some((renumbered, None)));
    // Edited after the renumbering: RPOP, LSET of the head, LINSERT into the crowded spot.
    let mut after = stored_list(store, &t, "l").await;
    assert_eq!(after.pop(false).as_deref(), Some(&b"\x00t2"[..]));
    assert!(after.set(0, b("HEAD")));
    assert!(after.insert(b"in29", b("in29b"), true).is_some());
    assert!(!after.changes().1);
    write_ok(store, vec![list_write(&t, "l", &after, false, None)]).await;
    assert_eq!(
        read_list(store, &t, "l").await,
        Some((list_entries(&after), None))
    );
    // LREM of every `dup` and LTRIM of both ends: the removed rows go.
    let mut trimmed = stored_list(store, &t, "l").await;
    assert_eq!(trimmed.remove(b"dup", 0), 3);
    trimmed.retain_range(2..trimmed.len() - 3);
    write_ok(store, vec![list_write(&t, "l", &trimmed, false, None)]).await;
    assert_eq!(
        read_list(store, &t, "l").await,
        Some((list_entries(&trimmed), None))
    );

    // Two writes of one key in one batch, with another key between them, each naming the
    // positions it touched: the second's element wins at a position both set, one the first
    // adds and the second pops is gone, one the first pops and the second pushes back is
    // there.
    let base = list_of(&[b"a", b"b", b"c"]);
    write_ok(store, vec![list_write(&t, "y", &base, true, None)]).await;
    let mut first = reread(&base);
    assert!(first.set(1, b("first")));
    first.push([b("gone")], false);
    assert_eq!(first.pop(true), Some(b("a")));
    let mut second = reread(&first);
    assert!(second.set(0, b("second")));
    assert_eq!(second.pop(false), Some(b("gone")));
    second.push([b("back")], true);
    let shared = position_key(base.entries().nth(1).unwrap().0);
    assert!(first.changes().0.iter().any(|k| k[..] == shared));
    assert!(second.changes().0.iter().any(|k| k[..] == shared));
    let other = list_of(&[b"x", b""]);
    let twice = vec![
        list_write(&t, "y", &first, false, None),
        list_write(&t, "other", &other, true, None),
        list_write(&t, "y", &second, false, None),
    ];
    // And the batch replayed: the same.
    for _ in 0..2 {
        write_ok(store, twice.clone()).await;
        let (got, _) = read_list(store, &t, "y").await.unwrap();
        assert_eq!(got, list_entries(&second));
        assert_eq!(texts(&got), ["back", "second", "c"]);
        assert_eq!(
            read_list(store, &t, "other").await.unwrap().0,
            list_entries(&other)
        );
    }
    // Two writes of one key in one batch that set the same element (LSET y 1 u, LSET y 1 v),
    // and a write naming a position twice: the last element.
    let mut u = reread(&second);
    assert!(u.set(1, b("u")));
    let mut v = reread(&u);
    assert!(v.set(1, b("v")));
    write_ok(
        store,
        vec![
            list_write(&t, "y", &u, false, None),
            list_write(&t, "y", &v, false, None),
        ],
    )
    .await;
    assert_eq!(
        texts(&read_list(store, &t, "y").await.unwrap().0),
        ["back", "v", "c"]
    );
    let mut w = reread(&v);
    assert!(w.set(1, b("w")));
    let (named, _) = w.changes();
    let doubled = [named.clone(), named].concat();
    write_ok(
        store,
        vec![list_write_named(&t, "y", &w, doubled, false, None)],
    )
    .await;
    assert_eq!(read_list(store, &t, "y").await.unwrap().0, list_entries(&w));

    // Deleting the key's row takes its elements: a list written there later (a partial write,
    // which removes nothing itself) starts empty, though its positions are new.
    let fresh = |element: &str| list_of(&[element.as_bytes()]);
    let just = |element: &str| vec![(0i64, element.as_bytes().to_vec())];
    write_ok(store, vec![delete(&t, b"l")]).await;
    assert_eq!(store.read(&t, b"l").await.unwrap(), None);
    write_ok(store, vec![list_write(&t, "l", &fresh("p"), false, None)]).await;
    assert_eq!(read_list(store, &t, "l").await, Some((just("p"), None)));
    // So does a delete in the same batch as the list written after it.
    write_ok(
        store,
        vec![
            list_write(&t, "l", &list_of(&[b"q1", b"q2", b"q3"]), true, None),
            delete(&t, b"l"),
            list_write(&t, "l", &fresh("q"), false, None),
        ],
    )
    .await;
    assert_eq!(read_list(store, &t, "l").await.unwrap().0, just("q"));
    // A string over the list drops its elements, and so do a sorted set and a set (other
    // kinds with member rows): a list written there later starts empty.
    write_ok(store, vec![list_write(&t, "l", &list, true, None)]).await;
    write_ok(store, vec![upsert(&t, b"l", b"plain")]).await;
    assert_eq!(get_text(store, &t, "l").await.as_deref(), Some("plain"));
    write_ok(store, vec![list_write(&t, "l", &fresh("r"), false, None)]).await;
    assert_eq!(read_list(store, &t, "l").await.unwrap().0, just("r"));
    write_ok(store, vec![list_write(&t, "l", &list, true, None)]).await;
    write_ok(
        store,
        vec![zset_write(&t, "l", &[("m", 1.0)], &["m"], false, None)],
    )
    .await;
    assert_eq!(
        read_zset(store, &t, "l").await.unwrap().0,
        zentries(&[("m", 1.0)])
    );
    write_ok(store, vec![list_write(&t, "l", &fresh("s"), false, None)]).await;
    assert_eq!(read_list(store, &t, "l").await.unwrap().0, just("s"));
    write_ok(store, vec![list_write(&t, "l", &list, true, None)]).await;
    write_ok(store, vec![set_write(&t, "l", &["m"], &["m"], false, None)]).await;
    assert_eq!(read_set(store, &t, "l").await.unwrap().0, names(&["m"]));
    write_ok(store, vec![list_write(&t, "l", &fresh("t"), false, None)]).await;
    assert_eq!(read_list(store, &t, "l").await.unwrap().0, just("t"));
    // The last element popped: the key is deleted (as `update_list` writes it), and gone.
    write_ok(store, vec![delete(&t, b"l")]).await;
    assert_eq!(store.read(&t, b"l").await.unwrap(), None);

    // All or nothing in one transaction.
    let mut moved_from = stored_list(store, &t, "y").await;
    let element = moved_from.pop(false).unwrap();
    let mut moved_to = reread(&other);
    moved_to.push([element], true);
    let written = store
        .write_atomic(vec![
            list_write(&t, "y", &moved_from, false, None),
            list_write(&t, "other", &moved_to, false, None),
        ])
        .await;
    assert!(written.is_ok());
    assert_eq!(
        texts(&read_list(store, &t, "y").await.unwrap().0),
        ["back", "w"]
    );
    assert_eq!(
        read_list(store, &t, "other").await.unwrap().0,
        list_entries(&moved_to)
    );
    assert_eq!(
        texts(&read_list(store, &t, "other").await.unwrap().0),
        ["c", "x", ""]
    );
    // Expired and purged, a list's elements go with it.
    let now = now_ms();
    write_ok(
        store,
        vec![list_write(
            &t,
            "brief",
            &list_of(&[b"p", b"q"]),
            true,
            Some(now - 5),
        )],
    )
    .await;
    let purged = store.purge_expired(now, 100).await.unwrap();
    assert!(purged.iter().any(|k| k.db == 9 && &k.key[..] == b"brief"));
    write_ok(
        store,
        vec![list_write(&t, "brief", &fresh("r"), false, None)],
    )
    .await;
    assert_eq!(read_list(store, &t, "brief").await.unwrap().0, just("r"));
    // A clear takes every element of the database.
    store.clear(&t).await.unwrap();
    for key in ["l", "y", "other", "brief"] {
        assert_eq!(store.read(&t, key.as_bytes()).await.unwrap(), None, "{key}");
    }
    write_ok(store, vec![list_write(&t, "y", &fresh("v"), false, None)]).await;
    assert_eq!(read_list(store, &t, "y").await.unwrap().0, just("v"));
    store.clear(&t).await.unwrap();
}

async fn builtin_batches(store: &SharedStore) {
    let t = Target::Builtin { db: 1 };
    write_ok(
        store,
        vec![
            upsert(&t, b"a", b"1"),
            upsert(&t, b"b", b"2"),
            upsert_exp(&t, b"c", b"3", Some(NEVER)),
        ],
    )
    .await;
    assert_eq!(get_text(store, &t, "a").await.as_deref(), Some("1"));
    assert_eq!(get_text(store, &t, "b").await.as_deref(), Some("2"));
    let c = store.read(&t, b"c").await.unwrap().unwrap();
    assert_eq!(c.expires_at, Some(NEVER));
    assert_eq!(
        store.read(&t, b"a").await.unwrap().unwrap().expires_at,
        None
    );
    // Another database is another namespace.
    assert_eq!(get(store, &Target::Builtin { db: 2 }, b"a").await, None);

    write_ok(
        store,
        vec![delete(&t, b"a"), delete(&t, b"b"), upsert(&t, b"c", b"33")],
    )
    .await;
    assert_eq!(get(store, &t, b"a").await, None);
    assert_eq!(get(store, &t, b"b").await, None);
    let c = store.read(&t, b"c").await.unwrap().unwrap();
    assert_eq!(
        (&c.value[..], c.expires_at),
        (&b"33"[..], None),
        "an upsert replaces the expiry"
    );
    // Deleting what is absent is fine (idempotent).
    write_ok(store, vec![delete(&t, b"nope"), delete(&t, b"c")]).await;
    assert!(store.scan_keys(&t, now_ms()).await.unwrap().is_empty());
}

async fn mapped_batches(store: &SharedStore, db: &TestDb) {
    let table = unique("stock");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, qty INTEGER, name VARCHAR(40))",
        db.pick("INTEGER", "bigint", "BIGINT")
    ))
    .await;
    let qty = mapped(store, &table, "id", "qty").await;
    let name = mapped(store, &table, "id", "name").await;
    write_ok(
        store,
        (1..=5)
            .map(|i| {
                upsert(
                    &qty,
                    i.to_string().as_bytes(),
                    (i * 10).to_string().as_bytes(),
                )
            })
            .chain([upsert(&name, b"1", b"one")])
            .collect(),
    )
    .await;
    for i in 1..=5 {
        assert_eq!(
            get_text(store, &qty, &i.to_string()).await,
            Some((i * 10).to_string())
        );
    }
    // Two columns of one row: both stay.
    assert_eq!(get_text(store, &name, "1").await.as_deref(), Some("one"));
    assert_eq!(get_text(store, &qty, "1").await.as_deref(), Some("10"));
    write_ok(
        store,
        vec![
            delete(&qty, b"2"),
            delete(&qty, b"4"),
            upsert(&qty, b"5", b"55"),
        ],
    )
    .await;
    assert_eq!(get(store, &qty, b"2").await, None);
    assert_eq!(get(store, &qty, b"4").await, None);
    assert_eq!(get_text(store, &qty, "5").await.as_deref(), Some("55"));
    let keys: BTreeSet<Vec<u8>> = store
        .scan_keys(&qty, now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    assert_eq!(
        keys,
        ["1", "3", "5"]
            .iter()
            .map(|k| k.as_bytes().to_vec())
            .collect()
    );
    // A row deleted through one column and written through another in the same batch: the
    // batch's order decides.
    write_ok(
        store,
        vec![delete(&qty, b"1"), upsert(&name, b"1", b"again")],
    )
    .await;
    assert_eq!(get_text(store, &name, "1").await.as_deref(), Some("again"));
    assert_eq!(
        get(store, &qty, b"1").await,
        None,
        "the row was recreated without qty"
    );
    // Reading many keys at once (where the store can) agrees with reading them one by one:
    // in order, a missing row or a NULL as none, a key asked twice answered twice.
    write_ok(store, vec![upsert(&qty, b"6", b"66")]).await;
    let many: Vec<sluice::Bytes> = ["5", "2", "3", "6", "1", "9", "5"]
        .iter()
        .map(|k| sluice::Bytes::copy_from_slice(k.as_bytes()))
        .collect();
    if let Some(read) = store.read_many(&qty, &many).await {
        let read: Vec<Option<Vec<u8>>> = read
            .expect("read many")
            .into_iter()
            .map(|v| v.map(|v| v.value.to_vec()))
            .collect();
        let mut one_by_one = Vec::new();
        for key in &many {
            one_by_one.push(get(store, &qty, key).await);
        }
        assert_eq!(read, one_by_one);
        assert!(store
            .read_many(&qty, &[])
            .await
            .is_some_and(|r| r.is_ok_and(|v| v.is_empty())));
    }
    db.exec(&format!("DROP TABLE {table}")).await;
}

/// An integer its column cannot hold (SMALLINT, unsigned on MySQL), or a text longer than its
/// VARCHAR(n), is refused by `check`, which runs before a write is acknowledged: PostgreSQL's
/// and MySQL's columns have limits (which they would enforce only when the flush runs),
/// SQLite's do not.
async fn values_are_checked_against_their_column_limits(store: &SharedStore, db: &TestDb) {
    let table = unique("ranged");
    let unsigned = if db.flavor == Flavor::Mysql {
        "SMALLINT UNSIGNED"
    } else {
        "INTEGER"
    };
    db.exec(&format!(
        "CREATE TABLE {table} (id SMALLINT PRIMARY KEY, qty SMALLINT, stock {unsigned}, \
         code VARCHAR(5))"
    ))
    .await;
    let qty = mapped(store, &table, "id", "qty").await;
    let stock = mapped(store, &table, "id", "stock").await;
    let code = mapped(store, &table, "id", "code").await;
    let check = |t: &Target, key: &str, value: &str| {
        store
            .check(t, key.as_bytes(), Some(&StoreWrite::string(b(value), None)))
            .map_err(|e| e.message)
    };
    check(&qty, "1", "32767").expect("in range");
    check(&qty, "1", "-32768").expect("in range");
    let ranged = db.flavor != Flavor::Sqlite;
    for (key, value) in [("1", "32768"), ("1", "-40000"), ("40000", "1")] {
        let verdict = check(&qty, key, value);
        assert_eq!(verdict.is_err(), ranged, "{key} = {value}: {verdict:?}");
        if let Err(e) = verdict {
            assert!(e.contains("cannot be stored in column"), "{e}");
        }
    }
    if db.flavor == Flavor::Mysql {
        let e = check(&stock, "1", "-1").expect_err("below an unsigned column");
        assert!(e.contains("stock"), "{e}");
        check(&stock, "1", "65535").expect("in range");
    }
    // A VARCHAR(5) takes five characters, however many bytes they are.
    check(&code, "1", "héllo").expect("five characters");
    let long = check(&code, "1", "abcdef");
    assert_eq!(long.is_err(), ranged, "six characters: {long:?}");
    write_ok(store, vec![upsert(&code, b"1", "héllo".as_bytes())]).await;
    assert_eq!(get_text(store, &code, "1").await.as_deref(), Some("héllo"));

    // What check lets through, the store takes.
    write_ok(store, vec![upsert(&qty, b"1", b"32767")]).await;
    assert_eq!(get_text(store, &qty, "1").await.as_deref(), Some("32767"));
}

async fn per_entry_outcomes(store: &SharedStore, db: &TestDb) {
    let table = unique("checked");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, qty INTEGER CHECK (qty >= 0), short VARCHAR(5), amount {})",
        db.pick("INTEGER", "bigint", "BIGINT"),
        db.pick("NUMERIC(10,2)", "numeric(10,2)", "DECIMAL(10,2)"),
    ))
    .await;
    let qty = mapped(store, &table, "id", "qty").await;

    // A database-side failure in the middle, a conversion failure, and good entries around.
    let outcome = write(
        store,
        vec![
            upsert(&qty, b"1", b"5"),
            upsert(&qty, b"2", b"-1"),
            upsert(&qty, b"3", b"7"),
            upsert(&qty, b"4", b"abc"),
            delete(&qty, b"5"),
            upsert(&qty, b"x", b"1"),
        ],
    )
    .await;
    assert!(
        outcome[0].is_ok() && outcome[2].is_ok() && outcome[4].is_ok(),
        "{outcome:?}"
    );
    let e = outcome[1].as_ref().unwrap_err();
    assert!(e.is_permanent(), "{e}");
    let e = outcome[3].as_ref().unwrap_err();
    assert!(e.is_permanent(), "{e}");
    assert!(
        e.message
            .contains("value \"abc\" for key \"4\" cannot be stored in column")
            && e.message.contains("qty (integer)"),
        "{e}"
    );
    let e = outcome[5].as_ref().unwrap_err();
    assert!(e.message.contains("key capture \"x\""), "{e}");
    assert_eq!(get_text(store, &qty, "1").await.as_deref(), Some("5"));
    assert_eq!(get(store, &qty, b"2").await, None);
    assert_eq!(get_text(store, &qty, "3").await.as_deref(), Some("7"));
    assert_eq!(get(store, &qty, b"4").await, None);

    // A large batch with a few bad entries scattered: exactly those fail.
    let bad = [17usize, 150, 299];
    let ops: Vec<StoreOp> = (0..300usize)
        .map(|i| {
            let v = if bad.contains(&i) {
                "-5".to_string()
            } else {
                i.to_string()
            };
            upsert(&qty, (1000 + i).to_string().as_bytes(), v.as_bytes())
        })
        .collect();
    let outcome = write(store, ops).await;
    for (i, r) in outcome.iter().enumerate() {
        assert_eq!(r.is_err(), bad.contains(&i), "entry {i}: {r:?}");
    }
    for i in [0usize, 16, 18, 151, 298] {
        assert_eq!(
            get_text(store, &qty, &(1000 + i).to_string()).await,
            Some(i.to_string())
        );
    }
    assert_eq!(get(store, &qty, b"1017").await, None);

    // A row whose last entry fails keeps the entry before it, as in-order application would.
    let outcome = write(
        store,
        vec![upsert(&qty, b"6", b"3"), upsert(&qty, b"6", b"-1")],
    )
    .await;
    assert!(outcome[0].is_ok() && outcome[1].is_err(), "{outcome:?}");
    assert_eq!(get_text(store, &qty, "6").await.as_deref(), Some("3"));

    if db.flavor != Flavor::Sqlite {
        // Limits only the server enforces: varchar length, numeric precision.
        let short = mapped(store, &table, "id", "short").await;
        let amount = mapped(store, &table, "id", "amount").await;
        let outcome = write(
            store,
            vec![
                upsert(&short, b"7", b"fits"),
                upsert(&short, b"8", b"far too long"),
                upsert(&amount, b"9", b"123456789012"),
                upsert(&amount, b"10", b"12.5"),
            ],
        )
        .await;
        assert!(outcome[0].is_ok() && outcome[3].is_ok(), "{outcome:?}");
        for i in [1, 2] {
            let e = outcome[i].as_ref().unwrap_err();
            assert!(e.is_permanent(), "{e}");
        }
        let e = outcome[1].as_ref().unwrap_err();
        assert!(e.message.contains("\"8\""), "the error names the key: {e}");
        assert_eq!(get_text(store, &short, "7").await.as_deref(), Some("fits"));
        assert_eq!(get(store, &short, b"8").await, None);
        assert_eq!(
            get_text(store, &amount, "10").await.as_deref(),
            Some("12.50")
        );
    }
    db.exec(&format!("DROP TABLE {table}")).await;

    // A value colliding with another row on a unique index of the value column fails that
    // entry; it never updates the other row.
    let table = unique("uniqval");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, email VARCHAR(40) UNIQUE); \
         INSERT INTO {table} (id, email) VALUES (1, 'x@example.com')",
        db.pick("INTEGER", "bigint", "BIGINT")
    ))
    .await;
    let email = mapped(store, &table, "id", "email").await;
    let outcome = write(
        store,
        vec![
            upsert(&email, b"2", b"x@example.com"),
            upsert(&email, b"3", b"y@example.com"),
            upsert(&email, b"1", b"z@example.com"),
        ],
    )
    .await;
    assert!(
        outcome[0].as_ref().is_err_and(|e| e.is_permanent()),
        "{outcome:?}"
    );
    assert!(outcome[1].is_ok() && outcome[2].is_ok(), "{outcome:?}");
    assert_eq!(get(store, &email, b"2").await, None);
    assert_eq!(
        get_text(store, &email, "1").await.as_deref(),
        Some("z@example.com")
    );
    assert_eq!(
        get_text(store, &email, "3").await.as_deref(),
        Some("y@example.com")
    );
    db.exec(&format!("DROP TABLE {table}")).await;
}

async fn repeated_keys(store: &SharedStore, db: &TestDb) {
    let t = Target::Builtin { db: 3 };
    write_ok(
        store,
        vec![
            upsert(&t, b"a", b"1"),
            upsert(&t, b"b", b"1"),
            delete(&t, b"a"),
            upsert(&t, b"b", b"2"),
            upsert(&t, b"a", b"2"),
            delete(&t, b"b"),
        ],
    )
    .await;
    assert_eq!(get_text(store, &t, "a").await.as_deref(), Some("2"));
    assert_eq!(get(store, &t, b"b").await, None);
    // The same key in two databases is two rows.
    write_ok(
        store,
        vec![
            upsert(&t, b"c", b"3"),
            upsert(&Target::Builtin { db: 4 }, b"c", b"4"),
        ],
    )
    .await;
    assert_eq!(get_text(store, &t, "c").await.as_deref(), Some("3"));
    assert_eq!(
        get_text(store, &Target::Builtin { db: 4 }, "c")
            .await
            .as_deref(),
        Some("4")
    );

    let table = unique("rep");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, v TEXT)",
        db.pick("INTEGER", "bigint", "BIGINT")
    ))
    .await;
    let m = mapped(store, &table, "id", "v").await;
    write_ok(
        store,
        vec![
            upsert(&m, b"1", b"x"),
            delete(&m, b"1"),
            upsert(&m, b"2", b"x"),
            upsert(&m, b"1", b"y"),
            upsert(&m, b"2", b"y"),
            delete(&m, b"2"),
        ],
    )
    .await;
    assert_eq!(get_text(store, &m, "1").await.as_deref(), Some("y"));
    assert_eq!(get(store, &m, b"2").await, None);
    db.exec(&format!("DROP TABLE {table}")).await;
    store.clear(&t).await.unwrap();
}

async fn odd_keys(store: &SharedStore) {
    let t = Target::Builtin { db: 7 };
    let keys: Vec<Vec<u8>> = vec![
        b"\x00".to_vec(),
        b"\xff".to_vec(),
        b"\x00\xff\x00".to_vec(),
        b"a\x00b".to_vec(),
        "é".as_bytes().to_vec(),
        "🦀 crab".as_bytes().to_vec(),
        "日本語".as_bytes().to_vec(),
        b"with space ".to_vec(),
        b"A".to_vec(),
        b"a".to_vec(),
    ];
    let ops = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let mut v = k.clone();
            v.extend_from_slice(&[0, 255, i as u8]);
            upsert(&t, k, &v)
        })
        .collect();
    write_ok(store, ops).await;
    for (i, k) in keys.iter().enumerate() {
        let mut v = k.clone();
        v.extend_from_slice(&[0, 255, i as u8]);
        assert_eq!(get(store, &t, k).await, Some(v), "key {k:?}");
    }
    let scanned: BTreeSet<Vec<u8>> = store
        .scan_keys(&t, now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    assert_eq!(scanned, keys.iter().cloned().collect());
    store.clear(&t).await.unwrap();
}

async fn big_value(store: &SharedStore) {
    let t = Target::Builtin { db: 8 };
    let value: Vec<u8> = (0..10 * 1024 * 1024)
        .map(|i: usize| (i * 31 % 251) as u8)
        .collect();
    write_ok(
        store,
        vec![upsert(&t, b"big", &value), upsert(&t, b"small", b"s")],
    )
    .await;
    let back = get(store, &t, b"big").await.expect("big value stored");
    assert_eq!(back.len(), value.len());
    assert!(back == value, "10 MiB value round-trips byte for byte");
    store.clear(&t).await.unwrap();
}

async fn typed_round_trip(store: &SharedStore, db: &TestDb) {
    let table = unique("typed");
    db.exec(&format!(
        "CREATE TABLE {table} ({})",
        db.pick(
            "id INTEGER PRIMARY KEY, txt TEXT, ival INTEGER, num NUMERIC(10,2), flt REAL, \
             flag BOOLEAN, bin BLOB, doc JSON, ts TIMESTAMP",
            "id bigint PRIMARY KEY, txt text, ival integer, num numeric(10,2), flt double precision, \
             flag boolean, bin bytea, doc json, ts timestamp",
            "id BIGINT PRIMARY KEY, txt TEXT, ival INT, num DECIMAL(10,2), flt DOUBLE, \
             flag BOOLEAN, bin LONGBLOB, doc JSON, ts DATETIME",
        )
    ))
    .await;
    let schema = store.table_schema(&table).await.unwrap().unwrap();
    let kinds: Vec<(String, ColumnType)> = schema
        .columns
        .iter()
        .map(|c| (c.name.to_lowercase(), c.kind))
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("id".into(), ColumnType::Integer),
            ("txt".into(), ColumnType::Text),
            ("ival".into(), ColumnType::Integer),
            ("num".into(), ColumnType::Numeric),
            ("flt".into(), ColumnType::Real),
            ("flag".into(), ColumnType::Boolean),
            ("bin".into(), ColumnType::Blob),
            ("doc".into(), ColumnType::Json),
            ("ts".into(), ColumnType::Timestamp),
        ],
        "{:?}",
        schema.columns
    );
    let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
        ("txt", "héllo wörld 🦀".into(), "héllo wörld 🦀".into()),
        ("ival", b"-42".to_vec(), b"-42".to_vec()),
        (
            "num",
            b"7.5".to_vec(),
            db.pick("7.5", "7.50", "7.50").into(),
        ),
        ("flt", b"0.25".to_vec(), b"0.25".to_vec()),
        ("flag", b"true".to_vec(), db.pick("1", "true", "1").into()),
        ("bin", vec![0, 255, 1, 2, 0], vec![0, 255, 1, 2, 0]),
        (
            "doc",
            br#"{"a": [1, 2]}"#.to_vec(),
            br#"{"a": [1, 2]}"#.to_vec(),
        ),
        (
            "ts",
            b"2024-01-02 03:04:05".to_vec(),
            b"2024-01-02 03:04:05".to_vec(),
        ),
    ];
    for (column, input, expected) in &cases {
        let m = mapped(store, &table, "id", column).await;
        write_ok(store, vec![upsert(&m, b"1", input)]).await;
        assert_eq!(
            get(store, &m, b"1")
                .await
                .map(|v| String::from_utf8_lossy(&v).into_owned()),
            Some(String::from_utf8_lossy(expected).into_owned()),
            "{column}"
        );
    }
    // Values the column type cannot hold are refused before the database, naming the column.
    for (column, bad, kind) in [
        ("ival", "abc", "integer"),
        ("ival", "1.5", "integer"),
        ("flt", "nan", "real"),
        ("flag", "maybe", "boolean"),
        ("num", "seven", "numeric"),
    ] {
        let m = mapped(store, &table, "id", column).await;
        let bad_write = upsert(&m, b"1", bad.as_bytes()).write;
        let err = store.check(&m, b"1", Some(&bad_write)).unwrap_err();
        assert!(err.is_permanent());
        assert!(
            err.message
                .contains(&format!("value \"{bad}\" for key \"1\""))
                && err.message.contains(&format!("{table}.{column} ({kind})")),
            "{err}"
        );
        let outcome = write(store, vec![upsert(&m, b"2", bad.as_bytes())]).await;
        assert!(outcome[0].is_err());
    }
    if db.flavor != Flavor::Sqlite {
        // The server parses JSON and timestamps; what it refuses fails that entry only.
        let doc = mapped(store, &table, "id", "doc").await;
        let ts = mapped(store, &table, "id", "ts").await;
        let outcome = write(
            store,
            vec![
                upsert(&doc, b"3", b"{not json"),
                upsert(&ts, b"4", b"not a time"),
                upsert(&doc, b"5", b"[1]"),
            ],
        )
        .await;
        assert!(
            outcome[0].is_err() && outcome[1].is_err() && outcome[2].is_ok(),
            "{outcome:?}"
        );
    }
    db.exec(&format!("DROP TABLE {table}")).await;
}

/// An upsert into a typed column reports the text the column then holds (where the backend
/// can), byte for byte what a read returns, so write-through can cache it without reading the
/// row back; deletes and untyped columns report nothing.
async fn stored_text_is_what_a_read_returns(store: &SharedStore, db: &TestDb) {
    let table = unique("stored");
    db.exec(&format!(
        "CREATE TABLE {table} ({})",
        db.pick(
            "id INTEGER PRIMARY KEY, num NUMERIC(10,2), flt REAL, flag BOOLEAN, txt TEXT",
            "id bigint PRIMARY KEY, num numeric(10,2), flt double precision, flag boolean, txt text",
            "id BIGINT PRIMARY KEY, num DECIMAL(10,2), flt DOUBLE, flag BOOLEAN, txt TEXT",
        )
    ))
    .await;
    let reports = db.reports_stored_text().await;
    let num = mapped(store, &table, "id", "num").await;
    let flt = mapped(store, &table, "id", "flt").await;
    let flag = mapped(store, &table, "id", "flag").await;
    let txt = mapped(store, &table, "id", "txt").await;
    let stored = |outcome: &store::BatchOutcome, i: usize| match &outcome[i] {
        Ok(w) => w
            .stored
            .as_ref()
            .map(|s| String::from_utf8_lossy(s).into_owned()),
        Err(e) => panic!("entry {i} failed: {e}"),
    };

    // One table, upserts only: PostgreSQL's single-statement path.
    let values = ["9.999", "7.5", "12", "-0.001"];
    let ops: Vec<StoreOp> = values
        .iter()
        .enumerate()
        .map(|(i, v)| upsert(&num, (i + 1).to_string().as_bytes(), v.as_bytes()))
        .collect();
    let outcome = write(store, ops).await;
    for i in 0..values.len() {
        let read = get_text(store, &num, &(i + 1).to_string()).await;
        assert!(read.is_some());
        match stored(&outcome, i) {
            Some(s) => assert_eq!(Some(s), read, "entry {i}"),
            None => assert!(!reports, "entry {i} reports nothing"),
        }
    }
    assert_eq!(
        get_text(store, &num, "1").await.as_deref(),
        Some(db.pick("9.999", "10.00", "10.00"))
    );

    // Several statements in a transaction: two typed columns, a text column and a delete.
    let outcome = write(
        store,
        vec![
            upsert(&num, b"1", b"3.14159"),
            upsert(&flag, b"1", b"true"),
            upsert(&flt, b"2", b"0.1"),
            upsert(&txt, b"2", b"  as sent  "),
            delete(&num, b"4"),
        ],
    )
    .await;
    for (i, target, key) in [(0, &num, "1"), (1, &flag, "1"), (2, &flt, "2")] {
        let read = get_text(store, target, key).await;
        match stored(&outcome, i) {
            Some(s) => assert_eq!(Some(s), read, "entry {i}"),
            None => assert!(!reports, "entry {i} reports nothing"),
        }
    }
    assert_eq!(stored(&outcome, 3), None, "a text column is stored as sent");
    assert_eq!(stored(&outcome, 4), None, "a delete reports nothing");

    // The last write of a repeated key reports the row's final text.
    let outcome = write(
        store,
        vec![
            upsert(&num, b"8", b"1.111"),
            upsert(&num, b"7", b"1"),
            upsert(&num, b"8", b"2.222"),
        ],
    )
    .await;
    let eight = get_text(store, &num, "8").await;
    assert_eq!(eight.as_deref(), Some(db.pick("2.222", "2.22", "2.22")));
    match stored(&outcome, 2) {
        Some(s) => assert_eq!(Some(s), eight),
        None => assert!(!reports, "the deciding write of row 8 reports nothing"),
    }
    db.exec(&format!("DROP TABLE {table}")).await;
}

async fn injection_is_inert(store: &SharedStore, db: &TestDb) {
    let nasty = [
        "'; DROP TABLE x; --",
        "\" OR 1=1",
        "`; DELETE FROM sluice_kv; --",
        "\\'",
    ];
    let t = Target::Builtin { db: 9 };
    write_ok(
        store,
        nasty
            .iter()
            .zip(nasty.iter().rev())
            .map(|(k, v)| upsert(&t, k.as_bytes(), v.as_bytes()))
            .collect(),
    )
    .await;
    for (k, v) in nasty.iter().zip(nasty.iter().rev()) {
        assert_eq!(get_text(store, &t, k).await.as_deref(), Some(*v));
    }
    let table = unique("codes");
    db.exec(&format!(
        "CREATE TABLE {table} (code VARCHAR(64) PRIMARY KEY, label TEXT)"
    ))
    .await;
    let m = mapped(store, &table, "code", "label").await;
    write_ok(
        store,
        nasty
            .iter()
            .zip(nasty.iter().rev())
            .map(|(k, v)| upsert(&m, k.as_bytes(), v.as_bytes()))
            .collect(),
    )
    .await;
    for (k, v) in nasty.iter().zip(nasty.iter().rev()) {
        assert_eq!(get_text(store, &m, k).await.as_deref(), Some(*v));
    }
    let keys: BTreeSet<String> = store
        .scan_keys(&m, now_ms())
        .await
        .unwrap()
        .into_iter()
        .map(|k| String::from_utf8(k.to_vec()).unwrap())
        .collect();
    assert_eq!(keys, nasty.iter().map(|s| s.to_string()).collect());
    write_ok(store, vec![delete(&m, nasty[0].as_bytes())]).await;
    assert_eq!(get(store, &m, nasty[0].as_bytes()).await, None);
    assert!(
        store.table_schema(&table).await.unwrap().is_some(),
        "the table is still there"
    );
    assert_eq!(
        store.scan_keys(&t, now_ms()).await.unwrap().len(),
        nasty.len()
    );
    db.exec(&format!("DROP TABLE {table}")).await;
    store.clear(&t).await.unwrap();
}

async fn scan_clear_and_expiry(store: &SharedStore, db: &TestDb) {
    let t = Target::Builtin { db: 5 };
    let other = Target::Builtin { db: 6 };
    let now = now_ms();
    write_ok(
        store,
        vec![
            upsert(&t, b"forever", b"1"),
            upsert_exp(&t, b"later", b"2", Some(now + 3_600_000)),
            upsert_exp(&t, b"gone1", b"3", Some(now - 1_000)),
            upsert_exp(&t, b"gone2", b"3", Some(now - 2_000)),
            upsert_exp(&other, b"gone3", b"3", Some(now - 3_000)),
            upsert(&other, b"kept", b"4"),
        ],
    )
    .await;
    let keys: BTreeSet<Vec<u8>> = store
        .scan_keys(&t, now)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    assert_eq!(
        keys,
        [b"forever".to_vec(), b"later".to_vec()]
            .into_iter()
            .collect()
    );
    // Expired rows are still readable, with their expiry: the caller decides.
    assert_eq!(
        store.read(&t, b"gone1").await.unwrap().unwrap().expires_at,
        Some(now - 1_000)
    );

    // Each purged key is reported once, with its database: the engine signals its expiry.
    let mut purged = store.purge_expired(now, 2).await.unwrap();
    assert_eq!(purged.len(), 2);
    purged.extend(store.purge_expired(now, 10).await.unwrap());
    purged.sort();
    let key = |db, key: &'static [u8]| DbKey {
        db,
        key: Bytes::from_static(key),
    };
    assert_eq!(
        purged,
        vec![key(5, b"gone1"), key(5, b"gone2"), key(6, b"gone3")]
    );
    assert!(store.purge_expired(now, 10).await.unwrap().is_empty());
    assert_eq!(get(store, &t, b"gone1").await, None);
    assert_eq!(get(store, &other, b"gone3").await, None);

    // delete_if_expired removes only a row that is expired at that time.
    write_ok(
        store,
        vec![
            upsert_exp(&t, b"stale", b"x", Some(now - 10)),
            upsert_exp(&t, b"fresh", b"y", Some(now + 60_000)),
        ],
    )
    .await;
    // It says whether it deleted: a read that finds a key expired signals it only then.
    assert!(store.delete_if_expired(5, b"stale", now).await.unwrap());
    assert!(!store.delete_if_expired(5, b"stale", now).await.unwrap());
    assert!(!store.delete_if_expired(5, b"fresh", now).await.unwrap());
    assert!(!store.delete_if_expired(5, b"forever", now).await.unwrap());
    assert!(!store.delete_if_expired(5, b"missing", now).await.unwrap());
    assert_eq!(get(store, &t, b"stale").await, None);
    assert_eq!(get_text(store, &t, "fresh").await.as_deref(), Some("y"));
    assert_eq!(get_text(store, &t, "forever").await.as_deref(), Some("1"));

    store.clear(&t).await.unwrap();
    assert!(store.scan_keys(&t, now).await.unwrap().is_empty());
    assert_eq!(
        get_text(store, &other, "kept").await.as_deref(),
        Some("4"),
        "clear is per database"
    );
    store.clear(&other).await.unwrap();

    // Mapped: scan lists rows whose value is set; clear empties the table.
    let table = unique("scan");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, v TEXT); INSERT INTO {table} (id, v) VALUES (99, NULL)",
        db.pick("INTEGER", "bigint", "BIGINT")
    ))
    .await;
    let m = mapped(store, &table, "id", "v").await;
    write_ok(store, vec![upsert(&m, b"1", b"a"), upsert(&m, b"2", b"b")]).await;
    let keys: BTreeSet<Vec<u8>> = store
        .scan_keys(&m, now)
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.to_vec())
        .collect();
    assert_eq!(keys, [b"1".to_vec(), b"2".to_vec()].into_iter().collect());
    assert_eq!(
        get(store, &m, b"99").await,
        None,
        "a NULL value reads as absent"
    );
    store.clear(&m).await.unwrap();
    assert!(store.scan_keys(&m, now).await.unwrap().is_empty());
    assert_eq!(get(store, &m, b"1").await, None);
    db.exec(&format!("DROP TABLE {table}")).await;
}

async fn schema_reports_unique_columns(store: &SharedStore, db: &TestDb) {
    let table = unique("uniq");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, code VARCHAR(20) UNIQUE, a INTEGER, b INTEGER, note TEXT, UNIQUE (a, b))",
        db.pick("INTEGER", "bigint", "BIGINT")
    ))
    .await;
    let schema = store.table_schema(&table).await.unwrap().unwrap();
    let unique_cols: BTreeSet<String> = schema
        .unique_columns
        .iter()
        .map(|c| c.to_lowercase())
        .collect();
    assert_eq!(
        unique_cols,
        ["code", "id"].iter().map(|s| s.to_string()).collect()
    );
    let names: Vec<String> = schema
        .columns
        .iter()
        .map(|c| c.name.to_lowercase())
        .collect();
    assert_eq!(names, ["id", "code", "a", "b", "note"]);
    assert!(schema.column("CODE").is_some());
    assert!(store
        .table_schema(&unique("missing"))
        .await
        .unwrap()
        .is_none());
    db.exec(&format!("DROP TABLE {table}")).await;
}

/// A new table `id` / `price numeric(10,2)` named after `prefix`, and an engine config (journal
/// none) whose keyspace `price` maps `product:{id}:price` onto it with `policy`, beside the
/// built-in keyspace with the same policy.
async fn prices_config(db: &TestDb, prefix: &str, policy: Policy) -> (String, Config) {
    let table = unique(prefix);
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, price {})",
        db.pick("INTEGER", "bigint", "BIGINT"),
        db.pick("NUMERIC(10,2)", "numeric(10,2)", "DECIMAL(10,2)")
    ))
    .await;
    let config = engine_config(
        db,
        vec![
            mapped_keyspace("price", &table, policy),
            KeyspaceConfig::builtin(policy),
        ],
    );
    (table, config)
}

/// Keyspace `name`: `product:{id}:<name>` mapped onto column `name` of `table`, keyed by `id`.
fn mapped_keyspace(name: &str, table: &str, policy: Policy) -> KeyspaceConfig {
    let mut ks = KeyspaceConfig::builtin(policy);
    ks.name = name.into();
    ks.keys = format!("product:{{id}}:{name}");
    ks.table = Some(table.into());
    ks.key_column = Some("id".into());
    ks.value_column = Some(name.into());
    ks
}

/// An engine config for these tests (journal none, data in a fresh directory).
fn engine_config(db: &TestDb, keyspaces: Vec<KeyspaceConfig>) -> Config {
    let mut config = Config {
        data_dir: db.dir.path().join(unique("engine")),
        shutdown_timeout: Duration::from_secs(5),
        keyspaces,
        ..Config::default()
    };
    config.journal.durability = Durability::None;
    config
}

/// The engine on this store: a write-back keyspace mapped onto a typed table, plus the
/// built-in table, written, flushed and read back from the database.
async fn engine_end_to_end(store: SharedStore, db: &TestDb) {
    let (table, mut config) = prices_config(db, "prices", Policy::WriteBack).await;
    config.keyspaces[0].flush_interval = Duration::from_millis(50);
    let sluice = Sluice::builder(config)
        .store(store.clone())
        .open()
        .await
        .expect("engine opens on this store");
    for (id, price) in [("1", "7.5"), ("2", "12"), ("3", "0.1")] {
        sluice
            .set(
                0,
                b(&format!("product:{id}:price")),
                b(price),
                SetOptions::default(),
            )
            .await
            .unwrap();
    }
    sluice
        .set(0, b("plain"), b("hello"), SetOptions::default())
        .await
        .unwrap();
    sluice
        .set(0, b("product:3:price"), b("3.25"), SetOptions::default())
        .await
        .unwrap();
    sluice.del(0, &b("product:2:price")).await.unwrap();
    sluice.flush().await.unwrap();

    let m = mapped(&store, &table, "id", "price").await;
    assert_eq!(
        get_text(&store, &m, "1").await.as_deref(),
        Some(db.pick("7.5", "7.50", "7.50"))
    );
    assert_eq!(get(&store, &m, b"2").await, None);
    assert_eq!(
        get_text(&store, &m, "3").await.as_deref(),
        Some(db.pick("3.25", "3.25", "3.25"))
    );
    assert_eq!(
        get_text(&store, &Target::Builtin { db: 0 }, "plain")
            .await
            .as_deref(),
        Some("hello")
    );
    assert!(sluice.get(0, b("product:1:price")).await.unwrap().is_some());
    let report = sluice.shutdown().await;
    assert_eq!(report.unflushed, 0);
    store.clear(&Target::Builtin { db: 0 }).await.unwrap();
    db.exec(&format!("DROP TABLE {table}")).await;
}

/// Write-through on a typed column caches the database's own text, not the client's: `9.999`
/// into numeric(10,2) is served as `10.00` right after the SET (from the cache) and after the
/// cached copy is dropped (read through). Where the commit reports the stored text, the SET
/// costs no read of the row.
async fn write_through_caches_the_stored_text(store: SharedStore, db: &TestDb) {
    let (table, config) = prices_config(db, "wt_prices", Policy::WriteThrough).await;
    let faulty = FaultyStore::new(store.clone());
    let cache = Arc::new(MemoryCache::new(1 << 20, Arc::new(SystemClock)));
    let sluice = Sluice::builder(config)
        .store(faulty.clone())
        .cache(cache.clone())
        .open()
        .await
        .expect("engine opens on this store");
    let key = b("product:1:price");
    let expected = db.pick("9.999", "10.00", "10.00");
    let reads_before = faulty.reads();
    sluice
        .set(0, key.clone(), b("9.999"), SetOptions::default())
        .await
        .unwrap();
    let reads_for_set = faulty.reads() - reads_before;
    let text = |v: Option<sluice::Bytes>| v.map(|v| String::from_utf8_lossy(&v).into_owned());
    assert_eq!(
        text(sluice.get(0, key.clone()).await.unwrap()).as_deref(),
        Some(expected),
        "right after the write, from the cache"
    );
    assert_eq!(
        faulty.reads() - reads_before,
        reads_for_set,
        "the GET was served from the cache"
    );
    if db.reports_stored_text().await {
        assert_eq!(reads_for_set, 0, "the commit reported the stored text");
    } else {
        assert_eq!(reads_for_set, 1, "the row was read back once");
    }
    cache
        .remove(&DbKey {
            db: 0,
            key: key.clone(),
        })
        .await
        .unwrap();
    assert_eq!(
        text(sluice.get(0, key.clone()).await.unwrap()).as_deref(),
        Some(expected),
        "read through after the cached copy was dropped"
    );
    assert_eq!(faulty.reads() - reads_before, reads_for_set + 1);
    sluice.shutdown().await;
    db.exec(&format!("DROP TABLE {table}")).await;
}

/// A broken connection surfaces as a transient error (or is replaced unseen), and the next
/// call works on a fresh one.
async fn reconnects(store: &SharedStore, db: &TestDb) {
    let t = Target::Builtin { db: 10 };
    write_ok(store, vec![upsert(&t, b"k", b"v")]).await;
    let killed = db.kill_store_connections().await;
    assert!(killed > 0, "the store holds a connection");
    tokio::time::sleep(Duration::from_millis(200)).await;
    match store.read(&t, b"k").await {
        Ok(v) => assert_eq!(v.map(|v| v.value.to_vec()), Some(b"v".to_vec())),
        Err(e) => assert!(!e.is_permanent(), "a killed connection is transient: {e}"),
    }
    let mut last = None;
    for _ in 0..3 {
        match store.read(&t, b"k").await {
            Ok(v) => {
                last = Some(v);
                break;
            }
            Err(e) => assert!(!e.is_permanent(), "{e}"),
        }
    }
    assert_eq!(
        last.flatten().map(|v| v.value.to_vec()),
        Some(b"v".to_vec())
    );
    store.clear(&t).await.unwrap();
}

/// Rough throughput of one 10k-row upsert batch, printed, not asserted.
async fn throughput(store: &SharedStore, db: &TestDb) {
    let t = Target::Builtin { db: 11 };
    let ops: Vec<StoreOp> = (0..10_000)
        .map(|i| {
            upsert(
                &t,
                format!("bench:{i}").as_bytes(),
                format!("value-{i}").as_bytes(),
            )
        })
        .collect();
    let started = Instant::now();
    write_ok(store, ops).await;
    let builtin = started.elapsed();

    let table = unique("bench");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, price {})",
        db.pick("INTEGER", "bigint", "BIGINT"),
        db.pick("NUMERIC(10,2)", "numeric(10,2)", "DECIMAL(10,2)")
    ))
    .await;
    let m = mapped(store, &table, "id", "price").await;
    let ops: Vec<StoreOp> = (0..10_000)
        .map(|i| {
            upsert(
                &m,
                i.to_string().as_bytes(),
                format!("{}.25", i % 1000).as_bytes(),
            )
        })
        .collect();
    let started = Instant::now();
    write_ok(store, ops).await;
    let mapped_time = started.elapsed();
    println!(
        "throughput[{:?}]: 10k-row upsert batch: sluice_kv {:.0} rows/s ({:?}), mapped numeric column {:.0} rows/s ({:?})",
        db.flavor,
        10_000.0 / builtin.as_secs_f64(),
        builtin,
        10_000.0 / mapped_time.as_secs_f64(),
        mapped_time
    );
    store.clear(&t).await.unwrap();
    db.exec(&format!("DROP TABLE {table}")).await;
}

// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_sqlite() {
    let db = TestDb::sqlite().await;
    conformance(&db.store, &db).await;
    throughput(&db.store, &db).await;
    engine_end_to_end(db.store.clone(), &db).await;
    write_through_caches_the_stored_text(db.store.clone(), &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    conformance(&db.store, &db).await;
    throughput(&db.store, &db).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    conformance(&db.store, &db).await;
    mysql_limits(&db.store).await;
    throughput(&db.store, &db).await;
    db.drop_all().await;
}

/// Sorted sets by member, on every backend (its own tests, so `zsets` selects them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zsets_by_member_sqlite() {
    let db = TestDb::sqlite().await;
    zsets_by_member(&db.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zsets_by_member_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    zsets_by_member(&db.store).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zsets_by_member_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    zsets_by_member(&db.store).await;
    db.drop_all().await;
}

/// Lists by position, on every backend (its own tests, so `lists` selects them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_by_position_sqlite() {
    let db = TestDb::sqlite().await;
    lists_by_position(&db.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_by_position_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    lists_by_position(&db.store).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_by_position_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    lists_by_position(&db.store).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_by_row_sqlite() {
    let db = TestDb::sqlite().await;
    streams_by_row(&db.store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_by_row_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    streams_by_row(&db.store).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_by_row_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    streams_by_row(&db.store).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    engine_end_to_end(db.store.clone(), &db).await;
    write_through_caches_the_stored_text(db.store.clone(), &db).await;
    reconnects(&db.store, &db).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_on_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    engine_end_to_end(db.store.clone(), &db).await;
    write_through_caches_the_stored_text(db.store.clone(), &db).await;
    reconnects(&db.store, &db).await;
    db.drop_all().await;
}

/// Two write-through keyspaces map two columns of one table, and many writers hit the same rows
/// through both at once: their group-committed batches lock rows in different orders, so the
/// database aborts some of them as deadlocks. Every write must still be acknowledged (the
/// committer runs a rolled-back batch again), and each column must end with the last value its
/// writer was told was stored. Returns how many writes there were.
async fn conflicting_keyspaces_on_one_table(store: SharedStore, db: &TestDb) -> usize {
    const ROWS: usize = 12;
    const ROUNDS: usize = 30;
    let table = unique("contended");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, price {}, stock {})",
        db.pick("INTEGER", "bigint", "BIGINT"),
        db.pick("NUMERIC(10,2)", "numeric(10,2)", "DECIMAL(10,2)"),
        db.pick("INTEGER", "integer", "INT"),
    ))
    .await;
    let config = engine_config(
        db,
        vec![
            mapped_keyspace("price", &table, Policy::WriteThrough),
            mapped_keyspace("stock", &table, Policy::WriteThrough),
            KeyspaceConfig::builtin(Policy::WriteThrough),
        ],
    );
    let sluice = Sluice::builder(config)
        .store(store.clone())
        .open()
        .await
        .expect("engine opens on this store");
    // One writer per (row, column), each writing its own key in sequence, so its last
    // acknowledged value is the one the column must end with. Writers start at different
    // rows, so concurrent batches hold the rows in different orders.
    let mut tasks = Vec::new();
    for row in 0..ROWS {
        for column in ["price", "stock"] {
            let sluice = sluice.clone();
            tasks.push(tokio::spawn(async move {
                let key = b(&format!("product:{row}:{column}"));
                let mut last = String::new();
                for round in 0..ROUNDS {
                    let value = match column {
                        "price" => format!("{round}.{row:02}"),
                        _ => format!("{}", round * 100 + row),
                    };
                    sluice
                        .set(0, key.clone(), b(&value), SetOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("SET {key:?} {value}: {e}"));
                    last = value;
                }
                (row, column, last)
            }));
        }
    }
    let mut last = Vec::new();
    for t in tasks {
        last.push(
            tokio::time::timeout(Duration::from_secs(120), t)
                .await
                .expect("writers hung")
                .expect("writer task"),
        );
    }
    let price = mapped(&store, &table, "id", "price").await;
    let stock = mapped(&store, &table, "id", "stock").await;
    for (row, column, value) in last {
        let target = if column == "price" { &price } else { &stock };
        // Prices have two decimals, as the column prints them.
        let stored = get_text(&store, target, &row.to_string()).await;
        assert_eq!(stored, Some(value), "{column} of row {row}");
        // And the key serves that same text.
        let served = sluice
            .get(0, b(&format!("product:{row}:{column}")))
            .await
            .unwrap()
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        assert_eq!(served, stored, "{column} of row {row} as served");
    }
    sluice.shutdown().await;
    db.exec(&format!("DROP TABLE {table}")).await;
    ROWS * 2 * ROUNDS
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_keyspaces_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    let deadlocks = || async {
        let (client, conn) = tokio_postgres::connect(
            &std::env::var("SLUICE_TEST_POSTGRES_URL").unwrap(),
            tokio_postgres::NoTls,
        )
        .await
        .unwrap();
        tokio::spawn(conn);
        let _ = client
            .execute("SELECT pg_stat_force_next_flush()", &[])
            .await;
        let row = client
            .query_one(
                "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0)
    };
    let before = deadlocks().await;
    let started = Instant::now();
    let writes = conflicting_keyspaces_on_one_table(db.store.clone(), &db).await;
    println!(
        "conflicting keyspaces on PostgreSQL: {writes} writes acknowledged in {:?}; the server counted about {} deadlocks meanwhile",
        started.elapsed(),
        deadlocks().await - before
    );
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_keyspaces_on_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let started = Instant::now();
    let writes = conflicting_keyspaces_on_one_table(db.store.clone(), &db).await;
    println!(
        "conflicting keyspaces on MySQL: {writes} writes acknowledged in {:?}",
        started.elapsed()
    );
    db.drop_all().await;
}

/// Built-in keys longer than InnoDB can index are refused up front, with a clear message.
async fn mysql_limits(store: &SharedStore) {
    let t = Target::Builtin { db: 12 };
    let ok = vec![b'k'; store::mysql::MAX_BUILTIN_KEY];
    let long = vec![b'k'; store::mysql::MAX_BUILTIN_KEY + 1];
    let outcome = write(store, vec![upsert(&t, &ok, b"1"), upsert(&t, &long, b"2")]).await;
    assert!(outcome[0].is_ok(), "{outcome:?}");
    let e = outcome[1].as_ref().unwrap_err();
    assert!(e.is_permanent() && e.message.contains("3070 bytes"), "{e}");
    assert_eq!(get(store, &t, &ok).await, Some(b"1".to_vec()));
    store.clear(&t).await.unwrap();
}

#[tokio::test]
async fn unreachable_servers_fail_fast_and_transient() {
    for url in [
        "postgres://postgres@127.0.0.1:1/test",
        "mysql://root@127.0.0.1:1/test",
    ] {
        let started = Instant::now();
        let err = match store::open_url(url).await {
            Ok(_) => panic!("{url} opened"),
            Err(e) => e,
        };
        assert!(!err.is_permanent(), "{url}: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{url} took {:?}",
            started.elapsed()
        );
    }
    let err = match store::open_url("oracle://x").await {
        Ok(_) => panic!("oracle opened"),
        Err(e) => e,
    };
    assert!(
        err.is_permanent() && err.message.contains("oracle"),
        "{err}"
    );
}

/// The journal mark (`sluice_journal`), the record of which journal the nodes storing into a
/// database share: none until claimed; of racing claims one wins and every racer is told
/// which; later claims and reads return it. An engine with the local journal then refuses the
/// store, naming the cluster's stream and the way out.
async fn journal_marks(store: &SharedStore, db: &TestDb) {
    assert_eq!(store.journal_mark(None).await.expect("read the mark"), None);
    let racers: Vec<_> = (0..4)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.journal_mark(Some(&format!("jetstream:S{i}"))).await })
        })
        .collect();
    let mut told = BTreeSet::new();
    for racer in racers {
        let mark = racer.await.expect("racer").expect("claim the mark");
        told.insert(mark.expect("a claim leaves a mark"));
    }
    assert_eq!(
        told.len(),
        1,
        "every racer is told the one winner: {told:?}"
    );
    let winner = told.into_iter().next().expect("a winner");
    assert_eq!(
        store
            .journal_mark(Some("jetstream:later"))
            .await
            .expect("claim"),
        Some(winner.clone())
    );
    assert_eq!(
        store.journal_mark(None).await.expect("read"),
        Some(winner.clone())
    );
    let refused = Sluice::builder(engine_config(
        db,
        vec![KeyspaceConfig::builtin(Policy::WriteBack)],
    ))
    .store(store.clone())
    .open()
    .await
    .err()
    .expect("a local-journal engine refuses a cluster's store");
    let message = refused.to_string();
    let stream = winner.trim_start_matches("jetstream:");
    for part in [
        format!("JetStream stream {stream:?}"),
        "[cluster]".to_string(),
        "DELETE FROM sluice_journal".to_string(),
    ] {
        assert!(message.contains(&part), "{part:?} not in: {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_mark_sqlite() {
    let db = TestDb::sqlite().await;
    journal_marks(&db.store, &db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_mark_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    journal_marks(&db.store, &db).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn journal_mark_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    journal_marks(&db.store, &db).await;
    db.drop_all().await;
}

/// A cluster node's claim on its name in the database (`Store::claim_fence`): once another
/// store claimed the name, the first one's batches and transactions commit nothing, whatever
/// they hold, while reads and other names go on.
async fn fences(db: &TestDb) {
    let t = Target::Builtin { db: 3 };
    let first = store::open_url(&db.url).await.expect("open a first store");
    let g1 = first.claim_fence("fenced-node").await.expect("first claim");
    assert!(g1 >= 1, "a claim's generation is positive: {g1}");
    write_ok(&first, vec![upsert(&t, b"k", b"v1")]).await;
    first
        .write_atomic(vec![upsert(&t, b"a", b"a1")])
        .await
        .expect("an atomic batch of the claim's holder");

    let second = store::open_url(&db.url).await.expect("open a second store");
    let g2 = second
        .claim_fence("fenced-node")
        .await
        .expect("second claim");
    assert!(
        g2 > g1,
        "a later claim raises the generation: {g1} then {g2}"
    );

    let refused = first
        .write_batch(vec![upsert(&t, b"k", b"stale"), upsert(&t, b"new", b"x")])
        .await
        .expect_err("the first holder's batch is refused");
    assert!(
        !refused.is_permanent(),
        "refused whole, never a dead letter"
    );
    for part in ["\"fenced-node\"", "fenced off", &format!("generation {g2}")] {
        assert!(refused.message.contains(part), "{part:?} not in: {refused}");
    }
    let atomic = first
        .write_atomic(vec![upsert(&t, b"a", b"stale")])
        .await
        .expect_err("the first holder's transaction is refused");
    assert_eq!(atomic.index, None, "refused as a whole: {}", atomic.error);
    assert!(!atomic.error.is_permanent());
    assert_eq!(get(&first, &t, b"k").await.as_deref(), Some(&b"v1"[..]));
    assert_eq!(get(&first, &t, b"a").await.as_deref(), Some(&b"a1"[..]));
    assert_eq!(get(&second, &t, b"new").await, None);

    write_ok(&second, vec![upsert(&t, b"k", b"v2")]).await;
    assert_eq!(get(&first, &t, b"k").await.as_deref(), Some(&b"v2"[..]));
    let twice = second
        .claim_fence("another-node")
        .await
        .expect_err("one store claims one name");
    assert!(twice.message.contains("already fenced"), "{twice}");

    // Names are independent, and so is a store that never claimed one.
    let other = store::open_url(&db.url).await.expect("open a third store");
    other.claim_fence("other-node").await.expect("other claim");
    write_ok(&other, vec![upsert(&t, b"o", b"1")]).await;
    write_ok(&db.store, vec![upsert(&t, b"u", b"1")]).await;
    write_ok(&second, vec![upsert(&t, b"k", b"v3")]).await;
}

/// On a server with row locks: a claim waits for a write of the name's earlier holder that
/// already passed its check, so that write lands first; the holder's next write is refused.
async fn a_claim_waits_for_the_holders_write_in_flight(db: &TestDb) {
    let t = Target::Builtin { db: 4 };
    let holder = store::open_url(&db.url)
        .await
        .expect("open the holder's store");
    holder.claim_fence("racing-node").await.expect("claim");
    write_ok(&holder, vec![upsert(&t, b"k", b"v0")]).await;
    // Another session locks the key's row, so the holder's next write stops inside its
    // transaction, past its check of the claim.
    let blocker = RowBlocker::lock(db, 4, "k").await;
    let write = {
        let (holder, op) = (holder.clone(), upsert(&t, b"k", b"v1"));
        tokio::spawn(async move { holder.write_batch(vec![op]).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let claim = {
        let url = db.url.clone();
        tokio::spawn(async move {
            let newer = store::open_url(&url)
                .await
                .expect("open the new holder's store");
            let generation = newer.claim_fence("racing-node").await;
            (newer, generation)
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !claim.is_finished() && !write.is_finished(),
        "the claim must wait for the write in flight, which waits for the row lock"
    );
    blocker.release().await;
    let written = write
        .await
        .expect("write task")
        .expect("the write in flight commits");
    assert!(written[0].is_ok(), "{:?}", written[0]);
    let (newer, generation) = claim.await.expect("claim task");
    generation.expect("the claim completes after the write");
    assert_eq!(get(&newer, &t, b"k").await.as_deref(), Some(&b"v1"[..]));
    let late = holder.write_batch(vec![upsert(&t, b"k", b"v2")]).await;
    assert!(late.is_err(), "the earlier holder wrote after the claim");
    write_ok(&newer, vec![upsert(&t, b"k", b"v3")]).await;
}

/// A transaction of another session holding one `sluice_kv` row locked.
enum RowBlocker {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl RowBlocker {
    async fn lock(db: &TestDb, kv_db: i16, key: &str) -> RowBlocker {
        use mysql_async::prelude::Queryable;
        if db.url.starts_with("postgres") {
            let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
                .await
                .expect("connect the blocker");
            tokio::spawn(conn);
            client.batch_execute("BEGIN").await.expect("begin");
            let n = client
                .execute(
                    "SELECT 1 FROM sluice_kv WHERE db = $1 AND key = $2 FOR UPDATE",
                    &[&kv_db, &key.as_bytes()],
                )
                .await
                .expect("lock the row");
            assert_eq!(n, 1, "the row to lock exists");
            RowBlocker::Postgres(client)
        } else {
            let mut conn = mysql_async::Conn::from_url(db.url.as_str())
                .await
                .expect("connect the blocker");
            conn.query_drop("BEGIN").await.expect("begin");
            let locked: Vec<u8> = conn
                .exec(
                    "SELECT 1 FROM sluice_kv WHERE db = ? AND `key` = ? FOR UPDATE",
                    (kv_db, key.as_bytes()),
                )
                .await
                .expect("lock the row");
            assert_eq!(locked.len(), 1, "the row to lock exists");
            RowBlocker::Mysql(conn)
        }
    }

    async fn release(self) {
        use mysql_async::prelude::Queryable;
        match self {
            RowBlocker::Postgres(client) => client.batch_execute("ROLLBACK").await.expect("end"),
            RowBlocker::Mysql(mut conn) => conn.query_drop("ROLLBACK").await.expect("end"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_sqlite() {
    let db = TestDb::sqlite().await;
    fences(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    fences(&db).await;
    a_claim_waits_for_the_holders_write_in_flight(&db).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fence_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    fences(&db).await;
    a_claim_waits_for_the_holders_write_in_flight(&db).await;
    db.drop_all().await;
}
