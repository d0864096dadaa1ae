// ioredis sorted-set commands against a running Sluice: a leaderboard as applications keep one.
//
// Run by crates/sluice-server/tests/zsets.rs: node zsets.js PORT
// Exits non-zero with the values when Sluice answers otherwise than redis-server would.
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");

async function main() {
  const port = Number(process.argv[2]);
  const r = new Redis({ host: "127.0.0.1", port, maxRetriesPerRequest: 1, lazyConnect: true });
  await r.connect();
  try {
    await r.del("node:board", "node:big");
    assert.equal(await r.zadd("node:board", 10, "ann", 20, "bob", 0.1, "cy"), 3);
    assert.equal(await r.zincrby("node:board", 5, "ann"), "15");
    assert.equal(await r.zscore("node:board", "cy"), "0.10000000000000001");
    assert.deepEqual(await r.zrevrange("node:board", 0, -1, "WITHSCORES"), [
      "bob", "20", "ann", "15", "cy", "0.10000000000000001",
    ]);
    assert.deepEqual(await r.zrangebyscore("node:board", "(1", "+inf"), ["ann", "bob"]);
    assert.deepEqual(await r.zrange("node:board", "[a", "[b", "BYLEX"), []);
    assert.equal(await r.zrank("node:board", "bob"), 2);
    // zscanStream pages through a big sorted set by cursor until it ends.
    const args = [];
    for (let i = 0; i < 600; i++) args.push(i, `m${i}`);
    await r.zadd("node:big", ...args);
    const seen = [];
    await new Promise((resolve, reject) => {
      const stream = r.zscanStream("node:big", { count: 25 });
      stream.on("data", (page) => seen.push(...page));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    assert.equal(seen.length, 1200);
    const members = new Set(seen.filter((_, i) => i % 2 === 0));
    assert.equal(members.size, 600);
    const replies = await r.multi().zadd("node:board", "XX", "CH", 1, "bob").zpopmin("node:board", 2).exec();
    assert.deepEqual(replies, [[null, 1], [null, ["cy", "0.10000000000000001", "bob", "1"]]]);
    await r.del("node:board", "node:big");
    console.log("ioredis zsets ok");
  } finally {
    r.disconnect();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
