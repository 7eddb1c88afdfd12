// Every differentiable op's gradients against central finite differences on
// fresh random inputs (helpers.gradcheck:
// ⟨∇L, v⟩ vs (L(x+hv) − L(x−hv))/2h along random directions v, L = Σ f(x)·w,
// evaluated in float32 with h = 1e-2). Each case states its tolerance on
// the worst relative error; inputs are kept away from kinks (abs, relu, clamp,
// max/min ties) by more than h so the differences are smooth.
import * as fd from "../../lib";
import { gradcheck, hostRandom, randomTensor } from "../helpers";

type F = (...xs: fd.Tensor[]) => fd.Tensor;
/** [name, tolerance, builder of { f, inputs, wrt? }] */
type Case = [string, number, () => { f: F; xs: fd.Tensor[]; wrt?: number[] }];

// ---- inputs (seeded by a running counter so every case gets fresh values)
let seed = 1000;
const R = (shape: number[], scale = 1, offset = 0) => randomTensor(shape, seed++, scale, offset);
/** Positive values in [lo, hi]. */
const pos = (shape: number[], lo = 0.5, hi = 2) => R(shape, (hi - lo) / 2, (hi + lo) / 2);
/** Values with |x − c| ∈ [gap, gap + spread], both signs. */
function away(shape: number[], c = 0, gap = 0.1, spread = 2): fd.Tensor {
  const r = hostRandom(seed++);
  const n = shape.reduce((a, b) => a * b, 1);
  return fd.tensor(Float32Array.from({ length: n }, () => c + (r() < 0.5 ? -1 : 1) * (gap + spread * r())), shape);
}
/** Distinct values at least 0.05 apart (a shuffled grid): no ties for max/min. */
function distinct(shape: number[]): fd.Tensor {
  const r = hostRandom(seed++);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = Float32Array.from({ length: n }, (_, i) => (i - n / 2) * 0.05);
  for (let i = n - 1; i > 0; --i) {
    const j = Math.floor(r() * (i + 1));
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  return fd.tensor(v, shape);
}
/** Uniform in [lo, hi], at least `gap` from each of `points` (kinks). */
function avoiding(shape: number[], points: number[], gap = 0.1, lo = -2.5, hi = 2.5): fd.Tensor {
  const r = hostRandom(seed++);
  const n = shape.reduce((a, b) => a * b, 1);
  const v = new Float32Array(n);
  for (let i = 0; i < n; ++i) {
    do v[i] = lo + (hi - lo) * r();
    while (points.some((p) => Math.abs(v[i]! - p) < gap));
  }
  return fd.tensor(v, shape);
}
/** A 0/1 constant tensor (for `where`). */
function mask(shape: number[]): fd.Tensor {
  const r = hostRandom(seed++);
  const n = shape.reduce((a, b) => a * b, 1);
  return fd.tensor(Float32Array.from({ length: n }, () => (r() < 0.5 ? 0 : 1)), shape);
}

/** Tolerances on the worst relative error (float32 losses, h = 1e-2): linear and
 * piecewise-linear ops (FD exact up to rounding, observed ≤ 5e-5) and smooth
 * nonlinear ones (truncation O(h²) + rounding, observed ≤ 2e-4). */
const LIN = 5e-4;
const SMOOTH = 1e-3;
const SHAPES = [[7], [3, 5, 11]];
const cases: Case[] = [];
const add = (name: string, tol: number, make: Case[2]) => cases.push([name, tol, make]);

// ---- unary elementwise, on two shapes each
const unary: [string, number, (x: fd.Tensor) => fd.Tensor, (s: number[]) => fd.Tensor][] = [
  ["neg", LIN, fd.neg, (s) => R(s, 2)],
  ["exp", SMOOTH, fd.exp, (s) => R(s, 2)],
  ["log (x ∈ [0.5, 2.5])", SMOOTH, fd.log, (s) => pos(s, 0.5, 2.5)],
  ["sqrt (x ∈ [0.5, 2.5])", SMOOTH, fd.sqrt, (s) => pos(s, 0.5, 2.5)],
  ["rsqrt (x ∈ [0.5, 2.5])", SMOOTH, fd.rsqrt, (s) => pos(s, 0.5, 2.5)],
  ["abs (|x| ≥ 0.1)", LIN, fd.abs, (s) => avoiding(s, [0])],
  ["square", LIN, fd.square, (s) => R(s, 2)],
  ["sigmoid", SMOOTH, fd.sigmoid, (s) => R(s, 4)],
  ["softplus", SMOOTH, fd.softplus, (s) => R(s, 4)],
  ["tanh", SMOOTH, fd.tanh, (s) => R(s, 3)],
  ["relu (|x| ≥ 0.1)", LIN, fd.relu, (s) => avoiding(s, [0])],
  ["silu", SMOOTH, fd.silu, (s) => R(s, 4)],
  ["gelu erf", SMOOTH, (x) => fd.gelu(x), (s) => R(s, 4)],
  ["gelu tanh", SMOOTH, (x) => fd.gelu(x, { approximate: "tanh" }), (s) => R(s, 4)],
  ["clamp(-1, 1.5) away from the bounds", LIN, (x) => fd.clamp(x, -1, 1.5), (s) => avoiding(s, [-1, 1.5])],
  ["pow(x, 2.5) (x > 0)", SMOOTH, (x) => fd.pow(x, 2.5), (s) => pos(s)],
  ["pow(x, 3)", SMOOTH, (x) => fd.pow(x, 3), (s) => R(s, 1.5)],
  ["pow(x, -0.5) (x > 0)", SMOOTH, (x) => fd.pow(x, -0.5), (s) => pos(s)],
  ["pow(2, x)", SMOOTH, (x) => fd.pow(2, x), (s) => R(s, 2)],
  ["affine: 2.5·x − 3", LIN, (x) => fd.sub(fd.mul(x, 2.5), 3), (s) => R(s)],
  ["affine: 2 − x/3", LIN, (x) => fd.sub(2, fd.div(x, 3)), (s) => R(s)],
  ["div(2, x) (|x| ≥ 0.5)", SMOOTH, (x) => fd.div(2, x), (s) => away(s, 0, 0.5, 1.5)],
  ["dropout p=0.3 (fixed seed)", LIN, (x) => fd.dropout(x, 0.3, { seed: 5 }), (s) => R(s)],
];
for (const [name, tol, f, make] of unary)
  for (const s of SHAPES) add(`${name} [${s}]`, tol, () => ({ f, xs: [make(s)] }));

// ---- binary elementwise, same shape and broadcast
/** Two operands drawn from one shuffled grid (values ≥ 0.05 apart): max/min never tie. */
function untied(sa: number[], sb: number[]): fd.Tensor[] {
  const na = sa.reduce((p, q) => p * q, 1);
  const both = distinct([na + sb.reduce((p, q) => p * q, 1)]).dataSync();
  return [fd.tensor(Float32Array.from(both.subarray(0, na)), sa), fd.tensor(Float32Array.from(both.subarray(na)), sb)];
}
const binary: [string, number, F, (sa: number[], sb: number[]) => fd.Tensor[]][] = [
  ["add", LIN, fd.add, (sa, sb) => [R(sa), R(sb)]],
  ["sub", LIN, fd.sub, (sa, sb) => [R(sa), R(sb)]],
  ["mul", LIN, fd.mul, (sa, sb) => [R(sa, 2), R(sb, 2)]],
  ["div (|b| ≥ 0.5)", SMOOTH, fd.div, (sa, sb) => [R(sa, 2), away(sb, 0, 0.5, 1.5)]],
  ["pow (a ∈ [0.5, 2])", SMOOTH, fd.pow, (sa, sb) => [pos(sa), R(sb, 2)]],
  ["maximum (no ties)", LIN, fd.maximum, untied],
  ["minimum (no ties)", LIN, fd.minimum, untied],
];
const BROADCASTS: [number[], number[]][] = [
  [[3, 7], [3, 7]],
  [[2, 3, 4], [3, 1]],
  [[2, 3, 4], [4]],
  [[5, 1], [1, 6]],
  [[1], [2, 5]],
];
for (const [name, tol, f, make] of binary)
  for (const [sa, sb] of BROADCASTS) add(`${name} [${sa}] ∘ [${sb}]`, tol, () => ({ f, xs: make(sa, sb) }));
add("where(cond, a, b) [2,3,4] with a [3,4], b [2,3,4]", LIN, () => ({
  f: (c, a, b) => fd.where(c, a, b), xs: [mask([2, 3, 4]), R([3, 4]), R([2, 3, 4])], wrt: [1, 2],
}));
add("where(cond [3,1], a [7,3,5], b [5])", LIN, () => ({
  f: (c, a, b) => fd.where(c, a, b), xs: [mask([3, 1]), R([7, 3, 5]), R([5])], wrt: [1, 2],
}));

// ---- reductions
const RED_AXES: [string, number | number[] | undefined, boolean][] = [
  ["axis 1", 1, false], ["axis -1 keepdim", -1, true], ["axes [0, 2] keepdim", [0, 2], true],
  ["axes [0, 2]", [0, 2], false], ["all", undefined, false], ["all keepdim", [0, 1, 2], true],
];
for (const [name, red] of [["sum", fd.sum], ["mean", fd.mean], ["max", fd.max], ["min", fd.min]] as const)
  for (const [label, axes, keep] of RED_AXES)
    for (const s of [[3, 5, 7], [2, 9, 1]])
      add(`${name} ${label} [${s}]`, LIN, () => ({ f: (x) => red(x, axes, keep), xs: [distinct(s)] }));
for (const correction of [0, 1])
  for (const [label, axes, keep] of RED_AXES.slice(0, 5))
    add(`variance (correction ${correction}) ${label} [3,5,7]`, SMOOTH, () => ({
      f: (x) => fd.variance(x, axes, { correction, keepdim: keep }), xs: [R([3, 5, 7])],
    }));
for (const s of [[7], [3, 5, 11]]) add(`norm [${s}]`, SMOOTH, () => ({ f: fd.norm, xs: [R(s)] }));
add("mseLoss mean [3,7]", SMOOTH, () => ({ f: (a, b) => fd.mseLoss(a, b), xs: [R([3, 7]), R([3, 7])] }));
add("mseLoss sum [2,3,5]", SMOOTH, () => ({ f: (a, b) => fd.mseLoss(a, b, { reduction: "sum" }), xs: [R([2, 3, 5]), R([2, 3, 5])] }));
add("mseLoss none [2,3,5]", SMOOTH, () => ({ f: (a, b) => fd.mseLoss(a, b, { reduction: "none" }), xs: [R([2, 3, 5]), R([2, 3, 5])] }));

// ---- shape ops (linear: exact up to float32 rounding)
const shape: [string, F, number[][]][] = [
  ["reshape [2,3,5] → [5,6]", (x) => fd.reshape(x, [5, 6]), [[2, 3, 5]]],
  ["reshape [2,3,5] → [-1, 3]", (x) => fd.reshape(x, [-1, 3]), [[2, 3, 5]]],
  ["flatten(1) [2,3,5,3]", (x) => fd.flatten(x, 1), [[2, 3, 5, 3]]],
  ["flatten(0, 1) [2,3,5]", (x) => fd.flatten(x, 0, 1), [[2, 3, 5]]],
  ["permute [2,0,1] of [2,3,5]", (x) => fd.permute(x, [2, 0, 1]), [[2, 3, 5]]],
  ["reshape of a permuted [3,5,7]", (x) => fd.reshape(fd.permute(x, [1, 2, 0]), [7, 15]), [[3, 5, 7]]],
  ["transpose [3,5,7]", (x) => fd.transpose(x), [[3, 5, 7]]],
  ["transpose(0, 2) [3,5,7]", (x) => fd.transpose(x, 0, 2), [[3, 5, 7]]],
  ["concat axis 0 of [2,5],[1,5],[3,5]", (a, b, c) => fd.concat([a, b, c], 0), [[2, 5], [1, 5], [3, 5]]],
  ["concat axis 1 of [2,1,3],[2,4,3],[2,2,3]", (a, b, c) => fd.concat([a, b, c], 1), [[2, 1, 3], [2, 4, 3], [2, 2, 3]]],
  ["concat axis -1 of [3,2],[3,5],[3,1]", (a, b, c) => fd.concat([a, b, c], -1), [[3, 2], [3, 5], [3, 1]]],
  ["slice axis 1 [1, 4) of [3,7,5]", (x) => fd.slice(x, 1, 1, 4), [[3, 7, 5]]],
  ["slice axis -1 [-4, -1) of [3,7,5]", (x) => fd.slice(x, -1, -4, -1), [[3, 7, 5]]],
  ["slice axis 0 [-2, end) of [5,3]", (x) => fd.slice(x, 0, -2), [[5, 3]]],
  ["split sizes [1,4,2] axis 1, reassembled reversed", (x) => fd.concat(fd.split(x, [1, 4, 2], 1).reverse(), 1), [[3, 7, 2]]],
  ["split into 3 equal axis -1, pieces scaled", (x) => fd.concat(fd.split(x, 3, -1).map((p, i) => fd.mul(p, i + 1)), 0), [[2, 9]]],
  ["broadcastTo [3,1] → [2,3,5]", (x) => fd.broadcastTo(x, [2, 3, 5]), [[3, 1]]],
  ["broadcastTo [5] → [4,3,5]", (x) => fd.broadcastTo(x, [4, 3, 5]), [[5]]],
  ["pad last axis [1, 2] value 0.5", (x) => fd.pad(x, [1, 2], 0.5), [[3, 5]]],
  ["pad [1,0,2,1] of [2,3,5,7]", (x) => fd.pad(x, [1, 0, 2, 1]), [[2, 3, 5, 7]]],
];
for (const [name, f, shapes] of shape) add(name, LIN, () => ({ f, xs: shapes.map((s) => R(s)) }));

// ---- linear algebra
const mm: [string, number[], number[]][] = [
  ["2-D [7,5]@[5,3]", [7, 5], [5, 3]],
  ["2-D [1,9]@[9,1]", [1, 9], [9, 1]],
  ["batched [3,4,5]@[3,5,6]", [3, 4, 5], [3, 5, 6]],
  ["broadcast batch [2,1,4,5]@[3,5,6]", [2, 1, 4, 5], [3, 5, 6]],
  ["[B,M,K]@[K,N] [3,4,5]@[5,7]", [3, 4, 5], [5, 7]],
];
for (const [name, sa, sb] of mm) add(`matmul ${name}`, LIN, () => ({ f: fd.matmul, xs: [R(sa), R(sb)] }));
add("matmul of transposed views [5,7]ᵀ@[3,5]ᵀ", LIN, () => ({
  f: (a, b) => fd.matmul(fd.transpose(a), fd.transpose(b)), xs: [R([5, 7]), R([3, 5])],
}));
add("linear 2-D with bias x[5,7] w[3,7]", LIN, () => ({ f: (x, w, b) => fd.linear(x, w, b), xs: [R([5, 7]), R([3, 7]), R([3])] }));
add("linear 2-D without bias x[5,7] w[3,7]", LIN, () => ({ f: (x, w) => fd.linear(x, w), xs: [R([5, 7]), R([3, 7])] }));
add("linear 3-D with bias x[2,5,7] w[4,7]", LIN, () => ({ f: (x, w, b) => fd.linear(x, w, b), xs: [R([2, 5, 7]), R([4, 7]), R([4])] }));
add("linear 3-D without bias x[2,3,9] w[1,9]", LIN, () => ({ f: (x, w) => fd.linear(x, w), xs: [R([2, 3, 9]), R([1, 9])] }));

// ---- convolution, pooling, resampling
const conv: [string, number[], number[], boolean, fd.Conv2dOptions][] = [
  ["k3 pad1 7x9 bias", [2, 4, 7, 9], [6, 4, 3, 3], true, { padding: 1 }],
  ["k3 pad1 7x9 no bias", [2, 4, 7, 9], [6, 4, 3, 3], false, { padding: 1 }],
  ["k3 stride2 pad1 7x9", [2, 3, 7, 9], [5, 3, 3, 3], true, { stride: 2, padding: 1 }],
  ["1x1 5x7", [2, 4, 5, 7], [3, 4, 1, 1], true, {}],
  ["k3 dilation2 pad2 7x9", [1, 3, 7, 9], [4, 3, 3, 3], true, { padding: 2, dilation: 2 }],
  ["k3 groups2 pad1 7x9", [2, 4, 7, 9], [6, 2, 3, 3], true, { padding: 1, groups: 2 }],
  ["k[3,1] stride[2,1] pad[1,0] no bias", [1, 2, 7, 5], [3, 2, 3, 1], false, { stride: [2, 1], padding: [1, 0] }],
];
for (const [name, sx, sw, bias, opts] of conv)
  add(`conv2d ${name}`, LIN, () => ({
    f: (x, w, b) => fd.conv2d(x, w, b ?? null, opts),
    xs: bias ? [R(sx), R(sw, 0.5), R([sw[0]!])] : [R(sx), R(sw, 0.5)],
  }));
add("upsampleNearest2d ×2 [2,3,4,5]", LIN, () => ({ f: (x) => fd.upsampleNearest2d(x, 2), xs: [R([2, 3, 4, 5])] }));
add("upsampleNearest2d ×[2,3] [1,2,3,5]", LIN, () => ({ f: (x) => fd.upsampleNearest2d(x, [2, 3]), xs: [R([1, 2, 3, 5])] }));
add("avgPool2d k2 [2,3,6,8]", LIN, () => ({ f: (x) => fd.avgPool2d(x, 2), xs: [R([2, 3, 6, 8])] }));
add("avgPool2d k3 s2 [1,2,7,9]", LIN, () => ({ f: (x) => fd.avgPool2d(x, 3, 2), xs: [R([1, 2, 7, 9])] }));
for (const mode of ["bilinear", "bicubic"] as const) {
  add(`resize ${mode} 5x7 → 8x11`, LIN, () => ({ f: (x) => fd.resize(x, [8, 11], { mode }), xs: [R([2, 3, 5, 7])] }));
  add(`resize ${mode} 12x12 → 5x5`, LIN, () => ({ f: (x) => fd.resize(x, [5, 5], { mode }), xs: [R([1, 2, 12, 12])] }));
  add(`resize ${mode} 4x6 → 4x9`, LIN, () => ({ f: (x) => fd.resize(x, [4, 9], { mode }), xs: [R([1, 2, 4, 6])] }));
}

// ---- normalization, softmax, attention
for (const [label, affine, silu] of [["affine", true, false], ["no affine", false, false], ["affine + silu", true, true], ["no affine + silu", false, true]] as const)
  for (const [sx, g] of [[[2, 6, 5, 3], 3], [[1, 4, 7], 2]] as const)
    add(`groupNorm ${label} [${sx}] G=${g}`, SMOOTH, () => ({
      f: (x, w, b) => fd.groupNorm(x, g, w ?? null, b ?? null, { silu }),
      xs: affine ? [R([...sx], 2, 0.5), R([sx[1]], 1, 1), R([sx[1]])] : [R([...sx], 2, 0.5)],
    }));
for (const affine of [true, false])
  for (const s of [[5, 7], [2, 3, 16]])
    add(`layerNorm ${affine ? "affine" : "no affine"} [${s}]`, SMOOTH, () => ({
      f: (x, w, b) => fd.layerNorm(x, w ?? null, b ?? null),
      xs: affine ? [R(s, 2, 0.3), R([s.at(-1)!], 1, 1), R([s.at(-1)!])] : [R(s, 2, 0.3)],
    }));
for (const [name, op] of [["softmax", fd.softmax], ["logSoftmax", fd.logSoftmax]] as const) {
  add(`${name} last axis [3,7]`, SMOOTH, () => ({ f: (x) => op(x, -1), xs: [R([3, 7], 3)] }));
  add(`${name} axis 1 [2,5,3]`, SMOOTH, () => ({ f: (x) => op(x, 1), xs: [R([2, 5, 3], 3)] }));
  add(`${name} axis 0 [4,3]`, SMOOTH, () => ({ f: (x) => op(x, 0), xs: [R([4, 3], 3)] }));
}
add("mulAdd x [2,3,4] · y [2,1,4] + z [4]", SMOOTH, () => ({
  f: (x, y, z) => fd.mulAdd(x, y, z), xs: [R([2, 3, 4]), R([2, 1, 4]), R([4])],
}));
add("layerNorm per-sample weight and bias x [2,3,5] w,b [2,5]", SMOOTH, () => ({
  f: (x, w, b) => fd.layerNorm(x, w, b), xs: [R([2, 3, 5], 2), R([2, 5]), R([2, 5])],
}));
add("attention self q,k,v [1,2,7,8]", SMOOTH, () => ({ f: (q, k, v) => fd.attention(q, k, v), xs: [R([1, 2, 7, 8]), R([1, 2, 7, 8]), R([1, 2, 7, 8])] }));
add("attention cross q [2,2,5,8] k [2,2,9,8] v [2,2,9,12]", SMOOTH, () => ({
  f: (q, k, v) => fd.attention(q, k, v), xs: [R([2, 2, 5, 8], 2), R([2, 2, 9, 8], 2), R([2, 2, 9, 12])],
}));
add("attention tokens-major q [2,5,2,8] k [2,9,2,8] v [2,9,2,12]", SMOOTH, () => ({
  f: (q, k, v) => fd.attention(q, k, v, { layout: "bnhd" }), xs: [R([2, 5, 2, 8], 2), R([2, 9, 2, 8], 2), R([2, 9, 2, 12])],
}));
add("attention scale 0.7 q [1,1,1,3] k,v [1,1,4,3]", SMOOTH, () => ({
  f: (q, k, v) => fd.attention(q, k, v, { scale: 0.7 }), xs: [R([1, 1, 1, 3]), R([1, 1, 4, 3]), R([1, 1, 4, 3])],
}));

// ---- embeddings
for (const dim of [8, 7])
  for (const flipSinToCos of [false, true])
    add(`timestepEmbedding dim ${dim} flipSinToCos ${flipSinToCos} (∂/∂t)`, SMOOTH, () => ({
      f: (t) => fd.timestepEmbedding(t, dim, { flipSinToCos }), xs: [pos([5], 0, 5)],
    }));
add("timestepEmbedding dim 6 shift 0, scale 2, maxPeriod 100 (∂/∂t)", SMOOTH, () => ({
  f: (t) => fd.timestepEmbedding(t, 6, { downscaleFreqShift: 0, scale: 2, maxPeriod: 100 }), xs: [pos([4], 0, 2.5)],
}));
add("embedding weight [5,3] labels [0,2,2,4,0,2] (∂/∂weight)", LIN, () => ({
  f: (w) => fd.embedding(w, [0, 2, 2, 4, 0, 2]), xs: [R([5, 3])],
}));

describe("gradients vs central differences (h = 1e-2, 4 directions)", () => {
  test.each(cases)("%s: rel. err ≤ %s", (_name, tol, make) => {
    fd.scope(() => {
      const { f, xs, wrt } = make();
      expect(gradcheck(f, xs, { h: 1e-2, directions: 4, wrt })).toBeLessThan(tol);
    });
  });
});

describe("dropout gradient is the mask · 1/(1 − p)", () => {
  test.each([[0.3, [7]], [0.5, [3, 33]], [0.1, [1001]]] as const)("p = %s, shape %j: zeros where the forward is 0, else 1/(1 − p)", (p, s) => {
    fd.scope(() => {
      const x = away([...s], 0, 0.1, 1).requireGrad(); // |x| ≥ 0.1: a zero output means dropped
      const y = fd.dropout(x, p, { seed: 11 });
      fd.sum(y).backward();
      const [yv, xv, g] = [y.dataSync(), x.dataSync(), x.grad!.dataSync()];
      const bad: string[] = [];
      let dropped = 0;
      for (let i = 0; i < yv.length; ++i) {
        const kept = yv[i] !== 0;
        if (!kept) dropped++;
        const want = kept ? 1 / (1 - p) : 0;
        if (Math.abs(g[i]! - want) > 1e-6 * want || (kept && Math.abs(yv[i]! - xv[i]! * want) > 1e-6)) bad.push(`${i}: x ${xv[i]} y ${yv[i]} grad ${g[i]}`);
      }
      expect(bad).toEqual([]);
      if (yv.length > 100) expect(Math.abs(dropped / yv.length - p)).toBeLessThan(0.05);
      else expect(dropped).toBeGreaterThan(0);
    });
  });
});
