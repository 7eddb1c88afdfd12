// Toy-data metrics: MMD² against a direct double sum and under the null, sliced Wasserstein on
// shifts with known values, mode coverage on a ring of Gaussians with one mode left out.
import { medianHeuristic, mmd2, modeCoverage, slicedWasserstein } from "../../lib/eval";
import { expectArgumentError, gaussian, normalMatrix, uniform } from "./util";

type M = { data: Float64Array; rows: number; cols: number };

/** n i.i.d. samples of the 8-Gaussian ring (radius 2, std 0.05), restricted to the listed modes. */
function ring(n: number, seed: number, modes = [0, 1, 2, 3, 4, 5, 6, 7], std = 0.05): M {
  const g = gaussian(seed);
  const u = uniform(seed + 1000);
  const data = new Float64Array(2 * n);
  for (let i = 0; i < n; ++i) {
    const angle = (2 * Math.PI * modes[Math.floor(u() * modes.length)]!) / 8; // i.i.d.: balanced strata would bias the estimator
    data[2 * i] = 2 * Math.cos(angle) + std * g();
    data[2 * i + 1] = 2 * Math.sin(angle) + std * g();
  }
  return { data, rows: n, cols: 2 };
}
const centres = Array.from({ length: 8 }, (_, k) => [2 * Math.cos((2 * Math.PI * k) / 8), 2 * Math.sin((2 * Math.PI * k) / 8)]);

/** Unbiased MMD² by the literal double sums. */
function mmdReference(x: M, y: M, bandwidths: number[]): number {
  const k = (a: M, i: number, b: M, j: number): number => {
    let d2 = 0;
    for (let t = 0; t < a.cols; ++t) d2 += (a.data[i * a.cols + t]! - b.data[j * b.cols + t]!) ** 2;
    return bandwidths.reduce((s, h) => s + Math.exp(-d2 / (2 * h * h)), 0);
  };
  let xx = 0, yy = 0, xy = 0;
  for (let i = 0; i < x.rows; ++i) for (let j = 0; j < x.rows; ++j) if (i !== j) xx += k(x, i, x, j);
  for (let i = 0; i < y.rows; ++i) for (let j = 0; j < y.rows; ++j) if (i !== j) yy += k(y, i, y, j);
  for (let i = 0; i < x.rows; ++i) for (let j = 0; j < y.rows; ++j) xy += k(x, i, y, j);
  const m = x.rows, n = y.rows;
  return xx / (m * (m - 1)) + yy / (n * (n - 1)) - (2 * xy) / (m * n);
}

