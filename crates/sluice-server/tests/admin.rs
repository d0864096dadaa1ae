//! The admin commands that change the server at run time: CONFIG SET and CONFIG RESETSTAT.
//!
//! Successful CONFIG SET calls are compared byte for byte with a redis-server 7.0 this test
//! starts itself on a free port (never the shared oracle, whose configuration must not change);
//! without a `redis-server` binary that comparison prints `skipped` and the Sluice-only checks
//! still run. Then each changed setting is shown to take effect: a lower `timeout` closes
//! idle clients, `maxclients` refuses the next connection, `requirepass` asks new connections
//! for the password.
//!
//! SLOWLOG entries hold values that differ between servers (ids, times, durations,
//! addresses): they are checked field by field on Sluice's raw replies.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{elements, show, OwnRedis, RawClient, TestServer};
use sluice::Durability;

/// CONFIG SET calls that succeed, and what CONFIG GET shows after them.
const CHANGES: &[&str] = &[
    "CONFIG SET timeout 300",
    "CONFIG GET timeout",
    "CONFIG SET maxclients 500 slowlog-max-len 64",
    "CONFIG GET maxclients",
    "CONFIG GET slowlog-max-len",
    "CONFIG SET Slowlog-Log-Slower-Than -1",
    "CONFIG GET slowlog-log-slower-than",
    "CONFIG SET slowlog-log-slower-than 0",
    "CONFIG GET slowlog-log-slower-than",
    "CONFIG SET notify-keyspace-events KEA",
    "CONFIG GET notify-keyspace-events",
    "CONFIG SET notify-keyspace-events Kgn",
    "CONFIG GET notify-keyspace-events",
    "CONFIG SET notify-keyspace-events Agnx",
    "CONFIG GET notify-keyspace-events",
    "CONFIG SET notify-keyspace-events \"\"",
    "CONFIG GET notify-keyspace-events",
    // All or nothing: a bad value in the last pair leaves the first unchanged.
    "CONFIG SET timeout 7 maxclients 0",
    "CONFIG GET timeout",
    "CONFIG SET timeout 0 maxclients 10000",
    "CONFIG GET timeout",
    "CONFIG RESETSTAT",
];

/// Splits a line into words; `""` is the empty string.
fn words(line: &str) -> Vec<Vec<u8>> {
    line.split(' ')
        .map(|w| {
            if w == "\"\"" {
                Vec::new()
            } else {
                w.as_bytes().to_vec()
            }
        })
        .collect()
}

