// Internal: the CUDA tensor-core GEMM paths, as seen by the GEMM dispatcher.
//
// The dispatcher (gemm_dispatch.cpp) calls try_gemm_tensorcore() first for every
// validated call on a CUDA device. It returns true when it has enqueued the whole
// GEMM (epilogue included) on `stream`, false when it has no path for this
// descriptor (device, element types, shape, alignment or TF32 not allowed), in which
// case the SIMT f32 path or the portable kernels run instead. It must not throw for an unsupported
// descriptor; it may throw axle::Error for a real failure (build, launch).
// (f32 without TF32 is served by try_gemm_cuda_simt, gemm_cuda_simt.hpp.)
//
// Thread-safety: may be called concurrently for distinct streams.
#pragma once

#include "gemm_desc.hpp"

namespace axle::blas::detail {

bool try_gemm_tensorcore(Stream& stream, const GemmDesc& desc);

/// For tests: the tensor-core kernel the calling thread's last try_gemm_tensorcore()
/// enqueued: "wgmma2", "wgmma1", "mma", or "none" (nothing enqueued by these paths).
const char* last_tensorcore_path();

}  // namespace axle::blas::detail
