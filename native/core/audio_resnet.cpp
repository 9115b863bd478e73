#include "audio_resnet.h"

#include "r2plus1d.h"  // initResNetWeights, toContiguous, Layout

namespace cmac {

namespace nn = torch::nn;

namespace {
nn::Conv2d conv2d(int64_t in, int64_t out, int64_t k, std::array<int64_t, 2> s, int64_t p) {
  return nn::Conv2d(nn::Conv2dOptions(in, out, k).stride({s[0], s[1]}).padding(p).bias(false));
}
nn::BatchNorm2d bn2d(int64_t c) { return nn::BatchNorm2d(nn::BatchNorm2dOptions(c).eps(1e-5).momentum(0.1)); }
}  // namespace

BasicBlock2dImpl::BasicBlock2dImpl(int64_t inplanes, int64_t planes, std::array<int64_t, 2> stride, bool ds) {
  conv1 = register_module("conv1", conv2d(inplanes, planes, 3, stride, 1));
  bn1 = register_module("bn1", bn2d(planes));
  conv2 = register_module("conv2", conv2d(planes, planes, 3, {1, 1}, 1));
  bn2 = register_module("bn2", bn2d(planes));
  if (ds)
    downsample = register_module("downsample", nn::Sequential(conv2d(inplanes, planes, 1, stride, 0), bn2d(planes)));
}

torch::Tensor BasicBlock2dImpl::forward(torch::Tensor x) {
  torch::Tensor identity = downsample ? downsample->forward(x) : x;
  torch::Tensor out = bn1(conv1(x)).relu_();  // in place, as torchvision's BasicBlock
  out = bn2(conv2(out));
  out.add_(identity);
  return torch::relu_(out);
}

AudioResNet18Impl::AudioResNet18Impl(const AudioResNetOptions& o) : options(o) {
  conv1 = register_module("conv1", conv2d(o.inChannels, o.planes[0], 7, {2, 2}, 3));
  bn1 = register_module("bn1", bn2d(o.planes[0]));
  // Strides (freq, time): layers 3 and 4 keep the frequency bands.
  const std::array<std::array<int64_t, 2>, 4> strides{{{1, 1}, {2, 2}, {1, 2}, {1, 2}}};
  int64_t inplanes = o.planes[0];
  nn::Sequential* layers[4] = {&layer1, &layer2, &layer3, &layer4};
  for (int l = 0; l < 4; ++l) {
    nn::Sequential seq;
    for (int64_t b = 0; b < o.blocks[l]; ++b) {
      auto s = b == 0 ? strides[l] : std::array<int64_t, 2>{1, 1};
      bool ds = b == 0 && (s[0] != 1 || s[1] != 1 || inplanes != o.planes[l]);
      seq->push_back(BasicBlock2d(inplanes, o.planes[l], s, ds));
      inplanes = o.planes[l];
    }
    *layers[l] = register_module("layer" + std::to_string(l + 1), seq);
  }
  initResNetWeights(*this);
}

torch::Tensor AudioResNet18Impl::forward(torch::Tensor x) {
  // Channels-last: oneDNN's NHWC convolutions and libtorch's channels-last BatchNorm kernels.
  const bool cl = useChannelsLast(options.layout, x);
  if (cl) x = x.contiguous(at::MemoryFormat::ChannelsLast);
  x = bn1(conv1(x)).relu_();
  x = torch::max_pool2d(x, 3, 2, 1);
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  return cl ? toContiguous(x, at::MemoryFormat::ChannelsLast) : x;
}

}  // namespace cmac
