// Fréchet distance: exact statistics against closed forms, sampled Gaussians against the analytic
// value, and an independent Denman–Beavers square root for non-commuting covariances.
import { featureStats, frechetDistance, frechetFromStats, symmetricEigen, type FeatureStats } from "../../lib/eval";
import { expectArgumentError, mulSquare, normalMatrix, randomSpd } from "./util";

const nested = (a: ArrayLike<number>, d: number): number[][] => Array.from({ length: d }, (_, i) => Array.from(a).slice(i * d, (i + 1) * d));
const stats = (mean: number[], cov: ArrayLike<number>, n = 1000): FeatureStats => ({ mean, cov: nested(cov, mean.length), n });
const diag = (v: number[]): Float64Array => {
  const d = v.length;
  return Float64Array.from({ length: d * d }, (_, i) => (i % (d + 1) === 0 ? v[i / (d + 1)]! : 0));
};
const sqDist = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + (v - b[i]!) ** 2, 0);
const tr = (a: ArrayLike<number>, d: number): number => Array.from({ length: d }, (_, i) => a[i * (d + 1)]!).reduce((s, v) => s + v, 0);

/** Inverse by Gauss–Jordan with partial pivoting (reference only). */
function inverse(a: Float64Array, n: number): Float64Array {
  const m = Float64Array.from(a);
  const inv = diag(new Array<number>(n).fill(1));
  for (let c = 0; c < n; ++c) {
    let p = c;
    for (let r = c + 1; r < n; ++r) if (Math.abs(m[r * n + c]!) > Math.abs(m[p * n + c]!)) p = r;
    for (const x of [m, inv]) for (let k = 0; k < n; ++k) [x[c * n + k], x[p * n + k]] = [x[p * n + k]!, x[c * n + k]!];
    const f = 1 / m[c * n + c]!;
    for (const x of [m, inv]) for (let k = 0; k < n; ++k) x[c * n + k] = x[c * n + k]! * f;
    for (let r = 0; r < n; ++r) {
      if (r === c) continue;
      const g = m[r * n + c]!;
      for (const x of [m, inv]) for (let k = 0; k < n; ++k) x[r * n + k] = x[r * n + k]! - g * x[c * n + k]!;
    }
  }
  return inv;
}

/** tr √(Ca·Cb) by the Denman–Beavers iteration on the non-symmetric product (independent of the eigen path). */
function traceSqrtProduct(ca: Float64Array, cb: Float64Array, n: number): number {
  let y = mulSquare(ca, cb, n);
  let z = diag(new Array<number>(n).fill(1));
  for (let it = 0; it < 60; ++it) {
    const yi = inverse(y, n);
    const zi = inverse(z, n);
    y = y.map((v, i) => 0.5 * (v + zi[i]!));
    z = z.map((v, i) => 0.5 * (v + yi[i]!));
  }
  return tr(y, n);
}

