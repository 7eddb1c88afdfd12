// What an engine setting that changes rounding does to a shipped teacher's samples: matmul precision "medium"
// (bf16 matmuls on AVX512-BF16) against "high" (float32 on the CPU), or with --conv 1 the convolution algorithm
// "auto" (Winograd F(4×4) / F(2×2)) against "direct". The same n class-balanced samples (batch b from seed b) with
// 18-step Heun (35 NFE) under both; FD and classifier accuracy to the 1,996 test digits for both, FD between the
// two sets, the mean per-sample RMS distance between samples from the same noise, and the sampling wall time.
//
//   node bench/precision.mjs --model mnist-dit [--n 2000] [--batch 250] [--threads 2] [--conv 1]
// Writes bench/results/precision-<model>.json (--conv 1: conv-algorithm-<model>.json).
import * as fs from "node:fs";
import * as path from "node:path";
import { args, fd, here, root, meanRmsDistance } from "./common.mjs";


const model = args.model ?? "mnist-dit";
const n = Number(args.n ?? 2000);
const batch = Number(args.batch ?? 250);
fd.setNumThreads(Number(args.threads ?? fd.getNumThreads()));

const denoiser = await fd.Denoiser.load(path.join(root, "models", model));
const labels = Int32Array.from({ length: n }, (_, i) => i % 10);
const test = fd.datasets.mnist({ split: "test" }).all().x;
const featureNet = await fd.FeatureNet.load();

// [label, apply]: the reference setting first.
const settings = args.conv
  ? [["direct", () => fd.setConvAlgorithm("direct")], ["auto", () => fd.setConvAlgorithm("auto")]]
  : [["high", () => fd.setMatmulPrecision("high")], ["medium", () => fd.setMatmulPrecision("medium")]];

async function generate([label, apply]) {
  apply();
  const parts = [];
  let ms = 0;
  for (let b = 0, lo = 0; lo < n; ++b, lo += batch) {
    const hi = Math.min(n, lo + batch);
    const r = await fd.sampleWithStats(denoiser, { solver: "heun", steps: 18, n: hi - lo, seed: b, classLabels: labels.subarray(lo, hi) });
    ms += r.elapsedMs;
    parts.push(r.samples);
  }
  fd.setMatmulPrecision("high");
  fd.setConvAlgorithm("auto");
  const samples = fd.concat(parts, 0);
  for (const p of parts) p.dispose();
  const vsTest = await fd.evaluate(samples, test, { metrics: ["fd", "accuracy"], classLabels: labels, featureNet });
  console.log(`${label}: FD ${vsTest.fd.toFixed(3)}, accuracy ${(100 * vsTest.accuracy).toFixed(1)}%, ${(ms / 1000).toFixed(1)} s`);
  return { samples, fdTest: vsTest.fd, accuracy: vsTest.accuracy, seconds: ms / 1000 };
}

const [refLabel, newLabel] = settings.map(([label]) => label);
const ref = await generate(settings[0]);
const got = await generate(settings[1]);
const fdBetween = (await fd.evaluate(got.samples, ref.samples, { metrics: ["fd"], featureNet })).fd;
const distance = meanRmsDistance(got.samples, ref.samples);
const result = {
  date: new Date().toISOString(), model, n, solver: "heun", steps: 18, threads: fd.getNumThreads(),
  bf16: fd.devices().cpu.features.avx512bf16,
  [refLabel]: { fdTest: ref.fdTest, accuracy: ref.accuracy, seconds: ref.seconds },
  [newLabel]: { fdTest: got.fdTest, accuracy: got.accuracy, seconds: got.seconds },
  fdBetween, rmsDistance: distance,
};
console.log(JSON.stringify(result));
const file = `${args.conv ? "conv-algorithm" : "precision"}-${model}.json`;
fd.writeFileAtomicSync(path.join(here, "results", file), JSON.stringify(result, null, 2) + "\n");
