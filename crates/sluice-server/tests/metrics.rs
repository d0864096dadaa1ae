//! The HTTP listener (`[metrics] listen`), as an operator's monitoring uses it:
//! - `/metrics` is the Prometheus text format with the node's and each keyspace's figures,
//!   and a real Prometheus server scrapes it (set `SLUICE_TEST_PROMETHEUS_BIN`, e.g.
//!   `/usr/bin/prometheus`; skipped when unset);
//! - `/healthz` and `/readyz` answer JSON probes;
//! - with a password set, `/metrics` asks for an ACL user's credentials (HTTP basic auth);
//! - beyond loopback with no password, the server refuses to start (protected mode).

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::TestServer;
use sluice::Sluice;
use sluice_server::config::FileConfig;
use sluice_server::Server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn with_metrics(text: &str) -> FileConfig {
    FileConfig::from_toml(&format!("[metrics]\nlisten = \"127.0.0.1:0\"\n{text}")).unwrap()
}

/// One HTTP/1.1 GET; returns the status code and the body.
async fn get(addr: SocketAddr, path: &str, basic_auth: Option<(&str, &str)>) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((user, password)) = basic_auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(
        Duration::from_secs(10),
        stream.read_to_string(&mut response),
    )
    .await
    .expect("HTTP reply in time")
    .expect("read reply");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the series whose line starts with `series` (name and labels, exact).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_each_keyspaces_writes_buffer_and_flushes() {
    let server = TestServer::start_config(with_metrics("")).await;
    let http = server.http_addr.expect("metrics listener");
    let mut c = server.client().await;
    for i in 0..5 {
        assert_eq!(c.run(&format!("SET k{i} v")).await, b"+OK\r\n");
    }
    let (status, body) = get(http, "/metrics", None).await;
    assert_eq!(status, 200, "{body}");
    let ks = r#"{keyspace="default",policy="write-back"}"#;
    assert_eq!(
        sample(&body, &format!("sluice_keyspace_writes_total{ks}")),
        Some(5.0),
        "{body}"
    );
    assert!(
        body.contains("# TYPE sluice_keyspace_writes_total counter"),
        "{body}"
    );
    assert!(
        body.contains("# HELP sluice_keyspace_oldest_unflushed_age_seconds"),
        "{body}"
    );
    assert_eq!(
        sample(&body, "sluice_connected_clients"),
        Some(1.0),
        "{body}"
    );
    assert!(
        sample(&body, "sluice_journal_appends_total").unwrap_or(0.0) >= 5.0,
        "{body}"
    );
    assert_eq!(
        sample(&body, r#"sluice_journal_failed{durability="fsync"}"#),
        Some(0.0)
    );

    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    let (_, body) = get(http, "/metrics", None).await;
    assert_eq!(
        sample(&body, &format!("sluice_keyspace_buffered_entries{ks}")),
        Some(0.0)
    );
    assert!(sample(&body, &format!("sluice_keyspace_rows_stored_total{ks}")).unwrap_or(0.0) >= 5.0);
    server.stop().await;
}

/// The series of one histogram: `_count` and the `+Inf` bucket agree, and buckets only grow.
fn histogram_count(body: &str, name: &str, labels: &str) -> f64 {
    let count = sample(body, &format!("{name}_count{labels}"))
        .unwrap_or_else(|| panic!("no {name}_count{labels}:\n{body}"));
    let open = labels
        .strip_suffix('}')
        .map_or("{".to_string(), |l| format!("{l},"));
    let buckets: Vec<f64> = body
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{open}le=")))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect();
    assert!(
        buckets.windows(2).all(|w| w[0] <= w[1]),
        "{name}: {buckets:?}"
    );
    assert_eq!(buckets.last(), Some(&count), "{name}: +Inf is the count");
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_commands_by_outcome_errors_and_latency_histograms() {
    let config = with_metrics(
        r#"
[[keyspace]]
name = "price"
keys = "price:{id}"
table = "prices"
key_column = "id"
value_column = "price"
policy = "write-through"
"#,
    );
    let server = common::TestServer::start_config_with_sql(
        config,
        "CREATE TABLE prices (id TEXT PRIMARY KEY, price TEXT)",
    )
    .await;
    let http = server.http_addr.expect("metrics listener");
    let mut c = server.client().await;
    assert_eq!(c.run("SET k v").await, b"+OK\r\n");
    assert_eq!(c.run("SET price:1 7.50").await, b"+OK\r\n");
    c.run("GET k").await;
    c.run("GET").await;
    c.run("INCR k").await;
    c.run("CONFIG NOSUCH").await;
    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    let (status, body) = get(http, "/metrics", None).await;
    assert_eq!(status, 200, "{body}");
    let commands = |command: &str, outcome: &str| {
        sample(
            &body,
            &format!(r#"sluice_commands_total{{command="{command}",outcome="{outcome}"}}"#),
        )
    };
    assert_eq!(commands("set", "ok"), Some(2.0), "{body}");
    assert_eq!(commands("get", "ok"), Some(1.0));
    assert_eq!(commands("get", "rejected"), Some(1.0));
    assert_eq!(commands("incr", "failed"), Some(1.0));
    assert_eq!(commands("sluice.flush", "ok"), Some(1.0));
    assert_eq!(
        commands("incr", "ok"),
        None,
        "no series for what never happened"
    );
    assert_eq!(
        sample(&body, r#"sluice_errors_total{class="ERR"}"#),
        Some(3.0)
    );
    assert!(
        histogram_count(
            &body,
            "sluice_command_duration_seconds",
            r#"{family="string"}"#
        ) >= 4.0
    );
    let ks = r#"{keyspace="default",policy="write-back"}"#;
    assert!(histogram_count(&body, "sluice_keyspace_flush_duration_seconds", ks) >= 1.0);
    assert!(histogram_count(&body, "sluice_keyspace_flush_batch_entries", ks) >= 1.0);
    assert!(histogram_count(&body, "sluice_store_commit_duration_seconds", "") >= 1.0);
    assert!(histogram_count(&body, "sluice_store_commit_writes", "") >= 1.0);
    assert!(histogram_count(&body, "sluice_journal_fsync_duration_seconds", "") >= 1.0);
    assert!(histogram_count(&body, "sluice_journal_writes_per_fsync", "") >= 1.0);
    assert!(
        body.contains("# TYPE sluice_journal_fsync_duration_seconds histogram"),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_answer_json_and_unknown_paths_are_404() {
    let server = TestServer::start_config(with_metrics("")).await;
    let http = server.http_addr.expect("metrics listener");
    let (status, body) = get(http, "/healthz", None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, body) = get(http, "/readyz", None).await;
    assert_eq!(status, 200, "{body}");
    let ready: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["checks"]["store"]["ok"], true);
    assert_eq!(ready["checks"]["journal"]["durability"], "fsync");
    let (status, body) = get(http, "/nope", None).await;
    assert_eq!(status, 404);
    assert!(body.contains("/metrics"), "{body}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_password_metrics_need_an_acl_users_credentials_and_probes_do_not() {
    let server = TestServer::start_config(with_metrics("[server]\nrequirepass = \"pw\"\n")).await;
    let http = server.http_addr.expect("metrics listener");
    assert_eq!(get(http, "/metrics", None).await.0, 401);
    assert_eq!(
        get(http, "/metrics", Some(("default", "wrong"))).await.0,
        401
    );
    let (status, body) = get(http, "/metrics", Some(("default", "pw"))).await;
    assert_eq!(status, 200);
    assert!(body.contains("sluice_keyspace_writes_total"), "{body}");
    assert_eq!(get(http, "/healthz", None).await.0, 200);
    assert_eq!(get(http, "/readyz", None).await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_beyond_loopback_without_a_password_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        FileConfig::from_toml("[metrics]\nlisten = \"0.0.0.0:0\"\n").expect("config parses");
    config.server.port = 0;
    config.engine.data_dir = dir.path().to_path_buf();
    let sluice = Sluice::open(config.engine).await.expect("open");
    let err = match Server::bind(sluice.clone(), config.server).await {
        Ok(_) => panic!("started with metrics on 0.0.0.0 and no password"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("protected mode"), "{err}");
    sluice.shutdown().await;
}

/// Kills the Prometheus server when the test ends, passed or not.
struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_keyspace_series() {
    let Ok(binary) = std::env::var("SLUICE_TEST_PROMETHEUS_BIN") else {
        eprintln!("skipped: set SLUICE_TEST_PROMETHEUS_BIN (e.g. /usr/bin/prometheus)");
        return;
    };
    let server = TestServer::start_config(with_metrics("")).await;
    let http = server.http_addr.expect("metrics listener");
    let mut c = server.client().await;
    for i in 0..7 {
        assert_eq!(c.run(&format!("SET k{i} v")).await, b"+OK\r\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{http}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Prometheus(
        Command::new(&binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start prometheus"),
    );
    let api: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = Instant::now() + Duration::from_secs(60);
    let series = loop {
        if let Ok(Ok(mut s)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(api)).await
        {
            let _ = s.shutdown().await;
            let (status, body) = get(
                api,
                "/api/v1/query?query=sluice_keyspace_writes_total",
                None,
            )
            .await;
            if status == 200 {
                let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON");
                if let Some(first) = reply["data"]["result"].as_array().and_then(|r| r.first()) {
                    break first.clone();
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus never had the series; its log:\n{}",
            std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(series["metric"]["keyspace"], "default", "{series}");
    assert_eq!(series["metric"]["policy"], "write-back", "{series}");
    assert_eq!(series["metric"]["job"], "sluice", "{series}");
    assert_eq!(series["value"][1], "7", "{series}");
    // The histograms, written as text beside the recorder's output, parse too.
    let (status, body) = get(
        api,
        "/api/v1/query?query=sluice_journal_fsync_duration_seconds_count",
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let reply: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let fsyncs = &reply["data"]["result"][0]["value"][1];
    assert!(
        fsyncs.as_str().and_then(|n| n.parse::<u64>().ok()) >= Some(1),
        "{reply}"
    );
    server.stop().await;
}
