// GEMM correctness on every available device, against a host reference with double
// accumulation over the exact stored input values; plus validation and tuning tests.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "../kernels/src/common/env_choice.hpp"
#include "../kernels/src/gemm/gemm_dispatch.hpp"
#include "../kernels/src/gemm/gemm_tuning.hpp"
#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "test_util.hpp"

using axle::bfloat16_t;
using axle::half_t;
using axle::Layout;
using axle::Op;
using axle::blas::Activation;
using axle::blas::BiasMode;
using axle::blas::Epilogue;

namespace {

template <typename T>
T from_double(double v);
template <>
float from_double<float>(double v) {
  return static_cast<float>(v);
}
template <>
double from_double<double>(double v) {
  return v;
}
template <>
half_t from_double<half_t>(double v) {
  return axle::to_half(static_cast<float>(v));
}
template <>
bfloat16_t from_double<bfloat16_t>(double v) {
  return axle::to_bfloat16(static_cast<float>(v));
}
double to_double(float v) { return v; }
double to_double(double v) { return v; }
double to_double(half_t v) { return axle::to_float(v); }
double to_double(bfloat16_t v) { return axle::to_float(v); }

template <typename T>
double out_eps() {
  if (std::is_same_v<T, half_t>) return 1.0 / 1024;
  if (std::is_same_v<T, bfloat16_t>) return 1.0 / 128;
  if (std::is_same_v<T, double>) return 1e-15;
  return 1.0 / (1 << 23);
}

std::vector<axle::Device> all_devices() {
  std::vector<axle::Device> d = axle::devices();
  return d;
}

struct Case {
  Layout layout = Layout::RowMajor;
  Op ta = Op::N, tb = Op::N;
  std::size_t m = 1, n = 1, k = 1;
  std::size_t lda_pad = 0, ldb_pad = 0, ldc_pad = 0;  // added to the minimum leading dimension
  double alpha = 1.0, beta = 0.0;
  bool nan_c = false;  // fill C with NaN (with beta == 0 it must not leak)
  std::size_t batch = 1;
  bool strided = true;     // batch > 1: strided-batched (true) or array-batched (false)
  bool zero_stride_b = false;
  BiasMode bias = BiasMode::None;
  Activation act = Activation::None;
  std::size_t offset = 3;  // view offset in elements (deliberately unaligned)
  std::string name() const {
    return std::string(layout == Layout::RowMajor ? "row" : "col") + " " + (ta == Op::T ? "T" : "N") +
           (tb == Op::T ? "T" : "N") + " m=" + std::to_string(m) + " n=" + std::to_string(n) + " k=" +
           std::to_string(k) + " alpha=" + std::to_string(alpha) + " beta=" + std::to_string(beta) +
           " batch=" + std::to_string(batch) + " bias=" + std::to_string(static_cast<int>(bias)) +
           " act=" + std::to_string(static_cast<int>(act)) + (nan_c ? " nanC" : "");
  }
};

struct Stored {
  std::size_t lines, len, ld;
  std::size_t span() const { return lines == 0 || len == 0 ? 0 : (lines - 1) * ld + len; }
};

// Element (i, j) of a logical rows x cols matrix stored in `layout`, transposed or not.
std::size_t index_of(Layout layout, bool trans, std::size_t i, std::size_t j, std::size_t ld) {
  // stored matrix element (r, c): row-major r * ld + c, column-major c * ld + r
  const std::size_t r = trans ? j : i, c = trans ? i : j;
  return layout == Layout::RowMajor ? r * ld + c : c * ld + r;
}

double act_ref(double v, Activation a) {
  if (a == Activation::ReLU) return v > 0 ? v : 0;
  if (a == Activation::GELU) return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0)));
  return v;
}

// How far a computed element may be from the double reference: float accumulation of k
// products grows like sqrt(k) with random signs (u * sqrt(k) * sum|a b| holds with a wide
// margin for this suite's random data), plus the output rounding. A bound that grows like
// k * sum|a b| (k^2) would let a kernel that drops a term pass at deep k.
double gemm_tolerance(double eps_in, std::size_t k, double mag, double want, double eps_out) {
  return 4 * eps_in * std::sqrt(static_cast<double>(k) + 4) * mag + 2 * eps_out * std::fabs(want) + 1e-30;
}

