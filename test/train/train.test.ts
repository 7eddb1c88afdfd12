// trainDenoiser: it learns (the trained MLP approaches the exact 8-Gaussians denoiser), label dropout at the
// requested rate, learning-rate warm-up, the EMA against a host replica, progress events, abort with a checkpoint,
// non-finite losses skipped then ERR_NUMERIC, argument errors, and constant memory over a run.
import * as fs from "node:fs";
import * as fd from "../../lib";
import { ArrayDataset, BatchLoader, toy2d, type ToyDataset } from "../../lib/data";
import { edmNoiseLevels, trainDenoiser, type TrainProgress } from "../../lib/train";
import {
  checkpointState, cleanupDirs, expectRejectCode, mean, note, parameterValues, sameBits, settledMemory, tempDir, tinyImages, tinyMlp,
} from "./util";

afterAll(cleanupDirs);

/** Mean squared difference between the model's and the exact denoiser's outputs at noise level σ, on x̂ = x0 + σn
 * for fresh exact draws x0 (the distribution the loss weights). */
function errorAt(model: fd.Denoiser, data: ToyDataset, sigma: number, seed: number): number {
  return fd.scope(() =>
    fd.noGrad(() => {
      const x0 = data.sample(2000, 1000 + seed);
      const xhat = fd.add(x0, fd.mul(fd.randn(x0.shape, { seed }), sigma));
      return fd.mean(fd.square(fd.sub(model.denoise(xhat, sigma), data.denoiser!.denoise(xhat, sigma)))).item();
    }),
  );
}

/** The Bayes-optimal value of the EDM loss: the same loss with the exact denoiser, averaged over `batches` draws. */
function exactLoss(data: ToyDataset, batchSize: number, batches: number, options: { pMean?: number; pStd?: number; sigmaData: number }): number {
  const g = new fd.Generator(77);
  let total = 0;
  for (let k = 0; k < batches; ++k) {
    total += fd.scope(() => {
      const x0 = data.sample(batchSize, g);
      const { sigmas, weights } = edmNoiseLevels(batchSize, g, options);
      const n = fd.randn(x0.shape, { generator: g });
      const s = fd.tensor(Float32Array.from(sigmas), [batchSize, 1]);
      const xhat = fd.add(x0, fd.mul(n, s));
      const err = fd.mean(fd.square(fd.sub(data.denoiser!.denoise(xhat, sigmas), x0)), 1).dataSync();
      let l = 0;
      for (let b = 0; b < batchSize; ++b) l += weights[b]! * err[b]!;
      return l / batchSize;
    });
  }
  return total / batches;
}

describe("learning", () => {
  test("the MLP trained on 8gaussians approaches the exact MixtureDenoiser", async () => {
    const data = toy2d("8gaussians", { n: 4096 });
    const model = tinyMlp(0);
    const sigmas = [0.1, 0.5, 1, 2];
    const untrained = sigmas.map((s, i) => errorAt(model, data, s, 7 + i));
    const result = await trainDenoiser(model, data, { iterations: 600, batchSize: 256, lr: 6e-3, betas: [0.9, 0.99], warmup: 50, seed: 1 });
    expect(result.losses.length).toBe(600);
    expect(result.losses.every(Number.isFinite)).toBe(true);
    const raw = sigmas.map((s, i) => errorAt(model, data, s, 7 + i));
    result.ema!.copyTo();
    result.ema!.dispose();
    const averaged = sigmas.map((s, i) => errorAt(model, data, s, 7 + i));

    // The loss: most of the way from its start to the Bayes-optimal value (the exact denoiser's loss, ≈ 0.68).
    const first = mean(result.losses.slice(0, 50));
    const last = mean(result.losses.slice(-50));
    const bayes = exactLoss(data, 256, 50, { sigmaData: 1 });
    note("loss first50/last50/bayes", [first, last, bayes]);
    expect(last).toBeLessThan(0.8 * first); // observed 0.742 vs 1.189 (0.62)
    expect(last - bayes).toBeLessThan(0.3 * (first - bayes)); // excess loss: observed 0.13 of the initial
    expect(last).toBeGreaterThan(bayes - 0.05); // the Bayes value is a floor (up to batch noise)

    // The denoiser itself, σ by σ. Observed (AVX-512): untrained 6.9e−3, 0.165, 0.303, 0.271; EMA weights
    // 3.5e−4, 2.7e−3, 8.8e−3, 1.4e−2 (20×, 62×, 35×, 20× better); raw weights 9×, 28×, 21×, 9× better.
    note("untrained / raw / ema MSE", { untrained, raw, averaged });
    sigmas.forEach((s, i) => {
      expect(untrained[i]! / averaged[i]!).toBeGreaterThan(10);
      expect(averaged[i]!).toBeLessThan(0.03);
      expect(untrained[i]! / raw[i]!).toBeGreaterThan(4);
    });
  });

  test("the DDPM ε-loss trains a DDPM-parameterized MLP", async () => {
    const data = toy2d("8gaussians", { n: 1024 });
    const net = fd.MLP.create({ in_features: 2, hidden_size: 64, num_layers: 2 }, { seed: 0 });
    const model = new fd.NetworkDenoiser(net, { type: "ddpm", prediction: "epsilon" });
    const result = await trainDenoiser(model, data, { loss: "ddpm", iterations: 150, batchSize: 128, lr: 5e-3, seed: 2 });
    const first = mean(result.losses.slice(0, 20));
    const last = mean(result.losses.slice(-20));
    note("ddpm first20/last20", [first, last]);
    // Observed 0.53 → 0.30 (predicting ε̂ = 0 would give 1).
    expect(last).toBeLessThan(0.7 * first);
    expect(last).toBeLessThan(0.45);
    result.ema?.dispose();
  });
});

