#!/usr/bin/env bash
# Streams side by side with redis-server in one run, then what one XADD costs as a stream
# grows.
#
# 1. XADD to a log capped by `MAXLEN ~ 1000` (the usual event log), XADD to 1 000 small
#    streams, XREVRANGE of the newest 10 entries and XRANGE of 10 from a random ID of a
#    1 000-entry stream, with redis-benchmark on Sluice's default (write-back, journal `fsync`)
#    next to redis-server `appendfsync always`, and on Sluice journal `none` next to
#    redis-server without persistence.
# 2. XADD onto a stream of 1 000 and 10 000 entries (SIZES), write-through on SQLite (each
#    XADD commits before it answers): the store inserts one entry row and updates the
#    metadata row whatever the length; the time that grows is Sluice copying the stream's
#    image in memory (a stream is one image in the cache today).
# Not a test: the machines are shared and noisy.
#
# usage: bench/streams.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-20000}
CLIENTS=${CLIENTS:-50}
require_redis_tools
cargo build --release -q
setup_work

fill() { python3 bench/fill.py stream "$@"; } # port key count

start_reference_pairs

side_by_side_header
rows() { # SLUICE_PORT REDIS_PORT LABEL PIPELINE
  side_by_side "$1" "$2" "XADD log MAXLEN ~ 1000 ($3)" "$4" 1 XADD bench:log MAXLEN '~' 1000 '*' sensor s1 value __rand_int__
  side_by_side "$1" "$2" "XADD 1k streams ($3)" "$4" 1000 XADD bench:s:__rand_int__ '*' sensor s1 value 42
  side_by_side "$1" "$2" "XREVRANGE newest 10 of 1k ($3)" "$4" 1 XREVRANGE bench:stream + - COUNT 10
  side_by_side "$1" "$2" "XRANGE 10 from random of 1k ($3)" "$4" 1000 XRANGE bench:stream __rand_int__ + COUNT 10
}
for_each_pair stream bench:stream 1000 rows

echo
echo "XADD onto a stream, write-through on SQLite, by its length (1000 calls, one client):"
start_sluice through fsync "$(printf '[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-through"\n')"
THROUGH=$PORT
echo "| entries | XADD/s | us per XADD | rows in sluice_members |"
echo "|---------|--------|-------------|------------------------|"
for size in ${SIZES:-1000 10000}; do
  fill "$THROUGH" "grow:$size" "$size"
  read -r rps _ < <(redis-benchmark -p "$THROUGH" -c 1 -n 1000 --csv XADD "grow:$size" '*' sensor s1 value __rand_int__ 2>/dev/null | awk -F'"' 'NR==2 {print $4, $14}')
  rows=$(sqlite3 "$WORK/through/data/sluice.db" "SELECT COUNT(*) FROM sluice_members WHERE key = CAST('grow:$size' AS BLOB)")
  printf '| %7s | %6s | %11.0f | %22s |\n' "$size" "$rps" "$(awk -v r="$rps" 'BEGIN{print (r>0)?1e6/r:0}')" "$rows"
done