template <typename TA, typename TB, typename TC>
void run_case(const axle::Device& dev, const Case& cs) {
  SCOPED_TRACE(cs.name() + " on " + dev.name());
  axle::Stream s = dev.create_stream();
  std::mt19937 rng(static_cast<unsigned>(cs.m * 131 + cs.n * 17 + cs.k));
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  const bool row = cs.layout == Layout::RowMajor;
  const bool ta = cs.ta == Op::T, tb = cs.tb == Op::T;
  const std::size_t a_r = ta ? cs.k : cs.m, a_c = ta ? cs.m : cs.k;
  const std::size_t b_r = tb ? cs.n : cs.k, b_c = tb ? cs.k : cs.n;
  const std::size_t lda = std::max<std::size_t>(1, row ? a_c : a_r) + cs.lda_pad;
  const std::size_t ldb = std::max<std::size_t>(1, row ? b_c : b_r) + cs.ldb_pad;
  const std::size_t ldc = std::max<std::size_t>(1, row ? cs.n : cs.m) + cs.ldc_pad;
  const Stored sa{row ? a_r : a_c, row ? a_c : a_r, lda}, sb{row ? b_r : b_c, row ? b_c : b_r, ldb},
      sc{row ? cs.m : cs.n, row ? cs.n : cs.m, ldc};
  const std::size_t stride_a = sa.span() + 5, stride_b = cs.zero_stride_b ? 0 : sb.span() + 2,
                    stride_c = sc.span() + 7;
  const std::size_t na = cs.offset + stride_a * cs.batch + 1;
  const std::size_t nb = cs.offset + std::max<std::size_t>(stride_b * cs.batch, sb.span()) + 1;
  const std::size_t nc = cs.offset + stride_c * cs.batch + 1;
  std::vector<TA> ha(na);
  std::vector<TB> hb(nb);
  std::vector<TC> hc(nc);
  for (auto& x : ha) x = from_double<TA>(dist(rng));
  for (auto& x : hb) x = from_double<TB>(dist(rng));
  for (auto& x : hc) x = from_double<TC>(cs.nan_c ? std::numeric_limits<double>::quiet_NaN() : dist(rng));
  const std::size_t nbias = cs.bias == BiasMode::PerRow ? cs.m : cs.n;
  std::vector<float> hbias(nbias + 1);
  std::vector<double> hbias64(nbias + 1);
  for (std::size_t i = 0; i < hbias.size(); ++i) hbias64[i] = hbias[i] = static_cast<float>(dist(rng));

  axle::Buffer da = dev.alloc<TA>(na), db = dev.alloc<TB>(nb), dc = dev.alloc<TC>(nc);
  axle::Buffer dbias = dev.alloc<float>(hbias.size()), dbias64;
  s.copy(ha, da.view<TA>());
  s.copy(hb, db.view<TB>());
  s.copy(hc, dc.view<TC>());
  s.copy(hbias, dbias.view<float>());
  Epilogue ep;
  ep.activation = cs.act;
  ep.bias_mode = cs.bias;
  if constexpr (std::is_same_v<TC, double>) {
    if (cs.bias != BiasMode::None) {
      dbias64 = dev.alloc<double>(hbias64.size());
      s.copy(hbias64, dbias64.view<double>());
      ep.bias_f64 = dbias64.view<double>(1);
    }
  } else {
    if (cs.bias != BiasMode::None) ep.bias = dbias.view<float>(1);
  }
  auto va = da.view<TA>(cs.offset);
  auto vb = db.view<TB>(cs.offset);
  auto vc = dc.view<TC>(cs.offset);
  if (cs.batch == 1) {
    axle::blas::gemm(s, cs.layout, cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, va, lda, vb, ldb, cs.beta, vc, ldc, ep);
  } else if (cs.strided) {
    axle::blas::gemm_strided_batched(s, cs.layout, cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, va, lda, stride_a, vb,
                                     ldb, stride_b, cs.beta, vc, ldc, stride_c, cs.batch, ep);
  } else {
    std::vector<axle::BufferView<TA>> as;
    std::vector<axle::BufferView<TB>> bs;
    std::vector<axle::BufferView<TC>> cs_;
    for (std::size_t b = 0; b < cs.batch; ++b) {
      as.push_back(va.sub(b * stride_a, sa.span()));
      bs.push_back(vb.sub(b * stride_b, sb.span()));
      cs_.push_back(vc.sub(b * stride_c, sc.span()));
    }
    axle::blas::gemm_batched(s, cs.layout, cs.ta, cs.tb, cs.m, cs.n, cs.k, cs.alpha, as, lda, bs, ldb, cs.beta, cs_,
                             ldc, ep);
  }
  std::vector<TC> out(nc);
  s.copy(dc.view<TC>(), out);
  s.synchronize();

  const double eps_in = std::is_same_v<TA, double> ? 1e-16 : 1.0 / (1 << 23);
  std::vector<bool> touched(nc, false);
  std::size_t bad = 0;
  for (std::size_t b = 0; b < cs.batch; ++b) {
    const TA* A = ha.data() + cs.offset + b * stride_a;
    const TB* B = hb.data() + cs.offset + b * stride_b;
    const std::size_t c0 = cs.offset + b * stride_c;
    for (std::size_t i = 0; i < cs.m; ++i)
      for (std::size_t j = 0; j < cs.n; ++j) {
        double acc = 0, mag = 0;
        for (std::size_t p = 0; p < cs.k; ++p) {
          const double x = to_double(A[index_of(cs.layout, ta, i, p, lda)]) *
                           to_double(B[index_of(cs.layout, tb, p, j, ldb)]);
          acc += x;
          mag += std::fabs(x);
        }
        const std::size_t ci = c0 + index_of(cs.layout, false, i, j, ldc);
        touched[ci] = true;
        double want = cs.alpha * acc;
        double tol_mag = std::fabs(cs.alpha) * mag;
        if (cs.beta != 0) {
          want += cs.beta * to_double(hc[ci]);
          tol_mag += std::fabs(cs.beta * to_double(hc[ci]));
        }
        if (cs.bias != BiasMode::None) {
          const double bv = hbias64[1 + (cs.bias == BiasMode::PerRow ? i : j)];
          want += bv;
          tol_mag += std::fabs(bv);
        }
        want = act_ref(want, cs.act);
        const double got = to_double(out[ci]);
        const double tol = gemm_tolerance(eps_in, cs.k, tol_mag, want, out_eps<TC>());
        if (!(std::fabs(got - want) <= tol)) {
          if (++bad <= 5)
            ADD_FAILURE() << "batch " << b << " C(" << i << ", " << j << ") = " << got << ", expected " << want
                          << " (tolerance " << tol << ")";
        }
      }
  }
  // Nothing outside the m x n matrices may change.
  for (std::size_t i = 0; i < nc; ++i)
    if (!touched[i]) {
      const double was = to_double(hc[i]), now = to_double(out[i]);
      if (!(was == now || (std::isnan(was) && std::isnan(now)))) {
        if (++bad <= 10) ADD_FAILURE() << "element " << i << " outside C changed from " << was << " to " << now;
      }
    }
  EXPECT_EQ(bad, 0u);
}

class GemmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    devs_ = all_devices();
    if (devs_.empty()) GTEST_SKIP() << "no device available";
  }
  template <typename F>
  void each(F&& f) {
    for (const auto& d : devs_) f(d);
  }
  std::vector<axle::Device> devs_;
};

TEST_F(GemmTest, OddAndPrimeShapesAllTransposesBothLayouts) {
  const std::size_t dims[] = {1, 2, 3, 17, 31, 127};
  each([&](const axle::Device& d) {
    for (Layout l : {Layout::RowMajor, Layout::ColMajor})
      for (Op ta : {Op::N, Op::T})
        for (Op tb : {Op::N, Op::T})
          for (std::size_t m : dims)
            for (std::size_t n : {std::size_t{1}, std::size_t{3}, std::size_t{31}, std::size_t{127}}) {
              Case c;
              c.layout = l;
              c.ta = ta;
              c.tb = tb;
              c.m = m;
              c.n = n;
              c.k = (m * 7 + n) % 61 + 1;
              run_case<float, float, float>(d, c);
            }
  });
}

TEST_F(GemmTest, LargerOddShapes) {
  struct S {
    std::size_t m, n, k;
    Layout l;
    Op ta, tb;
  };
  const S shapes[] = {{255, 257, 127, Layout::RowMajor, Op::N, Op::N}, {257, 255, 255, Layout::ColMajor, Op::T, Op::N},
                      {1000, 1023, 1025, Layout::RowMajor, Op::N, Op::N}, {1025, 1000, 257, Layout::ColMajor, Op::N, Op::T},
                      {1023, 257, 1000, Layout::RowMajor, Op::T, Op::T}, {1, 1025, 1023, Layout::RowMajor, Op::N, Op::N},
                      {1025, 1, 1000, Layout::ColMajor, Op::T, Op::N}, {3, 2, 1025, Layout::RowMajor, Op::N, Op::T}};
  each([&](const axle::Device& d) {
    for (const S& s : shapes) {
      Case c;
      c.m = s.m;
      c.n = s.n;
      c.k = s.k;
      c.layout = s.l;
      c.ta = s.ta;
      c.tb = s.tb;
      run_case<float, float, float>(d, c);
    }
  });
}

