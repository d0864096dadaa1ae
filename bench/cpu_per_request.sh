#!/usr/bin/env bash
# Server CPU time per million requests, Sluice (write-back, journal none) against redis-server
# (no persistence), measured side by side in one run: user and system seconds the server
# process spent (from /proc/PID/stat) while redis-benchmark sent its requests. Steadier than
# requests/s on a shared machine, and unlike instruction counts it shows what atomic operations
# and cache misses cost. Not a test: it reports, it does not gate.
#
# usage: bench/cpu_per_request.sh [requests] [rounds]
#   requests  per test and server (default 2000000)
#   rounds    alternating repetitions (default 3)
# env:   TESTS (set,get,incr), P (pipeline, 16), CLIENTS (50), DURABILITY (Sluice journal, none)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-2000000}
ROUNDS=${2:-3}
TESTS=${TESTS:-set,get,incr}
P=${P:-16}
CLIENTS=${CLIENTS:-50}
DURABILITY=${DURABILITY:-none}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
cargo build --release -q
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

RPORT=$(free_port)
redis-server --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no >"$WORK/redis.log" 2>&1 &
RPID=$!
PIDS+=("$RPID")
wait_ping "$RPORT" || { echo "redis-server did not start:" >&2; cat "$WORK/redis.log" >&2; exit 1; }

SPORT=$(free_port)
cat >"$WORK/sluice.toml" <<TOML
[server]
port = $SPORT
data_dir = "$WORK/data"
[journal]
durability = "$DURABILITY"
TOML
target/release/sluice serve --config "$WORK/sluice.toml" >"$WORK/sluice.log" 2>&1 &
SPID=$!
PIDS+=("$SPID")
wait_ping "$SPORT" || { echo "sluice did not start:" >&2; cat "$WORK/sluice.log" >&2; exit 1; }

TICK=$(getconf CLK_TCK)
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; } # utime stime, in clock ticks

measure() { # pid port test -> "user_s_per_M sys_s_per_M rps"
  local u0 s0 u1 s1 rps
  read -r u0 s0 < <(ticks "$1")
  rps=$(redis-benchmark -p "$2" -c "$CLIENTS" -n "$N" -t "$3" -P "$P" --csv 2>/dev/null \
    | awk -F'"' 'NR==2 {print $4}')
  read -r u1 s1 < <(ticks "$1")
  awk -v u="$((u1 - u0))" -v s="$((s1 - s0))" -v t="$TICK" -v n="$N" -v r="$rps" \
    'BEGIN {printf "%.3f %.3f %.0f\n", u/t*1e6/n, s/t*1e6/n, r}'
}

echo "requests=$N per test, P$P, $CLIENTS clients, Sluice journal $DURABILITY; CPU seconds per million requests"
echo
echo "| test | round | Sluice user | Sluice sys | Redis user | Redis sys | Sluice/s | Redis/s |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
  for t in ${TESTS//,/ }; do
    read -r su ss srps < <(measure "$SPID" "$SPORT" "$t")
    read -r ru rs rrps < <(measure "$RPID" "$RPORT" "$t")
    echo "| $t | $r | $su | $ss | $ru | $rs | $srps | $rrps |"
  done
done
