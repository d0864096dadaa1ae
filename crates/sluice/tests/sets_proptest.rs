//! Sets as a property, under every policy: for any sequence of SADD / SREM / SPOP / SMOVE /
//! SINTERSTORE / SUNIONSTORE / SDIFFSTORE / DEL / SET over a few keys, with flushes, injected
//! transient batch failures (write-back) and restarts that replay the journal with nothing
//! flushed, every read equals a plain model (`WRONGTYPE` included), and once everything is
//! flushed the built-in table holds exactly the model: one `sluice_kv` row per key and one
//! `sluice_members` row per member, none left over from a deleted or overwritten set.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rusqlite::Connection;
use sluice::clock::Clock;
use sluice::{Policy, SetAlgebra, SetOptions, SluiceError};

use common::*;

const KEYS: [&str; 4] = ["s0", "s1", "s2", "s3"];
const MEMBERS: [&str; 7] = ["a", "b", "c", "1", "2", "10", "-3"];

#[derive(Debug, Clone)]
enum Op {
    Add(usize, Vec<usize>),
    Rem(usize, Vec<usize>),
    Pop(usize, usize),
    Move(usize, usize, usize),
    Store(SetAlgebra, usize, Vec<usize>),
    Del(usize),
    SetString(usize),
    /// PEXPIRE key 100.
    Expire(usize),
    /// The clock moves 150 ms: keys given an expiry by `Expire` are gone.
    Tick,
    Read(usize),
    Flush,
    FailNextBatches(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let members = prop::collection::vec(0..MEMBERS.len(), 1..4);
    let algebra = prop_oneof![
        Just(SetAlgebra::Intersection),
        Just(SetAlgebra::Union),
        Just(SetAlgebra::Difference)
    ];
    prop_oneof![
        8 => (key.clone(), members.clone()).prop_map(|(k, m)| Op::Add(k, m)),
        4 => (key.clone(), members).prop_map(|(k, m)| Op::Rem(k, m)),
        2 => (key.clone(), 0usize..4).prop_map(|(k, n)| Op::Pop(k, n)),
        2 => (key.clone(), key.clone(), 0..MEMBERS.len()).prop_map(|(s, d, m)| Op::Move(s, d, m)),
        2 => (algebra, key.clone(), prop::collection::vec(key.clone(), 1..3))
            .prop_map(|(a, d, k)| Op::Store(a, d, k)),
        2 => key.clone().prop_map(Op::Del),
        1 => key.clone().prop_map(Op::SetString),
        2 => key.clone().prop_map(Op::Expire),
        1 => Just(Op::Tick),
        4 => key.prop_map(Op::Read),
        2 => Just(Op::Flush),
        1 => (1u64..3).prop_map(Op::FailNextBatches),
        1 => Just(Op::Restart),
    ]
}

/// What a key holds in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Set(BTreeSet<String>),
    Str,
}

type Model = BTreeMap<&'static str, Value>;

/// Keys with an expiry and when it falls (engine clock ms).
type Deadlines = BTreeMap<&'static str, u64>;

fn b_members(idx: &[usize]) -> Vec<sluice::Bytes> {
    idx.iter().map(|&i| b(MEMBERS[i])).collect()
}

fn names(set: &sluice::SetValue) -> BTreeSet<String> {
    set.iter()
        .map(|m| String::from_utf8(m.to_vec()).unwrap())
        .collect()
}

/// The model's set at `k`: `Ok(None)` absent, `Err` a string (WRONGTYPE).
fn model_set(model: &Model, k: &str) -> Result<Option<BTreeSet<String>>, ()> {
    match model.get(k) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s.clone())),
        Some(Value::Str) => Err(()),
    }
}

fn put(model: &mut Model, k: &'static str, s: BTreeSet<String>) {
    if s.is_empty() {
        model.remove(k);
    } else {
        model.insert(k, Value::Set(s));
    }
}

