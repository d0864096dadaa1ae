#!/usr/bin/env bash
# Side-by-side redis-benchmark: Sluice (write-back, each journal mode) against redis-server
# (no persistence, and appendonly yes + appendfsync always), measured in the same run.
# Prints requests/s and the Sluice/Redis ratio. Not a test: the machines are shared and noisy.
#
# usage: bench/redis_benchmark.sh [requests] [keyspace-size]
#   requests       per test (default 200000)
#   keyspace-size  redis-benchmark -r (default 0: one key, as redis-benchmark does by default)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-200000}
R=${2:-0}
CLIENTS=${CLIENTS:-50}
# SET runs first: it creates the key(s) GET reads, so GET measures hits, not misses.
TESTS=${TESTS:-set,get,incr}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
cargo build --release -q
setup_work

bench_csv() { # port, test, pipeline -> "rps p99_ms"
  local rflag=()
  [ "$R" -gt 0 ] && rflag=(-r "$R")
  benchmark_csv "$1" "$CLIENTS" "$N" "$2" "$3" "${rflag[@]}"
}

row() { # label, sluice-port, redis-port, test, pipeline
  local s r
  read -r s sp99 < <(bench_csv "$2" "$4" "$5")
  read -r r rp99 < <(bench_csv "$3" "$4" "$5")
  printf '| %-44s | %-5s | P%-2s | %12s | %12s | %5.2fx | %7s | %7s |\n' "$1" "$4" "$5" "$s" "$r" \
    "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$sp99" "$rp99"
}

start_redis plain --appendonly no; REDIS_PLAIN=$PORT
start_redis always --appendonly yes --appendfsync always; REDIS_ALWAYS=$PORT
start_sluice none none; S_NONE=$PORT
start_sluice os os; S_OS=$PORT
start_sluice fsync fsync; S_FSYNC=$PORT

echo "requests=$N clients=$CLIENTS keyspace=${R:-1}"
echo
echo "| Sluice write-back vs Redis                   | test  | P   |     Sluice/s |      Redis/s | ratio | Sluice p99 ms | Redis p99 ms |"
echo "|----------------------------------------------|-------|-----|--------------|--------------|-------|---------|---------|"
for P in 1 16; do
  for T in ${TESTS//,/ }; do
    row "journal none vs redis no persistence" "$S_NONE" "$REDIS_PLAIN" "$T" "$P"
  done
  row "journal os vs redis appendfsync always" "$S_OS" "$REDIS_ALWAYS" set "$P"
  row "journal fsync vs redis appendfsync always" "$S_FSYNC" "$REDIS_ALWAYS" set "$P"
done
echo
for name in fsync os; do
  port=$([ $name = fsync ] && echo "$S_FSYNC" || echo "$S_OS")
  redis-cli -p "$port" info sluice | grep -E 'journal_(appends|fsyncs|writes_per_fsync)' | sed "s/^/$name: /"
done
