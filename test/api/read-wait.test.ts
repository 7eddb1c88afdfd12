// setReadWait: how tensor.data() waits for the stream. "poll" keeps the event loop turning (setImmediate) for up to
// 25 ms and then lets it sleep; "sleep" lets it sleep at once; "auto" polls only while the kernel threads leave a
// core free. Measured with the event loop's utilization (the share of time it was not asleep in its poll phase)
// over a read of a few hundred milliseconds of queued matrix products.
import { availableParallelism } from "node:os";
import { performance } from "node:perf_hooks";
import * as fd from "../../lib";

import { engineSettings, expectCode, randomTensor, sameBits } from "../helpers";

const { threads: THREADS } = engineSettings();

afterEach(() => {
  fd.setReadWait("auto");
  fd.setNumThreads(THREADS);
});

// a·a·…·a (`products` times) queued, each intermediate released as soon as it is queued (so the engine's memory,
// which V8 is told about, stays small: a growing external size has V8 collect garbage on the event loop meanwhile).
function queueProducts(a: fd.Tensor, products: number): fd.Tensor {
  let y = fd.matmul(a, a);
  for (let i = 1; i < products; ++i) {
    const next = fd.matmul(y, a);
    y.dispose();
    y = next;
  }
  return y;
}

// A read that completes after `products` 512³ products queued on `threads` kernel threads (a few ms each), and
// the milliseconds the event loop was awake while data() waited for it.
async function timedRead(products: number, threads = 1): Promise<{ values: Float32Array; want: Float32Array; awakeMs: number; waitMs: number }> {
  fd.setNumThreads(threads);
  const a = randomTensor([512, 512], 1, 0.05);
  const y = queueProducts(a, products);
  const before = performance.eventLoopUtilization();
  const t0 = performance.now();
  const values = await y.data();
  const waitMs = performance.now() - t0;
  const awakeMs = performance.eventLoopUtilization(before).active;
  const want = y.dataSync();
  a.dispose();
  y.dispose();
  return { values, want, awakeMs, waitMs };
}

// timedRead three times: the median awake time (a garbage collection now and then keeps the loop busy for a while
// whatever the policy), the shortest wait, and whether every read gave the synchronous read's values.
async function medianRead(products: number, threads = 1): Promise<{ awakeMs: number; waitMs: number; same: boolean }> {
  const runs = [];
  for (let i = 0; i < 3; ++i) runs.push(await timedRead(products, threads));
  const awake = runs.map((r) => r.awakeMs).sort((p, q) => p - q);
  return { awakeMs: awake[1]!, waitMs: Math.min(...runs.map((r) => r.waitMs)), same: runs.every((r) => sameBits(r.values, r.want)) };
}

// The first reads of a process keep its event loop busy for tens of milliseconds whatever the policy (module and
// code warm-up); measure after them.
beforeAll(async () => {
  fd.setReadWait("sleep");
  for (let i = 0; i < 3; ++i) await timedRead(20);
  fd.setReadWait("auto");
});

test("the policy is 'auto' by default; an unknown one is an argument error naming the choices", () => {
  expect(fd.getReadWait()).toBe("auto");
  expectCode(() => fd.setReadWait("spin" as fd.ReadWait), "ERR_ARGUMENT", /setReadWait: wait must be one of "auto", "poll", "sleep", got spin/);
  expect(fd.getReadWait()).toBe("auto");
});

test("'poll' keeps the event loop awake for at most ~25 ms of a long read, and timers still run meanwhile", async () => {
  fd.setReadWait("poll");
  const t0 = performance.now();
  let firedAt = Infinity;
  setTimeout(() => { firedAt = performance.now() - t0; }, 1);
  const r = await medianRead(60);
  expect(r.waitMs).toBeGreaterThan(60); // long enough for the bound to matter
  expect(r.same).toBe(true);
  expect(firedAt).toBeLessThan(20); // while the first read was being polled for, not after it
  expect(r.awakeMs).toBeGreaterThan(20); // it polled (25 ms) ...
  expect(r.awakeMs).toBeLessThan(25 + 30); // ... and then slept
});

test("'sleep' lets the event loop sleep through the read", async () => {
  fd.setReadWait("sleep");
  const r = await medianRead(60);
  expect(r.same).toBe(true);
  expect(r.awakeMs).toBeLessThan(15);
});

test("'auto' polls on one kernel thread when a core is free, and sleeps when the threads take every core", async () => {
  fd.setReadWait("auto");
  const polled = await medianRead(60);
  if (availableParallelism() > 1) expect(polled.awakeMs).toBeGreaterThan(20);
  else expect(polled.awakeMs).toBeLessThan(15);
  const everyCore = await medianRead(60, availableParallelism());
  expect(everyCore.same).toBe(true);
  expect(everyCore.awakeMs).toBeLessThan(15);
});
