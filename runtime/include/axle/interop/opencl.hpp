// axle/interop/opencl.hpp: native OpenCL handles of Axle objects, and adopting them.
//
// Requires the OpenCL headers. Handles returned here stay owned by Axle: do not
// release them. Adopted handles stay owned by the caller and must outlive the
// Axle object that wraps them.
//
// Thread-safety: these functions may be called from any thread, as the const members of
// the objects they read. The handles follow OpenCL's rules: queues, buffers, programs
// and contexts may be used from several threads; a cl_kernel holds its arguments, so do
// not call clSetKernelArg on one Axle may be launching (Axle binds under its own lock):
// create your own cl_kernel from the cl_program instead.
#pragma once

#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 120
#endif
#include <CL/cl.h>

#include "axle/axle.hpp"

namespace axle::opencl {

/// Throws InvalidArgument when the object is not on the OpenCL backend.
cl_context context(const Device& device);
cl_device_id device_id(const Device& device);
inline cl_command_queue queue(const Stream& s) { return static_cast<cl_command_queue>(s.native_handle()); }
inline cl_mem mem(const Buffer& b) { return static_cast<cl_mem>(b.native_handle()); }
inline cl_kernel kernel(const Kernel& k) { return static_cast<cl_kernel>(k.native_handle()); }
inline cl_program program(const Program& p) { return static_cast<cl_program>(p.native_handle()); }
inline cl_event event(const Event& e) { return static_cast<cl_event>(e.native_handle()); }

/// Wrap a queue of this device's context without taking ownership. The queue must be
/// of this device and in order (an axle::Stream runs its work in order): a queue of
/// another context or device, or one made with CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE,
/// is an InvalidArgument. Events recorded on a queue made without
/// CL_QUEUE_PROFILING_ENABLE cannot be timed (Event::elapsed_ms throws Unsupported).
inline Stream adopt_queue(const Device& device, cl_command_queue q) { return Stream::adopt(device, q); }
/// Wrap a cl_mem of this device's context without taking ownership.
Buffer adopt_buffer(const Device& device, cl_mem mem);

}  // namespace axle::opencl
