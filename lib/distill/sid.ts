// SiD: Score identity Distillation (Zhou et al., ICML 2024; METHODS.md §1) — a data-free one-step generator.
//
// Per iteration (the shared loop in ./matching.ts): one fake-score step, then one generator step with
//   x_g = G(σ_init·z; σ_init, c),  σ from the ρ-schedule at u ~ U[0, t_max/1000],  x_σ = x_g + σ·n,
//   r = f_φ(x_σ; σ) (teacher), f = f_ψ(x_σ; σ) (fake),
//   L_θ = (1/B)·Σ_b w_b·Σ_pix (r − f)⊙((r − x_g) − α·(r − f)),  w_b = 1/max(mean|x_g − r|, 1e-5) detached,
// computed by the fused kernel (ops.sidLoss); the gradient reaches G directly through x_g and through both frozen
// networks to their input x_σ.
import { argumentError } from "../errors";
import type { Denoiser } from "../models/denoiser";
import * as ops from "../ops";
import type { Generator } from "../random";
import { edmNoiseLevels } from "../train/losses";
import { distillMatching, type MatchingMethod, type MatchingOptions, type MatchingResult } from "./matching";

export interface SidOptions extends MatchingOptions {
  /** α of the generator loss. Default 1.2 (1.0 for some data; a per-domain setting, METHODS.md §1(f)). */
  alpha?: number;
  /** σ the generator runs at. Default 2.5. */
  sigmaInit?: number;
  /** t_max: the generator loss's σ comes from u ~ U[0, t_max/1000] on the ρ-schedule. Default 800 (σ ≤ 24.4). */
  tMax?: number;
  /** The ρ-schedule of that draw. Default 0.002, 80, 7. */
  sigmaMin?: number;
  sigmaMax?: number;
  rho?: number;
  /** The fake network's EDM loss: ln σ ~ N(pMean, pStd²), σ_data of its weighting. Defaults −1.2, 1.2, the
   * teacher's σ_data (0.5). */
  pMean?: number;
  pStd?: number;
  sigmaData?: number;
}

/** σ(u) = (σ_max^{1/ρ} + (1 − u)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ (METHODS.md §1(b)). */
export function sidSigma(u: number, sigmaMin = 0.002, sigmaMax = 80, rho = 7): number {
  const a = sigmaMax ** (1 / rho);
  return (a + (1 - u) * (sigmaMin ** (1 / rho) - a)) ** rho;
}

/** Distils `teacher` into a one-step generator with SiD; resolves to the EMA generator as a Student. */
export async function distillSiD(teacher: Denoiser, options: SidOptions): Promise<MatchingResult> {
  const op = "distillSiD";
  const alpha = options.alpha ?? 1.2;
  if (!(Number.isFinite(alpha) && alpha > 0 && alpha <= 2)) throw argumentError(op, `alpha must be in (0, 2], got ${String(alpha)}`);
  const sigmaInit = options.sigmaInit ?? 2.5;
  const tMax = options.tMax ?? 800;
  const [sMin, sMax, rho] = [options.sigmaMin ?? 0.002, options.sigmaMax ?? 80, options.rho ?? 7];
  if (!(Number.isFinite(sigmaInit) && sigmaInit > 0)) throw argumentError(op, `sigmaInit must be a finite number > 0, got ${String(sigmaInit)}`);
  if (!(tMax > 0 && tMax <= 1000)) throw argumentError(op, `tMax must be in (0, 1000], got ${String(tMax)}`);
  if (!(sMin > 0 && sMax > sMin && rho > 0)) throw argumentError(op, "the σ schedule needs 0 < sigmaMin < sigmaMax and rho > 0");
  // σ_data of the fake network's loss weighting: the networks' own (the teacher's when it is a network).
  const source = options.init ?? teacher;
  const p = "parameterization" in source ? (source as { parameterization: { type: string; sigmaData?: number } }).parameterization : null;
  const edm = { pMean: options.pMean, pStd: options.pStd, sigmaData: options.sigmaData ?? (p?.type === "edm" ? p.sigmaData : undefined) ?? 0.5 };

  const method: MatchingMethod = {
    name: "SiD",
    sigmaInit,
    fixed: { alpha, sigmaInit, tMax, sigmaMin: sMin, sigmaMax: sMax, rho },
    fakeLevels: (batch, generator) => edmNoiseLevels(batch, generator, edm),
    generatorLoss: ({ teacher: phi, fake, xg, labels, generator }) => {
      const batch = xg.shape[0]!;
      const sigmas = drawSigmas(batch, generator, (u) => sidSigma(u * (tMax / 1000), sMin, sMax, rho));
      const perSample = ops.tensor(Float32Array.from(sigmas), [batch, ...xg.shape.slice(1).map(() => 1)]);
      const noisy = ops.add(xg, ops.mul(ops.randn(xg.shape, { generator }), perSample));
      const r = phi.denoise(noisy, sigmas, labels ? { classLabels: labels } : {});
      const f = fake.denoise(noisy, sigmas, labels ? { classLabels: labels } : {});
      const { loss, mask } = ops.sidLoss(r, f, xg, { alpha });
      return { loss: ops.div(ops.sum(loss), batch), masked: mask };
    },
  };
  return distillMatching(teacher, method, options);
}

/** σ per sample: `map(u)` of u ~ U[0, 1) from the run's generator. */
export function drawSigmas(n: number, generator: Generator, map: (u: number) => number): number[] {
  return Array.from(ops.randValues(n, { generator }), map);
}
