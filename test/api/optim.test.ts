// Optimizer steps against the formulas computed on the host in float64.
import * as fd from "../../lib";

const p0 = [0.5, -1.25, 2, 0.1, -0.3];
const grads = [
  [0.1, -0.2, 0.3, 0.05, -1],
  [-0.4, 0.1, 0.2, -0.3, 0.6],
  [0.2, 0.2, -0.1, 0.4, 0.0],
];

function run(make: (params: fd.Tensor[]) => { step(): void; dispose(): void }, gs = grads): number[] {
  return fd.scope(() => {
    const p = fd.tensor(p0).requireGrad();
    const opt = make([p]);
    for (const g of gs) {
      p.grad = fd.tensor(g);
      opt.step();
    }
    opt.dispose();
    return Array.from(p.dataSync());
  });
}

function adamRef(beta1: number, beta2: number, lr: number, eps: number, wd: number, decoupled: boolean, gs = grads, scale = (_: number[]) => 1): number[] {
  const p = [...p0];
  const m = p.map(() => 0);
  const v = p.map(() => 0);
  gs.forEach((graw, t) => {
    const s = scale(graw);
    for (let i = 0; i < p.length; ++i) {
      let g = graw[i]! * s;
      if (!decoupled) g += wd * p[i]!;
      else p[i]! -= lr * wd * p[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * g;
      v[i] = beta2 * v[i]! + (1 - beta2) * g * g;
      const c1 = beta1 === 0 ? 1 : 1 - beta1 ** (t + 1);
      const c2 = 1 - beta2 ** (t + 1);
      p[i] = p[i]! - (lr * (m[i]! / c1)) / (Math.sqrt(v[i]! / c2) + eps);
    }
  });
  return p;
}

const close = (a: number[], b: number[], tol = 2e-6) => a.forEach((x, i) => expect(Math.abs(x - b[i]!)).toBeLessThan(tol));

test("Adam (β1 = 0.9 and β1 = 0) and AdamW follow the update rule", () => {
  close(run((ps) => new fd.Adam(ps, { lr: 0.01 })), adamRef(0.9, 0.999, 0.01, 1e-8, 0, false));
  close(run((ps) => new fd.Adam(ps, { lr: 0.01, betas: [0, 0.99], weightDecay: 0.1 })), adamRef(0, 0.99, 0.01, 1e-8, 0.1, false));
  close(run((ps) => new fd.AdamW(ps, { lr: 0.01, weightDecay: 0.05 })), adamRef(0.9, 0.999, 0.01, 1e-8, 0.05, true));
});

test("global-norm clipping scales the gradient by maxNorm / ‖g‖", () => {
  const norm = (g: number[]) => Math.sqrt(g.reduce((a, b) => a + b * b, 0));
  const clip = (g: number[]) => Math.min(1, 0.5 / (norm(g) + 1e-6));
  close(run((ps) => new fd.Adam(ps, { lr: 0.01, maxGradNorm: 0.5 })), adamRef(0.9, 0.999, 0.01, 1e-8, 0, false, grads, clip));
  fd.scope(() => {
    const p = fd.tensor(p0).requireGrad();
    const opt = new fd.SGD([p], { lr: 1, maxGradNorm: 0.5, sanitize: true });
    p.grad = fd.tensor([3, 4, NaN, Infinity, 0]);
    opt.step();
    const s = opt.lastStats();
    expect(s.nonFinite).toBe(2);
    expect(s.gradNorm).toBeCloseTo(5, 5);
    expect(s.clipScale).toBeCloseTo(0.1, 6);
    close(Array.from(p.dataSync()), [0.5 - 0.3, -1.25 - 0.4, 2, 0.1, -0.3]);
    opt.dispose();
  });
});

test("SGD with momentum and Nesterov", () => {
  const ref = (momentum: number, nesterov: boolean, lr = 0.1, wd = 0.01) => {
    const p = [...p0];
    const buf = p.map(() => 0);
    for (const graw of grads)
      for (let i = 0; i < p.length; ++i) {
        const g = graw[i]! + wd * p[i]!;
        buf[i] = momentum * buf[i]! + g;
        p[i] = p[i]! - lr * (nesterov ? g + momentum * buf[i]! : buf[i]!);
      }
    return p;
  };
  close(run((ps) => new fd.SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.01 })), ref(0.9, false));
  close(run((ps) => new fd.SGD(ps, { lr: 0.1, momentum: 0.9, weightDecay: 0.01, nesterov: true })), ref(0.9, true));
  close(run((ps) => new fd.SGD(ps, { lr: 0.1, weightDecay: 0.01 })), ref(0, false));
});

test("a parameter without a gradient is left alone", () => {
  fd.scope(() => {
    const a = fd.tensor([1, 2]).requireGrad();
    const b = fd.tensor([3, 4]).requireGrad();
    const opt = new fd.Adam([a, b], { lr: 0.1 });
    a.grad = fd.tensor([1, 1]);
    opt.step();
    expect(Array.from(b.dataSync())).toEqual([3, 4]);
    expect(Array.from(a.dataSync())[0]).toBeCloseTo(0.9, 6);
    opt.dispose();
  });
});

test("EMA: fixed decay and half-life", () => {
  fd.scope(() => {
    const p = fd.tensor([0, 10]);
    const ema = new fd.EMA([p], { decay: 0.9 });
    fd.copy(p, fd.tensor([1, 0]));
    ema.update();
    close(Array.from(ema.averages[0]!.dataSync()), [0.1, 9]);
    const half = new fd.EMA([p], { halfLife: 10 });
    expect(half.decay()).toBeCloseTo(Math.pow(0.5, 0.1), 12);
    fd.copy(p, fd.tensor([5, 5]));
    for (let i = 0; i < 10; ++i) half.update();
    // After one half-life the average moved half-way from [1, 0] to [5, 5].
    close(Array.from(half.averages[0]!.dataSync()), [3, 2.5], 1e-5);
    half.copyTo();
    close(Array.from(p.dataSync()), [3, 2.5], 1e-5);
    ema.dispose();
    half.dispose();
  });
});
