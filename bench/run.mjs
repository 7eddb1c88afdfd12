#!/usr/bin/env node
// Kernel benchmarks: fastdiff vs PyTorch CPU on the same shapes, 1 and 2 threads.
// Prints a table (ours, PyTorch, ratio, % of the measured FMA peak) and writes
// bench/results/ops-<date>.json. Usage: node bench/run.mjs [--quick] [--threads 1,2] [--rounds 2] [--only conv]
// The machine is shared and noisy: PyTorch and ours alternate for `rounds` rounds and
// each side keeps its best median, so both see the same conditions.
// PyTorch: Debian python3-torch with OpenBLAS (bench/setup-torch.sh); skipped if absent.
import { execFileSync, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createRequire } from "node:module";

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), "..");
const require = createRequire(import.meta.url);
const fd = require(path.join(root, "dist", "index.cjs"));
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const rounds = args.includes("--rounds") ? Number(args[args.indexOf("--rounds") + 1]) : 2;
const threadList = (args[args.indexOf("--threads") + 1] && args.includes("--threads") ? args[args.indexOf("--threads") + 1] : "1,2")
  .split(",").map(Number);

// ---------------------------------------------------------------- cases
const cases = [];
for (const n of quick ? [1024] : [256, 512, 1024, 2048])
  cases.push({ name: `sgemm ${n}³`, kind: "matmul", shape: { M: n, N: n, K: n }, flops: 2 * n ** 3 });
for (const [C, H] of [[64, 28], [64, 32], [128, 28], [128, 32]]) {
  const shape = { N: 16, C, OC: C, H, W: H };
  const f = 2 * 16 * C * C * 9 * H * H;
  cases.push({ name: `conv3x3 b16 ${C}→${C} ${H}² fwd`, kind: "conv2d", shape, flops: f });
  cases.push({ name: `conv3x3 b16 ${C}→${C} ${H}² fwd+bwd`, kind: "conv2d_train", shape, flops: 3 * f });
}
for (const [H, D] of [[4, 32], [2, 64]]) {
  const shape = { B: 16, H, N: 256, D };
  const f = 4 * 16 * H * 256 * 256 * D;
  cases.push({ name: `attention b16 h${H} n256 d${D} fwd`, kind: "attention", shape, flops: f });
  cases.push({ name: `attention b16 h${H} n256 d${D} fwd+bwd`, kind: "attention_train", shape, flops: 3.5 * f });
}
cases.push({ name: "groupnorm+silu b16 c64 28² g32", kind: "groupnorm_silu", shape: { N: 16, C: 64, H: 28, W: 28, G: 32 }, bytes: 2 * 16 * 64 * 784 * 4 });
if (args.includes("--only")) {
  const only = args[args.indexOf("--only") + 1];
  cases.splice(0, cases.length, ...cases.filter((c) => c.name.includes(only)));
}
for (const c of cases) {
  const work = c.flops ?? c.bytes * 50;
  c.iters = Math.max(1, Math.round((quick ? 0.3 : 1) * 2e9 / work));
  c.repeats = quick ? 3 : 5;
}

// ---------------------------------------------------------------- ours
function ourCase(c) {
  const s = c.shape;
  const rnd = (shape, seed, grad = false) => {
    const t = fd.randn(shape, { seed });
    return grad ? t.requireGrad() : t;
  };
  switch (c.kind) {
    case "matmul": {
      const a = rnd([s.M, s.K], 1), b = rnd([s.K, s.N], 2);
      return () => fd.matmul(a, b);
    }
    case "conv2d":
    case "conv2d_train": {
      const train = c.kind === "conv2d_train";
      const x = rnd([s.N, s.C, s.H, s.W], 1, train), w = rnd([s.OC, s.C, 3, 3], 2, train), b = rnd([s.OC], 3, train);
      if (!train) return () => fd.noGrad(() => fd.conv2d(x, w, b, { padding: 1 }));
      const gy = rnd([s.N, s.OC, s.H, s.W], 4);
      return () => {
        fd.conv2d(x, w, b, { padding: 1 }).backward(gy);
        for (const p of [x, w, b]) p.grad = null;
      };
    }
    case "attention":
    case "attention_train": {
      const train = c.kind === "attention_train";
      const [q, k, v] = [1, 2, 3].map((seed) => rnd([s.B, s.H, s.N, s.D], seed, train));
      if (!train) return () => fd.attention(q, k, v);
      const go = rnd([s.B, s.H, s.N, s.D], 4);
      return () => {
        fd.attention(q, k, v).backward(go);
        for (const p of [q, k, v]) p.grad = null;
      };
    }
    case "groupnorm_silu": {
      const x = rnd([s.N, s.C, s.H, s.W], 1), w = rnd([s.C], 2), b = rnd([s.C], 3);
      return () => fd.groupNorm(x, s.G, w, b, { silu: true });
    }
  }
  throw new Error(c.kind);
}