TEST_F(GemmTest, TileBoundaries) {
  // Around MR (6, 8), NR (16, 32, 64), the packing k chunk and split-K.
  each([&](const axle::Device& d) {
    for (std::size_t m : {5, 6, 7, 8, 9, 11, 12, 13})
      for (std::size_t n : {15, 16, 17, 31, 32, 33, 63, 64, 65})
        for (std::size_t k : {1, 63, 64, 65}) {
          Case c;
          c.m = m;
          c.n = n;
          c.k = k;
          c.tb = (m + n) % 2 ? Op::T : Op::N;
          run_case<float, float, float>(d, c);
        }
    // Rows per work-item (MR x MB = 24 by default), wide column panels (64), and the
    // k chunk of the packing kernels (256).
    for (std::size_t m : {23, 24, 25})
      for (std::size_t n : {127, 128, 129})
        for (std::size_t k : {255, 256, 257}) {
          Case c;
          c.m = m;
          c.n = n;
          c.k = k;
          c.ta = k == 256 ? Op::T : Op::N;
          run_case<float, float, float>(d, c);
        }
    // Split K (few blocks, long k); n = 53 also splits over B read in place with a
    // shifted last column panel. How far k is split follows the compute units: planned
    // as for 1, 2 (this machine) and 64 of them, whatever the device has.
    for (std::size_t units : {1, 2, 64}) {
      axle::blas::detail::set_compute_units_for_testing(units);
      SCOPED_TRACE("planned for " + std::to_string(units) + " compute units");
      for (std::size_t k : {1023, 1024, 1025, 4097}) {
        Case c;
        c.m = k == 1025 ? 5 : 7;
        c.n = k == 1025 ? 53 : 33;
        c.k = k;
        c.beta = 0.5;
        c.bias = BiasMode::PerCol;
        c.act = Activation::GELU;
        run_case<float, float, float>(d, c);
      }
      Case narrow;  // the GEMV-like path splits k by the compute units too
      narrow.m = 9;
      narrow.n = 3;
      narrow.k = 8193;
      run_case<float, float, float>(d, narrow);
    }
    axle::blas::detail::set_compute_units_for_testing(0);
    // Deep k, cut into ~2048-deep pieces summed by the epilogue (packed B; both
    // layouts, batched, with every epilogue input).
    for (Layout l : {Layout::RowMajor, Layout::ColMajor}) {
      Case c;
      c.layout = l;
      c.m = 37;
      c.n = 70;
      c.k = 5000;
      c.tb = Op::T;
      c.beta = -0.75;
      c.bias = BiasMode::PerRow;
      c.act = Activation::ReLU;
      c.batch = 2;
      run_case<float, float, float>(d, c);
      Case g;
      g.layout = l;
      g.m = 130;
      g.n = 140;
      g.k = 4100;
      g.ta = Op::T;
      g.bias = BiasMode::PerCol;
      g.act = Activation::GELU;
      run_case<float, float, float>(d, g);
    }
  });
}

TEST_F(GemmTest, ShortWideAndTallNarrowPaths) {
  // Short C over a wide B (B read in place, partial last panel shifted), the same
  // transposed (computed as C^T), and a tall, narrow C (A read in place); batched,
  // both layouts, with epilogues.
  each([&](const axle::Device& d) {
    for (Layout l : {Layout::RowMajor, Layout::ColMajor})
      for (Op tb : {Op::N, Op::T}) {
        Case c;
        c.layout = l;
        c.tb = tb;
        c.m = 13;
        c.n = 700;
        c.k = 530;
        c.beta = 0.5;
        c.bias = BiasMode::PerRow;
        c.act = Activation::ReLU;
        c.ldb_pad = 3;
        run_case<float, float, float>(d, c);
        c.batch = 2;
        c.bias = BiasMode::PerCol;
        run_case<float, float, float>(d, c);
        // Wide enough for several adjacent column panels per work-item: groups of 2
        // (n = 1030, the last group one shifted panel) and of 4 (n = 2100).
        for (std::size_t n : {std::size_t{1030}, std::size_t{2100}}) {
          Case w = c;
          w.n = n;
          w.k = 300;
          w.ta = n == 2100 ? Op::T : Op::N;
          run_case<float, float, float>(d, w);
        }
        Case t;
        t.layout = l;
        t.tb = tb;
        t.ta = tb;
        t.m = 700;
        t.n = 21;
        t.k = 300;
        t.lda_pad = 1;
        t.act = Activation::GELU;
        run_case<float, float, float>(d, t);
      }
  });
}

TEST_F(GemmTest, NarrowGemvLikePaths) {
  // C at most 8 columns wide (GEMV-like): B's rows used in place (f32, stored n x k)
  // or packed, k split for few rows, strided batches with a shared B, and the same
  // through the transposed formulation (m <= 8 with B stored n x k), every epilogue.
  each([&](const axle::Device& d) {
    for (Op tb : {Op::N, Op::T})
      for (std::size_t n : {std::size_t{1}, std::size_t{5}, std::size_t{8}}) {
        Case c;
        c.tb = tb;
        c.m = 1000;
        c.n = n;
        c.k = 1003;
        c.beta = 0.5;
        c.bias = BiasMode::PerRow;
        c.act = Activation::GELU;
        c.ldb_pad = 3;
        c.ldc_pad = 2;
        run_case<float, float, float>(d, c);
        Case deep;  // few rows, long k: split
        deep.tb = tb;
        deep.m = 2;
        deep.n = n == 8 ? 2 : n;
        deep.k = 9000;
        deep.batch = 3;
        deep.zero_stride_b = n == 5;
        deep.bias = BiasMode::PerCol;
        run_case<float, float, float>(d, deep);
        Case wide;  // C^T = op(B)^T op(A)^T with n' = m <= 8
        wide.tb = Op::T;
        wide.ta = tb;
        wide.m = n;
        wide.n = 700;
        wide.k = 300;
        wide.act = Activation::ReLU;
        wide.bias = BiasMode::PerCol;
        wide.layout = n == 5 ? Layout::ColMajor : Layout::RowMajor;
        run_case<float, float, float>(d, wide);
      }
  });
}

TEST_F(GemmTest, LeadingDimensionsLargerThanMinimum) {
  each([&](const axle::Device& d) {
    for (Layout l : {Layout::RowMajor, Layout::ColMajor})
      for (Op ta : {Op::N, Op::T})
        for (Op tb : {Op::N, Op::T}) {
          Case c;
          c.layout = l;
          c.ta = ta;
          c.tb = tb;
          c.m = 37;
          c.n = 45;
          c.k = 29;
          c.lda_pad = 3;
          c.ldb_pad = 11;
          c.ldc_pad = 5;
          c.beta = 0.75;
          run_case<float, float, float>(d, c);
        }
  });
}

TEST_F(GemmTest, AlphaBetaCombinations) {
  each([&](const axle::Device& d) {
    const double ab[][2] = {{1, 0}, {2.5, 0}, {0, 0}, {0, 2}, {1, 1}, {-1, 0.5}, {0.5, -3}};
    for (auto& x : ab)
      for (bool nan_c : {false, true}) {
        if (nan_c && x[1] != 0) continue;
        Case c;
        c.m = 19;
        c.n = 40;
        c.k = 23;
        c.alpha = x[0];
        c.beta = x[1];
        c.nan_c = nan_c;
        run_case<float, float, float>(d, c);
        c.layout = Layout::ColMajor;
        run_case<float, float, float>(d, c);
      }
    for (double beta : {0.0, 1.5}) {  // k == 0 only scales C
      Case c;
      c.m = 9;
      c.n = 10;
      c.k = 0;
      c.beta = beta;
      c.nan_c = beta == 0;
      run_case<float, float, float>(d, c);
    }
  });
}

