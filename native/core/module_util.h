// Pieces CmacModel and VideoClassifier share instead of each keeping a copy:
// short name lists for error messages, a train/eval mode guard, the check
// phase of a state-dict load (names, shapes, dtypes) with its apply phase,
// and the counts behind numParameters() / stateBytes().
#pragma once
#include <torch/nn.h>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "safetensors.h"

namespace cmac {

// "a, b, c, d, e, ... (12 in all)": the first five names, for error messages.
std::string firstFew(const std::vector<std::string>& names);

// A host tensor onto `device`. To CUDA: through pinned (page-locked) memory and an asynchronous copy
// (libtorch's caching host allocator keeps the pinned block until the copy is done); if pinning
// fails, a plain copy. Other devices: t.to(device).
torch::Tensor toDevice(const torch::Tensor& t, const torch::Device& device);

// A CUDA model's process-wide settings: cuDNN benchmark mode when asked (no effect on CPU).
void applyCudaSettings(const torch::Device& device, bool cudnnBenchmark);

// Sets a module's train/eval mode for a scope, then restores the previous one
// (inference runs in eval mode whatever the caller's mode).
class ModeGuard {
 public:
  ModeGuard(torch::nn::Module& m, bool train) : m_(m), was_(m.is_training()) { m_.train(train); }
  ~ModeGuard() { m_.train(was_); }
  ModeGuard(const ModeGuard&) = delete;
  ModeGuard& operator=(const ModeGuard&) = delete;

 private:
  torch::nn::Module& m_;
  bool was_;
};

// (destination, source) pairs: what a checked load copies.
using WeightCopies = std::vector<std::pair<torch::Tensor, torch::Tensor>>;

struct StateMatch {
  WeightCopies copies;                  // each target found in the given weights
  std::vector<std::string> missing;     // targets the given weights lack
  std::vector<std::string> unexpected;  // given names no target has
};

// How the errors of matchState() name things: "weight 'x' has shape [2] <source>
// but [3] in <self>. Fix: <fix(name)>".
struct MatchWording {
  std::string source;  // "in the checkpoint"
  std::string self;    // "this model"
  std::function<std::string(const std::string& name)> fix;
};

// Pairs each target with the given tensor of the same name. A shape mismatch
// (ValueError) or an integer tensor for a float target (TypeError) throws,
// naming the weight; missing and unexpected names are returned for the caller
// to judge (strict or not). Copies nothing.
StateMatch matchState(const NamedTensors& targets, const std::map<std::string, torch::Tensor>& given,
                      const MatchWording& wording);

// The apply phase: copies each source into its destination (in the
// destination's dtype) without recording gradients. Cannot fail once
// matchState() passed, so a load changes all or nothing.
void applyCopies(const WeightCopies& copies);

// Elements in a module's parameters.
int64_t countParameters(const torch::nn::Module& m);
// Bytes of the tensors of one or more lists (memory accounting).
int64_t tensorBytes(std::initializer_list<const NamedTensors*> parts);

}  // namespace cmac
