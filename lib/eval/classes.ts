// Class-conditional checks from a classifier run on generated samples: does the sampler produce the
// requested class, and does it produce every class (mode dropping shows as missing classes)?
import { argumentError } from "../errors";
import { asMatrix, dims, type MatrixLike } from "./linalg";

const { log } = Math;

/** Integer labels, or classifier outputs [n, C] (logits or probabilities; argmax taken). */
export type ClassOutputs = ArrayLike<number> | MatrixLike;

/** Labels from class ids or from per-class scores (argmax of each row; first index on ties). */
export function labelsOf(x: ClassOutputs, op = "labelsOf", name = "labels"): Int32Array {
  const flat = ArrayBuffer.isView(x) || (Array.isArray(x) && !Array.isArray(x[0]));
  const m = flat ? asMatrix({ data: x as ArrayLike<number>, rows: (x as ArrayLike<number>).length, cols: 1 }, op, name) : asMatrix(x as MatrixLike, op, name);
  const out = new Int32Array(m.rows);
  if (m.cols === 1) {
    for (let i = 0; i < m.rows; ++i) {
      const v = m.data[i]!;
      if (!(Number.isInteger(v) && v >= 0 && v < 2 ** 31)) throw argumentError(op, `${name}: label ${v} at ${i} is not a non-negative integer`);
      out[i] = v;
    }
    return out;
  }
  if (m.cols === 0) throw argumentError(op, `${name}: classifier outputs ${dims(m)} have no classes`);
  for (let i = 0; i < m.rows; ++i) {
    let best = 0;
    for (let c = 1, o = i * m.cols; c < m.cols; ++c) if (m.data[o + c]! > m.data[o + best]!) best = c;
    out[i] = best;
  }
  return out;
}

/** Fraction of samples whose predicted class equals the requested one (class-conditional accuracy, e.g. Ho & Salimans 2022 §4 use of a classifier). */
export function classifierAccuracy(predicted: ClassOutputs, requested: ClassOutputs): number {
  const p = labelsOf(predicted, "classifierAccuracy", "predicted");
  const r = labelsOf(requested, "classifierAccuracy", "requested");
  if (p.length !== r.length) throw argumentError("classifierAccuracy", `predicted has ${p.length} samples, requested ${r.length}`);
  if (p.length === 0) throw argumentError("classifierAccuracy", "no samples");
  let hits = 0;
  for (let i = 0; i < p.length; ++i) if (p[i] === r[i]) ++hits;
  return hits / p.length;
}

/** Class histogram of generated samples. */
export interface ClassCoverage {
  counts: number[];
  /** Classes with count ≥ max(1, minFraction·n). */
  present: number;
  /** present / numClasses. */
  fraction: number;
  /** Entropy of the histogram / ln(numClasses): 1 when uniform, 0 when one class (1 when numClasses = 1). */
  normalizedEntropy: number;
}

/** Per-class counts, fraction of classes present and normalized entropy of predicted labels (mode-dropping check, cf. the "modes" count of Che et al. 2017 on MNIST). */
export function perClassCoverage(predicted: ClassOutputs, numClasses: number, options: { minFraction?: number } = {}): ClassCoverage {
  const op = "perClassCoverage";
  if (!(Number.isSafeInteger(numClasses) && numClasses >= 1)) throw argumentError(op, `numClasses must be a positive integer, got ${numClasses}`);
  const minFraction = options.minFraction ?? 0;
  if (!(minFraction >= 0 && minFraction <= 1)) throw argumentError(op, `minFraction must be in [0, 1], got ${minFraction}`);
  const labels = labelsOf(predicted, op, "predicted");
  const n = labels.length;
  if (n === 0) throw argumentError(op, "no samples");
  const counts = new Array<number>(numClasses).fill(0);
  for (let i = 0; i < n; ++i) {
    const c = labels[i]!;
    if (c >= numClasses) throw argumentError(op, `label ${c} at ${i} is out of range for ${numClasses} classes`);
    ++counts[c]!;
  }
  const need = Math.max(1, minFraction * n);
  const present = counts.filter((c) => c >= need).length;
  let h = 0;
  for (const c of counts) if (c > 0) h -= (c / n) * log(c / n);
  return { counts, present, fraction: present / numClasses, normalizedEntropy: numClasses > 1 ? h / log(numClasses) : 1 };
}
