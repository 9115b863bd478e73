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

// resnet18: 11,689,512 with fc(512,1000) and a 3-channel stem.
TEST(audio_resnet_matches_resnet18_keys_and_keeps_16_bands) {
  AudioResNetOptions o;
  o.inChannels = 3;
  AudioResNet18 m3(o);
  CHECK_MSG(countParams(*m3) == 11689512 - (512 * 1000 + 1000), "params " << countParams(*m3));
  AudioResNet18 m;
  auto p = m->named_parameters();
  CHECK(p.contains("conv1.weight") && p.contains("bn1.weight") && p.contains("layer1.0.conv1.weight"));
  CHECK(p.contains("layer1.1.bn2.bias") && p.contains("layer3.0.downsample.0.weight") && p.contains("layer4.0.downsample.1.weight"));
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
