// k-NN manifold metrics in feature space: improved precision / recall (Kynkäänniemi et al. 2019)
// and density / coverage (Naeem et al. 2020). Distances are computed tile by tile, never n × n.
import { argumentError } from "../errors";
import { asMatrix, dims, type Matrix, type MatrixLike } from "./linalg";

const { max, sqrt } = Math;
/** Tile edge: a multiple of the 4 × 2 micro-kernel. */
const TILE = 64;

/**
 * Squared Euclidean distances ‖a_i − b_j‖² = ‖a_i‖² + ‖b_j‖² − 2⟨a_i, b_j⟩ in TILE × TILE tiles:
 * visit(i0, j0, h, w, tile) sees tile[ii·TILE + jj] for ii < h, jj < w. With `upper`, only tiles with j0 ≥ i0.
 * Callers should center the data first: the expansion loses precision far from the origin.
 */
export function forEachDistanceTile(
  a: Matrix,
  b: Matrix,
  visit: (i0: number, j0: number, h: number, w: number, tile: Float64Array) => void,
  upper = false,
): void {
  if (a.cols !== b.cols) throw argumentError("forEachDistanceTile", `feature dims differ: ${dims(a)} vs ${dims(b)}`);
  const d = a.cols;
  const A = a.data;
  const B = b.data;
  const na = norms(a);
  const nb = a === b ? na : norms(b);
  const tile = new Float64Array(TILE * TILE);
  for (let i0 = 0; i0 < a.rows; i0 += TILE) {
    const h = Math.min(TILE, a.rows - i0);
    for (let j0 = upper ? i0 : 0; j0 < b.rows; j0 += TILE) {
      const w = Math.min(TILE, b.rows - j0);
      // 4 rows × 2 columns of dot products per pass over d; short edges repeat the last row/column.
      for (let ii = 0; ii < h; ii += 4) {
        const r0 = (i0 + ii) * d;
        const r1 = ii + 1 < h ? r0 + d : r0;
        const r2 = ii + 2 < h ? r0 + 2 * d : r0;
        const r3 = ii + 3 < h ? r0 + 3 * d : r0;
        for (let jj = 0; jj < w; jj += 2) {
          const c0 = (j0 + jj) * d;
          const c1 = jj + 1 < w ? c0 + d : c0;
          let s00 = 0, s01 = 0, s10 = 0, s11 = 0, s20 = 0, s21 = 0, s30 = 0, s31 = 0;
          for (let t = 0; t < d; ++t) {
            const b0 = B[c0 + t]!;
            const b1 = B[c1 + t]!;
            let x = A[r0 + t]!;
            s00 += x * b0;
            s01 += x * b1;
            x = A[r1 + t]!;
            s10 += x * b0;
            s11 += x * b1;
            x = A[r2 + t]!;
            s20 += x * b0;
            s21 += x * b1;
            x = A[r3 + t]!;
            s30 += x * b0;
            s31 += x * b1;
          }
          const o = ii * TILE + jj;
          tile[o] = s00;
          tile[o + 1] = s01;
          tile[o + TILE] = s10;
          tile[o + TILE + 1] = s11;
          tile[o + 2 * TILE] = s20;
          tile[o + 2 * TILE + 1] = s21;
          tile[o + 3 * TILE] = s30;
          tile[o + 3 * TILE + 1] = s31;
        }
      }
      for (let ii = 0; ii < h; ++ii) {
        const ni = na[i0 + ii]!;
        for (let jj = 0, o = ii * TILE; jj < w; ++jj) tile[o + jj] = max(ni + nb[j0 + jj]! - 2 * tile[o + jj]!, 0);
      }
      visit(i0, j0, h, w, tile);
    }
  }
}

function norms(m: Matrix): Float64Array {
  const out = new Float64Array(m.rows);
  for (let i = 0; i < m.rows; ++i) {
    let s = 0;
    for (let t = 0, o = i * m.cols; t < m.cols; ++t) s += m.data[o + t]! ** 2;
    out[i] = s;
  }
  return out;
}

/** Float64 copies of the sets, all shifted by the first one's mean (distances are unchanged). */
export function centered(...sets: Matrix[]): Matrix[] {
  const ref = sets[0]!;
  const mu = new Float64Array(ref.cols);
  for (let i = 0; i < ref.rows; ++i) for (let t = 0, o = i * ref.cols; t < ref.cols; ++t) mu[t] = mu[t]! + ref.data[o + t]!;
  for (let t = 0; t < ref.cols; ++t) mu[t] = mu[t]! / max(ref.rows, 1);
  return sets.map((m) => {
    const data = new Float64Array(m.data.length);
    for (let i = 0; i < data.length; ++i) data[i] = m.data[i]! - mu[i % m.cols]!;
    return { data, rows: m.rows, cols: m.cols };
  });
}

