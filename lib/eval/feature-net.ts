// The MNIST feature network: a small CNN classifier trained by fastdiff on the MNIST training split. Its
// penultimate activations (128-d) are the feature space of FD (Fréchet distance, as FID uses Inception's
// pool features; Heusel et al. 2017) and of precision/recall; its predictions give the classifier accuracy
// of class-conditional samples. Shipped as models/mnist-features/model.safetensors.
import { join } from "node:path";
import { noGrad } from "../autograd";
import type { Dataset } from "../data/dataset";
import { argumentError, FastdiffError } from "../errors";
import { readSafetensors, writeSafetensors } from "../io/safetensors";
import { leaveScopes, scope } from "../memory";
import { packageRoot } from "../native";
import * as ops from "../ops";
import { Adam } from "../optim";
import { Generator } from "../random";
import { Tensor } from "../tensor";

/** Where the shipped network lives. */
export const DEFAULT_FEATURE_NET = join(packageRoot, "models", "mnist-features", "model.safetensors");
const KIND = "mnist-features-v1";
export const FEATURE_DIM = 128;

// conv 3×3 layers: [name, in, out, stride]; 28 → 28 → 14 → 7 → 4, then 64·4·4 → 128 → 10.
const CONVS: [string, number, number, number][] = [["conv1", 1, 32, 1], ["conv2", 32, 32, 2], ["conv3", 32, 64, 2], ["conv4", 64, 64, 2]];
const GROUPS = 8;

export interface FeatureNetOutput {
  /** [N, 128] penultimate activations. */
  features: Tensor;
  /** [N, 10] class logits. */
  logits: Tensor;
}

export class FeatureNet {
  private constructor(readonly params: Map<string, Tensor>) {
    for (const t of params.values()) leaveScopes(t.requireGrad());
  }

  /** A freshly initialized network (He-normal convolutions and linears, zero biases). */
  static create(seed = 0): FeatureNet {
    const g = new Generator(seed);
    const p = new Map<string, Tensor>();
    const he = (shape: number[], fanIn: number) => ops.randn(shape, { generator: g, std: Math.sqrt(2 / fanIn) });
    for (const [name, cin, cout] of CONVS) {
      p.set(`${name}.weight`, he([cout, cin, 3, 3], cin * 9));
      p.set(`${name}.bias`, ops.zeros([cout]));
      p.set(`${name}.norm.weight`, ops.ones([cout]));
      p.set(`${name}.norm.bias`, ops.zeros([cout]));
    }
    p.set("fc.weight", he([FEATURE_DIM, 64 * 16], 64 * 16));
    p.set("fc.bias", ops.zeros([FEATURE_DIM]));
    p.set("head.weight", he([10, FEATURE_DIM], FEATURE_DIM));
    p.set("head.bias", ops.zeros([10]));
    return new FeatureNet(p);
  }

  /** Loads the shipped network (or another file saved by `save`). */
  static async load(path = DEFAULT_FEATURE_NET): Promise<FeatureNet> {
    const { tensors, metadata } = await readSafetensors(path);
    if (metadata["fastdiff_feature_net"] !== KIND) {
      for (const t of tensors.values()) t.dispose();
      throw new FastdiffError("ERR_FORMAT", `${path}: not a fastdiff MNIST feature network (metadata fastdiff_feature_net = ${JSON.stringify(metadata["fastdiff_feature_net"])})`);
    }
    const fresh = FeatureNet.create();
    for (const [name, t] of fresh.params) {
      const loaded = tensors.get(name);
      if (!loaded || loaded.shape.join() !== t.shape.join()) {
        for (const u of tensors.values()) u.dispose();
        fresh.dispose();
        throw new FastdiffError("ERR_FORMAT", `${path}: tensor '${name}' is ${loaded ? `of shape ${JSON.stringify(loaded.shape)}` : "missing"}, expected ${JSON.stringify(t.shape)}`);
      }
    }
    fresh.dispose();
    return new FeatureNet(tensors);
  }

  async save(path: string, extra: Record<string, string> = {}): Promise<void> {
    await writeSafetensors(path, this.params, { ...extra, fastdiff_feature_net: KIND });
  }

  parameters(): Tensor[] {
    return [...this.params.values()];
  }

  /** Features and logits of images [N, 1, 28, 28] in [−1, 1] (32×32 inputs are center-cropped to 28). */
  forward(images: Tensor): FeatureNetOutput {
    const [n, c, hgt, wid] = images.shape;
    if (images.rank !== 4 || c !== 1 || !((hgt === 28 && wid === 28) || (hgt === 32 && wid === 32)))
      throw argumentError("FeatureNet.forward", `expected images [N, 1, 28, 28] or [N, 1, 32, 32], got ${JSON.stringify(images.shape)}`);
    const p = (name: string) => this.params.get(name)!;
    return scope(() => {
      let h = hgt === 32 ? ops.slice(ops.slice(images, 2, 2, 30), 3, 2, 30) : images;
      for (const [name, , , stride] of CONVS) {
        h = ops.conv2d(h, p(`${name}.weight`), p(`${name}.bias`), { stride, padding: 1 });
        h = ops.groupNorm(h, GROUPS, p(`${name}.norm.weight`), p(`${name}.norm.bias`), { silu: true });
      }
      const features = ops.silu(ops.linear(ops.reshape(h, [n!, 64 * 16]), p("fc.weight"), p("fc.bias")));
      return { features, logits: ops.linear(features, p("head.weight"), p("head.bias")) };
    });
  }

