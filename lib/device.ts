// What the machine offers and how the engine uses it.
import { availableParallelism } from "node:os";

import { argumentError } from "./errors";
import { native, type CpuInfo, type CudaInfo, type Isa, type MatmulPrecision, type ConvAlgorithm, type OpTiming } from "./native";

export interface Devices {
  cpu: CpuInfo;
  cuda: CudaInfo;
}

/** CPU features and threads, and CUDA devices (or why there are none). */
export function devices(): Devices {
  return { cpu: native.cpuInfo(), cuda: native.cudaInfo() };
}

/** Threads of the one kernel thread pool (default: FASTDIFF_NUM_THREADS or all cores). */
export function getNumThreads(): number {
  return native.getNumThreads();
}
export function setNumThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw argumentError("setNumThreads", `threads must be a positive integer, got ${String(n)}`);
  native.setNumThreads(n);
}

/** The kernel variant in use: "scalar" (the reference), "avx2" or "avx512". */
export function getIsa(): Isa {
  return native.getIsa();
}
/** Pins the kernel variant (e.g. to compare a SIMD kernel with the scalar reference). */
export function setIsa(isa: Isa): void {
  native.setIsa(isa);
}
export type { Isa, CpuInfo, CudaInfo };

/** Turns per-op kernel timing on or off (also FASTDIFF_PROFILE=1). Costs two clock reads per kernel. */
export function setProfiling(enabled: boolean): void {
  native.setProfiling(enabled);
}

/** Kernel seconds per op since profiling began (or the last reset), largest first. Call after a sync point
 * (e.g. `await t.data()`) to see everything that was queued. */
export function profile(options: { reset?: boolean } = {}): OpTiming[] {
  return native.profile(options.reset ?? false);
}

/**
 * FLOPs of the GEMM-class ops issued so far in this process (conv2d, linear, matmul, attention; 2 per
 * multiply-add, counted when the op is enqueued) — over 95% of a UNet's or DiT's work. Read it before and after
 * a piece of work to count what that work executed (e.g. what feature reuse saves).
 */
export function flopsIssued(): number {
  return native.flopsIssued();
}

/**
 * Internal precision of matrix products, named like torch.set_float32_matmul_precision. Storage and
 * accumulation stay float32 everywhere; what changes is how the operands are rounded before they multiply.
 * - CUDA (matmul, linear, convolution, attention): "highest" float32 FMA, "high" TF32 tensor cores (the
 *   default), "medium" BF16 tensor cores.
 * - CPU (matmul and linear, forward and backward, and the 16 GEMMs of an F(2×2) Winograd convolution): "medium" rounds
 *   both operands to bfloat16 and multiplies with AVX512-BF16 (`vdpbf16ps`; 1.6–1.8× the float32 GEMM rate
 *   measured) on CPUs that have it (`devices().cpu.features.avx512bf16`) under the AVX-512 kernels; "highest" and
 *   "high" compute in float32. Direct and F(4×4) Winograd convolutions (see setConvAlgorithm) and
 *   attention stay float32, and so does everything on a CPU without AVX512-BF16: never less precision than asked for.
 * Read when each kernel runs, so set it before queuing the work it should apply to.
 */
export function setMatmulPrecision(precision: MatmulPrecision): void {
  if (precision !== "highest" && precision !== "high" && precision !== "medium")
    throw argumentError("setMatmulPrecision", `precision must be "highest", "high" or "medium", got ${String(precision)}`);
  native.setMatmulPrecision(precision);
}
export function getMatmulPrecision(): MatmulPrecision {
  return native.getMatmulPrecision();
}

