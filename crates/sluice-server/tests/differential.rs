//! Differential test: the same command sequences go to Sluice and to a real redis-server, and
//! the raw reply bytes must be identical, error strings included.
//!
//! The oracle is `SLUICE_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`); if nothing answers
//! there the test prints `skipped: no redis-server at URL` and passes. The oracle may be
//! shared: every sequence runs in database 9, which is flushed (on both servers) before each
//! sequence, and commands that would touch other databases or stop the server are refused by
//! [`forbidden`] before they are sent.
//!
//! # The corpus
//!
//! [`CORPUS`] is a list of cases; each case is a list of commands run in order on a fresh
//! connection to each server. A command is written as words separated by spaces; a word in
//! double quotes may contain spaces and the escapes `\" \\ \r \n \t \xHH`. A command prefixed
//! with `?` is sent to both but its reply is not compared (it holds a connection id). KEYS and
//! SCAN replies are compared with their keys sorted, as their order is unspecified.
//!
//! Replies that depend on time are made deterministic with absolute expiry times far in the
//! future (4102444800 = 2100-01-01) or TTLs read back within the same second. The clock
//! readings of stream consumer groups cannot be, and are replaced by `:0` on both sides before
//! comparing ([`without_stream_times`]): each entry's idle time in XPENDING's extended form,
//! `idle` in XINFO CONSUMERS, and in XINFO STREAM FULL each consumer's `seen-time` and the
//! delivery time of each PEL entry (the group's and the consumer's), in RESP2 and RESP3. The
//! corpus keeps every other stream reply independent of time: explicit IDs, a min-idle-time
//! of 0 or far beyond any real idle time, XCLAIM TIME/IDLE far in the past (or the future,
//! which Redis takes as now).
//!
//! # Where Sluice differs from Redis on purpose (not compared)
//!
//! Those with a fixed reply are listed in [`INTENDED_DIFFERENCES`] and checked against Sluice
//! alone.
//!
//! - SHUTDOWN and FLUSHALL: never sent to the shared oracle (Sluice's are tested in
//!   `protocol.rs` and `restart.rs`).
//! - SLUICE.*: Sluice's own commands.
//! - INFO (except unknown sections), CLIENT LIST/INFO/ID, HELLO's `id`, TIME, COMMAND (bare),
//!   COMMAND COUNT/LIST/INFO/DOCS of real commands: server-specific contents. Sluice serves a
//!   subset of the commands and publishes no key specs, tips or argument docs. The head of
//!   each command's COMMAND INFO (name, arity, flags, key positions, ACL categories) is
//!   compared by [`command_info_flags_keys_and_categories_match_redis`].
//! - CLIENT KILL and CLIENT PAUSE: they would close or hold back the shared oracle's other
//!   clients; `tests/admin.rs` compares them with a redis-server of its own.
//! - CLIENT SETINFO: a Redis 7.2 command that Sluice accepts (clients send it on connect);
//!   Redis 7.0 answers "unknown subcommand".
//! - CONFIG GET of parameters whose value is Sluice's own (`port`, `bind`, `dir`, TLS files,
//!   `requirepass`, which Sluice never shows) or the oracle's own (`daemonize`, `logfile`,
//!   `pidfile` as its packaging set them), and Sluice's own `sluice-*` parameters (listed only by
//!   names and globs starting with `sluice`; `tests/admin.rs`). CONFIG GET replies are compared with their pairs
//!   sorted: Redis lists them in its dictionary's (seeded) order. CONFIG SET of a parameter
//!   Redis could change and Sluice cannot is refused in Redis's error shape; Redis would apply
//!   it. CONFIG SET calls that succeed are compared in `tests/admin.rs` against a
//!   redis-server the test starts itself, never against the shared oracle.
//! - SCAN with a non-zero cursor or a partial page: cursors are opaque and differ.
//! - RANDOMKEY with more than one key.
//! - A multibulk count above `proto-max-multibulk-len` (1048576 by default) is refused with
//!   "invalid multibulk length"; Redis 7.0 accepts counts up to 2^31-1.
//! - AUTH and the other commands Sluice does not serve answer "unknown command".
//! - HSCAN answers a whole hash in one page with cursor 0, as Redis does for a small hash.
//! - A hash keeps its fields in insertion order; Redis does too until a value passes 64 bytes or
//!   the hash 128 fields (`hash-max-listpack-*`), after which its order is unspecified. The
//!   corpus reads back only small hashes in order.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{reply_len, show, split, RawClient, TestServer};
use sluice::Durability;
use sluice_server::frontend::cmd::commands;

/// The database every sequence runs in, on both servers.
const DB: &str = "9";

