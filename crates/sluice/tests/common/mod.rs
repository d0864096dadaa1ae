//! Shared fixtures for the engine tests: a real SQLite file in a temp dir, wrapped in a
//! `FaultyStore` for failure injection and row counting, and a `ManualClock`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension};
use sluice::clock::ManualClock;
use sluice::config::Config;
use sluice::model::DbKey;
use sluice::tiers::cache::memory::MemoryCache;
use sluice::tiers::cache::{Cache, CacheError, CacheStats, CachedValue};
use sluice::tiers::store::faulty::FaultyStore;
use sluice::tiers::store::sqlite::SqliteStore;
use sluice::tiers::store::SharedStore;
use sluice::{Bytes, Durability, KeyspaceConfig, Policy, Sluice};
use tempfile::TempDir;
use tokio::sync::Notify;

/// Where every manual clock starts: a plausible "now" in Unix ms.
pub const T0: u64 = 1_700_000_000_000;

/// The schema most mapped-table tests use.
pub const PRODUCTS: &str =
    "CREATE TABLE products (id INTEGER PRIMARY KEY, price NUMERIC, stock INTEGER, name TEXT)";

pub fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// A config on `dir` with no journal (write-back is memory-only unless a test says otherwise).
pub fn config(dir: &Path, keyspaces: Vec<KeyspaceConfig>) -> Config {
    let mut c = Config {
        data_dir: dir.to_path_buf(),
        shutdown_timeout: Duration::from_secs(5),
        keyspaces,
        ..Config::default()
    };
    c.journal.durability = Durability::None;
    c
}

/// The built-in keyspace (`sluice_kv`) with a short flush interval.
pub fn builtin(policy: Policy) -> KeyspaceConfig {
    let mut k = KeyspaceConfig::builtin(policy);
    k.flush_interval = Duration::from_millis(50);
    k
}

/// A mapped keyspace `keys` -> `table.value_column` where `key_column = {capture}`.
pub fn mapped(
    name: &str,
    keys: &str,
    table: &str,
    key_column: &str,
    value_column: &str,
    policy: Policy,
) -> KeyspaceConfig {
    let mut k = KeyspaceConfig::builtin(policy);
    k.name = name.to_string();
    k.keys = keys.to_string();
    k.table = Some(table.to_string());
    k.key_column = Some(key_column.to_string());
    k.value_column = Some(value_column.to_string());
    k.flush_interval = Duration::from_millis(50);
    k
}

/// `product:{id}:price` on `products.price`.
pub fn price_keyspace(policy: Policy) -> KeyspaceConfig {
    mapped(
        "price",
        "product:{id}:price",
        "products",
        "id",
        "price",
        policy,
    )
}

/// `product:{id}:stock` on `products.stock`.
pub fn stock_keyspace(policy: Policy) -> KeyspaceConfig {
    mapped(
        "stock",
        "product:{id}:stock",
        "products",
        "id",
        "stock",
        policy,
    )
}

/// Runs SQL on the database file directly, before or after the engine opened it.
pub fn exec_sql(dir: &Path, sql: &str) {
    let conn = Connection::open(db_path(dir)).unwrap();
    conn.execute_batch(sql).unwrap();
}

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join("sluice.db")
}

/// An engine over a real SQLite file, with the store wrapped for fault injection.
pub struct Harness {
    pub dir: TempDir,
    pub sluice: Sluice,
    pub store: Arc<FaultyStore>,
    pub clock: ManualClock,
}

impl Harness {
    /// A fresh temp dir, `setup_sql` run on its database, then the engine opened on it.
    pub async fn start(setup_sql: &str, keyspaces: Vec<KeyspaceConfig>) -> Harness {
        Self::start_with(setup_sql, keyspaces, |_| {}).await
    }

