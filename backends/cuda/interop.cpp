// axle/interop/cuda.hpp: native CUDA handles of Axle devices, adopting device memory,
// cluster occupancy and tensor maps.
#include "axle/interop/cuda.hpp"

#include <cstdint>
#include <string>

#include "backend/backend.hpp"
#include "cuda_api.hpp"
#include "cuda_backend.hpp"
#include "tensor_map_check.hpp"

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

int max_active_clusters(const Kernel& kernel, const Range& local, const Range& cluster, std::size_t shared_bytes) {
  const char* who = "axle::cuda::max_active_clusters";
  if (!kernel.valid()) throw InvalidArgument(std::string(who) + ": empty Kernel handle");
  require_cuda(kernel.device(), who);
  if (local.empty() || cluster.empty())
    throw InvalidArgument(std::string(who) + ": the local range (" + local.str() + ") and the cluster (" +
                          cluster.str() + ") must both be given");
  unsigned block[3], cdim[3];
  for (unsigned d = 0; d < 3; ++d) {
    if (local[d] == 0 || cluster[d] == 0)
      throw InvalidArgument(std::string(who) + ": local " + local.str() + " or cluster " + cluster.str() +
                            " has a zero dimension");
    block[d] = static_cast<unsigned>(local[d]);
    cdim[d] = static_cast<unsigned>(cluster[d]);
  }
  auto& k = static_cast<::axle::detail::cuda::CudaKernel&>(kernel.impl());
  const ::axle::detail::cuda::ContextScope scope(k.cuda_device().context());
  if (shared_bytes > 48 * 1024) k.ensure_dynamic_shared(shared_bytes);
  return k.max_active_clusters(block, cdim, shared_bytes);
}

std::size_t element_bytes(TensorMapType t) noexcept {
  switch (t) {
    case TensorMapType::U8: return 1;
    case TensorMapType::U16:
    case TensorMapType::F16:
    case TensorMapType::BF16: return 2;
    case TensorMapType::U32:
    case TensorMapType::I32:
    case TensorMapType::F32:
    case TensorMapType::TF32: return 4;
    case TensorMapType::U64:
    case TensorMapType::I64:
    case TensorMapType::F64: return 8;
  }
  return 0;
}

TensorMap tensor_map(const Buffer& buffer, std::size_t offset_bytes, TensorMapType type, const TensorMapDesc& desc) {
  if (!buffer.valid()) throw InvalidArgument("axle::cuda::tensor_map: empty Buffer");
  if (offset_bytes > buffer.size_bytes())
    throw OutOfRange("axle::cuda::tensor_map: offset " + std::to_string(offset_bytes) + " lies beyond the buffer of " +
                     std::to_string(buffer.size_bytes()) + " bytes");
  return tensor_map(buffer, offset_bytes, type, desc, buffer.size_bytes() - offset_bytes);
}

TensorMap tensor_map(const Buffer& buffer, std::size_t offset_bytes, TensorMapType type, const TensorMapDesc& desc,
                     std::size_t limit_bytes) {
  const std::string who = "axle::cuda::tensor_map";
  if (!buffer.valid()) throw InvalidArgument(who + ": empty Buffer");
  const Device& device = require_cuda(buffer.device(), "axle::cuda::tensor_map");
  if (offset_bytes > buffer.size_bytes() || limit_bytes > buffer.size_bytes() - offset_bytes)
    throw OutOfRange(who + ": view [" + std::to_string(offset_bytes) + ", +" + std::to_string(limit_bytes) +
                     ") reaches beyond the buffer of " + std::to_string(buffer.size_bytes()) + " bytes");
  const std::uint64_t address = static_cast<std::uint64_t>(devptr(buffer)) + offset_bytes;
  const ::axle::detail::cuda::TensorMapArgs a = ::axle::detail::cuda::check_tensor_map(desc, type, address, limit_bytes, who);
  auto& dev = static_cast<::axle::detail::cuda::CudaDevice&>(device.impl());
  if (dev.cc_major() < 9)
    throw Unsupported(who + ": tensor maps (TMA) need compute capability 9.0 or newer; " + device.id() + " (" +
                      device.info().name + ") is " + std::to_string(dev.cc_major()) + "." +
                      std::to_string(dev.cc_minor()));
  const auto& api = ::axle::detail::cuda::driver();
  TensorMap out{};
  ::axle::detail::cuda::check(api.cuTensorMapEncodeTiled, "cuTensorMapEncodeTiled", who, &out.map, a.type, a.rank,
                      reinterpret_cast<void*>(static_cast<std::uintptr_t>(address)), a.dims,
                      a.rank > 1 ? a.strides : nullptr, a.box, a.element_strides, CU_TENSOR_MAP_INTERLEAVE_NONE,
                      a.swizzle, a.l2, a.oob);
  return out;
}

}  // namespace axle::cuda

