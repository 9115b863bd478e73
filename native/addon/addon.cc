// Module entry: info(), thread control, memory(), safetensors I/O and the
// CmacModel class. Context-aware (NODE_API_MODULE), so it loads in
// worker_threads and Electron renderers.
#include <napi.h>

#include "addon_data.h"
#include "bridge.h"
#include "classifier_wrap.h"
#include "cmac_model.h"
#include "cpu_cache.h"
#include "info.h"
#include "linear_probe.h"
#include "media_wrap.h"
#include "model_wrap.h"
#include "runner.h"
#include "safetensors.h"

#ifndef CMAC_VERSION
#define CMAC_VERSION "0.0.0"
#endif

namespace cmacjs {
namespace {

Napi::Value Info(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Env env = info.Env();
    cmac::TorchInfo t = cmac::torchInfo();
    Napi::Object o = Napi::Object::New(env);
    o.Set("addonVersion", CMAC_VERSION);
    o.Set("torchVersion", t.torchVersion);
    o.Set("torchSource", t.torchSource);
    o.Set("cudaCompiled", t.cudaCompiled);
    o.Set("cudaAvailable", t.cudaAvailable);
    o.Set("cudaDeviceCount", t.cudaDeviceCount);
    Napi::Array names = Napi::Array::New(env, t.cudaDeviceNames.size());
    for (size_t i = 0; i < t.cudaDeviceNames.size(); ++i) names.Set(static_cast<uint32_t>(i), t.cudaDeviceNames[i]);
    o.Set("cudaDevices", names);
    o.Set("numThreads", t.numThreads);
    o.Set("numInteropThreads", t.numInteropThreads);
    o.Set("cxx11Abi", t.cxx11Abi);
    o.Set("parallelInfo", t.parallelInfo);
    o.Set("napiVersion", NAPI_VERSION);
    return o;
  });
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) cmac::typeError("setNumThreads(n): n must be a number");
    double n = info[0].As<Napi::Number>().DoubleValue();
    if (n != static_cast<int>(n)) cmac::rangeError("setNumThreads(n): n must be an integer, got " + std::to_string(n));
    cmac::setNumThreads(static_cast<int>(n));
    return info.Env().Undefined();
  });
}

Napi::Value GetNumThreads(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), cmac::numThreads()); }

Napi::Value Memory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto c = cmac::liveCounts();
  Napi::Object o = Napi::Object::New(env);
  o.Set("models", double(c.models));
  o.Set("bytes", double(c.bytes));
  o.Set("pendingOps", double(pendingOps()));
  cmac::CpuCacheStats s = cmac::cpuCacheStats();
  Napi::Object cache = Napi::Object::New(env);
  cache.Set("installed", s.installed);
  cache.Set("limitBytes", double(s.limitBytes));
  cache.Set("cachedBytes", double(s.cachedBytes));
  cache.Set("inUseBytes", double(s.inUseBytes));
  cache.Set("peakBytes", double(s.peakBytes));
  cache.Set("hits", double(s.hits));
  cache.Set("misses", double(s.misses));
  cache.Set("released", double(s.released));
  o.Set("cpuCache", cache);
  return o;
}

Napi::Value SetCpuCacheLimit(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber())
      cmac::typeError("setCpuCacheLimit(bytes): bytes must be a number (0 keeps no free block)");
    double n = info[0].As<Napi::Number>().DoubleValue();
    if (!(n >= 0) || n != static_cast<double>(static_cast<uint64_t>(n)))
      cmac::rangeError("setCpuCacheLimit(bytes): bytes must be an integer >= 0, got " + std::to_string(n));
    cmac::setCpuCacheLimit(static_cast<std::size_t>(n));
    return info.Env().Undefined();
  });
}

Napi::Value ReleaseCpuCache(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(cmac::releaseCpuCache()));
}

Napi::Value ReadSafetensors(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) cmac::typeError("path must be a string");
    std::string path = info[0].As<Napi::String>();
    return PromiseWorker::Queue(info.Env(), [path]() -> PromiseWorker::Done {
      auto f = std::make_shared<cmac::Safetensors>(cmac::readSafetensors(path));
      return [f](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env), t = Napi::Object::New(env), m = Napi::Object::New(env);
        for (const auto& [k, v] : f->tensors) setOwn(t, k, tensorToJs(env, v));
        for (const auto& [k, v] : f->metadata) setOwn(m, k, Napi::String::New(env, v));
        o.Set("tensors", t);
        o.Set("metadata", m);
        return o;
      };
    });
  });
}

