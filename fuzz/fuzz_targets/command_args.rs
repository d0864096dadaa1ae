//! Fuzzes command argument handling: argument vectors run through `dispatch` against a real
//! in-process engine, and every reply must encode as exactly one well-formed RESP reply.
//!
//! Input layout: byte 0 is the argument separator, byte 1 the command separator; the rest is
//! up to 8 commands separated by the command separator. In each command the first byte picks
//! the name from `COMMANDS` (its index modulo the table size; every other table lap spells the
//! name in upper case) and the remaining bytes, split on the argument separator, are the
//! arguments. Commands of one input share one session (fresh per input); the engine (one
//! `sluice::Sluice` in a temporary data dir, no journal) lives for the whole run, so keys
//! written by earlier inputs are still there.

#![no_main]

use std::cell::Cell;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use sluice::{Durability, Sluice};
use sluice_server::config::{FileConfig, UserConfig};
use sluice_server::frontend::cmd::{commands, dispatch, Spec};
use sluice_server::state::Shared;
use sluice_server::Server;
use tokio::runtime::Runtime;

/// Commands the target never runs: SHUTDOWN would stop the engine under the fuzzer.
const SKIPPED: &[&str] = &["shutdown"];

/// Inputs between two FLUSHALLs, so the keyspace stays small.
const FLUSH_EVERY: u64 = 2048;

struct Env {
    rt: Runtime,
    shared: Arc<Shared>,
    commands: Vec<&'static Spec>,
    runs: Cell<u64>,
}

static DATA_DIR: OnceLock<PathBuf> = OnceLock::new();

extern "C" fn remove_data_dir() {
    if let Some(dir) = DATA_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::Builder::new()
            .prefix("sluice-fuzz-")
            .tempdir()
            .expect("temp dir")
            .keep();
        let _ = DATA_DIR.set(dir.clone());
        // SAFETY: registers a plain `extern "C" fn` that touches only a static.
        unsafe { libc::atexit(remove_data_dir) };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let mut config = FileConfig::default();
        config.server.port = 0;
        config.engine.data_dir = dir;
        config.engine.journal.durability = Durability::None;
        // Keep SETRANGE / APPEND growth and the cache small: the fuzzer runs millions of inputs.
        config.server.proto_max_bulk_len = 1024 * 1024;
        config.engine.cache.capacity = 32 * 1024 * 1024;
        // A restricted user, so `AUTH reader pw` reaches the NOPERM paths (categories, keys).
        config.server.users = vec![UserConfig {
            name: "reader".into(),
            password: "pw".into(),
            commands: vec!["read".into()],
            keys: vec!["user:*".into(), "k[a-c]?".into()],
            enabled: true,
        }];
        let shared = rt.block_on(async {
            let sluice = Sluice::open(config.engine).await.expect("open sluice");
            // Binds 127.0.0.1 on an ephemeral port; nothing ever accepts on it.
            Server::bind(sluice, config.server).await.expect("bind").shared()
        });
        let commands = commands()
            .iter()
            .copied()
            .filter(|s| !SKIPPED.contains(&s.name))
            .collect();
        Env {
            rt,
            shared,
            commands,
            runs: Cell::new(0),
        }
    }

    fn run(&self, commands: Vec<Vec<Bytes>>) {
        let addr: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        let laddr: SocketAddr = "127.0.0.1:6380".parse().unwrap();
        let mut session = self.shared.new_session(addr, laddr, -1);
        for mut args in commands {
            let shown = format!("{args:?}");
            let (reply, durability) = self.rt.block_on(sluice::with_deferred_durability(dispatch(
                &self.shared,
                &mut session,
                &mut args,
            )));
            let _ = self.rt.block_on(durability.wait());
            let mut out = BytesMut::new();
            reply.encode(session.proto, &mut out);
            match reply_len(&out, session.proto) {
                Ok(n) if n == out.len() => {}
                Ok(n) => panic!(
                    "{shown}: {n} of {} reply bytes form one reply: {:?}",
                    out.len(),
                    out.escape_ascii().to_string()
                ),
                Err(why) => panic!(
                    "{shown}: malformed reply ({why}): {:?}",
                    out.escape_ascii().to_string()
                ),
            }
            if session.close_after_reply || session.close_without_reply {
                break;
            }
        }
        drop(session);
        // Let the write-back flusher and the other background tasks take a turn.
        self.rt.block_on(tokio::task::yield_now());
        let runs = self.runs.get() + 1;
        self.runs.set(runs);
        if runs.is_multiple_of(FLUSH_EVERY) {
            let mut session = self.shared.new_session(addr, laddr, -1);
            let mut flush = vec![Bytes::from_static(b"flushall")];
            let reply = self
                .rt
                .block_on(dispatch(&self.shared, &mut session, &mut flush));
            assert!(!reply.is_error(), "FLUSHALL failed: {reply:?}");
        }
    }
}

