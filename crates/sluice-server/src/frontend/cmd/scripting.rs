//! EVAL, EVALSHA, EVAL_RO, EVALSHA_RO, SCRIPT and FUNCTION FLUSH.
//!
//! A script runs as one engine transaction, as EXEC does: it holds its declared keys (and
//! any other key it reaches, restarting from the top if another transaction held it), its
//! own reads see its own writes, and when it ends its writes commit all or none (in one
//! database transaction under write-through and invalidate, one journal group under
//! write-back). A script stopped by SCRIPT KILL or `script_timeout` applies nothing. Inside
//! MULTI, a queued EVAL runs in the EXEC's transaction.
//!
//! A script still running after `busy_reply_threshold` marks its transaction busy: a command
//! that would wait for one of its keys (a write, an EXEC, another script) is answered Redis's
//! `BUSY` instead, at once or, if it was already waiting, at that moment. Other clients keep
//! being served, unlike in Redis, where every client but SCRIPT KILL gets `BUSY`.
//!
//! The Lua state runs on the connection's worker thread inside `block_in_place` (the runtime
//! moves its other tasks elsewhere meanwhile), and each `redis.call` runs, like any command,
//! against the transaction through `Handle::block_on`: the commands a script calls are the
//! very handlers clients reach, with no thread hand-off per call. On a current-thread runtime
//! the state runs on a blocking thread and sends its calls back over a channel.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sluice::{Access, ScriptKind};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::args::{parse, Args};
use super::spec::{boxed, Ctx, Handler, Spec};
use super::util::{engine_error, int_arg, is, unknown_subcommand};
use super::{acl, arity_ok, full_name_of, lookup, run};
use crate::frontend::Frame;
use crate::script::{self, LogLevel, Script, ScriptAbort, ScriptHost};
use crate::state::{Session, Shared};

const SCRIPTING: &[&str] = &["@slow", "@scripting"];
const EVAL_FLAGS: &[&str] = &[
    "noscript",
    "stale",
    "skip_monitor",
    "no_mandatory_keys",
    "movablekeys",
];
const EVAL_RO_FLAGS: &[&str] = &[
    "readonly",
    "noscript",
    "stale",
    "skip_monitor",
    "no_mandatory_keys",
    "movablekeys",
];

/// The scripting commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "eval",
        arity: -3,
        flags: EVAL_FLAGS,
        categories: SCRIPTING,
        summary: "Executes a server-side Lua script.",
        handler: boxed!(eval),
        ..Spec::DEFAULT
    },
    Spec {
        name: "evalsha",
        arity: -3,
        flags: EVAL_FLAGS,
        categories: SCRIPTING,
        summary: "Executes a server-side Lua script by SHA1 digest.",
        handler: boxed!(evalsha),
        ..Spec::DEFAULT
    },
    Spec {
        name: "eval_ro",
        arity: -3,
        flags: EVAL_RO_FLAGS,
        categories: SCRIPTING,
        summary: "Executes a read-only server-side Lua script.",
        handler: boxed!(eval_ro),
        ..Spec::DEFAULT
    },
    Spec {
        name: "evalsha_ro",
        arity: -3,
        flags: EVAL_RO_FLAGS,
        categories: SCRIPTING,
        summary: "Executes a read-only server-side Lua script by SHA1 digest.",
        handler: boxed!(evalsha_ro),
        ..Spec::DEFAULT
    },
    Spec {
        name: "script",
        arity: -2,
        categories: &["@slow"],
        summary: "A container for Lua scripts management commands.",
        subcommands: &[
            ("kill", 2),
            ("exists", -3),
            ("load", 3),
            ("flush", -2),
            ("help", 2),
        ],
        handler: Handler::Sync(script_cmd),
        ..Spec::DEFAULT
    },
    Spec {
        name: "function",
        arity: -2,
        categories: &["@slow"],
        summary: "A container for function commands.",
        subcommands: &[("flush", -2)],
        handler: Handler::Sync(function_cmd),
        ..Spec::DEFAULT
    },
];

/// `script numkeys [key ...] [arg ...]` (the script as its body or its SHA1).
struct EvalArgs {
    script: Bytes,
    keys: Vec<Bytes>,
    argv: Vec<Bytes>,
}

