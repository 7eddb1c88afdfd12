// Auto-FR (FRDiff, METHODS.md §6): learn which evaluations of a sampling run compute the network, by gradient
// descent on gate logits through the whole gated sampling chain (model weights frozen), against full-compute
// samples from the same noise, under a cost penalty; then fit the plan to a budget and measure it.
//
// The chain (per evaluation i ≥ 1; evaluation 0 always computes):
//   α_i = round(σ(g_i))  (straight-through: the forward uses the rounded value, the gradient σ'(g_i))
//   A_i = A_{i−1} + α_i·(Attn(x_i) − A_{i−1})                   for every reused point (Network.forward's gate)
// and, beyond the released code (which learns α only), jump gates β_i = round(σ(h_i)) that let an evaluation
// skip the network and reuse the previous ε — what score mixing does on a fixed ramp:
//   ε_i = ε_{i−1} + β_i·(ε_net,i − ε_{i−1}),  the feature gate then being α_i·β_i.
// The gates start from the uniform plan that fits the budget rather than from full compute (the paper's
// g = 0.1), where the distance has no gradient and the penalty alone would flip every gate together.
// Loss: ‖x_ref − x_FR‖² (mean) + λ·Σ_i β̃_i·(c + (1 − c)·α̃_i), with α̃, β̃ the sigmoids and c the measured cost of a
// reuse evaluation relative to a full one. λ follows the budget by dual ascent: it grows while the plan is over
// it (cost for a speedup budget, distance for a quality budget) and shrinks while it is under.
import { noGrad } from "../autograd";
import { argumentError, FastdiffError } from "../errors";
import { leaveScopes, scope } from "../memory";
import { FeatureCache, type ReusePlan } from "../models/feature-cache";
import type { NetworkDenoiser } from "../models/network-denoiser";
import * as ops from "../ops";
import { permutation } from "../data/dataset";
import { Generator } from "../random";
import type { Tensor } from "../tensor";
import { modelHash, planIndices, type CacheProfile } from "./cache-profile";
import { checkPoints, solverEvaluations } from "./feature-reuse";
import { resolveSchedule, sampleWithStats, type ScheduleSpec } from "./sample";
import { createSolver, type SolverName } from "./solvers";

export type TuneBudget = { speedup: number } | { maxDistance: number };

export interface TuneFeatureReuseOptions {
  solver: SolverName;
  steps: number;
  /** A schedule name (default: the denoiser's own). */
  schedule?: Exclude<ScheduleSpec, readonly number[] | { sigmas: readonly number[] }>;
  /** A wall-clock speedup over full compute to reach (≥ 1), or the largest mean per-sample RMS distance to the
   * full-compute samples to allow. */
  budget: TuneBudget;
  /** Points to reuse (default: the network's FRDiff points). */
  points?: readonly string[];
  /** Also learn jumps (evaluations that run no network). Default true; without them the speedup is bounded by
   * the cost of a reuse evaluation. */
  jumps?: boolean;
  guidance?: number;
  /** Tuning noise samples (their full-compute references are computed once). Default 16. */
  pool?: number;
  /** Samples per gradient step (drawn from the pool). Default 2. */
  batch?: number;
  /** Gradient steps. Default 80. */
  iterations?: number;
  /** Step size on the gate logits (normalized gradient descent: a typical logit moves by about this much per
   * step; they start at ±0.5). Default 0.05. */
  lr?: number;
  /** Initial penalty weight λ. Default 1e-3 (the paper's λ_g). */
  penalty?: number;
  /** Where learning starts: "search" (default: the best uniform plan within the budget, on the pool) or an
   * explicit plan (evaluation indices of its keyframes, 0 included, and of its jumps). */
  init?: "search" | { keyframes: readonly number[]; skips?: readonly number[] };
  /** Held-out samples for the final measurement (and its batch). Default 32. */
  validation?: number;
  seed?: number;
  onProgress?: (p: TuneProgress) => void;
  signal?: AbortSignal;
}

export interface TuneProgress {
  iteration: number;
  iterations: number;
  /** The objective of this step: mean squared distance to the references + λ·expected cost. */
  loss: number;
  /** Mean per-sample RMS distance of this step's hard plan to the references. */
  distance: number;
  /** Predicted cost of the hard plan relative to full compute (1/speedup). */
  cost: number;
  penalty: number;
  keyframes: number;
  skipped: number;
}

