// The fused SiD generator loss (METHODS.md §1(b)): forward against the formula in float64, gradients against
// autograd through the unfused formula and against central differences (both with the weight w held constant,
// as SiD detaches it), and per-sample NaN masking.
import * as fd from "../../lib";
import { hostValues, maxAbsDiff, relL2 } from "../helpers";

const B = 3;
const P = 2 * 4 * 5;
const shape = [B, 2, 4, 5];
const alpha = 1.2;

/** Host (float64) reference: per-sample losses and weights. */
function reference(r: ArrayLike<number>, f: ArrayLike<number>, x: ArrayLike<number>, a: number, w?: number[]): { loss: number[]; w: number[] } {
  const loss: number[] = [];
  const weights: number[] = [];
  for (let b = 0; b < B; ++b) {
    let abs = 0;
    let total = 0;
    for (let p = b * P; p < (b + 1) * P; ++p) {
      abs += Math.abs(x[p]! - r[p]!);
      const rf = r[p]! - f[p]!;
      total += (1 - a) * rf * rf + rf * (f[p]! - x[p]!);
    }
    const weight = w ? w[b]! : 1 / Math.max(abs / P, 1e-5);
    weights.push(weight);
    loss.push(weight * total);
  }
  return { loss, w: weights };
}

const inputs = () => [hostValues(shape, 1), hostValues(shape, 2), hostValues(shape, 3)] as const;

test("forward: the formula, with w = 1/max(mean|x_g − r|, 1e-5)", () => {
  const [r, f, x] = inputs();
  fd.scope(() => {
    const { loss, mask } = fd.sidLoss(fd.tensor(r, shape), fd.tensor(f, shape), fd.tensor(x, shape), { alpha });
    expect(loss.shape).toEqual([B]);
    expect(relL2(loss.dataSync(), reference(r, f, x, alpha).loss)).toBeLessThan(1e-6);
    expect(Array.from(mask.dataSync())).toEqual([1, 1, 1]);
  });
});

test.each([1.2, 1.0, 0.5])("gradients (α = %p) match autograd through the unfused formula with w held constant", (a) => {
  const [r, f, x] = inputs();
  const w = reference(r, f, x, a).w;
  fd.scope(() => {
    const leaves = [r, f, x].map((v) => {
      const t = fd.tensor(v, shape);
      t.requiresGrad = true;
      return t;
    });
    const upstream = fd.tensor(Float32Array.from([0.7, -1.3, 2.1]), [B]);
    fd.sum(fd.mul(fd.sidLoss(leaves[0]!, leaves[1]!, leaves[2]!, { alpha: a }).loss, upstream)).backward();
    const fused = leaves.map((t) => t.grad!.dataSync());

    const plain = [r, f, x].map((v) => {
      const t = fd.tensor(v, shape);
      t.requiresGrad = true;
      return t;
    });
    const [rt, ft, xt] = plain as [fd.Tensor, fd.Tensor, fd.Tensor];
    const rf = fd.sub(rt, ft);
    const perPixel = fd.add(fd.mul(fd.square(rf), 1 - a), fd.mul(rf, fd.sub(ft, xt)));
    const perSample = fd.sum(fd.reshape(perPixel, [B, P]), 1);
    const weights = fd.tensor(Float32Array.from(w, (v, b) => v * [0.7, -1.3, 2.1][b]!), [B]);
    fd.sum(fd.mul(perSample, weights)).backward();
    plain.forEach((t, i) => expect(relL2(fused[i]!, t.grad!.dataSync())).toBeLessThan(1e-5));
  });
});

test("gradients match central differences of the float64 formula (w held constant)", () => {
  const [r, f, x] = inputs();
  const w = reference(r, f, x, alpha).w;
  const grads = fd.scope(() => {
    const leaves = [r, f, x].map((v) => {
      const t = fd.tensor(v, shape);
      t.requiresGrad = true;
      return t;
    });
    fd.sum(fd.sidLoss(leaves[0]!, leaves[1]!, leaves[2]!, { alpha }).loss).backward();
    return leaves.map((t) => Array.from(t.grad!.dataSync()));
  });
  const total = (rr: number[], ff: number[], xx: number[]) => reference(rr, ff, xx, alpha, w).loss.reduce((s, v) => s + v, 0);
  const h = 1e-4;
  for (let d = 0; d < 4; ++d) {
    const dirs = [0, 1, 2].map((i) => hostValues(shape, 10 * d + i));
    const shifted = (sign: number) => [r, f, x].map((v, i) => Array.from(v, (e, k) => e + sign * h * dirs[i]![k]!));
    const [rp, fp, xp] = shifted(1) as [number[], number[], number[]];
    const [rm, fm, xm] = shifted(-1) as [number[], number[], number[]];
    const numeric = (total(rp, fp, xp) - total(rm, fm, xm)) / (2 * h);
    let analytic = 0;
    for (let i = 0; i < 3; ++i) for (let k = 0; k < B * P; ++k) analytic += grads[i]![k]! * dirs[i]![k]!;
    expect(Math.abs(numeric - analytic)).toBeLessThan(1e-3 * Math.max(1, Math.abs(numeric)));
  }
});

test("a sample with a NaN or Inf is masked: zero loss, zero gradient, the others unchanged", () => {
  const [r, f, x] = inputs();
  const fBad = Float32Array.from(f);
  fBad[P + 3] = NaN; // sample 1
  const xBad = Float32Array.from(x);
  xBad[2 * P] = Infinity; // sample 2
  fd.scope(() => {
    const leaves = [r, fBad, xBad].map((v) => {
      const t = fd.tensor(v, shape);
      t.requiresGrad = true;
      return t;
    });
    const { loss, mask } = fd.sidLoss(leaves[0]!, leaves[1]!, leaves[2]!, { alpha });
    expect(Array.from(mask.dataSync())).toEqual([1, 0, 0]);
    const values = loss.dataSync();
    expect(values[1]).toBe(0);
    expect(values[2]).toBe(0);
    expect(Math.abs(values[0]! - reference(r, f, x, alpha).loss[0]!)).toBeLessThan(1e-4 * Math.abs(values[0]!));
    fd.sum(loss).backward();
    for (const t of leaves) {
      const g = t.grad!.dataSync();
      expect(g.every(Number.isFinite)).toBe(true);
      expect(maxAbsDiff(g.subarray(P), new Float32Array(2 * P))).toBe(0);
      expect(g.subarray(0, P).some((v) => v !== 0)).toBe(true);
    }
  });
});

test("bad input: shapes that differ, a non-finite α", () => {
  fd.scope(() => {
    const a = fd.zeros([2, 3]);
    expect(() => fd.sidLoss(a, a, fd.zeros([2, 4]))).toThrow(expect.objectContaining({ code: "ERR_SHAPE", message: expect.stringMatching(/sid_loss.*\[2, 4\]/) }));
    expect(() => fd.sidLoss(a, a, a, { alpha: NaN })).toThrow(expect.objectContaining({ code: "ERR_ARGUMENT" }));
  });
});
