// CmacModel as a JS class: a thin wrapper that converts arguments, runs the
// core's calls off the JS thread one at a time, and accounts native memory.
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>
#include <mutex>

#include "cmac_model.h"

namespace cmacjs {

// Shared by the JS object and any in-flight work, so dispose() or GC during
// a call frees the model only when the call is done.
struct ModelHandle {
  std::mutex mu;  // one operation at a time per model
  std::unique_ptr<cmac::CmacModel> model;
  std::atomic<bool> training{true};
  std::atomic<int64_t> bytes{0};
};

class ModelWrap : public Napi::ObjectWrap<ModelWrap> {
 public:
  static Napi::Function Define(Napi::Env env);
  // createModel(config) -> Promise<CmacModel>
  static Napi::Value Create(const Napi::CallbackInfo& info);
  explicit ModelWrap(const Napi::CallbackInfo& info);
  ~ModelWrap() override;

 private:
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value EvaluateLoss(const Napi::CallbackInfo& info);
  Napi::Value Embed(const Napi::CallbackInfo& info);
  Napi::Value Maps(const Napi::CallbackInfo& info);
  Napi::Value StateDict(const Napi::CallbackInfo& info);
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info);
  Napi::Value OptimizerState(const Napi::CallbackInfo& info);
  Napi::Value LoadOptimizerState(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Load(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Train(const Napi::CallbackInfo& info);
  Napi::Value Eval(const Napi::CallbackInfo& info);
  Napi::Value IsTraining(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value NumParameters(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value AnyRank(const Napi::CallbackInfo& info);
  Napi::Value LogmelStats(const Napi::CallbackInfo& info);
  Napi::Value SetLogmelStats(const Napi::CallbackInfo& info);
  Napi::Value Rank(const Napi::CallbackInfo& info);
  Napi::Value WorldSize(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  std::shared_ptr<ModelHandle> handle(const Napi::CallbackInfo& info);  // throws when disposed
  // Runs fn(model) off the JS thread under the model's lock.
  Napi::Value Run(const Napi::CallbackInfo& info,
                  std::function<std::function<Napi::Value(Napi::Env)>(cmac::CmacModel&)> fn);
  void syncExternalMemory(Napi::Env env);

  std::shared_ptr<ModelHandle> h_;
  int64_t reported_ = 0;  // bytes reported to V8 through AdjustExternalMemory
  std::string device_;
  int64_t numParameters_ = 0;
  int rank_ = 0, worldSize_ = 1;
};

cmac::ModelConfig configFromJs(const Napi::Value& v);

}  // namespace cmacjs