describe("label dropout", () => {
  /** Trains a conditional UNet with a spy on forward; returns the labels the network saw per call and the batches' labels. */
  async function seenLabels(labelDropout: number | undefined, iterations: number) {
    const data = tinyImages(48, 3);
    const model = fd.modelPreset("unet-tiny", { sampleShape: [1, 8, 8], numClasses: 3, seed: 0 });
    expect(model.network.nullClass).toBe(3);
    const seen: Int32Array[] = [];
    const forward = model.network.forward.bind(model.network);
    const spy = jest.spyOn(model.network, "forward").mockImplementation((x, t, options) => {
      seen.push(Int32Array.from(options!.classLabels!));
      return forward(x, t, options);
    });
    const batchSize = 16;
    const seed = 4;
    const result = await trainDenoiser(model, data, { iterations, batchSize, seed, labelDropout, lr: 1e-4 });
    spy.mockRestore();
    result.ema?.dispose();
    // The batches the trainer drew (the data order is seeded: BatchLoader(data, { batchSize, seed })).
    const loader = new BatchLoader(data, { batchSize, seed, dropLast: true });
    const truth = seen.map(() => Int32Array.from(loader.nextIndices(), (i) => data.labels![i]!));
    let nulls = 0;
    let changed = 0;
    seen.forEach((labels, k) =>
      labels.forEach((c, i) => {
        if (c === 3) nulls += 1;
        else if (c !== truth[k]![i]) changed += 1;
      }),
    );
    return { calls: seen.length, total: seen.length * batchSize, nulls, changed };
  }

  test("the network sees the null class at the requested rate, other labels unchanged", async () => {
    const r = await seenLabels(0.3, 20);
    expect(r.calls).toBe(20);
    expect(r.changed).toBe(0); // a dropped label becomes the null class, never another class
    // 320 labels at p = 0.3: 96 expected, sd √(320·0.3·0.7) ≈ 8.2; 4 sd.
    note("nulls at p=0.3 of 320", r.nulls);
    expect(Math.abs(r.nulls - 0.3 * r.total)).toBeLessThan(4 * Math.sqrt(r.total * 0.3 * 0.7));
    // The default for a network with a null class is 0.1 (32 of 320 expected, sd 5.4).
    const d = await seenLabels(undefined, 20);
    note("nulls at default of 320", d.nulls);
    expect(d.changed).toBe(0);
    expect(Math.abs(d.nulls - 0.1 * d.total)).toBeLessThan(4 * Math.sqrt(d.total * 0.1 * 0.9));
    const none = await seenLabels(0, 4);
    expect([none.nulls, none.changed]).toEqual([0, 0]);
  });
});

