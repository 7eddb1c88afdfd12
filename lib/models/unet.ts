// UNet: diffusers' UNet2DModel (same config.json keys, same weight names), forward in C++
// (binding/cpp/nn/unet.cc and unet_blocks.cc, which document the computation and the named points).
import type { Tensor } from "../tensor";
import { FastdiffError } from "../errors";
import { loadNetwork } from "./format";
import { Network, registerNetwork, type NetworkClass, type NetworkConfig } from "./network";

/** diffusers' UNet2DModel config (config.json keys; diffusers' defaults in brackets). */
export interface UNetConfig {
  /** Training resolution, an int or [height, width]; informational (any H×W divisible by the down factor runs) [null]. */
  sample_size: number | [number, number] | null;
  /** Channels of the sample [3]. */
  in_channels: number;
  /** Channels of the output [3]. */
  out_channels: number;
  /** Map the input x to 2x − 1 first [false]. */
  center_input_sample: boolean;
  /** "positional" (sinusoidal of t), "fourier" (Gaussian Fourier features of log σ; the output is divided by σ,
   * score-SDE style) or "learned" (a table of num_train_timesteps rows, integer t) ["positional"]. */
  time_embedding_type: "positional" | "fourier" | "learned";
  /** Width of the time embedding [null: 4 × block_out_channels[0]]. */
  time_embedding_dim: number | null;
  /** downscale_freq_shift of the sinusoidal embedding [0]. */
  freq_shift: number;
  /** Sinusoidal embedding as [cos, sin] instead of [sin, cos] [true]. */
  flip_sin_to_cos: boolean;
  /** One per level: "DownBlock2D" or "AttnDownBlock2D" (a "UNetRes" prefix is accepted) [DownBlock2D, AttnDownBlock2D × 3]. */
  down_block_types: string[];
  /** "UNetMidBlock2D", or null for no mid block ["UNetMidBlock2D"]. */
  mid_block_type: "UNetMidBlock2D" | null;
  /** One per level, deepest first: "UpBlock2D" or "AttnUpBlock2D" [AttnUpBlock2D × 3, UpBlock2D]. */
  up_block_types: string[];
  /** Channels per level [224, 448, 672, 896]; inputs need H and W divisible by 2^(levels − 1). */
  block_out_channels: number[];
  /** ResNet blocks per down block (up blocks have one more) [2]. */
  layers_per_block: number;
  /** Output scale of the mid block's ResNets and attention (their outputs are divided by it) [1]. */
  mid_block_scale_factor: number;
  /** Padding of the down-sampling 3×3 stride-2 conv: 1, or 0 (then the input is padded right/bottom by one) [1]. */
  downsample_padding: number;
  /** AttnDownBlock2D's down-sampler: "conv" or "resnet" (a ResnetBlock2D with 2×2 average pooling) ["conv"]. */
  downsample_type: "conv" | "resnet";
  /** AttnUpBlock2D's up-sampler: "conv" or "resnet" (a ResnetBlock2D with nearest ×2) ["conv"]. */
  upsample_type: "conv" | "resnet";
  /** Dropout in every ResNet block (after norm2 + SiLU), active in train mode [0]. */
  dropout: number;
  /** Activation: only "silu" (= "swish") ["silu"]. */
  act_fn: "silu" | "swish";
  /** Channels per attention head [8]; null: one head over all channels of the block. */
  attention_head_dim: number | null;
  /** GroupNorm groups everywhere (must divide every block_out_channels entry) [32]. */
  norm_num_groups: number;
  /** Groups of the mid-block attention's GroupNorm [null: norm_num_groups, or no norm with "scale_shift"]. */
  attn_norm_num_groups: number | null;
  /** GroupNorm epsilon [1e-5]. */
  norm_eps: number;
  /** How ResNets take the time embedding: "default" (added before norm2) or "scale_shift" (norm2·(1+s)+b) ["default"]. */
  resnet_time_scale_shift: "default" | "scale_shift";
  /** Attention in the mid block [true]. */
  add_attention: boolean;
  /** null (with num_class_embeds: a learned table) or "timestep" (labels embedded like timesteps, then an MLP);
   * diffusers' "identity" (float embeddings as labels) is not supported [null]. */
  class_embed_type: "timestep" | null;
  /** Number of classes of the class embedding table [null: unconditional]. With "timestep": the label bound. */
  num_class_embeds: number | null;
  /** Rows of the learned time-embedding table ("learned" only) [null]. */
  num_train_timesteps: number | null;
  /** fastdiff extension (diffusers ignores it): the class-table row that is the unconditional label for
   * classifier-free guidance; must be the last row, num_class_embeds − 1, which leaves num_class_embeds − 1
   * real classes [null: no null class]. */
  null_class: number | null;
}

