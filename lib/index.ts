// fastdiff's public surface.
export { FastdiffError, type ErrorCode } from "./errors";
export { Tensor, type Shape, type Operand } from "./tensor";
export * from "./ops";
export { noGrad, isGradEnabled } from "./autograd";
export { scope, keep, memory, emptyCache, synchronize } from "./memory";
export { Generator, manualSeed, type Seed, type RandomOptions } from "./random";
export { Adam, AdamW, SGD, EMA, type AdamOptions, type SGDOptions, type EMAOptions, type StepStats } from "./optim";
export { devices, getNumThreads, setNumThreads, getIsa, setIsa, setProfiling, profile, type Devices, type Isa } from "./device";
export type { MemoryInfo, CpuInfo, CudaInfo, OpTiming } from "./native";
export {
  parseSafetensors, readSafetensors, readSafetensorsSync, serializeSafetensors, writeSafetensors, writeSafetensorsSync,
  checkTensorSet, type SafetensorsContents, type WriteSafetensorsOptions, type SafetensorsWriteDtype,
} from "./io/safetensors";
export { writeFileAtomic, writeFileAtomicSync } from "./io/atomic";

// Sampling: noise schedules (DDPM tables, spacings, Karras, cosine logSNR, flow shift) and σ-space parameterizations.
export * from "./sampling";

// Networks (UNet, DiT, MLP), the σ-space denoiser contract, network files.
export * from "./models";