describe("frechetFromStats on exact statistics", () => {
  test("diagonal covariances: Σ(√a − √b)² + ‖Δμ‖² to 1e-12 relative", () => {
    const a = [1, 4, 9, 0.25, 2];
    const b = [4, 1, 9, 1, 0.5];
    const ma = [0, 1, -2, 3, 0.5];
    const mb = [1, 1, 0, 3, -0.5];
    const expected = a.reduce((s, v, i) => s + (Math.sqrt(v) - Math.sqrt(b[i]!)) ** 2, 0) + sqDist(ma, mb);
    const got = frechetFromStats(stats(ma, diag(a)), stats(mb, diag(b)));
    expect(Math.abs(got - expected)).toBeLessThan(1e-12 * expected);
    expect(frechetFromStats(stats(ma, diag(a)), stats(ma, diag(a)))).toBeLessThan(1e-12);
  });

  test("commuting covariances Q·diag·Qᵀ: the same closed form to 1e-10", () => {
    const d = 12;
    const q = symmetricEigen({ data: randomSpd(d, 3), rows: d, cols: d }).vectors!.data;
    const la = Array.from({ length: d }, (_, i) => 0.1 + i);
    const lb = Array.from({ length: d }, (_, i) => 3 / (1 + i));
    const rot = (l: number[]): Float64Array => {
      const m = new Float64Array(d * d);
      for (let i = 0; i < d; ++i) for (let j = 0; j < d; ++j) for (let k = 0; k < d; ++k) m[i * d + j] = m[i * d + j]! + q[i * d + k]! * l[k]! * q[j * d + k]!;
      for (let i = 0; i < d; ++i) for (let j = 0; j < i; ++j) m[i * d + j] = m[j * d + i]!;
      return m;
    };
    const mu = new Array<number>(d).fill(0);
    const expected = la.reduce((s, v, i) => s + (Math.sqrt(v) - Math.sqrt(lb[i]!)) ** 2, 0);
    expect(Math.abs(frechetFromStats(stats(mu, rot(la)), stats(mu, rot(lb))) - expected)).toBeLessThan(1e-10 * expected);
  });

  test("non-commuting 2×2 pair: tr √(CaCb) = √(tr M + 2√det M), to 1e-12", () => {
    const ca = [2, 0.9, 0.9, 1];
    const cb = [0.5, -0.3, -0.3, 3];
    const m = mulSquare(ca, cb, 2);
    const trM = m[0]! + m[3]!;
    const detM = m[0]! * m[3]! - m[1]! * m[2]!;
    const expected = sqDist([1, 2], [0, -1]) + 3 + 3.5 - 2 * Math.sqrt(trM + 2 * Math.sqrt(detM));
    const got = frechetFromStats(stats([1, 2], ca), stats([0, -1], cb));
    expect(Math.abs(got - expected)).toBeLessThan(1e-12 * expected);
  });

  test("non-commuting random 8×8 pair: matches Denman–Beavers tr √(CaCb) to 1e-9, and is symmetric in (a, b)", () => {
    const d = 8;
    const ca = randomSpd(d, 41, 0.2);
    const cb = randomSpd(d, 42, 0.05);
    const ma = Array.from({ length: d }, (_, i) => Math.sin(i));
    const mb = Array.from({ length: d }, (_, i) => Math.cos(i));
    const expected = sqDist(ma, mb) + tr(ca, d) + tr(cb, d) - 2 * traceSqrtProduct(ca, cb, d);
    const ab = frechetFromStats(stats(ma, ca), stats(mb, cb));
    const ba = frechetFromStats(stats(mb, cb), stats(ma, ca));
    expect(Math.abs(ab - expected)).toBeLessThan(1e-9 * expected);
    expect(Math.abs(ab - ba)).toBeLessThan(1e-10 * expected);
  });

  test("bad statistics throw naming the function", () => {
    const ok = stats([0, 0], diag([1, 1]));
    expectArgumentError(() => frechetFromStats(ok, stats([0, 0, 0], diag([1, 1, 1]))), /^frechetFromStats: feature dims differ: 2 vs 3/);
    expectArgumentError(() => frechetFromStats(ok, { mean: [0, 0], cov: [[1, 0]], n: 5 }), /^frechetFromStats: b: mean has 2 values but cov has 1 rows/);
    expectArgumentError(() => frechetFromStats(ok, { mean: [0, NaN], cov: [[1, 0], [0, 1]], n: 5 }), /^frechetFromStats: b\.mean \[1, 2\]: non-finite value NaN/);
    expectArgumentError(() => frechetFromStats(ok, { mean: [0, 0], cov: [[1, 0.5], [0, 1]], n: 5 }), /^frechetFromStats: b: cov \[2, 2\] is not symmetric/);
    expectArgumentError(() => frechetFromStats({ ...ok, n: 1 }, ok), /^frechetFromStats: a: n must be an integer ≥ 2/);
    expectArgumentError(() => frechetFromStats(stats([0, 0], diag([1, -1])), ok), /^frechetFromStats: a: matrix \[2, 2\] is not positive semidefinite: eigenvalue -1/);
    expectArgumentError(() => frechetFromStats(ok, stats([0, 0], diag([1, -1]))), /^frechetFromStats: b: cov is not positive semidefinite/);
  });
});

