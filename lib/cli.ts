#!/usr/bin/env node
// The fastdiff command line. Every command lives in lib/cli/<command>.ts; bad arguments print one line and
// exit 2, failures print one line (code: message) and exit 1, never a stack trace.
import { spawnSync } from "node:child_process";
import { UsageError } from "./cli/args";
import { DEMO_HELP, demoCommand } from "./cli/demo";
import { DISTILL_HELP, distillCommand } from "./cli/distill";
import { EVAL_HELP, evalCommand } from "./cli/eval";
import { SAMPLE_HELP, sampleCommand } from "./cli/sample";
import { TRAIN_HELP, trainCommand } from "./cli/train";
import { TRAIN_FEATURES_HELP, trainFeaturesCommand } from "./cli/train-features";
import { TUNE_CACHE_HELP, tuneCacheCommand } from "./cli/tune-cache";

const HELP = `fastdiff <command> [options]   (fastdiff <command> --help for its options)

  demo             the shipped MNIST teacher: sample a grid of digits, score them against the test digits
  sample           images from a model → PNG grid (and .safetensors for eval); --interval for FRDiff
  tune-cache       Auto-FR: learn a feature-reuse plan under a speedup or quality budget → cache profile
  eval             metrics of saved samples against a reference set (FD, precision/recall, accuracy, MMD…)
  train            train a denoiser (model preset × dataset) with checkpoints and resume
  distill          sid | dmd: a teacher into a one-step student (checkpoints, resume, FD curve)
  train-features   train the MNIST feature network used by eval
  doctor [--json]  CPU features, kernel ISA, threads, CUDA devices, memory
  build            compile the native addon from source (cmake-js; FASTDIFF_CUDA=auto|on|off)
  help             this text
`;

type Command = { help: string; run: (args: string[]) => Promise<number> };
const COMMANDS: Record<string, Command> = {
  demo: { help: DEMO_HELP, run: demoCommand },
  sample: { help: SAMPLE_HELP, run: sampleCommand },
  eval: { help: EVAL_HELP, run: evalCommand },
  "tune-cache": { help: TUNE_CACHE_HELP, run: tuneCacheCommand },
  train: { help: TRAIN_HELP, run: trainCommand },
  distill: { help: DISTILL_HELP, run: distillCommand },
  "train-features": { help: TRAIN_FEATURES_HELP, run: trainFeaturesCommand },
  doctor: { help: "fastdiff doctor [--json]", run: doctor },
  build: { help: "fastdiff build   (FASTDIFF_CUDA=auto|on|off)", run: build },
};

async function doctor(args: string[]): Promise<number> {
  const { devices, memory } = await import("./index");
  const { version } = require("../package.json") as { version: string };
  const info = { version, ...devices(), memory: memory(), node: process.versions.node, napi: process.versions.napi };
  if (args.includes("--json")) {
    console.log(JSON.stringify(info, null, 2));
    return 0;
  }
  const c = info.cpu;
  console.log(`fastdiff ${info.version}`);
  console.log(`CPU      ${c.brand}`);
  console.log(`kernels  ${c.activeIsa} (best ${c.bestIsa}); threads ${c.threads}; ${c.synchronous ? "synchronous (FASTDIFF_SYNC)" : "stream-ordered"}`);
  console.log(`features ${Object.entries(c.features).filter(([, v]) => v).map(([k]) => k).join(" ")}`);
  console.log(`CUDA     ${info.cuda.available ? info.cuda.devices.map((d) => `${d.name} (sm ${d.computeCapability})`).join(", ") : info.cuda.reason}`);
  console.log(`node     ${info.node}, N-API ${info.napi}`);
  return 0;
}

async function build(): Promise<number> {
  const root = require("node:path").resolve(__dirname, "..");
  const cuda = process.env.FASTDIFF_CUDA ?? "auto";
  // cmake-js comes from the project's devDependencies or, in an installed package, from npx.
  const r = spawnSync("npx", ["--yes", "cmake-js@7", "compile", `--CDFASTDIFF_CUDA=${cuda}`], { cwd: root, stdio: "inherit" });
  return r.status ?? 1;
}

async function main(argv: string[]): Promise<number> {
  const [name = "help", ...args] = argv;
  if (name === "help" || name === "--help" || name === "-h") {
    console.log(HELP);
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) throw new UsageError(`unknown command '${name}' (commands: ${Object.keys(COMMANDS).join(", ")}; see 'fastdiff help')`);
  if (args.includes("--help") || args.includes("-h")) {
    console.log(command.help);
    return 0;
  }
  return command.run(args);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: Error & { code?: string }) => {
    console.error(`fastdiff: ${err.code ? `${err.code}: ` : ""}${err.message}`);
    process.exit(err instanceof UsageError ? 2 : 1);
  },
);
