#!/usr/bin/env node
// Network benchmarks (issue 3): the small UNet and the small DiT, forward latency at batch 1/16/64 and a
// training step (forward + MSE + backward + Adam) at batch 16/64, at 1 and 2 threads, side by side:
//   ours         fastdiff (dist/), `UNet.load` / `DiT.load` on the diffusers folder
//   torch        PyTorch CPU, bench/torch_models.py on the same safetensors, tuned environment (see torchEnv)
//   torch_plain  the same in Debian's default environment (as bench/run.mjs and PERF.md's PyTorch figures)
//   ort          onnxruntime-node 1.30 on the PyTorch model exported with torch.onnx.export (forward only)
// All load the SAME weights (bench/models-tmp/{unet,dit}: config.json + diffusion_pytorch_model.safetensors,
// written by `torch_models.py --make-model`). Setup: bash bench/setup-models.sh.
//
// Usage: node bench/models.mjs [--quick] [--threads 1,2] [--rounds 2] [--models unet,dit]
//          [--impls ours,torch,torch_plain,ort] [--no-train] [--batches 1,16,64] [--train-batches 16,64]
//          [--repeats 3] [--min-ms 400] [--stat median|best] [--max-foreign 0.1] [--measure-peak] [--tag name]
//          [--precision high|medium]   (medium: fastdiff bf16 matmuls, PyTorch bf16 autocast; ORT stays float32)
//        node bench/models.mjs --verify   (ORT and fastdiff outputs vs PyTorch on the same inputs, atol 1e-4)
//        node bench/models.mjs --paired 16 [--threads 1,2] [--models unet,dit] [--batches 1,16] [--block-ms 300]
//          [--gap-ms 150] [--tag name]   (forward only, fastdiff against onnxruntime-node in interleaved pairs: below;
//          `node bench/paired-pool.mjs <files>` pools the pairs of several such runs per case)
// Table: "vs best" = (faster of torch and ort) / ours; "vs plain" = torch_plain / ours; GFLOP/s from the
// analytic forward FLOPs (training step = 3× forward) and % of the FP32 FMA peak; "peer" = the faster peer.
// The machine is shared and noisy: the implementations alternate (rotating order) for `rounds` rounds; each
// round every implementation times every case (median of `repeats` after warm-up); the table shows the median
// (or best) over rounds. Each measurement first waits for a quiet machine and is repeated when other processes
// used > --max-foreign cores meanwhile. Writes bench/results/models-<date>[-tag].json (every round's values).
import { execFileSync, spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";
import { ortSessionOptions } from "./ort-session.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const root = path.resolve(here, "..");
const modelsDir = path.join(here, "models-tmp");
const PY = "/usr/bin/python3";
const TORCH_SCRIPT = path.join(here, "torch_models.py");
const args = process.argv.slice(2);
const flag = (name) => args.includes(name);
const opt = (name, dflt) => (args.includes(name) && args[args.indexOf(name) + 1] !== undefined ? args[args.indexOf(name) + 1] : dflt);
const list = (s) => String(s).split(",").map((v) => v.trim()).filter(Boolean);
const ints = (s) => list(s).map(Number);

// ------------------------------------------------------------------ shared: timing, inputs, safetensors

/** Median (and all samples) of `repeats` timed runs of `iters` calls each, after `warmup` calls; `iters` is
 * chosen from one calibration call so each repeat lasts ≥ minMs. `fn` may be async. */
async function timeIt(fn, { warmup = 1, repeats = 3, minMs = 400 } = {}) {
  for (let i = 0; i < warmup; ++i) await fn();
  let t0 = process.hrtime.bigint();
  await fn();
  const once = Number(process.hrtime.bigint() - t0) / 1e6;
  const iters = Math.max(1, Math.ceil(minMs / Math.max(once, 1e-3)));
  const samples = [];
  for (let r = 0; r < repeats; ++r) {
    t0 = process.hrtime.bigint();
    for (let i = 0; i < iters; ++i) await fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e6 / iters);
  }
  samples.sort((a, b) => a - b);
  return { ms: samples[Math.floor(samples.length / 2)], min_ms: samples[0], samples, iters };
}

/** Deterministic pseudo-random inputs (mulberry32 + Box-Muller) for the JS peers. */
function rng(seed) {
  let a = seed >>> 0;
  const u = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const n = () => Math.sqrt(-2 * Math.log(u() + 1e-12)) * Math.cos(2 * Math.PI * u());
  return { u, n };
}
function jsInputs(model, batch, seed) {
  const r = rng(seed);
  const [C, H, W] = model.sampleShape;
  const x = new Float32Array(batch * C * H * W).map(() => r.n());
  const t = new Float32Array(batch).map(() => r.u() * 999);
  const labels = model.numClasses > 0 ? Int32Array.from({ length: batch }, () => Math.floor(r.u() * model.numClasses)) : null;
  return { x, t, labels, shape: [batch, C, H, W] };
}

