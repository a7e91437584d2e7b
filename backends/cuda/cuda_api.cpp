// Run-time loading of libcuda.so.1 and libnvrtc (see cuda_api.hpp).
#include "cuda_api.hpp"

#include <dlfcn.h>
#include <link.h>
#include <glob.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "log.hpp"

#ifndef AXLE_CUDA_TOOLKIT_LIBDIR
#define AXLE_CUDA_TOOLKIT_LIBDIR ""
#endif

namespace axle::detail::cuda {
namespace {

std::string dl_error() {
  const char* e = dlerror();
  return e ? e : "unknown dlopen error";
}

// Resolve the first of `names` that the library exports into *slot.
template <typename Fn>
bool bind(void* lib, Fn& slot, std::initializer_list<const char*> names) {
  for (const char* n : names) {
    if (void* p = dlsym(lib, n)) {
      slot = reinterpret_cast<Fn>(p);
      return true;
    }
  }
  return false;
}

void load_driver(DriverApi& d) {
  void* lib = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    d.error = dl_error();
    return;
  }
  d.path = "libcuda.so.1";
  std::string missing;
  auto need = [&](auto& slot, std::initializer_list<const char*> names) {
    if (!bind(lib, slot, names)) missing += std::string(missing.empty() ? "" : ", ") + *names.begin();
  };
  need(d.cuInit, {"cuInit"});
  need(d.cuDriverGetVersion, {"cuDriverGetVersion"});
  need(d.cuGetErrorName, {"cuGetErrorName"});
  need(d.cuGetErrorString, {"cuGetErrorString"});
  need(d.cuDeviceGetCount, {"cuDeviceGetCount"});
  need(d.cuDeviceGet, {"cuDeviceGet"});
  need(d.cuDeviceGetName, {"cuDeviceGetName"});
  need(d.cuDeviceGetAttribute, {"cuDeviceGetAttribute"});
  need(d.cuDeviceTotalMem, {"cuDeviceTotalMem_v2"});
  need(d.cuDevicePrimaryCtxRetain, {"cuDevicePrimaryCtxRetain"});
  need(d.cuDevicePrimaryCtxRelease, {"cuDevicePrimaryCtxRelease_v2", "cuDevicePrimaryCtxRelease"});
  need(d.cuCtxGetCurrent, {"cuCtxGetCurrent"});
  need(d.cuCtxSetCurrent, {"cuCtxSetCurrent"});
  need(d.cuCtxPushCurrent, {"cuCtxPushCurrent_v2"});
  need(d.cuCtxPopCurrent, {"cuCtxPopCurrent_v2"});
  need(d.cuCtxGetDevice, {"cuCtxGetDevice"});
  need(d.cuCtxSynchronize, {"cuCtxSynchronize"});
  need(d.cuMemAlloc, {"cuMemAlloc_v2"});
  need(d.cuMemFree, {"cuMemFree_v2"});
  need(d.cuMemHostAlloc, {"cuMemHostAlloc"});
  need(d.cuMemFreeHost, {"cuMemFreeHost"});
  need(d.cuMemcpyHtoDAsync, {"cuMemcpyHtoDAsync_v2"});
  need(d.cuMemcpyDtoHAsync, {"cuMemcpyDtoHAsync_v2"});
  need(d.cuMemcpyDtoDAsync, {"cuMemcpyDtoDAsync_v2"});
  need(d.cuMemsetD8Async, {"cuMemsetD8Async"});
  need(d.cuMemsetD16Async, {"cuMemsetD16Async"});
  need(d.cuMemsetD32Async, {"cuMemsetD32Async"});
  need(d.cuMemsetD2D32Async, {"cuMemsetD2D32Async"});
  need(d.cuPointerGetAttribute, {"cuPointerGetAttribute"});
  need(d.cuMemGetAddressRange, {"cuMemGetAddressRange_v2"});
  need(d.cuStreamCreate, {"cuStreamCreate"});
  need(d.cuStreamDestroy, {"cuStreamDestroy_v2"});
  need(d.cuStreamSynchronize, {"cuStreamSynchronize"});
  need(d.cuStreamWaitEvent, {"cuStreamWaitEvent"});
  need(d.cuStreamGetCtx, {"cuStreamGetCtx"});
  need(d.cuEventCreate, {"cuEventCreate"});
  need(d.cuEventDestroy, {"cuEventDestroy_v2"});
  need(d.cuEventRecord, {"cuEventRecord"});
  need(d.cuEventQuery, {"cuEventQuery"});
  need(d.cuEventSynchronize, {"cuEventSynchronize"});
  need(d.cuEventElapsedTime, {"cuEventElapsedTime_v2", "cuEventElapsedTime"});
  need(d.cuModuleLoadData, {"cuModuleLoadData"});
  need(d.cuModuleUnload, {"cuModuleUnload"});
  need(d.cuModuleGetFunction, {"cuModuleGetFunction"});
  need(d.cuFuncGetAttribute, {"cuFuncGetAttribute"});
  need(d.cuFuncSetAttribute, {"cuFuncSetAttribute"});
  need(d.cuLaunchKernel, {"cuLaunchKernel"});
  bind(lib, d.cuFuncGetParamInfo, {"cuFuncGetParamInfo"});
  bind(lib, d.cuModuleGetFunctionCount, {"cuModuleGetFunctionCount"});
  bind(lib, d.cuModuleEnumerateFunctions, {"cuModuleEnumerateFunctions"});
  bind(lib, d.cuFuncGetName, {"cuFuncGetName"});
  bind(lib, d.cuLaunchKernelEx, {"cuLaunchKernelEx"});
  bind(lib, d.cuOccupancyMaxActiveClusters, {"cuOccupancyMaxActiveClusters"});
  bind(lib, d.cuTensorMapEncodeTiled, {"cuTensorMapEncodeTiled"});
  if (!missing.empty()) {
    d.error = "libcuda.so.1 is too old: it lacks " + missing;
    return;
  }
  if (d.cuDriverGetVersion(&d.driver_version) != CUDA_SUCCESS) d.driver_version = 0;
  const CUresult r = d.cuInit(0);
  if (r != CUDA_SUCCESS) {
    const char* name = nullptr;
    const char* text = nullptr;
    d.cuGetErrorName(r, &name);
    d.cuGetErrorString(r, &text);
    d.error = std::string("cuInit failed: ") + (name ? name : ("CUresult " + std::to_string(r)).c_str()) +
              (text ? std::string(" (") + text + ")" : std::string());
    return;
  }
  d.loaded = true;
}

void load_nvrtc(NvrtcApi& n) {
  std::vector<std::string> candidates;
  const char* const kNames[] = {"libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so"};
  for (const char* name : kNames) candidates.emplace_back(name);  // the loader path first
  for (const auto& dir : nvrtc_search_dirs())
    for (const char* name : kNames) candidates.push_back(dir + "/" + name);

  void* lib = nullptr;
  std::string tried;
  for (const auto& c : candidates) {
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) {
      n.path = c;
      break;
    }
    if (c.find('/') == std::string::npos || tried.size() < 2000) tried += "\n  " + dl_error();
  }
  if (!lib) {
    n.error = "NVRTC (libnvrtc.so.13 / .12) not found; tried the loader path, $CUDA_PATH/lib64, "
              "$CUDA_HOME/lib64, /usr/local/cuda/lib64 and /usr/local/cuda-*/lib64:" + tried;
    return;
  }
  link_map* lm = nullptr;
  if (dlinfo(lib, RTLD_DI_LINKMAP, &lm) == 0 && lm && lm->l_name && *lm->l_name) n.path = lm->l_name;
  // NVRTC opens libnvrtc-builtins by its soname at compile time; when NVRTC came from a
  // folder off the loader path, load the builtins from that folder first so the soname
  // resolves to the copy beside it.
  const auto slash = n.path.rfind('/');
  if (slash != std::string::npos) {
    glob_t g{};
    const std::string pattern = n.path.substr(0, slash) + "/libnvrtc-builtins.so.*";
    if (glob(pattern.c_str(), 0, nullptr, &g) == 0)
      for (std::size_t i = 0; i < g.gl_pathc; ++i) dlopen(g.gl_pathv[i], RTLD_NOW | RTLD_GLOBAL);
    globfree(&g);
  }
  std::string missing;
  auto need = [&](auto& slot, const char* name) {
    if (!bind(lib, slot, {name})) missing += std::string(missing.empty() ? "" : ", ") + name;
  };
  need(n.nvrtcVersion, "nvrtcVersion");
  need(n.nvrtcGetErrorString, "nvrtcGetErrorString");
  need(n.nvrtcCreateProgram, "nvrtcCreateProgram");
  need(n.nvrtcDestroyProgram, "nvrtcDestroyProgram");
  need(n.nvrtcCompileProgram, "nvrtcCompileProgram");
  need(n.nvrtcGetProgramLogSize, "nvrtcGetProgramLogSize");
  need(n.nvrtcGetProgramLog, "nvrtcGetProgramLog");
  need(n.nvrtcGetPTXSize, "nvrtcGetPTXSize");
  need(n.nvrtcGetPTX, "nvrtcGetPTX");
  need(n.nvrtcGetCUBINSize, "nvrtcGetCUBINSize");
  need(n.nvrtcGetCUBIN, "nvrtcGetCUBIN");
  bind(lib, n.nvrtcGetNumSupportedArchs, {"nvrtcGetNumSupportedArchs"});
  bind(lib, n.nvrtcGetSupportedArchs, {"nvrtcGetSupportedArchs"});
  if (!missing.empty()) {
    n.error = n.path + " is too old: it lacks " + missing;
    return;
  }
  n.nvrtcVersion(&n.major, &n.minor);
  int count = 0;
  if (n.nvrtcGetNumSupportedArchs && n.nvrtcGetSupportedArchs && n.nvrtcGetNumSupportedArchs(&count) == NVRTC_SUCCESS &&
      count > 0) {
    n.supported_archs.resize(static_cast<std::size_t>(count));
    if (n.nvrtcGetSupportedArchs(n.supported_archs.data()) != NVRTC_SUCCESS) n.supported_archs.clear();
    std::sort(n.supported_archs.begin(), n.supported_archs.end());
  }
  n.loaded = true;
}

}  // namespace

