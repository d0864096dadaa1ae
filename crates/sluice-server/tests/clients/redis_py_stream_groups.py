#!/usr/bin/env python3
"""redis-py stream consumer groups against a running server: a job queue as applications keep
one. Producers XADD jobs; worker threads, each on its own connection, XREADGROUP with ">" and
BLOCK, process and XACK, each job delivered exactly once; a worker that crashes leaves its jobs
pending, and another recovers them with XPENDING, XCLAIM and an XAUTOCLAIM cursor loop; a
restarted worker re-reads its own pending history with "0"; XINFO GROUPS / CONSUMERS / STREAM
(and FULL) read back through redis-py's parsers; XGROUP SETID, CREATECONSUMER, DELCONSUMER and
DESTROY; blocked reads woken by another connection's XADD, timing out, and unblocked with an
error when the key or the group goes; NOACK; pipelines and MULTI.

Run by crates/sluice-server/tests/streams.rs, first against redis-server (so every expectation
here is Redis's), then against an in-process Sluice:

    python3 redis_py_stream_groups.py [--host HOST] --port PORT

Exits non-zero (an AssertionError with the values) when the server answers otherwise than
redis-server 7.0 does. Every key it touches starts with "py:stream-groups:<pid>:", so runs
against a shared redis-server do not meet. Idle times and delivery timestamps are only checked
for their type, every other value exactly.
"""

import collections
import threading
import time

import redis

from checks import check, fails, in_both_protocols, server_args


def reads(reply):
    """XREADGROUP's reply as [(key, entries)]. redis-py gives [[key, entries], ...] in RESP2 and
    {key: [entries]} in RESP3 (the entries one list deeper); when nothing is read (a null reply),
    [] in RESP2 and {} in RESP3."""
    if isinstance(reply, dict):
        return [(key, v[0]) for key, v in reply.items()]
    return [(key, v) for key, v in reply]


def raw(protocol, key, entries):
    """What redis-py gives for an XREADGROUP reply of one stream, in `protocol`."""
    if protocol == 2:
        return [[key.encode(), entries]]
    return {key.encode(): [entries]}


def nothing(protocol):
    """What redis-py gives for XREADGROUP's null reply (nothing new, or a BLOCK timing out)."""
    return [] if protocol == 2 else {}


def connect(r):
    """Another connection to the same server, in the same protocol."""
    kw = r.connection_pool.connection_kwargs
    return redis.Redis(host=kw["host"], port=kw["port"], protocol=kw["protocol"])


def entry(i):
    """Task i as redis-py gives an entry: (b"i-0", {b"task": b"i"})."""
    return (f"{i}-0".encode(), {b"task": str(i).encode()})


def pending_of(r, key, group, **filters):
    """XPENDING's extended form as (id, consumer, times delivered); the idle time is only
    checked to be a non-negative int."""
    got = r.xpending_range(key, group, filters.pop("min", "-"), filters.pop("max", "+"),
                           filters.pop("count", 100), **filters)
    for p in got:
        check("xpending_range keys", set(p), {"message_id", "consumer", "time_since_delivered",
                                              "times_delivered"})
        check("time since delivered", isinstance(p["time_since_delivered"], int)
              and p["time_since_delivered"] >= 0, True)
    return [(p["message_id"], p["consumer"], p["times_delivered"]) for p in got]


def consumers_of(r, key, group):
    """XINFO CONSUMERS as (name, pending); idle only checked to be a non-negative int."""
    got = r.xinfo_consumers(key, group)
    for c in got:
        check("xinfo consumers keys", set(c), {"name", "pending", "idle"})
        check("consumer idle", isinstance(c["idle"], int) and c["idle"] >= 0, True)
    return [(c["name"], c["pending"]) for c in got]


def group(name, consumers, pending, last, entries_read, lag):
    """One group as XINFO GROUPS gives it (through redis-py: str keys, bytes values)."""
    return {"name": name, "consumers": consumers, "pending": pending,
            "last-delivered-id": last, "entries-read": entries_read, "lag": lag}


STREAM_KEYS = {"length", "radix-tree-keys", "radix-tree-nodes", "last-generated-id",
               "max-deleted-entry-id", "entries-added", "recorded-first-entry-id", "groups",
               "first-entry", "last-entry"}
