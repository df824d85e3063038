#!/usr/bin/env bash
# Runs kestrel's and Optuna's benchmarks on the same functions, budgets and seeds, one after
# the other (never concurrently, so latencies are comparable), and prints the comparison.
#
#   bench/run.sh                 # everything: 10 seeds, all methods (Optuna's GP takes ~30 min)
#   SEEDS=3 OPTUNA_METHODS=random,qmc,tpe ROUNDS=1 LATENCY_METHODS=tpe bench/run.sh   # a quick look
#
# Optuna is installed from PyPI into bench/.venv (optuna 5.0.0; torch for its GPSampler).
set -euo pipefail
cd "$(dirname "$0")"
SEEDS=${SEEDS:-10}
KESTREL_METHODS=${KESTREL_METHODS:-random,sobol,tpe,multivariate-tpe,bayesianoptimization,cmaes,cmaes:surrogate=lq}
OPTUNA_METHODS=${OPTUNA_METHODS:-random,qmc,tpe,multivariate-tpe,gp,cmaes}
VENV=${VENV:-.venv}
ROUNDS=${ROUNDS:-3}
# kestrel's names; Optuna's harness takes the same list with gp for bayesianoptimization.
LATENCY_METHODS=${LATENCY_METHODS:-tpe,multivariate-tpe,bayesianoptimization}
OPTUNA_LATENCY_METHODS=${LATENCY_METHODS//bayesianoptimization/gp}
mkdir -p results

if [ ! -x "$VENV/bin/python" ]; then python3 -m venv "$VENV"; fi
"$VENV/bin/pip" install -q -r requirements.txt

cargo build --release -p kestrel-bench
BIN=../target/release/kestrel-bench
: > results/kestrel-latency.jsonl
: > results/optuna-latency.jsonl
# Alternate the two for $ROUNDS rounds; the report takes the median across rounds.
for _ in $(seq "$ROUNDS"); do
  "$BIN" latency --methods "$LATENCY_METHODS" >> results/kestrel-latency.jsonl
  "$VENV/bin/python" optuna_bench.py latency --methods "$OPTUNA_LATENCY_METHODS" >> results/optuna-latency.jsonl
done
"$BIN" quality --seeds "$SEEDS" --methods "$KESTREL_METHODS" > results/kestrel-quality.jsonl
"$VENV/bin/python" optuna_bench.py quality --seeds "$SEEDS" --methods "$OPTUNA_METHODS" > results/optuna-quality.jsonl
"$VENV/bin/python" report.py results/*.jsonl | tee results/report.md
