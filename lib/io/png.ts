// PNG files (8-bit, through pngjs) and tensors as images. A tensor value v in [−1, 1] becomes the byte
// ⌊(v + 1)/2·255 + 0.5⌋ (torchvision's save_image rounding); values outside [−1, 1] are clamped and NaN is
// written as 0, mid-gray (128), so one bad sample shows as a flat gray tile instead of failing the save.
import { PNG, type ColorType } from "pngjs";
import { argumentError, FastdiffError } from "../errors";
import type { Tensor } from "../tensor";
import { writeFileAtomic, writeFileAtomicSync } from "./atomic";

/** Samples per pixel: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. */
export type PngChannels = 1 | 2 | 3 | 4;

/** An 8-bit image, pixels interleaved row-major: data[(y·width + x)·channels + c]. */
export interface RawImage {
  data: Uint8Array;
  width: number;
  height: number;
  channels: PngChannels;
}

const { floor } = Math; // a local alias: global lookups are slow in hot loops under jest's vm

const COLOR_TYPE: Record<PngChannels, ColorType> = { 1: 0, 2: 4, 3: 2, 4: 6 };

/** Encodes 8-bit interleaved pixels as a PNG file (lossless). */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: PngChannels): Buffer {
  const op = "encodePng";
  if (!Number.isInteger(width) || width < 1 || !Number.isInteger(height) || height < 1)
    throw argumentError(op, `width and height must be positive integers, got ${width}×${height}`);
  if (!(channels in COLOR_TYPE)) throw argumentError(op, `channels must be 1, 2, 3 or 4, got ${String(channels)}`);
  if (pixels.length !== width * height * channels)
    throw argumentError(op, `${pixels.length} bytes for ${width}×${height}×${channels} pixels`);
  const colorType = COLOR_TYPE[channels];
  const data = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  // Input and output color types agree, so pngjs packs the bytes as they are (no RGBA round trip).
  const meta = { width, height, data, gamma: 0 } as unknown as PNG;
  return PNG.sync.write(meta, { colorType, inputColorType: colorType, inputHasAlpha: channels === 2 || channels === 4, bitDepth: 8 });
}

/** Decodes a PNG file (any bit depth, palette, interlace; 16-bit is rounded to 8). Channels follow the file:
 * gray files give 1 (2 with transparency), color and palette files 3 (4 with transparency). */
export function decodePng(buffer: Uint8Array): RawImage {
  let png: ReturnType<typeof PNG.sync.read>;
  try {
    png = PNG.sync.read(Buffer.isBuffer(buffer) ? buffer : Buffer.from(buffer.buffer, buffer.byteOffset, buffer.byteLength));
  } catch (e) {
    throw new FastdiffError("ERR_FORMAT", `decodePng: not a readable PNG (${(e as Error).message})`);
  }
  const { width, height } = png;
  const channels = ((png.color ? 3 : 1) + (png.alpha ? 1 : 0)) as PngChannels;
  const rgba = png.data;
  if (!rgba || rgba.length !== width * height * 4) throw new FastdiffError("ERR_FORMAT", `decodePng: pixel data does not match ${width}×${height}`);
  const data = new Uint8Array(width * height * channels);
  for (let p = 0; p < width * height; ++p) {
    const o = p * channels;
    if (png.color) {
      data[o] = rgba[4 * p]!;
      data[o + 1] = rgba[4 * p + 1]!;
      data[o + 2] = rgba[4 * p + 2]!;
    } else data[o] = rgba[4 * p]!;
    if (png.alpha) data[o + channels - 1] = rgba[4 * p + 3]!;
  }
  return { data, width, height, channels };
}

/** The byte of a value in [−1, 1]: clamped, NaN → 128. */
export function toByte(v: number): number {
  if (Number.isNaN(v)) return 128;
  const c = v < -1 ? -1 : v > 1 ? 1 : v;
  return floor(((c + 1) / 2) * 255 + 0.5);
}

/** [N, C, H, W] (or one [C, H, W]) with C = 1 or 3 → its shape as N, C, H, W. */
function imageShape(op: string, x: Tensor): [number, 1 | 3, number, number] {
  const s = x.shape.length === 3 ? [1, ...x.shape] : x.shape;
  if (s.length !== 4 || (s[1] !== 1 && s[1] !== 3) || s[0]! < 1 || s[2]! < 1 || s[3]! < 1)
    throw new FastdiffError("ERR_SHAPE", `${op}: expected images [N, C, H, W] with C = 1 or 3 and N, H, W ≥ 1, got ${JSON.stringify(x.shape)}`);
  return s as [number, 1 | 3, number, number];
}

