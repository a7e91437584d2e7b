// The CUDA-only convolution algorithms (tensor_core: mma.sync on sm_80+, NHWC, f16/bf16
// or f32 as TF32; cuda_simt: f32 on the CUDA cores, both layouts), each forced on odd
// shapes it claims (output pixels and filters not multiples of the tiles, C/groups 8,
// 12 and 24, strides, asymmetric padding, dilation, groups, batch 3), every epilogue
// part and output type, with 16-byte aligned and unaligned views, against a direct
// reference with double accumulation over the exact stored values. They run on CUDA devices and skip
// elsewhere; the refusal tests run on every device.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
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

int sm_of(const axle::Device& d) {
  const std::string& a = d.info().architecture;
  if (a.rfind("sm_", 0) != 0) return 0;
  int v = 0;
  for (std::size_t i = 3; i < a.size() && a[i] >= '0' && a[i] <= '9'; ++i) v = v * 10 + (a[i] - '0');
  return v;
}

// CUDA devices of at least compute capability `min_sm`; the reason when there is none.
std::vector<axle::Device> cuda_devices(int min_sm, std::string& why) {
  std::vector<axle::Device> out;
  for (const auto& b : axle::backends())
    if (b.name == "cuda" && !b.available) why = "the CUDA backend is unavailable here: " + b.reason;
  for (const auto& d : axle::devices("cuda")) {
    if (sm_of(d) >= min_sm)
      out.push_back(d);
    else
      why = d.name() + " (" + d.info().architecture + ") is older than sm_" + std::to_string(min_sm);
  }
  if (out.empty() && why.empty()) why = "no CUDA device present";
  return out;
}

