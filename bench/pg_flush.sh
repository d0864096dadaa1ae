#!/usr/bin/env bash
# Rows/s of Sluice's write-back flush into PostgreSQL, side by side with pgbench upserting the
# same table shape in batches of 500 rows, measured in the same run. Prints both and the ratio.
#
# usage: bench/pg_flush.sh [rows] [pgbench-seconds]
# env:   PG_URL (default postgres://postgres@127.0.0.1:5432/test)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${1:-200000}
SECS=${2:-10}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
for tool in psql pgbench redis-benchmark redis-cli; do
  command -v $tool >/dev/null || { echo "$tool missing (apt-get install postgresql-client redis-tools)"; exit 1; }
done
cargo build --release -q
extra_cleanup() { psql "$PG_URL" -qc "DROP TABLE IF EXISTS bench_flush_sluice, bench_flush_pgbench" >/dev/null 2>&1; }
setup_work

psql "$PG_URL" -qc "DROP TABLE IF EXISTS bench_flush_sluice, bench_flush_pgbench;
  CREATE TABLE bench_flush_sluice (id text PRIMARY KEY, v text);
  CREATE TABLE bench_flush_pgbench (id text PRIMARY KEY, v text);" >/dev/null

# pgbench: one client, each transaction upserts 500 rows (new and existing keys mixed).
# Two key shapes: 500 consecutive keys (they share a few index pages: the best case for the
# database) and 500 keys drawn at random from 100M, the shape of the Sluice fill below
# (redis-benchmark -r 100000000), which touches a different index page per row.
cat >"$WORK/upsert.sql" <<'SQL'
\set base random(0, 400000)
INSERT INTO bench_flush_pgbench (id, v)
  SELECT lpad((:base + g)::text, 12, '0'), 'xxx' FROM generate_series(1, 500) g
  ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
SQL
cat >"$WORK/upsert_random.sql" <<'SQL'
INSERT INTO bench_flush_pgbench (id, v)
  SELECT DISTINCT lpad((random() * 100000000)::bigint::text, 12, '0'), 'xxx'
  FROM generate_series(1, 500) g
  ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
SQL
pgbench_rows() { # script -> rows/s
  local tps
  tps=$(pgbench -n -c 1 -T "$SECS" -f "$1" "$PG_URL" 2>/dev/null | awk '/^tps/ {print $3; exit}')
  awk -v t="$tps" 'BEGIN{printf "%.0f", t*500}'
}
PG_ROWS=$(pgbench_rows "$WORK/upsert.sql")
PG_RANDOM_ROWS=$(pgbench_rows "$WORK/upsert_random.sql")

start_sluice sluice none '[store]
url = "'"$PG_URL"'"
[[keyspace]]
name = "bench"
keys = "key:{id}"
table = "bench_flush_sluice"
key_column = "id"
value_column = "v"
policy = "write-back"
flush_interval = "1h"
flush_batch = 500
max_dirty = 10000000'
# Fill the buffer with ROWS random keys, then time one SLUICE.FLUSH: batches of 500 rows per
# transaction. flush_interval is 1h, but a buffer holding flush_batch entries wakes the flusher,
# so part of the fill is already flushed in the background while redis-benchmark runs. The rate
# is therefore the rows stored (the rows_stored counter) between the start and the end of the
# timed SLUICE.FLUSH, which is the flush path alone: nothing else runs in that window.
redis-benchmark -p "$PORT" -c 50 -n "$ROWS" -r 100000000 -t set -P 16 -q >"$WORK/fill.log" 2>&1
if grep -qi error "$WORK/fill.log"; then echo "redis-benchmark got errors:"; cat "$WORK/fill.log"; exit 1; fi
ks_field() { redis-cli -p "$PORT" info sluice | awk -F'[=,]' -v f="$1" '/^keyspace_bench:/ {for(i=1;i<=NF;i++) if($i==f) print $(i+1)}'; }
BUFFERED=$(ks_field buffered)
STORED_BEFORE=$(ks_field rows_stored)
START=$(date +%s.%N)
[ "$(redis-cli -p "$PORT" sluice.flush)" = "OK" ] || { echo "SLUICE.FLUSH failed"; tail -20 "$WORK/sluice.log"; exit 1; }
END=$(date +%s.%N)
STORED_AFTER=$(ks_field rows_stored)
LEFT=$(ks_field buffered)
[ "$LEFT" = "0" ] || { echo "$LEFT entries still buffered after SLUICE.FLUSH"; exit 1; }
FLUSHED=$((STORED_AFTER - STORED_BEFORE))
TABLE_ROWS=$(psql "$PG_URL" -tAc "SELECT count(*) FROM bench_flush_sluice")
SL_ROWS=$(awk -v n="$FLUSHED" -v a="$START" -v b="$END" 'BEGIN{printf "%.0f", n/(b-a)}')
echo "filled $ROWS SETs; $BUFFERED still buffered after the fill; SLUICE.FLUSH stored $FLUSHED rows in $(awk -v a="$START" -v b="$END" 'BEGIN{printf "%.3f", b-a}') s; the table holds $TABLE_ROWS rows"
echo "| measure | rows/s |"
echo "|---|---|"
echo "| pgbench, 1 client, upsert batches of 500 consecutive keys | $PG_ROWS |"
echo "| pgbench, 1 client, upsert batches of 500 random keys (the fill's shape) | $PG_RANDOM_ROWS |"
echo "| Sluice write-back flush ($FLUSHED rows by one SLUICE.FLUSH, batches of 500 random keys) | $SL_ROWS |"
echo "| ratio Sluice / pgbench, random keys (same work) | $(awk -v a="$SL_ROWS" -v b="$PG_RANDOM_ROWS" 'BEGIN{printf "%.2f", a/b}') |"
echo "| ratio Sluice / pgbench, consecutive keys | $(awk -v a="$SL_ROWS" -v b="$PG_ROWS" 'BEGIN{printf "%.2f", a/b}') |"
