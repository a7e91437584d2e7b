// The tuning interface (axle/tuning.hpp) and the tuning files: conv entries steer the
// selector, AXLE_TUNING_SHIPPED=0 drops the shipped database, tune_conv and tune_gemm
// write their entries and keep the other operation's, bad files are ConfigErrors.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "../kernels/src/common/tuning_file.hpp"
#include "../kernels/src/gemm/gemm_tuning.hpp"
#include "axle/axle.hpp"
#include "axle/blas.hpp"
#include "axle/dnn.hpp"
#include "axle/tuning.hpp"
#include "test_util.hpp"

namespace {

namespace dnn = axle::dnn;

dnn::Conv2dDesc layer3x3(dnn::TensorLayout l) {
  dnn::Conv2dDesc d;
  d.c = 16, d.k = 8, d.h = d.w = 10, d.r = d.s = 3;
  d.pad_top = d.pad_bottom = d.pad_left = d.pad_right = 1;
  d.layout = l;
  return d;
}

// The user tuning file for a scope (and fresh caches on both ends).
class ScopedTuningFile {
 public:
  explicit ScopedTuningFile(const std::string& path) : env_("AXLE_TUNING_FILE", path) { reset(); }
  ~ScopedTuningFile() { reset(); }
  static void reset() {
    axle::blas::reset_gemm_caches();
    dnn::reset_conv_caches();
  }

 private:
  axle_test::ScopedEnv env_;
};

TEST(Tuning, ConvEntriesSteerTheSelector) {
  auto devs = axle::devices();
  if (devs.empty()) GTEST_SKIP() << "no device";
  const axle::Device& dev = devs.front();
  axle_test::TempDir dir;
  const std::string path = dir.write("tuning.json", R"({"format": "axle-tuning-1", "conv": [
    {"class": "3x3", "layout": "NHWC", "algorithm": "winograd"},
    {"class": "3x3", "layout": "NCHW", "algorithm": "direct"},
    {"device": "no such device", "class": "3x3", "algorithm": "implicit_gemm"},
    {"class": "1x1", "algorithm": "winograd"}
  ]})");
  ScopedTuningFile tf(path);
  dnn::Conv2dPlan a(dev, layer3x3(dnn::TensorLayout::NHWC), {});
  EXPECT_EQ(a.algorithm(), dnn::Algorithm::Winograd) << a.describe();
  EXPECT_TRUE(axle_test::contains_all(a.describe(), {"tuning entry", path, "class 3x3"}));
  dnn::Conv2dPlan b(dev, layer3x3(dnn::TensorLayout::NCHW), {});
  EXPECT_EQ(b.algorithm(), dnn::Algorithm::Direct) << b.describe();
  // An entry whose algorithm cannot serve the layer is passed over: strided 3x3.
  dnn::Conv2dDesc strided = layer3x3(dnn::TensorLayout::NHWC);
  strided.stride_h = strided.stride_w = 2;
  dnn::Conv2dPlan c(dev, strided, {});
  EXPECT_NE(c.algorithm(), dnn::Algorithm::Winograd) << c.describe();
  EXPECT_EQ(c.describe().find("tuning entry"), std::string::npos) << c.describe();
  // Winograd for 1x1 cannot serve either: the heuristics choose.
  dnn::Conv2dDesc one = layer3x3(dnn::TensorLayout::NHWC);
  one.r = one.s = 1;
  one.pad_top = one.pad_bottom = one.pad_left = one.pad_right = 0;
  dnn::Conv2dPlan e(dev, one, {});
  EXPECT_NE(e.algorithm(), dnn::Algorithm::Winograd) << e.describe();
  EXPECT_EQ(e.describe().find("tuning entry"), std::string::npos) << e.describe();
  EXPECT_EQ(e.algorithm(), dev.info().type == axle::DeviceType::CPU ? dnn::Algorithm::ImplicitGemm
                                                                    : dnn::Algorithm::Gemm1x1)
      << e.describe();
}

TEST(Tuning, ShippedDatabaseCanBeSwitchedOff) {
  auto devs = axle::devices();
  if (devs.empty()) GTEST_SKIP() << "no device";
  const axle::DeviceInfo& info = devs.front().info();
  axle_test::TempDir dir;
  ScopedTuningFile tf(dir.file("absent.json"));
  auto from_shipped = [&] {
    std::size_t n = 0;
    for (const auto& p :
         axle::blas::detail::candidate_params(info, axle::blas::detail::ElemType::F64, "large"))
      n += p.origin.find("built in") != std::string::npos;
    return n;
  };
  // The shipped database has an f64 entry for every CPU and one for every GPU.
  EXPECT_GE(from_shipped(), 1u);
  {
    axle_test::ScopedEnv off("AXLE_TUNING_SHIPPED", std::string("0"));
    ScopedTuningFile::reset();
    EXPECT_EQ(from_shipped(), 0u);
    EXPECT_FALSE(axle::kernels_detail::shipped_tuning_enabled());
    const auto cands = axle::blas::detail::candidate_params(info, axle::blas::detail::ElemType::F64, "large");
    ASSERT_EQ(cands.size(), 1u);
    EXPECT_EQ(cands.back().origin, "built-in default");
  }
  ScopedTuningFile::reset();
  EXPECT_GE(from_shipped(), 1u);
}

