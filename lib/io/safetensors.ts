// safetensors reading and writing (https://github.com/huggingface/safetensors).
// Layout: u64 little-endian header length N | N bytes of UTF-8 JSON (may be space-padded) | raw data.
// The JSON maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative to the data
// section) plus an optional "__metadata__": {string: string}.
//
// Everything in the file is untrusted: the header is fully validated before any tensor is allocated, and
// every problem is a FastdiffError ERR_FORMAT naming the file and, where one is involved, the tensor.
import * as fs from "node:fs";
import { FastdiffError } from "../errors";
import { Tensor } from "../tensor";
import { tensor as fromValues } from "../ops";
import { writeFileAtomic, writeFileAtomicSync } from "./atomic";

/** dtypes this reader accepts. All load as float32 (the engine's only dtype): F64 is rounded to nearest;
 * I64/I32 (labels, timesteps in golden files) are converted to the nearest float32, exact up to |x| ≤ 2^24. */
const DTYPE_SIZE: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8, I64: 8, I32: 4 };
export type SafetensorsWriteDtype = "F32" | "F16" | "BF16";

/** Headers above this are refused before anything is allocated (real ones are kilobytes). */
const MAX_HEADER = 100 * 1024 * 1024;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface SafetensorsContents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

// ---------------------------------------------------------------- float conversions (exact, bit-level)

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits → float32 bits (exact: every half is a float32; NaN payloads kept, subnormals normalized). */
export function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  f32[0] = mant * 2 ** -24; // subnormal half: exact as a normal float32
  return (sign | u32[0]!) >>> 0;
}

/** bfloat16 bits → float32 bits: bf16 is the top half of a float32. */
export function bf16BitsToFloatBits(b: number): number {
  return (b << 16) >>> 0;
}

/** float32 bits → binary16 bits, round to nearest, ties to even; overflow → ±Inf, NaN stays (quiet) NaN. */
export function floatBitsToHalfBits(x: number): number {
  const sign = (x >>> 16) & 0x8000;
  const abs = x & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 | ((abs >>> 13) & 0x3ff) : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00; // ≥ 65520 rounds (ties-to-even) past 65504
  if (abs < 0x38800000) {
    // below 2^-14: a half subnormal, counted in units of 2^-24
    const exp = abs >>> 23;
    if (exp < 102) return sign; // < 2^-25: rounds to zero
    const mant = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - exp; // 14..24
    let q = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && (q & 1))) q++;
    return sign | q;
  }
  let h = (abs - 0x38000000) >>> 13; // rebias exponent 127 → 15, keep 10 mantissa bits
  const rem = abs & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // a carry into the exponent is correct rounding
  return sign | h;
}

