// DMD on the shared loop: the injected gradient is exactly g/(B·P) with no graph through either network, a short
// run trains only G and ψ, and the ODE-pair regression enters the generator loss.
import * as fd from "../../lib";
import { maxAbsDiff, randomTensor, relL2 } from "../helpers";

const shape = [1, 8, 8];
const teacherOf = () => fd.modelPreset("unet-tiny", { sampleShape: shape, numClasses: 3, seed: 1 });

test("DMD injects exactly g/(B·P), g = (μ_f − μ_r)/mean|x_g − μ_r|, and nothing reaches the networks' inputs", () => {
  fd.scope(() => {
    const xg = randomTensor([3, 2, 4, 4], 1);
    xg.requiresGrad = true;
    const real = randomTensor([3, 2, 4, 4], 2);
    real.requiresGrad = true;
    const fake = randomTensor([3, 2, 4, 4], 3);
    const g = fd.dmdGradient(xg, real, fake);
    fd.dmdLoss(xg, g).backward();
    const P = 2 * 4 * 4;
    const x = xg.dataSync(), r = real.dataSync(), f = fake.dataSync();
    const expected = new Float32Array(x.length);
    for (let b = 0; b < 3; ++b) {
      let m = 0;
      for (let p = b * P; p < (b + 1) * P; ++p) m += Math.abs(x[p]! - r[p]!) / P;
      for (let p = b * P; p < (b + 1) * P; ++p) expected[p] = (f[p]! - r[p]!) / m / (3 * P);
    }
    expect(relL2(xg.grad!.dataSync(), expected)).toBeLessThan(1e-5);
    expect(real.grad).toBeNull();
    // a NaN in the fake prediction becomes 0 in g
    const nan = fd.dmdGradient(xg, real, fd.mul(fake, fd.tensor(Float32Array.from({ length: 96 }, (_, i) => (i === 5 ? NaN : 1)), [3, 2, 4, 4])));
    expect(nan.dataSync()[5]).toBe(0);
    expect(Number.isFinite(maxAbsDiff(nan.dataSync(), g.dataSync()))).toBe(true);
  });
});

test("a short distillDMD run: finite losses, the teacher untouched, regression pairs accepted", async () => {
  const teacher = teacherOf();
  const before = teacher.network.parameters().map((p) => Float32Array.from(p.dataSync()));
  const noise = fd.randn([6, ...shape], { seed: 9 });
  const targets = fd.noGrad(() => teacher.denoise(fd.mul(noise, 80), 80, { classLabels: [0, 1, 2, 0, 1, 2] }));
  const r = await fd.distillDMD(teacher, {
    iterations: 2, batchSize: 3, lr: 1e-5, fakeUpdates: 2, emaHalfLifeImages: 30, seed: 1,
    regression: { noise, targets, classLabels: [0, 1, 2, 0, 1, 2], weight: 0.25 },
  });
  expect(r.lossesGenerator.every(Number.isFinite)).toBe(true);
  expect(r.lossesFake.every(Number.isFinite)).toBe(true);
  expect(r.student.info).toMatchObject({ method: "dmd", iterations: 2, images: 6 });
  expect(r.student.schedule.sigmas).toEqual([80]);
  teacher.network.parameters().forEach((p, i) => expect(maxAbsDiff(p.dataSync(), before[i]!)).toBe(0));
  await expect(fd.distillDMD(teacher, { iterations: 1, minStep: 990, maxStep: 10 })).rejects.toMatchObject({ code: "ERR_ARGUMENT" });
  r.student.dispose();
  teacher.network.dispose();
}, 60_000);