/// Command sequences, each run on fresh connections after FLUSHDB.
const CORPUS: &[(&str, &[&str])] = &[
    // ---------------------------------------------------------------- COMMAND GETKEYS
    (
        "command getkeys",
        &[
            "COMMAND GETKEYS",
            "COMMAND GETKEYS nosuch",
            "COMMAND GETKEYS nosuch x",
            "COMMAND GETKEYS get",
            "COMMAND GETKEYS get k",
            "COMMAND GETKEYS GET k",
            "COMMAND GETKEYS get k x",
            "COMMAND GETKEYS mset a 1 b 2",
            "COMMAND GETKEYS mset a 1 b",
            "COMMAND GETKEYS mset a",
            "COMMAND GETKEYS ping x",
            "COMMAND GETKEYS eval x 2 k1 k2 a",
            "COMMAND GETKEYS eval x 3 k1",
            "COMMAND GETKEYS eval x -1",
            "COMMAND GETKEYS eval x 0",
            "COMMAND GETKEYS eval x abc k",
            "COMMAND GETKEYS eval x 99999999999999999999 k",
            "COMMAND GETKEYS evalsha x 1 k",
            "COMMAND GETKEYS eval_ro x 1 k",
            "COMMAND GETKEYS client list",
            "COMMAND GETKEYS client nosuch",
            "COMMAND GETKEYS config get x",
            "COMMAND GETKEYS memory usage k",
            "COMMAND GETKEYS rename a b",
            "COMMAND GETKEYS del a b c",
            "COMMAND GETKEYS hset h f v",
            "COMMAND GETKEYS hmget h f g",
            "COMMAND GETKEYS exec x",
        ],
    ),
    // ---------------------------------------------------------------- MEMORY
    (
        "memory usage",
        &[
            "MEMORY USAGE nokey",
            "SET k v",
            "MEMORY USAGE k",
            "MEMORY USAGE k SAMPLES 0",
            "MEMORY USAGE k samples 3 SAMPLES 1",
            "SET n 12345",
            "MEMORY USAGE n",
            "SET n -9223372036854775808",
            "MEMORY USAGE n",
            "SET n 0123",
            "MEMORY USAGE n",
            "SET e \"\"",
            "MEMORY USAGE e",
            "SET s zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
            "MEMORY USAGE s",
            "SET s yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
            "MEMORY USAGE s",
            "SET big xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
            "MEMORY USAGE big",
            "SET a_key_of_thirty_two_bytes_long v",
            "MEMORY USAGE a_key_of_thirty_two_bytes_long",
            "HSET h a b c d",
            "MEMORY USAGE h",
            "HSET h2 f 123 g -5000 x 99999999999 y yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy",
            "MEMORY USAGE h2",
            "MEMORY USAGE k samples",
            "MEMORY USAGE k samples x",
            "MEMORY USAGE k samples -1",
            "MEMORY USAGE k foo 1",
            "MEMORY USAGE nokey foo",
            "MEMORY HELP",
            "MEMORY FOO",
            "MEMORY PURGE",
        ],
    ),
    // ---------------------------------------------------------------- EVAL and SCRIPT
    (
        "eval basics",
        &[
            "EVAL \"return 1\" 0",
            "EVAL \"return {1,2,{3,'x'},nil,4}\" 0",
            "EVAL \"return redis.call('set',KEYS[1],ARGV[1])\" 1 k v",
            "EVAL \"return redis.call('get',KEYS[1])\" 1 k",
            "EVAL \"redis.call('incr',KEYS[1]); return redis.call('incrby',KEYS[1],ARGV[1])\" 1 n 10",
            "EVAL \"return redis.call('incr',KEYS[1])\" 1 k",
            "EVAL \"return redis.pcall('incr',KEYS[1])\" 1 k",
            "EVAL \"return redis.error_reply('MY bad')\" 0",
            "EVAL \"return redis.status_reply('FINE')\" 0",
            "EVAL \"return 3.99\" 0",
            "EVAL \"return true\" 0",
            "EVAL \"return false\" 0",
            "EVAL \"return KEYS[1] .. ARGV[2]\" 1 a b c",
            "EVAL \"return 1\" -1",
            "EVAL \"return 1\" 2 a",
            "EVAL \"return 1\" x",
            "EVAL \"retur 1\" 0",
            "EVAL \"error('boom')\" 0",
            "EVAL \"return redis.call('nosuch')\" 0",
            "EVAL \"return redis.call('get')\" 0",
            "EVAL \"return redis.call('multi')\" 0",
            "EVAL \"return redis.call('eval','return 1','0')\" 0",
            "EVAL \"return redis.call('hset',KEYS[1],'f','v')\" 1 h",
            "EVAL \"return redis.call('hgetall',KEYS[1])\" 1 h",
            "EVAL \"return redis.call('get',KEYS[1])\" 1 h",
            "EVAL \"return redis.pcall('get',KEYS[1])['err']\" 1 h",
            "EVAL_RO \"return redis.call('get',KEYS[1])\" 1 k",
            "EVAL_RO \"return redis.call('set',KEYS[1],'x')\" 1 k",
            "EVAL \"#!lua flags=no-writes\nreturn redis.call('set',KEYS[1],'x')\" 1 k",
            "EVAL \"#!lua flags=bogus\nreturn 1\" 0",
            "GET k",
        ],
    ),
    (
        "evalsha and script load",
        &[
            "SCRIPT LOAD \"return ARGV[1]\"",
            "EVALSHA 098e0f0d1448c0a81dafe820f66d460eb09263da 0 x",
            "EVALSHA nosuch 0",
            "EVALSHA 0123456789012345678901234567890123456789 0",
            "SCRIPT EXISTS 098e0f0d1448c0a81dafe820f66d460eb09263da 0123456789012345678901234567890123456789",
            "SCRIPT LOAD \"retur\"",
            "EVAL \"return 'loaded by eval'\" 0",
            "EVALSHA_RO 098e0f0d1448c0a81dafe820f66d460eb09263da 0 y",
            "SCRIPT HELP",
            "SCRIPT NOPE",
        ],
    ),
    (
        "eval in resp3 and in multi",
        &[
            "?HELLO 3",
            "EVAL \"redis.setresp(3); return redis.call('hgetall',KEYS[1])\" 1 h",
            "HSET h a 1",
            "EVAL \"redis.setresp(3); return redis.call('hgetall',KEYS[1])\" 1 h",
            "EVAL \"return redis.call('hgetall',KEYS[1])\" 1 h",
            "EVAL \"return {double=3.5}\" 0",
            "MULTI",
            "EVAL \"return redis.call('incr',KEYS[1])\" 1 c",
            "INCR c",
            "EVAL \"return redis.call('incr',KEYS[1])\" 1 c",
            "EXEC",
        ],
    ),
    // ---------------------------------------------------------------- MULTI / EXEC / WATCH
    (
        "multi exec basics",
        &[
            "MULTI",
            "SET a 1",
            "INCR a",
            "GET a",
            "INCR nope:x",
            "EXEC",
            "GET a",
            "EXEC",
            "DISCARD",
            "MULTI",
            "EXEC",
            "MULTI",
            "MULTI",
            "WATCH a",
            "PING",
            "ECHO hi",
            "DISCARD",
            "GET a",
            "MULTI",
            "SET a 9",
            "EXEC a1",
            "GET a",
            "EXEC",
            "WATCH a",
            "EXEC x",
            "SET a 10",
            "MULTI",
            "EXEC",
        ],
    ),
    (
        "multi errors inside exec run the rest",
        &[
            "SET s text",
            "MULTI",
            "INCR s",
            "SET t 1",
            "HSET s f v",
            "EXEC",
            "MULTI",
            "SET t 2",
            "GET",
            "EXEC",
            "GET t",
            "MULTI",
            "SET t 3",
            "NOSUCHCMD a b",
            "EXEC",
            "GET t",
            "MULTI",
            "CONFIG GETX",
            "EXEC",
        ],
    ),
    (
        "multi with select and unwatch queued",
        &[
            "MULTI",
            "SELECT 10",
            "SET in10 v",
            "SELECT 9",
            "GET in10",
            "UNWATCH",
            "EXEC",
            "MULTI",
            "SELECT 10",
            "DEL in10",
            "SELECT 9",
            "EXEC",
        ],
    ),
    (
        "watch aborts exec after a write",
        &[
            "SET w 1",
            "WATCH w",
            "SET w 2",
            "MULTI",
            "SET w 3",
            "EXEC",
            "GET w",
            "WATCH w",
            "MULTI",
            "SET w 4",
            "EXEC",
            "GET w",
            "WATCH nothere",
            "MULTI",
            "SET other 1",
            "EXEC",
            "WATCH w",
            "UNWATCH",
            "SET w 5",
            "MULTI",
            "GET w",
            "EXEC",
            "WATCH w",
            "DEL w",
            "MULTI",
            "EXEC",
            "WATCH gone",
            "SET gone 1",
            "DEL gone",
            "MULTI",
            "EXEC",
            "WATCH",
        ],
    ),
    (
        "watch sees flushdb",
        &[
            "SET f v",
            "WATCH f",
            "FLUSHDB",
            "MULTI",
            "PING",
            "EXEC",
            "WATCH nokey",
            "FLUSHDB",
            "MULTI",
            "PING",
            "EXEC",
        ],
    ),
    (
        "multi in resp3",
        &[
            "?HELLO 3",
            "MULTI",
            "SET a 1",
            "HSET h f v",
            "HGETALL h",
            "GET nope",
            "EXEC",
            "SET w 1",
            "WATCH w",
            "SET w 2",
            "MULTI",
            "GET w",
            "EXEC",
        ],
    ),
    (
        "reset and quit inside multi",
        &["SET a 1", "WATCH a", "MULTI", "SET a 2", "QUIT"],
    ),
    (
        "reset ends multi",
        &["MULTI", "SET a 2", "RESET"],
    ),
    (
        "mset and rename are atomic inside exec",
        &[
            "MULTI",
            "MSET a 1 b 2 c 3",
            "MSETNX a 9 d 4",
            "RENAME a z",
            "MGET a b c d z",
            "EXEC",
        ],
    ),
    // ---------------------------------------------------------------- hashes
    (
        "hset hget hgetall",
        &[
            "HSET h f1 v1 f2 v2",
            "HSET h f1 x f3 v3",
            "HGET h f1",
            "HGET h nope",
            "HGET nokey f",
            "HGETALL h",
            "HGETALL nokey",
            "HMSET h f4 v4 f1 y",
            "HMGET h f1 nope f4",
            "HMGET nokey a b",
            "HKEYS h",
            "HVALS h",
            "HKEYS nokey",
            "HLEN h",
            "HLEN nokey",
            "HEXISTS h f2",
            "HEXISTS h nope",
            "HSTRLEN h f1",
            "HSTRLEN h nope",
            "TYPE h",
            "HSET h f",
            "HSET h f v g",
            "HMSET h f v g",
            "HSET h \"\" \"\"",
            "HGET h \"\"",
            "HSET h f1 y",
            "HGETALL h",
        ],
    ),
    (
        "hdel and empty hashes",
        &[
            "HSET h a 1 b 2",
            "HDEL h a a nope",
            "HDEL h b",
            "EXISTS h",
            "HDEL h b",
            "HDEL nokey x",
            "TYPE h",
            "HSETNX h a 1",
            "HSETNX h a 2",
            "HGET h a",
        ],
    ),
    (
        "hash counters",
        &[
            "HINCRBY h n 5",
            "HINCRBY h n -7",
            "HINCRBY h n x",
            "HINCRBY h n 9223372036854775807",
            "HSET h s abc",
            "HINCRBY h s 1",
            "HINCRBYFLOAT h s 1",
            "HINCRBYFLOAT h f 0.1",
            "HINCRBYFLOAT h f 0.2",
            "HINCRBYFLOAT h f x",
            "HINCRBYFLOAT big f 1e308",
            "HINCRBYFLOAT big f 1e308",
            "HINCRBYFLOAT h f -inf",
            "HINCRBYFLOAT h f Infinity",
            "HINCRBYFLOAT h n 1.5",
            "HINCRBY h \" 1\" 1",
            "HSET h sp \" 1\"",
            "HINCRBY h sp 1",
            "HINCRBYFLOAT h inf inf",
            "HGETALL h",
        ],
    ),
    (
        "hash wrong types",
        &[
            "SET s v",
            "HSET s f v",
            "HGET s f",
            "HMGET s f",
            "HGETALL s",
            "HLEN s",
            "HDEL s f",
            "HINCRBY s f 1",
            "HSCAN s 0",
            "HRANDFIELD s",
            "HSET h f v",
            "GET h",
            "INCR h",
            "APPEND h x",
            "STRLEN h",
            "MGET h s",
            "SET h x",
            "TYPE h",
            "GET h",
        ],
    ),
    (
        "hash expiry and rename",
        &[
            "HSET h f v",
            "EXPIREAT h 4102444800",
            "HSET h g w",
            "TTL h",
            "PERSIST h",
            "TTL h",
            "RENAME h h2",
            "HGETALL h2",
            "TYPE h2",
            "HSET e f v",
            "EXPIRE e 0",
            "EXISTS e",
            "HGETALL h2",
        ],
    ),
    (
        "hrandfield",
        &[
            "HRANDFIELD nokey",
            "HRANDFIELD nokey 3",
            "HRANDFIELD nokey 3 WITHVALUES",
            "HSET one f v",
            "HRANDFIELD one",
            "HRANDFIELD one -3",
            "HRANDFIELD one -2 WITHVALUES",
            "HSET h a 1 b 2 c 3",
            "HRANDFIELD h 0",
            "HRANDFIELD h 3",
            "HRANDFIELD h 10 WITHVALUES",
            "HRANDFIELD h 1 foo",
            "HRANDFIELD h 1 WITHVALUES x",
            "HRANDFIELD h x",
            "HRANDFIELD h -9223372036854775808",
            "HRANDFIELD h -4611686018427387904 WITHVALUES",
            "HRANDFIELD h 4611686018427387904 withvalues",
            "?HELLO 3",
            "HRANDFIELD one -2 WITHVALUES",
            "HRANDFIELD h 5 WITHVALUES",
        ],
    ),
    // ---------------------------------------------------------------- LCS, COPY, OBJECT
    (
        "lcs",
        &[
            "MSET k1 ohmytext k2 mynewtext",
            "LCS k1 k2",
            "LCS k1 k2 LEN",
            "LCS k1 k2 IDX",
            "LCS k1 k2 IDX MINMATCHLEN 4",
            "LCS k1 k2 IDX MINMATCHLEN 4 WITHMATCHLEN",
            "LCS k1 k2 idx withmatchlen",
            "LCS k1 k2 IDX MINMATCHLEN -3",
            "LCS k1 k2 LEN IDX",
            "LCS k1 k2 MINMATCHLEN",
            "LCS k1 k2 MINMATCHLEN x",
            "LCS k1 k2 FOO",
            "LCS k1 nokey",
            "LCS nokey nokey2 IDX",
            "MSET a abcabcabc b cbacbacba",
            "LCS a b",
            "LCS a b IDX WITHMATCHLEN",
            "LCS b a IDX",
            "MSET x aaaa y aa",
            "LCS x y IDX WITHMATCHLEN",
            "HSET h f v",
            "LCS k1 h",
            "LCS h k1 IDX",
            "?HELLO 3",
            "LCS k1 k2 IDX MINMATCHLEN 4 WITHMATCHLEN",
        ],
    ),
    (
        "copy",
        &[
            "SET s v",
            "EXPIREAT s 4102444800",
            "COPY s d",
            "GET d",
            "TTL d",
            "COPY s d",
            "COPY s d REPLACE",
            "COPY nokey d",
            "COPY s s",
            "COPY s d DB",
            "COPY s d DB x",
            "COPY s d DB 16",
            "COPY s d DB -1",
            "COPY s d DB 99999999999",
            "COPY s d FOO",
            "COPY s d replace replace",
            "HSET h f v g w",
            "COPY h h2",
            "HGETALL h2",
            "SADD st a b 3",
            "COPY st st2",
            "SMEMBERS st2",
            "SADD st2 c",
            "SCARD st",
            "COPY st s REPLACE",
            "TYPE s",
            "SMEMBERS s",
        ],
    ),
    (
        "object",
        &[
            "SET n 123",
            "SET big 123456",
            "SET neg -5",
            "SET lead 0123",
            "SET short hello",
            "SET long 123456789012345678901234567890123456789012345",
            "SET edge 12345678901234567890123456789012345678901234",
            "OBJECT ENCODING n",
            "OBJECT ENCODING big",
            "OBJECT ENCODING lead",
            "OBJECT ENCODING short",
            "OBJECT ENCODING long",
            "OBJECT ENCODING edge",
            "OBJECT REFCOUNT n",
            "OBJECT REFCOUNT big",
            "OBJECT REFCOUNT neg",
            "OBJECT REFCOUNT short",
            "OBJECT IDLETIME short",
            "OBJECT FREQ short",
            "OBJECT FREQ nokey",
            "OBJECT ENCODING nokey",
            "OBJECT REFCOUNT nokey",
            "OBJECT IDLETIME nokey",
            "OBJECT HELP",
            "OBJECT help extra",
            "OBJECT ENCODING",
            "OBJECT nosuch k",
            "HSET h f v",
            "OBJECT ENCODING h",
            "SADD si 1 2 3",
            "OBJECT ENCODING si",
            "SADD ss a b",
            "OBJECT ENCODING ss",
        ],
    ),
    // ---------------------------------------------------------------- BITMAPS
    (
        "setbit and getbit",
        &[
            "SETBIT b 7 1",
            "GET b",
            "SETBIT b 7 1",
            "SETBIT b 7 0",
            "SETBIT b 100 1",
            "STRLEN b",
            "GETBIT b 100",
            "GETBIT b 99",
            "GETBIT b 100000",
            "GETBIT nokey 3",
            "SETBIT b -1 1",
            "SETBIT b x 1",
            "SETBIT b 1 2",
            "SETBIT b 1 x",
            "SETBIT b 4294967296 1",
            "SETBIT b x 2",
            "GETBIT b -1",
            "GETBIT b x",
            "SETBIT n 0 0",
            "GET n",
            "EXPIREAT b 4102444800",
            "SETBIT b 0 1",
            "TTL b",
            "HSET h f v",
            "SETBIT h 0 1",
            "GETBIT h 0",
        ],
    ),
    (
        "bitcount and bitpos",
        &[
            "SET s foobar",
            "BITCOUNT s",
            "BITCOUNT s 0 0",
            "BITCOUNT s 1 1",
            "BITCOUNT s 1 -2",
            "BITCOUNT s -2 -1",
            "BITCOUNT s -1 -2",
            "BITCOUNT s 5 30",
            "BITCOUNT s 10 5",
            "BITCOUNT s 5 30 BIT",
            "BITCOUNT s 5 30 bit",
            "BITCOUNT s 0 -1 BYTE",
            "BITCOUNT s -9 -3 BIT",
            "BITCOUNT s 0",
            "BITCOUNT s 0 1 BITS",
            "BITCOUNT s x 1",
            "BITCOUNT s 0 1 BIT extra",
            "BITCOUNT nokey",
            "BITCOUNT nokey 0 x",
            "SET e \"\"",
            "BITCOUNT e",
            "BITCOUNT e 0 -1",
            "SET p \"\\xff\\xf0\\x00\"",
            "BITPOS p 0",
            "BITPOS p 1",
            "BITPOS p 0 1",
            "BITPOS p 1 2",
            "BITPOS p 1 2 -1",
            "BITPOS p 0 0 0",
            "BITPOS p 0 0 -1",
            "BITPOS p 1 7 15 BIT",
            "BITPOS p 0 7 15 BIT",
            "BITPOS p 0 0 11 bit",
            "BITPOS p 0 5 6 BIT",
            "BITPOS p 1 -3 -1 BIT",
            "BITPOS p 1 2 1",
            "BITPOS p 2",
            "BITPOS p x",
            "BITPOS p 1 x",
            "BITPOS p 1 0 x",
            "BITPOS p 1 0 1 BITS",
            "BITPOS p 1 0 1 BIT x",
            "BITPOS nokey 0",
            "BITPOS nokey 1",
            "BITPOS nokey 1 0 -1 BIT",
            "BITPOS e 0",
            "BITPOS e 1",
            "SET ones \"\\xff\\xff\"",
            "BITPOS ones 0",
            "BITPOS ones 0 0",
            "BITPOS ones 0 0 -1",
            "BITPOS ones 0 3 8 BIT",
            "BITPOS ones 0 0 -1 BIT",
            "SET zeros \"\\x00\\x00\"",
            "BITPOS zeros 1",
            "BITPOS zeros 0 1",
            "HSET h f v",
            "BITCOUNT h",
            "BITPOS h 1",
        ],
    ),
    (
        "bitop",
        &[
            "SET a abc",
            "SET b \"\\x0f\\xf0\"",
            "BITOP AND d a b",
            "GET d",
            "BITOP or d a b",
            "GET d",
            "BITOP XOR d a b nokey",
            "GET d",
            "BITOP NOT d a",
            "GET d",
            "BITOP NOT d a b",
            "BITOP NAND d a b",
            "BITOP AND d nokey other",
            "EXISTS d",
            "BITOP AND d nokey",
            "SET e \"\"",
            "BITOP OR d e",
            "EXISTS d",
            "EXPIREAT a 4102444800",
            "BITOP OR a a",
            "TTL a",
            "HSET h f v",
            "BITOP OR d a h",
            "BITOP OR h a",
            "TYPE h",
        ],
    ),
    // ---------------------------------------------------------------- SETS
    (
        "set basics",
        &[
            "SADD s a b c a",
            "SADD s c d",
            "SCARD s",
            "SMEMBERS s",
            "SISMEMBER s a",
            "SISMEMBER s z",
            "SISMEMBER nokey a",
            "SMISMEMBER s a z d",
            "SMISMEMBER nokey a b",
            "SREM s a z",
            "SREM s z",
            "SREM nokey a",
            "SMEMBERS s",
            "SMEMBERS nokey",
            "SCARD nokey",
            "SREM s b c d",
            "EXISTS s",
            "TYPE s",
            "SADD i 3 1 2 -5 10",
            "SMEMBERS i",
            "SADD i 01",
            "SCARD i",
            "TYPE i",
            "MEMORY USAGE i",
            "SADD e \"\"",
            "SMEMBERS e",
            "SISMEMBER e \"\"",
        ],
    ),
    (
        "set algebra",
        &[
            "SADD a 1 2 3 4",
            "SADD b 3 4 5",
            "SADD c x 4",
            "SINTER a b",
            "SINTER a b c",
            "SINTER a nokey",
            "SINTER nokey",
            "SUNION a b c",
            "SUNION nokey a",
            "SDIFF a b",
            "SDIFF a b c",
            "SDIFF nokey a",
            "SDIFF a nokey",
            "SINTERCARD 2 a b",
            "SINTERCARD 2 a b LIMIT 1",
            "SINTERCARD 2 a b limit 0",
            "SINTERCARD 1 nokey",
            "SINTERCARD 0 a",
            "SINTERCARD -1 a",
            "SINTERCARD x a",
            "SINTERCARD 3 a b",
            "SINTERCARD 2 a b LIMIT -1",
            "SINTERCARD 2 a b LIMIT",
            "SINTERCARD 2 a b FOO 1",
            "SINTERSTORE d a b",
            "SMEMBERS d",
            "SUNIONSTORE d a c",
            "SCARD d",
            "SDIFFSTORE d a b c",
            "SMEMBERS d",
            "SINTERSTORE d a nokey",
            "EXISTS d",
            "SINTERSTORE d a nokey",
            "SET str v",
            "SUNIONSTORE str a",
            "TYPE str",
            "EXPIREAT a 4102444800",
            "SINTERSTORE d2 a a",
            "TTL d2",
            "SDIFFSTORE d3 nokey a",
            "EXISTS d3",
            "SUNIONSTORE a a b",
            "TTL a",
            "SMEMBERS a",
        ],
    ),
    (
        "set moves and pops",
        &[
            "SADD src a b",
            "SADD dst c",
            "SMOVE src dst a",
            "SMOVE src dst a",
            "SMOVE src dst c",
            "SMEMBERS src",
            "SMEMBERS dst",
            "SMOVE src src b",
            "SMOVE src dst b",
            "EXISTS src",
            "SMOVE nokey dst a",
            "SET str v",
            "SMOVE str dst a",
            "SMOVE dst str a",
            "SMOVE nokey str a",
            "SADD one x",
            "SPOP one",
            "EXISTS one",
            "SPOP one",
            "SPOP nokey",
            "SPOP nokey 3",
            "SPOP dst 0",
            "SPOP dst -1",
            "SPOP dst x",
            "SPOP dst 1 2",
            "SADD p 1 2 3",
            "SPOP p 3",
            "EXISTS p",
            "SADD p 1 2 3",
            "SPOP p 10",
            "SADD q z",
            "SRANDMEMBER q",
            "SRANDMEMBER q 1",
            "SRANDMEMBER q -3",
            "SRANDMEMBER q 0",
            "SRANDMEMBER nokey",
            "SRANDMEMBER nokey 5",
            "SRANDMEMBER nokey -5",
            "SADD r 1 2 3",
            "SRANDMEMBER r 3",
            "SRANDMEMBER r 10",
            "SRANDMEMBER r x",
            "SRANDMEMBER r 1 2",
            "SRANDMEMBER r -9223372036854775808",
            "SRANDMEMBER str",
            "SPOP str",
            "?HELLO 3",
            "SMEMBERS r",
            "SMEMBERS nokey",
            "SINTER r nokey",
            "SUNION r nokey",
            "SPOP nokey 2",
            "SPOP q 0",
            "SRANDMEMBER r 3",
            "SRANDMEMBER nokey 3",
            "SMISMEMBER r 1 9",
            "SPOP r 5",
        ],
    ),
    (
        "set wrong types and scans",
        &[
            "SET str v",
            "HSET h f v",
            "SADD s m",
            "SADD str m",
            "SADD h m",
            "SREM str m",
            "SCARD str",
            "SMEMBERS h",
            "SISMEMBER str m",
            "SMISMEMBER str m",
            "SINTER s str",
            "SINTER nokey str",
            "SUNION s h",
            "SDIFF s str",
            "SINTERCARD 2 s str",
            "SINTERSTORE d s str",
            "SSCAN str 0",
            "GET s",
            "HGET s f",
            "INCR s",
            "APPEND s x",
            "SET s x",
            "TYPE s",
            "SADD s2 a b c ab",
            "SSCAN s2 0",
            "SSCAN s2 0 MATCH a*",
            "?SSCAN s2 0 COUNT 1",
            "SSCAN s2 0 COUNT 0",
            "SSCAN s2 x",
            "SSCAN s2 0 MATCH",
            "SSCAN s2 0 TYPE set",
            "SSCAN nokey 0",
            "RENAME s2 s3",
            "SMEMBERS s3",
            "TYPE s3",
            "SCAN 0 TYPE set",
            "DEL s3",
            "SMEMBERS s3",
        ],
    ),
    (
        "sets in transactions",
        &[
            "MULTI",
            "SADD t a b",
            "SREM t a",
            "SMEMBERS t",
            "SMOVE t u b",
            "EXISTS t",
            "SMEMBERS u",
            "EXEC",
            "MULTI",
            "SADD t x",
            "SADD t",
            "EXEC",
            "EXISTS t",
            "EVAL \"redis.call('SADD', KEYS[1], 'p', 'q'); return redis.call('SCARD', KEYS[1])\" 1 ev",
            "EVAL \"return redis.call('SMEMBERS', KEYS[1])\" 1 ev",
            "EVAL \"return redis.call('SINTERCARD', 1, KEYS[1])\" 1 ev",
        ],
    ),
    (
        "scan by type",
        &[
            "HSET h f v",
            "SET s v",
            "SCAN 0 TYPE hash",
            "SCAN 0 TYPE string",
            "SCAN 0 TYPE list",
            "SCAN 0 TYPE HASH MATCH h*",
            "KEYS *",
        ],
    ),
    (
        "hscan",
        &[
            "HSCAN nokey 0",
            "HSET h a 1 ab 2 b 3",
            "HSCAN h 0",
            "HSCAN h 0 MATCH a*",
            "HSCAN h 0 COUNT 100 MATCH *b",
            "HSCAN h 0 COUNT 0",
            "HSCAN h 0 COUNT",
            "HSCAN h x",
            "HSCAN h 0 TYPE string",
            "HSCAN h 0 NOVALUES",
        ],
    ),
    // ---------------------------------------------------------------- SORTED SETS
    (
        "zset add, score and rank",
        &[
            "ZADD z 1 a 2 b 3 c",
            "ZADD z 1 a 5 d",
            "ZCARD z",
            "ZSCORE z a",
            "ZSCORE z nope",
            "ZSCORE nokey a",
            "ZMSCORE z a nope d",
            "ZMSCORE nokey a b",
            "ZRANK z c",
            "ZREVRANK z c",
            "ZRANK z nope",
            "ZRANK nokey a",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZADD z 0.1 f 1e3 g -inf h +inf i 0x10 j",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZADD z -0 k",
            "ZSCORE z k",
            "ZADD z 1.5 l 3.0000000000000004 m 1e300 n 123456789012345678 o",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZADD z nan x",
            "ZADD z abc x",
            "ZADD z \" 1\" x",
            "ZADD z \"1 \" x",
            "ZADD z \"\" x",
            "ZADD z 1e400 x",
            "ZADD z 1",
            "ZADD z 1 a 2",
            "ZADD z",
            "ZADD z NX XX 1 a",
            "ZADD z GT LT 1 a",
            "ZADD z GT NX 1 a",
            "ZADD z INCR 1 a 2 b",
            "ZADD z NX",
            "ZADD z ch",
            "TYPE z",
            "OBJECT ENCODING z",
            "MEMORY USAGE z",
            "ZCARD nokey",
            "ZADD e 0 \"\"",
            "ZRANGE e 0 -1 WITHSCORES",
        ],
    ),
    (
        "zadd options and zincrby",
        &[
            "ZADD z 10 a 20 b",
            "ZADD z NX 1 a 1 c",
            "ZADD z XX 1 a 1 d",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZADD z CH 1 a 2 b 3 e",
            "ZADD z GT CH 0 a 50 b",
            "ZADD z LT CH 0 a 50 b",
            "ZADD z XX GT CH 100 a 100 nope",
            "ZRANGE z 0 -1 WITHSCORES",
            "ZADD z INCR 5 a",
            "ZADD z NX INCR 5 a",
            "ZADD z XX INCR 5 nope",
            "ZADD z GT INCR -5 a",
            "ZADD z LT INCR -5 a",
            "ZADD z INCR 0 a",
            "ZADD nokey XX 1 a",
            "ZADD nokey XX INCR 1 a",
            "EXISTS nokey",
            "ZINCRBY z 2.5 a",
            "ZINCRBY z 1 new",
            "ZINCRBY z x a",
            "ZINCRBY z +inf inf",
            "ZINCRBY z -inf inf",
            "ZSCORE z inf",
            "ZINCRBY z 0.1 f",
            "ZINCRBY z 0.2 f",
            "ZINCRBY fresh 3 m",
            "ZRANGE fresh 0 -1 WITHSCORES",
            "ZADD Z2 nx xx ch incr 1 a",
            "?HELLO 3",
            "ZADD z INCR 1 a",
            "ZADD z XX INCR 1 nope",
            "ZINCRBY z 1 a",
            "ZSCORE z a",
            "ZSCORE z nope",
            "ZMSCORE z a nope",
            "ZSCORE z inf",
        ],
    ),
    (
        "zrange by rank, score and lex",
        &[
            "ZADD z 1 a 2 b 3 c 4 d 5 e",
            "ZRANGE z 0 -1",
            "ZRANGE z 1 2 WITHSCORES",
            "ZRANGE z -2 -1",
            "ZRANGE z -100 100",
            "ZRANGE z 3 1",
            "ZRANGE z 5 10",
            "ZRANGE z 0 -1 REV",
            "ZRANGE z 0 1 REV WITHSCORES",
            "ZREVRANGE z 0 1",
            "ZREVRANGE z 0 -1 WITHSCORES",
            "ZRANGE z x 1",
            "ZRANGE z 0 1 LIMIT 0 1",
            "ZRANGE z 0 1 LIMIT 0 -1",
            "ZRANGE z 0 1 bogus",
            "ZRANGE nokey 0 -1",
            "ZRANGE z (1 4 BYSCORE",
            "ZRANGE z 1 (4 BYSCORE WITHSCORES",
            "ZRANGE z -inf +inf BYSCORE LIMIT 1 2",
            "ZRANGE z -inf +inf BYSCORE LIMIT -1 2",
            "ZRANGE z -inf +inf BYSCORE LIMIT 1 -5",
            "ZRANGE z -inf +inf BYSCORE LIMIT 5 1",
            "ZRANGE z -inf +inf BYSCORE LIMIT 0 0",
            "ZRANGE z 4 2 BYSCORE REV",
            "ZRANGE z 4 2 BYSCORE REV LIMIT 1 1 WITHSCORES",
            "ZRANGE z 2 4 BYSCORE REV",
            "ZRANGE z x 2 BYSCORE",
            "ZRANGE z ( 2 BYSCORE",
            "ZRANGE z \" 1\" 2 BYSCORE",
            "ZRANGE z 1 2 BYSCORE BYLEX",
            "ZRANGE z 1 2 REV REV",
            "ZRANGE z 1 2 BYSCORE LIMIT 1",
            "ZRANGEBYSCORE z 2 4",
            "ZRANGEBYSCORE z (2 (4 WITHSCORES",
            "ZRANGEBYSCORE z -inf +inf LIMIT 2 10",
            "ZRANGEBYSCORE z 1 5 REV",
            "ZRANGEBYSCORE z 5 1",
            "ZRANGEBYSCORE z 3 3",
            "ZRANGEBYSCORE z (3 3",
            "ZREVRANGEBYSCORE z 4 2",
            "ZREVRANGEBYSCORE z +inf -inf WITHSCORES LIMIT 1 2",
            "ZCOUNT z 2 4",
            "ZCOUNT z (2 (4",
            "ZCOUNT z -inf +inf",
            "ZCOUNT z x 1",
            "ZCOUNT nokey 0 1",
            "ZADD l 0 a 0 b 0 c 0 d 0 e",
            "ZRANGE l [b (d BYLEX",
            "ZRANGE l - + BYLEX LIMIT 1 2",
            "ZRANGE l + - BYLEX REV",
            "ZRANGE l (d [b BYLEX REV",
            "ZRANGE l - + BYLEX WITHSCORES",
            "ZRANGE l b d BYLEX",
            "ZRANGE l [d [b BYLEX",
            "ZRANGEBYLEX l [a [c",
            "ZRANGEBYLEX l - (c LIMIT 1 5",
            "ZREVRANGEBYLEX l [c -",
            "ZREVRANGEBYLEX l + (c LIMIT 0 1",
            "ZLEXCOUNT l - +",
            "ZLEXCOUNT l [b (d",
            "ZLEXCOUNT l + -",
            "ZLEXCOUNT l a b",
            "ZLEXCOUNT nokey - +",
            "ZRANGE z - + BYLEX",
            "?HELLO 3",
            "ZRANGE z 0 1 WITHSCORES",
            "ZRANGEBYSCORE z 1 2 WITHSCORES",
            "ZRANGE z 0 1",
            "ZRANGE nokey 0 1 WITHSCORES",
        ],
    ),
    (
        "zrem, zremrangeby and zpop",
        &[
            "ZADD z 1 a 2 b 3 c 4 d 5 e 6 f",
            "ZREM z a nope",
            "ZREM z nope",
            "ZREM nokey a",
            "ZREMRANGEBYRANK z 0 0",
            "ZREMRANGEBYRANK z 10 20",
            "ZREMRANGEBYRANK z x 1",
            "ZREMRANGEBYRANK nokey 0 1",
            "ZRANGE z 0 -1",
            "ZREMRANGEBYSCORE z (3 4",
            "ZREMRANGEBYSCORE z x 4",
            "ZREMRANGEBYSCORE z 100 200",
            "ZRANGE z 0 -1",
            "ZADD l 0 a 0 b 0 c 0 d",
            "ZREMRANGEBYLEX l [b (d",
            "ZREMRANGEBYLEX l x y",
            "ZRANGE l 0 -1",
            "ZREMRANGEBYLEX l - +",
            "EXISTS l",
            "ZADD p 1 a 2 b 3 c 4 d",
            "ZPOPMIN p",
            "ZPOPMAX p",
            "ZPOPMIN p 0",
            "ZPOPMIN p -1",
            "ZPOPMIN p x",
            "ZPOPMIN p 1 2",
            "ZPOPMIN nokey",
            "ZPOPMIN nokey 3",
            "ZPOPMAX p 10",
            "EXISTS p",
            "ZADD p 1 a 2 b 3 c",
            "ZMPOP 1 p MIN",
            "ZMPOP 2 nokey p MAX COUNT 5",
            "ZMPOP 1 nokey MIN",
            "ZMPOP 0 p MIN",
            "ZMPOP x p MIN",
            "ZMPOP 1 p",
            "ZMPOP 1 p MIDDLE",
            "ZMPOP 1 p MIN COUNT 0",
            "ZMPOP 1 p MIN COUNT",
            "ZMPOP 1 p MIN COUNT 1 COUNT 1",
            "ZMPOP 5 p MIN",
            "ZADD b 1 a 2 b 3 c",
            "BZPOPMIN nokey b 0",
            "BZPOPMAX b 0.5",
            "BZMPOP 0 2 nokey b MIN COUNT 5",
            "BZPOPMIN nokey 0.01",
            "BZMPOP 0.01 1 nokey MAX",
            "BZPOPMIN b x",
            "BZPOPMIN b -1",
            "ZADD b 9 q",
            "BZPOPMIN b -0.0001",
            "BZPOPMIN nokey 1e-400",
            "ZADD b 9 q",
            "BZPOPMIN b -1e-400",
            "BZPOPMIN b inf",
            "BZPOPMIN b 1e400",
            "BZPOPMIN b \" 1\"",
            "BZMPOP x 1 b MIN",
            "BZMPOP 0 0 b MIN",
            "BZMPOP 0 1 b",
            "BZMPOP 0 1 b MIN COUNT 0",
            "SET str v",
            "BZPOPMIN nokey str 0",
            "BZMPOP 0 1 str MIN",
            "MULTI",
            "BZPOPMIN nokey 0",
            "BZMPOP 0 1 nokey MIN",
            "ZADD b 5 z",
            "BZPOPMAX nokey b 0",
            "EXEC",
            "EVAL \"return redis.call('bzpopmin', KEYS[1], 0)\" 1 b",
            "EVAL \"return redis.call('bzmpop', 0, 1, KEYS[1], 'min')\" 1 nokey",
            "ZADD b 7 y",
            "?HELLO 3",
            "BZPOPMIN b 0",
            "BZPOPMIN nokey 0.01",
            "ZADD b 1 a 2 b",
            "BZMPOP 0 1 b MAX COUNT 2",
            "ZADD p 1 a 2 b",
            "?HELLO 3",
            "ZPOPMIN p",
            "ZADD p 1 a 2 b 3 c",
            "ZPOPMIN p 1",
            "ZPOPMAX p 5",
            "ZPOPMIN nokey",
            "ZMPOP 1 nokey MIN",
            "ZADD p 1 a",
            "ZMPOP 1 p MAX",
        ],
    ),
    // ---------------------------------------------------------------- streams
    (
        "stream adds, IDs and reads",
        &[
            "XADD s 1-1 f v",
            "XADD s 1-1 f v",
            "XADD s 1-* f v g w",
            "XADD s 0-* f v",
            "XADD s 1 f v",
            "XADD s 5 f",
            "XADD s 5",
            "XADD s 0-0 f v",
            "XADD s - f v",
            "XADD s + f v",
            "XADD s 5-x f v",
            "XADD s -5 f v",
            "XADD s \" 6\" a b",
            "XADD s 8-+1 a b",
            "XADD s 9- a b",
            "XADD s 007-1 a b",
            "XADD s 18446744073709551616 a b",
            "XADD s 10-0 n 123 m -7 o 0123 p 9223372036854775808",
            "XADD s NOMKSTREAM 11 a b",
            "XADD nokey NOMKSTREAM * a b",
            "EXISTS nokey",
            "XADD s nomkstream",
            "XLEN s",
            "XLEN nokey",
            "XRANGE s - +",
            "XRANGE s - + COUNT 2",
            "XRANGE s - + COUNT 0",
            "XRANGE s - + COUNT -1",
            "XRANGE s - + COUNT",
            "XRANGE s - + COUNT 1 COUNT 3",
            "XRANGE s - + LIMIT 1",
            "XRANGE s 1 1",
            "XRANGE s (1-1 +",
            "XRANGE s - (8-1",
            "XRANGE s (- +",
            "XRANGE s - (+",
            "XRANGE s ( +",
            "XRANGE s (0-0 (10",
            "XRANGE s - (0-0",
            "XRANGE s (18446744073709551615-18446744073709551615 +",
            "XRANGE s - (18446744073709551615-18446744073709551615",
            "XRANGE s + -",
            "XRANGE s abc +",
            "XRANGE nokey - +",
            "XRANGE nokey - + COUNT 0",
            "XREVRANGE s + -",
            "XREVRANGE s + - COUNT 2",
            "XREVRANGE s 8 1",
            "XREVRANGE s (8-1 -",
            "XREVRANGE s + - COUNT 0",
            "XADD s 18446744073709551615-18446744073709551615 a b",
            "XADD s * a b",
            "XADD s 18446744073709551615-* a b",
            "XLEN s",
            "TYPE s",
            "OBJECT ENCODING s",
        ],
    ),
    (
        "stream trims, deletes and XSETID",
        &[
            "XADD s MAXLEN 1 MINID 5 * f v",
            "XADD s MAXLEN MAXLEN 5 * f v",
            "XADD s MAXLEN -1 * f v",
            "XADD s MAXLEN abc * f v",
            "XADD s MAXLEN 10 LIMIT 5 * f v",
            "XADD s LIMIT 5 * f v",
            "XADD s LIMIT 0 * f v",
            "XADD s MAXLEN ~ 10 LIMIT -1 * f v",
            "XADD s MAXLEN ~ 10 LIMIT abc * f v",
            "XADD s MINID abc * f v",
            "XADD s MAXLEN ~ * f v",
            "XADD s MAXLEN 5",
            "XADD s MAXLEN 5 *",
            "XTRIM s",
            "XTRIM s MAXLEN",
            "XTRIM s MAXLEN 1 LIMIT 2",
            "XTRIM s foo 1",
            "XTRIM s MAXLEN 1 foo",
            "XTRIM s MAXLEN 1 NOMKSTREAM",
            "XTRIM s LIMIT 5",
            "XTRIM s LIMIT 0 MAXLEN 1",
            "XTRIM nokey MAXLEN 1",
            "XADD s 1 a 1",
            "XADD s 2 a 2",
            "XADD s 3 a 3",
            "XADD s 4 a 4",
            "XADD s MAXLEN = 3 5 a 5",
            "XRANGE s - +",
            "XTRIM s MINID 4",
            "XTRIM s MINID ~ 5",
            "XTRIM s MAXLEN ~ 0 LIMIT 0",
            "XLEN s",
            "EXISTS s",
            "XADD s MAXLEN 0 6 a 6",
            "XLEN s",
            "XADD t 1 a 1",
            "XADD t 2 a 2",
            "XADD t 3 a 3",
            "XDEL t",
            "XDEL nokey 1 abc",
            "XDEL t 1 abc",
            "XDEL t 2 2 9",
            "XDEL t 1",
            "XRANGE t - +",
            "XDEL t 3",
            "XLEN t",
            "EXISTS t",
            "XADD t 2 a b",
            "XSETID t",
            "XSETID nokey 5",
            "XSETID t abc",
            "XSETID t 1",
            "XSETID t 10 ENTRIESADDED -1",
            "XSETID t 10 ENTRIESADDED abc",
            "XSETID t 10 MAXDELETEDID 11",
            "XSETID t 10 MAXDELETEDID abc",
            "XSETID t 10 FOO 1",
            "XSETID t 10 ENTRIESADDED",
            "XADD u 5 a b",
            "XADD u 6 a b",
            "XSETID u 5",
            "XSETID u 6 ENTRIESADDED 1",
            "XSETID u 7 ENTRIESADDED 9 MAXDELETEDID 3",
            "XADD u 7 a b",
            "XADD u 8 a b",
            "XDEL u 8",
            "XSETID u 7",
            "XADD u 7-* a b",
            "XRANGE u - +",
            "XADD v 1-0 a 1",
            "XADD v 2-0 a 1",
            "XDEL v 2-0",
            "XSETID v 1-5",
            "XADD v 1-6 a 1",
            "XADD v 1-* b 2",
            "XRANGE v - +",
            "XREVRANGE v + - COUNT 2",
            "XLEN v",
            "XTRIM v MAXLEN ~ 0",
            "XLEN v",
        ],
    ),
    (
        "stream nodes and approximate trims",
        &[
            "EVAL \"for i=1,250 do redis.call('xadd', KEYS[1], i, 'f', 'v') end\" 1 s",
            "XTRIM s MAXLEN ~ 180",
            "XTRIM s MAXLEN ~ 150",
            "XTRIM s MAXLEN 120",
            "XRANGE s - + COUNT 1",
            "XTRIM s MINID ~ 200",
            "XTRIM s MINID ~ 201",
            "XTRIM s MAXLEN ~ 0 LIMIT 20",
            "XTRIM s MAXLEN ~ 0 LIMIT 60",
            "XLEN s",
            "EVAL \"for i=1,30 do redis.call('xadd', KEYS[1], i, 'f', string.rep('x', 1000)) end\" 1 b",
            "XADD b MAXLEN ~ 10 31 f x",
            "XLEN b",
            "EVAL \"for i=1,300 do redis.call('xadd', KEYS[1], i, 'field' .. (i % 3), i * 1000, 'n', i) end\" 1 m",
            "XTRIM m MAXLEN ~ 100",
            "XLEN m",
            "EVAL \"for i=1,120 do redis.call('xadd', KEYS[1], i, 'f', string.rep('y', i * 3)) end\" 1 g",
            "XTRIM g MAXLEN ~ 1",
            "XLEN g",
            "EVAL \"for i=1,150 do redis.call('xadd', KEYS[1], i, 'f', 'v') end for i=1,90 do redis.call('xdel', KEYS[1], i) end for i=151,260 do redis.call('xadd', KEYS[1], i, 'f', 'v') end\" 1 d",
            "XTRIM d MAXLEN ~ 60",
            "XLEN d",
            "XDEL d 91 92 93 94 95 96 97 98 99 100",
            "XTRIM d MINID ~ 200",
            "XLEN d",
            "XRANGE d - + COUNT 2",
        ],
    ),
    (
        "stream reads with XREAD",
        &[
            "XADD s 1 a 1",
            "XADD s 2 a 2",
            "XADD t 5 b 5",
            "XREAD STREAMS s 0",
            "XREAD COUNT 1 STREAMS s t 0 0",
            "XREAD COUNT -5 STREAMS s 1",
            "XREAD COUNT 0 COUNT 1 STREAMS s 0",
            "XREAD STREAMS s t 2 4",
            "XREAD STREAMS s $",
            "XREAD STREAMS nokey $",
            "XREAD STREAMS nokey 0",
            "XREAD STREAMS s 18446744073709551615-18446744073709551615",
            "XREAD BLOCK 10 STREAMS s $",
            "XREAD BLOCK -1 STREAMS s 0",
            "XREAD BLOCK abc STREAMS s 0",
            "XREAD BLOCK 1.5 STREAMS s 0",
            "XREAD STREAMS s",
            "XREAD STREAMS",
            "XREAD FOO STREAMS s 0",
            "XREAD GROUP g c STREAMS s 0",
            "XREAD NOACK STREAMS s 0",
            "XREAD STREAMS s >",
            "XREAD STREAMS s +",
            "XREAD STREAMS s -",
            "XREAD STREAMS s 1 2 3 4",
            "XREAD COUNT abc STREAMS s 0",
            "SET str x",
            "XREAD STREAMS str s 0 abc",
            "XREAD STREAMS s str abc 0",
            "XREAD STREAMS s str 0 0",
            "XADD str * a b",
            "XLEN str",
            "XRANGE str - +",
            "XDEL str abc",
            "XTRIM str MAXLEN 1",
            "XSETID str 1",
            "LPUSH s x",
            "MULTI",
            "XREAD BLOCK 0 STREAMS s $",
            "XADD s 3 a 3",
            "XREAD BLOCK 0 STREAMS s 2",
            "EXEC",
            "EVAL \"return redis.call('xread', 'block', '0', 'streams', KEYS[1], '$')\" 1 s",
            "EVAL \"return redis.call('XREAD', 'count', 'abc', 'block', '0', 'streams', KEYS[1], '$')\" 1 s",
            "EVAL \"return redis.call('xread', 'streams', KEYS[1], '0')\" 1 s",
            "EVAL \"return redis.call('xrange', KEYS[1], '-', '+', 'COUNT', 1)\" 1 s",
            "?HELLO 3",
            "XREAD STREAMS s t 0 0",
            "XREAD STREAMS nokey 0",
            "XRANGE s - + COUNT 0",
            "XADD nokey NOMKSTREAM * a b",
        ],
    ),
    // ---------------------------------------------------------------- stream consumer groups
    // Idle times, delivery times and `seen-time` are replaced by 0 before comparing
    // ([`without_stream_times`]); the rest is deterministic: explicit IDs, min-idle-time 0 or
    // far beyond any real idle time, XCLAIM TIME/IDLE far in the past (or the future, which
    // Redis takes as now).
    (
        "stream groups: XGROUP",
        &[
            "XGROUP CREATE s g $",
            "XGROUP CREATE s g 0 MKSTREAM",
            "XGROUP CREATE s g $ MKSTREAM",
            "XGROUP CREATE s g2 $ mkstream MKSTREAM ENTRIESREAD -1",
            "XGROUP CREATE s g2 $ mkstream ENTRIESREAD -1",
            "XGROUP CREATE s g3 0 ENTRIESREAD 5",
            "XGROUP CREATE s \"\" 1-1",
            "XINFO STREAM s",
            "XADD s 1-1 a 1",
            "XADD s 2-1 b 2 c 3",
            "XGROUP CREATE s g7 $",
            "XGROUP CREATE s g8 1",
            "XGROUP CREATE s g9 0 ENTRIESREAD 9223372036854775807",
            "XGROUP CREATE s b0 2-1",
            "XINFO GROUPS s",
            "XGROUP CREATECONSUMER s g zed",
            "XGROUP CREATECONSUMER s g zed",
            "XGROUP CREATECONSUMER s g amy",
            "XGROUP CREATECONSUMER s g \"\"",
            "XINFO CONSUMERS s g",
            "XREADGROUP GROUP g zed COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g amy STREAMS s >",
            "XGROUP DELCONSUMER s g amy",
            "XGROUP DELCONSUMER s g amy",
            "XPENDING s g",
            "XGROUP SETID s g 99-0",
            "XGROUP SETID s g2 2-1 ENTRIESREAD 2",
            "XGROUP SETID s g3 1 entriesread 0",
            "XGROUP SETID s g7 0",
            "XGROUP SETID s g8 $",
            "XINFO GROUPS s",
            "XGROUP DESTROY s g",
            "XGROUP DESTROY s g",
            "XGROUP DESTROY s nog",
            "XGROUP CREATE s g 0",
            "XINFO CONSUMERS s g",
        ],
    ),
    (
        "stream groups: XGROUP errors",
        &[
            "XGROUP CREATE nokey g $",
            "XGROUP CREATE nokey g abc",
            "XGROUP CREATE nokey g abc MKSTREAM",
            "XGROUP CREATE nokey g 0 ENTRIESREAD -2 MKSTREAM",
            "EXISTS nokey",
            "XGROUP SETID nokey g abc",
            "XGROUP CREATECONSUMER nokey g c",
            "XADD s 1-0 a 1",
            "XGROUP CREATE s g 0",
            "XGROUP CREATE s g 0 ENTRIESREAD -2",
            "XGROUP CREATE s h 0 ENTRIESREAD abc",
            "XGROUP CREATE s h 0 ENTRIESREAD",
            "XGROUP CREATE s h 0 MKSTREAM FOO",
            "XGROUP CREATE s h >",
            "XGROUP CREATE s h (1",
            "XGROUP SETID s g 0 FOO 1",
            "XGROUP SETID s g 0 ENTRIESREAD 1 ENTRIESREAD 2",
            "XGROUP SETID s nog abc",
            "XGROUP SETID s nog 0 ENTRIESREAD -3",
            "XGROUP CREATECONSUMER s nog c",
            "XGROUP DELCONSUMER s nog c",
            "SET str x",
            "XGROUP CREATE str g 0 MKSTREAM",
            "XGROUP SETID str g abc",
            "XGROUP HELP",
            "XGROUP help extra",
            "XGROUP FOO",
            "XGROUP foo s g",
            "XINFO GROUPS s",
        ],
    ),
    (
        "stream groups: XREADGROUP",
        &[
            "XADD s 1-0 a 1",
            "XADD s 2-0 b 2 c 3",
            "XADD s 3-0 c 3",
            "XADD t 5-0 x 5",
            "XGROUP CREATE s g 0",
            "XGROUP CREATE t g 0",
            "XREADGROUP GROUP g alice COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g alice STREAMS s >",
            "XREADGROUP GROUP g bob STREAMS s >",
            "XINFO CONSUMERS s g",
            "XREADGROUP GROUP g alice STREAMS s 0",
            "XREADGROUP GROUP g alice COUNT 2 STREAMS s 0",
            "XREADGROUP GROUP g alice STREAMS s 1",
            "XREADGROUP GROUP g alice STREAMS s 3-0",
            "XREADGROUP GROUP g bob STREAMS s 0",
            "XINFO CONSUMERS s g",
            "XPENDING s g - + 10",
            "XREADGROUP GROUP g alice STREAMS s t > >",
            "XREADGROUP GROUP g alice STREAMS s t > >",
            "XREADGROUP GROUP g alice STREAMS s t 0 >",
            "XREADGROUP GROUP g alice STREAMS s t 0 0",
            "XREADGROUP GROUP g alice COUNT -1 STREAMS s 0",
            "XREADGROUP NOACK group g alice count 5 COUNT 1 streams s 0",
            "XADD s 4-0 d 4",
            "XADD s 5-0 e 5",
            "XADD s 6-0 f 6",
            "XREADGROUP GROUP g bob NOACK COUNT 1 STREAMS s >",
            "XPENDING s g",
            "XREADGROUP GROUP g bob BLOCK 1000 COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g carol STREAMS s s > >",
            "XREADGROUP GROUP g carol STREAMS s s 0 0",
            "XADD s 7-0 g 7",
            "XREADGROUP GROUP g dave STREAMS s 18446744073709551615-18446744073709551615",
            "XREADGROUP GROUP g dave STREAMS s 18446744073709551615",
            "XREADGROUP GROUP g \"\" STREAMS s 0",
            "XINFO GROUPS s",
            "XPENDING s g",
            "XGROUP SETID s g 0",
            "XREADGROUP GROUP g erin COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g erin NOACK COUNT 1 STREAMS s >",
            "XPENDING s g - + 3",
            "XINFO GROUPS s",
            "XGROUP CREATE s h 10-0",
            "XREADGROUP GROUP h c STREAMS s >",
            "XADD s 11-0 h 8",
            "XREADGROUP GROUP h c STREAMS s >",
            "XINFO GROUPS s",
        ],
    ),
    (
        "stream groups: XREADGROUP errors",
        &[
            "XADD s 1-0 a 1",
            "XGROUP CREATE s g 0",
            "XREADGROUP GROUP g c STREAMS s $",
            "XREADGROUP GROUP g c STREAMS s +",
            "XREADGROUP GROUP g c STREAMS s (1",
            "XREADGROUP GROUP g c STREAMS s 1-",
            "XREADGROUP GROUP g c STREAMS nokey >",
            "XREADGROUP GROUP g c STREAMS nokey $",
            "XREADGROUP GROUP nog c STREAMS s $",
            "XREADGROUP GROUP g c STREAMS s nokey $ >",
            "XREADGROUP GROUP g c STREAMS s nokey > abc",
            "XREADGROUP GROUP g c STREAMS s t >",
            "XREADGROUP GROUP g c STREAMS s 0 COUNT 1",
            "XREADGROUP COUNT 1 BLOCK 0 STREAMS s 0",
            "XREADGROUP GROUP g c FOO STREAMS s >",
            "XREADGROUP GROUP g c COUNT abc STREAMS s >",
            "XREADGROUP GROUP g c BLOCK -1 STREAMS s >",
            "XREADGROUP GROUP g c BLOCK 1.5 STREAMS s >",
            "XREADGROUP GROUP g c GROUP nog d STREAMS s 0",
            "SET str x",
            "XREADGROUP GROUP g c STREAMS s str > >",
            "XREADGROUP GROUP g c STREAMS str s > abc",
            "XREADGROUP GROUP g c STREAMS s str abc >",
            "XREADGROUP GROUP nog c STREAMS s str > >",
            "XINFO CONSUMERS s g",
        ],
    ),
    (
        "stream groups: XACK and XPENDING",
        &[
            "EVAL \"for i=1,5 do redis.call('xadd', KEYS[1], i, 'f', i) end\" 1 s",
            "XGROUP CREATE s g 0",
            "XPENDING s g",
            "XPENDING s g - + 10",
            "XREADGROUP GROUP g zed COUNT 2 STREAMS s >",
            "XREADGROUP GROUP g amy COUNT 2 STREAMS s >",
            "XREADGROUP GROUP g mo STREAMS s >",
            "XPENDING s g",
            "XPENDING s g - + 10",
            "XPENDING s g - + 2",
            "XPENDING s g - + -1",
            "XPENDING s g (2 (4 10",
            "XPENDING s g 4 2 10",
            "XPENDING s g - + 10 amy",
            "XPENDING s g - + 10 nobody",
            "XPENDING s g - + 10 amy extra",
            "XPENDING s g IDLE 0 - + 10 zed",
            "XPENDING s g idle -1 (1 + 1",
            "XPENDING s g IDLE 100000000 - + 10",
            "XPENDING s g - + abc",
            "XPENDING s g ( + 10",
            "XPENDING s g 99999999999999999999 + 10",
            "XPENDING s g IDLE abc - + 10",
            "XPENDING s g IDLE 0 - +",
            "XPENDING s g -",
            "XPENDING s nog - + 10",
            "XPENDING nokey g",
            "XACK s g 1-0",
            "XACK s g 1-0",
            "XACK s g 2-0 3 9-0",
            "XACK s g 4-0 abc",
            "XACK s nog 4-0",
            "XACK nokey g 4-0",
            "XACK s g 4-0 4-0",
            "XPENDING s g",
            "XINFO CONSUMERS s g",
            "XACK s g 5",
            "XPENDING s g",
            "XINFO GROUPS s",
        ],
    ),
    (
        "stream groups: XCLAIM",
        &[
            "EVAL \"for i=1,5 do redis.call('xadd', KEYS[1], i, 'f', i) end\" 1 s",
            "XGROUP CREATE s g 0",
            "XREADGROUP GROUP g alice COUNT 4 STREAMS s >",
            "XCLAIM s g bob 0 1-0",
            "XCLAIM s g bob 0 1-0 2-0 9-0",
            "XCLAIM s g bob 0 1-0 JUSTID",
            "XPENDING s g - + 10",
            "XCLAIM s g carol 100000000 3-0",
            "XCLAIM s g dave 0 9-0",
            "XINFO CONSUMERS s g",
            "XCLAIM s g carol 0 3-0 IDLE 200000000",
            "XPENDING s g IDLE 100000000 - + 10",
            "XCLAIM s g dave 100000000 3-0",
            "XCLAIM s g erin 0 4-0 TIME 1000",
            "XPENDING s g IDLE 100000000 - + 10",
            "XCLAIM s g erin 0 4-0 TIME 4102444800000",
            "XCLAIM s g dave 0 3-0 IDLE 9223372036854775807",
            "XPENDING s g IDLE 100000000 - + 10",
            "XCLAIM s g erin 0 4-0 RETRYCOUNT 7",
            "XCLAIM s g erin 0 4-0 JUSTID",
            "XPENDING s g - + 10 erin",
            "XCLAIM s g erin 0 4-0 RETRYCOUNT -2",
            "XPENDING s g - + 10 erin",
            "XCLAIM s g erin 0 4-0 4-0 RETRYCOUNT 0",
            "XCLAIM s g erin 0 4-0 4-0",
            "XPENDING s g - + 10 erin",
            "XCLAIM s g frank 0 6-0 FORCE",
            "XCLAIM s g frank 0 5-0 FORCE",
            "XCLAIM s g frank 0 5-0 FORCE JUSTID",
            "XPENDING s g - + 10 frank",
            "XCLAIM s g frank 0 1-0 LASTID 3-0",
            "XCLAIM s g frank 0 1-0 LASTID 9-0",
            "XINFO GROUPS s",
            "XCLAIM s g frank -1 1 IDLE 5 IDLE -5 TIME -5 FORCE FORCE JUSTID JUSTID",
            "XDEL s 2-0",
            "XCLAIM s g gina 0 2-0",
            "XINFO CONSUMERS s g",
            "XCLAIM s g gina 0 1-0 2-0 3-0",
            "XPENDING s g - + 10",
            "XCLAIM s g h 0 1-0 LASTID $",
            "XCLAIM s g h 0 1-0 LASTID",
            "XCLAIM s g h 0 1-0 IDLE abc",
            "XCLAIM s g h 0 1-0 TIME abc",
            "XCLAIM s g h 0 1-0 RETRYCOUNT abc",
            "XCLAIM s g h 99999999999999999999 1-0",
            "XCLAIM s g h 0 abc",
            "XCLAIM s g h 0 JUSTID 1-0",
            "XCLAIM s g h 0 FORCE",
            "XCLAIM s nog h abc 1-0",
            "XCLAIM nokey g h 0 1-0 FOO",
            "SET str x",
            "XCLAIM str g h abc 1-0",
        ],
    ),
    (
        "stream groups: XAUTOCLAIM",
        &[
            "EVAL \"for i=1,6 do redis.call('xadd', KEYS[1], i, 'f', i) end\" 1 s",
            "XGROUP CREATE s g 0",
            "XAUTOCLAIM s g bob 0 0",
            "XREADGROUP GROUP g alice STREAMS s >",
            "XAUTOCLAIM s g bob 0 0 COUNT 2",
            "XAUTOCLAIM s g bob 0 3-0 COUNT 2",
            "XAUTOCLAIM s g bob 0 (3-0 COUNT 2",
            "XAUTOCLAIM s g bob 0 + COUNT 2",
            "XAUTOCLAIM s g carol 0 - JUSTID",
            "XPENDING s g - + 10",
            "XAUTOCLAIM s g dave 100000000 0",
            "XCLAIM s g carol 0 6-0 TIME 1000 JUSTID",
            "XAUTOCLAIM s g dave 100000000 0",
            "XINFO CONSUMERS s g",
            "XDEL s 2-0 4-0",
            "XAUTOCLAIM s g erin 0 0",
            "XDEL s 5-0",
            "XAUTOCLAIM s g frank 100000000 0 JUSTID",
            "XPENDING s g",
            "XINFO CONSUMERS s g",
            "XAUTOCLAIM s g erin -1 0 JUSTID JUSTID COUNT 1 COUNT 5",
            "XAUTOCLAIM s g erin 0 0 COUNT 0",
            "XAUTOCLAIM s g erin 0 0 COUNT abc",
            "XAUTOCLAIM s g erin 0 0 COUNT 576460752303423488",
            "XAUTOCLAIM s g erin 0 0 COUNT 576460752303423487",
            "XAUTOCLAIM s g erin 0 0 COUNT",
            "XAUTOCLAIM s g erin abc 0",
            "XAUTOCLAIM s g erin 0 $",
            "XAUTOCLAIM s nog erin 0 0",
            "XAUTOCLAIM s nog erin 0 0 FOO",
            "XAUTOCLAIM nokey g erin 0 abc",
            "SET str x",
            "XAUTOCLAIM str g erin 0 0",
            "XAUTOCLAIM str g erin abc 0",
            "EVAL \"for i=1,15 do redis.call('xadd', KEYS[1], i, 'f', i) end\" 1 t",
            "XGROUP CREATE t g 0",
            "XREADGROUP GROUP g c COUNT 15 STREAMS t >",
            "XAUTOCLAIM t g d 100000000 0 COUNT 1",
            "XAUTOCLAIM t g d 100000000 11 COUNT 1",
            "EVAL \"for i=1,12 do redis.call('xdel', KEYS[1], i) end\" 1 t",
            "XAUTOCLAIM t g e 0 0 COUNT 1",
            "XAUTOCLAIM t g e 0 11 COUNT 1",
            "XAUTOCLAIM t g e 0 0 COUNT 2 JUSTID",
            "XAUTOCLAIM t g e 0 0",
            "XPENDING t g",
        ],
    ),
    (
        "stream groups: XINFO",
        &[
            "XINFO STREAM nokey FULL",
            "XINFO GROUPS nokey",
            "XINFO CONSUMERS nokey g",
            "SET str x",
            "XINFO STREAM str",
            "XINFO CONSUMERS str g",
            "XADD s 1-0 a 1",
            "XADD s 2-0 b 2 c 3",
            "XADD s 3-0 d 4",
            "XADD s 4-0 e 5",
            "XINFO CONSUMERS s g",
            "XINFO GROUPS s",
            "XINFO STREAM s FULL",
            "XGROUP CREATE s g2 0",
            "XGROUP CREATE s g1 2-0",
            "XREADGROUP GROUP g2 zed COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g2 amy COUNT 2 STREAMS s >",
            "XGROUP CREATECONSUMER s g2 bo",
            "XREADGROUP GROUP g1 amy NOACK STREAMS s >",
            "XINFO STREAM s",
            "XINFO STREAM s FULL",
            "XINFO STREAM s FULL COUNT 1",
            "XINFO STREAM s FULL COUNT 0",
            "XINFO STREAM s full count -1",
            "XINFO GROUPS s",
            "XINFO CONSUMERS s g2",
            "XINFO CONSUMERS s nog",
            "XINFO STREAM s FULL COUNT abc",
            "XINFO STREAM s FULL COUNT",
            "XINFO STREAM s COUNT 2",
            "XINFO STREAM s FULL COUNT 1 COUNT 2",
            "XINFO HELP",
            "XINFO help extra",
            "XINFO FOO",
            "XINFO foo s",
            "XDEL s 1-0 2-0 3-0 4-0",
            "XINFO STREAM s",
            "XINFO STREAM s FULL",
            "EVAL \"for i=1,250 do redis.call('xadd', KEYS[1], i, 'f', 'v') end\" 1 m",
            "XGROUP CREATE m g 0",
            "XREADGROUP GROUP g c COUNT 12 STREAMS m >",
            "XINFO STREAM m",
            "XINFO STREAM m FULL",
            "XTRIM m MINID 150",
            "XINFO STREAM m",
        ],
    ),
    (
        "stream groups: entries-read and lag",
        &[
            "EVAL \"for i=1,5 do redis.call('xadd', KEYS[1], i, 'f', i) end\" 1 s",
            "XGROUP CREATE s g 0",
            "XGROUP CREATE s h 3-0",
            "XGROUP CREATE s k $",
            "XGROUP CREATE s m 0 ENTRIESREAD 2",
            "XGROUP CREATE s n 1-0",
            "XINFO GROUPS s",
            "XREADGROUP GROUP g c COUNT 2 STREAMS s >",
            "XINFO GROUPS s",
            "XDEL s 4-0",
            "XINFO GROUPS s",
            "XREADGROUP GROUP g c COUNT 1 STREAMS s >",
            "XINFO GROUPS s",
            "XREADGROUP GROUP g c COUNT 1 STREAMS s >",
            "XREADGROUP GROUP h c STREAMS s >",
            "XDEL s 1-0",
            "XTRIM s MAXLEN 2",
            "XINFO GROUPS s",
            "XADD s 6-0 f 6",
            "XINFO GROUPS s",
            "XGROUP SETID s g 0",
            "XGROUP SETID s h 0 ENTRIESREAD 3",
            "XGROUP SETID s n $",
            "XINFO GROUPS s",
            "XSETID s 10-0",
            "XINFO GROUPS s",
            "XSETID s 10-0 ENTRIESADDED 20 MAXDELETEDID 9-0",
            "XINFO STREAM s",
            "XINFO GROUPS s",
            "XADD s 11-0 f 11",
            "XREADGROUP GROUP k c STREAMS s >",
            "XINFO GROUPS s",
            "XGROUP CREATE e x $ MKSTREAM",
            "XADD e 1-0 f 1",
            "XINFO GROUPS e",
            "XREADGROUP GROUP x c STREAMS e >",
            "XDEL e 1-0",
            "XINFO STREAM e",
            "XINFO GROUPS e",
            "XADD e 2-0 f 2",
            "XINFO GROUPS e",
            "XGROUP SETID e x 5-0",
            "XINFO GROUPS e",
            "XADD e 6-0 f 6",
            "XREADGROUP GROUP x c STREAMS e >",
            "XINFO GROUPS e",
        ],
    ),
    (
        "stream groups: deleted entries and the keyspace",
        &[
            "XADD s 1-0 a 1",
            "XADD s 2-0 b 2",
            "XADD s 3-0 c 3",
            "XGROUP CREATE s g 0",
            "XREADGROUP GROUP g alice STREAMS s >",
            "XDEL s 2-0",
            "XREADGROUP GROUP g alice STREAMS s 0",
            "XREADGROUP GROUP g alice COUNT 2 STREAMS s 1-0",
            "XPENDING s g - + 10",
            "XTRIM s MAXLEN 0",
            "XREADGROUP GROUP g alice STREAMS s 0",
            "XACK s g 2-0",
            "XADD s 4-0 d 4",
            "XREADGROUP GROUP g bob STREAMS s >",
            "XREADGROUP GROUP g alice STREAMS s 0",
            "COPY s s2",
            "XACK s2 g 1-0 3-0 4-0",
            "XPENDING s2 g",
            "XPENDING s g",
            "XGROUP CREATE s2 h 0",
            "RENAME s2 s3",
            "TYPE s3",
            "XINFO GROUPS s3",
            "XINFO CONSUMERS s3 g",
            "DEL s3",
            "XREADGROUP GROUP g alice STREAMS s3 0",
            "XGROUP CREATE s3 g $ MKSTREAM",
            "XINFO GROUPS s3",
            "XCLAIM s g carol 0 1-0 3-0 4-0",
            "XPENDING s g",
            "LPUSH lst a",
            "XREADGROUP GROUP g alice STREAMS lst >",
            "XINFO GROUPS lst",
            "XACK lst g 1",
            "XPENDING lst g - + 10",
            "XCLAIM lst g c 0 1",
            "XAUTOCLAIM lst g c 0 0",
            "XGROUP CREATE lst g 0",
            "XGROUP DESTROY lst g",
            "XGROUP CREATECONSUMER lst g c",
            "XGROUP DELCONSUMER lst g c",
        ],
    ),
    (
        "stream groups in multi and eval",
        &[
            "XADD s 1-0 a 1",
            "XGROUP CREATE s g 0",
            "MULTI",
            "XREADGROUP GROUP g carol COUNT 1 STREAMS s >",
            "XREADGROUP GROUP g carol BLOCK 0 STREAMS s >",
            "XREADGROUP GROUP g carol STREAMS s $",
            "XGROUP CREATE s g2 0",
            "XGROUP CREATE s g2 0",
            "XACK s g 1-0",
            "XPENDING s g",
            "EXEC",
            "EVAL \"return redis.call('xreadgroup', 'GROUP', 'g2', 'dan', 'STREAMS', KEYS[1], '>')\" 1 s",
            "EVAL \"return redis.call('xreadgroup', 'GROUP', 'g2', 'dan', 'STREAMS', KEYS[1], '>')\" 1 s",
            "EVAL \"return redis.call('xreadgroup', 'GROUP', 'g2', 'dan', 'BLOCK', '0', 'STREAMS', KEYS[1], '>')\" 1 s",
            "EVAL \"return redis.pcall('xreadgroup', 'GROUP', 'g2', 'dan', 'BLOCK', '0', 'STREAMS', KEYS[1], '>')\" 1 s",
            "EVAL \"return redis.call('xpending', KEYS[1], 'g2')\" 1 s",
            "EVAL \"return redis.call('xgroup', 'create', KEYS[1], 'g2', '0')\" 1 s",
            "EVAL \"return redis.call('xautoclaim', KEYS[1], 'g2', 'eve', '0', '0', 'JUSTID')\" 1 s",
            "EVAL_RO \"return redis.call('xreadgroup', 'GROUP', 'g', 'c', 'STREAMS', KEYS[1], '>')\" 1 s",
            "EVAL_RO \"return redis.call('xpending', KEYS[1], 'g')\" 1 s",
            "XINFO GROUPS s",
        ],
    ),
    (
        "stream groups in resp3",
        &[
            "?HELLO 3",
            "XADD s 1-0 a 1",
            "XADD s 2-0 b 2",
            "XADD s 3-0 c 3",
            "XGROUP CREATE s g 0",
            "XPENDING s g",
            "XREADGROUP GROUP g alice COUNT 2 STREAMS s >",
            "XGROUP CREATE t g $ MKSTREAM",
            "XREADGROUP GROUP g bob STREAMS s t > >",
            "XREADGROUP GROUP g bob STREAMS s t 0 0",
            "XDEL s 2-0",
            "XREADGROUP GROUP g alice STREAMS s 0",
            "XPENDING s g",
            "XPENDING s g IDLE 0 - + 10 alice",
            "XCLAIM s g bob 0 1-0 2-0",
            "XAUTOCLAIM s g bob 0 0 JUSTID",
            "XINFO STREAM s",
            "XINFO STREAM s FULL",
            "XINFO STREAM t FULL",
            "XINFO CONSUMERS s g",
            "XGROUP SETID s g 99-0",
            "XINFO GROUPS s",
            "XINFO HELP",
            "EVAL \"return redis.call('xinfo', 'groups', KEYS[1])\" 1 s",
            "EVAL \"redis.setresp(3); return redis.call('xreadgroup', 'GROUP', 'g', 'c', 'STREAMS', KEYS[1], '0')\" 1 s",
        ],
    ),
    // ---------------------------------------------------------------- lists
    (
        "list pushes, pops and reads",
        &[
            "RPUSH l a b c",
            "LPUSH l x y",
            "LPUSH l",
            "LRANGE l 0 -1",
            "LLEN l",
            "LLEN nokey",
            "RPUSHX l z",
            "LPUSHX l w v",
            "RPUSHX nokey z",
            "LPUSHX nokey z",
            "EXISTS nokey",
            "LRANGE l 0 -1",
            "LRANGE l -3 -1",
            "LRANGE l -100 100",
            "LRANGE l 5 2",
            "LRANGE l 100 200",
            "LRANGE l x 1",
            "LRANGE l 0 y",
            "LRANGE nokey 0 -1",
            "LRANGE nokey x 1",
            "LINDEX l 0",
            "LINDEX l -1",
            "LINDEX l 100",
            "LINDEX l -100",
            "LINDEX l x",
            "LINDEX nokey x",
            "LINDEX nokey 0",
            "LPOP l",
            "RPOP l",
            "LPOP l 2",
            "RPOP l 2",
            "LPOP l 0",
            "LPOP l -1",
            "LPOP l x",
            "LPOP l 1 2",
            "RPOP l 1 2 3",
            "LPOP nokey",
            "LPOP nokey 2",
            "LPOP nokey 0",
            "RPOP nokey 0",
            "LRANGE l 0 -1",
            "RPOP l 100",
            "EXISTS l",
            "RPUSH n 1 2 3 -5 100000 9223372036854775807 1.5 \"\"",
            "LRANGE n 0 -1",
            "RPUSH big 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19",
            "LRANGE big 5 9",
            "LINDEX big 19",
            "?HELLO 3",
            "LPOP big",
            "LPOP big 2",
            "LPOP nokey",
            "LPOP nokey 2",
            "LPOP big 0",
            "LRANGE big 0 1",
        ],
    ),
    (
        "list edits",
        &[
            "RPUSH l a b c a d a",
            "LSET l 0 A",
            "LSET l -1 Z",
            "LSET l 6 q",
            "LSET l -7 q",
            "LSET l x q",
            "LSET nokey 0 q",
            "LSET nokey x q",
            "LRANGE l 0 -1",
            "LINSERT l BEFORE b B",
            "LINSERT l after b b2",
            "LINSERT l before nothere x",
            "LINSERT l middle b x",
            "LINSERT nokey before a x",
            "LINSERT nokey middle a x",
            "LRANGE l 0 -1",
            "LREM l 0 nothere",
            "RPUSH r a b a c a d a",
            "LREM r 2 a",
            "LRANGE r 0 -1",
            "LREM r -1 a",
            "LRANGE r 0 -1",
            "LREM r 0 a",
            "LRANGE r 0 -1",
            "LREM r x a",
            "LREM nokey 1 a",
            "LREM r 0 b",
            "LREM r 0 c",
            "LREM r 0 d",
            "EXISTS r",
            "RPUSH t 1 2 3 4 5 6",
            "LTRIM t 1 -2",
            "LRANGE t 0 -1",
            "LTRIM t -100 100",
            "LRANGE t 0 -1",
            "LTRIM t 2 1",
            "EXISTS t",
            "LTRIM nokey 0 1",
            "LTRIM t x 1",
            "RPUSH t 1 2 3",
            "LTRIM t 5 10",
            "EXISTS t",
            "RPUSH t 1 2 3",
            "LTRIM t 0 -1",
            "LRANGE t 0 -1",
            "RPUSH m 0 1 2 3 4 5 6 7 8 9",
            "LINSERT m after 4 4.5",
            "LINSERT m after 4 4.25",
            "LINSERT m after 4 4.125",
            "LINSERT m before 0 -1",
            "LINSERT m after 9 10",
            "LRANGE m 0 -1",
        ],
    ),
    (
        "lpos",
        &[
            "RPUSH l a b c 1 2 3 c c",
            "LPOS l c",
            "LPOS l c RANK 2",
            "LPOS l c RANK -1",
            "LPOS l c RANK -2",
            "LPOS l c COUNT 0",
            "LPOS l c COUNT 2",
            "LPOS l c RANK 2 COUNT 0",
            "LPOS l c RANK -1 COUNT 2",
            "LPOS l c COUNT 0 MAXLEN 3",
            "LPOS l c RANK -1 COUNT 0 MAXLEN 2",
            "LPOS l c MAXLEN 1",
            "LPOS l nothere",
            "LPOS l nothere COUNT 5",
            "LPOS l c RANK 10",
            "LPOS l c RANK 0",
            "LPOS l c RANK x",
            "LPOS l c RANK -9223372036854775808",
            "LPOS l c RANK -9223372036854775808 COUNT 1",
            "LPOS l c RANK -9223372036854775808 COUNT 2 MAXLEN 7",
            "LPOS l c RANK 9223372036854775807",
            "LPOS l c RANK -9223372036854775807",
            "LPOS l c COUNT -1",
            "LPOS l c COUNT x",
            "LPOS l c MAXLEN -1",
            "LPOS l c MAXLEN x",
            "LPOS l c FOO 1",
            "LPOS l c RANK",
            "LPOS l c COUNT 1 RANK 1 MAXLEN 0 COUNT 0",
            "LPOS nokey c",
            "LPOS nokey c COUNT 1",
            "LPOS nokey c RANK 0",
            "?HELLO 3",
            "LPOS l c",
            "LPOS l nothere",
            "LPOS nokey c",
            "LPOS l c COUNT 0",
        ],
    ),
    (
        "list moves",
        &[
            "RPUSH s a b c",
            "LMOVE s d LEFT RIGHT",
            "LMOVE s d RIGHT LEFT",
            "LMOVE s d left left",
            "LRANGE d 0 -1",
            "EXISTS s",
            "LMOVE s d LEFT RIGHT",
            "LMOVE d d LEFT RIGHT",
            "LRANGE d 0 -1",
            "RPOPLPUSH d d",
            "LRANGE d 0 -1",
            "LMOVE d s UP RIGHT",
            "LMOVE d s LEFT DOWN",
            "LMOVE nokey s UP RIGHT",
            "SET str v",
            "LMOVE d str LEFT RIGHT",
            "LMOVE str d LEFT RIGHT",
            "LMOVE nokey str LEFT RIGHT",
            "RPOPLPUSH d str",
            "RPOPLPUSH nokey d",
            "RPOPLPUSH d e",
            "LRANGE d 0 -1",
            "LRANGE e 0 -1",
            "RPUSH one x",
            "RPOPLPUSH one one",
            "LRANGE one 0 -1",
            "RPOPLPUSH one other",
            "EXISTS one",
            "RPUSH m1 a b c",
            "RPUSH m2 d",
            "LMPOP 2 nokey m1 LEFT",
            "LMPOP 2 nokey m1 RIGHT COUNT 5",
            "LMPOP 1 nokey LEFT",
            "LMPOP 2 m2 m1 LEFT COUNT 3",
            "LMPOP 0 m1 LEFT",
            "LMPOP x m1 LEFT",
            "LMPOP 1 m1",
            "LMPOP 1 m1 UP",
            "LMPOP 1 m1 LEFT COUNT 0",
            "LMPOP 1 m1 LEFT COUNT -1",
            "LMPOP 1 m1 LEFT COUNT",
            "LMPOP 1 m1 LEFT COUNT 1 COUNT 1",
            "LMPOP 5 m1 LEFT",
            "LMPOP 1 str LEFT",
            "LMPOP 2 nokey str LEFT",
            "RPUSH m1 a",
            "?HELLO 3",
            "LMPOP 1 m1 LEFT",
            "LMPOP 1 nokey LEFT",
            "LMOVE nokey d LEFT LEFT",
        ],
    ),
    (
        "list blocking commands that do not block",
        &[
            "RPUSH b a b c",
            "BLPOP nokey b 0",
            "BRPOP nokey b 0.5",
            "BLMPOP 0 2 nokey b LEFT COUNT 5",
            "BLPOP nokey 0.01",
            "BRPOP nokey 0.01",
            "BLMPOP 0.01 1 nokey RIGHT",
            "BLMOVE nokey d LEFT RIGHT 0.01",
            "BRPOPLPUSH nokey d 0.01",
            "BLPOP b x",
            "BLPOP b -1",
            "BLPOP b inf",
            "BLPOP b \" 1\"",
            "BLMPOP x 1 b LEFT",
            "BLMPOP 0 0 b LEFT",
            "BLMPOP 0 1 b",
            "BLMPOP 0 1 b LEFT COUNT 0",
            "BLMOVE b d UP RIGHT 0",
            "BLMOVE b d LEFT RIGHT x",
            "BLMOVE b d LEFT RIGHT -1",
            "BRPOPLPUSH b d x",
            "RPUSH b 1 2 3",
            "BLMOVE b d LEFT RIGHT 0",
            "BRPOPLPUSH b d 0",
            "LRANGE d 0 -1",
            "SET str v",
            "BLPOP nokey str 0",
            "BLMPOP 0 1 str LEFT",
            "BLMOVE str d LEFT RIGHT 0",
            "BLMOVE b str LEFT RIGHT 0",
            "BRPOPLPUSH str d 0",
            "MULTI",
            "BLPOP nokey 0",
            "BRPOP nokey 0",
            "BLMPOP 0 1 nokey LEFT",
            "BLMOVE nokey d LEFT RIGHT 0",
            "BRPOPLPUSH nokey d 0",
            "RPUSH b z",
            "BRPOP nokey b 0",
            "EXEC",
            "EVAL \"return redis.call('blpop', KEYS[1], 0)\" 1 b",
            "EVAL \"return redis.call('blmpop', 0, 1, KEYS[1], 'left')\" 1 nokey",
            "EVAL \"return redis.call('brpoplpush', KEYS[1], 'x', 0)\" 1 nokey",
            "RPUSH b 7",
            "?HELLO 3",
            "BLPOP b 0",
            "BLPOP nokey 0.01",
            "BLMOVE nokey d LEFT RIGHT 0.01",
            "RPUSH b 1 2",
            "BLMPOP 0 1 b RIGHT COUNT 2",
            "CLIENT UNBLOCK 999999",
            "CLIENT UNBLOCK 999999 ERROR",
            "CLIENT UNBLOCK 999999 timeout",
            "CLIENT UNBLOCK x",
            "CLIENT UNBLOCK x FOO",
            "CLIENT UNBLOCK -1",
            "CLIENT UNBLOCK 1 TIMEOUT extra",
        ],
    ),
    (
        "list types and introspection",
        &[
            "RPUSH l a b 1 2",
            "TYPE l",
            "OBJECT ENCODING l",
            "MEMORY USAGE l",
            "RPUSH huge 0123456789012345678901234567890123456789012345678901234567890123456789 x",
            "MEMORY USAGE huge",
            "SET str v",
            "LPUSH str a",
            "RPUSH str a",
            "LPUSHX str a",
            "LRANGE str 0 -1",
            "LLEN str",
            "LINDEX str 0",
            "LINDEX str x",
            "LSET str 0 a",
            "LSET str x a",
            "LINSERT str before a b",
            "LREM str 0 a",
            "LTRIM str 0 1",
            "LPOS str a",
            "LPOP str",
            "LPOP str 0",
            "RPOP str 2",
            "GET l",
            "SADD l x",
            "ZADD l 1 x",
            "HSET l f v",
            "INCR l",
            "APPEND l x",
            "RENAME l l2",
            "LRANGE l2 0 -1",
            "COPY l2 l3",
            "LRANGE l3 0 -1",
            "LPUSH l3 new",
            "LRANGE l2 0 -1",
            "EXPIRE l3 100",
            "RPUSH l3 more",
            "TTL l3",
            "DEL l2 l3",
            "EXISTS l2 l3",
            "SET l2 v",
            "RPUSH ll a",
            "RENAME ll l2",
            "TYPE l2",
            "LRANGE l2 0 -1",
            "RPUSH q a",
            "SET q b",
            "GET q",
        ],
    ),
    (
        "zset algebra",
        &[
            "ZADD a 1 x 2 y 3 z",
            "ZADD b 10 y 20 z 30 w",
            "SADD s y w q",
            "ZUNION 2 a b",
            "ZUNION 2 a b WITHSCORES",
            "ZUNION 2 a b WEIGHTS 2 1 WITHSCORES",
            "ZUNION 2 a b AGGREGATE MIN WITHSCORES",
            "ZUNION 2 a b AGGREGATE max withscores",
            "ZUNION 3 a b s WITHSCORES",
            "ZUNION 2 a nokey WITHSCORES",
            "ZINTER 2 a b WITHSCORES",
            "ZINTER 2 a b WEIGHTS 1 -1 AGGREGATE SUM WITHSCORES",
            "ZINTER 3 a b s WITHSCORES",
            "ZINTER 2 a nokey",
            "ZDIFF 2 a b WITHSCORES",
            "ZDIFF 2 b s WITHSCORES",
            "ZDIFF 1 nokey",
            "ZINTERCARD 2 a b",
            "ZINTERCARD 2 a b LIMIT 1",
            "ZINTERCARD 2 a b LIMIT -1",
            "ZINTERCARD 2 a b LIMIT x",
            "ZINTERCARD 0 a",
            "ZINTERCARD 3 a b",
            "ZUNION 0 a",
            "ZUNION -1 a",
            "ZUNION x a",
            "ZUNION 3 a b",
            "ZUNION 2 a b WEIGHTS 1",
            "ZUNION 2 a b WEIGHTS 1 x",
            "ZUNION 2 a b AGGREGATE avg",
            "ZUNION 2 a b AGGREGATE",
            "ZUNION 2 a b bogus",
            "ZDIFF 2 a b WEIGHTS 1 1",
            "ZDIFF 2 a b AGGREGATE SUM",
            "ZADD inf 1 x",
            "ZADD ninf -inf x",
            "ZUNION 2 inf ninf WEIGHTS +inf 1 WITHSCORES",
            "ZUNION 2 inf ninf WEIGHTS 0 1 WITHSCORES",
            "ZADD za 5 m",
            "ZADD zb inf m 1 x",
            "ZINTER 2 za zb WEIGHTS 1 0 WITHSCORES",
            "ZINTER 2 za zb WEIGHTS 1 0 AGGREGATE MIN WITHSCORES",
            "ZINTER 2 zb za WEIGHTS 0 1 AGGREGATE MAX WITHSCORES",
            "ZADD zc 1 m 2 x 3 y",
            "ZADD zd 1e16 m",
            "ZADD ze -1e16 m 1 z",
            "ZUNION 3 zc zd ze WITHSCORES",
            "ZADD z0 0 m",
            "ZUNION 1 z0 WEIGHTS -1 WITHSCORES",
            "ZINTER 1 z0 WEIGHTS -1 WITHSCORES",
            "ZUNIONSTORE z1 1 z0 WEIGHTS -1",
            "ZSCORE z1 m",
            "ZINCRBY z0 nx m",
            "ZINCRBY z0 INCR m",
            "ZADD z0 INCR -0 m",
            "ZUNIONSTORE dst 2 a b WEIGHTS 1 2",
            "ZRANGE dst 0 -1 WITHSCORES",
            "ZINTERSTORE dst 2 a b AGGREGATE MAX",
            "ZRANGE dst 0 -1 WITHSCORES",
            "ZDIFFSTORE dst 2 a b",
            "ZRANGE dst 0 -1 WITHSCORES",
            "ZINTERSTORE dst 2 a nokey",
            "EXISTS dst",
            "ZUNIONSTORE dst 2 a b WITHSCORES",
            "ZUNIONSTORE dst 0 a",
            "ZUNIONSTORE a 2 a b",
            "ZRANGE a 0 -1 WITHSCORES",
            "ZRANGESTORE r a 0 1",
            "ZRANGE r 0 -1 WITHSCORES",
            "ZRANGESTORE r a (10 +inf BYSCORE LIMIT 0 1",
            "ZRANGE r 0 -1 WITHSCORES",
            "ZRANGESTORE r a 0 1 WITHSCORES",
            "ZRANGESTORE r nokey 0 -1",
            "EXISTS r",
            "ZRANGESTORE r s 0 -1",
            "MULTI",
            "ZADD m 1 a 2 b",
            "ZINCRBY m 2 a",
            "ZRANGE m 0 -1 WITHSCORES",
            "ZUNIONSTORE m2 2 m a WEIGHTS 1 10",
            "ZPOPMAX m2",
            "EXEC",
            "EVAL \"redis.call('zadd', KEYS[1], 5, 'x', 1.5, 'y') return redis.call('zrange', KEYS[1], 0, -1, 'withscores')\" 1 ev",
            "EVAL \"return redis.call('zscore', KEYS[1], 'y')\" 1 ev",
            "ZADD big 1 aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "OBJECT ENCODING big",
            "?HELLO 3",
            "ZUNION 2 a b WITHSCORES",
            "ZDIFF 2 a b",
            "EVAL \"return redis.call('zscore', KEYS[1], 'y')\" 1 ev",
        ],
    ),
    (
        "zset wrong types, random members and scans",
        &[
            "SET str v",
            "SADD s m",
            "ZADD z 1 a 2 b 3 c",
            "ZADD str 1 a",
            "ZINCRBY str 1 a",
            "ZREM str a",
            "ZCARD str",
            "ZSCORE str a",
            "ZMSCORE s a",
            "ZRANK str a",
            "ZRANGE s 0 -1",
            "ZRANGEBYSCORE str 0 1",
            "ZCOUNT str 0 1",
            "ZLEXCOUNT str - +",
            "ZPOPMIN str",
            "ZPOPMIN str 0",
            "ZMPOP 2 nokey str MIN",
            "ZRANDMEMBER str",
            "ZSCAN str 0",
            "ZREMRANGEBYRANK str 0 1",
            "ZUNION 2 z str",
            "ZUNION 2 z str WEIGHTS x",
            "ZUNIONSTORE d 2 z str",
            "ZUNIONSTORE d 2 z str AGGREGATE x",
            "ZRANGESTORE d str 0 1",
            "SADD z m",
            "GET z",
            "HSET z f v",
            "ZRANDMEMBER z 3",
            "ZRANDMEMBER z 10 WITHSCORES",
            "ZRANDMEMBER z 0",
            "ZRANDMEMBER nokey",
            "ZRANDMEMBER nokey 3",
            "ZRANDMEMBER z x",
            "ZRANDMEMBER z 1 2",
            "ZRANDMEMBER z 1 WITHSCORES x",
            "ZRANDMEMBER z -9223372036854775808",
            "ZRANDMEMBER z 9223372036854775807 WITHSCORES",
            "ZADD one 7 only",
            "ZRANDMEMBER one",
            "ZRANDMEMBER one -3 WITHSCORES",
            "ZSCAN z 0",
            "ZSCAN z 0 MATCH a*",
            "ZSCAN z 0 COUNT 1",
            "ZSCAN z x",
            "ZSCAN z 0 COUNT 0",
            "ZSCAN nokey 0",
            "ZADD f 0.1 a -inf b 123456789012345678 c 1e19 d -0 e 4611686018427387903 g",
            "ZSCAN f 0",
            "MEMORY USAGE f",
            "OBJECT ENCODING f",
            "?HELLO 3",
            "ZRANDMEMBER z 10 WITHSCORES",
            "ZRANDMEMBER one -2 WITHSCORES",
            "ZSCAN f 0",
        ],
    ),
    // ---------------------------------------------------------------- GET / SET
    (
        "get and set",
        &[
            "GET k",
            "SET k v",
            "GET k",
            "SET k \"\"",
            "GET k",
            "SET k \"hello world\"",
            "GET k",
            "get k",
            "gEt k",
        ],
    ),
    (
        "set nx xx get",
        &[
            "SET k v NX",
            "SET k w NX",
            "GET k",
            "SET k w XX",
            "GET k",
            "SET nope v XX",
            "EXISTS nope",
            "SET k v NX XX",
            "SET k v XX NX",
            "SET k x GET",
            "SET fresh x GET",
            "SET k y NX GET",
            "SET k z XX GET",
            "SET missing z XX GET",
            "GET missing",
            "SET missing2 z NX GET",
            "SET k v get nx",
            "SET k v nx nx",
            "SET k v xx xx",
            "SET k v GET GET",
        ],
    ),
    (
        "set expiry options",
        &[
            "SET k v EX 100",
            "TTL k",
            "SET k v PX 100000",
            "TTL k",
            "SET k v EXAT 4102444800",
            "EXPIRETIME k",
            "PEXPIRETIME k",
            "SET k v PXAT 4102444800123",
            "PEXPIRETIME k",
            "EXPIRETIME k",
            "SET k v EX 10 EX 20",
            "TTL k",
            "SET k v ex 30",
            "TTL k",
            "SET k v EX 10 PX 10",
            "SET k v EX 10 EXAT 4102444800",
            "SET k v PX 10 PXAT 4102444800000",
            "SET k v EX",
            "SET k v PX",
            "SET k v EXAT",
            "SET k v PXAT",
            "SET k v EX abc",
            "SET k v EX 1.5",
            "SET k v EX \" 10\"",
            "SET k v EX 0",
            "SET k v PX 0",
            "SET k v EXAT 0",
            "SET k v PXAT 0",
            "SET k v EX -1",
            "SET k v PX -1",
            "SET k v EX 9999999999999999",
            "SET k v EX 9223372036854775",
            "SET k v EX 9223372036854775807",
            "SET k v PX 9223372036854775807",
            "SET k v EXAT 9223372036854775807",
            "SET k v EXAT 9223372036854775",
            "PEXPIRETIME k",
            "SET k v PXAT 9223372036854775807",
            "PEXPIRETIME k",
            "SET k v EX -9223372036854775808",
            "SET k v FOO",
            "SET k v EX 10 FOO",
            "GET k",
        ],
    ),
    (
        "set keepttl",
        &[
            "SET k v EXAT 4102444800",
            "SET k w KEEPTTL",
            "EXPIRETIME k",
            "GET k",
            "SET k x",
            "EXPIRETIME k",
            "SET k v KEEPTTL KEEPTTL",
            "SET k v KEEPTTL EX 10",
            "SET k v EX 10 KEEPTTL",
            "SET k v KEEPTTL PXAT 4102444800000",
            "SET k v XX KEEPTTL GET",
            "SET new v KEEPTTL",
            "TTL new",
        ],
    ),
    (
        "set with an expiry in the past deletes",
        &[
            "SET k v PXAT 1",
            "GET k",
            "EXISTS k",
            "SET k v EXAT 1 GET",
            "SET k v",
            "SET k w EXAT 1 GET",
            "GET k",
            "SET k v",
            "SET k w PXAT 1 XX",
            "EXISTS k",
        ],
    ),
    (
        "setnx setex psetex",
        &[
            "SETNX k v",
            "SETNX k w",
            "GET k",
            "SETEX k 100 v",
            "TTL k",
            "SETEX k 0 v",
            "SETEX k -5 v",
            "SETEX k abc v",
            "SETEX k 9223372036854775807 v",
            "SETEX k 9223372036854775 v",
            "PSETEX k 100000 v",
            "TTL k",
            "PSETEX k 0 v",
            "PSETEX k -1 v",
            "PSETEX k 9223372036854775807 v",
            "PSETEX k 1.5 v",
            "SETNX k",
            "SETEX k 10",
            "PSETEX k 10",
            "SETEX k 10 v extra",
        ],
    ),
    (
        "getset getdel",
        &[
            "GETSET k a",
            "GETSET k b",
            "GET k",
            "SET t v EX 100",
            "GETSET t w",
            "TTL t",
            "GETDEL k",
            "GETDEL k",
            "EXISTS k",
            "GETDEL nope",
            "GETSET k",
            "GETDEL k extra",
        ],
    ),
    (
        "getex",
        &[
            "GETEX nope",
            "GETEX nope EX 10",
            "EXISTS nope",
            "SET k v EX 100",
            "GETEX k",
            "TTL k",
            "GETEX k PERSIST",
            "TTL k",
            "GETEX k EX 50",
            "TTL k",
            "GETEX k PX 70000",
            "TTL k",
            "GETEX k EXAT 4102444800",
            "EXPIRETIME k",
            "GETEX k PXAT 4102444800999",
            "PEXPIRETIME k",
            "GETEX k PERSIST PERSIST",
            "TTL k",
            "GETEX k persist",
            "GETEX k EX 10 EX 20",
            "TTL k",
            "GETEX k EX 10 PERSIST",
            "GETEX k PERSIST EX 10",
            "GETEX k EX 10 PX 10",
            "GETEX k FOO",
            "GETEX k EX",
            "GETEX k KEEPTTL",
            "GETEX k NX",
            "GETEX k XX",
            "GETEX k GET",
            "GETEX k EX abc",
            "GETEX k EX 0",
            "GETEX k PX 0",
            "GETEX k EX -1",
            "GETEX k EXAT 0",
            "GETEX k EX 9223372036854775807",
            "GETEX k PXAT 1",
            "GET k",
            "EXISTS k",
        ],
    ),
    // ---------------------------------------------------------------- multi-key strings
    (
        "mget mset msetnx",
        &[
            "MSET a 1 b 2",
            "MGET a b c",
            "MGET c",
            "MGET a a a",
            "MSET a 1 b",
            "MSET a",
            "MSET a 10 a 20",
            "GET a",
            "SET t v EX 100",
            "MSET t w",
            "TTL t",
            "MSETNX a 1 c 3",
            "EXISTS c",
            "MSETNX c 3 d 4",
            "MGET c d",
            "MSETNX e",
            "MSETNX e 1 f",
            "MSETNX e 1 e 2",
            "GET e",
        ],
    ),
    // ---------------------------------------------------------------- append / strlen / ranges
    (
        "append strlen",
        &[
            "APPEND k abc",
            "APPEND k def",
            "GET k",
            "STRLEN k",
            "STRLEN nope",
            "APPEND n \"\"",
            "EXISTS n",
            "STRLEN n",
            "SET t v EX 100",
            "APPEND t w",
            "TTL t",
            "GET t",
            "APPEND k \"\\x00\\xff\\r\\n\"",
            "GET k",
            "STRLEN k",
            "APPEND k",
            "STRLEN",
            "STRLEN k k",
        ],
    ),
    (
        "getrange substr",
        &[
            "SET s \"Hello World\"",
            "GETRANGE s 0 4",
            "GETRANGE s -3 -1",
            "GETRANGE s 0 -1",
            "GETRANGE s 10 100",
            "GETRANGE s 100 200",
            "GETRANGE s -100 -50",
            "GETRANGE s -1 -5",
            "GETRANGE s 5 3",
            "GETRANGE s -100 100",
            "GETRANGE s 0 -100",
            "GETRANGE s -1 0",
            "GETRANGE s 11 11",
            "GETRANGE s 10 10",
            "GETRANGE s 0 0",
            "GETRANGE s 9223372036854775807 -9223372036854775808",
            "GETRANGE s -9223372036854775808 9223372036854775807",
            "GETRANGE nope 0 -1",
            "GETRANGE nope 5 1",
            "GETRANGE s a 1",
            "GETRANGE s 0 b",
            "GETRANGE s 0 9223372036854775808",
            "GETRANGE s \"\" 1",
            "SUBSTR s 1 3",
            "SUBSTR s -5 -1",
            "SUBSTR nope 0 1",
            "SUBSTR s x 1",
            "SET e \"\"",
            "GETRANGE e 0 -1",
            "GETRANGE e 0 0",
            "GETRANGE e -1 -1",
            "GETRANGE s 0",
            "SUBSTR s 0 1 2",
        ],
    ),
    (
        "setrange",
        &[
            "SETRANGE k 0 abc",
            "SETRANGE k 5 xy",
            "GET k",
            "SETRANGE k 1 ZZ",
            "GET k",
            "SETRANGE k 100 \"\"",
            "STRLEN k",
            "SETRANGE nk 3 \"\"",
            "EXISTS nk",
            "SETRANGE nk 0 \"\"",
            "EXISTS nk",
            "SETRANGE nk2 2 ab",
            "GET nk2",
            "SETRANGE k -1 x",
            "SETRANGE k abc x",
            "SETRANGE k 1.5 x",
            "SETRANGE k 536870912 x",
            "SETRANGE k 536870911 xy",
            "SETRANGE k 9223372036854775807 x",
            "SETRANGE k 9223372036854775808 x",
            "SETRANGE nk3 536870912 \"\"",
            "SETRANGE nk3 536870912 x",
            "EXISTS nk3",
            "SETRANGE nk3 -1 \"\"",
            "SET t v EX 100",
            "SETRANGE t 0 w",
            "TTL t",
            "SETRANGE k 0",
        ],
    ),
    // ---------------------------------------------------------------- counters
    (
        "incr decr incrby decrby",
        &[
            "INCR i",
            "INCR i",
            "DECR i",
            "INCRBY i 10",
            "DECRBY i 5",
            "INCRBY i -3",
            "DECRBY i -3",
            "INCRBY i 0",
            "GET i",
            "DECR n",
            "DECRBY m 5",
            "SET t 5 EX 100",
            "INCR t",
            "TTL t",
            "INCR i extra",
            "INCRBY i",
            "DECRBY i",
            "INCR",
        ],
    ),
    (
        "integer boundaries and overflow",
        &[
            "SET i 9223372036854775807",
            "INCR i",
            "INCRBY i 1",
            "DECR i",
            "SET i -9223372036854775808",
            "DECR i",
            "DECRBY i 1",
            "INCR i",
            "INCRBY x 9223372036854775807",
            "INCRBY x 1",
            "INCRBY x -9223372036854775808",
            "DECRBY y 9223372036854775807",
            "DECRBY y 1",
            "DECRBY y 1",
            "DECRBY z -9223372036854775808",
            "DECRBY z 9223372036854775808",
            "INCRBY z 9223372036854775808",
            "INCRBY z -9223372036854775809",
            "GET z",
            "SET big 9223372036854775808",
            "INCR big",
            "SET neg -9223372036854775809",
            "DECR neg",
        ],
    ),
    (
        "non-integer values and increments",
        &[
            "INCRBY x abc",
            "INCRBY x 1.5",
            "INCRBY x \" 1\"",
            "INCRBY x \"1 \"",
            "INCRBY x +1",
            "INCRBY x 01",
            "INCRBY x -0",
            "INCRBY x \"\"",
            "DECRBY x abc",
            "EXISTS x",
            "SET s abc",
            "INCR s",
            "SET s \" 1\"",
            "INCR s",
            "SET s \"1 \"",
            "INCR s",
            "SET s 01",
            "INCR s",
            "SET s \"\"",
            "INCR s",
            "SET s -0",
            "INCR s",
            "SET s 1.0",
            "INCR s",
            "SET s +5",
            "DECR s",
            "SET s \"1\\x00\"",
            "INCR s",
            "SET s 0",
            "INCR s",
            "SET s -1",
            "INCR s",
        ],
    ),
    (
        "incrbyfloat",
        &[
            "INCRBYFLOAT f 0.1",
            "INCRBYFLOAT f 0.2",
            "GET f",
            "INCRBYFLOAT f -0.3",
            "INCRBYFLOAT f 5.0e3",
            "INCRBYFLOAT f 1.5E+2",
            "INCRBYFLOAT f \"  1\"",
            "INCRBYFLOAT f \"1 \"",
            "INCRBYFLOAT f abc",
            "INCRBYFLOAT f nan",
            "INCRBYFLOAT f NaN",
            "INCRBYFLOAT f inf",
            "INCRBYFLOAT f -inf",
            "INCRBYFLOAT f infinity",
            "INCRBYFLOAT f 0x10",
            "INCRBYFLOAT f \"\"",
            "INCRBYFLOAT f 1e",
            "INCRBYFLOAT f .5",
            "INCRBYFLOAT f 5.",
            "INCRBYFLOAT f +1",
            "INCRBYFLOAT f 1e400",
            "INCRBYFLOAT f 1e-400",
            "INCRBYFLOAT f -0",
            "INCRBYFLOAT f 1.23456789012345678901",
            "INCRBYFLOAT f -1000000000000000000000",
            "GET f",
            "SET h 10.50",
            "INCRBYFLOAT h 0.1",
            "SET i 5",
            "INCRBYFLOAT i 2",
            "INCRBYFLOAT z 3.0e-5",
            "INCRBYFLOAT z 1",
            "SET w 1",
            "INCRBYFLOAT w 1e17",
            "INCRBYFLOAT w 0.00000000000000001",
            "INCRBYFLOAT v 1e-17",
            "INCRBYFLOAT u -1.5",
            "SET u \"1 \"",
            "INCRBYFLOAT u 1",
            "SET u \" 1\"",
            "INCRBYFLOAT u 1",
            "SET u 1e5",
            "INCRBYFLOAT u 1",
            "SET u abc",
            "INCRBYFLOAT u 1",
            "SET t 1.5 EX 100",
            "INCRBYFLOAT t 1",
            "TTL t",
            "INCRBYFLOAT f",
            "INCRBYFLOAT f 1 2",
        ],
    ),
    (
        "incrbyfloat to infinity",
        &[
            "SET g 1e308",
            "INCRBYFLOAT g 1e308",
            "STRLEN g",
            "INCRBYFLOAT g 1e308",
            "INCRBYFLOAT r 1.7976931348623157e308",
            "INCRBYFLOAT r 1.7976931348623157e308",
            "SET m -1e308",
            "INCRBYFLOAT m -1e308",
            "STRLEN m",
            "INCRBYFLOAT n 1e4932",
            "INCRBYFLOAT n 1e4931",
            "INCRBYFLOAT n 1e4931",
            "STRLEN n",
            "INCRBYFLOAT n 1e4932",
            "INCRBYFLOAT n -inf",
            // Redis adds in long double: 1e308 * 10 is finite there; 1.1e4932 * 2 is not.
            "SET ten 1e308",
            "INCRBYFLOAT ten 9e308",
            "STRLEN ten",
            "SET huge 1.1e4932",
            "INCRBYFLOAT huge 1.1e4932",
            "SET neghuge -1.1e4932",
            "INCRBYFLOAT neghuge -1.1e4932",
            "GET neghuge",
        ],
    ),
    // ---------------------------------------------------------------- keys
    (
        "del unlink exists touch type",
        &[
            "SET a 1",
            "SET b 2",
            "DEL a a b c",
            "DEL a",
            "SET a 1",
            "UNLINK a nope",
            "UNLINK a",
            "SET a 1",
            "EXISTS a",
            "EXISTS a a nope a",
            "EXISTS nope",
            "TOUCH a a nope",
            "TOUCH nope",
            "TYPE a",
            "TYPE nope",
            "DEL",
            "UNLINK",
            "EXISTS",
            "TOUCH",
            "TYPE",
            "TYPE a b",
        ],
    ),
    (
        "expire family with conditions",
        &[
            "SET k v",
            "EXPIRE k 100",
            "TTL k",
            "EXPIRE k 100 NX",
            "EXPIRE k 200 XX",
            "TTL k",
            "EXPIRE k 50 GT",
            "EXPIRE k 300 GT",
            "TTL k",
            "EXPIRE k 400 LT",
            "EXPIRE k 10 LT",
            "TTL k",
            "EXPIRE k 9 XX GT", // 9 s is below the ~10 s left whatever the clock does between commands
            "EXPIRE k 20 XX GT",
            "TTL k",
            "EXPIRE k 5 XX LT",
            "TTL k",
            "EXPIRE k 10 nx",
            "EXPIRE k 10 NX NX",
            "EXPIRE k 10 xx xx",
            "PERSIST k",
            "PERSIST k",
            "EXPIRE k 10 XX",
            "EXPIRE k 10 GT",
            "EXPIRE k 10 LT",
            "TTL k",
            "PERSIST k",
            "EXPIRE k 10 NX",
            "TTL k",
            "PEXPIRE k 100000 gt",
            "TTL k",
            "EXPIRE nope 10",
            "EXPIRE nope 10 NX",
            "PERSIST nope",
        ],
    ),
    (
        "expire option errors",
        &[
            "SET k v",
            "EXPIRE k 10 NX XX",
            "EXPIRE k 10 XX NX",
            "EXPIRE k 10 GT LT",
            "EXPIRE k 10 NX GT",
            "EXPIRE k 10 NX LT",
            "EXPIRE k 10 LT GT",
            "EXPIRE k 10 FOO",
            "EXPIRE k 10 nx FOO",
            "EXPIRE k 10 foo bar",
            "EXPIRE k 10 \"a\\x00b\"",
            "EXPIRE k 10 \"a\\r\\nb\"",
            "EXPIRE k 10 \"a\\r\\n\"",
            "EXPIRE k 10 \"\\r\\na\\nb\\n\"",
            "EXPIRE k 10 \"\\xff\\xfe\"",
            "EXPIRE k 10 \"\"",
            "PEXPIRE k 10 FOO",
            "EXPIREAT k 10 FOO",
            "PEXPIREAT k 10 FOO",
            "EXPIRE k abc FOO",
            "EXPIRE k abc",
            "EXPIRE k 1.5",
            "EXPIRE k \"\"",
            "EXPIRE k \" 10\"",
            "PEXPIRE k abc",
            "EXPIREAT k abc",
            "PEXPIREAT k abc",
            "TTL k",
            "EXPIRE k",
            "PEXPIRE k",
            "EXPIREAT k",
            "PEXPIREAT k",
        ],
    ),
    (
        "expire time limits",
        &[
            "SET k v",
            "EXPIRE k 9223372036854775807",
            "EXPIRE k -9223372036854775808",
            "EXPIRE k 9223372036854775",
            "EXPIRE k 9223372036854774",
            "PEXPIRE k 9223372036854775807",
            "PEXPIRE k -9223372036854775808",
            "EXPIREAT k 9223372036854775807",
            "EXPIREAT k 9223372036854775",
            "PEXPIRETIME k",
            "EXPIREAT k -9223372036854775808",
            "EXISTS k",
            "SET k v",
            "PEXPIREAT k 9223372036854775807",
            "PEXPIRETIME k",
            "PEXPIREAT k 9223372036854775806",
            "PEXPIRETIME k",
            "TTL k",
        ],
    ),
    (
        "expireat and expiretime",
        &[
            "SET k v",
            "EXPIREAT k 4102444800",
            "EXPIRETIME k",
            "PEXPIRETIME k",
            "PEXPIREAT k 4102444800123",
            "EXPIRETIME k",
            "PEXPIRETIME k",
            "EXPIREAT k 4102444800 GT",
            "EXPIREAT k 4102444801 GT",
            "EXPIRETIME k",
            "EXPIREAT k 4102444802 LT",
            "EXPIREAT k 4102444799 LT",
            "EXPIRETIME k",
            "PEXPIREAT k 4102444800000 NX",
            "PEXPIREAT k 4102444800000 XX",
            "PEXPIRETIME k",
            "EXPIRETIME nope",
            "PEXPIRETIME nope",
            "SET p v",
            "EXPIRETIME p",
            "PEXPIRETIME p",
            "EXPIRETIME",
            "PEXPIRETIME p p",
        ],
    ),
    (
        "ttl and pttl without expiry",
        &[
            "TTL nope",
            "PTTL nope",
            "SET p v",
            "TTL p",
            "PTTL p",
            "TTL",
            "PTTL p p",
            "PERSIST",
            "PERSIST p p",
        ],
    ),
    (
        "expiring in the past deletes",
        &[
            "SET p v",
            "EXPIRE p 0",
            "EXISTS p",
            "SET p v",
            "EXPIRE p -1",
            "EXISTS p",
            "SET p v",
            "EXPIREAT p 1",
            "EXISTS p",
            "SET p v",
            "PEXPIREAT p 0",
            "EXISTS p",
            "SET p v",
            "PEXPIRE p -100 GT",
            "EXISTS p",
            "PEXPIRE p -100 NX",
            "EXISTS p",
            "SET p v EX 100",
            "PEXPIRE p -100 GT",
            "EXISTS p",
            "SET p v EX 100",
            "EXPIRE p -5 LT",
            "EXISTS p",
        ],
    ),
    (
        "keys patterns",
        &[
            "KEYS *",
            "MSET hello 1 hallo 2 hxllo 3 hllo 4 heeeello 5 \"h*llo\" 6 ab 7 \"a\\x00b\" 8 \"\" 9",
            "MSET \"\\xff\\xfe\" 10 \"a\\r\\nb\" 11 Hello 12 \"h]llo\" 13 \"h-llo\" 14 \"h\\\\llo\" 15",
            "KEYS *",
            "KEYS h?llo",
            "KEYS h*llo",
            "KEYS h[ae]llo",
            "KEYS h[^e]llo",
            "KEYS h[a-b]llo",
            "KEYS h[b-a]llo",
            "KEYS \"h\\\\*llo\"",
            "KEYS \"h\\\\?llo\"",
            "KEYS \"\"",
            "KEYS a*",
            "KEYS \"a\\x00*\"",
            "KEYS [",
            "KEYS h[",
            "KEYS h[a",
            "KEYS *[a-",
            "KEYS \"*\\\\\"",
            "KEYS \"h[\\\\]llo\"",
            "KEYS \"h[\\\\]]llo\"",
            "KEYS [z-a]b",
            "KEYS \"h[]]llo\"",
            "KEYS \"h[-]llo\"",
            "KEYS \"h\\\\\\\\llo\"",
            "KEYS H*",
            "KEYS ***",
            "KEYS ?",
            "KEYS \"\\xff*\"",
            "KEYS \"a?b\"",
            "KEYS *llo*",
            "KEYS h[^a-z]llo",
            "KEYS nomatch",
            "DBSIZE",
            "KEYS",
            "KEYS a b",
            "DBSIZE x",
        ],
    ),
    (
        "scan full iterations",
        &[
            "SCAN 0",
            "MSET a 1 b 2 c 3 ab 4",
            "SCAN 0 COUNT 1000",
            "SCAN 0 MATCH a* COUNT 1000",
            "SCAN 0 MATCH nomatch COUNT 1000",
            "SCAN 0 TYPE string COUNT 1000",
            "SCAN 0 TYPE String COUNT 1000",
            "SCAN 0 TYPE list COUNT 1000",
            "SCAN 0 TYPE foo COUNT 1000",
            "SCAN 0 count 5 count 1000 match b",
            "SCAN 00 COUNT 1000",
            "SCAN +0 COUNT 1000",
            "SCAN \"\" COUNT 1000",
            "SCAN \"0\\x00junk\" COUNT 1000",
        ],
    ),
    (
        "scan cursor and option errors",
        &[
            "SCAN -1",
            "SCAN 18446744073709551615",
            "SCAN -18446744073709551615",
            "SCAN x",
            "SCAN 18446744073709551616",
            "SCAN -18446744073709551616",
            "SCAN \" 0\"",
            "SCAN \"0 \"",
            "SCAN -",
            "SCAN +",
            "SCAN +-1",
            "SCAN 0x10",
            "SCAN 1.0",
            "SCAN 0 COUNT 0",
            "SCAN 0 COUNT -1",
            "SCAN 0 COUNT x",
            "SCAN 0 COUNT",
            "SCAN 0 MATCH",
            "SCAN 0 TYPE",
            "SCAN 0 FOO",
            "SCAN 0 FOO bar",
            "SCAN x FOO",
            "SCAN",
        ],
    ),
    (
        "randomkey",
        &[
            "RANDOMKEY",
            "SET only 1",
            "RANDOMKEY",
            "RANDOMKEY x",
        ],
    ),
    (
        "rename renamenx",
        &[
            "RENAME a b",
            "RENAMENX a b",
            "SET a 1",
            "RENAME a a",
            "RENAMENX a a",
            "GET a",
            "RENAME a b",
            "GET a",
            "GET b",
            "SET c 3",
            "RENAMENX b c",
            "GET b",
            "RENAMENX b d",
            "GET d",
            "RENAMENX zz d",
            "SET e v EXAT 4102444800",
            "RENAME e f",
            "EXPIRETIME f",
            "SET g w",
            "RENAME f g",
            "EXPIRETIME g",
            "SET h v EXAT 4102444800",
            "SET i w",
            "RENAME i h",
            "TTL h",
            "RENAME \"\\x00\" x",
            "SET \"\\x00\" bin",
            "RENAME \"\\x00\" \"\\xff\"",
            "GET \"\\xff\"",
            "RENAME a",
            "RENAME a b c",
            "RENAMENX a",
        ],
    ),
    (
        "dbsize and flushdb",
        &[
            "DBSIZE",
            "MSET a 1 b 2 c 3",
            "DBSIZE",
            "DEL a",
            "DBSIZE",
            "FLUSHDB x",
            "FLUSHDB async x",
            "FLUSHDB a b",
            "DBSIZE",
            "FLUSHDB ASYNC",
            "DBSIZE",
            "SET a 1",
            "FLUSHDB sync",
            "DBSIZE",
            "SET a 1",
            "FLUSHDB",
            "DBSIZE",
        ],
    ),
    // ---------------------------------------------------------------- binary safety
    (
        "binary keys and values",
        &[
            "SET \"\\x00\\xff\\r\\n\" \"v\\x00\\r\\n\\xff\"",
            "GET \"\\x00\\xff\\r\\n\"",
            "MGET \"\\x00\\xff\\r\\n\" x",
            "KEYS \"\\x00*\"",
            "STRLEN \"\\x00\\xff\\r\\n\"",
            "APPEND \"\\x00\\xff\\r\\n\" \"\\x00\"",
            "GETRANGE \"\\x00\\xff\\r\\n\" 0 -1",
            "GETRANGE \"\\x00\\xff\\r\\n\" 1 2",
            "SETRANGE \"\\x00\\xff\\r\\n\" 1 \"\\r\\n\"",
            "GET \"\\x00\\xff\\r\\n\"",
            "EXISTS \"\\x00\\xff\\r\\n\" \"\\x00\"",
            "TYPE \"\\x00\\xff\\r\\n\"",
            "SET \"\\r\\n\" \"\\r\\n\"",
            "GET \"\\r\\n\"",
            "SET \"*1\\r\\n$4\\r\\nPING\\r\\n\" x",
            "GET \"*1\\r\\n$4\\r\\nPING\\r\\n\"",
            "DEL \"\\x00\\xff\\r\\n\" \"\\r\\n\"",
            "KEYS *",
        ],
    ),
    (
        "empty keys and values",
        &[
            "SET \"\" \"\"",
            "GET \"\"",
            "EXISTS \"\"",
            "STRLEN \"\"",
            "APPEND \"\" \"\"",
            "TYPE \"\"",
            "GETRANGE \"\" 0 -1",
            "INCR \"\"",
            "SET \"\" 5",
            "INCR \"\"",
            "MGET \"\" \"\"",
            "RENAME \"\" e",
            "GET e",
            "DEL \"\" e",
            "ECHO \"\"",
            "PING \"\"",
        ],
    ),
    // ---------------------------------------------------------------- connection
    (
        "ping echo",
        &[
            "PING",
            "ping",
            "PING hello",
            "PING \"hello world\"",
            "PING \"\\x00\\xff\"",
            "PING a b",
            "ECHO x",
            "ECHO \"\\x00\\r\\n\"",
            "ECHO",
            "ECHO a b",
        ],
    ),
    (
        "select",
        &[
            "SELECT 16",
            "SELECT -1",
            "SELECT abc",
            "SELECT 0x",
            "SELECT \" 9\"",
            "SELECT 9.0",
            "SELECT \"\"",
            "SELECT 4294967296",
            "SELECT 2147483648",
            "SELECT 2147483647",
            "SELECT -2147483648",
            "SELECT -2147483649",
            "SELECT 9223372036854775808",
            "SELECT 9",
            "SELECT",
            "SELECT 9 9",
        ],
    ),
    (
        "databases are separate",
        &[
            "SET k nine",
            "SELECT 10",
            "FLUSHDB",
            "GET k",
            "SET k ten",
            "SELECT 9",
            "GET k",
            "SELECT 10",
            "GET k",
            "FLUSHDB",
            "SELECT 9",
            "GET k",
        ],
    ),
    (
        "hello",
        &[
            "?HELLO",
            "?HELLO 2",
            "HELLO 4",
            "HELLO 1",
            "HELLO 0",
            "HELLO -1",
            "HELLO abc",
            "HELLO 3.0",
            "HELLO 99999999999999999999",
            "HELLO 2 FOO",
            "HELLO 2 SETNAME",
            "HELLO 2 AUTH",
            "HELLO 2 AUTH default",
            "HELLO 2 \"\\r\\nx\\r\\n\"",
            "HELLO 2 \"a\\x00b\"",
            "HELLO 3 AUTH foo x",
            "HELLO 3 AUTH Default x",
            "HELLO 3 AUTH default x FOO",
            "HELLO 2 SETNAME \"a b\"",
            "HELLO 2 SETNAME \"a b\" AUTH foo x",
            "HELLO 2 AUTH foo x SETNAME \"a b\"",
            "HELLO 2 AUTH default x SETNAME \"a b\"",
            "CLIENT GETNAME",
            "?HELLO 2 AUTH default anything SETNAME first SETNAME second",
            "CLIENT GETNAME",
            "?HELLO 2 SETNAME \"\"",
            "CLIENT GETNAME",
            // Options apply as they are read: the name stays set though AUTH then fails.
            "HELLO 3 SETNAME early AUTH foo x",
            "CLIENT GETNAME",
            "HELLO 3 AUTH foo x FOO",
            "HELLO 3 FOO AUTH foo x",
            "HELLO 3 AUTH foo x SETNAME",
            "HELLO 3 AUTH default y AUTH foo x",
            "HELLO 4 AUTH foo x",
            "HELLO 3 SETNAME \"a b\" FOO",
            "HELLO 3 SETNAME late FOO",
            "CLIENT GETNAME",
            "GET stillresp2",
        ],
    ),
    (
        "resp3 replies",
        &[
            "?HELLO 3",
            "GET nope",
            "SET k v",
            "MGET k nope",
            "SET k v GET",
            "SET k v NX",
            "SET nk v XX GET",
            "GETEX nope",
            "GETDEL nope",
            "GETSET nope x",
            "INCRBYFLOAT f 1.5",
            "CONFIG GET maxmemory",
            "CONFIG GET nosuch",
            "EXPIRETIME nope",
            "PING",
            "PING x",
            "KEYS *",
            "SCAN 0 COUNT 1000",
            "ECHO x",
            "TYPE k",
            "EXISTS k",
            "RENAMENX k k",
            "COMMAND INFO nosuch",
            "CLIENT GETNAME",
            "CLIENT SETNAME foo",
            "CLIENT GETNAME",
            "INFO nosuchsection",
            "FOO",
            "GET",
            "?HELLO 2",
            "GET nope",
        ],
    ),
    (
        "client name",
        &[
            "CLIENT GETNAME",
            "CLIENT SETNAME foo",
            "CLIENT GETNAME",
            "CLIENT SETNAME \"a b\"",
            "CLIENT SETNAME \"a\\nb\"",
            "CLIENT SETNAME \"\\xff\"",
            "CLIENT SETNAME \"\\x7f\"",
            "CLIENT SETNAME ~!",
            "CLIENT GETNAME",
            "CLIENT SETNAME \"\"",
            "CLIENT GETNAME",
            "client setname Bar",
            "CLIENT GETNAME",
            "CLIENT SETNAME",
            "CLIENT SETNAME a b",
            "CLIENT GETNAME x",
            "CLIENT ID x",
            "CLIENT INFO x",
            "CLIENT HELP x",
            "CLIENT FOO",
            "CLIENT \"\\xff\"",
            "CLIENT \"a\\x00bcd\"",
            "CLIENT",
        ],
    ),
    (
        "client list filters",
        &[
            "CLIENT LIST x",
            "CLIENT LIST ID",
            "CLIENT LIST ID abc",
            "CLIENT LIST ID 1 abc",
            "CLIENT LIST ID 999999999",
            "CLIENT LIST ID -5",
            "CLIENT LIST TYPE foo",
            "CLIENT LIST TYPE \"a\\r\\n\"",
            "CLIENT LIST TYPE master",
            "CLIENT LIST TYPE Master",
            "CLIENT LIST TYPE normal x",
            "CLIENT LIST TYPE",
        ],
    ),
    (
        "client no-evict",
        &[
            "CLIENT NO-EVICT on",
            "CLIENT NO-EVICT OFF",
            "CLIENT NO-EVICT maybe",
            "CLIENT NO-EVICT \"\"",
            "CLIENT REPLY maybe",
            "CLIENT REPLY ON",
        ],
    ),
    (
        "reset",
        &["RESET x", "SET k v", "RESET"],
    ),
    (
        "quit",
        &["PING", "QUIT x"],
    ),
    // ---------------------------------------------------------------- server
    (
        "time info command",
        &[
            "TIME x",
            "INFO a b c d",
            "INFO nosuchsection",
            "COMMAND FOO",
            "COMMAND \"\\xff\"",
            "COMMAND COUNT x",
            "COMMAND HELP x",
            "COMMAND INFO nosuch",
            "COMMAND INFO nosuch alsonot",
            "COMMAND DOCS nosuch",
            "COMMAND LIST x",
            "COMMAND LIST FILTERBY",
            "COMMAND LIST FILTERBY PATTERN",
            "COMMAND LIST FILTERBY PATTERN ping",
            "COMMAND LIST FILTERBY PATTERN PiNg",
            "COMMAND LIST FILTERBY PATTERN p?ng",
            "COMMAND LIST FILTERBY PATTERN getrange",
            "COMMAND LIST FILTERBY PATTERN a b",
            "COMMAND LIST FILTERBY PATTERN config|get",
            "COMMAND LIST FILTERBY PATTERN CLIENT|SETNAME",
            "COMMAND LIST FILTERBY PATTERN nosuch*",
            "COMMAND LIST FILTERBY MODULE x",
            "COMMAND LIST FILTERBY ACLCAT nosuch",
            "COMMAND LIST FILTERBY FOO x",
            "COMMAND LIST FILTERBY PATTERN ping FILTERBY PATTERN echo",
        ],
    ),
    (
        "config get",
        &[
            "CONFIG GET maxmemory",
            "CONFIG GET MAXMEMORY",
            "CONFIG GET MaxMemory-Policy",
            "CONFIG GET databases",
            "CONFIG GET maxmemory-policy",
            "CONFIG GET timeout",
            "CONFIG GET proto-max-bulk-len",
            "CONFIG GET appendonly",
            "CONFIG GET save",
            "CONFIG GET appendfsync",
            "CONFIG GET tcp-keepalive",
            "CONFIG GET client-query-buffer-limit",
            "CONFIG GET cluster-enabled",
            "CONFIG GET protected-mode",
            "CONFIG GET maxclients",
            "CONFIG GET busy-reply-threshold",
            "CONFIG GET lua-time-limit",
            "CONFIG GET maxmemory maxmemory",
            "CONFIG GET maxmemory MAXMEMORY",
            "CONFIG GET MAXMEMORY maxmemory",
            "CONFIG GET maxmemory-p*",
            "CONFIG GET MAXMEMORY-P*",
            "CONFIG GET maxmemory-polic?",
            "CONFIG GET maxmemory-[p]olicy",
            "CONFIG GET maxmemory-p* maxmemory-policy",
            "CONFIG GET maxmemory-policy maxmemory-p*",
            "CONFIG GET nosuchparam",
            "CONFIG GET nosuch*",
            "CONFIG GET \"\"",
            "CONFIG GET \"maxmemory\\x00\"",
            "CONFIG GET",
            "CONFIG GET *max*",
            "CONFIG GET notify-keyspace-events",
            "CONFIG GET slowlog*",
            "CONFIG GET timeout maxclients hz",
            "CONFIG GET *repl* *cluster*",
            "CONFIG GET hash-max-*-entries HASH-MAX-ZIPLIST-ENTRIES",
            "CONFIG GET appendonly save databases lua-time-limit busy-reply-threshold",
            "?HELLO 3",
            "CONFIG GET slowlog* timeout",
            "CONFIG GET nosuch",
        ],
    ),
    (
        "latency",
        &[
            "LATENCY",
            "LATENCY FOO",
            "LATENCY HELP",
            "LATENCY HISTORY",
            "LATENCY HISTORY no-such-event",
            "LATENCY LATEST x",
            "LATENCY DOCTOR x",
        ],
    ),
    (
        // Without `[cluster] nodes`, as a redis-server without cluster support answers.
        "cluster",
        &[
            "CLUSTER",
            "CLUSTER FOO",
            "CLUSTER KEYSLOT",
            "CLUSTER KEYSLOT foo",
            "CLUSTER INFO",
            "CLUSTER INFO x",
            "CLUSTER SLOTS",
            "CLUSTER SHARDS",
            "CLUSTER NODES",
            "CLUSTER MYID",
            "CLUSTER HELP",
            "READONLY",
            "READONLY x",
            "READWRITE",
            "ASKING",
        ],
    ),
    (
        "slowlog",
        &[
            "SLOWLOG",
            "SLOWLOG FOO",
            "SLOWLOG HELP",
            "SLOWLOG LEN x",
            "SLOWLOG GET abc",
            "SLOWLOG GET -2",
            "SLOWLOG GET 1.5",
            "SLOWLOG GET 1 2",
            "SLOWLOG get 1 2 3",
            "SLOWLOG RESET x",
        ],
    ),
    (
        "config errors",
        &[
            "CONFIG",
            "CONFIG FOO",
            "CONFIG \"a\\r\\nb\"",
            "CONFIG SET",
            "CONFIG SET a",
            "CONFIG SET a b c",
            "CONFIG SET foo bar",
            "CONFIG SET \"\\xff\" bar",
            "CONFIG SET foo bar baz qux",
            "CONFIG SET maxmemory 0 foo bar",
            "CONFIG SET maxmemory 0 foo",
            "CONFIG SET daemonize no",
            "CONFIG SET Databases 3",
            "CONFIG SET dir bad",
            "CONFIG SET dbfilename bad",
            "CONFIG SET timeout bad",
            "CONFIG SET timeout -1",
            "CONFIG SET timeout 99999999999",
            "CONFIG SET timeout 01",
            "CONFIG SET maxclients 0",
            "CONFIG SET maxclients bad",
            "CONFIG SET slowlog-max-len -1",
            "CONFIG SET slowlog-log-slower-than -2",
            "CONFIG SET notify-keyspace-events q",
            "CONFIG SET timeout 1 timeout 2",
            "CONFIG SET timeout 1 TIMEOUT 2",
            "CONFIG SET timeout 5 maxclients bad",
            "CONFIG SET timeout 5 daemonize no",
            "CONFIG SET daemonize no foo bar",
            "CONFIG SET foo bar daemonize no",
            "CONFIG SET timeout 5 notify-keyspace-events q",
            "CONFIG GET timeout notify-keyspace-events",
            "CONFIG RESETSTAT x",
            "CONFIG HELP x",
        ],
    ),
    // ---------------------------------------------------------------- unknown commands
    (
        "unknown commands",
        &[
            "FOO",
            "FOO a b c",
            "foo \"a b\"",
            "\"\\x00bad\" x",
            "\"a\\r\\nb\" \"c\\r\\nd\"",
            "\"a\\r\\n\"",
            "FOO \"\\xff\\xfe\"",
            "\"\\xff\"",
            "FOO \"a\\x00b\" c",
            "FOO \"\"",
            "\"\" a",
            "FOO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "FOO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb cccccccccccccc",
            "FOO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b c",
            "FOO aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa b c",
            "FOO \"\\xe2\\x82\\xac\\xe2\\x82\\xac\" \"\\xe2\\x82\"",
            "sluice.flushx",
            "GETT k",
        ],
    ),
];