/** float32 bits → bfloat16 bits, round to nearest, ties to even; NaN stays (quiet) NaN. */
export function floatBitsToBf16Bits(x: number): number {
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff;
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

// ---------------------------------------------------------------- reading

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function formatError(source: string, message: string, name?: string): FastdiffError {
  const where = name === undefined ? source : `${source}: tensor ${JSON.stringify(name)}`;
  return new FastdiffError("ERR_FORMAT", `safetensors ${where}: ${message}`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

/** Validates one header entry against the data section's length. */
function entryOf(source: string, name: string, info: unknown, dataLen: number): Entry {
  const fail = (message: string) => formatError(source, message, name);
  if (!isObject(info)) throw fail("entry is not an object");
  const { dtype, shape, data_offsets: offsets } = info;
  if (typeof dtype !== "string") throw fail("missing or non-string dtype");
  const size = DTYPE_SIZE[dtype];
  if (!Object.hasOwn(DTYPE_SIZE, dtype) || size === undefined) {
    throw fail(`unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(", ")})`);
  }
  if (!Array.isArray(shape)) throw fail("missing or non-array shape");
  if (!shape.every(isCount)) throw fail(`shape ${JSON.stringify(shape)} must hold non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    throw fail(`data_offsets ${JSON.stringify(offsets)} must be [begin, end] of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) throw fail(`data_offsets [${begin}, ${end}]: begin after end`);
  if (end > dataLen) throw fail(`data_offsets [${begin}, ${end}] outside the data section (${dataLen} bytes)`);
  let numel = 1;
  for (const d of shape as number[]) {
    numel *= d;
    if (!Number.isSafeInteger(numel * size)) throw fail(`shape [${shape.join(", ")}] is too large`);
  }
  if (end - begin !== numel * size) {
    throw fail(`data_offsets [${begin}, ${end}] span ${end - begin} bytes, but ${dtype}[${shape.join(", ")}] needs ${numel * size}`);
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

/** Decodes one tensor's bytes (any alignment) into float32 values. */
function decode(bytes: Uint8Array, dtype: string, numel: number): Float32Array {
  const out = new Float32Array(numel);
  const bits = new Uint32Array(out.buffer);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case "F32":
      if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes); // copy also fixes alignment
      else for (let i = 0; i < numel; i++) bits[i] = view.getUint32(4 * i, true);
      break;
    case "F16":
      for (let i = 0; i < numel; i++) bits[i] = halfBitsToFloatBits(view.getUint16(2 * i, true));
      break;
    case "BF16":
      for (let i = 0; i < numel; i++) bits[i] = bf16BitsToFloatBits(view.getUint16(2 * i, true));
      break;
    case "F64":
      for (let i = 0; i < numel; i++) out[i] = view.getFloat64(8 * i, true);
      break;
    case "I64":
      for (let i = 0; i < numel; i++) out[i] = Number(view.getBigInt64(8 * i, true));
      break;
    case "I32":
      for (let i = 0; i < numel; i++) out[i] = view.getInt32(4 * i, true);
      break;
  }
  return out;
}

/** Parses a whole safetensors file held in memory; `source` names it in error messages. */
export function parseSafetensors(buffer: Uint8Array, options: { source?: string } = {}): SafetensorsContents {
  const source = options.source ?? "<buffer>";
  if (buffer.byteLength < 8) throw formatError(source, `file is ${buffer.byteLength} bytes, shorter than the 8-byte header length`);
  // Compare as BigInt before converting: a hostile length (2^62) must not allocate or lose precision.
  const headerLen = new DataView(buffer.buffer, buffer.byteOffset, 8).getBigUint64(0, true);
  if (headerLen > BigInt(MAX_HEADER)) throw formatError(source, `header length ${headerLen} exceeds the ${MAX_HEADER}-byte limit`);
  if (headerLen > BigInt(buffer.byteLength - 8)) {
    throw formatError(source, `header length ${headerLen} exceeds the ${buffer.byteLength - 8} bytes after it (truncated file?)`);
  }
  const dataStart = 8 + Number(headerLen);
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(buffer.subarray(8, dataStart));
    header = JSON.parse(text);
  } catch (e) {
    throw formatError(source, `header is not valid UTF-8 JSON (${(e as Error).message})`);
  }
  if (!isObject(header)) throw formatError(source, `header must be a JSON object, got ${Array.isArray(header) ? "an array" : header === null ? "null" : typeof header}`);

  const dataLen = buffer.byteLength - dataStart;
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (!isObject(info)) throw formatError(source, "__metadata__ must be an object of strings");
      for (const [k, v] of Object.entries(info)) {
        if (typeof v !== "string") throw formatError(source, `__metadata__[${JSON.stringify(k)}] is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    entries.push(entryOf(source, name, info, dataLen));
  }
  // Overlap check on byte ranges sorted by start; empty tensors occupy nothing and cannot overlap.
  const ranged = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranged.length; i++) {
    const prev = ranged[i - 1]!;
    const cur = ranged[i]!;
    if (cur.begin < prev.end) {
      throw formatError(source, `data_offsets [${cur.begin}, ${cur.end}] overlap tensor ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}]`, cur.name);
    }
  }
  // Bytes not covered by any tensor are allowed (some writers align); only the header is validated above.

  const tensors = new Map<string, Tensor>();
  try {
    for (const e of entries) {
      const numel = e.shape.reduce((a, b) => a * b, 1);
      const values = decode(buffer.subarray(dataStart + e.begin, dataStart + e.end), e.dtype, numel);
      tensors.set(e.name, fromValues(values, e.shape));
    }
  } catch (err) {
    for (const t of tensors.values()) t.dispose(); // no leaked half-loaded set
    throw err;
  }
  return { tensors, metadata };
}

/** Reads a safetensors file. F32/F16/BF16/F64/I64/I32 load as float32 tensors (see DTYPE_SIZE). */
export async function readSafetensors(path: string): Promise<SafetensorsContents> {
  return parseSafetensors(await fs.promises.readFile(path), { source: path });
}

/** Synchronous twin of readSafetensors. */
export function readSafetensorsSync(path: string): SafetensorsContents {
  return parseSafetensors(fs.readFileSync(path), { source: path });
}

// ---------------------------------------------------------------- writing

export interface WriteSafetensorsOptions {
  /** Storage dtype; F16/BF16 round to nearest even. Default F32. */
  dtype?: SafetensorsWriteDtype;
}
type TensorSet = Map<string, Tensor> | Record<string, Tensor>;

function argError(message: string): FastdiffError {
  return new FastdiffError("ERR_ARGUMENT", `writeSafetensors: ${message}`);
}

/** Checks the arguments and returns the tensors in sorted-name order (the layout order). */
function prepare(tensors: TensorSet, metadata: Record<string, string> | undefined, dtype: string): [string, Tensor][] {
  if (!["F32", "F16", "BF16"].includes(dtype)) {
    throw argError(`dtype must be "F32", "F16" or "BF16", got ${JSON.stringify(dtype)}`);
  }
  const list = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  for (const [name, t] of list) {
    if (name === "__metadata__" || name === "") throw argError(`invalid tensor name ${JSON.stringify(name)}`);
    if (!(t instanceof Tensor)) throw argError(`tensor ${JSON.stringify(name)} is not a Tensor`);
    if (t.isDisposed) throw new FastdiffError("ERR_DISPOSED", `writeSafetensors: tensor ${JSON.stringify(name)} is disposed`);
  }
  for (const [k, v] of Object.entries(metadata ?? {})) {
    if (typeof v !== "string") throw argError(`metadata[${JSON.stringify(k)}] must be a string`);
  }
  return list.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Builds the file bytes from already-read values. */
function encode(items: [string, number[], Float32Array][], metadata: Record<string, string> | undefined, dtype: SafetensorsWriteDtype): Uint8Array {
  const size = DTYPE_SIZE[dtype]!;
  // JSON is assembled by hand so key order is exactly ours (JS objects reorder integer-like keys).
  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) parts.push(`"__metadata__":${JSON.stringify(metadata)}`);
  let offset = 0;
  for (const [name, shape, values] of items) {
    const bytes = values.length * size;
    parts.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, offset + bytes] })}`);
    offset += bytes;
  }
  const headerBytes = new TextEncoder().encode(`{${parts.join(",")}}`);
  const padded = Math.ceil(headerBytes.length / 8) * 8; // keeps the data section 8-byte aligned
  const out = new Uint8Array(8 + padded + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(padded), true);
  out.set(headerBytes, 8);
  out.fill(0x20, 8 + headerBytes.length, 8 + padded);
  let at = 8 + padded;
  for (const [, , values] of items) {
    const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
    for (let i = 0; i < values.length; i++) {
      if (dtype === "F32") view.setUint32(at + 4 * i, bits[i]!, true);
      else if (dtype === "F16") view.setUint16(at + 2 * i, floatBitsToHalfBits(bits[i]!), true);
      else view.setUint16(at + 2 * i, floatBitsToBf16Bits(bits[i]!), true);
    }
    at += values.length * size;
  }
  return out;
}

