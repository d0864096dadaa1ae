//! Typed values in the store: the kind column of `sluice_kv` (and its migration), hash
//! keyspaces mapped onto rows (`Target::Row`), and all-or-nothing batches
//! (`Store::write_atomic`), on SQLite always and on PostgreSQL / MySQL when
//! `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` name a server (each test in its own
//! schema or database, every table named uniquely).

mod store_common;

use std::sync::Arc;

use sluice::config::{Config, KeyspaceType, OnDelete, StoreConfig};
use sluice::model::{hash, Kind, PartialWrite, StoreWrite};
use sluice::tiers::store::{MappedRow, SharedStore, Store, StoreOp, Target};
use sluice::{Bytes, KeyspaceConfig, Policy};
use store_common::*;

fn h(pairs: &[(&str, &str)]) -> Bytes {
    hash::encode(pairs.iter().map(|(f, v)| (f.as_bytes(), v.as_bytes())))
}

/// The pairs of an image, as text, for readable assertions.
fn pairs(image: &[u8]) -> Vec<(String, String)> {
    hash::pairs(image)
        .map(|p| {
            let (f, v) = p.expect("a well-formed image");
            (
                String::from_utf8_lossy(f).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(f, v)| (f.to_string(), v.to_string()))
        .collect()
}

fn fields(target: &Target, key: &str, image: Bytes, changed: &[&str], replace: bool) -> StoreOp {
    StoreOp {
        target: target.clone(),
        key: b(key),
        write: StoreWrite::Partial(PartialWrite {
            kind: Kind::Hash,
            expires_at: None,
            image,
            changed: changed.iter().map(|c| b(c)).collect(),
            replace,
        }),
    }
}

fn hash_upsert(target: &Target, key: &str, image: Bytes) -> StoreOp {
    StoreOp {
        target: target.clone(),
        key: b(key),
        write: StoreWrite::Upsert {
            value: image,
            kind: Kind::Hash,
            expires_at: None,
        },
    }
}

/// The row of `key` as (field, value) pairs; `None` when the key does not exist.
async fn row(store: &SharedStore, target: &Target, key: &str) -> Option<Vec<(String, String)>> {
    let v = store
        .read(target, key.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("read {key}: {e}"))?;
    assert_eq!(v.kind, Kind::Hash);
    assert_eq!(v.expires_at, None);
    Some(pairs(&v.value))
}

/// Applies one write, which must succeed; returns what it reported as stored.
async fn write_one(store: &SharedStore, op: StoreOp) -> Option<Bytes> {
    let mut outcome = store.write_batch(vec![op]).await.expect("batch committed");
    match outcome.pop() {
        Some(Ok(w)) => w.stored,
        Some(Err(e)) => panic!("entry failed: {e}"),
        None => panic!("no outcome"),
    }
}

/// A users table: the key, four mapped columns (text, text, integer, numeric) and one column
/// the keyspace does not map.
async fn users_table(db: &TestDb) -> String {
    let table = unique("users");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, name VARCHAR(40), email VARCHAR(80), age {}, \
         score {}, extra VARCHAR(10))",
        db.pick("INTEGER", "bigint", "BIGINT"),
        db.pick("INTEGER", "integer", "INT"),
        db.pick("NUMERIC(10,2)", "numeric(10,2)", "DECIMAL(10,2)"),
    ))
    .await;
    table
}

/// A row target on `table` mapping `columns`, built from the store's schema as the engine does.
async fn row_target(
    store: &SharedStore,
    table: &str,
    columns: &[&str],
    on_delete: OnDelete,
) -> Target {
    let schema = store.table_schema(table).await.unwrap().expect("table");
    let key = schema.column("id").expect("key column");
    Target::Row(Arc::new(MappedRow {
        table: table.to_string(),
        key_column: key.name.clone(),
        key_type: key.kind,
        columns: columns
            .iter()
            .map(|c| schema.column(c).expect("column").clone())
            .collect(),
        on_delete,
    }))
}

