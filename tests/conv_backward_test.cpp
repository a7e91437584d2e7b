// Backward convolution passes (axle::dnn, Direction::BackwardData / BackwardWeights) on
// every available device: against a double-accumulation reference on odd shapes
// (strides, padding, dilation, groups, depthwise, both layouts, 16-bit types), against
// finite differences of the forward pass, bit-identical dw from run to run, alpha/beta
// accumulation and the bias gradient.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/dnn.hpp"
#include "conv_reference.hpp"
#include "test_util.hpp"

using axle::bfloat16_t;
using axle::half_t;
namespace dnn = axle::dnn;

namespace {

using namespace axle_test::conv;

// Visits every (x index, w index, y index) triple the convolution multiplies.
template <typename F>
void for_each_tap(const dnn::Conv2dDesc& d, F&& f) {
  const std::size_t P = d.out_h(), Q = d.out_w(), cg = d.c / d.groups, kg = d.k / d.groups;
  for (std::size_t n = 0; n < d.n; ++n)
    for (std::size_t k = 0; k < d.k; ++k)
      for (std::size_t p = 0; p < P; ++p)
        for (std::size_t q = 0; q < Q; ++q)
          for (std::size_t c = 0; c < cg; ++c)
            for (std::size_t r = 0; r < d.r; ++r)
              for (std::size_t s = 0; s < d.s; ++s) {
                const long ih = long(p * d.stride_h + r * d.dilation_h) - long(d.pad_top);
                const long iw = long(q * d.stride_w + s * d.dilation_w) - long(d.pad_left);
                if (ih < 0 || iw < 0 || ih >= long(d.h) || iw >= long(d.w)) continue;
                f(x_index(d, n, (k / kg) * cg + c, ih, iw), w_index(d, k, c, r, s), y_index(d, n, k, p, q));
              }
}

dnn::Conv2dDesc make(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::size_t k, std::size_t r,
                     std::size_t s, dnn::TensorLayout l) {
  dnn::Conv2dDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s, d.layout = l;
  return d;
}

class ConvBackward : public ::testing::TestWithParam<axle::Device> {
 protected:
  const axle::Device& dev() const { return GetParam(); }

  // Runs both backward passes (dw with db) and checks them against the reference.
  // Every algorithm that claims the layer, forced (and Auto).
  template <typename TX, typename TY>
  void check(const dnn::Conv2dDesc& d, float alpha = 1.0f, float beta = 0.0f) {
    const dnn::Conv2dTypes types{dnn::DataTypeOf<TX>::value, dnn::DataTypeOf<TX>::value, dnn::DataTypeOf<TY>::value};
    for (dnn::Algorithm a : {dnn::Algorithm::Auto, dnn::Algorithm::Direct, dnn::Algorithm::Gemm1x1,
                             dnn::Algorithm::ImplicitGemm, dnn::Algorithm::Winograd, dnn::Algorithm::TensorCore,
                             dnn::Algorithm::CudaSimt, dnn::Algorithm::TapGemm, dnn::Algorithm::Depthwise}) {
      const bool data = a == dnn::Algorithm::Auto || dnn::supports(dev(), a, d, types, dnn::Direction::BackwardData);
      const bool weights =
          a == dnn::Algorithm::Auto || dnn::supports(dev(), a, d, types, dnn::Direction::BackwardWeights);
      if (a == dnn::Algorithm::ImplicitGemm && data) {
        // bwd_data runs the forward implicit GEMM: each of its kernels, forced.
        bool first = true;
        for (const char* variant : {"packed", "inplace", "tiled"}) {
          axle_test::ScopedEnv env("AXLE_CONV_IGEMM", variant);
          SCOPED_TRACE(std::string("AXLE_CONV_IGEMM=") + variant);
          check_with<TX, TY>(d, a, alpha, beta, data, weights && first);
          first = false;
        }
      } else if (data || weights) {
        check_with<TX, TY>(d, a, alpha, beta, data, weights);
      }
    }
  }