FULL_KEYS = (STREAM_KEYS - {"groups", "first-entry", "last-entry"}) | {"entries", "groups"}
FULL_GROUP_KEYS = {"name", "last-delivered-id", "entries-read", "lag", "pel-count", "pending",
                   "consumers"}
FULL_CONSUMER_KEYS = {"name", "seen-time", "pel-count", "pending"}


def job_queue(r, k, protocol):
    """Three workers share a group; every job is delivered to exactly one and acked."""
    jobs = k("jobs")
    check("create mkstream", r.xgroup_create(jobs, "workers", id="0", mkstream=True), True)
    check("mkstream made an empty stream", (r.exists(jobs), r.xlen(jobs)), (1, 0))
    fails("create again", lambda: r.xgroup_create(jobs, "workers", id="0"),
          "BUSYGROUP Consumer Group name already exists")
    fails("create without mkstream on a missing key",
          lambda: r.xgroup_create(k("nothing"), "workers", id="0"),
          "The XGROUP subcommand requires the key to exist")
    check("no key made", r.exists(k("nothing")), 0)
    fails("no such group", lambda: r.xreadgroup("nobody", "w", {jobs: ">"}),
          f"NOGROUP No such key '{jobs}' or consumer group 'nobody' in XREADGROUP with GROUP")

    delivered = []
    errors = []
    lock = threading.Lock()
    done = threading.Event()

    def worker(name):
        c = connect(r)
        try:
            # Announced up front: a read that finds nothing does not make the consumer.
            check("createconsumer", c.xgroup_createconsumer(jobs, "workers", name), 1)
            while True:
                finished = done.is_set()
                got = reads(c.xreadgroup("workers", name, {jobs: ">"}, count=3, block=100))
                if not got:
                    if finished:
                        return
                    continue
                [(key, entries)] = got
                check("worker's stream", key, jobs.encode())
                check("count", 1 <= len(entries) <= 3, True)
                with lock:
                    delivered.extend((name, i, f[b"job"]) for i, f in entries)
                check("xack", c.xack(jobs, "workers", *[i for i, _ in entries]), len(entries))
        except BaseException as e:  # re-raised by the main thread
            errors.append(e)
        finally:
            c.close()

    names = ["w1", "w2", "w3"]
    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    time.sleep(0.05)  # the workers block, each XADD then wakes one of them
    producer = connect(r)
    ids = []
    for i in range(1, 21):
        ids.append(producer.xadd(jobs, {"job": i}))
        if i % 5 == 0:
            time.sleep(0.01)
    pipe = producer.pipeline(transaction=False)
    for i in range(21, 41):
        pipe.xadd(jobs, {"job": i})
    ids.extend(pipe.execute())
    producer.close()
    done.set()
    for t in threads:
        t.join(10)
    if errors:
        raise errors[0]
    check("workers finished", any(t.is_alive() for t in threads), False)

    by_id = collections.Counter(i for _, i, _ in delivered)
    check("each job delivered once", sorted(by_id.items()), [(i, 1) for i in sorted(ids)])
    job_of = {i: job for _, i, job in delivered}
    check("the jobs' fields", [job_of[i] for i in ids], [str(n).encode() for n in range(1, 41)])
    check("all acked", r.xpending(jobs, "workers"),
          {"pending": 0, "min": None, "max": None, "consumers": []})

    # A group made with "$" after the jobs sees none of them.
    check("create at $", r.xgroup_create(jobs, "late", id="$"), True)
    # Nothing new: a null, and (in Redis 7.0) no consumer made for it.
    check("nothing for late", r.xreadgroup("late", "l1", {jobs: ">"}), nothing(protocol))
    last = ids[-1]
    check("xinfo groups", r.xinfo_groups(jobs),
          [group(b"late", 0, 0, last, None, 0), group(b"workers", 3, 0, last, 40, 0)])
    check("xinfo consumers", consumers_of(r, jobs, "workers"),
          [(b"w1", 0), (b"w2", 0), (b"w3", 0)])

    info = r.xinfo_stream(jobs)
    check("xinfo stream keys", set(info), STREAM_KEYS)
    check("xinfo stream", {f: info[f] for f in STREAM_KEYS - {"radix-tree-keys",
                                                              "radix-tree-nodes"}},
          {"length": 40, "last-generated-id": last, "max-deleted-entry-id": b"0-0",
           "entries-added": 40, "recorded-first-entry-id": ids[0], "groups": 2,
           "first-entry": (ids[0], {b"job": b"1"}), "last-entry": (last, {b"job": b"40"})})

    full = r.xinfo_stream(jobs, full=True)
    check("full keys", set(full), FULL_KEYS)
    check("full length", (full["length"], full["entries-added"], full["last-generated-id"]),
          (40, 40, last))
    # FULL gives the first 10 entries unless told COUNT.
    check("full entries", full["entries"],
          {i: {b"job": str(n).encode()} for n, i in enumerate(ids[:10], 1)})
    check("full group keys", [set(g) for g in full["groups"]], [FULL_GROUP_KEYS] * 2)
    check("full groups", [(g["name"], g["last-delivered-id"], g["entries-read"], g["lag"],
                           g["pel-count"], g["pending"]) for g in full["groups"]],
          [(b"late", last, None, 0, 0, []), (b"workers", last, 40, 0, 0, [])])
    check("full consumers",
          [[(c["name"], c["pel-count"], c["pending"]) for c in g["consumers"]]
           for g in full["groups"]],
          [[], [(b"w1", 0, []), (b"w2", 0, []), (b"w3", 0, [])]])


