#include "runner.h"

#include "cpu_cache.h"

#include <c10/util/Exception.h>
#include <pthread.h>

#include "info.h"

#include <chrono>
#include <cstdlib>
#include <unordered_set>

namespace cmacjs {

namespace {
// Every live runner of the process (all environments), for the exit handler
// below. Never destroyed: it must outlive static destruction.
std::mutex& registryMutex() {
  static auto* m = new std::mutex();
  return *m;
}
std::unordered_set<Runner*>& registry() {
  static auto* s = new std::unordered_set<Runner*>();
  return *s;
}
}  // namespace

// process.exit() (a CLI's SIGTERM handler, say) calls exit() without tearing
// the environment down, so no ThreadSafeFunction finaliser joins the runners:
// a thread still inside a libtorch call would run on while exit() destroys
// libtorch's and OpenMP's statics (SIGSEGV). Registered with atexit() after
// libtorch is loaded, this runs before those destructors: every runner ends
// after its current call (queued calls are dropped), and exit waits for it.
namespace {
void abortWhere(napi_env env) {  // env == nullptr: every runner of the process
  std::lock_guard<std::mutex> reg(registryMutex());
  for (Runner* r : registry()) r->AbortAndWait(env);
}
}  // namespace

void Runner::AbortAndWait(napi_env env) {
  if (env != nullptr && env_ != env) return;
  std::unique_lock<std::mutex> lock(mu_);
  abort_ = true;
  cv_.notify_all();
  if (thread_.get_id() == std::this_thread::get_id()) return;
  cv_.wait_for(lock, std::chrono::minutes(5), [this] { return exited_; });
}

void Runner::AbortAllAtExit() { abortWhere(nullptr); }
void Runner::AbortAll(napi_env env) { abortWhere(env); }

void disposedError(const std::string& className) {
  throw cmac::Error(
      cmac::Error::Kind::Disposed,
      className + " was disposed. Fix: create a new one (a model: CmacModel.create, then load() a checkpoint).");
}

struct Runner::Job {
  Napi::Promise::Deferred deferred;
  Work work;
  Done done;
  bool failed = false;
  NativeFailure failure;
};

std::shared_ptr<Runner> Runner::Start(Napi::Env env, const char* name) {
  std::shared_ptr<Runner> r(new Runner());
  r->env_ = env;
  napi_value resource;
  NAPI_THROW_IF_FAILED(env, napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource), nullptr);
  // No JS function: CallJs settles the promise. Unlimited queue (the thread never blocks on it); unreferenced
  // while idle so that an idle object does not keep the process alive (Submit refs it while calls are in flight).
  NAPI_THROW_IF_FAILED(env,
                       napi_create_threadsafe_function(env, nullptr, nullptr, resource, 0, 1, r.get(),
                                                       &Runner::Finalize, r.get(), &Runner::CallJs, &r->tsfn_),
                       nullptr);
  napi_unref_threadsafe_function(env, r->tsfn_);
  r->self_ = r;
  static std::once_flag atExit;
  std::call_once(atExit, [] { std::atexit(&Runner::AbortAllAtExit); });
  {
    std::lock_guard<std::mutex> reg(registryMutex());
    registry().insert(r.get());
  }
  r->thread_ = std::thread([p = r.get()] {
    p->loop();
    std::lock_guard<std::mutex> lock(p->mu_);
    p->exited_ = true;
    p->cv_.notify_all();
  });
  return r;
}

Runner::~Runner() {
  {
    std::lock_guard<std::mutex> reg(registryMutex());
    registry().erase(this);
  }
  // Normally joined by Close()/Finalize(); a runner never started or torn down oddly must not std::terminate.
  if (thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      abort_ = true;
    }
    cv_.notify_all();
    if (thread_.get_id() == std::this_thread::get_id())
      thread_.detach();
    else
      thread_.join();
  }
}

