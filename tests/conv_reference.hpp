// Helpers shared by the convolution tests: element conversions, output tolerances, the
// reference activation and the flat indices of the tensors in either layout.
#pragma once

#include <cmath>
#include <cstddef>
#include <type_traits>

#include "axle/axle.hpp"
#include "axle/dnn.hpp"

namespace axle_test::conv {

template <typename T>
T from_double(double v) {
  if constexpr (std::is_same_v<T, axle::half_t>)
    return axle::to_half(static_cast<float>(v));
  else if constexpr (std::is_same_v<T, axle::bfloat16_t>)
    return axle::to_bfloat16(static_cast<float>(v));
  else
    return static_cast<float>(v);
}
inline double to_double(float v) { return v; }
inline double to_double(axle::half_t v) { return axle::to_float(v); }
inline double to_double(axle::bfloat16_t v) { return axle::to_float(v); }

/// Relative rounding of one stored output element.
template <typename T>
double out_eps() {
  if (std::is_same_v<T, axle::half_t>) return 1.0 / 1024;
  if (std::is_same_v<T, axle::bfloat16_t>) return 1.0 / 128;
  return 1.0 / (1 << 23);
}

inline double act_ref(double v, axle::dnn::Activation a) {
  if (a == axle::dnn::Activation::ReLU) return v > 0 ? v : 0;
  if (a == axle::dnn::Activation::GELU) return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  return v;
}

inline std::size_t x_index(const axle::dnn::Conv2dDesc& d, std::size_t n, std::size_t c, std::size_t h, std::size_t w) {
  return d.layout == axle::dnn::TensorLayout::NCHW ? ((n * d.c + c) * d.h + h) * d.w + w
                                                    : ((n * d.h + h) * d.w + w) * d.c + c;
}
inline std::size_t w_index(const axle::dnn::Conv2dDesc& d, std::size_t k, std::size_t c, std::size_t r, std::size_t s) {
  const std::size_t cg = d.c / d.groups;
  return d.layout == axle::dnn::TensorLayout::NCHW ? ((k * cg + c) * d.r + r) * d.s + s
                                                    : ((k * d.r + r) * d.s + s) * cg + c;
}
inline std::size_t y_index(const axle::dnn::Conv2dDesc& d, std::size_t n, std::size_t k, std::size_t p, std::size_t q) {
  const std::size_t P = d.out_h(), Q = d.out_w();
  return d.layout == axle::dnn::TensorLayout::NCHW ? ((n * d.k + k) * P + p) * Q + q
                                                    : ((n * P + p) * Q + q) * d.k + k;
}

}  // namespace axle_test::conv
