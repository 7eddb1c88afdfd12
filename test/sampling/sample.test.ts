// sample(): free-running against the diffusers golden trajectories, sample statistics on an exact Gaussian,
// NFE / progress, abort, event-loop freedom, seeds, constant memory and option validation.
import * as path from "node:path";
import * as fd from "../../lib";
import { codeOf, goldenTensors, goldenValues, maxAbsDiff } from "../helpers";
const load = (name: string) => goldenTensors(path.join("schedulers", name, "trajectory.safetensors"));
import { ddimSchedule, eulerDiscreteSchedule, karrasSigmas, type Schedule } from "../../lib/sampling/schedules";
import { sample, sampleWithStats, type SampleOptions, type SampleProgress } from "../../lib/sampling/sample";
import type { SolverName } from "../../lib/sampling/solvers";
import type { DenoiseOptions, SigmaInput } from "../../lib/models/denoiser";
import { GaussianDenoiser, VpEpsDenoiser } from "./denoisers";


const MU = [0.5, -1];
const S = 0.7;

// ---------------------------------------------------------------------------------------------------
// Free-running against diffusers: the VP ε test model as a Denoiser, from the recorded initial noise.

describe("free-running sample() against the golden trajectories (VP ε model)", () => {
  test.each(["ddim_10", "ddim_50"] as const)("%s: DDIM η = 0 with clip_sample, latents_final to atol 1e-4", async (name) => {
    const g = load(name);
    if (!g) return;
    const n = goldenValues(g, "timesteps").length;
    const den = new VpEpsDenoiser(ddimSchedule(n), "vp");
    const noise = fd.tensor(Float32Array.from(goldenValues(g, "init_noise")), [1, 4, 8, 8]);
    const r = await sampleWithStats(den, { noise, steps: n, solver: "ddim", eta: 0, clipDenoised: 1 });
    // the last σ is 0 (set_alpha_to_one: ᾱ = 1), so x̂ = x0 = the final latent
    expect(r.sigmas[n]).toBe(0);
    expect(maxAbsDiff(r.samples.dataSync(), goldenValues(g, "latents_final"))).toBeLessThanOrEqual(1e-4);
    expect(r.nfe).toBe(n);
    expect(den.calls).toBe(n);
    r.samples.dispose();
    noise.dispose();
  });

  test("euler_25: Euler from x̂_0 = σ_max·n, latents_final to atol 1e-4", async () => {
    const g = load("euler_25");
    if (!g) return;
    const n = goldenValues(g, "timesteps").length;
    const den = new VpEpsDenoiser(eulerDiscreteSchedule(n), "sigma");
    const noise = fd.tensor(Float32Array.from(goldenValues(g, "init_noise")), [1, 4, 8, 8]);
    let first: Float32Array | null = null;
    const watched = Object.assign(Object.create(den) as VpEpsDenoiser, {
      denoise(x: fd.Tensor, sigma: SigmaInput) {
        first ??= x.dataSync();
        return den.denoise(x, sigma);
      },
    });
    const r = await sampleWithStats(watched, { noise, steps: n, solver: "euler" });
    // x̂_0 = init_noise_sigma·n is diffusers' latents_initial
    expect(maxAbsDiff(first!, goldenValues(g, "latents_initial"))).toBeLessThanOrEqual(1e-4);
    expect(maxAbsDiff(r.samples.dataSync(), goldenValues(g, "latents_final"))).toBeLessThanOrEqual(1e-4);
    expect(r.nfe).toBe(n);
    r.samples.dispose();
    noise.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// Sample statistics on N(μ, s²I)

describe("samples of N(μ = (0.5, −1), s² = 0.49·I): mean and variance within the sampling error", () => {
  // 4096 samples per dimension. Standard errors: mean s/√n = 0.0109; unbiased variance s²·√(2/(n − 1)) = 0.0108
  // (2.2 % of s²). Bound = 5 SE (seeded runs, 4 checks per solver) plus the solver's discretization bias at
  // these N (Karras ρ = 7, σ 80 → 0.002 → 0), stated per case: from the exact linear recursion of each solver
  // on this Gaussian in float64, the relative variance error is Euler −2.7 % (N = 200), DDIM η = 0.5 −3.4 %
  // (200), Euler ancestral −5.6 % (200), Heun +1.8 % (40), DPM++2M +1.9 % (40), Heun with EDM churn
  // (S_churn 40, S_min 0.05, S_max 50, S_noise 1.003) +2.9 % (100). The mean is unbiased up to starting from
  // x̂_0 = σ_0·n rather than μ + σ_0·n: s/√(s² + σ_0²)·|μ| ≤ 0.0088.
  const N = 4096;
  const cases: [string, SolverName, number, Partial<SampleOptions>, number][] = [
    ["euler", "euler", 200, {}, 0.035],
    ["ddim η = 0.5", "ddim", 200, { eta: 0.5 }, 0.04],
    ["euler-ancestral", "euler-ancestral", 200, {}, 0.065],
    ["heun", "heun", 40, {}, 0.025],
    ["dpmpp2m", "dpmpp2m", 40, {}, 0.025],
    ["heun + churn", "heun", 100, { sChurn: 40, sMin: 0.05, sMax: 50, sNoise: 1.003 }, 0.035],
  ];
  test.each(cases)("%s (%s, %i steps)", async (_label, solver, steps, extra, bias) => {
    const den = new GaussianDenoiser(MU, S);
    const x = await sample(den, { n: N, steps, solver, schedule: "karras", seed: 1234, ...extra });
    const v = x.dataSync();
    x.dispose();
    const seMean = S / Math.sqrt(N);
    const seVar = S * S * Math.sqrt(2 / (N - 1));
    for (let k = 0; k < 2; ++k) {
      let m = 0;
      for (let i = 0; i < N; ++i) m += v[i * 2 + k]!;
      m /= N;
      let q = 0;
      for (let i = 0; i < N; ++i) q += (v[i * 2 + k]! - m) ** 2;
      const variance = q / (N - 1);
      expect(Math.abs(m - MU[k]!)).toBeLessThanOrEqual(5 * seMean + 0.0088);
      expect(Math.abs(variance - S * S)).toBeLessThanOrEqual(5 * seVar + bias * S * S);
    }
  });
});

// ---------------------------------------------------------------------------------------------------
// NFE and progress

describe("NFE and onProgress", () => {
  const expectedNfe = (solver: SolverName, k: number, steps: number, endsAtZero: boolean): number =>
    solver === "heun" ? 2 * k - (endsAtZero && k === steps ? 1 : 0) : k;
  test.each(["euler", "ddim", "heun", "dpmpp2m", "euler-ancestral"] as const)("%s: one event per step, cumulative NFE", async (solver) => {
    const den = new GaussianDenoiser(MU, S);
    const steps = 12;
    const events: SampleProgress[] = [];
    const r = await sampleWithStats(den, { n: 8, steps, solver, schedule: "karras", seed: 1, onProgress: (p) => events.push(p) });
    r.samples.dispose();
    const sig = karrasSigmas(steps);
    expect(r.sigmas).toEqual(sig);
    expect(events.map((e) => e.step)).toEqual(Array.from({ length: steps }, (_, i) => i + 1));
    events.forEach((e, i) => {
      expect(e.steps).toBe(steps);
      expect(e.sigma).toBe(sig[i]);
      expect(e.sigmaNext).toBe(sig[i + 1]);
      expect(e.nfe).toBe(expectedNfe(solver, i + 1, steps, true));
      if (i > 0) expect(e.elapsedMs).toBeGreaterThanOrEqual(events[i - 1]!.elapsedMs);
    });
    expect(r.nfe).toBe(solver === "heun" ? 2 * steps - 1 : steps);
    expect(r.nfe).toBe(den.calls);
  });

  test("heun: 2N on a grid ending above 0; 2N − 1 with churn on a grid ending in 0", async () => {
    const den = new GaussianDenoiser(MU, S);
    const r1 = await sampleWithStats(den, { n: 4, solver: "heun", schedule: karrasSigmas(7).slice(0, -1), seed: 1 });
    expect(r1.steps).toBe(6);
    expect(r1.nfe).toBe(12);
    const r2 = await sampleWithStats(den, { n: 4, steps: 7, solver: "heun", sChurn: 10, schedule: "karras", seed: 1 });
    expect(r2.nfe).toBe(13);
    r1.samples.dispose();
    r2.samples.dispose();
  });
});

// ---------------------------------------------------------------------------------------------------
// Async behaviour

describe("async job: abort, event loop, memory", () => {
  test("aborting in onProgress rejects with ERR_ABORTED before the next step and frees everything", async () => {
    const den = new GaussianDenoiser(MU, S);
    const before = fd.memory().liveTensors;
    const ac = new AbortController();
    const p = sample(den, {
      n: 16, steps: 50, solver: "dpmpp2m", schedule: "karras", seed: 3, signal: ac.signal,
      onProgress: (e) => {
        if (e.step === 3) ac.abort();
      },
    });
    await expect(p).rejects.toMatchObject({ name: "FastdiffError", code: "ERR_ABORTED" });
    // step 3 was reported while step 4 was already queued (one step of look-ahead); nothing after that
    expect(den.calls).toBe(4);
    expect(fd.memory().liveTensors).toBe(before);
  });

  test("a denoiser error (or a wrong output shape) rejects the job and frees its tensors", async () => {
    const den = new GaussianDenoiser(MU, S);
    const before = fd.memory().liveTensors;
    const failing = Object.assign(Object.create(den) as GaussianDenoiser, {
      denoise(x: fd.Tensor, s: SigmaInput) {
        if (den.calls === 5) throw new Error("network exploded");
        return den.denoise(x, s);
      },
    });
    await expect(sample(failing, { n: 4, steps: 10, solver: "dpmpp2m", seed: 1 })).rejects.toThrow("network exploded");
    expect(fd.memory().liveTensors).toBe(before);
    const wrong = Object.assign(Object.create(den) as GaussianDenoiser, {
      denoise: (x: fd.Tensor) => fd.zeros([1, x.shape[1]!]),
    });
    expect(await codeOf(sample(wrong, { n: 4, steps: 10, solver: "euler", seed: 1 }))).toBe("ERR_SHAPE");
    expect(fd.memory().liveTensors).toBe(before);
  });

  test("an already aborted signal rejects without evaluating the network", async () => {
    const den = new GaussianDenoiser(MU, S);
    const ac = new AbortController();
    ac.abort();
    expect(await codeOf(sample(den, { n: 2, steps: 5, solver: "euler", signal: ac.signal }))).toBe("ERR_ABORTED");
    expect(den.calls).toBe(0);
  });

  test.each(["sleep", "poll"] as const)("the event loop stays free (reads that %s): timers and immediates run between steps; an external abort lands", async (wait) => {
    const before = fd.getReadWait();
    fd.setReadWait(wait);
    // Each evaluation waits for the stream, so every read is complete before it is awaited: the quickest steps.
    // (Under a loaded full run, plain steps were once seen to pass with no turn of the loop at all.)
    const den = Object.assign(new GaussianDenoiser(MU, S), {
      denoise(this: GaussianDenoiser, x: fd.Tensor, s: SigmaInput) {
        fd.synchronize();
        return GaussianDenoiser.prototype.denoise.call(this, x, s);
      },
    });
    let immediates = 0;
    let running = true;
    const spin = (): void => {
      immediates += 1;
      if (running) setImmediate(spin);
    };
    setImmediate(spin);
    let timerAtCall = -1;
    setTimeout(() => (timerAtCall = den.calls), 1);
    const r = await sampleWithStats(den, { n: 64, steps: 300, solver: "euler", schedule: "karras", seed: 4 }).finally(() => fd.setReadWait(before));
    running = false;
    r.samples.dispose();
    // At least one turn of the loop per step (the sampler waits for one), even for a denoiser this quick.
    expect(immediates).toBeGreaterThanOrEqual(299);
    expect(timerAtCall).toBeGreaterThanOrEqual(0);
    expect(timerAtCall).toBeLessThan(300); // the timer fired while sampling was under way

    const den2 = new GaussianDenoiser(MU, S);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 5);
    const p = sample(den2, { n: 64, steps: 100000, solver: "heun", schedule: "karras", seed: 4, signal: ac.signal });
    expect(await codeOf(p)).toBe("ERR_ABORTED");
    expect(den2.calls).toBeGreaterThan(0);
    expect(den2.calls).toBeLessThan(2 * 100000 - 1);
  });

  test("constant memory over 200 steps; nothing left after the result is disposed", async () => {
    for (const solver of ["dpmpp2m", "heun", "euler-ancestral"] as const) {
      const den = new GaussianDenoiser(MU, S);
      fd.synchronize();
      const before = fd.memory();
      const live: number[] = [];
      const bytes: number[] = [];
      const x = await sample(den, {
        n: 256, steps: 200, solver, schedule: "karras", seed: 5,
        onProgress: (e) => {
          if (e.step % 20 === 0) {
            const m = fd.memory();
            live.push(m.liveTensors);
            bytes.push(m.bytes);
          }
        },
      });
      // the same number of live tensors at steps 20, 40, …, 200: x̂ (and DPM++'s previous x0)
      expect(new Set(live).size).toBe(1);
      expect(live[0]! - before.liveTensors).toBe(solver === "dpmpp2m" ? 2 : 1);
      // bytes also count tensors JS has dropped but the queued next step still uses: bounded by the carried
      // tensors plus one step's intermediates (Heun: ≈ 14 sample-sized tensors of 256·2·4 bytes)
      expect(Math.max(...bytes) - before.bytes).toBeLessThanOrEqual(20 * 256 * 2 * 4);
      x.dispose();
      fd.synchronize();
      expect(fd.memory().liveTensors).toBe(before.liveTensors);
      expect(fd.memory().bytes).toBe(before.bytes);
    }
  });

  test("runs under noGrad, step by step (grad mode is on again between steps and after)", async () => {
    const den = new GaussianDenoiser(MU, S);
    const modes: boolean[] = [];
    const probe = Object.assign(Object.create(den) as GaussianDenoiser, {
      denoise(x: fd.Tensor, s: SigmaInput, o?: DenoiseOptions) {
        modes.push(fd.isGradEnabled());
        return den.denoise(x, s, o);
      },
    });
    const between: boolean[] = [];
    const x = await sample(probe, { n: 2, steps: 4, solver: "heun", onProgress: () => between.push(fd.isGradEnabled()) });
    x.dispose();
    expect(modes.length).toBe(7);
    expect(modes.every((m) => !m)).toBe(true);
    expect(between).toEqual([true, true, true, true]);
    expect(fd.isGradEnabled()).toBe(true);
  });
});

// ---------------------------------------------------------------------------------------------------
// Seeds and initial noise

describe("seeds, noise and schedules", () => {
  const run = async (opts: Partial<SampleOptions>, solver: SolverName = "euler-ancestral"): Promise<Float32Array> => {
    const x = await sample(new GaussianDenoiser(MU, S), { n: 32, steps: 10, solver, schedule: "karras", ...opts });
    const v = x.dataSync();
    x.dispose();
    return v;
  };
  test("a seed reproduces a stochastic run bit for bit; other seeds differ; noise + seed = seed", async () => {
    for (const solver of ["euler-ancestral", "heun"] as const) {
      const extra = solver === "heun" ? { sChurn: 20 } : {};
      const a = await run({ seed: 7, ...extra }, solver);
      expect(maxAbsDiff(await run({ seed: 7, ...extra }, solver), a)).toBe(0);
      expect(maxAbsDiff(await run({ seed: 8, ...extra }, solver), a)).toBeGreaterThan(0.1);
      expect(maxAbsDiff(await run({ generator: new fd.Generator(7), ...extra }, solver), a)).toBe(0);
      const noise = fd.randn([32, 2], { seed: 7 });
      expect(maxAbsDiff(await run({ noise, seed: 7, ...extra }, solver), a)).toBe(0);
      noise.dispose();
    }
    // no seed: the default generator (manualSeed)
    fd.manualSeed(99);
    const d1 = await run({});
    fd.manualSeed(99);
    expect(maxAbsDiff(await run({}), d1)).toBe(0);
  });

  test("x̂_0 = initialNoiseScale(σ_0)·n; the result is the last step's D when the schedule ends in 0", async () => {
    class Scaled extends GaussianDenoiser {
      firstInput: Float32Array | null = null;
      lastOut: Float32Array | null = null;
      override denoise(x: fd.Tensor, s: SigmaInput, o?: DenoiseOptions): fd.Tensor {
        this.firstInput ??= x.dataSync();
        const d = super.denoise(x, s, o);
        this.lastOut = d.dataSync();
        return d;
      }
      override initialNoiseScale(sigma0: number): number {
        return Math.sqrt(1 + sigma0 * sigma0);
      }
    }
    const den = new Scaled(MU, S);
    const noise = fd.randn([5, 2], { seed: 1 });
    const x = await sample(den, { noise, steps: 6, solver: "dpmpp2m", schedule: [20, 5, 2, 1, 0.3, 0.05, 0] });
    const n = noise.dataSync();
    expect(maxAbsDiff(den.firstInput!, Array.from(n, (v) => v * Math.sqrt(401)))).toBeLessThan(1e-5);
    expect(maxAbsDiff(x.dataSync(), den.lastOut!)).toBe(0);
    expect(noise.isDisposed).toBe(false); // the caller's noise is not consumed
    x.dispose();
    noise.dispose();
  });

  test("schedule sources: denoiser default, \"karras\" with options, σ array, Schedule, namedSchedule", async () => {
    class Own extends GaussianDenoiser {
      override schedule(steps: number): Schedule {
        return { sigmas: [...Array.from({ length: steps }, (_, i) => 10 / (i + 1)), 0] };
      }
      namedSchedule(name: string, steps: number): Schedule | undefined {
        return name === "half" ? { sigmas: [...Array.from({ length: steps }, (_, i) => 8 / 2 ** i), 0] } : undefined;
      }
    }
    const den = new Own(MU, S);
    const sigmasOf = async (opts: Partial<SampleOptions>): Promise<number[]> => {
      const r = await sampleWithStats(den, { n: 2, solver: "euler", seed: 1, ...opts });
      r.samples.dispose();
      return r.sigmas;
    };
    expect(await sigmasOf({ steps: 3 })).toEqual([10, 5, 10 / 3, 0]);
    expect(await sigmasOf({ steps: 3, schedule: "default" })).toEqual([10, 5, 10 / 3, 0]);
    expect(await sigmasOf({ steps: 4, schedule: "karras", karras: { sigmaMax: 3, sigmaMin: 0.1, rho: 3 } })).toEqual(
      karrasSigmas(4, { sigmaMax: 3, sigmaMin: 0.1, rho: 3 }),
    );
    expect(await sigmasOf({ schedule: [3, 1, 0.5] })).toEqual([3, 1, 0.5]);
    expect(await sigmasOf({ schedule: { sigmas: [3, 1, 0] }, steps: 2 })).toEqual([3, 1, 0]);
    expect(await sigmasOf({ steps: 3, schedule: "half" })).toEqual([8, 4, 2, 0]);
    den.sigmasSeen = [];
    await sigmasOf({ schedule: [3, 1, 0.5] });
    expect(den.sigmasSeen).toEqual([3, 1]);
  });

  test("classLabels and guidance reach the denoiser", async () => {
    const den = new GaussianDenoiser(MU, S, 3);
    const x = await sample(den, { n: 3, steps: 2, solver: "euler", classLabels: [0, 2, 1], guidance: 1.5 });
    x.dispose();
    expect(den.lastOptions).toEqual({ classLabels: [0, 2, 1], guidance: 1.5 });
  });
});

// ---------------------------------------------------------------------------------------------------
// Validation

describe("options are validated before any work", () => {
  const den = new GaussianDenoiser(MU, S, 2);
  const base: SampleOptions = { n: 2, steps: 4, solver: "euler" };
  const cases: [string, Partial<SampleOptions> | Record<string, unknown>, string][] = [
    ["unknown solver", { solver: "rk45" }, "ERR_ARGUMENT"],
    ["missing solver", { solver: undefined }, "ERR_ARGUMENT"],
    ["steps 0", { steps: 0 }, "ERR_ARGUMENT"],
    ["fractional steps", { steps: 2.5 }, "ERR_ARGUMENT"],
    ["no steps for the default schedule", { steps: undefined }, "ERR_ARGUMENT"],
    ["unknown schedule name", { schedule: "cosine-ish" }, "ERR_ARGUMENT"],
    ["increasing sigmas", { steps: undefined, schedule: [1, 2, 0] }, "ERR_ARGUMENT"],
    ["negative sigma", { steps: undefined, schedule: [1, -0.5] }, "ERR_ARGUMENT"],
    ["a single sigma", { steps: undefined, schedule: [1] }, "ERR_ARGUMENT"],
    ["steps not matching the array", { steps: 3, schedule: [2, 1, 0] }, "ERR_ARGUMENT"],
    ["karras options with another schedule", { karras: { rho: 3 } }, "ERR_ARGUMENT"],
    ["bad karras option", { schedule: "karras", karras: { sigmaMin: -1 } }, "ERR_ARGUMENT"],
    ["eta with heun", { solver: "heun", eta: 0.5 }, "ERR_ARGUMENT"],
    ["ddim eta > 1", { solver: "ddim", eta: 1.5 }, "ERR_ARGUMENT"],
    ["clipDenoised with euler", { clipDenoised: 1 }, "ERR_ARGUMENT"],
    ["churn with dpmpp2m", { solver: "dpmpp2m", sChurn: 10 }, "ERR_ARGUMENT"],
    ["sMax < sMin", { solver: "heun", sChurn: 10, sMin: 2, sMax: 1 }, "ERR_ARGUMENT"],
    ["n = 0", { n: 0 }, "ERR_ARGUMENT"],
    ["negative seed", { seed: -1 }, "ERR_ARGUMENT"],
    ["seed and generator", { seed: 1, generator: new fd.Generator(1) }, "ERR_ARGUMENT"],
    ["classLabels of the wrong length", { classLabels: [0] }, "ERR_ARGUMENT"],
    ["classLabels out of range", { classLabels: [0, 2] }, "ERR_ARGUMENT"],
    ["non-finite guidance", { guidance: NaN }, "ERR_ARGUMENT"],
    ["a misspelt option", { step: 4 }, "ERR_ARGUMENT"],
    ["onProgress not a function", { onProgress: 3 }, "ERR_ARGUMENT"],
  ];
  test.each(cases)("%s", async (_label, extra, code) => {
    den.calls = 0;
    expect(await codeOf(sample(den, { ...base, ...extra } as SampleOptions))).toBe(code);
    expect(den.calls).toBe(0);
  });

  test("noise of the wrong shape (ERR_SHAPE), classLabels on an unconditional denoiser", async () => {
    const noise = fd.zeros([2, 3]);
    expect(await codeOf(sample(den, { steps: 2, solver: "euler", noise }))).toBe("ERR_SHAPE");
    const ok = fd.zeros([2, 2]);
    expect(await codeOf(sample(den, { n: 3, steps: 2, solver: "euler", noise: ok }))).toBe("ERR_SHAPE");
    expect(await codeOf(sample(new GaussianDenoiser(MU, S), { n: 1, steps: 2, solver: "euler", classLabels: [0] }))).toBe("ERR_ARGUMENT");
    noise.dispose();
    ok.dispose();
  });

  test("validation errors are FastdiffErrors whose message names sample and the option", async () => {
    await expect(sample(den, { ...base, steps: 0 })).rejects.toThrow(/^sample: steps must be a positive integer/);
    await expect(sample(den, { ...base, solver: "rk45" as SolverName })).rejects.toThrow(/unknown solver "rk45"/);
    await expect(sample(den, { ...base, steps: undefined, schedule: [1, 2] })).rejects.toThrow(/strictly decreasing/);
  });
});
