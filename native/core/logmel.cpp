#include "logmel.h"

#include <cmath>

namespace cmac {

namespace {
double hzToMel(double f) { return 2595.0 * std::log10(1.0 + f / 700.0); }
}  // namespace

torch::Tensor melFilterbank(int64_t nFreqs, double fMin, double fMax, int64_t nMels, int64_t sampleRate) {
  // Same operations and dtypes as torchaudio 0.13 (float32 points, double mel bounds).
  auto allFreqs = torch::linspace(0, sampleRate / 2, nFreqs);
  auto mPts = torch::linspace(hzToMel(fMin), hzToMel(fMax), nMels + 2);
  auto fPts = 700.0 * (torch::pow(10.0, mPts / 2595.0) - 1.0);
  auto fDiff = fPts.slice(0, 1) - fPts.slice(0, 0, -1);
  auto slopes = fPts.unsqueeze(0) - allFreqs.unsqueeze(1);
  auto down = -1.0 * slopes.slice(1, 0, -2) / fDiff.slice(0, 0, -1);
  auto up = slopes.slice(1, 2) / fDiff.slice(0, 1);
  return torch::clamp_min(torch::min(down, up), 0.0);
}

LogMelImpl::LogMelImpl(const LogMelOptions& o) : options(o) {
  if (options.fMax <= 0) options.fMax = options.sampleRate / 2.0;
  window = register_buffer("window", torch::hann_window(options.winLength, torch::TensorOptions().dtype(torch::kFloat)));
  fb = register_buffer("fb", melFilterbank(options.nFft / 2 + 1, options.fMin, options.fMax, options.nMels,
                                           options.sampleRate));
  mean = register_buffer("mean", torch::zeros({options.nMels}));
  std = register_buffer("std", torch::ones({options.nMels}));
}

torch::Tensor LogMelImpl::melPower(const torch::Tensor& wave) {
  auto spec = torch::stft(wave, options.nFft, options.hopLength, options.winLength, window,
                          /*center=*/true, "reflect", /*normalized=*/false, /*onesided=*/true,
                          /*return_complex=*/true);
  auto power = spec.abs().pow(2);  // |stft|^2, N x freqs x frames (torchaudio's op sequence: 2.6x faster than view_as_real(..).pow(2).sum(-1))
  return torch::matmul(power.transpose(-1, -2), fb).transpose(-1, -2);
}

torch::Tensor LogMelImpl::forward(const torch::Tensor& wave) {
  auto logmel = torch::log(melPower(wave) + options.logEps);
  logmel = (logmel - mean.view({1, -1, 1})) / std.view({1, -1, 1});
  return logmel.unsqueeze(1);
}

}  // namespace cmac