TEST_F(GemmTest, EmptyMOrNDoesNothing) {
  each([&](const axle::Device& d) {
    axle::Stream s = d.create_stream();
    axle::Buffer c = d.alloc<float>(16);
    std::vector<float> h(16, 7.0f), out(16);
    s.copy(h, c.view<float>());
    axle::Buffer a = d.alloc<float>(16), b = d.alloc<float>(16);
    axle::blas::gemm(s, Layout::RowMajor, Op::N, Op::N, 0, 4, 4, 1.0, a.view<float>(), 4, b.view<float>(), 4, 0.0,
                     c.view<float>(), 4);
    axle::blas::gemm(s, Layout::RowMajor, Op::N, Op::N, 4, 0, 4, 1.0, a.view<float>(), 4, b.view<float>(), 1, 0.0,
                     c.view<float>(), 1);
    s.copy(c.view<float>(), out);
    s.synchronize();
    EXPECT_EQ(out, h);
  });
}

TEST_F(GemmTest, StridedAndArrayBatched) {
  each([&](const axle::Device& d) {
    for (bool strided : {true, false})
      for (Layout l : {Layout::RowMajor, Layout::ColMajor}) {
        Case c;
        c.layout = l;
        c.m = 13;
        c.n = 35;
        c.k = 21;
        c.batch = 5;
        c.strided = strided;
        c.beta = 0.5;
        c.tb = Op::T;
        c.bias = BiasMode::PerRow;
        c.act = Activation::ReLU;
        run_case<float, float, float>(d, c);
      }
    Case c;  // one B shared by every batch
    c.m = 8;
    c.n = 33;
    c.k = 16;
    c.batch = 4;
    c.zero_stride_b = true;
    run_case<float, float, float>(d, c);
  });
}

TEST_F(GemmTest, EveryEpilogue) {
  each([&](const axle::Device& d) {
    for (Layout l : {Layout::RowMajor, Layout::ColMajor})
      for (BiasMode bm : {BiasMode::None, BiasMode::PerRow, BiasMode::PerCol})
        for (Activation a : {Activation::None, Activation::ReLU, Activation::GELU}) {
          Case c;
          c.layout = l;
          c.m = 21;
          c.n = 34;
          c.k = 17;
          c.bias = bm;
          c.act = a;
          c.alpha = 0.75;
          run_case<float, float, float>(d, c);
          c.beta = 0.25;
          run_case<float, float, half_t>(d, c);
        }
  });
}

TEST_F(GemmTest, HalfAndBfloat16) {
  each([&](const axle::Device& d) {
    for (Op ta : {Op::N, Op::T})
      for (Op tb : {Op::N, Op::T}) {
        Case c;
        c.ta = ta;
        c.tb = tb;
        c.m = 33;
        c.n = 47;
        c.k = 65;
        c.beta = 0.5;
        run_case<half_t, half_t, float>(d, c);
        run_case<half_t, half_t, half_t>(d, c);
        run_case<bfloat16_t, bfloat16_t, float>(d, c);
        run_case<bfloat16_t, bfloat16_t, bfloat16_t>(d, c);
        c.layout = Layout::ColMajor;
        c.bias = BiasMode::PerCol;
        c.act = Activation::GELU;
        run_case<half_t, float, bfloat16_t>(d, c);
      }
    Case big;
    big.m = 257;
    big.n = 255;
    big.k = 300;
    run_case<half_t, half_t, float>(d, big);
    run_case<bfloat16_t, bfloat16_t, bfloat16_t>(d, big);
  });
}

TEST_F(GemmTest, Float64WhereSupported) {
  each([&](const axle::Device& d) {
    if (!d.info().fp64) {
      axle::Stream s = d.create_stream();
      axle::Buffer a = d.alloc<double>(4);
      EXPECT_THROW(axle::blas::gemm(s, Layout::RowMajor, Op::N, Op::N, 2, 2, 1, 1.0, a.view<double>(), 1,
                                    a.view<double>(), 2, 0.0, a.view<double>(), 2),
                   axle::Unsupported);
      return;
    }
    for (Layout l : {Layout::RowMajor, Layout::ColMajor})
      for (Op ta : {Op::N, Op::T})
        for (Op tb : {Op::N, Op::T}) {
          Case c;
          c.layout = l;
          c.ta = ta;
          c.tb = tb;
          c.m = 37;
          c.n = 33;
          c.k = 41;
          c.beta = -0.5;
          c.bias = BiasMode::PerRow;
          c.act = Activation::GELU;
          run_case<double, double, double>(d, c);
        }
    Case c;
    c.m = 1;
    c.n = 65;
    c.k = 255;
    c.batch = 3;
    run_case<double, double, double>(d, c);
  });
}

// ---- validation ---------------------------------------------------------------------

template <typename E, typename F>
void expect_error_at(int line, F&& f, std::initializer_list<const char*> words) {
  SCOPED_TRACE("check at line " + std::to_string(line));
  try {
    f();
    ADD_FAILURE() << "no exception";
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const char* w : words) EXPECT_NE(msg.find(w), std::string::npos) << "'" << w << "' missing in: " << msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception type: " << e.what();
  }
}

