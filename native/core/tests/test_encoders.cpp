#include <torch/torch.h>

#include <set>

#include "audio_resnet.h"
#include "cmac_model.h"
#include "r2plus1d.h"
#include "test.h"

using namespace cmac;

namespace {
int64_t countParams(torch::nn::Module& m) {
  int64_t n = 0;
  for (auto& p : m.parameters()) n += p.numel();
  return n;
}
}  // namespace

// references.md: 31,505,325 params with fc(512,400) -> 31,300,125 without; 224 entries with fc -> 222.
TEST(r2plus1d_matches_torchvision_counts_and_keys) {
  R2Plus1D18 m;
  CHECK_MSG(countParams(*m) == 31505325 - (512 * 400 + 400), "params " << countParams(*m));
  auto n = m->named_parameters().size() + m->named_buffers().size();
  CHECK_MSG(n == 222, "state entries " << n);
  auto p = m->named_parameters();
  CHECK(p.contains("stem.0.weight") && p.contains("stem.3.weight"));
  CHECK(p.contains("layer1.0.conv1.0.0.weight") && p.contains("layer1.0.conv1.0.3.weight"));
  CHECK(p.contains("layer2.0.conv2.1.weight") && p.contains("layer4.0.downsample.0.weight"));
  CHECK(!p.contains("layer1.0.downsample.0.weight"));
  auto b = m->named_buffers();
  CHECK(b.contains("layer3.1.conv1.0.1.running_mean") && b["stem.1.num_batches_tracked"].scalar_type() == torch::kLong);
  // midplanes: 144 | 230, 288 | 460, 576 | 921, 1152
  CHECK(p["layer1.0.conv1.0.0.weight"].size(0) == 144);
  CHECK(p["layer2.0.conv1.0.0.weight"].size(0) == 230 && p["layer2.1.conv1.0.0.weight"].size(0) == 288);
  CHECK(p["layer3.0.conv1.0.0.weight"].size(0) == 460 && p["layer3.1.conv1.0.0.weight"].size(0) == 576);
  CHECK(p["layer4.0.conv1.0.0.weight"].size(0) == 921 && p["layer4.1.conv1.0.0.weight"].size(0) == 1152);
}

TEST(r2plus1d_output_shapes) {
  torch::NoGradGuard ng;
  R2Plus1DOptions o;
  o.planes = {8, 16, 32, 64};
  o.stemMid = 6;
  R2Plus1D18 m(o);
  m->eval();
  auto y = m->forward(torch::randn({1, 3, 8, 112, 112}));
  CHECK_MSG(y.sizes() == torch::IntArrayRef({1, 64, 1, 7, 7}), y.sizes());
  o.lastStride1 = true;
  R2Plus1D18 m2(o);
  m2->eval();
  y = m2->forward(torch::randn({1, 3, 8, 112, 112}));
  CHECK_MSG(y.sizes() == torch::IntArrayRef({1, 64, 2, 14, 14}), y.sizes());
}

namespace {
// torchvision's R(2+1)D forward with every conv a plain Conv3d call: what
// R2Plus1D18Impl::forward must equal (its temporal convs go through temporalConv).
torch::Tensor conv3dForward(R2Plus1D18Impl& m, torch::Tensor x) {
  x = m.stem->forward(x);
  for (auto* layer : {&m.layer1, &m.layer2, &m.layer3, &m.layer4})
    for (auto& b : **layer) {
      auto& blk = *b.ptr<BasicBlock3dImpl>();
      auto convBlock = [](ConvBlock3dImpl& c, torch::Tensor y) {
        y = c.conv->temporal(c.conv->bn(c.conv->spatial(y)).relu());
        y = c.bn(y);
        return c.relu ? y.relu() : y;
      };
      auto identity = blk.downsample ? blk.downsample->forward(x) : x;
      x = (convBlock(*blk.conv2, convBlock(*blk.conv1, x)) + identity).relu();
    }
  return x;
}
}  // namespace

