// The Tensor class: a handle to native storage plus every op as a method.
import { awaitRead } from "./device";
import { FastdiffError } from "./errors";
import { track, untrack } from "./memory";
import { native, type NativeTensor } from "./native";
import * as ops from "./ops";

export type Shape = readonly number[];
export type Operand = Tensor | number;
/** A tensor's device. */
export type Device = "cpu" | `cuda:${number}`;
/** A device as the user may name it ("cuda" is "cuda:0"). */
export type DeviceName = Device | "cuda";

export class Tensor {
  /** The native handle (for lib/ internals). */
  readonly handle: NativeTensor;
  private readonly dims: number[];

  /** @internal Wraps a native handle; use the creation functions (tensor, zeros, randn, …). */
  constructor(handle: NativeTensor) {
    this.handle = handle;
    this.dims = handle.shape();
    track(this);
  }

  get shape(): number[] {
    return this.dims.slice();
  }
  get rank(): number {
    return this.dims.length;
  }
  get size(): number {
    return this.dims.reduce((a, b) => a * b, 1);
  }
  get dtype(): "float32" {
    return "float32";
  }
  /** "cpu" or "cuda:N". */
  get device(): Device {
    return this.handle.device() as Device;
  }
  /** This tensor on `device` ("cpu", "cuda" or "cuda:N"): itself when already there, else a copy (differentiable). */
  to(device: DeviceName): Tensor {
    return ops.to(this, device);
  }
  get isDisposed(): boolean {
    return this.handle.disposed();
  }

  /** Frees the tensor now (storage still used by queued kernels or a graph is freed after them). */
  dispose(): void {
    if (this.handle.disposed()) return;
    untrack(this);
    this.handle.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }

