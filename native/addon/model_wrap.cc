#include "model_wrap.h"

#include "addon_data.h"
#include "bridge.h"

namespace cmacjs {

namespace {

const napi_type_tag kModelTag = {0x636d61636d6f6465ULL, 0x6c00000000000001ULL};

void readArray4(const Napi::Object& o, const char* key, const std::string& path, std::array<int64_t, 4>& out,
                int64_t lo, int64_t hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return;
  if (!v.IsArray() || v.As<Napi::Array>().Length() != 4) cmac::typeError(path + " must be an array of 4 integers");
  auto a = v.As<Napi::Array>();
  Napi::Object tmp = Napi::Object::New(o.Env());
  for (uint32_t i = 0; i < 4; ++i) {
    tmp.Set("x", a.Get(i));
    out[i] = getInt(tmp, "x", path + "[" + std::to_string(i) + "]", out[i], lo, hi);
  }
}

cmac::NamedTensors namedFromJs(const Napi::Value& v, const std::string& name) {
  Napi::Object o = requireObject(v, name);
  cmac::NamedTensors out;
  Napi::Array keys = o.GetPropertyNames();
  for (uint32_t i = 0; i < keys.Length(); ++i) {
    std::string k = keys.Get(i).As<Napi::String>();
    out.emplace_back(k, tensorFromJs(o.Get(k), name + "['" + k + "']"));
  }
  return out;
}

Napi::Value namedToJs(Napi::Env env, const cmac::NamedTensors& t) {
  Napi::Object o = Napi::Object::New(env);
  for (const auto& [k, v] : t) setOwn(o, k, tensorToJs(env, v));
  return o;
}

Napi::Object stepToJs(Napi::Env env, const cmac::StepResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("loss", r.loss);
  o.Set("lossCon", r.lossCon);
  o.Set("lossV", r.lossV);
  o.Set("lossA", r.lossA);
  o.Set("retrievalAcc", r.retrievalAcc);
  o.Set("gradNorm", r.gradNorm);
  o.Set("timeMs", r.timeMs);
  o.Set("lossScale", r.lossScale);
  o.Set("stepped", r.stepped);
  o.Set("finite", r.finite);
  return o;
}

cmac::Batch batchFromJs(const Napi::Value& v) {
  Napi::Object o = requireObject(v, "batch");
  cmac::Batch b;
  b.video = optionalTensorFromJs(o, "video", "batch.video");
  b.audio = optionalTensorFromJs(o, "audio", "batch.audio");
  return b;
}

void setIf(Napi::Env env, Napi::Object& o, const char* k, const torch::Tensor& t) {
  if (t.defined()) o.Set(k, tensorToJs(env, t));
}

}  // namespace

// The zod schema (lib/config/schema.ts) is where settings are validated and
// their ranges live; this reads what reaches the engine and keeps only what
// native memory needs: types, integers where a size is meant, sizes >= 1
// (>= 0 for counts), and caps on the sizes that allocate (widths, depths,
// FFT and mel sizes, embedding, queue) so a typo cannot ask for terabytes.
cmac::ModelConfig configFromJs(const Napi::Value& v) {
  constexpr int64_t kInt = 0x7fffffff;  // a size that fits the int the core keeps it in
  cmac::ModelConfig c;
  Napi::Object o = requireObject(v, "config");
  Napi::Object vis = getObject(o, "visual", "config.visual");
  readArray4(vis, "planes", "config.visual.planes", c.visual.planes, 4, 4096);
  readArray4(vis, "blocks", "config.visual.blocks", c.visual.blocks, 1, 64);
  c.visual.stemMid = getInt(vis, "stemMid", "config.visual.stemMid", c.visual.planes[0] * 45 / 64, 1, 4096);
  c.visual.lastStride1 = getBool(vis, "lastStride1", "config.visual.lastStride1", false);
  c.visual.layout = cmac::parseLayout(getString(vis, "layout", "config.visual.layout", "auto"), "config.visual.layout");
  Napi::Object aud = getObject(o, "audio", "config.audio");
  readArray4(aud, "planes", "config.audio.planes", c.audio.planes, 4, 4096);
  readArray4(aud, "blocks", "config.audio.blocks", c.audio.blocks, 1, 64);
  c.audio.layout = cmac::parseLayout(getString(aud, "layout", "config.audio.layout", "auto"), "config.audio.layout");
  Napi::Object lm = getObject(o, "logmel", "config.logmel");
  c.logmel.sampleRate = getInt(lm, "sampleRate", "config.logmel.sampleRate", c.logmel.sampleRate, 1, kInt);
  c.logmel.nFft = getInt(lm, "nFft", "config.logmel.nFft", c.logmel.nFft, 2, 1 << 20);
  c.logmel.winLength = getInt(lm, "winLength", "config.logmel.winLength", c.logmel.winLength, 1,
                              c.logmel.nFft);  // the window sits inside the FFT frame
  c.logmel.hopLength = getInt(lm, "hopLength", "config.logmel.hopLength", c.logmel.hopLength, 1, kInt);
  c.logmel.nMels = getInt(lm, "nMels", "config.logmel.nMels", c.logmel.nMels, 1, 1 << 16);
  c.logmel.fMin = getNumber(lm, "fMin", "config.logmel.fMin", c.logmel.fMin);
  c.logmel.fMax = getNumber(lm, "fMax", "config.logmel.fMax", c.logmel.fMax);
  Napi::Object sa = getObject(o, "specAugment", "config.specAugment");
  c.specAugment.freqMasks = getInt(sa, "freqMasks", "config.specAugment.freqMasks", c.specAugment.freqMasks, 0, kInt);
  c.specAugment.freqWidth = getInt(sa, "freqWidth", "config.specAugment.freqWidth", c.specAugment.freqWidth, 0, kInt);
  c.specAugment.timeMasks = getInt(sa, "timeMasks", "config.specAugment.timeMasks", c.specAugment.timeMasks, 0, kInt);
  c.specAugment.timeWidth = getInt(sa, "timeWidth", "config.specAugment.timeWidth", c.specAugment.timeWidth, 0, kInt);
  c.embedDim = getInt(o, "embedDim", "config.embedDim", c.embedDim, 1, 65536);
  c.pooling = getString(o, "pooling", "config.pooling", c.pooling);
  Napi::Object lo = getObject(o, "loss", "config.loss");
  std::string preset = getString(lo, "preset", "config.loss.preset", "cmac");
  c.loss = cmac::lossPreset(preset);
  c.loss.withinModal = getBool(lo, "withinModal", "config.loss.withinModal", c.loss.withinModal);
  c.loss.lossV = getBool(lo, "lossV", "config.loss.lossV", c.loss.lossV);
  c.loss.lossA = getBool(lo, "lossA", "config.loss.lossA", c.loss.lossA);
  if (!lo.Get("attentionPooling").IsUndefined())
    cmac::typeError(
        "config.loss.attentionPooling was replaced by config.pooling ('attention' | 'mean'), a setting of its own "
        "independent of the loss preset. Fix: pass pooling: 'mean' for global average pooling.");
  c.loss.targetGrad = getBool(lo, "targetGrad", "config.loss.targetGrad", c.loss.targetGrad);
  c.loss.tau = getNumber(lo, "tau", "config.loss.tau", c.loss.tau);
  c.loss.tauT = getNumber(lo, "tauT", "config.loss.tauT", c.loss.tauT);
  c.loss.lambdaV = getNumber(lo, "lambdaV", "config.loss.lambdaV", c.loss.lambdaV);
  c.loss.lambdaA = getNumber(lo, "lambdaA", "config.loss.lambdaA", c.loss.lambdaA);
  c.loss.queueSize = getInt(lo, "queueSize", "config.loss.queueSize", c.loss.queueSize, 0, 1 << 24);
  Napi::Object op = getObject(o, "optim", "config.optim");
  c.optim.name = getString(op, "name", "config.optim.name", c.optim.name);
  c.optim.momentum = getNumber(op, "momentum", "config.optim.momentum", c.optim.momentum);
  c.optim.nesterov = getBool(op, "nesterov", "config.optim.nesterov", c.optim.nesterov);
  c.optim.weightDecay = getNumber(op, "weightDecay", "config.optim.weightDecay", c.optim.weightDecay);
  c.optim.beta1 = getNumber(op, "beta1", "config.optim.beta1", c.optim.beta1);
  c.optim.beta2 = getNumber(op, "beta2", "config.optim.beta2", c.optim.beta2);
  c.optim.eps = getNumber(op, "eps", "config.optim.eps", c.optim.eps);
  c.clipGradNorm = getNumber(op, "clipGradNorm", "config.optim.clipGradNorm", c.clipGradNorm);
  c.accumulate = getInt(op, "accumulate", "config.optim.accumulate", c.accumulate, 1, kInt);
  Napi::Object di = getObject(o, "dist", "config.dist");
  c.dist.enabled = getBool(di, "enabled", "config.dist.enabled", false);
  c.dist.gatherNegatives = getBool(di, "gatherNegatives", "config.dist.gatherNegatives", false);
  c.dist.timeoutSec = static_cast<int>(getInt(di, "timeoutSec", "config.dist.timeoutSec", 300, 1, kInt));
  c.device = getString(o, "device", "config.device", c.device);
  c.amp = getString(o, "amp", "config.amp", c.amp);
  c.cudnnBenchmark = getBool(o, "cudnnBenchmark", "config.cudnnBenchmark", false);
  c.seed = static_cast<uint64_t>(getInt(o, "seed", "config.seed", 0, 0, (int64_t(1) << 53)));  // exact in a double
  return c;
}

Napi::Function ModelWrap::Define(Napi::Env env) {
  return DefineClass(env, "CmacModel",
                     {InstanceMethod<&ModelWrap::TrainStep>("trainStep"),
                      InstanceMethod<&ModelWrap::EvaluateLoss>("evaluateLoss"),
                      InstanceMethod<&ModelWrap::Embed>("embed"),
                      InstanceMethod<&ModelWrap::Maps>("maps"),
                      InstanceMethod<&ModelWrap::StateDict>("stateDict"),
                      InstanceMethod<&ModelWrap::LoadStateDict>("loadStateDict"),
                      InstanceMethod<&ModelWrap::OptimizerState>("optimizerState"),
                      InstanceMethod<&ModelWrap::LoadOptimizerState>("loadOptimizerState"),
                      InstanceMethod<&ModelWrap::Save>("save"),
                      InstanceMethod<&ModelWrap::Load>("load"),
                      InstanceMethod<&ModelWrap::To>("to"),
                      InstanceMethod<&ModelWrap::Train>("train"),
                      InstanceMethod<&ModelWrap::Eval>("eval"),
                      InstanceMethod<&ModelWrap::Dispose>("dispose"),
                      InstanceMethod<&ModelWrap::AnyRank>("anyRank"),
                      InstanceMethod<&ModelWrap::LogmelStats>("logmelStats"),
                      InstanceMethod<&ModelWrap::SetLogmelStats>("setLogmelStats"),
                      InstanceAccessor<&ModelWrap::Rank>("rank"),
                      InstanceAccessor<&ModelWrap::WorldSize>("worldSize"),
                      InstanceAccessor<&ModelWrap::IsTraining>("training"),
                      InstanceAccessor<&ModelWrap::Device>("device"),
                      InstanceAccessor<&ModelWrap::NumParameters>("numParameters"),
                      InstanceAccessor<&ModelWrap::Disposed>("disposed")});
}

// Only createModel() can construct (it passes the native model as an External).
ModelWrap::ModelWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ModelWrap>(info) {
  Napi::Env env = info.Env();
  h_ = ModelNative::Take(info);
  if (!h_)
    throw makeError(env, ErrorCode::CMAC_BAD_ARGUMENT,
                    "CmacModel cannot be constructed directly. Fix: use `await createModel(config)`.");
  info.This().As<Napi::Object>().TypeTag(&kModelTag);
  h_->before = [t = training_](cmac::CmacModel& m) { m.setTraining(t->load()); };
}

ModelWrap::~ModelWrap() {
  if (h_) h_->Dispose(Env());
}

Napi::Value ModelWrap::Create(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return guarded(env, [&]() -> Napi::Value {
    cmac::ModelConfig cfg = configFromJs(info[0]);
    // Facts read once on the model's thread, for the synchronous getters.
    struct Facts {
      std::string device;
      int64_t numParameters;
      int rank, worldSize;
    };
    auto facts = std::make_shared<Facts>();
    return ModelNative::Create(
        env, "CmacModel",
        [cfg, facts] {
          auto m = std::make_unique<cmac::CmacModel>(cfg);
          *facts = {m->device(), m->numParameters(), m->rank(), m->worldSize()};
          return m;
        },
        [facts](Napi::Env env, std::shared_ptr<ModelNative> n) -> Napi::Value {
          Napi::Object o = n->Wrap(env, AddonData::Get(env)->modelCtor);
          ModelWrap* w = ModelWrap::Unwrap(o);
          *w->device_ = facts->device;
          w->numParameters_ = facts->numParameters;
          w->rank_ = facts->rank;
          w->worldSize_ = facts->worldSize;
          return o;
        });
  });
}

std::shared_ptr<ModelNative> ModelWrap::handle(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kModelTag, "CmacModel");
  if (!h_) disposedError("CmacModel");
  return h_;
}

