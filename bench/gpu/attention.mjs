#!/usr/bin/env node
// fd.attention on CUDA: forward and forward+backward at matmul precision "high" (TF32) and "medium" (BF16),
// beside bench/gpu/attention_torch.py (torch scaled_dot_product_attention) on the same shapes. Each sample
// times `iters` back-to-back calls (so per-call host overhead is amortized as in a network), median of 10
// samples after warm-up. Prints JSON lines {op, impl, B, H, N, D, ms, tflops}; attention FLOPs are
// 4·B·H·N²·D forward and 2.5× that for backward.
//   node bench/gpu/attention.mjs
import { createRequire } from "node:module";
import { medianMs } from "./timing.mjs";

const require = createRequire(import.meta.url);
const fd = require("../../dist/index.cjs");

const SHAPES = [[4, 16, 4096, 64], [64, 4, 256, 64]];


for (const [B, H, N, D] of SHAPES) {
  const shape = [B, H, N, D];
  const fwdFlops = 4 * B * H * N * N * D;
  const iters = N >= 2048 ? 1 : 10;
  const q = fd.randn(shape, { seed: 1, device: "cuda" }).requireGrad();
  const k = fd.randn(shape, { seed: 2, device: "cuda" }).requireGrad();
  const v = fd.randn(shape, { seed: 3, device: "cuda" }).requireGrad();
  const go = fd.randn(shape, { seed: 4, device: "cuda" });
  for (const precision of ["high", "medium"]) {
    fd.setMatmulPrecision(precision);
    const forward = () => fd.noGrad(() => fd.scope(() => { fd.attention(q, k, v); }));
    const forwardBackward = () => {
      fd.scope(() => { fd.attention(q, k, v).backward(go); });
      q.grad = k.grad = v.grad = null;
    };
    for (const [op, fn, flops] of [["forward", forward, fwdFlops], ["forward+backward", forwardBackward, 3.5 * fwdFlops]]) {
      const ms = medianMs(fd, fn, { iters });
      console.log(JSON.stringify({ op, impl: `fastdiff-cuda-${precision}`, B, H, N, D, ms: +ms.toFixed(4),
        tflops: +(flops / (ms * 1e-3) / 1e12).toFixed(2) }));
    }
  }
  for (const t of [q, k, v, go]) t.dispose();
}
fd.setMatmulPrecision("high");
