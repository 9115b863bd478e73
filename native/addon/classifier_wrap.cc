#include "classifier_wrap.h"

#include "addon_data.h"
#include "bridge.h"
#include "model_wrap.h"

namespace cmacjs {

namespace {

const napi_type_tag kClassifierTag = {0x636d6163636c6173ULL, 0x7300000000000001ULL};

// Never throws (see model_wrap.cc): finalisers run during environment teardown.
void adjustBy(napi_env env, int64_t delta) {
  int64_t ignored;
  if (delta) napi_adjust_external_memory(env, delta, &ignored);
}

std::string pathArg(const Napi::CallbackInfo& info, const char* what) {
  if (info.Length() < 1 || !info[0].IsString() || info[0].As<Napi::String>().Utf8Value().empty())
    cmac::typeError(std::string(what) + " must be a non-empty string (a file path)");
  return info[0].As<Napi::String>();
}

torch::Tensor videoOf(const Napi::CallbackInfo& info) {
  Napi::Object b = requireObject(info.Length() > 0 ? info[0] : info.Env().Undefined(), "batch");
  torch::Tensor v = optionalTensorFromJs(b, "video", "batch.video");
  if (!v.defined()) cmac::typeError("batch.video is required (uint8 [N, T, H, W, 3])");
  return v;
}

}  // namespace

void ClassifierWrap::Register(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, "VideoClassifier",
                                    {InstanceMethod<&ClassifierWrap::TrainStep>("trainStep"),
                                     InstanceMethod<&ClassifierWrap::Predict>("predict"),
                                     InstanceMethod<&ClassifierWrap::LoadEncoder>("loadEncoder"),
                                     InstanceMethod<&ClassifierWrap::Snapshot>("snapshot"),
                                     InstanceMethod<&ClassifierWrap::RestoreSnapshot>("restoreSnapshot"),
                                     InstanceMethod<&ClassifierWrap::Save>("save"),
                                     InstanceMethod<&ClassifierWrap::Dispose>("dispose"),
                                     InstanceAccessor<&ClassifierWrap::NumClasses>("numClasses"),
                                     InstanceAccessor<&ClassifierWrap::Device>("device"),
                                     InstanceAccessor<&ClassifierWrap::NumParameters>("numParameters"),
                                     InstanceAccessor<&ClassifierWrap::Disposed>("disposed")});
  AddonData::Get(env)->classifierCtor = Napi::Persistent(ctor);
  exports.Set("VideoClassifier", ctor);
  exports.Set("createClassifier", Napi::Function::New<&ClassifierWrap::Create>(env, "createClassifier"));
}

// Only createClassifier() constructs (it passes the handle as an External).
ClassifierWrap::ClassifierWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClassifierWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsExternal())
    throw Napi::TypeError::New(env, "VideoClassifier cannot be constructed directly. Fix: use `await createClassifier(config, { numClasses })`.");
  auto* p = info[0].As<Napi::External<std::shared_ptr<ClassifierHandle>>>().Data();
  if (!p || !*p) throw Napi::TypeError::New(env, "VideoClassifier cannot be constructed directly. Fix: use `await createClassifier(config, { numClasses })`.");
  h_ = std::move(*p);
  info.This().As<Napi::Object>().TypeTag(&kClassifierTag);
  device_ = h_->clf->device();
  numClasses_ = h_->clf->numClasses();
  numParameters_ = h_->clf->numParameters();
  report(env);
}

ClassifierWrap::~ClassifierWrap() { adjustBy(Env(), -reported_); }

void ClassifierWrap::report(Napi::Env env) {
  if (!h_) return;
  const int64_t now = h_->bytes.load();
  adjustBy(env, now - reported_);
  reported_ = now;
}

Napi::Value ClassifierWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    cmac::ModelConfig cfg = configFromJs(info.Length() > 0 ? info[0] : env.Undefined());
    Napi::Object o = requireObject(info.Length() > 1 ? info[1] : env.Undefined(), "options");
    if (o.Get("numClasses").IsUndefined()) cmac::typeError("options.numClasses is required (an integer >= 2)");
    cmac::ClassifierOptions co;
    co.numClasses = getInt(o, "numClasses", "options.numClasses", 2, 2, 100000);
    co.optim = cfg.optim;  // the classifier's optimiser is config.optim
    const std::string encoder = getString(o, "encoder", "options.encoder", "");
    return PromiseWorker::Queue(env, [cfg, co, encoder]() -> PromiseWorker::Done {
      auto h = std::make_shared<ClassifierHandle>();
      h->clf = std::make_unique<cmac::VideoClassifier>(cfg, co);
      if (!encoder.empty()) h->clf->loadEncoderFile(encoder);
      h->bytes = h->clf->stateBytes();
      return [h](Napi::Env env) -> Napi::Value {
        auto ext = Napi::External<std::shared_ptr<ClassifierHandle>>::New(
            env, new std::shared_ptr<ClassifierHandle>(h), [](Napi::Env, std::shared_ptr<ClassifierHandle>* p) { delete p; });
        return AddonData::Get(env)->classifierCtor.New({ext});
      };
    });
  });
}

