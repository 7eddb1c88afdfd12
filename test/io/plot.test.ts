// Line plots: nice tick positions, the plotted points land where the axes say, references and legends draw,
// bad input is a clear error.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { linePlot, logTicks, niceTicks, type Rgb } from "../../lib/io/plot";
import { decodePng, encodePng } from "../../lib/io/png";
import { expectCode } from "../helpers";

test("niceTicks: steps of 1, 2 or 5 × 10^k covering the range", () => {
  expect(niceTicks(0, 10)).toEqual([0, 2, 4, 6, 8, 10]);
  expect(niceTicks(0, 4000, 6)).toEqual([0, 1000, 2000, 3000, 4000]);
  expect(niceTicks(3.1, 7.9)).toEqual([4, 5, 6, 7]);
  const t = niceTicks(0, 0.37);
  expect(t[1]! - t[0]!).toBeCloseTo(0.1, 12);
  expect(t.at(-1)).toBeCloseTo(0.3, 12);
  expect(niceTicks(2, 2)).toEqual([2]);
});

test("logTicks: 1, 2, 5 × 10^k from the one at or below the low end to the one at or above the high end", () => {
  expect(logTicks(4.1, 95)).toEqual([2, 5, 10, 20, 50, 100]);
  expect(logTicks(1, 10)).toEqual([1, 2, 5, 10]);
  expect(logTicks(0.03, 0.07).map((v) => +v.toPrecision(3))).toEqual([0.02, 0.05, 0.1]);
});

const RED: Rgb = [220, 30, 30];
const BLUE: Rgb = [30, 60, 220];
const count = (img: { data: Uint8Array }, c: Rgb) => {
  let n = 0;
  for (let i = 0; i < img.data.length; i += 3) if (img.data[i] === c[0] && img.data[i + 1] === c[1] && img.data[i + 2] === c[2]) ++n;
  return n;
};

test("linePlot draws each series' line and markers, the dashed reference and a legend on white", () => {
  const img = linePlot(
    [{ points: [[0, 10], [100, 6], [200, 4.5], [300, 4]], color: RED, label: "student" }],
    { references: [{ y: 4.14, color: BLUE, label: "teacher" }], title: "FD", xLabel: "iteration", yLabel: "FD", width: 480, height: 300 },
  );
  expect([img.width, img.height, img.channels]).toEqual([480, 300, 3]);
  expect(img.data[0]).toBe(255); // white background
  const red = count(img, RED);
  const blue = count(img, BLUE);
  expect(red).toBeGreaterThan(400); // three segments of ≥ 100 px at thickness 2, plus markers and the legend swatch
  expect(blue).toBeGreaterThan(150); // a dashed line across the plot
  // The reference is dashed: along its row, runs of blue alternate with gaps.
  const rowOf = () => {
    for (let y = 0; y < img.height; ++y) {
      let n = 0;
      for (let x = 0; x < img.width; ++x) if (img.data[(y * img.width + x) * 3 + 2] === BLUE[2] && img.data[(y * img.width + x) * 3] === BLUE[0]) ++n;
      if (n > 100) return y;
    }
    return -1;
  };
  const y = rowOf();
  expect(y).toBeGreaterThan(0);
  let switches = 0;
  for (let x = 1; x < img.width; ++x) {
    const a = img.data[(y * img.width + x) * 3] === BLUE[0];
    const b = img.data[(y * img.width + x - 1) * 3] === BLUE[0];
    if (a !== b) ++switches;
  }
  expect(switches).toBeGreaterThan(20);
  // Higher values are drawn higher: the first point (y = 10) sits above the last (y = 4).
  const firstRedRow = (x0: number, x1: number) => {
    for (let yy = 0; yy < img.height; ++yy) for (let x = x0; x < x1; ++x) if (img.data[(yy * img.width + x) * 3] === RED[0] && img.data[(yy * img.width + x) * 3 + 1] === RED[1]) return yy;
    return -1;
  };
  const leftX = 16 + 10 + 48; // the plot's left edge (ticks column), see linePlot's layout
  expect(firstRedRow(leftX - 3, leftX + 4)).toBeLessThan(firstRedRow(img.width - 20, img.width - 12));
  // It encodes as a PNG that decodes to the same pixels.
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-plot-")), "plot.png");
  fs.writeFileSync(file, encodePng(img.data, img.width, img.height, 3));
  expect(Buffer.from(decodePng(fs.readFileSync(file)).data).equals(Buffer.from(img.data))).toBe(true);
  fs.rmSync(path.dirname(file), { recursive: true });
});

test("linePlot with logY: equal ratios are equal heights", () => {
  const img = linePlot([{ points: [[0, 100], [1, 10], [2, 1]], color: RED }], { logY: true, width: 300, height: 200 });
  const rowAt = (x: number) => {
    for (let y = 0; y < img.height; ++y) if (img.data[(y * img.width + x) * 3] === RED[0] && img.data[(y * img.width + x) * 3 + 1] === RED[1]) return y + 2; // marker centre
    return -1;
  };
  const left = 16 + 10 + 48;
  const right = img.width - 16;
  const [a, b, c] = [rowAt(left), rowAt(Math.round((left + right) / 2)), rowAt(right - 1)];
  expect(Math.abs((b - a) - (c - b))).toBeLessThanOrEqual(2);
  expectCode(() => linePlot([{ points: [[0, 0]], color: RED }], { logY: true }), "ERR_ARGUMENT", /logY/);
});

test("linePlot: no finite points or a tiny canvas is ERR_ARGUMENT", () => {
  expectCode(() => linePlot([{ points: [[0, NaN]], color: RED }]), "ERR_ARGUMENT", /no finite points/);
  expectCode(() => linePlot([{ points: [[0, 1]], color: RED }], { width: 50 }), "ERR_ARGUMENT", /width and height/);
});
