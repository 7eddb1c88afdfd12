// ArrayDataset batches, seeded permutations and BatchLoader: determinism, epoch coverage and exact resume.
import { ArrayDataset, BatchLoader, permutation } from "../../lib/data";
import { expectCode } from "../helpers";

/** n samples of shape [2, 3]; sample i holds i·10 + 0..5; label i % 3. */
function numbered(n: number): ArrayDataset {
  const data = Float32Array.from({ length: n * 6 }, (_, k) => Math.floor(k / 6) * 10 + (k % 6));
  return new ArrayDataset("numbered", data, [2, 3], Int32Array.from({ length: n }, (_, i) => i % 3), 3);
}

const isPermutation = (p: ArrayLike<number>, n: number): boolean => p.length === n && Array.from(p).sort((a, b) => a - b).every((v, i) => v === i);

describe("ArrayDataset", () => {
  test("batch copies the requested rows and labels, in order", () => {
    const ds = numbered(10);
    expect([ds.size, ds.sampleSize, ds.sampleShape, ds.numClasses]).toEqual([10, 6, [2, 3], 3]);
    const { x, labels } = ds.batch([7, 2, 7]);
    expect(x.shape).toEqual([3, 2, 3]);
    const expected = [7, 2, 7].flatMap((i) => [0, 1, 2, 3, 4, 5].map((j) => i * 10 + j));
    expect(Array.from(x.dataSync())).toEqual(expected);
    expect(Array.from(labels!)).toEqual([1, 2, 1]);
    ds.data[7 * 6] = -5; // the batch is a copy, not a view
    expect(x.dataSync()[0]).toBe(70);
    const all = ds.all();
    expect(all.x.shape).toEqual([10, 2, 3]);
    expect(Array.from(ds.subset([9, 0]).labels!)).toEqual([0, 0]);
  });

  test("an unlabeled set gives null labels", () => {
    const ds = new ArrayDataset("u", new Float32Array(8), [2]);
    expect(ds.batch([0, 3]).labels).toBeNull();
    expect(ds.size).toBe(4);
  });

  test("bad indices and inconsistent construction throw ERR_ARGUMENT", () => {
    const ds = numbered(5);
    expectCode(() => ds.batch([0, 5]), "ERR_ARGUMENT", /index 5 at 1 is outside \[0, 5\)/);
    expectCode(() => ds.batch([-1]), "ERR_ARGUMENT");
    expectCode(() => ds.batch([1.5]), "ERR_ARGUMENT");
    expectCode(() => ds.batch([NaN]), "ERR_ARGUMENT");
    expectCode(() => new ArrayDataset("bad", new Float32Array(7), [2, 3]), "ERR_ARGUMENT", /do not divide/);
    expectCode(() => new ArrayDataset("bad", new Float32Array(12), [2, 3], new Int32Array(3), 2), "ERR_ARGUMENT", /3 labels for 2 samples/);
    expectCode(() => new ArrayDataset("bad", new Float32Array(12), [2, 3], new Int32Array(2), 0), "ERR_ARGUMENT", /numClasses/);
  });
});

describe("permutation", () => {
  test("is a permutation, deterministic per (n, seed, epoch)", () => {
    for (const n of [0, 1, 2, 7, 1000]) expect(isPermutation(permutation(n, 3), n)).toBe(true);
    expect(Array.from(permutation(1000, 3, 2))).toEqual(Array.from(permutation(1000, 3, 2)));
    expect(Array.from(permutation(1000, 3, 2))).not.toEqual(Array.from(permutation(1000, 3, 3)));
    expect(Array.from(permutation(1000, 3, 2))).not.toEqual(Array.from(permutation(1000, 4, 2)));
  });

  test("positions are roughly uniform (where element 0 lands, over 400 seeds)", () => {
    const hits = new Array<number>(4).fill(0);
    for (let s = 0; s < 400; ++s) hits[permutation(4, s).indexOf(0)]! += 1;
    for (const h of hits) expect(Math.abs(h - 100)).toBeLessThan(5 * Math.sqrt(400 * 0.25 * 0.75));
  });
});

