// Distribution-matching distillation, the loop SiD and DMD share (METHODS.md §1(c), §2(c)): a one-step (or
// few-step) generator G and a fake-score network ψ, both initialized from the teacher; each iteration takes
// `fakeUpdates` ψ steps (denoising score matching on detached generator samples), then one G step with the
// method's generator loss, then updates G's EMA (what is evaluated and returned). Adam with NaN/Inf gradient
// sanitizing for both, per-sample NaN masking in the losses, atomic checkpoints with exact resume, progress,
// evaluation of the EMA generator, abort.
import { mkdirSync } from "node:fs";
import { isGradEnabled, noGrad } from "../autograd";
import { argumentError, FastdiffError } from "../errors";
import { scope } from "../memory";
import type { Denoiser } from "../models/denoiser";
import { NetworkDenoiser } from "../models/network-denoiser";
import { Adam, EMA } from "../optim";
import * as ops from "../ops";
import { Generator } from "../random";
import type { Tensor } from "../tensor";
import {
  hasCheckpoint, isStreamState, parseCheckpointState, readCheckpoint, writeCheckpoint, type CheckpointPart,
} from "../train/checkpoint";
import { denoisingLoss, type NoiseLevels } from "../train/losses";
import { cloneNetwork, Student, type StudentSchedule } from "./student";

export interface MatchingOptions {
  iterations: number;
  /** Generator samples per step. Default 64. */
  batchSize?: number;
  /** Adam learning rate of G (and of ψ unless `lrFake`). */
  lr?: number;
  lrFake?: number;
  /** Adam betas of G / ψ. Default [0, 0.999] for both (SiD). */
  betas?: [number, number];
  fakeBetas?: [number, number];
  /** Global-norm gradient clipping of both networks (0: off). */
  maxGradNorm?: number;
  /** EMA of G: half-life in images and EDM's ramp (fraction of images seen). Default 500k, 0.05. */
  emaHalfLifeImages?: number;
  emaRampUp?: number;
  /** The network G and ψ start from (default: the teacher, which must then be a NetworkDenoiser). */
  init?: NetworkDenoiser;
  /** Class probabilities for the generator's labels (default uniform over the teacher's classes). */
  classProbabilities?: readonly number[];
  seed?: number;
  /** Fake-score steps per generator step (DMD2's two-time-scale ratio). */
  fakeUpdates?: number;
  checkpointDir?: string;
  /** Iterations between checkpoints (0: only at the end and on abort). */
  checkpointEvery?: number;
  resume?: boolean;
  onProgress?: (p: MatchingProgress) => void;
  progressEvery?: number;
  /** Scores the EMA generator every `every` iterations (and at the end); results go to onProgress. */
  evaluate?: { every: number; run: (student: Student) => Promise<Record<string, number>> };
  signal?: AbortSignal;
  /** Consecutive non-finite generator losses before ERR_NUMERIC. Default 10. */
  maxNonFinite?: number;
}

export interface MatchingProgress {
  iteration: number;
  iterations: number;
  lossGenerator: number;
  lossFake: number;
  /** Samples masked out of this step's generator loss for non-finite values. */
  masked: number;
  imagesPerSecond: number;
  etaSeconds: number;
  evaluation?: Record<string, number>;
}

export interface MatchingResult {
  /** The EMA generator as a Student (the caller owns it). */
  student: Student;
  lossesGenerator: number[];
  lossesFake: number[];
  evaluations: { iteration: number; values: Record<string, number> }[];
  startIteration: number;
  seconds: number;
}

/** What a method contributes to the shared loop. */
export interface MatchingMethod {
  name: string;
  /** σ the generator is evaluated at (one step). */
  sigmaInit: number;
  /** Noise levels of the fake network's denoising loss. */
  fakeLevels(batch: number, generator: Generator): NoiseLevels;
  /** The generator loss (a scalar on the tape, gradients reaching G) and how many samples it masked. */
  generatorLoss(step: GeneratorStep): { loss: Tensor; masked: Tensor | null };
  /** Options that must not change across a resume (added to the loop's own). */
  fixed: Record<string, unknown>;
}

