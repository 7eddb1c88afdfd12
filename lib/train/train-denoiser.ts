// trainDenoiser: the EDM training loop (Karras et al. 2022, §5 and Appendix F; METHODS.md §0) — log-normal σ,
// λ(σ)-weighted x0 loss, Adam with a linear learning-rate warm-up, EMA with a half-life in images and EDM's
// ramp, global-norm clipping, dropout, label dropout for classifier-free guidance — or the DDPM ε-loss, with
// atomic checkpoints from which a resumed run continues bit for bit.
import { mkdirSync } from "node:fs";
import { BatchLoader, type Dataset } from "../data/dataset";
import { FastdiffError, argumentError } from "../errors";
import { scope } from "../memory";
import type { NetworkDenoiser } from "../models/network-denoiser";
import * as ops from "../ops";
import { Adam, EMA } from "../optim";
import { Generator } from "../random";
import { hasCheckpoint, loadCheckpoint, saveCheckpoint, type TrainState } from "./checkpoint";
import { denoisingLoss, noiseLevels, type EdmLossOptions, type LossKind } from "./losses";

export interface TrainProgress {
  iteration: number;
  iterations: number;
  /** This iteration's loss. */
  loss: number;
  /** Mean loss since the previous event. */
  meanLoss: number;
  lr: number;
  gradNorm: number;
  imagesPerSecond: number;
  /** Seconds left at the current rate. */
  etaSeconds: number;
  epoch: number;
}

export interface TrainOptions extends EdmLossOptions {
  /** Total iterations (a resumed run continues up to this number). */
  iterations: number;
  batchSize?: number;
  /** "edm" (default) or "ddpm" (ε-loss; needs a DDPM-parameterized model). */
  loss?: LossKind;
  /** Adam learning rate [1e-3] and betas [(0.9, 0.999)]. */
  lr?: number;
  betas?: [number, number];
  /** Iterations of linear learning-rate warm-up [0]. */
  warmup?: number;
  /** EMA half-life in images [500,000, EDM's]; 0 disables the EMA. With the ramp (below) a short run's
   * effective half-life is rampUp × images seen. */
  emaHalfLifeImages?: number;
  /** EDM's EMA ramp: half-life ≤ rampUp × images seen [0.05]; 0 disables the ramp. */
  emaRampUp?: number;
  /** Global gradient-norm clip [0: off]. */
  maxGradNorm?: number;
  /** Probability of replacing a label by the null class (classifier-free guidance). Networks that drop labels
   * themselves in train mode (DiT's class_dropout_prob) use their own; default 0.1 when the network has a
   * null class, else 0. */
  labelDropout?: number;
  /** Seeds data order, noise and dropout [0]. */
  seed?: number;
  /** Checkpoint directory and period; with `resume`, a run continues from the checkpoint found there. The batch
   * size, loss, seed, label dropout, dataset and network config must match the checkpoint's (ERR_ARGUMENT
   * otherwise); with the other options unchanged too, the resumed run equals the uninterrupted one bit for bit
   * (changing lr, warm-up, EMA or clipping on resume is allowed, and then it does not). */
  checkpointDir?: string;
  checkpointEvery?: number;
  resume?: boolean;
  /** Called every `progressEvery` iterations [max(1, iterations/100)] and at the end. */
  onProgress?: (p: TrainProgress) => void;
  progressEvery?: number;
  /** Stops between iterations with ERR_ABORTED after writing a checkpoint (when a directory is set). */
  signal?: AbortSignal;
  /** Consecutive non-finite losses tolerated (the step is skipped) before ERR_NUMERIC [10]. */
  maxNonFinite?: number;
}

export interface TrainResult {
  /** Loss of every iteration run in this call (a resumed run: from the resume point on). */
  losses: number[];
  /** The iteration this call started at (0, or the checkpoint's). */
  startIteration: number;
  iterations: number;
  seconds: number;
  /** The averaged parameters (null when disabled); `ema.copyTo()` puts them into the model. Owned by the
   * caller: dispose it when done. */
  ema: EMA | null;
}

