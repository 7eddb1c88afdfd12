// The huge-page heap (binding/cpp/core/huge_heap.cc) under the caching allocator: host blocks of 64 KiB and more
// are placed first-fit in 2 MiB-aligned 32 MiB regions (larger ones get a region of their own) that the kernel is
// asked to back with transparent huge pages. Runs in child processes with the block cache off (FASTDIFF_CACHE_MB=0)
// and synchronously (FASTDIFF_SYNC=1), so every dispose goes back to the heap at once and every allocation is placed
// by it: what is checked is the heap's own bookkeeping.
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";

const dist = join(resolve(__dirname, "../.."), "dist", "index.cjs");
const MB = 1 << 20;

const child = (script: string, env: Record<string, string> = {}): unknown => {
  if (!existsSync(dist)) throw new Error(`${dist} is missing: run 'npm run build:ts' (npm test does it first)`);
  const out = execFileSync(process.execPath, ["-e", `const fd = require(${JSON.stringify(dist)});\n${script}`], {
    env: { ...process.env, FASTDIFF_CACHE_MB: "0", FASTDIFF_SYNC: "1", ...env },
  });
  return JSON.parse(out.toString());
};

// Random sizes from 64 KiB to 3.75 MiB and a few past a region (40–56 MiB), each tensor filled with its own value;
// half of the live ones freed at random each round. A block placed over another, or a range freed twice, shows as
// a tensor that no longer holds its value.
const churn = `
let seed = 12345;
const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
const live = [];
let next = 1, wrong = 0, peakMapped = 0;
for (let round = 0; round < 12; ++round) {
  for (let i = 0; i < 14; ++i) {
    // Whole size classes (k/8 of a power of two), so no slack hides an overlap at a block's end.
    const bytes = i === 0 && round % 4 === 3 ? (5 + Math.floor(3 * rand())) * 8 * 1048576 : (8 + Math.floor(8 * rand())) * 2 ** (13 + Math.floor(6 * rand()));
    const floats = bytes / 4;
    live.push({ t: fd.full([floats], next), v: next, floats });
    next += 1;
  }
  peakMapped = Math.max(peakMapped, fd.memory().hugeMappedBytes);
  for (const { t, v, floats } of live) {
    const d = t.dataSync();
    if (d.length !== floats || d[0] !== v || d[floats - 1] !== v || d[floats >> 1] !== v) wrong += 1;
  }
  for (let i = live.length - 1; i >= 0; --i) if (rand() < 0.5) { live[i].t.dispose(); live.splice(i, 1); }
}
for (const { t } of live) t.dispose();
const m = fd.memory();
const whole = fd.full([30 * 262144], 7); // 30 MiB: fits the spare only if its free ranges were merged back into one
const mappedWhole = fd.memory().hugeMappedBytes;
whole.dispose();
console.log(JSON.stringify({ wrong, allocated: next - 1, peakMapped, mappedAfter: m.hugeMappedBytes, bytesAfter: m.bytes, mappedWhole }));
`;

test("blocks placed, freed and coalesced at random keep their values; an emptied heap keeps one spare region", () => {
  const r = child(churn) as Record<"wrong" | "allocated" | "peakMapped" | "mappedAfter" | "bytesAfter" | "mappedWhole", number>;
  expect(r.allocated).toBe(168);
  expect(r.wrong).toBe(0);
  // Live at most ~7 small blocks a round beside ~100 carried over (≤ 3 MiB each) and a 40–70 MiB block: the heap
  // grew past one region, yet stayed within a few regions of what was live.
  expect(r.peakMapped).toBeGreaterThan(32 * MB);
  expect(r.peakMapped).toBeLessThan(400 * MB);
  expect(r.bytesAfter).toBe(0);
  expect(r.mappedAfter).toBe(32 * MB); // every region unmapped but the spare
  expect(r.mappedWhole).toBe(32 * MB); // the spare, coalesced to one free range, takes a 30 MiB block
});

// What the system grants: "always" or "madvise" in /sys/kernel/mm/transparent_hugepage/enabled gives huge pages to
// the heap's regions (the hint is madvise(MADV_HUGEPAGE)); "never" gives none. FASTDIFF_HUGE_PAGES=0 leaves out the
// hint, so under "madvise" the same blocks sit on 4 KiB pages.
const anonHuge = `
const ts = Array.from({ length: 8 }, (_, i) => fd.full([2 * 1024 * 1024], i + 1)); // 8 × 8 MiB, written
const kb = Number(/AnonHugePages:\\s+(\\d+)/.exec(require("fs").readFileSync("/proc/self/smaps_rollup", "utf8"))[1]);
console.log(JSON.stringify({ hugeMB: kb / 1024, mapped: fd.memory().hugeMappedBytes }));
for (const t of ts) t.dispose();
`;

test("the regions are on huge pages where the system's THP setting allows them; FASTDIFF_HUGE_PAGES=0 opts out", () => {
  const mode = /\[(\w+)\]/.exec(readFileSync("/sys/kernel/mm/transparent_hugepage/enabled", "utf8"))![1];
  const hinted = child(anonHuge) as { hugeMB: number; mapped: number };
  const plain = child(anonHuge, { FASTDIFF_HUGE_PAGES: "0" }) as { hugeMB: number; mapped: number };
  expect(hinted.mapped).toBe(64 * MB); // 64 MiB of blocks fill two 32 MiB regions exactly
  expect(plain.mapped).toBe(64 * MB);
  if (mode === "never") {
    expect(hinted.hugeMB).toBe(0);
  } else {
    // Most of the 64 MiB written (the kernel may hand out a few 4 KiB pages where no huge page was free).
    expect(hinted.hugeMB).toBeGreaterThanOrEqual(48);
  }
  if (mode !== "always") expect(plain.hugeMB).toBe(0);
});
