//! INFO commandstats / errorstats / stats and LATENCY, compared with a redis-server 7.0 this
//! test starts itself (its statistics and `latency-monitor-threshold` change, which the
//! shared oracle must keep; without a `redis-server` binary the comparisons print `skipped`).
//!
//! Both servers run the same commands from fresh statistics; the counters Redis derives from
//! them (calls, rejected and failed calls, error counts, keyspace hits and misses) must then be
//! equal, and the figures that are times only of the same shape.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{elements, mismatch, own_redis_and_sluice, show, RawClient, TestServer};
use sluice::Durability;

/// The commands both servers run: successes, failures (ran and answered an error) and
/// rejections (refused before running) of several kinds.
const WORKLOAD: &[&[&str]] = &[
    &["SET", "k", "v"],
    &["GET", "k"],
    &["GET", "missing"],
    &["MGET", "k", "missing", "k"],
    &["EXISTS", "k", "missing"],
    &["STRLEN", "k"],
    &["TTL", "missing"],
    &["GET"],
    &["CONFIG", "GET"],
    &["CONFIG", "NOSUCH"],
    &["NOSUCHCOMMAND", "x"],
    &["HSET", "h", "f", "v"],
    &["GET", "h"],
    &["HGET", "h", "f"],
    &["HGET", "h", "nofield"],
    &["HGET", "nohash", "f"],
    &["HGETALL", "h"],
    &["HEXISTS", "k", "f"],
    &["GETRANGE", "k", "0", "1"],
    &["GETRANGE", "missing", "0", "1"],
    &["TYPE", "k"],
    &["TYPE", "missing"],
    &["GETSET", "g", "v"],
    &["GETEX", "k"],
    &["GETDEL", "g"],
    &["GETDEL", "g"],
    &["INCR", "k"],
    &["MULTI"],
    &["SET", "k"],
    &["EXEC"],
    &["MULTI"],
    &["SET", "k2", "v"],
    &["INCR", "k"],
    &["EXEC"],
    &["EVAL", "return redis.call('incr', KEYS[1])", "1", "k"],
    &["EVAL", "return redis.pcall('incr', KEYS[1])", "1", "k"],
    &["EVAL", "redis.pcall('incr', KEYS[1]) return 1", "1", "k"],
    &["DEL", "k", "k2", "h"],
];

/// The payload of a bulk string (INFO's reply in RESP2).
fn bulk_text(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply).into_owned();
    assert!(text.starts_with('$'), "a bulk string: {}", show(reply));
    let (_, payload) = text.split_once("\r\n").expect("header");
    payload.strip_suffix("\r\n").expect("trailer").to_string()
}

