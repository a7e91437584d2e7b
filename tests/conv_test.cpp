// Convolution (axle::dnn) on every available device, against a plain direct reference
// with double accumulation over the exact stored values: odd sizes, every stride /
// padding / dilation combination that gives output, groups and depthwise layers, both
// layouts, every element type, every algorithm forced on what it claims, each epilogue
// part, and one test per validation.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "axle/dnn.hpp"
#include "conv_reference.hpp"
#include "test_util.hpp"

using axle::bfloat16_t;
using axle::half_t;
using axle::dnn::Activation;
using axle::dnn::Algorithm;
using axle::dnn::Conv2dDesc;
using axle::dnn::DataType;
using axle::dnn::TensorLayout;

namespace {

using namespace axle_test::conv;

// Runs one forward convolution (through a plan with `algo`, or the one-shot call when
// algo is Auto and one_shot) and checks every element of y against the reference,
// and that nothing around y changed.
template <typename TX, typename TY>
void run_conv(const axle::Device& dev, const Conv2dDesc& d, Algorithm algo, const Epi& e = {}, bool one_shot = false,
              std::size_t off = 5) {
  SCOPED_TRACE(d.str() + " algo " + axle::dnn::to_string(algo) + " on " + dev.id() + " " + describe(e) +
               " views at element " + std::to_string(off));
  const std::size_t guard = 7;  // trailing elements that must not change; off: the views' offsets
  const ForwardHost<TX, TY> h(d, e, off, guard,
                              static_cast<unsigned>(d.n * 7 + d.c * 131 + d.k * 17 + d.h * 3 + d.r));
  axle::Stream s = dev.create_stream();
  const ForwardDevice<TX, TY> b(dev, s, h);
  const axle::dnn::Conv2dArgs args = b.args(d, e, off);
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = algo;
  if (one_shot) {
    axle::dnn::conv2d_forward(s, d, args, e.act, opt);
  } else {
    axle::dnn::Conv2dTypes types{axle::dnn::DataTypeOf<TX>::value, axle::dnn::DataTypeOf<TX>::value,
                                 axle::dnn::DataTypeOf<TY>::value};
    axle::dnn::Conv2dFusion fusion{e.bias, e.residual, e.act};
    axle::dnn::Conv2dPlan plan(dev, d, types, axle::dnn::Direction::Forward, fusion, opt);
    if (algo != Algorithm::Auto) EXPECT_EQ(plan.algorithm(), algo);
    EXPECT_NE(plan.describe().find(axle::dnn::to_string(plan.algorithm())), std::string::npos) << plan.describe();
    plan.run(s, args);
  }
  std::vector<TY> out(h.y.size());
  s.copy(b.y, out);
  s.synchronize();
  double max_x = 0, max_w = 0;
  for (std::size_t i = off; i < h.x.size(); ++i) max_x = std::max(max_x, std::fabs(to_double(h.x[i])));
  for (std::size_t i = off; i < h.w.size(); ++i) max_w = std::max(max_w, std::fabs(to_double(h.w[i])));
  const double cg = static_cast<double>(d.c / d.groups);
  // Winograd: the bound stated in dnn.hpp, on top of the epilogue's.
  const double wino = algo == Algorithm::Winograd
                          ? std::fabs(e.alpha) * (1.0 / (1 << 24)) * cg * max_x * max_w * (81.0 * cg + 1000)
                          : 0.0;
  EXPECT_EQ(check_forward(d, h, e, out, [wino](double) { return wino; }), 0u);
}

Conv2dDesc make(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::size_t k, std::size_t r,
                std::size_t s, TensorLayout l = TensorLayout::NCHW) {
  Conv2dDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s, d.layout = l;
  return d;
}

class ConvTest : public ::testing::TestWithParam<axle::Device> {
 protected:
  const axle::Device& dev() const { return GetParam(); }
  void implicit_gemm_in_callers_workspace(const char* variant, std::size_t c);
  struct Shape {
    std::size_t n, c, h, w, k, f, stride, pad, groups;
  };
  // The implicit GEMM forced on each shape in both layouts: plain, the whole epilogue,
  // and 16-bit storage.
  void packed_kernel_shapes(std::initializer_list<Shape> shapes) {
    for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC})
      for (const Shape& sh : shapes) {
        Conv2dDesc d = make(sh.n, sh.c, sh.h, sh.w, sh.k, sh.f, sh.f, l);
        d.stride_h = d.stride_w = sh.stride;
        d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = sh.pad;
        d.groups = sh.groups;
        run_conv<float, float>(dev(), d, Algorithm::ImplicitGemm);
        Epi e;
        e.bias = true, e.residual = true, e.act = Activation::GELU, e.alpha = 0.5f, e.beta = 0.25f;
        run_conv<float, float>(dev(), d, Algorithm::ImplicitGemm, e);
        run_conv<half_t, bfloat16_t>(dev(), d, Algorithm::ImplicitGemm);
      }
  }
  // Every algorithm that claims the problem, forced, plus Auto.
  template <typename TX, typename TY>
  void all_algos(const Conv2dDesc& d, const Epi& e = {}) {
    axle::dnn::Conv2dTypes t{axle::dnn::DataTypeOf<TX>::value, axle::dnn::DataTypeOf<TX>::value,
                             axle::dnn::DataTypeOf<TY>::value};
    for (Algorithm a : {Algorithm::Auto, Algorithm::Direct, Algorithm::ImplicitGemm, Algorithm::Gemm1x1,
                        Algorithm::Winograd, Algorithm::TensorCore, Algorithm::CudaSimt, Algorithm::Depthwise}) {
      std::string why;
      if (!axle::dnn::supports(dev(), a, d, t, axle::dnn::Direction::Forward, &why)) continue;
      if (a == Algorithm::ImplicitGemm) {
        // Both implicit-GEMM kernels, whatever the device would choose.
        for (const char* variant : {"packed", "inplace", "tiled"}) {
          axle_test::ScopedEnv env("AXLE_CONV_IGEMM", variant);
          SCOPED_TRACE(std::string("AXLE_CONV_IGEMM=") + variant);
          run_conv<TX, TY>(dev(), d, a, e);
        }
      } else {
        run_conv<TX, TY>(dev(), d, a, e);
      }
    }
  }
};

INSTANTIATE_TEST_SUITE_P(Devices, ConvTest, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ConvTest);

TEST_P(ConvTest, OddSizesBothLayouts) {
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC})
    for (std::size_t hw : {1, 7, 13})
      for (std::size_t c : {1, 3, 5, 17})
        for (std::size_t k : {1, 3, 5, 17}) {
          if ((c + k + hw) % 3 != 0 && !(c == 17 && k == 17)) continue;  // a spread, not the full product
          for (std::size_t f : {1, 3}) {
            if (f > hw + 2) continue;
            Conv2dDesc d = make(hw == 7 ? 3 : 1, c, hw, hw == 13 ? 11 : hw, k, f, f, l);
            d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = f / 2;
            all_algos<float, float>(d);
          }
        }
}