TEST_F(GemmTest, BadInputsAreRejectedBeforeLaunch) {
  each([&](const axle::Device& d) {
    axle::Stream s = d.create_stream();
    axle::Buffer buf = d.alloc<float>(1000);
    auto v = buf.view<float>();
    auto small = buf.view<float>(0, 10);
    using axle::InvalidArgument;
    using axle::OutOfRange;
    const Layout R = Layout::RowMajor, C = Layout::ColMajor;
    // leading dimensions
    expect_error_at<InvalidArgument>(__LINE__, [&] { axle::blas::gemm(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 5, v, 5, 0.0, v, 5); },
                                  {"lda", "5", "6"});
    expect_error_at<InvalidArgument>(__LINE__, [&] { axle::blas::gemm(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, v, 4, 0.0, v, 5); },
                                  {"ldb", "4", "5"});
    expect_error_at<InvalidArgument>(__LINE__, [&] { axle::blas::gemm(s, C, Op::N, Op::N, 4, 5, 6, 1.0, v, 4, v, 6, 0.0, v, 3); },
                                  {"ldc", "3", "4"});
    expect_error_at<InvalidArgument>(__LINE__, [&] { axle::blas::gemm(s, R, Op::T, Op::N, 4, 5, 6, 1.0, v, 3, v, 5, 0.0, v, 5); },
                                  {"lda", "3", "4"});
    // operands that do not fit their views
    expect_error_at<OutOfRange>(__LINE__, [&] { axle::blas::gemm(s, R, Op::N, Op::N, 4, 5, 6, 1.0, small, 6, v, 5, 0.0, v, 5); },
                             {"operand A", "24", "10"});
    expect_error_at<OutOfRange>(__LINE__, [&] { axle::blas::gemm(s, R, Op::N, Op::T, 4, 5, 6, 1.0, v, 6, small, 6, 0.0, v, 5); },
                             {"operand B", "30", "10"});
    expect_error_at<OutOfRange>(__LINE__, [&] { axle::blas::gemm(s, C, Op::N, Op::N, 4, 5, 6, 1.0, v, 4, v, 6, 0.0, small, 4); },
                             {"operand C", "20", "10"});
    expect_error_at<OutOfRange>(__LINE__, [&] { axle::blas::gemm(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, v, 5, 0.0, v, 500); },
                             {"operand C", "ldc = 500", "1000"});
    // batches
    expect_error_at<OutOfRange>(__LINE__, 
        [&] { axle::blas::gemm_strided_batched(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, 24, v, 5, 30, 0.0, v, 5, 20, 60); },
        {"operand A", "stride_a = 24", "batch = 60"});
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] { axle::blas::gemm_strided_batched(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, 24, v, 5, 30, 0.0, v, 5, 10, 2); },
        {"stride_c", "overlap"});
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] { axle::blas::gemm_strided_batched(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, 24, v, 5, 30, 0.0, v, 5, 0, 2); },
        {"stride_c"});
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] { axle::blas::gemm_strided_batched(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, 24, v, 5, 30, 0.0, v, 5, 20, 0); },
        {"batch"});
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] {
          axle::blas::gemm_batched(s, R, Op::N, Op::N, 4, 5, 6, 1.0, std::vector<axle::BufferView<float>>{v, v}, 6,
                                   std::vector<axle::BufferView<float>>{v}, 5, 0.0,
                                   std::vector<axle::BufferView<float>>{v, v}, 5);
        },
        {"differ in length"});
    expect_error_at<OutOfRange>(__LINE__, 
        [&] {
          axle::blas::gemm_batched(s, R, Op::N, Op::N, 4, 5, 6, 1.0, std::vector<axle::BufferView<float>>{v, small}, 6,
                                   std::vector<axle::BufferView<float>>{v, v}, 5, 0.0,
                                   std::vector<axle::BufferView<float>>{v, v}, 5);
        },
        {"entry 1", "operand A"});
    // epilogue
    expect_error_at<OutOfRange>(__LINE__, 
        [&] {
          axle::blas::gemm(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, v, 5, 0.0, v, 5,
                           Epilogue::with_bias(BiasMode::PerCol, buf.view<float>(0, 3)));
        },
        {"bias", "5", "3"});
    expect_error_at<OutOfRange>(__LINE__, 
        [&] {
          axle::blas::gemm(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, v, 5, 0.0, v, 5,
                           Epilogue::with_bias(BiasMode::PerRow, buf.view<float>(0, 3)));
        },
        {"per-row", "4", "3"});
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] {
          Epilogue e;
          e.bias_mode = BiasMode::PerRow;
          axle::blas::gemm(s, R, Op::N, Op::N, 4, 5, 6, 1.0, v, 6, v, 5, 0.0, v, 5, e);
        },
        {"bias"});
    // types and views
    axle::Buffer dbuf = d.alloc<double>(100);
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] { axle::blas::gemm(s, R, Op::N, Op::N, 2, 2, 2, 1.0, dbuf.view<double>(), 2, v, 2, 0.0, v, 2); },
        {"double", "mixed"});
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] { axle::blas::gemm(s, R, Op::N, Op::N, 2, 2, 2, 1.0, axle::BufferView<float>(), 2, v, 2, 0.0, v, 2); },
        {"operand A", "empty"});
    expect_error_at<InvalidArgument>(__LINE__, 
        [&] {
          axle::blas::gemm(s, R, Op::N, Op::N, std::size_t(1) << 31, 2, 2, 1.0, v, 2, v, 2, 0.0, v, 2);
        },
        {"m = 2147483648"});
    // Sizes the kernels cannot index (their 32-bit row and column arithmetic would
    // wrap near INT_MAX) are refused before anything else is looked at.
    for (int which = 0; which < 3; ++which) {
      const std::size_t big = axle::blas::kMaxGemmDim + 1, one = 1;
      const std::size_t m = which == 0 ? big : one, n = which == 1 ? big : one, k = which == 2 ? big : one;
      const std::string want = std::string(which == 0 ? "m = " : which == 1 ? "n = " : "k = ") + std::to_string(big);
      expect_error_at<InvalidArgument>(__LINE__, [&] {
        axle::blas::gemm(s, R, Op::N, Op::N, m, n, k, 1.0, v, which == 2 ? big : 1, v, which == 1 ? big : 1, 0.0, v,
                         which == 1 ? big : 1);
      }, {want.c_str(), "2^30"});
    }
  });
}

// Caps the GEMM scratch regions and the grid rows of one launch for a scope.
class ScopedGemmLimits {
 public:
  ScopedGemmLimits(std::size_t scratch_bytes, std::size_t groups_y) {
    axle::blas::detail::set_limits_for_testing(scratch_bytes, groups_y);
    axle::blas::detail::scratch_high_water_bytes(true);
  }
  ~ScopedGemmLimits() { axle::blas::detail::set_limits_for_testing(0, 0); }
  ScopedGemmLimits(const ScopedGemmLimits&) = delete;
  ScopedGemmLimits& operator=(const ScopedGemmLimits&) = delete;
};

// A product whose scratch (packed operands, split-K partials) exceeds one allocation
// is computed in pieces: every region stays under the limit, results stay exact.
TEST_F(GemmTest, ScratchLargerThanOneAllocationIsSplit) {
  const std::size_t limit = 64 * 1024;
  each([&](const axle::Device& d) {
    ScopedGemmLimits lim(limit, 0);
    Case c;
    c.m = 300, c.n = 200, c.k = 400, c.beta = 0.5, c.bias = BiasMode::PerRow, c.act = Activation::ReLU;
    run_case<float, float, float>(d, c);  // packed A and B both too big: split along k, m and n
    c = Case{};
    c.m = 37, c.n = 70, c.k = 5000, c.tb = Op::T, c.beta = -0.75, c.bias = BiasMode::PerCol;
    c.act = Activation::GELU;
    run_case<float, float, float>(d, c);  // deep k: k pieces, bias and activation once
    c = Case{};
    c.layout = Layout::ColMajor, c.ta = Op::T, c.m = 150, c.n = 260, c.k = 90, c.bias = BiasMode::PerCol;
    run_case<float, float, float>(d, c);
    c = Case{};
    c.m = 64, c.n = 64, c.k = 64, c.batch = 7, c.beta = 1.0;
    run_case<float, float, float>(d, c);  // batch split
    c = Case{};
    c.m = 500, c.n = 3, c.k = 4100, c.batch = 3, c.bias = BiasMode::PerRow;
    run_case<float, float, float>(d, c);  // narrow path: packed op(B)^T and partials
    c = Case{};
    c.m = 200, c.n = 130, c.k = 300, c.beta = 0.25;
    run_case<half_t, float, half_t>(d, c);  // 16-bit A is always packed (to f32: twice its size)
    if (d.info().type == axle::DeviceType::CPU)  // the packed family runs on CPU devices
      EXPECT_LE(axle::blas::detail::scratch_high_water_bytes(), limit);
  });
}

