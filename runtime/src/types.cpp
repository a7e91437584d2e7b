#include "axle/types.hpp"

#include <cstring>

#include "axle/version.hpp"

namespace axle {

const char* version() noexcept { return AXLE_VERSION_STRING; }

const char* to_string(DeviceType t) noexcept {
  switch (t) {
    case DeviceType::GPU: return "GPU";
    case DeviceType::CPU: return "CPU";
    case DeviceType::Accelerator: return "Accelerator";
    default: return "Other";
  }
}

std::string Range::str() const {
  if (dims_ == 0) return "{}";
  std::string s = "{" + std::to_string(v_[0]);
  for (unsigned i = 1; i < dims_; ++i) s += ", " + std::to_string(v_[i]);
  return s + "}";
}

namespace {
std::uint32_t f2u(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float u2f(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace

float to_float(half_t h) noexcept {
  const std::uint32_t sign = (h.bits & 0x8000u) << 16;
  std::uint32_t exp = (h.bits >> 10) & 0x1f;
  std::uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return u2f(sign | 0x7f800000u | (man << 13));
  if (exp == 0) {
    if (man == 0) return u2f(sign);
    // subnormal: value = man * 2^-24
    float v = static_cast<float>(man) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

half_t to_half(float f) noexcept {
  std::uint32_t u = f2u(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  u &= 0x7fffffffu;
  half_t h;
  if (u >= 0x7f800000u) {  // inf / nan
    h.bits = sign | 0x7c00u | (u > 0x7f800000u ? 0x200u : 0u);
    return h;
  }
  if (u >= 0x477ff000u) {  // rounds to >= 65520 -> inf
    h.bits = sign | 0x7c00u;
    return h;
  }
  if (u < 0x38800000u) {  // subnormal or zero in half
    // value * 2^24 rounded to nearest even
    float v = u2f(u) * 16777216.0f;
    std::uint32_t q = static_cast<std::uint32_t>(v);
    float rem = v - static_cast<float>(q);
    if (rem > 0.5f || (rem == 0.5f && (q & 1u))) ++q;
    h.bits = sign | static_cast<std::uint16_t>(q);
    return h;
  }
  std::uint32_t mant_odd = (u >> 13) & 1u;
  u += 0xc8000fffu + mant_odd;  // rebias exponent (-112 << 23) and round to nearest even
  h.bits = sign | static_cast<std::uint16_t>(u >> 13);
  return h;
}

float to_float(bfloat16_t b) noexcept { return u2f(static_cast<std::uint32_t>(b.bits) << 16); }

bfloat16_t to_bfloat16(float f) noexcept {
  std::uint32_t u = f2u(f);
  bfloat16_t b;
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu)) {
    b.bits = static_cast<std::uint16_t>((u >> 16) | 0x40u);
    return b;
  }
  u += 0x7fffu + ((u >> 16) & 1u);
  b.bits = static_cast<std::uint16_t>(u >> 16);
  return b;
}

}  // namespace axle
