//! One client connection: read, frame, run, and write the replies of a whole pipeline at once.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use super::cmd::dispatch;
use super::frame::Frame;
use super::parse::{Parsed, RequestParser};
use crate::server::Shared;

/// Replies are written out once this much is pending, even mid-pipeline.
const FLUSH_AT: usize = 64 * 1024;

/// Tells a client over the connection limit why, then closes.
pub async fn refuse(mut stream: TcpStream, line: &str) {
    let _ = stream.write_all(format!("-{line}\r\n").as_bytes()).await;
}

/// Serves one connection until it closes, errs, or the server shuts down.
pub async fn serve(shared: Arc<Shared>, mut stream: TcpStream, addr: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let laddr = stream.local_addr().unwrap_or(addr);
    let mut session = shared.new_session(addr, laddr);
    let mut parser = RequestParser::new(shared.limits);
    let mut rbuf = BytesMut::with_capacity(16 * 1024);
    let mut wbuf = BytesMut::with_capacity(16 * 1024);
    let mut shutdown = shared.shutdown_signal();
    loop {
        let mut close = false;
        loop {
            match parser.next(&mut rbuf) {
                Ok(Some(Parsed::Command(args))) => {
                    let reply = dispatch(&shared, &mut session, args).await;
                    if session.close_without_reply {
                        close = true;
                        break;
                    }
                    reply.encode(session.proto, &mut wbuf);
                    if session.close_after_reply {
                        close = true;
                        break;
                    }
                    if wbuf.len() >= FLUSH_AT {
                        if stream.write_all(&wbuf).await.is_err() {
                            return;
                        }
                        wbuf.clear();
                    }
                }
                Ok(Some(Parsed::Nothing)) => {}
                Ok(None) => break,
                Err(e) => {
                    Frame::error(format!("ERR Protocol error: {}", e.0))
                        .encode(session.proto, &mut wbuf);
                    debug!(%addr, "protocol error, closing: {}", e.0);
                    close = true;
                    break;
                }
            }
        }
        if !wbuf.is_empty() {
            if stream.write_all(&wbuf).await.is_err() {
                return;
            }
            wbuf.clear();
        }
        if close {
            let _ = stream.shutdown().await;
            return;
        }
        if rbuf.capacity() - rbuf.len() < 4096 {
            rbuf.reserve(16 * 1024);
        }
        tokio::select! {
            read = stream.read_buf(&mut rbuf) => match read {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            },
            _ = shutdown.changed() => {
                let _ = stream.shutdown().await;
                return;
            }
        }
    }
}
