// Waveform -> log-mel front end, method.md section 1. The mel power
// spectrogram equals torchaudio.transforms.MelSpectrogram with the same
// arguments (periodic Hann of winLength zero-padded to nFft, center with
// reflect padding, htk mel scale, no norm, power 2).
#pragma once
#include <torch/nn.h>

namespace cmac {

struct LogMelOptions {
  int64_t sampleRate = 16000;
  int64_t nFft = 1024;
  int64_t winLength = 400;
  int64_t hopLength = 160;
  int64_t nMels = 128;
  double fMin = 0.0;
  double fMax = -1.0;  // <= 0: sampleRate / 2
  double logEps = 1e-6;
};

// torchaudio.functional.melscale_fbanks(n_freqs, f_min, f_max, n_mels, sr, norm=None, mel_scale="htk").
torch::Tensor melFilterbank(int64_t nFreqs, double fMin, double fMax, int64_t nMels, int64_t sampleRate);

// SpecAugment (Park et al. 2019) on the standardised log-mel, training only
// (method.md s1): `freqMasks` bands of width U{0..freqWidth} mel bins and
// `timeMasks` spans of width U{0..timeWidth} frames, each at a uniform start,
// set to 0 (the per-bin mean after standardisation). 0 masks: off.
struct SpecAugmentOptions {
  int64_t freqMasks = 0, freqWidth = 16;
  int64_t timeMasks = 0, timeWidth = 20;
  bool enabled() const { return freqMasks > 0 || timeMasks > 0; }
};

// The keep-mask (1 keep, 0 masked) of SpecAugment for `n` clips of
// nMels x frames, drawn from `gen` (CPU): float N x 1 x nMels x frames.
torch::Tensor specAugmentMask(int64_t n, int64_t nMels, int64_t frames, const SpecAugmentOptions& o,
                              at::Generator& gen);

// Per-bin statistics of log(mel + eps) over clips and frames (float64 sums).
struct LogMelMoments {
  double count = 0;          // clips x frames seen
  torch::Tensor sum, sumSq;  // nMels, float64
};

struct LogMelImpl : torch::nn::Module {
  explicit LogMelImpl(const LogMelOptions& o = {});
  // wave: N x S float -> mel power N x nMels x frames (before the log).
  torch::Tensor melPower(const torch::Tensor& wave);
  // wave: N x S -> N x nMels x frames, log(mel + eps), not standardised.
  torch::Tensor logMel(const torch::Tensor& wave);
  // wave: N x S -> N x 1 x nMels x frames, log(mel + eps), standardised per bin.
  torch::Tensor forward(const torch::Tensor& wave);
  // Adds a batch's per-bin sums to `m` (clips in chunks of 32, so memory stays small).
  void accumulate(const torch::Tensor& wave, LogMelMoments& m);
  // Mean and population std (ddof 0, floored at 1e-5) from the sums: nMels float32 each.
  static std::pair<torch::Tensor, torch::Tensor> meanStd(const LogMelMoments& m);
  int64_t frames(int64_t samples) const { return samples / options.hopLength + 1; }
  LogMelOptions options;
  torch::Tensor window, fb, mean, std;  // buffers; mean/std: per-bin dataset statistics
};
TORCH_MODULE(LogMel);

}  // namespace cmac
