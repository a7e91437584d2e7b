// axle/log.hpp: logging control.
//
// Axle logs through spdlog, one named logger per subsystem ("axle.rt", "axle.jit",
// "axle.mem", "axle.opencl", "axle.cuda", "axle.blas"), all off by default.
// AXLE_LOG=debug turns every subsystem to debug; AXLE_LOG="jit=debug, mem=trace" sets
// them one by one (items separated by commas, blanks around them ignored; a subsystem
// may be written "axle.jit"; a bare level sets every subsystem not named; levels:
// trace, debug, info, warn, error, critical, off). A spec is parsed whole before any of
// it applies: an unknown level or subsystem makes the whole spec rejected (AXLE_LOG and
// the config's `log` are then ignored with a note on stderr). An empty AXLE_LOG counts
// as unset: the config's `log` applies.
//
// Thread-safety: log() and set_log_levels() may be called from any number of threads at
// once, also during Axle's first use in other threads; the loggers are made once. Every
// logger writes through one stderr sink under one lock, so a line is never split by
// another thread's. A level change applies to the lines logged after it returns.
#pragma once

#include <string>

namespace axle {

/// Apply a level spec like the AXLE_LOG variable, replacing the levels in effect.
/// Throws ConfigError naming the bad item when malformed; nothing changes then.
void set_log_levels(const std::string& spec);

enum class LogLevel { Trace, Debug, Info, Warn, Error };

/// Write `message` to the logger of `subsystem` (e.g. "blas"); shown when AXLE_LOG
/// enables that subsystem at `level`. Thread-safe; never throws.
void log(const char* subsystem, LogLevel level, const std::string& message) noexcept;

}  // namespace axle
