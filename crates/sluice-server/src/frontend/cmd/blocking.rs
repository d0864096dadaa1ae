//! What every blocking command (BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP, BZPOPMIN,
//! BZPOPMAX, BZMPOP) shares: its timeout argument, and its turn in the queues of its keys
//! (`state::blocking`): [`BlockingTurn`], and [`pop_or_block`], the loop of the commands that
//! take from the first of several keys.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use sluice::SluiceError;

use super::spec::Ctx;
use super::util::engine_error;
use crate::frontend::Frame;
pub use crate::state::BlockKind;

/// `key [key ...] timeout` (BLPOP, BRPOP, BZPOPMIN, BZPOPMAX): the keys and the timeout.
pub fn keys_then_timeout(argv: &[Bytes]) -> Result<(&[Bytes], Option<Duration>), Frame> {
    let Some((last, keys)) = argv.get(1..).and_then(<[Bytes]>::split_last) else {
        return Err(super::util::syntax_error());
    };
    Ok((keys, parse_timeout(last)?))
}

/// One attempt of a blocking pop at one key: its reply if it took something, `None` if the key
/// held nothing. `P` is what the command parsed (side, count, reply shape).
pub type Attempt<P> = for<'a, 'c> fn(
    &'a mut Ctx<'c>,
    &'a Bytes,
    P,
) -> Pin<
    Box<dyn Future<Output = Result<Option<Frame>, SluiceError>> + Send + 'a>,
>;

/// BLPOP, BRPOP, BLMPOP, BZPOPMIN, BZPOPMAX, BZMPOP: `attempt` on each of `keys` in order until
/// one serves, or blocks until one may. Inside MULTI or a script it does not block (nil at
/// once, as in Redis).
pub async fn pop_or_block<P: Copy>(
    mut ctx: Ctx<'_>,
    keys: &[Bytes],
    timeout: Option<Duration>,
    kind: BlockKind,
    params: P,
    attempt: Attempt<P>,
) -> Frame {
    let turn = BlockingTurn::begin(&mut ctx, keys, timeout, kind);
    for key in turn.keys_to_try(&ctx, keys) {
        let key = &key;
        if !turn.may_take(&ctx, key) {
            continue;
        }
        match attempt(&mut ctx, key, params).await {
            Err(e) if turn.keeps_waiting(&e) => continue,
            Err(e) => return turn.leave(&mut ctx, engine_error(e)),
            Ok(None) => continue,
            Ok(Some(reply)) => return turn.leave(&mut ctx, reply),
        }
    }
    turn.wait(&mut ctx)
}

/// A blocking command's timeout in seconds, as Redis 7.0's `getTimeoutFromObjectOrReply`
/// reads it: `None` for 0 (wait for ever). Redis converts the milliseconds to a 64-bit integer
/// unchecked, so a timeout past 2^63 ms (`inf`, `1e400`) reads as negative there: so here.
pub fn parse_timeout(arg: &[u8]) -> Result<Option<Duration>, Frame> {
    if !sluice::numeric::is_redis_float(arg) {
        return Err(Frame::error("ERR timeout is not a float or out of range"));
    }
    let negative = || Frame::error("ERR timeout is negative");
    // A float of `long double` range only: past 1.8e308 it is past 2^63 ms too; below 1e-308
    // it is a sliver above or below 0, which Redis rounds up to 1 ms or to 0 (for ever).
    let seconds = match sluice::numeric::parse_score(arg) {
        Some(s) => s,
        None => match std::str::from_utf8(arg)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
        {
            Some(tiny) if tiny == 0.0 && tiny.is_sign_negative() => 0.0,
            Some(0.0) => 1e-3,
            _ => return Err(negative()),
        },
    };
    let ms = (seconds * 1000.0).ceil();
    // NaN is not below either bound.
    if !(0.0..9_223_372_036_854_775_808.0).contains(&ms) {
        return Err(negative());
    }
    Ok((ms > 0.0).then(|| Duration::from_millis(ms as u64)))
}

/// One run of a blocking command: its first, or a retry after a wake-up.
#[must_use]
pub struct BlockingTurn {
    /// Outside MULTI and scripts: the command may block (inside, it answers nil at once).
    can_block: bool,
    /// Woken again: the client already holds its places in the queues.
    retry: bool,
}

impl BlockingTurn {
    /// Starts a run: on the first, the client takes a place in each key's queue, waiting for
    /// a `kind`, before it looks, so an element added meanwhile wakes it.
    pub fn begin(
        ctx: &mut Ctx<'_>,
        keys: &[Bytes],
        timeout: Option<Duration>,
        kind: BlockKind,
    ) -> BlockingTurn {
        let can_block = !ctx.access.in_transaction();
        let retry = ctx.session.blocked.is_some();
        if can_block && !retry {
            let ticket = ctx.shared.blocking.block(ctx.session.db, keys, kind);
            // A timeout past what the clock can add is for ever.
            let deadline = timeout.and_then(|t| tokio::time::Instant::now().checked_add(t));
            ctx.session.blocked = Some(crate::state::Blocked { ticket, deadline });
            // From now on CLIENT UNBLOCK may end the wait, as INFO counts the client blocked.
            ctx.session.handle().note_blocked(true);
        }
        BlockingTurn { can_block, retry }
    }

    /// The keys to look at, in order: all of `keys` on the first run; on a retry the ones
    /// signalled since, in the order they became ready (Redis serves a woken client from the
    /// key that became ready first).
    pub fn keys_to_try(&self, ctx: &Ctx<'_>, keys: &[Bytes]) -> Vec<Bytes> {
        let Some(blocked) = ctx.session.blocked.as_ref().filter(|_| self.retry) else {
            return keys.to_vec();
        };
        blocked
            .ticket
            .take_ready()
            .into_iter()
            .filter(|k| keys.contains(k))
            .collect()
    }

    /// Whether this run may take from `key`: on a retry, only from the keys this client is
    /// first in line for (each key serves its clients in the order they blocked).
    pub fn may_take(&self, ctx: &Ctx<'_>, key: &Bytes) -> bool {
        !self.retry
            || ctx
                .session
                .blocked
                .as_ref()
                .is_some_and(|b| b.ticket.is_first(key))
    }

    /// Whether an attempt's error leaves the client waiting rather than answering it: woken
    /// for a key that became another type, or is held by a busy script, it keeps waiting, as
    /// in Redis.
    pub fn keeps_waiting(&self, e: &SluiceError) -> bool {
        self.retry && matches!(e, SluiceError::WrongType | SluiceError::Busy(_))
    }

    /// Whether this run is a retry after a wake-up.
    pub fn is_retry(&self) -> bool {
        self.retry
    }

    /// Ends the command with `reply`: leaving the queues passes the turn to the next client
    /// of each key.
    pub fn leave(self, ctx: &mut Ctx<'_>, reply: Frame) -> Frame {
        ctx.session.blocked = None;
        ctx.session.handle().note_blocked(false);
        reply
    }

    /// Nothing to take: blocks (the connection waits, then runs the command again), or inside
    /// MULTI or a script answers a nil array at once, as Redis.
    pub fn wait(self, ctx: &mut Ctx<'_>) -> Frame {
        self.wait_or(ctx, Frame::NullArray)
    }

    /// [`BlockingTurn::wait`] for a command that answers `nil` inside MULTI or a script
    /// (BLMOVE's plain nil).
    pub fn wait_or(self, ctx: &mut Ctx<'_>, nil: Frame) -> Frame {
        if self.can_block {
            ctx.session.block_now = true;
            // What the connection answers if the wait times out.
            Frame::NullArray
        } else {
            nil
        }
    }
}
