// Stream-ordered execution: ops return at once, the event loop stays responsive
// while kernels run, and FASTDIFF_SYNC=1 runs everything inline.
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import * as fd from "../../lib";

const ENTRY = JSON.stringify(path.join(__dirname, "..", "..", "dist", "index.cjs"));

// Measured in a fresh process: the tensors' external memory makes V8 run a full mark-compact
// during the window, and in jest's long-lived process (every suite's heap) that pause alone can
// exceed the whole computation; a small heap's pause is a few ms. FASTDIFF_SYNC=1 is the control:
// the same work inline blocks the loop, so the measure can fail.
test("the event loop keeps running while a long chain of large matmuls computes", () => {
  const script = `
    const fd = require(${ENTRY});
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const started = performance.now();
    const result = fd.scope(() => {
      let x = fd.randn([512, 512], { seed: 1, std: 1 / Math.sqrt(512) });
      const w = fd.randn([512, 512], { seed: 2, std: 1 / Math.sqrt(512) });
      for (let i = 0; i < 120; ++i) x = fd.matmul(x, w); // ~32 GFLOP queued
      return fd.sum(fd.square(x));
    });
    const enqueueMs = performance.now() - started;
    result.data().then((value) => {
      const totalMs = performance.now() - started;
      clearInterval(timer);
      console.log(JSON.stringify({ finite: Number.isFinite(value[0]), enqueueMs, totalMs, ticks }));
    });`;
  const run = (sync: string) =>
    JSON.parse(
      execFileSync(process.execPath, ["-e", script], { env: { ...process.env, FASTDIFF_SYNC: sync }, timeout: 60_000 }).toString(),
    ) as { finite: boolean; enqueueMs: number; totalMs: number; ticks: number };
  const streamed = run("0");
  expect(streamed.finite).toBe(true);
  // Queuing took a small part of the work; the timer fired throughout the rest (a quarter of its 5 ms rate).
  expect(streamed.enqueueMs).toBeLessThan(streamed.totalMs / 2);
  expect(streamed.ticks).toBeGreaterThan((streamed.totalMs - streamed.enqueueMs) / 5 / 4);
  const inline = run("1");
  expect(inline.finite).toBe(true);
  expect(inline.enqueueMs).toBeGreaterThan(inline.totalMs / 2); // the work ran while queuing: no tick could fire
  expect(inline.ticks).toBeLessThanOrEqual(1);
});

test("reads see every earlier op (program order), however they are interleaved", async () => {
  const a = fd.ones([1000]);
  const b = fd.mul(a, 3);
  const c = fd.sum(b);
  const [vb, vc] = await Promise.all([b.data(), c.data()]);
  expect(vb[999]).toBe(3);
  expect(vc[0]).toBe(3000);
  for (const t of [a, b, c]) t.dispose();
});

test("a read's array holds the values and stays valid after the tensor is gone; an empty tensor reads as []", async () => {
  const x = fd.add(fd.arange(0, 5), 1);
  const values = await x.data();
  x.dispose();
  const again = fd.zeros([1000]);
  await again.data(); // reuses the freed storage; the array read before must not see it
  again.dispose();
  expect(Array.from(values)).toEqual([1, 2, 3, 4, 5]);
  const empty = fd.zeros([0, 3]);
  const none = await empty.data();
  expect(Object.prototype.toString.call(none)).toBe("[object Float32Array]"); // (jest runs tests in another realm)
  expect(none.length).toBe(0);
  empty.dispose();
});

