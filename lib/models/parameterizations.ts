// How a network's native parameterization maps into the EDM σ-space contract (METHODS.md §0):
// D(x̂; σ) = c_skip(σ)·x̂ + c_out(σ)·F(c_in(σ)·x̂, c_noise(σ)), per sample. Each family gives the four
// coefficients for one σ; NetworkDenoiser applies them to a batch. Families are described by diffusers
// scheduler configs, so a model folder's scheduler_config.json says how to read its network.
import { argumentError } from "../errors";
import { edmPrecond, vePrecond, vpPrecond, type Precond } from "../sampling/parameterization";
import {
  ddimSchedule, ddpmTables, discreteSigmaTable, eulerDiscreteSchedule, flowMatchSchedule, flowTFromSigma, karrasSigmas,
  type BetaSchedule, type Schedule, type TimestepSpacing,
} from "../sampling/schedules";

/** EDM (Karras et al. 2022, Table 1): F is trained as the EDM raw network. */
export interface EdmParameterization {
  type: "edm";
  sigmaData: number;
  sigmaMin: number;
  sigmaMax: number;
  rho: number;
}
/** A DDPM ᾱ table with discrete timesteps (DDPM/DDIM/Euler discrete schedulers): F predicts ε, v or x0. */
export interface DdpmParameterization {
  type: "ddpm";
  prediction: "epsilon" | "v" | "x0";
  numTrainTimesteps: number;
  betaSchedule: BetaSchedule;
  betaStart: number;
  betaEnd: number;
  /** Default sampling spacing (diffusers' timestep_spacing) and whether the last step ends at ᾱ = 1. */
  timestepSpacing: TimestepSpacing;
  setAlphaToOne: boolean;
  stepsOffset: number;
}
/** Rectified flow x_t = (1−t)·x0 + t·n: F predicts the velocity u = n − x0 at timestep T·t. */
export interface FlowParameterization {
  type: "flow";
  numTrainTimesteps: number;
  /** Sampling time shift k (t' = k·t/(1+(k−1)·t)); it changes the schedule, not the mapping. */
  shift: number;
}
/** Continuous VP and VE preconditioning (EDM Table 1), for score-SDE networks. */
export interface VpParameterization {
  type: "vp";
  betaD: number;
  betaMin: number;
}
export interface VeParameterization {
  type: "ve";
  sigmaMin: number;
  sigmaMax: number;
}
export type Parameterization =
  | EdmParameterization | DdpmParameterization | FlowParameterization | VpParameterization | VeParameterization;

export type ParameterizationInput =
  | ({ type: "edm" } & Partial<EdmParameterization>)
  | ({ type: "ddpm" } & Partial<DdpmParameterization>)
  | ({ type: "flow" } & Partial<FlowParameterization>)
  | ({ type: "vp" } & Partial<VpParameterization>)
  | ({ type: "ve" } & Partial<VeParameterization>);

/** Fills defaults (EDM's σ_d = 0.5, σ ∈ [0.002, 80], ρ = 7; DDPM: linear β 1e-4…0.02 over 1000 steps, ε). */
export function parameterization(p: ParameterizationInput): Parameterization {
  switch (p.type) {
    case "edm":
      return { type: "edm", sigmaData: p.sigmaData ?? 0.5, sigmaMin: p.sigmaMin ?? 0.002, sigmaMax: p.sigmaMax ?? 80, rho: p.rho ?? 7 };
    case "ddpm":
      return {
        type: "ddpm", prediction: p.prediction ?? "epsilon", numTrainTimesteps: p.numTrainTimesteps ?? 1000,
        betaSchedule: p.betaSchedule ?? "linear", betaStart: p.betaStart ?? 0.0001, betaEnd: p.betaEnd ?? 0.02,
        timestepSpacing: p.timestepSpacing ?? "leading", setAlphaToOne: p.setAlphaToOne ?? true, stepsOffset: p.stepsOffset ?? 0,
      };
    case "flow":
      return { type: "flow", numTrainTimesteps: p.numTrainTimesteps ?? 1000, shift: p.shift ?? 1 };
    case "vp":
      return { type: "vp", betaD: p.betaD ?? 19.9, betaMin: p.betaMin ?? 0.1 };
    case "ve":
      return { type: "ve", sigmaMin: p.sigmaMin ?? 0.02, sigmaMax: p.sigmaMax ?? 100 };
    default:
      throw argumentError("parameterization", `unknown type ${JSON.stringify((p as { type: unknown }).type)}`);
  }
}

