//! Group commit: concurrent write-through writes share store transactions, and sharing never
//! changes what one writer is told or what the cache serves.
//!
//! The store's door (`FaultyStore::close_door`) decides what is in flight. With the door
//! closed, writers sent one at a time each start their own batch until every batch slot of the
//! committer is taken; writers sent after that queue behind them, which the keyspace's write
//! counter confirms (the engine counts a write just before handing it to the committer, with no
//! wait in between). When a slot frees, the whole queue leaves as one batch. No assertion
//! depends on how long anything takes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use sluice::error::ErrorClass;
use sluice::model::StoreWrite;
use sluice::tiers::store::faulty::BatchFate;
use sluice::{Policy, SluiceError};
use tokio::task::JoinHandle;

use crate::common::*;

/// Batches the committer keeps in flight; more writers queue.
const SLOTS: u64 = 4;
/// Generous bound for something that happens at once; a hang fails the test instead of
/// stalling it.
const PATIENCE: Duration = Duration::from_secs(10);
/// How long a writer gets to reach the committer before the test concludes that its key shares
/// a stripe with an earlier writer's (stripes are seeded at random per engine) and waits for it,
/// as it must. It only decides whether a run is set aside, never whether a test passes.
const STRIPE_WAIT: Duration = Duration::from_secs(2);

type Writer = JoinHandle<Result<(), SluiceError>>;

fn spawn_set(h: &Harness, key: &str, value: &str) -> Writer {
    let sluice = h.sluice.clone();
    let (key, value) = (b(key), b(value));
    tokio::spawn(async move {
        sluice
            .set(0, key, value, Default::default())
            .await
            .map(|_| ())
    })
}

/// Writes the built-in keyspace (the only one in these tests) has handed to the committer.
fn writes(h: &Harness) -> u64 {
    h.sluice.keyspaces()[0].writes
}

/// A scene set with the door closed: each filler holds one batch slot at the door, and the
/// writers (one per key, value [`value_of`]) were sent after them.
struct Stage {
    h: Harness,
    fillers: Vec<Writer>,
    writers: Vec<Writer>,
    /// Writers (fillers included) that had not reached the committer when the scene was set,
    /// because another writer of the scene held their stripe.
    stragglers: u64,
}

async fn stage(h: Harness, keys: &[String]) -> Stage {
    h.store.close_door();
    let mut fillers = Vec::new();
    let mut stragglers = 0;
    while h.store.waiting_at_door() < SLOTS {
        assert!(fillers.len() < 4 * SLOTS as usize, "no filler took a slot");
        let holding = h.store.waiting_at_door();
        fillers.push(spawn_set(&h, &format!("filler{}", fillers.len()), "f"));
        if !eventually(STRIPE_WAIT, || h.store.waiting_at_door() > holding).await {
            stragglers += 1;
        }
    }
    let before = writes(&h);
    let writers: Vec<Writer> = keys
        .iter()
        .map(|k| spawn_set(&h, k, &value_of(k)))
        .collect();
    let n = keys.len() as u64;
    eventually(STRIPE_WAIT, || writes(&h) == before + n).await;
    stragglers += (before + n).saturating_sub(writes(&h));
    Stage {
        h,
        fillers,
        writers,
        stragglers,
    }
}

/// [`stage`] on a fresh write-through engine (after `setup`), again on a new one (new stripe
/// seed) whenever some writer could not reach the committer.
async fn stage_cleanly(setup: impl Fn(&Harness), keys: &[String]) -> Stage {
    for _ in 0..5 {
        let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
        setup(&h);
        let st = stage(h, keys).await;
        if st.stragglers == 0 {
            return st;
        }
        st.h.store.open_door();
        for w in st.fillers.into_iter().chain(st.writers) {
            let _ = join(w).await;
        }
    }
    panic!("in every run two writers shared a stripe");
}

fn value_of(key: &str) -> String {
    format!("value-of-{key}")
}

async fn join(w: Writer) -> Result<(), SluiceError> {
    tokio::time::timeout(PATIENCE, w)
        .await
        .expect("a writer hung")
        .expect("writer task")
}