/// Where Sluice answers differently from Redis 7.0 on purpose: the command, Sluice's reply, and
/// why. Checked against Sluice alone (some of these must not reach a shared oracle).
const INTENDED_DIFFERENCES: &[(&str, &[u8], &str)] = &[
    (
        "CLIENT SETINFO lib-name redis-rs",
        b"+OK\r\n",
        "CLIENT SETINFO is Redis 7.2's; clients send it on connect. Redis 7.0: \
         -ERR unknown subcommand 'SETINFO'. Try CLIENT HELP.",
    ),
    ("CLIENT SETINFO lib-ver 0.27.6", b"+OK\r\n", "as above"),
    (
        "CLIENT KILL MAXAGE 999999",
        b":0\r\n",
        "CLIENT KILL MAXAGE is Redis 7.4's filter (connections older than so many seconds); \
         Redis 7.0: -ERR syntax error",
    ),
    (
        "CONFIG SET maxmemory 100mb",
        b"-ERR CONFIG SET failed (possibly related to argument 'maxmemory') - Sluice cannot change this parameter at run time; change the config file and restart\r\n",
        "Sluice's configuration is its file; Redis would apply the value (+OK)",
    ),
    (
        "CONFIG GET bind",
        b"*2\r\n$4\r\nbind\r\n$9\r\n127.0.0.1\r\n",
        "Sluice shows the address it is configured with; Redis's default is `127.0.0.1 -::1`",
    ),
    (
        "CONFIG SET hz 10",
        b"-ERR CONFIG SET failed (possibly related to argument 'hz') - Sluice cannot change this parameter at run time; change the config file and restart\r\n",
        "a Redis parameter Sluice does not use",
    ),
    (
        "SLUICE.FLUSH",
        b"+OK\r\n",
        "Sluice's own command; Redis: unknown command",
    ),
];

