// Runtime conformance: written once against the public API and instantiated for
// every device of every backend available at run time (named opencl_0, cuda_0, ...).
// Anything a backend does not support is skipped with the reason printed.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#ifdef __linux__
#include <sched.h>
#include <sys/types.h>
#include <unistd.h>
#endif

#include "axle/axle.hpp"
#include "test_util.hpp"

#if AXLE_TEST_WITH_OPENCL
#include "axle/interop/opencl.hpp"
#endif

using axle_test::ScopedEnv;
using axle_test::TempDir;

namespace {

// Kernels used by the suite (Axle portable dialect: runs on every backend).
const char* const kKernels = R"AXLE(
typedef struct { int a; float b; long c; } Pod16;

AXLE_KERNEL void iota(AXLE_GLOBAL int* out, int base) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  out[i] = base + (int)i;
}

AXLE_KERNEL void add_scalar(AXLE_GLOBAL float* x, float v, uint n) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  if (i < n) x[i] += v;
}

AXLE_KERNEL void scalars(AXLE_GLOBAL long* out, AXLE_GLOBAL float* outf, char c, uchar uc, short s, ushort us,
                         int i, uint ui, long l, ulong ul, float f, float4 v, Pod16 p) {
  if (AXLE_GLOBAL_ID(0) != 0) return;
  out[0] = c; out[1] = uc; out[2] = s; out[3] = us; out[4] = i; out[5] = ui; out[6] = l; out[7] = (long)ul;
  out[8] = p.a; out[9] = p.c;
  outf[0] = f; outf[1] = v.x; outf[2] = v.y; outf[3] = v.z; outf[4] = v.w; outf[5] = p.b;
}

AXLE_KERNEL void index3d(AXLE_GLOBAL uint* out) {
  const ulong x = AXLE_GLOBAL_ID(0), y = AXLE_GLOBAL_ID(1), z = AXLE_GLOBAL_ID(2);
  const ulong nx = AXLE_GLOBAL_SIZE(0), ny = AXLE_GLOBAL_SIZE(1);
  out[(z * ny + y) * nx + x] = (uint)(x + 1000 * y + 1000000 * z) + 1u;
}

AXLE_KERNEL void group_sum(AXLE_GLOBAL const float* in, AXLE_GLOBAL float* sums, AXLE_LOCAL_PTR(float) scratch) {
  const uint g = (uint)AXLE_GLOBAL_ID(0), l = (uint)AXLE_LOCAL_ID(0);
  scratch[l] = in[g];
  AXLE_BARRIER();
  for (uint s = (uint)AXLE_LOCAL_SIZE(0) / 2; s > 0; s >>= 1) {
    if (l < s) scratch[l] += scratch[l + s];
    AXLE_BARRIER();
  }
  if (l == 0) sums[AXLE_GROUP_ID(0)] = scratch[0];
}

AXLE_KERNEL void spin(AXLE_GLOBAL uint* out, uint iters, uint seed) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  uint x = seed + i;
  for (uint k = 0; k < iters; ++k) x = x * 1664525u + 1013904223u;
  out[i] = x;
}
)AXLE";

const char* const kFp64Kernel = R"AXLE(
#ifdef AXLE_OPENCL
#pragma OPENCL EXTENSION cl_khr_fp64 : enable
#endif
AXLE_KERNEL void scale_d(AXLE_GLOBAL double* x, double a) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  x[i] = x[i] * a;
}
)AXLE";

struct alignas(16) Float4 {
  float x, y, z, w;
};
struct Pod16 {
  std::int32_t a;
  float b;
  std::int64_t c;
};
static_assert(sizeof(Float4) == 16 && sizeof(Pod16) == 16, "16-byte kernel arguments");

std::uint32_t lcg(std::uint32_t seed, std::uint32_t iters) {
  for (std::uint32_t k = 0; k < iters; ++k) seed = seed * 1664525u + 1013904223u;
  return seed;
}

std::string backend_list_message_problems(const std::string& msg) {
  std::string problems;
  for (const auto& b : axle::backends()) {
    if (msg.find(b.name) == std::string::npos) problems += " backend '" + b.name + "' not listed;";
    if (!b.available && msg.find(b.reason) == std::string::npos) problems += " reason of '" + b.name + "' missing;";
  }
  return problems;
}

// Expects select_device(spec) to throw DeviceUnavailable naming `why` and every backend.
void expect_unavailable(const std::string& spec, std::initializer_list<std::string> why) {
  try {
    axle::Device d = axle::select_device(spec);
    ADD_FAILURE() << "select_device(\"" << spec << "\") returned " << d.id();
  } catch (const axle::DeviceUnavailable& e) {
    EXPECT_TRUE(axle_test::contains_all(e.what(), why)) << "spec " << spec;
    EXPECT_EQ(backend_list_message_problems(e.what()), "") << e.what();
  }
}

}  // namespace

// =====================================================================================
// Backends, selection and the default device (global; not per device)
// =====================================================================================

class BackendTest : public ::testing::TestWithParam<axle::BackendStatus> {};

TEST_P(BackendTest, AvailableOrSkippedWithReason) {
  const auto& b = GetParam();
  if (!b.available) {
    EXPECT_FALSE(b.reason.empty()) << "an unavailable backend must say why";
    EXPECT_EQ(b.device_count, 0);
    EXPECT_TRUE(axle::devices(b.name).empty());
    GTEST_SKIP() << "backend '" << b.name << "' is unavailable here: " << b.reason;
  }
  EXPECT_GT(b.device_count, 0);
  EXPECT_TRUE(b.reason.empty());
  const auto devs = axle::devices(b.name);
  ASSERT_EQ(static_cast<int>(devs.size()), b.device_count);
  for (int i = 0; i < b.device_count; ++i) {
    EXPECT_EQ(devs[i].backend(), b.name);
    EXPECT_EQ(devs[i].info().index, i);
    EXPECT_EQ(devs[i].id(), b.name + ":" + std::to_string(i));
  }
}

// AXLE_TEST_EXPECT_DEVICES=opencl,cuda (set by .ci/run and bench/gpu_check.sh): each
// named backend must have a device here; "opencl:2" asks for at least two. Without it,
// a machine whose OpenCL or CUDA device went missing would run none of the per-device
// suites and still pass.
TEST(Backends, ExpectedBackendsHaveDevices) {
  const char* want = std::getenv("AXLE_TEST_EXPECT_DEVICES");
  if (!want || !*want) GTEST_SKIP() << "AXLE_TEST_EXPECT_DEVICES is not set";
  std::string list = want;
  std::size_t pos = 0;
  while (pos <= list.size()) {
    std::size_t comma = list.find(',', pos);
    if (comma == std::string::npos) comma = list.size();
    std::string name = list.substr(pos, comma - pos);
    pos = comma + 1;
    if (name.empty()) continue;
    std::size_t want_count = 1;
    if (const std::size_t colon = name.find(':'); colon != std::string::npos) {
      want_count = std::stoul(name.substr(colon + 1));
      name.resize(colon);
    }
    std::string why = "not compiled into this build";
    for (const auto& b : axle::backends())
      if (b.name == name) why = b.available ? "too few devices" : b.reason;
    EXPECT_GE(axle::devices(name).size(), want_count)
        << "AXLE_TEST_EXPECT_DEVICES asks for " << want_count << " device(s) of '" << name << "' but there are "
        << axle::devices(name).size() << " here: " << why;
  }
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, ::testing::ValuesIn(axle::backends()),
                         [](const ::testing::TestParamInfo<axle::BackendStatus>& i) { return i.param.name; });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(BackendTest);

TEST(Selection, BackendsAndDevicesAgree) {
  const auto bs = axle::backends();
  std::set<std::string> names;
  std::size_t total = 0;
  for (const auto& b : bs) {
    EXPECT_TRUE(b.name == "opencl" || b.name == "cuda") << b.name;
    EXPECT_TRUE(names.insert(b.name).second) << "backend listed twice: " << b.name;
    total += static_cast<std::size_t>(b.device_count);
  }
  const auto all = axle::devices();
  EXPECT_EQ(all.size(), total);
  EXPECT_TRUE(axle::devices("vulkan").empty());
  // Default preference order: CUDA, then OpenCL GPUs, then the rest.
  auto rank = [](const axle::Device& d) {
    return d.backend() == "cuda" ? 0 : d.info().type == axle::DeviceType::GPU ? 1 : 2;
  };
  for (std::size_t i = 1; i < all.size(); ++i) EXPECT_LE(rank(all[i - 1]), rank(all[i])) << all[i].id();
  // Handles to the same device compare equal.
  for (const auto& d : all) EXPECT_TRUE(axle::select_device(d.id()) == d) << d.id();
}

