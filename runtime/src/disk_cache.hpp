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

/// The payload stored under `key`, or nullopt. A corrupt or truncated entry is
/// removed (and logged) and nullopt returned.
std::optional<std::vector<std::uint8_t>> disk_cache_load(const std::string& dir, const std::string& key);

/// Store atomically. Failures (read-only dir, full disk) are logged, not thrown.
void disk_cache_store(const std::string& dir, const CacheMeta& meta, const std::vector<std::uint8_t>& payload);

std::string disk_cache_path(const std::string& dir, const std::string& key);

}  // namespace axle::detail
