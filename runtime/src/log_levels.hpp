// Internal: the log levels in effect, for tests (no spdlog types here).
#pragma once

#include <string>

namespace axle::detail {

/// The level `subsystem` ("jit", ...) logs at now: "trace", "debug", "info", "warn",
/// "error", "critical" or "off".
std::string log_level(const std::string& subsystem);

/// Forget the levels in effect: the next use reads AXLE_LOG / the config again.
void reset_log_levels_for_testing();

}  // namespace axle::detail
