//! Lua scripting runtime for Redis 7.0-compatible `EVAL` / `EVALSHA` / `SCRIPT`.
//!
//! This module is self-contained: it knows nothing about the command dispatcher. The
//! dispatcher supplies a [`ScriptHost`] that runs the commands a script sends with
//! `redis.call` / `redis.pcall`, and gets back the script's reply as a [`Frame`].
//!
//! # API used by the dispatcher
//!
//! - [`Script::new`]`(source) -> Result<Script, Frame>`: hashes the body (lowercase hex
//!   SHA1) and parses a `#!lua flags=...` shebang. The error is the reply Redis gives.
//! - [`compile_check`]`(&Script) -> Result<(), Frame>`: `SCRIPT LOAD`'s compile check.
//! - [`ScriptCache`]: `insert`, `get(sha)`, `exists(sha)`, `flush`, `len`; SHA lookups are
//!   case-insensitive. Shared between connections (`Clone` is a handle).
//! - [`with_thread_vm`]`(|vm| vm.run(&script, keys, argv, host))`: runs a script on this
//!   thread's Lua state. [`LuaVm::run`] returns the reply [`Frame`] (errors included).
//! - [`flush_vms`]: makes every thread rebuild its Lua state (`SCRIPT FLUSH` does it via
//!   [`ScriptCache::flush`]); [`set_thread_vm_options`] sets a memory limit or the hook
//!   period for them.
//!
//! # Why one Lua state per thread
//!
//! `mlua::Lua` is `!Send` without its `send` feature, and a Lua state is single-threaded
//! anyway. Redis runs every script on one state; here each worker thread owns one
//! (`thread_local!`), so connections on different threads never share a state and no lock
//! is held across a script. Scripts cannot keep state between runs (globals are read-only,
//! as in Redis 7.0), so which thread's state runs a script is unobservable, except for
//! `math.random`'s sequence (which Redis does not reset between scripts either, so clients
//! can only rely on it after `math.randomseed`). `SCRIPT FLUSH` bumps a generation number;
//! each thread rebuilds its state before its next script.
//!
//! A script runs synchronously on the calling thread: call [`with_thread_vm`] from a
//! blocking context (or accept that the worker thread is busy for the script's duration, as
//! Redis' single thread is). Nested use from inside `ScriptHost::call` gets a throwaway
//! state rather than a panic, but the host should refuse EVAL from scripts anyway.
//!
//! # What the host must do itself
//!
//! The runtime only converts values and formats errors. The host returns, as
//! `Frame::Error`, the errors Redis produces in `scriptCall` (see [`ScriptHost::call`]):
//! unknown command, wrong arity, `noscript` commands (MULTI, EXEC, WATCH, SUBSCRIBE,
//! BLPOP..., EVAL), writes from `no-writes` scripts and EVAL_RO, ACL denials, OOM for
//! scripts without `allow-oom`. It also answers `NOSCRIPT` for unknown SHAs, replies `BUSY`
//! to other clients while a script runs longer than `busy-reply-threshold`, and stops a
//! script through [`ScriptHost::check_abort`] (the runtime adds the script/line suffix).
//!
//! # Lua differences from redis-server 7.0 (known gaps)
//!
//! - Read-only tables are emulated with proxies (see `sandbox.rs`): `#`, `pairs`, `next`,
//!   `rawget`, `rawset`, `setmetatable`, `table.insert` behave as in Redis; `getmetatable`
//!   on a protected table returns a read-only stand-in rather than Redis' metatable.
//! - Lua's own messages use LUA_IDSIZE 60 for chunk names, Redis 80 (only visible with
//!   `loadstring(code, very_long_name)` errors).
//! - The cjson settings functions report the defaults and change nothing.
//! - No script debugger (`redis.breakpoint` returns false, `redis.debug` does nothing).

mod convert;
mod lib_bit;
mod lib_cjson;
mod lib_cmsgpack;
mod lib_struct;
mod redis_api;
mod sandbox;
mod vm;

#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use sha1::{Digest, Sha1};

pub use crate::frontend::frame::Frame;
pub use convert::format_g;
pub use vm::{LuaVm, VmOptions};

/// Log levels of `redis.log` (`redis.LOG_DEBUG` .. `redis.LOG_WARNING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Debug = 0,
    Verbose = 1,
    Notice = 2,
    Warning = 3,
}

/// Why the host stops a running script (from [`ScriptHost::check_abort`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptAbort {
    /// The error line without its `-`, e.g.
    /// `ERR Script killed by user with SCRIPT KILL...`. The runtime appends
    /// ` script: <sha>, on @user_script:<line>.` as Redis does.
    pub message: String,
}

impl ScriptAbort {
    /// The abort `SCRIPT KILL` causes, worded as Redis 7.0 words it.
    pub fn killed() -> ScriptAbort {
        ScriptAbort {
            message: "ERR Script killed by user with SCRIPT KILL...".into(),
        }
    }
}

