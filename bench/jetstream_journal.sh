#!/usr/bin/env bash
# Write-back SET with the journal on NATS JetStream ([cluster]) side by side with the local
# segment journal (fsync) and redis-server appendfsync always, in one run. Starts its own
# nats-servers: one (an R1 stream) and a 3-server cluster (an R3 stream), all on this machine,
# so the R3 figures include two extra servers on the same 2 cores. Not a test: the machines
# are shared and noisy.
#
# usage: bench/jetstream_journal.sh [requests] [keyspace-size]
#   requests       per test (default 100000)
#   keyspace-size  redis-benchmark -r (default 10000)
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
N=${1:-100000}
R=${2:-10000}
CLIENTS=${CLIENTS:-50}
NATS=${NATS:-$(command -v nats-server || echo /usr/sbin/nats-server)}
[ -x "$NATS" ] || { echo "nats-server missing: apt-get install nats-server"; exit 1; }
require_redis_tools
cargo build --release -q
setup_work

cluster_toml() { # node urls-toml replicas stream
  printf '[cluster]\nnode_name = "%s"\nnats_urls = [%s]\nreplicas = %s\njournal_stream = "%s"\njournal_subject = "bench.%s"\n' \
    "$1" "$2" "$3" "$4" "$4"
}
KEYSPACE=$'[[keyspace]]\nname = "default"\nkeys = "*"\npolicy = "write-back"'

P1=$(free_port); start_nats single "$P1"
start_nats_cluster c

start_redis always --appendonly yes --appendfsync always; REDIS_ALWAYS=$PORT
start_sluice wal fsync "$KEYSPACE"; S_WAL=$PORT
start_sluice js1 fsync "$(cluster_toml n1 "\"nats://127.0.0.1:$P1\"" 1 BENCH_R1)
$KEYSPACE"; S_R1=$PORT
start_sluice js3 fsync "$(cluster_toml n1 "\"nats://127.0.0.1:${C[0]}\", \"nats://127.0.0.1:${C[1]}\", \"nats://127.0.0.1:${C[2]}\"" 3 BENCH_R3)
$KEYSPACE"; S_R3=$PORT

echo "SET, write-back, requests=$N clients=$CLIENTS keyspace=$R"
echo
echo "| journal | P | Sluice/s | Redis always/s | ratio | Sluice p99 ms | Redis p99 ms |"
echo "|---|---|---|---|---|---|---|"
for P in 1 16; do
  for pair in "local WAL fsync:$S_WAL" "JetStream R1:$S_R1" "JetStream R3 (3 servers):$S_R3"; do
    label=${pair%%:*}; port=${pair##*:}
    read -r s sp99 < <(benchmark_csv "$port" "$CLIENTS" "$N" set "$P" -r "$R")
    read -r r rp99 < <(benchmark_csv "$REDIS_ALWAYS" "$CLIENTS" "$N" set "$P" -r "$R")
    printf '| %s | %s | %s | %s | %.2fx | %s | %s |\n' "$label" "$P" "$s" "$r" \
      "$(awk -v a="$s" -v b="$r" 'BEGIN{print (b>0)?a/b:0}')" "$sp99" "$rp99"
  done
done
echo
for pair in "wal:$S_WAL" "r1:$S_R1" "r3:$S_R3"; do
  redis-cli -p "${pair##*:}" info sluice | grep -E 'journal_(appends|fsyncs|writes_per_fsync)' | sed "s/^/${pair%%:*}: /" || true
done
