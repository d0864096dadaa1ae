#!/usr/bin/env python3
"""redis-py's cluster client (RedisCluster) against Sluice nodes routing keys by hash slot.

Run by crates/sluice-server/tests/cluster.rs against three running nodes:

    python3 redis_py_cluster.py --port PORT1 --port PORT2 --port PORT3 --prefix P [--prefix P ...]

Writes 300 keys under each prefix through a client that knows only the first node, then reads
every one back through a client that knows only the second: the cluster client follows the
slot map (CLUSTER SLOTS, MOVED) to the one node serving each key, so every write reads back
whatever the keyspace's policy, before any flush. Also MSET/MGET within one hash tag, a
pipeline spread over the nodes, and a transaction within one slot. Exits non-zero on the first
wrong answer.
"""

import argparse

from redis.cluster import RedisCluster, ClusterNode

from checks import check

KEYS = 300


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, action="append", required=True)
    parser.add_argument("--prefix", action="append", required=True)
    args = parser.parse_args()

    writer = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", args.port[0])])
    reader = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", args.port[1])])
    check("nodes the client learned", len(writer.get_primaries()), len(args.port))
    ports = sorted(n.port for n in reader.get_primaries())
    check("their ports", ports, sorted(args.port))

    served_by = {}
    for prefix in args.prefix:
        for i in range(KEYS):
            key = f"{prefix}:{i}"
            check(f"SET {key}", writer.set(key, f"v{i}"), True)
            served_by.setdefault(writer.get_node_from_key(key).port, 0)
            served_by[writer.get_node_from_key(key).port] += 1
        for i in range(KEYS):
            key = f"{prefix}:{i}"
            check(f"GET {key} through another client", reader.get(key), f"v{i}".encode())
        # Overwrite, delete, read again: the newest write wins on every node.
        for i in range(0, KEYS, 3):
            writer.set(f"{prefix}:{i}", f"w{i}")
        for i in range(1, KEYS, 3):
            writer.delete(f"{prefix}:{i}")
        for i in range(KEYS):
            expected = {0: f"w{i}".encode(), 1: None, 2: f"v{i}".encode()}[i % 3]
            check(f"GET {prefix}:{i} after overwrites", reader.get(f"{prefix}:{i}"), expected)
    check("nodes that served keys", sorted(served_by), sorted(args.port))

    # One hash tag: one slot, so multi-key commands and transactions run on one node.
    tagged = [f"{{user42}}:{f}" for f in ("a", "b", "c")]
    check("MSET in one slot", writer.mset({k: k.upper() for k in tagged}), True)
    check("MGET in one slot", reader.mget(tagged), [k.upper().encode() for k in tagged])
    pipe = writer.pipeline(transaction=True)
    pipe.incr("{user42}:n").incr("{user42}:n").get("{user42}:n")
    check("MULTI/EXEC in one slot", pipe.execute(), [1, 2, b"2"])

    # A non-transactional pipeline over keys of every node.
    pipe = writer.pipeline()
    for i in range(50):
        pipe.set(f"pipe:{i}", i)
    pipe.execute()
    check(
        "pipelined writes read back",
        [reader.get(f"pipe:{i}") for i in range(50)],
        [str(i).encode() for i in range(50)],
    )
    print("served per node:", served_by)


if __name__ == "__main__":
    main()
