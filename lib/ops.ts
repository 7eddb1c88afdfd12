// The op set as functions. Options are validated here; shapes are checked in C++
// (errors name the op and the shapes). Every op records its gradient when an
// input requires one and grad mode is on.
import { argumentError, FastdiffError } from "./errors";
import { native, type NativeTensor } from "./native";
import { resolveDraw, type RandomOptions } from "./random";
import { Tensor, wrap, type DeviceName, type Operand, type Shape } from "./tensor";

// ---------------------------------------------------------------- helpers
function h(op: string, t: unknown, name = "x"): NativeTensor {
  if (!(t instanceof Tensor)) throw argumentError(op, `'${name}' must be a Tensor, got ${describe(t)}`);
  return t.handle;
}
function describe(v: unknown): string {
  return v === null ? "null" : Array.isArray(v) ? "an array" : typeof v;
}
function finite(op: string, v: unknown, name: string): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw argumentError(op, `'${name}' must be a finite number, got ${String(v)}`);
  return v;
}
function int(op: string, v: unknown, name: string, min = -Infinity): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min)
    throw argumentError(op, `'${name}' must be an integer${min > -Infinity ? ` >= ${min}` : ""}, got ${String(v)}`);
  return v;
}
function shapeOf(op: string, shape: unknown): number[] {
  if (!Array.isArray(shape)) throw argumentError(op, `shape must be an array of integers, got ${describe(shape)}`);
  return shape.map((d, i) => int(op, d, `shape[${i}]`, 0));
}
function axesOf(axes: number | number[] | undefined): number[] {
  return axes === undefined ? [] : typeof axes === "number" ? [axes] : axes;
}
function pair(op: string, v: number | readonly [number, number], name: string, min: number): number[] {
  const p = typeof v === "number" ? [v, v] : [...v];
  if (p.length !== 2) throw argumentError(op, `'${name}' must be a number or [h, w]`);
  return p.map((x, i) => int(op, x, `${name}[${i}]`, min));
}
/** A number operand as a one-element tensor on the other operand's device (disposed by the caller). */
function scalarTensor(v: number, like: Operand): NativeTensor {
  return native.full([1], v, like instanceof Tensor ? like.device : "cpu");
}
function binaryOp(op: string, a: Operand, b: Operand): Tensor {
  if (typeof a === "number" && typeof b === "number") throw argumentError(op, "at least one operand must be a Tensor");
  const ta = typeof a === "number" ? scalarTensor(numberOperand(op, a), b) : h(op, a, "a");
  const tb = typeof b === "number" ? scalarTensor(numberOperand(op, b), a) : h(op, b, "b");
  try {
    return wrap(native.binary(op, ta, tb));
  } finally {
    if (typeof a === "number") ta.dispose();
    if (typeof b === "number") tb.dispose();
  }
}
function numberOperand(op: string, v: number): number {
  if (typeof v !== "number") throw argumentError(op, `operand must be a Tensor or a number, got ${describe(v)}`);
  return v;
}
function unaryOp(op: string, x: Tensor, a = 0, b = 0): Tensor {
  return wrap(native.unary(op, h(op, x), a, b));
}

// ---------------------------------------------------------------- creation
type Nested = number | readonly Nested[];

function flattenNested(data: Nested, shape: number[], out: number[], depth = 0): void {
  if (typeof data === "number") {
    if (depth !== shape.length) throw new FastdiffError("ERR_SHAPE", "tensor: ragged nested array");
    out.push(data);
    return;
  }
  if (depth === shape.length) shape.push(data.length);
  else if (shape[depth] !== data.length) throw new FastdiffError("ERR_SHAPE", "tensor: ragged nested array");
  for (const d of data) flattenNested(d, shape, out, depth + 1);
}

/** A tensor from values: a flat array/Float32Array with `shape`, or nested arrays (shape inferred). */
/** True for a Float32Array from any realm (vm contexts, jest) — `instanceof` is realm-bound. */
function isFloat32Array(v: unknown): v is Float32Array {
  return ArrayBuffer.isView(v) && Object.prototype.toString.call(v) === "[object Float32Array]";
}

