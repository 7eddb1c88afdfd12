// The direct 3×3 conv kernel (kernels/direct3x3.{h,cc}, AVX-512): 32 output channels in vector lanes, strips of
// ≤ 14 output pixels (two rows of ≤ 7, one row of 8–14, or a wider row cut in pieces). Forced with
// setConvAlgorithm("direct3x3"); forward output and input gradient (stride-1 backward-input is the flipped forward
// conv and takes the same path) against the scalar reference (double accumulation) on fresh random inputs;
// bitwise equal for 1 and 2 threads and for a weight kept packed and one packed per call. Which path ran is read
// from the profiler's row name: the bits cannot tell it from the implicit GEMM ("direct"), which sums the same
// products in the same (c, kh, kw) order and differs only where its K blocks split the sum.
//
// Tolerance: a float32 sum of C·9 products, measured ≤ 1.5e-6 of the output scale (max; relative L2 ≤ 6e-7) on
// these cases, the gradients of the 128- and 256-channel convs the largest; TOL 4e-6.
// A wrong tap, border, strip or channel block gives errors of order 1.
import * as fd from "../../lib";

import { maxRelErr, randomTensor, relL2, engineSettings, sameBits, convOutputAndInputGrad, convPathOf, type ConvCase } from "../helpers";

const { best: BEST, threads: THREADS } = engineSettings();
const HAS_KERNEL = BEST === "avx512";
const TOL = 4e-6;

const CASES: ConvCase[] = [
  { x: [1, 128, 7, 7], w: [128, 128, 3, 3], pad: 1, bias: true }, // the UNet's 7×7 level: 4 strips of 2 rows
  { x: [1, 256, 7, 7], w: [128, 256, 3, 3], pad: 1, bias: true }, // its up-block concat input
  { x: [2, 33, 5, 3], w: [37, 33, 3, 3], pad: 1, bias: true }, // odd rows (a last 1-row strip), OC past one block
  { x: [3, 16, 1, 1], w: [16, 16, 3, 3], pad: 1, bias: false }, // 1×1 maps: only padding around them
  { x: [1, 20, 9, 10], w: [50, 20, 3, 3], pad: 0, bias: true }, // padding 0: a 7×8 output in 1-row strips of 8
  { x: [1, 17, 12, 12], w: [32, 17, 3, 3], pad: 1, bias: true }, // 12 wide: one 1-row strip per row
  { x: [2, 24, 6, 14], w: [40, 24, 3, 3], pad: 1, bias: false }, // 14 wide: the 14-pixel strip
  { x: [1, 16, 5, 29], w: [65, 16, 3, 3], pad: 1, bias: true }, // 29 wide: rows cut in 3 pieces (9, 10, 10)
  { x: [1, 8, 30, 30], w: [24, 8, 3, 3], pad: 0, bias: true }, // 28×28 output, rows of 2 × 14, few channels
];

const label = (c: ConvCase) => `x[${c.x}] w[${c.w}] pad ${c.pad}${c.bias ? " bias" : ""}`;

/** The path one forward conv of c takes under the current settings (its weight kept packed). */
const pathOf = (c: ConvCase, i: number): string =>
  convPathOf(() => fd.scope(() => fd.conv2d(randomTensor(c.x, 1000 + i), randomTensor(c.w, 2000 + i), null, { padding: c.pad })));

afterEach(() => {
  fd.setIsa(BEST);
  fd.setConvAlgorithm("auto");
  fd.setNumThreads(THREADS);
});