def crash_and_recover(r, k, protocol):
    """A worker takes jobs and dies; another finds them with XPENDING and claims them."""
    tasks = k("tasks")
    for i in range(1, 11):
        r.xadd(tasks, {"task": i}, id=f"{i}-0")
    check("create at 0", r.xgroup_create(tasks, "g", id="0"), True)
    check("crashy reads", r.xreadgroup("g", "crashy", {tasks: ">"}, count=8),
          raw(protocol, tasks, [entry(i) for i in range(1, 9)]))
    check("steady reads", reads(r.xreadgroup("g", "steady", {tasks: ">"}, count=1)),
          [(tasks.encode(), [entry(9)])])
    check("steady acks", r.xack(tasks, "g", "9-0"), 1)
    check("ack again", r.xack(tasks, "g", "9-0"), 0)
    check("ack on no such group", r.xack(tasks, "nobody", "1-0"), 0)
    check("ack on no such key", r.xack(k("nothing"), "g", "1-0"), 0)

    check("xpending", r.xpending(tasks, "g"),
          {"pending": 8, "min": b"1-0", "max": b"8-0",
           "consumers": [{"name": b"crashy", "pending": 8}]})
    check("xpending_range", pending_of(r, tasks, "g"),
          [(f"{i}-0".encode(), b"crashy", 1) for i in range(1, 9)])
    check("xpending_range count", pending_of(r, tasks, "g", count=2),
          [(b"1-0", b"crashy", 1), (b"2-0", b"crashy", 1)])
    check("xpending_range bounds", pending_of(r, tasks, "g", min="3-0", max="5-0"),
          [(b"3-0", b"crashy", 1), (b"4-0", b"crashy", 1), (b"5-0", b"crashy", 1)])
    check("xpending_range exclusive", pending_of(r, tasks, "g", min="(1-0", max="(3-0"),
          [(b"2-0", b"crashy", 1)])
    check("xpending_range consumer", pending_of(r, tasks, "g", consumername="crashy", count=1),
          [(b"1-0", b"crashy", 1)])
    check("xpending_range other consumer", pending_of(r, tasks, "g", consumername="steady"), [])
    check("xpending_range not idle yet", pending_of(r, tasks, "g", idle=60000), [])
    fails("xpending of no such group", lambda: r.xpending(tasks, "nobody"),
          f"NOGROUP No such key '{tasks}' or consumer group 'nobody'")

    check("xinfo groups", r.xinfo_groups(tasks), [group(b"g", 2, 8, b"9-0", 9, 1)])
    check("xinfo consumers", consumers_of(r, tasks, "g"), [(b"crashy", 8), (b"steady", 0)])
    full = r.xinfo_stream(tasks, full=True)
    [g] = full["groups"]
    check("full pending", [(p[0], p[1], p[3]) for p in g["pending"]],
          [(f"{i}-0".encode(), b"crashy", 1) for i in range(1, 9)])
    check("full delivery times", all(isinstance(p[2], int) for p in g["pending"]), True)
    check("full consumer keys", [set(c) for c in g["consumers"]], [FULL_CONSUMER_KEYS] * 2)
    check("full consumers", [(c["name"], c["pel-count"], [(p[0], p[2]) for p in c["pending"]])
                             for c in g["consumers"]],
          [(b"crashy", 8, [(f"{i}-0".encode(), 1) for i in range(1, 9)]), (b"steady", 0, [])])
    check("full group", (g["name"], g["last-delivered-id"], g["entries-read"], g["lag"],
                         g["pel-count"]), (b"g", b"9-0", 9, 1, 8))

    # crashy is gone. Time passes; the producer cancels task 7 meanwhile.
    time.sleep(0.12)
    check("cancel 7", r.xdel(tasks, "7-0"), 1)
    check("xpending_range idle", [p[0] for p in pending_of(r, tasks, "g", idle=100)],
          [f"{i}-0".encode() for i in range(1, 9)])

    check("xclaim too early", r.xclaim(tasks, "g", "rescuer", 60000, ["1-0"]), [])
    check("xclaim", r.xclaim(tasks, "g", "rescuer", 100, ["1-0", "2-0", "99-0"]),
          [entry(1), entry(2)])
    check("xclaim justid", r.xclaim(tasks, "g", "rescuer", 100, ["3-0"], justid=True),
          [b"3-0"])
    # A claim counts a delivery; JUSTID does not.
    check("after xclaim", pending_of(r, tasks, "g", max="3-0"),
          [(b"1-0", b"rescuer", 2), (b"2-0", b"rescuer", 2), (b"3-0", b"rescuer", 1)])
    check("xpending after xclaim", r.xpending(tasks, "g"),
          {"pending": 8, "min": b"1-0", "max": b"8-0",
           "consumers": [{"name": b"crashy", "pending": 5}, {"name": b"rescuer", "pending": 3}]})
    check("rescuer acks", r.xack(tasks, "g", "1-0", "2-0", "3-0"), 3)

    # Deleted entries leave the PEL whatever their idle time, reported as XAUTOCLAIM's third
    # element even when nothing is idle enough to claim.
    check("xautoclaim nothing idle enough",
          r.xautoclaim(tasks, "g", "rescuer", 60000, start_id="0-0"), [b"0-0", [], [b"7-0"]])
    check("7 left the PEL", [p[0] for p in pending_of(r, tasks, "g")],
          [b"4-0", b"5-0", b"6-0", b"8-0"])
    # The cursor loop, COUNT 2 a call; task 5, cancelled meanwhile, comes back among the deleted
    # IDs and counts toward COUNT.
    check("cancel 5", r.xdel(tasks, "5-0"), 1)
    calls = []
    cursor = "0-0"
    while True:
        got = r.xautoclaim(tasks, "g", "rescuer", 100, start_id=cursor, count=2)
        calls.append(got)
        cursor = got[0]
        if cursor == b"0-0" or len(calls) > 10:
            break
    check("xautoclaim loop", calls,
          [[b"6-0", [entry(4)], [b"5-0"]],
           [b"0-0", [entry(6), entry(8)], []]])
    check("after xautoclaim", pending_of(r, tasks, "g"),
          [(b"4-0", b"rescuer", 2), (b"6-0", b"rescuer", 2), (b"8-0", b"rescuer", 2)])
    check("crashy has nothing left", consumers_of(r, tasks, "g"),
          [(b"crashy", 0), (b"rescuer", 3), (b"steady", 0)])
    # JUSTID: redis-py gives only the IDs (no cursor), and the delivery count stays.
    check("xautoclaim justid", r.xautoclaim(tasks, "g", "rescuer2", 0, count=10, justid=True),
          [b"4-0", b"6-0", b"8-0"])
    check("justid counts no delivery", pending_of(r, tasks, "g", consumername="rescuer2"),
          [(b"4-0", b"rescuer2", 2), (b"6-0", b"rescuer2", 2), (b"8-0", b"rescuer2", 2)])
    check("rescuer2 acks", r.xack(tasks, "g", "4-0", "5-0", "6-0", "7-0", "8-0"), 3)
    check("all recovered", r.xpending(tasks, "g"),
          {"pending": 0, "min": None, "max": None, "consumers": []})
    check("the last one", reads(r.xreadgroup("g", "steady", {tasks: ">"})),
          [(tasks.encode(), [entry(10)])])
    check("xinfo groups at the end", r.xinfo_groups(tasks),
          [group(b"g", 4, 1, b"10-0", 10, 0)])


