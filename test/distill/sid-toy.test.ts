// SiD end to end on a closed-form teacher: the exact 8-Gaussians MixtureDenoiser distilled into a one-step MLP
// generator. G and ψ start from a small MLP denoiser trained on the data (the exact teacher has no network to copy).
//
// The teacher's own 35-NFE samples (Heun, 18 steps) are exact up to discretization, so their unbiased MMD² to fresh
// target draws is estimator noise around 0; "within 1.5× of the teacher's MMD" is therefore read on the noise
// floor's scale: student MMD² ≤ 1.5·max(teacher MMD², 2·sd), sd the spread of MMD² between independent exact draws.
import * as fd from "../../lib";
import { toy2d } from "../../lib/data";
import { medianHeuristic } from "../../lib/eval/toy";
import { engineSettings } from "../helpers";

engineSettings(); // restores the thread count after this suite

const N = 2000;
const matrix = (t: fd.Tensor) => ({ data: t.dataSync(), rows: t.shape[0]!, cols: 2 });

test("SiD distils the exact 8-Gaussians teacher into a one-step MLP: every mode covered, MMD at the teacher's level", async () => {
  fd.setNumThreads(1); // the MLP is tiny: one thread avoids pool hand-offs
  const data = toy2d("8gaussians", { n: 4096 });
  const modes = { data: Float32Array.from(data.modes!.means.flat()), rows: 8, cols: 2 };
  const target = matrix(data.sample(N, 99));
  const bandwidths = ((m) => [0.5 * m, m, 2 * m])(medianHeuristic(target, target)); // one kernel for every comparison
  const mmd = (x: fd.Tensor) => fd.mmd2(matrix(x), target, { bandwidths });
  const coverage = (x: fd.Tensor) => fd.modeCoverage(matrix(x), modes, { std: 0.1 });

  // The estimator's noise: MMD² of independent exact draws against the same target.
  const nulls = [1, 2, 3, 4, 5].map((s) => mmd(data.sample(N, 500 + s)));
  const sd = Math.sqrt(nulls.reduce((a, v) => a + v * v, 0) / nulls.length);

  const teacherSamples = await fd.sample(data.denoiser!, { n: N, steps: 18, solver: "heun", seed: 5 });
  const teacherMmd = mmd(teacherSamples);

  const init = new fd.NetworkDenoiser(fd.MLP.create({ in_features: 2, hidden_size: 128, num_layers: 3 }, { seed: 0 }), { type: "edm", sigmaData: 1 });
  const pre = await fd.trainDenoiser(init, data, { iterations: 600, batchSize: 256, lr: 3e-3, betas: [0.9, 0.99], warmup: 50, seed: 1 });
  pre.ema!.copyTo();
  pre.ema!.dispose();
  const untrained = fd.Student.fromTeacher(init, { sigmas: [2.5], between: "renoise" }, { method: "sid" });
  const before = await untrained.generate(N, { seed: 7 });

  // α = 0.5: α is a per-domain setting (METHODS.md §1(f)); on this set 1.2 leaves ~60% of samples between modes.
  const run = await fd.distillSiD(data.denoiser!, { init, iterations: 2000, batchSize: 128, lr: 3e-4, alpha: 0.5, seed: 1 });
  const samples = await run.student.generate(N, { seed: 7 });

  const [mBefore, mAfter] = [mmd(before), mmd(samples)];
  const [cBefore, cAfter] = [coverage(before), coverage(samples)];
  console.log(JSON.stringify({
    sd, teacherMmd, mmdBefore: mBefore, mmdAfter: mAfter, offBefore: cBefore.offModeFraction, offAfter: cAfter.offModeFraction,
    offTeacher: coverage(teacherSamples).offModeFraction, counts: cAfter.countsPerMode, seconds: run.seconds,
  }));
  expect(run.lossesGenerator.every(Number.isFinite)).toBe(true);
  // Every mode covered, none starved: each holds at least half its share of the on-mode samples.
  expect(cAfter.covered).toBe(8);
  const onMode = cAfter.countsPerMode.reduce((a, c) => a + c, 0);
  for (const c of cAfter.countsPerMode) expect(c).toBeGreaterThan(onMode / 16);
  // The distribution matches: at the teacher's level, from far off (the initial one-step generator is the blurred
  // posterior mean, MMD² ≈ 0.4, 99.9% of samples between modes).
  expect(mBefore).toBeGreaterThan(50 * Math.max(teacherMmd, 2 * sd));
  expect(mAfter).toBeLessThanOrEqual(1.5 * Math.max(teacherMmd, 2 * sd));
  // Sharpness is where one step still trails: measured 27–35% of samples farther than 3 std from every mode
  // (teacher 2%). Bounded so that a regression shows.
  expect(cBefore.offModeFraction).toBeGreaterThan(0.9);
  expect(cAfter.offModeFraction).toBeLessThan(0.45);
  for (const t of [teacherSamples, before, samples]) t.dispose();
  for (const s of [untrained, run.student]) s.dispose();
  init.network.dispose();
}, 240_000);
