#!/usr/bin/env python3
"""redis-py transactions against a running Sluice.

Run by crates/sluice-server/tests/clients_transactions.rs against an in-process server:

    python3 redis_py_transactions.py --port PORT --part transactions|lock

Exits non-zero (an AssertionError with the values) when Sluice answers otherwise than
redis-server would. Every key it touches starts with "py:".
"""

import argparse
import sys
import threading

import redis

from checks import check

THREADS = 8
INCREMENTS = 50


def transactions(r):
    r.delete("py:a", "py:b", "py:c", "py:total", "py:plain")

    # pipeline() is a MULTI ... EXEC transaction by default: one reply per command, in order.
    pipe = r.pipeline()
    pipe.set("py:a", 1).incr("py:a").incrby("py:a", 5).set("py:b", "x").append("py:b", "yz")
    pipe.get("py:a").get("py:b").incrbyfloat("py:c", 0.5)
    check("pipeline() replies", pipe.execute(), [True, 2, 7, True, 3, b"7", b"xyz", 0.5])
    check("after pipeline()", r.mget("py:a", "py:b", "py:c"), [b"7", b"xyz", b"0.5"])

    # An error reply inside the transaction is that command's reply; the others apply.
    pipe = r.pipeline()
    pipe.set("py:a", "notanumber").incr("py:a").set("py:b", "after")
    results = pipe.execute(raise_on_error=False)
    check("first reply", results[0], True)
    if not isinstance(results[1], redis.ResponseError):
        raise AssertionError(f"INCR of a non-number inside EXEC: got {results[1]!r}")
    check("third reply", results[2], True)
    check("after a failed command", r.mget("py:a", "py:b"), [b"notanumber", b"after"])

    # transaction(func, key): WATCH, read, MULTI/EXEC, retried on WatchError. Threads each
    # add INCREMENTS by read-then-write; none is lost.
    r.set("py:total", 0)
    conflicts = [0]
    lock = threading.Lock()

    def add_one(pipe):
        current = int(pipe.get("py:total"))
        pipe.multi()
        pipe.set("py:total", current + 1)

    def worker():
        client = redis.Redis(connection_pool=r.connection_pool)
        for _ in range(INCREMENTS):
            attempts = []

            def counted(pipe):
                attempts.append(1)
                add_one(pipe)

            client.transaction(counted, "py:total")
            with lock:
                conflicts[0] += len(attempts) - 1

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("total after concurrent transactions", int(r.get("py:total")), THREADS * INCREMENTS)
    print(f"redis-py: {THREADS * INCREMENTS} increments, {conflicts[0]} retried on WatchError")

    # A WATCHed key changed by another client: EXEC refused (WatchError), nothing applied.
    with r.pipeline() as pipe:
        pipe.watch("py:total")
        r.set("py:total", "changed")
        pipe.multi()
        pipe.set("py:total", "mine")
        try:
            pipe.execute()
            raise AssertionError("EXEC after a watched key changed succeeded")
        except redis.WatchError:
            pass
    check("watched key after refused EXEC", r.get("py:total"), b"changed")

    # pipeline(transaction=False): plain pipelining, no MULTI; every reply comes back.
    pipe = r.pipeline(transaction=False)
    pipe.set("py:plain", 10).incr("py:plain").decrby("py:plain", 4).get("py:plain")
    pipe.incr("py:b")  # an error reply in a plain pipeline
    results = pipe.execute(raise_on_error=False)
    check("plain pipeline replies", results[:4], [True, 11, 7, b"7"])
    if not isinstance(results[4], redis.ResponseError):
        raise AssertionError(f"INCR of a non-number in a pipeline: got {results[4]!r}")

    # DISCARD through the pipeline API: reset() after multi() discards the queue.
    pipe = r.pipeline()
    pipe.multi()
    pipe.set("py:plain", "discarded")
    pipe.reset()
    check("after a discarded pipeline", r.get("py:plain"), b"7")


def lock_part(r):
    r.delete("py:lock")
    lock = r.lock("py:lock", timeout=5)
    check("acquire", lock.acquire(blocking=False), True)
    check("owned", lock.owned(), True)
    other = r.lock("py:lock", timeout=5)
    check("second acquire while held", other.acquire(blocking=False), False)
    check("extend", lock.extend(10), True)
    ttl = r.pttl("py:lock")
    if not 5000 < ttl <= 15000:
        raise AssertionError(f"PTTL after extend(10) of a 5 s lock: {ttl}")
    check("reacquire (reset the TTL)", lock.reacquire(), True)
    lock.release()
    check("key after release", r.exists("py:lock"), 0)
    check("acquire after release", other.acquire(blocking=False), True)
    # The release script refuses a token that is not the holder's, and leaves the lock.
    stale = r.lock("py:lock", timeout=5)
    stale.local.token = b"not-the-holder"
    try:
        stale.release()
        raise AssertionError("release with another holder's token succeeded")
    except redis.exceptions.LockNotOwnedError:
        pass
    stale.local.token = b"not-the-holder"  # release() forgot it
    try:
        stale.extend(5)
        raise AssertionError("extend with another holder's token succeeded")
    except redis.exceptions.LockNotOwnedError:
        pass
    check("holder still owns it", other.owned(), True)
    other.release()
    check("key after the holder's release", r.exists("py:lock"), 0)

    # Mutual exclusion: threads increment by read-then-write, each under the lock (blocking
    # acquire, release by script); none is lost.
    r.set("py:locked-total", 0)

    def worker():
        for _ in range(INCREMENTS // 2):
            with r.lock("py:lock", timeout=10, sleep=0.001, blocking_timeout=20):
                current = int(r.get("py:locked-total"))
                r.set("py:locked-total", current + 1)

    threads = [threading.Thread(target=worker) for _ in range(THREADS // 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check("total under the lock", int(r.get("py:locked-total")), (THREADS // 2) * (INCREMENTS // 2))
    check("lock free at the end", r.exists("py:lock"), 0)
    print("redis-py: Lock acquire/extend/reacquire/release and mutual exclusion ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--part", choices=["transactions", "lock"], required=True)
    args = ap.parse_args()
    r = redis.Redis(host="127.0.0.1", port=args.port, socket_timeout=10)
    check("PING", r.ping(), True)
    if args.part == "transactions":
        transactions(r)
    else:
        lock_part(r)
    print(f"redis-py {redis.__version__}: {args.part} ok")


if __name__ == "__main__":
    try:
        main()
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
