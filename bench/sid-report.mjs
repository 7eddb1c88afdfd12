// The SiD report (issue 6): the shipped one-step student beside its teacher on the same protocol.
//   - quality: 2,000 class-balanced samples each (teacher: 18-step Heun, 35 NFE, seed 0 per models/evaluate.sh;
//     student: one step, seed 0) against the 1,996 test digits — FD, precision, recall, classifier accuracy;
//   - sampling speed: one batch of 250 per model after a warm-up, at the given thread count;
//   - the FD curve of the distillation run (1,000-sample FDs of the EMA generator, from distill.json or the
//     checkpoint state) against the teacher's FD on the same 1,000-sample protocol, as a PNG.
//
//   node bench/sid-report.mjs --student models/mnist-sid [--teacher models/mnist-teacher] [--threads 2]
// Writes bench/results/sid-<date>-<student folder name>.json and <student>/fd-curve.png.
import * as fs from "node:fs";
import * as path from "node:path";
import { args, fd, here, root } from "./common.mjs";

const studentDir = path.resolve(root, args.student ?? "models/mnist-sid");
const teacherDir = path.resolve(root, args.teacher ?? "models/mnist-teacher");
const threads = Number(args.threads ?? fd.getNumThreads());
fd.setNumThreads(threads);

const teacher = await fd.Denoiser.load(teacherDir);
const student = await fd.Student.load(studentDir);
const test = fd.datasets.mnist({ split: "test" }).all().x;
const featureNet = await fd.FeatureNet.load();
const balanced = (n) => Int32Array.from({ length: n }, (_, i) => i % 10);

async function teacherSamples(n, seed) {
  const parts = [];
  const labels = balanced(n);
  for (let b = 0, lo = 0; lo < n; ++b, lo += 250) {
    const hi = Math.min(n, lo + 250);
    parts.push(await fd.sample(teacher, { n: hi - lo, steps: 18, solver: "heun", seed: seed + b, classLabels: labels.subarray(lo, hi) }));
  }
  const all = fd.concat(parts, 0);
  for (const p of parts) p.dispose();
  return all;
}

async function score(samples, n, metrics = ["fd", "precision", "recall", "accuracy"]) {
  const e = await fd.evaluate(samples, test, { metrics, classLabels: balanced(n), featureNet });
  samples.dispose();
  return e;
}

// Quality at 2,000 samples: the teacher's figures come from its shipped eval file when present (same protocol).
const shippedTeacher = path.join(teacherDir, "eval-guidance-1.json");
const teacher2000 = fs.existsSync(shippedTeacher) ? JSON.parse(fs.readFileSync(shippedTeacher, "utf8")) : await score(await teacherSamples(2000, 0), 2000);
const student2000 = await score(await student.generate(2000, { seed: 0, classLabels: balanced(2000) }), 2000);
// The curve's reference: the teacher on the distillation's own 1,000-sample protocol.
const teacher1000 = await score(await teacherSamples(1000, 12345), 1000, ["fd", "accuracy"]);

// Sampling speed: one batch of 250 each after a warm-up.
const labels250 = balanced(250);
(await fd.sample(teacher, { n: 250, steps: 2, solver: "heun", seed: 1, classLabels: labels250 })).dispose();
let t0 = performance.now();
(await fd.sample(teacher, { n: 250, steps: 18, solver: "heun", seed: 1, classLabels: labels250 })).dispose();
const teacherSeconds = (performance.now() - t0) / 1000;
(await student.generate(250, { seed: 1, classLabels: labels250 })).dispose();
t0 = performance.now();
(await student.generate(250, { seed: 1, classLabels: labels250 })).dispose();
const studentSeconds = (performance.now() - t0) / 1000;

// The curve: distill.json's evaluations (the CLI writes them), else the student's own record.
const distillFile = path.join(studentDir, "distill.json");
const evaluations = fs.existsSync(distillFile) ? JSON.parse(fs.readFileSync(distillFile, "utf8")).evaluations : [];
// Iteration 0: the teacher's own weights as a one-step generator (the distillation's starting point).
const start = fd.Student.fromTeacher(teacher, student.schedule, { method: "none" });
const start1000 = await score(await start.generate(1000, { seed: 12345, classLabels: balanced(1000) }), 1000, ["fd", "accuracy"]);
start.dispose();
const points = [[0, start1000.fd], ...evaluations.filter((e) => e.values.fd !== undefined).map((e) => [e.iteration, e.values.fd])];
{
  const img = fd.linePlot([{ points, color: [200, 30, 30], label: "one-step SiD student (EMA)" }], {
    title: "FD during SiD distillation, 1,000 samples", xLabel: "iteration (batch 32)", yLabel: "FD (log scale)", logY: true,
    references: [{ y: teacher1000.fd, color: [30, 60, 220], label: "teacher, 35 NFE" }],
  });
  await fd.writeFileAtomic(path.join(studentDir, "fd-curve.png"), fd.encodePng(img.data, img.width, img.height, 3));
}
const reached = points.find(([, v]) => v <= teacher1000.fd);

const result = {
  date: new Date().toISOString().slice(0, 10), machine: fd.devices().cpu.brand, threads,
  teacher: path.relative(root, teacherDir), student: path.relative(root, studentDir), studentInfo: student.info,
  quality2000: { teacher35: teacher2000, student1: student2000 },
  fdCurve: { protocol: "1,000 samples, seed 12345, EMA generator", teacher1000: teacher1000.fd, points, reachedTeacherAt: reached?.[0] ?? null },
  sampling: { batch: 250, teacherSeconds, studentSeconds, speedup: teacherSeconds / studentSeconds },
};
const file = path.join(here, "results", `sid-${result.date}-${path.basename(studentDir)}.json`);
fs.writeFileSync(file, JSON.stringify(result, null, 2) + "\n");
const f = (e) => `FD ${e.fd.toFixed(2)}, precision ${e.precision.toFixed(2)}, recall ${e.recall.toFixed(2)}, accuracy ${(100 * e.accuracy).toFixed(1)}%`;
console.log(`teacher (35 NFE): ${f(teacher2000)}\nstudent (1 NFE):  ${f(student2000)}`);
console.log(`1,000-sample FD: teacher ${teacher1000.fd.toFixed(2)}; student reached it at iteration ${reached?.[0] ?? "— (not yet)"}`);
console.log(`sampling 250 digits: teacher ${teacherSeconds.toFixed(2)} s, student ${studentSeconds.toFixed(3)} s → ${result.sampling.speedup.toFixed(0)}×  (${path.relative(root, file)})`);
teacher.network.dispose();
student.dispose();
