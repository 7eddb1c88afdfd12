#!/usr/bin/env python3
"""PyTorch side of bench/run.mjs: times the same cases (read as JSON from stdin)
and prints {"name": median_ms, ...}. Run with OMP/OpenBLAS threads set by the
caller; torch.set_num_threads matches them."""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F


def timeit(fn, iters, repeats):
    fn()
    fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        samples.append((time.perf_counter() - t0) / iters * 1e3)
    samples.sort()
    return samples[len(samples) // 2]


def make(case):
    kind, s = case["kind"], case["shape"]
    g = torch.Generator().manual_seed(0)
    rnd = lambda *shape, grad=False: torch.randn(*shape, generator=g).requires_grad_(grad)
    if kind == "matmul":
        a, b = rnd(s["M"], s["K"]), rnd(s["K"], s["N"])
        return lambda: torch.mm(a, b)
    if kind in ("conv2d", "conv2d_train"):
        train = kind == "conv2d_train"
        x = rnd(s["N"], s["C"], s["H"], s["W"], grad=train)
        w = rnd(s["OC"], s["C"], 3, 3, grad=train)
        b = rnd(s["OC"], grad=train)
        if not train:
            return lambda: F.conv2d(x, w, b, padding=1)
        gy = rnd(s["N"], s["OC"], s["H"], s["W"])

        def step():
            y = F.conv2d(x, w, b, padding=1)
            gx, gw, gb = torch.autograd.grad(y, (x, w, b), gy)
            return gx
        return step
    if kind in ("attention", "attention_train"):
        train = kind == "attention_train"
        q, k, v = (rnd(s["B"], s["H"], s["N"], s["D"], grad=train) for _ in range(3))
        scale = s["D"] ** -0.5

        def fwd():
            return torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v
        if not train:
            return lambda: fwd()
        go = rnd(s["B"], s["H"], s["N"], s["D"])
        return lambda: torch.autograd.grad(fwd(), (q, k, v), go)
    if kind == "groupnorm_silu":
        x = rnd(s["N"], s["C"], s["H"], s["W"])
        w, b = rnd(s["C"]), rnd(s["C"])
        return lambda: F.silu(F.group_norm(x, s["G"], w, b))
    raise ValueError(kind)


def main():
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))
    torch.set_num_threads(threads)
    cases = json.load(sys.stdin)
    out = {}
    with torch.inference_mode(False):
        for case in cases:
            fn = make(case)
            if case["kind"] in ("conv2d", "attention", "groupnorm_silu", "matmul"):
                with torch.no_grad():
                    out[case["name"]] = timeit(fn, case["iters"], case["repeats"])
            else:
                out[case["name"]] = timeit(fn, case["iters"], case["repeats"])
    json.dump({"torch": torch.__version__, "threads": threads, "ms": out}, sys.stdout)


if __name__ == "__main__":
    main()
