// ioredis subscriber mode against a running Sluice.
//
// Run by crates/sluice-server/tests/pubsub.rs: node pubsub.js PORT
// Exits non-zero with the values when Sluice answers otherwise than redis-server would.
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");

function nextEvent(emitter, name) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${name} event within 5 s`)), 5000);
    emitter.once(name, (...args) => {
      clearTimeout(timer);
      resolve(args);
    });
  });
}

async function main() {
  const port = Number(process.argv[2]);
  const opts = { host: "127.0.0.1", port, maxRetriesPerRequest: 1, lazyConnect: true };
  const sub = new Redis(opts);
  const pub = new Redis(opts);
  await sub.connect();
  await pub.connect();
  try {
    // subscribe resolves with the number of channels subscribed.
    assert.equal(await sub.subscribe("node:a", "node:b"), 2);
    const message = nextEvent(sub, "message");
    assert.equal(await pub.publish("node:a", "hello"), 1);
    assert.deepEqual(await message, ["node:a", "hello"]);

    assert.equal(await sub.psubscribe("node:*"), 3);
    const pmessage = nextEvent(sub, "pmessage");
    assert.equal(await pub.publish("node:b", "both"), 2);
    assert.deepEqual(await pmessage, ["node:*", "node:b", "both"]);

    // Binary payloads arrive intact (messageBuffer).
    const buffer = nextEvent(sub, "messageBuffer");
    const bytes = Buffer.from([0, 255, 13, 10, 7]);
    await pub.publish("node:a", bytes);
    const [channel, payload] = await buffer;
    assert.equal(channel.toString(), "node:a");
    assert.deepEqual(payload, bytes);

    // In subscriber mode ioredis refuses other commands itself; after unsubscribing from
    // everything (named: ioredis waits for one confirmation per channel it knows)
    // the connection is back to normal.
    await sub.unsubscribe("node:a", "node:b");
    await sub.punsubscribe("node:*");
    assert.equal(await sub.set("node:after", "1"), "OK");
    assert.equal(await sub.get("node:after"), "1");
    assert.deepEqual(await pub.pubsub("NUMSUB", "node:a"), ["node:a", 0]);
  } finally {
    sub.disconnect();
    pub.disconnect();
  }
  console.log("ioredis pub/sub: ok");
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
