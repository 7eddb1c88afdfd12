// Metrics for low-dimensional toy data against an exact target sample: kernel MMD², sliced
// Wasserstein and mode coverage for mixtures with known centres.
import { argumentError } from "../errors";
import { asMatrix, dims, type Matrix, type MatrixLike } from "./linalg";
import { centered, forEachDistanceTile } from "./manifold";

const { abs, exp, log, cos, sqrt, max, min, PI } = Math;
const TILE = 64; // forEachDistanceTile's tile edge

function pair(op: string, x: MatrixLike, y: MatrixLike, minRows: number): [Matrix, Matrix] {
  const X = asMatrix(x, op, "x");
  const Y = asMatrix(y, op, "y");
  if (X.cols !== Y.cols) throw argumentError(op, `dims differ: x ${dims(X)} vs y ${dims(Y)}`);
  if (X.rows < minRows || Y.rows < minRows) throw argumentError(op, `need at least ${minRows} samples per set, got x ${dims(X)}, y ${dims(Y)}`);
  return [X, Y];
}

/** Median pairwise Euclidean distance of the pooled samples (on ≤ 1000 evenly strided points): the kernel bandwidth heuristic of Gretton et al. 2012, §8. */
export function medianHeuristic(x: MatrixLike, y: MatrixLike): number {
  const [X, Y] = pair("medianHeuristic", x, y, 1);
  const total = X.rows + Y.rows;
  const stride = Math.ceil(total / 1000);
  const picked = Math.ceil(total / stride);
  const data = new Float64Array(picked * X.cols);
  for (let s = 0; s < picked; ++s) {
    const i = s * stride;
    const src = i < X.rows ? X.data.subarray(i * X.cols, (i + 1) * X.cols) : Y.data.subarray((i - X.rows) * X.cols, (i - X.rows + 1) * X.cols);
    data.set(src, s * X.cols);
  }
  const z = centered({ data, rows: picked, cols: X.cols })[0]!;
  const dist: number[] = [];
  forEachDistanceTile(z, z, (i0, j0, h, w, tile) => {
    for (let ii = 0; ii < h; ++ii) for (let jj = max(0, i0 + ii + 1 - j0); jj < w; ++jj) dist.push(tile[ii * TILE + jj]!);
  }, true);
  if (dist.length === 0) return 1;
  const sorted = Float64Array.from(dist).sort();
  const m = sorted.length >> 1;
  const med = sorted.length % 2 ? sqrt(sorted[m]!) : 0.5 * (sqrt(sorted[m - 1]!) + sqrt(sorted[m]!)); // squared distances sort alike
  return med > 0 ? med : sqrt(sorted[sorted.length - 1]!) || 1; // mostly duplicates: fall back to the largest distance
}

/**
 * Unbiased MMD² (Gretton et al. 2012, eq. 3) with the kernel Σ_h exp(−‖a − b‖² / 2h²). Default bandwidths
 * h ∈ {½, 1, 2}·medianHeuristic(x, y); pass fixed `bandwidths` to compare runs against one target.
 */
export function mmd2(x: MatrixLike, y: MatrixLike, options: { bandwidths?: readonly number[] } = {}): number {
  const [X, Y] = pair("mmd2", x, y, 2);
  const bw = options.bandwidths ?? ((m) => [0.5 * m, m, 2 * m])(medianHeuristic(X, Y));
  if (bw.length === 0 || bw.some((h) => !(h > 0 && h < Infinity))) throw argumentError("mmd2", `bandwidths must be positive and finite, got [${bw.join(", ")}]`);
  const gammas = bw.map((h) => 1 / (2 * h * h));
  const [xc, yc] = centered(X, Y) as [Matrix, Matrix];
  const kernelSum = (a: Matrix, b: Matrix, offDiagonalUpper: boolean): number => {
    let total = 0;
    forEachDistanceTile(a, b, (i0, j0, h, w, tile) => {
      for (let ii = 0; ii < h; ++ii) {
        const from = offDiagonalUpper ? max(0, i0 + ii + 1 - j0) : 0;
        for (let jj = from, o = ii * TILE; jj < w; ++jj) {
          const d2 = tile[o + jj]!;
          for (let g = 0; g < gammas.length; ++g) total += exp(-gammas[g]! * d2);
        }
      }
    }, offDiagonalUpper);
    return total;
  };
  const m = X.rows;
  const n = Y.rows;
  const kxx = (2 * kernelSum(xc, xc, true)) / (m * (m - 1));
  const kyy = (2 * kernelSum(yc, yc, true)) / (n * (n - 1));
  const kxy = kernelSum(xc, yc, false) / (m * n);
  return kxx + kyy - 2 * kxy;
}

/** Seeded standard normals: mulberry32 uniforms through Box–Muller. */
function normals(seed: number): () => number {
  let a = seed >>> 0;
  const uniform = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296; // in (0, 1): log is finite
  };
  return () => sqrt(-2 * log(uniform())) * cos(2 * PI * uniform());
}

/** W_p^p between two 1-D empirical measures (sorted): the integral of |F⁻¹ − G⁻¹|^p over merged quantile steps. */
function wassersteinPow(a: Float64Array, b: Float64Array, p: number): number {
  const m = a.length;
  const n = b.length;
  let i = 0;
  let j = 0;
  let at = 0; // quantile position in units of 1 / (m·n): exact integer arithmetic
  let total = 0;
  while (i < m && j < n) {
    const endA = (i + 1) * n;
    const endB = (j + 1) * m;
    const end = min(endA, endB);
    const diff = abs(a[i]! - b[j]!);
    total += (end - at) * (p === 1 ? diff : diff ** p);
    at = end;
    if (endA === end) ++i;
    if (endB === end) ++j;
  }
  return total / (m * n);
}

