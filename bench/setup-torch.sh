#!/usr/bin/env bash
# The PyTorch reference for bench/: Debian's CPU PyTorch with OpenBLAS (without
# libopenblas, Debian's torch falls back to the reference BLAS at ~1 GFLOP/s).
set -euo pipefail
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread
/usr/bin/python3 -c "import torch; print('torch', torch.__version__)"
