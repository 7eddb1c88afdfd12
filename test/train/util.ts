// Shared helpers for the training tests: tiny models and datasets, async error checks, temporary checkpoint
// folders (memory counts: settledMemory in ../helpers, re-exported).
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as fd from "../../lib";
import { ArrayDataset } from "../../lib/data";
export { settledMemory } from "../helpers";

/** `p` rejects with a FastdiffError of `code` whose message matches `pattern`; returns the error. */
export async function expectRejectCode(p: Promise<unknown>, code: string, pattern?: RegExp): Promise<fd.FastdiffError> {
  let caught: unknown = null;
  try {
    await p;
  } catch (e) {
    caught = e;
  }
  if (caught === null) throw new Error(`expected a rejection with ${code}`);
  expect(caught).toBeInstanceOf(fd.FastdiffError);
  const err = caught as fd.FastdiffError;
  expect(err.code).toBe(code);
  if (pattern) expect(err.message).toMatch(pattern);
  return err;
}

/** The small MLP of the training tests as an EDM denoiser (σ_data = 1 for the 2-D toy sets). */
export function tinyMlp(seed = 0, extra: fd.MLPConfig = {}): fd.NetworkDenoiser {
  const net = fd.MLP.create({ in_features: 2, hidden_size: 64, num_layers: 2, ...extra }, { seed });
  return new fd.NetworkDenoiser(net, { type: "edm", sigmaData: 1 });
}

/** n images [1, 8, 8] in [−1, 1] from a host hash (smooth per-class patterns plus jitter), labels i mod classes. */
export function tinyImages(n: number, classes: number, name = "tiny-images"): ArrayDataset {
  const data = new Float32Array(n * 64);
  const labels = classes > 0 ? new Int32Array(n) : null;
  let s = 12345;
  const rnd = (): number => {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    return s / 4294967296;
  };
  for (let i = 0; i < n; ++i) {
    const c = classes > 0 ? i % classes : 0;
    if (labels) labels[i] = c;
    for (let p = 0; p < 64; ++p) {
      const y = Math.floor(p / 8);
      const x = p % 8;
      data[i * 64 + p] = Math.max(-1, Math.min(1, 0.8 * Math.sin((x + 1) * (c + 1) * 0.4 + y * 0.3) + 0.2 * (2 * rnd() - 1)));
    }
  }
  return new ArrayDataset(name, data, [1, 8, 8], labels, classes);
}

/** A fresh temporary folder (removed by `cleanupDirs`). */
const made: string[] = [];
export function tempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `fastdiff-train-${tag}-`));
  made.push(dir);
  return dir;
}
export function cleanupDirs(): void {
  for (const d of made.splice(0)) fs.rmSync(d, { recursive: true, force: true });
}

/** The values of every parameter, concatenated (a copy). */
export function parameterValues(net: fd.Network): Float32Array {
  return concatValues(net.parameters());
}

/** The values of tensors, concatenated (a copy). */
export function concatValues(tensors: fd.Tensor[]): Float32Array {
  const parts = tensors.map((p) => p.dataSync());
  const out = new Float32Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Same float32 bits, element for element (NaN payloads included). */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Indices where two loss lists differ under Object.is (bit-for-bit for float32-valued doubles, NaN included). */
export function lossMismatches(a: readonly number[], b: readonly number[]): number[] {
  const bad: number[] = [];
  for (let i = 0; i < Math.max(a.length, b.length); ++i) if (!Object.is(a[i], b[i])) bad.push(i);
  return bad;
}

/** The training state stored in a checkpoint's metadata. */
export async function checkpointState(dir: string): Promise<fd.TrainState> {
  const { tensors, metadata } = await fd.readSafetensors(fd.checkpointPath(dir));
  for (const t of tensors.values()) t.dispose();
  return JSON.parse(metadata["fastdiff_train_state"]!) as fd.TrainState;
}

export function mean(a: readonly number[]): number {
  return a.reduce((s, v) => s + v, 0) / a.length;
}

/** Prints observed values when FASTDIFF_TEST_VERBOSE is set (the numbers the assertions' margins were chosen from). */
export function note(label: string, value: unknown): void {
  if (process.env.FASTDIFF_TEST_VERBOSE) console.log(`${label}: ${JSON.stringify(value)}`);
}