const DEFAULTS: UNetConfig = {
  sample_size: null,
  in_channels: 3,
  out_channels: 3,
  center_input_sample: false,
  time_embedding_type: "positional",
  time_embedding_dim: null,
  freq_shift: 0,
  flip_sin_to_cos: true,
  down_block_types: ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
  mid_block_type: "UNetMidBlock2D",
  up_block_types: ["AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
  block_out_channels: [224, 448, 672, 896],
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  downsample_padding: 1,
  downsample_type: "conv",
  upsample_type: "conv",
  dropout: 0,
  act_fn: "silu",
  attention_head_dim: 8,
  norm_num_groups: 32,
  attn_norm_num_groups: null,
  norm_eps: 1e-5,
  resnet_time_scale_shift: "default",
  add_attention: true,
  class_embed_type: null,
  num_class_embeds: null,
  num_train_timesteps: null,
  null_class: null,
};

/** Keys whose explicit null means something (diffusers passes None through); any other key must have a value. */
const NULLABLE = new Set<keyof UNetConfig>([
  "sample_size", "time_embedding_dim", "mid_block_type", "attention_head_dim", "attn_norm_num_groups",
  "class_embed_type", "num_class_embeds", "num_train_timesteps", "null_class",
]);

type Check = (v: unknown) => string | null;
const isInt = (v: unknown): v is number => typeof v === "number" && Number.isInteger(v);
const positiveInt: Check = (v) => (isInt(v) && v > 0 ? null : "a positive integer");
const bool: Check = (v) => (typeof v === "boolean" ? null : "a boolean");
const positive: Check = (v) => (typeof v === "number" && Number.isFinite(v) && v > 0 ? null : "a positive number");
const finite: Check = (v) => (typeof v === "number" && Number.isFinite(v) ? null : "a finite number");
const oneOf = (...values: string[]): Check => (v) =>
  typeof v === "string" && values.includes(v) ? null : `one of ${values.map((s) => `'${s}'`).join(", ")}`;
const blockTypes = (...values: string[]): Check => (v) =>
  Array.isArray(v) && v.length > 0 && v.every((s) => typeof s === "string" && values.includes(s.replace(/^UNetRes/, "")))
    ? null
    : `a non-empty list of ${values.map((s) => `'${s}'`).join(" / ")}`;

const CHECKS: Record<keyof UNetConfig, Check> = {
  sample_size: (v) =>
    positiveInt(v) === null || (Array.isArray(v) && v.length === 2 && v.every((s) => positiveInt(s) === null))
      ? null
      : "a positive integer or [height, width]",
  in_channels: positiveInt,
  out_channels: positiveInt,
  center_input_sample: bool,
  time_embedding_type: oneOf("positional", "fourier", "learned"),
  time_embedding_dim: positiveInt,
  freq_shift: finite,
  flip_sin_to_cos: bool,
  down_block_types: blockTypes("DownBlock2D", "AttnDownBlock2D"),
  mid_block_type: oneOf("UNetMidBlock2D"),
  up_block_types: blockTypes("UpBlock2D", "AttnUpBlock2D"),
  block_out_channels: (v) => (Array.isArray(v) && v.length > 0 && v.every((c) => positiveInt(c) === null) ? null : "a non-empty list of positive integers"),
  layers_per_block: positiveInt,
  mid_block_scale_factor: positive,
  downsample_padding: (v) => (v === 0 || v === 1 ? null : "0 or 1 (other paddings change the down-sampled size)"),
  downsample_type: oneOf("conv", "resnet"),
  upsample_type: oneOf("conv", "resnet"),
  dropout: (v) => (typeof v === "number" && v >= 0 && v < 1 ? null : "a number in [0, 1)"),
  act_fn: oneOf("silu", "swish"),
  attention_head_dim: positiveInt,
  norm_num_groups: positiveInt,
  attn_norm_num_groups: positiveInt,
  norm_eps: positive,
  resnet_time_scale_shift: oneOf("default", "scale_shift"),
  add_attention: bool,
  class_embed_type: (v) =>
    v === "timestep"
      ? null
      : v === "identity"
        ? "null or 'timestep' ('identity' takes float embeddings as class labels, which fastdiff does not support)"
        : "null or 'timestep'",
  num_class_embeds: positiveInt,
  num_train_timesteps: positiveInt,
  null_class: (v) => (isInt(v) && v >= 0 ? null : "a non-negative integer (the last row of the class table)"),
};

function configError(key: string, message: string): FastdiffError {
  return new FastdiffError("ERR_ARGUMENT", `UNet config '${key}': ${message}`);
}

/**
 * Fills diffusers' defaults for missing keys, ignores unknown and private keys (`_class_name`,
 * `_diffusers_version`, …) and checks every value (ERR_ARGUMENT naming the key). Accepts config.json of
 * diffusers 0.30 (no `mid_block_type` / `time_embedding_dim`: the defaults) and 0.38. An explicit null keeps
 * diffusers' meaning where it has one (`mid_block_type: null` = no mid block).
 */
export function normalizeUNetConfig(raw: Record<string, unknown> = {}): NetworkConfig {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new FastdiffError("ERR_ARGUMENT", "UNet config: expected an object of diffusers config keys");
  }
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(DEFAULTS) as (keyof UNetConfig)[]) {
    const given = raw[key];
    if (given === undefined) {
      const d = DEFAULTS[key];
      out[key] = Array.isArray(d) ? [...d] : d;
      continue;
    }
    if (given === null) {
      if (!NULLABLE.has(key)) throw configError(key, `must be ${CHECKS[key](null)}, got null`);
      out[key] = null;
      continue;
    }
    const problem = CHECKS[key](given);
    if (problem) throw configError(key, `must be ${problem}, got ${JSON.stringify(given)}`);
    out[key] = Array.isArray(given) ? [...given] : given;
  }
  const c = out as unknown as UNetConfig;
  const levels = c.block_out_channels.length;
  if (c.down_block_types.length !== levels || c.up_block_types.length !== levels) {
    throw configError(
      "block_out_channels",
      `down_block_types (${c.down_block_types.length}), up_block_types (${c.up_block_types.length}) and block_out_channels (${levels}) must have the same length`,
    );
  }
  for (const ch of c.block_out_channels) {
    if (ch % c.norm_num_groups !== 0) {
      throw configError("norm_num_groups", `${c.norm_num_groups} does not divide block_out_channels entry ${ch} (GroupNorm)`);
    }
  }
  const deepest = c.block_out_channels[levels - 1]!;
  const hasMid = c.mid_block_type !== null;
  if (hasMid && c.add_attention && c.attn_norm_num_groups !== null && deepest % c.attn_norm_num_groups !== 0) {
    throw configError("attn_norm_num_groups", `${c.attn_norm_num_groups} does not divide the mid block's ${deepest} channels`);
  }
  if (c.attention_head_dim !== null) {
    const attended = [
      ...c.down_block_types.flatMap((t, i) => (t.endsWith("AttnDownBlock2D") ? [c.block_out_channels[i]!] : [])),
      ...c.up_block_types.flatMap((t, i) => (t.endsWith("AttnUpBlock2D") ? [c.block_out_channels[levels - 1 - i]!] : [])),
      ...(hasMid && c.add_attention ? [deepest] : []),
    ];
    for (const ch of attended) {
      if (ch < c.attention_head_dim) {
        throw configError("attention_head_dim", `${c.attention_head_dim} is larger than an attention block's ${ch} channels (no head fits)`);
      }
    }
  }
  if (c.time_embedding_type === "learned" && c.num_train_timesteps === null) {
    throw configError("num_train_timesteps", "time_embedding_type 'learned' needs the size of its table, got null");
  }
  return out;
}