TEST(Selection, EverySpecForm) {
  const auto cl = axle::devices("opencl");
  if (cl.empty()) GTEST_SKIP() << "no OpenCL device: the opencl spec forms cannot be exercised";
  axle::Device d0 = axle::select_device("opencl:0");
  EXPECT_EQ(d0.id(), "opencl:0");
  EXPECT_EQ(d0, cl[0]);
  EXPECT_EQ(axle::select_device("OpenCL:0"), d0);
  EXPECT_EQ(axle::select_device("  opencl:0  "), d0);
  axle::Device any = axle::select_device("opencl");
  EXPECT_EQ(any.backend(), "opencl");
  EXPECT_EQ(axle::select_device("OPENCL"), any);
  for (const auto& [word, type] : {std::pair<const char*, axle::DeviceType>{"cpu", axle::DeviceType::CPU},
                                   {"gpu", axle::DeviceType::GPU}}) {
    const axle::DeviceType wanted = type;  // (a structured binding cannot be captured in C++17)
    const bool have = std::any_of(cl.begin(), cl.end(), [&](const axle::Device& d) { return d.info().type == wanted; });
    const std::string spec = std::string("opencl:") + word;
    if (have) {
      EXPECT_EQ(axle::select_device(spec).info().type, type);
      std::string upper = spec;
      for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      EXPECT_EQ(axle::select_device(upper).info().type, type);
    } else {
      expect_unavailable(spec, {"no " + std::string(word) + " device"});
    }
  }
  // A substring of a device name, in another case.
  const std::string name = cl.back().name();
  ASSERT_GE(name.size(), 3u);
  std::string part = name.substr(name.size() / 3, std::max<std::size_t>(3, name.size() / 3));
  for (auto& c : part) c = static_cast<char>(std::isupper(static_cast<unsigned char>(c)) ? std::tolower(c) : std::toupper(c));
  axle::Device by_name = axle::select_device(part);
  EXPECT_NE(by_name.name().find(name.substr(name.size() / 3, part.size())), std::string::npos);
  EXPECT_EQ(axle::select_device("opencl:" + part).backend(), "opencl");
}

TEST(Selection, FailuresListEveryBackend) {
  const auto cl = axle::devices("opencl");
  if (cl.size() < 8) expect_unavailable("opencl:7", {"opencl:7", "no index 7"});
  expect_unavailable("vulkan:0", {"vulkan", "unknown backend"});
  expect_unavailable("no-such-device-name-xyz", {"no-such-device-name-xyz"});
  AXLE_EXPECT_THROW_MSG(axle::select_device(""), axle::InvalidArgument, {"is not a device spec", "empty"});
  bool cuda_usable = false, cuda_built = false;
  for (const auto& b : axle::backends())
    if (b.name == "cuda") {
      cuda_built = true;
      cuda_usable = b.available;
    }
  if (!cuda_usable) {
    const std::string why = cuda_built ? "unavailable" : "not compiled into this build";
    expect_unavailable("cuda:0", {"cuda", why});
    expect_unavailable("cuda", {"cuda", why});
    expect_unavailable("CUDA:0", {"cuda", why});
  }
  const auto all = axle::devices();
  const bool have_gpu = std::any_of(all.begin(), all.end(), [](const axle::Device& d) {
    return d.info().type == axle::DeviceType::GPU;
  });
  if (!have_gpu)
    expect_unavailable("gpu", {"no gpu device"});
  else
    EXPECT_EQ(axle::select_device("gpu").info().type, axle::DeviceType::GPU);
  axle::Device empty;
  AXLE_EXPECT_THROW_MSG(empty.info(), axle::InvalidArgument, {"empty Device"});
  AXLE_EXPECT_THROW_MSG(empty.create_stream(), axle::InvalidArgument, {"empty Device"});
}

TEST(Selection, DefaultDevicePrecedence) {
  const auto all = axle::devices();
  if (all.empty()) GTEST_SKIP() << "no device available";
  TempDir tmp;
  axle_test::CleanConfigEnv clean(tmp.path());
  const std::string last = all.back().id();

  // Nothing set: the first device of the default order.
  EXPECT_EQ(axle::default_device(), all.front());

  // Config file: device.
  const std::string cfg = tmp.write("axle.toml", "device = \"" + last + "\"\n");
  {
    ScopedEnv c("AXLE_CONFIG", cfg);
    EXPECT_EQ(axle::default_device().id(), last);
  }
  // XDG config dir when AXLE_CONFIG is unset.
  ::mkdir((tmp.path() + "/axle").c_str(), 0755);
  tmp.write("axle/axle.toml", "device = \"" + last + "\"\n");
  axle::reset_config_for_testing();
  EXPECT_EQ(axle::default_device().id(), last);
  ::unlink(tmp.file("axle/axle.toml").c_str());
  axle::reset_config_for_testing();

  // AXLE_DEVICE beats the config; the API argument beats AXLE_DEVICE.
  const std::string bad_cfg = tmp.write("bad.toml", "device = \"vulkan:0\"\n");
  {
    ScopedEnv c("AXLE_CONFIG", bad_cfg);
    AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::DeviceUnavailable, {"vulkan:0", bad_cfg});
    ScopedEnv d("AXLE_DEVICE", last);
    EXPECT_EQ(axle::default_device().id(), last);
    {
      ScopedEnv bad("AXLE_DEVICE", "vulkan:3");
      // An explicit request that cannot serve is an error, never a silent fallback.
      AXLE_EXPECT_THROW_MSG(axle::default_device(), axle::DeviceUnavailable, {"AXLE_DEVICE=vulkan:3", "vulkan"});
      EXPECT_EQ(axle::default_device(all.front().id()), all.front());
      AXLE_EXPECT_THROW_MSG(axle::default_device("vulkan:1"), axle::DeviceUnavailable, {"vulkan:1"});
    }
  }
  // Config fallback list.
  const std::string fb = tmp.write("fb.toml", "device = \"vulkan:0\"\nfallback = [\"opencl:99\", \"" + last + "\"]\n");
  {
    ScopedEnv c("AXLE_CONFIG", fb);
    EXPECT_EQ(axle::default_device().id(), last);
  }
}

// =====================================================================================
// Per-device conformance
// =====================================================================================

class DeviceTest : public ::testing::TestWithParam<axle::Device> {
 protected:
  const axle::Device& dev() const { return GetParam(); }
  axle::Program program() const { return dev().build(axle::Source::portable(kKernels, "conformance.cl")); }
  const std::string& backend() const { return dev().backend(); }
};