TEST(temporal_conv_equals_conv3d_forward_and_backward) {
  torch::manual_seed(5);
  // (in, out, T, stride): strided, T = 1 (only the middle tap sees data), odd widths as torchvision's midplanes.
  for (auto [in, out, t, s] :
       std::vector<std::array<int64_t, 4>>{{6, 9, 4, 1}, {7, 5, 4, 2}, {11, 3, 1, 1}, {5, 8, 3, 2}}) {
    torch::nn::Conv3d c(torch::nn::Conv3dOptions(in, out, {3, 1, 1}).stride({s, 1, 1}).padding({1, 0, 0}).bias(false));
    auto x = torch::randn({2, in, t, 5, 6}, torch::requires_grad());
    auto x2 = x.detach().clone().requires_grad_(true);
    auto ref = c->forward(x);
    auto gy = torch::randn_like(ref);
    ref.backward(gy);
    auto wGrad = c->weight.grad().clone();
    c->weight.mutable_grad() = torch::Tensor();
    auto y = temporalConv(x2, c);
    CHECK_MSG(y.sizes() == ref.sizes(), y.sizes() << " vs " << ref.sizes());
    y.backward(gy);
    CHECK_CLOSE((y - ref).abs().max().item<double>(), 0.0, 1e-5);
    CHECK_CLOSE((x2.grad() - x.grad()).abs().max().item<double>(), 0.0, 1e-5);
    CHECK_CLOSE((c->weight.grad() - wGrad).abs().max().item<double>(), 0.0, 1e-4);
  }
  torch::nn::Conv3d spatial(torch::nn::Conv3dOptions(3, 4, {1, 3, 3}).padding({0, 1, 1}).bias(false));
  CHECK_THROWS(temporalConv(torch::randn({1, 3, 2, 4, 4}), spatial), "bias-free (t, 1, 1) Conv3d");
}

TEST(r2plus1d_train_forward_and_gradients_equal_the_conv3d_path) {
  torch::manual_seed(9);
  R2Plus1DOptions o;
  o.planes = {8, 12, 16, 16};
  o.stemMid = 5;
  o.layout = Layout::Contiguous;  // the channels-last layout: test_layout_cache.cpp
  R2Plus1D18 a(o), b(o);
  {
    torch::NoGradGuard ng;
    auto pa = a->parameters(), pb = b->parameters();
    for (size_t i = 0; i < pa.size(); ++i) pb[i].copy_(pa[i]);
  }
  auto x = torch::randn({3, 3, 4, 32, 32});
  auto ya = a->forward(x), yb = conv3dForward(*b, x);  // training mode: batch statistics
  CHECK_MSG(ya.sizes() == yb.sizes(), ya.sizes() << " vs " << yb.sizes());
  CHECK_CLOSE((ya - yb).abs().max().item<double>(), 0.0, 1e-4);
  auto gy = torch::randn_like(ya);
  ya.backward(gy);
  yb.backward(gy);
  auto na = a->named_parameters(), nb = b->named_parameters();
  for (const auto& p : na) {
    auto ga = p.value().grad(), gb = nb[p.key()].grad();
    double tol = 1e-4 * std::max(1.0, gb.abs().max().item<double>());
    CHECK_MSG((ga - gb).abs().max().item<double>() <= tol,
              p.key() << ": gradients differ by " << (ga - gb).abs().max().item<double>());
  }
  auto ba = a->named_buffers(), bb = b->named_buffers();
  for (const auto& r : ba)
    CHECK_MSG((r.value().to(torch::kDouble) - bb[r.key()].to(torch::kDouble)).abs().max().item<double>() < 1e-5,
              r.key());
}

// resnet18: 11,689,512 with fc(512,1000) and a 3-channel stem.
TEST(audio_resnet_matches_resnet18_keys_and_keeps_16_bands) {
  AudioResNetOptions o;
  o.inChannels = 3;
  AudioResNet18 m3(o);
  CHECK_MSG(countParams(*m3) == 11689512 - (512 * 1000 + 1000), "params " << countParams(*m3));
  AudioResNet18 m;
  auto p = m->named_parameters();
  CHECK(p.contains("conv1.weight") && p.contains("bn1.weight") && p.contains("layer1.0.conv1.weight"));
  CHECK(p.contains("layer1.1.bn2.bias") && p.contains("layer3.0.downsample.0.weight") &&
        p.contains("layer4.0.downsample.1.weight"));
  CHECK(p["conv1.weight"].size(1) == 1);
  torch::NoGradGuard ng;
  m->eval();
  auto y = m->forward(torch::randn({2, 1, 128, 201}));
  CHECK_MSG(y.size(1) == 512 && y.size(2) == 16 && y.size(3) == 7, y.sizes());
}

TEST(model_state_dict_prefixes_and_counts) {
  ModelConfig c;
  c.visual.planes = {16, 32, 64, 128};
  c.visual.stemMid = 11;
  c.audio.planes = {16, 32, 64, 128};
  CmacModel m(c);
  std::set<std::string> prefixes;
  for (auto& [k, v] : m.stateDict()) prefixes.insert(k.substr(0, k.find('.')));
  CHECK(prefixes == std::set<std::string>({"visual", "audio", "heads", "logmel"}));
}
