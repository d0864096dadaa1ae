//! The write-back journal on NATS JetStream (`[cluster]`), with the real `sluice` binary and
//! real nats-server processes.
//!
//! - `jetstream_journal_survives_sigkill_and_a_lost_data_dir`: writers SET their own keys
//!   under write-back (no flush runs: the flush interval is an hour); Sluice is SIGKILLed at a
//!   random moment, its data directory deleted, and a new process on an empty directory must
//!   read back every acknowledged write (of an unanswered one, the old or the new value), then
//!   store them all.
//! - `r3_stream_keeps_acknowledged_writes_when_a_nats_server_dies`: a 3-server NATS cluster
//!   started by the test, an R3 stream; one NATS server is SIGKILLed under load, writes keep
//!   being acknowledged, and after Sluice is SIGKILLed too (data directory deleted) every
//!   acknowledged write is there.
//! - `checkpoints_purge_stored_records_and_keep_the_sequence`: after a flush the stream holds
//!   none of the stored records, and a restart numbers new writes above the old ones.
//! - On PostgreSQL (`SLUICE_TEST_POSTGRES_URL`, a database of the test's own, dropped at the
//!   end): a dead node's journal taken over and stored by a survivor (SIGKILL), a frozen node
//!   (SIGSTOP past its lease) fenced, a taken-over write the database refuses made a dead
//!   letter, a node outside the cluster's journal refused the cluster's database, and the
//!   database cut off from three nodes for 10 s under load.
//!
//! The R3 test needs `nats-server` on the PATH (or `/usr/sbin/nats-server`) and nothing else;
//! the others need `SLUICE_TEST_NATS_URL` (a nats-server with JetStream), and those that
//! start a 3-server NATS cluster when `nats-server` is installed run on that shared server
//! with an R1 stream otherwise. Each test uses a stream and subject of its own and deletes
//! the stream at the end.

use std::collections::BTreeMap;
use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use sql_e2e::{pg_upstream_and_proxied_url, pg_url_with_database, Proxy, ProxyMode};

mod resp_reply;
mod sql_e2e;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

fn nats_url() -> Option<String> {
    match std::env::var("SLUICE_TEST_NATS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: SLUICE_TEST_NATS_URL is not set (a nats-server with -js)");
            None
        }
    }
}

fn nats_server_bin() -> Option<PathBuf> {
    for candidate in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if Path::new(candidate).exists() {
            return Some(PathBuf::from(candidate));
        }
    }
    let found = Command::new("sh")
        .args(["-c", "command -v nats-server"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim().to_string()));
    if found.is_none() {
        eprintln!("skipped: nats-server is not installed");
    }
    found
}

/// A name no other run uses: streams and subjects of the shared NATS server stay apart.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{prefix}{}x{nanos}", std::process::id())
}

/// One `sluice serve`; SIGKILLed on drop.
struct Sluice {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Sluice {
    fn start(dir: &Path, data: &Path, config: &str) -> Sluice {
        for attempt in 0.. {
            match Sluice::start_on(dir, data, config, free_port()) {
                Ok(sluice) => return sluice,
                Err(log) if log.contains("cannot listen") && attempt < 4 => continue,
                Err(log) => panic!("sluice did not start:\n{log}"),
            }
        }
        unreachable!()
    }

    /// Starts `sluice serve` on `port`; its log if it did not answer PING.
    fn start_on(dir: &Path, data: &Path, config: &str, port: u16) -> Result<Sluice, String> {
        let config_path = dir.join("sluice.toml");
        std::fs::write(&config_path, config).expect("write config");
        {
            let log = dir.join(format!("sluice-{port}.log"));
            let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
                .arg("serve")
                .arg("--port")
                .arg(port.to_string())
                .arg("--data-dir")
                .arg(data)
                .arg("--config")
                .arg(&config_path)
                .env("RUST_LOG", "info")
                .env("NO_COLOR", "1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(&log).expect("create log"))
                .spawn()
                .expect("spawn sluice");
            let mut sluice = Sluice { child, port, log };
            sluice.wait_ready().map(|()| sluice)
        }
    }

    /// Starts `sluice serve` expecting it to refuse to start: returns its log once it exited
    /// with an error; panics if it answers PING instead, or neither within 60 s.
    fn refused(dir: &Path, data: &Path, config: &str) -> String {
        let config_path = dir.join("refused.toml");
        std::fs::write(&config_path, config).expect("write config");
        let log = dir.join("refused.log");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data)
            .arg("--config")
            .arg(&config_path)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create log"))
            .spawn()
            .expect("spawn sluice");
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Ok(Some(status)) = child.try_wait() {
                break status;
            }
            let answered = redis::Client::open(format!("redis://127.0.0.1:{port}/"))
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if answered || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("sluice started instead of refusing (or hung for 60 s):\n{log}");
            }
            thread::sleep(Duration::from_millis(50));
        };
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            !status.success(),
            "sluice exited cleanly instead of refusing:\n{log}"
        );
        log
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            if let Ok(mut c) = self.try_connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                self.kill();
                return Err(format!("no PONG within 60 s; log:\n{}", self.log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn try_connection(&self) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://127.0.0.1:{}/", self.port))?;
        let c = client.get_connection_with_timeout(Duration::from_secs(5))?;
        c.set_read_timeout(Some(Duration::from_secs(60)))?;
        Ok(c)
    }

    fn connection(&self) -> redis::Connection {
        self.try_connection().expect("connect to sluice")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        self.kill();
    }
}

fn config(
    store: &str,
    node: &str,
    urls: &[String],
    stream: &str,
    subject: &str,
    lease: &str,
) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
    format!(
        r#"
[store]
url = "{store}"

[cluster]
node_name = "{node}"
nats_urls = [{urls}]
journal_stream = "{stream}"
journal_subject = "{subject}"
replicas = {replicas}
publish_timeout = "30s"
node_lease = "{lease}"

[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
flush_interval = "1h"
"#,
        lease = lease,
        urls = urls.join(", "),
        replicas = if urls.len() >= 3 { 3 } else { 1 },
    )
}

/// What the writers know: per key, the last acknowledged value and the one in flight.
#[derive(Default)]
struct Ledger {
    acked: BTreeMap<String, u64>,
    in_flight: BTreeMap<String, u64>,
    errors: Vec<String>,
    /// Replies received: a measure of progress.
    acks: u64,
}

/// Writers each SET their own keys with rising values until `stop`; every reply recorded.
fn run_writers(
    port: u16,
    prefix: &str,
    writers: usize,
    keys_per_writer: usize,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
    seed: u64,
) -> Vec<thread::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let stop = stop.clone();
            let ledger = ledger.clone();
            let prefix = prefix.to_string();
            thread::spawn(move || {
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ w as u64);
                let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
                    return;
                };
                let Ok(mut c) = client.get_connection() else {
                    return;
                };
                let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
                let mut counter = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("{prefix}w{w}:k{}", rng.gen_range(0..keys_per_writer));
                    counter += 1;
                    ledger
                        .lock()
                        .expect("ledger")
                        .in_flight
                        .insert(key.clone(), counter);
                    let reply: redis::RedisResult<String> = redis::cmd("SET")
                        .arg(&key)
                        .arg(counter.to_string())
                        .query(&mut c);
                    let mut l = ledger.lock().expect("ledger");
                    match reply {
                        Ok(_) => {
                            l.acks += 1;
                            l.in_flight.remove(&key);
                            l.acked.insert(key, counter);
                        }
                        // The connection died with the server: the write stays in flight.
                        Err(e) if e.is_io_error() || e.is_connection_dropped() => return,
                        Err(e) => {
                            l.in_flight.remove(&key);
                            l.errors.push(format!("SET {key}: {e}"));
                        }
                    }
                }
            })
        })
        .collect()
}

/// Every acknowledged write reads back (or the write in flight after it), through GET and,
/// after SLUICE.FLUSH, in the store.
fn check_ledger(sluice: &Sluice, store: &Path, ledger: &Ledger) {
    let mut c = sluice.connection();
    for (key, &acked) in &ledger.acked {
        let got: Option<String> = redis::cmd("GET").arg(key).query(&mut c).expect("GET");
        let got: u64 = got
            .unwrap_or_else(|| panic!("{key}: acknowledged {acked}, now missing"))
            .parse()
            .expect("a counter");
        let in_flight = ledger.in_flight.get(key).copied();
        assert!(
            got == acked || Some(got) == in_flight,
            "{key}: acknowledged {acked} (in flight: {in_flight:?}), read {got}"
        );
    }
    let _: String = redis::cmd("SLUICE.FLUSH").query(&mut c).expect("flush");
    let db = rusqlite::Connection::open(store).expect("open the store");
    for (key, &acked) in &ledger.acked {
        let value: Vec<u8> = db
            .query_row(
                "SELECT value FROM sluice_kv WHERE db = 0 AND key = ?1",
                [key.as_bytes()],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{key} (acknowledged {acked}) is not in the store: {e}"));
        let stored: u64 = String::from_utf8_lossy(&value).parse().expect("a counter");
        let in_flight = ledger.in_flight.get(key).copied();
        assert!(
            stored == acked || Some(stored) == in_flight,
            "{key}: acknowledged {acked}, stored {stored}"
        );
    }
}

/// Deletes a test's stream (best effort: a leftover costs only disk on the test server).
fn delete_stream(url: &str, stream: &str) {
    let url = url.to_string();
    let stream = stream.to_string();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        if let Ok(client) = async_nats::connect(url).await {
            let js = async_nats::jetstream::new(client);
            let _ = js.delete_stream(&stream).await;
            let _ = js.delete_stream(format!("{stream}_NODES")).await;
        }
    });
}

