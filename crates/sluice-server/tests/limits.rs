//! Limits that keep one client from hurting the others: maxclients, the query buffer, the
//! output buffer, a client that never reads, and the idle timeout.

mod common;

use std::time::{Duration, Instant};

use common::{encode, TestServer};
use sluice::{config::parse_duration, config::parse_size};
use sluice_server::config::FileConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn config(edit: impl FnOnce(&mut FileConfig)) -> FileConfig {
    let mut c = FileConfig::default();
    c.engine.journal.durability = sluice::Durability::None;
    edit(&mut c);
    c
}

/// Reads until the server closes the connection; panics if it stays open past `limit`.
async fn expect_closed(stream: &mut TcpStream, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn still_serves(server: &TestServer) {
    let mut c = server.client().await;
    c.send(&encode(&[b"PING"])).await;
    assert_eq!(c.reply().await, b"+PONG\r\n");
}

fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<u64>().ok())
            })
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

#[tokio::test]
async fn maxclients_refuses_the_connection_over_the_limit() {
    let server = TestServer::start_config(config(|c| c.server.maxclients = 2)).await;
    let _a = server.client().await;
    let _b = server.client().await;
    // Give the server a moment to register both.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(server.addr).await.unwrap();
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut reply)).await;
    assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    server.stop().await;
}

#[tokio::test]
async fn an_idle_client_is_closed_after_timeout() {
    let server = TestServer::start_config(config(|c| {
        c.server.timeout = parse_duration("300ms").unwrap();
    }))
    .await;
    let mut idle = TcpStream::connect(server.addr).await.unwrap();
    let started = Instant::now();
    expect_closed(&mut idle, Duration::from_secs(5)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_query_buffer_past_the_limit_closes_the_client() {
    let server = TestServer::start_config(config(|c| {
        c.server.client_query_buffer_limit = parse_size("1MiB").unwrap();
    }))
    .await;
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    // A bulk announced within proto-max-bulk-len, but larger than the query buffer limit.
    c.write_all(b"*2\r\n$4\r\nECHO\r\n$3000000\r\n")
        .await
        .unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    for _ in 0..40 {
        if c.write_all(&chunk).await.is_err() {
            break;
        }
    }
    expect_closed(&mut c, Duration::from_secs(10)).await;
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_reply_past_the_output_limit_closes_the_client() {
    let server = TestServer::start_config(config(|c| {
        c.server.client_output_buffer_limit = parse_size("1MiB").unwrap();
    }))
    .await;
    let mut setup = server.client().await;
    let big = vec![b'v'; 512 * 1024];
    for key in [&b"a"[..], b"b", b"c"] {
        setup.send(&encode(&[b"SET", key, &big])).await;
        assert_eq!(setup.reply().await, b"+OK\r\n");
    }
    let mut c = TcpStream::connect(server.addr).await.unwrap();
    c.write_all(&encode(&[b"MGET", b"a", b"b", b"c"]))
        .await
        .unwrap();
    expect_closed(&mut c, Duration::from_secs(10)).await;
    still_serves(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_dropped_and_memory_stays_bounded() {
    let server = TestServer::start_config(config(|c| {
        c.server.client_output_stall_timeout = parse_duration("1s").unwrap();
    }))
    .await;
    let mut setup = server.client().await;
    let value = vec![b'v'; 1024 * 1024];
    setup.send(&encode(&[b"SET", b"big", &value])).await;
    assert_eq!(setup.reply().await, b"+OK\r\n");
    let before = rss_bytes();
    // Ask for 256 MiB of replies and never read them.
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    let request = encode(&[b"GET", b"big"]);
    let started = Instant::now();
    let mut sent = 0;
    while sent < 256 && started.elapsed() < Duration::from_secs(20) {
        match tokio::time::timeout(Duration::from_secs(3), slow.write_all(&request)).await {
            Ok(Ok(())) => sent += 1,
            _ => break,
        }
    }
    // The server stops reading while its writes stall, then drops the client.
    tokio::time::sleep(Duration::from_secs(2)).await;
    still_serves(&server).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 * 1024 * 1024,
        "server memory grew by {grown} bytes for a client that never reads"
    );
    // The connection is gone: reading drains what the kernel held, then hits EOF.
    expect_closed(&mut slow, Duration::from_secs(10)).await;
    server.stop().await;
}
