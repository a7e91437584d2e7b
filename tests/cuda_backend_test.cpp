// CUDA backend tests.
//
// Without a driver (CUDA toolkit, no GPU): the backend is listed as unavailable with
// the loader's reason, selecting it throws DeviceUnavailable carrying that reason, and
// OpenCL keeps working in the same process.
// With a CUDA device (AXLE_DEVICE ignored: these always use cuda:0): device info,
// memory, copies, fills, launches (block choice, local memory, >48 KiB of it), events,
// interop, kernel introspection, and bad input reported as axle::Error.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

#include "axle/axle.hpp"
#include "axle/interop/cuda.hpp"
#include "backend/backend.hpp"
#include "tensor_map_check.hpp"
#include "test_util.hpp"

namespace {

bool cuda_available() {
  for (const auto& b : axle::backends())
    if (b.name == "cuda") return b.available && b.device_count > 0;
  return false;
}

const axle::BackendStatus* cuda_status() {
  static const std::vector<axle::BackendStatus> all = axle::backends();
  for (const auto& b : all)
    if (b.name == "cuda") return &b;
  return nullptr;
}

axle::BuildOptions no_disk() {
  axle::BuildOptions o;
  o.disk_cache = false;
  return o;
}

const char* kVadd = R"(
AXLE_KERNEL void vadd(AXLE_GLOBAL const float* a, AXLE_GLOBAL const float* b, AXLE_GLOBAL float* c, uint n) {
  const uint i = (uint)AXLE_GLOBAL_ID(0);
  if (i < n) c[i] = a[i] + b[i];
}
)";

}  // namespace

// ---------------------------------------------------------------- no driver

TEST(CudaBackendStatus, IsListed) {
  const auto* st = cuda_status();
  ASSERT_NE(st, nullptr) << "the CUDA backend is compiled in, so axle::backends() must list it";
  if (st->available) {
    EXPECT_GT(st->device_count, 0);
  } else {
    EXPECT_FALSE(st->reason.empty());
    EXPECT_EQ(st->device_count, 0);
  }
}

TEST(CudaBackendStatus, UnavailableWithoutDriverNamesTheReason) {
  const auto* st = cuda_status();
  ASSERT_NE(st, nullptr);
  if (st->available) GTEST_SKIP() << "a CUDA driver and device are present";
  std::printf("cuda unavailable: %s\n", st->reason.c_str());
  // On a machine without the driver the reason is the loader's message about libcuda;
  // with a driver but no device it names the cuInit / device-count outcome.
  const bool no_lib = st->reason.find("libcuda") != std::string::npos;
  const bool no_dev = st->reason.find("cuInit") != std::string::npos ||
                      st->reason.find("no CUDA device") != std::string::npos;
  EXPECT_TRUE(no_lib || no_dev) << st->reason;
  try {
    axle::select_device("cuda:0");
    ADD_FAILURE() << "select_device(\"cuda:0\") should throw without a CUDA device";
  } catch (const axle::DeviceUnavailable& e) {
    EXPECT_NE(std::string(e.what()).find(st->reason), std::string::npos) << e.what();
  }
  EXPECT_TRUE(axle::devices("cuda").empty());
}

TEST(CudaBackendStatus, OpenCLStillWorksInTheSameProcess) {
  auto cl = axle::devices("opencl");
  if (cl.empty()) GTEST_SKIP() << "no OpenCL device";
  axle::Device dev = cl.front();
  axle::Stream s = dev.create_stream();
  const unsigned n = 1000;
  std::vector<float> a(n), b(n), c(n);
  std::iota(a.begin(), a.end(), 0.0f);
  std::iota(b.begin(), b.end(), 1.0f);
  auto da = dev.alloc<float>(n), db = dev.alloc<float>(n), dc = dev.alloc<float>(n);
  s.copy(a, da);
  s.copy(b, db);
  axle::Program p = dev.build(axle::Source::portable(kVadd, "vadd"), no_disk());
  s.launch(p.kernel("vadd"), axle::Range{n}, axle::Range{}, da.view<float>(), db.view<float>(), dc.view<float>(), n);
  s.copy(dc, c);
  s.synchronize();
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(c[i], a[i] + b[i]) << i;
}

// ---------------------------------------------------------------- with a device

class CudaDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda_available()) GTEST_SKIP() << "no CUDA device: " << (cuda_status() ? cuda_status()->reason : "");
    dev_ = axle::select_device("cuda:0");
  }
  axle::Device dev_;
};

TEST_F(CudaDeviceTest, InfoIsFilledIn) {
  const auto& i = dev_.info();
  EXPECT_EQ(i.backend, "cuda");
  EXPECT_EQ(i.architecture.rfind("sm_", 0), 0u) << i.architecture;
  EXPECT_EQ(i.version.rfind("CUDA ", 0), 0u) << i.version;
  EXPECT_EQ(i.sub_group_size, 32u);
  EXPECT_GT(i.compute_units, 0u);
  EXPECT_GT(i.max_clock_mhz, 0u);
  EXPECT_GT(i.global_mem_bytes, 0u);
  EXPECT_GE(i.local_mem_bytes, 48u * 1024);
  EXPECT_GE(i.cache_bytes, 1u << 20);  // every sm_70+ GPU has at least 1 MiB of L2
  EXPECT_GE(i.max_work_group_size, 1024u);
  EXPECT_GE(i.max_work_item_sizes[0], 1024u);
  EXPECT_TRUE(i.fp64);
  EXPECT_EQ(i.type, axle::DeviceType::GPU);
  EXPECT_NE(axle::cuda::context(dev_), nullptr);
  EXPECT_EQ(axle::cuda::device_ordinal(dev_), 0);
  std::printf("%s: %s, %u SMs, %s\n", i.name.c_str(), i.architecture.c_str(), i.compute_units, i.version.c_str());
}

