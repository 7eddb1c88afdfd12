// Every SIMD / threaded kernel against the scalar reference: each op runs forward
// and backward (gradients of Σ out·w w.r.t. every input) on the same fresh random
// inputs under setIsa("scalar") and under each SIMD ISA, and the results are
// compared. Non-finite values (NaN, ±Inf) must sit at exactly the same positions.
// Plus: bit-exact determinism across thread counts and repeated runs.
import * as fd from "../../lib";

import { hostRandom as rng, hostValues as values, maxRelErr, randomTensor, engineSettings } from "../helpers";

const { abs, max } = Math; // local aliases: global lookups are slow in jest's vm context

const { best: BEST, isas: ISAS, threads: THREADS } = engineSettings();

// Tolerances (see the measures below).
const TOL_GEMM = 1e-5; // matmul, linear, conv2d, attention, norms, softmax, reductions, optimizers (maxRelErr)
const TOL_ELEM = 4e-6; // arithmetic elementwise ops (per element, relative to max(1, |ref|))
const TOL_TRANS = 2e-6; // transcendental SIMD approximations (per element, relative to max(1, |ref|))
// Norms over one element (layerNorm D=1, groupNorm with 1 value per group): the exact
// input gradient is 0; the scalar kernel returns exactly 0, the SIMD kernels a
// rounding residue (measured ≤ 1.6e-5) amplified by rstd = 1/√eps ≈ 316.
const TOL_SINGLETON = 5e-5;

type Isa = "scalar" | "avx2" | "avx512";
type Make = () => fd.Tensor[];
type Op = (...xs: fd.Tensor[]) => fd.Tensor;

/** Under `isa`: [output, ∂(Σ out·w)/∂x for each x in `wrt`] (w fixed random). */
function run(isa: Isa, make: Make, f: Op, wrt?: number[]): Float32Array[] {
  fd.setIsa(isa);
  return fd.scope(() => {
    const xs = make();
    const need = wrt ?? xs.map((_, i) => i);
    for (const i of need) xs[i]!.requiresGrad = true;
    const y = f(...xs);
    const out = [y.dataSync()];
    if (need.length > 0) {
      fd.sum(fd.mul(y, randomTensor(y.shape, 99))).backward();
      for (const i of need) out.push(xs[i]!.grad!.dataSync());
    }
    return out;
  });
}

/** max |a−b| / max(1, |b|) per element (for elementwise ops whose outputs span e.g. e^±30). */
function elemRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; ++i) m = max(m, abs(a[i]! - b[i]!) / max(1, abs(b[i]!)));
  return m;
}

/**
 * Problems of `got` vs `ref` as readable strings (empty when they agree): length,
 * any non-finite value where the other has something else, and the error over
 * the finite values above `tol`.
 */
function diff(label: string, got: Float32Array[], ref: Float32Array[], tol: number, elementwise = false): string[] {
  const problems: string[] = [];
  ref.forEach((r, k) => {
    const g = got[k]!;
    const what = `${label} ${k === 0 ? "output" : `grad[${k - 1}]`}`;
    if (g.length !== r.length) return void problems.push(`${what}: length ${g.length} vs ${r.length}`);
    const fg: number[] = [];
    const fr: number[] = [];
    for (let i = 0; i < r.length; ++i) {
      const a = g[i]!;
      const b = r[i]!;
      if (a - a === 0 && b - b === 0) {
        fg.push(a);
        fr.push(b);
      } else if (a !== b && (a === a || b === b)) {
        problems.push(`${what}[${i}]: ${a} vs scalar ${b}`);
        if (problems.length > 8) return;
      }
    }
    const err = elementwise ? elemRelErr(fg, fr) : maxRelErr(fg, fr);
    if (!(err <= tol)) problems.push(`${what}: error ${err.toExponential(2)} > ${tol}`);
  });
  return problems;
}

/** Runs under scalar and `isa` and returns the problems. */
function compare(isa: Isa, label: string, make: Make, f: Op, tol: number, opts: { wrt?: number[]; elementwise?: boolean } = {}): string[] {
  const ref = run("scalar", make, f, opts.wrt);
  const got = run(isa, make, f, opts.wrt);
  return diff(label, got, ref, tol, opts.elementwise);
}