  template <typename TX, typename TY>
  void check_with(const dnn::Conv2dDesc& d, dnn::Algorithm algo, float alpha, float beta, bool do_data = true,
                  bool do_weights = true) {
    SCOPED_TRACE(d.str() + " " + dnn::to_string(algo) + " alpha " + std::to_string(alpha) + " beta " +
                 std::to_string(beta));
    std::mt19937 rng(static_cast<unsigned>(d.c * 31 + d.k * 7 + d.h + d.r * 3 + d.groups));
    std::uniform_real_distribution<double> dist(-1.0, 1.0);
    std::vector<TX> hx(d.x_elems()), hw(d.w_elems()), hdx(d.x_elems()), hdw(d.w_elems());
    std::vector<TY> hdy(d.y_elems());
    std::vector<float> hdb(d.k);
    for (auto* v : {&hx, &hw, &hdx, &hdw})
      for (auto& e : *v) e = from_double<TX>(dist(rng));
    for (auto& e : hdy) e = from_double<TY>(dist(rng));
    for (auto& e : hdb) e = static_cast<float>(dist(rng));
    axle::Stream s = dev().create_stream();
    axle::Buffer bx = dev().alloc<TX>(hx.size()), bw = dev().alloc<TX>(hw.size()), bdx = dev().alloc<TX>(hdx.size()),
                 bdw = dev().alloc<TX>(hdw.size()), bdy = dev().alloc<TY>(hdy.size()), bdb = dev().alloc<float>(d.k);
    s.copy(hx, bx.view<TX>());
    s.copy(hw, bw.view<TX>());
    s.copy(hdx, bdx.view<TX>());
    s.copy(hdw, bdw.view<TX>());
    s.copy(hdy, bdy.view<TY>());
    s.copy(hdb, bdb.view<float>());
    const dnn::Conv2dTypes types{dnn::DataTypeOf<TX>::value, dnn::DataTypeOf<TX>::value, dnn::DataTypeOf<TY>::value};
    dnn::Conv2dOptions opt, wopt;
    opt.algorithm = do_data ? algo : dnn::Algorithm::Direct;
    wopt.algorithm = do_weights ? algo : dnn::Algorithm::Direct;
    dnn::Conv2dPlan data(dev(), d, types, dnn::Direction::BackwardData, {}, opt);
    dnn::Conv2dPlan weights(dev(), d, types, dnn::Direction::BackwardWeights, dnn::Conv2dFusion{true, false, {}}, wopt);
    if (algo != dnn::Algorithm::Auto && do_data) EXPECT_EQ(data.algorithm(), algo);
    if (algo != dnn::Algorithm::Auto && do_weights) EXPECT_EQ(weights.algorithm(), algo);
    EXPECT_NE(weights.describe().find("bwd_weights"), std::string::npos) << weights.describe();
    dnn::Conv2dArgs a;
    a.x = bdx.view<TX>();
    a.w = bw.view<TX>();
    a.y = bdy.view<TY>();
    a.alpha = alpha, a.beta = beta;
    data.run(s, a);
    dnn::Conv2dArgs b;
    b.x = bx.view<TX>();
    b.w = bdw.view<TX>();
    b.y = bdy.view<TY>();
    b.bias = bdb.view<float>();
    b.alpha = alpha, b.beta = beta;
    weights.run(s, b);
    std::vector<TX> gdx(hdx.size()), gdw(hdw.size());
    std::vector<float> gdb(d.k);
    s.copy(bdx, gdx);
    s.copy(bdw, gdw);
    s.copy(bdb, gdb);
    s.synchronize();
    // References: dx[xi] += dy[yi] w[wi]; dw[wi] += dy[yi] x[xi]; with magnitudes for the bound.
    std::vector<double> rdx(hdx.size()), mdx(hdx.size()), rdw(hdw.size()), mdw(hdw.size()), rdb(d.k), mdb(d.k);
    for_each_tap(d, [&](std::size_t xi, std::size_t wi, std::size_t yi) {
      const double g = to_double(hdy[yi]);
      rdx[xi] += g * to_double(hw[wi]);
      mdx[xi] += std::fabs(g * to_double(hw[wi]));
      rdw[wi] += g * to_double(hx[xi]);
      mdw[wi] += std::fabs(g * to_double(hx[xi]));
    });
    for (std::size_t n = 0; n < d.n; ++n)
      for (std::size_t k = 0; k < d.k; ++k)
        for (std::size_t p = 0; p < d.out_h(); ++p)
          for (std::size_t q = 0; q < d.out_w(); ++q) {
            rdb[k] += to_double(hdy[y_index(d, n, k, p, q)]);
            mdb[k] += std::fabs(to_double(hdy[y_index(d, n, k, p, q)]));
          }
    const double u = 1.0 / (1 << 23);
    const double terms_dx = double(d.k / d.groups) * d.r * d.s + 4;
    const double terms_dw = double(d.n) * d.out_h() * d.out_w() + 4;
    std::size_t bad = 0;
    auto expect_close = [&](const char* what, std::size_t i, double got, double ref, double mag, double old,
                            double terms, double eps_out) {
      const double want = alpha * ref + beta * old;
      const double tol = 2 * u * terms * (std::fabs(alpha) * mag + std::fabs(beta * old)) +
                         2 * eps_out * (std::fabs(want) + std::fabs(alpha) * mag) + 1e-30;
      if (!(std::fabs(got - want) <= tol) && ++bad <= 6)
        ADD_FAILURE() << what << "[" << i << "] = " << got << ", expected " << want << " (tolerance " << tol << ")";
    };
    for (std::size_t i = 0; i < rdx.size(); ++i)
      expect_close("dx", i, to_double(gdx[i]), rdx[i], mdx[i], to_double(hdx[i]), terms_dx, out_eps<TX>());
    for (std::size_t i = 0; i < rdw.size(); ++i)
      expect_close("dw", i, to_double(gdw[i]), rdw[i], mdw[i], to_double(hdw[i]), terms_dw, out_eps<TX>());
    for (std::size_t k = 0; k < d.k; ++k) expect_close("db", k, gdb[k], rdb[k], mdb[k], hdb[k], terms_dw, 0);
    EXPECT_EQ(bad, 0u);
  }