TEST_P(ConvTest, EveryStridePaddingDilation) {
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC})
    for (std::size_t stride : {1, 2, 3})
      for (std::size_t pad : {0, 1, 2})
        for (std::size_t dil : {1, 2}) {
          Conv2dDesc d = make(2, 5, 9, 8, 6, 3, 3, l);
          d.stride_h = stride, d.stride_w = stride == 3 ? 1 : stride;
          d.pad_top = d.pad_left = pad, d.pad_bottom = d.pad_right = pad;
          d.dilation_h = dil, d.dilation_w = dil == 2 ? 1 : 2;
          if (d.out_h() == 0 || d.out_w() == 0) continue;
          all_algos<float, float>(d);
        }
}

TEST_P(ConvTest, AsymmetricPaddingAndRectangularFilters) {
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC}) {
    Conv2dDesc d = make(1, 4, 10, 7, 5, 3, 2, l);
    d.pad_top = 0, d.pad_bottom = 2, d.pad_left = 1, d.pad_right = 0;
    all_algos<float, float>(d);
    d = make(3, 3, 12, 12, 8, 7, 7, l);  // a first layer: 7x7 stride 2, C = 3
    d.stride_h = d.stride_w = 2;
    d.pad_top = d.pad_left = 3, d.pad_bottom = d.pad_right = 2;
    all_algos<float, float>(d);
    d = make(1, 6, 5, 9, 4, 1, 5, l);
    d.pad_left = 2, d.pad_right = 3;
    all_algos<float, float>(d);
  }
}

TEST_P(ConvTest, GroupsAndDepthwise) {
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC}) {
    for (std::size_t g : {2, 3}) {
      Conv2dDesc d = make(2, 6 * g / 2, 7, 6, 3 * g, 3, 3, l);
      d.groups = g;
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      all_algos<float, float>(d);
      Conv2dDesc one = make(1, 2 * g, 5, 5, 4 * g, 1, 1, l);  // grouped 1x1
      one.groups = g;
      all_algos<float, float>(one);
    }
    for (std::size_t mult : {1, 2}) {  // depthwise, channel multiplier 1 and 2
      Conv2dDesc d = make(3, 8, 9, 9, 8 * mult, 3, 3, l);
      d.groups = 8;
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      d.stride_h = d.stride_w = mult;
      all_algos<float, float>(d);
    }
    // Wide rows of 16-channel blocks: interior pixel chunks, vector stores, a partial
    // last channel block (K = 40), strides, 5x5 filters, every epilogue path.
    for (std::size_t stride : {1, 2}) {
      Conv2dDesc d = make(2, 40, 11, 23, 40, 3, 3, l);
      d.groups = 40;
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
      d.stride_h = d.stride_w = stride;
      all_algos<float, float>(d);
      Epi bias;
      bias.bias = true;
      all_algos<float, float>(d, bias);
      Epi all;
      all.bias = all.residual = true, all.act = Activation::ReLU, all.beta = 0.5f;
      all_algos<float, float>(d, all);
      all_algos<float, half_t>(d, all);
    }
    Conv2dDesc five = make(1, 32, 12, 17, 32, 5, 5, l);
    five.groups = 32;
    five.pad_top = five.pad_bottom = five.pad_left = five.pad_right = 2;
    all_algos<float, float>(five);
  }
}

TEST_P(ConvTest, SixteenBitStorage) {
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC}) {
    Conv2dDesc d = make(2, 5, 8, 7, 9, 3, 3, l);
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
    all_algos<half_t, half_t>(d);
    all_algos<half_t, float>(d);
    all_algos<bfloat16_t, bfloat16_t>(d);
    all_algos<float, half_t>(d);
    all_algos<bfloat16_t, float>(d);
    Conv2dDesc one = make(2, 12, 5, 6, 10, 1, 1, l);
    all_algos<half_t, half_t>(one);
    all_algos<bfloat16_t, float>(one);
  }
}

TEST_P(ConvTest, EveryEpiloguePart) {
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC})
    for (std::size_t f : {1, 3}) {
      Conv2dDesc d = make(2, 8, 6, 5, 7, f, f, l);
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = f / 2;
      Epi e;
      e.bias = true;
      all_algos<float, float>(d, e);
      e = Epi{};
      e.residual = true;
      all_algos<float, float>(d, e);
      e = Epi{};
      e.act = Activation::ReLU;
      e.bias = true;
      all_algos<float, float>(d, e);
      e = Epi{};
      e.act = Activation::GELU;
      e.residual = true;
      e.beta = 0.5f;
      all_algos<float, float>(d, e);
      e = Epi{};
      e.alpha = -1.5f, e.beta = 2.0f, e.bias = true, e.residual = true, e.act = Activation::ReLU;
      all_algos<float, float>(d, e);
      all_algos<half_t, half_t>(d, e);
      all_algos<float, bfloat16_t>(d, e);
      e = Epi{};
      e.alpha = 0.0f, e.beta = 1.0f, e.bias = true;
      all_algos<float, float>(d, e);
    }
}

// Shapes that cross the packed kernel's block edges: P*Q not a multiple of the pixel
// block, K not a multiple of the filter panel, C of 1 and 3, Q narrower than a block,
// blocks that span output rows and images, strided 1x1 (a downsample), channel slices
// (large C) and a caller's workspace at an odd offset.
TEST_P(ConvTest, ImplicitGemmBlockEdges) {
  struct Shape {
    std::size_t n, c, h, w, k, f, stride, pad;
  };
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC})
    for (const Shape& sh :
         {Shape{1, 1, 9, 9, 70, 3, 1, 1}, Shape{2, 3, 11, 4, 33, 3, 1, 1}, Shape{3, 3, 15, 13, 65, 7, 2, 3},
          Shape{1, 8, 5, 3, 16, 3, 1, 1}, Shape{2, 24, 9, 9, 48, 1, 2, 0}, Shape{1, 130, 5, 5, 20, 3, 1, 1},
          Shape{2, 96, 4, 5, 129, 3, 1, 1}, Shape{1, 20, 6, 7, 1, 3, 1, 2}, Shape{1, 200, 5, 6, 70, 3, 1, 1}}) {
      Conv2dDesc d = make(sh.n, sh.c, sh.h, sh.w, sh.k, sh.f, sh.f, l);
      d.stride_h = d.stride_w = sh.stride;
      d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = sh.pad;
      for (const char* variant : {"packed", "inplace", "tiled"}) {
        axle_test::ScopedEnv env("AXLE_CONV_IGEMM", variant);
        SCOPED_TRACE(std::string("AXLE_CONV_IGEMM=") + variant);
        run_conv<float, float>(dev(), d, Algorithm::ImplicitGemm);
        Epi e;
        e.bias = true, e.residual = true, e.act = Activation::ReLU, e.beta = 0.5f;
        run_conv<float, float>(dev(), d, Algorithm::ImplicitGemm, e);
      }
      for (const char* variant : {"packed", "inplace"}) {
        axle_test::ScopedEnv env("AXLE_CONV_IGEMM", variant);
        SCOPED_TRACE(std::string("AXLE_CONV_IGEMM=") + variant);
        run_conv<half_t, float>(dev(), d, Algorithm::ImplicitGemm);
        run_conv<bfloat16_t, bfloat16_t>(dev(), d, Algorithm::ImplicitGemm);
      }
    }
}

