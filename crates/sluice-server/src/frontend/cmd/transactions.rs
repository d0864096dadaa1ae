//! MULTI, EXEC, DISCARD, WATCH and UNWATCH, as Redis 7.0 answers them.
//!
//! After MULTI, every command but these and QUIT / RESET is checked (name, arity,
//! permissions) and queued; a refusal dooms the transaction, and EXEC then answers
//! EXECABORT. EXEC runs the queue as one engine [`sluice::Transaction`]: it holds the locks of
//! every queued and watched key (taken in one global order, so EXECs cannot deadlock), checks
//! the watched keys, runs each command against the transaction's staged view, and commits the
//! writes all or none: under write-through and invalidate in one database transaction, under
//! write-back as one journal group. No other client sees part of it.

use bytes::Bytes;
use sluice::SluiceError;

use super::args::KeyList;
use super::spec::{boxed, Ctx, Handler, KeyPositions, Spec};
use super::util::engine_error;
use super::{acl, full_name_of, lookup, run};
use crate::frontend::Frame;
use crate::state::{MultiQueue, Session, Shared};

const TRANSACTION: &[&str] = &["@fast", "@transaction"];
const FLAGS: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];

/// The transaction commands.
pub static COMMANDS: &[Spec] = &[
    Spec {
        name: "multi",
        arity: 1,
        flags: FLAGS,
        categories: TRANSACTION,
        summary: "Starts a transaction.",
        handler: Handler::Sync(multi),
        ..Spec::DEFAULT
    },
    Spec {
        name: "exec",
        arity: 1,
        flags: &["noscript", "loading", "stale", "skip_slowlog"],
        categories: &["@slow", "@transaction"],
        summary: "Executes all commands in a transaction.",
        handler: boxed!(exec),
        ..Spec::DEFAULT
    },
    Spec {
        name: "discard",
        arity: 1,
        flags: FLAGS,
        categories: TRANSACTION,
        summary: "Discards a transaction.",
        handler: Handler::Sync(discard),
        ..Spec::DEFAULT
    },
    Spec {
        name: "watch",
        arity: -2,
        flags: FLAGS,
        keys: KeyPositions::ALL,
        categories: TRANSACTION,
        summary: "Monitors changes to keys to determine the execution of a transaction.",
        handler: boxed!(watch),
        ..Spec::DEFAULT
    },
    Spec {
        name: "unwatch",
        arity: 1,
        flags: FLAGS,
        categories: TRANSACTION,
        summary: "Forgets about watched keys of a transaction.",
        handler: Handler::Sync(unwatch),
        ..Spec::DEFAULT
    },
];

/// Whether a command runs at once inside MULTI instead of being queued (as in Redis's
/// `processCommand`).
pub fn runs_in_multi(spec: &Spec) -> bool {
    matches!(
        spec.name,
        "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
    )
}

/// Queues a checked command after MULTI.
pub fn queue(session: &mut Session, args: &[Bytes]) -> Frame {
    let Some(multi) = &mut session.multi else {
        return Frame::error("ERR EXEC without MULTI");
    };
    if multi.push(args) {
        Frame::Simple("QUEUED".into())
    } else {
        Frame::error(format!(
            "ERR the transaction queue is over its limit of {} MiB; it is discarded at EXEC",
            MultiQueue::MAX_BYTES >> 20
        ))
    }
}

/// MULTI
fn multi(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    if ctx.session.multi.is_some() {
        return Frame::error("ERR MULTI calls can not be nested");
    }
    ctx.session.multi = Some(MultiQueue::default());
    Frame::ok()
}

/// DISCARD
fn discard(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    if ctx.session.multi.is_none() {
        return Frame::error("ERR DISCARD without MULTI");
    }
    ctx.session.end_transaction();
    Frame::ok()
}

/// UNWATCH
fn unwatch(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    if let Some(watch) = &mut ctx.session.watch {
        watch.unwatch();
    }
    Frame::ok()
}