  // dw and db of `runs` runs are the same bits, through the one-shot call or through one
  // plan (whose describe() is returned). dw's buffer is refilled before each run: beta 0
  // never reads it.
  std::string expect_deterministic_weights(const dnn::Conv2dDesc& d, dnn::Algorithm algo, bool one_shot,
                                           int runs = 3, unsigned seed = 5) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> hx(d.x_elems()), hdy(d.y_elems());
    for (auto& v : hx) v = dist(rng);
    for (auto& v : hdy) v = dist(rng);
    axle::Stream s = dev().create_stream();
    axle::Buffer bx = dev().alloc<float>(hx.size()), bdy = dev().alloc<float>(hdy.size()),
                 bdw = dev().alloc<float>(d.w_elems()), bdb = dev().alloc<float>(d.k);
    s.copy(hx, bx.view<float>());
    s.copy(hdy, bdy.view<float>());
    dnn::Conv2dArgs a;
    a.x = bx.view<float>();
    a.y = bdy.view<float>();
    a.w = bdw.view<float>();
    a.bias = bdb.view<float>();
    dnn::Conv2dOptions opt;
    opt.algorithm = algo;
    std::unique_ptr<dnn::Conv2dPlan> plan;
    if (!one_shot)
      plan = std::make_unique<dnn::Conv2dPlan>(dev(), d, dnn::Conv2dTypes{}, dnn::Direction::BackwardWeights,
                                               dnn::Conv2dFusion{true, false, {}}, opt);
    std::vector<float> first, again(d.w_elems()), db1(d.k), db2(d.k);
    for (int run = 0; run < runs; ++run) {
      s.fill(bdw.view<float>(), static_cast<float>(run));
      if (plan)
        plan->run(s, a);
      else
        dnn::conv2d_backward_weights(s, d, a, opt);
      s.copy(bdw, again);
      s.copy(bdb, run == 0 ? db1 : db2);
      s.synchronize();
      if (run == 0) {
        first = again;
      } else {
        EXPECT_EQ(std::memcmp(first.data(), again.data(), first.size() * sizeof(float)), 0) << "dw, run " << run;
        EXPECT_EQ(std::memcmp(db1.data(), db2.data(), db1.size() * sizeof(float)), 0) << "db, run " << run;
      }
    }
    return plan ? plan->describe() : std::string();
  }
};

INSTANTIATE_TEST_SUITE_P(Devices, ConvBackward, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ConvBackward);

TEST_P(ConvBackward, OddShapesStridesPaddingDilation) {
  for (auto l : {dnn::TensorLayout::NCHW, dnn::TensorLayout::NHWC}) {
    for (std::size_t stride : {1, 2, 3})
      for (std::size_t dil : {1, 2}) {
        dnn::Conv2dDesc d = make(2, 3, 9, 8, 5, 3, 3, l);
        d.stride_h = stride, d.stride_w = stride == 3 ? 2 : stride;
        d.dilation_h = dil, d.dilation_w = dil == 2 ? 1 : 2;
        d.pad_top = 1, d.pad_bottom = 2, d.pad_left = 0, d.pad_right = 1;
        check<float, float>(d);
      }
    check<float, float>(make(1, 1, 1, 1, 1, 1, 1, l));
    check<float, float>(make(3, 17, 7, 13, 5, 1, 1, l));
    check<float, float>(make(2, 24, 5, 3, 40, 1, 1, l));  // 1x1: GEMMs
    dnn::Conv2dDesc s1 = make(2, 19, 9, 7, 37, 3, 3, l);  // stride 1: the forward kernels over dy
    s1.pad_top = 1, s1.pad_bottom = 0, s1.pad_left = 2, s1.pad_right = 1;
    check<float, float>(s1);
    check<float, float>(s1, 0.5f, 1.0f);
    dnn::Conv2dDesc s5 = make(1, 8, 6, 11, 70, 5, 3, l);
    s5.pad_top = s5.pad_bottom = 2, s5.pad_left = s5.pad_right = 1;
    check<float, float>(s5);
    dnn::Conv2dDesc g1 = make(2, 6, 4, 5, 9, 1, 1, l);
    g1.groups = 3;
    check<float, float>(g1);
    check<half_t, float>(g1);
    check<float, float>(g1, 0.5f, 1.0f);
    dnn::Conv2dDesc c1 = make(1, 3, 13, 13, 4, 7, 7, l);
    c1.stride_h = c1.stride_w = 2, c1.pad_top = c1.pad_left = 3, c1.pad_bottom = c1.pad_right = 2;
    check<float, float>(c1);
  }
}

