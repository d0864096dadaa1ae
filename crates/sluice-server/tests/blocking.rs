//! Blocking commands (BZPOPMIN, BZPOPMAX, BZMPOP, BLPOP, BRPOP, BLMOVE, BRPOPLPUSH, BLMPOP,
//! XREAD BLOCK, XREADGROUP BLOCK)
//! across connections: a client blocked on keys
//! is woken by a write from any other connection, a MULTI/EXEC or a script; clients are served
//! in the order they blocked; a timeout answers nil; the replies before a blocked command are
//! sent and the commands after it wait for it; a client that leaves or is killed while blocked
//! leaves no trace. Replies that do not block are compared with redis-server in
//! `differential.rs`; the bytes expected here are redis-server 7.0's.

mod common;

use std::time::{Duration, Instant};

use common::{encode, show, RawClient, TestServer};

/// Sends a command without waiting for its reply.
async fn send(c: &mut RawClient, line: &str) {
    let args: Vec<&[u8]> = line.split_whitespace().map(str::as_bytes).collect();
    c.send(&encode(&args)).await;
}

/// Asserts that no reply arrives for a while.
async fn no_reply(c: &mut RawClient) {
    let r = tokio::time::timeout(Duration::from_millis(150), c.reply()).await;
    assert!(r.is_err(), "unexpected reply {}", show(&r.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_from_another_connection_wakes_the_blocked_client() {
    let server = TestServer::start().await;
    let mut blocked = server.client().await;
    let mut writer = server.client().await;
    send(&mut blocked, "BZPOPMIN k1 k2 0").await;
    writer.until_blocked(1).await;
    no_reply(&mut blocked).await;
    assert_eq!(writer.run("ZADD k2 2 b 1 a").await, b":2\r\n");
    assert_eq!(
        blocked.reply().await,
        b"*3\r\n$2\r\nk2\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    writer.until_blocked(0).await;
    assert_eq!(writer.run("ZRANGE k2 0 -1").await, b"*1\r\n$1\r\nb\r\n");

    // BZMPOP takes up to COUNT from the first key that has members.
    send(&mut blocked, "BZMPOP 0 2 k3 k2 MAX COUNT 5").await;
    assert_eq!(
        blocked.reply().await,
        b"*2\r\n$2\r\nk2\r\n*1\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    send(&mut blocked, "BZMPOP 0 2 k3 k4 MIN COUNT 2").await;
    writer.until_blocked(1).await;
    writer.run("ZADD k4 1 x 2 y 3 z").await;
    assert_eq!(
        blocked.reply().await,
        b"*2\r\n$2\r\nk4\r\n*2\r\n*2\r\n$1\r\nx\r\n$1\r\n1\r\n*2\r\n$1\r\ny\r\n$1\r\n2\r\n"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_are_served_in_the_order_they_blocked() {
    let server = TestServer::start().await;
    let mut first = server.client().await;
    let mut second = server.client().await;
    let mut third = server.client().await;
    let mut writer = server.client().await;
    send(&mut first, "BZPOPMIN q 0").await;
    writer.until_blocked(1).await;
    send(&mut second, "BZPOPMIN q 0").await;
    writer.until_blocked(2).await;
    send(&mut third, "BZPOPMAX other q 0").await;
    writer.until_blocked(3).await;
    // One write of two members: the first two clients, in order; the third waits.
    writer.run("ZADD q 1 a 2 b").await;
    assert_eq!(
        first.reply().await,
        b"*3\r\n$1\r\nq\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    assert_eq!(
        second.reply().await,
        b"*3\r\n$1\r\nq\r\n$1\r\nb\r\n$1\r\n2\r\n"
    );
    no_reply(&mut third).await;
    writer.run("ZADD q 3 c").await;
    assert_eq!(
        third.reply().await,
        b"*3\r\n$1\r\nq\r\n$1\r\nc\r\n$1\r\n3\r\n"
    );
    writer.until_blocked(0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_and_scripts_wake_blocked_clients_when_they_are_applied() {
    let server = TestServer::start().await;
    let mut blocked = server.client().await;
    let mut writer = server.client().await;
    send(&mut blocked, "BZPOPMAX m 0").await;
    writer.until_blocked(1).await;
    writer.run("MULTI").await;
    writer.run("ZADD m 5 five").await;
    no_reply(&mut blocked).await;
    assert_eq!(writer.run("EXEC").await, b"*1\r\n:1\r\n");
    assert_eq!(
        blocked.reply().await,
        b"*3\r\n$1\r\nm\r\n$4\r\nfive\r\n$1\r\n5\r\n"
    );
    send(&mut blocked, "BZPOPMIN s 0").await;
    writer.until_blocked(1).await;
    let script = writer
        .cmd(&[
            b"EVAL",
            b"redis.call('zadd', KEYS[1], 1.5, 'x') return 1",
            b"1",
            b"s",
        ])
        .await;
    assert_eq!(script, b":1\r\n");
    assert_eq!(
        blocked.reply().await,
        b"*3\r\n$1\r\ns\r\n$1\r\nx\r\n$3\r\n1.5\r\n"
    );
    // A key that turns into another type keeps its client waiting, as in Redis.
    send(&mut blocked, "BZPOPMIN t 0").await;
    writer.until_blocked(1).await;
    writer.run("SET t v").await;
    no_reply(&mut blocked).await;
    writer.run("DEL t").await;
    writer.run("ZADD t 7 seven").await;
    assert_eq!(
        blocked.reply().await,
        b"*3\r\n$1\r\nt\r\n$5\r\nseven\r\n$1\r\n7\r\n"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timeout_answers_nil_and_pipelined_commands_keep_their_order() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut writer = server.client().await;
    let started = Instant::now();
    assert_eq!(c.run("BZPOPMIN nokey 0.2").await, b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(190));
    c.run("HELLO 3").await;
    assert_eq!(c.run("BZMPOP 0.05 1 nokey MIN").await, b"_\r\n");
    c.run("HELLO 2").await;

    // The replies before a blocked command are sent at once; those after it wait for it.
    let mut pipeline = encode(&[b"PING"]);
    pipeline.extend(encode(&[b"BZPOPMIN", b"p", b"0"]));
    pipeline.extend(encode(&[b"ECHO", b"after"]));
    c.send(&pipeline).await;
    assert_eq!(c.reply().await, b"+PONG\r\n");
    writer.until_blocked(1).await;
    no_reply(&mut c).await;
    // Commands sent while blocked are read, not run, until it is served.
    send(&mut c, "ECHO later").await;
    no_reply(&mut c).await;
    writer.run("ZADD p 1 one").await;
    assert_eq!(
        c.reply().await,
        b"*3\r\n$1\r\np\r\n$3\r\none\r\n$1\r\n1\r\n"
    );
    assert_eq!(c.reply().await, b"$5\r\nafter\r\n");
    assert_eq!(c.reply().await, b"$5\r\nlater\r\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_leaves_or_is_killed_while_blocked_leaves_no_trace() {
    let server = TestServer::start().await;
    let mut writer = server.client().await;
    let mut gone = server.client().await;
    send(&mut gone, "BZPOPMIN g 0").await;
    writer.until_blocked(1).await;
    drop(gone);
    writer.until_blocked(0).await;

    let mut killed = server.client().await;
    let id = String::from_utf8(killed.run("CLIENT ID").await).unwrap();
    let id = id.trim_start_matches(':').trim().to_string();
    send(&mut killed, "BZPOPMIN g 0").await;
    writer.until_blocked(1).await;
    assert_eq!(writer.run(&format!("CLIENT KILL ID {id}")).await, b":1\r\n");
    writer.until_blocked(0).await;
    let (rest, closed) = killed.read_until_close(Duration::from_secs(2)).await;
    assert!(closed && rest.is_empty(), "{}", show(&rest));
    // The member a departed client waited for is there for the next one.
    writer.run("ZADD g 1 a").await;
    assert_eq!(
        writer.run("BZPOPMIN g 0").await,
        b"*3\r\n$1\r\ng\r\n$1\r\na\r\n$1\r\n1\r\n"
    );
    server.stop().await;
}

/// A client first in line for one key and second for another, woken for the first, leaves the
/// other key's member to the client first in line there (Redis serves each key's clients in
/// order), and a served blocked command counts as one call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_key_serves_its_own_first_client_and_a_served_command_counts_once() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut b = server.client().await;
    let mut writer = server.client().await;
    writer.run("CONFIG RESETSTAT").await;
    send(&mut a, "BZPOPMIN k 0").await;
    writer.until_blocked(1).await;
    send(&mut b, "BZPOPMIN k j 0").await;
    writer.until_blocked(2).await;
    writer.run("MULTI").await;
    writer.run("ZADD k 1 x").await;
    writer.run("ZADD j 1 y").await;
    writer.run("EXEC").await;
    assert_eq!(a.reply().await, b"*3\r\n$1\r\nk\r\n$1\r\nx\r\n$1\r\n1\r\n");
    assert_eq!(b.reply().await, b"*3\r\n$1\r\nj\r\n$1\r\ny\r\n$1\r\n1\r\n");
    let stats = String::from_utf8(writer.run("INFO commandstats").await).unwrap();
    assert!(
        stats.contains("cmdstat_bzpopmin:calls=2,"),
        "one call per BZPOPMIN, however often it was woken: {stats}"
    );
    server.stop().await;
}

/// While blocked, CLIENT LIST shows flag `b`, and a RESP3 subscriber still gets its messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_client_shows_flag_b_and_still_gets_its_messages() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    let mut writer = server.client().await;
    c.run("HELLO 3").await;
    c.run("CLIENT SETNAME waiter").await;
    c.run("SUBSCRIBE news").await;
    send(&mut c, "BZPOPMIN k 0").await;
    writer.until_blocked(1).await;
    // The flag is set when the connection starts waiting, just after the count.
    let mut line = String::new();
    for _ in 0..200 {
        let list = String::from_utf8(writer.run("CLIENT LIST").await).unwrap();
        line = list
            .lines()
            .find(|l| l.contains("name=waiter"))
            .expect("the blocked client is listed")
            .to_string();
        if line.contains("flags=Pb ") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(line.contains("flags=Pb "), "{line}");
    assert_eq!(writer.run("PUBLISH news hello").await, b":1\r\n");
    assert_eq!(
        c.reply().await,
        b">3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$5\r\nhello\r\n"
    );
    writer.run("ZADD k 1 a").await;
    assert_eq!(c.reply().await, b"*3\r\n$1\r\nk\r\n$1\r\na\r\n,1\r\n");
    let list = String::from_utf8(writer.run("CLIENT LIST").await).unwrap();
    let line = list.lines().find(|l| l.contains("name=waiter")).unwrap();
    assert!(line.contains("flags=P "), "{line}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_from_another_connection_wakes_blpop_brpop_blmpop_and_blmove() {
    let server = TestServer::start().await;
    let mut blocked = server.client().await;
    let mut writer = server.client().await;
    send(&mut blocked, "BLPOP k1 k2 0").await;
    writer.until_blocked(1).await;
    no_reply(&mut blocked).await;
    assert_eq!(writer.run("RPUSH k2 a b c").await, b":3\r\n");
    assert_eq!(blocked.reply().await, b"*2\r\n$2\r\nk2\r\n$1\r\na\r\n");
    writer.until_blocked(0).await;
    assert_eq!(
        writer.run("LRANGE k2 0 -1").await,
        b"*2\r\n$1\r\nb\r\n$1\r\nc\r\n"
    );

    send(&mut blocked, "BRPOP k3 0").await;
    writer.until_blocked(1).await;
    writer.run("LPUSH k3 x y").await;
    assert_eq!(blocked.reply().await, b"*2\r\n$2\r\nk3\r\n$1\r\nx\r\n");

    send(&mut blocked, "BLMPOP 0 2 k4 k5 RIGHT COUNT 2").await;
    writer.until_blocked(1).await;
    writer.run("RPUSH k5 1 2 3").await;
    assert_eq!(
        blocked.reply().await,
        b"*2\r\n$2\r\nk5\r\n*2\r\n$1\r\n3\r\n$1\r\n2\r\n"
    );

    // BLMOVE waits on its source only; the element lands in the destination.
    send(&mut blocked, "BLMOVE src dst RIGHT LEFT 0").await;
    writer.until_blocked(1).await;
    writer.run("RPUSH dst old").await;
    no_reply(&mut blocked).await;
    writer.run("RPUSH src job").await;
    assert_eq!(blocked.reply().await, b"$3\r\njob\r\n");
    assert_eq!(
        writer.run("LRANGE dst 0 -1").await,
        b"*2\r\n$3\r\njob\r\n$3\r\nold\r\n"
    );
    assert_eq!(writer.run("EXISTS src").await, b":0\r\n");

    // Timing out, BLMOVE answers a nil array, as Redis 7.0's blocked-client timeout does.
    assert_eq!(blocked.run("BRPOPLPUSH none dst 0.05").await, b"*-1\r\n");
    assert_eq!(blocked.run("BLPOP none 0.05").await, b"*-1\r\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_exec_pushing_three_elements_serves_three_blocked_clients_in_order() {
    let server = TestServer::start().await;
    let mut clients = Vec::new();
    let mut writer = server.client().await;
    for n in 1..=3 {
        let mut c = server.client().await;
        send(&mut c, "BLPOP q 0").await;
        writer.until_blocked(n).await;
        clients.push(c);
    }
    writer.run("MULTI").await;
    writer.run("RPUSH q a b").await;
    writer.run("RPUSH q c").await;
    no_reply(&mut clients[0]).await;
    assert_eq!(writer.run("EXEC").await, b"*2\r\n:2\r\n:3\r\n");
    for (c, element) in clients.iter_mut().zip(["a", "b", "c"]) {
        let want = format!("*2\r\n$1\r\nq\r\n$1\r\n{element}\r\n");
        assert_eq!(show(&c.reply().await), show(want.as_bytes()));
    }
    writer.until_blocked(0).await;
    assert_eq!(writer.run("EXISTS q").await, b":0\r\n");

    // A script's push wakes too.
    send(&mut clients[0], "BRPOP s 0").await;
    writer.until_blocked(1).await;
    let script = writer
        .cmd(&[
            b"EVAL",
            b"return redis.call('rpush', KEYS[1], 'x')",
            b"1",
            b"s",
        ])
        .await;
    assert_eq!(script, b":1\r\n");
    assert_eq!(clients[0].reply().await, b"*2\r\n$1\r\ns\r\n$1\r\nx\r\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blmove_into_a_key_of_another_type_answers_wrongtype_and_leaves_the_source() {
    let server = TestServer::start().await;
    let mut blocked = server.client().await;
    let mut writer = server.client().await;
    send(&mut blocked, "BLMOVE src dst LEFT RIGHT 0").await;
    writer.until_blocked(1).await;
    writer.run("SET dst string").await;
    // The source turning into another type keeps the client waiting, as in Redis.
    writer.run("SET src string").await;
    no_reply(&mut blocked).await;
    writer.run("DEL src").await;
    writer.run("RPUSH src x").await;
    assert_eq!(
        blocked.reply().await,
        &b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"[..]
    );
    writer.until_blocked(0).await;
    assert_eq!(writer.run("LRANGE src 0 -1").await, b"*1\r\n$1\r\nx\r\n");
    server.stop().await;
}

/// The reliable-queue pattern: workers move jobs with BRPOPLPUSH into their own processing
/// list while producers push; every job is delivered to exactly one worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_work_queue_delivers_every_job_to_exactly_one_worker() {
    const JOBS: usize = 300;
    let server = TestServer::start().await;
    let mut workers = Vec::new();
    for w in 0..3 {
        let mut c = server.client().await;
        workers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let line = format!("BRPOPLPUSH jobs processing:{w} 0.5");
                let reply = c.run(&line).await;
                if reply == b"*-1\r\n" {
                    return got;
                }
                let text = String::from_utf8(reply).unwrap();
                let job = text.lines().nth(1).unwrap().to_string();
                got.push(job);
            }
        }));
    }
    let mut producer = server.client().await;
    for i in 0..JOBS {
        let reply = producer.run(&format!("LPUSH jobs job{i}")).await;
        assert!(reply.starts_with(b":"), "{}", show(&reply));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await.unwrap());
    }
    all.sort();
    let mut want: Vec<String> = (0..JOBS).map(|i| format!("job{i}")).collect();
    want.sort();
    assert_eq!(all, want);
    let mut processing = 0;
    for w in 0..3 {
        let r = producer.run(&format!("LLEN processing:{w}")).await;
        processing += String::from_utf8(r).unwrap()[1..]
            .trim()
            .parse::<usize>()
            .unwrap();
    }
    assert_eq!(processing, JOBS);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_unblock_ends_a_wait_as_a_timeout_or_an_error() {
    let server = TestServer::start().await;
    let mut blocked = server.client().await;
    let mut admin = server.client().await;
    let id = String::from_utf8(blocked.run("CLIENT ID").await).unwrap();
    let id = id.trim_start_matches(':').trim().to_string();
    // Not blocked: nothing to unblock.
    assert_eq!(admin.run(&format!("CLIENT UNBLOCK {id}")).await, b":0\r\n");

    send(&mut blocked, "BLPOP q 0").await;
    admin.until_blocked(1).await;
    assert_eq!(admin.run(&format!("CLIENT UNBLOCK {id}")).await, b":1\r\n");
    assert_eq!(blocked.reply().await, b"*-1\r\n");
    admin.until_blocked(0).await;
    // A second UNBLOCK finds nothing to end.
    assert_eq!(admin.run(&format!("CLIENT UNBLOCK {id}")).await, b":0\r\n");

    send(&mut blocked, "BZPOPMIN z 0").await;
    admin.until_blocked(1).await;
    assert_eq!(
        admin.run(&format!("CLIENT UNBLOCK {id} ERROR")).await,
        b":1\r\n"
    );
    assert_eq!(
        blocked.reply().await,
        &b"-UNBLOCKED client unblocked via CLIENT UNBLOCK\r\n"[..]
    );
    let info = String::from_utf8(admin.run("INFO errorstats").await).unwrap();
    assert!(info.contains("errorstat_UNBLOCKED:count=1"), "{info}");
    // The connection carries on, and a later push is not taken by the unblocked command.
    assert_eq!(blocked.run("PING").await, b"+PONG\r\n");
    admin.run("RPUSH q a").await;
    assert_eq!(admin.run("LLEN q").await, b":1\r\n");
    // Served before the UNBLOCK arrives: the UNBLOCK finds nothing, and the next wait is not
    // ended by it.
    send(&mut blocked, "BLPOP q 0").await;
    assert_eq!(blocked.reply().await, b"*2\r\n$1\r\nq\r\n$1\r\na\r\n");
    assert_eq!(admin.run(&format!("CLIENT UNBLOCK {id}")).await, b":0\r\n");
    send(&mut blocked, "BLPOP q 0.3").await;
    no_reply(&mut blocked).await;
    assert_eq!(blocked.reply().await, b"*-1\r\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_waiting_for_another_type_never_holds_up_a_key() {
    let server = TestServer::start().await;
    let mut zset_client = server.client().await;
    let mut list_client = server.client().await;
    let mut writer = server.client().await;
    send(&mut zset_client, "BZPOPMIN k 0").await;
    writer.until_blocked(1).await;
    send(&mut list_client, "BLPOP k 0").await;
    writer.until_blocked(2).await;
    writer.run("RPUSH k x").await;
    assert_eq!(list_client.reply().await, b"*2\r\n$1\r\nk\r\n$1\r\nx\r\n");
    no_reply(&mut zset_client).await;
    // And the other way round.
    send(&mut list_client, "BLPOP k 0").await;
    writer.until_blocked(2).await;
    writer.run("ZADD k 1 m").await;
    assert_eq!(
        zset_client.reply().await,
        b"*3\r\n$1\r\nk\r\n$1\r\nm\r\n$1\r\n1\r\n"
    );
    no_reply(&mut list_client).await;
    writer.run("LPUSH k y").await;
    assert_eq!(list_client.reply().await, b"*2\r\n$1\r\nk\r\n$1\r\ny\r\n");
    server.stop().await;
}

/// Redis serves a woken client from the key that became ready first, whatever the order of
/// its arguments (the bytes expected are redis-server 7.0's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_woken_client_takes_from_the_key_that_became_ready_first() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let mut c = server.client().await;
    let mut writer = server.client().await;
    send(&mut a, "BLPOP k1 k2 0").await;
    writer.until_blocked(1).await;
    send(&mut c, "BLPOP k2 0.5").await;
    writer.until_blocked(2).await;
    writer.run("MULTI").await;
    writer.run("RPUSH k2 v2").await;
    writer.run("RPUSH k1 v1").await;
    writer.run("EXEC").await;
    assert_eq!(a.reply().await, b"*2\r\n$2\r\nk2\r\n$2\r\nv2\r\n");
    // C was behind A on k2, which A emptied; k1 is nobody else's.
    assert_eq!(c.reply().await, b"*-1\r\n");
    assert_eq!(writer.run("LRANGE k1 0 -1").await, b"*1\r\n$2\r\nv1\r\n");
    server.stop().await;
}

/// XREAD's (and XREADGROUP's) reply for one stream `key` holding one entry `id` with field
/// `f` = `v`.
fn one_entry(key: &str, id: &str, f: &str, v: &str) -> Vec<u8> {
    format!(
        "*1\r\n*2\r\n${}\r\n{key}\r\n*1\r\n*2\r\n${}\r\n{id}\r\n*2\r\n${}\r\n{f}\r\n${}\r\n{v}\r\n",
        key.len(),
        id.len(),
        f.len(),
        v.len()
    )
    .into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_xadd_wakes_every_reader_blocked_on_the_stream() {
    let server = TestServer::start().await;
    let mut writer = server.client().await;
    let mut readers = Vec::new();
    for (n, line) in [
        "XREAD BLOCK 0 STREAMS s $",
        "XREAD BLOCK 0 STREAMS other s $ $",
        "XREAD COUNT 5 BLOCK 0 STREAMS s 0",
    ]
    .iter()
    .enumerate()
    {
        let mut c = server.client().await;
        send(&mut c, line).await;
        writer.until_blocked(n + 1).await;
        readers.push(c);
    }
    // A write of another type to the key wakes nobody for good: they look and wait again.
    assert_eq!(writer.run("SET other x").await, b"+OK\r\n");
    for r in &mut readers {
        no_reply(r).await;
    }
    assert_eq!(writer.run("XADD s 1-1 f v").await, b"$3\r\n1-1\r\n");
    for r in &mut readers {
        assert_eq!(r.reply().await, one_entry("s", "1-1", "f", "v"));
    }
    writer.until_blocked(0).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dollar_is_the_last_id_when_the_reader_blocked() {
    let server = TestServer::start().await;
    let mut reader = server.client().await;
    let mut writer = server.client().await;
    writer.run("XADD s 1 a old").await;
    // An ID with entries after it answers at once.
    send(&mut reader, "XREAD BLOCK 0 STREAMS s 0").await;
    assert_eq!(reader.reply().await, one_entry("s", "1-0", "a", "old"));
    send(&mut reader, "XREAD BLOCK 0 STREAMS s $").await;
    writer.until_blocked(1).await;
    // Two entries in one EXEC: the reader gets both, the older one it had seen not at all.
    writer.run("MULTI").await;
    writer.run("XADD s 2 a new").await;
    writer.run("XADD s 3 b newer").await;
    writer.run("EXEC").await;
    assert_eq!(
        reader.reply().await,
        b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\na\r\n$3\r\nnew\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nb\r\n$5\r\nnewer\r\n"
    );
    // An entry added and deleted by one EXEC: the last ID moved, so Redis answers the key
    // with no entry.
    send(&mut reader, "XREAD BLOCK 0 STREAMS s $").await;
    writer.until_blocked(1).await;
    writer.run("MULTI").await;
    writer.run("XADD s 5 a b").await;
    writer.run("XDEL s 5").await;
    writer.run("EXEC").await;
    assert_eq!(reader.reply().await, b"*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_outlives_its_stream_being_deleted_or_replaced() {
    let server = TestServer::start().await;
    let mut reader = server.client().await;
    let mut writer = server.client().await;
    writer.run("XADD s 5 a b").await;
    send(&mut reader, "XREAD BLOCK 0 STREAMS s $").await;
    writer.until_blocked(1).await;
    // XSETID moves the last ID without adding: no reader is woken, as in Redis.
    writer.run("XSETID s 6").await;
    no_reply(&mut reader).await;
    writer.run("DEL s").await;
    writer.run("RPUSH s x").await;
    no_reply(&mut reader).await;
    writer.run("DEL s").await;
    // A new stream whose entries are older than the ID waited for serves nothing.
    writer.run("XADD s 4 a b").await;
    no_reply(&mut reader).await;
    writer.run("XADD s 9 c d").await;
    assert_eq!(reader.reply().await, one_entry("s", "9-0", "c", "d"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xread_times_out_with_a_nil_array_and_answers_a_map_in_resp3() {
    let server = TestServer::start().await;
    let mut reader = server.client().await;
    let mut writer = server.client().await;
    let started = Instant::now();
    assert_eq!(reader.run("XREAD BLOCK 100 STREAMS s $").await, b"*-1\r\n");
    assert!(started.elapsed() >= Duration::from_millis(100));
    // Inside MULTI it does not block.
    reader.run("MULTI").await;
    reader.run("XREAD BLOCK 0 STREAMS s $").await;
    assert_eq!(reader.run("EXEC").await, b"*1\r\n*-1\r\n");

    reader.run("HELLO 3").await;
    send(&mut reader, "XREAD BLOCK 0 STREAMS s $").await;
    writer.until_blocked(1).await;
    writer.run("XADD s 7 f v").await;
    assert_eq!(
        reader.reply().await,
        b"%1\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n7-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n"
    );
    assert_eq!(reader.run("XREAD BLOCK 100 STREAMS s $").await, b"_\r\n");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_blocked_on_one_group_each_get_a_different_entry() {
    let server = TestServer::start().await;
    let mut writer = server.client().await;
    assert_eq!(
        writer.run("XGROUP CREATE jobs workers $ MKSTREAM").await,
        b"+OK\r\n"
    );
    let mut workers = Vec::new();
    for (n, name) in ["w1", "w2"].iter().enumerate() {
        let mut c = server.client().await;
        send(
            &mut c,
            &format!("XREADGROUP GROUP workers {name} COUNT 1 BLOCK 0 STREAMS jobs >"),
        )
        .await;
        writer.until_blocked(n + 1).await;
        workers.push(c);
    }
    // A group created while they wait wakes nobody.
    writer.run("XGROUP CREATE jobs audit $").await;
    for w in &mut workers {
        no_reply(w).await;
    }
    assert_eq!(writer.run("XADD jobs 1-1 job a").await, b"$3\r\n1-1\r\n");
    // One worker gets the job; the other keeps waiting, then gets the next one.
    let (w1, w2) = workers.split_at_mut(1);
    let (first, second) = tokio::select! {
        r = w1[0].reply() => (r, 1),
        r = w2[0].reply() => (r, 0),
    };
    assert_eq!(first, one_entry("jobs", "1-1", "job", "a"));
    no_reply(&mut workers[second]).await;
    assert_eq!(writer.run("XADD jobs 1-2 job b").await, b"$3\r\n1-2\r\n");
    assert_eq!(
        workers[second].reply().await,
        one_entry("jobs", "1-2", "job", "b")
    );
    writer.until_blocked(0).await;
    // Both are pending, once each.
    assert_eq!(
        writer.run("XPENDING jobs workers").await,
        b"*4\r\n:2\r\n$3\r\n1-1\r\n$3\r\n1-2\r\n*2\r\n*2\r\n$2\r\nw1\r\n$1\r\n1\r\n*2\r\n$2\r\nw2\r\n$1\r\n1\r\n"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_group_read_ends_when_its_key_or_group_goes() {
    let server = TestServer::start().await;
    let mut reader = server.client().await;
    let mut writer = server.client().await;
    writer.run("XGROUP CREATE s g $ MKSTREAM").await;
    // SETID moves the group without adding: no reader is woken, as in Redis.
    send(&mut reader, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    writer.until_blocked(1).await;
    writer.run("XADD s 1 a b").await;
    assert_eq!(reader.reply().await, one_entry("s", "1-0", "a", "b"));
    send(&mut reader, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    writer.until_blocked(1).await;
    assert_eq!(writer.run("XGROUP SETID s g 0").await, b"+OK\r\n");
    no_reply(&mut reader).await;
    assert_eq!(writer.run("XGROUP DESTROY s g").await, b":1\r\n");
    assert_eq!(
        reader.reply().await,
        b"-NOGROUP the consumer group this client was blocked on no longer exists\r\n"
    );
    writer.run("XGROUP CREATE s g $").await;
    send(&mut reader, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    writer.until_blocked(1).await;
    writer.run("DEL s").await;
    assert_eq!(
        reader.reply().await,
        b"-UNBLOCKED the stream key no longer exists\r\n"
    );
    // XDEL, XTRIM, EXPIRE and PERSIST add nothing: after SETID moved the group back, they
    // wake nobody (a woken reader would be served the old entries), as in Redis.
    writer.run("XADD s 1 a b").await;
    writer.run("XGROUP CREATE s g $").await;
    send(&mut reader, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    writer.until_blocked(1).await;
    // Moved back, the group is served from 1-0 by the next XADD, as in Redis.
    writer.run("XGROUP SETID s g 0").await;
    no_reply(&mut reader).await;
    writer.run("XADD s 2 x y").await;
    assert_eq!(
        reader.reply().await,
        b"*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nx\r\n$1\r\ny\r\n"
    );
    send(&mut reader, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    writer.until_blocked(1).await;
    writer.run("XGROUP SETID s g 0").await;
    for line in ["EXPIRE s 1000", "PERSIST s", "XTRIM s MAXLEN 5", "XDEL s 1"] {
        writer.run(line).await;
    }
    no_reply(&mut reader).await;
    // An expiry and a FLUSHDB end the wait as a DEL does.
    writer.run("PEXPIRE s 100").await;
    assert_eq!(
        reader.reply().await,
        b"-UNBLOCKED the stream key no longer exists\r\n"
    );
    writer.run("XGROUP CREATE s g $ MKSTREAM").await;
    send(&mut reader, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    writer.until_blocked(1).await;
    writer.run("FLUSHDB").await;
    assert_eq!(
        reader.reply().await,
        b"-UNBLOCKED the stream key no longer exists\r\n"
    );
    // A timeout answers a nil array; inside MULTI it does not block.
    writer.run("XGROUP CREATE s g $ MKSTREAM").await;
    let started = Instant::now();
    assert_eq!(
        reader
            .run("XREADGROUP GROUP g c BLOCK 100 STREAMS s >")
            .await,
        b"*-1\r\n"
    );
    assert!(started.elapsed() >= Duration::from_millis(100));
    reader.run("MULTI").await;
    reader.run("XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    assert_eq!(reader.run("EXEC").await, b"*1\r\n*-1\r\n");
    // Woken by an EXEC that adds two entries: the reader gets both, in RESP3 as a map.
    reader.run("HELLO 3").await;
    send(&mut reader, "XREADGROUP GROUP g c BLOCK 0 STREAMS s >").await;
    writer.until_blocked(1).await;
    writer.run("MULTI").await;
    writer.run("XADD s 2 a new").await;
    writer.run("XADD s 3 b newer").await;
    writer.run("EXEC").await;
    assert_eq!(
        reader.reply().await,
        b"%1\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\na\r\n$3\r\nnew\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nb\r\n$5\r\nnewer\r\n"
    );
    server.stop().await;
}
