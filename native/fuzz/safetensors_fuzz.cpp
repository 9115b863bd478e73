// Fuzz harness for cmac::parseSafetensors (native/core/safetensors.cpp).
//
// Built ONLY by scripts/fuzz-safetensors.sh (not by the main CMakeLists.txt):
//   - with libFuzzer:  clang++ -fsanitize=address,fuzzer ...   (LLVMFuzzerTestOneInput)
//   - without it:      clang++/g++ -fsanitize=address -DCMAC_FUZZ_STANDALONE ...
//     a seeded-mutation main() that runs N cases from the same seeds.
//
// The contract checked on every input (docs/references.md, safetensors.h):
//   1. the parser returns or throws cmac::Error; nothing else escapes
//      (a c10::Error or std::bad_alloc would reach JS as an unclear message),
//      and it never reads out of bounds (AddressSanitizer);
//   2. whatever parses re-serialises, and the re-serialised bytes parse to the
//      same names, dtypes, shapes, bytes and metadata (round trip);
//   3. every accepted file obeys the format's rules: file length = 8 + N + last
//      end, header <= 100 MB.
// A violation calls abort(), which libFuzzer and the fallback report as a crash.
//
// Extra modes (both builds): `--write-seeds DIR` writes valid seed files made
// with cmac::serializeSafetensors plus hand-made edge cases.
#include <ATen/Parallel.h>
#include <torch/types.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "errors.h"
#include "safetensors.h"

namespace {

struct Counters {
  uint64_t cases = 0, accepted = 0, rejected = 0;
};
Counters gCount;

[[noreturn]] void finding(const char* what, const std::string& detail) {
  std::fprintf(stderr, "\n*** cmac fuzz finding: %s: %s\n", what, detail.c_str());
  std::fflush(stderr);
  std::abort();
}

void checkAccepted(const cmac::Safetensors& f, const uint8_t* data, size_t size) {
  // Rule 3: the accepted bytes really are a well-formed file.
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > cmac::kMaxSafetensorsHeader) finding("accepted an oversized header", std::to_string(n));
  uint64_t covered = 0;
  for (const auto& [k, t] : f.tensors) covered += static_cast<uint64_t>(t.numel()) * t.element_size();
  if (8 + n + covered != size)
    finding(
        "accepted a file whose tensors do not tile the buffer",
        "size " + std::to_string(size) + ", header " + std::to_string(n) + ", tensor bytes " + std::to_string(covered));
  // Rule 2: round trip.
  std::string again = cmac::serializeSafetensors(f.tensors, f.metadata);
  cmac::Safetensors g;
  try {
    g = cmac::parseSafetensors(reinterpret_cast<const uint8_t*>(again.data()), again.size(), "round-trip");
  } catch (const std::exception& e) {
    finding("re-serialised file does not parse", e.what());
  }
  if (g.metadata != f.metadata) finding("round trip changed the metadata", "");
  std::map<std::string, at::Tensor> a(f.tensors.begin(), f.tensors.end()), b(g.tensors.begin(), g.tensors.end());
  if (a.size() != f.tensors.size()) finding("accepted duplicate tensor names", "");
  if (a.size() != b.size()) finding("round trip changed the tensor count", "");
  for (const auto& [k, t] : a) {
    auto it = b.find(k);
    if (it == b.end()) finding("round trip lost a tensor", k);
    const at::Tensor& u = it->second;
    if (u.scalar_type() != t.scalar_type() || !u.sizes().equals(t.sizes()))
      finding("round trip changed dtype/shape", k);
    const size_t bytes = static_cast<size_t>(t.numel()) * t.element_size();
    if (bytes && std::memcmp(t.data_ptr(), u.data_ptr(), bytes) != 0) finding("round trip changed the bytes", k);
  }
}

// Returns 1 when the input was accepted, 0 when rejected with a cmac::Error.
int runOne(const uint8_t* data, size_t size) {
  ++gCount.cases;
  cmac::Safetensors f;
  try {
    f = cmac::parseSafetensors(data, size, "fuzz");
  } catch (const cmac::Error& e) {
    ++gCount.rejected;
    if (std::strstr(e.what(), "safetensors") == nullptr) finding("a rejection that does not say safetensors", e.what());
    return 0;
  } catch (const c10::Error& e) {
    finding("c10::Error escaped (unclear message for users)", e.what_without_backtrace());
  } catch (const std::bad_alloc&) {
    finding("std::bad_alloc escaped (allocation sized from untrusted input)", "");
  } catch (const std::exception& e) {
    finding("std::exception escaped", e.what());
  } catch (...) {
    finding("unknown exception escaped", "");
  }
  ++gCount.accepted;
  checkAccepted(f, data, size);
  return 1;
}

// ---- seeds: valid files made by the writer, plus edge cases by hand
std::string rawFile(const std::string& header, const std::string& buffer) {
  std::string h = header;
  std::string out;
  uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + h + buffer;
}

