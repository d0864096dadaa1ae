//! Streams as a property, under every policy: for any sequence of XADD (explicit IDs and
//! `ms-*`, with an exact MAXLEN or MINID trim, or an approximate MAXLEN; in one pass over the
//! encoded stream as the command does, or as a stream edit), XDEL (of live,
//! deleted and missing IDs), XTRIM (exact and approximate), XSETID, DEL, SET and expiries over
//! a few keys, with flushes, injected transient batch failures (write-back) and restarts that
//! replay the journal with nothing flushed, every key reads as a plain model (its live entries,
//! length, last ID, entries added, largest deleted ID; `WRONGTYPE` included), and once
//! everything is flushed the rows of `sluice_members` rebuild exactly the stream the engine
//! serves. An approximate trim removes whole nodes, which the model does not know: it checks
//! that what went is a prefix of the oldest entries and that enough stayed.

mod common;

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use rusqlite::Connection;
use sluice::clock::Clock;
use sluice::model::stream::{self, RequestedId, StreamId, Trim, TrimStrategy};
use sluice::{Policy, SluiceError};

use common::*;

const KEYS: [&str; 3] = ["x0", "x1", "x2"];
const VALUES: [&[u8]; 5] = [
    b"v",
    b"123",
    b"",
    b"\x00\xff",
    b"a longer value, past a few bytes",
];

#[derive(Debug, Clone)]
enum Op {
    /// XADD key at the last ID's ms plus this step (`ms-*` when the flag says so), one or two
    /// fields, then the trim.
    Add(usize, u64, bool, Vec<usize>, Option<(bool, u64)>),
    /// XADD of this many entries at once (an EVAL's worth), so nodes fill up.
    Burst(usize, usize),
    /// XDEL key of the entry at this index (or past the end: a missing ID), twice.
    Del(usize, usize),
    /// XTRIM key MAXLEN [~] n.
    TrimLen(usize, bool, u64),
    /// XTRIM key MINID at the entry of this index.
    TrimMinId(usize, usize),
    /// XSETID key at the last ID plus this many ms.
    SetId(usize, u64),
    DelKey(usize),
    SetString(usize),
    Expire(usize),
    Tick,
    Flush,
    FailNextBatches(u64),
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    prop_oneof![
        10 => (
            key.clone(),
            0u64..3,
            any::<bool>(),
            prop::collection::vec(0..VALUES.len(), 1..3),
            prop::option::weighted(0.3, (any::<bool>(), 0u64..8)),
        )
            .prop_map(|(k, step, auto, v, trim)| Op::Add(k, step, auto, v, trim)),
        2 => (key.clone(), 20usize..140).prop_map(|(k, n)| Op::Burst(k, n)),
        4 => (key.clone(), 0usize..12).prop_map(|(k, i)| Op::Del(k, i)),
        2 => (key.clone(), any::<bool>(), 0u64..30).prop_map(|(k, a, n)| Op::TrimLen(k, a, n)),
        1 => (key.clone(), 0usize..10).prop_map(|(k, i)| Op::TrimMinId(k, i)),
        1 => (key.clone(), 0u64..3).prop_map(|(k, n)| Op::SetId(k, n)),
        1 => key.clone().prop_map(Op::DelKey),
        1 => key.clone().prop_map(Op::SetString),
        1 => key.prop_map(Op::Expire),
        1 => Just(Op::Tick),
        2 => Just(Op::Flush),
        1 => (1u64..3).prop_map(Op::FailNextBatches),
        1 => Just(Op::Restart),
    ]
}

type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// A stream in the model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Model1 {
    entries: Vec<(StreamId, Fields)>,
    last_id: StreamId,
    entries_added: u64,
    max_deleted: StreamId,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Stream(Model1),
    Str,
}

type Model = BTreeMap<&'static str, Value>;
type Deadlines = BTreeMap<&'static str, u64>;

fn model_stream(model: &Model, k: &str) -> Result<Option<Model1>, ()> {
    match model.get(k) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(s.clone())),
        Some(Value::Str) => Err(()),
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