def restart_reads_history(r, k, protocol):
    """A restarted worker first re-reads its own pending entries with "0", then goes on with
    ">"."""
    inbox = k("inbox")
    for i in range(1, 6):
        r.xadd(inbox, {"task": i}, id=f"{i}-0")
    r.xgroup_create(inbox, "g", id="0")
    check("first read", reads(r.xreadgroup("g", "w", {inbox: ">"}, count=3)),
          [(inbox.encode(), [entry(1), entry(2), entry(3)])])
    check("acks one", r.xack(inbox, "g", "2-0"), 1)
    # The restart: its history is what it has not acked, read again (a delivery more).
    check("history", r.xreadgroup("g", "w", {inbox: "0"}),
          raw(protocol, inbox, [entry(1), entry(3)]))
    check("history count", reads(r.xreadgroup("g", "w", {inbox: "0"}, count=1)),
          [(inbox.encode(), [entry(1)])])
    check("history after an id", reads(r.xreadgroup("g", "w", {inbox: "1-0"})),
          [(inbox.encode(), [entry(3)])])
    check("history BLOCK does not block", reads(r.xreadgroup("g", "w", {inbox: "0"},
                                                             block=5000)),
          [(inbox.encode(), [entry(1), entry(3)])])
    check("history counts deliveries", pending_of(r, inbox, "g"),
          [(b"1-0", b"w", 4), (b"3-0", b"w", 4)])
    # An entry deleted while pending comes back with no fields (a null, which redis-py gives as
    # an empty dict).
    check("xdel pending", r.xdel(inbox, "3-0"), 1)
    check("history with a deleted entry", reads(r.xreadgroup("g", "w", {inbox: "0"})),
          [(inbox.encode(), [entry(1), (b"3-0", {})])])
    check("the deleted one is not counted", pending_of(r, inbox, "g"),
          [(b"1-0", b"w", 5), (b"3-0", b"w", 4)])
    check("acks the rest", r.xack(inbox, "g", "1-0", "3-0"), 2)
    # Empty history: the stream with no entries, not a null, and BLOCK does not wait for it.
    check("empty history", r.xreadgroup("g", "w", {inbox: "0"}), raw(protocol, inbox, []))
    started = time.time()
    check("empty history BLOCK", r.xreadgroup("g", "w", {inbox: "0"}, block=20000),
          raw(protocol, inbox, []))
    check("empty history did not block", time.time() - started < 10, True)
    check("a new consumer's history", r.xreadgroup("g", "fresh", {inbox: "0"}),
          raw(protocol, inbox, []))
    check("the fresh consumer exists", consumers_of(r, inbox, "g"), [(b"fresh", 0), (b"w", 0)])
    check("then new ones", reads(r.xreadgroup("g", "w", {inbox: ">"})),
          [(inbox.encode(), [entry(4), entry(5)])])
    r.xack(inbox, "g", "4-0", "5-0")