INSTANTIATE_TEST_SUITE_P(Devices, DeviceTest, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(DeviceTest);

TEST_P(DeviceTest, InfoIsSane) {
  const auto& i = dev().info();
  EXPECT_TRUE(i.backend == "opencl" || i.backend == "cuda");
  EXPECT_EQ(dev().id(), i.backend + ":" + std::to_string(i.index));
  EXPECT_FALSE(i.name.empty());
  EXPECT_FALSE(i.vendor.empty());
  EXPECT_FALSE(i.driver_version.empty());
  EXPECT_FALSE(i.version.empty());
  EXPECT_FALSE(i.architecture.empty());
  EXPECT_GT(i.compute_units, 0u);
  EXPECT_GT(i.global_mem_bytes, 0u);
  EXPECT_GT(i.max_alloc_bytes, 0u);
  EXPECT_LE(i.max_alloc_bytes, i.global_mem_bytes);
  EXPECT_GT(i.local_mem_bytes, 0u);
  EXPECT_GT(i.max_work_group_size, 0u);
  for (int d = 0; d < 3; ++d) {
    EXPECT_GT(i.max_work_item_sizes[d], 0u) << "dimension " << d;
    EXPECT_LE(i.max_work_item_sizes[d], std::max<std::size_t>(i.max_work_group_size, 65535)) << "dimension " << d;
  }
  EXPECT_GE(i.preferred_vector_width_float, 1u);
  if (i.backend == "cuda") {
    EXPECT_EQ(i.type, axle::DeviceType::GPU);
    EXPECT_EQ(i.sub_group_size, 32u);
    EXPECT_EQ(i.architecture.rfind("sm_", 0), 0u) << i.architecture;
  }
}

TEST_P(DeviceTest, InfoMatchesNativeQuery) {
#if AXLE_TEST_WITH_OPENCL
  if (backend() != "opencl") GTEST_SKIP() << "native query comparison is implemented for OpenCL only";
  cl_device_id id = axle::opencl::device_id(dev());
  ASSERT_NE(id, nullptr);
  auto str = [&](cl_device_info what) {
    std::size_t n = 0;
    clGetDeviceInfo(id, what, 0, nullptr, &n);
    std::string s(n, '\0');
    clGetDeviceInfo(id, what, n, s.data(), nullptr);
    while (!s.empty() && (s.back() == '\0' || s.back() == ' ')) s.pop_back();
    return s;
  };
  auto val = [&](cl_device_info what, auto zero) {
    decltype(zero) v = zero;
    EXPECT_EQ(clGetDeviceInfo(id, what, sizeof(v), &v, nullptr), CL_SUCCESS);
    return v;
  };
  const auto& i = dev().info();
  EXPECT_EQ(i.name, str(CL_DEVICE_NAME));
  EXPECT_EQ(i.vendor, str(CL_DEVICE_VENDOR));
  EXPECT_EQ(i.driver_version, str(CL_DRIVER_VERSION));
  EXPECT_EQ(i.compute_units, val(CL_DEVICE_MAX_COMPUTE_UNITS, cl_uint{0}));
  EXPECT_EQ(i.global_mem_bytes, val(CL_DEVICE_GLOBAL_MEM_SIZE, cl_ulong{0}));
  EXPECT_EQ(i.max_alloc_bytes, val(CL_DEVICE_MAX_MEM_ALLOC_SIZE, cl_ulong{0}));
  EXPECT_EQ(i.local_mem_bytes, val(CL_DEVICE_LOCAL_MEM_SIZE, cl_ulong{0}));
  EXPECT_EQ(i.cache_bytes, val(CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, cl_ulong{0}));
  EXPECT_EQ(i.max_work_group_size, val(CL_DEVICE_MAX_WORK_GROUP_SIZE, std::size_t{0}));
  EXPECT_EQ(i.max_clock_mhz, val(CL_DEVICE_MAX_CLOCK_FREQUENCY, cl_uint{0}));
  const cl_device_type t = val(CL_DEVICE_TYPE, cl_device_type{0});
  EXPECT_EQ(i.type == axle::DeviceType::CPU, (t & CL_DEVICE_TYPE_CPU) != 0);
  EXPECT_EQ(i.type == axle::DeviceType::GPU, (t & CL_DEVICE_TYPE_GPU) != 0);
  // The context Axle made holds exactly this device.
  cl_context ctx = axle::opencl::context(dev());
  cl_device_id ctx_dev = nullptr;
  ASSERT_EQ(clGetContextInfo(ctx, CL_CONTEXT_DEVICES, sizeof(ctx_dev), &ctx_dev, nullptr), CL_SUCCESS);
  EXPECT_EQ(ctx_dev, id);
#else
  GTEST_SKIP() << "built without the OpenCL headers for the test";
#endif
}

// ---------------------------------------------------------------- buffers

TEST_P(DeviceTest, BufferAllocation) {
  axle::Buffer b1 = dev().alloc_bytes(1);
  EXPECT_TRUE(b1.valid());
  EXPECT_EQ(b1.size_bytes(), 1u);
  EXPECT_EQ(b1.device(), dev());
  axle::Buffer b2 = dev().alloc<float>(1000);
  EXPECT_EQ(b2.size_bytes(), 4000u);
  EXPECT_NE(b2.native_handle(), nullptr);
  EXPECT_NE(b1.native_handle(), b2.native_handle());
  axle::Buffer big = dev().alloc_bytes(std::size_t{64} << 20);
  EXPECT_EQ(big.size_bytes(), std::size_t{64} << 20);

  AXLE_EXPECT_THROW_MSG(dev().alloc_bytes(0), axle::InvalidArgument, {"zero-byte", dev().id()});
  AXLE_EXPECT_THROW_MSG(dev().alloc<float>(0), axle::InvalidArgument, {"zero-byte"});
  const std::uint64_t max = dev().info().max_alloc_bytes;
  AXLE_EXPECT_THROW_MSG(dev().alloc_bytes(static_cast<std::size_t>(max) + 1), axle::InvalidArgument,
                        {std::to_string(max + 1), std::to_string(max), "largest allocation"});
  AXLE_EXPECT_THROW_MSG(dev().alloc<double>(static_cast<std::size_t>(-1) / 4), axle::InvalidArgument, {"overflows"});
  AXLE_EXPECT_THROW_MSG(dev().alloc_pinned<int>(0), axle::InvalidArgument, {"zero-byte"});
}

TEST_P(DeviceTest, BufferMoveAndReset) {
  axle::Stream s = dev().create_stream();
  std::vector<int> a(256), b(128), out;
  std::iota(a.begin(), a.end(), 1);
  std::iota(b.begin(), b.end(), 1000);
  axle::Buffer ba = dev().alloc<int>(a.size());
  axle::Buffer bb = dev().alloc<int>(b.size());
  s.copy(a, ba);
  s.copy(b, bb);
  void* const native_a = ba.native_handle();

  axle::Buffer moved(std::move(ba));
  EXPECT_FALSE(ba.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
  EXPECT_EQ(ba.size_bytes(), 0u);
  EXPECT_TRUE(moved.valid());
  EXPECT_EQ(moved.native_handle(), native_a);
  EXPECT_EQ(moved.size_bytes(), a.size() * sizeof(int));

  // Move assignment over a live buffer releases the old one and keeps the data.
  bb = std::move(moved);
  EXPECT_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(bb.native_handle(), native_a);
  EXPECT_EQ(bb.size_bytes(), a.size() * sizeof(int));

  // Self-move-assignment leaves the buffer intact.
  axle::Buffer& alias = bb;
  bb = std::move(alias);
  ASSERT_TRUE(bb.valid());
  EXPECT_EQ(bb.native_handle(), native_a);
  out.resize(a.size());
  s.copy(bb, out);
  s.synchronize();
  EXPECT_EQ(out, a);

  axle::Buffer empty;
  EXPECT_FALSE(empty.valid());
  bb = std::move(empty);
  EXPECT_FALSE(bb.valid());

  axle::Buffer r = dev().alloc<int>(4);
  r.reset();
  EXPECT_FALSE(r.valid());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.size_bytes(), 0u);
  r.reset();  // twice is fine
  AXLE_EXPECT_THROW_MSG(r.view<int>(), axle::InvalidArgument, {"empty"});
  AXLE_EXPECT_THROW_MSG(r.native_handle(), axle::InvalidArgument, {"empty"});
}

TEST_P(DeviceTest, ViewsAndSubViews) {
  axle::Buffer b = dev().alloc<float>(100);
  auto all = b.view<float>();
  EXPECT_EQ(all.offset(), 0u);
  EXPECT_EQ(all.size(), 100u);
  auto v = b.view<float>(10, 20);
  EXPECT_EQ(v.offset(), 10u);
  EXPECT_EQ(v.size(), 20u);
  EXPECT_EQ(v.offset_bytes(), 40u);
  EXPECT_EQ(v.size_bytes(), 80u);
  EXPECT_EQ(&v.buffer(), &b);
  EXPECT_EQ(b.view<float>(90).size(), 10u);
  EXPECT_EQ(b.view<float>(100).size(), 0u);
  auto sv = v.sub(5, 10);
  EXPECT_EQ(sv.offset(), 15u);
  EXPECT_EQ(sv.size(), 10u);
  EXPECT_EQ(v.sub(5).size(), 15u);
  EXPECT_EQ(v.sub(20).size(), 0u);
  auto bytes = b.view<std::uint8_t>(3, 7);
  EXPECT_EQ(bytes.offset_bytes(), 3u);
  auto as_int = v.as<std::int32_t>();
  EXPECT_EQ(as_int.offset(), 10u);
  EXPECT_EQ(as_int.size(), 20u);
  auto as_d = b.view<float>(2, 4).as<double>();
  EXPECT_EQ(as_d.offset(), 1u);
  EXPECT_EQ(as_d.size(), 2u);

  AXLE_EXPECT_THROW_MSG(b.view<float>(90, 11), axle::OutOfRange, {"400 bytes", "90"});
  AXLE_EXPECT_THROW_MSG(b.view<float>(101), axle::OutOfRange, {"101"});
  AXLE_EXPECT_THROW_MSG(b.view<double>(0, 51), axle::OutOfRange, {"51"});
  AXLE_EXPECT_THROW_MSG(b.view<float>(1, static_cast<std::size_t>(-2)), axle::OutOfRange, {"400 bytes"});
  AXLE_EXPECT_THROW_MSG(v.sub(21), axle::OutOfRange, {"offset 21", "80 bytes"});  // relative to the view
  try {
    v.sub(25);
    ADD_FAILURE() << "v.sub(25) past the end of a 20-element view did not throw";
  } catch (const axle::OutOfRange& e) {
    EXPECT_EQ(std::string(e.what()).find(std::to_string(axle::Buffer::npos)), std::string::npos) << e.what();
  }
  AXLE_EXPECT_THROW_MSG(v.sub(5, 16), axle::OutOfRange, {"16"});
  AXLE_EXPECT_THROW_MSG(v.sub(1, static_cast<std::size_t>(-2)), axle::OutOfRange, {"does not fit"});
  AXLE_EXPECT_THROW_MSG(b.view<float>(1, 4).as<double>(), axle::InvalidArgument, {"multiple"});
  AXLE_EXPECT_THROW_MSG(b.view<float>(0, 3).as<double>(), axle::InvalidArgument, {"multiple"});
  axle::BufferView<float> none;
  EXPECT_FALSE(none.valid());
  AXLE_EXPECT_THROW_MSG(none.buffer(), axle::InvalidArgument, {"empty BufferView"});
}

// ---------------------------------------------------------------- copies and fills

TEST_P(DeviceTest, CopiesAtOddOffsets) {
  axle::Stream s = dev().create_stream();
  const std::size_t n = 1000;
  std::vector<std::uint8_t> model(n), host(n);
  for (std::size_t i = 0; i < n; ++i) model[i] = static_cast<std::uint8_t>(i * 7 + 3);
  axle::Buffer a = dev().alloc<std::uint8_t>(n), b = dev().alloc<std::uint8_t>(n);
  s.copy(model, a.view<std::uint8_t>());
  std::vector<std::uint8_t> model_b(n, 0);
  s.fill(b.view<std::uint8_t>(), std::uint8_t{0});

  // h2d of 333 bytes at offset 7
  std::vector<std::uint8_t> patch(333);
  for (std::size_t i = 0; i < patch.size(); ++i) patch[i] = static_cast<std::uint8_t>(255 - i);
  s.copy(patch, a.view<std::uint8_t>(7, patch.size()));
  std::copy(patch.begin(), patch.end(), model.begin() + 7);
  // d2d from a[3, 3 + 211) to b[501, ...)
  s.copy(a.view<std::uint8_t>(3, 211), b.view<std::uint8_t>(501, 211));
  std::copy(model.begin() + 3, model.begin() + 3 + 211, model_b.begin() + 501);
  // d2d within one buffer, non-overlapping
  s.copy(a.view<std::uint8_t>(0, 100), a.view<std::uint8_t>(899, 100));
  std::copy(model.begin(), model.begin() + 100, model.begin() + 899);
  // d2h of a partial view into the middle of a host array
  std::vector<std::uint8_t> part(101);
  s.copy(a.view<std::uint8_t>(13, 101), part);
  std::vector<std::uint8_t> raw(50, 0xEE);
  s.copy(b.view<std::uint8_t>(499, 47), raw.data() + 1, 47);
  s.copy(a, host);
  std::vector<std::uint8_t> host_b(n);
  s.copy(b, host_b);
  s.synchronize();
  EXPECT_EQ(host, model);
  EXPECT_EQ(host_b, model_b);
  EXPECT_TRUE(std::equal(part.begin(), part.end(), model.begin() + 13));
  EXPECT_EQ(raw[0], 0xEE);
  EXPECT_TRUE(std::equal(raw.begin() + 1, raw.begin() + 48, model_b.begin() + 499));
  EXPECT_EQ(raw[48], 0xEE);

  // typed copies of a non-byte type at element offsets
  axle::Buffer f = dev().alloc<double>(64);
  std::vector<double> fd(64), back(64);
  for (int i = 0; i < 64; ++i) fd[i] = i * 0.5 - 3;
  s.copy(fd, f.view<double>());
  std::vector<double> mid(9, 42.25);
  s.copy(mid, f.view<double>(31, 9));
  std::copy(mid.begin(), mid.end(), fd.begin() + 31);
  s.copy(f.view<double>(), back);
  s.synchronize();
  EXPECT_EQ(back, fd);
}

TEST_P(DeviceTest, CopyErrors) {
  axle::Stream s = dev().create_stream();
  axle::Buffer a = dev().alloc<int>(16), b = dev().alloc<int>(16);
  std::vector<int> ten(10), eleven(11);
  AXLE_EXPECT_THROW_MSG(s.copy(ten, a.view<int>(0, 11)), axle::OutOfRange, {"10", "11"});
  AXLE_EXPECT_THROW_MSG(s.copy(a.view<int>(2, 11), ten), axle::OutOfRange, {"11", "10"});
  AXLE_EXPECT_THROW_MSG(s.copy(a.view<int>(0, 4), b.view<int>(0, 5)), axle::OutOfRange, {"4", "5"});
  AXLE_EXPECT_THROW_MSG(s.copy(eleven, a.view<int>(6, 11)), axle::OutOfRange, {"does not fit"});
  AXLE_EXPECT_THROW_MSG(s.copy_h2d_bytes(ten.data(), a, 60, 8), axle::OutOfRange, {"60", "64 bytes"});
  AXLE_EXPECT_THROW_MSG(s.copy_d2h_bytes(a, 0, ten.data(), 65), axle::OutOfRange, {"65", "64 bytes"});
  AXLE_EXPECT_THROW_MSG(s.copy_d2d_bytes(a, 8, b, 57, 8), axle::OutOfRange, {"57", "destination"});
  AXLE_EXPECT_THROW_MSG(s.copy_h2d_bytes(nullptr, a, 0, 8), axle::InvalidArgument, {"null host pointer"});
  // overlapping device-to-device copies in one buffer
  AXLE_EXPECT_THROW_MSG(s.copy(a.view<int>(0, 8), a.view<int>(4, 8)), axle::InvalidArgument, {"overlap"});
  AXLE_EXPECT_THROW_MSG(s.copy(a.view<int>(5, 8), a.view<int>(0, 8)), axle::InvalidArgument, {"overlap"});
  AXLE_EXPECT_THROW_MSG(s.copy(a.view<int>(0, 8), a.view<int>(0, 8)), axle::InvalidArgument, {"overlap"});
  // zero-sized copies are no-ops
  std::vector<int> none;
  s.copy(none, a.view<int>(16, 0));
  s.synchronize();
}

TEST_P(DeviceTest, FillPatternsAtOffsets) {
  axle::Stream s = dev().create_stream();
  const std::size_t n = 4096;
  axle::Buffer b = dev().alloc_bytes(n);
  std::vector<std::uint8_t> model(n, 0x5A), host(n);
  s.fill(b.view<std::uint8_t>(), std::uint8_t{0x5A});
  auto put = [&](std::size_t off, const void* pat, std::size_t psize, std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) std::memcpy(model.data() + off + i * psize, pat, psize);
  };
  const std::uint8_t p1 = 0xC3;
  s.fill(b.view<std::uint8_t>(1, 5), p1);
  put(1, &p1, 1, 5);
  const std::uint16_t p2 = 0xBEEF;
  s.fill(b.view<std::uint16_t>(5, 9), p2);
  put(10, &p2, 2, 9);
  const std::uint32_t p4 = 0xDEADBEEFu;
  s.fill(b.view<std::uint32_t>(11, 33), p4);
  put(44, &p4, 4, 33);
  const std::uint64_t p8 = 0x0123456789ABCDEFull;
  s.fill(b.view<std::uint64_t>(27, 17), p8);
  put(216, &p8, 8, 17);
  const float pf = -1.25f;
  s.fill(b.view<float>(200, 10), pf);
  put(800, &pf, 4, 10);
  const Float4 p16{1.0f, -2.0f, 3.5f, 1e30f};
  s.fill(b.view<Float4>(70, 12), p16);
  put(1120, &p16, 16, 12);
  s.fill(b.view<std::uint64_t>(511, 1), p8);  // the very end
  put(4088, &p8, 8, 1);
  s.copy(b.view<std::uint8_t>(), host);
  s.synchronize();
  EXPECT_EQ(host, model);

  std::uint8_t pat3[3] = {1, 2, 3};
  AXLE_EXPECT_THROW_MSG(s.fill_bytes(b, 0, 6, pat3, 3), axle::InvalidArgument, {"pattern size 3"});
  std::uint32_t pat4 = 7;
  AXLE_EXPECT_THROW_MSG(s.fill_bytes(b, 2, 8, &pat4, 4), axle::InvalidArgument, {"multiples", "4"});
  AXLE_EXPECT_THROW_MSG(s.fill_bytes(b, 4, 6, &pat4, 4), axle::InvalidArgument, {"multiples"});
  AXLE_EXPECT_THROW_MSG(s.fill_bytes(b, 4092, 8, &pat4, 4), axle::OutOfRange, {"4096 bytes"});
}

