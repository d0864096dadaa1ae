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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_set_replies_and_values_match_redis() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut on_redis = RawClient::try_connect(&redis.addr).await.expect("redis");
    let mut on_sluice = sluice.client().await;
    let mut mismatches = Vec::new();
    for line in CHANGES {
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
