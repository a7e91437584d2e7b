// Stream-owned resources and launch binding on every available device: the stream
// workspace, local-memory size arithmetic, empty views, several views of one buffer,
// pinned memory freed under pending copies; plus OpenCL specifics (flush on record, one
// way of binding a buffer, POCL_AFFINITY set at load time). Events re-recorded while
// other threads query them: concurrency_test.cpp.
#include <gtest/gtest.h>

#include <sched.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "axle/axle.hpp"
#include "test_util.hpp"

#if defined(AXLE_TEST_WITH_OPENCL)
#include "../backends/opencl/cl_loader.hpp"
#endif

namespace {

constexpr const char* kSource = R"(
AXLE_KERNEL void two_locals(AXLE_LOCAL_PTR(float) a, AXLE_LOCAL_PTR(float) b, AXLE_GLOBAL float* out) {
  const int i = (int)AXLE_LOCAL_ID(0);
  a[i] = (float)i;
  b[i] = 2.0f * (float)i;
  AXLE_BARRIER();
  out[AXLE_GLOBAL_ID(0)] = a[i] + b[i];
}
// Reports whether `v` arrived as a null pointer, and writes through it when not.
AXLE_KERNEL void null_probe(AXLE_GLOBAL float* v, AXLE_GLOBAL int* out) {
  if (AXLE_GLOBAL_ID(0) != 0) return;
  out[0] = v == 0 ? 1 : 2;
  if (v != 0) v[0] = 42.0f;
}
// dst[i] = src[i] + 1 for i < n.
AXLE_KERNEL void plus_one(AXLE_GLOBAL const float* src, AXLE_GLOBAL float* dst, int n) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  if (i < n) dst[i] = src[i] + 1.0f;
}
// A long dependent chain per work-item, so that work queued behind it waits.
AXLE_KERNEL void spin(AXLE_GLOBAL float* x, int iters) {
  const int i = (int)AXLE_GLOBAL_ID(0);
  float v = x[i];
  for (int t = 0; t < iters; ++t) v = v * 0.999999f + 1e-6f;
  x[i] = v;
}
)";

class StreamResources : public ::testing::TestWithParam<axle::Device> {
 protected:
  const axle::Device& dev() const { return GetParam(); }
  axle::Program program() const { return dev().build(axle::Source::portable(kSource, "stream_resources.cl")); }
};

INSTANTIATE_TEST_SUITE_P(Devices, StreamResources, ::testing::ValuesIn(axle::devices()), axle_test::DeviceName());
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(StreamResources);

TEST_P(StreamResources, WorkspaceIsReusedGrownAndReleased) {
  axle::Stream s = dev().create_stream();
  EXPECT_EQ(s.workspace_bytes(), 0u);
  const axle::Buffer& a = s.workspace("test.a", 1000);
  EXPECT_GE(a.size_bytes(), 1000u);
  void* a_native = a.native_handle();
  // The same slot at a size it already covers: the same buffer.
  EXPECT_EQ(s.workspace("test.a", 500).native_handle(), a_native);
  EXPECT_EQ(s.workspace("test.a", a.size_bytes()).native_handle(), a_native);
  // Another slot: another buffer.
  const axle::Buffer& b = s.workspace("test.b", 64);
  EXPECT_NE(b.native_handle(), a_native);
  const std::size_t both = s.workspace_bytes();
  EXPECT_EQ(both, s.workspace("test.a", 1).size_bytes() + b.size_bytes());
  // Growth retires the old buffer until the next synchronize.
  const std::size_t old_a = s.workspace("test.a", 1).size_bytes();
  const axle::Buffer& grown = s.workspace("test.a", 3 * old_a);
  EXPECT_GE(grown.size_bytes(), 3 * old_a);
  EXPECT_EQ(s.workspace_bytes(), old_a + grown.size_bytes() + b.size_bytes());
  s.synchronize();
  EXPECT_EQ(s.workspace_bytes(), grown.size_bytes() + b.size_bytes());
  // Usable as device memory.
  std::vector<float> host(3 * old_a / sizeof(float), 2.5f), back(host.size());
  s.copy(host, grown.view<float>(0, host.size()));
  s.copy(grown.view<float>(0, host.size()), back);
  s.synchronize();
  EXPECT_EQ(back, host);
  s.release_workspace();
  EXPECT_EQ(s.workspace_bytes(), 0u);
  // Bad sizes.
  AXLE_EXPECT_THROW_MSG(s.workspace("test.c", 0), axle::InvalidArgument, {"test.c", "zero-byte"});
  const std::uint64_t cap = dev().info().max_alloc_bytes;
  if (cap && cap < std::numeric_limits<std::size_t>::max())
    AXLE_EXPECT_THROW_MSG(s.workspace("test.c", static_cast<std::size_t>(cap) + 1), axle::InvalidArgument,
                          {"test.c", "largest allocation", std::to_string(cap)});
  EXPECT_EQ(s.workspace_bytes(), 0u);
  axle::Stream moved;
  AXLE_EXPECT_THROW_MSG(moved.workspace("x", 4), axle::InvalidArgument, {"empty"});
  EXPECT_EQ(moved.workspace_bytes(), 0u);
}