Napi::Value ModelWrap::Run(const Napi::CallbackInfo& info, ModelNative::Call fn) {
  return handle(info)->Run(info.Env(), std::move(fn));
}

Napi::Value ModelWrap::TrainStep(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    cmac::Batch b = batchFromJs(info[0]);
    Napi::Object o =
        info.Length() > 1 && !info[1].IsUndefined() ? requireObject(info[1], "options") : Napi::Object::New(info.Env());
    cmac::StepOptions so;
    so.lr = getNumber(o, "lr", "options.lr", so.lr);
    so.lambdaScale = getNumber(o, "lambdaScale", "options.lambdaScale", so.lambdaScale);
    return Run(info, [b, so](cmac::CmacModel& m) {
      auto r = m.trainStep(b, so);
      return [r](Napi::Env env) -> Napi::Value { return stepToJs(env, r); };
    });
  });
}

Napi::Value ModelWrap::EvaluateLoss(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    cmac::Batch b = batchFromJs(info[0]);
    double scale = 1.0;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsNumber()) cmac::typeError("lambdaScale must be a number");
      scale = info[1].As<Napi::Number>().DoubleValue();
    }
    return Run(info, [b, scale](cmac::CmacModel& m) {
      auto r = m.evaluateLoss(b, scale);
      return [r](Napi::Env env) -> Napi::Value { return stepToJs(env, r); };
    });
  });
}

