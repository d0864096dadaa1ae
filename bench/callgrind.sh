#!/usr/bin/env bash
# Instructions per request under callgrind, for Sluice (write-back, journal none) and for
# redis-server, with the same redis-benchmark load. Instruction counts stay stable on a noisy
# shared machine, unlike requests/s. Counts cover the server process only, from after a
# warm-up to the end of the measured run (callgrind_control -z, then -d).
#
# usage: bench/callgrind.sh [requests] [tests] [pipelines]
#   defaults: 200000 "get set incr" "1 16"
# CALLGRIND_KEEP=DIR keeps each measured run's profile as DIR/NAME.TEST.PIPELINE.cg.out, for
# callgrind_annotate --inclusive=yes.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-200000}
TESTS=${2:-get set incr}
PIPES=${3:-1 16}
for tool in valgrind callgrind_control callgrind_annotate redis-benchmark redis-server redis-cli; do
  command -v $tool >/dev/null || { echo "$tool missing: apt-get install valgrind redis-tools redis-server"; exit 1; }
done
cargo build --release -q -p sluice-server
setup_work

measure() { # name, port, test, pipeline -> Ir per request
  local out="$WORK/$1.$3.$4"
  # SET first, so GET measures hits, as redis-benchmark's key is created by its SET test.
  redis-benchmark -p "$2" -c 50 -n 20000 -t set -P "$4" -q >/dev/null 2>&1
  redis-benchmark -p "$2" -c 50 -n 20000 -t "$3" -P "$4" -q >/dev/null 2>&1
  callgrind_control -z "$VPID" >/dev/null
  redis-benchmark -p "$2" -c 50 -n "$N" -t "$3" -P "$4" -q >/dev/null 2>&1
  rm -f "$WORK"/cg.out.*
  callgrind_control -d "$VPID" >/dev/null
  sleep 1
  local ir=0 f
  for f in "$WORK"/cg.out.*; do
    [ -s "$f" ] || continue
    ir=$((ir + $(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')))
    if [ -n "${CALLGRIND_KEEP:-}" ]; then mkdir -p "$CALLGRIND_KEEP"; cp "$f" "$CALLGRIND_KEEP/$1.$3.$4.cg.out"; fi
  done
  echo $((ir / N))
}

run_server() { # name, command...
  local port=$1; shift
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" "$@" >"$WORK/server.log" 2>&1 &
  VPID=$!
  PIDS+=("$VPID")
  for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}

declare -A RESULT
SPORT=$(free_port)
sluice_config "$SPORT" "$WORK/data" none >"$WORK/sluice.toml"
run_server "$SPORT" target/release/sluice serve --config "$WORK/sluice.toml"
for T in $TESTS; do for P in $PIPES; do RESULT[sluice.$T.$P]=$(measure sluice "$SPORT" "$T" "$P"); done; done
kill "$VPID"; wait "$VPID" 2>/dev/null || true
if [ -n "${SLUICE_ONLY:-}" ]; then
  for T in $TESTS; do for P in $PIPES; do echo "| $T | $P | ${RESULT[sluice.$T.$P]} |"; done; done
  exit 0
fi
RPORT=$(free_port)
run_server "$RPORT" redis-server --port "$RPORT" --save "" --appendonly no --dir "$WORK"
for T in $TESTS; do for P in $PIPES; do RESULT[redis.$T.$P]=$(measure redis "$RPORT" "$T" "$P"); done; done
kill "$VPID"; wait "$VPID" 2>/dev/null || true
echo "| test | P | Sluice Ir/request | redis-server Ir/request | ratio (Sluice/Redis) |"
echo "|---|---|---|---|---|"
for T in $TESTS; do for P in $PIPES; do
  s=${RESULT[sluice.$T.$P]}; r=${RESULT[redis.$T.$P]}
  echo "| $T | $P | $s | $r | $(awk -v a="$s" -v b="$r" 'BEGIN{printf "%.2f", a/b}') |"
done; done
