#!/usr/bin/env bash
# A long soak of the money-path simulation (tests/e2e/simulation.rs): many more seeds and steps
# than CI runs. Usage: bench/sim.sh [SEEDS] [STEPS] [FIRST_SEED]   (defaults: 2000 300 1000)
# Prints the seeds, steps and what they exercised; a failure prints its seed and how to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=${1:-2000}
steps=${2:-300}
first=${3:-1000}
start=$(date +%s)
VISA_SIM_SEEDS=$seeds VISA_SIM_STEPS=$steps VISA_SIM_FIRST_SEED=$first \
  cargo test --release -p visa-e2e --test e2e simulation:: -- --nocapture 2>&1 | grep -E '^simulation|failed at|^replay|test result'
echo "soak: $seeds seeds x $steps steps from seed $first in $(( $(date +%s) - start )) s on $(nproc) cores"