async fn kind_round_trip(db: &TestDb) {
    let store = &db.store;
    let t = Target::Builtin { db: 3 };
    let image = h(&[("f", "1"), ("g", "two")]);
    write_one(store, hash_upsert(&t, "h", image.clone())).await;
    write_one(store, upsert(&t, b"s", b"plain")).await;
    let hv = store.read(&t, b"h").await.unwrap().unwrap();
    assert_eq!((hv.kind, hv.value), (Kind::Hash, image));
    let sv = store.read(&t, b"s").await.unwrap().unwrap();
    assert_eq!((sv.kind, &sv.value[..]), (Kind::String, &b"plain"[..]));
    // An upsert replaces the kind with the value.
    write_one(store, upsert(&t, b"h", b"now a string")).await;
    assert_eq!(
        store.read(&t, b"h").await.unwrap().unwrap().kind,
        Kind::String
    );
    // Fields are for rows only.
    let f = fields(&t, "x", h(&[("a", "1")]), &["a"], false);
    assert!(store
        .check(&t, b"x", Some(&f.write))
        .unwrap_err()
        .is_permanent());
    let outcome = store.write_batch(vec![f]).await.unwrap();
    assert!(outcome[0].as_ref().unwrap_err().is_permanent());
}

async fn migration_of_an_old_builtin_table(db: &TestDb) {
    db.exec("DROP TABLE sluice_kv").await;
    db.exec(db.pick(
        "CREATE TABLE sluice_kv (db INTEGER NOT NULL, key BLOB NOT NULL, value BLOB NOT NULL, \
         expires_at INTEGER, PRIMARY KEY (db, key)) WITHOUT ROWID",
        "CREATE TABLE sluice_kv (db smallint NOT NULL, key bytea NOT NULL, value bytea NOT NULL, \
         expires_at bigint, PRIMARY KEY (db, key))",
        "CREATE TABLE sluice_kv (db SMALLINT NOT NULL, `key` VARBINARY(3070) NOT NULL, \
         `value` LONGBLOB NOT NULL, expires_at BIGINT NULL, PRIMARY KEY (db, `key`))",
    ))
    .await;
    db.exec(db.pick(
        "INSERT INTO sluice_kv (db, key, value) VALUES (0, X'6f6c64', X'7631')",
        "INSERT INTO sluice_kv (db, key, value) VALUES (0, 'old', 'v1')",
        "INSERT INTO sluice_kv (db, `key`, `value`) VALUES (0, 'old', 'v1')",
    ))
    .await;
    let store = &db.store;
    // Twice: the migration is idempotent.
    store.ensure_builtin_table().await.expect("migrated");
    store.ensure_builtin_table().await.expect("migrated again");
    let t = Target::Builtin { db: 0 };
    let old = store.read(&t, b"old").await.unwrap().expect("the old row");
    assert_eq!((old.kind, &old.value[..]), (Kind::String, &b"v1"[..]));
    let image = h(&[("f", "v")]);
    write_one(store, hash_upsert(&t, "new", image.clone())).await;
    let new = store.read(&t, b"new").await.unwrap().unwrap();
    assert_eq!((new.kind, new.value), (Kind::Hash, image));
}

