//! Pub/sub and keyspace notifications, as Redis 7.0 serves them.
//!
//! The contract these tests state:
//! - SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE, their UNSUBSCRIBEs, PUBLISH, SPUBLISH and PUBSUB answer
//!   byte for byte what a redis-server of the test's own answers, over several connections,
//!   in RESP2 (arrays; only the (un)subscribe commands, PING, QUIT and RESET while subscribed)
//!   and RESP3 (pushes; every command allowed), a message published by the subscriber itself
//!   included (before its own reply);
//! - keyspace notifications (`notify-keyspace-events`) carry the same events, in the same
//!   order, for every write command Sluice serves, inside MULTI/EXEC and scripts too; an EXEC
//!   that applies nothing publishes nothing;
//! - what Sluice does to a key by itself is signalled too: `expired` once per expired key
//!   (found by a read or by the reaper), `evicted` when the cache drops a copy for room, and
//!   `changed` when change capture sees the row behind a mapped key change;
//! - a subscriber that stops reading is closed once its messages pass the pub/sub class of
//!   `client-output-buffer-limit` (set as in Redis), and the other subscribers keep receiving;
//! - redis-py's `PubSub` and ioredis's subscriber mode work unchanged.
//!
//! The differential cases start a redis-server of their own (pub/sub state is server-wide:
//! the shared oracle's other clients would show in PUBSUB CHANNELS); they print `skipped`
//! without a `redis-server` binary.

mod common;

use std::time::{Duration, Instant};

use common::{
    clients_dir, encode, node_with_ioredis, python_with_redis, reply_len, run_client, show, split,
    OwnRedis, RawClient, TestServer,
};
use sluice::{KeyspaceConfig, Policy};
use sluice_server::config::FileConfig;

