# Helpers shared by the bench scripts; source it, do not run it.

# A TCP port nobody listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Waits up to 10 s for a Redis-protocol server on port $1 to answer PING.
wait_ping() { for _ in $(seq 1 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return 0; sleep 0.1; done; return 1; }

# benchmark_csv PORT CLIENTS REQUESTS TEST PIPELINE [redis-benchmark args...]: one
# redis-benchmark run, printed as "requests_per_second p99_ms".
benchmark_csv() {
  redis-benchmark -p "$1" -c "$2" -n "$3" -t "$4" -P "$5" "${@:6}" --csv 2>/dev/null \
    | awk -F'"' 'NR==2 {print $4, $14}'
}

# Makes $WORK, a temporary directory, and PIDS, the servers to stop; both are cleaned up on
# exit. A script with more to undo (a table to drop) defines `extra_cleanup` first.
setup_work() {
  WORK=$(mktemp -d)
  PIDS=()
  trap cleanup_work EXIT
}

cleanup_work() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if declare -F extra_cleanup >/dev/null; then extra_cleanup || true; fi
  if [ -n "${OWN_DB:-}" ]; then
    psql "$OWN_DB_ADMIN" -qc "DROP DATABASE IF EXISTS $OWN_DB WITH (FORCE)" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}

# own_postgres_database ADMIN_URL: creates a database of this run's own on ADMIN_URL's server,
# dropped on exit, and sets PG_URL to it. Cluster nodes record their stream in their store
# (`sluice_journal`), which would refuse local-journal nodes (and tests) on a shared database.
own_postgres_database() {
  OWN_DB_ADMIN=$1
  OWN_DB="sluice_bench_$$"
  psql "$OWN_DB_ADMIN" -qc "CREATE DATABASE $OWN_DB" >/dev/null
  PG_URL="${OWN_DB_ADMIN%/*}/$OWN_DB"
}

# The `[server]` and `[journal]` sections of a Sluice listening on port $1 with data in $2 and
# journal durability $3; callers append their own sections. SLUICE_JOURNAL_EXTRA, if set, is
# one more line of `[journal]`, e.g. `member_records_from = "1000GiB"` to journal every
# collection write whole, as before member records, for an A/B run of one binary.
sluice_config() {
  printf '[server]\nport = %s\ndata_dir = "%s"\n[journal]\ndurability = "%s"\n%s\n' "$1" "$2" "$3" "${SLUICE_JOURNAL_EXTRA:-}"
}

# Servers started by these run in this shell (never in `$(...)`), so cleanup_work stops them.
# Each logs to $WORK/NAME.log, exits the script with that log if it does not answer PING, and
# sets PORT and SERVER_PID.

# start_redis NAME [redis-server args...]: redis-server without RDB snapshots.
start_redis() {
  PORT=$(free_port)
  mkdir -p "$WORK/$1"
  redis-server --port "$PORT" --bind 127.0.0.1 --save "" --dir "$WORK/$1" --daemonize no "${@:2}" \
    >"$WORK/$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_ping "$PORT" || { echo "redis-server $1 did not start:" >&2; cat "$WORK/$1.log" >&2; exit 1; }
}

# start_sluice NAME DURABILITY [TOML]: target/release/sluice with data in $WORK/NAME and the
# extra config sections TOML (a store, keyspaces, the cache).
start_sluice() {
  PORT=${SLUICE_PORT:-$(free_port)} # SLUICE_PORT: a port chosen ahead (a cluster's node list)
  mkdir -p "$WORK/$1"
  { sluice_config "$PORT" "$WORK/$1/data" "$2"; printf '%s\n' "${3:-}"; } >"$WORK/$1.toml"
  target/release/sluice serve --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_ping "$PORT" || { echo "sluice $1 did not start:" >&2; cat "$WORK/$1.log" >&2; exit 1; }
}

# command_csv PORT PIPELINE RANGE COMMAND...: redis-benchmark of one command ($CLIENTS
# clients, $N requests, keys and members from __rand_int__ below RANGE), printed as
# "requests_per_second p99_ms".
command_csv() {
  redis-benchmark -p "$1" -c "$CLIENTS" -n "$N" -r "$3" -P "$2" --csv "${@:4}" 2>/dev/null \
    | awk -F'"' 'NR==2 {print $4, $14}'
}

# side_by_side SLUICE_PORT REDIS_PORT LABEL PIPELINE RANGE COMMAND...: one table row, the
# command on Sluice then on Redis, with the ratio and both p99s.
side_by_side() {
  local s r sp99 rp99
  read -r s sp99 < <(command_csv "$1" "$4" "$5" "${@:6}")
  read -r r rp99 < <(command_csv "$2" "$4" "$5" "${@:6}")
  printf '| %-34s | P%-2s | %10s | %10s | %5.2fx | %6s | %6s |\n' "$3" "$4" "$s" "$r" \
    "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$sp99" "$rp99"
}

