// Matmul precision "medium" on the CPU: operands rounded to bfloat16, products summed in float32
// (AVX512-BF16 vdpbf16ps). The AVX-512 kernel against the scalar oracle (which rounds the same way and
// sums in double), the rounding itself against a JavaScript model of round-to-nearest-even, the size of
// the error against float64 (it must be bf16-sized, or the fast path is not running), thread-count
// determinism, and — on CPUs without the instruction — bit-identity with float32. Convolutions on the
// F(2×2) Winograd path run their 16 GEMMs in bf16 too (error bf16-sized against float64, kept transformed
// weights bit-identical to per-call ones); F(4×4) Winograd and direct convolutions stay float32.
import * as fd from "../../lib";

import { engineSettings, hostValues, maxRelErr } from "../helpers";

const { best: BEST, threads: THREADS } = engineSettings();
const HAS_BF16 = BEST === "avx512" && fd.devices().cpu.features.avx512bf16;
const TOL_GEMM = 1e-5; // SIMD vs oracle: same bf16 operands, float32 vs double accumulation (measured ≤ 6e-7)

afterEach(() => {
  fd.setConvAlgorithm("auto");
  fd.setMatmulPrecision("high");
  fd.setIsa(BEST);
  fd.setNumThreads(THREADS);
});

/** out and the gradients of Σ out·w w.r.t. both inputs, at `precision` under `isa`. */
function linearAndGrads(isa: fd.Isa, precision: fd.MatmulPrecision, M: number, K: number, N: number, seed: number): Float32Array[] {
  fd.setIsa(isa);
  fd.setMatmulPrecision(precision);
  return fd.scope(() => {
    const x = fd.tensor(hostValues([M, K], seed), [M, K]);
    const w = fd.tensor(hostValues([N, K], seed + 1), [N, K]);
    const b = fd.tensor(hostValues([N], seed + 2), [N]);
    x.requiresGrad = true;
    w.requiresGrad = true;
    const y = fd.linear(x, w, b);
    fd.sum(fd.mul(y, fd.tensor(hostValues([M, N], seed + 3), [M, N]))).backward();
    return [y.dataSync(), x.grad!.dataSync(), w.grad!.dataSync()];
  });
}

/** Float64 product of row-major [M, K] and [K, N]. */
function exactMatmul(a: Float32Array, b: Float32Array, M: number, K: number, N: number): Float64Array {
  const c = new Float64Array(M * N);
  for (let i = 0; i < M; ++i)
    for (let k = 0; k < K; ++k) for (let j = 0; j < N; ++j) c[i * N + j]! += a[i * K + k]! * b[k * N + j]!;
  return c;
}

/** bfloat16 round-to-nearest-even of x as vcvtne2ps2bf16 does it (denormals → ±0, NaN stays NaN). */
function bf16(x: number): number {
  const f = new Float32Array([x]);
  const u = new Uint32Array(f.buffer);
  if (Number.isNaN(x)) return NaN;
  if ((u[0]! & 0x7f800000) === 0) return Object.is(f[0], -0) || u[0]! >>> 31 ? -0 : 0;
  u[0] = ((u[0]! + 0x7fff + ((u[0]! >>> 16) & 1)) >>> 16) << 16;
  return f[0]!;
}

/** conv2d(x, w, b, padding 1) of NCHW x [1, C, H, W] and w [OC, C, 3, 3] in float64, scaled by Σ|w||x| per output. */
function exactConv(x: Float32Array, w: Float32Array, C: number, H: number, W: number, OC: number): { y: Float64Array; scale: number } {
  const y = new Float64Array(OC * H * W);
  let scale = 0;
  for (let o = 0; o < OC; ++o)
    for (let i = 0; i < H; ++i)
      for (let j = 0; j < W; ++j) {
        let s = 0, a = 0;
        for (let c = 0; c < C; ++c)
          for (let r = 0; r < 3; ++r)
            for (let q = 0; q < 3; ++q) {
              const ii = i + r - 1, jj = j + q - 1;
              if (ii < 0 || ii >= H || jj < 0 || jj >= W) continue;
              const p = w[((o * C + c) * 3 + r) * 3 + q]! * x[(c * H + ii) * W + jj]!;
              s += p;
              a += Math.abs(p);
            }
        y[(o * H + i) * W + j] = s;
        scale = Math.max(scale, a);
      }
  return { y, scale };
}