Napi::Value ClassifierWrap::Queue(const Napi::CallbackInfo& info, Work fn) {
  if (!info.This().IsObject() || !info.This().As<Napi::Object>().CheckTypeTag(&kClassifierTag))
    cmac::typeError("receiver is not a VideoClassifier");
  if (!h_) cmac::valueError("VideoClassifier was disposed. Fix: create a new one.");
  auto h = h_;
  return PromiseWorker::Queue(info.This().As<Napi::Object>(), [h, fn, this]() -> PromiseWorker::Done {
    std::lock_guard<std::mutex> lock(h->mu);
    if (!h->clf) cmac::valueError("VideoClassifier was disposed while this call was queued");
    auto done = fn(*h->clf);
    h->bytes = h->clf->stateBytes();
    // `this` stays valid: the worker holds a reference to the JS object.
    return [done, this](Napi::Env env) {
      report(env);
      return done ? done(env) : env.Undefined();
    };
  });
}

Napi::Value ClassifierWrap::TrainStep(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    torch::Tensor video = videoOf(info);
    torch::Tensor labels = optionalTensorFromJs(info[0].As<Napi::Object>(), "labels", "batch.labels");
    if (!labels.defined()) cmac::typeError("batch.labels is required (Int32Array or BigInt64Array [N])");
    Napi::Object o = requireObject(info.Length() > 1 ? info[1] : info.Env().Undefined(), "options");
    if (o.Get("lr").IsUndefined()) cmac::typeError("options.lr is required (a number >= 0)");
    const double lr = getNumber(o, "lr", "options.lr", 0);
    if (lr < 0) cmac::rangeError("options.lr must be >= 0, got " + std::to_string(lr));
    return Queue(info, [video, labels, lr](cmac::VideoClassifier& c) {
      cmac::ClassifierStep r = c.trainStep(video, labels, lr);
      const int64_t step = c.steps();
      return [r, step](Napi::Env env) -> Napi::Value {
        Napi::Object out = Napi::Object::New(env);
        out.Set("loss", r.loss);
        out.Set("accuracy", r.accuracy);
        out.Set("gradNorm", r.gradNorm);
        out.Set("timeMs", r.timeMs);
        out.Set("finite", r.finite);
        out.Set("step", double(step));
        return out;
      };
    });
  });
}

Napi::Value ClassifierWrap::Predict(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    torch::Tensor video = videoOf(info);
    return Queue(info, [video](cmac::VideoClassifier& c) {
      torch::Tensor logits = c.predict(video);
      return [logits](Napi::Env env) -> Napi::Value { return tensorToJs(env, logits); };
    });
  });
}

// A call with no result: fn(classifier) off the JS thread, resolves to undefined.
Napi::Value ClassifierWrap::Void(const Napi::CallbackInfo& info, std::function<void(cmac::VideoClassifier&)> fn) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return Queue(info, [fn](cmac::VideoClassifier& c) {
      fn(c);
      return std::function<Napi::Value(Napi::Env)>();
    });
  });
}

Napi::Value ClassifierWrap::LoadEncoder(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathArg(info, "loadEncoder(path): path");
    return Void(info, [path](cmac::VideoClassifier& c) { c.loadEncoderFile(path); });
  });
}

Napi::Value ClassifierWrap::Snapshot(const Napi::CallbackInfo& info) {
  return Void(info, [](cmac::VideoClassifier& c) { c.snapshot(); });
}

Napi::Value ClassifierWrap::RestoreSnapshot(const Napi::CallbackInfo& info) {
  return Void(info, [](cmac::VideoClassifier& c) { c.restoreSnapshot(); });
}

Napi::Value ClassifierWrap::Save(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    const std::string path = pathArg(info, "save(path): path");
    return Void(info, [path](cmac::VideoClassifier& c) { c.save(path); });
  });
}

Napi::Value ClassifierWrap::Dispose(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier");
  if (h_) {
    adjustBy(info.Env(), -reported_);
    reported_ = 0;
    h_.reset();  // calls in flight hold their own reference; the last one frees the classifier
  }
  return info.Env().Undefined();
}

Napi::Value ClassifierWrap::NumClasses(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier"); return Napi::Number::New(info.Env(), double(numClasses_)); }
Napi::Value ClassifierWrap::Device(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier"); return Napi::String::New(info.Env(), device_); }
Napi::Value ClassifierWrap::NumParameters(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier"); return Napi::Number::New(info.Env(), double(numParameters_)); }
Napi::Value ClassifierWrap::Disposed(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier"); return Napi::Boolean::New(info.Env(), !h_); }

}  // namespace cmacjs
