// Shared by the bench scripts: where things are, the built package, `--name value` arguments, and the
// per-sample distance between two sample sets drawn from the same noise.
import * as path from "node:path";
import { createRequire } from "node:module";

export const here = path.dirname(new URL(import.meta.url).pathname);
export const root = path.resolve(here, "..");
export const fd = createRequire(import.meta.url)(path.join(root, "dist", "index.cjs"));

/** `--name value` pairs of the command line as an object of strings. */
export const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith("--") ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);

/** Mean over samples of the RMS difference between a[s] and b[s] (same shapes, n samples each). */
export function meanRmsDistance(a, b) {
  const n = a.shape[0];
  return fd.scope(() => {
    const d = fd.sub(a, b).dataSync();
    const per = d.length / n;
    let total = 0;
    for (let s = 0; s < n; ++s) {
      let sq = 0;
      for (let k = s * per; k < (s + 1) * per; ++k) sq += d[k] * d[k];
      total += Math.sqrt(sq / per);
    }
    return total / n;
  });
}
