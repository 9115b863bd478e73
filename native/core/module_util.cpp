#include "module_util.h"

#include <torch/torch.h>

#include <set>

#include "cmac_model.h"  // shapeStr
#include "errors.h"

namespace cmac {

std::string firstFew(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < 5; ++i) s += (i ? ", " : "") + names[i];
  return s + (names.size() > 5 ? ", ... (" + std::to_string(names.size()) + " in all)" : "");
}

StateMatch matchState(const NamedTensors& targets, const std::map<std::string, torch::Tensor>& given,
                      const MatchWording& wording) {
  StateMatch m;
  std::set<std::string> used;
  for (const auto& [name, dst] : targets) {
    auto it = given.find(name);
    if (it == given.end()) {
      m.missing.push_back(name);
      continue;
    }
    used.insert(name);
    const torch::Tensor& src = it->second;
    if (!src.sizes().equals(dst.sizes()))
      valueError("weight '" + name + "' has shape " + shapeStr(src.sizes()) + " " + wording.source + " but " +
                 shapeStr(dst.sizes()) + " in " + wording.self + ". Fix: " + wording.fix(name));
    if (!src.is_floating_point() && dst.is_floating_point())
      typeError("weight '" + name + "' is " + std::string(c10::toString(src.scalar_type())) + " " + wording.source +
                ", expected a float tensor. Fix: pass floating-point weights (Float32Array), as stateDict() and "
                "checkpoints hold them.");
    m.copies.emplace_back(dst, src);
  }
  for (const auto& [k, v] : given)
    if (!used.count(k)) m.unexpected.push_back(k);
  return m;
}

void applyCopies(const WeightCopies& copies) {
  torch::NoGradGuard ng;
  for (const auto& [dst, src] : copies) dst.copy_(src.to(dst.dtype()));
}

int64_t countParameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

int64_t tensorBytes(std::initializer_list<const NamedTensors*> parts) {
  int64_t n = 0;
  for (const NamedTensors* part : parts)
    for (const auto& [k, t] : *part) n += t.numel() * t.element_size();
  return n;
}

torch::Tensor toDevice(const torch::Tensor& t, const torch::Device& device) {
  if (!device.is_cuda() || !t.is_cpu()) return t.to(device);
  try {
    return t.pin_memory().to(device, /*non_blocking=*/true);
  } catch (const c10::Error&) {
    return t.to(device);
  }
}

void applyCudaSettings(const torch::Device& device, bool cudnnBenchmark) {
  if (device.is_cuda() && cudnnBenchmark) at::globalContext().setBenchmarkCuDNN(true);
}

}  // namespace cmac
