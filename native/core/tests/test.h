// A minimal test runner for native/core: TEST(name) registers a case,
// CHECK/CHECK_CLOSE throw on failure. `cmac_core_tests --list` prints the
// names; `--run NAME` runs one (test/core.test.ts runs each as a mocha case).
#pragma once
#include <cmath>
#include <functional>
#include <map>
#include <sstream>
#include <stdexcept>
#include <string>

namespace cmactest {

inline std::map<std::string, std::function<void()>>& registry() {
  static std::map<std::string, std::function<void()>> r;
  return r;
}
// Thrown by SKIP(): the case does not apply on this machine (e.g. no CUDA).
struct Skip : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// --require-cuda turns every CUDA skip into a failure (scripts/gpu-check.sh).
inline bool& requireCuda() {
  static bool r = false;
  return r;
}
struct Registrar {
  Registrar(const char* name, std::function<void()> f) { registry()[name] = std::move(f); }
};
// Folder with Python-made parity fixtures (--fixtures DIR).
inline std::string& fixturesDir() {
  static std::string d;
  return d;
}

}  // namespace cmactest

#define TEST(name)                                           \
  static void test_##name();                                 \
  static cmactest::Registrar reg_##name(#name, test_##name); \
  static void test_##name()

#undef CHECK  // glog (pulled in by Debian libtorch) defines its own
#define CHECK(cond)                                                  \
  do {                                                               \
    if (!(cond)) {                                                   \
      std::ostringstream o_;                                         \
      o_ << __FILE__ << ":" << __LINE__ << ": CHECK failed: " #cond; \
      throw std::runtime_error(o_.str());                            \
    }                                                                \
  } while (0)

#define SKIP(why) throw cmactest::Skip(why)

#define CHECK_MSG(cond, msg)                                       \
  do {                                                             \
    if (!(cond)) {                                                 \
      std::ostringstream o_;                                       \
      o_ << __FILE__ << ":" << __LINE__ << ": " #cond ": " << msg; \
      throw std::runtime_error(o_.str());                          \
    }                                                              \
  } while (0)

#define CHECK_CLOSE(a, b, tol)                                                                      \
  do {                                                                                              \
    double a_ = (a), b_ = (b);                                                                      \
    CHECK_MSG(std::abs(a_ - b_) <= (tol), #a "=" << a_ << " vs " #b "=" << b_ << " tol " << (tol)); \
  } while (0)

// Expects `expr` to throw an exception whose message contains `needle`.
#define CHECK_THROWS(expr, needle)                                         \
  do {                                                                     \
    bool thrown_ = false;                                                  \
    try {                                                                  \
      (void)(expr);                                                        \
    } catch (const std::exception& e_) {                                   \
      thrown_ = true;                                                      \
      CHECK_MSG(std::string(e_.what()).find(needle) != std::string::npos,  \
                "message '" << e_.what() << "' lacks '" << needle << "'"); \
    }                                                                      \
    CHECK_MSG(thrown_, #expr " did not throw");                            \
  } while (0)