std::vector<std::string> nvrtc_search_dirs() {
  std::vector<std::string> dirs;
  auto add = [&](const std::string& d) {
    if (!d.empty() && std::find(dirs.begin(), dirs.end(), d) == dirs.end()) dirs.push_back(d);
  };
  for (const char* var : {"CUDA_PATH", "CUDA_HOME"})
    if (const char* v = std::getenv(var); v && *v) add(std::string(v) + "/lib64");
  add("/usr/local/cuda/lib64");
  glob_t g{};
  if (glob("/usr/local/cuda-*/lib64", 0, nullptr, &g) == 0) {
    std::vector<std::string> found(g.gl_pathv, g.gl_pathv + g.gl_pathc);
    std::sort(found.rbegin(), found.rend());  // newest version first (lexically)
    for (const auto& f : found) add(f);
  }
  globfree(&g);
  add(AXLE_CUDA_TOOLKIT_LIBDIR);
  return dirs;
}

const DriverApi& driver() {
  static DriverApi* d = new DriverApi;  // never destroyed (see header)
  static std::once_flag once;
  std::call_once(once, [] { load_driver(*d); });
  return *d;
}

const NvrtcApi& nvrtc() {
  static NvrtcApi* n = new NvrtcApi;
  static std::once_flag once;
  std::call_once(once, [] { load_nvrtc(*n); });
  return *n;
}

