// Evaluation metrics: Fréchet distance, k-NN precision/recall, toy-data distances, class coverage.
export {
  asMatrix, mean, covariance, trace, matmul, symmetricEigen, symmetricEigenvalues, sqrtm,
  type Matrix, type MatrixView, type MatrixLike,
} from "./linalg";
export { featureStats, frechetFromStats, frechetDistance, type FeatureStats } from "./frechet";
export { precisionRecall, kNearestRadii, type ManifoldMetrics } from "./manifold";
export { mmd2, medianHeuristic, slicedWasserstein, modeCoverage, type ModeCoverage } from "./toy";
export { classifierAccuracy, perClassCoverage, labelsOf, type ClassOutputs, type ClassCoverage } from "./classes";
export { FeatureNet, trainFeatureNet, DEFAULT_FEATURE_NET, FEATURE_DIM, type FeatureNetOutput, type FeatureNetTrainOptions } from "./feature-net";
export { evaluate, type Evaluation, type EvaluateOptions, type ImageMetric, type ToyMetric } from "./evaluate";
