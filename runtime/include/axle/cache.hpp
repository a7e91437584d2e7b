// axle/cache.hpp: the on-disk cache of compiled kernels.
//
// Compiled programs are stored under cache_dir() (axle/config.hpp) as one file per
// program, named by its key: an ordered SHA-256 of the source, every included text,
// the build options, the device and its architecture, the driver and compiler
// versions and Axle's version. Writes are atomic (a temporary file created exclusively,
// mode 0600, then renamed); an entry whose checksum does not match is removed and
// rebuilt, never loaded.
//
// The cache runs code it reads, so it only trusts what this user alone can write: the
// directory is created 0700, and a directory or entry owned by another user or writable
// by group or others is refused (a warning on the "jit" logger; kernels are then built
// in memory and nothing is written). Entries are opened without following symbolic
// links. With no per-user location (see cache_dir()) there is no disk cache.
//
// Thread- and process-safety: any number of threads and processes may build into, load
// from and list one cache directory at once; each finds either a complete entry or none
// (readers never see a partly written file), and the last of concurrent writers of a
// key wins with an equally valid entry. clear_cache() may run while others use the
// directory: their builds then compile again.
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

/// Why the cache directory (or `dir` when given) cannot be used: there is none, or it is
/// refused (another user's, writable by group or others, not a directory). "" when it
/// can be used or does not exist yet.
std::string cache_dir_problem(const std::string& dir = {});

/// Every entry in the cache directory (or `dir` when given); an entry that is refused
/// (a symbolic link, another user's, writable by others) is listed as not valid. Empty
/// when the directory is refused.
std::vector<CacheEntry> cache_entries(const std::string& dir = {});
/// Remove every entry and every temporary file a writer left behind; returns how many
/// files were removed (0 when the directory is refused).
std::size_t clear_cache(const std::string& dir = {});

}  // namespace axle
