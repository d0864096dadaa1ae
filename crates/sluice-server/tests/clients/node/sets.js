// ioredis set commands against a running Sluice.
//
// Run by crates/sluice-server/tests/sets.rs: node sets.js PORT
// Exits non-zero with the values when Sluice answers otherwise than redis-server would.
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");

async function main() {
  const port = Number(process.argv[2]);
  const r = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1, lazyConnect: true });
  await r.connect();
  try {
    await r.del("node:s", "node:t", "node:big");
    assert.equal(await r.sadd("node:s", "a", "b", "c"), 3);
    assert.deepEqual((await r.smembers("node:s")).sort(), ["a", "b", "c"]);
    assert.equal(await r.sismember("node:s", "b"), 1);
    assert.deepEqual(await r.smismember("node:s", "a", "z"), [1, 0]);
    await r.sadd("node:t", "c", "d");
    assert.deepEqual((await r.sunion("node:s", "node:t")).sort(), ["a", "b", "c", "d"]);
    assert.equal(await r.sdiffstore("node:t", "node:s", "node:t"), 2);
    assert.deepEqual((await r.smembers("node:t")).sort(), ["a", "b"]);
    // An integer set answers in ascending order, as Redis's intset does.
    await r.sadd("node:i", 30, 1, 20);
    assert.deepEqual(await r.smembers("node:i"), ["1", "20", "30"]);
    // sscanStream pages through a set by cursor until it ends.
    const members = [];
    for (let i = 0; i < 600; i++) members.push(`m${i}`);
    await r.sadd("node:big", ...members);
    const seen = [];
    await new Promise((resolve, reject) => {
      const stream = r.sscanStream("node:big", { count: 25 });
      stream.on("data", (page) => seen.push(...page));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    assert.equal(seen.length, 600);
    assert.deepEqual(new Set(seen), new Set(members));
    const pipeline = await r.multi().srem("node:s", "a").scard("node:s").exec();
    assert.deepEqual(pipeline, [[null, 1], [null, 2]]);
    await r.del("node:s", "node:t", "node:i", "node:big");
    console.log("ioredis sets ok");
  } finally {
    r.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
