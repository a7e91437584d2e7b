// Fault injection on CUDA (runs where a CUDA device is present, skips elsewhere): as
// fault_injection_test.cpp does for OpenCL, every driver call of the workload is failed
// in turn; each failure must surface as the right axle::Error subclass naming the call
// and the status, the buffers the workload does not write keep their contents, and the
// stream runs the workload again to the right results.
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>

#include "axle/axle.hpp"
#include "cuda_api.hpp"
#include "fault_injection.hpp"
#include "fault_workload.hpp"
#include "test_util.hpp"

namespace {

namespace cu = axle::detail::cuda;
namespace faults = axle_test::faults;
using Injector = faults::Injector<cu::DriverApi>;

// Every driver call made after a device is open, except releases, the context
// restore of ContextScope's destructor and the error-name lookups.
// clang-format off
#define AXLE_FAULT_CU_CALLS(X)                                                                                \
  X(cuCtxPushCurrent) X(cuCtxSynchronize) X(cuMemAlloc) X(cuMemHostAlloc) X(cuMemcpyHtoDAsync)               \
  X(cuMemcpyDtoHAsync) X(cuMemcpyDtoDAsync) X(cuMemsetD8Async) X(cuMemsetD16Async) X(cuMemsetD32Async)       \
  X(cuMemsetD2D32Async) X(cuStreamCreate) X(cuStreamSynchronize) X(cuStreamWaitEvent) X(cuEventCreate)       \
  X(cuEventRecord) X(cuEventQuery) X(cuEventSynchronize) X(cuEventElapsedTime) X(cuModuleLoadData)           \
  X(cuModuleGetFunction) X(cuFuncGetAttribute) X(cuFuncSetAttribute) X(cuLaunchKernel) X(cuFuncGetParamInfo)  \
  X(cuModuleGetFunctionCount) X(cuModuleEnumerateFunctions) X(cuFuncGetName)
#define AXLE_FAULT_CU_TALLIED(X) X(cuMemFree) X(cuMemFreeHost) X(cuStreamDestroy) X(cuEventDestroy) X(cuModuleUnload)
// clang-format on

bool cuda_available() {
  for (const auto& b : axle::backends())
    if (b.name == "cuda") return b.available && b.device_count > 0;
  return false;
}

TEST(CudaFaults, EveryCallOfAWorkloadFailingIsReportedAndRecoveredFrom) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device";
  const axle::Device dev = axle::devices("cuda").at(0);
  axle_test::TempDir tmp;
  axle_test::ScopedEnv cache_env("AXLE_CACHE_DIR", tmp.path());
  Injector inj(cu::driver_table_for_testing());
#define AXLE_FAULT_FAILS(name) inj.interpose<&cu::DriverApi::name>(#name);
#define AXLE_FAULT_TALLY(name) inj.interpose<&cu::DriverApi::name>(#name, false);
  AXLE_FAULT_CU_CALLS(AXLE_FAULT_FAILS)
  AXLE_FAULT_CU_TALLIED(AXLE_FAULT_TALLY)
#undef AXLE_FAULT_FAILS
#undef AXLE_FAULT_TALLY
  int salt = 0;
  {
    auto s = std::make_unique<axle::Stream>(dev.create_stream());
    faults::Workload w(dev, *s);
    w.run(++salt);
    ASSERT_EQ(w.check(), "");
    inj.disarm();
    w.run(++salt);
    ASSERT_EQ(w.check(), "");
    const long long total = inj.calls();
    ASSERT_GT(total, 20);
    std::map<std::string, int> failed;
    for (long long n = 1; n <= total; ++n) {
      const CUresult st = (n % 2) ? CUDA_ERROR_OUT_OF_MEMORY : CUDA_ERROR_UNKNOWN;
      inj.arm(n, static_cast<long long>(st));
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
        if (st == CUDA_ERROR_OUT_OF_MEMORY)
          EXPECT_NE(dynamic_cast<const axle::OutOfMemory*>(&e), nullptr) << where << ": " << e.what();
        else
          EXPECT_NE(dynamic_cast<const axle::BackendError*>(&e), nullptr) << where << ": " << e.what();
        EXPECT_EQ(faults::names_the_failure(e, call, cu::status_name(st)), "") << where;
        ++failed[call];
      }
      if (!threw) {
        ASSERT_TRUE(inj.fired()) << "N=" << n << " was never reached";
        // Absorbed by design: destructors (logged), a cached module the driver will not
        // load (rebuilt from source).
        EXPECT_TRUE(faults::plan().fired_in_teardown || faults::plan().fired == "cuModuleLoadData")
            << "N=" << n << ": the failure of " << faults::plan().fired << " was swallowed";
      }
      inj.disarm();
      ASSERT_NO_THROW(s->synchronize()) << where;
      ASSERT_EQ(w.check_untouched(), "") << where;
      ASSERT_NO_THROW(w.run(run_salt)) << where;
      ASSERT_EQ(w.check(), "") << where;
    }
    for (const char* must : {"cuMemAlloc", "cuMemcpyHtoDAsync", "cuLaunchKernel", "cuEventRecord", "cuStreamCreate"})
      EXPECT_GT(failed[must], 0) << "no failure of " << must << " surfaced";
    w.forget_all_programs();
  }
  EXPECT_EQ(inj.succeeded("cuMemAlloc") - inj.succeeded("cuMemFree"), 0) << "device memory leaked";
  EXPECT_EQ(inj.succeeded("cuMemHostAlloc") - inj.succeeded("cuMemFreeHost"), 0) << "pinned memory leaked";
  EXPECT_EQ(inj.succeeded("cuStreamCreate") - inj.succeeded("cuStreamDestroy"), 0) << "streams leaked";
  EXPECT_EQ(inj.succeeded("cuEventCreate") - inj.succeeded("cuEventDestroy"), 0) << "events leaked";
  EXPECT_EQ(inj.succeeded("cuModuleLoadData") - inj.succeeded("cuModuleUnload"), 0) << "modules leaked";
}

// The hook itself, without a device: the trampolines forward, count and fail the
// chosen call (exercised on the driver table whether or not a driver was loaded).
TEST(CudaFaults, TrampolinesForwardCountAndFail) {
  cu::DriverApi table;  // a private table: the real one may be empty here
  static int forwarded = 0;
  table.cuCtxSynchronize = [] {
    ++forwarded;
    return CUDA_SUCCESS;
  };
  {
    Injector inj(&table);
    inj.interpose<&cu::DriverApi::cuCtxSynchronize>("cuCtxSynchronize");
    inj.interpose<&cu::DriverApi::cuMemAlloc>("cuMemAlloc");  // null entry: left alone
    EXPECT_EQ(table.cuMemAlloc, nullptr);
    inj.arm(2, CUDA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(table.cuCtxSynchronize(), CUDA_SUCCESS);
    EXPECT_EQ(table.cuCtxSynchronize(), CUDA_ERROR_OUT_OF_MEMORY);
    EXPECT_EQ(table.cuCtxSynchronize(), CUDA_SUCCESS);
    EXPECT_EQ(forwarded, 2);
    EXPECT_EQ(inj.calls(), 3);
    EXPECT_EQ(inj.fired_call(), "cuCtxSynchronize");
    EXPECT_EQ(inj.succeeded("cuCtxSynchronize"), 2);
  }
  EXPECT_EQ(table.cuCtxSynchronize(), CUDA_SUCCESS);  // restored
  EXPECT_EQ(forwarded, 3);
  EXPECT_EQ(faults::plan().calls, 0);  // no longer counted
}

}  // namespace