// The packed kernel's panel groups: a work-item takes KPN filter panels for each of its
// pixel blocks (the default on CPUs for 1x1 layers; AXLE_CONV_KPN forces it), with a
// partial last group (K / G panels not a multiple of KPN), several taps (a filter row
// as one run in NHWC), groups, 16-bit storage and every epilogue part.
TEST_P(ConvTest, PackedKernelPanelGroups) {
  if (dev().info().type != axle::DeviceType::CPU) GTEST_SKIP() << "the packed kernel is the CPU one";
  axle_test::ScopedEnv variant("AXLE_CONV_IGEMM", "packed");
  {
    Conv2dDesc d = make(1, 64, 14, 14, 256, 1, 1, TensorLayout::NHWC);
    axle::dnn::Conv2dOptions opt;
    opt.algorithm = Algorithm::ImplicitGemm;
    const axle::dnn::Conv2dPlan p(dev(), d, {}, axle::dnn::Direction::Forward, {}, opt);
    EXPECT_TRUE(axle_test::contains_all(p.describe(), {"packed MR=", " KPN="})) << p.describe();
    axle_test::ScopedEnv bad("AXLE_CONV_KPN", "0");
    AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, {}, axle::dnn::Direction::Forward, {}, opt),
                          axle::InvalidArgument, {"AXLE_CONV_KPN = '0'", "at least 1"});
  }
  for (const char* kpn : {"2", "3"}) {
    axle_test::ScopedEnv env("AXLE_CONV_KPN", kpn);
    SCOPED_TRACE(std::string("AXLE_CONV_KPN=") + kpn);
    packed_kernel_shapes({Shape{2, 19, 5, 7, 70, 1, 1, 0, 1}, Shape{1, 5, 7, 9, 70, 3, 1, 1, 1},
                          Shape{1, 6, 6, 5, 140, 3, 2, 1, 2}, Shape{3, 7, 4, 3, 200, 1, 2, 0, 1}});
  }
}

// The packed kernel's reduction in KC-deep channel slices shared by MB blocks (the plan
// takes them for panels too large to stream; AXLE_CONV_KC forces them): slices that do
// not divide C / G, several taps, groups, both layouts, 16-bit storage, the epilogue.
TEST_P(ConvTest, PackedKernelChannelSlices) {
  if (dev().info().type != axle::DeviceType::CPU) GTEST_SKIP() << "the packed kernel is the CPU one";
  axle_test::ScopedEnv variant("AXLE_CONV_IGEMM", "packed");
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = Algorithm::ImplicitGemm;
  const Conv2dDesc d0 = make(1, 40, 6, 6, 20, 3, 3, TensorLayout::NHWC);
  for (const char* bad : {"-1", "16x", "5000"}) {
    axle_test::ScopedEnv env("AXLE_CONV_KC", bad);
    AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d0, {}, axle::dnn::Direction::Forward, {}, opt),
                          axle::InvalidArgument, {std::string("AXLE_CONV_KC = '") + bad + "'", "0 (no slices) to 4096"});
  }
  {
    axle_test::ScopedEnv env("AXLE_CONV_KC", "0");
    const std::string desc = axle::dnn::Conv2dPlan(dev(), d0, {}, axle::dnn::Direction::Forward, {}, opt).describe();
    EXPECT_NE(desc.find(" KC=0"), std::string::npos) << desc;
  }
  for (const char* kc : {"7"}) {  // no shape's C / G is a multiple of 7: every last slice partial
    axle_test::ScopedEnv env("AXLE_CONV_KC", kc);
    SCOPED_TRACE(std::string("AXLE_CONV_KC=") + kc);
    const std::string desc = axle::dnn::Conv2dPlan(dev(), d0, {}, axle::dnn::Direction::Forward, {}, opt).describe();
    EXPECT_NE(desc.find(std::string(" KC=") + kc), std::string::npos) << desc;
    packed_kernel_shapes({Shape{2, 37, 5, 7, 70, 3, 1, 1, 1}, Shape{1, 40, 6, 6, 20, 1, 1, 0, 1},
                          Shape{1, 36, 7, 5, 48, 3, 2, 1, 2}, Shape{3, 16, 4, 3, 9, 3, 1, 2, 1}});
  }
}

