// Closed forms of the σ-space conversions and schedules.
import * as fd from "../../lib";
import {
  karrasSigmas, flowShift, flowMatchSchedule, cosineLogSnr, sigmaFromLogSnr, logSnrFromSigma, cosineLogSnrSchedule,
  discreteTimesteps, sigmaFromAlphaCumprod, alphaCumprodFromSigma, betaTable, sigmaFromFlowT, flowTFromSigma,
} from "../../lib/sampling/schedules";
import {
  edmPrecond, vpPrecond, epsToX0, x0ToEps, x0EpsToV, vToX0, vToEps, x0ToV, flowToX0, flowToEps, x0ToFlow,
  predictionToX0, x0ToPrediction, vpAlpha, vpSigma, eulerStep, ddimStep, precondition, type Prediction,
} from "../../lib/sampling/parameterization";

const maxDiff = (a: fd.Tensor, b: fd.Tensor): number => fd.max(fd.abs(fd.sub(a, b))).item();

describe("prediction conversions invert each other", () => {
  const shape = [2, 3, 4, 4];
  for (const sigma of [0.05, 0.7, 3]) {
    test(`tensors at σ = ${sigma}`, () => {
      fd.scope(() => {
        const x0 = fd.randn(shape, { seed: 11 });
        const n = fd.randn(shape, { seed: 12 });
        const xhat = fd.add(x0, fd.mul(n, sigma)); // x̂ = x0 + σ·n
        const tol = 1e-6 * Math.max(1, sigma);
        // ε ↔ x0
        expect(maxDiff(epsToX0(xhat, n, sigma), x0)).toBeLessThan(tol);
        expect(maxDiff(x0ToEps(xhat, x0, sigma), n)).toBeLessThan(tol / sigma + 1e-6);
        // v = α·ε − σ_vp·x0 and back
        const v = x0EpsToV(x0, n, sigma);
        expect(maxDiff(x0ToV(xhat, x0, sigma), v)).toBeLessThan(tol / sigma + 1e-6);
        expect(maxDiff(vToX0(xhat, v, sigma), x0)).toBeLessThan(tol);
        expect(maxDiff(vToEps(xhat, v, sigma), n)).toBeLessThan(tol);
        // flow velocity u = n − x0 and back
        const u = fd.sub(n, x0);
        expect(maxDiff(x0ToFlow(xhat, x0, sigma), u)).toBeLessThan(tol / sigma + 1e-6);
        expect(maxDiff(flowToX0(xhat, u, sigma), x0)).toBeLessThan(tol);
        expect(maxDiff(flowToEps(xhat, u, sigma), n)).toBeLessThan(tol);
        // generic round trip through every prediction
        for (const kind of ["x0", "epsilon", "v", "flow"] as Prediction[]) {
          const p = x0ToPrediction(kind, xhat, x0, sigma);
          expect(maxDiff(predictionToX0(kind, xhat, p, sigma), x0)).toBeLessThan(tol);
        }
      });
    });
  }

  test("numbers (float64) round trip to 1e-12", () => {
    for (const sigma of [1e-3, 0.5, 2, 80]) {
      const x0 = 0.3;
      const n = -1.7;
      const xhat = x0 + sigma * n;
      for (const kind of ["x0", "epsilon", "v", "flow"] as Prediction[]) {
        expect(predictionToX0(kind, xhat, x0ToPrediction(kind, xhat, x0, sigma) as number, sigma)).toBeCloseTo(x0, 9);
      }
      expect(x0EpsToV(x0, n, sigma)).toBeCloseTo(vpAlpha(sigma) * n - vpSigma(sigma) * x0, 12);
      expect(vpAlpha(sigma) ** 2 + vpSigma(sigma) ** 2).toBeCloseTo(1, 14);
      expect(flowToEps(xhat, n - x0, sigma)).toBeCloseTo(n, 9);
    }
  });

  test("Euler and DDIM (η = 0) steps coincide when ε = (x̂ − x0)/σ", () => {
    const sigma = 2;
    const next = 0.5;
    const x0 = 0.4;
    const xhat = 1.9;
    expect(eulerStep(xhat, x0, sigma, next)).toBeCloseTo(ddimStep(x0, x0ToEps(xhat, x0, sigma), next), 14);
    expect(eulerStep(xhat, x0, sigma, 0)).toBeCloseTo(x0, 14);
  });
});

