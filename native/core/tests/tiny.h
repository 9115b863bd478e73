// The tiny preset and a deterministic batch, shared by the model tests.
#pragma once
#include <torch/torch.h>

#include "cmac_model.h"

namespace cmactest {

inline cmac::ModelConfig tinyConfig(uint64_t seed = 0, const std::string& device = "cpu",
                                    const std::string& amp = "off") {
  cmac::ModelConfig c;
  c.visual.planes = {16, 32, 64, 128};
  c.visual.stemMid = 11;
  c.visual.lastStride1 = true;
  c.audio.planes = {16, 32, 64, 128};
  c.logmel.nMels = 64;
  c.seed = seed;
  c.device = device;
  c.amp = amp;
  return c;
}

// n clips of 4 frames of 64x64 and 1 s of audio, fixed by `seed`.
inline cmac::Batch fixedBatch(int64_t n, uint64_t seed) {
  auto g = at::detail::createCPUGenerator(seed);
  cmac::Batch b;
  b.video = torch::randint(0, 256, {n, 4, 64, 64, 3}, g, torch::TensorOptions().dtype(torch::kByte));
  b.audio = torch::randn({n, 16000}, g) * 0.1;
  return b;
}

}  // namespace cmactest
