#!/usr/bin/env bash
# Write amplification under write-back: 1M INCR spread over 1k keys, counting the row writes
# the database receives (INFO sluice rows_stored).
#
# usage: bench/write_amplification.sh [incrs] [keys]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
K=${2:-1000}
cargo build --release -q
WORK=$(mktemp -d)
PID=""
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
target/release/sluice serve --port "$PORT" --data-dir "$WORK/data" >"$WORK/sluice.log" 2>&1 &
PID=$!
for _ in $(seq 1 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
START=$(date +%s.%N)
redis-benchmark -p "$PORT" -c 50 -n "$N" -r "$K" -t incr -P 16 -q >/dev/null 2>&1
redis-cli -p "$PORT" sluice.flush >/dev/null
END=$(date +%s.%N)
ROWS=$(redis-cli -p "$PORT" info sluice | awk -F'[=,]' '/^keyspace_default:/ {for(i=1;i<=NF;i++) if($i=="rows_stored") print $(i+1)}')
echo "| INCRs | keys | row writes | row writes per INCR | seconds |"
echo "|---|---|---|---|---|"
echo "| $N | $K | $ROWS | $(awk -v r="$ROWS" -v n="$N" 'BEGIN{printf "%.5f", r/n}') | $(awk -v a="$START" -v b="$END" 'BEGIN{printf "%.1f", b-a}') |"
