//! Start-up validation of set, sorted set and list keyspaces mapped onto tables (`type =
//! "set"` / `"zset"` / `"list"`), on SQLite always and on PostgreSQL / MySQL when
//! `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` name a server: the owner and member
//! (or position) columns must be unique together, the member column text, bytes or an integer,
//! the score column an integer or a double (never numeric or single precision, which would
//! round what the cache keeps), a list's position an integer and its elements text or bytes,
//! and every refusal names the field and says what to do.

mod store_common;

use sluice::config::{Config, KeyspaceType, StoreConfig};
use sluice::{KeyspaceConfig, Policy};
use store_common::*;

fn leaderboard(table: &str) -> KeyspaceConfig {
    let mut ks = KeyspaceConfig::builtin(Policy::WriteBack);
    ks.name = "leaderboard".into();
    ks.keys = "leaderboard:{game}".into();
    ks.table = Some(table.into());
    ks.key_column = Some("game_id".into());
    ks.member_column = Some("player_id".into());
    ks.score_column = Some("score".into());
    ks.value_type = Some(KeyspaceType::Zset);
    ks
}

async fn check(db: &TestDb, ks: KeyspaceConfig) -> Result<Vec<String>, String> {
    let config = Config {
        data_dir: db.dir.path().join("data"),
        store: Some(StoreConfig {
            url: db.url.clone(),
        }),
        keyspaces: vec![ks],
        ..Config::default()
    };
    sluice::check_config(&config)
        .await
        .map_err(|e| e.to_string())
}

async fn refused(db: &TestDb, ks: KeyspaceConfig, wants: &[&str]) {
    match check(db, ks).await {
        Ok(lines) => panic!("{:?}: accepted {lines:?}", db.flavor),
        Err(e) => {
            for want in wants {
                assert!(e.contains(want), "{:?}: {e:?} lacks {want:?}", db.flavor);
            }
        }
    }
}

async fn validation(db: TestDb) {
    let (int, double, single, numeric) = (
        db.pick("INTEGER", "bigint", "BIGINT"),
        db.pick("REAL", "double precision", "DOUBLE"),
        db.pick("NUMERIC(10,2)", "real", "FLOAT"),
        db.pick("NUMERIC(10,2)", "numeric(10,2)", "DECIMAL(10,2)"),
    );
    let good = unique("scores");
    db.exec(&format!(
        "CREATE TABLE {good} (game_id {int} NOT NULL, player_id {int} NOT NULL, \
         score {double}, alt {single}, money {numeric}, joined {}, \
         PRIMARY KEY (game_id, player_id))",
        db.pick("TIMESTAMP", "timestamp", "DATETIME")
    ))
    .await;
    let lines = check(&db, leaderboard(&good)).await.expect("accepted");
    assert!(
        lines[0].contains(&format!("{good}(game_id,player_id,score)")),
        "{lines:?}"
    );
    let mut set = leaderboard(&good);
    set.value_type = Some(KeyspaceType::Set);
    set.score_column = None;
    check(&db, set)
        .await
        .expect("a set keyspace on the same table");

    // Not unique together: a member could be two rows.
    let loose = unique("loose");
    db.exec(&format!(
        "CREATE TABLE {loose} (game_id {int}, player_id {int}, score {double})"
    ))
    .await;
    refused(
        &db,
        leaderboard(&loose),
        &["member_column", "unique", "CREATE UNIQUE INDEX"],
    )
    .await;

    // A unique index an upsert cannot name, or that lets distinct members collide.
    let partial = unique("partial");
    match db.flavor {
        Flavor::Sqlite | Flavor::Postgres => {
            db.exec(&format!(
                "CREATE TABLE {partial} (game_id {int}, player_id {int}, score {double}); \
                 CREATE UNIQUE INDEX {partial}_u ON {partial} (game_id, player_id) \
                 WHERE score > 0"
            ))
            .await
        }
        Flavor::Mysql => {
            db.exec(&format!(
                "CREATE TABLE {partial} (game_id BIGINT, player_id VARCHAR(40), score DOUBLE, \
                 rounded DOUBLE(10,2), UNIQUE KEY (game_id, player_id(4)))"
            ))
            .await;
            let mut ks = leaderboard(&good);
            ks.table = Some(partial.clone());
            ks.score_column = Some("rounded".into());
            refused(&db, ks, &["score_column", "double-precision"]).await;
        }
    }
    refused(&db, leaderboard(&partial), &["member_column", "unique"]).await;

    // Scores the column would round, members it would render differently.
    let mut ks = leaderboard(&good);
    ks.score_column = Some("money".into());
    refused(&db, ks, &["score_column", "double-precision"]).await;
    if db.flavor != Flavor::Sqlite {
        let mut ks = leaderboard(&good);
        ks.score_column = Some("alt".into());
        refused(&db, ks, &["score_column", "single-precision"]).await;
    }
    let mut ks = leaderboard(&good);
    ks.member_column = Some("joined".into());
    refused(&db, ks, &["member_column", "text, bytes or an integer"]).await;

    // Missing, contradictory or misplaced fields.
    let mut ks = leaderboard(&good);
    ks.member_column = None;
    refused(&db, ks, &["member_column", "is missing"]).await;
    let mut ks = leaderboard(&good);
    ks.score_column = None;
    refused(&db, ks, &["score_column", "is missing"]).await;
    let mut ks = leaderboard(&good);
    ks.member_column = Some("game_id".into());
    refused(&db, ks, &["member_column", "owner"]).await;
    let mut ks = leaderboard(&good);
    ks.value_column = Some("score".into());
    refused(&db, ks, &["value_column"]).await;
    let mut ks = leaderboard(&good);
    ks.value_type = Some(KeyspaceType::Set);
    refused(&db, ks, &["score_column", "set keyspace"]).await;
    let mut ks = leaderboard(&good);
    ks.value_type = None;
    ks.value_column = Some("score".into());
    refused(&db, ks, &["member_column", "not type"]).await;
    let mut ks = KeyspaceConfig::builtin(Policy::WriteBack);
    ks.member_column = Some("m".into());
    refused(&db, ks, &["member_column", "built-in"]).await;
    lists(&db, int).await;
    db.drop_all().await;
}

