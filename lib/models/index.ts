// Networks, the σ-space denoiser contract and its wrappers, network files.
export { Denoiser, type DenoiseOptions, type SigmaInput, type SamplingDefaults } from "./denoiser";
export {
  Network, FeatureCache, registerNetwork, type NetworkConfig, type NetworkClass, type ForwardOptions, type FeatureOptions,
  type ParameterInfo, type PointSelection,
} from "./network";
export { PAPER_SCORE_MIXING, type ReusePlan, type ScoreMixing, type CacheStep } from "./feature-cache";
export { NetworkDenoiser, type NetworkDenoiserOptions, type NetworkDenoiseOptions, type ReuseOptions } from "./network-denoiser";
export {
  parameterization, fromSchedulerConfig, toSchedulerConfig, Coefficients, type Parameterization, type ParameterizationInput,
  type EdmParameterization, type DdpmParameterization, type FlowParameterization, type VpParameterization, type VeParameterization,
} from "./parameterizations";
export { loadNetwork, saveNetwork, readNetworkFiles, buildNetwork, type SaveOptions, type LoadedFiles } from "./format";
export { UNet, UNetClass, normalizeUNetConfig, type UNetConfig } from "./unet";
export { DiT, DiTClass, normalizeDiTConfig, type DiTConfig } from "./dit";
export { MLP, MLPClass, normalizeMLPConfig, type MLPConfig } from "./mlp";
