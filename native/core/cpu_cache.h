// A caching CPU allocator for libtorch (issue 18: allocation churn).
//
// glibc serves every block above its mmap threshold (128 KiB, rising to at
// most 32 MiB) with a fresh mmap and returns it with munmap on free, so every
// activation, gradient and oneDNN buffer of a training step is page-faulted in
// (and zeroed by the kernel) again at every step: ~87k faults per tiny step at
// one thread, ~2.3M per paper step. This allocator keeps freed blocks of
// >= kMinCachedBytes and hands them out again (best fit, at most 25% larger
// than asked), so a repeated step touches memory it already owns. Small blocks
// go to c10's own alloc_cpu/free_cpu unchanged.
//
// Installed once per process as libtorch's CPU allocator (c10::SetCPUAllocator;
// oneDNN's buffers come through it too, ATen's IDeep registration allocates
// with c10's CPU allocator). Blocks allocated before installing keep their own
// deleters; a raw pointer this allocator did not hand out goes to free_cpu.
#pragma once
#include <cstddef>
#include <cstdint>

namespace cmac {

struct CpuCacheStats {
  bool installed = false;
  std::size_t limitBytes = 0;   // most bytes of free blocks kept
  std::size_t cachedBytes = 0;  // free blocks held for reuse now
  std::size_t inUseBytes = 0;   // cached-size blocks handed out now
  std::size_t peakBytes = 0;    // most cachedBytes + inUseBytes so far
  std::uint64_t hits = 0;       // allocations served from the cache
  std::uint64_t misses = 0;     // allocations that mapped new memory
  std::uint64_t released = 0;   // blocks returned to the system
};

constexpr std::size_t kMinCachedBytes = std::size_t(1) << 16;  // 64 KiB

// Makes the caching allocator libtorch's CPU allocator (idempotent, thread-safe).
void installCpuCache();
// Most bytes of free blocks the cache keeps; beyond it a freed block is returned
// to the system at once (0: keep none, every large block is unmapped on free).
// Default: a quarter of physical memory.
void setCpuCacheLimit(std::size_t bytes);
// Returns every free block to the system and restarts the footprint budget from the bytes in
// use now; the bytes released.
std::size_t releaseCpuCache();
CpuCacheStats cpuCacheStats();

}  // namespace cmac
