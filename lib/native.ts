// The typed boundary to the addon: nothing else in lib/ touches the binding directly.
import { createRequire } from "node:module";
import * as path from "node:path";
import nodeGypBuild from "node-gyp-build";
import { FastdiffError } from "./errors";

/** Opaque handle of a native tensor. */
export interface NativeTensor {
  shape(): number[];
  disposed(): boolean;
  dispose(): void;
  dataSync(): Float32Array;
  data(): Promise<Float32Array>;
  requiresGrad(): boolean;
  setRequiresGrad(value: boolean): void;
  isLeaf(): boolean;
  grad(): NativeTensor | null;
  setGrad(grad: NativeTensor | null): void;
  gradFn(): string | null;
  detach(): NativeTensor;
  backward(gradient?: NativeTensor | null, retainGraph?: boolean): void;
  id(): number;
  device(): string;
}

type T = NativeTensor;
/** CUDA matmul/attention precision (float32 storage and accumulation in all): float32 FMA, TF32 or BF16 tensor cores. */
export type MatmulPrecision = "highest" | "high" | "medium";
export type ConvAlgorithm = "auto" | "direct" | "winograd" | "winograd4" | "direct3x3";
type Seed = number | bigint;

export interface MemoryInfo {
  /** Tensor handles alive in this thread (not yet disposed or collected). */
  liveTensors: number;
  /** Bytes held by live tensor storage (process-wide, including tensors kept by queued kernels and autograd). */
  bytes: number;
  blocks: number;
  /** Freed bytes the caching allocator keeps for reuse (at most cacheLimitBytes). */
  cachedBytes: number;
  /** The cap on cachedBytes: FASTDIFF_CACHE_MB, or by default a quarter of physical memory (at least 2 GiB). */
  cacheLimitBytes: number;
  peakBytes: number;
  /** Host allocations served from the cache, and those that went to the system (since the process started). */
  cacheHits: number;
  cacheMisses: number;
  /**
   * Bytes of the regions that hold host blocks of 64 KiB and more: 2 MiB-aligned, backed by transparent huge pages
   * where the system grants them (reserved address space; pages are resident once touched).
   */
  hugeMappedBytes: number;
  /** Per CUDA device: bytes held by live tensors, cached free blocks, peak (empty in a CPU-only build). */
  devices: { device: string; bytes: number; cachedBytes: number; peakBytes: number }[];
}

export interface CpuInfo {
  brand: string;
  bestIsa: Isa;
  activeIsa: Isa;
  threads: number;
  synchronous: boolean;
  features: Record<"avx2" | "fma" | "f16c" | "avx512f" | "avx512bw" | "avx512vl" | "avx512dq" | "avx512bf16", boolean>;
}

export interface CudaInfo {
  compiled: boolean;
  available: boolean;
  reason: string;
  devices: { index: number; name: string; computeCapability: string; memoryBytes: number }[];
}

export type Isa = "scalar" | "avx2" | "avx512";

/** A keyframe plan as the native feature cache takes it (binding/cpp/nn/feature_cache.h). */
export interface NativeReusePlan {
  points: string[];
  keyframes: boolean[];
  skips?: boolean[];
  scoreMixing: boolean;
  slope: number;
  bias: number;
}

/** Kernel time of one op on the stream, summed over its calls (see `profile`). */
export interface OpTiming {
  op: string;
  calls: number;
  seconds: number;
}

export interface Binding {
  NativeTensor: new () => NativeTensor;
  setErrorClass(ctor: new (code: string, message: string) => Error): void;
  memory(): MemoryInfo;
  emptyCache(): void;
  setMatmulPrecision(precision: MatmulPrecision): void;
  getMatmulPrecision(): MatmulPrecision;
  setConvAlgorithm(algorithm: ConvAlgorithm): void;
  getConvAlgorithm(): ConvAlgorithm;
  synchronize(): void;
  getNumThreads(): number;
  setNumThreads(n: number): void;
  getIsa(): Isa;
  setIsa(isa: Isa): void;
  cpuInfo(): CpuInfo;
  cudaInfo(): CudaInfo;
  setGradEnabled(enabled: boolean): boolean;
  isGradEnabled(): boolean;
  philoxBlock(seed: Seed, counter: Seed): number[];
  hostRandom(normal: boolean, n: number, seed: Seed, offset: Seed, a: number, b: number): Float32Array;
  setProfiling(enabled: boolean): void;
  profile(reset: boolean): OpTiming[];