describe("preconditioning", () => {
  test("EDM coefficients (Table 1) at σ = σ_d and σ = 1", () => {
    const a = edmPrecond(0.5);
    expect(a.cSkip).toBeCloseTo(0.5, 14);
    expect(a.cOut).toBeCloseTo(0.25 / Math.sqrt(0.5), 14);
    expect(a.cIn).toBeCloseTo(1 / Math.sqrt(0.5), 14);
    expect(a.cNoise).toBeCloseTo(Math.log(0.5) / 4, 14);
    const b = edmPrecond(1);
    expect(b.cSkip).toBeCloseTo(0.2, 14);
    expect(b.cOut).toBeCloseTo(0.5 / Math.sqrt(1.25), 14);
    expect(b.cIn).toBeCloseTo(1 / Math.sqrt(1.25), 14);
    expect(b.cNoise).toBe(0);
    // c_skip² σ²-weighted identity: c_skip + c_out²/σ_d² = 1
    for (const s of [0.01, 0.3, 7, 80]) {
      const c = edmPrecond(s);
      expect(c.cSkip + (c.cOut / 0.5) ** 2).toBeCloseTo(1, 12);
    }
  });
  test("VP precond matches ε → x0 and a zero network gives D = x̂ (EDM) scaled by c_skip", () => {
    const c = vpPrecond(2);
    expect(c.cSkip).toBe(1);
    expect(c.cOut).toBe(-2);
    expect(c.cIn).toBeCloseTo(1 / Math.sqrt(5), 14);
    expect(vpPrecond(1e-9).cNoise).toBeCloseTo(0, 3);
    fd.scope(() => {
      const x = fd.randn([1, 2, 3, 3], { seed: 5 });
      const e = fd.randn([1, 2, 3, 3], { seed: 6 });
      const d = precondition(() => e.clone(), x, c);
      expect(maxDiff(d, epsToX0(x, e, 2))).toBeLessThan(1e-6);
      const p = edmPrecond(3);
      const z = precondition((inp) => fd.zerosLike(inp), x, p);
      expect(maxDiff(z, fd.mul(x, p.cSkip))).toBeLessThan(1e-7);
    });
  });
});

describe("schedules", () => {
  test("Karras endpoints, final 0, ρ = 1 is linear", () => {
    const s = karrasSigmas(18, { sigmaMin: 0.002, sigmaMax: 80, rho: 7 });
    expect(s.length).toBe(19);
    expect(s[0]).toBeCloseTo(80, 10);
    expect(s[17]).toBeCloseTo(0.002, 14);
    expect(s[18]).toBe(0);
    for (let i = 1; i < 18; ++i) expect(s[i]!).toBeLessThan(s[i - 1]!);
    const lin = karrasSigmas(5, { sigmaMin: 1, sigmaMax: 5, rho: 1 });
    [5, 4, 3, 2, 1, 0].forEach((v, i) => expect(lin[i]).toBeCloseTo(v, 12));
  });
  test("flow shift: k = 1 identity, endpoints fixed, σ ↔ t", () => {
    for (const t of [0, 0.1, 0.5, 0.93, 1]) expect(flowShift(t, 1)).toBeCloseTo(t, 15);
    expect(flowShift(0, 3)).toBe(0);
    expect(flowShift(1, 3)).toBeCloseTo(1, 15);
    expect(flowShift(0.5, 3)).toBeCloseTo(0.75, 15);
    expect(flowTFromSigma(sigmaFromFlowT(0.3))).toBeCloseTo(0.3, 15);
    const f = flowMatchSchedule(4, { shift: 3 });
    expect(f.t.length).toBe(5);
    expect(f.t[0]).toBeCloseTo(1, 15);
    expect(f.t[4]).toBe(0);
    expect(f.sigmas[4]).toBe(0);
  });
  test("cosine logSNR endpoints and σ = e^{−λ/2}", () => {
    expect(cosineLogSnr(0)).toBeCloseTo(20, 8);
    expect(cosineLogSnr(1)).toBeCloseTo(-20, 8);
    expect(logSnrFromSigma(sigmaFromLogSnr(3.1))).toBeCloseTo(3.1, 12);
    const s = cosineLogSnrSchedule(8);
    expect(s.sigmas[0]).toBeCloseTo(Math.exp(10), 4);
    expect(s.sigmas[8]).toBe(0);
  });
  test("discrete spacings and σ ↔ ᾱ", () => {
    expect(discreteTimesteps(10, { spacing: "leading", stepsOffset: 1 })).toEqual([901, 801, 701, 601, 501, 401, 301, 201, 101, 1]);
    expect(discreteTimesteps(10, { spacing: "trailing" })).toEqual([999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
    expect(discreteTimesteps(4, { spacing: "linspace" })).toEqual([999, 666, 333, 0]);
    expect(alphaCumprodFromSigma(sigmaFromAlphaCumprod(0.37))).toBeCloseTo(0.37, 14);
    const cos = betaTable({ betaSchedule: "squaredcos_cap_v2" });
    expect(cos[999]).toBeCloseTo(0.999, 6);
    const sl = betaTable({ betaSchedule: "scaled_linear", betaStart: 0.00085, betaEnd: 0.012 });
    expect(sl[0]).toBeCloseTo(0.00085, 9);
    expect(sl[999]).toBeCloseTo(0.012, 8);
  });
});
