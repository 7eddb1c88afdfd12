// Solver step functions: teacher-forced against the diffusers golden trajectories, the DDIM η algebra, and
// convergence orders on an exact Gaussian denoiser.
import * as path from "node:path";
import * as fd from "../../lib";
import { goldenTensors, goldenValues, maxAbsDiff, worstRatio } from "../helpers";
const load = (name: string) => goldenTensors(path.join("schedulers", name, "trajectory.safetensors"));
import { ddimSchedule, eulerDiscreteSchedule, karrasSigmas } from "../../lib/sampling/schedules";
import { vpAlpha, vpToXhat, xhatToVp } from "../../lib/sampling/parameterization";
import {
  ancestralSigmas, churnGamma, createSolver, ddimCoefficients, stepDdim, stepDpmpp2m, stepEuler, stepEulerAncestral,
  stepHeun, type DenoiseFn, type Dpmpp2mState,
} from "../../lib/sampling/solvers";
import { GaussianDenoiser } from "./denoisers";


const SHAPE = [1, 4, 8, 8];
const P = 4 * 8 * 8;
const row = (d: Float64Array, i: number): Float64Array => d.subarray(i * P, (i + 1) * P);
const t32 = (v: ArrayLike<number>): fd.Tensor => fd.tensor(Float32Array.from(v), SHAPE);

// ---------------------------------------------------------------------------------------------------
// Teacher forcing: each step starts from the recorded latent and its D returns the recorded model output as
// x0 = x̂ − σ·ε; the step's x0 (via onDenoised) and next latent must match diffusers'.

describe.each(["ddim_10", "ddim_50"] as const)("teacher-forced stepDdim (η = 0, clip_sample) on %s", (name) => {
  test("model input, pred_original_sample and prev_sample to atol 1e-5", () => {
    const g = load(name);
    if (!g) return;
    const n = goldenValues(g, "timesteps").length;
    const s = ddimSchedule(n);
    const init = goldenValues(g, "latents_initial");
    const input = goldenValues(g, "model_input");
    const eps = goldenValues(g, "model_output");
    const x0Ref = goldenValues(g, "pred_original_sample");
    const prevRef = goldenValues(g, "prev_sample");
    const w = { input: 0, x0: 0, prev: 0 };
    const before = fd.memory().liveTensors;
    for (let i = 0; i < n; ++i) {
      const sigma = s.sigmas[i]!;
      const sigmaNext = s.sigmas[i + 1]!;
      expect(sigmaNext).toBe(s.prevSigmas[i]);
      fd.scope(() => {
        const xt = t32(i === 0 ? init : row(prevRef, i - 1)); // diffusers' latent x_t
        const xhat = vpToXhat(xt, sigma); // x̂ = x_t·√(1 + σ²)
        let seen = 0;
        const D: DenoiseFn = (x, sg) => {
          expect(sg).toBe(sigma);
          seen += 1;
          // the network input x_t = x̂/√(1 + σ²)
          w.input = Math.max(w.input, worstRatio(fd.mul(x, vpAlpha(sg)).dataSync(), row(input, i), 1e-6, 1e-6));
          return fd.sub(x, fd.mul(t32(row(eps, i)), sg)); // x0 = x̂ − σ·ε
        };
        let x0: Float32Array | null = null;
        const next = stepDdim(xhat, sigma, sigmaNext, D, { eta: 0, clipDenoised: 1, onDenoised: (d) => (x0 = d.dataSync()) });
        expect(seen).toBe(1);
        w.x0 = Math.max(w.x0, worstRatio(x0!, row(x0Ref, i), 1e-5));
        w.prev = Math.max(w.prev, worstRatio(xhatToVp(next, sigmaNext).dataSync(), row(prevRef, i), 1e-5));
      });
    }
    expect(fd.memory().liveTensors).toBe(before);
    if (process.env.FASTDIFF_VERBOSE) console.log(name, w);
    expect(w.input).toBeLessThanOrEqual(1);
    expect(w.x0).toBeLessThanOrEqual(1);
    expect(w.prev).toBeLessThanOrEqual(1);
  });
});

