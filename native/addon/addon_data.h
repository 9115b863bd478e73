// Per-environment state (main thread, each worker_thread, each Electron
// context gets its own): no static JS handles anywhere in the addon.
#pragma once
#include <napi.h>

namespace cmacjs {

struct AddonData {
  Napi::FunctionReference modelCtor;
  Napi::FunctionReference classifierCtor;  // classifier_wrap.cc
  static AddonData* Get(Napi::Env env) { return env.GetInstanceData<AddonData>(); }
};

}  // namespace cmacjs
