#!/usr/bin/env bash
# Scores a shipped MNIST model the way models/README.md reports it: 2,000 class-balanced samples from the
# 18-step Heun sampler (35 network evaluations each), against the 1,996 held-out test digits; then a 10×10 grid.
#   bash models/evaluate.sh mnist-teacher        (or mnist-dit; add a guidance scale as $2)
set -euo pipefail
cd "$(dirname "$0")/.."
model=${1:-mnist-teacher}
guidance=${2:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
node dist/cli.cjs sample --model "models/$model" --n 2000 --steps 18 --solver heun --guidance "$guidance" --seed 0 \
  --save "$tmp/samples.safetensors" --out "$tmp/all.png"
node dist/cli.cjs eval --samples "$tmp/samples.safetensors" --reference mnist-test --json | tee "models/$model/eval-guidance-$guidance.json"
node dist/cli.cjs sample --model "models/$model" --n 100 --steps 18 --solver heun --guidance "$guidance" --seed 1 --out "models/$model/grid.png"
