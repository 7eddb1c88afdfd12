// Where feature reuse helps along a trajectory (issue 5): at every step i+1 of a full-compute DDIM-N run, the
// error of one reuse evaluation (points cached at step i, the rest recomputed) and of the jump (step i's ε reused:
// no network, D = D_i under DDIM) against the full evaluation at step i+1, as the RMS of the x0-prediction
// difference. Reuse pays where its error is below the jump's by more than its cost.
//
//   node bench/frdiff-steps.mjs --model mnist-teacher [--steps 20] [--n 64] [--threads 2]
//
// Rows: bench/results/frdiff-steps-<model>-s<N>.json; prints a markdown table. Point subsets: all of the
// network's FRDiff points, and (UNet) its conv1 / attention points and its down / mid / up blocks.
import * as fs from "node:fs";
import * as path from "node:path";
import { args, fd, here, root } from "./common.mjs";

const model = args.model ?? "mnist-teacher";
const steps = Number(args.steps ?? 20);
const n = Number(args.n ?? 64);
fd.setNumThreads(Number(args.threads ?? fd.getNumThreads()));

const denoiser = await fd.Denoiser.load(path.join(root, "models", model));
const sigmas = fd.resolveSchedule(denoiser, { steps });
const classLabels = Int32Array.from({ length: n }, (_, i) => i % 10);
const all = denoiser.network.reusePoints();
const subsets = { all };
if (all.some((p) => p.endsWith(".conv1"))) { // a UNet
  Object.assign(subsets, {
    conv1: all.filter((p) => p.endsWith(".conv1")), attention: all.filter((p) => p.endsWith(".to_out")),
    down: all.filter((p) => p.startsWith("down_blocks.")), mid: all.filter((p) => p.startsWith("mid_block.")),
    up: all.filter((p) => p.startsWith("up_blocks.")),
  });
}
const rms = (a, b) => fd.scope(() => Math.sqrt(fd.mean(fd.square(fd.sub(a, b))).item()));

const rows = [];
let x = fd.mul(fd.randn([n, ...denoiser.sampleShape], { seed: 0 }), sigmas[0]);
fd.noGrad(() => {
  for (let i = 0; i + 2 < sigmas.length; ++i) {
    const cache = new fd.FeatureCache();
    const d = denoiser.denoise(x, sigmas[i], { classLabels, featureReuse: { cache, store: all } });
    const next = fd.scope(() => fd.add(d, fd.mul(fd.sub(x, d), sigmas[i + 1] / sigmas[i]))); // the DDIM step
    const full = denoiser.denoise(next, sigmas[i + 1], { classLabels });
    const row = { step: i + 1, sigma: sigmas[i + 1], jump: rms(d, full), reuse: {} };
    for (const [name, points] of Object.entries(subsets)) {
      const reused = denoiser.denoise(next, sigmas[i + 1], { classLabels, featureReuse: { cache, reuse: points } });
      row.reuse[name] = rms(reused, full);
      reused.dispose();
    }
    rows.push(row);
    for (const t of [x, d, full]) t.dispose();
    x = next;
  }
});
x.dispose();

const file = path.join(here, "results", `frdiff-steps-${model}-s${steps}.json`);
fd.writeFileAtomicSync(file, JSON.stringify({ model, steps, n, rows }, null, 2) + "\n");
const names = Object.keys(subsets);
console.log(`\n**${model}**, DDIM-${steps}, ${n} samples: RMS error of the x0 prediction at step i+1 against full compute\n`);
console.log(`| step | σ | jump | ${names.map((s) => `reuse ${s}`).join(" | ")} |`);
console.log(`|---|---|---|${names.map(() => "---").join("|")}|`);
for (const r of rows) {
  console.log(`| ${r.step} | ${r.sigma.toPrecision(3)} | ${r.jump.toFixed(4)} | ${names.map((s) => r.reuse[s].toFixed(4)).join(" | ")} |`);
}
console.log(`→ ${path.relative(root, file)}`);
