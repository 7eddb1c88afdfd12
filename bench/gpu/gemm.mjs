#!/usr/bin/env node
// fd.matmul on CUDA in each matmul precision ("highest" float32 FMA, "high" TF32, "medium" BF16), beside
// bench/gpu/gemm_torch.py (torch.matmul) on the same shapes. Each sample times `iters` back-to-back calls
// followed by fd.synchronize(); median of 10 samples after warm-up. Prints JSON lines
// {op, precision, M, N, K, ms, tflops} with tflops = 2·M·N·K / t.
//   node bench/gpu/gemm.mjs
import { createRequire } from "node:module";
import { medianMs } from "./timing.mjs";

const require = createRequire(import.meta.url);
const fd = require("../../dist/index.cjs");

const SHAPES = [[4096, 4096, 4096], [1024, 1024, 1024], [64, 4096, 4096]];


for (const [M, N, K] of SHAPES) {
  const a = fd.randn([M, K], { seed: 1, device: "cuda" });
  const b = fd.randn([K, N], { seed: 2, device: "cuda" });
  const flops = 2 * M * N * K;
  for (const precision of ["highest", "high", "medium"]) {
    fd.setMatmulPrecision(precision);
    const ms = medianMs(fd, () => fd.scope(() => { fd.matmul(a, b); }), { iters: flops >= 1e11 ? 3 : 20 });
    console.log(JSON.stringify({ op: "matmul", impl: "fastdiff-cuda", precision, M, N, K, ms: +ms.toFixed(4),
      tflops: +(flops / (ms * 1e-3) / 1e12).toFixed(2) }));
  }
  a.dispose();
  b.dispose();
}
fd.setMatmulPrecision("high");
