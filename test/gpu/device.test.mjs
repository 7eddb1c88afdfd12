// The CUDA device layer: discovery, transfers, memory accounting, errors.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fd, randomInputs } from "./harness.mjs";

test("devices() reports the GPU", () => {
  const { cuda } = fd.devices();
  assert.equal(cuda.available, true);
  assert.ok(cuda.devices.length >= 1);
  const d = cuda.devices[0];
  assert.match(d.name, /\S/);
  assert.match(d.computeCapability, /^\d+\.\d+$/);
  assert.ok(d.memoryBytes > 1e9);
});

test("to() round trips exactly and keeps values on odd sizes", () => {
  for (const n of [1, 3, 1000, 1000003]) {
    const [v] = randomInputs([[n]]);
    const x = fd.tensor(v, [n]);
    const g = x.to("cuda");
    assert.equal(g.device, "cuda:0");
    assert.equal(g.to("cuda:0"), g, "same device returns the tensor itself");
    const back = g.to("cpu");
    assert.equal(back.device, "cpu");
    assert.deepEqual(back.dataSync(), v);
    assert.deepEqual(g.dataSync(), v, "dataSync reads a CUDA tensor");
  }
});

test("await data() on a CUDA tensor", async () => {
  const [v] = randomInputs([[4097]]);
  const g = fd.tensor(v, [4097]).to("cuda");
  assert.deepEqual(await g.data(), v);
});

test("gradients flow back through to()", () => {
  const [v] = randomInputs([[5, 7]]);
  const x = fd.tensor(v, [5, 7]).requireGrad();
  const y = fd.sum(fd.mul(x.to("cuda"), 3));
  y.backward();
  assert.equal(x.grad.device, "cpu");
  assert.deepEqual(Array.from(x.grad.dataSync()), new Array(35).fill(3));
});

test("mixing devices in one op is an ERR_DEVICE naming the op", () => {
  const a = fd.ones([3]);
  const b = fd.ones([3], { device: "cuda" });
  assert.throws(() => fd.add(a, b), (e) => e.code === "ERR_DEVICE" && /add/.test(e.message) && /cuda:0/.test(e.message));
  assert.throws(() => fd.zeros([2], { device: "cuda:99" }), (e) => e.code === "ERR_DEVICE");
  assert.throws(() => fd.zeros([2], { device: "gpu" }), (e) => e.code === "ERR_ARGUMENT");
});

test("out of memory is ERR_OOM with the requested size, and the process goes on", () => {
  const huge = 200e9 / 4;  // 200 GB: more than any single GPU
  assert.throws(() => fd.zeros([huge], { device: "cuda" }), (e) => e.code === "ERR_OOM" && /200000000000 bytes/.test(e.message));
  const ok = fd.ones([1024], { device: "cuda" });
  assert.equal(fd.sum(ok).item(), 1024);
});

test("memory() reports device bytes; a long loop runs at constant device memory; emptyCache frees the cache", () => {
  const w = fd.randn([256, 256], { seed: 1, device: "cuda" });
  const step = () => fd.scope(() => {
    const x = fd.randn([64, 256], { seed: 2, device: "cuda" });
    return fd.sum(fd.tanh(fd.matmul(x, w))).item();
  });
  for (let i = 0; i < 50; ++i) step();
  fd.synchronize();
  const before = fd.memory().devices[0];
  for (let i = 0; i < 2000; ++i) step();
  fd.synchronize();
  const after = fd.memory().devices[0];
  assert.equal(after.device, "cuda:0");
  assert.ok(after.bytes <= before.bytes, `device bytes grew from ${before.bytes} to ${after.bytes}`);
  assert.ok(after.peakBytes < 64 << 20, `peak ${after.peakBytes}`);
  fd.emptyCache();
  assert.equal(fd.memory().devices[0].cachedBytes, 0);
});

test("randn on the GPU equals the CPU bit for bit", () => {
  for (const [n, seed] of [[1, 1], [7, 2], [1000003, 3]]) {
    const cpu = fd.randn([n], { seed }).dataSync();
    const gpu = fd.randn([n], { seed, device: "cuda" }).dataSync();
    assert.deepEqual(gpu, cpu);
  }
});
