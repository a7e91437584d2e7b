// The OpenCL ICD loader (libOpenCL.so.1), opened at run time through a table of
// symbols: Axle has no link-time dependency on OpenCL. Thread-safe after load().
#pragma once

#include <CL/cl.h>

#include <string>

namespace axle::detail::cl {

#define AXLE_CL_FUNCTIONS(X)                                                                      \
  X(clGetPlatformIDs) X(clGetPlatformInfo) X(clGetDeviceIDs) X(clGetDeviceInfo) X(clCreateContext) \
  X(clReleaseContext) X(clCreateCommandQueue) X(clReleaseCommandQueue) X(clGetCommandQueueInfo)    \
  X(clCreateBuffer) X(clCreateSubBuffer) X(clReleaseMemObject) X(clGetMemObjectInfo)               \
  X(clEnqueueWriteBuffer) X(clEnqueueReadBuffer) X(clEnqueueCopyBuffer) X(clEnqueueFillBuffer)     \
  X(clEnqueueMapBuffer) X(clEnqueueUnmapMemObject) X(clCreateProgramWithSource)                    \
  X(clCreateProgramWithBinary) X(clBuildProgram) X(clGetProgramBuildInfo) X(clGetProgramInfo)      \
  X(clReleaseProgram) X(clCreateKernel) X(clReleaseKernel) X(clGetKernelInfo)                      \
  X(clGetKernelWorkGroupInfo) X(clGetKernelArgInfo) X(clSetKernelArg) X(clEnqueueNDRangeKernel)    \
  X(clEnqueueMarkerWithWaitList) X(clEnqueueBarrierWithWaitList) X(clWaitForEvents)                \
  X(clGetEventInfo) X(clGetEventProfilingInfo) X(clRetainEvent) X(clReleaseEvent) X(clFinish) \
  X(clFlush)

struct Api {
#define AXLE_CL_MEMBER(name) decltype(&::name) name = nullptr;
  AXLE_CL_FUNCTIONS(AXLE_CL_MEMBER)
#undef AXLE_CL_MEMBER
};

/// The loaded table, or nullptr with `why` set (dlerror text or the missing symbol).
const Api* load(std::string& why);

/// Testing: the loaded table (as load() returns it), writable so that a test can
/// interpose a function. Only while no other thread uses OpenCL.
inline Api* table_for_testing(std::string& why) { return const_cast<Api*>(load(why)); }

/// "CL_INVALID_VALUE" for -30, etc.
const char* error_name(cl_int code);

}  // namespace axle::detail::cl
