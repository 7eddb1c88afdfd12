#!/usr/bin/env bash
# Everything bench/models.mjs needs besides fastdiff itself:
#  - onnxruntime-node in bench/node_modules (a separate package, so the root `npm install` never fetches it;
#    ONNXRUNTIME_NODE_INSTALL=skip: its install script would otherwise try to download CUDA binaries from nuget;
#    the CPU binaries ship inside the npm package)
#  - PyTorch (bench/setup-torch.sh) plus OpenBLAS's OpenMP build, which models.mjs puts first on
#    LD_LIBRARY_PATH for PyTorch (installing it does not change the system's default BLAS)
#  - the two issue-3 models as diffusers folders in bench/models-tmp/{unet,dit} (same weights for all three
#    implementations), their ONNX exports (bench/models-tmp/{unet,dit}.onnx) and FLOP counts
#  - the golden self-checks of bench/torch_models.py and the ORT-vs-PyTorch output check
# Needs root (apt). Re-running is cheap; pass --force to rewrite the models.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
py=/usr/bin/python3
force=0
[[ "${1:-}" == "--force" ]] && force=1

ONNXRUNTIME_NODE_INSTALL=skip npm install --prefix "$here" --no-audit --no-fund
bash "$here/setup-torch.sh"
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-openmp

golden="$root/../shared/golden/models"
if [[ -d "$golden" ]]; then
  for case in unet2d_c1_s28 dit_s16_p2; do
    $py "$here/torch_models.py" --check "$golden/$case"
  done
fi

out="$here/models-tmp"
mkdir -p "$out"
for kind in unet dit; do
  if [[ $force == 1 || ! -f "$out/$kind/diffusion_pytorch_model.safetensors" ]]; then
    $py "$here/torch_models.py" --make-model "$kind" "$out/$kind"
    rm -f "$out/$kind.onnx" "$out/$kind.flops.json"
  fi
  [[ -f "$out/$kind.onnx" ]] || $py "$here/torch_models.py" --export-onnx "$out/$kind.onnx" "$out/$kind"
  [[ -f "$out/$kind.flops.json" ]] || $py "$here/torch_models.py" --flops "$out/$kind" > "$out/$kind.flops.json"
  cat "$out/$kind.flops.json"; echo
done
node "$here/models.mjs" --verify
