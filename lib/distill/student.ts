// A distilled few-step generator (DESIGN.md §6): a network initialized from its teacher, the σ of each of its
// steps, and where it came from. SiD's student is one step at σ_init: x0 = G(σ_init·z; σ_init, c). Several
// steps either re-noise the estimate with fresh noise (DMD2's multi-step sampling) or follow the probability-flow
// ODE (DDIM / Euler, TDM and progressive distillation).
import * as fs from "node:fs";
import * as path from "node:path";
import { noGrad } from "../autograd";
import { argumentError, FastdiffError } from "../errors";
import { writeFileAtomic } from "../io/atomic";
import { readSafetensorsSync } from "../io/safetensors";
import { leaveScopes, scope } from "../memory";
import { buildNetwork, readNetworkFiles, type SaveOptions } from "../models/format";
import { Network, networkClass } from "../models/network";
import { NetworkDenoiser } from "../models/network-denoiser";
import { fromSchedulerConfig, parameterization, toSchedulerConfig } from "../models/parameterizations";
import * as ops from "../ops";
import { Generator, type Seed } from "../random";
import { modelHash } from "../sampling/cache-profile";
import type { Tensor } from "../tensor";

export const STUDENT_META = "fastdiff_student";
const STUDENT_FILE = "student.json";

/** The σ of each generation step, and how one step leads to the next. */
export interface StudentSchedule {
  /** σ_0 > σ_1 > … > 0: the noise level of each network evaluation (SiD: [2.5]). */
  sigmas: number[];
  /** Between steps: "renoise" (x̂_{k+1} = x0_k + σ_{k+1}·z, fresh z) or "ode" (the Euler / DDIM step). */
  between: "renoise" | "ode";
}

/** Where a student came from and how good it is. */
export interface StudentInfo {
  method: string;
  teacher: { kind: string; sha256: string; source?: string };
  iterations: number;
  images: number;
  /** Measured quality (FD, accuracy, …) when someone measured it. */
  quality?: Record<string, number>;
  /** The options of the run that made it. */
  options?: Record<string, unknown>;
  created?: string;
}

export interface GenerateOptions {
  seed?: Seed;
  generator?: Generator;
  classLabels?: ArrayLike<number> | null;
  /** Unit noise for the first step [n, ...sampleShape] (the generator still draws the later steps' noise). */
  noise?: Tensor;
  /** Samples per network call (bounded memory). Default 250. */
  batch?: number;
}

export class Student {
  constructor(readonly denoiser: NetworkDenoiser, readonly schedule: StudentSchedule, public info: StudentInfo) {
    const s = schedule.sigmas;
    if (!Array.isArray(s) || s.length < 1 || s.some((v, i) => !(Number.isFinite(v) && v > 0 && (i === 0 || v < s[i - 1]!)))) {
      throw argumentError("Student", `schedule.sigmas must be positive and strictly decreasing, got ${JSON.stringify(s)}`);
    }
    if (schedule.between !== "renoise" && schedule.between !== "ode") throw argumentError("Student", `schedule.between must be "renoise" or "ode"`);
  }

  /** A student initialized from a copy of the teacher's weights (the teacher is untouched). */
  static fromTeacher(teacher: NetworkDenoiser, schedule: StudentSchedule, info: Omit<StudentInfo, "teacher" | "iterations" | "images">): Student {
    const network = cloneNetwork(teacher.network);
    const denoiser = new NetworkDenoiser(network, teacher.parameterization, { sampleShape: teacher.sampleShape });
    return new Student(denoiser, { sigmas: [...schedule.sigmas], between: schedule.between },
      { ...info, teacher: { kind: teacher.network.kind, sha256: modelHash(teacher.network) }, iterations: 0, images: 0 });
  }

  get network(): Network {
    return this.denoiser.network;
  }
  /** Network evaluations per sample. */
  get steps(): number {
    return this.schedule.sigmas.length;
  }
  get sampleShape(): readonly number[] {
    return this.denoiser.sampleShape;
  }

  /** x0 from unit noise z [B, ...]: one network evaluation per step (differentiable when gradients are on). */
  generateFrom(z: Tensor, classLabels: ArrayLike<number> | null, generator?: Generator): Tensor {
    const { sigmas, between } = this.schedule;
    return scope(() => {
      let x = ops.mul(z, sigmas[0]!);
      let x0 = this.denoiser.denoise(x, sigmas[0]!, { classLabels });
      for (let k = 1; k < sigmas.length; ++k) {
        const s = sigmas[k]!;
        x = between === "renoise"
          ? ops.add(x0, ops.mul(ops.randn(z.shape, generator ? { generator } : {}), s))
          : ops.add(x0, ops.mul(ops.sub(x, x0), s / sigmas[k - 1]!));
        x0 = this.denoiser.denoise(x, s, { classLabels });
      }
      return x0;
    });
  }