fn event_log(table: &str) -> KeyspaceConfig {
    let mut ks = KeyspaceConfig::builtin(Policy::WriteBack);
    ks.name = "events".into();
    ks.keys = "events:{user}".into();
    ks.table = Some(table.into());
    ks.key_column = Some("user_id".into());
    ks.position_column = Some("seq".into());
    ks.value_column = Some("payload".into());
    ks.value_type = Some(KeyspaceType::List);
    ks
}

/// A list keyspace: `(owner, position)` unique, the position an integer, the element text or
/// bytes, and no set or sorted set fields.
async fn lists(db: &TestDb, int: &str) {
    let log = unique("events");
    db.exec(&format!(
        "CREATE TABLE {log} (user_id VARCHAR(20) NOT NULL, seq {int} NOT NULL, \
         payload {}, raw {}, count {int}, label VARCHAR(20), PRIMARY KEY (user_id, seq))",
        db.pick("TEXT", "text", "TEXT"),
        db.pick("BLOB", "bytea", "BLOB"),
    ))
    .await;
    let lines = check(db, event_log(&log)).await.expect("accepted");
    assert!(
        lines[0].contains(&format!("{log}(user_id,seq,payload)")),
        "{lines:?}"
    );
    let mut ks = event_log(&log);
    ks.value_column = Some("raw".into());
    check(db, ks).await.expect("a bytes element column");

    let mut ks = event_log(&log);
    ks.value_column = Some("count".into());
    refused(db, ks, &["value_column", "must be text"]).await;
    let mut ks = event_log(&log);
    ks.position_column = Some("label".into());
    refused(db, ks, &["position_column", "integer"]).await;
    let mut ks = event_log(&log);
    ks.position_column = None;
    refused(db, ks, &["position_column", "is missing"]).await;
    let mut ks = event_log(&log);
    ks.value_column = None;
    refused(db, ks, &["value_column", "is missing"]).await;
    let mut ks = event_log(&log);
    ks.value_column = Some("seq".into());
    refused(db, ks, &["value_column", "position column"]).await;
    let mut ks = event_log(&log);
    ks.member_column = Some("payload".into());
    refused(db, ks, &["member_column", "list keyspace"]).await;
    let mut ks = event_log(&log);
    ks.value_type = Some(KeyspaceType::Zset);
    ks.value_column = None;
    refused(db, ks, &["position_column", "sorted set"]).await;
    let mut ks = event_log(&log);
    ks.value_type = None;
    refused(db, ks, &["position_column", "not type"]).await;

    // A unique index on the number alone: one owner's row 0 would collide with another's.
    let solo = unique("solo_events");
    db.exec(&format!(
        "CREATE TABLE {solo} (user_id VARCHAR(20) NOT NULL, seq {int} NOT NULL, payload {}, \
         UNIQUE (user_id, seq), UNIQUE (seq))",
        db.pick("TEXT", "text", "TEXT"),
    ))
    .await;
    refused(
        db,
        event_log(&solo),
        &["position_column", "unique index on (seq)"],
    )
    .await;
    if db.flavor == Flavor::Mysql {
        // MySQL would refuse an out-of-range number only when the flush runs.
        for narrow in ["INT", "BIGINT UNSIGNED"] {
            let table = unique("narrow_events");
            db.exec(&format!(
                "CREATE TABLE {table} (user_id VARCHAR(20) NOT NULL, seq {narrow} NOT NULL, \
                 payload TEXT, PRIMARY KEY (user_id, seq))"
            ))
            .await;
            refused(db, event_log(&table), &["position_column", "signed BIGINT"]).await;
        }
    }

    // Not unique together: two elements could share a number.
    let loose = unique("loose_events");
    db.exec(&format!(
        "CREATE TABLE {loose} (user_id VARCHAR(20), seq {int}, payload {})",
        db.pick("TEXT", "text", "TEXT"),
    ))
    .await;
    refused(
        db,
        event_log(&loose),
        &["position_column", "unique", "CREATE UNIQUE INDEX"],
    )
    .await;
}

#[tokio::test]
async fn sqlite_member_tables_are_validated() {
    validation(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn postgres_member_tables_are_validated() {
    if let Some(db) = TestDb::postgres().await {
        validation(db).await;
    }
}

#[tokio::test]
async fn mysql_member_tables_are_validated() {
    if let Some(db) = TestDb::mysql().await {
        validation(db).await;
    }
}
