// Checkpoints and resume: a run interrupted at iteration k (by its iteration count or by an abort) and resumed
// from its checkpoint reproduces the uninterrupted run bit for bit — losses k+1..N, final parameters, EMA and
// the checkpoint file itself — for the MLP on toy data, a class-conditional UNet with dropout and label dropout,
// and a DiT with built-in class dropout. Plus: what may not change across a resume, damaged checkpoints, and
// atomic writes.
import * as fs from "node:fs";
import * as path from "node:path";
import * as fd from "../../lib";
import { toy2d, type Dataset } from "../../lib/data";
import { trainDenoiser, type TrainOptions, type TrainResult } from "../../lib/train";
import {
  concatValues,
  checkpointState, cleanupDirs, expectRejectCode, lossMismatches, note, parameterValues, sameBits, settledMemory, tempDir, tinyImages, tinyMlp,
} from "./util";

afterAll(cleanupDirs);

type Options = Omit<TrainOptions, "iterations" | "checkpointDir" | "resume">;

interface Run {
  result: TrainResult;
  model: fd.NetworkDenoiser;
  dir: string;
}

function emaValues(result: TrainResult): Float32Array {
  return concatValues(result.ema!.averages);
}

/** The uninterrupted run, and the same run stopped at `stopAt` (by `iterations: stopAt`, or by aborting from
 * onProgress) then resumed with a freshly built model (`make(1)`: a different initialization, so everything must
 * come from the checkpoint). Asserts the bit-for-bit properties; returns both for further checks. */
async function checkResume(
  make: (initSeed: number) => fd.NetworkDenoiser, data: Dataset, options: Options, N: number, every: number, stopAt: number, how: "iterations" | "abort",
  reference?: Run,
): Promise<{ full: Run; resumed: Run }> {
  let full = reference;
  if (!full) {
    const dir = tempDir("full");
    const model = make(0);
    full = { model, dir, result: await trainDenoiser(model, data, { ...options, iterations: N, checkpointDir: dir, checkpointEvery: every }) };
  }
  expect(full.result.losses.length).toBe(N);

  const dir = tempDir(how);
  const first = make(0);
  let firstLosses: number[];
  if (how === "iterations") {
    const r = await trainDenoiser(first, data, { ...options, iterations: stopAt, checkpointDir: dir, checkpointEvery: every });
    r.ema?.dispose();
    firstLosses = r.losses;
  } else {
    const ctl = new AbortController();
    const seen: number[] = [];
    await expectRejectCode(
      trainDenoiser(first, data, {
        ...options, iterations: N, checkpointDir: dir, checkpointEvery: every, signal: ctl.signal, progressEvery: 1,
        onProgress: (p) => {
          seen.push(p.loss);
          if (p.iteration === stopAt) ctl.abort();
        },
      }),
      "ERR_ABORTED", new RegExp(`aborted at iteration ${stopAt}`),
    );
    firstLosses = seen;
  }
  expect(lossMismatches(firstLosses, full.result.losses.slice(0, stopAt))).toEqual([]);
  expect((await checkpointState(dir)).iteration).toBe(stopAt);

  const model = make(1);
  expect(sameBits(parameterValues(model.network), parameterValues(full.model.network))).toBe(false);
  const result = await trainDenoiser(model, data, { ...options, iterations: N, checkpointDir: dir, checkpointEvery: every, resume: true });
  const resumed = { model, dir, result };
  expect(result.startIteration).toBe(stopAt);
  expect(result.losses.length).toBe(N - stopAt);
  // Iterations k+1..N: the same losses, bit for bit.
  expect(lossMismatches(result.losses, full.result.losses.slice(stopAt))).toEqual([]);
  // The same final parameters, EMA, and checkpoint file (model, EMA, Adam moments and every counter).
  expect(sameBits(parameterValues(model.network), parameterValues(full.model.network))).toBe(true);
  expect(sameBits(emaValues(result), emaValues(full.result))).toBe(true);
  expect(fs.readFileSync(fd.checkpointPath(dir)).equals(fs.readFileSync(fd.checkpointPath(full.dir)))).toBe(true);
  // Atomic writes leave nothing else behind.
  expect(fs.readdirSync(dir)).toEqual([fd.CHECKPOINT_FILE]);
  expect(fs.readdirSync(full.dir)).toEqual([fd.CHECKPOINT_FILE]);
  return { full, resumed };
}

