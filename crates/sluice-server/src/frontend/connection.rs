//! One client connection: read, frame, run, and write the replies of a whole pipeline at once.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::cmd::dispatch;
use super::cmd::util::format_error;
use super::parse::{Parsed, RequestParser};
use super::Frame;
use crate::state::{ClientHandle, Mailbox, ReplyMode, Session, Shared};

/// Replies are written out once this much is pending, even mid-pipeline.
const FLUSH_AT: usize = 64 * 1024;

/// Tells a client over the connection limit why, then closes.
pub async fn refuse(mut stream: TcpStream, line: &str) {
    let _ = stream.write_all(format!("-{line}\r\n").as_bytes()).await;
}

/// Serves one TCP connection until it closes, errs, or the server shuts down.
pub async fn serve(shared: Arc<Shared>, stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let fd = raw_fd(&stream);
    serve_stream(shared, stream, (addr, laddr, fd)).await;
}

/// The socket's file descriptor, as CLIENT LIST shows it (-1 where there is none).
pub fn raw_fd(stream: &TcpStream) -> i32 {
    #[cfg(unix)]
    {
        std::os::fd::AsRawFd::as_raw_fd(stream)
    }
    #[cfg(not(unix))]
    {
        let _ = stream;
        -1
    }
}

/// Serves one connection over any byte stream (plain TCP or TLS), from the client's address
/// to the local one, on socket `fd`.
pub async fn serve_stream<S>(
    shared: Arc<Shared>,
    stream: S,
    (addr, laddr, fd): (SocketAddr, SocketAddr, i32),
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // Write-back durability is collected per pipeline and awaited before its replies go out.
    sluice::with_durability_scope(serve_in_scope(shared, stream, (addr, laddr, fd))).await;
}

