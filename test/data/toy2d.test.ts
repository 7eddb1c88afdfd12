// Toy 2-D sets and the exact Gaussian-mixture denoiser: sample statistics, mode assignment, the closed-form
// denoiser against a Monte-Carlo posterior mean, its limits in σ, per-sample σ, and seeded determinism.
import * as fd from "../../lib";
import { toy2d, GaussianMixture, MixtureDenoiser, TOY_SIGMA_MAX, datasets } from "../../lib/data";
import { expectCode } from "../helpers";

const { exp, sqrt, abs, max } = Math;

/** Monte-Carlo E[x0 | x̂] from draws x0_i: weights N(x̂; x0_i, σ²I) (in log space), with ESS and posterior variance. */
function monteCarlo(x0: Float32Array, D: number, xhat: ArrayLike<number>, sigma: number): { mean: Float64Array; ess: number; variance: number } {
  const M = x0.length / D;
  const logw = new Float64Array(M);
  let m = -Infinity;
  for (let i = 0; i < M; ++i) {
    let d2 = 0;
    for (let j = 0; j < D; ++j) d2 += (xhat[j]! - x0[i * D + j]!) ** 2;
    logw[i] = -d2 / (2 * sigma * sigma);
    m = max(m, logw[i]!);
  }
  const mean = new Float64Array(D);
  let s = 0;
  let s2 = 0;
  for (let i = 0; i < M; ++i) {
    const w = exp(logw[i]! - m);
    logw[i] = w;
    s += w;
    s2 += w * w;
    for (let j = 0; j < D; ++j) mean[j]! += w * x0[i * D + j]!;
  }
  for (let j = 0; j < D; ++j) mean[j]! /= s;
  let variance = 0; // mean over coordinates of the posterior variance
  for (let i = 0; i < M; ++i) for (let j = 0; j < D; ++j) variance += (logw[i]! / s) * (x0[i * D + j]! - mean[j]!) ** 2;
  return { mean, ess: (s * s) / s2, variance: variance / D };
}

/** A 3-component mixture in 5 dimensions with unequal weights and stds. */
const mix3 = new GaussianMixture({
  means: [[1, 0, -1, 0.5, 0], [-1, 1, 0, 0, 0.5], [0, -1, 1, -0.5, -1]],
  stds: [0.3, 0.5, 0.4],
  weights: [0.5, 0.3, 0.2],
});