TEST_F(CudaDeviceTest, CopiesAndFills) {
  axle::Stream s = dev_.create_stream();
  const std::size_t n = 4096;
  auto buf = dev_.alloc<std::uint8_t>(n);
  auto other = dev_.alloc<std::uint8_t>(n);
  std::vector<std::uint8_t> host(n), back(n, 0);
  for (std::size_t i = 0; i < n; ++i) host[i] = static_cast<std::uint8_t>(i * 7);
  s.copy(host, buf);
  s.copy(buf.view<std::uint8_t>(), other.view<std::uint8_t>());
  s.copy(other, back);
  s.synchronize();
  EXPECT_EQ(host, back);

  struct P8 { std::uint32_t a, b; };
  struct P16 { std::uint32_t a, b, c, d; };
  struct P32 { std::uint32_t w[8]; };
  s.fill(buf.view<std::uint8_t>(1, 100), std::uint8_t{0xAB});
  s.fill(buf.view<std::uint16_t>(64, 10), std::uint16_t{0x1234});
  s.fill(buf.view<std::uint32_t>(64, 10), 0xDEADBEEFu);
  s.fill(buf.view<P8>(64, 20), P8{1, 2});
  s.fill(buf.view<P16>(48, 17), P16{3, 4, 5, 6});
  s.fill(buf.view<P32>(100, 3), P32{{7, 8, 9, 10, 11, 12, 13, 14}});
  s.copy(buf, back);
  s.synchronize();
  for (int i = 1; i <= 100; ++i) ASSERT_EQ(back[i], 0xAB) << i;
  std::uint16_t h16;
  std::memcpy(&h16, &back[128], 2);
  EXPECT_EQ(h16, 0x1234);
  std::uint32_t w;
  for (int i = 0; i < 10; ++i) {
    std::memcpy(&w, &back[256 + 4 * i], 4);
    ASSERT_EQ(w, 0xDEADBEEFu);
  }
  for (int i = 0; i < 20; ++i) {
    P8 p;
    std::memcpy(&p, &back[512 + 8 * i], 8);
    ASSERT_TRUE(p.a == 1 && p.b == 2) << i;
  }
  for (int i = 0; i < 17; ++i) {
    P16 p;
    std::memcpy(&p, &back[768 + 16 * i], 16);
    ASSERT_TRUE(p.a == 3 && p.b == 4 && p.c == 5 && p.d == 6) << i;
  }
  for (int i = 0; i < 3; ++i) {
    P32 p;
    std::memcpy(&p, &back[3200 + 32 * i], 32);
    for (int k = 0; k < 8; ++k) ASSERT_EQ(p.w[k], 7u + k) << i;
  }
}

TEST_F(CudaDeviceTest, PinnedCopiesAndEvents) {
  axle::Stream s = dev_.create_stream();
  const std::size_t n = 1 << 20;
  auto pin = dev_.alloc_pinned<float>(n);
  for (std::size_t i = 0; i < n; ++i) pin[i] = static_cast<float>(i);
  auto buf = dev_.alloc<float>(n);
  axle::Event start = s.record();
  s.copy(pin, buf.view<float>());
  s.fill(buf.view<float>(0, 10), 1.5f);
  s.copy(buf.view<float>(), pin);
  axle::Event end = s.record();
  end.synchronize();
  EXPECT_TRUE(end.query());
  EXPECT_GE(end.elapsed_ms(start), 0.0f);
  EXPECT_EQ(pin[0], 1.5f);
  EXPECT_EQ(pin[n - 1], static_cast<float>(n - 1));
  // Ordering across streams through an event.
  axle::Stream s2 = dev_.create_stream();
  s.fill(buf.view<float>(), 2.0f);
  s2.wait(s.record());
  s2.copy(buf.view<float>(), pin);
  s2.synchronize();
  EXPECT_EQ(pin[12345], 2.0f);
}

TEST_F(CudaDeviceTest, LaunchWithChosenAndGivenBlocks) {
  axle::Stream s = dev_.create_stream();
  axle::Program p = dev_.build(axle::Source::portable(kVadd, "vadd"), no_disk());
  axle::Kernel k = p.kernel("vadd");
  EXPECT_EQ(k.num_args(), 4u);
  EXPECT_GE(k.max_work_group_size(), 256u);
  EXPECT_NE(axle::cuda::function(k), nullptr);
  const auto names = p.kernel_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "vadd"), names.end());
  for (unsigned n : {1u, 255u, 1000u, 65536u, 1000003u}) {
    std::vector<float> a(n), b(n), c(n);
    for (unsigned i = 0; i < n; ++i) a[i] = float(i), b[i] = 2.0f * i;
    auto da = dev_.alloc<float>(n), db = dev_.alloc<float>(n), dc = dev_.alloc<float>(n);
    s.copy(a, da);
    s.copy(b, db);
    if (n % 64 == 0) s.launch(k, axle::Range{n}, axle::Range{64}, da.view<float>(), db.view<float>(), dc.view<float>(), n);
    else s.launch(k, axle::Range{n}, axle::Range{}, da.view<float>(), db.view<float>(), dc.view<float>(), n);
    s.copy(dc, c);
    s.synchronize();
    for (unsigned i = 0; i < n; ++i) ASSERT_EQ(c[i], 3.0f * i) << "n=" << n << " i=" << i;
  }
}

