// CUDA vs CPU: group norm (± SiLU, ± affine), layer norm, softmax / log-softmax,
// timestep and label embeddings, dropout, MSE and SiD losses — forward and backward.
// (gaussian_fourier_projection has no JS entry point; it runs inside UNet2DModel's
// "fourier" time embedding and is covered by the model tests.)
import { test } from "node:test";
import { fd, checkOp } from "./harness.mjs";

// Group-norm statistics are float32 sums on the GPU (double on the CPU), and the
// backward pass adds per-(n, c) sums over up to N·HW values, so gradients get a
// looser bound than elementwise ops.
const GN_TOL = 2e-5, GN_GRAD_TOL = 1e-4;

test("groupNorm", () => {
  const cases = [
    // [N, C, H, W], groups
    [[2, 64, 4, 4], 8],
    [[2, 64, 4, 4], 32],
    [[2, 64, 4, 4], 1],
    [[1, 512, 28, 28], 32], // HW = 784
    [[3, 96, 1, 1], 32], // HW = 1
    [[2, 128, 7, 9], 8], // odd HW
    [[1, 64, 5, 3], 1], // one group of 960 values
    [[1, 128, 64, 64], 32], // 16384 values per group: several chunks; HW > 1024: a block per channel in backward
    [[5, 256, 3, 5], 32],
  ];
  for (const [shape, groups] of cases) {
    const C = shape[1];
    for (const silu of [false, true]) {
      checkOp(`groupNorm G=${groups} silu=${silu} affine`, (x, w, b) => fd.groupNorm(x, groups, w, b, { silu }),
        [shape, [C], [C]], { tol: GN_TOL, gradTol: GN_GRAD_TOL });
      checkOp(`groupNorm G=${groups} silu=${silu}`, (x) => fd.groupNorm(x, groups, null, null, { silu }), [shape],
        { tol: GN_TOL, gradTol: GN_GRAD_TOL });
    }
  }
  // weight only, and a 3-d input [N, C, L]
  checkOp("groupNorm weight only", (x, w) => fd.groupNorm(x, 4, w, null, { eps: 1e-6 }), [[3, 12, 11], [12]],
    { tol: GN_TOL, gradTol: GN_GRAD_TOL });
});

test("layerNorm", () => {
  for (const D of [1, 7, 256, 1152, 4097]) {
    for (const lead of [[1], [3, 5], [67]]) {
      const shape = [...lead, D];
      checkOp(`layerNorm D=${D} affine`, (x, w, b) => fd.layerNorm(x, w, b), [shape, [D], [D]], { gradTol: 5e-5 });
      checkOp(`layerNorm D=${D}`, (x) => fd.layerNorm(x), [shape], { gradTol: 5e-5 });
    }
  }
  // per-sample weight and bias [B, D] (DiT's adaptive norm; composed on CUDA from the plain norm)
  for (const shape of [[4, 196, 256], [3, 7, 33]]) {
    const bd = [shape[0], shape.at(-1)];
    checkOp(`layerNorm per-sample ${JSON.stringify(shape)}`, (x, w, b) => fd.layerNorm(x, w, b), [shape, bd, bd],
      { gradTol: 5e-5 });
  }
  // many rows: the γ/β gradients reduce over several row chunks
  checkOp("layerNorm many rows", (x, w, b) => fd.layerNorm(x, w, b, { eps: 1e-6 }), [[4100, 33], [33], [33]],
    { gradTol: 5e-5 });
});

