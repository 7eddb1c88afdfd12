// CUDA vs CPU: sum / mean / max / min over every axis subset of a 4-d tensor (keepdim
// on and off), the row / column / split-R paths of the reduction kernel, ties in
// max/min gradients, variance, the global norm, and run-to-run determinism.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fd, checkOp } from "./harness.mjs";

let seed = 1 + Math.floor(Math.random() * 1e6);
const uniform = (shape, low = 0, high = 1) => fd.rand(shape, { seed: seed++, low, high }).dataSync();
const coarse = (shape) => fd.randn(shape, { seed: seed++ }).dataSync().map((v) => Math.round(v * 2) / 2);

const KINDS = [
  ["sum", (x, axes, keep) => fd.sum(x, axes, keep)],
  ["mean", (x, axes, keep) => fd.mean(x, axes, keep)],
  ["max", (x, axes, keep) => fd.max(x, axes, keep)],
  ["min", (x, axes, keep) => fd.min(x, axes, keep)],
];

// All 15 non-empty subsets of {0, 1, 2, 3}.
const SUBSETS = Array.from({ length: 15 }, (_, m) => [0, 1, 2, 3].filter((a) => ((m + 1) >> a) & 1));

test("every axis subset of a 4-d tensor", () => {
  // [3, 5, 7, 9]: small odd dims; [2, 33, 40, 3]: inner 3 (narrow column tiles) and 40 (> 32).
  for (const shape of [[3, 5, 7, 9], [2, 33, 40, 3]]) {
    for (const [name, fn] of KINDS) {
      SUBSETS.forEach((axes, k) => {
        const keep = k % 2 === 0;
        checkOp(`${name} ${shape} axes ${axes} keepdim=${keep}`, (x) => fn(x, axes, keep), [shape]);
      });
      checkOp(`${name} ${shape} all`, (x) => fn(x), [shape]);
      checkOp(`${name} ${shape} axis -1`, (x) => fn(x, -1, true), [shape]);
    }
  }
});

test("large reductions: long rows, long columns, split R", () => {
  // Sums of ~1e6 values: uniform [0, 1) inputs keep the sums far from 0, so the
  // different float32 summation orders of the two devices stay within 1e-5 relative.
  const cases = [
    // [shape, axes]
    [[1000003], [0]], // one row, R split over many blocks
    [[4, 262147], [1]], // few long rows
    [[262147, 4], [0]], // one long narrow column block (inner 4)
    [[3, 100003, 5], [1]], // inner 5
    [[2048, 2049], [0]], // inner 2049: many column tiles
    [[2048, 2049], [1]], // many rows of 2049 (a block per row)
    [[100003, 3], [1]], // many short rows (a warp per row)
    [[1, 1000003, 1], [1]],
    [[7, 33, 4099], [0, 2]], // two separate runs: two passes
  ];
  for (const [shape, axes] of cases)
    for (const [name, fn] of KINDS)
      checkOp(`${name} ${shape} axes ${axes}`, (x) => fn(x, axes, false), [shape], { inputs: (s) => uniform(s) });
});

test("an empty reduced dimension sums to 0", () => {
  const x = fd.zeros([3, 0, 4], { device: "cuda" });
  const s = fd.sum(x, 1);
  assert.deepEqual(s.shape, [3, 4]);
  assert.deepEqual(Array.from(s.dataSync()), new Array(12).fill(0));
  const m = fd.mean(x, 1);
  assert.ok(Array.from(m.dataSync()).every(Number.isNaN), "mean over no values is NaN, like the CPU");
});

test("max / min propagate NaN", () => {
  const v = new Float32Array([1, NaN, 3, 4, 5, 6, -1, -2, NaN]);
  const x = fd.tensor(v, [3, 3]);
  for (const fn of [fd.max, fd.min])
    for (const axes of [0, 1, undefined]) {
      const ref = fn(x, axes).dataSync();
      const got = fn(x.to("cuda"), axes).dataSync();
      assert.deepEqual(got, ref);
    }
});

test("max / min gradients are shared between ties", () => {
  for (const shape of [[6, 5, 7], [2000, 9]])
    for (const [name, fn] of KINDS.slice(2))
      for (const axes of [[0], [1], [0, 2].filter((a) => a < shape.length), undefined])
        checkOp(`${name} ties ${shape} axes ${axes}`, (x) => fn(x, axes, false), [shape], { inputs: coarse });
});

test("variance", () => {
  for (const shape of [[3, 5, 7, 9], [2, 33, 40, 3]])
    SUBSETS.forEach((axes, k) => {
      const correction = k % 3 === 0 ? 0 : 1;
      checkOp(`variance ${shape} axes ${axes} correction ${correction}`,
        (x) => fd.variance(x, axes, { correction, keepdim: k % 2 === 1 }), [shape]);
    });
  checkOp("variance all", (x) => fd.variance(x), [[1000003]]);
  checkOp("variance rows", (x) => fd.variance(x, 1, { correction: 0 }), [[64, 4097]]);
});

test("norm", () => {
  for (const shape of [[1], [7], [3, 5, 7, 9], [1000003]]) checkOp(`norm ${shape}`, (x) => fd.norm(x), [shape]);
});

test("reductions are deterministic run to run", () => {
  const x = fd.randn([1000003], { seed: 7, device: "cuda" });
  const y = fd.randn([512, 2049], { seed: 8, device: "cuda" });
  const first = [fd.sum(x).dataSync(), fd.mean(y, 0).dataSync(), fd.sum(y, 1).dataSync(), fd.norm(x).dataSync()];
  for (let k = 0; k < 3; ++k) {
    const again = [fd.sum(x).dataSync(), fd.mean(y, 0).dataSync(), fd.sum(y, 1).dataSync(), fd.norm(x).dataSync()];
    again.forEach((a, i) => assert.deepEqual(a, first[i], `result ${i} changed between runs`));
  }
});