/// Why the pub/sub commands are not in this single-connection corpus.
const PUBSUB_ELSEWHERE: &str = "a SUBSCRIBE answers one reply per channel and messages cross \
     connections: tests/pubsub.rs compares them, arity errors included, over several \
     connections with a redis-server of its own (the shared oracle's channels are server-wide)";

/// Commands never sent to the oracle, and why.
const NOT_COMPARED: &[(&str, &str)] = &[
    ("shutdown", "would stop the shared oracle"),
    (
        "flushall",
        "would empty every database of the shared oracle",
    ),
    (
        "auth",
        "users and passwords differ from the oracle's; tests/security.rs covers AUTH",
    ),
    (
        "acl",
        "users differ from the oracle's; tests/security.rs covers ACL",
    ),
    (
        "function",
        "FUNCTION FLUSH would empty the oracle's functions; tests/scripting.rs",
    ),
    ("subscribe", PUBSUB_ELSEWHERE),
    ("unsubscribe", PUBSUB_ELSEWHERE),
    ("psubscribe", PUBSUB_ELSEWHERE),
    ("punsubscribe", PUBSUB_ELSEWHERE),
    ("ssubscribe", PUBSUB_ELSEWHERE),
    ("sunsubscribe", PUBSUB_ELSEWHERE),
    ("publish", PUBSUB_ELSEWHERE),
    ("spublish", PUBSUB_ELSEWHERE),
    ("pubsub", PUBSUB_ELSEWHERE),
    ("sluice.flush", "Sluice's own command"),
    ("sluice.keyspaces", "Sluice's own command"),
    ("sluice.deadletters", "Sluice's own command"),
];

