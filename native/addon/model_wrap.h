// CmacModel as a JS class: a thin wrapper that converts arguments and runs
// the core's calls on the model's own thread in the order made (runner.h:
// one persistent thread per model, native memory reported to V8).
#pragma once
#include <napi.h>

#include <atomic>
#include <memory>

#include "cmac_model.h"
#include "runner.h"

namespace cmacjs {

using ModelNative = Native<cmac::CmacModel>;

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

  std::shared_ptr<ModelNative> handle(const Napi::CallbackInfo& info);  // throws CMAC_DISPOSED when disposed
  // Queues fn(model) on the model's thread (in train or eval mode as set by train()/eval()).
  Napi::Value Run(const Napi::CallbackInfo& info, ModelNative::Call fn);

  std::shared_ptr<ModelNative> h_;
  std::shared_ptr<std::atomic<bool>> training_ = std::make_shared<std::atomic<bool>>(true);
  std::shared_ptr<std::string> device_ = std::make_shared<std::string>();  // updated by to() on the JS thread
  int64_t numParameters_ = 0;
  int rank_ = 0, worldSize_ = 1;
};

cmac::ModelConfig configFromJs(const Napi::Value& v);

}  // namespace cmacjs
