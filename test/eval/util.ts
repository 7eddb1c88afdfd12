// Seeded host random numbers for the evaluation tests (float64, independent of the engine's RNG).
import { expectCode } from "../helpers";

/** Uniforms in (0, 1) from mulberry32. */
export function uniform(seed: number): () => number {
  let a = seed >>> 0;
  return (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = Math.imul(a ^ (a >>> 15), a | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296;
  };
}

/** Standard normals: mulberry32 uniforms through Box–Muller. */
export function gaussian(seed: number): () => number {
  const u = uniform(seed);
  return () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
}

/** rows × cols standard normals scaled and shifted per column: mean[c] + scale·z. */
export function normalMatrix(rows: number, cols: number, seed: number, scale = 1, mean: ArrayLike<number> = []): { data: Float64Array; rows: number; cols: number } {
  const g = gaussian(seed);
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < rows; ++i) for (let c = 0; c < cols; ++c) data[i * cols + c] = (mean[c] ?? 0) + scale * g();
  return { data, rows, cols };
}

/** A random n × n SPD matrix X Xᵀ / m + ridge·I (X: n × m normals). */
export function randomSpd(n: number, seed: number, ridge = 0.1, m = n + 3): Float64Array {
  const x = normalMatrix(n, m, seed).data;
  const a = new Float64Array(n * n);
  for (let i = 0; i < n; ++i) {
    for (let j = 0; j < n; ++j) {
      let s = 0;
      for (let k = 0; k < m; ++k) s += x[i * m + k]! * x[j * m + k]!;
      a[i * n + j] = s / m + (i === j ? ridge : 0);
    }
  }
  return a;
}

/** Plain product of square matrices (reference, not the code under test). */
export function mulSquare(a: ArrayLike<number>, b: ArrayLike<number>, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; ++i) for (let j = 0; j < n; ++j) {
    let s = 0;
    for (let k = 0; k < n; ++k) s += a[i * n + k]! * b[k * n + j]!;
    out[i * n + j] = s;
  }
  return out;
}

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; ++i) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export { maxAbsDiff } from "../helpers";

/** `f` throws a FastdiffError ERR_ARGUMENT whose message matches `pattern`. */
export function expectArgumentError(f: () => unknown, pattern: RegExp): void {
  expectCode(f, "ERR_ARGUMENT", pattern);
}
