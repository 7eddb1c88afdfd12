// PNG encode/decode round trips, the image-grid layout, value → byte conversion and atomic saving.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as zlib from "node:zlib";
import * as fd from "../../lib";
import { decodePng, encodePng, imageGrid, saveImageGrid, saveImageGridSync, tensorToImages, toByte, type PngChannels } from "../../lib/io/png";
import { expectCode, hostRandom } from "../helpers";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-png-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe("encodePng / decodePng", () => {
  for (const channels of [1, 2, 3, 4] as PngChannels[]) {
    test(`round trip is exact, ${channels} channel(s)`, () => {
      const r = hostRandom(channels);
      const [w, h] = [7, 5];
      const pixels = Uint8Array.from({ length: w * h * channels }, () => Math.floor(r() * 256));
      const png = encodePng(pixels, w, h, channels);
      expect(png.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
      const back = decodePng(png);
      expect([back.width, back.height, back.channels]).toEqual([w, h, channels]);
      expect(Buffer.from(back.data).equals(Buffer.from(pixels))).toBe(true);
    });
  }

  test("a subarray view is encoded from its own bytes", () => {
    const big = Uint8Array.from({ length: 20 }, (_, i) => i * 10);
    const view = big.subarray(4, 8);
    expect(Array.from(decodePng(encodePng(view, 2, 2, 1)).data)).toEqual([40, 50, 60, 70]);
  });

  test("bad arguments and bad files are FastdiffErrors", () => {
    expectCode(() => encodePng(new Uint8Array(5), 2, 2, 1), "ERR_ARGUMENT", /5 bytes for 2×2×1/);
    expectCode(() => encodePng(new Uint8Array(4), 0, 2, 1), "ERR_ARGUMENT");
    expectCode(() => encodePng(new Uint8Array(4), 2, 2, 5 as PngChannels), "ERR_ARGUMENT");
    expectCode(() => decodePng(Buffer.from("definitely not a png")), "ERR_FORMAT", /decodePng/);
    const good = encodePng(new Uint8Array(64 * 64).fill(9), 64, 64, 1);
    expectCode(() => decodePng(good.subarray(0, good.length - 30)), "ERR_FORMAT");
    const flipped = Buffer.from(good);
    flipped[45]! ^= 0xff; // inside the IDAT data (from byte 41): the CRC no longer matches
    expectCode(() => decodePng(flipped), "ERR_FORMAT");
  });
});

describe("tensor → bytes", () => {
  test("clamps to [−1, 1], NaN → mid-gray, rounds half up", () => {
    const v = [-2, -1, 0, 1, 2, NaN, Infinity, -Infinity, 0.5, -0.5];
    expect(v.map(toByte)).toEqual([0, 0, 128, 255, 255, 128, 255, 0, 191, 64]);
    const [img] = tensorToImages(fd.tensor(Float32Array.from(v), [1, 1, 2, 5]));
    expect(Array.from(img!.data)).toEqual([0, 0, 128, 255, 255, 128, 255, 0, 191, 64]);
  });

  test("tensorToImages interleaves channels", () => {
    // one 1×2 RGB image: R = [−1, 1], G = [0, 0], B = [1, −1]
    const [img] = tensorToImages(fd.tensor(Float32Array.from([-1, 1, 0, 0, 1, -1]), [1, 3, 1, 2]));
    expect(img).toMatchObject({ width: 2, height: 1, channels: 3 });
    expect(Array.from(img!.data)).toEqual([0, 128, 255, 255, 128, 0]);
  });
});

describe("imageGrid", () => {
  test("layout and padding (gray, 5 images, 2 per row, empty last cell)", () => {
    const [N, H, W] = [5, 2, 3];
    // image n, pixel (y, x) has value (n·6 + y·3 + x)/40 − 0.9, all distinct bytes
    const vals = Float32Array.from({ length: N * H * W }, (_, i) => i / 40 - 0.9);
    const g = imageGrid(fd.tensor(vals, [N, 1, H, W]), { nrow: 2, padding: 1, padValue: 1 });
    expect([g.width, g.height, g.channels]).toEqual([2 * (W + 1) + 1, 3 * (H + 1) + 1, 1]);
    const at = (x: number, y: number): number => g.data[y * g.width + x]!;
    const isPixel = new Set<number>();
    for (let n = 0; n < N; ++n) {
      const [x0, y0] = [(n % 2) * (W + 1) + 1, Math.floor(n / 2) * (H + 1) + 1];
      for (let y = 0; y < H; ++y)
        for (let x = 0; x < W; ++x) {
          expect(at(x0 + x, y0 + y)).toBe(toByte(vals[n * H * W + y * W + x]!));
          isPixel.add((y0 + y) * g.width + x0 + x);
        }
    }
    for (let p = 0; p < g.width * g.height; ++p) if (!isPixel.has(p)) expect(g.data[p]).toBe(255);
  });

  test("RGB grid with default padding 2 and black pad", () => {
    const x = fd.tensor(Float32Array.from([1, 0, -1, 1, 0, -1]), [2, 3, 1, 1]); // both images: one pixel (R, G, B) = (1, 0, −1)
    const g = imageGrid(x);
    expect([g.width, g.height, g.channels]).toEqual([2 * 3 + 2, 5, 3]);
    const px = (xx: number, y: number): number[] => Array.from(g.data.subarray((y * g.width + xx) * 3, (y * g.width + xx) * 3 + 3));
    expect(px(2, 2)).toEqual([255, 128, 0]);
    expect(px(5, 2)).toEqual([255, 128, 0]);
    expect(px(0, 0)).toEqual([0, 0, 0]);
    expect(px(3, 2)).toEqual([0, 0, 0]);
    expect(px(7, 4)).toEqual([0, 0, 0]);
  });

  test("a single [C, H, W] image and bad shapes", () => {
    expect(imageGrid(fd.zeros([1, 2, 2]), { padding: 0 })).toMatchObject({ width: 2, height: 2, channels: 1 });
    expectCode(() => imageGrid(fd.zeros([2, 2, 4, 4])), "ERR_SHAPE", /C = 1 or 3/);
    expectCode(() => imageGrid(fd.zeros([4, 4])), "ERR_SHAPE");
    expectCode(() => imageGrid(fd.zeros([1, 1, 2, 2]), { nrow: 0 }), "ERR_ARGUMENT");
  });
});

describe("saveImageGrid", () => {
  test("writes the grid atomically and leaves no temp file", async () => {
    const x = fd.rand([3, 3, 4, 5], { seed: 1, low: -1.2, high: 1.2 });
    const file = path.join(dir, "grid.png");
    fs.writeFileSync(file, "old contents");
    await saveImageGrid(x, file, { nrow: 2 });
    const back = decodePng(fs.readFileSync(file));
    const expected = imageGrid(x, { nrow: 2 });
    expect([back.width, back.height, back.channels]).toEqual([expected.width, expected.height, 3]);
    expect(Buffer.from(back.data).equals(Buffer.from(expected.data))).toBe(true);
    saveImageGridSync(fd.slice(x, 1, 0, 1), path.join(dir, "gray.png"), { padding: 0 });
    expect(decodePng(fs.readFileSync(path.join(dir, "gray.png")))).toMatchObject({ width: 15, height: 4, channels: 1 });
    expect(fs.readdirSync(dir).sort()).toEqual(["gray.png", "grid.png"]);
  });

  test("a failed write leaves the target untouched and no temp file", async () => {
    const sub = path.join(dir, "missing", "grid.png");
    await expect(saveImageGrid(fd.zeros([1, 1, 2, 2]), sub)).rejects.toThrow();
    expect(fs.existsSync(path.dirname(sub))).toBe(false);
  });
});

test("decodePng reads a hand-built 16-bit gray file (rounded to 8 bits)", () => {
  // IHDR 2×1, depth 16, color type 0; one row: filter 0, samples 0x0000, 0xffff
  const chunk = (type: string, body: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(body.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([Buffer.from(type), body])) >>> 0);
    return Buffer.concat([len, Buffer.from(type), body, crc]);
  };
  const ihdr = Buffer.from([0, 0, 0, 2, 0, 0, 0, 1, 16, 0, 0, 0, 0]);
  const idat = zlib.deflateSync(Buffer.from([0, 0x00, 0x00, 0xff, 0xff]));
  const file = Buffer.concat([Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr), chunk("IDAT", idat), chunk("IEND", Buffer.alloc(0))]);
  const img = decodePng(file);
  expect(img).toMatchObject({ width: 2, height: 1, channels: 1 });
  expect(Array.from(img.data)).toEqual([0, 255]);
});
