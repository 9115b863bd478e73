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

struct LogMelImpl : torch::nn::Module {
  explicit LogMelImpl(const LogMelOptions& o = {});
  // wave: N x S float -> mel power N x nMels x frames (before the log).
  torch::Tensor melPower(const torch::Tensor& wave);
  // wave: N x S -> N x 1 x nMels x frames, log(mel + eps), standardised per bin.
  torch::Tensor forward(const torch::Tensor& wave);
  int64_t frames(int64_t samples) const { return samples / options.hopLength + 1; }
  LogMelOptions options;
  torch::Tensor window, fb, mean, std;  // buffers; mean/std: per-bin dataset statistics
};
TORCH_MODULE(LogMel);

}  // namespace cmac
