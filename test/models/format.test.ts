// Network files: save → load round trips (diffusers folder and single file, F32 bit-exact, F16/BF16 to their
// rounding), class detection, and every way a file can disagree with its config (ERR_FORMAT naming it).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as fd from "../../lib";
import { goldenFile } from "../helpers";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-models-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
const at = (name: string) => path.join(dir, name);

const tinyUNetConfig = {
  sample_size: 8, in_channels: 1, out_channels: 1, layers_per_block: 1, block_out_channels: [8, 16], norm_num_groups: 4,
  down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"], attention_head_dim: 8,
};
const tinyDiTConfig = {
  sample_size: 8, patch_size: 2, in_channels: 2, num_layers: 1, num_attention_heads: 2, attention_head_dim: 8, num_embeds_ada_norm: 3,
};

function expectSameWeights(a: fd.Network, b: fd.Network): void {
  const pa = a.namedParameters();
  const pb = new Map(b.namedParameters());
  expect(pb.size).toBe(pa.length);
  for (const [name, t] of pa) {
    const u = pb.get(name);
    expect(u?.shape).toEqual(t.shape);
    expect(Buffer.from(u!.dataSync().buffer).equals(Buffer.from(t.dataSync().buffer))).toBe(true);
  }
}

function formatError(p: Promise<unknown>): Promise<fd.FastdiffError> {
  return p.then(
    () => {
      throw new Error("expected ERR_FORMAT");
    },
    (e: fd.FastdiffError) => {
      expect(e).toBeInstanceOf(fd.FastdiffError);
      expect(e.code).toBe("ERR_FORMAT");
      return e;
    },
  );
}

describe.each([
  ["UNet", () => fd.UNet.create(tinyUNetConfig, { seed: 3 })],
  ["DiT", () => fd.DiT.create(tinyDiTConfig, { seed: 4 })],
  ["MLP", () => fd.MLP.create({ in_features: 2, hidden_size: 16, num_layers: 2 }, { seed: 5 })],
])("%s files", (name, make) => {
  test("diffusers folder and single file round trip bit-exact; the class is read from the config", async () => {
    const net = make();
    await net.save(at(`${name}-dir`));
    await net.save(at(`${name}.safetensors`));
    const config = JSON.parse(fs.readFileSync(path.join(at(`${name}-dir`), "config.json"), "utf8"));
    expect(config._class_name).toBe(net.kind);
    for (const p of [at(`${name}-dir`), at(`${name}.safetensors`)]) {
      const back = await fd.loadNetwork(p);
      expect(back.kind).toBe(net.kind);
      expect(back.config).toEqual(net.config);
      expectSameWeights(net, back);
      back.dispose();
    }
    net.dispose();
  });

  test("F16 and BF16 files load into float32 at their rounding", async () => {
    const net = make();
    for (const dtype of ["F16", "BF16"] as const) {
      const p = at(`${name}-${dtype}.safetensors`);
      await net.save(p, { dtype });
      const back = await fd.loadNetwork(p);
      const ref = new Map(net.namedParameters());
      const tol = dtype === "F16" ? 2 ** -11 : 2 ** -8; // half an ulp, relative
      for (const [n, t] of back.namedParameters()) {
        const a = t.dataSync();
        const b = ref.get(n)!.dataSync();
        for (let i = 0; i < a.length; ++i) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol * Math.abs(b[i]!) + 1e-7);
      }
      back.dispose();
    }
    net.dispose();
  });
});

