// axle/interop/cuda.hpp: native CUDA handles of Axle devices, and adopting device memory.
#include "axle/interop/cuda.hpp"

#include <cstdint>
#include <string>

#include "backend/backend.hpp"

namespace axle::cuda {
namespace {

const Device& require_cuda(const Device& device, const char* what) {
  if (!device.valid()) throw InvalidArgument(std::string(what) + ": empty Device handle");
  if (device.backend() != "cuda")
    throw InvalidArgument(std::string(what) + ": " + device.id() + " is not a CUDA device");
  return device;
}

}  // namespace

CUcontext context(const Device& device) {
  return static_cast<CUcontext>(require_cuda(device, "axle::cuda::context").impl().native_context());
}

CUdevice device_ordinal(const Device& device) {
  const auto v = reinterpret_cast<std::intptr_t>(require_cuda(device, "axle::cuda::device_ordinal").impl().native_device());
  return static_cast<CUdevice>(v);
}

Buffer adopt_buffer(const Device& device, CUdeviceptr ptr, std::size_t bytes) {
  require_cuda(device, "axle::cuda::adopt_buffer");
  if (ptr == 0) throw InvalidArgument("axle::cuda::adopt_buffer: null device pointer");
  if (bytes == 0) throw InvalidArgument("axle::cuda::adopt_buffer: zero bytes");
  return Buffer(device, device.impl().adopt_buffer(reinterpret_cast<void*>(ptr), bytes));
}

}  // namespace axle::cuda
