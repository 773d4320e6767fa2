#!/usr/bin/env bash
# Retention under a controlled clock: CALLS paid calls over DAYS simulated days against the real
# server (bench/retention/src/main.rs), the database's size as it goes and by table at the end,
# then `visa-cli ledger verify` on the data dir it leaves.
# Usage: bench/retention.sh [CALLS, default 1000000] [DAYS, default 3] [CONNECTIONS, default 64]
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
cargo build --release -q -p visa-cli -p visa-bench-retention
echo "machine: $(nproc) cores"
target/release/visa-bench-retention "$work/data" "${1:-1000000}" "${2:-3}" "${3:-64}"
echo "ledger after the run: $(target/release/visa-cli ledger verify --data-dir "$work/data")"