export function tensor(data: Float32Array | readonly Nested[] | number, shape?: Shape, options: DeviceOptions = {}): Tensor {
  let values: Float32Array;
  let dims: number[];
  if (isFloat32Array(data)) {
    values = data;
    dims = shape ? shapeOf("tensor", shape) : [data.length];
  } else if (typeof data === "number") {
    values = new Float32Array([data]);
    dims = shape ? shapeOf("tensor", shape) : [];
  } else if (Array.isArray(data)) {
    if (shape) {
      dims = shapeOf("tensor", shape);
      values = Float32Array.from(data as number[]);
    } else {
      const inferred: number[] = [];
      const flat: number[] = [];
      flattenNested(data as readonly Nested[], inferred, flat);
      dims = inferred;
      values = Float32Array.from(flat);
    }
  } else {
    throw argumentError("tensor", `data must be a Float32Array, a (nested) number array or a number, got ${describe(data)}`);
  }
  const host = native.fromData(values, dims);
  if (options.device === undefined || options.device === "cpu") return wrap(host);
  try {
    return wrap(native.toDevice(host, options.device));
  } finally {
    host.dispose();
  }
}
/** Where a created tensor lives (default "cpu"). */
export interface DeviceOptions {
  device?: DeviceName;
}
export function full(shape: Shape, value: number, options: DeviceOptions = {}): Tensor {
  if (typeof value !== "number") throw argumentError("full", `value must be a number, got ${describe(value)}`);
  return wrap(native.full(shapeOf("full", shape), value, options.device));
}
export function zeros(shape: Shape, options: DeviceOptions = {}): Tensor { return full(shape, 0, options); }
export function ones(shape: Shape, options: DeviceOptions = {}): Tensor { return full(shape, 1, options); }
export function zerosLike(x: Tensor): Tensor { return full(x.shape, 0, { device: x.device }); }
export function onesLike(x: Tensor): Tensor { return full(x.shape, 1, { device: x.device }); }
/** x on `device`: x itself when already there, else a copy; gradients flow back to x's device. */
export function to(x: Tensor, device: DeviceName): Tensor {
  if (typeof device !== "string") throw argumentError("to", `device must be "cpu", "cuda" or "cuda:N", got ${describe(device)}`);
  if (x.device === (device === "cuda" ? "cuda:0" : device)) return x;
  return wrap(native.toDevice(h("to", x), device));
}
/** [start, end) in steps of `step`; arange(n) is [0, n). */
export function arange(start: number, end?: number, step = 1): Tensor {
  if (end === undefined) [start, end] = [0, start];
  return wrap(native.arange(finite("arange", start, "start"), finite("arange", end, "end"), finite("arange", step, "step")));
}
/** Standard normal values (scaled by std, shifted by mean) from Philox(seed, offset). */
export function randn(shape: Shape, options: RandomOptions & DeviceOptions & { mean?: number; std?: number } = {}): Tensor {
  const dims = shapeOf("randn", shape);
  const [seed, offset] = resolveDraw("randn", dims.reduce((a, b) => a * b, 1), options);
  return wrap(native.randn(dims, seed, offset, options.mean ?? 0, options.std ?? 1, options.device));
}
/** Uniform values in [low, high) from Philox(seed, offset). */
export function rand(shape: Shape, options: RandomOptions & DeviceOptions & { low?: number; high?: number } = {}): Tensor {
  const dims = shapeOf("rand", shape);
  const [seed, offset] = resolveDraw("rand", dims.reduce((a, b) => a * b, 1), options);
  return wrap(native.rand(dims, seed, offset, options.low ?? 0, options.high ?? 1, options.device));
}
/** The n values `randn([n], options)` would hold, computed on the calling thread: no tensor, and no wait for the
 * kernels queued before it (reading a random tensor back with dataSync waits for all of them). The generator
 * advances exactly as for `randn`. */
export function randnValues(n: number, options: RandomOptions & { mean?: number; std?: number } = {}): Float32Array {
  return hostDraw("randnValues", true, n, options, options.mean ?? 0, options.std ?? 1);
}
/** The n values `rand([n], options)` would hold, on the calling thread (see randnValues). */
export function randValues(n: number, options: RandomOptions & { low?: number; high?: number } = {}): Float32Array {
  return hostDraw("randValues", false, n, options, options.low ?? 0, options.high ?? 1);
}
function hostDraw(op: string, normal: boolean, n: number, options: RandomOptions, a: number, b: number): Float32Array {
  const count = int(op, n, "n", 0);
  const [seed, offset] = resolveDraw(op, count, options);
  return native.hostRandom(normal, count, seed, offset, a, b);
}

