// A network: a native module (UNet, DiT, MLP — binding/cpp/nn) whose parameters are
// ordinary Tensors, with a one-call forward that can hand out block features and
// store/reuse them through a FeatureCache. Saving and loading live in ./format.ts.
import { argumentError, FastdiffError } from "../errors";
import { leaveScopes, scope } from "../memory";
import { native, type NativeTensor } from "../native";
import { Generator } from "../random";
import { Tensor, type Device, type DeviceName } from "../tensor";
import * as ops from "../ops";
import { FeatureCache } from "./feature-cache";
import { saveNetwork, type SaveOptions } from "./format";

/** A network config: diffusers' config.json keys (snake_case), normalized with every default filled in. */
export type NetworkConfig = Record<string, unknown>;

/** Which points a forward stores or reuses: names or globs ('*' matches anything, dots included), or
 * `true` for the network's FRDiff points (`reusePoints()`). */
export type PointSelection = true | readonly string[];

export interface ForwardOptions {
  /** Class label per sample (networks with a class embedding). */
  classLabels?: ArrayLike<number> | null;
  /** Cache to store into / reuse from. */
  cache?: FeatureCache;
  store?: PointSelection;
  reuse?: PointSelection;
  /** Auto-FR's gate α (a one-element tensor, usually 0 or 1 with a straight-through gradient): every `reuse`
   * point is computed and blended with its cached value, A = A_prev + α·(A_fresh − A_prev), and the blend is
   * stored (differentiable in α and in the inputs; METHODS.md §6). */
  gate?: Tensor;
  /** Dropout randomness in train mode (default: the network's own generator). */
  generator?: Generator;
}

export interface FeatureOptions extends ForwardOptions {
  /** Points whose values to return (see `blocks()`). */
  features: readonly string[];
  /** Stop as soon as every requested feature is computed (the output is then null). */
  earlyExit?: boolean;
}

export interface ParameterInfo {
  name: string;
  shape: number[];
}

type Timestep = Tensor | number | ArrayLike<number>;

/** Builds a subclass instance from a normalized config and a native handle (one per network class). */
export interface NetworkClass {
  /** diffusers' `_class_name` (or "MLP"). */
  readonly kind: string;
  /** Fills defaults, accepts both diffusers key sets, rejects bad values (ERR_ARGUMENT). */
  normalizeConfig(raw: Record<string, unknown>): NetworkConfig;
  construct(config: NetworkConfig, handle: object): Network;
  /** Renames weights of older checkpoint layouts to the current names in place (diffusers does the same on load). */
  renameLegacyWeights?(weights: Map<string, Tensor>): void;
}

const registry = new Map<string, NetworkClass>();

/** Called once by each network module so `Network.load` can build any of them from its config. */
export function registerNetwork(cls: NetworkClass): void {
  registry.set(cls.kind, cls);
}

export function networkClass(kind: string, source = "network"): NetworkClass {
  const cls = registry.get(kind);
  if (!cls) {
    throw new FastdiffError("ERR_FORMAT", `${source}: unknown network class '${kind}' (known: ${[...registry.keys()].join(", ")})`);
  }
  return cls;
}

export abstract class Network {
  /** diffusers' class name ("UNet2DModel", "DiTTransformer2DModel") or "MLP". */
  readonly kind: string;
  /** The full, normalized config (what `save` writes to config.json). */
  readonly config: Readonly<NetworkConfig>;
  /** @internal */
  readonly handle: object;
  private readonly named: [string, Tensor][];
  private readonly info: { points: string[]; reusePoints: string[]; numClasses: number; nullClass?: number };
  private training = false;
  /** Built-in label dropout in train mode (DiT's class_dropout_prob). Distillation turns it off: its generator
   * and fake-score network must see the labels their samples are scored against. */
  labelDropout = true;
  private generator = new Generator(0);

  protected constructor(kind: string, config: NetworkConfig, handle: object) {
    this.kind = kind;
    this.config = Object.freeze({ ...config });
    this.handle = handle;
    this.named = native.networkParameters(handle).map(([n, t]) => {
      const p = new Tensor(t);
      leaveScopes(p); // owned by the network, not by an enclosing scope()
      return [n, p];
    });
    this.info = native.networkInfo(handle);
  }