/** Minimal safetensors reader (F32, I64, I32, F64). */
function readSafetensors(file) {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString("utf8"));
  delete header.__metadata__;
  const out = {};
  for (const [name, info] of Object.entries(header)) {
    const [b, e] = info.data_offsets;
    const bytes = buf.subarray(8 + n + b, 8 + n + e);
    const copy = new Uint8Array(bytes).buffer; // aligned copy
    const Arr = { F32: Float32Array, F64: Float64Array, I64: BigInt64Array, I32: Int32Array }[info.dtype];
    if (!Arr) throw new Error(`${file}: unsupported dtype ${info.dtype} for ${name}`);
    out[name] = { dtype: info.dtype, shape: info.shape, data: new Arr(copy) };
  }
  return out;
}

function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; ++i) {
    const d = Math.abs(a[i] - b[i]);
    if (!(d <= m)) m = Number.isNaN(d) ? Infinity : d;
  }
  return m;
}

// ------------------------------------------------------------------ onnxruntime-node worker (child process)

async function loadOrt() {
  const req = createRequire(path.join(here, "package.json"));
  try {
    return req("onnxruntime-node");
  } catch {
    return null;
  }
}

async function ortSession(ort, file, threads) {
  return ort.InferenceSession.create(file, ortSessionOptions(threads));
}

function ortFeeds(ort, model, inp) {
  const feeds = {
    sample: new ort.Tensor("float32", inp.x, inp.shape),
    timestep: new ort.Tensor("float32", inp.t, [inp.shape[0]]),
  };
  if (model.numClasses > 0) feeds.class_labels = new ort.Tensor("int64", BigInt64Array.from(inp.labels, (v) => BigInt(v)), [inp.shape[0]]);
  return feeds;
}

async function ortWorker(job) {
  const ort = await loadOrt();
  if (!ort) return { error: "onnxruntime-node not installed (npm install --prefix bench)" };
  const session = await ortSession(ort, job.model.onnx, job.threads);
  const out = { ort: ort.env?.versions?.node ?? "?", threads: job.threads, forward: {} };
  for (const b of job.batches) {
    const feeds = ortFeeds(ort, job.model, jsInputs(job.model, b, 1000 + b));
    out.forward[b] = await timeIt(async () => {
      const r = await session.run(feeds);
      await r.out.getData?.();
    }, job.timing);
  }
  await session.release?.();
  return out;
}

// Paired mode's peer: one session kept open; each IPC message {batch, iters} runs that many forwards at that batch
// and answers {ms} (mean per forward); "exit" ends it.
async function ortServer(job) {
  const ort = await loadOrt();
  if (!ort) return process.send({ error: "onnxruntime-node not installed (npm install --prefix bench)" });
  const session = await ortSession(ort, job.model.onnx, job.threads);
  const feeds = new Map();
  process.on("message", async (msg) => {
    if (msg === "exit") {
      await session.release?.();
      process.exit(0);
    }
    if (!feeds.has(msg.batch)) feeds.set(msg.batch, ortFeeds(ort, job.model, jsInputs(job.model, msg.batch, 1000 + msg.batch)));
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < msg.iters; ++i) {
      const r = await session.run(feeds.get(msg.batch));
      await r.out.getData?.();
    }
    process.send({ ms: Number(process.hrtime.bigint() - t0) / 1e6 / msg.iters, ort: ort.env?.versions?.node ?? "?" });
  });
  process.send({ ready: true });
}

async function ortVerify(job) {
  const ort = await loadOrt();
  if (!ort) return { error: "onnxruntime-node not installed" };
  const io = readSafetensors(job.io);
  const session = await ortSession(ort, job.model.onnx, job.threads ?? 1);
  const B = io.sample.shape[0];
  const feeds = {
    sample: new ort.Tensor("float32", io.sample.data, io.sample.shape),
    timestep: new ort.Tensor("float32", io.timestep.data, [B]),
  };
  if (io.class_labels) feeds.class_labels = new ort.Tensor("int64", io.class_labels.data, [B]);
  const r = await session.run(feeds);
  return { max_abs_diff: maxAbsDiff(r.out.data, io.out.data), shape: r.out.dims };
}

if (flag("--ort-server")) {
  await ortServer(JSON.parse(opt("--ort-server")));
  await new Promise(() => {}); // serve until "exit": the rest of this file is the parent's
} else if (flag("--ort-worker") || flag("--ort-verify")) {
  const job = JSON.parse(opt(flag("--ort-worker") ? "--ort-worker" : "--ort-verify"));
  const res = flag("--ort-worker") ? await ortWorker(job) : await ortVerify(job);
  process.stdout.write(JSON.stringify(res));
  process.exit(0);
}

// ------------------------------------------------------------------ configuration

