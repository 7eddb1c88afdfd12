// Prints bench/results/frdiff-<model>.json as the markdown table of bench/RESULTS.md.
//   node bench/frdiff-table.mjs mnist-teacher [mnist-dit …]
import * as fs from "node:fs";
import * as path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const order = { full: 0, frdiff: 1, deepcache: 2, "auto-fr": 3, ddim: 4 };
for (const model of process.argv.slice(2)) {
  const r = JSON.parse(fs.readFileSync(path.join(here, "results", `frdiff-${model}.json`), "utf8"));
  const full = r.rows.ddim50;
  const rows = Object.entries(r.rows).sort(([an, a], [bn, b]) => order[a.kind] - order[b.kind] || (a.nfe ?? 0) - (b.nfe ?? 0) || an.localeCompare(bn));
  console.log(`\n**${model}** — ${r.n} samples per row; wall time: one batch of ${r.timingBatch ?? "?"} at ${r.timingThreads ?? "?"} thread(s)\n`);
  console.log("| plan | NFE | GFLOP / sample | wall s / batch | speedup | FD → test (Δ vs full) | accuracy | FD → full | RMS distance → full |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const [, row] of rows) {
    const delta = row === full ? "" : ` (${row.fdTest >= full.fdTest ? "+" : ""}${((100 * (row.fdTest - full.fdTest)) / full.fdTest).toFixed(1)}%)`;
    const cells = [
      row.plan, row.nfe.toFixed(0), row.gflops.toFixed(2), row.batchSeconds?.toFixed(1) ?? "—",
      row.speedup ? `${row.speedup.toFixed(2)}×` : "—", `${row.fdTest.toFixed(2)}${delta}`, `${(100 * row.accuracy).toFixed(1)}%`,
      row.fdFull.toFixed(3), row.distance.toFixed(4),
    ];
    console.log(`| ${cells.join(" | ")} |`);
  }
}
