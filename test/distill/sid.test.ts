// SiD on tiny networks: the Student (copying, one-step generation, files), the generator gradient reaching G
// through both frozen networks, exact resume from a checkpoint, abort, and bad options.
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as fd from "../../lib";
import { bitEqual, maxAbsDiff } from "../helpers";

const shape = [1, 8, 8];
const teacherOf = (seed = 1) => fd.modelPreset("unet-tiny", { sampleShape: shape, numClasses: 3, seed });
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "fastdiff-sid-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const params = (n: fd.Network) => n.parameters().map((p) => Float32Array.from(p.dataSync()));
const sameParams = (a: Float32Array[], b: Float32Array[]) => a.length === b.length && a.every((x, i) => maxAbsDiff(x, b[i]!) === 0);

describe("Student", () => {
  test("a copy of the teacher: one step is D(σ_init·z; σ_init), the teacher stays untouched", async () => {
    const teacher = teacherOf();
    const before = params(teacher.network);
    const student = fd.Student.fromTeacher(teacher, { sigmas: [2.5], between: "renoise" }, { method: "test" });
    expect(student.steps).toBe(1);
    expect(student.info.teacher.sha256).toBe(fd.modelHash(teacher.network));
    const z = fd.randn([4, ...shape], { seed: 5 });
    const labels = [0, 1, 2, 0];
    const x = await student.generate(4, { noise: z, classLabels: labels });
    const direct = fd.noGrad(() => teacher.denoise(fd.mul(z, 2.5), 2.5, { classLabels: labels }));
    expect(bitEqual(x, direct)).toBe(true);
    expect(sameParams(params(teacher.network), before)).toBe(true);
    student.dispose();
    teacher.network.dispose();
  });

  test.each(["student.safetensors", "student-folder"])("save / load round trip (%s)", async (name) => {
    const teacher = teacherOf(2);
    const student = fd.Student.fromTeacher(teacher, { sigmas: [4, 1], between: "ode" }, { method: "test" });
    student.info.quality = { fd: 1.5 };
    const file = path.join(dir, name);
    await student.save(file);
    const loaded = await fd.Student.load(file);
    expect(loaded.schedule).toEqual({ sigmas: [4, 1], between: "ode" });
    expect(loaded.info).toEqual(student.info);
    const a = await student.generate(3, { seed: 1, classLabels: [0, 1, 2] });
    const b = await loaded.generate(3, { seed: 1, classLabels: [0, 1, 2] });
    expect(bitEqual(a, b)).toBe(true);
    for (const s of [student, loaded]) s.dispose();
    teacher.network.dispose();
  });

  test("bad schedules and files are clear errors", async () => {
    const teacher = teacherOf();
    expect(() => fd.Student.fromTeacher(teacher, { sigmas: [1, 2], between: "ode" }, { method: "x" })).toThrow(/strictly decreasing/);
    await teacher.save(path.join(dir, "plain"));
    await expect(fd.Student.load(path.join(dir, "plain"))).rejects.toMatchObject({ code: "ERR_FORMAT" });
    const s = fd.Student.fromTeacher(teacher, { sigmas: [2.5], between: "renoise" }, { method: "x" });
    await expect(s.generate(2)).rejects.toThrow(/class-conditional/);
    s.dispose();
    teacher.network.dispose();
  });
});

