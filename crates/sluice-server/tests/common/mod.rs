//! Shared helpers for the server's integration tests: an in-process Sluice on an ephemeral
//! port, and a raw RESP client that returns replies as the exact bytes sent.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use sluice::{Durability, ShutdownReport, Sluice};
use sluice_server::config::FileConfig;
use sluice_server::state::Shared;
use sluice_server::Server;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The embedded SQLite database's file name in the data directory (`Config::store_url`).
pub const SQLITE_FILE: &str = "sluice.db";

/// How long a test waits for a reply before failing.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// A running in-process server.
pub struct TestServer {
    /// Where it listens (the TLS address with `tls_only`).
    pub addr: SocketAddr,
    /// Where it listens for TLS, with `tls_port` (set it to 0 for an ephemeral port).
    pub tls_addr: Option<SocketAddr>,
    /// Where it serves `/metrics` and the probes, with `[metrics] listen`.
    pub http_addr: Option<SocketAddr>,
    /// Its shared state (`trigger_shutdown()`).
    pub shared: Arc<Shared>,
    /// Its data directory.
    pub data_dir: PathBuf,
    run: JoinHandle<ShutdownReport>,
    _dir: Option<TempDir>,
}

impl TestServer {
    /// A server with the default configuration (built-in write-back keyspace, journal `fsync`)
    /// in a fresh temporary data directory, removed when the server is dropped.
    pub async fn start() -> TestServer {
        Self::start_with(Durability::Fsync).await
    }

    /// As [`TestServer::start`], with the given journal durability.
    pub async fn start_with(durability: Durability) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Self::start_in(dir.path(), durability).await;
        server._dir = Some(dir);
        server
    }

    /// A server over an existing data directory (to restart over the same data).
    pub async fn start_in(data_dir: &Path, durability: Durability) -> TestServer {
        let mut config = FileConfig::default();
        config.server.port = 0;
        config.engine.data_dir = data_dir.to_path_buf();
        config.engine.journal.durability = durability;
        Self::launch(config, None).await
    }

    /// A server with `config` (its port and data dir replaced by an ephemeral port and a
    /// fresh temporary directory).
    pub async fn start_config(mut config: FileConfig) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        config.server.port = 0;
        config.engine.data_dir = dir.path().to_path_buf();
        Self::launch(config, Some(dir)).await
    }

    /// As [`TestServer::start_config`], running `setup_sql` on the embedded SQLite database
    /// (`<data_dir>/sluice.db`) first, so mapped keyspaces find their tables at start-up.
    pub async fn start_config_with_sql(mut config: FileConfig, setup_sql: &str) -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        if !setup_sql.is_empty() {
            let conn = rusqlite::Connection::open(dir.path().join(SQLITE_FILE)).expect("open db");
            conn.execute_batch(setup_sql).expect("setup sql");
        }
        config.server.port = 0;
        config.engine.data_dir = dir.path().to_path_buf();
        Self::launch(config, Some(dir)).await
    }

    /// The embedded SQLite database file (when no `[store] url` is configured).
    pub fn sqlite_path(&self) -> PathBuf {
        self.data_dir.join(SQLITE_FILE)
    }

    /// A fresh connection to the embedded SQLite database, as another program would open it.
    pub fn sqlite(&self) -> rusqlite::Connection {
        let conn = rusqlite::Connection::open(self.sqlite_path()).expect("open db");
        conn.busy_timeout(Duration::from_secs(5))
            .expect("busy timeout");
        conn
    }

    /// Opens the engine, binds and runs the server; `dir` is removed when the server is.
    async fn launch(config: FileConfig, dir: Option<TempDir>) -> TestServer {
        let data_dir = config.engine.data_dir.clone();
        let sluice = Sluice::open(config.engine).await.expect("open sluice");
        let server = Server::bind(sluice, config.server).await.expect("bind");
        let tls_addr = server.tls_local_addr();
        let http_addr = server.http_local_addr();
        let addr = server.local_addr().ok().or(tls_addr).expect("local addr");
        let shared = server.shared();
        let run = tokio::spawn(server.run());
        TestServer {
            addr,
            tls_addr,
            http_addr,
            shared,
            data_dir,
            run,
            _dir: dir,
        }
    }

    /// The port, for external clients.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// A `redis://` URL for client libraries.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// A raw client connected to this server.
    pub async fn client(&self) -> RawClient {
        RawClient::connect(self.addr).await
    }

    /// Triggers a graceful shutdown and waits for the drain.
    pub async fn stop(self) -> ShutdownReport {
        self.shared.trigger_shutdown();
        self.wait().await
    }

    /// Waits for the server to stop on its own (after SHUTDOWN).
    pub async fn wait(self) -> ShutdownReport {
        tokio::time::timeout(Duration::from_secs(60), self.run)
            .await
            .expect("server stops within 60s")
            .expect("server task")
    }
}