impl EvalArgs {
    /// Parses as Redis `evalGenericCommand`: numkeys must be an integer, not negative, and
    /// not more than the arguments that follow.
    fn parse(argv: &mut [Bytes]) -> Result<EvalArgs, Frame> {
        let mut args = Args::new(argv);
        let script = args.next_bytes()?;
        let numkeys = int_arg(&args.next_bytes()?)?;
        if numkeys > args.remaining() as i64 {
            return Err(Frame::error(
                "ERR Number of keys can't be greater than number of args",
            ));
        }
        if numkeys < 0 {
            return Err(Frame::error("ERR Number of keys can't be negative"));
        }
        let mut keys = Vec::with_capacity(numkeys as usize);
        for _ in 0..numkeys {
            keys.push(args.next_bytes()?);
        }
        let mut rest = Vec::with_capacity(args.remaining());
        while !args.is_empty() {
            rest.push(args.next_bytes()?);
        }
        Ok(EvalArgs {
            script,
            keys,
            argv: rest,
        })
    }
}

/// Whether a script may write (EVAL) or only read (EVAL_RO, or a `no-writes` script).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writes {
    Allowed,
    Refused,
}

/// EVAL script numkeys [key ...] [arg ...]
async fn eval(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    eval_source(ctx, argv, Writes::Allowed).await
}

/// EVAL_RO script numkeys [key ...] [arg ...]
async fn eval_ro(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    eval_source(ctx, argv, Writes::Refused).await
}

/// EVALSHA sha1 numkeys [key ...] [arg ...]
async fn evalsha(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    eval_sha(ctx, argv, Writes::Allowed).await
}

/// EVALSHA_RO sha1 numkeys [key ...] [arg ...]
async fn evalsha_ro(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    eval_sha(ctx, argv, Writes::Refused).await
}

async fn eval_source(ctx: Ctx<'_>, argv: &mut [Bytes], writes: Writes) -> Frame {
    let a = parse!(EvalArgs::parse(argv));
    let cache = &ctx.shared.scripting.cache;
    // A script already loaded is not parsed again.
    let script = match cache.get(script::sha1_hex(&a.script).as_bytes()) {
        Some(script) => script,
        None => {
            let script = parse!(Script::new(a.script));
            parse!(script::compile_check(&script));
            cache.insert(script.clone());
            script
        }
    };
    run_script(ctx, &script, &a.keys, &a.argv, writes).await
}

async fn eval_sha(ctx: Ctx<'_>, argv: &mut [Bytes], writes: Writes) -> Frame {
    let a = parse!(EvalArgs::parse(argv));
    let Some(script) = ctx.shared.scripting.cache.get(&a.script) else {
        return Frame::error("NOSCRIPT No matching script. Please use EVAL.");
    };
    run_script(ctx, &script, &a.keys, &a.argv, writes).await
}

/// How one run of a script ended.
enum Ran {
    /// It returned (a reply or an error reply): its writes are to be committed.
    Finished(Frame),
    /// It was stopped (SCRIPT KILL, `script_timeout`, the connection went away): nothing of
    /// it may be applied.
    Stopped(Frame),
}

/// One run of a script: what runs, on which keys and arguments, and how.
struct Invocation<'r> {
    script: &'r Script,
    keys: &'r [Bytes],
    argv: &'r [Bytes],
    writes: Writes,
    /// Named in the `BUSY` reply of those waiting for its keys.
    kind: ScriptKind,
}

