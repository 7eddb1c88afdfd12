// Creation on CUDA: Philox rand / randn / dropout masks bit-identical to the CPU for
// any (seed, offset) and size, full, exact device round trips, the autograd seed of a
// CUDA scalar, and checkFinite raising on CUDA tensors with the CPU's message.
import assert from "node:assert/strict";
import { test } from "node:test";
import { fd } from "./harness.mjs";

// Bitwise equality of two Float32Arrays (NaN payloads and −0 included), naming the first difference.
function assertSameBits(got, ref, what) {
  assert.equal(got.length, ref.length, `${what}: length`);
  const a = new Uint32Array(got.buffer, got.byteOffset, got.length);
  const b = new Uint32Array(ref.buffer, ref.byteOffset, ref.length);
  for (let i = 0; i < a.length; ++i)
    if (a[i] !== b[i]) assert.fail(`${what}: element ${i} is ${got[i]} on CUDA, ${ref[i]} on the CPU`);
}

const SIZES = [1, 2, 3, 4, 5, 7, 1000, 4097, 1000003];
const SEEDS = [0, 1, 42, 2 ** 32 + 7, 2n ** 63n + 12345n];
const OFFSETS = [0n, 1n, 3n, 2n ** 32n - 1n, 2n ** 40n + 5n]; // the counter's high word too

test("randn on CUDA equals the CPU bit for bit", () => {
  for (const n of SIZES)
    for (const seed of SEEDS) {
      const ref = fd.randn([n], { seed }).dataSync();
      const got = fd.randn([n], { seed, device: "cuda" }).dataSync();
      assertSameBits(got, ref, `randn n=${n} seed=${seed}`);
    }
  // mean/std are applied in float32 like the CPU (no fused multiply-add)
  for (const n of [7, 1000003]) {
    const ref = fd.randn([n], { seed: 3, mean: 0.3, std: 1.7 }).dataSync();
    const got = fd.randn([n], { seed: 3, mean: 0.3, std: 1.7, device: "cuda" }).dataSync();
    assertSameBits(got, ref, `randn n=${n} mean 0.3 std 1.7`);
  }
});

test("rand on CUDA equals the CPU bit for bit", () => {
  for (const n of SIZES)
    for (const seed of SEEDS) {
      const ref = fd.rand([n], { seed }).dataSync();
      const got = fd.rand([n], { seed, device: "cuda" }).dataSync();
      assertSameBits(got, ref, `rand n=${n} seed=${seed}`);
    }
  for (const n of [5, 1000003]) {
    const ref = fd.rand([n], { seed: 9, low: -2, high: 5 }).dataSync();
    const got = fd.rand([n], { seed: 9, low: -2, high: 5, device: "cuda" }).dataSync();
    assertSameBits(got, ref, `rand n=${n} [-2, 5)`);
  }
});

test("generator offsets give the same draws on both devices", () => {
  for (const offset of OFFSETS)
    for (const n of [1, 6, 4097]) {
      for (const fn of [fd.rand, fd.randn]) {
        const ref = fn([n], { generator: new fd.Generator(5, offset) }).dataSync();
        const got = fn([n], { generator: new fd.Generator(5, offset), device: "cuda" }).dataSync();
        assertSameBits(got, ref, `${fn.name} n=${n} offset=${offset}`);
      }
    }
  // Consecutive draws from one generator: each advances by ceil(n / 4) blocks.
  const gc = new fd.Generator(77), gg = new fd.Generator(77);
  for (const n of [3, 5, 1, 1000]) {
    const got = fd.randn([n], { generator: gg, device: "cuda" }).dataSync();
    assertSameBits(got, fd.randn([n], { generator: gc }).dataSync(), `stream draw n=${n}`);
  }
});