TEST_F(CudaDeviceTest, MultiDimensionalIds) {
  const char* src = R"(
AXLE_KERNEL void ids(AXLE_GLOBAL uint* out) {
  const size_t x = AXLE_GLOBAL_ID(0), y = AXLE_GLOBAL_ID(1), z = AXLE_GLOBAL_ID(2);
  const size_t i = x + AXLE_GLOBAL_SIZE(0) * (y + AXLE_GLOBAL_SIZE(1) * z);
  out[i] = (uint)(x | (y << 8) | (z << 16)) + (uint)(AXLE_LOCAL_ID(0) == x % AXLE_LOCAL_SIZE(0) ? 0 : 0x1000000);
}
)";
  axle::Stream s = dev_.create_stream();
  auto k = dev_.build(axle::Source::portable(src, "ids"), no_disk()).kernel("ids");
  const std::size_t X = 48, Y = 20, Z = 6;
  auto out = dev_.alloc<std::uint32_t>(X * Y * Z);
  std::vector<std::uint32_t> host(X * Y * Z);
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 0) s.launch(k, axle::Range{X, Y, Z}, axle::Range{16, 4, 2}, out.view<std::uint32_t>());
    else s.launch(k, axle::Range{X, Y, Z}, axle::Range{}, out.view<std::uint32_t>());
    s.copy(out, host);
    s.synchronize();
    for (std::size_t z = 0; z < Z; ++z)
      for (std::size_t y = 0; y < Y; ++y)
        for (std::size_t x = 0; x < X; ++x)
          ASSERT_EQ(host[x + X * (y + Y * z)], x | (y << 8) | (z << 16)) << pass << ": " << x << "," << y << "," << z;
  }
}

TEST_F(CudaDeviceTest, LocalMemoryArguments) {
  const char* src = R"(
AXLE_KERNEL void locals(AXLE_GLOBAL const float* in, AXLE_GLOBAL float* out, AXLE_LOCAL_PTR(float) a,
                        AXLE_LOCAL_PTR(int) b, uint big) {
  const uint l = (uint)AXLE_LOCAL_ID(0);
  a[l] = in[AXLE_GLOBAL_ID(0)];
  b[l] = (int)l;
  if (big) a[big - 1 - l] = 1.0f;
  AXLE_BARRIER();
  float s = 0.0f;
  for (uint i = 0; i < AXLE_LOCAL_SIZE(0); ++i) s += a[i] + (float)b[i];
  if (l == 0) out[AXLE_GROUP_ID(0)] = s;
}
)";
  axle::Stream s = dev_.create_stream();
  auto k = dev_.build(axle::Source::portable(src, "locals"), no_disk()).kernel("locals");
  EXPECT_EQ(k.num_args(), 5u);
  const unsigned groups = 8, wg = 128;
  std::vector<float> in(groups * wg, 1.0f), out(groups);
  auto din = dev_.alloc<float>(in.size()), dout = dev_.alloc<float>(groups);
  s.copy(in, din);
  s.launch(k, axle::Range{groups * wg}, axle::Range{wg}, din.view<float>(), dout.view<float>(), axle::local<float>(wg),
           axle::local<int>(wg), 0u);
  s.copy(dout, out);
  s.synchronize();
  for (unsigned g = 0; g < groups; ++g) ASSERT_EQ(out[g], wg + wg * (wg - 1) / 2.0f) << g;
  // More than the 48 KiB default: the backend raises the kernel's limit.
  const std::size_t big_floats = 64 * 1024 / sizeof(float);
  if (dev_.info().local_mem_bytes >= 64 * 1024 + wg * sizeof(int) + 16) {
    s.launch(k, axle::Range{groups * wg}, axle::Range{wg}, din.view<float>(), dout.view<float>(),
             axle::local<float>(big_floats), axle::local<int>(wg), static_cast<unsigned>(big_floats));
    s.synchronize();
  }
  // More than the device has: an axle::Error, not an abort.
  EXPECT_THROW(s.launch(k, axle::Range{wg}, axle::Range{wg}, din.view<float>(), dout.view<float>(),
                        axle::local<float>(dev_.info().local_mem_bytes), axle::local<int>(wg), 0u),
               axle::Error);
}

TEST_F(CudaDeviceTest, HalfAndBfloat16Helpers) {
  const char* src = R"(
AXLE_KERNEL void conv(AXLE_GLOBAL const float* in, AXLE_GLOBAL AXLE_HALF* h, AXLE_GLOBAL ushort* b,
                      AXLE_GLOBAL float* back) {
  const size_t i = AXLE_GLOBAL_ID(0);
  AXLE_STORE_HALF(in[i], i, h);
  b[i] = axle_float_to_bf16(in[i]);
  back[2 * i] = AXLE_LOAD_HALF(i, h);
  back[2 * i + 1] = axle_bf16_to_float(b[i]);
}
)";
  axle::Stream s = dev_.create_stream();
  auto k = dev_.build(axle::Source::portable(src, "conv"), no_disk()).kernel("conv");
  std::vector<float> in = {0.0f, 1.0f, -2.5f, 3.14159f, 65504.0f, 1e-3f, 100000.0f, -0.1f};
  const std::size_t n = in.size();
  auto din = dev_.alloc<float>(n), dh = dev_.alloc<std::uint16_t>(n), db = dev_.alloc<std::uint16_t>(n),
       dback = dev_.alloc<float>(2 * n);
  std::vector<std::uint16_t> h(n), b(n);
  std::vector<float> back(2 * n);
  s.copy(in, din);
  s.launch(k, axle::Range{n}, axle::Range{n}, din.view<float>(), dh.view<std::uint16_t>(), db.view<std::uint16_t>(),
           dback.view<float>());
  s.copy(dh, h);
  s.copy(db, b);
  s.copy(dback, back);
  s.synchronize();
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(h[i], axle::to_half(in[i]).bits) << in[i];
    EXPECT_EQ(b[i], axle::to_bfloat16(in[i]).bits) << in[i];
    EXPECT_EQ(back[2 * i], axle::to_float(axle::half_t{h[i]}));
    EXPECT_EQ(back[2 * i + 1], axle::to_float(axle::bfloat16_t{b[i]}));
  }
}

