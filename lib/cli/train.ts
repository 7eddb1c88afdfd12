// `fastdiff train`: a model preset trained on a dataset with trainDenoiser; checkpoints every N iterations
// (resume with --resume), the EMA weights saved as a diffusers folder with their scheduler config.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { getNumThreads, setNumThreads } from "../device";
import { writeFileAtomic } from "../io/atomic";
import { MODEL_PRESETS, modelPreset } from "../train/presets";
import { trainDenoiser } from "../train/train-denoiser";
import { ABORTED, abortable } from "./abort";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";
import { DATASET_HELP, openDataset } from "./data";
import { Progress } from "./progress";

export const TRAIN_FLAGS: Record<string, FlagSpec> = {
  dataset: { type: "string", help: DATASET_HELP, default: "mnist" },
  model: { type: "string", help: "model preset", choices: MODEL_PRESETS, default: "unet-small" },
  iterations: { type: "int", help: "training iterations", min: 1, default: 10000 },
  batch: { type: "int", help: "batch size", min: 1, default: 128 },
  lr: { type: "number", help: "Adam learning rate", min: 0, default: 1e-3 },
  warmup: { type: "int", help: "learning-rate warm-up iterations", min: 0, default: 500 },
  "ema-half-life": { type: "number", help: "EMA half-life in images", min: 0, default: 100000 },
  "max-grad-norm": { type: "number", help: "clip the global gradient norm (0: off)", min: 0, default: 1 },
  loss: { type: "string", help: "denoising loss", choices: ["edm", "ddpm"], default: "edm" },
  seed: { type: "int", help: "seed of initialization, data order and noise", min: 0, default: 0 },
  out: { type: "string", help: "output folder (diffusers layout, EMA weights)" },
  "save-dtype": { type: "string", help: "storage dtype of the saved weights", choices: ["F32", "F16", "BF16"], default: "F32" },
  "checkpoint-dir": { type: "string", help: "checkpoint folder [<out>/checkpoint]" },
  "checkpoint-every": { type: "int", help: "iterations between checkpoints", min: 1, default: 500 },
  resume: { type: "bool", help: "continue from the checkpoint in the checkpoint folder" },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
  size: { type: "int", help: "image side for a PNG folder", min: 1 },
  channels: { type: "int", help: "1 or 3 for a PNG folder", min: 1 },
  json: { type: "bool", help: "progress as JSON lines on stdout" },
};

export const TRAIN_HELP = `fastdiff train --out <dir> [options]\n\n${flagHelp(TRAIN_FLAGS)}`;

export async function trainCommand(argv: string[]): Promise<number> {
  const a = parseArgs("train", argv, TRAIN_FLAGS);
  if (a._.length > 0) throw new UsageError(`train: unexpected argument '${a._[0]}'`);
  const out = a["out"] as string | undefined;
  if (!out) throw new UsageError("train: --out <dir> is required");
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const data = await openDataset(a["dataset"] as string, { size: a["size"] as number | undefined, channels: a["channels"] as number | undefined });
  const seed = a["seed"] as number;
  const model = modelPreset(a["model"] as string, { sampleShape: data.sampleShape, numClasses: data.numClasses, seed });
  const iterations = a["iterations"] as number;
  const checkpointDir = (a["checkpoint-dir"] as string | undefined) ?? join(out, "checkpoint");
  const json = Boolean(a["json"]);
  const log = (line: string) => (json ? undefined : process.stderr.write(`${line}\n`));
  log(`train ${a["model"]} (${model.network.kind}, ${(model.network.numParameters / 1e6).toFixed(2)} M parameters) on ${data.name} (${data.size} samples), ${iterations} iterations × ${a["batch"]}, ${getNumThreads()} threads`);
  const progress = new Progress({ task: "train", total: iterations, json });
  const started = Date.now();
  const result = await abortable((signal) => trainDenoiser(model, data, {
    signal, iterations, batchSize: a["batch"] as number, lr: a["lr"] as number, warmup: a["warmup"] as number,
    emaHalfLifeImages: a["ema-half-life"] as number, maxGradNorm: a["max-grad-norm"] as number, loss: a["loss"] as "edm" | "ddpm",
    seed, checkpointDir, checkpointEvery: a["checkpoint-every"] as number, resume: Boolean(a["resume"]),
    onProgress: (p) => progress.update(p.iteration, { loss: p.meanLoss, "img/s": p.imagesPerSecond, epoch: p.epoch }, p.imagesPerSecond / (a["batch"] as number)),
  }));
  if (result === ABORTED) {
    progress.finish();
    log(`stopped at a checkpoint in ${checkpointDir}; continue with --resume`);
    if (json) process.stdout.write(`${JSON.stringify({ event: "aborted", task: "train", checkpointDir })}\n`);
    return 130;
  }
  progress.finish();
  result.ema?.copyTo();
  mkdirSync(out, { recursive: true });
  await model.save(out, { dtype: a["save-dtype"] as "F32" | "F16" | "BF16" });
  const tail = result.losses.slice(-Math.min(100, result.losses.length));
  const summary = {
    command: `fastdiff train ${argv.join(" ")}`, model: a["model"], kind: model.network.kind, parameters: model.network.numParameters,
    dataset: data.name, iterations, batch: a["batch"], resumedFrom: result.startIteration, secondsThisRun: result.seconds,
    threads: getNumThreads(), finalLoss: tail.reduce((s, v) => s + v, 0) / tail.length, weights: result.ema ? "ema" : "raw", date: new Date(started).toISOString(),
  };
  await writeFileAtomic(join(out, "training.json"), `${JSON.stringify(summary, null, 2)}\n`);
  result.ema?.dispose();
  log(`saved ${result.ema ? "EMA " : ""}weights to ${out} (final loss ${summary.finalLoss.toFixed(4)}, ${result.seconds.toFixed(0)} s)`);
  if (json) process.stdout.write(`${JSON.stringify({ event: "done", task: "train", out, ...summary })}\n`);
  return 0;
}
