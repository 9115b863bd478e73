// The loss wiring of CmacModel pinned against method.md s3-5: which embedding
// guides which target, the KL direction, the stop-gradient, lambdaScale, the
// preset table, pooling independent of the preset (the scorers' gradient),
// the projection BatchNorm's inputs and the retrieval accuracy of a step.
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>

#include "cmac_model.h"
#include "test.h"
#include "tiny.h"

using namespace cmac;

using cmactest::fixedBatch;
using cmactest::tinyConfig;

namespace {
// Plain SGD (no momentum, no weight decay): a parameter moves iff its gradient is non-zero.
ModelConfig sgdConfig(const std::string& preset, const std::string& pooling = "attention", uint64_t seed = 4) {
  auto c = tinyConfig(seed);
  c.loss = lossPreset(preset);
  c.pooling = pooling;
  c.optim.name = "sgd";
  c.optim.momentum = 0;
  c.optim.weightDecay = 0;
  return c;
}

std::map<std::string, torch::Tensor> snapshot(const CmacModel& m) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [k, v] : m.stateDict()) out[k] = v.detach().clone();
  return out;
}

bool startsWith(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

// Names under `prefix` whose values differ between a and b.
int changed(const std::map<std::string, torch::Tensor>& a, const std::map<std::string, torch::Tensor>& b,
            const std::string& prefix) {
  int n = 0;
  for (const auto& [k, v] : a)
    if (startsWith(k, prefix) && !torch::equal(v, b.at(k))) ++n;
  return n;
}

// One batch whose video comes from batch `vs` and audio from batch `as`.
Batch mix(int64_t n, uint64_t vs, uint64_t as) {
  Batch b = fixedBatch(n, vs);
  b.audio = fixedBatch(n, as).audio;
  return b;
}

// The rows of the preset table in docs/method.md section 5 ("| `name` ... | yes | no | no |"),
// read from the source tree (this file's folder, else the working directory's docs/).
std::vector<LossPresetRow> methodPresetTable(std::vector<std::string>& names) {
  const auto here = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / ".." / "docs" / "method.md";
  std::ifstream in(std::filesystem::exists(here) ? here : std::filesystem::path("docs/method.md"));
  CHECK_MSG(in.good(), "docs/method.md not found at " << here << " nor in the working directory");
  std::string line;
  bool inSection = false;
  std::vector<LossPresetRow> rows;
  const std::regex row(R"(^\|\s*`([^`]+)`[^|]*\|\s*(yes|no)\s*\|\s*(yes|no)\s*\|\s*(yes|no)\s*\|)");
  while (std::getline(in, line)) {
    if (line.rfind("## ", 0) == 0) inSection = line.rfind("## 5.", 0) == 0;
    std::smatch m;
    if (!inSection || !std::regex_search(line, m, row)) continue;
    names.push_back(m[1]);
    rows.push_back({nullptr, m[2] == "yes", m[3] == "yes", m[4] == "yes"});
  }
  return rows;
}

double klRows(const torch::Tensor& p, const torch::Tensor& q) {  // mean_i KL(p_i || q_i), B x N
  auto pd = p.to(torch::kDouble).flatten(1), qd = q.to(torch::kDouble).flatten(1);
  return (pd * (pd.log() - qd.log())).sum(1).mean().item<double>();
}
}  // namespace

