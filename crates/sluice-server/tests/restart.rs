//! Restart: what was acknowledged over RESP (write-back, the default) is all there after a
//! graceful shutdown and a new server on the same data directory.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{encode, show, RawClient, TestServer};
use sluice::Durability;

/// 2100-01-01T00:00:00Z: an expiry that stays in the future for the whole test.
const FAR_FUTURE: &str = "4102444800";
const FAR_FUTURE_ARG: &[u8] = FAR_FUTURE.as_bytes();

/// What each database should hold after [`write_everything`].
type Expected = BTreeMap<(u8, Vec<u8>), (Vec<u8>, Option<&'static str>)>;

/// Writes a mix of commands over RESP and returns the state they leave.
async fn write_everything(c: &mut RawClient) -> Expected {
    let mut expected = Expected::new();
    // A pipeline of plain SETs, acknowledged together.
    let mut request = Vec::new();
    for i in 0..300 {
        let (k, v) = (format!("key:{i}"), format!("value-{i}"));
        request.extend(encode(&[b"SET", k.as_bytes(), v.as_bytes()]));
        expected.insert((0, k.into_bytes()), (v.into_bytes(), None));
    }
    c.send(&request).await;
    assert_eq!(c.replies(300).await, b"+OK\r\n".repeat(300));

    let steps: Vec<(&[&[u8]], &[u8])> = vec![
        (&[b"MSET", b"m:1", b"one", b"m:2", b"two"], b"+OK\r\n"),
        (&[b"INCRBY", b"counter", b"40"], b":40\r\n"),
        (&[b"INCR", b"counter"], b":41\r\n"),
        (&[b"INCR", b"counter"], b":42\r\n"),
        (&[b"APPEND", b"log", b"a"], b":1\r\n"),
        (&[b"APPEND", b"log", b"bc"], b":3\r\n"),
        (&[b"SETRANGE", b"range", b"3", b"xy"], b":5\r\n"),
        (&[b"INCRBYFLOAT", b"float", b"0.1"], b"$3\r\n0.1\r\n"),
        (&[b"INCRBYFLOAT", b"float", b"0.2"], b"$3\r\n0.3\r\n"),
        (
            &[b"SET", b"volatile", b"soon-not", b"EXAT", FAR_FUTURE_ARG],
            b"+OK\r\n",
        ),
        (&[b"SET", b"made-volatile", b"x"], b"+OK\r\n"),
        (&[b"EXPIREAT", b"made-volatile", FAR_FUTURE_ARG], b":1\r\n"),
        (&[b"SET", b"\x00bin\xff\r\n", b"\x00\r\n\xff"], b"+OK\r\n"),
        (&[b"SET", b"", b"empty key"], b"+OK\r\n"),
        (&[b"SET", b"empty value", b""], b"+OK\r\n"),
        (&[b"DEL", b"key:0", b"key:1", b"nope"], b":2\r\n"),
        (&[b"SET", b"key:2", b"overwritten"], b"+OK\r\n"),
        (&[b"RENAME", b"key:3", b"renamed"], b"+OK\r\n"),
        (&[b"SET", b"gone", b"x", b"PXAT", b"1"], b"+OK\r\n"),
        (&[b"GETDEL", b"key:4"], b"$7\r\nvalue-4\r\n"),
        (&[b"SELECT", b"3"], b"+OK\r\n"),
        (&[b"SET", b"key:0", b"in db 3"], b"+OK\r\n"),
        (&[b"SELECT", b"0"], b"+OK\r\n"),
    ];
    for (args, reply) in steps {
        assert_eq!(show(&c.cmd(args).await), show(reply), "{args:?}");
    }
    for k in ["key:0", "key:1", "key:3", "key:4"] {
        expected.remove(&(0, k.as_bytes().to_vec()));
    }
    let mut put = |db: u8, k: &[u8], v: &[u8], exp: Option<&'static str>| {
        expected.insert((db, k.to_vec()), (v.to_vec(), exp));
    };
    put(0, b"m:1", b"one", None);
    put(0, b"m:2", b"two", None);
    put(0, b"counter", b"42", None);
    put(0, b"log", b"abc", None);
    put(0, b"range", b"\x00\x00\x00xy", None);
    put(0, b"float", b"0.3", None);
    put(0, b"volatile", b"soon-not", Some(FAR_FUTURE));
    put(0, b"made-volatile", b"x", Some(FAR_FUTURE));
    put(0, b"\x00bin\xff\r\n", b"\x00\r\n\xff", None);
    put(0, b"", b"empty key", None);
    put(0, b"empty value", b"", None);
    put(0, b"key:2", b"overwritten", None);
    put(0, b"renamed", b"value-3", None);
    put(3, b"key:0", b"in db 3", None);
    expected
}

