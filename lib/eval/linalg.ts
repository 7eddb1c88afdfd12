// Dense float64 linear algebra for the metrics: feature matrices, mean/covariance, symmetric eigen-
// decomposition (Householder + implicit QR), symmetric square roots. Pure JS: d ≤ a few hundred.
import { argumentError, FastdiffError } from "../errors";
import type { Tensor } from "../tensor";

// Local aliases: global lookups in hot loops are slow in jest's vm context.
const { abs, sqrt, hypot, max, min } = Math;
const EPS = 2.220446049250313e-16;

/** A dense row-major float64 matrix. */
export interface Matrix { data: Float64Array; rows: number; cols: number }
/** Row-major values with their dims (rows = samples, cols = features). */
export interface MatrixView { data: Float32Array | Float64Array | ArrayLike<number>; rows: number; cols: number }
/** Features: a row-major view, a Tensor ([n, ...] → n rows), or nested arrays. */
export type MatrixLike = MatrixView | Pick<Tensor, "shape" | "dataSync"> | readonly (readonly number[])[];

/** "[rows, cols]" for error messages. */
export function dims(m: { rows: number; cols: number }): string {
  return `[${m.rows}, ${m.cols}]`;
}

const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Normalizes features to a float64 row-major matrix (no copy for Float64Array views); rejects bad dims and NaN/Inf. */
export function asMatrix(x: MatrixLike, op = "asMatrix", name = "features"): Matrix {
  let data: ArrayLike<number>;
  let rows: number;
  let cols: number;
  if (Array.isArray(x)) {
    const nested = x as readonly (readonly number[])[];
    rows = nested.length;
    cols = rows > 0 ? (nested[0]?.length ?? 0) : 0;
    const out = new Float64Array(rows * cols);
    nested.forEach((row, i) => {
      if (!Array.isArray(row) || row.length !== cols) throw argumentError(op, `${name}: row ${i} has ${row?.length} values, expected ${cols}`);
      out.set(row, i * cols);
    });
    data = out;
  } else if (x && typeof (x as Tensor).dataSync === "function") {
    const shape = (x as Tensor).shape;
    if (shape.length === 0) throw argumentError(op, `${name}: a scalar tensor is not a feature matrix`);
    rows = shape[0]!;
    cols = shape.slice(1).reduce((a, b) => a * b, 1);
    data = (x as Tensor).dataSync();
  } else {
    const v = x as MatrixView;
    if (!v || !isCount(v.rows) || !isCount(v.cols) || !v.data || v.data.length !== v.rows * v.cols) {
      throw argumentError(op, `${name}: expected { data, rows, cols } with data.length = rows·cols, got rows ${v?.rows}, cols ${v?.cols}, length ${v?.data?.length}`);
    }
    ({ data, rows, cols } = v);
  }
  const out = data instanceof Float64Array ? data : Float64Array.from(data);
  for (let i = 0; i < out.length; ++i) {
    const t = out[i]!;
    if (!(t - t === 0)) throw argumentError(op, `${name} ${dims({ rows, cols })}: non-finite value ${t} at row ${(i / cols) | 0}, col ${i % cols}`);
  }
  return { data: out, rows, cols };
}

/** Column means of a feature matrix (rows = samples). */
export function mean(x: MatrixLike): Float64Array {
  const m = asMatrix(x, "mean");
  if (m.rows < 1) throw argumentError("mean", `need at least 1 sample, got ${dims(m)}`);
  const mu = new Float64Array(m.cols);
  for (let r = 0; r < m.rows; ++r) for (let c = 0, o = r * m.cols; c < m.cols; ++c) mu[c] = mu[c]! + m.data[o + c]!;
  for (let c = 0; c < m.cols; ++c) mu[c] = mu[c]! / m.rows;
  return mu;
}

