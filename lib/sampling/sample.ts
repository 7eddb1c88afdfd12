// sample(): drives a solver over a σ schedule against one Denoiser (DESIGN.md §5), as an async job.
//
// Execution model: every op only enqueues its kernel on the device stream (DESIGN.md §3), so a step costs the
// JS thread almost nothing. The loop keeps at most one step queued ahead of the one computing: after enqueueing
// step i it awaits step i − 1's result (an off-thread read of one element), then reports progress for it and
// checks the abort signal. So the event loop is free while the network runs, JS overhead overlaps compute, and
// memory stays bounded (two steps' tensors at most).
import type { Denoiser } from "../models/denoiser";
import { FeatureCache, type ReusePlan } from "../models/feature-cache";
import { NetworkDenoiser, type NetworkDenoiseOptions } from "../models/network-denoiser";
import { flopsIssued } from "../device";
import { checkProfile, isCacheProfile, profilePlan, type CacheProfile } from "./cache-profile";
import { reusePlan, solverEvaluations, type FeatureReuseOptions } from "./feature-reuse";
import { noGrad } from "../autograd";
import { argumentError, FastdiffError } from "../errors";
import { scope } from "../memory";
import * as ops from "../ops";
import { Generator, type Seed } from "../random";
import type { Tensor } from "../tensor";
import { karrasSigmas, type Schedule } from "./schedules";
import { createSolver, validateSolverOptions, type DenoiseFn, type SolverName, type SolverOptions } from "./solvers";

/**
 * Where the σ grid comes from:
 * - omitted or `"default"`: `denoiser.schedule(steps)`;
 * - `"karras"`: `karrasSigmas(steps, options.karras)` (EDM ρ-schedule, ending in 0);
 * - any other name: `denoiser.namedSchedule(name, steps)` when the denoiser has such a method (see `NamedSchedules`);
 * - an explicit descending σ array, or a `Schedule` ({ sigmas }): used as is (N = length − 1 steps). The last σ may
 *   be > 0: the result is then x̂ at that σ, not x0.
 */
export type ScheduleSpec = "default" | "karras" | (string & {}) | readonly number[] | Schedule;

/** Optional extension of a Denoiser: schedules it knows by name (e.g. its native "ddim" / "euler" grids). */
export interface NamedSchedules {
  namedSchedule(name: string, steps: number): Schedule | undefined;
}

export interface SampleProgress {
  /** Steps completed (1..steps). */
  step: number;
  steps: number;
  /** The step's σ_i and σ_{i+1}. */
  sigma: number;
  sigmaNext: number;
  /** Network evaluations so far (cumulative). */
  nfe: number;
  /** Milliseconds since sampling started. */
  elapsedMs: number;
}

/** Solver options (η, clip_sample, EDM churn) are those of `createSolver`; `steps` is the run's N. */
export interface SampleOptions extends Omit<SolverOptions, "steps" | "generator"> {
  /** Batch size B (default: noise.shape[0], else 1). */
  n?: number;
  /** Unit noise n ~ N(0, I) of shape [B, ...denoiser.sampleShape]; x̂_0 = initialNoiseScale(σ_0)·n. Not disposed
   * (keep it alive until the returned promise settles). */
  noise?: Tensor;
  /** Number of steps N (required unless `schedule` is an explicit σ array / Schedule, whose length it must match). */
  steps?: number;
  /** "euler" (= DDIM η = 0), "ddim" (η), "heun" (EDM, optional churn), "dpmpp2m" (DPM-Solver++(2M)),
   * "euler-ancestral" (see solvers.ts for the update of each). */
  solver: SolverName;
  schedule?: ScheduleSpec;
  /** Options of the `"karras"` schedule (defaults σ_min = 0.002, σ_max = 80, ρ = 7). */
  karras?: { sigmaMin?: number; sigmaMax?: number; rho?: number };
  /**
   * Seed of the run's counter-based generator: the initial noise is its first draw, churn / ancestral noise the
   * next ones, so a seed reproduces the run exactly. With `noise` given, the generator still skips the initial
   * noise's draw (same seed, same later draws). Omitted (and no `generator`): the default generator.
   */
  seed?: Seed;
  /** Or draw from this generator (advancing it). */
  generator?: Generator;
  classLabels?: ArrayLike<number> | null;
  /** Classifier-free guidance scale, passed to the denoiser. */
  guidance?: number;
  /**
   * Feature reuse (FRDiff / DeepCache, METHODS.md §6) for a NetworkDenoiser: keyframe evaluations run the full
   * network, the others reuse cached block outputs (`{ interval: 2 }`, `{ keyframes: [...] }`, `scoreMixing`,
   * `mode: "deepcache"`), or a cache profile from `tuneFeatureReuse` / `loadCacheProfile` (refused for another
   * model, solver, step count or schedule). Plans count network evaluations: N, or 2N − 1 for Heun.
   */
  featureReuse?: FeatureReuseOptions | CacheProfile;
  /** Called once per completed step, in order. */
  onProgress?: (progress: SampleProgress) => void;
  /** Checked between steps: aborting rejects with FastdiffError code "ERR_ABORTED". */
  signal?: AbortSignal;
}

