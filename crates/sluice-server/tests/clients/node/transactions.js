// ioredis transactions against a running Sluice.
//
// Run by crates/sluice-server/tests/clients_transactions.rs: node transactions.js PORT
// Exits non-zero with the values when Sluice answers otherwise than redis-server would.
// Leaves node:counter = "2" and node:watched = "other" for the Rust side to read back.
"use strict";

const assert = require("node:assert/strict");
const Redis = require("ioredis");

async function main() {
  const port = Number(process.argv[2]);
  const opts = { host: "127.0.0.1", port, maxRetriesPerRequest: 1, lazyConnect: true };
  const a = new Redis(opts);
  const b = new Redis(opts);
  await a.connect();
  await b.connect();
  try {
    await a.del("node:counter", "node:watched");

    // multi().set().incr().get().exec(): [error, reply] per command, in order.
    const replies = await a.multi().set("node:counter", "1").incr("node:counter").get("node:counter").exec();
    assert.deepEqual(replies, [
      [null, "OK"],
      [null, 2],
      [null, "2"],
    ]);
    assert.equal(await b.get("node:counter"), "2");

    // A command the server refuses at queue time (wrong arity) discards the transaction:
    // exec() rejects with EXECABORT and nothing is applied.
    await assert.rejects(
      a.multi().set("node:counter", "3").call("incr").exec(),
      (e) => /EXECABORT/.test(e.message),
    );
    assert.equal(await b.get("node:counter"), "2");

    // WATCH, another connection writes the key, then exec() answers null and applies nothing.
    await a.set("node:watched", "start");
    assert.equal(await a.watch("node:watched"), "OK");
    assert.equal(await a.get("node:watched"), "start");
    await b.set("node:watched", "other");
    const refused = await a.multi().set("node:watched", "mine").incr("node:counter").exec();
    assert.equal(refused, null, "exec() after a watched key changed");
    assert.equal(await b.get("node:watched"), "other");
    assert.equal(await b.get("node:counter"), "2");

    // The refused EXEC unwatched: the next transaction on the same connection commits.
    const again = await a.multi().get("node:watched").exec();
    assert.deepEqual(again, [[null, "other"]]);

    // UNWATCH forgets the watch: a later change by another connection no longer refuses EXEC.
    await a.watch("node:watched");
    await a.unwatch();
    await b.set("node:watched", "other");
    assert.deepEqual(await a.multi().get("node:watched").exec(), [[null, "other"]]);

    console.log("ioredis: multi/exec, EXECABORT and WATCH conflict ok");
  } finally {
    a.disconnect();
    b.disconnect();
  }
}

main().catch((e) => {
  console.error("FAILED:", e);
  process.exit(1);
});