fn expect_wrongtype<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, SluiceError>,
) -> Result<(), TestCaseError> {
    match r {
        Err(SluiceError::WrongType) => Ok(()),
        other => Err(TestCaseError::fail(format!(
            "{what}: expected WRONGTYPE, got {other:?}"
        ))),
    }
}

/// The built-in table, read with a connection of its own: each live key's kind and its
/// members (an expired key's rows, waiting for the reaper, are left out with their members).
fn table(h: &Harness) -> BTreeMap<String, (i64, BTreeSet<String>)> {
    let conn = Connection::open(db_path(h.path())).unwrap();
    let now = h.clock.now_ms() as i64;
    let mut out = BTreeMap::new();
    let mut expired = BTreeSet::new();
    let mut st = conn
        .prepare("SELECT CAST(key AS TEXT), kind, expires_at FROM sluice_kv WHERE db = 0")
        .unwrap();
    for row in st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })
        .unwrap()
    {
        let (key, kind, expires_at) = row.unwrap();
        if expires_at.is_some_and(|e| e <= now) {
            expired.insert(key);
        } else {
            out.insert(key, (kind, BTreeSet::new()));
        }
    }
    let mut st = conn
        .prepare("SELECT CAST(key AS TEXT), CAST(member AS TEXT) FROM sluice_members WHERE db = 0")
        .unwrap();
    for row in st
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .unwrap()
    {
        let (key, member) = row.unwrap();
        if expired.contains(&key) {
            continue;
        }
        out.entry(key)
            .or_insert((-1, BTreeSet::new()))
            .1
            .insert(member);
    }
    out
}

fn model_table(model: &Model) -> BTreeMap<String, (i64, BTreeSet<String>)> {
    model
        .iter()
        .map(|(k, v)| {
            let row = match v {
                Value::Set(s) => (2, s.clone()),
                Value::Str => (0, BTreeSet::new()),
            };
            (k.to_string(), row)
        })
        .collect()
}

