// The tensor bridge and the async plumbing shared by the addon's calls.
// Tensors cross as { data: TypedArray, shape: number[], dtype?: string } and
// are always copied (Electron refuses external ArrayBuffers).
#pragma once
#include <napi.h>
#include <torch/types.h>

#include <atomic>
#include <exception>
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

// The stable `code` of every error the addon throws or rejects with: the one
// list (docs/errors.md documents it; exports.errorCodes carries it to JS and
// test/addon-errors checks lib/native.ts's NativeErrorCode against it).
//   X(code, JS class, meaning)
#define CMAC_ERROR_CODES(X)                                                                                       \
  X(CMAC_BAD_ARGUMENT, TypeError, "an argument has the wrong type or is missing, or a method got another object") \
  X(CMAC_OUT_OF_RANGE, RangeError, "a number or size is outside what the engine can hold")                        \
  X(CMAC_SHAPE_MISMATCH, RangeError, "a tensor's shape or element count does not fit what the call needs")        \
  X(CMAC_INVALID_VALUE, Error, "a value is not one the engine knows (a loss preset, an optimiser name, ...)")     \
  X(CMAC_IO, Error, "a file cannot be opened, read, written or renamed")                                          \
  X(CMAC_CHECKPOINT_INVALID, Error, "a safetensors file is malformed, or its weights do not fit this model")      \
  X(CMAC_DISPOSED, Error, "a model, classifier or decoder was used after dispose()")                              \
  X(CMAC_UNAVAILABLE, Error, "this build lacks the feature (e.g. built without libav)")                           \
  X(CMAC_TORCH_ERROR, Error, "libtorch raised an error inside the work")                                          \
  X(CMAC_NATIVE_ERROR, Error, "any other native failure (out of memory, ...)")

enum class ErrorCode {
#define CMAC_X(code, cls, what) code,
  CMAC_ERROR_CODES(CMAC_X)
#undef CMAC_X
};
const char* errorCodeName(ErrorCode c);
// exports.errorCodes: { CMAC_BAD_ARGUMENT: 'meaning', ... } (frozen).
Napi::Object errorCodesToJs(Napi::Env env);

// A native failure captured off the JS thread, turned into a JS error on it.
struct NativeFailure {
  ErrorCode code = ErrorCode::CMAC_NATIVE_ERROR;
  std::string message;
};
NativeFailure captureFailure(std::exception_ptr e);
Napi::Error failureToJs(Napi::Env env, const NativeFailure& f);
// A JS error of the code's class with `code` set.
Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& msg);
// Runs `f`, turning C++ exceptions into JS exceptions (for synchronous calls).
Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& f);
// Throws a TypeError unless `this` carries `tag`: an ObjectWrap method called
// with another class's object (Function.prototype.call) must not touch members.
void requireReceiver(const Napi::CallbackInfo& info, const napi_type_tag* tag, const char* className);

// Runs work off the JS thread and settles a Promise (module-level calls such
// as readSafetensors; an object's calls run on its Runner, runner.h). `work` runs on a libuv
// thread and returns the continuation that builds the JS value on the main
// thread.
class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Done = std::function<Napi::Value(Napi::Env)>;
  using Work = std::function<Done()>;
  PromiseWorker(Napi::Env env, Work work);
  static Napi::Promise Queue(Napi::Env env, Work work);
  Napi::Promise Promise() { return deferred_.Promise(); }

 protected:
  void Execute() override;
  void OnOK() override;
  void OnError(const Napi::Error& e) override;

 private:
  Napi::Promise::Deferred deferred_;
  Work work_;
  Done done_;
  NativeFailure failure_;
};

// Live async operations in this process, for memory().
int64_t pendingOps();
std::atomic<int64_t>& pendingCounter();

}  // namespace cmacjs
