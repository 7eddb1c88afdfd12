// safetensors: exact round trips, hand-computed F16/BF16 bit patterns, the golden model file, every kind of
// corrupt input (each must be ERR_FORMAT naming the file/tensor, never a crash) and atomic replacement.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as fd from "../../lib";
import { goldenFile, readSafetensors as referenceRead } from "../helpers";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-st-"));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
const file = (name: string) => path.join(dir, name);

/** Float32 values from raw bit patterns (so -0, NaN and subnormals are exact). */
const fromBits = (bits: number[]) => new Float32Array(new Uint32Array(bits).buffer);
const bitsOf = (values: Float32Array) => Array.from(new Uint32Array(values.buffer, values.byteOffset, values.length));

/** A safetensors file from a header object and raw data bytes (for corrupt-input tests). */
function build(header: unknown, data: Uint8Array | number = 0, rawHeader?: string): Buffer {
  const json = Buffer.from(rawHeader ?? JSON.stringify(header), "utf8");
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([len, json, typeof data === "number" ? Buffer.alloc(data) : Buffer.from(data)]);
}

function formatError(fn: () => unknown): fd.FastdiffError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(fd.FastdiffError);
    expect((e as fd.FastdiffError).code).toBe("ERR_FORMAT");
    return e as fd.FastdiffError;
  }
  throw new Error("expected ERR_FORMAT, nothing was thrown");
}
const parse = (buf: Uint8Array) => fd.parseSafetensors(buf, { source: "bad.safetensors" });

/** Data bytes of a file written by serializeSafetensors (skips the padded header). */
function dataBytes(bytes: Uint8Array): Buffer {
  const b = Buffer.from(bytes);
  return b.subarray(8 + Number(b.readBigUInt64LE(0)));
}

describe("round trips", () => {
  test("F32 is bit-exact, with metadata and sorted layout", async () => {
    const special = [
      0x00000000, 0x80000000, // +0, -0
      0x00000001, 0x807fffff, // smallest and largest subnormals
      0x7f7fffff, 0xff7fffff, // ±max
      0x00800000, 0x7f800000, 0xff800000, 0x7fc00000, // min normal, ±Inf, NaN
      0x3f800000, 0xbeaaaaab,
    ];
    const a = fd.tensor(fromBits(special), [3, 4]);
    const b = fd.tensor([[1, 2, 3]]);
    const s = fd.tensor(fromBits([0x40490fdb]), []); // scalar
    const target = file("rt.safetensors");
    await fd.writeSafetensors(target, { zeta: a, alpha: b, mid: s }, { format: "pt", note: "ünïcode" });

    const bytes = fs.readFileSync(target);
    const headerLen = Number(bytes.readBigUInt64LE(0));
    expect(headerLen % 8).toBe(0); // space-padded so the data section stays aligned
    const header = JSON.parse(bytes.subarray(8, 8 + headerLen).toString("utf8"));
    expect(header.alpha.data_offsets).toEqual([0, 12]); // sorted-name order: alpha, mid, zeta
    expect(header.mid.data_offsets).toEqual([12, 16]);
    expect(header.zeta).toEqual({ dtype: "F32", shape: [3, 4], data_offsets: [16, 64] });

    const { tensors, metadata } = await fd.readSafetensors(target);
    expect(metadata).toEqual({ format: "pt", note: "ünïcode" });
    expect([...tensors.keys()].sort()).toEqual(["alpha", "mid", "zeta"]);
    expect(tensors.get("zeta")!.shape).toEqual([3, 4]);
    expect(bitsOf(tensors.get("zeta")!.dataSync())).toEqual(special);
    expect(tensors.get("mid")!.shape).toEqual([]);
    expect(Array.from(tensors.get("alpha")!.dataSync())).toEqual([1, 2, 3]);
    // The sync twin reads the same.
    expect(bitsOf(fd.readSafetensorsSync(target).tensors.get("zeta")!.dataSync())).toEqual(special);
  });

  test("a Map, no metadata, sync write", () => {
    const target = file("map.safetensors");
    fd.writeSafetensorsSync(target, new Map([["w", fd.ones([2, 2])]]));
    const { tensors, metadata } = fd.readSafetensorsSync(target);
    expect(metadata).toEqual({});
    expect(Array.from(tensors.get("w")!.dataSync())).toEqual([1, 1, 1, 1]);
  });
});