describe("teacher-forced stepEuler on euler_25", () => {
  test("model input, pred_original_sample and prev_sample (atol 1e-5 on the unit scale)", () => {
    const g = load("euler_25");
    if (!g) return;
    const n = goldenValues(g, "timesteps").length;
    const s = eulerDiscreteSchedule(n);
    const init = goldenValues(g, "latents_initial");
    const input = goldenValues(g, "model_input");
    const eps = goldenValues(g, "model_output");
    const x0Ref = goldenValues(g, "pred_original_sample");
    const prevRef = goldenValues(g, "prev_sample");
    const w = { input: 0, x0: 0, prev: 0 };
    for (let i = 0; i < n; ++i) {
      const sigma = s.sigmas[i]!;
      const sigmaNext = s.sigmas[i + 1]!;
      // Euler's latents are x̂ itself (|x̂| up to ≈ 3σ); its float32 values carry ≈ σ·1e-7 of rounding.
      const atol = 1e-5 * Math.max(1, sigma);
      fd.scope(() => {
        const xhat = t32(i === 0 ? init : row(prevRef, i - 1));
        const D: DenoiseFn = (x, sg) => {
          w.input = Math.max(w.input, worstRatio(fd.mul(x, vpAlpha(sg)).dataSync(), row(input, i), 1e-5, 1e-6));
          return fd.sub(x, fd.mul(t32(row(eps, i)), sg));
        };
        let x0: Float32Array | null = null;
        const next = stepEuler(xhat, sigma, sigmaNext, D, { onDenoised: (d) => (x0 = d.dataSync()) });
        w.x0 = Math.max(w.x0, worstRatio(x0!, row(x0Ref, i), atol, 1e-6));
        w.prev = Math.max(w.prev, worstRatio(next.dataSync(), row(prevRef, i), atol, 1e-6));
      });
    }
    if (process.env.FASTDIFF_VERBOSE) console.log("euler_25", w);
    expect(w.input).toBeLessThanOrEqual(1);
    expect(w.x0).toBeLessThanOrEqual(1);
    expect(w.prev).toBeLessThanOrEqual(1);
  });
});

// ---------------------------------------------------------------------------------------------------
// DDIM η algebra

