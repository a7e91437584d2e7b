// The CUDA f32 SIMT GEMM path (kernels/src/cuda/sgemm_simt.cu, f32 inputs without
// TF32), checked through the public BLAS API against a double-precision host reference
// on every CUDA device present. Each tile configuration is pinned in turn with
// AXLE_GEMM_SIMT=large|medium|small besides the automatic choice.
//
// Most cases use small-integer data: every product and partial sum is then exact in
// f32 whatever the summation order, so an indexing error shows as a mismatch rather
// than hiding in rounding. The RealData test uses reals in [-1, 1] with a tolerance
// that grows with k. Large shapes are checked on a sample of rows and columns (edges,
// tile borders and a stride) while every element is checked to be finite.
//
// DISABLED_Throughput (--gtest_also_run_disabled_tests) prints TFLOP/s of each
// configuration at 4096^3, 8192^3 and the skinny shapes.
#include <gtest/gtest.h>

#include "test_util.hpp"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "axle/axle.hpp"
#include "axle/blas.hpp"

namespace {

using axle::bfloat16_t;
using axle::half_t;
using axle::Layout;
using axle::Op;
namespace blas = axle::blas;

std::vector<axle::Device> cuda_devices(std::string& why) {
  for (const auto& b : axle::backends())
    if (b.name == "cuda" && !b.available) why = "the CUDA backend is unavailable here: " + b.reason;
  std::vector<axle::Device> out = axle::devices("cuda");
  if (out.empty() && why.empty()) why = "no CUDA device present";
  return out;
}

// Pins AXLE_GEMM_SIMT for its lifetime ("" = the automatic choice); the path reads it at every call.
struct PinSimt : axle_test::ScopedEnv {
  explicit PinSimt(const std::string& value)
      : ScopedEnv("AXLE_GEMM_SIMT", value.empty() ? std::nullopt : std::optional<std::string>(value)) {}
};

const std::vector<std::string> kPins = {"large", "medium", "small", ""};  // "" = automatic choice

using axle_test::from_float;
using axle_test::to_f;

template <typename T>
double out_eps() {
  if (std::is_same_v<T, half_t>) return std::ldexp(1.0, -11);
  if (std::is_same_v<T, bfloat16_t>) return std::ldexp(1.0, -8);
  return std::ldexp(1.0, -24);
}

enum class Data { Exact, Real };

struct Case {
  Layout layout = Layout::RowMajor;
  Op ta = Op::N, tb = Op::N;
  std::size_t m = 1, n = 1, k = 1;
  double alpha = 1.0, beta = 0.0;
  bool nan_c = false;  // fill C with NaN (with beta == 0 it must not reach the result)
  blas::Activation act = blas::Activation::None;
  blas::BiasMode bias = blas::BiasMode::None;
  std::size_t batch = 1;
  bool share_b = false;     // stride_b = 0
  std::size_t pad = 0;      // extra leading-dimension elements
  std::size_t off = 0;      // element offset of the A, B and C views in their buffers
  std::size_t gap = 0;      // extra elements between batch entries
  Data data = Data::Exact;
};

std::string describe(const Case& c, const std::string& pin) {
  static const char* kActs[] = {"none", "relu", "gelu"};
  static const char* kBias[] = {"none", "row", "col"};
  return std::string("pin=") + (pin.empty() ? "auto" : pin) + " " + (c.layout == Layout::RowMajor ? "row" : "col") +
         " " + (c.ta == Op::N ? "N" : "T") + (c.tb == Op::N ? "N" : "T") + " m=" + std::to_string(c.m) +
         " n=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + " alpha=" + std::to_string(c.alpha) +
         " beta=" + std::to_string(c.beta) + (c.nan_c ? " nanC" : "") +
         " act=" + kActs[static_cast<int>(c.act)] + " bias=" + kBias[static_cast<int>(c.bias)] +
         " batch=" + std::to_string(c.batch) + (c.share_b ? " shareB" : "") + " pad=" + std::to_string(c.pad) +
         " off=" + std::to_string(c.off) + " gap=" + std::to_string(c.gap) +
         (c.data == Data::Real ? " real" : " exact");
}

// Rows/columns checked against the reference: all of a small dimension, else edges,
// 32-element tile borders and every 97th.
bool pick(std::size_t x, std::size_t dim) {
  return dim <= 300 || x < 2 || x + 2 >= dim || x % 32 == 0 || x % 32 == 31 || x % 97 == 0;
}

template <typename TO>
void run_case(const axle::Device& dev, const Case& c, const std::string& pin) {
  SCOPED_TRACE(dev.name() + ": " + describe(c, pin));
  PinSimt pinned(pin);
  const bool row = c.layout == Layout::RowMajor;
  const bool exact = c.data == Data::Exact;
  // Stored shapes in the caller's layout.
  const std::size_t a_r = c.ta == Op::N ? c.m : c.k, a_c = c.ta == Op::N ? c.k : c.m;
  const std::size_t b_r = c.tb == Op::N ? c.k : c.n, b_c = c.tb == Op::N ? c.n : c.k;
  auto at_least_1 = [](std::size_t x) { return x ? x : 1; };
  const std::size_t lda = at_least_1(row ? a_c : a_r) + c.pad, ldb = at_least_1(row ? b_c : b_r) + c.pad,
                    ldc = (row ? c.n : c.m) + c.pad;
  const std::size_t a_sz = lda * (row ? a_r : a_c) + c.gap, b_sz = ldb * (row ? b_r : b_c) + c.gap,
                    c_sz = ldc * (row ? c.m : c.n) + c.gap;
  const std::size_t b_batches = c.share_b ? 1 : c.batch;

  std::mt19937 rng(static_cast<unsigned>(c.m * 131 + c.n * 17 + c.k * 7 + c.batch));
  std::uniform_int_distribution<int> small_int(-4, 4), c_int(-8, 8);
  std::uniform_real_distribution<float> real(-1.f, 1.f);
  auto in_val = [&] { return exact ? static_cast<float>(small_int(rng)) : real(rng); };
  auto c_val = [&] { return exact ? static_cast<float>(c_int(rng)) : real(rng); };

  // Buffers hold `off` leading elements and one trailing element (sentinels) around
  // the operands.
  const float kSentinel = 12345.0f;
  std::vector<float> ha(c.off + a_sz * c.batch + 1, kSentinel), hb(c.off + b_sz * b_batches + 1, kSentinel);
  std::vector<TO> hc(c.off + c_sz * c.batch + 1, from_float<TO>(kSentinel));
  for (std::size_t i = c.off; i + 1 < ha.size(); ++i) ha[i] = in_val();
  for (std::size_t i = c.off; i + 1 < hb.size(); ++i) hb[i] = in_val();
  for (std::size_t i = c.off; i + 1 < hc.size(); ++i)
    hc[i] = from_float<TO>(c.nan_c ? std::numeric_limits<float>::quiet_NaN() : c_val());
  const std::size_t nbias = c.bias == blas::BiasMode::PerRow ? c.m : c.n;
  std::vector<float> hbias(nbias);
  for (auto& x : hbias) x = exact ? static_cast<float>(c_int(rng)) * 0.5f : real(rng);

  axle::Stream s = dev.create_stream();
  axle::Buffer da = dev.alloc<float>(ha.size()), db = dev.alloc<float>(hb.size()), dc = dev.alloc<TO>(hc.size());
  axle::Buffer dbias = dev.alloc<float>(nbias ? nbias : 1);
  s.copy(ha, da.view<float>());
  s.copy(hb, db.view<float>());
  s.copy(hc, dc.view<TO>());
  if (nbias) s.copy(hbias, dbias.view<float>(0, nbias));

  blas::Epilogue ep;
  ep.activation = c.act;
  ep.bias_mode = c.bias;
  if (c.bias != blas::BiasMode::None) ep.bias = dbias.view<float>(0, nbias);
  blas::gemm_strided_batched(s, c.layout, c.ta, c.tb, c.m, c.n, c.k, c.alpha, da.view<float>(c.off), lda, a_sz,
                             db.view<float>(c.off), ldb, c.share_b ? 0 : b_sz, c.beta, dc.view<TO>(c.off), ldc,
                             c_sz, c.batch, ep);
  std::vector<TO> out(hc.size());
  s.copy(dc.view<TO>(), out);
  s.synchronize();

  auto at = [&](const std::vector<float>& v, std::size_t base, std::size_t ld, std::size_t r, std::size_t col) {
    return static_cast<double>(v[base + (row ? r * ld + col : col * ld + r)]);
  };
  const double u = std::ldexp(1.0, -24);
  std::size_t bad = 0;
  auto fail = [&](const std::string& what) {
    if (++bad <= 6) ADD_FAILURE() << what;
  };
  for (std::size_t bz = 0; bz < c.batch; ++bz) {
    const std::size_t ab = c.off + bz * a_sz, bb = c.off + (c.share_b ? 0 : bz * b_sz), cb = c.off + bz * c_sz;
    for (std::size_t i = 0; i < c.m; ++i)
      for (std::size_t j = 0; j < c.n; ++j) {
        const std::size_t ci = cb + (row ? i * ldc + j : j * ldc + i);
        const double got = static_cast<double>(to_f(out[ci]));
        if (!std::isfinite(got)) {
          fail("batch " + std::to_string(bz) + " C(" + std::to_string(i) + ", " + std::to_string(j) +
               ") is not finite: " + std::to_string(got));
          continue;
        }
        if (!pick(i, c.m) || !pick(j, c.n)) continue;
        double acc = 0, mag = 0;
        for (std::size_t p = 0; p < c.k; ++p) {
          const double x = c.ta == Op::N ? at(ha, ab, lda, i, p) : at(ha, ab, lda, p, i);
          const double y = c.tb == Op::N ? at(hb, bb, ldb, p, j) : at(hb, bb, ldb, j, p);
          acc += x * y;
          mag += std::fabs(x * y);
        }
        double ref = c.alpha * acc, scale = std::fabs(c.alpha) * mag;
        if (c.beta != 0.0) {
          const double cv = c.beta * static_cast<double>(to_f(hc[ci]));
          ref += cv;
          scale += std::fabs(cv);
        }
        if (c.bias == blas::BiasMode::PerRow) ref += hbias[i];
        if (c.bias == blas::BiasMode::PerCol) ref += hbias[j];
        if (c.bias != blas::BiasMode::None) scale += 8.0;
        if (c.act == blas::Activation::ReLU) ref = ref > 0 ? ref : 0;
        if (c.act == blas::Activation::GELU) ref = 0.5 * ref * (1.0 + std::erf(ref / std::sqrt(2.0)));
        // Exact data: only the final rounding (and erf) differ. Real data: f32
        // accumulation, bounded by (k + 2) u times the magnitude of the terms.
        double tol = std::fabs(ref) * (out_eps<TO>() + 4 * u) + 1e-6;
        if (!exact) tol += scale * (static_cast<double>(c.k) + 2) * u * 2;
        if (c.act == blas::Activation::GELU) tol += 1e-6 * (std::fabs(ref) + 1.0) + (exact ? 0.0 : scale * 1e-6);
        if (!(std::fabs(got - ref) <= tol))
          fail("batch " + std::to_string(bz) + " C(" + std::to_string(i) + ", " + std::to_string(j) + ") = " +
               std::to_string(got) + ", expected " + std::to_string(ref) + " (tolerance " + std::to_string(tol) + ")");
      }
  }
  EXPECT_EQ(bad, 0u) << "mismatching elements";
  // Nothing outside the m x n matrices may be written: the leading sentinels, the
  // padding columns, the gaps between batch entries.
  std::size_t touched = 0;
  for (std::size_t x = 0; x < out.size(); ++x) {
    bool inside = false;
    if (x >= c.off) {
      const std::size_t within = (x - c.off) % c_sz, bz = (x - c.off) / c_sz;
      const std::size_t major = within / ldc, minor = within % ldc;
      inside = bz < c.batch && within < ldc * (row ? c.m : c.n) && minor < (row ? c.n : c.m) &&
               major < (row ? c.m : c.n);
    }
    if (inside) continue;
    const float before = to_f(hc[x]), after = to_f(out[x]);
    if (!(before == after || (std::isnan(before) && std::isnan(after))))
      if (++touched <= 3) ADD_FAILURE() << "element " << x << " of C outside the matrices was written";
  }
  EXPECT_EQ(touched, 0u);
}

class SimtGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    devs_ = cuda_devices(why);
    if (devs_.empty()) GTEST_SKIP() << why;
  }
  std::vector<axle::Device> devs_;
};

