// The raw maps of maps() (the cosine map and the scorer logits the
// localisation protocols threshold) and the log-mel front end's dataset
// statistics and SpecAugment (method.md s1, s7).
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <set>
#include <string>

#include "cmac_model.h"
#include "safetensors.h"
#include "test.h"
#include "tiny.h"

using namespace cmac;

using cmactest::fixedBatch;
using cmactest::tinyConfig;

namespace {
double maxDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kDouble) - b.to(torch::kDouble)).abs().max().item<double>();
}

std::string tempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("cmac-test-" + std::to_string(::getpid()) + "-" + name)).string();
}
}  // namespace

// betaVCos is bmm(localV, zA): with embedDim 3, the maps of one video under
// three audios give L = C Z^-T (C: N x 3 cosine maps, Z: the three z_a).
// Every row of L must be a unit vector (v_n = normalize(h_v(Vbar_n))), and
// L z_a of a fourth audio must give its map. A map built from z_v, from
// unnormalised locals or with another scale fails one of the two.
TEST(maps_beta_v_cos_is_bmm_local_v_z_a) {
  auto c = tinyConfig(21);
  c.embedDim = 3;
  CmacModel m(c);
  Batch one = fixedBatch(1, 5);
  Batch b;
  b.video = one.video.expand({4, -1, -1, -1, -1}).contiguous();
  b.audio = fixedBatch(4, 6).audio;
  auto mp = m.maps(b);
  auto e = m.embed({torch::Tensor(), b.audio});
  const int64_t N = mp.betaVCos.size(1) * mp.betaVCos.size(2);
  CHECK(mp.betaVCos.sizes() == mp.betaV.sizes());
  auto C = mp.betaVCos.reshape({4, N}).to(torch::kDouble);  // 4 x N
  auto Z = e.zA.to(torch::kDouble);                         // 4 x 3
  // C[0:3] = Z[0:3] L^T  ->  L^T = Z[0:3]^-1 C[0:3]
  auto Lt = torch::linalg_solve(Z.slice(0, 0, 3), C.slice(0, 0, 3));  // 3 x N
  auto norms = Lt.norm(2, 0);
  CHECK_MSG(maxDiff(norms, torch::ones_like(norms)) < 1e-4,
            "local rows not unit: " << norms.min().item<double>() << ".." << norms.max().item<double>());
  auto pred = torch::matmul(Z.slice(0, 3, 4), Lt);  // 1 x N
  CHECK_MSG(maxDiff(pred, C.slice(0, 3, 4)) < 1e-4, "fourth map off by " << maxDiff(pred, C.slice(0, 3, 4)));
  // The probabilities are the softmaxes of the raw maps (beta over cos / tauT).
  auto betaRe = torch::softmax(mp.betaVCos.reshape({4, N}) / c.loss.tauT, 1);
  CHECK(maxDiff(betaRe, mp.betaV.reshape({4, N})) < 1e-6);
  auto alphaRe = torch::softmax(mp.alphaVLogits.reshape({4, N}), 1);
  CHECK(maxDiff(alphaRe, mp.alphaV.reshape({4, N})) < 1e-6);
  CHECK(mp.betaVCos.abs().max().item<double>() <= 1.0 + 1e-5);
}

// The audio side: betaACos = <z_v, a_m>, its softmax over cos / tauT is betaA,
// alphaA is the softmax of alphaALogits; beta_v is guided by z_a, beta_a by z_v.
TEST(maps_audio_side_raw) {
  auto c = tinyConfig(22);
  CmacModel m(c);
  Batch b = fixedBatch(3, 8);
  auto mp = m.maps(b);
  CHECK(mp.betaACos.sizes() == mp.betaA.sizes() && mp.alphaALogits.sizes() == mp.alphaA.sizes());
  CHECK(maxDiff(torch::softmax(mp.betaACos / c.loss.tauT, 1), mp.betaA) < 1e-6);
  CHECK(maxDiff(torch::softmax(mp.alphaALogits, 1), mp.alphaA) < 1e-6);
  // Another audio changes betaVCos and alphaALogits, not alphaVLogits.
  Batch b2 = b;
  b2.audio = fixedBatch(3, 9).audio;
  auto mp2 = m.maps(b2);
  CHECK(maxDiff(mp.alphaVLogits, mp2.alphaVLogits) == 0);
  CHECK(maxDiff(mp.betaVCos, mp2.betaVCos) > 1e-3);
  CHECK(maxDiff(mp.alphaALogits, mp2.alphaALogits) > 1e-6);
  // Video-only: alpha maps only.
  auto vo = m.maps({b.video, torch::Tensor()});
  CHECK(vo.alphaVLogits.defined() && !vo.betaVCos.defined() && !vo.betaACos.defined());
}

