//! A read-through that races a write never leaves the older value in the cache.
//!
//! The cache tier is wrapped so the races are forced rather than hoped for: `FlakyCache`
//! drops copies at random (so reads go through to the database all the time) and yields
//! inside `put` (so a reader's install lands late); `GatedCache` holds one reader's install
//! until a write has completed.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sluice::clock::ManualClock;
use sluice::model::DbKey;
use sluice::tiers::cache::memory::MemoryCache;
use sluice::tiers::cache::{Cache, CacheError, CacheStats, CachedValue};
use sluice::tiers::store::faulty::FaultyStore;
use sluice::tiers::store::sqlite::SqliteStore;
use sluice::tiers::store::SharedStore;
use sluice::{Bytes, Durability, Policy, Sluice};
use tokio::sync::Notify;

use crate::common::*;

/// A memory cache that, while `flaky`, misses every other lookup (dropping the copy, as an
/// eviction would) and yields a random number of times before each insert.
struct FlakyCache {
    inner: MemoryCache,
    flaky: AtomicBool,
    gets: AtomicU64,
}

#[async_trait]
impl Cache for FlakyCache {
    async fn get(&self, key: &DbKey) -> Result<Option<CachedValue>, CacheError> {
        if self.flaky.load(Ordering::SeqCst) && self.gets.fetch_add(1, Ordering::Relaxed) & 1 == 0 {
            self.inner.remove(key).await?;
            return Ok(None);
        }
        self.inner.get(key).await
    }
    async fn put(&self, key: DbKey, value: CachedValue) -> Result<(), CacheError> {
        if self.flaky.load(Ordering::SeqCst) {
            for _ in 0..rand::random::<u8>() % 4 {
                tokio::task::yield_now().await;
            }
        }
        self.inner.put(key, value).await
    }
    async fn remove(&self, key: &DbKey) -> Result<(), CacheError> {
        self.inner.remove(key).await
    }
    async fn clear(&self, db: Option<u8>) -> Result<(), CacheError> {
        self.inner.clear(db).await
    }
    fn stats(&self) -> CacheStats {
        self.inner.stats()
    }
}

fn cache_key(key: &str) -> DbKey {
    DbKey { db: 0, key: b(key) }
}

async fn open_with_cache(
    dir: &std::path::Path,
    policy: Policy,
    cache: Arc<dyn Cache>,
) -> (Sluice, Arc<FaultyStore>) {
    let clock = ManualClock::new(T0);
    let inner: SharedStore = Arc::new(SqliteStore::open(&db_path(dir)).unwrap());
    let store = FaultyStore::new(inner);
    let sluice = Sluice::builder(config(dir, vec![builtin(policy)]))
        .clock(Arc::new(clock))
        .store(store.clone())
        .cache(cache)
        .open()
        .await
        .unwrap();
    (sluice, store)
}

