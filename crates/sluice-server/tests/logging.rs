//! The server's log, as an operator reads it from a file, a pipe or a log shipper:
//! - written to a pipe, text lines hold no ANSI colour escapes;
//! - `--log-format json` (or `[server] log_format = "json"`) writes one JSON object per line;
//! - `[server] log_level` picks the lines, `RUST_LOG` overrides it, and a level that does not
//!   parse stops start-up with an error naming the setting.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// `sluice serve` on a free port with stderr piped; `args` and `rust_log` as given.
fn spawn(dir: &Path, config: &str, args: &[&str], rust_log: Option<&str>) -> (Child, u16) {
    let port = free_port();
    let config_path = dir.join("sluice.toml");
    std::fs::write(&config_path, config).expect("write config");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.arg("serve")
        .arg("--config")
        .arg(&config_path)
        .arg("--port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    if let Some(directives) = rust_log {
        cmd.env("RUST_LOG", directives);
    }
    (cmd.spawn().expect("spawn sluice"), port)
}

/// Waits until the server answers on its port, stops it, and returns its stderr lines.
fn run_until_ready_then_stop(mut child: Child, port: u16) -> Vec<String> {
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "sluice exited with {status}: {:?}",
                rx.try_iter().collect::<Vec<_>>()
            );
        }
        assert!(Instant::now() < deadline, "sluice did not start");
        thread::sleep(Duration::from_millis(50));
    }
    // SIGTERM drains and logs the shutdown too.
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let _ = child.wait();
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        lines.push(line);
    }
    lines
}

#[test]
fn text_log_written_to_a_pipe_has_no_ansi_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn(dir.path(), "", &[], None);
    let lines = run_until_ready_then_stop(child, port);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(" INFO ") && l.contains("listening on")),
        "the start-up line is logged at info by default: {lines:?}"
    );
    for line in &lines {
        assert!(!line.contains('\u{1b}'), "an ANSI escape in {line:?}");
    }
}

fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l:?}")))
        .collect()
}

fn messages_at(events: &[serde_json::Value], level: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["level"] == level)
        .filter_map(|e| e["fields"]["message"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn log_format_json_flag_writes_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn(dir.path(), "", &["--log-format", "json"], None);
    let events = json_lines(&run_until_ready_then_stop(child, port));
    let info = messages_at(&events, "INFO");
    assert!(
        info.iter().any(|m| m.contains("listening on")),
        "the start-up line: {events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["timestamp"].is_string() && e["target"].is_string()),
        "every line has a timestamp and a target: {events:?}"
    );
}

#[test]
fn configured_format_and_level_apply_and_rust_log_overrides_the_level() {
    let config = "[server]\nlog_format = \"json\"\nlog_level = \"warn\"\n";
    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn(dir.path(), config, &[], None);
    let events = json_lines(&run_until_ready_then_stop(child, port));
    assert!(
        messages_at(&events, "INFO").is_empty(),
        "log_level = warn drops info lines: {events:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn(dir.path(), config, &[], Some("info"));
    let events = json_lines(&run_until_ready_then_stop(child, port));
    assert!(
        messages_at(&events, "INFO")
            .iter()
            .any(|m| m.contains("listening on")),
        "RUST_LOG=info overrides log_level: {events:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let (child, port) = spawn(dir.path(), config, &["--log-format", "text"], None);
    let lines = run_until_ready_then_stop(child, port);
    assert!(
        lines.iter().all(|l| !l.starts_with('{')),
        "--log-format overrides the file: {lines:?}"
    );
}

#[test]
fn a_log_level_that_does_not_parse_stops_start_up_naming_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let (child, _) = spawn(dir.path(), "[server]\nlog_level = \"loud\"\n", &[], None);
    let out = child.wait_with_output().expect("wait");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("server.log_level") && stderr.contains("use a level"),
        "{stderr}"
    );
}
