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

/** A network with its optimizer and EMA, stored under `prefix` ("" → model/…, adam.m/…, adam.v/…, ema/…). */
export interface CheckpointPart {
  prefix: string;
  net: Network;
  adam: Adam;
  ema: EMA | null;
}

/** Writes the parts' tensors and a JSON state (under metadata key `stateKey`), atomically. */
export async function writeCheckpoint(dir: string, parts: CheckpointPart[], stateKey: string, state: object): Promise<void> {
  const tensors = new Map<string, Tensor>();
  const networks: Record<string, unknown> = {};
  for (const { prefix, net, adam, ema } of parts) {
    net.namedParameters().forEach(([name, p], i) => {
      tensors.set(`${prefix}model/${name}`, p);
      tensors.set(`${prefix}adam.m/${name}`, adam.m[i]!);
      tensors.set(`${prefix}adam.v/${name}`, adam.v[i]!);
      if (ema) tensors.set(`${prefix}ema/${name}`, ema.averages[i]!);
    });
    networks[prefix] = { kind: net.kind, config: net.config };
  }
  const network = parts.length === 1 && parts[0]!.prefix === "" ? networks[""] : networks;
  await writeSafetensors(checkpointPath(dir), tensors, { [stateKey]: JSON.stringify(state), fastdiff_network: JSON.stringify(network) });
}

/**
 * Reads a checkpoint into the parts (shapes checked by name) and returns its state as `parse` reads it; `check`
 * may refuse it (e.g. a resume with other settings). Every tensor is checked before any is copied, so a bad
 * checkpoint leaves the run's objects untouched. Adam's step count and the EMA's update count come from
 * `counts(state, prefix)`.
 */
export async function readCheckpoint<S>(
  dir: string, parts: CheckpointPart[], stateKey: string, parse: (path: string, raw: string) => S,
  counts: (state: S, prefix: string) => { adamSteps: number; emaUpdates: number }, check?: (state: S) => void,
): Promise<S> {
  const path = checkpointPath(dir);
  const { tensors, metadata } = await readSafetensors(path);
  try {
    const raw = metadata[stateKey];
    if (!raw) throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: no '${stateKey}' metadata (not a checkpoint of this kind of run)`);
    const state = parse(path, raw);
    check?.(state);
    const pairs: [Tensor, Tensor][] = [];
    for (const { prefix, net, adam, ema } of parts) {
      const collect = (group: string, targets: Tensor[]) => {
        net.namedParameters().forEach(([name], i) => {
          const key = `${prefix}${group}/${name}`;
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
    }
    for (const [dst, src] of pairs) ops.copy(dst, src);
    for (const { prefix, adam, ema } of parts) {
      const c = counts(state, prefix);
      adam.stepCount = c.adamSteps;
      if (ema) ema.updates = c.emaUpdates;
    }
    return state;
  } finally {
    for (const t of tensors.values()) t.dispose();
  }
}

/** Writes model, EMA and Adam state plus the counters, atomically. */
export async function saveCheckpoint(dir: string, net: Network, adam: Adam, ema: EMA | null, state: TrainState): Promise<void> {
  await writeCheckpoint(dir, [{ prefix: "", net, adam, ema }], META_STATE, state);
}

/** Reads a checkpoint into the run's objects (shapes checked by name) and returns its counters. */
export async function loadCheckpoint(
  dir: string, net: Network, adam: Adam, ema: EMA | null, check?: (state: TrainState) => void,
): Promise<TrainState> {
  return readCheckpoint(dir, [{ prefix: "", net, adam, ema }], META_STATE, parseState, (s) => s, check);
}

/** A run's state from the metadata JSON, checked by `valid`; ERR_FORMAT (not a SyntaxError or a later TypeError)
 * when it is damaged. `what` names the kind of run in the message. */
export function parseCheckpointState<S>(path: string, raw: string, what: string, valid: (state: S) => boolean): S {
  let state: S;
  try {
    state = JSON.parse(raw) as S;
  } catch (err) {
    throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: ${what} state is not valid JSON (${(err as Error).message})`);
  }
  if (typeof state !== "object" || state === null || !valid(state)) throw new FastdiffError("ERR_FORMAT", `checkpoint ${path}: ${what} state is incomplete or malformed`);
  return state;
}

const count = (v: unknown) => Number.isInteger(v) && (v as number) >= 0;
/** A saved Generator state. */
export const isStreamState = (g: unknown) =>
  typeof g === "object" && g !== null && typeof (g as { seed: unknown }).seed === "string" && typeof (g as { offset: unknown }).offset === "string";

function parseState(path: string, raw: string): TrainState {
  return parseCheckpointState<TrainState>(path, raw, "training", (state) =>
    count(state.iteration) && count(state.adamSteps) && count(state.emaUpdates) && count(state.images)
    && typeof state.loader === "object" && state.loader !== null && count(state.loader.epoch) && count(state.loader.index)
    && isStreamState(state.generator) && isStreamState(state.dropout) && typeof state.fixed === "object" && state.fixed !== null);
}
