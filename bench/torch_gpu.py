#!/usr/bin/env python3
"""PyTorch-on-GPU reference for the issue-3 bench models (the target the CUDA backend, issue 7, is measured
against). Builds the same UNet and DiT as bench/torch_models.py (same configs, same seeded init), then times
forward (no_grad, eval) and a training step (forward + MSE + backward + Adam) on CUDA with CUDA events, in
float32 (TF32 off and on) and bf16 autocast, eager and torch.compile. Prints JSON.

    python3 bench/torch_gpu.py --out result.json [--quick]
"""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402


def timed(fn, warmup=5, iters=20, repeats=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / iters)
    samples.sort()
    return {"ms": samples[len(samples) // 2], "min_ms": samples[0]}


def run(kind, batches, train_batches, variants, quick):
    model = tm.build(tm.BENCH_CONFIGS[kind])
    tm.reinit_(model, tm.BENCH_SEEDS[kind])
    shape = tm.sample_shape_of(model)
    flops = tm.count_flops(model, shape)["total"]
    model = model.cuda()
    # The DiT patch embedding caches its sin-cos table per grid size on the host; seed the cache on the GPU.
    for m in model.modules():
        if isinstance(m, tm.PatchEmbed):
            g = shape[-1] // m.patch
            m._pos_cache[(g, g)] = tm.sincos_pos_embed_2d(m.dim, g, g, m.base_size).cuda()
    rows = []
    for name, dtype, tf32, compiled in variants:
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        net = torch.compile(model) if compiled else model
        for mode, bs in (("forward", batches), ("train", train_batches)):
            for b in bs:
                x, t, y = tm.make_inputs(model, b, shape, seed=b)
                x, t = x.cuda(), t.cuda()
                y = y.cuda() if y is not None else None
                if mode == "forward":
                    model.eval()

                    def fn():
                        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                            return net(x, t, y)
                else:
                    model.train()
                    opt = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
                    target = torch.randn_like(x)

                    def fn():
                        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == "bf16"):
                            loss = F.mse_loss(net(x, t, y).float(), target)
                        loss.backward()
                        opt.step()
                        opt.zero_grad(set_to_none=True)
                try:
                    r = timed(fn, warmup=3 if quick else 10, iters=5 if quick else 20, repeats=3 if quick else 5)
                except Exception as e:  # report, keep going
                    r = {"error": f"{type(e).__name__}: {e}"[:300]}
                work = flops * b * (3 if mode == "train" else 1)
                if "ms" in r:
                    r["tflops"] = work / (r["ms"] * 1e-3) / 1e12
                rows.append({"model": kind, "variant": name, "mode": mode, "batch": b, **r})
                print(json.dumps(rows[-1]), flush=True)
    return {"flops_per_image": flops, "rows": rows}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--models", default="unet,dit")
    args = ap.parse_args()
    variants = [("fp32", "fp32", False, False), ("tf32", "fp32", True, False), ("bf16", "bf16", True, False)]
    if not args.no_compile:
        variants.append(("bf16+compile", "bf16", True, True))
    t0 = time.time()
    result = {
        "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__, "device": torch.cuda.get_device_name(0),
        "models": {k: run(k, [1, 16, 64, 256], [16, 64, 256], variants, args.quick) for k in args.models.split(",")},
    }
    result["seconds"] = time.time() - t0
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
