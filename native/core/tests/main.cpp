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
  }
  int failed = 0, passed = 0;
  for (auto& [name, f] : cmactest::registry()) {
    if (!only.empty() && name != only) continue;
    try {
      f();
      ++passed;
      std::cout << "ok   " << name << std::endl;
    } catch (const c10::Error& e) {
      ++failed;
      std::cout << "FAIL " << name << ": " << e.what_without_backtrace() << std::endl;
    } catch (const std::exception& e) {
      ++failed;
      std::cout << "FAIL " << name << ": " << e.what() << std::endl;
    }
  }
  if (!only.empty() && passed + failed == 0) {
    std::cout << "no test named " << only << std::endl;
    return 2;
  }
  std::cout << passed << " passed, " << failed << " failed" << std::endl;
  return failed ? 1 : 0;
}