  /** Parameter names and shapes for a config, without building the network. */
  static specs(kind: string, config: NetworkConfig): ParameterInfo[] {
    return native.networkSpecs(kind, config);
  }

  /** @internal Builds `cls` with loaded weights (checked against the config: ERR_FORMAT names what is wrong)
   * or, without weights, freshly initialized from `seed` (PyTorch's default init). */
  static build(cls: NetworkClass, config: NetworkConfig, weights: Map<string, Tensor> | null, seed = 0): Network {
    const list = weights ? [...weights.entries()] : null;
    const handle = native.networkCreate(cls.kind, config, list, seed);
    const net = cls.construct(config, handle);
    net.requiresGrad(true);
    return net;
  }

  /** Number of classes the network embeds (0: unconditional). */
  get numClasses(): number {
    return this.info.numClasses;
  }
  /** The label of the unconditional branch for guidance (DiT: numClasses), if the network has one. */
  get nullClass(): number | undefined {
    return this.info.nullClass;
  }
  /** Every named point in forward order: block outputs and the cache points inside them. */
  blocks(): string[] {
    return this.info.points.slice();
  }
  /** The points FRDiff caches by default (ResNet conv1 outputs and attention branches). */
  reusePoints(): string[] {
    return this.info.reusePoints.slice();
  }

  /** DeepCache's points: reusing them skips the deep part of the network and keeps `branch` + 1 shallow levels
   * fresh (UNet: the up block below the shallowest ones; DiT: the residuals of the middle blocks). */
  deepPoints(branch = 0): string[] {
    return native.networkDeepPoints(this.handle, branch);
  }

  /** (name, tensor) for every parameter, in module order. The tensors are the network's own. */
  namedParameters(): [string, Tensor][] {
    return this.named.map(([n, t]) => [n, t]);
  }
  parameters(): Tensor[] {
    return this.named.map(([, t]) => t);
  }
  parameterInfo(): ParameterInfo[] {
    return this.named.map(([name, t]) => ({ name, shape: t.shape }));
  }
  get numParameters(): number {
    return this.named.reduce((s, [, t]) => s + t.size, 0);
  }

  /** The device of the parameters ("cpu" or "cuda:N"). */
  get device(): Device {
    return this.named[0]?.[1].device ?? "cpu";
  }
  /** Moves every parameter (and its gradient) to `device` in place: tensors from parameters() follow. Returns
   * this. Optimizer state created before the move stays where it was, so move first, then build optimizers. */
  to(device: DeviceName): this {
    for (const [, t] of this.named) native.moveTo_(t.handle, device);
    return this;
  }

  /** Train mode: dropout is active. Returns this. */
  train(on = true): this {
    this.training = on;
    return this;
  }
  /** Eval mode (the default): dropout is the identity. Returns this. */
  eval(): this {
    return this.train(false);
  }
  get isTraining(): boolean {
    return this.training;
  }
  /** Freezes (false) or unfreezes every parameter. Gradients still flow through a frozen network to its input. */
  requiresGrad(flag: boolean): this {
    for (const [, t] of this.named) t.requiresGrad = flag;
    return this;
  }
  /** The generator train-mode dropout draws from (checkpoints save its state). */
  get dropoutGenerator(): Generator {
    return this.generator;
  }
  set dropoutGenerator(g: Generator) {
    this.generator = g;
  }
  /** Seeds the dropout randomness used in train mode. */
  manualSeed(seed: number | bigint): this {
    this.generator = new Generator(seed);
    return this;
  }

  /** The raw network output, as diffusers' forward gives it for the same weights and inputs. */
  forward(x: Tensor, timestep: Timestep, options: ForwardOptions = {}): Tensor {
    const { output } = this.run(x, timestep, options, [], false);
    return output!;
  }

