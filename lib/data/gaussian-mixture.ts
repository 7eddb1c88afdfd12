// Isotropic Gaussian mixtures in any dimension and their exact denoisers (the toy sets' ground truth, and test /
// distillation targets with a known score). For x0 ~ Σ π_k N(μ_k, s_k²I) and x̂ = x0 + σn,
//   p_σ(x̂) = Σ π_k N(x̂; μ_k, (s_k² + σ²)I),
//   D(x̂; σ) = E[x0 | x̂] = Σ w_k [μ_k + s_k²/(s_k² + σ²)(x̂ − μ_k)],  w_k ∝ π_k N(x̂; μ_k, (s_k² + σ²)I),
//   ∇log p_σ(x̂) = (D − x̂)/σ² = Σ w_k (μ_k − x̂)/(s_k² + σ²)   (the last form stays finite at σ → 0).
// Host math in float64; the responsibilities w_k go through log-sum-exp so far-away modes never underflow to 0/0.
import { argumentError, FastdiffError } from "../errors";
import * as ops from "../ops";
import { Generator, type Seed } from "../random";
import type { Tensor } from "../tensor";
import { isGradEnabled } from "../autograd";
import { scope } from "../memory";
import { Denoiser, type SigmaInput } from "../models/denoiser";
import { karrasSigmas, type Schedule } from "../sampling/schedules";

// Under jest each global lookup in a hot loop is slow (test/helpers.ts): local aliases.
const { exp, log, PI } = Math;
const LOG_2PI = log(2 * PI);

export interface MixtureSpec {
  /** Component means: K rows of D values. */
  means: readonly (readonly number[])[];
  /** One standard deviation for every component, or one per component (≥ 0; 0 is a point mass). */
  stds: number | readonly number[];
  /** Mixing weights π_k (> 0; normalized here). Default: equal. */
  weights?: readonly number[];
}

/** An isotropic Gaussian mixture Σ π_k N(μ_k, s_k²I) in D dimensions, with exact noisy-data quantities. */
export class GaussianMixture {
  readonly dim: number;
  /** Number of components K. */
  readonly size: number;
  readonly means: number[][];
  readonly stds: number[];
  /** Normalized mixing weights. */
  readonly weights: number[];
  private readonly mu: Float64Array;
  private readonly s2: Float64Array;
  private readonly logPi: Float64Array;

  constructor(spec: MixtureSpec) {
    const op = "GaussianMixture";
    const K = spec.means.length;
    if (K < 1) throw argumentError(op, "needs at least one component");
    this.dim = spec.means[0]!.length;
    if (this.dim < 1 || spec.means.some((m) => m.length !== this.dim || m.some((v) => !Number.isFinite(v))))
      throw argumentError(op, `means must be ${K} rows of the same length ≥ 1 with finite values`);
    const stds = typeof spec.stds === "number" ? new Array<number>(K).fill(spec.stds) : [...spec.stds];
    if (stds.length !== K || stds.some((s) => !(s >= 0 && Number.isFinite(s)))) throw argumentError(op, `stds must be ${K} finite values ≥ 0`);
    const w = spec.weights ? [...spec.weights] : new Array<number>(K).fill(1);
    if (w.length !== K || w.some((v) => !(v > 0 && Number.isFinite(v)))) throw argumentError(op, `weights must be ${K} finite values > 0`);
    const total = w.reduce((a, b) => a + b, 0);
    this.means = spec.means.map((m) => [...m]);
    this.stds = stds;
    this.weights = w.map((v) => v / total);
    this.mu = Float64Array.from(this.means.flat());
    this.s2 = Float64Array.from(stds, (s) => s * s);
    this.logPi = Float64Array.from(this.weights, log);
    this.size = K;
  }

  /** The mixture mean Σ π_k μ_k (= D(x̂; ∞)). */
  mean(): Float64Array {
    return this.denoise(new Float64Array(this.dim), Infinity);
  }