/// One step of a multi-connection case: on connection `conn`, send `command` (nothing when
/// empty) and read `frames` replies or messages.
type Step = (usize, &'static str, usize);

/// Cases run against both servers; every frame read is compared.
const CASES: &[(&str, &[Step])] = &[
    (
        "subscribe, publish, unsubscribe (RESP2)",
        &[
            (0, "SUBSCRIBE news sport", 2),
            (1, "PUBLISH news hello", 1),
            (0, "", 1),
            (1, "PUBLISH nobody x", 1),
            (0, "SUBSCRIBE news", 1),
            (1, "PUBSUB NUMSUB news sport nobody", 1),
            (1, "PUBSUB CHANNELS", 1),
            (1, "PUBSUB CHANNELS n*", 1),
            (1, "PUBSUB CHANNELS zz*", 1),
            (0, "GET k", 1),
            (0, "PING", 1),
            (0, "PING hi", 1),
            (0, "PING a b", 1),
            (0, "UNSUBSCRIBE news", 1),
            (1, "PUBLISH news gone", 1),
            (0, "UNSUBSCRIBE", 1),
            (0, "UNSUBSCRIBE", 1),
            (0, "UNSUBSCRIBE a b", 2),
            (0, "GET k", 1),
            (0, "PING", 1),
        ],
    ),
    (
        "patterns",
        &[
            (0, "PSUBSCRIBE h* *o*", 2),
            (1, "PUBSUB NUMPAT", 1),
            (1, "PUBLISH hello 1", 1),
            (0, "", 2),
            (1, "PUBLISH zzz 2", 1),
            (1, "PUBLISH ho 3", 1),
            (0, "", 2),
            (0, "SUBSCRIBE hat", 1),
            (1, "PUBLISH hat 4", 1),
            (0, "", 2),
            (0, "PUNSUBSCRIBE *o*", 1),
            (0, "PUNSUBSCRIBE", 1),
            (0, "PUNSUBSCRIBE", 1),
            (1, "PUBSUB NUMPAT", 1),
            (0, "UNSUBSCRIBE", 1),
            (0, "PUNSUBSCRIBE nope", 1),
        ],
    ),
    (
        "shard channels",
        &[
            (0, "SSUBSCRIBE s1 s2", 2),
            (0, "SUBSCRIBE c", 1),
            (1, "SPUBLISH s1 m", 1),
            (0, "", 1),
            (1, "PUBLISH s1 plain", 1),
            (1, "PUBSUB SHARDCHANNELS", 1),
            (1, "PUBSUB SHARDNUMSUB s1 s3", 1),
            (1, "PUBSUB CHANNELS", 1),
            (0, "SUNSUBSCRIBE s1", 1),
            (0, "SUNSUBSCRIBE", 1),
            (0, "SUNSUBSCRIBE", 1),
            (0, "UNSUBSCRIBE", 1),
            (0, "GET k", 1),
        ],
    ),
    (
        "RESP3: pushes, any command while subscribed, a message to oneself",
        &[
            (0, "HELLO 3", 1),
            (0, "SUBSCRIBE a", 1),
            (0, "SET k v", 1),
            (0, "GET k", 1),
            (0, "PING", 1),
            (1, "PUBLISH a x", 1),
            (0, "", 1),
            (0, "PUBLISH a self", 2),
            (0, "PSUBSCRIBE *", 1),
            (0, "SPUBLISH a shard", 1),
            (1, "PUBLISH a both", 1),
            (0, "", 2),
            (0, "UNSUBSCRIBE nope", 1),
            (0, "PUNSUBSCRIBE", 1),
            (0, "UNSUBSCRIBE", 1),
            (0, "HELLO 2", 1),
            (0, "SUBSCRIBE b", 1),
            (0, "HELLO 3", 1),
            (0, "RESET", 1),
            (0, "SET k v2", 1),
            (1, "PUBSUB NUMSUB a b", 1),
        ],
    ),
    (
        "errors and transactions",
        &[
            (0, "SUBSCRIBE", 1),
            (0, "PSUBSCRIBE", 1),
            (0, "SSUBSCRIBE", 1),
            (0, "PUBLISH a", 1),
            (0, "PUBLISH a b c", 1),
            (0, "SPUBLISH a", 1),
            (0, "PUBSUB", 1),
            (0, "PUBSUB NOSUCH", 1),
            (0, "PUBSUB CHANNELS a b", 1),
            (0, "PUBSUB NUMPAT x", 1),
            (0, "PUBSUB SHARDCHANNELS a b", 1),
            (0, "PUBSUB HELP", 1),
            (0, "PUBSUB NUMSUB", 1),
            (1, "SUBSCRIBE t", 1),
            (0, "MULTI", 1),
            (0, "PUBLISH t queued", 1),
            (0, "EXEC", 1),
            (1, "", 1),
            (
                0,
                "EVAL \"return redis.call('publish', KEYS[1], 'lua')\" 1 t",
                1,
            ),
            (1, "", 1),
            (0, "EVAL \"return redis.call('subscribe', 'x')\" 0", 1),
            (1, "QUIT", 1),
            // Queued, then run by EXEC: both confirmations inside EXEC's one-element array.
            (2, "MULTI", 1),
            (2, "SUBSCRIBE mx my", 1),
            (2, "EXEC", 2),
            (2, "PING", 1),
        ],
    ),
];

/// One raw connection per index, opened on demand.
struct Conns {
    addr: String,
    conns: Vec<RawClient>,
}

impl Conns {
    async fn get(&mut self, i: usize) -> &mut RawClient {
        while self.conns.len() <= i {
            let c = RawClient::try_connect(&self.addr).await.expect("connect");
            self.conns.push(c);
        }
        &mut self.conns[i]
    }
}

/// Runs `steps` against the server at `addr`; each step's frames, as raw bytes.
async fn run_steps(addr: &str, steps: &[Step]) -> Vec<Vec<u8>> {
    let mut conns = Conns {
        addr: addr.to_string(),
        conns: Vec::new(),
    };
    let mut out = Vec::new();
    for (conn, command, frames) in steps {
        let c = conns.get(*conn).await;
        if !command.is_empty() {
            let args = split(command);
            let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            c.send(&encode(&argv)).await;
        }
        out.push(c.replies(*frames).await);
    }
    out
}

/// What is compared of a step's frames: HELLO's reply names the server and the connection
/// (compared only in shape); the channels PUBSUB lists, and messages that several patterns
/// deliver at once, come in no defined order (both servers walk a hash table), so they are
/// compared sorted.
fn comparable(command: &str, frames: Vec<u8>) -> Vec<u8> {
    if command.starts_with("HELLO") {
        return frames[..frames.len().min(4)].to_vec();
    }
    if command.starts_with("PUBSUB CHANNELS") || command.starts_with("PUBSUB SHARDCHANNELS") {
        let header = frames.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let mut items = split_frames(&frames[header..]);
        items.sort();
        return [frames[..header].to_vec(), items.concat()].concat();
    }
    if command.is_empty() {
        let mut items = split_frames(&frames);
        items.sort();
        return items.concat();
    }
    frames
}

/// Whole frames, each as its bytes.
fn split_frames(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let n = reply_len(bytes).expect("whole frames");
        out.push(bytes[..n].to_vec());
        bytes = &bytes[n..];
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pubsub_replies_match_redis_across_connections() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start().await;
    let sluice_addr = format!("127.0.0.1:{}", sluice.port());
    let mut mismatches = Vec::new();
    for (name, steps) in CASES {
        let from_redis = run_steps(&redis.addr, steps).await;
        let from_sluice = run_steps(&sluice_addr, steps).await;
        for (((conn, command, _), r), s) in steps.iter().zip(from_redis).zip(from_sluice) {
            let (r, s) = (comparable(command, r), comparable(command, s));
            if r != s {
                mismatches.push(format!(
                    "{name}: [{conn}] {command:?}\n    redis:  {}\n    sluice: {}",
                    show(&r),
                    show(&s)
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    sluice.stop().await;
}

/// Reads frames from `c` until a message on channel `end` arrives; everything before it.
async fn until_end(c: &mut RawClient) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let frame = c.reply().await;
        if frame == b"*3\r\n$7\r\nmessage\r\n$3\r\nend\r\n$3\r\nend\r\n" {
            return out;
        }
        out.extend(frame);
    }
}

/// The write commands of the keyspace-notification comparison, each run on its own.
const WRITES: &[&str] = &[
    "SET a 1",
    "SET a 2 EX 100",
    "SET a 3 NX",
    "SET a 4 XX GET",
    "SET a 5 KEEPTTL",
    "SETNX a 9",
    "SETNX b 3",
    "GETSET b 4",
    "APPEND b x",
    "SETRANGE b 1 zz",
    "SETRANGE b 1 \"\"",
    "SETRANGE nob 0 \"\"",
    "INCR n",
    "INCRBY n 5",
    "DECR n",
    "DECRBY n 2",
    "INCRBYFLOAT f 1.5",
    "INCR b",
    "MSET m1 1 m2 2",
    "MSETNX m1 x m3 y",
    "MSETNX m4 x m5 y",
    "SETEX s 100 v",
    "PSETEX p 100000 v",
    "EXPIRE a 100",
    "EXPIRE nosuch 100",
    "PEXPIRE a 100000 NX",
    "EXPIREAT a 4102444800",
    "PERSIST a",
    "PERSIST a",
    "EXPIRE m2 -1",
    "GETEX m1 EX 100",
    "GETEX m1 PERSIST",
    "GETEX m1",
    "GETEX m1 PXAT 1",
    "GETDEL s",
    "GETDEL s",
    "RENAME b b2",
    "RENAME b2 b2",
    "RENAMENX b2 p",
    "RENAMENX b2 c",
    "DEL c nosuch a",
    "UNLINK p n",
    "HSET h f 1 g 2",
    "HMSET h g 3",
    "HSETNX h f 9",
    "HSETNX h k 9",
    "HINCRBY h f 2",
    "HINCRBYFLOAT h g 0.5",
    "HDEL h f nosuch",
    "HDEL h nosuch",
    "HDEL h g k",
    "SADD st a b c",
    "SADD st a",
    "SREM st a nosuch",
    "SREM st nosuch",
    "SADD st2 x",
    "SMOVE st st2 b",
    "SMOVE st st2 nosuch",
    "SMOVE st st2 c",
    "SMOVE st2 st2 x",
    "SPOP st2",
    "SPOP st2",
    "SADD sp 1 2 3",
    "SPOP sp 2",
    "SPOP sp 5",
    "SPOP sp 0",
    "SADD sa 1 2",
    "SADD sb 2 3",
    "SINTERSTORE sd sa sb",
    "SUNIONSTORE sd sa sb",
    "SDIFFSTORE sd sa sb",
    "SINTERSTORE sd sa nosuch",
    "SINTERSTORE sd sa nosuch",
    "SDIFFSTORE sd nosuch sa",
    "EXPIRE sa 100",
    "RENAME sa sc",
    "COPY sc sc2",
    "COPY sc sc2",
    "COPY sc sc2 REPLACE",
    "COPY sc sc3 DB 3",
    "COPY nosuch sc4",
    "ZADD zs 1 a 2 b 3 c",
    "ZADD zs 1 a",
    "ZADD zs XX 5 nosuch",
    "ZADD zs INCR 1 a",
    "ZINCRBY zs 1 b",
    "ZREM zs nosuch",
    "ZREM zs c",
    "ZADD zs 3 c 4 d 5 e",
    "ZREMRANGEBYRANK zs 0 0",
    "ZREMRANGEBYSCORE zs 100 200",
    "ZREMRANGEBYSCORE zs 3 3",
    "ZADD zl 0 a 0 b",
    "ZREMRANGEBYLEX zl - +",
    "ZPOPMIN zs",
    "ZPOPMAX zs 0",
    "ZMPOP 2 nosuch zs MAX COUNT 1",
    "ZUNIONSTORE zu 1 zs",
    "ZINTERSTORE zu 2 zs nosuch",
    "ZDIFFSTORE zu 1 zs",
    "ZRANGESTORE zr zs 0 0",
    "ZRANGESTORE zr nosuch 0 0",
    "ZPOPMAX zs 10",
    "SETBIT bm 3 1",
    "SETBIT bm 3 1",
    "BITOP OR bm2 bm nosuch",
    "BITOP AND bm2 nosuch",
    "BITOP AND bm2 nosuch",
    "MULTI",
    "SET t1 1",
    "INCR t1",
    "HSET t2 f v",
    "EXEC",
    "MULTI",
    "SET t3 1",
    "INCR nosuch-hash-typed h",
    "EXEC",
    "EVAL \"redis.call('set', KEYS[1], 'v') redis.call('del', KEYS[1]) return 1\" 1 ev",
    "SELECT 3",
    "SET other-db 1",
    "SELECT 0",
    "FLUSHDB",
];

/// The list writes of the keyspace-notification comparison: every list command that writes,
/// each where it announces something and where it does not (a missing key, a pivot not found,
/// a count of 0, another type), the deletes of emptied lists, and the blocking forms when
/// they are served at once.
const LIST_WRITES: &[&str] = &[
    "LPUSH l a",
    "LPUSH l b c",
    "RPUSH l d e f",
    "LPUSHX nol x",
    "RPUSHX nol x",
    "LPUSHX l x",
    "RPUSHX l y z",
    "LPOP l",
    "RPOP l 2",
    "RPOP l 0",
    "LPOP nol",
    "LPOP nol 3",
    "LSET l 0 first",
    "LSET l -1 last",
    "LSET l 99 x",
    "LSET nol 0 x",
    "LINSERT l BEFORE first before",
    "LINSERT l AFTER last after",
    "LINSERT l BEFORE nosuch x",
    "LINSERT nol AFTER a x",
    "LREM l 0 nosuch",
    "LREM l 1 before",
    "LREM l -2 after",
    "LREM nol 0 x",
    "LTRIM l 0 -1",
    "LTRIM l 1 3",
    "LTRIM nol 0 1",
    "RPUSH gone a b",
    "LTRIM gone 5 10",
    "RPUSH gone2 a",
    "LTRIM gone2 1 0",
    "RPUSH lr x y x",
    "LREM lr 0 x",
    "LREM lr 0 y",
    "RPUSH src 1 2 3",
    "LMOVE src dst LEFT RIGHT",
    "LMOVE src dst RIGHT LEFT",
    "LMOVE src dst LEFT LEFT",
    "LMOVE src dst LEFT LEFT",
    "LMOVE nosuch dst LEFT LEFT",
    "RPOPLPUSH dst dst",
    "LMOVE dst dst LEFT RIGHT",
    "RPUSH one x",
    "RPOPLPUSH one one",
    "RPOPLPUSH one other",
    "RPOPLPUSH nosuch other",
    "LMPOP 2 nosuch dst LEFT",
    "LMPOP 2 nosuch dst RIGHT COUNT 10",
    "LMPOP 1 nosuch LEFT COUNT 2",
    "RPUSH q a b c",
    "BLPOP nosuch q 1",
    "BRPOP q nosuch 1",
    "BRPOP q 1",
    "RPUSH q2 a b c d",
    "BLMOVE q2 q3 RIGHT LEFT 1",
    "BRPOPLPUSH q2 q3 1",
    "BLMPOP 1 2 nosuch q2 LEFT COUNT 1",
    "BLMPOP 1 1 q2 RIGHT COUNT 5",
    "LPOP l 100",
    "SET str v",
    "LPUSH str x",
    "LMOVE q3 str LEFT LEFT",
    "RPOPLPUSH str q3",
    "RPUSH ex a b",
    "EXPIRE ex 100",
    "RENAME ex ex2",
    "DEL ex2",
    "MULTI",
    "RPUSH t a b",
    "LPOP t",
    "LMOVE t t2 LEFT RIGHT",
    "EXEC",
    "MULTI",
    "BLPOP nosuch 1",
    "BLMOVE nosuch t2 LEFT LEFT 1",
    "BRPOP t2 1",
    "EXEC",
    "EVAL \"redis.call('rpush', KEYS[1], 'a', 'b') redis.call('lpop', KEYS[1], 2) return 1\" 1 ev",
];

/// The stream writes of the keyspace-notification comparison: XADD (with a trim that cuts
/// and one that does not, NOMKSTREAM on a missing key, errors), XTRIM, XDEL (of missing IDs
/// too), XSETID, inside MULTI and a script, and on another type.
const STREAM_WRITES: &[&str] = &[
    "XADD s 1 a b",
    "XADD s 2 a b",
    "XADD s MAXLEN 1 3 a b",
    "XADD s MAXLEN ~ 1 4 a b",
    "XADD s 1 a b",
    "XADD s 0-0 a b",
    "XADD nosuch NOMKSTREAM * a b",
    "XTRIM s MAXLEN 0",
    "XTRIM s MAXLEN 0",
    "XTRIM nosuch MAXLEN 0",
    "XADD s 5 a b",
    "XADD s 6 a b",
    "XDEL s 5 99",
    "XDEL s 99",
    "XDEL nosuch 1",
    "XSETID s 10",
    "XSETID nosuch 10",
    "MULTI",
    "XADD m 1 a b",
    "XDEL m 1",
    "EXEC",
    "EVAL \"redis.call('xadd', KEYS[1], '1', 'a', 'b') redis.call('xtrim', KEYS[1], 'MAXLEN', '0') return 1\" 1 ev",
    "SET str x",
    "XADD str * a b",
    "RENAME s s2",
    "DEL s2",
];

/// After a FLUSHALL and `CONFIG SET notify-keyspace-events classes`: a listener subscribed to
/// every keyspace and keyevent channel (and to `end`, which closes a run), and a writer.
async fn listen_to_key_events(addr: &str, classes: &str) -> (RawClient, RawClient) {
    let mut listener = RawClient::try_connect(addr).await.expect("connect");
    let mut writer = RawClient::try_connect(addr).await.expect("connect");
    writer.run("FLUSHALL").await;
    let set = writer
        .cmd(&[
            b"CONFIG",
            b"SET",
            b"notify-keyspace-events",
            classes.as_bytes(),
        ])
        .await;
    assert_eq!(set, b"+OK\r\n", "{}", show(&set));
    listener
        .send(&encode(&[b"PSUBSCRIBE", b"__key*__:*"]))
        .await;
    listener.send(&encode(&[b"SUBSCRIBE", b"end"])).await;
    listener.replies(2).await;
    (listener, writer)
}

/// Every event `writes` cause (run in order after a FLUSHALL), as a subscriber to every
/// keyspace and keyevent channel receives them.
async fn keyspace_events_of(addr: &str, classes: &str, writes: &[&str]) -> Vec<u8> {
    let (mut listener, mut writer) = listen_to_key_events(addr, classes).await;
    for line in writes {
        let args = split(line);
        let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        writer.cmd(&argv).await;
    }
    writer.run("PUBLISH end end").await;
    let events = until_end(&mut listener).await;
    writer
        .cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""])
        .await;
    events
}

/// The frames of `bytes`, one per line, for a readable diff.
fn frames(bytes: &[u8]) -> Vec<String> {
    split_frames(bytes).iter().map(|f| show(f)).collect()
}

/// Runs `writes` on Redis and on Sluice under each of `classes` and panics where their events
/// differ; under `KEA` Redis must have announced at least `at_least` frames. Returns Redis's
/// events per class.
async fn compare_key_events(
    redis: &OwnRedis,
    sluice: &TestServer,
    classes: &[&'static str],
    writes: &[&str],
    at_least: usize,
) -> Vec<(&'static str, Vec<String>)> {
    let sluice_addr = format!("127.0.0.1:{}", sluice.port());
    let mut out = Vec::new();
    for &classes in classes {
        let from_redis = frames(&keyspace_events_of(&redis.addr, classes, writes).await);
        let from_sluice = frames(&keyspace_events_of(&sluice_addr, classes, writes).await);
        assert!(
            classes != "KEA" || from_redis.len() > at_least,
            "the writes cause events: {from_redis:?}"
        );
        assert_same_events(classes, &from_redis, &from_sluice);
        out.push((classes, from_redis));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_match_redis_for_every_write_command() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start().await;
    let classes = ["KEA", "K$", "Eg", "Kh", "Ez", "KEgx"];
    compare_key_events(&redis, &sluice, &classes, WRITES, 100).await;
    sluice.stop().await;
}

/// Panics with a line-by-line comparison when the two servers' events differ.
fn assert_same_events(classes: &str, from_redis: &[String], from_sluice: &[String]) {
    if from_redis != from_sluice {
        let width = from_redis.len().max(from_sluice.len());
        let mut report = Vec::new();
        for i in 0..width {
            let r = from_redis.get(i).map_or("-", String::as_str);
            let s = from_sluice.get(i).map_or("-", String::as_str);
            let mark = if r == s { " " } else { "≠" };
            report.push(format!("{mark} {i:3} redis {r}\n        sluice {s}"));
        }
        panic!(
            "notify-keyspace-events {classes}: events differ\n{}",
            report.join("\n")
        );
    }
}

/// The list commands announce what Redis 7.0 announces, in its order: one push or pop event
/// per command whatever the count, `lset`, `linsert` (not when the pivot is missing), `lrem`,
/// `ltrim` for any existing list (then `del` when it emptied the list), LMOVE's push on the
/// destination before the pop on the source (then `del` for an emptied source), nothing for
/// a missing key or another type, and the blocking forms served at once as their plain forms.
/// Compared with every class, the list class alone (keyspace and keyevent channels), and the
/// generic class alone (the `del`s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_match_redis_for_list_commands() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start().await;
    let classes = ["KEA", "El", "Kl", "Eg"];
    for (classes, from_redis) in
        compare_key_events(&redis, &sluice, &classes, LIST_WRITES, 100).await
    {
        assert!(
            classes != "El" || from_redis.iter().all(|f| !f.contains("__keyspace@")),
            "El: keyevent channels only: {from_redis:?}"
        );
    }
    sluice.stop().await;
}

/// The stream commands announce what Redis 7.0 announces: `xadd`, then `xtrim` when its
/// trim cut something, `xtrim` and `xdel` only when they removed entries, `xsetid`, nothing for
/// a missing key, an error or another type. Compared with every class, the stream class alone
/// and the generic class alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_match_redis_for_stream_commands() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start().await;
    let classes = ["KEA", "Et", "Kt", "Eg"];
    compare_key_events(&redis, &sluice, &classes, STREAM_WRITES, 30).await;
    sluice.stop().await;
}

/// Blocking list pops woken by another connection's write: the blocking command, then the
/// writes (each awaited) that serve it.
const WOKEN_POPS: &[(&str, &[&str])] = &[
    ("BLPOP q 0", &["RPUSH q a"]),
    ("BRPOP nosuch q 0", &["RPUSH q a b"]),
    ("BLMOVE s d RIGHT LEFT 0", &["LPUSH s x y"]),
    ("BLMOVE s2 d LEFT RIGHT 0", &["RPUSH s2 only"]),
    ("BRPOPLPUSH e e 0", &["RPUSH e z"]),
    ("BLMPOP 0 2 m1 m2 LEFT COUNT 5", &["RPUSH m2 1 2"]),
    ("BLPOP w 0", &["MULTI", "RPUSH w a", "LPUSH w b", "EXEC"]),
    (
        "BRPOP v 0",
        &["EVAL \"redis.call('rpush', KEYS[1], 'a', 'b') return 1\" 1 v"],
    ),
];

/// The replies of [`WOKEN_POPS`]' blocked commands, and every event they and the writes that
/// served them cause.
async fn woken_pop_events(addr: &str, classes: &str) -> (Vec<String>, Vec<u8>) {
    let (mut listener, mut writer) = listen_to_key_events(addr, classes).await;
    let mut blocked = RawClient::try_connect(addr).await.expect("connect");
    let mut replies = Vec::new();
    for (blocking, writes) in WOKEN_POPS {
        let args = split(blocking);
        let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        blocked.send(&encode(&argv)).await;
        writer.until_blocked(1).await;
        for line in *writes {
            let args = split(line);
            let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            writer.cmd(&argv).await;
        }
        replies.push(format!("{blocking}: {}", show(&blocked.reply().await)));
        writer.until_blocked(0).await;
    }
    writer.run("PUBLISH end end").await;
    let events = until_end(&mut listener).await;
    writer
        .cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""])
        .await;
    (replies, events)
}