describe("direct3x3 conv", () => {
  CASES.forEach((c, i) => {
    test(label(c), () => {
      fd.setIsa("scalar");
      const ref = convOutputAndInputGrad(c, i);
      fd.setIsa(BEST);
      fd.setConvAlgorithm("direct3x3");
      const problems: string[] = [];
      const got = [1, 2].map((threads) => {
        fd.setNumThreads(threads);
        return convOutputAndInputGrad(c, i);
      });
      const perCall = convOutputAndInputGrad(c, i, true);
      if (HAS_KERNEL && pathOf(c, i) !== "direct3x3") problems.push(`the profiler names ${pathOf(c, i)}`);
      ["output", "grad x"].forEach((what, k) => {
        const g = got[0]![k]!;
        const scale = ref[k]!.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        const errMax = (maxRelErr(g, ref[k]!) * Math.max(1, scale)) / scale; // max |err| / max |ref|
        if (!(errMax <= TOL)) problems.push(`${what}: max |err| / max|ref| ${errMax.toExponential(2)} > ${TOL}`);
        if (!(relL2(g, ref[k]!) <= TOL)) problems.push(`${what}: relative L2 ${relL2(g, ref[k]!).toExponential(2)} > ${TOL}`);
        if (!sameBits(g, got[1]![k]!)) problems.push(`${what}: 1 vs 2 threads differ`);
        if (!sameBits(g, perCall[k]!)) problems.push(`${what}: a weight packed per call differs from a kept one`);
      });
      expect(problems).toEqual([]);
    });
  });
});

// "auto" takes the kernel on ≥ 2 threads for ≤ 64 output pixels over the batch with ≥ 16 channels in and out
// (kernels/direct3x3.cc: on 1 thread Winograd F(2×2) is as fast); forced on a CPU or ISA without the kernel it
// computes with the implicit GEMM and says so.
test('"auto" takes direct3x3 on small maps with 2 threads; the profiler names the path that ran', () => {
  const unet7 = CASES[0]!;
  const batch2: ConvCase = { ...unet7, x: [2, 128, 7, 7] }; // 98 pixels: Winograd F(2×2)
  const narrow: ConvCase = { x: [1, 16, 7, 7], w: [16, 16, 3, 3], pad: 1, bias: false }; // 16 channels: no Winograd
  const thin: ConvCase = { x: [1, 8, 7, 7], w: [16, 8, 3, 3], pad: 1, bias: false }; // 8 input channels
  fd.setNumThreads(2);
  expect(pathOf(unet7, 0)).toBe(HAS_KERNEL ? "direct3x3" : "winograd");
  expect(pathOf(batch2, 0)).toBe("winograd");
  expect(pathOf(narrow, 0)).toBe(HAS_KERNEL ? "direct3x3" : "direct");
  expect(pathOf(thin, 0)).toBe("direct");
  fd.setNumThreads(1);
  expect(pathOf(unet7, 0)).toBe("winograd");
  fd.setNumThreads(2);
  const precision = fd.getMatmulPrecision();
  fd.setMatmulPrecision("medium"); // bf16 GEMMs: Winograd F(2×2) computes in bf16 where the CPU has it
  try {
    expect(pathOf(unet7, 0)).not.toBe("direct3x3");
  } finally {
    fd.setMatmulPrecision(precision);
  }
  if (HAS_KERNEL) {
    fd.setIsa("avx2");
    fd.setConvAlgorithm("direct3x3");
    expect(pathOf(unet7, 0)).toBe("direct");
  }
  fd.setIsa("scalar");
  expect(pathOf(unet7, 0)).toBe("direct");
});

// One kept weight used at batch 1 (direct3x3's blocks) and batch 16 (Winograd's transform) in turn: each call
// re-packs for its path and computes the right values.
test("a kept weight alternating between direct3x3 and Winograd shapes stays right", () => {
  fd.setNumThreads(2);
  fd.scope(() => {
    const w = randomTensor([64, 64, 3, 3], 11, 1 / 24);
    const results = [1, 16, 1, 16].map((n, k) => {
      const x = randomTensor([n, 64, 7, 7], 20 + k);
      const got = fd.conv2d(x, w, null, { padding: 1 }).dataSync();
      fd.setIsa("scalar");
      const want = fd.conv2d(x, w, null, { padding: 1 }).dataSync();
      fd.setIsa(BEST);
      return maxRelErr(got, want);
    });
    for (const e of results) expect(e).toBeLessThan(3e-5); // F(4×4)'s bound (test/ops/winograd.test.ts)
  });
});
