// Validation of tensor-map descriptors (axle::cuda::tensor_map) against the limits of
// cuTensorMapEncodeTiled, before the driver sees them. No driver is needed, so the
// checks are tested on any machine.
#pragma once

#include <cuda.h>

#include <cstdint>
#include <string>

#include "axle/interop/cuda.hpp"

namespace axle::detail::cuda {

/// The arguments of cuTensorMapEncodeTiled, from a checked descriptor.
struct TensorMapArgs {
  CUtensorMapDataType type = CU_TENSOR_MAP_DATA_TYPE_FLOAT32;
  cuuint32_t rank = 0;
  cuuint64_t dims[5] = {};
  cuuint64_t strides[4] = {};  ///< bytes, dimensions 1 .. rank-1
  cuuint32_t box[5] = {};
  cuuint32_t element_strides[5] = {};
  CUtensorMapSwizzle swizzle = CU_TENSOR_MAP_SWIZZLE_NONE;
  CUtensorMapL2promotion l2 = CU_TENSOR_MAP_L2_PROMOTION_NONE;
  CUtensorMapFloatOOBfill oob = CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE;
  std::uint64_t footprint_bytes = 0;  ///< last byte the tensor reaches + 1, from its start
};

/// Checks `desc` for a tensor of `type` starting at device address `address` with
/// `limit_bytes` of memory behind it. Throws InvalidArgument naming the field and its
/// value (prefixed by `who`), or OutOfRange when the tensor reaches beyond the limit.
TensorMapArgs check_tensor_map(const axle::cuda::TensorMapDesc& desc, axle::cuda::TensorMapType type,
                               std::uint64_t address, std::uint64_t limit_bytes, const std::string& who);

}  // namespace axle::detail::cuda