describe("toy2d sets", () => {
  test("shapes, names, and seeded determinism", () => {
    const a = toy2d("8gaussians");
    expect([a.size, a.sampleShape, a.numClasses, a.labels, a.name]).toEqual([10_000, [2], 0, null, "8gaussians"]);
    expect(Buffer.from(toy2d("8gaussians").data.buffer).equals(Buffer.from(a.data.buffer))).toBe(true);
    expect(Buffer.from(toy2d("8gaussians", { seed: 1 }).data.buffer).equals(Buffer.from(a.data.buffer))).toBe(false);
    expect(datasets.toy2d("grid25", { n: 100, seed: 3 }).size).toBe(100);
    // the held samples are sample(n, seed); fresh draws are reproducible and a Generator advances
    const b = toy2d("grid25", { n: 64, seed: 5 });
    expect(Array.from(b.sample(64, 5).dataSync())).toEqual(Array.from(b.data));
    const g = new fd.Generator(9);
    const [s1, s2] = [b.sample(32, g).dataSync(), b.sample(32, g).dataSync()];
    expect(Array.from(s1)).not.toEqual(Array.from(s2));
    expect(Array.from(b.sample(32, new fd.Generator(9)).dataSync())).toEqual(Array.from(s1));
    expectCode(() => toy2d("moons" as never), "ERR_ARGUMENT", /unknown toy set 'moons'/);
    expectCode(() => toy2d("grid25", { n: 0 }), "ERR_ARGUMENT");
  });

  for (const [name, K, s, radius2] of [["8gaussians", 8, 0.1, 4], ["grid25", 25, 0.05, 4]] as const) {
    test(`${name}: modes, sample moments and mode assignment`, () => {
      const ds = toy2d(name);
      const mix = ds.modes!;
      expect(mix.size).toBe(K);
      expect(mix.stds.every((v) => v === s)).toBe(true);
      expect(mix.weights.every((w) => abs(w - 1 / K) < 1e-15)).toBe(true);
      const n = 50_000;
      const { x, components } = mix.draw(n, 11);
      const assigned = mix.assign(x);
      expect(Array.from(assigned)).toEqual(Array.from(components)); // modes are ≥ 15 stds apart
      const count = new Float64Array(K);
      const sum = new Float64Array(2 * K);
      const sq = new Float64Array(K);
      for (let i = 0; i < n; ++i) {
        const k = components[i]!;
        count[k]! += 1;
        for (let j = 0; j < 2; ++j) sum[2 * k + j]! += x[2 * i + j]!;
      }
      for (let i = 0; i < n; ++i) {
        const k = components[i]!;
        for (let j = 0; j < 2; ++j) sq[k]! += (x[2 * i + j]! - sum[2 * k + j]! / count[k]!) ** 2;
      }
      for (let k = 0; k < K; ++k) {
        expect(abs(count[k]! - n / K)).toBeLessThan(5 * sqrt((n * (K - 1)) / K / K)); // binomial, 5 σ
        for (let j = 0; j < 2; ++j) expect(abs(sum[2 * k + j]! / count[k]! - mix.means[k]![j]!)).toBeLessThan((5 * s) / sqrt(count[k]!));
        expect(abs(sq[k]! / (2 * count[k]! - 2) / (s * s) - 1)).toBeLessThan(5 * sqrt(1 / count[k]!)); // χ² with 2·count − 2 dof
      }
      // overall: E[x] = 0, E‖x‖² = (mean ‖μ_k‖²) + 2s²
      const m2 = mix.means.reduce((a, mu) => a + mu[0]! ** 2 + mu[1]! ** 2, 0) / K;
      if (name === "8gaussians") expect(m2).toBeCloseTo(radius2, 12);
      let e2 = 0;
      for (let i = 0; i < 2 * n; ++i) e2 += x[i]! ** 2;
      expect(abs(e2 / n - (m2 + 2 * s * s))).toBeLessThan(0.05);
    });
  }

  test("swissroll: no closed form, points on the scaled roll", () => {
    const ds = toy2d("swissroll", { n: 5000 });
    expect([ds.modes, ds.denoiser, ds.size]).toEqual([null, null, 5000]);
    for (let i = 0; i < ds.size; ++i) {
      const r = Math.hypot(ds.data[2 * i]!, ds.data[2 * i + 1]!);
      expect(r).toBeGreaterThan((1.5 * Math.PI) / 7 - 0.3);
      expect(r).toBeLessThan((4.5 * Math.PI) / 7 + 0.3);
    }
    expect(Array.from(ds.sample(10, 2).dataSync())).toEqual(Array.from(toy2d("swissroll", { n: 10, seed: 2 }).data));
    expect(ds.schedule(4).sigmas[0]).toBeCloseTo(TOY_SIGMA_MAX, 10);
  });
});