TEST(preset_table_is_method_md_s5_and_sets_within_negatives_and_consistency_terms_only) {
  // lib/config's table is held to the same rows by test/presets-parity.test.ts.
  std::vector<std::string> docNames;
  const auto doc = methodPresetTable(docNames);
  CHECK_MSG(doc.size() == 5, "docs/method.md s5 has " << doc.size() << " preset rows");
  CHECK_MSG(lossPresets().size() == doc.size(), lossPresets().size() << " rows in lossPresets()");
  std::string names;
  for (size_t i = 0; i < doc.size(); ++i) {
    const auto& r = lossPresets()[i];
    CHECK_MSG(r.name == docNames[i] && r.withinModal == doc[i].withinModal && r.lossV == doc[i].lossV &&
                  r.lossA == doc[i].lossA,
              "row " << i << ": " << r.name << " differs from method.md's " << docNames[i]);
    names += (names.empty() ? "" : ", ") + std::string(r.name);
    auto o = lossPreset(r.name);
    CHECK_MSG(o.withinModal == r.withinModal && o.lossV == r.lossV && o.lossA == r.lossA, r.name);
    LossOptions d;  // the preset changes nothing else
    CHECK_MSG(!o.targetGrad && o.tau == d.tau && o.tauT == d.tauT && o.lambdaV == d.lambdaV && o.lambdaA == d.lambdaA &&
                  o.queueSize == d.queueSize,
              r.name);
  }
  CHECK_THROWS(lossPreset("nope"), "loss preset must be one of " + names + "; got 'nope'");
  CHECK(ModelConfig().pooling == "attention");  // the default for every preset
  auto bad = tinyConfig();
  bad.pooling = "max";
  CHECK_THROWS(CmacModel(bad), "pooling must be attention or mean");
  // The flags act in a step: L_v / L_a are reported (and added) only where on.
  for (const auto& r : lossPresets()) {
    CmacModel m(sgdConfig(r.name));
    auto s = m.trainStep(fixedBatch(4, 1), {0.0, 1.0});
    CHECK_MSG((s.lossV > 0) == r.lossV && (s.lossA > 0) == r.lossA,
              r.name << " lossV " << s.lossV << " lossA " << s.lossA);
  }
}

TEST(beta_v_is_guided_by_audio_and_beta_a_by_vision) {
  // beta_v = softmax_n(<z_a, v_n> / tau_t): with the video fixed, other audio
  // changes beta_v but not alpha_v; beta_a = softmax_m(<z_v, a_m> / tau_t):
  // other video changes beta_a but not alpha_a. A swap (z_v guiding beta_v)
  // would leave beta_v blind to the audio.
  CmacModel m(tinyConfig(5));
  auto base = m.maps(mix(3, 1, 2)), otherAudio = m.maps(mix(3, 1, 3)), otherVideo = m.maps(mix(3, 4, 2));
  CHECK(torch::equal(base.alphaV, otherAudio.alphaV));
  CHECK_MSG((base.betaV - otherAudio.betaV).abs().max().item<double>() > 1e-4, "beta_v does not depend on the audio");
  CHECK(torch::equal(base.alphaA, otherVideo.alphaA));
  CHECK_MSG((base.betaA - otherVideo.betaA).abs().max().item<double>() > 1e-4, "beta_a does not depend on the video");
  // Same in the losses of evaluateLoss and of a training step (fresh models, lr 0).
  auto ev = [&](const Batch& b) { return m.evaluateLoss(b, 1.0); };
  CHECK(std::abs(ev(mix(3, 1, 2)).lossV - ev(mix(3, 1, 3)).lossV) > 1e-6);
  CHECK(std::abs(ev(mix(3, 1, 2)).lossA - ev(mix(3, 4, 2)).lossA) > 1e-6);
  auto step = [](const Batch& b) { return CmacModel(tinyConfig(5)).trainStep(b, {0.0, 1.0}); };
  auto s0 = step(mix(3, 1, 2)), sA = step(mix(3, 1, 3)), sV = step(mix(3, 4, 2));
  CHECK_MSG(std::abs(s0.lossV - sA.lossV) > 1e-6, "L_v in trainStep does not depend on the audio");
  CHECK_MSG(std::abs(s0.lossA - sV.lossA) > 1e-6, "L_a in trainStep does not depend on the video");
}