// Streaming stores of y (NTS in conv_packed.cl): where the plan chooses them, and results
// with y's view aligned to a vector (the streaming path) and not (the plain one), with
// and without the epilogue (beta != 0 reads y: the plain path).
TEST_P(ConvTest, PackedKernelStreamingStores) {
  if (dev().info().type != axle::DeviceType::CPU || dev().info().backend != "opencl")
    GTEST_SKIP() << "the packed kernel's streaming stores are the OpenCL CPU ones";
  axle_test::ScopedEnv variant("AXLE_CONV_IGEMM", "packed");
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = Algorithm::ImplicitGemm;
  auto described = [&](const Conv2dDesc& d, axle::dnn::DataType y) {
    return axle::dnn::Conv2dPlan(dev(), d, {axle::dnn::DataType::F32, axle::dnn::DataType::F32, y},
                                 axle::dnn::Direction::Forward, {}, opt)
        .describe();
  };
  const Conv2dDesc small = make(1, 8, 6, 6, 32, 1, 1, TensorLayout::NHWC);
  {
    // Auto: a y of a quarter of the device's cache or more (here K x 16 x 16 pixels).
    const std::uint64_t cache = dev().info().cache_bytes;
    ASSERT_GT(cache, 0u) << "PoCL reports its cache size";
    Conv2dDesc big = make(1, 4, 16, 16, 1, 1, 1, TensorLayout::NHWC);
    big.k = static_cast<std::size_t>((cache / 4 + 16 * 16 * 4 - 1) / (16 * 16 * 4));
    EXPECT_NE(described(big, axle::dnn::DataType::F32).find("streaming stores"), std::string::npos);
    big.k -= 1;
    EXPECT_EQ(described(big, axle::dnn::DataType::F32).find("streaming stores"), std::string::npos);
    EXPECT_EQ(described(small, axle::dnn::DataType::F32).find("streaming stores"), std::string::npos);
  }
  {
    axle_test::ScopedEnv off("AXLE_CONV_STREAM_STORES", "off");
    Conv2dDesc big = make(1, 4, 16, 16, 1, 1, 1, TensorLayout::NHWC);
    big.k = static_cast<std::size_t>(dev().info().cache_bytes / (16 * 16 * 4));
    EXPECT_EQ(described(big, axle::dnn::DataType::F32).find("streaming stores"), std::string::npos);
  }
  axle_test::ScopedEnv on("AXLE_CONV_STREAM_STORES", "on");
  EXPECT_NE(described(small, axle::dnn::DataType::F32).find("streaming stores"), std::string::npos);
  // Not for 16-bit outputs, nor NCHW (its stores are not full vectors along k).
  EXPECT_EQ(described(small, axle::dnn::DataType::F16).find("streaming stores"), std::string::npos);
  Conv2dDesc nchw = small;
  nchw.layout = TensorLayout::NCHW;
  EXPECT_EQ(described(nchw, axle::dnn::DataType::F32).find("streaming stores"), std::string::npos);
  struct Shape {
    std::size_t n, c, h, w, k, f, stride, pad, groups;
  };
  for (const Shape& sh : {Shape{2, 19, 5, 7, 70, 1, 1, 0, 1}, Shape{1, 5, 7, 9, 64, 3, 1, 1, 1},
                          Shape{1, 6, 6, 5, 160, 3, 2, 1, 2}}) {
    Conv2dDesc d = make(sh.n, sh.c, sh.h, sh.w, sh.k, sh.f, sh.f, TensorLayout::NHWC);
    d.stride_h = d.stride_w = sh.stride;
    d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = sh.pad;
    d.groups = sh.groups;
    for (std::size_t off : {std::size_t{0}, std::size_t{16}, std::size_t{5}}) {
      run_conv<float, float>(dev(), d, Algorithm::ImplicitGemm, {}, false, off);
      Epi fused;  // beta 0: streaming, with the epilogue
      fused.bias = true, fused.residual = true, fused.act = Activation::ReLU, fused.alpha = 0.5f;
      run_conv<float, float>(dev(), d, Algorithm::ImplicitGemm, fused, false, off);
      Epi reads_y;  // beta != 0: y is read, the plain stores
      reads_y.bias = true, reads_y.beta = 0.25f;
      run_conv<float, float>(dev(), d, Algorithm::ImplicitGemm, reads_y, false, off);
    }
  }
}

// Both CPU kernels keep state in the workspace (filter panels and the zero row; the
// in-place kernel's zero rows): a caller's workspace full of garbage must not matter.
TEST_P(ConvTest, CpuImplicitGemmsUseTheCallersWorkspace) {
  for (const char* variant : {"packed", "inplace"}) {
    SCOPED_TRACE(variant);
    implicit_gemm_in_callers_workspace(variant, 8);
    implicit_gemm_in_callers_workspace(variant, 37);  // vectors and a tail
  }
}

void ConvTest::implicit_gemm_in_callers_workspace(const char* variant, std::size_t c) {
  axle_test::ScopedEnv env("AXLE_CONV_IGEMM", variant);
  Conv2dDesc d = make(1, c, 6, 6, 20, 3, 3, TensorLayout::NHWC);
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = Algorithm::ImplicitGemm;
  axle::dnn::Conv2dPlan plan(dev(), d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward, {}, opt);
  const std::size_t ws = plan.workspace_bytes();
  ASSERT_GT(ws, 0u);
  axle::Stream s = dev().create_stream();
  std::vector<float> hx(d.x_elems(), 1.0f), hw(d.w_elems(), 0.5f);
  axle::Buffer bx = dev().alloc<float>(hx.size()), bw = dev().alloc<float>(hw.size()),
               by = dev().alloc<float>(d.y_elems()), bws = dev().alloc<unsigned char>(ws + 48);
  s.copy(hx, bx.view<float>());
  s.copy(hw, bw.view<float>());
  s.fill(bws.view<unsigned char>(), static_cast<unsigned char>(0x7f));  // garbage: the run must zero what it reads
  axle::dnn::Conv2dArgs a;
  a.x = bx.view<float>();
  a.w = bw.view<float>();
  a.y = by.view<float>();
  a.workspace = bws.view<unsigned char>(3, ws);  // workspaces start 16-byte aligned
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::InvalidArgument, {"workspace", "byte 3", "multiple of 16"});
  a.workspace = bws.view<unsigned char>(48, ws);
  plan.run(s, a);
  std::vector<float> out(d.y_elems());
  s.copy(by, out);
  s.synchronize();
  for (std::size_t p = 0; p < 6; ++p)
    for (std::size_t q = 0; q < 6; ++q) {
      const std::size_t rows = (p == 0 || p == 5) ? 2 : 3, cols = (q == 0 || q == 5) ? 2 : 3;
      for (std::size_t k = 0; k < d.k; ++k)
        ASSERT_EQ(out[(p * 6 + q) * d.k + k], 0.5f * static_cast<float>(c * rows * cols)) << p << " " << q << " " << k;
    }
  a.workspace = bws.view<unsigned char>(16, ws - 1);
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::OutOfRange, {"workspace"});
}