/// Sends each line to both servers, one connection each; the lines whose replies differ.
async fn compare_lines(redis: &OwnRedis, sluice: &TestServer, lines: &[&str]) -> Vec<String> {
    let mut on_redis = RawClient::try_connect(&redis.addr).await.expect("redis");
    let mut on_sluice = sluice.client().await;
    let mut mismatches = Vec::new();
    for line in lines {
        let args = words(line);
        let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let (want, got) = (on_redis.cmd(&argv).await, on_sluice.cmd(&argv).await);
        if want != got {
            mismatches.push(format!(
                "{line}\n    redis:  {}\n    sluice: {}",
                show(&want),
                show(&got)
            ));
        }
    }
    mismatches
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_replies_and_values_match_redis() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    let mismatches = compare_lines(&redis, &sluice, CHANGES).await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lower_timeout_closes_clients_idle_past_it() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut admin = sluice.client().await;
    assert_eq!(admin.run("CONFIG SET timeout 1").await, b"+OK\r\n");
    let mut idle = sluice.client().await;
    assert_eq!(idle.run("PING").await, b"+PONG\r\n");
    let (_, closed) = idle.read_until_close(Duration::from_secs(3)).await;
    assert!(closed, "a client idle past `timeout` is closed");
    // The admin connection idled as long: it was closed too.
    let mut admin = sluice.client().await;
    assert_eq!(admin.run("CONFIG SET timeout 0").await, b"+OK\r\n");
    let mut kept = sluice.client().await;
    assert_eq!(kept.run("PING").await, b"+PONG\r\n");
    let (_, closed) = kept.read_until_close(Duration::from_millis(1500)).await;
    assert!(!closed, "timeout 0 closes nobody");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxclients_set_at_run_time_refuses_the_next_connection() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut admin = sluice.client().await;
    assert_eq!(admin.run("CONFIG SET maxclients 2").await, b"+OK\r\n");
    let mut second = sluice.client().await;
    assert_eq!(second.run("PING").await, b"+PONG\r\n");
    let mut third = sluice.client().await;
    let (got, closed) = third.read_until_close(Duration::from_secs(2)).await;
    assert_eq!(show(&got), "-ERR max number of clients reached\\r\\n");
    assert!(closed);
    let info = admin.run("INFO clients").await;
    assert!(
        info.windows(13).any(|w| w == b"maxclients:2\r"),
        "{}",
        show(&info)
    );
    assert_eq!(admin.run("CONFIG SET maxclients 10000").await, b"+OK\r\n");
    let mut fourth = sluice.client().await;
    assert_eq!(fourth.run("PING").await, b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requirepass_set_at_run_time_asks_new_connections_only() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut admin = sluice.client().await;
    assert_eq!(admin.run("CONFIG SET requirepass s3cret").await, b"+OK\r\n");
    // The connection that set it stays authenticated, as in Redis.
    assert_eq!(admin.run("PING").await, b"+PONG\r\n");
    // The password never leaves the server.
    assert_eq!(
        show(&admin.run("CONFIG GET requirepass").await),
        "*2\\r\\n$11\\r\\nrequirepass\\r\\n$10\\r\\n(redacted)\\r\\n"
    );
    let mut new = sluice.client().await;
    assert_eq!(
        show(&new.run("PING").await),
        "-NOAUTH Authentication required.\\r\\n"
    );
    assert_eq!(new.run("AUTH wrong").await[..7], b"-WRONGP"[..]);
    assert_eq!(new.run("AUTH s3cret").await, b"+OK\r\n");
    assert_eq!(
        admin.cmd(&[b"CONFIG", b"SET", b"requirepass", b""]).await,
        b"+OK\r\n"
    );
    let mut open = sluice.client().await;
    assert_eq!(open.run("PING").await, b"+PONG\r\n");
    assert_eq!(
        show(&open.run("CONFIG GET requirepass").await),
        "*2\\r\\n$11\\r\\nrequirepass\\r\\n$0\\r\\n\\r\\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_resetstat_zeroes_the_info_counters() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut c = sluice.client().await;
    for _ in 0..5 {
        c.run("PING").await;
    }
    assert_eq!(c.run("CONFIG RESETSTAT").await, b"+OK\r\n");
    let info = String::from_utf8(c.run("INFO stats").await).unwrap();
    assert!(info.contains("total_connections_received:0\r\n"), "{info}");
}

/// The payload of a bulk string or integer reply.
fn scalar(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    match reply[0] {
        b':' => text[1..text.len() - 2].to_string(),
        b'$' => {
            let (_, payload) = text.split_once("\r\n").unwrap();
            payload.strip_suffix("\r\n").unwrap().to_string()
        }
        _ => panic!("not a scalar: {}", show(reply)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowlog_records_commands_as_redis_7_0_does() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut c = sluice.client().await;
    assert_eq!(c.run("SLOWLOG LEN").await, b":0\r\n");
    assert_eq!(
        c.run("CONFIG SET slowlog-log-slower-than 0").await,
        b"+OK\r\n"
    );
    assert_eq!(c.run("CLIENT SETNAME reporter").await, b"+OK\r\n");
    let long = "v".repeat(200);
    let many: Vec<String> = (0..40).map(|i| format!("k{i}")).collect();
    let mut exists: Vec<&[u8]> = vec![b"HSET", b"h", b"f", long.as_bytes()];
    exists.extend(many.iter().map(|k| k.as_bytes()));
    c.cmd(&exists).await;
    c.cmd(&[b"AUTH", b"not-the-password"]).await;
    let entries = elements(&c.run("SLOWLOG GET -1").await);
    // Newest first: AUTH, HSET, CLIENT SETNAME, the CONFIG SET that turned logging on.
    assert_eq!(entries.len(), 4, "{entries:?}");
    let fields: Vec<Vec<Vec<u8>>> = entries.iter().map(|e| elements(e)).collect();
    for (i, entry) in fields.iter().enumerate() {
        assert_eq!(entry.len(), 6, "id, time, duration, argv, addr, name");
        assert_eq!(
            scalar(&entry[0]),
            (3 - i).to_string(),
            "ids count up from 0"
        );
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let logged: u64 = scalar(&entry[1]).parse().unwrap();
        assert!(now.abs_diff(logged) < 60, "unix time");
        let _micros: u64 = scalar(&entry[2]).parse().expect("duration in µs");
        assert!(scalar(&entry[4]).starts_with("127.0.0.1:"), "client addr");
    }
    let argv = |entry: &Vec<Vec<u8>>| -> Vec<String> {
        elements(&entry[3]).iter().map(|a| scalar(a)).collect()
    };
    assert_eq!(
        argv(&fields[0]),
        ["AUTH", "(redacted)"],
        "passwords never logged"
    );
    let hset = argv(&fields[1]);
    assert_eq!(hset.len(), 32, "at most 32 arguments");
    assert_eq!(hset[3], format!("{}... (72 more bytes)", "v".repeat(128)));
    assert_eq!(hset[30], "k26");
    assert_eq!(hset[31], "... (13 more arguments)");
    assert_eq!(scalar(&fields[1][5]), "reporter", "client name");
    assert_eq!(
        argv(&fields[3]),
        ["CONFIG", "SET", "slowlog-log-slower-than", "0"]
    );
    assert_eq!(scalar(&fields[3][5]), "", "no name yet");
    assert_eq!(elements(&c.run("SLOWLOG GET 1").await).len(), 1);
    assert_eq!(
        elements(&c.run("SLOWLOG GET").await).len(),
        6,
        "10 at most by default"
    );
    assert_eq!(c.run("CONFIG SET slowlog-max-len 2").await, b"+OK\r\n");
    c.run("PING").await;
    assert_eq!(
        c.run("SLOWLOG LEN").await,
        b":2\r\n",
        "trimmed to slowlog-max-len"
    );
    assert_eq!(c.run("SLOWLOG RESET").await, b"+OK\r\n");
    assert_eq!(
        c.run("SLOWLOG LEN").await,
        b":1\r\n",
        "the RESET itself is logged after"
    );
    assert_eq!(
        c.run("CONFIG SET slowlog-log-slower-than -1").await,
        b"+OK\r\n"
    );
    c.run("SLOWLOG RESET").await;
    c.run("PING").await;
    assert_eq!(c.run("SLOWLOG LEN").await, b":0\r\n", "-1 logs nothing");
}

/// The field names of a CLIENT INFO line, in order.
fn field_names(reply: &[u8]) -> Vec<String> {
    let text = scalar(reply);
    text.split_whitespace()
        .map(|f| f.split('=').next().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_info_shows_redis_7_0_fields_in_its_order() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut on_redis = RawClient::try_connect(&redis.addr).await.expect("redis");
    let mut on_sluice = sluice.client().await;
    let want = field_names(&on_redis.run("CLIENT INFO").await);
    assert_eq!(field_names(&on_sluice.run("CLIENT INFO").await), want);
    assert_eq!(field_names(&on_sluice.run("CLIENT LIST").await), want);
    assert!(
        !want.contains(&"lib-name".to_string()),
        "7.2's fields are not 7.0's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_reply_off_and_skip_suppress_replies_as_redis_does() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    // One pipeline: everything both servers send back until they go quiet must be identical.
    let mut requests = common::encode(&[b"CLIENT", b"REPLY", b"OFF"]);
    for args in [
        &[&b"SET"[..], b"k", b"1"][..],
        &[b"GET", b"k"],
        &[b"NOSUCH"],
        &[b"CLIENT", b"REPLY", b"ON"],
        &[b"ECHO", b"shown"],
        &[b"CLIENT", b"REPLY", b"SKIP"],
        &[b"ECHO", b"skipped"],
        &[b"ECHO", b"shown again"],
        &[b"CLIENT", b"REPLY", b"OFF"],
        &[b"RESET"],
        &[b"ECHO", b"after reset"],
        &[b"DEL", b"k"],
    ] {
        requests.extend(common::encode(args));
    }
    let mut replies = Vec::new();
    for mut side in [
        RawClient::try_connect(&redis.addr).await.expect("redis"),
        sluice.client().await,
    ] {
        side.send(&requests).await;
        let (bytes, _) = side.read_until_close(Duration::from_millis(500)).await;
        replies.push(bytes);
    }
    assert_eq!(show(&replies[1]), show(&replies[0]));
    assert_eq!(
        show(&replies[1]),
        "+OK\\r\\n$5\\r\\nshown\\r\\n$11\\r\\nshown again\\r\\n+RESET\\r\\n$11\\r\\nafter reset\\r\\n:1\\r\\n"
    );
}

/// CLIENT KILL and PAUSE calls whose replies must be Redis 7.0's, on a redis-server of the
/// test's own (they would disturb the shared oracle's clients).
const KILL_AND_PAUSE: &[&str] = &[
    "CLIENT KILL",
    "CLIENT KILL 1.2.3.4:5",
    "CLIENT KILL addr",
    "CLIENT KILL a b c",
    "CLIENT KILL 127.0.0.1:1 x",
    "CLIENT KILL ID x",
    "CLIENT KILL ID 0",
    "CLIENT KILL ID -1",
    "CLIENT KILL ID 1.5",
    "CLIENT KILL ID 99999999999999999999",
    "CLIENT KILL ID 999999",
    "CLIENT KILL ID 5 ID",
    "CLIENT KILL ID 1 TYPE",
    "CLIENT KILL TYPE foo",
    "CLIENT KILL TYPE normal x",
    "CLIENT KILL TYPE master",
    "CLIENT KILL TYPE Replica",
    "CLIENT KILL TYPE slave",
    "CLIENT KILL TYPE pubsub",
    "CLIENT KILL SKIPME maybe",
    "CLIENT KILL SkipMe Yes",
    "CLIENT KILL USER nouser",
    "CLIENT KILL USER default SKIPME yes",
    "CLIENT KILL ADDR 1.2.3.4:5",
    "CLIENT KILL LADDR 1.2.3.4:5",
    "CLIENT KILL ID 1 ID 2",
    "CLIENT KILL FOO bar",
    "CLIENT KILL ID 1 SKIPME",
    "CLIENT PAUSE",
    "CLIENT PAUSE x",
    "CLIENT PAUSE -1",
    "CLIENT PAUSE x foo",
    "CLIENT PAUSE x write",
    "CLIENT PAUSE 0 foo",
    "CLIENT PAUSE 0 write x",
    "CLIENT PAUSE 99999999999999999999",
    "CLIENT PAUSE 0 WRITE",
    "CLIENT PAUSE 0 all",
    "CLIENT PAUSE 0",
    "CLIENT UNPAUSE",
    "CLIENT UNPAUSE x",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_and_pause_replies_match_redis() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    let mismatches = compare_lines(&redis, &sluice, KILL_AND_PAUSE).await;
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// One `name=value` field of a CLIENT INFO / LIST line.
fn field(line: &str, name: &str) -> String {
    line.split_whitespace()
        .find_map(|f| f.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} in {line}"))
        .to_string()
}

/// A connection's CLIENT INFO line, asked on that connection.
async fn info_line(client: &mut RawClient) -> String {
    scalar(&client.run("CLIENT INFO").await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_closes_idle_connections_at_once() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut admin = sluice.client().await;
    // By ID.
    let mut victim = sluice.client().await;
    let id = field(&info_line(&mut victim).await, "id");
    assert_eq!(admin.run(&format!("CLIENT KILL ID {id}")).await, b":1\r\n");
    let (_, closed) = victim.read_until_close(Duration::from_secs(5)).await;
    assert!(closed, "killed by id");
    // The old form, by address.
    let mut victim = sluice.client().await;
    let addr = field(&info_line(&mut victim).await, "addr");
    assert_eq!(admin.run(&format!("CLIENT KILL {addr}")).await, b"+OK\r\n");
    let (_, closed) = victim.read_until_close(Duration::from_secs(5)).await;
    assert!(closed, "killed by address");
    assert_eq!(
        show(&admin.run(&format!("CLIENT KILL {addr}")).await),
        "-ERR No such client\\r\\n"
    );
    // Every `default` connection but the caller (SKIPME defaults to yes).
    let mut others = [sluice.client().await, sluice.client().await];
    for o in &mut others {
        assert_eq!(o.run("PING").await, b"+PONG\r\n");
    }
    assert_eq!(admin.run("CLIENT KILL USER default").await, b":2\r\n");
    for o in &mut others {
        let (_, closed) = o.read_until_close(Duration::from_secs(5)).await;
        assert!(closed, "killed by user");
    }
    // LADDR matches the listener's address; MAXAGE none this young.
    let mut victim = sluice.client().await;
    let laddr = field(&info_line(&mut victim).await, "laddr");
    assert_eq!(
        admin.run("CLIENT KILL MAXAGE 3600 SKIPME no").await,
        b":0\r\n"
    );
    assert_eq!(
        admin.run(&format!("CLIENT KILL LADDR {laddr}")).await,
        b":1\r\n"
    );
    let (_, closed) = victim.read_until_close(Duration::from_secs(5)).await;
    assert!(closed, "killed by local address");
    // SKIPME no: the caller too, after its reply.
    assert_eq!(admin.run("CLIENT KILL SKIPME no").await, b":1\r\n");
    let (_, closed) = admin.read_until_close(Duration::from_secs(5)).await;
    assert!(closed, "the caller closes after its reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_pause_write_holds_writes_until_unpause() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut admin = sluice.client().await;
    let mut writer = sluice.client().await;
    let mut reader = sluice.client().await;
    let writer_id = field(&info_line(&mut writer).await, "id");
    assert_eq!(admin.run("CLIENT PAUSE 600000 WRITE").await, b"+OK\r\n");
    writer.send(&common::encode(&[b"SET", b"k", b"v"])).await;
    // Reads run; the write waits, shown as blocked (flag b) once it reached the pause.
    assert_eq!(reader.run("GET k").await, b"$-1\r\n");
    let mut flags = String::new();
    for _ in 0..100 {
        let line = scalar(&admin.run(&format!("CLIENT LIST ID {writer_id}")).await);
        flags = field(&line, "flags");
        if flags == "b" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(flags, "b", "the waiting writer is flagged blocked");
    assert_eq!(reader.run("GET k").await, b"$-1\r\n", "not written yet");
    assert_eq!(admin.run("CLIENT UNPAUSE").await, b"+OK\r\n");
    assert_eq!(writer.reply().await, b"+OK\r\n");
    assert_eq!(reader.run("GET k").await, b"$1\r\nv\r\n");
    // A container's sub-command is held back by its own flags, as in Redis: XGROUP CREATE (a
    // write) waits, CONFIG GET does not.
    assert_eq!(admin.run("CLIENT PAUSE 600000 WRITE").await, b"+OK\r\n");
    writer
        .send(&common::encode(&[
            b"XGROUP",
            b"CREATE",
            b"s",
            b"g",
            b"$",
            b"MKSTREAM",
        ]))
        .await;
    let config = reader.run("CONFIG GET maxclients").await;
    assert!(config.starts_with(b"*2\r\n"), "{}", show(&config));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        reader.run("EXISTS s").await,
        b":0\r\n",
        "XGROUP CREATE waits"
    );
    assert_eq!(admin.run("CLIENT UNPAUSE").await, b"+OK\r\n");
    assert_eq!(writer.reply().await, b"+OK\r\n");
    assert_eq!(reader.run("EXISTS s").await, b":1\r\n");
    // PUBLISH waits (Redis's hidden `may_replicate` flag), and so does a script that may
    // write; one that declares `no-writes` runs.
    assert_eq!(admin.run("CLIENT PAUSE 600000 WRITE").await, b"+OK\r\n");
    writer
        .send(&common::encode(&[b"PUBLISH", b"ch", b"m"]))
        .await;
    let read_only = [&b"EVAL"[..], b"#!lua flags=no-writes\nreturn 7", b"0"];
    assert_eq!(reader.cmd(&read_only).await, b":7\r\n");
    let mut scripter = sluice.client().await;
    scripter
        .send(&common::encode(&[b"EVAL", b"return 8", b"0"]))
        .await;
    for waiting in [&mut writer, &mut scripter] {
        let early = tokio::time::timeout(Duration::from_millis(100), waiting.reply()).await;
        assert!(early.is_err(), "answered during the pause: {early:?}");
    }
    assert_eq!(admin.run("CLIENT UNPAUSE").await, b"+OK\r\n");
    assert_eq!(writer.reply().await, b":0\r\n");
    assert_eq!(scripter.reply().await, b":8\r\n");
    // An EXEC waits if its queue holds a write (queued before the pause: queueing a write
    // waits too); one of reads runs.
    assert_eq!(writer.run("MULTI").await, b"+OK\r\n");
    assert_eq!(writer.run("SET k w").await, b"+QUEUED\r\n");
    assert_eq!(reader.run("MULTI").await, b"+OK\r\n");
    assert_eq!(reader.run("GET k").await, b"+QUEUED\r\n");
    assert_eq!(admin.run("CLIENT PAUSE 600000 WRITE").await, b"+OK\r\n");
    writer.send(&common::encode(&[b"EXEC"])).await;
    assert_eq!(reader.run("EXEC").await, b"*1\r\n$1\r\nv\r\n");
    assert_eq!(admin.run("CLIENT UNPAUSE").await, b"+OK\r\n");
    assert_eq!(writer.reply().await, b"*1\r\n+OK\r\n");
    assert_eq!(reader.run("GET k").await, b"$1\r\nw\r\n");
    // A pause ends by itself at its deadline; ALL holds every command until then.
    assert_eq!(admin.run("CLIENT PAUSE 100 ALL").await, b"+OK\r\n");
    assert_eq!(reader.run("PING").await, b"+PONG\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_reaches_a_client_waiting_for_a_pause() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut admin = sluice.client().await;
    let mut writer = sluice.client().await;
    let id = field(&info_line(&mut writer).await, "id");
    assert_eq!(admin.run("CLIENT PAUSE 600000 WRITE").await, b"+OK\r\n");
    writer.send(&common::encode(&[b"SET", b"k", b"v"])).await;
    assert_eq!(admin.run(&format!("CLIENT KILL ID {id}")).await, b":1\r\n");
    let (got, closed) = writer.read_until_close(Duration::from_secs(5)).await;
    assert!(closed, "killed while waiting");
    assert!(
        got.is_empty(),
        "the waiting write never ran: {}",
        show(&got)
    );
    assert_eq!(admin.run("CLIENT UNPAUSE").await, b"+OK\r\n");
    assert_eq!(admin.run("GET k").await, b"$-1\r\n");
}

/// The CLIENT LIST fields whose values both servers must agree on; the others hold ids,
/// addresses, times and allocation sizes.
const COMPARED_FIELDS: &[&str] = &[
    "name", "db", "flags", "sub", "psub", "ssub", "multi", "qbuf", "argv-mem", "obl", "oll",
    "omem", "events", "cmd", "user", "redir", "resp",
];

/// The compared fields of a CLIENT INFO / LIST line, as `name=value`.
fn compared(line: &str) -> Vec<String> {
    COMPARED_FIELDS
        .iter()
        .map(|f| format!("{f}={}", field(line, f)))
        .collect()
}

/// What one server's CLIENT INFO / LIST shows along a connection's life; `observer` watches
/// `client` from outside.
async fn client_fields_along_a_session(
    client: &mut RawClient,
    observer: &mut RawClient,
) -> Vec<Vec<String>> {
    let mut seen = Vec::new();
    let first = info_line(client).await;
    let id = field(&first, "id");
    seen.push(compared(&first));
    let outside = async |observer: &mut RawClient| {
        compared(&scalar(
            &observer.run(&format!("CLIENT LIST ID {id}")).await,
        ))
    };
    seen.push(outside(observer).await);
    for line in ["CLIENT SETNAME worker", "SELECT 3", "CLIENT NO-EVICT on"] {
        assert_eq!(client.run(line).await, b"+OK\r\n", "{line}");
    }
    seen.push(compared(&info_line(client).await));
    seen.push(outside(observer).await);
    assert_eq!(client.run("MULTI").await, b"+OK\r\n");
    assert_eq!(client.run("SET k v").await, b"+QUEUED\r\n");
    assert_eq!(client.run("GET k").await, b"+QUEUED\r\n");
    seen.push(outside(observer).await);
    client.run("EXEC").await;
    seen.push(outside(observer).await);
    assert_eq!(client.run("CLIENT NO-EVICT off").await, b"+OK\r\n");
    client.run("HELLO 3").await;
    seen.push(outside(observer).await);
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_fields_match_redis_along_a_session() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut redis_client = RawClient::try_connect(&redis.addr).await.expect("redis");
    let mut redis_observer = RawClient::try_connect(&redis.addr).await.expect("redis");
    let want = client_fields_along_a_session(&mut redis_client, &mut redis_observer).await;
    let (mut client, mut observer) = (sluice.client().await, sluice.client().await);
    let got = client_fields_along_a_session(&mut client, &mut observer).await;
    for (step, (want, got)) in want.iter().zip(&got).enumerate() {
        assert_eq!(got, want, "step {step}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_shows_the_socket_and_idle_time() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut client = sluice.client().await;
    let mut observer = sluice.client().await;
    let line = info_line(&mut client).await;
    let fd: i32 = field(&line, "fd").parse().unwrap();
    assert!(fd > 2, "a real socket: {line}");
    let other: i32 = field(&info_line(&mut observer).await, "fd")
        .parse()
        .unwrap();
    assert_ne!(fd, other, "one socket each");
    assert_eq!(
        field(&line, "qbuf"),
        "26",
        "this request, as Redis counts it"
    );
    assert_eq!(field(&line, "argv-mem"), "10", "CLIENT + INFO");
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let id = field(&line, "id");
    let seen = scalar(&observer.run(&format!("CLIENT LIST ID {id}")).await);
    let idle: u64 = field(&seen, "idle").parse().unwrap();
    assert!(idle >= 1, "idle for two seconds: {seen}");
    assert!(field(&seen, "age").parse::<u64>().unwrap() >= idle);
}

/// What INFO shows as buffered in keyspace `name`.
async fn buffered(client: &mut RawClient, name: &str) -> u64 {
    let info = String::from_utf8(client.run("INFO sluice").await).unwrap();
    let line = info
        .lines()
        .find(|l| l.starts_with(&format!("keyspace_{name}:")))
        .unwrap_or_else(|| panic!("no keyspace {name} in {info}"));
    line.split(',')
        .find_map(|f| f.strip_prefix("buffered="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no buffered= in {line}"))
}

/// Polls until keyspace `name` has nothing buffered; false if it still has after 20 s.
async fn drains(client: &mut RawClient, name: &str) -> bool {
    for _ in 0..400 {
        if buffered(client, name).await == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_keyspace_settings_change_at_run_time() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let keyspaces = sluice.shared.sluice.keyspace_settings();
    let ks = keyspaces
        .first()
        .expect("the built-in write-back keyspace")
        .name
        .clone();
    let mut c = sluice.client().await;
    // Every keyspace at once, then one by name; CONFIG GET shows both spellings.
    assert_eq!(
        c.run("CONFIG SET sluice-flush_interval 3600000 sluice-flush_batch 100000")
            .await,
        b"+OK\r\n"
    );
    let per_keyspace = format!("sluice-{ks}-max_dirty");
    assert_eq!(
        c.run(&format!("CONFIG SET {per_keyspace} 5000")).await,
        b"+OK\r\n"
    );
    let got = String::from_utf8(c.run("CONFIG GET sluice-*").await).unwrap();
    for (name, value) in [
        ("sluice-flush_interval".to_string(), "3600000"),
        ("sluice-flush_batch".to_string(), "100000"),
        ("sluice-max_dirty".to_string(), "5000"),
        (format!("sluice-{ks}-flush_interval"), "3600000"),
        (per_keyspace.clone(), "5000"),
    ] {
        let pair = format!(
            "${}\r\n{name}\r\n${}\r\n{value}\r\n",
            name.len(),
            value.len()
        );
        assert!(
            got.contains(&pair),
            "{name}={value} in {}",
            show(got.as_bytes())
        );
    }
    assert_eq!(
        show(
            &c.run(&format!("CONFIG GET {}", per_keyspace.to_uppercase()))
                .await
        ),
        show(
            format!(
                "*2\r\n${}\r\n{}\r\n$4\r\n5000\r\n",
                per_keyspace.len(),
                per_keyspace.to_uppercase()
            )
            .as_bytes()
        ),
        "a name is shown as the client spelled it"
    );
    // Refusals, in Redis's shape; nothing is applied.
    for (line, want) in [
        (
            "CONFIG SET sluice-max_dirty 0",
            "-ERR CONFIG SET failed (possibly related to argument 'sluice-max_dirty') - argument must be between 1 and 9223372036854775807 inclusive\r\n",
        ),
        (
            "CONFIG SET sluice-flush_interval 10 sluice-flush_batch x",
            "-ERR CONFIG SET failed (possibly related to argument 'sluice-flush_batch') - argument couldn't be parsed into an integer\r\n",
        ),
        (
            "CONFIG SET sluice-flush_batch 5 SLUICE-FLUSH_BATCH 6",
            "-ERR CONFIG SET failed (possibly related to argument 'SLUICE-FLUSH_BATCH') - duplicate parameter\r\n",
        ),
        (
            "CONFIG SET sluice-nosuch-flush_batch 5",
            "-ERR Unknown option or number of arguments for CONFIG SET - 'sluice-nosuch-flush_batch'\r\n",
        ),
    ] {
        assert_eq!(String::from_utf8_lossy(&c.run(line).await), want, "{line}");
    }
    assert_eq!(
        show(&c.run("CONFIG GET sluice-flush_interval").await),
        "*2\\r\\n$21\\r\\nsluice-flush_interval\\r\\n$7\\r\\n3600000\\r\\n"
    );
    // The flusher picks up a new interval during the wait it is in.
    assert_eq!(c.run("SET k1 v").await, b"+OK\r\n");
    assert_eq!(buffered(&mut c, &ks).await, 1, "held for an hour");
    assert_eq!(
        c.run(&format!("CONFIG SET sluice-{ks}-flush_interval 20"))
            .await,
        b"+OK\r\n"
    );
    assert!(drains(&mut c, &ks).await, "flushed at the new interval");
    // And a new batch size from the next write.
    assert_eq!(
        c.run("CONFIG SET sluice-flush_interval 3600000").await,
        b"+OK\r\n"
    );
    assert_eq!(c.run("SET k2 v").await, b"+OK\r\n");
    assert_eq!(buffered(&mut c, &ks).await, 1, "held for an hour again");
    assert_eq!(c.run("CONFIG SET sluice-flush_batch 1").await, b"+OK\r\n");
    assert!(drains(&mut c, &ks).await, "a batch of one is due at once");
    assert_eq!(c.run("SET k3 v").await, b"+OK\r\n");
    assert!(drains(&mut c, &ks).await, "every new key is a batch");
}

/// Runs `sluice status --once` against `port` with `extra` arguments: its exit success,
/// stdout and stderr.
async fn sluice_status(port: u16, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec![
        "status".to_string(),
        "--port".into(),
        port.to_string(),
        "--once".into(),
        "--interval".into(),
        "100ms".into(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .output()
            .expect("run sluice status")
    })
    .await
    .expect("sluice status task");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_status_once_prints_a_table_per_keyspace() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let ks = sluice.shared.sluice.keyspaces()[0].name.clone();
    let mut c = sluice.client().await;
    assert_eq!(
        c.run("CONFIG SET sluice-flush_interval 3600000").await,
        b"+OK\r\n"
    );
    // INFO's look at every key's TTL (its keyspace section) counts as no read.
    for line in ["SET a 1", "SET b 2", "GET a", "INFO", "GET a", "GET b"] {
        c.run(line).await;
    }
    let (ok, out, err) = sluice_status(sluice.port(), &[]).await;
    assert!(ok, "exit status; stderr: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("sluice ") && lines[0].contains(&format!(":{}", sluice.port())),
        "{out}"
    );
    let header = lines
        .iter()
        .position(|l| l.starts_with("KEYSPACE"))
        .unwrap_or_else(|| panic!("a header row in {out}"));
    for column in [
        "POLICY", "TABLE", "HITS", "MISSES", "HIT%", "BUFFERED", "OLDEST", "DEAD", "WRITES/S",
    ] {
        assert!(lines[header].contains(column), "{column} in {out}");
    }
    let row: Vec<&str> = lines[header + 1].split_whitespace().collect();
    assert_eq!(row[0], ks, "{out}");
    assert_eq!(row[1], "write-back", "{out}");
    assert_eq!(
        &row[3..6],
        ["3", "0", "100.0"],
        "hits, misses, hit rate: {out}"
    );
    assert_eq!(row[6], "2", "both writes still buffered: {out}");
    assert!(
        !out.contains('\x1b'),
        "no terminal codes into a pipe: {out:?}"
    );

    // A server that asks for a password: refused without it, shown with it.
    assert_eq!(c.run("CONFIG SET requirepass s3cret").await, b"+OK\r\n");
    let (ok, _, err) = sluice_status(sluice.port(), &[]).await;
    assert!(!ok && err.contains("error:"), "refused: {err}");
    let (ok, out, err) = sluice_status(sluice.port(), &["--password", "s3cret"]).await;
    assert!(ok && out.contains("KEYSPACE"), "{out}{err}");
}
