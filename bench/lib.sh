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
  rm -rf "$WORK"
}

# The `[server]` and `[journal]` sections of a Sluice listening on port $1 with data in $2 and
# journal durability $3; callers append their own sections.
sluice_config() {
  printf '[server]\nport = %s\ndata_dir = "%s"\n[journal]\ndurability = "%s"\n' "$1" "$2" "$3"
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
  PORT=$(free_port)
  mkdir -p "$WORK/$1"
  { sluice_config "$PORT" "$WORK/$1/data" "$2"; printf '%s\n' "${3:-}"; } >"$WORK/$1.toml"
  target/release/sluice serve --config "$WORK/$1.toml" >"$WORK/$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_ping "$PORT" || { echo "sluice $1 did not start:" >&2; cat "$WORK/$1.log" >&2; exit 1; }
}