/** The coefficients of one family for a batch of σ values (float64 on the host). */
export class Coefficients {
  private readonly p: Parameterization;
  private readonly ddpmSigmas: Float64Array | null;

  constructor(p: Parameterization) {
    this.p = p;
    this.ddpmSigmas = p.type === "ddpm" ? discreteSigmaTable(ddpmTables(p).alphasCumprod) : null;
  }

  /** DDPM: σ_t = √((1 − ᾱ_t)/ᾱ_t) for every training timestep t (ascending); null for continuous families. */
  get discreteSigmas(): Float64Array | null {
    return this.ddpmSigmas;
  }

  /** c_skip, c_out, c_in and c_noise (the network's timestep input) at σ > 0. */
  at(sigma: number): Precond {
    const p = this.p;
    switch (p.type) {
      case "edm":
        return edmPrecond(sigma, p.sigmaData);
      case "vp":
        return vpPrecond(sigma, { betaD: p.betaD, betaMin: p.betaMin });
      case "ve":
        return vePrecond(sigma);
      case "flow": {
        // x_t = x̂/(1+σ), t = σ/(1+σ), x0 = x_t − t·u  ⇒  D = x̂/(1+σ) − σ/(1+σ)·u.
        const t = flowTFromSigma(sigma);
        return { cSkip: 1 / (1 + sigma), cOut: -sigma / (1 + sigma), cIn: 1 / (1 + sigma), cNoise: p.numTrainTimesteps * t };
      }
      case "ddpm": {
        // x_t = α·x̂ with α = 1/√(1+σ²); then x0 from ε: x̂ − σ·ε; from v: α²·x̂ − σ_vp·v (σ_vp = σα).
        const alpha = 1 / Math.sqrt(1 + sigma * sigma);
        const t = this.timestep(sigma);
        if (p.prediction === "epsilon") return { cSkip: 1, cOut: -sigma, cIn: alpha, cNoise: t };
        if (p.prediction === "v") return { cSkip: alpha * alpha, cOut: -sigma * alpha, cIn: alpha, cNoise: t };
        return { cSkip: 0, cOut: 1, cIn: alpha, cNoise: t };
      }
    }
  }

  /** DDPM: the (fractional) timestep of σ, inverting diffusers' linear interpolation of the float32 σ table
   * (so the schedules' own σ values map back to their timesteps; integers snap exactly). */
  private timestep(sigma: number): number {
    const table = this.ddpmSigmas!;
    const last = table.length - 1;
    if (sigma <= table[0]!) return 0;
    if (sigma >= table[last]!) return last;
    let lo = 0;
    let hi = last;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (table[mid]! <= sigma) lo = mid;
      else hi = mid;
    }
    const t = lo + (sigma - table[lo]!) / (table[hi]! - table[lo]!);
    const nearest = Math.round(t);
    return Math.abs(t - nearest) < 1e-4 ? nearest : t;
  }

  /** The family's default sampling grid for `steps` steps. */
  schedule(steps: number): Schedule {
    const p = this.p;
    switch (p.type) {
      case "edm":
        return { sigmas: karrasSigmas(steps, { sigmaMin: p.sigmaMin, sigmaMax: p.sigmaMax, rho: p.rho }) };
      case "ve":
        return { sigmas: karrasSigmas(steps, { sigmaMin: p.sigmaMin, sigmaMax: p.sigmaMax, rho: 7 }) };
      case "vp":
        return { sigmas: karrasSigmas(steps, { sigmaMin: 0.002, sigmaMax: 80, rho: 7 }) };
      case "ddpm":
        return ddimSchedule(steps, {
          numTrainTimesteps: p.numTrainTimesteps, betaSchedule: p.betaSchedule, betaStart: p.betaStart, betaEnd: p.betaEnd,
          spacing: p.timestepSpacing, stepsOffset: p.stepsOffset, setAlphaToOne: p.setAlphaToOne,
        });
      case "flow": {
        // t_0 = 1 is pure noise (σ = ∞); start one training step below it, where σ is finite.
        const s = flowMatchSchedule(steps, { shift: p.shift, numTrainTimesteps: p.numTrainTimesteps });
        const tMax = 1 - 1 / p.numTrainTimesteps;
        const sigmas = s.t.map((t) => Math.min(t, tMax)).map((t) => t / (1 - t));
        return { sigmas, timesteps: s.timesteps };
      }
    }
  }

  /** DDPM family: "ddim" (the default grid) or "euler" (EulerDiscreteScheduler, "linspace" spacing). */
  namedSchedule(name: string, steps: number): Schedule | undefined {
    const p = this.p;
    if (p.type !== "ddpm") return undefined;
    const table = { numTrainTimesteps: p.numTrainTimesteps, betaSchedule: p.betaSchedule, betaStart: p.betaStart, betaEnd: p.betaEnd };
    if (name === "ddim") return this.schedule(steps);
    if (name === "euler") return eulerDiscreteSchedule(steps, table);
    return undefined;
  }

  /** x̂ at σ_0 from unit noise: x̂ = x_t/s(σ_0) with x_t = n for VP (√(1+σ²)) and flow (1+σ); σ·n otherwise. */
  initialNoiseScale(sigma0: number): number {
    const p = this.p;
    if (p.type === "ddpm" || p.type === "vp") return Math.sqrt(1 + sigma0 * sigma0);
    if (p.type === "flow") return 1 + sigma0;
    return sigma0;
  }
}

