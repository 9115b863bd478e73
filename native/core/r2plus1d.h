// R(2+1)D-18, layer for layer torchvision's `r2plus1d_18` (models/video/
// resnet.py) without the fc head; state_dict keys are identical. Widths,
// depths and the stem's middle width are options for the `tiny` preset.
// method.md section 2.
#pragma once
#include <torch/nn.h>

#include <array>
#include <string>

namespace cmac {

// Memory layout an encoder computes in. Auto: channels-last on CPU at one intra-op thread, where
// it is faster (oneDNN's NHWC convolutions); contiguous otherwise (libtorch 1.13's channels-last
// BatchNorm kernels gain nothing from a second thread: a 2-thread tiny step is ~12% slower).
enum class Layout { Auto, ChannelsLast, Contiguous };
Layout parseLayout(const std::string& s, const std::string& what);  // auto | channels-last | contiguous
bool useChannelsLast(Layout l, const torch::Tensor& x);             // the choice for an input x

struct R2Plus1DOptions {
  std::array<int64_t, 4> planes{64, 128, 256, 512};
  std::array<int64_t, 4> blocks{2, 2, 2, 2};
  int64_t stemMid = 45;      // torchvision's R2Plus1dStem: 3 -> 45 -> 64
  bool lastStride1 = false;  // layer4 keeps the spatial size (LVS style)
  Layout layout =
      Layout::Auto;  // channels-last-3d: every conv a 2-D conv on a view (the output is contiguous either way)
};

// A bias-free (t, 1, 1) Conv3d with (s, 1, 1) stride and (p, 0, 0) padding,
// computed as the same sums by a 2-D (t, 1) conv over the free view
// N x C x T x (H*W) of a contiguous input (no copy). libtorch 1.13 runs it on
// oneDNN's 2-D kernels: forward+backward 0.22-0.84x the 3-D conv's time on 12
// of the tiny preset's 13 temporal shapes here, and far faster where the 3-D
// conv falls back to slow_conv3d (batch < 16 at one thread: the paper step).
// Weights stay in the Conv3d (torchvision) layout and keys.
// A (t, 1, 1) Conv3d as a 2-D conv on N x C x T x (H*W) (a view in both layouts).
torch::Tensor temporalConv(const torch::Tensor& x, const torch::nn::Conv3d& c);
// A (1, kh, kw) Conv3d as a 2-D conv on (N*T) x C x H x W (a view of a channels-last-3d input).
torch::Tensor spatialConv(const torch::Tensor& x, const torch::nn::Conv3d& c);
// A Conv3d of either shape through the functions above (spatial ones for a channels-last-3d x), else as it is.
torch::Tensor conv3d(const torch::Tensor& x, const torch::nn::Conv3d& c);
// x.contiguous() whose backward hands the gradient on in gradFormat (the encoder's layout), so that
// an encoder's backward pass runs in the layout of its forward pass (a contiguous gradient would
// send every BatchNorm/ReLU backward to a strided slow path).
torch::Tensor toContiguous(const torch::Tensor& x, at::MemoryFormat gradFormat);
// A BatchNorm3d, on the N x C x T x (H*W) view for a channels-last-3d x (same result, a faster kernel).
torch::Tensor batchNorm(const torch::Tensor& x, const torch::nn::BatchNorm3d& b);
// A Sequential (the stem, a downsample) with its Conv3d / BatchNorm3d through conv3d / batchNorm.
torch::Tensor forwardSequential(torch::nn::Sequential& seq, torch::Tensor x);

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
