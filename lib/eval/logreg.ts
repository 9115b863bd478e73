// Multinomial logistic regression for linear probes, trained natively
// (full-batch L-BFGS in float64, native/core/linear_probe.cpp).
import { native } from '../native';
import type { Tensor } from '../tensor';

/** A fitted linear classifier: logits = x W^T + b. */
export interface LinearClassifier {
  weight: Tensor<'float32'>; // [K, C]
  bias: Tensor<'float32'>; // [K]
  loss: number;
  iterations: number;
}

/**
 * Fits an L2-regularised multinomial logistic regression.
 * @param features [N, C] float32
 * @param labels [N] class indices (Int32Array)
 * @example const clf = await fitLogisticRegression(feats, labels, 8, 1e-3);
 */
export async function fitLogisticRegression(
  features: Tensor<'float32'>,
  labels: Tensor<'int32'>,
  numClasses: number,
  l2: number,
  maxIter = 500,
): Promise<LinearClassifier> {
  return (await native().fitLogisticRegression(features, labels, numClasses, l2, maxIter)) as LinearClassifier;
}

/** Predicted class per row of `features` [N, C]. */
export function predict(clf: LinearClassifier, features: Tensor<'float32'>): Int32Array {
  const [n, c] = features.shape;
  const k = clf.bias.shape[0];
  const w = clf.weight.data,
    b = clf.bias.data,
    x = features.data;
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = -Infinity,
      arg = 0;
    for (let j = 0; j < k; j++) {
      let s = b[j];
      for (let d = 0; d < c; d++) s += x[i * c + d] * w[j * c + d];
      if (s > best) {
        best = s;
        arg = j;
      }
    }
    out[i] = arg;
  }
  return out;
}
