// linear(x, w, b, { activation, residual, gate }): what a linear does to its output before returning it — an
// activation, then a residual added (scaled by a per-row-group gate if given) — on the CPU inside the GEMM (each row
// block finished right after its last K block) when there is no gradient to record. Against the separate ops: bit
// for bit on every ISA and thread count, for weights kept packed (no gradient) and packed per call, and shapes that
// cross the GEMM's blocks (several row blocks, K blocks, partial panels). With gradients: the same values and the
// gradients of the separate ops. Bad activation names, residual shapes and gates are clear errors.
import * as fd from "../../lib";

import { engineSettings, expectCode, randomTensor, sameBits } from "../helpers";

const { isas: ISAS, threads: THREADS } = engineSettings();

const ACTIVATIONS: [fd.LinearActivation, (y: fd.Tensor) => fd.Tensor][] = [
  ["relu", fd.relu],
  ["silu", fd.silu],
  ["sigmoid", fd.sigmoid],
  ["tanh", fd.tanh],
  ["gelu", (y) => fd.gelu(y)],
  ["gelu_tanh", (y) => fd.gelu(y, { approximate: "tanh" })],
];
// [M, K, N]: one row block / several (M > 140 on AVX-512, > 72 on AVX2); one K block / two (K > 1024); N not a
// multiple of the panel width; a single row; a wide C over two row blocks (on AVX-512 its full tiles take the
// activation in registers, its edge tiles through an L1 stage, ≥ 512 columns).
const SHAPES: [number, number, number][] = [
  [37, 70, 100],
  [300, 64, 96],
  [20, 1500, 40],
  [1, 256, 1536],
  [150, 96, 600],
];

afterAll(() => fd.setNumThreads(THREADS));

// Under `isa`, for each [M, K, N] and 1 and 2 threads: linear(x, w, b, options(...)) with the weight kept packed, and
// without a bias with one packed per call, against separate(plain linear) bit for bit. The mismatches, named.
function mismatches(
  isa: fd.Isa,
  shapes: [number, number, number, ...number[]][],
  options: (M: number, N: number, i: number) => fd.LinearOptions,
  separate: (y: fd.Tensor, o: fd.LinearOptions) => fd.Tensor,
): string[] {
  fd.setIsa(isa);
  const problems: string[] = [];
  shapes.forEach(([M, K, N], i) => {
    for (const threads of [1, 2]) {
      fd.setNumThreads(threads);
      fd.scope(() => {
        const x = randomTensor([M, K], 10 + i);
        const w = randomTensor([N, K], 20 + i, 1 / Math.sqrt(K));
        const b = randomTensor([N], 30 + i);
        const o = options(M, N, i);
        const want = separate(fd.linear(x, w, b), o).dataSync();
        const kept = fd.noGrad(() => fd.linear(x, w, b, o)).dataSync();
        const wg = w.clone();
        wg.requiresGrad = true; // packed per call; under noGrad nothing is recorded, so still fused
        const perCall = fd.noGrad(() => fd.linear(x, wg, null, o)).dataSync();
        const wantNoBias = separate(fd.linear(x, w), o).dataSync();
        if (!sameBits(kept, want)) problems.push(`[${M}, ${K}, ${N}] ${threads} thread(s): kept weight`);
        if (!sameBits(perCall, wantNoBias)) problems.push(`[${M}, ${K}, ${N}] ${threads} thread(s): per-call weight, no bias`);
      });
    }
  });
  fd.setIsa(ISAS[ISAS.length - 1]!);
  return problems;
}

describe.each(["scalar", ...ISAS] as fd.Isa[])("linear with an activation under %s", (isa) => {
  test.each(ACTIVATIONS)("%s: the separate ops' bits, kept and per-call weights, 1 and 2 threads", (name, separate) => {
    expect(mismatches(isa, SHAPES, () => ({ activation: name }), separate)).toEqual([]);
  });
});

// [M, K, N, G]: G row groups of the gate (one per sample in a DiT: M = G·tokens).
const RESIDUAL_SHAPES: [number, number, number, number][] = [
  [37, 70, 100, 1],
  [300, 64, 96, 3],
  [20, 1500, 40, 4],
  [1, 256, 1536, 1],
  [392, 256, 256, 2],
];
// The separate ops: (activation), then add, or mulAdd of the output in [G, M/G, N] by the gate as [G, 1, N].
function separateFinish(y: fd.Tensor, residual: fd.Tensor, gate: fd.Tensor | null, activation?: fd.LinearActivation): fd.Tensor {
  const a = activation ? ACTIVATIONS.find(([n]) => n === activation)![1](y) : y;
  if (!gate) return fd.add(a, residual);
  const [M, N] = a.shape as [number, number], G = gate.shape[0]!;
  return fd.reshape(fd.mulAdd(fd.reshape(a, [G, M / G, N]), fd.reshape(gate, [G, 1, N]), fd.reshape(residual, [G, M / G, N])), [M, N]);
}