const std::vector<std::vector<std::size_t>> kShapes = {{1, 1, 1},       {2, 2, 2},     {17, 17, 17},  {127, 129, 255},
                                                       {129, 127, 65},  {255, 257, 129}, {257, 255, 17}, {2, 257, 1000},
                                                       {1000, 2, 129}};

TEST_F(SimtGemm, ShapesTransposesLayouts) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (const auto& sh : kShapes)
        for (Layout lay : {Layout::RowMajor, Layout::ColMajor})
          for (Op ta : {Op::N, Op::T})
            for (Op tb : {Op::N, Op::T}) {
              Case c;
              c.layout = lay;
              c.ta = ta;
              c.tb = tb;
              c.m = sh[0];
              c.n = sh[1];
              c.k = sh[2];
              run_case<float>(dev, c, pin);
            }
}

TEST_F(SimtGemm, ThousandShapes) {
  for (const auto& dev : devs_)
    for (const auto& pin : {std::string("large"), std::string("")})
      for (Layout lay : {Layout::RowMajor, Layout::ColMajor})
        for (Op ta : {Op::N, Op::T})
          for (Op tb : {Op::N, Op::T}) {
            Case c;
            c.layout = lay;
            c.ta = ta;
            c.tb = tb;
            c.m = 1000;
            c.n = 1025;
            c.k = 1025;
            c.beta = 0.5;
            run_case<float>(dev, c, pin);
          }
}

