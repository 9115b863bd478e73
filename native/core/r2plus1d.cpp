#include "r2plus1d.h"

#include "errors.h"

namespace cmac {

namespace nn = torch::nn;

namespace {
nn::Conv3d conv3d(int64_t in, int64_t out, std::array<int64_t, 3> k, std::array<int64_t, 3> s,
                  std::array<int64_t, 3> p) {
  return nn::Conv3d(nn::Conv3dOptions(in, out, {k[0], k[1], k[2]})
                        .stride({s[0], s[1], s[2]})
                        .padding({p[0], p[1], p[2]})
                        .bias(false));
}
nn::BatchNorm3d bn3d(int64_t c) { return nn::BatchNorm3d(nn::BatchNorm3dOptions(c).eps(1e-5).momentum(0.1)); }
}  // namespace

torch::Tensor temporalConv(const torch::Tensor& x, const nn::Conv3d& c) {
  const auto& o = c->options;
  const auto* pad = c10::get_if<torch::ExpandingArray<3>>(&o.padding());
  const auto k = o.kernel_size(), s = o.stride(), d = o.dilation();
  TORCH_CHECK(x.dim() == 5 && pad && c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) &&
                  k->at(1) == 1 && k->at(2) == 1 && s->at(1) == 1 && s->at(2) == 1 && (*pad)->at(1) == 0 &&
                  (*pad)->at(2) == 0 && o.groups() == 1 && !o.bias(),
              "temporalConv takes an N x C x T x H x W input and a bias-free (t, 1, 1) Conv3d with (s, 1, 1) stride "
              "and (p, 0, 0) zero padding");
  const int64_t n = x.size(0), ch = x.size(1), t = x.size(2), h = x.size(3), w = x.size(4);
  const auto& wt = c->weight;  // out x in x t x 1 x 1 (torchvision's layout, kept for checkpoints)
  auto y = at::conv2d(x.reshape({n, ch, t, h * w}), wt.view({wt.size(0), wt.size(1), wt.size(2), 1}), torch::Tensor(),
                      std::vector<int64_t>{s->at(0), 1}, std::vector<int64_t>{(*pad)->at(0), 0},
                      std::vector<int64_t>{d->at(0), 1});
  return y.view({n, wt.size(0), y.size(2), h, w});
}

torch::Tensor spatialConv(const torch::Tensor& x, const nn::Conv3d& c) {
  const auto& o = c->options;
  const auto* pad = c10::get_if<torch::ExpandingArray<3>>(&o.padding());
  const auto k = o.kernel_size(), s = o.stride(), d = o.dilation();
  TORCH_CHECK(x.dim() == 5 && pad && c10::holds_alternative<torch::enumtype::kZeros>(o.padding_mode()) &&
                  k->at(0) == 1 && (*pad)->at(0) == 0 && o.groups() == 1 && !o.bias(),
              "spatialConv takes an N x C x T x H x W input and a bias-free (1, kh, kw) Conv3d with no temporal "
              "padding and zero padding");
  torch::Tensor in =
      s->at(0) == 1 ? x : x.slice(2, 0, x.size(2), s->at(0));  // a (1, kh, kw) kernel: stride in T = subsample
  const int64_t n = in.size(0), ch = in.size(1), t = in.size(2), h = in.size(3), w = in.size(4);
  const auto& wt = c->weight;  // out x in x 1 x kh x kw
  // (N*T) x C x H x W: a view of a channels-last-3d tensor (memory N, T, H, W, C)
  auto y = at::conv2d(in.transpose(1, 2).reshape({n * t, ch, h, w}),
                      wt.reshape({wt.size(0), wt.size(1), wt.size(3), wt.size(4)}), torch::Tensor(),
                      std::vector<int64_t>{s->at(1), s->at(2)}, std::vector<int64_t>{(*pad)->at(1), (*pad)->at(2)},
                      std::vector<int64_t>{d->at(1), d->at(2)})
               .contiguous(at::MemoryFormat::ChannelsLast);
  return y.view({n, t, wt.size(0), y.size(2), y.size(3)}).transpose(1, 2);
}

bool isChannelsLast3d(const torch::Tensor& x) {
  return x.dim() == 5 && x.suggest_memory_format() == at::MemoryFormat::ChannelsLast3d;
}

bool useChannelsLast(Layout l, const torch::Tensor& x) {
  if (l == Layout::ChannelsLast) return true;
  if (l == Layout::Contiguous) return false;
  return x.is_cpu() && at::get_num_threads() == 1;
}

Layout parseLayout(const std::string& s, const std::string& what) {
  if (s == "auto") return Layout::Auto;
  if (s == "channels-last") return Layout::ChannelsLast;
  if (s == "contiguous") return Layout::Contiguous;
  rangeError(what + ": got '" + s + "'; allowed: auto, channels-last, contiguous");
}

torch::Tensor conv3d(const torch::Tensor& x, const nn::Conv3d& c) {
  const auto k = c->options.kernel_size(), s = c->options.stride();
  if (k->at(0) == 1 && isChannelsLast3d(x)) return spatialConv(x, c);
  if (k->at(1) == 1 && k->at(2) == 1 && s->at(1) == 1 && s->at(2) == 1) return temporalConv(x, c);
  return nn::Conv3d(c)->forward(x);
}

namespace {
struct ToContiguous : torch::autograd::Function<ToContiguous> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, int64_t gradFormat) {
    ctx->saved_data["format"] = gradFormat;
    return x.contiguous();
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::tensor_list g) {
    auto f = static_cast<at::MemoryFormat>(ctx->saved_data["format"].toInt());
    return {g[0].contiguous(f), torch::Tensor()};
  }
};
}  // namespace

