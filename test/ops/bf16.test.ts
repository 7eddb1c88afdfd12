// Matmul precision "medium" on the CPU: operands rounded to bfloat16, products summed in float32
// (AVX512-BF16 vdpbf16ps). The AVX-512 kernel against the scalar oracle (which rounds the same way and
// sums in double), the rounding itself against a JavaScript model of round-to-nearest-even, the size of
// the error against float64 (it must be bf16-sized, or the fast path is not running), thread-count
// determinism, and — on CPUs without the instruction — bit-identity with float32.
import * as fd from "../../lib";

import { engineSettings, hostValues, maxRelErr } from "../helpers";

const { best: BEST, threads: THREADS } = engineSettings();
const HAS_BF16 = BEST === "avx512" && fd.devices().cpu.features.avx512bf16;
const TOL_GEMM = 1e-5; // SIMD vs oracle: same bf16 operands, float32 vs double accumulation (measured ≤ 6e-7)

afterEach(() => {
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
  });
} else {
  describe("matmul precision medium on a CPU without AVX512-BF16 (or without AVX-512 kernels)", () => {
    test.each(SHAPES)("linear [%i, %i] · [%i, K]ᵀ: medium computes in float32, bit-identical to highest", (M, K, N) => {
      const ref = linearAndGrads(BEST, "highest", M, K, N, 11);
      const got = linearAndGrads(BEST, "medium", M, K, N, 11);
      got.forEach((g, i) => expect(g).toEqual(ref[i]));
    });
  });
}

test("highest and high are bit-identical on the CPU (no TF32 here)", () => {
  const ref = linearAndGrads(BEST, "highest", 33, 70, 21, 41);
  const got = linearAndGrads(BEST, "high", 33, 70, 21, 41);
  got.forEach((g, i) => expect(g).toEqual(ref[i]));
});
