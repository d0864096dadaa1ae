#!/usr/bin/env bash
# Lists side by side with redis-server in one run, then what one RPUSH costs as an event log
# grows.
#
# 1. A queue (LPUSH then RPOP of random jobs, the list growing to the request count and back),
#    LRANGE of the first 10 and 100 elements of a 1 000-element list, LINDEX in its middle,
#    with redis-benchmark on Sluice's default (write-back, journal `fsync`) next to
#    redis-server `appendfsync always`, and on Sluice journal `none` next to redis-server
#    without persistence.
# 2. RPUSH onto a list of 1 000, 10 000 and 100 000 elements, write-through on SQLite (each
#    RPUSH commits before it answers): the store inserts one row whatever the list's length;
#    the time that grows is Sluice copying the list's image in memory (a list is one image in
#    the cache today).
# Not a test: the machines are shared and noisy.
#
# usage: bench/lists.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-20000}
CLIENTS=${CLIENTS:-50}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
cargo build --release -q
setup_work

run() { # port pipeline range command... -> "rps p99_ms"
  redis-benchmark -p "$1" -c "$CLIENTS" -n "$N" -r "$3" -P "$2" --csv "${@:4}" 2>/dev/null \
    | awk -F'"' 'NR==2 {print $4, $14}'
}

row() { # sluice-port redis-port label pipeline range command...
  local s r sp99 rp99
  read -r s sp99 < <(run "$1" "$4" "$5" "${@:6}")
  read -r r rp99 < <(run "$2" "$4" "$5" "${@:6}")
  printf '| %-30s | P%-2s | %10s | %10s | %5.2fx | %6s | %6s |\n' "$3" "$4" "$s" "$r" \
    "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$sp99" "$rp99"
}

fill() { # port key count: RPUSH element:0 .. in batches of 1000
  python3 - "$1" "$2" "$3" <<'PY'
import socket, sys
port, key, count = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port))
def cmd(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out
for start in range(0, count, 1000):
    s.sendall(cmd("RPUSH", key, *[f"element:{i:012d}" for i in range(start, min(count, start + 1000))]))
    buf = b""
    while not buf.endswith(b"\r\n"):
        buf += s.recv(65536)
PY
}

start_redis always --appendonly yes --appendfsync always; REDIS_ALWAYS=$PORT
start_redis plain --appendonly no; REDIS_PLAIN=$PORT
start_sluice fsync fsync; SLUICE_FSYNC=$PORT
start_sluice none none; SLUICE_NONE=$PORT

echo "requests=$N clients=$CLIENTS"
echo
echo "| Sluice vs Redis                | P   |   Sluice/s |    Redis/s | ratio | S p99 | R p99 |"
echo "|--------------------------------|-----|------------|------------|-------|-------|-------|"
for pair in "$SLUICE_FSYNC $REDIS_ALWAYS fsync/always" "$SLUICE_NONE $REDIS_PLAIN none/none"; do
  read -r s r label <<<"$pair"
  fill "$s" bench:list 1000; fill "$r" bench:list 1000
  for P in ${PIPELINES:-1 16}; do
    row "$s" "$r" "LPUSH queue ($label)" "$P" 100000 LPUSH bench:queue job:__rand_int__
    row "$s" "$r" "RPOP queue ($label)" "$P" 100000 RPOP bench:queue
    row "$s" "$r" "LRANGE 0 9 of 1k ($label)" "$P" 1000 LRANGE bench:list 0 9
    row "$s" "$r" "LRANGE 0 99 of 1k ($label)" "$P" 1000 LRANGE bench:list 0 99
    row "$s" "$r" "LINDEX 500 of 1k ($label)" "$P" 1000 LINDEX bench:list 500
  done
done

echo
echo "RPUSH onto a list, write-through on SQLite, by its length (1000 calls, one client):"
start_sluice through fsync "$(printf '[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-through"\n')"
THROUGH=$PORT
echo "| elements | RPUSH/s | us per RPUSH | rows in sluice_members |"
echo "|----------|---------|--------------|------------------------|"
for size in 1000 10000 100000; do
  fill "$THROUGH" "grow:$size" "$size"
  read -r rps _ < <(redis-benchmark -p "$THROUGH" -c 1 -n 1000 --csv RPUSH "grow:$size" event:__rand_int__ 2>/dev/null | awk -F'"' 'NR==2 {print $4, $14}')
  rows=$(sqlite3 "$WORK/through/data/sluice.db" "SELECT COUNT(*) FROM sluice_members WHERE key = CAST('grow:$size' AS BLOB)")
  printf '| %8s | %7s | %12.0f | %22s |\n' "$size" "$rps" "$(awk -v r="$rps" 'BEGIN{print (r>0)?1e6/r:0}')" "$rows"
done