/** Builds a UNet from a normalized config and a native handle (Network.build, loadNetwork). */
export const UNetClass: NetworkClass = {
  kind: "UNet2DModel",
  normalizeConfig: normalizeUNetConfig,
  construct: (config, handle) => new UNet(config, handle),
  renameLegacyWeights: renameDeprecatedAttention,
};

/** Checkpoints written before diffusers' attention refactor (e.g. google/ddpm-*) name the attention weights
 * query / key / value / proj_attn; diffusers renames them on load to to_q / to_k / to_v / to_out.0. */
function renameDeprecatedAttention(weights: Map<string, Tensor>): void {
  const renames: Record<string, string> = { query: "to_q", key: "to_k", value: "to_v", proj_attn: "to_out.0" };
  for (const name of [...weights.keys()]) {
    const m = /^(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)$/.exec(name);
    if (!m) continue;
    const renamed = `${m[1]}.${renames[m[2]!]}.${m[3]}`;
    if (weights.has(renamed)) continue; // both layouts present: leave it to the weight check to name the extra one
    weights.set(renamed, weights.get(name)!);
    weights.delete(name);
  }
}

/**
 * diffusers' `UNet2DModel`: ResnetBlock2D / attention down and up blocks with skip connections, a mid block,
 * sinusoidal, Gaussian-Fourier or learned time embedding, optional class embedding. Any H×W divisible by
 * `downFactor` (2^(levels − 1)). `forward(x, t, { classLabels })` returns exactly what diffusers' forward returns
 * (for "fourier" models that includes the division by σ = t).
 *
 * Blocks (`blocks()`, forward order; shapes for an input [B, C, H, W], level i at H/2^i):
 * - `time_proj` [B, C0] ([B, 2·C0] for "fourier"), `time_embedding` [B, T], `class_embedding` [B, T] (if any),
 *   `conv_in` [B, C0, H, W];
 * - per ResNet unit `<m>.conv1` (its conv1 output, after GN1, SiLU and any resampling: FRDiff's cache point)
 *   and `<m>` (its output); per attention unit `<m>.to_out` (the residual branch before the residual add and
 *   rescale: FRDiff's cache point) and `<m>`; all [B, C_level, H_level, W_level]; `<m>` is e.g.
 *   `down_blocks.1.resnets.0`, `mid_block.attentions.0`, `up_blocks.0.resnets.2`;
 * - `down_blocks.{i}.downsamplers.0`, `up_blocks.{i}.upsamplers.0` (the resampled hidden state);
 * - `down_blocks.{i}`, `mid_block`, `up_blocks.{i}`: block outputs (down block i ends at level i+1 except the
 *   last; up block i ends at level n−2−i except the last, at full size);
 * - `conv_norm_out`, `conv_act` [B, C0, H, W], `conv_out` [B, out_channels, H, W].
 *
 * `reusePoints()` lists every `.conv1` and `.to_out` (FRDiff). DeepCache: store `up_blocks.{i}`, then reuse it —
 * the forward then skips up blocks 0..i, the mid block and the down path below the skip tensors the remaining up
 * blocks need. Reusing a `down_blocks.{i}` point saves nothing (its units still run: they make the skip tensors).
 */
