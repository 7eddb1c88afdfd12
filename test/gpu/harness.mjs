// The GPU test harness: runs an op on the CPU (the reference) and on CUDA copies of the
// same inputs, and compares outputs and input gradients. Plain Node (node --test), so it
// runs on a GPU machine with only Node and the staged package.
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
export const fd = require("../../dist/index.cjs");

const cuda = fd.devices().cuda;
if (!cuda.available) throw new Error(`test/gpu needs a CUDA device: ${cuda.reason}`);

let nextSeed = 1 + Math.floor(Math.random() * 1e6);  // fresh inputs every run; the seed is in every failure message

/** Runs fn with the CUDA matmul precision set to `precision`, restoring the previous one. */
export function withPrecision(precision, fn) {
  const before = fd.getMatmulPrecision();
  fd.setMatmulPrecision(precision);
  try {
    return fn();
  } finally {
    fd.setMatmulPrecision(before);
  }
}

/** Random normal inputs (never zeros), one Float32Array per shape. */
export function randomInputs(shapes, seed = nextSeed++) {
  return shapes.map((shape, i) => fd.randn(shape, { seed: seed * 16 + i }).dataSync());
}

/** max |got − ref| / max |ref|; Infinity when got is NaN/Inf where ref is finite (an unwritten or poisoned element). */
export function maxRelErr(got, ref) {
  assert.equal(got.length, ref.length, `length ${got.length} vs ${ref.length}`);
  let err = 0, scale = 0;
  for (let i = 0; i < ref.length; ++i) {
    if (!Number.isFinite(ref[i])) continue;
    if (!Number.isFinite(got[i])) return Infinity;
    err = Math.max(err, Math.abs(got[i] - ref[i]));
    scale = Math.max(scale, Math.abs(ref[i]));
  }
  return scale === 0 ? err : err / scale;
}

function asList(out) {
  return Array.isArray(out) ? out : [out];
}

/** Runs fn on `inputs` placed on `device`; returns output values and (when grad) the inputs' gradients of
 * Σ_k sum(out_k · R_k) for the given R arrays. */
function run(fn, inputs, shapes, device, weights, grad) {
  return fd.scope(() => {
    const xs = inputs.map((v, i) => {
      const t = fd.tensor(v, shapes[i]);
      const placed = device === "cpu" ? t : t.to(device);
      return grad ? placed.requireGrad() : placed;
    });
    const outs = asList(fn(...xs));
    const values = outs.map((o) => o.dataSync());
    for (const o of outs) assert.equal(o.device, device === "cuda" ? "cuda:0" : "cpu", "output device");
    let grads = [];
    if (grad) {
      let loss = null;
      outs.forEach((o, k) => {
        const r = fd.tensor(weights[k], o.shape);
        const term = fd.sum(fd.mul(o, device === "cpu" ? r : r.to(device)));
        loss = loss ? fd.add(loss, term) : term;
      });
      loss.backward();
      grads = xs.map((x) => (x.grad ? x.grad.dataSync() : null));
    }
    return { values, grads, outShapes: outs.map((o) => o.shape) };
  });
}

/**
 * Compares fn on CUDA with fn on the CPU.
 * options: tol (relative to max |ref|, default 1e-5), grad (default true), gradTol (default tol),
 * inputs(shape, i) → Float32Array to override the random normal inputs.
 */
export function checkOp(name, fn, shapes, options = {}) {
  const { tol = 1e-5, grad = true, gradTol = tol } = options;
  const seed = nextSeed++;
  const inputs = options.inputs ? shapes.map((s, i) => options.inputs(s, i)) : randomInputs(shapes, seed);
  const probe = run(fn, inputs, shapes, "cpu", null, false);
  const weights = probe.outShapes.map((s, k) => fd.randn(s, { seed: seed * 16 + 15 - k }).dataSync());
  const ref = run(fn, inputs, shapes, "cpu", weights, grad);
  const got = run(fn, inputs, shapes, "cuda", weights, grad);
  const where = `${name} (shapes ${JSON.stringify(shapes)}, seed ${seed})`;
  ref.values.forEach((r, k) => {
    const e = maxRelErr(got.values[k], r);
    assert.ok(e <= tol, `${where}: output ${k} relative error ${e.toExponential(2)} > ${tol}`);
  });
  ref.grads.forEach((r, i) => {
    if (r === null) return;
    assert.ok(got.grads[i] !== null, `${where}: no gradient for input ${i} on CUDA`);
    const e = maxRelErr(got.grads[i], r);
    assert.ok(e <= gradTol, `${where}: gradient ${i} relative error ${e.toExponential(2)} > ${gradTol}`);
  });
}