std::vector<std::string> makeSeeds() {
  std::vector<std::string> s;
  auto ser = [&](const cmac::NamedTensors& t, const std::map<std::string, std::string>& m = {}) {
    s.push_back(cmac::serializeSafetensors(t, m));
  };
  ser({{"w", torch::arange(6, torch::kFloat).view({2, 3})}}, {{"format", "cmac"}});
  ser({{"a", torch::ones({3}, torch::kDouble)},
       {"b", torch::tensor({1, -2}, torch::kLong)},
       {"c", torch::tensor({7}, torch::kInt)},
       {"d", torch::tensor({1, 0, 1}, torch::kBool)},
       {"e", torch::tensor({1, 255}, torch::kByte)},
       {"f", torch::tensor({-3}, torch::kChar)},
       {"g", torch::tensor({300}, torch::kShort)},
       {"h", torch::ones({2, 2}, torch::kHalf)},
       {"i", torch::ones({2}, torch::kBFloat16)}});
  ser({{"empty", torch::zeros({0, 4})}, {"scalar", torch::tensor(3.5f)}});
  ser({}, {{"only", "metadata"}, {"step", "12"}});
  ser({{"visual.stem.0.weight", torch::randn({4, 3, 1, 3, 3})}, {"optim.step", torch::tensor({2}, torch::kLong)}},
      {{"format", "cmac-checkpoint/1"}, {"preset", "tiny"}});
  // Hand-made: unsupported dtypes, shapes with zero dims, unicode names, padding.
  s.push_back(rawFile(R"({"u":{"dtype":"U16","shape":[2],"data_offsets":[0,4]}})", std::string(4, '\1')));
  s.push_back(rawFile(R"({"z":{"dtype":"F32","shape":[0,9223372036854775807],"data_offsets":[0,0]}})", ""));
  s.push_back(rawFile(R"({"\u00e9t\u00e9":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}   )", "x"));
  s.push_back(rawFile(R"({"__metadata__":{"k":"v"},"x":{"dtype":"I64","shape":[1,1],"data_offsets":[0,8]}})",
                      std::string(8, '\0')));
  s.push_back(rawFile("{}", ""));
  return s;
}

