// UNet (diffusers UNet2DModel) against the golden diffusers data (golden/README.md "models/unet2d_c1_s28":
// output, every hooked intermediate, gradients), plus config handling, variable resolution, class labels,
// error cases, the feature cache (FRDiff points, DeepCache skip branch, early exit), dropout and training.
import * as fs from "node:fs";
import * as path from "node:path";
import * as fd from "../../lib";
import { Network, FeatureCache } from "../../lib/models/network";
import { UNet, UNetClass, normalizeUNetConfig, type UNetConfig } from "../../lib/models/unet";
import { goldenFile, hostValues, readSafetensors, randomTensor } from "../helpers";

type Golden = Map<string, { shape: number[]; data: Float64Array }>;
const CASE = "models/unet2d_c1_s28";

/** A golden file's path, or null (a plain warning, or a failure under CI) when the data is absent. */
function goldenPath(file: string): string | null {
  return goldenFile(path.join(CASE, file));
}
function golden(file: string): Golden | null {
  const f = goldenPath(file);
  return f ? readSafetensors(f).tensors : null;
}
function get(g: Golden, name: string): { shape: number[]; data: Float64Array } {
  const t = g.get(name);
  if (!t) throw new Error(`golden tensor ${name} missing`);
  return t;
}

/** max over i of |a − b| / (atol + rtol·|b|); ≤ 1 passes. */
function worst(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol: number): number {
  expect(a.length).toBe(b.length);
  let w = 0;
  for (let i = 0; i < b.length; ++i) w = Math.max(w, Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!)));
  return w;
}
/** max |a − b| / max |b|. */
function relMax(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let d = 0;
  let s = 0;
  for (let i = 0; i < b.length; ++i) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / s;
}
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < b.length; ++i) d = Math.max(d, Math.abs(a[i]! - b[i]!));
  return d;
}
const bitsEqual = (a: Float32Array, b: Float32Array): boolean =>
  a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

