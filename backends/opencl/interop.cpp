// axle/interop/opencl.hpp: native handles and adoption.
#include "axle/interop/opencl.hpp"

#include "backend/backend.hpp"

namespace axle::opencl {
namespace {
detail::DeviceImpl& cl_device(const Device& d, const char* what) {
  if (d.backend() != "opencl")
    throw InvalidArgument(std::string(what) + ": " + d.id() + " is not an OpenCL device");
  return d.impl();
}
}  // namespace

cl_context context(const Device& device) {
  return static_cast<cl_context>(cl_device(device, "axle::opencl::context").native_context());
}
cl_device_id device_id(const Device& device) {
  return static_cast<cl_device_id>(cl_device(device, "axle::opencl::device_id").native_device());
}
Buffer adopt_buffer(const Device& device, cl_mem mem) {
  if (!mem) throw InvalidArgument("axle::opencl::adopt_buffer: null cl_mem");
  return Buffer(device, cl_device(device, "axle::opencl::adopt_buffer").adopt_buffer(mem, 0));
}

}  // namespace axle::opencl