def administration(r, k, protocol):
    """XGROUP SETID, CREATECONSUMER, DELCONSUMER, DESTROY."""
    s = k("admin")
    for i in range(1, 6):
        r.xadd(s, {"task": i}, id=f"{i}-0")
    check("create at $", r.xgroup_create(s, "g", id="$"), True)
    check("at $", r.xinfo_groups(s), [group(b"g", 0, 0, b"5-0", None, 0)])
    check("nothing new", r.xreadgroup("g", "spare", {s: ">"}), nothing(protocol))
    check("the empty read made no consumer", consumers_of(r, s, "g"), [])
    check("createconsumer", r.xgroup_createconsumer(s, "g", "spare"), 1)
    check("createconsumer existing", r.xgroup_createconsumer(s, "g", "spare"), 0)
    check("createconsumer idle", r.xgroup_createconsumer(s, "g", "idle"), 1)
    check("consumers", consumers_of(r, s, "g"), [(b"idle", 0), (b"spare", 0)])
    fails("createconsumer no group", lambda: r.xgroup_createconsumer(s, "nobody", "x"),
          f"NOGROUP No such consumer group 'nobody' for key name '{s}'")

    check("setid 0", r.xgroup_setid(s, "g", "0"), True)
    check("after setid 0", r.xinfo_groups(s), [group(b"g", 2, 0, b"0-0", None, 5)])
    check("doomed reads", reads(r.xreadgroup("g", "doomed", {s: ">"}, count=2)),
          [(s.encode(), [entry(1), entry(2)])])
    check("delconsumer gives its pending count", r.xgroup_delconsumer(s, "g", "doomed"), 2)
    check("its entries left the PEL", r.xpending(s, "g"),
          {"pending": 0, "min": None, "max": None, "consumers": []})
    check("delconsumer unknown", r.xgroup_delconsumer(s, "g", "nobody"), 0)
    check("delconsumer idle", r.xgroup_delconsumer(s, "g", "idle"), 0)
    check("consumers after", consumers_of(r, s, "g"), [(b"spare", 0)])

    check("setid with entriesread", r.xgroup_setid(s, "g", "3-0", entries_read=3), True)
    check("after setid 3-0", r.xinfo_groups(s), [group(b"g", 1, 0, b"3-0", 3, 2)])
    check("reads after 3-0", reads(r.xreadgroup("g", "spare", {s: ">"})),
          [(s.encode(), [entry(4), entry(5)])])
    check("caught up", r.xinfo_groups(s), [group(b"g", 1, 2, b"5-0", 5, 0)])
    check("setid $", r.xgroup_setid(s, "g", "$"), True)
    fails("setid no group", lambda: r.xgroup_setid(s, "nobody", "0"),
          f"NOGROUP No such consumer group 'nobody' for key name '{s}'")

    check("destroy", r.xgroup_destroy(s, "g"), True)
    check("destroy again", r.xgroup_destroy(s, "g"), False)
    check("no groups", r.xinfo_groups(s), [])
    check("stream stays", r.xinfo_stream(s)["groups"], 0)
    fails("read a destroyed group", lambda: r.xreadgroup("g", "spare", {s: ">"}), "NOGROUP")
    fails("xinfo groups of no key", lambda: r.xinfo_groups(k("nothing")), "no such key")

    r.set(k("str"), "v")
    fails("group on a string", lambda: r.xgroup_create(k("str"), "g", mkstream=True),
          "WRONGTYPE")
    fails("xreadgroup on a string", lambda: r.xreadgroup("g", "c", {k("str"): ">"}),
          "WRONGTYPE")


