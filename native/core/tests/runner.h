// The main() body of the C++ test binaries (cmac_core_tests and
// cmac_media_tests), torch-free because the media tests link no libtorch.
//   --list       prints the registered case names, one a line
//   --run NAME   runs one case (test/core.test.ts runs each as a mocha case)
//   (nothing)    runs every case
// One line per case ("ok", "skip" or "FAIL"), then "N passed, N failed, N
// skipped". Exit status: 0 all ran or skipped, 1 a case failed, 2 no case is
// named NAME, 3 the one requested case skipped itself, 4 a bad argument.
// A binary with flags of its own (cmac_core_tests: --fixtures, --require-cuda)
// handles them in `option`; `describe` turns a caught exception into the
// message printed (cmac_core_tests: c10::Error without its backtrace).
#pragma once
#include <exception>
#include <functional>
#include <iostream>
#include <string>

#include "test.h"

namespace cmactest {

struct RunnerHooks {
  // argv[i] is an argument the runner does not know: true when it is
  // handled (advance i past a value it takes), false for an unknown one.
  std::function<bool(int& i, int argc, char** argv)> option;
  std::function<std::string(const std::exception&)> describe;
};

inline int runTests(int argc, char** argv, const RunnerHooks& hooks = {}) {
  std::string only;
  bool list = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--list") {
      list = true;
    } else if (a == "--run" && i + 1 < argc) {
      only = argv[++i];
    } else if (!hooks.option || !hooks.option(i, argc, argv)) {
      std::cerr << argv[0] << ": unknown argument '" << a << "' (use --list, or --run NAME)" << std::endl;
      return 4;
    }
  }
  if (list) {
    for (auto& [name, f] : registry()) std::cout << name << "\n";
    return 0;
  }
  int failed = 0, passed = 0, skipped = 0;
  for (auto& [name, f] : registry()) {
    if (!only.empty() && name != only) continue;
    try {
      f();
      ++passed;
      std::cout << "ok   " << name << std::endl;
    } catch (const Skip& e) {
      if (requireCuda()) {
        ++failed;
        std::cout << "FAIL " << name << ": required but skipped: " << e.what() << std::endl;
      } else {
        ++skipped;
        std::cout << "skip " << name << ": " << e.what() << std::endl;
      }
    } catch (const std::exception& e) {
      ++failed;
      std::cout << "FAIL " << name << ": " << (hooks.describe ? hooks.describe(e) : std::string(e.what())) << std::endl;
    }
  }
  if (!only.empty() && passed + failed + skipped == 0) {
    std::cout << "no test named " << only << std::endl;
    return 2;
  }
  std::cout << passed << " passed, " << failed << " failed, " << skipped << " skipped" << std::endl;
  if (failed) return 1;
  return skipped && !only.empty() ? 3 : 0;
}

}  // namespace cmactest
