// The σ-space contract over networks: each parameterization against its closed form (METHODS.md §0),
// classifier-free guidance as one batched forward, the parameterization stored beside the network.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as fd from "../../lib";
import { goldenFile, hostValues } from "../helpers";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-denoiser-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

const D = 3;
const sigmas = [0.05, 0.7, 3, 40];
const mlp = () => fd.MLP.create({ in_features: D, hidden_size: 16, num_layers: 2 }, { seed: 11 });
const xhat = () => fd.tensor(hostValues([sigmas.length, D], 7, 2), [sigmas.length, D]);

function zeroed(net: fd.Network): fd.Network {
  for (const p of net.parameters()) fd.copy(p, fd.zerosLike(p));
  return net;
}

function close(a: Float32Array, b: ArrayLike<number>, tol: number): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; ++i) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol * (1 + Math.abs(b[i]!)));
}

// c_skip by hand, per family (EDM Table 1; DDPM x0 from ε/v/x0; flow x0 = x_t − t·u).
const cSkip: [string, fd.ParameterizationInput, (s: number) => number][] = [
  ["edm", { type: "edm" }, (s) => 0.25 / (s * s + 0.25)],
  ["ddpm ε", { type: "ddpm", prediction: "epsilon" }, () => 1],
  ["ddpm v", { type: "ddpm", prediction: "v" }, (s) => 1 / (1 + s * s)],
  ["ddpm x0", { type: "ddpm", prediction: "x0" }, () => 0],
  ["flow", { type: "flow" }, (s) => 1 / (1 + s)],
  ["vp", { type: "vp" }, () => 1],
  ["ve", { type: "ve" }, () => 1],
];

describe("preconditioning", () => {
  test.each(cSkip)("%s: a network returning zeros gives c_skip(σ)·x̂ per sample", (_, p, skip) => {
    const den = new fd.NetworkDenoiser(zeroed(mlp()), p);
    const x = xhat();
    const out = den.denoise(x, sigmas).dataSync();
    const xs = x.dataSync();
    close(out, Array.from(xs, (v, i) => skip(sigmas[Math.floor(i / D)]!) * v), 1e-6);
    den.network.dispose();
  });

  test("each family feeds the network c_in·x̂ at c_noise and combines c_skip·x̂ + c_out·F (independent formulas)", () => {
    const net = mlp();
    const x = xhat();
    const xs = x.dataSync();
    const families: [fd.ParameterizationInput, (s: number) => [number, number, number, number]][] = [
      [{ type: "edm" }, (s) => [0.25 / (s * s + 0.25), (0.5 * s) / Math.sqrt(s * s + 0.25), 1 / Math.sqrt(s * s + 0.25), Math.log(s) / 4]],
      [{ type: "flow", numTrainTimesteps: 1000 }, (s) => [1 / (1 + s), -s / (1 + s), 1 / (1 + s), (1000 * s) / (1 + s)]],
      [{ type: "ve" }, (s) => [1, s, 1, Math.log(s / 2)]],
    ];
    for (const [p, coef] of families) {
      const den = new fd.NetworkDenoiser(net, p);
      const got = den.denoise(x, sigmas).dataSync();
      const want = new Float32Array(xs.length);
      sigmas.forEach((s, b) => {
        const [skip, out, cin, noise] = coef(s);
        const row = fd.tensor(xs.slice(b * D, b * D + D).map((v) => v * cin), [1, D]);
        const F = net.forward(row, noise).dataSync();
        for (let i = 0; i < D; ++i) want[b * D + i] = skip * xs[b * D + i]! + out * F[i]!;
      });
      close(got, want, 2e-5);
    }
    net.dispose();
  });

  test("DDPM: σ of a table timestep maps back to exactly that timestep; Euler's fractional ones to theirs", () => {
    const c = new fd.Coefficients(fd.parameterization({ type: "ddpm" }));
    const ddim = fd.ddimSchedule(10);
    ddim.timesteps.forEach((t, i) => expect(c.at(ddim.sigmas[i]!).cNoise).toBe(t));
    const euler = fd.eulerDiscreteSchedule(25);
    euler.timesteps.forEach((t, i) => expect(Math.abs(c.at(euler.sigmas[i]!).cNoise - t)).toBeLessThan(2e-3));
    // Named grids for sample({ schedule }): the model's own DDIM and EulerDiscrete schedules.
    const den = new fd.NetworkDenoiser(mlp(), { type: "ddpm" });
    expect(den.namedSchedule("euler", 25)).toEqual(euler);
    expect(den.namedSchedule("ddim", 10)).toEqual(ddim);
    expect(den.namedSchedule("nope", 10)).toBeUndefined();
    den.network.dispose();
    // x_t = α·x̂ is what the ε-network sees.
    expect(c.at(3).cIn).toBeCloseTo(1 / Math.sqrt(10), 12);
  });
});

