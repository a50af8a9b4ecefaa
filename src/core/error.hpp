// Typed exceptions for every error a user can act on, and the check helpers that turn
// a failing library call into one (with file and line). Library code throws; main() decides.
#pragma once
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>

namespace vd {

// Base of every project error. what() is a sentence a user can act on.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Bad command-line option or configuration file value.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Bad or missing input data (IDX or HDF5 data sets).
class DataError : public Error {
 public:
  using Error::Error;
};

// Failure to read or write a file the project owns (checkpoints, metrics, images).
class IoError : public Error {
 public:
  using Error::Error;
};

// A shape, size or argument that violates a function's contract.
class ShapeError : public Error {
 public:
  using Error::Error;
};

// An MPI failure or a disagreement between ranks (e.g. parameter checksums differ).
class DistError : public Error {
 public:
  using Error::Error;
};

// Training diverged: a loss or gradient became NaN or infinite. Every rank throws it at the
// same step, with the same message, so the job can end cleanly (no abort).
class DivergenceError : public Error {
 public:
  using Error::Error;
};

// "[400, 784]": a tensor shape as error messages print it.
std::string shape_text(std::span<const int64_t> shape);

// "file.cpp:42: " prefix for errors that come from a failing library call.
std::string source_location_prefix(const char* file, int line);

}  // namespace vd

// Throws ErrorType(message) with file:line when cond is false.
#define VD_CHECK(cond, ErrorType, message)                                                      \
  do {                                                                                          \
    if (!(cond)) throw ErrorType(::vd::source_location_prefix(__FILE__, __LINE__) + (message)); \
  } while (0)