Napi::Value ModelWrap::Embed(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    cmac::Batch b = batchFromJs(info[0]);
    return Run(info, [b](cmac::CmacModel& m) {
      auto e = m.embed(b);
      return [e](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        setIf(env, o, "zV", e.zV);
        setIf(env, o, "zA", e.zA);
        setIf(env, o, "featV", e.featV);
        setIf(env, o, "featA", e.featA);
        return o;
      };
    });
  });
}

Napi::Value ModelWrap::Maps(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    cmac::Batch b = batchFromJs(info[0]);
    return Run(info, [b](cmac::CmacModel& m) {
      auto mp = m.maps(b);
      return [mp](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        setIf(env, o, "alphaV", mp.alphaV);
        setIf(env, o, "betaV", mp.betaV);
        setIf(env, o, "alphaA", mp.alphaA);
        setIf(env, o, "betaA", mp.betaA);
        setIf(env, o, "alphaVLogits", mp.alphaVLogits);
        setIf(env, o, "betaVCos", mp.betaVCos);
        setIf(env, o, "alphaALogits", mp.alphaALogits);
        setIf(env, o, "betaACos", mp.betaACos);
        return o;
      };
    });
  });
}

Napi::Value ModelWrap::StateDict(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return Run(info, [](cmac::CmacModel& m) {
      cmac::NamedTensors sd;
      for (auto& [k, v] : m.stateDict()) sd.emplace_back(k, v.detach().to(torch::kCPU).clone());
      return [sd](Napi::Env env) { return namedToJs(env, sd); };
    });
  });
}

