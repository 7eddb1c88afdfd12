// fd.attention on CUDA (binding/cuda/attention.cu) against the CPU kernels: forward and the gradients of
// q, k, v, at every matmul precision (each uses a different kernel: "highest" the float32 FMA path, "high" TF32
// and "medium" BF16 tensor cores; head dims over 128 take the FMA path at any precision).
//
// Tolerances (relative to max |reference|):
//   highest  1e-5·sqrt(N): float32 throughout, but the softmax sums and P·V run over N keys in a different order
//            (blocked, online rescaling) than the CPU, so rounding grows like sqrt(N).
//   high     3e-3 forward: TF32 keeps 10 mantissa bits (unit roundoff 2^-11 ≈ 4.9e-4) on Q, K, P and V; the
//            error of a float32-accumulated dot product of rounded inputs is a few units of that.
//            5e-3 gradients: backward chains two rounded products (dP = dO·Vᵀ, then dS·K, dSᵀ·Q), so the
//            rounding compounds once more.
//   medium   2e-2 forward, 3e-2 gradients: the same with BF16's 7 mantissa bits (unit roundoff 2^-8 ≈ 3.9e-3).
import assert from "node:assert/strict";
import { test } from "node:test";
import { checkOp, fd, randomInputs, withPrecision } from "./harness.mjs";

const PRECISIONS = {
  highest: (n) => ({ tol: 1e-5 * Math.sqrt(n), gradTol: 2e-5 * Math.sqrt(n) }),
  high: () => ({ tol: 3e-3, gradTol: 5e-3 }),
  medium: () => ({ tol: 2e-2, gradTol: 3e-2 }),
};

// Checks attention(q [B,H,Nq,D], k [B,H,Nk,D], v [B,H,Nk,Dv]) at the given precisions.
function checkAttention(name, { B, H, Nq, Nk, D, Dv = D, precisions = Object.keys(PRECISIONS), grad = true }) {
  for (const precision of precisions) {
    withPrecision(precision, () => {
      checkOp(`attention ${name} @${precision}`, (q, k, v) => fd.attention(q, k, v),
        [[B, H, Nq, D], [B, H, Nk, D], [B, H, Nk, Dv]], { ...PRECISIONS[precision](Math.max(Nq, Nk)), grad });
    });
  }
}

test("attention: DiT tokens (28×28 latent, patch 2: N = 196, D = 64)", () => {
  checkAttention("dit", { B: 2, H: 4, Nq: 196, Nk: 196, D: 64 });
});

test("attention: UNet single-head attention with D = 256 (the float32 FMA path at every precision)", () => {
  checkAttention("unet", { B: 1, H: 1, Nq: 49, Nk: 49, D: 256 });
});

test("attention: tokens-major layout [B, N, H, D] (permuted to the CUDA kernels' layout)", () => {
  checkOp("attention bnhd", (q, k, v) => fd.attention(q, k, v, { layout: "bnhd" }), [[2, 196, 4, 64], [2, 196, 4, 64], [2, 196, 4, 64]],
    { ...PRECISIONS.highest(196) });
});

test("attention: one token", () => {
  // One key: P = 1, so dS = P·(dP − delta) is 0 up to rounding and the q/k gradients are pure noise; forward only.
  checkAttention("N=1", { B: 1, H: 2, Nq: 1, Nk: 1, D: 64, grad: false });
  checkAttention("Nq=1 Nk=5", { B: 2, H: 3, Nq: 1, Nk: 5, D: 32 });
});

test("attention: tiny odd head dim (N = 7, D = 3)", () => {
  checkAttention("N=7 D=3", { B: 2, H: 3, Nq: 7, Nk: 7, D: 3 });
});

test("attention: cross attention, Nq != Nk (tile tails on both sides)", () => {
  checkAttention("50x77", { B: 2, H: 2, Nq: 50, Nk: 77, D: 64 });
  checkAttention("77x50 D=72", { B: 2, H: 2, Nq: 77, Nk: 50, D: 72 });
});

test("attention: D != Dv", () => {
  checkAttention("D=32 Dv=48", { B: 1, H: 3, Nq: 65, Nk: 33, D: 32, Dv: 48 });
  checkAttention("D=130 Dv=200", { B: 1, H: 1, Nq: 70, Nk: 90, D: 130, Dv: 200 });
});

test("attention: D = 128 with N = 1000", () => {
  checkAttention("D=128", { B: 1, H: 2, Nq: 1000, Nk: 1000, D: 128, precisions: ["high", "medium"] });
});

test("attention: large (B = 8, H = 8, N = 1024, D = 64)", () => {
  checkAttention("large", { B: 8, H: 8, Nq: 1024, Nk: 1024, D: 64, precisions: ["high"] });
});

test("attention backward is deterministic (bit-identical gradients on repeat)", () => {
  const shapes = [[2, 4, 300, 64], [2, 4, 300, 64], [2, 4, 300, 64]];
  const inputs = randomInputs(shapes);
  for (const precision of Object.keys(PRECISIONS)) {
    withPrecision(precision, () => {
      const grads = () => fd.scope(() => {
        const xs = inputs.map((v, i) => fd.tensor(v, shapes[i]).to("cuda").requireGrad());
        const o = fd.attention(xs[0], xs[1], xs[2]);
        o.backward(fd.onesLike(o));
        return xs.map((x) => x.grad.dataSync());
      });
      const a = grads(), b = grads();
      for (let i = 0; i < 3; ++i) assert.deepEqual(b[i], a[i], `@${precision}: gradient ${i} differs between runs`);
    });
  }
});

test("attention with no queries: empty output, zero k and v gradients", () => {
  const q = fd.zeros([1, 2, 0, 8], { device: "cuda" }).requireGrad();
  const k = fd.ones([1, 2, 5, 8], { device: "cuda" }).requireGrad();
  const v = fd.ones([1, 2, 5, 4], { device: "cuda" }).requireGrad();
  const o = fd.attention(q, k, v);
  assert.deepEqual(o.shape, [1, 2, 0, 4]);
  o.backward(fd.zeros([1, 2, 0, 4], { device: "cuda" }));
  assert.deepEqual(Array.from(k.grad.dataSync()), new Array(80).fill(0));
  assert.deepEqual(Array.from(v.grad.dataSync()), new Array(40).fill(0));
});
