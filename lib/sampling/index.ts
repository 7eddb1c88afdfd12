// Sampling: noise schedules, σ-space parameterizations, solver steps and the sample() loop.
export * from "./schedules";
export * from "./parameterization";
export * from "./solvers";
export * from "./sample";
export * from "./feature-reuse";
export * from "./cache-profile";
export * from "./auto-fr";
