// Winograd conv paths (kernels/winograd.{h,cc}): F(2×2, 3×3) and F(4×4, 3×3) for 3×3,
// stride 1, padding 0 or 1, groups 1 on the SIMD ISAs, forced with setConvAlgorithm("winograd")
// and ("winograd4"). Forward output and input gradient (stride-1 backward-input is the flipped
// forward conv and takes the same path) against the scalar reference (direct conv, double
// accumulation) on fresh random inputs, bitwise determinism across thread counts 1 vs 2, that
// each Winograd path really ran (its rounding differs from "direct" and from the other tile
// size), and which path "auto" takes (IC, OC ≥ 32; F(4×4) from 16 of its tiles when the
// transformed weights are kept packed, as here — the weights record no gradient — else
// F(2×2) from 16 tiles of 2×2, fewer channels or threads permitting; before these, on 2 threads, the direct 3×3
// kernel for small maps, tested in direct3x3.test.ts).
//
// Tolerance: Winograd rounds in the transforms and sums α² transformed products per output,
// so its error is a few ulps of the magnitude Σ|w||x| over the IC·9 products rather than of
// the output itself. We bound max |got − ref| ≤ TOL · max|ref| (and relative L2 ≤ TOL).
// F(2×2) (|Bᵀ d B| ≤ 4·max|d|, |G g Gᵀ| ≤ 2.25·max|g|): measured up to ~1.5e-7 relative L2 and
// ~6e-7 max (the direct SIMD conv: ~1e-7), TOL 4e-6. F(4×4) (Bᵀ and Aᵀ coefficients up to 5
// and 8): measured up to ~5.5e-6 max, TOL 3e-5. Any wrong tap, border or crop gives errors
// of order 1.
import * as fd from "../../lib";

import { maxRelErr, randomTensor, relL2, engineSettings, sameBits, convOutputAndInputGrad, type ConvCase } from "../helpers";

const { best: BEST, isas: ISAS, threads: THREADS } = engineSettings();

const TOL: Record<"winograd" | "winograd4", number> = { winograd: 4e-6, winograd4: 3e-5 };

const CASES: ConvCase[] = [
  { x: [2, 8, 9, 9], w: [5, 8, 3, 3], pad: 1, bias: true }, // few channels ("auto" would not take it)
  { x: [32, 33, 1, 1], w: [34, 33, 3, 3], pad: 1, bias: true }, // 1×1 images: only padding around them
  { x: [32, 32, 3, 3], w: [35, 32, 3, 3], pad: 0, bias: false }, // 1×1 output, padding 0
  { x: [4, 33, 7, 9], w: [37, 33, 3, 3], pad: 1, bias: true }, // odd sizes, IC/OC not multiples of 8/16
  { x: [12, 40, 5, 2], w: [36, 40, 3, 3], pad: 1, bias: false }, // width 2, odd height
  { x: [4, 32, 8, 8], w: [33, 32, 3, 3], pad: 0, bias: true }, // even input, odd tile count, padding 0
  { x: [4, 36, 11, 6], w: [32, 36, 3, 3], pad: 0, bias: true }, // odd output height, crop
  { x: [5, 32, 30, 30], w: [48, 32, 3, 3], pad: 1, bias: true }, // many chunks (threads split chunks)
  { x: [1, 64, 28, 28], w: [64, 64, 3, 3], pad: 1, bias: true }, // UNet level 0
  { x: [2, 128, 14, 14], w: [128, 128, 3, 3], pad: 1, bias: true }, // UNet level 1
  { x: [16, 128, 7, 7], w: [64, 128, 3, 3], pad: 1, bias: true }, // UNet level 2 (batched)
  { x: [1, 192, 14, 14], w: [128, 192, 3, 3], pad: 1, bias: true }, // UNet up-block concat input
  { x: [1, 128, 7, 7], w: [128, 128, 3, 3], pad: 1, bias: true }, // 16 tiles: 2 threads split the channels
  { x: [1, 48, 7, 7], w: [100, 48, 3, 3], pad: 1, bias: false }, // ... OC not a multiple of the panel rows
  { x: [1, 32, 5, 5], w: [40, 32, 3, 3], pad: 1, bias: true }, // 9 tiles: "auto" stays direct
  { x: [1, 32, 62, 62], w: [32, 32, 3, 3], pad: 1, bias: true }, // F(4×4): rows of 16 tiles (more than one gather group)
  { x: [2, 32, 30, 29], w: [32, 32, 3, 3], pad: 0, bias: true }, // F(4×4): 28×27 output, crop in the last tile column
  { x: [3, 40, 6, 6], w: [34, 40, 3, 3], pad: 0, bias: false }, // F(4×4): one 4×4 tile per image, exactly
];

/** The path "auto" should take at `threads` for a weight kept packed, without bf16 GEMMs: with the AVX-512 ISA on
 * ≥ 2 threads, the direct 3×3 kernel for ≤ 64 output pixels over the batch and ≥ 16 channels
 * (kernels/direct3x3.cc); else (kernels/winograd.cc) IC, OC ≥ 32, then F(4×4) from 16 tiles of 4×4 outputs (32 on
 * more than 1 thread); else F(2×2) from 256 tiles of 2×2, or 16 on 1 thread (on more, from 128 input channels). */