export interface GeneratorStep {
  teacher: Denoiser;
  fake: NetworkDenoiser;
  /** G's samples, on the tape. */
  xg: Tensor;
  labels: number[] | null;
  generator: Generator;
  /** G on other unit noise (on the tape): x0 = G(σ_init·z; σ_init, c). */
  generate: (z: Tensor, labels: number[] | null) => Tensor;
}

const STATE_KEY = "fastdiff_distill_state";

interface DistillState {
  iteration: number;
  images: number;
  generator: { seed: string; offset: string };
  dropoutG: { seed: string; offset: string };
  dropoutFake: { seed: string; offset: string };
  adamSteps: { generator: number; fake: number };
  emaUpdates: number;
  evaluations: { iteration: number; values: Record<string, number> }[];
  fixed: Record<string, unknown>;
}

export async function distillMatching(teacher: Denoiser, method: MatchingMethod, options: MatchingOptions): Promise<MatchingResult> {
  const op = `distill${method.name}`;
  const o = validate(op, teacher, options);
  const init = o.init;
  const G = cloneNetwork(init.network);
  const fakeNet = cloneNetwork(init.network);
  G.labelDropout = false; // train mode keeps dropout but never swaps the labels the loss scores against
  fakeNet.labelDropout = false;
  const gDen = new NetworkDenoiser(G, init.parameterization, { sampleShape: init.sampleShape });
  const fake = new NetworkDenoiser(fakeNet, init.parameterization, { sampleShape: init.sampleShape });
  const teacherNet = teacher instanceof NetworkDenoiser ? teacher.network : null;
  const teacherFlags = teacherNet?.parameters().map((p) => p.requiresGrad) ?? [];
  teacherNet?.requiresGrad(false);
  const adamG = new Adam(G.parameters(), { lr: o.lr, betas: o.betas, maxGradNorm: o.maxGradNorm, sanitize: true });
  const adamF = new Adam(fakeNet.parameters(), { lr: o.lrFake, betas: o.fakeBetas, maxGradNorm: o.maxGradNorm, sanitize: true });
  const ema = new EMA(G.parameters(), { halfLife: o.emaHalfLifeImages / o.batchSize, ...(o.emaRampUp > 0 ? { rampUp: o.emaRampUp } : {}) });
  // The student that is evaluated and returned holds the EMA weights.
  const schedule: StudentSchedule = { sigmas: [method.sigmaInit], between: "renoise" };
  const student = Student.fromTeacher(init, schedule, { method: method.name.toLowerCase() });
  const generator = new Generator(o.seed * 3 + 1);
  G.dropoutGenerator = new Generator(o.seed * 3 + 2);
  fakeNet.dropoutGenerator = new Generator(o.seed * 3 + 3);
  const fixed = { method: method.name, batchSize: o.batchSize, seed: o.seed, fakeUpdates: o.fakeUpdates, kind: G.kind, config: G.config, ...method.fixed };
  let state: DistillState = {
    iteration: 0, images: 0, generator: generator.state(), dropoutG: G.dropoutGenerator.state(), dropoutFake: fakeNet.dropoutGenerator.state(),
    adamSteps: { generator: 0, fake: 0 }, emaUpdates: 0, evaluations: [], fixed,
  };
  const parts: CheckpointPart[] = [{ prefix: "generator.", net: G, adam: adamG, ema }, { prefix: "fake.", net: fakeNet, adam: adamF, ema: null }];
  const dir = o.checkpointDir;
  if (dir) mkdirSync(dir, { recursive: true });
  const save = async () => {
    if (!dir) return;
    state = {
      ...state, generator: generator.state(), dropoutG: G.dropoutGenerator.state(), dropoutFake: fakeNet.dropoutGenerator.state(),
      adamSteps: { generator: adamG.stepCount, fake: adamF.stepCount }, emaUpdates: ema.updates,
    };
    await writeCheckpoint(dir, parts, STATE_KEY, state);
  };
  const labelsFor = (n: number): number[] | null => (o.cumulative ? drawLabels(n, o.cumulative, generator) : null);
  try {
    if (o.resume && dir && hasCheckpoint(dir)) {
      state = await readCheckpoint(dir, parts, STATE_KEY, parseState, (s, prefix) => ({
        adamSteps: prefix === "fake." ? s.adamSteps.fake : s.adamSteps.generator, emaUpdates: s.emaUpdates,
      }), (saved) => {
        const changed = Object.keys(fixed).filter((k) => JSON.stringify(saved.fixed[k]) !== JSON.stringify(fixed[k as keyof typeof fixed]));
        if (changed.length > 0) throw argumentError(op, `cannot resume from ${dir}: ${changed.map((k) => `${k} was ${JSON.stringify(saved.fixed[k])}, now ${JSON.stringify(fixed[k as keyof typeof fixed])}`).join("; ")}`);
      });
      generator.restore(state.generator);
      G.dropoutGenerator = Generator.fromState(state.dropoutG);
      fakeNet.dropoutGenerator = Generator.fromState(state.dropoutFake);
    }
    const startIteration = state.iteration;
    const lossesGenerator: number[] = [];
    const lossesFake: number[] = [];
    const start = performance.now();
    let windowStart = start;
    let windowCount = 0;
    let nonFinite = 0;
    const shape = [o.batchSize, ...init.sampleShape];
    const evaluate = async () => {
      if (!o.evaluate) return undefined;
      ema.copyTo(student.network.parameters());
      const values = await o.evaluate.run(student);
      state.evaluations.push({ iteration: state.iteration, values });
      return values;
    };
    for (let it = state.iteration; it < o.iterations; ++it) {
      if (o.signal?.aborted) {
        await save();
        throw new FastdiffError("ERR_ABORTED", `${op}: aborted at iteration ${it}${dir ? ` (checkpoint in ${dir})` : ""}`);
      }
      // ---- fake-score steps: denoising score matching on sg(x_g) (G in eval mode, no graph) ----
      let lossFake = 0;
      for (let k = 0; k < o.fakeUpdates; ++k) {
        const t = scope(() => {
          const labels = labelsFor(o.batchSize);
          G.eval();
          const xg = noGrad(() => gDen.denoise(ops.mul(ops.randn(shape, { generator }), method.sigmaInit), method.sigmaInit, { classLabels: labels }));
          fakeNet.train();
          const levels = method.fakeLevels(o.batchSize, generator);
          const noise = ops.randn(shape, { generator });
          adamF.zeroGrad();
          const loss = denoisingLoss(fake, xg, levels, noise, labels);
          loss.backward();
          adamF.step();
          return loss;
        });
        lossFake = (await t.data())[0]!;
        t.dispose();
      }
      // ---- generator step: the method's loss, gradients into G only ----
      fakeNet.eval();
      fakeNet.requiresGrad(false);
      const step = scope(() => {
        G.train();
        const labels = labelsFor(o.batchSize);
        const generate = (z: Tensor, c: number[] | null) => gDen.denoise(ops.mul(z, method.sigmaInit), method.sigmaInit, { classLabels: c });
        const xg = generate(ops.randn(shape, { generator }), labels);
        adamG.zeroGrad();
        const { loss, masked } = method.generatorLoss({ teacher, fake, xg, labels, generator, generate });
        loss.backward();
        return { loss, masked };
      });
      fakeNet.requiresGrad(true);
      const lossGenerator = (await step.loss.data())[0]!;
      const masked = step.masked ? step.masked.dataSync().reduce((n, v) => n + (v === 0 ? 1 : 0), 0) : 0;
      step.loss.dispose();
      step.masked?.dispose();
      if (!Number.isFinite(lossGenerator) || masked === o.batchSize) {
        adamG.zeroGrad();
        nonFinite += 1;
        if (nonFinite > o.maxNonFinite) throw new FastdiffError("ERR_NUMERIC", `${op}: generator loss is ${lossGenerator} (${masked} of ${o.batchSize} samples non-finite) for ${nonFinite} consecutive iterations (at ${it + 1}); lower the learning rate`);
      } else {
        nonFinite = 0;
        adamG.step();
        ema.update();
      }
      lossesGenerator.push(lossGenerator);
      lossesFake.push(lossFake);
      state.iteration = it + 1;
      state.images += o.batchSize;
      windowCount += 1;
      const done = it + 1 === o.iterations;
      const evaluation = o.evaluate && ((it + 1) % o.evaluate.every === 0 || done) ? await evaluate() : undefined;
      if (o.onProgress && ((it + 1) % o.progressEvery === 0 || done || evaluation)) {
        const now = performance.now();
        const rate = (windowCount * o.batchSize) / Math.max(1e-9, (now - windowStart) / 1000);
        o.onProgress({
          iteration: it + 1, iterations: o.iterations, lossGenerator, lossFake, masked, imagesPerSecond: rate,
          etaSeconds: ((o.iterations - it - 1) * o.batchSize) / rate, ...(evaluation ? { evaluation } : {}),
        });
        windowStart = now;
        windowCount = 0;
      }
      if (dir && ((o.checkpointEvery > 0 && (it + 1) % o.checkpointEvery === 0) || done)) await save();
    }
    ema.copyTo(student.network.parameters());
    student.info = { ...student.info, iterations: state.iteration, images: state.images, options: publicOptions(o) };
    const last = state.evaluations.at(-1);
    if (last) student.info.quality = last.values;
    return { student, lossesGenerator, lossesFake, evaluations: state.evaluations, startIteration, seconds: (performance.now() - start) / 1000 };
  } catch (err) {
    student.dispose();
    throw err;
  } finally {
    for (const a of [adamG, adamF]) {
      a.zeroGrad();
      a.dispose();
    }
    ema.dispose();
    G.dispose();
    fakeNet.dispose();
    teacherNet?.parameters().forEach((p, i) => (p.requiresGrad = teacherFlags[i]!));
  }
}

