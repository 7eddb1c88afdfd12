// Line plots as RGB images (curves of a metric over iterations: FD against distillation iterations), with axes,
// "nice" ticks, a legend and dashed reference lines, drawn with a built-in 3×5 pixel font (no font files).
import { argumentError } from "../errors";
import type { RawImage } from "./png";

export type Rgb = readonly [number, number, number];

export interface PlotSeries {
  /** (x, y) points, drawn in order; non-finite points are skipped. */
  points: readonly (readonly [number, number])[];
  color: Rgb;
  label?: string;
}

export interface LinePlotOptions {
  width?: number;
  height?: number;
  title?: string;
  xLabel?: string;
  yLabel?: string;
  /** Horizontal reference lines (dashed), e.g. the teacher's value. */
  references?: { y: number; color: Rgb; label?: string }[];
  /** y axis starts at 0 (default) or fits the data. */
  yFromZero?: boolean;
  /** Logarithmic y axis (values must be > 0), ticks at 1, 2, 5 × 10^k: for curves spanning decades. */
  logY?: boolean;
}

// 3×5 glyphs, rows top to bottom, 3 bits each (left = 4). Lower case draws as upper case.
const GLYPHS: Record<string, number[]> = {
  "0": [7, 5, 5, 5, 7], "1": [2, 6, 2, 2, 7], "2": [7, 1, 7, 4, 7], "3": [7, 1, 7, 1, 7], "4": [5, 5, 7, 1, 1],
  "5": [7, 4, 7, 1, 7], "6": [7, 4, 7, 5, 7], "7": [7, 1, 1, 2, 2], "8": [7, 5, 7, 5, 7], "9": [7, 5, 7, 1, 7],
  A: [2, 5, 7, 5, 5], B: [6, 5, 6, 5, 6], C: [3, 4, 4, 4, 3], D: [6, 5, 5, 5, 6], E: [7, 4, 6, 4, 7], F: [7, 4, 6, 4, 4],
  G: [3, 4, 5, 5, 3], H: [5, 5, 7, 5, 5], I: [7, 2, 2, 2, 7], J: [1, 1, 1, 5, 2], K: [5, 5, 6, 5, 5], L: [4, 4, 4, 4, 7],
  M: [5, 7, 7, 5, 5], N: [6, 5, 5, 5, 5], O: [2, 5, 5, 5, 2], P: [6, 5, 6, 4, 4], Q: [2, 5, 5, 6, 3], R: [6, 5, 6, 5, 5],
  S: [3, 4, 2, 1, 6], T: [7, 2, 2, 2, 2], U: [5, 5, 5, 5, 7], V: [5, 5, 5, 5, 2], W: [5, 5, 7, 7, 5], X: [5, 5, 2, 5, 5],
  Y: [5, 5, 2, 2, 2], Z: [7, 1, 2, 4, 7], " ": [0, 0, 0, 0, 0], ".": [0, 0, 0, 0, 2], ",": [0, 0, 0, 2, 4], "-": [0, 0, 7, 0, 0],
  "(": [2, 4, 4, 4, 2], ")": [2, 1, 1, 1, 2], "=": [0, 7, 0, 7, 0], "%": [5, 1, 2, 4, 5], "/": [1, 1, 2, 4, 4], ":": [0, 2, 0, 2, 0],
  "×": [0, 5, 2, 5, 0], "+": [0, 2, 7, 2, 0], "σ": [0, 3, 5, 5, 2], "ψ": [5, 5, 7, 2, 2], "?": [7, 1, 2, 0, 2],
};
const glyph = (ch: string): number[] => GLYPHS[ch] ?? GLYPHS[ch.toUpperCase()] ?? GLYPHS["?"]!;
const SCALE = 2; // font pixels per glyph bit
const CHAR_W = 4 * SCALE;
const CHAR_H = 5 * SCALE;

class Canvas {
  readonly data: Uint8Array;
  constructor(readonly width: number, readonly height: number) {
    this.data = new Uint8Array(width * height * 3).fill(255);
  }
  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.width || y >= this.height) return;
    const o = (y * this.width + x) * 3;
    this.data[o] = c[0];
    this.data[o + 1] = c[1];
    this.data[o + 2] = c[2];
  }
  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; ++j) for (let i = 0; i < w; ++i) this.set(x + i, y + j, c);
  }
  /** A line of the given thickness; `dash` > 0 draws dash-long segments with equal gaps. */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb, thickness = 1, dash = 0): void {
    const steps = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    const half = Math.floor((thickness - 1) / 2);
    for (let s = 0; s <= steps; ++s) {
      if (dash > 0 && Math.floor(s / dash) % 2 === 1) continue;
      const x = x0 + ((x1 - x0) * s) / steps;
      const y = y0 + ((y1 - y0) * s) / steps;
      this.rect(Math.round(x) - half, Math.round(y) - half, thickness, thickness, c);
    }
  }
  text(s: string, x: number, y: number, c: Rgb, align: "left" | "right" | "center" = "left"): void {
    const w = s.length * CHAR_W;
    let at = align === "left" ? x : align === "right" ? x - w : x - w / 2;
    for (const ch of s) {
      const g = glyph(ch);
      for (let r = 0; r < 5; ++r) for (let b = 0; b < 3; ++b) if (g[r]! & (4 >> b)) this.rect(at + b * SCALE, y + r * SCALE, SCALE, SCALE, c);
      at += CHAR_W;
    }
  }
  /** Text rotated 90° counter-clockwise (reads bottom to top), centred on (x, y). */
  textUp(s: string, x: number, y: number, c: Rgb): void {
    let at = y + (s.length * CHAR_W) / 2;
    for (const ch of s) {
      const g = glyph(ch);
      for (let r = 0; r < 5; ++r) for (let b = 0; b < 3; ++b) if (g[r]! & (4 >> b)) this.rect(x + r * SCALE, at - (b + 1) * SCALE, SCALE, SCALE, c);
      at -= CHAR_W;
    }
  }
}