describe("classifier-free guidance", () => {
  test("one batched forward equals D_u + w·(D_c − D_u) from two separate calls", () => {
    const net = fd.DiT.create({ sample_size: 8, patch_size: 2, in_channels: 2, num_layers: 1, num_attention_heads: 2, attention_head_dim: 8, num_embeds_ada_norm: 3 }, { seed: 9 });
    const den = new fd.NetworkDenoiser(net, { type: "edm" });
    const x = fd.randn([2, 2, 8, 8], { seed: 1 });
    const s = [0.8, 5];
    const labels = [0, 2];
    const w = 3.5;
    const guided = den.denoise(x, s, { classLabels: labels, guidance: w }).dataSync();
    const cond = den.denoise(x, s, { classLabels: labels }).dataSync();
    const uncond = den.denoise(x, s, { classLabels: [net.nullClass!, net.nullClass!] }).dataSync();
    close(guided, Array.from(cond, (c, i) => uncond[i]! + w * (c - uncond[i]!)), 1e-5);
    net.dispose();
  });

  test("guidance needs labels and a null class", () => {
    const den = new fd.NetworkDenoiser(fd.UNet.create({ sample_size: 8, in_channels: 1, out_channels: 1, layers_per_block: 1, block_out_channels: [8, 16], norm_num_groups: 4, down_block_types: ["DownBlock2D", "DownBlock2D"], up_block_types: ["UpBlock2D", "UpBlock2D"], num_class_embeds: 3 }), { type: "edm" });
    const x = fd.randn([1, 1, 8, 8], { seed: 2 });
    expect(() => den.denoise(x, 1, { guidance: 2 })).toThrow(/guidance needs classLabels/);
    expect(() => den.denoise(x, 1, { classLabels: [1], guidance: 2 })).toThrow(/null class/);
    const withNull = new fd.NetworkDenoiser(den.network, { type: "edm" }, { nullClass: 2 });
    expect(withNull.denoise(x, 1, { classLabels: [1], guidance: 2 }).shape).toEqual([1, 1, 8, 8]);
    den.network.dispose();
  });
});

describe("contract errors", () => {
  test("σ count, σ ≤ 0 and non-finite σ are argument errors", () => {
    const den = new fd.NetworkDenoiser(mlp(), { type: "edm" });
    const x = xhat();
    expect(() => den.denoise(x, [1, 2])).toThrow(/2 sigmas for a batch of 4/);
    expect(() => den.denoise(x, 0)).toThrow(/sigma must be finite and > 0/);
    expect(() => den.denoise(x, [1, 1, NaN, 1])).toThrow(/sigma must be finite/);
    den.network.dispose();
  });
});

describe("saved with its parameterization", () => {
  test.each<[string, fd.ParameterizationInput]>([
    ["edm", { type: "edm", sigmaData: 0.6 }],
    ["ddpm v, scaled_linear", { type: "ddpm", prediction: "v", betaSchedule: "scaled_linear", betaStart: 0.00085, betaEnd: 0.012 }],
    ["flow shift 3", { type: "flow", shift: 3 }],
  ])("%s: Denoiser.load restores it (folder and file) and denoises identically", async (name, p) => {
    const den = new fd.NetworkDenoiser(mlp(), p);
    const x = xhat();
    const ref = den.denoise(x, sigmas).dataSync();
    for (const target of [path.join(dir, `${name}-dir`), path.join(dir, `${name}.safetensors`)]) {
      await den.save(target);
      const back = (await fd.Denoiser.load(target)) as fd.NetworkDenoiser;
      expect(back.parameterization).toEqual(den.parameterization);
      expect(Buffer.from(back.denoise(x, sigmas).dataSync().buffer).equals(Buffer.from(ref.buffer))).toBe(true);
      back.network.dispose();
    }
    den.network.dispose();
  });

  test("a diffusers model folder without a scheduler config is DDPM ε with linear β", async () => {
    const config = goldenFile(path.join("models", "unet2d_c1_s28", "config.json"));
    if (!config) return;
    const den = (await fd.Denoiser.load(path.dirname(config))) as fd.NetworkDenoiser;
    expect(den.parameterization).toEqual(fd.parameterization({ type: "ddpm" }));
    expect(den.sampleShape).toEqual([1, 28, 28]);
    den.network.dispose();
  });
});
