#!/usr/bin/env bash
# What member records save: ZINCRBY of a random player of a leaderboard of 1 000, 10 000 and
# 100 000 players under write-back with the journal fsynced (Sluice's default), with member
# records (the default: a write to a buffered collection of at least 4 KiB journals only its
# members) next to the same binary journaling every write's whole board
# (`member_records_from = "1000GiB"`), and redis-server `appendfsync always` as the reference.
# Prints ops/s and the bytes each server process wrote to storage per ZINCRBY (/proc/PID/io
# `write_bytes`: journal segments, zero-fill included, and the flushes into SQLite).
# Not a test: the machines are shared and noisy.
#
# usage: bench/member_records.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-20000}
CLIENTS=${CLIENTS:-50}
require_redis_tools
cargo build --release -q
setup_work

written() { awk '/^write_bytes/ {print $2}' "/proc/$1/io"; }

# run PORT PID KEY SIZE: ops/s and storage bytes written per request for $N ZINCRBY.
run() {
  local before after rps
  before=$(written "$2")
  rps=$(redis-benchmark -p "$1" -c "$CLIENTS" -n "$N" -r "$4" --csv ZINCRBY "$3" 1 player:__rand_int__ 2>/dev/null |
    awk -F'"' 'NR==2 {print $4}')
  sleep 1 # the flush of the last writes, counted with them
  after=$(written "$2")
  printf '%s %s\n' "$rps" "$(awk -v a="$after" -v b="$before" -v n="$N" 'BEGIN{printf "%.0f", (a-b)/n}')"
}

start_redis always --appendonly yes --appendfsync always
REDIS=$PORT
REDIS_PID=$SERVER_PID
KEYSPACE=$(printf '[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-back"\nflush_interval = "1s"\n')
start_sluice members fsync "$KEYSPACE"
MEMBERS=$PORT
MEMBERS_PID=$SERVER_PID
SLUICE_JOURNAL_EXTRA='member_records_from = "1000GiB"' start_sluice whole fsync "$KEYSPACE"
WHOLE=$PORT
WHOLE_PID=$SERVER_PID

echo "requests=$N clients=$CLIENTS, ZINCRBY of a random player, P1"
echo
echo "| players | member records /s | B/op | whole boards /s | B/op | Redis always /s | B/op | members / whole | members / Redis |"
echo "|---------|------------------|------|-----------------|------|-----------------|------|-----------------|-----------------|"
for size in 1000 10000 100000; do
  key="board:$size"
  for port in "$REDIS" "$MEMBERS" "$WHOLE"; do python3 bench/fill.py zset "$port" "$key" "$size"; done
  # The fill's own writes flushed first, so each run starts with the board stored.
  redis-cli -p "$MEMBERS" SLUICE.FLUSH >/dev/null
  redis-cli -p "$WHOLE" SLUICE.FLUSH >/dev/null
  read -r m_rps m_bytes < <(run "$MEMBERS" "$MEMBERS_PID" "$key" "$size")
  read -r w_rps w_bytes < <(run "$WHOLE" "$WHOLE_PID" "$key" "$size")
  read -r r_rps r_bytes < <(run "$REDIS" "$REDIS_PID" "$key" "$size")
  printf '| %7s | %16s | %4s | %15s | %4s | %15s | %4s | %15s | %15s |\n' "$size" \
    "$m_rps" "$m_bytes" "$w_rps" "$w_bytes" "$r_rps" "$r_bytes" \
    "$(awk -v a="$m_rps" -v b="$w_rps" 'BEGIN{printf "%.2fx", (b>0)?a/b:0}')" \
    "$(awk -v a="$m_rps" -v b="$r_rps" 'BEGIN{printf "%.2fx", (b>0)?a/b:0}')"
done
