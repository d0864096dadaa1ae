//! Per-key ordering under write-back, as a property: for any sequence of SET / SET NX / DEL /
//! INCRBY over a few keys, with flushes at random points, injected transient batch failures
//! and outages toggled on and off, every GET equals a plain map model, and once the faults
//! clear and a flush succeeds the `sluice_kv` table equals the model exactly. The background
//! flusher runs continuously in small batches, racing the writes.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use sluice::{Policy, SetCondition, SetOptions, SluiceError};

use common::*;

const KEYS: [&str; 4] = ["a", "b", "c", "d"];

#[derive(Debug, Clone)]
enum Op {
    Set(usize, String),
    SetNx(usize, String),
    Del(usize),
    IncrBy(usize, i64),
    Get(usize),
    Flush,
    FailNextBatches(u64),
    Outage(bool),
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..KEYS.len();
    let value = prop_oneof![(0i64..100).prop_map(|n| n.to_string()), "[a-z]{1,6}",];
    prop_oneof![
        6 => (key.clone(), value.clone()).prop_map(|(k, v)| Op::Set(k, v)),
        1 => (key.clone(), value).prop_map(|(k, v)| Op::SetNx(k, v)),
        3 => key.clone().prop_map(Op::Del),
        5 => (key.clone(), -5i64..6).prop_map(|(k, d)| Op::IncrBy(k, d)),
        3 => key.prop_map(Op::Get),
        2 => Just(Op::Flush),
        1 => (1u64..4).prop_map(Op::FailNextBatches),
        1 => any::<bool>().prop_map(Op::Outage),
    ]
}

fn table(h: &Harness) -> BTreeMap<String, String> {
    h.kv_table(0)
}

fn model_table(model: &HashMap<&'static str, String>) -> BTreeMap<String, String> {
    model
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// An error is only acceptable while the database is down, and must be a store error; the
/// operation then had no effect.
fn tolerate(outage: bool, what: &str, e: SluiceError) -> Result<(), TestCaseError> {
    prop_assert!(outage, "{what} failed with the store up: {e}");
    prop_assert!(matches!(e, SluiceError::Store { .. }), "{what}: {e:?}");
    Ok(())
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    // The flusher runs all the time in small batches, so flushes interleave with the writes.
    let mut ks = builtin(Policy::WriteBack);
    ks.flush_interval = Duration::from_millis(1);
    ks.flush_batch = 2;
    let h = Harness::start("", vec![ks]).await;
    let mut model: HashMap<&'static str, String> = HashMap::new();
    let mut outage = false;
    for (step, op) in ops.into_iter().enumerate() {
        let what = format!("step {step} {op:?}");
        match op {
            Op::Set(k, v) => {
                // A plain SET needs no read, so it is accepted even during an outage.
                h.sluice
                    .set(0, b(KEYS[k]), b(&v), SetOptions::default())
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                model.insert(KEYS[k], v);
            }
            Op::SetNx(k, v) => {
                let nx = SetOptions {
                    condition: SetCondition::IfAbsent,
                    ..Default::default()
                };
                match h.sluice.set(0, b(KEYS[k]), b(&v), nx).await {
                    Ok(out) => {
                        prop_assert_eq!(out.written, !model.contains_key(KEYS[k]), "{}", what);
                        model.entry(KEYS[k]).or_insert(v);
                    }
                    Err(e) => tolerate(outage, &what, e)?,
                }
            }
            Op::Del(k) => match h.sluice.del(0, &b(KEYS[k])).await {
                Ok(existed) => {
                    prop_assert_eq!(existed, model.remove(KEYS[k]).is_some(), "{}", what);
                }
                Err(e) => tolerate(outage, &what, e)?,
            },
            Op::IncrBy(k, d) => {
                let current = model.get(KEYS[k]).map(|v| v.parse::<i64>());
                match (h.sluice.incr_by(0, b(KEYS[k]), d).await, current) {
                    (Ok(n), None) => {
                        prop_assert_eq!(n, d, "{}", what);
                        model.insert(KEYS[k], n.to_string());
                    }
                    (Ok(n), Some(Ok(c))) => {
                        prop_assert_eq!(n, c + d, "{}", what);
                        model.insert(KEYS[k], n.to_string());
                    }
                    (Ok(n), Some(Err(_))) => {
                        return Err(TestCaseError::fail(format!(
                            "{what}: incremented a non-integer to {n}"
                        )));
                    }
                    (Err(SluiceError::NotInteger), Some(Err(_))) => {}
                    (Err(e), _) => tolerate(outage, &what, e)?,
                }
            }
            Op::Get(k) => match h.sluice.get(0, b(KEYS[k])).await {
                Ok(v) => {
                    let got = v.map(|v| String::from_utf8(v.to_vec()).unwrap());
                    prop_assert_eq!(got.as_ref(), model.get(KEYS[k]), "{}", what);
                }
                Err(e) => tolerate(outage, &what, e)?,
            },
            Op::Flush => match h.sluice.flush().await {
                // Nothing runs concurrently, so a successful flush leaves the table equal to
                // the model.
                Ok(()) => prop_assert_eq!(table(&h), model_table(&model), "{}", what),
                Err(e) => prop_assert!(
                    matches!(e, SluiceError::Store { .. }),
                    "{}: flush failed with {:?}",
                    what,
                    e
                ),
            },
            Op::FailNextBatches(n) => h.store.fail_next_batches(n),
            Op::Outage(on) => {
                outage = on;
                h.store.set_outage(on);
            }
        }
    }
    h.store.set_outage(false);
    h.store.fail_next_batches(0);
    h.sluice
        .flush()
        .await
        .map_err(|e| TestCaseError::fail(format!("final flush: {e}")))?;
    prop_assert_eq!(table(&h), model_table(&model));
    for key in KEYS {
        let got = h.get(key).await;
        prop_assert_eq!(got.as_ref(), model.get(key), "final GET {}", key);
    }
    prop_assert!(h.sluice.dead_letters(None).unwrap().is_empty());
    Ok(())
}

#[test]
fn write_back_per_key_order_matches_a_map_model_under_faults() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&prop::collection::vec(op(), 1..60), |ops| {
            rt.block_on(run(ops))
        })
        .unwrap();
}
