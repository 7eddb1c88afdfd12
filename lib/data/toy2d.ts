// 2-D toy sets: "8gaussians" and "grid25" (Gaussian mixtures, so their score is known exactly: the exact
// MixtureDenoiser of ./gaussian-mixture comes with them) and "swissroll" (no closed form). Draws are seeded
// (Philox through the engine), the same on every machine.
import { argumentError } from "../errors";
import * as ops from "../ops";
import type { Generator, Seed } from "../random";
import type { Tensor } from "../tensor";
import { karrasSigmas, type Schedule } from "../sampling/schedules";
import { ArrayDataset } from "./dataset";
import { GaussianMixture, MixtureDenoiser, checkCount, uniformsAndNormals } from "./gaussian-mixture";

export { GaussianMixture, MixtureDenoiser, type MixtureSpec, type MixtureDenoiserOptions } from "./gaussian-mixture";

const { cos, sin, PI } = Math;

export type ToyName = "8gaussians" | "grid25" | "swissroll";
/** The names toy2d knows. */
export const toyNames: readonly ToyName[] = ["8gaussians", "grid25", "swissroll"];

export interface ToyOptions {
  /** Number of samples held (default 10,000). */
  n?: number;
  /** Seed of those samples (default 0). */
  seed?: number;
}

/** σ_max of the toy schedules: the sets span about [−2, 2], so 20 (≈ 10× their scale) is already pure noise. */
export const TOY_SIGMA_MAX = 20;

/** A 2-D toy set: `size` fixed samples, fresh exact draws, and (for mixtures) the modes and exact denoiser. */
export class ToyDataset extends ArrayDataset {
  constructor(
    name: string,
    data: Float32Array,
    /** The mixture (centres `means`, `stds`, `weights`), or null where there is no closed form. */
    readonly modes: GaussianMixture | null,
    /** The exact denoiser, or null where there is no closed form. */
    readonly denoiser: MixtureDenoiser | null,
    private readonly drawFn: (n: number, seed: Seed | Generator) => Float32Array,
  ) {
    super(name, data, [2]);
  }

  /** n fresh exact draws [n, 2]. */
  sample(n: number, seed: Seed | Generator = 0): Tensor {
    checkCount(`toy2d '${this.name}'.sample`, n);
    return ops.tensor(this.drawFn(n, seed), [n, 2]);
  }

  /** The Karras σ grid for `steps` steps with σ_max = TOY_SIGMA_MAX (the same as `denoiser.schedule`). */
  schedule(steps: number): Schedule {
    return { sigmas: karrasSigmas(steps, { sigmaMax: TOY_SIGMA_MAX }) };
  }
}

/** The closed-form sets. "8gaussians": 8 equal Gaussians on the circle of radius 2 (angles kπ/4), std 0.1 — neighbours
 * sit 1.53 = 15 stds apart. "grid25": 25 equal Gaussians at {−2, −1, 0, 1, 2}² (row-major), std 0.05 — spacing 1 =
 * 20 stds, the classic 25-Gaussians set at half scale. Sharp but well-separated modes: mode coverage is measurable. */
const MIXTURES: Record<string, () => GaussianMixture> = {
  "8gaussians": () => new GaussianMixture({ means: Array.from({ length: 8 }, (_, k) => [2 * cos((k * PI) / 4), 2 * sin((k * PI) / 4)]), stds: 0.1 }),
  grid25: () => new GaussianMixture({ means: Array.from({ length: 25 }, (_, k) => [Math.floor(k / 5) - 2, (k % 5) - 2]), stds: 0.05 }),
};

/** sklearn's 2-D swiss roll scaled by 1/7: t = 1.5π(1 + 2u), x = t(cos t, sin t)/7 + N(0, 0.05²I); radius ∈ [0.67, 2.02]. */
function swissroll(n: number, seed: Seed | Generator): Float32Array {
  const [u, z] = uniformsAndNormals(n, 2, seed);
  const out = new Float32Array(2 * n);
  for (let i = 0; i < n; ++i) {
    const t = 1.5 * PI * (1 + 2 * u[i]!);
    out[2 * i] = (t * cos(t)) / 7 + 0.05 * z[2 * i]!;
    out[2 * i + 1] = (t * sin(t)) / 7 + 0.05 * z[2 * i + 1]!;
  }
  return out;
}

/** A 2-D toy dataset by name: "8gaussians", "grid25" (exact denoisers) or "swissroll" (none). */
export function toy2d(name: ToyName, options: ToyOptions = {}): ToyDataset {
  const n = options.n ?? 10_000;
  const seed = options.seed ?? 0;
  checkCount(`datasets.toy2d '${name}'`, n);
  if (name === "swissroll") return new ToyDataset(name, swissroll(n, seed), null, null, swissroll);
  const mixture = Object.hasOwn(MIXTURES, name) ? MIXTURES[name]!() : null;
  if (!mixture) throw argumentError("datasets.toy2d", `unknown toy set '${String(name)}' (known: ${toyNames.join(", ")})`);
  const denoiser = new MixtureDenoiser(mixture, { sigmaMax: TOY_SIGMA_MAX });
  return new ToyDataset(name, mixture.draw(n, seed).x, mixture, denoiser, (m, s) => mixture.draw(m, s).x);
}