describe("resume reproduces the uninterrupted run bit for bit", () => {
  // 8 gaussians, 320 points at batch 64: 5 batches per epoch, so the 24 iterations cross four epoch boundaries;
  // warm-up spans the interruption, clipping is active, the MLP has residual dropout.
  const data = toy2d("8gaussians", { n: 320, seed: 2 });
  const mlpOptions: Options = { batchSize: 64, seed: 3, lr: 3e-3, warmup: 10, maxGradNorm: 1, emaHalfLifeImages: 64 * 4 };
  const makeMlp = (init: number) => tinyMlp(init, { dropout: 0.1 });
  let mlpFull: Run | undefined;

  test("MLP on toy data: stopped by its iteration count at 12 of 24 (checkpoints every 6)", async () => {
    const { full, resumed } = await checkResume(makeMlp, data, mlpOptions, 24, 6, 12, "iterations");
    mlpFull = full;
    expect(full.model.network.dropoutGenerator.offset).toBeGreaterThan(0n); // dropout really drew
    expect(resumed.model.network.dropoutGenerator.state()).toEqual(full.model.network.dropoutGenerator.state());
    resumed.result.ema?.dispose();
  });

  test("MLP on toy data: aborted at 15 (between checkpoints), resumed from the abort's checkpoint", async () => {
    const { resumed } = await checkResume(makeMlp, data, mlpOptions, 24, 6, 15, "abort", mlpFull);
    resumed.result.ema?.dispose();
  });

  test("resume with no checkpoint in the folder starts at 0 and is the plain run", async () => {
    const dir = tempDir("empty");
    const model = makeMlp(0);
    const r = await trainDenoiser(model, data, { ...mlpOptions, iterations: 24, checkpointDir: dir, checkpointEvery: 6, resume: true });
    expect(r.startIteration).toBe(0);
    expect(lossMismatches(r.losses, mlpFull!.result.losses)).toEqual([]);
    r.ema?.dispose();
  });

  test("class-conditional UNet with dropout 0.1 and label dropout 0.25, both ways", async () => {
    const images = tinyImages(24, 3);
    const make = (init: number) => {
      const net = fd.UNet.create({
        sample_size: 8, in_channels: 1, out_channels: 1, block_out_channels: [16, 32], layers_per_block: 1,
        down_block_types: ["DownBlock2D", "AttnDownBlock2D"], up_block_types: ["AttnUpBlock2D", "UpBlock2D"],
        norm_num_groups: 4, attention_head_dim: 32, dropout: 0.1, num_class_embeds: 4, null_class: 3,
      }, { seed: init });
      return new fd.NetworkDenoiser(net, { type: "edm", sigmaData: 0.5 });
    };
    const options: Options = { batchSize: 4, seed: 5, lr: 1e-3, labelDropout: 0.25, warmup: 3 };
    // Count the null labels the network is given in the uninterrupted run: label dropout is really drawn.
    const dir = tempDir("unet-full");
    const model = make(0);
    let nulls = 0;
    const forward = model.network.forward.bind(model.network);
    jest.spyOn(model.network, "forward").mockImplementation((x, t, o) => {
      nulls += Array.from(o!.classLabels!).filter((c) => c === 3).length;
      return forward(x, t, o);
    });
    const full: Run = { model, dir, result: await trainDenoiser(model, images, { ...options, iterations: 10, checkpointDir: dir, checkpointEvery: 4 }) };
    note("UNet null labels of 40", nulls);
    expect(nulls).toBeGreaterThan(0);
    expect(model.network.dropoutGenerator.offset).toBeGreaterThan(0n);
    const a = await checkResume(make, images, options, 10, 4, 4, "iterations", full);
    const b = await checkResume(make, images, options, 10, 4, 6, "abort", full);
    a.resumed.result.ema?.dispose();
    b.resumed.result.ema?.dispose();
  });

  test("DiT-tiny with its built-in class dropout (class_dropout_prob 0.1)", async () => {
    const images = tinyImages(24, 3);
    const make = (init: number) => fd.modelPreset("dit-tiny", { sampleShape: [1, 8, 8], numClasses: 3, seed: init });
    const { full, resumed } = await checkResume(make, images, { batchSize: 4, seed: 6, lr: 1e-3 }, 8, 4, 4, "iterations");
    expect(full.model.network.config["class_dropout_prob"]).toBe(0.1);
    // The class dropout draws from the network's dropout generator, which the checkpoint carries.
    expect(full.model.network.dropoutGenerator.offset).toBeGreaterThan(0n);
    resumed.result.ema?.dispose();
  });
});