test("FASTDIFF_SYNC=1 runs kernels synchronously with identical results", () => {
  const script = `
    const fd = require(${ENTRY});
    const x = fd.randn([64, 64], { seed: 3 });
    const y = fd.sum(fd.matmul(x, x));
    y.data().then((v) => console.log(JSON.stringify({ sync: fd.devices().cpu.synchronous, value: y.item(), read: v[0] })));`;
  const run = (env: Record<string, string>) =>
    JSON.parse(execFileSync(process.execPath, ["-e", script], { env: { ...process.env, ...env } }).toString()) as {
      sync: boolean;
      value: number;
      read: number;
    };
  const sync = run({ FASTDIFF_SYNC: "1" });
  const async_ = run({ FASTDIFF_SYNC: "0" });
  expect(sync.sync).toBe(true);
  expect(async_.sync).toBe(false);
  expect(sync.value).toBe(async_.value);
  expect([sync.read, async_.read]).toEqual([sync.value, sync.value]);
});

test("many reads pending at once resolve in program order, each with its own values", async () => {
  const n = 40;
  const order: number[] = [];
  const tensors = fd.scope(() => {
    let x = fd.randn([256, 256], { seed: 5, std: 1 / 16 });
    const w = fd.randn([256, 256], { seed: 6, std: 1 / 16 });
    const out: fd.Tensor[] = [];
    for (let i = 0; i < n; ++i) {
      x = fd.matmul(x, w);
      out.push(fd.add(fd.mul(fd.sum(fd.square(x)), 0), i)); // the value i, after x's kernels
    }
    return out;
  });
  const values = await Promise.all(tensors.map((t, i) => t.data().then((v) => (order.push(i), v[0]))));
  expect(values).toEqual(Array.from({ length: n }, (_, i) => i));
  expect(order).toEqual(Array.from({ length: n }, (_, i) => i));
  for (const t of tensors) t.dispose();
});

// Every read waits for the last kernel queued before it. Reads registered one by one while that work ends find it done
// while the stream worker is still handing earlier reads their values (1 MB copies each): they must resolve after
// those, not overtake them from the JS thread.
test("reads that find their work done while earlier reads are being delivered resolve after them", async () => {
  const n = 48;
  for (let round = 0; round < 4; ++round) {
    const big = fd.scope(() => Array.from({ length: n }, (_, i) => fd.add(fd.zeros([512, 512]), i)));
    fd.scope(() => {
      let x = fd.randn([256, 256], { seed: 7, std: 1 / 16 });
      for (let i = 0; i < 6; ++i) x = fd.matmul(x, x); // ~0.2 GFLOP queued behind the values
    });
    const order: number[] = [];
    const reads: Promise<number>[] = [];
    for (let i = 0; i < n; ++i) {
      reads.push(big[i]!.data().then((v) => (order.push(i), v[262143]!)));
      const until = performance.now() + 0.15; // spread the registrations over the end of the queued work
      while (performance.now() < until);
    }
    expect(await Promise.all(reads)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(order).toEqual(Array.from({ length: n }, (_, i) => i));
    for (const t of big) t.dispose();
  }
});

// A read resolves on the JS thread through a thread-safe function that holds the event loop open only while
// reads are pending; the stream worker stops handing it results before Node tears it down.
describe("reads and the process's lifetime", () => {
  const node = (script: string) =>
    execFileSync(process.execPath, ["-e", `const fd = require(${ENTRY});\n${script}`], { timeout: 60_000 }).toString();
  const longWork = `
    let x = fd.randn([512, 512], { seed: 1, std: 1 / Math.sqrt(512) });
    const w = fd.randn([512, 512], { seed: 2, std: 1 / Math.sqrt(512) });
    for (let i = 0; i < 60; ++i) x = fd.mul(fd.matmul(x, w), 0.5); // ~16 GFLOP, far longer than queuing it
    const y = fd.sum(fd.square(x));`;

  test("a pending read keeps the process alive until it resolves; afterwards nothing holds it", () => {
    // Nothing but the read is pending: without the reference the process would exit before printing.
    expect(node(`${longWork}\ny.data().then((v) => console.log("read", Number.isFinite(v[0])));`)).toBe("read true\n");
  });

  test("exiting with reads pending ends the process cleanly", () => {
    expect(node(`${longWork}\ny.data(); x.data(); console.log("exiting"); process.exit(0);`)).toBe("exiting\n");
  });
});
