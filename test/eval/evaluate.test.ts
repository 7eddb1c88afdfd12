// The shipped MNIST feature network and evaluate() on cases with known answers.
import * as fd from "../../lib";
import { FeatureNet } from "../../lib/eval/feature-net";

describe("shipped MNIST feature network", () => {
  let net: FeatureNet;
  let test: ReturnType<typeof fd.mnist>;
  beforeAll(async () => {
    net = await FeatureNet.load();
    test = fd.mnist({ split: "test" });
  });
  afterAll(() => net.dispose());

  it("classifies the held-out test digits with ≥ 98% accuracy", () => {
    const { x, labels } = test.all();
    const { predictions, features, n } = net.embed(x);
    x.dispose();
    const accuracy = fd.classifierAccuracy(predictions, labels!);
    expect(n).toBe(1996);
    expect(features.length).toBe(1996 * 128);
    expect(accuracy).toBeGreaterThanOrEqual(0.98);
  });

  it("accepts 32×32 (padded) digits as their 28×28 centre", () => {
    const a = fd.mnist({ split: "test" }).batch([0, 1, 2]);
    const b = fd.mnist({ split: "test", pad: 32 }).batch([0, 1, 2]);
    const fa = net.embed(a.x).features;
    const fb = net.embed(b.x).features;
    expect(Array.from(fb)).toEqual(Array.from(fa));
    a.x.dispose();
    b.x.dispose();
  });

  it("rejects other shapes and files that are not a feature network", async () => {
    const x = fd.zeros([2, 3, 28, 28]);
    expect(() => net.forward(x)).toThrow(/FeatureNet.forward.*\[2,3,28,28\]/);
    x.dispose();
    const other = require("node:path").join(require("node:os").tmpdir(), `fd-notfeat-${process.pid}.safetensors`);
    await fd.writeSafetensors(other, { w: fd.zeros([2]) });
    await expect(FeatureNet.load(other)).rejects.toMatchObject({ code: "ERR_FORMAT" });
  });
});

describe("evaluate", () => {
  const test = fd.mnist({ split: "test" });
  const train = fd.mnist({ split: "train" });

  it("identical sets: FD ≈ 0, precision = recall = 1; the test digits' own labels: accuracy ≥ 98%", async () => {
    const { x, labels } = test.all();
    const e = await fd.evaluate(x, x, { classLabels: labels! });
    expect(Math.abs(e.fd!)).toBeLessThan(1e-6 * 100);
    expect(e.precision).toBe(1);
    expect(e.recall).toBe(1);
    expect(e.accuracy!).toBeGreaterThanOrEqual(0.98);
    expect(e.classCoverage).toBe(1);
    expect(e.classEntropy!).toBeGreaterThan(0.99);
    x.dispose();
  });

  it("train vs test digits: small FD; a collapsed set (one digit repeated) has high FD, low recall, one class", async () => {
    const ref = test.all().x;
    const real = train.batch(Array.from({ length: 1000 }, (_, i) => i * 8)).x;
    const one = train.batch(new Array(1000).fill(5)).x;
    const good = await fd.evaluate(real, ref);
    const collapsed = await fd.evaluate(one, ref);
    expect(good.fd!).toBeLessThan(5);
    expect(good.recall!).toBeGreaterThan(0.7);
    expect(collapsed.fd!).toBeGreaterThan(20 * good.fd!);
    expect(collapsed.recall!).toBeLessThan(0.05);
    expect(collapsed.classCoverage).toBeCloseTo(0.1, 10);
    for (const t of [ref, real, one]) t.dispose();
  });

  it("toy vectors: MMD, sliced W and mode coverage of the exact target vs a missing-mode set", async () => {
    const ring = fd.toy2d("8gaussians");
    const target = ring.sample(2000, 1);
    const same = ring.sample(2000, 2);
    const e = await fd.evaluate(same, target, { modes: ring.modes! });
    expect(e.modesCovered).toBe(8);
    expect(e.offModeFraction!).toBeLessThan(0.01);
    const shifted = fd.add(same, 0.5);
    const f = await fd.evaluate(shifted, target, { modes: ring.modes! });
    expect(f.mmd!).toBeGreaterThan(10 * Math.abs(e.mmd!));
    expect(f.sw!).toBeGreaterThan(5 * e.sw!);
    for (const t of [target, same, shifted]) t.dispose();
  });

  it("errors name the problem", async () => {
    const a = fd.zeros([4, 2]);
    const b = fd.zeros([4, 3]);
    await expect(fd.evaluate(a, b)).rejects.toMatchObject({ code: "ERR_ARGUMENT" });
    const img = fd.zeros([4, 1, 28, 28]);
    await expect(fd.evaluate(img, img, { metrics: ["accuracy"] })).rejects.toThrow(/accuracy.*classLabels/);
    for (const t of [a, b, img]) t.dispose();
  });
});