TEST_P(DeviceTest, PinnedCopies) {
  axle::Stream s = dev().create_stream();
  const std::size_t n = 1 << 16;
  axle::PinnedBuffer<std::uint32_t> in = dev().alloc_pinned<std::uint32_t>(n);
  axle::PinnedBuffer<std::uint32_t> out = dev().alloc_pinned<std::uint32_t>(n);
  ASSERT_NE(in.data(), nullptr);
  ASSERT_EQ(in.size(), n);
  ASSERT_EQ(static_cast<std::size_t>(in.end() - in.begin()), n);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<std::uint32_t>(i * 2654435761u);
  std::fill(out.begin(), out.end(), 0u);
  axle::Buffer d = dev().alloc<std::uint32_t>(n);
  s.copy(in, d.view<std::uint32_t>());
  s.copy(d.view<std::uint32_t>(), out);
  s.synchronize();
  EXPECT_TRUE(std::equal(in.begin(), in.end(), out.begin()));
  // partial copies through pointers into pinned memory
  const std::uint32_t sentinel = 0xdeadbeefu;
  std::fill(out.begin(), out.end(), sentinel);
  s.copy(d.view<std::uint32_t>(100, 50), out.data() + 7, 50);
  s.synchronize();
  EXPECT_EQ(out[6], sentinel) << "the copy wrote before its destination";
  EXPECT_EQ(out[57], sentinel) << "the copy wrote past its destination";
  EXPECT_TRUE(std::equal(out.data() + 7, out.data() + 57, in.data() + 100));
  // and host -> device through a pointer into pinned memory, at an offset
  s.copy(in.data() + 3, 20, d.view<std::uint32_t>(10, 20));
  s.copy(d.view<std::uint32_t>(), out);
  s.synchronize();
  EXPECT_TRUE(std::equal(out.data() + 10, out.data() + 30, in.data() + 3));
  EXPECT_EQ(out[9], in[9]) << "the copy wrote before its destination";
  EXPECT_EQ(out[30], in[30]) << "the copy wrote past its destination";
  // move keeps the memory; reset releases it
  std::uint32_t* p = in.data();
  axle::PinnedBuffer<std::uint32_t> moved(std::move(in));
  EXPECT_EQ(moved.data(), p);
  EXPECT_EQ(moved.size(), n);
  EXPECT_EQ(in.data(), nullptr);  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(in.size(), 0u);       // NOLINT(bugprone-use-after-move)
  moved.reset();
  EXPECT_EQ(moved.data(), nullptr);
  EXPECT_EQ(moved.size(), 0u);
}

