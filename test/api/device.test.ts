// The device API wherever jest runs: a request for a CUDA device that is not there is a clear error, never a
// crash (cuda:99 exists on no machine; on CI no CUDA device exists at all), and the CUDA-only settings leave CPU
// results untouched. test/gpu/ covers the working device path on a GPU.
import * as fd from "../../lib";

const missing = "cuda:99" as const;

describe("devices", () => {
  test("cuda info says whether the backend is compiled and why no device is usable", () => {
    const { cuda } = fd.devices();
    expect(typeof cuda.compiled).toBe("boolean");
    if (!cuda.available) expect(cuda.reason).toMatch(/\S/);
    expect(Array.isArray(fd.memory().devices)).toBe(true);
  });

  test("CPU tensors report their device; to('cpu') returns the tensor itself", () => {
    const x = fd.randn([2, 3], { seed: 1 });
    expect(x.device).toBe("cpu");
    expect(x.to("cpu")).toBe(x);
    expect(fd.zeros([2], { device: "cpu" }).device).toBe("cpu");
  });

  test("asking for a CUDA device that is not there is ERR_DEVICE naming it", () => {
    const x = fd.ones([4]);
    const absent = fd.devices().cuda.available ? [] : [() => x.to("cuda"), () => fd.zeros([2], { device: "cuda" })];
    for (const make of [...absent, () => x.to(missing), () => fd.zeros([2], { device: missing }), () => fd.randn([3], { seed: 1, device: missing })]) {
      expect(make).toThrow(fd.FastdiffError);
      try {
        make();
      } catch (e) {
        expect((e as fd.FastdiffError).code).toBe("ERR_DEVICE");
        expect((e as Error).message).toMatch(/cuda:\d/);
      }
    }
  });

  test("Network.to() a missing device is ERR_DEVICE and leaves the network on the CPU, usable", () => {
    const net = fd.MLP.create({ in_features: 2, hidden_size: 8, num_layers: 1, time_embed_dim: 8 }, { seed: 1 });
    expect(() => net.to(missing)).toThrow(expect.objectContaining({ code: "ERR_DEVICE" }));
    expect(net.device).toBe("cpu");
    expect(net.forward(fd.ones([3, 2]), [1, 2, 3]).shape).toEqual([3, 2]);
  });

  test("an unknown device name is ERR_ARGUMENT", () => {
    expect(() => fd.zeros([2], { device: "gpu" as never })).toThrow(expect.objectContaining({ code: "ERR_ARGUMENT" }));
    expect(() => fd.ones([2]).to("cuda:x" as never)).toThrow(expect.objectContaining({ code: "ERR_ARGUMENT" }));
  });
});

describe("matmul precision", () => {
  afterEach(() => fd.setMatmulPrecision("high"));

  test("set/get round trip; default 'high'; bad values are ERR_ARGUMENT", () => {
    expect(fd.getMatmulPrecision()).toBe("high");
    for (const p of ["highest", "medium", "high"] as const) {
      fd.setMatmulPrecision(p);
      expect(fd.getMatmulPrecision()).toBe(p);
    }
    expect(() => fd.setMatmulPrecision("low" as never)).toThrow(expect.objectContaining({ code: "ERR_ARGUMENT" }));
  });

  // What each precision computes on the CPU: test/ops/bf16.test.ts.
});

describe("conv algorithm", () => {
  afterEach(() => fd.setConvAlgorithm("auto"));

  test("set/get round trip; default 'auto'; bad values are ERR_ARGUMENT", () => {
    expect(fd.getConvAlgorithm()).toBe("auto");
    for (const a of ["direct", "winograd", "auto"] as const) {
      fd.setConvAlgorithm(a);
      expect(fd.getConvAlgorithm()).toBe(a);
    }
    expect(() => fd.setConvAlgorithm("fft" as never)).toThrow(expect.objectContaining({ code: "ERR_ARGUMENT" }));
    expect(() => (fd.setConvAlgorithm as (a: unknown) => void)(3)).toThrow(expect.objectContaining({ code: "ERR_ARGUMENT" }));
  });

  // What each algorithm computes, and which one "auto" picks: test/ops/winograd.test.ts.
});