def blocking(r, waker, k, protocol):
    """Blocked XREADGROUP: woken by another connection's XADD, timing out, and unblocked with
    an error when the key or the group goes."""
    s = k("wake")
    r.xgroup_create(s, "g", id="$", mkstream=True)

    reader_id = r.client_id()

    def later(action, delay=0.2):
        """Runs `action` from another connection once `r` is blocked (CLIENT LIST flag b) and
        `delay` seconds have passed, so a loaded machine never runs it before the read."""
        def run():
            deadline = time.time() + 10
            while time.time() < deadline:
                flags = waker.client_list(client_id=[reader_id])[0]["flags"]
                if "b" in flags:
                    break
                time.sleep(0.01)
            time.sleep(delay)
            action()
        t = threading.Thread(target=run)
        t.start()
        return t

    t = later(lambda: waker.xadd(s, {"late": "yes"}, id="7-1"))
    started = time.time()
    got = r.xreadgroup("g", "c", {s: ">"}, block=5000)
    t.join()
    check("woken", got, raw(protocol, s, [(b"7-1", {b"late": b"yes"})]))
    check("woken after the add", time.time() - started >= 0.15, True)
    check("woken read is pending", pending_of(r, s, "g"), [(b"7-1", b"c", 1)])

    started = time.time()
    check("timeout", r.xreadgroup("g", "c", {s: ">"}, block=100), nothing(protocol))
    check("timed out after the block", time.time() - started >= 0.09, True)

    t = later(lambda: waker.xgroup_destroy(s, "g"), 0.1)
    fails("group destroyed while blocked", lambda: r.xreadgroup("g", "c", {s: ">"}, block=5000),
          "NOGROUP the consumer group this client was blocked on no longer exists")
    t.join()
    r.xgroup_create(s, "g", id="$")
    t = later(lambda: waker.delete(s), 0.1)
    fails("key deleted while blocked", lambda: r.xreadgroup("g", "c", {s: ">"}, block=5000),
          "UNBLOCKED the stream key no longer exists")
    t.join()
    check("the connection still works", r.ping(), True)