describe("BatchLoader", () => {
  const indicesOf = (loader: BatchLoader, batches: number): number[][] => Array.from({ length: batches }, () => Array.from(loader.nextIndices()));

  test("the same seed gives the same batches; another seed others", () => {
    const ds = numbered(50);
    const a = indicesOf(new BatchLoader(ds, { batchSize: 8, seed: 5 }), 20);
    expect(indicesOf(new BatchLoader(ds, { batchSize: 8, seed: 5 }), 20)).toEqual(a);
    expect(indicesOf(new BatchLoader(ds, { batchSize: 8, seed: 6 }), 20)).not.toEqual(a);
  });

  test("every index exactly once per epoch (dropLast false), a new order each epoch", () => {
    const ds = numbered(23);
    const loader = new BatchLoader(ds, { batchSize: 5, seed: 1, dropLast: false });
    expect(loader.batchesPerEpoch).toBe(5);
    const epochs: number[][] = [];
    for (let e = 0; e < 3; ++e) {
      const seen: number[] = [];
      for (let b = 0; b < 5; ++b) {
        expect(loader.position.epoch).toBe(b === 0 && e > 0 ? e - 1 : e); // rolls over lazily, on the next call
        seen.push(...loader.nextIndices());
      }
      expect(seen.slice(20)).toHaveLength(3); // the short last batch
      expect(isPermutation(seen, 23)).toBe(true);
      epochs.push(seen);
    }
    expect(epochs[1]).not.toEqual(epochs[0]);
    expect(epochs[2]).not.toEqual(epochs[1]);
  });

  test("dropLast (default) gives full batches of distinct indices; shuffle false is in order", () => {
    const ds = numbered(23);
    const loader = new BatchLoader(ds, { batchSize: 5, seed: 1 });
    expect(loader.batchesPerEpoch).toBe(4);
    for (let e = 0; e < 2; ++e) {
      const seen = indicesOf(loader, 4).flat();
      expect(new Set(seen).size).toBe(20);
    }
    expect(loader.position).toEqual({ epoch: 1, index: 20 });
    const ordered = new BatchLoader(ds, { batchSize: 10, shuffle: false });
    expect(indicesOf(ordered, 3)).toEqual([
      Array.from({ length: 10 }, (_, i) => i),
      Array.from({ length: 10 }, (_, i) => 10 + i),
      Array.from({ length: 10 }, (_, i) => i),
    ]);
  });

  test("resuming from a saved position reproduces the next batches (mid-epoch and at an epoch's end)", () => {
    const ds = numbered(40);
    for (const [done, dropLast] of [[3, true], [7, true], [6, false], [5, false]] as const) {
      const a = new BatchLoader(ds, { batchSize: 6, seed: 9, dropLast });
      indicesOf(a, done);
      const saved = JSON.parse(JSON.stringify(a.position));
      const rest = indicesOf(a, 12);
      const b = new BatchLoader(ds, { batchSize: 6, seed: 9, dropLast });
      b.position = saved;
      expect(indicesOf(b, 12)).toEqual(rest);
    }
  });

  test("next() returns the data of nextIndices(); epoch() iterates the current epoch", () => {
    const ds = numbered(12);
    const a = new BatchLoader(ds, { batchSize: 4, seed: 2 });
    const b = new BatchLoader(ds, { batchSize: 4, seed: 2 });
    const idx = Array.from(a.nextIndices());
    const batch = b.next();
    expect(Array.from(batch.x.dataSync())).toEqual(Array.from(ds.batch(idx).x.dataSync()));
    expect(Array.from(batch.labels!)).toEqual(idx.map((i) => i % 3));
    expect([...b.epoch()]).toHaveLength(2); // the rest of epoch 0
  });

  test("bad options throw ERR_ARGUMENT", () => {
    const ds = numbered(4);
    expectCode(() => new BatchLoader(ds, { batchSize: 0 }), "ERR_ARGUMENT", /batchSize/);
    expectCode(() => new BatchLoader(ds, { batchSize: 2.5 }), "ERR_ARGUMENT");
    expectCode(() => new BatchLoader(ds, { batchSize: 5 }), "ERR_ARGUMENT", /larger than the dataset/);
    expect(new BatchLoader(ds, { batchSize: 5, dropLast: false }).nextIndices()).toHaveLength(4);
  });
});
