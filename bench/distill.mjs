// SiD distillation throughput: fastdiff's distillSiD beside the same loop in PyTorch CPU (bench/sid_torch.py) on
// the same teacher weights, batch and thread count. One iteration = one fake-score step + one generator step
// (through the frozen teacher and fake network) + the EMA update.
//
//   node bench/distill.mjs [--teacher models/mnist-teacher] [--batch 64] [--iterations 6] [--warmup 2] [--threads 2]
// (after `npm run prebuild && npx tsup`; PyTorch: bench/setup-torch.sh or Debian's python3-torch)
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { args, fd, here, root } from "./common.mjs";

const teacherPath = path.resolve(root, args.teacher ?? "models/mnist-teacher");
const batch = Number(args.batch ?? 64);
const iterations = Number(args.iterations ?? 6);
const warmup = Number(args.warmup ?? 2);
const threads = Number(args.threads ?? fd.getNumThreads());
fd.setNumThreads(threads);

const teacher = await fd.Denoiser.load(teacherPath);
const stamps = [];
const r = await fd.distillSiD(teacher, {
  iterations: warmup + iterations, batchSize: batch, lr: 1e-5, progressEvery: 1,
  onProgress: () => stamps.push(performance.now()),
});
r.student.dispose();
const per = stamps.slice(warmup).map((t, i) => (t - stamps[warmup + i - 1]) / 1000).sort((a, b) => a - b);
const ours = { impl: "fastdiff", threads, batch, iterations, secondsPerIteration: per[Math.floor(per.length / 2)] };

// PyTorch twice: Debian's default environment, and the tuned one of bench/models.mjs (OpenMP OpenBLAS when
// installed, glibc malloc kept from returning memory to the OS).
const OPENBLAS_OMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
const torchRun = (tuned) => {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  if (tuned) {
    if (fs.existsSync(path.join(OPENBLAS_OMP, "libblas.so.3"))) env.LD_LIBRARY_PATH = [OPENBLAS_OMP, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
    Object.assign(env, { MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(16 * 2 ** 30), MALLOC_TOP_PAD_: String(512 << 20) });
  }
  const py = spawnSync("/usr/bin/python3", [path.join(here, "sid_torch.py"), teacherPath, "--batch", String(batch), "--iterations", String(iterations),
    "--warmup", String(warmup), "--threads", String(threads)], { encoding: "utf8", env });
  if (py.status !== 0) throw new Error(`sid_torch.py failed: ${py.stderr}`);
  return { ...JSON.parse(py.stdout.trim().split("\n").at(-1)), environment: tuned ? "tuned" : "plain" };
};
const torch = torchRun(false);
const torchTuned = torchRun(true);

const result = {
  date: new Date().toISOString().slice(0, 10), machine: fd.devices().cpu.brand, teacher: path.relative(root, teacherPath), ours, torch, torchTuned,
  speedup: torch.secondsPerIteration / ours.secondsPerIteration, speedupTuned: torchTuned.secondsPerIteration / ours.secondsPerIteration,
};
const file = path.join(here, "results", `distill-${result.date}.json`);
fs.writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
console.log(`SiD iteration, batch ${batch}, ${threads} thread(s): fastdiff ${ours.secondsPerIteration.toFixed(2)} s, PyTorch ${torch.secondsPerIteration.toFixed(2)} s (tuned ${torchTuned.secondsPerIteration.toFixed(2)} s) → ${result.speedup.toFixed(2)}× (${result.speedupTuned.toFixed(2)}×) (${path.relative(root, file)})`);
