// matmul and linear on CUDA (binding/cuda/gemm_kernels.cu) vs the CPU, forward and
// backward, in every matmul precision. Shapes reach every path: ragged tiles (1, 3, 17,
// 1000), K- and row-contiguous operands (fd.transpose, and the transposed views of the
// backward pass), broadcast batch dims, split K (few output tiles, long K), the packed
// TF32/BF16 path (M, N ≥ 512 and K ≥ 256), and K = 0.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fd, checkOp, withPrecision } from "./harness.mjs";

// Tolerances relative to max |ref| (the harness' measure):
//  highest: float32 sums of K products in a different order differ by ~eps·√K of the
//           output scale → 1e-5·√K, K the longest reduction of the forward and backward GEMMs.
//  high:    TF32 keeps 10 mantissa bits: each operand is off by ≤ 2^-11 relative, a product
//           by ≤ 2^-10 ≈ 1e-3 (a 1×1×1 product); the independent errors of a K-term sum
//           grow only like √K while the sum does too, measured ~3e-4 → 2e-3.
//  medium:  BF16 keeps 7 bits: ≤ 2^-8 per operand, ≤ 2^-7 ≈ 7.8e-3 per product (K = 1),
//           measured ~2e-3 for long sums → 1.5e-2.
function tolerance(precision, k) {
  if (precision === "highest") return 1e-5 * Math.sqrt(Math.max(k, 1));
  return precision === "high" ? 2e-3 : 1.5e-2;
}
const PRECISIONS = ["highest", "high", "medium"];

const numel = (s) => s.reduce((p, q) => p * q, 1);

/** matmul check: a [..., M, K] @ b [..., K, N]; `ta` / `tb` store the operand transposed and
 * pass fd.transpose of it. The longest reduction is K (output), N (grad a) or M·batch (grad b). */
function checkMatmul(name, aShape, bShape, { ta = false, tb = false, grad = true } = {}) {
  const swap = (s) => [...s.slice(0, -2), s.at(-1), s.at(-2)];
  const [M, K] = aShape.slice(-2), N = bShape.at(-1);
  const batch = Math.max(numel(aShape.slice(0, -2)), numel(bShape.slice(0, -2)));
  const k = Math.max(K, N, M * batch);
  for (const precision of PRECISIONS) {
    const tol = tolerance(precision, k);
    withPrecision(precision, () =>
      checkOp(`matmul ${name} (${precision})`,
        (a, b) => fd.matmul(ta ? fd.transpose(a) : a, tb ? fd.transpose(b) : b),
        [ta ? swap(aShape) : aShape, tb ? swap(bShape) : bShape], { tol, grad }));
  }
}

/** linear check: x [..., in], w [out, in], optional bias [out]. */
function checkLinear(name, xShape, out, { bias = true } = {}) {
  const inF = xShape.at(-1), rows = numel(xShape.slice(0, -1));
  const shapes = [xShape, [out, inF]];
  if (bias) shapes.push([out]);
  const k = Math.max(inF, out, rows);
  for (const precision of PRECISIONS) {
    const tol = tolerance(precision, k);
    withPrecision(precision, () =>
      checkOp(`linear ${name} (${precision})`, (x, w, b) => fd.linear(x, w, bias ? b : null), shapes, { tol }));
  }
}

test("matmul: small and ragged shapes", () => {
  checkMatmul("1x1x1", [1, 1], [1, 1]);
  checkMatmul("3x5x7", [3, 7], [7, 5]);
  checkMatmul("17x33x65", [17, 65], [65, 33]);
  checkMatmul("1000x1x37", [1000, 37], [37, 1]);
  checkMatmul("1x1000x37", [1, 37], [37, 1000]);
  checkMatmul("257x129x1", [257, 1], [1, 129]);
});

test("matmul: 128x256x512 and transposed operands", () => {
  checkMatmul("128x256x512", [128, 512], [512, 256]);
  checkMatmul("A^T", [130, 70], [70, 90], { ta: true });
  checkMatmul("B^T", [130, 70], [70, 90], { tb: true });
  checkMatmul("A^T B^T", [130, 70], [70, 90], { ta: true, tb: true });
  checkMatmul("128x256x512 A^T B^T", [128, 512], [512, 256], { ta: true, tb: true });
});