describe("schedule, EMA and progress", () => {
  const data = toy2d("8gaussians", { n: 256, seed: 3 });

  test("warm-up ramps the learning rate linearly, and the first Adam step is lr/warmup in size", async () => {
    const lrs: number[] = [];
    const r = await trainDenoiser(tinyMlp(), data, { iterations: 12, batchSize: 32, lr: 2e-3, warmup: 8, progressEvery: 1, onProgress: (p) => lrs.push(p.lr) });
    r.ema?.dispose();
    expect(lrs.length).toBe(12);
    lrs.forEach((lr, i) => expect(lr).toBeCloseTo(2e-3 * Math.min(1, (i + 1) / 8), 15));
    // Adam's first step moves every parameter with a non-negligible gradient by lr·g/(|g| + ε) ≈ lr: the step size
    // shows the lr the optimizer actually got.
    const firstStep = async (warmup: number): Promise<number> => {
      const model = tinyMlp();
      const before = parameterValues(model.network);
      const res = await trainDenoiser(model, data, { iterations: 1, batchSize: 32, lr: 8e-3, warmup });
      res.ema?.dispose();
      const after = parameterValues(model.network);
      let m = 0;
      for (let i = 0; i < before.length; ++i) m = Math.max(m, Math.abs(after[i]! - before[i]!));
      return m;
    };
    const [ramped, full] = [await firstStep(8), await firstStep(0)];
    note("first-step max |Δp| with/without warm-up", [ramped, full]);
    expect(ramped / 1e-3).toBeGreaterThan(0.999);
    expect(ramped / 1e-3).toBeLessThan(1.001);
    expect(full / 8e-3).toBeGreaterThan(0.999);
    expect(full / 8e-3).toBeLessThan(1.001);
  });

  test.each([
    ["fixed half-life (5 updates)", { emaHalfLifeImages: 5 * 32, emaRampUp: 0 }, () => 5],
    ["EDM ramp (half-life ≤ 0.05·updates)", { emaHalfLifeImages: 100 * 32 }, (u: number) => Math.min(100, Math.max(1e-8, (u + 1) * 0.05))],
  ])("the EMA follows β = 0.5^(1/half-life) against a host replica: %s", async (_, options, halfLife) => {
    const model = tinyMlp(5);
    const init = Float64Array.from(parameterValues(model.network));
    const avg = init.slice();
    let updates = 0;
    const result = await trainDenoiser(model, data, {
      iterations: 20, batchSize: 32, lr: 5e-3, ...options, progressEvery: 1,
      onProgress: () => {
        const p = parameterValues(model.network);
        const beta = Math.pow(0.5, 1 / halfLife(updates++));
        for (let i = 0; i < avg.length; ++i) avg[i] = beta * avg[i]! + (1 - beta) * p[i]!;
      },
    });
    const ema = result.ema!;
    expect(ema.updates).toBe(20);
    const averages = new Float32Array(avg.length);
    let at = 0;
    for (const t of ema.averages) {
      averages.set(t.dataSync(), at);
      at += t.size;
    }
    let worst = 0;
    for (let i = 0; i < avg.length; ++i) worst = Math.max(worst, Math.abs(averages[i]! - avg[i]!));
    note("EMA vs host replica max |Δ|", worst);
    expect(worst).toBeLessThan(1e-6);
    // The averages are not the raw parameters; copyTo() installs them bit for bit.
    const rawParams = parameterValues(model.network);
    expect(sameBits(averages, rawParams)).toBe(false);
    ema.copyTo();
    expect(sameBits(parameterValues(model.network), averages)).toBe(true);
    ema.dispose();
  });

  test("progress events arrive every progressEvery iterations and at the end, with consistent fields", async () => {
    const events: TrainProgress[] = [];
    const result = await trainDenoiser(tinyMlp(), data, { iterations: 30, batchSize: 32, progressEvery: 7, onProgress: (p) => events.push({ ...p }) });
    result.ema?.dispose();
    expect(events.map((e) => e.iteration)).toEqual([7, 14, 21, 28, 30]);
    let prev = 0;
    for (const e of events) {
      expect(e.iterations).toBe(30);
      expect(Object.is(e.loss, result.losses[e.iteration - 1])).toBe(true);
      const window = result.losses.slice(prev, e.iteration);
      expect(Math.abs(e.meanLoss - mean(window))).toBeLessThan(1e-12 * mean(window));
      expect(e.lr).toBe(1e-3);
      expect(e.gradNorm).toBeGreaterThan(0);
      expect(Number.isFinite(e.gradNorm)).toBe(true);
      expect(e.imagesPerSecond).toBeGreaterThan(0);
      expect(Number.isFinite(e.imagesPerSecond)).toBe(true);
      // ETA: the images left at this window's rate.
      expect(e.etaSeconds).toBeCloseTo(((30 - e.iteration) * 32) / e.imagesPerSecond, 9);
      // 8 batches per epoch (256 / 32): iteration i ran in epoch ⌊(i − 1)/8⌋.
      expect(e.epoch).toBe(Math.floor((e.iteration - 1) / 8));
      prev = e.iteration;
    }
    expect(events.at(-1)!.etaSeconds).toBe(0);
    // The default period: max(1, ⌊iterations/100⌋).
    let count = 0;
    const r2 = await trainDenoiser(tinyMlp(), data, { iterations: 210, batchSize: 32, onProgress: () => void (count += 1) });
    r2.ema?.dispose();
    expect(count).toBe(105);
  });
});

