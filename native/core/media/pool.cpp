#include "pool.h"

#include <stdexcept>

namespace cmac {
namespace media {

namespace {

std::shared_ptr<BatchResult> layout(const std::vector<BatchClip>& clips) {
  auto r = std::make_shared<BatchResult>();
  uint64_t v = 0, a = 0;
  for (const auto& c : clips) {
    r->videoOffset.push_back(static_cast<size_t>(v));
    r->audioOffset.push_back(static_cast<size_t>(a));
    const uint64_t vb = uint64_t(std::max(0, c.req.frames)) * uint64_t(std::max(0, c.req.width)) * uint64_t(std::max(0, c.req.height)) * 3;
    const uint64_t ab = c.req.audio ? uint64_t(std::max(0, c.req.samples)) : 0;
    v += vb;
    a += ab;
    if (v + a * 4 > kMaxBatchBytes)
      throw std::length_error("batch needs more than " + std::to_string(kMaxBatchBytes >> 30) +
                              " GiB of decoded data; Fix: a smaller batch, clip size or frame count");
  }
  r->video.assign(static_cast<size_t>(v), 0);
  r->audio.assign(static_cast<size_t>(a), 0.0f);
  r->clips.resize(clips.size());
  return r;
}

void runClip(const BatchClip& c, BatchResult& r, size_t i) {
  try {
    r.clips[i] = decodeClip(c.src, c.req, r.video.data() + r.videoOffset[i], c.req.audio ? r.audio.data() + r.audioOffset[i] : nullptr);
  } catch (const std::exception& e) {
    r.clips[i] = ClipResult{};
    r.clips[i].reason = "decode_failed";
    r.clips[i].message = e.what();
  }
}

}  // namespace

DecodePool::DecodePool(int threads) {
  if (threads < 1) threads = 1;
  for (int i = 0; i < threads; ++i) workers_.emplace_back([this] { loop(); });
}

DecodePool::~DecodePool() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  for (auto& t : workers_) t.join();
}

void DecodePool::post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void DecodePool::loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [this] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stop_ and nothing left
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

void DecodePool::submitBatch(std::vector<BatchClip> clips, std::function<void(std::shared_ptr<BatchResult>)> done) {
  auto result = layout(clips);
  ++pending_;
  if (clips.empty()) {
    post([this, result, done] {
      done(result);
      --pending_;
    });
    return;
  }
  struct State {
    std::vector<BatchClip> clips;
    std::shared_ptr<BatchResult> result;
    std::function<void(std::shared_ptr<BatchResult>)> done;
    std::atomic<size_t> left;
  };
  auto s = std::make_shared<State>();
  s->clips = std::move(clips);
  s->result = result;
  s->done = std::move(done);
  s->left = s->clips.size();
  for (size_t i = 0; i < s->clips.size(); ++i) {
    post([this, s, i] {
      runClip(s->clips[i], *s->result, i);
      if (--s->left == 0) {
        s->done(s->result);
        --pending_;
      }
    });
  }
}

void DecodePool::submitProbe(Source src, int audioStream, double timeoutSec, std::function<void(ProbeResult)> done) {
  ++pending_;
  post([this, src = std::move(src), audioStream, timeoutSec, done = std::move(done)] {
    ProbeResult p;
    try {
      p = probe(src, audioStream, timeoutSec);
    } catch (const std::exception& e) {
      p = ProbeResult{};
      p.reason = "probe_failed";
      p.message = e.what();
    }
    done(std::move(p));
    --pending_;
  });
}

std::shared_ptr<BatchResult> decodeBatchNow(const std::vector<BatchClip>& clips) {
  auto r = layout(clips);
  for (size_t i = 0; i < clips.size(); ++i) runClip(clips[i], *r, i);
  return r;
}

}  // namespace media
}  // namespace cmac
