// DiT: diffusers' DiTTransformer2DModel (same config.json keys, same weight names), forward in C++
// (binding/cpp/nn/dit.cc, which documents the computation and the named points).
import { FastdiffError } from "../errors";
import { loadNetwork } from "./format";
import { Network, registerNetwork, type NetworkClass, type NetworkConfig } from "./network";

/** diffusers' DiTTransformer2DModel config (config.json keys; diffusers' defaults in brackets). */
export interface DiTConfig {
  /** Attention heads per block [16]. */
  num_attention_heads?: number;
  /** Channels per head [72]; the token width is num_attention_heads × attention_head_dim (a multiple of 4). */
  attention_head_dim?: number;
  /** Channels of the sample [4]. */
  in_channels?: number;
  /** Output channels [null: in_channels]; 2 × in_channels for a learned-sigma DiT (the forward returns all). */
  out_channels?: number | null;
  /** Transformer blocks [28]. */
  num_layers?: number;
  /** Dropout after the attention output projection and inside the feed-forward, in train mode [0]. */
  dropout?: number;
  /** Unused by DiT (kept for diffusers' config) [32]. */
  norm_num_groups?: number;
  /** Biases on to_q/to_k/to_v [true]. */
  attention_bias?: boolean;
  /** Training resolution in latent pixels [32]: sets the positional-embedding base size (sample_size / patch_size). */
  sample_size?: number;
  /** Patch size [2]; inputs must have H and W divisible by it. */
  patch_size?: number;
  /** Feed-forward activation: "gelu-approximate" (tanh) or "gelu" (erf) ["gelu-approximate"]. */
  activation_fn?: string;
  /** Number of classes [1000] (the embedding table has one more row: the null class). */
  num_embeds_ada_norm?: number;
  /** No effect in float32 [false]. */
  upcast_attention?: boolean;
  /** Only "ada_norm_zero" (the only type diffusers' DiT implements) ["ada_norm_zero"]. */
  norm_type?: string;
  /** Learned weight and bias on each block's norm3 [false]. */
  norm_elementwise_affine?: boolean;
  /** Epsilon of norm3 [1e-5] (the adaLN norms use 1e-6, as in diffusers). */
  norm_eps?: number;
  /** fastdiff extension (diffusers hard-codes 0.1; kept out of the normalized config unless given, so saved
   * configs stay diffusers' own): probability of replacing a label by the null class in train mode. 0 removes the
   * null class (and the table's extra row, so diffusers' weights no longer fit) [0.1]. */
  class_dropout_prob?: number;
}

const DEFAULTS: Required<DiTConfig> = {
  num_attention_heads: 16,
  attention_head_dim: 72,
  in_channels: 4,
  out_channels: null,
  num_layers: 28,
  dropout: 0,
  norm_num_groups: 32,
  attention_bias: true,
  sample_size: 32,
  patch_size: 2,
  activation_fn: "gelu-approximate",
  num_embeds_ada_norm: 1000,
  upcast_attention: false,
  norm_type: "ada_norm_zero",
  norm_elementwise_affine: false,
  norm_eps: 1e-5,
  class_dropout_prob: 0.1,
};

type Check = (v: unknown) => string | null;
const positiveInt: Check = (v) => (typeof v === "number" && Number.isInteger(v) && v > 0 ? null : "a positive integer");
const probability: Check = (v) => (typeof v === "number" && v >= 0 && v < 1 ? null : "a number in [0, 1)");
const bool: Check = (v) => (typeof v === "boolean" ? null : "a boolean");
const positive: Check = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? null : "a positive number");
const oneOf = (...values: string[]): Check => (v) =>
  typeof v === "string" && values.includes(v) ? null : values.map((s) => `'${s}'`).join(" or ");

const CHECKS: Record<keyof DiTConfig, Check> = {
  num_attention_heads: positiveInt,
  attention_head_dim: positiveInt,
  in_channels: positiveInt,
  out_channels: positiveInt,
  num_layers: positiveInt,
  dropout: probability,
  norm_num_groups: positiveInt,
  attention_bias: bool,
  sample_size: positiveInt,
  patch_size: positiveInt,
  activation_fn: oneOf("gelu-approximate", "gelu"),
  num_embeds_ada_norm: positiveInt,
  upcast_attention: bool,
  norm_type: oneOf("ada_norm_zero"),
  norm_elementwise_affine: bool,
  norm_eps: positive,
  class_dropout_prob: (v) => (typeof v === "number" && v >= 0 && v <= 1 ? null : "a number in [0, 1]"),
};