describe("F16 and BF16", () => {
  // value → [half bits, bf16 bits], computed by hand.
  const cases: [number, number, number][] = [
    [0x3f800000, 0x3c00, 0x3f80], // 1.0
    [0xbf800000, 0xbc00, 0xbf80], // -1.0
    [0x80000000, 0x8000, 0x8000], // -0
    [0x477fe000, 0x7bff, 0x4780], // 65504: largest half; bf16 drops 0xe000 > half an ulp → rounds up to 65536
    [0x33800000, 0x0001, 0x3380], // 2^-24: smallest half subnormal
    [0x33000000, 0x0000, 0x3300], // 2^-25: tie between 0 and 2^-24 → even (0)
    [0x33400000, 0x0001, 0x3340], // 1.5·2^-25 → rounds up to 2^-24
    [0x38800000, 0x0400, 0x3880], // 2^-14: smallest normal half
    [0x3f801000, 0x3c00, 0x3f80], // 1 + 2^-11: half tie → even (1.0)
    [0x3f803000, 0x3c02, 0x3f80], // 1 + 3·2^-11: half tie → even (1 + 2^-9)
    [0x3f808000, 0x3c04, 0x3f80], // 1 + 2^-8: bf16 tie → even (1.0)
    [0x3f818000, 0x3c0c, 0x3f82], // 1 + 3·2^-8: bf16 tie → even (1 + 2^-6)
    [0x477ff000, 0x7c00, 0x4780], // 65520: half tie → Inf
    [0x7f800000, 0x7c00, 0x7f80], // +Inf
    [0x7fc00000, 0x7e00, 0x7fc0], // NaN
  ];

  const values = fromBits(cases.map((c) => c[0]));
  const readBack = (dtype: "F16" | "BF16") => {
    const bytes = fd.serializeSafetensors({ x: fd.tensor(values) }, undefined, { dtype });
    const data = dataBytes(bytes);
    const stored = Array.from({ length: cases.length }, (_, i) => data.readUInt16LE(2 * i));
    const back = bitsOf(fd.parseSafetensors(bytes).tensors.get("x")!.dataSync());
    return { stored, back };
  };

  test("F16 writes round-to-nearest-even bits and reads them back exactly", () => {
    const { stored, back } = readBack("F16");
    expect(stored.map((b) => b.toString(16))).toEqual(cases.map((c) => c[1].toString(16)));
    // Reading is exact: each stored half maps to its float32 value.
    const expected = [0x3f800000, 0xbf800000, 0x80000000, 0x477fe000, 0x33800000, 0, 0x33800000, 0x38800000,
      0x3f800000, 0x3f804000, 0x3f808000, 0x3f818000, 0x7f800000, 0x7f800000, 0x7fc00000];
    expect(back.map((b) => b.toString(16))).toEqual(expected.map((b) => b.toString(16)));
  });

  test("BF16 writes round-to-nearest-even bits and reads them back exactly", () => {
    const { stored, back } = readBack("BF16");
    expect(stored.map((b) => b.toString(16))).toEqual(cases.map((c) => c[2].toString(16)));
    expect(back).toEqual(cases.map((c) => c[2] * 0x10000));
  });

  test("F16 subnormals, F64, I64 and I32 load as float32", () => {
    const data = Buffer.alloc(2 * 3 + 8 * 2 + 8 * 2 + 4 * 2);
    [0x0001, 0x03ff, 0x83ff].forEach((h, i) => data.writeUInt16LE(h, 2 * i));
    data.writeDoubleLE(0.1, 6);
    data.writeDoubleLE(-1e300, 14);
    data.writeBigInt64LE(999n, 22);
    data.writeBigInt64LE(-7n, 30);
    data.writeInt32LE(123456, 38);
    data.writeInt32LE(-1, 42);
    const buf = build({
      h: { dtype: "F16", shape: [3], data_offsets: [0, 6] },
      d: { dtype: "F64", shape: [2], data_offsets: [6, 22] },
      l: { dtype: "I64", shape: [2], data_offsets: [22, 38] },
      i: { dtype: "I32", shape: [2], data_offsets: [38, 46] },
    }, data);
    const { tensors } = fd.parseSafetensors(buf);
    expect(Array.from(tensors.get("h")!.dataSync())).toEqual([2 ** -24, 1023 * 2 ** -24, -1023 * 2 ** -24]);
    expect(Array.from(tensors.get("d")!.dataSync())).toEqual([Math.fround(0.1), -Infinity]);
    expect(Array.from(tensors.get("l")!.dataSync())).toEqual([999, -7]);
    expect(Array.from(tensors.get("i")!.dataSync())).toEqual([123456, -1]);
  });
});

