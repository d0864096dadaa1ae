//! Crash safety and graceful drain of the real `sluice` binary.
//!
//! Every test starts the binary on a free port with its own data directory, talks RESP over a
//! plain TCP socket, and inspects the SQLite file (`<data-dir>/sluice.db`, table `sluice_kv`)
//! directly.
//!
//! - `crash_safety_{fsync,os,interval}`: writers SET / INCR / DEL their own keys under
//!   write-back, pipelining 1-16 commands; the server is SIGKILLed at a random moment (now and
//!   then during a drain, or again during the replay that follows), restarted on the same data
//!   dir, and every acknowledged write must read back (of the unanswered ones, any prefix may
//!   have landed). After SLUICE.FLUSH the table must equal what GET returns.
//! - `shutdown_drains_buffered_writes` / `sigterm_drains_buffered_writes`: a graceful stop
//!   stores every buffered write and exits 0.
//! - `drain_past_deadline_*`: with the store locked, the drain stops at `shutdown_timeout`,
//!   says the writes stay in the journal, and the next start stores them.
//! - `journal_none_*`: without a journal a kill loses buffered writes, as documented and as
//!   the start-up log warns.
//! - `full_buffer_answers_busy`: `max_dirty` backpressure answers BUSY, and nothing acked is
//!   lost once the store comes back.
//!
//! Set `SLUICE_CRASH_SEED` to replay the kill moments and op choices of a failing run.

mod resp_reply;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use resp_reply::{bulk_body, parse_head, strip_crlf, Head, Reply};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

// ---------------------------------------------------------------------------------------
// A minimal RESP2 client: every reply is read whole, so "acknowledged" is exact.
// ---------------------------------------------------------------------------------------

struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> io::Result<Client> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(20)))?;
        stream.set_write_timeout(Some(Duration::from_secs(20)))?;
        stream.set_nodelay(true)?;
        Ok(Client {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        })
    }

    fn cmd(&mut self, args: &[&[u8]]) -> io::Result<Reply> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out)?;
        self.read_reply()
    }

    fn cmd_str(&mut self, args: &[&str]) -> io::Result<Reply> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.cmd(&args)
    }

    fn read_reply(&mut self) -> io::Result<Reply> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line)?;
        match parse_head(&strip_crlf(line)?)? {
            Head::Done(reply) => Ok(reply),
            Head::Bulk(len) => {
                let mut buf = vec![0u8; len + 2];
                self.reader.read_exact(&mut buf)?;
                Ok(bulk_body(buf))
            }
            Head::Array(len) => {
                let items = (0..len)
                    .map(|_| self.read_reply())
                    .collect::<io::Result<_>>()?;
                Ok(Reply::Array(Some(items)))
            }
        }
    }

    /// GET, expecting a bulk reply.
    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        match self.cmd_str(&["GET", key]).expect("GET") {
            Reply::Bulk(v) => v,
            other => panic!("GET {key}: unexpected reply {other:?}"),
        }
    }

    fn ok(&mut self, args: &[&str]) {
        let reply = self
            .cmd_str(args)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        assert_eq!(reply, Reply::Status("OK".into()), "{args:?}");
    }
}

// ---------------------------------------------------------------------------------------
// Running the binary.
// ---------------------------------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

static LOG_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One run of `sluice serve`; killed on drop if still running.
struct Server {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Server {
    /// Starts the binary on `data` (with `config` as its TOML file, if any) and waits until
    /// it answers PING.
    fn start(data: &Path, config: Option<&str>) -> Server {
        let config_path = config.map(|text| write_config(data, text));
        let mut last_log = String::new();
        for _attempt in 0..5 {
            let mut server = Server::spawn(data, config_path.as_deref());
            match server.wait_ready() {
                Ok(()) => return server,
                Err(text) if text.contains("cannot listen") => last_log = text, // port raced; retry
                Err(text) => panic!("sluice did not start:\n{text}"),
            }
        }
        panic!("sluice could not bind a port:\n{last_log}");
    }

    /// Starts the binary and SIGKILLs it `after` later, ready or not (e.g. mid-recovery).
    fn spawn_and_kill(data: &Path, config: &str, after: Duration) {
        let mut server = Server::spawn(data, Some(&write_config(data, config)));
        thread::sleep(after);
        server.kill();
    }

