#!/usr/bin/env bash
# The dashboard's overview on a big account: CALLS paid calls (default 1,000,000) over DAYS
# simulated days (default 30) through the real server, each for one of 1,000 end users, then the
# overview page timed on that account against a small read of the same server
# (bench/retention/src/main.rs with --overview). Target: the overview in <= 200 ms.
# Usage: bench/overview.sh [CALLS] [DAYS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
cargo build --release -q -p visa-cli -p visa-bench-retention
echo "machine: $(nproc) cores"
target/release/visa-bench-retention "$work/data" "${1:-1000000}" "${2:-30}" "${3:-64}" --overview
echo "ledger after the run: $(target/release/visa-cli ledger verify --data-dir "$work/data")"
