// Internal: the CUDA-only f32 (SIMT, no tensor cores) GEMM path.
#pragma once

#include "gemm_desc.hpp"

namespace axle::blas::detail {

/// Launches `d` (f32 A and B, no TF32) with the CUDA-only SIMT kernels and returns
/// true, or returns false when it does not serve this device or call (the portable
/// path then runs).
bool try_gemm_cuda_simt(Stream& stream, const GemmDesc& d);

}  // namespace axle::blas::detail
