#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

#include "axle/config.hpp"
#include "axle/error.hpp"
#include "axle/log.hpp"

namespace axle {
namespace {

struct LogState {
  std::mutex mu;
  bool initialised = false;
  spdlog::level::level_enum default_level = spdlog::level::off;
  std::map<std::string, spdlog::level::level_enum> levels;
  std::map<std::string, std::shared_ptr<spdlog::logger>> loggers;
};
LogState& state() {
  static LogState* s = new LogState;  // never destroyed: destructors may log at exit
  return *s;
}

spdlog::level::level_enum parse_level(const std::string& s, const std::string& spec) {
  static const std::map<std::string, spdlog::level::level_enum> kLevels = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"warning", spdlog::level::warn}, {"error", spdlog::level::err},
      {"critical", spdlog::level::critical}, {"off", spdlog::level::off}};
  auto it = kLevels.find(s);
  if (it == kLevels.end())
    throw ConfigError("unknown log level '" + s + "' in '" + spec +
                          "' (use trace, debug, info, warn, error, off)",
                      "AXLE_LOG", 0, "log");
  return it->second;
}

// Parse "debug" or "jit=debug,mem=trace" into st (caller holds the lock).
void apply_spec(LogState& st, const std::string& spec) {
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    std::size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    std::string item = spec.substr(pos, comma - pos);
    pos = comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      st.default_level = parse_level(item, spec);
    } else {
      std::string name = item.substr(0, eq);
      if (name.rfind("axle.", 0) == 0) name = name.substr(5);
      st.levels[name] = parse_level(item.substr(eq + 1), spec);
    }
  }
  for (auto& [name, lg] : st.loggers) {
    auto it = st.levels.find(name);
    lg->set_level(it != st.levels.end() ? it->second : st.default_level);
  }
}

void init_locked(LogState& st) {
  if (st.initialised) return;
  st.initialised = true;
  std::string spec;
  if (const char* env = std::getenv("AXLE_LOG")) {
    spec = env;
  } else {
    try {
      spec = active_config().log;
    } catch (const Error&) {
      // A malformed config is reported where it is used, not here.
    }
  }
  try {
    apply_spec(st, spec);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "axle: ignoring AXLE_LOG: %s\n", e.what());
  }
}

}  // namespace

void set_log_levels(const std::string& spec) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  init_locked(st);
  // Parse into a scratch state first, so that a malformed spec changes nothing.
  LogState parsed;
  apply_spec(parsed, spec);
  st.default_level = parsed.default_level;
  st.levels = parsed.levels;
  apply_spec(st, "");
}

void log(const char* subsystem, LogLevel level, const std::string& message) noexcept {
  static constexpr spdlog::level::level_enum kLevels[] = {spdlog::level::trace, spdlog::level::debug,
                                                          spdlog::level::info, spdlog::level::warn,
                                                          spdlog::level::err};
  try {
    detail::logger(subsystem)->log(kLevels[static_cast<int>(level)], "{}", message);
  } catch (...) {
    // Logging must never fail the caller.
  }
}

namespace detail {
std::shared_ptr<spdlog::logger> logger(const char* subsystem) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  init_locked(st);
  auto it = st.loggers.find(subsystem);
  if (it != st.loggers.end()) return it->second;
  auto lg = std::make_shared<spdlog::logger>(std::string("axle.") + subsystem,
                                             std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  auto lv = st.levels.find(subsystem);
  lg->set_level(lv != st.levels.end() ? lv->second : st.default_level);
  lg->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");
  st.loggers.emplace(subsystem, lg);
  return lg;
}
}  // namespace detail

}  // namespace axle