// The same at full size under the device's real limit: a 16-bit A of 60% of the
// largest allocation packs to 120% of it (f32 panels) and must still run.
TEST_F(GemmTest, PackedOperandsBeyondTheLargestAllocation) {
  each([&](const axle::Device& d) {
    const std::uint64_t cap = d.info().max_alloc_bytes;
    if (d.info().type != axle::DeviceType::CPU || cap == 0 || cap > (std::uint64_t{4} << 30) ||
        d.info().global_mem_bytes < 2 * cap) {
      std::printf("[ SKIPPED  ] %s: needs a CPU device whose largest allocation is at most 4 GiB\n", d.id().c_str());
      return;
    }
    // A is filled on the device with a repeating 8-value pattern: A(i, p) = pat[(i * k + p) % 8]
    // (k odd, so consecutive rows see it at different phases).
    const std::size_t k = 259, n = 16;
    const std::size_t m = static_cast<std::size_t>(cap * 6 / 10) / (k * sizeof(half_t));
    const float pat[8] = {0.5f, -1.0f, 0.25f, 2.0f, -0.75f, 1.5f, -2.0f, 0.125f};
    auto a_val = [&](std::size_t i, std::size_t p) { return pat[(i * k + p) % 8]; };
    auto b_val = [](std::size_t p, std::size_t j) { return static_cast<float>(static_cast<int>((p * 5 + j) % 11) - 5) / 4; };
    axle::Stream s = d.create_stream();
    axle::Buffer da = d.alloc<half_t>(m * k + 8), db = d.alloc<float>(k * n), dc = d.alloc<float>(m * n);
    {
      struct alignas(16) Pattern {
        half_t h[8];
      } hp{};
      for (int q = 0; q < 8; ++q) hp.h[q] = axle::to_half(pat[q]);
      s.fill_bytes(da, 0, (m * k + 7) / 8 * 16, &hp, sizeof hp);
    }
    std::vector<float> hb(k * n);
    for (std::size_t p = 0; p < k; ++p)
      for (std::size_t j = 0; j < n; ++j) hb[p * n + j] = b_val(p, j);
    s.copy(hb, db.view<float>());
    const auto t0 = std::chrono::steady_clock::now();
    axle::blas::gemm(s, Layout::RowMajor, Op::N, Op::N, m, n, k, 1.0, da.view<half_t>(), k, db.view<float>(), n, 0.0,
                     dc.view<float>(), n);
    s.synchronize();
    std::printf("  %zu x %zu x %zu with a %.2f GB half A: %.2f s\n", m, n, k, m * k * 2e-9,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    std::vector<float> hc(m * n);
    s.copy(dc, hc);
    s.synchronize();
    std::size_t bad = 0;
    for (std::size_t i = 0; i < m; i += (i % 1000 == 999 ? 1 : 997)) {  // rows across the whole matrix
      for (std::size_t j = 0; j < n; ++j) {
        double want = 0;
        for (std::size_t p = 0; p < k; ++p) want += double(a_val(i, p)) * b_val(p, j);
        if (hc[i * n + j] != static_cast<float>(want) && ++bad <= 5)
          ADD_FAILURE() << "C(" << i << ", " << j << ") = " << hc[i * n + j] << ", expected " << want;
      }
    }
    for (std::size_t j = 0; j < n; ++j) {  // and the last row
      double want = 0;
      for (std::size_t p = 0; p < k; ++p) want += double(a_val(m - 1, p)) * b_val(p, j);
      EXPECT_EQ(hc[(m - 1) * n + j], static_cast<float>(want)) << "last row, column " << j;
    }
    EXPECT_EQ(bad, 0u);
  });
}

// Tall C is launched in pieces of rows (CUDA grids allow 65535 groups along y): the
// tiled kernel (the f64 path) and the epilogue-only calls (alpha == 0, k == 0).
TEST_F(GemmTest, TallProductsRunInPiecesOfRows) {
  each([&](const axle::Device& d) {
    {
      ScopedGemmLimits lim(0, 2);  // two groups of rows per launch
      for (double alpha : {1.0, 0.0}) {
        Case c;
        c.m = 301, c.n = 5, c.k = 7, c.alpha = alpha, c.beta = 0.5, c.bias = BiasMode::PerRow, c.act = Activation::ReLU;
        run_case<float, float, float>(d, c);
        c.ta = Op::T;
        if (d.info().fp64) run_case<double, double, double>(d, c);
      }
      Case c;
      c.m = 77, c.n = 9, c.k = 0, c.beta = -1.0, c.bias = BiasMode::PerRow;
      run_case<float, float, float>(d, c);
    }
    // Real size: more rows than 65535 groups of 16.
    const std::size_t m = 1100000;
    Case c;
    c.m = m, c.n = 1, c.k = 1, c.alpha = 0.0, c.beta = 2.0, c.offset = 0;
    run_case<float, float, float>(d, c);
    if (d.info().fp64) {
      c.alpha = 1.0, c.k = 2, c.bias = BiasMode::PerRow;
      run_case<double, double, double>(d, c);
    }
  });
}

// Scratch belongs to the stream: many short-lived streams running a GEMM each leave
// memory where it was.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define AXLE_GEMM_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define AXLE_GEMM_TEST_SANITIZED 1
#endif
#endif

TEST_F(GemmTest, ScratchIsFreedWithItsStream) {
#if defined(AXLE_GEMM_TEST_SANITIZED)
  GTEST_SKIP() << "resident memory is not the allocator's under a sanitizer (AddressSanitizer quarantines freed "
                  "blocks); the release build runs this test, and leaks are checked by LeakSanitizer";
#endif
  each([&](const axle::Device& d) {
    const std::size_t n = 512;
    axle::Buffer a = d.alloc<float>(n * n), b = d.alloc<float>(n * n), c = d.alloc<float>(n * n);
    {
      axle::Stream s = d.create_stream();
      s.fill(a.view<float>(), 1.0f);
      s.fill(b.view<float>(), 0.5f);
      s.synchronize();
    }
    auto rss = [] {
      std::ifstream f("/proc/self/statm");
      std::size_t pages = 0, resident = 0;
      f >> pages >> resident;
      return resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    };
    auto one = [&] {
      axle::Stream s = d.create_stream();
      axle::blas::gemm(s, Layout::RowMajor, Op::N, Op::N, n, n, n, 1.0, a.view<float>(), n, b.view<float>(), n, 0.0,
                       c.view<float>(), n);
      s.synchronize();
      return s.workspace_bytes();
    };
    for (int i = 0; i < 5; ++i) one();  // warm: kernels built, allocator settled
    const std::size_t before = rss();
    std::size_t per_stream = 0;
    for (int i = 0; i < 300; ++i) per_stream = std::max(per_stream, one());
    const std::size_t after = rss();
    std::vector<float> h(n * n);
    axle::Stream s = d.create_stream();
    s.copy(c, h);
    s.synchronize();
    EXPECT_EQ(h[0], 0.5f * n);
    EXPECT_EQ(h[n * n - 1], 0.5f * n);
    if (d.info().type == axle::DeviceType::CPU) {  // device memory is this process's memory
      EXPECT_GT(per_stream, 0u) << "the GEMM used no stream workspace";
      EXPECT_LT(after, before + 64 * 1024 * 1024)
          << "RSS grew from " << before / 1048576 << " MiB to " << after / 1048576 << " MiB over 300 streams holding "
          << per_stream / 1024 << " KiB of scratch each";
    }
  });
}

// The tolerance must catch a kernel that loses a term: at the deep-k and split-K sizes,
// dropping the last product (or the last 256) of every element of a random product
// puts elements outside it.
TEST(GemmTolerance, CatchesALostTerm) {
  std::mt19937 rng(17);
  std::uniform_real_distribution<double> dist(-1.0, 1.0);
  for (std::size_t k : {1025, 4097, 5000, 9000}) {
    for (std::size_t lost : {std::size_t{1}, std::size_t{256}}) {
      std::size_t caught = 0;
      const std::size_t elements = 64;
      for (std::size_t e = 0; e < elements; ++e) {
        double acc = 0, mag = 0, dropped = 0;
        for (std::size_t p = 0; p < k; ++p) {
          const double x = static_cast<double>(static_cast<float>(dist(rng))) * static_cast<float>(dist(rng));
          acc += x;
          mag += std::fabs(x);
          if (p >= k - lost) dropped += x;
        }
        const double got = static_cast<float>(acc - dropped);
        if (!(std::fabs(got - acc) <= gemm_tolerance(1.0 / (1 << 23), k, mag, acc, 1.0 / (1 << 23)))) ++caught;
      }
      // One element outside the tolerance fails run_case; most are.
      EXPECT_GT(caught, elements / 2) << "k = " << k << ", " << lost << " term(s) lost";
    }
    // And a correct float sum stays inside it.
    for (std::size_t e = 0; e < 16; ++e) {
      double acc = 0, mag = 0;
      float facc = 0;
      for (std::size_t p = 0; p < k; ++p) {
        const float a = static_cast<float>(dist(rng)), b = static_cast<float>(dist(rng));
        acc += double(a) * b;
        mag += std::fabs(double(a) * b);
        facc = std::fma(a, b, facc);
      }
      EXPECT_LE(std::fabs(facc - acc), gemm_tolerance(1.0 / (1 << 23), k, mag, acc, 1.0 / (1 << 23))) << "k = " << k;
    }
  }
}

// ---- tuning database ---------------------------------------------------------------

TEST(GemmTuning, ParsesAndMatchesBySpecificity) {
  namespace d = axle::blas::detail;
  const std::string text = R"({"format": "axle-tuning-1", "gemm": [
    {"type": "cpu", "kernel": "packed", "params": {"MR": 4, "VW": 8, "NV": 1}},
    {"vendor": "Acme", "type": "cpu", "kernel": "packed", "params": {"MR": 5}},
    {"vendor": "Acme", "device": "Acme X1", "dtype": "f16", "kernel": "packed", "params": {"MR": 7}},
    {"vendor": "Acme", "device": "Acme X1", "dtype": "f16", "bucket": "skinny", "kernel": "packed", "params": {"MR": 3}}
  ]})";
  const auto entries = d::parse_tuning(text, "test.json");
  ASSERT_EQ(entries.size(), 4u);
  EXPECT_EQ(entries[0].params.vw, 8);
  const auto round = d::parse_tuning(d::write_tuning(entries), "round.json");
  ASSERT_EQ(round.size(), 4u);
  EXPECT_EQ(round[3].bucket, "skinny");
  EXPECT_EQ(round[2].params.mr, 7);
  EXPECT_THROW(d::parse_tuning("{\"gemm\": [ {\"kernel\": \"packed\" ", "bad.json"), axle::ConfigError);
  EXPECT_THROW(d::parse_tuning("{\"gemm\": [{\"kernel\": \"warp\"}]}", "bad.json"), axle::ConfigError);

  // The matcher: candidates for a device, most specific first, the built-in default last.
  axle_test::TempDir dir;
  axle_test::ScopedEnv file("AXLE_TUNING_FILE", dir.write("tuning.json", text));
  axle_test::ScopedEnv shipped("AXLE_TUNING_SHIPPED", std::string("0"));
  axle::blas::reset_gemm_caches();
  axle::DeviceInfo acme;
  acme.vendor = "Acme";
  acme.name = "Acme X1";
  acme.type = axle::DeviceType::CPU;
  acme.preferred_vector_width_float = 16;
  auto mrs = [&](d::ElemType t, const char* bucket) {
    std::vector<int> out;
    for (const auto& p : d::candidate_params(acme, t, bucket)) out.push_back(p.origin == "built-in default" ? -p.mr : p.mr);
    return out;
  };
  EXPECT_EQ(mrs(d::ElemType::F16, "skinny"), (std::vector<int>{3, 7, 5, 4, -6}));
  EXPECT_EQ(mrs(d::ElemType::F16, "large"), (std::vector<int>{7, 5, 4, -6}));
  EXPECT_EQ(mrs(d::ElemType::F32, "large"), (std::vector<int>{5, 4, -6}));
  acme.vendor = "Other";
  acme.name = "Other Y";
  EXPECT_EQ(mrs(d::ElemType::F32, "large"), (std::vector<int>{4, -6}));
  acme.type = axle::DeviceType::GPU;
  const auto gpu = d::candidate_params(acme, d::ElemType::F32, "large");
  ASSERT_EQ(gpu.size(), 1u);
  EXPECT_EQ(gpu[0].family, d::KernelFamily::Tiled);
  axle::blas::reset_gemm_caches();
}