/// What a running script needs from the server.
pub trait ScriptHost {
    /// Runs one command for `redis.call` / `redis.pcall` and returns its reply.
    ///
    /// `resp` is the protocol the script asked for with `redis.setresp` (2 unless it called
    /// it). RESP3-only frames are fine either way: in RESP2 mode the runtime downgrades maps,
    /// sets, doubles and booleans as a RESP2 reply would carry them.
    ///
    /// Errors are returned as `Frame::Error` with the whole line (`ERR ...`,
    /// `WRONGTYPE ...`). Redis 7.0's own checks before running a command from a script are
    /// the host's to make, with these exact lines:
    /// - unknown command: `ERR Unknown Redis command called from script`
    /// - wrong arity: `ERR Wrong number of args calling Redis command from script`
    /// - `noscript` commands (MULTI, EXEC, WATCH, SUBSCRIBE, EVAL, ...):
    ///   `ERR This Redis command is not allowed from script`
    /// - a write in a `no-writes` script or from `EVAL_RO`:
    ///   `ERR Write commands are not allowed from read-only scripts.`
    fn call(&mut self, argv: &[Bytes], resp: u8) -> Frame;

    /// `redis.log(level, ...)`: the arguments joined by spaces.
    fn log(&mut self, level: LogLevel, msg: &[u8]);

    /// Called every [`VmOptions::hook_instructions`] Lua instructions. The host can serve
    /// other clients here (replying BUSY) and stop the script by returning `Err`.
    fn check_abort(&mut self) -> Result<(), ScriptAbort> {
        Ok(())
    }

    /// `redis.acl_check_cmd(...)`: whether the current user may run `argv`. `Err` is the
    /// error line to raise (e.g. `ERR Invalid command passed to redis.acl_check_cmd()`).
    fn acl_check_cmd(&mut self, argv: &[Bytes]) -> Result<bool, String> {
        let _ = argv;
        Ok(true)
    }
}

/// Script flags from a `#!lua flags=...` shebang.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScriptFlags {
    /// The script has no shebang: Redis' EVAL compatibility mode (no flag checks).
    pub eval_compat: bool,
    pub no_writes: bool,
    pub allow_oom: bool,
    pub allow_stale: bool,
    pub no_cluster: bool,
    pub allow_cross_slot_keys: bool,
}

/// A script body with its SHA1 and flags.
#[derive(Debug, Clone)]
pub struct Script {
    source: Bytes,
    sha: String,
    flags: ScriptFlags,
    /// Length of the shebang line (without its newline): the compiled body starts there, so
    /// line numbers stay those of the whole source, as in Redis.
    shebang_len: usize,
}

impl Script {
    /// Hashes `source` and parses its shebang. `Err` is the reply Redis 7.0 gives for a bad
    /// shebang (`ERR Unexpected engine in script shebang: ...`, ...).
    pub fn new(source: Bytes) -> Result<Script, Frame> {
        let sha = sha1_hex(&source);
        let (flags, shebang_len) =
            parse_shebang(&source).map_err(|e| Frame::error(format!("ERR {e}")))?;
        Ok(Script {
            source,
            sha,
            flags,
            shebang_len,
        })
    }

    /// The whole source as given.
    pub fn source(&self) -> &Bytes {
        &self.source
    }

    /// Lowercase hex SHA1 of the source.
    pub fn sha(&self) -> &str {
        &self.sha
    }

    /// Flags from the shebang.
    pub fn flags(&self) -> ScriptFlags {
        self.flags
    }

    /// The part compiled by Lua: the source after the shebang line.
    pub(crate) fn body(&self) -> &[u8] {
        &self.source[self.shebang_len..]
    }
}

/// Whether a script source's shebang declares `no-writes` (a bad shebang does not: the script
/// is refused when it runs). Reads the first line only.
pub fn declares_no_writes(source: &[u8]) -> bool {
    parse_shebang(source).is_ok_and(|(flags, _)| flags.no_writes)
}

/// Lowercase hex SHA1, as `redis.sha1hex` and script SHAs use.
pub fn sha1_hex(data: &[u8]) -> String {
    let digest = Sha1::digest(data);
    let mut out = String::with_capacity(40);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    out
}

