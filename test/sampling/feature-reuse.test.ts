// FRDiff feature reuse, score mixing, DeepCache and Auto-FR (METHODS.md §6) on tiny random networks: keyframes are
// the plain forward bit for bit, interval 1 is full compute, mixing at λ ≡ 1 / λ ≡ 0 is FR / the DDIM jump, the
// NFE and FLOP counters add up, gate learning lowers its loss, and profiles round-trip and refuse other runs.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as fd from "../../lib";
import { bitEqual, codeOf, expectCode, maxAbsDiff, randomTensor } from "../helpers";

const shape = [1, 8, 8];
const unet = () => fd.modelPreset("unet-tiny", { sampleShape: shape, numClasses: 3, seed: 1 });
const dit = (layers = 4) =>
  new fd.NetworkDenoiser(
    fd.DiT.create({
      sample_size: 8, in_channels: 1, out_channels: 1, patch_size: 2, num_layers: layers, num_attention_heads: 2,
      attention_head_dim: 8, num_embeds_ada_norm: 3, class_dropout_prob: 0.1,
    }, { seed: 2 }),
    { type: "edm", sigmaData: 0.5 },
  );
const labels = [0, 1, 2, 1];
const models: [string, () => fd.NetworkDenoiser][] = [["UNet", unet], ["DiT", () => dit()]];

async function run(d: fd.NetworkDenoiser, options: Partial<fd.SampleOptions> = {}): Promise<fd.SampleResult> {
  return fd.sampleWithStats(d, { n: 4, steps: 8, solver: "ddim", seed: 3, classLabels: labels, ...options } as fd.SampleOptions);
}


/** FLOPs issued by `f` (the GEMM-class counter). */
function flopsOf(f: () => void): number {
  const before = fd.flopsIssued();
  f();
  return fd.flopsIssued() - before;
}

describe("the FLOP counter", () => {
  test("conv2d, linear, matmul and attention count 2 per multiply-add", () => {
    fd.scope(() => {
      const x = randomTensor([2, 3, 9, 7], 1);
      const w = randomTensor([5, 3, 3, 3], 2);
      expect(flopsOf(() => fd.conv2d(x, w, null, { stride: 2, padding: 1 }))).toBe(2 * 2 * 5 * 5 * 4 * 3 * 3 * 3);
      const a = randomTensor([4, 6, 10], 3);
      expect(flopsOf(() => fd.linear(a, randomTensor([7, 10], 4)))).toBe(2 * 24 * 7 * 10);
      expect(flopsOf(() => fd.matmul(a, randomTensor([4, 10, 3], 5)))).toBe(2 * 4 * 6 * 3 * 10);
      const q = randomTensor([2, 3, 5, 4], 6);
      const k = randomTensor([2, 3, 11, 4], 7);
      const v = randomTensor([2, 3, 11, 6], 8);
      expect(flopsOf(() => fd.attention(q, k, v))).toBe(2 * 2 * 3 * 5 * 11 * (4 + 6));
    });
  });
});

