// The config-file parser (axle.toml): any bytes either give a Config or a ConfigError
// that names the file; nothing else is thrown.
#include <cstddef>
#include <cstdint>
#include <cstdio>
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
  // What was read, written back as TOML basic strings, reads the same. (Written here,
  // not with toml++'s formatter, which turns "\nx" into a multi-line literal that
  // reads back as "x".)
  auto quoted = [](const std::string& v) {
    std::string q = "\"";
    for (char ch : v) {
      const auto u = static_cast<unsigned char>(ch);
      if (ch == '"' || ch == '\\') {
        q += '\\';
        q += ch;
      } else if (u < 0x20 || u == 0x7f) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", u);
        q += esc;
      } else {
        q += ch;
      }
    }
    return q + "\"";
  };
  std::ostringstream out;
  for (auto [key, value] : {std::pair<const char*, const std::string*>{"device", &c.device},
                            {"log", &c.log},
                            {"cache_dir", &c.cache_dir},
                            {"tuning_file", &c.tuning_file}})
    if (!value->empty()) out << key << " = " << quoted(*value) << "\n";
  if (!c.fallback.empty()) {
    out << "fallback = [";
    for (std::size_t i = 0; i < c.fallback.size(); ++i) out << (i ? ", " : "") << quoted(c.fallback[i]);
    out << "]\n";
  }
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
