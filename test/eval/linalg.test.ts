// Dense float64 linear algebra behind the metrics: feature normalization, mean/covariance,
// symmetric eigendecomposition and square roots, against direct computations.
import * as fd from "../../lib";
import { asMatrix, covariance, matmul, mean, sqrtm, symmetricEigen, symmetricEigenvalues, trace } from "../../lib/eval";
import { expectArgumentError, maxAbs, maxAbsDiff, mulSquare, normalMatrix, randomSpd } from "./util";

/** V·diag(λ)·Vᵀ. */
function reconstruct(values: Float64Array, v: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; ++i) for (let j = 0; j < n; ++j) {
    let s = 0;
    for (let k = 0; k < n; ++k) s += v[i * n + k]! * values[k]! * v[j * n + k]!;
    out[i * n + j] = s;
  }
  return out;
}

describe("asMatrix", () => {
  test("views, nested arrays and tensors normalize to float64 rows × cols", () => {
    const f64 = new Float64Array([1, 2, 3, 4, 5, 6]);
    const m = asMatrix({ data: f64, rows: 3, cols: 2 });
    expect(m.data).toBe(f64); // float64 views are not copied
    expect([m.rows, m.cols]).toEqual([3, 2]);
    const f32 = asMatrix({ data: new Float32Array([0.5, 1.5]), rows: 1, cols: 2 });
    expect(f32.data).toBeInstanceOf(Float64Array);
    expect(Array.from(f32.data)).toEqual([0.5, 1.5]);
    expect(Array.from(asMatrix([[1, 2], [3, 4]]).data)).toEqual([1, 2, 3, 4]);
    const t = fd.tensor(Float32Array.from({ length: 24 }, (_, i) => i / 4), [4, 2, 3]);
    const tm = asMatrix(t); // [n, ...] → n rows of the flattened rest
    expect([tm.rows, tm.cols]).toEqual([4, 6]);
    expect(tm.data[23]).toBe(23 / 4);
    t.dispose();
  });

  test("bad dims and non-finite values throw ERR_ARGUMENT naming the function and shape", () => {
    expectArgumentError(() => asMatrix({ data: new Float32Array(5), rows: 2, cols: 3 }, "frechetDistance"), /^frechetDistance: .*rows 2, cols 3, length 5/);
    expectArgumentError(() => asMatrix([[1, 2], [3]], "precisionRecall"), /^precisionRecall: .*row 1 has 1 values, expected 2/);
    expectArgumentError(() => asMatrix({ data: [1, 2, NaN, 4], rows: 2, cols: 2 }, "mmd2", "x"), /^mmd2: x \[2, 2\]: non-finite value NaN at row 1, col 0/);
    expectArgumentError(() => asMatrix({ data: [1, Infinity], rows: 1, cols: 2 }), /non-finite value Infinity/);
  });
});

describe("statistics", () => {
  test("mean and covariance match a direct two-loop computation (1e-12)", () => {
    const x = normalMatrix(203, 7, 11, 3, [5, -2, 0, 1, 100, 0, 7]); // 203: not a multiple of the 64-row chunk
    const mu = mean(x);
    const c = covariance(x);
    const n = x.rows;
    const d = x.cols;
    for (let j = 0; j < d; ++j) {
      let s = 0;
      for (let i = 0; i < n; ++i) s += x.data[i * d + j]!;
      expect(mu[j]).toBeCloseTo(s / n, 12);
    }
    const ref = new Float64Array(d * d);
    for (let a = 0; a < d; ++a) for (let b = 0; b < d; ++b) {
      let s = 0;
      for (let i = 0; i < n; ++i) s += (x.data[i * d + a]! - mu[a]!) * (x.data[i * d + b]! - mu[b]!);
      ref[a * d + b] = s / (n - 1);
    }
    expect(maxAbsDiff(c.data, ref)).toBeLessThan(1e-12 * maxAbs(ref));
    // Two samples: cov = (x1 − x2)(x1 − x2)ᵀ / 2.
    expect(Array.from(covariance([[1, 2], [3, 6]]).data)).toEqual([2, 4, 4, 8]);
    expectArgumentError(() => covariance([[1, 2]]), /^covariance: need at least 2 samples, got \[1, 2\]/);
  });

  test("matmul and trace on small exact cases", () => {
    expect(Array.from(matmul([[1, 2, 3], [4, 5, 6]], [[1, 0], [0, 1], [1, 1]]).data)).toEqual([4, 5, 10, 11]);
    expect(trace([[1, 9], [9, 4]])).toBe(5);
    expectArgumentError(() => matmul([[1, 2]], [[1, 2]]), /^matmul: inner dimensions differ: \[1, 2\] @ \[1, 2\]/);
    expectArgumentError(() => trace([[1, 2]]), /^trace: matrix must be square, got \[1, 2\]/);
  });
});

