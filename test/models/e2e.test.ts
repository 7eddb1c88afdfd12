// The whole diffusers DDIMPipeline on the golden UNet (golden/README.md "End-to-end"): load the diffusers
// folder as a denoiser with the pipeline's scheduler config, sample 10 DDIM steps from the recorded noise and
// match every UNet call and the final images.
import * as fs from "node:fs";
import * as path from "node:path";
import * as fd from "../../lib";
import { goldenFile, readSafetensors, worstRatio } from "../helpers";

describe("e2e ddim10_unet2d_c1_s28", () => {
  const traj = goldenFile(path.join("e2e", "ddim10_unet2d_c1_s28", "trajectory.safetensors"));
  const model = goldenFile(path.join("models", "unet2d_c1_s28", "config.json"));
  const g = traj ? readSafetensors(traj).tensors : null;
  const get = (k: string) => g!.get(k)!;

  test("every UNet call of the pipeline (recorded inputs) to 1e-4", async () => {
    if (!g || !model) return;
    const net = await fd.UNet.load(path.dirname(model));
    const input = get("unet_input");
    const output = get("unet_output");
    const timesteps = Array.from(get("timesteps").data);
    const per = input.data.length / timesteps.length;
    fd.noGrad(() => {
      timesteps.forEach((t, i) => {
        const x = fd.tensor(Float32Array.from(input.data.subarray(i * per, (i + 1) * per)), input.shape.slice(1));
        const out = net.forward(x, t).dataSync();
        expect(worstRatio(out, output.data.subarray(i * per, (i + 1) * per), 1e-4, 1e-4)).toBeLessThanOrEqual(1);
      });
    });
    net.dispose();
  });

  // Tolerance on the final images (in [0, 1]) per convolution algorithm: the direct conv is the pipeline's own
  // arithmetic up to float32 rounding (measured 2.8e-4); "auto" takes Winograd F(4×4, 3×3) for most convs,
  // whose rounding (≤ 3e-5 of Σ|w||x| per conv, test/ops/winograd.test.ts) ten steps amplify to 7.6e-4
  // (F(4×4) everywhere: 1.05e-3) — each single UNet call still matches to 1e-4 above.
  test.each([["direct", 5e-4], ["auto", 1.5e-3]] as const)(
    "sample(): DDIM η=0 with clip_sample from the recorded noise gives the pipeline's images (%s convs, atol %s)",
    async (algorithm, atol) => {
      if (!g || !model) return;
      fd.setConvAlgorithm(algorithm);
      try {
        const sched = JSON.parse(fs.readFileSync(path.join(path.dirname(traj!), "scheduler_config.json"), "utf8"));
        const den = new fd.NetworkDenoiser(await fd.UNet.load(path.dirname(model)), fd.fromSchedulerConfig(sched));
        expect(den.schedule(10).timesteps).toEqual(Array.from(get("timesteps").data));
        const noise = get("initial_noise");
        const seen: number[] = [];
        const { samples, nfe } = await fd.sampleWithStats(den, {
          noise: fd.tensor(Float32Array.from(noise.data), noise.shape), steps: 10, solver: "ddim", eta: 0,
          clipDenoised: sched.clip_sample ? sched.clip_sample_range : undefined,
          onProgress: (p) => seen.push(p.nfe),
        });
        expect(nfe).toBe(10);
        expect(seen).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        const images = Array.from(samples.dataSync(), (v) => Math.min(1, Math.max(0, v / 2 + 0.5)));
        expect(worstRatio(images, get("images_np_nhwc").data, atol, 0)).toBeLessThanOrEqual(1);
        den.network.dispose();
      } finally {
        fd.setConvAlgorithm("auto");
      }
    },
  );
});