// ---------------------------------------------------------------- kernels

TEST_P(DeviceTest, ProgramAndKernelInfo) {
  axle::Program p = program();
  ASSERT_TRUE(p.valid());
  EXPECT_EQ(p.device(), dev());
  auto names = p.kernel_names();
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"add_scalar", "group_sum", "index3d", "iota", "scalars", "spin"}));
  axle::Kernel k = p.kernel("scalars");
  EXPECT_EQ(k.name(), "scalars");
  EXPECT_EQ(k.num_args(), 13u);
  EXPECT_EQ(p.kernel("iota").num_args(), 2u);
  EXPECT_GT(k.max_work_group_size(), 0u);
  EXPECT_LE(k.max_work_group_size(), dev().info().max_work_group_size);
  EXPECT_EQ(k.device(), dev());
  EXPECT_NE(k.native_handle(), nullptr);
  EXPECT_NE(p.native_handle(), nullptr);
  EXPECT_EQ(p.cache_key().size(), 64u);
  AXLE_EXPECT_THROW_MSG(p.kernel("no_such_kernel"), axle::KernelNotFound,
                        {"no_such_kernel", "add_scalar", "group_sum", "index3d", "iota", "scalars", "spin"});
  axle::Kernel none;
  EXPECT_FALSE(none.valid());
  AXLE_EXPECT_THROW_MSG(none.name(), axle::InvalidArgument, {"empty Kernel"});
  axle::Program nop;
  AXLE_EXPECT_THROW_MSG(nop.kernel("iota"), axle::InvalidArgument, {"empty Program"});
}

TEST_P(DeviceTest, InMemoryBuildCache) {
  const axle::Source src = axle::Source::portable(kKernels, "conformance.cl");
  axle::Program a = dev().build(src), b = dev().build(src);
  EXPECT_EQ(a.native_handle(), b.native_handle());
  EXPECT_EQ(a.cache_key(), b.cache_key());
  axle::BuildOptions o1, o2, o3;
  o1.define("AXLE_TEST_VARIANT", 1);
  o2.define("AXLE_TEST_VARIANT", 2);
  o3.define("AXLE_TEST_VARIANT", 1);
  axle::Program p1 = dev().build(src, o1), p2 = dev().build(src, o2), p3 = dev().build(src, o3);
  EXPECT_NE(p1.cache_key(), a.cache_key());
  EXPECT_NE(p1.cache_key(), p2.cache_key());
  EXPECT_EQ(p1.cache_key(), p3.cache_key());
  EXPECT_EQ(p1.native_handle(), p3.native_handle());
  EXPECT_NE(p1.native_handle(), p2.native_handle());
  // The source name is not part of the compiled program.
  EXPECT_EQ(dev().build(axle::Source::portable(kKernels, "renamed.cl")).cache_key(), a.cache_key());
  AXLE_EXPECT_THROW_MSG(dev().build(axle::Source::portable("", "empty.cl")), axle::InvalidArgument,
                        {"empty.cl", "empty"});
}

TEST_P(DeviceTest, LaunchScalarsOfEverySize) {
  axle::Stream s = dev().create_stream();
  axle::Kernel k = program().kernel("scalars");
  axle::Buffer out = dev().alloc<std::int64_t>(10), outf = dev().alloc<float>(6);
  const char c = -5;
  const unsigned char uc = 250;
  const std::int16_t sh = -30000;
  const std::uint16_t us = 65000;
  const std::int32_t i = -2000000000;
  const std::uint32_t ui = 4000000000u;
  const std::int64_t l = -(std::int64_t{1} << 50) - 3;
  const std::uint64_t ul = (std::uint64_t{1} << 62) + 9;
  const float f = 3.25f;
  const Float4 v{1.5f, -2.5f, 8.0f, 1e-3f};
  const Pod16 pod{-77, 6.5f, std::int64_t{1} << 40};
  s.launch(k, axle::Range{1}, axle::Range{1}, out.view<std::int64_t>(), outf.view<float>(), c, uc, sh, us, i, ui, l,
           ul, f, v, pod);
  std::vector<std::int64_t> r(10);
  std::vector<float> rf(6);
  s.copy(out, r);
  s.copy(outf, rf);
  s.synchronize();
  EXPECT_EQ(r, (std::vector<std::int64_t>{c, uc, sh, us, i, ui, l, static_cast<std::int64_t>(ul), pod.a, pod.c}));
  EXPECT_EQ(rf, (std::vector<float>{f, v.x, v.y, v.z, v.w, pod.b}));
}

TEST_P(DeviceTest, LaunchDouble) {
  if (!dev().info().fp64) GTEST_SKIP() << dev().id() << " has no fp64";
  axle::Stream s = dev().create_stream();
  axle::Kernel k = dev().build(axle::Source::portable(kFp64Kernel, "fp64.cl")).kernel("scale_d");
  std::vector<double> x(256), y(256);
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = 1.0 / (1.0 + static_cast<double>(i));
  axle::Buffer b = dev().alloc<double>(x.size());
  s.copy(x, b.view<double>());
  const double a = 1.0 + 1e-12;
  s.launch(k, axle::Range{x.size()}, axle::Range{}, b.view<double>(), a);
  s.copy(b, y);
  s.synchronize();
  for (std::size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i] * a) << i;
}

TEST_P(DeviceTest, Ranges1D2D3DAndBackendChosenLocal) {
  axle::Stream s = dev().create_stream();
  axle::Kernel k = program().kernel("index3d");
  auto expect = [&](std::size_t nx, std::size_t ny, std::size_t nz, const axle::Range& g, const axle::Range& l) {
    axle::Buffer b = dev().alloc<std::uint32_t>(nx * ny * nz);
    s.fill(b.view<std::uint32_t>(), 0u);
    s.launch(k, g, l, b.view<std::uint32_t>());
    std::vector<std::uint32_t> h(nx * ny * nz);
    s.copy(b, h);
    s.synchronize();
    std::size_t bad = 0;
    for (std::size_t z = 0; z < nz; ++z)
      for (std::size_t y = 0; y < ny; ++y)
        for (std::size_t x = 0; x < nx; ++x)
          if (h[(z * ny + y) * nx + x] != static_cast<std::uint32_t>(x + 1000 * y + 1000000 * z) + 1u) ++bad;
    EXPECT_EQ(bad, 0u) << "global " << g.str() << " local " << l.str();
  };
  expect(256, 1, 1, axle::Range{256}, axle::Range{64});
  expect(1000, 1, 1, axle::Range{1000}, axle::Range{});
  expect(32, 12, 1, axle::Range{32, 12}, axle::Range{8, 4});
  expect(33, 7, 1, axle::Range{33, 7}, axle::Range{});
  expect(8, 6, 4, axle::Range{8, 6, 4}, axle::Range{4, 2, 2});
  expect(5, 3, 7, axle::Range{5, 3, 7}, axle::Range{});
}

TEST_P(DeviceTest, LocalMemoryArgument) {
  axle::Stream s = dev().create_stream();
  axle::Kernel k = program().kernel("group_sum");
  const std::size_t local = std::min<std::size_t>(64, k.max_work_group_size());
  const std::size_t groups = 16, n = groups * local;
  std::vector<float> in(n), sums(groups);
  for (std::size_t i = 0; i < n; ++i) in[i] = static_cast<float>(i % 13);
  axle::Buffer din = dev().alloc<float>(n), dsums = dev().alloc<float>(groups);
  s.copy(in, din.view<float>());
  s.launch(k, axle::Range{n}, axle::Range{local}, din.view<float>(), dsums.view<float>(), axle::local<float>(local));
  s.copy(dsums, sums);
  s.synchronize();
  for (std::size_t g = 0; g < groups; ++g) {
    float want = 0;
    for (std::size_t i = 0; i < local; ++i) want += in[g * local + i];
    EXPECT_EQ(sums[g], want) << "group " << g;
  }
  // More local memory than the device has.
  const std::uint64_t lm = dev().info().local_mem_bytes;
  AXLE_EXPECT_THROW_MSG(s.launch(k, axle::Range{n}, axle::Range{local}, din.view<float>(), dsums.view<float>(),
                                 axle::LocalMem{static_cast<std::size_t>(lm) + 4}),
                        axle::InvalidArgument, {std::to_string(lm + 4), "local memory"});
  AXLE_EXPECT_THROW_MSG(
      s.launch(k, axle::Range{n}, axle::Range{local}, din.view<float>(), dsums.view<float>(), axle::LocalMem{0}),
      axle::InvalidArgument, {"argument 2", "zero-byte local memory"});
}

