// `fastdiff sample`: images from a model as a PNG grid (and optionally the raw samples for `fastdiff eval`).
import { writeFileAtomic } from "../io/atomic";
import { encodePng, saveImageGrid, scatterPlot } from "../io/png";
import { flopsIssued, setNumThreads } from "../device";
import { Student } from "../distill/student";
import { loadCacheProfile, type CacheProfile } from "../sampling/cache-profile";
import type { FeatureReuseOptions } from "../sampling/feature-reuse";
import { SOLVERS, type SolverName } from "../sampling/solvers";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";
import type { Tensor } from "../tensor";
import { generate, modelPath, openModel, saveSamples } from "./generate";
import { Progress } from "./progress";

export const SAMPLE_FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", help: "diffusers folder, .safetensors file or shipped name", default: "mnist-teacher" },
  n: { type: "int", help: "number of samples", min: 1, default: 64 },
  steps: { type: "int", help: "solver steps", min: 1, default: 18 },
  solver: { type: "string", help: "solver", choices: SOLVERS, default: "heun" },
  class: { type: "string", help: "class label, or 'all' for balanced classes [all]" },
  guidance: { type: "number", help: "classifier-free guidance scale (1: off)", min: 0, default: 1 },
  seed: { type: "int", help: "seed", min: 0, default: 0 },
  batch: { type: "int", help: "samples per batch", min: 1, default: 250 },
  out: { type: "string", help: "PNG grid", default: "samples.png" },
  nrow: { type: "int", help: "images per grid row", min: 1 },
  save: { type: "string", help: "also write the samples (+ labels) as .safetensors for 'fastdiff eval'" },
  interval: { type: "int", help: "FRDiff feature reuse: a keyframe every M evaluations (1: off)", min: 1 },
  "score-mixing": { type: "bool", help: "FRDiff score mixing (early non-keyframes jump; needs --interval)" },
  "mixing-slope": { type: "number", help: "score mixing with this ramp slope [30]; negative: reuse early, jump late (needs --interval)" },
  deepcache: { type: "bool", help: "reuse the deep branch instead of FRDiff's points (needs --interval)" },
  "cache-profile": { type: "string", help: "a cache profile from 'fastdiff tune-cache' (the plan it learned)" },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
  json: { type: "bool", help: "progress and result as JSON lines on stdout" },
};
export const SAMPLE_HELP = `fastdiff sample [options]\n\n${flagHelp(SAMPLE_FLAGS)}`;

export function parseClass(value: string | undefined): number | "all" | undefined {
  if (value === undefined || value === "all") return value;
  const c = Number(value);
  if (!Number.isInteger(c) || c < 0) throw new UsageError(`--class must be a non-negative integer or 'all', got '${value}'`);
  return c;
}

/** --interval / --score-mixing / --mixing-slope / --deepcache / --cache-profile as sample's featureReuse. */
export async function featureReuseArgs(a: Record<string, unknown>): Promise<FeatureReuseOptions | CacheProfile | undefined> {
  const interval = a["interval"] as number | undefined;
  const profile = a["cache-profile"] as string | undefined;
  const slope = a["mixing-slope"] as number | undefined;
  const planFlags = a["score-mixing"] || slope !== undefined || a["deepcache"];
  if (profile !== undefined) {
    if (interval !== undefined || planFlags) throw new UsageError("--cache-profile carries its own plan: drop --interval, --score-mixing, --mixing-slope, --deepcache");
    return loadCacheProfile(profile);
  }
  if (interval === undefined) {
    if (planFlags) throw new UsageError("--score-mixing, --mixing-slope and --deepcache need --interval");
    return undefined;
  }
  const scoreMixing = slope !== undefined ? { slope } : Boolean(a["score-mixing"]);
  return { interval, scoreMixing, mode: a["deepcache"] ? "deepcache" : "frdiff" };
}

/** Samples drawn by a model or a student, with what they cost. */
interface Drawn {
  samples: Tensor;
  labels: Int32Array | null;
  numClasses: number;
  nfePerSample: number;
  flops: number;
  seconds: number;
}