/// `background_flush`: the flusher runs every millisecond in batches of 2; else only the
/// `Flush` steps store, so writes pile up on buffered keys (member records) between them.
async fn run(policy: Policy, ops: Vec<Op>, background_flush: bool) -> Result<(), TestCaseError> {
    let mut ks = builtin(policy);
    if background_flush {
        ks.flush_interval = Duration::from_millis(1);
        ks.flush_batch = 2;
    } else {
        ks.flush_interval = Duration::from_secs(3600);
    }
    let mut h = Harness::start_with("", vec![ks], |c| {
        c.journal.durability = sluice::Durability::Fsync;
        // Every partial write of a buffered key journals only its members: the chains that
        // replay rebuilds values from are what the restarts check.
        c.journal.member_records_from = 0;
    })
    .await;
    let write_back = policy == Policy::WriteBack;
    let mut model: Model = BTreeMap::new();
    let mut deadlines: Deadlines = BTreeMap::new();
    for (step, op) in ops.into_iter().enumerate() {
        // A key rewritten whole (DEL, SET, a STORE that succeeds) loses its expiry; one edited
        // keeps it.
        if let Op::Del(k) | Op::SetString(k) = &op {
            deadlines.remove(KEYS[*k]);
        }
        let what = format!("{policy:?} step {step} {op:?}");
        let fail = |e: SluiceError| TestCaseError::fail(format!("{what}: {e}"));
        match op {
            Op::Add(k, m) => {
                let r = h.sluice.access().sadd(0, &b(KEYS[k]), b_members(&m)).await;
                match model_set(&model, KEYS[k]) {
                    Err(()) => expect_wrongtype(&what, r)?,
                    Ok(cur) => {
                        let mut s = cur.unwrap_or_default();
                        let before = s.len();
                        s.extend(m.iter().map(|&i| MEMBERS[i].to_string()));
                        prop_assert_eq!(r.map_err(fail)?, s.len() - before, "{}", what);
                        put(&mut model, KEYS[k], s);
                    }
                }
            }
            Op::Rem(k, m) => {
                let r = h.sluice.access().srem(0, &b(KEYS[k]), b_members(&m)).await;
                match model_set(&model, KEYS[k]) {
                    Err(()) => expect_wrongtype(&what, r)?,
                    Ok(cur) => {
                        let mut s = cur.unwrap_or_default();
                        let before = s.len();
                        for &i in &m {
                            s.remove(MEMBERS[i]);
                        }
                        let (removed, emptied) = r.map_err(fail)?;
                        prop_assert_eq!(removed, before - s.len(), "{}", what);
                        prop_assert_eq!(emptied, removed > 0 && s.is_empty(), "{}", what);
                        put(&mut model, KEYS[k], s);
                    }
                }
            }
            Op::Pop(k, n) => {
                let r = h
                    .sluice
                    .access()
                    .spop(0, &b(KEYS[k]), n, |len| len / 2)
                    .await;
                match model_set(&model, KEYS[k]) {
                    Err(()) => expect_wrongtype(&what, r)?,
                    Ok(cur) => {
                        let mut s = cur.unwrap_or_default();
                        let (popped, _) = r.map_err(fail)?;
                        prop_assert_eq!(popped.len(), n.min(s.len()), "{}", what);
                        for m in popped {
                            let m = String::from_utf8(m.to_vec()).unwrap();
                            prop_assert!(s.remove(&m), "{}: popped {} not in the set", what, m);
                        }
                        put(&mut model, KEYS[k], s);
                    }
                }
            }
            Op::Move(src, dst, m) => {
                let r = h
                    .sluice
                    .access()
                    .smove(0, &b(KEYS[src]), &b(KEYS[dst]), b(MEMBERS[m]))
                    .await;
                // As Redis: a missing source moves nothing whatever the destination holds.
                match (model_set(&model, KEYS[src]), model_set(&model, KEYS[dst])) {
                    (Err(()), _) | (Ok(Some(_)), Err(())) => expect_wrongtype(&what, r)?,
                    (Ok(None), _) => prop_assert!(r.map_err(fail)?.is_none(), "{}", what),
                    (Ok(Some(from)), Ok(to)) => {
                        let moved = r.map_err(fail)?;
                        prop_assert_eq!(moved.is_some(), from.contains(MEMBERS[m]), "{}", what);
                        if moved.is_some() && src != dst {
                            let mut from = from;
                            from.remove(MEMBERS[m]);
                            let mut to = to.unwrap_or_default();
                            to.insert(MEMBERS[m].to_string());
                            put(&mut model, KEYS[src], from);
                            put(&mut model, KEYS[dst], to);
                        }
                    }
                }
            }
            Op::Store(algebra, dst, keys) => {
                let key_bytes: Vec<_> = keys.iter().map(|&k| b(KEYS[k])).collect();
                let r = h
                    .sluice
                    .access()
                    .store_set_algebra(0, &b(KEYS[dst]), &key_bytes, algebra)
                    .await;
                let sets: Result<Vec<_>, ()> =
                    keys.iter().map(|&k| model_set(&model, KEYS[k])).collect();
                match sets {
                    Err(()) => expect_wrongtype(&what, r)?,
                    Ok(sets) => {
                        let result: BTreeSet<String> = match algebra {
                            SetAlgebra::Intersection => {
                                if sets.iter().any(Option::is_none) {
                                    BTreeSet::new()
                                } else {
                                    let all: Vec<_> = sets.iter().flatten().collect();
                                    all[0]
                                        .iter()
                                        .filter(|m| all.iter().all(|s| s.contains(*m)))
                                        .cloned()
                                        .collect()
                                }
                            }
                            SetAlgebra::Union => sets.iter().flatten().flatten().cloned().collect(),
                            SetAlgebra::Difference => {
                                let first = sets[0].clone().unwrap_or_default();
                                first
                                    .into_iter()
                                    .filter(|m| sets[1..].iter().flatten().all(|s| !s.contains(m)))
                                    .collect()
                            }
                        };
                        let stored = r.map_err(fail)?;
                        prop_assert_eq!(stored.len, result.len(), "{}", what);
                        prop_assert_eq!(
                            stored.deleted,
                            result.is_empty() && model.contains_key(KEYS[dst]),
                            "{}",
                            what
                        );
                        put(&mut model, KEYS[dst], result);
                        deadlines.remove(KEYS[dst]);
                    }
                }
            }
            Op::Del(k) => {
                let existed = h.sluice.del(0, &b(KEYS[k])).await.map_err(fail)?;
                prop_assert_eq!(existed, model.remove(KEYS[k]).is_some(), "{}", what);
            }
            Op::SetString(k) => {
                h.sluice
                    .set(0, b(KEYS[k]), b("str"), SetOptions::default())
                    .await
                    .map_err(fail)?;
                model.insert(KEYS[k], Value::Str);
            }
            Op::Expire(k) => {
                let at = h.clock.now_ms() + 100;
                let set = h
                    .sluice
                    .expire(0, &b(KEYS[k]), at as i64, sluice::ExpireCondition::ALWAYS)
                    .await
                    .map_err(fail)?;
                prop_assert_eq!(set, model.contains_key(KEYS[k]), "{}", what);
                if set {
                    deadlines.insert(KEYS[k], at);
                }
            }
            Op::Tick => h.tick_expiring(150, &mut model, &mut deadlines),
            Op::Read(k) => {
                let r = h.sluice.access().set_value(0, b(KEYS[k])).await;
                match model_set(&model, KEYS[k]) {
                    Err(()) => expect_wrongtype(&what, r)?,
                    Ok(want) => {
                        let got = r.map_err(fail)?.map(|s| names(&s));
                        prop_assert_eq!(got, want, "{}", what);
                    }
                }
            }
            Op::Flush => {
                if h.sluice.flush().await.is_ok() {
                    prop_assert_eq!(table(&h), model_table(&model), "{}", what);
                }
            }
            Op::FailNextBatches(n) => {
                // Under write-through a failed batch fails the client's write; only the
                // write-back flusher retries, which is what this checks.
                if write_back {
                    h.store.fail_next_batches(n);
                }
            }
            Op::Restart => {
                h = h
                    .crash_restart()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
            }
        }
        deadlines.retain(|k, _| model.contains_key(k));
    }
    h.store.fail_next_batches(0);
    h.sluice
        .flush()
        .await
        .map_err(|e| TestCaseError::fail(format!("final flush: {e}")))?;
    prop_assert_eq!(table(&h), model_table(&model));
    for key in KEYS {
        let r = h.sluice.access().set_value(0, b(key)).await;
        match model_set(&model, key) {
            Err(()) => expect_wrongtype(key, r)?,
            Ok(want) => prop_assert_eq!(r.unwrap().map(|s| names(&s)), want, "final {}", key),
        }
    }
    prop_assert!(h.sluice.dead_letters(None).unwrap().is_empty());
    Ok(())
}

fn check(policy: Policy) {
    check_flushing(policy, true);
}

fn check_flushing(policy: Policy, background_flush: bool) {
    run_n_cases(
        // More sequences when only the steps flush: restarts then land on chains of member
        // records, which the cheaper background-flush runs rarely leave buffered.
        if background_flush { 24 } else { 96 },
        prop::collection::vec(op(), 1..50),
        |ops| run(policy, ops, background_flush),
    );
}

#[test]
fn write_back_sets_match_a_model_across_flushes_faults_and_replays() {
    check(Policy::WriteBack);
}

/// Write-back with only the steps' flushes: each key stays buffered across many writes, so
/// its writes are journaled as member records onto its chain, which the restarts replay.
#[test]
fn write_back_sets_match_a_model_across_member_records_and_replays() {
    check_flushing(Policy::WriteBack, false);
}

#[test]
fn write_through_sets_match_a_model_across_flushes_and_restarts() {
    check(Policy::WriteThrough);
}

#[test]
fn invalidate_sets_match_a_model_across_flushes_and_restarts() {
    check(Policy::Invalidate);
}