// Filters packed once (Conv2dPlan::pack_weights) serve later runs without w: the
// result matches the reference, the packed copy is a snapshot (w changed afterwards is
// not read), and bad views are refused by name.
template <typename TX, typename TY>
void packed_filters_case(const axle::Device& dev, const Conv2dDesc& d, const Epi& e) {
  SCOPED_TRACE(d.str() + " " + describe(e));
  const std::size_t off = 3, guard = 5;
  const ForwardHost<TX, TY> h(d, e, off, guard, static_cast<unsigned>(d.c * 29 + d.k * 7 + d.h));
  axle::Stream s = dev.create_stream();
  const ForwardDevice<TX, TY> b(dev, s, h);
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = Algorithm::ImplicitGemm;
  opt.packed_weights = true;
  const axle::dnn::Conv2dTypes types{axle::dnn::DataTypeOf<TX>::value, axle::dnn::DataTypeOf<TX>::value,
                                     axle::dnn::DataTypeOf<TY>::value};
  const axle::dnn::Conv2dPlan plan(dev, d, types, axle::dnn::Direction::Forward,
                                   axle::dnn::Conv2dFusion{e.bias, e.residual, e.act}, opt);
  const std::size_t bytes = plan.packed_weights_bytes();
  ASSERT_GT(bytes, 0u) << plan.describe();
  // Garbage around and inside the destination: packing must write all it reads back.
  axle::Buffer packed = dev.alloc<unsigned char>(bytes + 128);
  s.fill(packed.view<unsigned char>(), static_cast<unsigned char>(0x7f));
  AXLE_EXPECT_THROW_MSG(plan.pack_weights(s, b.w.template view<TX>(off), packed.view<unsigned char>(32, bytes)),
                        axle::InvalidArgument, {"packed", "byte 32", "multiple of 64"});
  AXLE_EXPECT_THROW_MSG(plan.pack_weights(s, b.w.template view<TX>(off), packed.view<unsigned char>(64, bytes - 1)),
                        axle::OutOfRange, {"packed filters need", std::to_string(bytes)});
  AXLE_EXPECT_THROW_MSG(plan.pack_weights(s, b.w.template view<TX>(off, d.w_elems() - 1), packed.view<unsigned char>(64, bytes)),
                        axle::OutOfRange, {"tensor w", "needs " + std::to_string(d.w_elems())});
  plan.pack_weights(s, b.w.template view<TX>(off), packed.view<unsigned char>(64, bytes));
  axle::dnn::Conv2dArgs a = b.args(d, e, off);
  a.w = {};  // not read
  a.packed_w = packed.view<unsigned char>(64, bytes - 1);
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::OutOfRange, {"packed filters need", "packed_w"});
  a.packed_w = packed.view<unsigned char>(64, bytes);
  AXLE_EXPECT_THROW_MSG(axle::dnn::conv2d_forward(s, d, a, e.act, opt), axle::InvalidArgument,
                        {"packed_w", "one-shot"});
  for (int run = 0; run < 2; ++run) {
    SCOPED_TRACE(run);
    if (run == 1) {
      // The filters change after packing and are given too: the packed snapshot is what
      // is read, so the result is still the old filters'.
      s.fill(b.w.template view<TX>(), from_double<TX>(0.25));
      a.w = b.w.template view<TX>(off);
    }
    s.copy(h.y, b.y.template view<TY>());  // beta reads y
    plan.run(s, a);
    std::vector<TY> out(h.y.size());
    s.copy(b.y, out);
    s.synchronize();
    EXPECT_EQ(check_forward(d, h, e, out, [](double) { return 0.0; }), 0u);
  }
  EXPECT_EQ(s.workspace_bytes(), 0u);  // the panels came with packed_w: no workspace taken
  // A run without packed_w packs as it goes, made for packed filters or not.
  s.copy(h.w, b.w.template view<TX>());
  s.copy(h.y, b.y.template view<TY>());
  a.packed_w = {};
  plan.run(s, a);
  std::vector<TY> out(h.y.size());
  s.copy(b.y, out);
  s.synchronize();
  EXPECT_EQ(check_forward(d, h, e, out, [](double) { return 0.0; }), 0u);
}

TEST_P(ConvTest, PackedFiltersServeManyRuns) {
  axle::Stream s = dev().create_stream();
  {
    // Plans whose algorithm reads the filters as given have no packed form.
    Conv2dDesc d = make(1, 4, 6, 6, 3, 3, 3, TensorLayout::NHWC);
    axle::dnn::Conv2dOptions opt;
    opt.algorithm = Algorithm::Direct;
    const axle::dnn::Conv2dPlan direct(dev(), d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward, {}, opt);
    EXPECT_EQ(direct.packed_weights_bytes(), 0u);
    axle::Buffer w = dev().alloc<float>(d.w_elems()), x = dev().alloc<float>(d.x_elems()),
                 y = dev().alloc<float>(d.y_elems()), packed = dev().alloc<unsigned char>(4096);
    AXLE_EXPECT_THROW_MSG(direct.pack_weights(s, w.view<float>(), packed.view<unsigned char>()), axle::Unsupported,
                          {"direct", "no packed form"});
    axle::dnn::Conv2dArgs a;
    a.x = x.view<float>();
    a.y = y.view<float>();
    a.packed_w = packed.view<unsigned char>();
    AXLE_EXPECT_THROW_MSG(direct.run(s, a), axle::Unsupported, {"direct", "no packed form"});
    const axle::dnn::Conv2dPlan bwd(dev(), d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::BackwardData);
    EXPECT_EQ(bwd.packed_weights_bytes(), 0u) << bwd.describe();
    axle::dnn::Conv2dOptions once;
    once.packed_weights = true;
    AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, axle::dnn::Conv2dTypes{},
                                                axle::dnn::Direction::BackwardWeights, {}, once),
                          axle::InvalidArgument, {"packed_weights", "forward plans", "bwd_weights"});
    s.synchronize();  // the stream is still usable
  }
  if (dev().info().type != axle::DeviceType::CPU) {
    // GPUs stage tiles of w as given: the implicit GEMM has nothing to pack.
    Conv2dDesc d = make(1, 8, 6, 6, 8, 3, 3, TensorLayout::NHWC);
    axle::dnn::Conv2dOptions opt;
    opt.algorithm = Algorithm::ImplicitGemm;
    EXPECT_EQ(axle::dnn::Conv2dPlan(dev(), d, axle::dnn::Conv2dTypes{}, axle::dnn::Direction::Forward, {}, opt)
                  .packed_weights_bytes(),
              0u);
    return;
  }
  axle_test::ScopedEnv env("AXLE_CONV_IGEMM", "packed");
  Epi full;
  full.bias = full.residual = true;
  full.act = Activation::ReLU;
  full.alpha = 0.75f;
  full.beta = 0.5f;
  Conv2dDesc d = make(2, 5, 7, 9, 70, 3, 3, TensorLayout::NHWC);  // a partial panel of filters
  d.pad_top = d.pad_left = 1;
  d.pad_bottom = 2;
  packed_filters_case<float, float>(dev(), d, full);
  d = make(1, 17, 9, 8, 3, 3, 3, TensorLayout::NCHW);
  d.stride_h = d.stride_w = 2;
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  packed_filters_case<float, float>(dev(), d, Epi{});
  d = make(3, 37, 5, 6, 20, 1, 1, TensorLayout::NHWC);  // 1x1
  packed_filters_case<float, float>(dev(), d, full);
  d = make(1, 6, 6, 5, 8, 3, 3, TensorLayout::NHWC);
  d.groups = 2;
  packed_filters_case<float, float>(dev(), d, Epi{});
  d = make(2, 5, 8, 7, 9, 3, 3, TensorLayout::NHWC);  // 16-bit storage, packed as float
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  packed_filters_case<half_t, half_t>(dev(), d, Epi{});
  packed_filters_case<bfloat16_t, float>(dev(), d, full);
}