  fromData(data: Float32Array, shape: number[]): T;
  full(shape: number[], value: number, device?: string): T;
  arange(start: number, end: number, step: number): T;
  rand(shape: number[], seed: Seed, offset: Seed, low: number, high: number, device?: string): T;
  randn(shape: number[], seed: Seed, offset: Seed, mean: number, std: number, device?: string): T;
  clone(x: T): T;
  toDevice(x: T, device: string): T;
  moveTo_(x: T, device: string): void;
  copy_(dst: T, src: T): void;
  unary(op: string, x: T, a?: number, b?: number): T;
  binary(op: string, a: T, b: T): T;
  where(cond: T, a: T, b: T): T;
  mulAdd(x: T, y: T, z: T): T;
  broadcastTo(x: T, shape: number[]): T;
  reduce(kind: "sum" | "mean" | "max" | "min", x: T, axes: number[], keepdim: boolean): T;
  var(x: T, axes: number[], keepdim: boolean, correction: number): T;
  norm(x: T): T;
  reshape(x: T, shape: number[]): T;
  permute(x: T, axes: number[]): T;
  concat(xs: T[], axis: number): T;
  slice(x: T, axis: number, start: number, end: number): T;
  split(x: T, sizes: number[], axis: number): T[];
  pad(x: T, pads: number[], value: number): T;
  matmul(a: T, b: T): T;
  linear(x: T, w: T, b: T | null, activation?: string | null, residual?: T | null, gate?: T | null): T;
  conv2d(x: T, w: T, b: T | null, stride: number[], padding: number[], dilation: number[], groups: number): T;
  upsampleNearest2d(x: T, scaleH: number, scaleW: number): T;
  avgPool2d(x: T, kh: number, kw: number, sh: number, sw: number): T;
  resize(x: T, height: number, width: number, mode: "bilinear" | "bicubic"): T;
  groupNorm(x: T, groups: number, w: T | null, b: T | null, eps: number, silu: boolean): T;
  layerNorm(x: T, w: T | null, b: T | null, eps: number): T;
  softmax(x: T, axis: number, log: boolean): T;
  attention(q: T, k: T, v: T, scale: number, tokensMajor: boolean): T;
  timestepEmbedding(t: T, dim: number, flip: boolean, shift: number, scale: number, maxPeriod: number): T;
  embedding(w: T, labels: number[]): T;
  dropout(x: T, p: number, seed: Seed, offset: Seed): T;
  mseLoss(a: T, b: T, reduction: "mean" | "sum" | "none"): T;
  sidLoss(r: T, f: T, xg: T, alpha: number): [T, T];
  checkFinite(x: T, name: string): void;
  adamStep(
    params: T[], m: T[], v: T[], lr: number, beta1: number, beta2: number, eps: number, weightDecay: number,
    decoupled: boolean, step: number, maxGradNorm: number, sanitize: boolean, stats: T | null,
  ): void;
  sgdStep(
    params: T[], buffers: T[], lr: number, momentum: number, weightDecay: number, nesterov: boolean,
    maxGradNorm: number, sanitize: boolean, stats: T | null,
  ): void;
  emaUpdate(ema: T[], params: T[], decay: number): void;

  // networks (binding/nn_binding.cc); configs are normalized by lib/models first
  networkSpecs(kind: string, config: Record<string, unknown>): { name: string; shape: number[] }[];
  networkCreate(kind: string, config: Record<string, unknown>, weights: [string, { handle: T } | T][] | null, seed: Seed): object;
  networkParameters(net: object): [string, T][];
  networkInfo(net: object): { kind: string; points: string[]; reusePoints: string[]; numClasses: number; nullClass?: number };
  networkForward(
    net: object, x: T, t: T, labels: Int32Array | null,
    options: {
      training: boolean; labelDropout: boolean; seed: number; offset: number; features: string[]; earlyExit: boolean;
      cache?: object; store: string[]; reuse: string[];
    },
    gate?: T | null,
  ): { output: T | null; features: [string, T][]; dropoutOffset: number };
  cacheCreate(): object;
  cacheClear(cache: object): void;
  cacheEntries(cache: object): [string, T][];
  cacheConfigure(cache: object, plan: NativeReusePlan | null): void;
  cacheNext(cache: object): { action: "full" | "reuse" | "skip"; lambda: number; index: number };
  cacheState(cache: object): { evaluation: number; planned: number | null; epsKey: T | null; epsPrev: T | null };
  cacheSetEps(cache: object, eps: T, keyframe: boolean): void;
  networkDeepPoints(net: object, branch: number): string[];
  flopsIssued(): number;
}

/** The package root (dist/ sits one level below it; so does lib/ under ts-jest/swc). */
export const packageRoot = path.resolve(__dirname, "..");

function load(): Binding {
  try {
    // FASTDIFF_ADDON: an explicit .node file (a second build tree while developing).
    const explicit = process.env.FASTDIFF_ADDON;
    if (explicit) return createRequire(path.join(packageRoot, "package.json"))(path.resolve(explicit)) as Binding;
    return nodeGypBuild(packageRoot) as Binding;
  } catch (cause) {
    const where = `${process.platform}-${process.arch}, Node ${process.versions.node}, N-API ${process.versions.napi}`;
    const err = new FastdiffError(
      "ERR_NO_BINARY",
      `fastdiff: no native binary for ${where} in ${packageRoot} (prebuilds/ or build/Release/). ` +
        `Build one from the package folder with "npx fastdiff build" or "npx cmake-js compile" ` +
        `(needs cmake >= 3.18 and a C++17 compiler). Cause: ${(cause as Error).message.split("\n")[0]}`,
    );
    throw err;
  }
}

export const native: Binding = load();
native.setErrorClass(FastdiffError);