/// Sub-commands whose replies differ on purpose (see the module docs), or that are compared
/// on a redis-server of their own (`tests/admin.rs`: CLIENT KILL and PAUSE would disturb the
/// shared oracle's clients).
const SUBCOMMANDS_NOT_COMPARED: &[&str] = &["client|setinfo", "client|kill", "client|pause"];

/// A command Sluice must never send to the oracle.
fn forbidden(args: &[Vec<u8>]) -> Option<&'static str> {
    let name = args.first()?.to_ascii_lowercase();
    let word = |i: usize| args.get(i).map(|a| a.to_ascii_lowercase());
    match &name[..] {
        b"flushall" | b"shutdown" | b"swapdb" | b"move" | b"migrate" | b"debug" | b"save"
        | b"bgsave" | b"bgrewriteaof" | b"replicaof" | b"slaveof" | b"failover" | b"acl"
        | b"module" | b"function" => Some("touches the whole server"),
        b"script"
            if (word(1).as_deref() == Some(b"kill") && args.len() == 2)
                || (word(1).as_deref() == Some(b"flush")
                    && (args.len() == 2
                        || (args.len() == 3
                            && matches!(word(2).as_deref(), Some(b"sync" | b"async"))))) =>
        {
            Some("flushes or kills the oracle's scripts")
        }
        b"select" => {
            let db = std::str::from_utf8(args.get(1)?)
                .ok()?
                .parse::<i64>()
                .ok()?;
            ((0..9).contains(&db) && args.len() == 2).then_some("selects a shared database")
        }
        b"config"
            if word(1).as_deref() == Some(b"set")
                && args.len() >= 4
                && args.len().is_multiple_of(2) =>
        {
            // Redis checks every name, then every value, before applying any: one pair it
            // refuses makes the call safe.
            let refused = |pair: &[Vec<u8>]| {
                let (name, value) = (pair[0].to_ascii_lowercase(), &pair[1][..]);
                name.starts_with(b"foo")
                    || name == b"a"
                    || name == b"\xff"
                    || matches!(
                        &name[..],
                        b"daemonize" | b"databases" | b"dir" | b"dbfilename"
                    )
                    || value.starts_with(b"bad")
                    || matches!(
                        (&name[..], value),
                        (b"timeout", b"-1" | b"99999999999" | b"01")
                            | (b"maxclients", b"0")
                            | (b"slowlog-max-len", b"-1")
                            | (b"slowlog-log-slower-than", b"-2")
                            | (b"notify-keyspace-events", b"q")
                    )
            };
            let pairs: Vec<&[Vec<u8>]> = args[2..].chunks(2).collect();
            let repeated = pairs
                .iter()
                .enumerate()
                .any(|(i, p)| pairs[..i].iter().any(|q| q[0].eq_ignore_ascii_case(&p[0])));
            (!(repeated || pairs.iter().any(|p| refused(p))))
                .then_some("could change the oracle's configuration")
        }
        b"slowlog" if word(1).as_deref() == Some(b"reset") && args.len() == 2 => {
            Some("empties the oracle's slow log")
        }
        b"config" if word(1).as_deref() == Some(b"resetstat") && args.len() == 2 => {
            Some("resets the oracle's statistics")
        }
        b"client" if matches!(word(1).as_deref(), Some(b"kill" | b"pause")) => {
            Some("affects other clients")
        }
        _ => None,
    }
}

