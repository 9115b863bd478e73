#include <torch/torch.h>

#include "losses.h"
#include "test.h"

using namespace cmac;

namespace {
torch::Tensor unit(torch::Tensor x) { return x / x.norm(2, 1, true); }

// method.md s4 written as a plain loop.
double naiveContrastive(const torch::Tensor& zv, const torch::Tensor& za, double tau, bool within) {
  auto e = [&](const torch::Tensor& x, const torch::Tensor& y) { return std::exp((x * y).sum().item<double>() / tau); };
  const int64_t B = zv.size(0);
  double lv = 0, la = 0;
  for (int64_t i = 0; i < B; ++i) {
    double dv = 0, da = 0;
    for (int64_t j = 0; j < B; ++j) {
      dv += e(zv[i], za[j]);
      da += e(za[i], zv[j]);
      if (within && j != i) {
        dv += e(zv[i], zv[j]);
        da += e(za[i], za[j]);
      }
    }
    lv += -std::log(e(zv[i], za[i]) / dv);
    la += -std::log(e(za[i], zv[i]) / da);
  }
  return 0.5 * (lv / B + la / B);
}
}  // namespace

TEST(contrastive_matches_naive_loop_with_and_without_within_negatives) {
  torch::manual_seed(1);
  auto zv = unit(torch::randn({5, 8}, torch::kDouble)), za = unit(torch::randn({5, 8}, torch::kDouble));
  for (bool within : {false, true}) {
    double got = contrastiveLoss(zv, za, 0.07, within).item<double>();
    CHECK_CLOSE(got, naiveContrastive(zv, za, 0.07, within), 1e-9);
  }
  // The within-modal terms only add to the denominator: the loss grows.
  CHECK(contrastiveLoss(zv, za, 0.07, true).item<double>() > contrastiveLoss(zv, za, 0.07, false).item<double>());
}

TEST(contrastive_drops_when_positives_identical) {
  torch::manual_seed(2);
  auto zv = unit(torch::randn({6, 16}, torch::kDouble)), za = unit(torch::randn({6, 16}, torch::kDouble));
  double before = contrastiveLoss(zv, za, 0.07, true).item<double>();
  double after = contrastiveLoss(zv, zv.clone(), 0.07, true).item<double>();
  CHECK_MSG(after < before, after << " vs " << before);
}

TEST(contrastive_queue_adds_negatives) {
  torch::manual_seed(3);
  auto zv = unit(torch::randn({4, 8}, torch::kDouble)), za = unit(torch::randn({4, 8}, torch::kDouble));
  auto qv = unit(torch::randn({3, 8}, torch::kDouble)), qa = unit(torch::randn({3, 8}, torch::kDouble));
  // Equivalent to a naive loop whose negatives include the queued embeddings.
  double tau = 0.1;
  auto e = [&](const torch::Tensor& x, const torch::Tensor& y) { return std::exp((x * y).sum().item<double>() / tau); };
  double lv = 0, la = 0;
  for (int64_t i = 0; i < 4; ++i) {
    double dv = 0, da = 0;
    for (int64_t j = 0; j < 4; ++j) {
      dv += e(zv[i], za[j]) + (j != i ? e(zv[i], zv[j]) : 0);
      da += e(za[i], zv[j]) + (j != i ? e(za[i], za[j]) : 0);
    }
    for (int64_t k = 0; k < 3; ++k) {
      dv += e(zv[i], qa[k]) + e(zv[i], qv[k]);
      da += e(za[i], qv[k]) + e(za[i], qa[k]);
    }
    lv -= std::log(e(zv[i], za[i]) / dv);
    la -= std::log(e(za[i], zv[i]) / da);
  }
  CHECK_CLOSE(contrastiveLoss(zv, za, tau, true, qv, qa).item<double>(), 0.5 * (lv + la) / 4, 1e-9);
}

TEST(kl_is_zero_when_alpha_equals_beta_and_positive_otherwise) {
  torch::manual_seed(4);
  auto logits = torch::log_softmax(torch::randn({3, 10}, torch::kDouble), 1);
  CHECK_CLOSE(attentionConsistencyLoss(logits, logits).item<double>(), 0.0, 1e-12);
  auto other = torch::log_softmax(torch::randn({3, 10}, torch::kDouble), 1);
  CHECK(attentionConsistencyLoss(logits, other).item<double>() > 0);
}