export interface SampleResult {
  /** The final x̂ [B, ...sampleShape] (x0 when the last σ is 0). Owned by the caller. */
  samples: Tensor;
  /** Network evaluations that ran: N for euler / ddim / dpmpp2m / euler-ancestral, 2N − 1 for heun on a schedule
   * ending in 0 (2N otherwise); with feature reuse, the keyframes and reuse steps (skipped evaluations ran none). */
  nfe: number;
  /** FLOPs of the GEMM-class ops the run issued (conv, linear, matmul, attention; see `flopsIssued`; work that
   * other code issues in this process while the run awaits is counted too). */
  flops: number;
  /** With feature reuse: how many evaluations were keyframes, reused features, or skipped the network. */
  featureReuse?: { keyframes: number; reused: number; skipped: number };
  steps: number;
  /** The σ grid that was used (N + 1 values). */
  sigmas: number[];
  elapsedMs: number;
}

/**
 * Samples from `denoiser` by integrating from σ_0 to σ_N with `solver`; resolves to the final x̂ (x0 when the
 * schedule ends in 0). Same options and behaviour as `sampleWithStats`, which also returns the NFE.
 */
export async function sample(denoiser: Denoiser, options: SampleOptions): Promise<Tensor> {
  return (await sampleWithStats(denoiser, options)).samples;
}

/**
 * `sample` with statistics: `{ samples, nfe, steps, sigmas, elapsedMs }`.
 *
 * - Options are validated before any work: bad values reject with FastdiffError "ERR_ARGUMENT" (a `noise`
 *   of the wrong shape: "ERR_SHAPE").
 * - Runs as an async job: the event loop stays free while the steps compute; `signal` is checked before every
 *   step (rejecting with "ERR_ABORTED", all tensors freed); `onProgress` fires after each step has computed.
 * - Runs under `noGrad` step by step (grad mode is restored between steps, so concurrent code is unaffected).
 * - Constant memory: each step's intermediates are freed as it is enqueued; only x̂ (and DPM-Solver++'s
 *   previous x0) are carried.
 */
