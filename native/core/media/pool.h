// A pool of native decoder threads (std::thread, not libuv's pool) with a
// queue of jobs: probes and whole batches. A batch writes every clip into ONE
// contiguous uint8 video buffer ([B,T,H,W,3] when the clips share a geometry)
// and ONE float32 audio buffer ([B,S]), plus per-clip status and meta; its
// clips are decoded in parallel by the pool's threads and `done` runs on the
// thread that finishes the last one. Node-free.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "media.h"

namespace cmac {
namespace media {

struct BatchClip {
  Source src;
  ClipRequest req;
};

struct BatchResult {
  std::vector<uint8_t> video;         // clip i at videoOffset[i], frames*height*width*3 bytes
  std::vector<float> audio;           // clip i at audioOffset[i], samples floats (0 when no audio was asked)
  std::vector<size_t> videoOffset, audioOffset;
  std::vector<ClipResult> clips;
};

// Most bytes one batch may hold (video + audio); a larger batch is refused as a whole.
constexpr uint64_t kMaxBatchBytes = uint64_t(8) << 30;

class DecodePool {
 public:
  explicit DecodePool(int threads);
  ~DecodePool();  // finishes queued work, then joins
  DecodePool(const DecodePool&) = delete;
  DecodePool& operator=(const DecodePool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()); }
  // Lays out the buffers (throws std::length_error above kMaxBatchBytes) and queues one task per clip.
  void submitBatch(std::vector<BatchClip> clips, std::function<void(std::shared_ptr<BatchResult>)> done);
  void submitProbe(Source src, int audioStream, double timeoutSec, std::function<void(ProbeResult)> done);
  // Jobs queued or running.
  int64_t pending() const { return pending_.load(); }

 private:
  void post(std::function<void()> task);
  void loop();
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::atomic<int64_t> pending_{0};
  std::vector<std::thread> workers_;
};

// Runs a batch on the calling thread (tests, the fuzzer).
std::shared_ptr<BatchResult> decodeBatchNow(const std::vector<BatchClip>& clips);

}  // namespace media
}  // namespace cmac
