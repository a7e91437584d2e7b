// Fault injection on OpenCL: every call into the OpenCL library that a representative
// workload makes is failed in turn (the Nth call for every N), and each time the
// failure must surface as the right axle::Error subclass naming the call and the
// status, leak no OpenCL object, leave the buffers the workload does not write as they
// were, and leave the stream usable: the same workload then runs to the right results.
// Also: real device-memory exhaustion gives axle::OutOfMemory, and the device works
// again once the memory is freed.
#include "fault_injection.hpp"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "../backends/opencl/cl_loader.hpp"
#include "axle/axle.hpp"
#include "fault_workload.hpp"
#include "test_util.hpp"

namespace {

namespace cl = axle::detail::cl;
namespace faults = axle_test::faults;
using Injector = faults::Injector<cl::Api>;

// The calls that may fail: every one Axle makes after a device is open, except the
// releases (failing one would leak by construction) and the build-log query (only
// read on a failure path).
// clang-format off
#define AXLE_FAULT_CL_CALLS(X)                                                                                  \
  X(clCreateCommandQueue) X(clCreateBuffer) X(clCreateSubBuffer) X(clEnqueueWriteBuffer) X(clEnqueueReadBuffer) \
  X(clEnqueueCopyBuffer) X(clEnqueueFillBuffer) X(clEnqueueMapBuffer) X(clEnqueueUnmapMemObject)                \
  X(clCreateProgramWithSource) X(clCreateProgramWithBinary) X(clBuildProgram) X(clGetProgramInfo)               \
  X(clCreateKernel) X(clGetKernelInfo) X(clGetKernelWorkGroupInfo) X(clGetKernelArgInfo) X(clSetKernelArg)      \
  X(clEnqueueNDRangeKernel) X(clEnqueueMarkerWithWaitList) X(clEnqueueBarrierWithWaitList) X(clWaitForEvents)   \
  X(clGetEventInfo) X(clGetEventProfilingInfo) X(clFinish) X(clFlush)
// Tallied only, to balance creations against releases.
#define AXLE_FAULT_CL_TALLIED(X)                                                                                \
  X(clReleaseMemObject) X(clReleaseKernel) X(clReleaseProgram) X(clReleaseCommandQueue) X(clReleaseEvent)       \
  X(clRetainEvent)
// clang-format on

void interpose_all(Injector& inj) {
#define AXLE_FAULT_FAILS(name) inj.interpose<&cl::Api::name>(#name);
#define AXLE_FAULT_TALLY(name) inj.interpose<&cl::Api::name>(#name, false);
  AXLE_FAULT_CL_CALLS(AXLE_FAULT_FAILS)
  AXLE_FAULT_CL_TALLIED(AXLE_FAULT_TALLY)
#undef AXLE_FAULT_FAILS
#undef AXLE_FAULT_TALLY
}

cl::Api* table() {
  std::string why;
  return cl::table_for_testing(why);
}

// The status a failed call returns: what that call reports when it runs out, or a
// plain failure. Odd and even N alternate between the two kinds of runtime failure.
cl_int status_for(const std::string& call, long long n) {
  if (call == "clCreateBuffer" || call == "clCreateSubBuffer") return CL_MEM_OBJECT_ALLOCATION_FAILURE;
  if (call == "clBuildProgram") return CL_BUILD_PROGRAM_FAILURE;
  if (call == "clEnqueueMapBuffer") return CL_MAP_FAILURE;
  // Running out while loading a cached binary must surface (a rejected binary is
  // rebuilt from source: the clBuildProgram failure after it covers that path).
  if (call == "clCreateProgramWithBinary") return CL_OUT_OF_HOST_MEMORY;
  return n % 2 ? CL_OUT_OF_RESOURCES : CL_INVALID_OPERATION;
}

// Which subclass the status must surface as (the most derived one).
enum class Kind { OutOfMemory, Build, Backend };
Kind expected_kind(cl_int st) {
  if (st == CL_MEM_OBJECT_ALLOCATION_FAILURE || st == CL_OUT_OF_RESOURCES || st == CL_OUT_OF_HOST_MEMORY)
    return Kind::OutOfMemory;
  if (st == CL_BUILD_PROGRAM_FAILURE) return Kind::Build;
  return Kind::Backend;
}
std::string kind_error(Kind want, const axle::Error& e) {
  const bool oom = dynamic_cast<const axle::OutOfMemory*>(&e) != nullptr;
  const bool build = dynamic_cast<const axle::BuildError*>(&e) != nullptr;
  const bool backend = dynamic_cast<const axle::BackendError*>(&e) != nullptr;
  switch (want) {
    case Kind::OutOfMemory:
      if (oom) return {};
      return "not an axle::OutOfMemory";
    case Kind::Build:
      if (build) return {};
      return "not an axle::BuildError";
    case Kind::Backend:
      if (backend && !oom) return {};
      return "not a plain axle::BackendError";
  }
  return "?";
}

// Live native objects made while the injector was in place.
struct Live {
  long long mem, events, kernels, programs, queues;
};
Live live(const Injector& inj) {
  return Live{
      inj.succeeded("clCreateBuffer") + inj.succeeded("clCreateSubBuffer") - inj.succeeded("clReleaseMemObject"),
      inj.succeeded("clEnqueueMarkerWithWaitList") + inj.succeeded("clRetainEvent") - inj.succeeded("clReleaseEvent"),
      inj.succeeded("clCreateKernel") - inj.succeeded("clReleaseKernel"),
      inj.succeeded("clCreateProgramWithSource") + inj.succeeded("clCreateProgramWithBinary") -
          inj.succeeded("clReleaseProgram"),
      inj.succeeded("clCreateCommandQueue") - inj.succeeded("clReleaseCommandQueue")};
}

class OpenClFaults : public ::testing::Test {
 protected:
  void SetUp() override {
    auto devs = axle::devices("opencl");
    if (devs.empty()) GTEST_SKIP() << "no OpenCL device";
    dev_ = devs[0];
    ASSERT_NE(table(), nullptr);
    cache_env_.emplace("AXLE_CACHE_DIR", tmp_.path());
  }
  axle::Device dev_;
  axle_test::TempDir tmp_;
  std::optional<axle_test::ScopedEnv> cache_env_;
};

TEST_F(OpenClFaults, EveryCallOfAWorkloadFailingIsReportedAndRecoveredFrom) {
  Injector inj(table());
  interpose_all(inj);
  int salt = 0;
  {
    auto s = std::make_unique<axle::Stream>(dev_.create_stream());
    faults::Workload w(dev_, *s);
    w.run(++salt);  // warms the GEMM library's caches: later runs make the same calls
    ASSERT_EQ(w.check(), "");
    inj.disarm();
    w.run(++salt);
    ASSERT_EQ(w.check(), "");
    const long long total = inj.calls();
    ASSERT_GT(total, 50);
    // Which calls the workload makes, for the coverage check below.
    std::map<std::string, int> seen;
    for (const char* c : faults::plan().log) ++seen[c];
    for (const char* must :
         {"clCreateBuffer", "clCreateSubBuffer", "clEnqueueWriteBuffer", "clEnqueueReadBuffer", "clEnqueueCopyBuffer",
          "clEnqueueFillBuffer", "clEnqueueMapBuffer", "clCreateProgramWithSource", "clCreateProgramWithBinary",
          "clBuildProgram", "clCreateKernel", "clSetKernelArg", "clEnqueueNDRangeKernel", "clEnqueueMarkerWithWaitList",
          "clEnqueueBarrierWithWaitList", "clWaitForEvents", "clGetEventInfo", "clGetEventProfilingInfo",
          "clCreateCommandQueue"})
      EXPECT_GT(seen[must], 0) << must << " is not exercised by the workload";

    std::map<std::string, int> failed;  // call -> how many of its N were failed
    int absorbed = 0;
    for (long long n = 1; n <= total; ++n) {
      inj.arm(n, [n](const std::string& call) { return status_for(call, n); });
      std::string where;
      const int run_salt = ++salt;
      bool threw = false;
      try {
        w.run(run_salt);
      } catch (const axle::Error& e) {
        threw = true;
        const std::string call = faults::plan().fired;
        where = "N=" + std::to_string(n) + " (" + call + " after " + faults::plan().fired_after + ")";
        ASSERT_TRUE(inj.fired()) << where << ": an error without an injected failure: " << e.what();
        const auto st = static_cast<cl_int>(faults::plan().fired_status);
        EXPECT_EQ(kind_error(expected_kind(st), e), "") << where << ": " << e.what();
        EXPECT_EQ(faults::names_the_failure(e, call, cl::error_name(st)), "") << where;
        ++failed[call];
      }
      if (!threw) {
        ASSERT_TRUE(inj.fired()) << "N=" << n << " was never reached: the workload made fewer calls";
        // Failures that are absorbed by design: in a destructor (logged), and a cached
        // binary the driver will not build (rebuilt from source).
        const bool rebuilt =
            faults::plan().fired == "clBuildProgram" && faults::plan().fired_after == "clCreateProgramWithBinary";
        EXPECT_TRUE(faults::plan().fired_in_teardown || rebuilt)
            << "N=" << n << ": the failure of " << faults::plan().fired << " (after " << faults::plan().fired_after
            << ") was swallowed";
        ++absorbed;
        if (rebuilt) EXPECT_NE(w.check().find("not loaded from the disk cache"), std::string::npos);
      }
      inj.disarm();
      // The stream works on; the buffers nobody wrote hold their contents; the same
      // workload completes with the right results.
      ASSERT_NO_THROW(s->synchronize()) << where;
      ASSERT_EQ(w.check_untouched(), "") << where;
      ASSERT_NO_THROW(w.run(run_salt)) << where;
      ASSERT_EQ(w.check(), "") << where;
    }
    for (const char* must : {"clCreateBuffer", "clCreateSubBuffer", "clEnqueueWriteBuffer", "clEnqueueNDRangeKernel",
                             "clSetKernelArg", "clBuildProgram", "clCreateProgramWithBinary", "clEnqueueMapBuffer",
                             "clEnqueueMarkerWithWaitList", "clWaitForEvents"})
      EXPECT_GT(failed[must], 0) << "no failure of " << must << " surfaced";
    EXPECT_LT(absorbed, total / 4);
    std::printf("failed each of %lld OpenCL calls in turn: %lld surfaced as errors, %d absorbed by design\n", total,
                total - absorbed, absorbed);
    w.forget_all_programs();
  }
  const Live l = live(inj);
  EXPECT_EQ(l.mem, 0) << "cl_mem objects leaked";
  EXPECT_EQ(l.events, 0) << "cl_event objects leaked";
  EXPECT_EQ(l.kernels, 0) << "cl_kernel objects leaked";
  EXPECT_EQ(l.programs, 0) << "cl_program objects leaked";
  EXPECT_EQ(l.queues, 0) << "cl_command_queue objects leaked";
}

// clSetKernelArg failing part-way through a launch (the 2nd of 4 arguments): the launch
// throws naming the argument, nothing is enqueued, and the next launch binds all four.
TEST_F(OpenClFaults, ArgumentBindingFailingPartWay) {
  axle::BuildOptions o;
  o.disk_cache = false;
  axle::Program p = dev_.build(axle::Source::portable(faults::kWorkloadSource, "fault_axpy.cl"), o);
  axle::Kernel k = p.kernel("axpy");
  axle::Stream s = dev_.create_stream();
  const unsigned n = 300;
  std::vector<float> x(n), y(n, 1.0f);
  for (unsigned i = 0; i < n; ++i) x[i] = static_cast<float>(i);
  axle::Buffer bx = dev_.alloc<float>(n), by = dev_.alloc<float>(n);
  s.copy(x, bx.view<float>());
  s.copy(y, by.view<float>());
  s.synchronize();
  {
    Injector inj(table());
    inj.interpose<&cl::Api::clSetKernelArg>("clSetKernelArg");
    inj.interpose<&cl::Api::clEnqueueNDRangeKernel>("clEnqueueNDRangeKernel");
    inj.arm(2, CL_INVALID_ARG_VALUE);
    AXLE_EXPECT_THROW_MSG(s.launch(k, axle::Range{n}, axle::Range{}, by.view<float>(), bx.view<float>(), 3.0f, n),
                          axle::InvalidArgument,
                          {"kernel 'axpy' argument 1", "clSetKernelArg", "CL_INVALID_ARG_VALUE"});
    EXPECT_EQ(inj.calls(), 2) << "the launch went on after a failed argument";
    inj.disarm();
    s.launch(k, axle::Range{n}, axle::Range{}, by.view<float>(), bx.view<float>(), 3.0f, n);
    EXPECT_EQ(inj.calls(), 5);
  }
  std::vector<float> out(n);
  s.copy(by.view<float>(), out);
  s.synchronize();
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(out[i], 1.0f + 3.0f * x[i]) << i;
}

// A program whose kernel cannot be created for want of resources is not a
// KernelNotFound, and the kernel can be made once the resources are back.
TEST_F(OpenClFaults, KernelCreationFailureIsNotAMissingKernel) {
  axle::BuildOptions o;
  o.disk_cache = false;
  o.define("FAULT_KERNEL_CREATION");
  axle::Program p = dev_.build(axle::Source::portable(faults::kWorkloadSource, "fault_axpy.cl"), o);
  {
    Injector inj(table());
    inj.interpose<&cl::Api::clCreateKernel>("clCreateKernel");
    inj.arm(1, CL_OUT_OF_HOST_MEMORY);
    try {
      p.kernel("axpy");
      ADD_FAILURE() << "no error";
    } catch (const axle::KernelNotFound& e) {
      ADD_FAILURE() << "reported as a missing kernel: " << e.what();
    } catch (const axle::OutOfMemory& e) {
      EXPECT_TRUE(
          axle_test::contains_all(e.what(), {"creating kernel 'axpy'", "clCreateKernel", "CL_OUT_OF_HOST_MEMORY"}))
          << e.what();
    }
    // Its argument description failing is an error too, never a kernel that takes
    // no arguments.
    inj.interpose<&cl::Api::clGetKernelInfo>("clGetKernelInfo");
    inj.arm(2, CL_OUT_OF_RESOURCES);
    AXLE_EXPECT_THROW_MSG(p.kernel("axpy"), axle::OutOfMemory,
                          {"querying kernel 'axpy'", "clGetKernelInfo", "CL_OUT_OF_RESOURCES"});
    inj.disarm();
    EXPECT_EQ(p.kernel("axpy").num_args(), 4u);
    EXPECT_EQ(inj.succeeded("clCreateKernel"), 2);  // the second one was released again
  }
}

// Real memory exhaustion. PoCL's CPU device never refuses a buffer for its size: it
// ignores CL_DEVICE_GLOBAL_MEM_SIZE (also when POCL_MEMORY_LIMIT lowers it) and
// allocates plain device buffers lazily, at their first use, where a failed host
// allocation aborts the process (an assertion in pocl_create_migration_commands). So
// the exhaustion of plain buffers is covered by the injected statuses above, and the
// real thing is done with pinned memory (CL_MEM_ALLOC_HOST_PTR, allocated when it is
// created) under an address-space limit (RLIMIT_AS) set for the duration: allocate
// until axle::OutOfMemory, free, and run a kernel. Under AddressSanitizer the limit
// cannot be used (its shadow memory needs the address space).
#if defined(__SANITIZE_ADDRESS__)
#define AXLE_FAULT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define AXLE_FAULT_ASAN 1
#endif
#endif

std::size_t address_space_bytes() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmSize:", 0) == 0) return std::stoull(line.substr(7)) * 1024;  // kB
  return 0;
}

