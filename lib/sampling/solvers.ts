// Sampler step functions in EDM σ-space (METHODS.md §0): x̂ = x0 + σ·n, one Denoiser D(x̂; σ) ≈ E[x0 | x̂].
// Each step maps x̂_i at σ_i to x̂_{i+1} at σ_{i+1} given a callback D(x, σ) (a new tensor the step owns and
// disposes) and, for the stochastic solvers, a counter-based Generator for the fresh noise.
//
// The probability-flow ODE in σ-space (Karras et al. 2022, eq. 4 with s = 1, σ(t) = t):
//   dx̂/dσ = (x̂ − D(x̂; σ))/σ.
//
// Every step function scopes its intermediates: only the returned tensors survive (and move to the
// enclosing scope, if any). Inputs are never disposed.
import { argumentError } from "../errors";
import { leaveScopes, scope } from "../memory";
import * as ops from "../ops";
import type { Generator } from "../random";
import type { Tensor } from "../tensor";
import { eulerStep } from "./parameterization";

/** D(x̂; σ): the x0 estimate at noise level σ. Returns a new tensor the caller owns. */
export type DenoiseFn = (x: Tensor, sigma: number) => Tensor;

export interface StepOptions {
  /**
   * Called with each x0 estimate the update uses (after clipping, for DDIM) and its σ, once per network
   * evaluation. The tensor is borrowed: it is disposed when the step returns (clone it to keep it).
   */
  onDenoised?: (denoised: Tensor, sigma: number) => void;
}

export interface NoiseOptions {
  /** Source of the fresh N(0, I) noise (Philox, counter-based: the same seed and offset give the same
   * draws). Omitted: the default generator (see `manualSeed`). */
  generator?: Generator;
}

export interface ChurnOptions {
  /** EDM churn γ_i ≥ 0 for this step (see `churnGamma`); σ̂ = σ_i·(1 + γ_i). Default 0 (deterministic). */
  gamma?: number;
  /** S_noise: the std of the added noise relative to √(σ̂² − σ²). Default 1. */
  sNoise?: number;
}

// ---------------------------------------------------------------------------------------------------
// helpers

function checkSigmas(fn: string, sigma: number, sigmaNext: number): void {
  if (!(typeof sigma === "number" && Number.isFinite(sigma) && sigma > 0)) {
    throw argumentError(fn, `sigma must be a finite number > 0, got ${String(sigma)}`);
  }
  if (!(typeof sigmaNext === "number" && Number.isFinite(sigmaNext) && sigmaNext >= 0 && sigmaNext < sigma)) {
    throw argumentError(fn, `sigmaNext must be a finite number in [0, sigma = ${sigma}), got ${String(sigmaNext)}`);
  }
}

function randnLike(x: Tensor, generator: Generator | undefined): Tensor {
  return ops.randn(x.shape, { ...(generator ? { generator } : {}), device: x.device });
}

/** D(x; σ), reported to `onDenoised`. */
function evaluate(denoise: DenoiseFn, x: Tensor, sigma: number, options: StepOptions): Tensor {
  const d = denoise(x, sigma);
  options.onDenoised?.(d, sigma);
  return d;
}

/** EDM Alg. 2 lines 4–6: σ̂ = σ(1 + γ), x̂ ← x̂ + √(σ̂² − σ²)·S_noise·z (identity when γ = 0). */
function churn(fn: string, x: Tensor, sigma: number, options: ChurnOptions & NoiseOptions): { x: Tensor; sigmaHat: number } {
  const gamma = options.gamma ?? 0;
  const sNoise = options.sNoise ?? 1;
  if (!(Number.isFinite(gamma) && gamma >= 0)) throw argumentError(fn, `gamma must be a finite number >= 0, got ${String(gamma)}`);
  if (!(Number.isFinite(sNoise) && sNoise >= 0)) throw argumentError(fn, `sNoise must be a finite number >= 0, got ${String(sNoise)}`);
  if (gamma === 0) return { x, sigmaHat: sigma };
  const sigmaHat = sigma * (1 + gamma);
  const std = Math.sqrt(sigmaHat * sigmaHat - sigma * sigma) * sNoise;
  return { x: ops.add(x, ops.mul(randnLike(x, options.generator), std)), sigmaHat };
}

// ---------------------------------------------------------------------------------------------------
// Euler (first order) = DDIM η = 0 = flow Euler

