#!/usr/bin/env bash
# Write amplification under write-back: 1M INCR spread over 1k keys, counting the row writes
# the database receives (INFO sluice rows_stored).
#
# usage: bench/write_amplification.sh [incrs] [keys]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-1000000}
K=${2:-1000}
cargo build --release -q
setup_work
start_sluice sluice fsync
START=$(date +%s.%N)
redis-benchmark -p "$PORT" -c 50 -n "$N" -r "$K" -t incr -P 16 -q >/dev/null 2>&1
redis-cli -p "$PORT" sluice.flush >/dev/null
END=$(date +%s.%N)
ROWS=$(redis-cli -p "$PORT" info sluice | awk -F'[=,]' '/^keyspace_default:/ {for(i=1;i<=NF;i++) if($i=="rows_stored") print $(i+1)}')
echo "| INCRs | keys | row writes | row writes per INCR | seconds |"
echo "|---|---|---|---|---|"
echo "| $N | $K | $ROWS | $(awk -v r="$ROWS" -v n="$N" 'BEGIN{printf "%.5f", r/n}') | $(awk -v a="$START" -v b="$END" 'BEGIN{printf "%.1f", b-a}') |"
