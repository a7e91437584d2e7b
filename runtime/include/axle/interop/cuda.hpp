// axle/interop/cuda.hpp: native CUDA driver-API handles of Axle objects, and adopting them.
//
// Requires cuda.h. Handles returned here stay owned by Axle. Adopted handles stay
// owned by the caller and must outlive the Axle object that wraps them.
//
// Contexts: Axle works in each device's primary context (context()). Every Axle call
// makes it current only for the call's duration and restores the calling thread's own
// current context (or none) before returning, so an application's own contexts are
// undisturbed. To call the driver API on Axle's handles, make context() current
// yourself (cuCtxSetCurrent or cuCtxPushCurrent).
//
// Thread-safety: these functions may be called from any thread, as the const members of
// the objects they read. The context made current for an Axle call is the calling
// thread's only (CUDA keeps one context stack per thread), so threads never disturb
// each other's current context.
#pragma once

#include <cuda.h>

#include "axle/axle.hpp"

namespace axle::cuda {

/// Throws InvalidArgument when the object is not on the CUDA backend.
CUcontext context(const Device& device);
CUdevice device_ordinal(const Device& device);
inline CUstream stream(const Stream& s) { return static_cast<CUstream>(s.native_handle()); }
inline CUdeviceptr devptr(const Buffer& b) { return reinterpret_cast<CUdeviceptr>(b.native_handle()); }
inline CUfunction function(const Kernel& k) { return static_cast<CUfunction>(k.native_handle()); }
inline CUmodule module(const Program& p) { return static_cast<CUmodule>(p.native_handle()); }
inline CUevent event(const Event& e) { return static_cast<CUevent>(e.native_handle()); }

/// Wrap a stream of the device's primary context without taking ownership. A stream of
/// another context (of this device or another) is an InvalidArgument naming both.
inline Stream adopt_stream(const Device& device, CUstream s) { return Stream::adopt(device, s); }
/// Wrap device memory of this device without taking ownership.
Buffer adopt_buffer(const Device& device, CUdeviceptr ptr, std::size_t bytes);

}  // namespace axle::cuda
