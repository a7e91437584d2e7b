// axle/log.hpp: logging control.
//
// Axle logs through spdlog, one named logger per subsystem ("axle.rt", "axle.jit",
// "axle.mem", "axle.opencl", "axle.cuda", "axle.blas", "axle.config"), all off by
// default. AXLE_LOG=debug turns every subsystem to debug; AXLE_LOG=jit=debug,mem=trace
// sets them one by one (levels: trace, debug, info, warn, error, off).
#pragma once

#include <string>

namespace axle {

/// Apply a level spec like the AXLE_LOG variable. Throws ConfigError when malformed.
void set_log_levels(const std::string& spec);

enum class LogLevel { Trace, Debug, Info, Warn, Error };

/// Write `message` to the logger of `subsystem` (e.g. "blas"); shown when AXLE_LOG
/// enables that subsystem at `level`. Thread-safe; never throws.
void log(const char* subsystem, LogLevel level, const std::string& message) noexcept;

}  // namespace axle
