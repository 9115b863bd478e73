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

double gradNorm(const std::vector<torch::Tensor>& params) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> grads, norms;
  for (const auto& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  if (grads.empty()) return 0.0;
  if (grads.front().is_cuda())
    norms = at::_foreach_norm(grads, 2);
  else
    for (const auto& g : grads) norms.push_back(g.norm(2).to(torch::kFloat));
  return torch::stack(norms).norm(2).item<double>();
}

void Optimizer::zeroGrad() {
  for (auto& s : slots_)
    if (s.param.grad().defined()) s.param.mutable_grad() = torch::Tensor();
}

void Optimizer::adamForeach(double lr) {
  std::vector<torch::Tensor> ps, gs, m, v;
  for (auto& s : slots_) {
    if (!s.param.grad().defined()) continue;
    if (!s.buf1.defined()) {
      s.buf1 = torch::zeros_like(s.param);
      s.buf2 = torch::zeros_like(s.param);
    }
    ps.push_back(s.param), gs.push_back(s.param.grad()), m.push_back(s.buf1), v.push_back(s.buf2);
  }
  if (ps.empty()) return;
  const double wd = o_.weightDecay;
  if (o_.name == "adamw")
    at::_foreach_mul_(ps, 1 - lr * wd);
  else if (wd != 0)
    gs = at::_foreach_add(gs, ps, wd);
  at::_foreach_mul_(m, o_.beta1);  // exp_avg = beta1 * exp_avg + (1 - beta1) * g (the lerp of the single-tensor rule)
  at::_foreach_add_(m, gs, 1 - o_.beta1);
  at::_foreach_mul_(v, o_.beta2);
  at::_foreach_addcmul_(v, gs, gs, 1 - o_.beta2);
  const double bc1 = 1 - std::pow(o_.beta1, static_cast<double>(steps_));
  const double bc2 = 1 - std::pow(o_.beta2, static_cast<double>(steps_));
  auto denom = at::_foreach_sqrt(v);
  at::_foreach_div_(denom, std::sqrt(bc2));
  at::_foreach_add_(denom, o_.eps);
  at::_foreach_addcdiv_(ps, m, denom, -lr / bc1);
}

void Optimizer::step(double lr) {
  torch::NoGradGuard ng;
  ++steps_;
  if (o_.name != "sgd" && !slots_.empty() &&
      (o_.foreach == OptimOptions::Foreach::On ||
       (o_.foreach == OptimOptions::Foreach::Auto && slots_.front().param.is_cuda()))) {
    adamForeach(lr);
    return;
  }
  const double wd = o_.weightDecay;
  for (auto& s : slots_) {
    auto& p = s.param;
    if (!p.grad().defined()) continue;
    torch::Tensor g = p.grad();
    if (o_.name == "sgd") {
      if (wd != 0) g = g.add(p, wd);
      if (o_.momentum != 0) {
        if (!s.buf1.defined())
          s.buf1 = g.clone();
        else
          s.buf1.mul_(o_.momentum).add_(g);
        g = o_.nesterov ? g.add(s.buf1, o_.momentum) : s.buf1;
      }
      p.add_(g, -lr);
      continue;
    }
    if (o_.name == "adamw")
      p.mul_(1 - lr * wd);
    else if (wd != 0)
      g = g.add(p, wd);
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

namespace {
bool endsWith(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}
}  // namespace

Optimizer::Prepared Optimizer::prepareState(const NamedTensors& state) const {
  std::map<std::string, torch::Tensor> byName(state.begin(), state.end());
  auto it = byName.find("optim.step");
  if (it == byName.end() || it->second.numel() != 1)
    valueError("optimizer state has no 'optim.step'. Fix: load a checkpoint written by cmac's save().");
  // The buffers' names tell the kind: SGD keeps momentum_buffer, Adam/AdamW exp_avg and exp_avg_sq.
  const bool sgd = o_.name == "sgd";
  for (const auto& [k, v] : byName) {
    if (k.rfind("optim.", 0) != 0) continue;
    const bool sgdBuf = endsWith(k, ".momentum_buffer");
    const bool adamBuf = endsWith(k, ".exp_avg") || endsWith(k, ".exp_avg_sq");
    if ((sgd && adamBuf) || (!sgd && sgdBuf))
      valueError(std::string("the checkpoint's optimizer state is ") +
                 (sgdBuf ? "SGD (momentum_buffer)" : "Adam/AdamW (exp_avg, exp_avg_sq)") + " (e.g. '" + k +
                 "') but this model's optimizer is " + o_.name + ". Fix: create the model with optim.name " +
                 (sgdBuf ? "'sgd'" : "'adam' or 'adamw'") +
                 " as the checkpoint was trained, or load only the weights with loadStateDict().");
  }
  Prepared p;
  p.steps = it->second.to(torch::kLong).item<int64_t>();
  const char* n1 = sgd ? "momentum_buffer" : "exp_avg";
  auto buffer = [&](const std::string& key, const Slot& s) {
    auto b = byName.find(key);
    if (b == byName.end()) return torch::Tensor();
    if (!b->second.sizes().equals(s.param.sizes()))
      valueError("optimizer state '" + key +
                 "' has the wrong shape. Fix: resume with the config the checkpoint was written with.");
    return b->second.to(s.param.options()).clone();
  };
  for (const auto& s : slots_) {
    torch::Tensor t1 = buffer("optim." + s.name + "." + n1, s);
    torch::Tensor t2 = buffer("optim." + s.name + ".exp_avg_sq", s);
    if (!sgd && t1.defined() != t2.defined())
      valueError("optimizer state for '" + s.name +
                 "' is incomplete (exp_avg and exp_avg_sq must come together). Fix: load a checkpoint written by "
                 "cmac's save().");
    p.bufs.emplace_back(t1, t2);
  }
  return p;
}

void Optimizer::applyState(Prepared p) {
  steps_ = p.steps;
  for (size_t i = 0; i < slots_.size() && i < p.bufs.size(); ++i) {
    slots_[i].buf1 = std::move(p.bufs[i].first);
    slots_[i].buf2 = std::move(p.bufs[i].second);
  }
}

}  // namespace cmac