test("softmax / logSoftmax", () => {
  for (const D of [1, 3, 1000, 4097]) {
    for (const lead of [[5], [2, 3], [129]]) {
      const shape = [...lead, D];
      checkOp(`softmax D=${D}`, (x) => fd.softmax(x), [shape]);
      checkOp(`logSoftmax D=${D}`, (x) => fd.logSoftmax(x), [shape]);
    }
  }
  checkOp("softmax axis 1", (x) => fd.softmax(x, 1), [[3, 17, 5]]);
  checkOp("logSoftmax axis 0", (x) => fd.logSoftmax(x, 0), [[9, 4]]);
  // Large logits: the max subtraction matters. Softmax is then nearly one-hot and its gradient
  // y·(gy − Σ gy·y) cancels to ~e^-Δ·|gy|, so float32 rounding of the terms (~6e-8·|gy|, on either
  // device) is a sizeable fraction of max |ref|: the H200 run measured 1.3e-2 → gradient tolerance 5e-2
  // (a wrong formula is off by O(1)).
  checkOp("softmax large logits", (x) => fd.softmax(fd.mul(x, 80)), [[4, 300]], { gradTol: 5e-2 });
});

test("timestepEmbedding", () => {
  const timesteps = (shape) => Float32Array.from({ length: shape[0] }, (_, i) => (i * 997.3) % 1000 + 0.25);
  const cases = [
    [256, { flipSinToCos: true, downscaleFreqShift: 0 }], // DiT
    [320, { flipSinToCos: false, downscaleFreqShift: 1 }], // UNet2D
    [7, {}], // odd dim: a zero column
    [1539, { flipSinToCos: true, scale: 2, maxPeriod: 5000 }], // 769 frequencies: two launches, odd
  ];
  for (const B of [1, 5, 33]) {
    for (const [dim, options] of cases)
      checkOp(`timestepEmbedding B=${B} dim=${dim}`, (t) => fd.timestepEmbedding(t, dim, options), [[B]],
        { inputs: timesteps });
  }
});

test("embedding", () => {
  checkOp("embedding", (w) => fd.embedding(w, [3, 1, 3, 0, 9, 3]), [[10, 7]]);
  const many = Array.from({ length: 600 }, (_, i) => (i * 37) % 1001); // > one label chunk, repeated classes
  checkOp("embedding 600 labels", (w) => fd.embedding(w, many), [[1001, 1152]]);
  checkOp("embedding one class", (w) => fd.embedding(w, Array(300).fill(2)), [[4, 5]]);
});

test("dropout", () => {
  for (const shape of [[1], [7, 13], [1000003]]) {
    for (const p of [0.1, 0.5])
      checkOp(`dropout p=${p} ${shape}`, (x) => fd.dropout(x, p, { seed: 1234 }), [shape]);
  }
});

test("mseLoss", () => {
  for (const shape of [[1], [4, 3, 5, 7], [1000003]]) {
    for (const reduction of ["mean", "sum", "none"])
      checkOp(`mseLoss ${reduction} ${shape}`, (a, b) => fd.mseLoss(a, b, { reduction }), [shape, shape]);
  }
});

test("sidLoss", () => {
  const sid = (alpha) => (r, f, xg) => {
    const { loss, mask } = fd.sidLoss(r, f, xg, { alpha });
    return [loss, mask];
  };
  for (const shape of [[1, 3], [4, 3, 8, 8], [3, 4, 40, 40], [2, 1]]) {
    for (const alpha of [1.2, 0.5])
      checkOp(`sidLoss α=${alpha} ${shape}`, sid(alpha), [shape, shape, shape]);
  }
  // NaN / Inf samples are masked: loss 0, mask 0, zero gradients
  const shape = [4, 2, 5, 5];
  const P = 50;
  let call = 0;
  const withBad = (s, i) => {
    const v = fd.randn(s, { seed: 77 + i + 10 * call++ }).dataSync();
    if (i === 0) v[1 * P + 7] = NaN; // sample 1: NaN in r
    if (i === 1) v[3 * P + 49] = Infinity; // sample 3: Inf in f
    if (i === 2) v[3 * P] = -Infinity; // and -Inf in x_g
    return v;
  };
  checkOp("sidLoss NaN rows", sid(1.2), [shape, shape, shape], { inputs: withBad });
});
