// Fuzz harness for native/core/media: probe + one clip decode over bytes in
// memory (the custom AVIOContext path tar members take).
//
// Built ONLY by scripts/fuzz-media.sh (not by the main CMakeLists.txt):
//   - with libFuzzer:  clang++ -fsanitize=address,fuzzer ...   (LLVMFuzzerTestOneInput)
//   - without it:      -fsanitize=address -DCMAC_FUZZ_STANDALONE: a seeded-mutation main()
// Seeds: tiny mp4/mkv/webm/avi files the script makes with the ffmpeg CLI.
//
// The contract checked on every input:
//   1. probe() and decodeClip() return a value; no exception escapes, no
//      out-of-bounds access or leak in cmac's code (AddressSanitizer, LeakSanitizer);
//   2. a failure's reason is one of lib/data/errors.ts's skip reasons;
//   3. a success fills the exact window: padFront + padBack <= samples.
// A violation calls abort(), which libFuzzer and the fallback report as a crash.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <iterator>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "media.h"

namespace {

uint64_t gCases = 0, gOk = 0, gRejected = 0;

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "\n*** cmac fuzz finding: %s: %s\n", what, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

const std::set<std::string> kReasons = {"missing_file",      "empty_file", "probe_failed", "truncated",
                                        "unsupported_codec", "no_video",   "no_audio",     "too_short",
                                        "decode_failed",     "timeout"};

void runOne(const uint8_t* data, size_t size) {
  ++gCases;
  auto bytes = std::make_shared<std::vector<uint8_t>>(data, data + size);
  cmac::media::Source src{"fuzz", bytes};
  try {
    cmac::media::ProbeResult p = cmac::media::probe(src, -1, 2.0);
    if (!p.ok) {
      if (!kReasons.count(p.reason)) finding("probe: unknown reason", p.reason + ": " + p.message);
      ++gRejected;
      return;
    }
    cmac::media::ClipRequest r;
    r.start = p.duration > 0.2 ? 0.1 : 0;
    r.frames = 2;
    r.fps = 10;
    r.width = 16;
    r.height = 12;
    r.hasJitter = true;
    r.brightness = 0.1;
    r.flip = true;
    r.audio = true;
    r.audioStart = -0.01;
    r.samples = 1600;
    r.timeoutSec = 2.0;
    std::vector<uint8_t> v(size_t(r.frames) * r.width * r.height * 3);
    std::vector<float> a(r.samples);
    cmac::media::ClipResult c = cmac::media::decodeClip(src, r, v.data(), a.data());
    if (!c.ok) {
      if (!kReasons.count(c.reason)) finding("decode: unknown reason", c.reason + ": " + c.message);
      ++gRejected;
      return;
    }
    if (c.padFront < 0 || c.padBack < 0 || c.padFront + c.padBack > r.samples)
      finding("decode: padding outside the window", std::to_string(c.padFront) + " + " + std::to_string(c.padBack));
    ++gOk;
  } catch (const std::exception& e) {
    finding("an exception escaped", e.what());
  } catch (...) {
    finding("an unknown exception escaped", "");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  runOne(data, size);
  if ((gCases & 1023) == 0)
    std::fprintf(stderr, "cmac-fuzz: cases %llu, decoded %llu, rejected with a reason %llu\n",
                 (unsigned long long)gCases, (unsigned long long)gOk, (unsigned long long)gRejected);
  return 0;
}

#ifdef CMAC_FUZZ_STANDALONE
// Seeded mutation: byte flips, truncation, duplication of a chunk, random bytes.
int main(int argc, char** argv) {
  std::string dir;
  uint64_t runs = 10000;
  double secs = 30;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("-runs=", 0) == 0)
      runs = std::strtoull(a.c_str() + 6, nullptr, 10);
    else if (a.rfind("-max_total_time=", 0) == 0)
      secs = std::atof(a.c_str() + 16);
    else
      dir = a;
  }
  std::vector<std::vector<uint8_t>> seeds;
  if (DIR* d = opendir(dir.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream f(dir + "/" + e->d_name, std::ios::binary);
      seeds.emplace_back((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    }
    closedir(d);
  }
  if (seeds.empty()) {
    std::fprintf(stderr, "no seeds in %s\n", dir.c_str());
    return 2;
  }
  std::mt19937_64 rng(12345);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t n = 0; n < runs; ++n) {
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > secs) break;
    std::vector<uint8_t> x = seeds[n % seeds.size()];
    if (n >= seeds.size() && !x.empty()) {
      const int edits = 1 + int(rng() % 8);
      for (int k = 0; k < edits; ++k) {
        switch (rng() % 4) {
          case 0:
            x[rng() % x.size()] ^= uint8_t(1u << (rng() % 8));
            break;
          case 1:
            x.resize(rng() % (x.size() + 1));
            break;
          case 2:
            x[rng() % x.size()] = uint8_t(rng());
            break;
          default: {
            size_t at = rng() % x.size(), len = std::min<size_t>(x.size() - at, 1 + rng() % 64);
            std::vector<uint8_t> chunk(x.begin() + at, x.begin() + at + len);
            x.insert(x.begin() + rng() % x.size(), chunk.begin(), chunk.end());
          }
        }
        if (x.empty()) break;
      }
    }
    runOne(x.data(), x.size());
  }
  std::fprintf(stderr, "cmac-fuzz: cases %llu, decoded %llu, rejected with a reason %llu\n", (unsigned long long)gCases,
               (unsigned long long)gOk, (unsigned long long)gRejected);
  return 0;
}
#endif
