// Image folders as datasets: every PNG under a directory, resized and center-cropped to size×size, scaled to
// [−1, 1] as [C, size, size]. Labels come from the first-level sub-folders (sorted by code point, like
// torchvision's ImageFolder; deeper folders belong to their first-level class). A folder without sub-folders
// is an unlabeled set of the PNGs directly in it; beside sub-folders, PNGs directly in `dir` are skipped (and
// reported). Hidden entries (".name") and non-.png files are ignored.
//
// Pixels: alpha is composited on black (c·a/255); RGB → gray by ITU-R BT.601 luma Y = 0.299R + 0.587G + 0.114B
// (gray files are taken as they are); gray → RGB replicates. Resizing scales the shorter side to `size` (the
// longer to round(long·size/short)) with exact area averaging per axis when shrinking (a 2× block becomes its
// mean) and bilinear interpolation (half-pixel centres, edges clamped; torch's align_corners = false) when
// growing, then crops the centre (offset ⌊(L − size)/2⌋). All in float64 on the 8-bit values, in sRGB as stored.
import * as fs from "node:fs";
import * as path from "node:path";
import { argumentError, FastdiffError } from "../errors";
import { decodePng, type RawImage } from "../io/png";
import { ArrayDataset } from "./dataset";

const { floor, ceil, min, max, round } = Math;

export interface ImageFolderOptions {
  /** Output side: samples are [channels, size, size]. */
  size: number;
  /** 1 (gray) or 3 (RGB); default 3. */
  channels?: 1 | 3;
  /** Told about each skipped file (default console.warn). */
  onWarning?: (message: string) => void;
}

/** A file that was not loaded, and why. */
export interface SkippedFile {
  file: string;
  reason: string;
}

/** An image folder in memory: samples in file order, with the class names and what was skipped. */
export class ImageFolderDataset extends ArrayDataset {
  constructor(
    name: string,
    data: Float32Array,
    sampleShape: readonly number[],
    labels: Int32Array | null,
    /** Class names by label (the sorted first-level sub-folders); empty for an unlabeled folder. */
    readonly classNames: readonly string[],
    /** The source file of each sample. */
    readonly files: readonly string[],
    /** Files that could not be read or decoded (or lie outside the class folders). */
    readonly skipped: readonly SkippedFile[],
  ) {
    super(name, data, sampleShape, labels, classNames.length);
  }
}

const visible = (e: fs.Dirent): boolean => !e.name.startsWith(".");
const isPng = (e: fs.Dirent): boolean => (e.isFile() || e.isSymbolicLink()) && /\.png$/i.test(e.name);
const byCodePoint = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

function listDir(dir: string): fs.Dirent[] {
  return fs.readdirSync(dir, { withFileTypes: true }).filter(visible).sort((a, b) => byCodePoint(a.name, b.name));
}

/** Every PNG under dir (recursively, symlinked folders not followed), in sorted order. */
function pngFilesUnder(dir: string, out: string[] = []): string[] {
  for (const e of listDir(dir)) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) pngFilesUnder(p, out);
    else if (isPng(e)) out.push(p);
  }
  return out;
}

/** Per-axis resampling taps: for each output index, source indices and weights summing to 1. */
function axisTaps(inLen: number, outLen: number, from: number, count: number): { idx: Int32Array; w: Float64Array; n: number } {
  const scale = inLen / outLen;
  const n = outLen < inLen ? ceil(scale) + 1 : 2; // taps per output: an interval of length `scale` touches ≤ ⌈scale⌉ + 1 pixels
  const idx = new Int32Array(count * n);
  const w = new Float64Array(count * n);
  for (let o = 0; o < count; ++o) {
    const q = from + o;
    if (outLen < inLen) {
      // area: source pixel i covers [i, i + 1); output q covers [q·scale, (q + 1)·scale)
      const a = q * scale;
      const b = min(inLen, (q + 1) * scale);
      let sum = 0;
      for (let t = 0, i = floor(a); t < n && i < b; ++t, ++i) {
        idx[o * n + t] = i;
        sum += w[o * n + t] = min(b, i + 1) - max(a, i);
      }
      for (let t = 0; t < n; ++t) w[o * n + t] = w[o * n + t]! / sum; // = 1/scale up to rounding at the edges
    } else {
      const c = min(max((q + 0.5) * scale - 0.5, 0), inLen - 1);
      const i0 = floor(c);
      idx[o * n] = i0;
      w[o * n] = 1 - (c - i0);
      idx[o * n + 1] = min(i0 + 1, inLen - 1);
      w[o * n + 1] = c - i0;
    }
  }
  return { idx, w, n };
}

/**
 * Resizes planar float images [C, h, w] so the shorter side is `size` and crops the centre size×size
 * (see the file comment for the filters). Returns [C, size, size].
 */