TEST_P(ConvBackward, GroupsDepthwiseAndSixteenBitTypes) {
  for (auto l : {dnn::TensorLayout::NCHW, dnn::TensorLayout::NHWC}) {
    for (std::size_t g : {2, 3}) {
      dnn::Conv2dDesc d = make(2, 2 * g, 7, 6, 3 * g, 3, 3, l);
      d.groups = g, d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      check<float, float>(d);
    }
    for (std::size_t mult : {1, 2}) {
      dnn::Conv2dDesc d = make(3, 5, 8, 9, 5 * mult, 3, 3, l);
      d.groups = 5, d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1, d.stride_h = d.stride_w = mult;
      check<float, float>(d);
    }
    dnn::Conv2dDesc d = make(2, 4, 6, 7, 6, 3, 3, l);
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    check<half_t, half_t>(d);
    check<bfloat16_t, bfloat16_t>(d);
    check<bfloat16_t, float>(d);
    check<float, half_t>(d);
  }
}

// The implicit GEMM of the weight gradient: x read in place (NHWC f32, C / G a multiple
// of the channel block) or packed, filter blocks past K / G, several channel blocks and
// runs of filter blocks, rows split across work-items and walked in chunks.
TEST_P(ConvBackward, ImplicitGemmWeightsBlocksSplitsAndPacking) {
  for (auto l : {dnn::TensorLayout::NHWC, dnn::TensorLayout::NCHW}) {
    auto pad = [](dnn::Conv2dDesc d, std::size_t t, std::size_t b, std::size_t le, std::size_t ri) {
      d.pad_top = t, d.pad_bottom = b, d.pad_left = le, d.pad_right = ri;
      return d;
    };
    check<float, float>(pad(make(3, 64, 13, 7, 17, 3, 3, l), 1, 1, 1, 1));
    check<float, float>(pad(make(1, 128, 7, 7, 80, 3, 3, l), 1, 1, 1, 1));
    check<float, float>(make(1, 5, 1, 1, 3, 1, 1, l));
    check<float, float>(pad(make(1, 5, 1, 1, 3, 3, 3, l), 1, 1, 1, 1));
    check<float, float>(pad(make(3, 16, 30, 30, 16, 3, 3, l), 1, 1, 1, 1));
    dnn::Conv2dDesc sd = pad(make(2, 17, 13, 13, 5, 3, 3, l), 2, 1, 0, 2);
    sd.stride_h = 2, sd.stride_w = 3, sd.dilation_h = 2;
    check<float, float>(sd);
    dnn::Conv2dDesc g = pad(make(2, 64, 6, 6, 10, 3, 3, l), 1, 1, 1, 1);
    g.groups = 2;
    check<float, float>(g);
    check<float, float>(g, -0.5f, 0.75f);
    check<half_t, half_t>(pad(make(1, 32, 7, 7, 12, 3, 3, l), 1, 1, 1, 1));
  }
}

// Strided 1x1 layers: backward data as a GEMM over dy's pixels spread into dx.
TEST_P(ConvBackward, StridedOneByOne) {
  for (auto l : {dnn::TensorLayout::NHWC, dnn::TensorLayout::NCHW}) {
    dnn::Conv2dDesc d = make(3, 17, 7, 13, 5, 1, 1, l);
    d.stride_h = 2, d.stride_w = 3;
    EXPECT_EQ(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardData).algorithm(), dnn::Algorithm::Gemm1x1);
    check<float, float>(d);
    check<float, float>(d, 0.5f, 1.0f);
    dnn::Conv2dDesc g = make(1, 8, 6, 6, 12, 1, 1, l);
    g.stride_h = g.stride_w = 2, g.groups = 2;
    check<float, float>(g);
    check<half_t, half_t>(g);
    dnn::Conv2dDesc one = make(1, 3, 1, 1, 1, 1, 1, l);
    one.stride_h = one.stride_w = 2;
    check<float, float>(one);
  }
}