describe("mmd2", () => {
  test("equals the literal unbiased double sum (1e-12), fixed and median-heuristic bandwidths", () => {
    const x = normalMatrix(70, 3, 1);
    const y = normalMatrix(90, 3, 2, 1.5, [0.3, 0, 0]);
    expect(mmd2(x, y, { bandwidths: [0.7, 2] })).toBeCloseTo(mmdReference(x, y, [0.7, 2]), 12);
    const h = medianHeuristic(x, y);
    expect(mmd2(x, y)).toBeCloseTo(mmdReference(x, y, [h / 2, h, 2 * h]), 12);
    // The median of the 160·159/2 pooled distances, literally.
    const pooled: number[][] = [];
    for (const m of [x, y]) for (let i = 0; i < m.rows; ++i) pooled.push(Array.from(m.data.subarray(3 * i, 3 * i + 3)));
    const ds: number[] = [];
    for (let i = 0; i < pooled.length; ++i) for (let j = i + 1; j < pooled.length; ++j) ds.push(Math.hypot(...pooled[i]!.map((v, t) => v - pooled[j]![t]!)));
    ds.sort((a, b) => a - b);
    expect(h).toBeCloseTo(0.5 * (ds[ds.length / 2 - 1]! + ds[ds.length / 2]!), 12);
  });

  test("same distribution: ≈ 0 within sampling error; a shift or a dropped mode is many null standard deviations away", () => {
    const nullRuns = (f: (s: number) => number): { mean: number; sd: number } => {
      const runs = Array.from({ length: 10 }, (_, s) => f(s));
      const mean = runs.reduce((a, b) => a + b, 0) / runs.length;
      return { mean, sd: Math.sqrt(runs.reduce((a, b) => a + (b - mean) ** 2, 0) / (runs.length - 1)) };
    };
    // 2-D standard normals, default (median-heuristic) bandwidths: unbiased, so the null mean is 0 ± 3 standard errors.
    const gauss = nullRuns((s) => mmd2(normalMatrix(500, 2, 10 + s), normalMatrix(500, 2, 100 + s)));
    expect(Math.abs(gauss.mean)).toBeLessThan((3 * gauss.sd) / Math.sqrt(10));
    expect(gauss.sd).toBeLessThan(0.01);
    const shifted = mmd2(normalMatrix(500, 2, 10), normalMatrix(500, 2, 11, 1, [0.5, 0]));
    expect(shifted).toBeGreaterThan(gauss.mean + 10 * gauss.sd);
    // The 8-Gaussian ring with bandwidths at the mode scale: dropping one of 8 modes.
    const bandwidths = [0.05, 0.1, 0.2];
    const ringNull = nullRuns((s) => mmd2(ring(500, 10 + s), ring(500, 100 + s), { bandwidths }));
    expect(Math.abs(ringNull.mean)).toBeLessThan((3 * ringNull.sd) / Math.sqrt(10));
    expect(mmd2(ring(500, 10), ring(500, 8, [0, 1, 2, 3, 4, 5, 6]), { bandwidths })).toBeGreaterThan(ringNull.mean + 5 * ringNull.sd);
  });

  test("bad input throws", () => {
    expectArgumentError(() => mmd2(normalMatrix(5, 2, 1), normalMatrix(5, 3, 2)), /^mmd2: dims differ: x \[5, 2\] vs y \[5, 3\]/);
    expectArgumentError(() => mmd2(normalMatrix(1, 2, 1), normalMatrix(5, 2, 2)), /^mmd2: need at least 2 samples per set, got x \[1, 2\]/);
    expectArgumentError(() => mmd2(normalMatrix(5, 2, 1), normalMatrix(5, 2, 2), { bandwidths: [1, 0] }), /^mmd2: bandwidths must be positive/);
  });
});