// Kernel parameters outside int's range (or not whole numbers) are errors naming the
// parameter, never a value converted out of range; huge tiles are refused, not
// overflowed, by the sanity check.
TEST(GemmTuning, ParametersMustBeIntegersInRange) {
  namespace d = axle::blas::detail;
  auto doc = [](const std::string& params) {
    return "{\"gemm\": [{\"kernel\": \"tiled\", \"params\": {" + params + "}}]}";
  };
  for (const char* bad : {"1e30", "-1e30", "2.5", "2147483648", "-2147483649", "18446744073709551615"})
    AXLE_EXPECT_THROW_MSG(d::parse_tuning(doc(std::string("\"BM\": ") + bad), "p.json"), axle::ConfigError,
                          {"p.json", "BM", "not an integer"});
  const auto ok = d::parse_tuning(doc("\"BM\": 2147483647, \"BN\": 2147483647, \"BK\": 64.0, \"TM\": -2147483648"),
                                  "p.json");
  ASSERT_EQ(ok.size(), 1u);
  EXPECT_EQ(ok[0].params.bm, 2147483647);
  EXPECT_EQ(ok[0].params.bk, 64);
  EXPECT_EQ(ok[0].params.tm, -2147483647 - 1);
  axle::DeviceInfo info;
  info.local_mem_bytes = 65536;
  EXPECT_EQ(ok[0].params.invalid_reason(info), "tile sizes must be positive");
  auto huge = ok[0].params;
  huge.tm = 1;
  huge.tn = 1;
  huge.bn = 2147483647;
  EXPECT_EQ(huge.invalid_reason(info), "local memory tiles exceed the device's");
  // A number beyond a double's range is the parser's overflow (found by fuzz_tuning):
  // a ConfigError naming the file like any other malformed document.
  AXLE_EXPECT_THROW_MSG(d::parse_tuning("{\"gemm\": [{\"kernel\": \"warp\", \"rarams\": {\"MR\": 1e3030}}]}", "o.json"),
                        axle::ConfigError, {"o.json", "1e3030"});
  // An absurd gflops note is dropped, so that writing the entry back stays in range.
  const auto fast = d::parse_tuning("{\"gemm\": [{\"kernel\": \"packed\", \"gflops\": 1e300}]}", "g.json");
  ASSERT_EQ(fast.size(), 1u);
  EXPECT_EQ(fast[0].gflops, 0.0);
  EXPECT_EQ(d::parse_tuning(d::write_tuning(fast), "g.json").at(0).gflops, 0.0);
}

