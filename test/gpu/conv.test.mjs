// conv2d (im2col + tensor-core GEMM, direct kernels for depthwise-like shapes) and the
// resampling ops (upsampleNearest2d, avgPool2d, resize) on CUDA vs the CPU, forward and
// backward. Shapes are chosen to reach every path of binding/cuda/conv.cu: pointwise (no
// im2col), grouped GEMMs batched over images and over groups, direct kernels, weight
// gradients split into pixel slices (with a shorter last slice), and batch chunking.
import { test } from "node:test";
import { fd, checkOp, withPrecision } from "./harness.mjs";

// Float32 sums of K products in different orders differ by ~eps·√K relative to the
// output scale, so "highest" tolerances grow with the reduction length (1e-5·√K).
const sqrtTol = (k) => 1e-5 * Math.sqrt(k);

const pairOf = (v) => (Array.isArray(v) ? v : [v, v]);

/**
 * conv2d check: x [N, C, H, W], w [OC, C/groups, KH, KW], optional bias; compares y and the
 * gradients of x, w and bias. precision "highest" (float32 FMA) unless given.
 */
function checkConv(name, { N, C, H, W, OC, K, stride = 1, padding = 0, dilation = 1, groups = 1, bias = true }, precision = "highest", tf32Tol = 3e-3) {
  const [KH, KW] = pairOf(K);
  const [sh, sw] = pairOf(stride), [ph, pw] = pairOf(padding), [dh, dw] = pairOf(dilation);
  const OH = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const opts = { stride, padding, dilation, groups };
  const shapes = [[N, C, H, W], [OC, C / groups, KH, KW]];
  if (bias) shapes.push([OC]);
  // Reduction lengths: y over Cg·KH·KW, gx over OCg·KH·KW, gw and gb over N·OH·OW.
  const kFwd = (C / groups) * KH * KW;
  const kGrad = Math.max(kFwd, (OC / groups) * KH * KW, N * OH * OW);
  const tol = precision === "highest" ? sqrtTol(kFwd) : tf32Tol;
  const gradTol = precision === "highest" ? sqrtTol(kGrad) : tf32Tol;
  withPrecision(precision, () =>
    checkOp(`conv2d ${name} (${precision})`, (x, w, b) => fd.conv2d(x, w, bias ? b : null, opts), shapes, { tol, gradTol }),
  );
}

test("conv2d 3x3 pad 1, the UNet case (64 -> 128, 28x28, batch 4)", () => {
  const unet = { N: 4, C: 64, H: 28, W: 28, OC: 128, K: 3, padding: 1 };
  checkConv("unet 3x3", unet, "highest");
  // TF32 inputs (10-bit mantissa): ~2^-11 relative per product, well inside 3e-3 of the output scale.
  checkConv("unet 3x3", unet, "high", 3e-3);
});

test("conv2d 1x1 (pointwise: the input is the GEMM operand, no im2col)", () => {
  checkConv("1x1", { N: 2, C: 32, H: 9, W: 11, OC: 48, K: 1 });
  checkConv("1x1 stride 2", { N: 2, C: 16, H: 9, W: 11, OC: 24, K: 1, stride: 2 });
  checkConv("1x1 pad 1", { N: 3, C: 8, H: 5, W: 6, OC: 12, K: 1, padding: 1 });
});

test("conv2d stride 2 pad 1 (downsample)", () => {
  checkConv("3x3 s2 p1", { N: 2, C: 32, H: 16, W: 15, OC: 32, K: 3, stride: 2, padding: 1 });
  checkConv("4x4 s2 p1", { N: 2, C: 8, H: 17, W: 16, OC: 16, K: 4, stride: 2, padding: 1 });
});

test("conv2d groups (GEMMs batched over images, and over groups when images are fewer)", () => {
  checkConv("groups 2 N3", { N: 3, C: 16, H: 10, W: 9, OC: 32, K: 3, padding: 1, groups: 2 });
  checkConv("groups 2 N1", { N: 1, C: 16, H: 10, W: 9, OC: 32, K: 3, padding: 1, groups: 2 });
  checkConv("groups 4 N2 s2", { N: 2, C: 32, H: 11, W: 12, OC: 64, K: 3, stride: 2, padding: 1, groups: 4 });
});

test("conv2d depthwise and depthwise-like (direct kernels)", () => {
  checkConv("depthwise", { N: 2, C: 16, H: 13, W: 12, OC: 16, K: 3, padding: 1, groups: 16 });
  checkConv("depthwise x2 s2 d2", { N: 2, C: 8, H: 15, W: 14, OC: 16, K: 3, stride: 2, padding: 2, dilation: 2, groups: 8 });
  checkConv("groups 4 Cg 2 OCg 2", { N: 3, C: 8, H: 7, W: 9, OC: 8, K: 3, padding: 1, groups: 4 });
  checkConv("to 3 channels", { N: 2, C: 12, H: 9, W: 10, OC: 3, K: 3, padding: 1 });
  checkConv("depthwise 7x7 large", { N: 4, C: 64, H: 32, W: 32, OC: 64, K: 7, padding: 3, groups: 64 });
});

test("conv2d dilation 2", () => {
  checkConv("dilation 2", { N: 2, C: 12, H: 13, W: 11, OC: 20, K: 3, padding: 2, dilation: 2 });
});

