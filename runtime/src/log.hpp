// Internal logging: one spdlog logger per subsystem, all off unless AXLE_LOG says.
#pragma once

#include <spdlog/spdlog.h>

#include <memory>

namespace axle::detail {

/// The logger of a subsystem ("rt", "jit", "mem", "opencl", "cuda", "blas": the names
/// AXLE_LOG accepts, listed in log.cpp).
/// Created on first use with the level AXLE_LOG / the config gives it. Thread-safe.
std::shared_ptr<spdlog::logger> logger(const char* subsystem);

}  // namespace axle::detail
