// Errors the core raises for bad input. The addon maps Kind to the JS error
// class (TypeError, RangeError, Error), so callers can tell bad arguments
// from failures of the work itself.
#pragma once
#include <stdexcept>
#include <string>

namespace cmac {

class Error : public std::runtime_error {
 public:
  enum class Kind { Type, Range, Value, IO };
  Error(Kind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

[[noreturn]] inline void typeError(const std::string& m) { throw Error(Error::Kind::Type, m); }
[[noreturn]] inline void rangeError(const std::string& m) { throw Error(Error::Kind::Range, m); }
[[noreturn]] inline void valueError(const std::string& m) { throw Error(Error::Kind::Value, m); }
[[noreturn]] inline void ioError(const std::string& m) { throw Error(Error::Kind::IO, m); }

}  // namespace cmac