TEST_P(DeviceTest, BufferViewArguments) {
  axle::Stream s = dev().create_stream();
  axle::Kernel k = program().kernel("add_scalar");
  const std::size_t n = 4096, off = 1024;  // 4 KiB: aligned for any OpenCL sub-buffer rule
  std::vector<float> x(n, 1.0f), y(n);
  axle::Buffer b = dev().alloc<float>(n);
  s.copy(x, b.view<float>());
  // offset 0 view, whole buffer, aligned non-zero view offset
  s.launch(k, axle::Range{256}, axle::Range{}, b.view<float>(0, 256), 1.0f, 256u);
  s.launch(k, axle::Range{n}, axle::Range{}, b, 10.0f, static_cast<std::uint32_t>(n));
  s.launch(k, axle::Range{512}, axle::Range{}, b.view<float>(off, 512), 100.0f, 512u);
  s.launch(k, axle::Range{512}, axle::Range{}, b.view<float>(off).sub(1024, 512), 1000.0f, 512u);
  s.copy(b, y);
  s.synchronize();
  for (std::size_t i = 0; i < n; ++i) {
    float want = 11.0f + (i < 256 ? 1.0f : 0.0f) + (i >= off && i < off + 512 ? 100.0f : 0.0f) +
                 (i >= 2 * off && i < 2 * off + 512 ? 1000.0f : 0.0f);
    ASSERT_EQ(y[i], want) << i;
  }
  // A view at an odd element offset: OpenCL cannot make such a sub-buffer and must
  // say how to work around it; other backends take it.
  if (backend() == "opencl") {
    AXLE_EXPECT_THROW_MSG(s.launch(k, axle::Range{16}, axle::Range{}, b.view<float>(1, 16), 1.0f, 16u),
                          axle::InvalidArgument, {"argument 0", "offset 4", "offset as a scalar"});
  } else {
    s.launch(k, axle::Range{16}, axle::Range{}, b.view<float>(1, 16), 5.0f, 16u);
    s.copy(b, y);
    s.synchronize();
    EXPECT_EQ(y[0], 12.0f);
    EXPECT_EQ(y[1], 17.0f);
    EXPECT_EQ(y[16], 17.0f);
    EXPECT_EQ(y[17], 11.0f);
  }
}

TEST_P(DeviceTest, LaunchErrors) {
  axle::Stream s = dev().create_stream();
  axle::Program p = program();
  axle::Kernel iota = p.kernel("iota");
  axle::Buffer b = dev().alloc<int>(256);
  const int base = 1;
  // argument count
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{256}, axle::Range{}, b.view<int>()), axle::InvalidArgument,
                        {"iota", "1 argument(s) given", "takes 2"});
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{256}, axle::Range{}, b.view<int>(), base, base),
                        axle::InvalidArgument, {"3 argument(s) given", "takes 2"});
  // a buffer where a scalar is declared, and the other way round
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{256}, axle::Range{}, b.view<int>(), b.view<int>()),
                        axle::InvalidArgument, {"argument 1"});
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{256}, axle::Range{}, base, base), axle::InvalidArgument,
                        {"argument 0"});
  // a scalar of the wrong size (the backend knows the declared size on OpenCL)
  try {
    s.launch(iota, axle::Range{256}, axle::Range{}, b.view<int>(), std::int64_t{1});
    s.synchronize();
    EXPECT_NE(backend(), "opencl") << "OpenCL knows the parameter sizes and must reject an 8-byte int";
  } catch (const axle::InvalidArgument& e) {
    EXPECT_TRUE(axle_test::contains_all(e.what(), {"argument 1", "8 bytes", "4 bytes"}));
  }
  // ranges
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{100}, axle::Range{64}, b.view<int>(), base), axle::InvalidArgument,
                        {"{100}", "not a multiple", "{64}"});
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{16, 16}, axle::Range{8, 3}, b.view<int>(), base),
                        axle::InvalidArgument, {"not a multiple"});
  const std::size_t too_big = std::max(dev().info().max_work_group_size, iota.max_work_group_size()) * 2;
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{too_big}, axle::Range{too_big}, b.view<int>(), base),
                        axle::InvalidArgument, {std::to_string(too_big), "exceeds"});
  // A 2D group whose every side fits the device but whose total exceeds the kernel's limit.
  const auto& items = dev().info().max_work_item_sizes;
  const std::size_t kmax = iota.max_work_group_size();
  const std::size_t lx = std::min(items[0], kmax), ly = kmax / lx + 1;
  if (ly <= items[1])
    AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{lx, ly}, axle::Range{lx, ly}, b.view<int>(), base),
                          axle::InvalidArgument, {std::to_string(lx * ly), "exceeds this kernel's limit"});
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{64}, axle::Range{8, 8}, b.view<int>(), base), axle::InvalidArgument,
                        {"different dimensions"});
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{}, axle::Range{}, b.view<int>(), base), axle::InvalidArgument,
                        {"empty global range"});
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{64, 0}, axle::Range{}, b.view<int>(), base), axle::InvalidArgument,
                        {"zero dimension"});
  AXLE_EXPECT_THROW_MSG(s.launch(axle::Kernel{}, axle::Range{64}, axle::Range{}, b.view<int>(), base),
                        axle::InvalidArgument, {"empty Kernel"});
  axle::Buffer gone = dev().alloc<int>(4);
  gone.reset();
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{4}, axle::Range{}, gone, base), axle::InvalidArgument,
                        {"argument 0", "empty Buffer"});
}

TEST_P(DeviceTest, StreamUsableAfterErrors) {
  axle::Stream s = dev().create_stream();
  axle::Kernel iota = program().kernel("iota");
  axle::Buffer b = dev().alloc<int>(512);
  std::vector<int> ten(10);
  EXPECT_THROW(s.launch(iota, axle::Range{512}, axle::Range{}, b.view<int>()), axle::InvalidArgument);
  EXPECT_THROW(s.launch(iota, axle::Range{512}, axle::Range{}, b.view<int>(), b.view<int>()), axle::InvalidArgument);
  EXPECT_THROW(s.launch(iota, axle::Range{500}, axle::Range{64}, b.view<int>(), 0), axle::InvalidArgument);
  EXPECT_THROW(s.copy(ten, b.view<int>()), axle::OutOfRange);
  EXPECT_THROW(s.copy(b.view<int>(0, 8), b.view<int>(4, 8)), axle::InvalidArgument);
  // A correct copy and launch afterwards work on the same stream and buffer.
  std::vector<int> init(512, -1), out(512);
  s.copy(init, b.view<int>());
  s.launch(iota, axle::Range{256}, axle::Range{64}, b.view<int>(), 7);
  s.copy(b, out);
  s.synchronize();
  for (int i = 0; i < 512; ++i) ASSERT_EQ(out[i], i < 256 ? 7 + i : -1) << i;
}

TEST_P(DeviceTest, BuildErrors) {
  const std::string bad = "AXLE_KERNEL void broken(AXLE_GLOBAL int* out) {\n  out[0] = undeclared_thing_xyz;\n}\n";
  try {
    dev().build(axle::Source::portable(bad, "broken.cl"));
    ADD_FAILURE() << "a kernel with an undeclared identifier built";
  } catch (const axle::BuildError& e) {
    EXPECT_NE(e.log().find("undeclared_thing_xyz"), std::string::npos) << e.log();
    EXPECT_NE(e.log().find("error"), std::string::npos) << e.log();
    EXPECT_TRUE(axle_test::contains_all(e.what(), {"broken.cl", "undeclared_thing_xyz"}));
    EXPECT_EQ(e.backend(), backend());
  }
  // The failed build is not cached: the same text fails again with the log.
  EXPECT_THROW(dev().build(axle::Source::portable(bad, "broken.cl")), axle::BuildError);
  // Native source of the other backend.
  if (backend() == "opencl") {
    AXLE_EXPECT_THROW_MSG(dev().build(axle::Source::cuda("extern \"C\" __global__ void k() {}", "k.cu")),
                          axle::Unsupported, {"k.cu", "CUDA"});
    // Native OpenCL C builds here.
    axle::Program p = dev().build(axle::Source::opencl("__kernel void k(__global int* o) { o[0] = 1; }", "k.cl"));
    EXPECT_EQ(p.kernel_names(), std::vector<std::string>{"k"});
  } else if (backend() == "cuda") {
    AXLE_EXPECT_THROW_MSG(dev().build(axle::Source::opencl("__kernel void k(__global int* o) { o[0] = 1; }", "k.cl")),
                          axle::Unsupported, {"k.cl"});
  }
  AXLE_EXPECT_THROW_MSG(axle::Source::from_file("/nonexistent/dir/x.cl"), axle::InvalidArgument,
                        {"/nonexistent/dir/x.cl"});
}

