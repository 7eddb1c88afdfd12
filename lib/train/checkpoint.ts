// Training checkpoints: one safetensors file holding the model, its EMA, Adam's moments and, in the
// metadata, every counter and random-stream position a run needs to continue exactly where it stopped.
// Written atomically (temporary file, then rename): a killed run leaves the previous checkpoint intact.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { FastdiffError } from "../errors";
import { readSafetensors, writeSafetensors } from "../io/safetensors";
import type { LoaderPosition } from "../data/dataset";
import type { Network } from "../models/network";
import * as ops from "../ops";
import type { Adam, EMA } from "../optim";
import type { Tensor } from "../tensor";

export const CHECKPOINT_FILE = "checkpoint.safetensors";
const META_STATE = "fastdiff_train_state";

/** The counters of a run (JSON in the checkpoint's metadata). */
export interface TrainState {
  /** Iterations completed. */
  iteration: number;
  loader: LoaderPosition;
  /** Generator states (seed, offset as decimal strings): the trainer's draws and the network's dropout. */
  generator: { seed: string; offset: string };
  dropout: { seed: string; offset: string };
  adamSteps: number;
  emaUpdates: number;
  /** Images seen (for throughput and EMA bookkeeping). */
  images: number;
  /** The options that must not change across a resume (batch size, loss, seed…), as given. */
  fixed: Record<string, unknown>;
}

export function checkpointPath(dir: string): string {
  return join(dir, CHECKPOINT_FILE);
}

export function hasCheckpoint(dir: string): boolean {
  return existsSync(checkpointPath(dir));
}

/** Writes model, EMA and Adam state plus the counters, atomically. */
export async function saveCheckpoint(dir: string, net: Network, adam: Adam, ema: EMA | null, state: TrainState): Promise<void> {
  const tensors = new Map<string, Tensor>();
  net.namedParameters().forEach(([name, p], i) => {
    tensors.set(`model/${name}`, p);
    tensors.set(`adam.m/${name}`, adam.m[i]!);
    tensors.set(`adam.v/${name}`, adam.v[i]!);
    if (ema) tensors.set(`ema/${name}`, ema.averages[i]!);
  });
  const metadata = { [META_STATE]: JSON.stringify(state), fastdiff_network: JSON.stringify({ kind: net.kind, config: net.config }) };
  await writeSafetensors(checkpointPath(dir), tensors, metadata);
}

/** Reads a checkpoint into the run's objects (shapes checked by name) and returns its counters. */
export async function loadCheckpoint(
  dir: string, net: Network, adam: Adam, ema: EMA | null, check?: (state: TrainState) => void,
): Promise<TrainState> {
  const path = checkpointPath(dir);
  const { tensors, metadata } = await readSafetensors(path);
  try {
    const raw = metadata[META_STATE];
    if (!raw) throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: no '${META_STATE}' metadata (not a fastdiff training checkpoint)`);
    const state = parseState(path, raw);
    check?.(state); // e.g. refuse a resume with other settings before anything is overwritten
    // Check every tensor before copying any, so a bad checkpoint leaves the run's objects untouched.
    const pairs: [Tensor, Tensor][] = [];
    const collect = (prefix: string, targets: Tensor[]) => {
      net.namedParameters().forEach(([name], i) => {
        const key = `${prefix}/${name}`;
        const src = tensors.get(key);
        const dst = targets[i]!;
        if (!src) throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: missing tensor '${key}'`);
        if (src.shape.join(",") !== dst.shape.join(","))
          throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: '${key}' has shape ${JSON.stringify(src.shape)}, the model needs ${JSON.stringify(dst.shape)}`);
        pairs.push([dst, src]);
      });
    };
    collect("model", net.parameters());
    collect("adam.m", adam.m);
    collect("adam.v", adam.v);
    if (ema) collect("ema", ema.averages);
    for (const [dst, src] of pairs) ops.copy(dst, src);
    adam.stepCount = state.adamSteps;
    if (ema) ema.updates = state.emaUpdates;
    return state;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** The counters from the metadata JSON; ERR_FORMAT (not a SyntaxError or a later TypeError) when it is damaged. */
function parseState(path: string, raw: string): TrainState {
  let state: TrainState;
  try {
    state = JSON.parse(raw) as TrainState;
  } catch (err) {
    throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: training state is not valid JSON (${(err as Error).message})`);
  }
  const count = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
  const stream = (g: unknown) => typeof g === "object" && g !== null && typeof (g as { seed: unknown }).seed === "string" && typeof (g as { offset: unknown }).offset === "string";
  const ok = typeof state === "object" && state !== null && count(state.iteration) && count(state.adamSteps) && count(state.emaUpdates)
    && count(state.images) && typeof state.loader === "object" && state.loader !== null && count(state.loader.epoch) && count(state.loader.index)
    && stream(state.generator) && stream(state.dropout) && typeof state.fixed === "object" && state.fixed !== null;
  if (!ok) throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: training state is incomplete or malformed`);
  return state;
}
