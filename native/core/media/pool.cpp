#include "pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace cmac {
namespace media {

using Clock = std::chrono::steady_clock;

// Everything the threads touch lives here, owned jointly by the pool and its
// threads: a thread left stuck in libav may outlive the pool.
struct DecodePool::Shared {
  std::mutex mu;
  std::condition_variable cv, watchCv;
  std::deque<std::function<void()>> queue;
  bool stop = false;
  std::atomic<int64_t> pending{0}, replacedCount{0};
  ClipRunner runner;
  double grace = 5;
  struct Running {
    Clock::time_point deadline;
    std::function<void()> abandon;  // settles the clip as timeout (if it is still unsettled)
    uint64_t worker;
  };
  std::map<uint64_t, Running> running;                             // task id -> deadline
  std::map<uint64_t, std::shared_ptr<std::atomic<bool>>> retired;  // worker id -> left alone
  uint64_t nextTask = 1, nextWorker = 1;
};

namespace {

using Shared = DecodePool::Shared;

thread_local uint64_t tWorker = 0;

void workerLoop(std::shared_ptr<Shared> s, uint64_t id, std::shared_ptr<std::atomic<bool>> retired) {
  tWorker = id;
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> l(s->mu);
      s->cv.wait(l, [&] { return s->stop || !s->queue.empty() || retired->load(); });
      if (retired->load()) return;   // replaced after a stuck decode: leave the queue to the new thread
      if (s->queue.empty()) return;  // stop and nothing left
      task = std::move(s->queue.front());
      s->queue.pop_front();
    }
    task();
    if (retired->load()) return;
  }
}

// Threads are detached: they hold the shared state, drain the queue after the
// pool is destroyed, and exit; a stuck one may never return and must not be joined.
void spawn(const std::shared_ptr<Shared>& s) {  // with s->mu held
  const uint64_t id = s->nextWorker++;
  auto flag = std::make_shared<std::atomic<bool>>(false);
  s->retired[id] = flag;
  std::thread(workerLoop, s, id, flag).detach();
}

void watchLoop(std::shared_ptr<Shared> s) {
  std::unique_lock<std::mutex> l(s->mu);
  while (!(s->stop && s->queue.empty() && s->running.empty())) {
    s->watchCv.wait_for(l, std::chrono::milliseconds(50));
    const auto now = Clock::now();
    std::vector<std::function<void()>> late;
    for (auto it = s->running.begin(); it != s->running.end();) {
      if (now > it->second.deadline) {
        late.push_back(std::move(it->second.abandon));
        const uint64_t w = it->second.worker;
        auto r = s->retired.find(w);
        if (r != s->retired.end()) r->second->store(true);  // it leaves when (if) its call returns
        s->retired.erase(w);
        spawn(s);
        ++s->replacedCount;
        it = s->running.erase(it);
      } else {
        ++it;
      }
    }
    if (!late.empty()) {
      l.unlock();
      for (auto& f : late) f();
      l.lock();
    }
  }
}

