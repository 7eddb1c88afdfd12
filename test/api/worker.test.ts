// The addon is context-aware: it loads and runs in worker_threads, each with its own stream.
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import * as fd from "../../lib";

test("ops run in worker threads alongside the main thread", async () => {
  const entry = path.join(__dirname, "..", "..", "dist", "index.cjs");
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    const fd = require(workerData.entry);
    const x = fd.randn([128, 128], { seed: workerData.seed });
    const y = fd.sum(fd.matmul(x, x));
    y.data().then((v) => parentPort.postMessage({ value: v[0], live: fd.memory().liveTensors }));`;
  const run = (seed: number) =>
    new Promise<{ value: number; live: number }>((resolve, reject) => {
      const w = new Worker(code, { eval: true, workerData: { entry, seed } });
      w.once("message", (m) => {
        resolve(m);
        void w.terminate();
      });
      w.once("error", reject);
    });
  const [a, b] = await Promise.all([run(1), run(2)]);
  const expected = fd.scope(() => {
    const x = fd.randn([128, 128], { seed: 1 });
    return fd.sum(fd.matmul(x, x)).item();
  });
  expect(a.value).toBe(expected);
  expect(b.value).not.toBe(expected);
  expect(a.live).toBe(3); // x, the matmul result and y
});

test("terminating a worker with reads pending leaves the main thread working", async () => {
  const entry = path.join(__dirname, "..", "..", "dist", "index.cjs");
  const code = `
    const { parentPort, workerData } = require("node:worker_threads");
    const fd = require(workerData.entry);
    let x = fd.randn([512, 512], { seed: 1, std: 1 / Math.sqrt(512) });
    for (let i = 0; i < 40; ++i) x = fd.matmul(x, x);
    const reads = [fd.sum(x).data(), x.data()];
    parentPort.postMessage("queued");`;
  const w = new Worker(code, { eval: true, workerData: { entry } });
  await new Promise<void>((resolve, reject) => {
    w.once("message", () => resolve());
    w.once("error", reject);
  });
  // Terminated right after queuing ~10 GFLOP, so its stream is still running and both reads are pending.
  expect(await w.terminate()).toBe(1);
  const y = fd.sum(fd.ones([1000]));
  expect((await y.data())[0]).toBe(1000);
  y.dispose();
});