TEST(Tuning, TuneConvWritesEntriesAndKeepsOtherOperations) {
  auto devs = axle::devices();
  if (devs.empty()) GTEST_SKIP() << "no device";
  const axle::Device& dev = devs.front();
  axle_test::TempDir dir;
  // A file holding a GEMM entry (for another device) and a conv entry this run supersedes.
  const std::string path = dir.write("tuning.json", R"({"format": "axle-tuning-1",
    "gemm": [{"device": "elsewhere", "kernel": "tiled", "params": {"BM": 32}}],
    "conv": [{"vendor": ")" + dev.info().vendor + R"(", "device": ")" + dev.info().name +
                                                           R"(", "dtype": "f32", "layout": "NHWC", "class": "3x3",
              "direction": "fwd", "algorithm": "direct", "note": "old"}]})");
  ScopedTuningFile tf(path);
  axle::tuning::ConvTuneRequest req;
  req.layers = {layer3x3(dnn::TensorLayout::NHWC)};
  req.quick = true;
  std::size_t calls = 0, last_total = 0;
  const auto report = axle::tuning::tune_conv(dev, req, path, [&](std::size_t done, std::size_t total, const std::string&) {
    ++calls;
    last_total = total;
    EXPECT_LE(done, total);
  });
  EXPECT_GT(calls, 0u);
  EXPECT_EQ(calls, last_total);
  const auto doc = axle::kernels_detail::read_tuning_document(path);
  ASSERT_TRUE(doc.contains("gemm"));
  ASSERT_EQ(doc["gemm"].size(), 1u);
  EXPECT_EQ(doc["gemm"][0]["device"], "elsewhere");
  ASSERT_TRUE(doc.contains("conv"));
  ASSERT_EQ(doc["conv"].size(), 1u) << doc.dump(2);
  const auto& e = doc["conv"][0];
  EXPECT_EQ(e["class"], "3x3");
  EXPECT_EQ(e["layout"], "NHWC");
  EXPECT_EQ(e["device"], dev.info().name);
  EXPECT_NE(e["note"], "old");
  const std::string algo = e["algorithm"];
  EXPECT_TRUE(algo == "direct" || algo == "implicit_gemm" || algo == "winograd") << algo;
  bool named = false;
  for (const auto& l : report.lines) named = named || l.find("best for 3x3 NHWC layers: " + algo) != std::string::npos;
  EXPECT_TRUE(named);
  // The selector now follows the entry.
  dnn::Conv2dPlan p(dev, layer3x3(dnn::TensorLayout::NHWC), {});
  EXPECT_EQ(dnn::to_string(p.algorithm()), algo) << p.describe();
  EXPECT_TRUE(axle_test::contains_all(p.describe(), {"tuning entry", path}));
}

TEST(Tuning, TuneGemmKeepsConvEntries) {
  auto devs = axle::devices();
  if (devs.empty()) GTEST_SKIP() << "no device";
  const axle::Device& dev = devs.front();
  axle_test::TempDir dir;
  const std::string path =
      dir.write("tuning.json", R"({"format": "axle-tuning-1", "conv": [{"class": "dw", "algorithm": "direct"}]})");
  ScopedTuningFile tf(path);
  axle::tuning::GemmTuneRequest req;
  req.sizes = {{96, 80, 64}};
  req.quick = true;
  req.max_candidates = 2;
  const auto report = axle::tuning::tune_gemm(dev, req, path);
  const auto doc = axle::kernels_detail::read_tuning_document(path);
  ASSERT_TRUE(doc.contains("conv"));
  ASSERT_EQ(doc["conv"].size(), 1u);
  ASSERT_TRUE(doc.contains("gemm"));
  ASSERT_EQ(doc["gemm"].size(), 1u);
  EXPECT_EQ(doc["gemm"][0]["bucket"], "small");
  EXPECT_EQ(doc["gemm"][0]["device"], dev.info().name);
  // The written entry is what the dispatcher now uses for that bucket.
  const std::string plan = axle::blas::describe_gemm_plan(dev, 0, 96, 80, 64);
  EXPECT_NE(plan.find(path), std::string::npos) << plan;
}

TEST(Tuning, BadRequestsAndFiles) {
  auto devs = axle::devices();
  if (devs.empty()) GTEST_SKIP() << "no device";
  const axle::Device& dev = devs.front();
  axle_test::TempDir dir;
  axle::tuning::ConvTuneRequest none;
  AXLE_EXPECT_THROW_MSG(axle::tuning::tune_conv(dev, none, dir.file("t.json")), axle::InvalidArgument, {"no layers"});
  axle::tuning::GemmTuneRequest bad;
  bad.dtype = "f8";
  AXLE_EXPECT_THROW_MSG(axle::tuning::tune_gemm(dev, bad, dir.file("t.json")), axle::InvalidArgument, {"f8"});
  const std::string broken = dir.write("broken.json", "{\"conv\": [\n  {\"class\": \"3x3\",,}\n]}");
  AXLE_EXPECT_THROW_MSG(axle::kernels_detail::read_tuning_document(broken), axle::ConfigError, {broken, ":2"});
  const std::string wrong = dir.write("wrong.json", R"({"conv": {"class": "3x3"}})");
  AXLE_EXPECT_THROW_MSG(axle::kernels_detail::read_tuning_document(wrong), axle::ConfigError, {"\"conv\" must be an array"});
  EXPECT_EQ(axle::tuning::conv_class(layer3x3(dnn::TensorLayout::NHWC)), "3x3");
  dnn::Conv2dDesc dw = layer3x3(dnn::TensorLayout::NHWC);
  dw.groups = dw.c = dw.k = 16;
  EXPECT_EQ(axle::tuning::conv_class(dw), "dw");
  EXPECT_EQ(axle::tuning::default_conv_layers(1, dnn::TensorLayout::NHWC).size(), 11u);
}

}  // namespace
