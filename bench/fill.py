#!/usr/bin/env python3
"""Fills one key of a Redis-protocol server with COUNT members, 1000 per request (streams:
1000 XADD per pipeline), for the bench scripts.

usage: python3 bench/fill.py KIND PORT KEY COUNT
  list    RPUSH element:000000000000 ..
  set     SADD member:0 ..
  zset    ZADD 0 player:000000000000 .. (score i)
  stream  XADD i-0 sensor s<i % 17> value i, for i from 1
"""

import socket
import sys


def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def main():
    kind, port, key, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    s = socket.create_connection(("127.0.0.1", port))
    for start in range(0, count, 1000):
        batch = range(start, min(count, start + 1000))
        if kind == "list":
            requests = [cmd("RPUSH", key, *[f"element:{i:012d}" for i in batch])]
        elif kind == "set":
            requests = [cmd("SADD", key, *[f"member:{i}" for i in batch])]
        elif kind == "zset":
            requests = [cmd("ZADD", key, *[x for i in batch for x in (str(i), f"player:{i:012d}")])]
        elif kind == "stream":
            requests = [
                cmd("XADD", key, f"{i + 1}-0", "sensor", f"s{(i + 1) % 17}", "value", str(i + 1))
                for i in batch
            ]
        else:
            sys.exit(f"unknown kind {kind}")
        s.sendall(b"".join(requests))
        # Every reply here is one line (an integer or a short bulk string's two).
        want = len(requests) * (2 if kind == "stream" else 1)
        buf = b""
        while buf.count(b"\r\n") < want:
            buf += s.recv(65536)


if __name__ == "__main__":
    main()
