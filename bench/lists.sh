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
require_redis_tools
cargo build --release -q
setup_work

fill() { python3 bench/fill.py list "$@"; } # port key count

start_reference_pairs

side_by_side_header
rows() { # SLUICE_PORT REDIS_PORT LABEL PIPELINE
  side_by_side "$1" "$2" "LPUSH queue ($3)" "$4" 100000 LPUSH bench:queue job:__rand_int__
  side_by_side "$1" "$2" "RPOP queue ($3)" "$4" 100000 RPOP bench:queue
  side_by_side "$1" "$2" "LRANGE 0 9 of 1k ($3)" "$4" 1000 LRANGE bench:list 0 9
  side_by_side "$1" "$2" "LRANGE 0 99 of 1k ($3)" "$4" 1000 LRANGE bench:list 0 99
  side_by_side "$1" "$2" "LINDEX 500 of 1k ($3)" "$4" 1000 LINDEX bench:list 500
}
for_each_pair list bench:list 1000 rows

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