/// The length of the one reply at the start of `buf`, checking its framing: lines hold no CR
/// or LF, lengths and counts are exact, and RESP2 replies use only RESP2 types.
fn reply_len(buf: &[u8], proto: u8) -> Result<usize, String> {
    let cr = buf
        .iter()
        .position(|&b| b == b'\r')
        .ok_or("no CR after the type byte")?;
    if buf.get(cr + 1) != Some(&b'\n') {
        return Err("CR not followed by LF".into());
    }
    let line = &buf[1..cr];
    if line.contains(&b'\n') {
        return Err("LF inside a line".into());
    }
    let count = || -> Result<i64, String> {
        std::str::from_utf8(line)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad length {:?}", line.escape_ascii().to_string()))
    };
    let head = cr + 2;
    let kind = *buf.first().ok_or("empty reply")?;
    if proto < 3
        && matches!(
            kind,
            b'_' | b',' | b'#' | b'%' | b'~' | b'=' | b'(' | b'|' | b'>'
        )
    {
        return Err(format!(
            "RESP3 type {:?} on a RESP2 connection",
            kind as char
        ));
    }
    match kind {
        b'+' | b'-' => Ok(head),
        b':' => count().map(|_| head),
        b'_' if line.is_empty() => Ok(head),
        b'#' if line == b"t" || line == b"f" => Ok(head),
        b',' if !line.is_empty() => Ok(head),
        b'$' | b'=' => {
            let n = count()?;
            if n == -1 && kind == b'$' && proto < 3 {
                return Ok(head);
            }
            let n = usize::try_from(n).map_err(|_| format!("negative bulk length {n}"))?;
            let end = head + n + 2;
            if buf.len() < end || &buf[end - 2..end] != b"\r\n" {
                return Err("bulk body not followed by CRLF".into());
            }
            if kind == b'=' && (n < 4 || buf[head + 3] != b':') {
                return Err("verbatim string without a format".into());
            }
            Ok(end)
        }
        b'*' | b'~' | b'%' => {
            let n = count()?;
            if n == -1 && kind == b'*' && proto < 3 {
                return Ok(head);
            }
            let n = usize::try_from(n).map_err(|_| format!("negative count {n}"))?;
            let items = if kind == b'%' { n * 2 } else { n };
            let mut at = head;
            for _ in 0..items {
                at += reply_len(&buf[at..], proto)?;
            }
            Ok(at)
        }
        other => Err(format!("unexpected type byte {other:#x}")),
    }
}

thread_local! {
    static ENV: Env = Env::new();
}

fn decode(data: &[u8], commands: &[&'static Spec]) -> Vec<Vec<Bytes>> {
    let [arg_sep, cmd_sep, rest @ ..] = data else {
        return Vec::new();
    };
    rest.split(|b| b == cmd_sep)
        .filter_map(|record| {
            let (&pick, args) = record.split_first()?;
            let lap = pick as usize / commands.len();
            let name = commands[pick as usize % commands.len()].name;
            let name = if lap % 2 == 1 {
                Bytes::from(name.to_ascii_uppercase())
            } else {
                Bytes::from_static(name.as_bytes())
            };
            let mut argv = vec![name];
            if !args.is_empty() {
                argv.extend(args.split(|b| b == arg_sep).map(Bytes::copy_from_slice));
            }
            Some(argv)
        })
        .take(8)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    ENV.with(|env| {
        let commands = decode(data, &env.commands);
        env.run(commands);
    });
});
