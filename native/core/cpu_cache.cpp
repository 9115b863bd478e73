#include "cpu_cache.h"

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>
#include <c10/util/Exception.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

namespace cmac {
namespace {

std::size_t pageSize() {
  static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

std::size_t defaultLimit() {
  long pages = sysconf(_SC_PHYS_PAGES);
  if (pages <= 0) return std::size_t(1) << 30;
  return static_cast<std::size_t>(pages) * pageSize() / 4;
}

class CachingCpuAllocator final : public c10::Allocator {
 public:
  c10::DataPtr allocate(std::size_t n) const override {
    if (n < kMinCachedBytes) {
      void* p = c10::alloc_cpu(n);
      return {p, p, &c10::free_cpu, c10::Device(c10::DeviceType::CPU)};
    }
    void* p = take(n);
    return {p, p, &CachingCpuAllocator::release, c10::Device(c10::DeviceType::CPU)};
  }
  c10::DeleterFnPtr raw_deleter() const override { return &CachingCpuAllocator::release; }

  static CachingCpuAllocator& instance() {
    // Leaked on purpose: blocks may be freed by static destructors at exit.
    static auto* a = new CachingCpuAllocator();
    return *a;
  }

  void setLimit(std::size_t bytes) {
    std::lock_guard<std::mutex> g(mu_);
    limit_ = bytes;
    trimLocked(limit_);
  }
  std::size_t releaseAll() {
    std::lock_guard<std::mutex> g(mu_);
    std::size_t before = cached_;
    trimLocked(0);
    peakInUse_ = inUse_;  // the footprint budget starts afresh
    return before - cached_;
  }
  CpuCacheStats stats() const {
    std::lock_guard<std::mutex> g(mu_);
    CpuCacheStats s;
    s.limitBytes = limit_;
    s.cachedBytes = cached_;
    s.inUseBytes = inUse_;
    s.peakBytes = peak_;
    s.hits = hits_;
    s.misses = misses_;
    s.released = released_;
    return s;
  }

 private:
  static std::size_t roundUp(std::size_t n) {
    std::size_t p = pageSize();
    return (n + p - 1) / p * p;
  }

  void* take(std::size_t n) const {
    std::size_t want = roundUp(n);
    std::vector<std::pair<void*, std::size_t>> evicted;
    {
      std::lock_guard<std::mutex> g(mu_);
      auto it = bySize_.lower_bound(want);
      if (it != bySize_.end() && it->first <= want + want / 4) {
        std::size_t size = it->first;
        auto f = free_.find(it->second);
        void* p = f->second.ptr;
        free_.erase(f);
        bySize_.erase(it);
        cached_ -= size;
        inUse_ += size;
        live_.emplace(p, size);
        ++hits_;
        return p;
      }
      // A miss: the footprint (blocks in use + free) may exceed the most bytes ever in use by
      // kSlack only; beyond that the longest-unused free blocks go back to the system first.
      // Free blocks no request fits would otherwise add to the peak; evicting every free block
      // on a miss would instead fault the next step's blocks in again.
      if (inUse_ + want > peakInUse_) peakInUse_ = inUse_ + want;
      const std::size_t budget = peakInUse_ + peakInUse_ / kSlack;
      while (inUse_ + cached_ + want > budget && !free_.empty()) {
        auto f = free_.begin();
        evicted.emplace_back(f->second.ptr, f->second.size);
        eraseFromSizeIndex(f->second.size, f->first);
        cached_ -= f->second.size;
        ++released_;
        free_.erase(f);
      }
    }
    for (auto& e : evicted) munmap(e.first, e.second);
    void* p = mapBlock(want);
    if (p == nullptr) {
      const_cast<CachingCpuAllocator*>(this)->releaseAll();
      p = mapBlock(want);
    }
    if (p == nullptr) {
      TORCH_CHECK(false, "cmac: out of memory: could not allocate ", want, " bytes of CPU memory");
    }
    std::lock_guard<std::mutex> g(mu_);
    live_.emplace(p, want);
    inUse_ += want;
    ++misses_;
    if (inUse_ + cached_ > peak_) peak_ = inUse_ + cached_;
    return p;
  }

  void eraseFromSizeIndex(std::size_t size, std::uint64_t stamp) const {
    auto range = bySize_.equal_range(size);
    for (auto it = range.first; it != range.second; ++it)
      if (it->second == stamp) {
        bySize_.erase(it);
        return;
      }
  }

  static void* mapBlock(std::size_t size) {
    void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }

  static void release(void* p) {
    if (p == nullptr) return;
    auto& a = instance();
    std::size_t unmapSize = 0;
    {
      std::lock_guard<std::mutex> g(a.mu_);
      auto it = a.live_.find(p);
      if (it == a.live_.end()) {
        // Not ours (small, or allocated before the cache was installed).
        c10::free_cpu(p);
        return;
      }
      std::size_t size = it->second;
      a.live_.erase(it);
      a.inUse_ -= size;
      if (a.cached_ + size <= a.limit_) {
        std::uint64_t stamp = ++a.clock_;
        a.free_.emplace(stamp, Block{p, size});
        a.bySize_.emplace(size, stamp);
        a.cached_ += size;
      } else {
        unmapSize = size;
        ++a.released_;
      }
    }
    if (unmapSize != 0) munmap(p, unmapSize);
  }

  // Unmaps free blocks, largest first, until at most `keep` bytes stay cached.
  void trimLocked(std::size_t keep) {
    while (cached_ > keep && !free_.empty()) {
      auto it = free_.begin();  // longest unused first
      munmap(it->second.ptr, it->second.size);
      eraseFromSizeIndex(it->second.size, it->first);
      cached_ -= it->second.size;
      ++released_;
      free_.erase(it);
    }
  }

  struct Block {
    void* ptr;
    std::size_t size;
  };
  mutable std::mutex mu_;
  mutable std::uint64_t clock_ = 0;
  // footprint <= (1 + 1/kSlack) x the most bytes in use. Measured on a tiny step (batch 32, 1 thread):
  // 10 -> 96k page faults per step, 4 -> 73k, 2 -> none, peak RSS 920 MiB (glibc alone: 920 MiB;
  // no bound: 945-958 MiB).
  static constexpr std::size_t kSlack = 2;
  mutable std::size_t peakInUse_ = 0;
  mutable std::map<std::uint64_t, Block> free_;               // free blocks by the time they were freed
  mutable std::multimap<std::size_t, std::uint64_t> bySize_;  // size -> key in free_
  mutable std::unordered_map<void*, std::size_t> live_;
  std::size_t limit_ = defaultLimit();
  mutable std::size_t cached_ = 0, inUse_ = 0, peak_ = 0;
  mutable std::uint64_t hits_ = 0, misses_ = 0, released_ = 0;
};

std::once_flag installOnce;
bool installed = false;

}  // namespace

void installCpuCache() {
  std::call_once(installOnce, [] {
    c10::SetCPUAllocator(&CachingCpuAllocator::instance(), /*priority=*/1);
    installed = c10::GetCPUAllocator() == &CachingCpuAllocator::instance();
  });
}

void setCpuCacheLimit(std::size_t bytes) { CachingCpuAllocator::instance().setLimit(bytes); }

std::size_t releaseCpuCache() { return CachingCpuAllocator::instance().releaseAll(); }

CpuCacheStats cpuCacheStats() {
  CpuCacheStats s = CachingCpuAllocator::instance().stats();
  s.installed = installed;
  return s;
}

}  // namespace cmac
