// Audio encoder: torchvision resnet18's layout and key names over the
// 1 x F x T log-mel image, 1-channel stem, and layers 3-4 strided in time
// only so the frequency axis keeps its bands (128 mel -> 16). method.md s2.
#pragma once
#include <torch/nn.h>

#include "r2plus1d.h"  // Layout

#include <array>

namespace cmac {

struct AudioResNetOptions {
  std::array<int64_t, 4> planes{64, 128, 256, 512};
  std::array<int64_t, 4> blocks{2, 2, 2, 2};
  int64_t inChannels = 1;
  Layout layout = Layout::Auto;  // see r2plus1d.h (the output is contiguous either way)
};

struct BasicBlock2dImpl : torch::nn::Module {
  BasicBlock2dImpl(int64_t inplanes, int64_t planes, std::array<int64_t, 2> stride, bool downsample);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock2d);

struct AudioResNet18Impl : torch::nn::Module {
  explicit AudioResNet18Impl(const AudioResNetOptions& o = {});
  // x: N x 1 x F x T log-mel. Returns N x C x F' x T'.
  torch::Tensor forward(torch::Tensor x);
  int64_t outChannels() const { return options.planes[3]; }
  AudioResNetOptions options;
  torch::nn::Conv2d conv1{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
};
TORCH_MODULE(AudioResNet18);

}  // namespace cmac