// ---------------------------------------------------------------- elementwise
export function add(a: Operand, b: Operand): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("affine", a, 1, b);
  if (typeof a === "number" && b instanceof Tensor) return unaryOp("affine", b, 1, a);
  return binaryOp("add", a, b);
}
export function sub(a: Operand, b: Operand): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("affine", a, 1, -b);
  if (typeof a === "number" && b instanceof Tensor) return unaryOp("affine", b, -1, a);
  return binaryOp("sub", a, b);
}
export function mul(a: Operand, b: Operand): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("affine", a, b, 0);
  if (typeof a === "number" && b instanceof Tensor) return unaryOp("affine", b, a, 0);
  return binaryOp("mul", a, b);
}
export function div(a: Operand, b: Operand): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("affine", a, 1 / b, 0);
  return binaryOp("div", a, b);
}
export function pow(a: Operand, b: Operand): Tensor {
  if (typeof b === "number" && a instanceof Tensor) return unaryOp("pow", a, b);
  return binaryOp("pow", a, b);
}
export function maximum(a: Operand, b: Operand): Tensor { return binaryOp("maximum", a, b); }
export function minimum(a: Operand, b: Operand): Tensor { return binaryOp("minimum", a, b); }
export function neg(x: Tensor): Tensor { return unaryOp("neg", x); }
export function exp(x: Tensor): Tensor { return unaryOp("exp", x); }
export function log(x: Tensor): Tensor { return unaryOp("log", x); }
export function sqrt(x: Tensor): Tensor { return unaryOp("sqrt", x); }
export function rsqrt(x: Tensor): Tensor { return unaryOp("rsqrt", x); }
export function abs(x: Tensor): Tensor { return unaryOp("abs", x); }
export function square(x: Tensor): Tensor { return unaryOp("square", x); }
/** −1, 0 or 1 (no gradient). */
export function sign(x: Tensor): Tensor { return unaryOp("sign", x); }
export function sigmoid(x: Tensor): Tensor { return unaryOp("sigmoid", x); }
/** log(1 + eˣ), linear above 20 like PyTorch. */
export function softplus(x: Tensor): Tensor { return unaryOp("softplus", x); }
export function tanh(x: Tensor): Tensor { return unaryOp("tanh", x); }
export function relu(x: Tensor): Tensor { return unaryOp("relu", x); }
export function silu(x: Tensor): Tensor { return unaryOp("silu", x); }
export interface GeluOptions {
  /** "none": exact (erf), "tanh": the tanh approximation. Default "none". */
  approximate?: "none" | "tanh";
}
export function gelu(x: Tensor, options: GeluOptions = {}): Tensor {
  const mode = options.approximate ?? "none";
  if (mode !== "none" && mode !== "tanh") throw argumentError("gelu", `approximate must be "none" or "tanh", got ${String(mode)}`);
  return unaryOp(mode === "tanh" ? "gelu_tanh" : "gelu_erf", x);
}
export function clamp(x: Tensor, min: number, max: number): Tensor {
  if (typeof min !== "number" || typeof max !== "number" || Number.isNaN(min) || Number.isNaN(max) || min > max)
    throw argumentError("clamp", `need numbers min <= max, got ${String(min)}, ${String(max)}`);
  return unaryOp("clamp", x, min, max);
}
/** 1 where x is NaN, else 0 (no gradient). */
export function isnan(x: Tensor): Tensor { return unaryOp("isnan", x); }
export interface NanToNumOptions {
  nan?: number;
  /** Replacement for +Inf (−Inf becomes its negative). Default: the largest float32. */
  posinf?: number;
}
export function nanToNum(x: Tensor, options: NanToNumOptions = {}): Tensor {
  return unaryOp("nan_to_num", x, options.nan ?? 0, options.posinf ?? 3.4028234663852886e38);
}
/** cond ≠ 0 ? a : b, broadcasting all three. */
export function where(cond: Tensor, a: Operand, b: Operand): Tensor {
  const ta = typeof a === "number" ? scalarTensor(a, cond) : h("where", a, "a");
  const tb = typeof b === "number" ? scalarTensor(b, cond) : h("where", b, "b");
  try {
    return wrap(native.where(h("where", cond, "cond"), ta, tb));
  } finally {
    if (typeof a === "number") ta.dispose();
    if (typeof b === "number") tb.dispose();
  }
}
/** x·y + z, broadcasting all three, in one pass with one rounding (fused multiply-add): e.g. a gated residual. */
export function mulAdd(x: Tensor, y: Tensor, z: Tensor): Tensor {
  return wrap(native.mulAdd(h("mulAdd", x, "x"), h("mulAdd", y, "y"), h("mulAdd", z, "z")));
}

