// The shipped networks on CUDA against the CPU (which matches diffusers' golden outputs, test/models):
// forward, input gradients and a training step, at each matmul precision.
import assert from "node:assert/strict";
import * as path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { fd, maxRelErr, randomInputs } from "./harness.mjs";

// FASTDIFF_MODELS: the shipped models' folder when the staged package does not carry them (bench/gpu/run.sh).
const models = process.env.FASTDIFF_MODELS ?? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../models");
// Relative to max |output|: float32 FMA differs from the CPU only in summation order; TF32 keeps 10 mantissa
// bits and BF16 7, compounded over ~20 layers.
const TOL = { highest: 1e-4, high: 1e-2, medium: 5e-2 };

async function compare(name, load, batch) {
  const cpu = await load();
  const gpu = (await load()).to("cuda");
  assert.equal(gpu.device, "cuda:0");
  assert.equal(gpu.parameters()[0].device, "cuda:0");
  const shape = [batch, cpu.config.in_channels, cpu.config.sample_size, cpu.config.sample_size];
  const [x] = randomInputs([shape]);
  const t = Array.from({ length: batch }, (_, i) => 10 + 97 * i);
  const labels = cpu.numClasses ? Array.from({ length: batch }, (_, i) => i % cpu.numClasses) : undefined;
  const run = (net, device) => fd.scope(() => {
    const xt = fd.tensor(x, shape);
    const input = (device === "cpu" ? xt : xt.to(device)).requireGrad();
    const out = net.forward(input, t, { classLabels: labels });
    fd.sum(fd.square(out)).backward();
    return { out: out.dataSync(), grad: input.grad.dataSync() };
  });
  const ref = run(cpu, "cpu");
  for (const precision of ["highest", "high", "medium"]) {
    fd.setMatmulPrecision(precision);
    const got = run(gpu, "cuda");
    const eo = maxRelErr(got.out, ref.out), eg = maxRelErr(got.grad, ref.grad);
    assert.ok(eo <= TOL[precision], `${name} ${precision}: forward relative error ${eo.toExponential(2)}`);
    assert.ok(eg <= 2 * TOL[precision], `${name} ${precision}: input-gradient relative error ${eg.toExponential(2)}`);
  }
  fd.setMatmulPrecision("high");
}

test("mnist-teacher (UNet) on CUDA equals the CPU", async () => {
  await compare("UNet", () => fd.UNet.load(path.join(models, "mnist-teacher")), 3);
});

test("mnist-dit (DiT) on CUDA equals the CPU", async () => {
  await compare("DiT", () => fd.DiT.load(path.join(models, "mnist-dit")), 3);
});

test("training steps on CUDA match the CPU (parameter updates)", async () => {
  fd.setMatmulPrecision("highest");
  const nets = [await fd.UNet.load(path.join(models, "mnist-teacher")), (await fd.UNet.load(path.join(models, "mnist-teacher"))).to("cuda")];
  const [x] = randomInputs([[4, 1, 28, 28]]);
  const after = nets.map((net) => {
    const device = net.device;
    const before = net.parameters().map((p) => p.dataSync());
    // SGD with momentum: the update is linear in the gradients, so its error measures theirs (Adam's sign-like
    // step would turn rounding noise in near-zero gradients into full-size differences).
    const opt = new fd.SGD(net.parameters(), { lr: 1e-2, momentum: 0.9 });
    for (let step = 0; step < 3; ++step) {
      fd.scope(() => {
        const xt = fd.tensor(x, [4, 1, 28, 28]);
        const input = device === "cpu" ? xt : xt.to(device);
        const loss = fd.mean(fd.square(net.forward(input, [1, 200, 500, 900], { classLabels: [0, 1, 2, 3] })));
        loss.backward();
        opt.step();
        opt.zeroGrad();
      });
    }
    return net.parameters().map((p, i) => p.dataSync().map((v, j) => v - before[i][j]));
  });
  after[0].forEach((ref, i) => {
    const e = maxRelErr(after[1][i], ref);
    // Three momentum steps of float32 gradients through ~40 layers, summed in other orders than the CPU's:
    // the worst parameter on an H200 was 1.4e-3 (the float32 forward itself agrees to ~1e-5).
    assert.ok(e <= 5e-3, `parameter ${i}: update relative error ${e.toExponential(2)} after 3 SGD steps`);
  });
  fd.setMatmulPrecision("high");
});

test("sample() runs on the network's device and matches the CPU (same seed, same noise)", async () => {
  fd.setMatmulPrecision("highest");
  const cpu = await fd.Denoiser.load(path.join(models, "mnist-teacher"));
  const gpu = await fd.Denoiser.load(path.join(models, "mnist-teacher"));
  gpu.network.to("cuda");
  assert.equal(gpu.device, "cuda:0");
  const run = (d) => fd.sample(d, { n: 4, steps: 6, solver: "heun", seed: 3, classLabels: [0, 1, 2, 3] });
  const ref = await run(cpu), got = await run(gpu);
  assert.equal(got.device, "cuda:0");
  const e = maxRelErr(got.dataSync(), ref.dataSync());
  assert.ok(e <= 1e-3, `11 network evaluations: relative error ${e.toExponential(2)}`);
  fd.setMatmulPrecision("high");
});