function expectError(f: () => unknown, code: string, ...parts: (string | RegExp)[]): void {
  let err: unknown = null;
  try {
    f();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(fd.FastdiffError);
  expect((err as fd.FastdiffError).code).toBe(code);
  for (const p of parts) expect((err as Error).message).toMatch(p);
}

// ---- the golden model, loaded once ----
let net: UNet | null = null;
let x: fd.Tensor;
let t: number[];
beforeAll(async () => {
  const config = goldenPath("config.json");
  const inputs = golden("inputs.safetensors");
  if (!config || !inputs) return;
  net = await UNet.load(path.dirname(config));
  const s = get(inputs, "sample");
  x = fd.tensor(Float32Array.from(s.data), s.shape);
  t = Array.from(get(inputs, "timestep").data);
});
afterAll(() => {
  net?.dispose();
});

/** The point that a golden intermediate (forward-hook naming, golden/README.md) corresponds to. */
function pointFor(name: string, layers: number, attnDown: boolean[]): string {
  const block = /^down_blocks\.(\d+)\.0$/.exec(name);
  if (block) return `down_blocks.${block[1]}`;
  const skip = /^down_blocks\.(\d+)\.1\.(\d+)$/.exec(name);
  if (skip) {
    // the j-th tensor a down block pushes: its units' outputs, then its downsampler's
    const i = Number(skip[1]);
    const j = Number(skip[2]);
    if (j === layers) return `down_blocks.${i}.downsamplers.0`;
    return `down_blocks.${i}.${attnDown[i] ? "attentions" : "resnets"}.${j}`;
  }
  return name;
}

describe("golden diffusers UNet2DModel (unet2d_c1_s28)", () => {
  test("config: both diffusers key sets normalize to the same config; parameters match the state dict", () => {
    const c38 = goldenPath("config.json");
    const c30 = goldenPath("config.diffusers-0.30.3.json");
    const meta = goldenPath("meta.json");
    if (!c38 || !c30 || !meta || !net) return;
    const a = normalizeUNetConfig(JSON.parse(fs.readFileSync(c38, "utf8")));
    const b = normalizeUNetConfig(JSON.parse(fs.readFileSync(c30, "utf8")));
    expect(b).toEqual(a);
    expect(a).not.toHaveProperty("_class_name");
    expect(a.mid_block_type).toBe("UNetMidBlock2D");
    const stateDict = (JSON.parse(fs.readFileSync(meta, "utf8")).state_dict as { name: string; shape: number[] }[]).map(
      ({ name, shape }) => ({ name, shape }),
    );
    expect(Network.specs("UNet2DModel", a)).toEqual(stateDict); // names, shapes and module order
    expect(net.parameterInfo()).toEqual(stateDict);
    expect(net.numParameters).toBe(701345);
  });

  test("forward output matches diffusers (atol/rtol 1e-4)", () => {
    const out = golden("outputs.safetensors");
    if (!out || !net) return;
    fd.scope(() => {
      const y = net!.forward(x, t);
      expect(y.shape).toEqual([2, 1, 28, 28]);
      expect(worst(y.dataSync(), get(out, "sample").data, 1e-4, 1e-4)).toBeLessThanOrEqual(1);
    });
  });

  test("every stored intermediate matches through forwardFeatures (atol/rtol 1e-4)", () => {
    const inter = golden("intermediates.safetensors");
    if (!inter || !net) return;
    const attnDown = (net.config.down_block_types as string[]).map((s) => s.endsWith("AttnDownBlock2D"));
    const layers = net.config.layers_per_block as number;
    fd.scope(() => {
      const plain = net!.forward(x, t).dataSync();
      const { output, features } = net!.forwardFeatures(x, t, { features: net!.blocks() });
      expect([...features.keys()]).toEqual(net!.blocks()); // every point, in forward order
      // Looking at conv_norm_out un-fuses the head's GroupNorm+SiLU: the output is still the same bits.
      expect(bitsEqual(output!.dataSync(), plain)).toBe(true);
      expect(inter.size).toBe(28);
      for (const [name, ref] of inter) {
        const value = features.get(pointFor(name, layers, attnDown));
        expect({ name, shape: value?.shape }).toEqual({ name, shape: ref.shape });
        const w = worst(value!.dataSync(), ref.data, 1e-4, 1e-4);
        if (w > 1) throw new Error(`${name}: worst error ratio ${w}`);
      }
    });
  });

  test("gradients of sum(out·R) wrt the input and the named parameters (max|diff| ≤ 1e-4·max|ref|)", () => {
    const g = golden("grads.safetensors");
    if (!g || !net) return;
    fd.scope(() => {
      const R = get(g, "R");
      const xg = x.detach().clone();
      xg.requiresGrad = true;
      const loss = fd.sum(fd.mul(net!.forward(xg, t), fd.tensor(Float32Array.from(R.data), R.shape)));
      expect(Math.abs(loss.item() - get(g, "loss").data[0]!)).toBeLessThanOrEqual(1e-4 * Math.abs(get(g, "loss").data[0]!) + 1e-4);
      for (const p of net!.parameters()) p.grad = null;
      loss.backward();
      expect(relMax(xg.grad!.dataSync(), get(g, "grad.sample").data)).toBeLessThanOrEqual(1e-4);
      const params = new Map(net!.namedParameters());
      const names = [...g.keys()].filter((k) => k.startsWith("grad.") && k !== "grad.sample").map((k) => k.slice(5));
      expect(names.length).toBe(5);
      for (const name of names) {
        const grad = params.get(name)!.grad;
        expect(grad).not.toBeNull();
        const err = relMax(grad!.dataSync(), get(g, `grad.${name}`).data);
        if (err > 1e-4) throw new Error(`grad ${name}: relative error ${err}`);
      }
      for (const p of net!.parameters()) p.grad = null;
    });
  });
});

// ---- small fresh networks ----
const tiny: Partial<UNetConfig> = {
  in_channels: 2, out_channels: 2, layers_per_block: 1, block_out_channels: [8, 16, 16], norm_num_groups: 4,
  down_block_types: ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"],
  up_block_types: ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"], attention_head_dim: 8,
};

describe("config", () => {
  test("defaults are diffusers'; unknown and private keys are ignored; an explicit null keeps its meaning", () => {
    const c = normalizeUNetConfig({ _class_name: "UNet2DModel", _diffusers_version: "0.30.3", _name_or_path: "x", foo: 1 });
    expect(Object.keys(c).filter((k) => k.startsWith("_") || k === "foo")).toEqual([]);
    expect(c).toMatchObject({
      in_channels: 3, out_channels: 3, block_out_channels: [224, 448, 672, 896], layers_per_block: 2, norm_num_groups: 32,
      attention_head_dim: 8, mid_block_type: "UNetMidBlock2D", time_embedding_type: "positional", flip_sin_to_cos: true,
      freq_shift: 0, norm_eps: 1e-5, downsample_padding: 1, num_class_embeds: null, time_embedding_dim: null,
    });
    expect(normalizeUNetConfig({ mid_block_type: null }).mid_block_type).toBeNull();
    expect(normalizeUNetConfig({ attention_head_dim: null }).attention_head_dim).toBeNull();
  });

  test("bad values are ERR_ARGUMENT naming the key", () => {
    const bad: [Record<string, unknown>, string][] = [
      [{ in_channels: 0 }, "in_channels"],
      [{ block_out_channels: [32, 64], down_block_types: ["DownBlock2D"] }, "block_out_channels"],
      [{ norm_num_groups: 5 }, "norm_num_groups"],
      [{ down_block_types: ["CrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"] }, "down_block_types"],
      [{ time_embedding_type: "sinusoid" }, "time_embedding_type"],
      [{ class_embed_type: "identity" }, "class_embed_type"],
      [{ resnet_time_scale_shift: "spatial" }, "resnet_time_scale_shift"],
      [{ downsample_type: "fir" }, "downsample_type"],
      [{ downsample_padding: 2 }, "downsample_padding"],
      [{ dropout: 1 }, "dropout"],
      [{ act_fn: "gelu" }, "act_fn"],
      [{ norm_num_groups: null }, "norm_num_groups"],
      [{ attention_head_dim: 1000 }, "attention_head_dim"],
      [{ time_embedding_type: "learned" }, "num_train_timesteps"],
    ];
    for (const [raw, key] of bad) expectError(() => normalizeUNetConfig(raw), "ERR_ARGUMENT", new RegExp(`'${key}'`));
  });
});

describe("shapes and labels", () => {
  test("variable resolution: any H×W divisible by 2^(levels−1); others are ERR_SHAPE naming shape and factor", () => {
    if (!net) return;
    fd.scope(() => {
      expect(net!.downFactor).toBe(2);
      expect(net!.forward(randomTensor([2, 1, 32, 24], 11), [10, 900]).shape).toEqual([2, 1, 32, 24]);
      expect(net!.forward(randomTensor([1, 1, 6, 10], 12), 3).shape).toEqual([1, 1, 6, 10]);
      expectError(() => net!.forward(randomTensor([2, 1, 27, 28], 13), t), "ERR_SHAPE", /\[2, 1, 27, 28\]/, /multiples of 2\b/);
      const u = UNet.create(tiny, { seed: 1 });
      expect(u.downFactor).toBe(4);
      expect(u.forward(randomTensor([1, 2, 12, 20], 14), 5).shape).toEqual([1, 2, 12, 20]);
      expectError(() => u.forward(randomTensor([1, 2, 12, 18], 15), 5), "ERR_SHAPE", /\[1, 2, 12, 18\]/, /multiples of 4\b/);
      u.dispose();
    });
  });

  test("wrong channel count is ERR_SHAPE naming both", () => {
    if (!net) return;
    expectError(() => net!.forward(randomTensor([2, 3, 28, 28], 16), t), "ERR_SHAPE", /\[2, 3, 28, 28\]/, /in_channels = 1/);
  });

  test("class labels: a class-conditional UNet needs them, in range; an unconditional one refuses them", () => {
    const u = UNet.create({ ...tiny, num_class_embeds: 3 }, { seed: 2 });
    expect(u.numClasses).toBe(3);
    expect(u.blocks()).toContain("class_embedding");
    expect(u.parameterInfo().find((p) => p.name === "class_embedding.weight")?.shape).toEqual([3, 32]); // [classes, 4·C0]
    fd.scope(() => {
      const xs = randomTensor([2, 2, 8, 8], 17);
      const a = u.forward(xs, [3, 3], { classLabels: [0, 1] }).dataSync();
      const b = u.forward(xs, [3, 3], { classLabels: [2, 1] }).dataSync();
      expect(a.slice(0, 128)).not.toEqual(b.slice(0, 128)); // sample 0's label changed
      expect(a.slice(128)).toEqual(b.slice(128)); // sample 1's did not
      expectError(() => u.forward(xs, [3, 3]), "ERR_ARGUMENT", /classLabels|class labels/);
      expectError(() => u.forward(xs, [3, 3], { classLabels: [0, 3] }), "ERR_ARGUMENT", /3/);
      if (net) expectError(() => net!.forward(x, t, { classLabels: [0, 1] }), "ERR_ARGUMENT", /class/);
      // class_embed_type "timestep": labels embedded like timesteps, through an MLP
      const ts = UNet.create({ ...tiny, class_embed_type: "timestep", num_class_embeds: 10 }, { seed: 3 });
      expect(ts.parameterInfo().find((p) => p.name === "class_embedding.linear_1.weight")?.shape).toEqual([32, 8]);
      const c = ts.forward(xs, 3, { classLabels: [4, 9] }).dataSync();
      const d = ts.forward(xs, 3, { classLabels: [5, 9] }).dataSync();
      expect(c.slice(0, 128)).not.toEqual(d.slice(0, 128));
      expect(c.slice(128)).toEqual(d.slice(128));
      ts.dispose();
    });
    u.dispose();
  });

  test("null_class (fastdiff extension): the last table row is the unconditional label for guidance", () => {
    const u = UNet.create({ ...tiny, num_class_embeds: 4, null_class: 3 }, { seed: 4 });
    expect(u.numClasses).toBe(3);
    expect(u.nullClass).toBe(3);
    expect(u.parameterInfo().find((p) => p.name === "class_embedding.weight")?.shape).toEqual([4, 32]); // diffusers-loadable
    fd.scope(() => {
      const xs = randomTensor([2, 2, 8, 8], 18);
      const cond = u.forward(xs, [3, 3], { classLabels: [1, 2] });
      const uncond = u.forward(xs, [3, 3], { classLabels: [3, 3] });
      // CFG through the denoiser is D_u + w·(D_c − D_u), one batched forward of both halves.
      const den = new fd.NetworkDenoiser(u, { type: "ddpm" });
      const w = 2.5;
      const guided = den.denoise(xs, [1, 1], { classLabels: [1, 2], guidance: w }).dataSync();
      const dc = den.denoise(xs, [1, 1], { classLabels: [1, 2] }).dataSync();
      const du = den.denoise(xs, [1, 1], { classLabels: [3, 3] }).dataSync();
      guided.forEach((g, i) => expect(Math.abs(g - (du[i]! + w * (dc[i]! - du[i]!)))).toBeLessThan(1e-5));
      expect(cond.dataSync()).not.toEqual(uncond.dataSync());
      expectError(() => u.forward(xs, [3, 3], { classLabels: [0, 4] }), "ERR_ARGUMENT", /4/);
    });
    u.dispose();
    for (const bad of [{ num_class_embeds: 4, null_class: 2 }, { null_class: 0 }])
      expectError(() => UNet.create({ ...tiny, ...bad }), "ERR_ARGUMENT", /null_class/);
  });
});

describe("errors", () => {
  test("a missing weight is ERR_FORMAT naming it; so is a wrong shape and an unexpected one", async () => {
    const c = goldenPath("config.json");
    const w = goldenPath("diffusion_pytorch_model.safetensors");
    if (!c || !w) return;
    const config = normalizeUNetConfig(JSON.parse(fs.readFileSync(c, "utf8")));
    const { tensors } = await fd.readSafetensors(w);
    try {
      const name = "mid_block.attentions.0.to_k.bias";
      const missing = new Map(tensors);
      missing.delete(name);
      expectError(() => Network.build(UNetClass, config, missing), "ERR_FORMAT", new RegExp(name.replace(/\./g, "\\.")));
      const wrong = new Map(tensors);
      const bad = fd.zeros([32, 1, 5, 5]);
      wrong.set("conv_in.weight", bad);
      expectError(() => Network.build(UNetClass, config, wrong), "ERR_FORMAT", /conv_in\.weight/, /\[32, 1, 5, 5\]/, /\[32, 1, 3, 3\]/);
      const extra = new Map(tensors);
      extra.set("class_embedding.weight", bad);
      expectError(() => Network.build(UNetClass, config, extra), "ERR_FORMAT", /class_embedding\.weight/);
      bad.dispose();
    } finally {
      for (const v of tensors.values()) v.dispose();
    }
  });

  test("reuse without a stored value, and reuse at another input shape, are errors", () => {
    if (!net) return;
    const cache = new FeatureCache();
    expectError(() => net!.forward(x, t, { cache, reuse: true }), "ERR_ARGUMENT", /\.conv1/);
    fd.scope(() => {
      net!.forward(x, t, { cache, store: true });
      expectError(() => net!.forward(randomTensor([2, 1, 32, 24], 18), t, { cache, reuse: true }), "ERR_SHAPE");
    });
    cache.reset();
  });
});

describe("feature cache", () => {
  test("points: reusePoints are every ResNet conv1 and attention to_out, in forward order", () => {
    if (!net) return;
    const blocks = net.blocks();
    const reuse = net.reusePoints();
    expect(reuse).toEqual(blocks.filter((b) => b.endsWith(".conv1") || b.endsWith(".to_out")));
    expect(reuse).toEqual([
      "down_blocks.0.resnets.0.conv1", "down_blocks.1.resnets.0.conv1", "down_blocks.1.attentions.0.to_out",
      "mid_block.resnets.0.conv1", "mid_block.attentions.0.to_out", "mid_block.resnets.1.conv1",
      "up_blocks.0.resnets.0.conv1", "up_blocks.0.attentions.0.to_out", "up_blocks.0.resnets.1.conv1",
      "up_blocks.0.attentions.1.to_out", "up_blocks.1.resnets.0.conv1", "up_blocks.1.resnets.1.conv1",
    ]);
    expect(blocks.slice(0, 8)).toEqual([
      "time_proj", "time_embedding", "conv_in", "down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0",
      "down_blocks.0.downsamplers.0", "down_blocks.0", "down_blocks.1.resnets.0.conv1",
    ]);
    expect(blocks.slice(-4)).toEqual(["up_blocks.1", "conv_norm_out", "conv_act", "conv_out"]);
  });

  test("features have the documented shapes", () => {
    if (!net) return;
    fd.scope(() => {
      const xs = randomTensor([3, 1, 12, 16], 19);
      const { features } = net!.forwardFeatures(xs, 7, { features: net!.blocks() });
      const shape = (n: string) => features.get(n)!.shape;
      expect(shape("time_proj")).toEqual([3, 32]);
      expect(shape("time_embedding")).toEqual([3, 128]);
      expect(shape("conv_in")).toEqual([3, 32, 12, 16]);
      expect(shape("down_blocks.0.resnets.0.conv1")).toEqual([3, 32, 12, 16]);
      expect(shape("down_blocks.0")).toEqual([3, 32, 6, 8]);
      expect(shape("down_blocks.1.attentions.0.to_out")).toEqual([3, 64, 6, 8]);
      expect(shape("mid_block")).toEqual([3, 64, 6, 8]);
      expect(shape("up_blocks.0.resnets.0.conv1")).toEqual([3, 64, 6, 8]);
      expect(shape("up_blocks.0.upsamplers.0")).toEqual([3, 64, 12, 16]);
      expect(shape("up_blocks.0")).toEqual([3, 64, 12, 16]);
      expect(shape("up_blocks.1")).toEqual([3, 32, 12, 16]);
      expect(shape("conv_norm_out")).toEqual([3, 32, 12, 16]);
      expect(shape("conv_out")).toEqual([3, 1, 12, 16]);
    });
  });

  test("with nothing reused the output is bit-identical; full reuse at the same step reproduces it", () => {
    if (!net) return;
    const cache = new FeatureCache();
    fd.scope(() => {
      const plain = net!.forward(x, t).dataSync();
      const stored = net!.forward(x, t, { cache, store: true }).dataSync();
      expect(bitsEqual(stored, plain)).toBe(true);
      expect(cache.size).toBe(net!.reusePoints().length);
      expect(bitsEqual(net!.forward(x, t, { cache, reuse: [] }).dataSync(), plain)).toBe(true);
      const withFeatures = net!.forwardFeatures(x, t, { features: ["mid_block", "up_blocks.0.resnets.1.conv1"], cache, store: ["*"] });
      expect(bitsEqual(withFeatures.output!.dataSync(), plain)).toBe(true);
      const reused = net!.forward(x, t, { cache, reuse: true }).dataSync();
      expect(bitsEqual(reused, plain)).toBe(true);
    });
    cache.reset();
  });

  test("reuse at another timestep: differs from the plain forward there, finite, and only what FRDiff reuses is stale", () => {
    if (!net) return;
    const cache = new FeatureCache();
    fd.scope(() => {
      net!.forward(x, [500, 500], { cache, store: true });
      const plain = net!.forward(x, [400, 400]).dataSync();
      const fr = net!.forward(x, [400, 400], { cache, reuse: true }).dataSync();
      expect(fr.every(Number.isFinite)).toBe(true);
      const d = maxAbsDiff(fr, plain);
      expect(d).toBeGreaterThan(1e-5);
      expect(d).toBeLessThan(1); // a close, cheaper approximation at a nearby step
      // the time path is fresh: reusing only conv1 outputs still sees the new t in norm2 and conv2
      const partial = net!.forward(x, [400, 400], { cache, reuse: ["*.conv1"] }).dataSync();
      expect(bitsEqual(partial, fr)).toBe(false);
    });
    cache.reset();
  });

  test("DeepCache: reusing up_blocks.i skips the deep path and reproduces the cached step", () => {
    if (!net) return;
    const cache = new FeatureCache();
    fd.scope(() => {
      const plain = net!.forward(x, t).dataSync();
      net!.forward(x, t, { cache, store: ["up_blocks.0"] });
      expect([...cache.entries().keys()]).toEqual(["up_blocks.0"]);
      const all = net!.blocks();
      const r = net!.forwardFeatures(x, t, { cache, reuse: ["up_blocks.0"], features: all });
      expect(bitsEqual(r.output!.dataSync(), plain)).toBe(true);
      // computed: the time path, conv_in, down block 0's ResNet (the shallow skip), up block 1 and the head
      expect([...r.features.keys()]).toEqual([
        "time_proj", "time_embedding", "conv_in", "down_blocks.0.resnets.0.conv1", "down_blocks.0.resnets.0", "up_blocks.0",
        "up_blocks.1.resnets.0.conv1", "up_blocks.1.resnets.0", "up_blocks.1.resnets.1.conv1", "up_blocks.1.resnets.1",
        "up_blocks.1", "conv_norm_out", "conv_act", "conv_out",
      ]);
      // at another t the shallow branch is fresh: the output moves, but stays finite
      const other = net!.forward(x, [300, 300], { cache, reuse: ["up_blocks.0"] }).dataSync();
      expect(other.every(Number.isFinite)).toBe(true);
      expect(bitsEqual(other, plain)).toBe(false);
      // the last up block reused: only the time path and the output head run
      net!.forward(x, t, { cache, store: ["up_blocks.1"] });
      const last = net!.forwardFeatures(x, t, { cache, reuse: ["up_blocks.1"], features: all });
      expect(bitsEqual(last.output!.dataSync(), plain)).toBe(true);
      expect([...last.features.keys()]).toEqual(["time_proj", "time_embedding", "up_blocks.1", "conv_norm_out", "conv_act", "conv_out"]);
    });
    cache.reset();
  });

  test("DeepCache on three levels: any up block can be the cached branch", () => {
    const u = UNet.create({ ...tiny, layers_per_block: 2 }, { seed: 6 });
    const cache = new FeatureCache();
    fd.scope(() => {
      const xs = randomTensor([2, 2, 8, 12], 23);
      const plain = u.forward(xs, [20, 700]).dataSync();
      u.forward(xs, [20, 700], { cache, store: ["up_blocks.*"] });
      const ran = (k: number) => {
        const r = u.forwardFeatures(xs, [20, 700], { cache, reuse: [`up_blocks.${k}`], features: u.blocks() });
        expect(bitsEqual(r.output!.dataSync(), plain)).toBe(true);
        return [...r.features.keys()].filter((n) => /^(down_blocks\.\d+(\.(resnets|attentions|downsamplers)\.\d+)?|mid_block|up_blocks\.\d+)$/.test(n));
      };
      // up block 0 cached: up blocks 1, 2 need conv_in, down block 0 (3 skips) and down block 1's two units
      expect(ran(0)).toEqual([
        "down_blocks.0.resnets.0", "down_blocks.0.resnets.1", "down_blocks.0.downsamplers.0", "down_blocks.0",
        "down_blocks.1.resnets.0", "down_blocks.1.attentions.0", "down_blocks.1.resnets.1", "down_blocks.1.attentions.1",
        "up_blocks.0", "up_blocks.1", "up_blocks.2",
      ]);
      // up block 1 cached: up block 2 needs conv_in and down block 0's two units
      expect(ran(1)).toEqual(["down_blocks.0.resnets.0", "down_blocks.0.resnets.1", "up_blocks.1", "up_blocks.2"]);
    });
    cache.reset();
    u.dispose();
  });

  test("early exit returns the wanted features and no output", () => {
    if (!net) return;
    fd.scope(() => {
      const r = net!.forwardFeatures(x, t, { features: ["mid_block"], earlyExit: true });
      expect(r.output).toBeNull();
      expect(r.features.get("mid_block")!.shape).toEqual([2, 64, 14, 14]);
      const full = net!.forwardFeatures(x, t, { features: ["mid_block"] });
      expect(bitsEqual(full.features.get("mid_block")!.dataSync(), r.features.get("mid_block")!.dataSync())).toBe(true);
    });
  });
});

describe("train mode and training", () => {
  test("dropout 0.5: train() outputs differ call to call and from eval(); eval is reproducible", () => {
    const u = UNet.create({ ...tiny, dropout: 0.5 }, { seed: 4 }).manualSeed(9);
    fd.scope(() => {
      const xs = randomTensor([2, 2, 8, 8], 20);
      const e1 = u.forward(xs, 10).dataSync();
      const e2 = u.forward(xs, 10).dataSync();
      expect(bitsEqual(e1, e2)).toBe(true);
      u.train();
      const a = u.forward(xs, 10).dataSync();
      const b = u.forward(xs, 10).dataSync();
      expect(bitsEqual(a, b)).toBe(false);
      expect(bitsEqual(a, e1)).toBe(false);
      u.manualSeed(9);
      expect(bitsEqual(u.forward(xs, 10).dataSync(), a)).toBe(true); // seeded
      u.eval();
      expect(bitsEqual(u.forward(xs, 10).dataSync(), e1)).toBe(true);
    });
    u.dispose();
  });

  test("a small fresh UNet trains: Adam steps on a fixed batch reduce the MSE", () => {
    const u = UNet.create({ ...tiny, block_out_channels: [8, 16], down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"] }, { seed: 5 });
    const opt = new fd.Adam(u.parameters(), { lr: 3e-3 });
    const xs = randomTensor([4, 2, 8, 8], 21);
    const target = randomTensor([4, 2, 8, 8], 22, 0.5);
    const losses: number[] = [];
    for (let step = 0; step < 25; ++step) {
      fd.scope(() => {
        opt.zeroGrad();
        const loss = fd.mseLoss(u.forward(xs, [1, 50, 300, 900]), target);
        loss.backward();
        opt.step();
        losses.push(loss.item());
      });
    }
    expect(losses.every(Number.isFinite)).toBe(true);
    expect(losses[losses.length - 1]!).toBeLessThan(0.5 * losses[0]!);
    opt.dispose();
    u.dispose();
  });
});

// ---- config variants the golden data does not cover, against an independent float64 re-implementation ----
// Reference numbers from a numpy float64 UNet2DModel written from diffusers' source (unet_2d.py, unet_2d_blocks.py,
// resnet.py, attention_processor.py, embeddings.py), fed the same weights and inputs (host random values below, so
// they do not depend on the engine's RNG): Σy, Σ y·R and the directional derivative ⟨∇ₓ Σ y·R, v⟩ (central
// differences in float64), and Σ|y| for the tolerance.
interface Variant {
  config: Record<string, unknown>;
  shape: number[];
  t: number[];
  labels?: number[];
  ref: { sum: number; dot: number; grad: number; absSum: number };
}
const VARIANTS: Record<string, Variant> = {
  // σ-conditioned score model: Fourier features of log σ (output ÷ σ), scale-shift ResNets, ResNet resamplers,
  // padding-0 down-sampling conv, mid scale factor, centred input, one head per block, "timestep" class embedding
  fourier: {
    config: {
      in_channels: 2, out_channels: 3, layers_per_block: 2, block_out_channels: [8, 16, 24], norm_num_groups: 4,
      down_block_types: ["DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"],
      attention_head_dim: null, time_embedding_type: "fourier", resnet_time_scale_shift: "scale_shift", downsample_type: "resnet",
      upsample_type: "resnet", mid_block_scale_factor: 2, downsample_padding: 0, center_input_sample: true,
      class_embed_type: "timestep", time_embedding_dim: 24,
    },
    shape: [2, 2, 8, 12], t: [0.7, 13], labels: [4, 9],
    ref: { sum: -38.0204002, dot: -0.993507313, grad: 12.2812881, absSum: 105.1 },
  },
  // learned time table, class table, no mid block, attention at full resolution, [sin, cos] with a freq shift
  learned: {
    config: {
      in_channels: 1, out_channels: 1, layers_per_block: 1, block_out_channels: [8, 16], norm_num_groups: 2,
      down_block_types: ["AttnDownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "AttnUpBlock2D"], attention_head_dim: 4,
      time_embedding_type: "learned", num_train_timesteps: 50, num_class_embeds: 5, mid_block_type: null, flip_sin_to_cos: false,
      freq_shift: 1,
    },
    shape: [2, 1, 6, 4], t: [3, 49], labels: [1, 4],
    ref: { sum: -0.430385684, dot: -0.265081609, grad: 1.29467864, absSum: 8.264 },
  },
  // mid block without attention, positional [sin, cos] with a freq shift, a mid scale factor, a set time_embedding_dim
  midless_attention: {
    config: {
      in_channels: 1, out_channels: 2, layers_per_block: 1, block_out_channels: [8, 16], norm_num_groups: 4,
      down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"], attention_head_dim: 8,
      add_attention: false, flip_sin_to_cos: false, freq_shift: 1, mid_block_scale_factor: 1.5, time_embedding_dim: 16,
    },
    shape: [1, 1, 4, 8], t: [640],
    ref: { sum: 7.49240602, dot: -0.250022625, grad: -2.40428658, absSum: 15.83 },
  },
  // scale-shift ResNets with a separate mid-attention group count, ResNet resamplers
  scale_shift: {
    config: {
      in_channels: 1, out_channels: 1, layers_per_block: 1, block_out_channels: [8, 16], norm_num_groups: 4,
      down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"], attention_head_dim: 4,
      attn_norm_num_groups: 2, resnet_time_scale_shift: "scale_shift", upsample_type: "resnet", downsample_type: "resnet",
    },
    shape: [2, 1, 8, 8], t: [5, 999],
    ref: { sum: 8.01566521, dot: -1.46925403, grad: -0.10527377, absSum: 25.57 },
  },
};

/** Deterministic weights from host random values: norms 1 ± 0.1, other 1-D tensors ± 0.05, matrices ± 1/√fan_in. */
function hostWeights(config: Record<string, unknown>): Map<string, fd.Tensor> {
  const out = new Map<string, fd.Tensor>();
  Network.specs("UNet2DModel", config).forEach(({ name, shape }, i) => {
    const fanIn = shape.slice(1).reduce((a, b) => a * b, 1);
    const norm = /norm[^.]*\.weight$/.test(name);
    const scale = shape.length === 1 ? (norm ? 0.1 : 0.05) : 1 / Math.sqrt(fanIn);
    out.set(name, fd.tensor(hostValues(shape, 1000 + i, scale, norm ? 1 : 0), shape));
  });
  return out;
}

describe.each(Object.keys(VARIANTS))("config variant %s against a float64 re-implementation", (name) => {
  test("Σy, Σy·R and ⟨∇ₓΣy·R, v⟩", () => {
    const { config, shape, t: ts, labels, ref } = VARIANTS[name]!;
    const cfg = normalizeUNetConfig(config);
    const weights = hostWeights(cfg);
    const u = Network.build(UNetClass, cfg, weights) as UNet;
    for (const w of weights.values()) w.dispose();
    fd.scope(() => {
      const xg = fd.tensor(hostValues(shape, 7), shape);
      xg.requiresGrad = true;
      const { output, features } = u.forwardFeatures(xg, ts, { classLabels: labels, features: u.blocks() });
      expect([...features.keys()]).toEqual(u.blocks()); // blocks() is the forward order
      const y = output!;
      expect(y.shape).toEqual([shape[0]!, cfg.out_channels as number, shape[2]!, shape[3]!]);
      const R = fd.tensor(hostValues(y.shape, 8), y.shape);
      const yv = y.dataSync();
      let sum = 0;
      let dot = 0;
      const rv = R.dataSync();
      for (let i = 0; i < yv.length; ++i) {
        sum += yv[i]!;
        dot += yv[i]! * rv[i]!;
      }
      expect(Math.abs(sum - ref.sum)).toBeLessThanOrEqual(2e-5 * ref.absSum);
      expect(Math.abs(dot - ref.dot)).toBeLessThanOrEqual(2e-5 * ref.absSum);
      fd.sum(fd.mul(y, R)).backward();
      const g = xg.grad!.dataSync();
      const v = hostValues(shape, 9);
      let dir = 0;
      for (let i = 0; i < g.length; ++i) dir += g[i]! * v[i]!;
      expect(Math.abs(dir - ref.grad)).toBeLessThanOrEqual(1e-4 * Math.max(1, Math.abs(ref.grad)));
    });
    u.dispose();
  });
});
