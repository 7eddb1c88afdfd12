#!/usr/bin/env python3
"""The SiD distillation loop in plain PyTorch (CPU), for bench/distill.mjs: the same teacher weights, the same
networks (bench/torch_models.py), the same per-iteration work as fastdiff's distillSiD (METHODS.md §1(c)):
one fake-score step (EDM denoising loss on detached generator samples, Adam β1 = 0), one generator step (SiD loss
with the weight 1/mean|x_g − r| detached, backpropagated through the frozen teacher and fake network into G,
Adam β1 = 0), an EMA update of G. Prints JSON: seconds per iteration (median over the timed iterations).

  /usr/bin/python3 bench/sid_torch.py models/mnist-teacher --batch 64 --iterations 6 --warmup 2 --threads 2
"""
import argparse
import copy
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_models import load_model, needs_labels  # noqa: E402

SIGMA_DATA = 0.5


def denoise(net, x, sigma, labels):
    """EDM preconditioning (Karras et al. 2022, Table 1): D = c_skip·x + c_out·F(c_in·x, ln(σ)/4)."""
    s = sigma.view(-1, 1, 1, 1)
    d2 = s * s + SIGMA_DATA ** 2
    out = net(x / torch.sqrt(d2), torch.log(sigma) / 4, labels)
    out = out[:, : x.shape[1]]
    return SIGMA_DATA ** 2 / d2 * x + s * SIGMA_DATA / torch.sqrt(d2) * out


def sid_sigma(u, sigma_min=0.002, sigma_max=80.0, rho=7.0):
    a = sigma_max ** (1 / rho)
    return (a + (1 - u) * (sigma_min ** (1 / rho) - a)) ** rho


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("teacher")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--iterations", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--alpha", type=float, default=1.2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    teacher = load_model(args.teacher)
    for p in teacher.parameters():
        p.requires_grad_(False)
    G = copy.deepcopy(teacher).train()
    fake = copy.deepcopy(teacher)
    for p in list(G.parameters()) + list(fake.parameters()):
        p.requires_grad_(True)
    ema = copy.deepcopy(G).eval()
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-5, betas=(0.0, 0.999), eps=1e-8)
    opt_f = torch.optim.Adam(fake.parameters(), lr=1e-5, betas=(0.0, 0.999), eps=1e-8)
    cond = needs_labels(teacher)
    classes = (teacher.config.get("null_class") or teacher.config["num_class_embeds"]) if cond else 0
    size = teacher.config["sample_size"]
    channels = teacher.config["in_channels"]
    B = args.batch
    sigma_init = torch.full((B,), 2.5)

    def labels():
        return torch.randint(0, classes, (B,)) if cond else None

    times = []
    for it in range(args.warmup + args.iterations):
        t0 = time.perf_counter()
        # ---- fake-score step on detached generator samples ----
        c = labels()
        G.eval()
        with torch.no_grad():
            xg = denoise(G, 2.5 * torch.randn(B, channels, size, size), sigma_init, c)
        fake.train()
        sigma = torch.exp(-1.2 + 1.2 * torch.randn(B))
        weight = (sigma ** 2 + SIGMA_DATA ** 2) / (sigma * SIGMA_DATA) ** 2
        noisy = xg + sigma.view(-1, 1, 1, 1) * torch.randn_like(xg)
        loss_f = (weight * ((denoise(fake, noisy, sigma, c) - xg) ** 2).mean(dim=(1, 2, 3))).mean()
        opt_f.zero_grad(set_to_none=True)
        loss_f.backward()
        opt_f.step()
        # ---- generator step through the frozen teacher and fake network ----
        G.train()
        fake.eval()
        for p in fake.parameters():
            p.requires_grad_(False)
        c = labels()
        xg = denoise(G, 2.5 * torch.randn(B, channels, size, size), sigma_init, c)
        sigma = sid_sigma(torch.rand(B) * 0.8)
        noisy = xg + sigma.view(-1, 1, 1, 1) * torch.randn_like(xg)
        r = denoise(teacher, noisy, sigma, c)
        f = denoise(fake, noisy, sigma, c)
        with torch.no_grad():
            w = 1.0 / torch.clamp((xg - r).abs().mean(dim=(1, 2, 3)), min=1e-5)
        per = ((1 - args.alpha) * (r - f) ** 2 + (r - f) * (f - xg)).sum(dim=(1, 2, 3))
        loss_g = (w * per).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for p in fake.parameters():
            p.requires_grad_(True)
        with torch.no_grad():
            for pe, pg in zip(ema.parameters(), G.parameters()):
                pe.mul_(0.999).add_(pg, alpha=0.001)
        if it >= args.warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    print(json.dumps({"impl": "pytorch", "torch": torch.__version__, "threads": args.threads, "batch": B,
                      "iterations": args.iterations, "secondsPerIteration": times[len(times) // 2],
                      "lossG": float(loss_g), "lossFake": float(loss_f)}))


if __name__ == "__main__":
    main()