TEST_P(StreamResources, LocalMemorySizesThatOverflowAreErrors) {
  const std::size_t huge = std::numeric_limits<std::size_t>::max() / sizeof(float) + 2;
  AXLE_EXPECT_THROW_MSG(axle::local<float>(huge), axle::InvalidArgument,
                        {"axle::local", std::to_string(huge), "overflow"});
  axle::Stream s = dev().create_stream();
  axle::Kernel k = program().kernel("two_locals");
  axle::Buffer out = dev().alloc<float>(64);
  // Two halves of 2^64: their sum wraps to 0 in size_t arithmetic.
  const std::size_t half = std::size_t{1} << 63;
  AXLE_EXPECT_THROW_MSG(
      s.launch(k, axle::Range{64}, axle::Range{64}, axle::LocalMem{half}, axle::LocalMem{half}, out.view<float>()),
      axle::InvalidArgument, {"two_locals", "local memory"});
  AXLE_EXPECT_THROW_MSG(s.launch(k, axle::Range{64}, axle::Range{64}, axle::LocalMem{std::size_t{1} << 32},
                                 axle::local<float>(64), out.view<float>()),
                        axle::InvalidArgument, {"two_locals", "local memory"});
  // The stream still works.
  s.launch(k, axle::Range{64}, axle::Range{64}, axle::local<float>(64), axle::local<float>(64), out.view<float>());
  std::vector<float> h(64);
  s.copy(out, h);
  s.synchronize();
  for (int i = 0; i < 64; ++i) EXPECT_EQ(h[i], 3.0f * static_cast<float>(i)) << i;
}

TEST_P(StreamResources, EmptyViewReachesTheKernelAsNull) {
  axle::Stream s = dev().create_stream();
  axle::Kernel k = program().kernel("null_probe");
  const std::size_t n = 4096, off = 1024;  // 4 KiB: aligned for any sub-buffer rule
  std::vector<float> init(n, 1.0f), back(n);
  axle::Buffer b = dev().alloc<float>(n), flag = dev().alloc<int>(1);
  for (std::size_t at : {off, std::size_t{0}, n}) {
    s.copy(init, b.view<float>());
    s.launch(k, axle::Range{1}, axle::Range{}, b.view<float>(at, 0), flag.view<int>());
    std::vector<int> f(1);
    s.copy(flag, f);
    s.copy(b, back);
    s.synchronize();
    EXPECT_EQ(f[0], 1) << "an empty view at element " << at << " arrived as a non-null pointer";
    EXPECT_EQ(back, init) << "the kernel wrote through an empty view at element " << at;
  }
  // A non-empty view at the same offset is a real pointer to its first element.
  s.copy(init, b.view<float>());
  s.launch(k, axle::Range{1}, axle::Range{}, b.view<float>(off, 1), flag.view<int>());
  s.copy(b, back);
  s.synchronize();
  EXPECT_EQ(back[off], 42.0f);
  EXPECT_EQ(back[off - 1], 1.0f);
}

