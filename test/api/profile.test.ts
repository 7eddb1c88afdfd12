// The per-op profiler: nothing is recorded while it is off; while on, every kernel adds its time under its
// op's name, and the GEMM-class ops name their shape (a network's layers show one row each).
import * as fd from "../../lib";

afterEach(() => {
  fd.setProfiling(false);
  fd.profile({ reset: true });
});

test("records per op while on, with linear and conv2d rows per shape, and nothing while off", () => {
  const rows = () => new Map(fd.profile({ reset: true }).map((r) => [r.op, r]));
  fd.scope(() => {
    const x = fd.randn([5, 8], { seed: 1 });
    const w = fd.randn([16, 8], { seed: 2 });
    const image = fd.randn([1, 2, 6, 6], { seed: 3 });
    const kernel = fd.randn([3, 2, 3, 3], { seed: 4 });
    fd.synchronize();
    fd.profile({ reset: true });
    fd.linear(x, w);
    fd.synchronize();
    expect(rows().size).toBe(0);

    fd.setProfiling(true);
    fd.linear(x, w);
    fd.linear(x, w);
    fd.linear(fd.slice(x, 0, 0, 2), w);
    fd.conv2d(image, kernel, null, { padding: 1 });
    fd.add(x, x);
    fd.synchronize();
    const on = rows();
    expect([...on.keys()].sort()).toEqual(["add", "conv2d [1, 2, 6, 6] → 3 3×3 (direct)", "linear 2×8 → 16", "linear 5×8 → 16", "slice"]);
    expect(on.get("linear 5×8 → 16")!.calls).toBe(2);
    expect(on.get("linear 2×8 → 16")!.calls).toBe(1);
    for (const r of on.values()) expect(r.seconds).toBeGreaterThan(0);
  });
});