// ---------------------------------------------------------------------------------------------------

/** Labels drawn from a cumulative distribution with the run's generator. */
function drawLabels(n: number, cumulative: number[], generator: Generator): number[] {
  const u = ops.randValues(n, { generator });
  return Array.from(u, (v) => {
    let k = 0;
    while (k < cumulative.length - 1 && v >= cumulative[k]!) ++k;
    return k;
  });
}

function parseState(path: string, raw: string): DistillState {
  return parseCheckpointState<DistillState>(path, raw, "distillation", (s) =>
    Number.isInteger(s.iteration) && Number.isInteger(s.images) && isStreamState(s.generator) && isStreamState(s.dropoutG)
    && isStreamState(s.dropoutFake) && typeof s.adamSteps === "object" && s.adamSteps !== null && Array.isArray(s.evaluations)
    && typeof s.fixed === "object" && s.fixed !== null);
}

type Resolved = Required<Omit<MatchingOptions, "init" | "classProbabilities" | "checkpointDir" | "onProgress" | "evaluate" | "signal">> &
  Pick<MatchingOptions, "checkpointDir" | "onProgress" | "evaluate" | "signal"> & { init: NetworkDenoiser; cumulative: number[] | null };

function validate(op: string, teacher: Denoiser, o: MatchingOptions): Resolved {
  if (!teacher || typeof teacher.denoise !== "function") throw argumentError(op, "the teacher must be a Denoiser");
  if (isGradEnabled() === false) throw argumentError(op, "gradients are disabled (called inside noGrad)");
  const int = (v: number | undefined, name: string, fallback: number, min: number) => {
    const x = v ?? fallback;
    if (!(Number.isInteger(x) && x >= min)) throw argumentError(op, `${name} must be an integer >= ${min}, got ${String(x)}`);
    return x;
  };
  const positive = (v: number | undefined, name: string, fallback: number, allowZero = false) => {
    const x = v ?? fallback;
    if (!(Number.isFinite(x) && (allowZero ? x >= 0 : x > 0))) throw argumentError(op, `${name} must be a finite number ${allowZero ? ">= 0" : "> 0"}, got ${String(x)}`);
    return x;
  };
  const init = o.init ?? (teacher instanceof NetworkDenoiser ? teacher : null);
  if (!init) throw argumentError(op, "the teacher has no network to start from: pass options.init (a NetworkDenoiser of the teacher's sample shape)");
  if (init.sampleShape.join() !== teacher.sampleShape.join()) {
    throw argumentError(op, `init has samples of shape ${JSON.stringify(init.sampleShape)}, the teacher ${JSON.stringify(teacher.sampleShape)}`);
  }
  const classes = teacher.numClasses;
  if (init.numClasses !== classes) throw argumentError(op, `init embeds ${init.numClasses} classes, the teacher ${classes}`);
  let cumulative: number[] | null = null;
  if (classes > 0) {
    const probs = o.classProbabilities ?? new Array<number>(classes).fill(1 / classes);
    if (probs.length !== classes || probs.some((p) => !(p >= 0)) || !(probs.reduce((a, b) => a + b, 0) > 0)) {
      throw argumentError(op, `classProbabilities must be ${classes} non-negative numbers with a positive sum`);
    }
    const total = probs.reduce((a, b) => a + b, 0);
    let acc = 0;
    cumulative = probs.map((p) => (acc += p / total));
  } else if (o.classProbabilities) throw argumentError(op, "classProbabilities given, but the teacher is unconditional");
  const betas = (b: [number, number] | undefined, name: string): [number, number] => {
    const v = b ?? [0, 0.999];
    if (!(v.length === 2 && v[0] >= 0 && v[0] < 1 && v[1] >= 0 && v[1] < 1)) throw argumentError(op, `${name} must be two numbers in [0, 1)`);
    return v;
  };
  const lr = positive(o.lr, "lr", 1e-5);
  const evaluate = o.evaluate;
  if (evaluate && !(Number.isInteger(evaluate.every) && evaluate.every >= 1 && typeof evaluate.run === "function")) {
    throw argumentError(op, "evaluate must be { every: a positive integer, run: (student) => Promise<metrics> }");
  }
  const iterations = int(o.iterations, "iterations", 0, 1);
  return {
    iterations, batchSize: int(o.batchSize, "batchSize", 64, 1), lr, lrFake: positive(o.lrFake, "lrFake", lr),
    betas: betas(o.betas, "betas"), fakeBetas: betas(o.fakeBetas, "fakeBetas"), maxGradNorm: positive(o.maxGradNorm, "maxGradNorm", 0, true),
    emaHalfLifeImages: positive(o.emaHalfLifeImages, "emaHalfLifeImages", 500_000), emaRampUp: positive(o.emaRampUp, "emaRampUp", 0.05, true),
    init, cumulative, seed: int(o.seed, "seed", 0, 0), fakeUpdates: int(o.fakeUpdates, "fakeUpdates", 1, 1),
    checkpointDir: o.checkpointDir, checkpointEvery: int(o.checkpointEvery, "checkpointEvery", 0, 0), resume: o.resume ?? false,
    onProgress: o.onProgress, progressEvery: int(o.progressEvery, "progressEvery", Math.max(1, Math.floor(iterations / 100)), 1),
    evaluate, signal: o.signal, maxNonFinite: int(o.maxNonFinite, "maxNonFinite", 10, 0),
  };
}

function publicOptions(o: Resolved): Record<string, unknown> {
  return {
    iterations: o.iterations, batchSize: o.batchSize, lr: o.lr, lrFake: o.lrFake, betas: o.betas, fakeBetas: o.fakeBetas,
    maxGradNorm: o.maxGradNorm, emaHalfLifeImages: o.emaHalfLifeImages, emaRampUp: o.emaRampUp, seed: o.seed, fakeUpdates: o.fakeUpdates,
  };
}
