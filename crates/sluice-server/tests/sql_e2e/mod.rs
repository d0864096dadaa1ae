//! Shared helpers of the PostgreSQL and MySQL end-to-end tests (`postgres_e2e.rs`,
//! `mysql_e2e.rs`): the real `sluice` binary on a free port, an async raw RESP client, a TCP
//! proxy that can cut and restore the way to the database, and table clean-up that runs even
//! when the test body panics.

#![allow(dead_code)]

use std::future::Future;
use std::io;
use std::net::{SocketAddr, TcpListener as StdTcpListener};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod collections;

pub use crate::resp_reply::Reply;
use crate::resp_reply::{bulk_body, parse_head, strip_crlf, Head};

/// How long any single reply may take before the test fails.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(20);

/// The database URL from `var`, or `None` (after saying so) when it is unset or empty.
pub fn env_url(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url.trim().to_string()),
        _ => {
            eprintln!("skipped: {var} not set");
            None
        }
    }
}

/// A suffix for table names unique to this run: process id and a counter.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Runs `body` as its own task, then `cleanup` whatever happened, then re-raises a panic of
/// the body. (The body's server is killed when its task is dropped, before the clean-up.)
pub async fn with_cleanup<B, C>(body: B, cleanup: C)
where
    B: Future<Output = ()> + Send + 'static,
    C: Future<Output = ()>,
{
    let result = tokio::spawn(body).await;
    cleanup.await;
    if let Err(e) = result {
        if e.is_panic() {
            std::panic::resume_unwind(e.into_panic());
        }
        panic!("test body did not finish: {e}");
    }
}

// ---------------------------------------------------------------------------------------
// A raw RESP2 client: every reply is read whole, so "acknowledged" is exact.
// ---------------------------------------------------------------------------------------

impl Reply {
    /// True for `+OK`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Reply::Status(s) if s == "OK")
    }

    /// The error text, if this is an error reply.
    pub fn error(&self) -> Option<&str> {
        match self {
            Reply::Error(e) => Some(e),
            _ => None,
        }
    }

    /// A bulk reply as a string (`None` for nil); panics on anything else.
    pub fn bulk_str(&self) -> Option<String> {
        match self {
            Reply::Bulk(v) => v.as_ref().map(|b| String::from_utf8_lossy(b).into_owned()),
            other => panic!("expected a bulk reply, got {other:?}"),
        }
    }
}

/// A connection to the server.
pub struct Resp {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Resp {
    /// Connects to 127.0.0.1:`port`.
    pub async fn connect(port: u16) -> io::Result<Resp> {
        let stream = TcpStream::connect(("127.0.0.1", port)).await?;
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok(Resp {
            reader: BufReader::new(r),
            writer: w,
        })
    }