describe("DDIM with η", () => {
  test("σ-space coefficients equal Song et al. eq. 12/16 written in VP terms (float64)", () => {
    for (const [sigma, next] of [[80, 40], [2, 1.3], [0.5, 0.05], [3, 0]] as const) {
      for (const eta of [0, 0.3, 1]) {
        const ab = 1 / (1 + sigma ** 2);
        const abN = 1 / (1 + next ** 2);
        const st = eta * Math.sqrt((1 - abN) / (1 - ab)) * Math.sqrt(1 - ab / abN); // eq. 16
        // x_{t'} = √ᾱ'·x0 + √(1 − ᾱ' − σ_t²)·ε + σ_t·z, with x_t = √ᾱ·x̂, so x̂' = x_{t'}/√ᾱ'
        const x0 = 0.37;
        const epsV = -1.2;
        const z = 0.8;
        const xtNext = Math.sqrt(abN) * x0 + Math.sqrt(1 - abN - st * st) * epsV + st * z;
        const c = ddimCoefficients(sigma, next, eta);
        expect(x0 + c.direction * epsV + c.noise * z).toBeCloseTo(xtNext / Math.sqrt(abN), 10);
        // closed forms: noise = η·σ'·√(σ² − σ'²)/σ (the ancestral σ_up), direction = √(σ'² − noise²)
        expect(c.noise).toBeCloseTo((eta * next * Math.sqrt(sigma ** 2 - next ** 2)) / sigma, 10);
        expect(c.direction).toBeCloseTo(Math.sqrt(next ** 2 - c.noise ** 2), 10);
        if (eta === 0) expect(c.direction).toBeCloseTo(next, 12);
        if (eta === 1) {
          const a = ancestralSigmas(sigma, next, 1);
          expect(a.up).toBeCloseTo(c.noise, 10);
          expect(a.down).toBeCloseTo(c.direction, 10);
        }
      }
    }
  });

  test("coefficients stay exact at tiny σ' (no 1 − ᾱ cancellation)", () => {
    expect(ddimCoefficients(0.01, 1e-7, 0).direction / 1e-7).toBeCloseTo(1, 12);
    const c = ddimCoefficients(0.01, 1e-7, 1);
    const a = ancestralSigmas(0.01, 1e-7, 1);
    expect(c.noise / a.up).toBeCloseTo(1, 10);
  });

  test("η = 0 equals Euler; η = 1 (and 0.5) equal Euler ancestral with the same generator", () => {
    const den = new GaussianDenoiser([0.5, -1], 0.7);
    const D: DenoiseFn = (x, s) => den.denoise(x, s);
    fd.scope(() => {
      const x = fd.mul(fd.randn([256, 2], { seed: 1 }), 5);
      for (const [s, sn] of [[5, 3], [3, 0.4], [0.4, 0]] as const) {
        const e = stepEuler(x, s, sn, D).dataSync();
        expect(maxAbsDiff(stepDdim(x, s, sn, D, { eta: 0 }).dataSync(), e)).toBeLessThanOrEqual(2e-6 * Math.max(1, s));
        for (const eta of [1, 0.5]) {
          const a = stepEulerAncestral(x, s, sn, D, { eta, generator: new fd.Generator(9) }).dataSync();
          const d = stepDdim(x, s, sn, D, { eta, generator: new fd.Generator(9) }).dataSync();
          expect(maxAbsDiff(a, d)).toBeLessThanOrEqual(2e-6 * Math.max(1, s));
          if (sn > 0) expect(maxAbsDiff(a, e)).toBeGreaterThan(1e-2); // the noise is really there
        }
      }
    });
  });

  test("clipDenoised clamps x0 but keeps ε = (x̂ − D)/σ (diffusers clip_sample)", () => {
    fd.scope(() => {
      const x = fd.tensor([[4, -0.5, 0.2]]);
      const D: DenoiseFn = () => fd.tensor([[3, -0.4, 0.1]]);
      const out = stepDdim(x, 2, 0.5, D, { clipDenoised: 1 }).dataSync();
      const ref = [1 + 0.5 * (4 - 3) / 2, -0.4 + (0.5 * (-0.5 + 0.4)) / 2, 0.1 + (0.5 * (0.2 - 0.1)) / 2];
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-6);
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// Heun, DPM-Solver++(2M) specifics

describe("step structure", () => {
  const den = new GaussianDenoiser([0.5, -1], 0.7);
  test("Heun: 2 evaluations, 1 on the step to σ = 0 (then equal to Euler); γ = 0 churn is a no-op", () => {
    fd.scope(() => {
      const x = fd.mul(fd.randn([64, 2], { seed: 2 }), 3);
      const sigmas: number[] = [];
      const D: DenoiseFn = (xx, s) => {
        sigmas.push(s);
        return den.denoise(xx, s);
      };
      stepHeun(x, 3, 1, D);
      expect(sigmas).toEqual([3, 1]);
      sigmas.length = 0;
      const h0 = stepHeun(x, 0.5, 0, D).dataSync();
      expect(sigmas).toEqual([0.5]);
      expect(maxAbsDiff(h0, stepEuler(x, 0.5, 0, D).dataSync())).toBeLessThan(1e-6);
      const g = new fd.Generator(4);
      const a = stepHeun(x, 3, 1, D, { gamma: 0, generator: g }).dataSync();
      expect(g.offset).toBe(0n); // no draw
      expect(maxAbsDiff(a, stepHeun(x, 3, 1, D).dataSync())).toBe(0);
    });
  });

  test("Heun churn (EDM Alg. 2): evaluates at σ̂ = σ(1 + γ), draws √(σ̂² − σ²)·S_noise·z, reproducibly", () => {
    expect(churnGamma(10, 20, { sChurn: 40, sMin: 0.05, sMax: 50 })).toBeCloseTo(Math.SQRT2 - 1, 15);
    expect(churnGamma(10, 256, { sChurn: 40, sMin: 0.05, sMax: 50 })).toBeCloseTo(40 / 256, 15);
    expect(churnGamma(60, 256, { sChurn: 40, sMin: 0.05, sMax: 50 })).toBe(0);
    expect(churnGamma(0.01, 256, { sChurn: 40, sMin: 0.05, sMax: 50 })).toBe(0);
    fd.scope(() => {
      const x = fd.mul(fd.randn([64, 2], { seed: 3 }), 3);
      const seen: number[] = [];
      const inputs: Float32Array[] = [];
      const D: DenoiseFn = (xx, s) => {
        seen.push(s);
        inputs.push(xx.dataSync());
        return den.denoise(xx, s);
      };
      const gamma = 0.25;
      const g = new fd.Generator(11);
      const a = stepHeun(x, 3, 1, D, { gamma, sNoise: 1.003, generator: g }).dataSync();
      expect(seen[0]).toBeCloseTo(3.75, 14);
      expect(g.offset).toBe(BigInt(Math.ceil(128 / 4)));
      // the churned input is x + √(σ̂² − σ²)·S_noise·z with z the generator's first draw
      const z = fd.randn([64, 2], { generator: new fd.Generator(11) }).dataSync();
      const std = Math.sqrt(3.75 ** 2 - 9) * 1.003;
      const xs = x.dataSync();
      expect(maxAbsDiff(inputs[0]!, Array.from(xs, (v, k) => v + std * z[k]!))).toBeLessThan(1e-5);
      const b = stepHeun(x, 3, 1, D, { gamma, sNoise: 1.003, generator: new fd.Generator(11) }).dataSync();
      expect(maxAbsDiff(a, b)).toBe(0);
    });
  });

  test("DPM-Solver++(2M): first step and the step to σ = 0 are first order; then the 2M combination", () => {
    fd.scope(() => {
      const x = fd.mul(fd.randn([64, 2], { seed: 5 }), 3);
      const D: DenoiseFn = (xx, s) => den.denoise(xx, s);
      const first = stepDpmpp2m(x, 3, 1, D, null);
      expect(maxAbsDiff(first.x.dataSync(), stepEuler(x, 3, 1, D).dataSync())).toBeLessThan(1e-6);
      expect(first.state.sigma).toBe(3);
      const prev: Dpmpp2mState = { denoised: fd.tensor(new Float32Array(128).fill(0.25), [64, 2]), sigma: 4 };
      expect(maxAbsDiff(stepDpmpp2m(x, 3, 0, D, prev).x.dataSync(), den.denoise(x, 3).dataSync())).toBe(0);
      // host float64 2M step: λ = −ln σ, h = λ' − λ, r = (λ − λ_prev)/h,
      // x̂' = (σ'/σ)x̂ − (e^{−h} − 1)((1 + 1/2r)D − (1/2r)D_prev)
      const out = stepDpmpp2m(x, 3, 1, D, prev).x.dataSync();
      const d = den.denoise(x, 3).dataSync();
      const h = -Math.log(1) + Math.log(3);
      const r = (-Math.log(3) + Math.log(4)) / h;
      const xs = x.dataSync();
      const ref = Array.from(xs, (v, k) => (1 / 3) * v - Math.expm1(-h) * ((1 + 1 / (2 * r)) * d[k]! - (1 / (2 * r)) * 0.25));
      expect(maxAbsDiff(out, ref)).toBeLessThan(1e-5);
    });
  });

  test("createSolver's DPM-Solver++(2M) state survives the caller's scopes; steps leak no tensors", () => {
    const D: DenoiseFn = (xx, s) => den.denoise(xx, s);
    const sig = karrasSigmas(6);
    const run = (inScopes: boolean): Float32Array => {
      const solver = createSolver("dpmpp2m");
      let x = fd.scope(() => fd.mul(fd.randn([16, 2], { seed: 6 }), 80));
      for (let i = 0; i < 6; ++i) {
        const next = inScopes ? fd.scope(() => fd.keep(solver.step(x, sig[i]!, sig[i + 1]!, D))) : solver.step(x, sig[i]!, sig[i + 1]!, D);
        x.dispose();
        x = next;
      }
      solver.dispose();
      const v = x.dataSync();
      x.dispose();
      return v;
    };
    const before = fd.memory().liveTensors;
    const a = run(false);
    expect(fd.memory().liveTensors).toBe(before);
    const b = run(true);
    expect(fd.memory().liveTensors).toBe(before);
    expect(maxAbsDiff(a, b)).toBe(0);
  });

  test("arguments are checked (ERR_ARGUMENT)", () => {
    const D: DenoiseFn = (xx, s) => den.denoise(xx, s);
    fd.scope(() => {
      const x = fd.zeros([1, 2]);
      const code = (f: () => unknown): string | undefined => {
        try {
          f();
        } catch (e) {
          return (e as fd.FastdiffError).code;
        }
        return undefined;
      };
      expect(code(() => stepEuler(x, 1, 1, D))).toBe("ERR_ARGUMENT");
      expect(code(() => stepEuler(x, 0, 0, D))).toBe("ERR_ARGUMENT");
      expect(code(() => stepHeun(x, 1, 2, D))).toBe("ERR_ARGUMENT");
      expect(code(() => stepDdim(x, 1, 0.5, D, { eta: 1.5 }))).toBe("ERR_ARGUMENT");
      expect(code(() => stepDdim(x, 1, 0.5, D, { clipDenoised: 0 }))).toBe("ERR_ARGUMENT");
      expect(code(() => stepHeun(x, 1, 0.5, D, { gamma: -1 }))).toBe("ERR_ARGUMENT");
      expect(code(() => stepEulerAncestral(x, 1, 0.5, D, { eta: NaN }))).toBe("ERR_ARGUMENT");
      expect(code(() => stepDpmpp2m(x, 1, 0.5, D, { denoised: x, sigma: 0.5 }))).toBe("ERR_ARGUMENT");
      expect(code(() => createSolver("rk4" as never))).toBe("ERR_ARGUMENT");
      expect(code(() => createSolver("heun", { eta: 0.5 }))).toBe("ERR_ARGUMENT");
      expect(code(() => createSolver("dpmpp2m", { sChurn: 1, steps: 4 }))).toBe("ERR_ARGUMENT");
      expect(code(() => createSolver("heun", { sChurn: 1 }))).toBe("ERR_ARGUMENT"); // needs steps
    });
  });
});

// ---------------------------------------------------------------------------------------------------
// Convergence order on the exact Gaussian PF-ODE

describe("convergence order against the exact PF-ODE endpoint (N(μ, s²I), μ = (0.5, −1), s = 0.7)", () => {
  const den = new GaussianDenoiser([0.5, -1], 0.7);
  const D: DenoiseFn = (x, s) => den.denoise(x, s);
  /** max |x̂_N − x(σ_end)| / max |x(σ_end) − μ| over 64 two-dimensional samples from x̂_0 = μ + σ_0·n. */
  function error(solver: "euler" | "heun" | "dpmpp2m", sigmas: number[]): number {
    return fd.scope(() => {
      const x0 = fd.add(fd.mul(fd.randn([64, 2], { seed: 21 }), sigmas[0]!), fd.tensor([0.5, -1]));
      const start = x0.dataSync();
      const stepper = createSolver(solver);
      let x = x0;
      for (let i = 0; i + 1 < sigmas.length; ++i) x = stepper.step(x, sigmas[i]!, sigmas[i + 1]!, D);
      stepper.dispose();
      const exact = den.exactFlow(start, sigmas[0]!, sigmas[sigmas.length - 1]!);
      const spread = maxAbsDiff(exact, Array.from(exact, (_, k) => (k % 2 === 0 ? 0.5 : -1)));
      return maxAbsDiff(x.dataSync(), exact) / spread;
    });
  }
  // Karras ρ = 7 grids from σ = 80 to 0.002, ending in 0 (the usual case: x(0) is the target; the last step
  // is first order for every solver, but from σ = 0.002 its error is O(σ_min²/s²) ≈ 1e-5, far below the
  // relative discretization errors here, ≥ 4e-4) or at σ_min itself.
  // Expected orders: Euler p = 1 (doubling N halves the error), Heun and DPM-Solver++(2M) p = 2 (quarters it).
  // Measured in float64 for this problem: Euler 1.98 / 1.99, Heun 4.21 / 4.10, DPM++2M 4.35 / 4.16 for
  // N = 40→80 / 80→160. Tolerances: Euler ratio in [1.8, 2.2] (p ∈ [0.85, 1.14]); second order in [3.6, 4.8]
  // (p ∈ [1.85, 2.26]); the float32 noise floor (≈ 1e-6) is 400× below the smallest error.
  for (const end of ["zero", "sigmaMin"] as const) {
    const grid = (n: number): number[] => (end === "zero" ? karrasSigmas(n) : karrasSigmas(n).slice(0, -1));
    for (const [solver, lo, hi] of [["euler", 1.8, 2.2], ["heun", 3.6, 4.8], ["dpmpp2m", 3.6, 4.8]] as const) {
      test(`${solver}, grid ending at ${end === "zero" ? "0" : "σ_min"}: error ratio for N → 2N in [${lo}, ${hi}]`, () => {
        const e = [40, 80, 160].map((n) => error(solver, grid(n)));
        expect(e[2]!).toBeGreaterThan(1e-4); // far above float32 rounding (≈ 1e-6 relative)
        for (let k = 0; k < 2; ++k) {
          const ratio = e[k]! / e[k + 1]!;
          expect(ratio).toBeGreaterThanOrEqual(lo);
          expect(ratio).toBeLessThanOrEqual(hi);
        }
        // and the relative error itself is small at N = 160 (float64: Euler 1.7e-2, Heun 5.1e-4, DPM++2M 5.2e-4)
        expect(e[2]!).toBeLessThan(solver === "euler" ? 2e-2 : 1e-3);
        if (process.env.FASTDIFF_VERBOSE) console.log(solver, end, e);
      });
    }
  }
});