/** Unbiased sample covariance (divisor n − 1, as numpy.cov), two-pass about the mean; d × d. */
export function covariance(x: MatrixLike, mu?: ArrayLike<number>): Matrix {
  const m = asMatrix(x, "covariance");
  const { rows: n, cols: d, data } = m;
  if (n < 2) throw argumentError("covariance", `need at least 2 samples, got ${dims(m)}`);
  const center = mu ?? mean(m);
  if (center.length !== d) throw argumentError("covariance", `mean has ${center.length} values for features ${dims(m)}`);
  // Chunks of R centered rows, transposed, so each C[i][j] gets a contiguous R-long dot product.
  const R = 64;
  const xt = new Float64Array(d * R);
  const c = new Float64Array(d * d);
  for (let r0 = 0; r0 < n; r0 += R) {
    const h = min(R, n - r0);
    xt.fill(0);
    for (let r = 0; r < h; ++r) for (let j = 0, o = (r0 + r) * d; j < d; ++j) xt[j * R + r] = data[o + j]! - center[j]!;
    for (let i = 0; i < d; ++i) for (let j = i; j < d; ++j) {
      let s = 0;
      for (let r = 0, a = i * R, b = j * R; r < h; ++r) s += xt[a + r]! * xt[b + r]!;
      c[i * d + j] = c[i * d + j]! + s;
    }
  }
  for (let i = 0; i < d; ++i) for (let j = i; j < d; ++j) c[j * d + i] = c[i * d + j] = c[i * d + j]! / (n - 1);
  return { data: c, rows: d, cols: d };
}

/** Trace of a square matrix. */
export function trace(a: MatrixLike): number {
  const m = square(a, "trace");
  let s = 0;
  for (let i = 0; i < m.rows; ++i) s += m.data[i * m.rows + i]!;
  return s;
}

/** Matrix product A·B in float64. */
export function matmul(a: MatrixLike, b: MatrixLike): Matrix {
  const A = asMatrix(a, "matmul", "a");
  const B = asMatrix(b, "matmul", "b");
  if (A.cols !== B.rows) throw argumentError("matmul", `inner dimensions differ: ${dims(A)} @ ${dims(B)}`);
  const out = new Float64Array(A.rows * B.cols);
  const n = B.cols;
  for (let i = 0, o = 0; i < A.rows; ++i, o += n) {
    for (let k = 0; k < A.cols; ++k) {
      const aik = A.data[i * A.cols + k]!;
      if (aik === 0) continue;
      for (let j = 0, bk = k * n; j < n; ++j) out[o + j] = out[o + j]! + aik * B.data[bk + j]!;
    }
  }
  return { data: out, rows: A.rows, cols: n };
}

function square(a: MatrixLike, op: string): Matrix {
  const m = asMatrix(a, op, "matrix");
  if (m.rows !== m.cols) throw argumentError(op, `matrix must be square, got ${dims(m)}`);
  return m;
}

/** A symmetrized copy; throws when A is visibly not symmetric (|a_ij − a_ji| > 1e-8·max|a|). */
function symmetricCopy(a: MatrixLike, op: string): Matrix {
  const m = square(a, op);
  const n = m.rows;
  const s = new Float64Array(n * n);
  let scale = 0;
  for (let i = 0; i < n * n; ++i) scale = max(scale, abs(m.data[i]!));
  for (let i = 0; i < n; ++i) for (let j = i; j < n; ++j) {
    const u = m.data[i * n + j]!;
    const l = m.data[j * n + i]!;
    if (abs(u - l) > 1e-8 * scale) throw argumentError(op, `matrix ${dims(m)} is not symmetric: [${i}, ${j}] = ${u} vs [${j}, ${i}] = ${l}`);
    s[i * n + j] = s[j * n + i] = 0.5 * (u + l);
  }
  return { data: s, rows: n, cols: n };
}

/**
 * Householder reduction A = Q T Qᵀ (Golub & Van Loan §8.3.1), in place on `a`. Returns the diagonal d,
 * off-diagonal e (e[k] = T[k][k+1]) and, when asked, Qᵀ (row j = j-th column of Q).
 */