    /// Sends one command and reads its reply, within [`REPLY_TIMEOUT`].
    pub async fn try_cmd(&mut self, args: &[&str]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        match tokio::time::timeout(REPLY_TIMEOUT, async {
            self.writer.write_all(&out).await?;
            self.read_reply().await
        })
        .await
        {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no reply to {args:?} within {REPLY_TIMEOUT:?}"),
            )),
        }
    }

    /// Sends `commands` in one write and reads their replies, in order, within
    /// [`REPLY_TIMEOUT`]; panics on a connection error or a timeout.
    pub async fn pipeline(&mut self, commands: &[Vec<String>]) -> Vec<Reply> {
        let mut out = Vec::new();
        for args in commands {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
                out.extend_from_slice(a.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        tokio::time::timeout(REPLY_TIMEOUT, async {
            self.writer.write_all(&out).await?;
            let mut replies = Vec::with_capacity(commands.len());
            for _ in commands {
                replies.push(self.read_reply().await?);
            }
            Ok::<_, io::Error>(replies)
        })
        .await
        .unwrap_or_else(|_| panic!("no replies to a pipeline within {REPLY_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("pipeline: {e}"))
    }

    /// Sends one command; panics on a connection error or a timeout.
    pub async fn cmd(&mut self, args: &[&str]) -> Reply {
        self.try_cmd(args)
            .await
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    /// Sends a command that must answer `+OK`.
    pub async fn ok(&mut self, args: &[&str]) {
        let reply = self.cmd(args).await;
        assert!(reply.is_ok(), "{args:?}: expected +OK, got {reply:?}");
    }

    /// GET, expecting a bulk reply.
    pub async fn get(&mut self, key: &str) -> Option<String> {
        match self.cmd(&["GET", key]).await {
            Reply::Bulk(v) => v.map(|b| String::from_utf8_lossy(&b).into_owned()),
            other => panic!("GET {key}: unexpected reply {other:?}"),
        }
    }

    /// A command that must answer an error; returns its text.
    pub async fn err(&mut self, args: &[&str]) -> String {
        match self.cmd(args).await {
            Reply::Error(e) => e,
            other => panic!("{args:?}: expected an error, got {other:?}"),
        }
    }

    /// The `keyspace_NAME:` line of `INFO sluice`, as field → value.
    pub async fn keyspace_info(&mut self, name: &str) -> Vec<(String, String)> {
        let info = self
            .cmd(&["INFO", "sluice"])
            .await
            .bulk_str()
            .expect("INFO");
        let prefix = format!("keyspace_{name}:");
        let line = info
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {prefix} line in INFO sluice:\n{info}"));
        line.split(',')
            .filter_map(|f| f.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// One numeric field of the keyspace's INFO line (e.g. `buffered`).
    pub async fn keyspace_counter(&mut self, name: &str, field: &str) -> u64 {
        let fields = self.keyspace_info(name).await;
        fields
            .iter()
            .find(|(k, _)| k == field)
            .unwrap_or_else(|| panic!("no {field} in keyspace_{name}: {fields:?}"))
            .1
            .parse()
            .unwrap_or_else(|e| panic!("{field} of keyspace_{name}: {e}"))
    }

    fn read_reply(&mut self) -> Pin<Box<dyn Future<Output = io::Result<Reply>> + Send + '_>> {
        Box::pin(async move {
            let mut line = Vec::new();
            self.reader.read_until(b'\n', &mut line).await?;
            match parse_head(&strip_crlf(line)?)? {
                Head::Done(reply) => Ok(reply),
                Head::Bulk(len) => {
                    let mut buf = vec![0u8; len + 2];
                    self.reader.read_exact(&mut buf).await?;
                    Ok(bulk_body(buf))
                }
                Head::Array(len) => {
                    let mut items = Vec::with_capacity(len);
                    for _ in 0..len {
                        items.push(self.read_reply().await?);
                    }
                    Ok(Reply::Array(Some(items)))
                }
            }
        })
    }
}

/// The strings of an array reply of bulk strings, sorted.
pub fn sorted_strings(reply: Reply) -> Vec<String> {
    let Reply::Array(Some(items)) = reply else {
        panic!("expected an array, got {reply:?}");
    };
    let mut out: Vec<String> = items.iter().filter_map(Reply::bulk_str).collect();
    out.sort();
    out
}

// ---------------------------------------------------------------------------------------
// The binary.
// ---------------------------------------------------------------------------------------

fn free_port() -> u16 {
    StdTcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// One `sluice serve` process with its own data dir; killed when dropped.
pub struct Sluice {
    child: Child,
    /// The port it answers on.
    pub port: u16,
    log: PathBuf,
    /// Starts so far, so that each one logs to a file of its own.
    starts: usize,
    dir: tempfile::TempDir,
}

impl Sluice {
    /// Writes `config` (the TOML file, without `[server]`: port and data dir are flags),
    /// starts the binary and waits until it answers PING.
    pub async fn start(config: &str) -> Sluice {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("sluice.toml");
        std::fs::write(&config_path, config).expect("write config");
        let (child, port, log) = spawn_ready(dir.path(), 0).await;
        Sluice {
            child,
            port,
            log,
            starts: 1,
            dir,
        }
    }

    /// SIGKILLs the process (no shutdown of any kind) and starts it again on the same data
    /// dir and config, on a new port.
    pub async fn kill_and_restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, port, log) = spawn_ready(self.dir.path(), self.starts).await;
        self.starts += 1;
        (self.child, self.port, self.log) = (child, port, log);
    }

    /// A new client connection.
    pub async fn client(&self) -> Resp {
        Resp::connect(self.port)
            .await
            .unwrap_or_else(|e| panic!("connect to sluice: {e}; log:\n{}", self.log()))
    }

    /// The server's stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts the binary with `dir`'s config and data dir and waits until it answers PING: the
/// process, its port and its log. `start` numbers the log files.
async fn spawn_ready(dir: &Path, start: usize) -> (Child, u16, PathBuf) {
    let mut last = String::new();
    for attempt in 0..5 {
        let port = free_port();
        let log = dir.join(format!("sluice-{start}-{attempt}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("serve")
            .arg("--config")
            .arg(dir.join("sluice.toml"))
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create log"))
            .spawn()
            .expect("spawn sluice");
        match wait_ready(&mut child, port, &log).await {
            Ok(()) => return (child, port, log),
            // The port was taken between probing and binding: try another.
            Err(text) if text.contains("cannot listen") => last = text,
            Err(text) => panic!("sluice did not start:\n{text}"),
        }
    }
    panic!("sluice could not bind a port:\n{last}");
}

impl Drop for Sluice {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until the child answers PING on `port`; on failure the child is reaped and the
/// error carries its log.
async fn wait_ready(child: &mut Child, port: u16, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let read_log = || std::fs::read_to_string(log).unwrap_or_default();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status}; log:\n{}", read_log()));
        }
        if let Ok(Ok(mut c)) =
            tokio::time::timeout(Duration::from_secs(2), Resp::connect(port)).await
        {
            if let Ok(Reply::Status(s)) = c.try_cmd(&["PING"]).await {
                if s == "PONG" {
                    return Ok(());
                }
            }
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("no PONG within 30s; log:\n{}", read_log()));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A PostgreSQL server's address, and `url` pointed at 127.0.0.1:`port` instead (a proxy's).
pub fn pg_upstream_and_proxied_url(url: &str, port: u16) -> (SocketAddr, String) {
    let upstream = pg_upstream(url);
    (upstream, pg_url_at(url, &format!("127.0.0.1:{port}"), None))
}

/// `url` naming the database `dbname` on the same server.
pub fn pg_url_with_database(url: &str, dbname: &str) -> String {
    pg_url_at(url, &pg_upstream(url).to_string(), Some(dbname))
}

fn pg_upstream(url: &str) -> SocketAddr {
    let cfg: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    let host = match cfg.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let db_port = cfg.get_ports().first().copied().unwrap_or(5432);
    std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), db_port))
        .expect("resolve the database host")
        .next()
        .expect("an address for the database host")
}

/// `url`'s user and password at `host_port`, on `dbname` or `url`'s own database.
fn pg_url_at(url: &str, host_port: &str, dbname: Option<&str>) -> String {
    let cfg: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    let user = cfg.get_user().unwrap_or("postgres");
    let auth = match cfg.get_password() {
        Some(p) => format!("{user}:{}", String::from_utf8_lossy(p)),
        None => user.to_string(),
    };
    let db = dbname.or(cfg.get_dbname()).unwrap_or(user);
    format!("postgres://{auth}@{host_port}/{db}")
}

// ---------------------------------------------------------------------------------------
// A TCP proxy that can cut the way to the database.
// ---------------------------------------------------------------------------------------

/// What the proxy does with connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward to the upstream address.
    Forward,
    /// Accept, then close at once: the client sees the connection drop during start-up.
    Refuse,
    /// Accept and never answer (until the next mode change): a hung database.
    Stall,
}

struct ProxyState {
    /// The mode and its generation; every change ends the connections of older generations.
    mode: parking_lot::Mutex<(ProxyMode, u64)>,
    generation: watch::Sender<u64>,
    forwarded: AtomicUsize,
    refused: AtomicUsize,
    stalled: AtomicUsize,
}

/// A proxy on 127.0.0.1:<ephemeral> in front of `upstream`.
pub struct Proxy {
    /// The port clients connect to.
    pub port: u16,
    state: Arc<ProxyState>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let (generation, _) = watch::channel(0u64);
        let state = Arc::new(ProxyState {
            mode: parking_lot::Mutex::new((ProxyMode::Forward, 0)),
            generation,
            forwarded: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
            stalled: AtomicUsize::new(0),
        });
        let accept_state = state.clone();
        let accept = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (mode, gen, mut changed) = {
                    let m = accept_state.mode.lock();
                    (m.0, m.1, accept_state.generation.subscribe())
                };
                match mode {
                    ProxyMode::Refuse => {
                        accept_state.refused.fetch_add(1, Ordering::Relaxed);
                        drop(client);
                    }
                    ProxyMode::Stall => {
                        accept_state.stalled.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            // Hold the socket, silent, until the mode changes.
                            while *changed.borrow_and_update() == gen {
                                if changed.changed().await.is_err() {
                                    break;
                                }
                            }
                            drop(client);
                        });
                    }
                    ProxyMode::Forward => {
                        accept_state.forwarded.fetch_add(1, Ordering::Relaxed);
                        tokio::spawn(async move {
                            let _ = client.set_nodelay(true);
                            let Ok(mut upstream) = TcpStream::connect(upstream).await else {
                                return;
                            };
                            let _ = upstream.set_nodelay(true);
                            let mut client = client;
                            let cut = async {
                                while *changed.borrow_and_update() == gen {
                                    if changed.changed().await.is_err() {
                                        // The proxy is gone: end the connection too.
                                        break;
                                    }
                                }
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                                _ = cut => {}
                            }
                            // Dropping both sockets cuts the connection on both sides.
                        });
                    }
                }
            }
        });
        Proxy {
            port,
            state,
            accept,
        }
    }

    /// Switches mode. Every connection accepted before the switch is cut (closed on both
    /// sides, mid-statement or not); new ones get the new mode.
    pub fn set_mode(&self, mode: ProxyMode) {
        let mut m = self.state.mode.lock();
        m.0 = mode;
        m.1 += 1;
        self.state.generation.send_replace(m.1);
    }

    /// Connections forwarded, refused and stalled so far.
    pub fn counts(&self) -> (usize, usize, usize) {
        (
            self.state.forwarded.load(Ordering::Relaxed),
            self.state.refused.load(Ordering::Relaxed),
            self.state.stalled.load(Ordering::Relaxed),
        )
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        // Ends every connection task still running.
        let mut m = self.state.mode.lock();
        m.1 += 1;
        self.state.generation.send_replace(m.1);
    }
}

