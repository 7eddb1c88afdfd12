// Memory is owned: dispose, scope, the GC backstop, and a 10,000-iteration
// training loop at constant live-tensor count and stable RSS.
import * as fd from "../../lib";
import { settledMemory } from "../helpers";

test("scope frees what it created except the returned tensors", () => {
  const before = fd.memory().liveTensors;
  const kept = fd.scope(() => {
    const a = fd.ones([10]);
    const b = fd.mul(a, 2);
    fd.exp(b);
    return { b, list: [fd.add(b, 1)] };
  });
  expect(fd.memory().liveTensors).toBe(before + 2);
  expect(kept.b.isDisposed).toBe(false);
  kept.b.dispose();
  kept.list[0]!.dispose();
  expect(fd.memory().liveTensors).toBe(before);
});

test("nested scopes hand returned tensors to the parent; keep() survives a scope", () => {
  const before = fd.memory().liveTensors;
  fd.scope(() => {
    const inner = fd.scope(() => fd.ones([2]));
    const kept = fd.scope(() => fd.keep(fd.zeros([2])));
    expect(inner.isDisposed).toBe(false);
    expect(kept.isDisposed).toBe(false);
  });
  expect(fd.memory().liveTensors).toBe(before);
});

test("a throwing scope still frees its tensors", () => {
  const before = fd.memory().liveTensors;
  expect(() =>
    fd.scope(() => {
      fd.ones([4]);
      throw new Error("boom");
    }),
  ).toThrow("boom");
  expect(fd.memory().liveTensors).toBe(before);
});

test("[Symbol.dispose] frees the tensor", () => {
  const before = fd.memory().liveTensors;
  {
    const t = fd.ones([4]);
    t[Symbol.dispose]();
  }
  expect(fd.memory().liveTensors).toBe(before);
});

test("the GC backstop frees tensors nobody disposed", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  const { execFileSync } = await import("node:child_process");
  const path = await import("node:path");
  // Needs --expose-gc: run in a child process.
  const script = `
    const fd = require(${JSON.stringify(path.join(__dirname, "..", "..", "dist", "index.cjs"))});
    (function () { for (let i = 0; i < 200; ++i) fd.ones([1000]); })();
    fd.synchronize();
    const before = fd.memory().liveTensors;
    (async () => {
      for (let i = 0; i < 10; ++i) { global.gc(); await new Promise((r) => setTimeout(r, 10)); }
      console.log(JSON.stringify({ before, after: fd.memory().liveTensors }));
    })();`;
  const out = JSON.parse(execFileSync(process.execPath, ["--expose-gc", "-e", script]).toString()) as { before: number; after: number };
  expect(gc === undefined || typeof gc === "function").toBe(true);
  expect(out.before).toBeGreaterThanOrEqual(200);
  expect(out.after).toBeLessThan(10);
});

test("10,000 iterations of forward/backward/Adam run at constant memory", async () => {
  const params = [
    fd.randn([32, 2], { seed: 1, std: 0.5 }).requireGrad(), fd.zeros([32]).requireGrad(),
    fd.randn([32, 32], { seed: 2, std: 0.2 }).requireGrad(), fd.zeros([32]).requireGrad(),
    fd.randn([1, 32], { seed: 3, std: 0.2 }).requireGrad(), fd.zeros([1]).requireGrad(),
  ];
  const [w1, b1, w2, b2, w3, b3] = params as [fd.Tensor, fd.Tensor, fd.Tensor, fd.Tensor, fd.Tensor, fd.Tensor];
  const adam = new fd.Adam(params, { lr: 1e-3, maxGradNorm: 1, sanitize: true });
  const ema = new fd.EMA(params, { halfLife: 100 });
  const gen = new fd.Generator(42);
  const step = () =>
    fd.scope(() => {
      const x = fd.randn([64, 2], { generator: gen });
      const target = fd.sum(fd.square(x), 1, true);
      adam.zeroGrad();
      const pred = fd.linear(fd.silu(fd.linear(fd.gelu(fd.linear(x, w1, b1)), w2, b2)), w3, b3);
      const loss = fd.mseLoss(pred, target);
      loss.backward();
      adam.step();
      ema.update();
      return loss;
    });
  const probe = step();
  const firstLoss = probe.item();
  probe.dispose();
  // Count only what is reachable: handles other tests dropped (left to the GC backstop) must not be
  // finalized halfway through and look like a change. Collect, let the finalizers run, then count.
  const sample = async () => ({ ...(await settledMemory()), rss: process.memoryUsage().rss });
  // Like a real loop, read the loss now and then: that turn of the event loop is also
  // when Node runs the deferred finalizers of collected handles.
  const run = async (iterations: number, check: (i: number) => Promise<void>) => {
    for (let i = 0; i < iterations; ++i) {
      const loss = step();
      if (i % 50 === 0) await loss.data();
      loss.dispose();
      await check(i);
    }
  };
  await run(2000, async () => undefined); // warm-up: allocator cache and V8 heap settle
  const start = await sample();
  await run(10_000, async (i) => {
    if (i % 1000 === 0) {
      const now = await sample();
      // Never above the start: nothing leaks a handle or storage (one per iteration would add 1,000 between checks).
      // It may drop below: handles earlier suites left to the GC backstop can still be finalized after `start`.
      expect(now.live).toBeLessThanOrEqual(start.live);
      expect(now.bytes).toBeLessThanOrEqual(start.bytes);
    }
  });
  const end = await sample();
  expect(end.live).toBe(start.live);
  expect(end.bytes).toBe(start.bytes);
  // RSS also holds V8's heap and handles awaiting finalization: bounded, not per-step.
  expect(end.rss - start.rss).toBeLessThan(48 * 1024 * 1024);
  const trained = step();
  expect(trained.item()).toBeLessThan(firstLoss); // and it learned something
  trained.dispose();
  adam.dispose();
  ema.dispose();
  for (const p of params) p.dispose();
});
