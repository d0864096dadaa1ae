#!/usr/bin/env bash
# How Sluice scales with cores, next to one redis-server on the same machine.
#
# For t = 1, 2, 4, ... while t <= cores/2: Sluice runs with io_threads = t, the whole process
# pinned (taskset) to cores 0..t-1; redis-benchmark runs pinned to the cores the server does
# not use, with --threads as many as those cores. One redis-server is measured pinned to core 0
# with the same load generator (Redis serves commands on one thread whatever the machine).
# Prints ops/s per thread count and the ratio to redis-server. Not a test: timing only.
#
# On a 2-core machine it shows the 1-thread point only; unchanged on a 16-core machine it
# shows 1, 2, 4 and 8 threads.
#
# usage: bench/scaling.sh [requests] [tests] [pipelines]
#   defaults: 1000000 "get set" "16"; environment: CLIENTS (default 50 per server thread),
#   KEYS (redis-benchmark -r, default 10000), JOURNAL (Sluice journal durability, default
#   none, compared with redis-server without persistence).
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-1000000}
TESTS=${2:-get set}
PIPES=${3:-16}
KEYS=${KEYS:-10000}
JOURNAL=${JOURNAL:-none}
for tool in taskset redis-benchmark redis-server redis-cli; do
  command -v $tool >/dev/null || { echo "$tool missing: apt-get install util-linux redis-tools redis-server"; exit 1; }
done
CORES=$(nproc)
if [ "$CORES" -lt 2 ]; then echo "needs at least 2 cores (one for the server, one for the load)"; exit 1; fi
cargo build --release -q -p sluice-server
setup_work

# load PORT SERVER_CORES TEST PIPELINE CLIENTS -> ops/s, the generator on the other cores.
load() {
  local first=$2 last=$((CORES - 1))
  local gen_threads=$((CORES - $2))
  taskset -c "$first-$last" redis-benchmark -p "$1" -c "$5" -n "$N" -r "$KEYS" -t "$3" -P "$4" \
    --threads "$gen_threads" --csv 2>/dev/null | awk -F'"' 'NR==2 {print $4}'
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

declare -A REDIS
PORT=$(free_port)
taskset -c 0 redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK" --daemonize no >"$WORK/redis.log" 2>&1 &
RPID=$!; PIDS+=("$RPID")
wait_ping "$PORT" || { cat "$WORK/redis.log"; exit 1; }
for T in $TESTS; do for P in $PIPES; do
  REDIS[$T.$P]=$(load "$PORT" 1 "$T" "$P" 50)
done; done
stop "$RPID"

echo "cores: $CORES; Sluice write-back, journal $JOURNAL; redis-server: no persistence, pinned to core 0"
echo "| server threads | test | P | Sluice ops/s | redis-server ops/s | ratio |"
echo "|---|---|---|---|---|---|"
t=1
while [ $((t * 2)) -le "$CORES" ]; do
  PORT=$(free_port)
  # io_threads belongs in [server], before sluice_config's [journal]: written out here.
  printf '[server]\nport = %s\ndata_dir = "%s"\nio_threads = %s\n[journal]\ndurability = "%s"\n' \
    "$PORT" "$WORK/data-$t" "$t" "$JOURNAL" >"$WORK/sluice-$t.toml"
  taskset -c "0-$((t - 1))" target/release/sluice serve --config "$WORK/sluice-$t.toml" \
    >"$WORK/sluice-$t.log" 2>&1 &
  SPID=$!; PIDS+=("$SPID")
  wait_ping "$PORT" || { cat "$WORK/sluice-$t.log"; exit 1; }
  for T in $TESTS; do for P in $PIPES; do
    s=$(load "$PORT" "$t" "$T" "$P" $((50 * t)))
    r=${REDIS[$T.$P]}
    printf '| %s | %s | %s | %s | %s | %s |\n' "$t" "$T" "$P" "$s" "$r" \
      "$(awk -v a="$s" -v b="$r" 'BEGIN{printf "%.2fx", (b>0)?a/b:0}')"
  done; done
  stop "$SPID"
  t=$((t * 2))
done
echo "redis-server was loaded from cores 1..$((CORES - 1)); each Sluice row from the cores it did not use, so rows with more server threads have fewer generator cores."