// Stride-1 bwd_data on CPUs, NHWC f32: the packed forward kernel over dy reads the
// layer's filters flipped and transposed in place when its panel width divides C / G
// (no flip pass); otherwise the filters are flipped into the workspace first. Both,
// against the reference, with padding wider on one side and with accumulation. The
// panel width follows the vector width (16 on AVX2, 64 on AVX-512): C / G = 40 never
// divides it, 64 always does, 80 on AVX2 only.
TEST_P(ConvBackward, BwdDataReadsTheFiltersInPlace) {
  if (dev().info().type != axle::DeviceType::CPU) GTEST_SKIP() << "the packed kernel is the CPU one";
  struct Shape {
    std::size_t n, c, h, w, k, f, groups;
  };
  std::size_t in_place = 0, flipped = 0;
  for (const Shape& sh : {Shape{2, 64, 7, 6, 24, 3, 1}, Shape{1, 32, 5, 9, 40, 3, 1}, Shape{1, 64, 6, 6, 10, 3, 2},
                          Shape{1, 16, 4, 5, 7, 1, 1}, Shape{1, 80, 5, 5, 9, 3, 1}, Shape{1, 40, 6, 5, 16, 3, 1}}) {
    dnn::Conv2dDesc d = make(sh.n, sh.c, sh.h, sh.w, sh.k, sh.f, sh.f, dnn::TensorLayout::NHWC);
    d.groups = sh.groups;
    d.pad_top = d.pad_left = sh.f / 2;
    d.pad_bottom = d.pad_right = sh.f > 1 ? sh.f / 2 + 1 : 0;
    if (sh.f == 1) d.pad_top = d.pad_left = 0;
    axle_test::ScopedEnv env("AXLE_CONV_IGEMM", "packed");
    dnn::Conv2dOptions opt;
    opt.algorithm = dnn::Algorithm::ImplicitGemm;
    const dnn::Conv2dPlan plan(dev(), d, {}, dnn::Direction::BackwardData, {}, opt);
    const std::string desc = plan.describe();
    const std::size_t wide = desc.find("-wide panels");
    ASSERT_NE(wide, std::string::npos) << desc;
    const std::size_t num = desc.find_last_not_of("0123456789", wide - 1) + 1;
    const std::size_t nr = std::stoul(desc.substr(num, wide - num));
    const bool expect_in_place = (sh.c / sh.groups) % nr == 0;
    (expect_in_place ? in_place : flipped) += 1;
    EXPECT_EQ(desc.find("flipped in place") != std::string::npos, expect_in_place) << desc;
    EXPECT_EQ(desc.find("with flipped filters") != std::string::npos, !expect_in_place) << desc;
    // Without taps in the padding (1x1, no padding) no zero rows: no workspace but alignment.
    if (sh.f == 1) EXPECT_LE(plan.workspace_bytes(), 64u) << plan.describe();
    check_with<float, float>(d, dnn::Algorithm::ImplicitGemm, 1.0f, 0.0f, true, false);
    check_with<float, float>(d, dnn::Algorithm::ImplicitGemm, 0.5f, 1.0f, true, false);
    {  // the reduction (dy's channels) in slices, the last one partial
      axle_test::ScopedEnv kc("AXLE_CONV_KC", "16");
      SCOPED_TRACE("AXLE_CONV_KC=16");
      EXPECT_NE(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardData, {}, opt).describe().find(" KC=16"),
                std::string::npos);
      check_with<float, float>(d, dnn::Algorithm::ImplicitGemm, 0.5f, 1.0f, true, false);
    }
  }
  EXPECT_GE(in_place, 3u);  // both ways were taken
  EXPECT_GE(flipped, 1u);
}

