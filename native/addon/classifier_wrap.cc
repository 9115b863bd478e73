#include "classifier_wrap.h"

#include "addon_data.h"
#include "bridge.h"
#include "model_wrap.h"

namespace cmacjs {

namespace {

const napi_type_tag kClassifierTag = {0x636d6163636c6173ULL, 0x7300000000000001ULL};

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
  Napi::Function ctor = DefineClass(
      env, "VideoClassifier",
      {InstanceMethod<&ClassifierWrap::TrainStep>("trainStep"), InstanceMethod<&ClassifierWrap::Predict>("predict"),
       InstanceMethod<&ClassifierWrap::LoadEncoder>("loadEncoder"),
       InstanceMethod<&ClassifierWrap::Snapshot>("snapshot"),
       InstanceMethod<&ClassifierWrap::RestoreSnapshot>("restoreSnapshot"),
       InstanceMethod<&ClassifierWrap::Save>("save"), InstanceMethod<&ClassifierWrap::Dispose>("dispose"),
       InstanceAccessor<&ClassifierWrap::NumClasses>("numClasses"), InstanceAccessor<&ClassifierWrap::Device>("device"),
       InstanceAccessor<&ClassifierWrap::NumParameters>("numParameters"),
       InstanceAccessor<&ClassifierWrap::Disposed>("disposed")});
  AddonData::Get(env)->classifierCtor = Napi::Persistent(ctor);
  exports.Set("VideoClassifier", ctor);
  exports.Set("createClassifier", Napi::Function::New<&ClassifierWrap::Create>(env, "createClassifier"));
}

// Only createClassifier() constructs (it passes the native classifier as an External).
ClassifierWrap::ClassifierWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ClassifierWrap>(info) {
  Napi::Env env = info.Env();
  h_ = ClassifierNative::Take(info);
  if (!h_)
    throw makeError(
        env, ErrorCode::CMAC_BAD_ARGUMENT,
        "VideoClassifier cannot be constructed directly. Fix: use `await createClassifier(config, { numClasses })`.");
  info.This().As<Napi::Object>().TypeTag(&kClassifierTag);
}

ClassifierWrap::~ClassifierWrap() {
  if (h_) h_->Dispose(Env());
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
    struct Facts {
      std::string device;
      int64_t numClasses, numParameters;
    };
    auto facts = std::make_shared<Facts>();
    return ClassifierNative::Create(
        env, "VideoClassifier",
        [cfg, co, encoder, facts] {
          auto c = std::make_unique<cmac::VideoClassifier>(cfg, co);
          if (!encoder.empty()) c->loadEncoderFile(encoder);
          *facts = {c->device(), c->numClasses(), c->numParameters()};
          return c;
        },
        [facts](Napi::Env env, std::shared_ptr<ClassifierNative> n) -> Napi::Value {
          Napi::Object o = n->Wrap(env, AddonData::Get(env)->classifierCtor);
          ClassifierWrap* w = ClassifierWrap::Unwrap(o);
          w->device_ = facts->device;
          w->numClasses_ = facts->numClasses;
          w->numParameters_ = facts->numParameters;
          return o;
        });
  });
}

Napi::Value ClassifierWrap::Queue(const Napi::CallbackInfo& info, ClassifierNative::Call fn) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier");
  if (!h_) disposedError("VideoClassifier");
  return h_->Run(info.Env(), std::move(fn));
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
    h_->Dispose(info.Env());  // calls in flight still run; the classifier is freed on its thread after them
    h_.reset();
  }
  return info.Env().Undefined();
}

Napi::Value ClassifierWrap::NumClasses(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier");
  return Napi::Number::New(info.Env(), double(numClasses_));
}
Napi::Value ClassifierWrap::Device(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier");
  return Napi::String::New(info.Env(), device_);
}
Napi::Value ClassifierWrap::NumParameters(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier");
  return Napi::Number::New(info.Env(), double(numParameters_));
}
Napi::Value ClassifierWrap::Disposed(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kClassifierTag, "VideoClassifier");
  return Napi::Boolean::New(info.Env(), !h_);
}

}  // namespace cmacjs
