//! Lists as a property, under every policy: for any sequence of LPUSH / RPUSH (1-3 elements,
//! in one pass over the image as the commands do, or as a list edit), LPUSHX / RPUSHX, LPOP /
//! RPOP (with counts, either way), LSET, LINSERT BEFORE / AFTER, LREM (counts from the head,
//! from the tail, all), LTRIM, LMOVE (between two keys, and within one), runs of LINSERT at one
//! spot long enough to renumber a list (whose write then replaces it whole), DEL, SET and
//! expiries over a few keys, with flushes, injected transient batch failures (write-back) and
//! restarts that replay the journal with nothing flushed, every key reads as a plain
//! `VecDeque` model (`WRONGTYPE` included), and once everything is flushed the built-in table
//! holds exactly the model: one `sluice_kv` row per key and one `sluice_members` row per
//! element, keyed by an 8-byte position whose order is the list's, none left over from a
//! popped, removed, trimmed or moved element, a renumbered list or a deleted key.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rusqlite::Connection;
use sluice::clock::Clock;
use sluice::model::list;
use sluice::{Policy, SluiceError};

use common::*;

const KEYS: [&str; 3] = ["l0", "l1", "l2"];
/// Repeats are likely (LREM and LINSERT find them); the empty element, bytes that are not
/// UTF-8, CRLF, and `inf` (which MySQL's sorted sets use as a marker).
const ELEMENTS: [&[u8]; 6] = [b"a", b"b", b"c", b"", b"\x00\xff", b"inf"];

/// How a push reaches the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Push {
    /// `Access::push_list`, one pass over the image, as LPUSH / RPUSH do.
    OnePass,
    /// `Access::push_list` of LPUSHX / RPUSHX: nothing pushed onto a missing key.
    OnlyExisting,
    /// `Access::update_list` editing a `ListValue`, as LINSERT, LSET and the rest do.
    Edit,
}

#[derive(Debug, Clone)]
enum Op {
    /// LPUSH (`true`) / RPUSH key element ..., the way `Push` says.
    Push(usize, Vec<usize>, bool, Push),
    /// LPOP (`true`) / RPOP key count, in one pass over the image (`Access::pop_list`, as
    /// the commands do: `true`) or as a list edit (`Access::update_list`).
    Pop(usize, usize, bool, bool),
    /// LSET key index element.
    Set(usize, i64, usize),
    /// LINSERT key BEFORE|AFTER (`true`) pivot element.
    Insert(usize, usize, usize, bool),
    /// LREM key count element.
    Rem(usize, i64, usize),
    /// LTRIM key start stop.
    Trim(usize, i64, i64),
    /// LMOVE src dst LEFT|RIGHT LEFT|RIGHT (`true` is LEFT).
    Move(usize, usize, bool, bool),
    /// LPUSH key h, then this many LINSERT key AFTER h element: the gap after the head is used
    /// up and the list renumbered.
    Crowd(usize, usize, usize),
    Del(usize),
    SetString(usize),
    /// PEXPIRE key 100.
    Expire(usize),
    /// The clock moves 150 ms: keys given an expiry by `Expire` are gone.
    Tick,
    Flush,
    FailNextBatches(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let element = 0..ELEMENTS.len();
    let index = -4i64..5;
    prop_oneof![
        8 => (
            key.clone(),
            prop::collection::vec(element.clone(), 1..4),
            any::<bool>(),
            prop_oneof![
                3 => Just(Push::OnePass),
                1 => Just(Push::OnlyExisting),
                2 => Just(Push::Edit)
            ],
        )
            .prop_map(|(k, e, front, via)| Op::Push(k, e, front, via)),
        3 => (key.clone(), 1usize..5, any::<bool>(), any::<bool>())
            .prop_map(|(k, n, front, one_pass)| Op::Pop(k, n, front, one_pass)),
        2 => (key.clone(), index.clone(), element.clone()).prop_map(|(k, i, e)| Op::Set(k, i, e)),
        3 => (key.clone(), element.clone(), element.clone(), any::<bool>())
            .prop_map(|(k, p, e, after)| Op::Insert(k, p, e, after)),
        2 => (key.clone(), -3i64..4, element.clone()).prop_map(|(k, n, e)| Op::Rem(k, n, e)),
        2 => (key.clone(), index.clone(), index).prop_map(|(k, a, z)| Op::Trim(k, a, z)),
        3 => (key.clone(), key.clone(), any::<bool>(), any::<bool>())
            .prop_map(|(s, d, from, to)| Op::Move(s, d, from, to)),
        1 => (key.clone(), 25usize..33, element).prop_map(|(k, n, e)| Op::Crowd(k, n, e)),
        1 => key.clone().prop_map(Op::Del),
        1 => key.clone().prop_map(Op::SetString),
        1 => key.prop_map(Op::Expire),
        1 => Just(Op::Tick),
        2 => Just(Op::Flush),
        1 => (1u64..3).prop_map(Op::FailNextBatches),
        1 => Just(Op::Restart),
    ]
}

type List = VecDeque<Vec<u8>>;

/// What a key holds in the model.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    List(List),
    Str,
}