describe("abort and non-finite losses", () => {
  const data = toy2d("8gaussians", { n: 256, seed: 3 });

  test("an AbortSignal stops between iterations with ERR_ABORTED and writes a checkpoint when a folder is set", async () => {
    const dir = tempDir("abort");
    const ctl = new AbortController();
    const model = tinyMlp();
    const before = await settledMemory();
    const seen: number[] = [];
    const p = trainDenoiser(model, data, {
      iterations: 50, batchSize: 32, checkpointDir: dir, progressEvery: 1,
      onProgress: (e) => {
        seen.push(e.iteration);
        if (e.iteration === 5) ctl.abort();
      },
      signal: ctl.signal,
    });
    await expectRejectCode(p, "ERR_ABORTED", /aborted at iteration 5 \(checkpoint in /);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(model.network.isTraining).toBe(false);
    expect(fs.readdirSync(dir)).toEqual([fd.CHECKPOINT_FILE]); // no temp files left behind
    const state = await checkpointState(dir);
    expect([state.iteration, state.adamSteps, state.emaUpdates, state.images]).toEqual([5, 5, 5, 160]);
    // Without a folder: the same error, no checkpoint mentioned; an already-aborted signal runs no iteration.
    const params = parameterValues(model.network);
    let calls = 0;
    await expectRejectCode(
      trainDenoiser(model, data, { iterations: 5, batchSize: 32, progressEvery: 1, onProgress: () => void (calls += 1), signal: AbortSignal.abort() }),
      "ERR_ABORTED", /^trainDenoiser: aborted at iteration 0$/,
    );
    expect(calls).toBe(0);
    expect(sameBits(parameterValues(model.network), params)).toBe(true);
    // The optimizer, the EMA and the gradients of the aborted runs are released — by the runs themselves, not
    // left to the garbage collector (counted before any collection: the test would otherwise flake on its timing).
    expect(fd.memory().liveTensors).toBe(before.live);
    const after = await settledMemory();
    expect(after).toEqual(before);
  });

  test("NaN data: every step is skipped (parameters untouched), then ERR_NUMERIC after maxNonFinite", async () => {
    const nan = new ArrayDataset("nan", new Float32Array(128).fill(NaN), [2]);
    const model = tinyMlp();
    const params = parameterValues(model.network);
    const losses: number[] = [];
    await expectRejectCode(
      trainDenoiser(model, nan, { iterations: 20, batchSize: 16, maxNonFinite: 3, progressEvery: 1, onProgress: (p) => losses.push(p.loss) }),
      "ERR_NUMERIC", /loss is NaN for 4 consecutive iterations \(at 4\)/,
    );
    expect(losses.length).toBe(3);
    expect(losses.every(Number.isNaN)).toBe(true);
    expect(sameBits(parameterValues(model.network), params)).toBe(true);
  });

  test("a diverging run (lr = 1e30) ends with ERR_NUMERIC, not a crash", async () => {
    const losses: number[] = [];
    const err = await expectRejectCode(
      trainDenoiser(tinyMlp(), data, { iterations: 50, batchSize: 32, lr: 1e30, maxNonFinite: 5, progressEvery: 1, onProgress: (p) => losses.push(p.loss) }),
      "ERR_NUMERIC", /for 6 consecutive iterations.*lower the learning rate/,
    );
    note("diverging losses", losses);
    note("diverging error", err.message);
    expect(Number.isFinite(losses[0])).toBe(true);
    expect(losses.slice(-5).every((l) => !Number.isFinite(l))).toBe(true);
  });

  test("sporadic NaN samples: those batches are skipped, the run completes with finite parameters", async () => {
    const values = data.data.slice();
    for (const i of [10, 77, 150, 201]) values[2 * i] = NaN;
    const dirty = new ArrayDataset("dirty", values, [2]);
    const model = tinyMlp();
    const result = await trainDenoiser(model, dirty, { iterations: 40, batchSize: 32, seed: 3 });
    const skipped = result.losses.filter(Number.isNaN).length;
    note("skipped of 40", skipped);
    expect(skipped).toBeGreaterThan(0);
    expect(skipped).toBeLessThan(40);
    expect(parameterValues(model.network).every(Number.isFinite)).toBe(true);
    expect(result.ema!.averages.every((t) => t.dataSync().every(Number.isFinite))).toBe(true);
    result.ema!.dispose();
  });
});

describe("argument errors", () => {
  test("each misuse rejects with ERR_ARGUMENT naming the problem, leaving the model and memory untouched", async () => {
    const toy = toy2d("8gaussians", { n: 64 });
    const images = tinyImages(8, 3);
    const labeledToy = new ArrayDataset("labeled", toy.data, [2], Int32Array.from({ length: 64 }, (_, i) => i % 3), 3);
    const fiveClasses = new ArrayDataset("five", toy.data, [2], Int32Array.from({ length: 64 }, (_, i) => i % 5), 5);
    const mlp = tinyMlp();
    const conditionalMlp = tinyMlp(0, { num_classes: 3 });
    const ddpm = new fd.NetworkDenoiser(fd.MLP.create({ in_features: 2, hidden_size: 64, num_layers: 2 }), { type: "ddpm" });
    const dit = fd.modelPreset("dit-tiny", { sampleShape: [1, 8, 8], numClasses: 3 });
    const params = parameterValues(mlp.network);
    const before = await settledMemory();
    const cases: [fd.NetworkDenoiser, fd.Dataset, Partial<fd.TrainOptions>, RegExp][] = [
      [mlp, toy, { iterations: 0 }, /iterations must be an integer ≥ 1, got 0/],
      [mlp, toy, { iterations: 2.5 }, /iterations must be an integer ≥ 1, got 2\.5/],
      [mlp, toy, { batchSize: 100 }, /batchSize 100 is larger than the dataset '8gaussians' \(64 samples\)/],
      [conditionalMlp, toy, {}, /class-conditional \(3 classes\) but dataset '8gaussians' has no labels/],
      [conditionalMlp, fiveClasses, {}, /dataset 'five' has 5 classes, the network embeds 3/],
      [mlp, new ArrayDataset("3d", new Float32Array(96), [3]), {}, /dataset '3d' has samples of shape \[3\], the model expects \[2\]/],
      [mlp, toy, { loss: "ddpm" }, /DDPM ε-loss needs a DDPM-parameterized model, this one is 'edm'/],
      [ddpm, toy, { loss: "l1" as never }, /loss must be "edm" or "ddpm", got "l1"/],
      [conditionalMlp, labeledToy, { labelDropout: 0.2 }, /labelDropout needs a null class: MLP has none/],
      [conditionalMlp, labeledToy, { labelDropout: 1.5 }, /labelDropout must be in \[0, 1\), got 1\.5/],
      [dit, images, { labelDropout: 0.3 }, /drops labels itself \(config class_dropout_prob = 0\.1\)/],
      [mlp, toy, { seed: -1 }, /seed must be an integer ≥ 0/],
      [mlp, toy, { emaHalfLifeImages: -5 }, /emaHalfLifeImages and emaRampUp must be non-negative/],
    ];
    for (const [model, data, options, pattern] of cases) {
      await expectRejectCode(trainDenoiser(model, data, { iterations: 3, batchSize: 8, ...options }), "ERR_ARGUMENT", pattern);
    }
    expect(sameBits(parameterValues(mlp.network), params)).toBe(true);
    expect(await settledMemory()).toEqual(before);
  });
});

describe("memory", () => {
  test("300 iterations run at a constant live-tensor count and byte total; a finished run releases everything", async () => {
    const data = toy2d("8gaussians", { n: 1024 });
    const model = tinyMlp();
    const before = await settledMemory();
    const samples: { iteration: number; live: number; bytes: number }[] = [];
    const result = await trainDenoiser(model, data, {
      iterations: 300, batchSize: 64, progressEvery: 50,
      onProgress: (p) => samples.push({ iteration: p.iteration, live: fd.memory().liveTensors, bytes: fd.memory().bytes }),
    });
    note("memory samples", samples);
    expect(samples.map((s) => s.iteration)).toEqual([50, 100, 150, 200, 250, 300]);
    for (const s of samples) expect([s.live, s.bytes]).toEqual([samples[0]!.live, samples[0]!.bytes]);
    result.ema!.dispose();
    expect(await settledMemory()).toEqual(before);
  });
});
