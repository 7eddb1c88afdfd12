#!/usr/bin/env python3
"""PyTorch side of bench/gpu/gemm.mjs: torch.matmul on CUDA for the same shapes, float32 without TF32
("highest"), float32 with TF32 ("high") and bf16 inputs ("medium"). Median of 10 timed samples (CUDA events
around `iters` back-to-back calls) after warm-up. Prints JSON lines {op, precision, M, N, K, ms, tflops}.

    python3 bench/gpu/gemm_torch.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_gpu import timed  # noqa: E402

SHAPES = [(4096, 4096, 4096), (1024, 1024, 1024), (64, 4096, 4096)]


def median_ms(fn, iters=1):
    """Median over 10 samples of `iters` back-to-back calls (CUDA events), after warm-up (bench/torch_gpu.py)."""
    return timed(fn, warmup=3, iters=iters, repeats=10)["ms"]


def main():
    for M, N, K in SHAPES:
        flops = 2.0 * M * N * K
        iters = 3 if flops >= 1e11 else 20
        for precision, dtype, tf32 in (("highest", torch.float32, False), ("high", torch.float32, True),
                                       ("medium", torch.bfloat16, False)):
            torch.backends.cuda.matmul.allow_tf32 = tf32
            a = torch.randn(M, K, device="cuda", dtype=dtype)
            b = torch.randn(K, N, device="cuda", dtype=dtype)
            ms = median_ms(lambda: torch.matmul(a, b), iters)
            print(json.dumps({"op": "matmul", "impl": "torch", "precision": precision, "M": M, "N": N, "K": K,
                              "ms": round(ms, 4), "tflops": round(flops / (ms * 1e-3) / 1e12, 2)}), flush=True)
    torch.backends.cuda.matmul.allow_tf32 = False


if __name__ == "__main__":
    main()