def noack(r, k, protocol):
    """NOACK reads deliver and move the group on, leaving nothing pending."""
    s = k("fire")
    r.xgroup_create(s, "g", id="0", mkstream=True)
    for i in range(1, 4):
        r.xadd(s, {"task": i}, id=f"{i}-0")
    check("noack read", reads(r.xreadgroup("g", "c", {s: ">"}, noack=True)),
          [(s.encode(), [entry(1), entry(2), entry(3)])])
    check("nothing pending", r.xpending(s, "g"),
          {"pending": 0, "min": None, "max": None, "consumers": []})
    check("no history", r.xreadgroup("g", "c", {s: "0"}), raw(protocol, s, []))
    check("group moved on", r.xinfo_groups(s), [group(b"g", 1, 0, b"3-0", 3, 0)])
    check("consumer has none", consumers_of(r, s, "g"), [(b"c", 0)])


def pipelines(r, k, protocol):
    """XADD, XREADGROUP and XACK in a MULTI transaction and in a plain pipeline."""
    s = k("tx")
    r.xgroup_create(s, "g", id="0", mkstream=True)
    pipe = r.pipeline(transaction=True)
    pipe.xadd(s, {"task": 1}, id="1-0").xadd(s, {"task": 2}, id="2-0")
    pipe.xreadgroup("g", "c", {s: ">"}, count=1).xack(s, "g", "1-0").xpending(s, "g")
    check("multi", pipe.execute(),
          [b"1-0", b"2-0", raw(protocol, s, [entry(1)]), 1,
           {"pending": 0, "min": None, "max": None, "consumers": []}])

    # In MULTI, BLOCK does not block: with nothing new the read gives its null at once.
    started = time.time()
    pipe = r.pipeline(transaction=True)
    pipe.xreadgroup("g", "c", {s: ">"}, count=1)
    pipe.xreadgroup("g", "c", {s: ">"}, block=20000)
    pipe.xack(s, "g", "2-0")
    check("multi with block", pipe.execute(), [raw(protocol, s, [entry(2)]), nothing(protocol), 1])
    check("did not block", time.time() - started < 10, True)

    pipe = r.pipeline(transaction=False)
    pipe.xadd(s, {"task": 3}, id="3-0")
    pipe.xreadgroup("g", "d", {s: ">"})
    pipe.xreadgroup("g", "d", {s: "0"})
    pipe.xack(s, "g", "3-0", "4-0")
    pipe.xinfo_groups(s)
    check("pipeline", pipe.execute(),
          [b"3-0", raw(protocol, s, [entry(3)]), raw(protocol, s, [entry(3)]), 1,
           [group(b"g", 2, 0, b"3-0", 3, 0)]])


def run(r, waker, k, protocol):
    job_queue(r, k, protocol)
    crash_and_recover(r, k, protocol)
    restart_reads_history(r, k, protocol)
    administration(r, k, protocol)
    blocking(r, waker, k, protocol)
    noack(r, k, protocol)
    pipelines(r, k, protocol)


def main():
    args = server_args()
    started = time.time()
    k = in_both_protocols(args, "stream-groups", run)
    # decode_responses: names, IDs and fields come back as str.
    r = redis.Redis(host=args.host, port=args.port, decode_responses=True)
    try:
        s = k("s")
        r.xgroup_create(s, "g", id="0", mkstream=True)
        r.xadd(s, {"é": "ß"}, id="1-0")
        check("xreadgroup str", r.xreadgroup("g", "c", {s: ">"}), [[s, [("1-0", {"é": "ß"})]]])
        check("xpending str", r.xpending(s, "g"),
              {"pending": 1, "min": "1-0", "max": "1-0",
               "consumers": [{"name": "c", "pending": 1}]})
        check("xinfo groups str", r.xinfo_groups(s), [group("g", 1, 1, "1-0", 1, 0)])
    finally:
        r.delete(k("s"))
        r.close()
    print(f"redis-py stream groups ok ({args.host}:{args.port}, {time.time() - started:.2f}s)")


if __name__ == "__main__":
    main()
