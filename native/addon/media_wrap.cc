#include "media_wrap.h"

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "bridge.h"

#ifdef CMAC_HAVE_LIBAV
#include "pool.h"
#endif

namespace cmacjs {

#ifndef CMAC_HAVE_LIBAV

namespace {
const char* kNoLibav =
    "cmac was built without libav (the libav -dev packages were not found by pkg-config at build time). "
    "Fix: apt install libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev pkg-config, then "
    "npm run build:native";

Napi::Value MediaInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("libav", false);
  o.Set("reason", kNoLibav);
  return o;
}
Napi::Value CreateDecoder(const Napi::CallbackInfo& info) {
  throw makeError(info.Env(), ErrorCode::CMAC_UNAVAILABLE, kNoLibav);
}
}  // namespace

void MediaWrap::Register(Napi::Env env, Napi::Object exports) {
  exports.Set("mediaInfo", Napi::Function::New<MediaInfo>(env, "mediaInfo"));
  exports.Set("createDecoder", Napi::Function::New<CreateDecoder>(env, "createDecoder"));
}

#else

namespace media = cmac::media;

namespace {

const napi_type_tag kDecoderTag = {0x6d656469615f6465ULL, 0x636f6465725f7631ULL};

// Settles one Deferred from any thread: `build` runs on the JS thread.
class Settle {
 public:
  using Build = std::function<Napi::Value(Napi::Env)>;
  Settle(Napi::Env env, Napi::Promise::Deferred d) : deferred_(std::move(d)) {
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function::New(env, [](const Napi::CallbackInfo&) {}), "cmac-media",
                                          0, 1);
  }
  // Called once, from a pool thread.
  void done(Build build) {
    auto* b = new Build(std::move(build));
    auto* d = new Napi::Promise::Deferred(deferred_);
    napi_status s = tsfn_.BlockingCall(b, [d](Napi::Env env, Napi::Function, Build* bp) {
      std::unique_ptr<Build> own(bp);
      std::unique_ptr<Napi::Promise::Deferred> def(d);
      if (env == nullptr) return;  // environment shutting down
      try {
        try {
          def->Resolve((*own)(env));
        } catch (const Napi::Error& e) {
          def->Reject(e.Value());
        } catch (...) {
          def->Reject(failureToJs(env, captureFailure(std::current_exception())).Value());
        }
      } catch (...) {}
    });
    if (s != napi_ok) {
      delete b;
      delete d;
    }
    tsfn_.Release();
  }

 private:
  Napi::Promise::Deferred deferred_;
  Napi::ThreadSafeFunction tsfn_;
};

media::Source sourceOf(const Napi::Value& v, const std::string& name) {
  media::Source s;
  if (v.IsString()) {
    s.path = v.As<Napi::String>();
    if (s.path.empty()) cmac::typeError(name + " must be a non-empty path or a Uint8Array");
    if (s.path.find('\0') != std::string::npos) cmac::typeError(name + " contains a NUL character");
    return s;
  }
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array) {
    auto a = v.As<Napi::Uint8Array>();
    void* p = nullptr;
    size_t n = 0;
    napi_typedarray_type t;
    if (napi_get_typedarray_info(v.Env(), a, &t, &n, &p, nullptr, nullptr) != napi_ok)
      cmac::typeError(name + " cannot be read");
    auto bytes = std::make_shared<std::vector<uint8_t> >(n);
    if (n) {
      if (!p) cmac::rangeError(name + " has no memory (a detached buffer?)");
      std::memcpy(bytes->data(), p, n);
    }
    s.data = bytes;
    s.path = "<memory>";
    return s;
  }
  cmac::typeError(name + " must be a file path (string) or the file's bytes (Uint8Array/Buffer)");
}

double positive(const Napi::Object& o, const char* key, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) cmac::typeError(path + " must be a number");
  double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x) || x <= 0) cmac::rangeError(path + " must be a finite number > 0, got " + std::to_string(x));
  return x;
}

