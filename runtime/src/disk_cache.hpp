// Internal: the disk cache's file format and atomic writes.
//
// File: "AXLEBIN1" | u32 meta_len | meta (key=value lines) | u64 payload_len |
//       32-byte SHA-256 of payload | payload. All integers little-endian.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace axle::detail {

struct CacheMeta {
  std::string key, backend, device, program;
};

/// An entry read from disk: its payload and the file it came from (st_dev, st_ino).
struct CacheHit {
  std::vector<std::uint8_t> payload;
  std::uint64_t dev = 0, ino = 0;
};

/// The payload stored under `key`, or nullopt. Only a directory and an entry owned by
/// this user and writable by no one else are used (an entry is opened without
/// following a symbolic link and must be a regular file); anything else is refused with
/// a warning on the "jit" logger. A corrupt or truncated entry is removed (and
/// logged) and nullopt returned.
std::optional<CacheHit> disk_cache_load(const std::string& dir, const std::string& key);

/// Remove the entry `hit` was read from, `why` being what is wrong with it, but only
/// while `key`'s file is still that same file: a valid entry another process has
/// renamed into place since is kept. Returns whether it removed a file.
bool disk_cache_discard(const std::string& dir, const std::string& key, const CacheHit& hit, const std::string& why);

/// Store atomically: a temporary created exclusively in the directory (mode 0600, never
/// through a symbolic link), then renamed. Creates the directory 0700; refuses one that
/// is another user's or writable by group or others. Removes temporaries older than
/// ten minutes that writers left behind. Failures (read-only dir, full disk) are
/// logged, not thrown.
void disk_cache_store(const std::string& dir, const CacheMeta& meta, const std::vector<std::uint8_t>& payload);

std::string disk_cache_path(const std::string& dir, const std::string& key);

/// An entry file's bytes: the header, `meta` (line breaks in its values stored as
/// blanks), the payload's length and checksum, the payload.
std::string disk_cache_encode(const CacheMeta& meta, const std::uint8_t* payload, std::size_t size);

/// Parse and verify an entry file's bytes: true with `meta` and `payload` filled, or
/// false with `why` ("bad header", "truncated", "truncated payload", "checksum mismatch").
bool disk_cache_decode(const std::string& data, CacheMeta& meta, std::string& payload, std::string& why);

}  // namespace axle::detail
