// Work split by the threads' measured speeds (ThreadPool::parallel_for_balanced: elementwise ops, row ops such
// as the norms, broadcasts and copies, GEMM rows and column panels, attention tasks, one image's Winograd
// channels or tile rows, the direct 3×3 kernel's items) may be cut anywhere, so no result may depend on the cut. FASTDIFF_SPEED_RATIO fixes the
// speed estimate: 0.5 and 2 give the pool's worker 2/3 and 1/3 of each such job instead of about half. Each op on
// 2 threads, at both ratios and adaptive, must give the 1-thread bits. Runs in child processes (the ratio is read
// when the engine loads).
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const dist = join(resolve(__dirname, "../.."), "dist", "index.cjs");

const script = `
const fd = require(${JSON.stringify(dist)});
fd.setNumThreads(Number(process.env.THREADS));
const r = (shape, seed) => fd.randn(shape, { seed });
const bits = (t) => require("node:crypto").createHash("sha256").update(Buffer.from(t.dataSync().buffer)).digest("hex");
const out = {};
fd.noGrad(() => {
  out.linearRows = bits(fd.linear(r([300, 64], 1), r([40, 64], 2), r([40], 3)));     // 2 threads split rows
  out.linearCols = bits(fd.linear(r([14, 96], 4), r([256, 96], 5), r([256], 6)));    // ... column panels
  const conv = (algorithm, x, w, b) => { fd.setConvAlgorithm(algorithm); return bits(fd.conv2d(x, w, b, { padding: 1 })); };
  out.winograd = conv("winograd", r([1, 128, 7, 7], 7), r([128, 128, 3, 3], 8), r([128], 9));         // channels
  out.winogradRows = conv("winograd4", r([1, 64, 28, 28], 20), r([64, 64, 3, 3], 21), r([64], 22)); // tile rows
  out.direct3x3 = conv("direct3x3", r([1, 128, 7, 7], 7), r([128, 128, 3, 3], 8), r([128], 9));      // blocks × strips
  fd.setConvAlgorithm("auto");
  out.attention = bits(fd.attention(r([2, 100, 4, 32], 10), r([2, 100, 4, 32], 11), r([2, 100, 4, 32], 12), { layout: "bnhd" }));
  out.gelu = bits(fd.gelu(r([100003], 13), { approximate: "tanh" }));
  out.groupNorm = bits(fd.groupNorm(r([2, 64, 28, 28], 14), 32, r([64], 15), r([64], 16)));
  out.layerNorm = bits(fd.layerNorm(r([3000, 96], 17), r([96], 18), r([96], 19)));
  out.broadcastAdd = bits(fd.add(r([2, 64, 28, 28], 23), r([2, 64, 1, 1], 24)));
  out.permute = bits(fd.permute(r([2, 64, 28, 28], 25), [0, 2, 3, 1]));
  out.concat = bits(fd.concat([r([2, 64, 28, 28], 26), r([2, 32, 28, 28], 27)], 1));
  out.resize = bits(fd.resize(r([2, 64, 14, 14], 28), [28, 28]));
});
console.log(JSON.stringify(out));
`;

function run(threads: number, ratio?: string): Record<string, string> {
  const env: NodeJS.ProcessEnv = { ...process.env, THREADS: String(threads) };
  if (ratio) env.FASTDIFF_SPEED_RATIO = ratio;
  else delete env.FASTDIFF_SPEED_RATIO;
  return JSON.parse(execFileSync(process.execPath, ["-e", script], { env }).toString()) as Record<string, string>;
}

test("ops cut by the threads' speeds give the 1-thread bits at any cut", () => {
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run 'npm run build:ts' (npm test does it first)`);
  const one = run(1);
  expect(Object.keys(one)).toHaveLength(13);
  for (const ratio of ["0.5", "2", undefined]) {
    const two = run(2, ratio);
    for (const op of Object.keys(one)) expect(`${op} at ratio ${ratio ?? "adaptive"}: ${two[op] === one[op] ? "same bits" : "differs"}`).toBe(`${op} at ratio ${ratio ?? "adaptive"}: same bits`);
  }
});
