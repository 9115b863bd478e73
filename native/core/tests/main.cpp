#include <torch/torch.h>

#include "runner.h"

int main(int argc, char** argv) {
  cmactest::RunnerHooks hooks;
  hooks.option = [](int& i, int argc, char** argv) {
    const std::string a = argv[i];
    if (a == "--fixtures" && i + 1 < argc) {
      cmactest::fixturesDir() = argv[++i];
      return true;
    }
    if (a == "--require-cuda") {
      cmactest::requireCuda() = true;
      return true;
    }
    return false;
  };
  hooks.describe = [](const std::exception& e) -> std::string {
    if (auto* c = dynamic_cast<const c10::Error*>(&e)) return c->what_without_backtrace();
    return e.what();
  };
  return cmactest::runTests(argc, argv, hooks);
}
