// fastdiff's public surface.
export { FastdiffError, type ErrorCode } from "./errors";
export { Tensor, type Shape, type Operand, type Device, type DeviceName } from "./tensor";
export * from "./ops";
export { noGrad, isGradEnabled } from "./autograd";
export { scope, keep, memory, emptyCache, synchronize } from "./memory";
export { Generator, manualSeed, type Seed, type RandomOptions } from "./random";
export { Adam, AdamW, SGD, EMA, type AdamOptions, type SGDOptions, type EMAOptions, type StepStats } from "./optim";
export {
  devices, getNumThreads, setNumThreads, getIsa, setIsa, setProfiling, profile, flopsIssued, setMatmulPrecision, getMatmulPrecision, setConvAlgorithm, getConvAlgorithm, setReadWait, getReadWait,
  type Devices, type Isa, type ReadWait,
} from "./device";
export type { MemoryInfo, CpuInfo, CudaInfo, OpTiming, MatmulPrecision, ConvAlgorithm } from "./native";
export {
  parseSafetensors, readSafetensors, readSafetensorsSync, serializeSafetensors, writeSafetensors, writeSafetensorsSync,
  checkTensorSet, type SafetensorsContents, type WriteSafetensorsOptions, type SafetensorsWriteDtype,
} from "./io/safetensors";
export { writeFileAtomic, writeFileAtomicSync } from "./io/atomic";

// Sampling: noise schedules (DDPM tables, spacings, Karras, cosine logSNR, flow shift) and σ-space parameterizations.
export * from "./sampling";

// Networks (UNet, DiT, MLP), the σ-space denoiser contract, network files.
export * from "./models";

// Training: the EDM / DDPM denoising losses and the training loop with checkpoints.
export * from "./train";

// Distillation: Student, SiD (and DMD on the same loop).
export * from "./distill";

// Data: MNIST, image folders, toy 2-D sets with exact denoisers; seeded batching; PNG grids.
export * from "./data";
export { encodePng, decodePng, imageGrid, saveImageGrid, saveImageGridSync, tensorToImages, scatterPlot, type RawImage } from "./io/png";
export { linePlot, niceTicks, type PlotSeries, type LinePlotOptions } from "./io/plot";

// Evaluation: FD / precision / recall on the shipped MNIST feature network, toy-data distances.
export {
  evaluate, FeatureNet, trainFeatureNet, DEFAULT_FEATURE_NET, featureStats, frechetFromStats, frechetDistance, precisionRecall,
  mmd2, slicedWasserstein, modeCoverage, classifierAccuracy, perClassCoverage,
  type Evaluation, type EvaluateOptions, type FeatureStats, type FeatureNetTrainOptions,
} from "./eval";