/** Each image of x [N, C, H, W] (values in [−1, 1]) as 8-bit gray (C = 1) or RGB (C = 3) pixels. */
export function tensorToImages(x: Tensor): RawImage[] {
  const [N, C, H, W] = imageShape("tensorToImages", x);
  const v = x.dataSync();
  const out: RawImage[] = [];
  for (let n = 0; n < N; ++n) {
    const data = new Uint8Array(H * W * C);
    for (let c = 0; c < C; ++c) for (let p = 0; p < H * W; ++p) data[p * C + c] = toByte(v[(n * C + c) * H * W + p]!);
    out.push({ data, width: W, height: H, channels: C });
  }
  return out;
}

export interface GridOptions {
  /** Images per row (default 8, as torchvision's make_grid). */
  nrow?: number;
  /** Pixels between images and around the grid (default 2). */
  padding?: number;
  /** Padding value in image units [−1, 1] (default −1: black, as make_grid's 0 on [0, 1]). */
  padValue?: number;
}

/** All images of x [N, C, H, W] in one picture, make_grid's layout: min(nrow, N) columns, ⌈N/columns⌉ rows, image
 * (r, c) at ((H + p)·r + p, (W + p)·c + p); empty cells keep the pad value. Gray for C = 1, RGB for C = 3. */
export function imageGrid(x: Tensor, options: GridOptions = {}): RawImage {
  const op = "imageGrid";
  const [N, C, H, W] = imageShape(op, x);
  const nrow = options.nrow ?? 8;
  const p = options.padding ?? 2;
  if (!Number.isInteger(nrow) || nrow < 1) throw argumentError(op, `nrow must be a positive integer, got ${nrow}`);
  if (!Number.isInteger(p) || p < 0) throw argumentError(op, `padding must be a non-negative integer, got ${p}`);
  const cols = Math.min(nrow, N);
  const rows = Math.ceil(N / cols);
  const width = cols * (W + p) + p;
  const height = rows * (H + p) + p;
  const data = new Uint8Array(width * height * C).fill(toByte(options.padValue ?? -1));
  const v = x.dataSync();
  for (let n = 0; n < N; ++n) {
    const x0 = (n % cols) * (W + p) + p;
    const y0 = Math.floor(n / cols) * (H + p) + p;
    for (let c = 0; c < C; ++c)
      for (let y = 0; y < H; ++y)
        for (let xx = 0; xx < W; ++xx) data[((y0 + y) * width + x0 + xx) * C + c] = toByte(v[((n * C + c) * H + y) * W + xx]!);
  }
  return { data, width, height, channels: C };
}

/** Images of equal height and channels placed left to right with `gap` columns of `gapByte` between them. */
export function sideBySide(images: readonly RawImage[], gap = 8, gapByte = 255): RawImage {
  const op = "sideBySide";
  if (images.length === 0) throw argumentError(op, "no images");
  const { height, channels } = images[0]!;
  if (images.some((m) => m.height !== height || m.channels !== channels)) {
    throw argumentError(op, `images differ in height or channels: ${images.map((m) => `${m.width}×${m.height}×${m.channels}`).join(", ")}`);
  }
  const width = images.reduce((w, m) => w + m.width, 0) + gap * (images.length - 1);
  const data = new Uint8Array(width * height * channels).fill(gapByte);
  let x0 = 0;
  for (const m of images) {
    for (let y = 0; y < height; ++y) data.set(m.data.subarray(y * m.width * channels, (y + 1) * m.width * channels), (y * width + x0) * channels);
    x0 += m.width + gap;
  }
  return { data, width, height, channels };
}

/** Writes imageGrid(x) as a PNG file, atomically (readers never see a partial file). */
export async function saveImageGrid(x: Tensor, file: string, options: GridOptions = {}): Promise<void> {
  const g = imageGrid(x, options);
  await writeFileAtomic(file, encodePng(g.data, g.width, g.height, g.channels));
}

/** Synchronous twin of saveImageGrid. */
export function saveImageGridSync(x: Tensor, file: string, options: GridOptions = {}): void {
  const g = imageGrid(x, options);
  writeFileAtomicSync(file, encodePng(g.data, g.width, g.height, g.channels));
}

/** 2-D points [N, 2] as a gray scatter plot: white dots on black, `size`² pixels spanning [−range, range]²
 * (x to the right, y up); points outside are dropped. Toy-data samples get a picture like images get a grid. */
export function scatterPlot(points: Tensor, options: { size?: number; range?: number } = {}): RawImage {
  const op = "scatterPlot";
  if (points.rank !== 2 || points.shape[1] !== 2) throw argumentError(op, `expected points [N, 2], got ${JSON.stringify(points.shape)}`);
  const size = options.size ?? 256;
  const range = options.range ?? 3;
  const data = new Uint8Array(size * size);
  const v = points.dataSync();
  for (let i = 0; i < v.length; i += 2) {
    const px = floor(((v[i]! + range) / (2 * range)) * size);
    const py = floor(((range - v[i + 1]!) / (2 * range)) * size);
    if (px >= 0 && px < size && py >= 0 && py < size) data[py * size + px] = 255;
  }
  return { data, width: size, height: size, channels: 1 };
}
