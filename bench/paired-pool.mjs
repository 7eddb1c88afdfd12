#!/usr/bin/env node
// Pools the pairs of several `node bench/models.mjs --paired N` runs, case by case: one run's ratio follows the
// VM's mode of the moment (onnxruntime's forward moves ±12% between processes here), so a goal like "≥ 1.2× the
// faster peer" is read over many runs. Per case (model, batch, threads): runs, pairs, median ratio
// (onnxruntime / fastdiff), q1–q3, the share of pairs ≥ --goal, and each run's median.
//
// Usage: node bench/paired-pool.mjs bench/results/models-paired-<date>-<tag>.json ... [--goal 1.2] [--json]
import * as fs from "node:fs";

const args = process.argv.slice(2);
const flagValue = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const goal = Number(flagValue("--goal", "1.2"));
const asJson = args.includes("--json");
const files = args.filter((a, i) => !a.startsWith("--") && args[i - 1] !== "--goal");
if (files.length === 0 || !Number.isFinite(goal)) {
  console.error("usage: node bench/paired-pool.mjs <models-paired-*.json> ... [--goal 1.2] [--json]");
  process.exit(2);
}

/** The q-quantile of sorted values (linear interpolation). */
function quantile(sorted, q) {
  const at = (sorted.length - 1) * q, lo = Math.floor(at), hi = Math.ceil(at);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo);
}

const cases = new Map();
for (const file of files) {
  const run = JSON.parse(fs.readFileSync(file, "utf8"));
  if (!Array.isArray(run.cases)) throw new Error(`${file}: not a --paired result (no "cases")`);
  for (const c of run.cases) {
    const ratios = (c.pairs ?? []).map((p) => p.ratio).filter(Number.isFinite);
    if (ratios.length === 0) continue;
    const key = `${c.model} fwd b${c.batch} ${c.threads}T`;
    if (!cases.has(key)) cases.set(key, { model: c.model, batch: c.batch, threads: c.threads, ratios: [], runs: [] });
    const entry = cases.get(key);
    entry.ratios.push(...ratios);
    entry.runs.push({ file, commit: run.commit, median: c.ratio_median });
  }
}

const rows = [...cases.values()].map((c) => {
  const sorted = [...c.ratios].sort((a, b) => a - b);
  return {
    model: c.model, batch: c.batch, threads: c.threads, runs: c.runs.length, pairs: sorted.length,
    median: quantile(sorted, 0.5), q1: quantile(sorted, 0.25), q3: quantile(sorted, 0.75),
    shareAtGoal: sorted.filter((r) => r >= goal).length / sorted.length,
    runMedians: c.runs.map((r) => r.median),
  };
});
rows.sort((a, b) => a.threads - b.threads || a.model.localeCompare(b.model) || a.batch - b.batch);

if (asJson) {
  console.log(JSON.stringify({ goal, files, cases: rows }, null, 2));
} else {
  console.log(`case              runs pairs  median    q1–q3       ≥${goal}×  run medians`);
  for (const r of rows) {
    const name = `${r.model} fwd b${r.batch} ${r.threads}T`.padEnd(17);
    const runs = r.runMedians.map((m) => (Number.isFinite(m) ? m.toFixed(2) : "–")).join(" ");
    console.log(`${name} ${String(r.runs).padStart(4)} ${String(r.pairs).padStart(5)}  ${r.median.toFixed(3)}×  ` +
      `${r.q1.toFixed(2)}–${r.q3.toFixed(2)}  ${(100 * r.shareAtGoal).toFixed(0).padStart(4)}%   ${runs}`);
  }
}