describe.each(models)("%s feature reuse", (_, make) => {
  let d: fd.NetworkDenoiser;
  beforeAll(() => {
    d = make();
  });
  afterAll(() => d.network.dispose());
  const x = () => randomTensor([4, ...shape], 11);
  const t = [10, 300, 600, 900];

  test("a keyframe (storing every reuse point) is the plain forward, bit for bit", () => {
    fd.scope(() => {
      const cache = new fd.FeatureCache();
      const plain = d.network.forward(x(), t, { classLabels: labels });
      const stored = d.network.forward(x(), t, { classLabels: labels, cache, store: true });
      expect(bitEqual(stored, plain)).toBe(true);
      expect(cache.size).toBe(d.network.reusePoints().length);
      cache.reset();
    });
  });

  test("reusing at the same input gives the full output exactly (FRDiff points) and to 1e-6 (DeepCache)", () => {
    fd.scope(() => {
      const plain = d.network.forward(x(), t, { classLabels: labels });
      for (const points of [d.network.reusePoints(), d.network.deepPoints(0)]) {
        const cache = new fd.FeatureCache();
        d.network.forward(x(), t, { classLabels: labels, cache, store: points });
        const reused = d.network.forward(x(), t, { classLabels: labels, cache, reuse: points });
        const residualForm = points.some((p) => p.endsWith(".residual")); // in + (out − in): one rounding
        if (residualForm) expect(maxAbsDiff(reused.dataSync(), plain.dataSync())).toBeLessThan(1e-6);
        else expect(bitEqual(reused, plain)).toBe(true);
        cache.reset();
      }
    });
  });

  test("reuse saves exactly the FLOPs inside the reused points", () => {
    fd.scope(() => {
      const cache = new fd.FeatureCache();
      let captured = new Map<string, fd.Tensor>();
      const full = flopsOf(() => {
        captured = d.network.forwardFeatures(x(), t, { classLabels: labels, cache, store: true, features: d.network.reusePoints() }).features;
      });
      const reuse = flopsOf(() => d.network.forward(x(), t, { classLabels: labels, cache, reuse: true }));
      const params = new Map(d.network.namedParameters());
      const w = (name: string) => params.get(name)!.shape;
      let expected = 0;
      for (const [name, value] of captured) {
        const [B, C, H, W] = value.shape as [number, number, number, number];
        if (name.endsWith(".conv1")) {
          const [oc, ic, kh, kw] = w(`${name}.weight`) as [number, number, number, number];
          expected += 2 * B * oc * H * W * ic * kh * kw;
        } else if (name.endsWith(".to_out")) { // UNet attention on [B, C, H, W]: q, k, v, out + SDPA
          const N = H * W;
          expected += 4 * 2 * B * N * C * C + 2 * B * N * N * 2 * C;
        } else if (name.endsWith(".attn1")) { // DiT on [B, N, D]
          const [b, n, dim] = value.shape as [number, number, number];
          expected += 4 * 2 * b * n * dim * dim + 2 * b * n * n * 2 * dim;
        }
      }
      expect(expected).toBeGreaterThan(0);
      expect(full - reuse).toBe(expected);
      cache.reset();
    });
  });

  test("interval 1 is full compute, bit for bit, for every solver (and with guidance)", async () => {
    for (const solver of ["euler", "ddim", "heun", "dpmpp2m", "euler-ancestral"] as const) {
      const plain = await run(d, { solver });
      const fr = await run(d, { solver, featureReuse: { interval: 1 } });
      expect(bitEqual(fr.samples, plain.samples)).toBe(true);
      expect(fr.nfe).toBe(plain.nfe);
      expect(fr.featureReuse).toEqual({ keyframes: plain.nfe, reused: 0, skipped: 0 });
      plain.samples.dispose();
      fr.samples.dispose();
    }
    const plain = await run(d, { guidance: 2 });
    const fr = await run(d, { guidance: 2, featureReuse: { interval: 1 } });
    expect(bitEqual(fr.samples, plain.samples)).toBe(true);
    plain.samples.dispose();
    fr.samples.dispose();
  });

  /** FLOPs of one full forward and of one forward reusing `points`, at the sampling batch. */
  const forwardFlops = (points: string[]) => {
    const cache = new fd.FeatureCache();
    const full = flopsOf(() => fd.scope(() => d.network.forward(x(), t, { classLabels: labels, cache, store: points })));
    const reuse = flopsOf(() => fd.scope(() => d.network.forward(x(), t, { classLabels: labels, cache, reuse: points })));
    cache.reset();
    return { full, reuse };
  };

  test("interval M: keyframes every M evaluations (Heun counts 2N − 1), NFE and FLOPs add up", async () => {
    const { full: fullFlops, reuse: reuseFlops } = forwardFlops(d.network.reusePoints());
    for (const [solver, evaluations] of [["ddim", 8], ["heun", 15], ["dpmpp2m", 8]] as const) {
      const plain = await run(d, { solver });
      const fr = await run(d, { solver, featureReuse: { interval: 3 } });
      const keyframes = Math.ceil(evaluations / 3);
      expect(fr.featureReuse).toEqual({ keyframes, reused: evaluations - keyframes, skipped: 0 });
      expect(fr.nfe).toBe(evaluations);
      expect(plain.flops).toBe(evaluations * fullFlops);
      expect(fr.flops).toBe(keyframes * fullFlops + (evaluations - keyframes) * reuseFlops);
      const diff = maxAbsDiff(fr.samples.dataSync(), plain.samples.dataSync());
      expect(diff).toBeGreaterThan(0); // reuse changed something …
      expect(diff).toBeLessThan(0.5); // … without derailing the trajectory
      plain.samples.dispose();
      fr.samples.dispose();
    }
  });

  test("score mixing at λ ≡ 1 is feature reuse, and at λ ≡ 0 the DDIM jump over the keyframes", async () => {
    const fr = await run(d, { featureReuse: { interval: 2 } });
    const one = await run(d, { featureReuse: { interval: 2, scoreMixing: { bias: -1 } } });
    expect(bitEqual(one.samples, fr.samples)).toBe(true);
    const zero = await run(d, { solver: "euler", featureReuse: { interval: 2, scoreMixing: { bias: 2 } } });
    expect(zero.featureReuse).toEqual({ keyframes: 4, reused: 0, skipped: 4 });
    expect(zero.nfe).toBe(4);
    const grid = d.schedule(8).sigmas.filter((_, i) => i % 2 === 0);
    const jump = await run(d, { solver: "euler", steps: undefined, schedule: grid });
    expect(maxAbsDiff(zero.samples.dataSync(), jump.samples.dataSync())).toBeLessThan(1e-5);
    for (const r of [fr, one, zero, jump]) r.samples.dispose();
  });

  test("the paper's ramp: at 50 steps, interval 2, the odd evaluations up to r = 0.433 jump", async () => {
    const r = await run(d, { n: 1, classLabels: [0], steps: 50, featureReuse: { interval: 2, scoreMixing: true } });
    // λ(r) = clip((30·(r − 0.5) + 2)/4, 0, 1) = 0 ⇔ r ≤ 0.5 − 1/15: odd i ≤ 21
    expect(r.featureReuse).toEqual({ keyframes: 25, skipped: 11, reused: 14 });
    r.samples.dispose();
  });

  test("a negative slope reverses the ramp: reuse early, jumps late (the paper's slope mirrors it)", () => {
    fd.noGrad(() => fd.scope(() => {
      const points = d.network.reusePoints();
      const keyframes = Array.from({ length: 10 }, (_, i) => i % 2 === 0);
      // The action of each evaluation, from the cache's tally; r = i/10 at the odd (non-keyframe) i.
      const actions = (slope: number) => {
        const cache = new fd.FeatureCache({ points, keyframes, scoreMixing: { slope, bias: 0.5 } });
        return keyframes.map((_, i) => {
          const before = cache.counts;
          d.denoise(x(), 10 / (i + 1), { classLabels: labels, featureReuse: { cache } });
          const after = cache.counts;
          return (["full", "reuse", "skip"] as const).find((k) => after[k] > before[k]);
        });
      };
      // λ(r) = clip((−30·(r − 0.5) + 2)/4, 0, 1): 1 at r = 0.1, 0.3; 0.5 at 0.5 (a reuse, mixed); 0 at 0.7, 0.9
      expect(actions(-30)).toEqual(["full", "reuse", "full", "reuse", "full", "reuse", "full", "skip", "full", "skip"]);
      expect(actions(30)).toEqual(["full", "skip", "full", "skip", "full", "reuse", "full", "reuse", "full", "reuse"]);
    }));
  });

  test("a mixed step is λ·D_FR + (1 − λ)·(x̂ − σ·ε_key)", () => {
    fd.noGrad(() => fd.scope(() => {
      const x0 = x();
      const x1 = randomTensor([4, ...shape], 12);
      const sigmas = [5, 2];
      const points = d.network.reusePoints();
      // λ(1/2) with bias 0.5 = 0.5
      const mixed = new fd.FeatureCache({ points, keyframes: [true, false], scoreMixing: { slope: 30, bias: 0.5 } });
      const key = d.denoise(x0, sigmas[0]!, { classLabels: labels, featureReuse: { cache: mixed } });
      const out = d.denoise(x1, sigmas[1]!, { classLabels: labels, featureReuse: { cache: mixed } });
      const plain = new fd.FeatureCache({ points, keyframes: [true, false] });
      d.denoise(x0, sigmas[0]!, { classLabels: labels, featureReuse: { cache: plain } });
      const dFr = d.denoise(x1, sigmas[1]!, { classLabels: labels, featureReuse: { cache: plain } });
      const epsKey = fd.div(fd.sub(x0, key), sigmas[0]!);
      const expected = fd.add(fd.mul(dFr, 0.5), fd.mul(fd.sub(x1, fd.mul(epsKey, sigmas[1]!)), 0.5));
      expect(maxAbsDiff(out.dataSync(), expected.dataSync())).toBeLessThan(1e-5);
      expectCode(() => d.denoise(x1, 1, { classLabels: labels, featureReuse: { cache: mixed } }), "ERR_ARGUMENT", /plan has 2/);
      mixed.reset();
      plain.reset();
    }));
  });

  test("DeepCache mode: retrieve steps skip the deep branch (at least 40% of the FLOPs here)", async () => {
    const full = await run(d);
    const deep = await run(d, { featureReuse: { mode: "deepcache", interval: 4 } });
    expect(deep.featureReuse).toEqual({ keyframes: 2, reused: 6, skipped: 0 });
    const one = forwardFlops(d.network.deepPoints(0));
    expect(one.reuse).toBeLessThan(0.6 * one.full);
    expect(deep.flops).toBe(2 * one.full + 6 * one.reuse);
    expect(maxAbsDiff(deep.samples.dataSync(), full.samples.dataSync())).toBeLessThan(0.5);
    full.samples.dispose();
    deep.samples.dispose();
  });

  test("repeated feature-reuse sampling holds no tensors afterwards", async () => {
    (await run(d, { featureReuse: { interval: 2, scoreMixing: true } })).samples.dispose();
    const before = fd.memory().liveTensors;
    for (let i = 0; i < 3; ++i) (await run(d, { featureReuse: { interval: 3, scoreMixing: true } })).samples.dispose();
    expect(fd.memory().liveTensors).toBeLessThanOrEqual(before);
  });
});