const DETERMINISTIC: readonly SolverName[] = ["euler", "ddim", "heun", "dpmpp2m"];

/** Learns a feature-reuse plan for `denoiser` under `budget` and returns it as a cache profile, measured. */
export async function tuneFeatureReuse(denoiser: NetworkDenoiser, options: TuneFeatureReuseOptions): Promise<CacheProfile> {
  const fn = "tuneFeatureReuse";
  const o = validate(fn, denoiser, options);
  const network = denoiser.network;
  const sigmas = resolveSchedule(denoiser, { solver: o.solver, steps: o.steps, schedule: o.schedule });
  const E = solverEvaluations(o.solver, sigmas);
  if (E < 2) throw argumentError(fn, "a run of one network evaluation has nothing to reuse");
  const shape = denoiser.sampleShape;
  const classes = denoiser.numClasses;
  const labelsFor = (n: number, offset: number) => (classes > 0 ? Int32Array.from({ length: n }, (_, i) => (i + offset) % classes) : null);

  const frozen = network.parameters().map((p) => p.requiresGrad);
  network.requiresGrad(false);
  const owned: Tensor[] = [];
  try {
    // ---- cost of a reuse evaluation, and the references ----
    const valNoise = ops.randn([o.validation, ...shape], { generator: new Generator(o.seed + 1) });
    owned.push(valNoise);
    const cost = await reuseCost(denoiser, valNoise, labelsFor(o.validation, 0), sigmas[0]!, o.points, o.guidance);
    const poolNoise = ops.randn([o.pool, ...shape], { generator: new Generator(o.seed) });
    owned.push(poolNoise);
    const poolLabels = labelsFor(o.pool, 0);
    const run = { solver: o.solver, schedule: sigmas, guidance: o.guidance };
    const poolRef = (await sampleWithStats(denoiser, { ...run, noise: poolNoise, classLabels: poolLabels })).samples;
    owned.push(poolRef);

    // ---- gate learning ----
    // ---- 1. search the uniform plans on the pool; the best one within the budget is where learning starts ----
    // (not full compute, the paper's g = 0.1: there x = x_ref, the distance has no gradient and the penalty alone
    // flips every gate at once)
    const poolDistance = (plan: ReusePlan) => planDistance(denoiser, run, poolNoise, poolLabels, poolRef, plan);
    // Budgets as a cost ceiling (speedup) or a distance ceiling (quality); the other stays open.
    const maxCost = "speedup" in o.budget ? 1 / o.budget.speedup : Infinity;
    const maxDistance = "maxDistance" in o.budget ? o.budget.maxDistance : Infinity;
    const within = (plan: ReusePlan) => planCost(plan, cost) <= maxCost;
    // For a speedup budget only plans costing 60–100% of it: much cheaper ones lose quality for nothing.
    const uniform = uniformPlans(E, o.jumps, o.points);
    const candidates = uniform.filter((p) => within(p) && (maxCost === Infinity || planCost(p, cost) >= 0.6 * maxCost));
    if (candidates.length === 0) {
      // none fits: the cheapest uniform plan, made cheaper step by step
      let plan = uniform.reduce((a, b) => (planCost(b, cost) < planCost(a, cost) ? b : a));
      const flat = planLogits(plan);
      for (let next: ReusePlan | null = plan; next && !within(plan); next = demote(plan, flat, cost)) plan = next;
      candidates.push(plan);
    }
    // Better: for a speedup budget the closer to full compute; for a quality budget the cheaper among those
    // within it (the closer while none is).
    const better = (a: { plan: ReusePlan; distance: number }, b: { plan: ReusePlan; distance: number }) => {
      if (maxDistance === Infinity) return a.distance < b.distance;
      const aOk = a.distance <= maxDistance, bOk = b.distance <= maxDistance;
      if (aOk !== bOk) return aOk;
      return aOk ? planCost(a.plan, cost) < planCost(b.plan, cost) : a.distance < b.distance;
    };
    let start = { plan: candidates[0]!, distance: Infinity };
    const init = o.init;
    if (init === "search") {
      for (const plan of candidates) {
        const tried = { plan, distance: await poolDistance(plan) };
        if (better(tried, start)) start = tried;
      }
    } else {
      const plan = planOf(Array.from({ length: E - 1 }, (_, k) => init.keyframes.includes(k + 1)), null, o.points);
      plan.skips = plan.keyframes.map((_, i) => init.skips?.includes(i) ?? false);
      start = { plan, distance: await poolDistance(plan) };
    }
    const logits = planLogits(start.plan, o.jumps);
    const momentum = { feature: logits.feature.map(() => 0), jump: logits.jump?.map(() => 0) ?? null };
    let lambda = o.penalty;
    for (let it = 1; it <= o.iterations; ++it) {
      if (o.signal?.aborted) throw new FastdiffError("ERR_ABORTED", `${fn}: aborted at iteration ${it}`);
      // minibatches walk seeded permutations of the pool (one per pass)
      const idx = Array.from({ length: o.batch }, (_, k) => {
        const j = (it - 1) * o.batch + k;
        return permutation(o.pool, o.seed, Math.floor(j / o.pool))[j % o.pool]!;
      });
      const step = scope(() => {
        const leaf = (values: number[]) => {
          const t = ops.tensor(Float32Array.from(values), [E - 1]);
          t.requiresGrad = true;
          return t;
        };
        const gFeature = leaf(logits.feature);
        const gJump = logits.jump ? leaf(logits.jump) : null;
        const noise = ops.concat(idx.map((i) => ops.slice(poolNoise, 0, i, i + 1)), 0);
        const ref = ops.concat(idx.map((i) => ops.slice(poolRef, 0, i, i + 1)), 0);
        const labels = poolLabels ? idx.map((i) => poolLabels[i]!) : null;
        const gates = hardGates(gFeature, gJump);
        const x = gatedChain(denoiser, o, sigmas, noise, labels, gates);
        const diff = ops.sub(x, ref);
        // expected cost Σ β̃_i·(c + (1 − c)·α̃_i) over i ≥ 1
        const pf = ops.sigmoid(gFeature);
        const pj = gJump ? ops.sigmoid(gJump) : ops.ones([E - 1]);
        const expected = ops.sum(ops.mul(pj, ops.add(ops.mul(pf, 1 - cost), cost)));
        const loss = ops.add(ops.mean(ops.square(diff)), ops.mul(expected, lambda));
        loss.backward();
        return {
          loss: loss.dataSync()[0]!, distance: rmsPerSample(diff), plan: planOf(gates.feature, gates.jump, o.points),
          grads: { feature: Array.from(gFeature.grad!.dataSync()), jump: gJump ? Array.from(gJump.grad!.dataSync()) : null },
        };
      });
      descend(logits, momentum, step.grads, o.lr);
      const c = planCost(step.plan, cost);
      // dual ascent on λ toward the budget
      const over = maxCost < Infinity ? (c - maxCost) / maxCost : (maxDistance - step.distance) / maxDistance;
      lambda = Math.min(10, Math.max(1e-8, lambda * Math.exp(0.5 * Math.max(-2, Math.min(2, over)))));
      o.onProgress?.({ iteration: it, iterations: o.iterations, loss: step.loss, distance: step.distance, cost: c, penalty: lambda, ...tally(step.plan) });
      await new Promise((r) => setImmediate(r)); // let the event loop breathe between steps
    }

    // ---- 2. fit the learned plan to the budget; keep whichever of it and the search's plan is better ----
    let learned = planOf(logits.feature.map((g) => g > 0), logits.jump?.map((g) => g > 0) ?? null, o.points);
    for (let next: ReusePlan | null = learned; next && !within(learned); next = demote(learned, logits, cost)) learned = next;
    let learnedDistance = await poolDistance(learned);
    for (let round = 0; round < 8 && learnedDistance > maxDistance; ++round) {
      const next = promote(learned, logits);
      if (!next) break;
      learned = next;
      learnedDistance = await poolDistance(learned);
    }
    const useLearned = within(learned) && !better(start, { plan: learned, distance: learnedDistance });
    let plan = useLearned ? learned : start.plan;

    // ---- 3. measure on held-out noise; a speedup budget missed on the wall clock takes steps off, one at a
    // time, until it is met (or there is none left to take) ----
    const valLabels = labelsFor(o.validation, 0);
    let measured = await measure(denoiser, run, valNoise, valLabels, plan);
    while (measured.speedup < 1 / maxCost) {
      const next = demote(plan, logits, cost);
      if (!next) break;
      plan = next;
      measured = await measure(denoiser, run, valNoise, valLabels, plan);
    }
    const tuning = {
      candidates: candidates.length, iterations: o.iterations, reuseCost: cost, searchDistance: start.distance,
      learnedDistance, chosen: useLearned ? "learned" as const : "search" as const,
    };
    return {
      format: "fastdiff.cache-profile", version: 1,
      model: { kind: network.kind, sha256: modelHash(network) },
      solver: o.solver, steps: o.steps, schedule: typeof o.schedule === "string" ? o.schedule : "default", evaluations: E,
      ...(o.guidance !== undefined ? { guidance: o.guidance } : {}),
      plan: planIndices(plan), budget: { ...o.budget }, measured, tuning, created: new Date().toISOString(),
    };
  } finally {
    for (const t of owned) t.dispose();
    network.parameters().forEach((p, i) => (p.requiresGrad = frozen[i]!));
  }
}

