// CUDA tensor-core GEMM paths (mma.sync on sm_80+, wgmma1 / wgmma2 on sm_90a), checked
// through the public BLAS API against a double-precision host reference, on every CUDA
// device present. The paths can be pinned with AXLE_GEMM_TC=mma, wgmma1 or wgmma2 (run
// this binary once with each, and once unset); a pinned wgmma kernel is used for every
// aligned shape on sm_90, so every test below then checks that kernel's results
// directly. By default the dispatcher chooses (wgmma2, then wgmma1, then mma, each
// wgmma kernel after a self-check).
#include <gtest/gtest.h>

#include "test_util.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <type_traits>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "../kernels/src/gemm/gemm_tensorcore.hpp"

namespace {

using axle::bfloat16_t;
using axle::half_t;
using axle::Layout;
using axle::Op;
namespace blas = axle::blas;

int sm_of(const axle::Device& d) {
  const std::string& a = d.info().architecture;
  if (a.rfind("sm_", 0) != 0) return 0;
  int v = 0;
  for (std::size_t i = 3; i < a.size() && a[i] >= '0' && a[i] <= '9'; ++i) v = v * 10 + (a[i] - '0');
  return v;
}

// Devices that have tensor-core paths; the reason when there is none.
std::vector<axle::Device> tc_devices(std::string& why) {
  std::vector<axle::Device> out;
  for (const auto& b : axle::backends())
    if (b.name == "cuda" && !b.available) why = "the CUDA backend is unavailable here: " + b.reason;
  for (const auto& d : axle::devices("cuda")) {
    if (sm_of(d) >= 80)
      out.push_back(d);
    else
      why = d.name() + " (" + d.info().architecture + ") has no sm_80+ tensor cores";
  }
  if (out.empty() && why.empty()) why = "no CUDA device present";
  return out;
}

using axle_test::from_float;
using axle_test::to_f;

// Relative rounding of one output element of type T (0 for float).
template <typename T>
double out_eps() {
  if (std::is_same_v<T, half_t>) return std::ldexp(1.0, -10);
  if (std::is_same_v<T, bfloat16_t>) return std::ldexp(1.0, -7);
  return 0.0;
}

struct Case {
  Layout layout = Layout::RowMajor;
  Op ta = Op::N, tb = Op::N;
  std::size_t m = 1, n = 1, k = 1;
  double alpha = 1.0, beta = 0.0;
  bool nan_c = false;  // fill C with NaN (only meaningful with beta == 0)
  blas::Activation act = blas::Activation::None;
  blas::BiasMode bias = blas::BiasMode::None;
  std::size_t batch = 1;
  bool share_b = false;  // stride_b = 0
  bool tf32 = false;
  std::size_t pad = 0;  // extra leading-dimension elements
};

std::string describe(const Case& c) {
  return std::string(c.layout == Layout::RowMajor ? "row" : "col") + " " + (c.ta == Op::N ? "N" : "T") +
         (c.tb == Op::N ? "N" : "T") + " m=" + std::to_string(c.m) + " n=" + std::to_string(c.n) +
         " k=" + std::to_string(c.k) + " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) +
         " batch=" + std::to_string(c.batch) + " pad=" + std::to_string(c.pad);
}

template <typename TI, typename TO>
void run_case(const axle::Device& dev, const Case& c) {
  SCOPED_TRACE(dev.name() + ": " + describe(c));
  const bool row = c.layout == Layout::RowMajor;
  // Stored shapes in the caller's layout.
  const std::size_t a_r = c.ta == Op::N ? c.m : c.k, a_c = c.ta == Op::N ? c.k : c.m;
  const std::size_t b_r = c.tb == Op::N ? c.k : c.n, b_c = c.tb == Op::N ? c.n : c.k;
  const std::size_t lda = (row ? a_c : a_r) + c.pad, ldb = (row ? b_c : b_r) + c.pad, ldc = (row ? c.n : c.m) + c.pad;
  const std::size_t a_sz = lda * (row ? a_r : a_c), b_sz = ldb * (row ? b_r : b_c), c_sz = ldc * (row ? c.m : c.n);
  const std::size_t b_batches = c.share_b ? 1 : c.batch;

  std::mt19937 rng(static_cast<unsigned>(c.m * 131 + c.n * 17 + c.k));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<TI> ha(a_sz * c.batch), hb(b_sz * b_batches);
  std::vector<TO> hc(c_sz * c.batch);
  for (auto& x : ha) x = from_float<TI>(dist(rng));
  for (auto& x : hb) x = from_float<TI>(dist(rng));
  for (auto& x : hc) x = from_float<TO>(c.nan_c ? std::numeric_limits<float>::quiet_NaN() : dist(rng));
  const std::size_t nbias = c.bias == blas::BiasMode::PerRow ? c.m : c.n;
  std::vector<float> hbias(nbias);
  for (auto& x : hbias) x = dist(rng);

  axle::Stream s = dev.create_stream();
  axle::Buffer da = dev.alloc<TI>(ha.size()), db = dev.alloc<TI>(hb.size()), dc = dev.alloc<TO>(hc.size());
  axle::Buffer dbias = dev.alloc<float>(nbias);
  s.copy(ha, da.view<TI>());
  s.copy(hb, db.view<TI>());
  s.copy(hc, dc.view<TO>());
  s.copy(hbias, dbias.view<float>());

  blas::Epilogue ep;
  ep.activation = c.act;
  ep.bias_mode = c.bias;
  if (c.bias != blas::BiasMode::None) ep.bias = dbias.view<float>();
  blas::GemmOptions opt;
  opt.allow_tf32 = c.tf32;
  blas::gemm_strided_batched(s, c.layout, c.ta, c.tb, c.m, c.n, c.k, c.alpha, da.view<TI>(), lda, a_sz,
                             db.view<TI>(), ldb, c.share_b ? 0 : b_sz, c.beta, dc.view<TO>(), ldc, c_sz, c.batch,
                             ep, opt);
  std::vector<TO> out(hc.size());
  s.copy(dc.view<TO>(), out);
  s.synchronize();

  auto at = [&](const std::vector<TI>& v, std::size_t base, std::size_t ld, std::size_t r, std::size_t col) {
    return static_cast<double>(to_f(v[base + (row ? r * ld + col : col * ld + r)]));
  };
  const double in_eps = c.tf32 ? std::ldexp(1.0, -10) : 1e-5;  // tf32 input rounding, else f32 accumulation
  std::size_t bad = 0;
  for (std::size_t bz = 0; bz < c.batch; ++bz) {
    const std::size_t ab = bz * a_sz, bb = c.share_b ? 0 : bz * b_sz, cb = bz * c_sz;
    for (std::size_t i = 0; i < c.m; ++i)
      for (std::size_t j = 0; j < c.n; ++j) {
        double acc = 0, mag = 0;
        for (std::size_t p = 0; p < c.k; ++p) {
          const double x = c.ta == Op::N ? at(ha, ab, lda, i, p) : at(ha, ab, lda, p, i);
          const double y = c.tb == Op::N ? at(hb, bb, ldb, p, j) : at(hb, bb, ldb, j, p);
          acc += x * y;
          mag += std::fabs(x * y);
        }
        const std::size_t ci = cb + (row ? i * ldc + j : j * ldc + i);
        double ref = c.alpha * acc;
        if (c.beta != 0.0) ref += c.beta * static_cast<double>(to_f(hc[ci]));
        if (c.bias == blas::BiasMode::PerRow) ref += hbias[i];
        if (c.bias == blas::BiasMode::PerCol) ref += hbias[j];
        if (c.act == blas::Activation::ReLU) ref = ref > 0 ? ref : 0;
        if (c.act == blas::Activation::GELU) ref = 0.5 * ref * (1.0 + std::erf(ref / std::sqrt(2.0)));
        const double got = static_cast<double>(to_f(out[ci]));
        const double tol = (std::fabs(c.alpha) * mag + 1.0) * (in_eps * 4 + 1e-6) + std::fabs(ref) * out_eps<TO>() +
                           1e-5 + (c.beta != 0.0 ? std::fabs(c.beta) * 1e-6 : 0.0);
        if (!(std::fabs(got - ref) <= tol)) {
          if (++bad <= 5)
            ADD_FAILURE() << "batch " << bz << " C(" << i << ", " << j << ") = " << got << ", expected " << ref
                          << " (tolerance " << tol << ")";
        }
      }
  }
  EXPECT_EQ(bad, 0u) << "mismatching elements";
  // Padding columns of C must be untouched.
  if (c.pad)
    for (std::size_t bz = 0; bz < c.batch; ++bz)
      for (std::size_t r = 0; r < (row ? c.m : c.n); ++r)
        for (std::size_t x = ldc - c.pad; x < ldc; ++x) {
          const std::size_t ci = bz * c_sz + r * ldc + x;
          const float before = to_f(hc[ci]), after = to_f(out[ci]);
          if (!(before == after || (std::isnan(before) && std::isnan(after)))) {
            ADD_FAILURE() << "padding element " << ci << " of C was written";
            return;
          }
        }
}

class TensorCoreGemm : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    devs_ = tc_devices(why);
    if (devs_.empty()) GTEST_SKIP() << why;
  }
  std::vector<axle::Device> devs_;
};