#define AXLE_CUDA_DEVICES(var, min_sm)              \
  std::string var##_why;                            \
  const auto var = cuda_devices(min_sm, var##_why); \
  if (var.empty()) GTEST_SKIP() << var##_why

// One forward convolution through a plan forced to `algo`, with every view starting
// `off` elements into its buffer (8: 16-byte aligned; 5: not); `tf32` allows TF32 (and
// widens the tolerance by the rounding of the inputs to 10 mantissa bits). Checks every
// element of y against the reference and that nothing around y changed.
template <typename TX, typename TY>
void run_conv(const axle::Device& dev, const Conv2dDesc& d, Algorithm algo, const Epi& e = {}, std::size_t off = 8,
              bool tf32 = false) {
  SCOPED_TRACE(d.str() + " algo " + axle::dnn::to_string(algo) + " on " + dev.id() + " x " +
               axle::dnn::to_string(axle::dnn::DataTypeOf<TX>::value) + " y " +
               axle::dnn::to_string(axle::dnn::DataTypeOf<TY>::value) + " offset " + std::to_string(off) + " " +
               describe(e) + (tf32 ? " tf32" : ""));
  const ForwardHost<TX, TY> h(d, e, off, 7,
                              static_cast<unsigned>(d.n * 7 + d.c * 131 + d.k * 17 + d.h * 3 + d.r + off));
  axle::Stream s = dev.create_stream();
  const ForwardDevice<TX, TY> b(dev, s, h);
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = algo;
  opt.allow_tf32 = tf32;
  axle::dnn::Conv2dTypes types{axle::dnn::DataTypeOf<TX>::value, axle::dnn::DataTypeOf<TX>::value,
                               axle::dnn::DataTypeOf<TY>::value};
  axle::dnn::Conv2dFusion fusion{e.bias, e.residual, e.act};
  axle::dnn::Conv2dPlan plan(dev, d, types, axle::dnn::Direction::Forward, fusion, opt);
  EXPECT_EQ(plan.algorithm(), algo);
  EXPECT_NE(plan.describe().find(axle::dnn::to_string(algo)), std::string::npos) << plan.describe();
  plan.run(s, b.args(d, e, off));
  std::vector<TY> out(h.y.size());
  s.copy(b.y, out);
  s.synchronize();
  // TF32: the rounding of both inputs of each product to 10 mantissa bits.
  EXPECT_EQ(check_forward(d, h, e, out, [tf32](double mag) { return tf32 ? 2.5 / 1024 * mag : 0.0; }), 0u);
}

Conv2dDesc make(std::size_t n, std::size_t c, std::size_t h, std::size_t w, std::size_t k, std::size_t r, std::size_t s,
                TensorLayout l = TensorLayout::NHWC) {
  Conv2dDesc d;
  d.n = n, d.c = c, d.h = h, d.w = w, d.k = k, d.r = r, d.s = s, d.layout = l;
  return d;
}
void pad(Conv2dDesc& d, std::size_t top, std::size_t bottom, std::size_t left, std::size_t right) {
  d.pad_top = top, d.pad_bottom = bottom, d.pad_left = left, d.pad_right = right;
}

// Shapes the tensor-core path claims (NHWC, C/groups a multiple of 8): output pixels
// and filters off the 128 x 64 / 128 x 128 tiles, both tile widths, several tiles in
// both directions, strides, asymmetric padding, dilation, groups, batch 3.
std::vector<Conv2dDesc> tensor_core_shapes() {
  std::vector<Conv2dDesc> v;
  Conv2dDesc d = make(3, 8, 9, 11, 5, 3, 3);  // C/groups 8, K 5, P*Q 99
  pad(d, 1, 1, 1, 1);
  v.push_back(d);
  d = make(3, 24, 13, 7, 70, 3, 3);  // C/groups 24, K 70 (BN 128, partial), stride 2x1, dilation 2x1
  d.stride_h = 2, d.dilation_h = 2;
  pad(d, 1, 0, 2, 1);
  v.push_back(d);
  d = make(1, 16, 20, 19, 130, 5, 3);  // two filter tiles of 128, rectangular filter
  pad(d, 2, 2, 1, 1);
  v.push_back(d);
  d = make(2, 48, 8, 8, 36, 3, 3);  // 3 groups of C 16, K 12
  d.groups = 3;
  pad(d, 1, 1, 1, 1);
  v.push_back(d);
  d = make(3, 16, 10, 10, 64, 3, 3);  // 2 groups of C 8, K 32; stride 2, dilation 2
  d.groups = 2, d.stride_h = d.stride_w = 2, d.dilation_h = d.dilation_w = 2;
  pad(d, 2, 1, 2, 1);
  v.push_back(d);
  d = make(2, 32, 9, 9, 40, 1, 1);  // 1x1 at stride 2 (not a plain GEMM)
  d.stride_h = d.stride_w = 2;
  v.push_back(d);
  d = make(2, 64, 30, 30, 64, 3, 3);  // 1800 pixels: 15 tile rows, more than a raster group
  pad(d, 1, 1, 1, 1);
  v.push_back(d);
  d = make(1, 8, 4, 4, 3, 7, 7);  // the filter larger than the input: mostly padding
  pad(d, 3, 3, 3, 3);
  v.push_back(d);
  return v;
}

// Shapes for the f32 SIMT path, both layouts: few and odd channels, depthwise, groups.
std::vector<Conv2dDesc> simt_shapes(TensorLayout l) {
  std::vector<Conv2dDesc> v;
  Conv2dDesc d = make(3, 3, 12, 12, 8, 7, 7, l);  // a first layer: C 3, 7x7 stride 2
  d.stride_h = d.stride_w = 2;
  pad(d, 3, 2, 3, 2);
  v.push_back(d);
  d = make(3, 5, 9, 8, 6, 3, 3, l);
  d.stride_h = 3, d.dilation_w = 2;
  pad(d, 2, 1, 0, 2);
  v.push_back(d);
  d = make(2, 17, 13, 11, 70, 3, 2, l);  // K 70: two filter tiles of 64; 286 pixels
  pad(d, 1, 1, 1, 0);
  v.push_back(d);
  d = make(2, 24, 7, 6, 36, 3, 3, l);  // 3 groups of C 8, K 12
  d.groups = 3;
  pad(d, 1, 1, 1, 1);
  v.push_back(d);
  d = make(3, 8, 9, 9, 16, 3, 3, l);  // depthwise, channel multiplier 2
  d.groups = 8, d.stride_h = d.stride_w = 2;
  pad(d, 1, 1, 1, 1);
  v.push_back(d);
  d = make(1, 40, 17, 17, 33, 1, 1, l);  // 1x1 (stride 1: the reduction is C alone)
  v.push_back(d);
  d = make(2, 32, 20, 20, 64, 3, 3, l);  // 800 pixels, 7 tile rows
  pad(d, 1, 1, 1, 1);
  v.push_back(d);
  return v;
}

// Epilogue combinations: each part alone and all together.
std::vector<Epi> epilogues() {
  std::vector<Epi> v;
  Epi e;
  e.bias = true;
  v.push_back(e);
  e = Epi{};
  e.residual = true;
  v.push_back(e);
  e = Epi{};
  e.bias = true, e.act = Activation::ReLU;
  v.push_back(e);
  e = Epi{};
  e.residual = true, e.beta = 0.5f, e.act = Activation::GELU;
  v.push_back(e);
  e = Epi{};
  e.alpha = -1.5f, e.beta = 2.0f, e.bias = true, e.residual = true, e.act = Activation::ReLU;
  v.push_back(e);
  e = Epi{};
  e.alpha = 0.0f, e.beta = 1.0f, e.bias = true;
  v.push_back(e);
  return v;
}

TEST(ConvCuda, TensorCoreOddShapes) {
  AXLE_CUDA_DEVICES(devs, 80);
  for (const auto& dev : devs)
    for (const Conv2dDesc& d : tensor_core_shapes())
      for (std::size_t off : {8, 5}) {  // aligned (cp.async) and element-wise variants
        run_conv<half_t, half_t>(dev, d, Algorithm::TensorCore, {}, off);
        run_conv<bfloat16_t, float>(dev, d, Algorithm::TensorCore, {}, off);
      }
}

TEST(ConvCuda, TensorCoreOutputTypes) {
  AXLE_CUDA_DEVICES(devs, 80);
  Conv2dDesc d = make(3, 24, 11, 9, 21, 3, 3);
  pad(d, 1, 1, 1, 1);
  for (const auto& dev : devs) {
    run_conv<half_t, half_t>(dev, d, Algorithm::TensorCore);
    run_conv<half_t, float>(dev, d, Algorithm::TensorCore);
    run_conv<half_t, bfloat16_t>(dev, d, Algorithm::TensorCore);
    run_conv<bfloat16_t, bfloat16_t>(dev, d, Algorithm::TensorCore);
    run_conv<bfloat16_t, float>(dev, d, Algorithm::TensorCore);
    run_conv<bfloat16_t, half_t>(dev, d, Algorithm::TensorCore);
  }
}

TEST(ConvCuda, TensorCoreEveryEpiloguePart) {
  AXLE_CUDA_DEVICES(devs, 80);
  Conv2dDesc d = make(3, 16, 9, 7, 70, 3, 3);  // K 70: BN 128
  pad(d, 1, 1, 1, 1);
  Conv2dDesc g = make(2, 16, 8, 6, 10, 3, 3);  // 2 groups of C 8, K 5: BN 64, the bias per group
  g.groups = 2;
  pad(g, 0, 1, 1, 0);
  for (const auto& dev : devs)
    for (const Epi& e : epilogues()) {
      run_conv<half_t, half_t>(dev, d, Algorithm::TensorCore, e);
      run_conv<bfloat16_t, float>(dev, d, Algorithm::TensorCore, e, 5);
      run_conv<half_t, bfloat16_t>(dev, g, Algorithm::TensorCore, e);
    }
}

TEST(ConvCuda, TensorCoreTf32) {
  AXLE_CUDA_DEVICES(devs, 80);
  std::vector<Conv2dDesc> shapes = tensor_core_shapes();
  Conv2dDesc d = make(2, 12, 7, 9, 10, 3, 3);  // C/groups 12: a multiple of 4, not of 8
  d.stride_w = 2;
  pad(d, 1, 1, 0, 2);
  shapes.push_back(d);
  d = make(1, 20, 6, 6, 10, 3, 3);  // 5 groups of C 4, K 2; dilation 2x1
  d.groups = 5, d.dilation_h = 2;
  pad(d, 1, 1, 1, 1);
  shapes.push_back(d);
  for (const auto& dev : devs) {
    for (const Conv2dDesc& s : shapes)
      for (std::size_t off : {8, 5}) run_conv<float, float>(dev, s, Algorithm::TensorCore, {}, off, true);
    for (const Epi& e : epilogues()) run_conv<float, half_t>(dev, shapes[1], Algorithm::TensorCore, e, 8, true);
    run_conv<float, bfloat16_t>(dev, shapes[0], Algorithm::TensorCore, {}, 5, true);
  }
}

TEST(ConvCuda, CudaSimtOddShapes) {
  AXLE_CUDA_DEVICES(devs, 0);
  for (const auto& dev : devs)
    for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC})
      for (const Conv2dDesc& d : simt_shapes(l)) {
        run_conv<float, float>(dev, d, Algorithm::CudaSimt, {}, 5);
        run_conv<float, float>(dev, d, Algorithm::CudaSimt, {}, 8);
      }
}