describe("symmetricEigen", () => {
  test("known spectra: 2×2, diagonal, identity (repeated), zero", () => {
    const e = symmetricEigen([[2, 1], [1, 2]]);
    expect(e.values[0]).toBeCloseTo(1, 14);
    expect(e.values[1]).toBeCloseTo(3, 14);
    expect(Math.abs(e.vectors!.data[0]! * e.vectors!.data[2]!)).toBeCloseTo(0.5, 14); // (1, −1)/√2 up to sign
    expect(Array.from(symmetricEigenvalues([[3, 0, 0], [0, -1, 0], [0, 0, 2]]))).toEqual([-1, 2, 3]);
    const eye = symmetricEigen({ data: Float64Array.from({ length: 25 }, (_, i) => (i % 6 === 0 ? 1 : 0)), rows: 5, cols: 5 });
    expect(Array.from(eye.values)).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(symmetricEigenvalues({ data: new Float64Array(16), rows: 4, cols: 4 }))).toEqual([0, 0, 0, 0]);
  });

  test.each([1, 2, 3, 5, 17, 64, 128])("reconstructs random SPD matrices A = VΛVᵀ to 1e-10 (n = %i)", (n) => {
    const a = randomSpd(n, 100 + n);
    const { values, vectors } = symmetricEigen({ data: a, rows: n, cols: n });
    const v = vectors!.data;
    const scale = maxAbs(a);
    expect(maxAbsDiff(reconstruct(values, v, n), a)).toBeLessThan(1e-10 * scale);
    const vt = new Float64Array(n * n);
    for (let i = 0; i < n; ++i) for (let j = 0; j < n; ++j) vt[j * n + i] = v[i * n + j]!;
    const eye = Float64Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
    expect(maxAbsDiff(mulSquare(vt, v, n), eye)).toBeLessThan(1e-10); // orthonormal
    for (let i = 1; i < n; ++i) expect(values[i]!).toBeGreaterThanOrEqual(values[i - 1]!);
    expect(maxAbsDiff(symmetricEigenvalues({ data: a, rows: n, cols: n }), values)).toBeLessThan(1e-12 * scale);
  });

  test("rank-deficient and indefinite matrices: reconstruction to 1e-10", () => {
    for (const [n, rank] of [[40, 5], [33, 1]] as const) {
      const a = randomSpd(n, 7, 0, rank); // X Xᵀ with X n × rank: n − rank zero eigenvalues
      a[0] = a[0]! - 50; // and one negative direction
      const { values, vectors } = symmetricEigen({ data: a, rows: n, cols: n });
      expect(maxAbsDiff(reconstruct(values, vectors!.data, n), a)).toBeLessThan(1e-10 * maxAbs(a));
      expect(values[0]!).toBeLessThan(-40);
    }
  });

  test("graded spectrum 1e-10 … 1e2 with a cluster: eigenvalues to 1e-12·max, reconstruction to 1e-10", () => {
    const n = 48;
    const q = symmetricEigen({ data: randomSpd(n, 21), rows: n, cols: n }).vectors!.data; // a random orthogonal matrix
    const lambda = Float64Array.from({ length: n }, (_, i) => (i < 6 ? 1 + 1e-9 * i : 10 ** (-10 + (12 * i) / (n - 1))));
    const a = reconstruct(lambda, q, n);
    for (let i = 0; i < n; ++i) for (let j = 0; j < i; ++j) a[i * n + j] = a[j * n + i]!; // exactly symmetric
    const { values, vectors } = symmetricEigen({ data: a, rows: n, cols: n });
    const sorted = Float64Array.from(lambda).sort();
    expect(maxAbsDiff(values, sorted)).toBeLessThan(1e-12 * 100);
    expect(maxAbsDiff(reconstruct(values, vectors!.data, n), a)).toBeLessThan(1e-10 * maxAbs(a));
  });

  test("d = 256 with eigenvectors runs well under a second", () => {
    const n = 256;
    const a = randomSpd(n, 5);
    const t0 = performance.now();
    const { values, vectors } = symmetricEigen({ data: a, rows: n, cols: n });
    const ms = performance.now() - t0;
    console.log(`symmetricEigen 256×256 with vectors: ${ms.toFixed(0)} ms`);
    expect(maxAbsDiff(reconstruct(values, vectors!.data, n), a)).toBeLessThan(1e-10 * maxAbs(a));
    expect(ms).toBeLessThan(1000);
  });

  test("non-symmetric or non-square input throws", () => {
    expectArgumentError(() => symmetricEigen([[1, 2], [0, 1]]), /^symmetricEigen: matrix \[2, 2\] is not symmetric: \[0, 1\] = 2 vs \[1, 0\] = 0/);
    expectArgumentError(() => symmetricEigen([[1, 2, 3]]), /^symmetricEigen: matrix must be square, got \[1, 3\]/);
  });
});

describe("sqrtm", () => {
  test.each([2, 9, 64])("sqrtm(A)² = A for random SPD A (n = %i), symmetric PSD root", (n) => {
    const a = randomSpd(n, 300 + n);
    const r = sqrtm({ data: a, rows: n, cols: n });
    expect(maxAbsDiff(mulSquare(r.data, r.data, n), a)).toBeLessThan(1e-10 * maxAbs(a));
    let asym = 0;
    for (let i = 0; i < n; ++i) for (let j = 0; j < n; ++j) asym = Math.max(asym, Math.abs(r.data[i * n + j]! - r.data[j * n + i]!));
    expect(asym).toBe(0);
    expect(symmetricEigenvalues(r)[0]!).toBeGreaterThan(0);
  });

  test("singular PSD matrices: tiny negative eigenvalues clamp to 0; indefinite ones throw", () => {
    const n = 20;
    const a = randomSpd(n, 9, 0, 3); // rank 3
    const r = sqrtm({ data: a, rows: n, cols: n });
    expect(maxAbsDiff(mulSquare(r.data, r.data, n), a)).toBeLessThan(1e-10 * maxAbs(a));
    expect(Array.from(sqrtm([[4, 0], [0, 9]]).data)).toEqual([2, 0, 0, 3]);
    expectArgumentError(() => sqrtm([[1, 0], [0, -1]]), /^sqrtm: matrix \[2, 2\] is not positive semidefinite: eigenvalue -1/);
  });
});
