// Test-only denoisers with known answers.
import * as fd from "../../lib";
import { Denoiser, type DenoiseOptions, type SigmaInput } from "../../lib/models/denoiser";
import { karrasSigmas, type Schedule } from "../../lib/sampling/schedules";
import { epsToX0, vpAlpha } from "../../lib/sampling/parameterization";

/**
 * Data x0 ~ N(μ, s²·I) in D dimensions. Then x̂ = x0 + σn ~ N(μ, (s² + σ²)I) and the exact denoiser is
 *   D(x̂; σ) = E[x0 | x̂] = μ + s²/(s² + σ²)·(x̂ − μ).
 * The PF-ODE dx̂/dσ = (x̂ − D)/σ = σ(x̂ − μ)/(s² + σ²) is solved by x̂(σ) = μ + √(s² + σ²)/√(s² + σ0²)·(x̂(σ0) − μ).
 */
export class GaussianDenoiser extends Denoiser {
  readonly sampleShape: readonly number[];
  /** Network evaluations so far and the σ of each. */
  calls = 0;
  sigmasSeen: number[] = [];
  lastOptions: DenoiseOptions | undefined;
  constructor(readonly mu: readonly number[], readonly s: number, readonly classes = 0) {
    super();
    this.sampleShape = [mu.length];
  }
  override get numClasses(): number {
    return this.classes;
  }
  denoise(x: fd.Tensor, sigma: SigmaInput, options?: DenoiseOptions): fd.Tensor {
    this.calls += 1;
    this.lastOptions = options;
    const s2 = this.s * this.s;
    const dim = this.mu.length;
    return fd.scope(() => {
      if (typeof sigma === "number") {
        this.sigmasSeen.push(sigma);
        const c = s2 / (s2 + sigma * sigma);
        // c·x̂ + (1 − c)·μ
        return fd.add(fd.mul(x, c), fd.tensor(Float32Array.from(this.mu, (m) => (1 - c) * m), [dim]));
      }
      const B = x.shape[0]!;
      const c = Float32Array.from({ length: B }, (_, b) => s2 / (s2 + sigma[b]! ** 2));
      const ct = fd.tensor(c, [B, 1]);
      const mu = fd.tensor(Float32Array.from(this.mu), [1, dim]);
      return fd.add(fd.mul(x, ct), fd.mul(fd.sub(1, ct), mu));
    });
  }
  schedule(steps: number): Schedule {
    return { sigmas: karrasSigmas(steps) };
  }
  /** The exact PF-ODE solution at σ1 from x̂ at σ0 (float64, per element). */
  exactFlow(x: ArrayLike<number>, sigma0: number, sigma1: number): Float64Array {
    const s2 = this.s * this.s;
    const g = Math.sqrt(s2 + sigma1 * sigma1) / Math.sqrt(s2 + sigma0 * sigma0);
    const dim = this.mu.length;
    return Float64Array.from(x, (v, k) => this.mu[k % dim]! + g * (v - this.mu[k % dim]!));
  }
}

/** The golden closed-form "ε-model" (golden/README.md, Scheduler trajectories), float32 elementwise:
 * eps(x, t) = x·f32(0.9) + tanh(x)·f32(0.2·cos(0.01·t) + 0.1·sin(t)), t = the (float64) timestep. */
export function goldenEps(x: fd.Tensor, t: number): fd.Tensor {
  const c = Math.fround(0.2 * Math.cos(0.01 * t) + 0.1 * Math.sin(t));
  return fd.scope(() => fd.add(fd.mul(x, Math.fround(0.9)), fd.mul(fd.tanh(x), c)));
}

/**
 * A VP ε-prediction model as an EDM denoiser (METHODS.md §0 "Any teacher as an EDM denoiser"): at σ, the
 * network sees x_t = x̂/√(1 + σ²) and the discrete timestep t(σ) of its schedule, and
 *   x0 = (x_t − √(1 − ᾱ)·ε)/√ᾱ = x̂ − σ·ε,  ᾱ = 1/(1 + σ²).
 * σ must be one of the schedule's σ values (each has its timestep).
 */
export class VpEpsDenoiser extends Denoiser {
  readonly sampleShape: readonly number[];
  calls = 0;
  constructor(
    private readonly sched: Schedule & { timesteps: number[] },
    /** diffusers' init_noise_sigma: "vp" √(1 + σ_0²) (DDIM's latents are x_t, so x̂_0 = x_T/√ᾱ_T), "sigma" σ_0
     * (EulerDiscreteScheduler with "linspace"/"trailing" spacing starts from σ_max·n). */
    private readonly init: "vp" | "sigma",
    sampleShape: readonly number[] = [4, 8, 8],
  ) {
    super();
    this.sampleShape = sampleShape;
  }
  denoise(x: fd.Tensor, sigma: SigmaInput): fd.Tensor {
    if (typeof sigma !== "number") throw new Error("VpEpsDenoiser: one σ per batch");
    const i = this.sched.sigmas.indexOf(sigma);
    if (i < 0 || i >= this.sched.timesteps.length) throw new Error(`VpEpsDenoiser: σ = ${sigma} is not on the schedule`);
    this.calls += 1;
    return fd.scope(() => epsToX0(x, goldenEps(fd.mul(x, vpAlpha(sigma)), this.sched.timesteps[i]!), sigma));
  }
  schedule(steps: number): Schedule {
    if (steps !== this.sched.timesteps.length) throw new Error(`VpEpsDenoiser: built for ${this.sched.timesteps.length} steps`);
    return { sigmas: this.sched.sigmas.slice(), timesteps: this.sched.timesteps.slice() };
  }
  override initialNoiseScale(sigma0: number): number {
    return this.init === "vp" ? Math.sqrt(1 + sigma0 * sigma0) : sigma0;
  }
}