TEST_F(CudaDeviceTest, NativeCudaSourceAndIntrospection) {
  const char* src = R"(
extern "C" __global__ void scale(float* p, float f, unsigned long long n) {
  unsigned long long i = blockIdx.x * (unsigned long long)blockDim.x + threadIdx.x;
  if (i < n) p[i] *= f;
}
extern "C" __global__ void other(int* p) { p[0] = 1; }
)";
  axle::Program p = dev_.build(axle::Source::cuda(src, "scale"), no_disk());
  auto names = p.kernel_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "scale"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "other"), names.end());
  axle::Kernel k = p.kernel("scale");
  EXPECT_EQ(k.num_args(), 3u);
  EXPECT_EQ(k.impl().arg_size(0), 8u);
  EXPECT_EQ(k.impl().arg_size(1), 4u);
  EXPECT_EQ(k.impl().arg_size(2), 8u);
  EXPECT_THROW(p.kernel("missing"), axle::KernelNotFound);
  axle::Stream s = dev_.create_stream();
  auto buf = dev_.alloc<float>(300);
  s.fill(buf.view<float>(), 2.0f);
  s.launch(k, axle::Range{320}, axle::Range{64}, buf.view<float>(), 1.5f, 300ull);
  std::vector<float> host(300);
  s.copy(buf, host);
  s.synchronize();
  EXPECT_EQ(host[299], 3.0f);
  // A scalar of the wrong size is an InvalidArgument.
  EXPECT_THROW(s.launch(k, axle::Range{320}, axle::Range{64}, buf.view<float>(), 1.5, 300ull), axle::InvalidArgument);
}

TEST_F(CudaDeviceTest, BuildErrorsAndUnsupportedSources) {
  try {
    dev_.build(axle::Source::portable("AXLE_KERNEL void k(AXLE_GLOBAL float* p) { p[0] = nope; }", "broken"), no_disk());
    ADD_FAILURE() << "expected BuildError";
  } catch (const axle::BuildError& e) {
    EXPECT_NE(e.log().find("nope"), std::string::npos) << e.log();
    EXPECT_EQ(e.backend(), "cuda");
  }
  EXPECT_THROW(dev_.build(axle::Source::opencl("__kernel void k() {}", "cl"), no_disk()), axle::Unsupported);
}

TEST_F(CudaDeviceTest, BadInputIsAnError) {
  axle::Stream s = dev_.create_stream();
  auto k = dev_.build(axle::Source::portable(kVadd, "vadd"), no_disk()).kernel("vadd");
  auto buf = dev_.alloc<float>(4096);
  auto v = buf.view<float>();
  // Block beyond the device limit.
  EXPECT_THROW(s.launch(k, axle::Range{4096}, axle::Range{2048}, v, v, v, 4096u), axle::InvalidArgument);
  EXPECT_THROW(s.launch(k, axle::Range{64, 128}, axle::Range{64, 32}, v, v, v, 4096u), axle::InvalidArgument);
  // Code for another architecture: an sm_75 cubin does not load on a newer major version.
  const auto& arch = dev_.info().architecture;
  const std::string other = arch.rfind("sm_7", 0) == 0 ? "sm_80" : "sm_75";
  axle::BuildOptions o = no_disk();
  o.cuda_arch = other;
  try {
    dev_.build(axle::Source::portable(kVadd, "vadd_other_arch"), o).kernel("vadd");
    ADD_FAILURE() << "code built for " << other << " loaded on " << arch;
  } catch (const axle::Error& e) {
    EXPECT_EQ(e.backend(), "cuda");
    EXPECT_FALSE(e.status_name().empty()) << e.what();
    EXPECT_EQ(e.call(), "cuModuleLoadData") << e.what();
  }
  // Memory that is not this device's.
  std::vector<float> host(16);
  EXPECT_THROW(axle::cuda::adopt_buffer(dev_, reinterpret_cast<CUdeviceptr>(host.data()), 64), axle::InvalidArgument);
  EXPECT_THROW(axle::cuda::adopt_buffer(dev_, axle::cuda::devptr(buf), buf.size_bytes() + 4), axle::OutOfRange);
  axle::Buffer adopted = axle::cuda::adopt_buffer(dev_, axle::cuda::devptr(buf) + 64, 128);
  EXPECT_EQ(adopted.size_bytes(), 128u);
  // Too much memory.
  EXPECT_THROW(dev_.alloc_bytes(dev_.info().global_mem_bytes), axle::Error);
}

TEST_F(CudaDeviceTest, StreamsFromOtherThreads) {
  axle::Program p = dev_.build(axle::Source::portable(kVadd, "vadd"), no_disk());
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      axle::Stream s = dev_.create_stream();
      const unsigned n = 1 << 16;
      auto a = dev_.alloc<float>(n), c = dev_.alloc<float>(n);
      s.fill(a.view<float>(), float(t));
      s.launch(p.kernel("vadd"), axle::Range{n}, axle::Range{256}, a.view<float>(), a.view<float>(), c.view<float>(), n);
      std::vector<float> h(n);
      s.copy(c, h);
      s.synchronize();
      ok[t] = h[n - 1] == 2.0f * t;
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(ok[t]) << t;
}

TEST_F(CudaDeviceTest, AdoptedStreamAndMoves) {
  axle::Stream s = dev_.create_stream();
  axle::Stream adopted = axle::cuda::adopt_stream(dev_, axle::cuda::stream(s));
  EXPECT_EQ(adopted.native_handle(), s.native_handle());
  axle::Stream moved = std::move(adopted);
  moved.synchronize();
  axle::Buffer b = dev_.alloc<float>(10);
  axle::Buffer b2 = std::move(b);
  EXPECT_FALSE(b.valid());
  b2 = dev_.alloc<float>(20);
  EXPECT_EQ(b2.size_bytes(), 80u);
}

// ---------------------------------------------------------------- the caller's own contexts

namespace {

// The driver entry points these tests call themselves, from libcuda.so.1 (the CUDA
// 13 header maps cuCtxCreate to a newer signature, so take cuCtxCreate_v2 by name).
struct RawDriver {
  using CtxCreate = CUresult (*)(CUcontext*, unsigned, CUdevice);
  using CtxDestroy = CUresult (*)(CUcontext);
  using CtxGetCurrent = CUresult (*)(CUcontext*);
  using CtxSetCurrent = CUresult (*)(CUcontext);
  using CtxPush = CUresult (*)(CUcontext);
  using CtxPop = CUresult (*)(CUcontext*);
  using StreamCreate = CUresult (*)(CUstream*, unsigned);
  using StreamDestroy = CUresult (*)(CUstream);
  CtxCreate ctx_create = nullptr;
  CtxDestroy ctx_destroy = nullptr;
  CtxGetCurrent ctx_get_current = nullptr;
  CtxSetCurrent ctx_set_current = nullptr;
  CtxPush ctx_push = nullptr;
  CtxPop ctx_pop = nullptr;
  StreamCreate stream_create = nullptr;
  StreamDestroy stream_destroy = nullptr;

