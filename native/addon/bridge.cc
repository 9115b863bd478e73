#include "bridge.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cmath>
#include <cstring>

namespace cmacjs {

namespace {
std::atomic<int64_t> gPending{0};

struct DtypeMap {
  const char* name;
  napi_typedarray_type array;
  at::ScalarType type;
  const char* arrayName;
};
const DtypeMap kDtypes[] = {
    {"float32", napi_float32_array, at::kFloat, "Float32Array"},
    {"float64", napi_float64_array, at::kDouble, "Float64Array"},
    {"float16", napi_uint16_array, at::kHalf, "Uint16Array"},
    {"int64", napi_bigint64_array, at::kLong, "BigInt64Array"},
    {"int32", napi_int32_array, at::kInt, "Int32Array"},
    {"uint8", napi_uint8_array, at::kByte, "Uint8Array"},
};
constexpr int64_t kMaxElements = int64_t(1) << 34;
}  // namespace

const char* errorCodeName(ErrorCode c) {
  switch (c) {
#define CMAC_X(code, cls, what) \
  case ErrorCode::code:         \
    return #code;
    CMAC_ERROR_CODES(CMAC_X)
#undef CMAC_X
  }
  return "CMAC_NATIVE_ERROR";
}

Napi::Object errorCodesToJs(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
#define CMAC_X(code, cls, what) o.Set(#code, what);
  CMAC_ERROR_CODES(CMAC_X)
#undef CMAC_X
  o.Freeze();
  return o;
}

Napi::Error makeError(Napi::Env env, ErrorCode code, const std::string& msg) {
  Napi::Error e;
  switch (code) {
#define CMAC_X(c, cls, what)      \
  case ErrorCode::c:              \
    e = Napi::cls::New(env, msg); \
    break;
    CMAC_ERROR_CODES(CMAC_X)
#undef CMAC_X
  }
  e.Set("code", errorCodeName(code));
  return e;
}

namespace {
ErrorCode codeOf(cmac::Error::Kind k) {
  switch (k) {
    case cmac::Error::Kind::Type:
      return ErrorCode::CMAC_BAD_ARGUMENT;
    case cmac::Error::Kind::Range:
      return ErrorCode::CMAC_OUT_OF_RANGE;
    case cmac::Error::Kind::Shape:
      return ErrorCode::CMAC_SHAPE_MISMATCH;
    case cmac::Error::Kind::Value:
      return ErrorCode::CMAC_INVALID_VALUE;
    case cmac::Error::Kind::IO:
      return ErrorCode::CMAC_IO;
    case cmac::Error::Kind::Checkpoint:
      return ErrorCode::CMAC_CHECKPOINT_INVALID;
    case cmac::Error::Kind::Disposed:
      return ErrorCode::CMAC_DISPOSED;
  }
  return ErrorCode::CMAC_NATIVE_ERROR;
}
}  // namespace

NativeFailure captureFailure(std::exception_ptr ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const cmac::Error& e) {
    return {codeOf(e.kind()), e.what()};
  } catch (const c10::Error& e) {
    return {ErrorCode::CMAC_TORCH_ERROR, std::string("libtorch: ") + e.what_without_backtrace()};
  } catch (const std::bad_alloc&) {
    return {ErrorCode::CMAC_NATIVE_ERROR, "out of memory. Fix: use a smaller batch or model, or free memory."};
  } catch (const std::exception& e) {
    return {ErrorCode::CMAC_NATIVE_ERROR, e.what()};
  } catch (...) {
    return {ErrorCode::CMAC_NATIVE_ERROR, "unknown native error"};
  }
}

Napi::Error failureToJs(Napi::Env env, const NativeFailure& f) { return makeError(env, f.code, f.message); }

Napi::Value guarded(Napi::Env env, const std::function<Napi::Value()>& f) {
  try {
    return f();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw failureToJs(env, captureFailure(std::current_exception()));
  }
}

Napi::Object requireObject(const Napi::Value& v, const std::string& name) {
  if (!v.IsObject() || v.IsArray()) cmac::typeError(name + " must be an object");
  return v.As<Napi::Object>();
}

