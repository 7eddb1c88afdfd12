// The feature cache of FRDiff and DeepCache (METHODS.md §6) over the native one (binding/cpp/nn/feature_cache.h):
// a plan (which points a non-keyframe evaluation reuses, which evaluations are keyframes, score mixing) and the
// runtime state of one trajectory (evaluation counter, cached point values, the last ε). Without a plan, each
// forward says by hand what it stores and reuses (Network.forward's `store` / `reuse`).
import { argumentError } from "../errors";
import { native } from "../native";
import { Tensor } from "../tensor";

/** Score mixing (METHODS.md §6): at non-keyframe i of E evaluations, r = i/E and
 * λ(r) = clip((slope·(r − bias) + 2)/4, 0, 1); ε = λ·ε_FR + (1 − λ)·ε_key; λ < 1e-10 skips the network.
 * slope > 0 jumps early and reuses late (the paper); slope < 0 reuses early and jumps late. */
export interface ScoreMixing {
  slope: number;
  bias: number;
}

/** FRDiff's defaults: slope 30, bias 0.5 (λ = 0 for r ≤ 0.433, 1 for r ≥ 0.567). */
export const PAPER_SCORE_MIXING: Readonly<ScoreMixing> = Object.freeze({ slope: 30, bias: 0.5 });

/** A keyframe plan over the E network evaluations of one sampling run. */
export interface ReusePlan {
  /** Points served from the cache at non-keyframe evaluations (names or globs). */
  points: readonly string[];
  /** One flag per evaluation: true runs the full network and refreshes the cache. Entry 0 must be true. */
  keyframes: readonly boolean[];
  /** Evaluations that run no network and reuse the previous evaluation's ε (Auto-FR's learned jumps). */
  skips?: readonly boolean[];
  /** Score mixing, or false / omitted for plain feature reuse. */
  scoreMixing?: ScoreMixing | false;
}

/** What one evaluation does: a full forward (keyframe), a forward reusing the cached points (its output
 * weighted λ against the keyframe's ε when score mixing), or no forward (the previous ε reused). */
export interface CacheStep {
  action: "full" | "reuse" | "skip";
  lambda: number;
  index: number;
}

export class FeatureCache {
  /** @internal */
  readonly handle: object = native.cacheCreate();
  private current: ReusePlan | null = null;
  private tally = { full: 0, reuse: 0, skip: 0 };

  constructor(plan?: ReusePlan) {
    if (plan) this.configure(plan);
  }

  /** Sets (or, with null, removes) the plan; validates it (ERR_ARGUMENT) and resets the state. */
  configure(plan: ReusePlan | null): void {
    if (plan === null) {
      native.cacheConfigure(this.handle, null);
      this.current = null;
      this.tally = { full: 0, reuse: 0, skip: 0 };
      return;
    }
    const mixing = plan.scoreMixing || null;
    if (!Array.isArray(plan.points) || !Array.isArray(plan.keyframes)) throw argumentError("FeatureCache", "a plan needs points and keyframes arrays");
    native.cacheConfigure(this.handle, {
      points: [...plan.points], keyframes: [...plan.keyframes], skips: plan.skips ? [...plan.skips] : undefined,
      scoreMixing: mixing !== null, slope: mixing?.slope ?? PAPER_SCORE_MIXING.slope, bias: mixing?.bias ?? PAPER_SCORE_MIXING.bias,
    });
    this.tally = { full: 0, reuse: 0, skip: 0 };
    this.current = Object.freeze({ ...plan, points: [...plan.points], keyframes: [...plan.keyframes], skips: plan.skips ? [...plan.skips] : undefined });
  }

  /** The plan (null: driven by hand). */
  get plan(): ReusePlan | null {
    return this.current;
  }

  /** Forgets the trajectory — cached values, evaluation counter, ε — and keeps the plan (start of a new batch). */
  reset(): void {
    native.cacheClear(this.handle);
    this.tally = { full: 0, reuse: 0, skip: 0 };
  }

  /** The next evaluation's action, advancing the counter (needs a plan). */
  next(): CacheStep {
    const step = native.cacheNext(this.handle);
    this.tally[step.action] += 1;
    return step;
  }

  /** Actions taken since the last reset. */
  get counts(): { full: number; reuse: number; skip: number } {
    return { ...this.tally };
  }

  /** Evaluations done since the last reset. */
  get evaluation(): number {
    return native.cacheState(this.handle).evaluation;
  }

  /** @internal ε of the last keyframe / the last evaluation (new handles the caller owns), or null. */
  eps(): { key: Tensor | null; prev: Tensor | null } {
    const s = native.cacheState(this.handle);
    return { key: s.epsKey ? new Tensor(s.epsKey) : null, prev: s.epsPrev ? new Tensor(s.epsPrev) : null };
  }

  /** @internal Records ε of the evaluation just run (also as ε_key for a keyframe). */
  recordEps(eps: Tensor, keyframe: boolean): void {
    native.cacheSetEps(this.handle, eps.handle, keyframe);
  }

  /** The stored point values by name (new handles the caller owns). */
  entries(): Map<string, Tensor> {
    return new Map(native.cacheEntries(this.handle).map(([n, t]) => [n, new Tensor(t)]));
  }
  get size(): number {
    const list = native.cacheEntries(this.handle);
    for (const [, t] of list) t.dispose();
    return list.length;
  }
}
