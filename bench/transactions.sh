#!/usr/bin/env bash
# Transactions, scripts and hashes side by side with redis-server, in one run:
# - keys written per second by ten SETs sent as one MULTI/EXEC against ten separate SETs, and
#   by a one-SET EVALSHA, with 50 clients (examples/exec_bench.rs), on Sluice write-through
#   (SQLite: EXEC is one database commit, ten SETs share group commits) and on redis-server;
# - redis-benchmark requests/s of HSET, HGET-style reads (HGETALL through a custom command) and
#   EVALSHA at P1 and P16, Sluice write-back (journal none) against redis-server (no
#   persistence).
# Not a test: machines are shared and noisy; compare ratios, not absolute numbers.
#
# usage: bench/transactions.sh [requests] [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-100000}
SECONDS_PER_MODE=${2:-5}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
cargo build --release -q -p sluice-server --bin sluice --example exec_bench
setup_work

start_redis plain --appendonly no; REDIS=$PORT
start_sluice through none '[[keyspace]]
name = "default"
keys = "*"
policy = "write-through"'
S_THROUGH=$PORT
start_sluice back none; S_BACK=$PORT

echo "## MULTI/EXEC of 10 SETs vs 10 SETs, EVALSHA (50 clients, ${SECONDS_PER_MODE}s each)"
for target in "sluice-write-through $S_THROUGH" "sluice-write-back $S_BACK" "redis $REDIS"; do
  set -- $target
  target/release/examples/exec_bench "$2" 50 "$SECONDS_PER_MODE" | sed "s/^/$1\t/"
done

SHA=$(redis-cli -p "$REDIS" script load "return redis.call('SET', KEYS[1], ARGV[1])")
redis-cli -p "$S_BACK" script load "return redis.call('SET', KEYS[1], ARGV[1])" >/dev/null
rb() { # port pipeline command...
  redis-benchmark -p "$1" -c 50 -n "$N" -P "$2" -r 10000 --csv "${@:3}" 2>/dev/null | awk -F'"' 'NR==2 {print $4}'
}
echo
echo "| command | P | Sluice/s | Redis/s | ratio |"
echo "|---|---|---|---|---|"
for P in 1 16; do
  for cmd in "HSET h:__rand_int__ f __rand_int__" "HGETALL h:__rand_int__" "EVALSHA $SHA 1 k:__rand_int__ v"; do
    s=$(rb "$S_BACK" "$P" $cmd); r=$(rb "$REDIS" "$P" $cmd)
    printf '| %s | %s | %s | %s | %.2fx |\n' "${cmd%% *}" "$P" "$s" "$r" "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')"
  done
done
