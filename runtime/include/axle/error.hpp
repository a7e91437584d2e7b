// axle/error.hpp: the exception hierarchy.
//
// Every failure Axle reports is an axle::Error (or a subclass). An Error carries
// the backend it came from ("opencl", "cuda", or "" for front-end checks), the
// native status code and its name (e.g. -5 / CL_OUT_OF_RESOURCES), the failing
// call (e.g. "clEnqueueWriteBuffer") and a message a person can act on.
//
// Destructors of Axle objects never throw; they log instead.
//
// Thread-safety: exceptions are values; const members may be read from several threads.
// Axle never throws one exception object in several threads (each thread whose build
// fails gets its own BuildError, see Device::build).
#pragma once

#include <stdexcept>
#include <string>

namespace axle {

/// Base of every Axle exception.
class Error : public std::runtime_error {
 public:
  struct Details {
    std::string backend;      ///< "opencl", "cuda", or "" when raised by the front end
    long long status = 0;     ///< native status code (0 when none)
    std::string status_name;  ///< e.g. "CL_INVALID_VALUE", "CUDA_ERROR_OUT_OF_MEMORY"
    std::string call;         ///< the native or API call that failed
  };

  explicit Error(const std::string& message);
  Error(const std::string& message, Details details);

  const std::string& backend() const noexcept { return details_.backend; }
  long long status() const noexcept { return details_.status; }
  const std::string& status_name() const noexcept { return details_.status_name; }
  const std::string& call() const noexcept { return details_.call; }
  /// The message without the decoration added by what().
  const std::string& message() const noexcept { return message_; }

 private:
  std::string message_;
  Details details_;
};

/// An argument was wrong: bad size, wrong count of kernel arguments, mismatched devices.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

/// A copy, view or operand reaches past the end of its buffer or host range.
class OutOfRange : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// A backend or device asked for cannot serve (not compiled in, library missing,
/// no such device). The message lists every backend and why it was rejected.
class DeviceUnavailable : public Error {
 public:
  using Error::Error;
};

/// The device cannot do what was asked (an fp64 kernel on a device without fp64,
/// CUDA source on OpenCL, ...).
class Unsupported : public Error {
 public:
  using Error::Error;
};

/// A native API call failed at run time (out of memory, launch failure, ...).
class BackendError : public Error {
 public:
  using Error::Error;
};

/// Device memory could not be allocated.
class OutOfMemory : public BackendError {
 public:
  using BackendError::BackendError;
};

/// A kernel program failed to compile. log() holds the compiler's full build log.
class BuildError : public Error {
 public:
  BuildError(const std::string& message, Details details, std::string log);
  const std::string& log() const noexcept { return log_; }

 private:
  std::string log_;
};

/// A kernel name that the program does not contain.
class KernelNotFound : public InvalidArgument {
 public:
  using InvalidArgument::InvalidArgument;
};

/// A configuration file or environment variable is malformed.
class ConfigError : public Error {
 public:
  ConfigError(const std::string& message, std::string file, int line, std::string key);
  struct Preformatted {};
  /// Rethrow form: `what` is a complete message from an earlier ConfigError.
  ConfigError(const std::string& what, std::string file, int line, std::string key, Preformatted);
  const std::string& file() const noexcept { return file_; }
  int line() const noexcept { return line_; }  ///< 0 when unknown
  const std::string& key() const noexcept { return key_; }

 private:
  std::string file_;
  int line_;
  std::string key_;
};

}  // namespace axle
