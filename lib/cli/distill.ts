// `fastdiff distill sid|dmd`: a teacher into a one-step Student, with checkpoints (--resume), Ctrl-C that saves,
// and the FD of the EMA generator against a reference set every --eval-every iterations (the curve lands in
// distill.json beside the saved student).
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { getNumThreads, setNumThreads } from "../device";
import { distillDMD } from "../distill/dmd";
import type { MatchingOptions } from "../distill/matching";
import { distillSiD } from "../distill/sid";
import type { Student } from "../distill/student";
import { evaluate } from "../eval/evaluate";
import { writeFileAtomic } from "../io/atomic";
import { linePlot } from "../io/plot";
import { encodePng } from "../io/png";
import type { Tensor } from "../tensor";
import { ABORTED, abortable } from "./abort";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";
import { openDataset } from "./data";
import { openModel } from "./generate";
import { Progress } from "./progress";

export const DISTILL_FLAGS: Record<string, FlagSpec> = {
  teacher: { type: "string", help: "teacher: diffusers folder, .safetensors file or shipped name", default: "mnist-teacher" },
  out: { type: "string", help: "output folder of the student (EMA weights, student.json, distill.json)" },
  iterations: { type: "int", help: "iterations (one fake step + one generator step for SiD)", min: 1, default: 5000 },
  batch: { type: "int", help: "generator samples per step", min: 1, default: 64 },
  lr: { type: "number", help: "Adam learning rate of the generator (and the fake network)", min: 0 },
  "lr-fake": { type: "number", help: "Adam learning rate of the fake network [--lr]", min: 0 },
  alpha: { type: "number", help: "SiD's α", min: 0 },
  "sigma-init": { type: "number", help: "σ the generator runs at [SiD 2.5, DMD 80]", min: 0 },
  "fake-updates": { type: "int", help: "fake-network steps per generator step [SiD 1, DMD 5]", min: 1 },
  "ema-half-life": { type: "number", help: "EMA half-life in images", min: 0, default: 500000 },
  "ema-ramp": { type: "number", help: "EMA ramp: the half-life is at most this fraction of the images seen (0: off)", min: 0, default: 0.05 },
  seed: { type: "int", help: "seed", min: 0, default: 0 },
  "eval-every": { type: "int", help: "score the EMA generator every N iterations (0: only at the end)", min: 0, default: 0 },
  "eval-n": { type: "int", help: "samples per score", min: 2, default: 1000 },
  reference: { type: "string", help: "reference set of the score (mnist-test, mnist, …)", default: "mnist-test" },
  "save-dtype": { type: "string", help: "storage dtype of the saved weights", choices: ["F32", "F16", "BF16"], default: "F32" },
  "checkpoint-dir": { type: "string", help: "checkpoint folder [<out>/checkpoint]" },
  "checkpoint-every": { type: "int", help: "iterations between checkpoints", min: 1, default: 100 },
  resume: { type: "bool", help: "continue from the checkpoint" },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
  json: { type: "bool", help: "progress as JSON lines on stdout" },
};
export const DISTILL_HELP = `fastdiff distill sid|dmd --out <dir> [options]\n\n${flagHelp(DISTILL_FLAGS)}`;

/** FD of the EMA generator against the iteration, as a PNG line plot. */
async function writeFdCurve(file: string, evaluations: { iteration: number; values: Record<string, number> }[], title: string): Promise<void> {
  const points = evaluations.filter((e) => e.values["fd"] !== undefined).map((e) => [e.iteration, e.values["fd"]!] as const);
  const img = linePlot([{ points, color: [200, 30, 30], label: "one-step student" }], { title: `FD during distillation (${title})`, xLabel: "iteration", yLabel: "FD" });
  await writeFileAtomic(file, encodePng(img.data, img.width, img.height, img.channels));
}