int writeSeeds(const std::string& dir) {
  auto seeds = makeSeeds();
  for (size_t i = 0; i < seeds.size(); ++i) {
    std::string p = dir + "/seed-" + std::to_string(i) + ".safetensors";
    std::ofstream f(p, std::ios::binary);
    f.write(seeds[i].data(), static_cast<std::streamsize>(seeds[i].size()));
    if (!f) {
      std::fprintf(stderr, "cannot write %s\n", p.c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", seeds.size(), dir.c_str());
  return 0;
}

}  // namespace

// ---- libFuzzer entry points
// CMAC_FUZZ_SEED_DIR=DIR writes the seeds into DIR before libFuzzer reads its corpus.
extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  at::set_num_threads(1);
  std::atexit([] {
    std::fprintf(stderr, "cmac-fuzz: cases %llu, accepted %llu, rejected (cmac::Error) %llu\n",
                 static_cast<unsigned long long>(gCount.cases), static_cast<unsigned long long>(gCount.accepted),
                 static_cast<unsigned long long>(gCount.rejected));
  });
  if (const char* d = std::getenv("CMAC_FUZZ_SEED_DIR")) return writeSeeds(d);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  runOne(data, size);
  return 0;
}

#ifdef CMAC_FUZZ_STANDALONE
// ---- seeded-mutation fallback (no libFuzzer): deterministic in --seed.
namespace {

const char* kInteresting[] = {"0",
                              "1",
                              "-1",
                              "7",
                              "8",
                              "255",
                              "256",
                              "4294967295",
                              "4294967296",
                              "9223372036854775807",
                              "9223372036854775808",
                              "18446744073709551615",
                              "18446744073709551616",
                              "1e308",
                              "-0",
                              "0.5",
                              "null",
                              "true",
                              "\"\"",
                              "[]",
                              "{}",
                              "[0]",
                              "[0,0]",
                              "[1,2,3]"};
const char* kTokens[] = {"\"dtype\"",
                         "\"shape\"",
                         "\"data_offsets\"",
                         "\"__metadata__\"",
                         "\"F32\"",
                         "\"U64\"",
                         "\"BOOL\"",
                         "\"F16\"",
                         "\"X99\"",
                         ",",
                         ":",
                         "{",
                         "}",
                         "[",
                         "]",
                         "\"",
                         "\\",
                         "\\u0000",
                         "\xff",
                         " "};

std::string mutate(const std::string& in, std::mt19937_64& r, const std::vector<std::string>& seeds) {
  std::string s = in;
  auto pick = [&](size_t n) { return n ? static_cast<size_t>(r() % n) : 0; };
  const int rounds = 1 + static_cast<int>(r() % 4);
  for (int k = 0; k < rounds; ++k) {
    switch (r() % 11) {
      case 0:  // bit flip
        if (!s.empty()) s[pick(s.size())] ^= static_cast<char>(1u << (r() % 8));
        break;
      case 1:  // random byte
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(r());
        break;
      case 2:  // truncate
        s.resize(pick(s.size() + 1));
        break;
      case 3:  // append junk
        s.append(1 + pick(16), static_cast<char>(r()));
        break;
      case 4: {  // delete a span
        if (s.empty()) break;
        size_t a = pick(s.size()), n = 1 + pick(std::min<size_t>(32, s.size() - a));
        s.erase(a, n);
        break;
      }
      case 5: {  // header length: random, +-small, or huge
        if (s.size() < 8) break;
        uint64_t n = 0;
        for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(s[i]);
        switch (r() % 4) {
          case 0:
            n += 1 + r() % 8;
            break;
          case 1:
            n -= 1 + r() % 8;
            break;
          case 2:
            n = r();
            break;
          default:
            n = s.size() - 8;
            break;
        }
        for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
        break;
      }
      case 6: {  // replace a number in the header with an interesting value
        std::vector<size_t> at;
        for (size_t i = 8; i < s.size() && i < 4096; ++i)
          if (std::isdigit(static_cast<unsigned char>(s[i])) && !std::isdigit(static_cast<unsigned char>(s[i - 1])))
            at.push_back(i);
        if (at.empty()) break;
        size_t a = at[pick(at.size())], b = a;
        while (b < s.size() && std::isdigit(static_cast<unsigned char>(s[b]))) ++b;
        s.replace(a, b - a, kInteresting[pick(sizeof(kInteresting) / sizeof(*kInteresting))]);
        break;
      }
      case 7: {  // insert a JSON token
        size_t a = s.size() > 8 ? 8 + pick(s.size() - 8) : pick(s.size() + 1);
        s.insert(a, kTokens[pick(sizeof(kTokens) / sizeof(*kTokens))]);
        break;
      }
      case 8: {  // splice with another seed
        const std::string& o = seeds[pick(seeds.size())];
        if (o.empty()) break;
        size_t a = pick(s.size() + 1), b = pick(o.size());
        s = s.substr(0, a) + o.substr(b);
        break;
      }
      case 9: {  // duplicate a span (duplicate keys, overlapping entries)
        if (s.size() < 10) break;
        size_t a = 8 + pick(s.size() - 8), n = 1 + pick(std::min<size_t>(64, s.size() - a));
        s.insert(pick(s.size()), s.substr(a, n));
        break;
      }
      default: {  // keep the header length in step with an edited header
        if (s.size() < 8) break;
        size_t end = s.find('}', 8);
        size_t last = s.rfind('}');
        if (end == std::string::npos || last == std::string::npos) break;
        uint64_t n = last + 1 - 8;
        for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
        break;
      }
    }
  }
  return s;
}

std::string readAll(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

}  // namespace

#include <dirent.h>

int main(int argc, char** argv) {
  uint64_t runs = 20000, seed = 1;
  double maxSeconds = 0;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--write-seeds" && i + 1 < argc) return writeSeeds(argv[++i]);
    if (a.rfind("-runs=", 0) == 0)
      runs = std::stoull(a.substr(6));
    else if (a.rfind("-seed=", 0) == 0)
      seed = std::stoull(a.substr(6));
    else if (a.rfind("-max_total_time=", 0) == 0)
      maxSeconds = std::stod(a.substr(16));
    else if (a[0] != '-')
      inputs.push_back(a);
  }
  at::set_num_threads(1);
  std::vector<std::string> seeds = makeSeeds();
  for (const auto& p : inputs) {  // corpus folders or files, like libFuzzer
    if (DIR* d = opendir(p.c_str())) {
      while (dirent* e = readdir(d))
        if (e->d_name[0] != '.') seeds.push_back(readAll(p + "/" + e->d_name));
      closedir(d);
    } else {
      seeds.push_back(readAll(p));
    }
  }
  for (const auto& s : seeds) runOne(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  std::mt19937_64 r(seed);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t i = 0; i < runs; ++i) {
    std::string m = mutate(seeds[r() % seeds.size()], r, seeds);
    runOne(reinterpret_cast<const uint8_t*>(m.data()), m.size());
    if (maxSeconds > 0 && (i & 255) == 0 &&
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > maxSeconds)
      break;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf(
      "cmac-fuzz (seeded mutation, no libFuzzer): cases %llu, accepted %llu, rejected %llu, crashes 0, %.1f s\n",
      static_cast<unsigned long long>(gCount.cases), static_cast<unsigned long long>(gCount.accepted),
      static_cast<unsigned long long>(gCount.rejected), secs);
  return 0;
}
#endif