export async function sampleWithStats(denoiser: Denoiser, options: SampleOptions): Promise<SampleResult> {
  // Start on a fresh microtask: nothing below may land in a caller's synchronous scope().
  await Promise.resolve();
  const t0 = performance.now();
  const plan = validate(denoiser, options);
  const { sigmas, batch, generator } = plan;
  const steps = sigmas.length - 1;
  const signal = options.signal;
  throwIfAborted(signal, 0, steps);

  const flops0 = flopsIssued();
  let nfe = 0;
  const denoiseOptions: NetworkDenoiseOptions = {};
  if (options.classLabels != null) denoiseOptions.classLabels = options.classLabels;
  if (options.guidance !== undefined) denoiseOptions.guidance = options.guidance;
  const cache = plan.reuse ? new FeatureCache(plan.reuse) : null;
  if (cache) denoiseOptions.featureReuse = { cache };
  const D: DenoiseFn = (x, sigma) => {
    nfe += 1;
    const out = denoiser.denoise(x, sigma, denoiseOptions);
    const a = out.shape;
    const b = x.shape;
    if (a.length !== b.length || a.some((d, i) => d !== b[i])) {
      out.dispose();
      throw new FastdiffError("ERR_SHAPE", `sample: denoiser.denoise returned shape [${a.join(", ")}] for an input of shape [${b.join(", ")}]`);
    }
    return out;
  };
  const solver = createSolver(plan.solver, {
    eta: options.eta, clipDenoised: options.clipDenoised, sChurn: options.sChurn, sMin: options.sMin,
    sMax: options.sMax, sNoise: options.sNoise, steps, generator,
  });

  // x̂_0 = initialNoiseScale(σ_0)·n
  const scale = denoiser.initialNoiseScale(sigmas[0]!);
  if (!(typeof scale === "number" && Number.isFinite(scale) && scale > 0)) {
    solver.dispose();
    throw argumentError("sample", `denoiser.initialNoiseScale(${sigmas[0]}) must be a finite number > 0, got ${String(scale)}`);
  }
  const shape = [batch, ...denoiser.sampleShape];
  let x: Tensor = noGrad(() =>
    scope(() => {
      if (options.noise) {
        generator?.take(options.noise.size); // same later draws as when the generator drew the noise itself
        return ops.mul(options.noise, scale);
      }
      return ops.mul(ops.randn(shape, { ...(generator ? { generator } : {}), device: denoiser.device }), scale);
    }),
  );

  let pending: { ready: Promise<unknown>; progress: SampleProgress } | null = null;
  const settle = async (p: typeof pending): Promise<void> => {
    if (!p) return;
    // At least one turn of the event loop per step, whatever the timing of the reads (a loaded test run once saw 300
    // quick steps pass with none); free when the read itself waited a turn.
    const turn = new Promise((resolve) => setImmediate(resolve));
    await p.ready;
    await turn;
    if (options.onProgress) options.onProgress({ ...p.progress, elapsedMs: performance.now() - t0 });
  };
  try {
    for (let i = 0; i < steps; ++i) {
      if (i > 0) throwIfAborted(signal, i, steps);
      const sigma = sigmas[i]!;
      const sigmaNext = sigmas[i + 1]!;
      const next = noGrad(() => solver.step(x, sigma, sigmaNext, D));
      x.dispose();
      x = next;
      const ready = whenComputed(x);
      const previous = pending;
      pending = { ready, progress: { step: i + 1, steps, sigma, sigmaNext, nfe, elapsedMs: 0 } };
      await settle(previous); // step i − 1 done while step i is queued
    }
    const last = pending;
    pending = null;
    await settle(last);
  } catch (e) {
    // Let the queued work finish (its errors are superseded by e) before freeing what it writes.
    if (pending) await pending.ready.catch(() => undefined);
    x.dispose();
    solver.dispose();
    cache?.reset();
    throw e;
  }
  solver.dispose();
  const result: SampleResult = { samples: x, nfe, flops: flopsIssued() - flops0, steps, sigmas, elapsedMs: performance.now() - t0 };
  if (cache) {
    const counts = cache.counts;
    result.featureReuse = { keyframes: counts.full, reused: counts.reuse, skipped: counts.skip };
    result.nfe = counts.full + counts.reuse;
    cache.reset(); // frees the cached features now rather than at GC
  }
  return result;
}

/** Resolves once the stream has computed `x` (rejects with a deferred kernel error): reads one element off-thread. */
function whenComputed(x: Tensor): Promise<unknown> {
  if (x.size === 0) return Promise.resolve();
  const probe = scope(() => ops.slice(ops.reshape(x, [-1]), 0, 0, 1));
  try {
    return probe.data();
  } finally {
    probe.dispose(); // the pending read holds its own reference
  }
}

