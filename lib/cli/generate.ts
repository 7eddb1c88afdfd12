// Sampling many images in batches (bounded memory), with balanced class labels, for `sample`, `eval` and `demo`.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { argumentError } from "../errors";
import { readSafetensors, writeSafetensors } from "../io/safetensors";
import type { Denoiser } from "../models/denoiser";
import { NetworkDenoiser } from "../models/network-denoiser";
import { packageRoot } from "../native";
import * as ops from "../ops";
import type { CacheProfile } from "../sampling/cache-profile";
import type { FeatureReuseOptions } from "../sampling/feature-reuse";
import { sampleWithStats } from "../sampling/sample";
import type { SolverName } from "../sampling/solvers";
import type { Tensor } from "../tensor";

/** The shipped models, by short name. */
export function modelPath(spec: string): string {
  const shipped = join(packageRoot, "models", spec);
  if (!spec.includes("/") && existsSync(shipped)) return shipped;
  return spec;
}

export async function openModel(spec: string): Promise<NetworkDenoiser> {
  const path = modelPath(spec);
  if (!existsSync(path)) throw argumentError("model", `no model at '${spec}' (a diffusers folder, a .safetensors file, or a shipped name: mnist-teacher, mnist-dit)`);
  return NetworkDenoiser.load(path);
}

export interface GenerateOptions {
  n: number;
  steps: number;
  solver: SolverName;
  /** One class for all, "all" for i mod classes (balanced), or null (unconditional). */
  classes: number | "all" | null;
  guidance?: number;
  seed: number;
  batch: number;
  /** FRDiff / DeepCache feature reuse, or a cache profile (see SampleOptions.featureReuse). */
  featureReuse?: FeatureReuseOptions | CacheProfile;
  /** Called after each step of each batch with the total steps done so far. */
  onStep?: (done: number, total: number, nfe: number) => void;
}

/** `n` samples (and the labels asked for) in batches of `batch`; batch b uses seed + b. */
export async function generate(
  denoiser: Denoiser, o: GenerateOptions,
): Promise<{ samples: Tensor; labels: Int32Array | null; nfe: number; flops: number; seconds: number }> {
  const k = denoiser.numClasses;
  if (o.classes !== null && k === 0) throw argumentError("sample", "this model is unconditional: drop --class");
  if (typeof o.classes === "number" && !(Number.isInteger(o.classes) && o.classes >= 0 && o.classes < k))
    throw argumentError("sample", `--class must be an integer in [0, ${k}), got ${o.classes}`);
  const classes = o.classes ?? (k > 0 ? "all" : null);
  const labels = classes === null ? null : Int32Array.from({ length: o.n }, (_, i) => (classes === "all" ? i % k : classes));
  const parts: Tensor[] = [];
  const batches = Math.ceil(o.n / o.batch);
  const start = performance.now();
  let nfe = 0;
  let flops = 0;
  try {
    for (let b = 0; b < batches; ++b) {
      const lo = b * o.batch;
      const hi = Math.min(o.n, lo + o.batch);
      const r = await sampleWithStats(denoiser, {
        n: hi - lo, steps: o.steps, solver: o.solver, seed: o.seed + b, guidance: o.guidance, featureReuse: o.featureReuse,
        classLabels: labels ? labels.subarray(lo, hi) : null,
        onProgress: (p) => o.onStep?.(b * o.steps + p.step, batches * o.steps, nfe + p.nfe),
      });
      nfe += r.nfe;
      flops += r.flops;
      parts.push(r.samples);
    }
    const samples = parts.length === 1 ? parts[0]! : ops.concat(parts, 0);
    return { samples, labels, nfe, flops, seconds: (performance.now() - start) / 1000 };
  } finally {
    if (parts.length > 1) for (const t of parts) t.dispose();
  }
}

/** Samples (+ requested labels) as one safetensors file that `fastdiff eval` reads. */
export async function saveSamples(path: string, samples: Tensor, labels: Int32Array | null, meta: Record<string, string>): Promise<void> {
  const tensors: Record<string, Tensor> = { samples };
  const labelTensor = labels ? ops.tensor(Float32Array.from(labels), [labels.length]) : null;
  if (labelTensor) tensors["labels"] = labelTensor;
  try {
    await writeSafetensors(path, tensors, meta);
  } finally {
    labelTensor?.dispose();
  }
}

export async function loadSamples(path: string): Promise<{ samples: Tensor; labels: Int32Array | null }> {
  const { tensors } = await readSafetensors(path);
  const samples = tensors.get("samples");
  const labelTensor = tensors.get("labels");
  const labels = labelTensor ? Int32Array.from(labelTensor.dataSync()) : null;
  for (const [name, t] of tensors) if (name !== "samples") t.dispose();
  if (!samples) throw argumentError("eval", `${path} has no 'samples' tensor (write it with 'fastdiff sample --save')`);
  return { samples, labels };
}