async fn rows_read_and_write(db: &TestDb) {
    let store = &db.store;
    let table = users_table(db).await;
    let users = row_target(
        store,
        &table,
        &["name", "email", "age", "score"],
        OnDelete::SetNull,
    )
    .await;
    let extra = mapped(store, &table, "id", "extra").await;

    assert_eq!(row(store, &users, "1").await, None, "no row, no key");

    // A partial write creates the row with just those columns.
    let stored = write_one(
        store,
        fields(
            &users,
            "1",
            h(&[("age", "7"), ("name", "ann")]),
            &["name", "age"],
            false,
        ),
    )
    .await;
    let want = owned(&[("name", "ann"), ("age", "7")]);
    assert_eq!(
        stored.as_deref().map(pairs),
        Some(want.clone()),
        "stored image"
    );
    assert_eq!(row(store, &users, "1").await, Some(want), "column order");

    // Another partial write changes only its columns; other columns keep their values.
    db.exec(&format!("UPDATE {table} SET extra = 'keep' WHERE id = 1"))
        .await;
    write_one(
        store,
        fields(
            &users,
            "1",
            h(&[("name", "ann"), ("email", "a@x"), ("age", "8")]),
            &["email", "age"],
            false,
        ),
    )
    .await;
    assert_eq!(
        row(store, &users, "1").await,
        Some(owned(&[("name", "ann"), ("email", "a@x"), ("age", "8")]))
    );
    assert_eq!(get_text(store, &extra, "1").await.as_deref(), Some("keep"));

    // A changed field absent from the image becomes NULL (an absent field).
    let stored = write_one(
        store,
        fields(
            &users,
            "1",
            h(&[("email", "a@x"), ("age", "8")]),
            &["name"],
            false,
        ),
    )
    .await;
    let want = owned(&[("email", "a@x"), ("age", "8")]);
    assert_eq!(stored.as_deref().map(pairs), Some(want.clone()));
    assert_eq!(row(store, &users, "1").await, Some(want));

    // Typed columns read back in the database's own text form.
    let stored = write_one(
        store,
        fields(
            &users,
            "1",
            h(&[("email", "a@x"), ("age", "8"), ("score", "9.999")]),
            &["score"],
            false,
        ),
    )
    .await;
    let score = if db.flavor == Flavor::Sqlite {
        "9.999"
    } else {
        "10.00"
    };
    let want = owned(&[("email", "a@x"), ("age", "8"), ("score", score)]);
    assert_eq!(
        stored.as_deref().map(pairs),
        Some(want.clone()),
        "stored text"
    );
    assert_eq!(row(store, &users, "1").await, Some(want));

    // A replace sets every mapped column from the image; unmapped columns stay (set-null).
    write_one(store, hash_upsert(&users, "1", h(&[("name", "bob")]))).await;
    assert_eq!(
        row(store, &users, "1").await,
        Some(owned(&[("name", "bob")]))
    );
    assert_eq!(get_text(store, &extra, "1").await.as_deref(), Some("keep"));
    write_one(store, fields(&users, "1", h(&[("age", "3")]), &[], true)).await;
    assert_eq!(row(store, &users, "1").await, Some(owned(&[("age", "3")])));

    // Only NULLs for a missing row: no row is created (the INSERT below would collide).
    let stored = write_one(
        store,
        fields(&users, "99", Bytes::new(), &["name", "age"], false),
    )
    .await;
    assert_eq!(stored.as_deref(), Some(&b""[..]), "an empty image: no key");
    assert_eq!(row(store, &users, "99").await, None);
    db.exec(&format!("INSERT INTO {table} (id, extra) VALUES (99, 'x')"))
        .await;
    // On an existing row they clear the columns; every mapped column NULL is a missing key.
    write_one(store, fields(&users, "1", Bytes::new(), &["age"], false)).await;
    assert_eq!(row(store, &users, "1").await, None);
    assert_eq!(get_text(store, &extra, "1").await.as_deref(), Some("keep"));

    // DEL under set-null clears the mapped columns and keeps the row.
    write_one(
        store,
        fields(&users, "2", h(&[("name", "cy")]), &["name"], false),
    )
    .await;
    db.exec(&format!("UPDATE {table} SET extra = 'two' WHERE id = 2"))
        .await;
    write_one(store, delete(&users, b"2")).await;
    assert_eq!(row(store, &users, "2").await, None);
    assert_eq!(get_text(store, &extra, "2").await.as_deref(), Some("two"));

    // Under delete-row, DEL removes the row, and a replace starts from a fresh row.
    let users_del = row_target(
        store,
        &table,
        &["name", "email", "age", "score"],
        OnDelete::DeleteRow,
    )
    .await;
    write_one(
        store,
        fields(&users_del, "2", h(&[("name", "cy")]), &["name"], false),
    )
    .await;
    write_one(store, hash_upsert(&users_del, "2", h(&[("email", "c@x")]))).await;
    assert_eq!(
        row(store, &users_del, "2").await,
        Some(owned(&[("email", "c@x")]))
    );
    assert_eq!(
        get_text(store, &extra, "2").await,
        None,
        "the row was replaced whole"
    );
    write_one(store, delete(&users_del, b"2")).await;
    assert_eq!(row(store, &users_del, "2").await, None);
    db.exec(&format!("INSERT INTO {table} (id) VALUES (2)"))
        .await;

    // Keys: rows with a mapped column set.
    write_one(
        store,
        fields(&users, "5", h(&[("name", "e")]), &["name"], false),
    )
    .await;
    write_one(
        store,
        fields(&users, "6", h(&[("age", "6")]), &["age"], false),
    )
    .await;
    let mut keys: Vec<String> = store
        .scan_keys(&users, 0)
        .await
        .unwrap()
        .iter()
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["5", "6"]);
    // clear under set-null empties the mapped columns and keeps the rows.
    store.clear(&users).await.unwrap();
    assert!(store.scan_keys(&users, 0).await.unwrap().is_empty());
    assert_eq!(get_text(store, &extra, "99").await.as_deref(), Some("x"));
    // clear under delete-row deletes the rows.
    store.clear(&users_del).await.unwrap();
    assert_eq!(get_text(store, &extra, "99").await, None);
}