describe.each(["scalar", ...ISAS] as fd.Isa[])("linear with a residual under %s", (isa) => {
  test.each([
    ["residual", false, undefined],
    ["gated residual", true, undefined],
    ["gelu_tanh, then a gated residual", true, "gelu_tanh"],
  ] as [string, boolean, fd.LinearActivation | undefined][])(
    "%s: the separate ops' bits, kept and per-call weights, 1 and 2 threads",
    (_, gated, activation) => {
      const options = (M: number, N: number, i: number): fd.LinearOptions => ({
        activation,
        residual: randomTensor([M, N], 70 + i),
        ...(gated ? { gate: randomTensor([RESIDUAL_SHAPES[i]![3], N], 80 + i) } : {}),
      });
      const separate = (y: fd.Tensor, o: fd.LinearOptions) => separateFinish(y, o.residual!, o.gate ?? null, o.activation);
      expect(mismatches(isa, RESIDUAL_SHAPES, options, separate)).toEqual([]);
    },
  );
});

test("a gated residual over [B, tokens, out]: the DiT's h + gate·branch, gate one row per sample", () => {
  fd.scope(() => {
    const x = randomTensor([3, 5, 8], 1), w = randomTensor([6, 8], 2), b = randomTensor([6], 3);
    const h = randomTensor([3, 5, 6], 4), gate = randomTensor([3, 6], 5);
    const fused = fd.noGrad(() => fd.linear(x, w, b, { residual: h, gate })).dataSync();
    const [y, hv, gv] = [fd.linear(x, w, b).dataSync(), h.dataSync(), gate.dataSync()];
    let worst = 0;
    for (let s = 0; s < 3; ++s)
      for (let t = 0; t < 5; ++t)
        for (let o = 0; o < 6; ++o) {
          const i = (s * 5 + t) * 6 + o;
          worst = Math.max(worst, Math.abs(fused[i]! - (hv[i]! + gv[s * 6 + o]! * y[i]!)));
        }
    expect(worst).toBeLessThan(1e-6); // one fma against a product and a sum in double
  });
});

// linear(x, w, b, options) with gradients to record against `separate` of the plain linear: the output and the
// gradients of sum(y·r) with respect to x, w, b and the options' tensors, bit for bit.
function expectSeparateGradients(options: fd.LinearOptions, separate: (y: fd.Tensor) => fd.Tensor) {
  fd.scope(() => {
    const x = randomTensor([12, 20], 1);
    const w = randomTensor([16, 20], 2, 0.2);
    const b = randomTensor([16], 3);
    const r = randomTensor([12, 16], 6);
    const inputs = [x, w, b, ...[options.residual, options.gate].filter((t): t is fd.Tensor => !!t)];
    const grads = (fused: boolean) => {
      for (const t of inputs) {
        t.requiresGrad = true;
        t.grad = null;
      }
      const y = fused ? fd.linear(x, w, b, options) : separate(fd.linear(x, w, b));
      fd.sum(fd.mul(y, r)).backward();
      return [y, ...inputs.map((t) => t.grad!)].map((t) => t.dataSync());
    };
    const fused = grads(true), want = grads(false);
    expect(fused.length).toBe(inputs.length + 1);
    fused.forEach((v, k) => expect(sameBits(v, want[k]!)).toBe(true));
  });
}

test("with gradients to record: the separate ops' values and gradients", () => {
  expectSeparateGradients({ activation: "gelu_tanh" }, (y) => fd.gelu(y, { approximate: "tanh" }));
});

test("with gradients to record, a gated residual: the separate ops' values and gradients, gate and residual included", () => {
  const residual = randomTensor([12, 16], 4), gate = randomTensor([3, 16], 5);
  expectSeparateGradients({ activation: "silu", residual, gate }, (y) => separateFinish(y, residual, gate, "silu"));
  residual.dispose();
  gate.dispose();
});

test("a residual of another shape, a gate without a residual or of a shape that does not fit are shape/argument errors", () => {
  fd.scope(() => {
    const x = randomTensor([6, 3], 1), w = randomTensor([4, 3], 2), r = randomTensor([6, 4], 3);
    expectCode(() => fd.linear(x, w, null, { residual: randomTensor([6, 5], 4) }), "ERR_SHAPE", /linear: residual \[6, 5\] does not match the output \[6, 4\]/);
    expectCode(() => fd.linear(x, w, null, { gate: randomTensor([1, 4], 5) }), "ERR_ARGUMENT", /a gate scales the output before a residual/);
    expectCode(() => fd.linear(x, w, null, { residual: r, gate: randomTensor([4, 4], 6) }), "ERR_SHAPE", /gate \[4, 4\] must be \[G, 4\] with G dividing the output's 6 rows/);
    expectCode(() => fd.linear(x, w, null, { residual: r, gate: randomTensor([2, 3], 7) }), "ERR_SHAPE", /gate \[2, 3\]/);
    const gone = randomTensor([6, 4], 8);
    gone.dispose();
    expect(() => fd.linear(x, w, null, { residual: gone })).toThrow(/disposed/);
  });
});

test("an unknown or parameterized activation is an argument error", () => {
  fd.scope(() => {
    const x = randomTensor([2, 3], 1), w = randomTensor([4, 3], 2);
    expectCode(() => fd.linear(x, w, null, { activation: "swish" as fd.LinearActivation }), "ERR_ARGUMENT", /activation must be one of/);
    expectCode(() => fd.linear(x, w, null, { activation: "constructor" as fd.LinearActivation }), "ERR_ARGUMENT");
  });
});