// ---------------------------------------------------------------- inputs
/** Uniform [-4, 4] with every 11th value from a list of large / special magnitudes. */
function unaryValues(n: number, seed: number, special: boolean): Float32Array {
  const r = rng(seed);
  const big = [30, -30, 100, -100, 0, 20, -20, 88, -88, 15, -15, 1e-3, -1e-3, 9, -9, 50, -50];
  const nonfinite = [NaN, Infinity, -Infinity];
  return Float32Array.from({ length: n }, (_, i) => {
    if (special && i % 7 === 3) return nonfinite[(i / 7) % 3 | 0]!;
    if (i % 11 === 5) return big[(i / 11) % big.length | 0]!;
    return 8 * r() - 4;
  });
}
const T = (v: Float32Array, shape: number[] = [v.length]) => fd.tensor(v, shape);
/** |x| except every 13th value (negative inputs of log/sqrt/… give NaN in both). */
const mostlyPositive = (v: Float32Array) => v.map((x, i) => (i % 13 === 6 ? -abs(x) : abs(x)));

const SIZES = [1, 7, 15, 16, 17, 33, 129, 1000, 100003];
const UNARY: [string, Op, number, { positive?: boolean; noGrad?: boolean }?][] = [
  ["neg", fd.neg, TOL_ELEM],
  ["exp", fd.exp, TOL_TRANS],
  ["log", fd.log, TOL_TRANS, { positive: true }],
  ["sqrt", fd.sqrt, TOL_TRANS, { positive: true }],
  ["rsqrt", fd.rsqrt, TOL_TRANS, { positive: true }],
  ["abs", fd.abs, TOL_ELEM],
  ["square", fd.square, TOL_ELEM],
  ["sign", fd.sign, TOL_ELEM, { noGrad: true }],
  ["sigmoid", fd.sigmoid, TOL_TRANS],
  ["softplus", fd.softplus, TOL_TRANS],
  ["tanh", fd.tanh, TOL_TRANS],
  ["relu", fd.relu, TOL_ELEM],
  ["silu", fd.silu, TOL_TRANS],
  ["gelu erf", (x) => fd.gelu(x), TOL_TRANS],
  ["gelu tanh", (x) => fd.gelu(x, { approximate: "tanh" }), TOL_TRANS],
  ["clamp(-2, 3)", (x) => fd.clamp(x, -2, 3), TOL_ELEM],
  ["affine 1.5x − 0.25", (x) => fd.add(fd.mul(x, 1.5), -0.25), TOL_ELEM],
  ["pow(x, 2.5)", (x) => fd.pow(x, 2.5), TOL_TRANS, { positive: true }],
  ["pow(x, 3)", (x) => fd.pow(x, 3), TOL_TRANS],
  ["pow(x, -0.5)", (x) => fd.pow(x, -0.5), TOL_TRANS, { positive: true }],
  ["isnan", fd.isnan, 0, { noGrad: true }],
  ["nanToNum", (x) => fd.nanToNum(x), 0],
  ["nanToNum(nan 1, posinf 7)", (x) => fd.nanToNum(x, { nan: 1, posinf: 7 }), 0],
];

const BINARY: [string, Op][] = [
  ["add", fd.add], ["sub", fd.sub], ["mul", fd.mul], ["div", fd.div],
  ["pow", fd.pow], ["maximum", fd.maximum], ["minimum", fd.minimum],
];
const BROADCAST: [string, number[], number[]][] = [
  ["same [100003]", [100003], [100003]],
  ["same [1]", [1], [1]],
  ["same [7, 17]", [7, 17], [7, 17]],
  ["scalar right [1000]·[1]", [1000], [1]],
  ["scalar left [1]·[33, 129]", [1], [33, 129]],
  ["row [33, 129]·[129]", [33, 129], [129]],
  ["row [7, 1000]·[1, 1000]", [7, 1000], [1, 1000]],
  ["column [129, 33]·[129, 1]", [129, 33], [129, 1]],
  ["column [3, 40000]·[3, 1]", [3, 40000], [3, 1]],
  ["outer [129, 1]·[1, 17]", [129, 1], [1, 17]],
];
/** Binary inputs: a, b ∈ [-3, 3]; pow gets a > 0 (one NaN-producing negative in 13), div |b| ≥ 0.25. */
function binaryInputs(op: string, sa: number[], sb: number[], seed: number): Make {
  const n = (s: number[]) => s.reduce((p, q) => p * q, 1);
  return () => {
    const ra = rng(seed);
    const rb = rng(seed + 1);
    let a = Float32Array.from({ length: n(sa) }, () => 6 * ra() - 3);
    let b = Float32Array.from({ length: n(sb) }, () => 6 * rb() - 3);
    if (op === "pow") a = mostlyPositive(a);
    if (op === "div") b = b.map((x) => (x < 0 ? x - 0.25 : x + 0.25));
    if (op === "maximum" || op === "minimum") b.forEach((_, i) => { if (i % 9 === 4 && n(sa) === n(sb)) b[i] = a[i]!; }); // ties
    return [T(a, sa), T(b, sb)];
  };
}

