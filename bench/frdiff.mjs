// FRDiff benchmark (issue 5): feature reuse, score mixing and Auto-FR against full N-step DDIM (N = --steps, 50 by
// default) and against plain fewer-step DDIM at the same wall time, on a shipped teacher, n samples from the same
// noise per config.
//
//   node bench/frdiff.mjs --model mnist-teacher --phase quality [--n 2000] [--batch 250] [--threads 1] [--tune-iterations 30]
//                         [--steps 50] [--ddim-ks 8,10,12]  (extra plain DDIM-k rows) [--tag name] (a separate result file)
//                         [--guidance w]  (classifier-free guidance for every config, Auto-FR tuning included)
//                         [--configs ddim50,ddim12,...]  (only these configs, in this phase)
//                         [--plans '{"name": {featureReuse options}}']  (extra reuse plans as rows)
//   node bench/frdiff.mjs --model mnist-teacher --phase timing [--repeats 2]  (quiet machine: fastest of 2 runs of one batch)
//   node bench/frdiff.mjs --model mnist-teacher --phase matched     (plain DDIM-k at each plan's wall time; then timing again)
//
// Every config samples the same class-balanced labels (i mod 10) from the same noise (batch b: seed b, like
// `fastdiff sample`). Quality: NFE and network GFLOPs per sample (the GEMM-class FLOP counter), FD to the 1,996 test
// digits, classifier accuracy, FD to the full-compute samples and their mean per-sample RMS distance. Timing: the
// wall time of one batch per config (after one warm-up run; the fastest of --repeats runs, since neighbours on
// the shared machine slow single runs by up to 1.5×), speedup over full DDIM-50. Resumable: each
// config's samples go to runs/frdiff/<model>/<config>.safetensors and its row to bench/results/frdiff-<model>.json.
import * as fs from "node:fs";
import * as path from "node:path";
import { args, fd, here, root, meanRmsDistance } from "./common.mjs";


const model = args.model ?? "mnist-teacher";
const n = Number(args.n ?? 2000);
const batch = Number(args.batch ?? 250);
const threads = Number(args.threads ?? fd.getNumThreads());
const tuneIterations = Number(args["tune-iterations"] ?? 30);
const phase = args.phase ?? "quality";
const repeats = Number(args.repeats ?? 2); // timing: the fastest of this many runs per plan (the machine is shared)
const steps = Number(args.steps ?? 50);
const guidance = args.guidance !== undefined ? Number(args.guidance) : undefined;
const only = args.configs ? new Set(String(args.configs).split(",")) : null;
const fullName = `ddim${steps}`;
fd.setNumThreads(threads);

const tag = args.tag ? `-${args.tag}` : ""; // a trial run beside the real one
const runDir = path.join(root, "runs", "frdiff", model + tag);
const resultFile = path.join(here, "results", `frdiff-${model}${tag}.json`);
const profileDir = path.join(here, "results", `profiles${tag}`);
fs.mkdirSync(runDir, { recursive: true });
fs.mkdirSync(profileDir, { recursive: true });
const results = fs.existsSync(resultFile) ? JSON.parse(fs.readFileSync(resultFile, "utf8")) : { rows: {} };
results.model = model;
results.n = n;
if (guidance !== undefined) results.guidance = guidance;
results[phase === "timing" ? "timingThreads" : "qualityThreads"] = threads;
const save = () => fd.writeFileAtomicSync(resultFile, JSON.stringify(results, null, 2) + "\n");

const denoiser = await fd.Denoiser.load(path.join(root, "models", model));
const labels = Int32Array.from({ length: n }, (_, i) => i % 10);