  RawDriver() {
    void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!lib) return;
    ctx_create = reinterpret_cast<CtxCreate>(dlsym(lib, "cuCtxCreate_v2"));
    ctx_destroy = reinterpret_cast<CtxDestroy>(dlsym(lib, "cuCtxDestroy_v2"));
    ctx_get_current = reinterpret_cast<CtxGetCurrent>(dlsym(lib, "cuCtxGetCurrent"));
    ctx_set_current = reinterpret_cast<CtxSetCurrent>(dlsym(lib, "cuCtxSetCurrent"));
    ctx_push = reinterpret_cast<CtxPush>(dlsym(lib, "cuCtxPushCurrent_v2"));
    ctx_pop = reinterpret_cast<CtxPop>(dlsym(lib, "cuCtxPopCurrent_v2"));
    stream_create = reinterpret_cast<StreamCreate>(dlsym(lib, "cuStreamCreate"));
    stream_destroy = reinterpret_cast<StreamDestroy>(dlsym(lib, "cuStreamDestroy_v2"));
  }
  bool ok() const {
    return ctx_create && ctx_destroy && ctx_get_current && ctx_set_current && ctx_push && ctx_pop && stream_create &&
           stream_destroy;
  }
  CUcontext current() const {
    CUcontext c = reinterpret_cast<CUcontext>(0x1);
    return ctx_get_current(&c) == CUDA_SUCCESS ? c : reinterpret_cast<CUcontext>(0x1);
  }
};

const RawDriver& raw_driver() {
  static const RawDriver d;
  return d;
}

// A context of our own, current on this thread while the object lives.
class OwnContext {
 public:
  explicit OwnContext(CUdevice dev) {
    if (raw_driver().ctx_create(&ctx_, 0, dev) != CUDA_SUCCESS) ctx_ = nullptr;
  }
  ~OwnContext() {
    if (ctx_) raw_driver().ctx_destroy(ctx_);
  }
  OwnContext(const OwnContext&) = delete;
  OwnContext& operator=(const OwnContext&) = delete;
  CUcontext get() const { return ctx_; }

 private:
  CUcontext ctx_ = nullptr;
};

// Every kind of Axle call on `dev`: memory, streams, builds, launches, events, and the
// destructors at the end of the scope.
void exercise(const axle::Device& dev, const std::function<void(const char*)>& check) {
  {
    axle::Stream s = dev.create_stream();
    check("create_stream");
    const unsigned n = 1000;
    auto a = dev.alloc<float>(n), c = dev.alloc<float>(n);
    check("alloc");
    s.fill(a.view<float>(), 2.0f);
    s.fill(c.view<float>(), 1.0f);
    check("fill");
    axle::Kernel k = dev.build(axle::Source::portable(kVadd, "vadd"), no_disk()).kernel("vadd");
    check("build");
    axle::Event e0 = s.record();
    s.launch(k, axle::Range{n}, axle::Range{}, a.view<float>(), a.view<float>(), c.view<float>(), n);
    axle::Event e1 = s.record();
    check("launch");
    std::vector<float> h(n);
    s.copy(c, h);
    s.synchronize();
    check("copy and synchronize");
    EXPECT_EQ(h[0], 4.0f);
    EXPECT_EQ(h[n - 1], 4.0f);
    EXPECT_GE(e1.elapsed_ms(e0), 0.0f);
    EXPECT_TRUE(e1.query());
    check("events");
    auto pin = dev.alloc_pinned<float>(16);
    check("alloc_pinned");
    dev.synchronize();
    check("device synchronize");
  }
  check("destructors");
}

}  // namespace

TEST_F(CudaDeviceTest, CallsKeepTheCallersCurrentContext) {
  const RawDriver& raw = raw_driver();
  ASSERT_TRUE(raw.ok());
  const CUcontext primary = axle::cuda::context(dev_);
  {
    // The caller's own context stays current through every call.
    OwnContext mine(axle::cuda::device_ordinal(dev_));
    ASSERT_NE(mine.get(), nullptr);
    ASSERT_NE(mine.get(), primary);
    ASSERT_EQ(raw.current(), mine.get());
    exercise(dev_, [&](const char* what) { EXPECT_EQ(raw.current(), mine.get()) << "after " << what; });
    // With a context stack, the whole stack survives: ours on top of the primary one.
    ASSERT_EQ(raw.ctx_push(primary), CUDA_SUCCESS);
    OwnContext top(axle::cuda::device_ordinal(dev_));  // cuCtxCreate pushes it
    exercise(dev_, [&](const char* what) { EXPECT_EQ(raw.current(), top.get()) << "after " << what; });
    CUcontext popped = nullptr;
    ASSERT_EQ(raw.ctx_pop(&popped), CUDA_SUCCESS);
    EXPECT_EQ(popped, top.get());
    ASSERT_EQ(raw.ctx_pop(&popped), CUDA_SUCCESS);
    EXPECT_EQ(popped, primary);
    EXPECT_EQ(raw.current(), mine.get());
    ASSERT_EQ(raw.ctx_set_current(nullptr), CUDA_SUCCESS);
  }
  // A thread with no current context still has none afterwards.
  std::thread([&] {
    ASSERT_EQ(raw.current(), nullptr);
    exercise(dev_, [&](const char* what) { EXPECT_EQ(raw.current(), nullptr) << "after " << what; });
  }).join();
}

