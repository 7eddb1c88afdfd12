// MLP toy denoiser: shapes, class conditioning, points, dropout, gradients against finite differences, and
// a few Adam steps that fit a 2-D mixture.
import * as fd from "../../lib";
import { MLP, normalizeMLPConfig } from "../../lib/models/mlp";
import { gradcheck, hostRandom, randomTensor, bitEqual, expectCode } from "../helpers";


describe("MLP", () => {
  test("config: defaults, unknown keys ignored, bad values named", () => {
    expect(normalizeMLPConfig({ foo: 3 })).toEqual({
      in_features: 2, hidden_size: 128, num_layers: 3, time_embed_dim: 128, num_classes: 0, dropout: 0,
    });
    expectCode(() => normalizeMLPConfig({ hidden_size: 0 }), "ERR_ARGUMENT", /'hidden_size'/);
    expectCode(() => normalizeMLPConfig({ num_classes: -1 }), "ERR_ARGUMENT", /'num_classes'/);
    expectCode(() => normalizeMLPConfig({ in_features: 1.5 }), "ERR_ARGUMENT", /'in_features'/);
    expectCode(() => normalizeMLPConfig({ dropout: 1 }), "ERR_ARGUMENT", /'dropout'/);
  });

  test("parameters, points and feature shapes", () => {
    const net = MLP.create({ in_features: 3, hidden_size: 16, num_layers: 2, time_embed_dim: 8, num_classes: 4 }, { seed: 1 });
    expect(net.parameterInfo()).toEqual([
      { name: "time_embedding.linear_1.weight", shape: [8, 8] }, { name: "time_embedding.linear_1.bias", shape: [8] },
      { name: "time_embedding.linear_2.weight", shape: [8, 8] }, { name: "time_embedding.linear_2.bias", shape: [8] },
      { name: "class_embedding.weight", shape: [4, 8] },
      { name: "in_proj.weight", shape: [16, 3] }, { name: "in_proj.bias", shape: [16] },
      { name: "layers.0.linear.weight", shape: [16, 16] }, { name: "layers.0.linear.bias", shape: [16] },
      { name: "layers.0.emb_proj.weight", shape: [16, 8] }, { name: "layers.0.emb_proj.bias", shape: [16] },
      { name: "layers.1.linear.weight", shape: [16, 16] }, { name: "layers.1.linear.bias", shape: [16] },
      { name: "layers.1.emb_proj.weight", shape: [16, 8] }, { name: "layers.1.emb_proj.bias", shape: [16] },
      { name: "out_proj.weight", shape: [3, 16] }, { name: "out_proj.bias", shape: [3] },
    ]);
    expect(net.blocks()).toEqual(["time_embedding", "layers.0", "layers.1", "output"]);
    expect(net.reusePoints()).toEqual([]);
    expect(net.numClasses).toBe(4);
    expect(net.nullClass).toBeUndefined();
    fd.scope(() => {
      const x = randomTensor([5, 3], 2);
      const { output, features } = net.forwardFeatures(x, [0.1, 0.2, 0.3, 0.4, 0.5], { classLabels: [0, 1, 2, 3, 0], features: net.blocks() });
      expect(output!.shape).toEqual([5, 3]);
      expect(features.get("time_embedding")!.shape).toEqual([5, 8]);
      expect(features.get("layers.1")!.shape).toEqual([5, 16]);
      expect(bitEqual(features.get("output")!, output!)).toBe(true);
      const early = net.forwardFeatures(x, 0.3, { classLabels: [0, 1, 2, 3, 0], features: ["layers.0"], earlyExit: true });
      expect(early.output).toBeNull();
    });
    net.dispose();
  });

  test("shapes: [B, D] and [B, ...] with D values per sample; errors name the shapes", () => {
    const net = MLP.create({ in_features: 16, hidden_size: 8, num_layers: 1 }, { seed: 2 });
    fd.scope(() => {
      expect(net.forward(randomTensor([4, 16], 1), 0.5).shape).toEqual([4, 16]);
      const img = randomTensor([2, 1, 4, 4], 1);
      const out = net.forward(img, [0.1, 2]);
      expect(out.shape).toEqual([2, 1, 4, 4]);
      expect(bitEqual(fd.reshape(out, [2, 16]), net.forward(fd.reshape(img, [2, 16]), [0.1, 2]))).toBe(true);
      expectCode(() => net.forward(fd.zeros([4, 15]), 0.5), "ERR_SHAPE", /\[B, 16\].*\[4, 15\]/);
      expectCode(() => net.forward(fd.zeros([16]), 0.5), "ERR_SHAPE", /\[16\]/);
      expectCode(() => net.forward(fd.zeros([4, 16]), 0.5, { classLabels: [0, 0, 0, 0] }), "ERR_ARGUMENT", /no class embedding/);
    });
    net.dispose();
  });

  test("class conditioning: labels change the output, per sample; missing labels are refused", () => {
    const net = MLP.create({ num_classes: 3, hidden_size: 32, num_layers: 2 }, { seed: 3 });
    fd.scope(() => {
      const x = fd.concat([randomTensor([1, 2], 4), randomTensor([1, 2], 4)], 0);
      const out = net.forward(x, 0.7, { classLabels: [0, 2] }).dataSync();
      expect(out[0]).not.toBe(out[2]);
      const same = net.forward(x, 0.7, { classLabels: [2, 2] }).dataSync();
      expect([same[0], same[1]]).toEqual([same[2], same[3]]);
      expect([out[2], out[3]]).toEqual([same[2], same[3]]);
      expectCode(() => net.forward(x, 0.7), "ERR_ARGUMENT", /classLabels/);
      expectCode(() => net.forward(x, 0.7, { classLabels: [0, 3] }), "ERR_ARGUMENT", /class label 3/);
    });
    net.dispose();
  });

  test("dropout is active in train mode only, and seeded", () => {
    const net = MLP.create({ hidden_size: 32, num_layers: 2, dropout: 0.3 }, { seed: 4 });
    fd.scope(() => {
      const x = randomTensor([8, 2], 5);
      const evalOut = net.forward(x, 0.2);
      net.train().manualSeed(9);
      const a = net.forward(x, 0.2);
      net.manualSeed(9);
      expect(bitEqual(net.forward(x, 0.2), a)).toBe(true);
      expect(bitEqual(a, evalOut)).toBe(false);
      expect(bitEqual(net.eval().forward(x, 0.2), evalOut)).toBe(true);
    });
    net.dispose();
  });

  test("gradients w.r.t. the input, the timestep and every parameter match central differences", () => {
    const net = MLP.create({ in_features: 3, hidden_size: 16, num_layers: 2, time_embed_dim: 8, num_classes: 2 }, { seed: 5 });
    fd.scope(() => {
      const labels = [1, 0, 1, 1];
      const tVals = fd.tensor([0.3, -0.5, 1.2, 0.05], [4]);
      expect(gradcheck((x, t) => net.forward(x, t!, { classLabels: labels }), [randomTensor([4, 3], 6), tVals], { h: 1e-2, directions: 4 }))
        .toBeLessThan(1e-2);
      const x = randomTensor([4, 3], 7);
      const R = randomTensor([4, 3], 8);
      for (const p of net.parameters()) p.grad = null; // gradcheck's backward accumulated into them
      fd.sum(fd.mul(net.forward(x, tVals, { classLabels: labels }), R)).backward();
      const loss = (): number => fd.noGrad(() => fd.sum(fd.mul(net.forward(x, tVals, { classLabels: labels }), R)).item());
      const rand = hostRandom(3);
      const h = 1e-2;
      for (const [name, p] of net.namedParameters()) {
        const grad = p.grad!.dataSync();
        const base = p.dataSync().slice();
        const dir = Float32Array.from(base, () => 2 * rand() - 1);
        const set = (s: number) => fd.copy(p, fd.tensor(base.map((b, i) => b + s * h * dir[i]!), p.shape));
        set(1);
        const up = loss();
        set(-1);
        const down = loss();
        fd.copy(p, fd.tensor(base, p.shape));
        let analytic = 0;
        for (let i = 0; i < grad.length; ++i) analytic += grad[i]! * dir[i]!;
        const err = Math.abs((up - down) / (2 * h) - analytic) / Math.max(Math.abs(analytic), 1e-2);
        expect([name, err < 1e-2]).toEqual([name, true]);
      }
    });
    net.dispose();
  });

  test("a few Adam steps on a 2-D mixture reduce the denoising loss", () => {
    const net = MLP.create({ hidden_size: 64, num_layers: 3, time_embed_dim: 32 }, { seed: 6 });
    const opt = new fd.Adam(net.parameters(), { lr: 3e-3 });
    const rand = hostRandom(11);
    const gauss = () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
    const B = 256;
    // Fixed evaluation batch: x̂ = x0 + σ·n over σ ∈ [0.05, 2], the network predicts x0 from (x̂, ln σ / 4).
    const batch = () => {
      const x0 = new Float32Array(B * 2);
      const xh = new Float32Array(B * 2);
      const c = new Float32Array(B);
      for (let i = 0; i < B; ++i) {
        const s = 0.05 * 40 ** rand();
        c[i] = Math.log(s) / 4;
        for (let d = 0; d < 2; ++d) {
          x0[2 * i + d] = (rand() < 0.5 ? -1 : 1) + 0.1 * gauss();
          xh[2 * i + d] = x0[2 * i + d]! + s * gauss();
        }
      }
      return { x0: fd.tensor(x0, [B, 2]), xh: fd.tensor(xh, [B, 2]), c: fd.tensor(c, [B]) };
    };
    const evalBatch = batch();
    const evalLoss = () => fd.scope(() => fd.noGrad(() => fd.mseLoss(net.forward(evalBatch.xh, evalBatch.c), evalBatch.x0).item()));
    const before = evalLoss();
    for (let step = 0; step < 150; ++step) {
      fd.scope(() => {
        const b = batch();
        opt.zeroGrad();
        fd.mseLoss(net.forward(b.xh, b.c), b.x0).backward();
        opt.step();
      });
    }
    const after = evalLoss();
    // The loss falls well below the start (≈ 1.46) and below that of the best denoiser affine in x̂ for each σ
    // (E[v·σ²/(v + σ²)] ≈ 0.219 with v = 1.01): the network has learned the non-linear mixture posterior (≈ 0.16).
    expect(after).toBeLessThan(0.5 * before);
    expect(after).toBeLessThan(0.2);
    net.dispose();
  });
});