TEST(guided_target_is_softmax_over_regions) {
  torch::manual_seed(5);
  auto z = unit(torch::randn({2, 4}, torch::kDouble));
  auto local = torch::randn({2, 6, 4}, torch::kDouble);
  auto lt = guidedTargetLogits(z, local, 0.1);
  CHECK_CLOSE(lt.exp().sum(1)[0].item<double>(), 1.0, 1e-12);
  double manual = (local[1][3] * z[1]).sum().item<double>() / 0.1;
  auto row = torch::mv(local[1], z[1]) / 0.1;
  CHECK_CLOSE(lt[1][3].item<double>(), manual - torch::logsumexp(row, 0).item<double>(), 1e-12);
}

TEST(losses_pass_gradcheck_in_double) {
  torch::manual_seed(6);
  // Finite differences against autograd for every loss, in float64.
  auto check = [](std::function<torch::Tensor(const torch::Tensor&)> f, torch::Tensor x) {
    x = x.detach().requires_grad_(true);
    auto y = f(x);
    auto g = torch::autograd::grad({y}, {x})[0];
    auto flat = x.detach().flatten();
    const double h = 1e-6;
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / 12)) {
      auto xp = flat.clone(), xm = flat.clone();
      xp[i] += h;
      xm[i] -= h;
      double num = (f(xp.view(x.sizes())).item<double>() - f(xm.view(x.sizes())).item<double>()) / (2 * h);
      CHECK_CLOSE(g.flatten()[i].item<double>(), num, 1e-6 + 1e-5 * std::abs(num));
    }
  };
  auto za = unit(torch::randn({4, 6}, torch::kDouble));
  for (bool within : {false, true})
    check([&](const torch::Tensor& zv) { return contrastiveLoss(unit(zv), za, 0.07, within); },
          torch::randn({4, 6}, torch::kDouble));
  auto qa = unit(torch::randn({3, 6}, torch::kDouble)), qv = unit(torch::randn({3, 6}, torch::kDouble));
  check([&](const torch::Tensor& zv) { return contrastiveLoss(unit(zv), za, 0.07, true, qv, qa); },
        torch::randn({4, 6}, torch::kDouble));
  auto target = torch::log_softmax(torch::randn({4, 5}, torch::kDouble), 1);
  check([&](const torch::Tensor& a) { return attentionConsistencyLoss(target, torch::log_softmax(a, 1)); },
        torch::randn({4, 5}, torch::kDouble));
  auto local = torch::randn({4, 5, 6}, torch::kDouble);
  auto logAlpha = torch::log_softmax(torch::randn({4, 5}, torch::kDouble), 1);
  check(
      [&](const torch::Tensor& z) {
        return attentionConsistencyLoss(guidedTargetLogits(unit(z), local, 0.1), logAlpha);
      },
      torch::randn({4, 6}, torch::kDouble));
}

TEST(kl_direction_is_kl_of_target_against_alpha_on_a_hand_computed_case) {
  // method.md s4: L = mean_i KL(beta_i || alpha_i) = mean_i sum_n beta_n (log beta_n - log alpha_n).
  // Row 0: beta (0.5, 0.5), alpha (0.25, 0.75): 0.5 ln 2 + 0.5 ln(2/3) = 0.5 ln(4/3).
  // Row 1: beta (0.9, 0.1), alpha (0.5, 0.5): 0.9 ln 1.8 + 0.1 ln 0.2.
  auto beta = torch::tensor({0.5, 0.5, 0.9, 0.1}, torch::kDouble).view({2, 2});
  auto alpha = torch::tensor({0.25, 0.75, 0.5, 0.5}, torch::kDouble).view({2, 2});
  const double forward = 0.5 * (0.5 * std::log(4.0 / 3.0) + (0.9 * std::log(1.8) + 0.1 * std::log(0.2)));
  const double reverse =
      0.5 * (0.25 * std::log(0.5) + 0.75 * std::log(1.5) + 0.5 * std::log(0.5 / 0.9) + 0.5 * std::log(5.0));
  CHECK_CLOSE(forward, 0.25595262169719374, 1e-15);  // the same numbers written out (python, math.log)
  CHECK_CLOSE(reverse, 0.3208188298535638, 1e-15);
  CHECK_CLOSE(attentionConsistencyLoss(beta.log(), alpha.log()).item<double>(), forward, 1e-12);
  // The gradient goes to alpha as d/dlogalpha KL(beta||softmax) = softmax - beta per row, / B.
  auto la = alpha.log().requires_grad_(true);
  auto logAlpha = torch::log_softmax(la, 1);
  attentionConsistencyLoss(beta.log(), logAlpha).backward();
  CHECK(torch::allclose(la.grad(), (alpha - beta) / 2, 1e-12, 1e-12));
}