const quick = flag("--quick");
const verify = flag("--verify");
const rounds = Number(opt("--rounds", quick ? 1 : 2));
const threadList = ints(opt("--threads", "1,2"));
const modelKinds = list(opt("--models", "unet,dit"));
const impls = list(opt("--impls", "ours,torch,torch_plain,ort"));
const batches = ints(opt("--batches", quick ? "1,16" : "1,16,64"));
const trainBatches = flag("--no-train") ? [] : ints(opt("--train-batches", quick ? "16" : "16,64"));
const stat = opt("--stat", "median");
// "medium": fastdiff with setMatmulPrecision("medium") (bf16 matmuls on AVX512-BF16) and PyTorch under
// torch.autocast("cpu", bfloat16); onnxruntime stays float32 (its CPU provider has no bf16 path).
const precision = opt("--precision", "high");
const timing = { warmup: 1, repeats: Number(opt("--repeats", quick ? 2 : 3)), minMs: Number(opt("--min-ms", quick ? 200 : 400)) };
// PyTorch runs in two environments (two columns):
//  "torch" (tuned): OpenBLAS's OpenMP build (libopenblas0-openmp, picked with LD_LIBRARY_PATH; the system default
//    stays the pthread build) so BLAS and torch share one OpenMP pool — with the pthread build the two pools fight
//    at 2 threads (PERF.md) — and glibc malloc told to keep freed memory (no page faults re-touching activations
//    every step: up to 1.5× at batch 64). The fastest PyTorch setup found on these machines.
//  "torch_plain": what bench/run.mjs and PERF.md's PyTorch figures use (Debian defaults, threads set).
const OPENBLAS_OMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp";
const torchEnv = (threads, kind) => {
  const env = { OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  if (kind === "torch") {
    if (fs.existsSync(path.join(OPENBLAS_OMP, "libblas.so.3"))) env.LD_LIBRARY_PATH = [OPENBLAS_OMP, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
    Object.assign(env, { MALLOC_MMAP_THRESHOLD_: String(32 << 20), MALLOC_TRIM_THRESHOLD_: String(16 * 2 ** 30), MALLOC_TOP_PAD_: String(512 << 20) });
  }
  return env;
};

// The machine is shared: CPU time used by other processes during a measurement (from /proc/stat minus this
// process and its waited-for children) makes the 2-thread numbers meaningless (spinning pools collapse).
// Each measurement waits for a quiet machine first and is retried when others used > maxForeign cores.
const maxForeign = Number(opt("--max-foreign", "0.1"));
const retries = Number(opt("--retries", "3"));
const maxWaitS = Number(opt("--max-wait", "600"));
let HZ = 100;
try {
  HZ = Number(execFileSync("getconf", ["CLK_TCK"]).toString()) || 100;
} catch {}
function cpuSnap() {
  const v = fs.readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).slice(1).map(Number);
  const busy = v.slice(0, 8).reduce((a, b) => a + b, 0) - v[3] - v[4];
  const st = fs.readFileSync("/proc/self/stat", "utf8");
  const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
  const own = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]); // utime stime cutime cstime
  return { busy, own, t: performance.now() };
}
const foreignSince = (a, b = cpuSnap()) => ((b.busy - a.busy) - (b.own - a.own)) / HZ / Math.max(1e-3, (b.t - a.t) / 1e3);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function waitQuiet() {
  const t0 = performance.now();
  let ok = 0;
  while (ok < 3 && performance.now() - t0 < maxWaitS * 1e3) {
    const a = cpuSnap();
    await sleep(1000);
    ok = foreignSince(a) < 0.05 ? ok + 1 : 0;
  }
  return (performance.now() - t0) / 1e3;
}
/** Runs `fn` (returns a result object) on a quiet machine; returns it with `foreign_cores` attached. */
async function measured(label, fn) {
  let best = null;
  for (let attempt = 0; attempt <= retries; ++attempt) {
    const waited = await waitQuiet();
    const a = cpuSnap();
    const r = await fn();
    const foreign = foreignSince(a);
    r.foreign_cores = foreign;
    r.waited_s = waited;
    if (!best || foreign < best.foreign_cores) best = r;
    if (foreign <= maxForeign) return r;
    console.log(`  (${label}: other processes used ${foreign.toFixed(2)} cores during the measurement; ${attempt < retries ? "retrying" : "keeping the quietest attempt"})`);
  }
  best.noisy = true;
  return best;
}

