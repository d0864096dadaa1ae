#!/usr/bin/env python3
"""redis-py list commands against a running server: queues, logs and rotations as
applications keep them.

Run by crates/sluice-server/tests/lists.rs, first against redis-server (so every expectation
here is Redis's), then against an in-process Sluice:

    python3 redis_py_lists.py [--host HOST] --port PORT

Exits non-zero (an AssertionError with the values) when the server answers otherwise than
redis-server 7.0 does. Every key it touches starts with "py:lists:<pid>:", so runs against a
shared redis-server do not meet.
"""

import threading
import time

import redis

from checks import check, fails, in_both_protocols, server_args


def popped(reply):
    """BLPOP/BRPOP replies as a tuple (redis-py gives a tuple in RESP2, a list in RESP3)."""
    return None if reply is None else tuple(reply)


def run(r, waker, k, protocol):
    # Pushes answer the length after; LPUSH puts its elements at the head one by one.
    check("rpush", r.rpush(k("log"), "a", "b", "c"), 3)
    check("lpush", r.lpush(k("log"), "y", "z"), 5)
    check("lrange", r.lrange(k("log"), 0, -1), [b"z", b"y", b"a", b"b", b"c"])
    check("lrange clamped", r.lrange(k("log"), -100, 1), [b"z", b"y"])
    check("lrange empty", r.lrange(k("log"), 3, 1), [])
    check("lrange missing", r.lrange(k("nosuch"), 0, -1), [])
    check("llen", r.llen(k("log")), 5)
    check("lindex", r.lindex(k("log"), -1), b"c")
    check("lindex out of range", r.lindex(k("log"), 9), None)
    check("lpushx missing", r.lpushx(k("nosuch"), "x"), 0)
    check("rpushx", r.rpushx(k("log"), "a"), 6)
    check("exists after lpushx", r.exists(k("nosuch")), 0)

    # LPOS: first match, RANK from either end, COUNT (0 = all), MAXLEN.
    check("lpos", r.lpos(k("log"), "a"), 2)
    check("lpos rank 2", r.lpos(k("log"), "a", rank=2), 5)
    check("lpos rank -1", r.lpos(k("log"), "a", rank=-1), 5)
    check("lpos count 0", r.lpos(k("log"), "a", count=0), [2, 5])
    check("lpos count rank -1", r.lpos(k("log"), "a", rank=-1, count=2), [5, 2])
    check("lpos maxlen", r.lpos(k("log"), "a", count=0, maxlen=3), [2])
    check("lpos absent", r.lpos(k("log"), "nope"), None)
    check("lpos absent count", r.lpos(k("log"), "nope", count=1), [])
    fails("lpos rank 0", lambda: r.lpos(k("log"), "a", rank=0), "RANK can't be zero")

    # LINSERT: the length after, -1 without the pivot, 0 without the key.
    check("linsert before", r.linsert(k("log"), "BEFORE", "a", "pre"), 7)
    check("linsert after", r.linsert(k("log"), "after", "c", "post"), 8)
    check("linsert no pivot", r.linsert(k("log"), "BEFORE", "nope", "x"), -1)
    check("linsert no key", r.linsert(k("nosuch"), "BEFORE", "a", "x"), 0)
    check("after linsert", r.lrange(k("log"), 0, -1),
          [b"z", b"y", b"pre", b"a", b"b", b"c", b"post", b"a"])

    # LSET: by index from either end; errors for a missing key or index.
    check("lset", r.lset(k("log"), 0, "Z"), True)
    check("lset negative", r.lset(k("log"), -2, "POST"), True)
    fails("lset out of range", lambda: r.lset(k("log"), 99, "x"), "index out of range")
    fails("lset no key", lambda: r.lset(k("nosuch"), 0, "x"), "no such key")
    check("lindex after lset", r.lindex(k("log"), -2), b"POST")

    # LREM: count > 0 from the head, < 0 from the tail, 0 all.
    r.rpush(k("dups"), "x", "1", "x", "2", "x", "3", "x")
    check("lrem head", r.lrem(k("dups"), 2, "x"), 2)
    check("after lrem head", r.lrange(k("dups"), 0, -1), [b"1", b"2", b"x", b"3", b"x"])
    check("lrem tail", r.lrem(k("dups"), -1, "x"), 1)
    check("after lrem tail", r.lrange(k("dups"), 0, -1), [b"1", b"2", b"x", b"3"])
    check("lrem all", r.lrem(k("dups"), 0, "x"), 1)
    check("lrem none", r.lrem(k("dups"), 0, "x"), 0)
    check("lrem missing", r.lrem(k("nosuch"), 0, "x"), 0)

    # LTRIM: keep a window; a window past the end deletes the key.
    check("ltrim", r.ltrim(k("log"), 1, -2), True)
    check("after ltrim", r.lrange(k("log"), 0, -1),
          [b"y", b"pre", b"a", b"b", b"c", b"POST"])
    check("ltrim missing", r.ltrim(k("nosuch"), 0, 1), True)
    check("ltrim to nothing", r.ltrim(k("dups"), 5, 10), True)
    check("emptied by ltrim", r.exists(k("dups")), 0)

    # LMOVE / RPOPLPUSH: between lists, a rotation of one list, nothing from a missing one.
    r.rpush(k("src"), "1", "2", "3")
    check("lmove", r.lmove(k("src"), k("dst"), "LEFT", "RIGHT"), b"1")
    check("lmove right left", r.lmove(k("src"), k("dst"), "RIGHT", "LEFT"), b"3")
    check("dst", r.lrange(k("dst"), 0, -1), [b"3", b"1"])
    check("rpoplpush rotation", r.rpoplpush(k("dst"), k("dst")), b"1")
    check("rotated", r.lrange(k("dst"), 0, -1), [b"1", b"3"])
    check("lmove last", r.lmove(k("src"), k("dst")), b"2")
    check("src emptied", r.exists(k("src")), 0)
    check("lmove missing", r.lmove(k("nosuch"), k("dst")), None)
    check("rpoplpush missing", r.rpoplpush(k("nosuch"), k("dst")), None)
    check("dst after", r.lrange(k("dst"), 0, -1), [b"1", b"3", b"2"])

    # LPOP / RPOP with and without a count.
    r.rpush(k("p"), *[str(i) for i in range(6)])
    check("lpop", r.lpop(k("p")), b"0")
    check("rpop", r.rpop(k("p")), b"5")
    check("lpop count", r.lpop(k("p"), 2), [b"1", b"2"])
    check("rpop count", r.rpop(k("p"), 5), [b"4", b"3"])
    check("popped empty", r.exists(k("p")), 0)
    check("lpop missing", r.lpop(k("p")), None)
    check("lpop count missing", r.lpop(k("p"), 2), None)

    # LMPOP: the first non-empty list, up to COUNT; None when all are empty.
    r.rpush(k("m2"), "a", "b", "c")
    check("lmpop", r.lmpop(2, k("m1"), k("m2"), direction="LEFT"), [k("m2").encode(), [b"a"]])
    check("lmpop count", r.lmpop(2, k("m1"), k("m2"), direction="RIGHT", count=5),
          [k("m2").encode(), [b"c", b"b"]])
    check("lmpop empty", r.lmpop(2, k("m1"), k("m2"), direction="LEFT"), None)

    # Blocking pops: served at once, nil after the timeout, woken by another connection.
    r.rpush(k("q"), "j1", "j2", "j3")
    check("blpop ready", popped(r.blpop([k("none"), k("q")], timeout=1)), (k("q").encode(), b"j1"))
    check("brpop ready", popped(r.brpop([k("q")], timeout=1)), (k("q").encode(), b"j3"))
    started = time.monotonic()
    check("blpop timeout", popped(r.blpop([k("empty")], timeout=0.2)), None)
    waited = time.monotonic() - started
    check("blpop waited its timeout", 0.15 <= waited < 5, True)
    check("blmove timeout", r.blmove(k("empty"), k("dst"), 0.1, "LEFT", "LEFT"), None)
    check("blmpop timeout", r.blmpop(0.1, 1, k("empty"), direction="LEFT"), None)
    check("blmove ready", r.blmove(k("q"), k("done"), 1, "LEFT", "RIGHT"), b"j2")
    check("q emptied", r.exists(k("q")), 0)
    check("brpoplpush ready", r.brpoplpush(k("done"), k("done2"), timeout=1), b"j2")
    r.rpush(k("bm"), "x", "y")
    check("blmpop ready", r.blmpop(1, 2, k("empty"), k("bm"), direction="RIGHT", count=3),
          [k("bm").encode(), [b"y", b"x"]])

    # A worker blocked on an empty queue is served by a push from another connection.
    def push_later():
        time.sleep(0.2)
        waker.rpush(k("wake"), "late")

    t = threading.Thread(target=push_later)
    t.start()
    check("blpop woken", popped(r.blpop([k("wake")], timeout=10)), (k("wake").encode(), b"late"))
    t.join()

    def push_later_to(key, value):
        time.sleep(0.2)
        waker.lpush(key, value)

    t = threading.Thread(target=push_later_to, args=(k("wake2"), "moved"))
    t.start()
    check("blmove woken", r.blmove(k("wake2"), k("wake3"), 10, "RIGHT", "LEFT"), b"moved")
    t.join()
    check("blmove moved it", r.lrange(k("wake3"), 0, -1), [b"moved"])
    check("wake2 gone", r.exists(k("wake2")), 0)

    # Pipelines: MULTI/EXEC (the default) and plain, errors returned in place.
    pipe = r.pipeline()
    pipe.rpush(k("pl"), "a", "b", "c").lpush(k("pl"), "z").lrange(k("pl"), 0, -1)
    pipe.lpop(k("pl"), 2).rpoplpush(k("pl"), k("pl2")).llen(k("pl"))
    check("pipeline multi", pipe.execute(),
          [3, 4, [b"z", b"a", b"b", b"c"], [b"z", b"a"], b"c", 1])
    pipe = r.pipeline(transaction=False)
    pipe.rpush(k("pl"), *[f"e{i}" for i in range(100)]).ltrim(k("pl"), -3, -1)
    pipe.lrange(k("pl"), 0, -1).lset(k("pl"), 5, "x").lindex(k("pl"), 0)
    got = pipe.execute(raise_on_error=False)
    check("pipeline plain", got[:3] + got[4:], [101, True, [b"e97", b"e98", b"e99"], b"e97"])
    check("pipeline error in place", isinstance(got[3], redis.ResponseError), True)

    # Another type under the key.
    r.set(k("str"), "v")
    fails("lpush on a string", lambda: r.lpush(k("str"), "x"), "WRONGTYPE")
    fails("lrange on a string", lambda: r.lrange(k("str"), 0, -1), "WRONGTYPE")
    fails("lmove to a string", lambda: r.lmove(k("dst"), k("str")), "WRONGTYPE")
    check("lmove to a string moved nothing", r.llen(k("dst")), 3)
    check("type", r.type(k("dst")), b"list")
    # Redis 7.0 keeps every list as a quicklist (small lists became listpacks in 7.2).
    check("object encoding", r.object("encoding", k("dst")), b"quicklist")


def main():
    args = server_args()
    k = in_both_protocols(args, "lists", run)
    # decode_responses: elements come back as str.
    r = redis.Redis(host=args.host, port=args.port, decode_responses=True)
    try:
        check("rpush str", r.rpush(k("s"), "é", "ß"), 2)
        check("lrange str", r.lrange(k("s"), 0, -1), ["é", "ß"])
        check("lmpop str", r.lmpop(1, k("s"), direction="RIGHT"), [k("s"), ["ß"]])
        check("blpop str", popped(r.blpop(k("s"), timeout=1)), (k("s"), "é"))
    finally:
        r.delete(k("s"))
        r.close()
    print(f"redis-py lists ok ({args.host}:{args.port})")


if __name__ == "__main__":
    main()
