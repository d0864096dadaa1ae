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

use common::{http_get as get, TestServer};
use sluice::Sluice;
use sluice_server::config::FileConfig;
use sluice_server::Server;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

fn with_metrics(text: &str) -> FileConfig {
    FileConfig::from_toml(&format!("[metrics]\nlisten = \"127.0.0.1:0\"\n{text}")).unwrap()
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

/// Kills a child process (Prometheus, chromedriver) when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
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
    let _prometheus = KillOnDrop(
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

// ---------------------------------------------------------------------------------------------
// The status page (`/`, `/status.json`) and its dead-letter actions

/// A products table whose CHECK constraint refuses a negative price: a write-back write of
/// one is acknowledged, then refused at the flush and parked as a dead letter.
const PRODUCTS_CHECKED: &str = "CREATE TABLE products (id INTEGER PRIMARY KEY, \
     price NUMERIC CHECK (price >= 0));
     INSERT INTO products (id, price) VALUES (1, 10);";

/// A write-back keyspace on the products table, and the built-in one (write-back too).
const PRICE_KEYSPACES: &str = r#"
[[keyspace]]
name = "price"
keys = "product:{id}:price"
table = "products"
key_column = "id"
value_column = "price"
policy = "write-back"

[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
"#;

/// Starts a server with the status page, `server_section` (the `[server]` table's lines and
/// any `[[user]]`), the price keyspaces and a dead letter for `product:1:price`.
async fn server_with_a_dead_letter(server_section: &str) -> TestServer {
    let server = TestServer::start_config_with_sql(
        with_metrics(&format!("{server_section}\n{PRICE_KEYSPACES}")),
        PRODUCTS_CHECKED,
    )
    .await;
    let mut c = server.client().await;
    if server.shared.users.auth_required() {
        assert_eq!(c.run("AUTH pw").await, b"+OK\r\n");
    }
    assert_eq!(c.run("SET product:1:price -5").await, b"+OK\r\n");
    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    assert_eq!(dead_letter_count(&mut c).await, 1);
    server
}

/// How many dead letters SLUICE.DEADLETTERS lists.
async fn dead_letter_count(c: &mut common::RawClient) -> usize {
    let reply = c.run("SLUICE.DEADLETTERS").await;
    let text = String::from_utf8_lossy(&reply);
    text.strip_prefix('*')
        .and_then(|rest| rest.split("\r\n").next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not an array: {text:?}"))
}

/// `product:1:price` as the drop action names it: the key's bytes in hex.
const DROP_PRICE_1: &str = "/deadletters/drop?db=0&key=70726f647563743a313a7072696365";
const ACTION: (&str, &str) = ("X-Sluice-Action", "1");
/// Every dead letter of the price keyspace, retried.
const RETRY_PRICE: &str = "/deadletters/retry?keyspace=price";

/// A POST to an action, with the action header the page sends.
async fn act(addr: SocketAddr, path: &str, basic_auth: Option<(&str, &str)>) -> (u16, String) {
    common::http_request(addr, "POST", path, basic_auth, &[ACTION]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_json_shows_keyspaces_dead_letters_and_a_growing_history() {
    let server = server_with_a_dead_letter("").await;
    let http = server.http_addr.expect("metrics listener");
    let mut c = server.client().await;
    assert_eq!(c.run("SET other 1").await, b"+OK\r\n");
    assert_eq!(c.run("GET other").await, b"$1\r\n1\r\n");

    let (status, page) = get(http, "/", None).await;
    assert_eq!(status, 200);
    assert!(page.starts_with("<!doctype html>"), "{page}");
    assert!(page.contains(r#"<tr data-keyspace="price">"#), "{page}");
    assert!(page.contains("setInterval(refresh, 1000)"), "{page}");
    assert!(
        !page.contains("src=\"http") && !page.contains("href=\"http"),
        "nothing is loaded from elsewhere"
    );

    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let (code, body) = get(http, "/status.json", None).await;
        assert_eq!(code, 200, "{body}");
        let status: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        if status["history"].as_array().is_some_and(|h| h.len() >= 2) {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the history never grew: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let keyspaces = status["keyspaces"].as_array().expect("keyspaces");
    let price = &keyspaces[0];
    assert_eq!(price["name"], "price");
    assert_eq!(price["policy"], "write-back");
    assert_eq!(price["table"], "products.price");
    assert_eq!(price["dead_letters"], 1);
    let builtin = &keyspaces[1];
    assert_eq!(builtin["name"], "default");
    assert_eq!(builtin["writes"], 1);
    assert_eq!(
        builtin["read_hits"], 1,
        "GET other found the buffered write"
    );
    assert_eq!(builtin["hit_rate"], 1.0);
    assert_eq!(status["dead_letters_total"], 1);
    let letter = &status["dead_letters"][0];
    assert_eq!(letter["keyspace"], "price");
    assert_eq!(letter["key"], "product:1:price");
    assert_eq!(letter["key_hex"], "70726f647563743a313a7072696365");
    assert!(
        letter["error"]
            .as_str()
            .is_some_and(|e| e.to_ascii_lowercase().contains("check")),
        "{letter}"
    );
    let sample = &status["history"][0];
    for field in [
        "t",
        "oldest_unflushed_ms",
        "buffered",
        "writes_per_s",
        "rows_stored_per_s",
    ] {
        assert!(sample[field].is_number(), "{field} in {sample}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_password_the_dead_letter_actions_are_refused() {
    let server = server_with_a_dead_letter("").await;
    let http = server.http_addr.expect("metrics listener");
    let (status, body) = act(http, DROP_PRICE_1, None).await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("requirepass"), "{body}");
    let (status, _) = act(http, RETRY_PRICE, Some(("default", "anything"))).await;
    assert_eq!(status, 403, "a nopass user's credentials prove nothing");
    let mut c = server.client().await;
    assert_eq!(dead_letter_count(&mut c).await, 1, "still parked");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_actions_need_the_action_header_and_an_admin() {
    let server = server_with_a_dead_letter(
        "[server]\nrequirepass = \"pw\"\n[[user]]\nname = \"reader\"\npassword = \"readpw\"\ncommands = [\"read\"]\n",
    )
    .await;
    let http = server.http_addr.expect("metrics listener");
    let post = |auth, headers: &'static [(&'static str, &'static str)]| {
        common::http_request(http, "POST", DROP_PRICE_1, auth, headers)
    };
    assert_eq!(get(http, "/", None).await.0, 401, "reading needs a login");
    assert_eq!(get(http, "/status.json", None).await.0, 401);
    assert_eq!(get(http, "/", Some(("reader", "readpw"))).await.0, 200);

    let (status, body) = post(Some(("default", "pw")), &[]).await;
    assert_eq!(
        status, 403,
        "no action header (what a cross-site form sends): {body}"
    );
    assert!(body.contains("X-Sluice-Action"), "{body}");
    assert_eq!(post(None, &[ACTION]).await.0, 401);
    assert_eq!(post(Some(("default", "wrong")), &[ACTION]).await.0, 401);
    let (status, body) = post(Some(("reader", "readpw")), &[ACTION]).await;
    assert_eq!(status, 403, "reader may not run @admin: {body}");
    assert_eq!(
        get(http, "/deadletters/drop", Some(("default", "pw")))
            .await
            .0,
        404,
        "a GET (a link, an image) never acts"
    );
    let mut c = server.client().await;
    assert_eq!(c.run("AUTH pw").await, b"+OK\r\n");
    assert_eq!(dead_letter_count(&mut c).await, 1, "nothing dropped so far");

    // A whole keyspace's retry: written again, refused again at the flush.
    let (status, body) = act(http, RETRY_PRICE, Some(("default", "pw"))).await;
    assert_eq!((status, body.as_str()), (200, "retried 1\n"));
    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    assert_eq!(dead_letter_count(&mut c).await, 1, "parked again");

    let (status, body) = post(Some(("default", "pw")), &[ACTION]).await;
    assert_eq!((status, body.as_str()), (200, "dropped 1\n"));
    assert_eq!(dead_letter_count(&mut c).await, 0);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The status page in a real browser: headless Chromium driven through chromedriver (WebDriver)

/// Starts chromedriver on a free port and opens a session in headless `chromium`.
async fn headless_chromium(
    chromium: &str,
    log_dir: &std::path::Path,
) -> (KillOnDrop, fantoccini::Client) {
    let driver_binary = std::env::var("SLUICE_TEST_CHROMEDRIVER_BIN")
        .unwrap_or_else(|_| "/usr/bin/chromedriver".to_string());
    let port = free_port();
    let log = std::fs::File::create(log_dir.join("chromedriver.log")).expect("log file");
    let driver = KillOnDrop(
        Command::new(&driver_binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {driver_binary}: {e}")),
    );
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".to_string(),
        serde_json::json!({
            "binary": chromium,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1100", "--hide-scrollbars"],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match fantoccini::ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
        {
            Ok(client) => break client,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "no WebDriver session: {e}; chromedriver's log:\n{}",
                    std::fs::read_to_string(log_dir.join("chromedriver.log")).unwrap_or_default()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    (driver, client)
}

/// Runs `script` in the page until it returns something other than `null` or `false`.
async fn until_page(browser: &fantoccini::Client, what: &str, script: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = browser.execute(script, vec![]).await.expect("script runs");
        if !got.is_null() && got != serde_json::Value::Bool(false) {
            return got;
        }
        assert!(Instant::now() < deadline, "the page never showed {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Clicks the button `css` selects (once the page shows it) and returns what the page then
/// says of the action.
async fn click_for_outcome(browser: &fantoccini::Client, css: &str) -> String {
    browser
        .execute(
            "document.getElementById('action-result').textContent = ''",
            vec![],
        )
        .await
        .expect("clear the last outcome");
    browser
        .wait()
        .for_element(fantoccini::Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
    let outcome = until_page(
        browser,
        "the action's outcome",
        "const r = document.getElementById('action-result').textContent; return r === '' ? null : r",
    )
    .await;
    outcome.as_str().unwrap_or_default().to_string()
}

/// A cell of a keyspace's row, as the page shows it now.
fn cell(keyspace: &str, field: &str) -> String {
    format!(
        "return document.querySelector('#keyspaces tr[data-keyspace=\"{keyspace}\"] td[data-field=\"{field}\"]')?.textContent ?? null"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_page_in_headless_chromium_shows_live_figures_and_guards_its_buttons() {
    let Ok(chromium) = std::env::var("SLUICE_TEST_CHROMIUM_BIN") else {
        eprintln!("skipped: set SLUICE_TEST_CHROMIUM_BIN (e.g. /usr/bin/chromium; chromedriver from SLUICE_TEST_CHROMEDRIVER_BIN, default /usr/bin/chromedriver)");
        return;
    };
    let out_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page");
    std::fs::create_dir_all(&out_dir).expect("output dir");
    let server =
        TestServer::start_config_with_sql(with_metrics(PRICE_KEYSPACES), PRODUCTS_CHECKED).await;
    let http = server.http_addr.expect("metrics listener");
    let (_driver, browser) = headless_chromium(&chromium, &out_dir).await;

    // The keyspaces, as rendered by the server.
    browser
        .goto(&format!("http://{http}/"))
        .await
        .expect("load the page");
    assert_eq!(browser.title().await.expect("title"), "Sluice status");
    assert_eq!(
        until_page(&browser, "the price keyspace", &cell("price", "policy")).await,
        "write-back"
    );
    assert_eq!(
        until_page(&browser, "its table", &cell("price", "table")).await,
        "products.price"
    );
    assert_eq!(
        until_page(&browser, "the default keyspace", &cell("default", "table")).await,
        "sluice_kv"
    );

    // Writes through RESP, a second apart so the chart has a shape: the figures and the
    // throughput chart follow.
    let mut c = server.client().await;
    let burst = |round: u64| 10 + (round * 37) % 90;
    for round in 0..10 {
        for i in 0..burst(round) {
            assert_eq!(c.run(&format!("SET item:{round}:{i} v")).await, b"+OK\r\n");
        }
        assert_eq!(c.run("GET item:0:0").await, b"$1\r\nv\r\n");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let writes: u64 = (0..10).map(burst).sum();
    until_page(
        &browser,
        "every write in the default keyspace's row",
        &format!("return document.querySelector('#keyspaces tr[data-keyspace=\"default\"] td[data-field=\"writes\"]')?.textContent === '{writes}'"),
    )
    .await;
    until_page(
        &browser,
        "writes in the throughput chart",
        "const c = document.getElementById('throughput-chart'); return Number(c.dataset.samples) >= 3 && Number(c.dataset.peakWrites) > 0",
    )
    .await;
    let hit_rate = until_page(&browser, "a hit rate", &cell("default", "hit_rate")).await;
    assert_eq!(
        hit_rate, "100.0%",
        "every GET found its write in the buffer"
    );

    // A dead letter: the database's CHECK constraint refuses a negative price at the flush.
    assert_eq!(c.run("SET product:1:price -5").await, b"+OK\r\n");
    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    let listed = until_page(
        &browser,
        "the dead letter",
        "return document.querySelector('#dead-letters tr.dead-letter[data-key=\"product:1:price\"] td.error')?.textContent ?? null",
    )
    .await;
    assert!(
        listed
            .as_str()
            .is_some_and(|e| e.to_ascii_lowercase().contains("check")),
        "{listed}"
    );
    assert_eq!(
        until_page(
            &browser,
            "the dead letter count",
            &cell("price", "dead_letters")
        )
        .await,
        "1"
    );

    // With no password set, a click on Drop is refused and the dead letter stays.
    let drop = "#dead-letters tr.dead-letter[data-key=\"product:1:price\"] button.drop";
    let refusal = click_for_outcome(&browser, drop).await;
    assert!(
        refusal.contains("403") && refusal.contains("requirepass"),
        "{refusal}"
    );
    assert_eq!(
        dead_letter_count(&mut c).await,
        1,
        "an unauthenticated click dropped nothing"
    );

    let screenshot = browser.screenshot().await.expect("screenshot");
    std::fs::write(out_dir.join("status-page.png"), &screenshot).expect("save the screenshot");
    if std::env::var_os("SLUICE_UPDATE_DOCS_SCREENSHOT").is_some() {
        let docs =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/status-page.png");
        std::fs::write(docs, &screenshot).expect("save the README's screenshot");
    }

    // With a password set, the same click as the `default` user (allowed @admin) drops it.
    assert_eq!(c.run("CONFIG SET requirepass pw").await, b"+OK\r\n");
    browser
        .goto(&format!("http://default:pw@{http}/"))
        .await
        .expect("load the page logged in");
    assert_eq!(click_for_outcome(&browser, drop).await, "dropped 1");
    assert_eq!(dead_letter_count(&mut c).await, 0);
    until_page(
        &browser,
        "no dead letters",
        "return document.querySelector('#dead-letters tr.dead-letter') === null",
    )
    .await;
    browser.close().await.expect("close the browser");
    server.stop().await;
}

/// On PostgreSQL the store's connection pool is a series: its bound, open and idle connections
/// and waiting callers. Needs `SLUICE_TEST_POSTGRES_URL`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_show_the_postgres_pool() {
    let url = match std::env::var("SLUICE_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!("skipped: SLUICE_TEST_POSTGRES_URL not set");
            return;
        }
    };
    let server =
        TestServer::start_config(with_metrics(&format!("[store]\nurl = \"{url}\"\n"))).await;
    let http = server.http_addr.expect("metrics listener");
    let mut c = server.client().await;
    assert_eq!(c.run("SET metrics:pool v").await, b"+OK\r\n");
    assert_eq!(c.run("SLUICE.FLUSH").await, b"+OK\r\n");
    let (_, body) = get(http, "/metrics", None).await;
    let max = sample(&body, "sluice_store_pool_max_connections").expect("pool bound");
    let open = sample(&body, "sluice_store_pool_open_connections").expect("open connections");
    let idle = sample(&body, "sluice_store_pool_idle_connections").expect("idle connections");
    assert!(max >= 1.0 && open >= 1.0 && open <= max, "{body}");
    assert!(idle <= open, "{body}");
    assert_eq!(sample(&body, "sluice_store_pool_waiting"), Some(0.0));
    // Nothing was journaled before this open.
    assert_eq!(sample(&body, "sluice_journal_replay_records"), Some(0.0));
    server.stop().await;
}
