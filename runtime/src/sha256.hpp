// Internal: SHA-256, used for cache keys and cache-entry checksums.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace axle::detail {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, std::size_t len);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// Append one field of an ordered key: its length, then its bytes, so that
  /// ("ab","c") and ("a","bc") differ.
  void field(std::string_view s);
  std::array<std::uint8_t, 32> digest();
  std::string hex_digest();

 private:
  void block(const std::uint8_t* p);
  std::uint32_t h_[8];
  std::uint8_t buf_[64];
  std::size_t buf_len_ = 0;
  std::uint64_t total_ = 0;
};

std::string to_hex(const std::uint8_t* p, std::size_t n);

}  // namespace axle::detail