namespace axle::detail::cuda {

TensorMapArgs check_tensor_map(const axle::cuda::TensorMapDesc& desc, axle::cuda::TensorMapType type,
                               std::uint64_t address, std::uint64_t limit_bytes, const std::string& who) {
  using axle::cuda::TensorMapType;
  TensorMapArgs a;
  const std::size_t rank = desc.dims.size();
  const std::uint64_t esize = axle::cuda::element_bytes(type);
  auto bad = [&who](const std::string& m) { return InvalidArgument(who + ": " + m); };
  auto num = [](std::uint64_t v) { return std::to_string(v); };
  if (esize == 0) throw bad("unknown element type " + num(static_cast<unsigned>(type)));
  if (rank < 1 || rank > 5) throw bad("dims has " + num(rank) + " dimensions; a tensor map takes 1 to 5");
  if (desc.box.size() != rank)
    throw bad("box has " + num(desc.box.size()) + " dimensions, dims has " + num(rank));
  if (!desc.element_strides.empty() && desc.element_strides.size() != rank)
    throw bad("element_strides has " + num(desc.element_strides.size()) + " dimensions, dims has " + num(rank));
  if (!desc.strides_bytes.empty() && desc.strides_bytes.size() != rank - 1)
    throw bad("strides_bytes has " + num(desc.strides_bytes.size()) + " values; a " + num(rank) +
              "-dimensional tensor takes " + num(rank - 1) + " (dimensions 1 .. " + num(rank - 1) + ")");
  if (address % 16 != 0) throw bad("the tensor's address " + num(address) + " is not 16-byte aligned");
  a.rank = static_cast<cuuint32_t>(rank);
  for (std::size_t d = 0; d < rank; ++d) {
    const std::uint64_t n = desc.dims[d];
    if (n == 0 || n > (std::uint64_t{1} << 32))
      throw bad("dims[" + num(d) + "] = " + num(n) + "; each extent must be 1 to 2^32");
    a.dims[d] = n;
  }
  // Strides: given, or densely packed.
  std::uint64_t stride = esize * a.dims[0];
  for (std::size_t d = 1; d < rank; ++d) {
    const std::uint64_t s = desc.strides_bytes.empty() ? stride : desc.strides_bytes[d - 1];
    const std::string name = desc.strides_bytes.empty() ? "the packed stride of dimension " + num(d)
                                                        : "strides_bytes[" + num(d - 1) + "]";
    if (s % 16 != 0 || s == 0 || s >= (std::uint64_t{1} << 40))
      throw bad(name + " = " + num(s) + " bytes; strides must be non-zero multiples of 16 below 2^40");
    a.strides[d - 1] = s;
    if (d + 1 < rank) {
      if (a.dims[d] > ~std::uint64_t{0} / s) throw bad("the extent of dimension " + num(d + 1) + " overflows");
      stride = s * a.dims[d];
    }
  }
  // Footprint: the last element's offset + its size.
  std::uint64_t last = 0;
  for (std::size_t d = 0; d < rank; ++d) {
    const std::uint64_t s = d == 0 ? esize : a.strides[d - 1];
    const std::uint64_t reach = (a.dims[d] - 1);
    if (reach && s > (~std::uint64_t{0} - last) / reach) throw bad("the tensor's extent overflows 64 bits");
    last += reach * s;
  }
  a.footprint_bytes = last + esize;
  if (a.footprint_bytes > limit_bytes)
    throw OutOfRange(who + ": the tensor reaches " + num(a.footprint_bytes) + " bytes from its start, the view has " +
                     num(limit_bytes));
  for (std::size_t d = 0; d < rank; ++d) {
    const std::uint32_t b = desc.box[d];
    if (b == 0 || b > 256) throw bad("box[" + num(d) + "] = " + num(b) + "; each box extent must be 1 to 256");
    a.box[d] = b;
    const std::uint32_t e = desc.element_strides.empty() ? 1u : desc.element_strides[d];
    if (e == 0 || e > 8) throw bad("element_strides[" + num(d) + "] = " + num(e) + "; each must be 1 to 8");
    a.element_strides[d] = e;
  }
  const std::uint64_t inner = a.box[0] * esize;
  if (inner % 16 != 0)
    throw bad("box[0] = " + num(a.box[0]) + " elements of " + num(esize) + " bytes = " + num(inner) +
              " bytes; the box's inner extent must be a multiple of 16 bytes");
  static const std::uint64_t kSpan[] = {0, 32, 64, 128};
  const auto sw = static_cast<unsigned>(desc.swizzle);
  if (sw > 3) throw bad("unknown swizzle " + num(sw));
  if (sw != 0 && inner > kSpan[sw])
    throw bad("the box's inner extent of " + num(inner) + " bytes exceeds the " + num(kSpan[sw]) +
              "-byte swizzle span; use a narrower box or a wider swizzle");
  static const CUtensorMapSwizzle kSw[] = {CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_SWIZZLE_32B,
                                           CU_TENSOR_MAP_SWIZZLE_64B, CU_TENSOR_MAP_SWIZZLE_128B};
  a.swizzle = kSw[sw];
  const auto l2 = static_cast<unsigned>(desc.l2_promotion);
  if (l2 > 3) throw bad("unknown L2 promotion " + num(l2));
  static const CUtensorMapL2promotion kL2[] = {CU_TENSOR_MAP_L2_PROMOTION_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_64B,
                                               CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B};
  a.l2 = kL2[l2];
  const bool floating = type == TensorMapType::F16 || type == TensorMapType::F32 || type == TensorMapType::F64 ||
                        type == TensorMapType::BF16 || type == TensorMapType::TF32;
  if (desc.oob_nan && !floating) throw bad("oob_nan needs a floating-point element type");
  a.oob = desc.oob_nan ? CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA : CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
  static const CUtensorMapDataType kType[] = {
      CU_TENSOR_MAP_DATA_TYPE_UINT8,   CU_TENSOR_MAP_DATA_TYPE_UINT16,  CU_TENSOR_MAP_DATA_TYPE_UINT32,
      CU_TENSOR_MAP_DATA_TYPE_INT32,   CU_TENSOR_MAP_DATA_TYPE_UINT64,  CU_TENSOR_MAP_DATA_TYPE_INT64,
      CU_TENSOR_MAP_DATA_TYPE_FLOAT16, CU_TENSOR_MAP_DATA_TYPE_FLOAT32, CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
      CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, CU_TENSOR_MAP_DATA_TYPE_TFLOAT32};
  a.type = kType[static_cast<unsigned>(type)];
  return a;
}

}  // namespace axle::detail::cuda