// ---------------------------------------------------------------- structured ops
const R = (shape: number[], seed: number, scale = 1, offset = 0) => () => randomTensor(shape, seed, scale, offset);
const inputs = (...ms: (() => fd.Tensor)[]): Make => () => ms.map((m) => m());

const MATMUL: [number, number, number][] = [
  [1, 1, 1], [129, 33, 7], [7, 129, 33], [33, 1, 129], [1, 129, 7], [129, 7, 1],
  [7, 7, 7], [33, 33, 33], [129, 129, 129], [1, 33, 129], [33, 7, 1], [7, 1, 33],
];
const CONV: { x: number[]; w: number[]; bias: boolean; o: fd.Conv2dOptions }[] = [
  { x: [1, 1, 1, 1], w: [1, 1, 1, 1], bias: true, o: {} },
  { x: [2, 3, 7, 9], w: [16, 3, 3, 3], bias: true, o: { padding: 1 } },
  { x: [1, 16, 16, 16], w: [33, 16, 3, 3], bias: true, o: { stride: 2, padding: 1 } },
  { x: [2, 33, 9, 7], w: [3, 33, 5, 5], bias: false, o: { padding: 2 } },
  { x: [1, 16, 9, 9], w: [16, 16, 3, 3], bias: true, o: { padding: 2, dilation: 2 } },
  { x: [2, 16, 7, 7], w: [16, 8, 3, 3], bias: true, o: { padding: 1, groups: 2 } },
  { x: [1, 16, 16, 16], w: [16, 1, 3, 3], bias: false, o: { padding: 1, groups: 16 } },
  { x: [1, 33, 7, 9], w: [33, 11, 1, 1], bias: true, o: { groups: 3 } },
  { x: [1, 3, 16, 16], w: [16, 3, 5, 5], bias: true, o: { stride: 2 } },
  { x: [2, 1, 7, 16], w: [3, 1, 3, 1], bias: true, o: { stride: [2, 1], padding: [1, 0] } },
  { x: [1, 16, 1, 1], w: [33, 16, 3, 3], bias: true, o: { padding: 1 } },
  { x: [1, 64, 16, 16], w: [64, 64, 3, 3], bias: true, o: { padding: 1 } },
];
// [B, H, Nq, Nk, D, Dv]
const ATTENTION: number[][] = [
  [1, 1, 1, 1, 8, 8], [2, 3, 7, 7, 16, 16], [1, 2, 33, 33, 40, 40], [1, 2, 65, 65, 64, 64], [1, 1, 129, 129, 8, 8],
  [2, 1, 129, 129, 64, 64], [1, 2, 7, 129, 40, 40], [1, 2, 129, 1, 16, 16], [2, 2, 33, 65, 64, 24], [1, 1, 1, 129, 16, 40], [1, 2, 196, 100, 32, 32],
];

