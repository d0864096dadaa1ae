#!/usr/bin/env bash
# Sluice write-through against the seed's own application pattern (upsert into PostgreSQL,
# then SET into Redis, per request), with the same number of clients, in the same run.
# Also measures one database commit (1 client) for the p50 target, and the same harness against
# a write-back keyspace on the same table: the ceiling of client + RESP with no database
# commit in the write path, which bounds what any write-through ratio can reach here.
#
# usage: bench/seed_pattern.sh [clients] [seconds]
# env:   PG_URL (postgres://postgres@127.0.0.1:5432/test), REDIS_URL (redis://127.0.0.1:6379)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
CLIENTS=${1:-50}
SECS=${2:-10}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
REDIS_URL=${REDIS_URL:-redis://127.0.0.1:6379}
TABLE=bench_seed_products
cargo build --release -q
cargo build --release -q -p sluice-server --example seed_pattern
EX=target/release/examples/seed_pattern
WORK=$(mktemp -d)
PID=""
PID_WB=""
cleanup() { for p in $PID $PID_WB; do kill "$p" 2>/dev/null; done; psql "$PG_URL" -qc "DROP TABLE IF EXISTS $TABLE" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT
psql "$PG_URL" -qc "DROP TABLE IF EXISTS $TABLE; CREATE TABLE $TABLE (id bigint PRIMARY KEY, price numeric(10,2), name text);
  INSERT INTO $TABLE (id, price) SELECT g, 1 FROM generate_series(1, 10000) g;" >/dev/null
PORT=$(free_port)
cat >"$WORK/sluice.toml" <<TOML
[server]
port = $PORT
data_dir = "$WORK/data"
[store]
url = "$PG_URL"
[[keyspace]]
name = "price"
keys = "product:{id}:price"
table = "$TABLE"
key_column = "id"
value_column = "price"
policy = "write-through"
ttl = "1h"
TOML
target/release/sluice serve --config "$WORK/sluice.toml" >"$WORK/sluice.log" 2>&1 &
PID=$!
wait_ping "$PORT" || { echo "sluice did not start:" >&2; cat "$WORK/sluice.log" >&2; exit 1; }
PORT_WB=$(free_port)
sed -e "s/^port = .*/port = $PORT_WB/" -e "s|/data\"|/data-wb\"|" -e 's/"write-through"/"write-back"/' \
  "$WORK/sluice.toml" >"$WORK/sluice-wb.toml"
target/release/sluice serve --config "$WORK/sluice-wb.toml" >"$WORK/sluice-wb.log" 2>&1 &
PID_WB=$!
wait_ping "$PORT_WB" || { echo "sluice (write-back) did not start:" >&2; cat "$WORK/sluice-wb.log" >&2; exit 1; }
COMMIT=$($EX commit "$PG_URL" "$REDIS_URL" 1 "$SECS" "$TABLE")
SEED=$($EX seed "$PG_URL" "$REDIS_URL" "$CLIENTS" "$SECS" "$TABLE")
SLUICE=$($EX sluice "$PG_URL" "redis://127.0.0.1:$PORT" "$CLIENTS" "$SECS" "$TABLE")
CEILING=$($EX sluice "$PG_URL" "redis://127.0.0.1:$PORT_WB" "$CLIENTS" "$SECS" "$TABLE")
echo "$COMMIT"; echo "$SEED"; echo "$SLUICE"; echo "ceiling (write-back) $CEILING"
get() { echo "$1" | tr ' ' '\n' | awk -F= -v k="$2" '$1==k {print $2}'; }
echo
echo "| measure | value |"
echo "|---|---|"
echo "| seed pattern ops/s ($CLIENTS clients) | $(get "$SEED" ops_per_sec) |"
echo "| Sluice write-through ops/s ($CLIENTS clients) | $(get "$SLUICE" ops_per_sec) |"
echo "| ratio | $(awk -v a="$(get "$SLUICE" ops_per_sec)" -v b="$(get "$SEED" ops_per_sec)" 'BEGIN{printf "%.2f", a/b}') |"
echo "| one commit p50 (ms) | $(get "$COMMIT" p50_ms) |"
echo "| Sluice write-through p50 (ms) | $(get "$SLUICE" p50_ms) |"
echo "| p50 ratio to one commit | $(awk -v a="$(get "$SLUICE" p50_ms)" -v b="$(get "$COMMIT" p50_ms)" 'BEGIN{printf "%.2f", a/b}') |"
echo "| ceiling: same harness, write-back keyspace, ops/s | $(get "$CEILING" ops_per_sec) |"
echo "| ceiling / seed pattern | $(awk -v a="$(get "$CEILING" ops_per_sec)" -v b="$(get "$SEED" ops_per_sec)" 'BEGIN{printf "%.2f", a/b}') |"
