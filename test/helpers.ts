// Shared test utilities: a safetensors reader for the golden files, error
// measures, seeded host random numbers and a directional finite-difference check.
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as v8 from "node:v8";
import * as vm from "node:vm";
import * as fd from "../lib";

export interface Loaded {
  tensors: Map<string, { shape: number[]; data: Float64Array }>;
  metadata: Record<string, string>;
}

/** Minimal safetensors reader (F32/F64/I64) for test fixtures. */
export function readSafetensors(file: string): Loaded {
  const buf = fs.readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString("utf8")) as Record<string, any>;
  const base = 8 + headerLen;
  const tensors = new Map<string, { shape: number[]; data: Float64Array }>();
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") continue;
    const [b, e] = info.data_offsets as [number, number];
    const raw = buf.subarray(base + b, base + e);
    const ab = raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength);
    let data: Float64Array;
    if (info.dtype === "F32") data = Float64Array.from(new Float32Array(ab));
    else if (info.dtype === "F64") data = new Float64Array(ab);
    else if (info.dtype === "I64") data = Float64Array.from(new BigInt64Array(ab), Number);
    else throw new Error(`unsupported dtype ${info.dtype}`);
    tensors.set(name, { shape: info.shape, data });
  }
  return { tensors, metadata: header.__metadata__ ?? {} };
}

// Under jest, test code runs in a vm context where each global lookup (Math.*) in a
// hot loop costs ~0.5 µs: the loops below use local aliases.
const { abs, max, imul } = Math;

export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; ++i) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

/** max |a − b| / max(1, max |b|). */
export function maxRelErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  let s = 1;
  for (let i = 0; i < a.length; ++i) {
    m = max(m, abs(a[i]! - b[i]!));
    s = max(s, abs(b[i]!));
  }
  return m / s;
}

/** Deterministic host RNG (mulberry32) for test inputs independent of the engine's RNG. */
export function hostRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = imul(t ^ (t >>> 15), t | 1);
    t ^= t + imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hostCache = new Map<string, Float32Array>();
/** Uniform values offset + scale·[−1, 1), generated once per (shape, seed, scale, offset); treat as read-only. */
export function hostValues(shape: number[], seed: number, scale = 1, offset = 0): Float32Array {
  const key = `${shape}|${seed}|${scale}|${offset}`;
  let v = hostCache.get(key);
  if (!v) {
    const r = hostRandom(seed);
    v = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < v.length; ++i) v[i] = offset + scale * (2 * r() - 1);
    hostCache.set(key, v);
  }
  return v;
}

export function randomTensor(shape: number[], seed: number, scale = 1, offset = 0): fd.Tensor {
  return fd.tensor(hostValues(shape, seed, scale, offset), shape);
}

/**
 * Checks the gradients of L = Σ f(inputs)·w (w random) against central
 * differences along random directions: ⟨∇L, v⟩ ≈ (L(x + hv) − L(x − hv)) / 2h,
 * evaluated in float32 with h chosen for it. Returns the worst relative error.
 */
export function gradcheck(
  f: (...xs: fd.Tensor[]) => fd.Tensor,
  inputs: fd.Tensor[],
  options: { h?: number; directions?: number; seed?: number; wrt?: number[] } = {},
): number {
  const h = options.h ?? 1e-2;
  const wrt = options.wrt ?? inputs.map((_, i) => i);
  const rand = hostRandom(options.seed ?? 7);
  return fd.scope(() => {
    const xs = inputs.map((x) => x.detach().clone());
    const out0 = fd.noGrad(() => f(...xs));
    const w = randomTensor(out0.shape, 99);
    const loss = (vals: fd.Tensor[]): number => fd.noGrad(() => fd.sum(fd.mul(f(...vals), w)).item());
    for (const i of wrt) xs[i]!.requiresGrad = true;
    fd.sum(fd.mul(f(...xs), w)).backward();
    const grads = xs.map((x, i) => (wrt.includes(i) ? x.grad!.dataSync() : null));
    let worst = 0;
    for (let d = 0; d < (options.directions ?? 3); ++d) {
      const dirs = xs.map((x, i) => (wrt.includes(i) ? Float32Array.from({ length: x.size }, () => 2 * rand() - 1) : null));
      const shifted = (sign: number): fd.Tensor[] =>
        xs.map((x, i) => {
          const v = dirs[i];
          if (!v) return x.detach();
          const base = x.dataSync();
          return fd.tensor(base.map((b, k) => b + sign * h * v[k]!), x.shape);
        });
      const numeric = (loss(shifted(1)) - loss(shifted(-1))) / (2 * h);
      let analytic = 0;
      let scale = 0;
      xs.forEach((_, i) => {
        const g = grads[i];
        const v = dirs[i];
        if (!g || !v) return;
        for (let k = 0; k < g.length; ++k) {
          analytic += g[k]! * v[k]!;
          scale += Math.abs(g[k]! * v[k]!);
        }
      });
      worst = Math.max(worst, Math.abs(numeric - analytic) / Math.max(scale, 1e-3));
    }
    return worst;
  });
}