// ---------------------------------------------------------------- diffusers scheduler configs

const num = (v: unknown, fallback: number): number => (typeof v === "number" ? v : fallback);

/** The parameterization a diffusers scheduler config describes (EDM*, FlowMatch*, else the DDPM family). */
export function fromSchedulerConfig(config: Record<string, unknown>): Parameterization {
  const cls = String(config["_class_name"] ?? "");
  if (cls === "FastdiffPrecond") return parameterization(config as unknown as ParameterizationInput);
  if (cls.startsWith("EDM")) {
    return parameterization({
      type: "edm", sigmaData: num(config["sigma_data"], 0.5), sigmaMin: num(config["sigma_min"], 0.002),
      sigmaMax: num(config["sigma_max"], 80), rho: num(config["rho"], 7),
    });
  }
  if (cls.startsWith("FlowMatch")) {
    return parameterization({ type: "flow", numTrainTimesteps: num(config["num_train_timesteps"], 1000), shift: num(config["shift"], 1) });
  }
  const pred = config["prediction_type"] ?? "epsilon";
  const prediction = pred === "epsilon" ? "epsilon" : pred === "v_prediction" ? "v" : pred === "sample" ? "x0" : null;
  if (!prediction) throw argumentError("scheduler config", `unsupported prediction_type ${JSON.stringify(pred)}`);
  const schedule = config["beta_schedule"] ?? "linear";
  if (schedule !== "linear" && schedule !== "scaled_linear" && schedule !== "squaredcos_cap_v2") {
    throw argumentError("scheduler config", `unsupported beta_schedule ${JSON.stringify(schedule)}`);
  }
  if (config["trained_betas"] != null) throw argumentError("scheduler config", "trained_betas tables are not supported");
  const spacing = config["timestep_spacing"] ?? (cls.startsWith("Euler") ? "linspace" : "leading");
  if (spacing !== "leading" && spacing !== "trailing" && spacing !== "linspace") {
    throw argumentError("scheduler config", `unsupported timestep_spacing ${JSON.stringify(spacing)}`);
  }
  return parameterization({
    type: "ddpm", prediction, numTrainTimesteps: num(config["num_train_timesteps"], 1000), betaSchedule: schedule,
    betaStart: num(config["beta_start"], 0.0001), betaEnd: num(config["beta_end"], 0.02), timestepSpacing: spacing,
    setAlphaToOne: config["set_alpha_to_one"] === undefined ? true : Boolean(config["set_alpha_to_one"]),
    stepsOffset: num(config["steps_offset"], 0),
  });
}

/** A diffusers scheduler config describing `p` (what `save` writes as scheduler_config.json). */
export function toSchedulerConfig(p: Parameterization): Record<string, unknown> {
  switch (p.type) {
    case "edm":
      return { _class_name: "EDMEulerScheduler", sigma_data: p.sigmaData, sigma_min: p.sigmaMin, sigma_max: p.sigmaMax, rho: p.rho, prediction_type: "epsilon" };
    case "flow":
      return { _class_name: "FlowMatchEulerDiscreteScheduler", num_train_timesteps: p.numTrainTimesteps, shift: p.shift };
    case "ddpm":
      return {
        _class_name: "DDIMScheduler", num_train_timesteps: p.numTrainTimesteps, beta_schedule: p.betaSchedule,
        beta_start: p.betaStart, beta_end: p.betaEnd, prediction_type: { epsilon: "epsilon", v: "v_prediction", x0: "sample" }[p.prediction],
        timestep_spacing: p.timestepSpacing, set_alpha_to_one: p.setAlphaToOne, steps_offset: p.stepsOffset, clip_sample: false,
      };
    case "vp":
    case "ve":
      // No diffusers scheduler reads these: keep them in fastdiff's own key.
      return { _class_name: "FastdiffPrecond", ...p };
  }
}
