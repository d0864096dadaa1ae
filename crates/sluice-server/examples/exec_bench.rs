//! Throughput of ten SETs sent as one MULTI/EXEC against ten separate SETs, and of a small
//! EVALSHA, with `clients` connections each waiting for its replies before sending more.
//!
//! usage: cargo run --release --example exec_bench -- <port> [clients] [seconds]
//!
//! Prints keys written per second for each mode; run it against Sluice and redis-server side
//! by side (`bench/transactions.sh` does both) and compare ratios, not absolute numbers.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// Reads until `replies` top-level replies have arrived (replies here are simple lines,
/// bulk strings, or EXEC's flat array of `+OK` lines).
async fn read_replies(stream: &mut TcpStream, mut replies: usize, buf: &mut Vec<u8>) {
    buf.clear();
    let mut at = 0;
    let mut pending_items = 0usize;
    while replies > 0 {
        if let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") {
            let line = &buf[at..at + end];
            at += end + 2;
            match line.first() {
                Some(b'*') => {
                    pending_items = std::str::from_utf8(&line[1..])
                        .ok()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0);
                    if pending_items == 0 {
                        replies -= 1;
                    }
                    continue;
                }
                Some(b'-') => panic!("error reply: {}", String::from_utf8_lossy(line)),
                Some(b'$') => {
                    // A bulk string: skip its body line.
                    if let Some(end) = buf[at..].windows(2).position(|w| w == b"\r\n") {
                        at += end + 2;
                    } else {
                        at -= line.len() + 2;
                        let mut chunk = [0u8; 65536];
                        let n = stream.read(&mut chunk).await.expect("read");
                        assert!(n > 0, "server closed");
                        buf.extend_from_slice(&chunk[..n]);
                        continue;
                    }
                }
                _ => {}
            }
            if pending_items > 0 {
                pending_items -= 1;
                if pending_items == 0 {
                    replies -= 1;
                }
            } else {
                replies -= 1;
            }
            continue;
        }
        let mut chunk = [0u8; 65536];
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed");
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[derive(Clone, Copy, Debug)]
enum Mode {
    /// Ten SETs, each awaited before the next.
    SeparateSets,
    /// MULTI, ten SETs, EXEC, sent together.
    Exec,
    /// EVALSHA of a script that sets one key.
    EvalSha,
}

async fn run(port: u16, clients: usize, seconds: u64, mode: Mode, sha: &str) -> f64 {
    let keys = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (keys, stop, sha) = (keys.clone(), stop.clone(), sha.to_string());
        tasks.push(tokio::spawn(async move {
            let mut stream = TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            stream.set_nodelay(true).expect("nodelay");
            let mut buf = Vec::new();
            let mut out = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                out.clear();
                let value = i.to_string();
                match mode {
                    Mode::SeparateSets => {
                        for k in 0..10 {
                            out.clear();
                            let key = format!("bench:{c}:{k}");
                            command(&mut out, &[b"SET", key.as_bytes(), value.as_bytes()]);
                            stream.write_all(&out).await.expect("write");
                            read_replies(&mut stream, 1, &mut buf).await;
                        }
                        keys.fetch_add(10, Ordering::Relaxed);
                    }
                    Mode::Exec => {
                        command(&mut out, &[b"MULTI"]);
                        for k in 0..10 {
                            let key = format!("bench:{c}:{k}");
                            command(&mut out, &[b"SET", key.as_bytes(), value.as_bytes()]);
                        }
                        command(&mut out, &[b"EXEC"]);
                        stream.write_all(&out).await.expect("write");
                        read_replies(&mut stream, 12, &mut buf).await;
                        keys.fetch_add(10, Ordering::Relaxed);
                    }
                    Mode::EvalSha => {
                        let key = format!("bench:{c}:0");
                        command(
                            &mut out,
                            &[
                                b"EVALSHA",
                                sha.as_bytes(),
                                b"1",
                                key.as_bytes(),
                                value.as_bytes(),
                            ],
                        );
                        stream.write_all(&out).await.expect("write");
                        read_replies(&mut stream, 1, &mut buf).await;
                        keys.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let written = keys.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    written as f64 / elapsed
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let port: u16 = args
        .get(1)
        .and_then(|p| p.parse().ok())
        .expect("usage: exec_bench <port> [clients] [seconds]");
    let clients: usize = args.get(2).and_then(|c| c.parse().ok()).unwrap_or(50);
    let seconds: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut out = Vec::new();
    command(
        &mut out,
        &[
            b"SCRIPT",
            b"LOAD",
            b"return redis.call('SET', KEYS[1], ARGV[1])",
        ],
    );
    stream.write_all(&out).await.expect("write");
    let mut reply = vec![0u8; 256];
    let n = stream.read(&mut reply).await.expect("read");
    let text = String::from_utf8_lossy(&reply[..n]);
    let sha = text.lines().nth(1).unwrap_or_default().to_string();
    for mode in [Mode::SeparateSets, Mode::Exec, Mode::EvalSha] {
        let rate = run(port, clients, seconds, mode, &sha).await;
        println!("{mode:?}\t{clients} clients\t{rate:.0} keys/s");
    }
}