  /** The output plus the values of the requested points (`blocks()` lists them). */
  forwardFeatures(x: Tensor, timestep: Timestep, options: FeatureOptions): { output: Tensor | null; features: Map<string, Tensor> } {
    return this.run(x, timestep, options, options.features, options.earlyExit ?? false);
  }

  /** Saves as a diffusers folder (config.json + diffusion_pytorch_model.safetensors) or, for a path ending in
   * .safetensors, one file with the config in its metadata. Atomic per file. */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    await saveNetwork(this, path, options);
  }

  /** Releases the parameters (the network is unusable afterwards). */
  dispose(): void {
    for (const [, t] of this.named) t.dispose();
  }

  private run(x: Tensor, timestep: Timestep, options: ForwardOptions, features: readonly string[], earlyExit: boolean) {
    const op = `${this.kind}.forward`;
    if (!(x instanceof Tensor)) throw argumentError(op, "x must be a Tensor");
    const batch = x.shape[0] ?? 0;
    const t = timestepTensor(op, timestep, batch, x.device);
    const labels = this.labels(op, options.classLabels, batch);
    const generator = options.generator ?? this.generator;
    const select = (s: PointSelection | undefined) => (s === true ? this.info.reusePoints : s ? [...s] : []);
    if ((options.store || options.reuse) && !options.cache) throw argumentError(op, "store/reuse need a cache");
    if (options.gate && !(options.gate instanceof Tensor)) throw argumentError(op, "gate must be a Tensor");
    try {
      const r = native.networkForward(this.handle, x.handle, t.handle, labels, {
        training: this.training,
        labelDropout: this.labelDropout,
        seed: Number(generator.seed),
        offset: Number(generator.offset),
        features: [...features],
        earlyExit,
        cache: options.cache?.handle,
        store: select(options.store),
        reuse: select(options.reuse),
      }, options.gate?.handle ?? null);
      if (this.training) generator.offset = BigInt(r.dropoutOffset);
      return {
        output: r.output ? new Tensor(r.output) : null,
        features: new Map(r.features.map(([n, h]) => [n, new Tensor(h)] as [string, Tensor])),
      };
    } finally {
      if (t !== timestep) t.dispose();
    }
  }

  private labels(op: string, classLabels: ArrayLike<number> | null | undefined, batch: number): Int32Array | null {
    if (classLabels == null) {
      if (this.numClasses > 0) throw argumentError(op, `this network is class-conditional (${this.numClasses} classes): pass classLabels`);
      return null;
    }
    if (this.numClasses === 0) throw argumentError(op, "this network has no class embedding, but classLabels were given");
    if (classLabels.length !== batch) throw argumentError(op, `${classLabels.length} class labels for a batch of ${batch}`);
    const out = new Int32Array(batch);
    for (let i = 0; i < batch; ++i) {
      const c = classLabels[i]!;
      if (!Number.isInteger(c) || c < 0 || (c >= this.numClasses && c !== this.nullClass)) {
        const nullNote = this.nullClass !== undefined ? ` or the null class ${this.nullClass}` : "";
        throw argumentError(op, `class label ${c} at ${i} is not an integer in [0, ${this.numClasses})${nullNote}`);
      }
      out[i] = c;
    }
    return out;
  }
}

/** Timesteps as a [B] tensor: a number or one per sample; a Tensor of one element is broadcast. */
function timestepTensor(op: string, timestep: Timestep, batch: number, device: Device): Tensor {
  if (timestep instanceof Tensor) {
    if (timestep.size === batch && timestep.rank === 1) return timestep;
    if (timestep.size === 1) return scope(() => ops.broadcastTo(ops.reshape(timestep, [1]), [batch]));
    throw argumentError(op, `timestep ${JSON.stringify(timestep.shape)} does not match a batch of ${batch}`);
  }
  if (typeof timestep === "number") return ops.full([batch], timestep, { device });
  if (timestep.length !== batch) throw argumentError(op, `${timestep.length} timesteps for a batch of ${batch}`);
  const host = ops.tensor(Float32Array.from(timestep), [batch]);
  if (device === "cpu") return host;
  const moved = host.to(device);
  host.dispose();
  return moved;
}

export type { NativeTensor };
export { FeatureCache };
