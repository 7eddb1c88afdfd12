// CUDA vs CPU: every unary op (kernels::Unary), every binary op under NumPy
// broadcasting (flat, scalar and strided cases), where and broadcastTo — forward and
// backward (the backward of broadcasting is sum_to, a reduction).
import assert from "node:assert/strict";
import { test } from "node:test";
import { fd, checkOp } from "./harness.mjs";

const numel = (shape) => shape.reduce((a, b) => a * b, 1);
// The gradient of a small operand broadcast over ~1e6 values is a sum of ~1e6 random
// terms, added in a different order on each device (float32 lanes on the CPU, trees on
// the GPU): the sum is ~√n while both errors grow with √n·ε·(partial sums), so the
// relative error has a heavy tail when the sum happens to be small. 1e-3 bounds it.
const gradTolFor = (shapes) =>
  Math.max(...shapes.map(numel)) >= 1e6 && Math.min(...shapes.map(numel)) < 1e3 ? 1e-3 : 1e-5;
let seed = 1 + Math.floor(Math.random() * 1e6);
const uniform = (shape, low, high) => fd.rand(shape, { seed: seed++, low, high }).dataSync();
const normal = (shape) => fd.randn(shape, { seed: seed++ }).dataSync();
// |v| ≥ 0.5 with a random sign: divisors with bounded quotients.
const awayFromZero = (shape) => normal(shape).map((v) => (v < 0 ? -0.5 : 0.5) + v);
// Values on a coarse grid: many exact ties between operands.
const coarse = (shape) => normal(shape).map((v) => Math.round(v * 2) / 2);

// Shapes: a single element, odd sizes, a 2-d tile, and one large odd size (float4 body + scalar tail).
const SHAPES = [[1], [7], [33, 17], [1000003]];

const positive = (shape) => uniform(shape, 0.1, 3);
const UNARY = [
  // [name, fn, inputs?, options?]
  ["neg", (x) => fd.neg(x)],
  ["exp", (x) => fd.exp(x)],
  ["log", (x) => fd.log(x), positive],
  ["sqrt", (x) => fd.sqrt(x), positive],
  ["rsqrt", (x) => fd.rsqrt(x), positive],
  ["abs", (x) => fd.abs(x)],
  ["square", (x) => fd.square(x)],
  ["sign", (x) => fd.sign(x), null, { grad: false }], // no gradient
  ["sigmoid", (x) => fd.sigmoid(x)],
  ["softplus", (x) => fd.softplus(x), (s) => uniform(s, -30, 30)], // both branches (x > 20: linear)
  ["tanh", (x) => fd.tanh(x)],
  ["silu", (x) => fd.silu(x)],
  ["gelu_tanh", (x) => fd.gelu(x, { approximate: "tanh" })],
  ["gelu_erf", (x) => fd.gelu(x)],
  ["relu", (x) => fd.relu(x)],
  ["affine mul", (x) => fd.mul(x, 2.5)],
  ["affine add", (x) => fd.add(x, -1.25)],
  ["affine rsub", (x) => fd.sub(3, x)],
  ["pow 3", (x) => fd.pow(x, 3)],
  ["pow 2.5", (x) => fd.pow(x, 2.5), positive],
  ["pow -0.5", (x) => fd.pow(x, -0.5), positive],
  ["pow 0", (x) => fd.pow(x, 0)],
  ["clamp", (x) => fd.clamp(x, -0.5, 0.7)],
  ["isnan", (x) => fd.isnan(x), null, { grad: false }], // no gradient
  ["nan_to_num", (x) => fd.nanToNum(x, { nan: 0.5, posinf: 7 })],
];

test("unary ops", () => {
  for (const [name, fn, inputs, options] of UNARY)
    for (const shape of SHAPES) checkOp(`${name} ${shape}`, fn, [shape], { ...options, ...(inputs ? { inputs } : {}) });
});