describe("mismatched files", () => {
  async function folderWith(edit: (w: Map<string, fd.Tensor>) => void): Promise<string> {
    const net = fd.UNet.create(tinyUNetConfig, { seed: 1 });
    const p = at(`edit-${Math.random().toString(36).slice(2)}`);
    await net.save(p);
    const file = path.join(p, "diffusion_pytorch_model.safetensors");
    const { tensors } = await fd.readSafetensors(file);
    edit(tensors);
    await fd.writeSafetensors(file, tensors);
    net.dispose();
    return p;
  }

  test("a missing weight is named", async () => {
    const p = await folderWith((w) => w.delete("conv_in.weight"));
    const e = await formatError(fd.UNet.load(p));
    expect(e.message).toMatch(/missing.*conv_in\.weight/);
  });
  test("an unexpected weight is named", async () => {
    const p = await folderWith((w) => w.set("extra.weight", fd.zeros([2])));
    const e = await formatError(fd.UNet.load(p));
    expect(e.message).toMatch(/unexpected.*extra\.weight/);
  });
  test("a weight of the wrong shape is named with both shapes", async () => {
    const p = await folderWith((w) => w.set("conv_out.bias", fd.zeros([3])));
    const e = await formatError(fd.UNet.load(p));
    expect(e.message).toMatch(/conv_out\.bias \[3\].*\[1\]/);
  });
  test("pre-refactor attention names (query/key/value/proj_attn) load like diffusers renames them", async () => {
    const ref = fd.UNet.create(tinyUNetConfig, { seed: 1 });
    const p = await folderWith((w) => {
      for (const [from, to] of [["to_q", "query"], ["to_k", "key"], ["to_v", "value"], ["to_out.0", "proj_attn"]]) {
        for (const leaf of ["weight", "bias"]) {
          const name = `down_blocks.1.attentions.0.${from}.${leaf}`;
          w.set(`down_blocks.1.attentions.0.${to}.${leaf}`, w.get(name)!);
          w.delete(name);
        }
      }
    });
    const back = await fd.UNet.load(p);
    expectSameWeights(ref, back);
    ref.dispose();
    back.dispose();
  });
  test("a config naming another class, an unknown class, a broken config", async () => {
    const net = fd.MLP.create({ in_features: 2 }, { seed: 1 });
    await net.save(at("mlp-dir"));
    expect((await formatError(fd.UNet.load(at("mlp-dir")))).message).toMatch(/MLP, not a UNet2DModel/);
    fs.writeFileSync(path.join(at("mlp-dir"), "config.json"), JSON.stringify({ _class_name: "VQModel" }));
    expect((await formatError(fd.loadNetwork(at("mlp-dir")))).message).toMatch(/unknown network class 'VQModel'/);
    fs.writeFileSync(path.join(at("mlp-dir"), "config.json"), "{ not json");
    expect((await formatError(fd.loadNetwork(at("mlp-dir")))).message).toMatch(/config\.json: not valid JSON/);
    fs.rmSync(path.join(at("mlp-dir"), "config.json"));
    expect((await formatError(fd.loadNetwork(at("mlp-dir")))).message).toMatch(/config\.json: cannot read/);
    net.dispose();
  });
  test("a truncated weights file and a plain safetensors file without a config", async () => {
    const net = fd.UNet.create(tinyUNetConfig, { seed: 2 });
    await net.save(at("trunc-dir"));
    const file = path.join(at("trunc-dir"), "diffusion_pytorch_model.safetensors");
    const bytes = fs.readFileSync(file);
    fs.writeFileSync(file, bytes.subarray(0, bytes.length - 100));
    expect((await formatError(fd.UNet.load(at("trunc-dir")))).message).toContain("diffusion_pytorch_model.safetensors");
    await fd.writeSafetensors(at("plain.safetensors"), new Map([["a", fd.zeros([2])]]));
    expect((await formatError(fd.loadNetwork(at("plain.safetensors")))).message).toMatch(/fastdiff_config/);
    expect((await formatError(fd.loadNetwork(at("nowhere")))).message).toMatch(/no such file/);
    net.dispose();
  });
  test("memory: a failed load leaks no tensors", async () => {
    const p = await folderWith((w) => w.delete("conv_in.bias"));
    const before = fd.memory().liveTensors;
    for (let i = 0; i < 3; ++i) await formatError(fd.UNet.load(p));
    expect(fd.memory().liveTensors).toBe(before);
  });
});

describe("golden diffusers folders", () => {
  test.each(["unet2d_c1_s28", "dit_s16_p2"])("%s loads with both config key sets, class detected", async (name) => {
    const folder = goldenFile(path.join("models", name, "config.json"));
    if (!folder) return;
    const golden = path.dirname(folder);
    const net = await fd.loadNetwork(golden);
    expect(net.kind).toBe(JSON.parse(fs.readFileSync(folder, "utf8"))._class_name);
    // The 0.30.3 config (no mid_block_type / time_embedding_dim) normalizes to the same config.
    const copy = at(`${name}-030`);
    fs.mkdirSync(copy);
    fs.copyFileSync(path.join(golden, "config.diffusers-0.30.3.json"), path.join(copy, "config.json"));
    fs.copyFileSync(path.join(golden, "diffusion_pytorch_model.safetensors"), path.join(copy, "diffusion_pytorch_model.safetensors"));
    const old = await fd.loadNetwork(copy);
    expect(old.config).toEqual(net.config);
    net.dispose();
    old.dispose();
  });
});
