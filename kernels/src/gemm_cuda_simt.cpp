#include "gemm_cuda_simt.hpp"

namespace axle::blas::detail {

bool try_gemm_cuda_simt(Stream&, const GemmDesc&) { return false; }

}  // namespace axle::blas::detail