test("dropout masks are identical on both devices", () => {
  for (const n of [1, 7, 4097, 1000003])
    for (const p of [0.1, 0.5, 0.9]) {
      const ones = fd.ones([n]);
      const ref = fd.dropout(ones, p, { seed: 1234 }).dataSync();
      const got = fd.dropout(ones.to("cuda"), p, { seed: 1234 }).dataSync();
      // The mask (where values are dropped) must match exactly; kept values are 1/(1 − p)
      // up to the scaling kernel's rounding.
      for (let i = 0; i < n; ++i)
        if ((got[i] === 0) !== (ref[i] === 0) || Math.abs(got[i] - ref[i]) > 1e-6 * Math.abs(ref[i]))
          assert.fail(`dropout n=${n} p=${p}: element ${i} is ${got[i]} on CUDA, ${ref[i]} on the CPU`);
    }
});

test("full on CUDA", () => {
  for (const n of [1, 5, 1000003]) {
    const t = fd.full([n], -2.5, { device: "cuda" });
    assert.equal(t.device, "cuda:0");
    assert.ok(t.dataSync().every((v) => v === -2.5));
  }
  assert.deepEqual(Array.from(fd.zeros([3, 2], { device: "cuda" }).dataSync()), [0, 0, 0, 0, 0, 0]);
});

test("to() round trips bit-exactly, special values included", () => {
  const v = new Float32Array([NaN, Infinity, -Infinity, -0, 0, 1e-45, 3.4028234663852886e38, -1.5]);
  const back = fd.tensor(v, [8]).to("cuda").to("cpu").dataSync();
  assertSameBits(back, v, "to round trip");
  const big = fd.randn([1000003], { seed: 5 });
  assertSameBits(big.to("cuda").to("cpu").dataSync(), big.dataSync(), "to round trip 1000003");
  // CUDA → CUDA on the same device, and a chain through two CUDA ops.
  const g = big.to("cuda");
  assertSameBits(g.to("cuda:0").dataSync(), big.dataSync(), "to same device");
  assertSameBits(fd.neg(fd.neg(g)).to("cpu").dataSync(), big.dataSync(), "neg∘neg on CUDA");
});

test("backward from a CUDA scalar seeds the gradient with 1", () => {
  const v = fd.randn([4, 5], { seed: 21 }).dataSync();
  // A CUDA leaf.
  const x = fd.tensor(v, [4, 5]).to("cuda").requireGrad();
  fd.sum(fd.square(x)).backward();
  assert.equal(x.grad.device, "cuda:0");
  assertSameBits(x.grad.dataSync(), v.map((a) => 2 * a), "d/dx Σx² on CUDA");
  // A CPU leaf through to(): the gradient comes back to the CPU.
  const y = fd.tensor(v, [4, 5]).requireGrad();
  fd.mean(fd.mul(y.to("cuda"), 2)).backward();
  assert.equal(y.grad.device, "cpu");
  assert.ok(y.grad.dataSync().every((g) => Math.abs(g - 0.1) < 1e-7));
});

test("checkFinite raises on CUDA with the CPU's message", () => {
  for (const [value, at, n] of [[NaN, 5, 9], [Infinity, 0, 1], [-Infinity, 1000002, 1000003]]) {
    const v = new Float32Array(n).fill(1.5);
    v[at] = value;
    if (at + 7 < n) v[at + 7] = NaN; // a later non-finite value: the first one is reported
    const messages = ["cpu", "cuda"].map((device) => {
      const x = device === "cpu" ? fd.tensor(v, [n]) : fd.tensor(v, [n]).to("cuda");
      fd.checkFinite(x, "probe");
      try {
        fd.synchronize();
      } catch (e) {
        assert.equal(e.code, "ERR_NUMERIC");
        return e.message;
      }
      assert.fail(`checkFinite did not raise on ${device}`);
    });
    assert.equal(messages[1], messages[0]);
    assert.match(messages[1], new RegExp(`at flat index ${at}$`));
  }
  // Finite tensors pass.
  fd.checkFinite(fd.randn([1000003], { seed: 1, device: "cuda" }), "fine");
  fd.synchronize();
});