/** The bytes of a safetensors file holding `tensors` (sorted by name) and `metadata`. */
export function serializeSafetensors(tensors: TensorSet, metadata?: Record<string, string>, options: WriteSafetensorsOptions = {}): Uint8Array {
  const dtype = options.dtype ?? "F32";
  const items = prepare(tensors, metadata, dtype).map(([n, t]): [string, number[], Float32Array] => [n, t.shape, t.dataSync()]);
  return encode(items, metadata, dtype);
}

/** Writes a safetensors file atomically (the target holds either its old content or the complete new file). */
export async function writeSafetensors(path: string, tensors: TensorSet, metadata?: Record<string, string>, options: WriteSafetensorsOptions = {}): Promise<void> {
  const dtype = options.dtype ?? "F32";
  const list = prepare(tensors, metadata, dtype);
  const items: [string, number[], Float32Array][] = [];
  for (const [n, t] of list) items.push([n, t.shape, await t.data()]);
  await writeFileAtomic(path, encode(items, metadata, dtype));
}

/** Synchronous twin of writeSafetensors. */
export function writeSafetensorsSync(path: string, tensors: TensorSet, metadata?: Record<string, string>, options: WriteSafetensorsOptions = {}): void {
  writeFileAtomicSync(path, serializeSafetensors(tensors, metadata, options));
}

// ---------------------------------------------------------------- checking a loaded set

/** Throws ERR_FORMAT unless `tensors` has exactly the `expected` names and shapes (for model loading). */
export function checkTensorSet(
  tensors: Map<string, { shape: readonly number[] }>,
  expected: Map<string, readonly number[]> | Record<string, readonly number[]>,
  source: string,
): void {
  const want = expected instanceof Map ? expected : new Map(Object.entries(expected));
  const missing = [...want.keys()].filter((k) => !tensors.has(k));
  const unexpected = [...tensors.keys()].filter((k) => !want.has(k));
  const mismatched: string[] = [];
  for (const [name, shape] of want) {
    const got = tensors.get(name)?.shape;
    if (got && (got.length !== shape.length || got.some((d, i) => d !== shape[i]))) {
      mismatched.push(`${name} [${got.join(", ")}] (expected [${shape.join(", ")}])`);
    }
  }
  const LIMIT = 5; // enough to diagnose; a wrong model would otherwise list hundreds
  const list = (what: string, items: string[]) =>
    `${items.length} ${what}: ${items.slice(0, LIMIT).join(", ")}${items.length > LIMIT ? `, … (${items.length - LIMIT} more)` : ""}`;
  const problems: string[] = [];
  if (missing.length) problems.push(list("missing", missing));
  if (unexpected.length) problems.push(list("unexpected", unexpected));
  if (mismatched.length) problems.push(list("shape mismatches", mismatched));
  if (problems.length) throw new FastdiffError("ERR_FORMAT", `${source}: weights do not match the model: ${problems.join("; ")}`);
}
