#!/usr/bin/env bash
# Does the DARTS search search? Five DARTS searches (seeds 0-4) against five genotypes drawn
# at random from the same space; every genotype is then trained from scratch with the same
# budget and seed on train+validation and scored on the held-out test split.
# The settings are examples/nas/darts-cpu.yaml's. Writes bench/results/darts.md.
# About 15 minutes on 2 cores (one thread: candle's threads only add overhead on 8x8 images).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kestrel-darts-trainer
export RAYON_NUM_THREADS=1
target/release/kestrel-darts compare --darts 5 --random 5 --epochs "${EPOCHS:-20}" \
  --algorithm-settings "{'num_epochs': '6', 'num_nodes': '2', 'init_channels': '4', 'stem_multiplier': '1', 'batch_size': '64'}" \
  --search-space "['separable_convolution_3x3', 'dilated_convolution_3x3', 'dilated_convolution_5x5', 'avg_pooling_3x3', 'max_pooling_3x3', 'skip_connection']" \
  --num-layers 3 | tee bench/results/darts.md