/// The `name:value` lines of an INFO section, by name.
fn fields(info: &str) -> BTreeMap<String, String> {
    info.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// `calls=1,usec=2,...` as its keys and values, in order.
fn pairs(value: &str) -> Vec<(String, String)> {
    value
        .split(',')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A commandstats value with the times replaced by their shape (`usec` an integer,
/// `usec_per_call` a number with two decimals).
fn counts_only(value: &str) -> String {
    pairs(value)
        .into_iter()
        .map(|(k, v)| match k.as_str() {
            "usec" => {
                assert!(v.parse::<u64>().is_ok(), "usec={v}");
                format!("{k}=N")
            }
            "usec_per_call" => {
                let (whole, cents) = v.split_once('.').expect("two decimals");
                assert!(whole.parse::<u64>().is_ok() && cents.len() == 2, "{v}");
                format!("{k}=N.NN")
            }
            _ => format!("{k}={v}"),
        })
        .collect::<Vec<_>>()
        .join(",")
}

async fn run_workload(c: &mut RawClient) {
    for argv in WORKLOAD {
        let argv: Vec<&[u8]> = argv.iter().map(|a| a.as_bytes()).collect();
        c.cmd(&argv).await;
    }
}

async fn info(c: &mut RawClient, section: &str) -> BTreeMap<String, String> {
    fields(&bulk_text(&c.cmd(&[b"INFO", section.as_bytes()]).await))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commandstats_errorstats_and_hits_count_as_redis_7_0_counts_them() {
    let Some((redis, sluice, mut on_redis, mut on_sluice)) = own_redis_and_sluice().await else {
        return;
    };
    let addrs = [redis.addr.clone(), sluice.addr.to_string()];
    let mut seen = Vec::new();
    for (c, addr) in [(&mut on_redis, &addrs[0]), (&mut on_sluice, &addrs[1])] {
        assert_eq!(c.run("CONFIG RESETSTAT").await, b"+OK\r\n");
        run_workload(c).await;
        // A protocol error is an error reply too (its connection then closes).
        let mut broken = RawClient::try_connect(addr).await.expect("connect");
        broken.send(b"*1\r\n$x\r\n").await;
        assert!(broken.reply().await.starts_with(b"-ERR Protocol error"));
        let commands: BTreeMap<String, String> = info(c, "commandstats")
            .await
            .into_iter()
            .map(|(k, v)| (k, counts_only(&v)))
            .collect();
        let errors = info(c, "errorstats").await;
        let stats = info(c, "stats").await;
        let stat = |name: &str| stats.get(name).cloned().unwrap_or_default();
        seen.push((
            commands,
            errors,
            [
                stat("total_error_replies"),
                stat("keyspace_hits"),
                stat("keyspace_misses"),
            ],
        ));
    }
    let (redis, sluice) = (&seen[0], &seen[1]);
    assert_eq!(redis.0, sluice.0, "commandstats (times as their shape)");
    assert_eq!(redis.1, sluice.1, "errorstats");
    assert_eq!(
        redis.2, sluice.2,
        "total_error_replies, keyspace_hits, keyspace_misses"
    );
    assert!(
        sluice.0.contains_key("cmdstat_config|get"),
        "sub-commands count on their own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_sections_default_all_and_everything_include_the_stats_as_redis_does() {
    let Some((_redis, _sluice, mut on_redis, mut on_sluice)) = own_redis_and_sluice().await else {
        return;
    };
    for c in [&mut on_redis, &mut on_sluice] {
        c.run("GET").await;
    }
    for which in [
        "",
        "default",
        "all",
        "everything",
        "commandstats",
        "errorstats",
    ] {
        let mut sections = Vec::new();
        for c in [&mut on_redis, &mut on_sluice] {
            let argv: Vec<&[u8]> = if which.is_empty() {
                vec![b"INFO"]
            } else {
                vec![b"INFO", which.as_bytes()]
            };
            let text = bulk_text(&c.cmd(&argv).await);
            sections.push(
                ["# Commandstats", "# Errorstats"].map(|header| text.lines().any(|l| l == header)),
            );
        }
        assert_eq!(sections[0], sections[1], "INFO {which}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_resetstat_clears_command_and_error_stats() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut c = sluice.client().await;
    run_workload(&mut c).await;
    assert!(!info(&mut c, "errorstats").await.is_empty());
    assert_eq!(c.run("CONFIG RESETSTAT").await, b"+OK\r\n");
    assert!(info(&mut c, "errorstats").await.is_empty());
    let commands = info(&mut c, "commandstats").await;
    assert_eq!(
        commands.keys().collect::<Vec<_>>(),
        ["cmdstat_config|resetstat", "cmdstat_info"],
        "only the RESETSTAT itself (counted after it ran) and the INFO since"
    );
    let stats = info(&mut c, "stats").await;
    assert_eq!(stats["total_error_replies"], "0");
    assert_eq!(stats["keyspace_hits"], "0");
    assert_eq!(stats["keyspace_misses"], "0");
}

/// LATENCY replies with no event recorded, and CONFIG for its threshold: byte for byte.
const LATENCY_IDLE: &[&str] = &[
    "LATENCY LATEST",
    "LATENCY HISTORY command",
    "LATENCY RESET",
    "LATENCY RESET command fast-command",
    "LATENCY HELP",
    "LATENCY DOCTOR",
    "LATENCY NOSUCH",
    "LATENCY HISTORY",
    "LATENCY LATEST x",
    "CONFIG GET latency-monitor-threshold",
    "CONFIG SET latency-monitor-threshold -1",
    "CONFIG SET latency-monitor-threshold 1",
    "CONFIG GET latency-monitor-threshold",
    "LATENCY DOCTOR",
];

/// Replaces each integer reply (`:123`) by `:N`: times and latencies differ between servers.
fn integers_as_n(reply: &[u8]) -> String {
    show(reply)
        .split("\\r\\n")
        .map(|part| if part.starts_with(':') { ":N" } else { part })
        .collect::<Vec<_>>()
        .join("\\r\\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_replies_match_redis_7_0() {
    let Some((_redis, _sluice, mut on_redis, mut on_sluice)) = own_redis_and_sluice().await else {
        return;
    };
    let mut mismatches = Vec::new();
    for line in LATENCY_IDLE {
        let (want, got) = (on_redis.run(line).await, on_sluice.run(line).await);
        mismatches.extend(mismatch(line, &want, &got));
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));

    // A command over the 1 ms threshold: a long Lua loop on both.
    let slow: &[&[u8]] = &[
        b"EVAL",
        b"local i = 0 while i < 20000000 do i = i + 1 end return i",
        b"0",
    ];
    on_redis.cmd(slow).await;
    on_sluice.cmd(slow).await;
    // How many samples and events there are depends on timing (a busy machine may make
    // another command slow too): compare the shape of `command`'s entry and of a sample.
    let command_entry = |reply: &[u8]| {
        elements(reply)
            .into_iter()
            .find(|e| e.windows(9).any(|w| w == b"\r\ncommand"))
            .map(|e| integers_as_n(&e))
    };
    let (want, got) = (
        on_redis.run("LATENCY LATEST").await,
        on_sluice.run("LATENCY LATEST").await,
    );
    assert!(command_entry(&want).is_some(), "{}", show(&want));
    assert_eq!(command_entry(&want), command_entry(&got), "LATENCY LATEST");
    let (want, got) = (
        on_redis.run("LATENCY HISTORY command").await,
        on_sluice.run("LATENCY HISTORY command").await,
    );
    let first_sample = |reply: &[u8]| elements(reply).first().map(|e| integers_as_n(e));
    assert!(first_sample(&want).is_some(), "{}", show(&want));
    assert_eq!(first_sample(&want), first_sample(&got), "LATENCY HISTORY");
    assert_eq!(on_sluice.run("LATENCY RESET").await.first(), Some(&b':'));
    assert_eq!(on_sluice.run("LATENCY LATEST").await, b"*0\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_reports_engine_events_past_the_threshold() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut c = sluice.client().await;
    let monitor = sluice.shared.sluice.latency();
    monitor.record(
        sluice::metrics::events::JOURNAL_FSYNC,
        Duration::from_millis(5),
    );
    assert_eq!(c.run("LATENCY LATEST").await, b"*0\r\n", "off at 0");
    assert_eq!(
        c.run("CONFIG SET latency-monitor-threshold 2").await,
        b"+OK\r\n"
    );
    assert_eq!(monitor.threshold_ms(), 2);
    monitor.record(
        sluice::metrics::events::JOURNAL_FSYNC,
        Duration::from_millis(1),
    );
    monitor.record(
        sluice::metrics::events::JOURNAL_FSYNC,
        Duration::from_millis(7),
    );
    monitor.record(
        sluice::metrics::events::KEYSPACE_FLUSH,
        Duration::from_millis(3),
    );
    let latest = show(&c.run("LATENCY LATEST").await);
    assert!(
        latest.starts_with("*2\\r\\n*4\\r\\n$13\\r\\njournal-fsync\\r\\n:"),
        "{latest}"
    );
    assert!(latest.contains("\\r\\n:7\\r\\n:7\\r\\n"), "{latest}");
    assert!(latest.contains("keyspace-flush"), "{latest}");
    let history = show(&c.run("LATENCY HISTORY journal-fsync").await);
    assert!(history.starts_with("*1\\r\\n*2\\r\\n:"), "{history}");
    let doctor = String::from_utf8(c.run("LATENCY DOCTOR").await).unwrap();
    assert!(
        doctor.contains("1. journal-fsync: 1 latency spikes"),
        "{doctor}"
    );
    assert_eq!(c.run("LATENCY RESET").await, b":2\r\n");
    assert_eq!(c.run("LATENCY LATEST").await, b"*0\r\n");
}
