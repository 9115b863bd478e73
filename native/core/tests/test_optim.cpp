// The optimiser's two Adam paths: the multi-tensor (_foreach_*) path that CUDA
// uses must follow the single-tensor rule that matches torch.optim.Adam.
#include <torch/torch.h>

#include "optim.h"
#include "test.h"

using namespace cmac;

TEST(adam_foreach_path_matches_the_single_tensor_rule) {
  for (const char* name : {"adam", "adamw"}) {
    torch::manual_seed(3);
    NamedTensors a, b;
    for (int i = 0; i < 4; ++i) {
      auto p = torch::randn({7 + i, 5});
      a.emplace_back("p" + std::to_string(i), p.clone().requires_grad_(true));
      b.emplace_back("p" + std::to_string(i), p.clone().requires_grad_(true));
    }
    OptimOptions o;
    o.name = name;
    o.weightDecay = 1e-2;
    o.foreach = OptimOptions::Foreach::Off;
    Optimizer single(a, o);
    o.foreach = OptimOptions::Foreach::On;
    Optimizer multi(b, o);
    for (int step = 0; step < 5; ++step) {
      for (size_t i = 0; i < a.size(); ++i) {
        auto g = torch::randn_like(a[i].second);
        if (step == 2 && i == 1) continue;  // a parameter without a gradient this step: skipped by both
        a[i].second.mutable_grad() = g.clone();
        b[i].second.mutable_grad() = g.clone();
      }
      single.step(1e-2);
      multi.step(1e-2);
      single.zeroGrad();
      multi.zeroGrad();
    }
    double worst = 0;
    for (size_t i = 0; i < a.size(); ++i)
      worst = std::max(worst, (a[i].second - b[i].second).abs().max().item<double>());
    CHECK_MSG(worst < 1e-6, name << ": parameters differ by " << worst);
    auto sa = single.state(), sb = multi.state();
    CHECK(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      CHECK(sa[i].first == sb[i].first);
      double d = (sa[i].second.to(torch::kDouble) - sb[i].second.to(torch::kDouble)).abs().max().item<double>();
      CHECK_MSG(d < 1e-6, name << ": state " << sa[i].first << " differs by " << d);
    }
  }
}