TEST_F(CudaDeviceTest, AdoptRefusesAStreamOfAnotherContext) {
  const RawDriver& raw = raw_driver();
  ASSERT_TRUE(raw.ok());
  OwnContext mine(axle::cuda::device_ordinal(dev_));
  ASSERT_NE(mine.get(), nullptr);
  CUstream s = nullptr;
  ASSERT_EQ(raw.stream_create(&s, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  AXLE_EXPECT_THROW_MSG(axle::cuda::adopt_stream(dev_, s), axle::InvalidArgument,
                        {"adopt_stream", "another context", "of this device", "primary context", "cuda:0"});
  EXPECT_EQ(raw.current(), mine.get());
  EXPECT_EQ(raw.stream_destroy(s), CUDA_SUCCESS);
  // A stream of the primary context is accepted and works.
  ASSERT_EQ(raw.ctx_push(axle::cuda::context(dev_)), CUDA_SUCCESS);
  CUstream ps = nullptr;
  ASSERT_EQ(raw.stream_create(&ps, CU_STREAM_NON_BLOCKING), CUDA_SUCCESS);
  CUcontext popped = nullptr;
  ASSERT_EQ(raw.ctx_pop(&popped), CUDA_SUCCESS);
  {
    axle::Stream adopted = axle::cuda::adopt_stream(dev_, ps);
    auto b = dev_.alloc<int>(8);
    adopted.fill(b.view<int>(), 9);
    std::vector<int> h(8);
    adopted.copy(b, h);
    adopted.synchronize();
    EXPECT_EQ(h, std::vector<int>(8, 9));
    EXPECT_EQ(raw.current(), mine.get());
  }
  ASSERT_EQ(raw.ctx_push(axle::cuda::context(dev_)), CUDA_SUCCESS);
  EXPECT_EQ(raw.stream_destroy(ps), CUDA_SUCCESS);
  ASSERT_EQ(raw.ctx_pop(&popped), CUDA_SUCCESS);
}

TEST_F(CudaDeviceTest, AdoptRefusesAStreamOfAnotherDevice) {
  if (axle::devices("cuda").size() < 2) GTEST_SKIP() << "one CUDA device: no stream of another device to adopt";
  axle::Device other = axle::select_device("cuda:1");
  axle::Stream theirs = other.create_stream();
  AXLE_EXPECT_THROW_MSG(axle::cuda::adopt_stream(dev_, axle::cuda::stream(theirs)), axle::InvalidArgument,
                        {"adopt_stream", "CUDA device 1", "primary context", "cuda:0"});
}

// ---------------------------------------------------------------- tensor maps and clusters

namespace {

// tests/cuda/<name>: under AXLE_SOURCE_DIR (the environment's, then the build's), or under
// the working directory or one of its parents (the build may have moved, as onto a GPU
// machine).
std::string read_test_kernel(const char* name) {
  std::vector<std::string> roots;
  if (const char* env = std::getenv("AXLE_SOURCE_DIR")) roots.emplace_back(env);
  roots.emplace_back(AXLE_SOURCE_DIR);
  std::string up = ".";
  for (int i = 0; i < 5; ++i, up += "/..") roots.push_back(up);
  for (const auto& root : roots) {
    std::string text = axle_test::read_file(root + "/tests/cuda/" + name);
    if (!text.empty()) return text;
  }
  return {};
}

axle::cuda::TensorMapDesc desc_2d(std::uint64_t w, std::uint64_t h, std::uint64_t row_bytes, std::uint32_t bw,
                                  std::uint32_t bh) {
  axle::cuda::TensorMapDesc d;
  d.dims = {w, h};
  d.strides_bytes = {row_bytes};
  d.box = {bw, bh};
  return d;
}

}  // namespace

using axle::cuda::TensorMapType;
using axle::detail::cuda::check_tensor_map;

// The descriptor checks run before the driver is asked, so they are tested everywhere.
TEST(CudaTensorMapCheck, AcceptsAValidDescriptorAndComputesItsFootprint) {
  const auto a = check_tensor_map(desc_2d(100, 77, 448, 32, 8), TensorMapType::F32, 4096, 448 * 77, "tm");
  EXPECT_EQ(a.rank, 2u);
  EXPECT_EQ(a.type, CU_TENSOR_MAP_DATA_TYPE_FLOAT32);
  EXPECT_EQ(a.dims[0], 100u);
  EXPECT_EQ(a.dims[1], 77u);
  EXPECT_EQ(a.strides[0], 448u);
  EXPECT_EQ(a.box[0], 32u);
  EXPECT_EQ(a.element_strides[0], 1u);
  EXPECT_EQ(a.footprint_bytes, 76u * 448 + 100 * 4);
  // Packed strides are derived: 3-D bf16, 64 x 5 x 3.
  axle::cuda::TensorMapDesc p;
  p.dims = {64, 5, 3};
  p.box = {64, 5, 1};
  p.swizzle = axle::cuda::TensorMapSwizzle::B128;
  p.l2_promotion = axle::cuda::TensorMapL2Promotion::B256;
  p.oob_nan = true;
  const auto b = check_tensor_map(p, TensorMapType::BF16, 0, 64 * 5 * 3 * 2, "tm");
  EXPECT_EQ(b.strides[0], 128u);
  EXPECT_EQ(b.strides[1], 640u);
  EXPECT_EQ(b.footprint_bytes, 64u * 5 * 3 * 2);
  EXPECT_EQ(b.swizzle, CU_TENSOR_MAP_SWIZZLE_128B);
  EXPECT_EQ(b.l2, CU_TENSOR_MAP_L2_PROMOTION_L2_256B);
  EXPECT_EQ(b.oob, CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA);
  EXPECT_EQ(b.type, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16);
}

TEST(CudaTensorMapCheck, RefusesWhatTheHardwareCannotTake) {
  const auto ok = desc_2d(100, 77, 448, 32, 8);
  const std::uint64_t big = 1ull << 40;
  auto check = [&](axle::cuda::TensorMapDesc d, TensorMapType t = TensorMapType::F32, std::uint64_t addr = 0,
                   std::uint64_t limit = 1ull << 40) { check_tensor_map(d, t, addr, limit, "axle::cuda::tensor_map"); };
  auto d = ok;
  d.dims = {};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"axle::cuda::tensor_map", "0 dimensions", "1 to 5"});
  d.dims = {2, 2, 2, 2, 2, 2};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"6 dimensions"});
  d = ok;
  d.box = {32};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"box has 1 dimensions, dims has 2"});
  d = ok;
  d.strides_bytes = {448, 448};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"strides_bytes has 2 values", "takes 1"});
  AXLE_EXPECT_THROW_MSG(check(ok, TensorMapType::F32, 8), axle::InvalidArgument, {"address 8", "16-byte aligned"});
  d = ok;
  d.dims = {0, 77};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"dims[0] = 0", "1 to 2^32"});
  d.dims = {100, (1ull << 32) + 1};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"dims[1] = 4294967297"});
  d = ok;
  d.strides_bytes = {404};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"strides_bytes[0] = 404", "multiples of 16"});
  d.strides_bytes = {big};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"below 2^40"});
  d = ok;
  d.strides_bytes = {};  // packed: 99 floats = 396 bytes, not a multiple of 16
  d.dims = {99, 77};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"packed stride of dimension 1 = 396"});
  // The last row ends 76 * 448 + 400 bytes from the start.
  EXPECT_NO_THROW(check(ok, TensorMapType::F32, 0, 34448));
  AXLE_EXPECT_THROW_MSG(check(ok, TensorMapType::F32, 0, 34447), axle::OutOfRange,
                        {"reaches 34448 bytes", "the view has 34447"});
  d = ok;
  d.box = {32, 0};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"box[1] = 0", "1 to 256"});
  d.box = {32, 257};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"box[1] = 257"});
  d.box = {6, 8};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"box[0] = 6", "24 bytes", "multiple of 16 bytes"});
  d = ok;
  d.element_strides = {1, 9};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"element_strides[1] = 9", "1 to 8"});
  d.element_strides = {1};
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"element_strides has 1 dimensions"});
  d = ok;
  d.swizzle = axle::cuda::TensorMapSwizzle::B64;  // the box's 128 bytes exceed the 64-byte span
  AXLE_EXPECT_THROW_MSG(check(d), axle::InvalidArgument, {"inner extent of 128 bytes", "64-byte swizzle span"});
  d.swizzle = axle::cuda::TensorMapSwizzle::B128;
  EXPECT_NO_THROW(check(d));
  d = ok;
  d.oob_nan = true;
  AXLE_EXPECT_THROW_MSG(check(d, TensorMapType::I32), axle::InvalidArgument, {"oob_nan", "floating-point"});
}

