#!/usr/bin/env node
// Where a forward's time goes, per op, in fastdiff and in onnxruntime-node side by side (issue 3): the same
// model (bench/models-tmp, `bash bench/setup-models.sh`), batch and thread count; fastdiff's per-kernel times
// from its profiler (`setProfiling`), onnxruntime's from its session profile (one JSON event per node run).
// Both profilers add per-op overhead (onnxruntime's ~2 ms per DiT forward at batch 1), so the unprofiled
// medians are printed too; compare ops, not totals.
//
// Usage: node bench/op-profile.mjs [--model dit|unet] [--batch 1] [--threads 1] [--iters 40]
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createRequire } from "node:module";
import { ortSessionOptions } from "./ort-session.mjs";

const here = path.dirname(new URL(import.meta.url).pathname);
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const kind = opt("--model", "dit");
const batch = Number(opt("--batch", 1));
const threads = Number(opt("--threads", 1));
const iters = Number(opt("--iters", 40));
const warmup = 10;

const fd = await import(path.join(here, "..", "dist", "index.mjs"));
const ort = createRequire(path.join(here, "package.json"))("onnxruntime-node");
const dir = path.join(here, "models-tmp", kind);
const conditional = kind === "dit";
const x = Float32Array.from({ length: batch * 784 }, (_, i) => Math.sin(i * 12.9898) * 0.8);
const t = new Float32Array(batch).fill(500);
const labels = Int32Array.from({ length: batch }, (_, i) => i % 10);
const median = (v) => [...v].sort((a, b) => a - b)[v.length >> 1];

async function timeLoop(run) {
  for (let i = 0; i < warmup; ++i) await run();
  const ms = [];
  for (let i = 0; i < iters; ++i) {
    const t0 = performance.now();
    await run();
    ms.push(performance.now() - t0);
  }
  return median(ms);
}

// ---- fastdiff
fd.setNumThreads(threads);
const net = await (kind === "unet" ? fd.UNet : fd.DiT).load(dir);
net.eval();
const xs = fd.tensor(x, [batch, 1, 28, 28]);
const ts = fd.tensor(t, [batch]);
const opts = conditional ? { classLabels: Array.from(labels) } : {};
const ours = async () => {
  const o = fd.scope(() => fd.noGrad(() => net.forward(xs, ts, opts)));
  await o.data();
  o.dispose();
};
const oursMs = await timeLoop(ours);
fd.setProfiling(true);
fd.profile({ reset: true });
for (let i = 0; i < iters; ++i) await ours();
const oursOps = fd.profile().map((r) => ({ op: r.op, calls: r.calls / iters, ms: (r.seconds * 1e3) / iters }));
fd.setProfiling(false);

// ---- onnxruntime-node (its node binding runs a session synchronously on the JS thread)
const sessionOptions = ortSessionOptions(threads);
const feeds = {
  sample: new ort.Tensor("float32", x, [batch, 1, 28, 28]),
  timestep: new ort.Tensor("float32", t, [batch]),
};
if (conditional) feeds.class_labels = new ort.Tensor("int64", BigInt64Array.from(labels, BigInt), [batch]);
const onnx = path.join(here, "models-tmp", `${kind}.onnx`);
const plain = await ort.InferenceSession.create(onnx, sessionOptions);
const ortMs = await timeLoop(() => plain.run(feeds));
const prefix = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "ort-profile-")), "p");
const profiled = await ort.InferenceSession.create(onnx, { ...sessionOptions, enableProfiling: true, profileFilePrefix: prefix });
for (let i = 0; i < warmup + iters; ++i) await profiled.run(feeds);
profiled.endProfiling();
const file = fs.readdirSync(path.dirname(prefix)).map((f) => path.join(path.dirname(prefix), f))[0];
const events = JSON.parse(fs.readFileSync(file, "utf8"));
fs.rmSync(path.dirname(prefix), { recursive: true, force: true });
const runs = events.filter((e) => e.cat === "Session" && e.name === "model_run").sort((a, b) => a.ts - b.ts);
const from = runs[warmup].ts;
const byOp = new Map();
for (const e of events) {
  if (e.cat !== "Node" || !e.name.endsWith("_kernel_time") || e.ts < from) continue;
  // Per op type and, for the matrix products, per input → output shape (which layer it is; weights, being
  // initializers, are not listed).
  const dims = (list) => (list ?? []).map((s) => Object.values(s)[0].join("×")).join(", ");
  const key = /MatMul|Gemm|Conv/.test(e.args.op_name)
    ? `${e.args.op_name} [${dims(e.args.input_type_shape)}] → [${dims(e.args.output_type_shape)}]`
    : e.args.op_name;
  const r = byOp.get(key) ?? { op: key, calls: 0, ms: 0 };
  r.calls += 1 / iters;
  r.ms += e.dur / 1e3 / iters;
  byOp.set(key, r);
}
const ortOps = [...byOp.values()].sort((a, b) => b.ms - a.ms);

const table = (title, rows) => {
  const total = rows.reduce((s, r) => s + r.ms, 0);
  console.log(`\n${title}: ${total.toFixed(2)} ms of kernels per forward (profiled)`);
  for (const r of rows.filter((q) => q.ms >= 0.005))
    console.log(`  ${r.op.padEnd(70)} ${r.calls.toFixed(0).padStart(4)} × ${(r.ms * 1e3 / r.calls).toFixed(1).padStart(8)} µs = ${r.ms.toFixed(3).padStart(8)} ms`);
};
console.log(`${kind} forward, batch ${batch}, ${threads} thread(s): unprofiled medians fastdiff ${oursMs.toFixed(2)} ms, onnxruntime ${ortMs.toFixed(2)} ms (${(ortMs / oursMs).toFixed(2)}×)`);
table("fastdiff", oursOps);
table("onnxruntime-node", ortOps);