describe("what a resume checks", () => {
  const data = toy2d("8gaussians", { n: 256, seed: 4 });
  const options = { batchSize: 32, seed: 1, checkpointEvery: 4 };
  let dir = "";
  let bytes: Buffer;

  beforeAll(async () => {
    dir = tempDir("checks");
    const r = await trainDenoiser(tinyMlp(), data, { ...options, iterations: 4, checkpointDir: dir });
    r.ema?.dispose();
    bytes = fs.readFileSync(fd.checkpointPath(dir));
  });

  test("a changed batch size or seed is ERR_ARGUMENT naming the field, and leaves the model as it was", async () => {
    const model = tinyMlp(7);
    const before = model.network.parameters().map((p) => p.dataSync().slice());
    await expectRejectCode(
      trainDenoiser(model, data, { ...options, batchSize: 16, iterations: 8, checkpointDir: dir, resume: true }),
      "ERR_ARGUMENT", /cannot resume from .*: batchSize was 32, now 16/,
    );
    model.network.parameters().forEach((p, i) => expect(Buffer.from(p.dataSync().buffer).equals(Buffer.from(before[i]!.buffer))).toBe(true));
    model.network.dispose();
    await expectRejectCode(
      trainDenoiser(tinyMlp(), data, { ...options, seed: 2, iterations: 8, checkpointDir: dir, resume: true }),
      "ERR_ARGUMENT", /cannot resume from .*: seed was 1, now 2/,
    );
    await expectRejectCode(
      trainDenoiser(tinyMlp(), toy2d("grid25", { n: 256 }), { ...options, iterations: 8, checkpointDir: dir, resume: true }),
      "ERR_ARGUMENT", /dataset was "8gaussians", now "grid25"/,
    );
    expect(fs.readFileSync(fd.checkpointPath(dir)).equals(bytes)).toBe(true); // a refused resume writes nothing
  });

  describe("a damaged checkpoint is ERR_FORMAT, not a crash", () => {
    /** Resumes from a copy of the good checkpoint after `damage`; the model is left as it was. */
    async function resumeDamaged(damage: (file: string) => Promise<void> | void, pattern: RegExp): Promise<void> {
      const d = tempDir("damaged");
      const file = fd.checkpointPath(d);
      fs.writeFileSync(file, bytes);
      await damage(file);
      const model = tinyMlp(9);
      const params = parameterValues(model.network);
      const before = await settledMemory();
      await expectRejectCode(trainDenoiser(model, data, { ...options, iterations: 8, checkpointDir: d, resume: true }), "ERR_FORMAT", pattern);
      expect(sameBits(parameterValues(model.network), params)).toBe(true);
      expect(fd.memory().liveTensors).toBe(before.live); // released by the run, not left to the GC
      expect(await settledMemory()).toEqual(before);
    }

    test("truncated", () => resumeDamaged((f) => fs.truncateSync(f, Math.floor(bytes.length / 2)), /safetensors/));
    test("empty", () => resumeDamaged((f) => fs.truncateSync(f, 0), /safetensors/));
    test("garbage", () => resumeDamaged((f) => fs.writeFileSync(f, Buffer.from("not a checkpoint at all, just text")), /safetensors/));
    test("a safetensors file without the training state", () =>
      resumeDamaged(async (f) => fd.writeSafetensors(f, { x: fd.ones([2]) }), /no 'fastdiff_train_state' metadata/));
    test("training state that is not JSON", () =>
      resumeDamaged(async (f) => {
        const { tensors, metadata } = await fd.readSafetensors(f);
        await fd.writeSafetensors(f, tensors, { ...metadata, fastdiff_train_state: "{\"iteration\": 4, " });
        for (const t of tensors.values()) t.dispose();
      }, /training state is not valid JSON/));
    test("training state with fields missing", () =>
      resumeDamaged(async (f) => {
        const { tensors, metadata } = await fd.readSafetensors(f);
        await fd.writeSafetensors(f, tensors, { ...metadata, fastdiff_train_state: JSON.stringify({ iteration: 4 }) });
        for (const t of tensors.values()) t.dispose();
      }, /training state is incomplete or malformed/));
    test("a tensor missing (checked before anything is copied into the model)", () =>
      resumeDamaged(async (f) => {
        const { tensors, metadata } = await fd.readSafetensors(f);
        tensors.get("ema/out_proj.bias")!.dispose();
        tensors.delete("ema/out_proj.bias");
        await fd.writeSafetensors(f, tensors, metadata);
        for (const t of tensors.values()) t.dispose();
      }, /missing tensor 'ema\/out_proj.bias'/));
  });
});