test("the golden UNet weights load (or the test says plainly that it did not run)", async () => {
  const weights = goldenFile("models/unet2d_c1_s28/diffusion_pytorch_model.safetensors");
  if (!weights) return; // goldenFile said plainly that this did not run
  const { tensors, metadata } = await fd.readSafetensors(weights);
  expect(tensors.size).toBe(144);
  expect(metadata.format).toBe("pt");
  expect(tensors.get("conv_in.weight")!.shape).toEqual([32, 1, 3, 3]);
  expect(tensors.get("conv_in.bias")!.shape).toEqual([32]);
  // Compare against the independent test reader in helpers.ts.
  const ref = referenceRead(weights).tensors.get("conv_in.weight")!;
  expect(Array.from(tensors.get("conv_in.weight")!.dataSync())).toEqual(Array.from(ref.data));
  // A checkTensorSet against the file's own shapes passes.
  fd.checkTensorSet(tensors, new Map([...tensors].map(([n, t]) => [n, t.shape])), weights);
  for (const t of tensors.values()) t.dispose();
});

describe("corrupt input is ERR_FORMAT, never a crash", () => {
  const good = () => fd.serializeSafetensors({ a: fd.tensor([1, 2, 3, 4]), b: fd.tensor([5, 6]) }, { k: "v" });

  test("truncated anywhere", () => {
    const bytes = good();
    const headerLen = Number(Buffer.from(bytes).readBigUInt64LE(0));
    for (const cut of [0, 3, 7, 8, 8 + 5, 8 + headerLen - 1, 8 + headerLen, 8 + headerLen + 7, bytes.length - 1]) {
      const e = formatError(() => parse(bytes.subarray(0, cut)));
      expect(e.message).toContain("bad.safetensors");
    }
    expect(formatError(() => parse(bytes.subarray(0, bytes.length - 1))).message).toContain('"b"'); // b's data cut
  });

  test("a flipped byte in the header JSON", () => {
    const bytes = Buffer.from(good());
    bytes[8] = "[".charCodeAt(0); // "{" → "["
    expect(formatError(() => parse(bytes)).message).toMatch(/JSON/);
    const bad = Buffer.from(good());
    bad[12] = 0xff; // invalid UTF-8
    expect(formatError(() => parse(bad)).message).toMatch(/UTF-8/);
  });

  test("a huge header length on a tiny file is refused before allocating", () => {
    const buf = Buffer.alloc(16);
    buf.writeBigUInt64LE(2n ** 62n);
    expect(formatError(() => parse(buf)).message).toMatch(/header length/);
    buf.writeBigUInt64LE(200n * 1024n * 1024n); // 200 MB: over the limit
    expect(formatError(() => parse(buf)).message).toMatch(/limit/);
  });

  test("header that is not an object", () => {
    expect(formatError(() => parse(build([1, 2]))).message).toMatch(/array/);
    expect(formatError(() => parse(build(null))).message).toMatch(/object/);
    expect(formatError(() => parse(build({ __metadata__: { n: 1 } }))).message).toMatch(/__metadata__/);
  });

  const cases: [string, unknown, number, RegExp][] = [
    ["wrong dtype", { dtype: "Q7", shape: [2], data_offsets: [0, 8] }, 8, /unsupported dtype "Q7"/],
    ["unsupported dtype", { dtype: "U8", shape: [2], data_offsets: [0, 2] }, 2, /unsupported dtype "U8"/],
    ["missing dtype", { shape: [2], data_offsets: [0, 8] }, 8, /dtype/],
    ["shape not an array", { dtype: "F32", shape: 2, data_offsets: [0, 8] }, 8, /shape/],
    ["negative shape", { dtype: "F32", shape: [-2], data_offsets: [0, 8] }, 8, /non-negative integers/],
    ["fractional shape", { dtype: "F32", shape: [1.5], data_offsets: [0, 8] }, 8, /non-negative integers/],
    ["shape/size mismatch", { dtype: "F32", shape: [3], data_offsets: [0, 8] }, 8, /needs 12/],
    ["offsets out of range", { dtype: "F32", shape: [2], data_offsets: [8, 16] }, 8, /outside the data section/],
    ["reversed offsets", { dtype: "F32", shape: [0], data_offsets: [8, 0] }, 8, /begin after end/],
    ["missing offsets", { dtype: "F32", shape: [2] }, 8, /data_offsets/],
    ["entry not an object", "F32", 8, /not an object/],
  ];
  test.each(cases)("%s names the tensor", (_what, entry, dataLen, pattern) => {
    const e = formatError(() => parse(build({ "down.0.weight": entry }, dataLen)));
    expect(e.message).toMatch(pattern);
    expect(e.message).toContain('tensor "down.0.weight"');
    expect(e.message).toContain("bad.safetensors");
  });

  test("overlapping tensors", () => {
    const buf = build({
      a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
      b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
    }, 12);
    expect(formatError(() => parse(buf)).message).toMatch(/tensor "b".*overlap tensor "a"/);
  });

  test("uncovered bytes and space padding are allowed", () => {
    const json = JSON.stringify({ a: { dtype: "F32", shape: [1], data_offsets: [4, 8] } });
    const data = Buffer.alloc(12);
    data.writeFloatLE(2.5, 4);
    const { tensors } = parse(build(null, data, json + "      "));
    expect(Array.from(tensors.get("a")!.dataSync())).toEqual([2.5]);
  });
});

