// Distillation: a teacher into a few-step Student (DESIGN.md §6). One file per method, on shared machinery.
export { Student, cloneNetwork, type StudentSchedule, type StudentInfo, type GenerateOptions } from "./student";
export { distillMatching, type MatchingOptions, type MatchingProgress, type MatchingResult, type MatchingMethod } from "./matching";
export { distillSiD, sidSigma, type SidOptions } from "./sid";
export { distillDMD, dmdGradient, dmdLoss, type DmdOptions } from "./dmd";
