// Timing for the CUDA benches: each sample times `iters` back-to-back calls followed by fd.synchronize()
// (so per-call host overhead is amortized as in a network); the median of `samples` after warm-up, in ms.
export function medianMs(fd, fn, { warmup = 3, samples = 10, iters = 1 } = {}) {
  for (let i = 0; i < warmup; ++i) fn();
  fd.synchronize();
  const times = [];
  for (let s = 0; s < samples; ++s) {
    const t0 = performance.now();
    for (let i = 0; i < iters; ++i) fn();
    fd.synchronize();
    times.push((performance.now() - t0) / iters);
  }
  return times.sort((a, b) => a - b)[times.length >> 1];
}
