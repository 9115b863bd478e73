// L2-regularised multinomial logistic regression on frozen features, for the
// linear-probe evaluation (method.md section 7). Full-batch L-BFGS in float64.
#pragma once
#include <torch/types.h>

namespace cmac {

struct LogRegResult {
  torch::Tensor weight;  // K x C (float32)
  torch::Tensor bias;    // K
  double loss = 0;       // final mean cross-entropy + l2/2 |W|^2
  int64_t iterations = 0;
};

// x: N x C float, y: N integer labels in [0, numClasses). l2 >= 0.
LogRegResult fitLogisticRegression(const torch::Tensor& x, const torch::Tensor& y, int64_t numClasses, double l2,
                                   int64_t maxIter = 500);

}  // namespace cmac
