// `fastdiff tune-cache`: Auto-FR — learn a feature-reuse plan for a model, solver and step count under a speedup
// or quality budget, and save it as a cache profile (`fastdiff sample --cache-profile`, `sample({ featureReuse })`).
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { setNumThreads } from "../device";
import { tuneFeatureReuse } from "../sampling/auto-fr";
import { saveCacheProfile } from "../sampling/cache-profile";
import type { SolverName } from "../sampling/solvers";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";
import { modelPath, openModel } from "./generate";
import { Progress } from "./progress";

const DETERMINISTIC = ["euler", "ddim", "heun", "dpmpp2m"] as const;

export const TUNE_CACHE_FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", help: "diffusers folder, .safetensors file or shipped name", default: "mnist-teacher" },
  solver: { type: "string", help: "solver (deterministic)", choices: DETERMINISTIC, default: "ddim" },
  steps: { type: "int", help: "solver steps", min: 2, default: 50 },
  speedup: { type: "number", help: "budget: wall-clock speedup over full compute to reach", min: 1 },
  "max-distance": { type: "number", help: "budget: largest mean RMS distance to the full-compute samples", min: 0 },
  guidance: { type: "number", help: "classifier-free guidance scale (1: off)", min: 0 },
  iterations: { type: "int", help: "gradient steps on the gates", min: 1, default: 80 },
  pool: { type: "int", help: "tuning noise samples", min: 1, default: 16 },
  batch: { type: "int", help: "samples per gradient step", min: 1, default: 2 },
  validation: { type: "int", help: "held-out samples for the final measurement", min: 1, default: 32 },
  seed: { type: "int", help: "seed", min: 0, default: 0 },
  out: { type: "string", help: "profile path [<model folder>/cache-profile-<solver><steps>-<budget>.json]" },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
  json: { type: "bool", help: "progress and result as JSON lines on stdout" },
};
export const TUNE_CACHE_HELP = `fastdiff tune-cache --speedup S | --max-distance D [options]\n\n${flagHelp(TUNE_CACHE_FLAGS)}`;

export async function tuneCacheCommand(argv: string[]): Promise<number> {
  const a = parseArgs("tune-cache", argv, TUNE_CACHE_FLAGS);
  if (a._.length > 0) throw new UsageError(`tune-cache: unexpected argument '${a._[0]}'`);
  const speedup = a["speedup"] as number | undefined;
  const maxDistance = a["max-distance"] as number | undefined;
  if ((speedup === undefined) === (maxDistance === undefined)) throw new UsageError("tune-cache: give one budget, --speedup or --max-distance");
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const json = Boolean(a["json"]);
  const solver = a["solver"] as SolverName;
  const steps = a["steps"] as number;
  const budgetName = speedup !== undefined ? `${speedup}x` : `d${maxDistance}`;
  const spec = a["model"] as string;
  const folder = modelPath(spec);
  const out = (a["out"] as string | undefined) ??
    join(existsSync(folder) && statSync(folder).isDirectory() ? folder : ".", `cache-profile-${solver}${steps}-${budgetName}.json`);
  const model = await openModel(spec);
  const iterations = a["iterations"] as number;
  const progress = new Progress({ task: "tune-cache", total: iterations, unit: "it", json });
  const profile = await tuneFeatureReuse(model, {
    solver, steps, budget: speedup !== undefined ? { speedup } : { maxDistance: maxDistance! },
    guidance: a["guidance"] as number | undefined, iterations, pool: a["pool"] as number, batch: a["batch"] as number,
    validation: a["validation"] as number, seed: a["seed"] as number,
    onProgress: (p) => progress.update(p.iteration, { distance: p.distance, cost: p.cost, keyframes: p.keyframes, skipped: p.skipped }),
  });
  progress.finish();
  await saveCacheProfile(profile, out);
  const m = profile.measured!;
  if (json) process.stdout.write(`${JSON.stringify({ event: "done", task: "tune-cache", profile: out, measured: m, plan: profile.plan })}\n`);
  else {
    console.log(`${out}: ${profile.plan.keyframes.length} keyframes, ${profile.plan.skips.length} jumps of ${profile.evaluations} evaluations — ` +
      `measured ${m.speedup.toFixed(2)}× faster (FLOPs ×${m.flopsRatio.toFixed(2)}), RMS distance ${m.distance.toFixed(4)} to full compute on ${m.samples} held-out samples`);
  }
  model.network.dispose();
  return 0;
}
