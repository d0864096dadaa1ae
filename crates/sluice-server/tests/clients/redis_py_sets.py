#!/usr/bin/env python3
"""redis-py set commands against a running Sluice.

Run by crates/sluice-server/tests/sets.rs against an in-process server:

    python3 redis_py_sets.py --port PORT

Exits non-zero (an AssertionError with the values) when Sluice answers otherwise than
redis-server would. Every key it touches starts with "py:".
"""

import argparse

import redis

from checks import check


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    for protocol in (2, 3):
        r = redis.Redis(port=args.port, protocol=protocol)
        r.delete("py:s", "py:t", "py:u", "py:big")
        check("sadd", r.sadd("py:s", "a", "b", "c", "a"), 3)
        # redis-py turns SMEMBERS (an array in RESP2, a set in RESP3) into a Python set.
        check("smembers", r.smembers("py:s"), {b"a", b"b", b"c"})
        check("sismember", r.sismember("py:s", "a"), True)
        check("smismember", r.smismember("py:s", ["a", "z"]), [1, 0])
        check("scard", r.scard("py:s"), 3)
        r.sadd("py:t", "b", "c", "d")
        check("sinter", r.sinter("py:s", "py:t"), {b"b", b"c"})
        check("sunion", r.sunion("py:s", "py:t"), {b"a", b"b", b"c", b"d"})
        check("sdiff", r.sdiff("py:s", "py:t"), {b"a"})
        check("sintercard", r.sintercard(2, ["py:s", "py:t"]), 2)
        check("sinterstore", r.sinterstore("py:u", ["py:s", "py:t"]), 2)
        check("smove", r.smove("py:s", "py:u", "a"), True)
        check("after smove", r.smembers("py:u"), {b"a", b"b", b"c"})
        popped = r.spop("py:u", 2)
        check("spop count", len(popped), 2)
        check("after spop", r.scard("py:u"), 1)
        check("srandmember", r.srandmember("py:t") in {b"b", b"c", b"d"}, True)
        check("srandmember -5", len(r.srandmember("py:t", -5)), 5)
        check("srem", r.srem("py:t", "b", "z"), 1)
        # sscan_iter follows the cursor to its end: every member once.
        r.sadd("py:big", *[f"m{i}" for i in range(1000)])
        seen = list(r.sscan_iter("py:big", count=7))
        check("sscan_iter count", len(seen), 1000)
        check("sscan_iter members", set(seen), {f"m{i}".encode() for i in range(1000)})
        check("sscan match", sorted(r.sscan_iter("py:big", match="m99*")), sorted(
            f"m{i}".encode() for i in [99] + list(range(990, 1000))))
        r.set("py:str", "v")
        try:
            r.sadd("py:str", "x")
            raise AssertionError("SADD on a string did not fail")
        except redis.ResponseError as e:
            check("wrongtype", str(e).startswith("WRONGTYPE"), True)
        check("type", r.type("py:s"), b"set")
        r.close()
    print("redis-py sets ok")


if __name__ == "__main__":
    main()
