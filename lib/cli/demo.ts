// `fastdiff demo`, the main job: the shipped class-conditional MNIST teacher samples a grid of digits (a row
// per class) with the 18-step Heun sampler, and the samples are scored against the held-out test digits.
import { mnist } from "../data/mnist";
import { getNumThreads, setNumThreads } from "../device";
import { evaluate } from "../eval/evaluate";
import { saveImageGrid } from "../io/png";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";
import { formatEvaluation } from "./eval";
import { generate, openModel } from "./generate";
import { Progress } from "./progress";

const FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", help: "model (shipped name or folder)", default: "mnist-teacher" },
  n: { type: "int", help: "samples (balanced over the classes)", min: 10, default: 100 },
  steps: { type: "int", help: "Heun steps (2·steps − 1 network evaluations)", min: 1, default: 18 },
  seed: { type: "int", help: "seed", min: 0, default: 0 },
  out: { type: "string", help: "PNG grid", default: "fastdiff-demo.png" },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
  json: { type: "bool", help: "progress and metrics as JSON lines on stdout" },
};
export const DEMO_HELP = `fastdiff demo [options]\n\n${flagHelp(FLAGS)}`;

export async function demoCommand(argv: string[]): Promise<number> {
  const a = parseArgs("demo", argv, FLAGS);
  if (a._.length > 0) throw new UsageError(`demo: unexpected argument '${a._[0]}'`);
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const json = Boolean(a["json"]);
  const say = (line: string) => (json ? undefined : console.log(line));
  const model = await openModel(a["model"] as string);
  const net = model.network;
  say(`${a["model"]}: ${net.kind}, ${(net.numParameters / 1e6).toFixed(2)} M parameters, ${model.numClasses} classes, ${getNumThreads()} threads`);
  const steps = a["steps"] as number;
  const progress = new Progress({ task: "sample", total: 0, unit: "step", json });
  const r = await generate(model, {
    n: a["n"] as number, steps, solver: "heun", classes: "all", seed: a["seed"] as number, batch: 250,
    onStep: (done, total, nfe) => progress.update(done, { nfe }, undefined, total),
  });
  progress.finish();
  await saveImageGrid(r.samples, a["out"] as string, { nrow: model.numClasses });
  const test = mnist({ split: "test" });
  const reference = test.all().x;
  const e = await evaluate(r.samples, reference, { classLabels: r.labels! });
  const perImage = r.seconds / r.samples.shape[0]!;
  if (json) process.stdout.write(`${JSON.stringify({ event: "done", task: "demo", grid: a["out"], nfe: r.nfe, seconds: r.seconds, ...e })}\n`);
  else {
    say(`${r.samples.shape[0]} digits, Heun ${steps} steps (${r.nfe} network evaluations per image) in ${r.seconds.toFixed(1)} s (${(perImage * 1000).toFixed(0)} ms per digit) → ${a["out"]}`);
    say(`quality against the ${test.size} held-out test digits:\n${formatEvaluation(e)}`);
    if (a["model"] === "mnist-teacher") say("(FD is biased upward at small n: on 2,000 samples the teacher scores FD 4.14, accuracy 91.3% — models/README.md)");
  }
  reference.dispose();
  r.samples.dispose();
  net.dispose();
  return 0;
}
