// VideoClassifier (native/core/classifier.h) as a JS class: a thin wrapper
// that checks arguments, runs the core's calls off the JS thread one at a
// time, and accounts native memory. Registered by addon.cc through Register().
#pragma once
#include <napi.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "classifier.h"

namespace cmacjs {

struct ClassifierHandle {
  std::mutex mu;  // one operation at a time per classifier
  std::unique_ptr<cmac::VideoClassifier> clf;
  std::atomic<int64_t> bytes{0};
};

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

  using Work = std::function<std::function<Napi::Value(Napi::Env)>(cmac::VideoClassifier&)>;
  // Runs fn(classifier) off the JS thread under the classifier's lock.
  Napi::Value Queue(const Napi::CallbackInfo& info, Work fn);
  Napi::Value Void(const Napi::CallbackInfo& info, std::function<void(cmac::VideoClassifier&)> fn);
  void report(Napi::Env env);  // AdjustExternalMemory to the handle's byte count

  std::shared_ptr<ClassifierHandle> h_;
  int64_t reported_ = 0;
  std::string device_;
  int64_t numClasses_ = 0, numParameters_ = 0;
};

}  // namespace cmacjs