void Runner::loop() {
  pthread_setname_np(pthread_self(), "cmac-step");  // as top -H and /proc/<pid>/task/*/comm show it
  cmac::applyNumThreads();  // at::set_num_threads on this thread: its OpenMP team persists from call to call
  for (;;) {
    std::unique_ptr<Job> job;
    std::function<void()> last;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return abort_ || stop_ || !queue_.empty(); });
      if (abort_) return;
      if (queue_.empty()) {  // stop_: everything queued has run
        last = std::move(last_);
      } else {
        job = std::move(queue_.front());
        queue_.pop_front();
      }
    }
    if (!job) {
      try {
        if (last) last();  // frees the object on the thread that allocated it
      } catch (...) {}
      return;
    }
    cmac::applyNumThreads();  // a no-op unless setNumThreads() changed the count
    try {
      job->done = job->work();
    } catch (...) {
      job->failed = true;
      job->failure = captureFailure(std::current_exception());
    }
    job->work = nullptr;  // release the call's inputs here, on this thread
    Job* raw = job.release();
    if (napi_call_threadsafe_function(tsfn_, raw, napi_tsfn_nonblocking) != napi_ok) {
      // The environment is shutting down: the promise can no longer settle.
      delete raw;
    }
  }
}

Napi::Promise Runner::Submit(Napi::Env env, Work work) {
  if (closing_) cmac::valueError("internal: a call was queued on a closed runner");
  auto job = std::make_unique<Job>(Job{Napi::Promise::Deferred::New(env), std::move(work), nullptr});
  Napi::Promise p = job->deferred.Promise();
  if (inflight_++ == 0) napi_ref_threadsafe_function(env, tsfn_);
  ++pendingCounter();
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(std::move(job));
  }
  cv_.notify_one();
  return p;
}

// JS thread (or env == nullptr while the ThreadSafeFunction is torn down).
void Runner::CallJs(napi_env env, napi_value, void* context, void* data) {
  std::unique_ptr<Job> job(static_cast<Job*>(data));
  auto* r = static_cast<Runner*>(context);
  if (env == nullptr) return;
  --pendingCounter();
  Napi::Env e(env);
  // Settling may fail while the environment shuts down; nothing may escape from here then.
  try {
    Napi::HandleScope scope(e);
    try {
      if (job->failed)
        job->deferred.Reject(failureToJs(e, job->failure).Value());
      else
        job->deferred.Resolve(job->done ? job->done(e) : e.Undefined());
    } catch (const Napi::Error& err) {
      job->deferred.Reject(err.Value());
    } catch (...) {
      job->deferred.Reject(failureToJs(e, captureFailure(std::current_exception())).Value());
    }
  } catch (...) {}
  job->done = nullptr;
  r->settled(e);
}

void Runner::settled(Napi::Env env) {
  if (--inflight_ == 0) {
    if (!finalized_) napi_unref_threadsafe_function(env, tsfn_);
    if (closing_) join();
  }
}

void Runner::Close(std::function<void()> last) {
  if (closing_) return;
  closing_ = true;
  {
    std::lock_guard<std::mutex> lock(mu_);
    last_ = std::move(last);
    stop_ = true;
  }
  cv_.notify_one();
  if (inflight_ == 0) join();
}

// JS thread: the thread has nothing left to settle (or the environment ends).
void Runner::join() {
  if (joined_) return;
  joined_ = true;
  if (thread_.joinable()) thread_.join();
  // The object and its thread's caches (oneDNN's, autograd's) are freed now: their free blocks go
  // back to the system instead of waiting in the caching allocator (native/core/cpu_cache.h).
  cmac::releaseCpuCache();
  if (!finalized_ && !released_) {
    released_ = true;
    napi_release_threadsafe_function(tsfn_, napi_tsfn_release);  // Finalize follows on the JS thread
  }
}

// JS thread, once: after release, or when the environment ends (worker.terminate(),
// process teardown) with calls still queued. Joins the thread before the
// ThreadSafeFunction is freed, so the thread never calls into a freed one.
void Runner::Finalize(napi_env, void* data, void*) {
  auto* r = static_cast<Runner*>(data);
  r->finalized_ = true;
  if (!r->joined_) {
    {
      std::lock_guard<std::mutex> lock(r->mu_);
      r->abort_ = true;  // the call running finishes; queued ones are dropped with the environment
    }
    r->cv_.notify_all();
    r->closing_ = true;
    r->joined_ = true;
    if (r->thread_.joinable()) r->thread_.join();
  }
  std::shared_ptr<Runner> keep = std::move(r->self_);  // may free r when the wrapper is already gone
}

}  // namespace cmacjs