describe("atomic writes", () => {
  const leftovers = () => fs.readdirSync(dir).filter((n) => n.endsWith(".tmp"));

  test("overwriting replaces the whole file", async () => {
    const target = file("over.safetensors");
    await fd.writeSafetensors(target, { x: fd.ones([1000]) });
    await fd.writeSafetensors(target, { y: fd.zeros([2]) });
    expect([...(await fd.readSafetensors(target)).tensors.keys()]).toEqual(["y"]);
    expect(leftovers()).toEqual([]);
  });

  test("a failed write leaves the old file intact and no temp file", async () => {
    const target = file("keep.safetensors");
    await fd.writeSafetensors(target, { x: fd.tensor([1, 2]) });
    const before = fs.readFileSync(target);
    const dead = fd.ones([3]);
    dead.dispose();
    await expect(fd.writeSafetensors(target, { x: fd.ones([2]), y: dead })).rejects.toMatchObject({ code: "ERR_DISPOSED" });
    expect(fs.readFileSync(target)).toEqual(before);
    expect(leftovers()).toEqual([]);
  });

  test("a failed rename removes the temp file (async and sync)", async () => {
    // Renaming a file over a non-empty directory fails even as root: the failure happens after the temp
    // file was written and synced, which is exactly the cleanup path.
    const target = file("a-directory");
    fs.mkdirSync(target);
    fs.writeFileSync(path.join(target, "inside"), "old");
    await expect(fd.writeFileAtomic(target, "new")).rejects.toThrow();
    expect(() => fd.writeFileAtomicSync(target, "new")).toThrow();
    expect(fs.readFileSync(path.join(target, "inside"), "utf8")).toBe("old");
    expect(leftovers()).toEqual([]);
  });

  test("a directory without write permission (non-root only)", async () => {
    if (process.getuid?.() === 0) return; // root ignores permissions; covered by the tests above
    const locked = file("locked");
    fs.mkdirSync(locked);
    const target = path.join(locked, "w.safetensors");
    fs.writeFileSync(target, "old");
    fs.chmodSync(locked, 0o555);
    try {
      await expect(fd.writeSafetensors(target, { x: fd.ones([2]) })).rejects.toThrow();
      expect(fs.readFileSync(target, "utf8")).toBe("old");
      expect(fs.readdirSync(locked)).toEqual(["w.safetensors"]);
    } finally {
      fs.chmodSync(locked, 0o755);
    }
  });
});

describe("checkTensorSet", () => {
  const loaded = new Map([
    ["a", { shape: [2, 3] }],
    ["b", { shape: [4] }],
    ["extra", { shape: [1] }],
  ]);

  test("passes on an exact match", () => {
    expect(() => fd.checkTensorSet(loaded, { a: [2, 3], b: [4], extra: [1] }, "m.safetensors")).not.toThrow();
  });

  test("lists missing, unexpected and mismatched weights by name", () => {
    const e = formatError(() => fd.checkTensorSet(loaded, { a: [3, 2], b: [4], c: [5] }, "m.safetensors"));
    expect(e.message).toContain("m.safetensors");
    expect(e.message).toContain("1 missing: c");
    expect(e.message).toContain("1 unexpected: extra");
    expect(e.message).toContain("1 shape mismatches: a [2, 3] (expected [3, 2])");
  });

  test("long lists are cut with a count", () => {
    const expected = new Map(Array.from({ length: 12 }, (_, i) => [`w${i}`, [1]] as [string, number[]]));
    const e = formatError(() => fd.checkTensorSet(new Map(), expected, "m"));
    expect(e.message).toContain("12 missing: w0, w1, w2, w3, w4, … (7 more)");
  });
});
