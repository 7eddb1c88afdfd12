// linear and conv2d keep a weight packed for the GEMM across calls (linear: Wᵀ as the B operand,
// conv2d: the weight rows as the A operand, or on a Winograd path the 16 or 36 transformed weight
// matrices U) when they record no gradient for that weight
// (sampling, frozen teachers). The packed path must be bit-identical
// to packing per call, for every ISA, precision and block structure (one or several K blocks,
// row blocks and column blocks), and must never serve stale values: after copy, an optimizer
// step or an EMA update of the weight, after an ISA or precision switch, and across views of
// one storage, the result equals a fresh computation.
import * as fd from "../../lib";

import { engineSettings, hostValues, maxRelErr, sameBits, convPathOf } from "../helpers";

const { best: BEST, isas: ISAS, threads: THREADS } = engineSettings();
const HAS_BF16 = BEST === "avx512" && fd.devices().cpu.features.avx512bf16;
const TOL_GEMM = 1e-5; // SIMD vs the scalar reference (maxRelErr), as in kernels.test.ts

afterEach(() => {
  fd.setMatmulPrecision("high");
  fd.setIsa(BEST);
  fd.setNumThreads(THREADS);
});

/** linear(x, w, b) with w's pack kept across calls (no gradient recorded for w). */
function reused(x: fd.Tensor, w: fd.Tensor, b: fd.Tensor | null): Float32Array {
  return fd.noGrad(() => fd.scope(() => fd.linear(x, w, b).dataSync()));
}

/** linear(x, w, b) packing w in this call: w's gradient is recorded. */
function perCall(x: fd.Tensor, w: fd.Tensor, b: fd.Tensor | null): Float32Array {
  return fd.scope(() => {
    const wg = fd.noGrad(() => w.clone()).requireGrad();
    return fd.linear(x, wg, b).dataSync();
  });
}

// [M, N, K]: one K block / two (K > 1024), one row block / several (M > 140 on AVX-512, > 72 on
// AVX2), one column block / several (N > 1024), partial panels and tiles, a single row (GEMV).
const SHAPES: [number, number, number][] = [
  [1, 1536, 256],
  [3, 33, 7],
  [196, 768, 256],
  [300, 1100, 33],
  [29, 70, 1500],
  [150, 1030, 1030],
];

describe.each(ISAS)("packed weights under %s", (isa) => {
  const precisions: fd.MatmulPrecision[] = isa === "avx512" && HAS_BF16 ? ["high", "medium"] : ["high"];
  test.each(precisions)("bit-identical to packing per call (%s), 1 and 2 threads, and close to the scalar reference", (precision) => {
    SHAPES.forEach(([M, N, K], s) => {
      fd.scope(() => {
        const x = fd.tensor(hostValues([M, K], 10 + s), [M, K]);
        const w = fd.tensor(hostValues([N, K], 20 + s), [N, K]);
        const b = s % 2 ? null : fd.tensor(hostValues([N], 30 + s), [N]);
        fd.setMatmulPrecision(precision);
        fd.setIsa("scalar");
        const ref = perCall(x, w, b);
        fd.setIsa(isa);
        for (const threads of [1, 2]) {
          fd.setNumThreads(threads);
          const fresh = perCall(x, w, b);
          const first = reused(x, w, b); // packs
          const again = reused(x, w, b); // reuses the pack
          expect({ shape: [M, N, K], threads, first: sameBits(first, fresh), again: sameBits(again, fresh) }).toEqual({
            shape: [M, N, K], threads, first: true, again: true,
          });
          expect(maxRelErr(again, ref)).toBeLessThan(precision === "medium" ? 1e-5 : TOL_GEMM);
        }
      });
    });
  });
});

type Conv = [number[], number[], fd.Conv2dOptions]; // input, weight, options
// 3×3 at the UNet's 28/14/7 sizes (K = C·9 in one or several K blocks: kc_conv is 600 on
// AVX-512; Winograd: K = C), more output channels than one row block, 1×1 (the plain-matrix K
// blocking), strided, groups > 1 (no pack), and a batch of 8 (Winograd splits tiles over threads).
// At batch 1 and 2 threads Winograd splits the output channels evenly: 128 → rows 64.. and 300 → rows 150..
// (more than one row block) start inside a packed panel of U (mr = 14 on AVX-512, 6 on AVX2).
const CONVS: Conv[] = [
  [[1, 64, 28, 28], [64, 64, 3, 3], { padding: 1 }],
  [[1, 128, 7, 7], [128, 128, 3, 3], { padding: 1 }],
  [[1, 40, 7, 7], [300, 40, 3, 3], { padding: 1 }],
  [[1, 256, 14, 14], [128, 256, 3, 3], { padding: 1 }],
  [[2, 20, 9, 11], [200, 20, 3, 3], { padding: 1 }],
  [[1, 96, 14, 14], [130, 96, 1, 1], {}],
  [[1, 32, 15, 15], [48, 32, 3, 3], { stride: 2, padding: 1 }],
  [[1, 32, 12, 12], [48, 16, 3, 3], { padding: 1, groups: 2 }],
  [[8, 64, 14, 14], [64, 64, 3, 3], { padding: 1 }],
];

