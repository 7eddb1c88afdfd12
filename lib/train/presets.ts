// Named model sizes for `fastdiff train --model <preset>`: networks sized for a dataset's sample shape and
// classes, with EDM preconditioning. "unet-small" and "dit-small" are the shipped MNIST teachers' sizes.
import { argumentError } from "../errors";
import { DiT } from "../models/dit";
import { MLP } from "../models/mlp";
import type { Network } from "../models/network";
import { NetworkDenoiser } from "../models/network-denoiser";
import { UNet } from "../models/unet";

export const MODEL_PRESETS = ["unet-small", "unet-tiny", "dit-small", "dit-tiny", "mlp"] as const;
export type ModelPreset = (typeof MODEL_PRESETS)[number];

export interface PresetTarget {
  sampleShape: readonly number[];
  /** Classes of the data (0: unconditional). Class-conditional presets add a null class for guidance. */
  numClasses: number;
  /** Seeds the initialization [0]. */
  seed?: number;
}

function unet(target: PresetTarget, channels: number[], attention: boolean[], layers: number, groups: number, dropout: number): Network {
  const [c, h, w] = target.sampleShape as [number, number, number];
  const factor = 2 ** (channels.length - 1);
  if (h % factor !== 0 || w % factor !== 0) throw argumentError("modelPreset", `a ${channels.length}-level UNet needs H and W divisible by ${factor}, got ${h}×${w}`);
  const cond = target.numClasses > 0 ? { num_class_embeds: target.numClasses + 1, null_class: target.numClasses } : {};
  return UNet.create({
    sample_size: h === w ? h : [h, w], in_channels: c, out_channels: c, block_out_channels: channels, layers_per_block: layers,
    down_block_types: attention.map((a) => (a ? "AttnDownBlock2D" : "DownBlock2D")),
    up_block_types: attention.slice().reverse().map((a) => (a ? "AttnUpBlock2D" : "UpBlock2D")),
    norm_num_groups: groups, attention_head_dim: 32, dropout, ...cond,
  }, { seed: target.seed ?? 0 });
}

function dit(target: PresetTarget, hidden: number, depth: number): Network {
  const [c, h, w] = target.sampleShape as [number, number, number];
  if (h !== w || h % 2 !== 0) throw argumentError("modelPreset", `the DiT presets need square images with an even side, got ${h}×${w}`);
  return DiT.create({
    sample_size: h, in_channels: c, out_channels: c, patch_size: 2, num_layers: depth,
    num_attention_heads: hidden / 32, attention_head_dim: 32, num_embeds_ada_norm: Math.max(1, target.numClasses),
    class_dropout_prob: target.numClasses > 0 ? 0.1 : 0,
  }, { seed: target.seed ?? 0 });
}

/** A freshly initialized network of the preset's size for the target data, as an EDM denoiser. */
export function modelPreset(name: string, target: PresetTarget): NetworkDenoiser {
  const image = target.sampleShape.length === 3;
  if (name !== "mlp" && !image) throw argumentError("modelPreset", `'${name}' is for images [C, H, W]; the data has samples of shape ${JSON.stringify(target.sampleShape)} (use 'mlp')`);
  let net: Network;
  switch (name) {
    case "unet-small": net = unet(target, [32, 64, 64], [false, true, true], 2, 8, 0.1); break;
    case "unet-tiny": net = unet(target, [16, 32], [false, true], 1, 4, 0); break;
    case "dit-small": net = dit(target, 128, 6); break;
    case "dit-tiny": net = dit(target, 64, 2); break;
    case "mlp": {
      if (target.sampleShape.length !== 1) throw argumentError("modelPreset", `'mlp' is for vectors [D]; the data has samples of shape ${JSON.stringify(target.sampleShape)}`);
      net = MLP.create({ in_features: target.sampleShape[0]!, hidden_size: 128, num_layers: 3, num_classes: target.numClasses }, { seed: target.seed ?? 0 });
      break;
    }
    default:
      throw argumentError("modelPreset", `unknown model '${name}' (one of ${MODEL_PRESETS.join(", ")})`);
  }
  // Images are scaled to [−1, 1]: σ_data = 0.5 as in EDM; toy 2-D sets spread wider.
  return new NetworkDenoiser(net, { type: "edm", sigmaData: image ? 0.5 : 1 });
}