/// A blocked list pop woken by a write announces what Redis 7.0 announces, after the write's
/// own events: the pop (for BLMOVE the push on the destination first), then `del` if it
/// emptied the list; the write may be a plain push, an EXEC or a script.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyspace_notifications_match_redis_for_woken_list_pops() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start().await;
    let sluice_addr = format!("127.0.0.1:{}", sluice.port());
    for classes in ["KEA", "El"] {
        let (redis_replies, from_redis) = woken_pop_events(&redis.addr, classes).await;
        let (sluice_replies, from_sluice) = woken_pop_events(&sluice_addr, classes).await;
        assert_eq!(sluice_replies, redis_replies, "the served replies");
        assert_same_events(classes, &frames(&from_redis), &frames(&from_sluice));
    }
    sluice.stop().await;
}

/// Reads frames until one contains `needle`, for at most `limit`; the frames read.
async fn wait_for_frame(c: &mut RawClient, needle: &[u8], limit: Duration) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + limit;
    let mut seen = Vec::new();
    loop {
        assert!(
            Instant::now() < deadline,
            "no frame with {} within {limit:?}; saw {:?}",
            show(needle),
            seen.iter().map(|f: &Vec<u8>| show(f)).collect::<Vec<_>>()
        );
        let frame = c.reply().await;
        let found = frame.windows(needle.len()).any(|w| w == needle);
        seen.push(frame);
        if found {
            return seen;
        }
    }
}