  /** n samples (no gradients), in batches. */
  async generate(n: number, options: GenerateOptions = {}): Promise<Tensor> {
    const op = "Student.generate";
    if (!(Number.isInteger(n) && n >= 1)) throw argumentError(op, `n must be a positive integer, got ${String(n)}`);
    if (options.seed !== undefined && options.generator) throw argumentError(op, "give seed or generator, not both");
    const generator = options.generator ?? new Generator(options.seed ?? 0);
    const labels = options.classLabels ?? null;
    if (this.denoiser.numClasses > 0 && !labels) throw argumentError(op, `this student is class-conditional (${this.denoiser.numClasses} classes): pass classLabels`);
    if (labels && labels.length !== n) throw argumentError(op, `${labels.length} class labels for ${n} samples`);
    const shape = [n, ...this.sampleShape];
    if (options.noise && options.noise.shape.join() !== shape.join()) {
      throw new FastdiffError("ERR_SHAPE", `${op}: noise has shape ${JSON.stringify(options.noise.shape)}, expected ${JSON.stringify(shape)}`);
    }
    const batch = options.batch ?? 250;
    const parts: Tensor[] = [];
    try {
      for (let lo = 0; lo < n; lo += batch) {
        const hi = Math.min(n, lo + batch);
        const part = noGrad(() => scope(() => {
          const z = options.noise ? ops.slice(options.noise, 0, lo, hi) : ops.randn([hi - lo, ...this.sampleShape], { generator });
          return this.generateFrom(z, labels ? Array.from(labels).slice(lo, hi) : null, generator);
        }));
        leaveScopes(part);
        parts.push(part);
        await part.data(); // let the event loop run between batches
      }
      return parts.length === 1 ? parts[0]! : scope(() => ops.concat(parts, 0));
    } finally {
      if (parts.length > 1) for (const t of parts) t.dispose();
    }
  }

  /** Saves the network (diffusers folder or one .safetensors file) with the schedule and info beside it. */
  async save(target: string, options: Pick<SaveOptions, "dtype" | "format"> = {}): Promise<void> {
    const meta = JSON.stringify({ schedule: this.schedule, info: this.info });
    const scheduler = toSchedulerConfig(this.denoiser.parameterization);
    await this.network.save(target, { ...options, scheduler, metadata: { [STUDENT_META]: meta } });
    if (!isSingleFile(target, options.format)) await writeFileAtomic(path.join(target, STUDENT_FILE), meta + "\n");
  }

  /** Whether `source` holds a student (a folder with student.json, or a single file with the student metadata). */
  static isStudent(source: string): boolean {
    if (fs.existsSync(path.join(source, STUDENT_FILE))) return true;
    if (!source.endsWith(".safetensors") || !fs.existsSync(source)) return false;
    try {
      const { tensors, metadata } = readSafetensorsSync(source);
      for (const t of tensors.values()) t.dispose();
      return metadata[STUDENT_META] !== undefined;
    } catch {
      return false; // unreadable: the network loader that follows names the problem
    }
  }

  static async load(source: string): Promise<Student> {
    const files = await readNetworkFiles(source);
    let meta = files.metadata[STUDENT_META];
    if (meta === undefined) {
      const file = path.join(source, STUDENT_FILE);
      if (fs.existsSync(file)) meta = await fs.promises.readFile(file, "utf8");
    }
    if (meta === undefined) {
      for (const t of files.weights.values()) t.dispose();
      throw new FastdiffError("ERR_FORMAT", `${source}: not a student (no ${STUDENT_META} metadata or ${STUDENT_FILE})`);
    }
    let parsed: { schedule: StudentSchedule; info: StudentInfo };
    try {
      parsed = JSON.parse(meta) as typeof parsed;
      if (!parsed?.schedule || !parsed.info) throw new Error("schedule or info missing");
    } catch (e) {
      for (const t of files.weights.values()) t.dispose();
      throw new FastdiffError("ERR_FORMAT", `${source}: damaged student metadata (${(e as Error).message})`);
    }
    const p = files.scheduler ? fromSchedulerConfig(files.scheduler) : parameterization({ type: "edm" });
    return new Student(new NetworkDenoiser(buildNetwork(files), p), parsed.schedule, parsed.info);
  }

  dispose(): void {
    this.network.dispose();
  }
}

/** A new network with the same class, config and (copied) weights. */
export function cloneNetwork(source: Network): Network {
  const weights = noGrad(() => new Map(source.namedParameters().map(([n, t]) => [n, t.clone()] as [string, Tensor])));
  try {
    return Network.build(networkClass(source.kind), { ...source.config }, weights);
  } finally {
    for (const t of weights.values()) t.dispose();
  }
}


function isSingleFile(p: string, format?: "diffusers" | "safetensors"): boolean {
  return format ? format === "safetensors" : p.endsWith(".safetensors");
}
