#!/usr/bin/env bash
# Consumer groups side by side with redis-server in one run, then what one group command costs
# as the pending entries list grows.
#
# 1. On a stream of N entries with a group at 0: XREADGROUP `>` COUNT 1 (each call delivers one
#    entry and adds it to the pending list, so the list grows to N), XPENDING's summary over
#    that list, XACK of a random entry, and XREADGROUP NOACK COUNT 10 (reads that leave nothing
#    pending), with redis-benchmark on Sluice's default (write-back, journal `fsync`) next to
#    redis-server `appendfsync always`, and on Sluice journal `none` next to redis-server
#    without persistence. One client (-c 1): the consumers of one group take turns on one key
#    anyway.
# 2. XCLAIM JUSTID of one pending entry (a group write that changes one delivery time) with
#    BACKLOGS pending entries in the group: a stream's groups live in its metadata row, which
#    every group command decodes and rewrites, so its cost follows the pending list's length.
# Not a test: the machines are shared and noisy.
#
# usage: bench/stream_groups.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-20000}
CLIENTS=1
require_redis_tools
cargo build --release -q
setup_work

start_reference_pairs

prepare() { # PORT KEY COUNT: a stream of COUNT entries, a group `g` at 0 and `n` at 0
  redis-cli -p "$1" DEL "$2" >/dev/null
  python3 bench/fill.py stream "$1" "$2" "$3"
  redis-cli -p "$1" XGROUP CREATE "$2" g 0 >/dev/null
  redis-cli -p "$1" XGROUP CREATE "$2" n 0 >/dev/null
}

side_by_side_header
for pair in "$SLUICE_FSYNC $REDIS_ALWAYS fsync/always" "$SLUICE_NONE $REDIS_PLAIN none/none"; do
  read -r s r label <<<"$pair"
  prepare "$s" bench:jobs "$N"; prepare "$r" bench:jobs "$N"
  side_by_side "$s" "$r" "XREADGROUP > COUNT 1 ($label)" 1 1 XREADGROUP GROUP g c COUNT 1 STREAMS bench:jobs '>'
  side_by_side "$s" "$r" "XPENDING summary ($label)" 1 1 XPENDING bench:jobs g
  side_by_side "$s" "$r" "XACK random ($label)" 1 "$N" XACK bench:jobs g __rand_int__-0
  side_by_side "$s" "$r" "XREADGROUP NOACK COUNT 10 ($label)" 1 1 XREADGROUP GROUP n c NOACK COUNT 10 STREAMS bench:jobs '>'
done

echo
echo "XCLAIM JUSTID of one entry, by the group's pending entries (journal none / no persistence, 1000 calls):"
echo "| pending | Sluice XCLAIM/s | Redis XCLAIM/s | ratio |"
echo "|---------|-----------------|----------------|-------|"
for backlog in ${BACKLOGS:-100 1000 10000}; do
  for port in "$SLUICE_NONE" "$REDIS_PLAIN"; do
    prepare "$port" "backlog:$backlog" "$backlog"
    redis-cli -p "$port" XREADGROUP GROUP g c STREAMS "backlog:$backlog" '>' >/dev/null
  done
  read -r sl _ < <(redis-benchmark -p "$SLUICE_NONE" -c 1 -n 1000 --csv XCLAIM "backlog:$backlog" g c 0 1-0 JUSTID 2>/dev/null | awk -F'"' 'NR==2 {print $4, $14}')
  read -r rd _ < <(redis-benchmark -p "$REDIS_PLAIN" -c 1 -n 1000 --csv XCLAIM "backlog:$backlog" g c 0 1-0 JUSTID 2>/dev/null | awk -F'"' 'NR==2 {print $4, $14}')
  printf '| %7s | %15s | %14s | %4.2fx |\n' "$backlog" "$sl" "$rd" "$(awk -v a="$sl" -v b="$rd" 'BEGIN{print (b>0)?a/b:0}')"
done
