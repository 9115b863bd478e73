// The async plumbing of the addon's objects: one persistent native thread per
// CmacModel / VideoClassifier (issue 18) and one template for calls, disposal
// and V8 memory accounting shared by both wrappers (issue 16).
//
// Why a thread of our own instead of libuv's pool: glibc gives every thread
// its own malloc arena and OpenMP keeps one thread team per calling thread, so
// calls hopping between pool threads free a step's activations into one arena
// and allocate the next step's from another (RSS held several step-sized
// arenas unless MALLOC_ARENA_MAX=1) and rebuilt the OpenMP team. Every heavy
// call of one object (create, steps, embed, save, ..., and freeing it) runs on
// that object's thread in the order made; results settle the JS promise
// through a ThreadSafeFunction on the JS thread.
#pragma once
#include <napi.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "bridge.h"

namespace cmacjs {

// Throws the CMAC_DISPOSED error of a JS class ("CmacModel was disposed. Fix: ...").
[[noreturn]] void disposedError(const std::string& className);

class Runner {
 public:
  using Done = std::function<Napi::Value(Napi::Env)>;  // builds the result on the JS thread
  using Work = std::function<Done()>;                  // runs on the runner's thread

  // JS thread: starts the thread. The runner lives until it is closed (or the
  // environment ends) and its ThreadSafeFunction is finalised.
  static std::shared_ptr<Runner> Start(Napi::Env env, const char* name);
  ~Runner();

  // JS thread: queues `work`; the promise settles with done(env), or rejects
  // with the error `work` threw (its `code` set, see errors.md).
  Napi::Promise Submit(Napi::Env env, Work work);
  // JS thread: runs `last` on the thread after everything queued, then ends
  // the thread. Joins now when nothing is in flight (so memory is freed when
  // dispose() returns), else when the last call settles. Idempotent.
  void Close(std::function<void()> last);
  bool closed() const { return closing_; }

 private:
  struct Job;
  Runner() = default;
  void loop();
  void join();
  void settled(Napi::Env env);
  static void CallJs(napi_env env, napi_value, void* context, void* data);
  static void Finalize(napi_env env, void* data, void* hint);

  napi_env env_ = nullptr;
  napi_threadsafe_function tsfn_ = nullptr;
  std::shared_ptr<Runner> self_;  // held until the ThreadSafeFunction is finalised (CallJs's context)
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Job>> queue_;
  std::function<void()> last_;
  bool stop_ = false;    // under mu_: run last_ after the queue, then exit
  bool abort_ = false;   // under mu_: environment teardown: exit after the current job
  bool exited_ = false;  // under mu_: loop() has returned (waited for by the process-exit handler)
 public:
  static void AbortAllAtExit();
  // JS thread, from process.on('exit') (registered by the addon's Init): the
  // runners of `env` end after their current call, and this waits for them,
  // so exit() never destroys libtorch/oneDNN statics under a running call.
  static void AbortAll(napi_env env);
  void AbortAndWait(napi_env env);  // under the registry lock; env == nullptr: any
 private:
  // JS thread only:
  int64_t inflight_ = 0;
  bool closing_ = false, joined_ = false, released_ = false, finalized_ = false;
};

// One native object (cmac::CmacModel, cmac::VideoClassifier) behind a JS
// wrapper: created, used and freed on its own Runner, with the bytes it holds
// reported to V8 (AdjustExternalMemory) after every call. Shared by the
// wrapper and the calls in flight.
template <class Core>
class Native : public std::enable_shared_from_this<Native<Core>> {
 public:
  using Make = std::function<std::unique_ptr<Core>()>;
  using Call = std::function<Runner::Done(Core&)>;
  using Then = std::function<Napi::Value(Napi::Env, std::shared_ptr<Native>)>;

  // createX(...): starts a runner, builds the object on it, and resolves with
  // then(env, native) (which makes the JS wrapper). A failed build ends the runner.
  static Napi::Promise Create(Napi::Env env, const char* name, Make make, Then then) {
    auto n = std::shared_ptr<Native>(new Native());
    n->name_ = name;
    n->runner_ = Runner::Start(env, name);
    return n->runner_->Submit(env, [n, make, then]() -> Runner::Done {
      try {
        n->obj_ = make();
      } catch (...) {
        n->obj_.reset();
        throw;
      }
      n->bytes_ = n->obj_->stateBytes();
      return [n, then](Napi::Env env) -> Napi::Value {
        n->report(env);
        return then(env, n);
      };
    });
  }

  // Queues fn(object) on the object's thread; `before` runs there first (e.g.
  // the model's train/eval mode). The byte count is refreshed after each call.
  Napi::Promise Run(Napi::Env env, Call fn) {
    if (runner_->closed()) disposedError(name_);
    auto self = this->shared_from_this();
    return runner_->Submit(env, [self, fn]() -> Runner::Done {
      if (!self->obj_) disposedError(self->name_);
      if (self->before) self->before(*self->obj_);
      Runner::Done done = fn(*self->obj_);
      self->bytes_ = self->obj_->stateBytes();
      return [self, done](Napi::Env env) -> Napi::Value {
        self->report(env);
        return done ? done(env) : env.Undefined();
      };
    });
  }

  // JS thread: stops accounting and frees the object on its thread after the
  // calls already made (now, when none is in flight). Safe to call twice.
  void Dispose(napi_env env) {
    if (runner_->closed()) return;
    adjust(env, -reported_);
    reported_ = 0;
    auto self = this->shared_from_this();
    runner_->Close([self] { self->obj_.reset(); });
  }

  std::function<void(Core&)> before;  // set once, before any call

  bool disposed() const { return runner_->closed(); }

  // JS thread: the JS object for this native one, made by `ctor` (whose
  // constructor takes it back with Take), so that only createX() constructs.
  Napi::Object Wrap(Napi::Env env, Napi::FunctionReference& ctor) {
    auto ext = Napi::External<std::shared_ptr<Native>>::New(env, new std::shared_ptr<Native>(this->shared_from_this()),
                                                            [](Napi::Env, std::shared_ptr<Native>* p) { delete p; });
    return ctor.New({ext});
  }
  // In the JS class's constructor: the native object Wrap passed, moved out of
  // the External (which must not keep it alive until GC); null when the class
  // was called from JS.
  static std::shared_ptr<Native> Take(const Napi::CallbackInfo& info) {
    if (info.Length() != 1 || !info[0].IsExternal()) return nullptr;
    auto* p = info[0].As<Napi::External<std::shared_ptr<Native>>>().Data();
    return p ? std::move(*p) : nullptr;
  }

 private:
  Native() = default;
  // AdjustExternalMemory that never throws: during environment teardown N-API
  // calls may fail, and a throw from a finaliser would abort the process.
  static void adjust(napi_env env, int64_t delta) {
    int64_t ignored;
    if (delta) napi_adjust_external_memory(env, delta, &ignored);
  }
  void report(napi_env env) {
    if (runner_->closed()) return;
    const int64_t now = bytes_.load();
    adjust(env, now - reported_);
    reported_ = now;
  }

  const char* name_ = "";  // the JS class, for errors
  std::shared_ptr<Runner> runner_;
  std::unique_ptr<Core> obj_;  // touched on the runner's thread only
  std::atomic<int64_t> bytes_{0};
  int64_t reported_ = 0;  // JS thread
};

}  // namespace cmacjs