class AddressSpaceLimit {
 public:
  explicit AddressSpaceLimit(std::size_t bytes) {
    ::getrlimit(RLIMIT_AS, &old_);
    rlimit lim = old_;
    lim.rlim_cur = bytes;
    ok_ = ::setrlimit(RLIMIT_AS, &lim) == 0;
  }
  ~AddressSpaceLimit() { lift(); }
  void lift() {
    if (ok_) ::setrlimit(RLIMIT_AS, &old_);
    ok_ = false;
  }
  bool ok() const { return ok_; }

 private:
  rlimit old_{};
  bool ok_ = false;
};

TEST_F(OpenClFaults, RealMemoryExhaustion) {
#ifdef AXLE_FAULT_ASAN
  GTEST_SKIP() << "an address-space limit cannot be used under AddressSanitizer";
#else
  if (dev_.info().platform.find("Portable Computing Language") == std::string::npos)
    GTEST_SKIP() << "written for PoCL's CPU device (host memory), not " << dev_.info().platform;
  axle::Stream s = dev_.create_stream();
  axle::BuildOptions o;
  o.disk_cache = false;
  axle::Program p = dev_.build(axle::Source::portable(faults::kWorkloadSource, "fault_axpy.cl"), o);
  constexpr std::size_t kChunk = std::size_t{32} << 20;
  std::vector<axle::PinnedBuffer<float> > held;
  std::optional<axle::OutOfMemory> oom;
  {
    const std::size_t vm = address_space_bytes();
    ASSERT_GT(vm, 0u);
    AddressSpaceLimit limit(vm + (std::size_t{512} << 20));
    ASSERT_TRUE(limit.ok());
    for (int i = 0; i < 64 && !oom; ++i) {  // 2 GiB at most: the limit is 512 MiB away
      try {
        held.push_back(dev_.alloc_pinned<float>(kChunk / sizeof(float)));
        held.back()[0] = 1.0f;
      } catch (const axle::OutOfMemory& e) {
        oom = e;
      }
    }
  }
  ASSERT_TRUE(oom) << "64 pinned allocations of 32 MiB fitted 512 MiB of address space";
  EXPECT_GE(held.size(), 2u) << oom->what();
  EXPECT_EQ(oom->backend(), "opencl");
  EXPECT_EQ(oom->call(), "clCreateBuffer") << oom->what();
  EXPECT_TRUE(
      axle_test::contains_all(oom->what(), {"bytes of pinned memory", "clCreateBuffer", "CL_OUT_OF_HOST_MEMORY"}))
      << oom->what();
  held.clear();
  // The device works on.
  const unsigned n = 513;
  std::vector<float> x(n, 2.0f), y(n, 1.0f), out(n);
  axle::Buffer bx = dev_.alloc<float>(n), by = dev_.alloc<float>(n);
  s.copy(x, bx.view<float>());
  s.copy(y, by.view<float>());
  s.launch(p.kernel("axpy"), axle::Range{n}, axle::Range{}, by.view<float>(), bx.view<float>(), 4.0f, n);
  s.copy(by.view<float>(), out);
  s.synchronize();
  for (unsigned i = 0; i < n; ++i) ASSERT_EQ(out[i], 9.0f) << i;
#endif
}

}  // namespace