async fn serve_in_scope<S>(
    shared: Arc<Shared>,
    mut stream: S,
    (addr, laddr, fd): (SocketAddr, SocketAddr, i32),
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut session = shared.new_session(addr, laddr, fd);
    let handle = session.handle().clone();
    let clock = &shared.clients.clock;
    let limits = &shared.config;
    let query_limit = limits.client_query_buffer_limit as usize;
    let output_limit = limits.client_output_buffer_limit as usize;
    let stall_limit = limits.client_output_stall_timeout;
    let mut parser = RequestParser::new(shared.limits);
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    // One future for the whole connection, for CLIENT KILL and shutdown alike (a shutdown
    // kills every client): building a fresh one per read, or waiting on two, costs more than
    // the GET it waits beside.
    let killed = handle.killed();
    tokio::pin!(killed);
    // Bytes of pub/sub messages encoded into `wbuf` and not yet written: they count against
    // the subscriber's output limit until the socket takes them.
    let mut mail_bytes = 0;
    let mut woke_for_mail = false;
    loop {
        // Relaxed stores, once per batch: CLIENT LIST's `idle` and `qbuf` (a message sent to
        // a subscriber is not a read).
        if !std::mem::take(&mut woke_for_mail) {
            handle.note_read(clock.now_ms(), rbuf.len(), rbuf.capacity());
        }
        // Run every complete request buffered, deferring write-back durability to one wait
        // per batch: replies are written only after every write they acknowledge is durable.
        let batch = run_buffered(
            &shared,
            &mut session,
            &mut parser,
            &mut rbuf,
            &mut wbuf,
            &mut mail_bytes,
            addr,
        )
        .await;
        if session.pubsub.is_some() {
            drain_mail(&session, &mut wbuf, &mut mail_bytes);
        }
        // The requests that ran are consumed: an idle client shows `qbuf=0`, as in Redis.
        handle.note_consumed(rbuf.len());
        session.publish_progress();
        let durability = sluice::take_deferred_durability();
        if durability.wait().await.is_err() {
            // A write could not be made durable: send no reply that could acknowledge it.
            return;
        }
        if handle.is_killed() {
            debug!(%addr, "closing client killed by CLIENT KILL");
            return;
        }
        if wbuf.len() > output_limit {
            warn!(%addr, bytes = wbuf.len(), "closing client whose pending replies exceed client_output_buffer_limit");
            return;
        }
        if !wbuf.is_empty() {
            // A client that stops reading stalls this write; past the limit it is dropped,
            // so it cannot pin its replies in memory for ever.
            match write_with_stall_limit(&mut stream, &wbuf, stall_limit, &handle).await {
                Ok(Ok(())) => {
                    wbuf.clear();
                    if let Some(subscriptions) = &session.pubsub {
                        subscriptions
                            .mailbox()
                            .written(std::mem::take(&mut mail_bytes));
                    }
                }
                Ok(Err(_)) => return,
                Err(Stalled::Killed) => return,
                Err(Stalled::TimedOut) => {
                    warn!(%addr, "closing client that has not read its replies for {stall_limit:?} (client_output_stall_timeout)");
                    return;
                }
            }
        }
        match batch {
            Batch::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            Batch::RepliesFull => continue,
            Batch::Blocked(mut args) => {
                // The replies before it are written; now wait for one of its keys, its
                // deadline, or the client's end, reading (not running) what the client sends
                // meanwhile, as Redis does. CLIENT LIST shows flag `b` meanwhile.
                // (CLIENT UNBLOCK can end the wait since the command took its ticket.)
                handle.note_paused(true);
                let waiting = shared.blocking.wait_guard();
                while let Some(blocked) = &session.blocked {
                    let waker = blocked.ticket.waker();
                    let deadline = blocked.deadline;
                    let timed_out = async move {
                        match deadline {
                            Some(at) => tokio::time::sleep_until(at).await,
                            None => std::future::pending().await,
                        }
                    };
                    // A subscriber (RESP3) still gets its messages while blocked.
                    let mailbox = session.pubsub.as_ref().map(|s| s.mailbox().clone());
                    let mail = mail_arrived(mailbox.as_deref());
                    tokio::select! {
                        _ = waker.notified() => {
                            // The same arguments: a blocking command reads its arguments
                            // without moving them out, so that it can run again.
                            let reply = dispatch(&shared, &mut session, &mut args).await;
                            if !std::mem::take(&mut session.block_now) {
                                session.blocked = None;
                                emit(&mut session, reply, &mut wbuf);
                            }
                            if session.reply == ReplyMode::Close || session.close_after_reply {
                                let _ = stream.write_all(&wbuf).await;
                                return;
                            }
                        }
                        _ = timed_out => {
                            session.blocked = None;
                            emit(&mut session, Frame::NullArray, &mut wbuf);
                        }
                        reason = handle.unblocked() => {
                            session.blocked = None;
                            let reply = if reason == crate::state::UNBLOCK_ERROR {
                                let line = "UNBLOCKED client unblocked via CLIENT UNBLOCK";
                                // INFO errorstats and total_error_replies count it, as Redis.
                                shared.command_stats.error_reply(line.as_bytes());
                                Frame::error(line)
                            } else {
                                Frame::NullArray
                            };
                            emit(&mut session, reply, &mut wbuf);
                        }
                        _ = mail => {
                            drain_mail(&session, &mut wbuf, &mut mail_bytes);
                            match write_with_stall_limit(&mut stream, &wbuf, stall_limit, &handle).await {
                                Ok(Ok(())) => {
                                    wbuf.clear();
                                    if let Some(mailbox) = &mailbox {
                                        mailbox.written(std::mem::take(&mut mail_bytes));
                                    }
                                }
                                _ => return,
                            }
                        }
                        read = stream.read_buf(&mut rbuf) => match read {
                            Ok(0) | Err(_) => return,
                            Ok(_) if rbuf.len() > query_limit => {
                                warn!(%addr, bytes = rbuf.len(), "closing client that reached client_query_buffer_limit");
                                return;
                            }
                            Ok(_) => {}
                        },
                        _ = &mut killed => {
                            debug!(%addr, "closing client killed by CLIENT KILL or shutdown");
                            let _ = stream.shutdown().await;
                            return;
                        }
                    }
                }
                drop(waiting);
                handle.note_paused(false);
                handle.note_blocked(false);
                parser.recycle(args);
                // Run what arrived meanwhile, then write the reply with theirs.
                continue;
            }
            Batch::NeedInput => {}
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        // Read at each wait: CONFIG SET timeout applies from the connection's next wait.
        let idle_limit = shared.settings.timeout();
        // As in Redis, `timeout` never closes a subscriber, which may wait for messages for ever.
        let subscribed = session.subscribed();
        let idle = async {
            if idle_limit.is_zero() || subscribed {
                std::future::pending::<()>().await;
            }
            tokio::time::sleep(idle_limit).await;
        };
        let mailbox = session.pubsub.as_ref().map(|s| s.mailbox().clone());
        let mail = mail_arrived(mailbox.as_deref());
        tokio::select! {
            read = stream.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = mail => {
                woke_for_mail = true;
                // Let the publishers running beside this task add theirs first: one write
                // then carries many messages, as Redis writes a subscriber's buffer once per
                // event-loop turn.
                tokio::task::yield_now().await;
                continue;
            }
            _ = idle => {
                debug!(%addr, "closing client idle for {idle_limit:?} (timeout)");
                return;
            }
            _ = &mut killed => {
                debug!(%addr, "closing client killed by CLIENT KILL or shutdown");
                let _ = stream.shutdown().await;
                return;
            }
        }
        if rbuf.len() > query_limit {
            warn!(%addr, bytes = rbuf.len(), "closing client that reached client_query_buffer_limit");
            return;
        }
    }
}

/// Why a write was given up.
enum Stalled {
    /// The client read none of it for `client_output_stall_timeout`.
    TimedOut,
    /// CLIENT KILL closed the connection meanwhile.
    Killed,
}

/// Writes `bytes`, giving up if the rest of them is not written within `stall_limit` of the
/// first time the socket could not take them all (a slow reader that still makes progress
/// is dropped too), or if the client is killed meanwhile. The timer is armed only when the
/// socket cannot take the bytes at once: almost every reply fits in the socket buffer, and a
/// timer per reply cost more than the GET it answered.
async fn write_with_stall_limit<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    stall_limit: std::time::Duration,
    handle: &ClientHandle,
) -> Result<std::io::Result<()>, Stalled> {
    let mut write = std::pin::pin!(stream.write_all(bytes));
    let first = std::future::poll_fn(|cx| std::task::Poll::Ready(write.as_mut().poll(cx))).await;
    match first {
        std::task::Poll::Ready(done) => Ok(done),
        std::task::Poll::Pending => {
            // CLIENT LIST shows the replies waiting (`omem`, events `rw`) while it lasts.
            handle.note_output_pending(bytes.len());
            let outcome = tokio::select! {
                done = tokio::time::timeout(stall_limit, write) => done.map_err(|_| Stalled::TimedOut),
                _ = handle.killed() => Err(Stalled::Killed),
            };
            handle.note_output_pending(0);
            outcome
        }
    }
}

