// Heads on top of the encoders, method.md section 3: the projection MLP
// h (C -> C -> D with BN and ReLU, applied pointwise) and the self-attention
// scorer g (1x1 conv C -> C/4 -> 1 with ReLU, applied per region/band).
#pragma once
#include <torch/nn.h>

namespace cmac {

struct ProjectionImpl : torch::nn::Module {
  ProjectionImpl(int64_t in, int64_t out);
  // x: (..., C) -> (..., D); BatchNorm sees all leading positions as samples.
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};
TORCH_MODULE(Projection);

struct AttentionScorerImpl : torch::nn::Module {
  explicit AttentionScorerImpl(int64_t in);
  // x: B x N x C -> logits B x N
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(AttentionScorer);

struct HeadsImpl : torch::nn::Module {
  HeadsImpl(int64_t visualChannels, int64_t audioChannels, int64_t embedDim);
  Projection projV{nullptr}, projA{nullptr};
  AttentionScorer attnV{nullptr}, attnA{nullptr};
};
TORCH_MODULE(Heads);

}  // namespace cmac