TEST_F(SimtGemm, SkinnyShapes) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (const auto& sh : std::vector<std::vector<std::size_t>>{{4096, 64, 4096}, {64, 4096, 4096}})
        for (Op ta : {Op::N, Op::T})
          for (Op tb : {Op::N, Op::T}) {
            Case c;
            c.ta = ta;
            c.tb = tb;
            c.m = sh[0];
            c.n = sh[1];
            c.k = sh[2];
            run_case<float>(dev, c, pin);
          }
}

TEST_F(SimtGemm, LeadingDimensionsAndOffsets) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (std::size_t pad : {1, 3, 4})
        for (std::size_t off : {0, 1, 4})
          for (Layout lay : {Layout::RowMajor, Layout::ColMajor})
            for (Op ta : {Op::N, Op::T})
              for (Op tb : {Op::N, Op::T}) {
                Case c;
                c.layout = lay;
                c.ta = ta;
                c.tb = tb;
                c.m = 131;
                c.n = 67;
                c.k = 130;
                c.pad = pad;
                c.off = off;
                c.beta = 1.0;
                run_case<float>(dev, c, pin);
              }
}

TEST_F(SimtGemm, AlphaBetaAndNaNInC) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (Op ta : {Op::N, Op::T})
        for (double alpha : {1.0, -0.5, 1.5, 0.0})
          for (double beta : {0.0, 1.0, -2.0, 0.25}) {
            Case c;
            c.ta = ta;
            c.tb = ta == Op::N ? Op::T : Op::N;
            c.m = 129;
            c.n = 131;
            c.k = 67;
            c.alpha = alpha;
            c.beta = beta;
            c.nan_c = beta == 0.0;
            run_case<float>(dev, c, pin);
          }
}

