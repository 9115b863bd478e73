#include "dist.h"

#include <torch/version.h>

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#if TORCH_VERSION_MAJOR >= 2
#include <torch/csrc/distributed/c10d/Backend.hpp>
#else
#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#endif
#ifdef CMAC_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(CMAC_WITH_CUDA) && defined(CMAC_HAVE_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#include <torch/torch.h>
#include <torch/version.h>

#include <cstdlib>

#include "errors.h"

namespace cmac {

namespace {

int envInt(const char* name, int dflt, int lo, int hi) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  if (*end != '\0' || x < lo || x > hi)
    rangeError(std::string("environment variable ") + name + "='" + v + "' must be an integer in [" +
               std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return static_cast<int>(x);
}

// all_gather with a gradient: backward sums every rank's gradient for the
// gathered tensor and returns this rank's slice (the GatherLayer of SimCLR/MoCo v3).
struct GatherWithGrad : torch::autograd::Function<GatherWithGrad> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, int64_t distPtr) {
    auto* d = reinterpret_cast<Dist*>(distPtr);
    ctx->saved_data["dist"] = distPtr;
    ctx->saved_data["n"] = x.size(0);
    return d->allGather(x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list g) {
    auto* d = reinterpret_cast<Dist*>(ctx->saved_data["dist"].toInt());
    const int64_t n = ctx->saved_data["n"].toInt();
    torch::Tensor grad = g[0].contiguous().clone();
    d->allreduceSum(grad);
    return {grad.narrow(0, d->rank() * n, n), torch::Tensor()};
  }
};

}  // namespace

DistOptions distOptionsFromEnv(int timeoutSec) {
  DistOptions o;
  o.worldSize = envInt("WORLD_SIZE", 1, 1, 1 << 20);
  o.rank = envInt("RANK", 0, 0, o.worldSize - 1);
  o.localRank = envInt("LOCAL_RANK", 0, 0, 1 << 20);
  o.masterPort = envInt("MASTER_PORT", 29500, 1, 65535);
  if (const char* a = std::getenv("MASTER_ADDR")) o.masterAddr = a;
  const char* agent = std::getenv("TORCHELASTIC_USE_AGENT_STORE");
  o.agentStore = agent && std::string(agent) == "True";
  o.restartCount = envInt("TORCHELASTIC_RESTART_COUNT", 0, 0, 1 << 20);
  o.timeoutSec = timeoutSec;
  return o;
}

struct Dist::Impl {
  c10::intrusive_ptr<c10d::Store> store;
#if TORCH_VERSION_MAJOR >= 2
  c10::intrusive_ptr<c10d::Backend> pg;
#else
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
#endif
  void wait(const c10::intrusive_ptr<c10d::Work>& w) { w->wait(); }
};

Dist::Dist(const DistOptions& o) : impl_(std::make_unique<Impl>()), rank_(o.rank), world_(o.worldSize) {
  const auto timeout = std::chrono::seconds(o.timeoutSec);
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<uint16_t>(o.masterPort);
    so.isServer = !o.agentStore && o.rank == 0;
    // c10::optional (1.x) or std::optional (2.x): spell neither.
    using Workers = decltype(so.numWorkers);
    so.numWorkers = o.agentStore ? Workers() : Workers(static_cast<std::size_t>(o.worldSize));
    so.waitWorkers = !o.agentStore;
    so.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store = c10::make_intrusive<c10d::TCPStore>(o.masterAddr, so);
    if (o.agentStore)
      store = c10::make_intrusive<c10d::PrefixStore>("/worker/attempt_" + std::to_string(o.restartCount), store);
    impl_->store = store;
    if (o.cuda) {
#if defined(CMAC_WITH_CUDA) && defined(CMAC_HAVE_NCCL)
      auto opts = c10d::ProcessGroupNCCL::Options::create();
      opts->timeout = timeout;
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, o.rank, o.worldSize, opts);
#else
      valueError(
          "distributed training on CUDA needs a libtorch with NCCL; this build has none. Fix: train on CPU (Gloo) or "
          "rebuild against a CUDA PyTorch.");
#endif
    } else {
#ifndef CMAC_HAVE_GLOO
      valueError(
          "distributed training on CPU needs libtorch's Gloo back-end; this build has none (no Gloo headers when it "
          "was compiled). Fix: apt install libgloo-dev and rebuild (npm run build:native).");
#else
      auto opts = c10d::ProcessGroupGloo::Options::create(timeout);
      // An explicit address: hostname lookups that resolve to loopback break connectFullMesh.
      const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
      opts->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                                                : c10d::ProcessGroupGloo::createDeviceForHostname(
                                                      o.masterAddr == "localhost" ? "127.0.0.1" : o.masterAddr));
      impl_->pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, o.rank, o.worldSize, opts);