async fn rows_refuse_what_they_cannot_hold(db: &TestDb) {
    let store = &db.store;
    let table = users_table(db).await;
    let users = row_target(store, &table, &["name", "age"], OnDelete::SetNull).await;

    // A field that is not a mapped column (here a real but unmapped one, and a made-up one).
    for field in ["email", "bogus"] {
        let op = fields(&users, "1", h(&[(field, "v")]), &[field], false);
        let e = store.check(&users, b"1", Some(&op.write)).unwrap_err();
        assert!(e.is_permanent() && e.message.contains(field), "{e}");
        let outcome = store.write_batch(vec![op]).await.unwrap();
        let e = outcome[0].as_ref().unwrap_err();
        assert!(e.is_permanent() && e.message.contains(field), "{e}");
    }
    // A value the column's type cannot hold names the key, the field and the column.
    let op = fields(&users, "1", h(&[("age", "old")]), &["age"], false);
    let e = store.check(&users, b"1", Some(&op.write)).unwrap_err();
    assert!(e.is_permanent(), "{e}");
    for word in ["\"age\"", "\"1\"", &format!("{table}.age")] {
        assert!(e.message.contains(word), "{word} in {e}");
    }
    // A bad key capture too.
    let op2 = fields(&users, "x", h(&[("age", "1")]), &["age"], false);
    assert!(store.check(&users, b"x", Some(&op2.write)).is_err());
    // A string is not a hash.
    let s = upsert(&users, b"1", b"text");
    assert!(store
        .check(&users, b"1", Some(&s.write))
        .unwrap_err()
        .is_permanent());
    // In a batch, the bad entries fail alone.
    let good = fields(&users, "2", h(&[("name", "ok")]), &["name"], false);
    let outcome = store.write_batch(vec![op, s, good]).await.unwrap();
    assert!(
        outcome[0].is_err() && outcome[1].is_err() && outcome[2].is_ok(),
        "{outcome:?}"
    );
    assert_eq!(
        row(store, &users, "2").await,
        Some(owned(&[("name", "ok")]))
    );
    assert_eq!(row(store, &users, "1").await, None);
}