// ---------------------------------------------------------------- reductions
/** Sums over `axes` (all when omitted). Deterministic: fixed summation order for any thread count. */
export function sum(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  return wrap(native.reduce("sum", h("sum", x), axesOf(axes), keepdim));
}
export function mean(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  return wrap(native.reduce("mean", h("mean", x), axesOf(axes), keepdim));
}
/** Maximum over axes; the gradient is shared evenly among tied maxima. */
export function max(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  return wrap(native.reduce("max", h("max", x), axesOf(axes), keepdim));
}
export function min(x: Tensor, axes?: number | number[], keepdim = false): Tensor {
  return wrap(native.reduce("min", h("min", x), axesOf(axes), keepdim));
}
export interface VarianceOptions {
  keepdim?: boolean;
  /** Degrees-of-freedom correction: 1 = unbiased (default), 0 = biased. */
  correction?: number;
}
export function variance(x: Tensor, axes?: number | number[], options: VarianceOptions = {}): Tensor {
  const correction = int("variance", options.correction ?? 1, "correction", 0);
  return wrap(native.var(h("variance", x), axesOf(axes), options.keepdim ?? false, correction));
}
/** The L2 norm of all elements. */
export function norm(x: Tensor): Tensor { return wrap(native.norm(h("norm", x))); }
/** √(Σ‖tᵢ‖²) over a list of tensors (e.g. all gradients). */
export function globalNorm(tensors: Tensor[]): Tensor {
  if (tensors.length === 0) throw argumentError("globalNorm", "no tensors given");
  let total: Tensor | null = null;
  for (const t of tensors) {
    const sq = sum(square(t));
    const next: Tensor = total ? add(total, sq) : sq;
    if (total) { total.dispose(); sq.dispose(); }
    total = next;
  }
  const out = sqrt(total!);
  total!.dispose();
  return out;
}

