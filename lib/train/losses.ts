// Denoising losses in σ-space (METHODS.md §0, "Training losses"): every loss is
//   L = E_σ [ λ(σ)·‖D(x0 + σn; σ) − x0‖² ]
// and the families differ only in how σ is drawn and in λ. Means are taken over the pixels of a sample, so
// the numbers do not grow with resolution.
import { argumentError } from "../errors";
import type { NetworkDenoiser } from "../models/network-denoiser";
import * as ops from "../ops";
import type { Generator } from "../random";
import type { Tensor } from "../tensor";

export type LossKind = "edm" | "ddpm";

export interface EdmLossOptions {
  /** ln σ ~ N(pMean, pStd²) [−1.2, 1.2]. */
  pMean?: number;
  pStd?: number;
  /** σ_data of the weighting λ(σ) = (σ² + σ_d²)/(σσ_d)² [0.5]. */
  sigmaData?: number;
}

/** A batch's noise levels and loss weights. */
export interface NoiseLevels {
  sigmas: Float64Array;
  weights: Float64Array;
}

/** EDM (Karras et al. 2022, Table 1 "Training"): ln σ ~ N(P_mean, P_std²), λ(σ) = (σ² + σ_d²)/(σσ_d)². */
export function edmNoiseLevels(n: number, generator: Generator, options: EdmLossOptions = {}): NoiseLevels {
  const pMean = options.pMean ?? -1.2;
  const pStd = options.pStd ?? 1.2;
  const sd = options.sigmaData ?? 0.5;
  const normal = ops.randnValues(n, { generator }); // on this thread: no wait for the queued kernels
  const sigmas = Float64Array.from(normal, (z) => Math.exp(pMean + pStd * z));
  const weights = Float64Array.from(sigmas, (s) => (s * s + sd * sd) / (s * sd) ** 2);
  return { sigmas, weights };
}

/** DDPM ε-loss (Ho et al. 2020, Eq. 14) in σ-space: t ~ U{0..T−1}, σ = σ_t of the ᾱ table, and
 * ‖ε − ε̂‖² = ‖x0 − D‖²/σ² (METHODS.md §0, loss-weight identities), so λ = 1/σ². */
export function ddpmNoiseLevels(n: number, generator: Generator, table: Float64Array): NoiseLevels {
  const u = ops.randValues(n, { generator });
  const sigmas = Float64Array.from(u, (v) => table[Math.min(table.length - 1, Math.floor(v * table.length))]!);
  const weights = Float64Array.from(sigmas, (s) => 1 / (s * s));
  return { sigmas, weights };
}

/** The noise levels of a batch for the loss kind; DDPM needs a model with a discrete ᾱ table. */
export function noiseLevels(kind: LossKind, n: number, generator: Generator, model: NetworkDenoiser, edm: EdmLossOptions): NoiseLevels {
  if (kind === "edm") return edmNoiseLevels(n, generator, edm);
  const table = model.coefficients.discreteSigmas;
  if (!table) throw argumentError("trainDenoiser", `the DDPM ε-loss needs a DDPM-parameterized model, this one is '${model.parameterization.type}'`);
  return ddpmNoiseLevels(n, generator, table);
}

/** (1/B)·Σ_b λ_b·mean_pixels (D(x0 + σ_b n; σ_b) − x0)², recorded on the tape. */
export function denoisingLoss(
  model: NetworkDenoiser, x0: Tensor, levels: NoiseLevels, noise: Tensor, classLabels: ArrayLike<number> | null,
): Tensor {
  const batch = x0.shape[0]!;
  const perSample = [batch, ...x0.shape.slice(1).map(() => 1)];
  const sigma = ops.tensor(Float32Array.from(levels.sigmas), perSample);
  const noisy = ops.add(x0, ops.mul(noise, sigma));
  const denoised = model.denoise(noisy, levels.sigmas, { classLabels });
  const axes = x0.shape.slice(1).map((_, i) => i + 1);
  const perSampleError = ops.mean(ops.square(ops.sub(denoised, x0)), axes);
  return ops.mean(ops.mul(perSampleError, ops.tensor(Float32Array.from(levels.weights), [batch])));
}