export function resizeCenterCrop(src: Float64Array, channels: number, height: number, width: number, size: number): Float64Array {
  const short = min(height, width);
  const outH = height === short ? size : max(size, round((height * size) / short));
  const outW = width === short ? size : max(size, round((width * size) / short));
  const ty = axisTaps(height, outH, floor((outH - size) / 2), size);
  const tx = axisTaps(width, outW, floor((outW - size) / 2), size);
  const rows = new Float64Array(channels * height * size); // horizontal pass first: [C, h, size]
  for (let c = 0; c < channels; ++c)
    for (let y = 0; y < height; ++y) {
      const s = (c * height + y) * width;
      for (let o = 0; o < size; ++o) {
        let acc = 0;
        for (let t = 0; t < tx.n; ++t) acc += tx.w[o * tx.n + t]! * src[s + tx.idx[o * tx.n + t]!]!;
        rows[(c * height + y) * size + o] = acc;
      }
    }
  const out = new Float64Array(channels * size * size);
  for (let c = 0; c < channels; ++c)
    for (let o = 0; o < size; ++o)
      for (let x = 0; x < size; ++x) {
        let acc = 0;
        for (let t = 0; t < ty.n; ++t) acc += ty.w[o * ty.n + t]! * rows[(c * height + ty.idx[o * ty.n + t]!) * size + x]!;
        out[(c * size + o) * size + x] = acc;
      }
  return out;
}

/** Decoded 8-bit pixels → planar float [channels, h, w] in 0..255 (alpha on black, luma or replication). */
function toPlanar(img: RawImage, channels: 1 | 3): Float64Array {
  const { data, width, height, channels: ch } = img;
  const P = width * height;
  const out = new Float64Array(channels * P);
  const color = ch >= 3;
  const alpha = ch === 2 || ch === 4;
  for (let p = 0; p < P; ++p) {
    const o = p * ch;
    const a = alpha ? data[o + ch - 1]! / 255 : 1;
    const r = data[o]! * a;
    const g = color ? data[o + 1]! * a : r;
    const b = color ? data[o + 2]! * a : r;
    if (channels === 1) out[p] = color ? 0.299 * r + 0.587 * g + 0.114 * b : r;
    else {
      out[p] = r;
      out[P + p] = g;
      out[2 * P + p] = b;
    }
  }
  return out;
}

/** Every PNG under `dir` as [channels, size, size] in [−1, 1], labeled by first-level sub-folder. Unreadable
 * files are skipped (and reported); throws when nothing could be loaded. */
export function imageFolder(dir: string, options: ImageFolderOptions): ImageFolderDataset {
  const op = "datasets.imageFolder";
  const { size } = options;
  const channels = options.channels ?? 3;
  const warn = options.onWarning ?? ((m: string) => console.warn(m));
  if (!Number.isInteger(size) || size < 1) throw argumentError(op, `size must be a positive integer, got ${String(size)}`);
  if (channels !== 1 && channels !== 3) throw argumentError(op, `channels must be 1 or 3, got ${String(channels)}`);
  let top: fs.Dirent[];
  try {
    top = listDir(dir);
  } catch (e) {
    throw argumentError(op, `cannot read the directory '${dir}' (${(e as Error).message})`);
  }
  const classNames = top.filter((e) => e.isDirectory()).map((e) => e.name);
  const skipped: SkippedFile[] = [];
  const skip = (file: string, reason: string): void => {
    skipped.push({ file, reason });
    warn(`${op}: skipped '${file}': ${reason}`);
  };
  const candidates: { file: string; label: number }[] = [];
  for (const e of top) if (isPng(e) && classNames.length > 0) skip(path.join(dir, e.name), "not inside a class sub-folder");
  if (classNames.length === 0) for (const e of top) if (isPng(e)) candidates.push({ file: path.join(dir, e.name), label: -1 });
  classNames.forEach((name, label) => {
    for (const file of pngFilesUnder(path.join(dir, name))) candidates.push({ file, label });
  });
  if (candidates.length === 0)
    throw argumentError(op, `no PNG images in '${dir}'${classNames.length ? ` (looked in its sub-folders ${classNames.join(", ")})` : ""}`);

  const sampleSize = channels * size * size;
  const data = new Float32Array(candidates.length * sampleSize);
  const labels: number[] = [];
  const files: string[] = [];
  for (const { file, label } of candidates) {
    let img: RawImage;
    try {
      img = decodePng(fs.readFileSync(file));
    } catch (e) {
      skip(file, (e as Error).message);
      continue;
    }
    const pixels = resizeCenterCrop(toPlanar(img, channels), channels, img.height, img.width, size);
    const o = files.length * sampleSize;
    for (let i = 0; i < sampleSize; ++i) data[o + i] = pixels[i]! / 127.5 - 1;
    labels.push(label);
    files.push(file);
  }
  if (files.length === 0)
    throw new FastdiffError("ERR_FORMAT", `${op}: none of the ${candidates.length} PNG files in '${dir}' could be read (first: ${skipped[0]?.file}: ${skipped[0]?.reason})`);
  const name = `imagefolder-${path.basename(path.resolve(dir))}`;
  const labeled = classNames.length > 0 ? Int32Array.from(labels) : null;
  return new ImageFolderDataset(name, data.slice(0, files.length * sampleSize), [channels, size, size], labeled, classNames, files, skipped);
}