/// Reads every key back and checks values, expiries and key counts.
async fn check_everything(c: &mut RawClient, expected: &Expected) {
    for db in [0u8, 3] {
        assert_eq!(c.run(&format!("SELECT {db}")).await, b"+OK\r\n");
        let keys: Vec<&Vec<u8>> = expected
            .keys()
            .filter(|(d, _)| *d == db)
            .map(|(_, k)| k)
            .collect();
        assert_eq!(
            c.run("DBSIZE").await,
            format!(":{}\r\n", keys.len()).into_bytes(),
            "db {db}"
        );
        for key in keys {
            let (value, expiry) = &expected[&(db, key.clone())];
            let mut want = format!("${}\r\n", value.len()).into_bytes();
            want.extend_from_slice(value);
            want.extend_from_slice(b"\r\n");
            assert_eq!(
                show(&c.cmd(&[b"GET", key]).await),
                show(&want),
                "db {db} key {}",
                show(key)
            );
            let want_expiry = format!(":{}\r\n", expiry.unwrap_or("-1"));
            assert_eq!(
                show(&c.cmd(&[b"EXPIRETIME", key]).await),
                show(want_expiry.as_bytes()),
                "db {db} key {}",
                show(key)
            );
        }
    }
    assert_eq!(c.run("SELECT 0").await, b"+OK\r\n");
    for gone in ["key:0", "key:1", "key:3", "key:4", "gone", "nope"] {
        assert_eq!(c.run(&format!("EXISTS {gone}")).await, b":0\r\n", "{gone}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_shutdown_command_and_restart() {
    for durability in [Durability::Fsync, Durability::None] {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = TestServer::start_in(dir.path(), durability).await;
        let mut c = server.client().await;
        let expected = write_everything(&mut c).await;
        // SHUTDOWN closes the connection without a reply, drains, and stops the server.
        c.send(b"SHUTDOWN\r\n").await;
        let (got, closed) = c.read_until_close(Duration::from_secs(30)).await;
        assert!(got.is_empty() && closed, "SHUTDOWN replied {}", show(&got));
        let report = server.wait().await;
        assert_eq!(report.unflushed, 0, "{durability:?}");

        let server = TestServer::start_in(dir.path(), durability).await;
        let mut c = server.client().await;
        check_everything(&mut c, &expected).await;
        server.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_survive_trigger_shutdown_and_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = TestServer::start_in(dir.path(), Durability::Fsync).await;
    let mut c = server.client().await;
    let expected = write_everything(&mut c).await;
    // The connection is open while the server shuts down: it is closed by the server.
    let report = server.stop().await;
    assert_eq!(report.unflushed, 0);
    let (_, closed) = c.read_until_close(Duration::from_secs(10)).await;
    assert!(closed);

    // Twice: the second restart reads what the first one loaded, not only the journal.
    for _ in 0..2 {
        let server = TestServer::start_in(dir.path(), Durability::Fsync).await;
        let mut c = server.client().await;
        check_everything(&mut c, &expected).await;
        assert_eq!(server.stop().await.unflushed, 0);
    }
}