const std::vector<std::vector<std::size_t>> kShapes = {
    {1, 1, 1}, {17, 17, 17}, {127, 129, 65}, {257, 255, 100}, {1000, 1025, 77}, {64, 1025, 257}, {300, 520, 264}};

// Every shape of kShapes with every transpose pair, on every device.
template <typename T>
void shapes_and_transposes(const std::vector<axle::Device>& devs) {
  for (const auto& dev : devs)
    for (const auto& sh : kShapes)
      for (Op ta : {Op::N, Op::T})
        for (Op tb : {Op::N, Op::T}) {
          Case c;
          c.ta = ta;
          c.tb = tb;
          c.m = sh[0];
          c.n = sh[1];
          c.k = sh[2];
          run_case<T, T>(dev, c);
        }
}

TEST_F(TensorCoreGemm, ShapesAndTransposesF16) { shapes_and_transposes<half_t>(devs_); }

TEST_F(TensorCoreGemm, ShapesAndTransposesBf16) { shapes_and_transposes<bfloat16_t>(devs_); }

// Large enough that the dispatcher takes the wgmma path on sm_90 (m, n >= 256, k >= 128).
TEST_F(TensorCoreGemm, LargeAlignedAllTransposes) {
  for (const auto& dev : devs_)
    for (Op ta : {Op::N, Op::T})
      for (Op tb : {Op::N, Op::T}) {
        Case c;
        c.ta = ta;
        c.tb = tb;
        c.m = 520;
        c.n = 776;
        c.k = 392;
        run_case<bfloat16_t, float>(dev, c);
        c.m = 512;
        c.n = 768;
        c.k = 320;
        run_case<half_t, half_t>(dev, c);
      }
}

