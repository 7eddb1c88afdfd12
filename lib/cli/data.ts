// `--dataset` for the CLI: "mnist", "mnist32" (padded to 32×32), "mnist-test", "toy:<name>" or a folder of PNGs.
import { existsSync, statSync } from "node:fs";
import type { ArrayDataset } from "../data/dataset";
import { mnist } from "../data/mnist";
import { UsageError } from "./args";

export const DATASET_HELP = "mnist | mnist32 | mnist-test | toy:<8gaussians|grid25|swissroll> | <folder of PNGs>";

export async function openDataset(spec: string, options: { size?: number; channels?: number } = {}): Promise<ArrayDataset> {
  if (spec === "mnist") return mnist({ split: "train" });
  if (spec === "mnist32") return mnist({ split: "train", pad: 32 });
  if (spec === "mnist-test") return mnist({ split: "test" });
  if (spec.startsWith("toy:")) {
    const { toy2d } = await import("../data/toy2d");
    return toy2d(spec.slice(4) as Parameters<typeof toy2d>[0]);
  }
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    const { imageFolder } = await import("../data/image-folder");
    if (!options.size) throw new UsageError(`dataset folder ${spec}: --size is required`);
    return imageFolder(spec, { size: options.size, channels: (options.channels ?? 3) as 1 | 3 });
  }
  throw new UsageError(`--dataset must be ${DATASET_HELP}; '${spec}' is none of these (no such folder)`);
}