TEST_F(SimtGemm, ZeroK) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (double beta : {0.0, 0.5}) {
        Case c;
        c.m = 37;
        c.n = 41;
        c.k = 0;
        c.alpha = 1.5;
        c.beta = beta;
        c.nan_c = beta == 0.0;
        c.bias = blas::BiasMode::PerCol;
        run_case<float>(dev, c, pin);
      }
}

TEST_F(SimtGemm, Epilogues) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (Layout lay : {Layout::RowMajor, Layout::ColMajor})
        for (auto bias : {blas::BiasMode::None, blas::BiasMode::PerRow, blas::BiasMode::PerCol})
          for (auto act : {blas::Activation::None, blas::Activation::ReLU, blas::Activation::GELU})
            for (double beta : {0.0, 0.5}) {
              Case c;
              c.layout = lay;
              c.tb = Op::T;
              c.m = 130;
              c.n = 133;
              c.k = 70;
              c.alpha = 0.25;  // keeps GELU inputs where its curve matters
              c.beta = beta;
              c.nan_c = beta == 0.0;
              c.bias = bias;
              c.act = act;
              run_case<float>(dev, c, pin);
            }
}

TEST_F(SimtGemm, StridedBatch) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (bool share_b : {false, true})
        for (std::size_t gap : {0, 3})
          for (Op ta : {Op::N, Op::T}) {
            Case c;
            c.ta = ta;
            c.m = 70;
            c.n = 129;
            c.k = 45;
            c.batch = 3;
            c.share_b = share_b;
            c.gap = gap;
            c.beta = -1.0;
            c.bias = blas::BiasMode::PerRow;
            run_case<float>(dev, c, pin);
          }
}