// ---------------------------------------------------------------------------------------------------
// the gated chain

interface Gates {
  /** Straight-through gates for evaluations 1..E−1: forward value round(σ(g)), gradient σ'(g). */
  feature: Tensor;
  jump: Tensor | null;
}

/** round(σ(g)) in the forward pass, σ'(g) in the backward pass: h + (σ(g) − stopgrad(σ(g))). */
function hardGates(gFeature: Tensor, gJump: Tensor | null): Gates {
  const ste = (g: Tensor) => {
    const p = ops.sigmoid(g);
    const hard = ops.tensor(Float32Array.from(p.dataSync(), (v) => (v >= 0.5 ? 1 : 0)), p.shape);
    return ops.add(ops.sub(p, p.detach()), hard);
  };
  return { feature: ste(gFeature), jump: gJump ? ste(gJump) : null };
}

/** Samples `noise` through the gated chain (differentiable in the gates). */
function gatedChain(
  denoiser: NetworkDenoiser, o: Required<Pick<TuneFeatureReuseOptions, "solver" | "points">> & { guidance?: number },
  sigmas: number[], noise: Tensor, labels: number[] | null, gates: Gates,
): Tensor {
  const cache = new FeatureCache();
  const solver = createSolver(o.solver, {});
  let index = 0;
  let epsPrev: Tensor | null = null;
  const one = ops.ones([1]);
  const D = (x: Tensor, sigma: number): Tensor => {
    const i = index++;
    const jump = i > 0 && gates.jump ? ops.slice(gates.jump, 0, i - 1, i) : null;
    let gate = i === 0 ? one : ops.slice(gates.feature, 0, i - 1, i);
    if (jump) gate = ops.mul(gate, jump);
    const denoised = denoiser.denoise(x, sigma, {
      classLabels: labels, guidance: o.guidance, featureReuse: { cache, reuse: o.points, gate },
    });
    let eps = ops.div(ops.sub(x, denoised), sigma);
    if (jump && epsPrev) eps = ops.add(epsPrev, ops.mul(jump, ops.sub(eps, epsPrev)));
    leaveScopes(eps);
    epsPrev?.dispose();
    epsPrev = eps;
    return ops.sub(x, ops.mul(eps, sigma));
  };
  let x = ops.mul(noise, denoiser.initialNoiseScale(sigmas[0]!));
  try {
    for (let s = 0; s + 1 < sigmas.length; ++s) x = solver.step(x, sigmas[s]!, sigmas[s + 1]!, D);
  } finally {
    (epsPrev as Tensor | null)?.dispose();
    cache.reset();
    solver.dispose();
  }
  return x;
}

