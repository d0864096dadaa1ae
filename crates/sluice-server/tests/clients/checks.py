"""What the redis-py client scripts share: their checks, and running one script's body in
RESP2 and RESP3 on keys of its own. Imported from the scripts' directory (Python puts a
script's own directory first on its path)."""

import argparse
import os

import redis


def check(what, got, expected):
    if got != expected:
        raise AssertionError(f"{what}: got {got!r}, expected {expected!r}")


def fails(what, call, prefix):
    """`call()` must raise a ResponseError whose text starts with `prefix`."""
    try:
        got = call()
    except redis.ResponseError as e:
        check(what, str(e).startswith(prefix), True)
        return
    raise AssertionError(f"{what}: no error, got {got!r}")


def server_args():
    """`[--host HOST] --port PORT`."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser.parse_args()


def in_both_protocols(args, family, run):
    """Runs `run(r, waker, k, protocol)` in RESP2, then RESP3: `r` and `waker` are two
    connections, `k(name)` names a key under "py:<family>:<pid>:" (so runs against a shared
    redis-server do not meet), deleted before and after. Returns `k`."""
    prefix = f"py:{family}:{os.getpid()}:"

    def k(name):
        return prefix + name

    for protocol in (2, 3):
        r = redis.Redis(host=args.host, port=args.port, protocol=protocol)
        waker = redis.Redis(host=args.host, port=args.port, protocol=protocol)
        keys = r.keys(prefix + "*")
        if keys:
            r.delete(*keys)
        try:
            run(r, waker, k, protocol)
        finally:
            keys = r.keys(prefix + "*")
            if keys:
                r.delete(*keys)
            r.close()
            waker.close()
    return k
