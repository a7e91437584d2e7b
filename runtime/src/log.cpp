#include "log.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "axle/config.hpp"
#include "axle/error.hpp"
#include "axle/log.hpp"
#include "log_levels.hpp"

namespace axle {
namespace {

struct LogState {
  std::mutex mu;
  bool initialised = false;
  spdlog::level::level_enum default_level = spdlog::level::off;
  std::map<std::string, spdlog::level::level_enum> levels;
  std::map<std::string, std::shared_ptr<spdlog::logger>> loggers;
  // One sink for every logger: its mutex keeps lines of different subsystems, logged
  // from different threads at once, whole (a colour sink writes a line in pieces).
  std::shared_ptr<spdlog::sinks::sink> sink;
};
LogState& state() {
  static LogState* s = new LogState;  // never destroyed: destructors may log at exit
  return *s;
}

// The subsystems Axle logs under (the loggers it names).
constexpr const char* kSubsystems[] = {"rt", "jit", "mem", "opencl", "cuda", "blas"};
constexpr const char* kSubsystemList = "rt, jit, mem, opencl, cuda, blas";

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  const auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

spdlog::level::level_enum parse_level(const std::string& s, const std::string& item, const std::string& spec,
                                      const std::string& source) {
  static const std::map<std::string, spdlog::level::level_enum> kLevels = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug}, {"info", spdlog::level::info},
      {"warn", spdlog::level::warn},   {"warning", spdlog::level::warn}, {"error", spdlog::level::err},
      {"critical", spdlog::level::critical}, {"off", spdlog::level::off}};
  auto it = kLevels.find(s);
  if (it == kLevels.end())
    throw ConfigError("unknown log level '" + s + "' in item '" + item + "' of '" + spec +
                          "' (use trace, debug, info, warn, error, off)",
                      source, 0, "log");
  return it->second;
}

// A level spec taken apart: "debug" or "jit=debug, mem=trace" (items separated by
// commas, blanks around items, names and levels ignored, empty items skipped).
struct ParsedSpec {
  std::optional<spdlog::level::level_enum> default_level;
  std::map<std::string, spdlog::level::level_enum> levels;
};

// Parses the whole spec, changing nothing; throws ConfigError naming the first bad item.
ParsedSpec parse_spec(const std::string& spec, const std::string& source) {
  ParsedSpec out;
  std::size_t pos = 0;
  while (pos <= spec.size()) {
    std::size_t comma = spec.find(',', pos);
    if (comma == std::string::npos) comma = spec.size();
    const std::string item = trim(spec.substr(pos, comma - pos));
    pos = comma + 1;
    if (item.empty()) continue;
    auto eq = item.find('=');
    if (eq == std::string::npos) {
      out.default_level = parse_level(item, item, spec, source);
      continue;
    }
    std::string name = trim(item.substr(0, eq));
    if (name.rfind("axle.", 0) == 0) name = name.substr(5);
    if (name.empty())
      throw ConfigError("item '" + item + "' of '" + spec + "' names no subsystem before '='", source, 0, "log");
    if (std::find(std::begin(kSubsystems), std::end(kSubsystems), name) == std::end(kSubsystems))
      throw ConfigError("unknown subsystem '" + name + "' in item '" + item + "' of '" + spec +
                            "' (subsystems: " + kSubsystemList + ")",
                        source, 0, "log");
    out.levels[name] = parse_level(trim(item.substr(eq + 1)), item, spec, source);
  }
  return out;
}

// Replaces the levels in effect with `p` (caller holds the lock).
void apply_locked(LogState& st, const ParsedSpec& p) {
  st.default_level = p.default_level.value_or(spdlog::level::off);
  st.levels = p.levels;
  for (auto& [name, lg] : st.loggers) {
    auto it = st.levels.find(name);
    lg->set_level(it != st.levels.end() ? it->second : st.default_level);
  }
}

void init_locked(LogState& st) {
  if (st.initialised) return;
  st.initialised = true;
  // AXLE_LOG wins over the config's `log`; an empty AXLE_LOG counts as unset, like every
  // other variable. A malformed spec is ignored whole (nothing of it applies) with a note.
  if (const char* env = std::getenv("AXLE_LOG"); env && *env) {
    try {
      apply_locked(st, parse_spec(env, "AXLE_LOG"));
      return;
    } catch (const ConfigError& e) {
      std::fprintf(stderr, "axle: ignoring AXLE_LOG='%s': %s\n", env, e.message().c_str());
    }
  }
  std::string spec, path;
  try {
    spec = active_config().log;
    path = active_config().path;
  } catch (const Error&) {
    return;  // A malformed config is reported where it is used, not here.
  }
  if (spec.empty()) return;
  try {
    apply_locked(st, parse_spec(spec, path));
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "axle: ignoring log = '%s' in %s: %s\n", spec.c_str(), path.c_str(), e.message().c_str());
  }
}

const char* level_name(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "off";
  }
}

}  // namespace

void set_log_levels(const std::string& spec) {
  // Parsed whole first, so that a malformed spec changes nothing.
  const ParsedSpec parsed = parse_spec(spec, "set_log_levels");
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  init_locked(st);
  apply_locked(st, parsed);
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
std::string log_level(const std::string& subsystem) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  init_locked(st);
  auto it = st.levels.find(subsystem);
  return level_name(it != st.levels.end() ? it->second : st.default_level);
}

void reset_log_levels_for_testing() {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.initialised = false;
  apply_locked(st, ParsedSpec{});
}

std::shared_ptr<spdlog::logger> logger(const char* subsystem) {
  auto& st = state();
  std::lock_guard<std::mutex> lock(st.mu);
  init_locked(st);
  auto it = st.loggers.find(subsystem);
  if (it != st.loggers.end()) return it->second;
  if (!st.sink) {
    st.sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    st.sink->set_pattern("[%H:%M:%S.%e] [%n] [%l] %v");  // %n: each logger's own name
  }
  auto lg = std::make_shared<spdlog::logger>(std::string("axle.") + subsystem, st.sink);
  auto lv = st.levels.find(subsystem);
  lg->set_level(lv != st.levels.end() ? lv->second : st.default_level);
  st.loggers.emplace(subsystem, lg);
  return lg;
}
}  // namespace detail

}  // namespace axle
