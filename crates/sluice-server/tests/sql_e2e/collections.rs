//! Sets, sorted sets and lists mapped onto tables, a row per member or element, on every
//! backend: the scenarios the backends' end-to-end tests share.

use std::future::Future;
use std::pin::Pin;

use super::{Reply, Sluice};

/// Runs one SQL statement with the database's own client ("another program") and returns the
/// rows it selected, every value as text (NULL as `None`).
pub type Sql =
    dyn Fn(String) -> Pin<Box<dyn Future<Output = Vec<Vec<Option<String>>>> + Send>> + Send + Sync;

/// The tables the scenario maps: `{prefix}_scores (game_id, player_id, score)` with `(game_id,
/// player_id)` unique, `{prefix}_teams (team, member)` with both unique together,
/// `{prefix}_events (user_id, seq, payload, at_ms)` with `(user_id, seq)` the primary key, and
/// counters of the rows written into the scores and events tables (triggers add to
/// `{prefix}_writes`, a row per table named by `t`).
pub struct Tables {
    pub scores: String,
    pub teams: String,
    pub events: String,
    pub writes: String,
}

impl Tables {
    pub fn new(prefix: &str) -> Tables {
        Tables {
            scores: format!("{prefix}_scores"),
            teams: format!("{prefix}_teams"),
            events: format!("{prefix}_events"),
            writes: format!("{prefix}_writes"),
        }
    }
}

/// The keyspaces: `leaderboard:{game}` a write-back sorted set whose flushes wait for
/// SLUICE.FLUSH, `team:{team}` a write-through set, `events:{user}` a write-back list (an
/// event log, flushed by SLUICE.FLUSH too).
pub fn collections_config(url: &str, tables: &Tables) -> String {
    format!(
        r#"
[store]
url = "{url}"

[[keyspace]]
name = "leaderboard"
keys = "leaderboard:{{game}}"
type = "zset"
table = "{scores}"
key_column = "game_id"
member_column = "player_id"
score_column = "score"
policy = "write-back"
flush_interval = "1h"
flush_batch = 100000

[[keyspace]]
name = "teams"
keys = "team:{{team}}"
type = "set"
table = "{teams}"
key_column = "team"
member_column = "member"
policy = "write-through"

[[keyspace]]
name = "events"
keys = "events:{{user}}"
type = "list"
table = "{events}"
key_column = "user_id"
position_column = "seq"
value_column = "payload"
policy = "write-back"
flush_interval = "1h"
flush_batch = 100000
"#,
        scores = tables.scores,
        teams = tables.teams,
        events = tables.events,
    )
}

fn strings(reply: Reply) -> Vec<String> {
    let Reply::Array(Some(items)) = reply else {
        panic!("expected an array, got {reply:?}");
    };
    items.iter().filter_map(Reply::bulk_str).collect()
}

/// `(player, score)` rows of one game, by player, scores parsed.
async fn scores(sql: &Sql, tables: &Tables, game: i64) -> Vec<(i64, f64)> {
    let mut rows: Vec<(i64, f64)> = sql(format!(
        "SELECT player_id, score FROM {} WHERE game_id = {game}",
        tables.scores
    ))
    .await
    .into_iter()
    .map(|r| {
        let text = |i: usize| r[i].clone().expect("not NULL");
        (
            text(0).parse().expect("a player id"),
            text(1).parse().expect("a score"),
        )
    })
    .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

async fn members(sql: &Sql, tables: &Tables, team: &str) -> Vec<String> {
    let mut rows: Vec<String> = sql(format!(
        "SELECT member FROM {} WHERE team = '{team}'",
        tables.teams
    ))
    .await
    .into_iter()
    .map(|r| r[0].clone().expect("not NULL"))
    .collect();
    rows.sort();
    rows
}

async fn writes(sql: &Sql, tables: &Tables) -> i64 {
    table_writes(sql, tables, "scores").await
}

async fn table_writes(sql: &Sql, tables: &Tables, table: &str) -> i64 {
    sql(format!(
        "SELECT n FROM {} WHERE t = '{table}'",
        tables.writes
    ))
    .await[0][0]
        .as_deref()
        .expect("a count")
        .parse()
        .expect("an integer")
}

/// SLUICE.FLUSH every 20 ms from its own connection, until stopped.
struct Flusher {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl Flusher {
    fn start(port: u16) -> Flusher {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut f = super::Resp::connect(port).await.expect("connect");
            let mut flushes = 0u64;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                f.ok(&["SLUICE.FLUSH"]).await;
                flushes += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            flushes
        });
        Flusher { stop, task }
    }

    /// Stops it; how many flushes it ran.
    async fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.task.await.expect("the flusher")
    }
}