/**
 * Euler step of the PF-ODE (Karras et al. 2022, Alg. 1 line 5 without the correction):
 * d = (x̂ − D)/σ, x̂' = x̂ + (σ' − σ)·d, i.e. x̂' = D + σ'·(x̂ − D)/σ (METHODS.md §0; = DDIM η = 0).
 * With `gamma` > 0 it first churns (EDM Alg. 2 lines 4–6) and steps from σ̂ (k-diffusion's `sample_euler`).
 * NFE 1.
 */
export function stepEuler(
  x: Tensor, sigma: number, sigmaNext: number, denoise: DenoiseFn, options: StepOptions & ChurnOptions & NoiseOptions = {},
): Tensor {
  checkSigmas("stepEuler", sigma, sigmaNext);
  return scope(() => {
    const { x: xh, sigmaHat } = churn("stepEuler", x, sigma, options);
    const d = evaluate(denoise, xh, sigmaHat, options);
    return eulerStep(xh, d, sigmaHat, sigmaNext);
  });
}

// ---------------------------------------------------------------------------------------------------
// DDIM with η (Song et al. 2021)

/**
 * Coefficients of the DDIM update written in σ-space: x̂' = x0 + direction·ε + noise·z, with ε = (x̂ − D)/σ.
 * Derived from the VP form (Song et al. 2021, eq. 12 with σ_t(η) of eq. 16):
 *   x_{t'} = √ᾱ'·x0 + √(1 − ᾱ' − σ_t²)·ε + σ_t·z,   σ_t = η·√((1 − ᾱ')/(1 − ᾱ))·√(1 − ᾱ/ᾱ'),
 * with ᾱ = 1/(1 + σ²), x_t = x̂/√(1 + σ²) = √ᾱ·x̂ and the VP ε = (x_t − √ᾱ·x0)/√(1 − ᾱ) = (x̂ − x0)/σ.
 * Dividing by √ᾱ' (x̂' = x_{t'}/√ᾱ'): direction = √(1 − ᾱ' − σ_t²)/√ᾱ', noise = σ_t/√ᾱ'.
 * η = 0 gives direction = √((1 − ᾱ')/ᾱ') = σ' (the Euler step); in closed form
 * noise = η·σ'·√(σ² − σ'²)/σ, which is the ancestral σ_up (so DDIM η = 1 ≡ Euler ancestral).
 */
export function ddimCoefficients(sigma: number, sigmaNext: number, eta: number): { direction: number; noise: number } {
  checkSigmas("ddimCoefficients", sigma, sigmaNext);
  if (!(Number.isFinite(eta) && eta >= 0 && eta <= 1)) throw argumentError("ddimCoefficients", `eta must be in [0, 1], got ${String(eta)}`);
  const s2 = sigma * sigma;
  const n2 = sigmaNext * sigmaNext;
  const abNext = 1 / (1 + n2); // ᾱ_{t'}
  // 1 − ᾱ_t, 1 − ᾱ_{t'} and 1 − ᾱ_t/ᾱ_{t'}, written without cancellation (exact for small σ)
  const oneMinusAb = s2 / (1 + s2);
  const oneMinusAbNext = n2 / (1 + n2);
  const oneMinusRatio = (s2 - n2) / (1 + s2);
  // eq. 16: σ_t(η) = η·√((1 − ᾱ_{t'})/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t'})
  const sigmaT = eta * Math.sqrt(oneMinusAbNext / oneMinusAb) * Math.sqrt(oneMinusRatio);
  // eq. 12 divided by √ᾱ_{t'}
  const sq = Math.sqrt(abNext);
  return { direction: Math.sqrt(Math.max(0, oneMinusAbNext - sigmaT * sigmaT)) / sq, noise: sigmaT / sq };
}

export interface DdimOptions extends StepOptions, NoiseOptions {
  /** η ∈ [0, 1]: 0 deterministic DDIM (= Euler), 1 DDPM-like ancestral. Default 0. */
  eta?: number;
  /** diffusers' `clip_sample`: clamp the x0 estimate to [−c, c] while ε stays the unclipped model's
   * (x̂ − D)/σ. Off when omitted. */
  clipDenoised?: number;
}

/**
 * DDIM step (Song et al. 2021, eq. 12), in σ-space via `ddimCoefficients`:
 * x̂' = x0 + direction·(x̂ − D)/σ + noise·z, x0 = D (or clip(D) with `clipDenoised`). NFE 1; noise is drawn
 * only when η > 0 and σ' > 0.
 */
