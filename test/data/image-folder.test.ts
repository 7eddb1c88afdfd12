// PNG image folders: labels from class sub-folders, exact resize/crop arithmetic, channel conversion, and
// corrupt or truncated files skipped with warnings that name them.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { imageFolder, resizeCenterCrop, datasets, BatchLoader } from "../../lib/data";
import { encodePng, type PngChannels } from "../../lib/io/png";
import { expectCode } from "../helpers";

let root: string;
beforeAll(() => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-imgfolder-"));
});
afterAll(() => fs.rmSync(root, { recursive: true, force: true }));

/** A fresh empty folder under the temp root. */
let count = 0;
function folder(): string {
  const dir = path.join(root, `case${++count}`);
  fs.mkdirSync(dir);
  return dir;
}

/** Writes a PNG (bytes interleaved row-major) to dir/rel, creating folders. */
function writePng(dir: string, rel: string, pixels: number[], width: number, height: number, channels: PngChannels = 1): string {
  const file = path.join(dir, rel);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, encodePng(Uint8Array.from(pixels), width, height, channels));
  return file;
}

/** The float32 value of byte b in [−1, 1]. */
const unit = (b: number): number => Math.fround(b / 127.5 - 1);
const quiet = { onWarning: () => undefined };

test("class sub-folders become sorted labels; nested files keep their first-level class", () => {
  const dir = folder();
  const px = (v: number) => new Array<number>(16).fill(v);
  writePng(dir, "dog/b.png", px(10), 4, 4);
  writePng(dir, "cat/z.png", px(20), 4, 4);
  writePng(dir, "dog/deep/er/a.png", px(30), 4, 4);
  writePng(dir, "cat/a.png", px(40), 4, 4);
  writePng(dir, ".hidden/x.png", px(50), 4, 4);
  fs.writeFileSync(path.join(dir, "cat", "notes.txt"), "not an image");
  const loose = writePng(dir, "loose.png", px(60), 4, 4);
  const warnings: string[] = [];
  const ds = imageFolder(dir, { size: 4, channels: 1, onWarning: (m) => warnings.push(m) });
  expect(ds.classNames).toEqual(["cat", "dog"]);
  expect([ds.size, ds.numClasses, ds.sampleShape]).toEqual([4, 2, [1, 4, 4]]);
  expect(Array.from(ds.labels!)).toEqual([0, 0, 1, 1]);
  expect(ds.files.map((f) => path.relative(dir, f))).toEqual(["cat/a.png", "cat/z.png", "dog/b.png", "dog/deep/er/a.png"]);
  expect([0, 1, 2, 3].map((i) => ds.data[i * 16])).toEqual([40, 20, 10, 30].map(unit));
  expect(ds.skipped).toEqual([{ file: loose, reason: "not inside a class sub-folder" }]);
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toContain(loose);
  // the dataset is an ordinary ArrayDataset
  const batch = new BatchLoader(ds, { batchSize: 2, seed: 1 }).next();
  expect(batch.x.shape).toEqual([2, 1, 4, 4]);
});

test("a folder without sub-folders is unlabeled; default is 3 channels (gray replicated)", () => {
  const dir = folder();
  writePng(dir, "one.PNG", [0, 255, 255, 0], 2, 2);
  const ds = datasets.imageFolder(dir, { size: 2 });
  expect([ds.size, ds.labels, ds.numClasses, ds.classNames, ds.sampleShape]).toEqual([1, null, 0, [], [3, 2, 2]]);
  expect(Array.from(ds.data)).toEqual([-1, 1, 1, -1, -1, 1, 1, -1, -1, 1, 1, -1]);
});

test("shrinking averages areas exactly: a 2×-scaled checkerboard becomes the checkerboard", () => {
  const dir = folder();
  const pixels: number[] = [];
  for (let y = 0; y < 8; ++y) for (let x = 0; x < 8; ++x) pixels.push(((y >> 1) + (x >> 1)) % 2 ? 255 : 0);
  writePng(dir, "board.png", pixels, 8, 8);
  const ds = imageFolder(dir, { size: 4, channels: 1 });
  const expected: number[] = [];
  for (let y = 0; y < 4; ++y) for (let x = 0; x < 4; ++x) expected.push((y + x) % 2 ? 1 : -1);
  expect(Array.from(ds.data)).toEqual(expected);
  // shrunk to 1×1: the mean of the whole board, 0 (mid-gray)
  expect(Array.from(imageFolder(dir, { size: 1, channels: 1 }).data)).toEqual([0]);
});

test("the shorter side is scaled to size and the centre is cropped", () => {
  const dir = folder();
  // a 4×6 (H×W) pattern v(y, x) = 10·(6y + x), each value a 2×2 block: an 8×12 image
  const v = (y: number, x: number): number => 10 * (6 * y + x);
  const pixels: number[] = [];
  for (let y = 0; y < 8; ++y) for (let x = 0; x < 12; ++x) pixels.push(v(y >> 1, x >> 1));
  writePng(dir, "wide.png", pixels, 12, 8);
  const ds = imageFolder(dir, { size: 4, channels: 1 });
  // 8×12 → 4×6, centre crop columns 1..4
  const expected: number[] = [];
  for (let y = 0; y < 4; ++y) for (let x = 1; x < 5; ++x) expected.push(unit(v(y, x)));
  expect(Array.from(ds.data)).toEqual(expected);
});