  /** n exact draws and the component each came from (seeded: the same on every machine). */
  draw(n: number, seed: Seed | Generator = 0): { x: Float32Array; components: Int32Array } {
    checkCount("GaussianMixture.draw", n);
    const [u, z] = uniformsAndNormals(n, this.dim, seed);
    let acc = 0;
    const cum = Float64Array.from(this.weights, (v) => (acc += v));
    const D = this.dim;
    const x = new Float32Array(n * D);
    const components = new Int32Array(n);
    for (let i = 0; i < n; ++i) {
      let k = 0;
      while (k < this.size - 1 && u[i]! >= cum[k]!) ++k;
      components[i] = k;
      const s = this.stds[k]!;
      for (let j = 0; j < D; ++j) x[i * D + j] = this.mu[k * D + j]! + s * z[i * D + j]!;
    }
    return { x, components };
  }

  /** n exact draws as a tensor [n, D]. */
  sample(n: number, seed: Seed | Generator = 0): Tensor {
    return ops.tensor(this.draw(n, seed).x, [n, this.dim]);
  }

  /** D(x̂; σ) for row-major x̂ [B, D]; σ = 0 gives x̂, σ = ∞ the mixture mean. */
  denoise(x: ArrayLike<number>, sigma: SigmaInput): Float64Array {
    const { dim: D, mu } = this;
    const out = new Float64Array(x.length);
    this.visit("denoise", x, sigma, (o, { w, c }) => {
      if (!w) for (let j = 0; j < D; ++j) out[o + j] = x[o + j]!; // σ = 0: D(x̂; 0) = x̂
      else
        for (let k = 0; k < w.length; ++k) {
          const wk = w[k]!;
          const ck = c[k]!;
          if (wk !== 0) for (let j = 0; j < D; ++j) out[o + j] = out[o + j]! + wk * (mu[k * D + j]! + ck * (x[o + j]! - mu[k * D + j]!));
        }
    });
    return out;
  }

  /** ∇log p_σ(x̂) = (D − x̂)/σ² = Σ w_k (μ_k − x̂)/(s_k² + σ²) for x̂ [B, D]. */
  score(x: ArrayLike<number>, sigma: SigmaInput): Float64Array {
    const { dim: D, mu } = this;
    const out = new Float64Array(x.length);
    this.visit("score", x, sigma, (o, { w, inv }) => {
      for (let k = 0; k < w!.length; ++k) {
        const f = w![k]! * inv[k]!;
        if (f !== 0) for (let j = 0; j < D; ++j) out[o + j] = out[o + j]! + f * (mu[k * D + j]! - x[o + j]!);
      }
    });
    return out;
  }

  /** log p_σ(x̂) per row of x̂ [B, D]. */
  logDensity(x: ArrayLike<number>, sigma: SigmaInput): Float64Array {
    const out = new Float64Array(x.length / this.dim);
    this.visit("logDensity", x, sigma, (o, r) => (out[o / this.dim] = r.logP));
    return out;
  }

  /** The most probable component of each row of x̂ [B, D] (at noise level σ, default 0). */
  assign(x: ArrayLike<number>, sigma: SigmaInput = 0): Int32Array {
    const out = new Int32Array(x.length / this.dim);
    this.visit("assign", x, sigma, (o, { w }) => {
      let best = 0;
      for (let k = 1; k < w!.length; ++k) if (w![k]! > w![best]!) best = k;
      out[o / this.dim] = best;
    });
    return out;
  }