function autoPath(c: ConvCase, threads: number, isa: fd.Isa): fd.ConvAlgorithm {
  const oh = c.x[2]! + 2 * c.pad - 2, ow = c.x[3]! + 2 * c.pad - 2;
  const small = c.x[0]! * oh * ow <= 64 && c.x[1]! >= 16 && c.w[0]! >= 16;
  if (isa === "avx512" && threads > 1 && small) return "direct3x3";
  if (c.x[1]! < 32 || c.w[0]! < 32) return "direct";
  if (c.x[0]! * Math.ceil(oh / 4) * Math.ceil(ow / 4) >= (threads === 1 ? 16 : 32)) return "winograd4";
  const tiles = c.x[0]! * Math.ceil(oh / 2) * Math.ceil(ow / 2);
  return tiles >= 256 || (tiles >= 16 && (threads === 1 || c.x[1]! >= 128)) ? "winograd" : "direct";
}

const label = (c: ConvCase) => `x[${c.x}] w[${c.w}] pad ${c.pad}${c.bias ? " bias" : ""}`;

describe("winograd conv3x3", () => {
  CASES.forEach((c, i) => {
    test(label(c), () => {
      fd.setIsa("scalar");
      const ref = convOutputAndInputGrad(c, i);
      const problems: string[] = [];
      for (const isa of ISAS) {
        fd.setIsa(isa);
        const got: Record<string, Float32Array[][]> = {}; // algorithm → [1 thread, 2 threads]
        for (const algo of ["direct", "auto", "winograd", "winograd4", "direct3x3"] as const) {
          fd.setConvAlgorithm(algo);
          got[algo] = [1, 2].map((threads) => {
            fd.setNumThreads(threads);
            return convOutputAndInputGrad(c, i);
          });
        }
        fd.setNumThreads(THREADS);
        fd.setConvAlgorithm("auto");
        const direct = got.direct![0]!;
        if (sameBits(got.winograd![0]![0]!, direct[0]!)) problems.push(`${isa}: "winograd" gave the direct conv's output bit for bit`);
        if (sameBits(got.winograd4![0]![0]!, direct[0]!)) problems.push(`${isa}: "winograd4" gave the direct conv's output bit for bit`);
        if (sameBits(got.winograd4![0]![0]!, got.winograd![0]![0]!)) problems.push(`${isa}: "winograd4" gave F(2×2)'s output bit for bit`);
        for (const threads of [1, 2]) {
          const want = autoPath(c, threads, isa);
          if (!sameBits(got.auto![threads - 1]![0]!, got[want]![threads - 1]![0]!))
            problems.push(`${isa}: "auto" on ${threads} thread(s) did not take the ${want} path`);
        }
        for (const algo of ["winograd", "winograd4"] as const)
          ["output", "grad x"].forEach((what, k) => {
            const g = got[algo]![0]![k]!;
            const r = ref[k]!;
            let scale = 0;
            for (const v of r) scale = Math.max(scale, Math.abs(v));
            const errMax = maxRelErr(g, r) * Math.max(1, scale) / Math.max(scale, 1e-30);
            const errL2 = relL2(g, r);
            if (process.env.FASTDIFF_WINO_VERBOSE)
              console.log(`${isa} ${algo} ${label(c)} ${what}: max ${errMax.toExponential(2)} relL2 ${errL2.toExponential(2)}`);
            if (!(errMax <= TOL[algo])) problems.push(`${isa} ${algo} ${what}: max |err| / max|ref| ${errMax.toExponential(2)} > ${TOL[algo]}`);
            if (!(errL2 <= TOL[algo])) problems.push(`${isa} ${algo} ${what}: relative L2 ${errL2.toExponential(2)} > ${TOL[algo]}`);
            if (!sameBits(g, got[algo]![1]![k]!)) problems.push(`${isa} ${algo} ${what}: 1 vs 2 threads differ`);
          });
      }
      fd.setIsa(BEST);
      expect(problems).toEqual([]);
    });
  });
});

// A weight that records its gradient is not kept packed: its U is transformed per call, by every thread that
// multiplies with it. On a map with few tiles two threads share the output channels (and one transformed input,
// kernels/winograd.cc); the bits must be those of the kept-U path and of one thread.
test("a weight that requires grad (U per call) gives the kept-U bits on 1 and 2 threads", () => {
  const few = CASES.filter((c) => c.x[0]! * Math.ceil((c.x[2]! + 2 * c.pad - 2) / 4) * Math.ceil((c.x[3]! + 2 * c.pad - 2) / 4) < 32);
  expect(few.length).toBeGreaterThanOrEqual(4);
  const problems: string[] = [];
  for (const algo of ["winograd", "winograd4"] as const) {
    fd.setConvAlgorithm(algo);
    few.forEach((c, i) => {
      const outs = [1, 2].flatMap((threads) => {
        fd.setNumThreads(threads);
        return [false, true].map((grad) =>
          fd.scope(() => {
            const x = randomTensor(c.x, 5000 + i);
            const w = randomTensor(c.w, 6000 + i, 1 / Math.sqrt(c.w[1]! * 9));
            w.requiresGrad = grad;
            return fd.conv2d(x, w, c.bias ? randomTensor([c.w[0]!], 7000 + i) : null, { padding: c.pad }).dataSync();
          }),
        );
      });
      outs.forEach((o, k) => {
        if (!sameBits(o, outs[0]!)) problems.push(`${algo} ${label(c)}: run ${k} (threads ${1 + (k >> 1)}, grad ${k & 1}) differs`);
      });
    });
  }
  fd.setConvAlgorithm("auto");
  fd.setNumThreads(THREADS);
  expect(problems).toEqual([]);
});