/// A leaderboard and a set, each mapped a row per member:
/// - rows "another program" wrote read through as the collection (ZRANGE with scores);
/// - 20,000 ZINCRBY over 200 players under write-back coalesce per member: the flush writes
///   one row per changed player (200 rows, 0.01 per update), with the exact totals;
/// - ZREM and DEL delete rows; a member an integer column would store as another text (`007`)
///   or cannot hold (`bob`) is refused before it is acknowledged, and so is a string at a key
///   of the sorted set keyspace; a score of `1.5` goes into the double column exactly;
/// - acknowledged ZINCRBYs survive a SIGKILL before any flush (the journal) and reach the table;
/// - write-through SADD / SREM insert and delete rows at once; a team only the table knows
///   reads through; a SADD the table refuses part-way leaves none of its rows.
pub async fn collections_scenario(server: &mut Sluice, sql: &Sql, tables: &Tables) {
    sql(format!(
        "INSERT INTO {} (game_id, player_id, score) VALUES (1, 10, 5), (1, 11, 7.5)",
        tables.scores
    ))
    .await;
    let mut c = server.client().await;
    assert_eq!(
        strings(
            c.cmd(&["ZRANGE", "leaderboard:1", "0", "-1", "WITHSCORES"])
                .await
        ),
        ["10", "5", "11", "7.5"]
    );
    let before = writes(sql, tables).await;

    // The leaderboard workload: many increments over few players, one flush.
    const PLAYERS: i64 = 200;
    const UPDATES: i64 = 20_000;
    let mut expected: std::collections::BTreeMap<i64, f64> = [(10, 5.0), (11, 7.5)].into();
    for chunk in (0..UPDATES).collect::<Vec<_>>().chunks(1000) {
        let commands: Vec<Vec<String>> = chunk
            .iter()
            .map(|i| {
                let player = 100 + i % PLAYERS;
                *expected.entry(player).or_default() += 2.0;
                vec![
                    "ZINCRBY".into(),
                    "leaderboard:1".into(),
                    "2".into(),
                    player.to_string(),
                ]
            })
            .collect();
        for reply in c.pipeline(&commands).await {
            assert!(matches!(reply, Reply::Bulk(Some(_))), "{reply:?}");
        }
    }
    c.ok(&["SLUICE.FLUSH"]).await;
    let rows_written = writes(sql, tables).await - before;
    assert_eq!(
        rows_written, PLAYERS,
        "one row per changed player, not per update"
    );
    assert_eq!(
        scores(sql, tables, 1).await,
        expected.iter().map(|(p, s)| (*p, *s)).collect::<Vec<_>>()
    );
    assert_eq!(
        strings(
            c.cmd(&["ZREVRANGE", "leaderboard:1", "0", "1", "WITHSCORES"])
                .await
        ),
        ["299", "200", "298", "200"]
    );

    // The same while flushes run all the time (each one finds the key rewritten while it was
    // in flight, and stores only what changed since the one before): the table ends with
    // every increment.
    let flusher = Flusher::start(server.port);
    let before = writes(sql, tables).await;
    let mut busy: std::collections::BTreeMap<i64, f64> = std::collections::BTreeMap::new();
    for chunk in (0..UPDATES).collect::<Vec<_>>().chunks(500) {
        let commands: Vec<Vec<String>> = chunk
            .iter()
            .map(|i| {
                let player = i % PLAYERS;
                *busy.entry(player).or_default() += 1.0;
                vec![
                    "ZINCRBY".into(),
                    "leaderboard:5".into(),
                    "1".into(),
                    player.to_string(),
                ]
            })
            .collect();
        for reply in c.pipeline(&commands).await {
            assert!(matches!(reply, Reply::Bulk(Some(_))), "{reply:?}");
        }
    }
    let flushes = flusher.stop().await;
    c.ok(&["SLUICE.FLUSH"]).await;
    assert_eq!(
        scores(sql, tables, 5).await,
        busy.iter().map(|(p, s)| (*p, *s)).collect::<Vec<_>>()
    );
    let rows_written = writes(sql, tables).await - before;
    assert!(
        rows_written <= PLAYERS * (flushes as i64 + 1),
        "{rows_written} rows for {flushes} flushes of {PLAYERS} players"
    );
    assert_eq!(c.cmd(&["DEL", "leaderboard:5"]).await, Reply::Int(1));
    c.ok(&["SLUICE.FLUSH"]).await;

    // Members removed and added; refusals write nothing.
    assert_eq!(c.cmd(&["ZREM", "leaderboard:1", "10"]).await, Reply::Int(1));
    assert_eq!(
        c.cmd(&["ZADD", "leaderboard:1", "1.5", "12"]).await,
        Reply::Int(1)
    );
    let refused = c.err(&["ZADD", "leaderboard:1", "1", "007"]).await;
    assert!(refused.contains("player_id"), "{refused}");
    let refused = c.err(&["ZADD", "leaderboard:1", "1", "bob"]).await;
    assert!(refused.contains("player_id"), "{refused}");
    let refused = c.err(&["SET", "leaderboard:4", "x"]).await;
    assert!(refused.contains("zset"), "{refused}");
    c.ok(&["SLUICE.FLUSH"]).await;
    let rows = scores(sql, tables, 1).await;
    assert!(!rows.iter().any(|r| r.0 == 10), "ZREM deleted the row");
    assert!(rows.contains(&(12, 1.5)), "{rows:?}");
    assert_eq!(rows.len(), 202);

    // A value replaced whole (ZRANGESTORE into itself keeps the lowest 100) deletes the rows of
    // the members it lacks and updates the others in place: a column no keyspace maps, which
    // another program set, is still there.
    sql(format!(
        "UPDATE {} SET note = 'keep' WHERE game_id = 1 AND player_id = 11",
        tables.scores
    ))
    .await;
    assert_eq!(
        c.cmd(&["ZRANGESTORE", "leaderboard:1", "leaderboard:1", "0", "99"])
            .await,
        Reply::Int(100)
    );
    c.ok(&["SLUICE.FLUSH"]).await;
    let rows = scores(sql, tables, 1).await;
    assert_eq!(rows.len(), 100, "{rows:?}");
    assert!(rows.contains(&(12, 1.5)) && !rows.iter().any(|r| r.0 == 299));
    let note = sql(format!(
        "SELECT note FROM {} WHERE game_id = 1 AND player_id = 11",
        tables.scores
    ))
    .await;
    assert_eq!(
        note,
        [[Some("keep".to_string())]],
        "the kept row was not rewritten"
    );

    // Acknowledged, not flushed, then SIGKILL: the journal brings them to the table.
    for i in 0..50 {
        let reply = c
            .cmd(&["ZINCRBY", "leaderboard:2", "1", &(i % 5).to_string()])
            .await;
        assert!(matches!(reply, Reply::Bulk(Some(_))), "{reply:?}");
    }
    assert!(
        scores(sql, tables, 2).await.is_empty(),
        "nothing flushed yet"
    );
    server.kill_and_restart().await;
    let mut c = server.client().await;
    assert_eq!(
        c.cmd(&["ZSCORE", "leaderboard:2", "3"])
            .await
            .bulk_str()
            .as_deref(),
        Some("10")
    );
    c.ok(&["SLUICE.FLUSH"]).await;
    assert_eq!(
        scores(sql, tables, 2).await,
        (0..5).map(|p| (p, 10.0)).collect::<Vec<_>>()
    );
    assert_eq!(c.cmd(&["DEL", "leaderboard:2"]).await, Reply::Int(1));
    c.ok(&["SLUICE.FLUSH"]).await;
    assert!(
        scores(sql, tables, 2).await.is_empty(),
        "DEL deleted every row"
    );
    assert_eq!(c.cmd(&["EXISTS", "leaderboard:2"]).await, Reply::Int(0));

    // A write-through set: rows at once.
    assert_eq!(
        c.cmd(&["SADD", "team:red", "ann", "bob", "cy"]).await,
        Reply::Int(3)
    );
    assert_eq!(members(sql, tables, "red").await, ["ann", "bob", "cy"]);
    assert_eq!(c.cmd(&["SREM", "team:red", "bob"]).await, Reply::Int(1));
    assert_eq!(members(sql, tables, "red").await, ["ann", "cy"]);
    sql(format!(
        "INSERT INTO {} (team, member) VALUES ('blue', 'dee'), ('blue', 'eve')",
        tables.teams
    ))
    .await;
    let mut blue = strings(c.cmd(&["SMEMBERS", "team:blue"]).await);
    blue.sort();
    assert_eq!(blue, ["dee", "eve"]);
    assert_eq!(
        c.cmd(&["TYPE", "team:blue"]).await,
        Reply::Status("set".into())
    );
    assert_eq!(c.cmd(&["DEL", "team:red"]).await, Reply::Int(1));
    assert!(members(sql, tables, "red").await.is_empty());
    assert_eq!(c.cmd(&["SCARD", "team:red"]).await, Reply::Int(0));

    // A write the table refuses part-way (a CHECK on one member, after the others' rows were
    // inserted) leaves none of its rows, and the client gets the error.
    let refused = c
        .err(&["SADD", "team:gold", "ann", "bo", "cy", "forbidden"])
        .await;
    let lower = refused.to_lowercase();
    assert!(
        lower.contains("check") || lower.contains("constraint"),
        "{refused}"
    );
    assert!(members(sql, tables, "gold").await.is_empty());
    assert_eq!(c.cmd(&["SCARD", "team:gold"]).await, Reply::Int(0));
}

