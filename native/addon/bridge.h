// The tensor bridge and the async plumbing shared by the addon's calls.
// Tensors cross as { data: TypedArray, shape: number[], dtype?: string } and
// are always copied (Electron refuses external ArrayBuffers).
#pragma once
#include <napi.h>
#include <torch/types.h>

#include <functional>
#include <string>

#include "errors.h"

namespace cmacjs {

// JS value -> CPU tensor (a copy). `name` is the parameter named in errors.
torch::Tensor tensorFromJs(const Napi::Value& v, const std::string& name);
// Optional variant: undefined/null -> undefined tensor.
torch::Tensor optionalTensorFromJs(const Napi::Object& o, const char* key, const std::string& name);
// Tensor -> { data, shape, dtype } (a copy into V8 memory).
Napi::Object tensorToJs(Napi::Env env, const torch::Tensor& t);
// o[key] = v as an own, enumerable, writable property (defineProperty, not
// assignment), so a key read from a file such as "__proto__" cannot replace
// the prototype or run a setter.
void setOwn(Napi::Object& o, const std::string& key, const Napi::Value& v);

// Typed accessors for option objects; errors name `path` and the expected type.
double getNumber(const Napi::Object& o, const char* key, const std::string& path, double dflt);
int64_t getInt(const Napi::Object& o, const char* key, const std::string& path, int64_t dflt, int64_t lo, int64_t hi);
bool getBool(const Napi::Object& o, const char* key, const std::string& path, bool dflt);
std::string getString(const Napi::Object& o, const char* key, const std::string& path, const std::string& dflt);
Napi::Object getObject(const Napi::Object& o, const char* key, const std::string& path);  // {} when absent
Napi::Object requireObject(const Napi::Value& v, const std::string& name);

// Throws the JS error class that matches a core error kind.
Napi::Error makeError(Napi::Env env, cmac::Error::Kind kind, const std::string& msg);
// Runs `f`, turning C++ exceptions into JS exceptions (for synchronous calls).
Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& f);
// Throws a TypeError unless `this` carries `tag`: an ObjectWrap method called
// with another class's object (Function.prototype.call) must not touch members.
void requireReceiver(const Napi::CallbackInfo& info, const napi_type_tag* tag, const char* className);

// Runs work off the JS thread and settles a Promise. `work` runs on a libuv
// thread and returns the continuation that builds the JS value on the main
// thread. `receiver` (the calling object) stays alive until the work ends.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Done = std::function<Napi::Value(Napi::Env)>;
  using Work = std::function<Done()>;
  PromiseWorker(Napi::Env env, Work work);
  PromiseWorker(const Napi::Object& receiver, Work work);
  static Napi::Promise Queue(Napi::Env env, Work work);
  static Napi::Promise Queue(const Napi::Object& receiver, Work work);
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ObjectReference receiver_;  // keeps the calling object alive while work runs
  Work work_;
  Done done_;
  cmac::Error::Kind kind_ = cmac::Error::Kind::Value;
  bool kindSet_ = false;
};

// Live async operations in this process, for memory().
int64_t pendingOps();

}  // namespace cmacjs