TEST_F(SimtGemm, BatchBeyondGridLimit) {
  // More batch entries than a CUDA grid has in z (65535): the kernel loops over them.
  for (const auto& dev : devs_)
    for (const auto& pin : {std::string("large"), std::string("")}) {
      Case c;
      c.m = 2;
      c.n = 3;
      c.k = 5;
      c.batch = 70001;
      c.beta = 1.0;
      run_case<float>(dev, c, pin);
    }
}

TEST_F(SimtGemm, HalfAndBfloatOutput) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (Layout lay : {Layout::RowMajor, Layout::ColMajor})
        for (double beta : {0.0, 1.0}) {
          Case c;
          c.layout = lay;
          c.ta = Op::T;
          c.m = 127;
          c.n = 130;
          c.k = 33;
          c.beta = beta;
          c.nan_c = beta == 0.0;
          c.bias = blas::BiasMode::PerCol;
          c.act = blas::Activation::ReLU;
          run_case<half_t>(dev, c, pin);
          run_case<bfloat16_t>(dev, c, pin);
          c.pad = 1;
          c.off = 1;
          run_case<half_t>(dev, c, pin);
        }
}

TEST_F(SimtGemm, RealData) {
  for (const auto& dev : devs_)
    for (const auto& pin : kPins)
      for (const auto& sh : std::vector<std::vector<std::size_t>>{{257, 255, 4096}, {1025, 1000, 1000}, {64, 4096, 4096}}) {
        Case c;
        c.tb = Op::T;
        c.m = sh[0];
        c.n = sh[1];
        c.k = sh[2];
        c.alpha = 0.75;
        c.beta = -0.5;
        c.data = Data::Real;
        c.act = blas::Activation::GELU;
        run_case<float>(dev, c, pin);
      }
}

// Timing of each configuration (prints; no pass/fail).
TEST_F(SimtGemm, DISABLED_Throughput) {
  struct Shape {
    std::size_t m, n, k;
  };
  for (const auto& dev : devs_) {
    axle::Stream s = dev.create_stream();
    for (const Shape sh : {Shape{4096, 4096, 4096}, Shape{8192, 8192, 8192}, Shape{4096, 64, 4096},
                           Shape{64, 4096, 4096}, Shape{2048, 2048, 2048}, Shape{1024, 1024, 1024}}) {
      axle::Buffer a = dev.alloc<float>(sh.m * sh.k), b = dev.alloc<float>(sh.k * sh.n), c = dev.alloc<float>(sh.m * sh.n);
      s.fill(a.view<float>(), 0.5f);
      s.fill(b.view<float>(), 0.25f);
      s.fill(c.view<float>(), 0.0f);
      for (const std::string pin : {"auto", "large", "medium", "small", "off"})
        for (int lay = 0; lay < 4; ++lay) {
          if (lay > 0 && !(sh.m == 4096 && sh.n == 4096 && (pin == "auto" || pin == "large"))) continue;
          const Op ta = (lay & 1) ? Op::T : Op::N, tb = (lay & 2) ? Op::T : Op::N;
          PinSimt pinned(pin);
          const std::size_t lda = ta == Op::N ? sh.k : sh.m, ldb = tb == Op::N ? sh.n : sh.k;
          auto run = [&] {
            blas::gemm(s, Layout::RowMajor, ta, tb, sh.m, sh.n, sh.k, 1.0, a.view<float>(), lda, b.view<float>(), ldb,
                       0.0, c.view<float>(), sh.n);
          };
          run();
          run();
          s.synchronize();
          const int iters = sh.m * sh.n * sh.k >= (std::size_t(1) << 36) ? 3 : 10;
          axle::Event t0 = s.record();
          for (int i = 0; i < iters; ++i) run();
          axle::Event t1 = s.record();
          s.synchronize();
          const double ms = axle::elapsed_ms(t0, t1) / iters;
          const double tflops = 2.0 * sh.m * sh.n * sh.k / (ms * 1e-3) / 1e12;
          std::printf("%s f32 %s%s %zux%zux%zu AXLE_GEMM_SIMT=%s: %.3f ms, %.1f TFLOP/s\n", dev.name().c_str(),
                      ta == Op::N ? "N" : "T", tb == Op::N ? "N" : "T", sh.m, sh.n, sh.k, pin.c_str(), ms, tflops);
        }
    }
  }
}

}  // namespace
