#include "heads.h"

namespace cmac {

namespace nn = torch::nn;

ProjectionImpl::ProjectionImpl(int64_t in, int64_t out) {
  fc1 = register_module("fc1", nn::Linear(nn::LinearOptions(in, in).bias(false)));
  bn = register_module("bn", nn::BatchNorm1d(in));
  fc2 = register_module("fc2", nn::Linear(in, out));
}

torch::Tensor ProjectionImpl::forward(const torch::Tensor& x) {
  auto lead = x.sizes().vec();
  lead.pop_back();
  auto flat = x.reshape({-1, x.size(-1)});
  auto y = fc2(bn(fc1(flat)).relu_());
  lead.push_back(y.size(-1));
  return y.view(lead);
}

AttentionScorerImpl::AttentionScorerImpl(int64_t in) {
  fc1 = register_module("fc1", nn::Linear(in, std::max<int64_t>(1, in / 4)));
  fc2 = register_module("fc2", nn::Linear(std::max<int64_t>(1, in / 4), 1));
}

torch::Tensor AttentionScorerImpl::forward(const torch::Tensor& x) {
  return fc2(fc1(x).relu_()).squeeze(-1);  // Linear backward needs its input only
}

HeadsImpl::HeadsImpl(int64_t cv, int64_t ca, int64_t d) {
  projV = register_module("projV", Projection(cv, d));
  projA = register_module("projA", Projection(ca, d));
  attnV = register_module("attnV", AttentionScorer(cv));
  attnA = register_module("attnA", AttentionScorer(ca));
}

}  // namespace cmac
