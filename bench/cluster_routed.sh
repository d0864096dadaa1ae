#!/usr/bin/env bash
# Three Sluice nodes routing keys by hash slot (`[cluster] nodes`, as Redis Cluster), sharing
# PostgreSQL and an R3 JetStream stream on three nats-servers, driven by redis-benchmark's own
# cluster mode (`--cluster`: it reads CLUSTER NODES and sends each key to the node serving its
# slot), side by side in one run with:
#   - the same three nodes' keys sent the same way but without routing (three unrouted nodes on a
#     stream of their own, each given a third of the clients and its own keys, as
#     bench/cluster_nodes.sh runs them): what the routing check costs;
#   - redis-server `appendfsync always`, one process, the same 51 clients.
# SET under write-back and GET of those keys, P1 and P16. Everything runs on this machine, so
# the nodes, the nats-servers and the load generator share its cores. Not a test: the
# machines are shared and noisy.
#
# usage: bench/cluster_routed.sh [requests] [keyspace-size]
# env:   PG_URL (default postgres://postgres@127.0.0.1:5432/test): the server; the run makes two
#        databases of its own there (a routed cluster's node list is part of the database's
#        journal mark) and drops them at the end
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-100000}
R=${2:-100000}
PG_URL=${PG_URL:-postgres://postgres@127.0.0.1:5432/test}
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS" ] || { echo "nats-server missing: apt-get install nats-server"; exit 1; }
require_redis_tools
command -v psql >/dev/null || { echo "psql missing (apt-get install postgresql-client)"; exit 1; }
cargo build --release -q
setup_work
ADMIN_URL=$PG_URL
own_postgres_database "$ADMIN_URL"
ROUTED_DB=$PG_URL
UNROUTED_DB="${ADMIN_URL%/*}/sluice_bench_unrouted_$$"
psql "$ADMIN_URL" -qc "CREATE DATABASE sluice_bench_unrouted_$$" >/dev/null
extra_cleanup() { psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS sluice_bench_unrouted_$$ WITH (FORCE)" >/dev/null 2>&1; }

start_nats_cluster nats

KEYSPACE=$'[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-back"\nflush_interval = "1h"\nflush_batch = 100000000\nmax_dirty = 100000000'
node_toml() { # NODE FIRST-SERVER STREAM DATABASE [NODES-LINE]
  local urls="" k
  for k in 0 1 2; do urls="${urls:+$urls, }\"nats://127.0.0.1:${C[$(( ($2 + k) % 3 ))]}\""; done
  printf '[store]\nurl = "%s"\n[cluster]\nnode_name = "%s"\nnats_urls = [%s]\nreplicas = 3\njournal_stream = "%s"\njournal_subject = "bench.%s"\nrelay_pubsub = false\nadopt_orphans = false\n%s\n%s\n' \
    "$4" "$1" "$urls" "$3" "$3" "${5:-}" "$KEYSPACE"
}

start_redis always --appendonly yes --appendfsync always; REDIS_ALWAYS=$PORT
ROUTED_PORTS=("$(free_port)" "$(free_port)" "$(free_port)")
NODE_LIST="nodes = [\"r0=127.0.0.1:${ROUTED_PORTS[0]}\", \"r1=127.0.0.1:${ROUTED_PORTS[1]}\", \"r2=127.0.0.1:${ROUTED_PORTS[2]}\"]"
for i in 0 1 2; do
  SLUICE_PORT=${ROUTED_PORTS[$i]} start_sluice "r$i" fsync "$(node_toml "r$i" "$i" BENCH_ROUTED "$ROUTED_DB" "$NODE_LIST")"
done
UNROUTED=()
for i in 0 1 2; do
  start_sluice "u$i" fsync "$(node_toml "u$i" "$i" BENCH_UNROUTED "$UNROUTED_DB")"; UNROUTED+=("$PORT")
done

csv() { awk -F'"' '$2 != "test" && NF > 14 {print $4, $14; exit}'; } # cluster mode prints its nodes first
# routed COMMAND P: redis-benchmark --cluster through the routed nodes, 51 clients.
routed() {
  redis-benchmark --cluster -p "${ROUTED_PORTS[0]}" -c 51 -n "$N" -r "$R" -P "$2" --csv "${@:3}" 2>/dev/null | csv
}
# unrouted P COMMAND...: the three unrouted nodes at once, 17 clients each (redis-benchmark
# splits its clients evenly the same way in cluster mode): summed requests/s, worst p99.
unrouted() {
  local i runs=()
  for i in 0 1 2; do
    redis-benchmark -p "${UNROUTED[$i]}" -c 17 -n $((N / 3)) -r "$R" -P "$1" --csv "${@:2}" 2>/dev/null | csv >"$WORK/u.$i" &
    runs+=("$!")
  done
  wait "${runs[@]}" # not a bare wait: the servers are this shell's children too
  cat "$WORK"/u.? | awk '{s += $1; if ($2 > p) p = $2} END {printf "%.0f %s\n", s, p}'
  rm -f "$WORK"/u.?
}
redis_one() {
  redis-benchmark -p "$REDIS_ALWAYS" -c 51 -n "$N" -r "$R" -P "$1" --csv "${@:2}" 2>/dev/null | csv
}

echo "write-back SET and GET, requests=$N per run, keys=$R, 51 clients; Redis: appendfsync always"
echo
echo "| command | P | 3 nodes routed/s | p99 ms | 3 nodes unrouted/s | p99 ms | Redis/s | p99 ms | routed/unrouted | routed/Redis |"
echo "|---|---|---|---|---|---|---|---|---|---|"
for cmd in SET GET; do
  for P in 1 16; do
    args=("$cmd" "key:__rand_int__"); [ "$cmd" = SET ] && args+=(xxx)
    # redis-benchmark --cluster gives each client a node and replaces {tag} with one of that
    # node's hash tags, so every key a client sends is its node's.
    tagged=("$cmd" "key:{tag}:__rand_int__"); [ "$cmd" = SET ] && tagged+=(xxx)
    read -r ro rop < <(routed x "$P" "${tagged[@]}")
    read -r un unp < <(unrouted "$P" "${args[@]}")
    read -r re rep < <(redis_one "$P" "${args[@]}")
    printf '| %s | %s | %s | %s | %s | %s | %s | %s | %.2fx | %.2fx |\n' "$cmd" "$P" "$ro" "$rop" "$un" "$unp" "$re" "$rep" \
      "$(awk -v a="$ro" -v b="$un" 'BEGIN{print (b>0)?a/b:0}')" "$(awk -v a="$ro" -v b="$re" 'BEGIN{print (b>0)?a/b:0}')"
  done
done
echo
for p in "${ROUTED_PORTS[@]}"; do
  printf '%s: ' "$p"; redis-cli -p "$p" dbsize
done
