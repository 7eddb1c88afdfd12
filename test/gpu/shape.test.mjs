// CUDA vs CPU: permute / transpose (tiled transpose and strided gather paths), concat,
// slice, split and pad — forward and backward (the backward of each is another of them).
import assert from "node:assert/strict";
import { test } from "node:test";
import { fd, checkOp } from "./harness.mjs";

function permutations(n) {
  if (n === 1) return [[0]];
  const out = [];
  for (const p of permutations(n - 1))
    for (let i = 0; i <= p.length; ++i) out.push([...p.slice(0, i), n - 1, ...p.slice(i)]);
  return out;
}

test("permute: every permutation of a 4-d tensor", () => {
  for (const perm of permutations(4))
    checkOp(`permute [3, 5, 7, 9] ${perm}`, (x) => fd.permute(x, perm), [[3, 5, 7, 9]]);
});

test("permute: merged and special layouts", () => {
  const cases = [
    [[2, 65, 33], [0, 2, 1]], // batched transpose with partial 32×32 tiles
    [[1000, 1003], [1, 0]], // large 2-d transpose
    [[2, 3, 17, 19], [0, 2, 3, 1]], // NCHW → NHWC: merges to a batched [C, HW] transpose
    [[2, 17, 19, 3], [0, 3, 1, 2]], // NHWC → NCHW
    [[2, 4, 8, 16], [0, 2, 1, 3]], // attention heads: inner dim stays contiguous
    [[1, 5, 1, 7], [3, 2, 1, 0]], // unit dims dropped before merging
    [[4, 1, 6], [2, 1, 0]],
    [[2, 3, 4], [0, 1, 2]], // identity
    [[3, 1, 4], [1, 0, 2]], // identity up to a unit dim
    [[2, 3, 4, 5, 6], [4, 0, 3, 1, 2]],
    [[2, 2, 2, 2, 2, 2, 3], [6, 5, 4, 3, 2, 1, 0]], // 7 unmergeable dims
    [[31, 1], [1, 0]],
    [[1, 1], [1, 0]],
    [[64, 4097], [1, 0]],
  ];
  for (const [shape, perm] of cases) checkOp(`permute ${shape} ${perm}`, (x) => fd.permute(x, perm), [shape]);
  checkOp("transpose default", (x) => fd.transpose(x), [[3, 37, 45]]);
  checkOp("transpose 0, 2", (x) => fd.transpose(x, 0, 2), [[4, 5, 6]]);
});

test("concat", () => {
  const cases = [
    [[[2, 3, 4], [2, 5, 4], [2, 1, 4]], 1],
    [[[2, 3, 4], [5, 3, 4]], 0],
    [[[2, 3, 4], [2, 3, 7]], -1],
    [[[2, 4, 8], [2, 8, 8]], 1], // 4-aligned rows: float4 copies
    [[[1000, 513], [1000, 3]], 1],
    [[[7], [1], [13]], 0],
    [[[3, 0, 2], [3, 4, 2]], 1], // an empty part
  ];
  for (const [shapes, axis] of cases)
    checkOp(`concat ${JSON.stringify(shapes)} axis ${axis}`, (...xs) => fd.concat(xs, axis), shapes);
});

test("slice", () => {
  const cases = [
    [[5, 7, 9], 1, 2, 5],
    [[5, 7, 9], -1, -4, undefined],
    [[5, 7, 9], 0, 1, 2],
    [[5, 7, 9], 2, 0, 9],
    [[8, 16], 1, 4, 12], // float4 path
    [[1000003], 0, 1, 999999],
    [[3, 4], 1, 2, 2], // empty result
  ];
  for (const [shape, axis, start, end] of cases)
    checkOp(`slice ${shape} axis ${axis} [${start}, ${end})`, (x) => fd.slice(x, axis, start, end), [shape]);
});

test("split", () => {
  checkOp("split [10, 6] [3, 3, 4]", (x) => fd.split(x, [3, 3, 4], 0), [[10, 6]]);
  checkOp("split [4, 9] in 3 along 1", (x) => fd.split(x, 3, 1), [[4, 9]]);
  checkOp("split [2, 5, 3] [1, 4] along -2", (x) => fd.split(x, [1, 4], -2), [[2, 5, 3]]);
  // Only one part used: the other parts' gradients are zeros created on the input's device.
  checkOp("split, one part used", (x) => fd.split(x, [2, 3, 2], 1)[1], [[3, 7, 5]]);
});

test("pad", () => {
  const cases = [
    [[2, 3, 5, 7], [1, 2], 0],
    [[2, 3, 5, 7], [1, 2, 0, 3], 0.5],
    [[2, 3, 5, 7], [1, 1, 2, 2, 3, 3], -1],
    [[2, 3, 5, 7], [0, 0, 0, 0, 0, 0, 1, 1], 0], // only the outermost dim padded
    [[7], [0, 0], 0],
    [[512, 1001], [3, 4, 5, 6], 2],
    [[4, 1, 1, 3], [2, 0, 0, 1], 0], // unit dims
  ];
  for (const [shape, pads, value] of cases)
    checkOp(`pad ${shape} ${pads} value ${value}`, (x) => fd.pad(x, pads, value), [shape]);
});

test("clone and copy on CUDA", () => {
  const x = fd.randn([1000003], { seed: 11, device: "cuda" });
  const c = x.clone();
  assert.equal(c.device, "cuda:0");
  assert.deepEqual(c.dataSync(), x.dataSync());
  const dst = fd.zeros([1000003], { device: "cuda" });
  fd.copy(dst, x);
  assert.deepEqual(dst.dataSync(), x.dataSync());
  checkOp("clone", (t) => t.clone(), [[33, 17]]);
});