/// Rounds of one writer setting 1, 2, … N while readers hammer GET on the same key through a
/// cache that misses half the time. Once the writer is done, GET returns N and the cache
/// holds N or nothing.
async fn writer_against_readers(policy: Policy, rounds: usize, writes: u64) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(FlakyCache {
        inner: MemoryCache::new(64 << 20, Arc::new(ManualClock::new(T0))),
        flaky: AtomicBool::new(false),
        gets: AtomicU64::new(0),
    });
    let (sluice, store) = open_with_cache(dir.path(), policy, cache.clone()).await;
    if policy != Policy::WriteBack {
        // Keep each store write in flight a little, so reads overlap it.
        store.set_write_delay(Some(Duration::from_micros(200)));
    }
    let mut read_throughs = 0;
    for round in 0..rounds {
        let key = format!("race:{round}");
        cache.flaky.store(true, Ordering::SeqCst);
        let stop = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (sluice, stop, key) = (sluice.clone(), stop.clone(), b(&key));
                tokio::spawn(async move {
                    let mut reads = 0u64;
                    while !stop.load(Ordering::SeqCst) {
                        if let Some(v) = sluice.get(0, key.clone()).await.unwrap() {
                            let n: u64 = std::str::from_utf8(&v).unwrap().parse().unwrap();
                            assert!(n >= 1);
                        }
                        reads += 1;
                        tokio::task::yield_now().await;
                    }
                    reads
                })
            })
            .collect();
        let before = store.reads();
        for v in 1..=writes {
            sluice
                .set(0, b(&key), b(&v.to_string()), Default::default())
                .await
                .unwrap();
            if policy == Policy::WriteBack && v % 8 == 0 {
                sluice.flush().await.unwrap();
                // With the buffer drained, one of two lookups misses the flaky cache: this
                // guarantees read-throughs even when the readers are not scheduled here.
                for _ in 0..2 {
                    assert_eq!(
                        sluice.get(0, b(&key)).await.unwrap(),
                        Some(b(&v.to_string()))
                    );
                }
            }
        }
        let last = writes.to_string();
        cache.flaky.store(false, Ordering::SeqCst);
        assert_eq!(
            sluice.get(0, b(&key)).await.unwrap(),
            Some(b(&last)),
            "{policy:?} round {round}: GET after the last write, readers still running"
        );
        stop.store(true, Ordering::SeqCst);
        for r in readers {
            assert!(r.await.unwrap() > 0);
        }
        read_throughs += store.reads() - before;
        // Whatever the readers installed, the cache now holds the last value or nothing.
        let cached = cache.inner.get(&cache_key(&key)).await.unwrap();
        assert!(
            cached.as_ref().is_none_or(|c| c.value == last),
            "{policy:?} round {round}: stale cached copy {cached:?}, expected {last}"
        );
        assert_eq!(sluice.get(0, b(&key)).await.unwrap(), Some(b(&last)));
    }
    assert!(
        read_throughs > 0,
        "{policy:?}: the readers never raced a write"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_racing_write_through_never_installs_the_stale_value() {
    writer_against_readers(Policy::WriteThrough, 8, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_racing_invalidate_never_installs_the_stale_value() {
    writer_against_readers(Policy::Invalidate, 8, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_through_racing_write_back_and_its_flushes_never_installs_the_stale_value() {
    writer_against_readers(Policy::WriteBack, 8, 200).await;
}

/// The exact interleaving: a reader reads the old value from the database and passes its
/// version check, a write then commits and completes, and only then does the reader's
/// install land. The install must not survive.
async fn late_install_after_a_completed_write(policy: Policy) {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(GatedCache {
        inner: MemoryCache::new(64 << 20, Arc::new(ManualClock::new(T0))),
        armed: AtomicBool::new(false),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let (sluice, _store) = open_with_cache(dir.path(), policy, cache.clone()).await;
    // The old value is in the database but not in the cache.
    exec_sql(
        dir.path(),
        "INSERT INTO sluice_kv (db, key, value) VALUES (0, CAST('k' AS BLOB), CAST('old' AS BLOB))",
    );

    cache.armed.store(true, Ordering::SeqCst);
    let reader = {
        let sluice = sluice.clone();
        tokio::spawn(async move { sluice.get(0, b("k")).await.unwrap() })
    };
    cache.entered.notified().await; // the reader is installing "old"
    sluice
        .set(0, b("k"), b("new"), Default::default())
        .await
        .unwrap();
    assert_eq!(kv_row(dir.path(), 0, "k"), Some(("new".into(), None)));
    cache.release.notify_one();
    assert_eq!(reader.await.unwrap(), Some(Bytes::from_static(b"old")));

    let cached = cache.inner.get(&cache_key("k")).await.unwrap();
    assert!(
        cached.as_ref().is_none_or(|c| c.value == "new"),
        "{policy:?}: the late install left {cached:?} in the cache"
    );
    assert_eq!(sluice.get(0, b("k")).await.unwrap(), Some(b("new")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_read_through_install_never_overwrites_a_completed_write_through() {
    late_install_after_a_completed_write(Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_read_through_install_never_resurrects_an_invalidated_value() {
    late_install_after_a_completed_write(Policy::Invalidate).await;
}

/// A memory cache whose lookups can be held (the next one, once armed, announces itself and
/// waits for release) or made to miss (the next one, once set, answers nothing).
struct HeldLookupCache {
    inner: MemoryCache,
    hold_next_get: AtomicBool,
    miss_next_get: AtomicBool,
    entered: Notify,
    release: Notify,
}

#[async_trait]
impl Cache for HeldLookupCache {
    async fn get(&self, key: &DbKey) -> Result<Option<CachedValue>, CacheError> {
        if self.hold_next_get.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
        } else if self.miss_next_get.swap(false, Ordering::SeqCst) {
            return Ok(None);
        }
        self.inner.get(key).await
    }
    async fn put(&self, key: DbKey, value: CachedValue) -> Result<(), CacheError> {
        self.inner.put(key, value).await
    }
    async fn remove(&self, key: &DbKey) -> Result<(), CacheError> {
        self.inner.remove(key).await
    }
    async fn clear(&self, db: Option<u8>) -> Result<(), CacheError> {
        self.inner.clear(db).await
    }
    fn stats(&self) -> CacheStats {
        self.inner.stats()
    }
}

/// The exact interleaving behind a once-flaky run of the write-back race above: a reader
/// finds the key in neither the buffer nor (yet) the cache's answer; while its lookup is out,
/// another reader fills the stripe and a write-back write lands in the buffer. The first
/// reader's copy is then suspect (a fill ran) and it reads again, but it must look at the
/// buffer again too: reading the store at the new version would return and install the row
/// the buffered write replaces, which every read sees once that write is flushed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_meets_a_fill_reads_the_buffer_again_before_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let cache = Arc::new(HeldLookupCache {
        inner: MemoryCache::new(64 << 20, Arc::new(ManualClock::new(T0))),
        hold_next_get: AtomicBool::new(false),
        miss_next_get: AtomicBool::new(false),
        entered: Notify::new(),
        release: Notify::new(),
    });
    let clock = ManualClock::new(T0);
    let inner: SharedStore = Arc::new(SqliteStore::open(&db_path(dir.path())).unwrap());
    let mut keyspace = builtin(Policy::WriteBack);
    keyspace.flush_interval = Duration::from_secs(3600); // flushed only when the test says
    let sluice = Sluice::builder(config(dir.path(), vec![keyspace]))
        .clock(Arc::new(clock))
        .store(FaultyStore::new(inner))
        .cache(cache.clone())
        .open()
        .await
        .unwrap();
    exec_sql(
        dir.path(),
        "INSERT INTO sluice_kv (db, key, value) VALUES (0, CAST('k' AS BLOB), CAST('old' AS BLOB))",
    );
    assert_eq!(sluice.get(0, b("k")).await.unwrap(), Some(b("old"))); // cached now

    cache.hold_next_get.store(true, Ordering::SeqCst);
    let reader = {
        let sluice = sluice.clone();
        tokio::spawn(async move { sluice.get(0, b("k")).await.unwrap() })
    };
    cache.entered.notified().await; // the reader's lookup is out
                                    // Another reader misses and fills the stripe with the row.
    cache.miss_next_get.store(true, Ordering::SeqCst);
    assert_eq!(sluice.get(0, b("k")).await.unwrap(), Some(b("old")));
    // A write-back write, buffered and acknowledged; the database still has "old".
    sluice
        .set(0, b("k"), b("new"), Default::default())
        .await
        .unwrap();
    cache.release.notify_one();
    assert_eq!(reader.await.unwrap(), Some(b("new")));

    sluice.flush().await.unwrap();
    let cached = cache.inner.get(&cache_key("k")).await.unwrap();
    assert!(
        cached.as_ref().is_none_or(|c| c.value == "new"),
        "the reader installed {cached:?} over the buffered write"
    );
    assert_eq!(sluice.get(0, b("k")).await.unwrap(), Some(b("new")));
}

/// FLUSHDB racing writes: every write is either before the clear (gone, from the cache too) or
/// after it (kept), never half of each. What a GET shows once the writers stop is exactly what
/// a crash and a restart with a cold cache show. Under write-back (journal on), a write
/// journaled before the clear record but buffered or cached after the clear would show until
/// the crash and then be voided by the clear on replay: an acknowledged write lost. Under
/// write-through, a write committed before the store's clear but cached after the cache's would
/// show a row that no longer exists.
///
/// The cache yields inside `put`, so a writer's install can land after the clear's; two
/// writers and a FLUSHDB loop share two threads.
async fn flushdb_racing_writes(policy: Policy) {
    const WRITERS: usize = 2;
    const KEYS: usize = 150;
    // Over all rounds, keys written before a clear and keys written after the last one.
    let (mut kept, mut cleared) = (0, 0);
    for round in 0..24 {
        let dir = tempfile::tempdir().unwrap();
        let cache = Arc::new(FlakyCache {
            inner: MemoryCache::new(64 << 20, Arc::new(ManualClock::new(T0))),
            flaky: AtomicBool::new(true),
            gets: AtomicU64::new(0),
        });
        let clock = ManualClock::new(T0);
        let inner: SharedStore = Arc::new(SqliteStore::open(&db_path(dir.path())).unwrap());
        let store = FaultyStore::new(inner);
        let mut keyspace = builtin(policy);
        keyspace.flush_interval = Duration::from_secs(3600); // nothing stored but by replay
        let mut cfg = config(dir.path(), vec![keyspace]);
        cfg.journal.durability = Durability::Os;
        let sluice = Sluice::builder(cfg.clone())
            .clock(Arc::new(clock.clone()))
            .store(store.clone())
            .cache(cache.clone())
            .open()
            .await
            .unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let sluice = sluice.clone();
                tokio::spawn(async move {
                    for i in 0..KEYS {
                        let key = b(&format!("w{w}:{i}"));
                        sluice
                            .set(0, key, b(&i.to_string()), Default::default())
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        let clears = {
            let sluice = sluice.clone();
            tokio::spawn(async move {
                for _ in 0..8 {
                    sluice.flush_db(Some(0)).await.unwrap();
                    for _ in 0..rand::random::<u8>() % 16 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        for w in writers {
            w.await.unwrap();
        }
        clears.await.unwrap();

        cache.flaky.store(false, Ordering::SeqCst);
        let keys: Vec<String> = (0..WRITERS)
            .flat_map(|w| (0..KEYS).map(move |i| format!("w{w}:{i}")))
            .collect();
        let mut shown = Vec::with_capacity(keys.len());
        for key in &keys {
            shown.push(sluice.get(0, b(key)).await.unwrap());
        }
        kept += shown.iter().filter(|v| v.is_some()).count();
        cleared += shown.iter().filter(|v| v.is_none()).count();
        store.set_outage(true);
        let _ = sluice.shutdown_within(Duration::from_millis(50)).await;
        drop(sluice);
        let (sluice, _store) = open_engine(cfg, &clock).await.unwrap();
        for (key, before) in keys.iter().zip(&shown) {
            assert_eq!(
                &sluice.get(0, b(key)).await.unwrap(),
                before,
                "{policy:?} round {round}: key {key} read differently after a crash than before it"
            );
        }
    }
    assert!(
        kept > 0 && cleared > 0,
        "{policy:?}: the clears never ran between the writes ({kept} kept, {cleared} cleared)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_racing_write_back_writes_shows_exactly_what_a_crash_replays() {
    flushdb_racing_writes(Policy::WriteBack).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flushdb_racing_write_through_writes_leaves_no_copy_of_a_cleared_row() {
    flushdb_racing_writes(Policy::WriteThrough).await;
}
