//! Sets, sorted sets and lists mapped onto existing tables, a row per member or element, end to end through the
//! real `sluice` binary, on SQLite always and on PostgreSQL / MySQL when
//! `SLUICE_TEST_POSTGRES_URL` / `SLUICE_TEST_MYSQL_URL` name a server (skipped, saying so,
//! otherwise): see [`sql_e2e::collections::collections_scenario`] for what each one states.

mod resp_reply;
mod sql_e2e;

use std::sync::Arc;

use sql_e2e::collections::{
    collections_change_capture_scenario, collections_config, collections_config_with_changes,
    collections_scenario, event_log_scenario, Sql, Tables,
};
use sql_e2e::{env_url, unique_suffix, with_cleanup, Sluice};

/// The schema, and triggers that count every row inserted or updated in the scores and events
/// tables (`writes.t` names the table).
fn create(tables: &Tables, flavor: &str) -> Vec<String> {
    let Tables {
        scores,
        teams,
        events,
        writes,
    } = tables;
    let (int, double, text) = match flavor {
        "postgres" => ("bigint", "double precision", "text"),
        "mysql" => ("BIGINT", "DOUBLE", "TEXT"),
        _ => ("INTEGER", "REAL", "TEXT"),
    };
    let mut sql = vec![
        format!(
            "CREATE TABLE {scores} (game_id {int} NOT NULL, player_id {int} NOT NULL, \
             score {double} NOT NULL, note VARCHAR(20), PRIMARY KEY (game_id, player_id))"
        ),
        format!(
            "CREATE TABLE {teams} (team VARCHAR(20) NOT NULL, member VARCHAR(20) NOT NULL, \
             UNIQUE (team, member), CHECK (member <> 'forbidden'))"
        ),
        format!(
            "CREATE TABLE {events} (user_id VARCHAR(20) NOT NULL, seq {int} NOT NULL, \
             payload {text}, at_ms {int}, PRIMARY KEY (user_id, seq))"
        ),
        format!("CREATE TABLE {writes} (t VARCHAR(10) NOT NULL, n {int} NOT NULL)"),
        format!("INSERT INTO {writes} VALUES ('scores', 0), ('events', 0)"),
    ];
    for (table, name) in [(scores, "scores"), (events, "events")] {
        match flavor {
            "postgres" => sql.extend([
                format!(
                    "CREATE FUNCTION {writes}_{name}() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN UPDATE {writes} SET n = n + 1 WHERE t = '{name}'; RETURN NULL; END $$"
                ),
                format!(
                    "CREATE TRIGGER {writes}_{name} AFTER INSERT OR UPDATE ON {table} \
                     FOR EACH ROW EXECUTE FUNCTION {writes}_{name}()"
                ),
            ]),
            "mysql" => sql.extend(["INSERT", "UPDATE"].map(|event| {
                format!(
                    "CREATE TRIGGER {writes}_{name}_{event} AFTER {event} ON {table} \
                     FOR EACH ROW UPDATE {writes} SET n = n + 1 WHERE t = '{name}'"
                )
            })),
            _ => sql.extend(["INSERT", "UPDATE"].map(|event| {
                format!(
                    "CREATE TRIGGER {writes}_{name}_{event} AFTER {event} ON {table} \
                     BEGIN UPDATE {writes} SET n = n + 1 WHERE t = '{name}'; END"
                )
            })),
        }
    }
    sql
}

fn drop(tables: &Tables, flavor: &str) -> Vec<String> {
    let mut sql = vec![
        format!("DROP TABLE IF EXISTS {}", tables.scores),
        format!("DROP TABLE IF EXISTS {}", tables.teams),
        format!("DROP TABLE IF EXISTS {}", tables.events),
        format!("DROP TABLE IF EXISTS {}", tables.writes),
    ];
    if flavor == "postgres" {
        for name in ["scores", "events"] {
            sql.push(format!(
                "DROP FUNCTION IF EXISTS {}_{name}()",
                tables.writes
            ));
        }
    }
    sql
}

/// The scenario against a server on `url`, on the tables named from `prefix`.
async fn run(url: String, prefix: String, sql: Arc<Sql>) {
    let tables = Tables::new(&prefix);
    let mut server = Sluice::start(&collections_config(&url, &tables)).await;
    collections_scenario(&mut server, &*sql, &tables).await;
    event_log_scenario(&mut server, &*sql, &tables).await;
}

