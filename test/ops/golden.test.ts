// Every op against PyTorch float64 references (test/fixtures/golden-ops, copied
// from shared/golden/ops), forward and all input gradients, under every kernel ISA.
import * as path from "node:path";
import * as fd from "../../lib";
import { readSafetensors, relL2 } from "../helpers";

const dir = path.join(__dirname, "..", "fixtures", "golden-ops");
const manifest = require(path.join(dir, "manifest.json")) as {
  cases: { name: string; attrs: Record<string, unknown>; inputs: Record<string, number[]> }[];
};

type Inputs = Record<string, fd.Tensor>;
const OPS: Record<string, (x: Inputs, attrs: Record<string, any>) => fd.Tensor> = {
  linear: (x) => fd.linear(x.x!, x.w!, x.b!),
  matmul_batched: (x) => fd.matmul(x.a!, x.b!),
  conv2d_k3s1p1: (x, a) => fd.conv2d(x.x!, x.w!, x.b!, { stride: a.stride, padding: a.padding }),
  conv2d_k1s1p0: (x, a) => fd.conv2d(x.x!, x.w!, x.b!, { stride: a.stride, padding: a.padding }),
  conv2d_k3s2p1: (x, a) => fd.conv2d(x.x!, x.w!, x.b!, { stride: a.stride, padding: a.padding }),
  group_norm: (x, a) => fd.groupNorm(x.x!, a.groups, x.w!, x.b!, { eps: a.eps }),
  layer_norm: (x, a) => fd.layerNorm(x.x!, x.w!, x.b!, { eps: a.eps }),
  layer_norm_noaffine: (x, a) => fd.layerNorm(x.x!, null, null, { eps: a.eps }),
  silu: (x) => fd.silu(x.x!),
  gelu_tanh: (x) => fd.gelu(x.x!, { approximate: "tanh" }),
  gelu_erf: (x) => fd.gelu(x.x!, { approximate: "none" }),
  softmax_last: (x) => fd.softmax(x.x!, -1),
  attention: (x) => fd.attention(x.q!, x.k!, x.v!),
  attention_cross: (x) => fd.attention(x.q!, x.k!, x.v!),
  upsample_nearest2x: (x) => fd.upsampleNearest2d(x.x!, 2),
  avg_pool2x: (x) => fd.avgPool2d(x.x!, 2),
  bilinear_resize_16_to_24: (x) => fd.resize(x.x!, [24, 24], { mode: "bilinear" }),
  mse_mean: (x) => fd.mseLoss(x.a!, x.b!),
};

const isas = (["scalar", "avx2", "avx512"] as const).filter((isa) => {
  const best = fd.devices().cpu.bestIsa;
  return isa === "scalar" || isa === best || (isa === "avx2" && best === "avx512");
});

afterAll(() => fd.setIsa(fd.devices().cpu.bestIsa));

test("the manifest is fully covered", () => {
  expect(manifest.cases.map((c) => c.name).sort()).toEqual(Object.keys(OPS).sort());
});

describe.each(isas)("golden ops (%s kernels)", (isa) => {
  beforeAll(() => fd.setIsa(isa));

  test.each(manifest.cases.map((c) => [c.name, c] as const))("%s: forward ≤ 1e-5, gradients ≤ 1e-4 (rel. L2)", (_, c) => {
    fd.scope(() => {
      const file = readSafetensors(path.join(dir, `${c.name}.safetensors`));
      const get = (name: string) => {
        const t = file.tensors.get(name);
        if (!t) throw new Error(`${c.name}: missing ${name}`);
        return t;
      };
      const inputs: Inputs = {};
      for (const name of Object.keys(c.inputs)) {
        const t = get(`in.${name}`);
        inputs[name] = fd.tensor(Float32Array.from(t.data), t.shape).requireGrad();
      }
      const out = OPS[c.name]!(inputs, c.attrs);
      const ref = get("out");
      expect(out.shape).toEqual(ref.shape);
      expect(relL2(out.dataSync(), ref.data)).toBeLessThan(1e-5);

      const gy = get("gy");
      out.backward(fd.tensor(Float32Array.from(gy.data), gy.shape));
      for (const name of Object.keys(c.inputs)) {
        const g = inputs[name]!.grad;
        expect(g).not.toBeNull();
        const refGrad = get(`grad.${name}`);
        expect(relL2(g!.dataSync(), refGrad.data)).toBeLessThan(1e-4);
      }
    });
  });
});
