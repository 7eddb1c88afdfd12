// Noise schedules in σ-space (METHODS.md §0): DDPM β/ᾱ tables, discrete timestep spacings,
// Karras ρ-schedule, cosine logSNR and flow-matching shift. Pure host math in float64; the
// DDPM tables are rounded to float32 at every step (Math.fround) so they equal the float32
// tables diffusers builds with torch (linspace / cumprod in float32).
//
// Convention: x̂ = x0 + σ·n (the EDM variable). σ is the noise-to-signal ratio, so
// SNR = 1/σ² and, for a discrete DDPM timestep, σ_t = √((1 − ᾱ_t)/ᾱ_t) and ᾱ_t = 1/(1 + σ_t²).

const f32 = Math.fround;

/** A sampling schedule: σ values in descending order ending in the terminal σ (0 for a clean end),
 * and, where the model is conditioned on a timestep, the timestep of each σ but the last. */
export interface Schedule {
  sigmas: number[];
  timesteps?: number[];
}

export type BetaSchedule = "linear" | "scaled_linear" | "squaredcos_cap_v2";
export type TimestepSpacing = "leading" | "trailing" | "linspace";

export interface DdpmOptions {
  /** Number of training timesteps T (default 1000). */
  numTrainTimesteps?: number;
  betaStart?: number;
  betaEnd?: number;
  betaSchedule?: BetaSchedule;
}

/**
 * torch.linspace(start, end, steps, dtype=float32) reproduced bit for bit (torch CPU kernel):
 * step = (end − start)/(steps − 1) in float32; element idx of the first half is start + step·idx, of the
 * second half end − step·(steps − idx − 1), each a single-rounding multiply-add. Whole pairs of 8-wide
 * vectors compute only the first lane that way and the other lanes as base + float32(i·step).
 * (Checked against the golden float32 β tables: 0 ulp.)
 */
export function linspaceF32(start: number, end: number, steps: number): Float64Array {
  const out = new Float64Array(steps);
  if (steps === 1) {
    out[0] = f32(start);
    return out;
  }
  const s = f32(start);
  const e = f32(end);
  const step = f32(f32(e - s) / (steps - 1));
  const halfway = Math.floor(steps / 2);
  // fused (float32-of-exact) value at idx: the product of a float32 and an index < 2^29 is exact in float64
  const at = (idx: number): number => (idx < halfway ? f32(s + step * idx) : f32(e - step * (steps - idx - 1)));
  const V = 8;
  const vectorEnd = Math.floor(steps / (2 * V)) * 2 * V;
  for (let idx = 0; idx < vectorEnd; idx += V) {
    const base = at(idx);
    for (let i = 0; i < V; ++i) out[idx + i] = f32(base + f32(i * step));
  }
  for (let idx = vectorEnd; idx < steps; ++idx) out[idx] = at(idx);
  return out;
}

/**
 * DDPM β table over T training steps (values exactly representable in float32).
 * - "linear": β_i = linspace(β_start, β_end, T)            (Ho et al. 2020; defaults 1e-4 .. 0.02)
 * - "scaled_linear": β_i = linspace(√β_start, √β_end, T)²  (Stable Diffusion)
 * - "squaredcos_cap_v2": β_i = min(1 − ᾱ(t_{i+1})/ᾱ(t_i), 0.999) with t_i = i/T and
 *   ᾱ(t) = cos²((t + 0.008)/1.008 · π/2)                   (Nichol & Dhariwal 2021, cosine schedule)
 */
export function betaTable(options: DdpmOptions = {}): Float64Array {
  const T = options.numTrainTimesteps ?? 1000;
  const start = options.betaStart ?? 1e-4;
  const end = options.betaEnd ?? 0.02;
  const kind = options.betaSchedule ?? "linear";
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`betaTable: numTrainTimesteps must be a positive integer, got ${T}`);
  switch (kind) {
    case "linear":
      return linspaceF32(start, end, T);
    case "scaled_linear": {
      const r = linspaceF32(Math.sqrt(start), Math.sqrt(end), T);
      return r.map((x) => f32(x * x));
    }
    case "squaredcos_cap_v2": {
      const alphaBar = (t: number): number => Math.cos(((t + 0.008) / 1.008) * Math.PI / 2) ** 2;
      const out = new Float64Array(T);
      for (let i = 0; i < T; ++i) out[i] = f32(Math.min(1 - alphaBar((i + 1) / T) / alphaBar(i / T), 0.999));
      return out;
    }
    default:
      throw new RangeError(`betaTable: unknown beta schedule ${String(kind)}`);
  }
}

