// `fastdiff train-features`: trains the MNIST feature network (FD / precision / recall / accuracy) on the
// training split and reports its accuracy on the held-out test split.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { mnist } from "../data/mnist";
import { setNumThreads } from "../device";
import { trainFeatureNet } from "../eval/feature-net";
import { writeFileAtomic } from "../io/atomic";
import { flagHelp, parseArgs, UsageError, type FlagSpec } from "./args";

const FLAGS: Record<string, FlagSpec> = {
  out: { type: "string", help: "output folder (model.safetensors, training.json)" },
  epochs: { type: "int", help: "epochs over the 8,004 training digits", min: 1, default: 8 },
  batch: { type: "int", help: "batch size", min: 1, default: 128 },
  lr: { type: "number", help: "Adam learning rate (cosine decay to 0)", min: 0, default: 2e-3 },
  seed: { type: "int", help: "seed", min: 0, default: 0 },
  threads: { type: "int", help: "CPU threads [all cores]", min: 1 },
};
export const TRAIN_FEATURES_HELP = `fastdiff train-features --out <dir> [options]\n\n${flagHelp(FLAGS)}`;

export async function trainFeaturesCommand(argv: string[]): Promise<number> {
  const a = parseArgs("train-features", argv, FLAGS);
  const out = a["out"] as string | undefined;
  if (!out) throw new UsageError("train-features: --out <dir> is required");
  if (a["threads"] !== undefined) setNumThreads(a["threads"] as number);
  const start = performance.now();
  const net = await trainFeatureNet(mnist({ split: "train" }), {
    epochs: a["epochs"] as number, batchSize: a["batch"] as number, lr: a["lr"] as number, seed: a["seed"] as number,
    onEpoch: (e, loss) => process.stderr.write(`epoch ${e}  loss ${loss.toFixed(4)}\n`),
  });
  const test = mnist({ split: "test" });
  const { x, labels } = test.all();
  const { predictions } = net.embed(x);
  x.dispose();
  const accuracy = predictions.reduce((s, p, i) => s + (p === labels![i] ? 1 : 0), 0) / test.size;
  const seconds = (performance.now() - start) / 1000;
  mkdirSync(out, { recursive: true });
  await net.save(join(out, "model.safetensors"), { test_accuracy: String(accuracy) });
  const summary = { command: `fastdiff train-features ${argv.join(" ")}`, testAccuracy: accuracy, testDigits: test.size, seconds, date: new Date().toISOString() };
  await writeFileAtomic(join(out, "training.json"), `${JSON.stringify(summary, null, 2)}\n`);
  net.dispose();
  console.log(`test accuracy ${(accuracy * 100).toFixed(2)}% on ${test.size} held-out digits (${seconds.toFixed(0)} s); saved ${join(out, "model.safetensors")}`);
  return 0;
}
