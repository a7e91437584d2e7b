#include "axle/config.hpp"

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <toml++/toml.h>

#include "axle/error.hpp"

namespace axle {
namespace {

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

std::string get_string(const toml::node& n, const std::string& key, const std::string& path) {
  if (auto v = n.value<std::string>(); v && n.is_string()) return *v;
  throw ConfigError("'" + key + "' must be a string", path, line_of(n), key);
}

std::string home_dir() {
  const char* h = std::getenv("HOME");
  return h && *h ? h : "/tmp";
}

bool file_exists(const std::string& p) {
  std::ifstream f(p);
  return f.good();
}

struct ActiveConfig {
  std::mutex mu;
  bool loaded = false;
  Config config;
  std::string error;  // ConfigError text to rethrow on every call
  std::string error_file, error_key;
  int error_line = 0;
};
ActiveConfig& active_state() {
  static ActiveConfig s;
  return s;
}

}  // namespace

Config parse_config(const std::string& text, const std::string& path) {
  toml::table tbl;
  try {
    tbl = toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    throw ConfigError(std::string("malformed TOML: ") + std::string(e.description()), path,
                      static_cast<int>(e.source().begin.line), "");
  }
  Config c;
  c.path = path;
  for (auto&& [k, node] : tbl) {
    const std::string key(k.str());
    if (key == "device") {
      c.device = get_string(node, key, path);
    } else if (key == "log") {
      c.log = get_string(node, key, path);
    } else if (key == "cache_dir") {
      c.cache_dir = get_string(node, key, path);
    } else if (key == "tuning_file") {
      c.tuning_file = get_string(node, key, path);
    } else if (key == "fallback") {
      const toml::array* arr = node.as_array();
      if (!arr) throw ConfigError("'fallback' must be an array of device strings", path, line_of(node), key);
      for (const toml::node& e : *arr) c.fallback.push_back(get_string(e, key, path));
    } else {
      throw ConfigError("unknown key '" + key + "' (known: device, fallback, log, cache_dir, tuning_file)", path,
                        line_of(node), key);
    }
  }
  return c;
}

Config load_config(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw ConfigError("cannot read the config file", path, 0, "");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse_config(ss.str(), path);
}

const Config& active_config() {
  auto& st = active_state();
  std::lock_guard<std::mutex> lock(st.mu);
  if (!st.loaded) {
    st.loaded = true;
    std::string path;
    if (const char* env = std::getenv("AXLE_CONFIG"); env && *env) {
      path = env;  // named explicitly: must exist
    } else if (file_exists("axle.toml")) {
      path = "axle.toml";
    } else {
      const char* xdg = std::getenv("XDG_CONFIG_HOME");
      std::string dir = xdg && *xdg ? std::string(xdg) : home_dir() + "/.config";
      if (file_exists(dir + "/axle/axle.toml")) path = dir + "/axle/axle.toml";
    }
    if (!path.empty()) {
      try {
        st.config = load_config(path);
      } catch (const ConfigError& e) {
        st.error = e.what();
        st.error_file = e.file();
        st.error_line = e.line();
        st.error_key = e.key();
      }
    }
  }
  if (!st.error.empty()) {
    // st.error is the full what() of the first failure (file:line: message (key)).
    throw ConfigError(st.error, st.error_file, st.error_line, st.error_key, ConfigError::Preformatted{});
  }
  return st.config;
}

void reset_config_for_testing() {
  auto& st = active_state();
  std::lock_guard<std::mutex> lock(st.mu);
  st.loaded = false;
  st.config = Config{};
  st.error.clear();
}

std::string cache_dir() {
  if (const char* env = std::getenv("AXLE_CACHE_DIR"); env && *env) return env;
  const Config& c = active_config();
  if (!c.cache_dir.empty()) return c.cache_dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/axle";
  return home_dir() + "/.cache/axle";
}

std::string tuning_file() {
  if (const char* env = std::getenv("AXLE_TUNING_FILE"); env && *env) return env;
  const Config& c = active_config();
  if (!c.tuning_file.empty()) return c.tuning_file;
  return cache_dir() + "/tuning.json";
}

}  // namespace axle
