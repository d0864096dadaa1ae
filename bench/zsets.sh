#!/usr/bin/env bash
# Sorted sets side by side with redis-server in one run, then what one ZINCRBY costs as a
# leaderboard grows.
#
# 1. A 1 000-player leaderboard (ZINCRBY of a random player, ZSCORE, ZREVRANK, the top 10
#    with ZREVRANGE ... WITHSCORES) and ZADD of random new members, with redis-benchmark on
#    Sluice's default (write-back, journal `fsync`) next to redis-server `appendfsync always`,
#    and on Sluice journal `none` next to redis-server without persistence.
# 2. ZINCRBY of one player of a board of 1 000, 10 000 and 100 000 players, write-through on
#    SQLite (each ZINCRBY commits before it answers): the store upserts one member row whatever
#    the board's size; the time that grows is Sluice decoding and re-encoding the board in
#    memory (a sorted set is one image in the cache today).
# Not a test: the machines are shared and noisy.
#
# usage: bench/zsets.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-20000}
CLIENTS=${CLIENTS:-50}
require_redis_tools
cargo build --release -q
setup_work

fill() { python3 bench/fill.py zset "$@"; } # port key count

start_reference_pairs

side_by_side_header
rows() { # SLUICE_PORT REDIS_PORT LABEL PIPELINE
  side_by_side "$1" "$2" "ZINCRBY board 1k ($3)" "$4" 1000 ZINCRBY bench:board 1 player:__rand_int__
  side_by_side "$1" "$2" "ZSCORE board 1k ($3)" "$4" 1000 ZSCORE bench:board player:__rand_int__
  side_by_side "$1" "$2" "ZREVRANK board 1k ($3)" "$4" 1000 ZREVRANK bench:board player:__rand_int__
  side_by_side "$1" "$2" "ZREVRANGE top 10 ($3)" "$4" 1000 ZREVRANGE bench:board 0 9 WITHSCORES
  side_by_side "$1" "$2" "ZADD random ($3)" "$4" 100000 ZADD bench:z __rand_int__ member:__rand_int__
}
for_each_pair zset bench:board 1000 rows

echo
echo "ZINCRBY of one player, write-through on SQLite, by board size (1000 calls, one client):"
start_sluice through fsync "$(printf '[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-through"\n')"
THROUGH=$PORT
echo "| players | ZINCRBY/s | us per ZINCRBY | member rows in sluice_members |"
echo "|---------|-----------|----------------|-------------------------------|"
for size in 1000 10000 100000; do
  fill "$THROUGH" "grow:$size" "$size"
  read -r rps _ < <(redis-benchmark -p "$THROUGH" -c 1 -n 1000 -r "$size" --csv ZINCRBY "grow:$size" 1 player:__rand_int__ 2>/dev/null | awk -F'"' 'NR==2 {print $4, $14}')
  rows=$(sqlite3 "$WORK/through/data/sluice.db" "SELECT COUNT(*) FROM sluice_members WHERE key = CAST('grow:$size' AS BLOB)")
  printf '| %7s | %9s | %14.0f | %29s |\n' "$size" "$rps" "$(awk -v r="$rps" 'BEGIN{print (r>0)?1e6/r:0}')" "$rows"
done
