// Shared by the fuzz targets: a failed invariant aborts with a message (libFuzzer then
// saves the input), and a helper that runs a call and checks what it may throw.
#pragma once

#include <cstdio>
#include <exception>
#include <string>

#include "axle/error.hpp"

namespace axle_fuzz {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "fuzz invariant failed: %s\n", what.c_str());
  __builtin_trap();  // (SIGILL: libFuzzer saves the input, whatever handles SIGABRT)
}

#define AXLE_FUZZ_CHECK(cond, msg)                                                \
  do {                                                                            \
    if (!(cond)) ::axle_fuzz::fail(std::string(#cond) + ": " + std::string(msg)); \
  } while (0)

/// Runs `f`; returns true when it returned, false when it threw an `Allowed` (an
/// axle::Error subclass with a non-empty message). Anything else thrown is a failure.
template <typename Allowed, typename F>
bool returns_or_throws(F&& f, const char* what) {
  try {
    f();
    return true;
  } catch (const Allowed& e) {
    if (std::string(e.what()).empty()) fail(std::string(what) + ": an error with an empty message");
    return false;
  } catch (const std::exception& e) {
    fail(std::string(what) + ": unexpected exception: " + e.what());
  } catch (...) {
    fail(std::string(what) + ": a non-std exception");
  }
}

}  // namespace axle_fuzz