async fn atomic_batches(db: &TestDb) {
    let store = &db.store;
    let table = unique("limits");
    db.exec(&format!(
        "CREATE TABLE {table} (id {} PRIMARY KEY, v INTEGER NOT NULL CHECK (v < 100), name VARCHAR(20))",
        db.pick("INTEGER", "bigint", "BIGINT"),
    ))
    .await;
    let v = mapped(store, &table, "id", "v").await;
    let t = Target::Builtin { db: 4 };
    let rows = row_target(store, &table, &["name", "v"], OnDelete::DeleteRow).await;

    // All apply, in order, with what each stored.
    let written = store
        .write_atomic(vec![
            upsert(&t, b"a", b"1"),
            upsert(&t, b"a", b"2"),
            upsert(&v, b"1", b"5"),
            fields(
                &rows,
                "2",
                h(&[("name", "n"), ("v", "6")]),
                &["name", "v"],
                false,
            ),
        ])
        .await
        .unwrap_or_else(|f| panic!("refused at {:?}: {}", f.index, f.error));
    assert_eq!(written.len(), 4);
    assert_eq!(
        written[3].stored.as_deref().map(pairs),
        Some(owned(&[("name", "n"), ("v", "6")]))
    );
    assert_eq!(get_text(store, &t, "a").await.as_deref(), Some("2"));
    assert_eq!(get_text(store, &v, "1").await.as_deref(), Some("5"));

    // The database refuses the second entry (CHECK): the first is not visible either.
    let f = store
        .write_atomic(vec![upsert(&t, b"b", b"1"), upsert(&v, b"1", b"500")])
        .await
        .expect_err("refused");
    assert_eq!(f.index, Some(1), "{}", f.error);
    assert!(f.error.is_permanent(), "{}", f.error);
    assert_eq!(get(store, &t, b"b").await, None, "nothing of it committed");
    assert_eq!(get_text(store, &v, "1").await.as_deref(), Some("5"));

    // A row write refused by the database (NOT NULL) rolls back the rest too.
    let f = store
        .write_atomic(vec![
            delete(&t, b"a"),
            fields(&rows, "3", h(&[("name", "only")]), &["name"], false),
        ])
        .await
        .expect_err("refused");
    assert_eq!(f.index, Some(1), "{}", f.error);
    assert_eq!(get_text(store, &t, "a").await.as_deref(), Some("2"));

    // Refused before reaching the database: the index still names the entry.
    let f = store
        .write_atomic(vec![upsert(&t, b"c", b"1"), upsert(&v, b"x", b"1")])
        .await
        .expect_err("refused");
    assert_eq!(f.index, Some(1), "{}", f.error);
    assert_eq!(get(store, &t, b"c").await, None);
}

async fn row_writes_in_one_batch(db: &TestDb) {
    let store = &db.store;
    let table = users_table(db).await;
    let users = row_target(store, &table, &["name", "email", "age"], OnDelete::SetNull).await;
    // Each partial write changes its own columns: none stands in for another of the same row.
    let outcome = store
        .write_batch(vec![
            fields(&users, "1", h(&[("name", "a")]), &["name"], false),
            fields(&users, "2", h(&[("name", "b")]), &["name"], false),
            fields(
                &users,
                "1",
                h(&[("name", "a"), ("age", "1")]),
                &["age"],
                false,
            ),
            delete(&users, b"2"),
            fields(
                &users,
                "1",
                h(&[("name", "a"), ("email", "e"), ("age", "1")]),
                &["email"],
                false,
            ),
            fields(&users, "2", h(&[("age", "2")]), &["age"], false),
        ])
        .await
        .unwrap();
    for (i, r) in outcome.iter().enumerate() {
        assert!(r.is_ok(), "entry {i}: {r:?}");
    }
    assert_eq!(
        outcome[4].as_ref().unwrap().stored.as_deref().map(pairs),
        Some(owned(&[("name", "a"), ("email", "e"), ("age", "1")]))
    );
    assert_eq!(
        row(store, &users, "1").await,
        Some(owned(&[("name", "a"), ("email", "e"), ("age", "1")]))
    );
    assert_eq!(row(store, &users, "2").await, Some(owned(&[("age", "2")])));
}

/// `FaultyStore::refuse_atomic_with_key` refuses an all-or-nothing batch holding the key,
/// naming its entry, and commits nothing of it; ordinary batches pass.
async fn injected_atomic_refusal(db: &TestDb) {
    let store = sluice::tiers::store::faulty::FaultyStore::new(db.store.clone());
    store.refuse_atomic_with_key(b"bad");
    let t = Target::Builtin { db: 5 };
    let f = store
        .write_atomic(vec![upsert(&t, b"ok", b"1"), upsert(&t, b"bad", b"2")])
        .await
        .expect_err("refused");
    assert_eq!(f.index, Some(1));
    assert!(
        f.error.is_permanent() && f.error.message.contains("bad"),
        "{}",
        f.error
    );
    assert_eq!(get(&db.store, &t, b"ok").await, None);
    let written = store
        .write_atomic(vec![upsert(&t, b"ok", b"1")])
        .await
        .unwrap_or_else(|f| panic!("{}", f.error));
    assert_eq!(written.len(), 1);
    let outcome = store
        .write_batch(vec![upsert(&t, b"bad", b"2")])
        .await
        .unwrap();
    assert!(outcome[0].is_ok());
    assert_eq!(store.rows_written(), 2);
}