/// Runs a script as a transaction of its own, or inside the EXEC that queued it.
async fn run_script(
    ctx: Ctx<'_>,
    script: &Script,
    keys: &[Bytes],
    argv: &[Bytes],
    writes: Writes,
) -> Frame {
    let run = Invocation {
        script,
        keys,
        argv,
        writes: if script.flags().no_writes {
            Writes::Refused
        } else {
            writes
        },
        kind: ScriptKind::Eval,
    };
    let Ctx {
        shared,
        session,
        mut access,
        ..
    } = ctx;
    if access.in_transaction() {
        // Queued in MULTI: the EXEC's transaction holds the keys and commits (or restarts).
        // A script stopped there (not for a restart) discards the whole EXEC: it cannot undo
        // only what the script staged.
        return match run_once(shared, session, &mut access, &run).await {
            Ran::Finished(reply) => reply,
            Ran::Stopped(reply) => {
                if !access.needs_restart() {
                    session.discard_exec = Some(reply.clone());
                }
                reply
            }
        };
    }
    let db = session.db;
    // A key held by a busy script: BUSY, as Redis answers an EVAL while a script runs long.
    let mut txn = match shared
        .sluice
        .transaction(keys.iter().map(|k| (db, &k[..])))
        .await
    {
        Ok(txn) => txn,
        Err(e) => return engine_error(e),
    };
    loop {
        // Keyspace events staged by a run that restarted were never applied.
        session.drop_key_events();
        let ran = {
            let mut access = txn.access();
            run_once(shared, session, &mut access, &run).await
        };
        if txn.needs_restart() {
            // The script reached a key another transaction held: its effects were only
            // staged, so run it again from the top, now holding that key too.
            if let Err(e) = txn.restart().await {
                session.drop_key_events();
                return engine_error(e);
            }
            continue;
        }
        return match ran {
            Ran::Stopped(reply) => {
                session.drop_key_events();
                reply
            }
            Ran::Finished(reply) => match txn.commit().await {
                Ok(()) => reply,
                Err(e) => {
                    session.drop_key_events();
                    engine_error(e)
                }
            },
        };
    }
}

/// One `redis.call` from the script thread, and where its reply goes.
struct Call {
    argv: Vec<Bytes>,
    resp: u8,
    reply: oneshot::Sender<Frame>,
}

/// Runs the script once. On a multi-threaded runtime (the server's) the script runs right
/// here, inside `block_in_place`, and each `redis.call` runs its command with
/// `Handle::block_on`: no thread hand-off per call. Elsewhere (a current-thread runtime, as in
/// some tests) it runs on a blocking thread and sends its calls back here.
async fn run_once(
    shared: &Shared,
    session: &mut Session,
    access: &mut Access<'_>,
    run: &Invocation<'_>,
) -> Ran {
    if shared.routing.is_some() {
        session.script_slot = run.keys.first().map(|k| crate::state::routing::key_slot(k));
        session.script_cross_slot = run.script.flags().allow_cross_slot_keys;
    }
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => run_inline(shared, session, access, run),
        _ => run_on_thread(shared, session, access, run).await,
    }
}

/// [`run_once`] on this worker thread, made a blocking one for the script's duration (the
/// runtime moves its other tasks elsewhere meanwhile).
fn run_inline(
    shared: &Shared,
    session: &mut Session,
    access: &mut Access<'_>,
    run: &Invocation<'_>,
) -> Ran {
    let running = shared.scripting.start();
    let (db, proto) = (session.db, session.proto);
    let mut host = InlineHost {
        handle: tokio::runtime::Handle::current(),
        shared,
        session: &mut *session,
        access,
        writes: run.writes,
        kind: run.kind,
        proto,
        limits: Limits::new(shared, &running),
    };
    let reply = tokio::task::block_in_place(|| {
        script::with_thread_vm(|vm| Ok(vm.run(run.script, run.keys, run.argv, &mut host)))
            .unwrap_or_else(|e| e)
    });
    let stopped = host.limits.stopped_by();
    drop(host);
    // A script's SELECT does not outlive it (as in Redis 7.0).
    session.db = db;
    session.proto = proto;
    drop(running);
    ran(run.script, reply, stopped)
}

/// How a run ended, from its reply and why it was stopped (if it was).
fn ran(script: &Script, reply: Frame, stopped: Option<&'static str>) -> Ran {
    match stopped {
        Some(why) => {
            info!(
                "Lua script {} stopped ({why}); nothing of it was applied",
                script.sha()
            );
            Ran::Stopped(reply)
        }
        None => Ran::Finished(reply),
    }
}

/// What stops a running script, whichever thread it runs on: SCRIPT KILL, `script_timeout`,
/// or its connection (a restart of its transaction, a client gone); and when it becomes busy.
struct Limits {
    killed: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    /// When `script_timeout` stops it; never if 0.
    deadline: Option<Instant>,
    timed_out: bool,
    /// When it becomes busy (`busy_reply_threshold`); never if it is stopped first.
    busy_at: Option<Instant>,
    busy: bool,
}

