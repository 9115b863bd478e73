#include "info.h"

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include <atomic>

#include "errors.h"

#ifdef CMAC_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

// The build passes the libtorch source as a bare token (CMAC_TORCH_SOURCE_ID=
// system): string-valued -D flags lose their quotes in node-gyp's expansion.
#define CMAC_STR2(x) #x
#define CMAC_STR(x) CMAC_STR2(x)
#ifdef CMAC_TORCH_SOURCE_ID
#define CMAC_TORCH_SOURCE CMAC_STR(CMAC_TORCH_SOURCE_ID)
#else
#define CMAC_TORCH_SOURCE "unknown"
#endif

namespace cmac {

namespace {
std::atomic<int> gNumThreads{0};  // 0: libtorch's own default
}

TorchInfo torchInfo() {
  applyNumThreads();
  TorchInfo i;
  i.torchVersion = TORCH_VERSION;
  i.torchSource = CMAC_TORCH_SOURCE;
#ifdef CMAC_WITH_CUDA
  i.cudaCompiled = true;
#endif
  i.cudaAvailable = torch::cuda::is_available();
  i.cudaDeviceCount = i.cudaAvailable ? static_cast<int>(torch::cuda::device_count()) : 0;
#ifdef CMAC_WITH_CUDA
  for (int d = 0; d < i.cudaDeviceCount; ++d) {
    cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, d) == cudaSuccess) i.cudaDeviceNames.emplace_back(prop.name);
  }
#endif
  i.numThreads = at::get_num_threads();
  i.numInteropThreads = at::get_num_interop_threads();
  i.cxx11Abi = _GLIBCXX_USE_CXX11_ABI;
  i.parallelInfo = at::get_parallel_info();
  return i;
}

void setNumThreads(int n) {
  if (n < 1 || n > 1024) rangeError("numThreads must be an integer in [1, 1024], got " + std::to_string(n));
  gNumThreads.store(n);
  at::set_num_threads(n);
}

int numThreads() {
  int n = gNumThreads.load();
  return n > 0 ? n : at::get_num_threads();
}

void applyNumThreads() {
  int n = gNumThreads.load();
  if (n > 0 && at::get_num_threads() != n) at::set_num_threads(n);
}

}  // namespace cmac