function convReused(x: fd.Tensor, w: fd.Tensor, b: fd.Tensor, o: fd.Conv2dOptions): Float32Array {
  return fd.noGrad(() => fd.scope(() => fd.conv2d(x, w, b, o).dataSync()));
}
function convPerCall(x: fd.Tensor, w: fd.Tensor, b: fd.Tensor, o: fd.Conv2dOptions): Float32Array {
  return fd.scope(() => fd.conv2d(x, fd.noGrad(() => w.clone()).requireGrad(), b, o).dataSync());
}

// Winograd's error is relative to Σ|w||x| rather than to each output (test/ops/winograd.test.ts).
const TOL_WINOGRAD: Record<string, number> = { winograd: 4e-6, winograd4: 3e-5 };

describe.each(ISAS)("packed conv weights under %s", (isa) => {
  afterEach(() => fd.setConvAlgorithm("auto"));
  test.each(["direct", "winograd", "winograd4"] as fd.ConvAlgorithm[])(
    "bit-identical to packing per call (%s), 1 and 2 threads, and close to the scalar reference",
    (algorithm) => {
      CONVS.forEach(([xs, ws, o], c) => {
        fd.scope(() => {
          const x = fd.tensor(hostValues(xs, 40 + c), xs);
          const w = fd.tensor(hostValues(ws, 50 + c, 0.2), ws);
          const b = fd.tensor(hostValues([ws[0]!], 60 + c), [ws[0]!]);
          fd.setIsa("scalar");
          const ref = convPerCall(x, w, b, o);
          fd.setIsa(isa);
          fd.setConvAlgorithm(algorithm);
          for (const threads of [1, 2]) {
            fd.setNumThreads(threads);
            const fresh = convPerCall(x, w, b, o);
            const first = convReused(x, w, b, o);
            const again = convReused(x, w, b, o);
            expect({ conv: c, threads, first: sameBits(first, fresh), again: sameBits(again, fresh) }).toEqual({
              conv: c, threads, first: true, again: true,
            });
            let scale = 0;
            for (const v of ref) scale = Math.max(scale, Math.abs(v));
            let err = 0;
            for (let i = 0; i < ref.length; ++i) err = Math.max(err, Math.abs(again[i]! - ref[i]!));
            if (algorithm === "direct") expect(maxRelErr(again, ref)).toBeLessThan(TOL_GEMM);
            else expect(err / scale).toBeLessThan(TOL_WINOGRAD[algorithm]!);
          }
        });
      });
    },
  );

  // bf16 panels ("medium": k-pairs in 32-bit words, read MR words per step like the float32 ones): a thread's
  // share of U starting inside a panel must be read at the same offset. Only where "medium" has bf16 kernels
  // (AVX512-BF16), like the linear test's precisions above.
  const bf16Algorithms: fd.ConvAlgorithm[] = isa === "avx512" && HAS_BF16 ? ["direct", "winograd"] : [];
  if (bf16Algorithms.length) test.each(bf16Algorithms)(
    'bit-identical to packing per call under matmul precision "medium" (%s), 1 and 2 threads',
    (algorithm) => {
      fd.setIsa(isa);
      fd.setConvAlgorithm(algorithm);
      fd.setMatmulPrecision("medium");
      CONVS.forEach(([xs, ws, o], c) => {
        fd.scope(() => {
          const x = fd.tensor(hostValues(xs, 40 + c), xs);
          const w = fd.tensor(hostValues(ws, 50 + c, 0.2), ws);
          const b = fd.tensor(hostValues([ws[0]!], 60 + c), [ws[0]!]);
          for (const threads of [1, 2]) {
            fd.setNumThreads(threads);
            const fresh = convPerCall(x, w, b, o);
            const again = (convReused(x, w, b, o), convReused(x, w, b, o));
            expect({ conv: c, threads, same: sameBits(again, fresh) }).toEqual({ conv: c, threads, same: true });
          }
        });
      });
    },
  );

  test('"auto" at batch 1: F(4×4) for kept weights from 16 tiles (32 on 2 threads), F(2×2) below; per call, F(4×4) from 16 tiles per thread', () => {
    // [input size, threads, weight kept, the path "auto" takes] for 64 → 64 channels (kernels/winograd.cc,
    // kernels/direct3x3.cc)
    const cases: [number, number, boolean, fd.ConvAlgorithm][] = [
      [28, 1, true, "winograd4"], // 49 tiles of 4×4
      [28, 2, true, "winograd4"],
      [28, 2, false, "winograd4"], // 49 ≥ 16 per thread
      [14, 1, true, "winograd4"], // 16 tiles
      [14, 2, true, "direct"], // 16 < 32; F(2×2) pays on 2 threads from 128 input channels
      [14, 2, false, "direct"], // 16 < 32; 49 tiles of 2×2 < 256
      [7, 1, true, "winograd"], // 4 tiles of 4×4, 16 of 2×2
      [7, 2, true, isa === "avx512" ? "direct3x3" : "direct"], // 49 outputs: the direct 3×3 kernel where there is one
    ];
    fd.setIsa(isa);
    for (const [size, threads, kept, want] of cases)
      fd.scope(() => {
        const xs = [1, 64, size, size];
        const x = fd.tensor(hostValues(xs, 70), xs);
        const w = fd.tensor(hostValues([64, 64, 3, 3], 71, 0.2), [64, 64, 3, 3]);
        const b = fd.tensor(hostValues([64], 72), [64]);
        const o = { padding: 1 };
        fd.setNumThreads(threads);
        fd.setConvAlgorithm(want);
        const forced = convPerCall(x, w, b, o);
        fd.setConvAlgorithm("auto");
        let got = new Float32Array(0);
        const took = convPathOf(() => (got = kept ? convReused(x, w, b, o) : convPerCall(x, w, b, o)));
        expect({ size, threads, kept, took, sameBits: sameBits(got, forced) }).toEqual({ size, threads, kept, took: want, sameBits: true });
      });
  });
});