function configError(key: string, message: string): FastdiffError {
  return new FastdiffError("ERR_ARGUMENT", `DiT config '${key}': ${message}`);
}

/** Fills diffusers' defaults (keys missing or null), ignores unknown keys (`_class_name`, `_diffusers_version`,
 * …) and checks every value (ERR_ARGUMENT naming the key). Accepts config.json of diffusers 0.30 and 0.38. */
export function normalizeDiTConfig(raw: Record<string, unknown> = {}): NetworkConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FastdiffError("ERR_ARGUMENT", "DiT config: expected an object of diffusers config keys");
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(DEFAULTS) as (keyof DiTConfig)[]) {
    const given = raw[key];
    if (given === undefined || given === null) {
      if (key === "class_dropout_prob") continue; // the engine's default is diffusers' 0.1
      if (key === "num_embeds_ada_norm" && given === null) {
        throw configError(key, "a DiT (norm_type 'ada_norm_zero') needs the number of classes, got null");
      }
      out[key] = DEFAULTS[key];
      continue;
    }
    const problem = CHECKS[key](given);
    if (problem) {
      const extra = key === "norm_type" ? " (the only DiT norm diffusers implements)" : "";
      throw configError(key, `must be ${problem}${extra}, got ${JSON.stringify(given)}`);
    }
    out[key] = given;
  }
  const inner = (out.num_attention_heads as number) * (out.attention_head_dim as number);
  if (inner % 4 !== 0) {
    throw configError("attention_head_dim", `num_attention_heads × attention_head_dim = ${inner} must be a multiple of 4 (2-D sin-cos positions)`);
  }
  if ((out.sample_size as number) < (out.patch_size as number)) {
    throw configError("sample_size", `${out.sample_size} is smaller than patch_size ${out.patch_size}`);
  }
  return out;
}

/** Builds a DiT from a normalized config and a native handle (Network.build, loadNetwork). */
export const DiTClass: NetworkClass = {
  kind: "DiTTransformer2DModel",
  normalizeConfig: normalizeDiTConfig,
  construct: (config, handle) => new DiT(config, handle),
};

/**
 * diffusers' `DiTTransformer2DModel`: patch embedding with sin-cos positions computed for the input size,
 * adaLN-Zero transformer blocks, final layer, class embedding with a null class (`nullClass`, = numClasses) for
 * classifier-free guidance. Any H×W divisible by the patch size. `forward(x, t, { classLabels })` returns
 * all `out_channels` like diffusers (learned sigma: the caller takes the first in_channels).
 *
 * Blocks (`blocks()`): `pos_embed`; per block i `transformer_blocks.{i}.norm1.emb`, `.norm1.linear`, `.norm1.0`,
 * `.attn1` (attention branch before its gate — FRDiff's cache point, `reusePoints()`), `.norm3`, `.ff`,
 * `transformer_blocks.{i}` (token hidden states [B, N, D] after block i); `norm_out`, `proj_out_1`, `proj_out_2`.
 */
export class DiT extends Network {
  /** @internal Use `DiT.create` or `DiT.load`. */
  constructor(config: NetworkConfig, handle: object) {
    super(DiTClass.kind, config, handle);
  }

  /** A freshly initialized DiT (PyTorch's default init, seeded). */
  static create(config: DiTConfig = {}, options: { seed?: number } = {}): DiT {
    return Network.build(DiTClass, normalizeDiTConfig(config as Record<string, unknown>), null, options.seed ?? 0) as DiT;
  }

  /** Loads a diffusers folder (config.json + diffusion_pytorch_model.safetensors) or a fastdiff .safetensors file. */
  static async load(path: string): Promise<DiT> {
    return (await loadNetwork(path, DiTClass)) as DiT;
  }

  get inChannels(): number {
    return this.config.in_channels as number;
  }
  /** Channels of the raw output (2 × inChannels for a learned-sigma DiT). */
  get outChannels(): number {
    return (this.config.out_channels as number | null) ?? this.inChannels;
  }
  get patchSize(): number {
    return this.config.patch_size as number;
  }
  /** Probability of the null class replacing a label in train mode (diffusers: 0.1). */
  get classDropoutProb(): number {
    return (this.config.class_dropout_prob as number | undefined) ?? DEFAULTS.class_dropout_prob;
  }
  /** Token width (num_attention_heads × attention_head_dim). */
  get hiddenSize(): number {
    return (this.config.num_attention_heads as number) * (this.config.attention_head_dim as number);
  }
}

registerNetwork(DiTClass);