/// Redis 7.0's `evalExtractShebangFlags`. Returns the flags and the shebang's length.
fn parse_shebang(body: &[u8]) -> Result<(ScriptFlags, usize), String> {
    let mut flags = ScriptFlags {
        eval_compat: true,
        ..ScriptFlags::default()
    };
    if !body.starts_with(b"#!") {
        return Ok((flags, 0));
    }
    let Some(end) = body.iter().position(|&b| b == b'\n') else {
        return Err("Invalid script shebang".into());
    };
    let line = String::from_utf8_lossy(&body[..end]);
    // Redis splits with sdssplitargs (quotes allowed); flags never need quoting, so
    // whitespace splitting gives the same answer for every real shebang.
    let parts: Vec<&str> = line.split_ascii_whitespace().collect();
    let Some(engine) = parts.first() else {
        return Err("Invalid engine in script shebang".into());
    };
    if *engine != "#!lua" {
        return Err(format!("Unexpected engine in script shebang: {engine}"));
    }
    flags.eval_compat = false;
    for part in &parts[1..] {
        let Some(list) = part.strip_prefix("flags=") else {
            return Err(format!("Unknown lua shebang option: {part}"));
        };
        if list.is_empty() {
            continue;
        }
        for f in list.split(',') {
            match f {
                "no-writes" => flags.no_writes = true,
                "allow-oom" => flags.allow_oom = true,
                "allow-stale" => flags.allow_stale = true,
                "no-cluster" => flags.no_cluster = true,
                "allow-cross-slot-keys" => flags.allow_cross_slot_keys = true,
                other => return Err(format!("Unexpected flag in script shebang: {other}")),
            }
        }
    }
    Ok((flags, end))
}

/// Compiles `script` on this thread's VM without running it (`SCRIPT LOAD`). `Err` is the
/// reply: `ERR Error compiling script (new function): user_script:1: ...`.
pub fn compile_check(script: &Script) -> Result<(), Frame> {
    with_thread_vm(|vm| vm.compile(script).map(|_| ()))
}

/// Scripts by SHA, shared by all connections. Cloning gives another handle to the same cache.
#[derive(Clone, Default)]
pub struct ScriptCache {
    inner: Arc<RwLock<HashMap<String, Script>>>,
}

impl ScriptCache {
    pub fn new() -> ScriptCache {
        ScriptCache::default()
    }

    /// Adds `script` (a no-op if its SHA is already there) and returns its SHA.
    pub fn insert(&self, script: Script) -> String {
        let sha = script.sha.clone();
        self.inner.write().entry(sha.clone()).or_insert(script);
        sha
    }

    /// The script with this SHA; case-insensitive like Redis (which lowercases the SHA).
    pub fn get(&self, sha: &[u8]) -> Option<Script> {
        if sha.len() != 40 {
            return None;
        }
        let key = String::from_utf8_lossy(sha).to_ascii_lowercase();
        self.inner.read().get(&key).cloned()
    }

    /// True if a script with this SHA is cached (`SCRIPT EXISTS`).
    pub fn exists(&self, sha: &[u8]) -> bool {
        self.get(sha).is_some()
    }

    /// Drops every script (`SCRIPT FLUSH`) and makes every thread's VM start afresh.
    pub fn flush(&self) {
        self.inner.write().clear();
        flush_vms();
    }

    pub fn len(&self) -> usize {
        self.inner.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Bumped by [`flush_vms`]; a thread VM built under an older value is rebuilt.
static VM_GENERATION: AtomicU64 = AtomicU64::new(0);

/// Options for the thread VMs built from now on (see [`set_thread_vm_options`]).
static VM_OPTIONS: RwLock<VmOptions> = RwLock::new(VmOptions {
    hook_instructions: 100_000,
    memory_limit: None,
});

/// Sets the options of every thread's VM (e.g. a Lua memory limit from the server config);
/// existing VMs are rebuilt before their next script.
pub fn set_thread_vm_options(options: VmOptions) {
    *VM_OPTIONS.write() = options;
    flush_vms();
}

thread_local! {
    static THREAD_VM: RefCell<Option<(u64, LuaVm)>> = const { RefCell::new(None) };
}

/// Makes every thread rebuild its Lua state before its next script (`SCRIPT FLUSH`).
pub fn flush_vms() {
    VM_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// Runs `f` with this thread's Lua state, creating it on first use or after [`flush_vms`].
///
/// If the state cannot be created (out of memory) or is already in use on this thread (a
/// host calling back into scripting from `redis.call`, which Redis forbids), `f` gets a
/// fresh throwaway state instead (or the error reply if even that fails).
pub fn with_thread_vm<R>(f: impl FnOnce(&mut LuaVm) -> Result<R, Frame>) -> Result<R, Frame> {
    let generation = VM_GENERATION.load(Ordering::SeqCst);
    let mut f = Some(f);
    let ran = THREAD_VM.try_with(|cell| {
        // Borrowed already: a host re-entering scripting from inside a script.
        let mut slot = cell.try_borrow_mut().ok()?;
        if !matches!(&*slot, Some((g, _)) if *g == generation) {
            *slot = LuaVm::new(VmOptions::default())
                .ok()
                .map(|vm| (generation, vm));
        }
        let (_, vm) = slot.as_mut()?;
        let f = f.take()?;
        Some(f(vm))
    });
    if let Ok(Some(result)) = ran {
        return result;
    }
    let Some(f) = f.take() else {
        // Unreachable: `f` is only taken right before it runs and its result returned.
        return Err(Frame::error("ERR internal error: script runner lost"));
    };
    let options = *VM_OPTIONS.read();
    let mut vm = LuaVm::new(options)
        .map_err(|e| Frame::error(format!("ERR cannot create Lua state: {e}")))?;
    f(&mut vm)
}
