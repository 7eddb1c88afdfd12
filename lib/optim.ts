// Optimizers and parameter averaging, each step one fused native kernel over all
// parameters: NaN/Inf sanitizing and global-norm clipping happen on the stream.
import { noGrad } from "./autograd";
import { argumentError, FastdiffError } from "./errors";
import { native } from "./native";
import { copy, zeros } from "./ops";
import { leaveScopes } from "./memory";
import { Tensor } from "./tensor";

export interface StepStats {
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** Factor the gradients were scaled by (1 when not clipped). */
  clipScale: number;
  /** NaN/Inf gradient entries replaced by 0 (when sanitizing). */
  nonFinite: number;
}

export interface CommonOptions {
  /** Clip the global gradient norm to this value (0 = off). */
  maxGradNorm?: number;
  /** Replace NaN/Inf gradient entries by 0 before the step. */
  sanitize?: boolean;
}

function checkParams(op: string, params: Tensor[]): void {
  if (!Array.isArray(params) || params.length === 0) throw argumentError(op, "expected a non-empty array of parameter tensors");
  params.forEach((p, i) => {
    if (!(p instanceof Tensor)) throw argumentError(op, `params[${i}] is not a Tensor`);
    if (p.device !== params[0]!.device)
      throw new FastdiffError("ERR_DEVICE", `${op}: params[${i}] is on ${p.device} but params[0] is on ${params[0]!.device} (one optimizer per device)`);
  });
}
function positive(op: string, v: number, name: string, allowZero = false): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || (!allowZero && v === 0))
    throw argumentError(op, `${name} must be a ${allowZero ? "non-negative" : "positive"} finite number, got ${String(v)}`);
  return v;
}

abstract class Optimizer {
  readonly params: Tensor[];
  protected readonly stats: Tensor;
  protected readonly maxGradNorm: number;
  protected readonly sanitize: boolean;
  constructor(op: string, params: Tensor[], options: CommonOptions) {
    checkParams(op, params);
    this.params = params;
    this.maxGradNorm = positive(op, options.maxGradNorm ?? 0, "maxGradNorm", true);
    this.sanitize = options.sanitize ?? false;
    this.stats = zeros([3], { device: params[0]?.device ?? "cpu" });
    leaveScopes(this.stats); // optimizer state is owned (and disposed) by the optimizer, never by a scope
  }
  /** Clears every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }
  /** Norm, clip scale and non-finite count of the last step (synchronizes). */
  lastStats(): StepStats {
    const [gradNorm, clipScale, nonFinite] = this.stats.dataSync();
    return { gradNorm: gradNorm!, clipScale: clipScale!, nonFinite: nonFinite! };
  }
  abstract step(): void;
}