/// Counts the frames naming `needle` that arrive before a message on channel `end`.
async fn count_until_end(listener: &mut RawClient, writer: &mut RawClient, needle: &[u8]) -> usize {
    writer.run("PUBLISH end end").await;
    let rest = until_end(listener).await;
    frames(&rest)
        .iter()
        .filter(|f| f.contains(&show(needle)))
        .count()
}

/// A key that expires is signalled once, `expired` on `__keyevent@0__:expired`, whether a
/// read finds it expired, the reaper deletes it, or (write-back) the flush stores the expired
/// write as a delete.
async fn expiry_is_signalled_once(policy: Policy) {
    let mut config = FileConfig::default();
    let mut builtin = KeyspaceConfig::builtin(policy);
    builtin.flush_interval = Duration::from_millis(50);
    config.engine.keyspaces = vec![builtin];
    let server = TestServer::start_config(config).await;
    let mut listener = server.client().await;
    let mut writer = server.client().await;
    writer.run("CONFIG SET notify-keyspace-events Ex").await;
    listener
        .send(&encode(&[b"SUBSCRIBE", b"__keyevent@0__:expired", b"end"]))
        .await;
    listener.replies(2).await;

    // Read after it expired.
    assert_eq!(writer.run("SET read-me v PX 50").await, b"+OK\r\n");
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(writer.run("GET read-me").await, b"$-1\r\n");
    let seen = wait_for_frame(&mut listener, b"read-me", Duration::from_secs(5)).await;
    assert_eq!(
        show(seen.last().unwrap()),
        show(b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$7\r\nread-me\r\n")
    );
    // Read again, and left to the reaper and the flusher: no second event.
    assert_eq!(writer.run("GET read-me").await, b"$-1\r\n");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count_until_end(&mut listener, &mut writer, b"read-me").await,
        0
    );

    // Never read: the reaper (every second) or the flush deletes it and signals it.
    assert_eq!(writer.run("SET left-alone v PX 50").await, b"+OK\r\n");
    wait_for_frame(&mut listener, b"left-alone", Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count_until_end(&mut listener, &mut writer, b"left-alone").await,
        0
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_signalled_once_write_through() {
    expiry_is_signalled_once(Policy::WriteThrough).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_is_signalled_once_write_back() {
    expiry_is_signalled_once(Policy::WriteBack).await;
}

/// A cache too small for what is written drops copies for room, each signalled `evicted`;
/// the keys themselves stay readable (from the database).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evicting_a_cached_copy_is_signalled() {
    let mut config = FileConfig::default();
    config.engine.cache.capacity = 64 * 1024;
    let server = TestServer::start_config(config).await;
    let mut listener = server.client().await;
    let mut writer = server.client().await;
    writer.run("CONFIG SET notify-keyspace-events KEe").await;
    listener
        .send(&encode(&[b"SUBSCRIBE", b"__keyevent@0__:evicted", b"end"]))
        .await;
    listener.replies(2).await;
    let value = vec![b'v'; 1024];
    for i in 0..200 {
        let key = format!("big:{i}");
        writer.cmd(&[b"SET", key.as_bytes(), &value]).await;
    }
    let seen = wait_for_frame(&mut listener, b"big:", Duration::from_secs(5)).await;
    assert!(
        seen.last()
            .unwrap()
            .starts_with(b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:evicted\r\n$"),
        "{}",
        show(seen.last().unwrap())
    );
    let evicted = 1 + count_until_end(&mut listener, &mut writer, b"big:").await;
    assert!(
        (100..200).contains(&evicted),
        "200 KiB written into a 64 KiB cache: most copies evicted, got {evicted}"
    );
    // Evicted copies only: every key still reads its value.
    let got = writer.run("GET big:0").await;
    assert!(
        got.ends_with(&[&value[..], b"\r\n"].concat()),
        "{}",
        show(&got)
    );
    server.stop().await;
}

/// A row another program changes behind Sluice's back (seen by change capture) is
/// signalled `changed` on its key, once the cache holds the new value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_changed_in_the_database_is_signalled() {
    let mut config = FileConfig::default();
    let mut price = KeyspaceConfig::builtin(Policy::WriteThrough);
    price.name = "prices".into();
    price.keys = "product:{id}:price".into();
    price.table = Some("products".into());
    price.key_column = Some("id".into());
    price.value_column = Some("price".into());
    config.engine.keyspaces = vec![price, KeyspaceConfig::builtin(Policy::WriteThrough)];
    config.engine.changes.enabled = true;
    let server = TestServer::start_config_with_sql(
        config,
        "CREATE TABLE products (id INTEGER PRIMARY KEY, price TEXT); \
         INSERT INTO products VALUES (1, '10');",
    )
    .await;
    let mut listener = server.client().await;
    let mut writer = server.client().await;
    writer.run("CONFIG SET notify-keyspace-events K$").await;
    listener
        .send(&encode(&[b"SUBSCRIBE", b"__keyspace@0__:product:1:price"]))
        .await;
    listener.reply().await;
    // Cached first, so the event must come after the copy was replaced.
    assert_eq!(writer.run("GET product:1:price").await, b"$2\r\n10\r\n");
    server
        .sqlite()
        .execute("UPDATE products SET price = '12' WHERE id = 1", [])
        .expect("outside update");
    let seen = wait_for_frame(&mut listener, b"changed", Duration::from_secs(10)).await;
    assert_eq!(
        show(seen.last().unwrap()),
        show(b"*3\r\n$7\r\nmessage\r\n$30\r\n__keyspace@0__:product:1:price\r\n$7\r\nchanged\r\n")
    );
    assert_eq!(writer.run("GET product:1:price").await, b"$2\r\n12\r\n");
    server.stop().await;
}

/// CONFIG SET and GET of `client-output-buffer-limit` answer as Redis 7.0 (sizes with units,
/// classes in any case, every refusal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_output_buffer_limit_is_set_as_in_redis() {
    let Some(redis) = OwnRedis::start().await else {
        println!("skipped: no redis-server binary to start");
        return;
    };
    let sluice = TestServer::start().await;
    let sluice_addr = format!("127.0.0.1:{}", sluice.port());
    let steps: &[Step] = &[
        (0, "CONFIG GET client-output-buffer-limit", 1),
        (0, "CONFIG SET client-output-buffer-limit \"pubsub 1mb 512kb 10\"", 1),
        (0, "CONFIG GET client-output-buffer-limit", 1),
        (0, "CONFIG SET client-output-buffer-limit \"PUBSUB 2MB 8k 0 normal 1 2 3\"", 1),
        (0, "CONFIG GET client-output-buffer-limit", 1),
        (0, "CONFIG SET client-output-buffer-limit \"replica 1gb 1g 7 slave 5 6 7\"", 1),
        (0, "CONFIG GET client-output-buffer-limit", 1),
        (0, "CONFIG SET client-output-buffer-limit \"pubsub 1 2\"", 1),
        (0, "CONFIG SET client-output-buffer-limit \"master 1 2 3\"", 1),
        (0, "CONFIG SET client-output-buffer-limit \"pubsub 1x 2 3\"", 1),
        (0, "CONFIG SET client-output-buffer-limit \"pubsub 1 2 -3\"", 1),
        (0, "CONFIG SET client-output-buffer-limit \"\"", 1),
        (0, "CONFIG GET client-output-buffer-limit", 1),
        (
            0,
            "CONFIG SET client-output-buffer-limit \"normal 0 0 0 slave 268435456 67108864 60 pubsub 33554432 8388608 60\"",
            1,
        ),
        (0, "CONFIG GET client-output-buffer-limit", 1),
    ];
    let from_redis = run_steps(&redis.addr, steps).await;
    let from_sluice = run_steps(&sluice_addr, steps).await;
    for (((_, command, _), r), s) in steps.iter().zip(from_redis).zip(from_sluice) {
        assert_eq!(show(&s), show(&r), "{command}");
    }
    sluice.stop().await;
}

/// A subscriber that reads nothing is closed once its unread messages pass the pub/sub limit
/// (here set to 4 MiB by CONFIG SET; Redis's 32 MiB by default); a subscriber that reads
/// keeps every message, and the others are not held back. The publisher lets the reader fall
/// at most 16 messages (1 MiB) behind, so a busy machine cannot push the reader past the limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_closed_at_the_output_limit() {
    let server = TestServer::start().await;
    let mut stalled = server.client().await;
    let mut reader = server.client().await;
    let mut publisher = server.client().await;
    let set = publisher
        .cmd(&[
            b"CONFIG",
            b"SET",
            b"client-output-buffer-limit",
            b"pubsub 4mb 0 0",
        ])
        .await;
    assert_eq!(set, b"+OK\r\n");
    stalled.send(&encode(&[b"SUBSCRIBE", b"flood"])).await;
    stalled.reply().await;
    reader.send(&encode(&[b"SUBSCRIBE", b"flood"])).await;
    reader.reply().await;
    const MESSAGES: usize = 400;
    let payload = vec![b'x'; 64 * 1024];
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reading = tokio::spawn({
        let read = read.clone();
        async move {
            let mut got = 0;
            while got < MESSAGES {
                let frame = reader.reply().await;
                assert!(frame.ends_with(b"xxx\r\n"), "{}", show(&frame[..40]));
                got += 1;
                read.store(got, std::sync::atomic::Ordering::Release);
            }
            (got, reader)
        }
    });
    // 400 × 64 KiB = 25 MiB: past what the socket buffers hold and the 4 MiB limit.
    let mut delivered = Vec::new();
    for sent in 0..MESSAGES {
        while sent >= read.load(std::sync::atomic::Ordering::Acquire) + 16 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let reply = publisher.cmd(&[b"PUBLISH", b"flood", &payload]).await;
        delivered.push(reply);
    }
    let (got, _still_subscribed) = reading.await.expect("reader");
    assert_eq!(got, MESSAGES, "the reading subscriber got every message");
    assert_eq!(delivered[0], b":2\r\n");
    assert_eq!(
        delivered.last().unwrap(),
        b":1\r\n",
        "once the stalled subscriber is closed, only the reader receives"
    );
    let (_, closed) = stalled.read_until_close(Duration::from_secs(5)).await;
    assert!(closed, "the stalled subscriber was disconnected");
    assert_eq!(
        publisher.run("PUBSUB NUMSUB flood").await,
        b"*2\r\n$5\r\nflood\r\n:1\r\n"
    );
    server.stop().await;
}