TEST_P(ConvTest, OneShotCallsCachePlans) {
  Conv2dDesc d = make(1, 16, 9, 9, 8, 3, 3, TensorLayout::NHWC);
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  Epi e;
  e.bias = true;
  e.act = Activation::ReLU;
  run_conv<float, float>(dev(), d, Algorithm::Auto, e, true);
  run_conv<float, float>(dev(), d, Algorithm::Auto, e, true);  // the cached plan
  e.bias = false;
  run_conv<float, float>(dev(), d, Algorithm::Auto, e, true);  // a different fusion: another plan
  run_conv<float, float>(dev(), d, Algorithm::Direct, e, true);
}

TEST_P(ConvTest, SelectorAndDescribe) {
  axle::dnn::Conv2dTypes f32;
  // 1x1 layers: a GEMM, except over few pixels on CPUs (NHWC): the implicit GEMM.
  const bool cpu = dev().info().type == axle::DeviceType::CPU;
  Conv2dDesc one = make(1, 64, 8, 8, 32, 1, 1, TensorLayout::NHWC);
  axle::dnn::Conv2dPlan p1(dev(), one, f32);
  EXPECT_EQ(p1.algorithm(), cpu ? Algorithm::ImplicitGemm : Algorithm::Gemm1x1) << p1.describe();
  if (cpu) EXPECT_TRUE(axle_test::contains_all(p1.describe(), {"64 output pixels", "x read in place"})) << p1.describe();
  Conv2dDesc many = make(2, 16, 48, 48, 8, 1, 1, TensorLayout::NHWC);  // 4608 pixels
  EXPECT_EQ(axle::dnn::Conv2dPlan(dev(), many, f32).algorithm(), Algorithm::Gemm1x1);
  {
    // Filters packed once by the caller: the implicit GEMM over many pixels too (CPUs).
    axle::dnn::Conv2dOptions once;
    once.packed_weights = true;
    axle::dnn::Conv2dPlan pp(dev(), many, f32, axle::dnn::Direction::Forward, {}, once);
    EXPECT_EQ(pp.algorithm(), cpu ? Algorithm::ImplicitGemm : Algorithm::Gemm1x1) << pp.describe();
    if (cpu) EXPECT_TRUE(axle_test::contains_all(pp.describe(), {"filters packed once", "packed MR="})) << pp.describe();
  }
  one.layout = TensorLayout::NCHW;
  EXPECT_EQ(axle::dnn::Conv2dPlan(dev(), one, f32).algorithm(), Algorithm::Gemm1x1);
  one.layout = TensorLayout::NHWC;
  axle::dnn::Conv2dPlan pw(dev(), one, f32, axle::dnn::Direction::BackwardWeights);
  EXPECT_EQ(pw.algorithm(), cpu ? Algorithm::ImplicitGemm : Algorithm::Gemm1x1) << pw.describe();
  axle::dnn::Conv2dPlan pdx(dev(), one, f32, axle::dnn::Direction::BackwardData);
  EXPECT_EQ(pdx.algorithm(), cpu ? Algorithm::ImplicitGemm : Algorithm::Gemm1x1) << pdx.describe();
  if (cpu) EXPECT_TRUE(axle_test::contains_all(pdx.describe(), {"over dy", "flipped in place"})) << pdx.describe();
  {
    // Backward data over many pixels: the implicit GEMM on CPUs where it reads the filters
    // in place (C / G a multiple of the panel width: 64 suits 8- and 16-wide devices),
    // else the GEMM.
    Conv2dDesc in_place = make(2, 64, 48, 48, 8, 1, 1, TensorLayout::NHWC);
    axle::dnn::Conv2dPlan pb(dev(), in_place, f32, axle::dnn::Direction::BackwardData);
    EXPECT_EQ(pb.algorithm(), cpu ? Algorithm::ImplicitGemm : Algorithm::Gemm1x1) << pb.describe();
    if (cpu) EXPECT_TRUE(axle_test::contains_all(pb.describe(), {"its filters read in place", "flipped in place"}));
    Conv2dDesc flipped = make(2, 40, 48, 48, 8, 1, 1, TensorLayout::NHWC);
    EXPECT_EQ(axle::dnn::Conv2dPlan(dev(), flipped, f32, axle::dnn::Direction::BackwardData).algorithm(),
              Algorithm::Gemm1x1);
  }
  Conv2dDesc dw = make(1, 32, 12, 12, 32, 3, 3, TensorLayout::NHWC);
  dw.groups = 32;
  axle::dnn::Conv2dPlan p2(dev(), dw, f32);
  EXPECT_EQ(p2.algorithm(), Algorithm::Depthwise) << p2.describe();
  EXPECT_TRUE(axle_test::contains_all(p2.describe(), {"depthwise (NHWC", "work-items", dev().id()}));
  dw.layout = TensorLayout::NCHW;
  axle::dnn::Conv2dPlan p2n(dev(), dw, f32);
  EXPECT_EQ(p2n.algorithm(), Algorithm::Depthwise) << p2n.describe();
  EXPECT_TRUE(axle_test::contains_all(p2n.describe(), {"depthwise (NCHW", "pixels of a row"}));
  for (axle::dnn::Direction dir : {axle::dnn::Direction::BackwardData, axle::dnn::Direction::BackwardWeights}) {
    axle::dnn::Conv2dPlan pb(dev(), dw, f32, dir);
    EXPECT_EQ(pb.algorithm(), Algorithm::Depthwise) << pb.describe();
  }
  Conv2dDesc big = make(1, 64, 14, 14, 64, 3, 3, TensorLayout::NHWC);
  axle::dnn::Conv2dPlan p3(dev(), big, f32);
  const bool cuda = dev().backend() == "cuda";  // f32 there: the SIMT kernel (conv_cuda_test.cpp)
  EXPECT_EQ(p3.algorithm(), cuda ? Algorithm::CudaSimt : Algorithm::ImplicitGemm) << p3.describe();
  if (cuda) {
    EXPECT_TRUE(axle_test::contains_all(p3.describe(), {"cuda_simt", "N1 C64 H14 W14 K64 3x3"}));
  } else if (dev().info().type == axle::DeviceType::CPU) {
    // CPUs take the packed kernel: its filter panels live in the workspace.
    EXPECT_TRUE(axle_test::contains_all(p3.describe(), {"implicit_gemm", "packed MR=", "N1 C64 H14 W14 K64 3x3"}));
    EXPECT_GE(p3.workspace_bytes(), 64u * 64 * 9 * sizeof(float));
  } else {
    EXPECT_TRUE(axle_test::contains_all(p3.describe(), {"implicit_gemm", "tiled BM=", "N1 C64 H14 W14 K64 3x3"}));
    EXPECT_EQ(p3.workspace_bytes(), 0u);
  }
  // Large filters over few pixels: CPUs read the filters in place (NHWC; NCHW packs).
  Conv2dDesc deep = make(1, 256, 5, 5, 40, 3, 3, TensorLayout::NHWC);
  deep.pad_top = deep.pad_bottom = deep.pad_left = deep.pad_right = 1;
  if (!cuda && dev().info().type == axle::DeviceType::CPU) {
    axle::dnn::Conv2dPlan pd(dev(), deep, f32);
    EXPECT_TRUE(axle_test::contains_all(pd.describe(), {"implicit_gemm", "inplace MR=", "filters read in place"}))
        << pd.describe();
    EXPECT_EQ(pd.packed_weights_bytes(), 0u);
    // Unless the caller packs them once: then the packed kernel.
    axle::dnn::Conv2dOptions once;
    once.packed_weights = true;
    axle::dnn::Conv2dPlan pp(dev(), deep, f32, axle::dnn::Direction::Forward, {}, once);
    EXPECT_TRUE(axle_test::contains_all(pp.describe(), {"implicit_gemm", "packed MR="})) << pp.describe();
    EXPECT_GE(pp.packed_weights_bytes(), 40u * 256 * 9 * sizeof(float));
    deep.layout = TensorLayout::NCHW;
    axle::dnn::Conv2dPlan pn(dev(), deep, f32);
    EXPECT_TRUE(axle_test::contains_all(pn.describe(), {"implicit_gemm", "packed MR="})) << pn.describe();
  }
  for (const char* variant : {"packed", "inplace", "tiled"}) {  // forced each way
    axle_test::ScopedEnv env("AXLE_CONV_IGEMM", variant);
    axle::dnn::Conv2dOptions forced;
    forced.algorithm = Algorithm::ImplicitGemm;
    axle::dnn::Conv2dPlan p(dev(), big, f32, axle::dnn::Direction::Forward, {}, forced);
    EXPECT_TRUE(axle_test::contains_all(p.describe(), {"implicit_gemm", std::string(variant) + " "})) << p.describe();
    EXPECT_EQ(p.workspace_bytes() == 0, std::string(variant) == "tiled") << p.describe();
  }
  const auto shape = axle::dnn::conv2d_output_shape(big);
  EXPECT_EQ(shape.p, 12u);
  EXPECT_EQ(shape.q, 12u);
  EXPECT_EQ(shape.k, 64u);
}