/// A stream image as the model sees it.
fn view(image: &sluice::Bytes) -> Result<Model1, TestCaseError> {
    let meta = stream::meta(image).map_err(|e| TestCaseError::fail(format!("meta: {e}")))?;
    let entries = stream::range(image, StreamId::MIN, StreamId::MAX, false, None)
        .map_err(|e| TestCaseError::fail(format!("range: {e}")))?
        .into_iter()
        .map(|(id, pairs)| {
            let fields = pairs
                .into_iter()
                .map(|(f, v)| (f.to_vec(), v.to_vec()))
                .collect();
            (id, fields)
        })
        .collect::<Vec<_>>();
    prop_assert_eq!(
        meta.length as usize,
        entries.len(),
        "the length counts live entries"
    );
    Ok(Model1 {
        entries,
        last_id: meta.last_id,
        entries_added: meta.entries_added,
        max_deleted: meta.max_deleted,
    })
}

fn fields_of(values: &[usize], salt: usize) -> Fields {
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            (
                format!("f{}", (i + salt) % 3).into_bytes(),
                VALUES[v].to_vec(),
            )
        })
        .collect()
}

/// One XADD through the engine, as the command runs it: the ID, or its error line.
async fn xadd(
    h: &Harness,
    key: &str,
    requested: RequestedId,
    fields: &Fields,
    trim: Option<Trim>,
) -> Result<Result<(StreamId, u64), &'static str>, SluiceError> {
    let pairs: Vec<(sluice::Bytes, sluice::Bytes)> = fields
        .iter()
        .map(|(f, v)| {
            (
                sluice::Bytes::from(f.clone()),
                sluice::Bytes::from(v.clone()),
            )
        })
        .collect();
    let now = h.clock.now_ms();
    // One-field entries go XADD's own way (one pass over the encoded stream when it can),
    // two-field ones through a `StreamValue` edit: the model checks both.
    if fields.len() == 1 {
        let r = h
            .sluice
            .access()
            .add_to_stream(0, &b(key), true, requested, now, &pairs, trim)
            .await?;
        return Ok(r.expect("XADD creates the stream"));
    }
    let r = h
        .sluice
        .access()
        .update_stream(0, &b(key), true, |s| {
            let id = match s.next_id(requested, now) {
                Ok(id) => id,
                Err(e) => return Ok(Err(e)),
            };
            s.add(id, &pairs);
            Ok(Ok((id, trim.map_or(0, |t| s.trim(t)))))
        })
        .await?;
    Ok(r.expect("XADD creates the stream"))
}

/// The model after a trim the engine reports removed `removed` entries: exact ones are
/// computed, approximate ones checked (a prefix, at most what an exact trim removes).
fn model_trim(
    s: &mut Model1,
    strategy: TrimStrategy,
    approx: bool,
    removed: u64,
) -> Result<(), TestCaseError> {
    let exact = match strategy {
        TrimStrategy::MaxLen(n) => s.entries.len().saturating_sub(n as usize),
        TrimStrategy::MinId(min) => s.entries.iter().take_while(|(id, _)| *id < min).count(),
    };
    if approx {
        prop_assert!(
            removed as usize <= exact,
            "an approximate trim removed {} of {}",
            removed,
            exact
        );
    } else {
        prop_assert_eq!(removed as usize, exact);
    }
    s.entries.drain(..removed as usize);
    Ok(())
}

/// One XADD, checked against the model and applied to it.
#[allow(clippy::too_many_arguments)]
async fn add(
    h: &Harness,
    model: &mut Model,
    k: usize,
    step: u64,
    auto: bool,
    values: &[usize],
    trim: Option<(bool, u64)>,
    what: &str,
) -> Result<(), TestCaseError> {
    let fail = |e: SluiceError| TestCaseError::fail(format!("{what}: {e}"));
    let key = KEYS[k];
    let fields = fields_of(values, k);
    let current = model_stream(model, key);
    let last = current.clone().ok().flatten().unwrap_or_default().last_id;
    let ms = last.ms + step;
    let requested = if auto {
        RequestedId::AutoSeq(ms)
    } else {
        RequestedId::Exact(StreamId::new(ms, step))
    };
    let trim = trim.map(|(approx, n)| Trim {
        strategy: TrimStrategy::MaxLen(n),
        approx,
        limit: if approx { 10_000 } else { 0 },
    });
    let r = xadd(h, key, requested, &fields, trim).await;
    let Ok(cur) = current else {
        return expect_wrongtype(what, r);
    };
    let mut s = cur.unwrap_or_default();
    let want_id = match requested {
        RequestedId::AutoSeq(ms) if ms == last.ms => StreamId::new(ms, last.seq + 1),
        RequestedId::AutoSeq(ms) => StreamId::new(ms, 0),
        RequestedId::Exact(id) => id,
        RequestedId::Auto => unreachable!(),
    };
    match r.map_err(fail)? {
        Err(line) => {
            prop_assert!(want_id <= last, "{}: refused {} ({})", what, want_id, line);
            // A refused XADD on a missing key makes no stream.
        }
        Ok((id, removed)) => {
            prop_assert!(want_id > last, "{}", what);
            prop_assert_eq!(id, want_id, "{}", what);
            s.entries.push((id, fields));
            s.last_id = id;
            s.entries_added += 1;
            if let Some(t) = trim {
                model_trim(&mut s, t.strategy, t.approx, removed)?;
            }
            model.insert(key, Value::Stream(s));
        }
    }
    Ok(())
}

