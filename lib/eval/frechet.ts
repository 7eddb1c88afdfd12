// Fréchet distance between Gaussian fits of two feature sets (the FID formula of Heusel et al.
// 2017 on any feature extractor). Statistics are plain arrays so reference sets can be cached as JSON.
import { argumentError, FastdiffError } from "../errors";
import { asMatrix, covariance, dims, matmul, mean, sqrtm, symmetricEigenvalues, type Matrix, type MatrixLike } from "./linalg";

const { abs, sqrt, max } = Math;

/** Gaussian statistics of a feature set: mean (d), covariance (d × d, divisor n − 1), sample count. */
export interface FeatureStats {
  mean: number[];
  cov: number[][];
  n: number;
}

/** Mean and unbiased covariance of features (rows = samples), JSON-serializable (Heusel et al. 2017, §3). */
export function featureStats(features: MatrixLike): FeatureStats {
  const m = asMatrix(features, "featureStats");
  if (m.rows < 2) throw argumentError("featureStats", `need at least 2 samples for a covariance, got ${dims(m)}`);
  const mu = mean(m);
  const c = covariance(m, mu);
  const d = m.cols;
  return {
    mean: Array.from(mu),
    cov: Array.from({ length: d }, (_, i) => Array.from(c.data.subarray(i * d, (i + 1) * d))),
    n: m.rows,
  };
}

/** Checks a FeatureStats object (shapes, finiteness, symmetry) and returns its float64 form. */
function unpack(s: FeatureStats, op: string, name: string): { mu: Float64Array; cov: Matrix } {
  if (!s || !Array.isArray(s.mean) || !Array.isArray(s.cov)) throw argumentError(op, `${name}: expected { mean: number[], cov: number[][], n }`);
  const d = s.mean.length;
  if (s.cov.length !== d) throw argumentError(op, `${name}: mean has ${d} values but cov has ${s.cov.length} rows`);
  if (!(Number.isSafeInteger(s.n) && s.n >= 2)) throw argumentError(op, `${name}: n must be an integer ≥ 2, got ${s.n}`);
  const mu = asMatrix({ data: s.mean, rows: 1, cols: d }, op, `${name}.mean`).data;
  const cov = asMatrix(s.cov, op, `${name}.cov`);
  if (cov.cols !== d) throw argumentError(op, `${name}: cov is ${dims(cov)} for a mean of ${d} values`);
  let scale = 0;
  for (let i = 0; i < d * d; ++i) scale = max(scale, abs(cov.data[i]!));
  for (let i = 0; i < d; ++i) {
    for (let j = i + 1; j < d; ++j) {
      if (abs(cov.data[i * d + j]! - cov.data[j * d + i]!) > 1e-8 * scale) throw argumentError(op, `${name}: cov ${dims(cov)} is not symmetric at [${i}, ${j}]`);
    }
  }
  return { mu, cov };
}

/** ‖μa − μb‖² + tr(Ca + Cb − 2(Ca^½ Cb Ca^½)^½) (Dowson & Landau 1982; Heusel et al. 2017, eq. 6). */
function frechet(op: string, muA: Float64Array, ca: Matrix, muB: Float64Array, cb: Matrix): number {
  const d = muA.length;
  let dist = 0;
  for (let i = 0; i < d; ++i) dist += (muA[i]! - muB[i]!) ** 2;
  for (let i = 0; i < d; ++i) dist += ca.data[i * d + i]! + cb.data[i * d + i]!;
  // tr √(Ca Cb) = Σ √λ(Ca^½ Cb Ca^½): a symmetric PSD product, so no complex square roots (unlike scipy's sqrtm(Ca·Cb)).
  let ra: Matrix;
  try {
    ra = sqrtm(ca);
  } catch (e) {
    throw e instanceof FastdiffError ? argumentError(op, `a: ${e.message.replace(/^sqrtm: /, "")}`) : e; // cached stats may be corrupt
  }
  const m = matmul(matmul(ra, cb), ra);
  for (let i = 0; i < d; ++i) {
    for (let j = i + 1; j < d; ++j) m.data[i * d + j] = m.data[j * d + i] = 0.5 * (m.data[i * d + j]! + m.data[j * d + i]!);
  }
  const lambda = symmetricEigenvalues(m);
  if (d > 0 && lambda[0]! < -1e-8 * max(abs(lambda[0]!), abs(lambda[d - 1]!))) {
    throw argumentError(op, `b: cov is not positive semidefinite (Ca^½ Cb Ca^½ has eigenvalue ${lambda[0]})`);
  }
  let root = 0;
  for (let i = 0; i < d; ++i) root += sqrt(max(lambda[i]!, 0));
  // The distance is ≥ 0; a negative value here is rounding of identical statistics.
  return max(dist - 2 * root, 0);
}

/** Fréchet distance between two Gaussians given by cached statistics (Heusel et al. 2017, eq. 6). */
export function frechetFromStats(a: FeatureStats, b: FeatureStats): number {
  const A = unpack(a, "frechetFromStats", "a");
  const B = unpack(b, "frechetFromStats", "b");
  if (A.mu.length !== B.mu.length) throw argumentError("frechetFromStats", `feature dims differ: ${A.mu.length} vs ${B.mu.length}`);
  return frechet("frechetFromStats", A.mu, A.cov, B.mu, B.cov);
}

/** Fréchet distance between Gaussian fits of two feature sets (rows = samples; Heusel et al. 2017, eq. 6). */
export function frechetDistance(a: MatrixLike, b: MatrixLike): number {
  const A = asMatrix(a, "frechetDistance", "a");
  const B = asMatrix(b, "frechetDistance", "b");
  if (A.cols !== B.cols) throw argumentError("frechetDistance", `feature dims differ: a ${dims(A)} vs b ${dims(B)}`);
  if (A.rows < 2 || B.rows < 2) throw argumentError("frechetDistance", `need at least 2 samples per set for a covariance, got a ${dims(A)}, b ${dims(B)}`);
  const muA = mean(A);
  const muB = mean(B);
  return frechet("frechetDistance", muA, covariance(A, muA), muB, covariance(B, muB));
}
