// Seeded randomness. Every random tensor is a pure function of (seed, offset)
// through the Philox4x32-10 counter-based generator (see binding/cpp/core/rng.h
// for the exact contract), so results do not depend on threads or devices.
import { argumentError } from "./errors";

export type Seed = number | bigint;

function checkSeed(op: string, seed: Seed): void {
  const ok = typeof seed === "bigint" ? seed >= 0n && seed < 1n << 64n : Number.isSafeInteger(seed) && seed >= 0;
  if (!ok) throw argumentError(op, `seed must be a non-negative integer below 2^64, got ${String(seed)}`);
}

/** A stream of random numbers: each draw takes ceil(n / 4) Philox blocks from `offset`. */
export class Generator {
  readonly seed: Seed;
  offset: bigint;
  constructor(seed: Seed, offset: Seed = 0) {
    checkSeed("Generator", seed);
    checkSeed("Generator", offset);
    this.seed = seed;
    this.offset = BigInt(offset);
  }
  /** Reserves the blocks for `n` values; returns the offset to draw them from. */
  take(n: number): bigint {
    const at = this.offset;
    this.offset += BigInt(Math.ceil(n / 4));
    return at;
  }
  /** For checkpoints: the state that reproduces the next draws. */
  state(): { seed: string; offset: string } {
    return { seed: String(this.seed), offset: String(this.offset) };
  }
  static fromState(s: { seed: string; offset: string }): Generator {
    return new Generator(BigInt(s.seed), BigInt(s.offset));
  }
  /** Continues this stream from a saved state (ERR_ARGUMENT when it was saved from another seed). */
  restore(s: { seed: string; offset: string }): void {
    if (String(this.seed) !== s.seed) throw argumentError("Generator.restore", `saved seed ${s.seed} does not match ${String(this.seed)}`);
    this.offset = BigInt(s.offset);
  }
}

let defaultGenerator = new Generator(0);

/** Reseeds the default generator used when no seed or generator is given. */
export function manualSeed(seed: Seed): void {
  defaultGenerator = new Generator(seed);
}

export interface RandomOptions {
  /** Draw from this seed at offset 0 (a pure function of the seed). */
  seed?: Seed;
  /** Or draw from this generator, advancing it. */
  generator?: Generator;
}

/** (seed, offset) for a draw of n values. */
export function resolveDraw(op: string, n: number, options: RandomOptions = {}): [Seed, bigint] {
  if (options.seed !== undefined) {
    checkSeed(op, options.seed);
    return [options.seed, 0n];
  }
  const g = options.generator ?? defaultGenerator;
  return [g.seed, g.take(n)];
}
