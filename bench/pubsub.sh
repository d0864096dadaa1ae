#!/usr/bin/env bash
# Side-by-side pub/sub: PUBLISH to 0, 1 and 10 subscribers (redis-cli processes draining
# their messages), and SET with keyspace notifications on (one subscriber to every event), on
# Sluice (journal none) and redis-server (no persistence) in the same run. Prints requests/s
# and the Sluice/Redis ratio. Not a test: the machines are shared and noisy.
#
# usage: bench/pubsub.sh [requests]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-200000}
CLIENTS=${CLIENTS:-50}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
cargo build --release -q
setup_work

start_redis plain --appendonly no; REDIS=$PORT
start_sluice none none; SLUICE=$PORT

# subscribe PORT COUNT ARGS...: COUNT redis-cli subscribers, each reading everything it gets.
subscribe() {
  local port=$1 count=$2 i
  for i in $(seq 1 "$count"); do
    redis-cli -p "$port" "${@:3}" >/dev/null 2>&1 &
    PIDS+=("$!")
  done
  sleep 0.5
}

stop_subscribers() { # PIDS beyond the two servers
  local p
  for p in "${PIDS[@]:2}"; do kill "$p" 2>/dev/null || true; done
  PIDS=("${PIDS[@]:0:2}")
  sleep 0.2
}

run() { # port pipeline command... -> "rps p99_ms"
  redis-benchmark -p "$1" -c "$CLIENTS" -n "$N" -P "$2" --csv "${@:3}" 2>/dev/null \
    | awk -F'"' 'NR==2 {print $4, $14}'
}

row() { # label pipeline command...
  local s r
  read -r s sp99 < <(run "$SLUICE" "$2" "${@:3}")
  read -r r rp99 < <(run "$REDIS" "$2" "${@:3}")
  printf '| %-36s | P%-2s | %12s | %12s | %5.2fx | %7s | %7s |\n' "$1" "$2" "$s" "$r" \
    "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$sp99" "$rp99"
}

echo "requests=$N clients=$CLIENTS"
echo
echo "| Sluice (journal none) vs Redis       | P   |     Sluice/s |      Redis/s | ratio | Sluice p99 ms | Redis p99 ms |"
echo "|--------------------------------------|-----|--------------|--------------|-------|---------|---------|"
for P in ${PIPELINES:-1 16}; do
  for subs in 0 1 10; do
    for port in "$SLUICE" "$REDIS"; do subscribe "$port" "$subs" SUBSCRIBE bench:chan; done
    row "PUBLISH to $subs subscribers" "$P" PUBLISH bench:chan hello
    stop_subscribers
  done
  for port in "$SLUICE" "$REDIS"; do redis-cli -p "$port" CONFIG SET notify-keyspace-events "" >/dev/null; done
  row "SET, notifications off" "$P" SET bench:key value
  for port in "$SLUICE" "$REDIS"; do
    redis-cli -p "$port" CONFIG SET notify-keyspace-events KEA >/dev/null
    subscribe "$port" 1 PSUBSCRIBE '__key*__:*'
  done
  row "SET, notifications KEA, 1 listener" "$P" SET bench:key value
  stop_subscribers
  for port in "$SLUICE" "$REDIS"; do redis-cli -p "$port" CONFIG SET notify-keyspace-events "" >/dev/null; done
done
