#include "r2plus1d.h"

namespace cmac {

namespace nn = torch::nn;

namespace {
nn::Conv3d conv3d(int64_t in, int64_t out, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                  std::array<int64_t, 3> p) {
  return nn::Conv3d(nn::Conv3dOptions(in, out, {k[0], k[1], k[2]}).stride({s[0], s[1], s[2]})
                        .padding({p[0], p[1], p[2]}).bias(false));
}
nn::BatchNorm3d bn3d(int64_t c) { return nn::BatchNorm3d(nn::BatchNorm3dOptions(c).eps(1e-5).momentum(0.1)); }
}  // namespace

Conv2Plus1DImpl::Conv2Plus1DImpl(int64_t in, int64_t out, int64_t mid, int64_t stride) {
  spatial = register_module("0", conv3d(in, mid, {1, 3, 3}, {1, stride, stride}, {0, 1, 1}));
  bn = register_module("1", bn3d(mid));
  temporal = register_module("3", conv3d(mid, out, {3, 1, 1}, {stride, 1, 1}, {1, 0, 0}));
}

torch::Tensor Conv2Plus1DImpl::forward(torch::Tensor x) {
  return temporal(bn(spatial(x)).relu_());  // in place, as torchvision (BN backward needs its input only)
}

ConvBlock3dImpl::ConvBlock3dImpl(int64_t in, int64_t out, int64_t mid, int64_t stride, bool relu_) : relu(relu_) {
  conv = register_module("0", Conv2Plus1D(in, out, mid, stride));
  bn = register_module("1", bn3d(out));
}

torch::Tensor ConvBlock3dImpl::forward(torch::Tensor x) {
  x = bn(conv(x));
  return relu ? torch::relu_(x) : x;
}

BasicBlock3dImpl::BasicBlock3dImpl(int64_t inplanes, int64_t planes, int64_t stride, bool ds) {
  // torchvision computes midplanes once from the block's inplanes, for both convs.
  const int64_t mid = (inplanes * planes * 3 * 3 * 3) / (inplanes * 3 * 3 + 3 * planes);
  conv1 = register_module("conv1", ConvBlock3d(inplanes, planes, mid, stride, true));
  conv2 = register_module("conv2", ConvBlock3d(planes, planes, mid, 1, false));
  if (ds) {
    downsample = register_module(
        "downsample", nn::Sequential(conv3d(inplanes, planes, {1, 1, 1}, {stride, stride, stride}, {0, 0, 0}),
                                     bn3d(planes)));
  }
}

torch::Tensor BasicBlock3dImpl::forward(torch::Tensor x) {
  torch::Tensor identity = downsample ? downsample->forward(x) : x;
  torch::Tensor out = conv2(conv1(x));  // BN output: free to update in place (out += identity, as torchvision)
  out.add_(identity);
  return torch::relu_(out);
}

R2Plus1D18Impl::R2Plus1D18Impl(const R2Plus1DOptions& o) : options(o) {
  stem = register_module("stem", nn::Sequential(conv3d(3, o.stemMid, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}),
                                                bn3d(o.stemMid), nn::ReLU(nn::ReLUOptions(true)),
                                                conv3d(o.stemMid, o.planes[0], {3, 1, 1}, {1, 1, 1}, {1, 0, 0}),
                                                bn3d(o.planes[0]), nn::ReLU(nn::ReLUOptions(true))));
  int64_t inplanes = o.planes[0];
  nn::Sequential* layers[4] = {&layer1, &layer2, &layer3, &layer4};
  for (int l = 0; l < 4; ++l) {
    int64_t stride = (l == 0 || (l == 3 && o.lastStride1)) ? 1 : 2;
    nn::Sequential seq;
    for (int64_t b = 0; b < o.blocks[l]; ++b) {
      bool ds = b == 0 && (stride != 1 || inplanes != o.planes[l]);
      seq->push_back(BasicBlock3d(inplanes, o.planes[l], b == 0 ? stride : 1, ds));
      inplanes = o.planes[l];
    }
    *layers[l] = register_module("layer" + std::to_string(l + 1), seq);
  }
  initResNetWeights(*this);
}

torch::Tensor R2Plus1D18Impl::forward(torch::Tensor x) {
  return layer4->forward(layer3->forward(layer2->forward(layer1->forward(stem->forward(x)))));
}

void initResNetWeights(torch::nn::Module& root) {
  torch::NoGradGuard ng;
  for (auto& m : root.modules(/*include_self=*/false)) {
    if (auto* c3 = m->as<nn::Conv3d>()) {
      nn::init::kaiming_normal_(c3->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* c2 = m->as<nn::Conv2d>()) {
      nn::init::kaiming_normal_(c2->weight, 0.0, torch::kFanOut, torch::kReLU);
    } else if (auto* b3 = m->as<nn::BatchNorm3d>()) {
      nn::init::ones_(b3->weight);
      nn::init::zeros_(b3->bias);
    } else if (auto* b2 = m->as<nn::BatchNorm2d>()) {
      nn::init::ones_(b2->weight);
      nn::init::zeros_(b2->bias);
    }
  }
}

}  // namespace cmac
