#!/usr/bin/env python3
"""redis-py sorted-set commands against a running Sluice: a leaderboard as applications keep one.

Run by crates/sluice-server/tests/zsets.rs against an in-process server:

    python3 redis_py_zsets.py --port PORT

Exits non-zero (an AssertionError with the values) when Sluice answers otherwise than
redis-server would. Every key it touches starts with "py:".
"""

import argparse

import redis

from checks import check


def pairs(reply):
    """WITHSCORES replies as tuples: redis-py gives tuples in RESP2 and lists in RESP3."""
    return [tuple(p) for p in reply]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    for protocol in (2, 3):
        r = redis.Redis(port=args.port, protocol=protocol)
        r.delete("py:board", "py:other", "py:dst", "py:big")
        check("zadd", r.zadd("py:board", {"ann": 10, "bob": 20, "cy": 15}), 3)
        check("zadd nx", r.zadd("py:board", {"ann": 99, "dee": 5}, nx=True), 1)
        check("zadd gt ch", r.zadd("py:board", {"ann": 12, "bob": 1}, gt=True, ch=True), 1)
        # redis-py turns scores into floats, in RESP2 (bulk strings) and RESP3 (doubles).
        check("zincrby", r.zincrby("py:board", 2.5, "bob"), 22.5)
        check("zadd incr", r.zadd("py:board", {"cy": 1}, incr=True), 16.0)
        check("zscore", r.zscore("py:board", "ann"), 12.0)
        check("zscore absent", r.zscore("py:board", "zed"), None)
        check("zmscore", r.zmscore("py:board", ["ann", "zed"]), [12.0, None])
        check("zcard", r.zcard("py:board"), 4)
        check("zrank", r.zrank("py:board", "dee"), 0)
        check("zrevrank", r.zrevrank("py:board", "bob"), 0)
        check("top 3", pairs(r.zrevrange("py:board", 0, 2, withscores=True)),
              [(b"bob", 22.5), (b"cy", 16.0), (b"ann", 12.0)])
        check("zrange byscore", r.zrange("py:board", 10, "+inf", byscore=True), [b"ann", b"cy", b"bob"])
        check("zrangebyscore limit", pairs(r.zrangebyscore("py:board", "(5", 100, start=1, num=1,
                                                            withscores=True)), [(b"cy", 16.0)])
        check("zcount", r.zcount("py:board", 12, 16), 2)
        check("zpopmin", pairs(r.zpopmin("py:board", 1)), [(b"dee", 5.0)])
        # redis-py leaves ZMPOP's scores as the server sent them: text in RESP2.
        score = b"22.5" if protocol == 2 else 22.5
        check("zmpop", r.zmpop(1, ["py:board"], max=True), [b"py:board", [[b"bob", score]]])
        r.zadd("py:other", {"ann": 1, "eve": 2})
        check("zunion", pairs(r.zunion(["py:board", "py:other"], withscores=True)),
              [(b"eve", 2.0), (b"ann", 13.0), (b"cy", 16.0)])
        check("zinterstore", r.zinterstore("py:dst", {"py:board": 2, "py:other": 1}), 1)
        check("after zinterstore", pairs(r.zrange("py:dst", 0, -1, withscores=True)),
              [(b"ann", 25.0)])
        check("zrangestore", r.zrangestore("py:dst", "py:board", 0, 0), 1)
        check("zrem", r.zrem("py:board", "ann", "zed"), 1)
        check("zremrangebyscore", r.zremrangebyscore("py:board", "-inf", "+inf"), 1)
        check("emptied", r.exists("py:board"), 0)
        # zscan_iter follows the cursor to its end: every member once, with its score.
        r.zadd("py:big", {f"m{i}": i for i in range(1000)})
        seen = dict(r.zscan_iter("py:big", count=7))
        check("zscan_iter count", len(seen), 1000)
        check("zscan_iter scores", seen[b"m999"], 999.0)
        # Flat [member, score, ...] in RESP2, [member, score] pairs in RESP3.
        check("zrandmember", len(r.zrandmember("py:big", -5, withscores=True)),
              10 if protocol == 2 else 5)
        r.set("py:str", "v")
        try:
            r.zadd("py:str", {"x": 1})
            raise AssertionError("ZADD on a string did not fail")
        except redis.ResponseError as e:
            check("wrongtype", str(e).startswith("WRONGTYPE"), True)
        check("type", r.type("py:other"), b"zset")
        r.delete("py:board", "py:other", "py:dst", "py:big", "py:str")
        r.close()
    print("redis-py zsets ok")


if __name__ == "__main__":
    main()