// ---------------------------------------------------------------------------------------------------
// plans, costs, budget fitting

function planOf(feature: Tensor | boolean[], jump: Tensor | boolean[] | null, points: readonly string[]): ReusePlan {
  const flags = (t: Tensor | boolean[]) => (Array.isArray(t) ? t : Array.from(t.dataSync(), (v) => v >= 0.5));
  const f = flags(feature);
  const j = jump ? flags(jump) : f.map(() => true);
  return {
    points: [...points],
    keyframes: [true, ...f.map((k, i) => k && j[i]!)],
    skips: [false, ...j.map((run) => !run)],
    scoreMixing: false,
  };
}

function tally(plan: ReusePlan): { keyframes: number; skipped: number } {
  return { keyframes: plan.keyframes.filter(Boolean).length, skipped: (plan.skips ?? []).filter(Boolean).length };
}

/** Predicted cost relative to full compute: keyframes 1, reuse evaluations c, skips 0. */
function planCost(plan: ReusePlan, c: number): number {
  let total = 0;
  plan.keyframes.forEach((k, i) => (total += k ? 1 : plan.skips?.[i] ? 0 : c));
  return total / plan.keyframes.length;
}

/**
 * Normalized gradient descent with momentum over all logits together: the step is lr·m/rms(m). It keeps the
 * gradients' relative sizes — Adam's per-coordinate scaling would move every gate at the penalty's pace and
 * flip them in lockstep.
 */