  /** Features and predicted classes of a large set, in batches, without gradients. */
  embed(images: Tensor, batchSize = 500): { features: Float32Array; predictions: Int32Array; n: number } {
    const n = images.shape[0]!;
    const features = new Float32Array(n * FEATURE_DIM);
    const predictions = new Int32Array(n);
    noGrad(() => {
      for (let start = 0; start < n; start += batchSize) {
        scope(() => {
          const out = this.forward(ops.slice(images, 0, start, Math.min(n, start + batchSize)));
          features.set(out.features.dataSync(), start * FEATURE_DIM);
          const logits = out.logits.dataSync();
          for (let i = 0; i < logits.length / 10; ++i) {
            let best = 0;
            for (let k = 1; k < 10; ++k) if (logits[i * 10 + k]! > logits[i * 10 + best]!) best = k;
            predictions[start + i] = best;
          }
        });
      }
    });
    return { features, predictions, n };
  }

  dispose(): void {
    for (const t of this.params.values()) t.dispose();
  }
}

export interface FeatureNetTrainOptions {
  epochs?: number;
  batchSize?: number;
  lr?: number;
  seed?: number;
  /** Random translations of up to this many pixels (data augmentation) [2]. */
  shift?: number;
  onEpoch?: (epoch: number, loss: number) => void;
}

/** Cross-entropy training with Adam and random-shift augmentation. */
export async function trainFeatureNet(data: Dataset, options: FeatureNetTrainOptions = {}): Promise<FeatureNet> {
  const { epochs = 8, batchSize = 128, lr = 2e-3, seed = 0, shift = 2 } = options;
  if (data.numClasses !== 10 || data.sampleShape.join() !== "1,28,28") throw argumentError("trainFeatureNet", `needs 28×28 digits with 10 classes, got '${data.name}' ${JSON.stringify(data.sampleShape)} with ${data.numClasses} classes`);
  const net = FeatureNet.create(seed);
  const adam = new Adam(net.parameters(), { lr });
  const { BatchLoader } = await import("../data/dataset");
  const loader = new BatchLoader(data, { batchSize, seed });
  const g = new Generator(seed + 1);
  const steps = epochs * loader.batchesPerEpoch;
  for (let step = 0; step < steps; ++step) {
    const loss = scope(() => {
      const batch = loader.next();
      const x = shift > 0 ? translate(batch.x, shift, g) : batch.x;
      adam.zeroGrad();
      const { logits } = net.forward(x);
      const onehot = ops.tensor(oneHot(batch.labels!, 10), [batch.labels!.length, 10]);
      const l = ops.neg(ops.mean(ops.sum(ops.mul(ops.logSoftmax(logits, 1), onehot), 1)));
      l.backward();
      // Cosine decay to 0 over the run.
      adam.step(lr * 0.5 * (1 + Math.cos((Math.PI * step) / steps)));
      return l;
    });
    const value = (await loss.data())[0]!;
    loss.dispose();
    if ((step + 1) % loader.batchesPerEpoch === 0) options.onEpoch?.((step + 1) / loader.batchesPerEpoch, value);
  }
  adam.dispose();
  return net;
}

function oneHot(labels: Int32Array, k: number): Float32Array {
  const out = new Float32Array(labels.length * k);
  labels.forEach((c, i) => (out[i * k + c] = 1));
  return out;
}

/** Each image moved by a random integer offset in [−s, s]² (background −1 fills the gap). */
function translate(x: Tensor, s: number, g: Generator): Tensor {
  const [n, , h, w] = x.shape as [number, number, number, number];
  const src = x.dataSync();
  const offsets = ops.randValues(n * 2, { generator: g });
  const out = new Float32Array(src.length).fill(-1);
  for (let i = 0; i < n; ++i) {
    const dy = Math.floor(offsets[2 * i]! * (2 * s + 1)) - s;
    const dx = Math.floor(offsets[2 * i + 1]! * (2 * s + 1)) - s;
    for (let y = Math.max(0, dy); y < Math.min(h, h + dy); ++y)
      for (let xx = Math.max(0, dx); xx < Math.min(w, w + dx); ++xx) out[(i * h + y) * w + xx] = src[(i * h + y - dy) * w + xx - dx]!;
  }
  return ops.tensor(out, x.shape);
}