Napi::Value ModelWrap::LoadStateDict(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    cmac::NamedTensors sd = namedFromJs(info[0], "stateDict");
    bool strict = true;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      if (!info[1].IsBoolean()) cmac::typeError("strict must be a boolean");
      strict = info[1].As<Napi::Boolean>();
    }
    return Run(info, [sd, strict](cmac::CmacModel& m) {
      m.loadStateDict(sd, strict);
      return std::function<Napi::Value(Napi::Env)>();
    });
  });
}

Napi::Value ModelWrap::OptimizerState(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    return Run(info, [](cmac::CmacModel& m) {
      cmac::NamedTensors st;
      for (auto& [k, v] : m.optimizerState()) st.emplace_back(k, v.detach().to(torch::kCPU).clone());
      return [st](Napi::Env env) { return namedToJs(env, st); };
    });
  });
}

Napi::Value ModelWrap::LoadOptimizerState(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    cmac::NamedTensors st = namedFromJs(info[0], "optimizerState");
    return Run(info, [st](cmac::CmacModel& m) {
      m.loadOptimizerState(st);
      return std::function<Napi::Value(Napi::Env)>();
    });
  });
}

Napi::Value ModelWrap::Save(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    if (info.Length() < 1 || !info[0].IsString()) cmac::typeError("path must be a string");
    std::string path = info[0].As<Napi::String>();
    std::map<std::string, std::string> meta;
    if (info.Length() > 1 && !info[1].IsUndefined()) {
      Napi::Object mo = requireObject(info[1], "metadata");
      Napi::Array keys = mo.GetPropertyNames();
      for (uint32_t i = 0; i < keys.Length(); ++i) {
        std::string k = keys.Get(i).As<Napi::String>();
        if (!mo.Get(k).IsString()) cmac::typeError("metadata['" + k + "'] must be a string");
        meta[k] = mo.Get(k).As<Napi::String>();
      }
    }
    return Run(info, [path, meta](cmac::CmacModel& m) {
      m.save(path, meta);
      return std::function<Napi::Value(Napi::Env)>();
    });
  });
}

