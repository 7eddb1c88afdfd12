// Classifier-based checks: accuracy against requested classes and the class histogram of samples.
import * as fd from "../../lib";
import { classifierAccuracy, labelsOf, perClassCoverage } from "../../lib/eval";
import { expectArgumentError } from "./util";

describe("classifierAccuracy", () => {
  test("labels, typed arrays, score matrices and tensors (argmax) give the exact fraction", () => {
    expect(classifierAccuracy([0, 1, 2, 3], [0, 1, 1, 3])).toBe(0.75);
    expect(classifierAccuracy(new Int32Array([5, 5]), Float64Array.from([5, 4]))).toBe(0.5);
    const logits = [[2, 1, 0], [0, 3, 1], [0, 0, 9], [1, 1, 0]]; // argmax 0, 1, 2, 0 (first on ties)
    expect(Array.from(labelsOf(logits))).toEqual([0, 1, 2, 0]);
    expect(classifierAccuracy(logits, [0, 1, 2, 1])).toBe(0.75);
    const t = fd.tensor(logits);
    expect(classifierAccuracy(t, [0, 1, 2, 0])).toBe(1);
    const ids = fd.tensor([2, 1]); // a 1-D tensor holds labels
    expect(classifierAccuracy(ids, [2, 0])).toBe(0.5);
    t.dispose();
    ids.dispose();
  });

  test("bad input throws naming the function", () => {
    expectArgumentError(() => classifierAccuracy([0, 1], [0]), /^classifierAccuracy: predicted has 2 samples, requested 1/);
    expectArgumentError(() => classifierAccuracy([0, 1.5], [0, 1]), /^classifierAccuracy: predicted: label 1.5 at 1 is not a non-negative integer/);
    expectArgumentError(() => classifierAccuracy([0, NaN], [0, 1]), /^classifierAccuracy: predicted \[2, 1\]: non-finite value NaN/);
    expectArgumentError(() => classifierAccuracy([], []), /^classifierAccuracy: no samples/);
  });
});

describe("perClassCoverage", () => {
  test("counts, classes present, normalized entropy on known histograms", () => {
    const uniform = perClassCoverage([0, 1, 2, 3, 3, 2, 1, 0], 4);
    expect(uniform).toEqual({ counts: [2, 2, 2, 2], present: 4, fraction: 1, normalizedEntropy: 1 });
    const collapsed = perClassCoverage([7, 7, 7], 10);
    expect(collapsed.present).toBe(1);
    expect(collapsed.fraction).toBe(0.1);
    expect(collapsed.normalizedEntropy).toBe(0);
    const half = perClassCoverage([0, 1, 0, 1], 4); // two of four classes, evenly: ln 2 / ln 4
    expect(half.normalizedEntropy).toBeCloseTo(0.5, 14);
    expect(half.fraction).toBe(0.5);
  });

  test("minFraction: a class counts only with ≥ minFraction of the samples", () => {
    const labels = [...new Array(95).fill(0), ...new Array(4).fill(1), 2];
    expect(perClassCoverage(labels, 3).present).toBe(3);
    expect(perClassCoverage(labels, 3, { minFraction: 0.02 }).present).toBe(2);
    expect(perClassCoverage(labels, 3, { minFraction: 0.05 }).counts).toEqual([95, 4, 1]);
    expect(perClassCoverage(labels, 3, { minFraction: 0.05 }).present).toBe(1);
  });

  test("bad input throws", () => {
    expectArgumentError(() => perClassCoverage([0, 3], 3), /^perClassCoverage: label 3 at 1 is out of range for 3 classes/);
    expectArgumentError(() => perClassCoverage([0], 0), /^perClassCoverage: numClasses must be a positive integer, got 0/);
    expectArgumentError(() => perClassCoverage([0], 2, { minFraction: 2 }), /^perClassCoverage: minFraction must be in \[0, 1\]/);
  });
});
