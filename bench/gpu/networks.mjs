#!/usr/bin/env node
// The issue-3 bench networks (small UNet, small DiT) on CUDA: forward at batch 1 and 64 and a training step
// (forward + MSE + backward + Adam) at batch 64, per matmul precision. The same folders PyTorch times in
// bench/torch_gpu.py (`python3 bench/torch_models.py --make-model unet|dit DIR` writes them).
//   node bench/gpu/networks.mjs MODELS_DIR    → JSON lines {model, mode, batch, precision, ms, img_s}
import * as path from "node:path";
import { createRequire } from "node:module";
import { medianMs } from "./timing.mjs";

const require = createRequire(import.meta.url);
const fd = require("../../dist/index.cjs");
const dir = process.argv[2];
if (!dir) throw new Error("usage: node bench/gpu/networks.mjs MODELS_DIR");


for (const kind of ["unet", "dit"]) {
  const net = (await fd.loadNetwork(path.join(dir, kind))).to("cuda");
  const c = net.config;
  const shape = (b) => [b, c.in_channels, c.sample_size, c.sample_size];
  const labels = (b) => (net.numClasses ? Array.from({ length: b }, (_, i) => i % net.numClasses) : undefined);
  for (const precision of ["high", "medium"]) {
    fd.setMatmulPrecision(precision);
    for (const b of [1, 64]) {
      const x = fd.randn(shape(b), { seed: b, device: "cuda" });
      const t = Array.from({ length: b }, (_, i) => (i * 37) % 1000);
      const ms = medianMs(fd, () => fd.noGrad(() => fd.scope(() => { net.forward(x, t, { classLabels: labels(b) }); })),
        { warmup: 5, samples: 5, iters: 20 });
      console.log(JSON.stringify({ model: kind, mode: "forward", batch: b, precision, ms, img_s: (1000 * b) / ms }));
    }
    const b = 64;
    const x = fd.randn(shape(b), { seed: 7, device: "cuda" });
    const target = fd.randn(shape(b), { seed: 8, device: "cuda" });
    const t = Array.from({ length: b }, (_, i) => (i * 37) % 1000);
    net.train();
    const opt = new fd.Adam(net.parameters(), { lr: 1e-4 });
    const ms = medianMs(fd, () => fd.scope(() => {
      fd.mseLoss(net.forward(x, t, { classLabels: labels(b) }), target).backward();
      opt.step();
      opt.zeroGrad();
    }), { warmup: 3, samples: 5, iters: 10 });
    net.eval();
    console.log(JSON.stringify({ model: kind, mode: "train", batch: b, precision, ms, img_s: (1000 * b) / ms }));
  }
}
fd.setMatmulPrecision("high");