/// The driver's view of this test (`common::run_model_steps`).
struct Streams;

impl CollectionModel for Streams {
    type Op = Op;
    type Model = Model;
    type Table = BTreeMap<String, (i64, Option<Model1>)>;

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
            Op::DelKey(k) | Op::SetString(k) => Some(KEYS[k]),
            _ => None,
        }
    }

    fn holds(model: &Model, key: &str) -> bool {
        model.contains_key(key)
    }

    async fn apply(
        h: &Harness,
        model: &mut Model,
        deadlines: &mut Deadlines,
        op: &Op,
        what: &str,
    ) -> Result<(), TestCaseError> {
        let fail = |e: SluiceError| TestCaseError::fail(format!("{what}: {e}"));
        match *op {
            Op::Add(k, step, auto, ref values, trim) => {
                add(h, model, k, step, auto, values, trim, what).await?;
            }
            Op::Burst(k, n) => {
                for i in 0..n {
                    let values = [i % VALUES.len()];
                    add(h, model, k, 1, false, &values, None, what).await?;
                }
            }
            Op::Del(k, at) => {
                let key = KEYS[k];
                let current = model_stream(model, key);
                let id = match &current {
                    Ok(Some(s)) => s.entries.get(at).map_or(StreamId::new(999_999, 0), |e| e.0),
                    _ => StreamId::new(1, 0),
                };
                let r = h
                    .sluice
                    .access()
                    .update_stream(0, &b(key), false, |s| Ok((s.delete(id), s.delete(id))))
                    .await;
                match current {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(None) => prop_assert_eq!(r.map_err(fail)?, None, "{}", what),
                    Ok(Some(mut s)) => {
                        let found = s.entries.iter().position(|e| e.0 == id);
                        prop_assert_eq!(
                            r.map_err(fail)?,
                            Some((found.is_some(), false)),
                            "{}",
                            what
                        );
                        if let Some(i) = found {
                            s.entries.remove(i);
                            s.max_deleted = s.max_deleted.max(id);
                        }
                        model.insert(key, Value::Stream(s));
                    }
                }
            }
            Op::TrimLen(k, _, _) | Op::TrimMinId(k, _) => {
                let key = KEYS[k];
                let current = model_stream(model, key);
                let (strategy, approx) = match *op {
                    Op::TrimLen(_, approx, n) => (TrimStrategy::MaxLen(n), approx),
                    Op::TrimMinId(_, at) => {
                        let min = match &current {
                            Ok(Some(s)) => s.entries.get(at).map_or(StreamId::MAX, |e| e.0),
                            _ => StreamId::MIN,
                        };
                        (TrimStrategy::MinId(min), false)
                    }
                    _ => unreachable!(),
                };
                let trim = Trim {
                    strategy,
                    approx,
                    limit: if approx { 10_000 } else { 0 },
                };
                let r = h
                    .sluice
                    .access()
                    .update_stream(0, &b(key), false, |s| Ok(s.trim(trim)))
                    .await;
                match current {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(None) => prop_assert_eq!(r.map_err(fail)?, None, "{}", what),
                    Ok(Some(mut s)) => {
                        let removed = r.map_err(fail)?.expect("an existing stream");
                        model_trim(&mut s, strategy, approx, removed)?;
                        model.insert(key, Value::Stream(s));
                    }
                }
            }
            Op::SetId(k, n) => {
                let key = KEYS[k];
                let current = model_stream(model, key);
                let last = current.clone().ok().flatten().unwrap_or_default().last_id;
                let id = StreamId::new(last.ms + n, last.seq);
                let r = h
                    .sluice
                    .access()
                    .update_stream(0, &b(key), false, |s| {
                        s.set_id(id, None, None);
                        Ok(())
                    })
                    .await;
                match current {
                    Err(()) => expect_wrongtype(what, r)?,
                    Ok(None) => prop_assert_eq!(r.map_err(fail)?, None, "{}", what),
                    Ok(Some(mut s)) => {
                        r.map_err(fail)?;
                        s.last_id = id;
                        model.insert(key, Value::Stream(s));
                    }
                }
            }
            Op::DelKey(k) | Op::SetString(k) | Op::Expire(k) => {
                let step = match *op {
                    Op::DelKey(_) => KeyStep::Del,
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

    async fn check_reads(h: &Harness, model: &Model, what: &str) -> Result<(), TestCaseError> {
        for key in KEYS {
            let r = h.sluice.access().stream_image(0, b(key)).await;
            match model_stream(model, key) {
                Err(()) => expect_wrongtype(&format!("{what}: read {key}"), r)?,
                Ok(want) => {
                    let got = r
                        .map_err(|e| TestCaseError::fail(format!("{what}: read {key}: {e}")))?
                        .map(|image| view(&image))
                        .transpose()?;
                    prop_assert_eq!(got, want, "{}: read {}", what, key);
                }
            }
        }
        Ok(())
    }

    /// The built-in table, read with a connection of its own: each live key's kind and, for a
    /// stream, the stream its rows rebuild (an expired key's rows are left out).
    fn table(h: &Harness) -> Result<Self::Table, TestCaseError> {
        let conn = Connection::open(db_path(h.path())).unwrap();
        let now = h.clock.now_ms() as i64;
        let mut out = BTreeMap::new();
        let mut st = conn
            .prepare("SELECT CAST(key AS TEXT), kind, expires_at FROM sluice_kv WHERE db = 0")
            .unwrap();
        let keys: Vec<(String, i64, Option<i64>)> = st
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (key, kind, expires_at) in keys {
            if expires_at.is_some_and(|e| e <= now) {
                continue;
            }
            let mut rows = conn
                .prepare(
                    "SELECT member, value FROM sluice_members WHERE db = 0 AND key = CAST(?1 AS BLOB)",
                )
                .unwrap();
            let rows: Vec<(sluice::Bytes, sluice::Bytes)> = rows
                .query_map([&key], |r| {
                    Ok((
                        sluice::Bytes::from(r.get::<_, Vec<u8>>(0)?),
                        sluice::Bytes::from(r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default()),
                    ))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            let value = if rows.is_empty() {
                None
            } else {
                let image = stream::from_rows(rows)
                    .map_err(|e| TestCaseError::fail(format!("{key}: rows: {e}")))?;
                Some(view(&image)?)
            };
            out.insert(key, (kind, value));
        }
        Ok(out)
    }

    fn model_table(model: &Model) -> Self::Table {
        model
            .iter()
            .map(|(k, v)| {
                let row = match v {
                    Value::Stream(s) => (5, Some(s.clone())),
                    Value::Str => (0, None),
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
        prop::collection::vec(step, 1..40),
        |ops| run_model_steps_flushing::<Streams>(policy, ops, background_flush),
    );
}

#[test]
fn write_back_streams_match_a_model_across_flushes_faults_and_replays() {
    check(Policy::WriteBack);
}

/// Write-back with only the steps' flushes: each key stays buffered across many writes, so
/// its writes are journaled as member records onto its chain, which the restarts replay.
#[test]
fn write_back_streams_match_a_model_across_member_records_and_replays() {
    check_flushing(Policy::WriteBack, false);
}

#[test]
fn write_through_streams_match_a_model_across_flushes_and_restarts() {
    check(Policy::WriteThrough);
}

#[test]
fn invalidate_streams_match_a_model_across_flushes_and_restarts() {
    check(Policy::Invalidate);
}