TEST_P(DeviceTest, EmptyHandles) {
  axle::Stream s = dev().create_stream();
  axle::Stream moved = std::move(s);
  EXPECT_FALSE(s.valid());  // NOLINT(bugprone-use-after-move)
  axle::Buffer b = dev().alloc<int>(8);
  std::vector<int> h(8);
  AXLE_EXPECT_THROW_MSG(s.copy(h, b.view<int>()), axle::InvalidArgument, {"empty", "Stream"});
  AXLE_EXPECT_THROW_MSG(s.synchronize(), axle::InvalidArgument, {"empty", "Stream"});
  AXLE_EXPECT_THROW_MSG(s.record(), axle::InvalidArgument, {"empty", "Stream"});
  AXLE_EXPECT_THROW_MSG(s.native_handle(), axle::InvalidArgument, {"empty", "Stream"});
  axle::Buffer b2 = std::move(b);
  AXLE_EXPECT_THROW_MSG(moved.copy(h, b.view<int>()), axle::InvalidArgument, {"empty"});
  AXLE_EXPECT_THROW_MSG(moved.copy_h2d_bytes(h.data(), b, 0, 4), axle::InvalidArgument, {"empty", "Buffer"});
  AXLE_EXPECT_THROW_MSG(moved.copy_d2d_bytes(b2, 0, b, 0, 4), axle::InvalidArgument, {"empty", "Buffer"});
  axle::Event e = moved.record();
  axle::Event e2 = std::move(e);
  EXPECT_FALSE(e.valid());  // NOLINT(bugprone-use-after-move)
  EXPECT_FALSE(e.recorded());
  AXLE_EXPECT_THROW_MSG(e.query(), axle::InvalidArgument, {"empty", "Event"});
  AXLE_EXPECT_THROW_MSG(e.synchronize(), axle::InvalidArgument, {"empty", "Event"});
  AXLE_EXPECT_THROW_MSG(moved.wait(e), axle::InvalidArgument, {"empty Event"});
  AXLE_EXPECT_THROW_MSG(moved.record(e), axle::InvalidArgument, {"empty Event"});
  AXLE_EXPECT_THROW_MSG(e2.elapsed_ms(e), axle::InvalidArgument, {"empty", "Event"});
  // the live objects still work
  moved.copy(h, b2.view<int>());
  moved.synchronize();
  // Stream move assignment over a live stream waits for and replaces it.
  axle::Stream other = dev().create_stream();
  other = std::move(moved);
  EXPECT_TRUE(other.valid());
  EXPECT_FALSE(moved.valid());  // NOLINT(bugprone-use-after-move)
  axle::Stream& alias = other;
  other = std::move(alias);
  ASSERT_TRUE(other.valid());
  other.copy(b2.view<int>(), h);
  other.synchronize();
}

// ---------------------------------------------------------------- ordering and events

TEST_P(DeviceTest, EventOrdersTwoStreams) {
  axle::Kernel spin = program().kernel("spin");
  axle::Stream a = dev().create_stream(), b = dev().create_stream();
  const std::uint32_t n = 2048, seed = 12345;
  const std::uint32_t iters = backend() == "opencl" && dev().info().type == axle::DeviceType::CPU ? 40000 : 400000;
  axle::Buffer buf = dev().alloc<std::uint32_t>(n), copy = dev().alloc<std::uint32_t>(n);
  a.fill(buf.view<std::uint32_t>(), 0u);
  b.fill(copy.view<std::uint32_t>(), 0u);
  a.synchronize();
  b.synchronize();

  a.launch(spin, axle::Range{n}, axle::Range{}, buf.view<std::uint32_t>(), iters, seed);
  axle::Event done = a.record();
  EXPECT_TRUE(done.recorded());
  b.wait(done);
  b.copy(buf.view<std::uint32_t>(), copy.view<std::uint32_t>());
  std::vector<std::uint32_t> direct(n), via_copy(n);
  b.copy(buf.view<std::uint32_t>(), direct);
  b.copy(copy.view<std::uint32_t>(), via_copy);
  b.synchronize();
  EXPECT_TRUE(done.query());
  std::size_t bad = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t want = lcg(seed + i, iters);
    bad += direct[i] != want;
    bad += via_copy[i] != want;
  }
  EXPECT_EQ(bad, 0u) << "stream B read the buffer before stream A's kernel had written it";
}

TEST_P(DeviceTest, EventsRecordQueryTime) {
  axle::Kernel spin = program().kernel("spin");
  axle::Stream s = dev().create_stream();
  axle::Buffer buf = dev().alloc<std::uint32_t>(1024);
  axle::Event never = dev().create_event();
  EXPECT_TRUE(never.valid());
  EXPECT_FALSE(never.recorded());
  AXLE_EXPECT_THROW_MSG(never.query(), axle::InvalidArgument, {"never recorded"});
  AXLE_EXPECT_THROW_MSG(never.synchronize(), axle::InvalidArgument, {"never recorded"});
  AXLE_EXPECT_THROW_MSG(s.wait(never), axle::InvalidArgument, {"never recorded"});

  // Warm up (first launches may compile for the work-group size).
  s.launch(spin, axle::Range{1024}, axle::Range{}, buf.view<std::uint32_t>(), 1u, 1u);
  s.synchronize();

  axle::Event start = s.record();
  AXLE_EXPECT_THROW_MSG(start.elapsed_ms(never), axle::InvalidArgument, {"recorded"});
  AXLE_EXPECT_THROW_MSG(never.elapsed_ms(start), axle::InvalidArgument, {"recorded"});
  const auto t0 = std::chrono::steady_clock::now();
  s.launch(spin, axle::Range{1024}, axle::Range{}, buf.view<std::uint32_t>(), 20000u, 1u);
  axle::Event stop = dev().create_event();
  s.record(stop);
  EXPECT_NE(stop.native_handle(), nullptr);
  stop.synchronize();
  const double host_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_TRUE(stop.query());
  EXPECT_TRUE(start.query());
  const float ms = stop.elapsed_ms(start);
  EXPECT_GE(ms, 0.0f);
  (void)host_ms;  // (wall-clock bounds are not asserted: timing stays out of tests)
  EXPECT_EQ(axle::elapsed_ms(start, stop), ms);
  const float back = start.elapsed_ms(stop);
  EXPECT_LE(back, 0.0f);
  EXPECT_NEAR(back, -ms, 1e-3f + 1e-3f * ms) << "the two directions of one interval disagree";

  // Re-recording moves the event to the new point: intervals of one stream add up.
  axle::Event mid = dev().create_event();
  s.record(mid);
  s.launch(spin, axle::Range{1024}, axle::Range{}, buf.view<std::uint32_t>(), 20000u, 2u);
  s.record(stop);
  stop.synchronize();
  const float first = mid.elapsed_ms(start), second = stop.elapsed_ms(mid), whole = stop.elapsed_ms(start);
  EXPECT_GE(first, ms);
  EXPECT_GE(second, 0.0f);
  EXPECT_GE(whole, first);
  EXPECT_NEAR(whole, first + second, 1e-3f + 1e-3f * whole) << "intervals of one stream do not add up";
}

TEST_P(DeviceTest, DeviceSynchronizeWaitsForAllStreams) {
  axle::Kernel spin = program().kernel("spin");
  axle::Stream s1 = dev().create_stream(), s2 = dev().create_stream();
  const std::uint32_t n = 1024, iters = 20000;
  axle::Buffer b1 = dev().alloc<std::uint32_t>(n), b2 = dev().alloc<std::uint32_t>(n);
  std::vector<std::uint32_t> h1(n), h2(n);
  s1.launch(spin, axle::Range{n}, axle::Range{}, b1.view<std::uint32_t>(), iters, 1u);
  s1.copy(b1.view<std::uint32_t>(), h1);
  axle::Event e1 = s1.record();
  s2.launch(spin, axle::Range{n}, axle::Range{}, b2.view<std::uint32_t>(), iters, 2u);
  s2.copy(b2.view<std::uint32_t>(), h2);
  axle::Event e2 = s2.record();
  dev().synchronize();
  EXPECT_TRUE(e1.query());
  EXPECT_TRUE(e2.query());
  EXPECT_EQ(h1[5], lcg(1 + 5, iters));
  EXPECT_EQ(h2[n - 1], lcg(2 + n - 1, iters));
}

TEST_P(DeviceTest, AdoptNativeStreamWithoutOwning) {
  axle::Stream owner = dev().create_stream();
  void* q = owner.native_handle();
  ASSERT_NE(q, nullptr);
  axle::Buffer b = dev().alloc<int>(64);
  std::vector<int> in(64), out(64);
  std::iota(in.begin(), in.end(), 3);
  {
    axle::Stream adopted = axle::Stream::adopt(dev(), q);
    EXPECT_EQ(adopted.native_handle(), q);
    adopted.copy(in, b.view<int>());
    adopted.synchronize();
  }  // must not destroy the queue it does not own
  owner.copy(b, out);
  owner.synchronize();
  EXPECT_EQ(out, in);
  AXLE_EXPECT_THROW_MSG(axle::Stream::adopt(dev(), nullptr), axle::InvalidArgument, {"null"});
}

