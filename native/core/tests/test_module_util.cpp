// module_util.h: the pieces CmacModel and VideoClassifier share (short name
// lists, the mode guard, the checked state-dict load), and the loss function
// trainStep and evaluateLoss share (CmacModel::computeLosses).
#include <torch/torch.h>

#include "classifier.h"
#include "cmac_model.h"
#include "errors.h"
#include "module_util.h"
#include "test.h"
#include "tiny.h"

using namespace cmac;

using cmactest::fixedBatch;
using cmactest::tinyConfig;

namespace {
MatchWording wording() {
  return {"in the test weights", "this test module", [](const std::string& n) { return "fix for " + n; }};
}
}  // namespace

TEST(first_few_lists_five_names_then_the_count) {
  CHECK(firstFew({}) == "");
  CHECK(firstFew({"a", "b"}) == "a, b");
  CHECK(firstFew({"a", "b", "c", "d", "e"}) == "a, b, c, d, e");
  CHECK_MSG(firstFew({"a", "b", "c", "d", "e", "f", "g"}) == "a, b, c, d, e, ... (7 in all)",
            firstFew({"a", "b", "c", "d", "e", "f", "g"}));
}

TEST(parameter_and_byte_counts) {
  torch::nn::Linear lin(2, 3);
  CHECK(countParameters(*lin) == 9);
  NamedTensors a{{"x", torch::zeros({4})}},
      b{{"y", torch::zeros({2}, torch::kDouble)}, {"z", torch::zeros({3}, torch::kByte)}};
  CHECK(tensorBytes({&a, &b}) == 4 * 4 + 2 * 8 + 3);
  CHECK(tensorBytes({}) == 0);
}

TEST(mode_guard_restores_the_mode_on_scope_exit_and_on_throw) {
  torch::nn::Linear lin(2, 2);
  lin->train(true);
  {
    ModeGuard g(*lin, false);
    CHECK(!lin->is_training());
  }
  CHECK(lin->is_training());
  lin->eval();
  try {
    ModeGuard g(*lin, true);
    CHECK(lin->is_training());
    throw std::runtime_error("inside");
  } catch (const std::runtime_error&) {}
  CHECK(!lin->is_training());
}

TEST(match_state_pairs_names_and_reports_missing_unexpected_shape_and_dtype) {
  NamedTensors targets{{"w", torch::zeros({2, 3})}, {"b", torch::zeros({3})}, {"n", torch::zeros({}, torch::kLong)}};
  std::map<std::string, torch::Tensor> given{
      {"w", torch::ones({2, 3}, torch::kDouble)}, {"x", torch::ones({1})}, {"n", torch::tensor(7L)}};
  StateMatch m = matchState(targets, given, wording());
  CHECK(m.copies.size() == 2);
  CHECK(m.missing == std::vector<std::string>{"b"});
  CHECK(m.unexpected == std::vector<std::string>{"x"});
  applyCopies(m.copies);  // in the destination's dtype
  CHECK(targets[0].second.scalar_type() == torch::kFloat && targets[0].second.sum().item<double>() == 6.0);
  CHECK(targets[2].second.item<int64_t>() == 7);
  given["b"] = torch::ones({4});
  CHECK_THROWS(matchState(targets, given, wording()),
               "weight 'b' has shape [4] in the test weights but [3] in this test module. Fix: fix for b");
  given["b"] = torch::ones({3}, torch::kInt);  // an integer tensor for a float weight
  CHECK_THROWS(matchState(targets, given, wording()),
               "weight 'b' is Int in the test weights, expected a float tensor. Fix: pass floating-point weights");
  try {
    matchState(targets, given, wording());
  } catch (const Error& e) {
    CHECK(e.kind() == Error::Kind::Type);
  }
}

TEST(model_load_rejects_an_integer_tensor_for_a_float_weight_and_changes_nothing) {
  CmacModel m(tinyConfig(3));
  NamedTensors sd;
  for (const auto& [k, v] : m.stateDict()) sd.emplace_back(k, v.detach().clone());
  const auto before = m.stateDict()[0].second.clone();
  NamedTensors bad = sd;
  bad[0].second = torch::ones_like(bad[0].second, torch::kInt);
  for (auto& [k, v] : bad)
    if (v.is_floating_point()) v = v + 1;  // every other weight would change
  CHECK_THROWS(m.loadStateDict(bad), "is Int in the checkpoint, expected a float tensor");
  CHECK(torch::equal(m.stateDict()[0].second, before));
  CHECK(torch::equal(m.stateDict()[1].second, sd[1].second));
  m.loadStateDict(sd);  // the same weights as floats load
  ClassifierOptions o;
  VideoClassifier c(tinyConfig(3), o);
  CHECK_THROWS(c.loadEncoder(bad), "is Int in the given weights, expected a float tensor");
}

TEST(evaluate_loss_is_the_train_loss_without_the_queue_and_with_every_term) {
  // Same seed, with and without a queue: lr 0 keeps the weights, and the
  // queue-less model's step and both models' evaluateLoss see the same BatchNorm statistics.
  auto cfg = [](int64_t queue) {
    auto c = tinyConfig(7);
    c.loss = lossPreset("xmodal");  // L_v, L_a outside L: evaluateLoss still reports them
    c.loss.queueSize = queue;
    return c;
  };
  CmacModel q(cfg(8)), plain(cfg(0));
  auto b1 = fixedBatch(4, 1), b2 = fixedBatch(4, 2);
  for (auto* m : {&q, &plain}) m->trainStep(b1, {0.0, 1.0});  // the queue now holds b1's embeddings
  auto sq = q.trainStep(b2, {0.0, 1.0}), sp = plain.trainStep(b2, {0.0, 1.0});
  CHECK_MSG(sq.lossCon > sp.lossCon, "the queue adds negatives in a step: " << sq.lossCon << " vs " << sp.lossCon);
  CHECK(sq.lossV == 0 && sq.lossA == 0);  // a step computes only the preset's terms
  auto eq = q.evaluateLoss(b2, 1.0), ep = plain.evaluateLoss(b2, 1.0);
  CHECK_MSG(eq.loss == ep.loss && eq.lossCon == ep.lossCon,
            "evaluateLoss ignores the queue: " << eq.loss << " vs " << ep.loss);
  CHECK(eq.lossV > 0 && eq.lossA > 0 && eq.loss == eq.lossCon);  // every term, L as the preset's
}

TEST(to_device_and_cuda_settings_on_cpu) {
  auto t = torch::arange(12, torch::kFloat).view({3, 4});
  auto u = toDevice(t, torch::Device(torch::kCPU));
  CHECK(torch::equal(u, t));
  bool before = at::globalContext().benchmarkCuDNN();
  applyCudaSettings(torch::Device(torch::kCPU), true);  // a CPU model never changes the process-wide flag
  CHECK(at::globalContext().benchmarkCuDNN() == before);
}

TEST(cuda_to_device_is_pinned_and_equal) {
  if (!torch::cuda::is_available()) SKIP("CUDA is not available in this build/machine");
  auto t = torch::randn({64, 1000});
  auto u = toDevice(t, torch::Device(torch::kCUDA));
  CHECK(u.is_cuda());
  CHECK(torch::equal(u.cpu(), t));
  bool before = at::globalContext().benchmarkCuDNN();
  applyCudaSettings(torch::Device(torch::kCUDA), true);
  CHECK(at::globalContext().benchmarkCuDNN());
  at::globalContext().setBenchmarkCuDNN(before);
}
