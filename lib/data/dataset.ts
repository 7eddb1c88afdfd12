// Datasets held in memory as one float32 block, and seeded batch iteration over them that copies only the
// batch (never the whole set per epoch). Every dataset fastdiff ships (MNIST, image folders, toy 2-D sets)
// is an ArrayDataset.
import { argumentError } from "../errors";
import * as ops from "../ops";
import type { Tensor } from "../tensor";

export interface Batch {
  /** [n, ...sampleShape], a new tensor the caller owns. */
  x: Tensor;
  /** One label per sample, or null for an unlabeled set. */
  labels: Int32Array | null;
}

export interface Dataset {
  readonly name: string;
  /** Number of samples. */
  readonly size: number;
  /** Shape of one sample ([C, H, W] for images, [D] for vectors). */
  readonly sampleShape: readonly number[];
  /** Number of classes (0: unlabeled). */
  readonly numClasses: number;
  /** Copies the samples at `indices` into a new tensor. */
  batch(indices: ArrayLike<number>): Batch;
}

/** A dataset whose samples sit contiguously in one Float32Array ([size, ...sampleShape], row-major). */
export class ArrayDataset implements Dataset {
  readonly size: number;
  readonly sampleSize: number;
  constructor(
    readonly name: string,
    readonly data: Float32Array,
    readonly sampleShape: readonly number[],
    readonly labels: Int32Array | null = null,
    readonly numClasses = 0,
  ) {
    const op = `dataset '${name}'`;
    this.sampleSize = sampleShape.reduce((a, b) => a * b, 1);
    if (this.sampleSize <= 0 || data.length % this.sampleSize !== 0)
      throw argumentError(op, `${data.length} values do not divide into samples of shape ${JSON.stringify(sampleShape)}`);
    this.size = data.length / this.sampleSize;
    if (labels && labels.length !== this.size) throw argumentError(op, `${labels.length} labels for ${this.size} samples`);
    if (labels && numClasses <= 0) throw argumentError(op, "a labeled dataset needs numClasses > 0");
  }

  batch(indices: ArrayLike<number>): Batch {
    const n = indices.length;
    const s = this.sampleSize;
    const out = new Float32Array(n * s);
    const labels = this.labels ? new Int32Array(n) : null;
    for (let i = 0; i < n; ++i) {
      const j = indices[i]!;
      if (!Number.isInteger(j) || j < 0 || j >= this.size)
        throw argumentError(`dataset '${this.name}'.batch`, `index ${j} at ${i} is outside [0, ${this.size})`);
      out.set(this.data.subarray(j * s, (j + 1) * s), i * s);
      if (labels) labels[i] = this.labels![j]!;
    }
    return { x: ops.tensor(out, [n, ...this.sampleShape]), labels };
  }

  /** The whole set as one tensor (a copy). */
  all(): Batch {
    return { x: ops.tensor(this.data.slice(), [this.size, ...this.sampleShape]), labels: this.labels ? this.labels.slice() : null };
  }

  /** The samples at `indices` as a new ArrayDataset (e.g. a class subset or a split). */
  subset(indices: ArrayLike<number>, name = this.name): ArrayDataset {
    const s = this.sampleSize;
    for (let i = 0; i < indices.length; ++i) {
      const j = indices[i]!;
      if (!Number.isInteger(j) || j < 0 || j >= this.size)
        throw argumentError(`dataset '${this.name}'.subset`, `index ${j} at ${i} is outside [0, ${this.size})`);
    }
    const data = new Float32Array(indices.length * s);
    const labels = this.labels ? new Int32Array(indices.length) : null;
    for (let i = 0; i < indices.length; ++i) {
      const j = indices[i]!;
      data.set(this.data.subarray(j * s, (j + 1) * s), i * s);
      if (labels) labels[i] = this.labels![j]!;
    }
    return new ArrayDataset(name, data, this.sampleShape, labels, this.numClasses);
  }
}

/** Where a batch iteration stands: epoch and the position inside that epoch's permutation. Resuming from a
 * saved position yields exactly the batches the uninterrupted iteration would have. */
export interface LoaderPosition {
  epoch: number;
  index: number;
}

export interface LoaderOptions {
  batchSize: number;
  /** Seeds the per-epoch permutations (a non-negative integer; see `permutation`). */
  seed?: number;
  /** Shuffle each epoch (default true). */
  shuffle?: boolean;
  /** Skip the last incomplete batch of an epoch (default true). */
  dropLast?: boolean;
}