/** conv2d at `precision` ("auto" algorithm); `kept`: the weight records no gradient, so its pack is kept. */
function conv(precision: fd.MatmulPrecision, xs: number[], ws: number[], kept: boolean, options: fd.Conv2dOptions = { padding: 1 }): Float32Array {
  fd.setMatmulPrecision(precision);
  return fd.scope(() => {
    const x = fd.tensor(hostValues(xs, 51), xs);
    const w = fd.tensor(hostValues(ws, 52, 0.1), ws);
    return fd.conv2d(x, kept ? w : w.requireGrad(), null, options).dataSync();
  });
}

const SHAPES: [number, number, number][] = [[1, 1, 1], [1, 256, 1536], [7, 3, 5], [14, 33, 32], [17, 64, 47], [196, 256, 768], [65, 301, 129], [3, 1025, 17]];

if (HAS_BF16) {
  describe("matmul precision medium on an AVX512-BF16 CPU", () => {
    test.each(SHAPES)("linear [%i, %i] · [%i, K]ᵀ forward and backward: AVX-512 bf16 kernel vs scalar bf16 oracle", (M, K, N) => {
      const ref = linearAndGrads("scalar", "medium", M, K, N, 11);
      const got = linearAndGrads("avx512", "medium", M, K, N, 11);
      got.forEach((g, i) => expect(maxRelErr(g, ref[i]!)).toBeLessThanOrEqual(TOL_GEMM));
    });

    test("matmul with a transposed operand (strided packing paths) matches the oracle", () => {
      for (const [M, K, N] of [[100, 301, 65], [9, 2, 40]] as const) {
        const a = fd.tensor(hostValues([K, M], 5), [K, M]), b = fd.tensor(hostValues([K, N], 6), [K, N]);
        const run = (isa: fd.Isa) => {
          fd.setIsa(isa);
          fd.setMatmulPrecision("medium");
          return fd.matmul(fd.transpose(a, 0, 1), b).dataSync();
        };
        expect(maxRelErr(run("avx512"), run("scalar"))).toBeLessThanOrEqual(TOL_GEMM);
      }
    });

    test("rounding: nearest even, NaN, ±Inf, overflow to Inf, denormals to zero (kernel and oracle alike)", () => {
      const ulp = 2 ** -7; // bf16 spacing at 1
      const values = [1 + ulp / 2, 1 + (3 * ulp) / 2, 1 + ulp / 2 + 2 ** -20, -(1 + ulp / 2), 3.14159265, -2.71828, 65504,
        3.4028234663852886e38, 1e-40, -1e-40, Infinity, -Infinity, NaN, 0, 1.17549435e-38];
      const n = values.length;
      const a = fd.tensor(Float32Array.from(values), [n, 1]), one = fd.ones([1, 1]);
      const expected = values.map((v) => bf16(v));
      expect(expected.slice(0, 4)).toEqual([1, 1 + 2 * ulp, 1 + ulp, -1]); // the model itself: ties to even
      for (const isa of ["avx512", "scalar"] as const) {
        fd.setIsa(isa);
        fd.setMatmulPrecision("medium");
        expect(Array.from(fd.matmul(a, one).dataSync())).toEqual(expected.map((v) => (Object.is(v, -0) ? 0 : v)));
      }
    });

    test("the error is bf16-sized (1e-4 … 1e-2 relative to float64), float32 stays ≤ 1e-6", () => {
      const [M, K, N] = [64, 256, 96];
      const av = hostValues([M, K], 21), bv = hostValues([K, N], 22);
      const exact = exactMatmul(av, bv, M, K, N);
      const a = fd.tensor(av, [M, K]), b = fd.tensor(bv, [K, N]);
      fd.setMatmulPrecision("medium");
      const medium = maxRelErr(fd.matmul(a, b).dataSync(), exact);
      fd.setMatmulPrecision("highest");
      const highest = maxRelErr(fd.matmul(a, b).dataSync(), exact);
      expect(medium).toBeGreaterThan(1e-4);
      expect(medium).toBeLessThan(1e-2);
      expect(highest).toBeLessThan(1e-6);
    });

    test("bit-identical with 1 and 2 threads", () => {
      fd.setNumThreads(1);
      const one = linearAndGrads("avx512", "medium", 196, 256, 768, 31);
      fd.setNumThreads(2);
      const two = linearAndGrads("avx512", "medium", 196, 256, 768, 31);
      two.forEach((g, i) => expect(g).toEqual(one[i]));
    });

    test("Winograd convolutions: bf16-sized error (1e-4 … 1e-2 of Σ|w||x|), kept and per-call weights and 1 vs 2 threads bit-identical", () => {
      // [x, w, weight kept]: Winograd forced, so that per-call and kept weights take it alike
      const cases: [number[], number[], boolean][] = [
        [[1, 96, 10, 10], [80, 96, 3, 3], true],
        [[4, 64, 16, 16], [48, 64, 3, 3], false],
      ];
      fd.setConvAlgorithm("winograd");
      for (const [xs, ws, kept] of cases) {
        fd.setNumThreads(1);
        const { y: exact, scale } = exactConv(hostValues(xs.slice(1), 51), hostValues(ws, 52, 0.1), xs[1]!, xs[2]!, xs[3]!, ws[0]!);
        const err = (got: Float32Array) => {
          let e = 0;
          for (let i = 0; i < exact.length; ++i) e = Math.max(e, Math.abs(got[i]! - exact[i]!));
          return e / scale;
        };
        const medium = conv("medium", xs, ws, kept);
        const high = conv("high", xs, ws, kept);
        if (process.env.FASTDIFF_BF16_VERBOSE) console.log(xs, err(medium), err(high));
        expect({ xs, medium: err(medium) > 1e-4 && err(medium) < 1e-2, high: err(high) < 4e-6 }).toEqual({ xs, medium: true, high: true });
        expect(conv("medium", xs, ws, !kept)).toEqual(medium);
        fd.setNumThreads(2);
        expect(conv("medium", xs, ws, kept)).toEqual(medium);
      }
    });

    test('"auto" takes Winograd for a kept weight at batch 1 on 2 threads from 32 channels (bf16 GEMMs pay for short K)', () => {
      fd.setNumThreads(2);
      const [xs, ws] = [[1, 64, 28, 28], [64, 64, 3, 3]];
      const auto = conv("medium", xs, ws, true);
      fd.setConvAlgorithm("winograd");
      expect(conv("medium", xs, ws, true)).toEqual(auto);
      fd.setConvAlgorithm("direct");
      expect(conv("medium", xs, ws, true)).not.toEqual(auto);
    });

    test("F(4×4) Winograd keeps float32 GEMMs under medium (its transforms would amplify bf16 rounding to ~5%)", () => {
      fd.setConvAlgorithm("winograd4");
      for (const kept of [true, false])
        expect(conv("medium", [2, 64, 14, 14], [48, 64, 3, 3], kept)).toEqual(conv("high", [2, 64, 14, 14], [48, 64, 3, 3], kept));
    });

    test("direct convolutions (1×1, strided) stay float32 under medium", () => {
      for (const [ws, options] of [[[64, 32, 1, 1], {}], [[64, 32, 3, 3], { stride: 2, padding: 1 }]] as [number[], fd.Conv2dOptions][])
        expect(conv("medium", [1, 32, 14, 14], ws, true, options)).toEqual(conv("high", [1, 32, 14, 14], ws, true, options));
    });
  });
} else {
  describe("matmul precision medium on a CPU without AVX512-BF16 (or without AVX-512 kernels)", () => {
    test.each(SHAPES)("linear [%i, %i] · [%i, K]ᵀ: medium computes in float32, bit-identical to highest", (M, K, N) => {
      const ref = linearAndGrads(BEST, "highest", M, K, N, 11);
      const got = linearAndGrads(BEST, "medium", M, K, N, 11);
      got.forEach((g, i) => expect(g).toEqual(ref[i]));
    });

    test("Winograd convolutions: medium computes in float32, bit-identical to high", () => {
      expect(conv("medium", [1, 128, 14, 14], [128, 128, 3, 3], true)).toEqual(conv("high", [1, 128, 14, 14], [128, 128, 3, 3], true));
    });
  });
}

test("highest and high are bit-identical on the CPU (no TF32 here)", () => {
  const ref = linearAndGrads(BEST, "highest", 33, 70, 21, 41);
  const got = linearAndGrads(BEST, "high", 33, 70, 21, 41);
  got.forEach((g, i) => expect(g).toEqual(ref[i]));
});
