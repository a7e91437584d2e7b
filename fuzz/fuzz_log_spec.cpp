// The AXLE_LOG level-spec parser (axle::set_log_levels): a spec is applied whole or
// rejected whole with a ConfigError, leaving the levels in effect unchanged.
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "axle/log.hpp"
#include "fuzz_util.hpp"
#include "log_levels.hpp"

namespace {
const char* const kSubsystems[] = {"rt", "jit", "mem", "opencl", "cuda", "blas"};

std::vector<std::string> levels() {
  std::vector<std::string> out;
  for (const char* s : kSubsystems) out.push_back(axle::detail::log_level(s));
  return out;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const std::set<std::string> kNames = {"trace", "debug", "info", "warn", "error", "critical", "off"};
  const std::string spec(reinterpret_cast<const char*>(data), size);
  axle::set_log_levels("jit=debug");  // a known state to compare with
  const auto before = levels();
  const bool applied =
      axle_fuzz::returns_or_throws<axle::ConfigError>([&] { axle::set_log_levels(spec); }, "set_log_levels");
  const auto after = levels();
  if (!applied) AXLE_FUZZ_CHECK(after == before, "a rejected spec changes nothing: '" + spec + "'");
  for (const auto& l : after) AXLE_FUZZ_CHECK(kNames.count(l) == 1, "level name " + l);
  // A spec with nothing in it (blanks and commas) turns everything off.
  if (spec.find_first_not_of(" \t\r\n,") == std::string::npos) {
    AXLE_FUZZ_CHECK(applied, "an empty spec is accepted");
    for (const auto& l : after) AXLE_FUZZ_CHECK(l == "off", "an empty spec turns logging off");
  }
  return 0;
}
