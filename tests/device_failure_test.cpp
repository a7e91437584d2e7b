// A device that cannot be opened (its context cannot be created) is listed as
// unavailable with its reason; every other device stays usable. The failure is
// injected through the backend interface's test seam, in a process of its own, since
// devices are opened once per process.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "axle/axle.hpp"
#include "backend/backend.hpp"
#include "test_util.hpp"

namespace {

constexpr const char* kInjected = "injected: clCreateContext failed with CL_OUT_OF_HOST_MEMORY";

// AXLE_TEST_FAIL_DEVICE=opencl:0 makes that device fail to open in this process. Read
// only by this test program, before main() opens any device.
void fail_named_device(const std::string& backend, int index) {
  const char* spec = std::getenv("AXLE_TEST_FAIL_DEVICE");
  if (spec && backend + ":" + std::to_string(index) == spec)
    throw axle::BackendError(kInjected, {backend, -6, "CL_OUT_OF_HOST_MEMORY", "clCreateContext"});
}
const bool g_hook_installed = [] {
  if (std::getenv("AXLE_TEST_FAIL_DEVICE")) axle::detail::set_device_open_hook_for_testing(&fail_named_device);
  return true;
}();

void expect_child_passes(const std::string& env) {
  int status = 0;
  const std::string out = axle_test::rerun_self(env + " AXLE_TEST_FAIL_DEVICE=opencl:0", "DeviceFailureChild.*", status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_TRUE(axle_test::contains_all(out, {"[  PASSED  ] 1 test"})) << out;
  EXPECT_EQ(out.find("SKIPPED"), std::string::npos) << out;
}

}  // namespace

TEST(DeviceFailure, OneFailingDeviceLeavesTheOthersUsable) {
  if (axle::devices("opencl").empty()) GTEST_SKIP() << "no OpenCL device";
  expect_child_passes("POCL_DEVICES='pthread pthread'");
}

TEST(DeviceFailure, OnlyDeviceFailingMakesTheBackendUnavailable) {
  if (axle::devices("opencl").size() != 1) GTEST_SKIP() << "needs exactly one OpenCL device";
  expect_child_passes("");
}

TEST(DeviceFailureChild, Checks) {
  if (!std::getenv("AXLE_TEST_FAIL_DEVICE")) GTEST_SKIP() << "run by the DeviceFailure tests";
  ASSERT_TRUE(g_hook_installed);
  // Nothing here may throw just because one device failed.
  std::vector<axle::BackendStatus> bs;
  ASSERT_NO_THROW(bs = axle::backends());
  const auto it = std::find_if(bs.begin(), bs.end(), [](const axle::BackendStatus& b) { return b.name == "opencl"; });
  ASSERT_NE(it, bs.end());
  ASSERT_EQ(it->failed_devices.size(), 1u);
  EXPECT_TRUE(axle_test::contains_all(it->failed_devices[0], {"opencl:0: ", kInjected}));
  const auto cl = axle::devices("opencl");
  EXPECT_EQ(static_cast<int>(cl.size()), it->device_count);
  for (const auto& d : axle::devices()) EXPECT_NE(d.id(), "opencl:0");
  AXLE_EXPECT_THROW_MSG(axle::select_device("opencl:0"), axle::DeviceUnavailable,
                        {"'opencl:0'", "opencl:0 cannot be opened", kInjected});
  // The text of any DeviceUnavailable names the failed device and why.
  AXLE_EXPECT_THROW_MSG(axle::select_device("cuda:7"), axle::DeviceUnavailable,
                        {"cuda:7", "unavailable: opencl:0: ", kInjected});
  if (cl.empty()) {
    EXPECT_FALSE(it->available);
    EXPECT_TRUE(axle_test::contains_all(it->reason, {"no device can be opened", kInjected}));
    AXLE_EXPECT_THROW_MSG(axle::select_device("opencl"), axle::DeviceUnavailable,
                          {"no device on opencl is available", kInjected});
    return;
  }
  // The other devices serve every form of spec.
  EXPECT_TRUE(it->available);
  EXPECT_EQ(cl[0].id(), "opencl:1");
  EXPECT_EQ(axle::select_device("opencl:1"), cl[0]);
  EXPECT_EQ(axle::select_device("opencl"), cl[0]);
  EXPECT_EQ(axle::select_device("opencl:cpu"), cl[0]);
  EXPECT_EQ(axle::select_device("cpu"), cl[0]);
  axle_test::TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  {
    axle_test::ScopedEnv d("AXLE_DEVICE", "opencl:1");
    EXPECT_EQ(axle::default_device(), cl[0]);
  }
  EXPECT_EQ(axle::default_device(), cl[0]);
  // And it runs a kernel.
  const axle::Device& dev = cl[0];
  axle::BuildOptions o;
  o.disk_cache = false;
  axle::Program p = dev.build(
      axle::Source::portable("AXLE_KERNEL void k(AXLE_GLOBAL int* o) { o[AXLE_GLOBAL_ID(0)] = 9; }\n", "k.cl"), o);
  axle::Stream s = dev.create_stream();
  axle::Buffer b = dev.alloc<int>(1);
  s.launch(p.kernel("k"), axle::Range{1}, axle::Range{}, b.view<int>());
  std::vector<int> out(1);
  s.copy(b, out);
  s.synchronize();
  EXPECT_EQ(out[0], 9);
}