// Clusters and tensor maps on a backend that has neither: clear errors, nothing enqueued,
// and the stream still works.
TEST(CudaClusterLaunch, ShapeChecksAndOtherBackends) {
  auto cl = axle::devices("opencl");
  if (cl.empty()) GTEST_SKIP() << "no OpenCL device";
  axle::Device dev = cl.front();
  axle::Stream s = dev.create_stream();
  auto k = dev.build(axle::Source::portable(kVadd, "vadd"), no_disk()).kernel("vadd");
  const unsigned n = 256;
  auto a = dev.alloc<float>(n), b = dev.alloc<float>(n), c = dev.alloc<float>(n);
  auto launch = [&](axle::LaunchShape shape) {
    s.launch(k, shape, a.view<float>(), b.view<float>(), c.view<float>(), n);
  };
  AXLE_EXPECT_THROW_MSG(launch({axle::Range{n}, axle::Range{}, axle::Range{2}}), axle::InvalidArgument,
                        {"vadd", "explicit local range"});
  AXLE_EXPECT_THROW_MSG(launch({axle::Range{n}, axle::Range{64}, axle::Range{3}}), axle::InvalidArgument,
                        {"grid of 4 work-groups in dimension 0", "multiple of the cluster's 3"});
  AXLE_EXPECT_THROW_MSG(launch({axle::Range{n}, axle::Range{64}, axle::Range{2, 2}}), axle::InvalidArgument,
                        {"more dimensions than the global range"});
  AXLE_EXPECT_THROW_MSG(launch({axle::Range{n}, axle::Range{8}, axle::Range{32}}), axle::InvalidArgument,
                        {"32 work-groups", "at most 16", "8 portably"});
  AXLE_EXPECT_THROW_MSG(launch({axle::Range{n}, axle::Range{64}, axle::Range{2}}), axle::Unsupported,
                        {"thread-block clusters are a CUDA feature", dev.id()});
  AXLE_EXPECT_THROW_MSG(axle::cuda::tensor_map(a.view<float>(), desc_2d(16, 16, 64, 16, 4)), axle::InvalidArgument,
                        {"tensor_map", "is not a CUDA device"});
  AXLE_EXPECT_THROW_MSG(axle::cuda::max_active_clusters(k, axle::Range{64}, axle::Range{2}), axle::InvalidArgument,
                        {"max_active_clusters", "is not a CUDA device"});
  // Without a cluster, the shape form is the plain launch.
  std::vector<float> ha(n), hb(n), hc(n);
  for (unsigned i = 0; i < n; ++i) ha[i] = static_cast<float>(i), hb[i] = 0.5f * static_cast<float>(i);
  s.copy(ha, a);
  s.copy(hb, b);
  launch({axle::Range{n}, axle::Range{64}, axle::Range{}});
  s.copy(c, hc);
  s.synchronize();
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(hc[i], ha[i] + hb[i]) << i;
}