/// A test's directory, store and configuration on the shared nats-server: a stream and
/// subject of its own, node `n1`, a 5 s claim on the name.
struct OnSharedServer {
    dir: tempfile::TempDir,
    store: PathBuf,
    stream: String,
    subject: String,
    text: String,
}

fn on_shared_server(url: &str, tag: &str) -> OnSharedServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    let stream = unique(&format!("SLUICE_{tag}_"));
    let subject = unique(&format!("sluice{}", tag.to_lowercase()));
    let text = config(
        &format!("sqlite://{}", store.display()),
        "n1",
        &[url.to_string()],
        &stream,
        &subject,
        "5s",
    );
    OnSharedServer {
        dir,
        store,
        stream,
        subject,
        text,
    }
}

#[test]
fn jetstream_journal_survives_sigkill_and_a_lost_data_dir() {
    let Some(url) = nats_url() else { return };
    let OnSharedServer {
        dir,
        store,
        stream,
        text,
        ..
    } = on_shared_server(&url, "T1");
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    for round in 0..3 {
        let data = dir.path().join(format!("data{round}"));
        let mut sluice = Sluice::start(dir.path(), &data, &text);
        if round > 0 {
            check_ledger(&sluice, &store, &ledger.lock().expect("ledger"));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let writers = run_writers(sluice.port, "", 4, 200, stop.clone(), ledger.clone(), seed);
        thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
        sluice.kill();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().expect("writer");
        }
        // The node's disk is gone: only the stream remembers.
        std::fs::remove_dir_all(&data).expect("delete the data dir");
        let l = ledger.lock().expect("ledger");
        assert!(l.errors.is_empty(), "writes failed: {:?}", l.errors);
        assert!(!l.acked.is_empty(), "no write was acknowledged");
    }
    let sluice = Sluice::start(dir.path(), &dir.path().join("last"), &text);
    check_ledger(&sluice, &store, &ledger.lock().expect("ledger"));
    drop(sluice);
    delete_stream(&url, &stream);
}

#[test]
fn checkpoints_purge_stored_records_and_keep_the_sequence() {
    let Some(url) = nats_url() else { return };
    let OnSharedServer {
        dir,
        stream,
        subject,
        text,
        ..
    } = on_shared_server(&url, "T2");
    let data = dir.path().join("data");
    let sluice = Sluice::start(dir.path(), &data, &text);
    let mut c = sluice.connection();
    for i in 0..500 {
        let _: String = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("first{i}"))
            .query(&mut c)
            .expect("SET");
    }
    let _: String = redis::cmd("SLUICE.FLUSH").query(&mut c).expect("flush");
    let pending = records_in_stream(&url, &stream, &format!("{subject}.n1.records"));
    assert_eq!(
        pending, 0,
        "the checkpoint after the flush left {pending} records messages"
    );
    drop(c);
    drop(sluice);
    // A new process on a new disk: nothing to replay, and the next writes must still be
    // numbered above the stored ones, or a later replay would skip them as stored.
    std::fs::remove_dir_all(&data).expect("delete the data dir");
    let mut sluice = Sluice::start(dir.path(), &data, &text);
    let mut c = sluice.connection();
    let got: Option<String> = redis::cmd("GET").arg("k7").query(&mut c).expect("GET");
    assert_eq!(got.as_deref(), Some("first7"));
    for i in 0..50 {
        let _: String = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("second{i}"))
            .query(&mut c)
            .expect("SET");
    }
    sluice.kill();
    std::fs::remove_dir_all(&data).expect("delete the data dir");
    let sluice = Sluice::start(dir.path(), &data, &text);
    let mut c = sluice.connection();
    for i in 0..50 {
        let got: Option<String> = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query(&mut c)
            .expect("GET");
        assert_eq!(got, Some(format!("second{i}")), "k{i} after the replay");
    }
    let got: Option<String> = redis::cmd("GET").arg("k70").query(&mut c).expect("GET");
    assert_eq!(got.as_deref(), Some("first70"));
    drop(c);
    drop(sluice);
    delete_stream(&url, &stream);
}

/// How many messages `subject` holds in `stream`.
fn records_in_stream(url: &str, stream: &str, subject: &str) -> u64 {
    let (url, stream, subject) = (url.to_string(), stream.to_string(), subject.to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let stream = js.get_stream(&stream).await.expect("the stream");
        let info = stream
            .info_with_subjects(subject.clone())
            .await
            .expect("stream info");
        use futures_util::StreamExt;
        let mut info = info;
        let mut total = 0;
        while let Some(entry) = info.next().await {
            let (name, count) = entry.expect("subject count");
            if name == subject {
                total += count as u64;
            }
        }
        total
    })
}

/// A nats-server of a 3-server cluster; SIGKILLed on drop.
struct NatsServer {
    child: Child,
    client_port: u16,
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_nats_cluster(bin: &Path, dir: &Path) -> Vec<NatsServer> {
    let client_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    (0..3)
        .map(|i| {
            let routes: Vec<String> = (0..3)
                .filter(|&j| j != i)
                .map(|j| format!("nats://127.0.0.1:{}", cluster_ports[j]))
                .collect();
            let store = dir.join(format!("nats{i}"));
            std::fs::create_dir_all(&store).expect("nats store dir");
            let child = Command::new(bin)
                .args(["-a", "127.0.0.1", "-p", &client_ports[i].to_string()])
                .args(["-n", &format!("sluice-test-{i}"), "-js", "-sd"])
                .arg(&store)
                .args(["--cluster_name", "sluice-test"])
                .args([
                    "--cluster",
                    &format!("nats://127.0.0.1:{}", cluster_ports[i]),
                ])
                .args(["--routes", &routes.join(",")])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(File::create(dir.join(format!("nats{i}.log"))).expect("nats log"))
                .spawn()
                .expect("spawn nats-server");
            NatsServer {
                child,
                client_port: client_ports[i],
            }
        })
        .collect()
}

/// Creates the R3 stream once the cluster has elected its JetStream meta leader.
fn create_r3_stream(urls: &[String], stream: &str, subject: &str) {
    let urls: Vec<async_nats::ServerAddr> = urls
        .iter()
        .map(|u| u.parse().expect("a NATS URL"))
        .collect();
    let (stream, subject) = (stream.to_string(), subject.to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let attempt = async {
                let client = async_nats::connect(urls.clone()).await?;
                let js = async_nats::jetstream::new(client);
                js.create_stream(async_nats::jetstream::stream::Config {
                    name: stream.clone(),
                    subjects: vec![format!("{subject}.>")],
                    num_replicas: 3,
                    duplicate_window: Duration::from_secs(120),
                    ..Default::default()
                })
                .await?;
                Ok::<(), async_nats::Error>(())
            };
            match attempt.await {
                Ok(()) => return,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("waiting for the NATS cluster: {e}");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                Err(e) => panic!("the NATS cluster never took an R3 stream: {e}"),
            }
        }
    });
}

#[test]
fn r3_stream_keeps_acknowledged_writes_when_a_nats_server_dies() {
    let Some(bin) = nats_server_bin() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut servers = start_nats_cluster(&bin, dir.path());
    let urls: Vec<String> = servers
        .iter()
        .map(|s| format!("nats://127.0.0.1:{}", s.client_port))
        .collect();
    let stream = "SLUICE_R3";
    let subject = "sluicer3";
    create_r3_stream(&urls, stream, subject);
    let store = dir.path().join("store.db");
    // Longer than a stream leader election (5-6 s here): the claim on the node name must
    // outlive the one the kill causes.
    let text = config(
        &format!("sqlite://{}", store.display()),
        "n1",
        &urls,
        stream,
        subject,
        "15s",
    );
    let data = dir.path().join("data");
    let mut sluice = Sluice::start(dir.path(), &data, &text);
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers = run_writers(sluice.port, "", 4, 300, stop.clone(), ledger.clone(), seed);
    thread::sleep(Duration::from_millis(800));
    let before = ledger.lock().expect("ledger").acked.len();
    let victim = (seed % 3) as usize;
    drop(servers.remove(victim));
    eprintln!("killed NATS server {victim}");
    // Writes go on: the stream keeps a quorum of two. They may pause while the stream (or
    // the cluster's meta leader) elects a new leader, a few seconds on nats-server 2.9.
    let acked_at_kill: u64 = count_acks(&ledger);
    let killed_at = Instant::now();
    let mut acked_after = acked_at_kill;
    while killed_at.elapsed() < Duration::from_secs(25) {
        thread::sleep(Duration::from_millis(250));
        acked_after = count_acks(&ledger);
        if acked_after > acked_at_kill + 200 {
            break;
        }
    }
    eprintln!("writes resumed {:?} after the kill", killed_at.elapsed());
    thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    {
        let l = ledger.lock().expect("ledger");
        assert!(l.errors.is_empty(), "writes failed: {:?}", l.errors);
        assert!(before > 0, "nothing was acknowledged before the kill");
    }
    assert!(
        acked_after > acked_at_kill + 200,
        "writes did not resume within 25 s after a NATS server died; log:\n{}",
        sluice.log()
    );
    sluice.kill();
    std::fs::remove_dir_all(&data).expect("delete the data dir");
    let sluice = Sluice::start(dir.path(), &data, &text);
    check_ledger(&sluice, &store, &ledger.lock().expect("ledger"));
}

fn count_acks(ledger: &Arc<Mutex<Ledger>>) -> u64 {
    ledger.lock().expect("ledger").acks
}