/** Samples all n with `options` (batch b from seed b); returns samples and totals. */
async function generate(name, options) {
  const file = path.join(runDir, `${name}.safetensors`);
  const sidecar = `${file}.json`;
  if (fs.existsSync(file) && fs.existsSync(sidecar)) return { samples: await loadSamples(name), ...JSON.parse(fs.readFileSync(sidecar, "utf8")) };
  const parts = [];
  let nfe = 0, flops = 0, ms = 0, stats = null;
  for (let b = 0, lo = 0; lo < n; ++b, lo += batch) {
    const hi = Math.min(n, lo + batch);
    const r = await fd.sampleWithStats(denoiser, { ...options, n: hi - lo, seed: b, classLabels: labels.subarray(lo, hi) });
    nfe += r.nfe * (hi - lo);
    flops += r.flops;
    ms += r.elapsedMs;
    stats = r.featureReuse ?? null;
    parts.push(r.samples);
    process.stdout.write(`  ${name}: ${hi}/${n} (${(ms / 1000).toFixed(0)} s)\r`);
  }
  const samples = fd.concat(parts, 0);
  for (const p of parts) p.dispose();
  await fd.writeSafetensors(file, { samples });
  const totals = { nfePerSample: nfe / n, gflopsPerSample: flops / n / 1e9, seconds: ms / 1000, featureReuse: stats };
  fd.writeFileAtomicSync(sidecar, JSON.stringify(totals));
  return { samples, ...totals };
}

async function loadSamples(name) {
  const { tensors } = await fd.readSafetensors(path.join(runDir, `${name}.safetensors`));
  return tensors.get("samples");
}

const test = fd.datasets.mnist({ split: "test" }).all().x;
const featureNet = await fd.FeatureNet.load();

/** Runs (or resumes) one config and scores it. */
async function row(name, options, extra = {}) {
  if (results.rows[name]?.fdTest !== undefined) return results.rows[name];
  console.log(`${name} ...`);
  const g = await generate(name, options);
  // The full-compute reference (regenerated from the same seeds when runs/ was cleared).
  const full = name === fullName ? g.samples : (await generate(fullName, base)).samples;
  const vsTest = await fd.evaluate(g.samples, test, { metrics: ["fd", "accuracy"], classLabels: labels, featureNet });
  const vsFull = name === fullName ? { fd: 0 } : await fd.evaluate(g.samples, full, { metrics: ["fd"], featureNet });
  const distance = meanRmsDistance(g.samples, full);
  const r = {
    ...extra, nfe: g.nfePerSample, gflops: g.gflopsPerSample, qualitySeconds: g.seconds,
    fdTest: vsTest.fd, accuracy: vsTest.accuracy, fdFull: vsFull.fd, distance, featureReuse: g.featureReuse,
  };
  if (name !== fullName) full.dispose();
  g.samples.dispose();
  results.rows[name] = r;
  save();
  console.log(`${name}: ${JSON.stringify(r)}`);
  return r;
}

const base = { solver: "ddim", steps, ...(guidance !== undefined ? { guidance } : {}) };
const configs = [[fullName, base, { kind: "full", plan: `DDIM-${steps}, full compute`, steps }]];
for (const mixing of [false, true]) {
  for (const interval of [2, 3, 4]) {
    configs.push([`fr-i${interval}${mixing ? "-mix" : ""}`, { ...base, featureReuse: { interval, scoreMixing: mixing } }, {
      kind: "frdiff", plan: `FRDiff interval ${interval}${mixing ? " + score mixing" : ""}`,
    }]);
  }
}
// Score mixing with the ramp reversed (slope −30: reuse early, jump late), where bench/frdiff-steps.mjs finds reuse
// closer to full compute than the jump on the shipped teachers.
for (const interval of [2, 3]) {
  configs.push([`fr-i${interval}-mixrev`, { ...base, featureReuse: { interval, scoreMixing: { slope: -30 } } }, {
    kind: "frdiff", plan: `FRDiff interval ${interval} + reversed score mixing (slope −30)`,
  }]);
}
configs.push(["deepcache-i3", { ...base, featureReuse: { interval: 3, mode: "deepcache" } }, { kind: "deepcache", plan: "DeepCache interval 3 (branch 0)" }]);
const profileFile = (speedup) => path.join(profileDir, `${model}-${fullName}-${speedup}x.json`);
for (const speedup of [1.5, 2, 3]) {
  configs.push([`auto-${speedup}x`, { ...base, featureReuse: { profile: profileFile(speedup), speedup } }, {
    kind: "auto-fr", plan: `Auto-FR, budget ${speedup}x (${path.relative(root, profileFile(speedup))})`,
  }]);
}
// Extra reuse plans: --plans '{"name": {featureReuse options}, ...}' (e.g. explicit keyframes and skips).
for (const [name, featureReuse] of Object.entries(JSON.parse(args.plans ?? "{}"))) {
  configs.push([name, { ...base, featureReuse }, { kind: "plan", plan: `${name}: ${JSON.stringify(featureReuse)}` }]);
}
const ddimRow = (k) => [`ddim${k}`, { ...base, steps: k }, { kind: "ddim", plan: `DDIM-${k}, full compute`, steps: k }];
for (const k of String(args["ddim-ks"] ?? "").split(",").filter(Boolean).map(Number)) {
  if (!(Number.isInteger(k) && k >= 1 && k < steps)) throw new Error(`--ddim-ks: ${k} is not a step count in [1, ${steps})`);
  if (!results.rows[`ddim${k}`]) configs.push(ddimRow(k));
}
for (const [name, r] of Object.entries(results.rows)) if (r.kind === "ddim") configs.push(ddimRow(r.steps));