function descend(logits: Logits, momentum: Logits, grads: Logits, lr: number): void {
  const keys = ["feature", "jump"] as const;
  let sq = 0;
  let n = 0;
  for (const k of keys) {
    const m = momentum[k];
    const g = grads[k];
    if (!m || !g) continue;
    for (let i = 0; i < m.length; ++i) {
      m[i] = 0.9 * m[i]! + g[i]!;
      sq += m[i]! * m[i]!;
      n += 1;
    }
  }
  const rms = Math.sqrt(sq / Math.max(1, n));
  if (!(rms > 0 && Number.isFinite(rms))) return;
  for (const k of keys) {
    const m = momentum[k];
    const l = logits[k];
    if (m && l) for (let i = 0; i < l.length; ++i) l[i]! -= (lr * m[i]!) / rms;
  }
}

/** The uniform plans: a keyframe every M evaluations (M = 1..12), and with jumps the non-keyframes of the first or
 * the last 25, 50 or 75% of the run skipped, or all of them (score mixing's early jumps, or reversed mixing's late
 * ones: bench/frdiff-steps.mjs finds reuse worse than a jump late in the run on the shipped teachers). */
function uniformPlans(E: number, jumps: boolean, points: readonly string[]): ReusePlan[] {
  const out: ReusePlan[] = [];
  const spans: Array<(k: number) => boolean> = [() => false]; // which evaluations (k = 1..E−1) jump
  if (jumps) {
    for (const f of [0.25, 0.5, 0.75]) spans.push((k) => k < f * E, (k) => k >= (1 - f) * E);
    spans.push(() => true);
  }
  for (let M = 1; M <= Math.min(12, E); ++M) {
    const keyframes = Array.from({ length: E - 1 }, (_, k) => (k + 1) % M === 0);
    for (const [i, jumped] of spans.entries()) {
      if (M === 1 && i > 0) continue;
      out.push(planOf(keyframes, jumps ? keyframes.map((key, k) => key || !jumped(k + 1)) : null, points));
    }
  }
  return out;
}

type Logits = { feature: number[]; jump: number[] | null };

/** Logits ±0.5 that round to `plan` (keyframe / run the network: +0.5). */
function planLogits(plan: ReusePlan, jumps = true): Logits {
  const E = plan.keyframes.length;
  const skips = plan.skips ?? new Array<boolean>(E).fill(false);
  return {
    feature: plan.keyframes.slice(1).map((k) => (k ? 0.5 : -0.5)),
    jump: jumps ? skips.slice(1).map((skip) => (skip ? -0.5 : 0.5)) : null,
  };
}

/** One step cheaper: the keyframe with the lowest feature logit becomes a reuse step, or the reuse step with the
 * lowest jump logit a skip — whichever the gates were least sure of. */
function demote(plan: ReusePlan, logits: Logits, c: number): ReusePlan | null {
  const keyframes = [...plan.keyframes];
  const skips = [...(plan.skips ?? keyframes.map(() => false))];
  let best: { i: number; to: "reuse" | "skip"; score: number } | null = null;
  for (let i = 1; i < keyframes.length; ++i) {
    if (keyframes[i] && (!best || logits.feature[i - 1]! < best.score)) best = { i, to: "reuse", score: logits.feature[i - 1]! };
    if (logits.jump && !keyframes[i] && !skips[i] && (!best || logits.jump[i - 1]! < best.score)) best = { i, to: "skip", score: logits.jump[i - 1]! };
  }
  if (!best) return null;
  if (best.to === "reuse") keyframes[best.i] = false;
  else skips[best.i] = true;
  if (c >= 1 && best.to === "reuse") return demote({ ...plan, keyframes, skips }, logits, c); // a reuse step saves nothing
  return { ...plan, keyframes, skips };
}

