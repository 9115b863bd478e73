#include <torch/torch.h>

#include <iostream>

#include "test.h"

int main(int argc, char** argv) {
  std::string only;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--list") {
      for (auto& [name, f] : cmactest::registry()) std::cout << name << "\n";
      return 0;
    }
    if (a == "--run" && i + 1 < argc) only = argv[++i];
    else if (a == "--fixtures" && i + 1 < argc) cmactest::fixturesDir() = argv[++i];
    else if (a == "--require-cuda") cmactest::requireCuda() = true;
  }
  int failed = 0, passed = 0, skipped = 0;
  for (auto& [name, f] : cmactest::registry()) {
    if (!only.empty() && name != only) continue;
    try {
      f();
      ++passed;
      std::cout << "ok   " << name << std::endl;
    } catch (const cmactest::Skip& e) {
      if (cmactest::requireCuda()) {
        ++failed;
        std::cout << "FAIL " << name << ": required but skipped: " << e.what() << std::endl;
      } else {
        ++skipped;
        std::cout << "skip " << name << ": " << e.what() << std::endl;
      }
    } catch (const c10::Error& e) {
      ++failed;
      std::cout << "FAIL " << name << ": " << e.what_without_backtrace() << std::endl;
    } catch (const std::exception& e) {
      ++failed;
      std::cout << "FAIL " << name << ": " << e.what() << std::endl;
    }
  }
  if (!only.empty() && passed + failed + skipped == 0) {
    std::cout << "no test named " << only << std::endl;
    return 2;
  }
  std::cout << passed << " passed, " << failed << " failed, " << skipped << " skipped" << std::endl;
  if (failed) return 1;
  return skipped && !only.empty() ? 3 : 0;  // 3: the one requested case was skipped
}
