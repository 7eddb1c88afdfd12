// DiT (diffusers DiTTransformer2DModel): the golden forward and every mapped intermediate, gradients against
// finite differences, variable resolution, the null class, errors, and the feature cache / early exit.
import * as path from "node:path";
import * as fd from "../../lib";
import { DiT, DiTClass, normalizeDiTConfig } from "../../lib/models/dit";
import { Network } from "../../lib/models/network";
import { goldenFile, hostRandom, randomTensor, readSafetensors, bitEqual, expectCode } from "../helpers";

type Golden = Map<string, { shape: number[]; data: Float64Array }>;

/** max over i of |a − b| / (atol + rtol·|b|); ≤ 1 passes. */
function worst(a: ArrayLike<number>, b: ArrayLike<number>, atol = 1e-4, rtol = 1e-4): number {
  expect(a.length).toBe(b.length);
  let w = 0;
  for (let i = 0; i < b.length; ++i) w = Math.max(w, Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!)));
  return w;
}


// ---------------------------------------------------------------- golden (diffusers 0.38 / 0.30.3)

describe("golden dit_s16_p2", () => {
  let net: DiT | null = null;
  let inputs: Golden;
  let inter: Golden;
  let x: fd.Tensor;
  let t: number[];
  let labels: number[];
  const dir = (): string | null => {
    const f = goldenFile(path.join("models", "dit_s16_p2", "config.json"));
    return f ? path.dirname(f) : null;
  };

  beforeAll(async () => {
    const d = dir();
    if (!d) return;
    net = await DiT.load(d);
    inputs = readSafetensors(path.join(d, "inputs.safetensors")).tensors;
    inter = readSafetensors(path.join(d, "intermediates.safetensors")).tensors;
    const s = inputs.get("sample")!;
    x = fd.tensor(Float32Array.from(s.data), s.shape);
    t = Array.from(inputs.get("timestep")!.data);
    labels = Array.from(inputs.get("class_labels")!.data);
  });
  afterAll(() => net?.dispose());

  test("both config files normalize to the same config; sizes as diffusers builds them", () => {
    const d = dir();
    if (!d || !net) return;
    const fs = require("node:fs") as typeof import("node:fs");
    const stored = JSON.parse(fs.readFileSync(path.join(d, "config.json"), "utf8")) as Record<string, unknown>;
    const a = normalizeDiTConfig(stored);
    // Exactly diffusers' keys and values (what `save` writes back).
    expect(a).toEqual(Object.fromEntries(Object.entries(stored).filter(([k]) => !k.startsWith("_"))));
    const b = normalizeDiTConfig(JSON.parse(fs.readFileSync(path.join(d, "config.diffusers-0.30.3.json"), "utf8")));
    expect(a).toEqual(b);
    expect(net.config).toEqual(a);
    expect(net.numParameters).toBe(60272);
    expect(net.numClasses).toBe(10);
    expect(net.nullClass).toBe(10); // the golden inputs use it: labels [3, 7, 10]
    expect(net.namedParameters().find(([n]) => n.endsWith("embedding_table.weight"))![1].shape).toEqual([11, 32]);
    expect(net.reusePoints()).toEqual(["transformer_blocks.0.attn1", "transformer_blocks.1.attn1"]);
  });

  test("forward output matches diffusers to atol/rtol 1e-4", () => {
    if (!net) return;
    const ref = readSafetensors(path.join(dir()!, "outputs.safetensors")).tensors;
    fd.scope(() => {
      const out = net!.forward(x, t, { classLabels: labels });
      expect(out.shape).toEqual([3, 4, 16, 16]);
      expect(worst(out.dataSync(), ref.get("sample")!.data)).toBeLessThanOrEqual(1);
      expect(worst(out.dataSync(), ref.get("sample_f64")!.data)).toBeLessThanOrEqual(1);
    });
  });

  test("every intermediate matches to atol/rtol 1e-4", () => {
    if (!net) return;
    fd.scope(() => {
      const { output, features } = net!.forwardFeatures(x, t, { classLabels: labels, features: net!.blocks() });
      expect(output).not.toBeNull();
      const D = 32;
      const checked: string[] = [];
      const check = (ours: ArrayLike<number>, key: string) => {
        const g = inter.get(key);
        if (!g) throw new Error(`golden tensor ${key} missing`);
        expect([key, worst(ours, g.data)]).toEqual([key, expect.any(Number)]);
        expect(worst(ours, g.data)).toBeLessThanOrEqual(1);
        checked.push(key);
      };
      for (const [name, value] of features) {
        if (name.endsWith(".residual")) continue; // fastdiff's DeepCache point (output − input): no diffusers tensor
        if (name.endsWith(".norm1.linear")) {
          // [B, 6D] = shift_msa, scale_msa, gate_msa (.norm1.1), shift_mlp (.2), scale_mlp (.3), gate_mlp (.4)
          const m = value.dataSync();
          for (let k = 1; k <= 4; ++k) {
            const part: number[] = [];
            for (let b = 0; b < 3; ++b) for (let d = 0; d < D; ++d) part.push(m[b * 6 * D + (k + 1) * D + d]!);
            check(part, `${name.slice(0, -".linear".length)}.${k}`);
          }
          continue;
        }
        expect(value.shape).toEqual(inter.get(name)!.shape);
        check(value.dataSync(), name);
      }
      // The final layer re-uses block 0's embedder (diffusers calls it a second time).
      check(features.get("transformer_blocks.0.norm1.emb")!.dataSync(), "transformer_blocks.0.norm1.emb@call2");
      // The embedder's parts: time_proj (Timesteps(256, flip_sin_to_cos, shift 1), shared by all blocks),
      // class_embedder (table rows), timestep_embedder (= emb − class rows).
      const params = new Map(net!.namedParameters());
      const tProj = fd.timestepEmbedding(fd.tensor(t, [3]), 256, { flipSinToCos: true, downscaleFreqShift: 1 }).dataSync();
      for (const b of [0, 1]) {
        const prefix = `transformer_blocks.${b}.norm1.emb`;
        const rows = fd.embedding(params.get(`${prefix}.class_embedder.embedding_table.weight`)!, labels);
        const timeEmb = fd.sub(features.get(prefix)!, rows);
        for (const call of b === 0 ? ["", "@call2"] : [""]) {
          check(tProj, `${prefix}.time_proj${call}`);
          check(rows.dataSync(), `${prefix}.class_embedder${call}`);
          check(timeEmb.dataSync(), `${prefix}.timestep_embedder${call}`);
        }
      }
      check(features.get("pos_embed")!.dataSync(), "pos_embed");
      // Every tensor of intermediates.safetensors but the buffer (next test) was compared.
      expect(new Set(checked).size).toBe(inter.size - 1);
    });
  });

  test("positions at 16×16 equal diffusers' pos_embed buffer (pos_embed of a zero input minus the conv bias)", () => {
    if (!net) return;
    fd.scope(() => {
      const zero = fd.zeros([1, 4, 16, 16]);
      const { features } = net!.forwardFeatures(zero, [0], { classLabels: [0], features: ["pos_embed"], earlyExit: true });
      const bias = new Map(net!.namedParameters()).get("pos_embed.proj.bias")!;
      const pos = fd.sub(features.get("pos_embed")!, bias).dataSync();
      expect(worst(pos, inter.get("buffer.pos_embed.pos_embed")!.data, 1e-6, 1e-5)).toBeLessThanOrEqual(1);
    });
  });

  test("variable resolution: 24×32 runs with positions recomputed like PatchEmbed (base_size 8)", () => {
    if (!net) return;
    fd.scope(() => {
      const big = randomTensor([2, 4, 24, 32], 5);
      const out = net!.forward(big, [3, 900], { classLabels: [1, 10] });
      expect(out.shape).toEqual([2, 4, 24, 32]);
      const { features } = net!.forwardFeatures(fd.zeros([1, 4, 24, 32]), [0], { classLabels: [0], features: ["pos_embed"], earlyExit: true });
      const bias = new Map(net!.namedParameters()).get("pos_embed.proj.bias")!;
      const pos = fd.sub(features.get("pos_embed")!, bias).dataSync();
      expect(worst(pos, sincos2d(32, 12, 16, 8), 1e-6, 1e-5)).toBeLessThanOrEqual(1);
      expect(features.get("pos_embed")!.shape).toEqual([1, 12 * 16, 32]);
    });
  });
});