class CudaHopperTest : public CudaDeviceTest {
 protected:
  void SetUp() override {
    CudaDeviceTest::SetUp();
    if (IsSkipped()) return;
    const std::string& arch = dev_.info().architecture;  // "sm_90"
    ASSERT_EQ(arch.rfind("sm_", 0), 0u) << arch;
    const int major = std::stoi(arch.substr(3)) / 10;
    if (major < 9) GTEST_SKIP() << dev_.info().name << " has no tensor maps or clusters (compute capability < 9.0)";
    const std::string src = read_test_kernel("tma_cluster.cu");
    ASSERT_FALSE(src.empty()) << "tests/cuda/tma_cluster.cu not found under " << AXLE_SOURCE_DIR;
    prog_ = dev_.build(axle::Source::cuda(src, "tma_cluster"), no_disk());
  }
  axle::Program prog_;
};

TEST_F(CudaHopperTest, TensorMapCopiesBoxesWithZeroFillAndSwizzle) {
  // A 2-D f32 tensor of 100 x 77 in rows of 112 floats (448 bytes), boxes of 32 x 8:
  // the last box column and row reach past the tensor.
  const unsigned w = 100, h = 77, pitch = 112, bw = 32, bh = 8;
  std::vector<float> host(static_cast<std::size_t>(pitch) * h, -7.f);
  for (unsigned y = 0; y < h; ++y)
    for (unsigned x = 0; x < w; ++x) host[y * pitch + x] = static_cast<float>(y * 1000 + x + 1);
  auto src = dev_.alloc<float>(host.size());
  auto out = dev_.alloc<float>(static_cast<std::size_t>(w) * h);
  auto oob = dev_.alloc<unsigned>(1);
  axle::Stream s = dev_.create_stream();
  s.copy(host, src);
  auto k = prog_.kernel("tma_tile_copy");
  for (int swz = 0; swz < 2; ++swz) {
    auto d = desc_2d(w, h, pitch * 4, bw, bh);
    if (swz) d.swizzle = axle::cuda::TensorMapSwizzle::B128;
    const axle::cuda::TensorMap map = axle::cuda::tensor_map(src.view<float>(), d);
    s.fill(out.view<float>(), -1.f);
    s.fill(oob.view<unsigned>(), 0u);
    const unsigned gx = (w + bw - 1) / bw, gy = (h + bh - 1) / bh;
    s.launch(k, axle::Range{gx * 128, gy}, axle::Range{128, 1}, map, out.view<float>(), w, h, bw, bh, swz,
             oob.view<unsigned>(), axle::LocalMem{bw * bh * 4 + 1024 + 16});
    std::vector<float> got(static_cast<std::size_t>(w) * h);
    std::vector<unsigned> nz(1);
    s.copy(out, got);
    s.copy(oob, nz);
    s.synchronize();
    EXPECT_EQ(nz[0], 0u) << "elements of a box outside the tensor were not zero-filled (swizzle " << swz << ")";
    for (unsigned y = 0; y < h; ++y)
      for (unsigned x = 0; x < w; ++x)
        ASSERT_EQ(got[y * w + x], host[y * pitch + x]) << "x " << x << " y " << y << " swizzle " << swz;
  }
  // The tensor must lie inside the view it is made from.
  AXLE_EXPECT_THROW_MSG(axle::cuda::tensor_map(src.view<float>(0, pitch * (h - 1)), desc_2d(w, h, pitch * 4, bw, bh)),
                        axle::OutOfRange, {"tensor_map", "reaches"});
}

TEST_F(CudaHopperTest, ClustersShareMemory) {
  auto k = prog_.kernel("cluster_exchange");
  axle::Stream s = dev_.create_stream();
  const unsigned gx = 8, gy = 6, cx = 4, cy = 2;
  auto values = dev_.alloc<int>(gx * gy);
  auto ranks = dev_.alloc<unsigned>(gx * gy);
  auto run = [&](const axle::Kernel& kern, unsigned ccx, unsigned ccy, bool plain) {
    s.fill(values.view<int>(), -1);
    if (plain)
      s.launch(kern, axle::Range{gx * 32, gy}, axle::Range{32, 1}, values.view<int>(), ranks.view<unsigned>());
    else
      s.launch(kern, axle::LaunchShape{axle::Range{gx * 32, gy}, axle::Range{32, 1}, axle::Range{ccx, ccy}},
               values.view<int>(), ranks.view<unsigned>());
    std::vector<int> v(gx * gy);
    std::vector<unsigned> r(gx * gy);
    s.copy(values, v);
    s.copy(ranks, r);
    s.synchronize();
    for (unsigned by = 0; by < gy; ++by)
      for (unsigned bx = 0; bx < gx; ++bx) {
        const unsigned lx = bx % ccx, ly = by % ccy, rank = lx + ly * ccx, peer = (rank + 1) % (ccx * ccy);
        const unsigned px = bx - lx + peer % ccx, py = by - ly + peer / ccx;
        ASSERT_EQ(r[by * gx + bx], rank) << "block " << bx << "," << by << " in clusters of " << ccx << "x" << ccy;
        ASSERT_EQ(v[by * gx + bx], static_cast<int>(px * 1000 + py))
            << "block " << bx << "," << by << " in clusters of " << ccx << "x" << ccy;
      }
  };
  run(k, cx, cy, false);
  run(k, 2, 1, false);
  run(k, 8, 2, false);  // 16: non-portable, allowed on H100/H200
  EXPECT_GT(axle::cuda::max_active_clusters(k, axle::Range{32, 1}, axle::Range{cx, cy}), 0);
  // A cluster shape fixed at compile time: taken by a plain launch and by the same shape.
  auto fixed = prog_.kernel("cluster_exchange_2x1");
  run(fixed, 2, 1, true);
  run(fixed, 2, 1, false);
  AXLE_EXPECT_THROW_MSG(
      s.launch(fixed, axle::LaunchShape{axle::Range{gx * 32, gy}, axle::Range{32, 1}, axle::Range{4, 1}},
               values.view<int>(), ranks.view<unsigned>()),
      axle::InvalidArgument, {"cluster_exchange_2x1", "compiled for clusters of 2x1x1"});
  // The stream is still usable after the errors.
  run(k, cx, cy, false);
}
