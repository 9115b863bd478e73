// native/core/media (libav decoding in a pool of native threads) as JS:
// exports.createDecoder({ threads }) -> MediaDecoder { probe, decodeBatch,
// dispose, threads, disposed } and exports.mediaInfo() -> { libav, versions?,
// reason? }. Promises settle from the pool's threads through a
// ThreadSafeFunction (never libuv's pool). Built without libav, createDecoder
// throws and mediaInfo says why. Registered by addon.cc through Register().
#pragma once
#include <napi.h>

namespace cmacjs {

struct MediaWrap {
  static void Register(Napi::Env env, Napi::Object exports);
};

}  // namespace cmacjs