std::shared_ptr<BatchResult> layout(const std::vector<BatchClip>& clips) {
  auto r = std::make_shared<BatchResult>();
  uint64_t v = 0, a = 0;
  for (const auto& c : clips) {
    r->videoOffset.push_back(static_cast<size_t>(v));
    r->audioOffset.push_back(static_cast<size_t>(a));
    const uint64_t vb = uint64_t(std::max(0, c.req.frames)) * uint64_t(std::max(0, c.req.width)) *
                        uint64_t(std::max(0, c.req.height)) * 3;
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

ClipResult runGuarded(const ClipRunner& run, const BatchClip& c, uint8_t* v, float* a) {
  try {
    return run(c.src, c.req, v, a);
  } catch (const std::exception& e) {
    ClipResult r;
    r.reason = "decode_failed";
    r.message = e.what();
    return r;
  }
}

}  // namespace

DecodePool::DecodePool(int threads, ClipRunner runner, double graceSec)
    : s_(std::make_shared<Shared>()), threads_(std::max(1, threads)) {
  s_->runner = runner ? std::move(runner) : ClipRunner(decodeClip);
  s_->grace = graceSec;
  std::lock_guard<std::mutex> l(s_->mu);
  for (int i = 0; i < threads_; ++i) spawn(s_);
  std::thread(watchLoop, s_).detach();
}

DecodePool::~DecodePool() {
  {
    std::lock_guard<std::mutex> l(s_->mu);
    s_->stop = true;  // queued work still runs and settles; then the threads exit
  }
  s_->cv.notify_all();
  s_->watchCv.notify_all();
}

int64_t DecodePool::pending() const { return s_->pending.load(); }
int64_t DecodePool::replaced() const { return s_->replacedCount.load(); }

void DecodePool::submitBatch(std::vector<BatchClip> clips, std::function<void(std::shared_ptr<BatchResult>)> done) {
  auto result = layout(clips);
  struct Batch {
    std::vector<BatchClip> clips;
    std::shared_ptr<BatchResult> result;
    std::function<void(std::shared_ptr<BatchResult>)> done;
    std::atomic<size_t> left{0};
    std::unique_ptr<std::atomic<int>[]> state;  // per clip: 0 open, 1 settled
  };
  auto b = std::make_shared<Batch>();
  b->clips = std::move(clips);
  b->result = result;
  b->done = std::move(done);
  b->left = b->clips.size();
  b->state.reset(new std::atomic<int>[b->clips.size()]);
  for (size_t i = 0; i < b->clips.size(); ++i) b->state[i] = 0;
  auto s = s_;
  ++s->pending;
  auto finishOne = [s, b]() {
    if (--b->left == 0) {
      b->done(b->result);
      --s->pending;
    }
  };
  std::lock_guard<std::mutex> l(s->mu);
  if (b->clips.empty()) {
    s->queue.push_back([s, b] {
      b->done(b->result);
      --s->pending;
    });
  }
  for (size_t i = 0; i < b->clips.size(); ++i) {
    s->queue.push_back([s, b, i, finishOne] {
      const BatchClip& c = b->clips[i];
      uint64_t task;
      {
        std::lock_guard<std::mutex> g(s->mu);
        task = s->nextTask++;
        const double secs = std::max(0.0, c.req.timeoutSec) + s->grace;
        s->running[task] = Shared::Running{Clock::now() + std::chrono::microseconds(static_cast<int64_t>(secs * 1e6)),
                                           [b, i, finishOne, secs] {
                                             int open = 0;
                                             if (!b->state[i].compare_exchange_strong(open, 1)) return;
                                             ClipResult r;
                                             r.reason = "timeout";
                                             r.message = "the decoder did not return within " + std::to_string(secs) +
                                                         " s (deadline + grace); abandoned, its thread replaced";
                                             b->result->clips[i] = r;
                                             finishOne();
                                           },
                                           tWorker};
      }
      // Own buffers: a clip abandoned by the watchdog must not write into a delivered batch.
      const size_t vbytes =
          size_t(std::max(0, c.req.frames)) * std::max(0, c.req.width) * std::max(0, c.req.height) * 3;
      std::vector<uint8_t> v(vbytes);
      std::vector<float> a(c.req.audio ? size_t(std::max(0, c.req.samples)) : 0);
      ClipResult r = runGuarded(s->runner, c, v.data(), c.req.audio ? a.data() : nullptr);
      {
        std::lock_guard<std::mutex> g(s->mu);
        s->running.erase(task);
      }
      int open = 0;
      if (!b->state[i].compare_exchange_strong(open, 1)) return;  // abandoned meanwhile: dropped
      if (r.ok) {
        if (vbytes) std::memcpy(b->result->video.data() + b->result->videoOffset[i], v.data(), vbytes);
        if (!a.empty())
          std::memcpy(b->result->audio.data() + b->result->audioOffset[i], a.data(), a.size() * sizeof(float));
      }
      b->result->clips[i] = std::move(r);
      finishOne();
    });
  }
  s->cv.notify_all();
}

void DecodePool::submitProbe(Source src, int audioStream, double timeoutSec, std::function<void(ProbeResult)> done) {
  auto s = s_;
  ++s->pending;
  {
    std::lock_guard<std::mutex> l(s->mu);
    s->queue.push_back([s, src = std::move(src), audioStream, timeoutSec, done = std::move(done)] {
      ProbeResult p;
      try {
        p = probe(src, audioStream, timeoutSec);
      } catch (const std::exception& e) {
        p = ProbeResult{};
        p.reason = "probe_failed";
        p.message = e.what();
      }
      done(std::move(p));
      --s->pending;
    });
  }
  s->cv.notify_one();
}

std::shared_ptr<BatchResult> decodeBatchNow(const std::vector<BatchClip>& clips) {
  auto r = layout(clips);
  for (size_t i = 0; i < clips.size(); ++i)
    r->clips[i] = runGuarded(ClipRunner(decodeClip), clips[i], r->video.data() + r->videoOffset[i],
                             clips[i].req.audio ? r->audio.data() + r->audioOffset[i] : nullptr);
  return r;
}

}  // namespace media
}  // namespace cmac