/** diffusers get_2d_sincos_pos_embed(D, (h, w), base_size) in float64 from float32 grid coordinates. */
function sincos2d(D: number, h: number, w: number, base: number): Float64Array {
  const f32 = Math.fround;
  const grid = (n: number) => Array.from({ length: n }, (_, i) => f32(i / f32(n / base)));
  const gh = grid(h);
  const gw = grid(w);
  const q = D / 4;
  const out = new Float64Array(h * w * D);
  for (let i = 0; i < h; ++i) {
    for (let j = 0; j < w; ++j) {
      const row = (i * w + j) * D;
      [gw[j]!, gh[i]!].forEach((p, half) => {
        for (let k = 0; k < q; ++k) {
          const a = p * (1 / 10000 ** (k / q));
          out[row + half * 2 * q + k] = f32(Math.sin(a));
          out[row + half * 2 * q + q + k] = f32(Math.cos(a));
        }
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------- a tiny DiT

const tiny = {
  sample_size: 8, patch_size: 2, in_channels: 2, num_layers: 2, num_attention_heads: 2, attention_head_dim: 4,
  num_embeds_ada_norm: 3, norm_elementwise_affine: true,
};

describe("tiny DiT", () => {
  let net: DiT;
  beforeAll(() => {
    net = DiT.create(tiny, { seed: 11 });
  });
  afterAll(() => net.dispose());
  const x = () => randomTensor([2, 2, 8, 8], 21);
  const t = [40, 700];
  const labels = [2, 0];

  test("config normalization: defaults as diffusers, unknown keys ignored, bad values named", () => {
    const c = normalizeDiTConfig({ _class_name: "DiTTransformer2DModel", foo: 1 });
    expect(c).toEqual({
      num_attention_heads: 16, attention_head_dim: 72, in_channels: 4, out_channels: null, num_layers: 28, dropout: 0,
      norm_num_groups: 32, attention_bias: true, sample_size: 32, patch_size: 2, activation_fn: "gelu-approximate",
      num_embeds_ada_norm: 1000, upcast_attention: false, norm_type: "ada_norm_zero", norm_elementwise_affine: false,
      norm_eps: 1e-5,
    });
    // fastdiff's extension key appears only when given (saved configs stay diffusers' own).
    expect(normalizeDiTConfig({ class_dropout_prob: 0 }).class_dropout_prob).toBe(0);
    expectCode(() => normalizeDiTConfig({ class_dropout_prob: 2 }), "ERR_ARGUMENT", /'class_dropout_prob'/);
    expectCode(() => normalizeDiTConfig({ norm_type: "ada_norm" }), "ERR_ARGUMENT", /'norm_type'.*'ada_norm_zero'.*"ada_norm"/);
    expectCode(() => normalizeDiTConfig({ num_embeds_ada_norm: null }), "ERR_ARGUMENT", /'num_embeds_ada_norm'/);
    expectCode(() => normalizeDiTConfig({ patch_size: 0 }), "ERR_ARGUMENT", /'patch_size'/);
    expectCode(() => normalizeDiTConfig({ activation_fn: "geglu" }), "ERR_ARGUMENT", /'activation_fn'/);
    expectCode(() => normalizeDiTConfig({ num_attention_heads: 1, attention_head_dim: 6 }), "ERR_ARGUMENT", /multiple of 4/);
    expectCode(() => normalizeDiTConfig({ dropout: 1 }), "ERR_ARGUMENT", /'dropout'/);
  });

  test("parameters: diffusers names in module order, with torch's default init", () => {
    const names = net.parameterInfo().map((p) => p.name);
    expect(names.slice(0, 9)).toEqual([
      "pos_embed.proj.weight", "pos_embed.proj.bias",
      "transformer_blocks.0.norm1.emb.timestep_embedder.linear_1.weight", "transformer_blocks.0.norm1.emb.timestep_embedder.linear_1.bias",
      "transformer_blocks.0.norm1.emb.timestep_embedder.linear_2.weight", "transformer_blocks.0.norm1.emb.timestep_embedder.linear_2.bias",
      "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight", "transformer_blocks.0.norm1.linear.weight",
      "transformer_blocks.0.norm1.linear.bias",
    ]);
    expect(names).toContain("transformer_blocks.1.norm3.weight");
    expect(names.slice(-4)).toEqual(["proj_out_1.weight", "proj_out_1.bias", "proj_out_2.weight", "proj_out_2.bias"]);
    const p = new Map(net.namedParameters());
    expect(p.get("proj_out_2.weight")!.shape).toEqual([2 * 2 * 2, 8]);
    expect(p.get("transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight")!.shape).toEqual([4, 8]);
    expect(Array.from(p.get("transformer_blocks.0.norm3.weight")!.dataSync())).toEqual(new Array(8).fill(1));
    const conv = p.get("pos_embed.proj.weight")!.dataSync();
    expect(Math.max(...Array.from(conv, Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(2 * 2 * 2));
  });

  test("gradients of Σ out·R w.r.t. the input and several parameters match central differences", () => {
    fd.scope(() => {
      const R = randomTensor([2, 2, 8, 8], 31);
      const params = new Map(net.namedParameters());
      const wrt = [
        "pos_embed.proj.weight", "transformer_blocks.0.norm1.emb.timestep_embedder.linear_1.weight",
        "transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight", "transformer_blocks.0.norm1.linear.weight",
        "transformer_blocks.0.attn1.to_k.weight", "transformer_blocks.1.norm3.weight", "transformer_blocks.1.ff.net.0.proj.bias",
        "proj_out_1.weight",
      ];
      const input = x().detach();
      input.requiresGrad = true;
      for (const p of net.parameters()) p.grad = null;
      fd.sum(fd.mul(net.forward(input, t, { classLabels: labels }), R)).backward();
      const loss = (): number => fd.noGrad(() => fd.sum(fd.mul(net.forward(input, t, { classLabels: labels }), R)).item());
      const rand = hostRandom(5);
      const h = 1e-2;
      const probe = (target: fd.Tensor, grad: Float32Array, name: string) => {
        const base = target.dataSync().slice();
        const dir = Float32Array.from(base, () => 2 * rand() - 1);
        const set = (s: number) => fd.copy(target, fd.tensor(base.map((b, i) => b + s * h * dir[i]!), target.shape));
        set(1);
        const up = loss();
        set(-1);
        const down = loss();
        fd.copy(target, fd.tensor(base, target.shape));
        const numeric = (up - down) / (2 * h);
        let analytic = 0;
        for (let i = 0; i < grad.length; ++i) analytic += grad[i]! * dir[i]!;
        expect([name, Math.abs(numeric - analytic) / Math.max(Math.abs(analytic), 1e-2)]).toEqual([name, expect.any(Number)]);
        expect(Math.abs(numeric - analytic) / Math.max(Math.abs(analytic), 1e-2)).toBeLessThan(1e-2);
      };
      probe(input, input.grad!.dataSync(), "input");
      for (const name of wrt) probe(params.get(name)!, params.get(name)!.grad!.dataSync(), name);
      for (const p of net.parameters()) p.grad = null;
    });
  });

  test("a frozen DiT still passes the gradient to its input", () => {
    fd.scope(() => {
      net.requiresGrad(false);
      const input = x().detach();
      input.requiresGrad = true;
      fd.sum(net.forward(input, t, { classLabels: labels })).backward();
      expect(input.grad!.shape).toEqual([2, 2, 8, 8]);
      expect(net.parameters().every((p) => p.grad === null)).toBe(true);
      net.requiresGrad(true);
    });
  });

  test("non-square and odd sizes: 8×12 runs, 7×8 and 8×9 are shape errors naming the shapes", () => {
    fd.scope(() => {
      expect(net.forward(randomTensor([1, 2, 8, 12], 3), 5, { classLabels: [1] }).shape).toEqual([1, 2, 8, 12]);
      expect(net.forward(randomTensor([1, 2, 2, 2], 3), 5, { classLabels: [1] }).shape).toEqual([1, 2, 2, 2]);
      expectCode(() => net.forward(fd.zeros([1, 2, 7, 8]), 5, { classLabels: [1] }), "ERR_SHAPE", /\[1, 2, 7, 8\].*patch size 2/);
      expectCode(() => net.forward(fd.zeros([1, 2, 8, 9]), 5, { classLabels: [1] }), "ERR_SHAPE", /\[1, 2, 8, 9\]/);
    });
  });

  test("errors: wrong channels, wrong rank, labels missing or out of range", () => {
    fd.scope(() => {
      expectCode(() => net.forward(fd.zeros([1, 3, 8, 8]), 5, { classLabels: [1] }), "ERR_SHAPE", /\[B, 2, H, W\].*\[1, 3, 8, 8\]/);
      expectCode(() => net.forward(fd.zeros([2, 8, 8]), 5, { classLabels: [1, 1] }), "ERR_SHAPE", /\[2, 8, 8\]/);
      expectCode(() => net.forward(fd.zeros([1, 2, 8, 8]), 5), "ERR_ARGUMENT", /classLabels/);
      expectCode(() => net.forward(fd.zeros([1, 2, 8, 8]), 5, { classLabels: [4] }), "ERR_ARGUMENT", /class label 4/);
      expectCode(() => net.forward(fd.zeros([1, 2, 8, 8]), 5, { classLabels: [-1] }), "ERR_ARGUMENT", /class label -1/);
    });
  });

  test("missing, unexpected and mis-shaped weights are ERR_FORMAT naming the weight", () => {
    const config = normalizeDiTConfig(tiny);
    const full = () => new Map(net.namedParameters());
    const missing = full();
    missing.delete("transformer_blocks.1.attn1.to_v.bias");
    expectCode(() => Network.build(DiTClass, config, missing), "ERR_FORMAT", /missing.*transformer_blocks\.1\.attn1\.to_v\.bias/);
    const shaped = full();
    shaped.set("proj_out_1.weight", fd.zeros([16, 4]));
    expectCode(() => Network.build(DiTClass, config, shaped), "ERR_FORMAT", /proj_out_1\.weight.*\[16, 4\].*\[16, 8\]/);
    const extra = full();
    extra.set("transformer_blocks.2.attn1.to_q.weight", fd.zeros([8, 8]));
    expectCode(() => Network.build(DiTClass, config, extra), "ERR_FORMAT", /unexpected.*transformer_blocks\.2/);
    // The same weights under a config without norm3 affine: norm3 weights are unexpected.
    expectCode(() => Network.build(DiTClass, normalizeDiTConfig({ ...tiny, norm_elementwise_affine: false }), full()), "ERR_FORMAT", /norm3/);
    // Loaded weights are shared with the given tensors and give the same forward.
    const copy = Network.build(DiTClass, config, full());
    fd.scope(() => expect(bitEqual(copy.forward(x(), t, { classLabels: labels }), net.forward(x(), t, { classLabels: labels }))).toBe(true));
  });

  test("the null class is label numClasses; class_dropout_prob 0 removes it", () => {
    expect(net.numClasses).toBe(3);
    expect(net.nullClass).toBe(3);
    fd.scope(() => {
      const a = net.forward(x(), t, { classLabels: [3, 3] });
      const b = net.forward(x(), t, { classLabels: [0, 0] });
      expect(bitEqual(a, b)).toBe(false);
    });
    const plain = DiT.create({ ...tiny, class_dropout_prob: 0 }, { seed: 1 });
    expect(plain.nullClass).toBeUndefined();
    expect(new Map(plain.namedParameters()).get("transformer_blocks.0.norm1.emb.class_embedder.embedding_table.weight")!.shape).toEqual([3, 8]);
    expectCode(() => plain.forward(fd.zeros([1, 2, 8, 8]), 5, { classLabels: [3] }), "ERR_ARGUMENT", /class label 3/);
    plain.dispose();
  });

  test("train mode: class_dropout_prob 1 turns every label into the null class; dropout is seeded", () => {
    const always = DiT.create({ ...tiny, class_dropout_prob: 1 }, { seed: 12 });
    fd.scope(() => {
      const nulls = always.forward(x(), t, { classLabels: [always.nullClass!, always.nullClass!] });
      expect(bitEqual(always.train().forward(x(), t, { classLabels: labels }), nulls)).toBe(true);
      expect(bitEqual(always.eval().forward(x(), t, { classLabels: labels }), nulls)).toBe(false);
      // labelDropout = false (distillation): train mode keeps the labels; with dropout 0 it is the eval forward.
      const kept = always.eval().forward(x(), t, { classLabels: labels });
      always.labelDropout = false;
      expect(bitEqual(always.train().forward(x(), t, { classLabels: labels }), kept)).toBe(true);
      always.labelDropout = true;
    });
    always.dispose();
    const drop = DiT.create({ ...tiny, dropout: 0.5, class_dropout_prob: 0.5 }, { seed: 13 });
    fd.scope(() => {
      const evalOut = drop.forward(x(), t, { classLabels: labels });
      drop.train().manualSeed(3);
      const a = drop.forward(x(), t, { classLabels: labels });
      const b = drop.forward(x(), t, { classLabels: labels });
      drop.manualSeed(3);
      const a2 = drop.forward(x(), t, { classLabels: labels });
      expect(bitEqual(a, evalOut)).toBe(false);
      expect(bitEqual(a, b)).toBe(false);
      expect(bitEqual(a, a2)).toBe(true);
      expect(bitEqual(drop.eval().forward(x(), t, { classLabels: labels }), evalOut)).toBe(true);
    });
    drop.dispose();
  });

  test("learned sigma: out_channels = 2·in_channels returns all channels", () => {
    const ls = DiT.create({ ...tiny, out_channels: 4 }, { seed: 2 });
    fd.scope(() => expect(ls.forward(x(), t, { classLabels: labels }).shape).toEqual([2, 4, 8, 8]));
    expect(ls.outChannels).toBe(4);
    ls.dispose();
  });

  test("blocks() in forward order; feature shapes", () => {
    const blocks = net.blocks();
    expect(blocks[0]).toBe("pos_embed");
    expect(blocks.slice(1, 8)).toEqual([
      "transformer_blocks.0.norm1.emb", "transformer_blocks.0.norm1.linear", "transformer_blocks.0.norm1.0",
      "transformer_blocks.0.attn1", "transformer_blocks.0.norm3", "transformer_blocks.0.ff", "transformer_blocks.0",
    ]);
    expect(blocks.slice(-3)).toEqual(["norm_out", "proj_out_1", "proj_out_2"]);
    fd.scope(() => {
      const { features } = net.forwardFeatures(randomTensor([3, 2, 8, 12], 4), 10, { classLabels: [0, 1, 3], features: blocks });
      const N = 4 * 6;
      const shapes: Record<string, number[]> = {
        pos_embed: [3, N, 8], "transformer_blocks.1.norm1.emb": [3, 8], "transformer_blocks.1.norm1.linear": [3, 48],
        "transformer_blocks.1.norm1.0": [3, N, 8], "transformer_blocks.1.attn1": [3, N, 8], "transformer_blocks.1.norm3": [3, N, 8],
        "transformer_blocks.1.ff": [3, N, 8], "transformer_blocks.1": [3, N, 8], norm_out: [3, N, 8], proj_out_1: [3, 16],
        proj_out_2: [3, N, 8],
      };
      for (const [k, s] of Object.entries(shapes)) expect([k, features.get(k)!.shape]).toEqual([k, s]);
      expect(features.size).toBe(blocks.length);
    });
  });

  test("early exit after block 0 returns no output and the same hidden states", () => {
    fd.scope(() => {
      const full = net.forwardFeatures(x(), t, { classLabels: labels, features: ["transformer_blocks.0"] });
      const early = net.forwardFeatures(x(), t, { classLabels: labels, features: ["transformer_blocks.0"], earlyExit: true });
      expect(early.output).toBeNull();
      expect(bitEqual(early.features.get("transformer_blocks.0")!, full.features.get("transformer_blocks.0")!)).toBe(true);
      expect(bitEqual(full.output!, net.forward(x(), t, { classLabels: labels }))).toBe(true);
      expectCode(() => net.forwardFeatures(x(), t, { classLabels: labels, features: ["transformer_blocks.7"] }), "ERR_ARGUMENT", /no point/);
    });
  });

  test("feature cache: storing changes nothing; full reuse at the same inputs reproduces the stored step", () => {
    fd.scope(() => {
      const cache = new fd.FeatureCache();
      const plain = net.forward(x(), t, { classLabels: labels });
      const stored = net.forward(x(), t, { classLabels: labels, cache, store: true });
      expect(bitEqual(stored, plain)).toBe(true);
      expect([...cache.entries().keys()]).toEqual(net.reusePoints());
      const reused = net.forward(x(), t, { classLabels: labels, cache, reuse: true });
      expect(bitEqual(reused, stored)).toBe(true);
      // Everything cached (globs), everything reused: still the stored step.
      const all = new fd.FeatureCache();
      net.forward(x(), t, { classLabels: labels, cache: all, store: ["*"] });
      expect(all.size).toBe(net.blocks().length);
      expect(bitEqual(net.forward(x(), t, { classLabels: labels, cache: all, reuse: ["*"] }), plain)).toBe(true);
      all.reset();
      cache.reset();
    });
  });

  test("skipping whole blocks (DeepCache-style) and MLP branches through the same cache", () => {
    fd.scope(() => {
      const cache = new fd.FeatureCache();
      const blocks = ["transformer_blocks.0", "transformer_blocks.1"];
      const stored = net.forward(x(), t, { classLabels: labels, cache, store: [...blocks, "*.ff"] });
      expect([...cache.entries().keys()].sort()).toEqual(["transformer_blocks.0", "transformer_blocks.0.ff", "transformer_blocks.1", "transformer_blocks.1.ff"]);
      // Both blocks reused at the same inputs: the final layer recomputes block 0's embedding — the stored output.
      expect(bitEqual(net.forward(x(), t, { classLabels: labels, cache, reuse: blocks }), stored)).toBe(true);
      // At another t only the final layer sees it; the inner points of a reused block are not computed.
      const r = net.forwardFeatures(x(), [5, 5], { classLabels: labels, cache, reuse: blocks, features: ["transformer_blocks.1.attn1", "transformer_blocks.1", "proj_out_1"] });
      expect([...r.features.keys()]).toEqual(["transformer_blocks.1", "proj_out_1"]);
      const fresh = net.forwardFeatures(x(), [5, 5], { classLabels: labels, features: ["proj_out_1"] });
      expect(bitEqual(r.features.get("proj_out_1")!, fresh.features.get("proj_out_1")!)).toBe(true);
      // MLP branches reused: equal to the stored step at its inputs.
      expect(bitEqual(net.forward(x(), t, { classLabels: labels, cache, reuse: ["*.ff"] }), stored)).toBe(true);
    });
  });

  test("FRDiff reuse at another step: the attention branch comes from the cache, gates and MLP from the current t", () => {
    fd.scope(() => {
      const cache = new fd.FeatureCache();
      net.forward(x(), t, { classLabels: labels, cache, store: true });
      const t2 = [60, 650];
      const x2 = fd.add(x(), fd.mul(randomTensor([2, 2, 8, 8], 9), 0.1));
      const want = ["transformer_blocks.0.attn1", "transformer_blocks.0.norm1.linear", "transformer_blocks.0.ff", "transformer_blocks.1.attn1"];
      const fresh = net.forwardFeatures(x2, t2, { classLabels: labels, features: want });
      const fr = net.forwardFeatures(x2, t2, { classLabels: labels, features: want, cache, reuse: true });
      const entries = cache.entries();
      expect(bitEqual(fr.features.get("transformer_blocks.0.attn1")!, entries.get("transformer_blocks.0.attn1")!)).toBe(true);
      expect(bitEqual(fr.features.get("transformer_blocks.1.attn1")!, entries.get("transformer_blocks.1.attn1")!)).toBe(true);
      expect(bitEqual(fr.features.get("transformer_blocks.0.norm1.linear")!, fresh.features.get("transformer_blocks.0.norm1.linear")!)).toBe(true);
      expect(bitEqual(fr.features.get("transformer_blocks.0.ff")!, fresh.features.get("transformer_blocks.0.ff")!)).toBe(false);
      expect(bitEqual(fr.output!, fresh.output!)).toBe(false);
      // Reuse with another input size is refused.
      expectCode(() => net.forward(randomTensor([2, 2, 8, 12], 1), t2, { classLabels: labels, cache, reuse: true }), "ERR_SHAPE", /feature cache/);
    });
  });
});
