// axle/cache.hpp: the on-disk cache of compiled kernels.
//
// Compiled programs are stored under cache_dir() (axle/config.hpp) as one file per
// program, named by its key: an ordered SHA-256 of the source, every included text,
// the build options, the device and its architecture, the driver and compiler
// versions and Axle's version. Writes are atomic (temporary file, then rename);
// an entry whose checksum does not match is removed and rebuilt, never loaded.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace axle {

struct CacheEntry {
  std::string path;
  std::string key;
  std::string backend;
  std::string device;
  std::string program;  ///< the Source name
  std::uint64_t bytes = 0;
  bool valid = false;  ///< header and checksum verified
};

/// Every entry in the cache directory (or `dir` when given).
std::vector<CacheEntry> cache_entries(const std::string& dir = {});
/// Remove every entry; returns how many were removed.
std::size_t clear_cache(const std::string& dir = {});

}  // namespace axle
