// Errors the core raises for bad input. The addon maps Kind to the JS error
// class (TypeError, RangeError, Error) and a stable `code` (CMAC_BAD_ARGUMENT,
// CMAC_SHAPE_MISMATCH, ...: the table is native/addon/bridge.h), so callers
// can tell bad arguments from failures of the work itself.
#pragma once
#include <stdexcept>
#include <string>

namespace cmac {

class Error : public std::runtime_error {
 public:
  // Shape: a tensor's shape does not fit (RangeError); Checkpoint: a weights
  // file is malformed or does not match (Error); Disposed: an object used
  // after dispose() (raised by the addon).
  enum class Kind { Type, Range, Value, IO, Shape, Checkpoint, Disposed };
  Error(Kind kind, const std::string& msg) : std::runtime_error(msg), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

[[noreturn]] inline void typeError(const std::string& m) { throw Error(Error::Kind::Type, m); }
[[noreturn]] inline void rangeError(const std::string& m) { throw Error(Error::Kind::Range, m); }
[[noreturn]] inline void valueError(const std::string& m) { throw Error(Error::Kind::Value, m); }
[[noreturn]] inline void ioError(const std::string& m) { throw Error(Error::Kind::IO, m); }
[[noreturn]] inline void shapeError(const std::string& m) { throw Error(Error::Kind::Shape, m); }
[[noreturn]] inline void checkpointError(const std::string& m) { throw Error(Error::Kind::Checkpoint, m); }

}  // namespace cmac