// The Depthwise algorithm forced on odd shapes: H and W of 1, 7 and 13, channel
// multipliers 1 and 2, strides 1 and 2, asymmetric padding, dilation, batches of 1 and
// 3, channel counts that leave every vector width (17 channels: scalar lanes), NCHW rows
// shorter and longer than a vector, 16-bit storage and every epilogue part.
TEST_P(ConvTest, DepthwiseOddShapes) {
  struct Shape {
    std::size_t n, c, h, w, mult, f, stride, dil;
  };
  for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC})
    for (const Shape& sh : {Shape{1, 16, 1, 1, 1, 3, 1, 1}, Shape{3, 32, 7, 7, 1, 3, 1, 1}, Shape{1, 48, 13, 13, 2, 3, 2, 1},
                            Shape{3, 8, 13, 7, 2, 3, 1, 2}, Shape{1, 17, 7, 13, 1, 3, 2, 1}, Shape{3, 24, 1, 13, 1, 5, 1, 1},
                            Shape{1, 64, 20, 37, 1, 3, 1, 1}, Shape{2, 4, 13, 13, 1, 7, 2, 1}}) {
      Conv2dDesc d = make(sh.n, sh.c, sh.h, sh.w, sh.c * sh.mult, sh.f, sh.f, l);
      d.groups = sh.c;
      d.stride_h = d.stride_w = sh.stride;
      d.dilation_h = d.dilation_w = sh.dil;
      d.pad_top = (sh.f / 2) * sh.dil, d.pad_bottom = d.pad_top > 0 ? d.pad_top - 1 : 0;
      d.pad_left = sh.f / 2 + 1, d.pad_right = sh.f / 2;
      if (d.out_h() == 0 || d.out_w() == 0) continue;
      run_conv<float, float>(dev(), d, Algorithm::Depthwise);
      Epi all;
      all.bias = all.residual = true, all.act = Activation::GELU, all.alpha = 0.75f, all.beta = 0.5f;
      run_conv<float, float>(dev(), d, Algorithm::Depthwise, all);
      Epi bias;
      bias.bias = true;
      run_conv<float, float>(dev(), d, Algorithm::Depthwise, bias);
      if (sh.c == 48 || sh.c == 17) {  // 16-bit storage (each type pair is another kernel build)
        run_conv<half_t, half_t>(dev(), d, Algorithm::Depthwise, all);
        run_conv<bfloat16_t, float>(dev(), d, Algorithm::Depthwise, bias);
        run_conv<float, bfloat16_t>(dev(), d, Algorithm::Depthwise);
      }
    }
}

TEST_P(ConvTest, DepthwiseRefusesOtherShapes) {
  axle::dnn::Conv2dTypes f32;
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = Algorithm::Depthwise;
  Conv2dDesc d = make(1, 8, 6, 6, 8, 3, 3, TensorLayout::NHWC);
  d.groups = 4;
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, f32, axle::dnn::Direction::Forward, {}, opt),
                        axle::Unsupported, {"depthwise", "groups == C", "groups = 4", "C = 8"});
  d = make(1, 8, 12, 12, 8, 9, 9, TensorLayout::NCHW);
  d.groups = 8;
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, f32, axle::dnn::Direction::Forward, {}, opt),
                        axle::Unsupported, {"depthwise", "81 taps"});
}

// ---- validation ---------------------------------------------------------------------

