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
extra_cleanup() { psql "$PG_URL" -qc "DROP TABLE IF EXISTS $TABLE" >/dev/null 2>&1; }
setup_work
psql "$PG_URL" -qc "DROP TABLE IF EXISTS $TABLE; CREATE TABLE $TABLE (id bigint PRIMARY KEY, price numeric(10,2), name text);
  INSERT INTO $TABLE (id, price) SELECT g, 1 FROM generate_series(1, 10000) g;" >/dev/null
KEYSPACE='[store]
url = "'"$PG_URL"'"
[[keyspace]]
name = "price"
keys = "product:{id}:price"
table = "'"$TABLE"'"
key_column = "id"
value_column = "price"
policy = "write-through"
ttl = "1h"'
# The journal is the default (fsync): it matters only to the write-back ceiling.
start_sluice sluice fsync "$KEYSPACE"
PORT_WT=$PORT
start_sluice sluice-wb fsync "${KEYSPACE/write-through/write-back}"
PORT_WB=$PORT
COMMIT=$($EX commit "$PG_URL" "$REDIS_URL" 1 "$SECS" "$TABLE")
SEED=$($EX seed "$PG_URL" "$REDIS_URL" "$CLIENTS" "$SECS" "$TABLE")
SLUICE=$($EX sluice "$PG_URL" "redis://127.0.0.1:$PORT_WT" "$CLIENTS" "$SECS" "$TABLE")
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
