// The one contract every network and every exact toy denoiser speaks (DESIGN.md §4, METHODS.md §0):
// D(x̂; σ) ≈ E[x0 | x̂] for x̂ = x0 + σ·n, with one σ per sample. Samplers and distillation loops see
// nothing else.
import type { Device, Tensor } from "../tensor";
import type { Schedule } from "../sampling/schedules";

/** One σ for the whole batch, or one per sample. */
export type SigmaInput = number | ArrayLike<number>;

export interface DenoiseOptions {
  /** Class label per sample (networks with a class embedding). */
  classLabels?: ArrayLike<number> | null;
  /** Classifier-free guidance scale w: D = D_u + w·(D_c − D_u) (1 or undefined: conditional only). */
  guidance?: number;
}

/** How a sampler starts and steps for this denoiser when the caller names no schedule. */
export interface SamplingDefaults {
  /** The σ grid for `steps` steps (descending, ending in the terminal σ, usually 0). */
  schedule(steps: number): Schedule;
  /** x̂ at σ_0 from unit noise n is `initialNoiseScale(σ_0)·n`: σ_0 for EDM/VE; √(1+σ_0²) for VP models,
   * whose latent x_t = n is x̂ = x_t/√ᾱ (diffusers' DDIM and Euler start exactly so). */
  initialNoiseScale(sigma0: number): number;
}

type Loader = (path: string) => Promise<Denoiser>;
let loader: Loader | null = null;

/** @internal Set by ./network-denoiser (kept out of this file so the contract has no dependencies). */
export function setDenoiserLoader(fn: Loader): void {
  loader = fn;
}

export abstract class Denoiser implements SamplingDefaults {
  /** Loads a network (diffusers folder or fastdiff .safetensors; the class is read from its config) as a
   * denoiser, parameterized by the scheduler config stored beside it. */
  static load(path: string): Promise<Denoiser> {
    if (!loader) throw new Error("fastdiff: models not initialized");
    return loader(path);
  }

  /** Shape of one sample ([C, H, W] for images, [D] for vectors). */
  abstract readonly sampleShape: readonly number[];
  /** Number of classes the model is conditioned on (0: unconditional). */
  get numClasses(): number {
    return 0;
  }
  /** Where denoise() expects its input; `sample` draws the initial noise there. */
  get device(): Device {
    return "cpu";
  }
  /** D(x̂; σ) for a batch x̂ [B, ...sampleShape]; returns a new tensor the caller owns. */
  abstract denoise(x: Tensor, sigma: SigmaInput, options?: DenoiseOptions): Tensor;
  abstract schedule(steps: number): Schedule;
  initialNoiseScale(sigma0: number): number {
    return sigma0;
  }
}
