// k-NN manifold metrics: exact agreement with a brute-force reference, the limiting cases
// (identical sets, a collapsed generator, disjoint sets) and the 2,000 × 2,000 × 128 timing.
import { kNearestRadii, precisionRecall } from "../../lib/eval";
import { expectArgumentError, maxAbsDiff, normalMatrix } from "./util";

type M = { data: Float64Array; rows: number; cols: number };

function dist(a: M, i: number, b: M, j: number): number {
  let s = 0;
  for (let t = 0; t < a.cols; ++t) s += (a.data[i * a.cols + t]! - b.data[j * b.cols + t]!) ** 2;
  return Math.sqrt(s);
}
function radii(x: M, k: number): number[] {
  return Array.from({ length: x.rows }, (_, i) => {
    const ds = Array.from({ length: x.rows }, (_, j) => dist(x, i, x, j)).filter((_, j) => j !== i).sort((p, q) => p - q);
    return ds[k - 1]!;
  });
}
/** The definitions, literally: O(n²) with sorting. */
function bruteForce(real: M, gen: M, k: number) {
  const rr = radii(real, k);
  const rg = radii(gen, k);
  let precision = 0, recall = 0, coverage = 0, inside = 0;
  for (let j = 0; j < gen.rows; ++j) {
    let any = false;
    for (let i = 0; i < real.rows; ++i) if (dist(gen, j, real, i) <= rr[i]!) (any = true), ++inside;
    if (any) ++precision;
  }
  for (let i = 0; i < real.rows; ++i) {
    if (Array.from({ length: gen.rows }, (_, j) => dist(real, i, gen, j) <= rg[j]!).some(Boolean)) ++recall;
    if (Array.from({ length: gen.rows }, (_, j) => dist(real, i, gen, j)).some((v) => v <= rr[i]!)) ++coverage;
  }
  return { precision: precision / gen.rows, recall: recall / real.rows, density: inside / (k * gen.rows), coverage: coverage / real.rows };
}

describe("precisionRecall", () => {
  test.each([1, 3, 5])("matches the brute-force definitions exactly (150 real vs 170 generated, d = 5, k = %i)", (k) => {
    const real = normalMatrix(150, 5, 1);
    const gen = normalMatrix(170, 5, 2, 1.3, [0.5, 0, 0, 0, 0]);
    const got = precisionRecall(real, gen, { k });
    const ref = bruteForce(real, gen, k);
    expect(got.precision).toBeCloseTo(ref.precision, 12);
    expect(got.recall).toBeCloseTo(ref.recall, 12);
    expect(got.density).toBeCloseTo(ref.density, 12);
    expect(got.coverage).toBeCloseTo(ref.coverage, 12);
    expect(got.k).toBe(k);
    expect(ref.precision).toBeGreaterThan(0.3); // a non-trivial case: neither 0 nor 1
    expect(ref.precision).toBeLessThan(1);
    expect(maxAbsDiff(kNearestRadii(real, k), radii(real, k))).toBeLessThan(1e-12);
  });

  test("identical sets: precision = recall = coverage = 1 (features far from the origin too)", () => {
    const x = normalMatrix(700, 16, 3, 1, new Array(16).fill(1000));
    const r = precisionRecall(x, x);
    expect([r.precision, r.recall, r.coverage]).toEqual([1, 1, 1]);
    expect(r.density).toBeGreaterThan(0.8);
  });

  test("collapsed generator (all samples near one real point): recall < 0.2, precision stays > 0.95", () => {
    const real = normalMatrix(1000, 8, 4);
    const gen = normalMatrix(1000, 8, 5, 0.01, Array.from(real.data.subarray(0, 8))); // around real sample 0
    const r = precisionRecall(real, gen);
    expect(r.precision).toBeGreaterThan(0.95);
    expect(r.recall).toBeLessThan(0.2);
    expect(r.coverage).toBeLessThan(0.2);
  });

  test("disjoint distributions (shift of 20σ): precision = recall = 0", () => {
    const real = normalMatrix(400, 4, 6);
    const gen = normalMatrix(400, 4, 7, 1, [20, 0, 0, 0]);
    const r = precisionRecall(real, gen);
    expect([r.precision, r.recall, r.density, r.coverage]).toEqual([0, 0, 0, 0]);
  });

  test("cached realRadii give the same result; float32 and float64 inputs agree", () => {
    const real = normalMatrix(300, 12, 8);
    const gen = normalMatrix(320, 12, 9, 1.2);
    const direct = precisionRecall(real, gen, { k: 4 });
    expect(precisionRecall(real, gen, { k: 4, realRadii: kNearestRadii(real, 4) })).toEqual(direct);
    const f32 = (m: M) => ({ data: Float32Array.from(m.data), rows: m.rows, cols: m.cols });
    const r32 = precisionRecall(f32(real), f32(gen), { k: 4 });
    expect(Math.abs(r32.precision - direct.precision)).toBeLessThanOrEqual(2 / 320); // float32 rounding may flip a boundary point
  });

  test("2,000 vs 2,000 × 128 in about a second", () => {
    const real = normalMatrix(2000, 128, 10);
    const gen = normalMatrix(2000, 128, 11); // same distribution
    const t0 = performance.now();
    const r = precisionRecall(real, gen);
    const ms = performance.now() - t0;
    console.log(`precisionRecall 2000 vs 2000 × 128 (k = 3): ${ms.toFixed(0)} ms ${JSON.stringify(r)}`);
    for (const v of [r.precision, r.recall, r.coverage]) expect(v).toBeGreaterThan(0.5);
    expect(ms).toBeLessThan(3000); // ~1 s alone; the development machine is shared
  });

  test("bad input throws: k ≥ n, mismatched dims, NaN, wrong radii length", () => {
    const a = normalMatrix(5, 3, 1);
    expectArgumentError(() => precisionRecall(a, normalMatrix(10, 3, 2), { k: 5 }), /^precisionRecall: k = 5 needs more than k samples, got \[5, 3\]/);
    expectArgumentError(() => precisionRecall(a, normalMatrix(10, 4, 2)), /^precisionRecall: feature dims differ: real \[5, 3\] vs generated \[10, 4\]/);
    expectArgumentError(() => precisionRecall(a, a, { k: 0 }), /^precisionRecall: k must be a positive integer, got 0/);
    const bad = normalMatrix(10, 3, 3);
    bad.data[29] = NaN;
    expectArgumentError(() => precisionRecall(a, bad), /^precisionRecall: generated \[10, 3\]: non-finite value NaN at row 9, col 2/);
    expectArgumentError(() => precisionRecall(a, a, { realRadii: [1, 2] }), /^precisionRecall: realRadii has 2 values for real \[5, 3\]/);
    expectArgumentError(() => kNearestRadii(a, 5), /^kNearestRadii: k = 5 needs more than k samples/);
  });
});