// ---------------------------------------------------------------- shape
/** Free: shares storage. One dimension may be −1. */
export function reshape(x: Tensor, shape: Shape): Tensor {
  if (!Array.isArray(shape)) throw argumentError("reshape", "shape must be an array");
  return wrap(native.reshape(h("reshape", x), shape.map((d, i) => int("reshape", d, `shape[${i}]`, -1))));
}
export function flatten(x: Tensor, startAxis = 0, endAxis = -1): Tensor {
  const s = x.shape;
  const a = startAxis < 0 ? startAxis + s.length : startAxis;
  const b = endAxis < 0 ? endAxis + s.length : endAxis;
  if (a < 0 || b >= s.length || a > b) throw new FastdiffError("ERR_SHAPE", `flatten: axes ${startAxis}..${endAxis} out of range for [${s.join(", ")}]`);
  return reshape(x, [...s.slice(0, a), s.slice(a, b + 1).reduce((p, q) => p * q, 1), ...s.slice(b + 1)]);
}
export function unsqueeze(x: Tensor, axis: number): Tensor {
  const s = x.shape;
  const a = axis < 0 ? axis + s.length + 1 : axis;
  if (a < 0 || a > s.length) throw new FastdiffError("ERR_SHAPE", `unsqueeze: axis ${axis} out of range for [${s.join(", ")}]`);
  s.splice(a, 0, 1);
  return reshape(x, s);
}
export function permute(x: Tensor, axes: number[]): Tensor { return wrap(native.permute(h("permute", x), axes)); }
export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const n = x.rank;
  const axes = Array.from({ length: n }, (_, i) => i);
  const ia = a < 0 ? a + n : a;
  const ib = b < 0 ? b + n : b;
  if (ia < 0 || ia >= n || ib < 0 || ib >= n) throw new FastdiffError("ERR_SHAPE", `transpose: axes ${a}, ${b} out of range for [${x.shape.join(", ")}]`);
  [axes[ia], axes[ib]] = [axes[ib]!, axes[ia]!];
  return permute(x, axes);
}
export function concat(tensors: Tensor[], axis = 0): Tensor {
  if (!Array.isArray(tensors)) throw argumentError("concat", "expected an array of tensors");
  return wrap(native.concat(tensors.map((t, i) => h("concat", t, `tensors[${i}]`)), int("concat", axis, "axis")));
}
/** Elements [start, end) along `axis` (negative indices count from the end). */
export function slice(x: Tensor, axis: number, start: number, end?: number): Tensor {
  const ax = int("slice", axis, "axis");
  const len = x.shape[ax < 0 ? ax + x.rank : ax] ?? 0;
  return wrap(native.slice(h("slice", x), ax, int("slice", start, "start"), end === undefined ? len : int("slice", end, "end")));
}
/** Splits into pieces of the given sizes, or into `n` equal pieces when a number is given. */
export function split(x: Tensor, sizes: number | number[], axis = 0): Tensor[] {
  const ax = int("split", axis, "axis");
  const len = x.shape[ax < 0 ? ax + x.rank : ax];
  if (len === undefined) throw new FastdiffError("ERR_SHAPE", `split: axis ${axis} out of range for [${x.shape.join(", ")}]`);
  let list: number[];
  if (typeof sizes === "number") {
    const n = int("split", sizes, "sections", 1);
    if (len % n !== 0) throw new FastdiffError("ERR_SHAPE", `split: axis ${axis} of [${x.shape.join(", ")}] does not divide into ${n} equal parts`);
    list = Array<number>(n).fill(len / n);
  } else {
    list = sizes;
  }
  return native.split(h("split", x), list, ax).map(wrap);
}
export function broadcastTo(x: Tensor, shape: Shape): Tensor {
  return wrap(native.broadcastTo(h("broadcastTo", x), shapeOf("broadcastTo", shape)));
}
/** Constant padding; `pads` = [before, after] pairs starting from the last axis (like torch.nn.functional.pad). */
export function pad(x: Tensor, pads: number[], value = 0): Tensor {
  return wrap(native.pad(h("pad", x), pads.map((p, i) => int("pad", p, `pads[${i}]`, 0)), finite("pad", value, "value")));
}

// ---------------------------------------------------------------- linear algebra, convolution
/** Batched matrix product [..., M, K] · [..., K, N]; batch dims broadcast. */
export function matmul(a: Tensor, b: Tensor): Tensor { return wrap(native.matmul(h("matmul", a, "a"), h("matmul", b, "b"))); }
/** An activation applied to a linear's output: "gelu" is the exact (erf) GELU, "gelu_tanh" its tanh approximation. */
export type LinearActivation = "relu" | "silu" | "sigmoid" | "tanh" | "gelu" | "gelu_tanh";
/** What linear does to x·weightᵀ + bias before returning it, in this order. The values of the separate ops (e.g.
 * `mulAdd(gelu(linear(x, w, b)), gate, residual)`, the gate's row g broadcast over its group of rows); without
 * gradients to record, on the CPU, each block of output rows gets them as soon as the matrix product has stored it,
 * while it is in cache (one pass over the output, not up to three). */
