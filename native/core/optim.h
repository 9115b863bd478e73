// SGD (momentum, nesterov), Adam and AdamW with the update rules of
// torch.optim (single-tensor, non-foreach path), learning rate passed per
// step. Written here rather than torch::optim so the state has stable names
// ("optim.<param>.<slot>") for safetensors checkpoints and exact resume.
#pragma once
#include <torch/types.h>

#include <string>
#include <vector>

#include "safetensors.h"

namespace cmac {

struct OptimOptions {
  std::string name = "adam";  // sgd | adam | adamw
  double momentum = 0.9;      // sgd
  bool nesterov = false;      // sgd
  double weightDecay = 1e-5;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam, adamw
  // Adam/AdamW through the multi-tensor _foreach_* kernels (torch.optim's
  // foreach path): one launch per op for all parameters instead of one per
  // parameter. Auto = on when the parameters are on CUDA; CPU keeps the
  // single-tensor rule (bit-for-bit torch.optim.Adam(foreach=False)).
  enum class Foreach { Auto, On, Off } foreach = Foreach::Auto;
};

// L2 norm of all defined gradients of `params` (0 when none): one
// _foreach_norm launch on CUDA, per-tensor norms (as torch) on CPU.
double gradNorm(const std::vector<torch::Tensor>& params);

class Optimizer {
 public:
  Optimizer(NamedTensors params, OptimOptions o);
  void step(double lr);
  void zeroGrad();
  int64_t steps() const { return steps_; }
  NamedTensors state() const;
  // Checked state, ready to apply: prepareState() validates everything (names,
  // shapes, the optimiser kind) and changes nothing; applyState() cannot fail.
  struct Prepared {
    int64_t steps = 0;
    std::vector<std::pair<torch::Tensor, torch::Tensor>> bufs;  // per slot, in slot order
  };
  Prepared prepareState(const NamedTensors& state) const;
  void applyState(Prepared p);
  // Restores state written by state(); names and shapes must match (all or nothing).
  void loadState(const NamedTensors& state) { applyState(prepareState(state)); }
  const OptimOptions& options() const { return o_; }

 private:
  struct Slot {
    std::string name;
    torch::Tensor param, buf1, buf2;
  };
  void adamForeach(double lr);
  OptimOptions o_;
  std::vector<Slot> slots_;
  int64_t steps_ = 0;
};

}  // namespace cmac