export function stepDdim(x: Tensor, sigma: number, sigmaNext: number, denoise: DenoiseFn, options: DdimOptions = {}): Tensor {
  checkSigmas("stepDdim", sigma, sigmaNext);
  const eta = options.eta ?? 0;
  const clip = options.clipDenoised;
  if (clip !== undefined && !(typeof clip === "number" && clip > 0)) {
    throw argumentError("stepDdim", `clipDenoised must be a number > 0, got ${String(clip)}`);
  }
  const c = ddimCoefficients(sigma, sigmaNext, eta);
  return scope(() => {
    const d = denoise(x, sigma);
    let out: Tensor;
    if (clip === undefined) {
      options.onDenoised?.(d, sigma);
      out = eulerStep(x, d, sigma, c.direction); // D + direction·(x̂ − D)/σ
    } else {
      const x0 = ops.clamp(d, -clip, clip);
      options.onDenoised?.(x0, sigma);
      out = ops.add(x0, ops.mul(ops.sub(x, d), c.direction / sigma));
    }
    if (c.noise > 0) out = ops.add(out, ops.mul(randnLike(x, options.generator), c.noise));
    return out;
  });
}

// ---------------------------------------------------------------------------------------------------
// Heun (EDM)

/**
 * EDM churn factor (Karras et al. 2022, Alg. 2 line 3): γ_i = min(S_churn/N, √2 − 1) if S_min ≤ σ_i ≤ S_max,
 * else 0. N is the number of steps.
 */
export function churnGamma(sigma: number, steps: number, options: { sChurn?: number; sMin?: number; sMax?: number } = {}): number {
  const sChurn = options.sChurn ?? 0;
  const sMin = options.sMin ?? 0;
  const sMax = options.sMax ?? Infinity;
  if (sChurn === 0 || !(sigma >= sMin && sigma <= sMax)) return 0;
  return Math.min(sChurn / steps, Math.SQRT2 - 1);
}

/**
 * EDM Heun step (Karras et al. 2022, Alg. 1; with `gamma` > 0 Alg. 2):
 *   σ̂ = σ(1 + γ), x̂ ← x̂ + √(σ̂² − σ²)·S_noise·z                      (Alg. 2 lines 4–6, only when γ > 0)
 *   d = (x̂ − D(x̂; σ̂))/σ̂,  x̂' = x̂ + (σ' − σ̂)·d                       (lines 7–8: Euler)
 *   if σ' ≠ 0: d' = (x̂' − D(x̂'; σ'))/σ',  x̂' = x̂ + (σ' − σ̂)·(d + d')/2 (lines 9–11: 2nd-order correction)
 * NFE 2, or 1 on a step to σ' = 0 (so 2N − 1 for a schedule ending in 0).
 */
export function stepHeun(
  x: Tensor, sigma: number, sigmaNext: number, denoise: DenoiseFn, options: StepOptions & ChurnOptions & NoiseOptions = {},
): Tensor {
  checkSigmas("stepHeun", sigma, sigmaNext);
  return scope(() => {
    const { x: xh, sigmaHat } = churn("stepHeun", x, sigma, options);
    const h = sigmaNext - sigmaHat;
    const d = ops.div(ops.sub(xh, evaluate(denoise, xh, sigmaHat, options)), sigmaHat);
    const euler = ops.add(xh, ops.mul(d, h));
    if (sigmaNext === 0) return euler;
    const d2 = ops.div(ops.sub(euler, evaluate(denoise, euler, sigmaNext, options)), sigmaNext);
    return ops.add(xh, ops.mul(ops.add(d, d2), h / 2));
  });
}

// ---------------------------------------------------------------------------------------------------
// DPM-Solver++(2M) (Lu et al. 2022, arXiv 2211.01095)

/** What DPM-Solver++(2M) carries from one step to the next: the previous step's x0 estimate and its σ. */
export interface Dpmpp2mState {
  denoised: Tensor;
  sigma: number;
}

/**
 * DPM-Solver++(2M) step (Lu et al. 2022, Alg. 2), in σ-space: the VP data-prediction update divided by α_t
 * (x̂ = x_t/α_t, σ_t/α_t = σ), with λ = −ln σ (the VP half-logSNR log(α/σ_vp)):
 *   h = λ' − λ,  x̂' = (σ'/σ)·x̂ − (e^{−h} − 1)·D̃,
 *   D̃ = D                                   (first step, and the final step to σ' = 0: first order = Euler)
 *   D̃ = (1 + 1/(2r))·D − 1/(2r)·D_prev,  r = h_prev/h = (λ − λ_prev)/h   (otherwise)
 * `previous` is the state the last step returned (null on the first step). Returns x̂' and the new state
 * (both owned by the caller; the previous state's tensor is not disposed here). NFE 1.
 */