TEST(GemmTuning, UserFileOverridesAndBadEntriesAreRejected) {
  auto devs = axle::devices();
  if (devs.empty()) GTEST_SKIP() << "no device";
  const axle::Device& dev = devs.front();
  const std::string path = std::string(::testing::TempDir()) + "axle_gemm_tuning_test.json";
  const bool cpu = dev.info().type == axle::DeviceType::CPU;
  {
    std::ofstream f(path);
    // The structurally invalid entry (MR=0) is the most specific and must be rejected;
    // the next one (a valid, unusual parameter set) must then be used.
    f << R"({"format": "axle-tuning-1", "gemm": [)"
      << (cpu ? R"({"kernel": "packed", "params": {"MR": 5, "VW": 8, "NV": 3, "MB": 2, "PACK_A": 1}},)"
              : R"({"kernel": "tiled", "params": {"BM": 32, "BN": 48, "BK": 8, "TM": 4, "TN": 3}},)")
      << R"({"device": )" << "\"" << dev.name() << "\""
      << R"(, "kernel": "packed", "params": {"MR": 0}}]})";
  }
  setenv("AXLE_TUNING_FILE", path.c_str(), 1);
  axle::reset_config_for_testing();
  axle::blas::reset_gemm_caches();
  const std::string plan = axle::blas::describe_gemm_plan(dev, 0, 300, 300, 300);
  EXPECT_NE(plan.find(cpu ? "MR=5" : "BN=48"), std::string::npos) << plan;
  EXPECT_NE(plan.find(path), std::string::npos) << plan;
  Case c;
  c.m = 29;
  c.n = 51;
  c.k = 70;
  c.beta = 0.5;
  c.ta = Op::T;
  run_case<float, float, float>(dev, c);
  c.k = 2000;  // split-K with the user parameters
  c.m = 5;
  c.n = 9;
  run_case<float, float, float>(dev, c);
  unsetenv("AXLE_TUNING_FILE");
  axle::reset_config_for_testing();
  axle::blas::reset_gemm_caches();
  std::remove(path.c_str());
}

// The parameters this machine's CPU gets are not the only ones users run: every built-in
// default (for 8- and 16-wide vectors, each shape bucket) and every shipped database
// entry is forced in turn through a user tuning file, with the shipped database off,
// and checked on odd shapes. describe_gemm_plan proves the forced set was the one used
// (a set that failed the dispatcher's self-check would silently give way to another).
TEST(GemmTuning, EveryDefaultAndShippedParameterSetIsCorrect) {
  namespace d = axle::blas::detail;
  std::vector<axle::Device> cpus;
  for (const auto& dev : axle::devices())
    if (dev.info().type == axle::DeviceType::CPU) cpus.push_back(dev);
  if (cpus.empty()) GTEST_SKIP() << "no CPU device: the packed kernels run on CPU devices only";
  std::vector<d::GemmParams> sets;
  auto add = [&](d::GemmParams p) {
    for (const auto& q : sets)
      if (q.str() == p.str()) return;
    sets.push_back(p);
  };
  for (int width : {8, 16}) {
    axle::DeviceInfo fake = cpus.front().info();
    fake.preferred_vector_width_float = width;
    for (const char* bucket : {"small", "skinny", "large"}) add(d::default_params(fake, d::ElemType::F32, bucket));
  }
  std::ifstream shipped_file(std::string(AXLE_SOURCE_DIR) + "/kernels/tuning/gemm.json");
  const std::string shipped_text((std::istreambuf_iterator<char>(shipped_file)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(shipped_text.empty());
  for (const auto& e : d::parse_tuning(shipped_text, "gemm.json"))
    if (e.params.family == d::KernelFamily::Packed) add(e.params);
  ASSERT_GE(sets.size(), 4u);
  std::printf("%zu parameter sets\n", sets.size());

  axle_test::TempDir dir;
  axle_test::ScopedEnv no_shipped("AXLE_TUNING_SHIPPED", std::string("0"));
  for (const auto& p : sets) {
    d::TuningEntry forced;
    forced.params = p;
    forced.note = "forced by the test";
    const std::string path = dir.write("forced.json", d::write_tuning({forced}));
    axle_test::ScopedEnv file("AXLE_TUNING_FILE", path);
    axle::reset_config_for_testing();
    axle::blas::reset_gemm_caches();
    SCOPED_TRACE(p.str());
    for (const auto& dev : cpus) {
      struct S {
        std::size_t m, n, k;
        Op ta, tb;
        double beta;
      };
      for (const S& sh : {S{29, 51, 70, Op::T, Op::N, 0.5}, S{7, 33, 1025, Op::N, Op::T, 0.0},
                          S{127, 129, 257, Op::N, Op::N, 0.0}, S{1, 127, 31, Op::T, Op::T, 1.0},
                          S{130, 140, 300, Op::T, Op::N, -0.5}}) {
        Case c;
        c.m = sh.m;
        c.n = sh.n;
        c.k = sh.k;
        c.ta = sh.ta;
        c.tb = sh.tb;
        c.beta = sh.beta;
        run_case<float, float, float>(dev, c);
        const std::string plan = axle::blas::describe_gemm_plan(dev, 0, sh.m, sh.n, sh.k);
        EXPECT_NE(plan.find(p.str()), std::string::npos) << "the forced set was not used: " << plan;
        EXPECT_NE(plan.find(path), std::string::npos) << plan;
      }
    }
  }
  axle::reset_config_for_testing();
  axle::blas::reset_gemm_caches();
}

}  // namespace

TEST(GemmEnvChoice, SpellingsUnsetAndUnknownValues) {
  enum class Pick { Auto, Off, Big };
  auto pick = [] {
    return axle::blas::detail::env_choice<Pick>(
        "AXLE_TEST_ENV_CHOICE", {{"auto", Pick::Auto}, {"off", Pick::Off}, {"0", Pick::Off}, {"big", Pick::Big}},
        Pick::Auto, "auto, off, big");
  };
  {
    axle_test::ScopedEnv unset("AXLE_TEST_ENV_CHOICE", std::nullopt);
    EXPECT_EQ(pick(), Pick::Auto);
  }
  const std::pair<const char*, Pick> cases[] = {
      {"", Pick::Auto}, {"auto", Pick::Auto}, {"off", Pick::Off}, {"0", Pick::Off}, {"big", Pick::Big},
      {"BIG", Pick::Auto}, {"bigger", Pick::Auto}};
  for (const auto& [value, want] : cases) {
    axle_test::ScopedEnv env("AXLE_TEST_ENV_CHOICE", std::string(value));
    EXPECT_EQ(pick(), want) << "AXLE_TEST_ENV_CHOICE=" << value;
  }
}