const hasTorch = spawnSync(PY, ["-c", "import torch"], { stdio: "ignore" }).status === 0;
function py(argv, extraEnv = {}) {
  return execFileSync(PY, [TORCH_SCRIPT, ...argv], { env: { ...process.env, ...extraEnv }, maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"] })
    .toString();
}

/** The model folder, its ONNX export and FLOP count; made on first use (needs PyTorch). */
function prepareModel(kind) {
  const dir = path.join(modelsDir, kind);
  const onnx = path.join(modelsDir, `${kind}.onnx`);
  const flopsFile = path.join(modelsDir, `${kind}.flops.json`);
  if (!fs.existsSync(path.join(dir, "diffusion_pytorch_model.safetensors"))) {
    if (!hasTorch) throw new Error(`${dir} is missing and PyTorch is not installed: run bash bench/setup-models.sh`);
    py(["--make-model", kind, dir]);
  }
  if (!fs.existsSync(onnx) && hasTorch) py(["--export-onnx", onnx, dir]);
  if (!fs.existsSync(flopsFile) && hasTorch) fs.writeFileSync(flopsFile, py(["--flops", dir]));
  const config = JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
  const flops = fs.existsSync(flopsFile) ? JSON.parse(fs.readFileSync(flopsFile, "utf8")) : null;
  const s = config.sample_size;
  const [H, W] = Array.isArray(s) ? s : [s, s];
  const numClasses = config._class_name === "DiTTransformer2DModel" ? config.num_embeds_ada_norm : config.num_class_embeds ?? 0;
  return {
    kind, dir, onnx: fs.existsSync(onnx) ? onnx : null, config, flops, numClasses,
    className: config._class_name, sampleShape: [config.in_channels, H, W],
    // forward FLOPs per image (conv + linear + attention matmuls); a training step counts 3× the forward.
    fwdFlops: flops?.total ?? null,
  };
}

// ------------------------------------------------------------------ fastdiff

let fd = null;
let fdReason = "";
async function loadFastdiff() {
  try {
    // FASTDIFF_BENCH_DIST: another build of the package entry (e.g. a worktree's dist/index.mjs)
    fd = await import(pathToFileURL(process.env.FASTDIFF_BENCH_DIST ?? path.join(root, "dist", "index.mjs")).href);
  } catch (e) {
    fdReason = `dist/index.mjs not loadable (${e.message.split("\n")[0]})`;
    return;
  }
  if (typeof fd.UNet?.load !== "function" || typeof fd.DiT?.load !== "function") {
    fdReason = "UNet/DiT not exported yet";
    fd = null;
  }
}

const fdNets = new Map();
async function fdNet(model) {
  if (!fdNets.has(model.kind)) {
    const Cls = model.className === "UNet2DModel" ? fd.UNet : fd.DiT;
    fdNets.set(model.kind, await Cls.load(model.dir));
  }
  return fdNets.get(model.kind);
}

function fdInputs(model, batch, seed) {
  const inp = jsInputs(model, batch, seed);
  const x = fd.tensor(inp.x, inp.shape);
  const t = fd.tensor(inp.t, [batch]);
  return { x, t, labels: inp.labels ? Array.from(inp.labels) : null };
}

async function timeOurs(model, threads) {
  fd.setNumThreads(threads);
  fd.setMatmulPrecision(precision);
  const net = await fdNet(model);
  const res = { threads, forward: {}, train: {} };
  net.eval();
  for (const b of batches) {
    const { x, t, labels } = fdInputs(model, b, 1000 + b);
    const opts = labels ? { classLabels: labels } : {};
    res.forward[b] = await timeIt(async () => {
      const out = fd.scope(() => fd.noGrad(() => net.forward(x, t, opts)));
      await out.data();
      out.dispose();
    }, timing);
    x.dispose();
    t.dispose();
  }
  if (trainBatches.length) {
    net.train();
    const opt = new fd.Adam(net.parameters(), { lr: 1e-4 });
    for (const b of trainBatches) {
      const { x, t, labels } = fdInputs(model, b, 2000 + b);
      const target = fd.randn(x.shape, { seed: 3000 + b });
      const opts = labels ? { classLabels: labels } : {};
      res.train[b] = await timeIt(() => {
        fd.scope(() => {
          const loss = fd.mseLoss(net.forward(x, t, opts), target);
          loss.backward();
          opt.step();
          opt.zeroGrad();
        });
        fd.synchronize();
      }, timing);
      for (const v of [x, t, target]) v.dispose();
    }
    opt.dispose?.();
    net.eval();
  }
  return res;
}

// ------------------------------------------------------------------ PyTorch and ORT (child processes)

function timeTorch(model, threads, kind) {
  const out = py([
    "--bench", model.dir, "--threads", String(threads), "--batches", batches.join(","),
    "--train-batches", trainBatches.join(","), "--repeats", String(timing.repeats), "--min-ms", String(timing.minMs),
    "--warmup", String(timing.warmup), ...(precision === "medium" ? ["--bf16"] : []),
  ], torchEnv(threads, kind));
  return JSON.parse(out);
}

function timeOrt(model, threads) {
  const job = { model: { onnx: model.onnx, sampleShape: model.sampleShape, numClasses: model.numClasses }, threads, batches, timing };
  const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, "--ort-worker", JSON.stringify(job)], {
    maxBuffer: 64 << 20, stdio: ["ignore", "pipe", "inherit"],
  });
  const res = JSON.parse(r.stdout.toString() || "{}");
  if (res.error || r.status !== 0) throw new Error(res.error ?? `ORT worker failed (${r.status})`);
  return res;
}

