// axle/types.hpp: small value types shared by the API.
//
// Thread-safety: plain values with no shared state; the free functions are pure.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>

namespace axle {

/// Kind of device, as reported by the backend.
enum class DeviceType { GPU, CPU, Accelerator, Other };

const char* to_string(DeviceType t) noexcept;

/// A 1-, 2- or 3-dimensional size (work-items or work-group shape).
/// Range{} (zero dimensions) as a local size means "let the backend choose".
class Range {
 public:
  Range() = default;
  Range(std::size_t x) : dims_(1), v_{x, 1, 1} {}  // NOLINT: implicit on purpose
  Range(std::size_t x, std::size_t y) : dims_(2), v_{x, y, 1} {}
  Range(std::size_t x, std::size_t y, std::size_t z) : dims_(3), v_{x, y, z} {}

  unsigned dims() const noexcept { return dims_; }
  std::size_t operator[](unsigned i) const noexcept { return i < 3 ? v_[i] : 1; }
  std::size_t total() const noexcept { return v_[0] * v_[1] * v_[2]; }
  bool empty() const noexcept { return dims_ == 0; }
  std::string str() const;

 private:
  unsigned dims_ = 0;
  std::array<std::size_t, 3> v_{1, 1, 1};
};

/// Round n up to a multiple of m (m > 0): the usual way to size a global range.
constexpr std::size_t round_up(std::size_t n, std::size_t m) noexcept { return (n + m - 1) / m * m; }

/// Ceiling division.
constexpr std::size_t div_up(std::size_t n, std::size_t m) noexcept { return (n + m - 1) / m; }

/// 16-bit float storage type (IEEE binary16). Arithmetic happens in float.
struct half_t {
  std::uint16_t bits = 0;
};
/// bfloat16 storage type. Arithmetic happens in float.
struct bfloat16_t {
  std::uint16_t bits = 0;
};

float to_float(half_t h) noexcept;
half_t to_half(float f) noexcept;  ///< round to nearest even
float to_float(bfloat16_t h) noexcept;
bfloat16_t to_bfloat16(float f) noexcept;  ///< round to nearest even

}  // namespace axle