/// The elements of an array reply, and the bytes before them.
fn elements(reply: &[u8]) -> (&[u8], Vec<&[u8]>) {
    let header_end = reply.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut items = Vec::new();
    let mut at = header_end;
    while at < reply.len() {
        let n = reply_len(&reply[at..]).unwrap();
        items.push(&reply[at..at + n]);
        at += n;
    }
    (&reply[..header_end], items)
}

/// The reply with the order of its keys made canonical, for KEYS and SCAN (and the like), and
/// the clock readings of XPENDING and XINFO zeroed ([`without_stream_times`]).
fn canonical(args: &[Vec<u8>], reply: Vec<u8>) -> Vec<u8> {
    if !matches!(reply.first(), Some(b'*' | b'%' | b'~')) {
        return reply;
    }
    let sorted = |array: &[u8]| {
        let (header, mut items) = elements(array);
        items.sort();
        [header.to_vec(), items.concat()].concat()
    };
    match &args[0].to_ascii_lowercase()[..] {
        b"keys" => sorted(&reply),
        // Redis lists CONFIG GET's pairs in its dictionary's order, seeded per process.
        b"config" if args.len() > 1 && args[1].eq_ignore_ascii_case(b"get") => {
            let (header, items) = elements(&reply);
            let mut pairs: Vec<Vec<u8>> = items.chunks(2).map(|p| p.concat()).collect();
            pairs.sort();
            [header.to_vec(), pairs.concat()].concat()
        }
        b"scan" | b"sscan" => {
            let (header, items) = elements(&reply);
            [header, items[0], &sorted(items[1])].concat()
        }
        // A set's members come in its hash table's order in Redis (SRANDMEMBER and SPOP with
        // a count: the order of the picks).
        b"smembers" | b"sinter" | b"sunion" | b"sdiff" | b"srandmember" | b"spop" => sorted(&reply),
        b"eval" if reply.first() == Some(&b'*') => sorted(&reply),
        b"xpending" | b"xinfo" => without_stream_times(args, &reply).unwrap_or(reply),
        _ => reply,
    }
}

