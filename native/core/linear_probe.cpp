#include "linear_probe.h"

#include <torch/torch.h>

#include "errors.h"
#include "info.h"

namespace cmac {

LogRegResult fitLogisticRegression(const torch::Tensor& xIn, const torch::Tensor& yIn, int64_t numClasses, double l2,
                                   int64_t maxIter) {
  if (xIn.dim() != 2 || xIn.size(0) < 1) rangeError("features must have shape [N, C] with N >= 1");
  if (!xIn.is_floating_point()) typeError("features must be float32 or float64");
  if (yIn.dim() != 1 || yIn.size(0) != xIn.size(0)) rangeError("labels must have shape [N] matching features");
  if (yIn.is_floating_point()) typeError("labels must be integers (Int32Array or BigInt64Array)");
  if (numClasses < 2 || numClasses > 100000) rangeError("numClasses must be in [2, 100000]");
  if (!(l2 >= 0) || !std::isfinite(l2)) rangeError("l2 must be a finite number >= 0");
  if (maxIter < 1 || maxIter > 100000) rangeError("maxIter must be in [1, 100000]");
  auto y = yIn.to(torch::kLong);
  if (y.min().item<int64_t>() < 0 || y.max().item<int64_t>() >= numClasses)
    rangeError("labels must lie in [0, numClasses)");
  auto x = xIn.to(torch::kDouble);
  if (!torch::isfinite(x).all().item<bool>()) rangeError("features contain NaN or Inf");
  applyNumThreads();
  torch::AutoGradMode grad(true);
  auto W = torch::zeros({numClasses, x.size(1)}, torch::kDouble).requires_grad_(true);
  auto b = torch::zeros({numClasses}, torch::kDouble).requires_grad_(true);
  torch::optim::LBFGS opt({W, b}, torch::optim::LBFGSOptions(1.0)
                                      .max_iter(maxIter)
                                      .tolerance_grad(1e-9)
                                      .tolerance_change(1e-12)
                                      .history_size(20)
                                      .line_search_fn("strong_wolfe"));
  int64_t evals = 0;
  auto closure = [&]() -> torch::Tensor {
    opt.zero_grad();
    auto loss = torch::nn::functional::cross_entropy(torch::addmm(b, x, W.t()), y) + 0.5 * l2 * W.pow(2).sum();
    loss.backward();
    ++evals;
    return loss;
  };
  opt.step(closure);
  torch::NoGradGuard ng;
  LogRegResult r;
  r.loss =
      (torch::nn::functional::cross_entropy(torch::addmm(b, x, W.t()), y) + 0.5 * l2 * W.pow(2).sum()).item<double>();
  r.weight = W.detach().to(torch::kFloat);
  r.bias = b.detach().to(torch::kFloat);
  r.iterations = evals;
  return r;
}

}  // namespace cmac