// 16-bit x and dy of one type: tap_gemm gathers x in that type, so that its GEMMs run
// on 16-bit operands (tensor cores on NVIDIA), accumulating in f32.
TEST_P(ConvBackward, TapGemmOnSixteenBitOperands) {
  for (auto l : {dnn::TensorLayout::NHWC, dnn::TensorLayout::NCHW}) {
    dnn::Conv2dDesc d = make(2, 12, 7, 9, 20, 3, 3, l);
    d.pad_top = d.pad_left = 1, d.pad_bottom = 2, d.pad_right = 0;
    const dnn::Conv2dTypes h{dnn::DataType::F16, dnn::DataType::F16, dnn::DataType::F16};
    dnn::Conv2dOptions opt;
    opt.algorithm = dnn::Algorithm::TapGemm;
    const dnn::Conv2dPlan plan(dev(), d, h, dnn::Direction::BackwardWeights, {}, opt);
    EXPECT_TRUE(axle_test::contains_all(plan.describe(), {"tap gathers and GEMMs on f16 operands"})) << plan.describe();
    const dnn::Conv2dTypes mixed{dnn::DataType::F16, dnn::DataType::F16, dnn::DataType::F32};
    const dnn::Conv2dPlan pm(dev(), d, mixed, dnn::Direction::BackwardWeights, {}, opt);
    EXPECT_TRUE(axle_test::contains_all(pm.describe(), {"on f32 operands"})) << pm.describe();
    check_with<half_t, half_t>(d, dnn::Algorithm::TapGemm, 1.0f, 0.0f, false, true);
    check_with<bfloat16_t, bfloat16_t>(d, dnn::Algorithm::TapGemm, 0.5f, 1.0f, false, true);
    check_with<half_t, float>(d, dnn::Algorithm::TapGemm, 1.0f, 0.0f, false, true);
  }
}

// On CUDA, stride-1 backward data runs the forward tensor-core (f16, bf16) and SIMT
// (f32) kernels over dy with flipped filters; the selector takes them.
TEST_P(ConvBackward, CudaBackwardDataOnTheForwardKernels) {
  if (dev().backend() != "cuda") {
    dnn::Conv2dDesc d = make(1, 16, 6, 6, 16, 3, 3, dnn::TensorLayout::NHWC);
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    for (dnn::Algorithm a : {dnn::Algorithm::TensorCore, dnn::Algorithm::CudaSimt}) {
      dnn::Conv2dOptions opt;
      opt.algorithm = a;
      AXLE_EXPECT_THROW_MSG(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardData, {}, opt), axle::Unsupported,
                            {dnn::to_string(a), "bwd_data", "CUDA device"});
    }
    GTEST_SKIP() << "the CUDA kernels need a CUDA device";
  }
  struct Shape {
    std::size_t n, c, h, w, k, f;
  };
  for (const Shape& sh : {Shape{2, 16, 7, 9, 24, 3}, Shape{1, 40, 5, 6, 8, 3}, Shape{3, 8, 4, 11, 136, 1}}) {
    dnn::Conv2dDesc d = make(sh.n, sh.c, sh.h, sh.w, sh.k, sh.f, sh.f, dnn::TensorLayout::NHWC);
    d.pad_top = d.pad_left = sh.f / 2, d.pad_bottom = d.pad_right = sh.f / 2;
    const dnn::Conv2dTypes h{dnn::DataType::F16, dnn::DataType::F16, dnn::DataType::F16};
    EXPECT_EQ(dnn::Conv2dPlan(dev(), d, h, dnn::Direction::BackwardData).algorithm(), dnn::Algorithm::TensorCore);
    check_with<half_t, half_t>(d, dnn::Algorithm::TensorCore, 1.0f, 0.0f, true, false);
    check_with<bfloat16_t, bfloat16_t>(d, dnn::Algorithm::TensorCore, 0.5f, 1.0f, true, false);
    check_with<float, float>(d, dnn::Algorithm::CudaSimt, 1.0f, 0.0f, true, false);
  }
}

TEST_P(ConvBackward, AlphaBetaAccumulate) {
  dnn::Conv2dDesc d = make(2, 4, 6, 6, 3, 3, 3, dnn::TensorLayout::NHWC);
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  check<float, float>(d, 0.5f, 1.0f);
  check<float, float>(d, -2.0f, 0.25f);
  d.layout = dnn::TensorLayout::NCHW;
  check<float, float>(d, 1.0f, 1.0f);
}

// The weight gradient is bit-identical from run to run on one device and plan, for
// every algorithm that serves the layer (the implicit GEMM splits the rows here).
TEST_P(ConvBackward, WeightGradientIsDeterministic) {
  for (dnn::Algorithm algo : {dnn::Algorithm::Auto, dnn::Algorithm::ImplicitGemm, dnn::Algorithm::TapGemm,
                              dnn::Algorithm::Direct})
    for (auto l : {dnn::TensorLayout::NHWC, dnn::TensorLayout::NCHW}) {
      dnn::Conv2dDesc d = make(4, 16, 14, 14, 16, 3, 3, l);
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      if (!dnn::supports(dev(), algo, d, {}, dnn::Direction::BackwardWeights)) continue;
      SCOPED_TRACE(std::string(dnn::to_string(algo)) + " " + d.str());
      expect_deterministic_weights(d, algo, true);
    }
}