function ortAvailable() {
  return fs.existsSync(path.join(here, "node_modules", "onnxruntime-node"));
}

// ------------------------------------------------------------------ peak

/** FP32 FMA peak for the %-of-peak column: ../shared/PERF.md's figures for these machines (116 / 229 GFLOP/s),
 * stable across runs; `--measure-peak` runs build-bench/kbench_peak instead (noisy when the machine is busy). */
function peak() {
  const exe = path.join(root, "build-bench", "kbench_peak");
  if (flag("--measure-peak") && fs.existsSync(exe)) {
    try {
      return { source: "build-bench/kbench_peak", ...JSON.parse(execFileSync(exe).toString()) };
    } catch {}
  }
  return { source: "PERF.md", fma_gflops: { 1: 116, 2: 229 } };
}

// ------------------------------------------------------------------ verify mode

async function runVerify(models) {
  let bad = 0;
  const tol = 1e-4;
  for (const model of models) {
    const io = path.join(modelsDir, `${model.kind}.io.safetensors`);
    const B = 3; // not the export batch (2): checks the dynamic batch axis
    py(["--make-io", model.dir, String(B), io]);
    const ref = readSafetensors(io);
    console.log(`${model.kind} (${model.className}), batch ${B}, output ${JSON.stringify(ref.out.shape)}, max |torch out| ${ref.out.data.reduce((m, v) => Math.max(m, Math.abs(v)), 0).toFixed(3)}`);
    if (ortAvailable() && model.onnx) {
      for (const threads of [1, 2]) {
        const job = { model: { onnx: model.onnx }, io, threads };
        const r = spawnSync(process.execPath, [new URL(import.meta.url).pathname, "--ort-verify", JSON.stringify(job)], { stdio: ["ignore", "pipe", "inherit"] });
        const res = JSON.parse(r.stdout.toString() || "{}");
        const ok = res.max_abs_diff <= tol;
        bad += ok ? 0 : 1;
        console.log(`  onnxruntime-node (${threads} thread${threads > 1 ? "s" : ""}) vs PyTorch: max abs diff ${res.max_abs_diff?.toExponential(2)} ${ok ? "ok" : "FAIL"}`);
      }
    } else console.log("  onnxruntime-node: not available");
    if (fd) {
      const net = await fdNet(model);
      net.eval();
      const x = fd.tensor(Float32Array.from(ref.sample.data), ref.sample.shape);
      const t = fd.tensor(Float32Array.from(ref.timestep.data), [B]);
      const opts = ref.class_labels ? { classLabels: Array.from(ref.class_labels.data, Number) } : {};
      const out = fd.noGrad(() => net.forward(x, t, opts));
      const d = maxAbsDiff(await out.data(), ref.out.data);
      for (const v of [x, t, out]) v.dispose();
      const ok = d <= tol;
      bad += ok ? 0 : 1;
      console.log(`  fastdiff vs PyTorch: max abs diff ${d.toExponential(2)} ${ok ? "ok" : "FAIL"}`);
    } else console.log(`  fastdiff: not available (${fdReason})`);
    fs.rmSync(io, { force: true });
  }
  process.exit(bad ? 1 : 0);
}

// ------------------------------------------------------------------ paired mode
// The VM's speed drifts by ±15–20% within minutes — more than the ratios being measured — and the round-based
// table times the implementations minutes apart. Paired mode times one forward case as short blocks of fastdiff
// (this process) and onnxruntime-node (a worker process holding its session) in ABBA order, with a pause between
// blocks so neither thread pool is still spinning when the other starts. Drift slower than a pair cancels in that
// pair's ratio; the table reports the median ratio over pairs, its quartiles and the share of pairs ≥ 1.2×.
// Pairs during which other processes used > --max-foreign cores are dropped (and counted).

const median = (xs) => quantile(xs, 0.5);
function quantile(xs, q) {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return null;
  const i = (s.length - 1) * q, lo = Math.floor(i), hi = Math.ceil(i);
  return s[lo] + (s[hi] - s[lo]) * (i - lo);
}
/** user + system CPU seconds of a live process (the ORT worker: not in this process's cutime until it exits). */
function procCpu(pid) {
  const st = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / HZ;
}