/// CLIENT LIST shows a subscriber's subscriptions and its `P` flag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_list_shows_subscriptions() {
    let server = TestServer::start().await;
    let mut c = server.client().await;
    c.send(&encode(&[b"HELLO", b"3"])).await;
    c.reply().await;
    c.send(&encode(&[b"SUBSCRIBE", b"a", b"b"])).await;
    c.replies(2).await;
    c.send(&encode(&[b"PSUBSCRIBE", b"p*"])).await;
    c.reply().await;
    let list = String::from_utf8_lossy(&c.run("CLIENT INFO").await).into_owned();
    assert!(list.contains(" flags=P "), "{list}");
    assert!(list.contains(" sub=2 psub=1 ssub=0 "), "{list}");
    server.stop().await;
}

/// redis-py: `pubsub()` subscribe / psubscribe, `get_message`, `listen` in a thread, and a
/// keyspace notification for a write made through another client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_py_pubsub_listener() {
    if !python_with_redis() {
        return;
    }
    let server = TestServer::start().await;
    let script = clients_dir().join("redis_py_pubsub.py");
    let port = server.port().to_string();
    run_client("python3", &[script.to_str().unwrap(), "--port", &port]).await;
    server.stop().await;
}

/// ioredis: a connection in subscriber mode receives `message` and `pmessage` events and
/// leaves subscriber mode after unsubscribing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ioredis_subscriber_mode() {
    if !node_with_ioredis() {
        return;
    }
    let server = TestServer::start().await;
    let script = clients_dir().join("node/pubsub.js");
    let port = server.port().to_string();
    run_client("node", &[script.to_str().unwrap(), &port]).await;
    server.stop().await;
}

