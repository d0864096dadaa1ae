#!/usr/bin/env bash
# How fast a surviving node stores a dead node's journal ([cluster] adopt_orphans), in rows/s
# into PostgreSQL, side by side with pgbench upserting the same table shape in batches of 500
# random keys in the same run. Node n1 takes ROWS random write-back SETs into its JetStream
# journal (one local nats-server, an R1 stream) and never flushes; it is SIGKILLed, node n2
# starts, finds n1's journal orphaned once n1's claim runs out (node_lease 2s), and takes it
# over: claims the name, reads the stream back, replays it, flushes it (batches of 500),
# checkpoints and releases the name. The takeover's time is read from n2's log, from "taking
# it over" to "stored and purged". Not a test: the machines are shared and noisy.
#
# usage: bench/cluster_takeover.sh [rows] [pgbench-seconds]
# env:   PG_URL (default postgres://postgres@127.0.0.1:5432/test): the server; the run makes a
#        database of its own there and drops it at the end
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
ROWS=${1:-200000}
SECS=${2:-10}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS" ] || { echo "nats-server missing: apt-get install nats-server"; exit 1; }
for tool in psql pgbench redis-benchmark redis-cli; do
  command -v $tool >/dev/null || { echo "$tool missing (apt-get install postgresql-client redis-tools)"; exit 1; }
done
cargo build --release -q
setup_work
own_postgres_database "$PG_URL"

psql "$PG_URL" -qc "DROP TABLE IF EXISTS bench_takeover_sluice, bench_takeover_pgbench;
  CREATE TABLE bench_takeover_sluice (id text PRIMARY KEY, v text);
  CREATE TABLE bench_takeover_pgbench (id text PRIMARY KEY, v text);" >/dev/null
cat >"$WORK/upsert_random.sql" <<'SQL'
INSERT INTO bench_takeover_pgbench (id, v)
  SELECT DISTINCT lpad((random() * 100000000)::bigint::text, 12, '0'), 'xxx'
  FROM generate_series(1, 500) g
  ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
SQL
TPS=$(pgbench -n -c 1 -T "$SECS" -f "$WORK/upsert_random.sql" "$PG_URL" 2>/dev/null | awk '/^tps/ {print $3; exit}')
PG_ROWS=$(awk -v t="$TPS" 'BEGIN{printf "%.0f", t*500}')

NATS_PORT=$(free_port)
start_nats nats "$NATS_PORT"
sleep 1

node_toml() { # node flush_batch
  printf '[store]\nurl = "%s"\n[cluster]\nnode_name = "%s"\nnats_urls = ["nats://127.0.0.1:%s"]\njournal_stream = "BENCH_TAKEOVER"\njournal_subject = "bench.takeover"\nnode_lease = "2s"\n' \
    "$PG_URL" "$1" "$NATS_PORT"
  printf '[[keyspace]]\nname = "bench"\nkeys = "key:{id}"\ntable = "bench_takeover_sluice"\nkey_column = "id"\nvalue_column = "v"\npolicy = "write-back"\nflush_interval = "1h"\nflush_batch = %s\nmax_dirty = 100000000\n' "$2"
}

# n1: never flushes (an hour's interval, a batch larger than the fill).
start_sluice n1 fsync "$(node_toml n1 100000000)"
N1_PID=$SERVER_PID
redis-benchmark -p "$PORT" -c 50 -n "$ROWS" -r 100000000 -t set -P 16 -q >"$WORK/fill.log" 2>&1
if grep -qi error "$WORK/fill.log"; then echo "redis-benchmark got errors:"; cat "$WORK/fill.log"; exit 1; fi
BUFFERED=$(redis-cli -p "$PORT" info sluice | awk -F'[=,]' '/^keyspace_bench:/ {for(i=1;i<=NF;i++) if($i=="buffered") print $(i+1)}')
kill -9 "$N1_PID"

start_sluice n2 fsync "$(node_toml n2 500)"
for _ in $(seq 1 600); do
  grep -q "stored and purged" "$WORK/n2.log" && break
  sleep 0.1
done
grep -q "stored and purged" "$WORK/n2.log" || { echo "n2 did not take n1's journal over within 60 s:"; tail -30 "$WORK/n2.log"; exit 1; }
TABLE_ROWS=$(psql "$PG_URL" -tAc "SELECT count(*) FROM bench_takeover_sluice")
read -r TAKEOVER READ_BACK RECORDS < <(python3 - "$WORK/n2.log" <<'PY'
import re, sys
from datetime import datetime
stamp = lambda line: datetime.strptime(line[:26], "%Y-%m-%dT%H:%M:%S.%f")
start = opened = end = None
records = "?"
for line in open(sys.argv[1], errors="replace"):
    line = re.sub(r"\x1b\[[0-9;]*m", "", line)
    if "taking it over" in line and start is None:
        start = stamp(line)
    elif "JetStream journal opened" in line and ".n1." in line and start:
        opened = stamp(line)
    elif "stored and purged" in line and start:
        end = stamp(line)
        m = re.search(r"records=(\d+)", line)
        records = m.group(1) if m else "?"
print(f"{(end - start).total_seconds():.3f} {(opened - start).total_seconds():.3f} {records}")
PY
)
SL_ROWS=$(awk -v n="$TABLE_ROWS" -v t="$TAKEOVER" 'BEGIN{printf "%.0f", n/t}')
echo "n1 took $ROWS SETs ($BUFFERED distinct keys buffered) and was SIGKILLed; n2 took over its $RECORDS records in $TAKEOVER s (claim + stream read back in $READ_BACK s); the table holds $TABLE_ROWS rows"
echo "| measure | rows/s |"
echo "|---|---|"
echo "| pgbench, 1 client, upsert batches of 500 random keys | $PG_ROWS |"
echo "| Sluice takeover of a dead node's journal (claim, read back, replay, flush in batches of 500) | $SL_ROWS |"
echo "| ratio Sluice / pgbench | $(awk -v a="$SL_ROWS" -v b="$PG_ROWS" 'BEGIN{printf "%.2f", a/b}') |"