describe("the exact mixture denoiser", () => {
  test("with gradients on, the op path equals the float64 host path (to 1e-5) and differentiates in x̂", () => {
    const d = new MixtureDenoiser(mix3);
    fd.scope(() => {
      const x = fd.randn([6, 5], { seed: 31 });
      const sigmas = [0.02, 0.3, 1, 3, 10, 40];
      const host = d.denoise(x, sigmas).dataSync();
      const leaf = x.clone();
      leaf.requiresGrad = true;
      const viaOps = d.denoise(leaf, sigmas);
      const a = viaOps.dataSync();
      let worst = 0;
      for (let i = 0; i < a.length; ++i) worst = Math.max(worst, Math.abs(a[i]! - host[i]!));
      expect(worst).toBeLessThan(1e-5);
      // d/dx̂ of Σ D·v against central differences of the host path
      const v = fd.randn([6, 5], { seed: 32 });
      fd.sum(fd.mul(viaOps, v)).backward();
      const g = leaf.grad!.dataSync();
      const base = x.dataSync();
      const dir = fd.randn([6, 5], { seed: 33 }).dataSync();
      const h = 1e-3;
      const at = (sign: number) => {
        const shifted = fd.tensor(Float32Array.from(base, (b, i) => b + sign * h * dir[i]!), [6, 5]);
        const out = d.denoise(shifted, sigmas).dataSync();
        return out.reduce((s, o, i) => s + o * v.dataSync()[i]!, 0);
      };
      const numeric = (at(1) - at(-1)) / (2 * h);
      const analytic = g.reduce((s, gi, i) => s + gi * dir[i]!, 0);
      expect(Math.abs(numeric - analytic)).toBeLessThan(2e-2 * Math.max(1, Math.abs(numeric)));
    });
  });

  const cases: [string, GaussianMixture, number[]][] = [
    ["8gaussians", toy2d("8gaussians", { n: 1 }).modes!, [0.05, 0.3, 1, 3]],
    ["grid25", toy2d("grid25", { n: 1 }).modes!, [0.05, 0.4, 2]],
    ["3 components in 5-D", mix3, [0.4, 1, 3]],
  ];
  for (const [name, mix, sigmas] of cases) {
    test(`${name}: matches a Monte-Carlo posterior mean within 5 standard errors`, () => {
      const D = mix.dim;
      const { x: x0 } = mix.draw(200_000, 21);
      const { x: pts } = mix.draw(6, 22);
      for (const sigma of sigmas) {
        const noise = fd.randn([6, D], { seed: 23 }).dataSync();
        const xhat = Float64Array.from(pts, (v, i) => v + sigma * noise[i]!);
        const exact = mix.denoise(xhat, sigma);
        for (let p = 0; p < 6; ++p) {
          const mc = monteCarlo(x0, D, xhat.subarray(p * D, (p + 1) * D), sigma);
          expect(mc.ess).toBeGreaterThan(200);
          const tol = 5 * sqrt(mc.variance / mc.ess) + 1e-4;
          for (let j = 0; j < D; ++j) expect(abs(exact[p * D + j]! - mc.mean[j]!)).toBeLessThan(tol);
        }
      }
    });
  }

  test("limits: D → x̂ as σ → 0 and → the mixture mean as σ → ∞", () => {
    const x = Float64Array.from({ length: 20 }, (_, i) => Math.sin(i) * 2);
    expect(Array.from(mix3.denoise(x, 0))).toEqual(Array.from(x));
    const small = mix3.denoise(x, 1e-5);
    for (let i = 0; i < x.length; ++i) expect(abs(small[i]! - x[i]!)).toBeLessThan(1e-8);
    const mean = mix3.mean();
    expect(mean[0]).toBeCloseTo(0.5 * 1 + 0.3 * -1 + 0.2 * 0, 14);
    const points = new GaussianMixture({ means: [[0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], stds: 0 }); // point masses
    expect(Array.from(points.denoise(x, 1e-200))).toEqual(Array.from(x)); // σ² underflows to 0: still x̂, no NaN
    expect(Array.from(mix3.denoise(x, 1e200))).toEqual(Array.from(mix3.denoise(x, Infinity))); // σ² overflows
    expectCode(() => points.score(x, 0), "ERR_ARGUMENT", /point-mass/);
    const inf = mix3.denoise(x, Infinity);
    const huge = mix3.denoise(x, 1e4);
    for (let i = 0; i < x.length; ++i) {
      expect(abs(inf[i]! - mean[i % 5]!)).toBeLessThan(1e-15);
      expect(abs(huge[i]! - mean[i % 5]!)).toBeLessThan(1e-6);
    }
  });

  test("one component: exactly μ + s²/(s² + σ²)(x̂ − μ)", () => {
    const mu = [0.3, -1.2, 2];
    const s = 0.7;
    const one = new GaussianMixture({ means: [mu], stds: s });
    const x = Float64Array.from({ length: 12 }, (_, i) => i / 3 - 2);
    const sig = [0.01, 0.5, 3, 40];
    const out = one.denoise(x, sig);
    for (let i = 0; i < x.length; ++i) {
      const c = (s * s) / (s * s + sig[Math.floor(i / 3)]! ** 2);
      expect(out[i]).toBe(mu[i % 3]! + c * (x[i]! - mu[i % 3]!));
    }
  });

  test("tensors: per-sample σ, score = (D − x̂)/σ², shapes and errors", () => {
    const den = new MixtureDenoiser(mix3);
    const x = fd.randn([4, 5], { seed: 3, std: 1.5 });
    const sig = [0.1, 0.8, 2, 7];
    const d = den.denoise(x, sig);
    expect(d.shape).toEqual([4, 5]);
    const dv = d.dataSync();
    sig.forEach((s, b) => {
      const row = fd.slice(x, 0, b, b + 1);
      expect(Array.from(den.denoise(row, s).dataSync())).toEqual(Array.from(dv.subarray(b * 5, b * 5 + 5)));
    });
    const sc = den.score(x, sig).dataSync();
    const xv = x.dataSync();
    for (let i = 0; i < 20; ++i) {
      const s2 = sig[Math.floor(i / 5)]! ** 2;
      expect(abs(sc[i]! - (dv[i]! - xv[i]!) / s2)).toBeLessThan(2e-5 * max(1, abs(sc[i]!)) / s2);
    }
    // the score is the gradient of log p_σ (central differences in float64)
    const p = Float64Array.from(xv.subarray(0, 5));
    const g = mix3.score(p, 0.5);
    for (let j = 0; j < 5; ++j) {
      const h = 1e-5;
      const [a, b] = [p.slice(), p.slice()];
      a[j]! += h;
      b[j]! -= h;
      expect(abs((mix3.logDensity(a, 0.5)[0]! - mix3.logDensity(b, 0.5)[0]!) / (2 * h) - g[j]!)).toBeLessThan(1e-6);
    }
    expect(Array.from(mix3.score(p, 0)).every(Number.isFinite)).toBe(true);
    const img = new MixtureDenoiser(mix3, { sampleShape: [5, 1, 1] });
    expect(img.denoise(fd.reshape(x, [4, 5, 1, 1]), 0.3).shape).toEqual([4, 5, 1, 1]);
    expectCode(() => den.denoise(x, [1, 2]), "ERR_ARGUMENT", /2 σ values for a batch of 4/);
    expectCode(() => den.denoise(x, -1), "ERR_ARGUMENT", /σ must be ≥ 0/);
    expectCode(() => den.denoise(fd.zeros([4, 4]), 1), "ERR_SHAPE");
    expectCode(() => new MixtureDenoiser(mix3, { sampleShape: [2, 2] }), "ERR_ARGUMENT");
    expectCode(() => new GaussianMixture({ means: [[0], [0, 1]], stds: 1 }), "ERR_ARGUMENT");
    expectCode(() => new GaussianMixture({ means: [[0]], stds: 1, weights: [0] }), "ERR_ARGUMENT");
  });

  test("schedule and speed: 4,096 points × 25 modes in < 50 ms", () => {
    const ds = toy2d("grid25", { n: 4096 });
    const den = ds.denoiser!;
    const sched = den.schedule(18).sigmas;
    expect([sched.length, sched[18]]).toEqual([19, 0]);
    expect(sched[0]).toBeCloseTo(TOY_SIGMA_MAX, 10);
    expect(sched[17]).toBeCloseTo(0.002, 12);
    const x = fd.randn([4096, 2], { seed: 1, std: 2 });
    let best = Infinity;
    for (let r = 0; r < 5; ++r) {
      const t0 = performance.now();
      fd.scope(() => den.denoise(x, 0.3).dataSync());
      best = Math.min(best, performance.now() - t0);
    }
    expect(best).toBeLessThan(50);
  });

  test("sampling 8gaussians with Heun and the exact denoiser lands on the modes", async () => {
    const ds = toy2d("8gaussians");
    const { samples } = await fd.sampleWithStats(ds.denoiser!, { n: 2000, steps: 32, solver: "heun", seed: 4 });
    const x = samples.dataSync();
    const k = ds.modes!.assign(x);
    const count = new Array<number>(8).fill(0);
    let near = 0;
    for (let i = 0; i < 2000; ++i) {
      count[k[i]!]! += 1;
      const mu = ds.modes!.means[k[i]!]!;
      if (Math.hypot(x[2 * i]! - mu[0]!, x[2 * i + 1]! - mu[1]!) < 0.4) near += 1; // 4 stds
    }
    expect(near).toBeGreaterThan(0.99 * 2000);
    for (const c of count) expect(abs(c - 250)).toBeLessThan(5 * sqrt(2000 * (1 / 8) * (7 / 8)));
  });
});