/// Two nodes sharing a NATS server (`[cluster]`, `SLUICE_TEST_NATS_URL`), each with its own
/// journal stream subject and the test's own pub/sub subject.
async fn two_cluster_nodes(url: &str) -> (TestServer, TestServer, String) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let tag = format!("{}x{nanos}", std::process::id());
    let stream = format!("SLUICE_PUBSUB_{tag}");
    let node = |name: &str| {
        let mut cluster = sluice::config::ClusterConfig::new(name, vec![url.to_string()]);
        cluster.journal_stream = stream.clone();
        cluster.journal_subject = format!("sluicepubsub{tag}");
        cluster.pubsub_subject_setting = Some(format!("sluicepubsub{tag}_relay"));
        cluster.node_lease = Duration::from_secs(5);
        let mut config = FileConfig::default();
        config.engine.cluster = Some(cluster);
        config
    };
    let a = TestServer::start_config(node("a")).await;
    let b = TestServer::start_config(node("b")).await;
    (a, b, stream)
}

/// The NATS server's `max_payload`, and the stream deleted (with its `_NODES` companion).
async fn nats_max_payload_and_cleanup(url: &str, stream: Option<&str>) -> usize {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    if let Some(stream) = stream {
        let js = async_nats::jetstream::new(client.clone());
        let _ = js.delete_stream(stream).await;
        let _ = js.delete_stream(format!("{stream}_NODES")).await;
    }
    client.server_info().max_payload
}

