// The tape: accumulation, reuse, branches, frozen sub-graphs, noGrad, detach,
// and what happens when the graph is missing or already freed.
import * as fd from "../../lib";

const values = (t: fd.Tensor | null) => Array.from(t!.dataSync());

test("a tensor used twice gets the sum of both paths", () => {
  fd.scope(() => {
    const x = fd.tensor([1, 2, 3]).requireGrad();
    const y = fd.sum(fd.mul(x, x)); // d/dx Σx² = 2x
    y.backward();
    expect(values(x.grad)).toEqual([2, 4, 6]);
  });
});

test("branches merge: y = exp(x)·x + 3x", () => {
  fd.scope(() => {
    const x = fd.tensor([0.5, -1]).requireGrad();
    fd.sum(fd.add(fd.mul(fd.exp(x), x), fd.mul(x, 3))).backward();
    const expect_ = [0.5, -1].map((v) => Math.exp(v) * (1 + v) + 3);
    values(x.grad).forEach((g, i) => expect(g).toBeCloseTo(expect_[i]!, 5));
  });
});

test("gradients accumulate across backward calls until zeroed", () => {
  fd.scope(() => {
    const x = fd.tensor([1, 2]).requireGrad();
    fd.sum(fd.mul(x, 2)).backward();
    fd.sum(fd.mul(x, 3)).backward();
    expect(values(x.grad)).toEqual([5, 5]);
    x.grad = null;
    expect(x.grad).toBeNull();
  });
});

test("gradients flow through a frozen network to its input", () => {
  fd.scope(() => {
    // A frozen 2-layer MLP (requiresGrad false) applied to an input that requires grad.
    const w1 = fd.randn([8, 4], { seed: 1 });
    const w2 = fd.randn([3, 8], { seed: 2 });
    const x = fd.randn([5, 4], { seed: 3 }).requireGrad();
    const y = fd.linear(fd.tanh(fd.linear(x, w1)), w2);
    fd.sum(y).backward();
    expect(w1.grad).toBeNull();
    expect(w2.grad).toBeNull();
    // Analytic input gradient: (1ᵀW2 ∘ (1 − tanh²(xW1ᵀ))) W1
    const h = fd.noGrad(() => fd.tanh(fd.linear(x, w1)));
    const dh = fd.mul(fd.sum(w2, 0, true), fd.sub(1, fd.square(h)));
    const expected = fd.matmul(dh, w1);
    const got = x.grad!.dataSync();
    expected.dataSync().forEach((v, i) => expect(got[i]).toBeCloseTo(v, 4));
  });
});

test("noGrad records nothing; detach stops the gradient", () => {
  fd.scope(() => {
    const x = fd.tensor([1, 2]).requireGrad();
    const y = fd.noGrad(() => fd.mul(x, 2));
    expect(y.requiresGrad).toBe(false);
    expect(y.gradFn).toBeNull();
    expect(fd.isGradEnabled()).toBe(true);
    const z = fd.add(fd.mul(x.detach(), 5), x);
    fd.sum(z).backward();
    expect(values(x.grad)).toEqual([1, 1]);
  });
});

test("backward without a graph, twice through a freed graph, and on non-scalars are errors", () => {
  fd.scope(() => {
    const a = fd.tensor([1, 2]);
    expect(() => fd.sum(a).backward()).toThrow(expect.objectContaining({ code: "ERR_NO_GRAPH" }));
    const x = fd.tensor([1, 2]).requireGrad();
    const y = fd.sum(fd.exp(x));
    y.backward();
    expect(() => y.backward()).toThrow(expect.objectContaining({ code: "ERR_NO_GRAPH" }));
    const z = fd.sum(fd.exp(x));
    z.backward(undefined, { retainGraph: true });
    z.backward();
    expect(() => fd.exp(x).backward()).toThrow(expect.objectContaining({ code: "ERR_SHAPE" }));
    fd.exp(x).backward(fd.ones([2])); // an explicit upstream gradient is fine
  });
});

test("requiresGrad can only change on leaves", () => {
  fd.scope(() => {
    const x = fd.tensor([1]).requireGrad();
    const y = fd.mul(x, 2);
    expect(y.isLeaf).toBe(false);
    expect(y.gradFn).toBe("affine");
    expect(() => {
      y.requiresGrad = false;
    }).toThrow(expect.objectContaining({ code: "ERR_ARGUMENT" }));
  });
});

test("saved activations are released once backward has used them", () => {
  fd.scope(() => {
    const x = fd.randn([256, 256], { seed: 5 }).requireGrad();
    fd.synchronize();
    const before = fd.memory().bytes;
    // Intermediates live only in the graph: their JS handles die with the inner scope.
    const y = fd.scope(() => fd.sum(fd.tanh(fd.exp(fd.tanh(x)))));
    fd.synchronize();
    expect(fd.memory().bytes - before).toBeGreaterThan(256 * 256 * 4 * 2.5);
    y.backward();
    fd.synchronize();
    // The intermediates (3 × 256 KiB) are held only by the graph, which backward freed;
    // what remains is x, x.grad and the scalar loss.
    const after = fd.memory().bytes;
    expect(after - before).toBeLessThan(256 * 256 * 4 * 1.5);
  });
});

test("ops are also tensor methods with the same results", () => {
  fd.scope(() => {
    const x = fd.randn([2, 4, 6, 6], { seed: 1 });
    const w = fd.randn([4, 4, 3, 3], { seed: 2 });
    const same = (a: fd.Tensor, b: fd.Tensor) => expect(Array.from(a.dataSync())).toEqual(Array.from(b.dataSync()));
    same(x.conv2d(w, null, { padding: 1 }), fd.conv2d(x, w, null, { padding: 1 }));
    same(x.groupNorm(2, null, null, { silu: true }), fd.groupNorm(x, 2, null, null, { silu: true }));
    same(x.avgPool2d(2).upsampleNearest2d(2), fd.upsampleNearest2d(fd.avgPool2d(x, 2), 2));
    same(x.flatten(1).linear(fd.ones([3, 144])), fd.linear(fd.flatten(x, 1), fd.ones([3, 144])));
    same(x.add(2).mul(x).sub(1).div(4).pow(2), fd.pow(fd.div(fd.sub(fd.mul(fd.add(x, 2), x), 1), 4), 2));
    same(x.sum([1, 2], true), fd.sum(x, [1, 2], true));
  });
});