describe("atomic checkpoint writes", () => {
  test("a write interrupted half-way leaves the previous checkpoint intact, no temp file, and a working resume", async () => {
    // Root ignores directory permissions (these tests run as root in CI), so the interruption is simulated at
    // the file level: the second checkpoint's temp file gets half its bytes, then the write throws — what a
    // crash or a full disk does mid-write. writeFileAtomic must clean up and never touch the target.
    const data = toy2d("8gaussians", { n: 256, seed: 5 });
    const options = { batchSize: 32, seed: 2, lr: 2e-3, emaHalfLifeImages: 32 * 4 };
    const full = await trainDenoiser(tinyMlp(), data, { ...options, iterations: 12 });
    full.ema?.dispose();

    const dir = tempDir("atomic");
    const file = fd.checkpointPath(dir);
    let good: Buffer | null = null;
    const realOpen = fs.promises.open;
    let checkpointOpens = 0;
    const spy = jest.spyOn(fs.promises, "open").mockImplementation(async (...args: Parameters<typeof fs.promises.open>) => {
      const handle = await realOpen.apply(fs.promises, args);
      if (path.basename(String(args[0])).startsWith(`.${fd.CHECKPOINT_FILE}.`) && ++checkpointOpens === 2) {
        const write = handle.writeFile.bind(handle);
        (handle as { writeFile: unknown }).writeFile = async (bytes: Uint8Array) => {
          await write(bytes.subarray(0, bytes.length >> 1));
          expect(fs.readdirSync(dir).length).toBe(2); // the checkpoint and the half-written temp file
          throw new Error("simulated crash mid-write");
        };
      }
      return handle;
    });
    try {
      await expect(
        trainDenoiser(tinyMlp(), data, {
          ...options, iterations: 12, checkpointDir: dir, checkpointEvery: 4, progressEvery: 1,
          onProgress: (p) => {
            if (p.iteration === 5) good = fs.readFileSync(file); // the checkpoint of iteration 4
          },
        }),
      ).rejects.toThrow("simulated crash mid-write");
    } finally {
      spy.mockRestore();
    }
    expect(checkpointOpens).toBe(2);
    expect(fs.readdirSync(dir)).toEqual([fd.CHECKPOINT_FILE]);
    expect(fs.readFileSync(file).equals(good!)).toBe(true);
    expect((await checkpointState(dir)).iteration).toBe(4);
    // and the run continues from it as if nothing had happened.
    const resumed = await trainDenoiser(tinyMlp(), data, { ...options, iterations: 12, checkpointDir: dir, checkpointEvery: 4, resume: true });
    expect(resumed.startIteration).toBe(4);
    expect(lossMismatches(resumed.losses, full.losses.slice(4))).toEqual([]);
    resumed.ema?.dispose();
  });
});