async function pairedCase(m, threads, batch, pairs, blockMs, gapMs) {
  const job = { model: { onnx: m.onnx, sampleShape: m.sampleShape, numClasses: m.numClasses }, threads };
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname, "--ort-server", JSON.stringify(job)], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  let pending = null; // the one request in flight
  child.on("message", (r) => (r.error ? pending?.reject(new Error(r.error)) : pending?.resolve(r)));
  child.on("exit", (code) => pending?.reject(new Error(`ORT worker exited (${code})`)));
  const reply = () => new Promise((resolve, reject) => (pending = { resolve, reject }));
  const ort = async (iters) => {
    const r = reply();
    child.send({ batch, iters });
    return r;
  };
  try {
    await reply(); // ready
    fd.setNumThreads(threads);
    fd.setMatmulPrecision(precision);
    const net = await fdNet(m);
    net.eval();
    const { x, t, labels } = fdInputs(m, batch, 1000 + batch);
    const opts = labels ? { classLabels: labels } : {};
    const ours = async (iters) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < iters; ++i) {
        const out = fd.scope(() => fd.noGrad(() => net.forward(x, t, opts)));
        await out.data();
        out.dispose();
      }
      return { ms: Number(process.hrtime.bigint() - t0) / 1e6 / iters };
    };
    // warm-up (weights packed, caches and allocator filled), then block lengths from one timed call each
    await ours(3);
    const ortVersion = (await ort(3)).ort;
    const itersOf = (ms) => Math.max(1, Math.round(blockMs / Math.max(ms, 1e-3)));
    const oursIters = itersOf((await ours(1)).ms), ortIters = itersOf((await ort(1)).ms);
    await waitQuiet();
    const kept = [];
    let dropped = 0;
    for (let p = 0; p < pairs; ++p) {
      const pair = {};
      for (const impl of p % 2 === 0 ? ["ours", "ort"] : ["ort", "ours"]) {
        await sleep(gapMs);
        const a = cpuSnap(), c0 = procCpu(child.pid);
        const r = impl === "ours" ? await ours(oursIters) : await ort(ortIters);
        const childCores = (procCpu(child.pid) - c0) / Math.max(1e-3, (performance.now() - a.t) / 1e3);
        pair[impl] = r.ms;
        pair[`${impl}_foreign_cores`] = foreignSince(a) - childCores;
        if (impl === "ours") pair.ort_cores_during_ours = childCores; // ~0: its pool was idle, not spinning
      }
      if (Math.max(pair.ours_foreign_cores, pair.ort_foreign_cores) > maxForeign) dropped += 1;
      else kept.push({ ...pair, ratio: pair.ort / pair.ours });
    }
    x.dispose();
    t.dispose();
    const ratios = kept.map((q) => q.ratio);
    return {
      model: m.kind, threads, batch, name: `${m.kind} fwd b${batch}`, ort_version: ortVersion, iters: { ours: oursIters, ort: ortIters },
      pairs: kept, dropped, ours_ms: median(kept.map((q) => q.ours)), ort_ms: median(kept.map((q) => q.ort)),
      ratio_median: median(ratios), ratio_q1: quantile(ratios, 0.25), ratio_q3: quantile(ratios, 0.75),
      share_ge_1_2: ratios.length ? ratios.filter((r) => r >= 1.2).length / ratios.length : null,
    };
  } finally {
    if (child.connected) child.send("exit");
  }
}

async function runPaired(models, pairs) {
  const blockMs = Number(opt("--block-ms", "300")), gapMs = Number(opt("--gap-ms", "150"));
  const out = [];
  console.log(`paired: fastdiff vs onnxruntime-node, ${pairs} pairs per case (ABBA), blocks of ~${blockMs} ms, ${gapMs} ms apart`);
  console.log(`${"case".padEnd(14)} ${"thr".padStart(3)} ${"pairs".padStart(5)} ${"ours ms".padStart(9)} ${"ort ms".padStart(9)} ` +
    `${"ort/ours".padStart(8)} ${"q1–q3".padStart(11)} ${"≥1.2×".padStart(6)}`);
  for (const threads of threadList) {
    for (const m of models) {
      for (const b of batches) {
        const r = await pairedCase(m, threads, b, pairs, blockMs, gapMs);
        out.push(r);
        const f = (v, d = 2) => (v == null ? "-" : v.toFixed(d));
        console.log(`${r.name.padEnd(14)} ${String(threads).padStart(3)} ${`${r.pairs.length}/${pairs}`.padStart(5)} ${f(r.ours_ms).padStart(9)} ` +
          `${f(r.ort_ms).padStart(9)} ${(f(r.ratio_median) + "×").padStart(8)} ${`${f(r.ratio_q1)}–${f(r.ratio_q3)}`.padStart(11)} ` +
          `${(r.share_ge_1_2 == null ? "-" : `${Math.round(100 * r.share_ge_1_2)}%`).padStart(6)}`);
      }
    }
  }
  const commit = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).stdout?.toString().trim() || "unknown";
  const tag = opt("--tag", "");
  const file = path.join(here, "results", `models-paired-${new Date().toISOString().slice(0, 10)}${tag ? `-${tag}` : ""}.json`);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({
    date: new Date().toISOString(), commit, precision, cpu: os.cpus()[0]?.model, node: process.versions.node,
    pairs, block_ms: blockMs, gap_ms: gapMs, max_foreign_cores: maxForeign, cases: out,
  }, null, 2));
  console.log(`wrote ${path.relative(root, file)}`);
}

// ------------------------------------------------------------------ run

