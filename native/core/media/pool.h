// A pool of native decoder threads (std::thread, not libuv's pool) with a
// queue of jobs: probes and whole batches. A batch writes every clip into ONE
// contiguous uint8 video buffer ([B,T,H,W,3] when the clips share a geometry)
// and ONE float32 audio buffer ([B,S]), plus per-clip status and meta; its
// clips are decoded in parallel by the pool's threads and `done` runs on the
// thread that finishes the last one. Node-free.
//
// A clip that runs past its deadline (req.timeoutSec) plus a grace period
// inside one libav call that never returns is abandoned by a watchdog: it is
// reported as `timeout`, its batch completes, and a new thread replaces the
// stuck one (which is left to finish or hang on its own; its late result is
// dropped). Clips decode into their own buffers and are copied into the batch
// only by the thread that settles them, so an abandoned clip never writes
// into a delivered batch.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "media.h"

namespace cmac {
namespace media {

struct BatchClip {
  Source src;
  ClipRequest req;
};

struct BatchResult {
  std::vector<uint8_t> video;  // clip i at videoOffset[i], frames*height*width*3 bytes
  std::vector<float> audio;    // clip i at audioOffset[i], samples floats (0 when no audio was asked)
  std::vector<size_t> videoOffset, audioOffset;
  std::vector<ClipResult> clips;
};

// Most bytes one batch may hold (video + audio); a larger batch is refused as a whole.
constexpr uint64_t kMaxBatchBytes = uint64_t(8) << 30;

// What decodes one clip (decodeClip; tests inject a stuck one).
using ClipRunner = std::function<ClipResult(const Source&, const ClipRequest&, uint8_t*, float*)>;

class DecodePool {
 public:
  explicit DecodePool(int threads, ClipRunner runner = decodeClip, double graceSec = 5.0);
  ~DecodePool();  // returns at once; queued work still runs and settles, then the (detached) threads exit
  DecodePool(const DecodePool&) = delete;
  DecodePool& operator=(const DecodePool&) = delete;

  int threads() const { return threads_; }
  // Lays out the buffers (throws std::length_error above kMaxBatchBytes) and queues one task per clip.
  void submitBatch(std::vector<BatchClip> clips, std::function<void(std::shared_ptr<BatchResult>)> done);
  void submitProbe(Source src, int audioStream, double timeoutSec, std::function<void(ProbeResult)> done);
  // Jobs queued or running; threads replaced after a stuck decode so far.
  int64_t pending() const;
  int64_t replaced() const;

  struct Shared;

 private:
  std::shared_ptr<Shared> s_;
  int threads_;
};

// Runs a batch on the calling thread (tests, the fuzzer).
std::shared_ptr<BatchResult> decodeBatchNow(const std::vector<BatchClip>& clips);

}  // namespace media
}  // namespace cmac