media::ClipRequest requestOf(const Napi::Object& j, const std::string& p) {
  media::ClipRequest r;
  r.start = getNumber(j, "start", p + ".start", 0);
  if (r.start < 0) cmac::rangeError(p + ".start must be >= 0, got " + std::to_string(r.start));
  r.frames = static_cast<int>(getInt(j, "frames", p + ".frames", 0, 1, 100000));
  if (j.Get("frames").IsUndefined()) cmac::typeError(p + ".frames is required (a positive integer)");
  r.fps = positive(j, "fps", p + ".fps");
  r.width = static_cast<int>(getInt(j, "width", p + ".width", 0, 1, media::kMaxSide));
  r.height = static_cast<int>(getInt(j, "height", p + ".height", 0, 1, media::kMaxSide));
  if (!r.width || !r.height) cmac::typeError(p + ".width and .height are required (integers in [1, 8192])");
  Napi::Value c = j.Get("crop");
  if (!c.IsUndefined() && !c.IsNull()) {
    Napi::Object co = requireObject(c, p + ".crop");
    r.hasCrop = true;
    r.cropX = getNumber(co, "x", p + ".crop.x", 0);
    r.cropY = getNumber(co, "y", p + ".crop.y", 0);
    r.cropW = positive(co, "w", p + ".crop.w");
    r.cropH = positive(co, "h", p + ".crop.h");
  }
  r.flip = getBool(j, "flip", p + ".flip", false);
  Napi::Value jt = j.Get("jitter");
  if (!jt.IsUndefined() && !jt.IsNull()) {
    Napi::Object jo = requireObject(jt, p + ".jitter");
    r.hasJitter = true;
    r.brightness = getNumber(jo, "brightness", p + ".jitter.brightness", 0);
    r.contrast = getNumber(jo, "contrast", p + ".jitter.contrast", 1);
    r.saturation = getNumber(jo, "saturation", p + ".jitter.saturation", 1);
  }
  Napi::Value a = j.Get("audio");
  if (!a.IsUndefined() && !a.IsNull()) {
    Napi::Object ao = requireObject(a, p + ".audio");
    r.audio = true;
    r.audioStart = getNumber(ao, "start", p + ".audio.start", 0);
    r.samples = static_cast<int>(getInt(ao, "samples", p + ".audio.samples", 0, 1, 1 << 26));
    if (ao.Get("samples").IsUndefined()) cmac::typeError(p + ".audio.samples is required (a positive integer)");
    r.sampleRate = static_cast<int>(getInt(ao, "sampleRate", p + ".audio.sampleRate", 16000, 1000, 384000));
  }
  r.audioStream = static_cast<int>(getInt(j, "audioStream", p + ".audioStream", -1, -1, 1023));
  r.timeoutSec = getNumber(j, "timeoutMs", p + ".timeoutMs", 60000) / 1000.0;
  if (!(r.timeoutSec > 0)) cmac::rangeError(p + ".timeoutMs must be > 0");
  r.upTo = getBool(j, "upTo", p + ".upTo", false);
  return r;
}

Napi::Object probeToJs(Napi::Env env, const media::ProbeResult& r) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("ok", r.ok);
  o.Set("size", double(r.size));
  if (!r.ok) {
    o.Set("reason", r.reason);
    o.Set("message", r.message);
    return o;
  }
  o.Set("format", r.format);
  o.Set("duration", r.duration);
  o.Set("audioStreams", r.audioStreams);
  Napi::Object v = Napi::Object::New(env);
  v.Set("codec", r.video.codec);
  v.Set("width", r.video.width);
  v.Set("height", r.video.height);
  v.Set("fps", r.video.fps);
  v.Set("rotation", r.video.rotation);
  if (r.video.frames >= 0) v.Set("frames", double(r.video.frames));
  if (r.video.duration >= 0) v.Set("duration", r.video.duration);
  o.Set("video", v);
  if (r.hasAudio) {
    Napi::Object a = Napi::Object::New(env);
    a.Set("codec", r.audio.codec);
    a.Set("sampleRate", r.audio.sampleRate);
    a.Set("channels", r.audio.channels);
    if (r.audio.duration >= 0) a.Set("duration", r.audio.duration);
    a.Set("stream", r.audio.stream);
    o.Set("audio", a);
  }
  return o;
}

