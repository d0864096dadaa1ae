//! The wire protocol, byte for byte: pipelining, inline commands, RESP3, malformed and
//! oversized requests, and real clients (the `redis` crate, `redis-cli`).
//!
//! Every expected reply below is what redis-server 7.0.15 sends for the same input.

mod common;

use std::time::Duration;

use common::{encode, show, RawClient, TestServer};
use redis::AsyncCommands;
use sluice::Durability;

async fn server() -> TestServer {
    TestServer::start_with(Durability::Os).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_is_answered_in_order_in_one_go() {
    let s = server().await;
    let mut c = s.client().await;
    let mut request = Vec::new();
    let mut expected = Vec::new();
    for i in 0..500 {
        let key = format!("pipe:{i}");
        let value = format!("v{i}");
        request.extend(encode(&[b"SET", key.as_bytes(), value.as_bytes()]));
        expected.extend_from_slice(b"+OK\r\n");
        request.extend(encode(&[b"GET", key.as_bytes()]));
        expected.extend(format!("${}\r\n{value}\r\n", value.len()).into_bytes());
        request.extend(encode(&[b"INCR", b"pipe:counter"]));
        expected.extend(format!(":{}\r\n", i + 1).into_bytes());
    }
    // Inline commands mix with multibulk ones in the same write.
    request.extend_from_slice(b"PING\r\nECHO inline\r\n");
    expected.extend_from_slice(b"+PONG\r\n$6\r\ninline\r\n");
    c.send(&request).await;
    let got = c.replies(1502).await;
    assert!(got == expected, "pipeline replies differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_split_across_writes_is_reassembled() {
    let s = server().await;
    let mut c = s.client().await;
    let request = encode(&[b"SET", b"split", b"hello world"]);
    for byte in &request {
        c.send(std::slice::from_ref(byte)).await;
    }
    assert_eq!(c.reply().await, b"+OK\r\n");
    let request = b"GET split\r\n";
    c.send(&request[..5]).await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send(&request[5..]).await;
    assert_eq!(c.reply().await, b"$11\r\nhello world\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inline_commands_split_like_redis() {
    let s = server().await;
    let mut c = s.client().await;
    let cases: &[(&[u8], &[u8])] = &[
        (b"PING\r\n", b"+PONG\r\n"),
        (b"PING\n", b"+PONG\r\n"),
        (b"SET k \"a b\"\r\nGET k\r\n", b"+OK\r\n$3\r\na b\r\n"),
        (b"SET k 'it\\'s'\r\nGET k\r\n", b"+OK\r\n$4\r\nit's\r\n"),
        (
            b"SET k \"a\\x41\\n\\t\\\"\"\r\nGET k\r\n",
            b"+OK\r\n$5\r\naA\n\t\"\r\n",
        ),
        (b"ECHO \"\\xzz\"\r\n", b"$3\r\nxzz\r\n"),
        (b"ECHO a\"b\"\r\n", b"$2\r\nab\r\n"),
        (b"ECHO \"\"\r\n", b"$0\r\n\r\n"),
        // Only space, tab, CR and LF end an unquoted argument; a vertical tab does not.
        (b"ECHO a\x0bb\r\n", b"$3\r\na\x0bb\r\n"),
        (
            b"\x0bECHO\x0bx\r\n",
            b"-ERR unknown command 'ECHO\x0bx', with args beginning with: \r\n",
        ),
        // Empty and blank lines are skipped.
        (b"\r\n\r\n  \t \r\n\nPING\r\n", b"+PONG\r\n"),
        // Not multibulk: the line is an inline command named `$4`.
        (
            b"$4\r\nPING\r\n",
            b"-ERR unknown command '$4', with args beginning with: \r\n+PONG\r\n",
        ),
        (b"*0\r\n*-1\r\nPING\r\n", b"+PONG\r\n"),
    ];
    for (request, expected) in cases {
        c.send(request).await;
        let mut got = Vec::new();
        while got.len() < expected.len() {
            got.extend(c.reply().await);
        }
        assert_eq!(show(&got), show(expected), "request {}", show(request));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_after_hello_3() {
    let s = server().await;
    let mut c = s.client().await;
    assert_eq!(c.run("GET missing").await, b"$-1\r\n");
    let hello = c.run("HELLO 3").await;
    let text = show(&hello);
    assert!(
        text.starts_with(
            "%7\\r\\n$6\\r\\nserver\\r\\n$5\\r\\nredis\\r\\n$7\\r\\nversion\\r\\n$6\\r\\n7.0.15\\r\\n$5\\r\\nproto\\r\\n:3\\r\\n$2\\r\\nid\\r\\n:"
        ),
        "{text}"
    );
    assert!(
        text.ends_with(
            "$4\\r\\nmode\\r\\n$10\\r\\nstandalone\\r\\n$4\\r\\nrole\\r\\n$6\\r\\nmaster\\r\\n$7\\r\\nmodules\\r\\n*0\\r\\n"
        ),
        "{text}"
    );
    assert_eq!(c.run("GET missing").await, b"_\r\n");
    assert_eq!(c.run("SET k v NX").await, b"+OK\r\n");
    assert_eq!(c.run("SET k v NX").await, b"_\r\n");
    assert_eq!(c.run("MGET k missing").await, b"*2\r\n$1\r\nv\r\n_\r\n");
    assert_eq!(
        c.run("CONFIG GET maxmemory").await,
        b"%1\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    );
    assert_eq!(c.run("INCRBYFLOAT f 1.5").await, b"$3\r\n1.5\r\n");
    assert_eq!(c.run("COMMAND INFO nosuch").await, b"*1\r\n_\r\n");
    assert!(c.run("HELLO 2").await.starts_with(b"*14\r\n"));
    assert_eq!(c.run("GET missing").await, b"$-1\r\n");
    assert_eq!(
        c.run("CONFIG GET maxmemory").await,
        b"*2\r\n$9\r\nmaxmemory\r\n$1\r\n0\r\n"
    );
}

/// Malformed requests: the exact error redis-server sends, then the connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_protocol_error_and_are_closed() {
    let s = server().await;
    let cases: &[(&[u8], &[u8])] = &[
        (
            b"*x\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*+1\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\n$4\r\nPING\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*99999999999\r\n",
            b"-ERR Protocol error: invalid multibulk length\r\n",
        ),
        (
            b"*1\r\n+x\r\n",
            b"-ERR Protocol error: expected '$', got '+'\r\n",
        ),
        (
            b"*1\r\n*1\r\n",
            b"-ERR Protocol error: expected '$', got '*'\r\n",
        ),
        (
            b"*1\r$4\r\nPING\r\n",
            b"-ERR Protocol error: expected '$', got '4'\r\n",
        ),
        (
            b"*1\r\n\xff\r\n",
            b"-ERR Protocol error: expected '$', got '\xff'\r\n",
        ),
        (
            b"*1\r\n\n\r\n",
            b"-ERR Protocol error: expected '$', got ' '\r\n",
        ),
        (
            b"*1\r\n$-3\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$abc\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$01\r\nx\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"*1\r\n$+1\r\nx\r\n",
            b"-ERR Protocol error: invalid bulk length\r\n",
        ),
        (
            b"SET k \"a b\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"SET k 'a\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        (
            b"SET k \"a\"b\r\n",
            b"-ERR Protocol error: unbalanced quotes in request\r\n",
        ),
        // Replies to the complete requests before the bad one are still sent.
        (
            b"PING\r\n*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$-1\r\n",
            b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
        ),
    ];
    for (request, expected) in cases {
        let mut c = s.client().await;
        c.send(request).await;
        let (got, closed) = c.read_until_close(Duration::from_secs(5)).await;
        assert_eq!(show(&got), show(expected), "request {}", show(request));
        assert!(closed, "connection left open after {}", show(request));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_announcements_are_refused_without_allocating() {
    let s = server().await;
    for request in [
        &b"*1\r\n$999999999999\r\n"[..],
        b"*1\r\n$536870913\r\n",
        b"*1\r\n$9223372036854775808\r\n",
    ] {
        let mut c = s.client().await;
        c.send(request).await;
        let (got, closed) = c.read_until_close(Duration::from_secs(5)).await;
        assert_eq!(
            got,
            b"-ERR Protocol error: invalid bulk length\r\n",
            "{}",
            show(request)
        );
        assert!(closed);
    }
    // Exactly proto-max-bulk-len is accepted: the server waits for the bytes.
    let mut c = s.client().await;
    c.send(b"*2\r\n$4\r\nECHO\r\n$536870912\r\nabc").await;
    let (got, closed) = c.read_until_close(Duration::from_millis(500)).await;
    assert!(got.is_empty() && !closed, "{}", show(&got));
    // A line with no end, longer than the inline limit.
    for (request, expected) in [
        (vec![b'a'; 70 * 1024], &b"too big inline request"[..]),
        (
            [&b"*"[..], &[b'1'; 70 * 1024]].concat(),
            b"too big mbulk count string",
        ),
        (
            [&b"*1\r\n$"[..], &[b'1'; 70 * 1024]].concat(),
            b"too big bulk count string",
        ),
    ] {
        let mut c = s.client().await;
        c.send(&request).await;
        let (got, closed) = c.read_until_close(Duration::from_secs(5)).await;
        assert_eq!(
            got,
            [&b"-ERR Protocol error: "[..], expected, b"\r\n"].concat(),
            "{}",
            String::from_utf8_lossy(expected)
        );
        assert!(closed);
    }
}

/// Redis finds line ends with `strchr`, which stops at a NUL: a request with a NUL before its
/// terminator stays incomplete (until the inline limit), and nothing is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_before_the_line_end_leaves_the_request_incomplete() {
    let s = server().await;
    for request in [
        &b"\x00\r\nPING\r\n"[..],
        b"PING\r\nEC\x00HO x\r\nPING\r\n",
        b"*1\x00\r\n$4\r\nPING\r\n",
    ] {
        let mut c = s.client().await;
        c.send(request).await;
        let (got, closed) = c.read_until_close(Duration::from_millis(500)).await;
        let expected: &[u8] = if request.starts_with(b"PING") {
            b"+PONG\r\n"
        } else {
            b""
        };
        assert_eq!(show(&got), show(expected), "{}", show(request));
        assert!(!closed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_clients_are_served_after_a_protocol_error() {
    let s = server().await;
    let mut before = s.client().await;
    assert_eq!(before.run("SET survivor yes").await, b"+OK\r\n");
    let mut bad = s.client().await;
    bad.send(b"*1\r\n$-3\r\n").await;
    let (got, closed) = bad.read_until_close(Duration::from_secs(5)).await;
    assert_eq!(got, b"-ERR Protocol error: invalid bulk length\r\n");
    assert!(closed);
    assert_eq!(before.run("GET survivor").await, b"$3\r\nyes\r\n");
    let mut after = s.client().await;
    assert_eq!(after.run("GET survivor").await, b"$3\r\nyes\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quit_replies_then_closes() {
    let s = server().await;
    let mut c = s.client().await;
    c.send(b"PING\r\nQUIT\r\nPING\r\n").await;
    let (got, closed) = c.read_until_close(Duration::from_secs(5)).await;
    assert_eq!(show(&got), show(b"+PONG\r\n+OK\r\n"));
    assert!(closed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_values_round_trip() {
    let s = server().await;
    let mut c = s.client().await;
    let value: Vec<u8> = (0..4 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    assert_eq!(c.cmd(&[b"SET", b"big", &value]).await, b"+OK\r\n");
    let got = c.cmd(&[b"GET", b"big"]).await;
    let header = format!("${}\r\n", value.len());
    assert!(got.starts_with(header.as_bytes()));
    assert!(got[header.len()..got.len() - 2] == value[..]);
    assert_eq!(c.run("STRLEN big").await, b":4194304\r\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_crate_works_against_sluice() {
    let s = server().await;
    let client = redis::Client::open(s.url()).expect("client");
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let _: () = con.set("rs:a", "1").await.unwrap();
    let _: () = con
        .set("rs:b", b"\x00\xff binary".as_slice())
        .await
        .unwrap();
    let a: String = con.get("rs:a").await.unwrap();
    assert_eq!(a, "1");
    let n: i64 = con.incr("rs:a", 41).await.unwrap();
    assert_eq!(n, 42);
    let values: Vec<Option<Vec<u8>>> = con.mget(&["rs:a", "rs:b", "rs:missing"]).await.unwrap();
    assert_eq!(
        values,
        vec![
            Some(b"42".to_vec()),
            Some(b"\x00\xff binary".to_vec()),
            None
        ]
    );
    let set: bool = con.expire("rs:a", 100).await.unwrap();
    assert!(set);
    let ttl: i64 = con.ttl("rs:a").await.unwrap();
    assert!((99..=100).contains(&ttl), "{ttl}");
    let err = con.incr::<_, _, i64>("rs:b", 1).await.unwrap_err();
    assert!(err.to_string().contains("not an integer"), "{err}");
    let deleted: i64 = con.del(&["rs:a", "rs:b", "rs:missing"]).await.unwrap();
    assert_eq!(deleted, 2);
    // Pipelined through the multiplexed connection.
    let (x, y): (i64, i64) = redis::pipe()
        .incr("rs:p", 1)
        .incr("rs:p", 2)
        .query_async(&mut con)
        .await
        .unwrap();
    assert_eq!((x, y), (1, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cli_works_against_sluice() {
    let s = server().await;
    let port = s.port().to_string();
    let run = move |args: &[&str]| {
        let port = port.clone();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("redis-cli")
                    .args(["-h", "127.0.0.1", "-p", &port])
                    .args(&args)
                    .output()
            })
            .await
            .expect("join")
        }
    };
    let out = match run(&["ping"]).await {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: redis-cli is not installed ({e})");
            return;
        }
    };
    assert_eq!(String::from_utf8_lossy(&out.stdout), "PONG\n");
    let out = run(&["set", "cli", "hello world"]).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "OK\n");
    let out = run(&["get", "cli"]).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello world\n");
    let out = run(&["--no-raw", "mget", "cli", "nope"]).await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1) \"hello world\"\n2) (nil)\n"
    );
    let out = run(&["-3", "--no-raw", "hello"]).await.unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3# \"proto\" => (integer) 3\n"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_client_sees_the_connection_close_on_shutdown() {
    let s = server().await;
    let mut c = RawClient::connect(s.addr).await;
    assert_eq!(c.run("SET k v").await, b"+OK\r\n");
    c.send(b"SHUTDOWN\r\n").await;
    let (got, closed) = c.read_until_close(Duration::from_secs(30)).await;
    assert!(got.is_empty(), "SHUTDOWN replied {}", show(&got));
    assert!(closed);
    let report = s.wait().await;
    assert_eq!(report.unflushed, 0);
}