type Case = [string, Make, Op, number?];
const STRUCTURED: Case[] = [
  ...MATMUL.map(([m, k, n], i): Case => [`matmul ${m}×${k}×${n} (M×K×N)`, inputs(R([m, k], 10 + i), R([k, n], 50 + i)), fd.matmul]),
  ["matmul batched [3,33,7]@[3,7,129]", inputs(R([3, 33, 7], 1), R([3, 7, 129], 2)), fd.matmul],
  ["matmul broadcast [2,1,7,33]@[3,33,9]", inputs(R([2, 1, 7, 33], 3), R([3, 33, 9], 4)), fd.matmul],
  ["matmul [4,17,33]@[33,65]", inputs(R([4, 17, 33], 5), R([33, 65], 6)), fd.matmul],
  ["matmul transposed views [33,7]ᵀ@[129,33]ᵀ", inputs(R([33, 7], 7), R([129, 33], 8)), (a, b) => fd.matmul(fd.transpose(a), fd.transpose(b))],
  ["linear x[129,33] w[7,33] b[7]", inputs(R([129, 33], 9), R([7, 33], 10), R([7], 11)), (x, w, b) => fd.linear(x, w, b)],
  ["linear x[2,7,129] w[33,129]", inputs(R([2, 7, 129], 12), R([33, 129], 13)), (x, w) => fd.linear(x, w)],
  ["linear x[1,1] w[1,1] b[1]", inputs(R([1, 1], 14), R([1, 1], 15), R([1], 16)), (x, w, b) => fd.linear(x, w, b)],
  ["linear x[33,1000] w[129,1000] b[129]", inputs(R([33, 1000], 17), R([129, 1000], 18, 0.1), R([129], 19)), (x, w, b) => fd.linear(x, w, b)],
  ...CONV.map(({ x, w, bias, o }, i): Case => [
    `conv2d x[${x}] w[${w}] ${bias ? "bias " : ""}${JSON.stringify(o)}`,
    inputs(R(x, 100 + i), R(w, 200 + i, 0.3), ...(bias ? [R([w[0]!], 300 + i)] : [])),
    (xx, ww, bb) => fd.conv2d(xx, ww, bb ?? null, o),
  ]),
  ...ATTENTION.map(([b, h, nq, nk, d, dv], i): Case => [
    `attention B${b} H${h} Nq${nq} Nk${nk} D${d} Dv${dv}`,
    inputs(R([b!, h!, nq!, d!], 400 + i, 2), R([b!, h!, nk!, d!], 500 + i, 2), R([b!, h!, nk!, dv!], 600 + i)),
    (q, k, v) => fd.attention(q, k, v),
  ]),
  ...ATTENTION.filter((_, i) => i % 3 === 1).map(([b, h, nq, nk, d, dv], i): Case => [
    `attention tokens-major B${b} Nq${nq} Nk${nk} H${h} D${d} Dv${dv}`,
    inputs(R([b!, nq!, h!, d!], 430 + i, 2), R([b!, nk!, h!, d!], 530 + i, 2), R([b!, nk!, h!, dv!], 630 + i)),
    (q, k, v) => fd.attention(q, k, v, { layout: "bnhd" }),
  ]),
  ...([[16, 64, 28, 28, 32], [3, 6, 7, 5, 3], [2, 33, 9, 1, 11], [1, 1, 1, 1, 1]] as const).flatMap(([n, c, hh, ww, g], i) =>
    [false, true].flatMap((silu) => [true, false].map((affine): Case => [
      `groupNorm N${n} C${c} ${hh}x${ww} G${g} silu ${silu} affine ${affine}`,
      inputs(R([n, c, hh, ww], 700 + i, 2, 0.5), ...(affine ? [R([c], 710 + i, 0.5, 1), R([c], 720 + i)] : [])),
      (x, wt, bs) => fd.groupNorm(x, g, wt ?? null, bs ?? null, { silu }),
      c / g === 1 && hh * ww === 1 ? TOL_SINGLETON : TOL_GEMM,
    ])),
  ),
  ...([[7, 33], [129, 1], [5, 256], [3, 1000]] as const).flatMap(([m, d], i) => [true, false].map((affine): Case => [
    `layerNorm M${m} D${d} affine ${affine}`,
    inputs(R([m, d], 800 + i, 2, 0.3), ...(affine ? [R([d], 810 + i, 0.5, 1), R([d], 820 + i)] : [])),
    (x, wt, bs) => fd.layerNorm(x, wt ?? null, bs ?? null),
    d === 1 ? TOL_SINGLETON : TOL_GEMM,
  ])),
  ...([[4, 196, 256], [3, 7, 33], [2, 1, 5]] as const).flatMap(([b, n, d], i) => [true, false].map((bias): Case => [
    `layerNorm per-sample affine x[${b},${n},${d}] weight [${b},${d}]${bias ? " bias" : ""}`,
    inputs(R([b, n, d], 830 + i, 2, 0.3), R([b, d], 840 + i, 0.5, 1), ...(bias ? [R([b, d], 850 + i)] : [])),
    (x, wt, bs) => fd.layerNorm(x, wt, bs ?? null),
  ])),
  ...([
    [[4, 196, 256], [4, 1, 256], [4, 196, 256]], // DiT's gated residual: branch · gate[b] + h
    [[100003], [100003], [100003]],
    [[7, 33], [1], [33]],
    [[3, 1, 129], [1, 5, 1], [129]],
  ] as const).map(([sx, sy, sz], i): Case => [
    `mulAdd [${sx}]·[${sy}] + [${sz}]`,
    inputs(R([...sx], 860 + i), R([...sy], 870 + i), R([...sz], 880 + i)),
    (x, y, z) => fd.mulAdd(x, y, z),
    TOL_GEMM, // the gradients of broadcast operands are sums
  ]),
  ...([1, 19, 256, 1000] as const).flatMap((d, i) => [
    [`softmax M7 D${d}`, inputs(R([7, d], 900 + i, 5)), (x: fd.Tensor) => fd.softmax(x)] as Case,
    [`logSoftmax M7 D${d}`, inputs(R([7, d], 910 + i, 5)), (x: fd.Tensor) => fd.logSoftmax(x)] as Case,
  ]),
  ["softmax axis 0 [129, 33]", inputs(R([129, 33], 920, 5)), (x) => fd.softmax(x, 0)],
  ["softmax with ±30 logits [33, 129]", inputs(R([33, 129], 921, 30)), (x) => fd.softmax(x)],
  ...(["sum", "mean", "max", "min"] as const).flatMap((name): Case[] => [
    [`${name} long rows [3, 100003] axis 1`, inputs(R([3, 100003], 950)), (x) => fd[name](x, 1)],
    [`${name} columns [100003, 3] axis 0`, inputs(R([100003, 3], 951)), (x) => fd[name](x, 0)],
    [`${name} all [100003]`, inputs(R([100003], 952)), (x) => fd[name](x)],
    [`${name} middle axis [7, 1000, 33] keepdim`, inputs(R([7, 1000, 33], 953)), (x) => fd[name](x, 1, true)],
  ]),
  ["variance [129, 1000] axis 1", inputs(R([129, 1000], 960, 1, 3)), (x) => fd.variance(x, 1)],
  ["norm [100003]", inputs(R([100003], 961)), fd.norm],
  ["mseLoss mean [100003]", inputs(R([100003], 962), R([100003], 963)), (a, b) => fd.mseLoss(a, b)],
];