impl Limits {
    fn new(shared: &Shared, running: &crate::state::RunningScript<'_>) -> Limits {
        let (deadline, busy_at) = stop_and_busy_instants(
            Instant::now(),
            shared.config.script_timeout,
            shared.config.busy_reply_threshold,
        );
        Limits {
            killed: running.kill_switch(),
            stop: Arc::new(AtomicBool::new(false)),
            deadline,
            timed_out: false,
            busy_at,
            busy: false,
        }
    }

    /// Whether the script has just run past its busy threshold (true once).
    fn becomes_busy(&mut self) -> bool {
        if self.busy || self.busy_at.is_none_or(|at| Instant::now() < at) {
            return false;
        }
        self.busy = true;
        true
    }

    /// Whether a call must not run: the script is being stopped.
    fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst) || self.killed.load(Ordering::SeqCst)
    }

    /// Why the script was stopped, if it was.
    fn stopped_by(&self) -> Option<&'static str> {
        if self.timed_out {
            Some("script_timeout")
        } else if self.killed.load(Ordering::SeqCst) {
            Some("SCRIPT KILL")
        } else if self.stop.load(Ordering::SeqCst) {
            Some("restart or disconnect")
        } else {
            None
        }
    }

    /// [`ScriptHost::check_abort`].
    fn check_abort(&mut self) -> Result<(), ScriptAbort> {
        if self.killed.load(Ordering::SeqCst) {
            return Err(ScriptAbort::killed());
        }
        if self.stop.load(Ordering::SeqCst) {
            return Err(ScriptAbort {
                message: "ERR the script was stopped".into(),
            });
        }
        if self
            .deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
        {
            self.timed_out = true;
            return Err(ScriptAbort {
                message: "ERR Script stopped after running longer than script_timeout; nothing it wrote was applied".into(),
            });
        }
        Ok(())
    }
}

/// When a script started at `start` is stopped by `script_timeout` (0: never, as in Redis) and
/// when it becomes busy by `busy_reply_threshold` (never if the timeout stops it first).
fn stop_and_busy_instants(
    start: Instant,
    timeout: Duration,
    threshold: Duration,
) -> (Option<Instant>, Option<Instant>) {
    let deadline = (!timeout.is_zero()).then(|| start + timeout);
    let busy_at = (timeout.is_zero() || threshold < timeout).then(|| start + threshold);
    (deadline, busy_at)
}

/// The [`ScriptHost`] of a script running on the connection's own thread.
struct InlineHost<'s, 'a> {
    handle: tokio::runtime::Handle,
    shared: &'s Shared,
    session: &'s mut Session,
    access: &'s mut Access<'a>,
    writes: Writes,
    kind: ScriptKind,
    /// The connection's protocol, restored after each call (a call runs in the script's).
    proto: u8,
    limits: Limits,
}

impl ScriptHost for InlineHost<'_, '_> {
    fn call(&mut self, argv: &[Bytes], resp: u8) -> Frame {
        if self.limits.stopping() {
            return Frame::error("ERR the script is being stopped");
        }
        self.session.proto = resp;
        let reply = self.handle.block_on(call_from_script(
            self.shared,
            self.session,
            self.access,
            argv.to_vec(),
            self.writes,
        ));
        self.session.proto = self.proto;
        if self.access.needs_restart() {
            // A key another transaction holds: stop, the transaction runs again.
            self.limits.stop.store(true, Ordering::SeqCst);
        }
        reply
    }

    fn log(&mut self, level: LogLevel, msg: &[u8]) {
        log_from_script(level, msg);
    }

    fn check_abort(&mut self) -> Result<(), ScriptAbort> {
        self.limits.check_abort()?;
        if self.limits.becomes_busy() {
            self.access.mark_busy(self.kind);
        }
        Ok(())
    }
}

/// `redis.log`, into the server's log.
fn log_from_script(level: LogLevel, msg: &[u8]) {
    let msg = String::from_utf8_lossy(msg);
    match level {
        LogLevel::Debug | LogLevel::Verbose => debug!(target: "sluice::script", "{msg}"),
        LogLevel::Notice => info!(target: "sluice::script", "{msg}"),
        LogLevel::Warning => warn!(target: "sluice::script", "{msg}"),
    }
}