await loadFastdiff();
const models = modelKinds.map(prepareModel);
if (verify) await runVerify(models);
const pairedCount = Number(opt("--paired", "0"));
if (pairedCount > 0) {
  if (!fd) throw new Error(`--paired needs fastdiff (${fdReason})`);
  if (!ortAvailable() || models.some((m) => !m.onnx)) throw new Error("--paired needs onnxruntime-node and the ONNX exports (bash bench/setup-models.sh)");
  await runPaired(models, pairedCount);
  process.exit(0);
}

const active = impls.filter((i) => {
  if (i === "ours" && !fd) return console.log(`fastdiff: not available (${fdReason})`), false;
  if (i.startsWith("torch") && !hasTorch) return console.log("PyTorch: not available (bash bench/setup-torch.sh)"), false;
  if (!["ours", "torch", "torch_plain", "ort"].includes(i)) throw new Error(`unknown implementation ${i}`);
  if (i === "ort" && !ortAvailable()) return console.log("onnxruntime-node: not available (npm install --prefix bench)"), false;
  if (i === "ort" && models.some((m) => !m.onnx)) return console.log("onnxruntime-node: no ONNX export (needs PyTorch)"), false;
  return true;
});

const fma = peak();
const commit = spawnSync("git", ["rev-parse", "--short", "HEAD"], { cwd: root }).stdout?.toString().trim() || "unknown";
const machine = {
  cpu: fd?.devices?.().cpu?.brand ?? os.cpus()[0]?.model, cores: os.cpus().length, isa: fd?.getIsa?.() ?? null,
  node: process.versions.node,
};
console.log(`fastdiff network benchmarks — ${machine.cpu}, ${machine.cores} cores${machine.isa ? `, ${machine.isa}` : ""}, commit ${commit}`);
console.log(`FP32 FMA peak (${fma.source}): ${fma.fma_gflops["1"]} GFLOP/s (1 thread), ${fma.fma_gflops["2"]} GFLOP/s (2 threads)`);
for (const m of models) {
  console.log(`${m.kind}: ${m.className}, input ${m.sampleShape.join("×")}, ${m.flops ? `${(m.flops.parameters / 1e6).toFixed(2)}M params, ${(m.fwdFlops / 1e9).toFixed(3)} GFLOP/img forward` : "FLOPs unknown"}`);
}
console.log(`implementations: ${active.join(", ")}; ${rounds} round(s), ${stat} over rounds, ${timing.repeats} repeats ≥ ${timing.minMs} ms each`);
console.log(`PyTorch environments (2 threads): torch = ${Object.entries(torchEnv(2, "torch")).map(([k, v]) => `${k}=${v}`).join(" ")}; ` +
  `torch_plain = ${Object.entries(torchEnv(2, "torch_plain")).map(([k, v]) => `${k}=${v}`).join(" ")}\n`);