  /** Calls `fn(offset of row b, row)` per row: responsibilities w (log-sum-exp normalized; null for denoise at
   * σ = 0), shrink factors c_k = s_k²/(s_k² + σ²), inv_k = 1/(s_k² + σ²) and log p_σ. */
  private visit(op: string, x: ArrayLike<number>, sigma: SigmaInput, fn: (o: number, row: Row) => void): void {
    const name = `GaussianMixture.${op}`;
    const { dim: D, size: K, mu, s2, logPi } = this;
    if (x.length % D !== 0) throw new FastdiffError("ERR_SHAPE", `${name}: ${x.length} values are not rows of ${D}`);
    const B = x.length / D;
    const sig = sigmaArray(name, sigma, B);
    const row: Row = { w: new Float64Array(K), c: new Float64Array(K), inv: new Float64Array(K), logP: 0 };
    const w = row.w!;
    const logNorm = new Float64Array(K); // log π_k − D/2·log(2π v_k): recomputed only when σ changes
    let last = NaN;
    for (let b = 0, o = 0; b < B; ++b, o += D) {
      const s = sig[b]!;
      if (s !== last) {
        last = s;
        for (let k = 0; k < K; ++k) {
          const v = s2[k]! + s * s;
          if (v === 0 && op !== "denoise") throw argumentError(name, "σ = 0 with a point-mass component (std 0) has no density");
          row.c[k] = s2[k]! / v;
          row.inv[k] = 1 / v;
          logNorm[k] = logPi[k]! - 0.5 * D * (LOG_2PI + log(v));
        }
      }
      if (s * s === 0 && op === "denoise") { // also σ² underflowing: D → x̂
        fn(o, { ...row, w: null });
        continue;
      }
      if (s * s === Infinity) { // also σ² overflowing: w → π
        w.set(this.weights);
        fn(o, { ...row, logP: -Infinity });
        continue;
      }
      let m = -Infinity;
      for (let k = 0; k < K; ++k) {
        let d2 = 0;
        for (let j = 0; j < D; ++j) d2 += (x[o + j]! - mu[k * D + j]!) ** 2;
        const l = (w[k] = logNorm[k]! - 0.5 * d2 * row.inv[k]!);
        if (l > m) m = l;
      }
      let z = 0;
      for (let k = 0; k < K; ++k) z += w[k] = exp(w[k]! - m);
      for (let k = 0; k < K; ++k) w[k] = w[k]! / z;
      row.logP = m + log(z);
      fn(o, row);
    }
  }
}

/** One row's view in GaussianMixture's visit. */
interface Row {
  w: Float64Array | null;
  c: Float64Array;
  inv: Float64Array;
  logP: number;
}

/** @internal Throws unless n is a positive integer. */
export function checkCount(op: string, n: number): void {
  if (!Number.isInteger(n) || n < 1) throw argumentError(op, `n must be a positive integer, got ${n}`);
}

/** @internal n uniforms in [0, 1), then n·D standard normals, from one Philox stream (a seed, or a Generator it advances). */
export function uniformsAndNormals(n: number, D: number, seed: Seed | Generator): [Float32Array, Float32Array] {
  const g = seed instanceof Generator ? seed : new Generator(seed);
  return [ops.randValues(n, { generator: g }), ops.randnValues(n * D, { generator: g })];
}

/** One σ per row (number → broadcast); σ must be ≥ 0 (∞ allowed). */
function sigmaArray(op: string, sigma: SigmaInput, B: number): ArrayLike<number> {
  const arr = typeof sigma === "number" ? new Float64Array(B).fill(sigma) : sigma;
  if (arr.length !== B) throw argumentError(op, `${arr.length} σ values for a batch of ${B}`);
  for (let b = 0; b < B; ++b) if (!(arr[b]! >= 0)) throw argumentError(op, `σ must be ≥ 0, got ${arr[b]} at ${b}`);
  return arr;
}

export interface MixtureDenoiserOptions {
  /** Shape of one sample (its size must equal the mixture's dimension). Default [D]. */
  sampleShape?: readonly number[];
  /** Karras schedule of `schedule(steps)`: EDM's defaults σ_min 0.002, σ_max 80, ρ 7 (toy2d uses σ_max 20). */
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
}

/** The exact denoiser of a GaussianMixture, speaking the Denoiser contract (per-sample σ, float32 tensors). */
export class MixtureDenoiser extends Denoiser {
  readonly sampleShape: readonly number[];
  constructor(readonly mixture: GaussianMixture, readonly options: MixtureDenoiserOptions = {}) {
    super();
    this.sampleShape = options.sampleShape ? [...options.sampleShape] : [mixture.dim];
    if (this.sampleShape.reduce((a, b) => a * b, 1) !== mixture.dim)
      throw argumentError("MixtureDenoiser", `sampleShape ${JSON.stringify(this.sampleShape)} does not hold ${mixture.dim} values`);
  }

