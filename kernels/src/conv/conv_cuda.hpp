// Internal: the CUDA-only convolution algorithms (conv_cuda.cpp), as seen by the
// algorithm table in conv_algos.cpp.
//
//   tensor_core  src/cuda/conv_mma.cu: mma.sync implicit GEMM on sm_80 and newer;
//                f16/bf16 x and w (C/groups a multiple of 8), or f32 as TF32 when
//                Conv2dOptions::allow_tf32 (C/groups a multiple of 4); NHWC/KRSC; y f32,
//                f16 or bf16; groups through grid z.
//   cuda_simt    src/cuda/conv_simt.cu: register-tiled f32 implicit GEMM on the CUDA
//                cores; NCHW/KCRS and NHWC/KRSC; any C/groups; groups through grid z.
// Both fuse the whole epilogue (alpha, beta, bias, residual, ReLU / GELU).
#pragma once

#include <memory>
#include <string>

#include "conv_plan.hpp"

namespace axle::dnn::detail {

/// Why the algorithm cannot serve `pb` ("" when it can); the direction is checked by
/// the caller.
std::string tensor_core_unsupported_reason(const ConvProblem& pb);
std::string cuda_simt_unsupported_reason(const ConvProblem& pb);

/// Build the algorithm object (the reason above is empty); throws on a build failure.
std::unique_ptr<ConvAlgo> make_tensor_core_algo(const ConvProblem& pb);
std::unique_ptr<ConvAlgo> make_cuda_simt_algo(const ConvProblem& pb);

}  // namespace axle::dnn::detail