function throwIfAborted(signal: AbortSignal | undefined, step: number, steps: number): void {
  if (signal?.aborted) {
    throw new FastdiffError("ERR_ABORTED", `sample: aborted before step ${step + 1} of ${steps}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// validation

interface Plan {
  solver: SolverName;
  sigmas: number[];
  batch: number;
  generator: Generator | undefined;
  reuse: ReusePlan | null;
}

const KNOWN = new Set([
  "n", "noise", "steps", "solver", "schedule", "karras", "seed", "generator", "classLabels", "guidance", "eta",
  "clipDenoised", "sChurn", "sMin", "sMax", "sNoise", "featureReuse", "onProgress", "signal",
]);

function validate(denoiser: Denoiser, options: SampleOptions): Plan {
  const fn = "sample";
  if (denoiser === null || typeof denoiser !== "object" || typeof (denoiser as Denoiser).denoise !== "function") {
    throw argumentError(fn, "the first argument must be a Denoiser");
  }
  if (options === null || typeof options !== "object") throw argumentError(fn, "options must be an object");
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key) && (options as unknown as Record<string, unknown>)[key] !== undefined) {
      throw argumentError(fn, `unknown option "${key}"`);
    }
  }
  const { steps } = options;
  if (steps !== undefined && !(typeof steps === "number" && Number.isInteger(steps) && steps >= 1)) {
    throw argumentError(fn, `steps must be a positive integer, got ${String(steps)}`);
  }
  const sigmas = resolveSchedule(denoiser, options);
  const solver = validateSolverOptions(fn, options.solver, { ...options, steps: sigmas.length - 1 });

  // batch and noise
  const sampleShape = denoiser.sampleShape;
  const { n, noise } = options;
  if (n !== undefined && !(typeof n === "number" && Number.isInteger(n) && n >= 1)) {
    throw argumentError(fn, `n must be a positive integer, got ${String(n)}`);
  }
  let batch = n ?? 1;
  if (noise !== undefined) {
    if (noise === null || typeof noise !== "object" || !("handle" in noise) || typeof noise.shape === "undefined") {
      throw argumentError(fn, "noise must be a Tensor");
    }
    if (noise.isDisposed) throw new FastdiffError("ERR_DISPOSED", "sample: noise is disposed");
    const s = noise.shape;
    const ok = s.length === sampleShape.length + 1 && sampleShape.every((d, i) => s[i + 1] === d) && (n === undefined || s[0] === n);
    if (!ok) {
      throw new FastdiffError(
        "ERR_SHAPE",
        `sample: noise has shape [${s.join(", ")}], expected [${n ?? "B"}, ${sampleShape.join(", ")}]`,
      );
    }
    batch = s[0]!;
  }
  if (batch < 1) throw argumentError(fn, "the batch must not be empty");

  // randomness
  if (options.seed !== undefined && options.generator !== undefined) throw argumentError(fn, "give seed or generator, not both");
  let generator = options.generator;
  if (generator !== undefined && !(generator instanceof Generator)) throw argumentError(fn, "generator must be a Generator");
  if (options.seed !== undefined) generator = new Generator(options.seed); // validates the seed (ERR_ARGUMENT)

  // conditioning
  const labels = options.classLabels;
  if (labels != null) {
    if (typeof labels !== "object" || typeof labels.length !== "number") throw argumentError(fn, "classLabels must be an array of integers");
    if (labels.length !== batch) throw argumentError(fn, `classLabels has ${labels.length} entries for a batch of ${batch}`);
    const classes = denoiser.numClasses;
    if (classes === 0) throw argumentError(fn, "classLabels given, but the denoiser is unconditional (numClasses = 0)");
    for (let i = 0; i < labels.length; ++i) {
      const v = labels[i];
      if (!(typeof v === "number" && Number.isInteger(v) && v >= 0 && v < classes)) {
        throw argumentError(fn, `classLabels[${i}] must be an integer in [0, ${classes}), got ${String(v)}`);
      }
    }
  }
  if (options.guidance !== undefined && !(typeof options.guidance === "number" && Number.isFinite(options.guidance))) {
    throw argumentError(fn, `guidance must be a finite number, got ${String(options.guidance)}`);
  }
  if (options.onProgress !== undefined && typeof options.onProgress !== "function") throw argumentError(fn, "onProgress must be a function");
  const sig = options.signal;
  if (sig !== undefined && (sig === null || typeof sig !== "object" || typeof sig.aborted !== "boolean")) {
    throw argumentError(fn, "signal must be an AbortSignal");
  }
  return { solver, sigmas, batch, generator, reuse: featureReusePlan(denoiser, options, solver, sigmas) };
}

function featureReusePlan(denoiser: Denoiser, options: SampleOptions, solver: SolverName, sigmas: number[]): ReusePlan | null {
  const fn = "sample";
  const reuse = options.featureReuse;
  if (reuse === undefined) return null;
  if (!(denoiser instanceof NetworkDenoiser)) throw argumentError(fn, "featureReuse needs a NetworkDenoiser (a UNet or DiT with cacheable blocks)");
  const evaluations = solverEvaluations(solver, sigmas);
  if (isCacheProfile(reuse)) {
    const schedule = options.schedule;
    checkProfile(fn, reuse, {
      network: denoiser.network, solver, steps: sigmas.length - 1, evaluations,
      schedule: schedule === undefined ? "default" : typeof schedule === "string" ? schedule : "custom",
    });
    return profilePlan(reuse);
  }
  return reusePlan(fn, denoiser.network, reuse, evaluations);
}

/** @internal The σ grid of a run (see ScheduleSpec), validated. */
export function resolveSchedule(denoiser: Denoiser, options: SampleOptions): number[] {
  const fn = "sample";
  const spec = options.schedule ?? "default";
  const needSteps = (what: string): number => {
    if (options.steps === undefined) throw argumentError(fn, `steps is required with the ${what} schedule`);
    return options.steps;
  };
  let sigmas: readonly number[];
  let source: string;
  if (typeof spec === "string") {
    if (options.karras !== undefined && spec !== "karras") throw argumentError(fn, `karras options given with schedule "${spec}"`);
    const steps = needSteps(`"${spec}"`);
    if (spec === "default") {
      sigmas = denoiser.schedule(steps).sigmas;
      source = "denoiser.schedule(steps)";
    } else if (spec === "karras") {
      const k = options.karras ?? {};
      for (const key of ["sigmaMin", "sigmaMax", "rho"] as const) {
        const v = k[key];
        if (v !== undefined && !(typeof v === "number" && Number.isFinite(v) && v > 0)) {
          throw argumentError(fn, `karras.${key} must be a finite number > 0, got ${String(v)}`);
        }
      }
      if ((k.sigmaMin ?? 0.002) > (k.sigmaMax ?? 80)) throw argumentError(fn, "karras.sigmaMin must not exceed karras.sigmaMax");
      sigmas = karrasSigmas(steps, k);
      source = "karras";
    } else {
      const named = (denoiser as Partial<NamedSchedules>).namedSchedule;
      const s = typeof named === "function" ? named.call(denoiser, spec, steps) : undefined;
      if (!s) throw argumentError(fn, `unknown schedule "${spec}" (expected "default", "karras", a σ array or a Schedule)`);
      sigmas = s.sigmas;
      source = `schedule "${spec}"`;
    }
    if (sigmas.length !== steps + 1) throw argumentError(fn, `${source} gave ${sigmas.length} sigmas for ${steps} steps`);
  } else if (Array.isArray(spec) || (spec !== null && typeof spec === "object" && Array.isArray((spec as Schedule).sigmas))) {
    sigmas = Array.isArray(spec) ? (spec as readonly number[]) : (spec as Schedule).sigmas;
    source = "schedule";
    if (options.karras !== undefined) throw argumentError(fn, "karras options apply to the \"karras\" schedule only");
    if (options.steps !== undefined && options.steps !== sigmas.length - 1) {
      throw argumentError(fn, `steps (${options.steps}) does not match the schedule (${sigmas.length} sigmas = ${sigmas.length - 1} steps)`);
    }
  } else {
    throw argumentError(fn, "schedule must be a name, an array of sigmas or a Schedule");
  }
  if (sigmas.length < 2) throw argumentError(fn, `${source} needs at least 2 sigmas (1 step), got ${sigmas.length}`);
  for (let i = 0; i < sigmas.length; ++i) {
    const s = sigmas[i];
    if (!(typeof s === "number" && Number.isFinite(s) && s >= 0)) throw argumentError(fn, `${source}: sigma[${i}] must be finite and >= 0, got ${String(s)}`);
    if (i > 0 && !(s < sigmas[i - 1]!)) {
      throw argumentError(fn, `${source}: sigmas must be strictly decreasing, got sigma[${i - 1}] = ${sigmas[i - 1]} then ${s}`);
    }
  }
  return Array.from(sigmas);
}