/** Trains `model` (its network's parameters) on `data` to minimize the denoising loss. */
export async function trainDenoiser(model: NetworkDenoiser, data: Dataset, options: TrainOptions): Promise<TrainResult> {
  const op = "trainDenoiser";
  const net = model.network;
  const iterations = checkInt(op, options.iterations, "iterations", 1);
  const batchSize = checkInt(op, options.batchSize ?? 64, "batchSize", 1);
  const kind: LossKind = options.loss ?? "edm";
  if (kind !== "edm" && kind !== "ddpm") throw argumentError(op, `loss must be "edm" or "ddpm", got ${JSON.stringify(kind)}`);
  const seed = checkInt(op, options.seed ?? 0, "seed", 0);
  if (kind === "ddpm" && !model.coefficients.discreteSigmas)
    throw argumentError(op, `the DDPM ε-loss needs a DDPM-parameterized model, this one is '${model.parameterization.type}'`);
  const warmup = checkInt(op, options.warmup ?? 0, "warmup", 0);
  const lr = options.lr ?? 1e-3;
  const halfLife = options.emaHalfLifeImages ?? 500_000;
  const rampUp = options.emaRampUp ?? 0.05;
  if (!(halfLife >= 0) || !(rampUp >= 0)) throw argumentError(op, "emaHalfLifeImages and emaRampUp must be non-negative");
  const labelDropout = resolveLabelDropout(op, model, data, options.labelDropout);
  const conditional = net.numClasses > 0;
  if (conditional && data.numClasses === 0) throw argumentError(op, `the network is class-conditional (${net.numClasses} classes) but dataset '${data.name}' has no labels`);
  if (conditional && data.numClasses > net.numClasses) throw argumentError(op, `dataset '${data.name}' has ${data.numClasses} classes, the network embeds ${net.numClasses}`);
  checkShape(op, model, data);
  const p = model.parameterization;
  const edm = { ...options, sigmaData: options.sigmaData ?? (p.type === "edm" ? p.sigmaData : 0.5) };
  const every = options.checkpointEvery ?? 0;
  if (options.checkpointDir) mkdirSync(options.checkpointDir, { recursive: true });

  // Before the optimizer and EMA exist: a batch size larger than the dataset throws here, with nothing to free.
  const loader = new BatchLoader(data, { batchSize, seed, dropLast: true });
  const params = net.parameters();
  const adam = new Adam(params, { lr, betas: options.betas ?? [0.9, 0.999], maxGradNorm: options.maxGradNorm ?? 0 });
  // EDM: β = 0.5^(B/h_img) per step, h_img ≤ ramp·images ⇔ in updates: half-life h_img/B, ramp `rampUp` per update.
  const ema = halfLife > 0 ? new EMA(params, { halfLife: halfLife / batchSize, ...(rampUp > 0 ? { rampUp } : {}) }) : null;
  const generator = new Generator(seed * 2 + 1);
  net.dropoutGenerator = new Generator(seed * 2 + 2);
  const fixed = { batchSize, loss: kind, seed, labelDropout, dataset: data.name, datasetSize: data.size, kind: net.kind, config: net.config };
  let state: TrainState = {
    iteration: 0, loader: loader.position, generator: generator.state(), dropout: net.dropoutGenerator.state(),
    adamSteps: 0, emaUpdates: 0, images: 0, fixed,
  };
  try {
    if (options.resume && options.checkpointDir && hasCheckpoint(options.checkpointDir)) {
      state = await loadCheckpoint(options.checkpointDir, net, adam, ema, (saved) => {
        const changed = Object.keys(fixed).filter((k) => JSON.stringify(saved.fixed[k]) !== JSON.stringify(fixed[k as keyof typeof fixed]));
        if (changed.length > 0)
          throw argumentError(op, `cannot resume from ${options.checkpointDir}: ${changed.map((k) => `${k} was ${JSON.stringify(saved.fixed[k])}, now ${JSON.stringify(fixed[k as keyof typeof fixed])}`).join("; ")}`);
      });
      loader.position = { ...state.loader };
      generator.restore(state.generator);
      net.dropoutGenerator = Generator.fromState(state.dropout);
    }
    const startIteration = state.iteration;
    const save = async () => {
      if (!options.checkpointDir) return;
      state = { ...state, loader: { ...loader.position }, generator: generator.state(), dropout: net.dropoutGenerator.state(), adamSteps: adam.stepCount, emaUpdates: ema?.updates ?? 0 };
      await saveCheckpoint(options.checkpointDir, net, adam, ema, state);
    };

    const losses: number[] = [];
    const progressEvery = options.progressEvery ?? Math.max(1, Math.floor(iterations / 100));
    const maxNonFinite = options.maxNonFinite ?? 10;
    let nonFinite = 0;
    let windowLoss = 0;
    let windowCount = 0;
    let windowStart = performance.now();
    const start = windowStart;
    net.train();
    for (let it = state.iteration; it < iterations; ++it) {
      if (options.signal?.aborted) {
        await save();
        throw new FastdiffError("ERR_ABORTED", `${op}: aborted at iteration ${it}${options.checkpointDir ? ` (checkpoint in ${options.checkpointDir})` : ""}`);
      }
      const stepLr = warmup > 0 ? lr * Math.min(1, (it + 1) / warmup) : lr;
      const lossTensor = scope(() => {
        const batch = loader.next();
        const levels = noiseLevels(kind, batchSize, generator, model, edm);
        const noise = ops.randn(batch.x.shape, { generator });
        const labels = conditional ? dropLabels(batch.labels!, labelDropout, net.nullClass, generator) : null;
        adam.zeroGrad();
        const loss = denoisingLoss(model, batch.x, levels, noise, labels);
        loss.backward();
        return loss;
      });
      const loss = (await lossTensor.data())[0]!;
      lossTensor.dispose();
      if (!Number.isFinite(loss)) {
        // Skip the step (the gradients are garbage); a run that keeps diverging stops with a clear error.
        adam.zeroGrad();
        nonFinite += 1;
        if (nonFinite > maxNonFinite) throw new FastdiffError("ERR_NUMERIC", `${op}: loss is ${loss} for ${nonFinite} consecutive iterations (at ${it + 1}); lower the learning rate or clip gradients (maxGradNorm)`);
      } else {
        nonFinite = 0;
        adam.step(stepLr);
        ema?.update();
      }
      losses.push(loss);
      state.iteration = it + 1;
      state.images += batchSize;
      windowLoss += loss;
      windowCount += 1;
      const done = it + 1 === iterations;
      if (options.onProgress && ((it + 1) % progressEvery === 0 || done)) {
        const now = performance.now();
        const rate = (windowCount * batchSize) / Math.max(1e-9, (now - windowStart) / 1000);
        options.onProgress({
          iteration: it + 1, iterations, loss, meanLoss: windowLoss / windowCount, lr: stepLr, gradNorm: adam.lastStats().gradNorm,
          imagesPerSecond: rate, etaSeconds: ((iterations - it - 1) * batchSize) / rate, epoch: loader.position.epoch,
        });
        windowLoss = 0;
        windowCount = 0;
        windowStart = now;
      }
      if (every > 0 && ((it + 1) % every === 0 || done)) await save();
    }
    net.eval();
    adam.zeroGrad(); // the gradients are the run's scratch: do not leave a model-sized copy on the parameters
    adam.dispose();
    return { losses, startIteration, iterations, seconds: (performance.now() - start) / 1000, ema };
  } catch (err) {
    net.eval();
    adam.zeroGrad();
    adam.dispose();
    ema?.dispose();
    throw err;
  }
}