/// A stream group reply with its clock readings replaced by `:0`, or `None` if the command
/// carries none: each entry's idle time (3rd item) in XPENDING's extended form; each
/// consumer's `idle` in XINFO CONSUMERS; in XINFO STREAM FULL, each group's PEL entries'
/// delivery time (3rd item), each consumer's `seen-time` and its PEL entries' delivery time
/// (2nd item). Only integers there are replaced (a reply of another shape stays as it is and
/// still has to match), in RESP2 arrays of names and values as in RESP3 maps.
fn without_stream_times(args: &[Vec<u8>], reply: &[u8]) -> Option<Vec<u8>> {
    let word = |i: usize| args.get(i).map(|a| a.to_ascii_lowercase());
    let (mut tree, _) = Resp::parse(reply);
    match (word(0).as_deref(), word(1).as_deref()) {
        (Some(b"xpending"), _) if args.len() > 3 => zero_nth(items_mut(&mut tree), 2),
        (Some(b"xinfo"), Some(b"consumers")) => {
            for consumer in items_mut(&mut tree) {
                zero(field(consumer, b"idle"));
            }
        }
        (Some(b"xinfo"), Some(b"stream")) if word(3).as_deref() == Some(b"full") => {
            for group in list(&mut tree, b"groups") {
                zero_nth(list(group, b"pending"), 2);
                for consumer in list(group, b"consumers") {
                    zero(field(consumer, b"seen-time"));
                    zero_nth(list(consumer, b"pending"), 1);
                }
            }
        }
        _ => return None,
    }
    let mut out = Vec::new();
    tree.encode(&mut out);
    Some(out)
}

