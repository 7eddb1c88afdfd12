// σ-space parameterizations (METHODS.md §0): conversions between the x0, ε, v and flow-velocity
// predictions, the VP / flow latent scalings and the EDM preconditioning (Karras et al. 2022, Table 1).
//
// Everything is written on the EDM variable x̂ = x0 + σ·n ("xhat"). A family's latent is x_t = s(σ)·x̂:
//   VP (DDPM/DDIM, ᾱ = 1/(1+σ²)):  s = α = 1/√(1+σ²), σ_vp = √(1−ᾱ) = σ/√(1+σ²)   so x_t = α·x0 + σ_vp·n
//   flow (rectified flow):          s = 1 − t = 1/(1+σ), t = σ/(1+σ)              so x_t = (1−t)·x0 + t·n
//   EDM / VE:                       s = 1
// Functions take numbers or Tensors: all-number arguments give a number (float64), otherwise a Tensor
// (float32, fd ops). σ is always a number (one noise level per call).
import { Tensor } from "../tensor";
import * as ops from "../ops";
import { scope } from "../memory";

export type Value = number | Tensor;
export type Prediction = "x0" | "epsilon" | "v" | "flow";

type Out<A, B> = A extends number ? (B extends number ? number : Tensor) : Tensor;

/** a·x + b·y on numbers or tensors. */
function axpby<X extends Value, Y extends Value>(a: number, x: X, b: number, y: Y): Out<X, Y> {
  if (typeof x === "number" && typeof y === "number") return (a * x + b * y) as Out<X, Y>;
  return scope(() => {
    if (typeof x === "number") return ops.add(ops.mul(y as Tensor, b), a * x);
    if (typeof y === "number") return ops.add(ops.mul(x as Tensor, a), b * y);
    if (b === 0) return ops.mul(x as Tensor, a);
    if (a === 0) return ops.mul(y as Tensor, b);
    return ops.add(ops.mul(x as Tensor, a), ops.mul(y as Tensor, b));
  }) as Out<X, Y>;
}

function scale<X extends Value>(a: number, x: X): X {
  return (typeof x === "number" ? a * x : ops.mul(x as Tensor, a)) as X;
}

