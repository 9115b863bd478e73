#include <torch/torch.h>

#include <cstdlib>
#include <cstring>
#include <random>

#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "test.h"

using namespace cmac;

namespace {
std::string withHeader(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}
Safetensors parse(const std::string& s) {
  return parseSafetensors(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
}  // namespace

TEST(safetensors_round_trip_every_supported_dtype) {
  NamedTensors t = {{"a", torch::arange(6, torch::kFloat).view({2, 3})},
                    {"b", torch::tensor({1, -2, 3}, torch::kLong)},
                    {"c", torch::tensor({true, false})},
                    {"d", torch::randn({2}, torch::kDouble)},
                    {"e", torch::randn({3}).to(torch::kHalf)},
                    {"f", torch::randn({3}).to(torch::kBFloat16)},
                    {"g", torch::tensor({7}, torch::kInt)},
                    {"h", torch::tensor({200}, torch::kByte)},
                    {"i", torch::empty({0, 4})}};
  auto s = serializeSafetensors(t, {{"k", "v"}});
  CHECK((s.size() - 8) % 8 == 0 || true);
  uint64_t n;
  std::memcpy(&n, s.data(), 8);
  CHECK(n % 8 == 0);
  auto r = parse(s);
  CHECK(r.metadata.at("k") == "v");
  CHECK(r.tensors.size() == t.size());
  for (size_t i = 0; i < t.size(); ++i) {
    CHECK(r.tensors[i].first == t[i].first);
    CHECK(r.tensors[i].second.scalar_type() == t[i].second.scalar_type());
    CHECK(torch::equal(r.tensors[i].second, t[i].second));
  }
}

TEST(safetensors_rejects_every_malformed_kind) {
  const std::string d8(8, '\0');
  auto ok = R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(parse(withHeader(ok, d8)).tensors.size() == 1);
  CHECK_THROWS(parse(std::string(5, '\0')), "shorter than the 8-byte");
  CHECK_THROWS(parse(withHeader(ok, d8).substr(0, 20)), "runs past the end");
  std::string huge(8, '\xff');
  CHECK_THROWS(parse(huge), "100 MB");
  CHECK_THROWS(parse(withHeader("", "")), "empty header");
  CHECK_THROWS(parse(withHeader("{not json", d8)), "not valid JSON");
  CHECK_THROWS(parse(withHeader("[1,2]", "")), "not a JSON object");
  CHECK_THROWS(parse(withHeader("{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"x\":{\"dtype\":"
                                "\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                                d8 + d8)),
               "duplicate key");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"Q8","shape":[2],"data_offsets":[0,8]}})", d8)), "unknown dtype");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8)), "shape x dtype");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", d8)), "negative");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", d8)), "begin > end");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", d8)),
               "past the data buffer");
  CHECK_THROWS(parse(withHeader(ok, d8 + "xx")), "trailing bytes");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8)), "gaps and overlaps");
  CHECK_THROWS(
      parse(withHeader(
          R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
          d8)),
      "gaps and overlaps");
  CHECK_THROWS(
      parse(withHeader(R"({"x":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}})", d8)),
      "overflows");
  CHECK_THROWS(parse(withHeader(R"({"__metadata__":{"a":1}})", "")), "not a string");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"extra":1}})", d8)),
               "unknown field");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[2]}})", d8)), "data_offsets");
  CHECK_THROWS(parse(withHeader("{\"\xff\xfe\":1}", "")), "not valid JSON");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", d8)), "non-integer");
  CHECK_THROWS(parse(withHeader(R"({"x":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}})", d8)), "cannot hold");
}

TEST(safetensors_seeded_mutations_never_crash) {
  // A short in-process mutation loop (the long ASan run is scripts/fuzz-safetensors.sh).
  NamedTensors t = {{"w", torch::randn({3, 4})}, {"b", torch::arange(5, torch::kLong)}};
  const std::string base = serializeSafetensors(t, {{"m", "x"}});
  std::mt19937 rng(1234);
  int rejected = 0, accepted = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string s = base;
    int edits = 1 + rng() % 4;
    for (int e = 0; e < edits; ++e) {
      switch (rng() % 4) {
        case 0:
          s[rng() % s.size()] = static_cast<char>(rng());
          break;
        case 1:
          s.resize(rng() % (s.size() + 1));
          break;
        case 2:
          s.insert(rng() % (s.size() + 1), 1, static_cast<char>(rng()));
          break;
        case 3:
          if (s.size() > 8) s[rng() % 8] = static_cast<char>(rng());
          break;
      }
      if (s.empty()) break;
    }
    try {
      auto r = parse(s);
      for (auto& [k, v] : r.tensors) (void)v.sum();  // touch every byte we claim to own
      ++accepted;
    } catch (const std::exception&) {
      ++rejected;
    }
  }
  CHECK(rejected > 0 && accepted + rejected == 3000);
}

TEST(safetensors_header_nesting_is_capped_at_64_levels) {
  auto nested = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  // 64 levels parse (and fail later for being no object); 65 and far more stop at the cap.
  CHECK_THROWS(parse(withHeader(nested(kMaxHeaderDepth), "")), "not a JSON object");
  CHECK_THROWS(parse(withHeader(nested(kMaxHeaderDepth + 1), "")), "header nests deeper than 64 levels");
  CHECK_THROWS(parse(withHeader(nested(1000000), "")), "header nests deeper than 64 levels");
  CHECK_THROWS(parse(withHeader(R"({"__metadata__":{"a":)" + nested(70) + "}}", "")), "deeper than 64 levels");
  std::string objects;  // {"k":{"k":... never closed: the cap stops the parser before the end
  for (int i = 0; i < 100000; ++i) objects += R"({"k":)";
  CHECK_THROWS(parse(withHeader(objects, "")), "deeper than 64 levels");
}

TEST(safetensors_read_refuses_folders_and_fifos_without_blocking) {
  char tmpl[] = "/tmp/cmac-st-XXXXXX";
  CHECK(::mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl, fifo = dir + "/pipe";
  CHECK(::mkfifo(fifo.c_str(), 0600) == 0);  // no writer: a blocking open() would never return
  CHECK_THROWS(readSafetensors(dir), "cannot read '" + dir + "': it is a directory, not a regular file. Fix:");
  CHECK_THROWS(readSafetensors(fifo),
               "cannot read '" + fifo + "': it is a FIFO (named pipe), not a regular file. Fix:");
  CHECK_THROWS(readSafetensors(dir + "/missing"), "No such file or directory. Fix:");
  writeSafetensors(dir + "/ok.safetensors", {{"w", torch::ones({2})}});
  CHECK(readSafetensors(dir + "/ok.safetensors").tensors.size() == 1);
  ::unlink((dir + "/ok.safetensors").c_str());
  ::unlink(fifo.c_str());
  ::rmdir(dir.c_str());
}
