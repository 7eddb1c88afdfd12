// The denoising losses (METHODS.md §0, "Training losses"): EDM's log-normal σ and λ(σ), DDPM's table σ and the
// ε-loss identity ‖ε − ε̂‖² = SNR·‖x0 − x̂0‖², the loss value against an independent host computation, and its
// gradient against central differences.
import * as fd from "../../lib";
import { ddpmNoiseLevels, denoisingLoss, edmNoiseLevels } from "../../lib/train";
import { toy2d } from "../../lib/data";
import { note, tinyImages, tinyMlp } from "./util";

const { exp, log, sqrt, abs, fround } = Math;

function moments(a: ArrayLike<number>): { mean: number; std: number } {
  let s = 0;
  for (let i = 0; i < a.length; ++i) s += a[i]!;
  const m = s / a.length;
  let v = 0;
  for (let i = 0; i < a.length; ++i) v += (a[i]! - m) ** 2;
  return { mean: m, std: sqrt(v / (a.length - 1)) };
}

describe("edmNoiseLevels", () => {
  test.each([
    [{}, -1.2, 1.2, 0.5, 11],
    [{ pMean: 0.4, pStd: 0.6, sigmaData: 1 }, 0.4, 0.6, 1, 12],
  ])("ln σ ~ N(P_mean, P_std²) and λ = (σ² + σd²)/(σσd)² exactly (%j)", (options, pMean, pStd, sd, seed) => {
    const n = 20_000;
    const g = new fd.Generator(seed);
    const live = fd.memory().liveTensors;
    const { sigmas, weights } = edmNoiseLevels(n, g, options);
    expect(fd.memory().liveTensors).toBe(live); // host arrays only: the draw's tensor is freed, not left to the GC
    expect(sigmas.length).toBe(n);
    expect(weights.length).toBe(n);
    // The generator advanced by one draw of n normals (ceil(n/4) Philox blocks).
    expect(g.offset).toBe(BigInt(n / 4));
    const { mean, std } = moments(Array.from(sigmas, log));
    note("edm ln σ mean/std error in SE", [(mean - pMean) / (pStd / sqrt(n)), (std - pStd) / (pStd / sqrt(2 * n))]);
    // Standard errors of the sample mean and standard deviation of n normals: P_std/√n and P_std/√(2n); 4 SE.
    expect(abs(mean - pMean)).toBeLessThan((4 * pStd) / sqrt(n));
    expect(abs(std - pStd)).toBeLessThan((4 * pStd) / sqrt(2 * n));
    // σ = exp(P_mean + P_std·z) for the engine's normals z of the same stream, and λ by the EDM formula, bit for bit.
    const z = fd.scope(() => fd.randn([n], { seed }).dataSync());
    let badSigma = 0;
    let badWeight = 0;
    for (let i = 0; i < n; ++i) {
      const s = sigmas[i]!;
      if (!Object.is(s, exp(pMean + pStd * z[i]!))) badSigma += 1;
      if (!Object.is(weights[i]!, (s * s + sd * sd) / (s * sd) ** 2)) badWeight += 1;
    }
    expect([badSigma, badWeight]).toEqual([0, 0]);
  });
});

describe("ddpmNoiseLevels", () => {
  test("draws only table values, uniformly over the timesteps, with λ = 1/σ²", () => {
    const table = new fd.Coefficients(fd.parameterization({ type: "ddpm" })).discreteSigmas!;
    expect(table.length).toBe(1000);
    const index = new Map<number, number>();
    table.forEach((s, t) => index.set(s, t));
    expect(index.size).toBe(1000); // strictly increasing table: every σ names one timestep
    const n = 20_000;
    const live = fd.memory().liveTensors;
    const { sigmas, weights } = ddpmNoiseLevels(n, new fd.Generator(3), table);
    expect(fd.memory().liveTensors).toBe(live);
    const counts = new Int32Array(1000);
    let offTable = 0;
    let badWeight = 0;
    for (let i = 0; i < n; ++i) {
      const t = index.get(sigmas[i]!);
      if (t === undefined) offTable += 1;
      else counts[t] = counts[t]! + 1;
      if (!Object.is(weights[i]!, 1 / (sigmas[i]! * sigmas[i]!))) badWeight += 1;
    }
    expect([offTable, badWeight]).toEqual([0, 0]);
    // 20 expected draws per timestep: P(some timestep never drawn) ≈ 1000·e^−20 ≈ 2e−6.
    expect(counts.filter((c) => c === 0).length).toBe(0);
    // Ten bins of 100 timesteps, 2000 expected each (sd ≈ 42): χ² with 9 degrees of freedom, p(χ² > 30) ≈ 4e−4.
    let chi2 = 0;
    for (let b = 0; b < 10; ++b) {
      const c = counts.subarray(b * 100, (b + 1) * 100).reduce((a, v) => a + v, 0);
      chi2 += (c - 2000) ** 2 / 2000;
    }
    note("ddpm χ²(9)", chi2);
    expect(chi2).toBeLessThan(30);
  });
});

