// Schedules and σ-space conversions against the diffusers golden trajectories (golden/README.md "Schedulers").
import * as fs from "node:fs";
import * as path from "node:path";
import * as fd from "../../lib";
import { goldenFile, goldenTensors, goldenValues, worstRatio } from "../helpers";

const load = (name: string) => goldenTensors(path.join("schedulers", name, "trajectory.safetensors"));
import {
  ddpmTables, ddimSchedule, eulerDiscreteSchedule, sigmaFromAlphaCumprod,
} from "../../lib/sampling/schedules";
import { epsToX0, ddimStep, xhatToVp, vpToXhat } from "../../lib/sampling/parameterization";


const cases = ["ddim_10", "ddim_50", "euler_25"] as const;

describe.each(cases)("tables %s", (name) => {
  test("betas, alphas_cumprod, timesteps (and Euler sigmas) to rtol 1e-6", () => {
    const g = load(name);
    if (!g) return;
    const cfg = JSON.parse(fs.readFileSync(goldenFile(path.join("schedulers", name, "scheduler_config.json"))!, "utf8"));
    const opts = {
      numTrainTimesteps: cfg.num_train_timesteps, betaStart: cfg.beta_start, betaEnd: cfg.beta_end,
      betaSchedule: cfg.beta_schedule, spacing: cfg.timestep_spacing, stepsOffset: cfg.steps_offset,
    };
    const t = ddpmTables(opts);
    expect(worstRatio(t.betas, goldenValues(g, "betas"), 0, 1e-6)).toBeLessThanOrEqual(1);
    expect(worstRatio(t.betas, goldenValues(g, "betas"), 1e-300, 0)).toBe(0); // bit-exact float32 in fact
    expect(worstRatio(t.alphasCumprod, goldenValues(g, "alphas_cumprod"), 0, 1e-6)).toBeLessThanOrEqual(1);
    expect(worstRatio(t.alphasCumprod, goldenValues(g, "alphas_cumprod"), 1e-300, 0)).toBe(0);
    const n = goldenValues(g, "timesteps").length;
    if (name.startsWith("ddim")) {
      const s = ddimSchedule(n, opts);
      expect(s.timesteps).toEqual(Array.from(goldenValues(g, "timesteps")));
      expect(s.sigmas[n]).toBe(0);
    } else {
      const s = eulerDiscreteSchedule(n, opts);
      expect(worstRatio(s.timesteps, goldenValues(g, "timesteps"), 1e-9, 1e-6)).toBeLessThanOrEqual(1);
      expect(s.sigmas.length).toBe(n + 1);
      expect(s.sigmas[n]).toBe(0);
      expect(worstRatio(s.sigmas, goldenValues(g, "sigmas"), 1e-12, 1e-6)).toBeLessThanOrEqual(1);
    }
  });
});

const P = 4 * 8 * 8;
const row = (d: Float64Array, i: number): Float64Array => d.subarray(i * P, (i + 1) * P);

describe.each(["ddim_10", "ddim_50"] as const)("teacher-forced DDIM (η = 0) in σ-space: %s", (name) => {
  test("x0 and the next latent via x̂ = x_t/α, x0 = x̂ − σε, x̂' = x0 + σ'ε, x_{t'} = α'x̂'", () => {
    const g = load(name);
    if (!g) return;
    const n = goldenValues(g, "timesteps").length;
    const s = ddimSchedule(n);
    const ac = ddpmTables().alphasCumprod;
    const input = goldenValues(g, "model_input");
    const eps = goldenValues(g, "model_output");
    const x0Ref = goldenValues(g, "pred_original_sample");
    const prevRef = goldenValues(g, "prev_sample");
    let wx0 = 0;
    let wprev = 0;
    for (let i = 0; i < n; ++i) {
      const sigma = s.sigmas[i]!;
      const sigmaNext = s.prevSigmas[i]!;
      expect(sigma).toBeCloseTo(sigmaFromAlphaCumprod(ac[s.timesteps[i]!]!), 12);
      // float64 host path (numbers)
      const x0 = new Float64Array(P);
      const prev = new Float64Array(P);
      for (let k = 0; k < P; ++k) {
        const xhat = vpToXhat(row(input, i)[k]!, sigma);
        const e = row(eps, i)[k]!;
        const d = Math.min(1, Math.max(-1, epsToX0(xhat, e, sigma))); // clip_sample = true, range 1
        x0[k] = d;
        prev[k] = xhatToVp(ddimStep(d, e, sigmaNext), sigmaNext);
      }
      wx0 = Math.max(wx0, worstRatio(x0, row(x0Ref, i), 1e-5, 0));
      wprev = Math.max(wprev, worstRatio(prev, row(prevRef, i), 1e-5, 0));
      // float32 Tensor path (fd ops) agrees with the host path
      fd.scope(() => {
        const xt = fd.tensor(Float32Array.from(row(input, i)), [1, 4, 8, 8]);
        const e = fd.tensor(Float32Array.from(row(eps, i)), [1, 4, 8, 8]);
        const d = fd.clamp(epsToX0(vpToXhat(xt, sigma), e, sigma), -1, 1);
        const p = xhatToVp(ddimStep(d, e, sigmaNext), sigmaNext);
        expect(worstRatio(d.dataSync(), x0, 1e-4, 1e-5)).toBeLessThanOrEqual(1);
        expect(worstRatio(p.dataSync(), prev, 1e-5, 1e-5)).toBeLessThanOrEqual(1);
      });
    }
    expect(wx0).toBeLessThanOrEqual(1);
    expect(wprev).toBeLessThanOrEqual(1);
  });
});

// Teacher-forced Euler steps on euler_25: test/sampling/solvers.test.ts (stepEuler is eulerStep plus churn).