/// [`run_once`] on a blocking thread, serving the script's `redis.call`s here.
async fn run_on_thread(
    shared: &Shared,
    session: &mut Session,
    access: &mut Access<'_>,
    run: &Invocation<'_>,
) -> Ran {
    let running = shared.scripting.start();
    let (calls_tx, mut calls) = mpsc::channel::<Call>(1);
    let limits = Limits::new(shared, &running);
    let stop = limits.stop.clone();
    // The script's thread cannot reach the transaction: this task marks it busy on time.
    let busy_at = limits.busy_at;
    let mut busy_timer = pin!(async move {
        match busy_at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    });
    let mut host = ThreadHost {
        calls: calls_tx,
        limits,
    };
    let (script_c, keys_c, argv_c) = (run.script.clone(), run.keys.to_vec(), run.argv.to_vec());
    let lua = tokio::task::spawn_blocking(move || {
        let reply = script::with_thread_vm(|vm| Ok(vm.run(&script_c, &keys_c, &argv_c, &mut host)))
            .unwrap_or_else(|e| e);
        (reply, host.limits.stopped_by())
    });
    // Serve the script's calls until it ends (its thread drops the sender).
    let (db, proto) = (session.db, session.proto);
    // If this future is dropped (the client went away), the script is told to stop.
    let _stop_on_drop = StopOnDrop(stop.clone());
    let mut marked_busy = false;
    loop {
        let call = tokio::select! {
            call = calls.recv() => call,
            () = &mut busy_timer, if !marked_busy => {
                access.mark_busy(run.kind);
                marked_busy = true;
                continue;
            }
        };
        let Some(call) = call else {
            break;
        };
        session.proto = call.resp;
        let reply = call_from_script(shared, session, access, call.argv, run.writes).await;
        session.proto = proto;
        if access.needs_restart() {
            stop.store(true, Ordering::SeqCst);
        }
        let _ = call.reply.send(reply);
    }
    // A script's SELECT does not outlive it (as in Redis 7.0).
    session.db = db;
    let (reply, stopped) = match lua.await {
        Ok(done) => done,
        Err(e) => {
            warn!("a Lua script's thread failed: {e}");
            return Ran::Stopped(Frame::error(
                "ERR the script's thread failed; nothing of it was applied",
            ));
        }
    };
    drop(running);
    ran(run.script, reply, stopped)
}

/// Sets the stop flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Runs one command a script sent, with the checks Redis's `scriptCall` makes first.
async fn call_from_script(
    shared: &Shared,
    session: &mut Session,
    access: &mut Access<'_>,
    mut args: Vec<Bytes>,
    writes: Writes,
) -> Frame {
    let Some(spec) = args.first().and_then(|name| lookup(name)) else {
        return Frame::error("ERR Unknown Redis command called from script");
    };
    if !arity_ok(spec.arity, args.len()) {
        return Frame::error("ERR Wrong number of args calling Redis command from script");
    }
    if spec.flags.contains(&"noscript") {
        return Frame::error("ERR This Redis command is not allowed from script");
    }
    if writes == Writes::Refused && spec.flags.contains(&"write") {
        return Frame::error("ERR Write commands are not allowed from read-only scripts.");
    }
    if !spec.subcommands.is_empty() && args.len() > 1 {
        match spec.subcommand(&args[1]) {
            None => return unknown_subcommand(spec.name, &args[1]),
            Some((_, _, arity)) if !arity_ok(arity, args.len()) => {
                return Frame::error("ERR Wrong number of args calling Redis command from script");
            }
            Some(_) => {}
        }
    }
    if let Some(denied) = acl::check(session, spec, full_name_of(spec, &args), &args) {
        return denied;
    }
    if let Some(routing) = &shared.routing {
        if let Some(refused) =
            super::cluster::check_script_call(routing, shared, session, spec, &args)
        {
            return refused;
        }
    }
    let access = access.reborrow();
    session.in_script = true;
    let reply = Box::pin(run(shared, session, spec, access, &mut args)).await;
    session.in_script = false;
    reply
}

