// The caching CPU allocator (cpu_cache) and the channels-last layout of the
// encoders (r2plus1d, audio_resnet): issue 18. Each case runs in its own
// process (test/core.test.ts), so installing the allocator here touches no other case.
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/torch.h>

#include "audio_resnet.h"
#include "cpu_cache.h"
#include "r2plus1d.h"
#include "test.h"

using namespace cmac;

namespace {
constexpr std::size_t MiB = std::size_t(1) << 20;

torch::Tensor block(std::size_t bytes) { return torch::empty({static_cast<int64_t>(bytes / 4)}, torch::kFloat); }

// Largest |a - b| relative to the largest |b|.
double relErr(const torch::Tensor& a, const torch::Tensor& b) {
  double scale = b.abs().max().item<double>();
  return (a - b).abs().max().item<double>() / (scale > 0 ? scale : 1.0);
}

// Copies every parameter and buffer of `from` into `to` (same architecture).
void copyState(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard ng;
  auto src = from.named_parameters();
  for (auto& p : to.named_parameters()) p.value().copy_(src[p.key()]);
  auto bsrc = from.named_buffers();
  for (auto& b : to.named_buffers()) b.value().copy_(bsrc[b.key()]);
}

// Trains `a` (layout under test) and `b` (contiguous) one forward/backward on the same input and
// compares outputs, every gradient and every BatchNorm buffer.
void compareLayouts(torch::nn::Module& a, torch::nn::Module& b, const std::function<torch::Tensor(torch::Tensor)>& fa,
                    const std::function<torch::Tensor(torch::Tensor)>& fb, const torch::Tensor& x, double tol) {
  a.train();
  b.train();
  auto ya = fa(x), yb = fb(x);
  CHECK_MSG(ya.is_contiguous(), "the encoder hands on a contiguous tensor in every layout");
  CHECK_MSG(relErr(ya, yb) < tol, "outputs differ: " << relErr(ya, yb));
  auto g = torch::randn_like(yb);
  (ya * g).sum().backward();
  (yb * g).sum().backward();
  auto pb = b.named_parameters();
  int compared = 0;
  for (auto& p : a.named_parameters()) {
    CHECK_MSG(p.value().grad().defined(), p.key() << " got no gradient");
    double e = relErr(p.value().grad(), pb[p.key()].grad());
    CHECK_MSG(e < tol, p.key() << " gradient differs by " << e);
    ++compared;
  }
  CHECK(compared > 10);
  auto bb = b.named_buffers();
  for (auto& buf : a.named_buffers()) {
    if (buf.value().scalar_type() == torch::kLong)
      CHECK_MSG(buf.value().item<int64_t>() == bb[buf.key()].item<int64_t>(), buf.key());
    else
      CHECK_MSG(relErr(buf.value(), bb[buf.key()]) < tol, buf.key() << " differs");
  }
}
// Two small R(2+1)D encoders with the same weights, channels-last (a) and contiguous (b), in double precision.
std::pair<R2Plus1D18, R2Plus1D18> r2plus1dPair(const torch::Device& device) {
  R2Plus1DOptions o;
  o.planes = {8, 16, 16, 32};
  o.stemMid = 6;
  o.lastStride1 = true;
  o.layout = Layout::ChannelsLast;
  R2Plus1D18 a(o);
  o.layout = Layout::Contiguous;
  R2Plus1D18 b(o);
  copyState(*b, *a);
  a->to(device, torch::kDouble);
  b->to(device, torch::kDouble);
  return {a, b};
}
}  // namespace

TEST(cpu_cache_is_libtorchs_cpu_allocator_and_reuses_freed_blocks) {
  installCpuCache();
  installCpuCache();  // idempotent
  auto s0 = cpuCacheStats();
  CHECK(s0.installed);
  void* first;
  {
    auto t = block(4 * MiB);
    first = t.data_ptr();
  }
  auto s1 = cpuCacheStats();
  CHECK_MSG(s1.cachedBytes >= 4 * MiB, "a freed 4 MiB block stays cached: " << s1.cachedBytes);
  {
    auto t = block(4 * MiB);
    CHECK_MSG(t.data_ptr() == first, "the same block is handed out again");
  }
  auto s2 = cpuCacheStats();
  CHECK(s2.hits == s1.hits + 1);
  CHECK(s2.misses == s1.misses);
  // small blocks are c10's own, not counted
  { auto t = block(4096); }
  CHECK(cpuCacheStats().hits == s2.hits && cpuCacheStats().misses == s2.misses);
  // a block up to 25% larger serves a request; a much smaller one does not
  {
    auto t = block(3 * MiB + 512 * 1024);
    CHECK(t.data_ptr() == first);
  }
  {
    auto t = block(2 * MiB);
    CHECK(t.data_ptr() != first);
  }
}

TEST(cpu_cache_raw_interface_and_blocks_it_did_not_hand_out) {
  // a tensor allocated by the default allocator before the cache, freed after it
  auto before = block(2 * MiB);
  installCpuCache();
  before = torch::Tensor();
  releaseCpuCache();
  auto* a = c10::GetCPUAllocator();
  void* p = a->raw_allocate(3 * MiB);  // oneDNN's buffers come this way (ATen's IDeep registration)
  static_cast<char*>(p)[3 * MiB - 1] = 1;
  std::size_t cached = cpuCacheStats().cachedBytes;
  a->raw_deallocate(p);
  CHECK(cpuCacheStats().cachedBytes == cached + 3 * MiB);
  void* foreign = c10::alloc_cpu(1 * MiB);  // not ours: goes back to free_cpu
  a->raw_deallocate(foreign);
  CHECK(cpuCacheStats().cachedBytes == cached + 3 * MiB);
  void* small = a->raw_allocate(100);
  a->raw_deallocate(small);
}