/// The items of an aggregate; none for a scalar (an error, a nil).
fn items_mut(tree: &mut Resp) -> &mut [Resp] {
    match tree {
        Resp::Aggregate(_, items) => items.as_mut_slice(),
        Resp::Scalar(_) => Default::default(),
    }
}

/// The value of `name` in a RESP3 map or a RESP2 array of names and values.
fn field<'a>(map: &'a mut Resp, name: &[u8]) -> Option<&'a mut Resp> {
    let items = items_mut(map);
    let at = (0..items.len()).step_by(2).find(|&i| {
        matches!(&items[i], Resp::Scalar(s) if s.starts_with(b"$") && !s.starts_with(b"$-"))
            && items[i].text() == name
    })?;
    items.get_mut(at + 1)
}

/// The items of the aggregate value of `name` (see [`field`]); none if there is no such one.
fn list<'a>(map: &'a mut Resp, name: &[u8]) -> &'a mut [Resp] {
    field(map, name).map(items_mut).unwrap_or_default()
}

/// An integer made `:0`; anything else left as it is.
fn zero(item: Option<&mut Resp>) {
    if let Some(Resp::Scalar(bytes)) = item {
        if bytes.starts_with(b":") {
            *bytes = b":0\r\n".to_vec();
        }
    }
}

/// The `n`th item of each entry of a list made `:0` if it is an integer.
fn zero_nth(entries: &mut [Resp], n: usize) {
    for entry in entries {
        zero(items_mut(entry).get_mut(n));
    }
}

fn redis_addr(url: &str) -> String {
    let rest = url.strip_prefix("redis://").unwrap_or(url);
    let host = rest.split('/').next().unwrap_or(rest);
    let host = host.rsplit('@').next().unwrap_or(host);
    if host.contains(':') {
        host.to_string()
    } else {
        format!("{host}:6379")
    }
}

/// Both servers, one connection each.
struct Pair {
    redis: RawClient,
    sluice: RawClient,
}

impl Pair {
    async fn open(redis_addr: &str, sluice: &TestServer) -> Pair {
        let mut pair = Pair {
            redis: RawClient::try_connect(redis_addr)
                .await
                .expect("redis-server went away"),
            sluice: sluice.client().await,
        };
        for side in [&mut pair.redis, &mut pair.sluice] {
            assert_eq!(side.run(&format!("SELECT {DB}")).await, b"+OK\r\n");
            assert_eq!(side.run("FLUSHDB").await, b"+OK\r\n");
        }
        pair
    }
}

/// A difference between the two servers.
struct Mismatch {
    case: String,
    command: String,
    redis: Vec<u8>,
    sluice: Vec<u8>,
}

async fn run_case(
    redis_addr: &str,
    sluice: &TestServer,
    name: &str,
    commands: &[String],
) -> Vec<Mismatch> {
    let mut pair = Pair::open(redis_addr, sluice).await;
    let mut mismatches = Vec::new();
    let mut closed = false;
    for line in commands {
        assert!(!closed, "case {name:?}: command after QUIT/RESET");
        let (compare, text) = match line.strip_prefix('?') {
            Some(rest) => (false, rest),
            None => (true, line.as_str()),
        };
        let args = split(text);
        if let Some(why) = forbidden(&args) {
            panic!("case {name:?}: {text:?} is not sent to the oracle: {why}");
        }
        let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let redis = canonical(&args, pair.redis.cmd(&argv).await);
        let sluice = canonical(&args, pair.sluice.cmd(&argv).await);
        if compare && redis != sluice {
            mismatches.push(Mismatch {
                case: name.to_string(),
                command: text.to_string(),
                redis,
                sluice,
            });
        }
        // QUIT closes; RESET goes back to database 0, where nothing may follow.
        closed = args[0].eq_ignore_ascii_case(b"quit")
            || (args[0].eq_ignore_ascii_case(b"reset") && args.len() == 1);
    }
    mismatches
}

/// Wrong-arity calls for every command and sub-command in Sluice's table.
fn arity_cases() -> Vec<(String, Vec<String>)> {
    let wrong = |name: &str, arity: i32| -> Vec<String> {
        let prefix: Vec<&str> = name.split('|').collect();
        let counts: Vec<i32> = if arity > 0 {
            vec![arity - 1, arity + 1]
        } else {
            vec![-arity - 1]
        };
        counts
            .into_iter()
            .filter(|&n| n as usize >= prefix.len())
            .map(|n| {
                let mut words: Vec<String> = prefix.iter().map(|w| w.to_uppercase()).collect();
                while words.len() < n as usize {
                    words.push(format!("a{}", words.len()));
                }
                words.join(" ")
            })
            .collect()
    };
    let mut cases = Vec::new();
    for spec in commands() {
        if NOT_COMPARED.iter().any(|(n, _)| *n == spec.name) {
            continue;
        }
        let mut commands = wrong(spec.name, spec.arity);
        for (sub, arity) in spec.subcommands {
            let full = format!("{}|{sub}", spec.name);
            if !SUBCOMMANDS_NOT_COMPARED.contains(&full.as_str()) {
                commands.extend(wrong(&full, *arity));
            }
        }
        if !commands.is_empty() {
            cases.push((format!("arity of {}", spec.name), commands));
        }
    }
    cases
}

/// Raw requests, including malformed ones: everything sent back until the connection closes
/// (or stays idle) must be identical.
const RAW: &[&[u8]] = &[
    b"*x\r\n",
    b"*\r\n",
    b"*1\r\n+x\r\n",
    b"*1\r\n*1\r\n",
    b"*1\r\n\xff\r\n",
    b"*1\r\n\n\r\n",
    b"*1\r\n$-3\r\n",
    b"*1\r\n$\r\n",
    b"*1\r\n$abc\r\n",
    b"*1\r\n$999999999999\r\n",
    b"*1\r\n$536870913\r\n",
    b"*99999999999\r\n",
    b"*1\n$4\r\nPING\r\n",
    b"*1\r$4\r\nPING\r\n",
    b"SET k \"a b\r\n",
    b"SET k 'a\r\n",
    b"SET k \"a\"b\r\n",
    b"PING\r\n\r\n\r\n  \r\nPING\r\n",
    b"*0\r\n*-1\r\nPING\r\n",
    b"$4\r\nPING\r\n",
    b"*1\r\n$4\r\nPINGxx",
    b"*1\r\n$4\r\nPI\r\nG\r\n",
    b"*2\r\n$4\r\nECHO\r\n$3\r\na\r\n\r\n",
    b"*1\r\n$0\r\n\r\n",
    b"ECHO a\x0bb\r\n",
    b"\x0bECHO\x0bx\r\n",
    b"ECHO \"x\" y\r\n",
    b"ECHO \"\\xzz\"\r\n",
    b"\x00\r\nPING\r\n",
    b"PING\r\nEC\x00HO x\r\nPING\r\n",
    b"*1\x00\r\n$4\r\nPING\r\n",
    b"*1\r\n$4\x00\r\nPING\r\n",
    b"PING\r\nQUIT\r\nPING\r\n",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_replies_exactly_as_redis() {
    let url = std::env::var("SLUICE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let addr = redis_addr(&url);
    if RawClient::try_connect(&addr).await.is_none() {
        println!("skipped: no redis-server at {url}");
        return;
    }
    let sluice = TestServer::start_with(Durability::Os).await;

    // Every command Sluice serves is exercised (or excluded with a reason).
    let mut cases: Vec<(String, Vec<String>)> = CORPUS
        .iter()
        .map(|(name, commands)| {
            (
                name.to_string(),
                commands.iter().map(|c| c.to_string()).collect(),
            )
        })
        .collect();
    for spec in commands() {
        let used = cases.iter().flat_map(|(_, c)| c).any(|line| {
            let args = split(line.trim_start_matches('?'));
            args[0].eq_ignore_ascii_case(spec.name.as_bytes())
        });
        let excluded = NOT_COMPARED.iter().any(|(n, _)| *n == spec.name);
        assert!(
            used || excluded,
            "{} is neither in the corpus nor excluded",
            spec.name
        );
    }
    cases.extend(arity_cases());

    let mut mismatches = Vec::new();
    let mut commands = 0;
    for (name, lines) in &cases {
        commands += lines.len();
        mismatches.extend(run_case(&addr, &sluice, name, lines).await);
    }

    for raw in RAW {
        let mut replies = Vec::new();
        for side in [
            RawClient::try_connect(&addr).await.expect("redis"),
            sluice.client().await,
        ] {
            let mut side = side;
            assert_eq!(side.run(&format!("SELECT {DB}")).await, b"+OK\r\n");
            side.send(raw).await;
            let (bytes, closed) = side.read_until_close(Duration::from_millis(500)).await;
            replies.push((bytes, closed));
        }
        commands += 1;
        if replies[0] != replies[1] {
            let tag = |(b, closed): &(Vec<u8>, bool)| {
                let mut b = b.clone();
                b.extend_from_slice(if *closed { b"<closed>" } else { b"<open>" });
                b
            };
            mismatches.push(Mismatch {
                case: "raw".into(),
                command: show(raw),
                redis: tag(&replies[0]),
                sluice: tag(&replies[1]),
            });
        }
    }

    let report: Vec<String> = mismatches
        .iter()
        .map(|m| {
            format!(
                "[{}] {}\n    redis:  {}\n    sluice: {}",
                m.case,
                m.command,
                show(&m.redis),
                show(&m.sluice)
            )
        })
        .collect();
    println!(
        "{} cases, {commands} commands, {} mismatches",
        cases.len() + RAW.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} replies differ from redis-server:\n{}",
        mismatches.len(),
        report.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intended_differences_are_sluice_s_documented_replies() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut c = sluice.client().await;
    for (line, expected, why) in INTENDED_DIFFERENCES {
        let args = split(line);
        let argv: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        assert_eq!(show(&c.cmd(&argv).await), show(expected), "{line} ({why})");
    }
    // A multibulk count above proto-max-multibulk-len (1048576 by default) is refused;
    // Redis 7.0 accepts any count up to 2^31-1 and waits for the arguments.
    let mut c = sluice.client().await;
    c.send(b"*3000000\r\n").await;
    let (got, closed) = c.read_until_close(Duration::from_secs(5)).await;
    assert_eq!(got, b"-ERR Protocol error: invalid multibulk length\r\n");
    assert!(closed);
}

/// Sub-commands Sluice has and Redis 7.0 does not: their COMMAND INFO entry and COMMAND DOCS
/// map are Sluice's own (CLIENT SETINFO is Redis 7.2's), left out of the comparison.
const SUBCOMMANDS_NOT_IN_REDIS: &[&str] = &["client|setinfo"];

/// A RESP reply as a tree: a scalar's raw bytes, or an aggregate's type byte and items (a
/// map's keys and values in turn).
#[derive(Debug, Clone, PartialEq)]
enum Resp {
    Scalar(Vec<u8>),
    Aggregate(u8, Vec<Resp>),
}

impl Resp {
    fn parse(buf: &[u8]) -> (Resp, usize) {
        let line_end = buf.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        if !matches!(buf[0], b'*' | b'~' | b'%') || buf[1] == b'-' {
            let n = reply_len(buf).unwrap();
            return (Resp::Scalar(buf[..n].to_vec()), n);
        }
        let count: usize = std::str::from_utf8(&buf[1..line_end - 2])
            .unwrap()
            .parse()
            .unwrap();
        let count = if buf[0] == b'%' { count * 2 } else { count };
        let mut at = line_end;
        let mut items = Vec::new();
        for _ in 0..count {
            let (item, n) = Resp::parse(&buf[at..]);
            items.push(item);
            at += n;
        }
        (Resp::Aggregate(buf[0], items), at)
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Resp::Scalar(bytes) => out.extend_from_slice(bytes),
            Resp::Aggregate(kind, items) => {
                let n = if *kind == b'%' {
                    items.len() / 2
                } else {
                    items.len()
                };
                out.extend_from_slice(format!("{}{n}\r\n", *kind as char).as_bytes());
                items.iter().for_each(|i| i.encode(out));
            }
        }
    }

    fn items(&mut self) -> &mut Vec<Resp> {
        match self {
            Resp::Aggregate(_, items) => items,
            Resp::Scalar(s) => panic!("not an aggregate: {}", show(s)),
        }
    }

    /// A bulk string's contents.
    fn text(&self) -> &[u8] {
        match self {
            Resp::Scalar(s) if s[0] == b'$' => {
                let start = s.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
                &s[start..s.len() - 2]
            }
            other => panic!("not a bulk string: {other:?}"),
        }
    }
}

/// A COMMAND INFO reply for one command with its sub-command entries sorted by name (Redis
/// lists them in its dictionary's randomly seeded order) and only those `keep` names.
fn normalize_info(reply: &[u8], keep: &dyn Fn(&[u8]) -> bool) -> Vec<u8> {
    let (mut tree, _) = Resp::parse(reply);
    let entry = &mut tree.items()[0];
    if let Some(subs @ Resp::Aggregate(b'*', _)) = entry.items().get_mut(9) {
        let subs = subs.items();
        subs.retain_mut(|e| keep(e.items()[0].text()));
        subs.sort_by_key(|e| e.clone().items()[0].text().to_vec());
    }
    let mut out = Vec::new();
    tree.encode(&mut out);
    out
}

/// A COMMAND DOCS reply for one command with its `subcommands` sorted by name and only those
/// `keep` names.
fn normalize_docs(reply: &[u8], keep: &dyn Fn(&[u8]) -> bool) -> Vec<u8> {
    let (mut tree, _) = Resp::parse(reply);
    let doc = tree.items()[1].items();
    if let Some(i) = (0..doc.len())
        .step_by(2)
        .find(|&i| doc[i].text() == b"subcommands")
    {
        let flat = std::mem::take(doc[i + 1].items());
        let mut pairs: Vec<Vec<Resp>> = flat.chunks(2).map(<[Resp]>::to_vec).collect();
        pairs.retain(|p| keep(p[0].text()));
        pairs.sort_by_key(|p| p[0].text().to_vec());
        *doc[i + 1].items() = pairs.concat();
    }
    let mut out = Vec::new();
    tree.encode(&mut out);
    out
}

/// The whole COMMAND INFO and COMMAND DOCS reply of every command Sluice shares with Redis
/// (tips, key specs, argument docs, sub-commands) is Redis 7.0's, in RESP2 and RESP3. A
/// container lists only the sub-commands Sluice has; the oracle's list is cut to those, and
/// both are sorted, as Redis's order is its dictionary's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_info_and_docs_match_redis() {
    let url = std::env::var("SLUICE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let addr = redis_addr(&url);
    if RawClient::try_connect(&addr).await.is_none() {
        println!("skipped: no redis-server at {url}");
        return;
    }
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut mismatches = Vec::new();
    let mut compared = 0;
    for proto in [b"2", b"3"] {
        let mut redis = RawClient::try_connect(&addr).await.expect("redis");
        let mut on_sluice = sluice.client().await;
        redis.cmd(&[b"HELLO", proto]).await;
        on_sluice.cmd(&[b"HELLO", proto]).await;
        for spec in commands() {
            if spec.name.starts_with("sluice.") {
                continue;
            }
            let subs: Vec<String> = spec
                .subcommands
                .iter()
                .map(|(sub, _)| format!("{}|{sub}", spec.name))
                .collect();
            let sluice_s = |name: &[u8]| subs.iter().any(|s| s.as_bytes() == name);
            let in_redis = |name: &[u8]| {
                !SUBCOMMANDS_NOT_IN_REDIS
                    .iter()
                    .any(|s| s.as_bytes() == name)
            };
            for what in [&b"INFO"[..], b"DOCS"] {
                let args: [&[u8]; 3] = [b"COMMAND", what, spec.name.as_bytes()];
                let (want, got) = (redis.cmd(&args).await, on_sluice.cmd(&args).await);
                let (want, got) = if what == b"INFO" {
                    (
                        normalize_info(&want, &sluice_s),
                        normalize_info(&got, &in_redis),
                    )
                } else {
                    (
                        normalize_docs(&want, &sluice_s),
                        normalize_docs(&got, &in_redis),
                    )
                };
                compared += 1;
                if want != got {
                    mismatches.push(format!(
                        "RESP{} COMMAND {} {}\n    redis:  {}\n    sluice: {}",
                        proto[0] as char,
                        String::from_utf8_lossy(what),
                        spec.name,
                        show(&want),
                        show(&got)
                    ));
                }
            }
        }
    }
    println!("{compared} replies compared");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// ACL CAT lists each of Sluice's commands and sub-commands in exactly the categories Redis 7.0
/// lists it in (a sub-command by its own categories, a container only where Redis lists the
/// container): what a user's `commands` allow is decided by the same categories.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_cat_lists_every_command_where_redis_does() {
    let url = std::env::var("SLUICE_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let addr = redis_addr(&url);
    let Some(mut redis) = RawClient::try_connect(&addr).await else {
        println!("skipped: no redis-server at {url}");
        return;
    };
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut on_sluice = sluice.client().await;
    let names = |reply: Vec<u8>| -> BTreeSet<String> {
        String::from_utf8(reply)
            .expect("names are text")
            .split("\r\n")
            .filter(|line| !line.is_empty() && !line.starts_with(['*', '$']))
            .map(str::to_string)
            .collect()
    };
    let categories = names(on_sluice.cmd(&[b"ACL", b"CAT"]).await);
    assert_eq!(categories, names(redis.cmd(&[b"ACL", b"CAT"]).await));
    let mut listed = BTreeMap::new();
    for category in &categories {
        let args: [&[u8]; 3] = [b"ACL", b"CAT", category.as_bytes()];
        listed.insert(
            category.clone(),
            (
                names(on_sluice.cmd(&args).await),
                names(redis.cmd(&args).await),
            ),
        );
    }
    // Every command is @fast or @slow, so this is every name Sluice has.
    let sluice_s: BTreeSet<&String> = listed.values().flat_map(|(s, _)| s).collect();
    let mut mismatches = Vec::new();
    for (category, (got, want)) in &listed {
        let want: BTreeSet<&String> = want
            .iter()
            .filter(|n| sluice_s.contains(n) && !SUBCOMMANDS_NOT_IN_REDIS.contains(&n.as_str()))
            .collect();
        let got: BTreeSet<&String> = got
            .iter()
            .filter(|n| {
                !SUBCOMMANDS_NOT_IN_REDIS.contains(&n.as_str()) && !n.starts_with("sluice.")
            })
            .collect();
        if got != want {
            mismatches.push(format!(
                "@{category}: only Sluice lists {:?}; only Redis lists {:?}",
                got.difference(&want).collect::<Vec<_>>(),
                want.difference(&got).collect::<Vec<_>>()
            ));
        }
    }
    println!(
        "{} names in {} categories compared",
        sluice_s.len(),
        listed.len()
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

/// COMMAND, COMMAND COUNT, COMMAND INFO, COMMAND DOCS and COMMAND LIST name the same commands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_count_list_info_and_docs_agree() {
    let sluice = TestServer::start_with(Durability::Os).await;
    let mut c = sluice.client().await;
    let count = commands().len();
    assert_eq!(
        c.cmd(&[b"COMMAND", b"COUNT"]).await,
        format!(":{count}\r\n").into_bytes()
    );
    let names = |reply: &[u8]| -> Vec<Vec<u8>> {
        let (_, items) = elements(reply);
        items
            .into_iter()
            .map(|i| {
                let (mut tree, _) = Resp::parse(i);
                tree.items()[0].text().to_vec()
            })
            .collect()
    };
    let all = names(&c.cmd(&[b"COMMAND"]).await);
    assert_eq!(all, names(&c.cmd(&[b"COMMAND", b"INFO"]).await));
    assert_eq!(all.len(), count);
    let docs = c.cmd(&[b"COMMAND", b"DOCS"]).await;
    let (_, doc_items) = elements(&docs);
    let doc_names: Vec<Vec<u8>> = doc_items
        .iter()
        .step_by(2)
        .map(|i| Resp::parse(i).0.text().to_vec())
        .collect();
    assert_eq!(doc_names, all);
    let mut listed = Vec::new();
    for spec in commands() {
        listed.push(spec.name.as_bytes().to_vec());
        for (sub, _) in spec.subcommands {
            listed.push(format!("{}|{sub}", spec.name).into_bytes());
        }
    }
    let list = c.cmd(&[b"COMMAND", b"LIST"]).await;
    let (_, list) = elements(&list);
    let list: Vec<Vec<u8>> = list
        .iter()
        .map(|i| Resp::parse(i).0.text().to_vec())
        .collect();
    assert_eq!(list, listed);
}
