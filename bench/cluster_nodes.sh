#!/usr/bin/env bash
# Three Sluice nodes sharing PostgreSQL and an R3 JetStream stream on three nats-servers,
# side by side in one run with one node on the local segment journal (the embedded default,
# SQLite), one node alone on the same R3 stream, and redis-server `appendfsync always`:
#   1. write-back SET/s and p99 with the same 51 clients in total (17 per node when there are
#      three, each node its own keys, as a client hashing keys to nodes would send them);
#   2. the flush: the three nodes' buffered keys (nothing is flushed during the SETs: a flush
#      interval of an hour) stored into PostgreSQL at once by SLUICE.FLUSH on every node, in
#      rows/s, next to pgbench upserting batches of 500 random keys with 3 clients.
# Everything runs on this machine, so three nodes and three nats-servers share its cores with
# the load generator. Not a test: the machines are shared and noisy.
#
# usage: bench/cluster_nodes.sh [requests] [keyspace-size] [pgbench-seconds]
#   requests       per redis-benchmark run (default 100000)
#   keyspace-size  keys per node, redis-benchmark -r (default 100000)
# env:   PG_URL (default postgres://postgres@127.0.0.1:5432/test): the server; the run makes a
#        database of its own there and drops it at the end
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-100000}
R=${2:-100000}
SECS=${3:-10}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS" ] || { echo "nats-server missing: apt-get install nats-server"; exit 1; }
require_redis_tools
for tool in psql pgbench; do
  command -v $tool >/dev/null || { echo "$tool missing (apt-get install postgresql-client)"; exit 1; }
done
cargo build --release -q
setup_work
own_postgres_database "$PG_URL"

start_nats_cluster nats

KEYSPACE=$'[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-back"\nflush_interval = "1h"\nflush_batch = 100000000\nmax_dirty = 100000000'
node_toml() { # NODE FIRST-SERVER STREAM (one stream per database: `sluice_journal`)
  local urls="" k
  for k in 0 1 2; do urls="${urls:+$urls, }\"nats://127.0.0.1:${C[$(( ($2 + k) % 3 ))]}\""; done
  printf '[store]\nurl = "%s"\n[cluster]\nnode_name = "%s"\nnats_urls = [%s]\nreplicas = 3\njournal_stream = "%s"\njournal_subject = "bench.%s"\nrelay_pubsub = false\n%s\n' \
    "$PG_URL" "$1" "$urls" "$3" "$3" "$KEYSPACE"
}

start_redis always --appendonly yes --appendfsync always; REDIS_ALWAYS=$PORT
start_sluice wal fsync "$KEYSPACE"; S_WAL=$PORT
start_sluice alone fsync "$(node_toml alone 0 BENCH_NODES)"; S_ALONE=$PORT
NODES=()
for i in 0 1 2; do
  start_sluice "n$i" fsync "$(node_toml "n$i" "$i" BENCH_NODES)"; NODES+=("$PORT")
done

# run PORT CLIENTS PIPELINE PREFIX: "requests_per_second p99_ms" of one redis-benchmark.
run() {
  redis-benchmark -p "$1" -c "$2" -n "$N" -r "$R" -P "$3" --csv SET "$4:__rand_int__" xxx 2>/dev/null \
    | awk -F'"' 'NR==2 {print $4, $14}'
}
# three P: the three nodes loaded at once, 17 clients each: summed SET/s and the worst p99.
three() {
  local i
  for i in 0 1 2; do run "${NODES[$i]}" 17 "$1" "n$i" >"$WORK/three.$i" & done
  wait
  cat "$WORK"/three.? | awk '{s += $1; if ($2 > p) p = $2} END {printf "%.0f %s\n", s, p}'
}

echo "SET, write-back, requests=$N per run (three runs at once for three nodes), keys per node=$R, 51 clients"
echo
echo "| setup | P | SET/s | Redis always/s | ratio | p99 ms | Redis p99 ms |"
echo "|---|---|---|---|---|---|---|"
for P in 1 16; do
  for label in "1 node, local WAL fsync" "1 node, JetStream R3" "3 nodes, JetStream R3"; do
    case "$label" in
      *local*) read -r s sp99 < <(run "$S_WAL" 51 "$P" wal) ;;
      "1 node"*) read -r s sp99 < <(run "$S_ALONE" 51 "$P" alone) ;;
      *) read -r s sp99 < <(three "$P") ;;
    esac
    read -r r rp99 < <(run "$REDIS_ALWAYS" 51 "$P" redis)
    printf '| %s | %s | %s | %s | %.2fx | %s | %s |\n' "$label" "$P" "$s" "$r" \
      "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$sp99" "$rp99"
  done
done

# The flush: every node's buffer stored at once.
BUFFERED=0
for p in "${NODES[@]}"; do
  b=$(redis-cli -p "$p" info sluice | awk -F'[=,]' '/^keyspace_default:/ {for(i=1;i<=NF;i++) if($i=="buffered") print $(i+1)}')
  BUFFERED=$((BUFFERED + ${b:-0}))
done
START=$(date +%s.%N)
FLUSHES=()
for p in "${NODES[@]}"; do redis-cli -p "$p" sluice.flush >"$WORK/flush.$p" & FLUSHES+=("$!"); done
wait "${FLUSHES[@]}" # not a bare wait: the servers are this shell's children too
END=$(date +%s.%N)
for p in "${NODES[@]}"; do grep -q OK "$WORK/flush.$p" || { echo "SLUICE.FLUSH on $p: $(cat "$WORK/flush.$p")"; exit 1; }; done
STORED=$(psql "$PG_URL" -tAc "SELECT count(*) FROM sluice_kv WHERE key LIKE 'n_:%'::bytea")
FLUSH_ROWS=$(awk -v n="$BUFFERED" -v a="$START" -v b="$END" 'BEGIN{printf "%.0f", n/(b-a)}')

psql "$PG_URL" -qc "CREATE TABLE bench_pgbench (id text PRIMARY KEY, v bytea)" >/dev/null
cat >"$WORK/upsert_random.sql" <<'SQL'
INSERT INTO bench_pgbench (id, v)
  SELECT DISTINCT 'k' || (random() * 100000000)::bigint::text, 'xxx'::bytea
  FROM generate_series(1, 500) g
  ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;
SQL
TPS=$(pgbench -n -c 3 -T "$SECS" -f "$WORK/upsert_random.sql" "$PG_URL" 2>/dev/null | awk '/^tps/ {print $3; exit}')
PG_ROWS=$(awk -v t="$TPS" 'BEGIN{printf "%.0f", t*500}')

echo
echo "| flush into PostgreSQL | rows | rows/s |"
echo "|---|---|---|"
echo "| 3 nodes' buffers, SLUICE.FLUSH on each at once | $BUFFERED ($STORED keys in sluice_kv) | $FLUSH_ROWS |"
echo "| pgbench, 3 clients, upsert batches of 500 random keys | | $PG_ROWS |"
echo "| ratio | | $(awk -v a="$FLUSH_ROWS" -v b="$PG_ROWS" 'BEGIN{printf "%.2f", (b>0)?a/b:0}') |"
echo
for p in "${NODES[@]}"; do
  redis-cli -p "$p" info sluice | grep -E '^(cluster_node|journal_appends|journal_fsyncs|journal_writes_per_fsync):' | tr '\r\n' '  '
  echo
done