/** Options with an Auto-FR profile loaded (tuned first when missing). */
async function resolve(options) {
  const spec = options.featureReuse;
  if (!spec?.profile) return options;
  if (!fs.existsSync(spec.profile)) {
    console.log(`tuning Auto-FR for ${spec.speedup}x ...`);
    const t0 = performance.now();
    const profile = await fd.tuneFeatureReuse(denoiser, {
      solver: "ddim", steps, guidance, budget: { speedup: spec.speedup }, iterations: tuneIterations, validation: Math.min(batch, 125),
      onProgress: (p) => process.stdout.write(`  it ${p.iteration}/${p.iterations} distance ${p.distance.toFixed(4)} cost ${p.cost.toFixed(3)}\r`),
    });
    profile.tuning.seconds = (performance.now() - t0) / 1000;
    await fd.saveCacheProfile(profile, spec.profile);
  }
  return { ...options, featureReuse: await fd.loadCacheProfile(spec.profile) };
}

if (phase === "quality") {
  for (const [name, options, meta] of configs) if (!only || only.has(name)) await row(name, await resolve(options), meta);
} else if (phase === "timing") {
  // warm-up (allocator, thread pool, weights in cache), then one batch per config
  (await fd.sampleWithStats(denoiser, { solver: "ddim", steps: 3, n: batch, seed: 0, classLabels: labels.subarray(0, batch) })).samples.dispose();
  for (const [name, options] of configs) {
    if (!results.rows[name] || (only && !only.has(name))) continue;
    const o = await resolve(options);
    const labelsB = labels.subarray(0, batch);
    const times = [];
    for (let rep = 0; rep < repeats; ++rep) {
      const r = await fd.sampleWithStats(denoiser, { ...o, n: batch, seed: 0, classLabels: labelsB });
      r.samples.dispose();
      times.push(r.elapsedMs / 1000);
    }
    results.rows[name].batchSeconds = Math.min(...times);
    results.rows[name].batchSecondsAll = times;
    console.log(`${name}: ${times.map((t) => t.toFixed(2)).join(", ")} s per batch of ${batch}`);
  }
  const fullTime = results.rows[fullName].batchSeconds;
  for (const r of Object.values(results.rows)) if (r.batchSeconds) r.speedup = fullTime / r.batchSeconds;
  results.timingBatch = batch;
  save();
} else if (phase === "matched") {
  const fullTime = results.rows[fullName].batchSeconds;
  const ks = new Set();
  for (const r of Object.values(results.rows)) if (r.kind !== "full" && r.kind !== "ddim" && r.batchSeconds) ks.add(Math.max(1, Math.round((steps * r.batchSeconds) / fullTime)));
  for (const k of [...ks].sort((a, b) => a - b)) await row(...ddimRow(k));
}
console.log(`${phase} done → ${path.relative(root, resultFile)}`);