describe("frechetDistance on feature sets", () => {
  test("identical sets: FD < 1e-6 · scale (scale = tr C ≈ 64·100)", () => {
    const x = normalMatrix(500, 64, 1, 10, Array.from({ length: 64 }, (_, i) => i));
    const scale = 64 * 100;
    expect(frechetDistance(x, x)).toBeLessThan(1e-6 * scale);
    const f32 = { data: Float32Array.from(x.data), rows: 500, cols: 64 };
    expect(frechetDistance(f32, f32)).toBeLessThan(1e-6 * scale);
    // Not just the clamp at 0: a shift by δ = 1e-3 per feature gives exactly d·δ² = 6.4e-5 (covariances unchanged).
    const shifted = { data: x.data.map((v) => v + 1e-3), rows: 500, cols: 64 };
    expect(Math.abs(frechetDistance(x, shifted) - 64e-6)).toBeLessThan(1e-9);
    // Fewer samples than features: singular covariances still give FD(x, x) ≈ 0.
    const few = normalMatrix(40, 64, 2, 10);
    expect(frechetDistance(few, few)).toBeLessThan(1e-6 * scale);
    expect(frechetDistance(few, normalMatrix(40, 64, 3, 10))).toBeGreaterThan(100);
  });

  test("two Gaussian samples (n = 40,000): FD within 0.08 of the analytic 3", () => {
    // a ~ N(0, diag(1, 4)), b ~ N((1, 0), diag(4, 1)): ‖Δμ‖² = 1, Σ(√a − √b)² = 1 + 1.
    const n = 40_000;
    const a = normalMatrix(n, 2, 5);
    const b = normalMatrix(n, 2, 6);
    for (let i = 0; i < n; ++i) {
      a.data[2 * i + 1] = a.data[2 * i + 1]! * 2;
      b.data[2 * i] = 1 + 2 * b.data[2 * i]!;
    }
    expect(Math.abs(frechetDistance(a, b) - 3)).toBeLessThan(0.08);
  });

  test("featureStats: JSON round trip gives the same distance; statistics match the data", () => {
    const a = normalMatrix(300, 6, 7, 2);
    const b = normalMatrix(250, 6, 8, 1, [1, 0, 0, 0, 0, 0]);
    const sa = featureStats(a);
    const sb = JSON.parse(JSON.stringify(featureStats(b))) as FeatureStats;
    expect(sa.n).toBe(300);
    expect(sa.cov.length).toBe(6);
    expect(sa.cov[2]![4]).toBe(sa.cov[4]![2]);
    const direct = frechetDistance(a, b);
    expect(Math.abs(frechetFromStats(sa, sb) - direct)).toBeLessThan(1e-12 * direct);
  });

  test("2,000 × 128 features in well under a second", () => {
    const a = normalMatrix(2000, 128, 9);
    const b = normalMatrix(2000, 128, 10, 1.1, [0.1]);
    const t0 = performance.now();
    const v = frechetDistance({ data: Float32Array.from(a.data), rows: 2000, cols: 128 }, { data: Float32Array.from(b.data), rows: 2000, cols: 128 });
    const ms = performance.now() - t0;
    console.log(`frechetDistance 2000×128 vs 2000×128: ${ms.toFixed(0)} ms (FD ${v.toFixed(4)})`);
    // Expected ≈ 0.01 + 128·(1.1 − 1)² = 1.29 plus the finite-sample bias (≈ d²/n-sized).
    expect(v).toBeGreaterThan(1.29);
    expect(v).toBeLessThan(1.29 + 10);
    expect(ms).toBeLessThan(1000);
  });

  test("mismatched dims, too few samples and NaN features throw", () => {
    expectArgumentError(() => frechetDistance(normalMatrix(10, 3, 1), normalMatrix(10, 4, 2)), /^frechetDistance: feature dims differ: a \[10, 3\] vs b \[10, 4\]/);
    expectArgumentError(() => frechetDistance(normalMatrix(1, 3, 1), normalMatrix(10, 3, 2)), /^frechetDistance: need at least 2 samples per set.*a \[1, 3\]/);
    const bad = normalMatrix(10, 3, 1);
    bad.data[7] = NaN;
    expectArgumentError(() => frechetDistance(bad, bad), /^frechetDistance: a \[10, 3\]: non-finite value NaN at row 2, col 1/);
    expectArgumentError(() => featureStats([[1, 2]]), /^featureStats: need at least 2 samples/);
  });
});