/** λ-weighted mean over samples of the per-sample pixel mean of (D − x0)², on the host in float64, with the noisy
 * input formed on the host exactly as float32 does it (fround(x0 + fround(n·σ))). */
function hostLoss(model: fd.NetworkDenoiser, x0: fd.Tensor, levels: fd.NoiseLevels, noise: fd.Tensor, labels: ArrayLike<number> | null): number {
  const [B] = x0.shape as [number];
  const P = x0.size / B;
  const xv = x0.dataSync();
  const nv = noise.dataSync();
  const noisy = new Float32Array(x0.size);
  for (let b = 0; b < B; ++b) {
    const s = fround(levels.sigmas[b]!);
    for (let j = 0; j < P; ++j) noisy[b * P + j] = fround(xv[b * P + j]! + fround(nv[b * P + j]! * s));
  }
  const d = fd.scope(() => fd.noGrad(() => model.denoise(fd.tensor(noisy, x0.shape), levels.sigmas, { classLabels: labels }).dataSync()));
  let total = 0;
  for (let b = 0; b < B; ++b) {
    let e = 0;
    for (let j = 0; j < P; ++j) e += (d[b * P + j]! - xv[b * P + j]!) ** 2;
    total += levels.weights[b]! * (e / P);
  }
  return total / B;
}