// logmelStats against a two-pass mean/std (ddof 0) of the unstandardised
// log-mel over clips and frames, on 70 clips (chunks of 32 inside).
TEST(logmel_stats_match_two_pass) {
  auto c = tinyConfig(23);
  CmacModel m(c);
  auto g = at::detail::createCPUGenerator(3);
  auto audio = torch::randn({70, 8000}, g) * torch::linspace(0.01, 1.0, 70).unsqueeze(1);
  auto [mean, sd] = m.logmelStats(audio);
  CHECK(mean.size(0) == 64 && sd.size(0) == 64 && mean.scalar_type() == torch::kFloat);
  LogMel lm(c.logmel);
  auto x = lm->logMel(audio).to(torch::kDouble);  // 70 x 64 x T
  auto refMean = x.mean(at::IntArrayRef{0, 2});
  auto refStd = (x - refMean.view({1, -1, 1})).pow(2).mean(at::IntArrayRef{0, 2}).sqrt();
  CHECK_MSG(maxDiff(mean, refMean) < 1e-4, maxDiff(mean, refMean));
  CHECK_MSG(maxDiff(sd, refStd) < 1e-4, maxDiff(sd, refStd));
  // Silence: every bin is log(1e-6) with no spread; the std floor keeps it finite.
  auto [m0, s0] = m.logmelStats(torch::zeros({2, 4000}));
  CHECK_CLOSE(m0[5].item<double>(), std::log(1e-6), 1e-4);
  CHECK_CLOSE(s0[5].item<double>(), 1e-5, 1e-9);
}

// Stats set on the model are applied in embed/maps/evaluateLoss, travel in
// the checkpoint (logmel.mean / logmel.std), and bad ones are refused.
TEST(logmel_stats_applied_saved_and_checked) {
  auto c = tinyConfig(24);
  CmacModel m(c);
  Batch b = fixedBatch(2, 10);
  auto before = m.embed(b);
  auto beforeLoss = m.evaluateLoss(b);
  auto g = at::detail::createCPUGenerator(4);
  auto mean = torch::randn({64}, g) - 5.0, sd = torch::rand({64}, g) + 0.5;
  m.setLogmelStats(mean, sd);
  auto after = m.embed(b);
  CHECK(maxDiff(before.zA, after.zA) > 1e-4);
  CHECK(maxDiff(before.zV, after.zV) == 0);  // video is untouched
  CHECK(std::abs(m.evaluateLoss(b).loss - beforeLoss.loss) > 1e-6);
  // The front end standardises exactly: (log-mel - mean) / std per bin.
  LogMel lm(c.logmel);
  auto raw = lm->logMel(b.audio);
  lm->mean.copy_(mean);
  lm->std.copy_(sd);
  CHECK(maxDiff(lm->forward(b.audio).squeeze(1), (raw - mean.view({1, -1, 1})) / sd.view({1, -1, 1})) < 1e-5);
  // Checkpoint round trip.
  const auto path = tempPath("stats.safetensors");
  m.save(path);
  CmacModel m2(tinyConfig(25));
  m2.load(path);
  std::map<std::string, torch::Tensor> sd2;
  for (auto& [k, v] : m2.stateDict()) sd2[k] = v;
  CHECK(torch::equal(sd2.at("logmel.mean"), mean) && torch::equal(sd2.at("logmel.std"), sd));
  CHECK(maxDiff(m2.embed(b).zA, after.zA) == 0);
  // A checkpoint written without them (older files) loads strictly, with mean 0 / std 1.
  Safetensors f = readSafetensors(path);
  NamedTensors old;
  for (auto& [k, v] : f.tensors)
    if (k != "logmel.mean" && k != "logmel.std") old.emplace_back(k, v);
  writeSafetensors(path, old, {});
  m2.load(path);
  for (auto& [k, v] : m2.stateDict()) sd2[k] = v;
  CHECK(torch::equal(sd2.at("logmel.mean"), torch::zeros({64})) &&
        torch::equal(sd2.at("logmel.std"), torch::ones({64})));
  CHECK(maxDiff(m2.embed(b).zA, before.zA) == 0);
  std::remove(path.c_str());
  CHECK_THROWS(m.setLogmelStats(torch::zeros({63}), torch::ones({63})), "must have shape [64]");
  CHECK_THROWS(m.setLogmelStats(torch::zeros({64}), torch::zeros({64})), "std must be > 0");
  CHECK_THROWS(m.setLogmelStats(torch::full({64}, NAN), torch::ones({64})), "NaN");
}

