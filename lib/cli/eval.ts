// `fastdiff eval`: metrics of saved samples against a reference set, as a table or JSON.
import type { ArrayDataset } from "../data/dataset";
import { setNumThreads } from "../device";
import { evaluate, type Evaluation, type ImageMetric, type ToyMetric } from "../eval/evaluate";
import type { GaussianMixture } from "../data/gaussian-mixture";
import type { Tensor } from "../tensor";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";
import { openDataset } from "./data";
import { loadSamples } from "./generate";

const METRICS = ["fd", "precision", "recall", "accuracy", "coverage", "mmd", "sw", "modes"];
export const EVAL_FLAGS: Record<string, FlagSpec> = {
  samples: { type: "string", help: "samples written by 'fastdiff sample --save'" },
  reference: { type: "string", help: "mnist-test | mnist | toy:<name> | another samples file", default: "mnist-test" },
  metrics: { type: "string", help: `comma-separated: ${METRICS.join(", ")} [all that apply]` },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
  json: { type: "bool", help: "print the metrics as JSON" },
};
export const EVAL_HELP = `fastdiff eval --samples <file> [options]\n\n${flagHelp(EVAL_FLAGS)}`;

const LABELS: [keyof Evaluation, string, string][] = [
  ["fd", "FD", "Fréchet distance in the MNIST feature space (lower is better)"],
  ["precision", "precision", "samples inside the reference manifold (k = 3)"],
  ["recall", "recall", "reference inside the samples' manifold (k = 3)"],
  ["accuracy", "accuracy", "classifier agrees with the requested class"],
  ["classCoverage", "class coverage", "classes present among the samples"],
  ["classEntropy", "class entropy", "normalized entropy of the predicted classes"],
  ["mmd", "MMD²", "RBF kernel, unbiased"],
  ["sw", "sliced W1", "sliced Wasserstein distance"],
  ["modesCovered", "modes covered", "mixture modes with a sample within 3 std"],
  ["offModeFraction", "off-mode", "samples farther than 3 std from every mode"],
];

/** The metrics as aligned lines: name, value, meaning. */
export function formatEvaluation(e: Evaluation): string {
  return LABELS.filter(([k]) => e[k] !== undefined)
    .map(([k, name, meaning]) => {
      const v = e[k] as number;
      const value = k === "modesCovered" ? `${v}/${e.modesTotal}` : Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 1 ? 4 : 2);
      return `  ${name.padEnd(15)} ${value.padStart(9)}   ${meaning}`;
    })
    .join("\n");
}

export async function evalCommand(argv: string[]): Promise<number> {
  const a = parseArgs("eval", argv, EVAL_FLAGS);
  const file = (a["samples"] as string | undefined) ?? a._[0];
  if (!file) throw new UsageError("eval: --samples <file> is required");
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const metrics = (a["metrics"] as string | undefined)?.split(",").map((m) => m.trim());
  for (const m of metrics ?? []) if (!METRICS.includes(m)) throw new UsageError(`eval: unknown metric '${m}' (one of ${METRICS.join(", ")})`);
  const { samples, labels } = await loadSamples(file);
  const refSpec = a["reference"] as string;
  let reference: Tensor;
  let modes: GaussianMixture | undefined;
  if (refSpec.endsWith(".safetensors")) reference = (await loadSamples(refSpec)).samples;
  else {
    const data: ArrayDataset & { modes?: GaussianMixture | null } = await openDataset(refSpec);
    reference = data.all().x;
    modes = data.modes ?? undefined;
  }
  try {
    const e = await evaluate(samples, reference, {
      metrics: metrics as (ImageMetric | ToyMetric)[] | undefined, classLabels: labels ?? undefined, modes,
    });
    if (a["json"]) console.log(JSON.stringify(e));
    else console.log(`${e.n} samples vs ${e.referenceN} reference (${refSpec})\n${formatEvaluation(e)}`);
  } finally {
    samples.dispose();
    reference.dispose();
  }
  return 0;
}
