// MLP: fastdiff's small time-conditioned denoiser for vectors and 2-D toy data, forward in C++
// (binding/cpp/nn/mlp.cc documents the architecture, weight names and points).
import { FastdiffError } from "../errors";
import { loadNetwork } from "./format";
import { Network, registerNetwork, type NetworkClass, type NetworkConfig } from "./network";

/** Config of the toy MLP denoiser (snake_case like diffusers configs; defaults in brackets). */
export interface MLPConfig {
  /** Values per sample D: inputs are [B, D] (or [B, ...] with D values per sample) [2]. */
  in_features?: number;
  /** Width H of the hidden layers [128]. */
  hidden_size?: number;
  /** Residual layers h ← h + SiLU(linear(h) + emb_proj(SiLU(emb))) [3]. */
  num_layers?: number;
  /** Width E of the sinusoidal timestep embedding and of the time (and class) embedding MLP [128]. */
  time_embed_dim?: number;
  /** Classes embedded and added to the time embedding; 0 = unconditional [0]. */
  num_classes?: number;
  /** Dropout on each residual branch in train mode [0]. */
  dropout?: number;
}

const DEFAULTS: Required<MLPConfig> = {
  in_features: 2,
  hidden_size: 128,
  num_layers: 3,
  time_embed_dim: 128,
  num_classes: 0,
  dropout: 0,
};

const isInt = (v: unknown, min: number): boolean => typeof v === "number" && Number.isInteger(v) && v >= min;
const CHECKS: Record<keyof MLPConfig, (v: unknown) => string | null> = {
  in_features: (v) => (isInt(v, 1) ? null : "a positive integer"),
  hidden_size: (v) => (isInt(v, 1) ? null : "a positive integer"),
  num_layers: (v) => (isInt(v, 1) ? null : "a positive integer"),
  time_embed_dim: (v) => (isInt(v, 2) ? null : "an integer >= 2"),
  num_classes: (v) => (isInt(v, 0) ? null : "an integer >= 0"),
  dropout: (v) => (typeof v === "number" && v >= 0 && v < 1 ? null : "a number in [0, 1)"),
};

/** Fills defaults (keys missing or null), ignores unknown keys, checks values (ERR_ARGUMENT naming the key). */
export function normalizeMLPConfig(raw: Record<string, unknown> = {}): NetworkConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FastdiffError("ERR_ARGUMENT", "MLP config: expected an object");
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(DEFAULTS) as (keyof MLPConfig)[]) {
    const given = raw[key];
    if (given === undefined || given === null) {
      out[key] = DEFAULTS[key];
      continue;
    }
    const problem = CHECKS[key](given);
    if (problem) throw new FastdiffError("ERR_ARGUMENT", `MLP config '${key}': must be ${problem}, got ${JSON.stringify(given)}`);
    out[key] = given;
  }
  return out;
}

export const MLPClass: NetworkClass = {
  kind: "MLP",
  normalizeConfig: normalizeMLPConfig,
  construct: (config, handle) => new MLP(config, handle),
};

/**
 * A small time-conditioned denoiser for vectors and 2-D toy data: sinusoidal embedding of t → time MLP
 * (+ class embedding) → input projection → residual layers with an additive time projection → output linear.
 * `forward(x [B, D], t [B], { classLabels })` returns [B, D]. Blocks: `time_embedding`, `layers.{i}`, `output`;
 * `reusePoints()` is empty.
 */
export class MLP extends Network {
  /** @internal Use `MLP.create` or `MLP.load`. */
  constructor(config: NetworkConfig, handle: object) {
    super(MLPClass.kind, config, handle);
  }

  /** A freshly initialized MLP (PyTorch's default init, seeded). */
  static create(config: MLPConfig = {}, options: { seed?: number } = {}): MLP {
    return Network.build(MLPClass, normalizeMLPConfig(config as Record<string, unknown>), null, options.seed ?? 0) as MLP;
  }

  /** Loads a fastdiff .safetensors file or a folder written by `save`. */
  static async load(path: string): Promise<MLP> {
    return (await loadNetwork(path, MLPClass)) as MLP;
  }

  get inFeatures(): number {
    return this.config.in_features as number;
  }
}

registerNetwork(MLPClass);