TEST_P(DeviceTest, BufferFromAnotherDevice) {
  const auto all = axle::devices();
  const axle::Device* other = nullptr;
  for (const auto& d : all)
    if (d != dev()) other = &d;
  if (!other) GTEST_SKIP() << "only one device is available: a buffer of another device cannot be made";
  axle::Stream s = dev().create_stream();
  axle::Buffer foreign = other->alloc<int>(16), mine = dev().alloc<int>(16);
  std::vector<int> h(16);
  AXLE_EXPECT_THROW_MSG(s.copy(h, foreign.view<int>()), axle::InvalidArgument, {other->id(), dev().id()});
  AXLE_EXPECT_THROW_MSG(s.copy(foreign.view<int>(), mine.view<int>()), axle::InvalidArgument, {other->id()});
  axle::Kernel iota = program().kernel("iota");
  AXLE_EXPECT_THROW_MSG(s.launch(iota, axle::Range{16}, axle::Range{}, foreign.view<int>(), 0), axle::InvalidArgument,
                        {"argument 0", other->id()});
  axle::Kernel foreign_kernel = other->build(axle::Source::portable(kKernels, "conformance.cl")).kernel("iota");
  AXLE_EXPECT_THROW_MSG(s.launch(foreign_kernel, axle::Range{16}, axle::Range{}, mine.view<int>(), 0),
                        axle::InvalidArgument, {"built for", other->id()});
  axle::Event foreign_event = other->create_stream().record();
  AXLE_EXPECT_THROW_MSG(s.wait(foreign_event), axle::InvalidArgument, {other->id()});
}

// ---------------------------------------------------------------- native interop

TEST_P(DeviceTest, OpenCLInterop) {
#if AXLE_TEST_WITH_OPENCL
  if (backend() != "opencl") GTEST_SKIP() << "OpenCL interop applies to OpenCL devices only";
  cl_context ctx = axle::opencl::context(dev());
  cl_device_id did = axle::opencl::device_id(dev());
  ASSERT_NE(ctx, nullptr);
  ASSERT_NE(did, nullptr);
  axle::Stream own = dev().create_stream();
  axle::Program p = program();
  axle::Kernel iota = p.kernel("iota");
  EXPECT_NE(axle::opencl::queue(own), nullptr);
  EXPECT_NE(axle::opencl::kernel(iota), nullptr);
  EXPECT_NE(axle::opencl::program(p), nullptr);
  axle::Event ev = own.record();
  EXPECT_NE(axle::opencl::event(ev), nullptr);
  ev.synchronize();

  cl_int st = CL_SUCCESS;
  cl_command_queue q = clCreateCommandQueue(ctx, did, 0, &st);
  ASSERT_EQ(st, CL_SUCCESS);
  const std::size_t n = 256;
  cl_mem m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, n * sizeof(int), nullptr, &st);
  ASSERT_EQ(st, CL_SUCCESS);
  std::vector<int> out(n), raw(n);
  // Reference counts before Axle sees the handles, after raw work has been done on
  // them (a driver may keep references of its own to a queue it has run work on).
  ASSERT_EQ(clEnqueueWriteBuffer(q, m, CL_TRUE, 0, n * sizeof(int), out.data(), 0, nullptr, nullptr), CL_SUCCESS);
  ASSERT_EQ(clFinish(q), CL_SUCCESS);
  cl_uint mem_refs0 = 0, queue_refs0 = 0;
  ASSERT_EQ(clGetMemObjectInfo(m, CL_MEM_REFERENCE_COUNT, sizeof(mem_refs0), &mem_refs0, nullptr), CL_SUCCESS);
  ASSERT_EQ(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof(queue_refs0), &queue_refs0, nullptr),
            CL_SUCCESS);
  {
    axle::Stream s = axle::opencl::adopt_queue(dev(), q);
    axle::Buffer b = axle::opencl::adopt_buffer(dev(), m);
    EXPECT_EQ(axle::opencl::queue(s), q);
    EXPECT_EQ(axle::opencl::mem(b), m);
    EXPECT_EQ(b.size_bytes(), n * sizeof(int));
    s.launch(iota, axle::Range{n}, axle::Range{}, b.view<int>(), 100);
    s.copy(b.view<int>(), out);
    s.synchronize();
    // Work enqueued through Axle is visible to raw OpenCL on the same queue.
    ASSERT_EQ(clEnqueueReadBuffer(q, m, CL_TRUE, 0, n * sizeof(int), raw.data(), 0, nullptr, nullptr), CL_SUCCESS);
    // Two wrappers of one cl_mem are the same memory: overlapping copies are refused,
    // disjoint ones work.
    axle::Buffer twin = axle::opencl::adopt_buffer(dev(), m);
    AXLE_EXPECT_THROW_MSG(s.copy(b.view<int>(0, 8), twin.view<int>(4, 8)), axle::InvalidArgument, {"overlap"});
    s.copy(b.view<int>(0, 8), twin.view<int>(n - 8, 8));
    std::vector<int> tail(8);
    s.copy(b.view<int>(n - 8, 8), tail);
    s.synchronize();
    EXPECT_EQ(tail, std::vector<int>(out.begin(), out.begin() + 8));
  }
  for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(out[i], 100 + static_cast<int>(i));
  EXPECT_EQ(raw, out);
  // Axle released neither: both still have our one reference and still work.
  cl_uint refs = 0;
  ASSERT_EQ(clFinish(q), CL_SUCCESS);
  ASSERT_EQ(clGetMemObjectInfo(m, CL_MEM_REFERENCE_COUNT, sizeof(refs), &refs, nullptr), CL_SUCCESS);
  EXPECT_EQ(refs, mem_refs0);
  ASSERT_EQ(clGetCommandQueueInfo(q, CL_QUEUE_REFERENCE_COUNT, sizeof(refs), &refs, nullptr), CL_SUCCESS);
  EXPECT_EQ(refs, queue_refs0);
  int first = 0;
  EXPECT_EQ(clEnqueueReadBuffer(q, m, CL_TRUE, 0, sizeof(int), &first, 0, nullptr, nullptr), CL_SUCCESS);
  EXPECT_EQ(first, 100);
  EXPECT_EQ(clReleaseMemObject(m), CL_SUCCESS);
  EXPECT_EQ(clReleaseCommandQueue(q), CL_SUCCESS);

  // Handles of another context are refused.
  cl_context other = clCreateContext(nullptr, 1, &did, nullptr, nullptr, &st);
  ASSERT_EQ(st, CL_SUCCESS);
  cl_mem om = clCreateBuffer(other, CL_MEM_READ_WRITE, 64, nullptr, &st);
  cl_command_queue oq = clCreateCommandQueue(other, did, 0, &st);
  AXLE_EXPECT_THROW_MSG(axle::opencl::adopt_buffer(dev(), om), axle::InvalidArgument, {"another context"});
  AXLE_EXPECT_THROW_MSG(axle::opencl::adopt_queue(dev(), oq), axle::InvalidArgument, {"another context"});
  AXLE_EXPECT_THROW_MSG(axle::opencl::adopt_buffer(dev(), nullptr), axle::InvalidArgument, {"null"});
  clReleaseCommandQueue(oq);
  clReleaseMemObject(om);
  clReleaseContext(other);
#else
  GTEST_SKIP() << "built without the OpenCL headers for the test";
#endif
}

#ifdef __linux__
// PoCL's CPU device runs with its worker threads pinned one per core (Axle sets
// POCL_AFFINITY=1 before PoCL initialises, unless the user set it or the process may
// not run on every online CPU): after a launch, some threads of this process are
// allowed a single CPU each, and they cover every CPU.
// (Axle sets the variable while it is loaded, before main: a value other than 1 is the
// user's choice, which Axle leaves alone.)
TEST(OpenCl, PoclWorkersArePinnedByDefault) {
  if (const char* v = std::getenv("POCL_AFFINITY"); v && std::string(v) != "1")
    GTEST_SKIP() << "POCL_AFFINITY set by the user: " << v;
  std::vector<axle::Device> pocl;
  for (const auto& d : axle::devices("opencl"))
    if (d.info().platform.find("Portable Computing Language") != std::string::npos) pocl.push_back(d);
  if (pocl.empty()) GTEST_SKIP() << "no PoCL device";
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  const int allowed = CPU_COUNT(&mine);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  const char* env = std::getenv("POCL_AFFINITY");
  if (allowed != online || online < 2) {
    // Restricted (taskset, cpuset) or one CPU: PoCL would pin worker i to CPU i, which
    // may not be allowed, so Axle must leave the variable alone.
    EXPECT_EQ(env, nullptr) << "POCL_AFFINITY set on a restricted CPU set: " << env;
    return;
  }
  ASSERT_NE(env, nullptr) << "the OpenCL backend leaves POCL_AFFINITY unset";
  EXPECT_STREQ(env, "1");
  axle::Device d = pocl.front();
  axle::Program p = d.build(axle::Source::portable(kKernels));
  axle::Buffer out = d.alloc_bytes(1024 * sizeof(int));
  axle::Stream s = d.create_stream();
  s.launch(p.kernel("iota"), axle::Range(1024), axle::Range(), out.view<int>(), 0);
  s.synchronize();
  std::set<int> pinned_cpus;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) {
    const pid_t tid = static_cast<pid_t>(std::stol(entry.path().filename().string()));
    cpu_set_t set;
    if (sched_getaffinity(tid, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1) continue;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) pinned_cpus.insert(c);
  }
  EXPECT_EQ(static_cast<int>(pinned_cpus.size()), std::min<int>(allowed, static_cast<int>(d.info().compute_units)))
      << "threads pinned to single CPUs cover " << pinned_cpus.size() << " of " << allowed << " CPUs";
}
#endif
