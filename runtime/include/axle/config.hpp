// axle/config.hpp: the configuration file and environment.
//
// The config file is TOML. It is the file named by AXLE_CONFIG, else ./axle.toml,
// else $XDG_CONFIG_HOME/axle/axle.toml (~/.config/axle/axle.toml; none when there is no
// home directory: a shared location such as /tmp is never read). Keys (all optional):
//
//   device    = "opencl:0"                 # as AXLE_DEVICE
//   fallback  = ["opencl:gpu", "opencl:cpu"]  # tried in order if `device` cannot serve
//   log       = "info"                     # as AXLE_LOG
//   cache_dir = "/path/to/cache"           # as AXLE_CACHE_DIR ("~/..." is the home directory)
//   tuning_file = "/path/to/tuning.json"   # user tuning database (as AXLE_TUNING_FILE)
//
// An unknown key, a wrong type or malformed TOML is a ConfigError naming the file,
// the line and the key. Environment variables win over the file.
//
// Thread-safety: every function here may be called from several threads at once; the
// active config is read once, by whichever thread first needs it, while the others
// wait, and the Config it returns is never changed afterwards. Axle reads environment
// variables (AXLE_*, HOME, XDG_*) with getenv: a program that calls setenv/putenv must
// not do so while other threads may be in Axle calls (POSIX leaves that undefined).
// reset_config_for_testing() must not run concurrently with any other Axle call.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace axle {

struct Config {
  std::string path;  ///< the file it was read from ("" when none was found)
  std::string device;
  std::vector<std::string> fallback;
  std::string log;
  std::string cache_dir;
  std::string tuning_file;
};

/// Parse one config file. Throws ConfigError.
Config load_config(const std::string& path);

/// Parse config text (`path` is used in messages only). Throws ConfigError.
Config parse_config(const std::string& text, const std::string& path);

/// The config in effect for this process (read once, on first use; see above).
/// A malformed file throws ConfigError on every call.
const Config& active_config();

/// Where compiled kernels are cached: AXLE_CACHE_DIR, else the config's cache_dir,
/// else $XDG_CACHE_HOME/axle, else ~/.cache/axle. A leading "~/" is the home directory
/// ($HOME, else the password database's when it is a directory of this user's). ""
/// when there is no per-user location (no home, or "~/" with no home): programs are
/// then built in memory only, never cached in a shared directory such as /tmp.
std::string cache_dir();

/// Why cache_dir() is "" (e.g. "HOME is unset and ..."); "" when it is not.
std::string no_cache_dir_reason();

/// Where user tuning results go: AXLE_TUNING_FILE, else the config's tuning_file
/// ("~/" expanded as for cache_dir), else <cache_dir>/tuning.json; "" when none.
std::string tuning_file();

/// Forget the cached active config (for tests that change the environment).
void reset_config_for_testing();

}  // namespace axle
