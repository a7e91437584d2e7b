// Internal: a choice read from an environment variable (AXLE_GEMM_TC, AXLE_GEMM_SIMT).
#pragma once

#include <atomic>
#include <cstdlib>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

#include "axle/log.hpp"

namespace axle::blas::detail {

/// The choice `var` names among `names` (several spellings may name one choice). Unset
/// or empty gives `auto_choice`; any other value gives it too, after one warning per
/// choice type through the `blas` logger that lists `listed`.
template <typename E>
E env_choice(const char* var, std::initializer_list<std::pair<std::string_view, E>> names, E auto_choice,
             const char* listed) {
  const char* v = std::getenv(var);
  if (!v || !*v) return auto_choice;
  for (const auto& [name, choice] : names)
    if (name == v) return choice;
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true))
    axle::log("blas", LogLevel::Warn, std::string(var) + "=" + v + " is not one of " + listed + "; using auto");
  return auto_choice;
}

}  // namespace axle::blas::detail