/// Whether `key` is in the cache: with store reads failing, only a cached copy can answer.
async fn cached(h: &Harness, key: &str) -> Option<String> {
    h.store.set_read_outage(true);
    let got = h.sluice.get(0, b(key)).await;
    h.store.set_read_outage(false);
    got.ok()
        .flatten()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_share_transactions_and_all_land() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    let before = h.store.batches();
    let keys: Vec<String> = (0..200 - SLOTS).map(|i| format!("k{i}")).collect();
    // 200 keys nearly always include a few that share a stripe: those writers wait for each
    // other, as they must, and are counted as stragglers.
    let st = stage(h, &keys).await;
    assert!(st.stragglers < 50, "{} stragglers", st.stragglers);
    st.h.store.open_door();
    let filler_count = st.fillers.len();
    for w in st.fillers.into_iter().chain(st.writers) {
        join(w).await.expect("every write is acknowledged");
    }
    let h = st.h;

    let transactions = h.store.batches() - before;
    // One per slot held at the door, one for the whole queue behind them, and at most one
    // more per straggler, which joined the queue late.
    assert!(
        transactions <= SLOTS + 1 + st.stragglers,
        "{} writes took {transactions} transactions ({} stragglers)",
        filler_count + keys.len(),
        st.stragglers
    );
    let table = h.kv_table(0);
    assert_eq!(table.len(), filler_count + keys.len());
    for k in &keys {
        assert_eq!(table.get(k), Some(&value_of(k)), "{k} stored");
        assert_eq!(cached(&h, k).await, Some(value_of(k)), "{k} cached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_refused_in_a_group_fails_only_its_own_writer() {
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let st = stage_cleanly(
        |h| {
            h.store.log_batches();
            // The whole transaction is refused while it holds this key, as by a database
            // that cannot isolate one row: the committer must bisect to find the culprit.
            h.store.refuse_batches_with_key(b"k7");
        },
        &keys,
    )
    .await;
    st.h.store.open_door();
    for w in st.fillers {
        join(w).await.expect("filler acknowledged");
    }
    for (k, w) in keys.iter().zip(st.writers) {
        let result = join(w).await;
        if k == "k7" {
            match result {
                Err(SluiceError::Store { error, .. }) => {
                    assert!(error.is_permanent(), "{error:?}");
                    assert!(error.message.contains("whole-batch refusal"), "{error:?}");
                }
                other => panic!("k7 must fail with the store's refusal, got {other:?}"),
            }
        } else {
            result.unwrap_or_else(|e| panic!("{k} is innocent and must be acknowledged: {e}"));
        }
    }
    let h = st.h;

    // The refused key really was in a shared transaction, refused whole.
    let log = h.store.batch_log();
    assert!(
        log.iter().any(|batch| {
            batch.fate == BatchFate::Failed(ErrorClass::Permanent)
                && batch.ops.len() == keys.len()
                && batch.keys().contains(&b("k7"))
        }),
        "{log:?}"
    );
    let table = h.kv_table(0);
    for k in &keys {
        if k == "k7" {
            assert_eq!(table.get(k), None);
            assert_eq!(cached(&h, k).await, None);
        } else {
            assert_eq!(table.get(k), Some(&value_of(k)), "{k} stored");
            assert_eq!(cached(&h, k).await, Some(value_of(k)), "{k} cached");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_whose_part_of_a_split_batch_committed_are_told_so() {
    // The group is refused whole (k7), so the committer splits it; the part holding k15 then
    // fails transiently. The parts committed before or beside it stay committed, and their
    // writers must hear that, not the other part's error.
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let st = stage_cleanly(
        |h| {
            h.store.refuse_batches_with_key(b"k7");
            h.store.fail_batches_with_key(b"k15");
        },
        &keys,
    )
    .await;
    st.h.store.open_door();
    for w in st.fillers {
        join(w).await.expect("filler acknowledged");
    }
    let mut results = Vec::new();
    for w in st.writers {
        results.push(join(w).await);
    }
    let h = st.h;
    let table = h.kv_table(0);
    let mut acknowledged = 0;
    for (k, result) in keys.iter().zip(results) {
        match (k.as_str(), result) {
            ("k7", Err(SluiceError::Store { error, .. })) => {
                assert!(error.is_permanent(), "{error:?}")
            }
            ("k15", Err(SluiceError::Store { error, .. })) => {
                assert!(!error.is_permanent(), "{error:?}")
            }
            (_, Ok(())) => {
                acknowledged += 1;
                assert_eq!(table.get(k), Some(&value_of(k)), "{k} acknowledged: stored");
                assert_eq!(cached(&h, k).await, Some(value_of(k)), "{k} cached");
            }
            (_, Err(SluiceError::Store { error, .. })) if !error.is_permanent() => {
                // In k15's part: nothing of that part was committed.
                assert_eq!(table.get(k), None, "{k} failed transiently: not stored");
                assert_eq!(cached(&h, k).await, None, "{k} not cached");
            }
            (_, other) => panic!("{k}: unexpected outcome {other:?}"),
        }
    }
    for k in ["k7", "k15"] {
        assert_eq!(table.get(k), None, "{k} not stored");
    }
    // However the group was ordered, the first split leaves one half free of k15 whose
    // innocent entries were committed.
    assert!(acknowledged > 0, "no writer heard that its write committed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_failure_fails_exactly_the_writers_of_its_batch() {
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let st = stage_cleanly(|h| h.store.log_batches(), &keys).await;
    let h = &st.h;
    // The fillers go through and succeed; the queue behind them leaves as one batch, which
    // waits at the door until the failure is armed.
    h.store.let_through(SLOTS as usize);
    for w in st.fillers {
        join(w).await.expect("filler acknowledged");
    }
    assert!(eventually(PATIENCE, || h.store.waiting_at_door() == 1).await);
    h.store.fail_next_batches(1);
    h.store.open_door();

    let mut failed = BTreeSet::new();
    for (k, w) in keys.iter().zip(st.writers) {
        match join(w).await {
            Err(SluiceError::Store { error, .. }) => {
                assert!(!error.is_permanent(), "{error:?}");
                assert!(error.message.contains("injected transient"), "{error:?}");
                failed.insert(b(k));
            }
            other => panic!("{k}: expected the batch's transient error, got {other:?}"),
        }
    }
    let log = h.store.batch_log();
    let failed_batches: Vec<_> = log
        .iter()
        .filter(|batch| batch.fate == BatchFate::Failed(ErrorClass::Transient))
        .collect();
    assert_eq!(failed_batches.len(), 1, "{log:?}");
    let in_batch: BTreeSet<_> = failed_batches[0].keys().into_iter().collect();
    assert_eq!(
        in_batch, failed,
        "the failed writers are exactly that batch's"
    );

    let table = h.kv_table(0);
    for k in &keys {
        assert_eq!(table.get(k), None, "{k} must not be stored");
        assert_eq!(cached(h, k).await, None, "{k} must not be cached");
    }
    for i in 0..SLOTS {
        let k = format!("filler{i}");
        assert_eq!(table.get(&k).map(String::as_str), Some("f"));
        assert_eq!(cached(h, &k).await.as_deref(), Some("f"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_to_one_key_end_with_the_last_acknowledged_value() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    h.store.log_batches();
    const WRITERS: usize = 8;
    const ROUNDS: usize = 25;
    let mut tasks = Vec::new();
    for t in 0..WRITERS {
        let sluice = h.sluice.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                // Other keys alongside, so the hot key's writes ride in shared batches.
                let other = sluice.set(0, b(&format!("cold{t}-{i}")), b("x"), Default::default());
                let hot = sluice.set(0, b("hot"), b(&format!("{t}:{i}")), Default::default());
                let (other, hot) = tokio::join!(other, hot);
                other.expect("cold write acknowledged");
                hot.expect("hot write acknowledged");
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(PATIENCE * 6, t)
            .await
            .expect("writers hung")
            .expect("writer task");
    }

    // The order in which the store applied the hot key's writes.
    let mut applied = Vec::new();
    for batch in h.store.batch_log() {
        assert_eq!(batch.fate, BatchFate::Committed);
        let hot: Vec<_> = batch.ops.iter().filter(|op| op.key == b("hot")).collect();
        assert!(
            hot.len() <= 1,
            "two writes of one key were in flight together"
        );
        if let Some(op) = hot.first() {
            match &op.write {
                StoreWrite::Upsert { value, .. } => {
                    applied.push(String::from_utf8(value.to_vec()).unwrap())
                }
                other => panic!("only upserts were sent: {other:?}"),
            }
        }
    }
    assert_eq!(
        applied.len(),
        WRITERS * ROUNDS,
        "every acknowledged write was applied once"
    );
    // Each writer's own writes were applied in the order it made them.
    let mut last_round: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &applied {
        let (t, i) = v.split_once(':').unwrap();
        let i: usize = i.parse().unwrap();
        if let Some(prev) = last_round.insert(t, i) {
            assert!(prev < i, "writer {t}: round {i} applied after round {prev}");
        }
    }
    let last = applied.last().unwrap();
    assert_eq!(h.kv_row(0, "hot").map(|r| r.0).as_ref(), Some(last));
    assert_eq!(cached(&h, "hot").await.as_ref(), Some(last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_answers_queued_writes_and_refuses_later_ones() {
    let h = Harness::start(PRODUCTS, vec![price_keyspace(Policy::Invalidate)]).await;
    h.store.close_door();
    let in_flight = spawn_set(&h, "product:1:price", "1");
    assert!(eventually(PATIENCE, || h.store.waiting_at_door() == 1).await);
    let sluice = h.sluice.clone();
    let shutdown = tokio::spawn(async move { sluice.shutdown().await });
    // A value the column cannot hold is refused up front, touching nothing, until the engine
    // is closing: then it is refused for that. (A probe whose key shares the stuck write's
    // stripe waits behind it; it is dropped and another key tried.)
    let mut closing = false;
    for attempt in 0..1000 {
        let probe = h.sluice.set(
            0,
            b(&format!("product:{}:price", 1000 + attempt)),
            b("not a number"),
            Default::default(),
        );
        match tokio::time::timeout(Duration::from_millis(500), probe).await {
            Ok(Err(SluiceError::ShuttingDown)) => {
                closing = true;
                break;
            }
            Ok(Err(SluiceError::Refused(_))) | Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await
            }
            other => panic!("unexpected probe result {other:?}"),
        }
    }
    assert!(closing, "shutdown did not begin");
    // Shutting down waits for the write already handed over rather than dropping it.
    h.store.open_door();
    join(in_flight)
        .await
        .expect("the in-flight write is answered");
    tokio::time::timeout(PATIENCE, shutdown)
        .await
        .expect("shutdown hung")
        .expect("shutdown task");
    assert_eq!(h.column("products", "price", 1), Some(Some("1".into())));
    assert_eq!(
        h.sluice
            .set(0, b("product:3:price"), b("3"), Default::default())
            .await,
        Err(SluiceError::ShuttingDown)
    );
    assert_eq!(h.column("products", "price", 3), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_stuck_past_the_shutdown_deadline_gets_an_error_not_a_hang() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    h.store.close_door();
    let stuck = spawn_set(&h, "stuck", "1");
    assert!(eventually(PATIENCE, || h.store.waiting_at_door() == 1).await);
    // The door never opens: the deadline aborts the committer with the write inside.
    h.sluice.shutdown_within(Duration::from_millis(100)).await;
    match join(stuck).await {
        Err(SluiceError::Store { error, .. }) => {
            assert!(error.message.contains("outcome was known"), "{error:?}")
        }
        other => panic!("expected an outcome-unknown error, got {other:?}"),
    }
    assert_eq!(
        h.sluice.set(0, b("k"), b("v"), Default::default()).await,
        Err(SluiceError::ShuttingDown)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_rolled_back_for_a_conflict_is_run_again_and_its_writers_succeed() {
    let h = Harness::start("", vec![builtin(Policy::WriteThrough)]).await;
    h.store.log_batches();
    // The database rolls the next two transactions back as deadlock victims.
    h.store.conflict_next_batches(2);
    let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
    let writers: Vec<Writer> = keys
        .iter()
        .map(|k| spawn_set(&h, k, &value_of(k)))
        .collect();
    for (k, w) in keys.iter().zip(writers) {
        join(w)
            .await
            .unwrap_or_else(|e| panic!("{k}: a conflict is retried, not reported: {e}"));
    }
    let log = h.store.batch_log();
    let conflicts = log
        .iter()
        .filter(|batch| batch.fate == BatchFate::Failed(ErrorClass::Conflict))
        .count();
    assert_eq!(conflicts, 2, "{log:?}");
    // Every write committed exactly once: the rolled-back attempts committed nothing.
    let committed: Vec<_> = log
        .iter()
        .filter(|batch| batch.fate == BatchFate::Committed)
        .flat_map(|batch| batch.keys())
        .collect();
    let distinct: BTreeSet<_> = committed.iter().cloned().collect();
    assert_eq!(committed.len(), keys.len(), "{log:?}");
    assert_eq!(distinct.len(), keys.len());
    let table = h.kv_table(0);
    for k in &keys {
        assert_eq!(table.get(k), Some(&value_of(k)), "{k} stored");
        assert_eq!(cached(&h, k).await, Some(value_of(k)), "{k} cached");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicts_past_the_retries_reach_the_writer_and_store_nothing() {
    let h = Harness::start(PRODUCTS, vec![price_keyspace(Policy::WriteThrough)]).await;
    h.store.log_batches();
    // One more conflict than the committer retries: 1 attempt + 3 retries.
    h.store.conflict_next_batches(4);
    match h
        .sluice
        .set(0, b("product:1:price"), b("9.999"), Default::default())
        .await
    {
        Err(SluiceError::Store { error, .. }) => {
            assert!(!error.is_permanent() && error.is_conflict(), "{error:?}");
            assert!(error.message.contains("injected conflict"), "{error:?}");
        }
        other => panic!("expected the conflict error, got {other:?}"),
    }
    assert_eq!(
        h.store.batch_log().len(),
        4,
        "one attempt and three retries"
    );
    assert_eq!(h.column("products", "price", 1), None);
    assert_eq!(cached(&h, "product:1:price").await, None);
    // The conflicts are over: the next write goes through at once, and the typed column's
    // stored text is what the key serves.
    h.set("product:1:price", "9.999").await;
    assert_eq!(h.store.batch_log().len(), 5);
    assert_eq!(h.column("products", "price", 1), Some(Some("9.999".into())));
    assert_eq!(h.get("product:1:price").await.as_deref(), Some("9.999"));
}
