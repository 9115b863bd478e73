// CUDA path: run on a GPU machine by scripts/gpu-check.sh (--require-cuda);
// skipped, and reported as skipped, where CUDA is not available.
#include <torch/cuda.h>
#include <unistd.h>
#include <torch/torch.h>

#include "cmac_model.h"
#include "dist.h"
#include "test.h"
#include "tiny.h"

using namespace cmac;

namespace {
void needCuda() {
  if (!torch::cuda::is_available()) SKIP("CUDA is not available in this build/machine");
}
ModelConfig tiny(const std::string& device, const std::string& amp = "off") {
  return cmactest::tinyConfig(4, device, amp);
}
Batch batch(int64_t n, uint64_t seed) { return cmactest::fixedBatch(n, seed); }
}  // namespace

TEST(cuda_outputs_match_cpu) {
  needCuda();
  // Full fp32 on the GPU for this comparison: cuDNN convolutions default to
  // TF32 (10-bit mantissa), which would hide real differences under its noise.
  const bool tf32 = at::globalContext().allowTF32CuDNN();
  at::globalContext().setAllowTF32CuDNN(false);
  at::globalContext().setFloat32MatmulPrecision("highest");
  struct Restore {
    bool v;
    ~Restore() { at::globalContext().setAllowTF32CuDNN(v); }
  } restore{tf32};
  CmacModel cpu(tiny("cpu")), gpu(tiny("cuda"));
  auto b = batch(4, 1);
  auto ec = cpu.embed(b), eg = gpu.embed(b);
  double dz = (ec.zV - eg.zV.cpu()).abs().max().item<double>() + (ec.zA - eg.zA.cpu()).abs().max().item<double>();
  CHECK_MSG(dz < 1e-3, "embedding difference " << dz);
  auto lc = cpu.evaluateLoss(b), lg = gpu.evaluateLoss(b);
  CHECK_MSG(std::abs(lc.loss - lg.loss) < 1e-3 * std::max(1.0, std::abs(lc.loss)), lc.loss << " vs " << lg.loss);
  auto sc = cpu.trainStep(b, {1e-3, 1.0}), sg = gpu.trainStep(b, {1e-3, 1.0});
  CHECK_MSG(std::abs(sc.loss - sg.loss) < 1e-3 * std::max(1.0, std::abs(sc.loss)), sc.loss << " vs " << sg.loss);
}

TEST(cuda_amp_bf16_and_fp16_steps_are_finite_and_learn) {
  needCuda();
  for (const char* amp : {"bf16", "fp16"}) {
    CmacModel m(tiny("cuda", amp));
    auto b = batch(16, 2);
    double first = 0, last = 0;
    for (int i = 0; i < 30; ++i) {
      auto r = m.trainStep(b, {1e-3, 1.0});
      CHECK_MSG(std::isfinite(r.loss), amp << " step " << i << " loss " << r.loss);
      if (i == 0) first = r.lossCon;
      last = r.lossCon;
    }
    CHECK_MSG(last < first, amp << ": L_con " << first << " -> " << last);
  }
}

TEST(nccl_process_group_world_size_1) {
  needCuda();
  DistOptions o;
  o.masterPort = 29000 + static_cast<int>(::getpid() % 1000);
  o.cuda = true;
  Dist d(o);
  auto t = torch::ones({3}, torch::TensorOptions().device(torch::kCUDA));
  d.allreduceSum(t);
  CHECK(t.sum().item<double>() == 3.0);
  auto g = d.allGather(t);
  CHECK(g.size(0) == 3);
}