TEST_P(StreamResources, TwoViewsOfOneBuffer) {
  axle::Stream s = dev().create_stream();
  axle::Kernel k = program().kernel("plus_one");
  const std::size_t n = 4096, off = 2048, len = 1000;
  std::vector<float> h(n);
  for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>(i);
  axle::Buffer b = dev().alloc<float>(n);
  s.copy(h, b.view<float>());
  // Read [0, len), write [off, off + len) of the same buffer, in one launch.
  s.launch(k, axle::Range{1024}, axle::Range{}, b.view<float>(0, len), b.view<float>(off, len),
           static_cast<int>(len));
  std::vector<float> back(n);
  s.copy(b, back);
  s.synchronize();
  for (std::size_t i = 0; i < n; ++i) {
    const float want = i >= off && i < off + len ? static_cast<float>(i - off) + 1.0f : static_cast<float>(i);
    ASSERT_EQ(back[i], want) << "element " << i;
  }
}

TEST_P(StreamResources, PinnedMemoryOutlivesThePendingCopies) {
  axle::Stream s = dev().create_stream();
  axle::Kernel spin = program().kernel("spin");
  const std::size_t n = 1 << 20;
  axle::Buffer d = dev().alloc<float>(n);
  s.fill(d.view<float>(), 1.0f);
  auto pinned = dev().alloc_pinned<float>(n);
  // Work that takes a while, then a copy into the pinned memory behind it.
  s.launch(spin, axle::Range{64}, axle::Range{}, d.view<float>(0, 64), 3000000);
  s.copy(d.view<float>(), pinned);
  axle::Event done = s.record();
  pinned.reset();  // must wait for the copy: it writes into this memory
  EXPECT_TRUE(done.query()) << "pinned memory was freed while a copy into it was still pending";
  // The stream and device are still usable.
  std::vector<float> h(4);
  s.copy(d.view<float>(64, 4), h);
  s.synchronize();
  EXPECT_EQ(h[0], 1.0f);
}

#if defined(AXLE_TEST_WITH_OPENCL)
// Counters behind interposed OpenCL entry points (single-threaded tests only).
std::atomic<int> g_flushes{0}, g_sub_buffers{0};
decltype(&::clFlush) g_real_flush = nullptr;
decltype(&::clCreateSubBuffer) g_real_sub = nullptr;
cl_int CL_API_CALL counting_flush(cl_command_queue q) {
  ++g_flushes;
  return g_real_flush(q);
}
cl_mem CL_API_CALL counting_sub(cl_mem m, cl_mem_flags f, cl_buffer_create_type t, const void* info, cl_int* st) {
  ++g_sub_buffers;
  return g_real_sub(m, f, t, info, st);
}

class Interposed {
 public:
  Interposed() {
    std::string why;
    table_ = axle::detail::cl::table_for_testing(why);
    if (!table_) return;
    g_real_flush = table_->clFlush;
    g_real_sub = table_->clCreateSubBuffer;
    table_->clFlush = counting_flush;
    table_->clCreateSubBuffer = counting_sub;
  }
  ~Interposed() {
    if (!table_) return;
    table_->clFlush = g_real_flush;
    table_->clCreateSubBuffer = g_real_sub;
  }
  bool ok() const { return table_ != nullptr; }

 private:
  axle::detail::cl::Api* table_ = nullptr;
};

std::vector<axle::Device> opencl_devices() { return axle::devices("opencl"); }