    fn spawn(data: &Path, config: Option<&Path>) -> Server {
        let base = data.parent().expect("data dir has a parent");
        let port = free_port();
        let log = base.join(format!(
            "sluice-{}.log",
            LOG_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.arg("serve")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(data);
        if let Some(p) = config {
            cmd.arg("--config").arg(p);
        }
        let child = cmd
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("create log"))
            .spawn()
            .expect("spawn sluice");
        Server { child, port, log }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}; log:\n{}", self.log()));
            }
            if let Ok(mut c) = Client::connect(self.port) {
                if let Ok(Reply::Status(s)) = c.cmd_str(&["PING"]) {
                    if s == "PONG" {
                        return Ok(());
                    }
                }
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return Err(format!("no PONG within 30s; log:\n{}", self.log()));
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> Client {
        Client::connect(self.port).expect("connect to sluice")
    }

    fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// SIGKILL, and reap.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid, which has not been reaped yet.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits for the process to exit on its own.
    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                self.kill();
                panic!(
                    "sluice did not exit within {within:?}; log:\n{}",
                    self.log()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The stderr log so far, ANSI escapes removed.
    fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Writes the config next to the data dir.
fn write_config(data: &Path, text: &str) -> PathBuf {
    let p = data
        .parent()
        .expect("data dir has a parent")
        .join("sluice.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

/// A temp dir holding the data dir (`data/`), the config file and the logs.
fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    (dir, data)
}

fn seed() -> u64 {
    match std::env::var("SLUICE_CRASH_SEED") {
        Ok(s) => s.parse().expect("SLUICE_CRASH_SEED must be a u64"),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(7),
    }
}

// ---------------------------------------------------------------------------------------
// The SQLite file.
// ---------------------------------------------------------------------------------------

fn open_db(data: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(data.join("sluice.db")).expect("open sluice.db");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy_timeout");
    conn
}

/// Every row of database 0 in `sluice_kv`: key → (value, expires_at).
fn stored_rows(data: &Path) -> BTreeMap<String, (Vec<u8>, Option<i64>)> {
    let conn = open_db(data);
    let mut st = conn
        .prepare("SELECT key, value, expires_at FROM sluice_kv WHERE db = 0")
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            let key: Vec<u8> = r.get(0)?;
            Ok((
                String::from_utf8_lossy(&key).into_owned(),
                (r.get(1)?, r.get(2)?),
            ))
        })
        .expect("query sluice_kv");
    rows.map(|r| r.expect("row")).collect()
}

/// Stored values of database 0 without expiry, as strings.
fn stored_values(data: &Path) -> BTreeMap<String, String> {
    stored_rows(data)
        .into_iter()
        .map(|(k, (v, exp))| {
            assert_eq!(exp, None, "row {k} has an expiry");
            (k, String::from_utf8(v).expect("utf-8 value"))
        })
        .collect()
}

/// Holds SQLite's write lock from the test, so every store write of the server fails with
/// SQLITE_BUSY (after its 5 s busy timeout). Reads still work (WAL mode).
struct StoreLock(rusqlite::Connection);

impl StoreLock {
    fn take(data: &Path) -> StoreLock {
        let conn = open_db(data);
        conn.execute_batch("BEGIN EXCLUSIVE")
            .expect("BEGIN EXCLUSIVE");
        StoreLock(conn)
    }

    fn release(self) {
        self.0.execute_batch("ROLLBACK").expect("ROLLBACK");
    }
}

// ---------------------------------------------------------------------------------------
// 1. Crash safety under SIGKILL.
// ---------------------------------------------------------------------------------------

const WRITERS: usize = 4;
const KEYS_PER_WRITER: usize = 12;
const CYCLES_PER_DURABILITY: usize = 20;

/// A key's state: absent, or an integer value. Every writer owns its keys, and values only
/// grow (a SET picks a value above anything the key ever held; INCR adds one), so "at least
/// the last acked value" and "exactly the acked or the in-flight value" are both checkable.
type State = Option<u64>;

fn key_name(writer: usize, i: usize) -> String {
    format!("w{writer}:k{i}")
}

struct WriterResult {
    /// The state of each owned key after the last acknowledged op.
    state: BTreeMap<String, State>,
    /// Ops sent whose reply never came, in order, as (key, state it leaves if applied). Any
    /// prefix of them may have been applied.
    in_flight: Vec<(String, State)>,
    acked: usize,
    /// Ops refused with "shutting down" (never applied).
    refused: usize,
    /// A reply that contradicts the model (a bug even without a crash).
    error: Option<String>,
}

const SHUTTING_DOWN: &str = "ERR Sluice is shutting down";

/// Sends SET / INCR / DEL to the writer's own keys, in pipelines of 1 to 16 commands, until
/// the connection dies. A reply that was read is an acknowledgement.
fn run_writer(
    port: u16,
    mut state: BTreeMap<String, State>,
    mut high: BTreeMap<String, u64>,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> WriterResult {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<String> = state.keys().cloned().collect();
    let mut result = WriterResult {
        state: BTreeMap::new(),
        in_flight: Vec::new(),
        acked: 0,
        refused: 0,
        error: None,
    };
    let mut client = match Client::connect(port) {
        Ok(c) => c,
        Err(e) => {
            result.error = Some(format!("connect: {e}"));
            result.state = state;
            return result;
        }
    };
    'run: while !stop.load(Ordering::Relaxed) {
        let depth = if rng.gen_bool(0.5) {
            1
        } else {
            rng.gen_range(2..=16)
        };
        // Plan the pipeline against the state it would leave: (args, expected reply, key, after).
        let mut projected = state.clone();
        let mut planned = Vec::with_capacity(depth);
        for _ in 0..depth {
            let key = keys[rng.gen_range(0..keys.len())].clone();
            let current = projected[&key];
            let roll = rng.gen_range(0..100);
            let (args, expect, after): (Vec<String>, Reply, State) = match current {
                Some(v) if roll < 40 => (
                    vec!["INCR".into(), key.clone()],
                    Reply::Int(v as i64 + 1),
                    Some(v + 1),
                ),
                Some(_) if roll < 55 => (vec!["DEL".into(), key.clone()], Reply::Int(1), None),
                None if roll < 10 => (vec!["DEL".into(), key.clone()], Reply::Int(0), None),
                _ => {
                    let h = high.get_mut(&key).expect("owned key");
                    *h += rng.gen_range(1..=1000);
                    (
                        vec!["SET".into(), key.clone(), h.to_string()],
                        Reply::Status("OK".into()),
                        Some(*h),
                    )
                }
            };
            if let Some(v) = after {
                let h = high.get_mut(&key).expect("owned key");
                *h = (*h).max(v);
            }
            projected.insert(key.clone(), after);
            planned.push((args, expect, key, after));
        }
        let mut out = Vec::new();
        for (args, ..) in &planned {
            out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
            for a in args {
                out.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
            }
        }
        if client.writer.write_all(&out).is_err() {
            // Some of the pipeline may have reached the server.
            result.in_flight = planned.into_iter().map(|(_, _, k, a)| (k, a)).collect();
            break;
        }
        let mut refused = false;
        for (i, (args, expect, key, after)) in planned.iter().enumerate() {
            match client.read_reply() {
                Ok(Reply::Error(e)) if e.starts_with(SHUTTING_DOWN) => {
                    // A graceful stop began: this op and every later one is refused.
                    refused = true;
                    result.refused += 1;
                }
                Ok(reply) if refused => {
                    result.error = Some(format!(
                        "{args:?} answered {reply:?} after a shutdown refusal"
                    ));
                    break 'run;
                }
                Ok(reply) if reply == *expect => {
                    state.insert(key.clone(), *after);
                    result.acked += 1;
                }
                Ok(reply) => {
                    result.error = Some(format!(
                        "{args:?} from state {:?}: expected {expect:?}, got {reply:?}",
                        state[key]
                    ));
                    break 'run;
                }
                Err(_) if refused => break 'run,
                Err(_) => {
                    // Killed while these were sent or answered: any prefix may have landed.
                    result.in_flight = planned[i..]
                        .iter()
                        .map(|(_, _, k, a)| (k.clone(), *a))
                        .collect();
                    break 'run;
                }
            }
        }
        if refused {
            break;
        }
    }
    result.state = state;
    result
}

fn crash_config(rng: &mut StdRng, durability: &str) -> String {
    let flush_interval = ["5ms", "50ms", "500ms", "1h"][rng.gen_range(0..4)];
    let flush_batch = [4, 32, 512][rng.gen_range(0..3)];
    format!(
        r#"
[journal]
durability = "{durability}"
segment_size = "8KiB"

[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
flush_interval = "{flush_interval}"
flush_batch = {flush_batch}
"#
    )
}

/// How a cycle ends.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// SIGKILL while the writers run.
    Kill,
    /// SIGTERM, then SIGKILL a few ms into the drain.
    KillDuringDrain,
    /// SIGKILL, then SIGKILL again while the restart replays the journal.
    KillDuringRecovery,
}

fn crash_safety(durability: &str) {
    let started = Instant::now();
    let seed = seed();
    let ctx = format!("durability {durability}, SLUICE_CRASH_SEED={seed}");
    eprintln!("crash safety: {ctx}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (_dir, data) = workdir();

    // The model: what every key holds, and the highest value it ever held.
    let mut model: BTreeMap<String, State> = BTreeMap::new();
    let mut high: BTreeMap<String, u64> = BTreeMap::new();
    for w in 0..WRITERS {
        for i in 0..KEYS_PER_WRITER {
            model.insert(key_name(w, i), None);
            high.insert(key_name(w, i), 0);
        }
    }

    let mut server = Server::start(&data, Some(&crash_config(&mut rng, durability)));
    let (mut total_acked, mut total_in_flight, mut in_flight_landed) = (0, 0, 0);
    for cycle in 0..CYCLES_PER_DURABILITY {
        // Writers, each on its own keys.
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let owned: BTreeMap<String, State> = model
                    .iter()
                    .filter(|(k, _)| k.starts_with(&format!("w{w}:")))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect();
                let owned_high = owned.keys().map(|k| (k.clone(), high[k])).collect();
                let (port, stop, wseed) = (server.port, stop.clone(), rng.gen());
                thread::spawn(move || run_writer(port, owned, owned_high, wseed, stop))
            })
            .collect();
        let crash = match rng.gen_range(0..100) {
            0..=69 => Crash::Kill,
            70..=84 => Crash::KillDuringDrain,
            _ => Crash::KillDuringRecovery,
        };
        let kill_after = Duration::from_millis(rng.gen_range(20..=200));
        thread::sleep(kill_after);
        if let Crash::KillDuringDrain = crash {
            server.signal(libc::SIGTERM);
            thread::sleep(Duration::from_millis(rng.gen_range(0..=30)));
        }
        server.kill();
        stop.store(true, Ordering::Relaxed);
        let results: Vec<WriterResult> = handles
            .into_iter()
            .map(|h| h.join().expect("writer thread"))
            .collect();
        let killed_log = server.log();

        // What each key may hold now: its last acked state, or the state after any prefix of
        // its writer's unanswered ops.
        let mut allowed: BTreeMap<String, Vec<State>> = BTreeMap::new();
        let (mut acked, mut in_flight, mut refused) = (0, 0, 0);
        for r in &results {
            if let Some(e) = &r.error {
                panic!("cycle {cycle} ({ctx}): {e}\nlog:\n{killed_log}");
            }
            acked += r.acked;
            refused += r.refused;
            in_flight += r.in_flight.len();
            for (k, s) in &r.state {
                allowed.insert(k.clone(), vec![*s]);
            }
            for (k, s) in &r.in_flight {
                allowed.get_mut(k).expect("owned key").push(*s);
            }
        }
        total_acked += acked;
        total_in_flight += in_flight;

        if let Crash::KillDuringRecovery = crash {
            let early = Duration::from_millis(rng.gen_range(0..=40));
            Server::spawn_and_kill(&data, &crash_config(&mut rng, durability), early);
        }

        // Restart on the same data dir, with other flush knobs.
        server = Server::start(&data, Some(&crash_config(&mut rng, durability)));
        let mut c = server.client();
        let mut landed = 0;
        for (key, options) in &allowed {
            let got: State = c.get(key).map(|v| {
                String::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or_else(|| panic!("{key}: not an integer"))
            });
            assert!(
                options.contains(&got),
                "cycle {cycle} ({ctx}, {crash:?}): {key} reads {got:?} after restart, but its last acked \
                 state is {:?} (unanswered ops would leave {:?})\n\
                 log of the killed run:\n{killed_log}\nlog of the restart:\n{}",
                options[0],
                &options[1..],
                server.log()
            );
            if got != options[0] {
                landed += 1;
            }
            model.insert(key.clone(), got);
            if let Some(v) = got {
                let h = high.get_mut(key).expect("known key");
                *h = (*h).max(v);
            }
        }
        in_flight_landed += landed;

        // Once flushed, the table holds exactly what GET returns.
        c.ok(&["SLUICE.FLUSH"]);
        let rows = stored_values(&data);
        let expected: BTreeMap<String, String> = model
            .iter()
            .filter_map(|(k, v)| v.map(|v| (k.clone(), v.to_string())))
            .collect();
        assert_eq!(
            rows, expected,
            "cycle {cycle} ({ctx}): sluice_kv differs from GET after SLUICE.FLUSH"
        );
        eprintln!(
            "  {durability} cycle {cycle:2}: {crash:?} after {:3} ms: {acked:5} acked, {in_flight:2} unanswered \
             ({landed} keys show one), {refused} refused",
            kill_after.as_millis(),
        );
    }

    // A graceful stop at the end stores everything and exits 0.
    let _ = server.client().cmd_str(&["SHUTDOWN"]);
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(
        status.success(),
        "{ctx}: SHUTDOWN exited with {status}; log:\n{}",
        server.log()
    );
    let expected: BTreeMap<String, String> = model
        .iter()
        .filter_map(|(k, v)| v.map(|v| (k.clone(), v.to_string())))
        .collect();
    assert_eq!(
        stored_values(&data),
        expected,
        "{ctx}: after the final SHUTDOWN"
    );
    eprintln!(
        "crash safety ({durability}): {CYCLES_PER_DURABILITY} crash/restart cycles, {total_acked} acked ops, \
         {total_in_flight} unanswered at a crash ({in_flight_landed} landed), {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn crash_safety_fsync() {
    crash_safety("fsync");
}

#[test]
fn crash_safety_os() {
    crash_safety("os");
}

#[test]
fn crash_safety_interval() {
    crash_safety("interval");
}

// ---------------------------------------------------------------------------------------
// 2. Graceful drain.
// ---------------------------------------------------------------------------------------

/// Write-back that never flushes on its own.
fn buffered_config(extra_server: &str, durability: &str) -> String {
    format!(
        r#"
[server]
{extra_server}

[journal]
durability = "{durability}"
# Every write to a buffered collection, however small, journals only its members: the kills
# below then land on chains of member records that the restart must rebuild values from.
member_records_from = 0

[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
flush_interval = "1h"
"#
    )
}

/// Stores `stored:*` rows, then buffers new keys, overwrites and deletes; returns what the
/// table must hold once everything is flushed.
fn write_buffered(c: &mut Client, data: &Path) -> BTreeMap<String, String> {
    let mut expected = BTreeMap::new();
    for i in 0..20 {
        c.ok(&["SET", &format!("stored:{i}"), &format!("old{i}")]);
        expected.insert(format!("stored:{i}"), format!("old{i}"));
    }
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(stored_values(data), expected);
    for i in 0..50 {
        c.ok(&["SET", &format!("new:{i}"), &format!("v{i}")]);
        expected.insert(format!("new:{i}"), format!("v{i}"));
    }
    for i in 0..10 {
        c.ok(&["SET", &format!("stored:{i}"), &format!("newer{i}")]);
        expected.insert(format!("stored:{i}"), format!("newer{i}"));
    }
    for i in 10..15 {
        assert_eq!(
            c.cmd_str(&["DEL", &format!("stored:{i}")]).unwrap(),
            Reply::Int(1)
        );
        expected.remove(&format!("stored:{i}"));
    }
    for _ in 0..7 {
        c.cmd_str(&["INCR", "counter"]).unwrap();
    }
    expected.insert("counter".into(), "7".into());
    // Nothing of that reached the table yet.
    let rows = stored_values(data);
    assert!(
        rows.keys().all(|k| k.starts_with("stored:")),
        "flushed early: {rows:?}"
    );
    assert_eq!(
        rows.get("stored:0").map(String::as_str),
        Some("old0"),
        "flushed early"
    );
    expected
}

fn drain_on(stop: impl FnOnce(&Server, &mut Client)) {
    let (_dir, data) = workdir();
    let mut server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    let expected = write_buffered(&mut c, &data);
    stop(&server, &mut c);
    let status = server.wait_exit(Duration::from_secs(30));
    let log = server.log();
    assert_eq!(status.code(), Some(0), "exit status {status}; log:\n{log}");
    assert!(
        log.contains("drain complete: every buffered write is stored"),
        "log:\n{log}"
    );
    assert_eq!(stored_values(&data), expected, "log:\n{log}");
}

#[test]
fn shutdown_drains_buffered_writes() {
    drain_on(|_, c| {
        // SHUTDOWN closes the connection without a reply, as Redis does.
        match c.cmd_str(&["SHUTDOWN"]) {
            Err(_) => {}
            Ok(reply) => panic!("SHUTDOWN replied {reply:?}"),
        }
    });
}

#[test]
fn sigterm_drains_buffered_writes() {
    drain_on(|server, _| server.signal(libc::SIGTERM));
}

// ---------------------------------------------------------------------------------------
// 3. A drain that cannot finish stops at its deadline; the journal keeps the writes.
// ---------------------------------------------------------------------------------------

fn drain_past_deadline(flush_interval: &str) {
    let (_dir, data) = workdir();
    let config = format!(
        r#"
[server]
shutdown_timeout = "1s"

[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
flush_interval = "{flush_interval}"
"#
    );
    let mut server = Server::start(&data, Some(&config));
    let mut c = server.client();
    c.ok(&["SET", "before", "stored"]);
    c.ok(&["SLUICE.FLUSH"]);
    let lock = StoreLock::take(&data);
    let mut expected = stored_values(&data);
    for i in 0..30 {
        c.ok(&["SET", &format!("k{i}"), &format!("v{i}")]);
        expected.insert(format!("k{i}"), format!("v{i}"));
    }
    assert_eq!(c.cmd_str(&["DEL", "before"]).unwrap(), Reply::Int(1));
    expected.remove("before");
    // Let the background flusher and the expiry reaper get stuck on the lock too.
    thread::sleep(Duration::from_millis(700));

    let asked = Instant::now();
    let _ = c.cmd_str(&["SHUTDOWN"]);
    let status = server.wait_exit(Duration::from_secs(30));
    let took = asked.elapsed();
    eprintln!(
        "drain past deadline (flush_interval {flush_interval}): stopped {took:?} after SHUTDOWN"
    );
    let log = server.log();
    assert_eq!(status.code(), Some(0), "exit status {status}; log:\n{log}");
    assert!(
        log.contains("drain deadline passed; the unstored writes stay in the journal"),
        "log:\n{log}"
    );
    assert!(
        log.contains("drain stopped at its deadline of 1s"),
        "log:\n{log}"
    );
    // The deadline is 1 s; SQLite's busy timeout (5 s) must not stretch the stop.
    assert!(
        took < Duration::from_millis(4500),
        "stopping took {took:?}; log:\n{log}"
    );
    // Nothing was stored meanwhile.
    assert_eq!(
        stored_values(&data).get("before").map(String::as_str),
        Some("stored")
    );
    assert!(!stored_values(&data).contains_key("k0"));

    lock.release();
    let server = Server::start(&data, Some(&config));
    let mut c = server.client();
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(stored_values(&data), expected, "log:\n{}", server.log());
    assert_eq!(c.get("k29").as_deref(), Some(&b"v29"[..]));
    assert_eq!(c.get("before"), None);
}

#[test]
fn drain_past_deadline_keeps_writes_in_journal() {
    drain_past_deadline("1h");
}

/// The same, with the background flusher itself stuck in a store write when the stop comes.
#[test]
fn drain_past_deadline_with_flush_in_flight() {
    drain_past_deadline("100ms");
}

// ---------------------------------------------------------------------------------------
// 4. Journal "none": the documented loss.
// ---------------------------------------------------------------------------------------

const NONE_WARNING: &str =
    "journal durability is \"none\": write-back writes are acknowledged from memory only, \
and a crash or kill loses every write not yet flushed to the database";

/// This asserts the documented loss: with `[journal] durability = "none"`, a SIGKILL loses
/// every write-back write not yet flushed, and the start-up log says so.
#[test]
fn journal_none_warns_and_a_kill_loses_buffered_writes() {
    let (_dir, data) = workdir();
    let config = buffered_config("", "none");
    let mut server = Server::start(&data, Some(&config));
    assert!(
        server.log().contains(NONE_WARNING),
        "log:\n{}",
        server.log()
    );
    let mut c = server.client();
    c.ok(&["SET", "kept", "1"]);
    c.ok(&["SLUICE.FLUSH"]);
    for i in 0..10 {
        c.ok(&["SET", &format!("lost:{i}"), "x"]);
    }
    c.ok(&["SET", "kept", "2"]);
    assert_eq!(c.get("lost:0").as_deref(), Some(&b"x"[..]));
    server.kill();

    let server = Server::start(&data, Some(&config));
    assert!(server.log().contains(NONE_WARNING));
    let mut c = server.client();
    for i in 0..10 {
        assert_eq!(
            c.get(&format!("lost:{i}")),
            None,
            "lost:{i} survived a kill without a journal"
        );
    }
    assert_eq!(
        c.get("kept").as_deref(),
        Some(&b"1"[..]),
        "the flushed value is what remains"
    );
    let rows = stored_values(&data);
    assert_eq!(rows.len(), 1, "{rows:?}");
}

// ---------------------------------------------------------------------------------------
// 5. Backpressure.
// ---------------------------------------------------------------------------------------

#[test]
fn full_buffer_answers_busy() {
    let (_dir, data) = workdir();
    let config = r#"
[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
flush_interval = "1h"
max_dirty = 10
backpressure_timeout = "100ms"
"#;
    let server = Server::start(&data, Some(config));
    let mut c = server.client();
    let lock = StoreLock::take(&data);
    let mut expected = BTreeMap::new();
    for i in 0..10 {
        c.ok(&["SET", &format!("k{i}"), &format!("v{i}")]);
        expected.insert(format!("k{i}"), format!("v{i}"));
    }
    let asked = Instant::now();
    let reply = c.cmd_str(&["SET", "k10", "v10"]).unwrap();
    assert_eq!(
        reply,
        Reply::Error("BUSY write-back buffer full (keyspace default)".into())
    );
    assert!(
        asked.elapsed() >= Duration::from_millis(100),
        "BUSY before the backpressure timeout"
    );
    // A key already buffered still takes writes: they coalesce.
    c.ok(&["SET", "k3", "v3b"]);
    expected.insert("k3".into(), "v3b".into());
    assert_eq!(c.get("k10"), None);

    lock.release();
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(stored_values(&data), expected, "log:\n{}", server.log());
    // Room again.
    c.ok(&["SET", "k10", "v10"]);
}

// ---------------------------------------------------------------------------------------
// Transaction groups: a MULTI/EXEC under write-back is one journal record group.
// ---------------------------------------------------------------------------------------

/// Built-in keys each EXEC writes, all to the same value.
const GROUP_KEYS: usize = 6;

/// The keys writer `w`'s EXECs write: built-in keys, and with `spanning` also `txm:{w}` in a
/// second write-back keyspace (column `txm.v` of row `w`).
fn group_keys(w: usize, spanning: bool) -> Vec<String> {
    let mut keys: Vec<String> = (0..GROUP_KEYS).map(|k| format!("tx:{w}:{k}")).collect();
    if spanning {
        keys.push(format!("txm:{w}"));
    }
    keys
}

/// What the database holds for writer `w`'s keys, in [`group_keys`] order.
fn stored_group(data: &Path, w: usize, spanning: bool) -> Vec<Option<String>> {
    let stored = stored_values(data);
    let mut values: Vec<Option<String>> = (0..GROUP_KEYS)
        .map(|k| stored.get(&format!("tx:{w}:{k}")).cloned())
        .collect();
    if spanning {
        let conn = open_db(data);
        let mapped = conn
            .query_row("SELECT v FROM txm WHERE id = ?1", [w as i64], |r| {
                r.get::<_, Option<String>>(0)
            })
            .unwrap_or(None);
        values.push(mapped);
    }
    values
}

/// Runs EXECs setting every key of writer `w` to 1, 2, 3... until the server goes away;
/// returns (the last value an EXEC acknowledged, the last value sent).
fn run_group_writer(port: u16, w: usize, start: u64, spanning: bool) -> (u64, u64) {
    let Ok(mut c) = Client::connect(port) else {
        return (start, start);
    };
    let keys = group_keys(w, spanning);
    let (mut acked, mut sent) = (start, start);
    for value in start + 1.. {
        let v = value.to_string();
        let mut exec = || -> io::Result<Reply> {
            c.cmd_str(&["MULTI"])?;
            for key in &keys {
                c.cmd_str(&["SET", key, &v])?;
            }
            c.cmd_str(&["EXEC"])
        };
        sent = value;
        match exec() {
            Ok(Reply::Array(Some(items))) if items.len() == keys.len() => acked = value,
            Ok(other) => panic!("writer {w}: EXEC answered {other:?}"),
            Err(_) => break, // killed
        }
    }
    (acked, sent)
}

/// SIGKILL while clients run MULTI/EXEC groups under write-back, many cycles, with journal
/// segments small enough that groups meet segment ends: after every restart each group is
/// whole or absent (a writer's keys all hold one value, in the cache and in the database),
/// and no acknowledged EXEC is lost.
#[test]
fn transaction_groups_are_replayed_whole_or_not_at_all() {
    groups_are_replayed_whole(false);
}

/// [`transaction_groups_are_replayed_whole_or_not_at_all`] with every EXEC also writing a
/// mapped column in a second write-back keyspace: the group spans two keyspaces' buffers, and
/// is still flushed (and replayed) whole.
#[test]
fn transaction_groups_spanning_keyspaces_are_replayed_whole_or_not_at_all() {
    groups_are_replayed_whole(true);
}

/// Every writer's keys hold one value in the database (or none): no half transaction.
fn assert_whole_groups_stored(data: &Path, writers: usize, spanning: bool, when: &str, seed: u64) {
    for w in 0..writers {
        let values = stored_group(data, w, spanning);
        assert!(
            values.iter().all(|v| *v == values[0]),
            "{when}, writer {w}: half a transaction in the database: {values:?} \
             (SLUICE_CRASH_SEED={seed})"
        );
    }
}

fn groups_are_replayed_whole(spanning: bool) {
    let seed = seed();
    eprintln!("transaction groups (spanning keyspaces: {spanning}): SLUICE_CRASH_SEED={seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (_dir, data) = workdir();
    if spanning {
        std::fs::create_dir_all(&data).expect("create the data dir");
        open_db(&data)
            .execute_batch("CREATE TABLE txm (id INTEGER PRIMARY KEY, v TEXT)")
            .expect("create txm");
    }
    let config = |flush_interval: &str| {
        let mapped = if spanning {
            format!(
                r#"
[[keyspace]]
name = "mapped"
keys = "txm:{{id}}"
table = "txm"
key_column = "id"
value_column = "v"
policy = "write-back"
flush_interval = "{flush_interval}"
flush_batch = 16
"#
            )
        } else {
            String::new()
        };
        format!(
            r#"
[journal]
durability = "fsync"
segment_size = "8KiB"
{mapped}
[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
flush_interval = "{flush_interval}"
flush_batch = 16
"#
        )
    };
    let writers = 3;
    let mut acked = vec![0u64; writers];
    for cycle in 0..8 {
        let flush_interval = ["5ms", "100ms", "1h"][rng.gen_range(0..3)];
        let mut server = Server::start(&data, Some(&config(flush_interval)));
        // After the restart: every writer's keys agree, at or past its last acknowledged EXEC.
        let mut c = server.client();
        for (w, acked) in acked.iter_mut().enumerate() {
            let values: Vec<Option<Vec<u8>>> =
                group_keys(w, spanning).iter().map(|k| c.get(k)).collect();
            assert!(
                values.iter().all(|v| *v == values[0]),
                "cycle {cycle}, writer {w}: half a transaction after the crash: {values:?} \
                 (SLUICE_CRASH_SEED={seed})"
            );
            let now: u64 = values[0]
                .as_ref()
                .map(|v| String::from_utf8_lossy(v).parse().expect("a number"))
                .unwrap_or(0);
            assert!(
                now >= *acked,
                "cycle {cycle}, writer {w}: acknowledged EXEC {acked} lost, found {now} \
                 (SLUICE_CRASH_SEED={seed})"
            );
            *acked = now;
        }
        assert_whole_groups_stored(
            &data,
            writers,
            spanning,
            &format!("cycle {cycle}, restarted"),
            seed,
        );
        let handles: Vec<_> = (0..writers)
            .map(|w| {
                let (port, start) = (server.port, acked[w]);
                thread::spawn(move || run_group_writer(port, w, start, spanning))
            })
            .collect();
        thread::sleep(Duration::from_millis(rng.gen_range(150..600)));
        server.kill();
        for (w, h) in handles.into_iter().enumerate() {
            let (last_acked, _sent) = h.join().expect("writer thread");
            acked[w] = last_acked;
        }
        // What the flushes stored before the kill: whole transactions only.
        assert_whole_groups_stored(
            &data,
            writers,
            spanning,
            &format!("cycle {cycle}, killed"),
            seed,
        );
    }
    assert!(
        acked.iter().all(|&a| a > 0),
        "every writer had EXECs acknowledged: {acked:?}"
    );
}

/// Change capture and a SIGKILL: another program updates mapped rows in a burst while the
/// server is killed and restarted; once the burst is over, every key reads the database's
/// value, through the cache the restarted server fills and keeps in step, and INFO shows the
/// stream followed without a loss.
#[test]
fn change_capture_survives_a_kill_during_a_burst_of_outside_changes() {
    const ROWS: i64 = 50;
    let (_dir, data) = workdir();
    std::fs::create_dir_all(&data).unwrap();
    {
        let db = open_db(&data);
        db.execute_batch("CREATE TABLE products (id INTEGER PRIMARY KEY, price INTEGER NOT NULL)")
            .unwrap();
        for id in 0..ROWS {
            db.execute("INSERT INTO products VALUES (?1, 0)", [id])
                .unwrap();
        }
    }
    let config = r#"
[changes]
enabled = true

[[keyspace]]
name = "price"
keys = "product:{id}:price"
table = "products"
key_column = "id"
value_column = "price"
policy = "write-through"
"#;
    let read_all = |server: &Server| {
        let mut c = server.client();
        (0..ROWS)
            .map(|id| {
                let v = c.get(&format!("product:{id}:price")).expect("row exists");
                String::from_utf8(v).unwrap().parse::<i64>().unwrap()
            })
            .collect::<Vec<i64>>()
    };
    let mut server = Server::start(&data, Some(config));
    read_all(&server); // Every key cached.
    let burst = {
        let data = data.clone();
        thread::spawn(move || {
            let db = open_db(&data);
            for round in 1..=40i64 {
                db.execute("UPDATE products SET price = ?1", [round])
                    .unwrap();
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    thread::sleep(Duration::from_millis(60));
    server.kill();
    let server = Server::start(&data, Some(config));
    read_all(&server); // Cached again while the burst goes on.
    burst.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let seen = read_all(&server);
        if seen.iter().all(|&p| p == 40) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys still read {seen:?}; log:\n{}",
            server.log()
        );
        thread::sleep(Duration::from_millis(20));
    }
    let mut c = server.client();
    let info = match c.cmd_str(&["INFO", "sluice"]).unwrap() {
        Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
        other => panic!("INFO: {other:?}"),
    };
    assert!(info.contains("changes_enabled:1"), "{info}");
    assert!(info.contains("changes_lost:0"), "{info}");
    // SLUICE.KEYSPACES shows the stream's lag on the mapped keyspace, null on the built-in one.
    let Reply::Array(Some(keyspaces)) = c.cmd_str(&["SLUICE.KEYSPACES"]).unwrap() else {
        panic!("SLUICE.KEYSPACES is not an array");
    };
    let lag = |entry: &Reply| {
        let Reply::Array(Some(fields)) = entry else {
            panic!("a keyspace entry is not an array: {entry:?}");
        };
        let at = fields
            .iter()
            .position(|f| matches!(f, Reply::Bulk(Some(b)) if b == b"change_lag_ms"))
            .expect("change_lag_ms");
        fields[at + 1].clone()
    };
    assert!(matches!(lag(&keyspaces[0]), Reply::Int(ms) if ms >= 0));
    assert!(matches!(lag(&keyspaces[1]), Reply::Bulk(None)));
}

// ---------------------------------------------------------------------------------------
// Sets: members written one by one, killed before any flush.
// ---------------------------------------------------------------------------------------

/// Every member row of database 0 in `sluice_members`: key → members.
fn stored_members(data: &Path) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let conn = open_db(data);
    let mut st = conn
        .prepare("SELECT key, member FROM sluice_members WHERE db = 0")
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            let key: Vec<u8> = r.get(0)?;
            let member: Vec<u8> = r.get(1)?;
            Ok((
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&member).into_owned(),
            ))
        })
        .expect("query sluice_members");
    let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for row in rows {
        let (key, member) = row.expect("row");
        out.entry(key).or_default().insert(member);
    }
    out
}

fn members_of(c: &mut Client, key: &str) -> std::collections::BTreeSet<String> {
    match c.cmd_str(&["SMEMBERS", key]).unwrap() {
        Reply::Array(Some(items)) => items
            .into_iter()
            .map(|m| match m {
                Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
                other => panic!("SMEMBERS member {other:?}"),
            })
            .collect(),
        other => panic!("SMEMBERS {key}: {other:?}"),
    }
}

/// A set built by many SADD and SREM calls (each a partial write naming only its own
/// members), half of it flushed before more changes, then SIGKILL: after the restart every
/// acknowledged member is there and every removed one gone, in the cache and, once flushed,
/// in `sluice_members`.
#[test]
fn sets_written_member_by_member_survive_sigkill() {
    let (_dir, data) = workdir();
    let mut server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    let mut expected: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for key in ["s1", "s2", "s3"] {
        for i in 0..40 {
            let member = format!("m{i}");
            assert_eq!(c.cmd_str(&["SADD", key, &member]).unwrap(), Reply::Int(1));
            expected.entry(key.into()).or_default().insert(member);
        }
    }
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(stored_members(&data), expected);
    // More changes, none flushed: new members, removals, a set deleted and made again.
    for i in 40..60 {
        let member = format!("m{i}");
        c.cmd_str(&["SADD", "s1", &member]).unwrap();
        expected.get_mut("s1").unwrap().insert(member);
    }
    for i in 0..10 {
        let member = format!("m{i}");
        assert_eq!(c.cmd_str(&["SREM", "s2", &member]).unwrap(), Reply::Int(1));
        expected.get_mut("s2").unwrap().remove(&member);
    }
    assert_eq!(c.cmd_str(&["DEL", "s3"]).unwrap(), Reply::Int(1));
    c.cmd_str(&["SADD", "s3", "fresh"]).unwrap();
    c.cmd_str(&["SADD", "s3", "again"]).unwrap();
    expected.insert("s3".into(), ["fresh", "again"].map(String::from).into());
    server.kill();
    let _ = server.wait_exit(Duration::from_secs(10));

    let server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    for (key, members) in &expected {
        assert_eq!(
            &members_of(&mut c, key),
            members,
            "SMEMBERS {key} after the kill"
        );
    }
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(stored_members(&data), expected, "log:\n{}", server.log());
}

/// Each sorted set's (member, score) rows in `sluice_members`, scores as Redis prints them.
fn stored_scores(data: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let conn = open_db(data);
    let mut st = conn
        .prepare(
            "SELECT m.key, m.member, m.score FROM sluice_members AS m \
             JOIN sluice_kv AS k ON k.db = m.db AND k.key = m.key WHERE m.db = 0 AND k.kind = 3",
        )
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            let key: Vec<u8> = r.get(0)?;
            let member: Vec<u8> = r.get(1)?;
            let score: f64 = r.get(2)?;
            Ok((
                String::from_utf8_lossy(&key).into_owned(),
                String::from_utf8_lossy(&member).into_owned(),
                score,
            ))
        })
        .expect("query sluice_members");
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for row in rows {
        let (key, member, score) = row.expect("row");
        out.entry(key)
            .or_default()
            .insert(member, score.to_string());
    }
    out
}

fn scores_of(c: &mut Client, key: &str) -> BTreeMap<String, String> {
    match c
        .cmd_str(&["ZRANGE", key, "0", "-1", "WITHSCORES"])
        .unwrap()
    {
        Reply::Array(Some(items)) => items
            .chunks(2)
            .map(|pair| match pair {
                [Reply::Bulk(Some(m)), Reply::Bulk(Some(s))] => (
                    String::from_utf8(m.clone()).unwrap(),
                    String::from_utf8(s.clone()).unwrap(),
                ),
                other => panic!("ZRANGE pair {other:?}"),
            })
            .collect(),
        other => panic!("ZRANGE {key}: {other:?}"),
    }
}

/// Sorted sets changed by many ZADD, ZINCRBY, ZREM and ZPOPMIN calls (each a partial write
/// naming only its own members), part of it flushed before more changes, then SIGKILL: after
/// the restart every acknowledged score is there and every removed member gone, in the cache
/// and, once flushed, in `sluice_members`.
#[test]
fn sorted_sets_written_member_by_member_survive_sigkill() {
    let (_dir, data) = workdir();
    let mut server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    let mut expected: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for key in ["z1", "z2", "z3"] {
        for i in 0..40 {
            let member = format!("p{i}");
            let score = i as f64 / 4.0;
            c.cmd_str(&["ZADD", key, &score.to_string(), &member])
                .unwrap();
            expected
                .entry(key.into())
                .or_default()
                .insert(member, score);
        }
    }
    c.ok(&["SLUICE.FLUSH"]);
    // More changes, none flushed: increments, new members, removals, pops, a set replaced.
    for i in 0..200 {
        let member = format!("p{}", i % 50);
        c.cmd_str(&["ZINCRBY", "z1", "1.5", &member]).unwrap();
        *expected.get_mut("z1").unwrap().entry(member).or_insert(0.0) += 1.5;
    }
    for i in 0..10 {
        let member = format!("p{i}");
        assert_eq!(c.cmd_str(&["ZREM", "z2", &member]).unwrap(), Reply::Int(1));
        expected.get_mut("z2").unwrap().remove(&member);
    }
    c.cmd_str(&["ZPOPMAX", "z2", "2"]).unwrap();
    for member in ["p39", "p38"] {
        expected.get_mut("z2").unwrap().remove(member);
    }
    c.cmd_str(&["ZUNIONSTORE", "z3", "1", "z2"]).unwrap();
    expected.insert("z3".into(), expected["z2"].clone());
    server.kill();
    let _ = server.wait_exit(Duration::from_secs(10));

    let expected: BTreeMap<String, BTreeMap<String, String>> = expected
        .into_iter()
        .map(|(k, m)| (k, m.into_iter().map(|(m, s)| (m, s.to_string())).collect()))
        .collect();
    let server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    for (key, scores) in &expected {
        assert_eq!(
            &scores_of(&mut c, key),
            scores,
            "ZRANGE {key} after the kill"
        );
    }
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(stored_scores(&data), expected, "log:\n{}", server.log());
}

// ---------------------------------------------------------------------------------------
// Lists: elements written one by one, killed with changes unflushed.
// ---------------------------------------------------------------------------------------

type ListModel = BTreeMap<String, std::collections::VecDeque<Vec<u8>>>;

/// Each list's elements in `sluice_members`, head first: a list's `member` is its element's
/// 8-byte position key, which sorts as the list, and its `value` the element. Every row must
/// belong to a list's key row.
fn stored_lists(data: &Path) -> BTreeMap<String, Vec<Vec<u8>>> {
    let conn = open_db(data);
    let mut st = conn
        .prepare(
            "SELECT m.key, m.member, m.value, k.kind FROM sluice_members AS m \
             LEFT JOIN sluice_kv AS k ON k.db = m.db AND k.key = m.key WHERE m.db = 0 \
             ORDER BY m.key, m.member",
        )
        .expect("prepare");
    let rows = st
        .query_map([], |r| {
            let key: Vec<u8> = r.get(0)?;
            Ok((
                String::from_utf8_lossy(&key).into_owned(),
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<Vec<u8>>>(2)?,
                r.get::<_, Option<i64>>(3)?,
            ))
        })
        .expect("query sluice_members");
    let mut out: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
    for row in rows {
        let (key, member, value, kind) = row.expect("row");
        assert_eq!(kind, Some(4), "{key}: a member row of a list's key");
        assert_eq!(member.len(), 8, "{key}: a position key");
        out.entry(key)
            .or_default()
            .push(value.expect("a list row has its element"));
    }
    out
}

/// The model as [`stored_lists`] reads a table that holds it.
fn model_lists(model: &ListModel) -> BTreeMap<String, Vec<Vec<u8>>> {
    model
        .iter()
        .map(|(k, l)| (k.clone(), l.iter().cloned().collect()))
        .collect()
}

fn lrange(c: &mut Client, key: &str) -> Vec<Vec<u8>> {
    match c.cmd_str(&["LRANGE", key, "0", "-1"]).unwrap() {
        Reply::Array(Some(items)) => items
            .into_iter()
            .map(|e| match e {
                Reply::Bulk(Some(b)) => b,
                other => panic!("LRANGE {key} element {other:?}"),
            })
            .collect(),
        other => panic!("LRANGE {key}: {other:?}"),
    }
}

/// Runs a list command, applies `edit` to the model (creating the list, dropping it once
/// empty, as Redis does), and checks the reply against what `edit` returns.
fn list_cmd(
    c: &mut Client,
    model: &mut ListModel,
    key: &str,
    args: &[&[u8]],
    edit: impl FnOnce(&mut std::collections::VecDeque<Vec<u8>>) -> Reply,
) {
    let reply = c.cmd(args).unwrap();
    let list = model.entry(key.to_string()).or_default();
    let want = edit(list);
    if list.is_empty() {
        model.remove(key);
    }
    assert_eq!(reply, want, "{:?}", String::from_utf8_lossy(&args.concat()));
}

fn bulk(e: &[u8]) -> Reply {
    Reply::Bulk(Some(e.to_vec()))
}

/// Lists changed by every kind of list command (pushes and pops at both ends, LSET, LINSERT
/// enough at one spot to renumber a list, LREM, LTRIM, LMOVE between lists and within one,
/// lists emptied and made again), part flushed before more changes, then SIGKILL: after the
/// restart LRANGE of every list equals the model and, once flushed, so do its rows in
/// `sluice_members`, in position order.
#[test]
fn lists_written_element_by_element_survive_sigkill() {
    use std::collections::VecDeque;
    let (_dir, data) = workdir();
    let mut server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    let mut model = ListModel::new();
    for i in 0..40 {
        let e = format!("e{}", i % 10);
        list_cmd(
            &mut c,
            &mut model,
            "l1",
            &[b"RPUSH", b"l1", e.as_bytes()],
            |l| {
                l.push_back(e.clone().into_bytes());
                Reply::Int(l.len() as i64)
            },
        );
    }
    for i in 0..10 {
        let group = [format!("a{i}"), format!("b{i}"), format!("c{i}")];
        let mut args: Vec<&[u8]> = vec![b"LPUSH", b"l2"];
        args.extend(group.iter().map(|e| e.as_bytes()));
        list_cmd(&mut c, &mut model, "l2", &args, |l| {
            for e in &group {
                l.push_front(e.clone().into_bytes());
            }
            Reply::Int(l.len() as i64)
        });
    }
    let odd: [&[u8]; 5] = [b"", b"\x00\xff", b"\r\n", b"inf", b"x"];
    for key in ["l3", "l7"] {
        let mut args: Vec<&[u8]> = vec![b"RPUSH", key.as_bytes()];
        args.extend(odd);
        list_cmd(&mut c, &mut model, key, &args, |l| {
            l.extend(odd.iter().map(|e| e.to_vec()));
            Reply::Int(l.len() as i64)
        });
    }
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(stored_lists(&data), model_lists(&model));

    // More changes, none flushed. l1: pops at both ends, with and without a count.
    list_cmd(&mut c, &mut model, "l1", &[b"LPOP", b"l1"], |l| {
        bulk(&l.pop_front().unwrap())
    });
    list_cmd(&mut c, &mut model, "l1", &[b"LPOP", b"l1", b"2"], |l| {
        Reply::Array(Some(l.drain(..2).map(|e| bulk(&e)).collect()))
    });
    list_cmd(&mut c, &mut model, "l1", &[b"RPOP", b"l1"], |l| {
        bulk(&l.pop_back().unwrap())
    });
    list_cmd(&mut c, &mut model, "l1", &[b"RPOP", b"l1", b"3"], |l| {
        Reply::Array(Some((0..3).map(|_| bulk(&l.pop_back().unwrap())).collect()))
    });
    // LSET at both ends.
    list_cmd(
        &mut c,
        &mut model,
        "l1",
        &[b"LSET", b"l1", b"0", b"set0"],
        |l| {
            l[0] = b"set0".to_vec();
            Reply::Status("OK".into())
        },
    );
    list_cmd(
        &mut c,
        &mut model,
        "l1",
        &[b"LSET", b"l1", b"-1", b"setlast"],
        |l| {
            *l.back_mut().unwrap() = b"setlast".to_vec();
            Reply::Status("OK".into())
        },
    );
    // 30 LINSERTs before the first e5: the gap there is used up and l1 renumbered.
    for i in 0..30 {
        let e = format!("in{i}");
        list_cmd(
            &mut c,
            &mut model,
            "l1",
            &[b"LINSERT", b"l1", b"BEFORE", b"e5", e.as_bytes()],
            |l| {
                let at = l.iter().position(|x| x == b"e5").unwrap();
                l.insert(at, e.clone().into_bytes());
                Reply::Int(l.len() as i64)
            },
        );
    }
    list_cmd(
        &mut c,
        &mut model,
        "l1",
        &[b"LINSERT", b"l1", b"AFTER", b"in29", b"after29"],
        |l| {
            let at = l.iter().position(|x| x == b"in29").unwrap();
            l.insert(at + 1, b"after29".to_vec());
            Reply::Int(l.len() as i64)
        },
    );
    // LREM from the head, from the tail, and all.
    for (count, e) in [(2i64, "e1"), (-1, "e2"), (0, "e3")] {
        let n = count.to_string();
        list_cmd(
            &mut c,
            &mut model,
            "l1",
            &[b"LREM", b"l1", n.as_bytes(), e.as_bytes()],
            |l| {
                let limit = if count == 0 {
                    usize::MAX
                } else {
                    count.unsigned_abs() as usize
                };
                let mut removed = 0;
                let mut kept: VecDeque<Vec<u8>> = VecDeque::new();
                let mut items: Vec<Vec<u8>> = l.drain(..).collect();
                if count < 0 {
                    items.reverse();
                }
                for x in items {
                    if removed < limit && x == e.as_bytes() {
                        removed += 1;
                    } else if count < 0 {
                        kept.push_front(x);
                    } else {
                        kept.push_back(x);
                    }
                }
                *l = kept;
                Reply::Int(removed as i64)
            },
        );
    }
    list_cmd(
        &mut c,
        &mut model,
        "l1",
        &[b"LTRIM", b"l1", b"1", b"-2"],
        |l| {
            l.pop_front();
            l.pop_back();
            Reply::Status("OK".into())
        },
    );
    // l2: elements moved to l1, rotated within l2, one moved to l3.
    for _ in 0..5 {
        let reply = c.cmd_str(&["LMOVE", "l2", "l1", "LEFT", "RIGHT"]).unwrap();
        let e = model.get_mut("l2").unwrap().pop_front().unwrap();
        assert_eq!(reply, bulk(&e));
        model.get_mut("l1").unwrap().push_back(e);
    }
    for _ in 0..3 {
        list_cmd(
            &mut c,
            &mut model,
            "l2",
            &[b"LMOVE", b"l2", b"l2", b"RIGHT", b"LEFT"],
            |l| {
                let e = l.pop_back().unwrap();
                l.push_front(e.clone());
                bulk(&e)
            },
        );
    }
    let reply = c.cmd_str(&["RPOPLPUSH", "l2", "l3"]).unwrap();
    let e = model.get_mut("l2").unwrap().pop_back().unwrap();
    assert_eq!(reply, bulk(&e));
    model.get_mut("l3").unwrap().push_front(e);
    list_cmd(
        &mut c,
        &mut model,
        "l3",
        &[b"LSET", b"l3", b"2", b"\xff\xfe"],
        |l| {
            l[2] = b"\xff\xfe".to_vec();
            Reply::Status("OK".into())
        },
    );
    list_cmd(
        &mut c,
        &mut model,
        "l3",
        &[b"RPUSH", b"l3", b"-inf", b""],
        |l| {
            l.extend([b"-inf".to_vec(), Vec::new()]);
            Reply::Int(l.len() as i64)
        },
    );
    // l4: made, trimmed away (deleted) and made again.
    list_cmd(
        &mut c,
        &mut model,
        "l4",
        &[b"RPUSH", b"l4", b"p", b"q"],
        |l| {
            l.extend([b"p".to_vec(), b"q".to_vec()]);
            Reply::Int(2)
        },
    );
    list_cmd(
        &mut c,
        &mut model,
        "l4",
        &[b"LTRIM", b"l4", b"5", b"1"],
        |l| {
            l.clear();
            Reply::Status("OK".into())
        },
    );
    list_cmd(
        &mut c,
        &mut model,
        "l4",
        &[b"LPUSH", b"l4", b"again"],
        |l| {
            l.push_front(b"again".to_vec());
            Reply::Int(1)
        },
    );
    // l5 emptied into l6 by LMOVE: l5 is deleted.
    list_cmd(
        &mut c,
        &mut model,
        "l5",
        &[b"LPUSH", b"l5", b"x", b"y", b"z"],
        |l| {
            l.extend([b"z".to_vec(), b"y".to_vec(), b"x".to_vec()]);
            Reply::Int(3)
        },
    );
    for _ in 0..3 {
        let reply = c.cmd_str(&["LMOVE", "l5", "l6", "RIGHT", "LEFT"]).unwrap();
        let l5 = model.get_mut("l5").unwrap();
        let e = l5.pop_back().unwrap();
        if l5.is_empty() {
            model.remove("l5");
        }
        assert_eq!(reply, bulk(&e));
        model.entry("l6".into()).or_default().push_front(e);
    }
    // l7 (flushed) deleted and made again with one element; l2 popped to its last element.
    assert_eq!(c.cmd_str(&["DEL", "l7"]).unwrap(), Reply::Int(1));
    model.remove("l7");
    list_cmd(
        &mut c,
        &mut model,
        "l7",
        &[b"RPUSH", b"l7", b"reborn"],
        |l| {
            l.push_back(b"reborn".to_vec());
            Reply::Int(1)
        },
    );
    let n = model["l2"].len() - 1;
    list_cmd(
        &mut c,
        &mut model,
        "l2",
        &[b"RPOP", b"l2", n.to_string().as_bytes()],
        |l| Reply::Array(Some((0..n).map(|_| bulk(&l.pop_back().unwrap())).collect())),
    );
    for key in ["l1", "l2", "l3", "l4", "l5", "l6", "l7"] {
        let want: Vec<Vec<u8>> = model
            .get(key)
            .map_or(Vec::new(), |l| l.iter().cloned().collect());
        assert_eq!(lrange(&mut c, key), want, "LRANGE {key} before the kill");
    }
    // Nothing of that reached the table yet: l1 is as flushed.
    assert_eq!(stored_lists(&data)["l1"].len(), 40, "flushed early");
    server.kill();
    let _ = server.wait_exit(Duration::from_secs(10));

    let server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    assert!(!model.contains_key("l5"));
    for key in ["l1", "l2", "l3", "l4", "l5", "l6", "l7"] {
        let want: Vec<Vec<u8>> = model
            .get(key)
            .map_or(Vec::new(), |l| l.iter().cloned().collect());
        assert_eq!(lrange(&mut c, key), want, "LRANGE {key} after the kill");
        assert_eq!(
            c.cmd_str(&["LLEN", key]).unwrap(),
            Reply::Int(want.len() as i64),
            "LLEN {key} after the kill"
        );
    }
    c.ok(&["SLUICE.FLUSH"]);
    assert_eq!(
        stored_lists(&data),
        model_lists(&model),
        "log:\n{}",
        server.log()
    );
}

/// Streams changed by every stream write (XADD with explicit, `ms-*` and automatic IDs,
/// XADD trimming exactly and by `~`, XDEL inside a node and of a node's last entry, XTRIM,
/// XSETID), part flushed before more changes, then SIGKILL: after the restart every stream
/// reads back as it did before the kill (entries, length, and MEMORY USAGE, which counts the
/// nodes an approximate trim cuts along), its last ID still refuses an older one, and after a
/// flush and a second restart it still does.
#[test]
fn streams_written_entry_by_entry_survive_sigkill() {
    let (_dir, data) = workdir();
    let mut server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    let ok_id = |c: &mut Client, args: &[&str]| match c.cmd_str(args).unwrap() {
        Reply::Bulk(Some(id)) => String::from_utf8(id).unwrap(),
        other => panic!("{args:?}: {other:?}"),
    };
    for i in 1..=250 {
        let value = format!("v{}", i * 7919 % 1000);
        ok_id(
            &mut c,
            &[
                "XADD",
                "s1",
                &i.to_string(),
                "f",
                &value,
                "n",
                &i.to_string(),
            ],
        );
    }
    for i in 1..=300 {
        let big = "x".repeat(i % 40 * 10);
        ok_id(
            &mut c,
            &[
                "XADD",
                "s2",
                "MAXLEN",
                "~",
                "50",
                &format!("{i}-*"),
                "f",
                &big,
            ],
        );
    }
    ok_id(&mut c, &["XADD", "s3", "5-5", "only", "entry"]);
    c.ok(&["SLUICE.FLUSH"]);

    // Unflushed from here on.
    for id in ["3", "4", "150", "151", "999"] {
        c.cmd_str(&["XDEL", "s1", id]).unwrap();
    }
    for i in 101..=200 {
        c.cmd_str(&["XDEL", "s1", &i.to_string()]).unwrap();
    }
    ok_id(&mut c, &["XADD", "s1", "MAXLEN", "120", "*", "late", "1"]);
    // Whole nodes below 205 go (how many depends on where Redis's nodes end).
    assert!(matches!(
        c.cmd_str(&["XTRIM", "s1", "MINID", "~", "205"]).unwrap(),
        Reply::Int(_)
    ));
    for i in 301..=340 {
        ok_id(
            &mut c,
            &["XADD", "s2", "MAXLEN", "~", "50", &i.to_string(), "g", "w"],
        );
    }
    c.ok(&[
        "XSETID",
        "s3",
        "9-0",
        "ENTRIESADDED",
        "7",
        "MAXDELETEDID",
        "6-0",
    ]);
    ok_id(&mut c, &["XADD", "s4", "*", "auto", "id"]);
    let keys = ["s1", "s2", "s3", "s4"];
    let snapshot = |c: &mut Client| -> Vec<(Reply, Reply, Reply)> {
        keys.iter()
            .map(|k| {
                (
                    c.cmd_str(&["XRANGE", k, "-", "+"]).unwrap(),
                    c.cmd_str(&["XLEN", k]).unwrap(),
                    c.cmd_str(&["MEMORY", "USAGE", k]).unwrap(),
                )
            })
            .collect()
    };
    let before = snapshot(&mut c);
    server.kill();
    let _ = server.wait_exit(Duration::from_secs(10));

    let mut server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    assert_eq!(snapshot(&mut c), before, "log:\n{}", server.log());
    let older = c.cmd_str(&["XADD", "s3", "8-0", "a", "b"]).unwrap();
    assert_eq!(
        older,
        Reply::Error(
            "ERR The ID specified in XADD is equal or smaller than the target stream top item"
                .into()
        )
    );
    c.ok(&["SLUICE.FLUSH"]);
    // SHUTDOWN closes the connection without a reply.
    let _ = c.cmd_str(&["SHUTDOWN"]);
    let _ = server.wait_exit(Duration::from_secs(30));

    let server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    assert_eq!(snapshot(&mut c), before, "after a flush and a restart");
}

/// Consumer groups changed by every group command (XGROUP CREATE / SETID / CREATECONSUMER /
/// DELCONSUMER / DESTROY, XREADGROUP with and without NOACK, XACK, XCLAIM, XAUTOCLAIM), part
/// flushed before more changes, then SIGKILL: after the restart XINFO STREAM FULL (every
/// group's last ID, read counter, pending entries with their delivery times and counts, and
/// consumers with their seen times) and XPENDING read back exactly as before the kill, and the
/// group goes on from where it was: a `>` read gets only the entries added since.
#[test]
fn consumer_groups_survive_sigkill() {
    let (_dir, data) = workdir();
    let mut server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    for i in 1..=30 {
        let id = format!("{i}-0");
        c.cmd_str(&["XADD", "jobs", &id, "n", &i.to_string()])
            .unwrap();
    }
    c.ok(&["XGROUP", "CREATE", "jobs", "workers", "0"]);
    c.ok(&["XGROUP", "CREATE", "jobs", "audit", "$"]);
    c.ok(&["XGROUP", "CREATE", "jobs", "gone", "0"]);
    c.ok(&["XGROUP", "CREATE", "fresh", "g", "$", "MKSTREAM"]);
    let read = |c: &mut Client, consumer: &str, count: &str| {
        c.cmd_str(&[
            "XREADGROUP",
            "GROUP",
            "workers",
            consumer,
            "COUNT",
            count,
            "STREAMS",
            "jobs",
            ">",
        ])
        .unwrap()
    };
    read(&mut c, "alice", "10");
    read(&mut c, "bob", "5");
    c.cmd_str(&["XACK", "jobs", "workers", "1-0", "2-0", "11-0"])
        .unwrap();
    c.ok(&["SLUICE.FLUSH"]);

    // Unflushed from here on.
    read(&mut c, "carol", "5");
    c.cmd_str(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "dave",
        "NOACK",
        "COUNT",
        "3",
        "STREAMS",
        "jobs",
        ">",
    ])
    .unwrap();
    c.cmd_str(&["XACK", "jobs", "workers", "3-0", "16-0"])
        .unwrap();
    c.cmd_str(&[
        "XCLAIM",
        "jobs",
        "workers",
        "erin",
        "0",
        "4-0",
        "5-0",
        "RETRYCOUNT",
        "7",
    ])
    .unwrap();
    c.cmd_str(&[
        "XAUTOCLAIM",
        "jobs",
        "workers",
        "frank",
        "0",
        "12-0",
        "COUNT",
        "2",
    ])
    .unwrap();
    c.cmd_str(&["XDEL", "jobs", "6-0"]).unwrap();
    c.cmd_str(&["XGROUP", "CREATECONSUMER", "jobs", "workers", "idle"])
        .unwrap();
    c.cmd_str(&["XGROUP", "DELCONSUMER", "jobs", "workers", "bob"])
        .unwrap();
    c.cmd_str(&["XGROUP", "DESTROY", "jobs", "gone"]).unwrap();
    c.ok(&[
        "XGROUP",
        "SETID",
        "jobs",
        "audit",
        "20-0",
        "ENTRIESREAD",
        "20",
    ]);
    // History reads count a delivery too.
    c.cmd_str(&[
        "XREADGROUP",
        "GROUP",
        "workers",
        "alice",
        "STREAMS",
        "jobs",
        "0",
    ])
    .unwrap();
    let snapshot = |c: &mut Client| -> Vec<Reply> {
        vec![
            c.cmd_str(&["XINFO", "STREAM", "jobs", "FULL", "COUNT", "0"])
                .unwrap(),
            c.cmd_str(&["XINFO", "STREAM", "fresh", "FULL"]).unwrap(),
            c.cmd_str(&["XPENDING", "jobs", "workers"]).unwrap(),
            c.cmd_str(&["XINFO", "GROUPS", "jobs"]).unwrap(),
        ]
    };
    let before = snapshot(&mut c);
    assert!(
        matches!(&before[2], Reply::Array(Some(items)) if items.len() == 4),
        "{:?}",
        before[2]
    );
    server.kill();
    let _ = server.wait_exit(Duration::from_secs(10));

    let server = Server::start(&data, Some(&buffered_config("", "fsync")));
    let mut c = server.client();
    assert_eq!(snapshot(&mut c), before, "log:\n{}", server.log());
    // Entries 24..30 were never delivered to the group: a `>` read gets them and no other.
    c.cmd_str(&["XADD", "jobs", "31-0", "n", "31"]).unwrap();
    let next = read(&mut c, "alice", "100");
    fn bulks(reply: &Reply, out: &mut Vec<String>) {
        match reply {
            Reply::Bulk(Some(b)) => out.push(String::from_utf8_lossy(b).into_owned()),
            Reply::Array(Some(items)) => items.iter().for_each(|r| bulks(r, out)),
            _ => {}
        }
    }
    let mut words = Vec::new();
    bulks(&next, &mut words);
    let ids: Vec<&String> = words.iter().filter(|w| w.ends_with("-0")).collect();
    let expected: Vec<String> = (24..=31).map(|i| format!("{i}-0")).collect();
    assert_eq!(ids, expected.iter().collect::<Vec<_>>(), "{next:?}");
}