TEST_P(ConvTest, BadDescriptorsNameTheField) {
  axle::dnn::Conv2dTypes f32;
  auto plan = [&](const Conv2dDesc& d) { axle::dnn::Conv2dPlan p(dev(), d, f32); };
  Conv2dDesc d = make(1, 4, 8, 8, 4, 3, 3);
  for (auto [field, name] : {std::pair{&Conv2dDesc::n, "n = 0"}, std::pair{&Conv2dDesc::c, "c = 0"},
                             std::pair{&Conv2dDesc::h, "h = 0"}, std::pair{&Conv2dDesc::w, "w = 0"},
                             std::pair{&Conv2dDesc::k, "k = 0"}, std::pair{&Conv2dDesc::r, "r = 0"},
                             std::pair{&Conv2dDesc::s, "s = 0"}, std::pair{&Conv2dDesc::stride_h, "stride_h = 0"},
                             std::pair{&Conv2dDesc::stride_w, "stride_w = 0"},
                             std::pair{&Conv2dDesc::dilation_h, "dilation_h = 0"},
                             std::pair{&Conv2dDesc::dilation_w, "dilation_w = 0"},
                             std::pair{&Conv2dDesc::groups, "groups = 0"}}) {
    Conv2dDesc bad = d;
    bad.*field = 0;
    AXLE_EXPECT_THROW_MSG(plan(bad), axle::InvalidArgument, {name});
    AXLE_EXPECT_THROW_MSG(axle::dnn::conv2d_output_shape(bad), axle::InvalidArgument, {name});
  }
  Conv2dDesc g = d;
  g.groups = 3;
  AXLE_EXPECT_THROW_MSG(plan(g), axle::InvalidArgument, {"groups = 3", "C = 4"});
  g = make(1, 6, 8, 8, 4, 3, 3);
  g.groups = 3;
  AXLE_EXPECT_THROW_MSG(plan(g), axle::InvalidArgument, {"groups = 3", "K = 4"});
  Conv2dDesc no = make(1, 4, 2, 8, 4, 3, 3);
  AXLE_EXPECT_THROW_MSG(plan(no), axle::InvalidArgument, {"no output rows", "spans 3", "H = 2"});
  no = make(1, 4, 8, 5, 4, 3, 3);
  no.dilation_w = 3;
  AXLE_EXPECT_THROW_MSG(plan(no), axle::InvalidArgument, {"no output columns", "spans 7", "pad_left = 0"});
  Conv2dDesc huge = make(1 << 16, 64, 1 << 8, 1 << 8, 4, 1, 1);
  AXLE_EXPECT_THROW_MSG(plan(huge), axle::InvalidArgument, {"input tensor", "2^31"});
  Conv2dDesc big = d;
  big.h = std::size_t{1} << 31;
  AXLE_EXPECT_THROW_MSG(plan(big), axle::InvalidArgument, {"h = 2147483648"});
  axle::dnn::Conv2dTypes mixed;
  mixed.w = DataType::F16;
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, mixed), axle::InvalidArgument, {"x and w", "f32", "f16"});
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(axle::Device(), d, f32), axle::InvalidArgument, {"device"});
}

TEST_P(ConvTest, ForcedAlgorithmThatCannotServeIsUnsupported) {
  axle::dnn::Conv2dTypes f32;
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = Algorithm::Gemm1x1;
  Conv2dDesc d = make(1, 4, 8, 8, 4, 3, 3);
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, f32, axle::dnn::Direction::Forward, {}, opt),
                        axle::Unsupported, {"gemm_1x1", "3x3, not 1x1"});
  d = make(1, 4, 8, 8, 4, 1, 1);
  d.stride_h = 2;
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, f32, axle::dnn::Direction::Forward, {}, opt),
                        axle::Unsupported, {"gemm_1x1", "stride 2x1"});
  d = make(1, 4, 8, 8, 4, 1, 1);
  d.pad_left = 1;
  std::string why;
  EXPECT_FALSE(axle::dnn::supports(dev(), Algorithm::Gemm1x1, d, f32, axle::dnn::Direction::Forward, &why));
  EXPECT_NE(why.find("padding"), std::string::npos) << why;
  EXPECT_TRUE(axle::dnn::supports(dev(), Algorithm::Direct, d, f32, axle::dnn::Direction::Forward, &why)) << why;
  opt.algorithm = Algorithm::Winograd;
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev(), d, f32, axle::dnn::Direction::BackwardData, {}, opt),
                        axle::Unsupported, {"winograd", "bwd_data"});
}

TEST_P(ConvTest, BadViewsAreRejectedBeforeAnythingRuns) {
  Conv2dDesc d = make(2, 3, 6, 6, 4, 3, 3, TensorLayout::NHWC);
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  axle::dnn::Conv2dTypes f32;
  axle::dnn::Conv2dFusion fuse{true, false, Activation::ReLU};
  axle::dnn::Conv2dPlan plan(dev(), d, f32, axle::dnn::Direction::Forward, fuse);
  axle::Stream s = dev().create_stream();
  axle::Buffer bx = dev().alloc<float>(d.x_elems()), bw = dev().alloc<float>(d.w_elems()),
               by = dev().alloc<float>(d.y_elems()), bb = dev().alloc<float>(d.k), bh = dev().alloc<half_t>(1000);
  std::vector<float> sentinel(d.y_elems(), 7.0f);
  s.copy(sentinel, by.view<float>());
  auto good = [&] {
    axle::dnn::Conv2dArgs a;
    a.x = bx.view<float>();
    a.w = bw.view<float>();
    a.y = by.view<float>();
    a.bias = bb.view<float>();
    return a;
  };
  auto a = good();
  a.x = bx.view<float>(1);
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::OutOfRange, {"tensor x", std::to_string(d.x_elems()),
                                                           std::to_string(d.x_elems() - 1)});
  a = good();
  a.w = bw.view<float>(0, 5);
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::OutOfRange, {"tensor w", std::to_string(d.w_elems()), "5"});
  a = good();
  a.y = by.view<float>(0, 3);
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::OutOfRange, {"tensor y"});
  a = good();
  a.y = bh.view<half_t>();
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::InvalidArgument, {"tensor y", "f16", "f32"});
  a = good();
  a.bias = axle::BufferView<float>();
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::InvalidArgument, {"fuses a bias"});
  a = good();
  a.bias = bb.view<float>(0, 3);
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::OutOfRange, {"bias", "K = 4", "3"});
  a = good();
  a.z = by.view<float>();
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::InvalidArgument, {"residual", "fuses none"});
  a = good();
  a.x = axle::dnn::TensorRef();
  AXLE_EXPECT_THROW_MSG(plan.run(s, a), axle::InvalidArgument, {"tensor x", "empty"});
  axle::Stream moved;
  AXLE_EXPECT_THROW_MSG(plan.run(moved, good()), axle::InvalidArgument, {"stream"});
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan().run(s, good()), axle::InvalidArgument, {"empty Conv2dPlan"});
  // Nothing ran: y is untouched; then a good run works on the same stream.
  std::vector<float> back(d.y_elems());
  s.copy(by, back);
  s.synchronize();
  EXPECT_EQ(back, sentinel);
  s.fill(bx.view<float>(), 1.0f);
  s.fill(bw.view<float>(), 1.0f);
  s.fill(bb.view<float>(), -100.0f);
  plan.run(s, good());
  s.copy(by, back);
  s.synchronize();
  for (float v : back) ASSERT_EQ(v, 0.0f);  // relu(27 or fewer - 100) = 0
}

}  // namespace
