#!/usr/bin/env python3
"""PyTorch side of bench/gpu/attention.mjs: torch.nn.functional.scaled_dot_product_attention on CUDA in bf16
(the flash kernel) and float32 (memory-efficient kernel), forward and forward+backward, for the same shapes.
Median of 10 timed runs (CUDA events) after warm-up. Prints JSON lines
{op, impl, B, H, N, D, ms, tflops}; attention FLOPs are 4·B·H·N²·D forward and 2.5× that for backward.

    python3 bench/gpu/attention_torch.py
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from torch_gpu import timed  # noqa: E402
import torch.nn.functional as F

SHAPES = [(4, 16, 4096, 64), (64, 4, 256, 64)]


def median_ms(fn, iters=1):
    """Median over 10 samples of `iters` back-to-back calls (CUDA events), after warm-up (bench/torch_gpu.py)."""
    return timed(fn, warmup=3, iters=iters, repeats=10)["ms"]


def main():
    torch.backends.cuda.matmul.allow_tf32 = False
    for B, H, N, D in SHAPES:
        fwd_flops = 4.0 * B * H * N * N * D
        for impl, dtype in (("torch-sdpa-bf16", torch.bfloat16), ("torch-sdpa-fp32", torch.float32)):
            g = torch.Generator(device="cuda").manual_seed(0)
            q, k, v = (torch.randn(B, H, N, D, device="cuda", dtype=dtype, generator=g) for _ in range(3))
            go = torch.randn(B, H, N, D, device="cuda", dtype=dtype, generator=g)

            def forward():
                with torch.no_grad():
                    F.scaled_dot_product_attention(q, k, v)

            qg, kg, vg = (t.detach().clone().requires_grad_(True) for t in (q, k, v))

            def forward_backward():
                o = F.scaled_dot_product_attention(qg, kg, vg)
                o.backward(go)
                qg.grad = kg.grad = vg.grad = None

            for op, fn, flops in (("forward", forward, fwd_flops), ("forward+backward", forward_backward, 3.5 * fwd_flops)):
                ms = median_ms(fn)
                print(json.dumps({"op": op, "impl": impl, "B": B, "H": H, "N": N, "D": D, "ms": round(ms, 4),
                                  "tflops": round(flops / (ms * 1e-3) / 1e12, 2)}), flush=True)
            del q, k, v, go, qg, kg, vg
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
