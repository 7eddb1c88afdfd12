// Network files: diffusers folders (config.json + diffusion_pytorch_model.safetensors, the layout
// `save_pretrained` writes) and fastdiff's single-file safetensors (the config as JSON in
// __metadata__). Weights may be F32, F16 or BF16 and load into float32. Every problem is a
// FastdiffError ERR_FORMAT naming the file and, where one is involved, the tensor; writes are atomic.
import * as fs from "node:fs";
import * as path from "node:path";
import { FastdiffError } from "../errors";
import { readSafetensors, writeSafetensors, checkTensorSet, type SafetensorsWriteDtype } from "../io/safetensors";
import { writeFileAtomic } from "../io/atomic";
import type { Tensor } from "../tensor";
import { Network, networkClass, type NetworkClass } from "./network";

export const CONFIG_FILE = "config.json";
export const WEIGHTS_FILE = "diffusion_pytorch_model.safetensors";
/** Keys of fastdiff's single-file metadata. */
export const META_CONFIG = "fastdiff_config";
export const META_SCHEDULER = "fastdiff_scheduler";
/** The diffusers version whose config layout `save` writes. */
const DIFFUSERS_VERSION = "0.38.0";

export interface SaveOptions {
  /** Storage dtype of the weights (default F32). */
  dtype?: SafetensorsWriteDtype;
  /** "diffusers" (a folder) or "safetensors" (one file); default: by the path's extension. */
  format?: "diffusers" | "safetensors";
  /** A diffusers scheduler config saved beside the network (scheduler_config.json / metadata). */
  scheduler?: Record<string, unknown>;
  /** Extra __metadata__ entries of the weights file (a student's schedule, …). */
  metadata?: Record<string, string>;
}

export interface LoadedFiles {
  /** The network config as stored (diffusers keys, with `_class_name`). */
  config: Record<string, unknown>;
  /** The scheduler config stored beside it, if any. */
  scheduler: Record<string, unknown> | null;
  weights: Map<string, Tensor>;
  source: string;
  /** The weights file's __metadata__. */
  metadata: Record<string, string>;
}

function formatError(source: string, message: string): FastdiffError {
  return new FastdiffError("ERR_FORMAT", `${source}: ${message}`);
}

function parseJson(source: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw formatError(source, `not valid JSON (${(e as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw formatError(source, "must be a JSON object");
  return value as Record<string, unknown>;
}

async function readJson(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await fs.promises.readFile(file, "utf8");
  } catch (e) {
    throw formatError(file, `cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseJson(file, text);
}

function isSingleFile(p: string): boolean {
  return p.endsWith(".safetensors");
}

/** The scheduler config of a diffusers model folder: `scheduler_config.json` in it, or in `../scheduler/`
 * (a pipeline folder's layout). */
async function findSchedulerConfig(dir: string): Promise<Record<string, unknown> | null> {
  for (const file of [path.join(dir, "scheduler_config.json"), path.join(dir, "..", "scheduler", "scheduler_config.json")]) {
    if (fs.existsSync(file)) return readJson(file);
  }
  return null;
}

/** Reads config, scheduler config and weights of a diffusers folder or a fastdiff .safetensors file. */
export async function readNetworkFiles(p: string): Promise<LoadedFiles> {
  if (isSingleFile(p)) {
    const { tensors, metadata } = await readSafetensors(p);
    try {
      const text = metadata[META_CONFIG];
      if (text === undefined) throw formatError(p, `no "${META_CONFIG}" in __metadata__ (not a fastdiff network file; a diffusers model is a folder)`);
      const config = parseJson(`${p} (${META_CONFIG})`, text);
      const sched = metadata[META_SCHEDULER];
      return { config, scheduler: sched ? parseJson(`${p} (${META_SCHEDULER})`, sched) : null, weights: tensors, source: p, metadata };
    } catch (e) {
      for (const t of tensors.values()) t.dispose();
      throw e;
    }
  }
  let stat: fs.Stats;
  try {
    stat = await fs.promises.stat(p);
  } catch {
    throw formatError(p, "no such file or folder");
  }
  if (!stat.isDirectory()) throw formatError(p, "expected a diffusers folder or a .safetensors file");
  const config = await readJson(path.join(p, CONFIG_FILE));
  const scheduler = await findSchedulerConfig(p);
  const weightsFile = path.join(p, WEIGHTS_FILE);
  if (!fs.existsSync(weightsFile)) throw formatError(p, `no ${WEIGHTS_FILE} (only safetensors weights are read; convert .bin files first)`);
  const { tensors, metadata } = await readSafetensors(weightsFile);
  return { config, scheduler, weights: tensors, source: weightsFile, metadata };
}

/** Builds the network a set of files describes; `expect` rejects another class. The weights are consumed. */
export function buildNetwork(files: LoadedFiles, expect?: NetworkClass): Network {
  const { config, weights, source } = files;
  try {
    const kind = config["_class_name"] ?? expect?.kind;
    if (typeof kind !== "string") throw formatError(source, "the config names no network class (_class_name)");
    const cls = networkClass(kind, source);
    if (expect && cls !== expect) throw formatError(source, `holds a ${kind}, not a ${expect.kind}`);
    cls.renameLegacyWeights?.(weights);
    const normalized = cls.normalizeConfig(config);
    const specs = Network.specs(cls.kind, normalized);
    checkTensorSet(weights, new Map(specs.map((s) => [s.name, s.shape])), source);
    return Network.build(cls, normalized, weights);
  } finally {
    for (const t of weights.values()) t.dispose(); // the network holds its own references
  }
}

/** Loads a network from a diffusers folder or a fastdiff .safetensors file. */
export async function loadNetwork(p: string, expect?: NetworkClass): Promise<Network> {
  return buildNetwork(await readNetworkFiles(p), expect);
}

/** The config as diffusers writes it: `_class_name`, `_diffusers_version`, then the keys in sorted order. */
export function storedConfig(net: Network): Record<string, unknown> {
  const out: Record<string, unknown> = { _class_name: net.kind, _diffusers_version: DIFFUSERS_VERSION };
  for (const key of Object.keys(net.config).sort()) out[key] = net.config[key];
  return out;
}

/** Saves a network as a diffusers folder (path without .safetensors) or one fastdiff .safetensors file. */
export async function saveNetwork(net: Network, p: string, options: SaveOptions = {}): Promise<void> {
  const format = options.format ?? (isSingleFile(p) ? "safetensors" : "diffusers");
  const weights = new Map(net.namedParameters());
  const config = storedConfig(net);
  if (format === "safetensors") {
    const metadata: Record<string, string> = { format: "pt", ...options.metadata, [META_CONFIG]: JSON.stringify(config) };
    if (options.scheduler) metadata[META_SCHEDULER] = JSON.stringify(options.scheduler);
    await writeSafetensors(p, weights, metadata, { dtype: options.dtype });
    return;
  }
  await fs.promises.mkdir(p, { recursive: true });
  await writeSafetensors(path.join(p, WEIGHTS_FILE), weights, { format: "pt", ...options.metadata }, { dtype: options.dtype });
  await writeFileAtomic(path.join(p, CONFIG_FILE), JSON.stringify(config, null, 2) + "\n");
  if (options.scheduler) {
    await writeFileAtomic(path.join(p, "scheduler_config.json"), JSON.stringify(options.scheduler, null, 2) + "\n");
  }
}