export class UNet extends Network {
  /** @internal Use `UNet.create` or `UNet.load`. */
  constructor(config: NetworkConfig, handle: object) {
    super(UNetClass.kind, config, handle);
  }

  /** A freshly initialized UNet (PyTorch's default init, seeded). */
  static create(config: Partial<UNetConfig> = {}, options: { seed?: number } = {}): UNet {
    return Network.build(UNetClass, normalizeUNetConfig(config as Record<string, unknown>), null, options.seed ?? 0) as UNet;
  }

  /** Loads a diffusers folder (config.json + diffusion_pytorch_model.safetensors) or a fastdiff .safetensors file. */
  static async load(path: string): Promise<UNet> {
    return (await loadNetwork(path, UNetClass)) as UNet;
  }

  get inChannels(): number {
    return this.config.in_channels as number;
  }
  get outChannels(): number {
    return this.config.out_channels as number;
  }
  /** Inputs need H and W divisible by this (2^(levels − 1)). */
  get downFactor(): number {
    return 2 ** ((this.config.block_out_channels as number[]).length - 1);
  }
  /** The training resolution from the config ([height, width]), or null when the config has none. */
  get sampleSize(): [number, number] | null {
    const s = this.config.sample_size as number | [number, number] | null;
    return s === null ? null : typeof s === "number" ? [s, s] : [s[0], s[1]];
  }
}

registerNetwork(UNetClass);