export interface LinearOptions {
  /** Applied to the output. */
  activation?: LinearActivation;
  /** Added last; the output's shape. */
  residual?: Tensor;
  /** [G, out]: scales the (activated) output before the residual is added, row group g of G equal groups of
   * consecutive rows by row g (one per sample: adaLN-Zero's h + gate·branch, the DiT's gated residual). Needs a
   * residual. */
  gate?: Tensor;
}
const LINEAR_ACTIVATIONS: Record<LinearActivation, string> = {
  relu: "relu", silu: "silu", sigmoid: "sigmoid", tanh: "tanh", gelu: "gelu_erf", gelu_tanh: "gelu_tanh",
};
/** x·weightᵀ + bias over the last axis: x [..., in], weight [out, in] (PyTorch's convention), bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, options: LinearOptions = {}): Tensor {
  const b = bias ? h("linear", bias, "bias") : null;
  const { activation, residual, gate } = options;
  const act = activation === undefined ? null : Object.hasOwn(LINEAR_ACTIVATIONS, activation) ? LINEAR_ACTIVATIONS[activation] : undefined;
  if (act === undefined)
    throw argumentError("linear", `activation must be one of ${Object.keys(LINEAR_ACTIVATIONS).join(", ")}, got ${String(activation)}`);
  return wrap(native.linear(h("linear", x), h("linear", weight, "weight"), b, act,
    residual ? h("linear", residual, "residual") : null, gate ? h("linear", gate, "gate") : null));
}
export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}
/** 2-D convolution: x [N, C, H, W], weight [OC, C/groups, KH, KW], bias [OC]. */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, options: Conv2dOptions = {}): Tensor {
  return wrap(
    native.conv2d(
      h("conv2d", x), h("conv2d", weight, "weight"), bias ? h("conv2d", bias, "bias") : null,
      pair("conv2d", options.stride ?? 1, "stride", 1), pair("conv2d", options.padding ?? 0, "padding", 0),
      pair("conv2d", options.dilation ?? 1, "dilation", 1), int("conv2d", options.groups ?? 1, "groups", 1),
    ),
  );
}
/** Nearest-neighbour upsampling by an integer factor. */
export function upsampleNearest2d(x: Tensor, scale: number | [number, number] = 2): Tensor {
  const [sh, sw] = pair("upsampleNearest2d", scale, "scale", 1) as [number, number];
  return wrap(native.upsampleNearest2d(h("upsampleNearest2d", x), sh, sw));
}
/** Average pooling; stride defaults to the kernel size. */
export function avgPool2d(x: Tensor, kernel: number | [number, number] = 2, stride?: number | [number, number]): Tensor {
  const [kh, kw] = pair("avgPool2d", kernel, "kernel", 1) as [number, number];
  const [sh, sw] = pair("avgPool2d", stride ?? [kh, kw], "stride", 1) as [number, number];
  return wrap(native.avgPool2d(h("avgPool2d", x), kh, kw, sh, sw));
}
/** Bilinear or bicubic (Keys, A = −0.75) resize with align_corners = false. */
export function resize(x: Tensor, size: [number, number], options: { mode?: "bilinear" | "bicubic" } = {}): Tensor {
  const mode = options.mode ?? "bilinear";
  if (mode !== "bilinear" && mode !== "bicubic") throw argumentError("resize", `mode must be "bilinear" or "bicubic", got ${String(mode)}`);
  const [oh, ow] = pair("resize", size, "size", 1) as [number, number];
  return wrap(native.resize(h("resize", x), oh, ow, mode));
}

// ---------------------------------------------------------------- normalization, attention
/** Group norm over [N, C, ...] (biased variance, eps inside the sqrt); `silu: true` fuses a SiLU after it. */
export function groupNorm(
  x: Tensor, groups: number, weight?: Tensor | null, bias?: Tensor | null,
  options: { eps?: number; silu?: boolean } = {},
): Tensor {
  return wrap(
    native.groupNorm(h("groupNorm", x), int("groupNorm", groups, "groups", 1), weight ? h("groupNorm", weight, "weight") : null,
      bias ? h("groupNorm", bias, "bias") : null, finite("groupNorm", options.eps ?? 1e-5, "eps"), options.silu ?? false),
  );
}
/**
 * Layer norm over the last axis D, with optional affine weight and bias: each [D] (shared by every row), or
 * [B, D] for x [B, ..., D] (one row per sample — an adaptive norm's scale and shift applied in the same pass).
 */
