// R(2+1)D-18, layer for layer torchvision's `r2plus1d_18` (models/video/
// resnet.py) without the fc head; state_dict keys are identical. Widths,
// depths and the stem's middle width are options for the `tiny` preset.
// method.md section 2.
#pragma once
#include <torch/nn.h>

#include <array>

namespace cmac {

struct R2Plus1DOptions {
  std::array<int64_t, 4> planes{64, 128, 256, 512};
  std::array<int64_t, 4> blocks{2, 2, 2, 2};
  int64_t stemMid = 45;      // torchvision's R2Plus1dStem: 3 -> 45 -> 64
  bool lastStride1 = false;  // layer4 keeps the spatial size (LVS style)
};

// A bias-free (t, 1, 1) Conv3d with (s, 1, 1) stride and (p, 0, 0) padding,
// computed as the same sums by a 2-D (t, 1) conv over the free view
// N x C x T x (H*W) of a contiguous input (no copy). libtorch 1.13 runs it on
// oneDNN's 2-D kernels: forward+backward 0.22-0.84x the 3-D conv's time on 12
// of the tiny preset's 13 temporal shapes here, and far faster where the 3-D
// conv falls back to slow_conv3d (batch < 16 at one thread: the paper step).
// Weights stay in the Conv3d (torchvision) layout and keys.
torch::Tensor temporalConv(const torch::Tensor& x, const torch::nn::Conv3d& c);

// Seq[0 Conv3d(1,3,3), 1 BN, 2 ReLU, 3 Conv3d(3,1,1)] as in torchvision.
struct Conv2Plus1DImpl : torch::nn::Module {
  Conv2Plus1DImpl(int64_t in, int64_t out, int64_t mid, int64_t stride);
  torch::Tensor forward(torch::Tensor x);
  torch::nn::Conv3d spatial{nullptr}, temporal{nullptr};
  torch::nn::BatchNorm3d bn{nullptr};
};
TORCH_MODULE(Conv2Plus1D);

// Seq[0 Conv2Plus1D, 1 BN] (+ ReLU when `relu`), torchvision's conv1/conv2.
struct ConvBlock3dImpl : torch::nn::Module {
  ConvBlock3dImpl(int64_t in, int64_t out, int64_t mid, int64_t stride, bool relu);
  torch::Tensor forward(torch::Tensor x);
  Conv2Plus1D conv{nullptr};
  torch::nn::BatchNorm3d bn{nullptr};
  bool relu;
};
TORCH_MODULE(ConvBlock3d);

struct BasicBlock3dImpl : torch::nn::Module {
  BasicBlock3dImpl(int64_t inplanes, int64_t planes, int64_t stride, bool downsample);
  torch::Tensor forward(torch::Tensor x);
  ConvBlock3d conv1{nullptr}, conv2{nullptr};
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock3d);

struct R2Plus1D18Impl : torch::nn::Module {
  explicit R2Plus1D18Impl(const R2Plus1DOptions& o = {});
  // x: N x 3 x T x H x W (normalised). Returns the map N x C x T' x H' x W'.
  torch::Tensor forward(torch::Tensor x);
  int64_t outChannels() const { return options.planes[3]; }
  R2Plus1DOptions options;
  torch::nn::Sequential stem{nullptr};
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};
};
TORCH_MODULE(R2Plus1D18);

// Kaiming-normal (fan_out, relu) convs, BN weight 1 bias 0, as torchvision.
void initResNetWeights(torch::nn::Module& m);

}  // namespace cmac