function tridiagonalize(a: Float64Array, n: number, wantQ: boolean): { d: Float64Array; e: Float64Array; qt: Float64Array | null } {
  const [d, betas, v, p] = [new Float64Array(n), new Float64Array(n), new Float64Array(n), new Float64Array(n)];
  const e = new Float64Array(max(n - 1, 0));
  for (let k = 0; k < n - 2; ++k) {
    const rk = k * n;
    let scale = 0;
    for (let i = k + 1; i < n; ++i) scale += abs(a[rk + i]!);
    if (scale === 0) continue; // column already reduced: H = I (beta 0)
    let s2 = 0;
    for (let i = k + 1; i < n; ++i) s2 += (v[i] = a[rk + i]! / scale) ** 2;
    const sigma = sqrt(s2);
    const x0 = v[k + 1]!;
    const alpha = x0 >= 0 ? -sigma : sigma; // opposite sign to x0: no cancellation in v
    v[k + 1] = x0 - alpha;
    const beta = 1 / (sigma * (sigma + abs(x0))); // 2 / vᵀv
    e[k] = alpha * scale;
    // Trailing block B ← H B H = B − v wᵀ − w vᵀ, w = βBv − (β²/2)(vᵀBv) v.
    let vp = 0;
    for (let i = k + 1; i < n; ++i) {
      let s = 0;
      for (let j = k + 1, ri = i * n; j < n; ++j) s += a[ri + j]! * v[j]!;
      p[i] = beta * s;
      vp += p[i]! * v[i]!;
    }
    const half = 0.5 * beta * vp;
    for (let i = k + 1; i < n; ++i) p[i] = p[i]! - half * v[i]!;
    for (let i = k + 1; i < n; ++i) {
      const vi = v[i]!;
      const pi = p[i]!;
      for (let j = k + 1, ri = i * n; j < n; ++j) a[ri + j] = a[ri + j]! - (vi * p[j]! + pi * v[j]!);
    }
    for (let i = k + 1; i < n; ++i) a[rk + i] = v[i]!; // row k is not touched again: keep v there
    betas[k] = beta;
  }
  for (let i = 0; i < n; ++i) d[i] = a[i * n + i]!;
  if (n >= 2) e[n - 2] = a[(n - 2) * n + n - 1]!;
  if (!wantQ) return { d, e, qt: null };
  // Q = H0 H1 … accumulated backward, each H_k touching rows/cols > k only.
  const q = new Float64Array(n * n);
  for (let i = 0; i < n; ++i) q[i * n + i] = 1;
  for (let k = n - 3; k >= 0; --k) {
    const beta = betas[k]!;
    if (beta === 0) continue;
    const rk = k * n;
    p.fill(0);
    for (let i = k + 1; i < n; ++i) {
      const vi = a[rk + i]!;
      for (let j = k + 1, ri = i * n; j < n; ++j) p[j] = p[j]! + vi * q[ri + j]!;
    }
    for (let i = k + 1; i < n; ++i) {
      const f = beta * a[rk + i]!;
      for (let j = k + 1, ri = i * n; j < n; ++j) q[ri + j] = q[ri + j]! - f * p[j]!;
    }
  }
  const qt = new Float64Array(n * n);
  for (let i = 0; i < n; ++i) for (let j = 0; j < n; ++j) qt[j * n + i] = q[i * n + j]!;
  return { d, e, qt };
}

/** Implicit symmetric QR with Wilkinson shifts on (d, e) (Golub & Van Loan Alg. 8.3.3); rotates the rows of w. */
function tridiagonalEigen(d: Float64Array, e: Float64Array, w: Float64Array | null, n: number): void {
  let hi = n - 1;
  let iterations = 0;
  while (hi > 0) {
    if (abs(e[hi - 1]!) <= EPS * (abs(d[hi - 1]!) + abs(d[hi]!))) {
      e[hi - 1] = 0;
      --hi;
      continue;
    }
    let lo = hi - 1;
    while (lo > 0 && abs(e[lo - 1]!) > EPS * (abs(d[lo - 1]!) + abs(d[lo]!))) --lo;
    if (++iterations > 60 * n) throw new FastdiffError("ERR_NUMERIC", `symmetricEigen: QR iteration did not converge for n = ${n}`);
    const g = e[hi - 1]!;
    const delta = 0.5 * (d[hi - 1]! - d[hi]!);
    const mu = d[hi]! - (g * g) / (delta + (delta >= 0 ? 1 : -1) * hypot(delta, g));
    let x = d[lo]! - mu;
    let z = e[lo]!;
    for (let k = lo; k < hi; ++k) {
      // Rotation [c s; −s c] on rows/cols k, k+1 zeroing z (the shift at k = lo, the bulge after).
      const r = hypot(x, z);
      const c = r === 0 ? 1 : x / r;
      const s = r === 0 ? 0 : z / r;
      if (k > lo) e[k - 1] = r;
      const a0 = d[k]!;
      const b0 = e[k]!;
      const f0 = d[k + 1]!;
      d[k] = c * c * a0 + 2 * c * s * b0 + s * s * f0;
      d[k + 1] = s * s * a0 - 2 * c * s * b0 + c * c * f0;
      e[k] = c * s * (f0 - a0) + (c * c - s * s) * b0;
      if (k + 1 < hi) {
        z = s * e[k + 1]!;
        e[k + 1] = c * e[k + 1]!;
      }
      x = e[k]!;
      if (w) for (let t = 0, rk = k * n, rk1 = rk + n; t < n; ++t) {
        const u = w[rk + t]!;
        const y = w[rk1 + t]!;
        w[rk + t] = c * u + s * y;
        w[rk1 + t] = c * y - s * u;
      }
    }
  }
}