describe("slicedWasserstein", () => {
  test("1-D: a shift by v gives exactly |v| (p = 1 and 2); unequal sizes use exact quantile functions", () => {
    const x = normalMatrix(333, 1, 3);
    const y = { data: x.data.map((v) => v - 0.75), rows: 333, cols: 1 };
    expect(slicedWasserstein(x, y)).toBeCloseTo(0.75, 12);
    expect(slicedWasserstein(x, y, { p: 2, projections: 3 })).toBeCloseTo(0.75, 12);
    // {0, 1} vs {0, ½, 1}: |F⁻¹ − G⁻¹| = ½ on (⅓, ⅔): W1 = 1/6, W2 = √(1/12).
    expect(slicedWasserstein([[0], [1]], [[0], [0.5], [1]])).toBeCloseTo(1 / 6, 14);
    expect(slicedWasserstein([[1], [0]], [[0.5], [1], [0]], { p: 2 })).toBeCloseTo(Math.sqrt(1 / 12), 14);
  });

  test("2-D shift by v: exactly mean |⟨v, θ⟩| for given directions; ≈ 2|v|/π (W1) and |v|/√2 (SW2) for 4096 random ones", () => {
    const x = ring(500, 4);
    const v = [0.3, -0.4]; // |v| = 0.5
    const y = { data: x.data.map((a, i) => a + v[i % 2]!), rows: 500, cols: 2 };
    const directions = [[1, 0], [0, 2], [1, 1], [-3, 1]];
    const expected = directions.reduce((s, [a, b]) => s + Math.abs(v[0]! * a! + v[1]! * b!) / Math.hypot(a!, b!), 0) / 4;
    expect(slicedWasserstein(x, y, { directions })).toBeCloseTo(expected, 12);
    expect(Math.abs(slicedWasserstein(x, y, { projections: 4096, seed: 1 }) / ((2 * 0.5) / Math.PI) - 1)).toBeLessThan(0.03);
    expect(Math.abs(slicedWasserstein(x, y, { projections: 4096, seed: 2, p: 2 }) / (0.5 / Math.SQRT2) - 1)).toBeLessThan(0.03);
  });

  test("seeded and deterministic; same distribution ≪ shifted or mode-dropped", () => {
    const a = normalMatrix(800, 2, 1);
    const b = normalMatrix(800, 2, 2);
    expect(slicedWasserstein(a, b, { seed: 5 })).toBe(slicedWasserstein(a, b, { seed: 5 }));
    expect(slicedWasserstein(a, b, { seed: 5 })).not.toBe(slicedWasserstein(a, b, { seed: 6 }));
    const nullMax = Math.max(...Array.from({ length: 8 }, (_, s) => slicedWasserstein(normalMatrix(800, 2, 20 + s), normalMatrix(800, 2, 40 + s))));
    const shifted = slicedWasserstein(a, normalMatrix(800, 2, 3, 1, [0.5, 0]));
    expect(Math.abs(shifted - 1 / Math.PI)).toBeLessThan(0.05); // 2|v|/π up to sampling noise
    expect(shifted).toBeGreaterThan(3 * nullMax);
    const ringMax = Math.max(...Array.from({ length: 8 }, (_, s) => slicedWasserstein(ring(800, 20 + s), ring(800, 40 + s))));
    expect(slicedWasserstein(ring(800, 1), ring(800, 2, [0, 1, 2, 3, 4, 5, 6]))).toBeGreaterThan(2 * ringMax);
  });

  test("bad input throws", () => {
    expectArgumentError(() => slicedWasserstein([[0, 1]], [[0, 1]], { directions: [[0, 0]] }), /^slicedWasserstein: direction 0 is zero/);
    expectArgumentError(() => slicedWasserstein([[0, 1]], [[0, 1]], { directions: [[1, 0, 0]] }), /^slicedWasserstein: directions \[1, 3\] must be \[L ≥ 1, 2\]/);
    expectArgumentError(() => slicedWasserstein([[0, 1]], [[0, 1]], { p: 0.5 }), /^slicedWasserstein: p must be ≥ 1/);
    expectArgumentError(() => slicedWasserstein([[0, 1]], [[0]]), /^slicedWasserstein: dims differ: x \[1, 2\] vs y \[1, 1\]/);
  });
});

describe("modeCoverage", () => {
  test("ring of 8 with mode 3 missing: covered = total − 1, counts and off-mode fraction", () => {
    const samples = ring(1400, 9, [0, 1, 2, 4, 5, 6, 7]);
    const r = modeCoverage(samples, centres, { std: 0.05 });
    expect([r.covered, r.total]).toEqual([7, 8]);
    expect(r.fraction).toBe(7 / 8);
    expect(r.countsPerMode[3]).toBe(0);
    expect(r.countsPerMode.reduce((a, b) => a + b, 0) + Math.round(r.offModeFraction * 1400)).toBe(1400);
    expect(r.offModeFraction).toBeLessThan(0.03); // P(‖z‖ > 3σ) = e^{−4.5} ≈ 1.1% in 2-D
  });

  test("far outliers are off-mode; minCount and radius decide coverage", () => {
    const samples = [[2, 0], [2.01, 0], [0, 2], [10, 10], [-10, 0]];
    const r = modeCoverage(samples, centres, { radius: 0.1 });
    expect(r.countsPerMode).toEqual([2, 0, 1, 0, 0, 0, 0, 0]);
    expect(r.covered).toBe(2);
    expect(r.offModeFraction).toBe(2 / 5);
    expect(modeCoverage(samples, centres, { radius: 0.1, minCount: 2 }).covered).toBe(1);
    expect(modeCoverage(samples, centres, { radius: 0.005 }).countsPerMode[0]).toBe(1);
  });

  test("bad input throws", () => {
    expectArgumentError(() => modeCoverage([[0, 0]], centres), /^modeCoverage: give a finite radius/);
    expectArgumentError(() => modeCoverage([[0, 0, 0]], centres, { std: 1 }), /^modeCoverage: dims differ: samples \[1, 3\] vs modes \[8, 2\]/);
    expectArgumentError(() => modeCoverage([[0, 0]], centres, { std: 1, minCount: 0 }), /^modeCoverage: minCount must be a positive integer/);
  });
});
