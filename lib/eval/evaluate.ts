// evaluate(samples, reference): the numbers behind every quality claim. Images are compared in the MNIST
// feature network's space (FD, precision/recall) and through its predictions (accuracy of class-conditional
// samples, per-class coverage); vectors (toy 2-D data) directly (MMD, sliced Wasserstein, mode coverage).
import type { GaussianMixture } from "../data/gaussian-mixture";
import { argumentError } from "../errors";
import type { Tensor } from "../tensor";
import { classifierAccuracy, perClassCoverage } from "./classes";
import { FEATURE_DIM, FeatureNet } from "./feature-net";
import { featureStats, frechetFromStats } from "./frechet";
import { precisionRecall } from "./manifold";
import { mmd2, modeCoverage, slicedWasserstein } from "./toy";

export type ImageMetric = "fd" | "precision" | "recall" | "accuracy" | "coverage";
export type ToyMetric = "mmd" | "sw" | "modes";

export interface EvaluateOptions {
  metrics?: (ImageMetric | ToyMetric)[];
  /** The class each sample was asked for (accuracy). */
  classLabels?: ArrayLike<number>;
  /** Feature network for images [the shipped MNIST one]. */
  featureNet?: FeatureNet;
  /** k of the k-NN manifolds [3]. */
  k?: number;
  /** Toy data: the mixture whose modes are counted. */
  modes?: GaussianMixture;
}

export interface Evaluation {
  n: number;
  referenceN: number;
  /** Fréchet distance in feature space (lower is better). */
  fd?: number;
  precision?: number;
  recall?: number;
  /** Fraction of samples the classifier assigns to the requested class. */
  accuracy?: number;
  /** Classes present among the samples' predictions / 10, and the normalized entropy of that histogram. */
  classCoverage?: number;
  classEntropy?: number;
  mmd?: number;
  sw?: number;
  modesCovered?: number;
  modesTotal?: number;
  offModeFraction?: number;
}

/** Metrics of `samples` against `reference`: images [N, 1, 28|32, 28|32] or vectors [N, D]. */
export async function evaluate(samples: Tensor, reference: Tensor, options: EvaluateOptions = {}): Promise<Evaluation> {
  const op = "evaluate";
  if (samples.rank !== reference.rank || samples.shape.slice(1).join() !== reference.shape.slice(1).join())
    throw argumentError(op, `samples ${JSON.stringify(samples.shape)} and reference ${JSON.stringify(reference.shape)} must have the same sample shape`);
  const out: Evaluation = { n: samples.shape[0]!, referenceN: reference.shape[0]! };
  if (samples.rank === 2) {
    const metrics = new Set(options.metrics ?? (["mmd", "sw", ...(options.modes ? ["modes"] : [])] as ToyMetric[]));
    if (metrics.has("mmd")) out.mmd = mmd2(samples, reference);
    if (metrics.has("sw")) out.sw = slicedWasserstein(samples, reference);
    if (metrics.has("modes")) {
      if (!options.modes) throw argumentError(op, "metric 'modes' needs options.modes (the target mixture)");
      const m = options.modes;
      const c = modeCoverage(samples, m.means, { std: Math.max(...m.stds) });
      out.modesCovered = c.covered;
      out.modesTotal = c.total;
      out.offModeFraction = c.offModeFraction;
    }
    return out;
  }
  const metrics = new Set(options.metrics ?? (["fd", "precision", "recall", "coverage", ...(options.classLabels ? ["accuracy"] : [])] as ImageMetric[]));
  const net = options.featureNet ?? (await FeatureNet.load());
  try {
    const s = net.embed(samples);
    const r = net.embed(reference);
    const matrix = (e: typeof s) => ({ data: e.features, rows: e.n, cols: FEATURE_DIM });
    if (metrics.has("fd")) out.fd = frechetFromStats(featureStats(matrix(s)), featureStats(matrix(r)));
    if (metrics.has("precision") || metrics.has("recall")) {
      const pr = precisionRecall(matrix(r), matrix(s), { k: options.k ?? 3 });
      out.precision = pr.precision;
      out.recall = pr.recall;
    }
    if (metrics.has("accuracy")) {
      if (!options.classLabels) throw argumentError(op, "metric 'accuracy' needs options.classLabels (the class each sample was asked for)");
      out.accuracy = classifierAccuracy(s.predictions, options.classLabels);
    }
    if (metrics.has("coverage")) {
      const c = perClassCoverage(s.predictions, 10);
      out.classCoverage = c.fraction;
      out.classEntropy = c.normalizedEntropy;
    }
  } finally {
    if (!options.featureNet) net.dispose();
  }
  return out;
}