export interface AdamOptions extends CommonOptions {
  lr?: number;
  /** [β1, β2]; β1 = 0 is allowed (SiD, DMD). */
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** Adam (L2 weight decay added to the gradient). */
export class Adam extends Optimizer {
  readonly lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  /** Steps taken (bias correction uses it). */
  stepCount = 0;
  readonly m: Tensor[];
  readonly v: Tensor[];
  protected decoupled = false;
  constructor(params: Tensor[], options: AdamOptions = {}, op = "Adam") {
    super(op, params, options);
    this.lr = positive(op, options.lr ?? 1e-3, "lr", true);
    const [b1, b2] = options.betas ?? [0.9, 0.999];
    if (!(b1 >= 0 && b1 < 1 && b2 >= 0 && b2 < 1)) throw argumentError(op, `betas must be in [0, 1), got [${b1}, ${b2}]`);
    this.betas = [b1, b2];
    this.eps = positive(op, options.eps ?? 1e-8, "eps");
    this.weightDecay = positive(op, options.weightDecay ?? 0, "weightDecay", true);
    this.m = params.map((p) => zeros(p.shape, { device: p.device }));
    this.v = params.map((p) => zeros(p.shape, { device: p.device }));
    for (const t of [...this.m, ...this.v]) leaveScopes(t);
  }
  step(lr = this.lr): void {
    this.stepCount += 1;
    native.adamStep(
      this.params.map((p) => p.handle), this.m.map((t) => t.handle), this.v.map((t) => t.handle), lr,
      this.betas[0], this.betas[1], this.eps, this.weightDecay, this.decoupled, this.stepCount, this.maxGradNorm,
      this.sanitize, this.stats.handle,
    );
  }
  dispose(): void {
    for (const t of [...this.m, ...this.v, this.stats]) t.dispose();
  }
}

/** AdamW: weight decay decoupled from the adaptive step (p -= lr·wd·p). */
export class AdamW extends Adam {
  constructor(params: Tensor[], options: AdamOptions = {}) {
    super(params, { weightDecay: 1e-2, ...options }, "AdamW");
    this.decoupled = true;
  }
}

export interface SGDOptions extends CommonOptions {
  lr: number;
  momentum?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

export class SGD extends Optimizer {
  readonly lr: number;
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  readonly buffers: Tensor[];
  constructor(params: Tensor[], options: SGDOptions) {
    super("SGD", params, options);
    this.lr = positive("SGD", options.lr, "lr", true);
    this.momentum = positive("SGD", options.momentum ?? 0, "momentum", true);
    this.weightDecay = positive("SGD", options.weightDecay ?? 0, "weightDecay", true);
    this.nesterov = options.nesterov ?? false;
    this.buffers = this.momentum > 0 ? params.map((p) => zeros(p.shape, { device: p.device })) : [];
    for (const t of this.buffers) leaveScopes(t);
  }
  step(lr = this.lr): void {
    native.sgdStep(
      this.params.map((p) => p.handle), this.buffers.map((t) => t.handle), lr, this.momentum, this.weightDecay,
      this.nesterov, this.maxGradNorm, this.sanitize, this.stats.handle,
    );
  }
  dispose(): void {
    for (const t of [...this.buffers, this.stats]) t.dispose();
  }
}

export interface EMAOptions {
  /** Fixed decay per update. */
  decay?: number;
  /** Or: half-life in updates (decay = 0.5^(1/halfLife)). */
  halfLife?: number;
  /** Ramp the half-life up as halfLife·min(1, updates·rampUp) (EDM-style warm-up); off by default. */
  rampUp?: number;
}

/** Exponential moving average of parameters: avg ← decay·avg + (1 − decay)·param. */
export class EMA {
  readonly averages: Tensor[];
  readonly params: Tensor[];
  updates = 0;
  private readonly options: EMAOptions;
  constructor(params: Tensor[], options: EMAOptions = {}) {
    checkParams("EMA", params);
    if ((options.decay === undefined) === (options.halfLife === undefined))
      throw argumentError("EMA", "give exactly one of decay or halfLife");
    if (options.decay !== undefined && !(options.decay >= 0 && options.decay <= 1)) throw argumentError("EMA", `decay must be in [0, 1], got ${options.decay}`);
    if (options.halfLife !== undefined) positive("EMA", options.halfLife, "halfLife");
    this.params = params;
    this.options = options;
    this.averages = noGrad(() => params.map((p) => p.clone())); // no detached views left for the GC
    for (const t of this.averages) leaveScopes(t);
  }
  /** The decay used for the next update. */
  decay(): number {
    if (this.options.decay !== undefined) return this.options.decay;
    let half = this.options.halfLife!;
    if (this.options.rampUp !== undefined) half = Math.min(half, Math.max(1e-8, (this.updates + 1) * this.options.rampUp));
    return Math.pow(0.5, 1 / half);
  }
  update(): void {
    native.emaUpdate(this.averages.map((t) => t.handle), this.params.map((t) => t.handle), this.decay());
    this.updates += 1;
  }
  /** Copies the averages into `targets` (default: the tracked parameters). */
  copyTo(targets: Tensor[] = this.params): void {
    targets.forEach((t, i) => copy(t, this.averages[i]!));
  }
  dispose(): void {
    for (const t of this.averages) t.dispose();
  }
}