/// The [`ScriptHost`] on the script's thread: each call goes to the connection's task.
struct ThreadHost {
    calls: mpsc::Sender<Call>,
    limits: Limits,
}

impl ScriptHost for ThreadHost {
    fn call(&mut self, argv: &[Bytes], resp: u8) -> Frame {
        if self.limits.stopping() {
            return Frame::error("ERR the script is being stopped");
        }
        let (reply, answer) = oneshot::channel();
        let call = Call {
            argv: argv.to_vec(),
            resp,
            reply,
        };
        if self.calls.blocking_send(call).is_err() {
            return Frame::error("ERR the connection running the script went away");
        }
        answer
            .blocking_recv()
            .unwrap_or_else(|_| Frame::error("ERR the connection running the script went away"))
    }

    fn log(&mut self, level: LogLevel, msg: &[u8]) {
        log_from_script(level, msg);
    }

    fn check_abort(&mut self) -> Result<(), ScriptAbort> {
        self.limits.check_abort()
    }
}

/// SCRIPT LOAD | EXISTS | FLUSH | KILL | HELP
fn script_cmd(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    let scripting = &ctx.shared.scripting;
    let sub = &argv[1];
    if is(sub, "load") {
        let script = parse!(Script::new(argv[2].clone()));
        parse!(script::compile_check(&script));
        Frame::bulk(scripting.cache.insert(script))
    } else if is(sub, "exists") {
        Frame::Array(
            argv[2..]
                .iter()
                .map(|sha| Frame::Integer(scripting.cache.exists(sha) as i64))
                .collect(),
        )
    } else if is(sub, "flush") {
        match argv.get(2) {
            None => {}
            Some(mode) if argv.len() == 3 && (is(mode, "sync") || is(mode, "async")) => {}
            Some(_) => return Frame::error("ERR SCRIPT FLUSH only support SYNC|ASYNC option"),
        }
        scripting.cache.flush();
        Frame::ok()
    } else if is(sub, "kill") {
        if scripting.kill_all() {
            Frame::ok()
        } else {
            Frame::error("NOTBUSY No scripts in execution right now.")
        }
    } else {
        Frame::Array(
            [
                "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "DEBUG (YES|SYNC|NO)",
                "    Set the debug mode for subsequent scripts executed.",
                "EXISTS <sha1> [<sha1> ...]",
                "    Return information about the existence of the scripts in the script cache.",
                "FLUSH [ASYNC|SYNC]",
                "    Flush the Lua scripts cache. Very dangerous on replicas.",
                "    When called without the optional mode argument, the behavior is determined by the",
                "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
                "    * ASYNC: Asynchronously flush the scripts cache.",
                "    * SYNC: Synchronously flush the scripts cache.",
                "KILL",
                "    Kill the currently executing Lua script.",
                "LOAD <script>",
                "    Load a script into the scripts cache without executing it.",
                "HELP",
                "    Prints this help.",
            ]
            .iter()
            .map(|l| Frame::Simple((*l).into()))
            .collect(),
        )
    }
}

/// FUNCTION FLUSH [ASYNC|SYNC]: there are no functions to flush (FUNCTION LOAD is not served).
fn function_cmd(_ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    match argv.get(2) {
        None => Frame::ok(),
        Some(mode) if argv.len() == 3 && (is(mode, "sync") || is(mode, "async")) => Frame::ok(),
        Some(_) => Frame::error("ERR FUNCTION FLUSH only supports SYNC|ASYNC option"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `script_timeout = 0` never stops a script, which then becomes busy at the threshold;
    /// a threshold not below a nonzero timeout never applies.
    #[test]
    fn a_zero_timeout_never_stops_and_the_timeout_comes_before_a_later_threshold() {
        let start = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(
            stop_and_busy_instants(start, s(0), s(5)),
            (None, Some(start + s(5)))
        );
        assert_eq!(
            stop_and_busy_instants(start, s(10), s(5)),
            (Some(start + s(10)), Some(start + s(5)))
        );
        assert_eq!(
            stop_and_busy_instants(start, s(5), s(5)),
            (Some(start + s(5)), None)
        );
    }
}