torch::Tensor tensorFromJs(const Napi::Value& v, const std::string& name) {
  Napi::Object o = requireObject(v, name + " (a tensor { data, shape })");
  Napi::Value data = o.Get("data");
  if (!data.IsTypedArray())
    cmac::typeError(name + ".data must be a typed array (Float32Array, Uint8Array, BigInt64Array, ...)");
  auto ta = data.As<Napi::TypedArray>();
  const DtypeMap* dt = nullptr;
  for (const auto& d : kDtypes)
    if (d.array == ta.TypedArrayType() && (d.type != at::kHalf)) dt = &d;
  Napi::Value dtv = o.Get("dtype");
  if (!dtv.IsUndefined()) {
    if (!dtv.IsString()) cmac::typeError(name + ".dtype must be a string");
    std::string want = dtv.As<Napi::String>();
    const DtypeMap* named = nullptr;
    for (const auto& d : kDtypes)
      if (want == d.name) named = &d;
    if (!named)
      cmac::typeError(name + ".dtype '" + want + "' is not supported (float32, float64, float16, int64, int32, uint8)");
    if (named->array != ta.TypedArrayType())
      cmac::typeError(name + ".dtype '" + want + "' needs a " + named->arrayName);
    dt = named;
  }
  if (!dt) cmac::typeError(name + ".data has an unsupported typed array type");
  Napi::Value sv = o.Get("shape");
  if (!sv.IsArray()) cmac::typeError(name + ".shape must be an array of integers");
  auto arr = sv.As<Napi::Array>();
  if (arr.Length() > 8) cmac::shapeError(name + ".shape has more than 8 dimensions");
  std::vector<int64_t> shape;
  int64_t numel = 1;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    Napi::Value d = arr.Get(i);
    if (!d.IsNumber()) cmac::typeError(name + ".shape[" + std::to_string(i) + "] must be a number");
    double x = d.As<Napi::Number>().DoubleValue();
    if (!std::isfinite(x) || x < 0 || x != std::floor(x))
      cmac::shapeError(name + ".shape[" + std::to_string(i) + "] must be a non-negative integer, got " +
                       std::to_string(x));
    if (x > double(kMaxElements))
      cmac::shapeError(name + ".shape[" + std::to_string(i) +
                       "] is too large: " + std::to_string(static_cast<int64_t>(x)) +
                       " is above the limit of 2^34 elements per tensor. Fix: pass a smaller batch or clip.");
    shape.push_back(static_cast<int64_t>(x));
    if (shape.back() != 0 && numel > kMaxElements / shape.back())
      cmac::shapeError(name + ".shape is too large (above 2^34 elements)");
    numel *= shape.back();
  }
  if (static_cast<int64_t>(ta.ElementLength()) != numel)
    cmac::shapeError(name + ".data has " + std::to_string(ta.ElementLength()) + " elements but shape [" +
                     [&] {
                       std::string s;
                       for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
                       return s;
                     }() +
                     "] needs " + std::to_string(numel));
  // The view's own data pointer (already offset), which works for an ArrayBuffer
  // and a SharedArrayBuffer alike; TypedArray::ArrayBuffer().Data() fails for
  // the latter (napi_get_arraybuffer_info accepts only ArrayBuffers).
  void* src = nullptr;
  if (napi_get_typedarray_info(ta.Env(), ta, nullptr, nullptr, &src, nullptr, nullptr) != napi_ok)
    cmac::typeError(
        name + ".data cannot be read as a typed array. Fix: pass a Float32Array/Uint8Array/... over an ArrayBuffer.");
  torch::Tensor t = torch::empty(shape, torch::TensorOptions().dtype(dt->type));
  if (numel > 0) {
    if (!src)
      cmac::rangeError(name +
                       ".data has no memory (a detached buffer?). Fix: pass a typed array that was not transferred.");
    std::memcpy(t.data_ptr(), src, ta.ByteLength());  // a copy: a SharedArrayBuffer may change after this call
  }
  return t;
}

void setOwn(Napi::Object& o, const std::string& key, const Napi::Value& v) {
  o.DefineProperty(Napi::PropertyDescriptor::Value(key, v, napi_default_jsproperty));
}

torch::Tensor optionalTensorFromJs(const Napi::Object& o, const char* key, const std::string& name) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() || v.IsNull()) return {};
  return tensorFromJs(v, name);
}