// The gradients of L = sum(g .* conv(x, w)) against central differences of the forward pass.
TEST_P(ConvBackward, MatchFiniteDifferencesOfTheForwardPass) {
  for (auto l : {dnn::TensorLayout::NCHW, dnn::TensorLayout::NHWC}) {
    dnn::Conv2dDesc d = make(2, 3, 6, 5, 4, 3, 2, l);
    d.stride_h = 2, d.pad_top = 1, d.pad_bottom = 0, d.pad_left = 1, d.pad_right = 1, d.dilation_w = 2;
    std::mt19937 rng(9);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> hx(d.x_elems()), hw(d.w_elems()), hg(d.y_elems()), hb(d.k);
    for (auto* v : {&hx, &hw, &hg, &hb})
      for (float& e : *v) e = dist(rng);
    axle::Stream s = dev().create_stream();
    axle::Buffer bx = dev().alloc<float>(hx.size()), bw = dev().alloc<float>(hw.size()),
                 by = dev().alloc<float>(hg.size()), bg = dev().alloc<float>(hg.size()),
                 bdx = dev().alloc<float>(hx.size()), bdw = dev().alloc<float>(hw.size()), bb = dev().alloc<float>(d.k),
                 bdb = dev().alloc<float>(d.k);
    s.copy(hx, bx.view<float>());
    s.copy(hw, bw.view<float>());
    s.copy(hg, bg.view<float>());
    s.copy(hb, bb.view<float>());
    // L(x, w, b) = sum_i g_i * (conv(x, w) + b)_i, evaluated on the device in double on the host.
    auto loss = [&](const std::vector<float>& x, const std::vector<float>& w, const std::vector<float>& b) {
      s.copy(x, bx.view<float>());
      s.copy(w, bw.view<float>());
      s.copy(b, bb.view<float>());
      dnn::Conv2dArgs a;
      a.x = bx.view<float>();
      a.w = bw.view<float>();
      a.y = by.view<float>();
      a.bias = bb.view<float>();
      dnn::conv2d_forward(s, d, a);
      std::vector<float> y(hg.size());
      s.copy(by, y);
      s.synchronize();
      double sum = 0;
      for (std::size_t i = 0; i < y.size(); ++i) sum += double(hg[i]) * y[i];
      return sum;
    };
    dnn::Conv2dArgs bd;
    bd.x = bdx.view<float>();
    bd.w = bw.view<float>();
    bd.y = bg.view<float>();
    dnn::conv2d_backward_data(s, d, bd);
    dnn::Conv2dArgs bwt;
    bwt.x = bx.view<float>();
    bwt.w = bdw.view<float>();
    bwt.y = bg.view<float>();
    bwt.bias = bdb.view<float>();
    dnn::conv2d_backward_weights(s, d, bwt);
    std::vector<float> gdx(hx.size()), gdw(hw.size()), gdb(d.k);
    s.copy(bdx, gdx);
    s.copy(bdw, gdw);
    s.copy(bdb, gdb);
    s.synchronize();
    const float h = 1.0f / 64;  // exact in float; the loss is linear in each input
    auto fd = [&](std::vector<float>& v, std::size_t i, auto&& f) {
      const float old = v[i];
      v[i] = old + h;
      const double up = f();
      v[i] = old - h;
      const double down = f();
      v[i] = old;
      return (up - down) / (2.0 * h);
    };
    for (std::size_t i = 0; i < hx.size(); i += 7)
      EXPECT_NEAR(gdx[i], fd(hx, i, [&] { return loss(hx, hw, hb); }), 2e-3) << "dx[" << i << "] " << d.str();
    for (std::size_t i = 0; i < hw.size(); i += 3)
      EXPECT_NEAR(gdw[i], fd(hw, i, [&] { return loss(hx, hw, hb); }), 2e-3) << "dw[" << i << "] " << d.str();
    for (std::size_t k = 0; k < d.k; ++k)
      EXPECT_NEAR(gdb[k], fd(hb, k, [&] { return loss(hx, hw, hb); }), 2e-3) << "db[" << k << "] " << d.str();
  }
}

