#!/usr/bin/env bash
# What the cluster fence (a node's claim on its name, checked in every store write
# transaction) costs: one-entry batches (a write-through write at P1) and 500-entry batches
# (a write-back flush), through a fenced and a plain store side by side, on each database.
#
# usage: bench/fence_cost.sh [N]
# env:   SLUICE_TEST_POSTGRES_URL, SLUICE_TEST_MYSQL_URL (each skipped when unset)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
cargo build --release -q -p sluice --example fence_cost
target/release/examples/fence_cost sqlite "$N"
if [ -n "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  target/release/examples/fence_cost "$SLUICE_TEST_POSTGRES_URL" "$N"
fi
if [ -n "${SLUICE_TEST_MYSQL_URL:-}" ]; then
  target/release/examples/fence_cost "$SLUICE_TEST_MYSQL_URL" "$N"
fi