/** splitmix64 step: a well-mixed 64-bit stream from any seed, exact in BigInt. */
function splitmix64(state: bigint): [bigint, bigint] {
  const mask = (1n << 64n) - 1n;
  const s = (state + 0x9e3779b97f4a7c15n) & mask;
  let z = s;
  z = ((z ^ (z >> 30n)) * 0xbf58476d1ce4e5b9n) & mask;
  z = ((z ^ (z >> 27n)) * 0x94d049bb133111ebn) & mask;
  return [s, z ^ (z >> 31n)];
}

/** A seeded random permutation of 0..n−1 (Fisher–Yates driven by splitmix64, started from a hash of the
 * pair (seed, epoch)). The same (n, seed, epoch) gives the same order on every machine. */
export function permutation(n: number, seed: number, epoch = 0): Uint32Array {
  for (const [name, v] of [["seed", seed], ["epoch", epoch]] as const)
    if (!Number.isSafeInteger(v) || v < 0) throw argumentError("permutation", `${name} must be a non-negative integer, got ${String(v)}`);
  const order = new Uint32Array(n);
  for (let i = 0; i < n; ++i) order[i] = i;
  // The stream starts at splitmix64(splitmix64(seed) + epoch): distinct pairs give unrelated orders.
  let state = splitmix64(splitmix64(BigInt(seed))[1] + BigInt(epoch))[1];
  // One 53-bit uniform per swap (bias < n/2⁵³, negligible at any dataset size).
  for (let i = n - 1; i > 0; --i) {
    let z: bigint;
    [state, z] = splitmix64(state);
    const u = Number(z >> 11n) / 2 ** 53;
    const j = Math.floor(u * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Seeded batches over a dataset, forever (epoch after epoch). `position` is where the next batch starts;
 * save it to resume. */
export class BatchLoader {
  readonly batchSize: number;
  readonly seed: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  position: LoaderPosition = { epoch: 0, index: 0 };
  private order: Uint32Array | null = null;
  private orderEpoch = -1;

  constructor(readonly dataset: Dataset, options: LoaderOptions) {
    const op = "BatchLoader";
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw argumentError(op, `batchSize must be a positive integer, got ${options.batchSize}`);
    this.dropLast = options.dropLast ?? true;
    if (this.dropLast && options.batchSize > dataset.size)
      throw argumentError(op, `batchSize ${options.batchSize} is larger than the dataset '${dataset.name}' (${dataset.size} samples)`);
    this.batchSize = options.batchSize;
    this.seed = options.seed ?? 0;
    if (!Number.isSafeInteger(this.seed) || this.seed < 0) throw argumentError(op, `seed must be a non-negative integer, got ${String(options.seed)}`);
    this.shuffle = options.shuffle ?? true;
  }

  /** Batches per epoch. */
  get batchesPerEpoch(): number {
    const n = this.dataset.size / this.batchSize;
    return this.dropLast ? Math.floor(n) : Math.ceil(n);
  }

  /** The indices of the next batch; advances the position. */
  nextIndices(): Uint32Array {
    const size = this.dataset.size;
    if (this.position.index >= this.epochLimit()) this.position = { epoch: this.position.epoch + 1, index: 0 };
    const { epoch, index } = this.position;
    if (this.orderEpoch !== epoch) {
      this.order = this.shuffle ? permutation(size, this.seed, epoch) : Uint32Array.from({ length: size }, (_, i) => i);
      this.orderEpoch = epoch;
    }
    const end = Math.min(size, index + this.batchSize);
    this.position = { epoch, index: end };
    return this.order!.slice(index, end);
  }

  /** The next batch (a new tensor the caller owns). */
  next(): Batch {
    return this.dataset.batch(this.nextIndices());
  }

  /** One pass over the rest of the current epoch, or over the next one when the current one is used up. */
  *epoch(): Generator<Batch> {
    if (this.position.index >= this.epochLimit()) this.position = { epoch: this.position.epoch + 1, index: 0 };
    const e = this.position.epoch;
    while (this.position.epoch === e && this.position.index < this.epochLimit()) yield this.next();
  }

  /** Positions at or past this start no further batch in the epoch. */
  private epochLimit(): number {
    return this.dropLast ? this.dataset.size - this.batchSize + 1 : this.dataset.size;
  }
}