# start_reference_pairs: the two side-by-side pairs of the collection benches, Sluice's default
# (journal `fsync`) next to redis-server `appendfsync always`, and Sluice journal `none` next
# to redis-server without persistence; sets SLUICE_FSYNC, REDIS_ALWAYS, SLUICE_NONE, REDIS_PLAIN.
start_reference_pairs() {
  start_redis always --appendonly yes --appendfsync always; REDIS_ALWAYS=$PORT
  start_redis plain --appendonly no; REDIS_PLAIN=$PORT
  start_sluice fsync fsync; SLUICE_FSYNC=$PORT
  start_sluice none none; SLUICE_NONE=$PORT
}

# for_each_pair KIND KEY COUNT ROWS: for each pair of start_reference_pairs (Sluice journal
# `fsync` with redis-server `appendfsync always`, then journal `none` with redis-server without
# persistence), fills KEY with COUNT members of KIND (bench/fill.py) on both servers, then calls
# `ROWS SLUICE_PORT REDIS_PORT LABEL PIPELINE` for each depth in $PIPELINES (default 1 16).
for_each_pair() {
  local pair s r label P
  for pair in "$SLUICE_FSYNC $REDIS_ALWAYS fsync/always" "$SLUICE_NONE $REDIS_PLAIN none/none"; do
    read -r s r label <<<"$pair"
    python3 bench/fill.py "$1" "$s" "$2" "$3"; python3 bench/fill.py "$1" "$r" "$2" "$3"
    for P in ${PIPELINES:-1 16}; do
      "$4" "$s" "$r" "$label" "$P"
    done
  done
}

# require_redis_tools: exits with an install hint if redis-benchmark or redis-server is missing.
require_redis_tools() {
  command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
  command -v redis-server >/dev/null || { echo "redis-server missing: apt-get install redis-server"; exit 1; }
}

# side_by_side_header: the request count and the head of side_by_side's table.
side_by_side_header() {
  echo "requests=$N clients=$CLIENTS"
  echo
  echo "| Sluice vs Redis                    | P   |   Sluice/s |    Redis/s | ratio | S p99 | R p99 |"
  echo "|------------------------------------|-----|------------|------------|-------|-------|-------|"
}

# setup_mapped_bench: what a mapped-table bench needs before it creates its tables: the tools,
# a release build, a work directory, and APP, the path of its SQLite file.
setup_mapped_bench() {
  require_redis_tools
  command -v sqlite3 >/dev/null || { echo "sqlite3 missing: apt-get install sqlite3"; exit 1; }
  cargo build --release -q
  setup_work
  APP="$WORK/app.db"
}

# start_mapped_pair APP KEYSPACE_TOML: redis-server `appendfsync always` (REDIS) beside Sluice
# with its journal fsynced (SLUICE), storing into the SQLite file APP with the one keyspace
# KEYSPACE_TOML: the pair the mapped-table benches compare.
start_mapped_pair() {
  start_redis always --appendonly yes --appendfsync always; REDIS=$PORT
  start_sluice mapped fsync "$(printf '[store]\nurl = "sqlite://%s"\n\n%s\n' "$1" "$2")"
  SLUICE=$PORT
}

# start_nats NAME CLIENT_PORT [args...]: a nats-server ($NATS) with JetStream, its store in
# $WORK/NAME, its log in $WORK/NAME.log.
start_nats() {
  mkdir -p "$WORK/$1"
  "$NATS" -a 127.0.0.1 -p "$2" -js -sd "$WORK/$1" -n "$1" "${@:3}" >"$WORK/$1.log" 2>&1 &
  PIDS+=("$!")
}

# start_nats_cluster PREFIX: three clustered nats-servers PREFIX0..PREFIX2; sets C to their
# client ports and waits 3 s for the cluster to elect its JetStream meta leader.
start_nats_cluster() {
  local i j routes cluster_ports=()
  C=()
  for i in 0 1 2; do C+=("$(free_port)"); cluster_ports+=("$(free_port)"); done
  for i in 0 1 2; do
    routes=""
    for j in 0 1 2; do
      [ "$j" != "$i" ] && routes="${routes:+$routes,}nats://127.0.0.1:${cluster_ports[$j]}"
    done
    start_nats "$1$i" "${C[$i]}" --cluster_name bench --cluster "nats://127.0.0.1:${cluster_ports[$i]}" --routes "$routes"
  done
  sleep 3
}