Napi::Value WriteSafetensors(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) cmac::typeError("path must be a string");
    std::string path = info[0].As<Napi::String>();
    Napi::Object to = requireObject(info.Length() > 1 ? info[1] : info.Env().Undefined(), "tensors");
    cmac::NamedTensors tensors;
    Napi::Array keys = to.GetPropertyNames();
    for (uint32_t i = 0; i < keys.Length(); ++i) {
      std::string k = keys.Get(i).As<Napi::String>();
      tensors.emplace_back(k, tensorFromJs(to.Get(k), "tensors['" + k + "']"));
    }
    std::map<std::string, std::string> meta;
    if (info.Length() > 2 && !info[2].IsUndefined()) {
      Napi::Object mo = requireObject(info[2], "metadata");
      Napi::Array mk = mo.GetPropertyNames();
      for (uint32_t i = 0; i < mk.Length(); ++i) {
        std::string k = mk.Get(i).As<Napi::String>();
        if (!mo.Get(k).IsString()) cmac::typeError("metadata['" + k + "'] must be a string");
        meta[k] = mo.Get(k).As<Napi::String>();
      }
    }
    return PromiseWorker::Queue(info.Env(), [path, tensors, meta]() -> PromiseWorker::Done {
      cmac::writeSafetensors(path, tensors, meta);
      return nullptr;
    });
  });
}

// fitLogisticRegression(features [N,C], labels [N], numClasses, l2, maxIter) -> Promise<{ weight, bias, loss,
// iterations }>
Napi::Value FitLogisticRegression(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    torch::Tensor x = tensorFromJs(info[0], "features");
    torch::Tensor y = tensorFromJs(info[1], "labels");
    auto num = [&](size_t i, const char* name) {
      if (info.Length() <= i || !info[i].IsNumber()) cmac::typeError(std::string(name) + " must be a number");
      return info[i].As<Napi::Number>().DoubleValue();
    };
    const double k = num(2, "numClasses"), l2 = num(3, "l2");
    const double iters = info.Length() > 4 && !info[4].IsUndefined() ? num(4, "maxIter") : 500;
    if (k != static_cast<int64_t>(k) || iters != static_cast<int64_t>(iters))
      cmac::rangeError("numClasses and maxIter must be integers");
    return PromiseWorker::Queue(info.Env(), [x, y, k, l2, iters]() -> PromiseWorker::Done {
      auto r = std::make_shared<cmac::LogRegResult>(
          cmac::fitLogisticRegression(x, y, static_cast<int64_t>(k), l2, static_cast<int64_t>(iters)));
      return [r](Napi::Env env) -> Napi::Value {
        Napi::Object o = Napi::Object::New(env);
        o.Set("weight", tensorToJs(env, r->weight));
        o.Set("bias", tensorToJs(env, r->bias));
        o.Set("loss", r->loss);
        o.Set("iterations", double(r->iterations));
        return o;
      };
    });
  });
}

// process.exit() (a CLI's signal handler, say) runs exit() without tearing the
// environment down: a model's thread inside a libtorch call would race the
// static destructors of libtorch and oneDNN (some registered lazily, after any
// atexit() of ours). The 'exit' event comes first: end this environment's
// runners after their current call and wait for them.
static Napi::Value StopRunnersOnExit(const Napi::CallbackInfo& info) {
  Runner::AbortAll(info.Env());
  return info.Env().Undefined();
}

static void stopRunnersOnProcessExit(Napi::Env env) {
  Napi::Value proc = env.Global().Get("process");
  if (!proc.IsObject()) return;
  Napi::Value once = proc.As<Napi::Object>().Get("once");
  if (!once.IsFunction()) return;
  once.As<Napi::Function>().Call(
      proc, {Napi::String::New(env, "exit"), Napi::Function::New(env, StopRunnersOnExit, "cmacStopRunners")});
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  stopRunnersOnProcessExit(env);
  cmac::installCpuCache();
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted by Node when this environment ends
  Napi::Function ctor = ModelWrap::Define(env);
  data->modelCtor = Napi::Persistent(ctor);
  exports.Set("info", Napi::Function::New<Info>(env, "info"));
  exports.Set("setNumThreads", Napi::Function::New<SetNumThreads>(env, "setNumThreads"));
  exports.Set("getNumThreads", Napi::Function::New<GetNumThreads>(env, "getNumThreads"));
  exports.Set("memory", Napi::Function::New<Memory>(env, "memory"));
  exports.Set("setCpuCacheLimit", Napi::Function::New<SetCpuCacheLimit>(env, "setCpuCacheLimit"));
  exports.Set("releaseCpuCache", Napi::Function::New<ReleaseCpuCache>(env, "releaseCpuCache"));
  exports.Set("errorCodes", errorCodesToJs(env));
  exports.Set("readSafetensors", Napi::Function::New<ReadSafetensors>(env, "readSafetensors"));
  exports.Set("writeSafetensors", Napi::Function::New<WriteSafetensors>(env, "writeSafetensors"));
  exports.Set("fitLogisticRegression", Napi::Function::New<FitLogisticRegression>(env, "fitLogisticRegression"));
  exports.Set("createModel", Napi::Function::New<ModelWrap::Create>(env, "createModel"));
  exports.Set("CmacModel", ctor);
  ClassifierWrap::Register(env, exports);  // createClassifier, VideoClassifier (finetuning)
  MediaWrap::Register(env, exports);       // createDecoder, mediaInfo (libav decoding, native/core/media)
  return exports;
}

}  // namespace
}  // namespace cmacjs

static Napi::Object InitCmac(Napi::Env env, Napi::Object exports) { return cmacjs::Init(env, exports); }

NODE_API_MODULE(cmac, InitCmac)