// ---------------------------------------------------------------------------------------
// A hash keyspace on a row, the same scenario on every database.
// ---------------------------------------------------------------------------------------

/// A row of the `users (id, name, email, age CHECK (age >= 0))` table as the database holds
/// it: `None` without a row, else (name, email, age) as text, NULL as `None`.
pub type UserRow = Option<[Option<String>; 3]>;

/// Reads row `id` of the users table with the database's own client.
pub type ReadUser =
    dyn Fn(i64) -> std::pin::Pin<Box<dyn Future<Output = UserRow> + Send>> + Send + Sync;

/// The config of a write-through hash keyspace `user:{id}` on `table`.
pub fn users_keyspace(url: &str, table: &str) -> String {
    format!(
        r#"
[store]
url = "{url}"

[[keyspace]]
name = "users"
keys = "user:{{id}}"
table = "{table}"
key_column = "id"
columns = ["name", "email", "age"]
policy = "write-through"
"#
    )
}

fn strings(reply: Reply) -> Vec<String> {
    let Reply::Array(Some(items)) = reply else {
        panic!("expected an array, got {reply:?}");
    };
    items.iter().filter_map(Reply::bulk_str).collect()
}

/// HSET writes exactly the named columns; HGETALL reads the row (NULL columns absent); HDEL
/// sets a column NULL; HINCRBY works on an integer column; a field that is not a column, or
/// a value the column cannot hold, is refused with nothing written; an EXEC whose statement
/// the database refuses applies nothing, in the table or the cache; DEL sets the mapped
/// columns NULL.
pub async fn hash_rows_scenario(server: &Sluice, row: &ReadUser) {
    let mut c = server.client().await;
    let some = |s: &str| Some(s.to_string());
    assert_eq!(
        c.cmd(&["HSET", "user:7", "name", "Ann", "email", "a@b"])
            .await,
        Reply::Int(2)
    );
    assert_eq!(row(7).await, Some([some("Ann"), some("a@b"), None]));
    assert_eq!(
        c.cmd(&["HINCRBY", "user:7", "age", "41"]).await,
        Reply::Int(41)
    );
    assert_eq!(row(7).await, Some([some("Ann"), some("a@b"), some("41")]));
    assert_eq!(
        strings(c.cmd(&["HGETALL", "user:7"]).await),
        ["name", "Ann", "email", "a@b", "age", "41"]
    );
    assert_eq!(c.cmd(&["HDEL", "user:7", "email"]).await, Reply::Int(1));
    assert_eq!(row(7).await, Some([some("Ann"), None, some("41")]));
    assert_eq!(
        c.cmd(&["TYPE", "user:7"]).await,
        Reply::Status("hash".into())
    );

    let refused = c
        .err(&["HSET", "user:7", "nosuch", "x", "name", "Bob"])
        .await;
    assert!(refused.contains("nosuch"), "names the field: {refused}");
    let refused = c.err(&["HSET", "user:7", "age", "old"]).await;
    assert!(refused.contains("age"), "names the column: {refused}");
    let refused = c.err(&["HINCRBY", "user:7", "name", "1"]).await;
    assert!(refused.contains("not an integer"), "{refused}");
    assert_eq!(row(7).await, Some([some("Ann"), None, some("41")]));

    // The database refuses age -5 (CHECK): nothing of the EXEC is applied.
    c.ok(&["MULTI"]).await;
    for args in [
        ["HSET", "user:8", "name", "Bob"],
        ["HSET", "user:7", "age", "-5"],
    ] {
        assert_eq!(c.cmd(&args).await, Reply::Status("QUEUED".into()));
    }
    let refused = c.err(&["EXEC"]).await;
    assert!(
        refused.contains("user:7") && refused.contains("nothing of the transaction"),
        "names the key: {refused}"
    );
    assert_eq!(row(8).await, None, "no row created by the refused EXEC");
    assert_eq!(row(7).await, Some([some("Ann"), None, some("41")]));
    assert_eq!(
        c.cmd(&["HGET", "user:7", "age"]).await,
        Reply::Bulk(Some(b"41".to_vec()))
    );
    assert_eq!(c.cmd(&["EXISTS", "user:8"]).await, Reply::Int(0));

    // Without the refused statement both rows are written, in one transaction.
    c.ok(&["MULTI"]).await;
    for args in [
        ["HSET", "user:8", "name", "Bob"],
        ["HSET", "user:7", "age", "42"],
    ] {
        assert_eq!(c.cmd(&args).await, Reply::Status("QUEUED".into()));
    }
    assert_eq!(
        c.cmd(&["EXEC"]).await,
        Reply::Array(Some(vec![Reply::Int(1), Reply::Int(0)]))
    );
    assert_eq!(row(8).await, Some([some("Bob"), None, None]));
    assert_eq!(row(7).await, Some([some("Ann"), None, some("42")]));

    assert_eq!(c.cmd(&["DEL", "user:7"]).await, Reply::Int(1));
    assert_eq!(
        row(7).await,
        Some([None, None, None]),
        "set-null keeps the row"
    );
    assert_eq!(
        c.cmd(&["HGETALL", "user:7"]).await,
        Reply::Array(Some(vec![]))
    );
    assert_eq!(c.cmd(&["EXISTS", "user:7"]).await, Reply::Int(0));
}