class DecoderWrap : public Napi::ObjectWrap<DecoderWrap> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "MediaDecoder",
        {InstanceMethod<&DecoderWrap::Probe>("probe"), InstanceMethod<&DecoderWrap::DecodeBatch>("decodeBatch"),
         InstanceMethod<&DecoderWrap::Dispose>("dispose"), InstanceAccessor<&DecoderWrap::Threads>("threads"),
         InstanceAccessor<&DecoderWrap::Disposed>("disposed")});
  }
  explicit DecoderWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DecoderWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() != 1 || !info[0].IsExternal())
      throw makeError(env, ErrorCode::CMAC_BAD_ARGUMENT,
                      "MediaDecoder cannot be constructed directly. Fix: use createDecoder({ threads }).");
    int n = *info[0].As<Napi::External<int> >().Data();
    pool_ = std::make_shared<media::DecodePool>(n);
    threads_ = n;
    info.This().As<Napi::Object>().TypeTag(&kDecoderTag);
  }

 private:
  std::shared_ptr<media::DecodePool> live(const Napi::CallbackInfo& info, const char* what) {
    requireReceiver(info, &kDecoderTag, "MediaDecoder");
    if (!pool_)
      throw cmac::Error(cmac::Error::Kind::Disposed, std::string("MediaDecoder.") + what +
                                                         ": the decoder was disposed. Fix: createDecoder() again.");
    return pool_;
  }

  // probe(fileOrBytes, { audioStream?, timeoutMs? }) -> Promise<{ ok, reason?, message?, format, duration, video,
  // audio?, ... }>
  Napi::Value Probe(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto pool = live(info, "probe");
      media::Source src = sourceOf(info.Length() > 0 ? info[0] : info.Env().Undefined(), "probe(file)");
      Napi::Object opts = info.Length() > 1 && !info[1].IsUndefined() ? requireObject(info[1], "probe options")
                                                                      : Napi::Object::New(info.Env());
      const int audioStream = static_cast<int>(getInt(opts, "audioStream", "options.audioStream", -1, -1, 1023));
      const double timeout = getNumber(opts, "timeoutMs", "options.timeoutMs", 30000) / 1000.0;
      if (!(timeout > 0)) cmac::rangeError("options.timeoutMs must be > 0");
      auto d = Napi::Promise::Deferred::New(info.Env());
      auto settle = std::make_shared<Settle>(info.Env(), d);
      pool->submitProbe(src, audioStream, timeout, [settle](media::ProbeResult r) {
        auto rp = std::make_shared<media::ProbeResult>(std::move(r));
        settle->done([rp](Napi::Env env) -> Napi::Value { return probeToJs(env, *rp); });
      });
      return d.Promise();
    });
  }

  // decodeBatch(jobs[]) -> Promise<{ video: Uint8Array, audio: Float32Array, clips: [...] }>
  Napi::Value DecodeBatch(const Napi::CallbackInfo& info) {
    return guarded(info.Env(), [&]() -> Napi::Value {
      auto pool = live(info, "decodeBatch");
      if (info.Length() < 1 || !info[0].IsArray())
        cmac::typeError("decodeBatch(jobs): jobs must be an array of clip requests");
      Napi::Array arr = info[0].As<Napi::Array>();
      if (arr.Length() > 65536)
        cmac::rangeError("decodeBatch(jobs): at most 65536 clips per batch, got " + std::to_string(arr.Length()));
      std::vector<media::BatchClip> clips;
      clips.reserve(arr.Length());
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        const std::string p = "jobs[" + std::to_string(i) + "]";
        Napi::Object j = requireObject(arr.Get(i), p);
        media::BatchClip c;
        c.src = sourceOf(j.Get("file"), p + ".file");
        c.req = requestOf(j, p);
        clips.push_back(std::move(c));
      }
      auto d = Napi::Promise::Deferred::New(info.Env());
      auto settle = std::make_shared<Settle>(info.Env(), d);
      try {
        pool->submitBatch(std::move(clips), [settle](std::shared_ptr<media::BatchResult> r) {
          settle->done([r](Napi::Env env) -> Napi::Value { return batchToJs(env, *r); });
        });
      } catch (const std::length_error& e) {
        settle->done([msg = std::string(e.what())](Napi::Env env) -> Napi::Value {
          throw makeError(env, ErrorCode::CMAC_OUT_OF_RANGE, msg);
        });
      }
      return d.Promise();
    });
  }

  static Napi::Value batchToJs(Napi::Env env, const media::BatchResult& r) {
    Napi::Object o = Napi::Object::New(env);
    auto vb = Napi::ArrayBuffer::New(env, r.video.size());
    if (!r.video.empty()) std::memcpy(vb.Data(), r.video.data(), r.video.size());
    o.Set("video", Napi::Uint8Array::New(env, r.video.size(), vb, 0));
    auto ab = Napi::ArrayBuffer::New(env, r.audio.size() * sizeof(float));
    if (!r.audio.empty()) std::memcpy(ab.Data(), r.audio.data(), r.audio.size() * sizeof(float));
    o.Set("audio", Napi::Float32Array::New(env, r.audio.size(), ab, 0));
    Napi::Array clips = Napi::Array::New(env, r.clips.size());
    for (size_t i = 0; i < r.clips.size(); ++i) {
      const auto& c = r.clips[i];
      Napi::Object m = Napi::Object::New(env);
      m.Set("ok", c.ok);
      if (!c.ok) {
        m.Set("reason", c.reason);
        m.Set("message", c.message);
      }
      m.Set("videoOffset", double(r.videoOffset[i]));
      m.Set("audioOffset", double(r.audioOffset[i]));
      m.Set("padFront", c.padFront);
      m.Set("padBack", c.padBack);
      m.Set("hadAudio", c.hadAudio);
      m.Set("frames", c.frames);
      clips.Set(static_cast<uint32_t>(i), m);
    }
    o.Set("clips", clips);
    return o;
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    requireReceiver(info, &kDecoderTag, "MediaDecoder");
    pool_.reset();  // queued work finishes on the pool's threads; their promises still settle
    return info.Env().Undefined();
  }
  Napi::Value Threads(const Napi::CallbackInfo& info) {
    requireReceiver(info, &kDecoderTag, "MediaDecoder");
    return Napi::Number::New(info.Env(), threads_);
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) {
    requireReceiver(info, &kDecoderTag, "MediaDecoder");
    return Napi::Boolean::New(info.Env(), !pool_);
  }

  std::shared_ptr<media::DecodePool> pool_;
  int threads_ = 0;
};

Napi::Value MediaInfo(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("libav", true);
  o.Set("versions", media::versions());
  return o;
}

Napi::Value CreateDecoder(const Napi::CallbackInfo& info) {
  return guarded(info.Env(), [&]() -> Napi::Value {
    Napi::Object opts = info.Length() > 0 && !info[0].IsUndefined() ? requireObject(info[0], "createDecoder(options)")
                                                                    : Napi::Object::New(info.Env());
    int n = static_cast<int>(getInt(opts, "threads", "options.threads", 2, 1, 256));
    auto* ctor = static_cast<Napi::FunctionReference*>(info.Data());
    return ctor->New({Napi::External<int>::New(info.Env(), &n)});
  });
}

}  // namespace

void MediaWrap::Register(Napi::Env env, Napi::Object exports) {
  auto* ctor = new Napi::FunctionReference(Napi::Persistent(DecoderWrap::Define(env)));
  env.AddCleanupHook([ctor] { delete ctor; });
  exports.Set("mediaInfo", Napi::Function::New<MediaInfo>(env, "mediaInfo"));
  exports.Set("createDecoder", Napi::Function::New<CreateDecoder>(env, "createDecoder", ctor));
}

#endif

}  // namespace cmacjs
