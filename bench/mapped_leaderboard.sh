#!/usr/bin/env bash
# The design note's leaderboard on a table: a sorted set per game mapped a row per player
# (`type = "zset"` on `scores (game_id, player_id, score)`; the player a text column, because
# redis-benchmark's __rand_int__ is zero-padded, which an integer column would refuse), write-back, ZINCRBY of random
# players from redis-benchmark, side by side with redis-server `appendfsync always` running the
# same commands on a plain sorted set. Reports updates per second for both and the rows the
# flushes wrote into the table per update (a trigger counts every row inserted or updated):
# the write-back buffer coalesces per player, so a board of P players flushed every
# FLUSH writes at most P rows per flush, however many updates it took.
# Not a test: the machines are shared and noisy.
#
# usage: bench/mapped_leaderboard.sh [updates]     (FLUSH=10s PLAYERS="1000 10000" CLIENTS=50)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-50000}
CLIENTS=${CLIENTS:-50}
FLUSH=${FLUSH:-10s}
setup_mapped_bench
sqlite3 "$APP" <<'SQL'
CREATE TABLE scores (game_id INTEGER NOT NULL, player_id TEXT NOT NULL, score REAL NOT NULL,
                     PRIMARY KEY (game_id, player_id));
CREATE TABLE writes (n INTEGER NOT NULL); INSERT INTO writes VALUES (0);
CREATE TRIGGER scores_ins AFTER INSERT ON scores BEGIN UPDATE writes SET n = n + 1; END;
CREATE TRIGGER scores_upd AFTER UPDATE ON scores BEGIN UPDATE writes SET n = n + 1; END;
SQL

start_mapped_pair "$APP" "$(cat <<EOF
[[keyspace]]
name = "leaderboard"
keys = "leaderboard:{game}"
type = "zset"
table = "scores"
key_column = "game_id"
member_column = "player_id"
score_column = "score"
policy = "write-back"
flush_interval = "$FLUSH"
flush_batch = 100000
EOF
)"

echo "ZINCRBY of a random player, $N updates, $CLIENTS clients, flush every $FLUSH; Sluice (table) vs redis-server appendfsync always:"
echo "| players | P  |  Sluice/s |   Redis/s | ratio | rows written | rows per update |"
echo "|---------|----|-----------|-----------|-------|--------------|-----------------|"
game=0
for players in ${PLAYERS:-1000 10000}; do
  for P in ${PIPELINES:-1 16}; do
    game=$((game + 1))
    before=$(sqlite3 "$APP" "SELECT n FROM writes")
    read -r s _ < <(command_csv "$SLUICE" "$P" "$players" ZINCRBY "leaderboard:$game" 1 player:__rand_int__)
    read -r r _ < <(command_csv "$REDIS" "$P" "$players" ZINCRBY "leaderboard:$game" 1 player:__rand_int__)
    redis-cli -p "$SLUICE" SLUICE.FLUSH >/dev/null
    rows=$(( $(sqlite3 "$APP" "SELECT n FROM writes") - before ))
    printf '| %7s | %-2s | %9s | %9s | %5.2fx | %12s | %15.4f |\n' "$players" "$P" "$s" "$r" \
      "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$rows" \
      "$(awk -v a="$rows" -v n="$N" 'BEGIN{print a/n}')"
  done
done