export function stepDpmpp2m(
  x: Tensor, sigma: number, sigmaNext: number, denoise: DenoiseFn, previous: Dpmpp2mState | null, options: StepOptions = {},
): { x: Tensor; state: Dpmpp2mState } {
  checkSigmas("stepDpmpp2m", sigma, sigmaNext);
  if (previous && !(previous.sigma > sigma)) {
    throw argumentError("stepDpmpp2m", `previous.sigma (${previous.sigma}) must be larger than sigma (${sigma})`);
  }
  return scope(() => {
    const d = evaluate(denoise, x, sigma, options);
    let out: Tensor;
    if (sigmaNext === 0) {
      out = d.clone(); // σ'/σ = 0 and −(e^{−h} − 1) = 1: x̂' = D
    } else {
      const lambda = -Math.log(sigma);
      const h = -Math.log(sigmaNext) - lambda;
      const phi = -Math.expm1(-h); // −(e^{−h} − 1) = 1 − σ'/σ
      if (!previous) {
        out = ops.add(ops.mul(x, sigmaNext / sigma), ops.mul(d, phi));
      } else {
        const r = (lambda + Math.log(previous.sigma)) / h;
        const a = 1 + 1 / (2 * r);
        const b = -1 / (2 * r);
        // x̂' = (σ'/σ)·x̂ + φ·(a·D + b·D_prev)
        out = ops.add(ops.add(ops.mul(x, sigmaNext / sigma), ops.mul(d, phi * a)), ops.mul(previous.denoised, phi * b));
      }
    }
    return { x: out, state: { denoised: d, sigma } };
  });
}

// ---------------------------------------------------------------------------------------------------
// Euler ancestral

/**
 * Ancestral split of a step σ → σ' (k-diffusion `get_ancestral_step`):
 * σ_up = min(σ', η·√(σ'²(σ² − σ'²)/σ²)), σ_down = √(σ'² − σ_up²).
 */
export function ancestralSigmas(sigma: number, sigmaNext: number, eta = 1): { up: number; down: number } {
  checkSigmas("ancestralSigmas", sigma, sigmaNext);
  if (!(Number.isFinite(eta) && eta >= 0)) throw argumentError("ancestralSigmas", `eta must be a finite number >= 0, got ${String(eta)}`);
  const up = Math.min(sigmaNext, eta * Math.sqrt((sigmaNext * sigmaNext * (sigma * sigma - sigmaNext * sigmaNext)) / (sigma * sigma)));
  return { up, down: Math.sqrt(Math.max(0, sigmaNext * sigmaNext - up * up)) };
}

/**
 * Euler ancestral step: Euler to σ_down, x̂_down = D + σ_down·(x̂ − D)/σ, then x̂' = x̂_down + σ_up·z
 * (see `ancestralSigmas`; noise is drawn only when σ_up > 0). NFE 1.
 */
export function stepEulerAncestral(
  x: Tensor, sigma: number, sigmaNext: number, denoise: DenoiseFn, options: StepOptions & NoiseOptions & { eta?: number } = {},
): Tensor {
  const { up, down } = ancestralSigmas(sigma, sigmaNext, options.eta ?? 1);
  return scope(() => {
    const d = evaluate(denoise, x, sigma, options);
    const xDown = eulerStep(x, d, sigma, down);
    return up > 0 ? ops.add(xDown, ops.mul(randnLike(x, options.generator), up)) : xDown;
  });
}

// ---------------------------------------------------------------------------------------------------
// A stateful stepper over the step functions (what `sample` drives)

export type SolverName = "euler" | "ddim" | "heun" | "dpmpp2m" | "euler-ancestral";
export const SOLVERS: readonly SolverName[] = ["euler", "ddim", "heun", "dpmpp2m", "euler-ancestral"];

export interface SolverOptions extends NoiseOptions {
  /** η for "ddim" (default 0, in [0, 1]) and "euler-ancestral" (default 1, ≥ 0). */
  eta?: number;
  /** "ddim" only: diffusers' clip_sample range (see `DdimOptions.clipDenoised`). */
  clipDenoised?: number;
  /** EDM churn for "heun" and "euler": S_churn (default 0: off), S_min (0), S_max (∞), S_noise (1). */
  sChurn?: number;
  sMin?: number;
  sMax?: number;
  sNoise?: number;
  /** Number of steps N of the run (for γ = min(S_churn/N, √2 − 1)); required when sChurn > 0. */
  steps?: number;
}

