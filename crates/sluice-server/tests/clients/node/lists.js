// ioredis list commands against a running server: queues, logs and rotations as applications
// keep them.
//
// Run by crates/sluice-server/tests/lists.rs, first against redis-server (so every expectation
// here is Redis's), then against an in-process Sluice: node lists.js PORT [HOST]
// Exits non-zero with the values when the server answers otherwise than redis-server 7.0 does.
// Every key it touches starts with "node:lists:<pid>:", so runs against a shared redis-server
// do not meet.
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");

const prefix = `node:lists:${process.pid}:`;
const k = (name) => prefix + name;

async function rejects(what, promise, pattern) {
  await assert.rejects(promise, (e) => {
    assert.match(e.message, pattern, what);
    return true;
  }, what);
}

async function run(r, waker) {
  assert.equal(await r.rpush(k("log"), "a", "b", "c"), 3);
  assert.equal(await r.lpush(k("log"), "y", "z"), 5);
  assert.deepEqual(await r.lrange(k("log"), 0, -1), ["z", "y", "a", "b", "c"]);
  assert.deepEqual(await r.lrange(k("log"), -2, 100), ["b", "c"]);
  assert.equal(await r.llen(k("log")), 5);
  assert.equal(await r.lindex(k("log"), 2), "a");
  assert.equal(await r.lindex(k("log"), -9), null);
  assert.equal(await r.lpushx(k("nosuch"), "x"), 0);
  assert.equal(await r.rpushx(k("log"), "a"), 6);

  // LPOS: RANK, COUNT, MAXLEN.
  assert.equal(await r.lpos(k("log"), "a"), 2);
  assert.equal(await r.lpos(k("log"), "a", "RANK", -1), 5);
  assert.deepEqual(await r.lpos(k("log"), "a", "COUNT", 0), [2, 5]);
  assert.deepEqual(await r.lpos(k("log"), "a", "COUNT", 0, "MAXLEN", 3), [2]);
  assert.equal(await r.lpos(k("log"), "nope"), null);
  await rejects("lpos rank 0", r.lpos(k("log"), "a", "RANK", 0), /RANK can't be zero/);

  // LINSERT, LSET, LREM, LTRIM.
  assert.equal(await r.linsert(k("log"), "BEFORE", "a", "pre"), 7);
  assert.equal(await r.linsert(k("log"), "AFTER", "nope", "x"), -1);
  assert.equal(await r.linsert(k("nosuch"), "AFTER", "a", "x"), 0);
  assert.equal(await r.lset(k("log"), -1, "last"), "OK");
  await rejects("lset out of range", r.lset(k("log"), 50, "x"), /^ERR index out of range/);
  await rejects("lset no key", r.lset(k("nosuch"), 0, "x"), /^ERR no such key/);
  assert.deepEqual(await r.lrange(k("log"), 0, -1), ["z", "y", "pre", "a", "b", "c", "last"]);
  await r.rpush(k("dups"), "x", "1", "x", "2", "x");
  assert.equal(await r.lrem(k("dups"), -2, "x"), 2);
  assert.deepEqual(await r.lrange(k("dups"), 0, -1), ["x", "1", "2"]);
  assert.equal(await r.lrem(k("dups"), 0, "x"), 1);
  assert.equal(await r.ltrim(k("log"), 2, 4), "OK");
  assert.deepEqual(await r.lrange(k("log"), 0, -1), ["pre", "a", "b"]);
  assert.equal(await r.ltrim(k("dups"), 1, 0), "OK");
  assert.equal(await r.exists(k("dups")), 0);

  // LMOVE, RPOPLPUSH, LPOP/RPOP with counts.
  assert.equal(await r.lmove(k("log"), k("dst"), "LEFT", "RIGHT"), "pre");
  assert.equal(await r.lmove(k("log"), k("dst"), "RIGHT", "LEFT"), "b");
  assert.equal(await r.rpoplpush(k("dst"), k("dst")), "pre");
  assert.deepEqual(await r.lrange(k("dst"), 0, -1), ["pre", "b"]);
  assert.equal(await r.lmove(k("log"), k("dst"), "LEFT", "LEFT"), "a");
  assert.equal(await r.exists(k("log")), 0);
  assert.equal(await r.lmove(k("log"), k("dst"), "LEFT", "LEFT"), null);
  await r.rpush(k("p"), "1", "2", "3", "4");
  assert.deepEqual(await r.lpop(k("p"), 3), ["1", "2", "3"]);
  assert.deepEqual(await r.rpop(k("p"), 3), ["4"]);
  assert.equal(await r.rpop(k("p")), null);
  assert.equal(await r.lpop(k("p"), 3), null);

  // LMPOP and BLMPOP: [key, [elements]], null when every list is empty.
  await r.rpush(k("m2"), "a", "b", "c");
  assert.deepEqual(await r.lmpop(2, k("m1"), k("m2"), "LEFT", "COUNT", 2), [k("m2"), ["a", "b"]]);
  assert.equal(await r.lmpop(1, k("m1"), "RIGHT"), null);
  assert.deepEqual(await r.blmpop(1, 2, k("m1"), k("m2"), "RIGHT"), [k("m2"), ["c"]]);
  assert.equal(await r.blmpop(0.1, 1, k("m2"), "RIGHT"), null);

  // Blocking pops: served at once, null after the timeout, woken by another connection.
  await r.rpush(k("q"), "j1", "j2", "j3");
  assert.deepEqual(await r.blpop(k("none"), k("q"), 1), [k("q"), "j1"]);
  assert.deepEqual(await r.brpop(k("q"), 1), [k("q"), "j3"]);
  const started = Date.now();
  assert.equal(await r.blpop(k("empty"), 0.2), null);
  const waited = Date.now() - started;
  assert.ok(waited >= 150 && waited < 5000, `blpop waited ${waited} ms`);
  assert.equal(await r.blmove(k("empty"), k("dst"), "LEFT", "LEFT", 0.1), null);
  assert.equal(await r.blmove(k("q"), k("done"), "LEFT", "RIGHT", 1), "j2");
  assert.equal(await r.brpoplpush(k("done"), k("done"), 1), "j2");
  const woken = r.blpop(k("wake"), 10);
  setTimeout(() => waker.rpush(k("wake"), "late"), 200);
  assert.deepEqual(await woken, [k("wake"), "late"]);
  const moved = r.blmove(k("wake2"), k("wake3"), "RIGHT", "LEFT", 10);
  setTimeout(() => waker.lpush(k("wake2"), "moved"), 200);
  assert.equal(await moved, "moved");
  assert.deepEqual(await r.lrange(k("wake3"), 0, -1), ["moved"]);

  // A pipeline and a MULTI.
  const piped = await r.pipeline()
    .rpush(k("pl"), "a", "b", "c")
    .lrange(k("pl"), 0, -1)
    .lset(k("pl"), 9, "x")
    .lpop(k("pl"))
    .exec();
  assert.deepEqual(piped.slice(0, 2), [[null, 3], [null, ["a", "b", "c"]]]);
  assert.match(piped[2][0].message, /index out of range/);
  assert.deepEqual(piped[3], [null, "a"]);
  const txn = await r.multi()
    .lpush(k("pl"), "z")
    .lmove(k("pl"), k("pl2"), "RIGHT", "LEFT")
    .lmpop(2, k("none"), k("pl"), "LEFT", "COUNT", 5)
    .exists(k("pl"))
    .exec();
  assert.deepEqual(txn, [[null, 3], [null, "c"], [null, [k("pl"), ["z", "b"]]], [null, 0]]);

  // Another type under the key.
  await r.set(k("str"), "v");
  await rejects("lpush on a string", r.lpush(k("str"), "x"), /^WRONGTYPE/);
  await rejects("blpop on a string", r.blpop(k("str"), 0.1), /^WRONGTYPE/);
  assert.equal(await r.type(k("dst")), "list");
}

async function main() {
  const port = Number(process.argv[2]);
  const host = process.argv[3] || "127.0.0.1";
  const options = { host, port, maxRetriesPerRequest: 1, lazyConnect: true };
  const r = new Redis(options);
  const waker = new Redis(options);
  await r.connect();
  await waker.connect();
  const cleanup = async () => {
    const keys = await waker.keys(prefix + "*");
    if (keys.length) await waker.del(...keys);
  };
  try {
    await cleanup();
    await run(r, waker);
    await cleanup();
    console.log(`ioredis lists ok (${host}:${port})`);
  } finally {
    r.disconnect();
    waker.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
