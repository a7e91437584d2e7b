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

#include <cstdint>
#include <type_traits>
#include <vector>

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

// ---------------------------------------------------------------- thread-block clusters
//
// Launch in clusters with Stream::launch(kernel, LaunchShape{global, local, cluster}, ...)
// (axle/stream.hpp). In the kernel, %cluster_ctarank, barrier.cluster and mapa reach the
// other blocks of the cluster (or cooperative_groups::this_cluster()).

/// How many clusters of `cluster` work-groups of shape `local`, each with `shared_bytes`
/// of dynamic shared memory (LocalMem arguments), can be resident on the device at once
/// (cuOccupancyMaxActiveClusters): the grid size of a persistent cluster kernel. 0 when
/// none fits. Throws Unsupported on devices below compute capability 9.0 or drivers
/// without cluster launches, InvalidArgument for a kernel of another backend or a shape
/// the kernel's __cluster_dims__ forbid.
int max_active_clusters(const Kernel& kernel, const Range& local, const Range& cluster, std::size_t shared_bytes = 0);

// ---------------------------------------------------------------- tensor maps (TMA)

/// Shared-memory swizzle of the boxes a tensor map copies (CU_TENSOR_MAP_SWIZZLE_*): 16-byte
/// chunks permuted within spans of 32, 64 or 128 bytes. The box's inner extent in bytes
/// must not exceed the span.
enum class TensorMapSwizzle { None, B32, B64, B128 };
/// L2 fetch granularity (CU_TENSOR_MAP_L2_PROMOTION_*).
enum class TensorMapL2Promotion { None, B64, B128, B256 };

/// A tiled view of a tensor in device memory, as TMA copies it.
struct TensorMapDesc {
  /// Elements per dimension, innermost (contiguous) first: 1 to 5 dimensions, each 1 to 2^32.
  std::vector<std::uint64_t> dims;
  /// Byte strides of dimensions 1 .. rank-1 (rank-1 values, each a multiple of 16 below
  /// 2^40). Empty: densely packed (then dims[0] * element size must be a multiple of 16).
  std::vector<std::uint64_t> strides_bytes;
  /// Elements one copy moves per dimension (the box), 1 to 256 each; box[0] * element
  /// size must be a multiple of 16 bytes.
  std::vector<std::uint32_t> box;
  /// Step between the elements taken inside the box per dimension, 1 to 8 (empty: all 1;
  /// the innermost is ignored by the hardware).
  std::vector<std::uint32_t> element_strides;
  TensorMapSwizzle swizzle = TensorMapSwizzle::None;
  TensorMapL2Promotion l2_promotion = TensorMapL2Promotion::None;
  /// Elements of a box outside the tensor read as zero (false) or as a NaN that makes
  /// tensor-core FMAs give zero (true; floating-point types only).
  bool oob_nan = false;
};

/// A TMA descriptor for a buffer's memory (CUtensorMap: 128 bytes, 64- or 128-byte
/// aligned depending on the toolkit's cuda.h). Pass it to a kernel by value, like any
/// scalar: `stream.launch(k, shape, map, ...)`. The
/// kernel declares the parameter as `const __grid_constant__ CUtensorMap map` (or a
/// 64-byte-aligned struct of 128 bytes, for NVRTC sources without cuda.h) and hands
/// `&map` to cp.async.bulk.tensor. It holds the buffer's address: it is valid while the
/// buffer lives and on that buffer's device only.
struct TensorMap {
  CUtensorMap map;
};
static_assert(sizeof(TensorMap) == 128 && alignof(TensorMap) >= 64,
              "CUtensorMap is 128 bytes, at least 64-byte aligned");

/// Element types a tensor map can name (CU_TENSOR_MAP_DATA_TYPE_*).
enum class TensorMapType { U8, U16, U32, I32, U64, I64, F16, F32, F64, BF16, TF32 };
std::size_t element_bytes(TensorMapType t) noexcept;

/// Encode a tensor map (cuTensorMapEncodeTiled) for the tensor at `offset_bytes` into
/// `buffer`. Everything is checked first, and the error names the field and its value:
/// InvalidArgument for a buffer of another backend or a descriptor the hardware cannot
/// take (rank, extents, strides, box, alignment, swizzle span), OutOfRange when the
/// tensor reaches beyond the buffer, Unsupported on devices below compute capability 9.0
/// or drivers without cuTensorMapEncodeTiled.
TensorMap tensor_map(const Buffer& buffer, std::size_t offset_bytes, TensorMapType type, const TensorMapDesc& desc);
/// As above, with the tensor limited to `limit_bytes` from the offset.
TensorMap tensor_map(const Buffer& buffer, std::size_t offset_bytes, TensorMapType type, const TensorMapDesc& desc,
                     std::size_t limit_bytes);

/// The tensor-map element type of T.
template <typename T>
constexpr TensorMapType tensor_map_type_of() {
  if constexpr (std::is_same_v<T, float>) return TensorMapType::F32;
  else if constexpr (std::is_same_v<T, half_t>) return TensorMapType::F16;
  else if constexpr (std::is_same_v<T, bfloat16_t>) return TensorMapType::BF16;
  else if constexpr (std::is_same_v<T, double>) return TensorMapType::F64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return TensorMapType::I32;
  else if constexpr (std::is_same_v<T, std::uint32_t>) return TensorMapType::U32;
  else if constexpr (std::is_same_v<T, std::int64_t>) return TensorMapType::I64;
  else if constexpr (std::is_same_v<T, std::uint64_t>) return TensorMapType::U64;
  else if constexpr (std::is_same_v<T, std::uint16_t>) return TensorMapType::U16;
  else if constexpr (std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int8_t>) return TensorMapType::U8;
  else static_assert(sizeof(T) == 0, "no tensor-map element type for this T");
}

/// A tensor map over a typed view; the element type follows T (float, half_t,
/// bfloat16_t, double, 8/16/32/64-bit integers). The tensor must lie inside the view.
template <typename T>
TensorMap tensor_map(const BufferView<T>& view, const TensorMapDesc& desc) {
  return tensor_map(view.buffer(), view.offset_bytes(), tensor_map_type_of<T>(), desc, view.size_bytes());
}

}  // namespace axle::cuda