test("growing is bilinear with half-pixel centres; non-integer shrink weights by overlap", () => {
  // 2 → 4 along each axis: source positions −0.25 (clamped), 0.25, 0.75, 1.25 (clamped)
  const up = resizeCenterCrop(Float64Array.from([0, 100, 200, 40]), 1, 2, 2, 4);
  const axis = (a: number, b: number) => [a, 0.75 * a + 0.25 * b, 0.25 * a + 0.75 * b, b];
  const cols = [axis(0, 200), axis(100, 40)]; // vertical profiles of the two source columns
  const expected = [0, 1, 2, 3].flatMap((y) => axis(cols[0]![y]!, cols[1]![y]!));
  up.forEach((val, i) => expect(val).toBeCloseTo(expected[i]!, 12));
  // 3 → 2: output 0 covers [0, 1.5): weights 2/3, 1/3; output 1 covers [1.5, 3): 1/3, 2/3
  const down = resizeCenterCrop(Float64Array.from([0, 30, 90, 0, 30, 90, 0, 30, 90]), 1, 3, 3, 2);
  [10, 70, 10, 70].forEach((e, i) => expect(down[i]).toBeCloseTo(e, 12));
  // same size: identity
  const same = Float64Array.from([1, 2, 3, 4, 5, 6]);
  expect(Array.from(resizeCenterCrop(same, 2, 1, 3, 1))).toEqual([2, 5]); // 1×3 → 1×1 crop of the centre column
});

test("channel conversion: BT.601 luma, alpha on black, gray replicated", () => {
  const dir = folder();
  writePng(dir, "a_rgb.png", [200, 100, 50], 1, 1, 3);
  writePng(dir, "b_rgba.png", [200, 100, 50, 51], 1, 1, 4);
  writePng(dir, "c_graya.png", [90, 170], 1, 1, 2);
  const gray = imageFolder(dir, { size: 1, channels: 1 });
  const luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50;
  expect(gray.data[0]).toBeCloseTo(luma / 127.5 - 1, 6);
  expect(gray.data[1]).toBeCloseTo((luma * 0.2) / 127.5 - 1, 6);
  expect(gray.data[2]).toBeCloseTo((90 * 170) / 255 / 127.5 - 1, 6);
  const rgb = imageFolder(dir, { size: 1, channels: 3 });
  expect(Array.from(rgb.data.subarray(0, 3))).toEqual([200, 100, 50].map(unit));
  [200, 100, 50].forEach((c, i) => expect(rgb.data[3 + i]).toBeCloseTo((c * 0.2) / 127.5 - 1, 6));
  const g = (90 * 170) / 255 / 127.5 - 1;
  [0, 1, 2].forEach((i) => expect(rgb.data[6 + i]).toBeCloseTo(g, 6));
});

test("corrupt and truncated files are skipped with warnings naming them; the rest loads", () => {
  const dir = folder();
  const good = writePng(dir, "a/good.png", new Array<number>(64 * 64).fill(200), 64, 64);
  const corrupt = path.join(dir, "a", "corrupt.png");
  fs.writeFileSync(corrupt, Buffer.from("this is not a png at all, just text"));
  const full = encodePng(Uint8Array.from({ length: 64 * 64 }, (_, i) => (i * 7) % 256), 64, 64, 1);
  const truncated = path.join(dir, "b", "truncated.png");
  fs.mkdirSync(path.dirname(truncated));
  fs.writeFileSync(truncated, full.subarray(0, Math.floor(full.length / 2)));
  const empty = path.join(dir, "b", "empty.png");
  fs.writeFileSync(empty, Buffer.alloc(0));
  const warnings: string[] = [];
  const ds = imageFolder(dir, { size: 8, channels: 1, onWarning: (m) => warnings.push(m) });
  expect(ds.files).toEqual([good]);
  expect(ds.classNames).toEqual(["a", "b"]);
  expect(Array.from(ds.labels!)).toEqual([0]);
  expect(ds.skipped.map((s) => s.file).sort()).toEqual([corrupt, empty, truncated].sort());
  for (const s of ds.skipped) expect(s.reason).toMatch(/PNG/);
  expect(warnings).toHaveLength(3);
  for (const f of [corrupt, truncated, empty]) expect(warnings.some((w) => w.includes(f))).toBe(true);
  // the default reporter is console.warn
  const spy = jest.spyOn(console, "warn").mockImplementation(() => undefined);
  try {
    imageFolder(dir, { size: 8, channels: 1 });
    expect(spy).toHaveBeenCalledTimes(3);
  } finally {
    spy.mockRestore();
  }
});

test("folders with nothing readable throw FastdiffErrors naming the folder", () => {
  const empty = folder();
  expectCode(() => imageFolder(empty, { size: 4 }), "ERR_ARGUMENT", new RegExp(`no PNG images in '${empty}'`));
  const classesOnly = folder();
  fs.mkdirSync(path.join(classesOnly, "cls"));
  expectCode(() => imageFolder(classesOnly, { size: 4 }), "ERR_ARGUMENT", /no PNG images/);
  const bad = folder();
  fs.writeFileSync(path.join(bad, "x.png"), "garbage");
  expectCode(() => imageFolder(bad, { size: 4, ...quiet }), "ERR_FORMAT", new RegExp(`none of the 1 PNG files in '${bad}' could be read`));
  expectCode(() => imageFolder(path.join(root, "missing"), { size: 4 }), "ERR_ARGUMENT", /cannot read the directory/);
  const dir = folder();
  writePng(dir, "ok.png", [1], 1, 1);
  expectCode(() => imageFolder(dir, { size: 0 }), "ERR_ARGUMENT", /size/);
  expectCode(() => imageFolder(dir, { size: 4, channels: 2 as never }), "ERR_ARGUMENT", /channels/);
});