test("unary ops with NaN and ±Inf inputs", () => {
  // Every 3rd value NaN, every 5th +Inf, every 7th −Inf (the reference skips non-finite outputs).
  const special = (shape) =>
    normal(shape).map((v, i) => (i % 3 === 0 ? NaN : i % 5 === 0 ? Infinity : i % 7 === 0 ? -Infinity : v));
  for (const shape of [[1], [105], [1000003]]) {
    checkOp(`nan_to_num ${shape}`, (x) => fd.nanToNum(x, { nan: -2, posinf: 9 }), [shape], { inputs: special });
    checkOp(`nan_to_num default ${shape}`, (x) => fd.nanToNum(x), [shape], { inputs: special });
    checkOp(`isnan ${shape}`, (x) => fd.isnan(x), [shape], { inputs: special, grad: false });
    checkOp(`clamp ${shape}`, (x) => fd.clamp(x, -1, 1), [shape], { inputs: special, grad: false });
    checkOp(`sigmoid ${shape}`, (x) => fd.sigmoid(x), [shape], { inputs: special, grad: false });
  }
  // Exact spot checks (NaN positions included, which maxRelErr skips).
  const v = new Float32Array([NaN, Infinity, -Infinity, 0, -0, 1.5, -3]);
  const x = fd.tensor(v, [7]).to("cuda");
  assert.deepEqual(Array.from(fd.nanToNum(x, { nan: 4, posinf: 8 }).dataSync()), [4, 8, -8, 0, -0, 1.5, -3]);
  assert.deepEqual(Array.from(fd.isnan(x).dataSync()), [1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(Array.from(fd.sign(x).dataSync()), [NaN, 1, -1, 0, -0, 1, -1]);
});

const BINARY = [
  ["add", (a, b) => fd.add(a, b)],
  ["sub", (a, b) => fd.sub(a, b)],
  ["mul", (a, b) => fd.mul(a, b)],
  ["div", (a, b) => fd.div(a, b), (s, i) => (i === 1 ? awayFromZero(s) : normal(s))],
  ["pow", (a, b) => fd.pow(a, b), (s, i) => (i === 0 ? uniform(s, 0.5, 2) : normal(s))],
  ["maximum", (a, b) => fd.maximum(a, b)],
  ["minimum", (a, b) => fd.minimum(a, b)],
];

// Broadcast patterns: same shape, scalar either side, [N]×[M,N], outer products, a
// pattern that keeps 7 unmergeable dims (the general strided kernel), and large odd sizes.
const PATTERNS = [
  [[33, 17], [33, 17]],
  [[1], [33, 17]],
  [[33, 17], [1]],
  [[3, 1, 5], [1, 4, 1]],
  [[7], [5, 7]],
  [[5, 7], [7]],
  [[5, 1], [5, 7]],
  [[2, 3, 4, 5], [3, 1, 5]],
  [[2, 1, 3, 1, 2, 1, 3], [1, 2, 1, 3, 1, 2, 1]],
  [[1000003], [1000003]],
  [[1000003], [1]],
  [[1001, 999], [1001, 1]],
  [[1, 999], [1001, 1]],
];

test("binary ops with broadcasting", () => {
  for (const [name, fn, inputs] of BINARY)
    for (const shapes of PATTERNS)
      checkOp(`${name} ${JSON.stringify(shapes)}`, fn, shapes, {
        gradTol: gradTolFor(shapes),
        ...(inputs ? { inputs } : {}),
      });
});

test("maximum / minimum share the gradient at ties", () => {
  for (const shapes of [[[64], [64]], [[3, 1, 5], [1, 4, 1]], [[1000003], [1]]]) {
    const options = { inputs: coarse, gradTol: gradTolFor(shapes) };
    checkOp(`maximum ties ${JSON.stringify(shapes)}`, (a, b) => fd.maximum(a, b), shapes, options);
    checkOp(`minimum ties ${JSON.stringify(shapes)}`, (a, b) => fd.minimum(a, b), shapes, options);
  }
  checkOp("maximum(x, x)", (x) => fd.maximum(x, x), [[7, 9]]);
});

test("where", () => {
  const mask = (s) => uniform(s, 0, 1).map((v) => (v < 0.5 ? 0 : 1));
  const cases = [
    [[33, 17], [33, 17], [33, 17]],
    [[3, 1, 5], [1, 4, 1], [5]],
    [[1], [7, 9], [9]],
    [[7, 1], [1], [1, 9]],
    [[2, 1, 3, 1, 2], [1, 2, 1, 3, 1], [2, 1, 1, 1, 2]],
    [[1000003], [1000003], [1]],
  ];
  for (const shapes of cases)
    checkOp(`where ${JSON.stringify(shapes)}`, (c, a, b) => fd.where(c, a, b), shapes, {
      inputs: (s, i) => (i === 0 ? mask(s) : normal(s)),
      gradTol: gradTolFor(shapes),
    });
});

test("mulAdd", () => {
  const cases = [
    [[4, 196, 256], [4, 1, 256], [4, 196, 256]],
    [[33, 17], [33, 17], [33, 17]],
    [[3, 1, 5], [1, 4, 1], [5]],
    [[1000003], [1], [1000003]],
  ];
  for (const shapes of cases)
    checkOp(`mulAdd ${JSON.stringify(shapes)}`, (x, y, z) => fd.mulAdd(x, y, z), shapes, { gradTol: gradTolFor(shapes) });
});

test("broadcastTo", () => {
  const cases = [
    [[3, 1, 5], [2, 3, 4, 5]],
    [[1], [1000003]],
    [[7, 1], [7, 9]],
    [[5], [3, 4, 5]],
    [[1, 4, 1], [3, 4, 1000]],
    [[2, 1, 3], [2, 5, 3]],
  ];
  for (const [from, to] of cases)
    checkOp(`broadcastTo ${from} → ${to}`, (x) => fd.broadcastTo(x, to), [from], { gradTol: gradTolFor([from, to]) });
});

test("composite: a broadcast expression and its gradient", () => {
  // Mixed ops whose backward reduces gradients over broadcast dims (sum_to) on the GPU.
  checkOp(
    "x·w + b then gelu",
    (x, w, b) => fd.gelu(fd.add(fd.mul(x, w), b)),
    [[4, 8, 16, 16], [1, 8, 1, 1], [8, 1, 1]],
  );
  checkOp("(a − b)² / c", (a, b, c) => fd.div(fd.square(fd.sub(a, b)), c), [[6, 1, 7], [5, 1], [7]], {
    inputs: (s, i) => (i === 2 ? awayFromZero(s) : normal(s)),
  });
});