torch::Tensor toContiguous(const torch::Tensor& x, at::MemoryFormat gradFormat) {
  return ToContiguous::apply(x, static_cast<int64_t>(gradFormat));
}

torch::Tensor batchNorm(const torch::Tensor& x, const nn::BatchNorm3d& b) {
  if (!isChannelsLast3d(x)) return nn::BatchNorm3d(b)->forward(x);
  // libtorch's CPU batch norm has a fast channels-last kernel for 4-D tensors only (7x slower on a
  // channels-last-3d one): run it on the N x C x T x (H*W) view, with the module's parameters and
  // buffers and its running-average rule (torch::nn::BatchNormImplBase::forward).
  auto& m = *nn::BatchNorm3d(b);
  const auto& o = m.options;
  double factor = 0.0;
  if (m.is_training() && o.track_running_stats() && m.num_batches_tracked.defined()) {
    torch::NoGradGuard ng;
    m.num_batches_tracked += 1;
    factor = o.momentum() ? *o.momentum() : 1.0 / m.num_batches_tracked.item<double>();
  }
  auto y = at::batch_norm(x.reshape({x.size(0), x.size(1), x.size(2), x.size(3) * x.size(4)}), m.weight, m.bias,
                          m.running_mean, m.running_var, m.is_training() || !o.track_running_stats(), factor, o.eps(),
                          at::globalContext().userEnabledCuDNN());
  // Not a view for autograd: ReLU and the residual add update BN's output in place, which on a
  // view would turn their backward into CopySlices over the base (strided copies, a slow ReLU backward).
  return at::_unsafe_view(y, x.sizes());
}

torch::Tensor forwardSequential(nn::Sequential& seq, torch::Tensor x) {
  for (auto& m : *seq) {
    if (auto c = std::dynamic_pointer_cast<nn::Conv3dImpl>(m.ptr()))
      x = conv3d(x, nn::Conv3d(c));
    else if (auto b = std::dynamic_pointer_cast<nn::BatchNorm3dImpl>(m.ptr()))
      x = batchNorm(x, nn::BatchNorm3d(b));
    else
      x = m.forward(x);
  }
  return x;
}

Conv2Plus1DImpl::Conv2Plus1DImpl(int64_t in, int64_t out, int64_t mid, int64_t stride) {
  spatial = register_module("0", conv3d(in, mid, {1, 3, 3}, {1, stride, stride}, {0, 1, 1}));
  bn = register_module("1", bn3d(mid));
  temporal = register_module("3", conv3d(mid, out, {3, 1, 1}, {stride, 1, 1}, {1, 0, 0}));
}

torch::Tensor Conv2Plus1DImpl::forward(torch::Tensor x) {
  return temporalConv(batchNorm(conv3d(x, spatial), bn).relu_(),
                      temporal);  // in place, as torchvision (BN backward needs its input only)
}

ConvBlock3dImpl::ConvBlock3dImpl(int64_t in, int64_t out, int64_t mid, int64_t stride, bool relu_) : relu(relu_) {
  conv = register_module("0", Conv2Plus1D(in, out, mid, stride));
  bn = register_module("1", bn3d(out));
}

torch::Tensor ConvBlock3dImpl::forward(torch::Tensor x) {
  x = batchNorm(conv(x), bn);
  return relu ? torch::relu_(x) : x;
}

BasicBlock3dImpl::BasicBlock3dImpl(int64_t inplanes, int64_t planes, int64_t stride, bool ds) {
  // torchvision computes midplanes once from the block's inplanes, for both convs.
  const int64_t mid = (inplanes * planes * 3 * 3 * 3) / (inplanes * 3 * 3 + 3 * planes);
  conv1 = register_module("conv1", ConvBlock3d(inplanes, planes, mid, stride, true));
  conv2 = register_module("conv2", ConvBlock3d(planes, planes, mid, 1, false));
  if (ds) {
    downsample = register_module(
        "downsample",
        nn::Sequential(conv3d(inplanes, planes, {1, 1, 1}, {stride, stride, stride}, {0, 0, 0}), bn3d(planes)));
  }
}

torch::Tensor BasicBlock3dImpl::forward(torch::Tensor x) {
  torch::Tensor identity = downsample ? forwardSequential(downsample, x) : x;
  torch::Tensor out = conv2(conv1(x));  // BN output: free to update in place (out += identity, as torchvision)
  out.add_(identity);
  return torch::relu_(out);
}

R2Plus1D18Impl::R2Plus1D18Impl(const R2Plus1DOptions& o) : options(o) {
  stem = register_module("stem", nn::Sequential(conv3d(3, o.stemMid, {1, 7, 7}, {1, 2, 2}, {0, 3, 3}), bn3d(o.stemMid),
                                                nn::ReLU(nn::ReLUOptions(true)),
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
  // Channels-last-3d (memory N, T, H, W, C): every conv is then a 2-D conv on a view (spatialConv,
  // temporalConv), which oneDNN runs in NHWC without reordering its input and output; the blocks
  // follow the layout of their input.
  const bool cl = useChannelsLast(options.layout, x);
  if (cl) x = x.contiguous(at::MemoryFormat::ChannelsLast3d);
  x = forwardSequential(stem, x);
  x = layer4->forward(layer3->forward(layer2->forward(layer1->forward(x))));
  return cl ? toContiguous(x, at::MemoryFormat::ChannelsLast3d) : x;
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
