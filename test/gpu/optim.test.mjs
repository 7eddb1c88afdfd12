// CUDA vs CPU optimizers: five steps of Adam / AdamW / SGD and EMA updates on CUDA
// parameters and on CPU parameters with the same gradients (with NaN/Inf entries,
// sanitizing and global-norm clipping), comparing parameters, state and step stats.
import { test } from "node:test";
import assert from "node:assert/strict";
import { fd, maxRelErr, randomInputs } from "./harness.mjs";

// The same float32 operations on both devices; only the order of the double
// gradient-norm sum differs, so parameters agree to a few ulps.
const TOL = 1e-6;
const STEPS = 5;

// Odd sizes, one over a kernel tile (4096), a scalar; and a list longer than one
// launch's tensor table (64).
const SHAPES = [[7], [33, 65], [3, 4, 5, 6], [4097], [1], [10007]];
const MANY = Array.from({ length: 70 }, (_, i) => [1 + ((i * 131) % 300)]);

function gradients(shapes, seed, bad) {
  return Array.from({ length: STEPS }, (_, step) => {
    const gs = randomInputs(shapes, seed + step);
    if (bad && step === 2) { // non-finite entries in one step (sanitized to 0)
      gs[0][3] = NaN;
      gs[1][0] = Infinity;
      gs[gs.length - 1][5] = -Infinity;
    }
    return gs;
  });
}

function place(values, shape, device) {
  const t = fd.tensor(values, shape);
  return device === "cpu" ? t : t.to(device);
}

/** Runs STEPS optimizer steps on `device`; returns parameters, optional state and stats per step. */
function run(device, shapes, init, grads, makeOpt, { ema = null } = {}) {
  return fd.scope(() => {
    const params = init.map((v, i) => place(v, shapes[i], device).requireGrad());
    const opt = makeOpt(params);
    const avg = ema ? new fd.EMA(params, ema) : null;
    const stats = [];
    for (let step = 0; step < STEPS; ++step) {
      params.forEach((p, i) => { p.grad = place(grads[step][i], shapes[i], device); });
      opt.step();
      stats.push(opt.lastStats());
      if (avg) avg.update();
    }
    const out = {
      params: params.map((p) => p.dataSync()),
      state: [...(opt.m ?? []), ...(opt.v ?? []), ...(opt.buffers ?? [])].map((t) => t.dataSync()),
      averages: avg ? avg.averages.map((t) => t.dataSync()) : [],
      stats,
    };
    for (const p of params) assert.equal(p.device, device === "cpu" ? "cpu" : "cuda:0", "parameter device");
    opt.dispose?.();
    avg?.dispose();
    return out;
  });
}

function compare(name, shapes, makeOpt, { bad = false, ema = null } = {}) {
  const seed = 1 + Math.floor(Math.random() * 1e6);
  const init = randomInputs(shapes, seed);
  const grads = gradients(shapes, seed + 100, bad);
  const ref = run("cpu", shapes, init, grads, makeOpt, { ema });
  const got = run("cuda", shapes, init, grads, makeOpt, { ema });
  const where = `${name} (seed ${seed})`;
  for (const key of ["params", "state", "averages"]) {
    assert.equal(got[key].length, ref[key].length, `${where}: ${key} count`);
    ref[key].forEach((r, i) => {
      const e = maxRelErr(got[key][i], r);
      assert.ok(e <= TOL, `${where}: ${key}[${i}] relative error ${e.toExponential(2)} > ${TOL}`);
    });
  }
  ref.stats.forEach((r, step) => {
    const g = got.stats[step];
    const rel = (a, b) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-30);
    assert.ok(rel(g.gradNorm, r.gradNorm) <= TOL, `${where}: step ${step} gradNorm ${g.gradNorm} vs ${r.gradNorm}`);
    assert.ok(rel(g.clipScale, r.clipScale) <= TOL, `${where}: step ${step} clipScale ${g.clipScale} vs ${r.clipScale}`);
    assert.equal(g.nonFinite, r.nonFinite, `${where}: step ${step} nonFinite`);
  });
}

const clip = { maxGradNorm: 1, sanitize: true };

test("Adam", () => {
  compare("Adam", SHAPES, (p) => new fd.Adam(p, { lr: 1e-2 }));
  compare("Adam clip+sanitize", SHAPES, (p) => new fd.Adam(p, { lr: 1e-2, weightDecay: 0.1, ...clip }), { bad: true });
  compare("Adam β1=0", SHAPES, (p) => new fd.Adam(p, { lr: 1e-3, betas: [0, 0.99], ...clip }), { bad: true });
  compare("Adam 70 tensors", MANY, (p) => new fd.Adam(p, { lr: 1e-2, ...clip }), { bad: true });
  compare("Adam sanitize only", SHAPES, (p) => new fd.Adam(p, { lr: 1e-2, sanitize: true }), { bad: true });
  compare("Adam no clipping needed", SHAPES, (p) => new fd.Adam(p, { lr: 1e-2, maxGradNorm: 1e6 }));
});

test("AdamW", () => {
  compare("AdamW", SHAPES, (p) => new fd.AdamW(p, { lr: 1e-2, weightDecay: 0.05 }));
  compare("AdamW clip+sanitize", SHAPES, (p) => new fd.AdamW(p, { lr: 1e-2, ...clip }), { bad: true });
});

test("SGD", () => {
  compare("SGD", SHAPES, (p) => new fd.SGD(p, { lr: 0.05 }));
  compare("SGD momentum", SHAPES, (p) => new fd.SGD(p, { lr: 0.05, momentum: 0.9, weightDecay: 1e-3, ...clip }),
    { bad: true });
  compare("SGD nesterov", MANY, (p) => new fd.SGD(p, { lr: 0.05, momentum: 0.9, nesterov: true, ...clip }),
    { bad: true });
});

test("EMA", () => {
  compare("EMA decay", SHAPES, (p) => new fd.SGD(p, { lr: 0.1 }), { ema: { decay: 0.9 } });
  compare("EMA half-life", MANY, (p) => new fd.Adam(p, { lr: 1e-2, ...clip }), { bad: true, ema: { halfLife: 3, rampUp: 0.5 } });
});