function timeOurs(c) {
  return fd.scope(() => {
    const fn = ourCase(c);
    const once = () => fd.scope(() => void fn());
    once();
    once();
    fd.synchronize();
    const samples = [];
    for (let r = 0; r < c.repeats; ++r) {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < c.iters; ++i) once();
      fd.synchronize();
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6 / c.iters);
    }
    samples.sort((a, b) => a - b);
    return samples[Math.floor(samples.length / 2)];
  });
}

// ---------------------------------------------------------------- PyTorch
function timeTorch(threads) {
  const probe = spawnSync("/usr/bin/python3", ["-c", "import torch"], { stdio: "ignore" });
  if (probe.status !== 0) return null;
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const out = execFileSync("/usr/bin/python3", [path.join(root, "bench", "torch_ops.py")], { input: JSON.stringify(cases), env });
  return JSON.parse(out.toString());
}

function peak() {
  const exe = path.join(root, "build-bench", "kbench_peak");
  if (!fs.existsSync(exe)) {
    execFileSync("cmake", ["-S", root, "-B", path.join(root, "build-bench"), "-DFASTDIFF_NATIVE_BENCH=ON", "-DFASTDIFF_CUDA=off"], { stdio: "ignore" });
    execFileSync("cmake", ["--build", path.join(root, "build-bench"), "--target", "kbench_peak"], { stdio: "ignore" });
  }
  return JSON.parse(execFileSync(exe).toString());
}

// ---------------------------------------------------------------- run
const machine = { cpu: fd.devices().cpu.brand, cores: os.cpus().length, isa: fd.getIsa(), node: process.versions.node };
const commit = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).stdout?.toString().trim() || "unknown";
const fma = peak();
console.log(`fastdiff op benchmarks — ${machine.cpu}, ${machine.cores} cores, ${machine.isa}, commit ${commit}`);
console.log(`measured FP32 FMA peak: ${fma.fma_gflops["1"]} GFLOP/s (1 thread), ${fma.fma_gflops["2"]} GFLOP/s (2 threads)\n`);
const rows = [];
for (const threads of threadList) {
  fd.setNumThreads(threads);
  const peakG = fma.fma_gflops[String(threads)] ?? fma.fma_gflops["1"] * threads;
  const best = new Map();
  let torch = null;
  for (let round = 0; round < rounds; ++round) {
    const t = timeTorch(threads);
    if (t) {
      torch = torch ?? { torch: t.torch, ms: {} };
      for (const [name, ms] of Object.entries(t.ms)) torch.ms[name] = Math.min(torch.ms[name] ?? Infinity, ms);
    }
    for (const c of cases) best.set(c.name, Math.min(best.get(c.name) ?? Infinity, timeOurs(c)));
  }
  console.log(`${threads} thread${threads > 1 ? "s" : ""}${torch ? ` (PyTorch ${torch.torch})` : " (PyTorch not found)"}, best of ${rounds} rounds`);
  console.log(`${"case".padEnd(40)} ${"ours ms".padStart(9)} ${"torch ms".padStart(9)} ${"ratio".padStart(6)} ${"ours".padStart(12)} ${"%peak".padStart(6)}`);
  for (const c of cases) {
    const ours = best.get(c.name);
    const theirs = torch?.ms[c.name] ?? null;
    const rate = c.flops ? c.flops / ours / 1e6 : c.bytes / ours / 1e6;
    const unit = c.flops ? "GFLOP/s" : "GB/s";
    const pct = c.flops ? (100 * rate) / peakG : null;
    rows.push({ threads, name: c.name, ours_ms: ours, torch_ms: theirs, speedup_vs_torch: theirs ? theirs / ours : null, rate, unit, pct_peak: pct });
    console.log(
      `${c.name.padEnd(40)} ${ours.toFixed(3).padStart(9)} ${theirs ? theirs.toFixed(3).padStart(9) : "-".padStart(9)} ` +
        `${theirs ? (theirs / ours).toFixed(2).padStart(5) + "×" : "-".padStart(6)} ${(rate.toFixed(1) + " " + (c.flops ? "GF/s" : "GB/s")).padStart(12)} ${pct ? pct.toFixed(0).padStart(5) + "%" : "-".padStart(6)}`,
    );
  }
  console.log("");
}
const dir = path.join(root, "bench", "results");
fs.mkdirSync(dir, { recursive: true });
const tag = args.includes("--only") ? `-${args[args.indexOf("--only") + 1].replace(/\W+/g, "_")}` : "";
const file = path.join(dir, `ops-${new Date().toISOString().slice(0, 10)}${tag}.json`);
fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), commit, machine, rounds, fma_peak_gflops: fma.fma_gflops, rows }, null, 2));
console.log(`wrote ${path.relative(root, file)}`);