/// A SQLite file with the scenario's tables: its directory (removed when dropped), its URL and
/// a runner of SQL on it.
fn sqlite_app(tables: &Tables) -> (tempfile::TempDir, String, Arc<Sql>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("app.db");
    {
        let conn = rusqlite::Connection::open(&path).expect("open the app database");
        for statement in create(tables, "sqlite") {
            conn.execute_batch(&statement)
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
    let sql: Arc<Sql> = {
        let path = path.clone();
        Arc::new(move |statement: String| {
            let path = path.clone();
            Box::pin(async move {
                let conn = rusqlite::Connection::open(&path).expect("open the app database");
                conn.busy_timeout(std::time::Duration::from_secs(10))
                    .expect("busy timeout");
                let mut st = conn
                    .prepare(&statement)
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
                let n = st.column_count();
                let rows = st
                    .query_map([], |r| {
                        (0..n)
                            .map(|i| {
                                r.get::<_, rusqlite::types::Value>(i).map(|v| {
                                    use rusqlite::types::Value;
                                    match v {
                                        Value::Null => None,
                                        Value::Integer(i) => Some(i.to_string()),
                                        Value::Real(f) => Some(f.to_string()),
                                        Value::Text(t) => Some(t),
                                        Value::Blob(b) => {
                                            Some(String::from_utf8_lossy(&b).into_owned())
                                        }
                                    }
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .unwrap_or_else(|e| panic!("{statement}: {e}"))
                    .collect::<Result<Vec<_>, _>>()
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
                rows
            })
        })
    };
    let url = format!("sqlite://{}", path.display());
    (dir, url, sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_on_sqlite() {
    let tables = Tables::new("app");
    let (_dir, url, sql) = sqlite_app(&tables);
    run(url, "app".into(), sql).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_capture_on_sqlite() {
    let tables = Tables::new("app");
    let (_dir, url, sql) = sqlite_app(&tables);
    let server = Sluice::start(&collections_config_with_changes(&url, &tables, "node_a")).await;
    collections_change_capture_scenario(&server, &*sql, &tables).await;
}

/// The scenario's tables on PostgreSQL: a client and a runner of SQL on it.
async fn postgres_app(url: &str, tables: &Tables) -> (Arc<tokio_postgres::Client>, Arc<Sql>) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to PostgreSQL");
    tokio::spawn(conn);
    let client = Arc::new(client);
    for statement in create(tables, "postgres") {
        client
            .batch_execute(&statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let sql: Arc<Sql> = {
        let client = client.clone();
        Arc::new(move |statement: String| {
            let client = client.clone();
            Box::pin(async move {
                let messages = client
                    .simple_query(&statement)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
                messages
                    .into_iter()
                    .filter_map(|m| match m {
                        tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                            (0..row.len())
                                .map(|i| row.get(i).map(str::to_string))
                                .collect(),
                        ),
                        _ => None,
                    })
                    .collect()
            })
        })
    };
    (client, sql)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_on_postgres() {
    let Some(url) = env_url("SLUICE_TEST_POSTGRES_URL") else {
        return;
    };
    let prefix = format!("sluice_e2e_c{}", unique_suffix());
    let tables = Tables::new(&prefix);
    let (client, sql) = postgres_app(&url, &tables).await;
    let body = run(url.clone(), prefix.clone(), sql);
    with_cleanup(body, async move {
        for statement in drop(&tables, "postgres") {
            let _ = client.batch_execute(&statement).await;
        }
    })
    .await;
}

/// Change capture over logical replication: the node's slot and publication are dropped
/// after the test, whatever happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_capture_on_postgres() {
    let Some(url) = env_url("SLUICE_TEST_POSTGRES_URL") else {
        return;
    };
    let prefix = format!("sluice_e2e_cc{}", unique_suffix());
    let tables = Tables::new(&prefix);
    let (client, sql) = postgres_app(&url, &tables).await;
    // A delete must say which owner it removed: the teams table has no primary key.
    client
        .batch_execute(&format!(
            "ALTER TABLE {} REPLICA IDENTITY FULL",
            tables.teams
        ))
        .await
        .expect("replica identity");
    let node = prefix.clone();
    let body = {
        let (url, prefix, node) = (url.clone(), prefix.clone(), node.clone());
        async move {
            let tables = Tables::new(&prefix);
            let server =
                Sluice::start(&collections_config_with_changes(&url, &tables, &node)).await;
            collections_change_capture_scenario(&server, &*sql, &tables).await;
        }
    };
    with_cleanup(body, async move {
        sql_e2e::drop_pg_change_capture(&client, &node).await;
        for statement in drop(&tables, "postgres") {
            let _ = client.batch_execute(&statement).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_on_mysql() {
    use mysql_async::prelude::Queryable;
    let Some(url) = env_url("SLUICE_TEST_MYSQL_URL") else {
        return;
    };
    let prefix = format!("sluice_e2e_c{}", unique_suffix());
    let tables = Tables::new(&prefix);
    let pool = mysql_async::Pool::new(url.as_str());
    {
        let mut conn = pool.get_conn().await.expect("connect to MySQL");
        for statement in create(&tables, "mysql") {
            conn.query_drop(&statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
    }
    let sql: Arc<Sql> = {
        let pool = pool.clone();
        Arc::new(move |statement: String| {
            let pool = pool.clone();
            Box::pin(async move {
                let mut conn = pool.get_conn().await.expect("connect to MySQL");
                let rows: Vec<mysql_async::Row> = conn
                    .query(&statement)
                    .await
                    .unwrap_or_else(|e| panic!("{statement}: {e}"));
                rows.into_iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| match row.as_ref(i) {
                                None | Some(mysql_async::Value::NULL) => None,
                                Some(mysql_async::Value::Bytes(b)) => {
                                    Some(String::from_utf8_lossy(b).into_owned())
                                }
                                Some(mysql_async::Value::Int(i)) => Some(i.to_string()),
                                Some(mysql_async::Value::UInt(i)) => Some(i.to_string()),
                                Some(mysql_async::Value::Double(f)) => Some(f.to_string()),
                                Some(mysql_async::Value::Float(f)) => Some(f.to_string()),
                                Some(other) => Some(other.as_sql(true)),
                            })
                            .collect()
                    })
                    .collect()
            })
        })
    };
    let body = run(url.clone(), prefix.clone(), sql);
    let cleanup_pool = pool.clone();
    with_cleanup(body, async move {
        if let Ok(mut conn) = cleanup_pool.get_conn().await {
            for statement in drop(&tables, "mysql") {
                let _ = conn.query_drop(&statement).await;
            }
        }
    })
    .await;
    let _ = pool.disconnect().await;
}
