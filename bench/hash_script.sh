#!/usr/bin/env bash
# redis-benchmark requests/s of HSET, HGETALL and EVALSHA (issue 13), Sluice (write-back,
# journal none, built-in keyspace) against redis-server (no persistence), side by side in one
# run: 50 clients, -r 10000, P1 and P16. Each cell is the median of ROUNDS runs, Sluice and
# Redis alternating, so both see the same noise. Not a test: machines are shared; compare the
# ratios. bench/callgrind_commands.sh counts instructions per request for the same commands.
#
# usage: bench/hash_script.sh [requests] [rounds] [LABEL=COMMAND ...]
#   defaults: 100000 3 and the commands below; __SHA__ is the SHA1 of $SCRIPT (default: an
#   INCR of KEYS[1]), loaded with SCRIPT LOAD.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-100000}
ROUNDS=${2:-3}
shift $(($# < 2 ? $# : 2))
if [ $# -gt 0 ]; then COMMANDS=("$@"); else
  COMMANDS=(
    "hset=HSET h:__rand_int__ f __rand_int__"
    "hgetall=HGETALL h:__rand_int__"
    "hgetall_10=HGETALL h10"
    "evalsha=EVALSHA __SHA__ 1 k:__rand_int__"
  )
fi
SCRIPT=${SCRIPT:-"return redis.call('INCR', KEYS[1])"}
command -v redis-benchmark >/dev/null || { echo "redis-benchmark missing: apt-get install redis-tools"; exit 1; }
cargo build --release -q -p sluice-server
setup_work
start_redis plain --appendonly no; REDIS=$PORT
start_sluice back none; SLUICE=$PORT
for port in $REDIS $SLUICE; do
  SHA=$(redis-cli -p "$port" script load "$SCRIPT")
  # A 10-field hash for HGETALL h10 (a row-sized object).
  redis-cli -p "$port" hset h10 a 1 b 2 c 3 d 4 e 5 f 6 g 7 h 8 i 9 j 10 >/dev/null
done
rb() { # port pipeline command... -> requests/s
  # shellcheck disable=SC2068
  redis-benchmark -p "$1" -c 50 -n "$N" -P "$2" -r 10000 --csv ${@:3} 2>/dev/null | awk -F'"' 'NR==2 {print $4}'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "| command | P | Sluice req/s | Redis req/s | ratio (Sluice/Redis) |"
echo "|---|---|---|---|---|"
for entry in "${COMMANDS[@]}"; do
  label=${entry%%=*}; cmd=${entry#*=}; cmd=${cmd//__SHA__/$SHA}
  for P in 1 16; do
    s_all=""; r_all=""
    for _ in $(seq 1 "$ROUNDS"); do
      s_all="$s_all $(rb "$SLUICE" "$P" $cmd)"; r_all="$r_all $(rb "$REDIS" "$P" $cmd)"
    done
    s=$(echo "$s_all" | median); r=$(echo "$r_all" | median)
    printf '| %s | %s | %s | %s | %.2f |\n' "$label" "$P" "$s" "$r" "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')"
  done
done