async fn suite(db: &TestDb) {
    kind_round_trip(db).await;
    row_writes_in_one_batch(db).await;
    injected_atomic_refusal(db).await;
    rows_read_and_write(db).await;
    rows_refuse_what_they_cannot_hold(db).await;
    atomic_batches(db).await;
    // Last: it rebuilds the built-in table.
    migration_of_an_old_builtin_table(db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_kinds_and_atomic_batches_on_sqlite() {
    let db = TestDb::sqlite().await;
    suite(&db).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_kinds_and_atomic_batches_on_postgres() {
    let Some(db) = TestDb::postgres().await else {
        return;
    };
    suite(&db).await;
    db.drop_all().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_kinds_and_atomic_batches_on_mysql() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    suite(&db).await;
    db.drop_all().await;
}

/// A hash keyspace from configuration, checked against a SQLite table.
async fn check(keyspace: KeyspaceConfig) -> Result<Vec<String>, sluice::OpenError> {
    let db = TestDb::sqlite().await;
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, age INTEGER)")
        .await;
    let config = Config {
        data_dir: db.dir.path().join("data"),
        store: Some(StoreConfig {
            url: db.url.clone(),
        }),
        keyspaces: vec![keyspace],
        ..Config::default()
    };
    sluice::check_config(&config).await
}

fn users_keyspace() -> KeyspaceConfig {
    let mut ks = KeyspaceConfig::builtin(Policy::WriteThrough);
    ks.name = "users".into();
    ks.keys = "user:{id}".into();
    ks.table = Some("users".into());
    ks.key_column = Some("id".into());
    ks
}

#[tokio::test]
async fn config_columns_select_a_row_mapping() {
    let mut ks = users_keyspace();
    ks.columns = Some(vec!["email".into(), "name".into()]);
    let lines = check(ks).await.expect("accepted");
    assert!(lines[0].contains("users(email,name)"), "{lines:?}");

    // type = "hash" without columns: every column but the key, in table order.
    let mut ks = users_keyspace();
    ks.value_type = Some(KeyspaceType::Hash);
    let lines = check(ks).await.expect("accepted");
    assert!(lines[0].contains("users(name,email,age)"), "{lines:?}");
}

#[tokio::test]
async fn config_refuses_unknown_or_contradictory_columns() {
    let refusal = |r: Result<Vec<String>, sluice::OpenError>| match r {
        Ok(lines) => panic!("accepted: {lines:?}"),
        Err(e) => e.to_string(),
    };
    let mut ks = users_keyspace();
    ks.columns = Some(vec!["name".into(), "phone".into()]);
    let e = refusal(check(ks).await);
    assert!(e.contains("columns") && e.contains("\"phone\""), "{e}");

    let mut ks = users_keyspace();
    ks.columns = Some(vec!["id".into()]);
    let e = refusal(check(ks).await);
    assert!(e.contains("key column"), "{e}");

    let mut ks = users_keyspace();
    ks.columns = Some(vec!["name".into()]);
    ks.value_column = Some("email".into());
    let e = refusal(check(ks).await);
    assert!(e.contains("value_column"), "{e}");

    let mut ks = users_keyspace();
    ks.columns = Some(vec!["name".into()]);
    ks.value_type = Some(KeyspaceType::String);
    let e = refusal(check(ks).await);
    assert!(e.contains("columns"), "{e}");

    let mut ks = users_keyspace();
    ks.columns = Some(vec!["na-me".into()]);
    let e = refusal(check(ks).await);
    assert!(e.contains("identifier"), "{e}");

    let mut ks = KeyspaceConfig::builtin(Policy::WriteBack);
    ks.columns = Some(vec!["name".into()]);
    let e = refusal(check(ks).await);
    assert!(e.contains("built-in"), "{e}");
}
