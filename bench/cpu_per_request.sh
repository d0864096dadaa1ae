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
# env:   TESTS (set,get,incr; keep set before get, or GET measures misses), P (pipeline, 16),
#        CLIENTS (50), DURABILITY (Sluice journal, none)
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
setup_work
start_redis redis --appendonly no
RPORT=$PORT RPID=$SERVER_PID
start_sluice sluice "$DURABILITY"
SPORT=$PORT SPID=$SERVER_PID

TICK=$(getconf CLK_TCK)
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; } # utime stime, in clock ticks

measure() { # pid port test -> "user_s_per_M sys_s_per_M rps"
  local u0 s0 u1 s1 rps
  read -r u0 s0 < <(ticks "$1")
  read -r rps _ < <(benchmark_csv "$2" "$CLIENTS" "$N" "$3" "$P")
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