/**
 * A file under the shared diffusers-derived golden data (`shared/golden`, beside the checkout
 * in CI; or FASTDIFF_GOLDEN), or null when absent: the caller's test then says plainly that it
 * did not run — except under CI, where the data must be there and its absence is a failure.
 */
export function goldenFile(relative: string): string | null {
  const roots: string[] = [];
  if (process.env.FASTDIFF_GOLDEN) roots.push(process.env.FASTDIFF_GOLDEN);
  // The parent folders of the checkout, then of the local repository it was cloned from (a CI
  // clone in a temporary folder), nearest first: <parent>/shared/golden.
  for (const checkout of [path.resolve(__dirname, ".."), localOrigin()]) {
    for (let dir = checkout; dir; dir = path.dirname(dir)) {
      roots.push(path.join(path.dirname(dir), "shared", "golden"));
      if (path.dirname(dir) === dir) break;
    }
  }
  for (const root of roots) {
    const file = path.join(root, relative);
    if (fs.existsSync(file)) return file;
  }
  if (process.env.CI) throw new Error(`golden data missing under CI: ${relative} (looked in ${roots.slice(0, 3).join(", ")}, …)`);
  console.warn(`golden data not found: ${relative} — this test DID NOT RUN (set FASTDIFF_GOLDEN to shared/golden)`);
  return null;
}

/** The folder this checkout was cloned from when that is a local path, else "". */
function localOrigin(): string {
  try {
    const url = execFileSync("git", ["config", "--get", "remote.origin.url"], {
      cwd: path.resolve(__dirname, ".."),
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    }).trim();
    const local = url.startsWith("file://") ? url.slice("file://".length) : url;
    return path.isAbsolute(local) && fs.existsSync(local) ? local : "";
  } catch {
    return ""; // not a git checkout, or no origin
  }
}

export type GoldenTensors = Map<string, { shape: number[]; data: Float64Array }>;

/** The tensors of a golden safetensors file (null when absent; see goldenFile). */
export function goldenTensors(relative: string): GoldenTensors | null {
  const file = goldenFile(relative);
  return file ? readSafetensors(file).tensors : null;
}

/** One tensor's values; a missing name fails the test. */
export function goldenValues(g: GoldenTensors, name: string): Float64Array {
  const t = g.get(name);
  if (!t) throw new Error(`golden tensor ${name} missing`);
  return t.data;
}

/** max over i of |a − b| / (atol + rtol·|b|): ≤ 1 passes an atol/rtol check. */
export function worstRatio(a: ArrayLike<number>, b: ArrayLike<number>, atol: number, rtol = 0): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let w = 0;
  for (let i = 0; i < b.length; ++i) w = Math.max(w, Math.abs(a[i]! - b[i]!) / (atol + rtol * Math.abs(b[i]!)));
  return w;
}

/** max |a − b|. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < b.length; ++i) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The same float32 bits, element by element. */
export function sameBits(a: Float32Array, b: Float32Array): boolean {
  const bytes = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  return a.length === b.length && bytes(a).equals(bytes(b));
}

/** Same shape and the same float32 bits. */
export function bitEqual(a: fd.Tensor, b: fd.Tensor): boolean {
  expect(a.shape).toEqual(b.shape);
  return sameBits(a.dataSync(), b.dataSync());
}