TEST(retrieval_accuracy_is_read_off_the_cross_modal_logits) {
  torch::manual_seed(11);
  // Naive loop: anchor i counts when its most similar candidate of the other modality is i.
  auto naive = [](const torch::Tensor& zv, const torch::Tensor& za, const torch::Tensor& keysV,
                  const torch::Tensor& keysA, int64_t offset) {
    const int64_t B = zv.size(0), K = keysA.size(0);
    double hits = 0;
    for (int64_t i = 0; i < B; ++i) {
      int64_t bestV = 0, bestA = 0;
      for (int64_t j = 1; j < K; ++j) {
        if ((zv[i] * keysA[j]).sum().item<double>() > (zv[i] * keysA[bestV]).sum().item<double>()) bestV = j;
        if ((za[i] * keysV[j]).sum().item<double>() > (za[i] * keysV[bestA]).sum().item<double>()) bestA = j;
      }
      hits += (bestV == i + offset) + (bestA == i + offset);
    }
    return hits / (2.0 * B);
  };
  auto zv = unit(torch::randn({8, 4}, torch::kDouble));
  auto za = unit(zv + 0.6 * torch::randn({8, 4}, torch::kDouble));  // some pairs retrieved, some not
  auto qv = unit(torch::randn({5, 4}, torch::kDouble)), qa = unit(torch::randn({5, 4}, torch::kDouble));
  const double want = naive(zv, za, zv, za, 0);
  CHECK_MSG(want > 0.2 && want < 0.9, "the case must have both hits and misses, got " << want);
  for (bool within : {false, true}) {  // within-modal and queued negatives are not retrieval candidates
    torch::Tensor acc;
    auto loss = contrastiveLoss(zv, za, 0.07, within, qv, qa, {}, {}, 0, &acc);
    CHECK(acc.dim() == 0 && !acc.requires_grad());
    CHECK_CLOSE(acc.item<double>(), want, 1e-12);
    CHECK_CLOSE(loss.item<double>(), contrastiveLoss(zv, za, 0.07, within, qv, qa).item<double>(), 0);
  }
  // Gathered keys (data parallel): this rank's batch at rows 3..10 of 14.
  auto kv = torch::cat({unit(torch::randn({3, 4}, torch::kDouble)), zv, unit(torch::randn({3, 4}, torch::kDouble))});
  auto ka = torch::cat({unit(torch::randn({3, 4}, torch::kDouble)), za, unit(torch::randn({3, 4}, torch::kDouble))});
  torch::Tensor acc;
  contrastiveLoss(zv, za, 0.07, true, {}, {}, kv, ka, 3, &acc);
  CHECK_CLOSE(acc.item<double>(), naive(zv, za, kv, ka, 3), 1e-12);
  contrastiveLoss(zv, zv.clone(), 0.07, true, {}, {}, {}, {}, 0, &acc);
  CHECK_CLOSE(acc.item<double>(), 1.0, 0);
}

#include "linear_probe.h"

TEST(logistic_regression_separates_classes_and_regularises) {
  torch::manual_seed(9);
  // Three Gaussian blobs in 5-D.
  auto centres = torch::randn({3, 5}) * 3;
  auto y = torch::arange(60, torch::kLong) % 3;
  auto x = centres.index_select(0, y) + torch::randn({60, 5}) * 0.5;
  auto r = fitLogisticRegression(x, y, 3, 1e-3);
  auto pred = torch::addmm(r.bias, x, r.weight.t()).argmax(1);
  CHECK(pred.eq(y).all().item<bool>());
  auto strong = fitLogisticRegression(x, y, 3, 10.0);
  CHECK(strong.weight.norm().item<double>() < r.weight.norm().item<double>());
  // Gradient at the optimum is ~0: compare with a tiny perturbation of the loss.
  CHECK(r.loss > 0 && r.iterations > 1);
  CHECK_THROWS(fitLogisticRegression(x, y, 2, 1e-3), "labels must lie in");
  CHECK_THROWS(fitLogisticRegression(x, y.to(torch::kFloat), 3, 1e-3), "labels must be integers");
}