TEST(cpu_cache_limit_and_release) {
  installCpuCache();
  releaseCpuCache();
  { auto t = block(8 * MiB); }
  CHECK(cpuCacheStats().cachedBytes == 8 * MiB);
  CHECK(releaseCpuCache() == 8 * MiB);
  CHECK(cpuCacheStats().cachedBytes == 0);
  setCpuCacheLimit(0);  // keep no free block
  auto r0 = cpuCacheStats().released;
  { auto t = block(8 * MiB); }
  CHECK(cpuCacheStats().cachedBytes == 0);
  CHECK(cpuCacheStats().released == r0 + 1);
  setCpuCacheLimit(4 * MiB);
  { auto t = block(8 * MiB); }  // larger than the limit: unmapped
  { auto t = block(2 * MiB); }  // fits
  CHECK(cpuCacheStats().cachedBytes == 2 * MiB);
  CHECK(cpuCacheStats().limitBytes == 4 * MiB);
}

// On a miss the footprint (in use + free) may exceed 1.5 x the most bytes ever in use by
// no more: the longest-unused free blocks go back first.
TEST(cpu_cache_bounds_the_footprint_by_the_peak_in_use) {
  installCpuCache();
  releaseCpuCache();
  auto r0 = cpuCacheStats().released;
  { auto t = block(8 * MiB); }
  { auto t = block(16 * MiB); }
  { auto t = block(32 * MiB); }
  // 16 MiB: budget 24, 8 + 16 fits; 32 MiB: budget 48, 24 + 32 = 56 -> the 8 MiB block (freed first) goes
  CHECK_MSG(cpuCacheStats().cachedBytes == 48 * MiB, cpuCacheStats().cachedBytes / MiB);
  CHECK(cpuCacheStats().released == r0 + 1);
  // 64 MiB: budget 96; 48 + 64 = 112 -> the 16 MiB block goes
  { auto t = block(64 * MiB); }
  auto s = cpuCacheStats();
  CHECK_MSG(s.released == r0 + 2, "released " << s.released - r0);
  CHECK_MSG(s.cachedBytes == 96 * MiB, s.cachedBytes / MiB);
  CHECK(s.inUseBytes == 0);
}

TEST(layout_channels_last_r2plus1d_matches_contiguous) {
  torch::manual_seed(3);
  // In double precision the two layouts agree to rounding: a wrong view, stride or BatchNorm
  // rule would show far above 1e-9. (In float, gradients of the early layers, sums of many
  // cancelling terms behind BatchNorm, differ by up to a few percent of their largest entry.)
  auto [a, b] = r2plus1dPair(torch::Device(torch::kCPU));
  auto x = torch::randn({3, 3, 5, 32, 40}, torch::kDouble);  // odd T: the strided downsample slices T
  compareLayouts(
      *a, *b, [&](torch::Tensor v) { return a->forward(v); }, [&](torch::Tensor v) { return b->forward(v); }, x, 1e-9);
  // eval mode uses the running statistics the same way
  a->eval();
  b->eval();
  torch::NoGradGuard ng;
  CHECK(relErr(a->forward(x), b->forward(x)) < 1e-9);
  // float: the forward pass agrees closely
  a->to(torch::kFloat);
  b->to(torch::kFloat);
  auto xf = x.to(torch::kFloat);
  CHECK(relErr(a->forward(xf), b->forward(xf)) < 1e-4);
}

TEST(layout_channels_last_audio_resnet_matches_contiguous) {
  torch::manual_seed(4);
  AudioResNetOptions o;
  o.planes = {8, 16, 16, 32};
  o.layout = Layout::ChannelsLast;
  AudioResNet18 a(o);
  o.layout = Layout::Contiguous;
  AudioResNet18 b(o);
  copyState(*b, *a);
  a->to(torch::kDouble);
  b->to(torch::kDouble);
  auto x = torch::randn({3, 1, 64, 50}, torch::kDouble);
  compareLayouts(
      *a, *b, [&](torch::Tensor v) { return a->forward(v); }, [&](torch::Tensor v) { return b->forward(v); }, x, 1e-9);
}

TEST(layout_auto_is_channels_last_at_one_cpu_thread_only) {
  auto x = torch::zeros({1, 3, 2, 8, 8});
  int before = at::get_num_threads();
  at::set_num_threads(1);
  CHECK(useChannelsLast(Layout::Auto, x));
  at::set_num_threads(2);
  CHECK(!useChannelsLast(Layout::Auto, x));
  CHECK(useChannelsLast(Layout::ChannelsLast, x));
  CHECK(!useChannelsLast(Layout::Contiguous, x));
  at::set_num_threads(before);
  CHECK(parseLayout("channels-last", "l") == Layout::ChannelsLast);
  CHECK_THROWS(parseLayout("nhwc", "config.visual.layout"),
               "config.visual.layout: got 'nhwc'; allowed: auto, channels-last, contiguous");
}

// scripts/gpu-check.sh: the channels-last path on CUDA (cuDNN NHWC convolutions and BatchNorm).
TEST(cuda_layout_channels_last_matches_contiguous) {
  if (!torch::cuda::is_available()) SKIP("CUDA is not available in this build/machine");
  torch::manual_seed(5);
  auto [a, b] = r2plus1dPair(torch::Device(torch::kCUDA));
  auto x = torch::randn({3, 3, 5, 32, 40}, torch::TensorOptions().dtype(torch::kDouble).device(torch::kCUDA));
  compareLayouts(
      *a, *b, [&](torch::Tensor v) { return a->forward(v); }, [&](torch::Tensor v) { return b->forward(v); }, x, 1e-9);
}
