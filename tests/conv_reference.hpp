// Helpers shared by the convolution tests: element conversions, output tolerances, the
// reference activation, the flat indices of the tensors in either layout, and one forward
// case end to end (random inputs, device buffers and views, the double-accumulation
// reference check of y and of the elements around it).
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

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

/// The fused epilogue of a forward case.
struct Epi {
  bool bias = false, residual = false;
  axle::dnn::Activation act = axle::dnn::Activation::None;
  float alpha = 1.0f, beta = 0.0f;
};

inline std::string describe(const Epi& e) {
  return "bias " + std::to_string(e.bias) + " residual " + std::to_string(e.residual) + " act " +
         std::to_string(static_cast<int>(e.act)) + " alpha " + std::to_string(e.alpha) + " beta " +
         std::to_string(e.beta);
}

/// The host side of a forward case: x, w, y (NaN where beta is 0, so that a read of y
/// shows), z and the bias, each `off` elements into its vector, y with `guard` more
/// elements after it; uniform in [-1, 1) from `seed`.
template <typename TX, typename TY>
struct ForwardHost {
  std::size_t off;
  std::vector<TX> x, w;
  std::vector<TY> y, z;
  std::vector<float> b;
  ForwardHost(const axle::dnn::Conv2dDesc& d, const Epi& e, std::size_t off_, std::size_t guard, unsigned seed)
      : off(off_), x(off_ + d.x_elems()), w(off_ + d.w_elems()), y(off_ + d.y_elems() + guard), z(off_ + d.y_elems()),
        b(off_ + d.k) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    for (auto& v : x) v = from_double<TX>(dist(rng));
    for (auto& v : w) v = from_double<TX>(dist(rng));
    for (auto& v : y) v = from_double<TY>(e.beta == 0 ? std::numeric_limits<double>::quiet_NaN() : dist(rng));
    for (auto& v : z) v = from_double<TY>(dist(rng));
    for (auto& v : b) v = static_cast<float>(dist(rng));
  }
};

/// The device copies of a ForwardHost (uploaded on `s`) and the plan arguments that view
/// them at the case's offset.
template <typename TX, typename TY>
struct ForwardDevice {
  axle::Buffer x, w, y, z, b;
  ForwardDevice(const axle::Device& dev, axle::Stream& s, const ForwardHost<TX, TY>& h)
      : x(dev.alloc<TX>(h.x.size())), w(dev.alloc<TX>(h.w.size())), y(dev.alloc<TY>(h.y.size())),
        z(dev.alloc<TY>(h.z.size())), b(dev.alloc<float>(h.b.size())) {
    s.copy(h.x, x.view<TX>());
    s.copy(h.w, w.view<TX>());
    s.copy(h.y, y.view<TY>());
    s.copy(h.z, z.view<TY>());
    s.copy(h.b, b.view<float>());
  }
  axle::dnn::Conv2dArgs args(const axle::dnn::Conv2dDesc& d, const Epi& e, std::size_t off) const {
    axle::dnn::Conv2dArgs a;
    a.x = x.view<TX>(off);
    a.w = w.view<TX>(off);
    a.y = y.view<TY>(off, d.y_elems());
    if (e.bias) a.bias = b.view<float>(off);
    if (e.residual) a.z = z.view<TY>(off);
    a.alpha = e.alpha;
    a.beta = e.beta;
    return a;
  }
};

/// Checks `out` (all of y's vector after the run) against the double-accumulation
/// reference: each element of y within the error bound of float accumulation over its
/// C / G * R * S terms and of the output rounding, plus extra_tol(tol_mag) (tol_mag: the
/// sum of the magnitudes of everything added); and every element around y unchanged.
/// Reports the first few misses; returns how many there were.
template <typename TX, typename TY, typename ExtraTol>
std::size_t check_forward(const axle::dnn::Conv2dDesc& d, const ForwardHost<TX, TY>& h, const Epi& e,
                          const std::vector<TY>& out, ExtraTol extra_tol) {
  const std::size_t off = h.off, P = d.out_h(), Q = d.out_w(), cg = d.c / d.groups, kg = d.k / d.groups;
  const double eps_in = 1.0 / (1 << 23);
  std::size_t bad = 0;
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t k = 0; k < d.k; ++k)
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t q = 0; q < Q; ++q) {
          double acc = 0, mag = 0;
          const std::size_t g = k / kg;
          for (std::size_t c = 0; c < cg; ++c)
            for (std::size_t r = 0; r < d.r; ++r)
              for (std::size_t t = 0; t < d.s; ++t) {
                const long ih = static_cast<long>(p * d.stride_h + r * d.dilation_h) - static_cast<long>(d.pad_top);
                const long iw = static_cast<long>(q * d.stride_w + t * d.dilation_w) - static_cast<long>(d.pad_left);
                if (ih < 0 || iw < 0 || ih >= static_cast<long>(d.h) || iw >= static_cast<long>(d.w)) continue;
                const double v = to_double(h.x[off + x_index(d, n, g * cg + c, ih, iw)]) *
                                 to_double(h.w[off + w_index(d, k, c, r, t)]);
                acc += v;
                mag += std::fabs(v);
              }
          const std::size_t yi = off + y_index(d, n, k, p, q);
          double want = e.alpha * acc, tol_mag = std::fabs(e.alpha) * mag;
          if (e.beta != 0) {
            want += e.beta * to_double(h.y[yi]);
            tol_mag += std::fabs(e.beta * to_double(h.y[yi]));
          }
          if (e.bias) {
            want += h.b[off + k];
            tol_mag += std::fabs(h.b[off + k]);
          }
          if (e.residual) {
            want += to_double(h.z[yi]);
            tol_mag += std::fabs(to_double(h.z[yi]));
          }
          want = act_ref(want, e.act);
          const double got = to_double(out[yi]);
          // Float accumulation over cg*R*S terms (worst case, no square root), then the
          // output rounding (and an intermediate rounding of y on GEMM paths).
          const double terms = static_cast<double>(cg * d.r * d.s) + 4;
          const double tol = 2 * eps_in * terms * tol_mag + extra_tol(tol_mag) +
                             2 * out_eps<TY>() * (std::fabs(want) + tol_mag) + 1e-30;
          if (!(std::fabs(got - want) <= tol) && ++bad <= 5)
            ADD_FAILURE() << "y(n=" << n << ", k=" << k << ", p=" << p << ", q=" << q << ") = " << got << ", expected "
                          << want << " (tolerance " << tol << ")";
        }
  auto same = [&](std::size_t i) {
    return (std::isnan(to_double(out[i])) && std::isnan(to_double(h.y[i]))) || to_double(out[i]) == to_double(h.y[i]);
  };
  for (std::size_t i = 0; i < off; ++i)
    if (!same(i) && ++bad <= 10) ADD_FAILURE() << "element " << i << " before y changed";
  for (std::size_t i = off + d.y_elems(); i < h.y.size(); ++i)
    if (!same(i) && ++bad <= 10) ADD_FAILURE() << "element " << i << " after y changed";
  return bad;
}

}  // namespace axle_test::conv
