// Parity with torchvision and torchaudio, on fixtures made by
// scripts/make-parity-fixtures.py (run by test/parity.test.ts).
#include <torch/torch.h>

#include <iostream>
#include <map>

#include "audio_resnet.h"
#include "logmel.h"
#include "r2plus1d.h"
#include "safetensors.h"
#include "test.h"

using namespace cmac;

namespace {
std::map<std::string, torch::Tensor> fixture(const std::string& name) {
  CHECK_MSG(!cmactest::fixturesDir().empty(), "run with --fixtures DIR (test/parity.test.ts does)");
  auto f = readSafetensors(cmactest::fixturesDir() + "/" + name);
  return {f.tensors.begin(), f.tensors.end()};
}
void loadPrefixed(torch::nn::Module& m, std::map<std::string, torch::Tensor>& f, const std::string& prefix) {
  torch::NoGradGuard ng;
  int n = 0;
  for (auto& p : m.named_parameters()) {
    p.value().copy_(f.at(prefix + p.key()));
    ++n;
  }
  for (auto& b : m.named_buffers()) {
    b.value().copy_(f.at(prefix + b.key()));
    ++n;
  }
  CHECK(n > 0);
}
double maxAbs(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }
}  // namespace

TEST(parity_r2plus1d_18_with_torchvision) {
  auto f = fixture("r2plus1d.safetensors");
  R2Plus1D18 m;
  loadPrefixed(*m, f, "weights.");
  m->eval();
  torch::NoGradGuard ng;
  auto y = m->forward(f.at("input"));
  auto ref = f.at("output");  // torchvision up to layer4 (no pooling, no fc)
  CHECK_MSG(y.sizes() == ref.sizes(), y.sizes() << " vs " << ref.sizes());
  double err = maxAbs(y, ref);
  std::cout << "r2plus1d_18: max abs error " << err << " (output max " << ref.abs().max().item<double>() << ")"
            << std::endl;
  CHECK_MSG(err <= 1e-4, "max abs error " << err);
}

TEST(parity_audio_resnet_with_torchvision_resnet18_layers) {
  auto f = fixture("resnet18.safetensors");
  AudioResNet18 m;
  loadPrefixed(*m, f, "weights.");
  m->eval();
  torch::NoGradGuard ng;
  auto y = m->forward(f.at("input"));
  double err = maxAbs(y, f.at("output"));
  std::cout << "resnet18 (audio): max abs error " << err << std::endl;
  CHECK_MSG(y.sizes() == f.at("output").sizes() && err <= 1e-4, "max abs error " << err);
}

TEST(parity_logmel_with_torchaudio) {
  auto f = fixture("logmel.safetensors");
  for (int64_t nMels : {128, 64}) {
    LogMelOptions o;
    o.nMels = nMels;
    LogMel lm(o);
    torch::NoGradGuard ng;
    auto mel = lm->melPower(f.at("wave"));
    auto ref = f.at("mel" + std::to_string(nMels));
    CHECK(mel.sizes() == ref.sizes());
    double rel = ((mel - ref).abs() / (ref.abs() + 1e-8)).masked_select(ref.abs() > 1e-6).max().item<double>();
    double relNorm = ((mel - ref).norm() / ref.norm()).item<double>();
    std::cout << "log-mel " << nMels << ": relative error (norm) " << relNorm << ", worst bin above 1e-6 " << rel
              << std::endl;
    CHECK_MSG(relNorm <= 1e-4 && rel <= 1e-4,
              "n_mels " << nMels << ": relative error " << relNorm << ", worst bin " << rel);
    auto fbRef = f.at("fb" + std::to_string(nMels));
    CHECK_MSG(maxAbs(lm->fb, fbRef) <= 1e-6, "filterbank differs by " << maxAbs(lm->fb, fbRef));
  }
}