/** One step dearer: the skip with the highest jump logit runs, or the reuse step with the highest feature logit
 * becomes a keyframe. */
function promote(plan: ReusePlan, logits: Logits): ReusePlan | null {
  const keyframes = [...plan.keyframes];
  const skips = [...(plan.skips ?? keyframes.map(() => false))];
  let best: { i: number; to: "reuse" | "full"; score: number } | null = null;
  for (let i = 1; i < keyframes.length; ++i) {
    if (skips[i] && logits.jump && (!best || logits.jump[i - 1]! > best.score)) best = { i, to: "reuse", score: logits.jump[i - 1]! };
    if (!skips[i] && !keyframes[i] && (!best || logits.feature[i - 1]! > best.score)) best = { i, to: "full", score: logits.feature[i - 1]! };
  }
  if (!best) return null;
  if (best.to === "reuse") skips[best.i] = false;
  else keyframes[best.i] = true;
  return { ...plan, keyframes, skips };
}

// ---------------------------------------------------------------------------------------------------
// measurement

/** Mean over samples of the RMS difference (read on the host). */
function rmsPerSample(diff: Tensor): number {
  const data = diff.dataSync();
  const n = diff.shape[0]!;
  const per = data.length / n;
  let total = 0;
  for (let b = 0; b < n; ++b) {
    let s = 0;
    for (let k = b * per; k < (b + 1) * per; ++k) s += data[k]! * data[k]!;
    total += Math.sqrt(s / per);
  }
  return total / n;
}