// ---------------------------------------------------------------- tests
// On a CPU without AVX2 only the scalar reference exists: say so, don't skip silently.
if (ISAS.length === 0)
  test("no SIMD ISA on this CPU: the scalar reference is the only kernel set", () => expect(BEST).toBe("scalar"));
else describe.each(ISAS)("%s vs scalar", (isa) => {
  describe(`unary ops at n ∈ {${SIZES}} with ±30/±100 inputs (forward and backward)`, () => {
    test.each(UNARY.map((u) => [u[0], u] as const))("%s", (name, [, f, tol, o]) => {
      const problems: string[] = [];
      for (const n of SIZES) {
        const v = unaryValues(n, n, false);
        const make = () => [T(o?.positive ? mostlyPositive(v) : v)];
        problems.push(...compare(isa, `${name} n=${n}`, make, f, tol, { wrt: o?.noGrad ? [] : [0], elementwise: true }));
      }
      expect(problems).toEqual([]);
    });
  });

  describe("unary ops with NaN and ±Inf inputs: identical non-finite positions", () => {
    test.each(UNARY.map((u) => [u[0], u] as const))("%s", (name, [, f, tol, o]) => {
      const problems: string[] = [];
      for (const n of [17, 1000, 100003]) {
        const v = unaryValues(n, n + 1, true);
        const make = () => [T(o?.positive ? mostlyPositive(v) : v)];
        problems.push(...compare(isa, `${name} n=${n}`, make, f, tol, { wrt: o?.noGrad ? [] : [0], elementwise: true }));
      }
      expect(problems).toEqual([]);
    });
  });

  describe(`binary ops, broadcast patterns (per element ≤ ${TOL_ELEM}; pow ≤ ${TOL_TRANS * 2})`, () => {
    test.each(BINARY)("%s", (name, f) => {
      const problems: string[] = [];
      BROADCAST.forEach(([label, sa, sb], i) => {
        problems.push(...compare(isa, `${name} ${label}`, binaryInputs(name, sa, sb, 31 * i + 1), f, name === "pow" ? TOL_TRANS * 2 : TOL_ELEM, { elementwise: true }));
      });
      expect(problems).toEqual([]);
    });
    test("binary ops with NaN operands", () => {
      const make = () => [T(unaryValues(1000, 3, true)), T(unaryValues(1000, 4, true).reverse())];
      const problems = BINARY.flatMap(([name, f]) => compare(isa, `${name} NaN`, make, f, TOL_TRANS * 2, { elementwise: true }));
      expect(problems).toEqual([]);
    });
    test("where(cond, a, b) with broadcasting", () => {
      const cond = () => T(Float32Array.from({ length: 129 }, (_, i) => i % 3), [129, 1]);
      expect(compare(isa, "where", inputs(cond, R([129, 33], 5), R([33], 6)), (c, a, b) => fd.where(c, a, b), TOL_ELEM, { wrt: [1, 2] })).toEqual([]);
    });
  });

  describe(`structured ops (maxRelErr ≤ ${TOL_GEMM}, forward and backward)`, () => {
    test.each(STRUCTURED.map((c) => [c[0], c] as const))("%s", (label, [, make, f, tol]) => {
      expect(compare(isa, label, make, f, tol ?? TOL_GEMM)).toEqual([]);
    });
  });

  describe(`optimizers (params, states and stats after 3 steps, maxRelErr ≤ ${TOL_GEMM})`, () => {
    const SHAPES = [[1], [7], [33, 5], [129], [1003], [16, 3, 3, 3]];
    type Built = { opt: fd.Adam | fd.SGD; state: () => fd.Tensor[] };
    const adam = (o: fd.AdamOptions, W: typeof fd.Adam = fd.Adam) => (ps: fd.Tensor[]): Built => {
      const opt = new W(ps, o);
      return { opt, state: () => [...opt.m, ...opt.v] };
    };
    const sgd = (o: fd.SGDOptions) => (ps: fd.Tensor[]): Built => {
      const opt = new fd.SGD(ps, o);
      return { opt, state: () => opt.buffers };
    };
    const OPTIMS: [string, (ps: fd.Tensor[]) => Built][] = [
      ["Adam β1=0.9, clip 1", adam({ lr: 1e-2, maxGradNorm: 1, sanitize: true })],
      ["Adam β1=0, wd 0.1", adam({ lr: 1e-2, betas: [0, 0.99], weightDecay: 0.1, sanitize: true })],
      ["AdamW wd 0.1, clip 0.5", adam({ lr: 1e-2, weightDecay: 0.1, maxGradNorm: 0.5, sanitize: true }, fd.AdamW)],
      ["SGD momentum 0.9, clip 1", sgd({ lr: 0.1, momentum: 0.9, maxGradNorm: 1, sanitize: true })],
      ["SGD nesterov, wd 0.01, clip 2", sgd({ lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 0.01, maxGradNorm: 2, sanitize: true })],
      ["SGD plain", sgd({ lr: 0.1, sanitize: true })],
    ];
    /** Params, then states, after 3 steps (a NaN/±Inf in the gradients of steps 2 and 3), plus each step's stats. */
    const steps = (isa: Isa, build: (ps: fd.Tensor[]) => Built): Float32Array[] => {
      fd.setIsa(isa);
      return fd.scope(() => {
        const ps = SHAPES.map((s, i) => randomTensor(s, 1000 + i));
        const { opt, state } = build(ps);
        const out: Float32Array[] = [];
        for (let step = 0; step < 3; ++step) {
          ps.forEach((p, i) => {
            const g = Float32Array.from(values(p.shape, 2000 + 10 * step + i, 3));
            if (step === 1 && i === 4) [g[5], g[700], g[1002]] = [NaN, Infinity, -Infinity];
            if (step === 2 && i === 0) g[0] = NaN;
            p.grad = fd.tensor(g, p.shape);
          });
          opt.step();
          out.push(Float32Array.from(Object.values(opt.lastStats())));
        }
        out.push(...ps.map((p) => p.dataSync()), ...state().map((t) => t.dataSync()));
        opt.dispose();
        return out;
      });
    };
    test.each(OPTIMS)("%s, sanitize", (name, build) => {
      const ref = steps("scalar", build);
      expect(ref[1]![2]).toBe(3); // three non-finite gradient entries sanitized in step 2
      expect(diff(name, steps(isa, build), ref, TOL_GEMM)).toEqual([]);
    });
    test("EMA update", () => {
      const ema = (i: Isa) => {
        fd.setIsa(i);
        return fd.scope(() => {
          const ps = SHAPES.map((s, k) => randomTensor(s, 3000 + k));
          const e = new fd.EMA(ps, { decay: 0.9 });
          for (let s = 0; s < 3; ++s) {
            ps.forEach((p, k) => (ps[k] = randomTensor(p.shape, 3100 + 10 * s + k, 2)));
            e.update();
          }
          const out = e.averages.map((t) => t.dataSync());
          e.dispose();
          return out;
        });
      };
      expect(diff("ema", ema(isa), ema("scalar"), TOL_GEMM)).toEqual([]);
    });
  });
});

