//! Sets through the server: SSCAN's paging (its cursors are Sluice's own, so the differential
//! suite compares only whole pages), and real clients (redis-py, ioredis) using sets as
//! applications do. Replies are compared with redis-server in `differential.rs`; storage and
//! recovery are covered in the engine's `sets_proptest.rs` and in `crash.rs`.

mod common;

use std::collections::BTreeSet;

use common::{clients_dir, node_with_ioredis, python_with_redis, run_client, TestServer};
use resp_reply_lite::{bulk_items, cursor_and_page};

/// Just enough RESP2 reading for SSCAN's `[cursor, [member ...]]`.
mod resp_reply_lite {
    /// The bulk strings of a flat array reply.
    pub fn bulk_items(reply: &[u8]) -> Vec<Vec<u8>> {
        let text = reply;
        let mut lines = text
            .split(|&b| b == b'\n')
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
        let mut out = Vec::new();
        while let Some(line) = lines.next() {
            if line.first() == Some(&b'$') {
                out.push(lines.next().unwrap_or_default().to_vec());
            }
        }
        out
    }

    /// SSCAN's reply: the next cursor, then the page's members.
    pub fn cursor_and_page(reply: &[u8]) -> (u64, Vec<Vec<u8>>) {
        let mut items = bulk_items(reply);
        let cursor = String::from_utf8(items.remove(0)).unwrap().parse().unwrap();
        (cursor, items)
    }
}

/// A set of non-integers is paged by COUNT; following the cursor to 0 returns every member
/// exactly once, and members removed or added meanwhile never hide one present throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sscan_pages_a_big_set_and_returns_every_member_present_throughout() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let members: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    let mut sadd: Vec<&[u8]> = vec![b"SADD", b"big"];
    sadd.extend(members.iter().map(|m| m.as_bytes()));
    assert_eq!(c.cmd(&sadd).await, b":1000\r\n");

    let mut seen = Vec::new();
    let mut cursor = 0u64;
    let mut pages = 0;
    loop {
        let reply = c
            .cmd(&[
                b"SSCAN",
                b"big",
                cursor.to_string().as_bytes(),
                b"COUNT",
                b"7",
            ])
            .await;
        let (next, page) = cursor_and_page(&reply);
        assert!(page.len() <= 8, "a page holds COUNT members (ties aside)");
        seen.extend(page);
        pages += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    assert!(pages >= 1000 / 8, "{pages} pages");
    assert_eq!(seen.len(), 1000, "each member exactly once");
    let seen: BTreeSet<Vec<u8>> = seen.into_iter().collect();
    assert_eq!(seen.len(), 1000);

    // Changes between pages: half the members go, new ones come; the other half, present
    // throughout, is returned.
    let mut kept = BTreeSet::new();
    let mut cursor = 0u64;
    let mut step = 0;
    let mut returned = BTreeSet::new();
    loop {
        let reply = c
            .cmd(&[
                b"SSCAN",
                b"big",
                cursor.to_string().as_bytes(),
                b"COUNT",
                b"20",
            ])
            .await;
        let (next, page) = cursor_and_page(&reply);
        returned.extend(page);
        for i in (step * 20..step * 20 + 20).filter(|i| i % 2 == 1 && *i < 1000) {
            c.cmd(&[b"SREM", b"big", format!("m{i}").as_bytes()]).await;
            c.cmd(&[b"SADD", b"big", format!("new{i}").as_bytes()])
                .await;
        }
        step += 1;
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    for i in (0..1000).step_by(2) {
        kept.insert(format!("m{i}").into_bytes());
    }
    assert!(
        kept.is_subset(&returned),
        "a member present throughout was skipped"
    );
    for i in (1..1000).step_by(2) {
        c.cmd(&[b"SREM", b"big", format!("m{i}").as_bytes()]).await;
    }

    // MATCH filters each page; an intset comes whole, with cursor 0, as in Redis.
    let reply = c
        .cmd(&[
            b"SSCAN", b"big", b"0", b"MATCH", b"m99*", b"COUNT", b"100000",
        ])
        .await;
    let (cursor, page) = cursor_and_page(&reply);
    assert_eq!(cursor, 0);
    let page: BTreeSet<Vec<u8>> = page.into_iter().collect();
    assert_eq!(
        page,
        [
            b"m990".to_vec(),
            b"m992".to_vec(),
            b"m994".to_vec(),
            b"m996".to_vec(),
            b"m998".to_vec()
        ]
        .into()
    );
    c.cmd(&[b"SADD", b"ints", b"3", b"1", b"2"]).await;
    let reply = c.cmd(&[b"SSCAN", b"ints", b"0", b"COUNT", b"1"]).await;
    assert_eq!(
        cursor_and_page(&reply),
        (0, vec![b"1".to_vec(), b"2".to_vec(), b"3".to_vec()])
    );
    assert_eq!(bulk_items(&c.cmd(&[b"SMEMBERS", b"ints"]).await).len(), 3);
    server.stop().await;
}

/// redis-py: set commands in RESP2 and RESP3 (Python sets), `sscan_iter` to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_sets() {
    if !python_with_redis() {
        return;
    }
    let server = TestServer::start().await;
    let script = clients_dir().join("redis_py_sets.py");
    let port = server.port().to_string();
    run_client("python3", &[script.to_str().unwrap(), "--port", &port]).await;
    server.stop().await;
}

/// ioredis: set commands, `sscanStream` to the end, a MULTI with SREM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_sets() {
    if !node_with_ioredis() {
        return;
    }
    let server = TestServer::start().await;
    let script = clients_dir().join("node/sets.js");
    let port = server.port().to_string();
    run_client("node", &[script.to_str().unwrap(), &port]).await;
    server.stop().await;
}
