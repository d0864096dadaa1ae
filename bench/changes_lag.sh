#!/usr/bin/env bash
# Change-capture lag (outside COMMIT to a GET through Sluice showing it, p50/p99 over N
# changes) and rate (changes applied per second after one UPDATE of 10,000 rows), on SQLite
# and, when SLUICE_TEST_POSTGRES_URL / SLUICE_TEST_MYSQL_URL are set (wal_level = logical;
# a row binlog), on PostgreSQL and MySQL/MariaDB.
# Not a test: machines are shared and noisy.
#
# usage: bench/changes_lag.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
cargo build --release -q -p sluice --example changes_lag
target/release/examples/changes_lag sqlite "$N"
if [ -n "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  target/release/examples/changes_lag "$SLUICE_TEST_POSTGRES_URL" "$N"
else
  echo "PostgreSQL skipped: set SLUICE_TEST_POSTGRES_URL"
fi
if [ -n "${SLUICE_TEST_MYSQL_URL:-}" ]; then
  target/release/examples/changes_lag "$SLUICE_TEST_MYSQL_URL" "$N"
else
  echo "MySQL skipped: set SLUICE_TEST_MYSQL_URL (log_bin, binlog_format = ROW)"
fi