    /// Like [`Harness::start`], letting the test adjust the config.
    pub async fn start_with(
        setup_sql: &str,
        keyspaces: Vec<KeyspaceConfig>,
        tweak: impl FnOnce(&mut Config),
    ) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        if !setup_sql.is_empty() {
            exec_sql(dir.path(), setup_sql);
        }
        let mut cfg = config(dir.path(), keyspaces);
        tweak(&mut cfg);
        let clock = ManualClock::new(T0);
        let (sluice, store) = open_engine(cfg, &clock).await.expect("engine opens");
        Harness {
            dir,
            sluice,
            store,
            clock,
        }
    }

    /// Shuts the engine down and opens a new one on the same data dir (and clock).
    pub async fn restart(self, tweak: impl FnOnce(&mut Config)) -> Harness {
        let mut cfg = self.sluice.config().clone();
        let report = self.sluice.shutdown().await;
        assert_eq!(
            report.unflushed, 0,
            "graceful shutdown stores every buffered write"
        );
        drop(self.sluice);
        tweak(&mut cfg);
        let (sluice, store) = open_engine(cfg, &self.clock).await.expect("engine reopens");
        Harness {
            dir: self.dir,
            sluice,
            store,
            clock: self.clock,
        }
    }

    /// Reopens the engine on the same data dir as after a crash: the store is cut first, so
    /// nothing is stored at shutdown and the journal replays it all.
    pub async fn crash_restart(self) -> Result<Harness, String> {
        let cfg = self.sluice.config().clone();
        self.store.set_outage(true);
        let _ = self.sluice.shutdown_within(Duration::from_millis(50)).await;
        drop(self.sluice);
        let (sluice, store) = open_engine(cfg, &self.clock)
            .await
            .map_err(|e| format!("reopen: {e}"))?;
        Ok(Harness {
            dir: self.dir,
            sluice,
            store,
            clock: self.clock,
        })
    }

    /// Moves the clock `ms` on and drops from a model the keys whose deadline (engine clock
    /// ms) has passed, as the engine's expiry drops them.
    pub fn tick_expiring<V>(
        &self,
        ms: u64,
        model: &mut BTreeMap<&'static str, V>,
        deadlines: &mut BTreeMap<&'static str, u64>,
    ) {
        self.clock.advance_ms(ms);
        let now = sluice::clock::Clock::now_ms(&self.clock);
        deadlines.retain(|k, at| {
            if *at <= now {
                model.remove(k);
                false
            } else {
                true
            }
        });
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub async fn get(&self, key: &str) -> Option<String> {
        self.sluice
            .get(0, b(key))
            .await
            .unwrap_or_else(|e| panic!("GET {key}: {e}"))
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    pub async fn set(&self, key: &str, value: &str) {
        self.sluice
            .set(0, b(key), b(value), Default::default())
            .await
            .unwrap_or_else(|e| panic!("SET {key} {value}: {e}"));
    }

    /// The `sluice_kv` row for `key` in `db`: value and `expires_at`, read with a separate
    /// connection.
    pub fn kv_row(&self, db: u8, key: &str) -> Option<(String, Option<i64>)> {
        kv_row(self.path(), db, key)
    }

    /// The whole of `sluice_kv` for `db`.
    pub fn kv_table(&self, db: u8) -> BTreeMap<String, String> {
        kv_table(self.path(), db)
    }

    /// One column of a mapped row, as SQLite's text form, read with a separate connection.
    /// `None` when there is no such row; `Some(None)` when the column is NULL.
    pub fn column(&self, table: &str, column: &str, id: i64) -> Option<Option<String>> {
        let conn = Connection::open(db_path(self.path())).unwrap();
        conn.query_row(
            &format!("SELECT CAST({column} AS TEXT) FROM {table} WHERE id = ?1"),
            params![id],
            |r| r.get::<_, Option<String>>(0),
        )
        .optional()
        .unwrap()
    }

    pub fn count_rows(&self, table: &str) -> i64 {
        let conn = Connection::open(db_path(self.path())).unwrap();
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap()
    }

    /// Buffered entries of a write-back keyspace.
    pub fn buffered(&self, keyspace: &str) -> usize {
        self.sluice
            .keyspaces()
            .into_iter()
            .find(|k| k.name == keyspace)
            .unwrap_or_else(|| panic!("no keyspace {keyspace}"))
            .buffered
    }
}

/// Opens an engine on `cfg`'s data dir with a fresh `FaultyStore` over SQLite.
pub async fn open_engine(
    cfg: Config,
    clock: &ManualClock,
) -> Result<(Sluice, Arc<FaultyStore>), sluice::OpenError> {
    open_engine_with(cfg, clock, |_| {}).await
}

/// [`open_engine`], with `prepare` run on the store before the engine opens (so it sees the
/// flush of the journal's replay).
pub async fn open_engine_with(
    cfg: Config,
    clock: &ManualClock,
    prepare: impl FnOnce(&FaultyStore),
) -> Result<(Sluice, Arc<FaultyStore>), sluice::OpenError> {
    let inner: SharedStore =
        Arc::new(SqliteStore::open(&db_path(&cfg.data_dir)).expect("sqlite opens"));
    let store = FaultyStore::new(inner);
    prepare(&store);
    let sluice = Sluice::builder(cfg)
        .clock(Arc::new(clock.clone()))
        .store(store.clone())
        .open()
        .await?;
    Ok((sluice, store))
}

pub fn kv_row(dir: &Path, db: u8, key: &str) -> Option<(String, Option<i64>)> {
    let conn = Connection::open(db_path(dir)).unwrap();
    conn.query_row(
        "SELECT value, expires_at FROM sluice_kv WHERE db = ?1 AND key = ?2",
        params![db as i64, key.as_bytes()],
        |r| {
            Ok((
                String::from_utf8(r.get::<_, Vec<u8>>(0)?).unwrap(),
                r.get::<_, Option<i64>>(1)?,
            ))
        },
    )
    .optional()
    .unwrap()
}

pub fn kv_table(dir: &Path, db: u8) -> BTreeMap<String, String> {
    let conn = Connection::open(db_path(dir)).unwrap();
    let mut st = conn
        .prepare("SELECT key, value FROM sluice_kv WHERE db = ?1")
        .unwrap();
    let rows = st
        .query_map(params![db as i64], |r| {
            Ok((
                String::from_utf8(r.get::<_, Vec<u8>>(0)?).unwrap(),
                String::from_utf8(r.get::<_, Vec<u8>>(1)?).unwrap(),
            ))
        })
        .unwrap()
        .collect::<Result<BTreeMap<_, _>, _>>()
        .unwrap();
    rows
}

/// Polls `cond` every 10 ms until it holds or `timeout` passes; returns whether it held.
pub async fn eventually(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Polls GET `key` (database 0) every 10 ms for up to 2 s until it reads absent; returns whether
/// it did. A write told its journal fsync failed vanishes so once the buffers are reloaded.
pub async fn becomes_absent(sluice: &Sluice, key: &str) -> bool {
    for _ in 0..200 {
        if sluice.get(0, b(key)).await.unwrap().is_none() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

/// A memory cache whose next `put`, once armed, announces itself (`entered`) and waits for
/// `release`: holds one install in flight while a test makes a write or a change land.
pub struct GatedCache {
    pub inner: MemoryCache,
    pub armed: AtomicBool,
    pub entered: Notify,
    pub release: Notify,
}

impl GatedCache {
    pub fn new(clock: ManualClock) -> GatedCache {
        GatedCache {
            inner: MemoryCache::new(64 << 20, Arc::new(clock)),
            armed: AtomicBool::new(false),
            entered: Notify::new(),
            release: Notify::new(),
        }
    }

    /// Holds the next `put`.
    pub fn arm(&self) {
        self.armed.store(true, Ordering::SeqCst);
    }

    /// Lets the held `put` go on.
    pub fn let_go(&self) {
        self.release.notify_one();
    }
}

#[async_trait]
impl Cache for GatedCache {
    async fn get(&self, key: &DbKey) -> Result<Option<CachedValue>, CacheError> {
        self.inner.get(key).await
    }
    async fn put(&self, key: DbKey, value: CachedValue) -> Result<(), CacheError> {
        if self.armed.swap(false, Ordering::SeqCst) {
            self.entered.notify_one();
            self.release.notified().await;
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

/// Runs a model-based property test: 24 random sequences of `steps`, each through `run` on a
/// two-thread runtime (failures are not persisted: the cases are fast to find again).
pub fn run_cases<S, F, Fut>(steps: S, run: F)
where
    S: proptest::strategy::Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), proptest::test_runner::TestCaseError>>,
{
    run_n_cases(24, steps, run);
}

/// [`run_cases`] with `cases` sequences.
pub fn run_n_cases<S, F, Fut>(cases: u32, steps: S, run: F)
where
    S: proptest::strategy::Strategy,
    S::Value: std::fmt::Debug,
    F: Fn(S::Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), proptest::test_runner::TestCaseError>>,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases,
        failure_persistence: None,
        ..proptest::test_runner::Config::default()
    });
    runner.run(&steps, |ops| rt.block_on(run(ops))).unwrap();
}

/// A step of a collection's model test that [`run_model_steps`] carries out itself.
#[derive(Debug, Clone, Copy)]
pub enum Control {
    /// Flush everything, then compare the table with the model.
    Flush,
    /// Fail the store's next batches (write-back only: under the other policies the client's
    /// own write would fail).
    FailNextBatches(u64),
    /// Restart as after a crash: the journal replays with nothing flushed.
    Restart,
}

/// A collection's model-based property test, as [`run_model_steps`] drives it: its operations,
/// its model and the table's view of it.
#[allow(async_fn_in_trait)]
pub trait CollectionModel {
    type Op: std::fmt::Debug;
    type Model: Default;
    type Table: PartialEq + std::fmt::Debug;
    /// The step `op` stands for when it is not a command.
    fn control(op: &Self::Op) -> Option<Control>;
    /// The key `op` rewrites whole (DEL, SET): it loses its expiry; an edited key keeps it.
    fn rewrites(op: &Self::Op) -> Option<&'static str>;
    /// Whether the model holds `key`.
    fn holds(model: &Self::Model, key: &str) -> bool;
    /// Runs a command step through the engine, checks its answer and applies it to the model.
    async fn apply(
        h: &Harness,
        model: &mut Self::Model,
        deadlines: &mut BTreeMap<&'static str, u64>,
        op: &Self::Op,
        what: &str,
    ) -> Result<(), proptest::test_runner::TestCaseError>;
    /// Every key read through the engine equals the model.
    async fn check_reads(
        h: &Harness,
        model: &Self::Model,
        what: &str,
    ) -> Result<(), proptest::test_runner::TestCaseError>;
    /// The built-in table, read with a connection of its own.
    fn table(h: &Harness) -> Result<Self::Table, proptest::test_runner::TestCaseError>;
    /// What the table must hold for `model`.
    fn model_table(model: &Self::Model) -> Self::Table;
}

/// Runs `steps` (each with whether to read every key after it) on a built-in keyspace of
/// `policy` flushing often in small batches, with the journal fsynced: the reads match the
/// model after every step asked and after every flush and restart, the table matches it after
/// every flush; at the end, after a final flush, after a clean restart from the store alone,
/// and with no dead letter.
pub async fn run_model_steps<C: CollectionModel>(
    policy: Policy,
    steps: Vec<(C::Op, bool)>,
) -> Result<(), proptest::test_runner::TestCaseError> {
    run_model_steps_flushing::<C>(policy, steps, true).await
}

/// [`run_model_steps`]; without `background_flush` only the `Flush` steps store, so writes
/// pile up on buffered keys (journaled as member records) between them.
pub async fn run_model_steps_flushing<C: CollectionModel>(
    policy: Policy,
    steps: Vec<(C::Op, bool)>,
    background_flush: bool,
) -> Result<(), proptest::test_runner::TestCaseError> {
    use proptest::test_runner::TestCaseError;
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
    let mut model = C::Model::default();
    let mut deadlines: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (step, (op, read_after)) in steps.into_iter().enumerate() {
        if let Some(key) = C::rewrites(&op) {
            deadlines.remove(key);
        }
        let what = format!("{policy:?} step {step} {op:?}");
        // Reads after every flush and restart; after other steps mostly, not always, so that
        // writes also meet keys no read has just brought into the cache.
        let mut read_after = read_after;
        match C::control(&op) {
            Some(Control::Flush) => {
                if h.sluice.flush().await.is_ok() {
                    let (got, want) = (C::table(&h)?, C::model_table(&model));
                    proptest::prop_assert_eq!(got, want, "{}", what);
                }
                read_after = true;
            }
            Some(Control::FailNextBatches(n)) => {
                if policy == Policy::WriteBack {
                    h.store.fail_next_batches(n);
                }
            }
            Some(Control::Restart) => {
                h = h
                    .crash_restart()
                    .await
                    .map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
                read_after = true;
            }
            None => C::apply(&h, &mut model, &mut deadlines, &op, &what).await?,
        }
        // A key gone takes its expiry with it.
        deadlines.retain(|k, _| C::holds(&model, k));
        if read_after {
            C::check_reads(&h, &model, &what).await?;
        }
    }
    h.store.fail_next_batches(0);
    h.sluice
        .flush()
        .await
        .map_err(|e| TestCaseError::fail(format!("final flush: {e}")))?;
    proptest::prop_assert_eq!(C::table(&h)?, C::model_table(&model));
    C::check_reads(&h, &model, "final").await?;
    // And once more from the store alone, through a fresh engine with an empty cache.
    let h = h.restart(|_| {}).await;
    proptest::prop_assert_eq!(
        C::table(&h)?,
        C::model_table(&model),
        "after a clean restart"
    );
    C::check_reads(&h, &model, "after a clean restart").await?;
    proptest::prop_assert!(h.sluice.dead_letters(None).unwrap().is_empty());
    Ok(())
}

/// A step on a whole key that every collection's model test has.
#[derive(Debug, Clone, Copy)]
pub enum KeyStep {
    /// DEL key: answers whether it existed.
    Del,
    /// SET key str: the key becomes a string (`string` in the model).
    SetString,
    /// PEXPIRE key 100 on the engine clock: set only on an existing key.
    Expire,
}

/// Runs `step` on `key` through the engine and in the model (`string`: the model's string),
/// checking the engine's answer.
pub async fn key_step<V>(
    h: &Harness,
    model: &mut BTreeMap<&'static str, V>,
    deadlines: &mut BTreeMap<&'static str, u64>,
    step: KeyStep,
    key: &'static str,
    string: V,
    what: &str,
) -> Result<(), proptest::test_runner::TestCaseError> {
    let fail =
        |e: sluice::SluiceError| proptest::test_runner::TestCaseError::fail(format!("{what}: {e}"));
    match step {
        KeyStep::Del => {
            let existed = h.sluice.del(0, &b(key)).await.map_err(fail)?;
            proptest::prop_assert_eq!(existed, model.remove(key).is_some(), "{}", what);
        }
        KeyStep::SetString => {
            h.sluice
                .set(0, b(key), b("str"), sluice::SetOptions::default())
                .await
                .map_err(fail)?;
            model.insert(key, string);
        }
        KeyStep::Expire => {
            let at = sluice::clock::Clock::now_ms(&h.clock) + 100;
            let set = h
                .sluice
                .expire(0, &b(key), at as i64, sluice::ExpireCondition::ALWAYS)
                .await
                .map_err(fail)?;
            proptest::prop_assert_eq!(set, model.contains_key(key), "{}", what);
            if set {
                deadlines.insert(key, at);
            }
        }
    }
    Ok(())
}