Napi::Object tensorToJs(Napi::Env env, const torch::Tensor& in) {
  torch::Tensor t = in.detach().to(torch::kCPU).contiguous();
  const DtypeMap* dt = nullptr;
  for (const auto& d : kDtypes)
    if (d.type == t.scalar_type()) dt = &d;
  if (!dt) {
    t = t.to(torch::kFloat);
    dt = &kDtypes[0];
  }
  const size_t bytes = t.numel() * t.element_size();
  Napi::ArrayBuffer buf = Napi::ArrayBuffer::New(env, bytes);
  if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
  Napi::Object o = Napi::Object::New(env);
  napi_value arr;
  if (napi_create_typedarray(env, dt->array, t.numel(), buf, 0, &arr) != napi_ok)
    throw Napi::Error::New(env, "cannot create a typed array for a result tensor");
  o.Set("data", Napi::Value(env, arr));
  Napi::Array shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, double(t.size(i))));
  o.Set("shape", shape);
  o.Set("dtype", dt->name);
  return o;
}

double getNumber(const Napi::Object& o, const char* key, const std::string& path, double dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) cmac::typeError(path + " must be a number");
  double x = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(x)) cmac::rangeError(path + " must be finite, got " + std::to_string(x));
  return x;
}

int64_t getInt(const Napi::Object& o, const char* key, const std::string& path, int64_t dflt, int64_t lo, int64_t hi) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsNumber()) cmac::typeError(path + " must be an integer");
  double x = v.As<Napi::Number>().DoubleValue();
  if (x != std::floor(x) || x < double(lo) || x > double(hi))
    cmac::rangeError(path + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
                     std::to_string(x));
  return static_cast<int64_t>(x);
}

bool getBool(const Napi::Object& o, const char* key, const std::string& path, bool dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsBoolean()) cmac::typeError(path + " must be a boolean");
  return v.As<Napi::Boolean>();
}

std::string getString(const Napi::Object& o, const char* key, const std::string& path, const std::string& dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsString()) cmac::typeError(path + " must be a string");
  return v.As<Napi::String>();
}

Napi::Object getObject(const Napi::Object& o, const char* key, const std::string& path) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return Napi::Object::New(o.Env());
  return requireObject(v, path);
}

PromiseWorker::PromiseWorker(Napi::Env env, Work work)
    : Napi::AsyncWorker(env, "cmac"), deferred_(Napi::Promise::Deferred::New(env)), work_(std::move(work)) {
  ++gPending;
}

Napi::Promise PromiseWorker::Queue(Napi::Env env, Work work) {
  auto* w = new PromiseWorker(env, std::move(work));
  auto p = w->Promise();
  w->Napi::AsyncWorker::Queue();
  return p;
}

void PromiseWorker::Execute() {
  try {
    done_ = work_();
  } catch (...) {
    failure_ = captureFailure(std::current_exception());
    SetError(failure_.message);
  }
  work_ = nullptr;  // release captured state on the worker thread's schedule
}

// Settling may fail while the environment shuts down (worker.terminate());
// nothing may escape from here then, or the process aborts.
void PromiseWorker::OnOK() {
  --gPending;
  Napi::Env env = Env();
  try {
    try {
      deferred_.Resolve(done_ ? done_(env) : env.Undefined());
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    } catch (...) {
      deferred_.Reject(failureToJs(env, captureFailure(std::current_exception())).Value());
    }
  } catch (...) {}
  done_ = nullptr;
}

void PromiseWorker::OnError(const Napi::Error&) {
  --gPending;
  Napi::Env env = Env();
  try {
    deferred_.Reject(failureToJs(env, failure_).Value());
  } catch (...) {}
  done_ = nullptr;
}

int64_t pendingOps() { return gPending.load(); }
std::atomic<int64_t>& pendingCounter() { return gPending; }

void requireReceiver(const Napi::CallbackInfo& info, const napi_type_tag* tag, const char* className) {
  if (!info.This().IsObject() || !info.This().As<Napi::Object>().CheckTypeTag(tag))
    throw makeError(info.Env(), ErrorCode::CMAC_BAD_ARGUMENT, std::string("receiver is not a ") + className);
}

}  // namespace cmacjs
