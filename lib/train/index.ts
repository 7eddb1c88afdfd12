export { trainDenoiser, type TrainOptions, type TrainProgress, type TrainResult } from "./train-denoiser";
export { edmNoiseLevels, ddpmNoiseLevels, denoisingLoss, type LossKind, type EdmLossOptions, type NoiseLevels } from "./losses";
export { saveCheckpoint, loadCheckpoint, hasCheckpoint, checkpointPath, CHECKPOINT_FILE, type TrainState } from "./checkpoint";
export { modelPreset, MODEL_PRESETS, type ModelPreset, type PresetTarget } from "./presets";
