// The config-file parser (axle.toml): any bytes either give a Config or a ConfigError
// that names the file; nothing else is thrown.
#include <toml++/toml.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "axle/config.hpp"
#include "fuzz_util.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string path = "fuzz/axle.toml";
  axle::Config c;
  try {
    c = axle::parse_config(text, path);
  } catch (const axle::ConfigError& e) {
    AXLE_FUZZ_CHECK(e.file() == path, "the error names the file");
    AXLE_FUZZ_CHECK(std::string(e.what()).find(path) != std::string::npos, e.what());
    AXLE_FUZZ_CHECK(e.line() >= 0, "line");
    return 0;
  } catch (const std::exception& e) {
    axle_fuzz::fail(std::string("unexpected exception: ") + e.what());
  }
  AXLE_FUZZ_CHECK(c.path == path, "the config remembers its file");
  // What was read, written back as TOML, reads the same.
  toml::table t;
  if (!c.device.empty()) t.insert("device", c.device);
  if (!c.log.empty()) t.insert("log", c.log);
  if (!c.cache_dir.empty()) t.insert("cache_dir", c.cache_dir);
  if (!c.tuning_file.empty()) t.insert("tuning_file", c.tuning_file);
  if (!c.fallback.empty()) {
    toml::array a;
    for (const auto& f : c.fallback) a.push_back(f);
    t.insert("fallback", a);
  }
  std::ostringstream out;
  out << t;
  axle::Config again;
  try {
    again = axle::parse_config(out.str(), path);
  } catch (const std::exception& e) {
    axle_fuzz::fail(std::string("the config written back does not parse: ") + e.what() + "\n" + out.str());
  }
  AXLE_FUZZ_CHECK(again.device == c.device && again.log == c.log && again.cache_dir == c.cache_dir &&
                      again.tuning_file == c.tuning_file && again.fallback == c.fallback,
                  "round trip of\n" + out.str());
  return 0;
}
