// CUDA driver API and NVRTC, loaded at run time.
//
// Nothing here links against libcuda or libnvrtc: both are opened with dlopen on first
// use and their entry points resolved by the versioned names cuda.h maps to
// (cuMemAlloc_v2, cuCtxDestroy_v2, ...). The binary therefore starts on machines with
// no NVIDIA driver and no CUDA toolkit; what is missing is reported as a reason string.
//
// Ownership: the tables are process-wide singletons that are never destroyed and the
// libraries are never closed (closing libcuda before its own exit handlers run crashes).
// Thread-safety: driver() and nvrtc() load once under std::call_once; afterwards the
// tables are read-only and may be used from any thread.
#pragma once

#include <cuda.h>
#include <nvrtc.h>

#include <new>
#include <string>
#include <vector>

#include "axle/error.hpp"

namespace axle::detail::cuda {

#define AXLE_CU_FN(name) decltype(&::name) name = nullptr

/// libcuda.so.1 entry points. Required ones are non-null whenever `loaded`; optional
/// ones (marked) are null when the driver predates them.
struct DriverApi {
  bool loaded = false;   ///< library opened, required symbols resolved, cuInit succeeded
  std::string error;     ///< why not loaded
  std::string path;      ///< what was opened
  int driver_version = 0;  ///< cuDriverGetVersion, e.g. 13000

  AXLE_CU_FN(cuInit);
  AXLE_CU_FN(cuDriverGetVersion);
  AXLE_CU_FN(cuGetErrorName);
  AXLE_CU_FN(cuGetErrorString);
  AXLE_CU_FN(cuDeviceGetCount);
  AXLE_CU_FN(cuDeviceGet);
  AXLE_CU_FN(cuDeviceGetName);
  AXLE_CU_FN(cuDeviceGetAttribute);
  AXLE_CU_FN(cuDeviceTotalMem);  // _v2
  AXLE_CU_FN(cuDevicePrimaryCtxRetain);
  AXLE_CU_FN(cuDevicePrimaryCtxRelease);  // _v2
  AXLE_CU_FN(cuCtxGetCurrent);
  AXLE_CU_FN(cuCtxSetCurrent);
  AXLE_CU_FN(cuCtxPushCurrent);  // _v2
  AXLE_CU_FN(cuCtxPopCurrent);   // _v2
  AXLE_CU_FN(cuCtxGetDevice);
  AXLE_CU_FN(cuCtxSynchronize);
  AXLE_CU_FN(cuMemAlloc);  // _v2
  AXLE_CU_FN(cuMemFree);   // _v2
  AXLE_CU_FN(cuMemHostAlloc);
  AXLE_CU_FN(cuMemFreeHost);
  AXLE_CU_FN(cuMemcpyHtoDAsync);  // _v2
  AXLE_CU_FN(cuMemcpyDtoHAsync);  // _v2
  AXLE_CU_FN(cuMemcpyDtoDAsync);  // _v2
  AXLE_CU_FN(cuMemsetD8Async);
  AXLE_CU_FN(cuMemsetD16Async);
  AXLE_CU_FN(cuMemsetD32Async);
  AXLE_CU_FN(cuMemsetD2D32Async);
  AXLE_CU_FN(cuPointerGetAttribute);
  AXLE_CU_FN(cuMemGetAddressRange);  // _v2
  AXLE_CU_FN(cuStreamCreate);
  AXLE_CU_FN(cuStreamDestroy);  // _v2
  AXLE_CU_FN(cuStreamSynchronize);
  AXLE_CU_FN(cuStreamWaitEvent);
  AXLE_CU_FN(cuStreamGetCtx);
  AXLE_CU_FN(cuEventCreate);
  AXLE_CU_FN(cuEventDestroy);  // _v2
  AXLE_CU_FN(cuEventRecord);
  AXLE_CU_FN(cuEventQuery);
  AXLE_CU_FN(cuEventSynchronize);
  AXLE_CU_FN(cuEventElapsedTime);  // _v2 on CUDA 12.8+, else the original
  AXLE_CU_FN(cuModuleLoadData);
  AXLE_CU_FN(cuModuleUnload);
  AXLE_CU_FN(cuModuleGetFunction);
  AXLE_CU_FN(cuFuncGetAttribute);
  AXLE_CU_FN(cuFuncSetAttribute);
  AXLE_CU_FN(cuLaunchKernel);
  // optional
  AXLE_CU_FN(cuFuncGetParamInfo);          // CUDA 12.4+
  AXLE_CU_FN(cuModuleGetFunctionCount);    // CUDA 12.4+
  AXLE_CU_FN(cuModuleEnumerateFunctions);  // CUDA 12.4+
  AXLE_CU_FN(cuFuncGetName);               // CUDA 12.3+
  AXLE_CU_FN(cuLaunchKernelEx);               // CUDA 12.0+: cluster launches
  AXLE_CU_FN(cuOccupancyMaxActiveClusters);   // CUDA 12.0+
  AXLE_CU_FN(cuTensorMapEncodeTiled);         // CUDA 12.0+: TMA descriptors
};

/// libnvrtc entry points.
struct NvrtcApi {
  bool loaded = false;
  std::string error;  ///< why not loaded (every path tried)
  std::string path;
  int major = 0, minor = 0;
  std::vector<int> supported_archs;  ///< nvrtcGetSupportedArchs, e.g. {75, 80, ..., 120}