/// The contract of `[cluster] relay_pubsub` (on by default):
/// - a PUBLISH or SPUBLISH on node A reaches the channel, pattern and shard-channel
///   subscribers of node B, byte for byte as A's own subscribers get it, in the order A's
///   client published; A's subscribers get each message once (NATS does not echo it back);
/// - PUBLISH answers the subscribers reached on its own node, as in Redis Cluster;
/// - a command's keyspace notification reaches B's subscribers; an event each node observes
///   for itself (here an expiry found by a read) stays on its node;
/// - a message NATS cannot carry (over its `max_payload`) reaches A's subscribers only, is
///   counted in INFO, and the messages after it still travel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_reach_the_subscribers_of_every_node() {
    let Ok(url) = std::env::var("SLUICE_TEST_NATS_URL") else {
        eprintln!("skipped: SLUICE_TEST_NATS_URL is not set (a nats-server with -js)");
        return;
    };
    let max_payload = nats_max_payload_and_cleanup(&url, None).await;
    let (a, b, stream) = two_cluster_nodes(&url).await;
    let mut sub_a = RawClient::connect(a.addr).await;
    let mut sub_b = RawClient::connect(b.addr).await;
    let mut publisher = RawClient::connect(a.addr).await;
    sub_a.send(&encode(&[b"SUBSCRIBE", b"news"])).await;
    sub_a.reply().await;
    sub_b.send(&encode(&[b"SUBSCRIBE", b"news", b"big"])).await;
    sub_b.replies(2).await;
    sub_b
        .send(&encode(&[b"PSUBSCRIBE", b"n*", b"__key*"]))
        .await;
    sub_b.replies(2).await;
    sub_b.send(&encode(&[b"SSUBSCRIBE", b"orders"])).await;
    sub_b.reply().await;

    // In order, binary-safe; answered with this node's subscribers only.
    let mut pipeline = Vec::new();
    for i in 0..300u32 {
        let payload = [&i.to_be_bytes()[..], b"\r\n\x00\xff"].concat();
        pipeline.extend(encode(&[b"PUBLISH", b"news", &payload]));
    }
    publisher.send(&pipeline).await;
    for i in 0..300u32 {
        assert_eq!(publisher.reply().await, b":1\r\n", "PUBLISH #{i}");
    }
    for i in 0..300u32 {
        let payload = [&i.to_be_bytes()[..], b"\r\n\x00\xff"].concat();
        let message = [
            &b"*3\r\n$7\r\nmessage\r\n$4\r\nnews\r\n$8\r\n"[..],
            &payload,
            b"\r\n",
        ]
        .concat();
        let pmessage = [
            &b"*4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n$8\r\n"[..],
            &payload,
            b"\r\n",
        ]
        .concat();
        assert_eq!(
            show(&sub_a.reply().await),
            show(&message),
            "A's message #{i}"
        );
        assert_eq!(
            show(&sub_b.reply().await),
            show(&message),
            "B's message #{i}"
        );
        assert_eq!(
            show(&sub_b.reply().await),
            show(&pmessage),
            "B's pmessage #{i}"
        );
    }

    assert_eq!(publisher.run("SPUBLISH orders o1").await, b":0\r\n");
    assert_eq!(
        show(&sub_b.reply().await),
        show(b"*3\r\n$8\r\nsmessage\r\n$6\r\norders\r\n$2\r\no1\r\n")
    );

    // A command's notification travels; an expiry A finds by itself (by a read, the reaper
    // or a flush, whichever comes first) does not.
    let mut watcher_a = RawClient::connect(a.addr).await;
    watcher_a
        .send(&encode(&[b"SUBSCRIBE", b"__keyevent@0__:expired"]))
        .await;
    watcher_a.reply().await;
    assert_eq!(
        publisher.run("CONFIG SET notify-keyspace-events KEA").await,
        b"+OK\r\n"
    );
    assert_eq!(publisher.run("SET brief v PX 20").await, b"+OK\r\n");
    assert_eq!(
        show(&sub_b.replies(4).await),
        show(
            b"*4\r\n$8\r\npmessage\r\n$6\r\n__key*\r\n$20\r\n__keyspace@0__:brief\r\n$3\r\nset\r\n\
              *4\r\n$8\r\npmessage\r\n$6\r\n__key*\r\n$18\r\n__keyevent@0__:set\r\n$5\r\nbrief\r\n\
              *4\r\n$8\r\npmessage\r\n$6\r\n__key*\r\n$20\r\n__keyspace@0__:brief\r\n$6\r\nexpire\r\n\
              *4\r\n$8\r\npmessage\r\n$6\r\n__key*\r\n$21\r\n__keyevent@0__:expire\r\n$5\r\nbrief\r\n"
        )
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(publisher.run("GET brief").await, b"$-1\r\n");
    assert_eq!(
        show(&watcher_a.reply().await),
        show(b"*3\r\n$7\r\nmessage\r\n$22\r\n__keyevent@0__:expired\r\n$5\r\nbrief\r\n")
    );
    assert_eq!(
        publisher
            .cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b""])
            .await,
        b"+OK\r\n"
    );

    // Too large for NATS: A's subscribers only, counted; the next message still travels.
    let huge = vec![b'x'; max_payload + 1];
    assert_eq!(publisher.cmd(&[b"PUBLISH", b"big", &huge]).await, b":0\r\n");
    assert_eq!(publisher.run("PUBLISH big small").await, b":0\r\n");
    assert_eq!(
        show(&sub_b.reply().await),
        show(b"*3\r\n$7\r\nmessage\r\n$3\r\nbig\r\n$5\r\nsmall\r\n"),
        "the message after the dropped one"
    );
    let (rest, closed) = sub_b.read_until_close(Duration::from_millis(300)).await;
    assert!(!closed && rest.is_empty(), "B also got {}", show(&rest));

    // 300 PUBLISH, 1 SPUBLISH, 4 notifications (set, expire), the small one; the writer task counts a
    // message once NATS's client took it, which may trail B's delivery by a moment.
    let mut info_a = String::new();
    for _ in 0..100 {
        info_a = String::from_utf8_lossy(&publisher.run("INFO sluice").await).into_owned();
        if info_a.contains("pubsub_relay_sent:306\r\n") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let info_b =
        String::from_utf8_lossy(&RawClient::connect(b.addr).await.run("INFO sluice").await)
            .into_owned();
    assert!(info_a.contains("cluster_node:a\r\n"), "{info_a}");
    assert!(info_a.contains("pubsub_relay:on\r\n"), "{info_a}");
    assert!(info_a.contains("pubsub_relay_dropped:1\r\n"), "{info_a}");
    assert!(info_a.contains("pubsub_relay_sent:306\r\n"), "{info_a}");
    assert!(info_b.contains("pubsub_relay_received:306\r\n"), "{info_b}");
    assert!(info_b.contains("pubsub_relay_malformed:0\r\n"), "{info_b}");

    a.stop().await;
    b.stop().await;
    nats_max_payload_and_cleanup(&url, Some(&stream)).await;
}