Napi::Value ModelWrap::Load(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    if (info.Length() < 1 || !info[0].IsString()) cmac::typeError("path must be a string");
    std::string path = info[0].As<Napi::String>();
    return Run(info, [path](cmac::CmacModel& m) {
      m.load(path);
      return std::function<Napi::Value(Napi::Env)>();
    });
  });
}

Napi::Value ModelWrap::To(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    if (info.Length() < 1 || !info[0].IsString()) cmac::typeError("device must be a string (cpu, cuda, cuda:N, auto)");
    std::string dev = info[0].As<Napi::String>();
    cmac::parseDevice(dev);  // fail fast with a RangeError
    return Run(info, [dev, device = device_](cmac::CmacModel& m) {
      m.to(dev);
      std::string now = m.device();
      return [now, device](Napi::Env env) -> Napi::Value {
        *device = now;
        return Napi::String::New(env, now);
      };
    });
  });
}

Napi::Value ModelWrap::AnyRank(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    if (info.Length() < 1 || !info[0].IsBoolean()) cmac::typeError("anyRank(flag): flag must be a boolean");
    bool flag = info[0].As<Napi::Boolean>();
    return Run(info, [flag](cmac::CmacModel& m) {
      bool any = m.anyRank(flag);
      return [any](Napi::Env env) -> Napi::Value { return Napi::Boolean::New(env, any); };
    });
  });
}

Napi::Value ModelWrap::LogmelStats(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    if (info.Length() < 1) cmac::typeError("logmelStats(audio): audio (float32 [N, samples]) is required");
    torch::Tensor audio = tensorFromJs(info[0], "audio");
    return Run(info, [audio](cmac::CmacModel& m) {
      auto [mean, sd] = m.logmelStats(audio);
      return [mean, sd](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        setIf(env, o, "mean", mean);
        setIf(env, o, "std", sd);
        return o;
      };
    });
  });
}

Napi::Value ModelWrap::SetLogmelStats(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    if (info.Length() < 2) cmac::typeError("setLogmelStats(mean, std): both tensors (float32 [nMels]) are required");
    torch::Tensor mean = tensorFromJs(info[0], "mean"), sd = tensorFromJs(info[1], "std");
    return Run(info, [mean, sd](cmac::CmacModel& m) {
      m.setLogmelStats(mean, sd);
      return std::function<Napi::Value(Napi::Env)>();
    });
  });
}

Napi::Value ModelWrap::Rank(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kModelTag, "CmacModel");
  return Napi::Number::New(info.Env(), rank_);
}
Napi::Value ModelWrap::WorldSize(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kModelTag, "CmacModel");
  return Napi::Number::New(info.Env(), worldSize_);
}

Napi::Value ModelWrap::Train(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    bool on = true;
    if (info.Length() > 0 && !info[0].IsUndefined()) {
      if (!info[0].IsBoolean()) cmac::typeError("train(mode) takes a boolean");
      on = info[0].As<Napi::Boolean>();
    }
    handle(info);
    *training_ = on;
    return info.This();
  });
}

Napi::Value ModelWrap::Eval(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    *training_ = false;
    return info.This();
  });
}

Napi::Value ModelWrap::IsTraining(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    handle(info);
    return Napi::Boolean::New(info.Env(), training_->load());
  });
}

Napi::Value ModelWrap::Device(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kModelTag, "CmacModel");
  return Napi::String::New(info.Env(), *device_);
}

Napi::Value ModelWrap::NumParameters(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kModelTag, "CmacModel");
  return Napi::Number::New(info.Env(), double(numParameters_));
}

Napi::Value ModelWrap::Disposed(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kModelTag, "CmacModel");
  return Napi::Boolean::New(info.Env(), !h_);
}

Napi::Value ModelWrap::Dispose(const Napi::CallbackInfo& info) {
  requireReceiver(info, &kModelTag, "CmacModel");
  if (h_) {
    // Calls already made still run; the model is freed on its thread after
    // them (now, when none is pending) and the thread ends.
    h_->Dispose(info.Env());
    h_.reset();
  }
  return info.Env().Undefined();
}

}  // namespace cmacjs
