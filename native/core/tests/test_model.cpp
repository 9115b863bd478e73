#include <torch/torch.h>

#include "cmac_model.h"
#include "logmel.h"
#include "test.h"
#include "tiny.h"

using namespace cmac;

using cmactest::fixedBatch;
using cmactest::tinyConfig;

TEST(tiny_model_shapes) {
  CmacModel m(tinyConfig());
  auto b = fixedBatch(3, 1);
  auto e = m.embed(b);
  CHECK(e.zV.sizes() == torch::IntArrayRef({3, 128}) && e.zA.sizes() == torch::IntArrayRef({3, 128}));
  CHECK(e.featV.size(1) == 128 && e.featA.size(1) == 128);
  CHECK_CLOSE(e.zV[0].norm().item<double>(), 1.0, 1e-5);
  auto mp = m.maps(b);
  CHECK_MSG(mp.alphaV.sizes() == torch::IntArrayRef({3, 8, 8}), mp.alphaV.sizes());
  CHECK_MSG(mp.alphaA.sizes() == torch::IntArrayRef({3, 8}), mp.alphaA.sizes());
  CHECK_CLOSE(mp.betaV[1].sum().item<double>(), 1.0, 1e-5);
}

TEST(train_steps_are_bit_identical_for_a_seed) {
  auto run = [](uint64_t seed) {
    CmacModel m(tinyConfig(seed));
    for (int i = 0; i < 3; ++i) m.trainStep(fixedBatch(4, 10 + i), {1e-3, 1.0});
    return m.stateDict();
  };
  auto a = run(7), b = run(7), c = run(8);
  bool allEqual = true, anyDiff = false;
  for (size_t i = 0; i < a.size(); ++i) {
    allEqual = allEqual && torch::equal(a[i].second, b[i].second);
    anyDiff = anyDiff || !torch::equal(a[i].second, c[i].second);
  }
  CHECK(allEqual);
  CHECK(anyDiff);
}

TEST(training_reduces_the_contrastive_loss_on_a_fixed_batch) {
  CmacModel m(tinyConfig(3));
  auto b = fixedBatch(8, 5);
  double first = 0, last = 0;
  for (int i = 0; i < 30; ++i) {
    auto r = m.trainStep(b, {1e-3, 1.0});
    CHECK(r.finite && r.stepped && r.gradNorm > 0);
    if (i == 0) first = r.lossCon;
    last = r.lossCon;
  }
  CHECK_MSG(last < first * 0.7, "L_con " << first << " -> " << last);
}

TEST(gradient_accumulation_and_presets) {
  auto c = tinyConfig(1);
  c.accumulate = 2;
  c.loss = lossPreset("xmodal");
  CmacModel m(c);
  auto r1 = m.trainStep(fixedBatch(2, 1), {1e-3, 1.0});
  auto r2 = m.trainStep(fixedBatch(2, 2), {1e-3, 1.0});
  CHECK(!r1.stepped && r2.stepped);
  CHECK(r1.lossV == 0 && r1.lossA == 0);
  for (auto p : {"xmodal+within", "cmac-v", "cmac-a", "cmac"}) (void)lossPreset(p);
  CHECK_THROWS(lossPreset("nope"), "loss preset must be one of");
}

TEST(bad_batches_are_errors_that_name_the_input) {
  CmacModel m(tinyConfig());
  Batch b = fixedBatch(2, 1);
  Batch one = fixedBatch(1, 1);
  CHECK_THROWS(m.trainStep(one, {1e-3, 1.0}), "at least 2");
  Batch wrong = b;
  wrong.video = b.video.to(torch::kFloat);
  CHECK_THROWS(m.trainStep(wrong, {1e-3, 1.0}), "batch.video must be uint8");
  wrong = b;
  wrong.audio = b.audio.clone();
  wrong.audio[0][5] = std::nan("");
  CHECK_THROWS(m.trainStep(wrong, {1e-3, 1.0}), "NaN");
  wrong = b;
  wrong.audio = b.audio.slice(0, 0, 1);
  CHECK_THROWS(m.trainStep(wrong, {1e-3, 1.0}), "batch.audio has 1");
  CHECK_THROWS(m.trainStep(b, {-1, 1.0}), "lr must be");
  CHECK_THROWS(parseDevice("gpu"), "device 'gpu' is not valid");
}

TEST(save_load_round_trip_and_preset_mismatch) {
  CmacModel m(tinyConfig(2));
  m.trainStep(fixedBatch(2, 1), {1e-3, 1.0});
  const std::string path = "/tmp/cmac_core_test_ckpt.safetensors";
  m.save(path, {{"preset", "tiny"}});
  CmacModel m2(tinyConfig(99));
  m2.load(path);
  auto a = m.stateDict(), b = m2.stateDict();
  for (size_t i = 0; i < a.size(); ++i) CHECK(torch::equal(a[i].second, b[i].second));
  auto ra = m.trainStep(fixedBatch(2, 3), {1e-3, 1.0});
  auto rb = m2.trainStep(fixedBatch(2, 3), {1e-3, 1.0});
  CHECK(ra.loss == rb.loss);
  auto other = tinyConfig();
  other.embedDim = 64;
  CmacModel m3(other);
  CHECK_THROWS(m3.load(path), "has shape");
}

TEST(logmel_filterbank_has_no_empty_filter_at_nfft_1024) {
  auto fb = melFilterbank(513, 0, 8000, 128, 16000);
  CHECK(fb.sizes() == torch::IntArrayRef({513, 128}));
  CHECK((fb.sum(0) > 0).all().item<bool>());
  LogMel lm;
  auto y = lm->forward(torch::randn({2, 32000}));
  CHECK_MSG(y.sizes() == torch::IntArrayRef({2, 1, 128, 201}), y.sizes());
}