TEST_F(TensorCoreGemm, OutputTypesAndColumnMajor) {
  for (const auto& dev : devs_) {
    Case c;
    c.m = 129;
    c.n = 67;
    c.k = 300;
    run_case<half_t, float>(dev, c);
    run_case<bfloat16_t, float>(dev, c);
    run_case<half_t, bfloat16_t>(dev, c);
    c.layout = Layout::ColMajor;
    c.ta = Op::T;
    run_case<bfloat16_t, bfloat16_t>(dev, c);
    c.m = 300;
    c.n = 280;
    c.k = 256;
    run_case<half_t, float>(dev, c);
  }
}

TEST_F(TensorCoreGemm, AlphaBetaAndNanInC) {
  for (const auto& dev : devs_)
    for (std::size_t m : {33u, 300u}) {
      Case c;
      c.m = m;
      c.n = 260;
      c.k = 136;
      c.alpha = 0.5;
      c.beta = 0.0;
      c.nan_c = true;  // beta == 0: C must not be read
      run_case<half_t, float>(dev, c);
      run_case<bfloat16_t, bfloat16_t>(dev, c);
      c.nan_c = false;
      c.alpha = -1.25;
      c.beta = 0.75;
      run_case<half_t, float>(dev, c);
      run_case<bfloat16_t, half_t>(dev, c);
    }
}

TEST_F(TensorCoreGemm, Epilogues) {
  for (const auto& dev : devs_)
    for (std::size_t m : {45u, 384u})
      for (auto bias : {blas::BiasMode::None, blas::BiasMode::PerRow, blas::BiasMode::PerCol})
        for (auto act : {blas::Activation::None, blas::Activation::ReLU, blas::Activation::GELU}) {
          Case c;
          c.m = m;
          c.n = 272;
          c.k = 200;
          c.beta = 0.5;
          c.bias = bias;
          c.act = act;
          run_case<bfloat16_t, float>(dev, c);
        }
}