/** Tick positions at 1, 2 or 5 × 10^k covering [lo, hi] with about `count` intervals. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Math.abs(t) < step * 1e-9 ? 0 : t);
  return ticks;
}

/** Ticks at 1, 2, 5 × 10^k spanning [lo, hi] (lo > 0), one below and one above included. */
export function logTicks(lo: number, hi: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); ++e) for (const m of [1, 2, 5]) ticks.push(m * 10 ** e);
  let first = 0;
  while (first + 1 < ticks.length && ticks[first + 1]! <= lo * (1 + 1e-9)) ++first;
  const last = ticks.findIndex((t) => t >= hi * (1 - 1e-9));
  return ticks.slice(first, last < 0 ? ticks.length : last + 1);
}

function formatTick(v: number, step: number): string {
  const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
  return Math.abs(v) >= 10_000 && decimals === 0 ? `${v / 1000}K` : v.toFixed(decimals);
}

const GRAY: Rgb = [200, 200, 200];
const BLACK: Rgb = [0, 0, 0];

/** The series as lines with point markers on white, axes with ticks, legend top-right, references dashed. */
export function linePlot(series: readonly PlotSeries[], options: LinePlotOptions = {}): RawImage {
  const op = "linePlot";
  const width = options.width ?? 640;
  const height = options.height ?? 400;
  if (!(Number.isInteger(width) && Number.isInteger(height) && width >= 160 && height >= 120)) throw argumentError(op, `width and height must be integers ≥ 160 × 120, got ${width} × ${height}`);
  const points = series.flatMap((s) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)));
  if (points.length === 0) throw argumentError(op, "nothing to plot: no finite points");
  const refs = options.references ?? [];
  const xs = points.map((p) => p[0]);
  const ys = [...points.map((p) => p[1]), ...refs.map((r) => r.y)];
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  const logY = options.logY ?? false;
  if (logY && ys.some((y) => !(y > 0))) throw argumentError(op, "logY needs every y value (and reference) > 0");
  let [y0, y1] = [options.yFromZero === false || logY ? Math.min(...ys) : Math.min(0, ...ys), Math.max(...ys)];
  if (x1 === x0) [x0, x1] = [x0 - 1, x1 + 1];
  if (y1 === y0) [y0, y1] = logY ? [y0 / 2, y1 * 2] : [y0 - 1, y1 + 1];
  const yTicks = logY ? logTicks(y0, y1) : niceTicks(y0, y1);
  const xTicks = niceTicks(x0, x1, 6);
  y1 = Math.max(y1, yTicks.at(-1)!);
  y0 = Math.min(y0, yTicks[0]!);
  const ty = (y: number) => (logY ? Math.log10(y) : y);

  const c = new Canvas(width, height);
  const left = 16 + CHAR_H + 6 * CHAR_W;
  const right = width - 16;
  const top = options.title ? 16 + CHAR_H + 12 : 16;
  const bottom = height - (16 + 2 * CHAR_H + 12);
  const px = (x: number) => left + ((x - x0) / (x1 - x0)) * (right - left);
  const py = (y: number) => bottom - ((ty(y) - ty(y0)) / (ty(y1) - ty(y0))) * (bottom - top);

  const yStep = yTicks.length > 1 ? yTicks[1]! - yTicks[0]! : 1;
  const xStep = xTicks.length > 1 ? xTicks[1]! - xTicks[0]! : 1;
  for (const t of yTicks) {
    c.line(left, py(t), right, py(t), GRAY);
    c.text(formatTick(t, logY ? t : yStep), left - 6, py(t) - CHAR_H / 2, BLACK, "right");
  }
  for (const t of xTicks) {
    c.line(px(t), bottom, px(t), bottom + 4, BLACK);
    c.text(formatTick(t, xStep), px(t), bottom + 8, BLACK, "center");
  }
  c.line(left, top, left, bottom, BLACK, 2);
  c.line(left, bottom, right, bottom, BLACK, 2);
  if (options.title) c.text(options.title, (left + right) / 2, 12, BLACK, "center");
  if (options.xLabel) c.text(options.xLabel, (left + right) / 2, height - 12 - CHAR_H, BLACK, "center");
  if (options.yLabel) c.textUp(options.yLabel, 10, (top + bottom) / 2, BLACK);

  for (const r of refs) c.line(left, py(r.y), right, py(r.y), r.color, 2, 8);
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    for (let i = 1; i < pts.length; ++i) c.line(px(pts[i - 1]![0]), py(pts[i - 1]![1]), px(pts[i]![0]), py(pts[i]![1]), s.color, 2);
    for (const [x, y] of pts) c.rect(px(x) - 2, py(y) - 2, 5, 5, s.color);
  }
  // Legend, top right: a swatch and the label per entry.
  const entries = [...series.filter((s) => s.label).map((s) => ({ label: s.label!, color: s.color, dashed: false })),
    ...refs.filter((r) => r.label).map((r) => ({ label: r.label!, color: r.color, dashed: true }))];
  let ly = top + 8;
  for (const e of entries) {
    const lx = right - 12 - e.label.length * CHAR_W - 28;
    c.line(lx, ly + CHAR_H / 2, lx + 20, ly + CHAR_H / 2, e.color, 2, e.dashed ? 4 : 0);
    c.text(e.label, lx + 28, ly, BLACK);
    ly += CHAR_H + 8;
  }
  return { data: c.data, width, height, channels: 3 };
}
