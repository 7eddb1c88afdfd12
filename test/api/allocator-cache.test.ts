// The caching allocator (binding/cpp/core/allocator.cc) under its limit (FASTDIFF_CACHE_MB, or a quarter of
// physical memory): when a workload changes its block sizes — a sampler warmed up at batch 250, then guided
// (batch 500) — the size classes used longest ago make room, so the new sizes are served from the cache again.
// Before, a cache full of the old sizes turned every new block away: each allocation went to the system and
// faulted its pages in (a guided DiT batch ran 7× slower after an unguided warm-up). Runs in a child process
// (the limit is read at load), synchronously (FASTDIFF_SYNC=1), so blocks are freed the moment their tensors
// are disposed.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { totalmem } from "node:os";
import { join, resolve } from "node:path";

const dist = join(resolve(__dirname, "../.."), "dist", "index.cjs");

// Phase A fills the 64 MB cache with 4 MB blocks; phase B then cycles 6 MB blocks (another size class) 5 times.
const script = `
const fd = require(${JSON.stringify(dist)});
const MB = 1 << 20;
const cycle = (mb, count) => { const ts = Array.from({ length: count }, () => fd.zeros([mb * MB / 4])); for (const t of ts) t.dispose(); };
cycle(4, 15);
const misses = [];
for (let round = 0; round < 5; ++round) {
  const before = fd.memory().cacheMisses;
  cycle(6, 8);
  misses.push(fd.memory().cacheMisses - before);
}
const m = fd.memory();
console.log(JSON.stringify({ misses, cached: m.cachedBytes, hits: m.cacheHits }));
`;

test("a full cache makes room for the sizes in use: after the first round every block is a cache hit", () => {
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run 'npm run build:ts' (npm test does it first)`);
  const out = execFileSync(process.execPath, ["-e", script], { env: { ...process.env, FASTDIFF_CACHE_MB: "64", FASTDIFF_SYNC: "1" } });
  const r = JSON.parse(out.toString()) as { misses: number[]; cached: number; hits: number };
  const MB = 1 << 20;
  expect(r.misses[0]).toBe(8); // the first 6 MB round meets a cache of 4 MB blocks
  expect(r.misses.slice(1)).toEqual([0, 0, 0, 0]); // then the 6 MB blocks stay cached (it was 8 misses every round)
  expect(r.cached).toBeLessThanOrEqual(64 * MB); // the limit holds
  expect(r.cached).toBeGreaterThanOrEqual(8 * 6 * MB);
  expect(r.hits).toBeGreaterThanOrEqual(32);
});

test("the cap: FASTDIFF_CACHE_MB, else a quarter of physical memory, at least 2 GiB (memory().cacheLimitBytes)", () => {
  const limit = (env: Record<string, string>) => {
    const { FASTDIFF_CACHE_MB: _, ...rest } = process.env;
    const out = execFileSync(process.execPath, ["-e", `console.log(require(${JSON.stringify(dist)}).memory().cacheLimitBytes)`], { env: { ...rest, ...env } });
    return Number(out.toString());
  };
  const MB = 1 << 20;
  expect(limit({ FASTDIFF_CACHE_MB: "64" })).toBe(64 * MB);
  const expected = Math.max(2048 * MB, totalmem() / 4);
  expect(Math.abs(limit({}) - expected)).toBeLessThan(MB); // sysconf's and os.totalmem()'s page counts agree
});
