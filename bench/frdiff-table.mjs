// Prints bench/results/frdiff-<model>.json as the markdown tables of bench/RESULTS.md: every plan, then each
// reuse plan beside plain DDIM-k in no more wall time and in no more GFLOPs ("tie": FD within 0.02).
//   node bench/frdiff-table.mjs mnist-teacher [mnist-dit …]   (a tagged run: mnist-dit-<tag>)
import * as fs from "node:fs";
import * as path from "node:path";

const here = path.dirname(new URL(import.meta.url).pathname);
const order = { full: 0, frdiff: 1, deepcache: 2, plan: 3, "auto-fr": 4, ddim: 5 };
for (const model of process.argv.slice(2)) {
  const r = JSON.parse(fs.readFileSync(path.join(here, "results", `frdiff-${model}.json`), "utf8"));
  const full = Object.values(r.rows).find((row) => row.kind === "full");
  const rows = Object.entries(r.rows).sort(([an, a], [bn, b]) => order[a.kind] - order[b.kind] || (a.nfe ?? 0) - (b.nfe ?? 0) || an.localeCompare(bn));
  const guided = r.guidance !== undefined ? `; classifier-free guidance w = ${r.guidance} in every row` : "";
  console.log(`\n**${model}** — ${r.n} samples per row${guided}; wall time: one batch of ${r.timingBatch ?? "?"} at ${r.timingThreads ?? "?"} thread(s)\n`);
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
  // Peers: the largest measured DDIM-k that took no more wall time (+2%), and the largest with no more network
  // GFLOPs (deterministic: immune to the shared machine's timing noise).
  const ddims = rows.filter(([, row]) => row.kind === "ddim").map(([, row]) => row);
  const largest = (fits) => ddims.filter(fits).sort((a, b) => b.steps - a.steps)[0];
  const describe = (row, peer) => {
    if (!peer) return "—";
    const winner = Math.abs(row.fdTest - peer.fdTest) < 0.02 ? "tie" : row.fdTest < peer.fdTest ? "reuse plan" : "DDIM";
    return `DDIM-${peer.steps}: ${peer.fdTest.toFixed(2)} / ${peer.fdFull.toFixed(3)} (${winner})`;
  };
  console.log("\n| plan | wall s | GFLOP | FD → test / FD → full | DDIM-k in ≤ its wall time | DDIM-k in ≤ its GFLOPs |");
  console.log("|---|---|---|---|---|---|");
  for (const [, row] of rows) {
    if (row.kind === "full" || row.kind === "ddim") continue;
    const byTime = row.batchSeconds ? largest((d) => d.batchSeconds && d.batchSeconds <= row.batchSeconds * 1.02) : null;
    const byFlops = largest((d) => d.gflops <= row.gflops);
    const cells = [row.plan, row.batchSeconds?.toFixed(1) ?? "—", row.gflops.toFixed(2), `${row.fdTest.toFixed(2)} / ${row.fdFull.toFixed(3)}`,
      describe(row, byTime), describe(row, byFlops)];
    console.log(`| ${cells.join(" | ")} |`);
  }
}