TEST_F(TensorCoreGemm, StridedBatchAndUnalignedLeadingDimensions) {
  for (const auto& dev : devs_) {
    Case c;
    c.m = 70;
    c.n = 90;
    c.k = 50;
    c.batch = 3;
    run_case<half_t, half_t>(dev, c);
    c.share_b = true;
    c.tb = Op::T;
    run_case<bfloat16_t, float>(dev, c);
    c.share_b = false;
    c.pad = 3;  // odd leading dimensions: element-wise loads
    c.ta = Op::T;
    run_case<half_t, float>(dev, c);
    c.m = 300;
    c.n = 260;
    c.k = 136;
    c.pad = 8;
    c.batch = 2;
    run_case<bfloat16_t, float>(dev, c);
  }
}

TEST_F(TensorCoreGemm, Tf32OptIn) {
  for (const auto& dev : devs_)
    for (Op ta : {Op::N, Op::T})
      for (Op tb : {Op::N, Op::T}) {
        Case c;
        c.ta = ta;
        c.tb = tb;
        c.m = 131;
        c.n = 77;
        c.k = 93;
        c.tf32 = true;
        run_case<float, float>(dev, c);
        c.pad = 1;
        run_case<float, float>(dev, c);
      }
}

// Large enough for the wgmma paths in auto mode on sm_90 (m, n >= 256, k >= 128,
// m * n * k >= 64 Mi), aligned rows: tf32 through wgmma2 (all four operand layouts; the
// MN-major ones are transposed on the way into shared memory).
TEST_F(TensorCoreGemm, LargeAlignedTf32AllTransposes) {
  for (const auto& dev : devs_)
    for (Op ta : {Op::N, Op::T})
      for (Op tb : {Op::N, Op::T}) {
        Case c;
        c.ta = ta;
        c.tb = tb;
        c.m = 520;
        c.n = 776;
        c.k = 392;
        c.tf32 = true;
        run_case<float, float>(dev, c);
      }
  for (const auto& dev : devs_) {
    Case c;  // padded leading dimensions that keep 16-byte rows; k not a multiple of 32
    c.m = 264;
    c.n = 520;
    c.k = 500;
    c.pad = 4;
    c.tf32 = true;
    c.alpha = 0.5;
    c.beta = -1.0;
    run_case<float, float>(dev, c);
    c.ta = Op::T;
    c.layout = Layout::ColMajor;
    run_case<float, float>(dev, c);
  }
}

// More output tiles than SMs: the persistent wgmma2 kernel walks several tiles per CTA
// across batch entries (the pipeline's stage phases carry over between tiles), with
// full tiles (paired stores, alpha/beta) and edge tiles.
TEST_F(TensorCoreGemm, PersistentManyTilesAndBatches) {
  for (const auto& dev : devs_) {
    Case c;
    c.m = 256;
    c.n = 512;
    c.k = 128;
    c.batch = 36;  // 144 tiles of 128 x 256
    c.alpha = 0.5;
    c.nan_c = true;
    run_case<bfloat16_t, float>(dev, c);
    c.nan_c = false;
    c.beta = 0.5;
    c.tb = Op::T;
    run_case<half_t, half_t>(dev, c);
    c.m = 392;  // edge tiles in m and n, k not a multiple of 64
    c.n = 600;
    c.k = 200;
    c.batch = 8;
    c.beta = 0.0;
    c.ta = Op::T;
    c.tb = Op::N;
    run_case<bfloat16_t, bfloat16_t>(dev, c);
  }
}

