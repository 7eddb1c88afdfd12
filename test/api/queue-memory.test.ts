// Memory back-pressure on the stream (FASTDIFF_QUEUE_MB): queued kernels hold their tensors until they run,
// so without a bound a host far ahead of the worker keeps every intermediate of the queued work alive. The
// budget caps how far live memory may grow past the last drained state. Each case runs in a child process
// (the budget is read once at load) using the built package.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const dist = join(resolve(__dirname, "../.."), "dist", "index.cjs");

// 40 chained ops on 16 MB tensors, each intermediate dropped by the host at once; then one read.
const script = `
const fd = require(${JSON.stringify(dist)});
let x = fd.randn([4 * 1024 * 1024], { seed: 1 });
for (let i = 0; i < 40; ++i) { const y = fd.scope(() => fd.tanh(fd.mul(x, 1.01))); x.dispose(); x = y; }
const sum = fd.sum(x).item();
console.log(JSON.stringify({ peak: fd.memory().peakBytes, sum }));
`;

function peak(queueMb: string): { peak: number; sum: number } {
  const out = execFileSync(process.execPath, ["-e", script], { env: { ...process.env, FASTDIFF_QUEUE_MB: queueMb, FASTDIFF_SYNC: "" } });
  return JSON.parse(out.toString());
}

test("a queue budget bounds the memory queued work holds, without changing results", () => {
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run 'npm run build:ts' (npm test does it first)`);
  const off = peak("0");
  const bounded = peak("64");
  const mb = 1 << 20;
  // Unbounded, the host runs ahead and up to 80 intermediates of 16 MB can be alive; bounded, live memory
  // grows at most 64 MB (plus the op in flight and its inputs) past the drained state.
  expect(bounded.peak).toBeLessThan(64 * mb + 6 * 16 * mb);
  expect(bounded.sum).toBe(off.sum);
  expect(off.peak).toBeGreaterThan(2 * bounded.peak); // measured: 1,359 MB unbounded vs 134 MB
});