TEST(consistency_loss_is_kl_of_beta_against_alpha_in_the_model) {
  CmacModel m(tinyConfig(6));
  auto b = fixedBatch(4, 2);
  auto mp = m.maps(b);
  auto r = m.evaluateLoss(b, 1.0);
  const double fv = klRows(mp.betaV, mp.alphaV), rv = klRows(mp.alphaV, mp.betaV);
  const double fa = klRows(mp.betaA, mp.alphaA), ra = klRows(mp.alphaA, mp.betaA);
  // The two directions must differ by far more than the tolerance below (1e-4 relative).
  CHECK_MSG(std::abs(fv - rv) > 5e-3 * fv && std::abs(fa - ra) > 5e-3 * fa,
            "the case cannot tell the directions apart: " << fv << " " << rv << ", " << fa << " " << ra);
  CHECK_MSG(std::abs(r.lossV - fv) < 1e-4 * fv,
            "L_v " << r.lossV << " vs KL(beta_v||alpha_v) " << fv << " (reverse " << rv << ")");
  CHECK_MSG(std::abs(r.lossA - fa) < 1e-4 * fa,
            "L_a " << r.lossA << " vs KL(beta_a||alpha_a) " << fa << " (reverse " << ra << ")");
}

TEST(lambda_scale_weights_each_consistency_term) {
  // L = L_con + s (lambda_v L_v + lambda_a L_a) at an intermediate s, with
  // lambda_v != lambda_a so that swapped weights show.
  auto c = tinyConfig(7);
  c.loss.lambdaV = 0.5;
  c.loss.lambdaA = 2.0;
  CmacModel m(c);
  auto b = fixedBatch(4, 3);
  auto e = m.evaluateLoss(b, 0.37);
  CHECK_CLOSE(e.loss, e.lossCon + 0.37 * (0.5 * e.lossV + 2.0 * e.lossA), 1e-6);
  auto r = m.trainStep(b, {1e-3, 0.37});
  CHECK(r.lossV > 0 && r.lossA > 0 && std::abs(r.lossV - r.lossA) > 1e-3);
  CHECK_CLOSE(r.loss, r.lossCon + 0.37 * (0.5 * r.lossV + 2.0 * r.lossA), 1e-6);
  // The gradient follows the same total: halfway between s = 0 and s = 0.74 (SGD, lr 1).
  auto moved = [&](double s) {
    auto cs = sgdConfig("cmac", "attention", 7);
    cs.loss.lambdaV = 0.5;
    cs.loss.lambdaA = 2.0;
    CmacModel ms(cs);
    auto before = snapshot(ms);
    ms.trainStep(b, {1.0, s});
    auto after = snapshot(ms);
    return (before.at("heads.attnV.fc2.weight") - after.at("heads.attnV.fc2.weight")).to(torch::kDouble);
  };
  auto g0 = moved(0.0), gMid = moved(0.37), gHi = moved(0.74);
  CHECK_MSG(
      ((gHi - g0) - 2 * (gMid - g0)).abs().max().item<double>() < 1e-4 * (gHi - g0).abs().max().item<double>() + 1e-9,
      "the update is not linear in lambdaScale");
  CHECK((gMid - g0).abs().max().item<double>() > 0);
}

TEST(target_branch_gets_no_gradient_unless_targetGrad) {
  // With sg(beta), L_v adds no gradient to what only beta_v depends on (the
  // audio side and the visual projection), L_a none to the visual side and
  // the audio projection: a step with lambdaScale 1 then moves those weights
  // exactly as one with lambdaScale 0. With targetGrad it does not.
  struct Case {
    const char* preset;
    std::vector<std::string> targetOnly, alphaSide;
  };
  const Case cases[] = {
      {"cmac-v", {"audio.", "heads.projA.", "heads.attnA.", "heads.projV."}, {"heads.attnV.", "visual."}},
      {"cmac-a", {"visual.", "heads.projV.", "heads.attnV.", "heads.projA."}, {"heads.attnA.", "audio."}}};
  auto b = fixedBatch(4, 6);
  for (const auto& cs : cases) {
    for (bool targetGrad : {false, true}) {
      auto after = [&](double s) {
        auto c = sgdConfig(cs.preset, "attention", 8);
        c.loss.targetGrad = targetGrad;
        CmacModel m(c);
        m.trainStep(b, {0.5, s});
        return snapshot(m);
      };
      auto on = after(1.0), off = after(0.0);
      int target = 0, alpha = 0;
      for (const auto& p : cs.targetOnly) target += changed(on, off, p);
      for (const auto& p : cs.alphaSide) alpha += changed(on, off, p);
      CHECK_MSG(alpha > 0, cs.preset << ": the consistency term moved nothing on the alpha side");
      if (targetGrad)
        CHECK_MSG(target > 0, cs.preset << " targetGrad: no gradient reached the target branch");
      else
        CHECK_MSG(target == 0, cs.preset << ": " << target << " target-branch tensor(s) got gradient through sg(beta)");
    }
  }
}

