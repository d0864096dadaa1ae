#!/usr/bin/env bash
# Memory per key after loading 1M keys (16-byte keys, 32-byte values): Sluice's RSS growth
# against redis-server's used_memory growth for the same data, measured in the same run.
#
# usage: bench/memory.sh [keys]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
KEYS=${1:-1000000}
cargo build --release -q
setup_work

# RESP for KEYS distinct SETs: keys "k:%014d" (16 bytes), values of 32 bytes.
python3 - "$KEYS" >"$WORK/load.resp" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout.buffer
val = b"v" * 32
for i in range(n):
    k = b"k:%014d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$16\r\n" + k + b"\r\n$32\r\n" + val + b"\r\n")
PY

start_redis redis --appendonly no
RP=$PORT
start_sluice sluice none '[cache]
capacity = "1GiB"
[[keyspace]]
name = "default"
keys = "*"
policy = "write-back"
max_dirty = 2000000'
SP=$PORT SPID=$SERVER_PID

rss() { awk '/^VmRSS/ {print $2 * 1024}' "/proc/$1/status"; }
R0=$(redis-cli -p "$RP" info memory | awk -F: '/^used_memory:/ {print $2+0}')
S0=$(rss "$SPID")
redis-cli -p "$RP" --pipe <"$WORK/load.resp" >/dev/null
redis-cli -p "$SP" --pipe <"$WORK/load.resp" >/dev/null
redis-cli -p "$SP" sluice.flush >/dev/null
sleep 1
# One second after the flush the flusher may still remember the keys it stored in its last
# interval (a 64-bit fingerprint each), until the next timed flush; report both moments.
S_EARLY=$(rss "$SPID")
sleep 2
R1=$(redis-cli -p "$RP" info memory | awk -F: '/^used_memory:/ {print $2+0}')
S1=$(rss "$SPID")
RK=$(awk -v a="$R0" -v b="$R1" -v n="$KEYS" 'BEGIN{printf "%.1f", (b-a)/n}')
SK=$(awk -v a="$S0" -v b="$S1" -v n="$KEYS" 'BEGIN{printf "%.1f", (b-a)/n}')
SE=$(awk -v a="$S0" -v b="$S_EARLY" -v n="$KEYS" 'BEGIN{printf "%.1f", (b-a)/n}')
echo "| keys | redis used_memory bytes/key | sluice RSS bytes/key 3 s after the flush (1 s after) | ratio (1 s after) |"
echo "|---|---|---|---|"
echo "| $KEYS | $RK | $SK ($SE) | $(awk -v a="$SK" -v b="$RK" 'BEGIN{printf "%.2f", a/b}') ($(awk -v a="$SE" -v b="$RK" 'BEGIN{printf "%.2f", a/b}')) |"