/** Eigenvalues (ascending) and, when asked, eigenvectors as rows of a matrix. */
function eigenRows(m: Matrix, wantVectors: boolean): { values: Float64Array; rows: Float64Array | null } {
  const n = m.rows;
  const { d, e, qt } = tridiagonalize(m.data, n, wantVectors);
  tridiagonalEigen(d, e, qt, n);
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[i]! - d[j]!);
  const values = Float64Array.from(order, (i) => d[i]!);
  if (!qt) return { values, rows: null };
  const rows = new Float64Array(n * n);
  order.forEach((i, j) => rows.set(qt.subarray(i * n, (i + 1) * n), j * n));
  return { values, rows };
}

/** Symmetric eigendecomposition A = V·diag(values)·Vᵀ (Householder + implicit QR, Golub & Van Loan §8.3); values ascending, eigenvectors are the columns of `vectors`. */
export function symmetricEigen(a: MatrixLike, options: { vectors?: boolean } = {}): { values: Float64Array; vectors: Matrix | null } {
  const m = symmetricCopy(a, "symmetricEigen");
  const n = m.rows;
  const { values, rows } = eigenRows(m, options.vectors ?? true);
  if (!rows) return { values, vectors: null };
  const v = new Float64Array(n * n);
  for (let j = 0; j < n; ++j) for (let i = 0; i < n; ++i) v[i * n + j] = rows[j * n + i]!;
  return { values, vectors: { data: v, rows: n, cols: n } };
}

/** Eigenvalues only (ascending) of a symmetric matrix: skips the eigenvector work. */
export function symmetricEigenvalues(a: MatrixLike): Float64Array {
  return eigenRows(symmetricCopy(a, "symmetricEigenvalues"), false).values;
}

/** Principal square root of a symmetric PSD matrix, V·diag(√max(λ, 0))·Vᵀ; eigenvalues below −1e-8·max|λ| throw. */
export function sqrtm(a: MatrixLike): Matrix {
  const m = symmetricCopy(a, "sqrtm");
  const n = m.rows;
  const { values, rows } = eigenRows(m, true);
  const top = n > 0 ? max(abs(values[0]!), abs(values[n - 1]!)) : 0;
  if (n > 0 && values[0]! < -1e-8 * top) throw argumentError("sqrtm", `matrix [${n}, ${n}] is not positive semidefinite: eigenvalue ${values[0]}`);
  const s = new Float64Array(n * n);
  for (let k = 0; k < n; ++k) {
    const root = sqrt(max(values[k]!, 0)); // rounding makes a PSD matrix's zero eigenvalues slightly negative
    if (root === 0) continue;
    const o = k * n;
    for (let i = 0; i < n; ++i) {
      const f = root * rows![o + i]!;
      for (let j = i; j < n; ++j) s[i * n + j] = s[i * n + j]! + f * rows![o + j]!;
    }
  }
  for (let i = 0; i < n; ++i) for (let j = i + 1; j < n; ++j) s[j * n + i] = s[i * n + j]!;
  return { data: s, rows: n, cols: n };
}
