#!/usr/bin/env bash
# What SQLite change capture costs the write path and the read path, in one run: redis-benchmark
# requests/s of write-through SET and of GET on a mapped table (product:{id}:price ->
# products.price, 10,000 rows), with [changes] enabled = true and false, side by side, two
# rounds each, alternating. With it on, every write also inserts a row into sluice_changes in
# the same transaction, and its own change comes back to refresh the cached copy (one row
# read). Not a test: machines are shared and noisy; compare the ratio, not absolute numbers.
#
# With `postgres` as the third argument, the same on PostgreSQL ($SLUICE_TEST_POSTGRES_URL, which
# needs wal_level = logical): there the write path is unchanged (the WAL is written anyway)
# and what change capture adds is the echo of each write (one row read per write of a cached
# key) and the stream itself.
#
# usage: bench/changes_cost.sh [requests] [clients] [sqlite|postgres]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-50000}
C=${2:-50}
STORE=${3:-sqlite}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
cargo build --release -q -p sluice-server --bin sluice
setup_work

keyspace() { # table
  printf '[[keyspace]]\nname = "price"\nkeys = "product:{id}:price"\ntable = "%s"\nkey_column = "id"\nvalue_column = "price"\npolicy = "write-through"\n' "$1"
}

start_with() { # name enabled
  if [ "$STORE" = postgres ]; then
    : "${SLUICE_TEST_POSTGRES_URL:?set SLUICE_TEST_POSTGRES_URL}"
    local table="changes_cost_$1"
    psql -q "$SLUICE_TEST_POSTGRES_URL" -c "DROP TABLE IF EXISTS $table" \
      -c "CREATE TABLE $table (id text PRIMARY KEY, price integer)" \
      -c "INSERT INTO $table SELECT lpad(i::text, 12, '0'), 0 FROM generate_series(0, 9999) i"
    start_sluice "$1" none "[store]
url = \"$SLUICE_TEST_POSTGRES_URL\"
$(keyspace "$table")
[changes]
enabled = $2
node_name = \"changes_cost_$1\""
    return
  fi
  mkdir -p "$WORK/$1/data"
  python3 - "$WORK/$1/data/sluice.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
# Text keys as redis-benchmark writes __rand_int__ (twelve digits, zero-padded).
db.execute("CREATE TABLE products (id TEXT PRIMARY KEY, price INTEGER)")
db.executemany("INSERT INTO products VALUES (?, 0)", [("%012d" % i,) for i in range(10000)])
db.commit()
PY
  start_sluice "$1" fsync "$(keyspace products)
[changes]
enabled = $2"
}

extra_cleanup() {
  if [ "$STORE" = postgres ]; then
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for n in off on; do
      target/release/sluice changes drop --config "$WORK/$n.toml" >/dev/null 2>&1 || true
      psql -q "$SLUICE_TEST_POSTGRES_URL" -c "DROP TABLE IF EXISTS changes_cost_$n" || true
    done
  fi
}

start_with off false; OFF=$PORT
start_with on true; ON=$PORT

rb() { # port pipeline command...
  redis-benchmark -p "$1" -c "$C" -n "$N" -P "$2" -r 10000 --csv "${@:3}" 2>/dev/null | awk -F'"' 'NR==2 {print $4}'
}

printf '%-28s %12s %12s %8s\n' test "changes off" "changes on" "on/off"
for round in 1 2; do
  for pipeline in 1 16; do
    for cmd in "SET product:__rand_int__:price 7" "GET product:__rand_int__:price"; do
      off=$(rb "$OFF" "$pipeline" $cmd)
      on=$(rb "$ON" "$pipeline" $cmd)
      printf '%-28s %12s %12s %8.2f\n' "${cmd%% *} P$pipeline (round $round)" "$off" "$on" \
        "$(echo "$on / $off" | bc -l)"
    done
  done
done
echo
echo "INFO of the server with change capture on:"
redis-cli -p "$ON" info sluice | grep '^changes_'