type Model = BTreeMap<&'static str, Value>;

/// Keys with an expiry and when it falls (engine clock ms).
type Deadlines = BTreeMap<&'static str, u64>;

fn e(i: usize) -> sluice::Bytes {
    sluice::Bytes::from_static(ELEMENTS[i])
}

/// The model's list at `k`: `Ok(None)` absent, `Err` a string (WRONGTYPE).
fn model_list(model: &Model, k: &str) -> Result<Option<List>, ()> {
    match model.get(k) {
        None => Ok(None),
        Some(Value::List(l)) => Ok(Some(l.clone())),
        Some(Value::Str) => Err(()),
    }
}

/// Stores a list in the model; an empty one is no key, as in Redis.
fn put(model: &mut Model, k: &'static str, l: List) {
    if l.is_empty() {
        model.remove(k);
    } else {
        model.insert(k, Value::List(l));
    }
}

/// An index from either end as an offset from the head, if it is in a list of `len`.
fn index_in(index: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let at = if index < 0 { len + index } else { index };
    (0..len).contains(&at).then_some(at as usize)
}

/// LTRIM's kept range of a list of `len`, as Redis clamps `start..=stop`.
fn trim_range(start: i64, stop: i64, len: usize) -> std::ops::Range<usize> {
    let len = len as i64;
    let start = if start < 0 { len + start } else { start }.max(0);
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return 0..0;
    }
    start as usize..(stop.min(len - 1) + 1) as usize
}

/// LREM on the model: up to |count| elements equal to `x` from the head (`count` > 0), from
/// the tail (< 0), or all (0); how many.
fn model_rem(l: &mut List, count: i64, x: &[u8]) -> usize {
    let limit = if count == 0 {
        usize::MAX
    } else {
        count.unsigned_abs() as usize
    };
    let mut order: Vec<usize> = (0..l.len()).collect();
    if count < 0 {
        order.reverse();
    }
    let doomed: BTreeSet<usize> = order
        .into_iter()
        .filter(|&i| l[i] == x)
        .take(limit)
        .collect();
    let kept: List = l
        .iter()
        .enumerate()
        .filter(|(i, _)| !doomed.contains(i))
        .map(|(_, v)| v.clone())
        .collect();
    *l = kept;
    doomed.len()
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

/// The result of LSET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lset {
    NoKey,
    OutOfRange,
    Set,
}

/// One LINSERT through the engine: the new length, -1 without the pivot, 0 for no key.
async fn linsert(
    h: &Harness,
    key: &str,
    pivot: &[u8],
    element: sluice::Bytes,
    after: bool,
) -> Result<i64, SluiceError> {
    h.sluice
        .access()
        .update_list(0, &b(key), |l| {
            if l.is_empty() {
                return Ok(0);
            }
            Ok(l.insert(pivot, element, after).map_or(-1, |n| n as i64))
        })
        .await
}

