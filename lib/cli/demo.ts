// `fastdiff demo`, the main job: the shipped class-conditional MNIST teacher samples a grid of digits (a column
// per class) with the 18-step Heun sampler, the shipped one-step SiD student draws the same classes from the same seed,
// and both are scored against the held-out test digits. One PNG holds both grids (teacher left, student right).
import { existsSync } from "node:fs";
import { mnist } from "../data/mnist";
import { getNumThreads, setNumThreads } from "../device";
import { Student } from "../distill/student";
import { evaluate, type Evaluation } from "../eval/evaluate";
import { writeFileAtomic } from "../io/atomic";
import { encodePng, imageGrid, sideBySide } from "../io/png";
import type { Tensor } from "../tensor";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";
import { formatEvaluation } from "./eval";
import { generate, modelPath, openModel } from "./generate";
import { Progress } from "./progress";

const FLAGS: Record<string, FlagSpec> = {
  model: { type: "string", help: "teacher (shipped name or folder)", default: "mnist-teacher" },
  student: { type: "string", help: "one-step student beside it (shipped name or folder; 'none' to skip)", default: "mnist-sid" },
  n: { type: "int", help: "samples per model (balanced over the classes)", min: 10, default: 100 },
  steps: { type: "int", help: "Heun steps of the teacher (2·steps − 1 network evaluations)", min: 1, default: 18 },
  seed: { type: "int", help: "seed", min: 0, default: 0 },
  out: { type: "string", help: "PNG: the teacher's grid, and the student's to its right", default: "fastdiff-demo.png" },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
  json: { type: "bool", help: "progress and metrics as JSON lines on stdout" },
};
export const DEMO_HELP = `fastdiff demo [options]\n\n${flagHelp(FLAGS)}`;

const BATCH = 250;

interface Row {
  name: string;
  nfe: number;
  seconds: number;
  evaluation: Evaluation;
}

export async function demoCommand(argv: string[]): Promise<number> {
  const a = parseArgs("demo", argv, FLAGS);
  if (a._.length > 0) throw new UsageError(`demo: unexpected argument '${a._[0]}'`);
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const json = Boolean(a["json"]);
  const say = (line: string) => (json ? undefined : console.log(line));
  const n = a["n"] as number;
  const seed = a["seed"] as number;
  const studentSpec = a["student"] as string;
  const studentPath = studentSpec === "none" ? null : modelPath(studentSpec);
  if (studentPath && !existsSync(studentPath)) throw new UsageError(`demo: no student at '${studentSpec}' (a shipped name, a folder, or 'none')`);

  const model = await openModel(a["model"] as string);
  const student = studentPath ? await Student.load(studentPath) : null;
  const held: Tensor[] = [];
  try {
    const net = model.network;
    say(`${a["model"]}: ${net.kind}, ${(net.numParameters / 1e6).toFixed(2)} M parameters, ${model.numClasses} classes, ${getNumThreads()} threads`);
    const steps = a["steps"] as number;
    const progress = new Progress({ task: "sample", total: 0, unit: "step", json });
    const t = await generate(model, {
      n, steps, solver: "heun", classes: "all", seed, batch: BATCH,
      onStep: (done, total, nfe) => progress.update(done, { nfe }, undefined, total),
    });
    progress.finish();
    held.push(t.samples);
    const reference = mnist({ split: "test" }).all().x;
    held.push(reference);
    const rows: Row[] = [{
      name: `teacher, Heun ${steps} steps`, nfe: t.nfe / Math.ceil(n / BATCH), seconds: t.seconds, // generate counts per batch
      evaluation: await evaluate(t.samples, reference, { classLabels: t.labels! }),
    }];
    const grids = [imageGrid(t.samples, { nrow: model.numClasses })];
    if (student) {
      const started = performance.now();
      const s = await student.generate(n, { seed, classLabels: t.labels });
      const seconds = (performance.now() - started) / 1000;
      held.push(s);
      rows.push({ name: `${student.info.method} student, ${student.steps} step${student.steps > 1 ? "s" : ""}`, nfe: student.steps, seconds, evaluation: await evaluate(s, reference, { classLabels: t.labels! }) });
      grids.push(imageGrid(s, { nrow: model.numClasses }));
    }
    const picture = sideBySide(grids, 16);
    await writeFileAtomic(a["out"] as string, encodePng(picture.data, picture.width, picture.height, picture.channels));
    const speedup = rows.length > 1 ? rows[0]!.seconds / rows[1]!.seconds : null;
    if (json) {
      process.stdout.write(`${JSON.stringify({ event: "done", task: "demo", grid: a["out"], n, models: rows.map((r) => ({ name: r.name, nfe: r.nfe, seconds: r.seconds, ...r.evaluation })), speedup })}\n`);
      return 0;
    }
    for (const r of rows) {
      say(`\n${r.name}: ${n} digits, ${r.nfe} network evaluation${r.nfe > 1 ? "s" : ""} per digit, ${r.seconds.toFixed(2)} s (${((1000 * r.seconds) / n).toFixed(1)} ms per digit)`);
      say(formatEvaluation(r.evaluation));
    }
    say(`\n${a["out"]}: ${rows.map((r) => r.name).join(" (left) | ")}${rows.length > 1 ? " (right)" : ""}`);
    if (speedup !== null) say(`the one-step student samples ${speedup.toFixed(0)}× faster than the teacher`);
    say(`(FD is biased upward at n = ${n}: models/README.md has the 2,000-sample figures of the shipped models)`);
    return 0;
  } finally {
    for (const x of held) x.dispose();
    student?.dispose();
    model.network.dispose();
  }
}