// ---------------------------------------------------------------------------------------
// A write-back transaction spanning keyspaces, the same scenario on every database.
// ---------------------------------------------------------------------------------------

/// The price of product `id` as the database's text, `None` without a row or for NULL.
pub type ReadPrice =
    dyn Fn(i64) -> std::pin::Pin<Box<dyn Future<Output = Option<String>> + Send>> + Send + Sync;

/// The config of `product:{id}:price` on `table.price` and the built-in table (every other
/// key), both write-back, flushed only when asked (SLUICE.FLUSH).
pub fn spanning_write_back_keyspaces(url: &str, table: &str) -> String {
    format!(
        r#"
[store]
url = "{url}"

[[keyspace]]
name = "price"
keys = "product:{{id}}:price"
table = "{table}"
key_column = "id"
value_column = "price"
policy = "write-back"
flush_interval = "1h"

[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
flush_interval = "1h"
"#
    )
}

/// The table and the built-in key of one run of [`spanning_write_back_scenario`], used by no
/// other run.
pub fn spanning_names() -> (String, String) {
    let suffix = unique_suffix();
    (
        format!("sluice_e2e_prices_{suffix}"),
        format!("sluice_e2e:{suffix}:plain"),
    )
}

fn array_len(reply: &Reply) -> Option<usize> {
    match reply {
        Reply::Array(Some(items)) => Some(items.len()),
        _ => None,
    }
}

/// On a `table (id, price CHECK (price >= 0))` holding products 1 and 2: an EXEC writing the
/// built-in table and two prices, one of them refused by the database at the flush, stores none
/// of its writes (each is a dead letter, and the built-in key reads back absent); a good MSET
/// over both keyspaces is stored whole. `plain` is a built-in key no other run uses.
pub async fn spanning_write_back_scenario(server: &Sluice, price: &ReadPrice, plain: &str) {
    let mut c = server.client().await;
    let (one, two) = (price(1).await, price(2).await);
    c.ok(&["MULTI"]).await;
    for args in [
        ["SET", plain, "1"],
        ["SET", "product:1:price", "5"],
        ["SET", "product:2:price", "-1"],
    ] {
        assert_eq!(c.cmd(&args).await, Reply::Status("QUEUED".into()));
    }
    assert_eq!(array_len(&c.cmd(&["EXEC"]).await), Some(3));
    c.ok(&["SLUICE.FLUSH"]).await;
    assert_eq!(
        array_len(&c.cmd(&["SLUICE.DEADLETTERS"]).await),
        Some(3),
        "every write of the refused EXEC is a dead letter; log:\n{}",
        server.log()
    );
    assert_eq!(price(1).await, one, "none of the refused EXEC is stored");
    assert_eq!(price(2).await, two);
    // The dead letter dropped the cached copy: this is the database's answer.
    assert_eq!(
        c.get(plain).await,
        None,
        "nor its write to the built-in table"
    );

    c.ok(&["MSET", plain, "2", "product:1:price", "6"]).await;
    c.ok(&["SLUICE.FLUSH"]).await;
    assert!(
        price(1).await.is_some_and(|p| p.starts_with('6')),
        "the good MSET is stored"
    );
    assert_eq!(c.get(plain).await.as_deref(), Some("2"));
    assert_eq!(c.cmd(&["DEL", plain]).await, Reply::Int(1));
    c.ok(&["SLUICE.FLUSH"]).await;
}

// ---------------------------------------------------------------------------------------
// Change capture and a SIGKILL.
// ---------------------------------------------------------------------------------------

/// The store, `[changes]` and keyspace sections of the change-capture tests: `price:{id}`
/// write-through on `table (id, price)`, change capture on as node `node`.
pub fn change_capture_config(url: &str, table: &str, node: &str) -> String {
    format!(
        r#"
[store]
url = "{url}"

[changes]
enabled = true
node_name = "{node}"

[[keyspace]]
name = "price"
keys = "price:{{id}}"
table = "{table}"
key_column = "id"
value_column = "price"
policy = "write-through"
"#
    )
}

/// Every `price:{id}` for ids `0..rows`, as numbers.
async fn read_prices(server: &Sluice, rows: i64) -> Vec<i64> {
    let mut c = server.client().await;
    let mut prices = Vec::with_capacity(rows as usize);
    for id in 0..rows {
        let v = c.get(&format!("price:{id}")).await.expect("the row exists");
        prices.push(v.parse().expect("a number"));
    }
    prices
}

/// Another program sets every price to 1, 2, ... 40, one transaction every 5 ms, while the
/// server (started on `config` with every key cached) is SIGKILLed and restarted on the same
/// data dir and node name. Once the burst is over, every key reads 40 through the restarted
/// server's cache, which the stream keeps in step, and INFO shows no loss of the stream.
/// `set_all(n)` runs the outside `UPDATE ... SET price = n`.
pub async fn change_capture_kill_scenario<F, Fut>(config: String, rows: i64, set_all: F)
where
    F: Fn(i64) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut server = Sluice::start(&config).await;
    assert_eq!(read_prices(&server, rows).await, vec![0; rows as usize]);
    let burst = tokio::spawn(async move {
        for round in 1..=40 {
            set_all(round).await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    tokio::time::sleep(Duration::from_millis(60)).await;
    server.kill_and_restart().await;
    read_prices(&server, rows).await; // Cached again while the burst goes on.
    burst.await.expect("the outside writer");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let seen = read_prices(&server, rows).await;
        if seen.iter().all(|&p| p == 40) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys still read {seen:?}; log:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let info = server
        .client()
        .await
        .cmd(&["INFO", "sluice"])
        .await
        .bulk_str()
        .expect("INFO");
    assert!(info.contains("changes_enabled:1"), "{info}");
    assert!(info.contains("changes_lost:0"), "{info}");
}

/// Waits up to 30 s until `server`'s INFO reports one lost change stream.
pub async fn await_lost_stream(server: &Sluice, c: &mut Resp) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = c.cmd(&["INFO", "sluice"]).await.bulk_str().expect("INFO");
        if info.contains("changes_lost:1") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no lost stream reported: {info}\nlog:\n{}",
            server.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits up to 15 s until `key` reads `want` (a change arriving through the stream).
pub async fn await_value(c: &mut Resp, key: &str, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = c.get(key).await;
        if got.as_deref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} still reads {got:?}, not {want:?}: the stream is not followed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Drops node `node`'s replication slot and publication on PostgreSQL. The slot may still be
/// held for a moment by the walsender of a server just killed: tried for up to 5 s.
pub async fn drop_pg_change_capture(admin: &tokio_postgres::Client, node: &str) {
    let slot = format!("sluice_{node}");
    for _ in 0..50 {
        let dropped = admin
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND NOT active",
                &[&slot],
            )
            .await;
        let left = admin
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await;
        if dropped.is_err() || matches!(left, Ok(None)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = admin
        .batch_execute(&format!("DROP PUBLICATION IF EXISTS {slot}"))
        .await;
}