/// LINSERT on the model.
fn model_insert(l: &mut List, pivot: &[u8], element: &[u8], after: bool) -> i64 {
    if l.is_empty() {
        return 0;
    }
    match l.iter().position(|x| x == pivot) {
        None => -1,
        Some(at) => {
            l.insert(if after { at + 1 } else { at }, element.to_vec());
            l.len() as i64
        }
    }
}

/// The driver's view of this test (`common::run_model_steps`).
struct Lists;

impl CollectionModel for Lists {
    type Op = Op;
    type Model = Model;
    type Table = BTreeMap<String, (i64, List)>;

    fn control(op: &Op) -> Option<Control> {
        match *op {
            Op::Flush => Some(Control::Flush),
            Op::FailNextBatches(n) => Some(Control::FailNextBatches(n)),
            Op::Restart => Some(Control::Restart),
            _ => None,
        }
    }

    fn rewrites(op: &Op) -> Option<&'static str> {
        match *op {
            Op::Del(k) | Op::SetString(k) => Some(KEYS[k]),
            _ => None,
        }
    }

    fn holds(model: &Model, key: &str) -> bool {
        model.contains_key(key)
    }

    /// One step on the engine and the model, checking what the engine answers.
    async fn apply(
        h: &Harness,
        model: &mut Model,
        deadlines: &mut Deadlines,
        op: &Op,
        what: &str,
    ) -> Result<(), TestCaseError> {
        let fail = |e: SluiceError| TestCaseError::fail(format!("{what}: {e}"));
        let access = || h.sluice.access();
        match *op {
            Op::Push(k, ref elements, front, via) => {
                let pushed: Vec<sluice::Bytes> = elements.iter().map(|&i| e(i)).collect();
                let key = b(KEYS[k]);
                let r = match via {
                    Push::Edit => {
                        access()
                            .update_list(0, &key, |l| {
                                l.push(pushed, front);
                                Ok(l.len())
                            })
                            .await
                    }
                    Push::OnePass | Push::OnlyExisting => {
                        access()
                            .push_list(0, &key, pushed, front, via == Push::OnlyExisting)
                            .await
                    }
                };
                match model_list(model, KEYS[k]) {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(None) if via == Push::OnlyExisting => {
                        prop_assert_eq!(r.map_err(fail)?, 0, "{}", what)
                    }
                    Ok(cur) => {
                        let mut l = cur.unwrap_or_default();
                        for &i in elements {
                            if front {
                                l.push_front(ELEMENTS[i].to_vec());
                            } else {
                                l.push_back(ELEMENTS[i].to_vec());
                            }
                        }
                        prop_assert_eq!(r.map_err(fail)?, l.len(), "{}", what);
                        put(model, KEYS[k], l);
                    }
                }
            }
            Op::Pop(k, n, front, one_pass) => {
                let key = b(KEYS[k]);
                // What left the list, in order, and whether it was emptied; `None` for no key.
                let r = if one_pass {
                    access().pop_list(0, &key, front, n).await.map(|r| {
                        r.map(|(popped, emptied)| {
                            let popped: Vec<Vec<u8>> = popped.iter().map(|x| x.to_vec()).collect();
                            (popped, emptied)
                        })
                    })
                } else {
                    access()
                        .update_list(0, &key, |l| {
                            if l.is_empty() {
                                return Ok(None);
                            }
                            let mut popped = Vec::new();
                            while popped.len() < n {
                                match l.pop(front) {
                                    Some(x) => popped.push(x.to_vec()),
                                    None => break,
                                }
                            }
                            Ok(Some((popped, l.is_empty())))
                        })
                        .await
                };
                match model_list(model, KEYS[k]) {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(None) => prop_assert_eq!(r.map_err(fail)?, None, "{}", what),
                    Ok(Some(mut l)) => {
                        let mut want = Vec::new();
                        while want.len() < n {
                            match if front { l.pop_front() } else { l.pop_back() } {
                                Some(x) => want.push(x),
                                None => break,
                            }
                        }
                        prop_assert_eq!(r.map_err(fail)?, Some((want, l.is_empty())), "{}", what);
                        put(model, KEYS[k], l);
                    }
                }
            }
            Op::Set(k, index, x) => {
                let r = access()
                    .update_list(0, &b(KEYS[k]), |l| {
                        if l.is_empty() {
                            return Ok(Lset::NoKey);
                        }
                        Ok(match index_in(index, l.len()) {
                            Some(at) if l.set(at, e(x)) => Lset::Set,
                            _ => Lset::OutOfRange,
                        })
                    })
                    .await;
                match model_list(model, KEYS[k]) {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(None) => prop_assert_eq!(r.map_err(fail)?, Lset::NoKey, "{}", what),
                    Ok(Some(mut l)) => {
                        let want = match index_in(index, l.len()) {
                            Some(at) => {
                                l[at] = ELEMENTS[x].to_vec();
                                Lset::Set
                            }
                            None => Lset::OutOfRange,
                        };
                        prop_assert_eq!(r.map_err(fail)?, want, "{}", what);
                        put(model, KEYS[k], l);
                    }
                }
            }
            Op::Insert(k, pivot, x, after) => {
                let r = linsert(h, KEYS[k], ELEMENTS[pivot], e(x), after).await;
                match model_list(model, KEYS[k]) {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(cur) => {
                        let mut l = cur.unwrap_or_default();
                        let want = model_insert(&mut l, ELEMENTS[pivot], ELEMENTS[x], after);
                        prop_assert_eq!(r.map_err(fail)?, want, "{}", what);
                        put(model, KEYS[k], l);
                    }
                }
            }
            Op::Rem(k, count, x) => {
                let r = access()
                    .update_list(0, &b(KEYS[k]), |l| Ok(l.remove(ELEMENTS[x], count)))
                    .await;
                match model_list(model, KEYS[k]) {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(cur) => {
                        let mut l = cur.unwrap_or_default();
                        let want = model_rem(&mut l, count, ELEMENTS[x]);
                        prop_assert_eq!(r.map_err(fail)?, want, "{}", what);
                        put(model, KEYS[k], l);
                    }
                }
            }
            Op::Trim(k, start, stop) => {
                // LTRIM's one pass (`Access::trim_list`, as the command runs it) on odd starts,
                // the list edit on even ones: both must keep the same elements.
                let r = if start % 2 != 0 {
                    let key = b(KEYS[k]);
                    match access()
                        .trim_list(0, &key, |len| trim_range(start, stop, len))
                        .await
                    {
                        Ok(None) => Ok(0),
                        Ok(Some(_)) => access()
                            .list_image(0, key)
                            .await
                            .map(|image| image.map_or(0, |i| sluice::model::list::len(&i))),
                        Err(e) => Err(e),
                    }
                } else {
                    access()
                        .update_list(0, &b(KEYS[k]), |l| {
                            l.retain_range(trim_range(start, stop, l.len()));
                            Ok(l.len())
                        })
                        .await
                };
                match model_list(model, KEYS[k]) {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(cur) => {
                        let l = cur.unwrap_or_default();
                        let l: List = l.range(trim_range(start, stop, l.len())).cloned().collect();
                        prop_assert_eq!(r.map_err(fail)?, l.len(), "{}", what);
                        put(model, KEYS[k], l);
                    }
                }
            }
            Op::Move(src, dst, from_front, to_front) => {
                let r = access()
                    .lmove(0, &b(KEYS[src]), &b(KEYS[dst]), from_front, to_front)
                    .await;
                // As Redis: a missing source moves nothing whatever the destination holds; a
                // source or (when there is one) destination of another type is WRONGTYPE.
                match (model_list(model, KEYS[src]), model_list(model, KEYS[dst])) {
                    (Err(()), _) | (Ok(Some(_)), Err(())) => expect_wrongtype(what, r)?,
                    (Ok(None), _) => prop_assert_eq!(r.map_err(fail)?, None, "{}", what),
                    (Ok(Some(mut s)), Ok(d)) => {
                        let x = if from_front {
                            s.pop_front()
                        } else {
                            s.pop_back()
                        }
                        .unwrap();
                        let moved = r.map_err(fail)?;
                        let moved = moved
                            .ok_or_else(|| TestCaseError::fail(format!("{what}: nothing moved")))?;
                        prop_assert_eq!(&moved.element[..], &x[..], "{}", what);
                        if src == dst {
                            prop_assert!(!moved.src_deleted, "{}", what);
                            if to_front {
                                s.push_front(x);
                            } else {
                                s.push_back(x);
                            }
                            put(model, KEYS[src], s);
                        } else {
                            prop_assert_eq!(moved.src_deleted, s.is_empty(), "{}", what);
                            let mut d = d.unwrap_or_default();
                            if to_front {
                                d.push_front(x);
                            } else {
                                d.push_back(x);
                            }
                            put(model, KEYS[src], s);
                            put(model, KEYS[dst], d);
                        }
                    }
                }
            }
            Op::Crowd(k, n, x) => {
                let r = access()
                    .update_list(0, &b(KEYS[k]), |l| {
                        l.push([b("h")], true);
                        Ok(l.len())
                    })
                    .await;
                match model_list(model, KEYS[k]) {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(cur) => {
                        let mut l = cur.unwrap_or_default();
                        l.push_front(b"h".to_vec());
                        prop_assert_eq!(r.map_err(fail)?, l.len(), "{}", what);
                        for i in 0..n {
                            let got = linsert(h, KEYS[k], b"h", e(x), true).await.map_err(fail)?;
                            let want = model_insert(&mut l, b"h", ELEMENTS[x], true);
                            prop_assert_eq!(got, want, "{}: LINSERT {}", what, i);
                        }
                        put(model, KEYS[k], l);
                    }
                }
            }
            Op::Del(k) | Op::SetString(k) | Op::Expire(k) => {
                let step = match *op {
                    Op::Del(_) => KeyStep::Del,
                    Op::SetString(_) => KeyStep::SetString,
                    _ => KeyStep::Expire,
                };
                key_step(h, model, deadlines, step, KEYS[k], Value::Str, what).await?
            }
            Op::Tick => h.tick_expiring(150, model, deadlines),
            Op::Flush | Op::FailNextBatches(_) | Op::Restart => unreachable!("run handles {op:?}"),
        }
        Ok(())
    }

    /// Every key read through the engine (`list_image`, viewed as LRANGE 0 -1 does) equals the
    /// model.
    async fn check_reads(h: &Harness, model: &Model, what: &str) -> Result<(), TestCaseError> {
        for key in KEYS {
            let r = h.sluice.access().list_image(0, b(key)).await;
            match model_list(model, key) {
                Err(()) => expect_wrongtype(&format!("{what}: read {key}"), r)?,
                Ok(want) => {
                    let got = r
                        .map_err(|e| TestCaseError::fail(format!("{what}: read {key}: {e}")))?
                        .map(|image| {
                            prop_assert_eq!(
                                list::view(&image).len(),
                                list::len(&image),
                                "{}: {} decodes",
                                what,
                                key
                            );
                            Ok(list::view(&image)
                                .into_iter()
                                .map(<[u8]>::to_vec)
                                .collect::<List>())
                        })
                        .transpose()?;
                    prop_assert_eq!(got, want, "{}: read {}", what, key);
                }
            }
        }
        Ok(())
    }

    /// The built-in table, read with a connection of its own: each live key's kind and its
    /// elements in position order (an expired key's rows, waiting for the reaper, are left out with
    /// their elements). A member row that is not an 8-byte position, or has no element, fails.
    fn table(h: &Harness) -> Result<Self::Table, TestCaseError> {
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
                out.insert(key, (kind, List::new()));
            }
        }
        let mut st = conn
            .prepare(
                "SELECT CAST(key AS TEXT), member, value FROM sluice_members WHERE db = 0 \
                 ORDER BY key, member",
            )
            .unwrap();
        for row in st
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, Option<Vec<u8>>>(2)?,
                ))
            })
            .unwrap()
        {
            let (key, member, value) = row.unwrap();
            if expired.contains(&key) {
                continue;
            }
            prop_assert!(
                list::position_of(&member).is_some(),
                "{}: member {:?} is not a position",
                key,
                member
            );
            let Some(value) = value else {
                return Err(TestCaseError::fail(format!("{key}: a row with no element")));
            };
            out.entry(key)
                .or_insert((-1, List::new()))
                .1
                .push_back(value);
        }
        Ok(out)
    }

    fn model_table(model: &Model) -> Self::Table {
        model
            .iter()
            .map(|(k, v)| {
                let row = match v {
                    Value::List(l) => (4, l.clone()),
                    Value::Str => (0, List::new()),
                };
                (k.to_string(), row)
            })
            .collect()
    }
}

