#!/usr/bin/env bash
# One GPU visit: the CUDA test suite (poisoned allocations), compute-sanitizer memcheck on the op suite, then
# the benchmarks beside PyTorch on the same machine. Run on the GPU machine from the staged package:
#   source .gpu/env.sh && bash bench/gpu/run.sh          (writes logs and JSON lines under $OUT)
# Every step has its own time limit so one slow step cannot starve the rest of the visit.
set -uo pipefail
out=${OUT:-/tmp/fastdiff-gpu}
mkdir -p "$out"
step() {  # step NAME SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  local t0=$SECONDS
  timeout "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$out/steps.txt"
}

{ nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv; node --version
  python3 -c 'import torch; print("torch", torch.__version__, torch.version.cuda)'; } > "$out/machine.txt" 2>&1

# A staged package may carry the addon compressed and leave the models to the working tree (size limits).
addon=prebuilds/linux-x64/node.napi.node
[[ -f $addon.xz && ! -f $addon ]] && xz -dk "$addon.xz"
[[ -d models ]] || export FASTDIFF_MODELS="$PWD/../../models"

export FASTDIFF_CUDA_POISON=1
step tests ${TESTS_S:-200} node --test --test-concurrency=1 --test-reporter=spec test/gpu/
[[ -n ${MEMCHECK:-} ]] && step memcheck 60 compute-sanitizer --tool memcheck --error-exitcode 9 node --test \
  --test-concurrency=1 test/gpu/elementwise.test.mjs test/gpu/norm.test.mjs
unset FASTDIFF_CUDA_POISON

step gemm 30 node bench/gpu/gemm.mjs
step gemm_torch 25 python3 bench/gpu/gemm_torch.py
models=$(mktemp -d)
python3 bench/torch_models.py --make-model unet "$models/unet" > /dev/null 2>&1
python3 bench/torch_models.py --make-model dit "$models/dit" > /dev/null 2>&1
step networks 60 node bench/gpu/networks.mjs "$models"
step networks_torch 60 python3 bench/torch_gpu.py --quick --no-compile --out "$out/networks_torch.json"
step attention 30 node bench/gpu/attention.mjs
step attention_torch 20 python3 bench/gpu/attention_torch.py
cat "$out/steps.txt"