function checkSigma(fn: string, sigma: number, allowZero = false): void {
  if (!(Number.isFinite(sigma) && (allowZero ? sigma >= 0 : sigma > 0))) {
    throw new RangeError(`${fn}: sigma must be finite and ${allowZero ? ">= 0" : "> 0"}, got ${sigma}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Scalings (METHODS.md §0 "Mapping other families into σ-space")

/** VP signal scale α = √ᾱ = 1/√(1+σ²). */
export function vpAlpha(sigma: number): number {
  return 1 / Math.sqrt(1 + sigma * sigma);
}
/** VP noise scale σ_vp = √(1−ᾱ) = σ/√(1+σ²) (α² + σ_vp² = 1). */
export function vpSigma(sigma: number): number {
  return sigma / Math.sqrt(1 + sigma * sigma);
}
/** x_t = α·x̂ (VP latent from the EDM variable). */
export function xhatToVp<X extends Value>(xhat: X, sigma: number): X {
  return scale(vpAlpha(sigma), xhat);
}
/** x̂ = x_t/α = √(1+σ²)·x_t. */
export function vpToXhat<X extends Value>(xt: X, sigma: number): X {
  return scale(Math.sqrt(1 + sigma * sigma), xt);
}
/** Flow latent x_t = (1 − t)·x̂ = x̂/(1+σ). */
export function xhatToFlow<X extends Value>(xhat: X, sigma: number): X {
  return scale(1 / (1 + sigma), xhat);
}
/** x̂ = (1+σ)·x_t. */
export function flowToXhat<X extends Value>(xt: X, sigma: number): X {
  return scale(1 + sigma, xt);
}

// ---------------------------------------------------------------------------------------------------
// Prediction conversions (METHODS.md §0 "Prediction conversions"), rewritten on x̂.

/** ε-prediction → x0: x0 = (x_t − b·ε)/a, i.e. x0 = x̂ − σ·ε. */
export function epsToX0<X extends Value, E extends Value>(xhat: X, eps: E, sigma: number): Out<X, E> {
  return axpby(1, xhat, -sigma, eps);
}
/** x0 → ε: ε = (x_t − a·x0)/b, i.e. ε = (x̂ − x0)/σ. */
export function x0ToEps<X extends Value, D extends Value>(xhat: X, x0: D, sigma: number): Out<X, D> {
  checkSigma("x0ToEps", sigma);
  return axpby(1 / sigma, xhat, -1 / sigma, x0);
}
/** (x0, ε) → v (VP only): v = α·ε − σ_vp·x0. */
export function x0EpsToV<D extends Value, E extends Value>(x0: D, eps: E, sigma: number): Out<D, E> {
  return axpby(vpAlpha(sigma), eps, -vpSigma(sigma), x0) as unknown as Out<D, E>;
}
/** v → x0 (VP): x0 = α·x_t − σ_vp·v with x_t = α·x̂, i.e. x0 = α²·x̂ − σ_vp·v. */
export function vToX0<X extends Value, V extends Value>(xhat: X, vpred: V, sigma: number): Out<X, V> {
  const a = vpAlpha(sigma);
  return axpby(a * a, xhat, -vpSigma(sigma), vpred);
}
/** v → ε (VP): ε = σ_vp·x_t + α·v, i.e. ε = σ_vp·α·x̂ + α·v. */
export function vToEps<X extends Value, V extends Value>(xhat: X, vpred: V, sigma: number): Out<X, V> {
  const a = vpAlpha(sigma);
  return axpby(vpSigma(sigma) * a, xhat, a, vpred);
}
/** x0 → v (VP) given x̂: v = α·ε − σ_vp·x0 with ε = (x̂ − x0)/σ, i.e. v = (α/σ)·x̂ − (α/σ + σ_vp)·x0. */
export function x0ToV<X extends Value, D extends Value>(xhat: X, x0: D, sigma: number): Out<X, D> {
  checkSigma("x0ToV", sigma);
  const a = vpAlpha(sigma);
  return axpby(a / sigma, xhat, -(a / sigma + vpSigma(sigma)), x0);
}
/** Flow velocity → x0: x0 = x_t − t·u with x_t = x̂/(1+σ), t = σ/(1+σ), i.e. x0 = (x̂ − σ·u)/(1+σ). */
export function flowToX0<X extends Value, U extends Value>(xhat: X, u: U, sigma: number): Out<X, U> {
  return axpby(1 / (1 + sigma), xhat, -sigma / (1 + sigma), u);
}
/** Flow velocity → ε: ε = x_t + (1−t)·u, i.e. ε = (x̂ + u)/(1+σ). */
export function flowToEps<X extends Value, U extends Value>(xhat: X, u: U, sigma: number): Out<X, U> {
  return axpby(1 / (1 + sigma), xhat, 1 / (1 + sigma), u);
}
/** x0 → flow velocity: u = (x_t − x0)/t = n − x0 = (x̂ − x0)/σ − x0 = x̂/σ − (1+σ)/σ·x0. */
export function x0ToFlow<X extends Value, D extends Value>(xhat: X, x0: D, sigma: number): Out<X, D> {
  checkSigma("x0ToFlow", sigma);
  return axpby(1 / sigma, xhat, -(1 + sigma) / sigma, x0);
}

/** Any prediction → x0 (the EDM denoiser D(x̂; σ) of a native model; METHODS.md §0 "Any teacher as an EDM denoiser"). */
export function predictionToX0<X extends Value, P extends Value>(kind: Prediction, xhat: X, pred: P, sigma: number): Out<X, P> | P {
  switch (kind) {
    case "x0": return pred;
    case "epsilon": return epsToX0(xhat, pred, sigma);
    case "v": return vToX0(xhat, pred, sigma);
    case "flow": return flowToX0(xhat, pred, sigma);
    default: throw new RangeError(`predictionToX0: unknown prediction ${String(kind)}`);
  }
}
/** x0 → any prediction, given x̂ and σ. */
export function x0ToPrediction<X extends Value, D extends Value>(kind: Prediction, xhat: X, x0: D, sigma: number): Out<X, D> | D {
  switch (kind) {
    case "x0": return x0;
    case "epsilon": return x0ToEps(xhat, x0, sigma);
    case "v": return x0ToV(xhat, x0, sigma);
    case "flow": return x0ToFlow(xhat, x0, sigma);
    default: throw new RangeError(`x0ToPrediction: unknown prediction ${String(kind)}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Preconditioning (METHODS.md §0 table; EDM Table 1)

export interface Precond {
  cSkip: number;
  cOut: number;
  cIn: number;
  cNoise: number;
}

/** EDM: c_skip = σ_d²/(σ²+σ_d²), c_out = σ·σ_d/√(σ²+σ_d²), c_in = 1/√(σ²+σ_d²), c_noise = ln(σ)/4; σ_d = 0.5. */
export function edmPrecond(sigma: number, sigmaData = 0.5): Precond {
  checkSigma("edmPrecond", sigma);
  const d2 = sigma * sigma + sigmaData * sigmaData;
  return {
    cSkip: (sigmaData * sigmaData) / d2,
    cOut: (sigma * sigmaData) / Math.sqrt(d2),
    cIn: 1 / Math.sqrt(d2),
    cNoise: Math.log(sigma) / 4,
  };
}

/** VP: c_skip = 1, c_out = −σ, c_in = 1/√(σ²+1), c_noise = (M−1)·t(σ) with
 * t(σ) = (√(β_min² + 2β_d·ln(1+σ²)) − β_min)/β_d, M = 1000, β_d = 19.9, β_min = 0.1. */
export function vpPrecond(sigma: number, options: { betaD?: number; betaMin?: number; M?: number } = {}): Precond {
  const bd = options.betaD ?? 19.9;
  const bmin = options.betaMin ?? 0.1;
  const M = options.M ?? 1000;
  const t = (Math.sqrt(bmin * bmin + 2 * bd * Math.log(1 + sigma * sigma)) - bmin) / bd;
  return { cSkip: 1, cOut: -sigma, cIn: 1 / Math.sqrt(sigma * sigma + 1), cNoise: (M - 1) * t };
}

/** VE: c_skip = 1, c_out = σ, c_in = 1, c_noise = ln(σ/2). */
export function vePrecond(sigma: number): Precond {
  return { cSkip: 1, cOut: sigma, cIn: 1, cNoise: Math.log(sigma / 2) };
}

/** D(x̂; σ) = c_skip·x̂ + c_out·F(c_in·x̂, c_noise) for a raw network F. */
export function precondition(F: (input: Tensor, cNoise: number) => Tensor, xhat: Tensor, c: Precond): Tensor {
  const raw = scope(() => F(ops.mul(xhat, c.cIn), c.cNoise));
  try {
    return axpby(c.cSkip, xhat, c.cOut, raw);
  } finally {
    raw.dispose();
  }
}

// ---------------------------------------------------------------------------------------------------
// One σ → σ' step (METHODS.md §0: "DDIM (η = 0) t → t', EDM Euler σ → σ', and flow Euler t → t' are the
// same update: x̂' = D + σ'·(x̂ − D)/σ").

/** Euler step in σ-space from the denoised D = x0: x̂' = D + σ'·(x̂ − D)/σ. */
export function eulerStep<X extends Value, D extends Value>(xhat: X, denoised: D, sigma: number, sigmaNext: number): Out<X, D> {
  checkSigma("eulerStep", sigma);
  const r = sigmaNext / sigma;
  return axpby(r, xhat, 1 - r, denoised);
}

/** DDIM η = 0 step from (x0, ε): x̂' = x0 + σ'·ε. Equal to `eulerStep` when ε = (x̂ − x0)/σ; differs (as in
 * diffusers) when x0 was clipped and ε kept as the model output. */
export function ddimStep<D extends Value, E extends Value>(x0: D, eps: E, sigmaNext: number): Out<D, E> {
  checkSigma("ddimStep", sigmaNext, true);
  return axpby(1, x0, sigmaNext, eps);
}