/**
 * Sliced Wasserstein-p distance (Bonneel et al. 2015): (mean over unit directions θ of W_p^p(⟨x, θ⟩, ⟨y, θ⟩))^{1/p},
 * exact 1-D W_p for unequal sizes by merging quantile functions. Directions: `projections` seeded Gaussian
 * directions (default 256, seed 0), or explicit `directions` (rows, normalized here).
 */
export function slicedWasserstein(
  x: MatrixLike,
  y: MatrixLike,
  options: { p?: number; projections?: number; seed?: number; directions?: MatrixLike } = {},
): number {
  const op = "slicedWasserstein";
  const [X, Y] = pair(op, x, y, 1);
  const p = options.p ?? 1;
  if (!(p >= 1 && p < Infinity)) throw argumentError(op, `p must be ≥ 1 and finite, got ${p}`);
  const d = X.cols;
  let dirs: Matrix;
  if (options.directions) {
    dirs = asMatrix(options.directions, op, "directions");
    if (dirs.cols !== d || dirs.rows < 1) throw argumentError(op, `directions ${dims(dirs)} must be [L ≥ 1, ${d}] for x ${dims(X)}`);
    dirs = { data: dirs.data.slice(), rows: dirs.rows, cols: d };
  } else {
    const L = options.projections ?? 256;
    if (!(Number.isSafeInteger(L) && L >= 1)) throw argumentError(op, `projections must be a positive integer, got ${L}`);
    const draw = normals(options.seed ?? 0);
    dirs = { data: Float64Array.from({ length: L * d }, draw), rows: L, cols: d };
  }
  for (let l = 0; l < dirs.rows; ++l) {
    const row = dirs.data.subarray(l * d, (l + 1) * d);
    const norm = sqrt(row.reduce((s, v) => s + v * v, 0));
    if (!(norm > 0)) throw argumentError(op, `direction ${l} is zero`);
    for (let t = 0; t < d; ++t) row[t] = row[t]! / norm;
  }
  const project = (m: Matrix, theta: Float64Array): Float64Array => {
    const out = new Float64Array(m.rows);
    for (let i = 0; i < m.rows; ++i) {
      let s = 0;
      for (let t = 0, o = i * d; t < d; ++t) s += m.data[o + t]! * theta[t]!;
      out[i] = s;
    }
    return out.sort();
  };
  let total = 0;
  for (let l = 0; l < dirs.rows; ++l) {
    const theta = dirs.data.subarray(l * d, (l + 1) * d);
    total += wassersteinPow(project(X, theta), project(Y, theta), p);
  }
  const meanPow = total / dirs.rows;
  return p === 1 ? meanPow : meanPow ** (1 / p);
}

/** Mode coverage of a mixture with known centres. */
export interface ModeCoverage {
  /** Modes with at least minCount samples assigned. */
  covered: number;
  total: number;
  fraction: number;
  /** Samples whose nearest mode is this one and lies within the radius. */
  countsPerMode: number[];
  /** Samples farther than the radius from every mode (low-quality samples). */
  offModeFraction: number;
}

/**
 * Modes captured and off-mode samples (Srivastava et al. 2017, VEEGAN §5.1): each sample goes to its nearest mode
 * if within `radius` (default 3·std); a mode is covered with ≥ minCount (default 1) samples.
 */
export function modeCoverage(samples: MatrixLike, modes: MatrixLike, options: { radius?: number; std?: number; minCount?: number } = {}): ModeCoverage {
  const op = "modeCoverage";
  const S = asMatrix(samples, op, "samples");
  const M = asMatrix(modes, op, "modes");
  if (S.cols !== M.cols) throw argumentError(op, `dims differ: samples ${dims(S)} vs modes ${dims(M)}`);
  if (S.rows < 1 || M.rows < 1) throw argumentError(op, `need at least one sample and one mode, got samples ${dims(S)}, modes ${dims(M)}`);
  const radius = options.radius ?? (options.std !== undefined ? 3 * options.std : undefined);
  if (radius === undefined || !(radius >= 0 && radius < Infinity)) throw argumentError(op, `give a finite radius ≥ 0 (or the mixture std), got radius ${options.radius}, std ${options.std}`);
  const minCount = options.minCount ?? 1;
  if (!(Number.isSafeInteger(minCount) && minCount >= 1)) throw argumentError(op, `minCount must be a positive integer, got ${minCount}`);
  const d = S.cols;
  const counts = new Array<number>(M.rows).fill(0);
  let off = 0;
  for (let i = 0; i < S.rows; ++i) {
    let best = Infinity;
    let which = -1;
    for (let k = 0; k < M.rows; ++k) {
      let s = 0;
      for (let t = 0; t < d; ++t) s += (S.data[i * d + t]! - M.data[k * d + t]!) ** 2;
      if (s < best) {
        best = s;
        which = k;
      }
    }
    if (best <= radius * radius) ++counts[which]!;
    else ++off;
  }
  const covered = counts.filter((c) => c >= minCount).length;
  return { covered, total: M.rows, fraction: covered / M.rows, countsPerMode: counts, offModeFraction: off / S.rows };
}
