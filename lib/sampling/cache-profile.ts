// Cache profiles: a feature-reuse plan tuned for one model, solver and step count (Auto-FR's output, or any
// plan worth keeping), as a small JSON file that `sample({ featureReuse: profile })` and `fastdiff sample
// --cache-profile` accept. A profile is refused (ERR_ARGUMENT, saying what differs) for another model — by a
// hash of its weights — another solver, step count or schedule.
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { argumentError, FastdiffError } from "../errors";
import { writeFileAtomic } from "../io/atomic";
import type { ReusePlan, ScoreMixing } from "../models/feature-cache";
import type { Network } from "../models/network";
import type { SolverName } from "./solvers";

export const CACHE_PROFILE_FORMAT = "fastdiff.cache-profile";

export interface CacheProfile {
  format: typeof CACHE_PROFILE_FORMAT;
  version: 1;
  /** The network it was tuned for: class and SHA-256 of its parameters (names, shapes, float32 values). */
  model: { kind: string; sha256: string };
  solver: SolverName;
  steps: number;
  /** The schedule's name ("default", "karras", …) or "custom" for an explicit σ grid. */
  schedule: string;
  /** Network evaluations of the run the plan covers. */
  evaluations: number;
  guidance?: number;
  plan: {
    points: string[];
    /** Evaluation indices that run the full network. */
    keyframes: number[];
    /** Evaluation indices that run no network (the previous ε reused). */
    skips: number[];
    scoreMixing: ScoreMixing | false;
  };
  /** What the tuner was asked for. */
  budget?: { speedup?: number; maxDistance?: number };
  /** Measured on held-out noise after tuning. */
  measured?: {
    /** Wall-clock speedup over full compute (the faster of two runs each), and the ratio of network FLOPs executed. */
    speedup: number;
    flopsRatio: number;
    /** Network evaluations that ran (keyframes + reuse steps) of `evaluations`. */
    nfe: number;
    /** Mean per-sample RMS distance to the full-compute samples from the same noise. */
    distance: number;
    samples: number;
    batch: number;
  };
  /** How Auto-FR got there: uniform plans searched, gradient steps, the reuse cost it assumed, the pool distances of
   * the search's best plan and of the learned one, and which it kept. */
  tuning?: {
    candidates: number;
    iterations: number;
    reuseCost: number;
    searchDistance: number;
    learnedDistance: number;
    chosen: "learned" | "search";
  };
  created?: string;
}

/** SHA-256 (hex) of a network's parameters: each name, shape and float32 little-endian values, in module order. */
export function modelHash(network: Network): string {
  const h = createHash("sha256");
  for (const [name, t] of network.namedParameters()) {
    h.update(`${name}:${t.shape.join("x")};`);
    const data = t.dataSync();
    h.update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  }
  return h.digest("hex");
}

/** The profile's plan as the feature cache takes it. */
export function profilePlan(profile: CacheProfile): ReusePlan {
  const flags = (list: number[]) => {
    const out = new Array<boolean>(profile.evaluations).fill(false);
    for (const i of list) out[i] = true;
    return out;
  };
  return {
    points: profile.plan.points,
    keyframes: flags(profile.plan.keyframes),
    skips: profile.plan.skips.length > 0 ? flags(profile.plan.skips) : undefined,
    scoreMixing: profile.plan.scoreMixing,
  };
}

/** Index lists of a plan (for a profile). */
export function planIndices(plan: ReusePlan): CacheProfile["plan"] {
  const indices = (flags: readonly boolean[] | undefined) => (flags ?? []).flatMap((f, i) => (f ? [i] : []));
  return { points: [...plan.points], keyframes: indices(plan.keyframes), skips: indices(plan.skips), scoreMixing: plan.scoreMixing ?? false };
}

export function isCacheProfile(value: unknown): value is CacheProfile {
  return value !== null && typeof value === "object" && (value as { format?: unknown }).format === CACHE_PROFILE_FORMAT;
}

/** Checks a profile's structure (ERR_FORMAT naming the field). */
export function validateProfile(source: string, value: unknown): CacheProfile {
  const bad = (what: string): never => {
    throw new FastdiffError("ERR_FORMAT", `${source}: not a valid cache profile (${what})`);
  };
  if (!isCacheProfile(value)) return bad(`"format" must be "${CACHE_PROFILE_FORMAT}"`);
  const p = value as CacheProfile;
  if (p.version !== 1) bad(`unsupported version ${String(p.version)}`);
  if (!p.model || typeof p.model.kind !== "string" || !/^[0-9a-f]{64}$/.test(String(p.model.sha256))) bad("model.kind / model.sha256");
  if (typeof p.solver !== "string" || !Number.isInteger(p.steps) || p.steps < 1) bad("solver / steps");
  if (typeof p.schedule !== "string") bad("schedule");
  if (!Number.isInteger(p.evaluations) || p.evaluations < 1) bad("evaluations");
  const plan = p.plan;
  if (!plan || !Array.isArray(plan.points) || !plan.points.every((s) => typeof s === "string")) bad("plan.points");
  for (const key of ["keyframes", "skips"] as const) {
    const list = plan[key];
    if (!Array.isArray(list) || !list.every((i) => Number.isInteger(i) && i >= 0 && i < p.evaluations)) bad(`plan.${key}`);
  }
  if (!plan.keyframes.includes(0)) bad("plan.keyframes must include 0");
  const m = plan.scoreMixing;
  if (m !== false && !(m && Number.isFinite(m.slope) && m.slope !== 0 && Number.isFinite(m.bias))) bad("plan.scoreMixing");
  return p;
}

export async function loadCacheProfile(path: string): Promise<CacheProfile> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new FastdiffError("ERR_ARGUMENT", `loadCacheProfile: cannot read ${path}: ${(e as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new FastdiffError("ERR_FORMAT", `loadCacheProfile: ${path} is not JSON: ${(e as Error).message}`);
  }
  return validateProfile(path, value);
}

/** Writes a profile as pretty JSON, atomically. */
export async function saveCacheProfile(profile: CacheProfile, path: string): Promise<void> {
  validateProfile("saveCacheProfile", profile);
  await writeFileAtomic(path, JSON.stringify(profile, null, 2) + "\n");
}

/** What a run must match for a profile to apply. */
export interface RunIdentity {
  network: Network;
  solver: SolverName;
  steps: number;
  schedule: string;
  evaluations: number;
}

/** Refuses a profile tuned for another model, solver, step count or schedule (ERR_ARGUMENT saying which). */
export function checkProfile(fn: string, profile: CacheProfile, run: RunIdentity): void {
  validateProfile(fn, profile);
  const hash = modelHash(run.network);
  if (profile.model.kind !== run.network.kind || profile.model.sha256 !== hash) {
    throw argumentError(fn, `the cache profile was tuned for another model (${profile.model.kind} ${profile.model.sha256.slice(0, 12)}…, ` +
      `this is ${run.network.kind} ${hash.slice(0, 12)}…)`);
  }
  const mismatch = (what: string, want: unknown, got: unknown) => {
    throw argumentError(fn, `the cache profile was tuned for ${what} ${JSON.stringify(want)}, this run uses ${JSON.stringify(got)}`);
  };
  if (profile.solver !== run.solver) mismatch("solver", profile.solver, run.solver);
  if (profile.steps !== run.steps) mismatch("steps", profile.steps, run.steps);
  if (profile.schedule !== run.schedule) mismatch("schedule", profile.schedule, run.schedule);
  if (profile.evaluations !== run.evaluations) mismatch("evaluations", profile.evaluations, run.evaluations);
}
