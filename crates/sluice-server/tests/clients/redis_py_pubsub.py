#!/usr/bin/env python3
"""redis-py pub/sub against a running Sluice.

Run by crates/sluice-server/tests/pubsub.rs against an in-process server:

    python3 redis_py_pubsub.py --port PORT

Exits non-zero (an AssertionError with the values) when Sluice answers otherwise than
redis-server would. Every key and channel it uses starts with "py:".
"""

import argparse
import threading
import time

import redis

from checks import check


def next_message(p, timeout=5.0):
    """The next message (not a subscription confirmation), or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = p.get_message(ignore_subscribe_messages=True, timeout=0.1)
        if m is not None:
            return m
    raise AssertionError(f"no message within {timeout} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    r = redis.Redis(port=args.port, decode_responses=True)

    # subscribe / psubscribe and get_message.
    p = r.pubsub()
    p.subscribe("py:news")
    p.psubscribe("py:room:*")
    check("confirmation", p.get_message(timeout=1),
          {"type": "subscribe", "pattern": None, "channel": "py:news", "data": 1})
    check("confirmation", p.get_message(timeout=1),
          {"type": "psubscribe", "pattern": None, "channel": "py:room:*", "data": 2})
    check("receivers", r.publish("py:news", "hello"), 1)
    check("message", next_message(p),
          {"type": "message", "pattern": None, "channel": "py:news", "data": "hello"})
    check("receivers", r.publish("py:room:7", "hi"), 1)
    check("pmessage", next_message(p),
          {"type": "pmessage", "pattern": "py:room:*", "channel": "py:room:7", "data": "hi"})
    check("numsub", r.pubsub_numsub("py:news", "py:none"), [("py:news", 1), ("py:none", 0)])
    check("numpat", r.pubsub_numpat(), 1)
    check("channels", r.pubsub_channels("py:*"), ["py:news"])
    p.ping()
    check("ping", next_message(p), {"type": "pong", "pattern": None, "channel": None, "data": ""})
    p.unsubscribe()
    p.punsubscribe()
    p.close()

    # A listener thread with handlers, as applications run it.
    got = []
    done = threading.Event()

    def handler(message):
        got.append(message["data"])
        if len(got) == 100:
            done.set()

    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe(**{"py:jobs": handler})
    worker = p.run_in_thread(sleep_time=0.01, daemon=True)
    deadline = time.monotonic() + 5
    while r.pubsub_numsub("py:jobs")[0][1] != 1:
        if time.monotonic() > deadline:
            raise AssertionError("the listener never subscribed")
        time.sleep(0.01)
    for i in range(100):
        r.publish("py:jobs", f"job-{i}")
    if not done.wait(5):
        raise AssertionError(f"the listener got {len(got)} of 100 messages")
    check("messages in order", got, [f"job-{i}" for i in range(100)])
    worker.stop()
    p.close()

    # Keyspace notifications: a cache-invalidation listener hears a write made elsewhere.
    r.config_set("notify-keyspace-events", "KEA")
    try:
        p = r.pubsub(ignore_subscribe_messages=True)
        p.psubscribe("__keyspace@0__:py:*")
        p.get_message(timeout=1)
        r.set("py:user:1", "ann")
        check("set event", next_message(p),
              {"type": "pmessage", "pattern": "__keyspace@0__:py:*",
               "channel": "__keyspace@0__:py:user:1", "data": "set"})
        r.delete("py:user:1")
        check("del event", next_message(p)["data"], "del")
        p.close()
    finally:
        r.config_set("notify-keyspace-events", "")
    print("redis-py pub/sub: ok")


if __name__ == "__main__":
    main()
