#include "axle/config.hpp"

#include <pwd.h>
#include <sys/stat.h>
#include <toml++/toml.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>

#include "axle/error.hpp"
#include "user_dirs.hpp"

namespace axle {
namespace {

int line_of(const toml::node& n) { return static_cast<int>(n.source().begin.line); }

std::string get_string(const toml::node& n, const std::string& key, const std::string& path) {
  if (auto v = n.value<std::string>(); v && n.is_string()) return *v;
  throw ConfigError("'" + key + "' must be a string", path, line_of(n), key);
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
      // The per-user file; with no per-user location there is none (never a shared one).
      const char* xdg = std::getenv("XDG_CONFIG_HOME");
      const std::string home = detail::user_home();
      const std::string dir = xdg && *xdg ? std::string(xdg) : home.empty() ? "" : home + "/.config";
      if (!dir.empty() && file_exists(dir + "/axle/axle.toml")) path = dir + "/axle/axle.toml";
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

namespace detail {

std::string user_home() {
  if (const char* h = std::getenv("HOME"); h && *h) return h;
  // The password database's home directory, when it is a real per-user directory:
  // absolute, existing, owned by this user, and not a shared temporary location.
  long size = ::sysconf(_SC_GETPW_R_SIZE_MAX);
  std::vector<char> buf(static_cast<std::size_t>(size > 0 ? size : 16384));
  passwd pw{};
  passwd* found = nullptr;
  if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &found) != 0 || !found || !found->pw_dir) return "";
  std::string dir = found->pw_dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty() || dir[0] != '/' || dir == "/" || is_shared_tmp(dir)) return "";
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || st.st_uid != ::geteuid()) return "";
  return dir;
}

bool is_shared_tmp(const std::string& path) {
  for (const char* t : {"/tmp", "/var/tmp", "/dev/shm"}) {
    const std::string p = t;
    if (path == p || path.rfind(p + "/", 0) == 0) return true;
  }
  return false;
}

std::string expand_home(const std::string& path, std::string* why) {
  if (path != "~" && path.rfind("~/", 0) != 0) return path;
  const std::string home = user_home();
  if (home.empty()) {
    if (why) *why = "'" + path + "' starts with '~' but there is no home directory to expand it to (HOME is unset)";
    return "";
  }
  return home + path.substr(1);
}

}  // namespace detail

namespace {

// The cache directory, or "" with `why` saying why there is none.
std::string resolve_cache_dir(std::string& why) {
  if (const char* env = std::getenv("AXLE_CACHE_DIR"); env && *env) return detail::expand_home(env, &why);
  const Config& c = active_config();
  if (!c.cache_dir.empty()) {
    std::string dir = detail::expand_home(c.cache_dir, &why);
    if (dir.empty()) why = c.path + ": cache_dir " + why;
    return dir;
  }
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/axle";
  const std::string home = detail::user_home();
  if (home.empty()) {
    why =
        "HOME is unset and the password database gives no usable home directory "
        "(set AXLE_CACHE_DIR or XDG_CACHE_HOME)";
    return "";
  }
  return home + "/.cache/axle";
}

}  // namespace

std::string cache_dir() {
  std::string why;
  return resolve_cache_dir(why);
}

std::string no_cache_dir_reason() {
  std::string why;
  return resolve_cache_dir(why).empty() ? why : std::string();
}

std::string tuning_file() {
  if (const char* env = std::getenv("AXLE_TUNING_FILE"); env && *env) return detail::expand_home(env, nullptr);
  const Config& c = active_config();
  if (!c.tuning_file.empty()) return detail::expand_home(c.tuning_file, nullptr);
  const std::string dir = cache_dir();
  return dir.empty() ? "" : dir + "/tuning.json";
}

}  // namespace axle
