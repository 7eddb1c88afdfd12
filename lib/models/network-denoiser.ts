// A network seen through the σ-space contract: D(x̂; σ) = c_skip·x̂ + c_out·F(c_in·x̂, c_noise) with
// per-sample coefficients from its parameterization (./parameterizations.ts), classifier-free guidance
// as one batched forward of the conditional and unconditional halves (METHODS.md §7, item 2).
import { argumentError } from "../errors";
import { scope } from "../memory";
import * as ops from "../ops";
import type { Schedule } from "../sampling/schedules";
import { Tensor, type Device } from "../tensor";
import { Denoiser, setDenoiserLoader, type DenoiseOptions, type SigmaInput } from "./denoiser";
import { buildNetwork, readNetworkFiles, type SaveOptions } from "./format";
import type { FeatureCache, Network, PointSelection } from "./network";
import {
  Coefficients, fromSchedulerConfig, parameterization, toSchedulerConfig,
  type Parameterization, type ParameterizationInput,
} from "./parameterizations";

export interface NetworkDenoiserOptions {
  /** The label of the unconditional branch for guidance (default: the network's null class, if it has one). */
  nullClass?: number;
  /** Shape of one sample for `sample({ n })` (default: from the config — [in_channels, sample_size, sample_size]
   * for images, [in_features] for the MLP). Needed when the config has no sample_size. */
  sampleShape?: readonly number[];
}

/**
 * Feature reuse for one denoiser call (FRDiff / DeepCache, METHODS.md §6). With a planned cache (and no
 * store/reuse/gate), the call is the cache's next evaluation: a keyframe runs the full network and stores the
 * plan's points, a reuse step serves them from the cache (score mixing: ε = λ·ε_FR + (1 − λ)·ε_key), a skip runs
 * no network (ε of the previous evaluation: one DDIM jump across it). ε = (x̂ − D)/σ after guidance, which is the
 * same as mixing both guidance branches' raw outputs (guidance and the mix are both affine in ε). Otherwise
 * store/reuse/gate go to Network.forward as given.
 */
export interface ReuseOptions {
  cache: FeatureCache;
  store?: PointSelection;
  reuse?: PointSelection;
  gate?: Tensor;
}

export interface NetworkDenoiseOptions extends DenoiseOptions {
  featureReuse?: ReuseOptions;
}

export class NetworkDenoiser extends Denoiser {
  readonly network: Network;
  readonly parameterization: Parameterization;
  readonly sampleShape: readonly number[];
  readonly coefficients: Coefficients;
  private readonly nullClass: number | undefined;

  constructor(network: Network, p: ParameterizationInput | Parameterization, options: NetworkDenoiserOptions = {}) {
    super();
    this.network = network;
    this.parameterization = parameterization(p);
    this.coefficients = new Coefficients(this.parameterization);
    this.sampleShape = options.sampleShape ?? sampleShapeOf(network);
    this.nullClass = options.nullClass ?? network.nullClass;
  }

  /** Loads a diffusers folder or fastdiff file; the parameterization comes from the scheduler config beside
   * the network (scheduler_config.json, ../scheduler/, or the file's metadata), else DDPM ε with linear β. */
  static override async load(path: string, options: NetworkDenoiserOptions = {}): Promise<NetworkDenoiser> {
    const files = await readNetworkFiles(path);
    const p = files.scheduler ? fromSchedulerConfig(files.scheduler) : parameterization({ type: "ddpm" });
    return new NetworkDenoiser(buildNetwork(files), p, options);
  }

  /** Saves the network and its parameterization (as a diffusers scheduler config). */
  async save(path: string, options: Omit<SaveOptions, "scheduler"> = {}): Promise<void> {
    await this.network.save(path, { ...options, scheduler: toSchedulerConfig(this.parameterization) });
  }

  override get numClasses(): number {
    return this.network.numClasses;
  }
  /** The network's device: move it with `denoiser.network.to("cuda")` and `sample` runs there. */
  override get device(): Device {
    return this.network.device;
  }