/** A conv2d test case: input and weight shapes, padding, whether there is a bias. */
export interface ConvCase {
  x: number[];
  w: number[];
  pad: number;
  bias: boolean;
}

/** [y, ∂(Σ y·r)/∂x] of conv case c on seeded random inputs (seeds from i) under the current settings; the weight
 * records its gradient when `wGrad`, else the conv keeps it packed across calls. */
export function convOutputAndInputGrad(c: ConvCase, i: number, wGrad = false): Float32Array[] {
  return fd.scope(() => {
    const x = randomTensor(c.x, 1000 + i);
    const w = randomTensor(c.w, 2000 + i, 1 / Math.sqrt(c.w[1]! * 9));
    const b = c.bias ? randomTensor([c.w[0]!], 3000 + i) : null;
    x.requiresGrad = true;
    w.requiresGrad = wGrad;
    const y = fd.conv2d(x, w, b, { padding: c.pad });
    const out = [y.dataSync()];
    fd.sum(fd.mul(y, randomTensor(y.shape, 4000 + i))).backward();
    out.push(x.grad!.dataSync());
    return out;
  });
}

/** Runs f, which issues one conv2d, with the profiler on; returns the path the conv took, from its profiler row
 * ("conv2d [1, 128, 7, 7] → 128 3×3 (direct3x3)"): the bits cannot always tell the direct paths apart. */
export function convPathOf(f: () => void): string {
  fd.synchronize();
  fd.profile({ reset: true });
  fd.setProfiling(true);
  try {
    f();
    fd.synchronize();
  } finally {
    fd.setProfiling(false);
  }
  const rows = fd.profile({ reset: true }).filter((r) => r.op.startsWith("conv2d"));
  expect(rows).toHaveLength(1);
  return /\((\w+)\)$/.exec(rows[0]!.op)![1]!;
}

/** `f` throws a FastdiffError with `code` (and a message matching `pattern`). */
export function expectCode(f: () => unknown, code: string, pattern?: RegExp): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(fd.FastdiffError);
    expect((e as fd.FastdiffError).code).toBe(code);
    if (pattern) expect((e as Error).message).toMatch(pattern);
    return;
  }
  throw new Error(`expected ${code}`);
}

/** The CPU's best ISA, the SIMD ISAs it can run (AVX2 also on an AVX-512 CPU) and the thread count; restores
 * ISA and threads after the calling suite, which may switch them. */
export function engineSettings(): { best: fd.Isa; isas: ("avx2" | "avx512")[]; threads: number } {
  const best = fd.devices().cpu.bestIsa;
  const isas = (["avx2", "avx512"] as const).filter((isa) => isa === best || (isa === "avx2" && best === "avx512"));
  const threads = fd.getNumThreads();
  afterAll(() => {
    fd.setIsa(best);
    fd.setNumThreads(threads);
  });
  return { best, isas, threads };
}

/** The FastdiffError code a promise rejects with (undefined when it resolves). */
export async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    return (e as fd.FastdiffError).code;
  }
  return undefined;
}

v8.setFlagsFromString("--expose-gc");
const collectGarbage = vm.runInNewContext("gc") as () => void;

/** Live tensor handles and bytes once the deferred finalizers of garbage handles have run: collect and yield
 * until the count holds still for five rounds of 10 ms (a loaded machine runs FinalizationRegistry callbacks and
 * N-API finalizers several turns late: a shorter wait let 16–32 garbage handles through under load).
 * A real leak keeps its handles reachable, so it still shows. */
export async function settledMemory(): Promise<{ live: number; bytes: number }> {
  fd.synchronize();
  let last = { live: -1, bytes: -1 };
  let still = 0;
  for (let round = 0; round < 200 && still < 5; ++round) {
    collectGarbage();
    await new Promise((r) => setImmediate(r));
    collectGarbage();
    await new Promise((r) => setTimeout(r, 10));
    const m = fd.memory();
    const now = { live: m.liveTensors, bytes: m.bytes };
    still = now.live === last.live && now.bytes === last.bytes ? still + 1 : 0;
    last = now;
  }
  return last;
}