/** Wall-clock cost of a reuse forward relative to a full one at the validation batch (best of 3 each). */
async function reuseCost(
  denoiser: NetworkDenoiser, noise: Tensor, labels: Int32Array | null, sigma: number, points: readonly string[], guidance?: number,
): Promise<number> {
  const cache = new FeatureCache();
  const x = ops.mul(noise, sigma);
  const time = async (reuse: boolean) => {
    let best = Infinity;
    for (let rep = 0; rep < 3; ++rep) {
      const t0 = performance.now();
      const out = noGrad(() => denoiser.denoise(x, sigma, {
        classLabels: labels, guidance, featureReuse: reuse ? { cache, reuse: points } : { cache, store: points },
      }));
      await out.data();
      out.dispose();
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  };
  try {
    const full = await time(false);
    return Math.min(1, (await time(true)) / full);
  } finally {
    x.dispose();
    cache.reset();
  }
}

/** Mean per-sample RMS distance of the plan's samples from `noise` to `reference`. */
async function planDistance(
  denoiser: NetworkDenoiser, run: { solver: SolverName; schedule: number[]; guidance?: number },
  noise: Tensor, labels: Int32Array | null, reference: Tensor, plan: ReusePlan,
): Promise<number> {
  const { points, keyframes, skips } = planIndices(plan);
  const r = await sampleWithStats(denoiser, { ...run, noise, classLabels: labels, featureReuse: { points, keyframes, skips } });
  try {
    return scope(() => rmsPerSample(ops.sub(r.samples, reference)));
  } finally {
    r.samples.dispose();
  }
}

/**
 * Runs full compute and the plan on the same noise: wall-clock speedup, FLOP ratio, NFE, distance. The two run
 * interleaved, at least three times each and, while runs are quick, until about 0.2 s has gone into timing them
 * (at most eight each); the fastest time of each counts: a neighbour's burst on a shared machine slows single runs
 * by up to 1.5× (bench/RESULTS.md, 2026-12-05), which would otherwise decide the plan, and runs of a few ms are
 * the most exposed (two runs each missed a 1.5× budget in ~1 of 10 loaded test runs).
 */
async function measure(
  denoiser: NetworkDenoiser, run: { solver: SolverName; schedule: number[]; guidance?: number },
  noise: Tensor, labels: Int32Array | null, plan: ReusePlan,
): Promise<NonNullable<CacheProfile["measured"]>> {
  const { points, keyframes, skips } = planIndices(plan);
  const full = await sampleWithStats(denoiser, { ...run, noise, classLabels: labels });
  const fast = await sampleWithStats(denoiser, { ...run, noise, classLabels: labels, featureReuse: { points, keyframes, skips } });
  try {
    let fullMs = full.elapsedMs, fastMs = fast.elapsedMs, spentMs = fullMs + fastMs;
    for (let runs = 1; runs < 8 && (runs < 3 || spentMs < 200); ++runs) {
      for (const reuse of [false, true]) {
        const again = await sampleWithStats(denoiser, { ...run, noise, classLabels: labels, ...(reuse ? { featureReuse: { points, keyframes, skips } } : {}) });
        again.samples.dispose();
        spentMs += again.elapsedMs;
        if (reuse) fastMs = Math.min(fastMs, again.elapsedMs);
        else fullMs = Math.min(fullMs, again.elapsedMs);
      }
    }
    const distance = scope(() => rmsPerSample(ops.sub(fast.samples, full.samples)));
    return {
      speedup: fullMs / fastMs, flopsRatio: fast.flops / full.flops, nfe: fast.nfe, distance,
      samples: noise.shape[0]!, batch: noise.shape[0]!,
    };
  } finally {
    full.samples.dispose();
    fast.samples.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------
// options

type Resolved = Required<Omit<TuneFeatureReuseOptions, "schedule" | "guidance" | "onProgress" | "signal">> &
  Pick<TuneFeatureReuseOptions, "schedule" | "guidance" | "onProgress" | "signal"> & { points: string[] };

function validate(fn: string, denoiser: NetworkDenoiser, options: TuneFeatureReuseOptions): Resolved {
  if (!denoiser || typeof (denoiser as { network?: unknown }).network !== "object") throw argumentError(fn, "needs a NetworkDenoiser");
  if (!DETERMINISTIC.includes(options.solver)) {
    throw argumentError(fn, `needs a deterministic solver (${DETERMINISTIC.join(", ")}): the gated chain and the references must see the same noise; got ${JSON.stringify(options.solver)}`);
  }
  if (!(Number.isInteger(options.steps) && options.steps >= 2)) throw argumentError(fn, `steps must be an integer >= 2, got ${String(options.steps)}`);
  const budget = options.budget;
  if (!budget || typeof budget !== "object") throw argumentError(fn, "budget must be { speedup } or { maxDistance }");
  if ("speedup" in budget && !(Number.isFinite(budget.speedup) && budget.speedup >= 1)) throw argumentError(fn, `budget.speedup must be a number >= 1, got ${String(budget.speedup)}`);
  if ("maxDistance" in budget && !(Number.isFinite(budget.maxDistance) && budget.maxDistance > 0)) throw argumentError(fn, `budget.maxDistance must be a number > 0, got ${String(budget.maxDistance)}`);
  if (!("speedup" in budget) && !("maxDistance" in budget)) throw argumentError(fn, "budget must be { speedup } or { maxDistance }");
  const network = denoiser.network;
  const points = options.points !== undefined ? checkPoints(fn, network, options.points) : network.reusePoints();
  if (points.length === 0) throw argumentError(fn, `this ${network.kind} has no feature-reuse points`);
  const int = (key: "pool" | "batch" | "iterations" | "validation" | "seed", fallback: number, min: number) => {
    const v = options[key] ?? fallback;
    if (!(Number.isInteger(v) && v >= min)) throw argumentError(fn, `${key} must be an integer >= ${min}, got ${String(v)}`);
    return v;
  };
  const pool = int("pool", 16, 1);
  const batch = int("batch", 2, 1);
  if (batch > pool) throw argumentError(fn, `batch (${batch}) must not exceed pool (${pool})`);
  const num = (key: "lr" | "penalty", fallback: number) => {
    const v = options[key] ?? fallback;
    if (!(Number.isFinite(v) && v > 0)) throw argumentError(fn, `${key} must be a number > 0, got ${String(v)}`);
    return v;
  };
  const init = options.init ?? "search";
  if (init !== "search") {
    const list = init?.keyframes;
    if (!Array.isArray(list) || !list.includes(0)) throw argumentError(fn, "init must be \"search\" or { keyframes (including 0), skips? }");
  }
  return {
    ...options, init, points, jumps: options.jumps ?? true, pool, batch, iterations: int("iterations", 80, 1), lr: num("lr", 0.05),
    penalty: num("penalty", 1e-3), validation: int("validation", 32, 1), seed: int("seed", 0, 0),
  };
}
