// Feature-reuse plans for `sample` (FRDiff and DeepCache, METHODS.md §6; DESIGN.md §5): from the user's options
// (uniform interval M, an explicit keyframe list, per-point reuse flags, score mixing, DeepCache branch) to the
// native cache's plan over the run's network evaluations.
import { argumentError } from "../errors";
import { PAPER_SCORE_MIXING, type ReusePlan, type ScoreMixing } from "../models/feature-cache";
import type { Network } from "../models/network";
import type { SolverName } from "./solvers";

export interface FeatureReuseOptions {
  /** A keyframe every `interval` evaluations (FRDiff's M): 0, M, 2M, … (1 = full compute everywhere). Default 2
   * when `keyframes` is not given. */
  interval?: number;
  /** Or the keyframe evaluations explicitly (indices in [0, E), 0 included; E = the run's network evaluations). */
  keyframes?: readonly number[];
  /** Evaluations that run no network and reuse the previous evaluation's ε (a DDIM jump across them; what
   * Auto-FR learns). Not keyframes; default none. */
  skips?: readonly number[];
  /** Score mixing: true for the paper's ramp (slope 30, bias 0.5: jumps early, reuse late), or your own — a
   * negative slope reverses it (reuse early, jumps late: lower FD on both shipped teachers, bench/RESULTS.md); default off. */
  scoreMixing?: boolean | Partial<ScoreMixing>;
  /** "frdiff" (default): reuse ResNet conv1 outputs and attention branches (or `points`) at non-keyframes;
   * "deepcache": reuse the deep branch and recompute only the shallow path. */
  mode?: "frdiff" | "deepcache";
  /** FRDiff's per-block reuse flags: the points to reuse, as names or globs over `network.blocks()`
   * (default: `network.reusePoints()`). */
  points?: readonly string[];
  /** DeepCache: shallow levels kept fresh, minus one (default 0: only the shallowest; see Network.deepPoints). */
  branch?: number;
}

const KNOWN = new Set(["interval", "keyframes", "skips", "scoreMixing", "mode", "points", "branch"]);

/** Network evaluations a solver makes over a σ grid: N, or for Heun 2N − 1 when the grid ends in 0 (2N otherwise). */
export function solverEvaluations(solver: SolverName, sigmas: readonly number[]): number {
  const steps = sigmas.length - 1;
  if (solver !== "heun") return steps;
  return sigmas[steps] === 0 ? 2 * steps - 1 : 2 * steps;
}

/** The score-mixing ramp of an option value (undefined / false: off). */
export function scoreMixingOf(fn: string, value: FeatureReuseOptions["scoreMixing"]): ScoreMixing | false {
  if (value === undefined || value === false) return false;
  if (value === true) return { ...PAPER_SCORE_MIXING };
  if (value === null || typeof value !== "object") throw argumentError(fn, "featureReuse.scoreMixing must be a boolean or { slope, bias }");
  const mixing = { slope: value.slope ?? PAPER_SCORE_MIXING.slope, bias: value.bias ?? PAPER_SCORE_MIXING.bias };
  if (!(Number.isFinite(mixing.slope) && mixing.slope !== 0)) throw argumentError(fn, `featureReuse.scoreMixing.slope must be a finite nonzero number, got ${mixing.slope}`);
  if (!Number.isFinite(mixing.bias)) throw argumentError(fn, `featureReuse.scoreMixing.bias must be finite, got ${mixing.bias}`);
  return mixing;
}

/** Checks that every pattern names at least one point of the network. */
export function checkPoints(fn: string, network: Network, points: readonly string[]): string[] {
  if (!Array.isArray(points) || points.some((p) => typeof p !== "string")) throw argumentError(fn, "points must be an array of strings");
  const all = network.blocks();
  for (const p of points) {
    const re = new RegExp(`^${p.split("*").map((s: string) => s.replace(/[.+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`);
    if (!all.some((name) => re.test(name))) throw argumentError(fn, `point '${p}' matches nothing in this ${network.kind} (see blocks())`);
  }
  return [...points];
}

/** Keyframe flags from an interval or an explicit list. */
export function keyframeFlags(fn: string, options: Pick<FeatureReuseOptions, "interval" | "keyframes">, evaluations: number): boolean[] {
  if (options.interval !== undefined && options.keyframes !== undefined) throw argumentError(fn, "give featureReuse.interval or keyframes, not both");
  const flags = new Array<boolean>(evaluations).fill(false);
  if (options.keyframes !== undefined) {
    const list = options.keyframes;
    if (!Array.isArray(list)) throw argumentError(fn, "featureReuse.keyframes must be an array of evaluation indices");
    for (const k of list) {
      if (!(Number.isInteger(k) && k >= 0 && k < evaluations)) {
        throw argumentError(fn, `featureReuse.keyframes: ${String(k)} is not an evaluation index in [0, ${evaluations})`);
      }
      flags[k] = true;
    }
    if (!flags[0]) throw argumentError(fn, "featureReuse.keyframes must include evaluation 0 (nothing is cached before it)");
    return flags;
  }
  const interval = options.interval ?? 2;
  if (!(Number.isInteger(interval) && interval >= 1)) throw argumentError(fn, `featureReuse.interval must be an integer >= 1, got ${String(interval)}`);
  for (let i = 0; i < evaluations; i += interval) flags[i] = true;
  return flags;
}

/** The native plan for `network` over a run of `evaluations` network evaluations. */
export function reusePlan(fn: string, network: Network, options: FeatureReuseOptions, evaluations: number): ReusePlan {
  if (options === null || typeof options !== "object") throw argumentError(fn, "featureReuse must be an object or a cache profile");
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw argumentError(fn, `featureReuse: unknown option "${key}" (known: ${[...KNOWN].join(", ")})`);
  }
  const mode = options.mode ?? "frdiff";
  let points: string[];
  if (mode === "deepcache") {
    if (options.points !== undefined) throw argumentError(fn, "featureReuse.points applies to mode \"frdiff\"; DeepCache reuses its branch");
    const branch = options.branch ?? 0;
    if (!(Number.isInteger(branch) && branch >= 0)) throw argumentError(fn, `featureReuse.branch must be an integer >= 0, got ${String(branch)}`);
    points = network.deepPoints(branch);
  } else if (mode === "frdiff") {
    if (options.branch !== undefined) throw argumentError(fn, "featureReuse.branch applies to mode \"deepcache\"");
    points = options.points !== undefined ? checkPoints(fn, network, options.points) : network.reusePoints();
    if (points.length === 0) throw argumentError(fn, `this ${network.kind} has no feature-reuse points (FRDiff needs a UNet or a DiT)`);
  } else {
    throw argumentError(fn, `featureReuse.mode must be "frdiff" or "deepcache", got ${JSON.stringify(mode)}`);
  }
  const keyframes = keyframeFlags(fn, options, evaluations);
  const plan: ReusePlan = { points, keyframes, scoreMixing: scoreMixingOf(fn, options.scoreMixing) };
  if (options.skips !== undefined) {
    if (!Array.isArray(options.skips)) throw argumentError(fn, "featureReuse.skips must be an array of evaluation indices");
    const skips = new Array<boolean>(evaluations).fill(false);
    for (const k of options.skips) {
      if (!(Number.isInteger(k) && k > 0 && k < evaluations)) throw argumentError(fn, `featureReuse.skips: ${String(k)} is not an evaluation index in [1, ${evaluations})`);
      if (keyframes[k]) throw argumentError(fn, `featureReuse.skips: evaluation ${k} is also a keyframe`);
      skips[k] = true;
    }
    plan.skips = skips;
  }
  return plan;
}