/** ᾱ_t = Π_{s ≤ t} (1 − β_s), as torch.cumprod on a float32 CPU tensor: α_s = 1 − β_s in float32, the
 * running product accumulated in double (torch's CPU acc_type) and each output rounded to float32. */
export function alphasCumprod(betas: ArrayLike<number>): Float64Array {
  const out = new Float64Array(betas.length);
  let p = 1;
  for (let i = 0; i < betas.length; ++i) {
    p *= f32(1 - betas[i]!);
    out[i] = f32(p);
  }
  return out;
}

/** Both DDPM tables: { betas, alphasCumprod }. */
export function ddpmTables(options: DdpmOptions = {}): { betas: Float64Array; alphasCumprod: Float64Array } {
  const betas = betaTable(options);
  return { betas, alphasCumprod: alphasCumprod(betas) };
}

/** σ of a discrete timestep (METHODS.md §0 "DDPM / DDIM"): σ = √((1 − ᾱ)/ᾱ). float64. */
export function sigmaFromAlphaCumprod(alphaCumprod: number): number {
  return Math.sqrt((1 - alphaCumprod) / alphaCumprod);
}

/** Inverse: ᾱ = 1/(1 + σ²). */
export function alphaCumprodFromSigma(sigma: number): number {
  return 1 / (1 + sigma * sigma);
}

/** The σ table of all T training timesteps, computed in float32 as diffusers does
 * (((1 − ᾱ)/ᾱ) ** 0.5 on a float32 tensor). */
export function discreteSigmaTable(alphasCumprodTable: ArrayLike<number>): Float64Array {
  const out = new Float64Array(alphasCumprodTable.length);
  for (let i = 0; i < out.length; ++i) {
    const a = f32(alphasCumprodTable[i]!);
    out[i] = f32(Math.sqrt(f32(f32(1 - a) / a)));
  }
  return out;
}

export interface SpacingOptions {
  numTrainTimesteps?: number;
  spacing?: TimestepSpacing;
  /** Added to "leading" timesteps (diffusers `steps_offset`, default 0). */
  stepsOffset?: number;
  /** true (DDIM): integer timesteps. false (Euler discrete): "linspace" keeps the fractional float32
   * values of linspace(0, T − 1, N). Default true. */
  integer?: boolean;
}

/**
 * Inference timesteps of `set_timesteps(N)`, descending, as diffusers names the spacings:
 * - "leading":  t_i = round(i·⌊T/N⌋) + steps_offset, i = N−1 .. 0
 * - "trailing": t_i = round(T − i·T/N) − 1, i = 0 .. N−1
 * - "linspace": t_i = linspace(0, T − 1, N) reversed (rounded when `integer`)
 */
export function discreteTimesteps(numSteps: number, options: SpacingOptions = {}): number[] {
  const T = options.numTrainTimesteps ?? 1000;
  const spacing = options.spacing ?? "leading";
  const integer = options.integer ?? true;
  if (!Number.isInteger(numSteps) || numSteps < 1 || numSteps > T) {
    throw new RangeError(`discreteTimesteps: numSteps must be an integer in [1, ${T}], got ${numSteps}`);
  }
  const out: number[] = [];
  switch (spacing) {
    case "leading": {
      const ratio = Math.floor(T / numSteps);
      for (let i = numSteps - 1; i >= 0; --i) out.push(i * ratio + (options.stepsOffset ?? 0));
      break;
    }
    case "trailing": {
      const ratio = T / numSteps;
      for (let i = 0; i < numSteps; ++i) out.push(roundHalfEven(T - i * ratio) - 1);
      break;
    }
    case "linspace": {
      for (let i = numSteps - 1; i >= 0; --i) {
        const v = numSteps === 1 ? 0 : (i * (T - 1)) / (numSteps - 1);
        out.push(integer ? roundHalfEven(v) : f32(v));
      }
      break;
    }
    default:
      throw new RangeError(`discreteTimesteps: unknown spacing ${String(spacing)}`);
  }
  return out;
}