#endif
    }
  } catch (const cmac::Error&) {
    throw;
  } catch (const std::exception& e) {
    std::string what = e.what();
    if (auto* c = dynamic_cast<const c10::Error*>(&e)) what = c->what_without_backtrace();
    ioError("distributed rendezvous failed for rank " + std::to_string(o.rank) + " of " + std::to_string(o.worldSize) +
            " at " + o.masterAddr + ":" + std::to_string(o.masterPort) + " (timeout " + std::to_string(o.timeoutSec) +
            " s): " + what +
            ". Fix: start every rank with the same MASTER_ADDR/MASTER_PORT/WORLD_SIZE (cmac train --nproc N does "
            "this), and check the port is free.");
  }
}

Dist::~Dist() = default;

void Dist::broadcast(const std::vector<torch::Tensor>& tensors, int root) {
  torch::NoGradGuard ng;
  for (const auto& t : tensors) {
    std::vector<at::Tensor> v{t.is_contiguous() ? t : t.contiguous()};
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    impl_->wait(impl_->pg->broadcast(v, bo));
    if (!t.is_contiguous()) t.copy_(v[0]);
  }
}

void Dist::allreduceSum(torch::Tensor& t) {
  std::vector<at::Tensor> v{t};
  impl_->wait(impl_->pg->allreduce(v));
}

void Dist::allreduceMean(const std::vector<torch::Tensor>& tensors, int64_t bucketBytes) {
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> bucket;
  int64_t bytes = 0;
  auto flush = [&]() {
    if (bucket.empty()) return;
    std::vector<torch::Tensor> flat;
    for (auto& t : bucket) flat.push_back(t.reshape({-1}));
    std::vector<at::Tensor> v{torch::cat(flat)};
    impl_->wait(impl_->pg->allreduce(v));  // Gloo has no AVG: sum, then divide
    v[0].div_(world_);
    int64_t off = 0;
    for (auto& t : bucket) {
      t.copy_(v[0].narrow(0, off, t.numel()).view_as(t));
      off += t.numel();
    }
    bucket.clear();
    bytes = 0;
  };
  for (const auto& t : tensors) {
    if (bucket.size() &&
        (bucket[0].scalar_type() != t.scalar_type() || bytes + t.numel() * t.element_size() > bucketBytes))
      flush();
    bucket.push_back(t);
    bytes += t.numel() * t.element_size();
  }
  flush();
}

torch::Tensor Dist::allGather(const torch::Tensor& t) {
  torch::NoGradGuard ng;
  std::vector<at::Tensor> in{t.detach().contiguous()};
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < world_; ++r) out[0].push_back(torch::empty_like(in[0]));
  impl_->wait(impl_->pg->allgather(out, in));
  return torch::cat(out[0], 0);
}

torch::Tensor Dist::allGatherWithGrad(const torch::Tensor& t) {
  return GatherWithGrad::apply(t, reinterpret_cast<int64_t>(this));
}

bool Dist::anyTrue(bool flag) {
  auto t = torch::tensor({flag ? 1.0f : 0.0f});
  allreduceSum(t);
  return t.item<float>() > 0;
}

void Dist::barrier() { impl_->wait(impl_->pg->barrier()); }

}  // namespace cmac
