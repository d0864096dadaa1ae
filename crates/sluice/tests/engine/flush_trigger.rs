//! The write-back size trigger counts fresh keys only: `flush_batch` keys that no drain stored
//! since the last timed flush start a flush at once, while rewrites of a hot set of any size
//! coalesce until `flush_interval`.

use std::time::{Duration, Instant};

use sluice::{KeyspaceConfig, Policy};

use crate::common::*;

/// Default `flush_batch`.
const BATCH: usize = 512;
/// A hot set three batches large.
const HOT: usize = 3 * BATCH;

/// Write-back with default knobs but no timed flush during the test: every flush is either
/// the size trigger or an explicit `flush()`.
fn no_timer() -> KeyspaceConfig {
    let mut ks = KeyspaceConfig::builtin(Policy::WriteBack);
    assert_eq!(ks.flush_batch, BATCH);
    ks.flush_interval = Duration::from_secs(3600);
    ks
}

fn hot(i: usize) -> String {
    format!("hot:{i}")
}

/// Writes the hot set once and stores it with an explicit flush, so one drain (in this epoch)
/// has stored every hot key. Returns the rows written so far.
async fn warm_hot_set(h: &Harness) -> u64 {
    for i in 0..HOT {
        h.sluice.incr_by(0, b(&hot(i)), 1).await.unwrap();
    }
    h.sluice.flush().await.unwrap();
    assert_eq!(h.buffered("default"), 0);
    // Each key was dirty once, whichever drains (size-triggered or explicit) stored it.
    assert_eq!(h.store.rows_written(), HOT as u64);
    HOT as u64
}

/// Waits for the background flusher to empty the buffer.
async fn flushed_in_background(h: &Harness) {
    let drained = eventually(Duration::from_secs(20), || h.buffered("default") == 0).await;
    assert!(
        drained,
        "no size-triggered flush: {:?}",
        h.sluice.keyspaces()[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_batch_new_keys_flush_before_the_interval() {
    let h = Harness::start("", vec![no_timer()]).await;
    for i in 0..BATCH {
        h.set(&format!("new:{i}"), "v").await;
    }
    flushed_in_background(&h).await;
    // One wake at the 512th key, one transaction of all of them.
    assert_eq!(h.store.rows_written(), BATCH as u64);
    assert_eq!(h.store.batches(), 1);
    assert_eq!(h.kv_table(0).len(), BATCH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hot_set_three_batches_large_coalesces_until_the_next_flush() {
    let h = Harness::start("", vec![no_timer()]).await;
    let mut rows = warm_hot_set(&h).await;
    for round in 1..=3u64 {
        for _ in 0..5 {
            for i in 0..HOT {
                h.sluice.incr_by(0, b(&hot(i)), 1).await.unwrap();
            }
        }
        // 7,680 rewrites of 1,536 stored keys: none of them is fresh, nothing flushed.
        assert_eq!(h.store.rows_written(), rows, "round {round}");
        assert_eq!(h.buffered("default"), HOT);
        // The "interval": one row per hot key.
        h.sluice.flush().await.unwrap();
        rows += HOT as u64;
        assert_eq!(h.store.rows_written(), rows, "round {round}");
    }
    for i in (0..HOT).step_by(97) {
        assert_eq!(h.store.writes_for_key(hot(i).as_bytes()), 4, "{}", hot(i));
        assert_eq!(h.kv_row(0, &hot(i)), Some(("16".into(), None)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_keys_among_hot_rewrites_still_trigger() {
    let h = Harness::start("", vec![no_timer()]).await;
    let rows = warm_hot_set(&h).await;
    // 511 new keys, each after three hot rewrites: below the trigger.
    for n in 0..BATCH - 1 {
        for i in 3 * n..3 * n + 3 {
            h.sluice.incr_by(0, b(&hot(i)), 1).await.unwrap();
        }
        h.set(&format!("new:{n}"), "v").await;
    }
    assert_eq!(h.store.rows_written(), rows);
    let hot_dirty = 3 * (BATCH - 1);
    assert_eq!(h.buffered("default"), hot_dirty + BATCH - 1);
    // The 512th new key flushes everything buffered.
    h.set(&format!("new:{}", BATCH - 1), "v").await;
    flushed_in_background(&h).await;
    assert_eq!(
        h.store.rows_written(),
        rows + (hot_dirty + BATCH) as u64,
        "one drain, one row per dirty key"
    );
    assert_eq!(h.kv_row(0, &hot(0)), Some(("2".into(), None)));
    assert_eq!(h.kv_row(0, "new:511"), Some(("v".into(), None)));
}

/// A hot set accessed at random, many batches large. Each key is fresh at most once per
/// epoch, so at most `keys / flush_batch` size-triggered drains happen before the hot set is
/// known, however the writes and the drains interleave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_rewrites_of_a_large_hot_set_stop_triggering_once_it_is_known() {
    const KEYS: u64 = 256;
    const WRITES: usize = 20_000;
    let mut ks = no_timer();
    ks.flush_batch = 16;
    let h = Harness::start("", vec![ks]).await;
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..WRITES {
        // xorshift64
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        h.sluice
            .incr_by(0, b(&format!("r:{}", x % KEYS)), 1)
            .await
            .unwrap();
    }
    h.sluice.flush().await.unwrap();
    let bound = (KEYS / 16 + 1) * KEYS;
    let rows = h.store.rows_written();
    assert!(
        rows <= bound,
        "{rows} row writes for {WRITES} INCRs over {KEYS} keys (bound {bound})"
    );
    let total: u64 = h
        .kv_table(0)
        .values()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, WRITES as u64);
}

/// With a real timer: each timed flush stores the hot set once and starts a new epoch that
/// remembers it, so the hot set never reaches the size trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timed_flushes_keep_the_hot_set_known() {
    const KEYS: usize = 48;
    let mut ks = KeyspaceConfig::builtin(Policy::WriteBack);
    ks.flush_batch = 16;
    ks.flush_interval = Duration::from_millis(100);
    let h = Harness::start("", vec![ks]).await;
    let started = Instant::now();
    let mut writes = 0u64;
    while started.elapsed() < Duration::from_millis(800) {
        for i in 0..KEYS {
            h.sluice.incr_by(0, b(&hot(i)), 1).await.unwrap();
            writes += 1;
        }
        tokio::task::yield_now().await;
    }
    h.sluice.flush().await.unwrap();
    let elapsed = started.elapsed();
    // One timed drain per interval elapsed and the final flush, each storing at most the whole
    // set. Size-triggered drains: at most KEYS/16 per epoch, and in practice only in the
    // first (later ones start with every key buffered, so the timed drain remembers them all),
    // but a writer stalled for a whole interval on a loaded machine can make an epoch relearn.
    let epochs = elapsed.as_millis() as u64 / 100 + 1;
    let drains = epochs * (1 + (KEYS / 16) as u64) + 1;
    let rows = h.store.rows_written();
    assert!(
        rows <= drains * KEYS as u64,
        "{rows} row writes for {writes} INCRs in {elapsed:?} (at most {drains} drains)"
    );
    let total: u64 = h
        .kv_table(0)
        .values()
        .map(|v| v.parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, writes);
}