TEST(OpenClBinding, RecordFlushesTheQueue) {
  auto devs = opencl_devices();
  if (devs.empty()) GTEST_SKIP() << "no OpenCL device";
  axle::Stream s = devs[0].create_stream();
  axle::Buffer b = devs[0].alloc<float>(16);
  Interposed hook;
  ASSERT_TRUE(hook.ok());
  g_flushes = 0;
  s.fill(b.view<float>(), 1.0f);
  axle::Event e = s.record();
  EXPECT_GE(g_flushes.load(), 1) << "an event was recorded without clFlush (OpenCL 1.2, 5.13)";
  // Another queue waits on it, and polling sees it complete.
  axle::Stream other = devs[0].create_stream();
  other.wait(e);
  other.synchronize();
  for (int i = 0; i < 100000 && !e.query(); ++i) std::this_thread::yield();
  EXPECT_TRUE(e.query());
}

TEST(OpenClBinding, ViewsOfOneBufferAreBoundTheSameWay) {
  auto devs = opencl_devices();
  if (devs.empty()) GTEST_SKIP() << "no OpenCL device";
  const axle::Device& d = devs[0];
  axle::Program p = d.build(axle::Source::portable(kSource, "stream_resources.cl"));
  axle::Kernel k = p.kernel("plus_one");
  axle::Stream s = d.create_stream();
  const std::size_t n = 4096, off = 2048, len = 1000;
  axle::Buffer b = d.alloc<float>(n), other = d.alloc<float>(n);
  s.fill(b.view<float>(), 1.0f);
  s.synchronize();
  Interposed hook;
  ASSERT_TRUE(hook.ok());
  // Offset 0 of a buffer beside another offset of it: both as sub-buffers, never the
  // buffer beside its own sub-buffer (undefined in OpenCL).
  g_sub_buffers = 0;
  s.launch(k, axle::Range{1024}, axle::Range{}, b.view<float>(0, len), b.view<float>(off, len), int(len));
  EXPECT_EQ(g_sub_buffers.load(), 2);
  // Views at offset 0 of distinct buffers: no sub-buffer at all.
  g_sub_buffers = 0;
  s.launch(k, axle::Range{1024}, axle::Range{}, b.view<float>(0, len), other.view<float>(0, len), int(len));
  EXPECT_EQ(g_sub_buffers.load(), 0);
  // One view at an offset: one sub-buffer.
  g_sub_buffers = 0;
  s.launch(k, axle::Range{1024}, axle::Range{}, b.view<float>(off, len), other.view<float>(0, len), int(len));
  EXPECT_EQ(g_sub_buffers.load(), 1);
  std::vector<float> h(n);
  s.copy(b, h);
  s.synchronize();
  EXPECT_EQ(h[off], 2.0f);
  EXPECT_EQ(h[off - 1], 1.0f);
}

// POCL_AFFINITY must be in place once the library is loaded (before main), not set
// by the first use of the backend while other threads may read the environment.
TEST(OpenClBinding, PoclAffinityIsSetAtLoadTime) {
  bool pocl = false;
  for (const auto& d : opencl_devices())
    pocl = pocl || d.info().platform.find("Portable Computing Language") != std::string::npos;
  if (!pocl) GTEST_SKIP() << "no PoCL device";
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  cpu_set_t mine;
  ASSERT_EQ(sched_getaffinity(0, sizeof mine, &mine), 0);
  auto run = [](const std::string& prefix) {
    const std::string cmd = "env -u POCL_AFFINITY " + prefix + "'" AXLE_CACHE_PROBE "' --getenv POCL_AFFINITY";
    std::string out;
    if (FILE* f = ::popen(cmd.c_str(), "r")) {
      std::array<char, 256> buf{};
      while (std::fgets(buf.data(), buf.size(), f)) out += buf.data();
      ::pclose(f);
    }
    return out;
  };
  if (online >= 2 && CPU_COUNT(&mine) == online) EXPECT_EQ(run(""), "POCL_AFFINITY=1\n");
  if (online >= 2 && std::system("command -v taskset >/dev/null 2>&1") == 0)
    EXPECT_EQ(run("taskset -c 0 "), "POCL_AFFINITY unset\n") << "set on a restricted CPU set";
}
#endif

}  // namespace
