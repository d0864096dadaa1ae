#!/usr/bin/env python3
"""redis-py stream commands against a running server: an event log written with XADD
(capped by MAXLEN ~), read back by range and followed with blocking XREAD, as applications
keep one.

Run by crates/sluice-server/tests/streams.rs, first against redis-server (so every expectation
here is Redis's), then against an in-process Sluice:

    python3 redis_py_streams.py [--host HOST] --port PORT

Exits non-zero (an AssertionError with the values) when the server answers otherwise than
redis-server 7.0 does. Every key it touches starts with "py:streams:<pid>:", so runs against a
shared redis-server do not meet.
"""

import threading
import time

import redis

from checks import check, fails, in_both_protocols, server_args


def streams(reply):
    """XREAD's reply as [(key, entries)]: redis-py gives a list of pairs in RESP2, a dict of
    lists of entry lists in RESP3."""
    if isinstance(reply, dict):
        return [(k, v[0] if v and isinstance(v[0], list) else v) for k, v in reply.items()]
    return [(k, v) for k, v in reply]


def run(r, waker, k, protocol):
    log = k("events")
    # An event log: explicit IDs, then automatic ones after them.
    for i in range(1, 6):
        check(f"xadd {i}", r.xadd(log, {"user": f"u{i}", "n": i}, id=f"{i}-0"), f"{i}-0".encode())
    auto = r.xadd(log, {"user": "auto"})
    check("automatic id is after the last", int(auto.split(b"-")[0]) > 5, True)
    check("xlen", r.xlen(log), 6)
    check("xrange count", r.xrange(log, count=2),
          [(b"1-0", {b"user": b"u1", b"n": b"1"}), (b"2-0", {b"user": b"u2", b"n": b"2"})])
    check("xrange bounds", [e[0] for e in r.xrange(log, min="2", max="4")],
          [b"2-0", b"3-0", b"4-0"])
    check("xrange exclusive", [e[0] for e in r.xrange(log, min="(2-0", max="(4-0")], [b"3-0"])
    check("xrevrange", [e[0] for e in r.xrevrange(log, count=2)], [auto, b"5-0"])
    fails("older id", lambda: r.xadd(log, {"a": 1}, id="3-0"), "The ID specified in XADD")
    fails("bad id", lambda: r.xadd(log, {"a": 1}, id="x"), "Invalid stream ID")

    # A capped log: MAXLEN ~ keeps whole nodes (the stream here is one node), = is exact.
    capped = k("capped")
    for i in range(1, 251):
        r.xadd(capped, {"i": i}, id=f"{i}-1", maxlen=100, approximate=True)
    check("approximately capped", r.xlen(capped), 150)
    r.xadd(capped, {"i": 251}, id="251-1", maxlen=10, approximate=False)
    check("exactly capped", r.xlen(capped), 10)
    check("first kept", r.xrange(capped, count=1)[0][0], b"242-1")
    check("xtrim minid", r.xtrim(capped, minid="245-1", approximate=False), 3)
    check("xdel", r.xdel(capped, "245-1", "246-1", "9-9"), 2)
    check("after xdel", [e[0] for e in r.xrange(capped)],
          [b"247-1", b"248-1", b"249-1", b"250-1", b"251-1"])
    check("nomkstream", r.xadd(k("none"), {"a": 1}, nomkstream=True), None)
    check("nomkstream made nothing", r.exists(k("none")), 0)

    # XREAD: at once from an ID, and blocking until another connection adds.
    got = streams(r.xread({log: "4-0", capped: "250-1"}, count=1))
    check("xread", got, [(log.encode(), [(b"5-0", {b"user": b"u5", b"n": b"5"})]),
                         (capped.encode(), [(b"251-1", {b"i": b"251"})])])
    check("xread nothing", streams(r.xread({log: "$"}, block=50)), [])

    def add_later():
        time.sleep(0.2)
        waker.xadd(capped, {"late": "yes"}, id="300-0")

    t = threading.Thread(target=add_later)
    t.start()
    started = time.time()
    got = streams(r.xread({k("other"): "$", capped: "$"}, block=5000))
    t.join()
    check("woken", got, [(capped.encode(), [(b"300-0", {b"late": b"yes"})])])
    check("woken after the add", time.time() - started >= 0.15, True)

    # Pipelines, with and without MULTI.
    pipe = r.pipeline(transaction=True)
    pipe.xadd(k("p"), {"a": 1}, id="1-1").xadd(k("p"), {"b": 2}, id="1-2").xlen(k("p"))
    pipe.xrange(k("p"), "-", "+")
    check("pipeline multi", pipe.execute(),
          [b"1-1", b"1-2", 2, [(b"1-1", {b"a": b"1"}), (b"1-2", {b"b": b"2"})]])

    # Another type under the key.
    r.set(k("str"), "v")
    fails("xadd on a string", lambda: r.xadd(k("str"), {"a": 1}), "WRONGTYPE")
    fails("xrange on a string", lambda: r.xrange(k("str")), "WRONGTYPE")
    fails("rpush on a stream", lambda: r.rpush(log, "x"), "WRONGTYPE")
    check("type", r.type(log), b"stream")
    check("object encoding", r.object("encoding", log), b"stream")


def main():
    args = server_args()
    k = in_both_protocols(args, "streams", run)
    # decode_responses: entries come back as str.
    r = redis.Redis(host=args.host, port=args.port, decode_responses=True)
    try:
        check("xadd str", r.xadd(k("s"), {"é": "ß"}, id="1-0"), "1-0")
        check("xrange str", r.xrange(k("s")), [("1-0", {"é": "ß"})])
    finally:
        r.delete(k("s"))
        r.close()
    print(f"redis-py streams ok ({args.host}:{args.port})")


if __name__ == "__main__":
    main()