TEST(ConvCuda, CudaSimtOutputTypesAndEveryEpiloguePart) {
  AXLE_CUDA_DEVICES(devs, 0);
  for (const auto& dev : devs)
    for (TensorLayout l : {TensorLayout::NCHW, TensorLayout::NHWC}) {
      Conv2dDesc d = make(3, 12, 9, 7, 70, 3, 3, l);
      pad(d, 1, 1, 1, 1);
      run_conv<float, half_t>(dev, d, Algorithm::CudaSimt);
      run_conv<float, bfloat16_t>(dev, d, Algorithm::CudaSimt);
      Conv2dDesc g = make(2, 6, 8, 6, 10, 3, 3, l);  // 2 groups: the bias per group
      g.groups = 2;
      pad(g, 0, 1, 1, 0);
      for (const Epi& e : epilogues()) {
        run_conv<float, float>(dev, d, Algorithm::CudaSimt, e);
        run_conv<float, half_t>(dev, g, Algorithm::CudaSimt, e, 5);
      }
    }
}

TEST(ConvCuda, SelectorPicksTheCudaPaths) {
  AXLE_CUDA_DEVICES(devs, 0);
  for (const auto& dev : devs) {
    SCOPED_TRACE(dev.id());
    Conv2dDesc d = make(1, 64, 14, 14, 64, 3, 3);
    pad(d, 1, 1, 1, 1);
    axle::dnn::Conv2dTypes f16{DataType::F16, DataType::F16, DataType::F16};
    axle::dnn::Conv2dTypes f32;
    if (sm_of(dev) >= 80) {
      axle::dnn::Conv2dPlan tc(dev, d, f16);
      EXPECT_EQ(tc.algorithm(), Algorithm::TensorCore) << tc.describe();
      EXPECT_TRUE(axle_test::contains_all(tc.describe(), {"tensor_core", "mma.sync", "BN=64", "f16"}));
      Conv2dDesc wide = d;
      wide.k = 256;
      EXPECT_TRUE(axle_test::contains_all(axle::dnn::Conv2dPlan(dev, wide, f16).describe(), {"BN=128"}));
    }
    axle::dnn::Conv2dPlan simt(dev, d, f32);
    EXPECT_EQ(simt.algorithm(), Algorithm::CudaSimt) << simt.describe();
    EXPECT_TRUE(axle_test::contains_all(simt.describe(), {"cuda_simt", "FFMA"}));
    axle::dnn::Conv2dOptions tf32;
    tf32.allow_tf32 = true;
    axle::dnn::Conv2dPlan tc32(dev, d, f32, axle::dnn::Direction::Forward, {}, tf32);
    if (sm_of(dev) >= 80) {
      EXPECT_EQ(tc32.algorithm(), Algorithm::TensorCore) << tc32.describe();
      EXPECT_TRUE(axle_test::contains_all(tc32.describe(), {"tensor_core", "tf32", "TF32 (allowed)"}));
    }
    Conv2dDesc c6 = d;
    c6.c = 6;  // C/groups 6: not a multiple of 4, so SIMT even with TF32 allowed
    axle::dnn::Conv2dPlan simt6(dev, c6, f32, axle::dnn::Direction::Forward, {}, tf32);
    EXPECT_EQ(simt6.algorithm(), Algorithm::CudaSimt) << simt6.describe();
    Conv2dDesc nchw = d;
    nchw.layout = TensorLayout::NCHW;
    EXPECT_EQ(axle::dnn::Conv2dPlan(dev, nchw, f32).algorithm(), Algorithm::CudaSimt);
    EXPECT_EQ(axle::dnn::Conv2dPlan(dev, nchw, f16).algorithm(), Algorithm::ImplicitGemm);  // 16-bit NCHW
    Conv2dDesc odd = d;
    odd.c = 12;
    EXPECT_EQ(axle::dnn::Conv2dPlan(dev, odd, f16).algorithm(), Algorithm::ImplicitGemm);  // C/groups 12
    Conv2dDesc dw = d;
    dw.groups = dw.c = dw.k;
    EXPECT_EQ(axle::dnn::Conv2dPlan(dev, dw, f32).algorithm(), Algorithm::Direct);  // depthwise
  }
}