describe("plans: bad input is a clear error", () => {
  let d: fd.NetworkDenoiser;
  beforeAll(() => {
    d = unet();
  });
  afterAll(() => d.network.dispose());

  test.each([
    [{ interval: 0 }, /interval/],
    [{ interval: 2, keyframes: [0] }, /not both/],
    [{ keyframes: [1, 2] }, /include evaluation 0/],
    [{ keyframes: [0, 8] }, /not an evaluation index/],
    [{ skips: [0] }, /skips/],
    [{ interval: 2, skips: [2] }, /also a keyframe/],
    [{ points: ["nothing.*"] }, /matches nothing/],
    [{ mode: "deepcache", branch: 5 }, /branch/],
    [{ mode: "deepcache", points: ["*"] }, /points/],
    [{ scoreMixing: { slope: 0 } }, /slope/],
    [{ scoreMixing: { slope: Infinity } }, /slope/],
    [{ cadence: 2 }, /unknown option "cadence"/],
  ])("%j", async (featureReuse, pattern) => {
    await expect(run(d, { featureReuse: featureReuse as fd.FeatureReuseOptions })).rejects.toMatchObject({ code: "ERR_ARGUMENT", message: expect.stringMatching(pattern) });
  });

  test("only network denoisers reuse features; an MLP has no points", async () => {
    const exact = new fd.MixtureDenoiser(new fd.GaussianMixture({ means: [[0, 0], [1, 1]], stds: 0.1 }));
    await expect(fd.sampleWithStats(exact, { n: 2, steps: 4, solver: "euler", featureReuse: { interval: 2 } })).rejects.toThrow(/needs a NetworkDenoiser/);
    const mlp = fd.modelPreset("mlp", { sampleShape: [2], numClasses: 0 });
    await expect(fd.sampleWithStats(mlp, { n: 2, steps: 4, solver: "euler", featureReuse: { interval: 2 } })).rejects.toThrow(/no feature-reuse points/);
    await expect(fd.sampleWithStats(mlp, { n: 2, steps: 4, solver: "euler", featureReuse: { mode: "deepcache" } })).rejects.toThrow(/no deep branch/);
    mlp.network.dispose();
  });
});

