#!/usr/bin/env bash
# What SQLite change capture costs the write path and the read path, in one run: redis-benchmark
# requests/s of write-through SET and of GET on a mapped table (product:{id}:price ->
# products.price, 10,000 rows), with [changes] enabled = true and false, side by side, two
# rounds each, alternating. With it on, every write also inserts a row into sluice_changes in
# the same transaction, and its own change comes back to refresh the cached copy (one row
# read). Not a test: machines are shared and noisy; compare the ratio, not absolute numbers.
#
# usage: bench/changes_cost.sh [requests] [clients]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-50000}
C=${2:-50}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
cargo build --release -q -p sluice-server --bin sluice
setup_work

keyspace='[[keyspace]]
name = "price"
keys = "product:{id}:price"
table = "products"
key_column = "id"
value_column = "price"
policy = "write-through"'

start_with() { # name enabled
  mkdir -p "$WORK/$1/data"
  python3 - "$WORK/$1/data/sluice.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
# Text keys as redis-benchmark writes __rand_int__ (twelve digits, zero-padded).
db.execute("CREATE TABLE products (id TEXT PRIMARY KEY, price INTEGER)")
db.executemany("INSERT INTO products VALUES (?, 0)", [("%012d" % i,) for i in range(10000)])
db.commit()
PY
  start_sluice "$1" fsync "$keyspace
[changes]
enabled = $2"
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
