// The command line end to end on tiny settings: exit codes, files written, one-line errors (never a stack
// trace). Runs the built CLI (dist/cli.cjs, built by `npm test`'s pretest).
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import * as fd from "../../lib";
import { decodePng } from "../../lib/io/png";

const root = resolve(__dirname, "../..");
const cli = join(root, "dist", "cli.cjs");
const dir = mkdtempSync(join(tmpdir(), "fastdiff-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: "utf8", env: { ...process.env, FASTDIFF_NUM_THREADS: "1" } });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
function expectUsage(r: ReturnType<typeof run>, pattern: RegExp): void {
  expect(r.code).toBe(2);
  expect(r.stderr.trim().split("\n")).toHaveLength(1);
  expect(r.stderr).toMatch(pattern);
  expect(r.stderr).not.toMatch(/\n\s+at /);
}

beforeAll(() => {
  if (!existsSync(cli)) throw new Error(`${cli} is missing: run 'npm run build:ts' (npm test does it first)`);
});

describe("fastdiff CLI", () => {
  it("help, per-command help, doctor --json", () => {
    const help = run("help");
    expect(help.code).toBe(0);
    for (const c of ["demo", "sample", "eval", "train", "doctor"]) expect(help.stdout).toContain(c);
    const th = run("train", "--help");
    expect(th.code).toBe(0);
    expect(th.stdout).toContain("--iterations");
    const doc = run("doctor", "--json");
    expect(doc.code).toBe(0);
    const info = JSON.parse(doc.stdout);
    expect(info.version).toBe(JSON.parse(readFileSync(join(root, "package.json"), "utf8")).version);
    expect(info.cpu.threads).toBeGreaterThanOrEqual(1);
    expect(typeof info.cuda.available).toBe("boolean");
  });

  it("bad arguments: one line, exit 2", () => {
    expectUsage(run("frobnicate"), /unknown command 'frobnicate'/);
    expectUsage(run("train", "--out", "x", "--iterations", "ten"), /--iterations must be an integer, got 'ten'/);
    expectUsage(run("train", "--iterations", "5"), /--out <dir> is required/);
    expectUsage(run("train", "--out", "x", "--model", "huge"), /--model must be one of/);
    expectUsage(run("sample", "--bogus"), /unknown option --bogus/);
    expectUsage(run("sample", "--class", "x"), /--class must be/);
    expectUsage(run("eval"), /--samples <file> is required/);
    expectUsage(run("train", "--out", "x", "--dataset", "no-such-folder"), /--dataset must be/);
  });

  it("failures: one line with the error code, exit 1", () => {
    const r = run("sample", "--model", join(dir, "missing-model"));
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/ERR_ARGUMENT: model: no model at/);
  });

  it("train → resume → sample → eval on tiny settings", () => {
    const out = join(dir, "tiny");
    const first = run("train", "--dataset", "mnist", "--model", "unet-tiny", "--iterations", "3", "--batch", "8", "--checkpoint-every", "2", "--out", out, "--json");
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const events = first.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(events.filter((e) => e.event === "progress").map((e) => e.done)).toEqual([1, 2, 3]);
    expect(events.at(-1)).toMatchObject({ event: "done", task: "train", iterations: 3, resumedFrom: 0 });
    for (const f of ["config.json", "diffusion_pytorch_model.safetensors", "scheduler_config.json", "training.json", "checkpoint/checkpoint.safetensors"])
      expect(existsSync(join(out, f))).toBe(true);
    const resumed = run("train", "--dataset", "mnist", "--model", "unet-tiny", "--iterations", "5", "--batch", "8", "--checkpoint-every", "2", "--out", out, "--resume", "--json");
    expect(resumed.code).toBe(0);
    expect(JSON.parse(resumed.stdout.trim().split("\n").at(-1)!)).toMatchObject({ resumedFrom: 3, iterations: 5 });
    const changed = run("train", "--dataset", "mnist", "--model", "unet-tiny", "--iterations", "6", "--batch", "4", "--out", out, "--resume");
    expect(changed.code).toBe(1);
    expect(changed.stderr).toMatch(/cannot resume.*batchSize was 8, now 4/);

    const grid = join(dir, "grid.png");
    const saved = join(dir, "s.safetensors");
    const s = run("sample", "--model", out, "--n", "6", "--steps", "2", "--solver", "euler", "--out", grid, "--save", saved, "--nrow", "3");
    expect(s.code).toBe(0);
    const png = decodePng(readFileSync(grid));
    expect([png.width, png.height]).toEqual([3 * 28 + 4 * 2, 2 * 28 + 3 * 2]);
    const e = run("eval", "--samples", saved, "--reference", "mnist-test", "--json");
    expect(e.code).toBe(0);
    const m = JSON.parse(e.stdout);
    expect(m).toMatchObject({ n: 6, referenceN: 1996 });
    for (const k of ["fd", "precision", "recall", "accuracy", "classCoverage"]) expect(Number.isFinite(m[k])).toBe(true);
    const table = run("eval", "--samples", saved, "--metrics", "fd,accuracy");
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/FD\s+\d/);
    expect(table.stdout).toMatch(/accuracy\s+\d/);
    expect(table.stdout).not.toMatch(/precision/);
  });

  it("feature reuse: sample --interval, tune-cache → sample --cache-profile (the tiny model trained above)", () => {
    const model = join(dir, "tiny");
    expect(existsSync(join(model, "config.json"))).toBe(true);
    const fr = run("sample", "--model", model, "--n", "4", "--steps", "6", "--solver", "ddim", "--interval", "2", "--score-mixing", "--out", join(dir, "fr.png"), "--json");
    expect(fr.code).toBe(0);
    const done = JSON.parse(fr.stdout.trim().split("\n").at(-1)!);
    expect(done).toMatchObject({ event: "done", n: 4 });
    expect(done.nfePerSample).toBeLessThan(6); // mixing jumps the early non-keyframes
    expect(done.gflopsPerSample).toBeGreaterThan(0);
    const tuned = run("tune-cache", "--model", model, "--steps", "6", "--speedup", "1.2", "--iterations", "2", "--pool", "2", "--batch", "2", "--validation", "2", "--json");
    expect(tuned.stderr).toBe("");
    expect(tuned.code).toBe(0);
    const profile = join(model, "cache-profile-ddim6-1.2x.json");
    expect(JSON.parse(tuned.stdout.trim().split("\n").at(-1)!)).toMatchObject({ event: "done", task: "tune-cache", profile });
    expect(JSON.parse(readFileSync(profile, "utf8"))).toMatchObject({ format: "fastdiff.cache-profile", solver: "ddim", steps: 6, evaluations: 6 });
    expect(run("sample", "--model", model, "--n", "2", "--steps", "6", "--solver", "ddim", "--cache-profile", profile, "--out", join(dir, "p.png")).code).toBe(0);
    const wrong = run("sample", "--model", model, "--n", "2", "--steps", "5", "--solver", "ddim", "--cache-profile", profile, "--out", join(dir, "p.png"));
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/ERR_ARGUMENT: sample: the cache profile was tuned for steps 6/);
    expect(run("sample", "--model", model, "--score-mixing").code).toBe(2);
    const reversed = run("sample", "--model", model, "--n", "2", "--steps", "6", "--solver", "ddim", "--interval", "2", "--mixing-slope", "-30", "--out", join(dir, "r.png"), "--json");
    expect(reversed.code).toBe(0);
    expect(JSON.parse(reversed.stdout.trim().split("\n").at(-1)!).nfePerSample).toBe(5); // r = 5/6 jumps, r = 1/6 reuses
    const flat = run("sample", "--model", model, "--n", "2", "--steps", "6", "--solver", "ddim", "--interval", "2", "--mixing-slope", "0", "--out", join(dir, "r.png"));
    expect(flat.code).toBe(1);
    expect(flat.stderr).toMatch(/ERR_ARGUMENT: sample: featureReuse.scoreMixing.slope must be a finite nonzero number, got 0/);
    expect(run("tune-cache", "--model", model).code).toBe(2);
  });

  it("distill sid: a one-step student with its FD, then Ctrl-C (SIGTERM) saves a checkpoint and exits 130", async () => {
    const teacher = join(dir, "tiny");
    const out = join(dir, "sid");
    const r = run("distill", "sid", "--teacher", teacher, "--out", out, "--iterations", "2", "--batch", "2", "--eval-n", "20", "--eval-every", "1", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const done = JSON.parse(r.stdout.trim().split("\n").at(-1)!);
    expect(done).toMatchObject({ event: "done", task: "distill", method: "sid", iterations: 2 });
    expect(done.evaluations.map((e: { iteration: number }) => e.iteration)).toEqual([1, 2]);
    expect(done.evaluations.every((e: { values: { fd: number } }) => Number.isFinite(e.values.fd))).toBe(true);
    const curve = decodePng(readFileSync(join(out, "fd-curve.png")));
    expect([curve.width, curve.height, curve.channels]).toEqual([640, 400, 3]);
    const student = await fd.Student.load(out);
    expect(student.steps).toBe(1);
    student.dispose();
    // `sample` recognizes a student: its own one-step generation, no solver.
    const s = run("sample", "--model", out, "--n", "6", "--out", join(dir, "student.png"), "--save", join(dir, "student.safetensors"), "--json");
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout.trim().split("\n").at(-1)!)).toMatchObject({ event: "done", task: "sample", n: 6, nfePerSample: 1, student: true });
    const scored = run("eval", "--samples", join(dir, "student.safetensors"), "--reference", "mnist-test", "--metrics", "fd,accuracy", "--json");
    expect(scored.code).toBe(0);
    expect(JSON.parse(scored.stdout)).toMatchObject({ n: 6, fd: expect.any(Number), accuracy: expect.any(Number) });
    expect(run("sample", "--model", out, "--guidance", "2").stderr).toMatch(/without guidance/);
    expect(run("sample", "--model", out, "--interval", "2").stderr).toMatch(/no feature reuse/);
    expect(run("distill", "--teacher", teacher, "--out", out).code).toBe(2);

    const child = spawn(process.execPath, [cli, "distill", "sid", "--teacher", teacher, "--out", join(dir, "sid2"), "--iterations", "500", "--batch", "2", "--json"], { stdio: ["ignore", "pipe", "pipe"] });
    let sent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      if (!sent && chunk.toString().includes('"progress"')) {
        sent = true;
        child.kill("SIGTERM");
      }
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", (c) => resolve(c)));
    expect(code).toBe(130);
    expect(existsSync(join(dir, "sid2", "checkpoint", "checkpoint.safetensors"))).toBe(true);
  }, 60_000);

  it("train on a toy 2-D set with the MLP preset", () => {
    const out = join(dir, "toy");
    const r = run("train", "--dataset", "toy:8gaussians", "--model", "mlp", "--iterations", "20", "--batch", "64", "--out", out);
    expect(r.code).toBe(0);
    expect(JSON.parse(readFileSync(join(out, "config.json"), "utf8"))).toMatchObject({ in_features: 2 });
    const plot = join(dir, "toy.png");
    const s = run("sample", "--model", out, "--n", "500", "--steps", "4", "--out", plot);
    expect(s.code).toBe(0);
    const png = decodePng(readFileSync(plot));
    expect([png.width, png.height, png.channels]).toEqual([256, 256, 1]);
    const lit = png.data.reduce((n, v) => n + (v === 255 ? 1 : 0), 0);
    expect(lit).toBeGreaterThan(100); // 500 points, a few share a pixel or fall outside [−3, 3]²
  });

  it("demo: the shipped teacher beside the shipped one-step student (tiny settings)", () => {
    const r = run("demo", "--n", "10", "--steps", "2", "--out", join(dir, "demo.png"));
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/UNet2DModel/);
    expect(r.stdout).toMatch(/teacher, Heun 2 steps: 10 digits, 3 network evaluations per digit/);
    expect(r.stdout).toMatch(/sid student, 1 step: 10 digits, 1 network evaluation per digit/);
    expect(r.stdout.match(/FD\s+\d/g)).toHaveLength(2);
    expect(r.stdout.match(/accuracy\s+\d/g)).toHaveLength(2);
    expect(r.stdout).toMatch(/the one-step student samples \d+× faster than the teacher/);
    // Two 10×1 grids of 28×28 digits (2 px padding) side by side with a 16 px gap.
    const png = decodePng(readFileSync(join(dir, "demo.png")));
    expect([png.width, png.height, png.channels]).toEqual([2 * (10 * 30 + 2) + 16, 32, 1]);
    const alone = run("demo", "--n", "10", "--steps", "2", "--student", "none", "--out", join(dir, "demo1.png"), "--json");
    expect(alone.code).toBe(0);
    const done = JSON.parse(alone.stdout.trim().split("\n").at(-1)!);
    expect(done.models).toHaveLength(1);
    expect(done.speedup).toBeNull();
    expect(decodePng(readFileSync(join(dir, "demo1.png"))).width).toBe(10 * 30 + 2);
    expectUsage(run("demo", "--student", join(dir, "no-student")), /no student at/);
  });
});