  /** Values, once the stream has computed them; the event loop keeps running meanwhile (how it waits:
   * setReadWait). */
  data(): Promise<Float32Array> {
    return awaitRead(this.handle.data());
  }
  /** Values, blocking until the stream has computed them. */
  dataSync(): Float32Array {
    return this.handle.dataSync();
  }
  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new FastdiffError("ERR_SHAPE", `item: tensor of shape [${this.dims.join(", ")}] has ${this.size} elements, not 1`);
    return this.dataSync()[0]!;
  }
  /** Nested arrays (synchronous). */
  toArray(): unknown {
    const flat = Array.from(this.dataSync());
    const build = (dim: number, at: number): unknown => {
      if (dim === this.dims.length) return flat[at];
      const stride = this.dims.slice(dim + 1).reduce((a, b) => a * b, 1);
      return Array.from({ length: this.dims[dim]! }, (_, i) => build(dim + 1, at + i * stride));
    };
    return build(0, 0);
  }
  toString(): string {
    return `Tensor(shape=[${this.dims.join(", ")}], ${this.isDisposed ? "disposed" : this.handle.gradFn() ?? "leaf"})`;
  }

  // ---- autograd ----
  get requiresGrad(): boolean {
    return this.handle.requiresGrad();
  }
  set requiresGrad(value: boolean) {
    this.handle.setRequiresGrad(value);
  }
  /** Marks a leaf as needing a gradient; returns this. */
  requireGrad(value = true): this {
    this.handle.setRequiresGrad(value);
    return this;
  }
  get isLeaf(): boolean {
    return this.handle.isLeaf();
  }
  /** The accumulated gradient (a new handle each time), or null. */
  get grad(): Tensor | null {
    const g = this.handle.grad();
    return g ? new Tensor(g) : null;
  }
  set grad(g: Tensor | null) {
    this.handle.setGrad(g ? g.handle : null);
  }
  /** Name of the op that produced this tensor, or null for a leaf. */
  get gradFn(): string | null {
    return this.handle.gradFn();
  }
  /** Back-propagates from this tensor; gradients accumulate (+=) into leaves' .grad. */
  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): void {
    this.handle.backward(gradient ? gradient.handle : null, options.retainGraph ?? false);
  }
  /** Same values, no graph: gradients stop here. */
  detach(): Tensor {
    return new Tensor(this.handle.detach());
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.handle));
  }

  // ---- ops as methods (see ops.ts for the documentation) ----
  add(b: Operand): Tensor { return ops.add(this, b); }
  sub(b: Operand): Tensor { return ops.sub(this, b); }
  mul(b: Operand): Tensor { return ops.mul(this, b); }
  div(b: Operand): Tensor { return ops.div(this, b); }
  pow(b: Operand): Tensor { return ops.pow(this, b); }
  maximum(b: Operand): Tensor { return ops.maximum(this, b); }
  minimum(b: Operand): Tensor { return ops.minimum(this, b); }
  neg(): Tensor { return ops.neg(this); }
  exp(): Tensor { return ops.exp(this); }
  log(): Tensor { return ops.log(this); }
  sqrt(): Tensor { return ops.sqrt(this); }
  rsqrt(): Tensor { return ops.rsqrt(this); }
  abs(): Tensor { return ops.abs(this); }
  square(): Tensor { return ops.square(this); }
  sign(): Tensor { return ops.sign(this); }
  sigmoid(): Tensor { return ops.sigmoid(this); }
  softplus(): Tensor { return ops.softplus(this); }
  tanh(): Tensor { return ops.tanh(this); }
  relu(): Tensor { return ops.relu(this); }
  silu(): Tensor { return ops.silu(this); }
  gelu(options?: ops.GeluOptions): Tensor { return ops.gelu(this, options); }
  clamp(min: number, max: number): Tensor { return ops.clamp(this, min, max); }
  isnan(): Tensor { return ops.isnan(this); }
  nanToNum(options?: ops.NanToNumOptions): Tensor { return ops.nanToNum(this, options); }
  sum(axes?: number | number[], keepdim = false): Tensor { return ops.sum(this, axes, keepdim); }
  mean(axes?: number | number[], keepdim = false): Tensor { return ops.mean(this, axes, keepdim); }
  max(axes?: number | number[], keepdim = false): Tensor { return ops.max(this, axes, keepdim); }
  min(axes?: number | number[], keepdim = false): Tensor { return ops.min(this, axes, keepdim); }
  variance(axes?: number | number[], options?: ops.VarianceOptions): Tensor { return ops.variance(this, axes, options); }
  norm(): Tensor { return ops.norm(this); }
  reshape(shape: Shape): Tensor { return ops.reshape(this, shape); }
  flatten(startAxis = 0, endAxis = -1): Tensor { return ops.flatten(this, startAxis, endAxis); }
  permute(axes: number[]): Tensor { return ops.permute(this, axes); }
  transpose(a = -2, b = -1): Tensor { return ops.transpose(this, a, b); }
  slice(axis: number, start: number, end?: number): Tensor { return ops.slice(this, axis, start, end); }
  split(sizes: number | number[], axis = 0): Tensor[] { return ops.split(this, sizes, axis); }
  broadcastTo(shape: Shape): Tensor { return ops.broadcastTo(this, shape); }
  expand(shape: Shape): Tensor { return ops.broadcastTo(this, shape); }
  pad(pads: number[], value = 0): Tensor { return ops.pad(this, pads, value); }
  matmul(b: Tensor): Tensor { return ops.matmul(this, b); }
  linear(weight: Tensor, bias?: Tensor | null): Tensor { return ops.linear(this, weight, bias); }
  conv2d(weight: Tensor, bias?: Tensor | null, options?: ops.Conv2dOptions): Tensor { return ops.conv2d(this, weight, bias, options); }
  groupNorm(groups: number, weight?: Tensor | null, bias?: Tensor | null, options?: { eps?: number; silu?: boolean }): Tensor {
    return ops.groupNorm(this, groups, weight, bias, options);
  }
  layerNorm(weight?: Tensor | null, bias?: Tensor | null, options?: { eps?: number }): Tensor { return ops.layerNorm(this, weight, bias, options); }
  upsampleNearest2d(scale?: number | [number, number]): Tensor { return ops.upsampleNearest2d(this, scale); }
  avgPool2d(kernel?: number | [number, number], stride?: number | [number, number]): Tensor { return ops.avgPool2d(this, kernel, stride); }
  resize(size: [number, number], options?: { mode?: "bilinear" | "bicubic" }): Tensor { return ops.resize(this, size, options); }
  dropout(p: number, options?: Parameters<typeof ops.dropout>[2]): Tensor { return ops.dropout(this, p, options); }
  unsqueeze(axis: number): Tensor { return ops.unsqueeze(this, axis); }
  softmax(axis = -1): Tensor { return ops.softmax(this, axis); }
  logSoftmax(axis = -1): Tensor { return ops.logSoftmax(this, axis); }
}

/** Wraps a native result. */
export function wrap(h: NativeTensor): Tensor {
  return new Tensor(h);
}