describe("distillSiD", () => {
  test("the generator gradient reaches G through both frozen networks and leaves them untouched", () => {
    const teacher = teacherOf();
    const G = fd.cloneNetwork(teacher.network);
    const fake = new fd.NetworkDenoiser(fd.cloneNetwork(teacher.network), teacher.parameterization);
    const gen = new fd.NetworkDenoiser(G, teacher.parameterization);
    teacher.network.requiresGrad(false);
    fake.network.requiresGrad(false);
    // perturb ψ so that r ≠ f
    fd.noGrad(() => fake.network.parameters().forEach((p, i) => fd.copy(p, fd.add(p, fd.mul(fd.randn(p.shape, { seed: i }), 0.05)))));
    const labels = [0, 1, 2, 1];
    const gradOf = (through: boolean) => fd.scope(() => {
      G.parameters().forEach((p) => (p.grad = null));
      const xg = gen.denoise(fd.mul(fd.randn([4, ...shape], { seed: 3 }), 2.5), 2.5, { classLabels: labels });
      const noisy = fd.add(xg, fd.mul(fd.randn(xg.shape, { seed: 4 }), 0.8));
      let r = teacher.denoise(noisy, 0.8, { classLabels: labels });
      let f = fake.denoise(noisy, 0.8, { classLabels: labels });
      if (!through) [r, f] = [r.detach(), f.detach()];
      fd.sum(fd.sidLoss(r, f, xg).loss).backward();
      return G.parameters().map((p) => Float32Array.from(p.grad!.dataSync()));
    });
    const full = gradOf(true);
    const direct = gradOf(false);
    const differs = full.some((g, i) => maxAbsDiff(g, direct[i]!) > 1e-6 * Math.max(1, Math.max(...g.map(Math.abs))));
    expect(differs).toBe(true);
    expect(teacher.network.parameters().every((p) => p.grad === null)).toBe(true);
    expect(fake.network.parameters().every((p) => p.grad === null)).toBe(true);
    for (const n of [G, fake.network, teacher.network]) n.dispose();
  });

  const base = (extra: Partial<fd.SidOptions> = {}): fd.SidOptions => ({ iterations: 4, batchSize: 4, lr: 1e-4, emaHalfLifeImages: 50, seed: 3, ...extra });

  test("a run stopped at a checkpoint and resumed equals the uninterrupted run, bit for bit; the teacher is untouched", async () => {
    const teacher = teacherOf();
    const before = params(teacher.network);
    const whole = await fd.distillSiD(teacher, base());
    expect(whole.lossesGenerator).toHaveLength(4);
    expect(whole.lossesGenerator.every(Number.isFinite)).toBe(true);
    const ckpt = path.join(dir, "ckpt");
    const first = await fd.distillSiD(teacher, base({ iterations: 2, checkpointDir: ckpt, checkpointEvery: 1 }));
    first.student.dispose();
    const resumed = await fd.distillSiD(teacher, base({ checkpointDir: ckpt, checkpointEvery: 1, resume: true }));
    expect(resumed.startIteration).toBe(2);
    expect(resumed.lossesGenerator).toEqual(whole.lossesGenerator.slice(2));
    expect(sameParams(params(resumed.student.network), params(whole.student.network))).toBe(true);
    expect(sameParams(params(teacher.network), before)).toBe(true);
    expect(whole.student.info).toMatchObject({ method: "sid", iterations: 4, images: 16 });
    await expect(fd.distillSiD(teacher, base({ batchSize: 2, checkpointDir: ckpt, resume: true }))).rejects.toThrow(/cannot resume.*batchSize was 4, now 2/);
    for (const r of [whole, resumed]) r.student.dispose();
    teacher.network.dispose();
  }, 60_000);

  test("abort writes a checkpoint and rejects with ERR_ABORTED; evaluate runs on the EMA generator", async () => {
    const teacher = teacherOf();
    const controller = new AbortController();
    const seen: number[] = [];
    const ckpt = path.join(dir, "abort");
    await expect(fd.distillSiD(teacher, base({
      iterations: 10, checkpointDir: ckpt, signal: controller.signal,
      evaluate: { every: 2, run: async (s) => ({ steps: s.steps }) },
      onProgress: (p) => {
        if (p.evaluation) seen.push(p.iteration);
        if (p.iteration === 3) controller.abort();
      },
    }))).rejects.toMatchObject({ code: "ERR_ABORTED" });
    expect(seen).toEqual([2]);
    expect(fs.existsSync(path.join(ckpt, "checkpoint.safetensors"))).toBe(true);
    teacher.network.dispose();
  }, 60_000);

  test("a DiT teacher: the generator and the fake network never drop labels in train mode", async () => {
    // class_dropout_prob 1: with label dropout on, every label in train mode would become the null class.
    const net = fd.DiT.create({ sample_size: 8, in_channels: 1, out_channels: 1, patch_size: 2, num_layers: 1, num_attention_heads: 2,
      attention_head_dim: 8, num_embeds_ada_norm: 3, class_dropout_prob: 1 }, { seed: 5 });
    const teacher = new fd.NetworkDenoiser(net, { type: "edm", sigmaData: 0.5 });
    const checks: { fakeKeepsLabels: boolean; generatorKeepsLabels: boolean }[] = [];
    const method: fd.MatchingMethod = {
      name: "Probe", sigmaInit: 2.5, fixed: {},
      fakeLevels: (batch) => ({ sigmas: new Float64Array(batch).fill(1), weights: new Float64Array(batch).fill(1) }),
      generatorLoss: ({ fake, xg, generate }) => {
        const z = fd.randn(xg.shape, { seed: 9 });
        const asked = generate(z, [0, 1, 2, 0]);
        const nulls = generate(z, [3, 3, 3, 3]);
        checks.push({ fakeKeepsLabels: fake.network.labelDropout === false, generatorKeepsLabels: !bitEqual(asked, nulls) });
        return { loss: fd.mean(fd.square(xg)), masked: null };
      },
    };
    const r = await fd.distillMatching(teacher, method, { iterations: 2, batchSize: 4, lr: 1e-4, seed: 1 });
    expect(checks).toEqual([{ fakeKeepsLabels: true, generatorKeepsLabels: true }, { fakeKeepsLabels: true, generatorKeepsLabels: true }]);
    expect(net.labelDropout).toBe(true); // the teacher's own setting is untouched
    r.student.dispose();
    net.dispose();
  });

  test("bad options are ERR_ARGUMENT", async () => {
    const teacher = teacherOf();
    const other = fd.modelPreset("unet-tiny", { sampleShape: [1, 16, 16], numClasses: 3 });
    for (const [o, pattern] of [
      [{ lr: -1 }, /lr/], [{ alpha: 3 }, /alpha/], [{ init: other }, /shape/], [{ batchSize: 0 }, /batchSize/],
      [{ classProbabilities: [1, 1] }, /classProbabilities/], [{ sigmaInit: 0 }, /sigmaInit/],
    ] as const) {
      await expect(fd.distillSiD(teacher, base(o as Partial<fd.SidOptions>))).rejects.toMatchObject({ code: "ERR_ARGUMENT", message: expect.stringMatching(pattern) });
    }
    await expect(fd.distillSiD(new fd.MixtureDenoiser(new fd.GaussianMixture({ means: [[0, 0]], stds: 1 })), base())).rejects.toThrow(/options.init/);
    other.network.dispose();
    teacher.network.dispose();
  });
});