export function layerNorm(x: Tensor, weight?: Tensor | null, bias?: Tensor | null, options: { eps?: number } = {}): Tensor {
  return wrap(native.layerNorm(h("layerNorm", x), weight ? h("layerNorm", weight, "weight") : null,
    bias ? h("layerNorm", bias, "bias") : null, finite("layerNorm", options.eps ?? 1e-5, "eps")));
}
export function softmax(x: Tensor, axis = -1): Tensor { return wrap(native.softmax(h("softmax", x), int("softmax", axis, "axis"), false)); }
export function logSoftmax(x: Tensor, axis = -1): Tensor { return wrap(native.softmax(h("logSoftmax", x), int("logSoftmax", axis, "axis"), true)); }
/**
 * softmax(q·kᵀ·scale)·v per head (self or cross), in blocks with an online softmax. `layout` "bhnd" (default):
 * q, k, v and the result are [B, H, N, D]; "bnhd": [B, N, H, D], a projection's [B, N, H·D] output reshaped,
 * which saves the permutes around the attention.
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, options: { scale?: number; layout?: "bhnd" | "bnhd" } = {}): Tensor {
  const layout = options.layout ?? "bhnd";
  if (layout !== "bhnd" && layout !== "bnhd") {
    throw argumentError("attention", `layout must be "bhnd" or "bnhd", got ${JSON.stringify(layout)}`);
  }
  const d = q.shape[q.rank - 1] ?? 1;
  return wrap(native.attention(h("attention", q, "q"), h("attention", k, "k"), h("attention", v, "v"),
    finite("attention", options.scale ?? 1 / Math.sqrt(d), "scale"), layout === "bnhd"));
}

// ---------------------------------------------------------------- embeddings, dropout, losses
export interface TimestepEmbeddingOptions {
  flipSinToCos?: boolean;
  downscaleFreqShift?: number;
  scale?: number;
  maxPeriod?: number;
}
/** diffusers' sinusoidal get_timestep_embedding: t [B] → [B, dim]. */
export function timestepEmbedding(t: Tensor, dim: number, options: TimestepEmbeddingOptions = {}): Tensor {
  return wrap(native.timestepEmbedding(h("timestepEmbedding", t, "t"), int("timestepEmbedding", dim, "dim", 2),
    options.flipSinToCos ?? false, finite("timestepEmbedding", options.downscaleFreqShift ?? 1, "downscaleFreqShift"),
    finite("timestepEmbedding", options.scale ?? 1, "scale"), finite("timestepEmbedding", options.maxPeriod ?? 10000, "maxPeriod")));
}
/** Rows of `weight` [classes, dim] for integer labels. */
export function embedding(weight: Tensor, labels: ArrayLike<number>): Tensor {
  const ids = Array.from(labels, (v, i) => int("embedding", v, `labels[${i}]`, 0));
  return wrap(native.embedding(h("embedding", weight, "weight"), ids));
}
/** Inverted dropout with a Philox mask; identity when `training` is false or p = 0. */
export function dropout(x: Tensor, p: number, options: RandomOptions & { training?: boolean } = {}): Tensor {
  finite("dropout", p, "p");
  if (options.training === false || p === 0) return x;
  const [seed, offset] = resolveDraw("dropout", x.size, options);
  return wrap(native.dropout(h("dropout", x), p, seed, offset));
}
/** Mean (or summed, or elementwise) squared error. */
export function mseLoss(prediction: Tensor, target: Tensor, options: { reduction?: "mean" | "sum" | "none" } = {}): Tensor {
  return wrap(native.mseLoss(h("mseLoss", prediction, "prediction"), h("mseLoss", target, "target"), options.reduction ?? "mean"));
}

/**
 * SiD's generator loss (Zhou et al. 2024; METHODS.md §1(b)), fused, per sample b over its values:
 * L_b = w_b·Σ[(1 − α)(r − f)² + (r − f)(f − x_g)], with w_b = 1/max(mean|x_g − r|, 1e-5) held constant.
 * r: the teacher's x0 prediction, f: the fake-score network's, x_g: the generator's sample (all [B, ...]).
 * Differentiable in all three. A sample with a non-finite value gets L_b = 0 and no gradient; `mask` is 1 for the
 * samples that count, 0 for masked ones.
 */
export function sidLoss(r: Tensor, f: Tensor, xg: Tensor, options: { alpha?: number } = {}): { loss: Tensor; mask: Tensor } {
  const [loss, mask] = native.sidLoss(h("sidLoss", r, "r"), h("sidLoss", f, "f"), h("sidLoss", xg, "xg"), finite("sidLoss", options.alpha ?? 1.2, "alpha"));
  return { loss: wrap(loss), mask: wrap(mask) };
}

/**
 * Queues a check that every value of `x` is finite. It runs in stream order, so a
 * failure (ERR_NUMERIC, naming `name`) surfaces at the next sync point: dataSync,
 * await data() or synchronize().
 */
export function checkFinite(x: Tensor, name = "tensor"): void {
  native.checkFinite(h("checkFinite", x), String(name));
}

/** Copies src's values into dst in place (same shape; not recorded by autograd). */
export function copy(dst: Tensor, src: Tensor): void {
  native.copy_(h("copy", dst, "dst"), h("copy", src, "src"));
}