describe("denoisingLoss", () => {
  test("equals an independent host computation (MLP on 2-D points; conditional UNet on 8×8 images)", () => {
    fd.scope(() => {
      // MLP, σ from 0.002 to 80 (per-sample σ and λ spanning 9 decades of weight).
      const mlp = tinyMlp(1);
      const x0 = toy2d("8gaussians", { n: 16, seed: 4 }).all().x;
      const sigmas = Float64Array.from({ length: 16 }, (_, i) => 0.002 * (80 / 0.002) ** (i / 15));
      const levels = { sigmas, weights: Float64Array.from(sigmas, (s) => (s * s + 1) / (s * s)) };
      const noise = fd.randn(x0.shape, { seed: 5 });
      const loss = fd.noGrad(() => denoisingLoss(mlp, x0, levels, noise, null));
      expect(loss.shape).toEqual([]);
      const want = hostLoss(mlp, x0, levels, noise, null);
      note("mlp loss rel err", [loss.item(), abs(loss.item() - want) / want]);
      expect(abs(loss.item() - want) / want).toBeLessThan(1e-6);

      // A class-conditional UNet: the mean runs over C·H·W per sample, labels reach the network.
      const unet = fd.modelPreset("unet-tiny", { sampleShape: [1, 8, 8], numClasses: 3, seed: 2 });
      const batch = tinyImages(6, 3).all();
      const lv = edmNoiseLevels(6, new fd.Generator(8));
      const n2 = fd.randn(batch.x.shape, { seed: 9 });
      const got = fd.noGrad(() => denoisingLoss(unet, batch.x, lv, n2, batch.labels)).item();
      const host = hostLoss(unet, batch.x, lv, n2, batch.labels);
      note("unet loss rel err", [got, abs(got - host) / host]);
      expect(abs(got - host) / host).toBeLessThan(1e-6);
      // The labels matter (the independent computation is not blind to them): other labels, another loss.
      const other = fd.noGrad(() => denoisingLoss(unet, batch.x, lv, n2, [3, 3, 3, 3, 3, 3])).item();
      expect(abs(other - got) / got).toBeGreaterThan(1e-4);
    });
  });

  test("its gradient w.r.t. a parameter matches a central finite difference", () => {
    const model = tinyMlp(2);
    const net = model.network;
    const named = new Map(net.namedParameters());
    fd.scope(() => {
      const x0 = toy2d("8gaussians", { n: 64, seed: 6 }).all().x;
      const levels = edmNoiseLevels(64, new fd.Generator(12), { sigmaData: 1 });
      const noise = fd.randn(x0.shape, { seed: 13 });
      const lossAt = (): number => fd.noGrad(() => denoisingLoss(model, x0, levels, noise, null).item());
      for (const p of net.parameters()) p.grad = null;
      denoisingLoss(model, x0, levels, noise, null).backward();
      // out_proj.bias: the loss is exactly quadratic in it, so the central difference has no truncation error —
      // only float32 rounding of L (~1e−7·L ≈ 1e−7) over 2h = 0.02, i.e. ~1e−5 absolute. A hidden weight adds an
      // O(h²) truncation error.
      for (const [name, h, tol] of [["out_proj.bias", 1e-2, 1e-3], ["layers.0.linear.weight", 1e-2, 1e-3]] as const) {
        const p = named.get(name)!;
        const grad = p.grad!.dataSync();
        let k = 0; // the entry with the largest gradient: a well-conditioned scalar
        for (let i = 1; i < grad.length; ++i) if (abs(grad[i]!) > abs(grad[k]!)) k = i;
        const base = p.dataSync().slice();
        const at = (delta: number): number => {
          const v = base.slice();
          v[k] = base[k]! + delta;
          fd.copy(p, fd.tensor(v, p.shape));
          return lossAt();
        };
        const numeric = (at(h) - at(-h)) / (2 * h);
        fd.copy(p, fd.tensor(base, p.shape));
        note(`fd ${name}`, [grad[k], numeric, abs(numeric - grad[k]!) / abs(grad[k]!)]);
        expect(abs(grad[k]!)).toBeGreaterThan(1e-3);
        expect(abs(numeric - grad[k]!) / abs(grad[k]!)).toBeLessThan(tol);
      }
    });
  });

  test("the DDPM ε-loss equals mean ‖ε − ε̂‖² from the ε-prediction (‖ε − ε̂‖² = SNR·‖x0 − x̂0‖²)", () => {
    const net = fd.MLP.create({ in_features: 2, hidden_size: 64, num_layers: 2 }, { seed: 3 });
    const model = new fd.NetworkDenoiser(net, { type: "ddpm", prediction: "epsilon" });
    const table = model.coefficients.discreteSigmas!;
    const B = 256;
    fd.scope(() => {
      const x0 = toy2d("8gaussians", { n: B, seed: 7 }).all().x;
      const levels = ddpmNoiseLevels(B, new fd.Generator(21), table);
      const noise = fd.randn(x0.shape, { seed: 22 });
      const loss = fd.noGrad(() => denoisingLoss(model, x0, levels, noise, null)).item();
      // Independently: x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε at the integer timestep t of each σ, ε̂ = F(x_t, t).
      const timesteps = Array.from(levels.sigmas, (s) => table.indexOf(s));
      expect(timesteps.every((t) => t >= 0)).toBe(true);
      const xv = x0.dataSync();
      const ev = noise.dataSync();
      const xt = new Float32Array(2 * B);
      for (let b = 0; b < B; ++b) {
        const s = levels.sigmas[b]!;
        const abar = 1 / (1 + s * s);
        for (let j = 0; j < 2; ++j) xt[2 * b + j] = sqrt(abar) * xv[2 * b + j]! + sqrt(1 - abar) * ev[2 * b + j]!;
      }
      const eps = fd.noGrad(() => net.forward(fd.tensor(xt, [B, 2]), timesteps)).dataSync();
      let want = 0;
      for (let i = 0; i < 2 * B; ++i) want += (ev[i]! - eps[i]!) ** 2;
      want /= 2 * B;
      // Float32: D − x0 = (x0 + σn − σε̂) − x0 cancels to ~ulp(|x0| ≈ 2)/σ_min ≈ 2.4e−7/0.01 relative per
      // element at the smallest table σ; averaged over the batch the agreement is far better than 1e−4.
      note("ddpm ε-loss rel err", [loss, want, abs(loss - want) / want]);
      expect(abs(loss - want) / want).toBeLessThan(1e-4);
      // and the weights are 1/σ² = SNR.
      expect(levels.weights.every((w, b) => w === 1 / levels.sigmas[b]! ** 2)).toBe(true);
    });
  });
});
