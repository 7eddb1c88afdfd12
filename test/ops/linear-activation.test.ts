// linear(x, w, b, { activation }): the activation applied to the output, on the CPU inside the GEMM (each row block
// activated right after its last K block) when there is no gradient to record. Against the separate ops: bit for
// bit on every ISA and thread count, for weights kept packed (no gradient) and packed per call, and shapes that
// cross the GEMM's blocks (several row blocks, K blocks, partial panels). With gradients: the same values and the
// gradients of the separate ops. Bad activation names are argument errors.
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
// multiple of the panel width; a single row.
const SHAPES: [number, number, number][] = [
  [37, 70, 100],
  [300, 64, 96],
  [20, 1500, 40],
  [1, 256, 1536],
];

afterAll(() => fd.setNumThreads(THREADS));

describe.each(["scalar", ...ISAS] as fd.Isa[])("linear with an activation under %s", (isa) => {
  test.each(ACTIVATIONS)("%s: the separate ops' bits, kept and per-call weights, 1 and 2 threads", (name, separate) => {
    fd.setIsa(isa);
    const problems: string[] = [];
    SHAPES.forEach(([M, K, N], i) => {
      for (const threads of [1, 2]) {
        fd.setNumThreads(threads);
        fd.scope(() => {
          const x = randomTensor([M, K], 10 + i);
          const w = randomTensor([N, K], 20 + i, 1 / Math.sqrt(K));
          const b = randomTensor([N], 30 + i);
          const want = separate(fd.linear(x, w, b)).dataSync();
          const kept = fd.noGrad(() => fd.linear(x, w, b, { activation: name })).dataSync();
          const wg = w.clone();
          wg.requiresGrad = true; // packed per call; under noGrad nothing is recorded, so still fused
          const perCall = fd.noGrad(() => fd.linear(x, wg, null, { activation: name })).dataSync();
          const wantNoBias = separate(fd.linear(x, w)).dataSync();
          if (!sameBits(kept, want)) problems.push(`[${M}, ${K}, ${N}] ${threads} thread(s): kept weight`);
          if (!sameBits(perCall, wantNoBias)) problems.push(`[${M}, ${K}, ${N}] ${threads} thread(s): per-call weight, no bias`);
        });
      }
    });
    fd.setIsa(ISAS[ISAS.length - 1]!);
    expect(problems).toEqual([]);
  });
});

test("with gradients to record: the separate ops' values and gradients", () => {
  fd.scope(() => {
    const x = randomTensor([33, 50], 1);
    const w = randomTensor([40, 50], 2, 0.2);
    const b = randomTensor([40], 3);
    const r = randomTensor([33, 40], 4);
    const grads = (fused: boolean) => {
      for (const t of [x, w, b]) {
        t.requiresGrad = true;
        t.grad = null;
      }
      const y = fused ? fd.linear(x, w, b, { activation: "gelu_tanh" }) : fd.gelu(fd.linear(x, w, b), { approximate: "tanh" });
      fd.sum(fd.mul(y, r)).backward();
      return [y, x.grad!, w.grad!, b.grad!].map((t) => t.dataSync());
    };
    const fused = grads(true), separate = grads(false);
    fused.forEach((v, k) => expect(sameBits(v, separate[k]!)).toBe(true));
  });
});

test("an unknown or parameterized activation is an argument error", () => {
  fd.scope(() => {
    const x = randomTensor([2, 3], 1), w = randomTensor([4, 3], 2);
    expectCode(() => fd.linear(x, w, null, { activation: "swish" as fd.LinearActivation }), "ERR_ARGUMENT", /activation must be one of/);
    expectCode(() => fd.linear(x, w, null, { activation: "constructor" as fd.LinearActivation }), "ERR_ARGUMENT");
  });
});