  denoise(x: Tensor, sigma: SigmaInput, options: NetworkDenoiseOptions = {}): Tensor {
    const op = "denoise";
    const batch = x.shape[0] ?? 0;
    const sigmas = sigmaList(op, sigma, batch);
    const reuse = options.featureReuse;
    if (reuse?.cache.plan && !reuse.store && !reuse.reuse && !reuse.gate) return this.denoisePlanned(x, sigmas, options, reuse.cache);
    const guided = options.guidance !== undefined && options.guidance !== 1;
    let labels = options.classLabels ?? null;
    if (guided) {
      if (!labels) throw argumentError(op, "guidance needs classLabels (the conditional branch)");
      if (this.nullClass === undefined) throw argumentError(op, "guidance needs a null class: this network has none (pass nullClass)");
      labels = [...Array.from(labels), ...new Array<number>(batch).fill(this.nullClass)];
    }
    return scope(() => {
      const input = guided ? ops.concat([x, x], 0) : x;
      const all = guided ? [...sigmas, ...sigmas] : sigmas;
      const c = all.map((s) => this.coefficients.at(s));
      const device = { device: x.device };
      const perSample = (values: number[]) =>
        ops.tensor(Float32Array.from(values), [values.length, ...x.shape.slice(1).map(() => 1)], device);
      const cIn = perSample(c.map((k) => k.cIn));
      const timesteps = ops.tensor(Float32Array.from(c.map((k) => k.cNoise)), [all.length], device);
      let raw = this.network.forward(ops.mul(input, cIn), timesteps, {
        classLabels: labels, cache: reuse?.cache, store: reuse?.store, reuse: reuse?.reuse, gate: reuse?.gate,
      });
      // Learned-variance networks (iDDPM, DiT with learn_sigma) output 2C channels: the first C are the prediction.
      const channels = x.shape[1]!;
      if (x.rank === 4 && raw.shape[1] === 2 * channels) raw = ops.slice(raw, 1, 0, channels);
      const denoised = ops.add(ops.mul(input, perSample(c.map((k) => k.cSkip))), ops.mul(raw, perSample(c.map((k) => k.cOut))));
      if (!guided) return denoised;
      // CFG (Ho & Salimans 2022): D = D_u + w·(D_c − D_u).
      const [cond, uncond] = ops.split(denoised, [batch, batch], 0) as [Tensor, Tensor];
      return ops.add(uncond, ops.mul(ops.sub(cond, uncond), options.guidance!));
    });
  }

  /** One evaluation of a planned cache (see ReuseOptions). */
  private denoisePlanned(x: Tensor, sigmas: number[], options: NetworkDenoiseOptions, cache: FeatureCache): Tensor {
    const plan = cache.plan!;
    const step = cache.next();
    return scope(() => {
      const sigma = ops.tensor(Float32Array.from(sigmas), [sigmas.length, ...x.shape.slice(1).map(() => 1)], { device: x.device });
      const eps = cache.eps();
      if (step.action === "skip") return ops.sub(x, ops.mul(sigma, eps.prev!)); // D = x̂ − σ·ε_prev
      const keyframe = step.action === "full";
      const pass = keyframe ? { cache, store: plan.points } : { cache, reuse: plan.points };
      let denoised = this.denoise(x, sigmas, { ...options, featureReuse: pass });
      let epsNow = ops.div(ops.sub(x, denoised), sigma);
      if (step.action === "reuse" && step.lambda < 1) {
        epsNow = ops.add(ops.mul(epsNow, step.lambda), ops.mul(eps.key!, 1 - step.lambda));
        denoised = ops.sub(x, ops.mul(sigma, epsNow));
      }
      cache.recordEps(epsNow, keyframe);
      return denoised;
    });
  }

  schedule(steps: number): Schedule {
    return this.coefficients.schedule(steps);
  }

  /** Schedules by name for `sample({ schedule })`: "ddim" and "euler" (diffusers' DDIM and EulerDiscrete
   * grids on the model's own ᾱ table) for DDPM-family models; undefined otherwise. */
  namedSchedule(name: string, steps: number): Schedule | undefined {
    return this.coefficients.namedSchedule(name, steps);
  }

  override initialNoiseScale(sigma0: number): number {
    return this.coefficients.initialNoiseScale(sigma0);
  }
}

/** [in_features] for vectors, [C, H, W] from sample_size for images; [] when the config does not say (then
 * `sample` needs explicit noise or the `sampleShape` option). */
function sampleShapeOf(net: Network): number[] {
  const c = net.config;
  if (typeof c["in_features"] === "number") return [c["in_features"]];
  const size = c["sample_size"];
  const [h, w] = Array.isArray(size) ? (size as number[]) : [size, size];
  return typeof h === "number" && typeof w === "number" ? [c["in_channels"] as number, h, w] : [];
}

function sigmaList(op: string, sigma: SigmaInput, batch: number): number[] {
  const list = typeof sigma === "number" ? new Array<number>(batch).fill(sigma) : Array.from(sigma);
  if (list.length !== batch) throw argumentError(op, `${list.length} sigmas for a batch of ${batch}`);
  for (const s of list) if (!(s > 0 && Number.isFinite(s))) throw argumentError(op, `sigma must be finite and > 0, got ${s}`);
  return list;
}

setDenoiserLoader((path) => NetworkDenoiser.load(path));
