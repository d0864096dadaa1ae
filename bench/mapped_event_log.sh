#!/usr/bin/env bash
# The design note's activity event log on a table: a list per user mapped a row per event
# (`type = "list"` on `events (user_id, seq, payload)`), write-back, RPUSH of an event to a
# random user from redis-benchmark, side by side with redis-server `appendfsync always` running
# the same commands on plain lists. Reports pushes per second for both and the rows the flushes
# wrote into the table per push (a trigger counts every row inserted or updated): each push is
# one INSERT, batched per flush, never a rewrite of the user's older events.
# Not a test: the machines are shared and noisy.
#
# usage: bench/mapped_event_log.sh [pushes]     (FLUSH=1s USERS="1000 100" CLIENTS=50)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-50000}
CLIENTS=${CLIENTS:-50}
FLUSH=${FLUSH:-1s}
setup_mapped_bench
sqlite3 "$APP" <<'SQL'
CREATE TABLE events (user_id TEXT NOT NULL, seq INTEGER NOT NULL, payload TEXT,
                     PRIMARY KEY (user_id, seq));
CREATE TABLE writes (n INTEGER NOT NULL); INSERT INTO writes VALUES (0);
CREATE TRIGGER events_ins AFTER INSERT ON events BEGIN UPDATE writes SET n = n + 1; END;
CREATE TRIGGER events_upd AFTER UPDATE ON events BEGIN UPDATE writes SET n = n + 1; END;
SQL

start_mapped_pair "$APP" "$(cat <<EOF
[[keyspace]]
name = "events"
keys = "events:{user}"
type = "list"
table = "events"
key_column = "user_id"
position_column = "seq"
value_column = "payload"
policy = "write-back"
flush_interval = "$FLUSH"
flush_batch = 100000
EOF
)"

echo "RPUSH of an event to a random user, $N pushes, $CLIENTS clients, flush every $FLUSH; Sluice (table) vs redis-server appendfsync always:"
echo "| users | P  |  Sluice/s |   Redis/s | ratio | rows written | rows per push | rows in table |"
echo "|-------|----|-----------|-----------|-------|--------------|---------------|---------------|"
round=0
for users in ${USERS:-1000 100}; do
  for P in ${PIPELINES:-1 16}; do
    round=$((round + 1))
    before=$(sqlite3 "$APP" "SELECT n FROM writes")
    read -r s _ < <(command_csv "$SLUICE" "$P" "$users" RPUSH "events:r$round:__rand_int__" page=/home,user_agent=bench,ms=1700000000000)
    read -r r _ < <(command_csv "$REDIS" "$P" "$users" RPUSH "events:r$round:__rand_int__" page=/home,user_agent=bench,ms=1700000000000)
    redis-cli -p "$SLUICE" SLUICE.FLUSH >/dev/null
    rows=$(( $(sqlite3 "$APP" "SELECT n FROM writes") - before ))
    stored=$(sqlite3 "$APP" "SELECT count(*) FROM events WHERE user_id LIKE 'r$round:%'")
    printf '| %5s | %-2s | %9s | %9s | %5.2fx | %12s | %13.4f | %13s |\n' "$users" "$P" "$s" "$r" \
      "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$rows" \
      "$(awk -v a="$rows" -v n="$N" 'BEGIN{print a/n}')" "$stored"
  done
done