test("conv2d odd sizes (N=3, C=5, H=7, W=9, OC=11, K=3)", () => {
  checkConv("odd pad 1", { N: 3, C: 5, H: 7, W: 9, OC: 11, K: 3, padding: 1 });
  checkConv("odd pad 0", { N: 3, C: 5, H: 7, W: 9, OC: 11, K: 3 });
  checkConv("odd 5x5 s3 p2", { N: 3, C: 5, H: 11, W: 13, OC: 11, K: 5, stride: 3, padding: 2 });
  checkConv("asymmetric", { N: 3, C: 5, H: 7, W: 9, OC: 11, K: [3, 1], stride: [2, 1], padding: [1, 0], dilation: [1, 3] });
  checkConv("single pixel", { N: 1, C: 5, H: 1, W: 1, OC: 7, K: 1 });
});

test("conv2d without bias", () => {
  checkConv("no bias", { N: 3, C: 5, H: 7, W: 9, OC: 11, K: 3, padding: 1, bias: false });
  checkConv("no bias depthwise", { N: 2, C: 6, H: 7, W: 9, OC: 6, K: 3, padding: 1, groups: 6, bias: false });
});

test("conv2d patch embedding 2x2 stride 2 (the DiT case)", () => {
  checkConv("patch 2x2 s2", { N: 4, C: 4, H: 32, W: 32, OC: 96, K: 2, stride: 2 });
});

test("conv2d weight gradient split into pixel slices (large images, few output tiles)", () => {
  // 45x37 = 1665 pixels: several slices, the last one shorter.
  checkConv("slices", { N: 1, C: 8, H: 45, W: 37, OC: 32, K: 3, padding: 1 });
  checkConv("slices groups 2", { N: 2, C: 16, H: 40, W: 41, OC: 32, K: 3, padding: 1, groups: 2 });
  checkConv("slices pointwise", { N: 1, C: 16, H: 50, W: 51, OC: 24, K: 1 });
});

test("conv2d big (N=64, 128 -> 128, 14x14)", () => {
  checkConv("big", { N: 64, C: 128, H: 14, W: 14, OC: 128, K: 3, padding: 1 });
});

test("conv2d chunked over the batch (im2col of one image > half the 256 MB scratch)", () => {
  // col of one image: 64·9·256·256 floats = 151 MB, so one image per chunk, two chunks.
  checkConv("chunked", { N: 2, C: 64, H: 256, W: 256, OC: 64, K: 3, padding: 1 });
});

// ---------------------------------------------------------------------------------------
// Resampling: a handful of taps per output, so plain float32 tolerance. (resize has no
// antialias option in this API.)

test("upsampleNearest2d forward + backward", () => {
  checkOp("upsampleNearest2d x2", (x) => fd.upsampleNearest2d(x, 2), [[2, 3, 5, 7]]);
  checkOp("upsampleNearest2d [3, 2]", (x) => fd.upsampleNearest2d(x, [3, 2]), [[1, 2, 4, 3]]);
  checkOp("upsampleNearest2d 1x1", (x) => fd.upsampleNearest2d(x, 4), [[3, 1, 1, 1]]);
  checkOp("upsampleNearest2d large", (x) => fd.upsampleNearest2d(x, 2), [[8, 64, 32, 32]]);
});

test("avgPool2d forward + backward", () => {
  checkOp("avgPool2d 2", (x) => fd.avgPool2d(x, 2), [[2, 3, 8, 6]]);
  checkOp("avgPool2d odd input", (x) => fd.avgPool2d(x, 2), [[2, 3, 7, 9]]);
  checkOp("avgPool2d [3,2] stride [2,1]", (x) => fd.avgPool2d(x, [3, 2], [2, 1]), [[2, 3, 7, 9]]);
  checkOp("avgPool2d 3 stride 1 (overlapping)", (x) => fd.avgPool2d(x, 3, 1), [[1, 2, 9, 11]]);
  checkOp("avgPool2d stride > kernel (gaps)", (x) => fd.avgPool2d(x, [2, 3], [3, 4]), [[2, 2, 10, 10]]);
  checkOp("avgPool2d whole image", (x) => fd.avgPool2d(x, [5, 4]), [[3, 2, 5, 4]]);
  checkOp("avgPool2d large", (x) => fd.avgPool2d(x, 2), [[8, 64, 64, 64]]);
});

test("resize bilinear and bicubic, up and down, forward + backward", () => {
  const sizes = [
    [[2, 3, 8, 8], [16, 16]],
    [[2, 3, 7, 9], [3, 4]],
    [[1, 2, 5, 3], [13, 11]],
    [[2, 1, 1, 1], [3, 2]],
    [[1, 3, 4, 6], [1, 1]],
    [[2, 2, 30, 17], [7, 40]],
    [[1, 2, 9, 9], [9, 9]],
    [[4, 32, 64, 64], [128, 96]],
    [[4, 32, 100, 90], [37, 29]],
  ];
  for (const mode of ["bilinear", "bicubic"])
    for (const [shape, size] of sizes)
      checkOp(`resize ${mode} ${shape.slice(2).join("x")} -> ${size.join("x")}`, (x) => fd.resize(x, size, { mode }), [shape]);
});