// specAugmentMask: per clip, each frequency mask is one run of whole rows of
// width <= freqWidth (and each width 0..freqWidth occurs), time masks whole
// columns; nothing else is masked.
TEST(spec_augment_mask_counts_and_widths) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  SpecAugmentOptions o;
  o.freqMasks = 1, o.freqWidth = 6, o.timeMasks = 0;
  auto k = specAugmentMask(300, 64, 50, o, gen);          // 300 x 1 x 64 x 50
  auto rows = (k.squeeze(1) == 0).all(2);                 // 300 x 64: whole rows masked
  CHECK(torch::equal((k.squeeze(1) == 0).any(2), rows));  // no partial rows
  std::set<int64_t> widths;
  for (int64_t i = 0; i < 300; ++i) {
    auto r = rows[i].nonzero().flatten();
    const int64_t w = r.numel();
    CHECK(w <= 6);
    if (w > 0) CHECK(r[-1].item<int64_t>() - r[0].item<int64_t>() + 1 == w);  // contiguous
    widths.insert(w);
  }
  CHECK(widths.size() == 7);  // 0..6 all drawn
  SpecAugmentOptions t;
  t.freqMasks = 0, t.timeMasks = 2, t.timeWidth = 5;
  auto kt = specAugmentMask(300, 64, 50, t, gen);
  auto cols = (kt.squeeze(1) == 0).all(1);  // 300 x 50
  CHECK(torch::equal((kt.squeeze(1) == 0).any(1), cols));
  CHECK(cols.sum(1).max().item<int64_t>() <= 10);
  CHECK(cols.sum(1).max().item<int64_t>() >= 6);  // two masks together exceed one's width somewhere
}

// SpecAugment changes training steps, deterministically under the seed, and
// never evaluation: embed, maps and evaluateLoss are those of a model without it.
TEST(spec_augment_train_only_and_seeded) {
  auto plain = tinyConfig(26);
  auto aug = plain;
  aug.specAugment.freqMasks = 2, aug.specAugment.freqWidth = 8;
  aug.specAugment.timeMasks = 2, aug.specAugment.timeWidth = 10;
  Batch b = fixedBatch(4, 11);
  CmacModel p(plain), a1(aug), a2(aug);
  CHECK(maxDiff(p.embed(b).zA, a1.embed(b).zA) == 0);
  CHECK(maxDiff(p.maps(b).betaVCos, a1.maps(b).betaVCos) == 0);
  CHECK(p.evaluateLoss(b).loss == a1.evaluateLoss(b).loss);
  auto rp = p.trainStep(b, {1e-3, 1.0});
  auto r1 = a1.trainStep(b, {1e-3, 1.0});
  auto r2 = a2.trainStep(b, {1e-3, 1.0});
  CHECK(r1.loss == r2.loss);  // same seed, same masks
  CHECK(r1.loss != rp.loss);  // the masks changed the step
  auto r1b = a1.trainStep(b, {1e-3, 1.0});
  auto r2b = a2.trainStep(b, {1e-3, 1.0});
  CHECK(r1b.loss == r2b.loss);
  // The mask counter travels with the optimiser state: a resumed model draws the next masks.
  const auto path = tempPath("aug.safetensors");
  a1.save(path);
  CmacModel a3(aug);
  a3.load(path);
  std::remove(path.c_str());
  CHECK(a3.trainStep(b, {1e-3, 1.0}).loss == a1.trainStep(b, {1e-3, 1.0}).loss);
}