/** Labels with each replaced by the null class with probability p (Ho & Salimans 2022, Algorithm 1). */
function dropLabels(labels: Int32Array, p: number, nullClass: number | undefined, generator: Generator): Int32Array {
  if (p <= 0 || nullClass === undefined) return labels;
  const u = ops.randValues(labels.length, { generator });
  return labels.map((c, i) => (u[i]! < p ? nullClass : c));
}

function resolveLabelDropout(op: string, model: NetworkDenoiser, data: Dataset, given: number | undefined): number {
  const net = model.network;
  if (given !== undefined && !(given >= 0 && given < 1)) throw argumentError(op, `labelDropout must be in [0, 1), got ${given}`);
  const builtIn = Number(net.config["class_dropout_prob"] ?? 0);
  if (builtIn > 0) {
    if (given !== undefined && given !== builtIn)
      throw argumentError(op, `${net.kind} drops labels itself (config class_dropout_prob = ${builtIn}); labelDropout ${given} would conflict — set it in the config instead`);
    return 0; // the network does it, from its dropout generator
  }
  if (given !== undefined && given > 0 && net.nullClass === undefined)
    throw argumentError(op, `labelDropout needs a null class: ${net.kind} has none (UNet: num_class_embeds = classes + 1 and null_class = classes)`);
  if (data.numClasses === 0) return 0;
  return given ?? (net.nullClass !== undefined ? 0.1 : 0);
}

function checkShape(op: string, model: NetworkDenoiser, data: Dataset): void {
  const want = model.sampleShape;
  if (want.length > 0 && want.join(",") !== data.sampleShape.join(","))
    throw argumentError(op, `dataset '${data.name}' has samples of shape ${JSON.stringify(data.sampleShape)}, the model expects ${JSON.stringify(want)}`);
}

function checkInt(op: string, v: number, name: string, min: number): number {
  if (!Number.isInteger(v) || v < min) throw argumentError(op, `${name} must be an integer ≥ ${min}, got ${String(v)}`);
  return v;
}