describe("a packed weight is never stale", () => {
  const [M, N, K] = [5, 40, 24];
  const x = () => fd.tensor(hostValues([M, K], 1), [M, K]);

  test("after copy into the weight", () => {
    fd.scope(() => {
      const w = fd.tensor(hostValues([N, K], 2), [N, K]);
      const w2 = fd.tensor(hostValues([N, K], 3), [N, K]);
      const before = reused(x(), w, null);
      fd.copy(w, w2);
      const after = reused(x(), w, null);
      expect(sameBits(after, perCall(x(), w2, null))).toBe(true);
      expect(sameBits(after, before)).toBe(false);
    });
  });

  test("conv2d: after copy into the weight, and between batch sizes whose paths keep different packs", () => {
    // x1 (7×7): F(2×2)'s U kept on 1 thread, the direct pack on 2 (64 input channels); x8: F(4×4)'s U.
    // One slot per weight.
    for (const threads of [1, 2])
      fd.scope(() => {
        fd.setNumThreads(threads);
        const w = fd.tensor(hostValues([64, 64, 3, 3], 9, 0.2), [64, 64, 3, 3]);
        const w2 = fd.tensor(hostValues([64, 64, 3, 3], 10, 0.2), [64, 64, 3, 3]);
        const b = fd.zeros([64]);
        const o = { padding: 1 };
        const x1 = fd.tensor(hostValues([1, 64, 7, 7], 11), [1, 64, 7, 7]);
        const x8 = fd.tensor(hostValues([8, 64, 7, 7], 12), [8, 64, 7, 7]);
        const before = convReused(x1, w, b, o);
        fd.copy(w, w2);
        for (const x of [x1, x8, x1]) {
          const got = convReused(x, w, b, o);
          fd.setConvAlgorithm(x === x8 ? "winograd4" : threads === 1 ? "winograd" : "direct"); // the path "auto" takes
          const want = convPerCall(x, w2, b, o);
          fd.setConvAlgorithm("auto");
          expect({ threads, batch: x.shape[0], fresh: sameBits(got, want) }).toEqual({ threads, batch: x.shape[0], fresh: true });
        }
        expect(sameBits(convReused(x1, w, b, o), before)).toBe(false);
      });
  });

  test("after Adam, SGD and EMA steps", () => {
    fd.scope(() => {
      const w = fd.tensor(hostValues([N, K], 4), [N, K]).requireGrad();
      const step = (opt: { step(): void }) => {
        fd.scope(() => fd.sum(fd.linear(x(), w)).backward());
        opt.step();
        w.grad = null;
      };
      for (const opt of [new fd.Adam([w], { lr: 0.1 }), new fd.SGD([w], { lr: 0.1 })]) {
        const before = reused(x(), w, null); // packs w (no gradient recorded under noGrad)
        step(opt);
        const after = reused(x(), w, null);
        expect(sameBits(after, before)).toBe(false);
        expect(sameBits(after, perCall(x(), w, null))).toBe(true);
      }
      const ema = new fd.EMA([w], { decay: 0.5 });
      const avg = ema.averages[0]!;
      reused(x(), avg, null);
      step(new fd.SGD([w], { lr: 1 }));
      ema.update();
      expect(sameBits(reused(x(), avg, null), perCall(x(), avg, null))).toBe(true);
    });
  });

  test("after an ISA or precision switch, and across views of one storage", () => {
    fd.scope(() => {
      const w = fd.tensor(hostValues([N, K], 5), [N, K]);
      for (const isa of ["scalar", ...ISAS] as fd.Isa[]) {
        fd.setIsa(isa);
        expect(sameBits(reused(x(), w, null), perCall(x(), w, null))).toBe(true);
      }
      if (HAS_BF16) {
        fd.setIsa("avx512");
        reused(x(), w, null);
        fd.setMatmulPrecision("medium");
        expect(sameBits(reused(x(), w, null), perCall(x(), w, null))).toBe(true);
        fd.setMatmulPrecision("high");
        expect(sameBits(reused(x(), w, null), perCall(x(), w, null))).toBe(true);
      }
      // Two halves of one storage (split shares it at different offsets), used alternately.
      const both = fd.tensor(hostValues([2 * N, K], 6), [2 * N, K]);
      const [top, bottom] = fd.split(both, N, 0);
      for (let r = 0; r < 3; ++r)
        for (const half of [top!, bottom!]) expect(sameBits(reused(x(), half, null), perCall(x(), half.clone(), null))).toBe(true);
    });
  });

  test("a pack is made where the kernel uses one, counted in fd.memory() and freed with its weight", () => {
    const bytesAfter = (f: () => void) => {
      fd.synchronize();
      const before = fd.memory().bytes;
      f();
      fd.synchronize();
      return fd.memory().bytes - before;
    };
    const cases: [string, number[], (w: fd.Tensor) => void, boolean][] = [
      ["linear", [256, 512], (w) => void reused(fd.zeros([3, 512]), w, null), true],
      ["conv b1", [64, 64, 3, 3], (w) => void convReused(fd.zeros([1, 64, 14, 14]), w, fd.zeros([64]), { padding: 1 }), true],
      ["conv b8 (Winograd)", [64, 64, 3, 3], (w) => void convReused(fd.zeros([8, 64, 14, 14]), w, fd.zeros([64]), { padding: 1 }), true],
      ["conv groups 2", [64, 32, 3, 3], (w) => void convReused(fd.zeros([1, 64, 14, 14]), w, fd.zeros([64]), { padding: 1, groups: 2 }), false],
      ["linear, weight trained", [256, 512], (w) => void fd.scope(() => fd.linear(fd.zeros([3, 512]), w.requireGrad())), false],
    ];
    for (const [name, shape, use, packs] of cases) {
      const w = fd.zeros(shape);
      const weightBytes = shape.reduce((a, b) => a * b, 4);
      const grown = bytesAfter(() => fd.scope(() => use(w)));
      expect({ name, packed: grown >= weightBytes }).toEqual({ name, packed: packs });
      const freed = bytesAfter(() => w.dispose());
      expect({ name, freed: -freed >= weightBytes + (packs ? weightBytes : 0) }).toEqual({ name, freed: true });
    }
  });

  test("packs do not accumulate: 2,000 sampling-style calls at constant memory", () => {
    fd.scope(() => {
      const w = fd.tensor(hostValues([256, 256], 7), [256, 256]);
      const xb = fd.tensor(hostValues([16, 256], 8), [16, 256]);
      const run = (n: number) => {
        for (let i = 0; i < n; ++i) fd.noGrad(() => fd.scope(() => void fd.linear(xb, w, null)));
        fd.synchronize();
      };
      run(10);
      const before = fd.memory().bytes;
      run(2000);
      expect(fd.memory().bytes).toBe(before);
    });
  });
});