export interface Solver {
  readonly name: SolverName;
  /** x̂_{i+1} from x̂_i (a new tensor the caller owns; x is not disposed). */
  step(x: Tensor, sigma: number, sigmaNext: number, denoise: DenoiseFn): Tensor;
  /** Frees the carried state (DPM-Solver++(2M)'s previous x0). */
  dispose(): void;
}

/** Validates solver options; throws FastdiffError ERR_ARGUMENT naming `fn`. */
export function validateSolverOptions(fn: string, name: unknown, options: SolverOptions): SolverName {
  if (!SOLVERS.includes(name as SolverName)) {
    throw argumentError(fn, `unknown solver ${JSON.stringify(name)}; expected one of ${SOLVERS.map((s) => `"${s}"`).join(", ")}`);
  }
  const solver = name as SolverName;
  const num = (key: keyof SolverOptions, ok: (v: number) => boolean, what: string): void => {
    const v = options[key];
    if (v === undefined) return;
    if (typeof v !== "number" || Number.isNaN(v) || !ok(v)) throw argumentError(fn, `${key} must be ${what}, got ${String(v)}`);
  };
  if (options.eta !== undefined && solver !== "ddim" && solver !== "euler-ancestral") {
    throw argumentError(fn, `eta applies to the "ddim" and "euler-ancestral" solvers, not "${solver}"`);
  }
  num("eta", solver === "ddim" ? (v) => v >= 0 && v <= 1 : (v) => Number.isFinite(v) && v >= 0, solver === "ddim" ? "in [0, 1]" : "a finite number >= 0");
  if (options.clipDenoised !== undefined && solver !== "ddim") {
    throw argumentError(fn, `clipDenoised applies to the "ddim" solver only, not "${solver}"`);
  }
  num("clipDenoised", (v) => v > 0, "a number > 0");
  const churnKeys = (["sChurn", "sMin", "sMax", "sNoise"] as const).filter((k) => options[k] !== undefined);
  if (churnKeys.length > 0 && solver !== "heun" && solver !== "euler") {
    throw argumentError(fn, `${churnKeys.join(", ")} (EDM churn) apply to the "heun" and "euler" solvers, not "${solver}"`);
  }
  num("sChurn", (v) => Number.isFinite(v) && v >= 0, "a finite number >= 0");
  num("sMin", (v) => v >= 0, "a number >= 0");
  num("sMax", (v) => v >= (options.sMin ?? 0), "a number >= sMin");
  num("sNoise", (v) => Number.isFinite(v) && v >= 0, "a finite number >= 0");
  if ((options.sChurn ?? 0) > 0) num("steps", (v) => Number.isInteger(v) && v >= 1, "a positive integer");
  if ((options.sChurn ?? 0) > 0 && options.steps === undefined) throw argumentError(fn, "steps is required with sChurn > 0");
  return solver;
}

/** A stepper for `name` with its options (validated). */
export function createSolver(name: SolverName, options: SolverOptions = {}): Solver {
  const solver = validateSolverOptions("createSolver", name, options);
  const generator = options.generator;
  const churnOf = (sigma: number): ChurnOptions =>
    options.sChurn ? { gamma: churnGamma(sigma, options.steps!, options), sNoise: options.sNoise ?? 1 } : {};
  switch (solver) {
    case "euler":
      return { name: solver, step: (x, s, sn, D) => stepEuler(x, s, sn, D, { ...churnOf(s), generator }), dispose() {} };
    case "heun":
      return { name: solver, step: (x, s, sn, D) => stepHeun(x, s, sn, D, { ...churnOf(s), generator }), dispose() {} };
    case "ddim":
      return {
        name: solver,
        step: (x, s, sn, D) => stepDdim(x, s, sn, D, { eta: options.eta ?? 0, clipDenoised: options.clipDenoised, generator }),
        dispose() {},
      };
    case "euler-ancestral":
      return { name: solver, step: (x, s, sn, D) => stepEulerAncestral(x, s, sn, D, { eta: options.eta ?? 1, generator }), dispose() {} };
    case "dpmpp2m": {
      let state: Dpmpp2mState | null = null;
      return {
        name: solver,
        step(x, s, sn, D) {
          const r = stepDpmpp2m(x, s, sn, D, state);
          state?.denoised.dispose();
          leaveScopes(r.state.denoised); // owned by this stepper, whatever scope the caller steps in
          state = r.state;
          return r.x;
        },
        dispose() {
          state?.denoised.dispose();
          state = null;
        },
      };
    }
  }
}