fn postgres_url() -> Option<String> {
    match std::env::var("SLUICE_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped: SLUICE_TEST_POSTGRES_URL is not set");
            None
        }
    }
}

/// What every cluster test on PostgreSQL starts with: the shared NATS server's URL, a
/// database of its own, a directory, and a stream and subject of its own. The stream is
/// deleted from the shared server at the end.
struct PgCluster {
    nats: String,
    /// Held for its drop, which drops the database.
    _database: PostgresDatabase,
    pg: String,
    dir: tempfile::TempDir,
    stream: String,
    subject: String,
}

/// `None` (the test is skipped, as it says) without NATS or PostgreSQL.
fn pg_cluster(tag: &str) -> Option<PgCluster> {
    let nats = nats_url()?;
    let database = postgres_database()?;
    Some(PgCluster {
        nats,
        pg: database.url.clone(),
        _database: database,
        dir: tempfile::tempdir().expect("tempdir"),
        stream: unique(&format!("SLUICE_{}_", tag.to_uppercase())),
        subject: unique(&format!("sluice{tag}")),
    })
}

impl PgCluster {
    /// The NATS URLs of a three-node test: a 3-server cluster started here (the servers
    /// returned run until dropped) with the test's stream made R3, when `nats-server` is
    /// installed; otherwise the shared server, where the nodes make an R1 stream.
    fn nats_for_nodes(&self) -> (Option<Vec<NatsServer>>, Vec<String>) {
        let servers = nats_server_bin().map(|bin| start_nats_cluster(&bin, self.dir.path()));
        let urls: Vec<String> = match &servers {
            Some(servers) => servers
                .iter()
                .map(|s| format!("nats://127.0.0.1:{}", s.client_port))
                .collect(),
            None => vec![self.nats.clone()],
        };
        if servers.is_some() {
            create_r3_stream(&urls, &self.stream, &self.subject);
        }
        (servers, urls)
    }
}

impl PgCluster {
    /// Starts node `name` in its own directory, its NATS URLs rotated by `first` (each node
    /// connects to a different server first), with the configuration `text` makes of them.
    fn start_node(
        &self,
        name: &str,
        urls: &[String],
        first: usize,
        text: impl FnOnce(&[String]) -> String,
    ) -> Sluice {
        let home = self.node_home(name);
        let mut mine = urls.to_vec();
        mine.rotate_left(first % urls.len());
        Sluice::start(&home, &home.join("data"), &text(&mine))
    }
}

impl PgCluster {
    /// The configuration of node `name` alone on NATS at `nats`, with the test's stream and
    /// a 3 s lease.
    fn one_node_config(&self, name: &str, nats: &str) -> String {
        config(
            &self.pg,
            name,
            &[nats.to_string()],
            &self.stream,
            &self.subject,
            "3s",
        )
    }

    /// The directory of node `name` (made if missing): its config, log and data live there.
    fn node_home(&self, name: &str) -> PathBuf {
        let home = self.dir.path().join(name);
        std::fs::create_dir_all(&home).expect("node dir");
        home
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        delete_stream(&self.nats, &self.stream);
    }
}

/// A database of the test's own on the server of `SLUICE_TEST_POSTGRES_URL`, dropped at the
/// end. A cluster's nodes record their stream in their store (`sluice_journal`), and a node
/// with the local journal refuses such a store: in the server's shared `test` database the
/// mark would refuse every other test's node.
struct PostgresDatabase {
    admin: String,
    name: String,
    url: String,
}

fn postgres_database() -> Option<PostgresDatabase> {
    let admin = postgres_url()?;
    let name = unique("sluice_cluster_");
    pg_execute(&admin, &format!("CREATE DATABASE {name}"));
    let url = pg_url_with_database(&admin, &name);
    Some(PostgresDatabase { admin, name, url })
}

impl Drop for PostgresDatabase {
    /// Never panics (it may run while a failed test unwinds): a database it cannot drop is
    /// named on stderr.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&self.admin, tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client.batch_execute(&sql).await
        });
        if let Err(e) = dropped {
            eprintln!("could not drop the test database {}: {e}", self.name);
        }
    }
}

/// The built-in table's keys starting with `prefix`, with their values, as PostgreSQL holds
/// them.
fn stored_in_postgres(url: &str, prefix: &str) -> BTreeMap<String, String> {
    let (runtime, client) = postgres(url);
    let rows = runtime
        .block_on(client.query(
            "SELECT key, value FROM sluice_kv WHERE db = 0 AND position($1::bytea in key) = 1",
            &[&prefix.as_bytes()],
        ))
        .expect("read sluice_kv");
    rows.iter()
        .map(|r| {
            let key: Vec<u8> = r.get(0);
            let value: Vec<u8> = r.get(1);
            (
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect()
}

/// A PostgreSQL client, and the runtime that drives it (`runtime.block_on(client...)`).
fn postgres(url: &str) -> (tokio::runtime::Runtime, tokio_postgres::Client) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let client = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to PostgreSQL");
        tokio::spawn(connection);
        client
    });
    (runtime, client)
}

/// What `ledger` misses in `stored`: keys absent, or holding neither the acknowledged value
/// nor the one in flight when the node died.
fn missing_from(stored: &BTreeMap<String, String>, ledger: &Ledger) -> Vec<String> {
    ledger
        .acked
        .iter()
        .filter(|(key, acked)| {
            let in_flight = ledger.in_flight.get(*key);
            match stored.get(*key).and_then(|v| v.parse::<u64>().ok()) {
                Some(v) => v != **acked && Some(&v) != in_flight,
                None => true,
            }
        })
        .map(|(key, acked)| format!("{key} (acknowledged {acked}, stored {:?})", stored.get(key)))
        .collect()
}

fn info_field(sluice: &Sluice, field: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("sluice")
        .query(&mut sluice.connection())
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("INFO has no {field}:\n{info}"))
}