// Which kernel served a call: a pinned wgmma kernel must really run (not silently fall
// back), and in auto mode the self-checked wgmma2 must be chosen for large aligned
// problems on sm_90 (a failed self-check makes this test fail: see stderr).
TEST_F(TensorCoreGemm, ChosenPath) {
  using namespace axle::blas::detail;
  const char* pin_env = std::getenv("AXLE_GEMM_TC");
  const std::string pin = pin_env ? pin_env : "auto";
  for (const auto& dev : devs_) {
    axle::Stream s = dev.create_stream();
    for (int elem = 0; elem < 3; ++elem) {
      const std::size_t m = 512, n = 512, k = 256;
      const std::size_t es = elem == 2 ? 4 : 2;
      axle::Buffer a = dev.alloc<std::uint16_t>(m * k * es / 2), b = dev.alloc<std::uint16_t>(k * n * es / 2);
      axle::Buffer c = dev.alloc<float>(m * n);
      // Small integers: exact in f16, bf16 and tf32, and every dot product is exact in
      // f32, so the whole of C must equal the host product bit for bit.
      std::mt19937 rng(1234u + static_cast<unsigned>(elem));
      std::uniform_int_distribution<int> small(-3, 3);
      std::vector<float> ha(m * k), hb(k * n);
      for (auto& v : ha) v = static_cast<float>(small(rng));
      for (auto& v : hb) v = static_cast<float>(small(rng));
      auto upload = [&](const std::vector<float>& h, axle::Buffer& buf) {
        if (elem == 2) {
          s.copy(h, buf.view<float>());
        } else {
          std::vector<std::uint16_t> bits(h.size());
          for (std::size_t i = 0; i < h.size(); ++i)
            bits[i] = elem == 1 ? from_float<bfloat16_t>(h[i]).bits : from_float<half_t>(h[i]).bits;
          s.copy(bits, buf.view<std::uint16_t>());
        }
        s.synchronize();
      };
      upload(ha, a);
      upload(hb, b);
      s.fill(c.view<float>(), std::numeric_limits<float>::quiet_NaN());
      GemmDesc d;
      d.m = m;
      d.n = n;
      d.k = k;
      d.lda = k;
      d.ldb = n;
      d.ldc = n;
      d.a_type = d.b_type = elem == 2 ? ElemType::F32 : (elem == 1 ? ElemType::BF16 : ElemType::F16);
      d.allow_tf32 = elem == 2;
      d.c_type = ElemType::F32;
      d.a = &a;
      d.b = &b;
      d.c = &c;
      const bool served = try_gemm_tensorcore(s, d);
      s.synchronize();
      const std::string got = last_tensorcore_path();
      std::string want;
      if (pin == "off") {
        EXPECT_FALSE(served);
        continue;
      }
      EXPECT_TRUE(served);
      if (sm_of(dev) != 90 || pin == "mma")
        want = "mma";
      else if (pin == "wgmma1")
        want = elem == 2 ? "mma" : "wgmma1";
      else
        want = "wgmma2";  // wgmma2, wgmma, auto
      EXPECT_EQ(got, want) << dev.name() << " elem " << elem << " AXLE_GEMM_TC=" << pin;
      std::vector<float> out(m * n);
      s.copy(c.view<float>(), out);
      s.synchronize();
      std::size_t bad = 0;
      for (std::size_t i = 0; i < m && bad < 8; ++i)
        for (std::size_t j = 0; j < n && bad < 8; ++j) {
          double ref = 0;
          for (std::size_t p = 0; p < k; ++p) ref += double(ha[i * k + p]) * double(hb[p * n + j]);
          if (out[i * n + j] != static_cast<float>(ref)) {
            ++bad;
            ADD_FAILURE() << got << " C[" << i << "," << j << "] = " << out[i * n + j] << ", expected " << ref;
          }
        }
    }
  }
}

// The internal entry point serves every supported descriptor on an sm_80+ device.
TEST_F(TensorCoreGemm, EntryPointAcceptsSupportedDescriptors) {
  using namespace axle::blas::detail;
  const char* pin = std::getenv("AXLE_GEMM_TC");
  if (pin && std::string(pin) == "off") GTEST_SKIP() << "AXLE_GEMM_TC=off disables the tensor-core paths";
  for (const auto& dev : devs_) {
    axle::Stream s = dev.create_stream();
    axle::Buffer a = dev.alloc<half_t>(64 * 64), b = dev.alloc<half_t>(64 * 64), c = dev.alloc<float>(64 * 64);
    GemmDesc d;
    d.m = d.n = d.k = 64;
    d.lda = d.ldb = d.ldc = 64;
    d.a_type = d.b_type = ElemType::F16;
    d.c_type = ElemType::F32;
    d.a = &a;
    d.b = &b;
    d.c = &c;
    s.fill(a.view<std::uint16_t>(), std::uint16_t{0x3c00});  // 1.0
    s.fill(b.view<std::uint16_t>(), std::uint16_t{0x3c00});
    EXPECT_TRUE(try_gemm_tensorcore(s, d)) << "f16 descriptor not served on " << dev.name();
    std::vector<float> out(64 * 64);
    s.copy(c.view<float>(), out);
    s.synchronize();
    EXPECT_EQ(out[0], 64.f);
    EXPECT_EQ(out[64 * 64 - 1], 64.f);
    d.a_type = d.b_type = ElemType::F32;
    EXPECT_FALSE(try_gemm_tensorcore(s, d)) << "f32 without allow_tf32 must not use tensor cores";
    d.a_type = ElemType::F16;
    d.b_type = ElemType::BF16;
    EXPECT_FALSE(try_gemm_tensorcore(s, d)) << "mixed 16-bit input types are not served";
  }
}

}  // namespace
