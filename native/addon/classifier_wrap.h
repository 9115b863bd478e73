// VideoClassifier (native/core/classifier.h) as a JS class: a thin wrapper
// that checks arguments and runs the core's calls on the classifier's own
// thread in the order made (runner.h, shared with CmacModel). Registered by
// addon.cc through Register().
#pragma once
#include <napi.h>

#include <functional>
#include <memory>

#include "classifier.h"
#include "runner.h"

namespace cmacjs {

using ClassifierNative = Native<cmac::VideoClassifier>;

class ClassifierWrap : public Napi::ObjectWrap<ClassifierWrap> {
 public:
  // exports.createClassifier(config, { numClasses, encoder? }) -> Promise<VideoClassifier>
  // (config.optim is the classifier's optimiser; encoder: a cmac checkpoint whose
  // visual.* weights are loaded) and exports.VideoClassifier (not constructible from JS).
  static void Register(Napi::Env env, Napi::Object exports);
  explicit ClassifierWrap(const Napi::CallbackInfo& info);
  ~ClassifierWrap() override;

 private:
  static Napi::Value Create(const Napi::CallbackInfo& info);
  Napi::Value TrainStep(const Napi::CallbackInfo& info);
  Napi::Value Predict(const Napi::CallbackInfo& info);
  Napi::Value LoadEncoder(const Napi::CallbackInfo& info);
  Napi::Value Snapshot(const Napi::CallbackInfo& info);
  Napi::Value RestoreSnapshot(const Napi::CallbackInfo& info);
  Napi::Value Save(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value NumClasses(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value NumParameters(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);

  // Queues fn(classifier) on the classifier's thread.
  Napi::Value Queue(const Napi::CallbackInfo& info, ClassifierNative::Call fn);
  Napi::Value Void(const Napi::CallbackInfo& info, std::function<void(cmac::VideoClassifier&)> fn);

  std::shared_ptr<ClassifierNative> h_;
  std::string device_;
  int64_t numClasses_ = 0, numParameters_ = 0;
};

}  // namespace cmacjs
