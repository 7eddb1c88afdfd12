// What matmul precision "medium" (bf16 matmuls on AVX512-BF16) does to a shipped teacher's samples: the same
// n class-balanced samples (batch b from seed b) with 18-step Heun (35 NFE) at "high" (float32 on the CPU) and at
// "medium"; FD and classifier accuracy to the 1,996 test digits for both, FD between the two sets, the mean
// per-sample RMS distance between samples from the same noise, and the sampling wall time.
//
//   node bench/precision.mjs --model mnist-dit [--n 2000] [--batch 250] [--threads 2]
// Writes bench/results/precision-<model>.json.
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

async function generate(precision) {
  fd.setMatmulPrecision(precision);
  const parts = [];
  let ms = 0;
  for (let b = 0, lo = 0; lo < n; ++b, lo += batch) {
    const hi = Math.min(n, lo + batch);
    const r = await fd.sampleWithStats(denoiser, { solver: "heun", steps: 18, n: hi - lo, seed: b, classLabels: labels.subarray(lo, hi) });
    ms += r.elapsedMs;
    parts.push(r.samples);
  }
  fd.setMatmulPrecision("high");
  const samples = fd.concat(parts, 0);
  for (const p of parts) p.dispose();
  const vsTest = await fd.evaluate(samples, test, { metrics: ["fd", "accuracy"], classLabels: labels, featureNet });
  console.log(`${precision}: FD ${vsTest.fd.toFixed(3)}, accuracy ${(100 * vsTest.accuracy).toFixed(1)}%, ${(ms / 1000).toFixed(1)} s`);
  return { samples, fdTest: vsTest.fd, accuracy: vsTest.accuracy, seconds: ms / 1000 };
}

const high = await generate("high");
const medium = await generate("medium");
const fdBetween = (await fd.evaluate(medium.samples, high.samples, { metrics: ["fd"], featureNet })).fd;
const distance = meanRmsDistance(medium.samples, high.samples);
const result = {
  date: new Date().toISOString(), model, n, solver: "heun", steps: 18, threads: fd.getNumThreads(),
  bf16: fd.devices().cpu.features.avx512bf16,
  high: { fdTest: high.fdTest, accuracy: high.accuracy, seconds: high.seconds },
  medium: { fdTest: medium.fdTest, accuracy: medium.accuracy, seconds: medium.seconds },
  fdBetween, rmsDistance: distance,
};
console.log(JSON.stringify(result));
fd.writeFileAtomicSync(path.join(here, "results", `precision-${model}.json`), JSON.stringify(result, null, 2) + "\n");