/// WATCH key [key ...]
async fn watch(ctx: Ctx<'_>, argv: &mut [Bytes]) -> Frame {
    if ctx.session.multi.is_some() {
        return Frame::error("ERR WATCH inside MULTI is not allowed");
    }
    let db = ctx.session.db;
    let keys = KeyList::parse(argv).keys;
    let set = ctx
        .session
        .watch
        .get_or_insert_with(|| ctx.shared.sluice.watch_set());
    for key in keys.iter_mut() {
        if let Err(e) = set.watch(db, std::mem::take(key)).await {
            return engine_error(e);
        }
    }
    Frame::ok()
}

/// EXEC
async fn exec(ctx: Ctx<'_>, _argv: &mut [Bytes]) -> Frame {
    let Ctx {
        shared, session, ..
    } = ctx;
    let Some(queue) = session.multi.take() else {
        return Frame::error("ERR EXEC without MULTI");
    };
    let reply = if queue.refused {
        Frame::error("EXECABORT Transaction discarded because of previous errors.")
    } else {
        run_queue(shared, session, queue.commands).await
    };
    session.end_transaction();
    reply
}

/// Runs queued commands as one transaction: their replies, NullArray if a watched key
/// changed, or the error that kept the transaction from committing (nothing of it applied).
async fn run_queue(shared: &Shared, session: &mut Session, commands: Vec<Vec<Bytes>>) -> Frame {
    let db = session.db;
    // Every key the queue names and every watched key, locked before anything runs. A key
    // a command finds only as it runs (after a SELECT, say) makes the transaction take it and
    // run again from the start.
    let mut keys: Vec<(u8, Bytes)> = Vec::new();
    for args in &commands {
        if let Some(found) = lookup(&args[0]).and_then(|spec| spec.request_keys(args)) {
            keys.extend(found.into_iter().map(|k| (db, k.clone())));
        }
    }
    if let Some(watch) = &session.watch {
        keys.extend(watch.keys().map(|(d, k)| (d, Bytes::copy_from_slice(k))));
    }
    let mut txn = match shared
        .sluice
        .transaction(keys.iter().map(|(d, k)| (*d, &k[..])))
        .await
    {
        Ok(txn) => txn,
        Err(e) => return exec_abort(e),
    };
    loop {
        // Events staged by a run that restarted were never applied.
        session.drop_key_events();
        if session.watch.as_ref().is_some_and(|w| w.changed(&txn)) {
            return Frame::NullArray;
        }
        session.db = db;
        let mut replies = Vec::with_capacity(commands.len());
        for queued in &commands {
            // Checked when queued; permissions again now, as Redis does, since ACLs may have
            // changed meanwhile.
            let Some(spec) = lookup(&queued[0]) else {
                continue;
            };
            // A copy: a command may move its arguments out, and a restart runs it again.
            let mut args = queued.clone();
            let reply = match acl::check(session, spec, full_name_of(spec, &args), &args) {
                Some(denied) => denied,
                None => Box::pin(run(shared, session, spec, txn.access(), &mut args)).await,
            };
            if let Some(stopped) = session.discard_exec.take() {
                // A script in the queue was stopped: nothing of the EXEC is applied.
                session.db = db;
                session.drop_key_events();
                return stopped;
            }
            if txn.needs_restart() {
                break;
            }
            replies.push(reply);
        }
        if txn.needs_restart() {
            if let Err(e) = txn.restart().await {
                session.db = db;
                session.drop_key_events();
                return exec_abort(e);
            }
            continue;
        }
        return match txn.commit().await {
            Ok(()) => Frame::Array(replies),
            Err(e) => {
                // Nothing was applied, a queued SELECT included.
                session.db = db;
                session.drop_key_events();
                engine_error(e)
            }
        };
    }
}

/// EXEC refused before anything ran (a key held by a busy script), worded as Redis refuses an
/// EXEC that arrives while a script runs long.
fn exec_abort(e: SluiceError) -> Frame {
    Frame::error(format!("EXECABORT Transaction discarded because of: {e}"))
}
