// Multi-process data parallelism on libtorch's c10d (the engine behind
// PyTorch DDP and torchrun): TCPStore rendezvous from the standard variables,
// ProcessGroupGloo on CPU (ProcessGroupNCCL on CUDA builds), broadcast of the
// initial weights, bucketed gradient all-reduce, and an all-gather whose
// backward all-reduces the gradient so contrastive negatives can span ranks.
#pragma once
#include <torch/types.h>

#include <memory>
#include <string>
#include <vector>

namespace cmac {

struct DistOptions {
  std::string masterAddr = "127.0.0.1";
  int masterPort = 29500;
  int rank = 0;
  int worldSize = 1;
  int localRank = 0;
  bool agentStore = false;  // torchrun's TORCHELASTIC_USE_AGENT_STORE: every rank is a client
  int restartCount = 0;     // TORCHELASTIC_RESTART_COUNT (prefix of the agent store)
  int timeoutSec = 300;
  bool cuda = false;  // NCCL instead of Gloo
};

// Reads MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK,
// TORCHELASTIC_USE_AGENT_STORE, TORCHELASTIC_RESTART_COUNT; errors name the variable.
DistOptions distOptionsFromEnv(int timeoutSec);

class Dist {
 public:
  explicit Dist(const DistOptions& o);  // blocks until every rank has joined (or the timeout)
  ~Dist();
  int rank() const { return rank_; }
  int worldSize() const { return world_; }
  void broadcast(const std::vector<torch::Tensor>& tensors, int root = 0);
  // In place: sum across ranks, then divide by the world size; tensors are packed into buckets.
  void allreduceMean(const std::vector<torch::Tensor>& tensors, int64_t bucketBytes = 25 << 20);
  void allreduceSum(torch::Tensor& t);
  // [world * B, ...]: every rank's t in rank order (equal shapes required). No gradient.
  torch::Tensor allGather(const torch::Tensor& t);
  // The same with autograd: backward all-reduces the gradient and keeps this rank's slice.
  torch::Tensor allGatherWithGrad(const torch::Tensor& t);
  bool anyTrue(bool flag);  // one tiny collective: true when any rank passes true
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0, world_ = 1;
};

}  // namespace cmac