const NAMES = { ours: "fastdiff", torch: "PyTorch", torch_plain: "PyTorch (plain env)", ort: "onnxruntime-node" };
const cases = (m) => [
  ...batches.map((b) => ({ model: m, mode: "forward", batch: b, name: `${m.kind} fwd b${b}` })),
  ...trainBatches.map((b) => ({ model: m, mode: "train", batch: b, name: `${m.kind} train b${b}` })),
];
const rows = [];
const runs = [];
const versions = {};
for (const threads of threadList) {
  const peakG = fma.fma_gflops[String(threads)] ?? fma.fma_gflops["1"] * threads;
  // per (case name, impl): list of per-round medians
  const perRound = new Map();
  const put = (name, impl, ms) => {
    const k = `${name}|${impl}`;
    if (!perRound.has(k)) perRound.set(k, []);
    perRound.get(k).push(ms);
  };
  for (let round = 0; round < rounds; ++round) {
    const order = active.map((_, i) => active[(i + round) % active.length]);
    for (const m of models) {
      for (const impl of order) {
        let r;
        try {
          r = await measured(`${NAMES[impl]} ${m.kind} ${threads}T`, () =>
            impl === "ours" ? timeOurs(m, threads) : impl === "ort" ? timeOrt(m, threads) : timeTorch(m, threads, impl));
        } catch (e) {
          console.log(`${NAMES[impl]} failed on ${m.kind} (${threads}T): ${e.message.split("\n")[0]}`);
          continue;
        }
        runs.push({ threads, round, model: m.kind, impl, foreign_cores: r.foreign_cores, waited_s: r.waited_s, noisy: !!r.noisy, result: r });
        if (impl.startsWith("torch")) versions.torch = r.torch;
        if (impl === "ort") versions.ort = r.ort;
        for (const [b, v] of Object.entries(r.forward ?? {})) put(`${m.kind} fwd b${b}`, impl, v.ms);
        for (const [b, v] of Object.entries(r.train ?? {})) put(`${m.kind} train b${b}`, impl, v.ms);
      }
    }
  }
  const summarize = (xs) => {
    if (!xs?.length) return null;
    const s = [...xs].sort((a, b) => a - b);
    return stat === "best" ? s[0] : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
  };
  console.log(`${threads} thread${threads > 1 ? "s" : ""}${versions.torch ? ` (PyTorch ${versions.torch})` : ""}${versions.ort ? ` (onnxruntime-node ${versions.ort})` : ""}`);
  console.log(
    `${"case".padEnd(16)} ${"ours ms".padStart(9)} ${"torch ms".padStart(9)} ${"plain ms".padStart(9)} ${"ort ms".padStart(9)} ` +
      `${"vs best".padStart(8)} ${"vs plain".padStart(8)} ${"ours GF/s".padStart(9)} ${"%peak".padStart(5)} ${"peer GF/s".padStart(9)} ${"%peak".padStart(5)}`,
  );
  for (const m of models) {
    for (const c of cases(m)) {
      const ms = Object.fromEntries(["ours", "torch", "torch_plain", "ort"].map((i) => [i, summarize(perRound.get(`${c.name}|${i}`))]));
      const peers = [ms.torch, ms.ort].filter((v) => v != null);
      const bestPeer = peers.length ? Math.min(...peers) : null;
      const flops = m.fwdFlops ? m.fwdFlops * c.batch * (c.mode === "train" ? 3 : 1) : null;
      const rate = (v) => (flops && v ? flops / v / 1e6 : null);
      const row = {
        threads, model: m.kind, mode: c.mode, batch: c.batch, name: c.name,
        ours_ms: ms.ours, torch_ms: ms.torch, torch_plain_ms: ms.torch_plain, ort_ms: ms.ort,
        ours_rounds: perRound.get(`${c.name}|ours`) ?? [], torch_rounds: perRound.get(`${c.name}|torch`) ?? [],
        torch_plain_rounds: perRound.get(`${c.name}|torch_plain`) ?? [], ort_rounds: perRound.get(`${c.name}|ort`) ?? [],
        best_peer: bestPeer == null ? null : bestPeer === ms.torch ? "torch" : "ort",
        speedup_vs_best_peer: ms.ours && bestPeer ? bestPeer / ms.ours : null,
        speedup_vs_torch: ms.ours && ms.torch ? ms.torch / ms.ours : null,
        speedup_vs_torch_plain: ms.ours && ms.torch_plain ? ms.torch_plain / ms.ours : null,
        torch_plain_gflops: rate(ms.torch_plain), torch_plain_pct_peak: rate(ms.torch_plain) ? (100 * rate(ms.torch_plain)) / peakG : null,
        flops, ours_gflops: rate(ms.ours), ours_pct_peak: rate(ms.ours) ? (100 * rate(ms.ours)) / peakG : null,
        peer_gflops: rate(bestPeer), peer_pct_peak: rate(bestPeer) ? (100 * rate(bestPeer)) / peakG : null,
      };
      rows.push(row);
      const f = (v, d = 2) => (v == null ? "-" : v.toFixed(d));
      console.log(
        `${c.name.padEnd(16)} ${f(ms.ours).padStart(9)} ${f(ms.torch).padStart(9)} ${f(ms.torch_plain).padStart(9)} ${f(ms.ort).padStart(9)} ` +
          `${(row.speedup_vs_best_peer ? row.speedup_vs_best_peer.toFixed(2) + "×" : "-").padStart(8)} ` +
          `${(row.speedup_vs_torch_plain ? row.speedup_vs_torch_plain.toFixed(2) + "×" : "-").padStart(8)} ` +
          `${f(row.ours_gflops, 1).padStart(9)} ${(row.ours_pct_peak ? row.ours_pct_peak.toFixed(0) + "%" : "-").padStart(5)} ` +
          `${f(row.peer_gflops, 1).padStart(9)} ${(row.peer_pct_peak ? row.peer_pct_peak.toFixed(0) + "%" : "-").padStart(5)}`,
      );
    }
  }
  console.log("");
}
const dir = path.join(here, "results");
fs.mkdirSync(dir, { recursive: true });
const tag = opt("--tag", "");
const file = path.join(dir, `models-${new Date().toISOString().slice(0, 10)}${tag ? `-${tag}` : ""}.json`);
fs.writeFileSync(file, JSON.stringify({
  date: new Date().toISOString(), precision, commit, machine, versions, rounds, stat, timing, impls: active,
  torch_env: { torch: torchEnv(2, "torch"), torch_plain: torchEnv(2, "torch_plain") }, max_foreign_cores: maxForeign,
  fma_peak_gflops: fma.fma_gflops, peak_source: fma.source,
  models: models.map((m) => ({ kind: m.kind, className: m.className, config: m.config, flops_per_image: m.flops })),
  flops_note: "forward FLOPs per image = 2·MACs of Conv2d, Linear and the two attention matmuls (bench/torch_models.py --flops); a training step counts 3× the forward",
  rows,
  runs,
}, null, 2));
console.log(`wrote ${path.relative(root, file)}`);