/** A distilled student: its own few-step generation (no solver, no guidance, no feature reuse). */
async function drawFromStudent(path: string, a: Record<string, unknown>, cls: number | "all" | undefined): Promise<Drawn> {
  if (a["interval"] !== undefined || a["cache-profile"] !== undefined) throw new UsageError("sample: a distilled student has no feature reuse (drop --interval / --cache-profile)");
  if (a["guidance"] !== 1) throw new UsageError("sample: a distilled student samples without guidance (drop --guidance)");
  const student = await Student.load(path);
  try {
    const n = a["n"] as number;
    const k = student.denoiser.numClasses;
    if (k === 0 && typeof cls === "number") throw new UsageError("sample: this student is unconditional: drop --class");
    if (typeof cls === "number" && cls >= k) throw new UsageError(`sample: --class must be below ${k}, got ${cls}`);
    const labels = k === 0 ? null : Int32Array.from({ length: n }, (_, i) => (typeof cls === "number" ? cls : i % k));
    const flops0 = flopsIssued();
    const started = performance.now();
    const samples = await student.generate(n, { seed: a["seed"] as number, classLabels: labels, batch: a["batch"] as number });
    return { samples, labels, numClasses: k, nfePerSample: student.steps, flops: flopsIssued() - flops0, seconds: (performance.now() - started) / 1000 };
  } finally {
    student.dispose();
  }
}

async function drawFromModel(spec: string, a: Record<string, unknown>, cls: number | "all" | undefined, json: boolean): Promise<Drawn> {
  const featureReuse = await featureReuseArgs(a);
  const model = await openModel(spec);
  try {
    const progress = new Progress({ task: "sample", total: 0, unit: "step", json });
    const r = await generate(model, {
      n: a["n"] as number, steps: a["steps"] as number, solver: a["solver"] as SolverName, classes: cls ?? (model.numClasses > 0 ? "all" : null),
      guidance: a["guidance"] as number, seed: a["seed"] as number, batch: a["batch"] as number, featureReuse,
      onStep: (done, total, nfe) => progress.update(done, { nfe }, undefined, total),
    });
    progress.finish();
    return { ...r, numClasses: model.numClasses, nfePerSample: r.nfe / Math.ceil((a["n"] as number) / (a["batch"] as number)) };
  } finally {
    model.network.dispose();
  }
}

export async function sampleCommand(argv: string[]): Promise<number> {
  const a = parseArgs("sample", argv, SAMPLE_FLAGS);
  if (a._.length > 0) throw new UsageError(`sample: unexpected argument '${a._[0]}'`);
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const json = Boolean(a["json"]);
  const cls = parseClass(a["class"] as string | undefined);
  const spec = a["model"] as string;
  const student = Student.isStudent(modelPath(spec));
  const result = student ? await drawFromStudent(modelPath(spec), a, cls) : await drawFromModel(spec, a, cls, json);
  const n = a["n"] as number;
  try {
    const out = a["out"] as string;
    const nrow = (a["nrow"] as number | undefined) ?? (result.numClasses > 0 && cls === undefined ? result.numClasses : Math.ceil(Math.sqrt(n)));
    if (result.samples.rank === 4) await saveImageGrid(result.samples, out, { nrow });
    else if (result.samples.shape[1] === 2) {
      const plot = scatterPlot(result.samples);
      await writeFileAtomic(out, encodePng(plot.data, plot.width, plot.height, 1));
    } else throw new UsageError(`sample: a PNG needs images or 2-D points; these samples are ${JSON.stringify(result.samples.shape)} (use --save)`);
    const save = a["save"] as string | undefined;
    const how: Record<string, string> = student ? { student: "one network evaluation per step" } : { solver: a["solver"] as string, steps: String(a["steps"]) };
    if (save) await saveSamples(save, result.samples, result.labels, { model: spec, ...how });
    const summary = {
      n, nfePerSample: result.nfePerSample, gflopsPerSample: result.flops / n / 1e9, seconds: result.seconds, grid: out, samples: save ?? null, student,
    };
    if (json) process.stdout.write(`${JSON.stringify({ event: "done", task: "sample", ...summary })}\n`);
    else {
      const each = `${summary.nfePerSample} network evaluation${summary.nfePerSample === 1 ? "" : "s"}${student ? " (distilled student)" : ""}, ${summary.gflopsPerSample.toFixed(2)} GFLOP each`;
      console.log(`${n} samples (${each}) in ${result.seconds.toFixed(1)} s → ${out}${save ? ` and ${save}` : ""}`);
    }
    return 0;
  } finally {
    result.samples.dispose();
  }
}