  /** D(x̂; σ) = E[x0 | x̂]; a new tensor shaped like x. Exact (float64 on the host), or — when gradients are
   * on and x carries them (distilling through the teacher, SiD) — the same formula as differentiable ops. */
  denoise(x: Tensor, sigma: SigmaInput): Tensor {
    if (isGradEnabled() && x.requiresGrad) return this.denoiseOps(x, sigma);
    return this.apply("denoise", x, sigma);
  }

  /** D = Σ_k γ_k·(μ_k + c_k·(x̂ − μ_k)), γ = softmax_k(log π_k − (D/2)·log v_k − ‖x̂ − μ_k‖²/(2v_k)), v_k = s_k² + σ²,
   * c_k = s_k²/v_k, in float32 ops (recorded on the tape). */
  private denoiseOps(x: Tensor, sigma: SigmaInput): Tensor {
    const m = this.mixture;
    const B = x.shape[0]!;
    const D = m.dim;
    const K = m.size;
    const sigmas = typeof sigma === "number" ? new Array<number>(B).fill(sigma) : Array.from(sigma);
    if (sigmas.length !== B) throw argumentError("MixtureDenoiser.denoise", `${sigmas.length} σ values for a batch of ${B}`);
    const table = (f: (b: number, k: number, v: number) => number) =>
      ops.tensor(Float32Array.from({ length: B * K }, (_, i) => {
        const b = Math.floor(i / K);
        const k = i % K;
        return f(b, k, m.stds[k]! ** 2 + sigmas[b]! ** 2);
      }), [B, K]);
    return scope(() => {
      const flat = ops.reshape(x, [B, D]);
      const means = ops.tensor(Float32Array.from(m.means.flat()), [K, D]);
      const meanNorms = ops.tensor(Float32Array.from(m.means, (mu) => mu.reduce((s, v) => s + v * v, 0)), [1, K]);
      // ‖x̂ − μ_k‖² = ‖x̂‖² − 2x̂·μ_k + ‖μ_k‖²
      const dist = ops.add(ops.sub(ops.sum(ops.square(flat), 1, true), ops.mul(ops.matmul(flat, ops.transpose(means, 0, 1)), 2)), meanNorms);
      const logits = ops.sub(table((_, k, v) => Math.log(m.weights[k]!) - (D / 2) * Math.log(v)), ops.mul(dist, table((_, __, v) => 1 / (2 * v))));
      const gamma = ops.softmax(logits, 1);
      const shrink = table((_, k, v) => m.stds[k]! ** 2 / v);
      const out = ops.add(ops.matmul(ops.sub(gamma, ops.mul(gamma, shrink)), means), ops.mul(flat, ops.sum(ops.mul(gamma, shrink), 1, true)));
      return ops.reshape(out, x.shape);
    });
  }

  /** ∇log p_σ(x̂) = (D − x̂)/σ²; a new tensor shaped like x. */
  score(x: Tensor, sigma: SigmaInput): Tensor {
    return this.apply("score", x, sigma);
  }

  schedule(steps: number): Schedule {
    const { sigmaMin, sigmaMax, rho } = this.options;
    return { sigmas: karrasSigmas(steps, { sigmaMin: sigmaMin ?? 0.002, sigmaMax: sigmaMax ?? 80, rho: rho ?? 7 }) };
  }

  private apply(op: "denoise" | "score", x: Tensor, sigma: SigmaInput): Tensor {
    const s = x.shape;
    if (s.length !== this.sampleShape.length + 1 || this.sampleShape.some((d, i) => s[i + 1] !== d))
      throw new FastdiffError("ERR_SHAPE", `MixtureDenoiser.${op}: x ${JSON.stringify(s)} is not [B, ${this.sampleShape.join(", ")}]`);
    return ops.tensor(Float32Array.from(this.mixture[op](x.dataSync(), sigma)), s);
  }
}
