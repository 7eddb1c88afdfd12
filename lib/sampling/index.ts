// Sampling: noise schedules and σ-space parameterizations.
export * from "./schedules";
export * from "./parameterization";