fn check(policy: Policy) {
    check_flushing(policy, true);
}

fn check_flushing(policy: Policy, background_flush: bool) {
    let step = (op(), prop::bool::weighted(0.75));
    run_n_cases(
        // More sequences when only the steps flush: restarts then land on chains of member
        // records, which the cheaper background-flush runs rarely leave buffered.
        if background_flush { 24 } else { 96 },
        prop::collection::vec(step, 1..50),
        |ops| run_model_steps_flushing::<Lists>(policy, ops, background_flush),
    );
}

#[test]
fn write_back_lists_match_a_model_across_flushes_faults_and_replays() {
    check(Policy::WriteBack);
}

/// Write-back with only the steps' flushes: each key stays buffered across many writes, so
/// its writes are journaled as member records onto its chain, which the restarts replay.
#[test]
fn write_back_lists_match_a_model_across_member_records_and_replays() {
    check_flushing(Policy::WriteBack, false);
}

#[test]
fn write_through_lists_match_a_model_across_flushes_and_restarts() {
    check(Policy::WriteThrough);
}

#[test]
fn invalidate_lists_match_a_model_across_flushes_and_restarts() {
    check(Policy::Invalidate);
}

/// A list renumbered (its write replacing it whole) between partial writes, flushed, edited
/// unflushed, replayed after a crash, moved from and renumbered again after the replay, under
/// every policy: the fixed case behind the random `Crowd` steps.
#[test]
fn renumbered_lists_are_stored_whole_under_every_policy() {
    let ops = vec![
        Op::Push(0, vec![0, 1, 2], false, Push::OnePass),
        Op::Push(1, vec![3, 4], true, Push::Edit),
        Op::Flush,
        Op::Crowd(0, 30, 5),
        Op::Pop(0, 2, false, true),
        Op::Set(0, 3, 4),
        Op::Flush,
        Op::Insert(0, 5, 3, false),
        Op::Crowd(1, 26, 0),
        Op::Restart,
        Op::Move(0, 1, true, false),
        Op::Crowd(0, 40, 1),
        Op::Rem(0, -5, 5),
        Op::Trim(1, 1, -2),
        Op::Push(1, vec![2, 2], true, Push::OnePass),
        Op::Pop(1, 1, true, false),
        Op::Restart,
        Op::Move(1, 1, false, true),
        Op::Flush,
    ];
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for policy in [Policy::WriteBack, Policy::WriteThrough, Policy::Invalidate] {
        let steps = ops.iter().cloned().map(|op| (op, true)).collect();
        if let Err(e) = rt.block_on(run_model_steps::<Lists>(policy, steps)) {
            panic!("{policy:?}: {e}");
        }
    }
}