/** Squared distance from each row to its k-th nearest other row (one pass over the upper tiles). */
function kthNeighbourSq(x: Matrix, k: number): Float64Array {
  const n = x.rows;
  const best = new Float64Array(n * k).fill(Infinity); // per row: the k smallest, ascending
  const push = (i: number, v: number): void => {
    const o = i * k;
    let p = o + k - 1;
    if (v >= best[p]!) return;
    while (p > o && best[p - 1]! > v) {
      best[p] = best[p - 1]!;
      --p;
    }
    best[p] = v;
  };
  forEachDistanceTile(x, x, (i0, j0, h, w, tile) => {
    for (let ii = 0; ii < h; ++ii) {
      const i = i0 + ii;
      for (let jj = 0; jj < w; ++jj) {
        const j = j0 + jj;
        if (j <= i) continue;
        const v = tile[ii * TILE + jj]!;
        push(i, v);
        push(j, v);
      }
    }
  }, true);
  return Float64Array.from({ length: n }, (_, i) => best[i * k + k - 1]!);
}

function checkK(op: string, k: number, sets: Matrix[]): void {
  if (!(Number.isSafeInteger(k) && k >= 1)) throw argumentError(op, `k must be a positive integer, got ${k}`);
  for (const m of sets) if (k >= m.rows) throw argumentError(op, `k = ${k} needs more than k samples, got ${dims(m)}`);
}

/** Distance from each sample to its k-th nearest neighbour in the same set: the k-NN manifold radii (Kynkäänniemi et al. 2019, eq. 2). */
export function kNearestRadii(features: MatrixLike, k = 3): Float64Array {
  const m = asMatrix(features, "kNearestRadii");
  checkK("kNearestRadii", k, [m]);
  return kthNeighbourSq(centered(m)[0]!, k).map(sqrt);
}

/** Improved precision / recall and density / coverage of generated vs real features. */
export interface ManifoldMetrics {
  /** Fraction of generated samples inside the real k-NN manifold (Kynkäänniemi et al. 2019, eq. 1–3). */
  precision: number;
  /** Fraction of real samples inside the generated k-NN manifold. */
  recall: number;
  /** Mean count of real balls holding a generated sample, / k (Naeem et al. 2020, eq. 3); 1 ≈ matched densities. */
  density: number;
  /** Fraction of real samples whose k-NN ball holds a generated sample (Naeem et al. 2020, eq. 4). */
  coverage: number;
  k: number;
}

/** Improved precision/recall (Kynkäänniemi et al. 2019, §2) and density/coverage (Naeem et al. 2020, §3) with k-NN balls; `realRadii` from kNearestRadii(real, k) skips one pass. */
export function precisionRecall(real: MatrixLike, generated: MatrixLike, options: { k?: number; realRadii?: ArrayLike<number> } = {}): ManifoldMetrics {
  const op = "precisionRecall";
  const k = options.k ?? 3;
  const R = asMatrix(real, op, "real");
  const G = asMatrix(generated, op, "generated");
  if (R.cols !== G.cols) throw argumentError(op, `feature dims differ: real ${dims(R)} vs generated ${dims(G)}`);
  checkK(op, k, [R, G]);
  const [rc, gc] = centered(R, G) as [Matrix, Matrix];
  let realSq: Float64Array;
  if (options.realRadii) {
    const given = options.realRadii;
    if (given.length !== R.rows) throw argumentError(op, `realRadii has ${given.length} values for real ${dims(R)}`);
    realSq = Float64Array.from(given, (r) => r * r);
  } else {
    realSq = kthNeighbourSq(rc, k);
  }
  const genSq = kthNeighbourSq(gc, k);
  const inReal = new Uint8Array(G.rows);
  const inGen = new Uint8Array(R.rows);
  const covered = new Uint8Array(R.rows);
  let inside = 0;
  forEachDistanceTile(rc, gc, (i0, j0, h, w, tile) => {
    for (let ii = 0; ii < h; ++ii) {
      const i = i0 + ii;
      const ri = realSq[i]!;
      for (let jj = 0; jj < w; ++jj) {
        const j = j0 + jj;
        const v = tile[ii * TILE + jj]!;
        if (v <= ri) {
          inReal[j] = 1;
          covered[i] = 1;
          ++inside;
        }
        if (v <= genSq[j]!) inGen[i] = 1;
      }
    }
  });
  const frac = (flags: Uint8Array): number => flags.reduce((s, f) => s + f, 0) / flags.length;
  return { precision: frac(inReal), recall: frac(inGen), density: inside / (k * G.rows), coverage: frac(covered), k };
}
