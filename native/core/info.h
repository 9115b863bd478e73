// Build and runtime facts about libtorch, reported by `cmac info`.
#pragma once
#include <string>
#include <vector>

namespace cmac {

struct TorchInfo {
  std::string torchVersion;   // e.g. "1.13.0"
  std::string torchSource;    // LIBTORCH | Torch_DIR | CMAKE_PREFIX_PATH | python | system
  bool cudaCompiled = false;  // built against a libtorch with CUDA
  bool cudaAvailable = false;
  int cudaDeviceCount = 0;
  std::vector<std::string> cudaDeviceNames;
  int numThreads = 0;
  int numInteropThreads = 0;
  int cxx11Abi = 0;
  std::string parallelInfo;
};

TorchInfo torchInfo();

// Intra-op thread count applied to every thread that runs core work
// (OpenMP's setting is per thread, so a setting made on one thread must be
// re-applied on the worker threads that compute).
void setNumThreads(int n);
int numThreads();
// Applies the process-wide thread count to the calling thread.
void applyNumThreads();

}  // namespace cmac