/** numpy's round (half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface DiscreteScheduleOptions extends DdpmOptions, Omit<SpacingOptions, "numTrainTimesteps" | "integer"> {}

/**
 * DDIM `set_timesteps(N)` in σ-space: σ_i = √((1 − ᾱ_{t_i})/ᾱ_{t_i}) for the N timesteps, then the σ of the
 * previous timestep of the last one (t − ⌊T/N⌋; below 0 it is ᾱ = 1 with `set_alpha_to_one`, σ = 0, else ᾱ_0).
 * DDIM η = 0 from t to t' is the Euler step x̂' = D + σ'·(x̂ − D)/σ on x̂ = x_t/√ᾱ_t (METHODS.md §0).
 */
export function ddimSchedule(numSteps: number, options: DiscreteScheduleOptions & { setAlphaToOne?: boolean } = {}): Schedule & { timesteps: number[]; prevSigmas: number[] } {
  const T = options.numTrainTimesteps ?? 1000;
  const { alphasCumprod: ac } = ddpmTables(options);
  const timesteps = discreteTimesteps(numSteps, { ...options, integer: true });
  const finalAc = options.setAlphaToOne ?? true ? 1 : ac[0]!;
  const acAt = (t: number): number => (t >= 0 ? ac[t]! : finalAc);
  const ratio = Math.floor(T / numSteps);
  const sigmas = timesteps.map((t) => sigmaFromAlphaCumprod(acAt(t)));
  // σ of each step's target, t' = t − ⌊T/N⌋ (diffusers' prev_timestep; equals the next listed t for "leading").
  const prevSigmas = timesteps.map((t) => sigmaFromAlphaCumprod(acAt(t - ratio)));
  sigmas.push(prevSigmas[prevSigmas.length - 1]!);
  return { sigmas, timesteps, prevSigmas };
}

/**
 * EulerDiscreteScheduler `set_timesteps(N)` (timestep_type "discrete", interpolation "linear"; default spacing
 * "linspace" as in diffusers' Euler config):
 * timesteps with fractional "linspace" values, σ(t) linearly interpolated in the float32 σ table of the
 * T training steps, then a final σ = 0 ("zero") or the table's σ_0 ("sigma_min"); rounded to float32.
 */
export function eulerDiscreteSchedule(
  numSteps: number,
  options: DiscreteScheduleOptions & { finalSigmasType?: "zero" | "sigma_min" } = {},
): Schedule & { timesteps: number[] } {
  const { alphasCumprod: ac } = ddpmTables(options);
  const table = discreteSigmaTable(ac);
  const timesteps = discreteTimesteps(numSteps, { spacing: "linspace", ...options, integer: false }).map(f32);
  const sigmas = timesteps.map((t) => f32(interp(t, table)));
  sigmas.push((options.finalSigmasType ?? "zero") === "zero" ? 0 : table[0]!);
  return { sigmas, timesteps };
}

function interp(t: number, table: ArrayLike<number>): number {
  if (t <= 0) return table[0]!;
  if (t >= table.length - 1) return table[table.length - 1]!;
  const i = Math.floor(t);
  const w = t - i;
  return table[i]! + w * (table[i + 1]! - table[i]!);
}

/**
 * Karras et al. (EDM, 2022) eq. 5 / METHODS.md §0 "σ schedule", float64:
 * σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, i = 0..N−1, and σ_N = 0.
 * Defaults σ_min = 0.002, σ_max = 80, ρ = 7.
 */
export function karrasSigmas(numSteps: number, options: { sigmaMin?: number; sigmaMax?: number; rho?: number } = {}): number[] {
  const sMin = options.sigmaMin ?? 0.002;
  const sMax = options.sigmaMax ?? 80;
  const rho = options.rho ?? 7;
  if (!Number.isInteger(numSteps) || numSteps < 1) throw new RangeError(`karrasSigmas: numSteps must be a positive integer, got ${numSteps}`);
  if (!(sMin > 0 && sMax >= sMin)) throw new RangeError(`karrasSigmas: need 0 < sigmaMin <= sigmaMax`);
  const a = sMax ** (1 / rho);
  const b = sMin ** (1 / rho);
  const out: number[] = [];
  for (let i = 0; i < numSteps; ++i) out.push((a + (numSteps === 1 ? 0 : i / (numSteps - 1)) * (b - a)) ** rho);
  out.push(0);
  return out;
}