  AXLE_CU_FN(nvrtcVersion);
  AXLE_CU_FN(nvrtcGetErrorString);
  AXLE_CU_FN(nvrtcCreateProgram);
  AXLE_CU_FN(nvrtcDestroyProgram);
  AXLE_CU_FN(nvrtcCompileProgram);
  AXLE_CU_FN(nvrtcGetProgramLogSize);
  AXLE_CU_FN(nvrtcGetProgramLog);
  AXLE_CU_FN(nvrtcGetPTXSize);
  AXLE_CU_FN(nvrtcGetPTX);
  AXLE_CU_FN(nvrtcGetCUBINSize);
  AXLE_CU_FN(nvrtcGetCUBIN);
  // optional
  AXLE_CU_FN(nvrtcGetNumSupportedArchs);
  AXLE_CU_FN(nvrtcGetSupportedArchs);
};

#undef AXLE_CU_FN

/// The driver table, loaded (and cuInit called) on first use. Never throws.
const DriverApi& driver();
/// The NVRTC table, loaded on first use. Never throws.
const NvrtcApi& nvrtc();
/// Testing: the driver table (as driver() returns it), writable so that a test can
/// interpose a function. Only while no other thread uses CUDA.
inline DriverApi* driver_table_for_testing() { return const_cast<DriverApi*>(&driver()); }
/// Directories searched for NVRTC after the loader path, in order.
std::vector<std::string> nvrtc_search_dirs();

/// "CUDA_ERROR_OUT_OF_MEMORY" (through cuGetErrorName; "CUresult <n>" when unknown).
std::string status_name(CUresult r);
/// The driver's description of a status ("out of memory").
std::string status_text(CUresult r);

/// Throws the axle::Error subclass that fits `r`, naming `call` and the status,
/// with `what` (may be empty) describing what was being done.
[[noreturn]] void throw_error(CUresult r, const char* call, const std::string& what);
/// Throws Unsupported: `call` is missing from the loaded libcuda.
[[noreturn]] void throw_missing(const char* call);

/// Call a driver entry point; throw on failure. `name` is the symbol (e.g. "cuMemAlloc_v2").
template <typename Fn, typename... Args>
void check(Fn fn, const char* name, const std::string& what, Args... args) {
  if (fn == nullptr) throw_missing(name);
  const CUresult r = fn(args...);
  if (r != CUDA_SUCCESS) throw_error(r, name, what);
}

void log_release_failure(CUresult r, const char* name) noexcept;

/// For destructors: call, and log anything but success or "driver shutting down".
/// Never throws.
template <typename Fn, typename... Args>
void release(Fn fn, const char* name, Args... args) noexcept {
  if (fn == nullptr) return;
  const CUresult r = fn(args...);
  if (r != CUDA_SUCCESS && r != CUDA_ERROR_DEINITIALIZED && r != CUDA_ERROR_CONTEXT_IS_DESTROYED)
    log_release_failure(r, name);
}

/// Makes `ctx` current on the calling thread for the scope's lifetime and then restores
/// the thread's own context: cuCtxPushCurrent when `ctx` is not already current, and
/// cuCtxPopCurrent at the end. Every backend call that needs a context opens one, so a
/// caller's current context (its own, another device's, or none) is what it finds
/// again after any Axle call.
class ContextScope {
 public:
  /// Throws on failure.
  explicit ContextScope(CUcontext ctx);
  /// For destructors: never throws; ok() is false (and nothing is logged) when `ctx`
  /// could not be made current, e.g. because the driver has shut down.
  ContextScope(CUcontext ctx, std::nothrow_t) noexcept;
  ~ContextScope();
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;
  bool ok() const noexcept { return ok_; }

 private:
  bool pushed_ = false;
  bool ok_ = false;
};

}  // namespace axle::detail::cuda
