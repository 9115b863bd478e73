// safetensors reader and writer (https://github.com/huggingface/safetensors
// format; rules in docs/references.md). Files are untrusted: every rule is
// checked and a violation is a cmac::Error, never a crash or an out-of-bounds
// read. No pickle anywhere.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace cmac {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

struct Safetensors {
  NamedTensors tensors;  // in file (offset) order
  std::map<std::string, std::string> metadata;
};

// Largest header the reader accepts (the format's own limit).
constexpr uint64_t kMaxSafetensorsHeader = 100ull * 1000 * 1000;
// Deepest JSON nesting the header may have (a valid one has 3 levels).
constexpr int kMaxHeaderDepth = 64;

// Parses an in-memory file. `what` names the source in error messages.
Safetensors parseSafetensors(const uint8_t* data, size_t size, const std::string& what = "buffer");
// Reads a regular file only: a folder, FIFO, socket or device is refused
// (naming the path) without blocking.
Safetensors readSafetensors(const std::string& path);

// Serialises CPU copies of the tensors (any device, made contiguous).
std::string serializeSafetensors(const NamedTensors& tensors, const std::map<std::string, std::string>& metadata = {});
// Writes atomically: temp file in the same folder, fsync, rename, fsync dir.
void writeSafetensors(const std::string& path, const NamedTensors& tensors,
                      const std::map<std::string, std::string>& metadata = {});
// The same atomic write for any bytes (JSON sidecars use it too).
void writeFileAtomic(const std::string& path, const std::string& bytes);

}  // namespace cmac