/**
 * Cosine logSNR (Salimans & Ho 2022; METHODS.md §0): λ(u) = −2·ln tan(a·u + b) with
 * b = arctan(e^{−λ_max/2}), a = arctan(e^{−λ_min/2}) − b, u ∈ [0, 1]; λ ∈ [λ_min, λ_max] = [−20, 20].
 */
export function cosineLogSnr(u: number, options: { logSnrMin?: number; logSnrMax?: number } = {}): number {
  const lmin = options.logSnrMin ?? -20;
  const lmax = options.logSnrMax ?? 20;
  const b = Math.atan(Math.exp(-lmax / 2));
  const a = Math.atan(Math.exp(-lmin / 2)) - b;
  return -2 * Math.log(Math.tan(a * u + b));
}

/** σ = e^{−λ/2} (so α² = sigmoid(λ) = 1/(1+σ²)). */
export function sigmaFromLogSnr(logSnr: number): number {
  return Math.exp(-logSnr / 2);
}

/** λ = log SNR = −2 ln σ. */
export function logSnrFromSigma(sigma: number): number {
  return -2 * Math.log(sigma);
}

/**
 * N-step cosine-logSNR schedule: u_i = 1 − i/N for i = 0..N−1 with σ_i = e^{−λ(u_i)/2}, then σ_N = 0
 * (u = 0 has σ = e^{−λ_max/2} ≈ 4.5e−5 and is treated as clean). `timesteps` are the u_i.
 */
export function cosineLogSnrSchedule(numSteps: number, options: { logSnrMin?: number; logSnrMax?: number } = {}): Schedule & { timesteps: number[] } {
  const sigmas: number[] = [];
  const timesteps: number[] = [];
  for (let i = 0; i < numSteps; ++i) {
    const u = 1 - i / numSteps;
    timesteps.push(u);
    sigmas.push(sigmaFromLogSnr(cosineLogSnr(u, options)));
  }
  sigmas.push(0);
  return { sigmas, timesteps };
}

/**
 * Flow-matching time shift (SD3; METHODS.md §0 "Rectified flow"): t' = k·t/(1 + (k − 1)·t).
 * diffusers calls the flow time t its "sigma" (σ_flow = t, x_t = (1 − t)·x0 + t·n); the EDM σ of it is
 * t/(1 − t) (`sigmaFromFlowT`). k = 1 is the identity.
 */
export function flowShift(t: number, shift: number): number {
  return (shift * t) / (1 + (shift - 1) * t);
}

/** EDM σ of a flow time t: σ = t/(1 − t). */
export function sigmaFromFlowT(t: number): number {
  return t / (1 - t);
}

/** Flow time of an EDM σ: t = σ/(1 + σ). */
export function flowTFromSigma(sigma: number): number {
  return sigma / (1 + sigma);
}

/**
 * Flow-matching Euler schedule (FlowMatchEulerDiscreteScheduler-like): t_i = linspace(1, 1/T, N) shifted by k,
 * then t_N = 0. Returns the flow times `t` (descending, ending in 0), `timesteps` = T·t_i, and the EDM
 * `sigmas` = t/(1 − t) (the first is +Infinity when t_0 = 1: start from pure noise, x = n).
 */
export function flowMatchSchedule(
  numSteps: number,
  options: { shift?: number; numTrainTimesteps?: number } = {},
): Schedule & { timesteps: number[]; t: number[] } {
  const T = options.numTrainTimesteps ?? 1000;
  const shift = options.shift ?? 1;
  const t: number[] = [];
  for (let i = 0; i < numSteps; ++i) {
    const u = numSteps === 1 ? 1 : 1 + (i / (numSteps - 1)) * (1 / T - 1);
    t.push(flowShift(u, shift));
  }
  const timesteps = t.map((x) => x * T);
  t.push(0);
  return { t, timesteps, sigmas: t.map(sigmaFromFlowT) };
}