describe("Auto-FR and cache profiles", () => {
  let d: fd.NetworkDenoiser;
  let profile: fd.CacheProfile;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-profile-"));
  beforeAll(async () => {
    d = unet();
    profile = await fd.tuneFeatureReuse(d, { solver: "ddim", steps: 8, budget: { speedup: 1.5 }, iterations: 3, pool: 4, batch: 2, validation: 4 });
  }, 120_000);
  afterAll(() => {
    d.network.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test("gate learning lowers its loss (from a plan that reuses everything, no cost pressure)", async () => {
    const losses: number[] = [];
    await fd.tuneFeatureReuse(d, {
      solver: "ddim", steps: 8, budget: { speedup: 1 }, init: { keyframes: [0] }, jumps: false, iterations: 24, pool: 2, batch: 2,
      validation: 2, penalty: 1e-9, lr: 0.1, onProgress: (p) => losses.push(p.loss),
    });
    expect(losses).toHaveLength(24);
    expect(Math.min(...losses.slice(-4))).toBeLessThan(0.5 * losses[0]!);
  }, 120_000);

  test("the profile meets its budget, says what it measured, and round-trips", async () => {
    expect(profile.format).toBe("fastdiff.cache-profile");
    expect(profile.model.sha256).toBe(fd.modelHash(d.network));
    expect(profile.evaluations).toBe(8);
    expect(profile.plan.keyframes[0]).toBe(0);
    expect(profile.measured!.speedup).toBeGreaterThanOrEqual(1.5);
    expect(profile.measured!.flopsRatio).toBeLessThan(1);
    const file = path.join(dir, "p.json");
    await fd.saveCacheProfile(profile, file);
    const loaded = await fd.loadCacheProfile(file);
    expect(loaded).toEqual(profile);
    // sampling with it equals sampling with its plan spelled out
    const a = await run(d, { featureReuse: loaded });
    const b = await run(d, { featureReuse: { points: profile.plan.points, keyframes: profile.plan.keyframes, skips: profile.plan.skips } });
    expect(bitEqual(a.samples, b.samples)).toBe(true);
    a.samples.dispose();
    b.samples.dispose();
  });

  test("a profile is refused for another model, solver, step count or schedule, and a corrupt file is ERR_FORMAT", async () => {
    const other = fd.modelPreset("unet-tiny", { sampleShape: shape, numClasses: 3, seed: 9 });
    await expect(run(other, { featureReuse: profile })).rejects.toThrow(/another model/);
    other.network.dispose();
    await expect(run(d, { solver: "euler", featureReuse: profile })).rejects.toThrow(/solver "ddim"/);
    await expect(run(d, { steps: 9, featureReuse: profile })).rejects.toThrow(/steps 8/);
    await expect(run(d, { schedule: "karras", featureReuse: profile })).rejects.toThrow(/schedule "default"/);
    const bad = path.join(dir, "bad.json");
    fs.writeFileSync(bad, "{ not json");
    expect(await codeOf(fd.loadCacheProfile(bad))).toBe("ERR_FORMAT");
    fs.writeFileSync(bad, JSON.stringify({ ...profile, plan: { ...profile.plan, keyframes: [3] } }));
    await expect(fd.loadCacheProfile(bad)).rejects.toThrow(/keyframes must include 0/);
    expect(await codeOf(fd.loadCacheProfile(path.join(dir, "missing.json")))).toBe("ERR_ARGUMENT");
  });

  test("bad tuning options are ERR_ARGUMENT", async () => {
    for (const [o, pattern] of [
      [{ solver: "euler-ancestral" }, /deterministic/],
      [{ budget: { speedup: 0.5 } }, /speedup/],
      [{ budget: {} }, /budget/],
      [{ batch: 9, pool: 4 }, /batch/],
      [{ init: { keyframes: [2] } }, /init/],
    ] as const) {
      const options = Object.assign({ solver: "ddim", steps: 8, budget: { speedup: 2 } }, o) as fd.TuneFeatureReuseOptions;
      await expect(fd.tuneFeatureReuse(d, options)).rejects.toThrow(pattern);
    }
  });
});