/// The multibulk encoding of a command.
pub fn encode(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The length of the first complete RESP2/RESP3 reply in `buf`, or `None` if it is not all
/// there yet.
pub fn reply_len(buf: &[u8]) -> Option<usize> {
    let line_end = buf.windows(2).position(|w| w == b"\r\n")? + 2;
    let count = || -> i64 {
        std::str::from_utf8(&buf[1..line_end - 2])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad length line {:?}", String::from_utf8_lossy(buf)))
    };
    match buf[0] {
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => Some(line_end),
        b'$' | b'=' | b'!' => {
            let n = count();
            if n < 0 {
                return Some(line_end);
            }
            let end = line_end + n as usize + 2;
            (buf.len() >= end).then_some(end)
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = count().max(0) as usize * if matches!(buf[0], b'%' | b'|') { 2 } else { 1 };
            let mut at = line_end;
            for _ in 0..n {
                at += reply_len(&buf[at..])?;
            }
            Some(at)
        }
        other => panic!(
            "not a RESP reply (type byte {other:#x}): {:?}",
            String::from_utf8_lossy(buf)
        ),
    }
}

/// A client that speaks raw bytes and returns raw replies.
pub struct RawClient {
    stream: TcpStream,
    buf: BytesMut,
}

impl RawClient {
    /// Connects.
    pub async fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        RawClient {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Connects, or `None` if nothing listens there.
    pub async fn try_connect(addr: &str) -> Option<RawClient> {
        let stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
            .await
            .ok()?
            .ok()?;
        stream.set_nodelay(true).ok()?;
        Some(RawClient {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        })
    }

    /// Writes bytes as they are.
    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Reads one complete reply and returns its exact bytes.
    pub async fn reply(&mut self) -> Vec<u8> {
        tokio::time::timeout(REPLY_TIMEOUT, async {
            loop {
                if !self.buf.is_empty() {
                    if let Some(n) = reply_len(&self.buf) {
                        return self.buf.split_to(n).to_vec();
                    }
                }
                let n = self.stream.read_buf(&mut self.buf).await.expect("read");
                assert!(
                    n > 0,
                    "connection closed mid-reply; have {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        })
        .await
        .expect("reply within the timeout")
    }

    /// Reads exactly `n` replies, concatenated.
    pub async fn replies(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.extend(self.reply().await);
        }
        out
    }

    /// Sends a command as multibulk and returns its reply.
    pub async fn cmd(&mut self, args: &[&[u8]]) -> Vec<u8> {
        self.send(&encode(args)).await;
        self.reply().await
    }

    /// Waits until INFO says `n` clients are blocked (waiting on keys, their first look
    /// done); panics after 5 s.
    pub async fn until_blocked(&mut self, n: usize) {
        let want = format!("blocked_clients:{n}\r\n");
        for _ in 0..500 {
            let info = self.run("INFO clients").await;
            if String::from_utf8_lossy(&info).contains(&want) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("never {n} blocked clients");
    }

    /// Sends a command given as space-separated words (no quoting) and returns its reply.
    pub async fn run(&mut self, line: &str) -> Vec<u8> {
        let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
        self.cmd(&args).await
    }

    /// Everything the server sends until it closes the connection (`true`) or stays silent
    /// for `idle` (`false`).
    pub async fn read_until_close(&mut self, idle: Duration) -> (Vec<u8>, bool) {
        let mut out = self.buf.split().to_vec();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match tokio::time::timeout(idle, self.stream.read(&mut chunk)).await {
                Err(_) => return (out, false),
                Ok(Ok(0)) | Ok(Err(_)) => return (out, true),
                Ok(Ok(n)) => out.extend_from_slice(&chunk[..n]),
            }
        }
    }
}

/// Shows bytes as an escaped string, for assertion messages.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// One HTTP/1.1 GET; returns the status code and the body.
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    basic_auth: Option<(&str, &str)>,
) -> (u16, String) {
    http_request(addr, "GET", path, basic_auth, &[]).await
}

/// One HTTP/1.1 request with no body, as `user:password` basic auth if given and with
/// `headers`; returns the status code and the body.
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    basic_auth: Option<(&str, &str)>,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use base64::Engine as _;
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    if let Some((user, password)) = basic_auth {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request.push_str(&format!("Authorization: Basic {token}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("send");
    let mut response = String::new();
    tokio::time::timeout(REPLY_TIMEOUT, stream.read_to_string(&mut response))
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

/// A redis-server started for one test on a free port, stopped when dropped: for comparisons
/// that change its configuration or statistics, which the shared oracle must keep.
pub struct OwnRedis {
    child: std::process::Child,
    /// `127.0.0.1:port`.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl OwnRedis {
    /// Starts one; `None` without a `redis-server` binary.
    pub async fn start() -> Option<OwnRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir = tempfile::tempdir().ok()?;
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let redis = OwnRedis {
            child,
            addr: format!("127.0.0.1:{port}"),
            _dir: dir,
        };
        for _ in 0..100 {
            if RawClient::try_connect(&redis.addr).await.is_some() {
                return Some(redis);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A redis-server of the test's own and a Sluice (journal `os`), with a connection to each;
/// `None`, after printing `skipped`, without a `redis-server` binary. Keep the `OwnRedis`
/// alive: dropping it stops the server.
pub async fn own_redis_and_sluice() -> Option<(OwnRedis, TestServer, RawClient, RawClient)> {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return None;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    let on_redis = RawClient::try_connect(&redis.addr).await.expect("redis");
    let on_sluice = sluice.client().await;
    Some((redis, sluice, on_redis, on_sluice))
}

/// `None` when both servers answered `line` alike, else a report of the two replies.
pub fn mismatch(line: &str, redis: &[u8], sluice: &[u8]) -> Option<String> {
    (redis != sluice).then(|| {
        format!(
            "{line}\n    redis:  {}\n    sluice: {}",
            show(redis),
            show(sluice)
        )
    })
}

/// The elements of one RESP2 array reply, each as its raw bytes.
pub fn elements(reply: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(reply[0], b'*', "an array: {}", show(reply));
    let header = reply.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut at = header;
    let mut out = Vec::new();
    while at < reply.len() {
        let n = reply_len(&reply[at..]).unwrap();
        out.push(reply[at..at + n].to_vec());
        at += n;
    }
    out
}

/// Runs `program args…` with a deadline; `None` (with a printed reason) when the program
/// cannot be started. Panics with its output when it fails.
pub async fn run_client(program: &str, args: &[&str]) -> Option<()> {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args).kill_on_drop(true);
    let out = match tokio::time::timeout(Duration::from_secs(25), cmd.output()).await {
        Err(_) => panic!("{program} {args:?} did not finish within 25 s"),
        Ok(Err(e)) => {
            println!("skipped: cannot run {program}: {e}");
            return None;
        }
        Ok(Ok(out)) => out,
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );
    print!("{stdout}");
    Some(())
}

/// Whether `python3` runs and has redis-py; prints why not.
pub fn python_with_redis() -> bool {
    match std::process::Command::new("python3")
        .args(["-c", "import redis"])
        .output()
    {
        Err(e) => {
            println!("skipped: python3 not found ({e}); .ci/run installs redis-py");
            false
        }
        Ok(out) if !out.status.success() => {
            println!(
                "skipped: python3 cannot import redis (pip install redis; .ci/run does): {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            false
        }
        Ok(_) => true,
    }
}

pub fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients")
}

/// Whether `tests/clients/node` has ioredis installed; prints why not.
pub fn node_with_ioredis() -> bool {
    let dir = clients_dir().join("node");
    let installed = dir.join("node_modules/ioredis").is_dir();
    if !installed {
        println!(
            "skipped: {} has no node_modules/ioredis; run npm ci --prefix {} (.ci/run does)",
            dir.display(),
            dir.display()
        );
    }
    installed
}

/// Splits a command line into arguments: words separated by spaces; a word in double quotes
/// may contain spaces and the escapes `\" \\ \r \n \t \xHH`.
pub fn split(line: &str) -> Vec<Vec<u8>> {
    let bytes = line.as_bytes();
    let mut args = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b' ' {
            i += 1;
            continue;
        }
        let mut arg = Vec::new();
        if bytes[i] == b'"' {
            i += 1;
            while bytes[i] != b'"' {
                if bytes[i] == b'\\' {
                    let (byte, len) = match bytes[i + 1] {
                        b'x' => {
                            let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
                            (u8::from_str_radix(hex, 16).unwrap(), 4)
                        }
                        b'r' => (b'\r', 2),
                        b'n' => (b'\n', 2),
                        b't' => (b'\t', 2),
                        b'\\' => (b'\\', 2),
                        b'"' => (b'"', 2),
                        other => panic!("bad escape \\{} in {line}", other as char),
                    };
                    arg.push(byte);
                    i += len;
                } else {
                    arg.push(bytes[i]);
                    i += 1;
                }
            }
            i += 1;
        } else {
            while i < bytes.len() && bytes[i] != b' ' {
                arg.push(bytes[i]);
                i += 1;
            }
        }
        args.push(arg);
    }
    args
}

/// The bulk strings of a flat RESP2 array reply.
pub fn bulk_items(reply: &[u8]) -> Vec<Vec<u8>> {
    elements(reply)
        .into_iter()
        .map(|e| {
            let header = e.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
            assert_eq!(e[0], b'$', "a bulk string: {}", show(&e));
            e[header..e.len() - 2].to_vec()
        })
        .collect()
}

/// The built-in keyspace's counters, from its `keyspace_<name>:` line of INFO sluice.
#[derive(Debug, Clone, Copy)]
pub struct Counters {
    pub writes: u64,
    pub flushes: u64,
    pub rows_stored: u64,
}

pub async fn counters(c: &mut RawClient) -> Counters {
    let info = String::from_utf8(c.run("INFO sluice").await).expect("utf-8");
    let line = info
        .lines()
        .find(|l| l.starts_with("keyspace_"))
        .unwrap_or_else(|| panic!("no keyspace line in {info}"));
    let field = |name: &str| -> u64 {
        line.split([':', ','])
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .unwrap_or_else(|| panic!("no {name} in {line}"))
            .parse()
            .expect("a count")
    };
    Counters {
        writes: field("writes"),
        flushes: field("flushes"),
        rows_stored: field("rows_stored"),
    }
}

/// Sends `commands` in pipelines of about 64 KiB; every reply, in order.
pub async fn pipeline(c: &mut RawClient, commands: &[Vec<Vec<u8>>]) -> Vec<Vec<u8>> {
    let mut replies = Vec::with_capacity(commands.len());
    let mut batch = Vec::new();
    let mut pending = 0;
    for (i, command) in commands.iter().enumerate() {
        let argv: Vec<&[u8]> = command.iter().map(Vec::as_slice).collect();
        batch.extend(encode(&argv));
        pending += 1;
        if batch.len() > 64 * 1024 || i + 1 == commands.len() {
            c.send(&batch).await;
            for _ in 0..pending {
                replies.push(c.reply().await);
            }
            batch.clear();
            pending = 0;
        }
    }
    replies
}

/// The oracle named by `SLUICE_TEST_REDIS_URL` as `(host, port)`, if it answers; `None` after
/// printing why the check against it is skipped. Real-client scripts run against it first.
pub async fn oracle() -> Option<(String, String)> {
    let Ok(url) = std::env::var("SLUICE_TEST_REDIS_URL") else {
        println!("skipped (the check against redis-server): SLUICE_TEST_REDIS_URL is not set");
        return None;
    };
    let addr = url.trim_start_matches("redis://");
    let addr = addr.split('/').next().unwrap_or(addr);
    let addr = addr.rsplit('@').next().unwrap_or(addr).to_string();
    if RawClient::try_connect(&addr).await.is_none() {
        println!("skipped (the check against redis-server): nothing answers at {url}");
        return None;
    }
    let (host, port) = addr.rsplit_once(':').unwrap_or((&addr, "6379"));
    Some((host.to_string(), port.to_string()))
}

/// A server on `dir` (journal fsynced) whose write-back keyspace flushes only on SLUICE.FLUSH
/// (an hour's interval, a batch of 100,000), and a client of it: the counts a test takes
/// around a SLUICE.FLUSH are those of that flush.
pub async fn flushed_on_demand(dir: &Path) -> (TestServer, RawClient) {
    let server = TestServer::start_in(dir, Durability::Fsync).await;
    let mut c = server.client().await;
    let set = c
        .run("CONFIG SET sluice-flush_interval 3600000 sluice-flush_batch 100000")
        .await;
    assert_eq!(set, b"+OK\r\n");
    (server, c)
}

/// Counts, from now on, the rows of `sluice_members` inserted, updated and deleted (triggers in
/// the built-in table's database); [`member_writes`] reads the counts.
pub fn count_member_writes(db: &rusqlite::Connection) {
    db.execute_batch(
        "CREATE TABLE member_writes (op TEXT PRIMARY KEY, n INTEGER NOT NULL);
         INSERT INTO member_writes VALUES ('insert', 0), ('update', 0), ('delete', 0);
         CREATE TRIGGER count_inserts AFTER INSERT ON sluice_members
         BEGIN UPDATE member_writes SET n = n + 1 WHERE op = 'insert'; END;
         CREATE TRIGGER count_updates AFTER UPDATE ON sluice_members
         BEGIN UPDATE member_writes SET n = n + 1 WHERE op = 'update'; END;
         CREATE TRIGGER count_deletes AFTER DELETE ON sluice_members
         BEGIN UPDATE member_writes SET n = n + 1 WHERE op = 'delete'; END;",
    )
    .expect("counting triggers");
}

/// The `sluice_members` rows [inserted, updated, deleted] since [`count_member_writes`].
pub fn member_writes(db: &rusqlite::Connection) -> [i64; 3] {
    let n = |op: &str| {
        db.query_row("SELECT n FROM member_writes WHERE op = ?1", [op], |r| {
            r.get(0)
        })
        .expect("count")
    };
    [n("insert"), n("update"), n("delete")]
}

/// Runs a redis-py client script (in `clients_dir()`) against the oracle first, if one
/// answers, so that its expectations are Redis's, then against a fresh in-process Sluice; a
/// failure of either fails the test. Skipped without python3 and redis-py.
pub async fn redis_py_against_oracle_then_sluice(script: &str) {
    if !python_with_redis() {
        return;
    }
    let script = clients_dir().join(script);
    let script = script.to_str().expect("a UTF-8 path");
    if let Some((host, port)) = oracle().await {
        let started = std::time::Instant::now();
        run_client("python3", &[script, "--host", &host, "--port", &port]).await;
        eprintln!("{script} against redis-server: {:?}", started.elapsed());
    }
    let server = TestServer::start().await;
    let port = server.port().to_string();
    let started = std::time::Instant::now();
    run_client("python3", &[script, "--port", &port]).await;
    eprintln!("{script} against Sluice: {:?}", started.elapsed());
    server.stop().await;
}
