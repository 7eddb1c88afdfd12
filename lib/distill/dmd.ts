// DMD / DMD2 (Yin et al. 2024; METHODS.md §2) on the shared distribution-matching loop: the generator is pushed
// along the difference of the fake and real x0-predictions at noised generator samples, with no graph through
// either network:
//   σ = σ_k of a 1000-point Karras grid, k ~ U{20, …, 980};  x_t = x_g + σ·n;  μ_r = f_φ(x_t), μ_f = f_ψ(x_t)
//   g = (μ_f − μ_r)/mean_pix|x_g − μ_r|   (nan_to_num)
//   L_DM = ½·mean_all(x_g − sg(x_g − g))²,  so ∂L_DM/∂x_g = g/(B·P).
// The fake network learns on k ~ U{0, …, 999} with the EDM weighting λ = 1/σ² + 1/σ_d², `fakeUpdates` times per
// generator step (DMD2's two-time-scale update, default 5). Optional regression to teacher ODE pairs (DMD v1, here
// with an MSE instead of LPIPS).
import { noGrad } from "../autograd";
import { argumentError } from "../errors";
import type { Denoiser } from "../models/denoiser";
import * as ops from "../ops";
import { karrasSigmas } from "../sampling/schedules";
import type { Tensor } from "../tensor";
import { distillMatching, type MatchingMethod, type MatchingOptions, type MatchingResult } from "./matching";
import { drawSigmas } from "./sid";

export interface DmdOptions extends MatchingOptions {
  /** σ the generator runs at. Default 80 (DMD2's EDM setting). */
  sigmaInit?: number;
  /** The σ grid: K Karras values from sigmaMin to sigmaMax (ρ 7); the generator loss uses indices
   * [minStep, maxStep] of it (ascending). Defaults 1000, 0.002, 80, 20, 980. */
  gridSize?: number;
  sigmaMin?: number;
  sigmaMax?: number;
  minStep?: number;
  maxStep?: number;
  /** σ_data of the fake loss's weighting (default: the networks' own, else 0.5). */
  sigmaData?: number;
  /** Regression to teacher ODE pairs (DMD v1): unit noise [N, ...] and the teacher's x0 from it, and the weight of
   * mean((G(σ_init·z) − x0)²) added to the generator loss on a minibatch of them each step. */
  regression?: { noise: Tensor; targets: Tensor; classLabels?: ArrayLike<number>; weight: number };
}

/** DMD's gradient on x_g (no graph): g = (μ_f − μ_r)/mean_pix|x_g − μ_r|, non-finite values set to 0. */
export function dmdGradient(xg: Tensor, real: Tensor, fake: Tensor): Tensor {
  return noGrad(() => {
    const axes = xg.shape.slice(1).map((_, i) => i + 1);
    const scale = ops.clamp(ops.mean(ops.abs(ops.sub(xg, real)), axes, true), 1e-8, Infinity);
    return ops.nanToNum(ops.div(ops.sub(fake, real), scale));
  });
}

/** L = ½·mean_all(x_g − sg(x_g − g))²: its gradient on x_g is exactly g/(B·P). */
export function dmdLoss(xg: Tensor, g: Tensor): Tensor {
  return ops.mul(ops.mseLoss(xg, noGrad(() => ops.sub(xg, g))), 0.5);
}

/** Distils `teacher` into a one-step generator with DMD2's distribution matching; resolves to the EMA generator. */
export async function distillDMD(teacher: Denoiser, options: DmdOptions): Promise<MatchingResult> {
  const op = "distillDMD";
  const sigmaInit = options.sigmaInit ?? 80;
  const K = options.gridSize ?? 1000;
  const minStep = options.minStep ?? Math.round(0.02 * K);
  const maxStep = options.maxStep ?? Math.round(0.98 * K);
  if (!(Number.isFinite(sigmaInit) && sigmaInit > 0)) throw argumentError(op, `sigmaInit must be a finite number > 0, got ${String(sigmaInit)}`);
  if (!(Number.isInteger(K) && K >= 2 && Number.isInteger(minStep) && Number.isInteger(maxStep) && minStep >= 0 && maxStep < K && minStep <= maxStep)) {
    throw argumentError(op, `need an integer gridSize >= 2 and 0 <= minStep <= maxStep < gridSize, got ${K}, ${minStep}, ${maxStep}`);
  }
  // ascending: index 0 is σ_min
  const grid = karrasSigmas(K, { sigmaMin: options.sigmaMin ?? 0.002, sigmaMax: options.sigmaMax ?? 80 }).slice(0, K).reverse();
  const source = options.init ?? teacher;
  const p = "parameterization" in source ? (source as { parameterization: { type: string; sigmaData?: number } }).parameterization : null;
  const sd = options.sigmaData ?? (p?.type === "edm" ? p.sigmaData : undefined) ?? 0.5;
  const reg = options.regression;
  if (reg && !(reg.weight >= 0 && reg.noise.shape[0] === reg.targets.shape[0] && reg.noise.shape.join() === reg.targets.shape.join())) {
    throw argumentError(op, "regression needs noise and targets of one shape and a weight >= 0");
  }
  const pick = (lo: number, hi: number) => (u: number) => grid[Math.min(hi, lo + Math.floor(u * (hi - lo + 1)))]!;

  const method: MatchingMethod = {
    name: "DMD",
    sigmaInit,
    fixed: { sigmaInit, gridSize: K, minStep, maxStep, regression: reg ? reg.weight : 0 },
    fakeLevels: (batch, generator) => {
      const sigmas = Float64Array.from(drawSigmas(batch, generator, pick(0, K - 1)));
      return { sigmas, weights: Float64Array.from(sigmas, (s) => 1 / (s * s) + 1 / (sd * sd)) };
    },
    generatorLoss: ({ teacher: phi, fake, xg, labels, generator, generate }) => {
      const batch = xg.shape[0]!;
      const sigmas = drawSigmas(batch, generator, pick(minStep, maxStep));
      const g = noGrad(() => {
        const noisy = ops.add(xg, ops.mul(ops.randn(xg.shape, { generator }), ops.tensor(Float32Array.from(sigmas), [batch, ...xg.shape.slice(1).map(() => 1)])));
        const cond = labels ? { classLabels: labels } : {};
        return dmdGradient(xg, phi.denoise(noisy, sigmas, cond), fake.denoise(noisy, sigmas, cond));
      });
      let loss = dmdLoss(xg, g);
      if (reg && reg.weight > 0) {
        const n = reg.noise.shape[0]!;
        const idx = drawSigmas(batch, generator, (u) => Math.min(n - 1, Math.floor(u * n)));
        const z = ops.concat(idx.map((i) => ops.slice(reg.noise, 0, i, i + 1)), 0);
        const x0 = ops.concat(idx.map((i) => ops.slice(reg.targets, 0, i, i + 1)), 0);
        const regLabels = reg.classLabels ? idx.map((i) => reg.classLabels![i]!) : null;
        loss = ops.add(loss, ops.mul(ops.mseLoss(generate(z, regLabels), x0), reg.weight));
      }
      return { loss, masked: null };
    },
  };
  // DMD2's defaults (two-time-scale ratio 5, Adam β1 0.9, clipping at 10) where the caller gave none.
  const defaults: Partial<MatchingOptions> = { fakeUpdates: 5, betas: [0.9, 0.999], fakeBetas: [0.9, 0.999], maxGradNorm: 10 };
  const merged = { ...options } as MatchingOptions & Record<string, unknown>;
  for (const [key, value] of Object.entries(defaults)) if (merged[key] === undefined) merged[key] = value;
  return distillMatching(teacher, method, merged);
}