/// Three nodes share PostgreSQL and an R3 JetStream stream on a 3-server NATS cluster, each
/// node connected to a different server first. Node n1 takes write-back writes (never
/// flushed: its flush interval is an hour) while n2 takes its own; then n1 is SIGKILLed, its
/// data directory deleted, and it does not come back. Within its claim's `node_lease` plus a
/// scan, exactly one of n2 and n3 takes its journal over: every write n1 acknowledged reaches
/// PostgreSQL, n1's journal subject is purged and its name is free. n2's own writes go on
/// meanwhile and are stored by n2. Without `nats-server` installed, the nodes share the
/// `SLUICE_TEST_NATS_URL` server and an R1 stream.
#[test]
fn a_dead_nodes_journal_is_stored_by_a_surviving_node() {
    let Some(test) = pg_cluster("adopt") else {
        return;
    };
    let PgCluster {
        pg,
        dir,
        stream,
        subject,
        ..
    } = &test;
    let prefix = unique("adopt");
    let table = through_table(pg, "adopt");
    let (_nats, urls) = test.nats_for_nodes();
    let url = urls[0].clone();
    let node = |name: &str, first: usize| {
        test.start_node(name, &urls, first, |mine| {
            with_through_keyspace(&config(pg, name, mine, stream, subject, "3s"), &table)
        })
    };
    let mut n1 = node("n1", 0);
    let n2 = node("n2", 1);
    let n3 = node("n3", 2);
    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (on_n1, on_n2) = (format!("{prefix}:n1:"), format!("{prefix}:n2:"));
    let ledger1 = Arc::new(Mutex::new(Ledger::default()));
    let ledger2 = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = run_writers(n1.port, &on_n1, 3, 200, stop.clone(), ledger1.clone(), seed);
    writers.extend(run_writers(
        n2.port,
        &on_n2,
        2,
        200,
        stop.clone(),
        ledger2.clone(),
        seed ^ 0xabcd,
    ));
    // Write-through on n1 (killed) and n2 alongside, each on keys of its own.
    let through1 = Arc::new(Mutex::new(ThroughLedger::default()));
    let through2 = Arc::new(Mutex::new(ThroughLedger::default()));
    writers.push(run_through_writer(
        n1.port,
        &format!("{table}:n1-"),
        stop.clone(),
        through1.clone(),
    ));
    writers.push(run_through_writer(
        n2.port,
        &format!("{table}:n2-"),
        stop.clone(),
        through2.clone(),
    ));
    thread::sleep(Duration::from_millis(rng.gen_range(600..1500)));
    n1.kill();
    std::fs::remove_dir_all(dir.path().join("n1/data")).expect("delete n1's data dir");
    thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }
    let l1 = ledger1.lock().expect("ledger");
    assert!(l1.errors.is_empty(), "writes to n1 failed: {:?}", l1.errors);
    assert!(!l1.acked.is_empty(), "n1 acknowledged nothing");
    let killed_at = Instant::now();
    let mut missing = Vec::new();
    while killed_at.elapsed() < Duration::from_secs(60) {
        missing = missing_from(&stored_in_postgres(pg, &on_n1), &l1);
        if missing.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    assert!(
        missing.is_empty(),
        "60 s after n1 died, {} of its {} acknowledged keys are not in PostgreSQL, e.g. {:?}\nn2:\n{}\nn3:\n{}",
        missing.len(),
        l1.acked.len(),
        &missing[..missing.len().min(5)],
        n2.log(),
        n3.log()
    );
    eprintln!(
        "n1's {} keys stored {:?} after its death",
        l1.acked.len(),
        killed_at.elapsed()
    );
    // The adopter counts the takeover once its drain, checkpoint and release are done.
    let adoptions = || info_field(&n2, "cluster_adoptions") + info_field(&n3, "cluster_adoptions");
    for _ in 0..120 {
        if adoptions() > 0 {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    // Another scan (every 1.5 s with a 3 s lease, jittered) finds nothing left to take.
    thread::sleep(Duration::from_millis(2500));
    let adoptions = adoptions();
    assert_eq!(adoptions, 1, "one node takes n1's journal over, once");
    let pending = records_in_stream(&url, stream, &format!("{subject}.n1.records"));
    assert_eq!(
        pending, 0,
        "n1's journal still holds {pending} records messages"
    );

    let l2 = ledger2.lock().expect("ledger");
    assert!(l2.errors.is_empty(), "writes to n2 failed: {:?}", l2.errors);
    let _: String = redis::cmd("SLUICE.FLUSH")
        .query(&mut n2.connection())
        .expect("flush n2");
    let missing = missing_from(&stored_in_postgres(pg, &on_n2), &l2);
    assert!(missing.is_empty(), "n2's own writes: {missing:?}");
    // Write-through writes are in the database at their acknowledgement, the dead node's
    // too, and another node reads them from there.
    for through in [&through1, &through2] {
        let through = through.lock().expect("ledger");
        assert!(
            !through.acked_at.is_empty(),
            "no write-through write acknowledged"
        );
        check_through(pg, &table, &through);
    }
    let mut c3 = n3.connection();
    for (key, (acked, uncertain)) in &through1.lock().expect("ledger").keys {
        let got: Option<String> = redis::cmd("GET").arg(key).query(&mut c3).expect("GET");
        let got = got.map(|v| v.parse::<u64>().expect("a counter"));
        assert!(
            got == *acked || got.is_some_and(|v| uncertain.contains(&v)),
            "{key}: n1 acknowledged {acked:?} (failed after it: {uncertain:?}), n3 reads {got:?}"
        );
    }

    // INFO asks the stream for its state.
    let info: String = redis::cmd("INFO")
        .arg("sluice")
        .query(&mut n3.connection())
        .expect("INFO");
    for field in [
        format!("journal_stream:{stream}\r\n"),
        "journal_stream_state:ok\r\n".to_string(),
        "cluster_node:n3\r\n".to_string(),
        "journal_stream_messages:".to_string(),
    ] {
        assert!(info.contains(&field), "INFO lacks {field:?}:\n{info}");
    }

    // n1's name is free: a node started under it finds nothing to replay.
    let n1 = node("n1", 0);
    assert_eq!(info_field(&n1, "journal_segments"), 0);
    drop((n1, n2, n3));
}

/// A node frozen (SIGSTOP) past its claim's `node_lease` is taken over by another node, which
/// stores what it acknowledged; once thawed (SIGCONT) it publishes nothing more: its next
/// write-back write gets an error instead of an acknowledgement, INFO says its journal
/// failed, and a flush of what it still buffers is refused, so a newer write of one of its
/// keys stored meanwhile through another node stays. (A store transaction already past the
/// journal's check when the node froze would still commit on thaw: no store operation
/// carries a fencing token yet.)
#[test]
fn a_node_frozen_past_its_lease_is_taken_over_and_writes_nothing_after() {
    let Some(test) = pg_cluster("frozen") else {
        return;
    };
    let PgCluster {
        nats: url,
        pg,
        dir,
        stream,
        subject,
        ..
    } = &test;
    let prefix = unique("frozen");
    let node = |name: &str| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).expect("node dir");
        let text = config(pg, name, std::slice::from_ref(url), stream, subject, "3s");
        Sluice::start(&home, &home.join("data"), &text)
    };
    let n1 = node("n1");
    let n2 = node("n2");
    let mut c1 = n1.connection();
    let mut ledger = Ledger::default();
    for i in 0..200u64 {
        let key = format!("{prefix}:k{i}");
        let _: String = redis::cmd("SET")
            .arg(&key)
            .arg(i.to_string())
            .query(&mut c1)
            .expect("SET on n1");
        ledger.acked.insert(key, i);
    }
    let pid = n1.child.id().to_string();
    let signal = |sig: &str| {
        let status = Command::new("kill")
            .args([sig, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {sig} {pid}");
    };
    signal("-STOP");
    let frozen_at = Instant::now();
    let mut missing = Vec::new();
    while frozen_at.elapsed() < Duration::from_secs(60) {
        missing = missing_from(&stored_in_postgres(pg, &prefix), &ledger);
        if missing.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    assert!(
        missing.is_empty(),
        "n1 frozen for 60 s, and {} of its writes are not in PostgreSQL: {:?}\nn2:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        n2.log()
    );
    // A newer write of one of n1's keys, through n2, stored before n1 thaws.
    let mut c2 = n2.connection();
    let _: String = redis::cmd("SET")
        .arg(format!("{prefix}:k0"))
        .arg("newer")
        .query(&mut c2)
        .expect("SET on n2");
    let _: String = redis::cmd("SLUICE.FLUSH").query(&mut c2).expect("flush n2");
    signal("-CONT");
    // Thawed, n1 still buffers its old writes (its flush interval is an hour): storing them
    // now would put k0 back to n1's older value.
    let flushed: redis::RedisResult<String> = redis::cmd("SLUICE.FLUSH").query(&mut c1);
    assert!(
        flushed.is_err(),
        "n1 flushed after it was taken over: {flushed:?}"
    );
    let reply: redis::RedisResult<String> = redis::cmd("SET")
        .arg(format!("{prefix}:after"))
        .arg("thawed")
        .query(&mut c1);
    assert!(
        reply.is_err(),
        "n1 acknowledged a write after it was taken over: {reply:?}"
    );
    let info: String = redis::cmd("INFO")
        .arg("sluice")
        .query(&mut c1)
        .expect("INFO");
    assert!(info.contains("journal_state:failed\r\n"), "{info}");
    let stored = stored_in_postgres(pg, &prefix);
    assert!(
        !stored.contains_key(&format!("{prefix}:after")),
        "the refused write reached the store"
    );
    assert_eq!(
        stored.get(&format!("{prefix}:k0")).map(String::as_str),
        Some("newer"),
        "the thawed node stored its older value over the newer one"
    );
    drop(c1);
    drop((n1, n2));
}

/// The fence in the database (`sluice_fence`): once another process has claimed a node's name
/// there (as a restart of the node elsewhere or a takeover of its journal does, right after its
/// claim in NATS), the node stores nothing more, neither its write-back flush nor a
/// write-through write, although its own claim in NATS still looks valid to it: this is the
/// node frozen just past its checks, thawed after the takeover. What it acknowledged is not
/// lost: the node restarted under its name stores it.
#[test]
fn a_node_whose_name_was_claimed_in_the_database_since_stores_nothing_more() {
    let Some(test) = pg_cluster("fence") else {
        return;
    };
    let prefix = unique("fence");
    let table = through_table(&test.pg, "fence");
    let text = with_through_keyspace(&test.one_node_config("n1", &test.nats), &table);
    let home = test.node_home("n1");
    let mut n1 = Sluice::start(&home, &home.join("data"), &text);
    let mut c = n1.connection();
    let ok = |c: &mut redis::Connection, args: &[&str]| -> String {
        redis::cmd(args[0])
            .arg(&args[1..])
            .query(c)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    };
    let refused = |c: &mut redis::Connection, args: &[&str]| {
        let reply: redis::RedisResult<String> = redis::cmd(args[0]).arg(&args[1..]).query(c);
        match reply {
            Err(e) if e.to_string().contains("fenced off") => {}
            other => panic!("{args:?} should be refused as fenced off: {other:?}"),
        }
    };
    let before = format!("{prefix}:before");
    let after = format!("{prefix}:after");
    let row = format!("{table}:r1");
    ok(&mut c, &["SET", &before, "v0"]);
    ok(&mut c, &["SLUICE.FLUSH"]);
    ok(&mut c, &["SET", &row, "first"]);
    assert_eq!(
        stored_in_postgres(&test.pg, &prefix)
            .get(&before)
            .map(String::as_str),
        Some("v0")
    );

    pg_execute(
        &test.pg,
        "UPDATE sluice_fence SET generation = generation + 1 WHERE node = 'n1'",
    );
    // Acknowledged from the journal, as before; never stored by this process.
    ok(&mut c, &["SET", &after, "v1"]);
    refused(&mut c, &["SLUICE.FLUSH"]);
    refused(&mut c, &["SET", &row, "second"]);
    assert_eq!(
        stored_in_postgres(&test.pg, &prefix).get(&after),
        None,
        "stored while fenced off"
    );
    assert_eq!(
        through_value(&test.pg, &table, "r1").as_deref(),
        Some("first")
    );

    drop(c);
    n1.kill();
    let n1 = Sluice::start(&home, &home.join("data"), &text);
    let mut c = n1.connection();
    ok(&mut c, &["SLUICE.FLUSH"]);
    assert_eq!(
        stored_in_postgres(&test.pg, &prefix)
            .get(&after)
            .map(String::as_str),
        Some("v1"),
        "the fenced node's acknowledged write was lost"
    );
    ok(&mut c, &["SET", &row, "third"]);
    assert_eq!(
        through_value(&test.pg, &table, "r1").as_deref(),
        Some("third")
    );
}

/// The test's NATS server behind a proxy that can cut it off: the runtime that drives the
/// proxy (kept for the whole test), the proxy, and the URL to give the nodes.
fn nats_behind_proxy(nats: &str) -> (tokio::runtime::Runtime, Proxy, String) {
    let upstream: std::net::SocketAddr = nats
        .trim_start_matches("nats://")
        .parse()
        .unwrap_or_else(|e| panic!("SLUICE_TEST_NATS_URL {nats:?} is not nats://host:port: {e}"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let proxy = runtime.block_on(Proxy::start(upstream));
    let url = format!("nats://127.0.0.1:{}", proxy.port);
    (runtime, proxy, url)
}

/// Polls `reply` of `cmd` on `c` until it contains `wanted`, for up to 20 s.
fn wait_for_reply(c: &mut redis::Connection, cmd: &[&str], wanted: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let reply: String = redis::cmd(cmd[0])
            .arg(&cmd[1..])
            .query(c)
            .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
        if reply.contains(wanted) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{cmd:?} never showed {wanted:?} within 20 s:\n{reply}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// A node cut off from NATS past its lease (so another node may take its journal over and
/// store newer writes of its keys) writes nothing more to the store, write-through included,
/// although nobody has claimed its name in the database: its write-through write is refused
/// before it reaches the store (`fence_store_writes`), as its write-back write is at the
/// journal, and it stays so once NATS is back (it must be restarted).
#[test]
fn a_node_cut_off_from_nats_past_its_lease_stores_nothing_more() {
    let Some(test) = pg_cluster("natscut") else {
        return;
    };
    let (_runtime, proxy, nats) = nats_behind_proxy(&test.nats);
    let table = through_table(&test.pg, "natscut");
    let text = with_through_keyspace(&test.one_node_config("n1", &nats), &table);
    let home = test.node_home("n1");
    let n1 = Sluice::start(&home, &home.join("data"), &text);
    let mut c = n1.connection();
    let row = format!("{table}:r1");
    let _: String = redis::cmd("SET")
        .arg(&row)
        .arg("first")
        .query(&mut c)
        .expect("write-through SET");
    proxy.set_mode(ProxyMode::Stall);
    wait_for_reply(&mut c, &["INFO", "sluice"], "journal_state:failed\r\n");
    for phase in ["while NATS is away", "once NATS is back"] {
        let reply: redis::RedisResult<String> =
            redis::cmd("SET").arg(&row).arg(phase).query(&mut c);
        match reply {
            Err(e) if e.to_string().contains("writes nothing more to the store") => {}
            other => panic!("write-through SET {phase}: {other:?}"),
        }
        let reply: redis::RedisResult<String> = redis::cmd("SET")
            .arg(format!("{table}x"))
            .arg(phase)
            .query(&mut c);
        assert!(reply.is_err(), "write-back SET {phase}: {reply:?}");
        assert_eq!(
            through_value(&test.pg, &table, "r1").as_deref(),
            Some("first"),
            "{phase}"
        );
        proxy.set_mode(ProxyMode::Forward);
        thread::sleep(Duration::from_millis(500));
    }
}

/// With keys routed (`nodes`), a command held by CLIENT PAUSE is checked again when the pause
/// ends: if the node's claim on its name ran out meanwhile (here: NATS cut off for longer than
/// the lease), it is refused with `CLUSTERDOWN` instead of running on a node that another
/// may have taken over.
#[test]
fn a_command_held_by_client_pause_is_refused_if_the_claim_ran_out_meanwhile() {
    let Some(test) = pg_cluster("pauselapse") else {
        return;
    };
    let (_runtime, proxy, nats) = nats_behind_proxy(&test.nats);
    let port = free_port();
    let text = test.one_node_config("n1", &nats).replace(
        "node_lease = \"3s\"\n",
        &format!("node_lease = \"3s\"\nnodes = [\"n1=127.0.0.1:{port}\"]\n"),
    );
    let home = test.node_home("n1");
    let n1 = Sluice::start_on(&home, &home.join("data"), &text, port)
        .unwrap_or_else(|log| panic!("n1 did not start:\n{log}"));
    let mut admin = n1.connection();
    let key = unique("pauselapse");
    let _: String = redis::cmd("SET")
        .arg(&key)
        .arg("before")
        .query(&mut admin)
        .expect("SET before the pause");
    let _: String = redis::cmd("CLIENT")
        .arg(&["PAUSE", "60000", "WRITE"][..])
        .query(&mut admin)
        .expect("CLIENT PAUSE");
    let held = {
        let mut writer = n1.connection();
        let key = key.clone();
        thread::spawn(move || -> redis::RedisResult<String> {
            redis::cmd("SET").arg(&key).arg("held").query(&mut writer)
        })
    };
    wait_for_reply(&mut admin, &["CLIENT", "LIST"], "flags=b");
    proxy.set_mode(ProxyMode::Stall);
    wait_for_reply(&mut admin, &["CLUSTER", "INFO"], "cluster_state:fail");
    assert!(!held.is_finished(), "the SET ran during the pause");
    let _: String = redis::cmd("CLIENT")
        .arg("UNPAUSE")
        .query(&mut admin)
        .expect("CLIENT UNPAUSE");
    match held.join().expect("writer thread") {
        Err(e) if e.to_string().starts_with("CLUSTERDOWN") || e.code() == Some("CLUSTERDOWN") => {}
        other => panic!("the held SET should be refused with CLUSTERDOWN: {other:?}"),
    }
    proxy.set_mode(ProxyMode::Forward);
}

fn pg_execute(url: &str, sql: &str) {
    let (runtime, client) = postgres(url);
    runtime
        .block_on(client.batch_execute(sql))
        .expect("run SQL");
}

/// A write the database refuses, acknowledged by a node that then died, becomes a dead letter
/// of the node that took its journal over (listed by its SLUICE.DEADLETTERS), while the dead
/// node's other writes are stored, and the adopter's cached copy of a key the takeover stored
/// is refreshed.
#[test]
fn a_taken_over_write_the_database_refuses_is_a_dead_letter_of_the_survivor() {
    let Some(test) = pg_cluster("refused") else {
        return;
    };
    let PgCluster {
        nats: url,
        pg,
        dir,
        stream,
        subject,
        ..
    } = &test;
    let table = unique("refused_");
    pg_execute(
        pg,
        &format!("CREATE TABLE {table} (id text PRIMARY KEY, v text CHECK (length(v) < 5))"),
    );
    let node = |name: &str| {
        let home = dir.path().join(name);
        std::fs::create_dir_all(&home).expect("node dir");
        let text = format!(
            "{}\n[[keyspace]]\nname = \"checked\"\nkeys = \"{table}:{{id}}\"\ntable = \"{table}\"\nkey_column = \"id\"\nvalue_column = \"v\"\npolicy = \"write-back\"\nflush_interval = \"1h\"\n",
            config(
                pg,
                name,
                std::slice::from_ref(url),
                stream,
                subject,
                "3s"
            )
        );
        Sluice::start(&home, &home.join("data"), &text)
    };
    let mut n1 = node("n1");
    let n2 = node("n2");
    let mut c1 = n1.connection();
    // n2 caches the stored value of a key that n1 then rewrites: once the takeover stored
    // n1's newer write, n2 (the adopter) must not answer its old copy.
    let _: String = redis::cmd("SET")
        .arg(format!("{table}:4"))
        .arg("old")
        .query(&mut c1)
        .expect("SET on n1");
    let _: String = redis::cmd("SLUICE.FLUSH").query(&mut c1).expect("flush n1");
    let cached: Option<String> = redis::cmd("GET")
        .arg(format!("{table}:4"))
        .query(&mut n2.connection())
        .expect("GET on n2");
    assert_eq!(cached.as_deref(), Some("old"));
    // A client of n2 watches that key, another listens for its keyspace events: the
    // takeover's write of it is a change to both, as any other node's write would be.
    let mut watcher = n2.connection();
    let _: () = redis::cmd("WATCH")
        .arg(format!("{table}:4"))
        .query(&mut watcher)
        .expect("WATCH on n2");
    let _: String = redis::cmd("CONFIG")
        .arg("SET")
        .arg("notify-keyspace-events")
        .arg("KA")
        .query(&mut n2.connection())
        .expect("CONFIG SET notify-keyspace-events");
    let mut listener = n2.connection();
    listener
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("read timeout");
    let mut events = listener.as_pubsub();
    events
        .subscribe(format!("__keyspace@0__:{table}:4"))
        .expect("SUBSCRIBE on n2");
    for (id, value) in [
        ("1", "ok"),
        ("2", "far too long"),
        ("3", "fine"),
        ("4", "new"),
    ] {
        let _: String = redis::cmd("SET")
            .arg(format!("{table}:{id}"))
            .arg(value)
            .query(&mut c1)
            .expect("SET on n1 (write-back: acknowledged before the database sees it)");
    }
    drop(c1);
    n1.kill();
    let killed_at = Instant::now();
    let mut letters = String::new();
    while killed_at.elapsed() < Duration::from_secs(60) {
        let listed: redis::Value = redis::cmd("SLUICE.DEADLETTERS")
            .query(&mut n2.connection())
            .expect("SLUICE.DEADLETTERS");
        letters = format!("{listed:?}");
        if letters.contains(&format!("{table}:2")) {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    assert!(
        letters.contains(&format!("{table}:2")),
        "n2 lists no dead letter for the refused write: {letters}\nn2:\n{}",
        n2.log()
    );
    assert!(!letters.contains(&format!("{table}:1")), "{letters}");
    let rows: Vec<(String, String)> = {
        let (runtime, client) = postgres(pg);
        runtime
            .block_on(client.query(&format!("SELECT id, v FROM {table} ORDER BY id"), &[]))
            .expect("read the table")
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    };
    assert_eq!(
        rows,
        vec![
            ("1".to_string(), "ok".to_string()),
            ("3".to_string(), "fine".to_string()),
            ("4".to_string(), "new".to_string())
        ]
    );
    let read: Option<String> = redis::cmd("GET")
        .arg(format!("{table}:4"))
        .query(&mut n2.connection())
        .expect("GET on n2");
    assert_eq!(
        read.as_deref(),
        Some("new"),
        "the adopter kept its copy from before the takeover"
    );
    let event: String = events
        .get_message()
        .expect("a keyspace event for the key the takeover stored")
        .get_payload()
        .expect("payload");
    assert_eq!(event, "changed");
    drop(events);
    let _: () = redis::cmd("MULTI").query(&mut watcher).expect("MULTI");
    let _: () = redis::cmd("SET")
        .arg(format!("{table}:4"))
        .arg("lost")
        .query(&mut watcher)
        .expect("SET queued");
    let exec: redis::Value = redis::cmd("EXEC").query(&mut watcher).expect("EXEC");
    assert_eq!(
        exec,
        redis::Value::Nil,
        "an EXEC watching a key the takeover changed ran"
    );
    // Its dead letters moved, the finished takeover's directory is removed.
    let takeover_dir = dir
        .path()
        .join("n2")
        .join("data")
        .join("adopted")
        .join("n1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while takeover_dir.exists() {
        assert!(
            Instant::now() < deadline,
            "the takeover's directory {} is still there\nn2:\n{}",
            takeover_dir.display(),
            n2.log()
        );
        thread::sleep(Duration::from_millis(100));
    }
    drop(n2);
}

/// A new table `<tag>_through_…` (`id text`, `v text`) for `with_through_keyspace`.
/// The value column of row `id` in a write-through test table, as PostgreSQL holds it.
fn through_value(pg: &str, table: &str, id: &str) -> Option<String> {
    let (runtime, client) = postgres(pg);
    runtime
        .block_on(client.query_opt(&format!("SELECT v FROM {table} WHERE id = $1"), &[&id]))
        .expect("read the through table")
        .map(|r| r.get(0))
}

fn through_table(pg: &str, tag: &str) -> String {
    let table = unique(&format!("{tag}_through_"));
    pg_execute(
        pg,
        &format!("CREATE TABLE {table} (id text PRIMARY KEY, v text)"),
    );
    table
}

/// `config` plus a write-through keyspace `<table>:{id}` mapped onto `table` (`id`, `v`).
fn with_through_keyspace(config: &str, table: &str) -> String {
    format!(
        "{config}\n[[keyspace]]\nname = \"through\"\nkeys = \"{table}:{{id}}\"\ntable = \"{table}\"\nkey_column = \"id\"\nvalue_column = \"v\"\npolicy = \"write-through\"\n"
    )
}

/// What a write-through writer knows, per key: the last acknowledged value and the values
/// whose write failed after it (a write cut off mid-commit may or may not have committed).
#[derive(Default)]
struct ThroughLedger {
    keys: BTreeMap<String, (Option<u64>, Vec<u64>)>,
    errors: Vec<(Instant, String)>,
    acked_at: Vec<Instant>,
}

/// One writer SETting 20 keys `<prefix><n>` of a write-through keyspace with rising values
/// until `stop` or until its connection dies (the node was killed).
fn run_through_writer(
    port: u16,
    prefix: &str,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<ThroughLedger>>,
) -> thread::JoinHandle<()> {
    let prefix = prefix.to_string();
    thread::spawn(move || {
        let Ok(client) = redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
            return;
        };
        let Ok(mut c) = client.get_connection() else {
            return;
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
        let mut counter = 0u64;
        while !stop.load(Ordering::Relaxed) {
            counter += 1;
            let key = format!("{prefix}{}", counter % 20);
            let reply: redis::RedisResult<String> = redis::cmd("SET")
                .arg(&key)
                .arg(counter.to_string())
                .query(&mut c);
            let mut ledger = ledger.lock().expect("ledger");
            let dead = matches!(&reply, Err(e) if e.is_io_error() || e.is_connection_dropped());
            match reply {
                Ok(_) => {
                    ledger.keys.insert(key, (Some(counter), Vec::new()));
                    ledger.acked_at.push(Instant::now());
                }
                Err(e) => {
                    ledger.keys.entry(key.clone()).or_default().1.push(counter);
                    ledger
                        .errors
                        .push((Instant::now(), format!("SET {key}: {e}")));
                }
            }
            drop(ledger);
            if dead {
                return;
            }
            if counter.is_multiple_of(20) {
                thread::sleep(Duration::from_millis(5));
            }
        }
    })
}

/// Every key of `ledger` holds, in `table` (`id text, v text`, keys `<table>:<id>`), its
/// acknowledged value or one whose write failed after it.
fn check_through(pg: &str, table: &str, ledger: &ThroughLedger) {
    let written: BTreeMap<String, u64> = {
        let (runtime, client) = postgres(pg);
        runtime
            .block_on(client.query(&format!("SELECT id, v FROM {table}"), &[]))
            .expect("read the write-through table")
            .iter()
            .map(|r| {
                let id: String = r.get(0);
                let v: String = r.get(1);
                (format!("{table}:{id}"), v.parse().expect("a counter"))
            })
            .collect()
    };
    for (key, (acked, uncertain)) in &ledger.keys {
        let stored = written.get(key).copied();
        let fine = match (acked, stored) {
            (Some(a), Some(s)) => s == *a || uncertain.contains(&s),
            (None, Some(s)) => uncertain.contains(&s),
            (None, None) => true,
            (Some(_), None) => false,
        };
        assert!(
            fine,
            "{key}: write-through acknowledged {acked:?} (failed after it: {uncertain:?}), stored {stored:?}"
        );
    }
}

/// PostgreSQL cut off from three nodes for 10 s under load. Write-back keeps acknowledging
/// while its buffer has room (rewrites of buffered keys always coalesce), then answers BUSY
/// after `backpressure_timeout`, never anything worse; every acknowledged write reads back
/// from its node during the cut; write-through writes fail with an error while the database
/// is away and succeed again after. Once the database is back, every acknowledged write-back
/// write reaches it without a SLUICE.FLUSH, and every acknowledged write-through write is
/// there.
#[test]
fn write_back_rides_out_a_cut_database_and_everything_drains_after() {
    let Some(test) = pg_cluster("cut") else {
        return;
    };
    let PgCluster {
        pg,
        stream,
        subject,
        ..
    } = &test;
    let prefix = unique("cut");
    let table = through_table(pg, "cut");
    let (target, _) = pg_upstream_and_proxied_url(pg, 0);
    // The proxy's tasks run on this runtime's worker for the whole test.
    let proxy_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let proxy = proxy_runtime.block_on(Proxy::start(target));
    let (_, store) = pg_upstream_and_proxied_url(pg, proxy.port);
    let (_nats, urls) = test.nats_for_nodes();
    let nodes: Vec<Sluice> = (0..3)
        .map(|i| {
            let name = format!("n{}", i + 1);
            test.start_node(&name, &urls, i, |mine| {
                with_through_keyspace(
                    &config(&store, &name, mine, stream, subject, "3s").replace(
                        "flush_interval = \"1h\"",
                        "flush_interval = \"100ms\"\nmax_dirty = 300\nbackpressure_timeout = \"300ms\"",
                    ),
                    &table,
                )
            })
        })
        .collect();

    let seed: u64 = rand::random();
    eprintln!("seed {seed}");
    let stop = Arc::new(AtomicBool::new(false));
    let ledgers: Vec<Arc<Mutex<Ledger>>> = (0..3).map(|_| Arc::default()).collect();
    let mut writers = Vec::new();
    for (i, node) in nodes.iter().enumerate() {
        writers.extend(run_writers(
            node.port,
            &format!("{prefix}:n{i}:"),
            2,
            400,
            stop.clone(),
            ledgers[i].clone(),
            seed ^ i as u64,
        ));
    }
    let through = Arc::new(Mutex::new(ThroughLedger::default()));
    writers.push(run_through_writer(
        nodes[0].port,
        &format!("{table}:"),
        stop.clone(),
        through.clone(),
    ));
    let acks = |ledgers: &[Arc<Mutex<Ledger>>]| ledgers.iter().map(count_acks).sum::<u64>();
    let started = Instant::now();
    thread::sleep(Duration::from_secs(1));
    while acks(&ledgers) == 0 || through.lock().expect("ledger").acked_at.is_empty() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "nothing acknowledged in 30 s before the cut"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let before_cut = acks(&ledgers);

    // Open connections cut, new ones left unanswered: a database gone from the network.
    proxy.set_mode(ProxyMode::Stall);
    let cut_at = Instant::now();
    thread::sleep(Duration::from_secs(5));
    // Halfway through the cut every acknowledged write reads back from its node (from its
    // buffer or cache: the database is unreachable); values only rise, so a read may see a
    // later write of the key.
    for (i, ledger) in ledgers.iter().enumerate() {
        let acked = ledger.lock().expect("ledger").acked.clone();
        let mut c = nodes[i].connection();
        for (key, value) in acked {
            let got: Option<String> = redis::cmd("GET").arg(&key).query(&mut c).expect("GET");
            let got: u64 = got
                .unwrap_or_else(|| panic!("{key}: acknowledged {value}, missing during the cut"))
                .parse()
                .expect("a counter");
            assert!(got >= value, "{key}: acknowledged {value}, read {got}");
        }
    }
    thread::sleep((cut_at + Duration::from_secs(10)).saturating_duration_since(Instant::now()));
    let during_cut = acks(&ledgers) - before_cut;
    let busy_during_cut: usize = ledgers
        .iter()
        .map(|l| l.lock().expect("ledger").errors.len())
        .sum();
    proxy.set_mode(ProxyMode::Forward);
    let restored_at = Instant::now();
    let cut_for = restored_at - cut_at;
    // Writes go on until write-through succeeds again (a new pool connection), at least 3 s.
    thread::sleep(Duration::from_secs(3));
    while !through
        .lock()
        .expect("ledger")
        .acked_at
        .iter()
        .any(|at| *at > restored_at)
        && restored_at.elapsed() < Duration::from_secs(60)
    {
        thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().expect("writer");
    }

    for (i, ledger) in ledgers.iter().enumerate() {
        let l = ledger.lock().expect("ledger");
        let other: Vec<&String> = l.errors.iter().filter(|e| !e.contains("BUSY")).collect();
        assert!(
            other.is_empty(),
            "n{}: errors other than BUSY: {other:?}",
            i + 1
        );
    }
    assert!(
        during_cut > 0,
        "write-back acknowledged nothing while the database was away"
    );
    assert!(
        busy_during_cut > 0,
        "no write was refused with BUSY although the buffers were bounded"
    );
    let through = through.lock().expect("ledger");
    assert!(
        through
            .errors
            .iter()
            .any(|(at, _)| *at >= cut_at && *at <= restored_at + Duration::from_secs(1)),
        "no write-through write failed while the database was away"
    );
    assert!(
        through.acked_at.iter().any(|at| *at > restored_at),
        "no write-through write succeeded after the database came back: {:?}",
        &through.errors[through.errors.len().saturating_sub(3)..]
    );

    // Everything acknowledged drains into PostgreSQL on its own.
    let mut missing = Vec::new();
    while restored_at.elapsed() < Duration::from_secs(90) {
        missing = ledgers
            .iter()
            .enumerate()
            .flat_map(|(i, l)| {
                missing_from(
                    &stored_in_postgres(pg, &format!("{prefix}:n{i}:")),
                    &l.lock().expect("ledger"),
                )
            })
            .collect();
        if missing.is_empty() {
            break;
        }
        thread::sleep(Duration::from_millis(250));
    }
    assert!(
        missing.is_empty(),
        "90 s after the database came back, {} acknowledged keys are not in it, e.g. {:?}\nn1:\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        nodes[0].log()
    );
    let drained_after = restored_at.elapsed();
    check_through(pg, &table, &through);
    eprintln!(
        "cut {cut_for:?}: {before_cut} acks before it, {during_cut} during the cut, {busy_during_cut} BUSY; {} write-through errors; drained {drained_after:?} after the database came back",
        through.errors.len()
    );
    drop(nodes);
    drop(proxy);
}

/// A cluster's nodes record their stream in the database they store into (once one started:
/// a node refused for its configuration records nothing); a node with the local journal, or
/// with another stream, refuses to start on that database with an error that says why and
/// what to do, and starts once the mark is deleted.
#[test]
fn a_node_outside_the_clusters_journal_refuses_its_database() {
    let Some(test) = pg_cluster("mark") else {
        return;
    };
    let PgCluster {
        nats: url,
        pg,
        dir,
        stream,
        subject,
        ..
    } = &test;
    let home = dir.path().join("n1");
    std::fs::create_dir_all(&home).expect("node dir");
    let clustered = config(pg, "n1", std::slice::from_ref(url), stream, subject, "3s");
    // A cluster node refused for its configuration (a keyspace on a missing table) records
    // nothing: the database stays open to every node.
    let broken = format!(
        "{clustered}\n[[keyspace]]\nname = \"missing\"\nkeys = \"m:{{id}}\"\ntable = \"no_such_table\"\nkey_column = \"id\"\nvalue_column = \"v\"\npolicy = \"write-through\"\n"
    );
    let log = Sluice::refused(&home, &home.join("data"), &broken);
    assert!(log.contains("no_such_table"), "{log}");
    let marked = {
        let (runtime, client) = postgres(pg);
        runtime
            .block_on(client.query_one("SELECT to_regclass('sluice_journal') IS NOT NULL", &[]))
            .expect("look for sluice_journal")
            .get::<_, bool>(0)
    };
    assert!(!marked, "a node that never started left a journal mark");
    let n1 = Sluice::start(&home, &home.join("data"), &clustered);

    let local = format!(
        "[store]\nurl = \"{pg}\"\n\n[[keyspace]]\nname = \"default\"\nkeys = \"*\"\npolicy = \"write-back\"\n"
    );
    let other = dir.path().join("local");
    std::fs::create_dir_all(&other).expect("local dir");
    let log = Sluice::refused(&other, &other.join("data"), &local);
    for part in [
        format!("JetStream stream {stream:?}"),
        "[cluster]".to_string(),
        "DELETE FROM sluice_journal".to_string(),
    ] {
        assert!(log.contains(&part), "{part:?} not in the refusal:\n{log}");
    }
    let elsewhere = config(
        pg,
        "n2",
        std::slice::from_ref(url),
        &format!("{stream}_OTHER"),
        &format!("{subject}other"),
        "3s",
    );
    let log = Sluice::refused(&other, &other.join("data"), &elsewhere);
    assert!(
        log.contains("journal_stream") && log.contains(&format!("{stream:?}")),
        "a node on another stream is refused, told the cluster's:\n{log}"
    );

    drop(n1);
    pg_execute(pg, "DELETE FROM sluice_journal");
    let local_node = Sluice::start(&other, &other.join("data"), &local);
    let _: String = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut local_node.connection())
        .expect("the local node starts once the mark is gone");
    drop(local_node);
}

/// Three nodes routing keys by hash slot (`[cluster] nodes`), on PostgreSQL, with a
/// write-back, a write-through and an invalidate keyspace:
///
/// - a node answers `MOVED <slot> <host>:<port>` for a key another node serves, `CROSSSLOT`
///   for keys in two slots, refuses SELECT of another database, dooms a MULTI holding a key
///   of another node and answers CLUSTER SLOTS / KEYSLOT / MYID / INFO / NODES as Redis
///   Cluster does;
/// - redis-py's cluster client writes 300 keys of each keyspace through a client that knows
///   only the first node and reads every one back through one that knows only the second,
///   before any flush (the write-back keys are in no table yet): each key has one node;
/// - a node frozen past its lease (SIGSTOP) answers `CLUSTERDOWN` for its own keys once it
///   thaws, rather than from a cache whose keys another node may have written since.
#[test]
fn keys_are_routed_to_one_node_and_read_back_through_any_before_the_flush() {
    let Some(test) = pg_cluster("routed") else {
        return;
    };
    let PgCluster {
        nats: url,
        pg,
        stream,
        subject,
        ..
    } = &test;
    let through = through_table(pg, "routed");
    let invalidated = through_table(pg, "routedinv");
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let nodes: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, port)| format!("\"n{}=127.0.0.1:{port}\"", i + 1))
        .collect();
    let text = |name: &str| {
        let base = config(pg, name, std::slice::from_ref(url), stream, subject, "3s").replace(
            "node_lease = \"3s\"\n",
            &format!("node_lease = \"3s\"\nnodes = [{}]\n", nodes.join(", ")),
        );
        let base = with_through_keyspace(&base, &through);
        format!(
            "{base}\n[[keyspace]]\nname = \"invalidated\"\nkeys = \"{invalidated}:{{id}}\"\ntable = \"{invalidated}\"\nkey_column = \"id\"\nvalue_column = \"v\"\npolicy = \"invalidate\"\n"
        )
    };
    let start = |i: usize| {
        let name = format!("n{}", i + 1);
        let home = test.dir.path().join(&name);
        std::fs::create_dir_all(&home).expect("node dir");
        Sluice::start_on(&home, &home.join("data"), &text(&name), ports[i])
            .unwrap_or_else(|log| panic!("{name} did not start:\n{log}"))
    };
    let mut n1 = start(0);
    let n2 = start(1);
    let n3 = start(2);
    let mut c1 = n1.connection();

    // "bar" is slot 5061 (n1 serves 0-5460), "foo" 12182 (n3 serves 10922-16383).
    let slot: i64 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("foo")
        .query(&mut c1)
        .expect("CLUSTER KEYSLOT");
    assert_eq!(slot, 12182);
    let refused = |c: &mut redis::Connection, cmd: &mut redis::Cmd| -> String {
        match cmd.query::<redis::Value>(c) {
            Err(e) => format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")),
            Ok(v) => panic!("answered {v:?} instead of refusing"),
        }
    };
    assert_eq!(
        refused(&mut c1, redis::cmd("SET").arg("foo").arg("1")),
        format!("MOVED 12182 127.0.0.1:{}", ports[2])
    );
    assert_eq!(
        refused(&mut c1, redis::cmd("GET").arg("foo")),
        format!("MOVED 12182 127.0.0.1:{}", ports[2])
    );
    let _: String = redis::cmd("SET")
        .arg("bar")
        .arg("1")
        .query(&mut c1)
        .expect("SET of a key n1 serves");
    assert_eq!(
        refused(
            &mut c1,
            redis::cmd("MSET").arg("bar").arg("1").arg("foo").arg("2")
        ),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    assert_eq!(
        refused(&mut c1, redis::cmd("SELECT").arg("1")),
        "ERR SELECT is not allowed in cluster mode"
    );
    // Inside EXEC too, SELECT is refused as Redis Cluster refuses it: that command's reply.
    let _: String = redis::cmd("MULTI").query(&mut c1).expect("MULTI");
    let _: String = redis::cmd("SELECT")
        .arg("1")
        .query(&mut c1)
        .expect("queued");
    // redis-rs turns the error inside EXEC's reply into the query's error.
    let exec = redis::cmd("EXEC").query::<redis::Value>(&mut c1);
    assert!(
        format!("{exec:?}").contains("SELECT is not allowed in cluster mode"),
        "{exec:?}"
    );
    let _: String = redis::cmd("MULTI").query(&mut c1).expect("MULTI");
    let _: String = redis::cmd("SET")
        .arg("bar")
        .arg("2")
        .query(&mut c1)
        .expect("queued");
    assert!(refused(&mut c1, redis::cmd("SET").arg("foo").arg("2")).starts_with("MOVED 12182"));
    assert!(refused(&mut c1, &mut redis::cmd("EXEC")).starts_with("EXECABORT"));
    let bar: String = redis::cmd("GET")
        .arg("bar")
        .query(&mut c1)
        .expect("GET bar");
    assert_eq!(bar, "1", "a doomed transaction applied nothing");
    let slots: Vec<(i64, i64, (String, i64, String))> = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query::<Vec<(i64, i64, (String, i64, String, redis::Value))>>(&mut n2.connection())
        .expect("CLUSTER SLOTS")
        .into_iter()
        .map(|(first, last, (host, port, id, _))| (first, last, (host, port, id)))
        .collect();
    let ranges: Vec<(i64, i64, i64)> = slots.iter().map(|(f, l, (_, p, _))| (*f, *l, *p)).collect();
    assert_eq!(
        ranges,
        vec![
            (0, 5460, i64::from(ports[0])),
            (5461, 10921, i64::from(ports[1])),
            (10922, 16383, i64::from(ports[2]))
        ]
    );
    // Every node refuses the keys of the others, pointing at the one that serves them.
    let mut conns: Vec<redis::Connection> =
        [&n1, &n2, &n3].iter().map(|n| n.connection()).collect();
    for i in 0..40 {
        let key = format!("probe:{i}");
        let mut answered = Vec::new();
        for (n, c) in conns.iter_mut().enumerate() {
            match redis::cmd("GET").arg(&key).query::<Option<String>>(c) {
                Ok(_) => answered.push(n),
                Err(e) => assert_eq!(e.code(), Some("MOVED"), "{key} on node {n}: {e}"),
            }
        }
        assert_eq!(answered.len(), 1, "{key} is served by nodes {answered:?}");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query(&mut conns[0])
            .expect("KEYSLOT");
        let owner = ranges
            .iter()
            .position(|(f, l, _)| (*f..=*l).contains(&slot))
            .expect("a range");
        assert_eq!(answered[0], owner, "{key} (slot {slot})");
    }
    // Two keys of n1 in two slots: one EXEC cannot hold both.
    let mut local = Vec::new();
    for i in 0.. {
        let key = format!("local:{i}");
        let slot: i64 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(&key)
            .query(&mut c1)
            .expect("KEYSLOT");
        if slot <= 5460 && local.iter().all(|(_, s)| *s != slot) {
            local.push((key, slot));
        }
        if local.len() == 2 {
            break;
        }
    }
    let _: String = redis::cmd("MULTI").query(&mut c1).expect("MULTI");
    for (key, _) in &local {
        let _: String = redis::cmd("SET")
            .arg(key)
            .arg("x")
            .query(&mut c1)
            .expect("queued");
    }
    assert_eq!(
        refused(&mut c1, &mut redis::cmd("EXEC")),
        "CROSSSLOT Keys in request don't hash to the same slot"
    );
    let none: Option<String> = redis::cmd("GET")
        .arg(&local[0].0)
        .query(&mut c1)
        .expect("GET");
    assert_eq!(none, None, "the refused EXEC applied a write");
    // A script's undeclared keys stay in one slot, unless its flags allow more.
    let two_slots = "redis.call('SET', ARGV[1], 'a'); return redis.call('SET', ARGV[2], 'b')";
    assert!(refused(
        &mut c1,
        redis::cmd("EVAL")
            .arg(two_slots)
            .arg(0)
            .arg(&local[0].0)
            .arg(&local[1].0)
    )
    .contains("Script attempted to access keys that do not hash to the same slot"));
    let allowed: String = redis::cmd("EVAL")
        .arg(format!("#!lua flags=allow-cross-slot-keys\n{two_slots}"))
        .arg(0)
        .arg(&local[0].0)
        .arg(&local[1].0)
        .query(&mut c1)
        .expect("a script allowed to cross slots");
    assert_eq!(allowed, "OK");
    // A script reaching a key another node serves; consumer groups and OBJECT routed too;
    // COPY into another database refused.
    assert!(refused(
        &mut c1,
        redis::cmd("EVAL")
            .arg("return redis.call('GET', 'foo')")
            .arg(0)
    )
    .contains("Script attempted to access a non local key in a cluster node"));
    assert!(refused(
        &mut c1,
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg("foo")
            .arg("g")
            .arg("$")
            .arg("MKSTREAM")
    )
    .starts_with("MOVED 12182"));
    assert!(
        refused(&mut c1, redis::cmd("OBJECT").arg("ENCODING").arg("foo"))
            .starts_with("MOVED 12182")
    );
    assert_eq!(
        refused(
            &mut c1,
            redis::cmd("COPY")
                .arg("bar")
                .arg("{bar}2")
                .arg("DB")
                .arg("1")
        ),
        "ERR Copying to another database is not allowed in cluster mode"
    );
    drop(conns);
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut c1)
        .expect("CLUSTER INFO");
    assert!(info.starts_with("cluster_state:ok\r\n"), "{info}");
    let nodes_line: String = redis::cmd("CLUSTER")
        .arg("NODES")
        .query(&mut c1)
        .expect("CLUSTER NODES");
    let myid: String = redis::cmd("CLUSTER")
        .arg("MYID")
        .query(&mut c1)
        .expect("CLUSTER MYID");
    assert!(
        nodes_line.contains(&format!(
            "{myid} 127.0.0.1:{}@{} myself,master - 0 0 0 connected 0-5460\n",
            ports[0],
            u32::from(ports[0]) + 10000
        )),
        "{nodes_line}"
    );

    // A real cluster client, through any node.
    if python_with_redis() {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/redis_py_cluster.py");
        let mut cmd = Command::new("python3");
        cmd.arg(&script);
        for port in &ports {
            cmd.arg("--port").arg(port.to_string());
        }
        for prefix in ["wb", through.as_str(), invalidated.as_str()] {
            cmd.arg("--prefix").arg(prefix);
        }
        let out = cmd.output().expect("run python3");
        assert!(
            out.status.success(),
            "redis-py cluster client failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{}", String::from_utf8_lossy(&out.stdout));
        // The write-back writes were read back from their nodes' buffers: none is stored yet.
        assert!(
            stored_in_postgres(pg, "wb:").is_empty(),
            "a write-back key was flushed within the flush interval of an hour"
        );
        for node in [&n1, &n2, &n3] {
            let _: String = redis::cmd("SLUICE.FLUSH")
                .query(&mut node.connection())
                .expect("SLUICE.FLUSH");
        }
        let stored = stored_in_postgres(pg, "wb:");
        assert_eq!(stored.len(), 200, "300 written, 100 deleted");
        assert_eq!(stored.get("wb:0").map(String::as_str), Some("w0"));
        assert_eq!(stored.get("wb:2").map(String::as_str), Some("v2"));
        // KEYS and DBSIZE answer for each node's own slots: every key once across the nodes.
        let mut seen = std::collections::BTreeSet::new();
        let (mut sizes, mut listed) = (0, 0);
        for node in [&n1, &n2, &n3] {
            let mut c = node.connection();
            let keys: Vec<String> = redis::cmd("KEYS").arg("wb:*").query(&mut c).expect("KEYS");
            assert!(!keys.is_empty(), "a node serves none of the keys");
            for key in keys {
                assert!(seen.insert(key.clone()), "{key} listed by two nodes");
            }
            let all: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut c).expect("KEYS");
            listed += all.len() as i64;
            let size: i64 = redis::cmd("DBSIZE").query(&mut c).expect("DBSIZE");
            assert_eq!(size, all.len() as i64, "DBSIZE counts what KEYS lists");
            sizes += size;
        }
        assert_eq!(seen.len(), 200);
        assert_eq!(sizes, listed);
    }
    assert!(
        refused(&mut c1, &mut redis::cmd("FLUSHALL"))
            .starts_with("ERR FLUSHALL and FLUSHDB are refused"),
        "a node flushed every node's keys"
    );

    // n1 frozen past its lease: once thawed it serves none of its keys.
    let pid = n1.child.id().to_string();
    let _ = Command::new("kill").args(["-STOP", &pid]).status();
    thread::sleep(Duration::from_secs(6));
    let _ = Command::new("kill").args(["-CONT", &pid]).status();
    let mut c1 = n1.connection();
    let deadline = Instant::now() + Duration::from_secs(10);
    let answer = loop {
        match redis::cmd("GET")
            .arg("bar")
            .query::<Option<String>>(&mut c1)
        {
            Err(e) => break format!("{} {}", e.code().unwrap_or(""), e.detail().unwrap_or("")),
            Ok(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(100)),
            Ok(v) => panic!("the thawed node still answers GET of its key: {v:?}"),
        }
    };
    assert_eq!(answer, "CLUSTERDOWN The cluster is down");
    let info: String = redis::cmd("CLUSTER")
        .arg("INFO")
        .query(&mut c1)
        .expect("CLUSTER INFO");
    assert!(info.starts_with("cluster_state:fail\r\n"), "{info}");
    n1.kill();
    drop((n2, n3));
}

/// Whether `python3` can import redis-py (the cluster client test is skipped otherwise).
fn python_with_redis() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped the redis-py cluster client: python3 with redis-py is not installed");
    }
    ok
}