// ---- refusals: every device -----------------------------------------------------------

class ConvCudaRefusals : public ::testing::TestWithParam<axle::Device> {};
INSTANTIATE_TEST_SUITE_P(Devices, ConvCudaRefusals, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(ConvCudaRefusals);

// supports() is false with a reason naming `parts`, and a forced plan is Unsupported
// with the algorithm's name and the same reason.
void expect_refused(const axle::Device& dev, Algorithm a, const Conv2dDesc& d, const axle::dnn::Conv2dTypes& t,
                    std::initializer_list<std::string> parts,
                    axle::dnn::Direction dir = axle::dnn::Direction::Forward) {
  SCOPED_TRACE(std::string(axle::dnn::to_string(a)) + " " + d.str() + " on " + dev.id());
  std::string why;
  EXPECT_FALSE(axle::dnn::supports(dev, a, d, t, dir, &why));
  EXPECT_TRUE(axle_test::contains_all(why, parts)) << why;
  axle::dnn::Conv2dOptions opt;
  opt.algorithm = a;
  AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev, d, t, dir, {}, opt), axle::Unsupported,
                        {axle::dnn::to_string(a), why});
}

TEST_P(ConvCudaRefusals, EachRefusesWhatItDoesNotServe) {
  const axle::Device& dev = GetParam();
  const axle::dnn::Conv2dTypes f16{DataType::F16, DataType::F16, DataType::F16};
  const axle::dnn::Conv2dTypes bf16{DataType::BF16, DataType::BF16, DataType::F32};
  const axle::dnn::Conv2dTypes f32;
  Conv2dDesc d = make(1, 16, 8, 8, 8, 3, 3);
  EXPECT_STREQ(axle::dnn::to_string(Algorithm::TensorCore), "tensor_core");
  EXPECT_STREQ(axle::dnn::to_string(Algorithm::CudaSimt), "cuda_simt");
  if (dev.backend() != "cuda") {
    expect_refused(dev, Algorithm::TensorCore, d, f16, {"needs a CUDA device", dev.id()});
    expect_refused(dev, Algorithm::CudaSimt, d, f32, {"needs a CUDA device", dev.backend()});
    // The selector never picks them here.
    EXPECT_NE(axle::dnn::Conv2dPlan(dev, d, f16).algorithm(), Algorithm::TensorCore);
    EXPECT_NE(axle::dnn::Conv2dPlan(dev, d, f32).algorithm(), Algorithm::CudaSimt);
    return;
  }
  if (sm_of(dev) < 80) {
    expect_refused(dev, Algorithm::TensorCore, d, f16, {"sm_80", dev.info().architecture});
  } else {
    expect_refused(dev, Algorithm::TensorCore, d, f32, {"f32", "TF32 is not allowed", "allow_tf32"});
    axle::dnn::Conv2dOptions tf32;
    tf32.allow_tf32 = true;
    tf32.algorithm = Algorithm::TensorCore;
    Conv2dDesc c6 = d;
    c6.c = 6;
    AXLE_EXPECT_THROW_MSG(axle::dnn::Conv2dPlan(dev, c6, f32, axle::dnn::Direction::Forward, {}, tf32),
                          axle::Unsupported, {"tensor_core", "C/groups = 6", "multiple of 4"});
    Conv2dDesc nchw = d;
    nchw.layout = TensorLayout::NCHW;
    expect_refused(dev, Algorithm::TensorCore, nchw, f16, {"NCHW", "NHWC"});
    Conv2dDesc c12 = d;
    c12.c = 12;
    expect_refused(dev, Algorithm::TensorCore, c12, bf16, {"C/groups = 12", "multiple of 8"});
    Conv2dDesc grouped = make(1, 32, 8, 8, 8, 3, 3);
    grouped.groups = 8;  // C/groups 4
    expect_refused(dev, Algorithm::TensorCore, grouped, f16, {"C/groups = 4", "multiple of 8"});
    Conv2dDesc dw = make(1, 16, 8, 8, 16, 3, 3);
    dw.groups = 16;  // depthwise: C/groups 1 (the direct kernel's)
    expect_refused(dev, Algorithm::TensorCore, dw, f16, {"C/groups = 1"});
  }
  expect_refused(dev, Algorithm::CudaSimt, d, f16, {"f16", "it takes f32"});
  expect_refused(dev, Algorithm::CudaSimt, d, bf16, {"bf16", "it takes f32"});
  for (Algorithm a : {Algorithm::TensorCore, Algorithm::CudaSimt}) {
    Conv2dDesc many = make(1, 70000, 1, 1, 70000, 1, 1);
    many.groups = 70000;
    std::string why;
    EXPECT_FALSE(
        axle::dnn::supports(dev, a, many, a == Algorithm::CudaSimt ? f32 : f16, axle::dnn::Direction::Forward, &why));
    EXPECT_TRUE(axle_test::contains_all(why, {"70000 groups", "65535"})) << why;
    expect_refused(dev, a, d, a == Algorithm::CudaSimt ? f32 : f16, {"bwd_data"}, axle::dnn::Direction::BackwardData);
  }
}

}  // namespace