test("matmul: batched with broadcast batch dims", () => {
  checkMatmul("batch 4", [4, 9, 10], [4, 10, 11]);
  checkMatmul("b broadcast", [4, 9, 10], [10, 11]);
  checkMatmul("a broadcast", [9, 10], [3, 10, 11]);
  checkMatmul("[2,1] x [3] batch", [2, 1, 5, 6], [3, 6, 7]);  // uneven offsets: one launch per run
  checkMatmul("[2,1] x [1,3] transposed", [2, 1, 5, 6], [1, 3, 6, 7], { ta: true, tb: true });
  checkMatmul("many small", [300, 3, 4], [300, 4, 2]);
});

test("matmul: split K and the packed tensor-core path", () => {
  checkMatmul("split K 64x256x4096", [64, 4096], [4096, 256]);
  checkMatmul("packed 600x700x301", [600, 301], [301, 700]);
  checkMatmul("packed 520x520x520 (all three GEMMs packed)", [520, 520], [520, 520]);
  checkMatmul("packed A^T", [520, 300], [300, 530], { ta: true });
  checkMatmul("packed batched, broadcast B", [2, 512, 260], [260, 512]);
});

test("matmul: K = 0 writes zeros", () => {
  for (const precision of PRECISIONS)
    withPrecision(precision, () =>
      checkOp(`matmul K=0 (${precision})`, (a, b) => fd.matmul(a, b), [[3, 0], [0, 4]], { grad: false }));
});

test("linear forward and backward", () => {
  checkLinear("1 -> 1", [1, 1], 1);
  checkLinear("[2,5,7] -> 3", [2, 5, 7], 3);
  checkLinear("[4,33,65] -> 17", [4, 33, 65], 17);
  checkLinear("1000x37 -> 1", [1000, 37], 1);
  checkLinear("no bias", [6, 40], 24, { bias: false });
  checkLinear("128x512 -> 256", [128, 512], 256);
  checkLinear("packed 600x520 -> 530", [600, 520], 530);
});

test("linear's activation, residual and gate (CUDA's epilogue passes; with gradients, the separate ops) vs the CPU", () => {
  // [x shape, out, gate rows G, activation]: G groups of the output rows (one per sample), the output of ldc = out
  for (const [xShape, out, G, activation] of [
    [[6, 40], 24, 1, undefined],
    [[3, 196, 64], 256, 3, "gelu_tanh"],
    [[600, 520], 530, 4, "silu"],
    [[1, 256], 1536, 1, undefined],
  ]) {
    const rows = numel(xShape.slice(0, -1)), outShape = [...xShape.slice(0, -1), out];
    const tol = tolerance("highest", Math.max(xShape.at(-1), out, rows));
    withPrecision("highest", () => {
      for (const grad of [false, true]) {
        checkOp(`linear ${JSON.stringify(xShape)} -> ${out}, G ${G}, ${activation ?? "no activation"}, gated residual`,
          (x, w, b, r, g) => fd.linear(x, w, b, { activation, residual: r, gate: g }),
          [xShape, [out, xShape.at(-1)], [out], outShape, [G, out]], { tol, grad });
        checkOp(`linear ${JSON.stringify(xShape)} -> ${out}, residual`,
          (x, w, b, r) => fd.linear(x, w, b, { residual: r }), [xShape, [out, xShape.at(-1)], [out], outShape], { tol, grad });
      }
    });
  }
});

test("matmul and linear reject mixed devices", () => {
  fd.scope(() => {
    const a = fd.randn([4, 5], { seed: 1 }), b = fd.randn([5, 3], { seed: 2, device: "cuda" });
    const w = fd.randn([3, 5], { seed: 3, device: "cuda" }), bias = fd.randn([3], { seed: 4 });
    const isDevice = (e) => e.code === "ERR_DEVICE";
    assert.throws(() => fd.matmul(a, b), isDevice);
    assert.throws(() => fd.linear(a, w), isDevice);
    assert.throws(() => fd.linear(a.to("cuda"), w, bias), isDevice);
  });
});
