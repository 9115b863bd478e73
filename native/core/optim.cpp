#include "optim.h"

#include <torch/torch.h>

#include <cmath>
#include <map>

#include "errors.h"

namespace cmac {

Optimizer::Optimizer(NamedTensors params, OptimOptions o) : o_(std::move(o)) {
  if (o_.name != "sgd" && o_.name != "adam" && o_.name != "adamw")
    valueError("optim.name must be one of sgd, adam, adamw; got '" + o_.name + "'");
  for (auto& [name, p] : params) slots_.push_back({name, p, {}, {}});
}

void Optimizer::zeroGrad() {
  for (auto& s : slots_)
    if (s.param.grad().defined()) s.param.mutable_grad() = torch::Tensor();
}

void Optimizer::step(double lr) {
  torch::NoGradGuard ng;
  ++steps_;
  const double wd = o_.weightDecay;
  for (auto& s : slots_) {
    auto& p = s.param;
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    if (o_.name == "sgd") {
      if (wd != 0) g = g.add(p, wd);
      if (o_.momentum != 0) {
        if (!s.buf1.defined()) s.buf1 = g.clone();
        else s.buf1.mul_(o_.momentum).add_(g);
        g = o_.nesterov ? g.add(s.buf1, o_.momentum) : s.buf1;
      }
      p.add_(g, -lr);
      continue;
    }
    if (o_.name == "adamw") p.mul_(1 - lr * wd);
    else if (wd != 0) g = g.add(p, wd);
    if (!s.buf1.defined()) {
      s.buf1 = torch::zeros_like(p);
      s.buf2 = torch::zeros_like(p);
    }
    s.buf1.lerp_(g, 1 - o_.beta1);
    s.buf2.mul_(o_.beta2).addcmul_(g, g.conj(), 1 - o_.beta2);
    const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(steps_));
    const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(steps_));
    auto denom = (s.buf2.sqrt() / std::sqrt(bc2)).add_(o_.eps);
    p.addcdiv_(s.buf1, denom, -lr / bc1);
  }
}

NamedTensors Optimizer::state() const {
  NamedTensors out;
  out.emplace_back("optim.step", torch::tensor({steps_}, torch::kLong));
  const char* n1 = o_.name == "sgd" ? "momentum_buffer" : "exp_avg";
  for (const auto& s : slots_) {
    if (s.buf1.defined()) out.emplace_back("optim." + s.name + "." + n1, s.buf1);
    if (s.buf2.defined()) out.emplace_back("optim." + s.name + ".exp_avg_sq", s.buf2);
  }
  return out;
}

void Optimizer::loadState(const NamedTensors& state) {
  std::map<std::string, torch::Tensor> byName(state.begin(), state.end());
  auto it = byName.find("optim.step");
  if (it == byName.end() || it->second.numel() != 1)
    valueError("optimizer state has no 'optim.step'. Fix: load a checkpoint written by cmac's save().");
  const int64_t steps = it->second.to(torch::kLong).item<int64_t>();
  const char* n1 = o_.name == "sgd" ? "momentum_buffer" : "exp_avg";
  std::vector<std::pair<torch::Tensor, torch::Tensor>> bufs;
  for (const auto& s : slots_) {
    auto b1 = byName.find("optim." + s.name + "." + n1);
    auto b2 = byName.find("optim." + s.name + ".exp_avg_sq");
    torch::Tensor t1, t2;
    if (b1 != byName.end()) {
      if (!b1->second.sizes().equals(s.param.sizes()))
        valueError("optimizer state '" + b1->first + "' has the wrong shape. Fix: resume with the config the checkpoint was written with.");
      t1 = b1->second.to(s.param.options()).clone();
    }
    if (b2 != byName.end()) {
      if (!b2->second.sizes().equals(s.param.sizes()))
        valueError("optimizer state '" + b2->first + "' has the wrong shape. Fix: resume with the config the checkpoint was written with.");
      t2 = b2->second.to(s.param.options()).clone();
    }
    if (o_.name != "sgd" && t1.defined() != t2.defined())
      valueError("optimizer state for '" + s.name + "' is incomplete (exp_avg and exp_avg_sq must come together)");
    bufs.emplace_back(t1, t2);
  }
  steps_ = steps;
  for (size_t i = 0; i < slots_.size(); ++i) {
    slots_[i].buf1 = bufs[i].first;
    slots_[i].buf2 = bufs[i].second;
  }
}

}  // namespace cmac