TEST_P(ConvBackward, PlansRefuseWhatTheyCannotDo) {
  dnn::Conv2dDesc d = make(1, 4, 6, 6, 4, 1, 1, dnn::TensorLayout::NHWC);
  dnn::Conv2dOptions opt;
  opt.algorithm = dnn::Algorithm::Winograd;
  AXLE_EXPECT_THROW_MSG(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardData, {}, opt), axle::Unsupported,
                        {"winograd", "bwd_data"});
  EXPECT_EQ(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardData).algorithm(), dnn::Algorithm::Gemm1x1);
  d.stride_h = 2;
  opt.algorithm = dnn::Algorithm::Gemm1x1;
  AXLE_EXPECT_THROW_MSG(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardWeights, {}, opt), axle::Unsupported,
                        {"gemm_1x1", "stride 2x1"});
  d.stride_h = 1;
  AXLE_EXPECT_THROW_MSG(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardData, dnn::Conv2dFusion{true, false, {}}),
                        axle::InvalidArgument, {"bwd_data", "bias"});
  AXLE_EXPECT_THROW_MSG(
      dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardWeights, dnn::Conv2dFusion{false, true, {}}),
      axle::InvalidArgument, {"bwd_weights", "residual"});
  AXLE_EXPECT_THROW_MSG(dnn::Conv2dPlan(dev(), d, {}, dnn::Direction::BackwardWeights,
                                        dnn::Conv2dFusion{false, false, dnn::Activation::ReLU}),
                        axle::InvalidArgument, {"activation"});
  std::string why;
  EXPECT_TRUE(dnn::supports(dev(), dnn::Algorithm::Direct, d, {}, dnn::Direction::BackwardWeights, &why)) << why;
  EXPECT_FALSE(dnn::supports(dev(), dnn::Algorithm::Winograd, d, {}, dnn::Direction::BackwardData, &why));
}

// The Depthwise algorithm forced on odd shapes (its weight gradient on both layouts and
// every shape; its data gradient where it serves: stride 1, channel multiplier 1).
TEST_P(ConvBackward, DepthwiseOddShapes) {
  struct Shape {
    std::size_t n, c, h, w, mult, f, stride, dil;
  };
  for (auto l : {dnn::TensorLayout::NCHW, dnn::TensorLayout::NHWC})
    for (const Shape& sh : {Shape{1, 16, 1, 1, 1, 3, 1, 1}, Shape{3, 32, 7, 7, 1, 3, 1, 1}, Shape{1, 48, 13, 13, 2, 3, 2, 1},
                            Shape{3, 8, 13, 7, 2, 3, 1, 2}, Shape{1, 17, 7, 13, 1, 3, 2, 1}, Shape{3, 24, 1, 13, 1, 5, 1, 1},
                            Shape{2, 16, 13, 13, 1, 3, 1, 2}, Shape{1, 64, 20, 37, 1, 3, 1, 1}}) {
      dnn::Conv2dDesc d = make(sh.n, sh.c, sh.h, sh.w, sh.c * sh.mult, sh.f, sh.f, l);
      d.groups = sh.c;
      d.stride_h = d.stride_w = sh.stride;
      d.dilation_h = d.dilation_w = sh.dil;
      d.pad_top = (sh.f / 2) * sh.dil, d.pad_bottom = d.pad_top > 0 ? d.pad_top - 1 : 0;
      d.pad_left = sh.f / 2 + 1 > (sh.f - 1) * sh.dil ? (sh.f - 1) * sh.dil : sh.f / 2 + 1, d.pad_right = sh.f / 2;
      if (d.out_h() == 0 || d.out_w() == 0) continue;
      const dnn::Conv2dTypes f32;
      const bool data = dnn::supports(dev(), dnn::Algorithm::Depthwise, d, f32, dnn::Direction::BackwardData);
      EXPECT_EQ(data, sh.mult == 1 && sh.stride == 1) << d.str();
      check_with<float, float>(d, dnn::Algorithm::Depthwise, 1.0f, 0.0f, data, true);
      check_with<float, float>(d, dnn::Algorithm::Depthwise, -0.5f, 1.5f, data, true);
      if (sh.c == 32 || sh.c == 17) {  // 16-bit storage (each type pair is another kernel build)
        check_with<half_t, half_t>(d, dnn::Algorithm::Depthwise, 1.0f, 0.0f, data, true);
        check_with<bfloat16_t, float>(d, dnn::Algorithm::Depthwise, 1.0f, 0.5f, data, true);
      }
    }
}

// The depthwise weight gradient (and db) is bit-identical from run to run: partial sums
// per fixed slice of rows, added in order.
TEST_P(ConvBackward, DepthwiseWeightGradientIsDeterministic) {
  for (auto l : {dnn::TensorLayout::NCHW, dnn::TensorLayout::NHWC}) {
    dnn::Conv2dDesc d = make(3, 8, 29, 29, 8, 3, 3, l);  // few channels, many rows: several slices
    d.groups = 8, d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    const std::string how = expect_deterministic_weights(d, dnn::Algorithm::Depthwise, false, 4, 11);
    EXPECT_NE(how.find("partial sums added in order"), std::string::npos) << how;
  }
}

}  // namespace