TEST(scorers_get_gradient_iff_attention_pooling_or_their_consistency_term) {
  // Pooling is independent of the preset: with attention, g_v and g_a train
  // through L_con in every preset (lambdaScale 0: L_con alone); with mean
  // pooling they get gradient only from L_v / L_a where those are on.
  auto b = fixedBatch(4, 7);
  for (const auto& row : lossPresets()) {
    const std::string preset = row.name;
    const auto lo = lossPreset(preset);
    for (const std::string pooling : {"attention", "mean"}) {
      for (double s : {0.0, 1.0}) {
        CmacModel m(sgdConfig(preset, pooling));
        auto before = snapshot(m);
        m.trainStep(b, {0.5, s});
        auto after = snapshot(m);
        const bool att = pooling == "attention";
        const bool wantV = att || (lo.lossV && s > 0), wantA = att || (lo.lossA && s > 0);
        const int v = changed(before, after, "heads.attnV."), a = changed(before, after, "heads.attnA.");
        CHECK_MSG((v > 0) == wantV && (a > 0) == wantA, preset << " pooling " << pooling << " lambdaScale " << s
                                                               << ": g_v moved " << v << ", g_a moved " << a);
        if (wantV) CHECK(v == 4);  // both layers, weight and bias
      }
    }
  }
}

TEST(projection_batchnorm_sees_the_same_inputs_in_every_preset) {
  // lr 0: only BatchNorm running statistics change in a step, and they must
  // come out the same whatever the losses.
  auto b = fixedBatch(4, 8);
  std::map<std::string, torch::Tensor> ref;
  for (const auto& row : lossPresets()) {
    const std::string preset = row.name;
    CmacModel m(sgdConfig(preset, "attention", 9));
    m.trainStep(b, {0.0, 1.0});
    m.trainStep(b, {0.0, 1.0});
    auto sd = snapshot(m);
    if (ref.empty()) {
      ref = sd;
      continue;
    }
    for (const char* bn : {"heads.projV.bn.running_mean", "heads.projV.bn.running_var", "heads.projA.bn.running_mean",
                           "heads.projA.bn.running_var", "heads.projV.bn.num_batches_tracked"})
      CHECK_MSG(torch::equal(sd.at(bn), ref.at(bn)), preset << ": " << bn << " differs from xmodal's");
  }
}

TEST(step_reports_the_retrieval_accuracy_of_its_logits) {
  CmacModel m(tinyConfig(10));
  auto b = fixedBatch(6, 9);
  // Eval mode: the same embeddings as embed(); count argmax hits by hand.
  auto e = m.embed(b);
  auto sim = torch::matmul(e.zV, e.zA.t());
  double hits = 0;
  for (int64_t i = 0; i < 6; ++i)
    hits += (sim[i].argmax().item<int64_t>() == i) + (sim.t()[i].argmax().item<int64_t>() == i);
  CHECK_CLOSE(m.evaluateLoss(b, 1.0).retrievalAcc, hits / 12, 1e-6);  // a float mean
  // A training step reports it too (train-mode BatchNorm: its own value), in [0, 1] in steps of 1/(2B).
  auto r = m.trainStep(b, {1e-3, 1.0});
  CHECK(r.retrievalAcc >= 0 && r.retrievalAcc <= 1);
  CHECK_CLOSE(r.retrievalAcc * 12, std::round(r.retrievalAcc * 12), 1e-5);
  // Learning one fixed batch drives it to 1.
  auto c = tinyConfig(10);
  CmacModel fit(c);
  double last = 0;
  for (int i = 0; i < 40 && last < 1; ++i) last = fit.trainStep(b, {2e-3, 0.0}).retrievalAcc;
  CHECK_MSG(last == 1.0, "retrieval accuracy after fitting one batch: " << last);
}