/// Resolves when a message arrives in `mailbox`; never without one (not subscribed).
async fn mail_arrived(mailbox: Option<&Mailbox>) {
    match mailbox {
        Some(mailbox) => mailbox.arrived().await,
        None => std::future::pending().await,
    }
}

/// Encodes the pub/sub messages waiting for this connection into `wbuf`, counting their
/// bytes in `mail_bytes` until written. Out of line: most connections never subscribe.
#[cold]
#[inline(never)]
fn drain_mail(session: &Session, wbuf: &mut BytesMut, mail_bytes: &mut usize) {
    if let Some(subscriptions) = &session.pubsub {
        *mail_bytes += subscriptions.mailbox().drain(session.proto, wbuf);
    }
}

/// How a run over the buffered requests ended.
enum Batch {
    /// Every complete request ran; read more input.
    NeedInput,
    /// Replies reached [`FLUSH_AT`]; write them, then run the rest without reading.
    RepliesFull,
    /// Close the connection after writing the replies.
    Close,
    /// A blocking command found nothing to take (`Session::blocked`): write the replies
    /// before it, then wait and run it (these arguments) again.
    Blocked(Vec<Bytes>),
}

/// Encodes a command's reply into `wbuf`, or skips it as CLIENT REPLY says.
fn emit(session: &mut Session, reply: Frame, wbuf: &mut BytesMut) {
    if session.reply != ReplyMode::Send {
        match session.reply {
            ReplyMode::Close | ReplyMode::Off | ReplyMode::Send => {}
            ReplyMode::SkipThisAndNext => session.reply = ReplyMode::SkipNext,
            ReplyMode::SkipNext => session.reply = ReplyMode::Send,
        }
    } else {
        reply.encode(session.proto, wbuf);
    }
}

/// Runs the requests buffered in `rbuf`, encoding their replies into `wbuf`.
async fn run_buffered(
    shared: &Shared,
    session: &mut Session,
    parser: &mut RequestParser,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
    mail_bytes: &mut usize,
    addr: SocketAddr,
) -> Batch {
    loop {
        match parser.next(rbuf) {
            Ok(Some(Parsed::Command(mut args))) => {
                let reply = dispatch(shared, session, &mut args).await;
                if std::mem::take(&mut session.block_now) {
                    return Batch::Blocked(args);
                }
                parser.recycle(args);
                // Messages published meanwhile (by this very command, too) go before its
                // reply, as Redis writes them to the subscriber's buffer when published.
                if session.pubsub.is_some() {
                    drain_mail(session, wbuf, mail_bytes);
                }
                if session.reply != ReplyMode::Send {
                    match session.reply {
                        ReplyMode::Close => return Batch::Close,
                        ReplyMode::SkipThisAndNext => session.reply = ReplyMode::SkipNext,
                        ReplyMode::SkipNext => session.reply = ReplyMode::Send,
                        ReplyMode::Off | ReplyMode::Send => {}
                    }
                } else {
                    reply.encode(session.proto, wbuf);
                }
                if session.close_after_reply {
                    return Batch::Close;
                }
                if wbuf.len() >= FLUSH_AT {
                    return Batch::RepliesFull;
                }
            }
            Ok(Some(Parsed::Nothing)) => {}
            Ok(None) => return Batch::NeedInput,
            Err(e) => {
                // Counted in INFO errorstats like any error reply, as Redis counts it.
                shared.command_stats.error_reply(b"ERR Protocol error");
                format_error(&[&b"ERR Protocol error: "[..], &e.0].concat())
                    .encode(session.proto, wbuf);
                let reason = String::from_utf8_lossy(&e.0);
                debug!(%addr, "protocol error, closing: {reason}");
                return Batch::Close;
            }
        }
    }
}