/**
 * How CPU convolutions compute (CUDA convolutions are unaffected):
 * - "auto" (the default): for 3×3 stride-1 convolutions with ≥ 32 input and output channels, Winograd
 *   F(4×4, 3×3) (2.25 multiplications per output; direct: 9) from 16 tiles of 4×4 outputs per thread (a
 *   28×28 map on 2 threads), else F(2×2, 3×3) (4 per output) from 256 tiles of 2×2; the direct implicit GEMM
 *   otherwise — on one small image the transforms cost what the fewer multiplications save. When the call
 *   records no gradient for the weight (sampling, a frozen teacher), its transform is kept packed across calls
 *   and Winograd pays from fewer tiles: F(4×4) from 16 (a 14×14 map) on 1 thread and 32 on more (there its
 *   transformed weights, 2.25× F(2×2)'s bytes, cost more to fetch than they save), F(2×2) from 16 tiles
 *   of 2×2 (a 7×7 map) on 1 thread, on more from 128 input channels. Under matmul precision "medium" with
 *   bf16 GEMMs, "auto" takes F(2×2) (its GEMMs in bf16, then paying on 2 threads from 32 channels) and never
 *   F(4×4), whose transforms would amplify bf16 rounding; measured per shape in bench/RESULTS.md. Before all
 *   of these, on 2 or more threads with AVX-512 and float32 GEMMs, 3×3 stride-1 convolutions with ≥ 16 input and
 *   output channels and at most 64 output pixels over the batch (one 7×7 or 8×8 map) take "direct3x3";
 * - "direct": always the implicit GEMM (a few ulps closer to float64 than Winograd);
 * - "direct3x3": a direct 3×3 kernel that holds 32 output channels in vector lanes and broadcasts input pixels,
 *   reading the raw weights once per strip of ≤ 14 outputs (the layout of onnxruntime's NCHWc kernels), for
 *   every convolution it can compute (3×3, stride 1, dilation 1, groups 1, padding 0 or 1, the AVX-512 ISA;
 *   others take the implicit GEMM); on a small map on 2 threads it beats both GEMM-based paths, whose products
 *   there have few columns (on 1 thread it ties F(2×2)); its sums are those of "direct" up to where the implicit
 *   GEMM splits the reduction;
 * - "winograd": F(2×2, 3×3) for every convolution it can compute (3×3, stride 1, dilation 1, groups 1,
 *   padding 0 or 1);
 * - "winograd4": F(4×4, 3×3) for every convolution it can compute, its GEMMs always float32.
 * The scalar ISA (`setIsa("scalar")`, the reference) always computes directly. Every algorithm gives the same
 * result for any thread count; they differ from each other by rounding (F(2×2) ≤ 4e-6 of the output scale,
 * F(4×4) ≤ 3e-5: its transforms' coefficients reach 5 and 8).
 * Read when each kernel runs, so set it before queuing the work it should apply to.
 */
export function setConvAlgorithm(algorithm: ConvAlgorithm): void {
  const algorithms: ConvAlgorithm[] = ["auto", "direct", "winograd", "winograd4", "direct3x3"];
  if (!algorithms.includes(algorithm))
    throw argumentError(
      "setConvAlgorithm",
      `algorithm must be one of ${algorithms.map((a) => `"${a}"`).join(", ")}, got ${String(algorithm)}`,
    );
  native.setConvAlgorithm(algorithm);
}
export function getConvAlgorithm(): ConvAlgorithm {
  return native.getConvAlgorithm();
}

/** How `tensor.data()` waits for the stream: "poll" keeps the event loop turning (setImmediate: timers and I/O
 * still run) for up to 25 ms before it lets it sleep; "sleep" lets it sleep at once, until the stream's completion
 * wakes it; "auto" (the default) polls when the kernel threads leave a core free. A sleeping thread's wake-up costs
 * 0.1–0.4 ms on a VM (2–3% of a 14 ms batch-1 forward); polling spends that core meanwhile, never beyond 25 ms. */
export type ReadWait = "auto" | "poll" | "sleep";
const READ_WAITS: ReadWait[] = ["auto", "poll", "sleep"];
const POLL_MS = 25;
let readWait: ReadWait = "auto";

/** Sets how `tensor.data()` waits (see ReadWait); read at each call. */
export function setReadWait(wait: ReadWait): void {
  if (!READ_WAITS.includes(wait))
    throw argumentError("setReadWait", `wait must be one of ${READ_WAITS.map((w) => `"${w}"`).join(", ")}, got ${String(wait)}`);
  readWait = wait;
}
export function getReadWait(): ReadWait {
  return readWait;
}

/** `read` (a pending stream read), awaited as the read-wait policy says. */
export async function awaitRead<T>(read: Promise<T>): Promise<T> {
  const poll = readWait === "poll" || (readWait === "auto" && getNumThreads() < availableParallelism());
  if (poll) {
    let settled = false;
    const settle = () => { settled = true; };
    read.then(settle, settle);
    const end = performance.now() + POLL_MS;
    while (!settled && performance.now() < end) await new Promise((resolve) => setImmediate(resolve));
  }
  return read;
}