// ---------------------------------------------------------------- attention layouts
// The tokens-major kernels run the same arithmetic as the heads-major ones with other strides, so on
// each kernel set attention(q, k, v, "bnhd") equals the heads-major result permuted, bit for bit
// (output and all three gradients).
describe.each(["scalar", ...ISAS] as Isa[])("attention layouts (%s): [B, N, H, D] equals [B, H, N, D] permuted, bit for bit", (isa) => {
  const toHeads = (t: fd.Tensor) => fd.permute(t, [0, 2, 1, 3]);
  test.each([[2, 3, 33, 65, 64, 24], [1, 4, 196, 196, 64, 64], [2, 2, 7, 1, 8, 8]])(
    "B%i H%i Nq%i Nk%i D%i Dv%i",
    (b, h, nq, nk, d, dv) => {
      const make = inputs(R([b, nq, h, d], 1, 2), R([b, nk, h, d], 2, 2), R([b, nk, h, dv], 3));
      const tokens = run(isa, make, (q, k, v) => fd.attention(q, k, v, { layout: "bnhd" }));
      const heads = run(isa, make, (q, k, v) => fd.permute(fd.attention(toHeads(q), toHeads(k), toHeads(v)), [0, 2, 1, 3]));
      expect(tokens.map((a) => a.length)).toEqual(heads.map((a) => a.length));
      const bytes = (a: Float32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
      tokens.forEach((a, k) => expect([k, Buffer.compare(bytes(a), bytes(heads[k]!))]).toEqual([k, 0]));
    },
  );
});

// ---------------------------------------------------------------- per-sample layer norm
// Weight and bias [B, D] (an adaptive norm's modulation in the norm pass) against the composition it replaces:
// the plain norm, then ·w[b] + b[b] broadcast over the rows of sample b (forward and all three gradients).
describe.each(["scalar", ...ISAS] as Isa[])("layerNorm with per-sample weight and bias (%s) = norm·w + b per sample", (isa) => {
  test.each([[4, 196, 256], [3, 7, 33], [2, 1, 5], [5, 2, 1000]])("x [%i, %i, %i]", (b, n, d) => {
    const make = inputs(R([b, n, d], 1, 2, 0.3), R([b, d], 2, 0.5, 1), R([b, d], 3));
    const fused = run(isa, make, (x, w, bs) => fd.layerNorm(x, w, bs));
    const composed = run(isa, make, (x, w, bs) =>
      fd.add(fd.mul(fd.layerNorm(x), fd.reshape(w, [b, 1, d])), fd.reshape(bs, [b, 1, d])));
    expect(diff(`layerNorm [${b},${n},${d}]`, fused, composed, TOL_GEMM)).toEqual([]);
  });
});

// mulAdd against the two ops it fuses (which round twice): the same values to float32 rounding, gradients alike.
describe.each(["scalar", ...ISAS] as Isa[])("mulAdd (%s) = mul then add", (isa) => {
  test.each([[[4, 196, 256], [4, 1, 256], [4, 196, 256]], [[5, 7], [7], [1]], [[1], [3, 1], [2]]])("[%j]·[%j] + [%j]", (sx, sy, sz) => {
    const make = inputs(R(sx, 1), R(sy, 2), R(sz, 3));
    const fused = run(isa, make, (x, y, z) => fd.mulAdd(x, y, z));
    const composed = run(isa, make, (x, y, z) => fd.add(fd.mul(x, y), z));
    expect(diff("mulAdd", fused, composed, TOL_ELEM, true)).toEqual([]);
  });
});

// ---------------------------------------------------------------- determinism
describe.each(["scalar", ...ISAS] as Isa[])("determinism (%s): bit-identical with 1 and 2 threads and across runs", (isa) => {
  const firstBitDiff = (a: Float32Array, b: Float32Array): number => {
    if (a.length !== b.length) return -2;
    const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
    const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
    for (let i = 0; i < ua.length; ++i) if (ua[i] !== ub[i]) return i;
    return -1;
  };
  const CASES: [string, () => Float32Array[]][] = [
    ["randn / rand [1e6] (seeded)", () => fd.scope(() => [fd.randn([1_000_000], { seed: 42 }).dataSync(), fd.rand([1_000_003], { seed: 43, low: -2, high: 3 }).dataSync()])],
    ["sum over 1e6 elements (+ backward)", () => run(isa, inputs(() => fd.randn([1_000_000], { seed: 1 })), (x) => fd.sum(x))],
    ["sum rows / columns of [1000, 1000]", () => fd.scope(() => { const x = fd.randn([1000, 1000], { seed: 2 }); return [fd.sum(x, 0).dataSync(), fd.mean(x, 1).dataSync(), fd.norm(x).dataSync()]; })],
    ["matmul 129×257×300 (+ backward)", () => run(isa, inputs(() => fd.randn([129, 257], { seed: 3 }), () => fd.randn([257, 300], { seed: 4 })), fd.matmul)],
    ["conv2d [2,16,16,16]*[33,16,3,3] (+ backward)", () => run(isa, inputs(() => fd.randn([2, 16, 16, 16], { seed: 5 }), () => fd.randn([33, 16, 3, 3], { seed: 6 }), () => fd.randn([33], { seed: 7 })), (x, w, b) => fd.conv2d(x, w, b, { padding: 1 }))],
    ["attention [2,4,129,64] (+ backward)", () => run(isa, inputs(() => fd.randn([2, 4, 129, 64], { seed: 8 }), () => fd.randn([2, 4, 129, 64], { seed: 9 }), () => fd.randn([2, 4, 129, 64], { seed: 10 })), (q, k, v) => fd.attention(q, k, v))],
    ["groupNorm [16,64,28,28] G32 silu (+ backward)", () => run(isa, inputs(() => fd.randn([16, 64, 28, 28], { seed: 11 }), () => fd.randn([64], { seed: 12 }), () => fd.randn([64], { seed: 13 })), (x, w, b) => fd.groupNorm(x, 32, w, b, { silu: true }))],
    ["elementwise gelu / softmax / layerNorm on 1e6 (+ backward)", () => run(isa, inputs(() => fd.randn([1000, 1000], { seed: 14 })), (x) => fd.layerNorm(fd.softmax(fd.gelu(x))))],
  ];
  afterAll(() => fd.setNumThreads(THREADS));
  test.each(CASES)("%s", (_, compute) => {
    fd.setIsa(isa);
    fd.setNumThreads(1);
    const one = compute();
    fd.setNumThreads(2);
    fd.setIsa(isa);
    const two = compute();
    const again = compute();
    fd.setNumThreads(THREADS);
    one.forEach((a, k) => {
      expect([k, firstBitDiff(a, two[k]!)]).toEqual([k, -1]);
      expect([k, firstBitDiff(two[k]!, again[k]!)]).toEqual([k, -1]);
    });
  });
});
