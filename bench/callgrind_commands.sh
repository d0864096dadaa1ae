#!/usr/bin/env bash
# Instructions per request under callgrind for arbitrary commands (bench/callgrind.sh takes
# redis-benchmark's built-in tests only): Sluice (write-back, journal none) against
# redis-server, with the same redis-benchmark load (50 clients, -r 10000). Each command runs
# once unmeasured (warm-up: keys created, scripts compiled), then is measured from
# callgrind_control -z to -d; commands run in the order given, on one server, so a command
# can read what an earlier one wrote.
#
# usage: bench/callgrind_commands.sh [requests] [pipelines] [LABEL=COMMAND ...]
#   defaults: 100000 "1 16" and the hash and script commands of issue 13 (below).
# In a COMMAND, __SHA__ is the SHA1 of $SCRIPT (default: an INCR of KEYS[1]), loaded with
# SCRIPT LOAD first; __rand_int__ is redis-benchmark's. CALLGRIND_KEEP=DIR keeps each measured
# run's profile as DIR/NAME.LABEL.PIPELINE.cg.out, for callgrind_annotate --inclusive=yes.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-100000}
PIPES=${2:-1 16}
shift $(($# < 2 ? $# : 2))
if [ $# -gt 0 ]; then COMMANDS=("$@"); else
  COMMANDS=(
    "hset=HSET h:__rand_int__ f __rand_int__"
    "hgetall=HGETALL h:__rand_int__"
    "evalsha=EVALSHA __SHA__ 1 k:__rand_int__"
  )
fi
SCRIPT=${SCRIPT:-"return redis.call('INCR', KEYS[1])"}
for tool in valgrind callgrind_control callgrind_annotate redis-benchmark redis-server redis-cli; do
  command -v $tool >/dev/null || { echo "$tool missing: apt-get install valgrind redis-tools redis-server"; exit 1; }
done
cargo build --release -q -p sluice-server
setup_work

measure() { # name, port, label, command, pipeline -> Ir per request
  local out="$WORK/$1.$3.$5" sha cmd
  sha=$(redis-cli -p "$2" script load "$SCRIPT")
  cmd=${4//__SHA__/$sha}
  # shellcheck disable=SC2086 # the command is split into its words on purpose
  redis-benchmark -p "$2" -c 50 -n 20000 -r 10000 -P "$5" -q $cmd >/dev/null 2>&1
  callgrind_control -z "$VPID" >/dev/null
  # shellcheck disable=SC2086
  redis-benchmark -p "$2" -c 50 -n "$N" -r 10000 -P "$5" -q $cmd >/dev/null 2>&1
  rm -f "$WORK"/cg.out.*
  callgrind_control -d "$VPID" >/dev/null
  sleep 1
  local ir=0 f
  for f in "$WORK"/cg.out.*; do
    [ -s "$f" ] || continue
    ir=$((ir + $(callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')))
    if [ -n "${CALLGRIND_KEEP:-}" ]; then mkdir -p "$CALLGRIND_KEEP"; cp "$f" "$CALLGRIND_KEEP/$1.$3.$5.cg.out"; fi
  done
  echo $((ir / N))
}

run_server() { # port, command...
  local port=$1; shift
  valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.out.%p" "$@" >"$WORK/server.log" 2>&1 &
  VPID=$!
  PIDS+=("$VPID")
  for _ in $(seq 1 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "server did not start"; cat "$WORK/server.log"; exit 1
}

measure_all() { # name, port
  local entry P
  for entry in "${COMMANDS[@]}"; do for P in $PIPES; do
    RESULT[$1.${entry%%=*}.$P]=$(measure "$1" "$2" "${entry%%=*}" "${entry#*=}" "$P")
  done; done
}

declare -A RESULT
SPORT=$(free_port)
sluice_config "$SPORT" "$WORK/data" none >"$WORK/sluice.toml"
run_server "$SPORT" target/release/sluice serve --config "$WORK/sluice.toml"
measure_all sluice "$SPORT"
kill "$VPID"; wait "$VPID" 2>/dev/null || true
RPORT=$(free_port)
run_server "$RPORT" redis-server --port "$RPORT" --save "" --appendonly no --dir "$WORK"
measure_all redis "$RPORT"
kill "$VPID"; wait "$VPID" 2>/dev/null || true
echo "| command | P | Sluice Ir/request | redis-server Ir/request | ratio (Sluice/Redis) |"
echo "|---|---|---|---|---|"
for entry in "${COMMANDS[@]}"; do for P in $PIPES; do
  L=${entry%%=*}; s=${RESULT[sluice.$L.$P]}; r=${RESULT[redis.$L.$P]}
  echo "| $L | $P | $s | $r | $(awk -v a="$s" -v b="$r" 'BEGIN{printf "%.2f", a/b}') |"
done; done