std::string status_name(CUresult r) {
  const auto& d = driver();
  const char* s = nullptr;
  if (d.cuGetErrorName && d.cuGetErrorName(r, &s) == CUDA_SUCCESS && s) return s;
  return "CUresult " + std::to_string(static_cast<int>(r));
}

std::string status_text(CUresult r) {
  const auto& d = driver();
  const char* s = nullptr;
  if (d.cuGetErrorString && d.cuGetErrorString(r, &s) == CUDA_SUCCESS && s) return s;
  return {};
}

void throw_error(CUresult r, const char* call, const std::string& what) {
  const std::string name = status_name(r);
  const std::string text = status_text(r);
  std::string msg = std::string(call) + " failed: " + name;
  if (!text.empty()) msg += " (" + text + ")";
  if (!what.empty()) msg += ": " + what;
  Error::Details det{"cuda", static_cast<long long>(r), name, call};
  switch (r) {
    case CUDA_ERROR_OUT_OF_MEMORY:
      throw OutOfMemory(msg, det);
    case CUDA_ERROR_INVALID_VALUE:
    case CUDA_ERROR_INVALID_HANDLE:
    case CUDA_ERROR_INVALID_CONTEXT:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED:
    case CUDA_ERROR_NOT_FOUND:
      throw InvalidArgument(msg, det);
    case CUDA_ERROR_NOT_SUPPORTED:
    case CUDA_ERROR_NO_BINARY_FOR_GPU:
    case CUDA_ERROR_UNSUPPORTED_PTX_VERSION:
    case CUDA_ERROR_INVALID_PTX:
    case CUDA_ERROR_INVALID_IMAGE:
      throw Unsupported(msg, det);
    default:
      throw BackendError(msg, det);
  }
}

void throw_missing(const char* call) {
  const auto& d = driver();
  throw Unsupported(std::string("the loaded CUDA driver (") + d.path + ", version " +
                        std::to_string(d.driver_version) + ") has no " + call + "; update the NVIDIA driver",
                    Error::Details{"cuda", 0, "", call});
}

void log_release_failure(CUresult r, const char* name) noexcept {
  try {
    logger("cuda")->warn("{} failed during release: {}", name, status_name(r));
  } catch (...) {
  }
}

ContextScope::ContextScope(CUcontext ctx) {
  const auto& d = driver();
  CUcontext cur = nullptr;
  check(d.cuCtxGetCurrent, "cuCtxGetCurrent", "", &cur);
  if (cur != ctx) {
    check(d.cuCtxPushCurrent, "cuCtxPushCurrent_v2", "", ctx);
    pushed_ = true;
  }
  ok_ = true;
}

ContextScope::ContextScope(CUcontext ctx, std::nothrow_t) noexcept {
  const auto& d = driver();
  if (!d.loaded) return;
  CUcontext cur = nullptr;
  if (d.cuCtxGetCurrent(&cur) != CUDA_SUCCESS) return;
  if (cur != ctx) {
    if (d.cuCtxPushCurrent(ctx) != CUDA_SUCCESS) return;
    pushed_ = true;
  }
  ok_ = true;
}

ContextScope::~ContextScope() {
  if (!pushed_) return;
  CUcontext popped = nullptr;
  release(driver().cuCtxPopCurrent, "cuCtxPopCurrent_v2", &popped);
}

}  // namespace axle::detail::cuda
