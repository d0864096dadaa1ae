#!/usr/bin/env bash
# Sets side by side with redis-server in one run, then what one SADD costs as a set grows.
#
# 1. SADD (random members), SISMEMBER, SPOP and SMEMBERS (a 100-member set) with
#    redis-benchmark on Sluice's default (write-back, journal `fsync`) next to redis-server
#    `appendfsync always`, and on Sluice journal `none` next to redis-server without persistence.
# 2. SADD of one new member to a set of 1 000, 10 000 and 100 000 members, write-through on
#    SQLite (each SADD commits before it answers): the store writes one member row whatever the
#    set's size; the time that grows is Sluice decoding and re-encoding the set in memory.
# Not a test: the machines are shared and noisy.
#
# usage: bench/sets.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-100000}
CLIENTS=${CLIENTS:-50}
require_redis_tools
cargo build --release -q
setup_work

fill() { python3 bench/fill.py set "$@"; } # port key count

start_reference_pairs

side_by_side_header
rows() { # SLUICE_PORT REDIS_PORT LABEL PIPELINE
  side_by_side "$1" "$2" "SADD random ($3)" "$4" 100000 SADD bench:set member:__rand_int__
  side_by_side "$1" "$2" "SISMEMBER ($3)" "$4" 100000 SISMEMBER bench:set member:__rand_int__
  side_by_side "$1" "$2" "SMEMBERS 100 ($3)" "$4" 100000 SMEMBERS bench:small
  side_by_side "$1" "$2" "SPOP, set emptying ($3)" "$4" 100000 SPOP bench:set
}
for_each_pair set bench:small 100 rows

echo
echo "SADD of one new member, write-through on SQLite, by set size (1000 calls, one client):"
start_sluice through fsync "$(printf '[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-through"\n')"
THROUGH=$PORT
echo "| members | SADD/s | us per SADD | member rows in sluice_members |"
echo "|---------|--------|-------------|-------------------------------|"
for size in 1000 10000 100000; do
  fill "$THROUGH" "grow:$size" "$size"
  read -r rps _ < <(redis-benchmark -p "$THROUGH" -c 1 -n 1000 -r 100000000 --csv SADD "grow:$size" new:__rand_int__ 2>/dev/null | awk -F'"' 'NR==2 {print $4, $14}')
  rows=$(sqlite3 "$WORK/through/data/sluice.db" "SELECT COUNT(*) FROM sluice_members WHERE key = CAST('grow:$size' AS BLOB)")
  printf '| %7s | %6s | %11.0f | %29s |\n' "$size" "$rps" "$(awk -v r="$rps" 'BEGIN{print (r>0)?1e6/r:0}')" "$rows"
done