export async function distillCommand(argv: string[]): Promise<number> {
  const a = parseArgs("distill", argv, DISTILL_FLAGS);
  const method = a._[0];
  if (method !== "sid" && method !== "dmd") throw new UsageError(`distill: the method comes first: 'sid' or 'dmd', got ${method === undefined ? "nothing" : `'${method}'`}`);
  if (a._.length > 1) throw new UsageError(`distill: unexpected argument '${a._[1]}'`);
  const out = a["out"] as string | undefined;
  if (!out) throw new UsageError("distill: --out <dir> is required");
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const json = Boolean(a["json"]);
  const log = (line: string) => (json ? undefined : process.stderr.write(`${line}\n`));
  const teacher = await openModel(a["teacher"] as string);
  const iterations = a["iterations"] as number;
  const checkpointDir = (a["checkpoint-dir"] as string | undefined) ?? join(out, "checkpoint");
  const evalEvery = a["eval-every"] as number;
  const evalN = a["eval-n"] as number;
  let reference: Tensor | null = null;
  const score = async (student: Student): Promise<Record<string, number>> => {
    reference ??= (await openDataset(a["reference"] as string)).all().x;
    const k = student.denoiser.numClasses;
    const labels = k > 0 ? Int32Array.from({ length: evalN }, (_, i) => i % k) : null;
    const samples = await student.generate(evalN, { seed: 12345, classLabels: labels });
    try {
      const e = await evaluate(samples, reference, { metrics: ["fd", "accuracy"], ...(labels ? { classLabels: labels } : {}) });
      return { fd: e.fd!, ...(e.accuracy !== undefined ? { accuracy: e.accuracy } : {}) };
    } finally {
      samples.dispose();
    }
  };
  const options: MatchingOptions = {
    iterations, batchSize: a["batch"] as number, lr: a["lr"] as number | undefined, lrFake: a["lr-fake"] as number | undefined,
    fakeUpdates: a["fake-updates"] as number | undefined, emaHalfLifeImages: a["ema-half-life"] as number, emaRampUp: a["ema-ramp"] as number, seed: a["seed"] as number,
    checkpointDir, checkpointEvery: a["checkpoint-every"] as number, resume: Boolean(a["resume"]),
    evaluate: { every: evalEvery > 0 ? evalEvery : iterations, run: score },
  };
  log(`distill ${method} ${teacher.network.kind} (${(teacher.network.numParameters / 1e6).toFixed(2)} M parameters), ${iterations} iterations × ${a["batch"]}, ${getNumThreads()} threads`);
  const progress = new Progress({ task: `distill ${method}`, total: iterations, json });
  const started = Date.now();
  const result = await abortable((signal) => {
    const common = {
      ...options, signal,
      onProgress: (p: { iteration: number; lossGenerator: number; lossFake: number; imagesPerSecond: number; evaluation?: Record<string, number> }) =>
        progress.update(p.iteration, { "loss G": p.lossGenerator, "loss ψ": p.lossFake, "img/s": p.imagesPerSecond, ...(p.evaluation ?? {}) }, p.imagesPerSecond / (a["batch"] as number)),
    };
    const sigmaInit = a["sigma-init"] as number | undefined;
    return method === "sid"
      ? distillSiD(teacher, { ...common, alpha: a["alpha"] as number | undefined, sigmaInit })
      : distillDMD(teacher, { ...common, sigmaInit });
  });
  progress.finish();
  if (result === ABORTED) {
    log(`stopped at a checkpoint in ${checkpointDir}; continue with --resume`);
    if (json) process.stdout.write(`${JSON.stringify({ event: "aborted", task: "distill", checkpointDir })}\n`);
    teacher.network.dispose();
    return 130;
  }
  mkdirSync(out, { recursive: true });
  await result.student.save(out, { dtype: a["save-dtype"] as "F32" | "F16" | "BF16" });
  const summary = {
    command: `fastdiff distill ${argv.join(" ")}`, method, teacher: a["teacher"], iterations, batch: a["batch"], resumedFrom: result.startIteration,
    secondsThisRun: result.seconds, threads: getNumThreads(), evaluations: result.evaluations, date: new Date(started).toISOString(),
  };
  await writeFileAtomic(join(out, "distill.json"), `${JSON.stringify(summary, null, 2)}\n`);
  if (result.evaluations.length >= 2) await writeFdCurve(join(out, "fd-curve.png"), result.evaluations, `${method.toUpperCase()}, ${teacher.network.kind}`);
  const last = result.evaluations.at(-1)?.values;
  log(`saved the one-step student to ${out}${last ? ` (FD ${last["fd"]?.toFixed(2)}${last["accuracy"] !== undefined ? `, accuracy ${(100 * last["accuracy"]).toFixed(1)}%` : ""})` : ""}`);
  if (json) process.stdout.write(`${JSON.stringify({ event: "done", task: "distill", out, ...summary })}\n`);
  result.student.dispose();
  teacher.network.dispose();
  return 0;
}
