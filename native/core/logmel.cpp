#include "logmel.h"

#include <algorithm>
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
  window =
      register_buffer("window", torch::hann_window(options.winLength, torch::TensorOptions().dtype(torch::kFloat)));
  fb = register_buffer(
      "fb", melFilterbank(options.nFft / 2 + 1, options.fMin, options.fMax, options.nMels, options.sampleRate));
  mean = register_buffer("mean", torch::zeros({options.nMels}));
  std = register_buffer("std", torch::ones({options.nMels}));
}

torch::Tensor LogMelImpl::melPower(const torch::Tensor& wave) {
  auto spec = torch::stft(wave, options.nFft, options.hopLength, options.winLength, window,
                          /*center=*/true, "reflect", /*normalized=*/false, /*onesided=*/true,
                          /*return_complex=*/true);
  auto power = spec.abs().pow(
      2);  // |stft|^2, N x freqs x frames (torchaudio's op sequence: 2.6x faster than view_as_real(..).pow(2).sum(-1))
  // The filterbank as a 1x1 convolution (mels x freqs x 1) on N x freqs x frames: the same sums as
  // torchaudio's matmul(power^T, fb)^T, computed by oneDNN. A matmul goes to the system BLAS, which
  // on Debian is the netlib reference (libblas3) unless OpenBLAS is installed: 90-100 ms against
  // 2.5-6 ms for a tiny batch of 32 (1-2 threads), about a tenth of a tiny training step.
  auto w = fb.t().contiguous().unsqueeze(-1);
  if (power.dim() == 2) return at::conv1d(power.unsqueeze(0), w).squeeze(0);
  return at::conv1d(power, w);
}

torch::Tensor LogMelImpl::logMel(const torch::Tensor& wave) { return torch::log(melPower(wave) + options.logEps); }

torch::Tensor LogMelImpl::forward(const torch::Tensor& wave) {
  auto logmel = logMel(wave);
  logmel = (logmel - mean.view({1, -1, 1})) / std.view({1, -1, 1});
  return logmel.unsqueeze(1);
}

void LogMelImpl::accumulate(const torch::Tensor& wave, LogMelMoments& m) {
  torch::NoGradGuard ng;
  if (!m.sum.defined()) {
    m.sum = torch::zeros({options.nMels}, torch::kDouble);
    m.sumSq = torch::zeros({options.nMels}, torch::kDouble);
  }
  for (int64_t i = 0; i < wave.size(0); i += 32) {
    auto lm = logMel(wave.slice(0, i, std::min(wave.size(0), i + 32))).to(torch::kCPU, torch::kDouble);  // n x F x T
    m.sum += lm.sum(at::IntArrayRef{0, 2});
    m.sumSq += lm.pow(2).sum(at::IntArrayRef{0, 2});
    m.count += static_cast<double>(lm.size(0) * lm.size(2));
  }
}

std::pair<torch::Tensor, torch::Tensor> LogMelImpl::meanStd(const LogMelMoments& m) {
  auto mean = m.sum / m.count;
  auto var = (m.sumSq / m.count - mean * mean).clamp_min(0);
  return {mean.to(torch::kFloat), var.sqrt().clamp_min(1e-5).to(torch::kFloat)};
}

torch::Tensor specAugmentMask(int64_t n, int64_t nMels, int64_t frames, const SpecAugmentOptions& o,
                              at::Generator& gen) {
  auto keep = torch::ones({n, 1, nMels, frames});
  auto draw = [&](int64_t hi) {  // uniform integer in [0, hi]
    return torch::randint(hi + 1, {1}, gen, torch::kLong).item<int64_t>();
  };
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t k = 0; k < o.freqMasks; ++k) {
      const int64_t w = draw(std::min(o.freqWidth, nMels));
      const int64_t f0 = draw(nMels - w);
      keep[i][0].slice(0, f0, f0 + w).zero_();
    }
    for (int64_t k = 0; k < o.timeMasks; ++k) {
      const int64_t w = draw(std::min(o.timeWidth, frames));
      const int64_t t0 = draw(frames - w);
      keep[i][0].slice(1, t0, t0 + w).zero_();
    }
  }
  return keep;
}

}  // namespace cmac