/// [`collections_config`] with change capture on, as node `node`.
pub fn collections_config_with_changes(url: &str, tables: &Tables, node: &str) -> String {
    format!(
        "{}\n[changes]\nenabled = true\nnode_name = \"{node}\"\n",
        collections_config(url, tables)
    )
}

/// Sends `args` until the reply's strings are `want`, for up to 10 s.
async fn eventually(c: &mut super::Resp, args: &[&str], want: &[&str]) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = strings(c.cmd(args).await);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?}: still {got:?}, want {want:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Change capture keeps mapped collections in step with rows other programs change: a cached
/// leaderboard shows another program's UPDATE of a score, INSERT of a player and DELETE of one;
/// a cached write-through set shows a member inserted and one deleted behind Sluice's back; a
/// cached event log an event appended and one edited.
pub async fn collections_change_capture_scenario(server: &Sluice, sql: &Sql, tables: &Tables) {
    sql(format!(
        "INSERT INTO {} (game_id, player_id, score) VALUES (3, 1, 10), (3, 2, 20)",
        tables.scores
    ))
    .await;
    let mut c = server.client().await;
    let board = ["ZRANGE", "leaderboard:3", "0", "-1", "WITHSCORES"];
    assert_eq!(strings(c.cmd(&board).await), ["1", "10", "2", "20"]);
    assert_eq!(c.cmd(&["SADD", "team:green", "ann"]).await, Reply::Int(1));
    assert_eq!(strings(c.cmd(&["SMEMBERS", "team:green"]).await), ["ann"]);

    sql(format!(
        "UPDATE {} SET score = 99 WHERE game_id = 3 AND player_id = 1",
        tables.scores
    ))
    .await;
    sql(format!(
        "INSERT INTO {} (game_id, player_id, score) VALUES (3, 3, 5)",
        tables.scores
    ))
    .await;
    sql(format!(
        "DELETE FROM {} WHERE game_id = 3 AND player_id = 2",
        tables.scores
    ))
    .await;
    sql(format!(
        "INSERT INTO {} (team, member) VALUES ('green', 'bo')",
        tables.teams
    ))
    .await;
    sql(format!(
        "DELETE FROM {} WHERE team = 'green' AND member = 'ann'",
        tables.teams
    ))
    .await;
    eventually(&mut c, &board, &["3", "5", "1", "99"]).await;
    eventually(&mut c, &["SMEMBERS", "team:green"], &["bo"]).await;

    // A cached event log shows another program's new event and its edit of an older one.
    sql(format!(
        "INSERT INTO {} (user_id, seq, payload) VALUES ('u7', 1, 'a')",
        tables.events
    ))
    .await;
    let log = ["LRANGE", "events:u7", "0", "-1"];
    assert_eq!(strings(c.cmd(&log).await), ["a"]);
    sql(format!(
        "INSERT INTO {} (user_id, seq, payload) VALUES ('u7', 2, 'b')",
        tables.events
    ))
    .await;
    sql(format!(
        "UPDATE {} SET payload = 'A' WHERE user_id = 'u7' AND seq = 1",
        tables.events
    ))
    .await;
    eventually(&mut c, &log, &["A", "b"]).await;
}

/// `(seq, payload)` rows of one user's events, by seq.
async fn events(sql: &Sql, tables: &Tables, user: &str) -> Vec<(i64, Option<String>)> {
    let mut rows: Vec<(i64, Option<String>)> = sql(format!(
        "SELECT seq, payload FROM {} WHERE user_id = '{user}'",
        tables.events
    ))
    .await
    .into_iter()
    .map(|r| {
        let seq = r[0].clone().expect("not NULL").parse().expect("a seq");
        (seq, r[1].clone())
    })
    .collect();
    rows.sort_by_key(|r| r.0);
    rows
}

/// `(seq, payload)` pairs for `from..to`, payload `{prefix}{seq}`.
fn numbered(prefix: &str, seqs: std::ops::Range<i64>) -> Vec<(i64, Option<String>)> {
    seqs.map(|i| (i, Some(format!("{prefix}{i}")))).collect()
}

/// RPUSH `user`'s list `{prefix}{seq}` for each seq in `seqs`, one command per element,
/// pipelined; every reply the new length.
async fn push_events(c: &mut super::Resp, user: &str, prefix: &str, seqs: std::ops::Range<i64>) {
    let all: Vec<i64> = seqs.collect();
    for chunk in all.chunks(500) {
        let commands: Vec<Vec<String>> = chunk
            .iter()
            .map(|i| {
                vec![
                    "RPUSH".into(),
                    format!("events:{user}"),
                    format!("{prefix}{i}"),
                ]
            })
            .collect();
        for reply in c.pipeline(&commands).await {
            assert!(matches!(reply, Reply::Int(_)), "{reply:?}");
        }
    }
}

/// A list mapped onto an event table, a row per element numbered by `seq`:
/// - rows another program wrote read through as the list, in `seq` order;
/// - RPUSH under write-back appends rows numbered one past the tail, one row per push (a
///   trigger counts them), also while flushes run all the time: no row is written twice;
/// - LPOP deletes the head row, LSET updates one row in place (its unmapped column kept),
///   LPUSH takes the number before the head, LTRIM deletes the rows it drops;
/// - an LINSERT between rows numbered one apart is refused before it is acknowledged and
///   changes nothing; so is an LMOVE of an element the element column cannot hold, which
///   leaves the source list as it was, in MULTI/EXEC too;
/// - BLPOP on a mapped list is woken by an RPUSH from another connection;
/// - acknowledged pushes survive a SIGKILL before any flush and reach the table; after the
///   restart the cold cache reads each list back from the table; DEL deletes every row.
pub async fn event_log_scenario(server: &mut Sluice, sql: &Sql, tables: &Tables) {
    let t = &tables.events;
    sql(format!(
        "INSERT INTO {t} (user_id, seq, payload, at_ms) VALUES ('u1', 2, 'login', 20), ('u1', 1, 'signup', 10)"
    ))
    .await;
    let mut c = server.client().await;
    assert_eq!(
        strings(c.cmd(&["LRANGE", "events:u1", "0", "-1"]).await),
        ["signup", "login"]
    );
    assert_eq!(
        c.cmd(&["TYPE", "events:u1"]).await,
        Reply::Status("list".into())
    );

    // The event log: one row per push, numbered on from the tail.
    let before = table_writes(sql, tables, "events").await;
    push_events(&mut c, "u1", "e", 3..1003).await;
    assert!(
        events(sql, tables, "u1").await.len() == 2,
        "nothing flushed yet"
    );
    c.ok(&["SLUICE.FLUSH"]).await;
    assert_eq!(table_writes(sql, tables, "events").await - before, 1000);
    let mut want = vec![(1, Some("signup".into())), (2, Some("login".into()))];
    want.extend(numbered("e", 3..1003));
    assert_eq!(events(sql, tables, "u1").await, want);

    // The same while flushes run all the time: each flush finds the key rewritten while it was
    // in flight and stores only the elements pushed since the one before.
    let before = table_writes(sql, tables, "events").await;
    let flusher = Flusher::start(server.port);
    push_events(&mut c, "u5", "b", 0..3000).await;
    let flushes = flusher.stop().await;
    c.ok(&["SLUICE.FLUSH"]).await;
    assert_eq!(events(sql, tables, "u5").await, numbered("b", 0..3000));
    assert_eq!(
        table_writes(sql, tables, "events").await - before,
        3000,
        "each row written once over {flushes} flushes"
    );

    // Pops, sets, pushes at the head, trims.
    assert_eq!(
        c.cmd(&["LPOP", "events:u1"]).await.bulk_str().as_deref(),
        Some("signup")
    );
    c.ok(&["LSET", "events:u1", "0", "LOGIN"]).await;
    assert_eq!(
        c.cmd(&["LPUSH", "events:u1", "first"]).await,
        Reply::Int(1002)
    );
    c.ok(&["LTRIM", "events:u1", "0", "9"]).await;
    let refused = c
        .err(&["LINSERT", "events:u1", "BEFORE", "e5", "between"])
        .await;
    assert!(
        refused.contains("LINSERT") && refused.contains("seq"),
        "{refused}"
    );
    c.ok(&["SLUICE.FLUSH"]).await;
    let mut want = vec![(1, Some("first".into())), (2, Some("LOGIN".into()))];
    want.extend(numbered("e", 3..11));
    assert_eq!(events(sql, tables, "u1").await, want);
    assert_eq!(
        sql(format!(
            "SELECT at_ms FROM {t} WHERE user_id = 'u1' AND seq = 2"
        ))
        .await,
        [[Some("20".to_string())]],
        "LSET updated the row in place"
    );

    // LMOVE into the event log of an element its text column cannot hold (not UTF-8) is
    // refused and leaves the source list as it was, in MULTI/EXEC too. (The source is on the
    // built-in table, which other runs against the same database share.)
    c.cmd(&["DEL", "bin:src"]).await;
    let pushed = c
        .cmd(&[
            "EVAL",
            "return redis.call('RPUSH', KEYS[1], string.char(255))",
            "1",
            "bin:src",
        ])
        .await;
    assert_eq!(pushed, Reply::Int(1));
    let refused = c
        .err(&["LMOVE", "bin:src", "events:u8", "LEFT", "RIGHT"])
        .await;
    assert!(refused.contains("payload"), "{refused}");
    c.ok(&["MULTI"]).await;
    assert_eq!(
        c.cmd(&["LMOVE", "bin:src", "events:u8", "LEFT", "RIGHT"])
            .await,
        Reply::Status("QUEUED".into())
    );
    let Reply::Array(Some(replies)) = c.cmd(&["EXEC"]).await else {
        panic!("EXEC replies with an array");
    };
    assert!(replies[0].error().is_some(), "{replies:?}");
    assert_eq!(c.cmd(&["LLEN", "bin:src"]).await, Reply::Int(1));
    assert_eq!(c.cmd(&["EXISTS", "events:u8"]).await, Reply::Int(0));

    // A blocked pop on a mapped list, woken by a push from another connection.
    let port = server.port;
    let waiter = tokio::spawn(async move {
        let mut w = super::Resp::connect(port).await.expect("connect");
        w.cmd(&["BLPOP", "events:u3", "10"]).await
    });
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(c.cmd(&["RPUSH", "events:u3", "job"]).await, Reply::Int(1));
    assert_eq!(
        strings(waiter.await.expect("the waiter")),
        ["events:u3", "job"]
    );
    c.ok(&["SLUICE.FLUSH"]).await;
    assert!(events(sql, tables, "u3").await.is_empty());

    // Acknowledged, not flushed, then SIGKILL: the journal brings them to the table.
    push_events(&mut c, "u2", "x", 0..50).await;
    server.kill_and_restart().await;
    let mut c = server.client().await;
    assert_eq!(c.cmd(&["LLEN", "events:u2"]).await, Reply::Int(50));
    c.ok(&["SLUICE.FLUSH"]).await;
    assert_eq!(events(sql, tables, "u2").await, numbered("x", 0..50));
    let mut want = vec!["first".to_string(), "LOGIN".into()];
    want.extend((3..11).map(|i| format!("e{i}")));
    assert_eq!(
        strings(c.cmd(&["LRANGE", "events:u1", "0", "-1"]).await),
        want
    );
    assert_eq!(c.cmd(&["DEL", "events:u2"]).await, Reply::Int(1));
    c.ok(&["SLUICE.FLUSH"]).await;
    assert!(events(sql, tables, "u2").await.is_empty());
    assert_eq!(c.cmd(&["EXISTS", "events:u2"]).await, Reply::Int(0));
}
